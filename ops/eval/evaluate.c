/* evaluate.c — op "evaluate": perplexity on text, agreement with a parent model,
 * and generation speed.
 *
 * Perplexity = exp(mean next-token negative log-likelihood) over every predicted
 * position whose target is a real (unpadded) token. With `compare` (the parent,
 * e.g. the unpruned model) the same positions also give, as llama.cpp's
 * perplexity tool reports them, the mean KL divergence KL(P_parent || P_model)
 * of the next-token distributions and the top-1 agreement (share of positions
 * where both models' most likely token is the same). Rows are compared one
 * sequence at a time, so only one [seq, vocab] block of parent log-probabilities
 * is held. The layers the model shares with the parent (pf_forward_shared_layers: a
 * depth-pruned model's layers before the first one removed, the same tensors or, when
 * both models fit in memory, the same bytes) run once: the parent's
 * pass keeps its states after them, and the model's pass starts there. Speed follows OptiPFair's
 * time_inference / compare_models_inference (reference §12, same keys).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dist.h"
#include "forward.h"
#include "kernels/kernels.h"
#include "ophelp.h"
#include "opdata.h"

static const pf_param_spec evaluate_params[] = {
    {"model", PF_P_MODEL, 1, NULL, NULL, 0, 0, "the model to evaluate (e.g. the pruned one)"},
    {"compare", PF_P_MODEL, 0, NULL, NULL, 0, 0,
     "a parent model (e.g. the unpruned one): adds its perplexity, KL divergence and top-1 "
     "agreement on the same text, and a side-by-side speed comparison"},
    PF_DATA_PARAMS(0, "0", "4"),
    {"prompt", PF_P_STR, 0, NULL, NULL, 0, 0,
     "prompt for the generation-speed measurement (none: speed is not measured)"},
    {"max_new_tokens", PF_P_INT, 0, "100", NULL, 1, 1e7, "tokens generated per timed run"},
    {"num_runs", PF_P_INT, 0, "5", NULL, 1, 1000, "timed generation runs"},
    {"warmup_runs", PF_P_INT, 0, "2", NULL, 0, 1000, "untimed warm-up runs before them"},
};

/* Accumulators of one evaluation pass. */
typedef struct eval_acc {
  const pf_batch *b;
  double nll;         /* sum of -log p(target) */
  int64_t count;      /* predicted positions */
  float *row;         /* [vocab] scratch (model pass) */
  float *parent_lp;   /* [seq, vocab] parent log-probs (compare pass), or NULL */
  int store_parent;   /* this pass stores into parent_lp */
  double kl;          /* sum over positions of KL(parent || model) */
  int64_t agree;      /* positions with equal argmax */
} eval_acc;

/* Target of flattened position r, or -1 when nothing is predicted there. */
static int32_t target_of(const pf_batch *b, int64_t r) {
  int64_t s = r % b->seq;
  if (s + 1 >= b->seq) return -1;
  if (b->mask && (!b->mask[r] || !b->mask[r + 1])) return -1;
  return b->ids[r + 1];
}

static int64_t argmax(const float *x, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; i++)
    if (x[i] > x[best]) best = i;
  return best;
}

static pf_status eval_logits(void *ud, int64_t row0, int64_t nrows, const float *logits,
                             int64_t vocab, pf_err *err) {
  eval_acc *a = ud;
  for (int64_t j = 0; j < nrows; j++) {
    int64_t r = row0 + j;
    int32_t t = target_of(a->b, r);
    if (t < 0) continue;
    float *lp = a->store_parent ? a->parent_lp + (r % a->b->seq) * vocab : a->row;
    pf_log_softmax_row(lp, logits + j * vocab, vocab);
    a->nll -= lp[t];
    a->count++;
    if (!a->parent_lp || a->store_parent) continue;
    const float *pp = a->parent_lp + (r % a->b->seq) * vocab;
    double kl = 0;
    for (int64_t v = 0; v < vocab; v++)
      kl += exp((double)pp[v]) * ((double)pp[v] - (double)lp[v]);
    a->kl += kl;
    a->agree += argmax(pp, vocab) == argmax(lp, vocab);
  }
  return PF_OK;
}

