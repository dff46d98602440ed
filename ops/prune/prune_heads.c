/* prune_heads.c — op "prune_heads" (alias "prune-heads"): attention-head pruning
 * (issue 12 part A; pruning_heads.h has the units, scores and slicing). The
 * amount is one of pruning_percentage, num_kv_heads_to_keep and head_indices;
 * scores are static (o_proj block norms) or data-driven with a calibrate result
 * that holds "head_norms". Every layer must end with the same head count (the
 * op refuses otherwise): pfrun's forward, config.json and transformers have one
 * num_attention_heads per model.
 */
#include <stdlib.h>

#include "opdata.h"
#include "ophelp.h"
#include "pruning.h"
#include "pruning_heads.h"
#include "reconstruct.h"

static const pf_param_spec prune_heads_params[] = {
    {"model", PF_P_MODEL, 1, NULL, NULL, 0, 0, "the model to prune (it is not changed)"},
    {"pruning_percentage", PF_P_NUM, 0, NULL, NULL, 0, 0,
     "percentage of units (key/value heads with their query heads; heads without GQA) to remove "
     "per pruned layer, 0-100: int(p/100*units) removed, at least one unit kept; 0 removes "
     "none (a no-op), a p > 0 that removes none is \"No effective pruning\""},
    {"num_kv_heads_to_keep", PF_P_INT, 0, NULL, NULL, 0, 0,
     "units (key/value heads) to keep per pruned layer; excludes pruning_percentage"},
    {"head_indices", PF_P_ANY, 0, NULL, NULL, 0, 0,
     "explicit units to remove: a list [u...] for every pruned layer, or a map "
     "{\"<layer>\": [u...]} (the layers it names; every layer must keep the same count)"},
    {"layer_indices", PF_P_INTLIST, 0, NULL, NULL, 0, 0,
     "layers to prune (default: all); since one head count per model is required, a subset "
     "is refused unless nothing is removed"},
    {"calibration", PF_P_ANY, 0, NULL, NULL, 0, 0,
     "a calibrate result (recipes: its step id) with head_norms: data-driven scores, mean L2 "
     "norm of each head's output over real tokens x its o_proj block norm; default: static "
     "o_proj block norms"},
    PF_RANK_DTYPE_PARAM,
    PF_RECONSTRUCT_PARAMS("o_proj"),
};

/* The options from the validated params, without the calibration's norms;
 * *idx (the layer indices, malloc'd) is the caller's to free. */
static pf_status heads_opts(const pf_value *params, pf_heads_opts *out, int64_t **idx,
                            pf_err *err) {
  pf_heads_opts o = {0};
  *idx = NULL;
  o.have_percentage = pf_map_has(params, "pruning_percentage");
  o.pruning_percentage = pf_map_num(params, "pruning_percentage", 0);
  o.percentage_is_int = pf_map_is_int(params, "pruning_percentage");
  o.have_keep = pf_map_has(params, "num_kv_heads_to_keep");
  o.num_kv_heads_to_keep = pf_map_int(params, "num_kv_heads_to_keep", 0);
  const pf_value *hi = pf_map_get(params, "head_indices");
  o.head_indices = hi && hi->type != PF_V_NULL ? hi : NULL;
  pf_status st = pf_param_intlist(params, "layer_indices", idx, &o.n_layer_indices,
                                  &o.have_layer_indices, err);
  o.layer_indices = *idx;
  if (!st) st = pf_rank_dtype_param(params, &o.score_dtype, err);
  *out = o;
  return st;
}

static pf_status prune_heads_check(const pf_value *params, pf_err *err) {
  pf_heads_opts o = {0};
  int64_t *idx = NULL;
  pf_status st = heads_opts(params, &o, &idx, err);
  if (!st) st = pf_heads_opts_check(&o, err);
  if (!st) st = pf_reconstruct_check(params, pf_map_bool(params, "reconstruct", 0), err);
  free(idx);
  return st;
}

static pf_status prune_heads_run(const pf_op *op, const pf_value *params, pf_value **out,
                                 const pf_ctx *ctx, pf_err *err) {
  (void)op;
  const pf_model *m = pf_map_model(params, "model");
  pf_heads_opts o = {0};
  int64_t *idx = NULL;
  pf_status st = heads_opts(params, &o, &idx, err);
  double **norms = NULL;
  const pf_value *cv = pf_map_get(params, "calibration");
  if (!st && cv && cv->type != PF_V_NULL) {
    st = pf_head_norms_from_value(cv, m, ctx && ctx->dry_run, &norms, err);
    o.head_norms = (const double *const *)norms;
    o.n_head_norms = (size_t)m->n_layers;
  }
  pf_model *nm = NULL;
  pf_value *stats = NULL;
  const int rec = pf_map_bool(params, "reconstruct", 0);
  if (!st) st = pf_reconstruct_check(params, rec, err);
  if (!st) st = pf_prune_heads(m, &o, ctx, &nm, &stats, err);
  if (!st && rec) st = pf_reconstruct_step(m, params, PF_TAP_O_PROJ_INPUT, &nm, stats, ctx, err);
  pf_head_norms_free(norms, m->n_layers);
  free(idx);
  if (st) return st;
  char note[320];
  const int warn = pf_heads_transformers_note(&nm->config, note, sizeof note);
  if (warn) pf_ctx_log(ctx, "warning: prune_heads: %s", note);
  *out = pf_model_result(nm, stats);
  pf_model_release(nm);
  if (*out && warn && pf_map_set_str(*out, "warning", note) != PF_OK) {
    pf_value_release(*out);
    *out = NULL;
  }
  return *out ? PF_OK : pf_err_set(err, PF_ERR_NOMEM, "out of memory");
}

const pf_op pf_op_prune_heads = {
    .name = "prune_heads",
    .alias = "prune-heads",
    .summary = "attention-head pruning: whole key/value heads with their query heads (GQA "
               "groups), q/k/v rows and o_proj columns",
    .params = prune_heads_params,
    .n_params = sizeof prune_heads_params / sizeof prune_heads_params[0],
    .returns =
        "{model, original_parameters, pruned_parameters, reduction, percentage_reduction, "
        "num_attention_heads_before/after, num_key_value_heads_before/after, head_dim, "
        "kv_cache_bytes_per_token_before/after, layers: [{index, heads_before, heads_after, "
        "kv_heads_before, kv_heads_after, kept_kv_heads, kept_heads, scores}], [reconstruct: "
        "as prune_width's], [warning: why transformers would not load the saved checkpoint]}; in a "
        "dry run the model holds shapes only, kept_*/scores are "
        "null and reconstruct is {peak_memory_bytes, tokens}",
    .run = prune_heads_run,
    .check = prune_heads_check,
    .needs = PF_RECONSTRUCT_NEEDS,
};
