/* pruning.h — the OptiPFair pruning math as plain functions (no op layer).
 *
 * Width (GLU MLP neuron pairs) and depth (whole layers) pruning with the same
 * numbers as OptiPFair 0.4.1 (see reference/optipfair-behaviour.md §1, §3–§6),
 * plus pfrun's width pruning of plain (non-GLU) MLPs, pruning type "MLP" (gpt2,
 * gpt_neox: reference/arch-gpt2-neox.md §9), which OptiPFair does not have:
 * static neuron scores, the number of neurons kept, expansion-rate and divisor
 * arithmetic, validation order and messages, depth selection and statistics.
 * pfrun's documented differences: deterministic ties (higher score first, then
 * lower index), per-layer intermediate sizes in the config (intermediate_size =
 * the largest), and two extras in the statistics ("layers" for width pruning,
 * "removed_layers" for depth pruning).
 *
 * Every function that can fail returns pf_status and fills err (which may be
 * NULL). Error texts quoted from OptiPFair are reproduced word for word.
 */
#ifndef PF_PRUNING_H
#define PF_PRUNING_H

#include "model.h"
#include "value.h"

/* ---- neuron importance (§1) ---- */

/* OptiPFair's method names, in IMPORTANCE_FUNCTIONS order. MAW and PPM are the
 * same function (peak-to-peak magnitude). */
typedef enum pf_score_method {
  PF_METHOD_PPM = 0,
  PF_METHOD_MAW,
  PF_METHOD_VOW,
  PF_METHOD_PON,
  PF_METHOD_L2
} pf_score_method;

/* Exact, case-sensitive name -> method. Unknown: PF_ERR_INVALID with
 * "Invalid neuron selection method: <m>. Choose from ['PPM', 'MAW', 'VOW', 'PON', 'L2']." */
pf_status pf_score_method_parse(const char *name, pf_score_method *out, pf_err *err);
const char *pf_score_method_name(pf_score_method m);

/* Score of one neuron from its gate row g[H] and up row u[H] (float32 copies):
 *   MAW/PPM: (max g + |min g|) + (max u + |min u|)
 *   VOW:     var(g) + var(u), unbiased (divides by H-1; NaN when H == 1)
 *   PON:     (sum |g|) * (sum |u|)
 *   L2:      ||g||_2 + ||u||_2
 * Each per-row reduction is accumulated in double and rounded to float32 once,
 * then combined in float32 — the same rounding points as the float32 tensors
 * torch produces, so results match torch to the last bit except for rare
 * half-ulp cases in its own accumulation. */
float pf_neuron_score(const float *g, const float *u, int64_t H, pf_score_method m);
/* Score of one plain-MLP neuron j (arch-gpt2-neox.md §9.2) from its input row
 * r[H] (row j of up_proj = fc_in) and output column c[H] (column j of
 * down_proj = fc_out), float32 copies, same rounding as pf_neuron_score:
 *   MAW/PPM: max r + |min r|     VOW: var(r), unbiased
 *   PON:     (sum |r|) * (sum |c|)   L2: ||r||_2 + ||c||_2
 * (MAW and VOW do not use c; biases are never scored.) */
float pf_plain_neuron_score(const float *r, const float *c, int64_t H, pf_score_method m);

/* Scores of every neuron of layer l into out[I] (I = pf_layer_width(l)). A layer
 * with gate_proj is scored as a GLU MLP (pf_neuron_score), one without as a
 * plain MLP (pf_plain_neuron_score; output columns are reduced by streaming
 * down_proj's rows). Rows are converted with pf_tensor_row_f32, then rounded
 * through `as` when it is not PF_DTYPE_F32 or the stored dtype (the model ranked as
 * if loaded in that dtype, as OptiPFair's torch_dtype does); OpenMP over neurons. Errors: missing
 * or planned (dry-run) tensors, gate/up (GLU) or up/down (plain) shape mismatch. */
pf_status pf_layer_scores(const pf_layer *l, pf_score_method m, pf_dtype as, float *out,
                          pf_err *err);
