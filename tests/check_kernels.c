/* check_kernels.c — kernel initialisation and the linear-layer kernels (GEMM,
 * GEMV, AMX, AVX512-BF16, sgemm) against their reference twins; the row kernels
 * (RMSNorm, SwiGLU, softmax, dot/axpy, RoPE) are check_rowops.c.
 *
 * Inputs are pseudo-random (fixed seeds). Every kernel runs under each ISA level
 * this CPU has (scalar, AVX2, AVX-512) and is compared with its pf_ref_* twin
 * (double accumulation). Tolerance:
 *   GEMM/GEMV  |y - ref| <= 1e-5 * sum_k |x_k * w_k| + 1e-6   (float32 accumulation;
 *              blocked sums stay far below K*eps of the L1 mass)
 */
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kern_internal.h"
#include "kernutil.h"
#include "testutil.h"

/* ---- helpers ---- */

/* Random weights of dtype dt as raw bits: magnitudes roughly 2^-7 .. 2^3, some zeros,
 * and (F16) some subnormals. */
static void *make_weights(pf_dtype dt, int64_t count) {
  void *w = malloc((size_t)(count > 0 ? count : 1) * pf_dtype_size(dt));
  ck_assert_ptr_nonnull(w);
  for (int64_t i = 0; i < count; i++) {
    uint64_t r = rng_next();
    if (dt == PF_DTYPE_F32) {
      ((float *)w)[i] = rng_uniform(-2.0f, 2.0f);
    } else if (dt == PF_DTYPE_BF16) {
      uint16_t e = (uint16_t)(120 + r % 11), man = (uint16_t)((r >> 8) & 0x7f);
      ((uint16_t *)w)[i] = (uint16_t)(((r >> 20) & 1) << 15 | e << 7 | man);
      if (r % 97 == 0) ((uint16_t *)w)[i] = 0;
    } else {
      uint16_t e = (uint16_t)(10 + r % 8), man = (uint16_t)((r >> 8) & 0x3ff);
      if (r % 53 == 0) e = 0; /* subnormal */
      ((uint16_t *)w)[i] = (uint16_t)(((r >> 20) & 1) << 15 | e << 10 | man);
    }
  }
  return w;
}

static double w_abs(const void *w, pf_dtype dt, int64_t off) {
  if (dt == PF_DTYPE_F32) return fabs(((const float *)w)[off]);
  uint16_t h = ((const uint16_t *)w)[off];
  return fabs(dt == PF_DTYPE_BF16 ? pf_ref_bf16_to_f32(h) : pf_ref_f16_to_f32(h));
}

static const char *dt_name(pf_dtype dt) {
  return pf_dtype_st_name(dt);
}

/* ---- init / describe ---- */

START_TEST(test_init_idempotent) {
  pf_err err;
  ck_assert_int_eq(pf_kernels_init(&err), PF_OK);
  const char *d1 = pf_kernels_describe();
  char copy[1200];
  snprintf(copy, sizeof copy, "%s", d1);
  ck_assert_int_eq(pf_kernels_init(&err), PF_OK);
  ck_assert_int_eq(pf_kernels_init(NULL), PF_OK);
  ck_assert_ptr_eq(pf_kernels_describe(), d1);
  ck_assert_str_eq(pf_kernels_describe(), copy);
  const pf_kernels_info *info = pf_kernels_info_get();
  ck_assert_ptr_nonnull(info);
  ck_assert_int_ge(info->blis_arch_id, 0);
  ck_assert_int_ge(info->threads, 1);
}
END_TEST

static void *init_thread(void *arg) {
  (void)arg;
  return (void *)(intptr_t)pf_kernels_init(NULL);
}

START_TEST(test_init_concurrent) {
  pthread_t th[4];
  for (int i = 0; i < 4; i++)
    ck_assert_int_eq(pthread_create(&th[i], NULL, init_thread, NULL), 0);
  for (int i = 0; i < 4; i++) {
    void *rv;
    pthread_join(th[i], &rv);
    ck_assert_int_eq((int)(intptr_t)rv, PF_OK);
  }
  ck_assert_ptr_nonnull(pf_kernels_info_get());
}
END_TEST

START_TEST(test_describe_names_arch) {
  const char *d = pf_kernels_describe();
  ck_assert_ptr_nonnull(d);
  ck_assert_int_gt((int)strlen(d), 10);
  const pf_kernels_info *info = pf_kernels_info_get();
  ck_assert_ptr_nonnull(info);
  ck_assert_int_gt((int)strlen(info->blis_arch), 0);
  char want[64];
  snprintf(want, sizeof want, "arch %s", info->blis_arch);
  ck_assert_msg(strstr(d, want) != NULL, "describe '%s' lacks '%s'", d, want);
  ck_assert_msg(strstr(d, "BLIS ") == d, "describe '%s' should start with the BLIS version", d);
  ck_assert_msg(strstr(d, "thread") != NULL, "describe '%s' lacks the thread count", d);
  /* with AVX-512 F/BW/DQ/VL pfrun must have chosen skx (unless the user overrode) */
  if (!getenv("BLIS_ARCH_TYPE") && strstr(info->features, "avx512f/bw/dq/vl"))
    ck_assert_str_eq(info->blis_arch, "skx");
}
END_TEST

START_TEST(test_parse_arch) {
  pf_err err;
  int id = -2;
  ck_assert_int_eq(pf_kernels_parse_arch("generic", &id, &err), PF_OK);
  ck_assert_int_eq(id, 25);
  ck_assert_int_eq(pf_kernels_parse_arch("25", &id, &err), PF_OK);
  ck_assert_int_eq(id, 25);
  ck_assert_int_eq(pf_kernels_parse_arch("Generic", &id, &err), PF_OK);
  ck_assert_int_eq(pf_kernels_parse_arch("foo", &id, &err), PF_ERR_INVALID);
  ck_assert_int_eq(id, -1);
  pf_assert_err(err, "BLIS_ARCH_TYPE");
  pf_assert_err(err, "'foo'");
  pf_assert_err(err, "generic=25");
  ck_assert_int_eq(pf_kernels_parse_arch("99", &id, &err), PF_ERR_INVALID);
  pf_assert_err(err, "unknown arch");
  ck_assert_int_eq(pf_kernels_parse_arch("knc", &id, &err), PF_ERR_INVALID); /* not built */
  pf_assert_err(err, "not built");
  ck_assert_int_eq(pf_kernels_parse_arch("armsve", &id, &err), PF_ERR_INVALID);
  ck_assert_int_eq(pf_kernels_parse_arch(NULL, &id, &err), PF_ERR_INVALID);
}
END_TEST

