/* check_rowops.c — the row kernels (RMSNorm, SwiGLU, softmax, log-softmax, dot,
 * axpy) and RoPE against their reference twins; split from check_kernels.c.
 *
 * Inputs are pseudo-random (fixed seeds). Every kernel runs under each ISA level
 * this CPU has (scalar, AVX2, AVX-512) and is compared with its pf_ref_* twin
 * (double accumulation). Tolerances, and why:
 *   RMSNorm    relative 1e-5 per element (float32 sum of squares, one rsqrt)
 *   SiLU*mul   relative 2e-6 + 1e-30 absolute (polynomial exp, ~2 ulp, one divide)
 *   softmax    1e-6 absolute per probability, log-softmax / logsumexp 1e-5 absolute
 *   dot, axpy  1e-5 * sum |a*b| + 1e-6
 *   RoPE       1e-5 absolute on values of magnitude ~1 (float32 table vs double twin)
 * RoPE inv_freq golden values were computed once with numpy (float32 arithmetic,
 * the same operation order as transformers' _compute_default_rope_parameters and
 * _compute_llama3_parameters; torch evaluates `scalar / tensor` as
 * `tensor.reciprocal() * scalar`), see the comment above test_rope_inv_freq_golden.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernutil.h"
#include "testutil.h"

/* ---- row kernels ---- */

static const int64_t row_lens[] = {1, 7, 8, 15, 16, 17, 33, 100, 2048, 4095};
#define N_ROW_LENS (sizeof row_lens / sizeof row_lens[0])

START_TEST(test_rmsnorm_vs_ref) {
  pf_isa levels[3];
  const int nl = isa_levels(levels);
  rng_seed(6);
  for (int l = 0; l < nl; l++) {
    pf_isa prev = pf_kernels_set_isa(levels[l]);
    for (size_t s = 0; s < N_ROW_LENS; s++) {
      const int64_t n = row_lens[s], rows = 3;
      float *x = falloc(rows * n), *w = falloc(n), *y = falloc(rows * n), *r = falloc(rows * n);
      fill(x, rows * n, -3, 3);
      fill(w, n, 0.5f, 1.5f);
      pf_rmsnorm(y, x, w, rows, n, 1e-5f);
      pf_ref_rmsnorm(r, x, w, rows, n, 1e-5f);
      for (int64_t i = 0; i < rows * n; i++)
        ck_assert_msg(fabsf(y[i] - r[i]) <= 1e-5f * fabsf(r[i]) + 1e-7f, "n=%lld i=%lld %g vs %g",
                      (long long)n, (long long)i, (double)y[i], (double)r[i]);
      pf_rmsnorm(x, x, w, rows, n, 1e-5f); /* in place */
      for (int64_t i = 0; i < rows * n; i++)
        ck_assert_float_eq(x[i], y[i]);
      free(x), free(w), free(y), free(r);
    }
    pf_kernels_set_isa(prev);
  }
}
END_TEST

START_TEST(test_silu_mul_vs_ref) {
  pf_isa levels[3];
  const int nl = isa_levels(levels);
  rng_seed(7);
  const int64_t n = 20000 + 5;
  float *g = falloc(n), *u = falloc(n), *y = falloc(n), *r = falloc(n);
  fill(g, n, -12, 12);
  fill(u, n, -2, 2);
  g[0] = -100.0f, g[1] = 100.0f, g[2] = 0.0f, g[3] = -87.0f, g[4] = 88.5f, g[5] = -1e-8f;
  for (int l = 0; l < nl; l++) {
    pf_isa prev = pf_kernels_set_isa(levels[l]);
    pf_silu_mul(y, g, u, n);
    pf_ref_silu_mul(r, g, u, n);
    for (int64_t i = 0; i < n; i++)
      ck_assert_msg(fabsf(y[i] - r[i]) <= 2e-6f * fabsf(r[i]) + 1e-30f, "isa=%s g=%g: %g vs %g",
                    pf_isa_name(levels[l]), (double)g[i], (double)y[i], (double)r[i]);
    pf_kernels_set_isa(prev);
  }
  free(g), free(u), free(y), free(r);
}
END_TEST

