/* check_bench.c — the benchmark op against an independent float64 reference
 * (tests/golden/bench_ref.py, written from ../shared/reference/benchmarks.md):
 * per-choice log-likelihoods within 1e-4 relative, identical greedy flags and
 * predictions, on the synthetic llama-tiny (tiny tasks of the suite: contexts
 * ending in whitespace, an empty context, an empty delimiter, non-ASCII
 * choices; BOS default and never) and, when ../shared is there, on the first
 * 50 documents of all nine shared tasks for stories260K (its length, 512) and
 * llama-tiny at max_length 384 (truncation). Also: the KV-cache path equals the
 * batched passes (batch- and layer-major), the metrics and the Python-random
 * port against values printed by CPython, --compare, and the errors. */
#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "op.h"
#include "testutil.h"

static char *src(const char *rel) {
  static char path[4][4096];
  static int k;
  k = (k + 1) % 4;
  snprintf(path[k], sizeof path[k], "%s/%s", PF_SOURCE_DIR, rel);
  return path[k];
}

static char *tiny_tasks(void) {
  static char s[16384];
  snprintf(s, sizeof s, "%s,%s,%s", src("tests/golden/bench_tiny/tiny_mc.jsonl"),
           src("tests/golden/bench_tiny/tiny_partial.jsonl"),
           src("tests/golden/bench_tiny/tiny_cloze.jsonl"));
  return s;
}

static const char *const SHARED_TASKS =
    "arc_easy,arc_challenge,hellaswag,piqa,winogrande,boolq,copa,openbookqa,lambada_openai";

/* Run the op; returns its result (asserting success). */
static pf_value *bench(pf_model *m, const char *tasks, const char *data_dir, const char *bos,
                       int64_t max_length, int64_t limit, int cache, pf_pass_order order) {
  pf_value *p = pf_value_map();
  pf_map_set(p, "model", pf_value_model(m));
  pf_map_set_str(p, "tasks", tasks);
  if (data_dir) pf_map_set_str(p, "data_dir", data_dir);
  pf_map_set_str(p, "bos", bos);
  pf_map_set_int(p, "max_length", max_length);
  pf_map_set_int(p, "limit", limit);
  pf_map_set_bool(p, "log_samples", 1);
  pf_map_set_bool(p, "context_cache", cache);
  pf_map_set_int(p, "batch_size", 5);
  pf_map_set_int(p, "bootstrap_iters", 1000);
  pf_ctx ctx = {.pass_order = order};
  pf_err err = {0};
  pf_value *out = NULL;
  pf_status st = pf_op_run("benchmark", p, &out, &ctx, &err);
  ck_assert_msg(st == PF_OK, "benchmark: %s", err.msg);
  pf_value_release(p);
  return out;
}

static int close_rel(double a, double b) {
  return fabs(a - b) <= 1e-4 * fabs(b) + 1e-6;
}

/* Documents per shared task: 50, or 8 under the sanitizers (PF_TEST_SANITIZED). */
static int64_t shared_limit(void) {
  return getenv("PF_TEST_SANITIZED") ? 8 : 50;
}

/* Every task of `golden` (name -> [{id, ll, greedy, pred, pred_norm}]) in res, its
 * first documents as many as res has. */
