/* strbuf.c — see strbuf.h. */
#include "strbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int reserve(pf_strbuf *b, size_t extra) {
  if (b->oom) return 0;
  if (b->len + extra + 1 <= b->cap) return 1;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < b->len + extra + 1)
    cap *= 2;
  char *p = realloc(b->p, cap);
  if (!p) {
    b->oom = 1;
    return 0;
  }
  b->p = p;
  b->cap = cap;
  return 1;
}

void pf_sb_put(pf_strbuf *b, const char *s, size_t n) {
  if (!reserve(b, n)) return;
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = '\0';
}

void pf_sb_str(pf_strbuf *b, const char *s) { pf_sb_put(b, s, strlen(s)); }

void pf_sb_printf(pf_strbuf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0 || !reserve(b, (size_t)n)) return;
  va_start(ap, fmt);
  vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
}

void pf_sb_json_string(pf_strbuf *b, const char *s) {
  pf_sb_put(b, "\"", 1);
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') {
      char esc[2] = {'\\', (char)c};
      pf_sb_put(b, esc, 2);
    } else if (c < 0x20) {
      char esc[8];
      snprintf(esc, sizeof esc, "\\u%04x", c);
      pf_sb_put(b, esc, 6);
    } else {
      pf_sb_put(b, s, 1);
    }
  }
  pf_sb_put(b, "\"", 1);
}

char *pf_sb_take(pf_strbuf *b) {
  char *p = b->oom ? NULL : (b->p ? b->p : calloc(1, 1));
  if (b->oom) free(b->p);
  b->p = NULL;
  b->len = b->cap = 0;
  b->oom = 0;
  return p;
}

void pf_sb_free(pf_strbuf *b) {
  free(b->p);
  b->p = NULL;
  b->len = b->cap = 0;
}

int pf_str_ends_with(const char *s, const char *suffix) {
  const size_t n = strlen(s), k = strlen(suffix);
  return n >= k && strcmp(s + n - k, suffix) == 0;
}