START_TEST(test_softmax_vs_ref) {
  pf_isa levels[3];
  const int nl = isa_levels(levels);
  rng_seed(8);
  for (int l = 0; l < nl; l++) {
    pf_isa prev = pf_kernels_set_isa(levels[l]);
    for (size_t s = 0; s < N_ROW_LENS; s++) {
      const int64_t n = row_lens[s];
      float *x = falloc(n), *y = falloc(n), *r = falloc(n);
      fill(x, n, -20, 20);
      x[0] += 1000.0f;                 /* max subtraction matters */
      if (n > 3) x[n - 2] = -INFINITY; /* masked entry */
      memcpy(y, x, (size_t)n * sizeof(float));
      memcpy(r, x, (size_t)n * sizeof(float));
      pf_softmax_row(y, n);
      pf_ref_softmax_row(r, n);
      double sum = 0;
      for (int64_t i = 0; i < n; i++) {
        ck_assert_msg(fabsf(y[i] - r[i]) <= 1e-6f, "n=%lld i=%lld: %g vs %g", (long long)n,
                      (long long)i, (double)y[i], (double)r[i]);
        sum += y[i];
      }
      ck_assert_double_eq_tol(sum, 1.0, 1e-5);
      if (n > 3) ck_assert_float_eq(y[n - 2], 0.0f);
      ck_assert_double_eq_tol(pf_logsumexp(x, n), pf_ref_logsumexp(x, n), 1e-5);
      ck_assert_double_eq_tol(pf_log_softmax_row(y, x, n), pf_ref_log_softmax_row(r, x, n), 1e-5);
      for (int64_t i = 0; i < n; i++)
        if (isfinite(r[i])) ck_assert_float_eq_tol(y[i], r[i], 1e-5);
      free(x), free(y), free(r);
    }
    pf_kernels_set_isa(prev);
  }
}
END_TEST

/* On AVX-512 CPUs the softmax exponentials run 16 at a time (rowops.c exp16):
 * softmax, logsumexp and log-softmax must give the same bits as the AVX2 code,
 * on rows of every length up to 80 and longer ones, with masked (-inf) entries,
 * large and tiny (underflowing) scores. Skipped where the CPU has no AVX-512. */
START_TEST(test_softmax_avx512_same_bits) {
  pf_isa levels[3];
  if (isa_levels(levels) < 3) {
    printf("test_softmax_avx512_same_bits: no AVX-512 on this CPU, skipped\n");
    return;
  }
  rng_seed(10);
  for (int64_t n = 1; n <= 4100; n = n < 80 ? n + 1 : n * 3 + 7) {
    float *x = falloc(n), *y[2], *ls[2];
    double lse[2], lsr[2];
    fill(x, n, -30, 30);
    x[n / 2] += 60.0f;
    if (n > 5) x[3] = -INFINITY, x[n - 1] = -200.0f; /* masked, underflows to 0 */
    for (int v = 0; v < 2; v++) {
      const pf_isa prev = pf_kernels_set_isa(v ? PF_ISA_AVX512 : PF_ISA_AVX2);
      y[v] = falloc(n);
      ls[v] = falloc(n);
      memcpy(y[v], x, (size_t)n * sizeof(float));
      pf_softmax_row(y[v], n);
      lse[v] = pf_logsumexp(x, n);
      lsr[v] = pf_log_softmax_row(ls[v], x, n);
      pf_kernels_set_isa(prev);
    }
    ck_assert_msg(memcmp(y[0], y[1], (size_t)n * sizeof(float)) == 0, "softmax n=%lld",
                  (long long)n);
    ck_assert_msg(memcmp(ls[0], ls[1], (size_t)n * sizeof(float)) == 0, "log-softmax n=%lld",
                  (long long)n);
    ck_assert_msg(lse[0] == lse[1] && lsr[0] == lsr[1], "logsumexp n=%lld: %.17g vs %.17g",
                  (long long)n, lse[0], lse[1]);
    free(x), free(y[0]), free(y[1]), free(ls[0]), free(ls[1]);
  }
}
END_TEST

/* SiLU * up 16 at a time on AVX-512 CPUs (rowops.c silu_mul16): the same bits as
 * the AVX2 code, for lengths around the vector widths, a decode step's 8192 (one
 * thread) and a longer, threaded one, with saturating and tiny gates. */
