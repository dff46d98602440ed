/* pruning_heads.h — attention-head pruning (issue 12 part A) as plain functions.
 *
 * Units. With n_heads query heads and n_kv key/value heads (g = n_heads / n_kv
 * query heads per key/value head, transformers' repeat_kv order: query head h
 * reads key/value head h / g), a unit is key/value head u together with its
 * query heads [u*g, (u+1)*g). Without GQA (n_kv == n_heads) a unit is one head.
 *
 * Importance of a unit (OptiPFair development branch), in double:
 *   b_h  = || o_proj[:, h*hd:(h+1)*hd] ||_F          (o_proj block of query head h)
 *   static:       score_u = sum over its query heads of b_h
 *   data-driven:  score_u = sum over its query heads of a_h * b_h, where a_h is
 *                 the mean over real (unpadded) tokens of the L2 norm of head h's
 *                 attention output (the o_proj input, PF_TAP_O_PROJ_INPUT)
 *                 (calibration.h: "head_norms").
 * The units with the highest scores are kept; ties: lower index first.
 *
 * Slicing of a pruned layer (canonical tensors, model.h): q_proj rows (and
 * bias) of the kept query heads, k_proj / v_proj rows (and biases) of the kept
 * key/value heads, o_proj columns of the kept query heads; o bias, q_norm and
 * k_norm ([head_dim]) are shared. head_dim never changes. Fused stored layouts
 * (phi3 qkv_proj, gpt2 c_attn, gpt_neox query_key_value) are composed from the
 * sliced canonical tensors on save (arch.h), with the new head count.
 *
 * Per-layer head counts: the forward pass, the config and transformers all use
 * one num_attention_heads / num_key_value_heads per model, so every layer must
 * end with the same counts. A request that would leave layers with different
 * counts (layer_indices that do not cover every layer, head_indices of different
 * lengths) is refused before anything is computed, naming the layers.
 */
#ifndef PF_PRUNING_HEADS_H
#define PF_PRUNING_HEADS_H

#include "model.h"
#include "value.h"

typedef struct pf_heads_opts {
  int have_percentage; /* pruning_percentage: k = int(p/100 * units) removed, >= 1 unit kept;
                          p > 0 removing nothing is a "No effective pruning" error */
  double pruning_percentage;
  int percentage_is_int; /* for str() in messages */
  int have_keep;         /* num_kv_heads_to_keep: units kept per pruned layer */
  int64_t num_kv_heads_to_keep;
  /* head_indices: {"<layer>": [units to remove]} (the layers given are pruned,
   * layer_indices must then be absent) or a list [units to remove] applied to
   * every selected layer. Units are key/value-head indices (head indices
   * without GQA), as transformers' prune_heads / config.pruned_heads. */
  const pf_value *head_indices;
  int have_layer_indices;
  const int64_t *layer_indices; /* [n_layer_indices] */
  size_t n_layer_indices;
  /* data-driven: per layer a_h [n_heads] (NULL entries: static for that layer
   * is an error when the layer is pruned); NULL = static scores. */
  const double *const *head_norms;
  size_t n_head_norms;
  pf_dtype score_dtype; /* o_proj ranked rounded to this dtype (pruning.h's score_dtype) */
} pf_heads_opts;

typedef struct pf_heads_plan {
  int64_t n_layers, n_heads, n_kv, head_dim, group; /* of the parent */
  int64_t keep;                                     /* units kept in every pruned layer */
  unsigned char *selected;                          /* [n_layers] */
  int64_t **removed; /* [n_layers] explicit units to remove (head_indices) or NULL */
  const double *const *head_norms;
  pf_dtype score_dtype;
} pf_heads_plan;

/* 1 and a note in buf when transformers would not load a checkpoint with this
 * (head-pruned) config although pfrun does: GPT-2 and GPT-NeoX derive the head size
 * from hidden_size / heads, Phi-3's longrope validation sizes its factor lists by it. */
int pf_heads_transformers_note(const pf_model_config *c, char *buf, size_t n);

/* The checks of pf_heads_plan_make that need no model, with the same words: one
 * of percentage / kv heads to keep / head_indices, and the percentage's range. */
pf_status pf_heads_opts_check(const pf_heads_opts *o, pf_err *err);

/* Validate (structure, exclusivity, layers, amounts, uniform result) and plan. */
pf_status pf_heads_plan_make(const pf_model *m, const pf_heads_opts *o, pf_heads_plan *out,
                             pf_err *err);
void pf_heads_plan_free(pf_heads_plan *p); /* members; NULL ok */

/* Block norms b_h of o_proj [H, n_heads*hd] into b[n_heads] (double). */
pf_status pf_heads_block_norms(const pf_tensor *o_proj, int64_t n_heads, int64_t hd, pf_dtype as,
                               double *b, pf_err *err);
/* Unit scores into score[n_kv] from b[n_heads] and optional a[n_heads]. */
void pf_heads_unit_scores(const double *b, const double *a, int64_t n_heads, int64_t n_kv,
                          double *score);
/* Deterministic top-k over double scores (NaN largest, ties lower index), kept
 * ascending. */
pf_status pf_heads_topk(const double *score, int64_t n, int64_t k, int64_t *kept, pf_err *err);

/* Prune: a new model (pf_model_derive) with sliced attention tensors in the
 * pruned layers and num_attention_heads = keep*g, num_key_value_heads = keep
 * (head_dim written explicitly on save). With ctx->dry_run no weight is read
 * (planned tensors; kept lists and scores are null). *stats (may be NULL):
 *   original_parameters, pruned_parameters, reduction, percentage_reduction,
 *   num_attention_heads_before/after, num_key_value_heads_before/after, head_dim,
 *   kv_cache_bytes_per_token_before/after (2 * layers * kv heads * head_dim *
 *   bytes of the weight dtype: the K and V a transformers KV cache in the model's
 *   dtype holds per token; pfrun's own generate keeps its cache in float32),
 *   layers: [{index, heads_before, heads_after, kv_heads_before, kv_heads_after,
 *   kept_kv_heads, kept_heads, scores}] for the pruned layers. */
pf_status pf_prune_heads(const pf_model *m, const pf_heads_opts *o, const pf_ctx *ctx,
                         pf_model **out, pf_value **stats, pf_err *err);

/* For o_proj recovery: the kept o_proj input channels of pruned layer `layer`
 * (kept_heads x head_dim, ascending: h*hd .. h*hd+hd-1 for each kept query head h),
 * read from a prune_heads result or its stats (the "layers" entries). *out is
 * malloc'd (caller frees) with *n entries; PF_ERR_NOT_FOUND when the layer was
 * not pruned, PF_ERR_INVALID for a dry run's result (kept_heads null). */
pf_status pf_heads_kept_channels(const pf_value *result, int64_t layer, int64_t **out, int64_t *n,
                                 pf_err *err);

/* Head norms a_h from a calibrate result ({"head_norms": {"<layer>": [n_heads]}})
 * for model m: *out is malloc'd [m->n_layers], entries malloc'd or NULL.
 * With dry_run a planned result ({"planned": ...}) gives all-NULL norms. */
pf_status pf_head_norms_from_value(const pf_value *v, const pf_model *m, int dry_run, double ***out,
                                   pf_err *err);
void pf_head_norms_free(double **norms, int64_t n_layers);

#endif
