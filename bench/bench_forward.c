/* bench_forward.c — prefill and greedy-decode speed of the forward pass, beside
 * the limits of the machine it runs on.
 *
 * Build (CMake, not part of `all`):
 *   cmake --build build --target bench_forward && ./build/bench_forward
 * Usage:
 *   bench_forward [MODEL [BATCH [SEQ [NEW_TOKENS]]]]
 *   defaults: synthetic:llama-1b (Llama-3.2-1B shape, BF16, written once into the
 *   pfrun cache), batch 4, seq 512, 64 new tokens.
 *
 * Prints, best of 3 runs after a warm-up:
 *  - the sgemm rate: pf_sgemm on 2048 x 2048 x 2048 float32 (what BLIS gives the
 *    prefill's largest products), and pf_gemm_xwt with a BF16 8192 x 2048 weight
 *    at m = BATCH*SEQ (BLIS plus the panel widening the prefill really pays);
 *  - prefill: BATCH x SEQ tokens through pf_forward_run with logits (consumed by
 *    an empty callback): tokens/s and GFLOP/s, counting 2 * params * tokens
 *    (every weight is one multiply-add per token; the tied embedding counted
 *    once, as the lm_head) + causal attention 2 * 2 * layers * heads * head_dim *
 *    SEQ*(SEQ+1)/2 per row; the attention kernel alone is timed too;
 *  - decode: pf_generate_greedy from a 16-token prompt, tokens/s of the one-token
 *    steps against weight_bytes / read bandwidth, the bandwidth measured here by
 *    reading 1 GiB with all threads (bench_read.h: one and four streams per
 *    thread, the faster), just before and just after
 *    each decode run (the higher of the two); the run closest to its bound is
 *    reported, every run on the next line;
 *  - the same decode interleaved with the read: 12 rounds of (the read, one
 *    untimed step, 8 timed decode steps), the median of the rounds' ratios to
 *    their own bound (the host's bandwidth moves within seconds: the line above
 *    sets the best read of the run against a whole run's mean, the strict
 *    figure).
 */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_read.h"
#include "forward_int.h"
#include "generate.h"
#include "synthetic.h"

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void die(const char *what, const pf_err *err) {
  fprintf(stderr, "bench_forward: %s: %s\n", what, err->msg);
  exit(1);
}

static float *randf(size_t n, unsigned seed) {
  float *p = malloc(n * sizeof *p);
  if (!p) exit(1);
#pragma omp parallel for
  for (size_t i = 0; i < n; i++)
    p[i] = (float)((i * 2654435761u + seed) % 2001) / 1000.0f - 1.0f;
  return p;
}

/* ---- machine limits ---- */

static double sgemm_gflops(void) {
  const int64_t n = 2048;
  float *a = randf((size_t)(n * n), 1), *b = randf((size_t)(n * n), 2),
        *c = randf((size_t)(n * n), 3);
  pf_err err = {0};
  double best = 1e30;
  for (int r = 0; r < 4; r++) {
    double t0 = now();
    if (pf_sgemm(0, 1, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n, &err)) die("sgemm", &err);
    if (r > 0) best = fmin(best, now() - t0);
  }
  free(a);
  free(b);
  free(c);
  return 2.0 * (double)n * (double)n * (double)n / best * 1e-9;
}

static double bf16_linear_gflops(int64_t m) {
  const int64_t n = 8192, k = 2048;
  uint16_t *w = malloc((size_t)(n * k) * 2);
  float *x = randf((size_t)(m * k), 4), *y = randf((size_t)(m * n), 5);
  for (int64_t i = 0; i < n * k; i++)
    w[i] = pf_f32_to_bf16((float)((i * 7919) % 2001) / 1000.0f - 1.0f);
  pf_workspace *ws = NULL;
  pf_err err = {0};
  if (pf_workspace_new(&ws, &err)) die("workspace", &err);
  double best = 1e30;
  for (int r = 0; r < 4; r++) {
    double t0 = now();
    if (pf_gemm_xwt(m, n, k, x, k, w, PF_DTYPE_BF16, k, NULL, 0.0f, y, n, ws, &err))
      die("gemm", &err);
    if (r > 0) best = fmin(best, now() - t0);
  }
  pf_workspace_free(ws);
  free(w);
  free(x);
  free(y);
  return 2.0 * (double)m * (double)n * (double)k / best * 1e-9;
}

