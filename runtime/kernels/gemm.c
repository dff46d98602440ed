/* gemm.c — linear layers (Y = X·W^T + b) and the plain sgemm wrapper over BLIS.
 *
 * Half-precision weights: BLIS 0.9 has no mixed-precision sgemm, so W is widened
 * to float32 one panel of output rows at a time into the workspace, then BLIS
 * multiplies X by that panel. The panel is bounded (~8 MiB) so a 128k-row
 * lm_head never needs a full float32 copy, and it is reused across panels and
 * calls, so the steady state allocates nothing and takes no first-touch page
 * faults. Widening costs one pass over W (memory bound, ~1-3% of a prefill GEMM).
 *
 * Small m (decode) goes to pf_kern_gemv instead, which reads W once in its
 * stored dtype.
 */
#include "kern_internal.h"

#include <blis.h>
#include <omp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct pf_workspace {
  float *panel; /* [panel_cap floats], 64-byte aligned */
  size_t panel_cap;
  float *bias; /* [bias_cap floats] */
  size_t bias_cap;
  float *bf16x; /* AMX / AVX512-BF16 paths: packed X + per-thread W blocks [bf16x_cap floats] */
  size_t bf16x_cap;
};

/* The workspace used when the caller passes NULL. */
static pf_workspace g_default_ws;
static pthread_mutex_t g_default_lock = PTHREAD_MUTEX_INITIALIZER;

size_t pf_kern_panel_bytes = (size_t)8 << 20;
int64_t pf_kern_gemv_max_m = PF_GEMV_MAX_M;
int64_t pf_kern_amx_min_m = PF_AMX_MIN_M;
int64_t pf_kern_dpbf16_min_m = PF_DPBF16_MIN_M;

pf_status pf_workspace_new(pf_workspace **out, pf_err *err) {
  *out = calloc(1, sizeof **out);
  if (!*out) return pf_err_set(err, PF_ERR_NOMEM, "workspace: out of memory");
  return PF_OK;
}

void pf_workspace_free(pf_workspace *ws) {
  if (!ws) return;
  free(ws->panel);
  free(ws->bias);
  free(ws->bf16x);
  free(ws);
}

size_t pf_workspace_bytes(const pf_workspace *ws) {
  return ws ? (ws->panel_cap + ws->bias_cap + ws->bf16x_cap) * sizeof(float) : 0;
}

/* Grow *buf to hold `need` floats (contents are not kept). */
static pf_status reserve(float **buf, size_t *cap, size_t need, pf_err *err) {
  if (*cap >= need) return PF_OK;
  size_t want = need > *cap + *cap / 2 ? need : *cap + *cap / 2;
  want = (want + 4095) & ~(size_t)4095; /* whole pages, 64-byte aligned */
  free(*buf);
  *buf = NULL;
  *cap = 0;
  void *p = NULL;
  if (posix_memalign(&p, 64, want * sizeof(float)) != 0)
    return pf_err_set(err, PF_ERR_NOMEM, "workspace: cannot allocate %zu bytes",
                      want * sizeof(float));
  *buf = p;
  *cap = want;
  return PF_OK;
}

static pf_status check_dims(int64_t m, int64_t n, int64_t k, int64_t ldx, int64_t ldw, int64_t ldy,
                            pf_dtype wdt, pf_err *err) {
  if (m < 0 || n < 0 || k < 0)
    return pf_err_set(err, PF_ERR_INVALID, "gemm: expected sizes >= 0, got m=%lld n=%lld k=%lld",
                      (long long)m, (long long)n, (long long)k);
  if (ldx < k || ldw < k || ldy < n)
    return pf_err_set(err, PF_ERR_INVALID,
                      "gemm: expected row strides ldx>=%lld, ldw>=%lld, ldy>=%lld, got %lld, "
                      "%lld, %lld",
                      (long long)k, (long long)k, (long long)n, (long long)ldx, (long long)ldw,
                      (long long)ldy);
  if (wdt != PF_DTYPE_F32 && wdt != PF_DTYPE_BF16 && wdt != PF_DTYPE_F16)
    return pf_err_set(err, PF_ERR_INVALID, "gemm: unknown weight dtype %d", (int)wdt);
  return PF_OK;
}

