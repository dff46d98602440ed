/* bench_decode_ops.c — where a decode step's time goes, op by op.
 *
 * Build (CMake, not part of `all`; linked with -Wl,--wrap for the calls timed):
 *   cmake --build build --target bench_decode_ops && ./build/bench_decode_ops
 * Usage:
 *   bench_decode_ops [MODEL [STEPS [PROMPT]]]
 *   defaults: synthetic:llama-1b, 100 single-token steps after a 16-token prompt
 *   (PROMPT tokens, fed 512 at a time: the steps' attention reads PROMPT + step
 *   cached positions; bench/README.md "Attention at long contexts").
 *
 * Every call of pf_linear / pf_linear_many (the products), pf_fwd_norm,
 * pf_rope_apply, pf_attn_run and pf_act_mul made by the decode steps is timed
 * (clock_gettime around the real function). Before each step the same products
 * run once as a plain pass (untimed by the wrappers, timed as a whole), so the
 * products inside a step can be set against the products alone in the same
 * seconds (the host's bandwidth moves within seconds). Prints, as medians over
 * the steps: the time per call of each small op, and per step the products, the
 * pass, the small ops and what is left (residual adds, the embedding, the final
 * norm, the logits' argmax by the caller is not included).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "forward_int.h"
#include "generate.h"
#include "synthetic.h"

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
  const double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return n ? v[n / 2] : 0.0;
}

/* ---- the timed calls ---- */

enum { K_PROD, K_NORM, K_ROPE, K_ATTN, K_ACT, K_COUNT };
static const char *const k_name[K_COUNT] = {"products", "norm", "rope", "attention", "act*up"};

static int g_on;                 /* record the calls (the decode steps only) */
static double g_sum[K_COUNT];    /* seconds inside each kind, this step */
static double *g_calls[K_COUNT]; /* microseconds of each call, all steps */
static int g_ncalls[K_COUNT], g_cap[K_COUNT];

static void record(int kind, double t0) {
  if (!g_on) return;
  const double dt = now() - t0;
  g_sum[kind] += dt;
  if (g_ncalls[kind] == g_cap[kind]) {
    g_cap[kind] = g_cap[kind] ? 2 * g_cap[kind] : 4096;
    g_calls[kind] = realloc(g_calls[kind], (size_t)g_cap[kind] * sizeof *g_calls[kind]);
    if (!g_calls[kind]) exit(1);
  }
  g_calls[kind][g_ncalls[kind]++] = dt * 1e6;
}

pf_status __real_pf_linear(const float *x, int64_t m, int64_t k, const pf_tensor *w,
                           const pf_tensor *bias, float *y, pf_workspace *ws, pf_err *err);
pf_status __real_pf_linear_many(const float *x, int64_t m, int64_t k, int n,
                                const pf_tensor *const w[], const pf_tensor *const bias[],
                                float *const y[], pf_workspace *ws, pf_err *err);
void __real_pf_fwd_norm(const pf_forward *f, float *y, const float *x, const float *w,
                        const float *b, int64_t rows);
pf_status __real_pf_rope_apply(const pf_rope_table *t, float *x, int64_t n_tok, int64_t n_heads,
                               int64_t ld, const int64_t *pos, pf_err *err);
void __real_pf_attn_run(const pf_attn_job *j, float *scratch, size_t scratch_per_thr, int nthr);
void __real_pf_act_mul(pf_act a, float *out, const float *g, const float *u, int64_t n);

pf_status __wrap_pf_linear(const float *x, int64_t m, int64_t k, const pf_tensor *w,
                           const pf_tensor *bias, float *y, pf_workspace *ws, pf_err *err) {
  const double t0 = now();
  const pf_status s = __real_pf_linear(x, m, k, w, bias, y, ws, err);
  record(K_PROD, t0);
  return s;
}

pf_status __wrap_pf_linear_many(const float *x, int64_t m, int64_t k, int n,
                                const pf_tensor *const w[], const pf_tensor *const bias[],
                                float *const y[], pf_workspace *ws, pf_err *err) {
  const double t0 = now();
  const pf_status s = __real_pf_linear_many(x, m, k, n, w, bias, y, ws, err);
  record(K_PROD, t0);
  return s;
}

void __wrap_pf_fwd_norm(const pf_forward *f, float *y, const float *x, const float *w,
                        const float *b, int64_t rows) {
  const double t0 = now();
  __real_pf_fwd_norm(f, y, x, w, b, rows);
  record(K_NORM, t0);
}

pf_status __wrap_pf_rope_apply(const pf_rope_table *t, float *x, int64_t n_tok, int64_t n_heads,
                               int64_t ld, const int64_t *pos, pf_err *err) {
  const double t0 = now();
  const pf_status s = __real_pf_rope_apply(t, x, n_tok, n_heads, ld, pos, err);
  record(K_ROPE, t0);
  return s;
}

void __wrap_pf_attn_run(const pf_attn_job *j, float *scratch, size_t scratch_per_thr, int nthr) {
  const double t0 = now();
  __real_pf_attn_run(j, scratch, scratch_per_thr, nthr);
  record(K_ATTN, t0);
}

void __wrap_pf_act_mul(pf_act a, float *out, const float *g, const float *u, int64_t n) {
  const double t0 = now();
  __real_pf_act_mul(a, out, g, u, n);
  record(K_ACT, t0);
}

/* ---- the pass: the decode's products alone, grouped as the layers group them ---- */

