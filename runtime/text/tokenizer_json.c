/* tokenizer_json.c — reading model.vocab and model.merges straight from the text.
 *
 * cJSON makes a node (and a string) for every value: Gemma 3's 33 MB tokenizer.json
 * (262144 vocabulary entries, 514906 merges written as pairs) costs ~2.5 million
 * allocations that way, most of its load time. These two members have a fixed
 * shape, so pf_tk_fastjson_make finds them (the first "model" member of the
 * top-level object, its first "vocab" and first "merges", as cJSON's lookups would)
 * and checks that they are what the readers below take: an object of
 * "string": integer, and an array of strings or of ["string", "string"]. cJSON then
 * parses a copy of the file with those two values emptied ({} and []), and the BPE
 * loader reads them from the text with pf_tk_fast_vocab_next / pf_tk_fast_merge_next.
 *
 * The check follows cJSON's own rules (whitespace is any byte <= 32, where a string
 * ends, how escapes decode) and accepts a subset of what cJSON accepts. Whatever it
 * does not take (another shape, a key with an escape on the way, \u0000, a lone
 * surrogate, a number that is not a plain integer below PF_TOKENIZER_MAX_VOCAB) is
 * left in the copy for cJSON, or the whole file goes the plain cJSON way, so a file
 * loads to the same tokenizer, or fails with the same message, either way.
 */
#include <stdlib.h>
#include <string.h>

#include "tokenizer_internal.h"

typedef struct scan {
  const char *p, *e;
} scan;

static void ws(scan *s) {
  while (s->p < s->e && (unsigned char)*s->p <= 32)
    s->p++;
}

static int at(const scan *s, char c) {
  return s->p < s->e && *s->p == c;
}

/* cJSON's parse_hex4: 0 for a digit that is not hex. */
static uint32_t hex4(const char *p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; i++) {
    char c = p[i];
    uint32_t d = c >= '0' && c <= '9'   ? (uint32_t)(c - '0')
                 : c >= 'a' && c <= 'f' ? (uint32_t)(c - 'a' + 10)
                 : c >= 'A' && c <= 'F' ? (uint32_t)(c - 'A' + 10)
                                        : 99;
    if (d == 99) return 0;
    v = v * 16 + d;
  }
  return v;
}

/* The \u escape at p (or a surrogate pair), before the closing quote q: the code
 * point and *len; 0 when cJSON fails on it or decodes it to U+0000. */
static uint32_t u_escape(const char *p, const char *q, size_t *len) {
  if (q - p < 6) return 0;
  uint32_t a = hex4(p + 2);
  if (a >= 0xDC00 && a <= 0xDFFF) return 0;
  if (a >= 0xD800 && a <= 0xDBFF) {
    if (q - (p + 6) < 6 || p[6] != '\\' || p[7] != 'u') return 0;
    uint32_t b = hex4(p + 8);
    if (b < 0xDC00 || b > 0xDFFF) return 0;
    *len = 12;
    return 0x10000 + (((a & 0x3FF) << 10) | (b & 0x3FF));
  }
  *len = 6;
  return a;
}

/* Past the string at s->p ('"'), finding its end as cJSON does; 0 if it has none. */
static int str_end(scan *s) {
  const char *q = s->p + 1;
  while (q < s->e && *q != '"') {
    if (*q == '\\' && ++q >= s->e) return 0;
    q++;
  }
  if (q >= s->e) return 0;
  s->p = q + 1;
  return 1;
}

/* A string the readers take: past it with *bytes its decoded length; 0 for one
 * left to cJSON (no end, an escape cJSON refuses, \u0000, a raw NUL byte). */
static int str_check(scan *s, size_t *bytes) {
  const char *p = s->p + 1;
  if (!str_end(s)) return 0;
  const char *q = s->p - 1;
  size_t n = 0, len;
  while (p < q) {
    if (*p == 0) return 0;
    if (*p != '\\') {
      n++;
      p++;
      continue;
    }
    char tmp[4];
    uint32_t cp;
    switch (p[1]) {
    case 'b':
    case 'f':
    case 'n':
    case 'r':
    case 't':
    case '"':
    case '\\':
    case '/':
      n++;
      p += 2;
      break;
    case 'u':
      if (!(cp = u_escape(p, q, &len))) return 0;
      n += pf_tk_utf8_put(cp, tmp);
      p += len;
      break;
    default:
      return 0;
    }
  }
  *bytes = n;
  return 1;
}

