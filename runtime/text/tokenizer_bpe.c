/* tokenizer_bpe.c — the BPE model of tokenizer.json.
 *
 * Same algorithm as HF's BPE::merge_word: a pre-token is split into characters
 * (with continuing_subword_prefix / end_of_word_suffix), each looked up in the
 * vocabulary; a missing character becomes its <0xAB> byte tokens when
 * byte_fallback is set, else the unk token (consecutive unks fused when
 * fuse_unk). Then the pair with the lowest merge rank is merged repeatedly, ties
 * going to the leftmost pair — a binary heap over a linked list of symbols, so a
 * long word costs O(n log n), not O(n^2).
 *
 * Tables are open addressing with linear probing, sized at load time to a load
 * factor <= 1/2. Results of pre-tokens up to CACHE_KEY_MAX bytes are cached (HF
 * caches too); its slot table starts small and doubles with the entries (a
 * table sized for the maximum up front costs ~1000 page faults, each first read
 * of a zero page and then a write to it, on every tokenizer load); the cache is
 * cleared wholesale when it reaches CACHE_MAX_ENTRIES, which bounds its memory
 * at a few tens of MB.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer_internal.h"

#define CACHE_KEY_MAX 256
#define CACHE_MAX_ENTRIES ((size_t)1 << 18)
#define CACHE_MIN_SLOTS ((size_t)1 << 12)

typedef struct vocab_entry {
  const char *s; /* into the arena */
  uint32_t len;
  int32_t id;
} vocab_entry;

typedef struct merge_slot { /* one cache line holds four */
  uint64_t key;             /* a << 32 | b, UINT64_MAX = empty */
  int32_t rank, new_id;
} merge_slot;

typedef struct heap_item {
  int32_t rank, pos, new_id;
} heap_item;

typedef struct cache_entry {
  uint64_t hash;
  uint32_t key_off, key_len, ids_off, n_ids;
} cache_entry;

struct pf_tk_bpe {
  char *arena;      /* every vocabulary string, NUL-terminated, back to back */
  vocab_entry *ent; /* [n_ent] */
  size_t n_ent;
  size_t n_keys;   /* distinct strings (HF's vocab.len(): a repeated key counts once) */
  uint64_t *vslot; /* [vmask+1] high hash bits << 32 | entry index + 1; 0 = empty */
  size_t vmask;
  const vocab_entry **by_id; /* [n_tok] id -> entry or NULL */
  int32_t n_tok;             /* max id + 1 */
  merge_slot *merge;         /* [mmask+1] */
  size_t mmask;
  int32_t unk_id;          /* -1: no unk token */
  const char *unk_missing; /* unk_token named but absent from the vocabulary */
  int fuse_unk, byte_fallback, ignore_merges;
  char *prefix, *suffix; /* NULL when unset */
  size_t prefix_len, suffix_len;
  int32_t byte_id[256]; /* id of "<0xAB>" or -1 */
  /* scratch for merge_word */
  int32_t *sid, *sprev, *snext;
  size_t scap;
  heap_item *heap;
  size_t hcap;
  pf_tk_buf chr;
  pf_tk_ids word;
  /* word cache */
  cache_entry *ce;
  size_t n_ce;
  uint32_t *cslot;
  size_t cmask;
  pf_tk_buf ckeys;
  pf_tk_ids cids;
};

static size_t pow2_at_least(size_t n) {
  size_t c = 16;
  while (c < n)
    c *= 2;
  return c;
}

/* ---- vocabulary map ---- */

/* The slots keep the hash's high bits, so a probe touches an entry (a likely cache
 * miss in a large vocabulary) only when they match. */
int32_t pf_tk_bpe_lookup(const pf_tk_bpe *b, const char *s, size_t n) {
  uint64_t h = pf_tk_hash(s, n), tag = h >> 32 << 32;
  for (size_t i = h & b->vmask;; i = (i + 1) & b->vmask) {
    uint64_t e = b->vslot[i];
    if (!e) return -1;
    if ((e & ~(uint64_t)UINT32_MAX) != tag) continue;
    const vocab_entry *v = &b->ent[(uint32_t)e - 1];
    if (v->len == n && !memcmp(v->s, s, n)) return v->id;
  }
}

const char *pf_tk_bpe_token(const pf_tk_bpe *b, int32_t id, size_t *len) {
  if (id < 0 || id >= b->n_tok || !b->by_id[id]) return NULL;
  if (len) *len = b->by_id[id]->len;
  return b->by_id[id]->s;
}

