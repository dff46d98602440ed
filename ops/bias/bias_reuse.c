/* bias_reuse.c — what a bias_activations step takes from an earlier result
 * (parameter `reuse`, see bias.h).
 *
 * A model derived from another one (depth pruning above all) computes its leading
 * layers exactly as that model does (pf_forward_shared_layers): for the same prompt
 * pairs, run in the same two-row batches, the activations of those layers are the
 * other result's, bit for bit. They are taken from it (the same tensors, shared), and
 * the pass starts at the first layer it has to run: from the hidden states the other
 * result kept (keep_states), or, when everything the model has is shared, not at
 * all. Nothing here changes a number; a layer the other result did not capture, or
 * states it did not keep, only move the start back.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bias.h"
#include "bias_metrics.h"

static int64_t int_of(const pf_value *v) {
  return v && v->type == PF_V_INT ? v->u.i : -1;
}

pf_status pf_bias_reuse_check(const pf_value *reuse, uint32_t mask, size_t n_pairs, pf_err *err) {
  const pf_value *pairs = reuse && reuse->type == PF_V_MAP ? pf_map_get(reuse, "pairs") : NULL;
  if (!pairs || pairs->type != PF_V_LIST || !pf_map_model(reuse, "source"))
    return pf_err_set(err, PF_ERR_INVALID,
                      "reuse: expected the result of a bias_activations step (its pairs and the "
                      "model they ran on), got %s",
                      reuse ? pf_vtype_name(reuse->type) : "nothing");
  if (pairs->u.list.len != n_pairs)
    return pf_err_set(err, PF_ERR_INVALID,
                      "reuse: the result holds %zu prompt pairs, this step has %zu: reuse a "
                      "result of the same prompt pairs",
                      pairs->u.list.len, n_pairs);
  uint32_t had = 0;
  pf_status st = pf_bias_targets_from_value(pf_map_get(reuse, "target_layers"),
                                            pf_bias_targets_default(), &had, NULL, err);
  if (st) return pf_err_prefix(err, "reuse");
  for (int t = 0; t < PF_BIAS_TARGET_COUNT; t++)
    if ((mask & (1u << t)) && !(had & (1u << t)))
      return pf_err_set(err, PF_ERR_INVALID,
                        "reuse: the result did not capture %s, which this step captures (its "
                        "target_layers must include this step's)",
                        pf_bias_target_name((pf_bias_target)t));
  return PF_OK;
}

/* ids of a pair's prompt k in the result equal ids[n]. */
static int same_ids(const pf_value *pair, const char *key, const int32_t *ids, size_t n) {
  const pf_value *l = pair && pair->type == PF_V_MAP ? pf_map_get(pair, key) : NULL;
  if (!l || l->type != PF_V_LIST || l->u.list.len != n) return 0;
  for (size_t i = 0; i < n; i++)
    if (int_of(l->u.list.items[i]) != ids[i]) return 0;
  return 1;
}

/* Slice `layer` of a pair's kept states can start item it: shape [L - 1, batch * S, H]. */
static const pf_tensor *states_of(const pf_value *pair, const pf_bias_item *it, int64_t layer,
                                  int64_t hidden) {
  const pf_tensor *x = pf_map_tensor(pair, "states");
  size_t S = 0;
  for (size_t b = 0; b < it->batch; b++)
    S = it->n[b] > S ? it->n[b] : S;
  if (!x || !x->data || x->dtype != PF_DTYPE_F32 || x->ndim != 3 || x->shape[0] < layer + 1 ||
      x->shape[1] != (int64_t)(S * it->batch) || x->shape[2] != hidden)
    return NULL;
  return x;
}

