/* tokenizer_decode.c — decoders: token strings -> text, as HF's decode_chain.
 *
 * A decoder maps a list of strings to a list of strings; the caller joins the
 * final list with "". Each step writes a fresh list into the scratch list and the
 * two are swapped, so a chain never allocates per token.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer_internal.h"

int pf_tk_strs_add(pf_tk_pieces *p, const char *s, size_t n) {
  size_t off = p->text.n;
  if (pf_tk_buf_put(&p->text, s, n)) return -1;
  if (p->n == p->cap) {
    size_t cap = p->cap ? p->cap * 2 : 64;
    pf_tk_piece *v = realloc(p->v, cap * sizeof *v);
    if (!v) return -1;
    p->v = v;
    p->cap = cap;
  }
  p->v[p->n++] = (pf_tk_piece){off, n, 0};
  return 0;
}

static void swap_lists(pf_tk_pieces *a, pf_tk_pieces *b) {
  pf_tk_pieces t = *a;
  *a = *b;
  *b = t;
}

#define STR(io, k) ((io)->text.p + (io)->v[k].off)

/* ByteLevel: every char of the byte alphabet back to its byte; a token holding any
 * other char is kept as its UTF-8 bytes. The result is one lossy-UTF-8 string. */
static int dec_byte_level(const pf_tk_dec *d, pf_tk_pieces *io, pf_tk_pieces *tmp) {
  pf_tk_buf raw = {0};
  int bad = 0;
  for (size_t k = 0; k < io->n && !bad; k++) {
    const char *s = STR(io, k);
    size_t n = io->v[k].len, i = 0, start = raw.n;
    int ok = 1;
    bad = pf_tk_buf_reserve(&raw, n + 1);
    while (!bad && i < n) {
      uint32_t c = pf_tk_utf8_next(s, &i);
      if (c >= 324 || d->bytemap->dec[c] < 0) {
        ok = 0;
        break;
      }
      raw.p[raw.n++] = (char)d->bytemap->dec[c];
    }
    if (!bad && !ok) { /* a char outside the byte alphabet: keep the token as is */
      raw.n = start;
      bad = pf_tk_buf_put(&raw, s, n);
    }
  }
  pf_tk_pieces_reset(tmp);
  pf_tk_buf txt = {0};
  bad = bad || pf_tk_utf8_lossy(&txt, raw.p ? raw.p : "", raw.n) ||
        pf_tk_strs_add(tmp, txt.p ? txt.p : "", txt.n);
  pf_tk_buf_free(&raw);
  pf_tk_buf_free(&txt);
  if (!bad) swap_lists(io, tmp);
  return bad;
}

/* Decode only reads the tokenizer (it may run on several threads), so the match
 * data is per call rather than the regex's shared one. */
