/* pruning.c — OptiPFair width-pruning math: scores, k, top-k, plan, prune, stats.
 * (Depth pruning lives in pruning_depth.c.)
 *
 * Why the arithmetic looks the way it does:
 *  - k: Python computes int(p / 100 * I); (p/100)*I in IEEE double, truncated.
 *  - scores: torch produces one float32 tensor per row reduction (max, min, var,
 *    L1/L2 norm) and combines them in float32. We accumulate each reduction in
 *    double and round once, which is what a careful float32 reduction yields;
 *    FMA contraction is disabled so Debug and Release give the same bits.
 *  - top-k: torch.topk leaves ties unspecified; we take higher score first,
 *    then lower index (NaN counts as the largest, as in torch), then sort the
 *    kept indices ascending so the neuron order is preserved.
 */
#pragma GCC optimize("fp-contract=off")
#include "pruning.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fairness.h"

static const char *const method_names[] = {"PPM", "MAW", "VOW", "PON", "L2"};

pf_status pf_score_method_parse(const char *name, pf_score_method *out, pf_err *err) {
  for (int i = 0; i < 5; i++)
    if (name && strcmp(name, method_names[i]) == 0) {
      *out = (pf_score_method)i;
      return PF_OK;
    }
  return pf_err_set(err, PF_ERR_INVALID,
                    "Invalid neuron selection method: %s. Choose from ['PPM', 'MAW', 'VOW', "
                    "'PON', 'L2'].",
                    name ? name : "None");
}

const char *pf_score_method_name(pf_score_method m) {
  return (unsigned)m < 5 ? method_names[m] : "?";
}

/* ---- scores ---- */

static float row_range(const float *x, int64_t H) {
  float mx = x[0], mn = x[0];
  for (int64_t j = 0; j < H; j++) {
    if (isnan(x[j])) return NAN; /* torch.max / min propagate NaN */
    if (x[j] > mx) mx = x[j];
    if (x[j] < mn) mn = x[j];
  }
  return mx + fabsf(mn);
}

static float row_var(const float *x, int64_t H) {
  if (H < 2) return NAN;
  double s = 0;
  for (int64_t j = 0; j < H; j++)
    s += x[j];
  double mean = s / (double)H, ss = 0;
  for (int64_t j = 0; j < H; j++) {
    double d = (double)x[j] - mean;
    ss += d * d;
  }
  return (float)(ss / (double)(H - 1));
}

static float row_l1(const float *x, int64_t H) {
  double s = 0;
  for (int64_t j = 0; j < H; j++)
    s += fabs((double)x[j]);
  return (float)s;
}

static float row_l2(const float *x, int64_t H) {
  double s = 0;
  for (int64_t j = 0; j < H; j++)
    s += (double)x[j] * (double)x[j];
  return (float)sqrt(s);
}

float pf_neuron_score(const float *g, const float *u, int64_t H, pf_score_method m) {
  if (H <= 0) return NAN;
  switch (m) {
  case PF_METHOD_PPM:
  case PF_METHOD_MAW:
    return row_range(g, H) + row_range(u, H);
  case PF_METHOD_VOW:
    return row_var(g, H) + row_var(u, H);
  case PF_METHOD_PON:
    return row_l1(g, H) * row_l1(u, H);
  case PF_METHOD_L2:
    return row_l2(g, H) + row_l2(u, H);
  }
  return NAN;
}

static pf_status check_gate_up(const pf_layer *l, pf_err *err) {
  const pf_tensor *g = l->gate_proj, *u = l->up_proj;
  if (!g || !u) return pf_err_set(err, PF_ERR_INVALID, "mlp: gate_proj / up_proj missing");
  if (!g->data || !u->data)
    return pf_err_set(err, PF_ERR_INVALID,
                      "mlp.gate_proj: no weight data (a dry-run plan cannot be scored)");
  if (g->ndim != 2 || u->ndim != 2 || g->shape[0] != u->shape[0] || g->shape[1] != u->shape[1]) {
    char a[64], b[64];
    return pf_err_set(err, PF_ERR_INVALID, "mlp.up_proj: expected shape %s (as gate_proj), got %s",
                      pf_shape_str(g->ndim, g->shape, a, sizeof a),
                      pf_shape_str(u->ndim, u->shape, b, sizeof b));
  }
  return PF_OK;
}

