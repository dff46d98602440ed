/* metrics.c — op "metrics" (placeholder: being implemented; returns PF_ERR_UNSUPPORTED). */
#include "op.h"

static const pf_param_spec metrics_params[] = {
    {"model", PF_P_ANY, 0, NULL, NULL, 0, 0, "placeholder"},
};

static pf_status metrics_run(const pf_op *op, const pf_value *params, pf_value **out,
                           const pf_ctx *ctx, pf_err *err) {
  return pf_err_set(err, PF_ERR_UNSUPPORTED, "metrics: not implemented yet");
}

const pf_op pf_op_metrics = {
    .name = "metrics",
    .alias = NULL,
    .summary = "placeholder",
    .params = metrics_params,
    .n_params = 1,
    .returns = "",
    .run = metrics_run,
};
