/* bench.h — zero-shot benchmarks scored as lm-evaluation-harness scores a
 * Hugging Face causal LM (../shared/reference/benchmarks.md). Internal to ops/:
 * the op is ops/eval/benchmark.c; tasks and documents are bench_tasks.c, the
 * request tokens bench_tok.c, the model passes bench_score.c, the metrics
 * bench_metrics.c.
 *
 * A task is data: a JSONL file and a YAML definition (the tasks folder, compiled in;
 * a NAME.yaml beside the data or in the task folder overrides the built-in one)
 * saying which JSON keys form the context, the choices and the gold index, the
 * target delimiter and the metrics. Three output types, as the harness has them:
 *   multiple_choice  request i = (context, delimiter + choices[i])
 *   partial          request i = (contexts[i], delimiter + continuation)  (WinoGrande)
 *   loglikelihood    one request (context, continuation), no delimiter    (LAMBADA)
 */
#ifndef PF_BENCH_H
#define PF_BENCH_H

#include "forward.h"
#include "tokenizer.h"
#include "value.h"

typedef enum pf_bench_type {
  PF_BENCH_MC = 0,  /* multiple_choice */
  PF_BENCH_PARTIAL, /* partial (multiple inputs) */
  PF_BENCH_CLOZE    /* loglikelihood */
} pf_bench_type;

enum { PF_BENCH_ACC = 1, PF_BENCH_ACC_NORM = 2, PF_BENCH_PERPLEXITY = 4 };

typedef enum pf_bench_bos {
  PF_BOS_DEFAULT = 0, /* the tokenizer's own special tokens (current harness) */
  PF_BOS_ALWAYS,      /* its special tokens, and its BOS in front when they have none */
  PF_BOS_NEVER        /* no special tokens (harness v0.4.0 - v0.4.9.1) */
} pf_bench_bos;

typedef struct pf_bench_task {
  char *name;       /* "arc_easy" */
  char *definition; /* "built-in" or the YAML file read */
  char *data;       /* the JSONL file */
  pf_bench_type type;
  char *context, *choices, *gold, *contexts, *continuation; /* JSON keys (NULL: unused) */
  char *delimiter;                                          /* default target delimiter */
  char *description; /* prepended to every context (lm-eval's `description`; "" by default) */
  unsigned metrics;                                         /* PF_BENCH_* bits */
} pf_bench_task;

typedef struct pf_bench_doc {
  char *id;
  int n;            /* requests */
  int gold;         /* -1 for loglikelihood tasks */
  char **ctx;       /* [n] contexts */
  char **cont;      /* [n] continuations (delimiter included) */
  double *norm_len; /* [n] code points of the choice without delimiter (acc_norm) */
} pf_bench_doc;

typedef struct pf_bench_docs {
  pf_bench_doc *doc;
  int64_t n;
  int64_t requests; /* sum of doc[i].n */
} pf_bench_docs;

/* Resolve a task: NAME (DATA_DIR/NAME.jsonl) or a path to a .jsonl file. The
 * definition is NAME.yaml in task_dir (if given), else beside the data, else the
 * built-in one; a file without any is refused, naming where it looked. */
pf_status pf_bench_task_resolve(const char *spec, const char *data_dir, const char *task_dir,
                                pf_bench_task *out, pf_err *err);
/* A definition from YAML text (name for messages). */
pf_status pf_bench_task_parse(const char *name, const char *text, size_t len, pf_bench_task *out,
                              pf_err *err);
void pf_bench_task_free(pf_bench_task *t);
/* The names of the built-in definitions, NULL-terminated. */
const char *pf_bench_builtin_name(size_t i);

/* Read the first `limit` documents (0 = all) of the task's data. Errors name the
 * file, the line and the key. */
pf_status pf_bench_docs_read(const pf_bench_task *t, int64_t limit, pf_bench_docs *out,
                             pf_err *err);
void pf_bench_docs_free(pf_bench_docs *d);

