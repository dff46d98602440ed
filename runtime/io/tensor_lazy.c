/* tensor_lazy.c — lazy selections (see "Lazy tensors" in tensor.h).
 *
 * Why: width pruning used to copy every kept row and column into a derived
 * tensor (a scratch file for large ones) and save then copied those bytes a
 * second time into the checkpoint. A lazy tensor only records which parent
 * bytes it is made of, so save gathers them straight into the output file.
 *
 * A lazy tensor is always one selection of one tensor that has data (its root
 * parent): selections of lazy tensors, their transposes, row views and
 * concatenations compose the index lists instead of stacking lazies, so a
 * gather never recurses and never needs more than the parent's bytes.
 *
 * Element (i, j) of the selection is parent[rows[i]][cols[j]]; of a transposed
 * one, parent[rows[j]][cols[i]]. A 1-D parent is one row (only cols apply).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "tensor_int.h"

struct pf_lazy {
  pf_tensor *parent; /* owned reference; has data, is not lazy; 1-D or 2-D */
  int64_t *rows;     /* kept parent rows [nr], or NULL for all of them */
  int64_t *cols;     /* kept parent columns [nc] (elements of a 1-D parent), or NULL */
  int64_t nr, nc;
  int transposed; /* the tensor is the transpose of parent[rows][:, cols] */
};

void pf_lazy_free(pf_lazy *l) {
  if (!l) return;
  pf_tensor_release(l->parent);
  free(l->rows);
  free(l->cols);
  free(l);
}

static int64_t parent_rows(const pf_tensor *p) {
  return p->ndim == 2 ? p->shape[0] : 1;
}
static int64_t parent_cols(const pf_tensor *p) {
  return p->ndim == 2 ? p->shape[1] : p->ndim == 1 ? p->shape[0] : 1;
}

/* Any tensor with data seen as a selection (an untransposed, full one when it
 * is not lazy). */
typedef struct sel {
  const pf_tensor *base;
  const int64_t *rows, *cols;
  int64_t nr, nc;
  int transposed;
} sel;

static sel sel_of(const pf_tensor *t) {
  if (t->lazy) {
    const pf_lazy *l = t->lazy;
    return (sel){l->parent, l->rows, l->cols, l->nr, l->nc, l->transposed};
  }
  return (sel){t, NULL, NULL, parent_rows(t), parent_cols(t), 0};
}

/* a after b (a[b[i]]), either NULL for the identity; *out NULL when both are. */
static int compose(const int64_t *a, const int64_t *b, int64_t nb, int64_t **out) {
  *out = NULL;
  if (!a && !b) return 0;
  if (!b) return -1; /* callers pass a with b; see pf_lazy_select */
  int64_t *c = malloc((size_t)(nb ? nb : 1) * sizeof *c);
  if (!c) return -1;
  for (int64_t i = 0; i < nb; i++)
    c[i] = a ? a[b[i]] : b[i];
  *out = c;
  return 0;
}

static int copy_idx(const int64_t *a, int64_t n, int64_t **out) {
  *out = NULL;
  if (!a) return 0;
  *out = malloc((size_t)(n ? n : 1) * sizeof **out);
  if (!*out) return -1;
  memcpy(*out, a, (size_t)n * sizeof **out);
  return 0;
}

/* An index list that takes every one of n parent positions in order is the
 * identity: drop it, so that a selection that undoes another (a transpose back,
 * NeoX's head order and its inverse) is the parent itself again, which the
 * writer copies from its file. */
static void drop_identity(int64_t **idx, int64_t k, int64_t n) {
  if (!*idx || k != n) return;
  for (int64_t i = 0; i < k; i++)
    if ((*idx)[i] != i) return;
  free(*idx);
  *idx = NULL;
}

/* Rows ridx[rk] and columns cidx[ck] of t (NULL: all), transposed when flip,
 * as one lazy selection of t's root parent. Indices are in range (checked by
 * the callers). t has data or is lazy. */
