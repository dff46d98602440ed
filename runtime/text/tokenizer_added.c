/* tokenizer_added.c — added tokens: parsing, the matcher, HF's match rules.
 *
 * HF finds added tokens with Aho-Corasick in MatchKind::LeftmostLongest: the match
 * that starts first wins, and of those the longest. Here the token strings of one
 * pass (raw or normalized) go into a radix trie (chains of one-child nodes folded
 * into one labelled edge, so the trie has at most 2n + 1 nodes however long the
 * tokens are). A search walks the trie from each start position in turn and keeps
 * the deepest token node it passes: the longest token starting there. The root is
 * a 256-entry table, so a byte that starts no token costs one lookup; Gemma's 6415
 * added tokens (6242 of them starting with "<unused") cost a walk of a few nodes
 * per '<' instead of a comparison with every token sharing the first byte.
 * Identical strings: the first in file order wins.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "tokenizer_internal.h"

/* ---- the trie ---- */

typedef struct trie_node {
  const char *lab; /* label of the edge into this node (into a token's match string) */
  uint32_t lab_len;
  uint32_t kid0; /* children are the nodes kid0 .. kid0 + nkid - 1, sorted by first byte */
  int32_t tok;   /* index of the token whose string ends here, or -1 */
  uint16_t nkid;
  unsigned char first; /* lab[0] */
} trie_node;

struct pf_tk_trie {
  uint32_t root[256]; /* child of the root whose label starts with byte b, 0 = none */
  trie_node *node;    /* node 0 is the root */
  size_t n_node;
  size_t n_tok;
};

typedef struct sort_key {
  const char *s;
  size_t len;
  uint32_t index;
} sort_key;

static int cmp_key(const void *pa, const void *pb) {
  const sort_key *a = pa, *b = pb;
  int c = memcmp(a->s, b->s, a->len < b->len ? a->len : b->len);
  if (c) return c;
  if (a->len != b->len) return a->len < b->len ? -1 : 1;
  return a->index < b->index ? -1 : a->index > b->index;
}

/* A node being built: its keys [lo, hi) all share the first `depth` bytes. */
typedef struct pending {
  uint32_t node, lo, hi;
  size_t depth;
} pending;

void pf_tk_trie_free(pf_tk_trie *t) {
  if (!t) return;
  free(t->node);
  free(t);
}

/* Breadth first over the sorted keys, so the children of a node get consecutive
 * numbers. No recursion: a token may be megabytes long. */
static void trie_fill(pf_tk_trie *t, const sort_key *k, pending *q) {
  size_t qh = 0, qt = 0;
  t->node[0] = (trie_node){NULL, 0, 0, -1, 0, 0};
  t->n_node = 1;
  q[qt++] = (pending){0, 0, (uint32_t)t->n_tok, 0};
  while (qh < qt) {
    pending p = q[qh++];
    trie_node *v = &t->node[p.node];
    uint32_t lo = p.lo;
    if (lo < p.hi && k[lo].len == p.depth) v->tok = (int32_t)k[lo].index; /* first in file order */
    while (lo < p.hi && k[lo].len == p.depth)
      lo++;
    v->kid0 = (uint32_t)t->n_node;
    while (lo < p.hi) { /* one child per distinct byte at `depth` */
      unsigned char b = (unsigned char)k[lo].s[p.depth];
      uint32_t hi = lo + 1;
      while (hi < p.hi && (unsigned char)k[hi].s[p.depth] == b)
        hi++;
      /* the keys are sorted: the common prefix of the group is that of its ends */
      size_t end = p.depth + 1, lim = k[lo].len < k[hi - 1].len ? k[lo].len : k[hi - 1].len;
      while (end < lim && k[lo].s[end] == k[hi - 1].s[end])
        end++;
      uint32_t c = (uint32_t)t->n_node++;
      t->node[c] = (trie_node){k[lo].s + p.depth, (uint32_t)(end - p.depth), 0, -1, 0, b};
      v = &t->node[p.node];
      v->nkid++;
      q[qt++] = (pending){c, lo, hi, end};
      lo = hi;
    }
  }
}