START_TEST(test_silu_mul_avx512_same_bits) {
  pf_isa levels[3];
  if (isa_levels(levels) < 3) {
    printf("test_silu_mul_avx512_same_bits: no AVX-512 on this CPU, skipped\n");
    return;
  }
  rng_seed(11);
  static const int64_t longer[] = {47, 63, 64, 65, 127, 1000, 4096, 4111, 8192, 65539};
  for (size_t c = 0; c < 40 + sizeof longer / sizeof *longer; c++) {
    const int64_t n = c < 40 ? (int64_t)c + 1 : longer[c - 40];
    float *g = falloc(n), *u = falloc(n), *y[2];
    fill(g, n, -20, 20);
    fill(u, n, -2, 2);
    if (n > 4) g[0] = -100.0f, g[1] = 95.0f, g[2] = -1e-30f, g[n - 1] = -88.0f;
    for (int v = 0; v < 2; v++) {
      const pf_isa prev = pf_kernels_set_isa(v ? PF_ISA_AVX512 : PF_ISA_AVX2);
      y[v] = falloc(n);
      pf_silu_mul(y[v], g, u, n);
      pf_kernels_set_isa(prev);
    }
    for (int64_t i = 0; i < n; i++)
      ck_assert_msg(memcmp(&y[0][i], &y[1][i], sizeof(float)) == 0, "n=%lld i=%lld: %a vs %a",
                    (long long)n, (long long)i, (double)y[0][i], (double)y[1][i]);
    free(g), free(u), free(y[0]), free(y[1]);
  }
}
END_TEST

START_TEST(test_softmax_rows) {
  rng_seed(9);
  const int64_t rows = 40, n = 37, ld = 50;
  float *x = falloc(rows * ld), *r = falloc(rows * ld);
  fill(x, rows * ld, -5, 5);
  memcpy(r, x, (size_t)(rows * ld) * sizeof(float));
  pf_softmax_rows(x, rows, n, ld);
  for (int64_t i = 0; i < rows; i++) {
    pf_ref_softmax_row(r + i * ld, n);
    for (int64_t j = 0; j < ld; j++) /* padding untouched */
      ck_assert_float_eq_tol(x[i * ld + j], r[i * ld + j], 1e-6);
  }
  free(x), free(r);
}
END_TEST

START_TEST(test_dot_axpy_vs_ref) {
  pf_isa levels[3];
  const int nl = isa_levels(levels);
  rng_seed(10);
  for (int l = 0; l < nl; l++) {
    pf_isa prev = pf_kernels_set_isa(levels[l]);
    for (size_t s = 0; s < N_ROW_LENS; s++) {
      const int64_t n = row_lens[s];
      float *a = falloc(n), *b = falloc(n), *y = falloc(n), *r = falloc(n);
      fill(a, n, -1, 1);
      fill(b, n, -1, 1);
      double mass = 1e-6;
      for (int64_t i = 0; i < n; i++)
        mass += 1e-5 * fabs(a[i] * b[i]);
      ck_assert_double_le(fabs(pf_dot(a, b, n) - pf_ref_dot(a, b, n)), mass);
      memcpy(y, b, (size_t)n * sizeof(float));
      memcpy(r, b, (size_t)n * sizeof(float));
      pf_axpy(y, -0.75f, a, n);
      pf_ref_axpy(r, -0.75f, a, n);
      for (int64_t i = 0; i < n; i++)
        ck_assert_float_eq_tol(y[i], r[i], 1e-6);
      free(a), free(b), free(y), free(r);
    }
    pf_kernels_set_isa(prev);
  }
}
END_TEST

/* ---- RoPE ---- */

/* Golden inv_freq values, produced once with /usr/bin/python3 + numpy 1.24 (float32):
 *   f32 = np.float32
 *   def default(theta, dim):
 *       return f32(1) / np.power(f32(theta), np.arange(0, dim, 2).astype(f32) / f32(dim))
 *   def llama3(theta, dim, factor, lo, hi, orig):
 *       inv = default(theta, dim); wl = (f32(1) / inv) * f32(2 * math.pi)
 *       llama = np.where(wl > f32(orig / lo), inv / f32(factor), inv)
 *       smooth = ((f32(1) / wl) * f32(orig) - f32(lo)) / f32(hi - lo)
 *       smoothed = ((f32(1) - smooth) * llama) / f32(factor) + smooth * llama
 *       med = ~(wl < f32(orig / hi)) & ~(wl > f32(orig / lo))
 *       return np.where(med, smoothed, llama)
 *   llama3(500000.0, 64, 32.0, 1.0, 4.0, 8192)   # Llama 3.2 1B config
 *   default(10000.0, 16)
 */
