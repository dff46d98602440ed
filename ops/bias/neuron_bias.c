/* neuron_bias.c — op "neuron_bias": OptiPFair's analyze_neuron_bias (reference
 * §8.7): per activation and neuron, |mean over positions of prompt 1 - of
 * prompt 2| (so prompts of different lengths compare), aggregated over the
 * pairs by mean or max. Every layer is captured, as in OptiPFair. A dry run
 * tokenizes the prompts and returns the keys with planned [D] tensors (no forward). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bias.h"
#include "bias_metrics.h"
#include "dist.h"
#include "fsutil.h"
#include "opdata.h"

static const pf_param_spec neuron_bias_params[] = {
    {"model", PF_P_MODEL, 1, NULL, NULL, 0, 0, "the model to run"},
    {"prompt_pairs", PF_P_ANY, 0, "default", NULL, 0, 0,
     "as bias_activations: \"default\", a list of pairs, a .jsonl file or {template, "
     "attribute_category, attribute_pairs}"},
    {"target_layers", PF_P_ANY, 0, NULL, NULL, 0, 0,
     "activation types (as bias_activations); default gate_proj and up_proj"},
    {"aggregation", PF_P_STR, 0, "mean", NULL, 0, 0,
     "how the per-pair differences combine: mean or max"},
    {"activations", PF_P_ANY, 0, NULL, NULL, 0, 0,
     "a bias_activations result of this model on the same prompt pairs that captured every "
     "layer of these target_layers (its step id): the scores come from it, the model is not run "
     "again (the same numbers)"},
};

typedef struct nb_state {
  const pf_model *m;
  pf_tokenizer *tok;
  pf_forward *fwd;
  uint32_t mask;
  pf_neuron_acc *acc;
  const pf_ctx *ctx;
} nb_state;

/* The ids of both prompts of every pair. */
typedef struct nb_pair {
  int32_t *ids[2];
  size_t n[2];
  pf_value *acts[2];
} nb_pair;

static pf_status encode_pair(nb_state *s, const pf_prompt_pair *p, nb_pair *d, pf_err *err) {
  const char *pr[2] = {p->prompt1, p->prompt2};
  pf_status st = PF_OK;
  for (int k = 0; !st && k < 2; k++)
    if ((st = pf_encode_prompt(s->m, s->tok, pr[k], &d->ids[k], &d->n[k], err)))
      pf_err_prefix(err, "prompt%d \"%.80s\"", k + 1, pr[k]);
  return st;
}

/* Bytes of activations one token adds (every layer, every captured target). */
static uint64_t token_bytes(const pf_model *m, uint32_t mask) {
  uint64_t b = 0;
  for (int64_t l = 0; l < m->n_layers; l++)
    for (int t = 0; t < PF_BIAS_TARGET_COUNT; t++)
      if (mask & (1u << t))
        b += (uint64_t)pf_bias_target_width(m, l, (pf_bias_target)t) * sizeof(float);
  return b;
}

/* The pairs in chunks, each chunk one pass (both prompts of a pair a batch of
 * two rows; layer-major when the model does not fit: the weights are read once
 * per chunk, not once per pair), then added to the accumulator in pair order
 * and dropped. d holds n pairs, the first of them pair number first + 1. A chunk's activations stay
 * under an eighth of the memory budget. */
static pf_status run_pairs(nb_state *s, nb_pair *d, size_t n, size_t first, pf_err *err) {
  const uint64_t budget = pf_ctx_work_budget(s->ctx);
  const uint64_t per_token = token_bytes(s->m, s->mask), cap = budget / 8;
  pf_bias_item *items = calloc(n ? n : 1, sizeof *items);
  pf_status st = items ? PF_OK : pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  for (size_t c0 = 0, c1 = 0; !st && c0 < n; c0 = c1) {
    uint64_t bytes = 0;
    for (c1 = c0; c1 < n && (c1 == c0 || bytes + (d[c1].n[0] + d[c1].n[1]) * per_token <= cap);
         c1++) {
      bytes += (d[c1].n[0] + d[c1].n[1]) * per_token;
      items[c1 - c0] = (pf_bias_item){
          .ids = (const int32_t *const *)d[c1].ids, .n = d[c1].n, .batch = 2, .acts = d[c1].acts};
    }
    st = pf_bias_capture_items(s->fwd, items, c1 - c0, s->mask, NULL, "neuron_bias", s->ctx, err);
    for (size_t i = c0; i < c1; i++) {
      if (!st && (st = pf_neuron_acc_add(s->acc, d[i].acts[0], d[i].acts[1], err)))
        pf_err_prefix(err, "pair %zu", first + i + 1);
      for (int k = 0; k < 2; k++) {
        pf_value_release(d[i].acts[k]);
        d[i].acts[k] = NULL;
      }
    }
  }
  free(items);
  return st;
}