pf_status pf_tk_trie_build(const pf_tk_added *a, size_t n, int normalized, pf_tk_trie **out,
                           pf_err *err) {
  *out = NULL;
  pf_tk_trie *t = calloc(1, sizeof *t);
  size_t m = 0;
  for (size_t i = 0; i < n; i++)
    m += a[i].normalized == normalized && a[i].match_len;
  sort_key *k = malloc((m ? m : 1) * sizeof *k);
  pending *q = malloc((2 * m + 1) * sizeof *q);
  if (t) t->node = malloc((2 * m + 1) * sizeof *t->node);
  if (!t || !k || !q || !t->node) {
    free(k);
    free(q);
    pf_tk_trie_free(t);
    return pf_err_set(err, PF_ERR_NOMEM, "added_tokens: out of memory");
  }
  for (size_t i = 0; i < n; i++)
    if (a[i].normalized == normalized && a[i].match_len)
      k[t->n_tok++] = (sort_key){a[i].match, a[i].match_len, (uint32_t)i};
  /* qsort: a file may hold PF_TOKENIZER_MAX_ADDED entries (see docs/reliability.md, R4) */
  qsort(k, m, sizeof *k, cmp_key);
  trie_fill(t, k, q);
  for (uint32_t c = t->node[0].kid0; c < t->node[0].kid0 + t->node[0].nkid; c++)
    t->root[t->node[c].first] = c;
  free(k);
  free(q);
  *out = t;
  return PF_OK;
}

static uint32_t child(const pf_tk_trie *t, const trie_node *v, unsigned char b) {
  uint32_t lo = v->kid0, hi = v->kid0 + v->nkid;
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo) / 2;
    if (t->node[mid].first < b)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo < v->kid0 + v->nkid && t->node[lo].first == b ? lo : 0;
}

/* Longest token that s[i..n) starts with: its index (and *len), or -1. */
static long longest_at(const pf_tk_trie *t, const char *s, size_t n, size_t i, size_t *len) {
  uint32_t c = t->root[(unsigned char)s[i]];
  long best = -1;
  size_t p = i;
  while (c) {
    const trie_node *v = &t->node[c];
    if (v->lab_len > n - p || memcmp(s + p, v->lab, v->lab_len)) break;
    p += v->lab_len;
    if (v->tok >= 0) {
      best = v->tok;
      *len = p - i;
    }
    if (p == n) break;
    c = child(t, v, (unsigned char)s[p]);
  }
  return best;
}

long pf_tk_trie_find(const pf_tk_trie *t, const char *s, size_t n, size_t from, size_t *at,
                     size_t *len) {
  if (!t || !t->n_tok) return -1;
  for (size_t i = from; i < n; i++) {
    if (!t->root[(unsigned char)s[i]]) continue;
    long k = longest_at(t, s, n, i, len);
    if (k >= 0) {
      *at = i;
      return k;
    }
  }
  return -1;
}

/* ---- HF's rules around a match ---- */

/* regex \w as used by HF's single_word checks (Rust regex, Unicode). */
static int is_word_char(uint32_t c) {
  if (c < 0x80)
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
  if (c == 0x200C || c == 0x200D) return 1;
  switch (utf8proc_category((utf8proc_int32_t)c)) {
  case UTF8PROC_CATEGORY_LU:
  case UTF8PROC_CATEGORY_LL:
  case UTF8PROC_CATEGORY_LT:
  case UTF8PROC_CATEGORY_LM:
  case UTF8PROC_CATEGORY_LO:
  case UTF8PROC_CATEGORY_NL:
  case UTF8PROC_CATEGORY_MN:
  case UTF8PROC_CATEGORY_MC:
  case UTF8PROC_CATEGORY_ME:
  case UTF8PROC_CATEGORY_ND:
  case UTF8PROC_CATEGORY_PC:
    return 1;
  default:
    return 0;
  }
}

