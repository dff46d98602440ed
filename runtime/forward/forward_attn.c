/* forward_attn.c — grouped-query attention with causal, padding and sliding
 * window masks (see pf_attn_job in forward_int.h).
 *
 * Why not pf_sgemm per head: the work is parallel over (batch row, head), and
 * BLIS must not be called from inside an OpenMP region; per-head BLIS calls from
 * the main thread would also compute the masked upper triangle. So each thread
 * takes whole (row, head) tasks and runs two small register-blocked kernels:
 *
 *  - scores: the head's keys are transposed once into kt[hd][keys] (zero padded
 *    to a multiple of 64), then for a block of 32 query rows and each block of 64
 *    keys, one query row times kt gives 64 scores in 8 vector accumulators
 *    (8 loads + 1 broadcast per 8 FMAs; the 16 KiB key block stays in L1 while the
 *    32 rows use it). Only blocks that intersect a row's allowed keys are done.
 *  - P·V: for each key block and query row, up to 64 output columns are
 *    accumulated in registers over the allowed keys of that block (on AVX-512,
 *    4 rows at a time in groups of 64, 32 and 16 columns, so head sizes 32, 80
 *    or 96 take the same path as 64 and 128).
 * Rows are few when decoding (seq < 8): then scores are plain dot products with
 * the cached keys (no transpose, which would cost as much as the product), and
 * each key and value row is prefetched pf_attn_prefetch_rows rows ahead: a
 * decode step reads every cached key and value once, from memory, so at long
 * contexts attention is a stream of the cache like the products are of W.
 * The softmax is pf_softmax_row in float32 over exactly the allowed keys, so
 * masked keys never enter it (right padding makes the allowed range contiguous).
 * The GCC vector extension compiles to AVX2 under the x86-64-v3 baseline and to
 * plain SSE/scalar code elsewhere.
 */
#include <omp.h>
#include <string.h>
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

#include "forward_int.h"

typedef float v8f __attribute__((vector_size(32)));

static inline v8f ld8(const float *p) {
  v8f v;
  memcpy(&v, p, sizeof v);
  return v;
}

static inline void st8(float *p, v8f v) {
  memcpy(p, &v, sizeof v);
}

static inline v8f bc8(float a) {
  return (v8f){a, a, a, a, a, a, a, a};
}

size_t pf_attn_scratch_floats(int64_t hd, int64_t keys) {
  return (size_t)((hd + PF_ATTN_QB) * keys);
}

/* s[0..64) = scale * q · kt[:, 0..64) (kt row stride ld). */
static void qk_block64(const float *q, const float *kt, int64_t ld, int64_t hd, float scale,
                       float *s) {
  v8f a0 = bc8(0), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
  for (int64_t d = 0; d < hd; d++) {
    const v8f x = bc8(q[d]);
    const float *k = kt + d * ld;
    a0 += x * ld8(k);
    a1 += x * ld8(k + 8);
    a2 += x * ld8(k + 16);
    a3 += x * ld8(k + 24);
    a4 += x * ld8(k + 32);
    a5 += x * ld8(k + 40);
    a6 += x * ld8(k + 48);
    a7 += x * ld8(k + 56);
  }
  const v8f sc = bc8(scale);
  st8(s, a0 * sc);
  st8(s + 8, a1 * sc);
  st8(s + 16, a2 * sc);
  st8(s + 24, a3 * sc);
  st8(s + 32, a4 * sc);
  st8(s + 40, a5 * sc);
  st8(s + 48, a6 * sc);
  st8(s + 56, a7 * sc);
}

/* o[0..8*nv) += sum_{j in [j0, j1]} p[j] * v[j*ld + 0..8*nv): nv accumulators
 * held in registers over the keys (inlined with a constant nv). */
static inline __attribute__((always_inline)) void pv_cols(float *o, const float *p, const float *v,
                                                          int64_t ld, int64_t j0, int64_t j1,
                                                          const int nv, int64_t pfd) {
  v8f a[8];
  for (int c = 0; c < nv; c++)
    a[c] = ld8(o + 8 * c);
  for (int64_t j = j0; j <= j1; j++) {
    const v8f x = bc8(p[j]);
    const float *r = v + j * ld;
    if (pfd && j + pfd <= j1)
      for (int c = 0; c < nv; c += 2)
        __builtin_prefetch(r + pfd * ld + 8 * c, 0, 3);
    for (int c = 0; c < nv; c++)
      a[c] += x * ld8(r + 8 * c);
  }
  for (int c = 0; c < nv; c++)
    st8(o + 8 * c, a[c]);
}