int32_t pf_tk_bpe_max_id(const pf_tk_bpe *b) {
  return b->n_tok - 1;
}

size_t pf_tk_bpe_vocab_len(const pf_tk_bpe *b) {
  return b->n_keys;
}

static void vocab_insert(pf_tk_bpe *b, size_t idx) {
  const vocab_entry *v = &b->ent[idx];
  uint64_t h = pf_tk_hash(v->s, v->len), tag = h >> 32 << 32;
  for (size_t i = h & b->vmask;; i = (i + 1) & b->vmask) {
    uint64_t e = b->vslot[i];
    if (!e) {
      b->vslot[i] = tag | (idx + 1);
      b->n_keys++;
      return;
    }
    const vocab_entry *o = &b->ent[(uint32_t)e - 1];
    if ((e & ~(uint64_t)UINT32_MAX) == tag && o->len == v->len && !memcmp(o->s, v->s, v->len)) {
      b->vslot[i] = tag | (idx + 1); /* duplicate key: the later one wins, as in HF */
      return;
    }
  }
}

static pf_status vocab_alloc(pf_tk_bpe *b, size_t n, size_t bytes, pf_err *err) {
  if (n > (size_t)PF_TOKENIZER_MAX_VOCAB)
    return pf_err_set(err, PF_ERR_INVALID, "model.vocab: more than %d entries",
                      (int)PF_TOKENIZER_MAX_VOCAB);
  b->ent = calloc(n ? n : 1, sizeof *b->ent);
  b->arena = malloc(bytes ? bytes : 1);
  b->vmask = pow2_at_least(2 * n) - 1;
  b->vslot = calloc(b->vmask + 1, sizeof *b->vslot);
  if (!b->ent || !b->arena || !b->vslot)
    return pf_err_set(err, PF_ERR_NOMEM, "model.vocab: out of memory");
  b->n_ent = n;
  return PF_OK;
}

/* Entry i: the key already written at s (NUL-terminated). */
static void vocab_add(pf_tk_bpe *b, size_t i, const char *s, size_t len, int32_t id) {
  b->ent[i] = (vocab_entry){s, (uint32_t)len, id};
  if (id >= b->n_tok) b->n_tok = id + 1;
  vocab_insert(b, i);
}

static pf_status vocab_index(pf_tk_bpe *b, pf_err *err) {
  b->by_id = calloc(b->n_tok ? (size_t)b->n_tok : 1, sizeof *b->by_id);
  if (!b->by_id) return pf_err_set(err, PF_ERR_NOMEM, "model.vocab: out of memory");
  for (size_t i = 0; i < b->n_ent; i++)
    b->by_id[b->ent[i].id] = &b->ent[i];
  return PF_OK;
}

static pf_status parse_vocab(pf_tk_bpe *b, const cJSON *vocab, pf_err *err) {
  if (!cJSON_IsObject(vocab))
    return pf_err_set(err, PF_ERR_FORMAT, "model.vocab: expected an object of token: id");
  size_t n = 0, bytes = 0;
  for (const cJSON *c = vocab->child; c && n <= (size_t)PF_TOKENIZER_MAX_VOCAB; c = c->next, n++)
    bytes += strlen(c->string) + 1;
  pf_status s = vocab_alloc(b, n, bytes, err);
  if (s) return s;
  char *a = b->arena;
  size_t i = 0;
  for (const cJSON *c = vocab->child; c; c = c->next, i++) {
    double d = cJSON_IsNumber(c) ? c->valuedouble : -1;
    /* range first: converting a double outside int64_t to an integer is undefined */
    if (!cJSON_IsNumber(c) || !(d >= 0 && d < PF_TOKENIZER_MAX_VOCAB) || d != (double)(int64_t)d)
      return pf_err_set(err, PF_ERR_FORMAT,
                        "model.vocab[\"%.80s\"]: expected an integer id in [0, %d)", c->string,
                        (int)PF_TOKENIZER_MAX_VOCAB);
    size_t len = strlen(c->string);
    memcpy(a, c->string, len + 1);
    vocab_add(b, i, a, len, (int32_t)d);
    a += len + 1;
  }
  return vocab_index(b, err);
}

