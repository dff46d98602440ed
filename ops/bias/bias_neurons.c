/* bias_neurons.c — the neuron-level bias analysis: per-key accumulation of
 * |mean over positions of a1 - of a2| over pairs, gathered across MPI ranks, and
 * the top neurons (see bias_metrics.h). FMA contraction is off, as in
 * bias_metrics.c, so that every float32 operation rounds where torch's does. */
#pragma GCC optimize("fp-contract=off")
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bias.h"
#include "bias_metrics.h"
#include "dist.h"

/* ---- neuron level ---- */

struct pf_neuron_acc {
  size_t n, cap;
  char **keys;
  int64_t *dims;  /* [n] D */
  int64_t *count; /* [n] pairs holding the key */
  double **sum;   /* [n][D] */
  float **max;    /* [n][D] */
};

pf_status pf_neuron_acc_new(pf_neuron_acc **out, pf_err *err) {
  *out = calloc(1, sizeof **out);
  return *out ? PF_OK : pf_err_set(err, PF_ERR_NOMEM, "neurons: out of memory");
}

void pf_neuron_acc_free(pf_neuron_acc *a) {
  if (!a) return;
  for (size_t i = 0; i < a->n; i++) {
    free(a->keys[i]);
    free(a->sum[i]);
    free(a->max[i]);
  }
  free(a->keys);
  free(a->dims);
  free(a->count);
  free(a->sum);
  free(a->max);
  free(a);
}

static int acc_grow(pf_neuron_acc *a) {
  if (a->n < a->cap) return 1;
  size_t cap = a->cap ? a->cap * 2 : 16;
  char **k = realloc(a->keys, cap * sizeof *k);
  if (k) a->keys = k;
  int64_t *d = realloc(a->dims, cap * sizeof *d);
  if (d) a->dims = d;
  int64_t *c = realloc(a->count, cap * sizeof *c);
  if (c) a->count = c;
  double **s = realloc(a->sum, cap * sizeof *s);
  if (s) a->sum = s;
  float **m = realloc(a->max, cap * sizeof *m);
  if (m) a->max = m;
  if (!k || !d || !c || !s || !m) return 0;
  a->cap = cap;
  return 1;
}

/* The slot of key (created with width D); -1 on NOMEM, -2 on a width mismatch. */
static ptrdiff_t acc_slot(pf_neuron_acc *a, const char *key, int64_t D) {
  for (size_t i = 0; i < a->n; i++)
    if (strcmp(a->keys[i], key) == 0) return a->dims[i] == D ? (ptrdiff_t)i : -2;
  if (!acc_grow(a)) return -1;
  size_t i = a->n;
  a->keys[i] = strdup(key);
  a->sum[i] = calloc((size_t)D, sizeof(double));
  a->max[i] = calloc((size_t)D, sizeof(float));
  if (!a->keys[i] || !a->sum[i] || !a->max[i]) {
    free(a->keys[i]);
    free(a->sum[i]);
    free(a->max[i]);
    return -1;
  }
  a->dims[i] = D;
  a->count[i] = 0;
  a->n++;
  return (ptrdiff_t)i;
}

/* |pool(t1) - pool(t2)| (float32) into the slot of key. */
static pf_status acc_key(pf_neuron_acc *a, const char *key, const pf_tensor *t1,
                         const pf_tensor *t2, pf_err *err) {
  if (t1->ndim < 2 || t2->ndim < 2)
    return pf_err_set(err, PF_ERR_INVALID,
                      "Activation tensor for %s must have at least 2 dimensions", key);
  int64_t D = t1->shape[t1->ndim - 1];
  ptrdiff_t s = D == t2->shape[t2->ndim - 1] ? acc_slot(a, key, D) : -2;
  if (s == -2)
    return pf_err_set(err, PF_ERR_INVALID, "%s: activations of different widths (%lld vs %lld)",
                      key, (long long)D, (long long)t2->shape[t2->ndim - 1]);
  float *p = s >= 0 ? malloc(sizeof(float) * (size_t)(2 * D)) : NULL;
  if (!p) return pf_err_set(err, PF_ERR_NOMEM, "neurons: out of memory");
  pf_status st = pf_bias_pool_rows(t1->data, pf_tensor_numel(t1) / D, D, p, err);
  if (!st) st = pf_bias_pool_rows(t2->data, pf_tensor_numel(t2) / D, D, p + D, err);
  for (int64_t d = 0; !st && d < D; d++) {
    float x = fabsf(p[d] - p[D + d]), *mx = &a->max[s][d];
    a->sum[s][d] += x;
    if (a->count[s] == 0 || isnan(x) || x > *mx) *mx = x; /* torch.max propagates NaN */
  }
  if (!st) a->count[s]++;
  free(p);
  return st;
}