static int dec_replace(const pf_tk_dec *d, pf_tk_pieces *io, pf_tk_pieces *tmp, int *fail) {
  pf_tk_pieces_reset(tmp);
  pf_tk_buf out = {0};
  pcre2_match_data *md = pcre2_match_data_create_from_pattern(d->re->code, NULL);
  int bad = !md;
  for (size_t k = 0; k < io->n && !bad; k++) {
    const char *s = STR(io, k);
    size_t n = io->v[k].len, pos = 0, ms, me;
    int r = 0;
    out.n = 0;
    while (!bad && (r = pf_tk_regex_find(d->re, md, NULL, s, n, pos, &ms, &me)) == 1) {
      bad = pf_tk_buf_put(&out, s + pos, ms - pos) || pf_tk_buf_put(&out, d->text, d->text_len);
      pos = me;
    }
    if (r < 0) *fail = 1;
    bad = bad || pf_tk_buf_put(&out, s + pos, n - pos) || pf_tk_strs_add(tmp, out.p, out.n);
  }
  pcre2_match_data_free(md);
  pf_tk_buf_free(&out);
  if (!bad) swap_lists(io, tmp);
  return bad;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Runs of <0xAB> tokens become their bytes when those form valid UTF-8, else one
 * U+FFFD per byte. */
static int flush_bytes(pf_tk_pieces *tmp, pf_tk_buf *bytes) {
  int bad = 0;
  if (!bytes->n) return 0;
  if (pf_tk_utf8_invalid_at(bytes->p, bytes->n) == SIZE_MAX)
    bad = pf_tk_strs_add(tmp, bytes->p, bytes->n);
  else
    for (size_t i = 0; i < bytes->n && !bad; i++)
      bad = pf_tk_strs_add(tmp, "\xEF\xBF\xBD", 3);
  bytes->n = 0;
  return bad;
}

static int dec_byte_fallback(pf_tk_pieces *io, pf_tk_pieces *tmp) {
  pf_tk_pieces_reset(tmp);
  pf_tk_buf bytes = {0};
  int bad = 0;
  for (size_t k = 0; k < io->n && !bad; k++) {
    const char *s = STR(io, k);
    size_t n = io->v[k].len;
    int hi = n == 6 ? hexval(s[3]) : -1, lo = n == 6 ? hexval(s[4]) : -1;
    if (n == 6 && !memcmp(s, "<0x", 3) && s[5] == '>' && hi >= 0 && lo >= 0) {
      char c = (char)(hi * 16 + lo);
      bad = pf_tk_buf_put(&bytes, &c, 1);
      continue;
    }
    bad = flush_bytes(tmp, &bytes) || pf_tk_strs_add(tmp, s, n);
  }
  bad = bad || flush_bytes(tmp, &bytes);
  pf_tk_buf_free(&bytes);
  if (!bad) swap_lists(io, tmp);
  return bad;
}

static int dec_fuse(pf_tk_pieces *io, pf_tk_pieces *tmp) {
  pf_tk_pieces_reset(tmp);
  pf_tk_buf all = {0};
  int bad = 0;
  for (size_t k = 0; k < io->n && !bad; k++)
    bad = pf_tk_buf_put(&all, STR(io, k), io->v[k].len);
  bad = bad || pf_tk_strs_add(tmp, all.p ? all.p : "", all.n);
  pf_tk_buf_free(&all);
  if (!bad) swap_lists(io, tmp);
  return bad;
}

/* Strip: up to `start` leading and `stop` trailing copies of the content char. */
static int dec_strip(const pf_tk_dec *d, pf_tk_pieces *io, pf_tk_pieces *tmp) {
  pf_tk_pieces_reset(tmp);
  char c[4];
  size_t cl = pf_tk_utf8_put(d->cp, c);
  for (size_t k = 0; k < io->n; k++) {
    const char *s = STR(io, k);
    size_t a = 0, b = io->v[k].len;
    for (int i = 0; i < d->start && b - a >= cl && !memcmp(s + a, c, cl); i++)
      a += cl;
    for (int i = 0; i < d->stop && b - a >= cl && !memcmp(s + b - cl, c, cl); i++)
      b -= cl;
    if (pf_tk_strs_add(tmp, s + a, b - a)) return -1;
  }
  swap_lists(io, tmp);
  return 0;
}

/* Metaspace: replacement -> ' ', except that the first token drops it entirely
 * unless prepend_scheme is "never". */
static int dec_metaspace(const pf_tk_dec *d, pf_tk_pieces *io, pf_tk_pieces *tmp) {
  pf_tk_pieces_reset(tmp);
  char r[4];
  size_t rl = pf_tk_utf8_put(d->cp, r);
  pf_tk_buf out = {0};
  int bad = 0;
  for (size_t k = 0; k < io->n && !bad; k++) {
    const char *s = STR(io, k);
    size_t n = io->v[k].len, a = 0;
    out.n = 0;
    for (size_t i = 0; i + rl <= n && !bad;) {
      if (memcmp(s + i, r, rl)) {
        i++;
        continue;
      }
      bad = pf_tk_buf_put(&out, s + a, i - a);
      if (!bad && !(k == 0 && d->prepend != PF_TK_PREPEND_NEVER)) bad = pf_tk_buf_put(&out, " ", 1);
      i += rl;
      a = i;
    }
    bad = bad || pf_tk_buf_put(&out, s + a, n - a) || pf_tk_strs_add(tmp, out.p, out.n);
  }
  pf_tk_buf_free(&out);
  if (!bad) swap_lists(io, tmp);
  return bad;
}

pf_status pf_tk_decode_chain(const pf_tk_dec *d, pf_tk_pieces *io, pf_tk_pieces *tmp, pf_err *err) {
  int bad = 0, fail = 0;
  switch (d->kind) {
  case PF_TK_DEC_BYTELEVEL:
    bad = dec_byte_level(d, io, tmp);
    break;
  case PF_TK_DEC_REPLACE:
    bad = dec_replace(d, io, tmp, &fail);
    break;
  case PF_TK_DEC_BYTE_FALLBACK:
    bad = dec_byte_fallback(io, tmp);
    break;
  case PF_TK_DEC_FUSE:
    bad = dec_fuse(io, tmp);
    break;
  case PF_TK_DEC_STRIP:
    bad = dec_strip(d, io, tmp);
    break;
  case PF_TK_DEC_METASPACE:
    bad = dec_metaspace(d, io, tmp);
    break;
  case PF_TK_DEC_SEQUENCE:
    for (size_t i = 0; i < d->n_kids; i++) {
      pf_status s = pf_tk_decode_chain(d->kids[i], io, tmp, err);
      if (s) return s;
    }
    break;
  }
  if (bad) return pf_err_set(err, PF_ERR_NOMEM, "decoder: out of memory");
  if (fail) return pf_err_set(err, PF_ERR_INVALID, "decoder: regex matching failed");
  return PF_OK;
}

/* ---- parsing ---- */

void pf_tk_dec_free(pf_tk_dec *d) {
  if (!d) return;
  for (size_t i = 0; i < d->n_kids; i++)
    pf_tk_dec_free(d->kids[i]);
  free(d->kids);
  free(d->text);
  pf_tk_regex_free(d->re);
  free(d);
}

static pf_status parse_seq(const cJSON *j, const char *where, const pf_tk_bytemap *bm, pf_tk_dec *d,
                           pf_err *err) {
  const cJSON *arr = pf_tk_jget(j, "decoders");
  if (!cJSON_IsArray(arr))
    return pf_err_set(err, PF_ERR_FORMAT, "%s: missing array \"decoders\"", where);
  size_t n = (size_t)cJSON_GetArraySize(arr), i = 0;
  d->kids = calloc(n ? n : 1, sizeof *d->kids);
  if (!d->kids) return pf_err_set(err, PF_ERR_NOMEM, "%s: out of memory", where);
  for (const cJSON *c = arr->child; c; c = c->next, i++) {
    char w[512];
    snprintf(w, sizeof w, "%s.decoders[%zu]", where, i);
    pf_status s = pf_tk_dec_parse(c, w, bm, &d->kids[i], err);
    if (s) return s;
    d->n_kids = i + 1;
  }
  return PF_OK;
}

static pf_status parse_strip(const cJSON *j, const char *where, pf_tk_dec *d, pf_err *err) {
  const char *c;
  int64_t start, stop;
  pf_status s = pf_tk_jstr(j, "content", where, 1, &c, err);
  if (!s) s = pf_tk_jint(j, "start", where, 0, 1 << 20, 0, &start, err);
  if (!s) s = pf_tk_jint(j, "stop", where, 0, 1 << 20, 0, &stop, err);
  if (s) return s;
  size_t n = strlen(c), i = 0;
  if (n == 0 || pf_tk_utf8_invalid_at(c, n) != SIZE_MAX || (d->cp = pf_tk_utf8_next(c, &i), i != n))
    return pf_err_set(err, PF_ERR_FORMAT, "%s.content: expected one character, got \"%s\"", where,
                      c);
  d->start = (int)start;
  d->stop = (int)stop;
  return PF_OK;
}

pf_status pf_tk_dec_parse(const cJSON *j, const char *where, const pf_tk_bytemap *bm,
                          pf_tk_dec **out, pf_err *err) {
  *out = NULL;
  const char *type, *content = NULL;
  pf_status s = pf_tk_jtype(j, where, &type, err);
  if (s) return s;
  pf_tk_dec *d = calloc(1, sizeof *d);
  if (!d) return pf_err_set(err, PF_ERR_NOMEM, "%s: out of memory", where);
  d->bytemap = bm;
  if (!strcmp(type, "ByteLevel"))
    d->kind = PF_TK_DEC_BYTELEVEL;
  else if (!strcmp(type, "ByteFallback"))
    d->kind = PF_TK_DEC_BYTE_FALLBACK;
  else if (!strcmp(type, "Fuse"))
    d->kind = PF_TK_DEC_FUSE;
  else if (!strcmp(type, "Replace")) {
    d->kind = PF_TK_DEC_REPLACE;
    s = pf_tk_jstr(j, "content", where, 1, &content, err);
    if (!s) s = pf_tk_jpattern(j, "pattern", where, &d->re, err);
    if (!s && !(d->text = strdup(content)))
      s = pf_err_set(err, PF_ERR_NOMEM, "%s: out of memory", where);
    if (!s) d->text_len = strlen(content);
  } else if (!strcmp(type, "Strip")) {
    d->kind = PF_TK_DEC_STRIP;
    s = parse_strip(j, where, d, err);
  } else if (!strcmp(type, "Metaspace")) {
    d->kind = PF_TK_DEC_METASPACE;
    s = pf_tk_metaspace_parse(j, where, &d->cp, &d->prepend, err);
  } else if (!strcmp(type, "Sequence")) {
    d->kind = PF_TK_DEC_SEQUENCE;
    s = parse_seq(j, where, bm, d, err);
  } else {
    s = pf_err_set(err, PF_ERR_UNSUPPORTED, "%s: decoder type \"%s\" is not supported", where,
                   type);
  }
  if (s) {
    pf_tk_dec_free(d);
    return s;
  }
  *out = d;
  return PF_OK;
}