/* The same from the text (checked by pf_tk_fastjson_make: ids are in range). */
static pf_status parse_vocab_text(pf_tk_bpe *b, const pf_tk_fastjson *fj, pf_err *err) {
  pf_status s = vocab_alloc(b, fj->n_vocab, fj->vocab_bytes, err);
  if (s) return s;
  pf_tk_jcur c;
  pf_tk_fast_begin(&c, fj->vocab, fj->vocab_n);
  char *a = b->arena;
  size_t len;
  int32_t id;
  for (size_t i = 0; i < fj->n_vocab && pf_tk_fast_vocab_next(&c, a, &len, &id); i++) {
    vocab_add(b, i, a, len, id);
    a += len + 1;
  }
  return vocab_index(b, err);
}

/* ---- merges ---- */

static int merge_find(const pf_tk_bpe *b, int32_t x, int32_t y, int32_t *rank, int32_t *new_id) {
  uint64_t k = ((uint64_t)(uint32_t)x << 32) | (uint32_t)y;
  uint64_t h = k * 0x9E3779B97F4A7C15ull;
  for (size_t i = (h >> 20) & b->mmask;; i = (i + 1) & b->mmask) {
    const merge_slot *m = &b->merge[i];
    if (m->key == UINT64_MAX) return 0;
    if (m->key == k) {
      *rank = m->rank;
      *new_id = m->new_id;
      return 1;
    }
  }
}

static void merge_insert(pf_tk_bpe *b, int32_t x, int32_t y, int32_t rank, int32_t new_id) {
  uint64_t k = ((uint64_t)(uint32_t)x << 32) | (uint32_t)y;
  uint64_t h = k * 0x9E3779B97F4A7C15ull;
  size_t i = (h >> 20) & b->mmask;
  while (b->merge[i].key != UINT64_MAX && b->merge[i].key != k)
    i = (i + 1) & b->mmask;
  b->merge[i] = (merge_slot){k, rank, new_id}; /* a repeated pair keeps the later rank,
                                                 as HF's HashMap collect */
}

/* A legacy "a b" entry split at its space; *skip for "#version" lines. */
static pf_status merge_split(const char *s, size_t idx, const char **a, size_t *al, const char **bp,
                             size_t *bl, int *skip, pf_err *err) {
  const char *sp = strchr(s, ' ');
  *skip = 0;
  if (!strncmp(s, "#version", 8)) {
    *skip = 1;
    return PF_OK;
  }
  if (!sp || strchr(sp + 1, ' '))
    return pf_err_set(err, PF_ERR_FORMAT,
                      "model.merges[%zu]: expected \"a b\" (two tokens, one space), got \"%.80s\"",
                      idx, s);
  *a = s;
  *al = (size_t)(sp - s);
  *bp = sp + 1;
  *bl = strlen(sp + 1);
  return PF_OK;
}

/* One merge entry: "a b" (legacy) or ["a", "b"]. */
static pf_status merge_parts(const cJSON *m, size_t idx, const char **a, size_t *al,
                             const char **bp, size_t *bl, int *skip, pf_err *err) {
  if (cJSON_IsString(m)) return merge_split(m->valuestring, idx, a, al, bp, bl, skip, err);
  *skip = 0;
  const cJSON *x = cJSON_IsArray(m) ? m->child : NULL, *y = x ? x->next : NULL;
  if (!cJSON_IsString(x) || !cJSON_IsString(y) || y->next)
    return pf_err_set(err, PF_ERR_FORMAT, "model.merges[%zu]: expected \"a b\" or [\"a\", \"b\"]",
                      idx);
  *a = x->valuestring;
  *al = strlen(*a);
  *bp = y->valuestring;
  *bl = strlen(*bp);
  return PF_OK;
}

static pf_status merges_alloc(pf_tk_bpe *b, size_t n, pf_err *err) {
  if (n > PF_TOKENIZER_MAX_MERGES)
    return pf_err_set(err, PF_ERR_INVALID, "model.merges: %zu entries, the limit is %zu", n,
                      PF_TOKENIZER_MAX_MERGES);
  b->mmask = pow2_at_least(2 * n) - 1;
  b->merge = malloc((b->mmask + 1) * sizeof *b->merge);
  if (!b->merge) return pf_err_set(err, PF_ERR_NOMEM, "model.merges: out of memory");
  for (size_t i = 0; i <= b->mmask; i++)
    b->merge[i].key = UINT64_MAX;
  return PF_OK;
}