pf_status pf_neuron_acc_add(pf_neuron_acc *a, const pf_value *act1, const pf_value *act2,
                            pf_err *err) {
  if (!act1 || act1->type != PF_V_MAP || !act2 || act2->type != PF_V_MAP)
    return pf_err_set(err, PF_ERR_INVALID, "act1/act2: expected maps of activations");
  size_t *order = pf_bias_key_order(act1);
  pf_status st = order ? PF_OK : pf_err_set(err, PF_ERR_NOMEM, "neurons: out of memory");
  for (size_t i = 0; !st && i < act1->u.map.len; i++) {
    const char *key = act1->u.map.keys[order[i]];
    const pf_value *v2 = pf_map_get(act2, key);
    const pf_tensor *t1, *t2;
    if (!v2) continue;
    st = pf_bias_act_tensor(act1->u.map.vals[order[i]], "act1", key, &t1, err);
    if (!st) st = pf_bias_act_tensor(v2, "act2", key, &t2, err);
    if (!st) st = acc_key(a, key, t1, t2, err);
  }
  free(order);
  return st;
}

/* One rank's accumulator as a value: [{key, count, sum: [..], max: [..]}, ...]. */
static pf_value *acc_pack(const pf_neuron_acc *a) {
  static const char *const names[2] = {"sum", "max"};
  pf_value *l = pf_value_list();
  for (size_t i = 0; l && i < a->n; i++) {
    pf_value *e = pf_value_map(), *v[2] = {pf_value_list(), pf_value_list()};
    pf_status st = e && v[0] && v[1] ? PF_OK : PF_ERR_NOMEM;
    for (int64_t d = 0; !st && d < a->dims[i]; d++)
      if ((st = pf_list_push(v[0], pf_value_num(a->sum[i][d]))) == PF_OK)
        st = pf_list_push(v[1], pf_value_num((double)a->max[i][d]));
    if (!st) st = pf_map_set_str(e, "key", a->keys[i]);
    if (!st) st = pf_map_set_int(e, "count", a->count[i]);
    for (int j = 0; j < 2; j++) /* pf_map_set takes v[j], also when it fails */
      if (!st)
        st = pf_map_set(e, names[j], v[j]);
      else
        pf_value_release(v[j]);
    if (!st)
      st = pf_list_push(l, e); /* takes e */
    else
      pf_value_release(e);
    if (st) {
      pf_value_release(l);
      return NULL;
    }
  }
  return l;
}

pf_status pf_neuron_acc_gather(pf_neuron_acc *a, pf_err *err) {
  if (pf_dist_size() < 2) return PF_OK;
  pf_value *mine = acc_pack(a), *all = NULL;
  pf_status st = mine ? pf_dist_allgather_list(mine, NULL, NULL, &all, err)
                      : pf_err_set(err, PF_ERR_NOMEM, "neurons: out of memory");
  pf_value_release(mine);
  pf_neuron_acc fresh = {0};
  for (size_t j = 0; !st && j < all->u.list.len; j++) { /* rank 0's entries first */
    const pf_value *e = all->u.list.items[j], *sum = pf_map_get(e, "sum"),
                   *mx = pf_map_get(e, "max");
    const int64_t D = (int64_t)sum->u.list.len;
    const ptrdiff_t k = acc_slot(&fresh, pf_map_str(e, "key", ""), D);
    if (k < 0) {
      st = k == -2 ? pf_err_set(err, PF_ERR_INVALID, "%s: ranks saw different widths",
                                pf_map_str(e, "key", ""))
                   : pf_err_set(err, PF_ERR_NOMEM, "neurons: out of memory");
      break;
    }
    const int64_t c = (int64_t)pf_map_num(e, "count", 0);
    for (int64_t d = 0; d < D && c > 0; d++) {
      const float x = (float)mx->u.list.items[d]->u.n, *cur = &fresh.max[k][d];
      fresh.sum[k][d] += sum->u.list.items[d]->u.n;
      if (fresh.count[k] == 0 || isnan(x) || x > *cur) fresh.max[k][d] = x; /* as acc_key */
    }
    fresh.count[k] += c;
  }
  pf_value_release(all);
  if (st) {
    for (size_t i = 0; i < fresh.n; i++)
      free(fresh.keys[i]), free(fresh.sum[i]), free(fresh.max[i]);
    free(fresh.keys), free(fresh.dims), free(fresh.count), free(fresh.sum), free(fresh.max);
    return st;
  }
  for (size_t i = 0; i < a->n; i++)
    free(a->keys[i]), free(a->sum[i]), free(a->max[i]);
  free(a->keys), free(a->dims), free(a->count), free(a->sum), free(a->max);
  *a = fresh;
  return PF_OK;
}

