/* pruning_depth.c — OptiPFair depth pruning: validation (§5.1), selection
 * (§5.2), removal (§5.3) and statistics (§6.3), plus pfrun's importance-based
 * selection (see pf_depth_opts in pruning.h).
 *
 * Python details reproduced: the percentage gives n = int(T * q / 100)
 * (multiplying first); q is printed with Python float formatting ("5.0");
 * method validity is checked even when layer_indices forces "custom".
 * Where OptiPFair crashes (method "custom" with num_layers_to_remove passes
 * None on and raises TypeError) pfrun reports select_layers_to_remove's message.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "calibration.h"
#include "pruning.h"

static pf_status check_count(const pf_depth_opts *o, int64_t T, int64_t *n, pf_err *err) {
  if (o->have_num) {
    if (o->num_layers_to_remove <= 0)
      return pf_err_set(err, PF_ERR_INVALID, "num_layers_to_remove must be a positive integer");
    if (T >= 0 && o->num_layers_to_remove >= T)
      return pf_err_set(err, PF_ERR_INVALID,
                        "Cannot remove %lld layers from model with %lld layers",
                        (long long)o->num_layers_to_remove, (long long)T);
    *n = o->num_layers_to_remove;
  }
  if (o->have_percentage) {
    double q = o->depth_pruning_percentage;
    if (!(q > 0 && q < 100))
      return pf_err_set(err, PF_ERR_INVALID, "depth_pruning_percentage must be between 0 and 100");
    if (T < 0) return PF_OK;
    int64_t k = (int64_t)((double)T * q / 100.0);
    char qs[48];
    pf_format_pyfloat(q, qs, sizeof qs);
    if (k >= T)
      return pf_err_set(err, PF_ERR_INVALID,
                        "depth_pruning_percentage %s%% would remove all layers", qs);
    if (k == 0)
      return pf_err_set(err, PF_ERR_INVALID, "depth_pruning_percentage %s%% would remove 0 layers",
                        qs);
    *n = k;
  }
  return PF_OK;
}

static pf_status check_depth_indices(const pf_depth_opts *o, int64_t T, pf_err *err) {
  if (o->n_layer_indices == 0)
    return pf_err_set(err, PF_ERR_INVALID, "layer_indices must be a non-empty list");
  for (size_t i = 0; i < o->n_layer_indices; i++)
    if (o->layer_indices[i] < 0 || o->layer_indices[i] >= T)
      return pf_err_set(err, PF_ERR_INVALID, "All layer_indices must be between 0 and %lld",
                        (long long)(T - 1));
  for (size_t i = 0; i < o->n_layer_indices; i++)
    for (size_t j = i + 1; j < o->n_layer_indices; j++)
      if (o->layer_indices[i] == o->layer_indices[j])
        return pf_err_set(err, PF_ERR_INVALID, "layer_indices must not contain duplicates");
  if ((int64_t)o->n_layer_indices >= T)
    return pf_err_set(err, PF_ERR_INVALID, "Cannot remove %zu layers from model with %lld layers",
                      o->n_layer_indices, (long long)T);
  return PF_OK;
}

/* §5.1 in order; *n = number of layers to remove, *method = effective method.
 * T < 0: the model is not known yet (pf_depth_opts_check): the checks that need
 * its layer count are left out, as are layer_indices but for an empty list. */
static pf_status validate_depth(int64_t T, const pf_depth_opts *o, int64_t *n, const char **method,
                                pf_err *err) {
  if (T == 0)
    return pf_err_set(err, PF_ERR_INVALID, "Could not find transformer layers in the model.");
  int given = (o->have_num != 0) + (o->have_layer_indices != 0) + (o->have_percentage != 0);
  if (given == 0)
    return pf_err_set(err, PF_ERR_INVALID,
                      "Must specify one of: num_layers_to_remove, layer_indices, or "
                      "depth_pruning_percentage");
  if (given > 1)
    return pf_err_set(err, PF_ERR_INVALID,
                      "Parameters num_layers_to_remove, layer_indices, and "
                      "depth_pruning_percentage are mutually exclusive");
  *method = o->layer_selection_method ? o->layer_selection_method : "last";
  if (strcmp(*method, "last") && strcmp(*method, "first") && strcmp(*method, "custom"))
    return pf_err_set(err, PF_ERR_INVALID,
                      "layer_selection_method must be one of ['last', 'first', 'custom'], got %s",
                      *method);
  pf_status st = check_count(o, T, n, err);
  if (st || !o->have_layer_indices) return st;
  if (T < 0)
    return o->n_layer_indices
               ? PF_OK
               : pf_err_set(err, PF_ERR_INVALID, "layer_indices must be a non-empty list");
  st = check_depth_indices(o, T, err);
  if (st) return st;
  *method = "custom";
  *n = (int64_t)o->n_layer_indices;
  return PF_OK;
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : (x > y);
}