pf_status pf_layer_scores(const pf_layer *l, pf_score_method m, float *out, pf_err *err) {
  pf_status st = check_gate_up(l, err);
  if (st) return st;
  const int64_t I = l->gate_proj->shape[0], H = l->gate_proj->shape[1];
  const int nt = omp_get_max_threads();
  float *buf = malloc(sizeof(float) * (size_t)(2 * H) * (size_t)nt);
  if (!buf) return pf_err_set(err, PF_ERR_NOMEM, "scores: out of memory for row buffers");
#pragma omp parallel for schedule(static) num_threads(nt)
  for (int64_t i = 0; i < I; i++) {
    float *g = buf + (size_t)(2 * H) * (size_t)omp_get_thread_num();
    float *u = g + H;
    pf_tensor_row_f32(l->gate_proj, i, g);
    pf_tensor_row_f32(l->up_proj, i, u);
    out[i] = pf_neuron_score(g, u, H, m);
  }
  free(buf);
  /* the rows are read once: do not keep the mapped pages resident */
  pf_tensor_release_pages(l->gate_proj);
  pf_tensor_release_pages(l->up_proj);
  return PF_OK;
}

/* max + |min| of n values (float32 result, as torch). */
static float peak_to_peak(const float *x, int64_t n) {
  float mx = x[0], mn = x[0];
  for (int64_t j = 1; j < n; j++) {
    if (x[j] > mx) mx = x[j];
    if (x[j] < mn) mn = x[j];
  }
  return mx + fabsf(mn);
}

/* v[i] / (max(v) + 1e-8) in place, float32 arithmetic. */
static void normalise_by_max(float *v, int64_t n) {
  float mx = v[0];
  for (int64_t i = 1; i < n; i++)
    if (v[i] > mx) mx = v[i];
  float den = mx + 1e-8f;
  for (int64_t i = 0; i < n; i++)
    v[i] = v[i] / den;
}

/* Column-wise max + |min| of D [H, I]: d[I]. */
static void down_peaks(const pf_tensor *D, float *d, float *row, float *mx, float *mn) {
  const int64_t H = D->shape[0], I = D->shape[1];
  for (int64_t h = 0; h < H; h++) {
    pf_tensor_row_f32(D, h, row);
    for (int64_t i = 0; i < I; i++) {
      if (h == 0 || row[i] > mx[i]) mx[i] = row[i];
      if (h == 0 || row[i] < mn[i]) mn[i] = row[i];
    }
  }
  for (int64_t i = 0; i < I; i++)
    d[i] = mx[i] + fabsf(mn[i]);
}

pf_status pf_layer_hybrid_scores(const pf_layer *l, const float *X, float *out, pf_err *err) {
  pf_status st = check_gate_up(l, err);
  if (st) return st;
  const pf_tensor *D = l->down_proj;
  const int64_t I = l->gate_proj->shape[0], H = l->gate_proj->shape[1];
  if (!D || !D->data || D->ndim != 2 || D->shape[1] != I)
    return pf_err_set(err, PF_ERR_INVALID, "mlp.down_proj: expected shape [%lld, %lld]",
                      (long long)H, (long long)I);
  int64_t rowlen = H > D->shape[1] ? H : D->shape[1];
  float *buf = malloc(sizeof(float) * (size_t)(5 * I + rowlen));
  if (!buf) return pf_err_set(err, PF_ERR_NOMEM, "hybrid scores: out of memory");
  float *g = buf, *u = g + I, *d = u + I, *mx = d + I, *mn = mx + I, *row = mn + I;
  for (int64_t i = 0; i < I; i++) {
    pf_tensor_row_f32(l->gate_proj, i, row);
    g[i] = peak_to_peak(row, H);
    pf_tensor_row_f32(l->up_proj, i, row);
    u[i] = peak_to_peak(row, H);
  }
  down_peaks(D, d, row, mx, mn);
  normalise_by_max(g, I);
  normalise_by_max(u, I);
  normalise_by_max(d, I);
  for (int64_t i = 0; i < I; i++)
    out[i] = (g[i] + u[i] + d[i]) * X[i];
  free(buf);
  pf_tensor_release_pages(l->gate_proj);
  pf_tensor_release_pages(l->up_proj);
  pf_tensor_release_pages(D);
  return PF_OK;
}

