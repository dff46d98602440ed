/* benchmark.c — op "benchmark" (alias "bench"): zero-shot accuracy on
 * multiple-choice and cloze tasks, scored as lm-evaluation-harness scores a
 * Hugging Face causal LM (reference benchmarks.md; bench.h for the parts).
 *
 * With `compare` (the parent, e.g. the unpruned model) the same requests (one
 * tokenization, the model's tokenizer) are scored on both models: the parent's
 * results in the same shape, and per task the difference of each accuracy with
 * its paired standard error (the per-document differences' mean_stderr) and
 * the share of documents where both models predict the same choice.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include "fsutil.h"
#include "ophelp.h"
#include "opdata.h"

static const pf_param_spec benchmark_params[] = {
    {"model", PF_P_MODEL, 1, NULL, NULL, 0, 0, "the model to score (e.g. the pruned one)"},
    {"tasks", PF_P_ANY, 1, NULL, NULL, 0, 0,
     "task names (data_dir/NAME.jsonl) or paths to .jsonl files: a list, or one string with "
     "commas (\"arc_easy,piqa\"). Built-in definitions: arc_easy, arc_challenge, boolq, copa, "
     "hellaswag, lambada_openai, openbookqa, piqa, winogrande"},
    {"data_dir", PF_P_STR, 0, NULL, NULL, 0, 0,
     "folder of the task data (NAME.jsonl), e.g. ../shared/data/bench; default "
     "$PFRUN_BENCH_DATA"},
    {"task_dir", PF_P_STR, 0, NULL, NULL, 0, 0,
     "folder of task definitions (NAME.yaml) that win over the ones beside the data and the "
     "built-in ones"},
    {"limit", PF_P_INT, 0, "0", NULL, 0, 1e9, "score the first N documents of each task; 0 = all"},
    {"bos", PF_P_STR, 0, "default", "default|always|never", 0, 0,
     "BOS in front of each request: default = as the tokenizer adds it (lm-eval >= 0.4.9.2), "
     "always = its BOS even when it adds none, never = no special tokens (lm-eval 0.4.0 - "
     "0.4.9.1)"},
    {"max_length", PF_P_INT, 0, "0", NULL, 0, 1048576,
     "tokens the model reads (longer requests lose their leftmost context tokens); 0 = "
     "max_position_embeddings"},
    {"context_cache", PF_P_BOOL, 0, "true", NULL, 0, 0,
     "compute each document's context once (KV cache) and continue every choice from it; "
     "false, or a model beyond the memory budget, runs each request on its own in batched "
     "passes (layer-major when the weights do not fit)"},
    {"batch_size", PF_P_INT, 0, "8", NULL, 1, 65536, "requests per batch without the cache"},
    {"log_samples", PF_P_BOOL, 0, "false", NULL, 0, 0,
     "per document: id, per-choice log-likelihoods and greedy flags; multiple choice also "
     "pred, pred_norm (tasks with acc_norm) and gold"},
    {"bootstrap_iters", PF_P_INT, 0, "100000", NULL, 0, 1e8,
     "resamples for the perplexity stderr (lm-eval's default); 0 = no stderr for any "
     "metric (null), as lm-eval's N/A"},
    {"compare", PF_P_MODEL, 0, NULL, NULL, 0, 0,
     "a parent model: its results, each accuracy's difference with its stderr, and the "
     "agreement of both models' predictions"},
};

/* The task specs of the `tasks` parameter as a NULL-terminated array of strings. */
static pf_status task_specs(const pf_value *v, char ***out, size_t *n, pf_err *err) {
  *out = NULL;
  *n = 0;
  char **specs = NULL;
  size_t cap = 0;
  const size_t items = v->type == PF_V_LIST ? v->u.list.len : 1;
  for (size_t i = 0; i < items; i++) {
    const pf_value *e = v->type == PF_V_LIST ? v->u.list.items[i] : v;
    if (e->type != PF_V_STR) {
      for (size_t k = 0; k < *n; k++)
        free(specs[k]);
      free(specs);
      return pf_err_set(err, PF_ERR_INVALID,
                        "tasks: expected task names or paths (strings), got a %s",
                        pf_vtype_name(e->type));
    }
    char *copy = strdup(e->u.s), *save = NULL;
    for (char *t = copy ? strtok_r(copy, ",", &save) : NULL; t; t = strtok_r(NULL, ",", &save)) {
      while (*t == ' ')
        t++;
      size_t l = strlen(t);
      while (l && t[l - 1] == ' ')
        t[--l] = 0;
      if (!l) continue;
      if (*n + 1 >= cap) {
        cap = cap ? 2 * cap : 8;
        char **g = realloc(specs, cap * sizeof *g);
        if (!g) break;
        specs = g;
      }
      specs[(*n)++] = strdup(t);
      specs[*n] = NULL;
    }
    free(copy);
  }
  if (*n == 0) {
    free(specs);
    return pf_err_set(err, PF_ERR_INVALID, "tasks: expected at least one task name");
  }
  *out = specs;
  return PF_OK;
}

