/* tokenizer_text.c — buffers, UTF-8, the PCRE2 wrapper, JSON helpers, normalizers.
 *
 * HF runs its regexes with Oniguruma; the patterns in real tokenizer.json files
 * (\p{L}, \p{N}, (?i:'s|...), \s+(?!\S)) mean the same in PCRE2 with UTF + UCP, so
 * we compile them unchanged. Like HF, a split runs the regex on one piece at a time
 * (a look-ahead such as \s+(?!\S) sees the end of the piece, not the next piece).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "tokenizer_internal.h"

/* ---- buffers ---- */

int pf_tk_buf_reserve(pf_tk_buf *b, size_t extra) {
  if (b->cap - b->n >= extra) return 0;
  size_t need = b->n + extra, cap = b->cap ? b->cap : 64;
  while (cap < need)
    cap *= 2;
  char *p = realloc(b->p, cap);
  if (!p) return -1;
  b->p = p;
  b->cap = cap;
  return 0;
}

int pf_tk_buf_put(pf_tk_buf *b, const void *s, size_t n) {
  if (pf_tk_buf_reserve(b, n + 1)) return -1;
  if (n) memcpy(b->p + b->n, s, n);
  b->n += n;
  return 0;
}

void pf_tk_buf_free(pf_tk_buf *b) {
  free(b->p);
  b->p = NULL;
  b->n = b->cap = 0;
}

int pf_tk_ids_append(pf_tk_ids *a, const int32_t *ids, size_t n) {
  if (a->cap - a->n < n) {
    size_t cap = a->cap ? a->cap : 64;
    while (cap - a->n < n)
      cap *= 2;
    int32_t *v = realloc(a->v, cap * sizeof *v);
    if (!v) return -1;
    a->v = v;
    a->cap = cap;
  }
  if (n) memcpy(a->v + a->n, ids, n * sizeof *ids);
  a->n += n;
  return 0;
}

int pf_tk_ids_push(pf_tk_ids *a, int32_t id) {
  return pf_tk_ids_append(a, &id, 1);
}

int pf_tk_pieces_add(pf_tk_pieces *p, size_t off, size_t len, int at_start) {
  if (len == 0) return 0; /* HF drops empty splits */
  if (p->n == p->cap) {
    size_t cap = p->cap ? p->cap * 2 : 64;
    pf_tk_piece *v = realloc(p->v, cap * sizeof *v);
    if (!v) return -1;
    p->v = v;
    p->cap = cap;
  }
  p->v[p->n++] = (pf_tk_piece){off, len, at_start};
  return 0;
}

void pf_tk_pieces_reset(pf_tk_pieces *p) {
  p->n = 0;
  p->text.n = 0;
}

void pf_tk_pieces_free(pf_tk_pieces *p) {
  pf_tk_buf_free(&p->text);
  free(p->v);
  p->v = NULL;
  p->n = p->cap = 0;
}

/* ---- UTF-8 ---- */