/* ---- k ---- */

int64_t pf_keep_from_percentage(double p, int64_t I) {
  double x = (p / 100.0) * (double)I;
  int64_t prune = (int64_t)x; /* Python int(): toward zero */
  if (prune > I - 1) prune = I - 1;
  return I - prune;
}

int64_t pf_round_to_divisor(int64_t k, int64_t d) {
  int64_t r = (k / d) * d;
  return r < 1 ? 1 : r;
}

int pf_divisor_valid(int64_t d) {
  return d == 32 || d == 64 || d == 128 || d == 256;
}

void pf_format_pynum(double v, int is_int, char *out, size_t n) {
  if (is_int && isfinite(v))
    snprintf(out, n, "%.0f", v);
  else
    pf_format_pyfloat(v, out, n);
}

pf_status pf_percentage_from_expansion_rate(int64_t I0, int64_t H, double e, int e_is_int,
                                            double *p, pf_err *err) {
  double current = ((double)I0 / (double)H) * 100.0;
  double target = (e / 100.0) * (double)H;
  if (target >= (double)I0) {
    char es[48];
    pf_format_pynum(e, e_is_int, es, sizeof es);
    return pf_err_set(err, PF_ERR_INVALID,
                      "Target expansion rate (%s%%) would increase the model size. Current "
                      "expansion rate is %.2f%%.",
                      es, current);
  }
  *p = (1.0 - target / (double)I0) * 100.0;
  return PF_OK;
}

pf_status pf_layer_keep(int64_t layer_idx, int64_t I, double p, int64_t divisor, int64_t *k,
                        pf_err *err) {
  int64_t kk = pf_keep_from_percentage(p, I);
  if (divisor > 0) kk = pf_round_to_divisor(kk, divisor);
  if (p > 0 && kk >= I) {
    char label[40];
    if (layer_idx >= 0)
      snprintf(label, sizeof label, "layer %lld", (long long)layer_idx);
    else
      snprintf(label, sizeof label, "current layer");
    return pf_err_set(err, PF_ERR_INVALID,
                      "No effective pruning for %s: resulting intermediate size (%lld) is >= "
                      "base size (%lld). Increase pruning_percentage, decrease expansion_divisor, "
                      "or disable expansion_divisor.",
                      label, (long long)kk, (long long)I);
  }
  if (kk <= 0)
    return pf_err_set(err, PF_ERR_INVALID,
                      "Invalid number of neuron pairs to keep: %lld. Reduce pruning percentage.",
                      (long long)kk);
  *k = kk;
  return PF_OK;
}

/* ---- top-k ---- */

typedef struct scored {
  float s;
  int64_t i;
} scored;

static int cmp_scored(const void *a, const void *b) {
  const scored *x = a, *y = b;
  int xn = isnan(x->s), yn = isnan(y->s);
  if (xn != yn) return xn ? -1 : 1; /* NaN first (largest) */
  if (!xn && x->s != y->s) return x->s > y->s ? -1 : 1;
  return x->i < y->i ? -1 : (x->i > y->i);
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : (x > y);
}