/* Offset of the char that ends at s[i] (i > 0). */
static size_t char_before(const char *s, size_t i) {
  i--;
  while (i > 0 && ((unsigned char)s[i] & 0xC0) == 0x80)
    i--;
  return i;
}

long pf_tk_added_next(const pf_tk_trie *t, const pf_tk_added *a, const char *s, size_t n,
                      size_t pos, size_t *scan, size_t *start, size_t *stop) {
  size_t ms, len;
  long k;
  while ((k = pf_tk_trie_find(t, s, n, *scan, &ms, &len)) >= 0) {
    const pf_tk_added *tk = &a[k];
    size_t me = ms + len, j = me;
    *scan = me; /* HF's find_iter goes on after the bare match */
    if (tk->single_word) {
      size_t b = ms ? char_before(s, ms) : 0;
      if ((ms > 0 && is_word_char(pf_tk_utf8_next(s, &b))) ||
          (me < n && is_word_char(pf_tk_utf8_next(s, &j))))
        continue;
    }
    *start = ms;
    *stop = me;
    if (tk->lstrip) {
      size_t i = ms;
      while (i > 0) {
        size_t c = char_before(s, i), cc = c;
        if (!pf_tk_is_whitespace(pf_tk_utf8_next(s, &cc))) break;
        i = c;
      }
      *start = i > pos ? i : pos;
    }
    if (tk->rstrip) {
      while (*stop < n) {
        size_t c = *stop;
        if (!pf_tk_is_whitespace(pf_tk_utf8_next(s, &c))) break;
        *stop = c;
      }
    }
    return k;
  }
  return -1;
}

/* ---- parsing ---- */

static void added_release(pf_tk_added *t) {
  if (t->match != t->content) free(t->match);
  free(t->content);
}

void pf_tk_added_free(pf_tk_added *a, size_t n) {
  for (size_t i = 0; i < n; i++)
    added_release(&a[i]);
  free(a);
}

/* One entry's fields; the "id" is checked but HF assigns its own (see the header). */
static pf_status parse_one(const cJSON *j, const pf_tk_norm *norm, const char *w, pf_tk_added *o,
                           pf_err *err) {
  const char *content;
  int64_t id;
  pf_status s;
  if (!cJSON_IsObject(j)) return pf_err_set(err, PF_ERR_FORMAT, "%s: expected an object", w);
  if ((s = pf_tk_jint(j, "id", w, 0, PF_TOKENIZER_MAX_VOCAB - 1, -1, &id, err)) ||
      (s = pf_tk_jstr(j, "content", w, 1, &content, err)) ||
      (s = pf_tk_jbool(j, "special", w, 0, &o->special, err)) ||
      (s = pf_tk_jbool(j, "lstrip", w, 0, &o->lstrip, err)) ||
      (s = pf_tk_jbool(j, "rstrip", w, 0, &o->rstrip, err)) ||
      (s = pf_tk_jbool(j, "single_word", w, 0, &o->single_word, err)) ||
      (s = pf_tk_jbool(j, "normalized", w, 1, &o->normalized, err)))
    return s;
  if (id < 0) return pf_err_set(err, PF_ERR_FORMAT, "%s: missing key \"id\"", w);
  o->len = strlen(content);
  if (!(o->content = strdup(content))) return pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  o->match = o->content;
  o->match_len = o->len;
  if (o->normalized && norm && o->len) { /* matched against its normalized form */
    pf_tk_buf nb = {0};
    int as = 1;
    if ((s = pf_tk_normalize(norm, o->content, o->len, &nb, &as, err))) {
      pf_tk_buf_free(&nb);
      return pf_err_prefix(err, "%s", w);
    }
    if (pf_tk_buf_put(&nb, "", 0)) {
      pf_tk_buf_free(&nb);
      return pf_err_set(err, PF_ERR_NOMEM, "out of memory");
    }
    nb.p[nb.n] = 0;
    o->match = nb.p;
    o->match_len = nb.n;
  }
  return PF_OK;
}