/* §2.4 hybrid score of every neuron of layer l with its accumulated norms X[I]:
 *   g_i = max G[i,:] + |min G[i,:]|, u_i likewise for U, d_i = max D[:,i] + |min D[:,i]|,
 *   each normalised by (its max + 1e-8), importance_i = (g^_i + u^_i + d^_i) * X_i,
 * all in float32 as torch computes it. A plain MLP layer (no gate_proj) gets
 * §9.2's analogue: importance_j = (r^_j + c^_j) * X_j with r_j = rng(up row j),
 * c_j = rng(down column j), each normalised the same way; X_j is then the norm
 * of act(fc_in(x))[j], the input of fc_out. */
pf_status pf_layer_hybrid_scores(const pf_layer *l, const float *X, pf_dtype as, float *out,
                                 pf_err *err);

/* The op parameter that sets score_dtype (prune_width, prune_heads; the CLI's --dtype),
 * and its value: PF_DTYPE_F32 for "auto" (the stored values). */
#define PF_RANK_DTYPE_PARAM                                                                        \
  {                                                                                                \
    "rank_dtype", PF_P_STR, 0, "auto", "auto|float32|float16|bfloat16", 0, 0,                      \
        "rank on the weights rounded to this dtype, as OptiPFair does for a model loaded with "    \
        "torch_dtype (the CLI's --dtype); auto: the stored values"                                 \
  }
pf_status pf_rank_dtype_param(const pf_value *params, pf_dtype *out, pf_err *err);

/* ---- how many neurons to keep (§3) ---- */

/* k = I - min(trunc((p/100)*I), I-1), IEEE double in Python's order. p must be
 * finite and in [0, 100] (the caller validates). */
int64_t pf_keep_from_percentage(double p, int64_t I);
/* Newest divisor rule: max(floor(k/d)*d, 1). */
int64_t pf_round_to_divisor(int64_t k, int64_t d);
/* 1 when d is one of 32, 64, 128, 256. */
int pf_divisor_valid(int64_t d);
/* Percentage for a target expansion rate e (a percentage of H), from layer 0's
 * I0 and H: target = (e/100)*H; p = (1 - target/I0)*100. target >= I0 is
 * "Target expansion rate (<e>%) would increase the model size. Current
 * expansion rate is <(I0/H)*100:.2f>%." where <e> is Python str(e): written as
 * an integer when e_is_int ("200"), else as a Python float ("200.5", "200.0"). */
pf_status pf_percentage_from_expansion_rate(int64_t I0, int64_t H, double e, int e_is_int,
                                            double *p, pf_err *err);
/* k for one layer of size I at percentage p with an optional divisor (0 = none),
 * with the "No effective pruning for layer <idx>: ..." check (layer_idx < 0
 * writes "current layer"). */
pf_status pf_layer_keep(int64_t layer_idx, int64_t I, double p, int64_t divisor, int64_t *k,
                        pf_err *err);

/* Deterministic top-k: the k indices with the largest scores (NaN counts as
 * the largest; ties: lower index first), written to kept[k] in ascending order.
 * 0 <= k <= n. Returns PF_ERR_NOMEM only. */
pf_status pf_topk_keep(const float *scores, int64_t n, int64_t k, int64_t *kept, pf_err *err);
/* The same for double scores (head units). */
pf_status pf_topk_keep_f64(const double *scores, int64_t n, int64_t k, int64_t *kept, pf_err *err);

/* Python str() of a number for messages: an integer when is_int, else Python's
 * float repr ("5.0", "12.5"). */
void pf_format_pynum(double v, int is_int, char *out, size_t n);

/* ---- width pruning (§4, prune_model_mlp_glu semantics) ---- */

/* What width pruning prunes: OptiPFair's GLU neuron pairs ("MLP_GLU", the
 * default) or the neurons of a plain MLP ("MLP": up_proj/fc_in row j, its bias
 * element j and down_proj/fc_out column j; the fc_out bias is kept). */
typedef enum pf_width_type { PF_WIDTH_MLP_GLU = 0, PF_WIDTH_MLP } pf_width_type;
/* "MLP_GLU" | "MLP" (exact); otherwise PF_ERR_INVALID with pfrun's extension
 * of OptiPFair's "Unsupported pruning type" message. */
pf_status pf_width_type_parse(const char *name, pf_width_type *out, pf_err *err);
const char *pf_width_type_name(pf_width_type t);