pf_status pf_topk_keep(const float *scores, int64_t n, int64_t k, int64_t *kept, pf_err *err) {
  if (k < 0 || k > n)
    return pf_err_set(err, PF_ERR_INVALID, "top-k: k=%lld outside [0, %lld]", (long long)k,
                      (long long)n);
  scored *v = malloc(sizeof *v * (size_t)(n ? n : 1));
  if (!v) return pf_err_set(err, PF_ERR_NOMEM, "top-k: out of memory");
  for (int64_t i = 0; i < n; i++)
    v[i] = (scored){scores[i], i};
  qsort(v, (size_t)n, sizeof *v, cmp_scored);
  for (int64_t i = 0; i < k; i++)
    kept[i] = v[i].i;
  free(v);
  qsort(kept, (size_t)k, sizeof *kept, cmp_i64);
  return PF_OK;
}

/* ---- width plan (§4) ---- */

pf_status pf_check_layer_indices(const int64_t *idx, size_t n, int64_t L, pf_err *err) {
  if (n == 0) return pf_err_set(err, PF_ERR_INVALID, "layer_indices cannot be an empty list");
  char bad[PF_ERR_MSG_MAX / 2] = "";
  size_t used = 0, nbad = 0;
  for (size_t i = 0; i < n; i++) {
    int64_t x = idx[i];
    if (x >= 0 && x < L) continue;
    if (used < sizeof bad)
      used +=
          (size_t)snprintf(bad + used, sizeof bad - used, "%s%lld", nbad ? ", " : "", (long long)x);
    nbad++;
  }
  if (nbad)
    return pf_err_set(err, PF_ERR_INVALID,
                      "Invalid layer indices: [%s]. Model has %lld layers (valid indices: 0-%lld)",
                      bad, (long long)L, (long long)(L - 1));
  for (size_t i = 0; i < n; i++)
    for (size_t j = i + 1; j < n; j++)
      if (idx[i] == idx[j])
        return pf_err_set(err, PF_ERR_INVALID, "layer_indices contains duplicate values");
  return PF_OK;
}

pf_status pf_check_glu_compatible(const pf_model *m, pf_err *err) {
  char why[256] = "";
  if (pf_model_glu_compatible(m, why, sizeof why)) return PF_OK;
  return pf_err_set(err, PF_ERR_INVALID,
                    "Model is not compatible with GLU pruning. It must have gate_proj, up_proj, "
                    "and down_proj layers.%s%s%s",
                    why[0] ? " (" : "", why, why[0] ? ")" : "");
}

/* Steps 1-3 and 5: structure, layer_indices, divisor. */
static pf_status check_width_structure(const pf_model *m, const pf_width_opts *o, pf_err *err) {
  pf_status st = pf_check_glu_compatible(m, err);
  if (st) return st;
  if (m->n_layers <= 0)
    return pf_err_set(err, PF_ERR_INVALID, "Could not find MLP layers in the model.");
  if (o->have_layer_indices) {
    st = pf_check_layer_indices(o->layer_indices, o->n_layer_indices, m->n_layers, err);
    if (st) return st;
  }
  if (o->fairness_scores) {
    pf_status st = pf_fairness_check(o->fairness_scores, err);
    if (st) return st;
  }
  if (o->have_divisor) {
    if (!pf_divisor_valid(o->expansion_divisor))
      return pf_err_set(err, PF_ERR_INVALID,
                        "expansion_divisor must be one of [32, 64, 128, 256] or None. Got: %lld",
                        (long long)o->expansion_divisor);
    if (!o->have_percentage && !o->have_expansion_rate)
      return pf_err_set(err, PF_ERR_INVALID,
                        "expansion_divisor cannot be used alone. Please provide either "
                        "pruning_percentage or expansion_rate.");
  }
  const char *method = o->method ? o->method : "PPM";
  if (o->activation_norms && strcmp(method, "MAW") != 0)
    return pf_err_set(err, PF_ERR_INVALID,
                      "Data-driven pruning with dataloader is only supported for PPM method "
                      "(parameter 'MAW'). Got neuron_selection_method='%s'. Please use "
                      "neuron_selection_method='MAW' or remove the dataloader parameter.",
                      method);
  return PF_OK;
}

