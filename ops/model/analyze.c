/* analyze.c — op "analyze": what `optipfair analyze` reports (§13.2), as a map.
 *
 * Layer 0 gives H, I and the per-layer parameter split (names with self_attn /
 * mlp / the rest). The estimates use I' = I * (1 - p/100) as a float, like
 * OptiPFair, but count what pruning really removes per neuron: a gate row, an
 * up row and a down column, (I - I') * (2H + down.out) = 3H per neuron.
 * OptiPFair counts (I - I') * (H + down.out) = 2H per neuron and so
 * underestimates by a third; this is one of pfrun's documented differences.
 * A plain (non-GLU) MLP (GPT-2, GPT-NeoX) is reported as such, with the same
 * details and estimates for pruning type MLP: an fc_in row, its bias and an fc_out
 * column, 2H + 1 per neuron.
 */
#include "op.h"

static const pf_param_spec analyze_params[] = {
    {"model", PF_P_MODEL, 1, NULL, NULL, 0, 0, "the model to analyse"},
};

static pf_value *share(int64_t count, int64_t total) {
  pf_value *v = pf_value_map();
  if (v && (pf_map_set_int(v, "count", count) ||
            pf_map_set_num(v, "percent", total ? ((double)count / (double)total) * 100.0 : 0.0))) {
    pf_value_release(v);
    return NULL;
  }
  return v;
}

static pf_value *distribution(const pf_layer *l) {
  int64_t a = 0, m = 0, o = 0;
  pf_layer_param_split(l, &a, &m, &o);
  int64_t t = a + m + o;
  pf_value *d = pf_value_map();
  if (d && (pf_map_set(d, "attention", share(a, t)) || pf_map_set(d, "mlp", share(m, t)) ||
            pf_map_set(d, "other", share(o, t)))) {
    pf_value_release(d);
    return NULL;
  }
  return d;
}

static pf_value *estimate(int p, double I, double H, double per_neuron, int64_t L, int64_t total) {
  double ni = I * (1.0 - p / 100.0);
  double ratio = ni / H;
  double reduction = (I - ni) * per_neuron;
  pf_value *e = pf_value_map();
  if (e && (pf_map_set_int(e, "percentage", p) || pf_map_set_num(e, "new_expansion_ratio", ratio) ||
            pf_map_set_num(e, "new_expansion_percent", ratio * 100.0) ||
            pf_map_set_num(e, "estimated_reduction_percent",
                           total ? (reduction * (double)L) / (double)total * 100.0 : 0.0))) {
    pf_value_release(e);
    return NULL;
  }
  return e;
}

/* MLP details of layer 0: GLU (gate + up rows, a down column per neuron) or plain
 * (an fc_in row and bias element, an fc_out column). */
static pf_status add_mlp_details(const pf_model *m, int64_t total, pf_value *r) {
  const pf_layer *l0 = &m->layers[0];
  const int64_t H = l0->up_proj->shape[1], I = l0->up_proj->shape[0];
  const int64_t down_out = l0->down_proj->shape[0];
  const double per_neuron = l0->gate_proj ? 2.0 * (double)H + (double)down_out
                                          : (double)H + (double)down_out + (l0->up_bias ? 1 : 0);
  pf_status st = pf_map_set_int(r, "hidden_size", H);
  if (!st) st = pf_map_set_int(r, "intermediate_size", I);
  if (!st) st = pf_map_set_num(r, "expansion_ratio", (double)I / (double)H);
  if (!st) st = pf_map_set(r, "distribution", distribution(l0));
  pf_value *est = st ? NULL : pf_value_list();
  if (!st && !est) st = PF_ERR_NOMEM;
  for (int p = 10; !st && p <= 50; p += 10)
    st = pf_list_push(est, estimate(p, (double)I, (double)H, per_neuron, m->n_layers, total));
  if (!st)
    st = pf_map_set(r, "estimates", est);
  else
    pf_value_release(est);
  return st;
}

static pf_status analyze_run(const pf_op *op, const pf_value *params, pf_value **out,
                             const pf_ctx *ctx, pf_err *err) {
  const pf_model *m = pf_map_model(params, "model");
  int64_t total = pf_model_param_count(m);
  char why[256] = "";
  int glu = pf_model_glu_compatible(m, why, sizeof why);
  pf_value *r = pf_value_map();
  pf_status st = r ? PF_OK : PF_ERR_NOMEM;
  if (!st) st = pf_map_set_int(r, "total_parameters", total);
  const pf_arch *arch = m->config.arch ? m->config.arch : pf_arch_default();
  const int plain = m->n_layers > 0 && !m->layers[0].gate_proj && m->layers[0].up_proj &&
                    m->layers[0].down_proj;
  if (!st) st = pf_map_set_int(r, "num_layers", m->n_layers);
  if (!st) st = pf_map_set_str(r, "model_type", m->config.model_type);
  if (!st) st = pf_map_set_str(r, "family", arch->family);
  if (!st) st = pf_map_set_str(r, "mlp", glu ? "GLU" : plain ? "plain" : "unknown");
  if (!st) st = pf_map_set_bool(r, "glu_compatible", glu);
  if (!st && !glu)
    st = pf_map_set_str(r, "reason",
                        plain ? "plain MLP (fc_in, activation, fc_out), not a GLU MLP: prune its "
                                "neurons with pruning type MLP"
                              : why);
  if (!st && (glu || plain)) st = add_mlp_details(m, total, r);
  if (st) {
    pf_value_release(r);
    return pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  }
  *out = r;
  return PF_OK;
}

const pf_op pf_op_analyze = {
    .name = "analyze",
    .alias = NULL,
    .summary = "parameter count, GLU compatibility, per-layer parameter split and width-pruning "
               "estimates",
    .params = analyze_params,
    .n_params = sizeof analyze_params / sizeof analyze_params[0],
    .returns = "{total_parameters, num_layers, model_type, family, mlp (GLU|plain), "
               "glu_compatible, [reason], hidden_size, "
               "intermediate_size, expansion_ratio, distribution {attention, mlp, other: {count, "
               "percent}}, estimates [{percentage, new_expansion_ratio, new_expansion_percent, "
               "estimated_reduction_percent}] for 10..50 %; the estimate counts gate + up + down "
               "(3*H per neuron; plain MLPs fc_in + bias + fc_out, 2*H+1), OptiPFair's counts "
               "2*H}",
    .run = analyze_run,
};