/* out[c0..hd) += sum_{j in [j0, j1]} p[j] * v[j*ld + c0..hd): columns in
 * groups of 64, 32, 16 and 8, then the last hd % 8 one by one. Every output element
 * adds its terms in key order, as one pf_axpy per key would. pfd > 0: each value
 * row's columns prefetched pfd rows ahead (decoding). */
static void pv_acc_from(float *out, const float *p, const float *v, int64_t ld, int64_t c0,
                        int64_t hd, int64_t j0, int64_t j1, int64_t pfd) {
  int64_t c = c0;
  for (; c + 64 <= hd; c += 64)
    pv_cols(out + c, p, v + c, ld, j0, j1, 8, pfd);
  if (c + 32 <= hd) { /* the rest in groups of 32, 16 and 8 (each a pass over the keys) */
    pv_cols(out + c, p, v + c, ld, j0, j1, 4, pfd);
    c += 32;
  }
  if (c + 16 <= hd) {
    pv_cols(out + c, p, v + c, ld, j0, j1, 2, pfd);
    c += 16;
  }
  if (c + 8 <= hd) {
    pv_cols(out + c, p, v + c, ld, j0, j1, 1, pfd);
    c += 8;
  }
  for (; c < hd; c++) {
    float a = out[c];
    for (int64_t j = j0; j <= j1; j++)
      a += p[j] * v[j * ld + c];
    out[c] = a;
  }
}

/* out[0..hd) += sum_{j in [j0, j1]} p[j] * v[j*ld + 0..hd). */
static void pv_acc(float *out, const float *p, const float *v, int64_t ld, int64_t hd, int64_t j0,
                   int64_t j1, int64_t pfd) {
  pv_acc_from(out, p, v, ld, 0, hd, j0, j1, pfd);
}

/* Four query rows at a time with 8-float vectors (AVX2: 16 registers): the 64 keys
 * of a block in 4 passes of 16, 8 accumulators, so each loaded key vector serves
 * 4 rows (the one-row kernel above needs a load per FMA). Same sums in the same
 * order as qk_block64. */
static void qk4_block64_v8(const float *const q[4], const float *kt, int64_t ld, int64_t hd,
                           float scale, float *const s[4]) {
  const v8f sc = bc8(scale);
  for (int c0 = 0; c0 < 64; c0 += 16) {
    v8f a[4][2];
    for (int i = 0; i < 4; i++)
      a[i][0] = a[i][1] = bc8(0);
    for (int64_t d = 0; d < hd; d++) {
      const float *k = kt + d * ld + c0;
      const v8f k0 = ld8(k), k1 = ld8(k + 8);
      for (int i = 0; i < 4; i++) {
        const v8f x = bc8(q[i][d]);
        a[i][0] += x * k0;
        a[i][1] += x * k1;
      }
    }
    for (int i = 0; i < 4; i++) {
      st8(s[i] + c0, a[i][0] * sc);
      st8(s[i] + c0 + 8, a[i][1] * sc);
    }
  }
}

/* o[i][c0..c0+8*nv) += sum_{j in [j0, j1]} p[i][j] * v[j*ld + c0..) for rows i < 4
 * (nv <= 2, constant after inlining): each loaded value vector serves 4 rows. */
static inline __attribute__((always_inline)) void
pv4_cols_v8(float *const o[4], const float *const p[4], const float *v, int64_t ld, int64_t c0,
            int64_t j0, int64_t j1, const int nv, int64_t pfd) {
  v8f a[4][2];
  for (int i = 0; i < 4; i++)
    for (int c = 0; c < nv; c++)
      a[i][c] = ld8(o[i] + c0 + 8 * c);
  for (int64_t j = j0; j <= j1; j++) {
    const float *r = v + j * ld + c0;
    if (pfd && j + pfd <= j1) __builtin_prefetch(r + pfd * ld, 0, 3);
    v8f x[2];
    for (int c = 0; c < nv; c++)
      x[c] = ld8(r + 8 * c);
    for (int i = 0; i < 4; i++) {
      const v8f w = bc8(p[i][j]);
      for (int c = 0; c < nv; c++)
        a[i][c] += w * x[c];
    }
  }
  for (int i = 0; i < 4; i++)
    for (int c = 0; c < nv; c++)
      st8(o[i] + c0 + 8 * c, a[i][c]);
}

/* o[i][0..hd) += sum_{j in [j0, j1]} p[i][j] * v[j*ld + 0..hd) for rows i < 4:
 * columns in groups of 16, then 8, then (hd % 8) row by row. Keys outside a row's
 * range have p = 0 there and add nothing. */