/* OptiPFair's "Model is not compatible with GLU pruning..." error (with the reason)
 * unless pf_model_glu_compatible; for a model whose family has a plain MLP the
 * message adds that pruning_type MLP (--pruning-type MLP) prunes it. */
pf_status pf_check_glu_compatible(const pf_model *m, pf_err *err);
/* "Model is not compatible with MLP pruning..." unless the family has a plain MLP
 * (config.arch->mlp == PF_MLP_PLAIN) and layer 0 has up_proj [I, H] and
 * down_proj [H, I] and no gate_proj; a GLU model's message names MLP_GLU. */
pf_status pf_check_plain_mlp(const pf_model *m, pf_err *err);
/* The check for `t` (GLU or plain). */
pf_status pf_check_width_compatible(const pf_model *m, pf_width_type t, pf_err *err);
/* §4 step 3 on a list of layer indices (any order) for a model of L layers:
 * "layer_indices cannot be an empty list", then "Invalid layer indices: [<bad,
 * in input order>]. Model has L layers (valid indices: 0-<L-1>)", then
 * "layer_indices contains duplicate values". */
pf_status pf_check_layer_indices(const int64_t *idx, size_t n, int64_t L, pf_err *err);

/* "pruning_percentage must be between 0 and 100, got <p as Python prints it>"
 * unless 0 <= p <= 100 (NaN fails). */
pf_status pf_check_percentage(double p, int is_int, pf_err *err);

typedef struct pf_width_opts {
  /* PF_WIDTH_MLP_GLU (0, the default) or PF_WIDTH_MLP. Everything below applies to
   * both, with I = the layer's width and I0/H from layer 0's up_proj, except
   * fairness_scores (GLU only: refused for MLP, §4 step 4's place). */
  pf_width_type pruning_type;
  const char *method;  /* NULL = "PPM" (prune_model_mlp_glu's default) */
  int have_percentage; /* pruning_percentage given (not None) */
  double pruning_percentage;
  int percentage_is_int; /* for str() in messages */
  int have_expansion_rate;
  double expansion_rate;
  int expansion_rate_is_int;
  int have_divisor;
  int64_t expansion_divisor;
  int have_layer_indices;
  const int64_t *layer_indices; /* [n_layer_indices], as given (any order) */
  size_t n_layer_indices;
  /* §2 data-driven hybrid scores (OptiPFair's `dataloader`): per layer the
   * accumulated down_proj input norms X [I_l] (NULL entries: not calibrated),
   * n_activation_norms == the number of layers; NULL = static scores. Only with
   * method "MAW" (OptiPFair's literal check, made before the method is parsed). */
  const float *const *activation_norms;
  size_t n_activation_norms;
  /* the dtype the weights are ranked in (OptiPFair loads the model with torch_dtype,
   * then scores .float() of the converted weights): PF_DTYPE_F32 (0, the default) =
   * the stored values */
  pf_dtype score_dtype;
  /* §2.6 fairness scores (OptiPFair's `fairness_scores`, newest): a map
   * {"<layer>": [I_l numbers in [0, 1]]} such as a fairness_scores result, or
   * NULL. Type-checked as §4 step 4 (after layer_indices, see fairness.h); per
   * pruned layer with scores: shape "custom_importance_scores shape mismatch:
   * expected [I], got [n]" and range "custom_importance_scores must be in
   * [0, 1] range, got min=%.4f, max=%.4f" (before that layer's k), then
   * importance = 1 - score (float32): the neurons with the HIGHEST fairness
   * score are removed. Precedence per layer: fairness > activation_norms >
   * static method; layers without scores fall back, scores of layers not
   * pruned are ignored. */
  const pf_value *fairness_scores;
} pf_width_opts;

/* The validated plan: which layers shrink to what. */
typedef struct pf_width_plan {
  pf_score_method method;
  double percentage; /* effective p (from expansion_rate when that was given) */
  int64_t n_layers;
  int64_t *keep;             /* [n_layers] new width; the old width for unselected layers */
  unsigned char *selected;   /* [n_layers] 1 = pruned */
  const float *const *norms; /* the options' activation_norms (borrowed) or NULL */
  float **custom;            /* [n_layers] 1 - fairness score per neuron, or NULL (owned) */
  pf_dtype score_dtype;      /* the options' score_dtype */
} pf_width_plan;

