/* safetensors_int.h — shared internals of safetensors.c (reader) and
 * safetensors_write.c (writer). Not part of the public API. */
#ifndef PF_SAFETENSORS_INT_H
#define PF_SAFETENSORS_INT_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "pf.h"

#define ST_SINGLE "model.safetensors"
#define ST_INDEX "model.safetensors.index.json"
#define ST_WRITE_CHUNK ((size_t)64 << 20)

/* pf_err_set with "<file>: " in front. */
__attribute__((format(printf, 4, 5))) static inline pf_status
ferr(pf_err *err, pf_status code, const char *file, const char *fmt, ...) {
  char msg[PF_ERR_MSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return pf_err_set(err, code, "%s: %.900s", file, msg);
}

static inline int cmp_str(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

#endif