static void check_case(const pf_value *res, const cJSON *golden, const char *what) {
  const pf_value *tasks = pf_map_get(res, "tasks");
  int n_tasks = 0, n_req = 0;
  for (const cJSON *t = golden->child; t; t = t->next, n_tasks++) {
    const pf_value *tr = pf_map_get(tasks, t->string);
    ck_assert_msg(tr, "%s: task %s missing", what, t->string);
    const pf_value *samples = pf_map_get(tr, "samples");
    const int want =
        cJSON_GetArraySize(t) < (int)shared_limit() ? cJSON_GetArraySize(t) : (int)shared_limit();
    ck_assert_int_eq((int)samples->u.list.len, want);
    size_t d = 0;
    for (const cJSON *g = t->child; g && d < samples->u.list.len; g = g->next, d++) {
      const pf_value *s = samples->u.list.items[d];
      ck_assert_str_eq(pf_map_str(s, "id", ""), cJSON_GetObjectItem(g, "id")->valuestring);
      const pf_value *ll = pf_map_get(s, "loglikelihoods"), *gr = pf_map_get(s, "is_greedy");
      const cJSON *gll = cJSON_GetObjectItem(g, "ll"), *ggr = cJSON_GetObjectItem(g, "greedy");
      ck_assert_int_eq((int)ll->u.list.len, cJSON_GetArraySize(gll));
      for (int c = 0; c < cJSON_GetArraySize(gll); c++, n_req++) {
        const double a = ll->u.list.items[c]->u.n, b = cJSON_GetArrayItem(gll, c)->valuedouble;
        ck_assert_msg(close_rel(a, b), "%s: %s %s choice %d: ll %.9g, reference %.9g", what,
                      t->string, pf_map_str(s, "id", ""), c, a, b);
        ck_assert_msg(gr->u.list.items[c]->u.b == cJSON_IsTrue(cJSON_GetArrayItem(ggr, c)),
                      "%s: %s %s choice %d: greedy differs", what, t->string,
                      pf_map_str(s, "id", ""), c);
      }
      const cJSON *pred = cJSON_GetObjectItem(g, "pred"), *pn = cJSON_GetObjectItem(g, "pred_norm");
      if (pred) ck_assert_int_eq(pf_map_int(s, "pred", -1), pred->valueint);
      if (pn && pf_map_has(s, "pred_norm"))
        ck_assert_int_eq(pf_map_int(s, "pred_norm", -1), pn->valueint);
    }
  }
  ck_assert_int_gt(n_tasks, 0);
  fprintf(stderr, "%s: %d tasks, %d requests match the float64 reference\n", what, n_tasks, n_req);
}

static cJSON *golden(const char *file) {
  char *text = pf_test_read(src(file), NULL);
  ck_assert_msg(text, "cannot read %s", file);
  cJSON *j = cJSON_Parse(text);
  free(text);
  ck_assert(j);
  return j;
}

static const cJSON *case_at(const cJSON *g, int i) {
  return cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(g, "cases"), i), "tasks");
}

START_TEST(test_synth_tiny_tasks) {
  char *dir = pf_test_synth("llama-tiny", 11, NULL);
  pf_model *m = pf_test_load(dir);
  cJSON *g = golden("tests/golden/bench_golden_synth.json");
  pf_value *r = bench(m, tiny_tasks(), NULL, "default", 0, 50, 1, PF_PASS_AUTO);
  check_case(r, case_at(g, 0), "llama-tiny, bos default");
  pf_value_release(r);
  r = bench(m, tiny_tasks(), NULL, "never", 0, 50, 1, PF_PASS_AUTO);
  check_case(r, case_at(g, 1), "llama-tiny, bos never");
  pf_value_release(r);
  /* the batched passes, batch-major and layer-major, score the same */
  r = bench(m, tiny_tasks(), NULL, "default", 0, 50, 0, PF_PASS_AUTO);
  check_case(r, case_at(g, 0), "llama-tiny, no context cache");
  ck_assert(!pf_map_bool(pf_map_get(pf_map_get(r, "tasks"), "tiny_mc"), "context_cache", 1));
  pf_value_release(r);
  r = bench(m, tiny_tasks(), NULL, "default", 0, 50, 1, PF_PASS_LAYER);
  check_case(r, case_at(g, 0), "llama-tiny, layer-major passes");
  pf_value_release(r);
  cJSON_Delete(g);
  pf_model_release(m);
  pf_test_synth_free(dir);
}
END_TEST

