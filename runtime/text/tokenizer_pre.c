/* tokenizer_pre.c — pre-tokenizers: split a normalized segment into pieces.
 *
 * Every splitting pre-tokenizer is HF's NormalizedString::split: the matcher
 * (a regex, or a per-character predicate where each matching character is its own
 * match) turns a piece into alternating (range, is_match) events, `invert` flips
 * is_match, and the behaviour decides which events are kept or merged. The events
 * are streamed, never stored, so a 1 MB segment costs no event array.
 * Transforming steps (ByteLevel's byte-to-char map, Metaspace's space replacement)
 * write a fresh text buffer; pure splits only rewrite the piece list.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "tokenizer_internal.h"

/* The GPT-2 pre-tokenization regex used by ByteLevel when use_regex is true. */
static const char GPT2_PATTERN[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
/* HF Whitespace: keep \w+ and runs of other non-space characters. */
static const char WHITESPACE_PATTERN[] = "\\w+|[^\\w\\s]+";

typedef enum { M_REGEX, M_NUMERIC, M_WHITESPACE, M_CHAR } match_kind;

typedef struct matcher {
  match_kind kind;
  pf_tk_regex *re;
  uint32_t cp;
} matcher;

static int char_matches(const matcher *m, uint32_t c) {
  if (m->kind == M_CHAR) return c == m->cp;
  if (m->kind == M_WHITESPACE) return pf_tk_is_whitespace(c);
  if (c < 0x80) return c >= '0' && c <= '9';
  utf8proc_category_t cat = utf8proc_category((utf8proc_int32_t)c);
  return cat == UTF8PROC_CATEGORY_ND || cat == UTF8PROC_CATEGORY_NL || cat == UTF8PROC_CATEGORY_NO;
}

/* Next match in s[0..n) at or after `from`: 1, 0 (none) or -1 (regex failure). */
static int next_match(const matcher *m, const char *s, size_t n, size_t from, size_t *ms,
                      size_t *me) {
  if (m->kind == M_REGEX) return pf_tk_regex_next(m->re, s, n, from, ms, me);
  for (size_t i = from; i < n;) {
    size_t j = i;
    if (char_matches(m, pf_tk_utf8_next(s, &j))) {
      *ms = i;
      *me = j;
      return 1;
    }
    i = j;
  }
  return 0;
}

/* Streaming state of one piece being split. */
typedef struct splitter {
  pf_tk_pieces *out;
  size_t first;   /* index in out->v of the first piece made from this source piece */
  size_t src_off; /* source piece offset (for at_start) */
  int src_at_start;
  pf_tk_behavior behavior;
  int prev_match; /* MergedWithPrevious / Contiguous */
  int have_pend;  /* MergedWithNext: a match waiting for the following non-match */
  size_t pend_a, pend_b;
} splitter;

static int emit(splitter *sp, size_t a, size_t b) {
  return pf_tk_pieces_add(sp->out, a, b - a, sp->src_at_start && a == sp->src_off);
}

/* One event [a, b) of the source piece (offsets in the shared text). */
static int on_event(splitter *sp, size_t a, size_t b, int is_match) {
  pf_tk_pieces *o = sp->out;
  int have_last = o->n > sp->first;
  switch (sp->behavior) {
  case PF_TK_ISOLATED:
    return emit(sp, a, b);
  case PF_TK_REMOVED:
    return is_match ? 0 : emit(sp, a, b);
  case PF_TK_MERGED_PREV:
  case PF_TK_CONTIGUOUS: {
    int merge = sp->behavior == PF_TK_MERGED_PREV ? (is_match && !sp->prev_match)
                                                  : (is_match == sp->prev_match);
    sp->prev_match = is_match;
    if (merge && have_last) {
      o->v[o->n - 1].len = b - o->v[o->n - 1].off;
      return 0;
    }
    return emit(sp, a, b);
  }
  case PF_TK_MERGED_NEXT:
    if (is_match) {
      int r = sp->have_pend ? emit(sp, sp->pend_a, sp->pend_b) : 0;
      sp->have_pend = 1;
      sp->pend_a = a;
      sp->pend_b = b;
      return r;
    }
    if (sp->have_pend) {
      sp->have_pend = 0;
      return emit(sp, sp->pend_a, b);
    }
    return emit(sp, a, b);
  }
  return 0;
}

/* Split every piece of *io; the new piece list replaces io's (text unchanged). */
static pf_status split_all(pf_tk_pieces *io, pf_tk_pieces *tmp, const matcher *m,
                           pf_tk_behavior behavior, int invert, pf_err *err) {
  tmp->n = 0;
  const char *t = io->text.p;
  int bad = 0;
  for (size_t k = 0; k < io->n && !bad; k++) {
    pf_tk_piece pc = io->v[k];
    splitter sp = {tmp, tmp->n, pc.off, pc.at_start, behavior, 0, 0, 0, 0};
    const char *s = t + pc.off;
    size_t pos = 0, ms, me;
    int r = 0;
    while (!bad && (r = next_match(m, s, pc.len, pos, &ms, &me)) == 1) {
      if (ms > pos) bad = on_event(&sp, pc.off + pos, pc.off + ms, invert);
      if (!bad) bad = on_event(&sp, pc.off + ms, pc.off + me, !invert);
      pos = me;
    }
    if (r < 0) return pf_err_set(err, PF_ERR_INVALID, "pre-tokenizer: regex matching failed");
    if (!bad && pos < pc.len) bad = on_event(&sp, pc.off + pos, pc.off + pc.len, invert);
    if (!bad && sp.have_pend) bad = emit(&sp, sp.pend_a, sp.pend_b);
  }
  if (bad) return pf_err_set(err, PF_ERR_NOMEM, "pre-tokenizer: out of memory");
  /* swap the piece arrays; both keep their own text buffers */
  pf_tk_piece *v = io->v;
  size_t cap = io->cap;
  io->v = tmp->v;
  io->n = tmp->n;
  io->cap = tmp->cap;
  tmp->v = v;
  tmp->cap = cap;
  tmp->n = 0;
  return PF_OK;
}

static void swap_pieces(pf_tk_pieces *a, pf_tk_pieces *b) {
  pf_tk_pieces t = *a;
  *a = *b;
  *b = t;
}

/* ByteLevel: optional " " prefix per piece, optional GPT-2 split, then bytes -> chars. */
static pf_status byte_level(const pf_tk_pre *pt, pf_tk_pieces *io, pf_tk_pieces *tmp, pf_err *err) {
  pf_status s;
  if (pt->add_prefix_space) {
    pf_tk_pieces_reset(tmp);
    for (size_t k = 0; k < io->n; k++) {
      pf_tk_piece pc = io->v[k];
      size_t off = tmp->text.n;
      int need = io->text.p[pc.off] != ' ';
      if ((need && pf_tk_buf_put(&tmp->text, " ", 1)) ||
          pf_tk_buf_put(&tmp->text, io->text.p + pc.off, pc.len) ||
          pf_tk_pieces_add(tmp, off, pc.len + (size_t)need, pc.at_start))
        return pf_err_set(err, PF_ERR_NOMEM, "pre-tokenizer: out of memory");
    }
    swap_pieces(io, tmp);
  }
  if (pt->re) {
    matcher m = {M_REGEX, pt->re, 0};
    if ((s = split_all(io, tmp, &m, PF_TK_ISOLATED, 0, err))) return s;
  }
  pf_tk_pieces_reset(tmp);
  const pf_tk_bytemap *bm = pt->bytemap;
  for (size_t k = 0; k < io->n; k++) {
    pf_tk_piece pc = io->v[k];
    if (pf_tk_buf_reserve(&tmp->text, pc.len * 2 + 1))
      return pf_err_set(err, PF_ERR_NOMEM, "pre-tokenizer: out of memory");
    size_t off = tmp->text.n;
    char *o = tmp->text.p + off;
    const unsigned char *in = (const unsigned char *)io->text.p + pc.off;
    for (size_t i = 0; i < pc.len; i++) {
      o[0] = bm->enc[in[i]][0];
      o[1] = bm->enc[in[i]][1];
      o += bm->enc_len[in[i]];
    }
    tmp->text.n = (size_t)(o - tmp->text.p);
    if (pf_tk_pieces_add(tmp, off, tmp->text.n - off, pc.at_start))
      return pf_err_set(err, PF_ERR_NOMEM, "pre-tokenizer: out of memory");
  }
  swap_pieces(io, tmp);
  return PF_OK;
}

/* Metaspace: ' ' -> replacement, prepend per scheme, optionally split before each
 * replacement char (MergedWithNext). */
static pf_status metaspace(const pf_tk_pre *pt, pf_tk_pieces *io, pf_tk_pieces *tmp, pf_err *err) {
  char rep[4];
  size_t rl = pf_tk_utf8_put(pt->rep, rep);
  pf_tk_pieces_reset(tmp);
  for (size_t k = 0; k < io->n; k++) {
    pf_tk_piece pc = io->v[k];
    const char *s = io->text.p + pc.off;
    size_t off = tmp->text.n;
    int bad = 0;
    int starts_rep = s[0] == ' ' || (pc.len >= rl && !memcmp(s, rep, rl));
    int pre = !starts_rep && (pt->prepend == PF_TK_PREPEND_ALWAYS ||
                              (pt->prepend == PF_TK_PREPEND_FIRST && pc.at_start));
    if (pre) bad = pf_tk_buf_put(&tmp->text, rep, rl);
    size_t a = 0;
    for (size_t i = 0; i < pc.len && !bad; i++) {
      if (s[i] != ' ') continue;
      bad = pf_tk_buf_put(&tmp->text, s + a, i - a) || pf_tk_buf_put(&tmp->text, rep, rl);
      a = i + 1;
    }
    if (bad || pf_tk_buf_put(&tmp->text, s + a, pc.len - a) ||
        pf_tk_pieces_add(tmp, off, tmp->text.n - off, pc.at_start))
      return pf_err_set(err, PF_ERR_NOMEM, "pre-tokenizer: out of memory");
  }
  swap_pieces(io, tmp);
  if (!pt->split) return PF_OK;
  matcher m = {M_CHAR, NULL, pt->rep};
  return split_all(io, tmp, &m, PF_TK_MERGED_NEXT, 0, err);
}

pf_status pf_tk_pretokenize(const pf_tk_pre *pt, pf_tk_pieces *io, pf_tk_pieces *tmp, pf_err *err) {
  matcher m = {M_REGEX, pt->re, 0};
  switch (pt->kind) {
  case PF_TK_PRE_BYTELEVEL:
    return byte_level(pt, io, tmp, err);
  case PF_TK_PRE_METASPACE:
    return metaspace(pt, io, tmp, err);
  case PF_TK_PRE_SPLIT:
    return split_all(io, tmp, &m, pt->behavior, pt->invert, err);
  case PF_TK_PRE_WHITESPACE:
    return split_all(io, tmp, &m, PF_TK_REMOVED, 1, err);
  case PF_TK_PRE_WHITESPACE_SPLIT:
    m.kind = M_WHITESPACE;
    return split_all(io, tmp, &m, PF_TK_REMOVED, 0, err);
  case PF_TK_PRE_DIGITS:
    m.kind = M_NUMERIC;
    return split_all(io, tmp, &m, pt->individual_digits ? PF_TK_ISOLATED : PF_TK_CONTIGUOUS, 0,
                     err);
  case PF_TK_PRE_SEQUENCE:
    for (size_t i = 0; i < pt->n_kids; i++) {
      pf_status s = pf_tk_pretokenize(pt->kids[i], io, tmp, err);
      if (s) return s;
    }
    return PF_OK;
  }
  return PF_OK;
}

/* ---- parsing ---- */

void pf_tk_pre_free(pf_tk_pre *pt) {
  if (!pt) return;
  for (size_t i = 0; i < pt->n_kids; i++)
    pf_tk_pre_free(pt->kids[i]);
  free(pt->kids);
  pf_tk_regex_free(pt->re);
  free(pt);
}

static pf_status parse_behavior(const cJSON *j, const char *where, pf_tk_behavior *out,
                                pf_err *err) {
  static const char *names[] = {"Removed", "Isolated", "MergedWithPrevious", "MergedWithNext",
                                "Contiguous"};
  const char *b;
  pf_status s = pf_tk_jstr(j, "behavior", where, 1, &b, err);
  if (s) return s;
  for (int i = 0; i < 5; i++)
    if (!strcmp(b, names[i])) {
      *out = (pf_tk_behavior)i;
      return PF_OK;
    }
  return pf_err_set(err, PF_ERR_FORMAT,
                    "%s.behavior: expected Removed, Isolated, MergedWithPrevious, MergedWithNext "
                    "or Contiguous, got \"%s\"",
                    where, b);
}

/* The single-character replacement of Metaspace (pre-tokenizer and decoder). */
static pf_status parse_rep(const cJSON *j, const char *where, uint32_t *cp, pf_err *err) {
  const char *r;
  pf_status s = pf_tk_jstr(j, "replacement", where, 0, &r, err);
  if (s) return s;
  if (!r) r = "\xE2\x96\x81"; /* U+2581 */
  size_t n = strlen(r), i = 0;
  if (n == 0 || pf_tk_utf8_invalid_at(r, n) != SIZE_MAX || (*cp = pf_tk_utf8_next(r, &i), i != n))
    return pf_err_set(err, PF_ERR_FORMAT, "%s.replacement: expected one character, got \"%s\"",
                      where, r);
  return PF_OK;
}

pf_status pf_tk_metaspace_parse(const cJSON *j, const char *where, uint32_t *rep,
                                pf_tk_prepend *prepend, pf_err *err) {
  pf_status s = parse_rep(j, where, rep, err);
  if (s) return s;
  const char *scheme;
  if ((s = pf_tk_jstr(j, "prepend_scheme", where, 0, &scheme, err))) return s;
  if (!scheme) { /* older files: add_prefix_space (default true) */
    int aps;
    if ((s = pf_tk_jbool(j, "add_prefix_space", where, 1, &aps, err))) return s;
    *prepend = aps ? PF_TK_PREPEND_ALWAYS : PF_TK_PREPEND_NEVER;
  } else if (!strcmp(scheme, "always"))
    *prepend = PF_TK_PREPEND_ALWAYS;
  else if (!strcmp(scheme, "first"))
    *prepend = PF_TK_PREPEND_FIRST;
  else if (!strcmp(scheme, "never"))
    *prepend = PF_TK_PREPEND_NEVER;
  else
    return pf_err_set(err, PF_ERR_FORMAT,
                      "%s.prepend_scheme: expected always, first or never, got \"%s\"", where,
                      scheme);
  return PF_OK;
}

static pf_status parse_seq(const cJSON *j, const char *where, const pf_tk_bytemap *bm,
                           pf_tk_pre *pt, pf_err *err) {
  const cJSON *arr = pf_tk_jget(j, "pretokenizers");
  if (!cJSON_IsArray(arr))
    return pf_err_set(err, PF_ERR_FORMAT, "%s: missing array \"pretokenizers\"", where);
  size_t n = (size_t)cJSON_GetArraySize(arr), i = 0;
  pt->kids = calloc(n ? n : 1, sizeof *pt->kids);
  if (!pt->kids) return pf_err_set(err, PF_ERR_NOMEM, "%s: out of memory", where);
  for (const cJSON *c = arr->child; c; c = c->next, i++) {
    char w[512];
    snprintf(w, sizeof w, "%s.pretokenizers[%zu]", where, i);
    pf_status s = pf_tk_pre_parse(c, w, bm, &pt->kids[i], err);
    if (s) return s;
    pt->n_kids = i + 1;
  }
  return PF_OK;
}

pf_status pf_tk_pre_parse(const cJSON *j, const char *where, const pf_tk_bytemap *bm,
                          pf_tk_pre **out, pf_err *err) {
  *out = NULL;
  const char *type;
  pf_status s = pf_tk_jtype(j, where, &type, err);
  if (s) return s;
  pf_tk_pre *pt = calloc(1, sizeof *pt);
  if (!pt) return pf_err_set(err, PF_ERR_NOMEM, "%s: out of memory", where);
  pt->bytemap = bm;
  if (!strcmp(type, "ByteLevel")) {
    int use_regex;
    pt->kind = PF_TK_PRE_BYTELEVEL;
    s = pf_tk_jbool(j, "add_prefix_space", where, 1, &pt->add_prefix_space, err);
    if (!s) s = pf_tk_jbool(j, "use_regex", where, 1, &use_regex, err);
    if (!s && use_regex)
      s = pf_tk_regex_compile(GPT2_PATTERN, sizeof GPT2_PATTERN - 1, 0, where, &pt->re, err);
  } else if (!strcmp(type, "Split")) {
    pt->kind = PF_TK_PRE_SPLIT;
    s = parse_behavior(j, where, &pt->behavior, err);
    if (!s) s = pf_tk_jbool(j, "invert", where, 0, &pt->invert, err);
    if (!s) s = pf_tk_jpattern(j, "pattern", where, &pt->re, err);
  } else if (!strcmp(type, "Digits")) {
    pt->kind = PF_TK_PRE_DIGITS;
    s = pf_tk_jbool(j, "individual_digits", where, 0, &pt->individual_digits, err);
  } else if (!strcmp(type, "Metaspace")) {
    pt->kind = PF_TK_PRE_METASPACE;
    s = pf_tk_metaspace_parse(j, where, &pt->rep, &pt->prepend, err);
    if (!s) s = pf_tk_jbool(j, "split", where, 1, &pt->split, err);
  } else if (!strcmp(type, "Whitespace")) {
    pt->kind = PF_TK_PRE_WHITESPACE;
    s = pf_tk_regex_compile(WHITESPACE_PATTERN, sizeof WHITESPACE_PATTERN - 1, 0, where, &pt->re,
                            err);
  } else if (!strcmp(type, "WhitespaceSplit")) {
    pt->kind = PF_TK_PRE_WHITESPACE_SPLIT;
  } else if (!strcmp(type, "Sequence")) {
    pt->kind = PF_TK_PRE_SEQUENCE;
    s = parse_seq(j, where, bm, pt, err);
  } else {
    s = pf_err_set(err, PF_ERR_UNSUPPORTED, "%s: pre-tokenizer type \"%s\" is not supported", where,
                   type);
  }
  if (s) {
    pf_tk_pre_free(pt);
    return s;
  }
  *out = pt;
  return PF_OK;
}