/* Order for importance selection: lower score first, ties: higher index first. */
typedef struct ranked {
  double s;
  int64_t i;
} ranked;

static int cmp_ranked(const void *a, const void *b) {
  const ranked *x = a, *y = b;
  if (x->s != y->s) return x->s < y->s ? -1 : 1;
  return x->i > y->i ? -1 : (x->i < y->i);
}

/* The n layers with the lowest importance into out[n]. */
static pf_status select_by_importance(const double *imp, int64_t T, int64_t n, int64_t *out,
                                      pf_err *err) {
  ranked *r = malloc(sizeof *r * (size_t)T);
  if (!r) return pf_err_set(err, PF_ERR_NOMEM, "depth selection: out of memory");
  for (int64_t i = 0; i < T; i++)
    r[i] = (ranked){imp[i], i};
  qsort(r, (size_t)T, sizeof *r, cmp_ranked);
  for (int64_t i = 0; i < n; i++)
    out[i] = r[i].i;
  free(r);
  return PF_OK;
}

/* What importance cannot be combined with, and custom without indices. */
static pf_status check_selection(const pf_depth_opts *o, int have_importance, const char *method,
                                 pf_err *err) {
  if (have_importance && o->have_layer_indices)
    return pf_err_set(err, PF_ERR_INVALID, "importance cannot be combined with layer_indices");
  if (have_importance && o->layer_selection_method) /* it would be ignored */
    return pf_err_set(err, PF_ERR_INVALID,
                      "importance cannot be combined with layer_selection_method (the least "
                      "important layers are removed)");
  if (!have_importance && !strcmp(method, "custom") && !o->have_layer_indices)
    return pf_err_set(err, PF_ERR_INVALID,
                      "custom_indices must be provided when layer_selection_method is 'custom'");
  return PF_OK;
}

pf_status pf_depth_opts_check(const pf_depth_opts *o, int have_importance, pf_err *err) {
  int64_t n = 0;
  const char *method = NULL;
  pf_status st = validate_depth(-1, o, &n, &method, err);
  return st ? st : check_selection(o, have_importance, method, err);
}

pf_status pf_depth_select(const pf_model *m, const pf_depth_opts *o, int64_t **removed,
                          size_t *n_removed, pf_err *err) {
  *removed = NULL;
  *n_removed = 0;
  int64_t n = 0;
  const char *method = NULL;
  const int64_t T = m->n_layers > 0 ? m->n_layers : 0;
  pf_status st = validate_depth(T, o, &n, &method, err);
  if (!st) st = check_selection(o, o->importance != NULL, method, err);
  if (st) return st;
  if (o->importance && (int64_t)o->n_importance != T)
    return pf_err_set(err, PF_ERR_INVALID,
                      "importance: expected %lld scores (one per layer), got %zu", (long long)T,
                      o->n_importance);
  int64_t *r = malloc(sizeof *r * (size_t)n);
  if (!r) return pf_err_set(err, PF_ERR_NOMEM, "depth selection: out of memory");
  if (o->importance) {
    pf_status sst = select_by_importance(o->importance, T, n, r, err);
    if (sst) {
      free(r);
      return sst;
    }
  } else if (o->have_layer_indices)
    memcpy(r, o->layer_indices, sizeof *r * (size_t)n);
  else
    for (int64_t i = 0; i < n; i++)
      r[i] = strcmp(method, "first") == 0 ? i : T - n + i;
  qsort(r, (size_t)n, sizeof *r, cmp_i64);
  *removed = r;
  *n_removed = (size_t)n;
  return PF_OK;
}

