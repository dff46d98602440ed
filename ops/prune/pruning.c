/* pruning.c — OptiPFair width-pruning math: k, top-k, plan, prune, stats, for
 * GLU MLPs (MLP_GLU) and plain MLPs (pfrun's MLP). (Scores live in
 * pruning_scores.c, depth pruning in pruning_depth.c.)
 *
 * Why the arithmetic looks the way it does:
 *  - k: Python computes int(p / 100 * I); (p/100)*I in IEEE double, truncated.
 *  - a plain MLP goes the GLU way with I = rows of up_proj (fc_in): the same
 *    k, divisor, expansion-rate, layer and tie rules; only the scores and the
 *    absent gate_proj differ, so one code path serves both.
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
  double s;
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

pf_status pf_topk_keep_f64(const double *scores, int64_t n, int64_t k, int64_t *kept, pf_err *err) {
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

pf_status pf_topk_keep(const float *scores, int64_t n, int64_t k, int64_t *kept, pf_err *err) {
  double *d = malloc(sizeof *d * (size_t)(n ? n : 1)); /* exact: same order, same ties */
  if (!d) return pf_err_set(err, PF_ERR_NOMEM, "top-k: out of memory");
  for (int64_t i = 0; i < n; i++)
    d[i] = scores[i];
  pf_status st = pf_topk_keep_f64(d, n, k, kept, err);
  free(d);
  return st;
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

static const char *const width_type_names[] = {"MLP_GLU", "MLP"};

pf_status pf_width_type_parse(const char *name, pf_width_type *out, pf_err *err) {
  for (int i = 0; i < 2; i++)
    if (name && strcmp(name, width_type_names[i]) == 0) {
      *out = (pf_width_type)i;
      return PF_OK;
    }
  return pf_err_set(err, PF_ERR_INVALID,
                    "Unsupported pruning type: %s. Choose from ['MLP_GLU', 'MLP'] (width) or "
                    "'DEPTH'.",
                    name ? name : "None");
}

const char *pf_width_type_name(pf_width_type t) {
  return (unsigned)t < 2 ? width_type_names[t] : "?";
}

static int family_is_plain(const pf_model *m) {
  return m->config.arch && m->config.arch->mlp == PF_MLP_PLAIN;
}

static const char *family_name(const pf_model *m) {
  return m->config.arch ? m->config.arch->model_type : "?";
}

pf_status pf_check_glu_compatible(const pf_model *m, pf_err *err) {
  char why[256] = "", hint[256] = "";
  if (pf_model_glu_compatible(m, why, sizeof why)) return PF_OK;
  if (family_is_plain(m))
    snprintf(hint, sizeof hint,
             " This model (model_type %s) has a plain MLP (fc_in -> activation -> fc_out, no "
             "gate_proj): prune its neurons with pruning_type MLP (pfrun prune --pruning-type "
             "MLP).",
             family_name(m));
  return pf_err_set(err, PF_ERR_INVALID,
                    "Model is not compatible with GLU pruning. It must have gate_proj, up_proj, "
                    "and down_proj layers.%s%s%s%s",
                    why[0] ? " (" : "", why, why[0] ? ")" : "", hint);
}

/* Why layer 0 of m is not a plain MLP, or NULL when it is. */
static const char *plain_mlp_problem(const pf_model *m, char *buf, size_t n) {
  const pf_layer *l = m->n_layers > 0 ? &m->layers[0] : NULL;
  if (!l) return "the model has no layers";
  if (!family_is_plain(m) || l->gate_proj) {
    snprintf(buf, n,
             "model_type %s has a GLU MLP (gate_proj, up_proj, down_proj); prune it with "
             "pruning_type MLP_GLU (pfrun prune --pruning-type MLP_GLU)",
             family_name(m));
    return buf;
  }
  const pf_tensor *u = l->up_proj, *d = l->down_proj;
  if (!u || !d) return "layer 0 has no up_proj (fc_in) / down_proj (fc_out)";
  if (u->ndim != 2 || d->ndim != 2) return "layer 0 MLP weights are not 2-D";
  if (d->shape[0] != u->shape[1] || d->shape[1] != u->shape[0]) {
    char a[48], b[48];
    snprintf(buf, n, "layer 0 MLP shapes do not chain: up_proj (fc_in) %s, down_proj (fc_out) %s",
             pf_shape_str(2, u->shape, a, sizeof a), pf_shape_str(2, d->shape, b, sizeof b));
    return buf;
  }
  return NULL;
}