pf_status pf_lazy_select(const pf_tensor *t, const int64_t *ridx, int64_t rk, const int64_t *cidx,
                         int64_t ck, int flip, pf_tensor **out, pf_err *err) {
  *out = NULL;
  sel s = sel_of(t);
  /* in the parent's terms: which of t's dimensions is the parent's rows */
  const int64_t *pr = s.transposed ? cidx : ridx, *pc = s.transposed ? ridx : cidx;
  int64_t npr = s.transposed ? ck : rk, npc = s.transposed ? rk : ck;
  if (t->ndim == 1) { /* elements: columns of the one parent row */
    pr = NULL;
    pc = ridx ? ridx : cidx;
    npc = ridx ? rk : ck;
  }
  pf_lazy *l = calloc(1, sizeof *l);
  pf_tensor *o = NULL;
  if (!l) goto nomem;
  l->nr = pr ? npr : s.nr;
  l->nc = pc ? npc : s.nc;
  l->transposed = t->ndim == 2 && (s.transposed ^ (flip != 0));
  if ((pr ? compose(s.rows, pr, npr, &l->rows) : copy_idx(s.rows, s.nr, &l->rows)) ||
      (pc ? compose(s.cols, pc, npc, &l->cols) : copy_idx(s.cols, s.nc, &l->cols)))
    goto nomem;
  drop_identity(&l->rows, l->nr, parent_rows(s.base));
  drop_identity(&l->cols, l->nc, parent_cols(s.base));
  int64_t shape[2] = {l->transposed ? l->nc : l->nr, l->transposed ? l->nr : l->nc};
  pf_status st = t->ndim == 1 ? pf_tensor_new_planned(t->dtype, 1, &l->nc, &o, err)
                              : pf_tensor_new_planned(t->dtype, 2, shape, &o, err);
  if (st) {
    pf_lazy_free(l);
    return st;
  }
  pf_tensor_retain((pf_tensor *)s.base);
  l->parent = (pf_tensor *)s.base;
  o->lazy = l;
  *out = o;
  return PF_OK;
nomem:
  pf_lazy_free(l);
  return pf_err_set(err, PF_ERR_NOMEM, "lazy tensor: out of memory");
}

/* ---- gathering ---- */

static void gather_elems(char *d, const char *s, const int64_t *idx, int64_t n, size_t esz) {
  if (esz == 2) {
    for (int64_t c = 0; c < n; c++)
      memcpy(d + 2 * c, s + 2 * idx[c], 2);
  } else {
    for (int64_t c = 0; c < n; c++)
      memcpy(d + 4 * c, s + 4 * idx[c], 4);
  }
}

/* Output rows [i0, i1), columns [c0, c1) of l into dst, row after row. */
static void lazy_fill(const pf_lazy *l, size_t esz, int64_t i0, int64_t i1, int64_t c0, int64_t c1,
                      char *dst) {
  const char *pd = l->parent->data;
  const size_t prow = (size_t)parent_cols(l->parent) * esz;
  const int64_t w = c1 - c0;
  if (!l->transposed) {
    /* one thread: row copies are bound by memory, and the writer calls this
     * between write()s, where an OpenMP team would only spin */
    for (int64_t i = i0; i < i1; i++) {
      const char *s = pd + (size_t)(l->rows ? l->rows[i] : i) * prow;
      char *d = dst + (size_t)(i - i0) * (size_t)w * esz;
      if (l->cols)
        gather_elems(d, s, l->cols + c0, w, esz);
      else
        memcpy(d, s + (size_t)c0 * esz, (size_t)w * esz);
    }
    return;
  }
  /* out[i][j] = parent[rows[j]][cols[i]]: blocks of 16 output rows, so each
   * parent row read serves 16 nearby elements */
#pragma omp parallel for schedule(static) if ((i1 - i0) * w > (1 << 20))
  for (int64_t b = i0; b < i1; b += 16) {
    const int64_t be = b + 16 < i1 ? b + 16 : i1;
    for (int64_t j = c0; j < c1; j++) {
      const char *s = pd + (size_t)(l->rows ? l->rows[j] : j) * prow;
      for (int64_t i = b; i < be; i++) {
        char *d = dst + ((size_t)(i - i0) * (size_t)w + (size_t)(j - c0)) * esz;
        const char *e = s + (size_t)(l->cols ? l->cols[i] : i) * esz;
        if (esz == 2)
          memcpy(d, e, 2);
        else
          memcpy(d, e, 4);
      }
    }
  }
}

/* Output rows and columns of a lazy tensor. */
static void lazy_dims(const pf_tensor *t, int64_t *R, int64_t *C) {
  const pf_lazy *l = t->lazy;
  *R = t->ndim == 2 ? (l->transposed ? l->nc : l->nr) : 1;
  *C = t->ndim == 2 ? (l->transposed ? l->nr : l->nc) : l->nc;
}

