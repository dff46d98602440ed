/* bias_metrics.c — calculate_bias_metrics (reference §9) and the before/after
 * comparisons (see bias_metrics.h for the arithmetic; the neuron level is in
 * bias_neurons.c). FMA contraction is off so that every float32 operation rounds
 * where torch's does. */
#pragma GCC optimize("fp-contract=off")
#include "bias_metrics.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bias.h"

/* ---- float32 reductions ---- */

/* torch: x.mean() of float32 = float32(sum) / n. */
static float mean_f32(const float *v, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; i++)
    s += v[i];
  return (float)s / (float)n;
}

/* |a - b| (float32) averaged over n elements. */
static float mean_abs_diff(const float *a, const float *b, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; i++)
    s += fabsf(a[i] - b[i]);
  return (float)s / (float)n;
}

/* Mean over every dimension but the last: a[rows, D] -> out[D] (float32). */
pf_status pf_bias_pool_rows(const float *a, int64_t rows, int64_t D, float *out, pf_err *err) {
  double *acc = calloc((size_t)D, sizeof *acc);
  if (!acc) return pf_err_set(err, PF_ERR_NOMEM, "metrics: out of memory");
  for (int64_t r = 0; r < rows; r++)
    for (int64_t d = 0; d < D; d++)
      acc[d] += a[r * D + d];
  for (int64_t d = 0; d < D; d++)
    out[d] = (float)acc[d] / (float)rows;
  free(acc);
  return PF_OK;
}

pf_status pf_bias_put_stats(pf_value *map, const float *v, size_t n) {
  float mean = mean_f32(v, n), mx = v[0], mn = v[0];
  double l1 = 0, l2 = 0, ss = 0;
  for (size_t i = 0; i < n; i++) {
    if (isnan(v[i]) || isnan(mx))
      mx = NAN;
    else if (v[i] > mx)
      mx = v[i];
    if (isnan(v[i]) || isnan(mn))
      mn = NAN;
    else if (v[i] < mn)
      mn = v[i];
    l1 += fabs((double)v[i]);
    l2 += (double)v[i] * v[i];
    ss += ((double)v[i] - mean) * ((double)v[i] - mean);
  }
  double sd = n < 2 ? NAN : (double)(float)sqrt(ss / (double)(n - 1));
  pf_status st = pf_map_set_num(map, "mean_difference", mean);
  if (!st) st = pf_map_set_num(map, "max_difference", mx);
  if (!st) st = pf_map_set_num(map, "min_difference", mn);
  if (!st) st = pf_map_set_num(map, "std_difference", sd);
  if (!st) st = pf_map_set_num(map, "l1_norm", (float)l1);
  if (!st) st = pf_map_set_num(map, "l2_norm", (float)sqrt(l2));
  return st;
}

/* ---- keys ---- */

/* The part of key before "_layer_" when key.split("_layer_") has exactly 2 parts. */
int pf_bias_key_component(const char *key, char *out, size_t n) {
  const char *p = strstr(key, "_layer_");
  if (!p || strstr(p + 7, "_layer_") || (size_t)(p - key) >= n) return 0;
  memcpy(out, key, (size_t)(p - key));
  out[p - key] = '\0';
  return 1;
}

static int type_rank(const char *key) {
  static const char *const order[] = {"input_norm",      "attention_output", "gate_proj", "up_proj",
                                      "down_proj_input", "down_proj",        "mlp_output"};
  char c[96];
  if (!pf_bias_key_component(key, c, sizeof c)) return 7;
  for (int i = 0; i < 7; i++)
    if (strcmp(c, order[i]) == 0) return i;
  return 7;
}

typedef struct korder {
  size_t idx;
  int64_t layer;
  int rank;
} korder;

static int cmp_korder(const void *a, const void *b) {
  const korder *x = a, *y = b;
  int xv = x->layer >= 0, yv = y->layer >= 0;
  if (xv != yv) return xv ? -1 : 1;
  if (xv && x->layer != y->layer) return x->layer < y->layer ? -1 : 1;
  if (xv && x->rank != y->rank) return x->rank < y->rank ? -1 : 1;
  return x->idx < y->idx ? -1 : (x->idx > y->idx);
}