/* Merge entry idx, x + y, gets the next rank. cat is scratch. */
static pf_status merge_add(pf_tk_bpe *b, size_t idx, const char *x, size_t xl, const char *y,
                           size_t yl, int32_t *rank, pf_tk_buf *cat, pf_err *err) {
  int32_t xi = pf_tk_bpe_lookup(b, x, xl), yi = pf_tk_bpe_lookup(b, y, yl);
  size_t cut = b->prefix_len <= yl ? b->prefix_len : yl;
  cat->n = 0;
  if (pf_tk_buf_put(cat, x, xl) || pf_tk_buf_put(cat, y + cut, yl - cut))
    return pf_err_set(err, PF_ERR_NOMEM, "model.merges: out of memory");
  int32_t zi = pf_tk_bpe_lookup(b, cat->p, cat->n);
  if (xi < 0 || yi < 0 || zi < 0) {
    const char *miss = xi < 0 ? x : yi < 0 ? y : cat->p;
    int ml = (int)(xi < 0 ? xl : yi < 0 ? yl : cat->n);
    return pf_err_set(err, PF_ERR_FORMAT,
                      "model.merges[%zu]: token \"%.*s\" is not in the vocabulary", idx,
                      ml > 80 ? 80 : ml, miss);
  }
  merge_insert(b, xi, yi, (*rank)++, zi);
  return PF_OK;
}

static pf_status parse_merges(pf_tk_bpe *b, const cJSON *merges, pf_err *err) {
  if (merges && !cJSON_IsArray(merges))
    return pf_err_set(err, PF_ERR_FORMAT, "model.merges: expected an array");
  pf_status s = merges_alloc(b, merges ? (size_t)cJSON_GetArraySize(merges) : 0, err);
  pf_tk_buf cat = {0};
  int32_t rank = 0;
  size_t idx = 0;
  for (const cJSON *m = merges ? merges->child : NULL; m && !s; m = m->next, idx++) {
    const char *x = NULL, *y = NULL;
    size_t xl = 0, yl = 0;
    int skip;
    if ((s = merge_parts(m, idx, &x, &xl, &y, &yl, &skip, err)) || skip) continue;
    s = merge_add(b, idx, x, xl, y, yl, &rank, &cat, err);
  }
  pf_tk_buf_free(&cat);
  return s;
}

/* The same from the text (checked by pf_tk_fastjson_make). */
static pf_status parse_merges_text(pf_tk_bpe *b, const pf_tk_fastjson *fj, pf_err *err) {
  pf_status s = merges_alloc(b, fj->n_merges, err);
  pf_tk_buf cat = {0}, x = {0}, y = {0};
  pf_tk_jcur c;
  pf_tk_fast_begin(&c, fj->merges, fj->merges_n);
  int32_t rank = 0;
  int pair, r = 0;
  for (size_t idx = 0; !s && (r = pf_tk_fast_merge_next(&c, &x, &y, &pair)) > 0; idx++) {
    const char *xs = x.p, *ys = y.p;
    size_t xl = x.n, yl = y.n;
    int skip = 0;
    if (!pair && ((s = merge_split(x.p, idx, &xs, &xl, &ys, &yl, &skip, err)) || skip)) continue;
    s = merge_add(b, idx, xs, xl, ys, yl, &rank, &cat, err);
  }
  if (!s && r < 0) s = pf_err_set(err, PF_ERR_NOMEM, "model.merges: out of memory");
  pf_tk_buf_free(&cat);
  pf_tk_buf_free(&x);
  pf_tk_buf_free(&y);
  return s;
}

/* ---- parse / free ---- */

void pf_tk_bpe_free(pf_tk_bpe *b) {
  if (!b) return;
  free(b->arena);
  free(b->ent);
  free(b->vslot);
  free(b->by_id);
  free(b->merge);
  free(b->prefix);
  free(b->suffix);
  free(b->sid);
  free(b->sprev);
  free(b->snext);
  free(b->heap);
  pf_tk_buf_free(&b->chr);
  free(b->word.v);
  free(b->ce);
  free(b->cslot);
  pf_tk_buf_free(&b->ckeys);
  free(b->cids.v);
  free(b);
}