static pf_value *acc_list(const pf_neuron_acc *a, size_t i, int use_max) {
  pf_value *l = pf_value_list();
  for (int64_t d = 0; l && d < a->dims[i]; d++) {
    float v = use_max ? a->max[i][d] : (float)a->sum[i][d] / (float)a->count[i];
    if (pf_list_push(l, pf_value_num(v)) != PF_OK) {
      pf_value_release(l);
      return NULL;
    }
  }
  return l;
}

pf_status pf_neuron_acc_result(const pf_neuron_acc *a, int use_max, pf_value **out, pf_err *err) {
  pf_value *m = pf_value_map();
  pf_status st = m ? PF_OK : PF_ERR_NOMEM;
  for (size_t i = 0; !st && i < a->n; i++)
    st = pf_map_set(m, a->keys[i], acc_list(a, i, use_max));
  if (st) {
    pf_value_release(m);
    return pf_err_set(err, PF_ERR_NOMEM, "neurons: out of memory");
  }
  *out = m;
  return PF_OK;
}

static double num_of(const pf_value *v) {
  return v->type == PF_V_NUM ? v->u.n : v->type == PF_V_INT ? (double)v->u.i : NAN;
}

typedef struct ranked {
  double v;
  uint32_t key, neuron;
} ranked;

static int cmp_ranked(const void *x, const void *y) {
  const ranked *a = x, *b = y;
  int an = isnan(a->v), bn = isnan(b->v);
  if (an != bn) return an ? 1 : -1;
  if (!an && a->v != b->v) return a->v > b->v ? -1 : 1;
  if (a->key != b->key) return a->key < b->key ? -1 : 1;
  return a->neuron < b->neuron ? -1 : (a->neuron > b->neuron);
}

static pf_value *top_entry(const char *key, uint32_t neuron, double v) {
  char comp[96];
  pf_value *e = pf_value_map();
  pf_status st = e ? pf_map_set_str(e, "key", key) : PF_ERR_NOMEM;
  if (!st) st = pf_map_set_int(e, "layer", pf_bias_key_layer(key));
  if (!st)
    st = pf_map_set_str(e, "component", pf_bias_key_component(key, comp, sizeof comp) ? comp : key);
  if (!st) st = pf_map_set_int(e, "neuron", neuron);
  if (!st) st = pf_map_set_num(e, "difference", v);
  if (st) {
    pf_value_release(e);
    return NULL;
  }
  return e;
}

pf_status pf_neuron_top(const pf_value *result, int64_t top_n, pf_value **out, pf_err *err) {
  size_t total = 0;
  for (size_t i = 0; i < result->u.map.len; i++)
    if (result->u.map.vals[i]->type == PF_V_LIST) total += result->u.map.vals[i]->u.list.len;
  ranked *r = malloc(sizeof *r * (total ? total : 1));
  pf_value *l = pf_value_list();
  pf_status st = r && l ? PF_OK : PF_ERR_NOMEM;
  size_t n = 0;
  for (size_t i = 0; !st && i < result->u.map.len; i++) {
    const pf_value *v = result->u.map.vals[i];
    for (size_t d = 0; v->type == PF_V_LIST && d < v->u.list.len; d++)
      r[n++] = (ranked){num_of(v->u.list.items[d]), (uint32_t)i, (uint32_t)d};
  }
  if (!st) qsort(r, n, sizeof *r, cmp_ranked);
  for (size_t k = 0; !st && k < n && (int64_t)k < top_n; k++)
    st = pf_list_push(l, top_entry(result->u.map.keys[r[k].key], r[k].neuron, r[k].v));
  free(r);
  if (st) {
    pf_value_release(l);
    return pf_err_set(err, PF_ERR_NOMEM, "neurons: out of memory");
  }
  *out = l;
  return PF_OK;
}