pf_status pf_check_plain_mlp(const pf_model *m, pf_err *err) {
  char buf[256];
  const char *why = plain_mlp_problem(m, buf, sizeof buf);
  if (!why) return PF_OK;
  return pf_err_set(err, PF_ERR_INVALID,
                    "Model is not compatible with MLP pruning (pruning_type MLP is for plain, "
                    "non-GLU MLPs: up_proj/fc_in [I, H] -> activation -> down_proj/fc_out [H, I], "
                    "as in gpt2 and gpt_neox): %s.",
                    why);
}

pf_status pf_check_width_compatible(const pf_model *m, pf_width_type t, pf_err *err) {
  return t == PF_WIDTH_MLP ? pf_check_plain_mlp(m, err) : pf_check_glu_compatible(m, err);
}

static pf_status fairness_needs_glu(pf_err *err) {
  return pf_err_set(err, PF_ERR_INVALID,
                    "fairness_scores: fairness-aware pruning needs a GLU MLP (its scores come "
                    "from gate_proj / up_proj activations); pruning_type MLP does not take "
                    "fairness_scores");
}

/* Step 5: the divisor. */
static pf_status check_divisor(const pf_width_opts *o, pf_err *err) {
  if (!o->have_divisor) return PF_OK;
  if (!pf_divisor_valid(o->expansion_divisor))
    return pf_err_set(err, PF_ERR_INVALID,
                      "expansion_divisor must be one of [32, 64, 128, 256] or None. Got: %lld",
                      (long long)o->expansion_divisor);
  if (!o->have_percentage && !o->have_expansion_rate)
    return pf_err_set(err, PF_ERR_INVALID,
                      "expansion_divisor cannot be used alone. Please provide either "
                      "pruning_percentage or expansion_rate.");
  return PF_OK;
}

/* Step 6: data-driven scores need MAW (checked before the method is parsed). */
static pf_status check_norms_method(const pf_width_opts *o, int have_norms, pf_err *err) {
  const char *method = o->method ? o->method : "PPM";
  if (have_norms && strcmp(method, "MAW") != 0)
    return pf_err_set(err, PF_ERR_INVALID,
                      "Data-driven pruning with dataloader is only supported for PPM method "
                      "(parameter 'MAW'). Got neuron_selection_method='%s'. Please use "
                      "neuron_selection_method='MAW' or remove the dataloader parameter.",
                      method);
  return PF_OK;
}

/* Steps 1-3 and 5: structure, layer_indices, divisor. */
static pf_status check_width_structure(const pf_model *m, const pf_width_opts *o, pf_err *err) {
  pf_status st = pf_check_width_compatible(m, o->pruning_type, err);
  if (st) return st;
  if (m->n_layers <= 0)
    return pf_err_set(err, PF_ERR_INVALID, "Could not find MLP layers in the model.");
  if (o->have_layer_indices) {
    st = pf_check_layer_indices(o->layer_indices, o->n_layer_indices, m->n_layers, err);
    if (st) return st;
  }
  if (o->fairness_scores && o->pruning_type == PF_WIDTH_MLP) return fairness_needs_glu(err);
  if (o->fairness_scores) {
    pf_status st = pf_fairness_check(o->fairness_scores, err);
    if (st) return st;
  }
  st = check_divisor(o, err);
  if (st) return st;
  return check_norms_method(o, o->activation_norms != NULL, err);
}

