/* fairness.h — OptiPFair's fairness extras (reference §8.7): fairness pruning
 * scores from neuron bias scores and static PPM importance, the fairness
 * scores of width pruning (§2.6, §4 step 4), and zeroing MLP neurons.
 *
 * Values: a neuron_bias result is a map {"gate_proj_layer_0": [I numbers], ...};
 * a fairness_scores result a map {"0": [I numbers in [0, 1]], ...} — pfrun map
 * keys are strings, so OptiPFair's int keys are decimal text here. The "op" and
 * "seconds" entries every op result carries are ignored. A list of numbers and
 * a 1-D float32 tensor are both accepted where OptiPFair takes a tensor.
 * Internal to ops/.
 */
#ifndef PF_FAIRNESS_H
#define PF_FAIRNESS_H

#include "model.h"
#include "value.h"

/* _normalize(t): zeros when torch.isclose(max, min), else
 * (t - min) / (max - min + 1e-8), float32 as torch computes it. */
void pf_fairness_normalize(const float *t, size_t n, float *out);

/* compute_fairness_pruning_scores(model, bias_scores, bias_weight): errors in
 * order "bias_weight must be in [0.0, 1.0], got <w>", a bias_scores value that
 * is not a map, "bias_scores dictionary is empty"; then per layer i the mean of
 * the present gate_proj_layer_i / up_proj_layer_i vectors (layers with neither
 * are skipped; a vector whose length is not the layer's intermediate size is an
 * error naming the key), the static PPM importance, and
 *   score = w * norm(bias) + (1 - w) * (1 - norm(importance))   (float32).
 * *out: {"<i>": [I numbers]} in layer order. */
pf_status pf_fairness_compute(const pf_model *m, const pf_value *bias_scores, double bias_weight,
                              pf_value **out, pf_err *err);
/* Only the checks before the per-layer work (weight, map, empty), for dry runs. */
pf_status pf_fairness_check_inputs(const pf_value *bias_scores, double bias_weight, pf_err *err);

/* §4 step 4 type checks of prune_width's fairness_scores (in pfrun's terms):
 * "fairness_scores must be Dict[int, torch.Tensor] (a map {"<layer>": [scores]}),
 * got <type>", "fairness_scores keys must be int (layer indices), got string for
 * key <k>", "fairness_scores values must be torch.Tensor (a list of numbers),
 * got <type> for layer <k>". An empty map is accepted. */
pf_status pf_fairness_check(const pf_value *v, pf_err *err);
/* The scores of layer `layer` (fairness_scores.get(idx)) as float32, malloc'd
 * [*n], or *out = NULL when the layer has none. v must have passed
 * pf_fairness_check. */
pf_status pf_fairness_get(const pf_value *v, int64_t layer, float **out, size_t *n, pf_err *err);

/* zero_neurons_mlp(model, neuron_indices): validation first, in OptiPFair's
 * order and words (GLU, or a plain MLP for a family that has one (gpt2,
 * gpt_neox), not a map, empty, no layers, then per entry: key not
 * an integer, layer out of range, value not a list of integers, empty list,
 * neurons out of range, duplicates); then a NEW model (pf_model_derive) whose
 * listed layers hold copies of gate/up (rows zeroed, and their biases' entries;
 * a plain MLP has no gate) and down (columns zeroed); shapes unchanged, the down
 * bias untouched, other
 * tensors shared. In a dry run the tensors are shared unchanged. *stats (may be
 * NULL): {"layers": [{"index", "neurons"}], "zeroed_neurons": total}. */
pf_status pf_zero_neurons(const pf_model *m, const pf_value *neuron_indices, const pf_ctx *ctx,
                          pf_model **out, pf_value **stats, pf_err *err);

#endif
