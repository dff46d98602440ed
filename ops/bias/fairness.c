/* fairness.c — fairness pruning scores, fairness_scores for width pruning and
 * neuron zeroing (see fairness.h). Float32 arithmetic at torch's rounding
 * points (scalars are cast to float32 the way torch casts a Python float
 * multiplied into a float32 tensor); FMA contraction off for the same reason. */
#pragma GCC optimize("fp-contract=off")
#include "fairness.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "op.h"
#include "ophelp.h"
#include "pruning.h"

/* The metadata entries of an op result, not data. */
static int is_meta_key(const char *k) {
  return strcmp(k, "op") == 0 || strcmp(k, "seconds") == 0;
}

/* A list of numbers or a 1-D float32 tensor as float32 (malloc'd [*n]). *bad
 * receives the type that made it unusable (NULL when fine). */
static pf_status value_floats(const pf_value *v, float **out, size_t *n, const char **bad) {
  *out = NULL;
  *n = 0;
  *bad = NULL;
  if (v->type == PF_V_TENSOR) {
    const pf_tensor *t = v->u.tensor;
    if (t->ndim != 1 || pf_tensor_is_planned(t)) {
      *bad = t->ndim != 1 ? "a tensor of more than one dimension" : "a planned tensor";
      return PF_ERR_INVALID;
    }
    *n = (size_t)t->shape[0];
    if (!(*out = malloc(sizeof(float) * (*n ? *n : 1)))) return PF_ERR_NOMEM;
    pf_tensor_to_f32(t, *out);
    return PF_OK;
  }
  if (v->type != PF_V_LIST) {
    *bad = pf_vtype_name(v->type);
    return PF_ERR_INVALID;
  }
  for (size_t i = 0; i < v->u.list.len; i++) {
    pf_vtype t = v->u.list.items[i]->type;
    if (t != PF_V_NUM && t != PF_V_INT) {
      *bad = "a list holding non-numbers";
      return PF_ERR_INVALID;
    }
  }
  *n = v->u.list.len;
  if (!(*out = malloc(sizeof(float) * (*n ? *n : 1)))) return PF_ERR_NOMEM;
  for (size_t i = 0; i < *n; i++) {
    const pf_value *x = v->u.list.items[i];
    (*out)[i] = (float)(x->type == PF_V_INT ? (double)x->u.i : x->u.n);
  }
  return PF_OK;
}

void pf_fairness_normalize(const float *t, size_t n, float *out) {
  if (n == 0) return;
  float mn = t[0], mx = t[0];
  for (size_t i = 0; i < n; i++) {
    if (isnan(t[i]) || isnan(mn))
      mn = NAN;
    else if (t[i] < mn)
      mn = t[i];
    if (isnan(t[i]) || isnan(mx))
      mx = NAN;
    else if (t[i] > mx)
      mx = t[i];
  }
  /* torch.isclose(max, min): |max - min| <= atol + rtol * |min| (float32) */
  if (mx == mn || fabsf(mx - mn) <= 1e-8f + fabsf(1e-5f * mn)) {
    memset(out, 0, sizeof(float) * n);
    return;
  }
  float den = (mx - mn) + 1e-8f;
  for (size_t i = 0; i < n; i++)
    out[i] = (t[i] - mn) / den;
}

/* ---- compute_fairness_pruning_scores ---- */

/* The bias vector of layer i (mean of the present gate/up vectors), or *have 0. */
static pf_status layer_bias(const pf_value *bs, int64_t i, int64_t I, float *bias, int *have,
                            pf_err *err) {
  const char *kinds[2] = {"gate_proj", "up_proj"};
  *have = 0;
  for (int k = 0; k < 2; k++) {
    char key[64];
    snprintf(key, sizeof key, "%s_layer_%lld", kinds[k], (long long)i);
    const pf_value *v = pf_map_get(bs, key);
    if (!v) continue;
    float *f = NULL;
    size_t n = 0;
    const char *bad = NULL;
    pf_status st = value_floats(v, &f, &n, &bad);
    if (st == PF_ERR_INVALID || (!st && (int64_t)n != I)) {
      free(f);
      return bad ? pf_err_set(err, st, "bias_scores['%s']: expected a list of numbers, got %s", key,
                              bad)
                 : pf_err_set(err, PF_ERR_INVALID,
                              "bias_scores['%s']: expected %lld values (the layer's intermediate "
                              "size), got %zu",
                              key, (long long)I, n);
    }
    if (st) return pf_err_set(err, st, "fairness scores: out of memory");
    for (int64_t j = 0; j < I; j++) /* torch.stack(...).mean(dim=0) in float32 */
      bias[j] = *have ? (bias[j] + f[j]) / 2.0f : f[j];
    *have = 1;
    free(f);
  }
  return PF_OK;
}