/* These two need a process in which BLIS was never initialised: Check's fork mode
 * gives every test its own process (the runner itself never calls the kernels). */
START_TEST(test_user_arch_respected) {
  if (getenv("CK_FORK") && strcmp(getenv("CK_FORK"), "no") == 0) return;
  setenv("BLIS_ARCH_TYPE", "generic", 1);
  ck_assert_int_eq(pf_kernels_init(NULL), PF_OK);
  const pf_kernels_info *info = pf_kernels_info_get();
  ck_assert_str_eq(info->blis_arch, "generic");
  ck_assert_msg(strstr(info->arch_source, "BLIS_ARCH_TYPE=generic"), "%s", info->arch_source);
  ck_assert_str_eq(getenv("BLIS_ARCH_TYPE"), "25"); /* translated for BLIS's strtol */
  /* and a GEMM still works on the generic kernels */
  float x[5 * 3], w[2 * 3], y[5 * 2], r[5 * 2];
  fill(x, 15, -1, 1);
  fill(w, 6, -1, 1);
  ck_assert_int_eq(pf_gemm_xwt(5, 2, 3, x, 3, w, PF_DTYPE_F32, 3, NULL, 0, y, 2, NULL, NULL),
                   PF_OK);
  pf_ref_gemm_xwt(5, 2, 3, x, 3, w, PF_DTYPE_F32, 3, NULL, 0, r, 2);
  for (int i = 0; i < 10; i++)
    ck_assert_float_eq_tol(y[i], r[i], 1e-5);
}
END_TEST

START_TEST(test_user_arch_invalid) {
  if (getenv("CK_FORK") && strcmp(getenv("CK_FORK"), "no") == 0) return;
  setenv("BLIS_ARCH_TYPE", "knc", 1);
  pf_err err;
  ck_assert_int_eq(pf_kernels_init(&err), PF_ERR_INVALID);
  pf_assert_err(err, "BLIS_ARCH_TYPE");
  ck_assert_int_eq(pf_kernels_init(&err), PF_ERR_INVALID); /* same answer again */
  ck_assert_ptr_null(pf_kernels_info_get());
  ck_assert_msg(strstr(pf_kernels_describe(), "not initialised"), "%s", pf_kernels_describe());
  float x[8] = {0}, w[8] = {0}, y[8];
  ck_assert_int_eq(pf_gemm_xwt(1, 1, 8, x, 8, w, PF_DTYPE_F32, 8, NULL, 0, y, 1, NULL, &err),
                   PF_ERR_INVALID);
}
END_TEST

/* ---- GEMM / GEMV ---- */

/* Set: check_gemm_case calls pf_kern_gemm_dpbf16 itself (BF16 weights, k > 0),
 * whatever path pf_gemm_xwt would choose (AMX machines), adding the bias after. */
static int g_direct_dpbf16;

static pf_status run_gemm(int64_t m, int64_t n, int64_t k, const float *x, int64_t ldx,
                          const void *w, pf_dtype dt, int64_t ldw, const float *bias, float beta,
                          float *y, int64_t ldy, pf_workspace *ws, pf_err *err) {
  if (!g_direct_dpbf16)
    return pf_gemm_xwt(m, n, k, x, ldx, w, dt, ldw, bias, beta, y, ldy, ws, err);
  void *scratch = NULL;
  ck_assert_int_eq(
      posix_memalign(&scratch, 64, pf_kern_dpbf16_scratch_bytes(m, k, omp_get_max_threads())), 0);
  pf_kern_gemm_dpbf16(m, n, k, x, ldx, w, ldw, beta, y, ldy, scratch);
  free(scratch);
  for (int64_t i = 0; bias && i < m; i++)
    for (int64_t j = 0; j < n; j++)
      y[i * ldy + j] += bias[j];
  return PF_OK;
}

/* Runs pf_gemm_xwt on [m, n, k] (with padded strides when `pad`) against the twin. */
static void check_gemm_case(int64_t m, int64_t n, int64_t k, pf_dtype dt, int with_bias, float beta,
                            int pad, pf_workspace *ws) {
  const int64_t ldx = k + (pad ? 3 : 0), ldw = k + (pad ? 5 : 0), ldy = n + (pad ? 2 : 0);
  float *x = falloc(m * ldx), *bias = with_bias ? falloc(n) : NULL;
  float *y = falloc(m * ldy), *r = falloc(m * ldy);
  void *w = make_weights(dt, n * ldw);
  fill(x, m * ldx, -1.0f, 1.0f);
  if (bias) fill(bias, n, -1.0f, 1.0f);
  fill(y, m * ldy, -1.0f, 1.0f);
  if (beta == 0.0f)
    for (int64_t i = 0; i < m * ldy; i++)
      y[i] = NAN; /* beta 0: y must not be read */
  memcpy(r, y, (size_t)(m * ldy) * sizeof(float));
  pf_err err;
  pf_status st = run_gemm(m, n, k, x, ldx, w, dt, ldw, bias, beta, y, ldy, ws, &err);
  ck_assert_msg(st == PF_OK, "gemm %lldx%lldx%lld: %s", (long long)m, (long long)n, (long long)k,
                err.msg);
  /* the AMX and AVX512-BF16 paths multiply BF16-rounded activations (kernels.h, pf_matmul) */
  if (pf_kern_bf16x_taken(m, k, dt) || g_direct_dpbf16)
    pf_ref_gemm_xwt_bf16x(m, n, k, x, ldx, w, dt, ldw, bias, beta, r, ldy);
  else
    pf_ref_gemm_xwt(m, n, k, x, ldx, w, dt, ldw, bias, beta, r, ldy);
  /* |W| converted once, not once per row of x (the conversions were a third of this
   * suite's time under the sanitizers) */
  double *wa = malloc((size_t)(n * k + 1) * sizeof *wa);
  ck_assert_ptr_nonnull(wa);
  for (int64_t j = 0; j < n; j++)
    for (int64_t p = 0; p < k; p++)
      wa[j * k + p] = w_abs(w, dt, j * ldw + p);
  for (int64_t i = 0; i < m; i++)
    for (int64_t j = 0; j < n; j++) {
      double mass = 1e-6 + (bias ? fabs(bias[j]) * 1e-5 : 0.0);
      for (int64_t p = 0; p < k; p++)
        mass += 1e-5 * fabs(x[i * ldx + p]) * wa[j * k + p];
      if (beta != 0.0f) mass += 1e-5 * fabs(r[i * ldy + j]);
      const double d = fabs((double)y[i * ldy + j] - r[i * ldy + j]);
      ck_assert_msg(d <= mass, "gemm m=%lld n=%lld k=%lld %s isa=%s y[%lld,%lld]=%.9g ref=%.9g",
                    (long long)m, (long long)n, (long long)k, dt_name(dt),
                    pf_isa_name(pf_kernels_isa()), (long long)i, (long long)j,
                    (double)y[i * ldy + j], (double)r[i * ldy + j]);
    }
  free(x), free(bias), free(y), free(r), free(w), free(wa);
}