/* Length of the valid prefix of the sequence at s[i] (1..4 when complete = *full). */
static size_t utf8_prefix(const unsigned char *s, size_t n, size_t i, int *full) {
  unsigned char c = s[i];
  size_t need;
  unsigned char lo = 0x80, hi = 0xBF;
  *full = 0;
  if (c < 0x80) {
    *full = 1;
    return 1;
  }
  if (c >= 0xC2 && c <= 0xDF)
    need = 2;
  else if (c >= 0xE0 && c <= 0xEF) {
    need = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    need = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else
    return 0;
  size_t k = 1;
  for (; k < need; k++) {
    if (i + k >= n) return k;
    unsigned char d = s[i + k];
    if (k == 1 ? (d < lo || d > hi) : (d < 0x80 || d > 0xBF)) return k;
  }
  *full = 1;
  return need;
}

size_t pf_tk_utf8_invalid_at(const char *s, size_t n) {
  const unsigned char *u = (const unsigned char *)s;
  size_t i = 0;
  while (i < n) {
    /* ASCII fast path, 8 bytes at a time */
    while (i + 8 <= n) {
      uint64_t w;
      memcpy(&w, u + i, 8);
      if (w & 0x8080808080808080ull) break;
      i += 8;
    }
    if (i >= n) break;
    int full;
    size_t k = utf8_prefix(u, n, i, &full);
    if (!full) return i;
    i += k;
  }
  return SIZE_MAX;
}

uint32_t pf_tk_utf8_next(const char *s, size_t *i) {
  const unsigned char *u = (const unsigned char *)s + *i;
  uint32_t c = u[0];
  if (c < 0x80) {
    *i += 1;
    return c;
  }
  if (c < 0xE0) {
    *i += 2;
    return ((c & 0x1F) << 6) | (u[1] & 0x3F);
  }
  if (c < 0xF0) {
    *i += 3;
    return ((c & 0x0F) << 12) | ((uint32_t)(u[1] & 0x3F) << 6) | (u[2] & 0x3F);
  }
  *i += 4;
  return ((c & 0x07) << 18) | ((uint32_t)(u[1] & 0x3F) << 12) | ((uint32_t)(u[2] & 0x3F) << 6) |
         (u[3] & 0x3F);
}

size_t pf_tk_utf8_put(uint32_t cp, char *out) {
  unsigned char *o = (unsigned char *)out;
  if (cp < 0x80) {
    o[0] = (unsigned char)cp;
    return 1;
  }
  if (cp < 0x800) {
    o[0] = (unsigned char)(0xC0 | (cp >> 6));
    o[1] = (unsigned char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    o[0] = (unsigned char)(0xE0 | (cp >> 12));
    o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[2] = (unsigned char)(0x80 | (cp & 0x3F));
    return 3;
  }
  o[0] = (unsigned char)(0xF0 | (cp >> 18));
  o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
  o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
  o[3] = (unsigned char)(0x80 | (cp & 0x3F));
  return 4;
}

int pf_tk_utf8_lossy(pf_tk_buf *b, const char *s, size_t n) {
  const unsigned char *u = (const unsigned char *)s;
  size_t i = 0;
  if (pf_tk_buf_reserve(b, n + 1)) return -1;
  while (i < n) {
    int full;
    size_t k = utf8_prefix(u, n, i, &full);
    if (full) {
      if (pf_tk_buf_put(b, s + i, k)) return -1;
      i += k;
    } else {
      if (pf_tk_buf_put(b, "\xEF\xBF\xBD", 3)) return -1;
      i += k ? k : 1;
    }
  }
  return 0;
}

int pf_tk_is_whitespace(uint32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
         c == 0x3000;
}

void pf_tk_bytemap_init(pf_tk_bytemap *m) {
  /* bytes_to_unicode(): printable Latin-1 bytes stand for themselves, the other 68
   * bytes take the code points 256, 257, ... in byte order. */
  uint32_t next = 256;
  for (size_t i = 0; i < 324; i++)
    m->dec[i] = -1;
  for (uint32_t b = 0; b < 256; b++) {
    int keep = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    uint32_t cp = keep ? b : next++;
    m->enc_len[b] = (uint8_t)pf_tk_utf8_put(cp, m->enc[b]);
    m->dec[cp] = (int16_t)b;
  }
}

uint64_t pf_tk_hash(const void *p, size_t n) {
  /* 64-bit multiply-xorshift over 8-byte words; quality is plenty for hash tables. */
  const unsigned char *s = p;
  uint64_t h = 0x9E3779B97F4A7C15ull ^ (n * 0xC2B2AE3D27D4EB4Full);
  while (n >= 8) {
    uint64_t w;
    memcpy(&w, s, 8);
    h = (h ^ (w * 0xFF51AFD7ED558CCDull)) * 0xC4CEB9FE1A85EC53ull;
    h ^= h >> 29;
    s += 8;
    n -= 8;
  }
  uint64_t w = 0;
  if (n) memcpy(&w, s, n);
  h = (h ^ (w * 0xFF51AFD7ED558CCDull)) * 0xC4CEB9FE1A85EC53ull;
  h ^= h >> 32;
  return h;
}

/* ---- regex ---- */

pf_status pf_tk_regex_compile(const char *pattern, size_t len, int literal, const char *where,
                              pf_tk_regex **out, pf_err *err) {
  *out = NULL;
  if (len > PF_TOKENIZER_MAX_REGEX_BYTES)
    return pf_err_set(err, PF_ERR_INVALID, "%s: pattern of %zu bytes, the limit is %zu", where, len,
                      PF_TOKENIZER_MAX_REGEX_BYTES);
  pf_tk_regex *re = calloc(1, sizeof *re);
  if (!re) return pf_err_set(err, PF_ERR_NOMEM, "%s: out of memory", where);
  int code;
  PCRE2_SIZE off;
  /* PCRE2_LITERAL admits only a few options; UCP changes nothing for a literal.
   * NEVER_BACKSLASH_C: \C matches one byte and could split a UTF-8 character,
   * leaving pieces that are not UTF-8 for the next PCRE2_NO_UTF_CHECK match and
   * the BPE (Oniguruma, which HF uses, has no such escape either). */
  uint32_t opts = PCRE2_UTF | (literal ? PCRE2_LITERAL : PCRE2_UCP | PCRE2_NEVER_BACKSLASH_C);
  re->code = pcre2_compile((PCRE2_SPTR)pattern, len, opts, &code, &off, NULL);
  if (!re->code) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(code, msg, sizeof msg);
    pf_tk_regex_free(re);
    if (code == PCRE2_ERROR_HEAP_FAILED || code == PCRE2_ERROR_NOMEMORY)
      return pf_err_set(err, PF_ERR_NOMEM, "%s: out of memory while compiling a regex: %s", where,
                        (const char *)msg);
    return pf_err_set(err, PF_ERR_FORMAT, "%s: bad regex at offset %zu: %s", where, (size_t)off,
                      (const char *)msg);
  }
  /* JIT is an optimisation only: when it is unavailable pcre2_match interprets. */
  if (pcre2_jit_compile(re->code, PCRE2_JIT_COMPLETE) == 0) {
    re->stack = pcre2_jit_stack_create(32 * 1024, 1024 * 1024, NULL);
    re->mctx = pcre2_match_context_create(NULL);
    if (re->stack && re->mctx) pcre2_jit_stack_assign(re->mctx, NULL, re->stack);
  }
  re->md = pcre2_match_data_create_from_pattern(re->code, NULL);
  if (!re->md) {
    pf_tk_regex_free(re);
    return pf_err_set(err, PF_ERR_NOMEM, "%s: out of memory", where);
  }
  *out = re;
  return PF_OK;
}

void pf_tk_regex_free(pf_tk_regex *re) {
  if (!re) return;
  pcre2_match_data_free(re->md);
  pcre2_match_context_free(re->mctx);
  pcre2_jit_stack_free(re->stack);
  pcre2_code_free(re->code);
  free(re);
}

int pf_tk_regex_find(const pf_tk_regex *re, pcre2_match_data *md, pcre2_match_context *mctx,
                     const char *s, size_t n, size_t from, size_t *ms, size_t *me) {
  while (from <= n) {
    int rc = pcre2_match(re->code, (PCRE2_SPTR)s, n, from, PCRE2_NO_UTF_CHECK, md, mctx);
    if (rc == PCRE2_ERROR_NOMATCH) return 0;
    if (rc < 0) return -1;
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
    if (ov[1] > ov[0]) {
      *ms = ov[0];
      *me = ov[1];
      return 1;
    }
    /* An empty match yields an empty split, which HF drops: move one char on. */
    if (ov[0] >= n) return 0;
    from = ov[0] + pf_tk_utf8_len((unsigned char)s[ov[0]]);
  }
  return 0;
}

int pf_tk_regex_next(pf_tk_regex *re, const char *s, size_t n, size_t from, size_t *ms,
                     size_t *me) {
  return pf_tk_regex_find(re, re->md, re->mctx, s, n, from, ms, me);
}

/* ---- JSON helpers ---- */

const cJSON *pf_tk_jget(const cJSON *o, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  return (v && !cJSON_IsNull(v)) ? v : NULL;
}

static const char *jkind(const cJSON *v) {
  if (cJSON_IsString(v)) return "a string";
  if (cJSON_IsNumber(v)) return "a number";
  if (cJSON_IsBool(v)) return "a boolean";
  if (cJSON_IsArray(v)) return "an array";
  if (cJSON_IsObject(v)) return "an object";
  return "null";
}

pf_status pf_tk_jstr(const cJSON *o, const char *key, const char *where, int required,
                     const char **out, pf_err *err) {
  const cJSON *v = pf_tk_jget(o, key);
  *out = NULL;
  if (!v) {
    if (required) return pf_err_set(err, PF_ERR_FORMAT, "%s: missing key \"%s\"", where, key);
    return PF_OK;
  }
  if (!cJSON_IsString(v))
    return pf_err_set(err, PF_ERR_FORMAT, "%s.%s: expected a string, got %s", where, key, jkind(v));
  *out = v->valuestring;
  return PF_OK;
}

pf_status pf_tk_jbool(const cJSON *o, const char *key, const char *where, int def, int *out,
                      pf_err *err) {
  const cJSON *v = pf_tk_jget(o, key);
  *out = def;
  if (!v) return PF_OK;
  if (!cJSON_IsBool(v))
    return pf_err_set(err, PF_ERR_FORMAT, "%s.%s: expected true or false, got %s", where, key,
                      jkind(v));
  *out = cJSON_IsTrue(v);
  return PF_OK;
}

pf_status pf_tk_jint(const cJSON *o, const char *key, const char *where, int64_t lo, int64_t hi,
                     int64_t def, int64_t *out, pf_err *err) {
  const cJSON *v = pf_tk_jget(o, key);
  *out = def;
  if (!v) return PF_OK;
  double d = cJSON_IsNumber(v) ? v->valuedouble : 0;
  /* range first: converting a double outside int64_t to an integer is undefined */
  if (!cJSON_IsNumber(v) || !(d >= (double)lo && d <= (double)hi) || d != (double)(int64_t)d)
    return pf_err_set(err, PF_ERR_FORMAT, "%s.%s: expected an integer in [%lld, %lld], got %s",
                      where, key, (long long)lo, (long long)hi,
                      cJSON_IsNumber(v) ? "an out-of-range number" : jkind(v));
  *out = (int64_t)d;
  return PF_OK;
}

pf_status pf_tk_jtype(const cJSON *o, const char *where, const char **out, pf_err *err) {
  *out = NULL;
  if (!cJSON_IsObject(o))
    return pf_err_set(err, PF_ERR_FORMAT, "%s: expected an object, got %s", where, jkind(o));
  return pf_tk_jstr(o, "type", where, 1, out, err);
}

pf_status pf_tk_jpattern(const cJSON *o, const char *key, const char *where, pf_tk_regex **out,
                         pf_err *err) {
  char w[512];
  snprintf(w, sizeof w, "%s.%s", where, key);
  *out = NULL;
  const cJSON *p = pf_tk_jget(o, key);
  if (!p) return pf_err_set(err, PF_ERR_FORMAT, "%s: missing key \"%s\"", where, key);
  const cJSON *s = cJSON_GetObjectItemCaseSensitive(p, "String");
  const cJSON *r = cJSON_GetObjectItemCaseSensitive(p, "Regex");
  if (cJSON_IsString(s))
    return pf_tk_regex_compile(s->valuestring, strlen(s->valuestring), 1, w, out, err);
  if (cJSON_IsString(r))
    return pf_tk_regex_compile(r->valuestring, strlen(r->valuestring), 0, w, out, err);
  return pf_err_set(err, PF_ERR_FORMAT, "%s: expected {\"String\": ...} or {\"Regex\": ...}", w);
}

/* ---- normalizers ---- */

static char *dup_n(const char *s, size_t n) {
  char *d = malloc(n + 1);
  if (d) {
    memcpy(d, s, n);
    d[n] = 0;
  }
  return d;
}

void pf_tk_norm_free(pf_tk_norm *nz) {
  if (!nz) return;
  for (size_t i = 0; i < nz->n_kids; i++)
    pf_tk_norm_free(nz->kids[i]);
  free(nz->kids);
  free(nz->text);
  pf_tk_regex_free(nz->re);
  free(nz);
}

static pf_status norm_parse_seq(const cJSON *j, const char *where, pf_tk_norm *nz, pf_err *err) {
  const cJSON *arr = pf_tk_jget(j, "normalizers");
  if (!cJSON_IsArray(arr))
    return pf_err_set(err, PF_ERR_FORMAT, "%s: missing array \"normalizers\"", where);
  size_t n = (size_t)cJSON_GetArraySize(arr);
  nz->kids = calloc(n ? n : 1, sizeof *nz->kids);
  if (!nz->kids) return pf_err_set(err, PF_ERR_NOMEM, "%s: out of memory", where);
  size_t i = 0;
  for (const cJSON *c = arr->child; c; c = c->next, i++) {
    char w[512];
    snprintf(w, sizeof w, "%s.normalizers[%zu]", where, i);
    pf_status s = pf_tk_norm_parse(c, w, &nz->kids[i], err);
    if (s) return s;
    nz->n_kids = i + 1;
  }
  return PF_OK;
}

pf_status pf_tk_norm_parse(const cJSON *j, const char *where, pf_tk_norm **out, pf_err *err) {
  *out = NULL;
  const char *type;
  pf_status s = pf_tk_jtype(j, where, &type, err);
  if (s) return s;
  pf_tk_norm *nz = calloc(1, sizeof *nz);
  if (!nz) return pf_err_set(err, PF_ERR_NOMEM, "%s: out of memory", where);
  const char *str = NULL;
  if (!strcmp(type, "NFC"))
    nz->kind = PF_TK_NFC;
  else if (!strcmp(type, "NFD"))
    nz->kind = PF_TK_NFD;
  else if (!strcmp(type, "NFKC"))
    nz->kind = PF_TK_NFKC;
  else if (!strcmp(type, "NFKD"))
    nz->kind = PF_TK_NFKD;
  else if (!strcmp(type, "Lowercase"))
    nz->kind = PF_TK_LOWERCASE;
  else if (!strcmp(type, "StripAccents"))
    nz->kind = PF_TK_STRIP_ACCENTS;
  else if (!strcmp(type, "Prepend")) {
    nz->kind = PF_TK_PREPEND;
    s = pf_tk_jstr(j, "prepend", where, 1, &str, err);
  } else if (!strcmp(type, "Replace")) {
    nz->kind = PF_TK_REPLACE;
    s = pf_tk_jstr(j, "content", where, 1, &str, err);
    if (!s) s = pf_tk_jpattern(j, "pattern", where, &nz->re, err);
  } else if (!strcmp(type, "Strip")) {
    nz->kind = PF_TK_STRIP;
    s = pf_tk_jbool(j, "strip_left", where, 1, &nz->left, err);
    if (!s) s = pf_tk_jbool(j, "strip_right", where, 1, &nz->right, err);
  } else if (!strcmp(type, "Sequence")) {
    nz->kind = PF_TK_NORM_SEQUENCE;
    s = norm_parse_seq(j, where, nz, err);
  } else {
    s = pf_err_set(err, PF_ERR_UNSUPPORTED, "%s: normalizer type \"%s\" is not supported", where,
                   type);
  }
  if (!s && str) {
    nz->text_len = strlen(str);
    nz->text = dup_n(str, nz->text_len);
    if (!nz->text) s = pf_err_set(err, PF_ERR_NOMEM, "%s: out of memory", where);
  }
  if (s) {
    pf_tk_norm_free(nz);
    return s;
  }
  *out = nz;
  return PF_OK;
}

static int is_ascii(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)s[i] >= 0x80) return 0;
  return 1;
}