pf_status pf_bias_reuse_start(const pf_value *reuse, const pf_model *m, const pf_forward *fm,
                              const uint8_t *flags, int need_states, const pf_bias_item *items,
                              size_t n, pf_bias_reuse *out, const pf_ctx *ctx, pf_err *err) {
  const pf_value *pairs = pf_map_get(reuse, "pairs");
  const pf_model *src = pf_map_model(reuse, "source");
  *out = (pf_bias_reuse){.pairs = pairs, .hidden = m->config.hidden_size};
  for (size_t i = 0; i < n; i++) {
    const pf_value *p = pairs->u.list.items[i];
    if (!same_ids(p, "ids1", items[i].ids[0], items[i].n[0]) ||
        !same_ids(p, "ids2", items[i].ids[1], items[i].n[1]))
      return pf_err_set(err, PF_ERR_INVALID,
                        "reuse: pair %zu is not the same token ids in the result (\"%.60s\"): "
                        "reuse a result of the same prompt pairs and tokenizer",
                        i + 1, pf_map_str(p, "prompt1", "?"));
  }
  /* the layers both compute alike; with both in memory, equal bytes count as the same */
  pf_forward *fs = NULL;
  pf_status st = pf_forward_new(src, &fs, err);
  if (st) return pf_err_prefix(err, "reuse");
  const int64_t shared = pf_forward_shared_layers(fs, fm, pf_forward_bytes_affordable(src, m, ctx));
  pf_forward_free(fs);
  /* every layer below the start that this step captures must be in the result */
  uint8_t *had = calloc((size_t)(shared ? shared : 1), 1);
  if (!had) return pf_err_set(err, PF_ERR_NOMEM, "reuse: out of memory");
  const pf_value *cl = pf_map_get(reuse, "captured_layers");
  for (size_t i = 0; cl && cl->type == PF_V_LIST && i < cl->u.list.len; i++) {
    int64_t l = int_of(cl->u.list.items[i]);
    if (l >= 0 && l < shared) had[l] = 1;
  }
  int64_t start = shared;
  for (int64_t l = 0; l < shared; l++)
    if ((!flags || flags[l]) && !had[l]) {
      start = l;
      break;
    }
  free(had);
  out->shared = shared;
  /* past the start there are layers to run (from the states entering layer `start`), or
   * states to keep (those of the layers below it, but the model's last): the result's */
  const int64_t last = start < m->n_layers ? start - 1 : need_states ? m->n_layers - 2 : -1;
  if (start > 0 && last >= 0) {
    out->states = 1;
    for (size_t i = 0; out->states && i < n; i++)
      out->states = states_of(pairs->u.list.items[i], &items[i], last, out->hidden) != NULL;
    if (!out->states) {
      pf_ctx_log(ctx, "bias_activations: the reused result kept no hidden states (keep_states): "
                      "every layer runs again");
      start = 0;
    }
  }
  out->start = start;
  char span[48];
  snprintf(span, sizeof span, start > 1 ? "layers 0-%lld" : "layer 0", (long long)start - 1);
  if (start > 0)
    pf_ctx_log(ctx, "bias_activations: %s (of %lld) taken from the reused result%s", span,
               (long long)m->n_layers, start >= m->n_layers ? "; nothing to run" : "");
  else if (shared == 0)
    pf_ctx_log(ctx, "bias_activations: the reused result's model shares no layer with this one");
  return PF_OK;
}

pf_status pf_bias_reuse_fill(const pf_bias_reuse *r, uint32_t mask, const uint8_t *flags,
                             const pf_bias_item *items, size_t n, pf_tensor *const *states,
                             pf_err *err) {
  static const char *const keys[2] = {"act1", "act2"};
  pf_status st = PF_OK;
  for (size_t i = 0; !st && i < n; i++) {
    const pf_value *pair = r->pairs->u.list.items[i];
    for (size_t b = 0; !st && b < items[i].batch && b < 2; b++) {
      const pf_value *from = pf_map_get(pair, keys[b]);
      const int is_map = from && from->type == PF_V_MAP;
      size_t *order = is_map ? pf_bias_key_order(from) : NULL; /* hook order, also after Lua */
      if (!(items[i].acts[b] = pf_value_map()) || (is_map && !order))
        st = pf_err_set(err, PF_ERR_NOMEM, "out of memory");
      for (size_t j = 0; !st && is_map && j < from->u.map.len; j++) {
        const size_t k = order[j];
        const char *key = from->u.map.keys[k];
        int t = pf_bias_key_target(key);
        int64_t l = pf_bias_key_layer(key);
        if (t < 0 || !(mask & (1u << t)) || l < 0 || l >= r->start || (flags && !flags[l]))
          continue;
        const pf_value *v = from->u.map.vals[k];
        const pf_tensor *a = v && v->type == PF_V_TENSOR ? v->u.tensor : NULL;
        if (!a || !a->data) {
          st = pf_err_set(err, PF_ERR_INVALID,
                          "reuse: pair %zu: %s of the result is not held any more", i + 1, key);
          break;
        }
        pf_value_retain(from->u.map.vals[k]);
        if (pf_map_set(items[i].acts[b], key, from->u.map.vals[k]) != PF_OK)
          st = pf_err_set(err, PF_ERR_NOMEM, "out of memory");
      }
      free(order);
    }
    if (st || !states || !states[i] || r->start == 0) continue;
    /* the kept states of the layers below the start: the result's own */
    const pf_tensor *x = pf_map_tensor(pair, "states");
    const int64_t rows = states[i]->shape[1] * states[i]->shape[2];
    const int64_t upto = r->start < states[i]->shape[0] ? r->start : states[i]->shape[0];
    if (!x || !x->data || x->shape[1] * x->shape[2] != rows || x->shape[0] < upto)
      st = pf_err_set(err, PF_ERR_INVALID, "reuse: pair %zu: the result's states do not match",
                      i + 1);
    else
      memcpy(pf_tensor_mutable_data(states[i]), x->data, sizeof(float) * (size_t)(upto * rows));
  }
  return st;
}

pf_status pf_bias_reuse_states(void *ud, int64_t index, const pf_batch *b, float *x, pf_err *err) {
  const pf_bias_reuse *r = ud;
  const pf_tensor *t = pf_map_tensor(r->pairs->u.list.items[index], "states");
  const int64_t rows = b->batch * b->seq;
  if (!t || !t->data || t->shape[1] != rows || t->shape[2] != r->hidden)
    return pf_err_set(err, PF_ERR_INVALID, "reuse: pair %lld: no states of [%lld, %lld]",
                      (long long)index + 1, (long long)rows, (long long)r->hidden);
  memcpy(x, (const float *)t->data + (size_t)(r->start - 1) * (size_t)(rows * r->hidden),
         sizeof(float) * (size_t)(rows * r->hidden));
  return PF_OK;
}