/* One task's documents and tokenized requests. */
typedef struct task_run {
  pf_bench_task def;
  pf_bench_docs docs;
  pf_bench_req *reqs;
  int64_t *first; /* [docs + 1] */
} task_run;

static void task_run_free(task_run *t) {
  for (int64_t r = 0; t->reqs && r < t->docs.requests; r++)
    pf_bench_req_free(&t->reqs[r]);
  free(t->reqs);
  free(t->first);
  pf_bench_docs_free(&t->docs);
  pf_bench_task_free(&t->def);
}

static pf_status prepare(task_run *t, pf_tokenizer *tok, pf_bench_bos bos, int64_t max_length,
                         pf_err *err) {
  const int64_t R = t->docs.requests, D = t->docs.n;
  t->reqs = calloc((size_t)(R ? R : 1), sizeof *t->reqs);
  t->first = malloc((size_t)(D + 1) * sizeof *t->first);
  if (!t->reqs || !t->first) return pf_err_set(err, PF_ERR_NOMEM, "benchmark: out of memory");
  int64_t r = 0;
  for (int64_t d = 0; d < D; d++) {
    t->first[d] = r;
    const pf_bench_doc *doc = &t->docs.doc[d];
    for (int c = 0; c < doc->n; c++, r++) {
      pf_status st =
          pf_bench_encode(tok, bos, doc->ctx[c], doc->cont[c], max_length, &t->reqs[r], err);
      if (st) return pf_err_prefix(err, "%s: document %s, request %d", t->def.name, doc->id, c);
    }
  }
  t->first[D] = r;
  return PF_OK;
}

/* Per-document correctness (acc, or acc_norm when norm) from the predictions. */
static void correct(const task_run *t, const pf_bench_scores *s, const pf_bench_preds *p, int norm,
                    double *out) {
  for (int64_t d = 0; d < t->docs.n; d++) {
    const pf_bench_doc *doc = &t->docs.doc[d];
    out[d] =
        doc->gold < 0 ? s->greedy[t->first[d]] : (norm ? p->pred_norm[d] : p->pred[d]) == doc->gold;
  }
}