static pf_status norm_unicode(pf_tk_norm_kind k, const char *s, size_t n, pf_tk_buf *out,
                              pf_err *err) {
  out->n = 0;
  if (is_ascii(s, n)) /* ASCII is invariant under all four forms */
    return pf_tk_buf_put(out, s, n) ? pf_err_set(err, PF_ERR_NOMEM, "normalizer: out of memory")
                                    : PF_OK;
  int opt = UTF8PROC_STABLE;
  if (k == PF_TK_NFC || k == PF_TK_NFKC)
    opt |= UTF8PROC_COMPOSE;
  else
    opt |= UTF8PROC_DECOMPOSE;
  if (k == PF_TK_NFKC || k == PF_TK_NFKD) opt |= UTF8PROC_COMPAT;
  utf8proc_uint8_t *dst = NULL;
  utf8proc_ssize_t r =
      utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &dst, (utf8proc_option_t)opt);
  if (r < 0) {
    free(dst);
    return pf_err_set(err, r == UTF8PROC_ERROR_NOMEM ? PF_ERR_NOMEM : PF_ERR_INVALID,
                      "normalizer: %s", utf8proc_errmsg(r));
  }
  int bad = pf_tk_buf_put(out, dst, (size_t)r);
  free(dst);
  return bad ? pf_err_set(err, PF_ERR_NOMEM, "normalizer: out of memory") : PF_OK;
}