static void pv4_acc_v8(float *const o[4], const float *const p[4], const float *v, int64_t ld,
                       int64_t hd, int64_t j0, int64_t j1, int64_t pfd) {
  int64_t c0 = 0;
  for (; c0 + 16 <= hd; c0 += 16)
    pv4_cols_v8(o, p, v, ld, c0, j0, j1, 2, pfd);
  if (c0 + 8 <= hd) {
    pv4_cols_v8(o, p, v, ld, c0, j0, j1, 1, pfd);
    c0 += 8;
  }
  if (c0 < hd)
    for (int i = 0; i < 4; i++)
      pv_acc_from(o[i], p[i], v, ld, c0, hd, j0, j1, pfd);
}

#if defined(__x86_64__) && defined(__GNUC__)
#define PF_ATTN_HAVE_AVX512 1
/* Four query rows at a time with 16-float vectors: 16 accumulators in the 32 zmm
 * registers, 8 loads per 16 FMAs (the 8-float kernels above need 9 per 8). Only
 * called when pf_kernels_isa() says AVX-512. */
#pragma GCC push_options
#pragma GCC target("avx512f")
typedef float v16f __attribute__((vector_size(64)));

static inline v16f ld16(const float *p) {
  v16f v;
  memcpy(&v, p, sizeof v);
  return v;
}

static inline void st16(float *p, v16f v) {
  memcpy(p, &v, sizeof v);
}

static inline v16f bc16(float a) {
  return (v16f){a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a};
}

/* s[i][0..64) = scale * q[i] · kt[:, 0..64) for rows i < 4. */
static void qk4_block64(const float *const q[4], const float *kt, int64_t ld, int64_t hd,
                        float scale, float *const s[4]) {
  v16f a[4][4];
  for (int i = 0; i < 4; i++)
    for (int c = 0; c < 4; c++)
      a[i][c] = bc16(0);
  for (int64_t d = 0; d < hd; d++) {
    const float *k = kt + d * ld;
    const v16f k0 = ld16(k), k1 = ld16(k + 16), k2 = ld16(k + 32), k3 = ld16(k + 48);
    for (int i = 0; i < 4; i++) {
      const v16f x = bc16(q[i][d]);
      a[i][0] += x * k0;
      a[i][1] += x * k1;
      a[i][2] += x * k2;
      a[i][3] += x * k3;
    }
  }
  const v16f sc = bc16(scale);
  for (int i = 0; i < 4; i++)
    for (int c = 0; c < 4; c++)
      st16(s[i] + 16 * c, a[i][c] * sc);
}

/* o[i][c0..c0+16*nv) += sum_{j in [j0, j1]} p[i][j] * v[j*ld + c0..) for rows
 * i < 4: 4*nv accumulators, nv loads per 4*nv FMAs (inlined with a constant nv). */
static inline __attribute__((always_inline)) void pv4_cols(float *const o[4],
                                                           const float *const p[4], const float *v,
                                                           int64_t ld, int64_t c0, int64_t j0,
                                                           int64_t j1, const int nv, int64_t pfd) {
  v16f a[4][4];
  for (int i = 0; i < 4; i++)
    for (int c = 0; c < nv; c++)
      a[i][c] = ld16(o[i] + c0 + 16 * c);
  for (int64_t j = j0; j <= j1; j++) {
    const float *r = v + j * ld + c0;
    if (pfd && j + pfd <= j1)
      for (int c = 0; c < nv; c++)
        __builtin_prefetch(r + pfd * ld + 16 * c, 0, 3);
    v16f x[4];
    for (int c = 0; c < nv; c++)
      x[c] = ld16(r + 16 * c);
    for (int i = 0; i < 4; i++) {
      const v16f w = bc16(p[i][j]);
      for (int c = 0; c < nv; c++)
        a[i][c] += w * x[c];
    }
  }
  for (int i = 0; i < 4; i++)
    for (int c = 0; c < nv; c++)
      st16(o[i] + c0 + 16 * c, a[i][c]);
}

/* o[i][0..hd) += sum_{j in [j0, j1]} p[i][j] * v[j*ld + 0..hd) for rows i < 4:
 * columns in groups of 64, then of 32 and 16, then (hd % 16) row by row. Keys outside a row's range
 * have p = 0 there and add nothing. */
