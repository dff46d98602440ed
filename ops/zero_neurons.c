/* zero_neurons.c — op "zero_neurons" (placeholder: being implemented; returns PF_ERR_UNSUPPORTED). */
#include "op.h"

static const pf_param_spec zero_neurons_params[] = {
    {"model", PF_P_ANY, 0, NULL, NULL, 0, 0, "placeholder"},
};

static pf_status zero_neurons_run(const pf_op *op, const pf_value *params, pf_value **out,
                           const pf_ctx *ctx, pf_err *err) {
  return pf_err_set(err, PF_ERR_UNSUPPORTED, "zero_neurons: not implemented yet");
}

const pf_op pf_op_zero_neurons = {
    .name = "zero_neurons",
    .alias = NULL,
    .summary = "placeholder",
    .params = zero_neurons_params,
    .n_params = 1,
    .returns = "",
    .run = zero_neurons_run,
};