static const int64_t gemm_shapes[][3] = {
    {1, 1, 1},       {1, 37, 19},    {1, 64, 16},     {2, 65, 33}, {3, 100, 130},
    {4, 257, 67},    {1, 300, 2048}, {4, 96, 1000},   {5, 64, 48}, {9, 300, 1000},
    {16, 130, 2051}, {17, 300, 129}, {64, 1030, 257}, {33, 7, 5},
};

START_TEST(test_gemm_vs_ref) {
  const pf_dtype dts[3] = {PF_DTYPE_F32, PF_DTYPE_BF16, PF_DTYPE_F16};
  pf_isa levels[3];
  const int nl = isa_levels(levels);
  pf_workspace *ws;
  ck_assert_int_eq(pf_workspace_new(&ws, NULL), PF_OK);
  rng_seed(1);
  const pf_matmul mm_prev = pf_kernels_set_matmul((pf_matmul)_i);
  for (int l = 0; l < nl; l++) {
    pf_isa prev = pf_kernels_set_isa(levels[l]);
    for (size_t s = 0; s < sizeof gemm_shapes / sizeof gemm_shapes[0]; s++)
      for (int d = 0; d < 3; d++) {
        const int64_t *sh = gemm_shapes[s];
        check_gemm_case(sh[0], sh[1], sh[2], dts[d], (int)(s + d) % 2, 0.0f, 0, ws);
        check_gemm_case(sh[0], sh[1], sh[2], dts[d], (int)(s + d + 1) % 2, 1.0f, 1, NULL);
      }
    pf_kernels_set_isa(prev);
  }
  pf_kernels_set_matmul(mm_prev);
  pf_workspace_free(ws);
}
END_TEST

/* The AMX BF16 path on ragged shapes: n and k not multiples of 32 (padded W
 * blocks), m not a multiple of 32 (padded X), several L2 sweeps of X, k above
 * one sweep's budget, beta and bias; against the bf16-activation twin. */
START_TEST(test_gemm_amx_shapes) {
  if (!pf_kernels_have_amx()) {
    fprintf(stderr, "test_gemm_amx_shapes: skipped: this CPU/kernel has no AMX-BF16\n");
    return;
  }
  const pf_matmul prev = pf_kernels_set_matmul(PF_MATMUL_BF16);
  const size_t l2_prev = pf_kern_amx_l2_bytes;
  static const int64_t shapes[][3] = {{5, 40, 64},   {17, 31, 33},    {33, 77, 70}, {64, 32, 32},
                                      {100, 65, 95}, {47, 130, 2050}, {200, 96, 64}};
  rng_seed(11);
  for (int budget = 0; budget < 2; budget++) {
    pf_kern_amx_l2_bytes = budget ? 4096 : l2_prev; /* 4 KiB: one m-pair per sweep */
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
      check_gemm_case(shapes[s][0], shapes[s][1], shapes[s][2], PF_DTYPE_BF16, (int)s % 2, 0.0f,
                      (int)s % 2, NULL);
      check_gemm_case(shapes[s][0], shapes[s][1], shapes[s][2], PF_DTYPE_BF16, 1, 0.5f, 1, NULL);
    }
  }
  pf_kern_amx_l2_bytes = l2_prev;
  /* f32 precision on the same machine takes the widening path: exact twin */
  pf_kernels_set_matmul(PF_MATMUL_F32);
  check_gemm_case(33, 77, 70, PF_DTYPE_BF16, 1, 0.0f, 0, NULL);
  pf_kernels_set_matmul(prev);
}
END_TEST

/* The AVX512-BF16 kernel (gemm_dpbf16.c) against the bf16-activation twin:
 * m, n, k not multiples of the 6 x 64 register block or of 32 (odd k: a zero
 * partner in the last pair), m below one block, n over several column chunks,
 * beta 0 / 0.5, bias, padded strides; with the default blocking and with tiny
 * blocks (k slices of 32, packed W chunks of 64 k, one m block per sweep,
 * 64-column chunks) so every loop runs several times. Called directly (so AMX machines test it too)
 * and, where it is the active path, through pf_gemm_xwt. */