static void add_bias(float *y, int64_t ldy, int64_t m, int64_t n, const float *bias) {
  if (!bias) return;
  PF_PAR_FOR(m * n >= PF_KERN_PAR_MIN, i, m, pf_axpy(y + i * ldy, 1.0f, bias, n));
}

/* Rows of W per panel: ~pf_kern_panel_bytes of float32, a multiple of 64 in
 * [512, 2048]. BLIS re-packs X for every panel, so short panels cost X traffic
 * (128-row panels ran at ~60% of sgemm speed, 1024-row ones at ~95%). */
static int64_t panel_rows(int64_t n, int64_t k) {
  int64_t rows = (int64_t)pf_kern_panel_bytes / (k * (int64_t)sizeof(float));
  rows = rows < 512 ? 512 : rows > 2048 ? 2048 : rows & ~(int64_t)63;
  return rows < n ? rows : n;
}

int pf_kern_blis_sup = 0;

/* BLIS: C[m, n] = X[m, k] · Wp[n, k]^T + beta*C, all row-major.
 * BLIS sends products with a dimension under its per-arch thresholds to its "sup"
 * code, which works on the matrices as stored (on Zen 3 the rate doubles at
 * m = 512, where it stops applying; for X·W^T with W row-major presumably its
 * dot-product kernels, not checked in BLIS's source), measured at 36 against 82
 * GFLOP/s a thread (AMD Zen 3, zen3 and haswell configurations, m = 16..384;
 * bench_gemm "sup"): the 256-row lm_head chunks of a prefill ran at 70 instead of
 * 166 GFLOP/s. So the packed ("conventional") path always, unless
 * pf_kern_blis_sup asks for BLIS's own choice. The arithmetic is the same
 * products summed in k order by each path's micro-kernel; results may differ in
 * the last bits, as between any two BLIS kernels. */
static void blis_xwt(int64_t m, int64_t n, int64_t k, const float *x, int64_t ldx, const float *w,
                     int64_t ldw, float beta, float *y, int64_t ldy) {
  float one = 1.0f;
  rntm_t rntm;
  bli_rntm_init_from_global(&rntm); /* the thread count pf_kernels_init set */
  if (pf_kern_blis_sup)
    bli_rntm_enable_l3_sup(&rntm);
  else
    bli_rntm_disable_l3_sup(&rntm);
  bli_sgemm_ex(BLIS_NO_TRANSPOSE, BLIS_TRANSPOSE, (dim_t)m, (dim_t)n, (dim_t)k, &one, (float *)x,
               (inc_t)ldx, 1, (float *)w, (inc_t)ldw, 1, &beta, y, (inc_t)ldy, 1, NULL, &rntm);
}

/* Whether gemm_xwt takes the AMX path (BF16 weights, matmul precision bf16). */
static int use_amx(int64_t m, int64_t k, pf_dtype wdt) {
  return k > 0 && m > pf_kern_amx_min_m && wdt == PF_DTYPE_BF16 && pf_kern_amx_active();
}

/* Whether gemm_xwt takes the AVX512-BF16 path (no AMX; same contract). */
static int use_dpbf16(int64_t m, int64_t k, pf_dtype wdt) {
  return k > 0 && m > pf_kern_dpbf16_min_m && wdt == PF_DTYPE_BF16 && pf_kern_dpbf16_active();
}

int pf_kern_bf16x_taken(int64_t m, int64_t k, pf_dtype wdt) {
  return use_amx(m, k, wdt) || use_dpbf16(m, k, wdt);
}

int64_t pf_kern_uniform_min_m(void) {
  int64_t m = pf_kern_gemv_max_m;
  if (pf_kern_amx_min_m > m) m = pf_kern_amx_min_m;
  if (pf_kern_dpbf16_min_m > m) m = pf_kern_dpbf16_min_m;
  return m + 1;
}