typedef struct eval_out {
  eval_acc model, parent;
} eval_out;

/* The parent's side of a comparison, kept for every model compared with it (a
 * reconstructed model and its variant before recovery): its runner and what its one
 * pass left. */
typedef struct eval_parent {
  const pf_model *m;
  pf_forward *f;
  pf_states *final; /* its final states of every row; NULL until its pass ran */
  pf_states *start; /* its states leaving layer at - 1 when that is not its last layer */
  int64_t at;       /* a model sharing at least `at` leading layers with it starts there
                       (from start, or from final when at is its layer count); 0: none */
  int by_bytes;     /* both models fit in memory: tensors holding the same bytes count as
                       shared (a pruned checkpoint loaded from disk beside its parent) */
} eval_parent;

static void eval_parent_free(eval_parent *p) {
  pf_states_free(p->final);
  pf_states_free(p->start);
  pf_forward_free(p->f);
}

/* One pass of the model (after, with a parent, the parent's pass if it has not run). */
typedef struct eval_pass {
  pf_forward *fm;
  eval_parent *par; /* NULL: no parent */
  eval_out *o;
  float *px; /* [seq, H]: one row of the parent's final states */
} eval_pass;

static pf_status start_tap(void *ud, const pf_tap_event *ev, pf_err *err) {
  return pf_states_put(((eval_parent *)ud)->start, ev->index, ev->data, err);
}

static pf_status start_states(void *ud, int64_t i, const pf_batch *b, float *x, pf_err *err) {
  const eval_parent *par = ((eval_pass *)ud)->par;
  (void)b;
  return pf_states_get(par->start ? par->start : par->final, i, x, err);
}

static pf_status parent_final(void *ud, int64_t i, const pf_batch *b, const float *x,
                              pf_err *err) {
  (void)b;
  return pf_states_put(((eval_parent *)ud)->final, i, x, err);
}

/* Logits of a batch; with a parent, a row (the parent's first, as each position
 * compares the two distributions). */
static pf_status model_final(void *ud, int64_t i, const pf_batch *b, const float *x, pf_err *err) {
  eval_pass *e = ud;
  eval_out *o = e->o;
  o->parent.b = o->model.b = b;
  if (!e->par) return pf_forward_logits(e->fm, x, b->batch * b->seq, eval_logits, &o->model, err);
  pf_status st = pf_states_get(e->par->final, i, e->px, err);
  if (!st) st = pf_forward_logits(e->par->f, e->px, b->seq, eval_logits, &o->parent, err);
  if (!st) st = pf_forward_logits(e->fm, x, b->seq, eval_logits, &o->model, err);
  return st;
}

/* The parent's pass, once: its final states of every row and, when the model shares
 * its first layers, what the model's pass starts from. Each (row, layer) step costs the
 * same in both models, so the shared layers are run once instead of twice. */