static pf_status compare_task(const task_run *t, const pf_bench_scores *sm,
                              const pf_bench_preds *pm, const pf_bench_scores *sp,
                              const pf_bench_preds *pp, const pf_value *rm, const pf_value *rp,
                              pf_value **out, pf_err *err) {
  const int64_t D = t->docs.n;
  double *a = malloc((size_t)D * sizeof *a), *b = malloc((size_t)D * sizeof *b);
  pf_value *c = pf_value_map();
  if (!a || !b || !c) {
    free(a), free(b), pf_value_release(c);
    return pf_err_set(err, PF_ERR_NOMEM, "benchmark: out of memory");
  }
  const int has_norm = pf_map_has(rm, "acc_norm");
  for (int norm = 0; norm <= has_norm; norm++) {
    correct(t, sm, pm, norm, a);
    correct(t, sp, pp, norm, b);
    double agree = 0;
    for (int64_t d = 0; d < D; d++) {
      const int gold = t->docs.doc[d].gold;
      agree += gold < 0
                   ? a[d] == b[d]
                   : (norm ? pm->pred_norm[d] == pp->pred_norm[d] : pm->pred[d] == pp->pred[d]);
      a[d] -= b[d];
    }
    const char *key = norm ? "acc_norm" : "acc";
    if (!pf_map_has(rm, key)) continue; /* a task without acc (perplexity only) */
    char k1[40], k2[40], k3[40];
    snprintf(k1, sizeof k1, "%s_diff", key);
    snprintf(k2, sizeof k2, "%s_diff_stderr", key);
    snprintf(k3, sizeof k3, "%s", norm ? "agreement_norm" : "agreement");
    const double se = pf_bench_mean_stderr(a, D);
    pf_map_set_num(c, k1, pf_map_num(rm, key, NAN) - pf_map_num(rp, key, NAN));
    pf_map_set(c, k2, isfinite(se) ? pf_value_num(se) : pf_value_null());
    pf_map_set_num(c, k3, agree / (double)D);
  }
  if (pf_map_has(rm, "perplexity"))
    pf_map_set_num(c, "perplexity_diff",
                   pf_map_num(rm, "perplexity", NAN) - pf_map_num(rp, "perplexity", NAN));
  free(a), free(b);
  *out = c;
  return PF_OK;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Score one task on one model: its result map and predictions. */
static pf_status score_task(const pf_model *m, const task_run *t, const pf_value *params,
                            pf_bench_scores *s, pf_bench_preds *p, pf_value **res, double *secs,
                            const pf_ctx *ctx, pf_err *err) {
  const pf_bench_run_opts o = {.context_cache = pf_map_bool(params, "context_cache", 1),
                               .batch_size = pf_map_int(params, "batch_size", 8),
                               .ctx = ctx};
  pf_bench_run_info info;
  const double t0 = now_s();
  pf_status st = pf_bench_score(m, t->reqs, t->first, t->docs.n, &o, s, &info, err);
  *secs = now_s() - t0;
  if (st) return pf_err_prefix(err, "%s", t->def.name);
  char how[400];
  if (info.docs_cached == info.docs_here)
    snprintf(how, sizeof how, "context cache");
  else
    snprintf(how, sizeof how, "context cache for %lld of %lld documents, the rest in %s",
             (long long)info.docs_cached, (long long)info.docs_here, info.pass.why);
  pf_ctx_log(ctx,
             "benchmark: %s on %s: %lld documents, %lld requests, %lld tokens through the model "
             "in %.2f s (%s)",
             t->def.name, m->name ? m->name : "model", (long long)t->docs.n,
             (long long)t->docs.requests, (long long)info.forward_tokens, *secs, how);
  st = pf_bench_task_result(&t->def, &t->docs, s, pf_map_bool(params, "log_samples", 0),
                            pf_map_int(params, "bootstrap_iters", 100000), res, p, err);
  if (st) return st;
  pf_map_set_str(*res, "definition", t->def.definition);
  pf_map_set_str(*res, "data", t->def.data);
  pf_map_set_int(*res, "requests", t->docs.requests);
  pf_map_set_bool(*res, "context_cache", info.cached);
  pf_map_set_num(*res, "seconds", *secs);
  pf_map_set_num(*res, "examples_per_second", *secs > 0 ? (double)t->docs.n / *secs : 0);
  return PF_OK;
}

/* The parent is scored on the model's token ids: its tokenizer must give the same
 * ids for every request (the vocabulary size alone says little: two tokenizers of
 * 512 tokens can map them differently). */
static pf_status same_tokens(const pf_model *parent, const task_run *runs, size_t ns,
                             pf_bench_bos bos, int64_t max_length, pf_err *err) {
  pf_tokenizer *tok = NULL;
  pf_status st = pf_model_tokenizer(parent, &tok, err);
  for (size_t i = 0; !st && i < ns; i++) {
    const task_run *t = &runs[i];
    int64_t r = 0;
    for (int64_t d = 0; !st && d < t->docs.n; d++) {
      const pf_bench_doc *doc = &t->docs.doc[d];
      for (int c = 0; !st && c < doc->n; c++, r++) {
        pf_bench_req q = {0};
        st = pf_bench_encode(tok, bos, doc->ctx[c], doc->cont[c], max_length, &q, err);
        if (!st && (q.n != t->reqs[r].n || q.nctx != t->reqs[r].nctx ||
                    memcmp(q.tok, t->reqs[r].tok, (size_t)q.n * sizeof *q.tok)))
          st = pf_err_set(err, PF_ERR_INVALID,
                          "compare: the parent's tokenizer encodes %s document %s otherwise than "
                          "the model's: the parent must share the model's tokenizer (e.g. the "
                          "model it was pruned from)",
                          t->def.name, doc->id);
        pf_bench_req_free(&q);
      }
    }
  }
  pf_tokenizer_free(tok);
  return st;
}

static pf_status benchmark_run(const pf_op *op, const pf_value *params, pf_value **out,
                               const pf_ctx *ctx, pf_err *err) {
  (void)op;
  const pf_model *m = pf_map_model(params, "model");
  const pf_model *parent = pf_map_model(params, "compare");
  if (parent && parent->config.vocab_size != m->config.vocab_size)
    return pf_err_set(err, PF_ERR_INVALID,
                      "compare: vocabularies differ (%lld vs %lld rows): the parent must share "
                      "the model's tokenizer (e.g. the model it was pruned from)",
                      (long long)parent->config.vocab_size, (long long)m->config.vocab_size);
  const char *bos_s = pf_map_str(params, "bos", "default");
  const pf_bench_bos bos = !strcmp(bos_s, "always")  ? PF_BOS_ALWAYS
                           : !strcmp(bos_s, "never") ? PF_BOS_NEVER
                                                     : PF_BOS_DEFAULT;
  int64_t max_length = pf_map_int(params, "max_length", 0);
  const int64_t window = m->config.max_position_embeddings;
  if (max_length > window) /* found now, not by the forward pass after other tasks ran */
    return pf_err_set(err, PF_ERR_INVALID,
                      "max_length %lld: above the model's context (max_position_embeddings %lld)",
                      (long long)max_length, (long long)window);
  if (parent && (max_length > 0 ? max_length : window) > parent->config.max_position_embeddings)
    return pf_err_set(err, PF_ERR_INVALID,
                      "compare: the parent's context (max_position_embeddings %lld) is shorter "
                      "than %lld tokens: give max_length %lld so that both score the same requests",
                      (long long)parent->config.max_position_embeddings,
                      (long long)(max_length > 0 ? max_length : window),
                      (long long)parent->config.max_position_embeddings);
  if (max_length <= 0) max_length = window;
  const char *data_dir = pf_map_str(params, "data_dir", NULL);
  if (!data_dir) data_dir = getenv("PFRUN_BENCH_DATA");
  char **specs = NULL;
  size_t ns = 0;
  pf_status st = task_specs(pf_map_get(params, "tasks"), &specs, &ns, err);
  if (st) return st;
  pf_tokenizer *tok = NULL;
  task_run *runs = calloc(ns, sizeof *runs);
  pf_value *v = pf_value_map(), *tasks = pf_value_map(), *ptasks = parent ? pf_value_map() : NULL,
           *cmp = parent ? pf_value_map() : NULL;
  if (!runs || !v || !tasks || (parent && (!ptasks || !cmp)))
    st = pf_err_set(err, PF_ERR_NOMEM, "benchmark: out of memory");
  /* every task resolved, read and tokenized before the model runs */
  const char *task_dir = pf_map_str(params, "task_dir", NULL);
  if (!st && task_dir && !pf_is_dir(task_dir)) /* its definitions would be silently missed */
    st = pf_err_set(err, PF_ERR_NOT_FOUND, "task_dir: %s: no such folder", task_dir);
  if (!st) st = pf_model_tokenizer(m, &tok, err);
  for (size_t i = 0; !st && i < ns; i++) {
    task_run *t = &runs[i];
    st = pf_bench_task_resolve(specs[i], data_dir, pf_map_str(params, "task_dir", NULL), &t->def,
                               err);
    if (!st) st = pf_bench_docs_read(&t->def, pf_map_int(params, "limit", 0), &t->docs, err);
    if (!st) st = prepare(t, tok, bos, max_length, err);
    for (size_t k = 0; !st && k < i; k++) /* results are keyed by name: one would be lost */
      if (!strcmp(runs[k].def.name, t->def.name))
        st = pf_err_set(err, PF_ERR_INVALID,
                        "tasks: '%s' is given twice (%s and %s): each task once, or rename one "
                        "definition's task",
                        t->def.name, specs[k], specs[i]);
  }
  if (!st && parent) st = same_tokens(parent, runs, ns, bos, max_length, err);
  double total_docs = 0, total_secs = 0;
  for (size_t i = 0; !st && i < ns; i++) {
    task_run *t = &runs[i];
    pf_value *res = NULL, *pres = NULL, *c = NULL;
    if (ctx && ctx->dry_run) {
      res = pf_value_map();
      if (!res)
        st = pf_err_set(err, PF_ERR_NOMEM, "benchmark: out of memory");
      else {
        pf_map_set_int(res, "n", t->docs.n);
        pf_map_set_int(res, "requests", t->docs.requests);
        pf_map_set_str(res, "definition", t->def.definition);
        pf_map_set_str(res, "data", t->def.data);
        st = pf_map_set(tasks, t->def.name, res);
      }
      continue;
    }
    pf_bench_scores sm = {0}, sp = {0};
    pf_bench_preds pm = {0}, pp = {0};
    double secs = 0, psecs = 0;
    st = score_task(m, t, params, &sm, &pm, &res, &secs, ctx, err);
    if (!st && parent) st = score_task(parent, t, params, &sp, &pp, &pres, &psecs, ctx, err);
    if (!st && parent) st = compare_task(t, &sm, &pm, &sp, &pp, res, pres, &c, err);
    total_docs += (double)t->docs.n;
    total_secs += secs;
    if (!st) {
      st = pf_map_set(tasks, t->def.name, res);
      res = NULL;
    }
    if (!st && parent) {
      st = pf_map_set(ptasks, t->def.name, pres);
      pres = NULL;
      if (!st) st = pf_map_set(cmp, t->def.name, c);
      c = NULL;
    }
    pf_value_release(res), pf_value_release(pres), pf_value_release(c);
    pf_bench_scores_free(&sm), pf_bench_scores_free(&sp);
    pf_bench_preds_free(&pm), pf_bench_preds_free(&pp);
  }
  if (!st) {
    st = pf_map_set(v, "tasks", tasks);
    tasks = NULL;
  }
  if (!st && parent) {
    pf_value *pv = pf_value_map();
    if (!pv || pf_map_set(pv, "tasks", ptasks) != PF_OK)
      st = pf_err_set(err, PF_ERR_NOMEM, "benchmark: out of memory");
    ptasks = NULL;
    if (!st) st = pf_map_set(v, "parent", pv);
    if (!st) st = pf_map_set(v, "comparison", cmp);
    cmp = NULL;
  }
  if (!st) {
    pf_map_set_str(v, "bos", bos_s);
    pf_map_set_int(v, "max_length", max_length);
    pf_map_set_num(v, "examples_per_second", total_secs > 0 ? total_docs / total_secs : 0);
  }
  for (size_t i = 0; runs && i < ns; i++)
    task_run_free(&runs[i]);
  for (size_t i = 0; i < ns; i++)
    free(specs[i]);
  free(specs);
  free(runs);
  pf_tokenizer_free(tok);
  pf_value_release(tasks), pf_value_release(ptasks), pf_value_release(cmp);
  if (st) {
    pf_value_release(v);
    return st;
  }
  *out = v;
  return PF_OK;
}

const pf_op pf_op_benchmark = {
    .name = "benchmark",
    .alias = "bench",
    .summary = "zero-shot accuracy (ARC, HellaSwag, PIQA, WinoGrande, BoolQ, COPA, OpenBookQA, "
               "LAMBADA, or your own tasks) scored as lm-evaluation-harness does",
    .params = benchmark_params,
    .n_params = sizeof benchmark_params / sizeof benchmark_params[0],
    .returns = "{tasks: {NAME: {n, acc, acc_stderr, [acc_norm, acc_norm_stderr], [perplexity, "
               "perplexity_stderr], requests, context_cache, seconds, examples_per_second, "
               "definition, data, [samples: [{id, loglikelihoods, is_greedy, pred, pred_norm, "
               "gold}]]}}, bos, max_length, examples_per_second, [parent: {tasks: {...}}, "
               "comparison: {NAME: {[acc_diff, acc_diff_stderr, agreement], [acc_norm_diff, "
               "acc_norm_diff_stderr, agreement_norm], [perplexity_diff]}}]}",
    .run = benchmark_run,
};