static void pv4_acc(float *const o[4], const float *const p[4], const float *v, int64_t ld,
                    int64_t hd, int64_t j0, int64_t j1, int64_t pfd) {
  int64_t c0 = 0;
  for (; c0 + 64 <= hd; c0 += 64)
    pv4_cols(o, p, v, ld, c0, j0, j1, 4, pfd);
  if (c0 + 32 <= hd) {
    pv4_cols(o, p, v, ld, c0, j0, j1, 2, pfd);
    c0 += 32;
  }
  if (c0 + 16 <= hd) {
    pv4_cols(o, p, v, ld, c0, j0, j1, 1, pfd);
    c0 += 16;
  }
  if (c0 < hd)
    for (int i = 0; i < 4; i++)
      pv_acc_from(o[i], p[i], v, ld, c0, hd, j0, j1, pfd);
}

/* Decoding scores: s[h * ld + kk] = scale * (q[h] · key kk) for 4 query heads and
 * the keys kk < 4 at K + kk*ldkv, each product with the bits of pf_dot(q[h], key,
 * hd) for hd % 8 == 0 (as task_dots4's scalar loop computes them). pf_dot
 * keeps two 8-float FMA chains, a0 over floats [16i, 16i+8) and a1 over
 * [16i+8, 16i+16) (a0 also takes a last 8 when hd % 16 == 8), then sums a0 + a1 as
 * ((v0+v4) + (v2+v6)) + ((v1+v5) + (v3+v7)) (hsum8). Here one 16-float chain per
 * (head, key) holds a0 in its low half and a1 in its high half (the same FMAs in
 * the same order), and the 16 chains are summed together with shuffles, step by
 * step in that tree, instead of one horizontal sum each. Per 16 floats of a head:
 * 8 loads and 16 16-lane FMAs for 4 keys (pf_dot4: 10 loads and 8 8-lane FMAs per
 * key), then 30 shuffles and 15 adds per 4 keys (pf_dot4: ~28 operations of
 * horizontal sums per key). The scores go out as one 4-float store per head: a
 * 16-float store read back 4 bytes at a time (store forwarding fails on such
 * loads) made the first version slower than pf_dot4 from memory. The attention of
 * 16 layers at 4096 positions (2 threads, AMD Zen 5): 8.05-8.18 -> 6.85-7.08 ms;
 * with the keys in cache 1.45-1.51 -> 0.95-1.02 ms at 1024 positions. */