START_TEST(test_gemm_dpbf16_shapes) {
  ck_assert_int_eq(pf_kernels_init(NULL), PF_OK);
  if (!pf_kern_dpbf16) {
    fprintf(stderr, "test_gemm_dpbf16_shapes: skipped: this CPU has no AVX512-BF16\n");
    return;
  }
  const pf_matmul prev = pf_kernels_set_matmul(PF_MATMUL_BF16);
  const int64_t kc = pf_kern_dpbf16_kc, mc = pf_kern_dpbf16_mc, nc = pf_kern_dpbf16_nc;
  const size_t wbytes = pf_kern_dpbf16_wbytes;
  static const int64_t shapes[][3] = {{5, 40, 64},    {3, 17, 1},      {17, 31, 33},
                                      {33, 77, 70},   {64, 130, 95},   {100, 65, 96},
                                      {47, 130, 513}, {13, 140, 1025}, {40, 29, 1026}};
  const int64_t dmax = pf_kern_dpbf16_direct_max_m;
  rng_seed(12);
  for (int small = 0; small < 4; small++) { /* 2, 3: W packed whatever m (the direct path off) */
    pf_kern_dpbf16_direct_max_m = small >= 2 ? 0 : dmax;
    pf_kern_dpbf16_kc = small % 2 ? 32 : kc;
    pf_kern_dpbf16_mc = small % 2 ? 6 : mc;
    pf_kern_dpbf16_nc = small % 2 ? 64 : nc;
    pf_kern_dpbf16_wbytes = small % 2 ? 8192 : wbytes; /* W chunks of 64 columns x 64 k */
    for (int direct = 0; direct < 2; direct++) {
      if (!direct && !pf_kern_dpbf16_active()) continue; /* AMX takes pf_gemm_xwt */
      g_direct_dpbf16 = direct;
      for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int64_t *sh = shapes[s];
        if (!direct) ck_assert(pf_kern_bf16x_taken(sh[0], sh[2], PF_DTYPE_BF16) || sh[0] <= 4);
        check_gemm_case(sh[0], sh[1], sh[2], PF_DTYPE_BF16, (int)s % 2, 0.0f, (int)s % 2, NULL);
        check_gemm_case(sh[0], sh[1], sh[2], PF_DTYPE_BF16, 1, 0.5f, 1, NULL);
      }
      g_direct_dpbf16 = 0;
    }
  }
  pf_kern_dpbf16_kc = kc, pf_kern_dpbf16_mc = mc, pf_kern_dpbf16_nc = nc;
  pf_kern_dpbf16_wbytes = wbytes;
  pf_kern_dpbf16_direct_max_m = dmax;
  /* below the AVX-512 ISA level, or with f32 precision: the widening path, exact twin */
  const pf_isa isa = pf_kernels_set_isa(PF_ISA_AVX2);
  ck_assert(!pf_kern_bf16x_taken(33, 70, PF_DTYPE_BF16) || pf_kernels_have_amx());
  check_gemm_case(33, 77, 70, PF_DTYPE_BF16, 1, 0.0f, 0, NULL);
  pf_kernels_set_isa(isa);
  pf_kernels_set_matmul(PF_MATMUL_F32);
  ck_assert(!pf_kern_bf16x_taken(33, 70, PF_DTYPE_BF16));
  check_gemm_case(33, 77, 70, PF_DTYPE_BF16, 1, 0.0f, 0, NULL);
  pf_kernels_set_matmul(prev);
}
END_TEST

/* W read in place (small m, even k) and W packed give the same bits: same k
 * slices, and each pair's products are exact whichever operand is broadcast.
 * Row counts around the 16 / 32-row blocks and the 6-row blocks, columns around
 * the 12-column block and the 96-column tasks, beta 0 and 0.5, padded strides,
 * default and 32-wide k slices. */
START_TEST(test_gemm_dpbf16_direct_same_bits) {
  ck_assert_int_eq(pf_kernels_init(NULL), PF_OK);
  if (!pf_kern_dpbf16) {
    fprintf(stderr, "test_gemm_dpbf16_direct_same_bits: skipped: this CPU has no AVX512-BF16\n");
    return;
  }
  static const int64_t ms[] = {1, 5, 16, 17, 31, 32, 33, 47, 100, 130, 256};
  static const int64_t ns[] = {1, 12, 13, 97, 200};
  static const int64_t ks[] = {2, 30, 64, 510, 1026};
  const int64_t dmax = pf_kern_dpbf16_direct_max_m, kc = pf_kern_dpbf16_kc;
  rng_seed(21);
  for (int slice = 0; slice < 2; slice++) {
    pf_kern_dpbf16_kc = slice ? 32 : kc;
    for (size_t a = 0; a < sizeof ms / sizeof ms[0]; a++)
      for (size_t b = 0; b < sizeof ns / sizeof ns[0]; b++)
        for (size_t c = 0; c < sizeof ks / sizeof ks[0]; c++) {
          const int64_t m = ms[a], n = ns[b], k = ks[c], pad = (int64_t)((a + b + c) % 2);
          const int64_t ldx = k + 3 * pad, ldw = k + 4 * pad, ldy = n + 2 * pad;
          const float beta = (a + c) % 2 ? 0.5f : 0.0f;
          float *x = falloc(m * ldx), *y0 = falloc(m * ldy), *y1 = falloc(m * ldy);
          uint16_t *w = make_weights(PF_DTYPE_BF16, n * ldw);
          fill(x, m * ldx, -1.0f, 1.0f);
          fill(y0, m * ldy, -1.0f, 1.0f);
          memcpy(y1, y0, sizeof(float) * (size_t)(m * ldy));
          for (int direct = 0; direct < 2; direct++) {
            pf_kern_dpbf16_direct_max_m = direct ? m : 0;
            void *scratch = NULL;
            ck_assert_int_eq(
                posix_memalign(&scratch, 64,
                               pf_kern_dpbf16_scratch_bytes(m, k, omp_get_max_threads())),
                0);
            pf_kern_gemm_dpbf16(m, n, k, x, ldx, w, ldw, beta, direct ? y1 : y0, ldy, scratch);
            free(scratch);
          }
          ck_assert_msg(!memcmp(y0, y1, sizeof(float) * (size_t)(m * ldy)),
                        "m=%lld n=%lld k=%lld beta=%g kc=%lld: W in place differs from W packed",
                        (long long)m, (long long)n, (long long)k, (double)beta,
                        (long long)pf_kern_dpbf16_kc);
          free(x), free(y0), free(y1), free(w);
        }
  }
  pf_kern_dpbf16_kc = kc;
  pf_kern_dpbf16_direct_max_m = dmax;
}
END_TEST