static pf_status parent_pass(eval_parent *par, const pf_model *m, const pf_forward *fm,
                             const pf_batch *batches, int64_t nb, int64_t *shared,
                             const pf_ctx *ctx, pf_err *err) {
  if (par->final) return PF_OK;
  pf_pass pass = {.batches = batches,
                  .n = nb,
                  .final_fn = parent_final,
                  .final_ud = par,
                  .what = "evaluate (compare)",
                  .log_plan = 1,
                  .split = 1};
  pf_pass_info info;
  pf_pass_plan(par->f, &pass, ctx, &info);
  info.states_in_file = info.state_bytes > info.budget / 4;
  par->by_bytes = pf_forward_bytes_affordable(par->m, m, ctx);
  const int64_t L = par->m->n_layers, k = pf_forward_shared_layers(par->f, fm, par->by_bytes);
  uint8_t *at = NULL;
  pf_taps taps = {.points = 1u << PF_TAP_LAYER_OUTPUT, .fn = start_tap, .user_data = par};
  pf_status st = pf_pass_states_new(par->f, &pass, &info, &par->final, err);
  if (!st && k > 0 && k < L) {
    if (!(at = calloc((size_t)L, 1))) st = pf_err_set(err, PF_ERR_NOMEM, "evaluate: out of memory");
    pf_pass_info both = info; /* the two stores together within the quarter of the budget */
    both.states_in_file = info.states_in_file || info.state_bytes > info.budget / 8;
    if (!st) st = pf_pass_states_new(par->f, &pass, &both, &par->start, err);
    if (!st) {
      at[k - 1] = 1;
      taps.layers = at;
      pass.taps = &taps;
      pass.group_taps = 1; /* start_tap keeps its states by ev->index */
    }
  }
  if (!st) st = pf_forward_pass(par->f, &pass, &info, ctx, err);
  free(at);
  if (!st) {
    par->at = *shared = k;
    return PF_OK;
  }
  pf_states_free(par->final); /* nothing half-made is taken for the pass's results */
  pf_states_free(par->start);
  par->final = par->start = NULL;
  return pf_err_prefix(err, "compare model");
}

/* The dataset's batches, or with a parent every row as a batch of its own (one
 * [seq, vocab] block of parent log-probabilities at a time). */
static pf_status eval_batches(const pf_dataset *ds, int rows, pf_batch **out, int64_t *n,
                              pf_err *err) {
  pf_batch *b = NULL;
  pf_status st = pf_dataset_batches(ds, &b, err);
  *n = pf_dataset_batch_count(ds);
  if (st || !rows) {
    *out = b;
    return st;
  }
  int64_t nr = 0;
  for (int64_t i = 0; i < *n; i++)
    nr += b[i].batch;
  pf_batch *r = calloc((size_t)(nr > 0 ? nr : 1), sizeof *r);
  if (!r) st = pf_err_set(err, PF_ERR_NOMEM, "evaluate: out of memory");
  for (int64_t i = 0, k = 0; !st && i < *n; i++)
    for (int64_t j = 0; j < b[i].batch; j++)
      r[k++] = (pf_batch){.batch = 1, .seq = b[i].seq, .ids = b[i].ids + j * b[i].seq,
                          .mask = b[i].mask ? b[i].mask + j * b[i].seq : NULL};
  free(b);
  *out = r;
  *n = nr;
  return st;
}

/* MPI: the sums of every rank's share, added in rank order. */
static pf_status reduce_acc(eval_out *o, pf_err *err) {
  double d[4] = {o->model.nll, o->model.kl, o->parent.nll, o->parent.kl};
  int64_t c[3] = {o->model.count, o->model.agree, o->parent.count};
  pf_status st = pf_dist_sum_f64(d, 4, err);
  if (!st) st = pf_dist_sum_i64(c, 3, err);
  o->model.nll = d[0], o->model.kl = d[1], o->parent.nll = d[2], o->parent.kl = d[3];
  o->model.count = c[0], o->model.agree = c[1], o->parent.count = c[2];
  return st;
}

