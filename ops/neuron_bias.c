/* neuron_bias.c — op "neuron_bias" (placeholder: being implemented; returns PF_ERR_UNSUPPORTED). */
#include "op.h"

static const pf_param_spec neuron_bias_params[] = {
    {"model", PF_P_ANY, 0, NULL, NULL, 0, 0, "placeholder"},
};

static pf_status neuron_bias_run(const pf_op *op, const pf_value *params, pf_value **out,
                           const pf_ctx *ctx, pf_err *err) {
  return pf_err_set(err, PF_ERR_UNSUPPORTED, "neuron_bias: not implemented yet");
}

const pf_op pf_op_neuron_bias = {
    .name = "neuron_bias",
    .alias = NULL,
    .summary = "placeholder",
    .params = neuron_bias_params,
    .n_params = 1,
    .returns = "",
    .run = neuron_bias_run,
};