static pf_value *float_list(const float *v, int64_t n) {
  pf_value *l = pf_value_list();
  for (int64_t i = 0; l && i < n; i++)
    if (pf_list_push(l, pf_value_num(v[i])) != PF_OK) {
      pf_value_release(l);
      return NULL;
    }
  return l;
}

static pf_status layer_fairness(const pf_layer *l, const pf_value *bs, int64_t i, double w,
                                pf_value *out, pf_err *err) {
  const int64_t I = l->gate_proj->shape[0];
  float *buf = malloc(sizeof(float) * (size_t)(4 * I));
  if (!buf) return pf_err_set(err, PF_ERR_NOMEM, "fairness scores: out of memory");
  float *bias = buf, *imp = buf + I, *bn = imp + I, *in = bn + I;
  int have = 0;
  pf_status st = layer_bias(bs, i, I, bias, &have, err);
  if (!st && have) st = pf_layer_scores(l, PF_METHOD_PPM, PF_DTYPE_F32, imp, err);
  if (!st && have) {
    pf_fairness_normalize(bias, (size_t)I, bn);
    pf_fairness_normalize(imp, (size_t)I, in);
    const float wf = (float)w, rest = (float)(1.0 - w);
    for (int64_t j = 0; j < I; j++)
      bias[j] = wf * bn[j] + rest * (1.0f - in[j]);
    char key[24];
    snprintf(key, sizeof key, "%lld", (long long)i);
    if (pf_map_set(out, key, float_list(bias, I)) != PF_OK)
      st = pf_err_set(err, PF_ERR_NOMEM, "fairness scores: out of memory");
  }
  free(buf);
  return st ? pf_err_prefix(err, "model.layers.%lld.mlp", (long long)i) : PF_OK;
}

/* An empty list where a dict is expected: Lua's {} is both (an empty table has no
 * keys to tell), so it counts as the empty dict Python would be given. */
static int empty_table(const pf_value *v) {
  return v && v->type == PF_V_LIST && v->u.list.len == 0;
}

pf_status pf_fairness_check_inputs(const pf_value *bs, double w, pf_err *err) {
  if (!(w >= 0.0 && w <= 1.0)) {
    char ws[48];
    pf_format_pynum(w, pf_num_is_integral(w), ws, sizeof ws);
    return pf_err_set(err, PF_ERR_INVALID, "bias_weight must be in [0.0, 1.0], got %s", ws);
  }
  if (empty_table(bs)) return pf_err_set(err, PF_ERR_INVALID, "bias_scores dictionary is empty");
  if (!bs || bs->type != PF_V_MAP)
    return pf_err_set(err, PF_ERR_INVALID,
                      "bias_scores must be Dict[str, torch.Tensor] (a neuron_bias result, a map "
                      "{\"gate_proj_layer_0\": [scores], ...}), got %s",
                      bs ? pf_vtype_name(bs->type) : "nothing");
  size_t entries = 0;
  for (size_t i = 0; i < bs->u.map.len; i++)
    entries += !is_meta_key(bs->u.map.keys[i]);
  if (!entries) return pf_err_set(err, PF_ERR_INVALID, "bias_scores dictionary is empty");
  return PF_OK;
}

pf_status pf_fairness_compute(const pf_model *m, const pf_value *bs, double w, pf_value **out,
                              pf_err *err) {
  *out = NULL;
  pf_status st0 = pf_fairness_check_inputs(bs, w, err);
  if (st0) return st0;
  pf_value *res = pf_value_map();
  pf_status st = res ? PF_OK : pf_err_set(err, PF_ERR_NOMEM, "fairness scores: out of memory");
  for (int64_t i = 0; !st && i < m->n_layers; i++) {
    const pf_layer *l = &m->layers[i];
    if (!l->gate_proj || !l->up_proj || l->gate_proj->ndim != 2) continue; /* not GLU: skipped */
    st = layer_fairness(l, bs, i, w, res, err);
  }
  if (st) {
    pf_value_release(res);
    return st;
  }
  *out = res;
  return PF_OK;
}

/* ---- fairness_scores of width pruning ---- */

/* A map key as Python int text ("3", "-1"); 0 when it is not one. */
static int key_int(const char *k, int64_t *out) {
  char *end = NULL;
  if (!*k) return 0;
  long long v = strtoll(k, &end, 10);
  if (*end || k[0] == ' ' || k[0] == '+') return 0;
  *out = v;
  return 1;
}

