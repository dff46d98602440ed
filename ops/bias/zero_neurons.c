/* zero_neurons.c — op "zero_neurons": OptiPFair's zero_neurons_mlp (reference
 * §8.7) on an immutable model: a new model whose listed MLP neurons have their
 * gate/up rows (and biases) and down column set to zero; shapes unchanged. A
 * plain MLP (gpt2, gpt_neox: no gate) gets its fc_in row, fc_in bias entry and
 * fc_out column zeroed, the same neuron that prune_width pruning_type MLP removes. */
#include "fairness.h"
#include "ophelp.h"

static const pf_param_spec zero_neurons_params[] = {
    {"model", PF_P_MODEL, 1, NULL, NULL, 0, 0, "the model (it is not changed)"},
    {"neuron_indices", PF_P_ANY, 1, NULL, NULL, 0, 0,
     "a map {\"<layer>\": [neuron, ...]} (layer and neuron indices 0-based); GLU MLPs: gate/up "
     "rows, their biases and the down_proj column are zeroed; plain MLPs (gpt2, gpt_neox): the "
     "fc_in row, its bias and the fc_out column"},
};

static pf_status zero_neurons_run(const pf_op *op, const pf_value *params, pf_value **out,
                                  const pf_ctx *ctx, pf_err *err) {
  pf_model *nm = NULL;
  pf_value *stats = NULL;
  pf_status st = pf_zero_neurons(pf_map_model(params, "model"),
                                 pf_map_get(params, "neuron_indices"), ctx, &nm, &stats, err);
  if (st) return st;
  *out = pf_model_result(nm, stats);
  pf_model_release(nm);
  return *out ? PF_OK : pf_err_set(err, PF_ERR_NOMEM, "out of memory");
}

const pf_op pf_op_zero_neurons = {
    .name = "zero_neurons",
    .alias = NULL,
    .summary = "silence MLP neurons by zeroing their weights (OptiPFair zero_neurons_mlp)",
    .params = zero_neurons_params,
    .n_params = sizeof zero_neurons_params / sizeof zero_neurons_params[0],
    .returns = "{model, layers: [{index, neurons (how many were zeroed)}], zeroed_neurons}",
    .run = zero_neurons_run,
};
