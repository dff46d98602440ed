/* prune_width.c — op "prune_width" (alias "prune-width"): MLP neuron pruning,
 * static, data-driven (calibration) or fairness-aware (fairness_scores, §2.6), of
 * GLU MLPs (pruning_type MLP_GLU, OptiPFair's) or plain MLPs (pruning_type MLP,
 * pfrun's: gpt2, gpt_neox; reference arch-gpt2-neox.md §9).
 *
 * Option semantics follow the OptiPFair command line (§13.1), not the Python
 * defaults: pruning_percentage and expansion_rate both given is the library's
 * "mutually exclusive" error; neither given means pruning_percentage = 10.
 * (In Python, prune_model(expansion_rate=...) without pruning_percentage=None
 * raises, because pruning_percentage defaults to 10.) Everything else is
 * prune_model_mlp_glu: validation order and messages, k per layer, divisor
 * floor rounding, "No effective pruning". The method default is MAW, as in
 * prune_model and the CLI.
 */
#include <stdlib.h>
#include <string.h>

#include "calibration.h"
#include "opdata.h"
#include "ophelp.h"
#include "pruning.h"
#include "reconstruct.h"

static const pf_param_spec prune_width_params[] = {
    {"model", PF_P_MODEL, 1, NULL, NULL, 0, 0, "the model to prune (it is not changed)"},
    {"pruning_type", PF_P_STR, 0, "MLP_GLU", "MLP_GLU|MLP", 0, 0,
     "MLP_GLU: GLU neuron pairs (gate_proj/up_proj rows + down_proj column; LLaMA, Qwen, Gemma, "
     "Phi-3, ...). MLP: neurons of a plain MLP without gate (fc_in row + its bias + fc_out "
     "column; gpt2, gpt_neox), the fc_out bias kept. Each refuses the other kind of model"},
    {"method", PF_P_STR, 0, "MAW", "MAW|PPM|VOW|PON|L2", 0, 0,
     "neuron importance, the highest scores kept. MLP_GLU: MAW/PPM (max + |min| of gate and up "
     "rows), VOW (variance), PON (product of L1 norms), L2 (sum of L2 norms). MLP, for input row "
     "r (fc_in) and output column c (fc_out): MAW/PPM max + |min| of r, VOW var(r), PON "
     "|r|_1 * |c|_1, L2 |r|_2 + |c|_2"},
    {"pruning_percentage", PF_P_NUM, 0, NULL, NULL, 0, 0,
     "percentage of each pruned layer's neurons to remove, 0-100: k = I - min(int(p/100*I), I-1) "
     "(10 when neither this nor expansion_rate is given); 0 keeps every neuron (a no-op, as in "
     "OptiPFair), a p > 0 that removes none is \"No effective pruning\""},
    {"expansion_rate", PF_P_NUM, 0, NULL, NULL, 0, 0,
     "target intermediate size as a percentage of hidden_size (e.g. 140), converted to a "
     "percentage from layer 0; excludes pruning_percentage"},
    {"expansion_divisor", PF_P_INT, 0, NULL, "32|64|128|256", 0, 0,
     "round each new width down to a multiple of this (at least 1)"},
    {"layer_indices", PF_P_INTLIST, 0, NULL, NULL, 0, 0,
     "layers to prune (default: all); the others keep their width"},
    {"calibration", PF_P_ANY, 0, NULL, NULL, 0, 0,
     "a calibrate result (recipes: its step id): data-driven hybrid MAW scores, (normalised "
     "peak-to-peak of gate, up and down; MLP: of fc_in rows and fc_out columns) x accumulated "
     "down_proj (fc_out) input norms; method MAW only"},
    {"fairness_scores", PF_P_ANY, 0, NULL, NULL, 0, 0,
     "a fairness_scores result (recipes: its step id), a map {\"<layer>\": [I numbers in [0, 1]]}: "
     "for the layers it covers, importance = 1 - score, so the neurons with the highest fairness "
     "score are removed; takes precedence over calibration and method, other layers fall back "
     "(MLP_GLU only)"},
    PF_RANK_DTYPE_PARAM,
    PF_RECONSTRUCT_PARAMS("down_proj"),
};

/* The options from the validated params, without the calibration's norms;
 * *idx (the layer indices, malloc'd) is the caller's to free. */