static pf_status perplexity_pass(const pf_model *m, eval_parent *par, const pf_dataset *ds,
                                 eval_out *o, const pf_ctx *ctx, pf_err *err) {
  int64_t vocab = m->config.vocab_size, seq = pf_dataset_stats(ds).max_seq, nb = 0;
  eval_pass e = {.o = o, .par = par};
  pf_batch *batches = NULL;
  o->model.row = malloc(sizeof(float) * (size_t)vocab);
  if (par) {
    o->parent.parent_lp = o->model.parent_lp = malloc(sizeof(float) * (size_t)(seq * vocab));
    o->parent.store_parent = 1;
    e.px = malloc(sizeof(float) * (size_t)(seq * par->m->config.hidden_size));
  }
  pf_status st = o->model.row && (!par || (o->parent.parent_lp && e.px))
                     ? PF_OK
                     : pf_err_set(err, PF_ERR_NOMEM, "evaluate: out of memory for log-probs");
  if (!st) st = eval_batches(ds, par != NULL, &batches, &nb, err);
  if (!st) st = pf_forward_new(m, &e.fm, err);
  int64_t shared = -1; /* set by the parent's pass when it runs now, for this model */
  if (!st && par) st = parent_pass(par, m, e.fm, batches, nb, &shared, ctx, err);
  /* the parent's states serve this model from par->at on when it shares that many layers */
  if (!st && par && par->at > 0 && shared < 0)
    shared = pf_forward_shared_layers(par->f, e.fm, par->by_bytes);
  const int64_t start = par && par->at > 0 && shared >= par->at ? par->at : 0;
  pf_pass pass = {.batches = batches,
                  .n = nb,
                  .final_fn = model_final,
                  .final_ud = &e,
                  .what = "evaluate",
                  .log_plan = 1,
                  .split = 1,
                  .start = start,
                  .start_fn = start_states,
                  .start_ud = &e};
  pf_pass_info info;
  if (!st) st = pf_forward_pass(e.fm, &pass, &info, ctx, err);
  if (!st && start)
    pf_ctx_log(ctx,
               "evaluate: the model's first %lld layers are the compared model's: its pass "
               "starts at layer %lld from the states that model's pass left there",
               (long long)start, (long long)start);
  if (!st) st = reduce_acc(o, err);
  if (!st && !isfinite(o->model.nll))
    pf_ctx_log(ctx,
               "evaluate: %s: the negative log-likelihood is not finite (%g): the model's "
               "logits hold NaN or inf (weights with NaN or inf, or float16 overflow?)",
               m->name ? m->name : "model", o->model.nll);
  pf_forward_free(e.fm);
  free(batches);
  free(e.px);
  free(o->model.row);
  free(o->model.parent_lp);
  return st;
}

static pf_status put_ppl(pf_value *v, const eval_acc *a, pf_err *err) {
  if (a->count == 0)
    return pf_err_set(err, PF_ERR_INVALID,
                      "evaluate: no position to predict (every sample has fewer than 2 tokens)");
  double mean = a->nll / (double)a->count;
  pf_status st = pf_map_set_num(v, "perplexity", exp(mean));
  if (!st) st = pf_map_set_num(v, "nll", mean);
  if (!st) st = pf_map_set_int(v, "predicted_tokens", a->count);
  return st ? pf_err_set(err, st, "out of memory") : PF_OK;
}

/* A reconstructed model (prune_width reconstruct: true) keeps its variant before
 * recovery: the same figures for it, and the share of the parent's perplexity
 * gap the recovery closed, (ppl_before - ppl_after) / (ppl_before - ppl_parent). */
static pf_status add_recovery(const pf_model *m, eval_parent *par, const pf_dataset *ds,
                              const eval_out *after, pf_value *v, const pf_ctx *ctx, pf_err *err) {
  eval_out o = {0};
  pf_status st = perplexity_pass(m->unrecovered, par, ds, &o, ctx, err);
  if (st) return pf_err_prefix(err, "before recovery");
  pf_value *r = pf_value_map();
  if (!r) return pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  double nb = o.model.nll / (double)o.model.count;
  double na = after->model.nll / (double)after->model.count;
  st = pf_map_set_num(r, "perplexity_before", exp(nb));
  if (!st) st = pf_map_set_num(r, "perplexity_after", exp(na));
  if (!st) st = pf_map_set_num(r, "nll_before", nb);
  if (!st) st = pf_map_set_num(r, "nll_after", na);
  if (!st && par) {
    double np = o.parent.nll / (double)o.parent.count, gap = exp(nb) - exp(np);
    double n1 = (double)o.model.count, n2 = (double)after->model.count;
    st = pf_map_set_num(r, "parent_perplexity", exp(np));
    if (!st) st = pf_map_set_num(r, "kl_before", o.model.kl / n1);
    if (!st) st = pf_map_set_num(r, "kl_after", after->model.kl / n2);
    if (!st) st = pf_map_set_num(r, "top1_before", (double)o.model.agree / n1);
    if (!st) st = pf_map_set_num(r, "top1_after", (double)after->model.agree / n2);
    if (!st && gap > 0) st = pf_map_set_num(r, "gap_recovered", (exp(nb) - exp(na)) / gap);
  }
  if (!st) st = pf_map_set(v, "recovery", r);
  else pf_value_release(r);
  return st ? pf_err_set(err, st, "out of memory") : PF_OK;
}

