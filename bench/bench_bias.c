/* bench_bias.c — the bias_activations op end to end (tokenizer load, two
 * forward passes with taps, tensors, token labels) and metrics on its result.
 *
 * Build (CMake, not part of `all`):
 *   cmake --build build --target bench_bias && ./build/bench_bias
 * Usage:
 *   bench_bias [MODEL [RUNS]]
 *   defaults: synthetic:llama-1b (Llama-3.2-1B shape, BF16, written once into
 *   the pfrun cache, ~20 s the first time), 5 timed runs after a warm-up.
 *
 * One prompt pair, layers "all", the default target types (all but
 * down_proj_input), twice: OptiPFair's first default pair (18 tokens with the
 * real Llama-3 tokenizer, but 60/61 with the synthetic checkpoint's small
 * byte-level BPE) and a short pair of 19/20 synthetic tokens (the length the
 * default pair has on the real model). Prints the tokens per prompt, the
 * activation count and bytes, and the best / median wall time of
 * bias_activations and of metrics (with neurons) — the target is < 2 s for
 * bias_activations on the 1B shape. The forward dominates; compare with
 * bench_forward. Run it on an idle machine: BLIS threads under oversubscription
 * are many times slower (the process CPU time is printed too; with
 * OMP_NUM_THREADS=1 it is the work itself).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "op.h"

static double clock_s(clockid_t id) {
  struct timespec t;
  clock_gettime(id, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static double now(void) {
  return clock_s(CLOCK_MONOTONIC);
}

static double g_cpu; /* process CPU seconds of the last run_op */

static void die(const char *what, const pf_err *err) {
  fprintf(stderr, "bench_bias: %s: %s\n", what, err->msg);
  exit(1);
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static pf_value *run_op(const char *op, pf_value *params, double *secs) {
  pf_value *out = NULL;
  pf_err err = {0};
  double t0 = now(), c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
  if (pf_op_run(op, params, &out, NULL, &err)) die(op, &err);
  *secs = now() - t0;
  g_cpu = clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
  return out;
}

static pf_value *activation_params(pf_model *m, const char *p1, const char *p2) {
  pf_value *p = pf_value_map(), *pairs = pf_value_list(), *pair = pf_value_list();
  pf_list_push(pair, pf_value_str(p1));
  pf_list_push(pair, pf_value_str(p2));
  pf_list_push(pairs, pair);
  pf_map_set(p, "model", pf_value_model(m));
  pf_map_set(p, "prompt_pairs", pairs);
  pf_map_set_str(p, "layers", "all");
  return p;
}

static void report(const char *what, double *t, double *cpu, int n) {
  qsort(t, (size_t)n, sizeof *t, cmp_d);
  qsort(cpu, (size_t)n, sizeof *cpu, cmp_d);
  printf("%-18s wall best %.3f s  median %.3f s;  cpu best %.3f s  (%d runs)\n", what, t[0],
         t[n / 2], cpu[0], n);
}

/* Warm-up + `runs` timed runs of bias_activations then metrics on one pair. */
static void bench_pair(pf_model *m, const char *p1, const char *p2, int runs) {
  double *ta = calloc((size_t)runs, sizeof *ta), *tm = calloc((size_t)runs, sizeof *tm), secs;
  double *ca = calloc((size_t)runs, sizeof *ca), *cm = calloc((size_t)runs, sizeof *cm);
  printf("\npair \"%s\" / \"%s\"\n", p1, p2);
  for (int r = -1; r < runs; r++) { /* r = -1: warm-up (page cache, BLIS, threads) */
    pf_value *p = activation_params(m, p1, p2), *acts = run_op("bias_activations", p, &secs);
    pf_value_release(p);
    if (r >= 0) ta[r] = secs, ca[r] = g_cpu;
    if (r == runs - 1) {
      const pf_value *pair = pf_map_get(acts, "pairs")->u.list.items[0];
      const pf_value *a1 = pf_map_get(pair, "act1");
      size_t bytes = 0;
      for (size_t i = 0; i < a1->u.map.len; i++)
        bytes += a1->u.map.vals[i]->u.tensor->nbytes;
      printf("tokens %zu / %zu, %zu activations per prompt, %.1f MiB per prompt\n",
             pf_map_get(pair, "ids1")->u.list.len, pf_map_get(pair, "ids2")->u.list.len,
             a1->u.map.len, (double)bytes / (1 << 20));
    }
    pf_value *mp = pf_value_map();
    pf_map_set(mp, "activations", acts);
    pf_map_set_bool(mp, "neurons", 1);
    pf_value_release(run_op("metrics", mp, &secs));
    pf_value_release(mp);
    if (r >= 0) tm[r] = secs, cm[r] = g_cpu;
  }
  report("bias_activations", ta, ca, runs);
  report("metrics+neurons", tm, cm, runs);
  free(ta);
  free(tm);
  free(ca);
  free(cm);
}

int main(int argc, char **argv) {
  const char *spec = argc > 1 ? argv[1] : "synthetic:llama-1b";
  int runs = argc > 2 ? atoi(argv[2]) : 5;
  if (runs < 1 || runs > 100) runs = 5;
  pf_value *lp = pf_value_map();
  pf_map_set_str(lp, "path", spec);
  double secs;
  pf_value *loaded = run_op("load", lp, &secs);
  pf_value_release(lp);
  pf_model *m = pf_map_model(loaded, "model");
  printf("model %s: %lld layers, %lld parameters (load %.2f s)\n", m->name, (long long)m->n_layers,
         (long long)pf_model_param_count(m), secs);
  bench_pair(m, "The white man was walking at night carrying a bag. The police officer thought he",
             "The Black man was walking at night carrying a bag. The police officer thought he",
             runs);
  bench_pair(m, "The white man was walking.", "The Black man was walking.", runs);
  pf_value_release(loaded);
  return 0;
}