START_TEST(test_synth_shared_truncated) {
  char *data = pf_test_shared("data/bench", "benchmark tasks on llama-tiny");
  if (!data) return;
  char *dir = pf_test_synth("llama-tiny", 11, NULL);
  pf_model *m = pf_test_load(dir);
  cJSON *g = golden("tests/golden/bench_golden_synth.json");
  pf_value *r = bench(m, SHARED_TASKS, data, "default", 384, shared_limit(), 1, PF_PASS_AUTO);
  check_case(r, case_at(g, 2), "llama-tiny, max_length 384");
  pf_value_release(r);
  cJSON_Delete(g);
  pf_model_release(m);
  pf_test_synth_free(dir);
  free(data);
}
END_TEST

START_TEST(test_stories_shared) {
  char *data = pf_test_shared("data/bench", "benchmark tasks on stories260K");
  char *model = pf_test_shared("models/stories260K", "benchmark tasks on stories260K");
  if (!data || !model) {
    free(data), free(model);
    return;
  }
  pf_model *m = pf_test_load(model);
  cJSON *g = golden("tests/golden/bench_golden_stories.json");
  pf_value *r = bench(m, SHARED_TASKS, data, "default", 0, shared_limit(), 1, PF_PASS_AUTO);
  check_case(r, case_at(g, 0), "stories260K");
  /* the metrics are the means of the predictions */
  const pf_value *arc = pf_map_get(pf_map_get(r, "tasks"), "arc_easy");
  const pf_value *samples = pf_map_get(arc, "samples");
  double acc = 0;
  for (size_t i = 0; i < samples->u.list.len; i++)
    acc += pf_map_int(samples->u.list.items[i], "pred", -1) ==
           pf_map_int(samples->u.list.items[i], "gold", -2);
  ck_assert_double_eq_tol(pf_map_num(arc, "acc", -1), acc / (double)samples->u.list.len, 1e-12);
  ck_assert(pf_map_has(arc, "acc_norm") && pf_map_has(arc, "acc_stderr"));
  const pf_value *lam = pf_map_get(pf_map_get(r, "tasks"), "lambada_openai");
  ck_assert(pf_map_has(lam, "perplexity") && pf_map_has(lam, "perplexity_stderr"));
  ck_assert(!pf_map_has(pf_map_get(pf_map_get(r, "tasks"), "boolq"), "acc_norm"));
  pf_value_release(r);
  cJSON_Delete(g);
  pf_model_release(m);
  free(data), free(model);
}
END_TEST

START_TEST(test_compare_self) {
  char *dir = pf_test_synth("llama-tiny", 11, NULL);
  pf_model *m = pf_test_load(dir);
  pf_value *p = pf_value_map();
  pf_map_set(p, "model", pf_value_model(m));
  pf_map_set(p, "compare", pf_value_model(m));
  pf_map_set_str(p, "tasks", tiny_tasks());
  pf_err err = {0};
  pf_value *out = NULL;
  ck_assert_msg(pf_op_run("benchmark", p, &out, NULL, &err) == PF_OK, "%s", err.msg);
  const pf_value *c = pf_map_get(pf_map_get(out, "comparison"), "tiny_mc");
  ck_assert_double_eq(pf_map_num(c, "acc_diff", -1), 0.0);
  ck_assert_double_eq(pf_map_num(c, "agreement", -1), 1.0);
  ck_assert_double_eq(pf_map_num(c, "acc_diff_stderr", -1), 0.0);
  ck_assert(pf_map_has(c, "agreement_norm"));
  ck_assert(pf_map_get(pf_map_get(pf_map_get(out, "parent"), "tasks"), "tiny_cloze"));
  pf_value_release(out);
  pf_value_release(p);
  pf_model_release(m);
  pf_test_synth_free(dir);
}
END_TEST