void pf_lazy_read(const pf_tensor *t, size_t first, size_t n, void *dst) {
  int64_t R, C;
  lazy_dims(t, &R, &C);
  const size_t esz = pf_dtype_size(t->dtype);
  char *d = dst;
  if (n == 0 || C <= 0 || R <= 0) return;
  int64_t i = (int64_t)(first / (size_t)C), j = (int64_t)(first % (size_t)C);
  if (j) { /* the rest of a started row */
    int64_t k = (int64_t)n < C - j ? (int64_t)n : C - j;
    lazy_fill(t->lazy, esz, i, i + 1, j, j + k, d);
    d += (size_t)k * esz;
    n -= (size_t)k;
    i++;
  }
  int64_t full = (int64_t)(n / (size_t)C);
  if (full) {
    lazy_fill(t->lazy, esz, i, i + full, 0, C, d);
    d += (size_t)(full * C) * esz;
    n -= (size_t)(full * C);
    i += full;
  }
  if (n) lazy_fill(t->lazy, esz, i, i + 1, 0, (int64_t)n, d);
}

int pf_tensor_lazy_rows(const pf_tensor *t, const pf_tensor **parent, const int64_t **rows) {
  if (!t || !t->lazy || t->data || t->ndim != 2) return 0;
  const pf_lazy *l = t->lazy;
  if (l->cols || l->transposed || l->parent->ndim != 2) return 0;
  *parent = l->parent;
  *rows = l->rows;
  return 1;
}

int pf_tensor_lazy_selection(const pf_tensor *t, pf_lazy_sel *out) {
  if (!t || !t->lazy) return 0;
  const pf_lazy *l = t->lazy;
  *out = (pf_lazy_sel){.parent = l->parent,
                       .rows = l->rows,
                       .cols = l->cols,
                       .nr = l->nr,
                       .nc = l->nc,
                       .transposed = l->transposed};
  return 1;
}

void pf_lazy_release_pages(const pf_tensor *t) {
  pf_tensor_release_pages(t->lazy->parent);
}

/* ---- materialising ---- */

static pthread_mutex_t materialize_lock = PTHREAD_MUTEX_INITIALIZER;

static void fill_all(const void *job, int64_t r0, int64_t r1, char *dst) {
  const pf_tensor *t = job;
  int64_t R, C;
  lazy_dims(t, &R, &C);
  lazy_fill(t->lazy, pf_dtype_size(t->dtype), r0, r1, 0, C, dst);
}

pf_status pf_tensor_materialize(const pf_tensor *ct, pf_err *err) {
  if (!ct || !ct->lazy || __atomic_load_n(&ct->data, __ATOMIC_ACQUIRE)) return PF_OK;
  pf_tensor *t = (pf_tensor *)ct; /* a cache: the contents do not change */
  pf_status st = PF_OK;
  pthread_mutex_lock(&materialize_lock);
  if (!t->data) {
    int64_t R, C;
    lazy_dims(t, &R, &C);
    pf_storage *s = NULL;
    st = pf_storage_derived((size_t)R, (size_t)C * pf_dtype_size(t->dtype), fill_all, t, &s, err);
    if (st == PF_OK) {
      const void *d = pf_storage_data(s);
      t->storage = s;
      __atomic_store_n(&t->data, d ? d : (const void *)pf_tensor_empty_bytes, __ATOMIC_RELEASE);
      pf_tensor_release_pages(t->lazy->parent);
    }
  }
  pthread_mutex_unlock(&materialize_lock);
  return st;
}

const void *pf_tensor_data(const pf_tensor *t, pf_err *err) {
  if (!t || pf_tensor_materialize(t, err) != PF_OK) return NULL;
  return __atomic_load_n(&t->data, __ATOMIC_ACQUIRE);
}

/* ---- layout changes ---- */

pf_status pf_lazy_transpose(const pf_tensor *t, pf_tensor **out, pf_err *err) {
  return pf_lazy_select(t, NULL, 0, NULL, 0, 1, out, err);
}

pf_status pf_lazy_rows_view(const pf_tensor *t, int64_t r0, int64_t r1, pf_tensor **out,
                            pf_err *err) {
  *out = NULL;
  int64_t *idx = malloc((size_t)(r1 > r0 ? r1 - r0 : 1) * sizeof *idx);
  if (!idx) return pf_err_set(err, PF_ERR_NOMEM, "rows_view: out of memory");
  for (int64_t r = r0; r < r1; r++)
    idx[r - r0] = r;
  pf_status st = pf_lazy_select(t, idx, r1 - r0, NULL, 0, 0, out, err);
  free(idx);
  return st;
}

