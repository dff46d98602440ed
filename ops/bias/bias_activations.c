/* bias_activations.c — op "bias_activations": OptiPFair's get_activation_pairs
 * (reference §8.1-8.3) for a list of prompt pairs, restricted to the layers
 * select_layers picks (§8.6) — every type has one activation per layer, so
 * position p of each sorted per-type list is model layer p, and only those
 * layers are captured. Prompts are tokenized with special tokens (BOS) as
 * tokenizer(prompt) does; the two prompts of a pair run as one forward pass of
 * two right-padded rows (the weights are read once; causal attention keeps
 * each row's real positions equal to the prompt's own forward pass up to float
 * rounding). Token labels are aligned with the
 * activations (pfrun's documented difference from OptiPFair's PCA labels).
 * In a dry run the prompts are tokenized but nothing runs: the activations are
 * planned tensors (shape only). Result format: ops/bias_format.md. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bias.h"
#include "dist.h"
#include "fsutil.h"
#include "opdata.h"

static const pf_param_spec bias_activations_params[] = {
    {"model", PF_P_MODEL, 1, NULL, NULL, 0, 0, "the model to run"},
    {"prompt_pairs", PF_P_ANY, 0, "default", NULL, 0, 0,
     "\"default\" (OptiPFair's 7 DEFAULT_PROMPT_PAIRS), a list of [prompt1, prompt2] or "
     "{prompt1, prompt2}, a .jsonl file of {\"prompt1\", \"prompt2\"} lines, or {template, "
     "attribute_category, attribute_pairs} (generate_prompt_pairs; template may name a "
     "PROMPT_TEMPLATES entry)"},
    {"layers", PF_P_ANY, 0, "all", NULL, 0, 0,
     "which layers to capture (default all, as OptiPFair's visualize_bias captures before it "
     "computes metrics; charts select their own layers), OptiPFair's select_layers: "
     "\"first_middle_last\" (0, L//2, L-1), \"all\", or a list of positions in the sorted per-type "
     "layer list (out-of-range positions "
     "are dropped; \"0,3\" works too); any other value selects the first layer only, as in "
     "OptiPFair"},
    {"target_layers", PF_P_ANY, 0, NULL, NULL, 0, 0,
     "activation types to capture: attention, mlp_output, gate_proj, up_proj, down_proj, "
     "input_norm, down_proj_input (default: all but down_proj_input)"},
    {"reuse", PF_P_ANY, 0, NULL, NULL, 0, 0,
     "an earlier bias_activations result (its step id) on the model this one was derived "
     "from, e.g. before depth pruning, with the same prompt pairs and at least these "
     "target_layers: the layers both models compute alike are taken from it instead of run "
     "again (the same numbers); past a removed middle layer the pass starts from the states "
     "it kept (keep_states), else every layer runs"},
    {"keep_states", PF_P_BOOL, 0, "false", NULL, 0, 0,
     "keep each pair's hidden states leaving every layer but the last in the result "
     "(\"states\": hidden_size floats per token and layer), so that a later step's reuse can "
     "start past a removed middle layer"},
};

/* The layer flags [L] of the selection; error when it selects nothing. */
static pf_status layer_flags(const pf_model *m, const pf_value *given, uint8_t **flags,
                             pf_value **captured, pf_err *err) {
  pf_layer_sel sel;
  int64_t *idx = NULL, *pos = NULL;
  *flags = NULL;
  *captured = NULL;
  pf_status st = pf_layer_sel_from_value(given, &sel, &idx, err);
  if (st) return st;
  size_t cap = (size_t)m->n_layers + sel.n + 3;
  pos = malloc(sizeof *pos * cap);
  *flags = calloc((size_t)(m->n_layers ? m->n_layers : 1), 1);
  *captured = pf_value_list();
  if (!pos || !*flags || !*captured) st = pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  size_t k = st ? 0 : pf_bias_select_layers(m->n_layers, &sel, pos);
  for (size_t i = 0; i < k; i++)
    (*flags)[pos[i]] = 1;
  for (int64_t l = 0; !st && l < m->n_layers; l++)
    if ((*flags)[l] && pf_list_push(*captured, pf_value_int(l)) != PF_OK)
      st = pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  if (!st && k == 0)
    st = pf_err_set(err, PF_ERR_INVALID,
                    "layers: the selection picks no layer (the model has %lld layers: positions "
                    "0-%lld)",
                    (long long)m->n_layers, (long long)m->n_layers - 1);
  free(idx);
  free(pos);
  if (st) {
    free(*flags);
    *flags = NULL;
    pf_value_release(*captured);
    *captured = NULL;
  }
  return st;
}