static pf_status width_opts(const pf_value *params, pf_width_opts *o_, int64_t **idx, pf_err *err) {
  pf_width_opts o = {.method = pf_map_str(params, "method", "MAW")};
  *idx = NULL;
  pf_status st =
      pf_width_type_parse(pf_map_str(params, "pruning_type", "MLP_GLU"), &o.pruning_type, err);
  if (st) return st;
  o.have_percentage = pf_map_has(params, "pruning_percentage");
  o.have_expansion_rate = pf_map_has(params, "expansion_rate");
  o.pruning_percentage = o.have_percentage ? pf_map_num(params, "pruning_percentage", 10) : 10;
  o.percentage_is_int = !o.have_percentage || pf_map_is_int(params, "pruning_percentage");
  if (!o.have_percentage && !o.have_expansion_rate) o.have_percentage = 1; /* CLI rule 2 */
  o.expansion_rate = pf_map_num(params, "expansion_rate", 0);
  o.expansion_rate_is_int = pf_map_is_int(params, "expansion_rate");
  o.have_divisor = pf_map_has(params, "expansion_divisor");
  o.expansion_divisor = pf_map_int(params, "expansion_divisor", 0);
  st = pf_param_intlist(params, "layer_indices", idx, &o.n_layer_indices, &o.have_layer_indices,
                        err);
  o.layer_indices = *idx;
  if (!st) st = pf_rank_dtype_param(params, &o.score_dtype, err);
  const pf_value *fs = pf_map_get(params, "fairness_scores");
  o.fairness_scores = fs && fs->type != PF_V_NULL ? fs : NULL;
  *o_ = o;
  return st;
}

static pf_status prune_width_check(const pf_value *params, pf_err *err) {
  pf_width_opts o = {0};
  int64_t *idx = NULL;
  pf_status st = width_opts(params, &o, &idx, err);
  const pf_value *cv = pf_map_get(params, "calibration");
  if (!st) st = pf_width_opts_check(&o, cv && cv->type != PF_V_NULL, err);
  if (!st) st = pf_reconstruct_check(params, pf_map_bool(params, "reconstruct", 0), err);
  free(idx);
  return st;
}

static pf_status prune_width_run(const pf_op *op, const pf_value *params, pf_value **out,
                                 const pf_ctx *ctx, pf_err *err) {
  const pf_model *m = pf_map_model(params, "model");
  pf_width_opts o = {0};
  int64_t *idx = NULL;
  pf_status st = width_opts(params, &o, &idx, err);
  pf_model *nm = NULL;
  pf_value *stats = NULL;
  pf_calibration cal = {0};
  const pf_value *cv = pf_map_get(params, "calibration");
  if (!st && cv && cv->type != PF_V_NULL) {
    st = pf_calibration_from_value(cv, m, ctx && ctx->dry_run, &cal, err);
    o.activation_norms = (const float *const *)cal.norms;
    o.n_activation_norms = (size_t)cal.n_layers;
  }
  int rec = pf_map_bool(params, "reconstruct", 0);
  if (!st) st = pf_reconstruct_check(params, rec, err);
  if (!st) st = pf_prune_width(m, &o, ctx, &nm, &stats, err);
  if (!st && rec) st = pf_reconstruct_step(m, params, PF_TAP_DOWN_PROJ_INPUT, &nm, stats, ctx, err);
  pf_calibration_free(&cal);
  free(idx);
  if (st) {
    pf_model_release(nm);
    pf_value_release(stats);
    return st;
  }
  *out = pf_model_result(nm, stats);
  pf_model_release(nm);
  return *out ? PF_OK : pf_err_set(err, PF_ERR_NOMEM, "out of memory");
}

const pf_op pf_op_prune_width = {
    .name = "prune_width",
    .own_checks = "method|expansion_divisor",
    .alias = "prune-width",
    .summary = "MLP neuron pruning: GLU neuron pairs (OptiPFair MLP_GLU) or plain MLPs (MLP)",
    .params = prune_width_params,
    .n_params = sizeof prune_width_params / sizeof prune_width_params[0],
    .returns = "{model, original_parameters, pruned_parameters, reduction, percentage_reduction, "
               "expansion_rate, [pruned_layers, total_layers when widths differ], layers: [{index, "
               "intermediate_size_before, intermediate_size_after, kept_indices}], [reconstruct: "
               "{damping, layers, cached_layers, tokens, collect_seconds, solve_seconds, "
               "covariance_file_bytes, data}]}; in a dry run the model holds shapes only, "
               "kept_indices are null and reconstruct is {peak_memory_bytes, tokens} (the "
               "largest pruned layer's covariance and solve plus the pass's hidden states; "
               "tokens: the batches' token positions, padding included)",
    .run = prune_width_run,
    .check = prune_width_check,
    .needs = PF_RECONSTRUCT_NEEDS,
};