/* Steps 7-10: method, exclusivity, expansion rate, percentage range. */
static pf_status width_percentage(const pf_model *m, const pf_width_opts *o, pf_width_plan *p,
                                  pf_err *err) {
  pf_status st = pf_score_method_parse(o->method ? o->method : "PPM", &p->method, err);
  if (st) return st;
  if (o->have_percentage && o->have_expansion_rate)
    return pf_err_set(err, PF_ERR_INVALID,
                      "pruning_percentage and expansion_rate are mutually exclusive. Provide only "
                      "one.");
  int is_int = o->percentage_is_int;
  if (o->have_expansion_rate) {
    const pf_tensor *g = m->layers[0].gate_proj;
    st = pf_percentage_from_expansion_rate(g->shape[0], g->shape[1], o->expansion_rate,
                                           o->expansion_rate_is_int, &p->percentage, err);
    if (st) return st;
    is_int = 0;
  } else if (o->have_percentage) {
    p->percentage = o->pruning_percentage;
  } else {
    return pf_err_set(err, PF_ERR_INVALID,
                      "pruning_percentage must be between 0 and 100, got None");
  }
  if (!(p->percentage >= 0 && p->percentage <= 100)) {
    char ps[48];
    pf_format_pynum(p->percentage, is_int, ps, sizeof ps);
    return pf_err_set(err, PF_ERR_INVALID, "pruning_percentage must be between 0 and 100, got %s",
                      ps);
  }
  return PF_OK;
}

void pf_width_plan_free(pf_width_plan *p) {
  if (!p) return;
  for (int64_t i = 0; p->custom && i < p->n_layers; i++)
    free(p->custom[i]);
  free(p->custom);
  free(p->keep);
  free(p->selected);
  p->keep = NULL;
  p->selected = NULL;
  p->custom = NULL;
}

/* §2.6: layer i's fairness scores, checked and inverted, into p->custom[i]. */
static pf_status plan_custom(const pf_width_opts *o, int64_t i, int64_t I, pf_width_plan *p,
                             pf_err *err) {
  float *s = NULL;
  size_t n = 0;
  pf_status st = pf_fairness_get(o->fairness_scores, i, &s, &n, err);
  if (st || !s) return st;
  float mn = n ? s[0] : 0, mx = mn;
  for (size_t j = 0; j < n; j++) { /* torch min / max propagate NaN */
    mn = isnan(s[j]) || isnan(mn) ? NAN : (s[j] < mn ? s[j] : mn);
    mx = isnan(s[j]) || isnan(mx) ? NAN : (s[j] > mx ? s[j] : mx);
  }
  if ((int64_t)n != I)
    st = pf_err_set(err, PF_ERR_INVALID,
                    "custom_importance_scores shape mismatch: expected [%lld], got [%zu]",
                    (long long)I, n);
  else if (mn < 0 || mx > 1)
    st = pf_err_set(err, PF_ERR_INVALID,
                    "custom_importance_scores must be in [0, 1] range, got min=%.4f, max=%.4f",
                    (double)mn, (double)mx);
  if (st) {
    free(s);
    return pf_err_prefix(err, "model.layers.%lld.mlp", (long long)i);
  }
  for (size_t j = 0; j < n; j++)
    s[j] = 1.0f - s[j];
  p->custom[i] = s;
  return PF_OK;
}

