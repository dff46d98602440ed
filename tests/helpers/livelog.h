/* livelog.h — a pf_ctx log callback that records, at each log line starting
 * with a prefix, the bytes of captured activations alive then
 * (pf_bias_capture_heap_bytes): how the suites that check when results let
 * their activations go (check_recipe, check_lua) observe it from outside.
 * Header-only (static inline): each suite is its own executable. */
#ifndef PF_TEST_LIVELOG_H
#define PF_TEST_LIVELOG_H

#include <stdint.h>
#include <string.h>

#include "bias.h"

typedef struct live_log {
  const char *prefix; /* the lines that count ("step ", "bias_activations: done") */
  uint64_t live[8];   /* bytes alive at the first 8 of them */
  int n;
} live_log;

static inline void live_log_line(void *ud, const char *line) {
  live_log *l = ud;
  if (!strncmp(line, l->prefix, strlen(l->prefix)) && l->n < 8)
    l->live[l->n++] = pf_bias_capture_heap_bytes();
}

#endif
