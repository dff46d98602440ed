/* err.c — pf_err helpers and the pf_ctx callbacks. */
#include "pf.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "fsutil.h"

pf_status pf_err_set(pf_err *err, pf_status code, const char *fmt, ...) {
  if (!err) return code;
  err->code = code;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err->msg, sizeof err->msg, fmt, ap);
  va_end(ap);
  return code;
}

pf_status pf_err_prefix(pf_err *err, const char *fmt, ...) {
  if (!err) return PF_ERR_INVALID;
  char buf[PF_ERR_MSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf - 2, fmt, ap);
  va_end(ap);
  size_t p = n < 0 ? 0 : (size_t)n;
  if (p > sizeof buf - 3) p = sizeof buf - 3;
  buf[p++] = ':';
  buf[p++] = ' ';
  size_t rest = strnlen(err->msg, sizeof err->msg);
  if (rest > sizeof buf - 1 - p) rest = sizeof buf - 1 - p;
  memcpy(buf + p, err->msg, rest);
  buf[p + rest] = '\0';
  memcpy(err->msg, buf, sizeof buf);
  return err->code;
}

void pf_err_clear(pf_err *err) {
  if (!err) return;
  err->code = PF_OK;
  err->msg[0] = '\0';
}

const char *pf_status_name(pf_status s) {
  switch (s) {
  case PF_OK: return "ok";
  case PF_ERR_INVALID: return "invalid argument";
  case PF_ERR_IO: return "i/o error";
  case PF_ERR_FORMAT: return "malformed input";
  case PF_ERR_NOMEM: return "out of memory";
  case PF_ERR_UNSUPPORTED: return "unsupported";
  case PF_ERR_NOT_FOUND: return "not found";
  case PF_ERR_INTERRUPTED: return "interrupted";
  }
  return "unknown error";
}

void pf_ctx_progress(const pf_ctx *ctx, const char *what, uint64_t done, uint64_t total) {
  if (ctx && ctx->progress) ctx->progress(ctx->user_data, what, done, total);
}

void pf_ctx_log(const pf_ctx *ctx, const char *fmt, ...) {
  if (!ctx || !ctx->log) return;
  char line[PF_ERR_MSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  ctx->log(ctx->user_data, line);
}

uint64_t pf_ctx_budget(const pf_ctx *ctx) {
  return ctx && ctx->memory_budget ? ctx->memory_budget
                                   : pf_proc_kb("/proc/meminfo", "MemAvailable");
}

uint64_t pf_ctx_work_budget(const pf_ctx *ctx) {
  const uint64_t b = pf_ctx_budget(ctx), cap = ctx ? ctx->memory_cap : 0;
  return cap && (!b || cap < b) ? cap : b;
}

pf_status pf_ctx_check_interrupt(const pf_ctx *ctx, pf_err *err) {
  if (ctx && ctx->interrupt && *ctx->interrupt)
    return pf_err_set(err, PF_ERR_INTERRUPTED, "interrupted by signal");
  return PF_OK;
}
