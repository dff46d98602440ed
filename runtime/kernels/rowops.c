/* rowops.c — RMSNorm, SwiGLU, softmax, log-softmax, dot, axpy.
 *
 * AVX2 is the build baseline (x86-64-v3), so these use it without dispatch; they
 * are memory bound, AVX-512 would not help, except for the exponentials of the
 * softmax (attention scores sit in cache; the polynomial is the cost): exp_sum
 * computes them 16 at a time on AVX-512 CPUs, with the same bits as exp8.
 * Sums are kept in 8 float lanes (x2 for ILP) and reduced at the end: a blocked
 * float32 sum like torch's, far more accurate than one serial float accumulator.
 * exp is a Cephes-style polynomial (relative error ~2 ulp on [-87, 88]); glibc's
 * vector expf is only declared under -ffast-math, which we do not use.
 */
#include "kern_internal.h"

#include <math.h>
#if PF_KERN_HAVE_AVX2
#include <immintrin.h>
#endif

#define USE_AVX2 (PF_KERN_HAVE_AVX2 && pf_kern_isa_level >= PF_ISA_AVX2)

#if PF_KERN_HAVE_AVX2
static inline float hsum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

static inline float hmax8(__m256 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

/* exp(x) for 8 floats. x < -87.33 (incl. -inf) gives 0 (true value < FLT_MIN),
 * x > 88.37 saturates at ~FLT_MAX, NaN stays NaN (operand order of min/max). */
static inline __m256 exp8(__m256 x) {
  const __m256 tiny = _mm256_cmp_ps(x, _mm256_set1_ps(-87.3365447505531f), _CMP_LT_OQ);
  x = _mm256_max_ps(_mm256_set1_ps(-87.3365447505531f), x);
  x = _mm256_min_ps(_mm256_set1_ps(88.3762626647949f), x);
  /* n = round(x / ln2) in [-126, 128]; r = x - n*ln2 in two parts (Cody-Waite) */
  __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                             _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500E-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507E-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073E-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894E-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459E-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201E-1f));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  /* 2^n via the exponent field; n = 128 does not fit: use 2 * 2^127 instead. */
  __m256 big = _mm256_cmp_ps(n, _mm256_set1_ps(127.5f), _CMP_GT_OQ);
  n = _mm256_blendv_ps(n, _mm256_set1_ps(127.0f), big);
  p = _mm256_blendv_ps(p, _mm256_add_ps(p, p), big);
  __m256i e = _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127));
  __m256 res = _mm256_mul_ps(p, _mm256_castsi256_ps(_mm256_slli_epi32(e, 23)));
  return _mm256_blendv_ps(res, _mm256_setzero_ps(), tiny);
}
#endif

/* ---- RMSNorm ---- */

static float sumsq(const float *x, int64_t n) {
  int64_t i = 0;
  float s = 0.0f;
#if PF_KERN_HAVE_AVX2
  if (USE_AVX2) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    for (; i + 16 <= n; i += 16) {
      __m256 v0 = _mm256_loadu_ps(x + i), v1 = _mm256_loadu_ps(x + i + 8);
      a0 = _mm256_fmadd_ps(v0, v0, a0);
      a1 = _mm256_fmadd_ps(v1, v1, a1);
    }
    s = hsum8(_mm256_add_ps(a0, a1));
  }
#endif
  for (; i < n; i++)
    s += x[i] * x[i];
  return s;
}

static void rmsnorm_row(float *y, const float *x, const float *w, int64_t n, float eps) {
  const float r = 1.0f / sqrtf(sumsq(x, n) / (float)n + eps);
  int64_t i = 0;
#if PF_KERN_HAVE_AVX2
  if (USE_AVX2) {
    const __m256 rv = _mm256_set1_ps(r);
    for (; i + 8 <= n; i += 8) /* HF order: weight * (x * r) */
      _mm256_storeu_ps(
          y + i, _mm256_mul_ps(_mm256_loadu_ps(w + i), _mm256_mul_ps(_mm256_loadu_ps(x + i), rv)));
  }
#endif
  for (; i < n; i++)
    y[i] = w[i] * (x[i] * r);
}

void pf_rmsnorm(float *y, const float *x, const float *w, int64_t rows, int64_t n, float eps) {
  PF_PAR_FOR(rows > 1 && rows * n >= PF_KERN_PAR_MIN, r, rows,
             rmsnorm_row(y + r * n, x + r * n, w, n, eps));
}

/* ---- softmax family ---- */

static float row_max(const float *x, int64_t n) {
  int64_t i = 0;
  float m = -INFINITY;
#if PF_KERN_HAVE_AVX2
  if (USE_AVX2 && n >= 8) {
    __m256 mv = _mm256_loadu_ps(x);
    for (i = 8; i + 8 <= n; i += 8)
      mv = _mm256_max_ps(mv, _mm256_loadu_ps(x + i));
    m = hmax8(mv);
  }
#endif
  for (; i < n; i++)
    m = x[i] > m ? x[i] : m;
  return m;
}

