/* strbuf.h — a growable NUL-terminated text buffer, and a suffix test on text.
 *
 * Appends never fail loudly: an allocation failure sets `oom` and later appends
 * do nothing, so a builder checks once at the end. The text is owned by the
 * buffer until pf_sb_take hands it over; pf_sb_free releases it.
 */
#ifndef PF_STRBUF_H
#define PF_STRBUF_H

#include <stddef.h>

typedef struct pf_strbuf {
  char *p;    /* NUL-terminated once anything was appended; may be NULL before */
  size_t len; /* bytes, without the NUL */
  size_t cap;
  int oom;    /* an append failed to allocate */
} pf_strbuf;

void pf_sb_put(pf_strbuf *b, const char *s, size_t n);
void pf_sb_str(pf_strbuf *b, const char *s);
void pf_sb_printf(pf_strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* s as a JSON string literal (quotes, escapes for '"', '\\' and control bytes). */
void pf_sb_json_string(pf_strbuf *b, const char *s);
/* The text (malloc'd, "" when empty), or NULL after an allocation failure; the
 * buffer is reset either way. */
char *pf_sb_take(pf_strbuf *b);
void pf_sb_free(pf_strbuf *b);

/* 1 when s ends with suffix (exact bytes; a suffix equal to s counts). */
int pf_str_ends_with(const char *s, const char *suffix);

#endif