START_TEST(test_matmul_setting) {
  pf_err err;
  pf_matmul m;
  ck_assert_int_eq(pf_matmul_parse("F32", &m, &err), PF_OK);
  ck_assert_int_eq(m, PF_MATMUL_F32);
  ck_assert_int_eq(pf_matmul_parse("bf16", &m, &err), PF_OK);
  ck_assert_int_eq(m, PF_MATMUL_BF16);
  ck_assert_int_eq(pf_matmul_parse("fp8", &m, &err), PF_ERR_INVALID);
  pf_assert_err(err, "expected f32 or bf16, got 'fp8'");
  const pf_matmul prev = pf_kernels_set_matmul(PF_MATMUL_F32);
  ck_assert_int_eq(pf_kernels_matmul(), PF_MATMUL_F32);
  ck_assert_msg(strstr(pf_kernels_describe(), "BF16 weights: f32 matmul"), "%s",
                pf_kernels_describe());
  ck_assert_str_eq(pf_kernels_matmul_path(), "f32");
  ck_assert_int_eq(pf_kernels_matmul_effective(), PF_MATMUL_F32);
  pf_kernels_set_matmul(PF_MATMUL_BF16);
  if (pf_kernels_have_amx()) {
    ck_assert_msg(strstr(pf_kernels_describe(), "bf16 matmul on AMX"), "%s", pf_kernels_describe());
    ck_assert_str_eq(pf_kernels_matmul_path(), "bf16 amx");
  } else if (pf_kern_dpbf16) { /* the next best: AVX512-BF16, unless the ISA is capped */
    ck_assert_msg(strstr(pf_kernels_describe(), "bf16 matmul on AVX512-BF16"), "%s",
                  pf_kernels_describe());
    ck_assert_str_eq(pf_kernels_matmul_path(), "bf16 avx512-bf16");
    ck_assert_int_eq(pf_kernels_have_bf16_matmul(), 1);
    const pf_isa isa = pf_kernels_set_isa(PF_ISA_AVX2);
    ck_assert_str_eq(pf_kernels_matmul_path(), "f32");
    ck_assert_int_eq(pf_kernels_matmul_effective(), PF_MATMUL_F32);
    ck_assert_int_eq(pf_kernels_have_bf16_matmul(), 0);
    ck_assert_msg(strstr(pf_kernels_describe(), "AVX512-BF16 off"), "%s", pf_kernels_describe());
    pf_kernels_set_isa(isa);
  } else {
    ck_assert_msg(strstr(pf_kernels_describe(), "f32 matmul (no AMX or AVX512-BF16)"), "%s",
                  pf_kernels_describe());
    ck_assert_str_eq(pf_kernels_matmul_path(), "f32");
  }
  ck_assert_int_eq(pf_kernels_matmul_effective(),
                   pf_kernels_have_bf16_matmul() ? PF_MATMUL_BF16 : PF_MATMUL_F32);
  pf_kernels_set_matmul(prev);
  ck_assert_str_eq(pf_matmul_name(PF_MATMUL_F32), "f32");
  /* BF16 rounding twin: ties to even, 8 significant bits */
  ck_assert_float_eq(pf_ref_round_bf16(1.0f + 1.0f / 256), 1.0f);              /* tie -> even */
  ck_assert_float_eq(pf_ref_round_bf16(1.0f + 3.0f / 256), 1.0f + 4.0f / 256); /* tie -> even */
  ck_assert_float_eq(pf_ref_round_bf16(-3.0f), -3.0f);
}
END_TEST

/* The GEMV threads read their own shares of W's rows and take units from the
 * back of the others' when done (pf_kern_gemv_unit_bytes, at m <= 4), or take
 * chunks in turn (pf_kern_gemv_chunk_bytes): whatever the unit or chunk size,
 * including units of one row per stream, chunks of one 4-row group, sizes that
 * do not divide n, the former one share per thread (chunk 0), 2 threads and 5
 * shares (3 emptied by stealing alone) or 3 threads, every output is the same bits,
 * and within the tolerance of the twin; so is the AVX2 kernel with and without
 * its software prefetch (pf_kern_gemv_prefetch_avx2 / _avx512), and reading one
 * stream or several side by side (pf_kern_gemv_streams; chunks of 4 rows give
 * streams one row long, n = 301 and 97 leave rows over). m up to PF_GEMV_MAX_M
 * with the f32 matmul (so BF16 weights stay on the GEMV path), under every ISA. */
START_TEST(test_gemv_chunks_same_bits) {
  static const int64_t shapes[][3] = {{1, 301, 67},  {2, 203, 75},  {3, 1030, 129},
                                      {4, 97, 2051}, {5, 300, 130}, {16, 530, 257}};
  const size_t chunks[] = {0, 64, 4096, 100000, (size_t)1 << 20};
  const size_t units[] = {1, 4096, 100000, (size_t)256 << 10}; /* 1: one row per stream */
  const pf_dtype dts[3] = {PF_DTYPE_F32, PF_DTYPE_BF16, PF_DTYPE_F16};
  pf_isa levels[3];
  const int nl = isa_levels(levels);
  const size_t chunk_prev = pf_kern_gemv_chunk_bytes, unit_prev = pf_kern_gemv_unit_bytes,
               prefetch_prev = pf_kern_gemv_prefetch_avx2,
               prefetch512_prev = pf_kern_gemv_prefetch_avx512;
  const int streams_prev = pf_kern_gemv_streams;
  const pf_matmul mm_prev = pf_kernels_set_matmul(PF_MATMUL_F32);
  rng_seed(5);
  for (int l = 0; l < nl; l++) {
    const pf_isa prev = pf_kernels_set_isa(levels[l]);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
      for (int d = 0; d < 3; d++) {
        const int64_t m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
        float *x = falloc(m * k), *bias = falloc(n), *y0 = falloc(m * n), *y = falloc(m * n);
        void *w = make_weights(dts[d], n * k);
        fill(x, m * k, -1.0f, 1.0f);
        fill(bias, n, -1.0f, 1.0f);
        fill(y0, m * n, -1.0f, 1.0f);
        memcpy(y, y0, (size_t)(m * n) * sizeof(float));
        pf_err err;
        pf_kern_gemv_unit_bytes = pf_kern_gemv_chunk_bytes = 0;
        pf_kern_gemv_prefetch_avx2 = pf_kern_gemv_prefetch_avx512 = 0;
        pf_kern_gemv_streams = 1;
        ck_assert_int_eq(pf_gemm_xwt(m, n, k, x, k, w, dts[d], k, bias, 0.5f, y0, n, NULL, &err),
                         PF_OK);
        /* c = 0 would be the reference's own settings (no chunks, one stream); the
         * chunks first (units 0), then the units with 2 and 3 threads */
        const size_t nc = sizeof chunks / sizeof chunks[0], nu = sizeof units / sizeof units[0];
        for (size_t c = 1; c < 2 * nc + 4 * nu; c++) {
          float *yc = falloc(m * n);
          memcpy(yc, y, (size_t)(m * n) * sizeof(float));
          const size_t cu = c < 2 * nc ? 0 : (c - 2 * nc) / 2 % nu;
          pf_kern_gemv_unit_bytes = c < 2 * nc ? 0 : units[cu];
          pf_kern_gemv_chunk_bytes = c < 2 * nc ? chunks[c / 2] : 64; /* m > 4 */
          pf_kern_gemv_streams = c % 2 ? streams_prev : 1;
          pf_kern_gemv_prefetch_avx2 = c / 2 % 2 ? prefetch_prev : 64; /* the default, or near */
          pf_kern_gemv_prefetch_avx512 = c / 2 % 2 ? prefetch512_prev : 64;
          const int threads = omp_get_max_threads();
          if (c >= 2 * nc + 2 * nu)
            omp_set_num_threads(3);
          else if (c >= 2 * nc)
            pf_kern_gemv_shares = 5;
          ck_assert_int_eq(pf_gemm_xwt(m, n, k, x, k, w, dts[d], k, bias, 0.5f, yc, n, NULL, &err),
                           PF_OK);
          omp_set_num_threads(threads);
          const int shares = pf_kern_gemv_shares;
          pf_kern_gemv_shares = 0;
          ck_assert_msg(memcmp(yc, y0, (size_t)(m * n) * sizeof(float)) == 0,
                        "gemv %lldx%lldx%lld %s isa=%s: units of %zu bytes, chunks of %zu bytes, "
                        "%d stream(s), %d threads, %d shares change the result",
                        (long long)m, (long long)n, (long long)k, dt_name(dts[d]),
                        pf_isa_name(levels[l]), pf_kern_gemv_unit_bytes, pf_kern_gemv_chunk_bytes,
                        pf_kern_gemv_streams, c >= 2 * nc + 2 * nu ? 3 : threads, shares);
          free(yc);
        }
        pf_kern_gemv_unit_bytes = unit_prev;
        pf_kern_gemv_chunk_bytes = 64;
        pf_kern_gemv_prefetch_avx2 = prefetch_prev;
        pf_kern_gemv_prefetch_avx512 = prefetch512_prev;
        pf_kern_gemv_streams = streams_prev;
        check_gemm_case(m, n, k, dts[d], 1, 0.5f, 1, NULL);
        free(x), free(bias), free(y0), free(y), free(w);
      }
    pf_kernels_set_isa(prev);
  }
  pf_kern_gemv_chunk_bytes = chunk_prev;
  pf_kern_gemv_unit_bytes = unit_prev;
  pf_kern_gemv_prefetch_avx2 = prefetch_prev;
  pf_kern_gemv_prefetch_avx512 = prefetch512_prev;
  pf_kern_gemv_streams = streams_prev;
  pf_kernels_set_matmul(mm_prev);
}
END_TEST