static pf_value *int_list(const int32_t *ids, size_t n) {
  pf_value *l = pf_value_list();
  for (size_t i = 0; l && i < n; i++)
    if (pf_list_push(l, pf_value_int(ids[i])) != PF_OK) {
      pf_value_release(l);
      return NULL;
    }
  return l;
}

typedef struct run_state {
  const pf_model *m;
  pf_tokenizer *tok;
  pf_forward *fwd;
  uint32_t mask;
  const uint8_t *flags;
  const pf_value *reuse; /* an earlier result, or NULL */
  int keep_states;
  pf_bias_blocks *blocks; /* where kept states go */
  int64_t reused;         /* layers taken from the reused result */
  const pf_ctx *ctx;
} run_state;

/* The two prompts of a pair, encoded, labelled and captured. */
typedef struct pair_data {
  int32_t *ids[2];
  size_t n[2];
  pf_value *tokens[2], *acts[2];
  pf_tensor *states; /* keep_states: [L - 1, 2 * S, H] */
} pair_data;

static void pair_data_free(pair_data *d) {
  for (int k = 0; k < 2; k++) {
    free(d->ids[k]);
    pf_value_release(d->tokens[k]);
    pf_value_release(d->acts[k]);
  }
  pf_tensor_release(d->states);
}

/* Both prompts of a pair, encoded and labelled (a dry run also plans the
 * activation shapes; a real run captures every pair in one pass, run_pairs), and
 * with keep_states, when the pair is this rank's (`mine`), its states tensor. */
static pf_status encode_pair(const run_state *r, const pf_prompt_pair *p, pair_data *d, int mine,
                             pf_err *err) {
  const char *pr[2] = {p->prompt1, p->prompt2};
  pf_status st = PF_OK;
  for (int k = 0; !st && k < 2; k++) {
    st = pf_encode_prompt(r->m, r->tok, pr[k], &d->ids[k], &d->n[k], err);
    if (!st) st = pf_bias_token_labels(r->tok, d->ids[k], d->n[k], &d->tokens[k], err);
    if (st) pf_err_prefix(err, "prompt%d \"%.80s\"", k + 1, pr[k]);
  }
  for (int k = 0; !st && !r->fwd && k < 2; k++) /* dry run: shapes only */
    st = pf_bias_plan(r->m, d->n[k], r->mask, r->flags, &d->acts[k], err);
  if (!st && mine && r->keep_states && r->m->n_layers > 1) { /* [L - 1, 2 * S, H] */
    const int64_t S = (int64_t)(d->n[0] > d->n[1] ? d->n[0] : d->n[1]);
    const int64_t shape[3] = {r->m->n_layers - 1, 2 * S, r->m->config.hidden_size};
    st = r->fwd ? pf_bias_blocks_tensor(r->blocks, PF_DTYPE_F32, 3, shape, &d->states, err)
                : pf_tensor_new_planned(PF_DTYPE_F32, 3, shape, &d->states, err);
  }
  return st;
}

/* {index, prompt1, prompt2, ids1, ids2, tokens1, tokens2, act1, act2}; takes d's values. */
static pf_value *pair_value(const pf_prompt_pair *p, size_t i, pair_data *d) {
  pf_value *pair = pf_value_map();
  pf_status st = pair ? pf_map_set_int(pair, "index", (int64_t)i + 1) : PF_ERR_NOMEM;
  if (!st) st = pf_map_set_str(pair, "prompt1", p->prompt1);
  if (!st) st = pf_map_set_str(pair, "prompt2", p->prompt2);
  if (!st) st = pf_map_set(pair, "ids1", int_list(d->ids[0], d->n[0]));
  if (!st) st = pf_map_set(pair, "ids2", int_list(d->ids[1], d->n[1]));
  if (!st && d->states) st = pf_map_set(pair, "states", pf_value_tensor(d->states));
  static const char *const keys[2][2] = {{"tokens1", "tokens2"}, {"act1", "act2"}};
  for (int j = 0; j < 2; j++)
    for (int k = 0; k < 2; k++) {
      pf_value **v = j ? &d->acts[k] : &d->tokens[k];
      if (st) continue;
      st = pf_map_set(pair, keys[j][k], *v); /* steals *v, also on failure */
      *v = NULL;
    }
  if (st) {
    pf_value_release(pair);
    return NULL;
  }
  return pair;
}

