/* fairness_scores.c — op "fairness_scores": OptiPFair's
 * compute_fairness_pruning_scores (reference §8.7): per layer,
 * w * norm(bias) + (1 - w) * (1 - norm(PPM importance)); a high score marks a
 * neuron to prune (prune_width's fairness_scores inverts it). A dry run checks
 * the inputs and returns {} without reading weights. */
#include "fairness.h"
#include "op.h"

static const pf_param_spec fairness_scores_params[] = {
    {"model", PF_P_MODEL, 1, NULL, NULL, 0, 0, "the model whose static PPM importance is used"},
    {"bias_scores", PF_P_ANY, 1, NULL, NULL, 0, 0,
     "a neuron_bias result (recipes: its step id): {\"gate_proj_layer_N\": [I], "
     "\"up_proj_layer_N\": [I], ...}"},
    {"bias_weight", PF_P_NUM, 0, "0.8", NULL, 0, 0,
     "weight of the bias term in [0, 1]: 1 = bias only, 0 = (1 - importance) only"},
};

static pf_status fairness_scores_run(const pf_op *op, const pf_value *params, pf_value **out,
                                     const pf_ctx *ctx, pf_err *err) {
  const pf_value *bs = pf_map_get(params, "bias_scores");
  double w = pf_map_num(params, "bias_weight", 0.8);
  if (!(ctx && ctx->dry_run))
    return pf_fairness_compute(pf_map_model(params, "model"), bs, w, out, err);
  pf_status st = pf_fairness_check_inputs(bs, w, err); /* dry run: no weight is read */
  if (!st && !(*out = pf_value_map())) st = pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  return st;
}

const pf_op pf_op_fairness_scores = {
    .name = "fairness_scores",
    .alias = NULL,
    .summary = "fairness pruning scores from neuron bias and importance (OptiPFair "
               "compute_fairness_pruning_scores)",
    .params = fairness_scores_params,
    .n_params = sizeof fairness_scores_params / sizeof fairness_scores_params[0],
    .returns =
        "{\"<layer>\": [I numbers in [0, 1]], ...} for the layers with bias scores, in layer "
        "order; prune_width's fairness_scores takes it",
    .run = fairness_scores_run,
};