START_TEST(test_pyrandom_and_stderr) {
  /* CPython 3.11: r = random.Random(); r.seed(s); r.random() x 3 */
  static const struct {
    uint64_t seed;
    double v[3];
  } py[] = {{0, {0.8444218515250481, 0.7579544029403025, 0.420571580830845}},
            {5, {0.6229016948897019, 0.7417869892607294, 0.7951935655656966}},
            {8589934599ull, {0.7042964166818435, 0.15008850079098557, 0.3008874427351991}}};
  for (size_t i = 0; i < sizeof py / sizeof py[0]; i++) {
    pf_pyrandom r;
    pf_pyrandom_seed(&r, py[i].seed);
    for (int k = 0; k < 3; k++)
      ck_assert_double_eq(pf_pyrandom_random(&r), py[i].v[k]);
  }
  /* lm-eval's bootstrap_stderr(perplexity, ll, iters) run in CPython 3.11 */
  const double ll[] = {-1.5, -0.25, -3.0, -2.2, -0.9, -4.1, -1.0};
  ck_assert_double_eq_tol(pf_bench_perplexity_stderr(ll, 7, 2000), 3.6662258598507544, 1e-12);
  ck_assert_double_eq_tol(pf_bench_perplexity_stderr(ll, 7, 1500), 3.832801982975076, 1e-12);
  ck_assert_double_eq_tol(pf_bench_perplexity_stderr(ll, 7, 10), 4.661341222285307, 1e-12);
  ck_assert(isnan(pf_bench_perplexity_stderr(ll, 7, 0)));
  ck_assert(isnan(pf_bench_perplexity_stderr(ll, 1, 1000))); /* one document: N/A */
  const double acc[] = {1, 0, 1, 1, 0, 0, 0, 1, 1, 1};
  ck_assert_double_eq_tol(pf_bench_mean_stderr(acc, 10), 0.16329931618554522, 1e-15);
  ck_assert(isnan(pf_bench_mean_stderr(acc, 1)));
}
END_TEST

/* The request rules on the synthetic tokenizer: whitespace moves, the empty
 * context's prefix token, truncation. */
/* lm-eval's "N/A" (null here): every stderr with bootstrap_iters 0, and the
 * perplexity stderr of a single document */
static const pf_value *task_of(const pf_value *r, const char *name) {
  return pf_map_get(pf_map_get(r, "tasks"), name);
}

START_TEST(test_stderr_na) {
  char *dir = pf_test_synth("llama-tiny", 11, NULL);
  pf_model *m = pf_test_load(dir);
  pf_value *p = pf_value_map();
  pf_map_set(p, "model", pf_value_model(m));
  pf_map_set_str(p, "tasks", tiny_tasks());
  pf_map_set_int(p, "bootstrap_iters", 0);
  pf_err err = {0};
  pf_value *r = NULL;
  ck_assert_msg(pf_op_run("benchmark", p, &r, NULL, &err) == PF_OK, "%s", err.msg);
  const char *keys[][2] = {{"tiny_mc", "acc_stderr"},
                           {"tiny_mc", "acc_norm_stderr"},
                           {"tiny_cloze", "acc_stderr"},
                           {"tiny_cloze", "perplexity_stderr"}};
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
    const pf_value *v = pf_map_get(task_of(r, keys[i][0]), keys[i][1]);
    ck_assert_msg(v && v->type == PF_V_NULL, "%s %s: expected null", keys[i][0], keys[i][1]);
  }
  ck_assert(pf_map_get(task_of(r, "tiny_mc"), "acc")->type == PF_V_NUM);
  pf_value_release(r);
  pf_map_set_int(p, "bootstrap_iters", 1000);
  pf_map_set_int(p, "limit", 1);
  ck_assert_msg(pf_op_run("benchmark", p, &r, NULL, &err) == PF_OK, "%s", err.msg);
  const pf_value *v = pf_map_get(task_of(r, "tiny_cloze"), "perplexity_stderr");
  ck_assert_msg(v && v->type == PF_V_NULL, "one document: perplexity_stderr not null");
  pf_value_release(r);
  pf_value_release(p);
  pf_model_release(m);
  pf_test_synth_free(dir);
}
END_TEST