/* Whether gemm_xwt will use the workspace (widened panels or bf16 packing). */
static int needs_panel(int64_t m, int64_t k, pf_dtype wdt) {
  return k > 0 && wdt != PF_DTYPE_F32 && (m > pf_kern_gemv_max_m || pf_kern_bf16x_taken(m, k, wdt));
}

/* BF16 weights times bf16-rounded X on AMX tiles or with VDPBF16PS. */
static pf_status gemm_bf16x(int64_t m, int64_t n, int64_t k, const float *x, int64_t ldx,
                            const void *w, int64_t ldw, const float *bias, float beta, float *y,
                            int64_t ldy, pf_workspace *ws, pf_err *err) {
  const int amx = use_amx(m, k, PF_DTYPE_BF16), threads = omp_get_max_threads();
  const size_t bytes =
      amx ? pf_kern_amx_scratch_bytes(m, k, threads) : pf_kern_dpbf16_scratch_bytes(m, k, threads);
  pf_status st =
      reserve(&ws->bf16x, &ws->bf16x_cap, (bytes + sizeof(float) - 1) / sizeof(float), err);
  if (st != PF_OK) return st;
  if (amx)
    pf_kern_gemm_amx(m, n, k, x, ldx, w, ldw, beta, y, ldy, ws->bf16x);
  else
    pf_kern_gemm_dpbf16(m, n, k, x, ldx, w, ldw, beta, y, ldy, ws->bf16x);
  add_bias(y, ldy, m, n, bias);
  return PF_OK;
}

/* Validated arguments; ws non-NULL (and locked by the caller if shared) whenever
 * needs_panel() or a bias conversion is involved. */
static pf_status gemm_xwt(int64_t m, int64_t n, int64_t k, const float *x, int64_t ldx,
                          const void *w, pf_dtype wdt, int64_t ldw, const float *bias, float beta,
                          float *y, int64_t ldy, pf_workspace *ws, pf_err *err) {
  if (k == 0) {
    for (int64_t i = 0; i < m; i++)
      for (int64_t j = 0; j < n; j++)
        y[i * ldy + j] = (bias ? bias[j] : 0.0f) + (beta != 0.0f ? beta * y[i * ldy + j] : 0.0f);
    return PF_OK;
  }
  if (pf_kern_bf16x_taken(m, k, wdt))
    return gemm_bf16x(m, n, k, x, ldx, w, ldw, bias, beta, y, ldy, ws, err);
  if (m <= pf_kern_gemv_max_m) {
    pf_kern_gemv(m, n, k, x, ldx, w, wdt, ldw, bias, beta, y, ldy);
    return PF_OK;
  }
  if (wdt == PF_DTYPE_F32) {
    blis_xwt(m, n, k, x, ldx, w, ldw, beta, y, ldy);
    add_bias(y, ldy, m, n, bias);
    return PF_OK;
  }
  const int64_t rows = panel_rows(n, k);
  pf_status st = reserve(&ws->panel, &ws->panel_cap, (size_t)(rows * k), err);
  if (st != PF_OK) return st;
  const size_t esz = pf_dtype_size(wdt);
  for (int64_t n0 = 0; n0 < n; n0 += rows) {
    const int64_t nb = n - n0 < rows ? n - n0 : rows;
    pf_kern_widen_rows(ws->panel, (const char *)w + (size_t)(n0 * ldw) * esz, wdt, ldw, nb, k);
    blis_xwt(m, nb, k, x, ldx, ws->panel, k, beta, y + n0, ldy);
  }
  add_bias(y, ldy, m, n, bias);
  return PF_OK;
}