/* Steps 7-8: method, exclusivity. */
static pf_status check_method(const pf_width_opts *o, pf_score_method *method, pf_err *err) {
  pf_status st = pf_score_method_parse(o->method ? o->method : "PPM", method, err);
  if (st) return st;
  if (o->have_percentage && o->have_expansion_rate)
    return pf_err_set(err, PF_ERR_INVALID,
                      "pruning_percentage and expansion_rate are mutually exclusive. Provide only "
                      "one.");
  return PF_OK;
}

pf_status pf_check_percentage(double p, int is_int, pf_err *err) {
  if (p >= 0 && p <= 100) return PF_OK;
  char ps[48];
  pf_format_pynum(p, is_int, ps, sizeof ps);
  return pf_err_set(err, PF_ERR_INVALID, "pruning_percentage must be between 0 and 100, got %s",
                    ps);
}

/* Steps 7-10: method, exclusivity, expansion rate, percentage range. */
static pf_status width_percentage(const pf_model *m, const pf_width_opts *o, pf_width_plan *p,
                                  pf_err *err) {
  pf_status st = check_method(o, &p->method, err);
  if (st) return st;
  int is_int = o->percentage_is_int;
  if (o->have_expansion_rate) {
    const pf_tensor *u = m->layers[0].up_proj; /* == gate_proj's shape for a GLU MLP */
    st = pf_percentage_from_expansion_rate(u->shape[0], u->shape[1], o->expansion_rate,
                                           o->expansion_rate_is_int, &p->percentage, err);
    if (st) return st;
    is_int = 0;
  } else if (o->have_percentage) {
    p->percentage = o->pruning_percentage;
  } else {
    return pf_err_set(err, PF_ERR_INVALID,
                      "pruning_percentage must be between 0 and 100, got None");
  }
  return pf_check_percentage(p->percentage, is_int, err);
}

pf_status pf_width_opts_check(const pf_width_opts *o, int have_calibration, pf_err *err) {
  if (o->fairness_scores && o->pruning_type == PF_WIDTH_MLP) return fairness_needs_glu(err);
  pf_score_method method;
  pf_status st = check_divisor(o, err);
  if (!st) st = check_norms_method(o, have_calibration, err);
  if (!st) st = check_method(o, &method, err);
  if (!st && o->have_percentage && !o->have_expansion_rate)
    st = pf_check_percentage(o->pruning_percentage, o->percentage_is_int, err);
  return st;
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
  out->score_dtype = o->score_dtype;
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
  const int plain = o->pruning_type == PF_WIDTH_MLP;
  for (int64_t i = 0; i < L; i++) {
    const pf_layer *l = &m->layers[i];
    const pf_tensor *g = l->gate_proj, *u = l->up_proj;
    if ((plain ? g != NULL : !g || g->ndim != 2) || !u || u->ndim != 2 || !l->down_proj ||
        l->down_proj->ndim != 2) {
      st = pf_err_set(err, PF_ERR_INVALID,
                      plain ? "model.layers.%lld.mlp: expected a plain MLP: 2-D up_proj (fc_in) "
                              "and down_proj (fc_out), no gate_proj"
                            : "model.layers.%lld.mlp: expected 2-D gate_proj, up_proj and "
                              "down_proj",
                      (long long)i);
      break;
    }
    if (!o->have_layer_indices) out->selected[i] = 1;
    out->keep[i] = u->shape[0];
    if (out->selected[i] && out->custom) st = plan_custom(o, i, u->shape[0], out, err);
    if (!st && out->selected[i])
      st = pf_layer_keep(i, u->shape[0], out->percentage, d, &out->keep[i], err);
    if (st) break;
  }
  if (st) pf_width_plan_free(out);
  return st;
}

/* ---- statistics (§6.2) ---- */

