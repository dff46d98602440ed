/* score.c — op "score": neuron importance per layer: static (§1; a plain MLP
 * without gate_proj gets arch-gpt2-neox.md §9.2's analogues) or data-driven. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "calibration.h"
#include "ophelp.h"
#include "pruning.h"

static const pf_param_spec score_params[] = {
    {"model", PF_P_MODEL, 1, NULL, NULL, 0, 0, "the model to score"},
    {"method", PF_P_STR, 0, "MAW", "MAW|PPM|VOW|PON|L2", 0, 0,
     "MAW/PPM: (max + |min|) of the gate row + the same of the up row; VOW: unbiased variance of "
     "the gate row + of the up row; PON: L1 norm of the gate row x L1 norm of the up row; L2: L2 "
     "norm of the gate row + of the up row (float32; down_proj is not used). A plain MLP (no "
     "gate_proj: gpt2, gpt_neox), with r = its fc_in row and c = its fc_out column: MAW/PPM "
     "max + |min| of r; VOW var(r); PON |r|_1 x |c|_1; L2 |r|_2 + |c|_2"},
    {"layer_indices", PF_P_INTLIST, 0, NULL, NULL, 0, 0,
     "layers to score (default: all), e.g. [0, 2] or \"0,2\""},
    {"calibration", PF_P_ANY, 0, NULL, NULL, 0, 0,
     "a calibrate result: hybrid data-driven MAW scores instead of static ones (method MAW)"},
};

/* One layer's scores as a list of numbers. */
static pf_status layer_list(const pf_layer *l, pf_score_method m, const float *X, pf_value **out,
                            pf_err *err) {
  int64_t I = pf_layer_width(l);
  float *s = malloc(sizeof(float) * (size_t)(I ? I : 1));
  pf_value *list = pf_value_list();
  pf_status st = s && list ? PF_OK : pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  if (!st)
    st = X ? pf_layer_hybrid_scores(l, X, PF_DTYPE_F32, s, err)
           : pf_layer_scores(l, m, PF_DTYPE_F32, s, err);
  for (int64_t i = 0; !st && i < I; i++)
    if (pf_list_push(list, pf_value_num((double)s[i])) != PF_OK)
      st = pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  free(s);
  if (st) {
    pf_value_release(list);
    return st;
  }
  *out = list;
  return PF_OK;
}

/* {"0": [...], ...}; in a dry run every layer maps to null (no weight is read). */
static pf_status score_layers(const pf_model *m, pf_score_method method, const pf_calibration *cal,
                              const int64_t *idx, size_t n, const pf_ctx *ctx, pf_value *scores,
                              pf_err *err) {
  for (size_t i = 0; i < n; i++) {
    char key[32];
    snprintf(key, sizeof key, "%lld", (long long)idx[i]);
    pf_value *v = NULL;
    pf_status st = pf_ctx_check_interrupt(ctx, err);
    if (!st && ctx && ctx->dry_run)
      v = pf_value_null();
    else if (!st && cal && !cal->norms[idx[i]])
      st = pf_err_set(err, PF_ERR_INVALID, "No activation norms found for layer %lld",
                      (long long)idx[i]);
    else if (!st)
      st = layer_list(&m->layers[idx[i]], method, cal ? cal->norms[idx[i]] : NULL, &v, err);
    if (st) {
      pf_err_prefix(err, "model.layers.%lld.mlp", (long long)idx[i]);
      return st;
    }
    if (pf_map_set(scores, key, v) != PF_OK) return pf_err_set(err, PF_ERR_NOMEM, "out of memory");
    pf_ctx_progress(ctx, "score", i + 1, n);
  }
  return PF_OK;
}

static pf_status score_run(const pf_op *op, const pf_value *params, pf_value **out,
                           const pf_ctx *ctx, pf_err *err) {
  const pf_model *m = pf_map_model(params, "model");
  const char *mname = pf_map_str(params, "method", "MAW");
  pf_score_method method;
  int64_t *idx = NULL;
  size_t n = 0;
  int have = 0;
  pf_value *r = NULL, *scores = NULL;
  pf_status st = pf_score_method_parse(mname, &method, err);
  if (!st) st = pf_param_intlist(params, "layer_indices", &idx, &n, &have, err);
  if (!st && have) st = pf_check_layer_indices(idx, n, m->n_layers, err);
  if (!st && !have) {
    n = (size_t)m->n_layers;
    if (!(idx = malloc(sizeof *idx * (n ? n : 1))))
      st = pf_err_set(err, PF_ERR_NOMEM, "out of memory");
    for (size_t i = 0; !st && i < n; i++)
      idx[i] = (int64_t)i;
  }
  if (!st && (!(r = pf_value_map()) || !(scores = pf_value_map())))
    st = pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  pf_calibration cal = {0};
  const pf_value *cv = pf_map_get(params, "calibration");
  int hybrid = cv && cv->type != PF_V_NULL;
  if (!st && hybrid && strcmp(mname, "MAW") != 0)
    st = pf_err_set(err, PF_ERR_INVALID,
                    "Data-driven pruning with dataloader is only supported for PPM method "
                    "(parameter 'MAW'). Got neuron_selection_method='%s'. Please use "
                    "neuron_selection_method='MAW' or remove the dataloader parameter.",
                    mname);
  if (!st && hybrid) st = pf_calibration_from_value(cv, m, ctx && ctx->dry_run, &cal, err);
  if (!st) st = score_layers(m, method, hybrid ? &cal : NULL, idx, n, ctx, scores, err);
  pf_calibration_free(&cal);
  if (!st && pf_map_set_str(r, "method", mname))
    st = pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  if (!st) {
    st = pf_map_set(r, "scores", scores); /* steals scores, also on failure */
    scores = NULL;
    if (st) pf_err_set(err, st, "out of memory");
  }
  free(idx);
  pf_value_release(scores);
  if (st) {
    pf_value_release(r);
    return st;
  }
  *out = r;
  return PF_OK;
}

const pf_op pf_op_score = {
    .name = "score",
    .alias = NULL,
    .summary = "neuron importance per layer (MAW/PPM, VOW, PON, L2; GLU or plain MLPs)",
    .params = score_params,
    .n_params = sizeof score_params / sizeof score_params[0],
    .returns = "{method, scores: {\"<layer>\": [one float32 score per intermediate neuron]}}; "
               "higher = kept first. In a dry run every layer's scores are null",
    .run = score_run,
};