static void products_pass(const pf_model *m, const float *x, float *const y[4]) {
  pf_err err = {0};
  const int64_t H = m->config.hidden_size;
  for (int64_t l = 0; l < m->config.num_hidden_layers; l++) {
    const pf_layer *w = &m->layers[l];
    const pf_tensor *const none[3] = {NULL, NULL, NULL};
    const pf_tensor *const qkv[3] = {w->q_proj, w->k_proj, w->v_proj};
    __real_pf_linear_many(x, 1, H, 3, qkv, none, y, NULL, &err);
    __real_pf_linear(x, 1, w->o_proj->shape[1], w->o_proj, NULL, y[3], NULL, &err);
    if (w->gate_proj) {
      const pf_tensor *const gu[2] = {w->gate_proj, w->up_proj};
      __real_pf_linear_many(x, 1, H, 2, gu, none, y, NULL, &err);
    } else
      __real_pf_linear(x, 1, H, w->up_proj, NULL, y[0], NULL, &err);
    __real_pf_linear(y[0], 1, w->down_proj->shape[1], w->down_proj, NULL, y[3], NULL, &err);
  }
  const pf_tensor *head = m->lm_head ? m->lm_head : m->embed_tokens;
  __real_pf_linear(x, 1, head->shape[1], head, NULL, y[0], NULL, &err);
}

int main(int argc, char **argv) {
  const char *spec = argc > 1 ? argv[1] : "synthetic:llama-1b";
  const int steps = argc > 2 ? atoi(argv[2]) : 100, plen = argc > 3 ? atoi(argv[3]) : 16;
  if (steps < 1 || plen < 1) {
    fprintf(stderr,
            "bench_decode_ops: expected positive numbers of steps and prompt tokens, got %s %s\n",
            argv[2], argc > 3 ? argv[3] : "16");
    return 2;
  }
  pf_err err = {0};
  char *dir = NULL;
  pf_model *m = NULL;
  pf_decoder *d = NULL;
  if (pf_kernels_init(&err) || pf_synth_resolve(spec, &dir, NULL, &err) ||
      pf_model_load(dir, &m, &err) || pf_decoder_new(m, plen + steps, &d, &err)) {
    fprintf(stderr, "bench_decode_ops: %s\n", err.msg);
    return 1;
  }
  const int64_t V = m->config.vocab_size,
                width = m->config.intermediate_size > V ? m->config.intermediate_size : V;
  float *logits = malloc((size_t)V * sizeof *logits), *x = calloc((size_t)width, sizeof *x);
  float *y[4];
  for (int i = 0; i < 4; i++)
    if (!(y[i] = calloc((size_t)width + 4096, sizeof *y[i]))) return 1;
  if (!logits || !x) return 1;
  for (int64_t i = 0; i < width; i++)
    x[i] = 0.01f * (float)(i % 7);
  int32_t *prompt = malloc((size_t)plen * sizeof *prompt);
  if (!prompt) return 1;
  for (int i = 0; i < plen; i++)
    prompt[i] = (int32_t)((i * 31 + 1) % V);
  for (int i = 0; i < plen; i += 512)
    if (pf_decoder_feed(d, prompt + i, plen - i < 512 ? plen - i : 512, logits, NULL, &err)) {
      fprintf(stderr, "bench_decode_ops: %s\n", err.msg);
      return 1;
    }
  products_pass(m, x, y); /* warm */

  double *step = malloc((size_t)steps * sizeof *step), *pass = malloc((size_t)steps * sizeof *pass);
  double *per[K_COUNT], *rest = malloc((size_t)steps * sizeof *rest);
  for (int k = 0; k < K_COUNT; k++)
    per[k] = malloc((size_t)steps * sizeof *per[k]);
  int32_t tok = prompt[plen - 1];
  for (int s = 0; s < steps; s++) {
    double t0 = now();
    products_pass(m, x, y);
    pass[s] = (now() - t0) * 1e3;
    memset(g_sum, 0, sizeof g_sum);
    g_on = 1;
    t0 = now();
    if (pf_decoder_feed(d, &tok, 1, logits, NULL, &err)) {
      fprintf(stderr, "bench_decode_ops: step %d: %s\n", s, err.msg);
      return 1;
    }
    step[s] = (now() - t0) * 1e3;
    g_on = 0;
    double timed = 0;
    for (int k = 0; k < K_COUNT; k++) {
      per[k][s] = g_sum[k] * 1e3;
      timed += g_sum[k] * 1e3;
    }
    rest[s] = step[s] - timed;
    tok = (int32_t)((tok * 7 + 1) % V);
  }

  printf("%s\nmodel: %s, %lld layers; %d decode steps at positions %d-%d, a pass of the same "
         "products before each\n",
         pf_kernels_describe(), spec, (long long)m->config.num_hidden_layers, steps, plen,
         plen - 1 + steps);
  printf("per call, median (us):");
  for (int k = K_NORM; k < K_COUNT; k++)
    printf(" %s %.1f (%d calls)%s", k_name[k], median(g_calls[k], g_ncalls[k]), g_ncalls[k],
           k + 1 < K_COUNT ? ";" : "\n");
  printf("per step, median (ms): step %.2f; products %.2f (the pass alone %.2f);",
         median(step, steps), median(per[K_PROD], steps), median(pass, steps));
  for (int k = K_NORM; k < K_COUNT; k++)
    printf(" %s %.3f;", k_name[k], median(per[k], steps));
  printf(" the rest %.3f\n", median(rest, steps));
  return 0;
}