/* The read bandwidth: the best of `reps` rounds of three 1 GiB passes, with one
 * stream per thread, with four far apart, and with four prefetched 1 KiB ahead
 * (bench_read.h; on Zen 3 4 long streams per thread have given up to 25 % more
 * than one, bench/README.md "Decode GEMV"), so that the bound is the most this
 * machine was seen to read, not what one loop gets.
 * The buffer is allocated and first touched once, so later calls measure reads
 * only. */
static double read_bandwidth_gbs(int reps) {
  const size_t n = (size_t)1 << 28; /* 1 GiB of float32 */
  static float *a;
  static volatile float sink;
  if (!a) {
    a = randf(n, 6);
    sink += bench_read_pass((const char *)a, n * sizeof(float), 1, 4096, 0); /* settled */
  }
  double best = 0;
  for (int r = 0; r < reps; r++)
    for (int v = 0; v < 3; v++) {
      const double t0 = now();
      sink += bench_read_pass((const char *)a, n * sizeof(float), v ? 4 : 1, v ? 0 : 4096,
                              v == 2 ? 1024 : 0);
      best = fmax(best, (double)(n * sizeof(float)) / (now() - t0) * 1e-9);
    }
  return best;
}

/* ---- prefill ---- */

static pf_status drop_logits(void *ud, int64_t row0, int64_t n, const float *lg, int64_t V,
                             pf_err *err) {
  *(volatile float *)ud = lg[0];
  return PF_OK;
}

static double prefill_seconds(const pf_model *m, int64_t B, int64_t S) {
  int32_t *ids = malloc((size_t)(B * S) * sizeof *ids);
  for (int64_t i = 0; i < B * S; i++)
    ids[i] = (int32_t)((i * 7919 + 13) % m->config.vocab_size);
  pf_forward *f = NULL;
  pf_err err = {0};
  if (pf_forward_new(m, &f, &err)) die("forward", &err);
  pf_batch b = {.batch = B, .seq = S, .ids = ids};
  volatile float sink = 0;
  double best = 1e30;
  for (int r = 0; r < 4; r++) {
    double t0 = now();
    if (pf_forward_run(f, &b, NULL, drop_logits, (void *)&sink, NULL, &err)) die("run", &err);
    if (r > 0) best = fmin(best, now() - t0);
  }
  pf_forward_free(f);
  free(ids);
  return best;
}

/* The attention kernel alone, on random q/k/v of the model's shape, all layers. */
static double attention_seconds(const pf_model *m, int64_t B, int64_t S) {
  const pf_model_config *c = &m->config;
  const int64_t nh = c->num_attention_heads, nkv = c->num_key_value_heads, hd = c->head_dim;
  float *q = randf((size_t)(B * S * nh * hd), 7), *k = randf((size_t)(B * S * nkv * hd), 8);
  float *v = randf((size_t)(B * S * nkv * hd), 9), *o = randf((size_t)(B * S * nh * hd), 10);
  int64_t *len = malloc((size_t)B * sizeof *len);
  for (int64_t b = 0; b < B; b++)
    len[b] = S;
  const int nthr = omp_get_max_threads();
  const int64_t keys = (S + PF_ATTN_KB - 1) / PF_ATTN_KB * PF_ATTN_KB;
  const size_t per = pf_attn_scratch_floats(hd, keys);
  float *scratch = malloc((size_t)nthr * per * sizeof(float));
  pf_attn_job j = {.batch = B,
                   .seq = S,
                   .n_heads = nh,
                   .n_kv = nkv,
                   .hd = hd,
                   .scale = 0.125f,
                   .q = q,
                   .ldq = nh * hd,
                   .k = k,
                   .v = v,
                   .ldkv = nkv * hd,
                   .bstride = S * nkv * hd,
                   .len = len,
                   .out = o,
                   .ldo = nh * hd};
  double best = 1e30;
  for (int r = 0; r < 3; r++) {
    double t0 = now();
    for (int64_t l = 0; l < m->n_layers; l++)
      pf_attn_run(&j, scratch, per, nthr);
    best = fmin(best, now() - t0);
  }
  free(q);
  free(k);
  free(v);
  free(o);
  free(len);
  free(scratch);
  return best;
}