/* Map entry indices in hook-firing order (malloc'd [map len]; NULL on NOMEM). */
size_t *pf_bias_key_order(const pf_value *map) {
  size_t n = map->u.map.len;
  korder *k = malloc(sizeof *k * (n ? n : 1));
  size_t *out = malloc(sizeof *out * (n ? n : 1));
  if (!k || !out) {
    free(k);
    free(out);
    return NULL;
  }
  for (size_t i = 0; i < n; i++) {
    const char *key = map->u.map.keys[i];
    k[i] = (korder){i, strstr(key, "_layer_") ? pf_bias_key_layer(key) : -1, type_rank(key)};
  }
  qsort(k, n, sizeof *k, cmp_korder);
  for (size_t i = 0; i < n; i++)
    out[i] = k[i].idx;
  free(k);
  return out;
}

pf_status pf_bias_act_tensor(const pf_value *v, const char *side, const char *key,
                             const pf_tensor **out, pf_err *err) {
  const pf_tensor *t = v && v->type == PF_V_TENSOR ? v->u.tensor : NULL;
  if (!t)
    return pf_err_set(err, PF_ERR_INVALID, "%s.%s: expected a tensor (activations), got %s", side,
                      key, v ? pf_vtype_name(v->type) : "nothing");
  pf_status st = pf_tensor_materialize(t, err); /* a lazy tensor (tensor.h) gets its bytes */
  if (st) return pf_err_prefix(err, "%s.%s", side, key);
  if (t->dtype != PF_DTYPE_F32 || !t->data || t->ndim < 1 || pf_tensor_numel(t) <= 0)
    return pf_err_set(err, PF_ERR_INVALID, "%s.%s: expected a non-empty float32 tensor, got %s",
                      side, key, t->data ? pf_dtype_torch_name(t->dtype) : "a planned tensor");
  *out = t;
  return PF_OK;
}

static int same_shape(const pf_tensor *a, const pf_tensor *b) {
  if (a->ndim != b->ndim) return 0;
  for (int i = 0; i < a->ndim; i++)
    if (a->shape[i] != b->shape[i]) return 0;
  return 1;
}

/* The difference value of one key (§9.1), or pooled; *skip when incomparable. */
static pf_status key_diff(const pf_tensor *t1, const pf_tensor *t2, float *v, int *pooled,
                          int *skip, pf_err *err) {
  const float *a = t1->data, *b = t2->data;
  int64_t D = t1->shape[t1->ndim - 1];
  *skip = 0;
  if (same_shape(t1, t2)) {
    *v = mean_abs_diff(a, b, (size_t)pf_tensor_numel(t1));
    return PF_OK;
  }
  if (D != t2->shape[t2->ndim - 1]) {
    *skip = 1; /* OptiPFair: "Shape mismatch for <key>", skipped */
    return PF_OK;
  }
  float *p = malloc(sizeof(float) * (size_t)(2 * D));
  if (!p) return pf_err_set(err, PF_ERR_NOMEM, "metrics: out of memory");
  pf_status st = pf_bias_pool_rows(a, pf_tensor_numel(t1) / D, D, p, err);
  if (!st) st = pf_bias_pool_rows(b, pf_tensor_numel(t2) / D, D, p + D, err);
  if (!st) *v = mean_abs_diff(p, p + D, (size_t)D);
  free(p);
  *pooled = 1;
  return st;
}

/* ---- calculate_bias_metrics ---- */

typedef struct diffs {
  const char **keys; /* borrowed from act1 */
  float *v;
  size_t n;
} diffs;

static pf_status collect_diffs(const pf_value *act1, const pf_value *act2, diffs *d, int *pooled,
                               pf_err *err) {
  size_t n = act1->u.map.len, *order = pf_bias_key_order(act1);
  d->keys = malloc(sizeof *d->keys * (n ? n : 1));
  d->v = malloc(sizeof *d->v * (n ? n : 1));
  d->n = 0;
  pf_status st = order && d->keys && d->v ? PF_OK : pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  for (size_t i = 0; !st && i < n; i++) {
    const char *key = act1->u.map.keys[order[i]];
    const pf_value *v2 = pf_map_get(act2, key);
    const pf_tensor *t1, *t2;
    int skip = 1;
    if (!v2) continue;
    st = pf_bias_act_tensor(act1->u.map.vals[order[i]], "act1", key, &t1, err);
    if (!st) st = pf_bias_act_tensor(v2, "act2", key, &t2, err);
    if (!st) st = key_diff(t1, t2, &d->v[d->n], pooled, &skip, err);
    if (!st && !skip) d->keys[d->n++] = key;
  }
  free(order);
  return st;
}