pf_status pf_fairness_check(const pf_value *v, pf_err *err) {
  if (empty_table(v)) return PF_OK; /* an empty dict is accepted (no layer has scores) */
  if (!v || v->type != PF_V_MAP)
    return pf_err_set(err, PF_ERR_INVALID,
                      "fairness_scores must be Dict[int, torch.Tensor] (a map {\"<layer>\": "
                      "[scores]}, e.g. a fairness_scores result), got %s%s",
                      v ? pf_vtype_name(v->type) : "nothing",
                      v && v->type == PF_V_LIST ? PF_LAYER_MAP_LIST_HINT : "");
  for (size_t i = 0; i < v->u.map.len; i++) {
    const char *k = v->u.map.keys[i];
    int64_t l;
    if (is_meta_key(k)) continue;
    if (!key_int(k, &l))
      return pf_err_set(err, PF_ERR_INVALID,
                        "fairness_scores keys must be int (layer indices), got string for key %s",
                        k);
    const pf_value *x = v->u.map.vals[i];
    float *f = NULL;
    size_t n;
    const char *bad = NULL;
    pf_status st = value_floats(x, &f, &n, &bad);
    free(f);
    if (st == PF_ERR_INVALID)
      return pf_err_set(err, st,
                        "fairness_scores values must be torch.Tensor (a list of numbers), got %s "
                        "for layer %s",
                        bad, k);
    if (st) return pf_err_set(err, st, "fairness_scores: out of memory");
  }
  return PF_OK;
}

pf_status pf_fairness_get(const pf_value *v, int64_t layer, float **out, size_t *n, pf_err *err) {
  *out = NULL;
  *n = 0;
  for (size_t i = 0; v && v->type == PF_V_MAP && i < v->u.map.len; i++) {
    int64_t l;
    if (is_meta_key(v->u.map.keys[i]) || !key_int(v->u.map.keys[i], &l) || l != layer) continue;
    const char *bad;
    pf_status st = value_floats(v->u.map.vals[i], out, n, &bad);
    if (st == PF_ERR_INVALID)
      return pf_err_set(err, st,
                        "fairness_scores values must be torch.Tensor, got %s for layer %lld", bad,
                        (long long)layer);
    return st ? pf_err_set(err, st, "fairness_scores: out of memory") : PF_OK;
  }
  return PF_OK;
}

/* ---- zero_neurons_mlp ---- */

/* Python list repr of ints: "[3, -1]". */
static void int_list_text(const int64_t *v, size_t n, char *out, size_t cap) {
  size_t used = (size_t)snprintf(out, cap, "[");
  for (size_t i = 0; i < n && used < cap; i++)
    used += (size_t)snprintf(out + used, cap - used, "%s%lld", i ? ", " : "", (long long)v[i]);
  if (used < cap) snprintf(out + used, cap - used, "]");
}

/* The neuron list of one entry as ints (malloc'd), or a TypeError-style message. */
static pf_status entry_ints(const pf_value *v, const char *key, int64_t **out, size_t *n,
                            pf_err *err) {
  const char *bad = v->type == PF_V_LIST ? NULL : pf_vtype_name(v->type);
  for (size_t i = 0; !bad && i < v->u.list.len; i++) {
    const pf_value *x = v->u.list.items[i];
    if (x->type != PF_V_INT && !(x->type == PF_V_NUM && pf_num_is_integral(x->u.n)))
      bad = "a list holding non-integers";
  }
  if (bad)
    return pf_err_set(err, PF_ERR_INVALID,
                      "neuron_indices values must be List[int], got %s for layer %s", bad, key);
  *n = v->u.list.len;
  *out = malloc(sizeof **out * (*n ? *n : 1));
  if (!*out) return pf_err_set(err, PF_ERR_NOMEM, "neuron_indices: out of memory");
  for (size_t i = 0; i < *n; i++) {
    const pf_value *x = v->u.list.items[i];
    (*out)[i] = x->type == PF_V_INT ? x->u.i : (int64_t)x->u.n;
  }
  return PF_OK;
}

/* Neurons outside [0, I) in input order, then duplicates. */
static pf_status check_neurons(int64_t l, const int64_t *idx, size_t n, int64_t I, pf_err *err) {
  int64_t *bad = malloc(sizeof *bad * (n ? n : 1));
  if (!bad) return pf_err_set(err, PF_ERR_NOMEM, "neuron_indices: out of memory");
  size_t nb = 0;
  for (size_t i = 0; i < n; i++)
    if (idx[i] < 0 || idx[i] >= I) bad[nb++] = idx[i];
  pf_status st = PF_OK;
  if (nb) {
    char text[PF_ERR_MSG_MAX / 2];
    int_list_text(bad, nb, text, sizeof text);
    st = pf_err_set(err, PF_ERR_INVALID, "Layer %lld: neuron indices %s are out of range [0, %lld]",
                    (long long)l, text, (long long)(I - 1));
  }
  free(bad);
  for (size_t i = 0; !st && i < n; i++)
    for (size_t j = i + 1; !st && j < n; j++)
      if (idx[i] == idx[j])
        st = pf_err_set(err, PF_ERR_INVALID, "Layer %lld: neuron_indices contains duplicate values",
                        (long long)l);
  return st;
}