#if PF_KERN_HAVE_AVX2
PF_KERN_AVX512_BEGIN
/* exp8 on 16 floats: the same operations in the same order, so every lane is
 * bit-identical to exp8's (masks instead of blends). */
static inline __m512 exp16(__m512 x) {
  const __mmask16 tiny = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.3365447505531f), _CMP_LT_OQ);
  x = _mm512_max_ps(_mm512_set1_ps(-87.3365447505531f), x);
  x = _mm512_min_ps(_mm512_set1_ps(88.3762626647949f), x);
  __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                  _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500E-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507E-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073E-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894E-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459E-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201E-1f));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  const __mmask16 big = _mm512_cmp_ps_mask(n, _mm512_set1_ps(127.5f), _CMP_GT_OQ);
  n = _mm512_mask_blend_ps(big, n, _mm512_set1_ps(127.0f));
  p = _mm512_mask_blend_ps(big, p, _mm512_add_ps(p, p));
  __m512i e = _mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127));
  __m512 res = _mm512_mul_ps(p, _mm512_castsi512_ps(_mm512_slli_epi32(e, 23)));
  return _mm512_mask_blend_ps(tiny, res, _mm512_setzero_ps());
}

/* exp_sum's AVX2 loop with the exponentials 16 at a time: the two halves are
 * added to the 8-lane accumulator in element order, as the AVX2 loop adds them,
 * so the sum is the same bits. Returns the elements done (a multiple of 16). */
static int64_t exp_sum16(float *out, const float *x, int64_t n, float m, __m256 *acc8) {
  const __m512 mv = _mm512_set1_ps(m);
  __m256 acc = *acc8;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m512 e = exp16(_mm512_sub_ps(_mm512_loadu_ps(x + i), mv));
    if (out) _mm512_storeu_ps(out + i, e);
    acc = _mm256_add_ps(acc, _mm512_castps512_ps256(e));
    acc = _mm256_add_ps(acc, _mm512_extractf32x8_ps(e, 1));
  }
  *acc8 = acc;
  return i;
}

/* silu_mul_span's AVX2 loop 16 at a time (exp16: exp8's bits; the division and
 * the product are the same IEEE operations). Returns the elements done. */
static int64_t silu_mul16(float *out, const float *g, const float *u, int64_t n) {
  const __m512 one = _mm512_set1_ps(1.0f), zero = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m512 gv = _mm512_loadu_ps(g + i);
    __m512 s = _mm512_div_ps(gv, _mm512_add_ps(one, exp16(_mm512_sub_ps(zero, gv))));
    _mm512_storeu_ps(out + i, _mm512_mul_ps(s, _mm512_loadu_ps(u + i)));
  }
  return i;
}
PF_KERN_AVX512_END
#endif

/* ---- SwiGLU ---- */

static void silu_mul_span(float *out, const float *g, const float *u, int64_t n) {
  int64_t i = 0;
#if PF_KERN_HAVE_AVX2
  if (USE_AVX2) {
    if (pf_kern_isa_level >= PF_ISA_AVX512) i = silu_mul16(out, g, u, n);
    const __m256 one = _mm256_set1_ps(1.0f), zero = _mm256_setzero_ps();
    for (; i + 8 <= n; i += 8) {
      __m256 gv = _mm256_loadu_ps(g + i);
      __m256 s = _mm256_div_ps(gv, _mm256_add_ps(one, exp8(_mm256_sub_ps(zero, gv))));
      _mm256_storeu_ps(out + i, _mm256_mul_ps(s, _mm256_loadu_ps(u + i)));
    }
  }
#endif
  for (; i < n; i++)
    out[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

void pf_silu_mul(float *out, const float *g, const float *u, int64_t n) {
  const int64_t chunk = 4096;
  const int64_t nchunks = (n + chunk - 1) / chunk;
  PF_PAR_FOR(nchunks > 1 && n >= PF_KERN_PAR_MIN, c, nchunks, const int64_t i0 = c * chunk;
             silu_mul_span(out + i0, g + i0, u + i0, n - i0 < chunk ? n - i0 : chunk));
}

/* out[i] = exp(x[i] - m) (out may be NULL: only sum); returns the sum in double. */
static double exp_sum(float *out, const float *x, int64_t n, float m) {
  int64_t i = 0;
  double s = 0.0;
#if PF_KERN_HAVE_AVX2
  if (USE_AVX2) {
    const __m256 mv = _mm256_set1_ps(m);
    __m256 acc = _mm256_setzero_ps();
    if (pf_kern_isa_level >= PF_ISA_AVX512) i = exp_sum16(out, x, n, m, &acc);
    for (; i + 8 <= n; i += 8) {
      __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), mv));
      if (out) _mm256_storeu_ps(out + i, e);
      acc = _mm256_add_ps(acc, e);
    }
    float lanes[8];
    _mm256_storeu_ps(lanes, acc);
    for (int l = 0; l < 8; l++)
      s += lanes[l];
  }