/* Rust str::to_lowercase, except the final-sigma rule (Σ always becomes σ). */
static int norm_lower(const char *s, size_t n, pf_tk_buf *out) {
  out->n = 0;
  if (pf_tk_buf_reserve(out, n + 8)) return -1;
  size_t i = 0;
  while (i < n) {
    uint32_t c = pf_tk_utf8_next(s, &i);
    char tmp[8];
    size_t k;
    if (c < 0x80) {
      tmp[0] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
      k = 1;
    } else if (c == 0x130) { /* İ -> i + combining dot above */
      k = pf_tk_utf8_put('i', tmp);
      k += pf_tk_utf8_put(0x307, tmp + k);
    } else {
      k = pf_tk_utf8_put((uint32_t)utf8proc_tolower((utf8proc_int32_t)c), tmp);
    }
    if (pf_tk_buf_put(out, tmp, k)) return -1;
  }
  return 0;
}

static int norm_replace(const pf_tk_norm *nz, const char *s, size_t n, pf_tk_buf *out, int *fail) {
  out->n = 0;
  size_t pos = 0, ms, me;
  int r;
  while ((r = pf_tk_regex_next(nz->re, s, n, pos, &ms, &me)) == 1) {
    if (pf_tk_buf_put(out, s + pos, ms - pos) || pf_tk_buf_put(out, nz->text, nz->text_len))
      return -1;
    pos = me;
  }
  if (r < 0) *fail = 1;
  return pf_tk_buf_put(out, s + pos, n - pos);
}