/* The pairs' activations: one pass (MPI: this rank's share of the pairs), after the
 * layers taken from a reused result and keeping the states when asked. */
static pf_status capture_pairs(run_state *r, pair_data *d, const pf_bias_item *items, size_t n,
                               pf_err *err) {
  if (!r->reuse && !r->keep_states)
    return pf_bias_capture_share(r->fwd, items, n, r->mask, r->flags, "bias_activations", r->ctx,
                                 err);
  pf_tensor **states = calloc(n ? n : 1, sizeof *states);
  pf_bias_reuse re = {0};
  pf_status st = states ? PF_OK : pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  for (size_t i = 0; states && i < n; i++)
    states[i] = d[i].states;
  if (!st && r->reuse)
    st = pf_bias_reuse_start(r->reuse, r->m, r->fwd, r->flags, r->keep_states, items, n, &re,
                             r->ctx, err);
  if (!st && re.start > 0) st = pf_bias_reuse_fill(&re, r->mask, r->flags, items, n, states, err);
  r->reused = re.start;
  const pf_bias_pass opt = {.n_layers = r->m->n_layers,
                            .start = re.start,
                            .start_fn = re.start > 0 ? pf_bias_reuse_states : NULL,
                            .start_ud = &re,
                            .states = r->keep_states ? states : NULL};
  if (!st && re.start < r->m->n_layers)
    st = pf_bias_capture_from(r->fwd, items, n, r->mask, r->flags, "bias_activations", &opt, r->ctx,
                              err);
  free(states);
  return st;
}

/* Every pair encoded, then both prompts of each pair as a right-padded batch of
 * two rows (the weights are read once per pair, or once for all pairs when the
 * pass is layer-major; see pf_bias_capture_items), then the pair values. */
static pf_status run_pairs(run_state *r, const pf_prompt_pairs *pp, pf_value *pairs, pf_err *err) {
  pair_data *d = calloc(pp->n ? pp->n : 1, sizeof *d);
  pf_bias_item *items = calloc(pp->n ? pp->n : 1, sizeof *items);
  pf_bias_blocks blocks;
  pf_bias_blocks_init(&blocks, r->ctx);
  r->blocks = &blocks;
  pf_status st = d && items ? pf_model_tokenizer(r->m, &r->tok, err)
                            : pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  if (!st && !(r->ctx && r->ctx->dry_run)) st = pf_forward_new(r->m, &r->fwd, err);
  /* MPI: each rank captures its share of the pairs, then every rank gets all */
  int64_t lo = 0, hi = (int64_t)pp->n;
  if (r->fwd) pf_dist_range((int64_t)pp->n, &lo, &hi);
  for (size_t i = 0; !st && i < pp->n; i++) {
    const int mine = (int64_t)i >= lo && (int64_t)i < hi; /* states only for this rank's */
    if ((st = encode_pair(r, &pp->items[i], &d[i], mine, err)))
      pf_err_prefix(err, "pair %zu", i + 1);
    items[i] = (pf_bias_item){.ids = (const int32_t *const *)d[i].ids, .n = d[i].n, .batch = 2,
                              .acts = d[i].acts};
  }
  if (!st && r->fwd) st = capture_pairs(r, d, items, pp->n, err);
  pf_value *mine = st ? NULL : pf_value_list(), *all = NULL;
  if (!st && !mine) st = pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  for (size_t i = (size_t)lo; !st && i < (size_t)hi; i++) {
    pf_value *pair = pair_value(&pp->items[i], i, &d[i]);
    if (!pair || pf_list_push(mine, pair) != PF_OK)
      st = pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  }
  if (!st && pf_dist_size() > 1 && r->fwd) {
    /* the other ranks' activations go into capture blocks (spilled past the budget) */
    pf_bias_blocks blocks;
    pf_bias_blocks_init(&blocks, r->ctx);
    st = pf_dist_allgather_list(mine, pf_bias_blocks_tensor, &blocks, &all, err);
    pf_bias_blocks_done(&blocks);
    if (!st && blocks.spilled)
      pf_ctx_log(r->ctx,
                 "bias_activations: %.2f GB of the other ranks' activations are kept in "
                 "page-cache files under %s (past %.2f GB in memory)",
                 (double)blocks.spilled / 1e9, pf_scratch_dir(), (double)blocks.spill_after / 1e9);
    pf_value_release(mine);
    mine = all;
  }
  for (size_t i = 0; !st && i < mine->u.list.len; i++) {
    pf_value_retain(mine->u.list.items[i]);
    if (pf_list_push(pairs, mine->u.list.items[i]) != PF_OK)
      st = pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  }
  pf_value_release(mine);
  pf_bias_blocks_done(&blocks);
  r->blocks = NULL; /* this frame's */
  for (size_t i = 0; d && i < pp->n; i++)
    pair_data_free(&d[i]);
  free(d);
  free(items);
  pf_forward_free(r->fwd);
  pf_tokenizer_free(r->tok);
  r->fwd = NULL;
  r->tok = NULL;
  return st;
}