static pf_tensor *tensor2(pf_dtype dt, int64_t r, int64_t c, const void *src);

/* pf_linear_many (the q/k/v and gate/up products of a decode step in one
 * parallel region, threads passing from one weight to the next without a
 * barrier) gives the same bits as one pf_linear per weight: weights of every
 * dtype and of row counts that leave rows past the last 4-row group, float32
 * bias or none, m = 1..4 (together) and m = 5 (one after the other), a weight
 * too small for threads (one after the other), units of one row, 5 shares on
 * the threads and 3 threads, every ISA. A BF16 bias goes the pf_linear way. */
START_TEST(test_linear_many_same_bits) {
  const int64_t k = 129, ns[4] = {301, 1030, 262, 4}; /* 4 x 129 < PF_KERN_PAR_MIN */
  const pf_dtype dts[4] = {PF_DTYPE_BF16, PF_DTYPE_F32, PF_DTYPE_F16, PF_DTYPE_BF16};
  pf_isa levels[3];
  const int nl = isa_levels(levels);
  const size_t unit_prev = pf_kern_gemv_unit_bytes;
  const pf_matmul mm_prev = pf_kernels_set_matmul(PF_MATMUL_F32);
  rng_seed(9);
  pf_tensor *w[4], *b[4];
  for (int i = 0; i < 4; i++) {
    void *raw = make_weights(dts[i], ns[i] * k);
    w[i] = tensor2(dts[i], ns[i], k, raw);
    free(raw);
    float *bias = falloc(ns[i]);
    fill(bias, ns[i], -1.0f, 1.0f);
    int64_t bshape[1] = {ns[i]};
    ck_assert_int_eq(pf_tensor_new(PF_DTYPE_F32, 1, bshape, &b[i], NULL), PF_OK);
    memcpy(pf_tensor_mutable_data(b[i]), bias, (size_t)ns[i] * sizeof(float));
    free(bias);
  }
  float *x = falloc(5 * k);
  fill(x, 5 * k, -1.0f, 1.0f);
  pf_err err;
  for (int l = 0; l < nl; l++) {
    const pf_isa prev = pf_kernels_set_isa(levels[l]);
    for (int64_t m = 1; m <= 5; m++)
      for (int np = 1; np <= 4; np++)
        for (int c = 0; c < 4; c++) { /* default; units of 1 byte; 5 shares; 3 threads */
          const pf_tensor *ww[4], *bb[4];
          float *ref[4], *got[4];
          for (int i = 0; i < np; i++) {
            ww[i] = w[(i + c) % 4];
            bb[i] = (i + m) % 2 ? b[(i + c) % 4] : NULL;
            const int64_t n = ww[i]->shape[0];
            ref[i] = falloc(m * n);
            got[i] = falloc(m * n);
            fill(got[i], m * n, -9.0f, 9.0f); /* no leftovers may show through */
            ck_assert_int_eq(pf_linear(x, m, k, ww[i], bb[i], ref[i], NULL, &err), PF_OK);
          }
          const int threads = omp_get_max_threads();
          if (c == 1) pf_kern_gemv_unit_bytes = 1;
          if (c == 2) pf_kern_gemv_shares = 5;
          if (c == 3) omp_set_num_threads(3);
          ck_assert_int_eq(pf_linear_many(x, m, k, np, ww, bb, got, NULL, &err), PF_OK);
          omp_set_num_threads(threads);
          pf_kern_gemv_shares = 0;
          pf_kern_gemv_unit_bytes = unit_prev;
          for (int i = 0; i < np; i++) {
            ck_assert_msg(memcmp(ref[i], got[i], (size_t)(m * ww[i]->shape[0]) * sizeof(float)) ==
                              0,
                          "linear_many m=%lld, %d weights, weight %d (%s, %lld rows), case %d, "
                          "isa=%s: not the bits of pf_linear",
                          (long long)m, np, i, dt_name(ww[i]->dtype), (long long)ww[i]->shape[0], c,
                          pf_isa_name(levels[l]));
            free(ref[i]);
            free(got[i]);
          }
        }
    pf_kernels_set_isa(prev);
  }
  /* errors: the weight count, a wrong shape */
  const pf_tensor *ww[2] = {w[0], w[1]}, *bb[2] = {NULL, NULL};
  float *yy[2] = {x, x};
  ck_assert_int_eq(pf_linear_many(x, 1, k, 5, ww, bb, yy, NULL, &err), PF_ERR_INVALID);
  pf_assert_err(err, "linear: expected 1 to 4 weights, got 5");
  ck_assert_int_eq(pf_linear_many(x, 1, k + 1, 2, ww, bb, yy, NULL, &err), PF_ERR_INVALID);
  pf_assert_err(err, "linear: weight: expected shape [N, 130], got [301, 129]");
  for (int i = 0; i < 4; i++) {
    pf_tensor_release(w[i]);
    pf_tensor_release(b[i]);
  }
  free(x);
  pf_kernels_set_matmul(mm_prev);
}
END_TEST