static pf_status add_perplexity(const pf_model *m, const pf_model *parent, const pf_value *params,
                                pf_value *v, const pf_ctx *ctx, pf_err *err) {
  pf_tokenizer *tok = NULL;
  pf_dataset *ds = NULL;
  eval_out o = {0};
  eval_parent par = {.m = parent}; /* one pass of the parent serves both models */
  pf_status st = pf_params_dataset(m, params, &tok, &ds, err);
  if (!st && !(ctx && ctx->dry_run)) {
    if (parent) st = pf_forward_new(parent, &par.f, err);
    if (!st) st = perplexity_pass(m, parent ? &par : NULL, ds, &o, ctx, err);
    if (!st && m->unrecovered && o.model.count > 0)
      st = add_recovery(m, parent ? &par : NULL, ds, &o, v, ctx, err);
    if (!st) st = put_ppl(v, &o.model, err);
    if (!st && parent) {
      pf_value *pv = pf_value_map();
      st = pv ? put_ppl(pv, &o.parent, err) : pf_err_set(err, PF_ERR_NOMEM, "out of memory");
      if (!st) st = pf_map_set(v, "compare", pv);
      else pf_value_release(pv);
      if (!st) st = pf_map_set_num(v, "kl_divergence", o.model.kl / (double)o.model.count);
      if (!st)
        st = pf_map_set_num(v, "top1_agreement", (double)o.model.agree / (double)o.model.count);
    }
  }
  if (!st) {
    pf_value *sv = pf_data_stats_value(ds);
    st = sv ? pf_map_set(v, "data", sv) : pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  }
  eval_parent_free(&par);
  pf_dataset_free(ds);
  pf_tokenizer_free(tok);
  return st;
}

/* compare_models_inference for one prompt (§12), from two time_inference maps. */
static pf_status compare_speed(const pf_value *orig, const pf_value *pruned, pf_value **out) {
  double ot = pf_map_num(orig, "avg_time", 0), pt = pf_map_num(pruned, "avg_time", 0);
  double otps = pf_map_num(orig, "tokens_per_second", 0);
  double ptps = pf_map_num(pruned, "tokens_per_second", 0);
  pf_value *v = pf_value_map();
  pf_status st = v ? PF_OK : PF_ERR_NOMEM;
  if (!st) st = pf_map_set_num(v, "avg_original_time", ot);
  if (!st) st = pf_map_set_num(v, "avg_pruned_time", pt);
  if (!st) st = pf_map_set_num(v, "avg_original_tokens_per_second", otps);
  if (!st) st = pf_map_set_num(v, "avg_pruned_tokens_per_second", ptps);
  if (!st) st = pf_map_set_num(v, "speedup", pt > 0 ? ot / pt : INFINITY);
  if (!st)
    st = pf_map_set_num(v, "tps_improvement_percent",
                        otps > 0 ? (ptps / otps - 1.0) * 100.0 : INFINITY);
  if (!st) st = pf_map_set_int(v, "num_prompts", 1);
  if (st) pf_value_release(v);
  else *out = v;
  return st;
}