/* Validate in OptiPFair's order (§4: GLU (or plain MLP), layers, layer_indices, divisor,
 * method, exclusivity, expansion rate, percentage range) and compute every
 * layer's k (per layer in ascending order, so the first "No effective pruning"
 * layer is the one OptiPFair reports). Neither percentage nor rate (without a
 * divisor): "pruning_percentage must be between 0 and 100, got None". */
pf_status pf_width_plan_make(const pf_model *m, const pf_width_opts *o, pf_width_plan *out,
                             pf_err *err);
void pf_width_plan_free(pf_width_plan *p); /* members only; NULL ok */

/* The checks of pf_width_plan_make that need no model, with the same words:
 * fairness_scores with a plain MLP, divisor, calibration (have_calibration: one is
 * given, its norms not read yet) with another method than MAW, method, exclusivity
 * and a given percentage's range. A recipe checks every step with them before the
 * first step runs. */
pf_status pf_width_opts_check(const pf_width_opts *o, int have_calibration, pf_err *err);

/* Prune: a new model (pf_model_derive) whose pruned layers hold gate/up rows and
 * down columns of the kept neurons (exact bytes; a plain MLP: up rows and down
 * columns), gate/up biases sliced, the down bias shared;
 * config.intermediate_sizes[i] = k and intermediate_size = the largest. With
 * ctx->dry_run no weight is read: pruned tensors are planned (shape only) and
 * kept_indices are null. *stats (may be NULL) receives §6.2:
 * original_parameters, pruned_parameters, reduction, percentage_reduction,
 * expansion_rate, [pruned_layers, total_layers when widths differ], plus
 * "layers": [{index, intermediate_size_before, intermediate_size_after,
 * kept_indices}] for the pruned layers. */
pf_status pf_prune_width(const pf_model *m, const pf_width_opts *o, const pf_ctx *ctx,
                         pf_model **out, pf_value **stats, pf_err *err);

/* §6.2 statistics of `after` against `before` (no "layers" key). */
pf_status pf_width_stats(const pf_model *before, const pf_model *after, pf_value **out,
                         pf_err *err);

/* ---- depth pruning (§5) ---- */

typedef struct pf_depth_opts {
  int have_num;
  int64_t num_layers_to_remove;
  int have_layer_indices;
  const int64_t *layer_indices; /* [n_layer_indices] */
  size_t n_layer_indices;
  int have_percentage;
  double depth_pruning_percentage;
  const char *layer_selection_method; /* NULL = "last" */
  /* pfrun extension: per-layer importance [n_importance == number of layers].
   * With num_layers_to_remove (or a percentage) the N layers with the LOWEST
   * importance are removed; ties go to the higher index (later layers first,
   * in the spirit of the default "last"). Combining importance with
   * layer_selection_method or layer_indices is an error. */
  const double *importance;
  size_t n_importance;
} pf_depth_opts;

/* Validate (§5.1, in order, OptiPFair's messages) and select (§5.2). *removed
 * is malloc'd, ascending, *n_removed entries. */
pf_status pf_depth_select(const pf_model *m, const pf_depth_opts *o, int64_t **removed,
                          size_t *n_removed, pf_err *err);

/* The checks of pf_depth_select that need no model, with the same words (the
 * layer count's are left out; have_importance: importance is given, not read yet). */
pf_status pf_depth_opts_check(const pf_depth_opts *o, int have_importance, pf_err *err);

/* Remove the selected layers: a new model sharing every remaining tensor with
 * m. *stats (may be NULL) receives §6.3's eight keys plus "removed_layers". */
pf_status pf_prune_depth(const pf_model *m, const pf_depth_opts *o, pf_model **out,
                         pf_value **stats, pf_err *err);

/* Importance scores from a value: a map {"0": score, ...} (keys are layer
 * indices), a list [s0, s1, ...], or a map holding one of those under "scores"
 * or "importance" (the result of an importance step). Every layer 0..n_layers-1 must have a
 * finite score. *out is malloc'd [n_layers]. With dry_run, a dry run's planned
 * result ({"planned": {"num_hidden_layers": L}}, calibration.h) is checked for
 * its layer count the same way and gives equal scores; a real run refuses it. */
pf_status pf_importance_from_value(const pf_value *v, int64_t n_layers, int dry_run, double **out,
                                   pf_err *err);

#endif