/* Slot of content s in the open-addressing table over a[] (index + 1, 0 = free). */
static size_t content_slot(const uint32_t *slot, size_t mask, const pf_tk_added *a, const char *s,
                           size_t n) {
  size_t i = pf_tk_hash(s, n) & mask;
  while (slot[i] && !(a[slot[i] - 1].len == n && !memcmp(a[slot[i] - 1].content, s, n)))
    i = (i + 1) & mask;
  return i;
}

/* Entry `tk` (parsed from file index i) joins a[0..*m): a new entry, or an update
 * of the one with the same content. */
static pf_status add_entry(pf_tk_added *a, size_t *m, uint32_t *slot, size_t mask,
                           const pf_tk_bpe *bpe, int32_t *next_id, pf_tk_added *tk, const char *w,
                           pf_err *err) {
  size_t i = content_slot(slot, mask, a, tk->content, tk->len);
  if (slot[i]) { /* HF: same id, the later flags */
    pf_tk_added *old = &a[slot[i] - 1];
    tk->id = old->id;
    tk->special |= old->special;
    added_release(old);
    *old = *tk;
    return PF_OK;
  }
  tk->id = pf_tk_bpe_lookup(bpe, tk->content, tk->len);
  if (tk->id < 0) {
    if (*next_id >= PF_TOKENIZER_MAX_VOCAB) {
      added_release(tk);
      return pf_err_set(err, PF_ERR_INVALID, "%s: its id would pass the limit of %d tokens", w,
                        (int)PF_TOKENIZER_MAX_VOCAB);
    }
    tk->id = (*next_id)++;
  }
  a[*m] = *tk;
  slot[i] = (uint32_t)++ * m;
  return PF_OK;
}

pf_status pf_tk_added_parse(const cJSON *arr, const pf_tk_norm *norm, const pf_tk_bpe *bpe,
                            pf_tk_added **out, size_t *n_out, int32_t *max_id, pf_err *err) {
  *out = NULL;
  *n_out = 0;
  if (!arr) return PF_OK;
  if (!cJSON_IsArray(arr)) return pf_err_set(err, PF_ERR_FORMAT, "added_tokens: expected an array");
  size_t n = (size_t)cJSON_GetArraySize(arr), i = 0, mask = 15;
  if (n > PF_TOKENIZER_MAX_ADDED)
    return pf_err_set(err, PF_ERR_INVALID, "added_tokens: %zu entries, the limit is %zu", n,
                      PF_TOKENIZER_MAX_ADDED);
  while (mask + 1 < 2 * n)
    mask = 2 * mask + 1;
  pf_tk_added *a = calloc(n ? n : 1, sizeof *a);
  uint32_t *slot = calloc(mask + 1, sizeof *slot);
  if (!a || !slot) {
    free(a);
    free(slot);
    return pf_err_set(err, PF_ERR_NOMEM, "added_tokens: out of memory");
  }
  *out = a; /* kept entries are released by pf_tk_added_free(*out, *n_out) */
  int32_t next_id = (int32_t)pf_tk_bpe_vocab_len(bpe);
  pf_status s = PF_OK;
  for (const cJSON *c = arr->child; c && !s; c = c->next, i++) {
    char w[64];
    pf_tk_added tk = {0};
    snprintf(w, sizeof w, "added_tokens[%zu]", i);
    if ((s = parse_one(c, norm, w, &tk, err)) || !tk.len) { /* HF ignores an empty content */
      added_release(&tk);
      continue;
    }
    s = add_entry(a, n_out, slot, mask, bpe, &next_id, &tk, w, err);
  }
  for (i = 0; i < *n_out; i++)
    if (a[i].id > *max_id) *max_id = a[i].id;
  free(slot);
  return s;
}
