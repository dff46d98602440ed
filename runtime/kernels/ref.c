/* ref.c — reference twins of the optimised kernels: the definitions written as
 * directly as possible (naive loops, double accumulation, libm in double, no SIMD,
 * no OpenMP, no BLIS). Tests compare each kernel with its twin; they are also the
 * readable statement of what each kernel computes.
 */
#include "kernels.h"

#include <math.h>
#include <string.h>

float pf_ref_bf16_to_f32(uint16_t h) {
  uint32_t bits = (uint32_t)h << 16;
  float f;
  memcpy(&f, &bits, sizeof f);
  return f;
}

/* IEEE half: 1 sign, 5 exponent (bias 15), 10 mantissa bits. */
float pf_ref_f16_to_f32(uint16_t h) {
  const int sign = h >> 15, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
  double v;
  if (exp == 0)
    v = ldexp((double)man, -24); /* subnormal: man * 2^-14 / 2^10 */
  else if (exp == 31)
    v = man ? NAN : INFINITY;
  else
    v = ldexp(1.0 + man / 1024.0, exp - 15);
  return (float)(sign ? -v : v);
}

static double w_at(const void *w, pf_dtype dt, int64_t off) {
  if (dt == PF_DTYPE_F32) return ((const float *)w)[off];
  const uint16_t h = ((const uint16_t *)w)[off];
  return dt == PF_DTYPE_BF16 ? pf_ref_bf16_to_f32(h) : pf_ref_f16_to_f32(h);
}

void pf_ref_gemm_xwt(int64_t m, int64_t n, int64_t k, const float *x, int64_t ldx, const void *w,
                     pf_dtype wdt, int64_t ldw, const float *bias, float beta, float *y,
                     int64_t ldy) {
  for (int64_t i = 0; i < m; i++)
    for (int64_t j = 0; j < n; j++) {
      double s = 0.0;
      for (int64_t p = 0; p < k; p++)
        s += (double)x[i * ldx + p] * w_at(w, wdt, j * ldw + p);
      if (bias) s += bias[j];
      if (beta != 0.0f) s += (double)beta * y[i * ldy + j];
      y[i * ldy + j] = (float)s;
    }
}

/* Round to the nearest BF16 (ties to even), written from the definition: keep
 * 8 significant bits. NaN stays NaN. */
float pf_ref_round_bf16(float f) {
  if (isnan(f) || isinf(f) || f == 0.0f) return f;
  int e;
  const double frac = frexp((double)f, &e); /* f = frac * 2^e, 0.5 <= |frac| < 1 */
  const double scaled = ldexp(frac, 8);     /* 8 significant bits before the point */
  double r = nearbyint(scaled);             /* ties to even (default rounding mode) */
  return (float)ldexp(r, e - 8);
}

void pf_ref_gemm_xwt_bf16x(int64_t m, int64_t n, int64_t k, const float *x, int64_t ldx,
                           const void *w, pf_dtype wdt, int64_t ldw, const float *bias, float beta,
                           float *y, int64_t ldy) {
  for (int64_t i = 0; i < m; i++)
    for (int64_t j = 0; j < n; j++) {
      double s = 0.0;
      for (int64_t p = 0; p < k; p++)
        s += (double)pf_ref_round_bf16(x[i * ldx + p]) * w_at(w, wdt, j * ldw + p);
      if (bias) s += bias[j];
      if (beta != 0.0f) s += (double)beta * y[i * ldy + j];
      y[i * ldy + j] = (float)s;
    }
}

void pf_ref_sgemm(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                  const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
                  int64_t ldc) {
  for (int64_t i = 0; i < m; i++)
    for (int64_t j = 0; j < n; j++) {
      double s = 0.0;
      for (int64_t p = 0; p < k; p++) {
        const double av = trans_a ? a[p * lda + i] : a[i * lda + p];
        const double bv = trans_b ? b[j * ldb + p] : b[p * ldb + j];
        s += av * bv;
      }
      s *= alpha;
      if (beta != 0.0f) s += (double)beta * c[i * ldc + j];
      c[i * ldc + j] = (float)s;
    }
}

void pf_ref_rmsnorm(float *y, const float *x, const float *w, int64_t rows, int64_t n, float eps) {
  for (int64_t r = 0; r < rows; r++) {
    double ss = 0.0;
    for (int64_t i = 0; i < n; i++)
      ss += (double)x[r * n + i] * x[r * n + i];
    const double inv = 1.0 / sqrt(ss / (double)n + (double)eps);
    for (int64_t i = 0; i < n; i++)
      y[r * n + i] = (float)((double)w[i] * (x[r * n + i] * inv));
  }
}

void pf_ref_silu_mul(float *out, const float *g, const float *u, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    const double gv = g[i];
    out[i] = (float)(gv / (1.0 + exp(-gv)) * (double)u[i]);
  }
}

void pf_ref_softmax_row(float *x, int64_t n) {
  double m = -INFINITY, s = 0.0;
  for (int64_t i = 0; i < n; i++)
    m = x[i] > m ? x[i] : m;
  for (int64_t i = 0; i < n; i++)
    s += exp((double)x[i] - m);
  for (int64_t i = 0; i < n; i++)
    x[i] = (float)(exp((double)x[i] - m) / s);
}

double pf_ref_logsumexp(const float *x, int64_t n) {
  double m = -INFINITY, s = 0.0;
  for (int64_t i = 0; i < n; i++)
    m = x[i] > m ? x[i] : m;
  if (isinf(m)) return m;
  for (int64_t i = 0; i < n; i++)
    s += exp((double)x[i] - m);
  return m + log(s);
}

double pf_ref_log_softmax_row(float *out, const float *x, int64_t n) {
  const double lse = pf_ref_logsumexp(x, n);
  for (int64_t i = 0; i < n; i++)
    out[i] = (float)((double)x[i] - lse);
  return lse;
}

float pf_ref_dot(const float *a, const float *b, int64_t n) {
  double s = 0.0;
  for (int64_t i = 0; i < n; i++)
    s += (double)a[i] * b[i];
  return (float)s;
}

void pf_ref_axpy(float *y, float alpha, const float *x, int64_t n) {
  for (int64_t i = 0; i < n; i++)
    y[i] = (float)((double)y[i] + (double)alpha * x[i]);
}

void pf_ref_rope_apply(const float *inv_freq, int64_t head_dim, float *x, int64_t n_tok,
                       int64_t n_heads, int64_t ld, const int64_t *pos) {
  const int64_t half = head_dim / 2;
  for (int64_t t = 0; t < n_tok; t++)
    for (int64_t h = 0; h < n_heads; h++) {
      float *v = x + t * ld + h * head_dim;
      for (int64_t i = 0; i < half; i++) {
        /* HF: freqs = pos * inv_freq in float32, then cos/sin of that value */
        const double ang = (float)((float)pos[t] * inv_freq[i]);
        const double c = cos(ang), s = sin(ang), a = v[i], b = v[i + half];
        v[i] = (float)(a * c - b * s);
        v[i + half] = (float)(b * c + a * s);
      }
    }
}
