/* prune_depth.c — op "prune_depth" (alias "prune-depth"): remove whole layers.
 *
 * OptiPFair's prune_model_depth (§5) plus one pfrun extension: `importance`
 * (a layer-importance result, a map {"0": score, ...} or a list) with
 * num_layers_to_remove or depth_pruning_percentage removes the layers with
 * the LOWEST importance (ties: the higher index goes first);
 * layer_selection_method may not be given then. The new model shares every tensor
 * with its parent (no weight is copied), so a dry run costs nothing extra.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch.h"
#include "ophelp.h"
#include "pruning.h"

static const pf_param_spec prune_depth_params[] = {
    {"model", PF_P_MODEL, 1, NULL, NULL, 0, 0, "the model to prune (it is not changed)"},
    {"num_layers_to_remove", PF_P_NUM, 0, NULL, NULL, 0,
     0, /* a number: 2.5 gets OptiPFair's text */
     "how many layers to remove, a positive integer (with layer_selection_method or importance)"},
    {"layer_indices", PF_P_INTLIST, 0, NULL, NULL, 0, 0,
     "exactly these layers (the method becomes \"custom\")"},
    {"depth_pruning_percentage", PF_P_NUM, 0, NULL, NULL, 0, 0,
     "remove int(L * q / 100) layers, 0 < q < 100"},
    {"layer_selection_method", PF_P_STR, 0, NULL, "last|first|custom", 0, 0,
     "which layers num_layers_to_remove / depth_pruning_percentage take (default last; not "
     "with importance, which takes the least important)"},
    {"importance", PF_P_ANY, 0, NULL, NULL, 0, 0,
     "per-layer importance ({\"0\": score, ...}, a list, or an importance result): remove the "
     "least important layers (ties: higher index first)"},
};

/* The options from the validated params, without the importance scores; *idx
 * (the layer indices, malloc'd) is the caller's to free. */
static pf_status depth_opts(const pf_value *params, pf_depth_opts *out, int64_t **idx,
                            pf_err *err) {
  pf_depth_opts o = {.layer_selection_method = pf_map_str(params, "layer_selection_method", NULL)};
  o.have_num = pf_map_has(params, "num_layers_to_remove");
  /* not a whole number: 0, which the checks reject as OptiPFair does ("must be a
   * positive integer"), at the same point of its order of checks; OptiPFair's
   * isinstance(n, int): 2.0 is not an integer either. An integer is taken whole
   * (2^63-1 is "Cannot remove … layers", not "must be a positive integer"). */
  o.num_layers_to_remove = pf_map_is_int(params, "num_layers_to_remove")
                               ? pf_map_int(params, "num_layers_to_remove", 0)
                               : 0;
  o.have_percentage = pf_map_has(params, "depth_pruning_percentage");
  o.depth_pruning_percentage = pf_map_num(params, "depth_pruning_percentage", 0);
  pf_status st = pf_param_intlist(params, "layer_indices", idx, &o.n_layer_indices,
                                  &o.have_layer_indices, err);
  o.layer_indices = *idx;
  *out = o;
  return st;
}

static pf_status prune_depth_check(const pf_value *params, pf_err *err) {
  pf_depth_opts o = {0};
  int64_t *idx = NULL;
  pf_status st = depth_opts(params, &o, &idx, err);
  const pf_value *iv = pf_map_get(params, "importance");
  if (!st) st = pf_depth_opts_check(&o, iv && iv->type != PF_V_NULL, err);
  free(idx);
  return st;
}

/* A model_type pfrun runs LLaMA-shaped may keep more per-layer keys in its config than
 * the ones a depth prune follows (layer_types, intermediate_sizes, no_rope_layers,
 * mlp_only_layers): its top-level lists with one entry per layer are named in buf, as
 * keys the saved config keeps as they were. 0: none (or a family pfrun knows). */
static int unknown_layer_keys(const pf_model *m, char *buf, size_t n) {
  static const char *const known[] = {"layer_types", "intermediate_sizes", "no_rope_layers",
                                      "mlp_only_layers", "architectures"};
  const cJSON *raw = m->config.raw;
  if (!raw || pf_arch_find(m->config.model_type)) return 0;
  size_t used = 0;
  for (const cJSON *e = raw->child; e && used < n; e = e->next) {
    int skip = !cJSON_IsArray(e) || cJSON_GetArraySize(e) != m->n_layers || !e->string;
    for (size_t k = 0; !skip && k < sizeof known / sizeof *known; k++)
      skip = !strcmp(e->string, known[k]);
    if (!skip) used += (size_t)snprintf(buf + used, n - used, "%s%s", used ? ", " : "", e->string);
  }
  return used > 0;
}

static pf_status prune_depth_run(const pf_op *op, const pf_value *params, pf_value **out,
                                 const pf_ctx *ctx, pf_err *err) {
  const pf_model *m = pf_map_model(params, "model");
  pf_depth_opts o = {0};
  int64_t *idx = NULL;
  double *imp = NULL;
  pf_status st = depth_opts(params, &o, &idx, err);
  const pf_value *iv = pf_map_get(params, "importance");
  /* a dry run's importance step computes nothing: its planned result is checked
   * against this model and plans with equal scores (the layers actually
   * removed are decided by the real run) */
  if (!st && iv && iv->type != PF_V_NULL && m->n_layers > 0) {
    st = pf_importance_from_value(iv, m->n_layers, ctx && ctx->dry_run, &imp, err);
    o.importance = imp;
    o.n_importance = (size_t)m->n_layers;
  }
  pf_model *nm = NULL;
  pf_value *stats = NULL;
  if (!st) st = pf_prune_depth(m, &o, &nm, &stats, err);
  free(idx);
  free(imp);
  if (st) return st;
  char keys[256], note[512] = "";
  if (unknown_layer_keys(m, keys, sizeof keys)) {
    snprintf(note, sizeof note,
             "model_type \"%s\" is run LLaMA-shaped: its config keys %s have one entry per "
             "layer and are saved as they were (check them against the kept layers)",
             m->config.model_type, keys);
    pf_ctx_log(ctx, "warning: prune_depth: %s", note);
  }
  *out = pf_model_result(nm, stats);
  pf_model_release(nm);
  if (*out && note[0] && pf_map_set_str(*out, "warning", note) != PF_OK) {
    pf_value_release(*out);
    *out = NULL;
  }
  return *out ? PF_OK : pf_err_set(err, PF_ERR_NOMEM, "out of memory");
}

const pf_op pf_op_prune_depth = {
    .name = "prune_depth",
    .own_checks = "layer_selection_method",
    .check = prune_depth_check,
    .alias = "prune-depth",
    .summary = "remove whole decoder layers (OptiPFair DEPTH)",
    .params = prune_depth_params,
    .n_params = sizeof prune_depth_params / sizeof prune_depth_params[0],
    .returns = "{model, original_parameters, pruned_parameters, reduction, percentage_reduction, "
               "original_layer_count, final_layer_count, layers_removed, "
               "layer_reduction_percentage, removed_layers}",
    .run = prune_depth_run,
};