pf_status pf_width_plan_make(const pf_model *m, const pf_width_opts *o, pf_width_plan *out,
                             pf_err *err) {
  memset(out, 0, sizeof *out);
  pf_status st = check_width_structure(m, o, err);
  if (!st) st = width_percentage(m, o, out, err);
  if (st) return st;
  const int64_t L = m->n_layers;
  out->n_layers = L;
  out->norms = o->activation_norms;
  out->keep = calloc((size_t)L, sizeof *out->keep);
  out->selected = calloc((size_t)L, 1);
  if (o->fairness_scores) out->custom = calloc((size_t)L, sizeof *out->custom);
  if (!out->keep || !out->selected || (o->fairness_scores && !out->custom)) {
    pf_width_plan_free(out);
    return pf_err_set(err, PF_ERR_NOMEM, "width plan: out of memory");
  }
  for (size_t i = 0; i < o->n_layer_indices && o->have_layer_indices; i++)
    out->selected[o->layer_indices[i]] = 1;
  int64_t d = o->have_divisor ? o->expansion_divisor : 0;
  for (int64_t i = 0; i < L; i++) {
    const pf_layer *l = &m->layers[i];
    const pf_tensor *g = l->gate_proj;
    if (!g || g->ndim != 2 || !l->up_proj || l->up_proj->ndim != 2 || !l->down_proj ||
        l->down_proj->ndim != 2) {
      st = pf_err_set(err, PF_ERR_INVALID,
                      "model.layers.%lld.mlp: expected 2-D gate_proj, up_proj and down_proj",
                      (long long)i);
      break;
    }
    if (!o->have_layer_indices) out->selected[i] = 1;
    out->keep[i] = g->shape[0];
    if (out->selected[i] && out->custom) st = plan_custom(o, i, g->shape[0], out, err);
    if (!st && out->selected[i])
      st = pf_layer_keep(i, g->shape[0], out->percentage, d, &out->keep[i], err);
    if (st) break;
  }
  if (st) pf_width_plan_free(out);
  return st;
}

/* ---- statistics (§6.2) ---- */

static int64_t layer_width(const pf_layer *l) {
  return l->gate_proj && l->gate_proj->ndim == 2 ? l->gate_proj->shape[0] : -1;
}

pf_status pf_width_stats(const pf_model *before, const pf_model *after, pf_value **out,
                         pf_err *err) {
  *out = NULL;
  int64_t orig = pf_model_param_count(before), pruned = pf_model_param_count(after);
  int64_t reduction = orig - pruned;
  pf_value *s = pf_value_map();
  pf_status st = s ? PF_OK : PF_ERR_NOMEM;
  if (!st) st = pf_map_set_int(s, "original_parameters", orig);
  if (!st) st = pf_map_set_int(s, "pruned_parameters", pruned);
  if (!st) st = pf_map_set_int(s, "reduction", reduction);
  /* OptiPFair divides by zero here; an empty model gives 0.0 instead. */
  if (!st)
    st = pf_map_set_num(s, "percentage_reduction",
                        orig ? ((double)reduction / (double)orig) * 100.0 : 0.0);
  const pf_tensor *g0 = after->n_layers > 0 ? after->layers[0].gate_proj : NULL;
  if (!st)
    st = pf_map_set(s, "expansion_rate",
                    g0 && g0->ndim == 2 && g0->shape[1]
                        ? pf_value_num(((double)g0->shape[0] / (double)g0->shape[1]) * 100.0)
                        : pf_value_null());
  int distinct = 0;
  for (int64_t i = 1; i < after->n_layers; i++)
    if (layer_width(&after->layers[i]) != layer_width(&after->layers[0])) distinct = 1;
  if (!st && distinct && before->n_layers > 0) {
    int64_t w0 = layer_width(&before->layers[0]), n = 0;
    for (int64_t i = 0; i < after->n_layers; i++)
      n += layer_width(&after->layers[i]) < w0;
    st = pf_map_set_int(s, "pruned_layers", n);
    if (!st) st = pf_map_set_int(s, "total_layers", after->n_layers);
  }
  if (st) {
    pf_value_release(s);
    return pf_err_set(err, PF_ERR_NOMEM, "statistics: out of memory");
  }
  *out = s;
  return PF_OK;
}

/* ---- width pruning ---- */

static void put_tensor(pf_tensor **slot, pf_tensor *t) {
  pf_tensor_release(*slot);
  *slot = t;
}

/* The MLP tensors a width pruning replaces (the biases only when the layer has them). */
typedef struct mlp_set {
  pf_tensor *gate, *up, *down, *gate_bias, *up_bias;
} mlp_set;