static pf_status depth_stats(const pf_model *m, const pf_model *nm, const int64_t *removed,
                             size_t n, pf_value **out) {
  int64_t orig = pf_model_param_count(m), pruned = pf_model_param_count(nm);
  int64_t red = orig - pruned, T = m->n_layers, final = nm->n_layers;
  pf_value *s = pf_value_map(), *rl = pf_value_list();
  pf_status st = s && rl ? PF_OK : PF_ERR_NOMEM;
  if (!st) st = pf_map_set_int(s, "original_parameters", orig);
  if (!st) st = pf_map_set_int(s, "pruned_parameters", pruned);
  if (!st) st = pf_map_set_int(s, "reduction", red);
  if (!st)
    st = pf_map_set_num(s, "percentage_reduction",
                        orig > 0 ? ((double)red / (double)orig) * 100.0 : 0.0);
  if (!st) st = pf_map_set_int(s, "original_layer_count", T);
  if (!st) st = pf_map_set_int(s, "final_layer_count", final);
  if (!st) st = pf_map_set_int(s, "layers_removed", T - final);
  if (!st)
    st = pf_map_set_num(s, "layer_reduction_percentage",
                        T > 0 ? ((double)(T - final) / (double)T) * 100.0 : 0.0);
  for (size_t i = 0; !st && i < n; i++)
    st = pf_list_push(rl, pf_value_int(removed[i]));
  if (!st) {
    st = pf_map_set(s, "removed_layers", rl);
    rl = NULL;
  }
  pf_value_release(rl);
  if (st) {
    pf_value_release(s);
    return PF_ERR_NOMEM;
  }
  *out = s;
  return PF_OK;
}

pf_status pf_prune_depth(const pf_model *m, const pf_depth_opts *o, pf_model **out,
                         pf_value **stats, pf_err *err) {
  *out = NULL;
  if (stats) *stats = NULL;
  int64_t *removed = NULL;
  size_t n = 0;
  pf_model *nm = NULL;
  pf_status st = pf_depth_select(m, o, &removed, &n, err);
  if (!st) st = pf_model_derive(m, &nm, err);
  for (size_t i = n; !st && i > 0; i--) /* highest first, like layer_types.pop */
    st = pf_model_remove_layer(nm, removed[i - 1], err);
  if (!st && stats && depth_stats(m, nm, removed, n, stats) != PF_OK)
    st = pf_err_set(err, PF_ERR_NOMEM, "statistics: out of memory");
  free(removed);
  if (st) {
    pf_model_release(nm);
    return st;
  }
  *out = nm;
  return PF_OK;
}

/* ---- importance scores from a value ---- */

static int parse_layer_key(const char *k, int64_t *out) {
  char *end;
  if (!*k) return 0;
  long long x = strtoll(k, &end, 10);
  if (*end) return 0;
  *out = x;
  return 1;
}

static pf_status importance_number(const pf_value *v, int64_t layer, double *out, pf_err *err) {
  if (v->type == PF_V_INT)
    *out = (double)v->u.i;
  else if (v->type == PF_V_NUM)
    *out = v->u.n;
  else
    return pf_err_set(err, PF_ERR_INVALID, "importance: layer %lld: expected a number, got %s",
                      (long long)layer, pf_vtype_name(v->type));
  if (!isfinite(*out))
    return pf_err_set(err, PF_ERR_INVALID, "importance: layer %lld: expected a finite number",
                      (long long)layer);
  return PF_OK;
}