/* One entry of neuron_indices (OptiPFair's per-entry checks, in order). */
static pf_status check_entry(const pf_model *m, const char *key, const pf_value *v, int64_t *layer,
                             int64_t **idx, size_t *n, pf_err *err) {
  *idx = NULL;
  if (!key_int(key, layer))
    return pf_err_set(err, PF_ERR_INVALID, "neuron_indices keys must be int, got string for key %s",
                      key);
  if (*layer < 0 || *layer >= m->n_layers)
    return pf_err_set(err, PF_ERR_INVALID,
                      "Layer index %lld is out of range. Model has %lld layers (valid indices: "
                      "0-%lld)",
                      (long long)*layer, (long long)m->n_layers, (long long)(m->n_layers - 1));
  pf_status st = entry_ints(v, key, idx, n, err);
  if (!st && *n == 0)
    st = pf_err_set(err, PF_ERR_INVALID, "Neuron index list for layer %lld cannot be empty",
                    (long long)*layer);
  if (!st) st = check_neurons(*layer, *idx, *n, pf_layer_width(&m->layers[*layer]), err);
  if (st) {
    free(*idx);
    *idx = NULL;
  }
  return st;
}

static pf_status check_indices(const pf_model *m, const pf_value *v, pf_err *err) {
  /* a family with a plain MLP (gpt2, gpt_neox) has neurons too: fc_in row + bias, fc_out column */
  const int plain = m->config.arch && m->config.arch->mlp == PF_MLP_PLAIN;
  pf_status st = pf_check_width_compatible(m, plain ? PF_WIDTH_MLP : PF_WIDTH_MLP_GLU, err);
  if (st) return st;
  if (empty_table(v)) return pf_err_set(err, PF_ERR_INVALID, "neuron_indices cannot be empty");
  if (!v || v->type != PF_V_MAP)
    return pf_err_set(err, PF_ERR_INVALID,
                      "neuron_indices must be Dict[int, List[int]] (a map {\"<layer>\": "
                      "[neurons]}), got %s%s",
                      v ? pf_vtype_name(v->type) : "nothing",
                      v && v->type == PF_V_LIST ? PF_LAYER_MAP_LIST_HINT : "");
  if (v->u.map.len == 0) return pf_err_set(err, PF_ERR_INVALID, "neuron_indices cannot be empty");
  if (m->n_layers <= 0)
    return pf_err_set(err, PF_ERR_INVALID, "Could not find MLP layers in the model.");
  for (size_t i = 0; i < v->u.map.len; i++) {
    int64_t l, *idx;
    size_t n;
    st = check_entry(m, v->u.map.keys[i], v->u.map.vals[i], &l, &idx, &n, err);
    free(idx);
    if (st) return st;
  }
  return PF_OK;
}

/* A heap copy of t with rows (dim 0; elements of a 1-D tensor) or columns
 * (dim 1) idx[n] set to zero. */
static pf_status zeroed_copy(const pf_tensor *t, int cols, const int64_t *idx, size_t n,
                             pf_tensor **out, pf_err *err) {
  pf_status st = pf_tensor_new(t->dtype, t->ndim, t->shape, out, err);
  if (st) return st;
  char *d = pf_tensor_mutable_data(*out);
  const size_t es = pf_dtype_size(t->dtype);
  const int64_t rows = t->shape[0], width = t->ndim == 2 ? t->shape[1] : 1;
  pf_tensor_read(t, 0, t->nbytes / es, d); /* lazy tensors too (tensor.h) */
  for (size_t k = 0; k < n; k++) {
    if (!cols) {
      memset(d + (size_t)(idx[k] * width) * es, 0, (size_t)width * es);
      continue;
    }
    for (int64_t r = 0; r < rows; r++)
      memset(d + (size_t)(r * width + idx[k]) * es, 0, es);
  }
  pf_tensor_release_pages(t);
  return PF_OK;
}