/* {model, layers, target_layers, captured_layers}: consumes targets and captured. */
static pf_value *result_head(const pf_model *m, const pf_value *params, pf_value *targets,
                             pf_value *captured) {
  pf_value *res = pf_value_map();
  pf_status st = res ? pf_map_set_str(res, "model", m->name ? m->name : "") : PF_ERR_NOMEM;
  if (!st) st = pf_map_set(res, "source", pf_value_model((pf_model *)m)); /* for reuse */
  if (!st) st = pf_map_set(res, "layers", pf_value_copy(pf_map_get(params, "layers")));
  if (!st) {
    st = pf_map_set(res, "target_layers", targets);
    targets = NULL;
  }
  if (!st) {
    st = pf_map_set(res, "captured_layers", captured);
    captured = NULL;
  }
  pf_value_release(targets);
  pf_value_release(captured);
  if (st) {
    pf_value_release(res);
    return NULL;
  }
  return res;
}

static pf_status bias_activations_run(const pf_op *op, const pf_value *params, pf_value **out,
                                      const pf_ctx *ctx, pf_err *err) {
  run_state r = {.m = pf_map_model(params, "model"), .ctx = ctx};
  pf_prompt_pairs pp = {0};
  pf_value *targets = NULL, *captured = NULL, *res = NULL, *pairs = NULL;
  uint8_t *flags = NULL;
  pf_status st = pf_prompt_pairs_from_value(pf_map_get(params, "prompt_pairs"), &pp, err);
  if (!st && pp.n == 0) st = pf_err_set(err, PF_ERR_INVALID, "prompt_pairs cannot be empty");
  if (!st)
    st = pf_bias_targets_from_value(pf_map_get(params, "target_layers"), pf_bias_targets_default(),
                                    &r.mask, &targets, err);
  if (!st) st = layer_flags(r.m, pf_map_get(params, "layers"), &flags, &captured, err);
  r.flags = flags;
  r.keep_states = pf_map_bool(params, "keep_states", 0);
  r.reuse = pf_map_has(params, "reuse") ? pf_map_get(params, "reuse") : NULL;
  if (!st && r.reuse) st = pf_bias_reuse_check(r.reuse, r.mask, pp.n, err);
  if (!st) {
    res = result_head(r.m, params, targets, captured); /* consumes both */
    targets = captured = NULL;
    pairs = pf_value_list();
    if (!res || !pairs) st = pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  }
  if (!st) st = run_pairs(&r, &pp, pairs, err);
  if (!st) {
    st = pf_map_set(res, "pairs", pairs) ? pf_err_set(err, PF_ERR_NOMEM, "out of memory") : PF_OK;
    pairs = NULL;
  }
  if (!st && r.reuse && !(ctx && ctx->dry_run) &&
      pf_map_set_int(res, "reused_layers", r.reused) != PF_OK)
    st = pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  pf_value_release(targets);
  pf_value_release(captured);
  pf_value_release(pairs);
  pf_prompt_pairs_free(&pp);
  free(flags);
  if (st) {
    pf_value_release(res);
    return st;
  }
  *out = res;
  return PF_OK;
}

const pf_op pf_op_bias_activations = {
    .name = "bias_activations",
    .alias = NULL,
    .summary = "activations of prompt pairs at every tap (OptiPFair get_activation_pairs)",
    .params = bias_activations_params,
    .n_params = sizeof bias_activations_params / sizeof bias_activations_params[0],
    .returns = "{model (name), source (the model), layers (as given), target_layers, "
               "captured_layers (model layer numbers), pairs: [{index, prompt1, prompt2, ids1, "
               "ids2, states (keep_states), tokens1, tokens2, act1, act2}], reused_layers (reuse: "
               "how many layers were taken from the reused result)} where act1/act2 map "
               "OptiPFair activation names (\"mlp_output_layer_3\") to float32 tensors [S, D] in "
               "hook-firing order; see ops/bias/bias_format.md",
    .run = bias_activations_run,
};