static int cmp_double(const void *a, const void *b) {
  const double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* The decode against the read bandwidth in the same seconds: ROUNDS rounds of
 * (the read of read_bandwidth_gbs, once per variant, the best of the round;
 * one decode step, not timed; then STEPS timed single-token decode steps), each
 * round's ratio = its mean timed step over weight_bytes / its read. The untimed
 * step: the first step after the 3 GiB of reads took 11-13 ms (~20 %) longer
 * than the next seven on average (AMD Zen 5 VM, 2026-12-07, three runs of 16
 * rounds), a cost of the measurement that steady decoding does not have. The host's bandwidth moves
 * within seconds, so the best read of the whole run against a whole run's mean decode (the figure
 * above) is the strict bound; the median of these ratios is the like-for-like
 * one. Both are printed. */
static void interleaved_decode(const pf_model *m, const int32_t *prompt, double wbytes) {
  enum { ROUNDS = 12, STEPS = 8 };
  pf_err err = {0};
  pf_decoder *d = NULL;
  float *logits = malloc((size_t)m->config.vocab_size * sizeof *logits);
  if (!logits) exit(1);
  if (pf_decoder_new(m, 16 + ROUNDS * (STEPS + 1), &d, &err) ||
      pf_decoder_feed(d, prompt, 16, logits, NULL, &err))
    die("decoder", &err);
  double ratio[ROUNDS], ms[ROUNDS], gbs[ROUNDS];
  int32_t tok = prompt[15];
  for (int r = 0; r < ROUNDS; r++) {
    gbs[r] = read_bandwidth_gbs(1);
    double t0 = now();
    for (int s = 0; s <= STEPS; s++) {
      if (s == 1) t0 = now(); /* step 0 follows the read: not timed */
      if (pf_decoder_feed(d, &tok, 1, logits, NULL, &err)) die("decode step", &err);
      int32_t arg = 0; /* greedy, as pf_generate_greedy */
      for (int64_t v = 1; v < m->config.vocab_size; v++)
        if (logits[v] > logits[arg]) arg = (int32_t)v;
      tok = arg;
    }
    ms[r] = (now() - t0) * 1e3 / STEPS;
    ratio[r] = ms[r] * 1e-3 / (wbytes / (gbs[r] * 1e9));
  }
  qsort(ratio, ROUNDS, sizeof *ratio, cmp_double);
  qsort(ms, ROUNDS, sizeof *ms, cmp_double);
  qsort(gbs, ROUNDS, sizeof *gbs, cmp_double);
  printf("decode interleaved with reads: %d rounds of (read, 1 untimed + %d steps): median %.2fx "
         "the bound "
         "(best round %.2fx); medians %.1f ms/token, read %.1f GB/s\n",
         ROUNDS, STEPS, (ratio[ROUNDS / 2 - 1] + ratio[ROUNDS / 2]) / 2, ratio[0],
         (ms[ROUNDS / 2 - 1] + ms[ROUNDS / 2]) / 2, (gbs[ROUNDS / 2 - 1] + gbs[ROUNDS / 2]) / 2);
  pf_decoder_free(d);
  free(logits);
}