static pf_status zero_slot(pf_tensor **slot, int cols, const int64_t *idx, size_t n, pf_err *err) {
  pf_tensor *t = NULL;
  if (!*slot) return PF_OK;
  pf_status st = zeroed_copy(*slot, cols, idx, n, &t, err);
  if (st) return st;
  pf_tensor_release(*slot);
  *slot = t;
  return PF_OK;
}

/* gate (absent in a plain MLP) and up rows, their bias entries, down columns. */
static pf_status zero_layer(pf_layer *l, const int64_t *idx, size_t n, pf_err *err) {
  if ((l->gate_proj && pf_tensor_is_planned(l->gate_proj)) || !l->up_proj ||
      pf_tensor_is_planned(l->up_proj) || !l->down_proj || pf_tensor_is_planned(l->down_proj))
    return pf_err_set(err, PF_ERR_INVALID, "mlp: no weight data (a dry-run plan)");
  pf_status st = zero_slot(&l->gate_proj, 0, idx, n, err);
  if (!st) st = zero_slot(&l->gate_bias, 0, idx, n, err);
  if (!st) st = zero_slot(&l->up_proj, 0, idx, n, err);
  if (!st) st = zero_slot(&l->up_bias, 0, idx, n, err);
  if (!st) st = zero_slot(&l->down_proj, 1, idx, n, err);
  return st;
}

static int cmp_entry_layer(const void *a, const void *b) {
  const int64_t *x = a, *y = b;
  return x[0] < y[0] ? -1 : (x[0] > y[0]);
}

/* Zero entry i of v in nm; appends {index, neurons} to `layers`. */
static pf_status zero_entry(pf_model *nm, const pf_value *v, size_t i, const pf_ctx *ctx,
                            pf_value *layers, int64_t *total, pf_err *err) {
  int64_t l = -1, *idx = NULL;
  size_t n = 0;
  pf_status st = check_entry(nm, v->u.map.keys[i], v->u.map.vals[i], &l, &idx, &n, err);
  if (!st && !(ctx && ctx->dry_run)) {
    st = zero_layer(&nm->layers[l], idx, n, err);
    if (st) pf_err_prefix(err, "model.layers.%lld.mlp", (long long)l);
  }
  free(idx);
  if (st) return st;
  *total += (int64_t)n;
  pf_value *e = pf_value_map();
  st = e ? pf_map_set_int(e, "index", l) : PF_ERR_NOMEM;
  if (!st) st = pf_map_set_int(e, "neurons", (int64_t)n);
  if (st) pf_value_release(e);
  if (!st) st = pf_list_push(layers, e);
  return st ? pf_err_set(err, PF_ERR_NOMEM, "zero_neurons: out of memory") : PF_OK;
}

/* Zero every entry of v in nm, layers ascending (OptiPFair's sorted(items)). */
static pf_status zero_all(pf_model *nm, const pf_value *v, const pf_ctx *ctx, pf_value *layers,
                          int64_t *total, pf_err *err) {
  size_t ne = v->u.map.len;
  int64_t(*order)[2] = malloc(sizeof *order * (ne ? ne : 1));
  if (!order) return pf_err_set(err, PF_ERR_NOMEM, "zero_neurons: out of memory");
  for (size_t i = 0; i < ne; i++) {
    order[i][0] = -1;
    key_int(v->u.map.keys[i], &order[i][0]);
    order[i][1] = (int64_t)i;
  }
  qsort(order, ne, sizeof *order, cmp_entry_layer);
  pf_status st = PF_OK;
  for (size_t e = 0; !st && e < ne; e++)
    st = zero_entry(nm, v, (size_t)order[e][1], ctx, layers, total, err);
  free(order);
  return st;
}

pf_status pf_zero_neurons(const pf_model *m, const pf_value *v, const pf_ctx *ctx, pf_model **out,
                          pf_value **stats, pf_err *err) {
  *out = NULL;
  if (stats) *stats = NULL;
  pf_status st = check_indices(m, v, err);
  if (st) return st;
  pf_model *nm = NULL;
  pf_value *layers = pf_value_list(), *s = pf_value_map();
  int64_t total = 0;
  st = layers && s ? pf_model_derive(m, &nm, err) : pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  if (!st) st = zero_all(nm, v, ctx, layers, &total, err);
  if (!st) {
    st = pf_map_set(s, "layers", layers);
    layers = NULL;
  }
  if (!st) st = pf_map_set_int(s, "zeroed_neurons", total);
  pf_value_release(layers);
  if (st || !stats) pf_value_release(s);
  if (st) {
    pf_model_release(nm);
    return st == PF_ERR_NOMEM ? pf_err_set(err, st, "zero_neurons: out of memory") : st;
  }
  *out = nm;
  if (stats) *stats = s;
  return PF_OK;
}