static pf_status add_speed(const pf_model *m, const pf_model *parent, const pf_value *params,
                           pf_value *v, const pf_ctx *ctx, pf_err *err) {
  pf_tokenizer *tok = NULL;
  int32_t *ids = NULL;
  size_t n = 0;
  pf_value *tm = NULL, *tp = NULL, *cmp = NULL;
  int64_t max_new = pf_map_int(params, "max_new_tokens", 100);
  int64_t runs = pf_map_int(params, "num_runs", 5), warm = pf_map_int(params, "warmup_runs", 2);
  pf_status st = pf_model_tokenizer(m, &tok, err);
  if (!st) st = pf_encode_prompt(m, tok, pf_map_str(params, "prompt", ""), &ids, &n, err);
  int32_t eos = tok ? pf_tokenizer_eos_id(tok) : -1;
  if (ctx && ctx->dry_run) goto done;
  /* original first, then pruned, as compare_models_inference does */
  if (!st && parent) st = pf_time_inference(parent, ids, n, max_new, runs, warm, eos, &tp, ctx, err);
  if (!st) st = pf_time_inference(m, ids, n, max_new, runs, warm, eos, &tm, ctx, err);
  if (!st && parent && compare_speed(tp, tm, &cmp) != PF_OK)
    st = pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  if (!st) {
    st = pf_map_set(v, "speed", tm);
    tm = NULL;
  }
  if (!st && parent) {
    st = pf_map_set(v, "compare_speed", tp);
    tp = NULL;
  }
  if (!st && parent) {
    st = pf_map_set(v, "inference_comparison", cmp);
    cmp = NULL;
  }
done:
  pf_value_release(tm);
  pf_value_release(tp);
  pf_value_release(cmp);
  free(ids);
  pf_tokenizer_free(tok);
  return st;
}

static pf_status evaluate_check(const pf_value *params, pf_err *err) {
  if (!pf_map_has(params, "data") && !pf_map_has(params, "prompt"))
    return pf_err_set(err, PF_ERR_INVALID,
                      "nothing to evaluate: give `data` (perplexity) and/or `prompt` (speed)");
  return PF_OK;
}

static pf_status evaluate_run(const pf_op *op, const pf_value *params, pf_value **out,
                              const pf_ctx *ctx, pf_err *err) {
  const pf_model *m = pf_map_model(params, "model");
  const pf_model *parent = pf_map_model(params, "compare");
  int have_data = pf_map_has(params, "data"), have_prompt = pf_map_has(params, "prompt");
  pf_status cst = evaluate_check(params, err);
  if (cst) return cst;
  /* checked before anything is read, so a dry run finds it too: the text is
   * tokenized once, with the model's tokenizer, and fed to both models */
  if (parent && parent->config.vocab_size != m->config.vocab_size)
    return pf_err_set(err, PF_ERR_INVALID,
                      "compare: vocabularies differ (%lld vs %lld rows): the parent must share "
                      "the model's tokenizer (e.g. the model it was pruned from)",
                      (long long)parent->config.vocab_size, (long long)m->config.vocab_size);
  pf_value *v = pf_value_map();
  pf_status st = v ? PF_OK : pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  if (!st && have_data) st = add_perplexity(m, parent, params, v, ctx, err);
  if (!st && have_prompt) st = add_speed(m, parent, params, v, ctx, err);
  if (st) {
    pf_value_release(v);
    return st;
  }
  *out = v;
  return PF_OK;
}

const pf_op pf_op_evaluate = {
    .name = "evaluate",
    .alias = "eval",
    .summary = "perplexity, KL divergence / top-1 agreement with a parent, generation speed",
    .params = evaluate_params,
    .n_params = sizeof evaluate_params / sizeof evaluate_params[0],
    .returns = "{perplexity, nll, predicted_tokens, data, [compare: {perplexity, nll, "
               "predicted_tokens}, kl_divergence, top1_agreement], [speed: {avg_time, min_time, "
               "max_time, tokens_per_second, num_runs, generated_tokens}, compare_speed: {...}, "
               "inference_comparison: {avg_original_time, avg_pruned_time, "
               "avg_original_tokens_per_second, avg_pruned_tokens_per_second, speedup, "
               "tps_improvement_percent, num_prompts}], [recovery (a model pruned with "
               "reconstruct: true): {perplexity_before, perplexity_after, nll_before, nll_after, "
               "[parent_perplexity, kl_before, kl_after, top1_before, top1_after, "
               "gap_recovered]}]}",
    .run = evaluate_run,
    .check = evaluate_check,
    .needs = "max_new_tokens:prompt num_runs:prompt warmup_runs:prompt",
};
