/* calibration.h — one pass of calibration text through a model, collecting
 * (reference §2.2 and §7):
 *  - per layer, per MLP neuron i, the accumulated down_proj input norm
 *      X_i = sum over batches of sqrt( sum over (b, s) of x[b, s, i]^2 )
 *    (OptiPFair's "sum of per-batch L2 norms"; pfrun leaves padded positions out);
 *  - per layer, the layer importance
 *      score = mean over batches of ( 1 - mean over samples of cos(x_b, y_b) )
 *    where x_b / y_b are sample b's layer input / output flattened over its real
 *    (unpadded) positions, cos uses max(||v||, 1e-8) per norm, non-finite
 *    samples are dropped, a batch with none scores 0.0, and non-finite batch
 *    scores are skipped in the final mean (0.0 when none are left);
 *  - with the norms, per layer and query head h the head output norm
 *      a_h = mean over real (unpadded) tokens t of || o_h[t] ||_2
 *    where o_h[t] is head h's attention output before o_proj (the o_proj_input
 *    tap, columns [h*hd, (h+1)*hd)): the data-driven head importance of
 *    prune_heads (pruning_heads.h), sums in double.
 * Both are taps on the one forward pass (runtime/forward.h). */
#ifndef PF_CALIBRATION_H
#define PF_CALIBRATION_H

#include "dataset.h"
#include "value.h"

typedef struct pf_calibration {
  int64_t n_layers;
  int64_t *widths;     /* [n_layers] intermediate size of each layer */
  float **norms;       /* [n_layers] -> [widths[l]] X_i, or NULL when not collected */
  double *importance;  /* [n_layers], or NULL when not collected */
  int64_t n_heads;     /* num_attention_heads of the model */
  double **head_norms; /* [n_layers] -> [n_heads] a_h (sums of per-token norms during the
                          run), or NULL when not collected */
  double head_tokens;  /* real tokens seen (the divisor of the sums) */
  int64_t batches;
} pf_calibration;

/* Run every batch of ds through m. layers: NULL = all, else [n_layers] flags of
 * the layers whose norms are wanted (importance is always per layer). */
pf_status pf_calibration_run(const pf_model *m, const pf_dataset *ds, const uint8_t *layers,
                             int want_norms, int want_importance, pf_calibration *out,
                             const pf_ctx *ctx, pf_err *err);
void pf_calibration_free(pf_calibration *c); /* members; NULL ok */

/* {"norms": {"<layer>": [X...]}, "importance": {"<layer>": score},
 *  "head_norms": {"<layer>": [a_h...]}} (present parts). */
pf_value *pf_calibration_to_value(const pf_calibration *c);
/* Norms back from a calibrate result (or its "norms" map) for a model of
 * n_layers layers; out->norms[l] is NULL for layers without an entry. Errors
 * name the layer and the expected width. With dry_run, a planned result (below)
 * is accepted too: its layers and widths are checked the same way and get
 * zero norms, so a dry run refuses what the real run will refuse (a
 * calibration of another model, of a model before depth pruning, ...); a real
 * run refuses a planned result. */
/* PF_OK unless v (a calibrate result, real or planned) says it was computed on a model
 * with another layer count than n_layers (then PF_ERR_INVALID, "<what>: ...", naming
 * both; what: the parameter it came in). Results without the count (older caches,
 * hand-made maps) pass. */
pf_status pf_calibration_check_layers(const pf_value *v, int64_t n_layers, const char *what,
                                      pf_err *err);
/* pf_calibration_check_layers, then (unless dry_run) v's model_fingerprint against m's
 * (pf_model_fingerprint): a calibrate result of another model, even of the same shape
 * (another checkpoint or seed in a sweep), is refused, naming both. Results without a
 * fingerprint (hand-made maps, older caches) pass. */
pf_status pf_calibration_check_model(const pf_value *v, const pf_model *m, int dry_run,
                                     pf_err *err);
pf_status pf_calibration_from_value(const pf_value *v, const pf_model *m, int dry_run,
                                    pf_calibration *out, pf_err *err);

/* What a dry-run calibrate / importance step returns instead of numbers: the
 * shape the real result will have, for the steps that use it to be checked
 * against their model:
 *   {"planned": {"num_hidden_layers": L, "norm_widths": {"<layer>": width}}}
 * (norm_widths when want_norms: the layers flagged in `layers`, all if NULL).
 * NULL when out of memory. */
pf_value *pf_calibration_plan_value(const pf_model *m, const uint8_t *layers, int want_norms);

#endif