/* Component groups in first-appearance order: group[i] of diff i (-1 = none). */
typedef struct groups {
  char (*names)[96];
  int *of;
  size_t n;
} groups;

static pf_status make_groups(const diffs *d, groups *g, pf_err *err) {
  g->names = calloc(d->n ? d->n : 1, sizeof *g->names);
  g->of = calloc(d->n ? d->n : 1, sizeof *g->of);
  g->n = 0;
  if (!g->names || !g->of) return pf_err_set(err, PF_ERR_NOMEM, "metrics: out of memory");
  for (size_t i = 0; i < d->n; i++) {
    char c[96];
    g->of[i] = -1;
    if (!pf_bias_key_component(d->keys[i], c, sizeof c)) continue;
    size_t j = 0;
    while (j < g->n && strcmp(g->names[j], c) != 0)
      j++;
    if (j == g->n) memcpy(g->names[g->n++], c, sizeof c);
    g->of[i] = (int)j;
  }
  return PF_OK;
}

/* progression_metrics of group gi (§9.2), keys sorted by layer number. */
static pf_value *progression(const diffs *d, const groups *g, int gi) {
  size_t *k = malloc(sizeof *k * d->n), m = 0;
  if (!k) return NULL;
  for (size_t i = 0; i < d->n; i++) {
    if (g->of[i] != gi) continue;
    size_t j = m++; /* stable insertion by layer number */
    while (j > 0 && pf_bias_key_layer(d->keys[k[j - 1]]) > pf_bias_key_layer(d->keys[i])) {
      k[j] = k[j - 1];
      j--;
    }
    k[j] = i;
  }
  double first = d->v[k[0]], last = d->v[k[m - 1]], mx = d->v[k[0]];
  size_t at = 0;
  for (size_t j = 1; j < m; j++)
    if (d->v[k[j]] > mx) mx = d->v[k[j]], at = j;
  pf_value *p = pf_value_map(), *by = pf_value_map();
  pf_status st = p && by ? PF_OK : PF_ERR_NOMEM;
  if (!st) st = pf_map_set_num(p, "first_to_last_ratio", first != 0 ? last / first : INFINITY);
  if (!st) st = pf_map_set_num(p, "max_to_first_ratio", first != 0 ? mx / first : INFINITY);
  if (!st) st = pf_map_set_bool(p, "is_increasing", last > first);
  if (!st) st = pf_map_set_str(p, "layer_with_max_diff", d->keys[k[at]]);
  for (size_t j = 0; !st && j < m; j++)
    st = pf_map_set_num(by, d->keys[k[j]], (double)d->v[k[j]]);
  if (!st)
    st = pf_map_set(p, "mean_diffs_by_layer", by);
  else
    pf_value_release(by);
  free(k);
  if (st) {
    pf_value_release(p);
    return NULL;
  }
  return p;
}

static pf_value *component_entry(const diffs *d, const groups *g, int gi) {
  float *vals = malloc(sizeof *vals * d->n);
  pf_value *c = pf_value_map();
  size_t m = 0;
  pf_status st = vals && c ? PF_OK : PF_ERR_NOMEM;
  for (size_t i = 0; !st && i < d->n; i++)
    if (g->of[i] == gi) vals[m++] = d->v[i];
  if (!st) st = pf_bias_put_stats(c, vals, m);
  if (!st) st = pf_map_set_int(c, "num_layers", (int64_t)m);
  if (!st && m >= 2) st = pf_map_set(c, "progression_metrics", progression(d, g, gi));
  free(vals);
  if (st) {
    pf_value_release(c);
    return NULL;
  }
  return c;
}

/* {mean_difference, ..., l2_norm} of one layer's value. */
static pf_value *layer_entry(float v) {
  pf_value *e = pf_value_map();
  if (e && pf_bias_put_stats(e, &v, 1) != PF_OK) {
    pf_value_release(e);
    return NULL;
  }
  return e;
}

/* The three maps are created first and filled in place, so that the keys come
 * out in OptiPFair's order (layer, overall, component) whatever is computed first. */