/* Decode the checked string at s->p into out (room for its bytes); past it. */
static size_t str_decode(scan *s, char *out) {
  const char *p = s->p + 1;
  size_t n = 0, len;
  while (*p != '"') {
    if (*p != '\\') {
      out[n++] = *p++;
      continue;
    }
    static const char from[] = "bfnrt\"\\/", to[] = "\b\f\n\r\t\"\\/";
    const char *k = strchr(from, p[1]);
    if (p[1] != 'u' && k) {
      out[n++] = to[k - from];
      p += 2;
    } else {
      n += pf_tk_utf8_put(u_escape(p, s->e, &len), out + n);
      p += len;
    }
  }
  s->p = p + 1;
  return n;
}

/* A vocabulary id: digits that cJSON reads as a whole number below the limit. */
static int small_id(scan *s, int32_t *id) {
  int64_t v = 0;
  const char *p = s->p;
  while (p < s->e && *p >= '0' && *p <= '9' && p - s->p < 10)
    v = v * 10 + (*p++ - '0');
  if (p == s->p || v >= PF_TOKENIZER_MAX_VOCAB) return 0;
  if (p < s->e && strchr("0123456789+-.eE", *p) && *p) return 0;
  *id = (int32_t)v;
  s->p = p;
  return 1;
}

/* {"key": id, ...}: entries and key bytes (+ 1 each for the NUL). */
static int vocab_check(scan *s, size_t *n, size_t *bytes) {
  s->p++;
  ws(s);
  if (at(s, '}')) {
    s->p++;
    return 1;
  }
  for (;;) {
    size_t kb;
    int32_t id;
    if (!at(s, '"') || !str_check(s, &kb)) return 0;
    ws(s);
    if (!at(s, ':')) return 0;
    s->p++;
    ws(s);
    if (!small_id(s, &id)) return 0;
    ws(s);
    ++*n;
    *bytes += kb + 1;
    if (at(s, '}')) {
      s->p++;
      return 1;
    }
    if (!at(s, ',')) return 0;
    s->p++;
    ws(s);
  }
}

/* ["a b", ...] or [["a", "b"], ...]: the entry count. */
static int merges_check(scan *s, size_t *n) {
  s->p++;
  ws(s);
  if (at(s, ']')) {
    s->p++;
    return 1;
  }
  for (;;) {
    size_t b;
    if (at(s, '[')) {
      s->p++;
      ws(s);
      if (!at(s, '"') || !str_check(s, &b)) return 0;
      ws(s);
      if (!at(s, ',')) return 0;
      s->p++;
      ws(s);
      if (!at(s, '"') || !str_check(s, &b)) return 0;
      ws(s);
      if (!at(s, ']')) return 0;
      s->p++;
    } else if (!at(s, '"') || !str_check(s, &b))
      return 0;
    ws(s);
    ++*n;
    if (at(s, ']')) {
      s->p++;
      return 1;
    }
    if (!at(s, ',')) return 0;
    s->p++;
    ws(s);
  }
}

/* Past any value (only where it ends matters: cJSON checks the rest). */
static int skip_value(scan *s) {
  size_t depth = 0;
  ws(s);
  if (s->p < s->e && *s->p != '"' && *s->p != '{' && *s->p != '[') { /* a number or literal */
    while (s->p < s->e && (unsigned char)*s->p > 32 && !strchr(",}]", *s->p))
      s->p++;
    return 1;
  }
  do {
    ws(s);
    if (s->p >= s->e) return 0;
    char c = *s->p;
    if (c == '"') {
      if (!str_end(s)) return 0;
    } else if (c == '{' || c == '[') {
      depth++;
      s->p++;
    } else if (c == '}' || c == ']') {
      if (!depth) return 0;
      depth--;
      s->p++;
    } else
      s->p++;
  } while (depth);
  return 1;
}

/* The key at s->p and the ':' after it; *k / *kl its raw text. 0 for a key with
 * an escape (it could spell "model" or "vocab"), or a malformed member. */
static int member_key(scan *s, const char **k, size_t *kl) {
  if (!at(s, '"')) return 0;
  *k = s->p + 1;
  if (!str_end(s)) return 0;
  *kl = (size_t)(s->p - 1 - *k);
  if (memchr(*k, '\\', *kl)) return 0;
  ws(s);
  if (!at(s, ':')) return 0;
  s->p++;
  ws(s);
  return 1;
}

static int key_is(const char *k, size_t kl, const char *name) {
  return kl == strlen(name) && !memcmp(k, name, kl);
}

static int model_members(scan *s, pf_tk_fastjson *fj) {
  int seen_vocab = 0, seen_merges = 0;
  s->p++;
  ws(s);
  if (at(s, '}')) return 1;
  for (;;) {
    const char *k, *v;
    size_t kl;
    if (!member_key(s, &k, &kl)) return 0;
    v = s->p;
    scan t = *s;
    if (key_is(k, kl, "vocab") && !seen_vocab++ && at(s, '{') &&
        vocab_check(&t, &fj->n_vocab, &fj->vocab_bytes)) {
      fj->vocab = v;
      fj->vocab_n = (size_t)(t.p - v);
      *s = t;
    } else if (key_is(k, kl, "merges") && !seen_merges++ && at(s, '[') &&
               merges_check(&t, &fj->n_merges)) {
      fj->merges = v;
      fj->merges_n = (size_t)(t.p - v);
      *s = t;
    } else if (!skip_value(s))
      return 0;
    ws(s);
    if (at(s, '}')) return 1;
    if (!at(s, ',')) return 0;
    s->p++;
    ws(s);
  }
}