static int same_cols(const sel *a, const sel *b) {
  if (a->nc != b->nc || !a->cols != !b->cols) return 0;
  return !a->cols || !memcmp(a->cols, b->cols, (size_t)a->nc * sizeof *a->cols);
}

static int same_rows(const sel *a, const sel *b) {
  if (a->nr != b->nr || !a->rows != !b->rows) return 0;
  return !a->rows || !memcmp(a->rows, b->rows, (size_t)a->nr * sizeof *a->rows);
}

/* Transposed parts of one parent with the same parent rows (GPT-2's q, k and v
 * of the transposed c_attn): the transpose of the union of their columns. */
static int concat_transposed(const pf_tensor *const *parts, int n, pf_tensor **out, pf_status *st,
                             pf_err *err) {
  sel s0 = sel_of(parts[0]);
  int64_t k = 0;
  for (int i = 0; i < n; i++) {
    sel s = sel_of(parts[i]);
    if (!s.transposed || s.base != s0.base || !same_rows(&s, &s0)) return 0;
    k += s.nc;
  }
  int64_t *cols = malloc((size_t)(k ? k : 1) * sizeof *cols);
  if (!cols) {
    *st = pf_err_set(err, PF_ERR_NOMEM, "concat_rows: out of memory");
    return 1;
  }
  for (int i = 0, j = 0; i < n; i++) {
    sel s = sel_of(parts[i]);
    for (int64_t c = 0; c < s.nc; c++)
      cols[j++] = s.cols ? s.cols[c] : c;
  }
  *st = pf_lazy_select(s0.base, s0.rows, s0.nr, cols, k, 1, out, err);
  free(cols);
  return 1;
}

/* Parts (2-D, untransposed, the same columns) whose parents are one tensor or
 * adjacent row views of one storage (Phi-3's gate and up halves of gate_up):
 * rows of the parents' union; or transposed parts (concat_transposed). */
int pf_lazy_concat(const pf_tensor *const *parts, int n, pf_tensor **out, pf_status *st,
                   pf_err *err) {
  *out = NULL;
  if (n < 1 || parts[0]->ndim != 2) return 0;
  if (sel_of(parts[0]).transposed) return concat_transposed(parts, n, out, st, err);
  int64_t *off = malloc((size_t)n * sizeof *off), total = 0, k = 0;
  if (!off) {
    *st = pf_err_set(err, PF_ERR_NOMEM, "concat_rows: out of memory");
    return 1;
  }
  sel s0 = sel_of(parts[0]), prev = s0;
  off[0] = 0;
  for (int i = 0; i < n; i++) {
    sel s = sel_of(parts[i]);
    if (s.transposed || !same_cols(&s, &s0)) goto no;
    if (i > 0 && s.base != prev.base) {
      const pf_tensor *a = prev.base, *b = s.base;
      if (a->storage != b->storage || (const char *)a->data + a->nbytes != b->data) goto no;
      off[i] = off[i - 1] + parent_rows(a);
    } else if (i > 0) {
      off[i] = off[i - 1];
    }
    k += s.nr;
    prev = s;
  }
  total = off[n - 1] + parent_rows(prev.base);
  int64_t *rows = malloc((size_t)(k ? k : 1) * sizeof *rows);
  pf_tensor *base = NULL;
  *st = rows ? PF_OK : pf_err_set(err, PF_ERR_NOMEM, "concat_rows: out of memory");
  for (int i = 0, j = 0; *st == PF_OK && i < n; i++) {
    sel s = sel_of(parts[i]);
    for (int64_t r = 0; r < s.nr; r++)
      rows[j++] = off[i] + (s.rows ? s.rows[r] : r);
  }
  if (*st == PF_OK) {
    const pf_tensor *b0 = s0.base;
    const size_t o = (size_t)((const char *)b0->data - (const char *)pf_storage_data(b0->storage));
    int64_t shape[2] = {total, parent_cols(b0)};
    *st = pf_tensor_view(b0->storage, o, b0->dtype, 2, shape, &base, err);
  }
  if (*st == PF_OK) *st = pf_lazy_select(base, rows, k, s0.cols, s0.nc, 0, out, err);
  pf_tensor_release(base);
  free(rows);
  free(off);
  return 1;
no:
  free(off);
  return 0;
}