static int norm_filter(const pf_tk_norm *nz, const char *s, size_t n, pf_tk_buf *out,
                       int *at_start) {
  out->n = 0;
  if (nz->kind == PF_TK_STRIP) {
    size_t a = 0, b = n, i = 0;
    if (nz->left) {
      while (i < n) {
        size_t j = i;
        if (!pf_tk_is_whitespace(pf_tk_utf8_next(s, &j))) break;
        i = j;
      }
      a = i;
      if (a > 0) *at_start = 0;
    }
    if (nz->right) {
      size_t last_ns = a; /* end of the last non-whitespace char */
      for (i = a; i < n;) {
        uint32_t c = pf_tk_utf8_next(s, &i);
        if (!pf_tk_is_whitespace(c)) last_ns = i;
      }
      b = last_ns;
    }
    return pf_tk_buf_put(out, s + a, b - a);
  }
  /* StripAccents: drop combining marks */
  if (pf_tk_buf_reserve(out, n + 1)) return -1;
  for (size_t i = 0; i < n;) {
    size_t j = i;
    uint32_t c = pf_tk_utf8_next(s, &j);
    utf8proc_category_t cat = utf8proc_category((utf8proc_int32_t)c);
    if (cat != UTF8PROC_CATEGORY_MN && cat != UTF8PROC_CATEGORY_MC && cat != UTF8PROC_CATEGORY_ME)
      pf_tk_buf_put(out, s + i, j - i);
    i = j;
  }
  return 0;
}