static const double golden_llama32_1b[32] = {
    1.000000000e+00, 6.636012197e-01, 4.403666258e-01, 2.922278047e-01, 1.939227581e-01,
    1.286873817e-01, 8.539710194e-02, 5.666961893e-02, 3.760603070e-02, 2.495540865e-02,
    1.656044088e-02, 1.098952908e-02, 7.292665076e-03, 4.839421250e-03, 3.211446106e-03,
    1.290548011e-03, 4.295567051e-04, 9.708286234e-05, 1.946163866e-05, 1.291476838e-05,
    8.570255886e-06, 5.687231805e-06, 3.774054449e-06, 2.504466920e-06, 1.661967644e-06,
    1.102883630e-06, 7.318749340e-07, 4.856731266e-07, 3.222932889e-07, 2.138742303e-07,
    1.419272024e-07, 9.418307201e-08};
static const double golden_default_d16[8] = {1.000000000e+00, 3.162277639e-01, 1.000000015e-01,
                                             3.162277862e-02, 9.999999776e-03, 3.162277862e-03,
                                             1.000000047e-03, 3.162277862e-04};

START_TEST(test_rope_inv_freq_golden) {
  pf_rope_params p = pf_rope_default_params();
  p.rope_type = PF_ROPE_LLAMA3;
  p.rope_theta = 500000.0;
  p.head_dim = 64;
  p.factor = 32.0;
  p.low_freq_factor = 1.0;
  p.high_freq_factor = 4.0;
  p.original_max_position_embeddings = 8192;
  float inv[64];
  pf_err err;
  ck_assert_int_eq(pf_rope_inv_freq(&p, inv, &err), PF_OK);
  for (int i = 0; i < 32; i++)
    ck_assert_msg(fabs(inv[i] - golden_llama32_1b[i]) <= 1e-6 * golden_llama32_1b[i],
                  "llama3 inv_freq[%d] = %.9e, golden %.9e", i, (double)inv[i],
                  golden_llama32_1b[i]);
  p = pf_rope_default_params();
  p.head_dim = 16;
  ck_assert_int_eq(pf_rope_inv_freq(&p, inv, &err), PF_OK);
  for (int i = 0; i < 8; i++)
    ck_assert_msg(fabs(inv[i] - golden_default_d16[i]) <= 1e-6 * golden_default_d16[i],
                  "default inv_freq[%d] = %.9e, golden %.9e", i, (double)inv[i],
                  golden_default_d16[i]);
  /* linear: default / factor */
  p.rope_type = PF_ROPE_LINEAR;
  p.factor = 4.0;
  ck_assert_int_eq(pf_rope_inv_freq(&p, inv, &err), PF_OK);
  for (int i = 0; i < 8; i++)
    ck_assert_double_eq_tol(inv[i], golden_default_d16[i] / 4, 1e-6 * inv[i]);
}
END_TEST

START_TEST(test_rope_params_errors) {
  pf_rope_params p = pf_rope_default_params();
  float inv[8];
  pf_err err;
  p.head_dim = 7;
  ck_assert_int_eq(pf_rope_inv_freq(&p, inv, &err), PF_ERR_INVALID);
  pf_assert_err(err, "even head_dim");
  p = pf_rope_default_params();
  p.rope_type = PF_ROPE_LLAMA3;
  p.high_freq_factor = 0.5;
  ck_assert_int_eq(pf_rope_inv_freq(&p, inv, &err), PF_ERR_INVALID);
  pf_assert_err(err, "low_freq_factor < high_freq_factor");
  pf_rope_type type;
  ck_assert_int_eq(pf_rope_type_parse("llama3", &type, &err), PF_OK);
  ck_assert_int_eq(type, PF_ROPE_LLAMA3);
  ck_assert_int_eq(pf_rope_type_parse(NULL, &type, &err), PF_OK);
  ck_assert_int_eq(type, PF_ROPE_DEFAULT);
  ck_assert_int_eq(pf_rope_type_parse("yarn", &type, &err), PF_OK); /* (since issue 9) */
  ck_assert_int_eq(type, PF_ROPE_YARN);
  ck_assert_int_eq(pf_rope_type_parse("dynamic", &type, &err), PF_ERR_UNSUPPORTED);
  pf_assert_err(err, "got 'dynamic'");
  pf_rope_table *t = (pf_rope_table *)1;
  p = pf_rope_default_params();
  ck_assert_int_eq(pf_rope_table_new(&p, 0, &t, &err), PF_ERR_INVALID);
  ck_assert_ptr_null(t);
  pf_rope_table_free(NULL);
}
END_TEST

