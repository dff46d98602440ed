/* plot.c — op "plot" (placeholder: being implemented; returns PF_ERR_UNSUPPORTED). */
#include "op.h"

static const pf_param_spec plot_params[] = {
    {"model", PF_P_ANY, 0, NULL, NULL, 0, 0, "placeholder"},
};

static pf_status plot_run(const pf_op *op, const pf_value *params, pf_value **out,
                           const pf_ctx *ctx, pf_err *err) {
  return pf_err_set(err, PF_ERR_UNSUPPORTED, "plot: not implemented yet");
}

const pf_op pf_op_plot = {
    .name = "plot",
    .alias = NULL,
    .summary = "placeholder",
    .params = plot_params,
    .n_params = 1,
    .returns = "",
    .run = plot_run,
};
