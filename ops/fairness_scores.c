/* fairness_scores.c — op "fairness_scores" (placeholder: being implemented; returns PF_ERR_UNSUPPORTED). */
#include "op.h"

static const pf_param_spec fairness_scores_params[] = {
    {"model", PF_P_ANY, 0, NULL, NULL, 0, 0, "placeholder"},
};

static pf_status fairness_scores_run(const pf_op *op, const pf_value *params, pf_value **out,
                           const pf_ctx *ctx, pf_err *err) {
  return pf_err_set(err, PF_ERR_UNSUPPORTED, "fairness_scores: not implemented yet");
}

const pf_op pf_op_fairness_scores = {
    .name = "fairness_scores",
    .alias = NULL,
    .summary = "placeholder",
    .params = fairness_scores_params,
    .n_params = 1,
    .returns = "",
    .run = fairness_scores_run,
};
