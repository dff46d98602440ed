/* bias_metrics.h — OptiPFair's bias metrics (reference §9) on activation maps,
 * before/after comparisons and the neuron-level analysis (seed guide
 * "Neuron-Level Bias Analysis", reference §8.7 analyze_neuron_bias).
 *
 * Numbers follow torch's float32 arithmetic at the points where torch produces
 * a float32 tensor: |a1 - a2| and pooled means are float32, each reduction is
 * summed in double and rounded to float32 once (torch's own summation order
 * can differ in the last bit), means divide the rounded sum by the count in
 * float32, std is torch's all-reduce path (double sum of squares around the
 * float32 mean, rounded once). Statistics are returned as the doubles Python's
 * float() gives.
 *
 * Activation maps hold PF_V_TENSOR values (float32, [S, D] or any shape whose
 * last dimension is the neuron). Keys are taken in hook-firing order (layer
 * number, then input_norm, attention_output, gate_proj, up_proj,
 * down_proj_input, down_proj, mlp_output; other keys after them in map order),
 * which is the order bias_activations produces — so a map whose keys were
 * re-sorted (Lua tables) gives the same metrics.
 *
 * pfrun's documented difference: OptiPFair computes no metrics when the two
 * prompts tokenize to different lengths. pfrun then mean-pools every
 * activation over positions first (a [D] vector per prompt) and applies the
 * same metrics to the pooled vectors; such pairs are marked
 * "aligned": "mean_pooled" (else "exact").
 */
#ifndef PF_BIAS_METRICS_H
#define PF_BIAS_METRICS_H

#include "value.h"

/* The six statistics of §9.2 over v[n] as map entries mean_difference,
 * max_difference, min_difference, std_difference (unbiased; NaN when n < 2),
 * l1_norm, l2_norm, added to `map`. PF_ERR_NOMEM only. */
pf_status pf_bias_put_stats(pf_value *map, const float *v, size_t n);

/* calculate_bias_metrics (§9.2) of one pair: *out is {} when no key could be
 * compared, else {layer_metrics, overall_metrics, component_metrics}.
 * *pooled = 1 when some key was compared after mean pooling (different
 * lengths). Errors: a value that is not a tensor, a non-float32 tensor. */
pf_status pf_bias_pair_metrics(const pf_value *act1, const pf_value *act2, pf_value **out,
                               int *pooled, pf_err *err);

/* One pair of a bias_activations result (borrowed from it). */
typedef struct pf_bias_pair {
  int64_t index; /* 1-based */
  const char *prompt1, *prompt2;
  const pf_value *act1, *act2;
} pf_bias_pair;

/* The pairs of a bias_activations result ({"pairs": [...]}). `what` names the
 * parameter in messages. *pairs is malloc'd. */
pf_status pf_bias_result_pairs(const pf_value *res, const char *what, pf_bias_pair **pairs,
                               size_t *n, pf_err *err);

/* Metrics of every pair: *pairs_out {"pair_<index>": {prompt1, prompt2,
 * metrics, aligned}} (bias_metrics.json) and *summary {"<component>": mean over
 * pairs of its mean_difference, ..., "overall": ...}. */
pf_status pf_bias_metrics_all(const pf_bias_pair *pairs, size_t n, pf_value **pairs_out,
                              pf_value **summary, pf_err *err);

/* Before/after comparison of two pf_bias_metrics_all results over the same
 * pairs: {pairs: {pair_k: {<component>: {before, after, change_percent}, ...,
 * overall}}, components: {...}, overall: {...}} with change_percent =
 * (after / before - 1) * 100 (inf when before is 0 and after > 0, NaN when both
 * are 0 or a side is missing; both null in JSON). */
pf_status pf_bias_compare(const pf_value *before_pairs, const pf_value *before_summary,
                          const pf_value *after_pairs, const pf_value *after_summary,
                          pf_value **out, pf_err *err);

/* ---- shared by bias_metrics.c and bias_neurons.c ---- */

/* Mean over every dimension but the last: a[rows, D] -> out[D] (float32). */
pf_status pf_bias_pool_rows(const float *a, int64_t rows, int64_t D, float *out, pf_err *err);
/* Map entry indices in hook-firing order (malloc'd [map len]; NULL on NOMEM). */
size_t *pf_bias_key_order(const pf_value *map);
/* v as a non-empty float32 tensor of activations (materialised if lazy), or an
 * error naming side.key. */
pf_status pf_bias_act_tensor(const pf_value *v, const char *side, const char *key,
                             const pf_tensor **out, pf_err *err);
/* The part of key before "_layer_" when key.split("_layer_") has exactly 2 parts. */
int pf_bias_key_component(const char *key, char *out, size_t n);

/* ---- neuron level ---- */

/* Per-key accumulation over pairs of |mean over positions of a1 - of a2|
 * (float32 [D] per pair), keyed in first-seen hook-firing order. */
typedef struct pf_neuron_acc pf_neuron_acc;

pf_status pf_neuron_acc_new(pf_neuron_acc **out, pf_err *err);
void pf_neuron_acc_free(pf_neuron_acc *a); /* NULL ok */
/* Add one pair: every key present in both maps. A tensor with fewer than 2
 * dimensions: "Activation tensor for <key> must have at least 2 dimensions";
 * different last dimensions are an error naming the key. */
pf_status pf_neuron_acc_add(pf_neuron_acc *a, const pf_value *act1, const pf_value *act2,
                            pf_err *err);
/* {"<key>": [D floats]}: the element-wise mean over the pairs holding the key
 * (float32), or the maximum when use_max. */
/* MPI: every rank's accumulator folded into a, in rank order (sums added,
 * maxima as acc_key takes them, counts added): afterwards every rank holds
 * the same. One rank: nothing to do. */
pf_status pf_neuron_acc_gather(pf_neuron_acc *a, pf_err *err);
pf_status pf_neuron_acc_result(const pf_neuron_acc *a, int use_max, pf_value **out, pf_err *err);
/* The top_n largest values across every key of a mean result: a list of
 * {key, layer, component, neuron, difference}, difference descending (ties:
 * earlier key, then lower neuron). */
pf_status pf_neuron_top(const pf_value *result, int64_t top_n, pf_value **out, pf_err *err);

#endif