/* st == PF_OK: move the new tensors into the layer; otherwise release them. */
static pf_status install_mlp(pf_layer *l, mlp_set *n, pf_status st) {
  if (st) {
    pf_tensor_release(n->gate);
    pf_tensor_release(n->up);
    pf_tensor_release(n->down);
    pf_tensor_release(n->gate_bias);
    pf_tensor_release(n->up_bias);
    return st;
  }
  put_tensor(&l->gate_proj, n->gate);
  put_tensor(&l->up_proj, n->up);
  put_tensor(&l->down_proj, n->down);
  if (l->gate_bias) put_tensor(&l->gate_bias, n->gate_bias);
  if (l->up_bias) put_tensor(&l->up_bias, n->up_bias);
  return PF_OK;
}

/* Planned (shape-only) replacements for a dry run. */
static pf_status plan_layer(pf_layer *l, int64_t k, pf_err *err) {
  const pf_tensor *g = l->gate_proj, *d = l->down_proj;
  int64_t gs[2] = {k, g->shape[1]}, us[2] = {k, l->up_proj->shape[1]}, ds[2] = {d->shape[0], k};
  mlp_set n = {0};
  pf_status st = pf_tensor_new_planned(g->dtype, 2, gs, &n.gate, err);
  if (!st) st = pf_tensor_new_planned(l->up_proj->dtype, 2, us, &n.up, err);
  if (!st) st = pf_tensor_new_planned(d->dtype, 2, ds, &n.down, err);
  if (!st && l->gate_bias)
    st = pf_tensor_new_planned(l->gate_bias->dtype, 1, &k, &n.gate_bias, err);
  if (!st && l->up_bias) st = pf_tensor_new_planned(l->up_bias->dtype, 1, &k, &n.up_bias, err);
  return install_mlp(l, &n, st);
}

/* Score (custom > hybrid > static, §2.6), select and slice one layer; kept[k]
 * receives the kept indices. */
static pf_status prune_layer(pf_layer *l, pf_score_method m, const float *X, const float *custom,
                             int64_t k, int64_t *kept, pf_err *err) {
  const int64_t I = l->gate_proj->shape[0];
  mlp_set n = {0};
  float *scores = malloc(sizeof(float) * (size_t)I);
  pf_status st = scores ? PF_OK : pf_err_set(err, PF_ERR_NOMEM, "scores: out of memory");
  if (!st && custom)
    memcpy(scores, custom, sizeof(float) * (size_t)I);
  else if (!st)
    st = X ? pf_layer_hybrid_scores(l, X, scores, err) : pf_layer_scores(l, m, scores, err);
  if (!st) st = pf_topk_keep(scores, I, k, kept, err);
  free(scores);
  if (!st) st = pf_tensor_select_rows(l->gate_proj, kept, k, &n.gate, err);
  if (!st) st = pf_tensor_select_rows(l->up_proj, kept, k, &n.up, err);
  if (!st) st = pf_tensor_select_cols(l->down_proj, kept, k, &n.down, err);
  if (!st && l->gate_bias) st = pf_tensor_select_elems(l->gate_bias, kept, k, &n.gate_bias, err);
  if (!st && l->up_bias) st = pf_tensor_select_elems(l->up_bias, kept, k, &n.up_bias, err);
  return install_mlp(l, &n, st);
}

/* {index, intermediate_size_before, intermediate_size_after, kept_indices}. */
static pf_value *layer_entry(int64_t i, int64_t before, int64_t k, const int64_t *kept) {
  pf_value *e = pf_value_map(), *ki = kept ? pf_value_list() : pf_value_null();
  pf_status st = e && ki ? PF_OK : PF_ERR_NOMEM;
  for (int64_t j = 0; !st && kept && j < k; j++)
    st = pf_list_push(ki, pf_value_int(kept[j]));
  if (!st) st = pf_map_set_int(e, "index", i);
  if (!st) st = pf_map_set_int(e, "intermediate_size_before", before);
  if (!st) st = pf_map_set_int(e, "intermediate_size_after", k);
  if (!st) {
    st = pf_map_set(e, "kept_indices", ki);
    ki = NULL;
  }
  pf_value_release(ki);
  if (st) {
    pf_value_release(e);
    return NULL;
  }
  return e;
}