static pf_status build_metrics(const diffs *d, pf_value *out, pf_err *err) {
  groups g = {0};
  pf_value *lm = pf_value_map(), *om = pf_value_map(), *cm = pf_value_map();
  pf_status st = pf_map_set(out, "layer_metrics", lm);
  if (!st)
    st = pf_map_set(out, "overall_metrics", om);
  else
    pf_value_release(om);
  if (!st)
    st = pf_map_set(out, "component_metrics", cm);
  else
    pf_value_release(cm);
  if (!st) st = make_groups(d, &g, err);
  for (size_t i = 0; !st && i < d->n; i++)
    st = pf_map_set(lm, d->keys[i], layer_entry(d->v[i]));
  for (size_t j = 0; !st && j < g.n; j++)
    st = pf_map_set(cm, g.names[j], component_entry(d, &g, (int)j));
  if (!st) st = pf_bias_put_stats(om, d->v, d->n);
  if (!st) st = pf_map_set_int(om, "total_layers", (int64_t)d->n);
  free(g.names);
  free(g.of);
  return st == PF_ERR_NOMEM ? pf_err_set(err, st, "metrics: out of memory") : st;
}

pf_status pf_bias_pair_metrics(const pf_value *act1, const pf_value *act2, pf_value **out,
                               int *pooled, pf_err *err) {
  *out = NULL;
  *pooled = 0;
  if (!act1 || act1->type != PF_V_MAP || !act2 || act2->type != PF_V_MAP)
    return pf_err_set(err, PF_ERR_INVALID, "act1/act2: expected maps of activations");
  diffs d = {0};
  pf_value *m = pf_value_map();
  pf_status st = m ? collect_diffs(act1, act2, &d, pooled, err)
                   : pf_err_set(err, PF_ERR_NOMEM, "metrics: out of memory");
  if (!st && d.n) st = build_metrics(&d, m, err);
  free(d.keys);
  free(d.v);
  if (st) {
    pf_value_release(m);
    return st;
  }
  *out = m;
  return PF_OK;
}

/* ---- bias_activations results ---- */

static pf_status pair_view(const pf_value *p, size_t i, const char *what, pf_bias_pair *out,
                           pf_err *err) {
  if (p->type != PF_V_MAP)
    return pf_err_set(err, PF_ERR_INVALID, "%s.pairs[%zu]: expected a map, got %s", what, i,
                      pf_vtype_name(p->type));
  out->index = pf_map_int(p, "index", (int64_t)i + 1);
  out->prompt1 = pf_map_str(p, "prompt1", "");
  out->prompt2 = pf_map_str(p, "prompt2", "");
  out->act1 = pf_map_get(p, "act1");
  out->act2 = pf_map_get(p, "act2");
  if (!out->act1 || out->act1->type != PF_V_MAP || !out->act2 || out->act2->type != PF_V_MAP)
    return pf_err_set(err, PF_ERR_INVALID,
                      "%s.pairs[%zu]: expected maps of activations under \"act1\" and \"act2\"",
                      what, i);
  return PF_OK;
}

pf_status pf_bias_result_pairs(const pf_value *res, const char *what, pf_bias_pair **pairs,
                               size_t *n, pf_err *err) {
  *pairs = NULL;
  *n = 0;
  const pf_value *l = res && res->type == PF_V_MAP ? pf_map_get(res, "pairs") : NULL;
  if (!l || l->type != PF_V_LIST)
    return pf_err_set(
        err, PF_ERR_INVALID,
        "%s: expected a bias_activations result (a map with a list \"pairs\"), got %s", what,
        res ? pf_vtype_name(res->type) : "nothing");
  *pairs = calloc(l->u.list.len ? l->u.list.len : 1, sizeof **pairs);
  if (!*pairs) return pf_err_set(err, PF_ERR_NOMEM, "%s: out of memory", what);
  for (size_t i = 0; i < l->u.list.len; i++) {
    pf_status st = pair_view(l->u.list.items[i], i, what, &(*pairs)[i], err);
    if (st) {
      free(*pairs);
      *pairs = NULL;
      return st;
    }
  }
  *n = l->u.list.len;
  return PF_OK;
}

static pf_value *pair_entry(const pf_bias_pair *p, pf_value *metrics, int pooled) {
  pf_value *e = pf_value_map();
  pf_status st = e ? pf_map_set_str(e, "prompt1", p->prompt1) : PF_ERR_NOMEM;
  if (!st) st = pf_map_set_str(e, "prompt2", p->prompt2);
  if (!st) {
    st = pf_map_set(e, "metrics", metrics); /* steals metrics */
    metrics = NULL;
  }
  if (!st) st = pf_map_set_str(e, "aligned", pooled ? "mean_pooled" : "exact");
  pf_value_release(metrics);
  if (st) {
    pf_value_release(e);
    return NULL;
  }
  return e;
}