int main(int argc, char **argv) {
  const char *spec = argc > 1 ? argv[1] : "synthetic:llama-1b";
  const int64_t B = argc > 2 ? atoll(argv[2]) : 4, S = argc > 3 ? atoll(argv[3]) : 512;
  const int64_t new_tokens = argc > 4 ? atoll(argv[4]) : 64;
  pf_err err = {0};
  char *dir = NULL;
  pf_model *m = NULL;
  if (pf_kernels_init(&err)) die("kernels", &err);
  if (pf_synth_is_spec(spec) ? pf_synth_resolve(spec, &dir, NULL, &err)
                             : ((dir = strdup(spec)) == NULL))
    die("resolve", &err);
  if (pf_model_load(dir, &m, &err)) die("load", &err);
  const pf_model_config *c = &m->config;
  const double params = (double)pf_model_param_count(m);
  const double wbytes = (double)pf_model_weight_bytes(m);
  printf("kernels: %s\nmodel: %s (%s), %.3f B params, %.2f GB weights, %d threads\n",
         pf_kernels_describe(), spec, dir, params * 1e-9, wbytes * 1e-9, omp_get_max_threads());

  const double sg = sgemm_gflops(), lin = bf16_linear_gflops(B * S), bw = read_bandwidth_gbs(3);
  printf("sgemm 2048^3 f32: %.1f GFLOP/s; bf16 linear %lldx8192x2048: %.1f GFLOP/s; "
         "read bandwidth: %.1f GB/s\n",
         sg, (long long)(B * S), lin, bw);

  const double t = prefill_seconds(m, B, S), ta = attention_seconds(m, B, S);
  const double attn_flops = 4.0 * (double)c->num_hidden_layers * (double)c->num_attention_heads *
                            (double)c->head_dim * (double)B * (double)S * (double)(S + 1) / 2;
  const double flops = 2.0 * params * (double)(B * S) + attn_flops;
  printf("prefill %lld x %lld: %.2f s, %.0f tokens/s, %.1f GFLOP/s = %.0f%% of sgemm, %.0f%% of "
         "the bf16 linear rate\n",
         (long long)B, (long long)S, t, (double)(B * S) / t, flops / t * 1e-9,
         100 * flops / t * 1e-9 / sg, 100 * flops / t * 1e-9 / lin);
  printf("  attention kernel alone: %.2f s for %.1f GFLOP (%.1f GFLOP/s), %.0f%% of the prefill\n",
         ta, attn_flops * 1e-9, attn_flops / ta * 1e-9, 100 * ta / t);

  if (new_tokens <= 0) { /* prefill only */
    pf_model_release(m);
    free(dir);
    return 0;
  }
  int32_t prompt[16];
  for (int i = 0; i < 16; i++)
    prompt[i] = (int32_t)((i * 7919 + 1) % c->vocab_size);
  /* The read bandwidth of this VM moves by 20-30 % within minutes, so each decode
   * run is set against the bandwidth measured just before and just after it (the
   * higher of the two: the stricter bound); the run closest to its own bound is
   * reported, with every run's figures on the line after. */
  pf_generate_result r = {0}, best = {0};
  double best_ratio = 1e30, best_bw = 0, rep_bw[3], rep_tps[3];
  double bw_prev = read_bandwidth_gbs(3);
  for (int rep = 0; rep < 3; rep++) {
    if (pf_generate_greedy(m, prompt, 16, new_tokens, -1, &r, NULL, &err)) die("generate", &err);
    const double bw_next = read_bandwidth_gbs(3), bw_rep = fmax(bw_prev, bw_next);
    const double ratio = bw_rep / (wbytes * 1e-9) / r.decode_tokens_per_second;
    rep_bw[rep] = bw_rep;
    rep_tps[rep] = r.decode_tokens_per_second;
    if (ratio < best_ratio) {
      best_ratio = ratio;
      best_bw = bw_rep;
      pf_generate_result_free(&best);
      best = r;
    } else {
      pf_generate_result_free(&r);
    }
    bw_prev = bw_next;
  }
  const double bound = best_bw / (wbytes * 1e-9);
  printf("decode: %lld tokens, %.2f tokens/s (%.1f ms/token); bound %.2f tokens/s "
         "(%.1f GB/s / %.2f GB) -> %.2fx the bound; prefill of 16 tokens %.3f s\n",
         (long long)best.n_tokens, best.decode_tokens_per_second,
         1e3 / best.decode_tokens_per_second, bound, best_bw, wbytes * 1e-9, best_ratio,
         best.prefill_seconds);
  printf("  each decode run: tokens/s (read GB/s beside it, ratio to its bound):");
  for (int rep = 0; rep < 3; rep++)
    printf(" %.2f (%.1f, %.2fx)", rep_tps[rep], rep_bw[rep],
           rep_bw[rep] / (wbytes * 1e-9) / rep_tps[rep]);
  printf("\n");
  pf_generate_result_free(&best);
  interleaved_decode(m, prompt, wbytes);
  pf_model_release(m);
  free(dir);
  return 0;
}