/* Rows of up_proj: the width of a GLU (== gate_proj rows) and of a plain MLP. */
static int64_t layer_width(const pf_layer *l) {
  return l->up_proj && l->up_proj->ndim == 2 ? l->up_proj->shape[0] : -1;
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
  const pf_tensor *g0 = after->n_layers > 0 ? after->layers[0].up_proj : NULL;
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

/* The MLP tensors a width pruning replaces (gate and the biases only when the
 * layer has them: a plain MLP has no gate). */
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
  if (l->gate_proj) put_tensor(&l->gate_proj, n->gate);
  put_tensor(&l->up_proj, n->up);
  put_tensor(&l->down_proj, n->down);
  if (l->gate_bias) put_tensor(&l->gate_bias, n->gate_bias);
  if (l->up_bias) put_tensor(&l->up_bias, n->up_bias);
  return PF_OK;
}

/* Planned (shape-only) replacements for a dry run. */
static pf_status plan_layer(pf_layer *l, int64_t k, pf_err *err) {
  const pf_tensor *g = l->gate_proj, *d = l->down_proj;
  int64_t gs[2] = {k, g ? g->shape[1] : 0}, us[2] = {k, l->up_proj->shape[1]},
          ds[2] = {d->shape[0], k};
  mlp_set n = {0};
  pf_status st = g ? pf_tensor_new_planned(g->dtype, 2, gs, &n.gate, err) : PF_OK;
  if (!st) st = pf_tensor_new_planned(l->up_proj->dtype, 2, us, &n.up, err);
  if (!st) st = pf_tensor_new_planned(d->dtype, 2, ds, &n.down, err);
  if (!st && l->gate_bias)
    st = pf_tensor_new_planned(l->gate_bias->dtype, 1, &k, &n.gate_bias, err);
  if (!st && l->up_bias) st = pf_tensor_new_planned(l->up_bias->dtype, 1, &k, &n.up_bias, err);
  return install_mlp(l, &n, st);
}

/* Score (custom > hybrid > static, §2.6), select and slice one layer; kept[k]
 * receives the kept indices. */
static pf_status prune_layer(pf_layer *l, pf_score_method m, pf_dtype as, const float *X,
                             const float *custom, int64_t k, int64_t *kept, pf_err *err) {
  const int64_t I = pf_layer_width(l);
  mlp_set n = {0};
  float *scores = malloc(sizeof(float) * (size_t)I);
  pf_status st = scores ? PF_OK : pf_err_set(err, PF_ERR_NOMEM, "scores: out of memory");
  if (!st && custom)
    memcpy(scores, custom, sizeof(float) * (size_t)I);
  else if (!st)
    st = X ? pf_layer_hybrid_scores(l, X, as, scores, err) : pf_layer_scores(l, m, as, scores, err);
  if (!st) st = pf_topk_keep(scores, I, k, kept, err);
  free(scores);
  if (!st && l->gate_proj) st = pf_tensor_gather_rows(l->gate_proj, kept, k, &n.gate, err);
  if (!st) st = pf_tensor_gather_rows(l->up_proj, kept, k, &n.up, err);
  if (!st) st = pf_tensor_gather_cols(l->down_proj, kept, k, &n.down, err);
  if (!st && l->gate_bias) st = pf_tensor_gather_elems(l->gate_bias, kept, k, &n.gate_bias, err);
  if (!st && l->up_bias) st = pf_tensor_gather_elems(l->up_bias, kept, k, &n.up_bias, err);
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
    int64_t before = pf_layer_width(l), k = plan->keep[i];
    int64_t *kept = dry ? NULL : malloc(sizeof(int64_t) * (size_t)k);
    if (!dry && !kept) return pf_err_set(err, PF_ERR_NOMEM, "out of memory");
    const float *X = plan->norms ? plan->norms[i] : NULL;
    if (plan->norms && !X) {
      free(kept);
      return missing_norms(plan, i, err);
    }
    const float *custom = plan->custom ? plan->custom[i] : NULL;
    st = dry ? plan_layer(l, k, err)
             : prune_layer(l, plan->method, plan->score_dtype, X, custom, k, kept, err);
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