/* A definition's description is prepended to every context (lm-eval's
 * `description`): the same log-likelihoods as contexts that start with it. */
START_TEST(test_description) {
  char *dir = pf_test_synth("llama-tiny", 11, NULL);
  pf_model *m = pf_test_load(dir);
  char *tmp = pf_test_tmpdir("bench_desc");
  char a[4096], b[4096], y[4096], both[8200];
  snprintf(a, sizeof a, "%s/with_desc.jsonl", tmp);
  snprintf(b, sizeof b, "%s/in_context.jsonl", tmp);
  pf_test_write(a,
                "{\"context\": \"The cat\", \"choices\": [\"sat\", \"ran away\"], \"gold\": 0}\n");
  pf_test_write(b, "{\"context\": \"Once upon a time. The cat\", \"choices\": [\"sat\", \"ran "
                   "away\"], \"gold\": 0}\n");
  snprintf(y, sizeof y, "%s/with_desc.yaml", tmp);
  pf_test_write(y, "task: with_desc\noutput_type: multiple_choice\ncontext: context\n"
                   "choices: choices\ngold: gold\ndescription: \"Once upon a time. \"\n");
  snprintf(y, sizeof y, "%s/in_context.yaml", tmp);
  pf_test_write(y, "task: in_context\noutput_type: multiple_choice\ncontext: context\n"
                   "choices: choices\ngold: gold\n");
  snprintf(both, sizeof both, "%s,%s", a, b);
  pf_value *r = bench(m, both, NULL, "default", 0, 0, 1, PF_PASS_AUTO);
  const pf_value *s1 = pf_map_get(pf_map_get(pf_map_get(r, "tasks"), "with_desc"), "samples");
  const pf_value *s2 = pf_map_get(pf_map_get(pf_map_get(r, "tasks"), "in_context"), "samples");
  const pf_value *l1 = pf_map_get(s1->u.list.items[0], "loglikelihoods");
  const pf_value *l2 = pf_map_get(s2->u.list.items[0], "loglikelihoods");
  for (size_t i = 0; i < 2; i++)
    ck_assert_double_eq(l1->u.list.items[i]->u.n, l2->u.list.items[i]->u.n);
  pf_value_release(r);
  pf_test_rmtree(tmp);
  free(tmp);
  pf_model_release(m);
  pf_test_synth_free(dir);
}
END_TEST

START_TEST(test_encode_rules) {
  char *dir = pf_test_synth("llama-tiny", 11, NULL);
  pf_tokenizer *tok = NULL;
  pf_err err = {0};
  ck_assert_msg(pf_tokenizer_load(dir, &tok, &err) == PF_OK, "%s", err.msg);
  pf_bench_req a, b, c;
  ck_assert(pf_bench_encode(tok, PF_BOS_DEFAULT, "The cat  ", "sat", 2048, &a, &err) == PF_OK);
  ck_assert(pf_bench_encode(tok, PF_BOS_DEFAULT, "The cat", "  sat", 2048, &b, &err) == PF_OK);
  ck_assert_int_eq(a.n, b.n);
  ck_assert_int_eq(a.nctx, b.nctx);
  ck_assert(!memcmp(a.tok, b.tok, (size_t)a.n * sizeof *a.tok));
  ck_assert_int_eq(a.tok[0], pf_tokenizer_bos_id(tok));
  pf_bench_req_free(&b);
  ck_assert(pf_bench_encode(tok, PF_BOS_NEVER, "The cat", "  sat", 2048, &b, &err) == PF_OK);
  ck_assert_int_eq(b.n, a.n - 1); /* no BOS */
  pf_bench_req_free(&b);
  ck_assert(pf_bench_encode(tok, PF_BOS_NEVER, "", "Once upon", 2048, &c, &err) == PF_OK);
  ck_assert_int_eq(c.nctx, 1);
  ck_assert_int_eq(c.tok[0], pf_tokenizer_bos_id(tok)); /* the prefix token even with never */
  pf_bench_req_free(&c);
  /* truncation: the last max_length + 1 tokens */
  ck_assert(pf_bench_encode(tok, PF_BOS_DEFAULT, "The cat  ", "sat", 3, &c, &err) == PF_OK);
  ck_assert_int_eq(c.start, c.n - 4);
  ck_assert_int_ge(c.n - 1 - c.start, c.ncont);
  pf_bench_req_free(&c);
  ck_assert(pf_bench_encode(tok, PF_BOS_DEFAULT, "The", " cat sat on the mat", 2, &c, &err) ==
            PF_ERR_INVALID);
  pf_assert_err(err, "more than the model's length 2");
  pf_bench_req_free(&a);
  pf_tokenizer_free(tok);
  pf_test_synth_free(dir);
}
END_TEST