/* Several panels (n above the panel height, at least 512 rows) on the GEMM path. */
START_TEST(test_gemm_multi_panel) {
  rng_seed(2);
  check_gemm_case(PF_GEMV_MAX_M + 1, 2200, 600, PF_DTYPE_BF16, 1, 0.0f, 0, NULL);
  check_gemm_case(PF_GEMV_MAX_M + 5, 2600, 700, PF_DTYPE_F16, 0, 0.5f, 1, NULL);
}
END_TEST

/* BLIS's packed path (the default) and BLIS's own choice (its "sup" code below its
 * size thresholds, pf_kern_blis_sup) both against the twin, at the small m where
 * they differ; float32 matmul so BF16 weights reach BLIS too. */
START_TEST(test_gemm_blis_paths) {
  static const int64_t shapes[][3] = {
      {17, 300, 129}, {64, 1030, 257}, {100, 70, 600}, {300, 33, 90}};
  const pf_matmul mm_prev = pf_kernels_set_matmul(PF_MATMUL_F32);
  rng_seed(3);
  for (int sup = 1; sup >= 0; sup--) {
    pf_kern_blis_sup = sup;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
      check_gemm_case(shapes[s][0], shapes[s][1], shapes[s][2], PF_DTYPE_F32, (int)s % 2, 0.0f,
                      (int)s % 2, NULL);
      check_gemm_case(shapes[s][0], shapes[s][1], shapes[s][2], PF_DTYPE_BF16, 1, 0.5f, 1, NULL);
    }
  }
  ck_assert_int_eq(pf_kern_blis_sup, 0); /* the default is restored */
  pf_kernels_set_matmul(mm_prev);
}
END_TEST

/* _i: the matmul precision (the widening panel, or AMX packing when available). */
START_TEST(test_workspace_reused) {
  const pf_matmul prev = pf_kernels_set_matmul((pf_matmul)_i);
  pf_workspace *ws;
  ck_assert_int_eq(pf_workspace_new(&ws, NULL), PF_OK);
  rng_seed(3);
  check_gemm_case(40, 512, 300, PF_DTYPE_BF16, 0, 0.0f, 0, ws);
  check_gemm_case(24, 100, 300, PF_DTYPE_F16, 0, 0.0f, 0, ws);
  const size_t cap = pf_workspace_bytes(ws);
  ck_assert_uint_gt(cap, 0);
  check_gemm_case(40, 512, 300, PF_DTYPE_BF16, 0, 0.0f, 0, ws);
  check_gemm_case(24, 100, 300, PF_DTYPE_F16, 0, 0.0f, 0, ws);
  check_gemm_case(33, 100, 290, PF_DTYPE_BF16, 0, 0.0f, 0, ws);
  ck_assert_uint_eq(pf_workspace_bytes(ws), cap); /* no growth, no new pages */
  pf_workspace_free(ws);
  pf_workspace_free(NULL);
  pf_kernels_set_matmul(prev);
}
END_TEST

static pf_tensor *tensor2(pf_dtype dt, int64_t r, int64_t c, const void *src) {
  int64_t shape[2] = {r, c};
  pf_tensor *t = NULL;
  ck_assert_int_eq(pf_tensor_new(dt, 2, shape, &t, NULL), PF_OK);
  memcpy(pf_tensor_mutable_data(t), src, t->nbytes);
  return t;
}

START_TEST(test_linear_tensor) {
  rng_seed(4);
  const int64_t m = PF_GEMV_MAX_M + 3, n = 40, k = 24;
  float *x = falloc(m * k), *y = falloc(m * n), *r = falloc(m * n), bias[40];
  fill(x, m * k, -1, 1);
  fill(bias, n, -1, 1);
  void *wb = make_weights(PF_DTYPE_BF16, n * k);
  uint16_t bias_bf16[40];
  for (int i = 0; i < n; i++)
    bias_bf16[i] = pf_f32_to_bf16(bias[i]);
  pf_tensor *w = tensor2(PF_DTYPE_BF16, n, k, wb);
  int64_t bshape[1] = {n};
  pf_tensor *b = NULL;
  ck_assert_int_eq(pf_tensor_new(PF_DTYPE_BF16, 1, bshape, &b, NULL), PF_OK);
  memcpy(pf_tensor_mutable_data(b), bias_bf16, sizeof bias_bf16);
  float bias_rounded[40];
  for (int i = 0; i < n; i++)
    bias_rounded[i] = pf_ref_bf16_to_f32(bias_bf16[i]);
  pf_err err;
  for (int64_t mm = 1; mm <= m; mm += m - 1) { /* GEMV path (m=1) and GEMM path */
    ck_assert_int_eq(pf_linear(x, mm, k, w, b, y, NULL, &err), PF_OK);
    if (pf_kern_bf16x_taken(mm, k, PF_DTYPE_BF16))
      pf_ref_gemm_xwt_bf16x(mm, n, k, x, k, wb, PF_DTYPE_BF16, k, bias_rounded, 0, r, n);
    else
      pf_ref_gemm_xwt(mm, n, k, x, k, wb, PF_DTYPE_BF16, k, bias_rounded, 0, r, n);
    for (int64_t i = 0; i < mm * n; i++)
      ck_assert_float_eq_tol(y[i], r[i], 1e-4);
  }
  pf_tensor_release(w);
  pf_tensor_release(b);
  free(x), free(y), free(r), free(wb);
}
END_TEST