#endif
  for (; i < n; i++) {
    float e = expf(x[i] - m);
    if (out) out[i] = e;
    s += e;
  }
  return s;
}

static void scale(float *x, int64_t n, float a) {
  int64_t i = 0;
#if PF_KERN_HAVE_AVX2
  if (USE_AVX2) {
    const __m256 av = _mm256_set1_ps(a);
    for (; i + 8 <= n; i += 8)
      _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), av));
  }
#endif
  for (; i < n; i++)
    x[i] *= a;
}

void pf_softmax_row(float *x, int64_t n) {
  if (n <= 0) return;
  const float m = row_max(x, n);
  const double s = exp_sum(x, x, n, m);
  scale(x, n, (float)(1.0 / s));
}

void pf_softmax_rows(float *x, int64_t rows, int64_t n, int64_t ld) {
  PF_PAR_FOR(rows > 1 && rows * n >= PF_KERN_PAR_MIN, r, rows, pf_softmax_row(x + r * ld, n));
}

double pf_logsumexp(const float *x, int64_t n) {
  if (n <= 0) return -INFINITY;
  const float m = row_max(x, n);
  if (isinf(m)) return m;
  return (double)m + log(exp_sum(NULL, x, n, m));
}

double pf_log_softmax_row(float *out, const float *x, int64_t n) {
  const double lse = pf_logsumexp(x, n);
  const float l = (float)lse;
  int64_t i = 0;
#if PF_KERN_HAVE_AVX2
  if (USE_AVX2) {
    const __m256 lv = _mm256_set1_ps(l);
    for (; i + 8 <= n; i += 8)
      _mm256_storeu_ps(out + i, _mm256_sub_ps(_mm256_loadu_ps(x + i), lv));
  }
#endif
  for (; i < n; i++)
    out[i] = x[i] - l;
  return lse;
}

/* ---- dot / axpy ---- */

float pf_dot(const float *a, const float *b, int64_t n) {
  int64_t i = 0;
  float s = 0.0f;
#if PF_KERN_HAVE_AVX2
  if (USE_AVX2) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    for (; i + 16 <= n; i += 16) {
      a0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), a0);
      a1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), a1);
    }
    if (i + 8 <= n) {
      a0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), a0);
      i += 8;
    }
    s = hsum8(_mm256_add_ps(a0, a1));
  }
#endif
  for (; i < n; i++)
    s += a[i] * b[i];
  return s;
}

void pf_dot4(const float *const a[4], const float *b, int64_t n, float out[4]) {
  int64_t i = 0;
  float s[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#if PF_KERN_HAVE_AVX2
  if (USE_AVX2) { /* pf_dot's sums for each a[h], b loaded once for the four */
    __m256 a0[4], a1[4];
    for (int h = 0; h < 4; h++)
      a0[h] = a1[h] = _mm256_setzero_ps();
    for (; i + 16 <= n; i += 16) {
      const __m256 b0 = _mm256_loadu_ps(b + i), b1 = _mm256_loadu_ps(b + i + 8);
      for (int h = 0; h < 4; h++) {
        a0[h] = _mm256_fmadd_ps(_mm256_loadu_ps(a[h] + i), b0, a0[h]);
        a1[h] = _mm256_fmadd_ps(_mm256_loadu_ps(a[h] + i + 8), b1, a1[h]);
      }
    }
    if (i + 8 <= n) {
      const __m256 b0 = _mm256_loadu_ps(b + i);
      for (int h = 0; h < 4; h++)
        a0[h] = _mm256_fmadd_ps(_mm256_loadu_ps(a[h] + i), b0, a0[h]);
      i += 8;
    }
    for (int h = 0; h < 4; h++)
      s[h] = hsum8(_mm256_add_ps(a0[h], a1[h]));
  }
#endif
  for (int h = 0; h < 4; h++) {
    for (int64_t j = i; j < n; j++)
      s[h] += a[h][j] * b[j];
    out[h] = s[h];
  }
}

void pf_axpy(float *y, float alpha, const float *x, int64_t n) {
  int64_t i = 0;
#if PF_KERN_HAVE_AVX2
  if (USE_AVX2) {
    const __m256 av = _mm256_set1_ps(alpha);
    for (; i + 8 <= n; i += 8)
      _mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
  }
#endif
  for (; i < n; i++)
    y[i] += alpha * x[i];
}