START_TEST(test_rope_apply_vs_ref) {
  pf_rope_params p = pf_rope_default_params();
  p.rope_type = PF_ROPE_LLAMA3;
  p.rope_theta = 500000.0;
  p.head_dim = 64;
  pf_rope_table *t;
  pf_err err;
  ck_assert_int_eq(pf_rope_table_new(&p, 5000, &t, &err), PF_OK);
  rng_seed(11);
  const int64_t n_tok = 9, n_heads = 3, ld = n_heads * 64 + 4;
  int64_t pos[9] = {0, 1, 2, 17, 100, 1023, 2048, 4095, 4999};
  float *x = falloc(n_tok * ld), *r = falloc(n_tok * ld);
  fill(x, n_tok * ld, -1, 1);
  memcpy(r, x, (size_t)(n_tok * ld) * sizeof(float));
  ck_assert_int_eq(pf_rope_apply(t, x, n_tok, n_heads, ld, pos, &err), PF_OK);
  pf_ref_rope_apply(t->inv_freq, 64, r, n_tok, n_heads, ld, pos);
  for (int64_t i = 0; i < n_tok * ld; i++)
    ck_assert_float_eq_tol(x[i], r[i], 1e-5);
  /* position 0 is the identity */
  float id[64], id0[64];
  fill(id, 64, -1, 1);
  memcpy(id0, id, sizeof id);
  int64_t p0 = 0;
  ck_assert_int_eq(pf_rope_apply(t, id, 1, 1, 64, &p0, &err), PF_OK);
  for (int i = 0; i < 64; i++)
    ck_assert_float_eq(id[i], id0[i]);
  /* out-of-range position: error, nothing written */
  int64_t bad[2] = {3, 5000};
  memcpy(r, x, (size_t)(n_tok * ld) * sizeof(float));
  ck_assert_int_eq(pf_rope_apply(t, x, 2, n_heads, ld, bad, &err), PF_ERR_INVALID);
  pf_assert_err(err, "token 1: expected a position in [0, 5000), got 5000");
  ck_assert_int_eq(memcmp(r, x, (size_t)(n_tok * ld) * sizeof(float)), 0);
  ck_assert_int_eq(pf_rope_apply(t, x, 2, n_heads, 10, pos, &err), PF_ERR_INVALID);
  pf_rope_table_free(t);
  free(x), free(r);
}
END_TEST

/* transformers' ACT2FN "tanh" and "linear" (GPT-2's activation_function may name
 * them): parsed, and computed as tanh and the identity */
START_TEST(test_act_tanh_linear) {
  pf_err err = {0};
  pf_act a;
  const float in[4] = {-2.0f, -0.5f, 0.0f, 0.75f};
  float x[4];
  ck_assert_int_eq(pf_act_parse("tanh", &a, &err), PF_OK);
  memcpy(x, in, sizeof x);
  pf_act_apply(a, x, 4);
  for (int i = 0; i < 4; i++)
    ck_assert_float_eq_tol(x[i], tanhf(in[i]), 1e-7f);
  ck_assert_int_eq(pf_act_parse("linear", &a, &err), PF_OK);
  memcpy(x, in, sizeof x);
  pf_act_apply(a, x, 4);
  for (int i = 0; i < 4; i++)
    ck_assert_float_eq(x[i], in[i]);
  ck_assert_int_eq(pf_act_parse("softsign", &a, &err), PF_ERR_UNSUPPORTED);
}
END_TEST

static Suite *make_suite(void) {
  Suite *s = suite_create("rowops");
  TCase *tc = tcase_create("rows");
  tcase_add_test(tc, test_rmsnorm_vs_ref);
  tcase_add_test(tc, test_act_tanh_linear);
  tcase_add_test(tc, test_silu_mul_vs_ref);
  tcase_add_test(tc, test_silu_mul_avx512_same_bits);
  tcase_add_test(tc, test_softmax_vs_ref);
  tcase_add_test(tc, test_softmax_avx512_same_bits);
  tcase_add_test(tc, test_softmax_rows);
  tcase_add_test(tc, test_dot_axpy_vs_ref);
  suite_add_tcase(s, tc);
  tc = tcase_create("rope");
  tcase_add_test(tc, test_rope_inv_freq_golden);
  tcase_add_test(tc, test_rope_params_errors);
  tcase_add_test(tc, test_rope_apply_vs_ref);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return pf_test_main(make_suite);
}