/* One request as token ids, after the harness's rules: trailing whitespace of
 * the context moved to the continuation, the context and context+continuation
 * encoded (BOS per mode), the continuation = the joint tokens after the
 * context's count; an empty context is the prefix token (BOS, else EOS).
 * tok[0..n) = context tokens then continuation tokens; the model reads
 * tok[start .. n-1) (left truncation to max_length + 1 tokens, the last token
 * dropped) and the last ncont positions it reads predict tok[n-ncont .. n). */
typedef struct pf_bench_req {
  int32_t *tok;
  int64_t n, nctx, ncont, start;
} pf_bench_req;

pf_status pf_bench_encode(pf_tokenizer *tok, pf_bench_bos bos, const char *ctx, const char *cont,
                          int64_t max_length, pf_bench_req *out, pf_err *err);
void pf_bench_req_free(pf_bench_req *r);

/* Per request: summed natural-log likelihood of the continuation and whether
 * every continuation token is the argmax (first index on ties). */
typedef struct pf_bench_scores {
  double *ll;      /* [requests] */
  uint8_t *greedy; /* [requests] */
} pf_bench_scores;

typedef struct pf_bench_run_opts {
  int context_cache;  /* 1: each document's context once (KV cache), its choices continue it */
  int64_t batch_size; /* requests per forward when not cached */
  const pf_ctx *ctx;
} pf_bench_run_opts;

typedef struct pf_bench_run_info {
  int cached;             /* the KV-cache path ran (for docs_cached documents) */
  /* counts over every rank (MPI) */
  int64_t docs_cached;    /* documents scored from a shared-context cache; the rest in passes */
  int64_t docs_here;      /* documents scored */
  int64_t forward_tokens; /* tokens run through the model */
  pf_pass_info pass;      /* the uncached path's pass */
} pf_bench_run_info;

/* Score every request of reqs (grouped by document: doc_first[d] .. doc_first[d+1])
 * on model m. Under MPI each rank scores its share of the documents and every
 * rank ends with all scores. out arrays are allocated here. */
pf_status pf_bench_score(const pf_model *m, const pf_bench_req *reqs, const int64_t *doc_first,
                         int64_t ndocs, const pf_bench_run_opts *o, pf_bench_scores *out,
                         pf_bench_run_info *info, pf_err *err);
void pf_bench_scores_free(pf_bench_scores *s);

/* Metrics. pred[d] = argmax ll (first on ties); pred_norm[d] with ll / norm_len.
 * The task's result map: n, the metrics it defines with their _stderr (null when
 * n < 2 or bootstrap_iters is 0 for perplexity), and samples when asked. */
typedef struct pf_bench_preds {
  int *pred, *pred_norm; /* [ndocs] */
} pf_bench_preds;

pf_status pf_bench_task_result(const pf_bench_task *t, const pf_bench_docs *d,
                               const pf_bench_scores *s, int log_samples, int64_t bootstrap_iters,
                               pf_value **out, pf_bench_preds *preds, pf_err *err);
void pf_bench_preds_free(pf_bench_preds *p);

/* mean_stderr: sample standard deviation (n - 1) / sqrt(n); NaN when n < 2. */
double pf_bench_mean_stderr(const double *x, int64_t n);
/* lm-eval's bootstrap_stderr(perplexity, ll, iters): chunks of min(1000, iters)
 * resamples, chunk i drawn with Python's random.Random(i).choices; the sample
 * standard deviation of exp(-mean) over the resamples. NaN when iters < 1 or n < 1. */
double pf_bench_perplexity_stderr(const double *ll, int64_t n, int64_t iters);

/* Python's random.Random (MT19937): seed(int), random() (53 bits). */
typedef struct pf_pyrandom {
  uint32_t mt[624];
  int idx;
} pf_pyrandom;
void pf_pyrandom_seed(pf_pyrandom *r, uint64_t seed);
double pf_pyrandom_random(pf_pyrandom *r);

#endif