static pf_status importance_from_map(const pf_value *v, int64_t T, double *s, pf_err *err) {
  unsigned char *seen = calloc((size_t)T, 1);
  if (!seen) return pf_err_set(err, PF_ERR_NOMEM, "importance: out of memory");
  pf_status st = PF_OK;
  for (size_t i = 0; !st && i < v->u.map.len; i++) {
    int64_t l;
    const char *k = v->u.map.keys[i];
    if (!parse_layer_key(k, &l))
      st = pf_err_set(err, PF_ERR_INVALID, "importance: key \"%s\" is not a layer index", k);
    else if (l < 0 || l >= T)
      st = pf_err_set(err, PF_ERR_INVALID,
                      "importance: layer %lld is out of range (the model has %lld layers: 0-%lld)",
                      (long long)l, (long long)T, (long long)(T - 1));
    else if (seen[l])
      st = pf_err_set(err, PF_ERR_INVALID, "importance: layer %lld is given twice", (long long)l);
    else {
      seen[l] = 1;
      st = importance_number(v->u.map.vals[i], l, &s[l], err);
    }
  }
  for (int64_t l = 0; !st && l < T; l++)
    if (!seen[l])
      st = pf_err_set(err, PF_ERR_INVALID,
                      "importance: no score for layer %lld (scores must cover layers 0-%lld)",
                      (long long)l, (long long)(T - 1));
  free(seen);
  return st;
}

/* A dry run's planned importance (pf_calibration_plan_value): checked against
 * the model with the messages a real result of that many layers would get;
 * equal scores, so the plan removes what ties give (the highest layers). */
static pf_status importance_planned(const pf_value *plan, int64_t T, int dry_run, double **out,
                                    pf_err *err) {
  if (!dry_run)
    return pf_err_set(err, PF_ERR_INVALID,
                      "importance: a dry run's planned result holds no scores (give the result of "
                      "an importance or calibrate step that ran)");
  int64_t L = pf_map_int(plan, "num_hidden_layers", 0);
  if (L > T)
    return pf_err_set(err, PF_ERR_INVALID,
                      "importance: layer %lld is out of range (the model has %lld layers: 0-%lld)",
                      (long long)T, (long long)T, (long long)(T - 1));
  if (L < T)
    return pf_err_set(err, PF_ERR_INVALID,
                      "importance: no score for layer %lld (scores must cover layers 0-%lld)",
                      (long long)(L < 0 ? 0 : L), (long long)(T - 1));
  if (!(*out = calloc((size_t)T, sizeof **out)))
    return pf_err_set(err, PF_ERR_NOMEM, "importance: out of memory");
  return PF_OK;
}

pf_status pf_importance_from_value(const pf_value *v, int64_t n_layers, int dry_run, double **out,
                                   pf_err *err) {
  *out = NULL;
  pf_status cs = pf_calibration_check_layers(v, n_layers, "importance", err);
  if (cs) return cs;
  const pf_value *plan = v && v->type == PF_V_MAP ? pf_map_get(v, "planned") : NULL;
  if (plan && n_layers > 0) return importance_planned(plan, n_layers, dry_run, out, err);
  if (v && v->type == PF_V_MAP && pf_map_get(v, "scores"))
    v = pf_map_get(v, "scores");
  else if (v && v->type == PF_V_MAP && pf_map_get(v, "importance"))
    v = pf_map_get(v, "importance");
  if (!v || (v->type != PF_V_MAP && v->type != PF_V_LIST))
    return pf_err_set(err, PF_ERR_INVALID,
                      "importance: expected a map {\"0\": score, ...} or a list of scores, got %s",
                      v ? pf_vtype_name(v->type) : "nothing");
  if (n_layers <= 0) return pf_err_set(err, PF_ERR_INVALID, "importance: the model has no layers");
  double *s = calloc((size_t)n_layers, sizeof *s);
  if (!s) return pf_err_set(err, PF_ERR_NOMEM, "importance: out of memory");
  pf_status st = PF_OK;
  if (v->type == PF_V_MAP) {
    st = importance_from_map(v, n_layers, s, err);
  } else if ((int64_t)v->u.list.len != n_layers) {
    st =
        pf_err_set(err, PF_ERR_INVALID, "importance: expected %lld scores (one per layer), got %zu",
                   (long long)n_layers, v->u.list.len);
  } else {
    for (int64_t l = 0; !st && l < n_layers; l++)
      st = importance_number(v->u.list.items[l], l, &s[l], err);
  }
  if (st) {
    free(s);
    return st;
  }
  *out = s;
  return PF_OK;
}