/* Running sums of mean_difference per component (first-seen order) + overall. */
typedef struct sums {
  pf_value *sum, *cnt; /* maps name -> num / int */
} sums;

static pf_status sums_add(sums *s, const char *name, const pf_value *entry) {
  const pf_value *md = entry ? pf_map_get(entry, "mean_difference") : NULL;
  if (!md || md->type != PF_V_NUM) return PF_OK;
  pf_status st = pf_map_set_num(s->sum, name, pf_map_num(s->sum, name, 0) + md->u.n);
  if (!st) st = pf_map_set_int(s->cnt, name, pf_map_int(s->cnt, name, 0) + 1);
  return st;
}

static pf_status sums_pair(sums *s, const pf_value *metrics) {
  const pf_value *cm = pf_map_get(metrics, "component_metrics");
  pf_status st = PF_OK;
  for (size_t i = 0; !st && cm && cm->type == PF_V_MAP && i < cm->u.map.len; i++)
    st = sums_add(s, cm->u.map.keys[i], cm->u.map.vals[i]);
  if (!st) st = sums_add(s, "overall", pf_map_get(metrics, "overall_metrics"));
  return st;
}

/* {"<component>": mean, ..., "overall": mean or null}. */
static pf_value *sums_summary(const sums *s) {
  pf_value *out = pf_value_map();
  pf_status st = out ? PF_OK : PF_ERR_NOMEM;
  for (size_t i = 0; !st && i < s->sum->u.map.len; i++) {
    const char *k = s->sum->u.map.keys[i];
    if (strcmp(k, "overall") == 0) continue;
    st = pf_map_set_num(out, k, pf_map_num(s->sum, k, 0) / (double)pf_map_int(s->cnt, k, 1));
  }
  if (!st)
    st = pf_map_set(out, "overall",
                    pf_map_has(s->sum, "overall")
                        ? pf_value_num(pf_map_num(s->sum, "overall", 0) /
                                       (double)pf_map_int(s->cnt, "overall", 1))
                        : pf_value_null());
  if (st) {
    pf_value_release(out);
    return NULL;
  }
  return out;
}

pf_status pf_bias_metrics_all(const pf_bias_pair *pairs, size_t n, pf_value **pairs_out,
                              pf_value **summary, pf_err *err) {
  *pairs_out = NULL;
  *summary = NULL;
  sums s = {pf_value_map(), pf_value_map()};
  pf_value *po = pf_value_map();
  pf_status st = s.sum && s.cnt && po ? PF_OK : pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  for (size_t i = 0; !st && i < n; i++) {
    pf_value *m = NULL;
    int pooled = 0;
    st = pf_bias_pair_metrics(pairs[i].act1, pairs[i].act2, &m, &pooled, err);
    if (st) {
      pf_err_prefix(err, "pair %lld", (long long)pairs[i].index);
      break;
    }
    char key[40];
    snprintf(key, sizeof key, "pair_%lld", (long long)pairs[i].index);
    pf_value *e = pair_entry(&pairs[i], m, pooled); /* consumes m */
    if (pf_map_set(po, key, e) != PF_OK || sums_pair(&s, pf_map_get(e, "metrics")) != PF_OK)
      st = pf_err_set(err, PF_ERR_NOMEM, "metrics: out of memory");
  }
  if (!st && !(*summary = sums_summary(&s)))
    st = pf_err_set(err, PF_ERR_NOMEM, "metrics: out of memory");
  pf_value_release(s.sum);
  pf_value_release(s.cnt);
  if (st) {
    pf_value_release(po);
    return st;
  }
  *pairs_out = po;
  return PF_OK;
}

/* ---- before / after ---- */

/* {before, after, change_percent}; a NaN side is missing (null). */
static pf_value *change_entry(double before, double after) {
  double change = NAN;
  if (!isnan(before) && !isnan(after)) {
    if (before != 0)
      change = (after / before - 1.0) * 100.0;
    else if (after != 0)
      change = after > 0 ? INFINITY : -INFINITY;
  }
  pf_value *e = pf_value_map();
  pf_status st = e ? PF_OK : PF_ERR_NOMEM;
  if (!st) st = pf_map_set(e, "before", isnan(before) ? pf_value_null() : pf_value_num(before));
  if (!st) st = pf_map_set(e, "after", isnan(after) ? pf_value_null() : pf_value_num(after));
  if (!st) st = pf_map_set_num(e, "change_percent", change);
  if (st) {
    pf_value_release(e);
    return NULL;
  }
  return e;
}