/* buf with the taken values replaced by {} / []. */
static int make_stripped(const char *buf, size_t n, pf_tk_fastjson *fj) {
  const char *cut[2][2] = {{fj->vocab, fj->vocab ? fj->vocab + fj->vocab_n : NULL},
                           {fj->merges, fj->merges ? fj->merges + fj->merges_n : NULL}};
  const char *rep[2] = {"{}", "[]"};
  int first = !fj->vocab || (fj->merges && fj->merges < fj->vocab);
  char *o = malloc(n + 5);
  if (!o) return -1;
  const char *p = buf;
  size_t m = 0;
  for (int i = 0; i < 2; i++) {
    int w = i == 0 ? first : !first;
    if (!cut[w][0]) continue;
    memcpy(o + m, p, (size_t)(cut[w][0] - p));
    m += (size_t)(cut[w][0] - p);
    memcpy(o + m, rep[w], 2);
    m += 2;
    p = cut[w][1];
  }
  memcpy(o + m, p, (size_t)(buf + n - p));
  m += (size_t)(buf + n - p);
  o[m] = 0;
  fj->stripped = o;
  fj->stripped_n = m;
  return 1;
}

int pf_tk_fastjson_make(const char *buf, size_t n, pf_tk_fastjson *fj) {
  memset(fj, 0, sizeof *fj);
  scan s = {buf, buf + n};
  if (n >= 3 && !memcmp(buf, "\xEF\xBB\xBF", 3)) s.p += 3; /* cJSON skips a BOM */
  ws(&s);
  if (!at(&s, '{')) return 0;
  s.p++;
  ws(&s);
  for (;;) {
    const char *k;
    size_t kl;
    if (!member_key(&s, &k, &kl)) return 0;
    if (key_is(k, kl, "model")) {
      if (!at(&s, '{') || !model_members(&s, fj) || (!fj->vocab && !fj->merges)) {
        memset(fj, 0, sizeof *fj);
        return 0;
      }
      return make_stripped(buf, n, fj);
    }
    if (!skip_value(&s)) return 0;
    ws(&s);
    if (!at(&s, ',')) return 0;
    s.p++;
    ws(&s);
  }
}

void pf_tk_fastjson_free(pf_tk_fastjson *fj) {
  free(fj->stripped);
  memset(fj, 0, sizeof *fj);
}

/* ---- the readers (on text pf_tk_fastjson_make has checked) ---- */

void pf_tk_fast_begin(pf_tk_jcur *c, const char *text, size_t n) {
  c->p = text + 1; /* past '{' or '[' */
  c->e = text + n;
}

int pf_tk_fast_vocab_next(pf_tk_jcur *c, char *out, size_t *len, int32_t *id) {
  scan s = {c->p, c->e};
  ws(&s);
  if (at(&s, ',')) {
    s.p++;
    ws(&s);
  }
  if (at(&s, '}')) return 0;
  *len = str_decode(&s, out);
  out[*len] = 0;
  ws(&s);
  s.p++; /* ':' */
  ws(&s);
  small_id(&s, id);
  c->p = s.p;
  return 1;
}

/* Decode the string at s->p into b, NUL-terminated (its raw length bounds the
 * decoded one: an escape never decodes to more bytes than it has). */
static int take_str(scan *s, pf_tk_buf *b) {
  scan t = *s;
  str_end(&t);
  b->n = 0;
  if (pf_tk_buf_reserve(b, (size_t)(t.p - s->p))) return -1;
  b->n = str_decode(s, b->p);
  b->p[b->n] = 0;
  return 0;
}

int pf_tk_fast_merge_next(pf_tk_jcur *c, pf_tk_buf *a, pf_tk_buf *b, int *pair) {
  scan s = {c->p, c->e};
  ws(&s);
  if (at(&s, ',')) {
    s.p++;
    ws(&s);
  }
  if (at(&s, ']')) return 0;
  *pair = at(&s, '[');
  if (*pair) {
    s.p++;
    ws(&s);
    if (take_str(&s, a)) return -1;
    ws(&s);
    s.p++; /* ',' */
    ws(&s);
    if (take_str(&s, b)) return -1;
    ws(&s);
    s.p++; /* ']' */
  } else if (take_str(&s, a))
    return -1;
  c->p = s.p;
  return 1;
}