static void expect_fail(pf_model *m, const char *tasks, const char *task_dir, const char *needle) {
  pf_value *p = pf_value_map();
  pf_map_set(p, "model", pf_value_model(m));
  pf_map_set_str(p, "tasks", tasks);
  if (task_dir) pf_map_set_str(p, "task_dir", task_dir);
  pf_err err = {0};
  pf_value *out = NULL;
  ck_assert(pf_op_run("benchmark", p, &out, NULL, &err) != PF_OK);
  ck_assert_msg(strstr(err.msg, needle), "expected '%s' in: %s", needle, err.msg);
  /* the op is named once, also when its own message starts with its name */
  ck_assert_msg(!strncmp(err.msg, "benchmark: ", 11) && !strstr(err.msg + 11, "benchmark: "),
                "op named twice or not first: %s", err.msg);
  ck_assert(!out);
  pf_value_release(p);
}

START_TEST(test_errors) {
  char *dir = pf_test_synth("llama-tiny", 11, NULL);
  pf_model *m = pf_test_load(dir);
  char *tmp = pf_test_tmpdir("bench");
  char path[4096], tasks[8192];
  expect_fail(m, "no_such_task", NULL, "no definition");
  /* what it is not (the built-in list) and where a definition would go */
  expect_fail(m, "no_such_task", NULL, "not a built-in task (arc_challenge, arc_easy, boolq");
  expect_fail(m, "no_such_task", NULL, "no_such_task.yaml in task_dir / --task-dir");
  expect_fail(m, "no_such_task", tmp, "winogrande), and no ");
  expect_fail(m, "arc_easy", NULL, "no data folder");
  expect_fail(m, " , ", NULL, "at least one task");
  {
    pf_value *p = pf_value_map();
    pf_map_set(p, "model", pf_value_model(m));
    pf_map_set_str(p, "tasks", "arc_easy");
    pf_map_set_str(p, "data_dir", tmp); /* a folder without arc_easy.jsonl */
    pf_err err = {0};
    pf_value *out = NULL;
    ck_assert(pf_op_run("benchmark", p, &out, NULL, &err) != PF_OK);
    ck_assert_msg(strstr(err.msg, "benchmark: task 'arc_easy': data file ") == err.msg, "got: %s",
                  err.msg);
    pf_value_release(p);
  }
  /* a bad gold index names the file and line */
  snprintf(path, sizeof path, "%s/bad.jsonl", tmp);
  pf_test_write(path,
                "{\"type\": \"mc\", \"context\": \"a\", \"choices\": [\"b\", \"c\"], \"gold\": 0}\n"
                "{\"type\": \"mc\", \"context\": \"a\", \"choices\": [\"b\"], \"gold\": 3}\n");
  snprintf(tasks, sizeof tasks, "%s/bad.yaml", tmp);
  pf_test_write(tasks, "task: bad\noutput_type: multiple_choice\ncontext: context\n"
                       "choices: choices\ngold: gold\n");
  expect_fail(m, path, NULL, "bad.jsonl:2: expected 'gold': an index in [0, 1)");
  /* an unknown key in a definition, found through task_dir */
  pf_test_write(tasks, "task: bad\noutput_type: multiple_choice\ncontext: context\n"
                       "choices: choices\ngold: gold\nchoice: x\n");
  expect_fail(m, path, tmp, "unknown key 'choice'");
  pf_test_write(tasks, "task: bad\noutput_type: multiple_choice\ncontext: context\n"
                       "choices: choices\ngold: gold\nmetrics: [acc, perplexity]\n");
  expect_fail(m, path, NULL, "metrics: expected acc, acc_norm");
  pf_test_write(tasks, "task: bad\noutput_type: multiple_choice\ncontext: context\n"
                       "choices: choices\ngold: gold\nmetrics: []\n");
  expect_fail(m, path, NULL, "metrics: expected at least one of acc");
  pf_test_write(tasks, "task: bad\noutput_type: multiple_choice\ncontext: context\n"
                       "choices: choices\ngold: gold\n");
  /* lines pfrun would read otherwise than Python's json.loads (or not at all) */
  static const struct {
    const char *line, *needle;
  } lines[] = {
      {"{\"context\": \"a\", \"choices\": [\"b\", \"c\"], \"gold\": 0, \"gold\": 1}",
       "bad.jsonl:1: duplicate key 'gold'"},
      {"{\"context\": \"a\", \"choices\": [\"b\", \"c\"], \"gold\": 1} xyz",
       "bad.jsonl:1: text after the JSON object"},
      {"{\"context\": \"a\", \"choices\": [\"b\", \"c\"], \"gold\": 1, \"target_delimiter\": 5}",
       "bad.jsonl:1: expected 'target_delimiter': a string"},
      {"{\"context\": \"a\", \"choices\": [\"b\\u0000 c\", \"c\"], \"gold\": 1}",
       "bad.jsonl:1: a \"\\u0000\" escape"},
      {"{\"id\": \"x\xff\", \"context\": \"a\", \"choices\": [\"b\", \"c\"], \"gold\": 1}",
       "bad.jsonl:1: not valid UTF-8 at column 10"},
  };
  for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
    pf_test_write(path, lines[i].line);
    expect_fail(m, path, NULL, lines[i].needle);
  }
  /* one name twice: the results are keyed by name, one would be lost */
  snprintf(path, sizeof path, "%s,%s", src("tests/golden/bench_tiny/tiny_mc.jsonl"),
           src("tests/golden/bench_tiny/tiny_mc.jsonl"));
  expect_fail(m, path, NULL, "tasks: 'tiny_mc' is given twice");
  {
    pf_value *p = pf_value_map();
    pf_map_set(p, "model", pf_value_model(m));
    pf_map_set_str(p, "tasks", src("tests/golden/bench_tiny/tiny_mc.jsonl"));
    pf_map_set_int(p, "max_length", m->config.max_position_embeddings + 1);
    pf_err err = {0};
    pf_value *out = NULL;
    ck_assert(pf_op_run("benchmark", p, &out, NULL, &err) != PF_OK);
    ck_assert_msg(strstr(err.msg, "above the model's context"), "got: %s", err.msg);
    pf_value_release(p);
  }
  pf_model_release(m);
  pf_test_rmtree(tmp);
  free(tmp);
  pf_test_synth_free(dir);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("bench");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 600);
  tcase_add_test(tc, test_pyrandom_and_stderr);
  tcase_add_test(tc, test_encode_rules);
  tcase_add_test(tc, test_stderr_na);
  tcase_add_test(tc, test_description);
  tcase_add_test(tc, test_synth_tiny_tasks);
  tcase_add_test(tc, test_synth_shared_truncated);
  tcase_add_test(tc, test_stories_shared);
  tcase_add_test(tc, test_compare_self);
  tcase_add_test(tc, test_errors);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return pf_test_main(suite);
}