__attribute__((target("avx512f"))) static void dots4x4(const float *const q[4], const float *K,
                                                       int64_t ldkv, int64_t hd, float scale,
                                                       float *s, int64_t ld) {
  __m512 a[16]; /* a[4 * h + kk] */
  for (int n = 0; n < 16; n++)
    a[n] = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= hd; i += 16) {
    __m512 kv[4];
    for (int kk = 0; kk < 4; kk++)
      kv[kk] = _mm512_loadu_ps(K + kk * ldkv + i);
    for (int h = 0; h < 4; h++) {
      const __m512 qv = _mm512_loadu_ps(q[h] + i);
      for (int kk = 0; kk < 4; kk++)
        a[4 * h + kk] = _mm512_fmadd_ps(qv, kv[kk], a[4 * h + kk]);
    }
  }
  if (i < hd) { /* hd % 16 == 8: the last 8 go to a0 (the low half) */
    const __mmask16 lo = 0x00ff;
    for (int h = 0; h < 4; h++) {
      const __m512 qv = _mm512_maskz_loadu_ps(lo, q[h] + i);
      for (int kk = 0; kk < 4; kk++)
        a[4 * h + kk] = _mm512_mask3_fmadd_ps(qv, _mm512_maskz_loadu_ps(lo, K + kk * ldkv + i),
                                              a[4 * h + kk], lo);
    }
  }
  /* a0 + a1: [a0 | a1] of chains n, n+1 -> [v_n | v_n+1] */
  __m512 b[8];
  for (int p = 0; p < 8; p++)
    b[p] = _mm512_add_ps(_mm512_shuffle_f32x4(a[2 * p], a[2 * p + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                         _mm512_shuffle_f32x4(a[2 * p], a[2 * p + 1], _MM_SHUFFLE(3, 2, 3, 2)));
  /* v[0..4) + v[4..8): 128-bit lane l of c[r] holds that of v_(4r+l) */
  __m512 c[4];
  for (int r = 0; r < 4; r++)
    c[r] = _mm512_add_ps(_mm512_shuffle_f32x4(b[2 * r], b[2 * r + 1], _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm512_shuffle_f32x4(b[2 * r], b[2 * r + 1], _MM_SHUFFLE(3, 1, 3, 1)));
  /* [s0 + s2, s1 + s3]: lane l of e[u] holds v_(8u+l)'s pair, then v_(8u+4+l)'s */
  __m512 e[2];
  for (int u = 0; u < 2; u++)
    e[u] = _mm512_add_ps(_mm512_shuffle_ps(c[2 * u], c[2 * u + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                         _mm512_shuffle_ps(c[2 * u], c[2 * u + 1], _MM_SHUFFLE(3, 2, 3, 2)));
  /* the pair's first + second: element 4*l + m is v_(4m+l), i.e. head m, key l */
  const __m512 t = _mm512_add_ps(_mm512_shuffle_ps(e[0], e[1], _MM_SHUFFLE(2, 0, 2, 0)),
                                 _mm512_shuffle_ps(e[0], e[1], _MM_SHUFFLE(3, 1, 3, 1)));
  /* s[h * ld + kk] = scale * dot (as scale * pf_dot): head h's four keys in lane h */
  const __m512 r =
      _mm512_permutexvar_ps(_mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15),
                            _mm512_mul_ps(_mm512_set1_ps(scale), t));
  _mm_storeu_ps(s, _mm512_extractf32x4_ps(r, 0));
  _mm_storeu_ps(s + ld, _mm512_extractf32x4_ps(r, 1));
  _mm_storeu_ps(s + 2 * ld, _mm512_extractf32x4_ps(r, 2));
  _mm_storeu_ps(s + 3 * ld, _mm512_extractf32x4_ps(r, 3));
}
#pragma GCC pop_options
#else
#define PF_ATTN_HAVE_AVX512 0
#endif

/* Decoding reads each cached key and value row once: rows this far ahead are
 * prefetched (0: none). The 16 layers' attention of one decode step of the 1B
 * model's shape (32 heads on 8 KV heads of 64, keys stored head by head, AMD
 * Zen 5, 2 threads, medians of 15): 1024 positions 2.29 -> 2.11 ms, 4096 positions
 * 9.94 -> 8.76 ms; 8 to 128 rows ahead measured within 3 % of each other
 * (bench/README.md "Attention at long contexts"). */
int64_t pf_attn_prefetch_rows = 16;

/* Key row k + pfd of K (rows ldkv apart, hd floats each), one prefetch per 64-byte
 * line, when pfd > 0 and that row is one of the task's, k + pfd <= hi. */
static inline void prefetch_row(const float *K, int64_t ldkv, int64_t hd, int64_t k, int64_t hi,
                                int64_t pfd) {
  if (pfd && k + pfd <= hi)
    for (int64_t c = 0; c < hd; c += 16)
      __builtin_prefetch(K + (k + pfd) * ldkv + c, 0, 3);
}

/* Where batch row b's KV head g starts in j->k and j->v. */
static inline int64_t kv_offset(const pf_attn_job *j, int64_t b, int64_t g) {
  return b * j->bstride + g * (j->gstride ? j->gstride : j->hd);
}

/* Allowed keys [*lo, *hi] of the query at position pos; empty when *hi < *lo. */
static inline void key_range(const pf_attn_job *j, int64_t pos, int64_t len, int64_t *lo,
                             int64_t *hi) {
  *hi = pos < len - 1 ? pos : len - 1;
  *lo = (j->window > 0 && pos - j->window + 1 > 0) ? pos - j->window + 1 : 0;
}

/* Few query rows: dot products against the keys as stored. */
static void task_dots(const pf_attn_job *j, const float *Q, const float *K, const float *V,
                      float *O, int64_t len, float *s) {
  const int64_t pfd = pf_attn_prefetch_rows;
  for (int64_t r = 0; r < j->seq; r++) {
    const float *q = Q + r * j->ldq;
    float *o = O + r * j->ldo;
    int64_t lo, hi;
    key_range(j, j->p0 + r, len, &lo, &hi);
    memset(o, 0, (size_t)j->hd * sizeof *o);
    if (hi < lo) continue;
    for (int64_t k = lo; k <= hi; k++) {
      prefetch_row(K, j->ldkv, j->hd, k, hi, pfd);
      s[k] = j->scale * pf_dot(q, K + k * j->ldkv, j->hd);
    }
    if (j->softcap > 0) pf_softcap(s + lo, hi - lo + 1, j->softcap);
    pf_softmax_row(s + lo, hi - lo + 1);
    pv_acc(o, s, V, j->ldkv, j->hd, lo, hi, pfd);
  }
}

/* Rows of fewer than 8 (decoding), up to 4 query heads h0.. of one KV group at
 * once: with 4, each key is read once for the heads (pf_dot4) and each value row
 * once (pv4); fewer (the last heads of a group, or groups of 1-3) go head by head.
 * Every head's scores, softmax and P·V are task_dots' own, bit for bit.
 * s: nh * ld floats. */
static void task_dots4(const pf_attn_job *j, int64_t b, int64_t h0, int nh, float *s, int64_t ld,
                       int wide) {
  const int64_t g = h0 / (j->n_heads / j->n_kv), len = j->len[b];
  const int64_t at = kv_offset(j, b, g);
  const float *K = j->k + at, *V = j->v + at;
  const int64_t pfd = pf_attn_prefetch_rows;
  for (int64_t r = 0; r < j->seq; r++) {
    const float *q[4];
    float *o[4];
    for (int h = 0; h < nh; h++) {
      q[h] = j->q + (b * j->seq + r) * j->ldq + (h0 + h) * j->hd;
      o[h] = j->out + (b * j->seq + r) * j->ldo + (h0 + h) * j->hd;
      memset(o[h], 0, (size_t)j->hd * sizeof *o[h]);
    }
    int64_t lo, hi;
    key_range(j, j->p0 + r, len, &lo, &hi);
    if (hi < lo) continue;
    int64_t k = lo;
#if PF_ATTN_HAVE_AVX512
    if (wide && nh == 4 && j->hd % 8 == 0)
      for (; k + 3 <= hi; k += 4) {
        for (int kk = 0; kk < 4; kk++)
          prefetch_row(K, j->ldkv, j->hd, k + kk, hi, pfd);
        dots4x4(q, K + k * j->ldkv, j->ldkv, j->hd, j->scale, s + k, ld);
      }
#endif
    for (; k <= hi; k++) {
      const float *key = K + k * j->ldkv;
      prefetch_row(K, j->ldkv, j->hd, k, hi, pfd);
      float d[4];
      if (nh == 4)
        pf_dot4(q, key, j->hd, d);
      else
        for (int h = 0; h < nh; h++)
          d[h] = pf_dot(q[h], key, j->hd);
      for (int h = 0; h < nh; h++)
        s[h * ld + k] = j->scale * d[h];
    }
    for (int h = 0; h < nh; h++) {
      float *sh = s + h * ld;
      if (j->softcap > 0) pf_softcap(sh + lo, hi - lo + 1, j->softcap);
      pf_softmax_row(sh + lo, hi - lo + 1);
    }
    if (nh < 4) {
      for (int h = 0; h < nh; h++)
        pv_acc(o[h], s + h * ld, V, j->ldkv, j->hd, lo, hi, pfd);
      continue;
    }
    const float *p[4] = {s, s + ld, s + 2 * ld, s + 3 * ld}; /* each V row read once */
#if PF_ATTN_HAVE_AVX512
    if (wide) {
      pv4_acc(o, p, V, j->ldkv, j->hd, lo, hi, pfd);
      continue;
    }
#endif
    pv4_acc_v8(o, p, V, j->ldkv, j->hd, lo, hi, pfd);
  }
}

/* kt[d][k] = K[k][d] for k < nk, zero up to the next multiple of PF_ATTN_KB.
 * In tiles of 16 keys: 16 short contiguous reads per dimension, one contiguous
 * 64-byte write (a key-at-a-time loop writes one cache line per element). */
static void transpose_keys(const pf_attn_job *j, const float *K, int64_t nk, float *kt,
                           int64_t ld) {
  const int64_t hd = j->hd, nkp = (nk + PF_ATTN_KB - 1) / PF_ATTN_KB * PF_ATTN_KB;
  for (int64_t k0 = 0; k0 < nk; k0 += 16) {
    const int64_t n = nk - k0 < 16 ? nk - k0 : 16;
    for (int64_t d = 0; d < hd; d++) {
      float *dst = kt + d * ld + k0;
      const float *src = K + k0 * j->ldkv + d;
      for (int64_t k = 0; k < n; k++)
        dst[k] = src[k * j->ldkv];
    }
  }
  for (int64_t d = 0; d < hd; d++)
    memset(kt + d * ld + nk, 0, (size_t)(nkp - nk) * sizeof *kt);
}

/* The rows of one query block: their allowed keys and the key span they cover. */
typedef struct rows_info {
  int64_t n, r0;
  int64_t lo[PF_ATTN_QB], hi[PF_ATTN_QB];
  int64_t b0, b1; /* key blocks [b0, b1) (multiples of PF_ATTN_KB) hold every allowed key */
} rows_info;

static int row_empty(const rows_info *ri, int64_t i) {
  return ri->hi[i] < ri->lo[i];
}

/* 1 if any of rows [i, i+n) has an allowed key in block kb. */
static int rows_need(const rows_info *ri, int64_t i, int64_t n, int64_t kb) {
  for (int64_t r = i; r < i + n; r++)
    if (!row_empty(ri, r) && kb <= ri->hi[r] && kb + PF_ATTN_KB > ri->lo[r]) return 1;
  return 0;
}

/* Scores of every row over the key blocks it touches (4 rows at a time, with
 * 16-float vectors on AVX-512, else 8-float ones; a block a row does not need is
 * computed for its neighbours and ignored). */
static void block_scores(const pf_attn_job *j, const float *Q, const rows_info *ri, const float *kt,
                         int64_t ld, float *s, int wide) {
  for (int64_t kb = ri->b0; kb < ri->b1; kb += PF_ATTN_KB) {
    int64_t i = 0;
    for (; i + 4 <= ri->n; i += 4) {
      if (!rows_need(ri, i, 4, kb)) continue;
      const float *q[4];
      float *out[4];
      for (int r = 0; r < 4; r++) {
        q[r] = Q + (ri->r0 + i + r) * j->ldq;
        out[r] = s + (i + r) * ld + kb;
      }
#if PF_ATTN_HAVE_AVX512
      if (wide) {
        qk4_block64(q, kt + kb, ld, j->hd, j->scale, out);
        continue;
      }
#endif
      qk4_block64_v8(q, kt + kb, ld, j->hd, j->scale, out);
    }
    for (; i < ri->n; i++)
      if (rows_need(ri, i, 1, kb))
        qk_block64(Q + (ri->r0 + i) * j->ldq, kt + kb, ld, j->hd, j->scale, s + i * ld + kb);
  }
}

/* Softmax over each row's allowed keys; zeros elsewhere in [b0, b1) so that rows
 * can share the P·V loop. */
static void block_softmax(const rows_info *ri, int64_t ld, float *s, float softcap) {
  for (int64_t i = 0; i < ri->n; i++) {
    float *row = s + i * ld;
    if (row_empty(ri, i)) {
      memset(row + ri->b0, 0, (size_t)(ri->b1 - ri->b0) * sizeof *row);
      continue;
    }
    if (softcap > 0) pf_softcap(row + ri->lo[i], ri->hi[i] - ri->lo[i] + 1, softcap);
    pf_softmax_row(row + ri->lo[i], ri->hi[i] - ri->lo[i] + 1);
    memset(row + ri->b0, 0, (size_t)(ri->lo[i] - ri->b0) * sizeof *row);
    memset(row + ri->hi[i] + 1, 0, (size_t)(ri->b1 - ri->hi[i] - 1) * sizeof *row);
  }
}

/* Union of the allowed keys of rows [i, i+n) inside block kb: [*a, *z]. */
static void rows_span(const rows_info *ri, int64_t i, int64_t n, int64_t kb, int64_t *a,
                      int64_t *z) {
  *a = kb + PF_ATTN_KB;
  *z = kb - 1;
  for (int64_t r = i; r < i + n; r++) {
    if (row_empty(ri, r)) continue;
    const int64_t lo = ri->lo[r] > kb ? ri->lo[r] : kb;
    const int64_t hi = ri->hi[r] < kb + PF_ATTN_KB - 1 ? ri->hi[r] : kb + PF_ATTN_KB - 1;
    if (lo <= hi && lo < *a) *a = lo;
    if (lo <= hi && hi > *z) *z = hi;
  }
}

static void block_pv(const pf_attn_job *j, const float *V, float *O, const rows_info *ri,
                     int64_t ld, const float *s, int wide) {
  for (int64_t kb = ri->b0; kb < ri->b1; kb += PF_ATTN_KB) {
    int64_t i = 0, a, z;
    for (; i + 4 <= ri->n; i += 4) {
      rows_span(ri, i, 4, kb, &a, &z);
      if (a > z) continue;
      float *o[4];
      const float *p[4];
      for (int r = 0; r < 4; r++) {
        o[r] = O + (ri->r0 + i + r) * j->ldo;
        p[r] = s + (i + r) * ld;
      }
#if PF_ATTN_HAVE_AVX512
      if (wide) {
        pv4_acc(o, p, V, j->ldkv, j->hd, a, z, 0);
        continue;
      }
#endif
      pv4_acc_v8(o, p, V, j->ldkv, j->hd, a, z, 0);
    }
    for (; i < ri->n; i++) {
      rows_span(ri, i, 1, kb, &a, &z);
      if (a <= z) pv_acc(O + (ri->r0 + i) * j->ldo, s + i * ld, V, j->ldkv, j->hd, a, z, 0);
    }
  }
}

/* One block of up to PF_ATTN_QB query rows [r0, r0+nr) against kt. */
static void block_rows(const pf_attn_job *j, const float *Q, const float *V, float *O, int64_t len,
                       int64_t r0, int64_t nr, const float *kt, int64_t ld, float *s, int wide) {
  rows_info ri = {.n = nr, .r0 = r0};
  int64_t kmin = INT64_MAX, kmax = -1;
  for (int64_t i = 0; i < nr; i++) {
    key_range(j, j->p0 + r0 + i, len, &ri.lo[i], &ri.hi[i]);
    memset(O + (r0 + i) * j->ldo, 0, (size_t)j->hd * sizeof *O);
    if (row_empty(&ri, i)) continue;
    kmin = ri.lo[i] < kmin ? ri.lo[i] : kmin;
    kmax = ri.hi[i] > kmax ? ri.hi[i] : kmax;
  }
  if (kmax < 0) return;
  ri.b0 = kmin / PF_ATTN_KB * PF_ATTN_KB;
  ri.b1 = (kmax / PF_ATTN_KB + 1) * PF_ATTN_KB;
  block_scores(j, Q, &ri, kt, ld, s, wide);
  block_softmax(&ri, ld, s, j->softcap);
  block_pv(j, V, O, &ri, ld, s, wide);
}

/* Batch row b, query head h. scratch: kt [hd, ld] then scores [QB, ld]. */
static void attn_task(const pf_attn_job *j, int64_t b, int64_t h, float *scratch, int64_t ld,
                      int wide) {
  const int64_t g = h / (j->n_heads / j->n_kv);
  const int64_t at = kv_offset(j, b, g);
  const float *K = j->k + at, *V = j->v + at;
  const float *Q = j->q + b * j->seq * j->ldq + h * j->hd;
  float *O = j->out + b * j->seq * j->ldo + h * j->hd;
  const int64_t len = j->len[b];
  float *kt = scratch, *s = scratch + j->hd * ld;
  if (j->seq < 8) {
    task_dots(j, Q, K, V, O, len, s);
    return;
  }
  const int64_t last = j->p0 + j->seq - 1;
  const int64_t nk = last < len - 1 ? last + 1 : len; /* keys any row can see */
  if (nk > 0) transpose_keys(j, K, nk, kt, ld);
  for (int64_t r0 = 0; r0 < j->seq; r0 += PF_ATTN_QB) {
    const int64_t nr = j->seq - r0 < PF_ATTN_QB ? j->seq - r0 : PF_ATTN_QB;
    block_rows(j, Q, V, O, len, r0, nr, kt, ld, s, wide);
  }
}

/* Decoding (seq < 8) with groups of 4 or more query heads per KV head takes them
 * four at a time
 * (task_dots4: 2.7-3.0x faster scores at 150-1000 keys, AMD Zen 5, the same
 * bits); 0: one task per head (task_dots; tests compare). */
int pf_attn_group_heads = 1;

void pf_attn_run(const pf_attn_job *j, float *scratch, size_t scratch_per_thr, int nthr) {
  const int64_t keys = j->p0 + j->seq;
  const int64_t ld = (keys + PF_ATTN_KB - 1) / PF_ATTN_KB * PF_ATTN_KB;
  const int wide = pf_kernels_isa() == PF_ISA_AVX512;
  const int64_t G = j->n_heads / j->n_kv; /* query heads per KV head */
  if (j->seq < 8 && G >= 4 && pf_attn_group_heads) {
    const int64_t per = (G + 3) / 4; /* tasks per group */
    const int64_t tasks = j->batch * j->n_kv * per;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nthr) if (tasks > 1)
    for (int64_t t = 0; t < tasks; t++) {
      float *mine = scratch + (size_t)omp_get_thread_num() * scratch_per_thr;
      const int64_t b = t / (j->n_kv * per), g = t / per % j->n_kv, c = t % per;
      const int64_t h0 = g * G + 4 * c;
      task_dots4(j, b, h0, (int)(G - 4 * c < 4 ? G - 4 * c : 4), mine, ld, wide);
    }
    return;
  }
  const int64_t tasks = j->batch * j->n_heads;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nthr) if (tasks > 1)
  for (int64_t t = 0; t < tasks; t++) {
    float *mine = scratch + (size_t)omp_get_thread_num() * scratch_per_thr;
    attn_task(j, t / j->n_heads, t % j->n_heads, mine, ld, wide);
  }
}
