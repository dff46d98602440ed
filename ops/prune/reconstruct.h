/* reconstruct.h — training-free recovery of a pruned projection (issue 12 B).
 *
 * When the input channels of a linear layer y = W a (W [out, in]) are cut to a
 * kept set K, the least-squares replacement of W on calibration activations a
 * of the UNPRUNED model is
 *
 *   W' = W · C[:, K] · (C[K, K] + λ · mean(diag C[K, K]) · I)⁻¹      W' [out, |K|]
 *
 * with C = Σ a·aᵀ over every real (unpadded) calibration token, accumulated in
 * float64. Width pruning applies it to down_proj (a = what down_proj reads, the
 * down_proj_input tap); head pruning will apply it to o_proj (a = the heads'
 * output, the o_proj_input tap, K = kept heads × head_dim).
 *
 * The solve is BLAS-3 + LAPACK (BLIS dgemm, LAPACKE dpotrf/dpotrs): the damped
 * C[K, K] is factorised with Cholesky; a matrix that is not positive definite
 * (an input channel that never fires, λ = 0 with rank-deficient data) is an
 * error naming the object, never a silent pseudo-inverse.
 */
#ifndef PF_RECONSTRUCT_H
#define PF_RECONSTRUCT_H

#include "dataset.h"
#include "forward.h"
#include "tensor.h"
#include "value.h"

#define PF_RECONSTRUCT_DAMPING 1e-2

/* W' for W [out, in] (F32/BF16/F16, read through pf_tensor_row_f32), C [in, in]
 * float64 row-major (symmetric: both triangles filled), kept[k] ascending
 * indices < in, λ = lambda >= 0. *out is a new tensor [out, k] in W's dtype
 * (rounded once from the float64 result); the caller releases it. `what` names
 * the object in messages ("layer 3 down_proj"). Errors: PF_ERR_INVALID for
 * shapes, indices, a non-finite C, and "<what>: the damped covariance of the
 * kept channels is not positive definite (Cholesky failed at kept channel j =
 * input channel i): ..." ; PF_ERR_NOMEM. Out-params are NULL on failure. */
pf_status pf_reconstruct_weight(const pf_tensor *W, const double *C, const int64_t *kept, int64_t k,
                                double lambda, const char *what, pf_tensor **out, pf_err *err);

/* The same on float64 arrays: W [out, in] row-major in, Wp [out, k] out
 * (caller-allocated). The core of pf_reconstruct_weight, exposed for tests. */
pf_status pf_reconstruct_f64(const double *W, int64_t n_out, int64_t n_in, const double *C,
                             const int64_t *kept, int64_t k, double lambda, const char *what,
                             double *Wp, pf_err *err);

/* ---- collecting C ---- */

/* Called once per wanted layer, in ascending layer order, when its C is final
 * (summed over every batch and, under MPI, over every rank): C [width, width]
 * float64, both triangles filled, valid only during the call; tokens = real
 * tokens summed in. A non-OK return stops the collection. */
typedef pf_status (*pf_cov_fn)(void *user_data, int64_t layer, const double *C, int64_t width,
                               int64_t tokens, pf_err *err);

/* Run the batches through m and collect, per layer flagged in layers ([n_layers]
 * flags, NULL = all), C = Σ a·aᵀ of the activations at `point`
 * (PF_TAP_DOWN_PROJ_INPUT or PF_TAP_O_PROJ_INPUT), padding excluded. The pass is
 * always layer-major (ctx's memory budget and scratch-file rule still apply to
 * the hidden states), so layer l's C is handed to fn and freed before layer l+1
 * runs: one width × width float64 matrix is alive at a time, never one per layer.
 * MPI: each rank sums its share of the batches; C is summed over ranks in rank
 * order before fn (every rank calls fn). Errors: the pass's, fn's, NOMEM. */
pf_status pf_cov_collect(const pf_model *m, const pf_batch *batches, int64_t n_batches,
                         pf_tap_point point, const uint8_t *layers, pf_cov_fn fn, void *user_data,
                         const pf_ctx *ctx, pf_err *err);

/* ---- the cache (one file per layer) ----
 *
 * <dir>/cov-<key>-<layer>.bin: a 32-byte header ("PFCOV1\0\0", width, tokens,
 * layer as int64 little-endian) then the lower triangle of C row by row
 * (width·(width+1)/2 float64): 8·I(I+1)/2 bytes, e.g. 119 KiB for stories260K's
 * I = 172, 256 MiB for I = 8192 (synthetic:llama-1b: 4 GiB for 16 layers).
 * key = SHA-256 of the model fingerprint, the dataset fingerprint, the tap
 * point and the matmul precision (see calibrate.c's cache); the layer is in
 * the name, so a run that prunes other layers reuses what it finds. */
pf_status pf_cov_cache_key(const pf_model *m, const pf_dataset *ds, pf_tap_point point,
                           char key[65], pf_err *err);