static pf_status run_all(nb_state *s, const pf_prompt_pairs *pp, pf_err *err) {
  nb_pair *d = calloc(pp->n ? pp->n : 1, sizeof *d);
  pf_status st =
      d ? pf_model_tokenizer(s->m, &s->tok, err) : pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  if (!st && !(s->ctx && s->ctx->dry_run)) st = pf_forward_new(s->m, &s->fwd, err);
  if (!st) st = pf_neuron_acc_new(&s->acc, err);
  for (size_t i = 0; !st && i < pp->n; i++)
    if ((st = encode_pair(s, &pp->items[i], &d[i], err))) pf_err_prefix(err, "pair %zu", i + 1);
  if (!st && s->fwd && pf_dist_size() > 1) { /* every rank the same model and prompts */
    pf_sha256 h;
    pf_sha256_init(&h);
    for (size_t i = 0; i < pp->n; i++)
      for (int k = 0; k < 2; k++) {
        pf_sha256_update(&h, &d[i].n[k], sizeof d[i].n[k]);
        pf_sha256_update(&h, d[i].ids[k], d[i].n[k] * sizeof(int32_t));
      }
    st = pf_forward_check_ranks(s->m, &h, "the model or the prompts", err);
  }
  /* MPI: each rank its share of the pairs, then the accumulators folded */
  int64_t lo = 0, hi = (int64_t)pp->n;
  if (s->fwd) pf_dist_range((int64_t)pp->n, &lo, &hi);
  if (!st && s->fwd) st = run_pairs(s, d + lo, (size_t)(hi - lo), (size_t)lo, err);
  if (!st && s->fwd) st = pf_neuron_acc_gather(s->acc, err);
  for (size_t i = 0; d && i < pp->n; i++)
    for (int k = 0; k < 2; k++) {
      free(d[i].ids[k]);
      pf_value_release(d[i].acts[k]);
    }
  free(d);
  pf_forward_free(s->fwd);
  pf_tokenizer_free(s->tok);
  return st;
}

/* The pairs of a bias_activations result `r` of model m on the pairs pp, every layer of
 * every target in mask captured, into the accumulator: each pair's entries of those
 * targets in hook order (a dry run only checks that they are there). */
static pf_status from_result(nb_state *s, const pf_value *r, const pf_prompt_pairs *pp,
                             pf_err *err) {
  const pf_value *pairs = r && r->type == PF_V_MAP ? pf_map_get(r, "pairs") : NULL;
  const pf_model *src = r && r->type == PF_V_MAP ? pf_map_model(r, "source") : NULL;
  if (!pairs || pairs->type != PF_V_LIST || !src)
    return pf_err_set(err, PF_ERR_INVALID,
                      "activations: expected the result of a bias_activations step, got %s",
                      r ? pf_vtype_name(r->type) : "nothing");
  if (src != s->m)
    return pf_err_set(err, PF_ERR_INVALID,
                      "activations: the result was computed on %s, not on this step's model %s",
                      src->name ? src->name : "another model", s->m->name ? s->m->name : "");
  if (pairs->u.list.len != pp->n)
    return pf_err_set(err, PF_ERR_INVALID,
                      "activations: the result holds %zu prompt pairs, this step has %zu",
                      pairs->u.list.len, pp->n);
  static const char *const sides[2] = {"act1", "act2"};
  pf_status st = PF_OK;
  for (size_t i = 0; !st && i < pp->n; i++) {
    const pf_value *p = pairs->u.list.items[i];
    if (strcmp(pf_map_str(p, "prompt1", ""), pp->items[i].prompt1) != 0 ||
        strcmp(pf_map_str(p, "prompt2", ""), pp->items[i].prompt2) != 0)
      return pf_err_set(err, PF_ERR_INVALID,
                        "activations: pair %zu of the result is another prompt pair (\"%.60s\")",
                        i + 1, pf_map_str(p, "prompt1", "?"));
    pf_value *f[2] = {pf_value_map(), pf_value_map()};
    for (int k = 0; !st && k < 2; k++) {
      const pf_value *a = pf_map_get(p, sides[k]);
      size_t *order = a && a->type == PF_V_MAP ? pf_bias_key_order(a) : NULL;
      if (!f[k] || !order) st = pf_err_set(err, PF_ERR_NOMEM, "out of memory");
      for (size_t j = 0; !st && j < a->u.map.len; j++) { /* the targets asked for, hook order */
        const char *key = a->u.map.keys[order[j]];
        const int t = pf_bias_key_target(key);
        if (t < 0 || !(s->mask & (1u << t))) continue;
        pf_value_retain(a->u.map.vals[order[j]]);
        if (pf_map_set(f[k], key, a->u.map.vals[order[j]]) != PF_OK)
          st = pf_err_set(err, PF_ERR_NOMEM, "out of memory");
      }
      free(order);
      for (int64_t l = 0; !st && l < s->m->n_layers; l++) /* every layer, as OptiPFair */
        for (int t = 0; !st && t < PF_BIAS_TARGET_COUNT; t++) {
          char key[96];
          snprintf(key, sizeof key, "%s_layer_%lld", pf_bias_target_prefix((pf_bias_target)t),
                   (long long)l);
          if ((s->mask & (1u << t)) && pf_bias_target_width(s->m, l, (pf_bias_target)t) > 0 &&
              !pf_map_has(f[k], key))
            st = pf_err_set(err, PF_ERR_INVALID,
                            "activations: the result lacks %s (capture every layer of these "
                            "target_layers)",
                            key);
        }
    }
    if (!st && !(s->ctx && s->ctx->dry_run) && (st = pf_neuron_acc_add(s->acc, f[0], f[1], err)))
      pf_err_prefix(err, "pair %zu", i + 1);
    pf_value_release(f[0]);
    pf_value_release(f[1]);
  }
  return st;
}