pf_status pf_gemm_xwt(int64_t m, int64_t n, int64_t k, const float *x, int64_t ldx, const void *w,
                      pf_dtype wdt, int64_t ldw, const float *bias, float beta, float *y,
                      int64_t ldy, pf_workspace *ws, pf_err *err) {
  pf_status st = pf_kernels_init(err);
  if (st != PF_OK) return st;
  if ((st = check_dims(m, n, k, ldx, ldw, ldy, wdt, err)) != PF_OK) return st;
  if (m == 0 || n == 0) return PF_OK;
  if (!y || (k > 0 && (!x || !w)))
    return pf_err_set(err, PF_ERR_INVALID, "gemm: NULL %s",
                      !y   ? "output"
                      : !x ? "input"
                           : "weight");
  if (ws || !needs_panel(m, k, wdt)) /* only the panel path touches the workspace */
    return gemm_xwt(m, n, k, x, ldx, w, wdt, ldw, bias, beta, y, ldy, ws, err);
  pthread_mutex_lock(&g_default_lock);
  st = gemm_xwt(m, n, k, x, ldx, w, wdt, ldw, bias, beta, y, ldy, &g_default_ws, err);
  pthread_mutex_unlock(&g_default_lock);
  return st;
}

static pf_status check_linear(const float *x, int64_t m, int64_t k, const pf_tensor *w,
                              const pf_tensor *bias, float *y, pf_err *err) {
  char got[64];
  if (!w) return pf_err_set(err, PF_ERR_INVALID, "linear: weight: NULL tensor");
  if (w->ndim != 2 || w->shape[1] != k)
    return pf_err_set(err, PF_ERR_INVALID, "linear: weight: expected shape [N, %lld], got %s",
                      (long long)k, pf_shape_str(w->ndim, w->shape, got, sizeof got));
  if (!w->data)
    return pf_err_set(err, PF_ERR_INVALID, "linear: weight: planned tensor has no data");
  const int64_t n = w->shape[0];
  if (bias && (bias->ndim != 1 || bias->shape[0] != n))
    return pf_err_set(err, PF_ERR_INVALID, "linear: bias: expected shape [%lld], got %s",
                      (long long)n, pf_shape_str(bias->ndim, bias->shape, got, sizeof got));
  if (bias && !bias->data)
    return pf_err_set(err, PF_ERR_INVALID, "linear: bias: planned tensor has no data");
  if (m < 0)
    return pf_err_set(err, PF_ERR_INVALID, "linear: expected m >= 0, got %lld", (long long)m);
  if (m > 0 && (!x || !y))
    return pf_err_set(err, PF_ERR_INVALID, "linear: NULL %s", !x ? "input" : "output");
  return PF_OK;
}

static pf_status linear(const float *x, int64_t m, int64_t k, const pf_tensor *w,
                        const pf_tensor *bias, float *y, pf_workspace *ws, pf_err *err) {
  const int64_t n = w->shape[0];
  const float *b = NULL;
  if (bias && bias->dtype == PF_DTYPE_F32)
    b = bias->data;
  else if (bias) {
    pf_status st = reserve(&ws->bias, &ws->bias_cap, (size_t)n, err);
    if (st != PF_OK) return st;
    pf_convert(ws->bias, PF_DTYPE_F32, bias->data, bias->dtype, (size_t)n);
    b = ws->bias;
  }
  return gemm_xwt(m, n, k, x, k, w->data, w->dtype, k, b, 0.0f, y, n, ws, err);
}

pf_status pf_linear(const float *x, int64_t m, int64_t k, const pf_tensor *w, const pf_tensor *bias,
                    float *y, pf_workspace *ws, pf_err *err) {
  pf_status st = pf_kernels_init(err);
  if (st != PF_OK) return st;
  if ((st = check_linear(x, m, k, w, bias, y, err)) != PF_OK) return st;
  if (m == 0 || w->shape[0] == 0) return PF_OK;
  if (ws || (!needs_panel(m, k, w->dtype) && (!bias || bias->dtype == PF_DTYPE_F32)))
    return linear(x, m, k, w, bias, y, ws, err);
  pthread_mutex_lock(&g_default_lock);
  st = linear(x, m, k, w, bias, y, &g_default_ws, err);
  pthread_mutex_unlock(&g_default_lock);
  return st;
}