/* malloc'd path of layer l's file. NULL when out of memory. */
char *pf_cov_cache_path(const char *dir, const char *key, int64_t layer);
/* Read a layer's C into C [width, width] (full, caller-allocated). Returns 1 on
 * a hit, 0 when absent or unusable (wrong width or size: then it is recomputed). */
int pf_cov_cache_read(const char *path, int64_t width, double *C, int64_t *tokens);
/* Write through a temporary file and rename. Errors PF_ERR_IO naming the path. */
pf_status pf_cov_cache_write(const char *dir, const char *path, int64_t layer, const double *C,
                             int64_t width, int64_t tokens, pf_err *err);

/* ---- width pruning ---- */

/* prune_width's recovery: `pruned` is pf_prune_width's result for `base` and
 * `stats` its statistics (their "layers" kept_indices say which layers and
 * neurons). Per pruned layer l, C of base's down_proj input on ds (from the
 * cache folder `cache` when it holds it; may be NULL) and
 * down_proj' = pf_reconstruct_weight(base down_proj, C, kept, damping). *out is
 * a new model (pf_model_derive of pruned, the down_proj of pruned layers
 * replaced) whose `unrecovered` is pruned (retained). *info: {damping, layers,
 * cached_layers, tokens, collect_seconds, solve_seconds, covariance_file_bytes}.
 * Errors prefixed "reconstruct: "; a singular system names its layer. */
pf_status pf_width_reconstruct(const pf_model *base, const pf_model *pruned, const pf_value *stats,
                               const pf_dataset *ds, double damping, const char *cache,
                               const pf_ctx *ctx, pf_model **out, pf_value **info, pf_err *err);
/* The same for prune_heads: `stats` is pf_prune_heads' statistics; per layer with
 * removed heads, C of base's o_proj input (the o_proj_input tap: all heads'
 * outputs, n_heads·head_dim channels) and o_proj' = pf_reconstruct_weight(base
 * o_proj, C, kept heads × head_dim channels, damping). The cache key names the
 * tap, so down_proj and o_proj covariances never mix. */
pf_status pf_heads_reconstruct(const pf_model *base, const pf_model *pruned, const pf_value *stats,
                               const pf_dataset *ds, double damping, const char *cache,
                               const pf_ctx *ctx, pf_model **out, pf_value **info, pf_err *err);

/* ---- the ops' `reconstruct` parameters ---- */

/* The param-spec entries of `reconstruct` for an op whose pruned layers' PROJ
 * ("down_proj", "o_proj") is refitted (put inside the op's param array, after
 * opdata.h's PF_DATA_PARAMS is available). */
/* pf_op.needs of such an op: the options of reconstruct and of its calibration text do
 * nothing without them. */
#define PF_RECONSTRUCT_NEEDS                                                                       \
  "reconstruct_damping:reconstruct text_field:data samples:data max_length:data "                  \
  "min_length:data batch_size:data pack:data"
#define PF_RECONSTRUCT_PARAMS(PROJ)                                                              \
  {"reconstruct", PF_P_BOOL, 0, "false", NULL, 0, 0,                                             \
   "training-free recovery: replace each pruned layer's " PROJ " by the least-squares fit "     \
   "W C[:,K] (C[K,K] + damping mean(diag C[K,K]) I)^-1, C = sum of a a^T over the `data` "      \
   "tokens' " PROJ " inputs a of the unpruned model (float64, padding excluded); the result's " \
   "model keeps its unrecovered variant, so evaluate reports perplexity/KL before and after"},  \
      {"reconstruct_damping", PF_P_NUM, 0, "0.01", NULL, 0, 1e6,                                 \
       "reconstruct: the damping lambda, relative to the mean diagonal of C[K,K]"},              \
      PF_DATA_PARAMS(0, "0", "8"),                                                               \
  {                                                                                              \
    "cache", PF_P_STR, 0, NULL, NULL, 0, 0,                                                      \
        "reconstruct: folder for cached covariances C, one file per layer (8 n(n+1)/2 bytes, "   \
        "n = the " PROJ " input width), keyed by model, data and options (created if missing)"   \
  }

/* reconstruct: true needs `data`, and `data` / `cache` are only read by it. */
pf_status pf_reconstruct_check(const pf_value *params, int rec, pf_err *err);
/* Replace *nm (the pruned model made from m) by its recovered variant: the
 * dataset of the op's data params, the damping, the cache; the figures go to
 * stats["reconstruct"]. point: PF_TAP_DOWN_PROJ_INPUT (prune_width's stats) or
 * PF_TAP_O_PROJ_INPUT (prune_heads' stats). A dry run checks the data only. */
pf_status pf_reconstruct_step(const pf_model *m, const pf_value *params, pf_tap_point point,
                              pf_model **nm, pf_value *stats, const pf_ctx *ctx, pf_err *err);

#endif