static pf_status opt_string(const cJSON *model, const char *key, char **out, size_t *len,
                            pf_err *err) {
  const char *v;
  pf_status s = pf_tk_jstr(model, key, "model", 0, &v, err);
  if (s || !v || !*v) return s; /* "" behaves like unset */
  *len = strlen(v);
  *out = strdup(v);
  return *out ? PF_OK : pf_err_set(err, PF_ERR_NOMEM, "model: out of memory");
}

static pf_status parse_options(pf_tk_bpe *b, const cJSON *model, pf_err *err) {
  pf_status s;
  const cJSON *dropout = pf_tk_jget(model, "dropout");
  if (dropout && (!cJSON_IsNumber(dropout) || dropout->valuedouble != 0.0))
    return pf_err_set(err, PF_ERR_UNSUPPORTED, "model.dropout: BPE dropout is not supported");
  if ((s = pf_tk_jbool(model, "fuse_unk", "model", 0, &b->fuse_unk, err)) ||
      (s = pf_tk_jbool(model, "byte_fallback", "model", 0, &b->byte_fallback, err)) ||
      (s = pf_tk_jbool(model, "ignore_merges", "model", 0, &b->ignore_merges, err)) ||
      (s = opt_string(model, "continuing_subword_prefix", &b->prefix, &b->prefix_len, err)) ||
      (s = opt_string(model, "end_of_word_suffix", &b->suffix, &b->suffix_len, err)))
    return s;
  return PF_OK;
}

pf_status pf_tk_bpe_parse(const cJSON *model, const pf_tk_fastjson *fj, pf_tk_bpe **out,
                          int32_t *max_id, pf_err *err) {
  *out = NULL;
  pf_tk_bpe *b = calloc(1, sizeof *b);
  if (!b) return pf_err_set(err, PF_ERR_NOMEM, "model: out of memory");
  b->unk_id = -1;
  const char *unk = NULL;
  pf_status s = parse_options(b, model, err);
  if (!s)
    s = fj && fj->vocab ? parse_vocab_text(b, fj, err)
                        : parse_vocab(b, pf_tk_jget(model, "vocab"), err);
  if (!s)
    s = fj && fj->merges ? parse_merges_text(b, fj, err)
                         : parse_merges(b, pf_tk_jget(model, "merges"), err);
  if (!s) s = pf_tk_jstr(model, "unk_token", "model", 0, &unk, err);
  if (s) {
    pf_tk_bpe_free(b);
    return s;
  }
  if (unk) {
    b->unk_id = pf_tk_bpe_lookup(b, unk, strlen(unk));
    if (b->unk_id < 0) b->unk_missing = "model.unk_token is not in the vocabulary";
  }
  for (int i = 0; i < 256; i++) {
    char name[8];
    snprintf(name, sizeof name, "<0x%02X>", i);
    b->byte_id[i] = pf_tk_bpe_lookup(b, name, 6);
  }
  *max_id = b->n_tok - 1;
  *out = b;
  return PF_OK;
}

/* ---- merge_word ---- */

static int sym_add(pf_tk_bpe *b, size_t *n, int32_t id) {
  if (*n == b->scap) {
    size_t cap = b->scap ? b->scap * 2 : 64;
    int32_t *x = realloc(b->sid, cap * sizeof *x);
    if (!x) return -1;
    b->sid = x;
    if (!(x = realloc(b->sprev, cap * sizeof *x))) return -1;
    b->sprev = x;
    if (!(x = realloc(b->snext, cap * sizeof *x))) return -1;
    b->snext = x;
    b->scap = cap;
  }
  b->sid[(*n)++] = id;
  return 0;
}

static int heap_less(heap_item a, heap_item c) {
  return a.rank != c.rank ? a.rank < c.rank : a.pos < c.pos;
}

static int heap_push(pf_tk_bpe *b, size_t *n, heap_item it) {
  if (*n == b->hcap) {
    size_t cap = b->hcap ? b->hcap * 2 : 64;
    heap_item *h = realloc(b->heap, cap * sizeof *h);
    if (!h) return -1;
    b->heap = h;
    b->hcap = cap;
  }
  size_t i = (*n)++;
  while (i > 0 && heap_less(it, b->heap[(i - 1) / 2])) {
    b->heap[i] = b->heap[(i - 1) / 2];
    i = (i - 1) / 2;
  }
  b->heap[i] = it;
  return 0;
}

