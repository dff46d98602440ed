/* importance.c — op "importance": layer importance as OptiPFair's
 * analyze_layer_importance (reference §7): per layer, 1 - cos(layer input, layer
 * output) per sample over the whole (unpadded) sequence, mean per batch, mean
 * over batches. pfrun leaves padded positions out (identical without padding).
 * The result feeds prune_depth's `importance` parameter. */
#include <stdlib.h>

#include "calibration.h"
#include "ophelp.h"
#include "opdata.h"

static const pf_param_spec importance_params[] = {
    {"model", PF_P_MODEL, 1, NULL, NULL, 0, 0, "the model whose layers are scored"},
    PF_DATA_PARAMS(1, "0", "8"),
};

static pf_status importance_run(const pf_op *op, const pf_value *params, pf_value **out,
                                const pf_ctx *ctx, pf_err *err) {
  const pf_model *m = pf_map_model(params, "model");
  pf_tokenizer *tok = NULL;
  pf_dataset *ds = NULL;
  pf_value *r = NULL;
  pf_calibration c = {0};
  pf_status st = pf_params_dataset(m, params, &tok, &ds, err);
  if (!st && !(ctx && ctx->dry_run)) st = pf_calibration_run(m, ds, NULL, 0, 1, &c, ctx, err);
  /* a dry run: the shape of the scores, for prune_depth to check its model */
  if (!st &&
      !(r = c.importance ? pf_calibration_to_value(&c) : pf_calibration_plan_value(m, NULL, 0)))
    st = pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  if (!st) {
    pf_value *sv = pf_data_stats_value(ds);
    st = sv ? pf_map_set(r, "data", sv) : pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  }
  pf_calibration_free(&c);
  pf_dataset_free(ds);
  pf_tokenizer_free(tok);
  if (st) {
    pf_value_release(r);
    return st;
  }
  *out = r;
  return PF_OK;
}

const pf_op pf_op_importance = {
    .name = "importance",
    .alias = NULL,
    .summary = "layer importance: 1 - cosine(layer input, layer output) on text",
    .params = importance_params,
    .n_params = sizeof importance_params / sizeof importance_params[0],
    .returns = "{importance: {\"<layer>\": score}, data: {samples, ..., tokens}}; pass it as "
               "`importance` to prune_depth to remove the least important layers",
    .run = importance_run,
};