START_TEST(test_linear_errors) {
  float x[16] = {0}, y[64];
  pf_err err;
  float wdata[8 * 4] = {0};
  pf_tensor *w = tensor2(PF_DTYPE_F32, 8, 4, wdata);
  ck_assert_int_eq(pf_linear(x, 2, 2, w, NULL, y, NULL, &err), PF_ERR_INVALID);
  pf_assert_err(err, "linear: weight: expected shape [N, 2], got [8, 4]");
  ck_assert_int_eq(pf_linear(x, 2, 4, NULL, NULL, y, NULL, &err), PF_ERR_INVALID);
  pf_assert_err(err, "NULL tensor");
  int64_t bshape[1] = {7};
  pf_tensor *b = NULL;
  ck_assert_int_eq(pf_tensor_new(PF_DTYPE_F32, 1, bshape, &b, NULL), PF_OK);
  ck_assert_int_eq(pf_linear(x, 2, 4, w, b, y, NULL, &err), PF_ERR_INVALID);
  pf_assert_err(err, "linear: bias: expected shape [8], got [7]");
  pf_tensor *planned = NULL;
  int64_t shape[2] = {8, 4};
  ck_assert_int_eq(pf_tensor_new_planned(PF_DTYPE_BF16, 2, shape, &planned, NULL), PF_OK);
  ck_assert_int_eq(pf_linear(x, 2, 4, planned, NULL, y, NULL, &err), PF_ERR_INVALID);
  pf_assert_err(err, "planned tensor has no data");
  ck_assert_int_eq(pf_linear(NULL, 2, 4, w, NULL, y, NULL, &err), PF_ERR_INVALID);
  pf_assert_err(err, "NULL input");
  ck_assert_int_eq(pf_linear(x, -1, 4, w, NULL, y, NULL, &err), PF_ERR_INVALID);
  ck_assert_int_eq(pf_linear(x, 0, 4, w, NULL, NULL, NULL, &err), PF_OK); /* empty */
  ck_assert_int_eq(pf_gemm_xwt(2, 8, 4, x, 3, wdata, PF_DTYPE_F32, 4, NULL, 0, y, 8, NULL, &err),
                   PF_ERR_INVALID);
  pf_assert_err(err, "expected row strides ldx>=4");
  ck_assert_int_eq(pf_gemm_xwt(2, -8, 4, x, 4, wdata, PF_DTYPE_F32, 4, NULL, 0, y, 8, NULL, &err),
                   PF_ERR_INVALID);
  pf_assert_err(err, "expected sizes >= 0");
  ck_assert_int_eq(pf_gemm_xwt(2, 8, 4, x, 4, wdata, (pf_dtype)9, 4, NULL, 0, y, 8, NULL, &err),
                   PF_ERR_INVALID);
  /* k == 0: y = bias */
  float bias[3] = {1, 2, 3}, y0[6];
  ck_assert_int_eq(
      pf_gemm_xwt(2, 3, 0, NULL, 0, NULL, PF_DTYPE_BF16, 0, bias, 0, y0, 3, NULL, &err), PF_OK);
  ck_assert_float_eq(y0[4], 2.0f);
  pf_tensor_release(w);
  pf_tensor_release(b);
  pf_tensor_release(planned);
}
END_TEST

START_TEST(test_sgemm_vs_ref) {
  rng_seed(5);
  const int64_t m = 37, n = 29, k = 45;
  float *a = falloc(64 * 64), *b = falloc(64 * 64), *c = falloc(m * 40), *r = falloc(m * 40);
  fill(a, 64 * 64, -1, 1);
  fill(b, 64 * 64, -1, 1);
  for (int ta = 0; ta < 2; ta++)
    for (int tb = 0; tb < 2; tb++) {
      fill(c, m * 40, -1, 1);
      memcpy(r, c, (size_t)(m * 40) * sizeof(float));
      const int64_t lda = (ta ? m : k) + 2, ldb = (tb ? k : n) + 1;
      pf_err err;
      ck_assert_int_eq(pf_sgemm(ta, tb, m, n, k, 0.5f, a, lda, b, ldb, 0.25f, c, 40, &err), PF_OK);
      pf_ref_sgemm(ta, tb, m, n, k, 0.5f, a, lda, b, ldb, 0.25f, r, 40);
      for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++)
          ck_assert_float_eq_tol(c[i * 40 + j], r[i * 40 + j], 2e-5);
    }
  /* beta 0: C is not read (NaN garbage must not leak through) */
  for (int64_t i = 0; i < m * 40; i++)
    c[i] = NAN;
  ck_assert_int_eq(pf_sgemm(0, 0, m, n, k, 1.0f, a, k, b, n, 0.0f, c, 40, NULL), PF_OK);
  pf_ref_sgemm(0, 0, m, n, k, 1.0f, a, k, b, n, 0.0f, r, 40);
  for (int64_t i = 0; i < m; i++)
    for (int64_t j = 0; j < n; j++)
      ck_assert_float_eq_tol(c[i * 40 + j], r[i * 40 + j], 2e-5);
  pf_err err;
  ck_assert_int_eq(pf_sgemm(0, 1, m, n, k, 1, a, k - 1, b, k, 0, c, 40, &err), PF_ERR_INVALID);
  pf_assert_err(err, "lda>=45");
  free(a), free(b), free(c), free(r);
}
END_TEST

static Suite *make_suite(void) {
  Suite *s = suite_create("kernels");
  TCase *tc = tcase_create("init");
  tcase_add_test(tc, test_init_idempotent);
  tcase_add_test(tc, test_init_concurrent);
  tcase_add_test(tc, test_describe_names_arch);
  tcase_add_test(tc, test_parse_arch);
  tcase_add_test(tc, test_user_arch_respected);
  tcase_add_test(tc, test_user_arch_invalid);
  suite_add_tcase(s, tc);
  tc = tcase_create("gemm");
  tcase_set_timeout(tc, 300);
  tcase_add_loop_test(tc, test_gemm_vs_ref, PF_MATMUL_BF16, PF_MATMUL_F32 + 1);
  tcase_add_test(tc, test_gemm_amx_shapes);
  tcase_add_test(tc, test_gemm_dpbf16_shapes);
  tcase_add_test(tc, test_gemm_dpbf16_direct_same_bits);
  tcase_add_test(tc, test_matmul_setting);
  tcase_add_test(tc, test_gemm_multi_panel);
  tcase_add_test(tc, test_gemm_blis_paths);
  tcase_add_test(tc, test_gemv_chunks_same_bits);
  tcase_add_test(tc, test_linear_many_same_bits);
  tcase_add_loop_test(tc, test_workspace_reused, PF_MATMUL_BF16, PF_MATMUL_F32 + 1);
  tcase_add_test(tc, test_linear_tensor);
  tcase_add_test(tc, test_linear_errors);
  tcase_add_test(tc, test_sgemm_vs_ref);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return pf_test_main(make_suite);
}