static heap_item heap_pop(pf_tk_bpe *b, size_t *n) {
  heap_item top = b->heap[0], last = b->heap[--(*n)];
  size_t i = 0;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= *n) break;
    if (c + 1 < *n && heap_less(b->heap[c + 1], b->heap[c])) c++;
    if (!heap_less(b->heap[c], last)) break;
    b->heap[i] = b->heap[c];
    i = c;
  }
  if (*n) b->heap[i] = last;
  return top;
}

static int push_pair(pf_tk_bpe *b, size_t *hn, int32_t pos, int32_t next) {
  int32_t rank, nid;
  if (next < 0 || !merge_find(b, b->sid[pos], b->sid[next], &rank, &nid)) return 0;
  return heap_push(b, hn, (heap_item){rank, pos, nid});
}

/* Initial symbols of s (chars, byte fallback, unk). */
static pf_status word_symbols(pf_tk_bpe *b, const char *s, size_t n, size_t *ns, pf_err *err) {
  int32_t unk = -1; /* pending unk symbol */
  *ns = 0;
  for (size_t i = 0; i < n;) {
    size_t j = i + pf_tk_utf8_len((unsigned char)s[i]);
    const char *c = s + i;
    size_t cl = j - i;
    if ((b->prefix && i > 0) || (b->suffix && j == n)) {
      b->chr.n = 0;
      if ((i > 0 && pf_tk_buf_put(&b->chr, b->prefix, b->prefix_len)) ||
          pf_tk_buf_put(&b->chr, c, cl) ||
          (j == n && pf_tk_buf_put(&b->chr, b->suffix, b->suffix_len)))
        return pf_err_set(err, PF_ERR_NOMEM, "BPE: out of memory");
      c = b->chr.p;
      cl = b->chr.n;
    }
    i = j;
    int32_t id = pf_tk_bpe_lookup(b, c, cl);
    if (id >= 0) {
      if ((unk >= 0 && sym_add(b, ns, unk)) || sym_add(b, ns, id)) goto nomem;
      unk = -1;
      continue;
    }
    if (b->byte_fallback) {
      size_t k = 0;
      while (k < cl && b->byte_id[(unsigned char)c[k]] >= 0)
        k++;
      if (k == cl) { /* HF adds the bytes without flushing a pending unk first */
        for (k = 0; k < cl; k++)
          if (sym_add(b, ns, b->byte_id[(unsigned char)c[k]])) goto nomem;
        continue;
      }
    }
    if (b->unk_missing) return pf_err_set(err, PF_ERR_INVALID, "BPE: %s", b->unk_missing);
    if (b->unk_id < 0) continue; /* no unk token: the character is dropped */
    if (unk >= 0 && !b->fuse_unk && sym_add(b, ns, unk)) goto nomem;
    unk = b->unk_id;
  }
  if (unk >= 0 && sym_add(b, ns, unk)) goto nomem;
  return PF_OK;
nomem:
  return pf_err_set(err, PF_ERR_NOMEM, "BPE: out of memory");
}

/* BPE of one word into b->word. */
static pf_status merge_word(pf_tk_bpe *b, const char *s, size_t n, pf_err *err) {
  size_t ns, hn = 0;
  pf_status st = word_symbols(b, s, n, &ns, err);
  if (st) return st;
  for (size_t i = 0; i < ns; i++) {
    b->sprev[i] = (int32_t)i - 1;
    b->snext[i] = i + 1 < ns ? (int32_t)i + 1 : -1;
  }
  for (size_t i = 0; i + 1 < ns; i++)
    if (push_pair(b, &hn, (int32_t)i, (int32_t)i + 1)) goto nomem;
  while (hn) {
    heap_item top = heap_pop(b, &hn);
    int32_t p = top.pos, q = b->snext[p], rank, nid;
    if (b->sid[p] < 0 || q < 0) continue; /* merged away, or now the last symbol */
    if (!merge_find(b, b->sid[p], b->sid[q], &rank, &nid) || nid != top.new_id) continue;
    b->sid[p] = nid; /* merge q into p */
    b->sid[q] = -1;
    b->snext[p] = b->snext[q];
    if (b->snext[p] >= 0) b->sprev[b->snext[p]] = p;
    if ((b->sprev[p] >= 0 && push_pair(b, &hn, b->sprev[p], p)) ||
        push_pair(b, &hn, p, b->snext[p]))
      goto nomem;
  }
  b->word.n = 0;
  for (int32_t i = ns ? 0 : -1; i >= 0; i = b->snext[i])
    if (pf_tk_ids_push(&b->word, b->sid[i])) goto nomem;
  return PF_OK;
nomem:
  return pf_err_set(err, PF_ERR_NOMEM, "BPE: out of memory");
}