pf_status pf_tk_normalize(const pf_tk_norm *nz, const char *s, size_t n, pf_tk_buf *out,
                          int *at_start, pf_err *err) {
  int fail = 0, bad = 0;
  switch (nz->kind) {
  case PF_TK_NFC:
  case PF_TK_NFD:
  case PF_TK_NFKC:
  case PF_TK_NFKD:
    return norm_unicode(nz->kind, s, n, out, err);
  case PF_TK_LOWERCASE:
    bad = norm_lower(s, n, out);
    break;
  case PF_TK_PREPEND:
    out->n = 0;
    if (n > 0) bad = pf_tk_buf_put(out, nz->text, nz->text_len);
    bad = bad || pf_tk_buf_put(out, s, n);
    break;
  case PF_TK_REPLACE:
    bad = norm_replace(nz, s, n, out, &fail);
    break;
  case PF_TK_STRIP:
  case PF_TK_STRIP_ACCENTS:
    bad = norm_filter(nz, s, n, out, at_start);
    break;
  case PF_TK_NORM_SEQUENCE: {
    pf_tk_buf cur = {0};
    out->n = 0;
    bad = pf_tk_buf_put(out, s, n);
    for (size_t i = 0; i < nz->n_kids && !bad; i++) {
      pf_status st = pf_tk_normalize(nz->kids[i], out->p, out->n, &cur, at_start, err);
      if (st) {
        pf_tk_buf_free(&cur);
        return st;
      }
      pf_tk_buf t = *out;
      *out = cur;
      cur = t;
    }
    pf_tk_buf_free(&cur);
    break;
  }
  }
  if (bad) return pf_err_set(err, PF_ERR_NOMEM, "normalizer: out of memory");
  if (fail) return pf_err_set(err, PF_ERR_INVALID, "normalizer: regex matching failed");
  return PF_OK;
}