/* OptiPFair's KeyError text for a layer without calibration norms. */
static pf_status missing_norms(const pf_width_plan *plan, int64_t i, pf_err *err) {
  char list[512] = "";
  size_t len = 0;
  for (int64_t l = 0; l < plan->n_layers && len + 24 < sizeof list; l++)
    if (plan->norms[l])
      len +=
          (size_t)snprintf(list + len, sizeof list - len, "%s%lld", len ? ", " : "", (long long)l);
  return pf_err_set(err, PF_ERR_INVALID,
                    "No activation norms found for layer %lld. Available "
                    "layers: [%s]",
                    (long long)i, list);
}

/* Prune every selected layer of nm in place; append entries to `layers`. */
static pf_status prune_layers(pf_model *nm, const pf_width_plan *plan, const pf_ctx *ctx,
                              pf_value *layers, pf_err *err) {
  int dry = ctx && ctx->dry_run;
  int64_t total = 0, done = 0;
  for (int64_t i = 0; i < plan->n_layers; i++)
    total += plan->selected[i];
  for (int64_t i = 0; i < plan->n_layers; i++) {
    if (!plan->selected[i]) continue;
    pf_status st = pf_ctx_check_interrupt(ctx, err);
    if (st) return st;
    pf_layer *l = &nm->layers[i];
    int64_t before = l->gate_proj->shape[0], k = plan->keep[i];
    int64_t *kept = dry ? NULL : malloc(sizeof(int64_t) * (size_t)k);
    if (!dry && !kept) return pf_err_set(err, PF_ERR_NOMEM, "out of memory");
    const float *X = plan->norms ? plan->norms[i] : NULL;
    if (plan->norms && !X) {
      free(kept);
      return missing_norms(plan, i, err);
    }
    const float *custom = plan->custom ? plan->custom[i] : NULL;
    st = dry ? plan_layer(l, k, err) : prune_layer(l, plan->method, X, custom, k, kept, err);
    pf_value *e = st ? NULL : layer_entry(i, before, k, kept);
    free(kept);
    if (!st && (!e || pf_list_push(layers, e) != PF_OK))
      st = pf_err_set(err, PF_ERR_NOMEM, "out of memory");
    if (st) {
      pf_err_prefix(err, "model.layers.%lld.mlp", (long long)i);
      return st;
    }
    nm->config.intermediate_sizes[i] = k;
    pf_ctx_progress(ctx, "prune_width", (uint64_t)++done, (uint64_t)total);
  }
  int64_t mx = 0;
  for (int64_t i = 0; i < nm->n_layers; i++)
    if (nm->config.intermediate_sizes[i] > mx) mx = nm->config.intermediate_sizes[i];
  nm->config.intermediate_size = mx;
  return PF_OK;
}

pf_status pf_prune_width(const pf_model *m, const pf_width_opts *o, const pf_ctx *ctx,
                         pf_model **out, pf_value **stats, pf_err *err) {
  *out = NULL;
  if (stats) *stats = NULL;
  pf_width_plan plan;
  pf_model *nm = NULL;
  pf_value *layers = NULL, *s = NULL;
  pf_status st = pf_width_plan_make(m, o, &plan, err);
  if (st) return st;
  st = pf_model_derive(m, &nm, err);
  if (!st && !nm->config.intermediate_sizes)
    st = pf_err_set(err, PF_ERR_INVALID, "config: intermediate_sizes missing");
  if (!st && !(layers = pf_value_list())) st = pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  if (!st) st = prune_layers(nm, &plan, ctx, layers, err);
  if (!st && stats) st = pf_width_stats(m, nm, &s, err);
  if (!st && stats) {
    st = pf_map_set(s, "layers", layers);
    layers = NULL;
    if (st) pf_err_set(err, st, "statistics: out of memory");
  }
  pf_width_plan_free(&plan);
  pf_value_release(layers);
  if (st) {
    pf_value_release(s);
    pf_model_release(nm);
    return st;
  }
  *out = nm;
  if (stats) *stats = s;
  return PF_OK;
}