/* Dry run: the keys the result would have, each a planned [D] tensor. */
static pf_status dry_result(const pf_model *m, uint32_t mask, pf_value **out, pf_err *err) {
  pf_value *plan = NULL, *r = pf_value_map();
  pf_status st = r ? pf_bias_plan(m, 1, mask, NULL, &plan, err)
                   : pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  for (size_t i = 0; !st && i < plan->u.map.len; i++) {
    pf_tensor *t = NULL;
    st = pf_tensor_new_planned(PF_DTYPE_F32, 1, &plan->u.map.vals[i]->u.tensor->shape[1], &t, err);
    if (!st && pf_map_set(r, plan->u.map.keys[i], pf_value_tensor(t)) != PF_OK)
      st = pf_err_set(err, PF_ERR_NOMEM, "out of memory");
    pf_tensor_release(t);
  }
  pf_value_release(plan);
  if (st) pf_value_release(r);
  *out = st ? NULL : r;
  return st;
}

static pf_status neuron_bias_run(const pf_op *op, const pf_value *params, pf_value **out,
                                 const pf_ctx *ctx, pf_err *err) {
  nb_state s = {.m = pf_map_model(params, "model"), .ctx = ctx};
  const char *agg = pf_map_str(params, "aggregation", "mean");
  pf_prompt_pairs pp = {0};
  uint32_t def = (1u << PF_BIAS_GATE_PROJ) | (1u << PF_BIAS_UP_PROJ);
  if (strcmp(agg, "mean") != 0 && strcmp(agg, "max") != 0)
    return pf_err_set(err, PF_ERR_INVALID, "aggregation must be 'mean' or 'max', got '%s'", agg);
  pf_status st = pf_prompt_pairs_from_value(pf_map_get(params, "prompt_pairs"), &pp, err);
  if (!st && pp.n == 0) st = pf_err_set(err, PF_ERR_INVALID, "prompt_pairs cannot be empty");
  if (!st)
    st = pf_bias_targets_from_value(pf_map_get(params, "target_layers"), def, &s.mask, NULL, err);
  const pf_value *given =
      pf_map_has(params, "activations") ? pf_map_get(params, "activations") : NULL;
  if (!st && given) { /* every rank holds all pairs of the result: no gather */
    st = pf_neuron_acc_new(&s.acc, err);
    if (!st) st = from_result(&s, given, &pp, err);
  } else if (!st) {
    st = run_all(&s, &pp, err);
  }
  if (!st && ctx && ctx->dry_run)
    st = dry_result(s.m, s.mask, out, err);
  else if (!st)
    st = pf_neuron_acc_result(s.acc, strcmp(agg, "max") == 0, out, err);
  pf_neuron_acc_free(s.acc);
  pf_prompt_pairs_free(&pp);
  return st;
}

const pf_op pf_op_neuron_bias = {
    .name = "neuron_bias",
    .alias = NULL,
    .summary = "per-neuron bias scores over prompt pairs (OptiPFair analyze_neuron_bias)",
    .params = neuron_bias_params,
    .n_params = sizeof neuron_bias_params / sizeof neuron_bias_params[0],
    .returns = "{\"gate_proj_layer_0\": [I numbers], \"up_proj_layer_0\": [...], ...}: per "
               "activation, the mean (or max) over pairs of |mean over positions of prompt 1 - of "
               "prompt 2| per neuron, in hook-firing order; the input of fairness_scores",
    .run = neuron_bias_run,
};