/* ---- cache ---- */

static const cache_entry *cache_find(const pf_tk_bpe *b, const char *s, size_t n, uint64_t h) {
  if (!b->cslot) return NULL;
  for (size_t i = h & b->cmask;; i = (i + 1) & b->cmask) {
    uint32_t e = b->cslot[i];
    if (!e) return NULL;
    const cache_entry *c = &b->ce[e - 1];
    if (c->hash == h && c->key_len == n && !memcmp(b->ckeys.p + c->key_off, s, n)) return c;
  }
}

/* The slot table: CACHE_MIN_SLOTS at first, doubled (entries placed again)
 * whenever it would pass a load factor of 1/2, up to 2 * CACHE_MAX_ENTRIES;
 * a small text touches a small table. 0 when the table could not grow. */
static int cache_room(pf_tk_bpe *b) {
  const size_t slots = b->cslot ? b->cmask + 1 : 0;
  if (slots && 2 * (b->n_ce + 1) <= slots) return 1;
  const size_t want = slots ? 2 * slots : CACHE_MIN_SLOTS;
  if (want > 2 * CACHE_MAX_ENTRIES) return 0;
  uint32_t *t = calloc(want, sizeof *t);
  if (!t) return 0;
  for (size_t e = 0; e < b->n_ce; e++) {
    size_t i = b->ce[e].hash & (want - 1);
    while (t[i])
      i = (i + 1) & (want - 1);
    t[i] = (uint32_t)(e + 1);
  }
  free(b->cslot);
  b->cslot = t;
  b->cmask = want - 1;
  return 1;
}

/* Best effort: a failed allocation only means the word is not cached. */
static void cache_put(pf_tk_bpe *b, const char *s, size_t n, uint64_t h) {
  if (!b->ce && !(b->ce = malloc(CACHE_MAX_ENTRIES * sizeof *b->ce))) return;
  if (b->n_ce == CACHE_MAX_ENTRIES) { /* full: start over */
    memset(b->cslot, 0, (b->cmask + 1) * sizeof *b->cslot);
    b->n_ce = 0;
    b->ckeys.n = 0;
    b->cids.n = 0;
  }
  if (!cache_room(b)) return;
  cache_entry c = {h, (uint32_t)b->ckeys.n, (uint32_t)n, (uint32_t)b->cids.n, (uint32_t)b->word.n};
  if (pf_tk_buf_put(&b->ckeys, s, n)) return;
  if (pf_tk_ids_append(&b->cids, b->word.v, b->word.n)) {
    b->ckeys.n = c.key_off;
    return;
  }
  size_t i = h & b->cmask;
  while (b->cslot[i])
    i = (i + 1) & b->cmask;
  b->ce[b->n_ce++] = c;
  b->cslot[i] = (uint32_t)b->n_ce;
}

pf_status pf_tk_bpe_encode(pf_tk_bpe *b, const char *s, size_t n, pf_tk_ids *out, pf_err *err) {
  if (n == 0) return PF_OK;
  if (b->ignore_merges) {
    int32_t id = pf_tk_bpe_lookup(b, s, n);
    if (id >= 0)
      return pf_tk_ids_push(out, id) ? pf_err_set(err, PF_ERR_NOMEM, "BPE: out of memory") : PF_OK;
  }
  uint64_t h = 0;
  if (n <= CACHE_KEY_MAX) {
    h = pf_tk_hash(s, n);
    const cache_entry *c = cache_find(b, s, n, h);
    if (c && c->n_ids == 0) return PF_OK; /* every char dropped (cids may still be NULL) */
    if (c)
      return pf_tk_ids_append(out, b->cids.v + c->ids_off, c->n_ids)
                 ? pf_err_set(err, PF_ERR_NOMEM, "BPE: out of memory")
                 : PF_OK;
  }
  pf_status st = merge_word(b, s, n, err);
  if (st) return st;
  if (n <= CACHE_KEY_MAX) cache_put(b, s, n, h);
  return pf_tk_ids_append(out, b->word.v, b->word.n)
             ? pf_err_set(err, PF_ERR_NOMEM, "BPE: out of memory")
             : PF_OK;
}