pf_status pf_linear_many(const float *x, int64_t m, int64_t k, int n, const pf_tensor *const w[],
                         const pf_tensor *const bias[], float *const y[], pf_workspace *ws,
                         pf_err *err) {
  pf_status st = pf_kernels_init(err);
  if (st != PF_OK) return st;
  if (n < 1 || n > PF_KERN_GEMV_MAX_PARTS)
    return pf_err_set(err, PF_ERR_INVALID, "linear: expected 1 to %d weights, got %d",
                      PF_KERN_GEMV_MAX_PARTS, n);
  int together = m <= pf_kern_gemv_max_m; /* the GEMV path (the kernel takes m <= 4 at once) */
  for (int i = 0; i < n; i++) {
    if ((st = check_linear(x, m, k, w[i], bias[i], y[i], err)) != PF_OK) return st;
    together = together && w[i]->shape[0] > 0 && !pf_kern_bf16x_taken(m, k, w[i]->dtype) &&
               (!bias[i] || bias[i]->dtype == PF_DTYPE_F32);
  }
  if (m == 0) return PF_OK;
  if (!together) { /* one after the other, as n calls */
    for (int i = 0; i < n; i++)
      if ((st = pf_linear(x, m, k, w[i], bias[i], y[i], ws, err)) != PF_OK) return st;
    return PF_OK;
  }
  pf_kern_gemv_part p[PF_KERN_GEMV_MAX_PARTS];
  for (int i = 0; i < n; i++)
    p[i] = (pf_kern_gemv_part){.m = m,
                               .n = w[i]->shape[0],
                               .k = k,
                               .x = x,
                               .ldx = k,
                               .w = w[i]->data,
                               .wdt = w[i]->dtype,
                               .ldw = k,
                               .bias = bias[i] ? bias[i]->data : NULL,
                               .beta = 0.0f,
                               .y = y[i],
                               .ldy = w[i]->shape[0]};
  pf_kern_gemv_many(n, p);
  return PF_OK;
}

pf_status pf_sgemm(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                   const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
                   int64_t ldc, pf_err *err) {
  pf_status st = pf_kernels_init(err);
  if (st != PF_OK) return st;
  if (m < 0 || n < 0 || k < 0)
    return pf_err_set(err, PF_ERR_INVALID, "sgemm: expected sizes >= 0, got m=%lld n=%lld k=%lld",
                      (long long)m, (long long)n, (long long)k);
  const int64_t need_a = trans_a ? m : k, need_b = trans_b ? k : n;
  if (lda < need_a || ldb < need_b || ldc < n)
    return pf_err_set(err, PF_ERR_INVALID,
                      "sgemm: expected row strides lda>=%lld, ldb>=%lld, ldc>=%lld, got %lld, "
                      "%lld, %lld",
                      (long long)need_a, (long long)need_b, (long long)n, (long long)lda,
                      (long long)ldb, (long long)ldc);
  if (m == 0 || n == 0) return PF_OK;
  if (!c || (k > 0 && (!a || !b))) return pf_err_set(err, PF_ERR_INVALID, "sgemm: NULL matrix");
  if (k == 0) {
    for (int64_t i = 0; i < m; i++)
      for (int64_t j = 0; j < n; j++)
        c[i * ldc + j] = beta != 0.0f ? beta * c[i * ldc + j] : 0.0f;
    return PF_OK;
  }
  bli_sgemm(trans_a ? BLIS_TRANSPOSE : BLIS_NO_TRANSPOSE,
            trans_b ? BLIS_TRANSPOSE : BLIS_NO_TRANSPOSE, (dim_t)m, (dim_t)n, (dim_t)k, &alpha,
            (float *)a, (inc_t)lda, 1, (float *)b, (inc_t)ldb, 1, &beta, c, (inc_t)ldc, 1);
  return PF_OK;
}
