/* bias_activations.c — op "bias_activations" (placeholder: being implemented; returns PF_ERR_UNSUPPORTED). */
#include "op.h"

static const pf_param_spec bias_activations_params[] = {
    {"model", PF_P_ANY, 0, NULL, NULL, 0, 0, "placeholder"},
};

static pf_status bias_activations_run(const pf_op *op, const pf_value *params, pf_value **out,
                           const pf_ctx *ctx, pf_err *err) {
  return pf_err_set(err, PF_ERR_UNSUPPORTED, "bias_activations: not implemented yet");
}

const pf_op pf_op_bias_activations = {
    .name = "bias_activations",
    .alias = NULL,
    .summary = "placeholder",
    .params = bias_activations_params,
    .n_params = 1,
    .returns = "",
    .run = bias_activations_run,
};