/* mean_difference of component `c` ("overall" = overall_metrics), NaN when absent. */
static double pair_mean(const pf_value *pair, const char *c) {
  const pf_value *m = pf_map_get(pair, "metrics"), *e;
  if (strcmp(c, "overall") == 0)
    e = pf_map_get(m, "overall_metrics");
  else
    e = pf_map_get(pf_map_get(m, "component_metrics"), c);
  const pf_value *md = e ? pf_map_get(e, "mean_difference") : NULL;
  return md && md->type == PF_V_NUM ? md->u.n : NAN;
}

/* Component names of both sides (before's order, then after's new ones), then "overall". */
static pf_status component_names(const pf_value *bp, const pf_value *ap, pf_value **names) {
  pf_value *n = pf_value_map();
  pf_status st = n ? PF_OK : PF_ERR_NOMEM;
  const pf_value *sides[2] = {bp, ap};
  for (int s = 0; s < 2; s++)
    for (size_t i = 0; !st && i < sides[s]->u.map.len; i++) {
      const pf_value *cm =
          pf_map_get(pf_map_get(sides[s]->u.map.vals[i], "metrics"), "component_metrics");
      for (size_t j = 0; !st && cm && cm->type == PF_V_MAP && j < cm->u.map.len; j++)
        if (!pf_map_get(n, cm->u.map.keys[j])) st = pf_map_set_bool(n, cm->u.map.keys[j], 1);
    }
  if (!st) st = pf_map_set_bool(n, "overall", 1);
  if (st) pf_value_release(n);
  *names = st ? NULL : n;
  return st;
}

static pf_value *compare_pair(const pf_value *names, const pf_value *b, const pf_value *a) {
  pf_value *out = pf_value_map();
  pf_status st = out ? PF_OK : PF_ERR_NOMEM;
  for (size_t i = 0; !st && i < names->u.map.len; i++) {
    const char *c = names->u.map.keys[i];
    st = pf_map_set(out, c, change_entry(pair_mean(b, c), pair_mean(a, c)));
  }
  if (st) {
    pf_value_release(out);
    return NULL;
  }
  return out;
}

static double summary_num(const pf_value *s, const char *c) {
  const pf_value *v = pf_map_get(s, c);
  return v && v->type == PF_V_NUM ? v->u.n : NAN;
}

pf_status pf_bias_compare(const pf_value *before_pairs, const pf_value *before_summary,
                          const pf_value *after_pairs, const pf_value *after_summary,
                          pf_value **out, pf_err *err) {
  *out = NULL;
  pf_value *names = NULL, *res = pf_value_map(), *pairs = pf_value_map(), *comps = pf_value_map();
  pf_status st =
      res && pairs && comps ? component_names(before_pairs, after_pairs, &names) : PF_ERR_NOMEM;
  for (size_t i = 0; !st && i < before_pairs->u.map.len; i++) {
    const char *k = before_pairs->u.map.keys[i];
    const pf_value *a = pf_map_get(after_pairs, k);
    if (a) st = pf_map_set(pairs, k, compare_pair(names, before_pairs->u.map.vals[i], a));
  }
  for (size_t i = 0; !st && i + 1 < names->u.map.len; i++) {
    const char *c = names->u.map.keys[i];
    st = pf_map_set(comps, c,
                    change_entry(summary_num(before_summary, c), summary_num(after_summary, c)));
  }
  if (!st) {
    st = pf_map_set(res, "pairs", pairs); /* steals */
    pairs = NULL;
  }
  if (!st) {
    st = pf_map_set(res, "components", comps);
    comps = NULL;
  }
  if (!st)
    st = pf_map_set(res, "overall",
                    change_entry(summary_num(before_summary, "overall"),
                                 summary_num(after_summary, "overall")));
  pf_value_release(names);
  pf_value_release(pairs);
  pf_value_release(comps);
  if (st) {
    pf_value_release(res);
    return pf_err_set(err, PF_ERR_NOMEM, "comparison: out of memory");
  }
  *out = res;
  return PF_OK;
}
