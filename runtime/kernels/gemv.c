/* gemv.c — the decode path of a linear layer: y[m, n] = x[m, k] · W[n, k]^T for
 * m <= pf_kern_gemv_max_m, and the half -> float widening used by the GEMM path.
 *
 * Why a hand-written GEMV: with one to four rows of activations a linear layer is
 * bound by reading W (2 bytes per weight in BF16), not by arithmetic. BLIS would
 * need W widened to float32 first (2x the bytes, plus a write), so we stream W
 * once, widening in registers: BF16 -> F32 is a 16-bit left shift, F16 -> F32 is
 * vcvtph2ps (F16C / AVX-512F). Each thread reads its own share of W's rows and,
 * when done, takes what is left of the others' from their ends (work stealing,
 * pf_kern_gemv_unit_bytes); each loaded weight vector feeds the M rows of x,
 * and the k loop is unrolled so that enough independent accumulators hide the FMA
 * latency. How a thread's rows are read matters, as measured (bench/README.md
 * "Decode GEMV at the read bandwidth"): an early kernel computed 4 adjacent rows at
 * once (4 streams a row apart, each one row long) and was capped near 30 GB/s on
 * Zen 5, 57-69 % of the read bandwidth; one row at a time (one sequential stream
 * per thread) reached 95-112 % there. On Zen 3 one stream per thread stays well
 * below what the memory gives to several long streams, so both kernels read rows
 * from several parts of the chunk, far apart, side by side (each part one long
 * sequential stream; pf_kern_gemv_streams), and prefetch W ahead where that was
 * measured to help (pf_kern_gemv_prefetch_*). The register kernels take
 * up to 4 x rows; larger m is done in groups of 4 over ~128 KiB blocks of W, so W
 * is still read from memory once (the later groups find the block in L2).
 *
 * The AVX-512 code is compiled with a target pragma and only called when init
 * found AVX-512 F/BW/VL (pf_kern_isa_level); the AVX2 code is the build baseline.
 */
#include "kern_internal.h"

#include <omp.h>
#include <stdatomic.h>
#include <string.h>
#if PF_KERN_HAVE_AVX2
#include <immintrin.h>
#endif

typedef struct gemv_args {
  int64_t m, n, k;
  const float *x; /* [m, k], row stride ldx */
  int64_t ldx;
  const void *w; /* [n, k], row stride ldw, dtype of the instantiation */
  int64_t ldw;
  const float *bias; /* [n] or NULL */
  float beta;
  float *y; /* [m, n], row stride ldy */
  int64_t ldy;
} gemv_args;

/* A kernel computes the output rows base + s * per + o for each of its streams
 * s (one, or the S of gemv_kern) and o in [o0, o1). */
typedef void (*gemv_fn)(const gemv_args *a, int64_t base, int64_t per, int64_t o0, int64_t o1);

static inline void store_out(const gemv_args *a, int64_t mi, int64_t row, float v) {
  if (a->bias) v += a->bias[row];
  float *py = a->y + mi * a->ldy + row;
  *py = a->beta != 0.0f ? v + a->beta * *py : v;
}

static inline float w_scalar(const void *w, int dt, int64_t off) {
  if (dt == PF_DTYPE_F32) return ((const float *)w)[off];
  uint16_t h = ((const uint16_t *)w)[off];
  return dt == PF_DTYPE_BF16 ? pf_bf16_to_f32(h) : pf_f16_to_f32(h);
}

/* ---- scalar (builds without AVX2) ---- */

static void gemv_scalar(const gemv_args *a, int64_t r0, int64_t r1, int dt) {
  for (int64_t row = r0; row < r1; row++)
    for (int64_t mi = 0; mi < a->m; mi++) {
      const float *x = a->x + mi * a->ldx;
      float s = 0.0f;
      for (int64_t i = 0; i < a->k; i++)
        s += w_scalar(a->w, dt, row * a->ldw + i) * x[i];
      store_out(a, mi, row, s);
    }
}
static void gemv_scalar_f32(const gemv_args *a, int64_t base, int64_t per, int64_t o0, int64_t o1) {
  (void)per; /* one stream */
  gemv_scalar(a, base + o0, base + o1, PF_DTYPE_F32);
}
static void gemv_scalar_f16(const gemv_args *a, int64_t base, int64_t per, int64_t o0, int64_t o1) {
  (void)per; /* one stream */
  gemv_scalar(a, base + o0, base + o1, PF_DTYPE_F16);
}
static void gemv_scalar_bf16(const gemv_args *a, int64_t base, int64_t per, int64_t o0,
                             int64_t o1) {
  (void)per; /* one stream */
  gemv_scalar(a, base + o0, base + o1, PF_DTYPE_BF16);
}

/* AVX2 kernel: software prefetch this many bytes ahead in W (0: none). On AMD Zen 3
 * (2 threads, BF16 m = 1, 1 GiB of W) 1 KiB ahead lifted the GEMV from 31-33 to
 * 34-35 GB/s against a 35-38 GB/s read; 512 B gained less, 2 KiB lost (28-30);
 * the non-temporal hint (W is read once) 36.5 against 35.1-35.7 for T0.
 * The AVX-512 kernel's distance is its own: on AMD Zen 5 (2 threads, BF16, 1 GiB
 * of W, best of 8, two runs) m = 3 went from 38-48 to 43-55 GB/s with a prefetch
 * 2 KiB ahead and m = 4 from 28-29 to 42 (the rows' FMAs slow the loop enough
 * that the hardware prefetcher alone no longer keeps each stream's lines coming).
 * At m = 1 and 2 it was first left out (same rate with and without, chunks taken
 * in turn); with each thread's share read as long streams it pays there too: the
 * 1B model's 113 decode products, medians of 24 rounds in ABBA order, three runs,
 * m = 1 37.7-39.7 ms against 40.2-43.9 without, m = 2 47.9-49.2 against 61.5-64.5
 * (bench_gemv's 8-layer decode, m = 1: the same rate with and without).
 * bench_gemv compares both kernels with none. A prefetch never faults, so
 * reading ahead of W's end is harmless. */
size_t pf_kern_gemv_prefetch_avx2 = 1024;
size_t pf_kern_gemv_prefetch_avx512 = 2048;

/* AVX2 kernel: the rows a thread reads (its share, or a chunk) are split into
 * this many equal parts, read side by side, one row of each at a time (1: the
 * rows in order, one stream). On AMD Zen 3 (2 threads, BF16 m = 1,
 * 1 GiB of W) one sequential stream per thread stayed at 35-39 GB/s while the
 * memory gave 45-58 GB/s to 4 streams per thread: 4 streams a quarter of a chunk
 * apart took the GEMV to 58 GB/s (2 streams: 51; 8: 50-53). Adjacent rows side
 * by side (an early kernel's pattern; 2 adjacent rows measured 29-34 GB/s) were
 * slower than one stream: each of those streams is one row long, so the hardware
 * prefetcher never follows any of them far. The AVX-512 kernel reads 4, 2, 2, 2
 * streams at m = 1..4 (its register budget): on AMD Zen 5 (1 GiB of BF16 W) 4
 * streams at m = 1 gave 50.3-50.9 GB/s against 47.2-49.4 for one (bench_gemv's
 * decode, three memories), m = 4 with 2 streams 28-29 against 21-23 (before
 * the prefetch). bench_gemv compares 1 and the default. */
int pf_kern_gemv_streams = 4;

#if PF_KERN_HAVE_AVX2
/* ---- AVX2 + FMA + F16C ---- */

static inline __attribute__((always_inline)) __m256 ld8_w(const void *w, int dt, int64_t off) {
  if (dt == PF_DTYPE_F32) return _mm256_loadu_ps((const float *)w + off);
  __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)w + off));
  if (dt == PF_DTYPE_F16) return _mm256_cvtph_ps(h);
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

static inline float hsum256(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

/* Output rows rows[0..S) for M input rows: S rows of W read side by side (S
 * streams, far apart in W: see pf_kern_gemv_streams), the k loop unrolled U
 * times, so S*U*M independent accumulators hide the FMA latency; each x vector
 * feeds the S rows, each weight vector the M x rows. M, U, S, dt are constants
 * after inlining. A row's arithmetic depends on U alone, not on S or on which
 * rows are read beside it. */
static inline __attribute__((always_inline)) void gemv_rows_avx2(const gemv_args *a, const int M,
                                                                 const int U, const int S,
                                                                 const int dt,
                                                                 const int64_t *rows) {
  __m256 acc[4][4][4];
  for (int s = 0; s < S; s++)
    for (int u = 0; u < U; u++)
      for (int mi = 0; mi < M; mi++)
        acc[s][u][mi] = _mm256_setzero_ps();
  const int64_t k = a->k, kU = k - k % (8 * U), k8 = k & ~(int64_t)7;
  const int esz = dt == PF_DTYPE_F32 ? 4 : 2;
  int64_t wo[4];
  for (int s = 0; s < S; s++)
    wo[s] = rows[s] * a->ldw;
  const int64_t pfd = (int64_t)pf_kern_gemv_prefetch_avx2;
  int64_t i = 0;
  for (; i < kU; i += 8 * U) {
    /* each 64-byte line of W once, pfd bytes ahead; read once (non-temporal) */
    if (pfd && (8 * U * esz >= 64 || ((i * esz) & 63) == 0))
      for (int s = 0; s < S; s++)
        for (int o = 0; o < 8 * U * esz; o += 64)
          _mm_prefetch((const char *)a->w + (wo[s] + i) * esz + o + pfd, _MM_HINT_NTA);
    for (int u = 0; u < U; u++)
      for (int s = 0; s < S; s++) {
        __m256 wv = ld8_w(a->w, dt, wo[s] + i + 8 * u);
        for (int mi = 0; mi < M; mi++)
          acc[s][u][mi] =
              _mm256_fmadd_ps(wv, _mm256_loadu_ps(a->x + mi * a->ldx + i + 8 * u), acc[s][u][mi]);
      }
  }
  for (; i < k8; i += 8)
    for (int s = 0; s < S; s++) {
      __m256 wv = ld8_w(a->w, dt, wo[s] + i);
      for (int mi = 0; mi < M; mi++)
        acc[s][0][mi] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(a->x + mi * a->ldx + i), acc[s][0][mi]);
    }
  for (int s = 0; s < S; s++)
    for (int mi = 0; mi < M; mi++) {
      __m256 t = acc[s][0][mi];
      for (int u = 1; u < U; u++)
        t = _mm256_add_ps(t, acc[s][u][mi]);
      float v = hsum256(t);
      const float *x = a->x + mi * a->ldx;
      for (int64_t j = k8; j < k; j++)
        v += w_scalar(a->w, dt, wo[s] + j) * x[j];
      store_out(a, mi, rows[s], v);
    }
}

/* gemv_slice_ISA: the rows base + s * per + o for every stream s < S and o in
 * [o0, o1), one row of each stream at a time (gemv_rows_ISA): S streams `per` rows apart
 * in W, each read sequentially. GEMV_KERNELS: NAME reads 1 stream (the rows
 * base + o), NAME##_s S streams; both give the same bits (a row's arithmetic
 * depends on U only). */
#define GEMV_SLICE(ISA)                                                                            \
  static inline __attribute__((always_inline)) void gemv_slice_##ISA(                              \
      const gemv_args *a, const int M, const int U, const int S, const int dt, int64_t base,       \
      int64_t per, int64_t o0, int64_t o1) {                                                       \
    int64_t rows[4];                                                                               \
    for (int64_t o = o0; o < o1; o++) {                                                            \
      for (int s = 0; s < S; s++)                                                                  \
        rows[s] = base + s * per + o;                                                              \
      gemv_rows_##ISA(a, M, U, S, dt, rows);                                                       \
    }                                                                                              \
  }
#define GEMV_KERNELS(ISA, NAME, M, U, S, DT)                                                       \
  static void NAME(const gemv_args *a, int64_t base, int64_t per, int64_t o0, int64_t o1) {        \
    gemv_slice_##ISA(a, M, U, 1, DT, base, per, o0, o1);                                           \
  }                                                                                                \
  static void NAME##_s(const gemv_args *a, int64_t base, int64_t per, int64_t o0, int64_t o1) {    \
    gemv_slice_##ISA(a, M, U, S, DT, base, per, o0, o1);                                           \
  }
GEMV_SLICE(avx2)

/* AVX2 has 16 vector registers: S*U*M accumulators + a weight vector (x comes
 * from memory as the FMA's operand). */
#define GEMV_AVX2(NAME, M, U, S, DT) GEMV_KERNELS(avx2, NAME, M, U, S, DT)
/* Per dtype, M = 1..4: (U, S) = (2, 4), (1, 4), (1, 4), (1, 2). */
#define GEMV_AVX2_DT(T, DT)                                                                        \
  GEMV_AVX2(gemv_avx2_##T##_1, 1, 2, 4, DT)                                                        \
  GEMV_AVX2(gemv_avx2_##T##_2, 2, 1, 4, DT)                                                        \
  GEMV_AVX2(gemv_avx2_##T##_3, 3, 1, 4, DT)                                                        \
  GEMV_AVX2(gemv_avx2_##T##_4, 4, 1, 2, DT)
GEMV_AVX2_DT(f32, PF_DTYPE_F32)
GEMV_AVX2_DT(f16, PF_DTYPE_F16)
GEMV_AVX2_DT(bf16, PF_DTYPE_BF16)

/* ---- AVX-512 F + BW + VL (runtime-dispatched) ---- */
PF_KERN_AVX512_BEGIN

/* 16 weights starting at off; lanes at or past `left` are zero (masked load, so
 * no read past the row end). */
static inline __attribute__((always_inline)) __m512 ld16_w(const void *w, int dt, int64_t off,
                                                           __mmask16 mask) {
  if (dt == PF_DTYPE_F32) return _mm512_maskz_loadu_ps(mask, (const float *)w + off);
  __m256i h = _mm256_maskz_loadu_epi16(mask, (const uint16_t *)w + off);
  if (dt == PF_DTYPE_F16) return _mm512_cvtph_ps(h);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

/* Output rows rows[0..S) for M input rows: S rows of W read side by side (S
 * long streams, as in the AVX2 kernel), the k loop unrolled 4 times; each x
 * vector feeds the S rows, each weight vector the M x rows. A row's arithmetic
 * does not depend on S or on the rows read beside it. */
static inline __attribute__((always_inline)) void gemv_rows_avx512(const gemv_args *a, const int M,
                                                                   const int U, const int S,
                                                                   const int dt,
                                                                   const int64_t *rows) {
  __m512 acc[4][4][4];
  for (int s = 0; s < S; s++)
    for (int u = 0; u < U; u++)
      for (int mi = 0; mi < M; mi++)
        acc[s][u][mi] = _mm512_setzero_ps();
  const int64_t k = a->k, kU = k - k % (16 * U);
  int64_t wo[4];
  for (int s = 0; s < S; s++)
    wo[s] = rows[s] * a->ldw;
  const __mmask16 all = 0xffff;
  const int esz = dt == PF_DTYPE_F32 ? 4 : 2;
  const int64_t pfd = (int64_t)pf_kern_gemv_prefetch_avx512;
  int64_t i = 0;
  for (; i < kU; i += 16 * U) {
    if (pfd)
      for (int s = 0; s < S; s++)
        for (int o = 0; o < 16 * U * esz; o += 64)
          _mm_prefetch((const char *)a->w + (wo[s] + i) * esz + o + pfd, _MM_HINT_NTA);
    for (int u = 0; u < U; u++) {
      __m512 xv[4];
      for (int mi = 0; mi < M; mi++)
        xv[mi] = _mm512_loadu_ps(a->x + mi * a->ldx + i + 16 * u);
      for (int s = 0; s < S; s++) {
        __m512 wv = ld16_w(a->w, dt, wo[s] + i + 16 * u, all);
        for (int mi = 0; mi < M; mi++)
          acc[s][u][mi] = _mm512_fmadd_ps(wv, xv[mi], acc[s][u][mi]);
      }
    }
  }
  for (; i < k; i += 16) {
    const __mmask16 mask = k - i >= 16 ? all : (__mmask16)((1u << (k - i)) - 1u);
    for (int s = 0; s < S; s++) {
      __m512 wv = ld16_w(a->w, dt, wo[s] + i, mask);
      for (int mi = 0; mi < M; mi++)
        acc[s][0][mi] =
            _mm512_fmadd_ps(wv, _mm512_maskz_loadu_ps(mask, a->x + mi * a->ldx + i), acc[s][0][mi]);
    }
  }
  for (int s = 0; s < S; s++)
    for (int mi = 0; mi < M; mi++) {
      __m512 t = acc[s][0][mi];
      if (U == 4)
        t = _mm512_add_ps(_mm512_add_ps(t, acc[s][1][mi]),
                          _mm512_add_ps(acc[s][2][mi], acc[s][3][mi]));
      else
        for (int u = 1; u < U; u++)
          t = _mm512_add_ps(t, acc[s][u][mi]);
      store_out(a, mi, rows[s], _mm512_reduce_add_ps(t));
    }
}

GEMV_SLICE(avx512)

/* 32 vector registers: U*S*M accumulators + M x vectors + a weight vector. */
#define GEMV_AVX512(NAME, M, U, S, DT) GEMV_KERNELS(avx512, NAME, M, U, S, DT)
/* Per dtype, M = 1..4: (U, S) = (4, 4), (4, 2), (2, 2), (2, 2): 16, 16, 12, 16 accumulators. */
#define GEMV_AVX512_DT(T, DT)                                                                      \
  GEMV_AVX512(gemv_avx512_##T##_1, 1, 4, 4, DT)                                                    \
  GEMV_AVX512(gemv_avx512_##T##_2, 2, 4, 2, DT)                                                    \
  GEMV_AVX512(gemv_avx512_##T##_3, 3, 2, 2, DT)                                                    \
  GEMV_AVX512(gemv_avx512_##T##_4, 4, 2, 2, DT)
GEMV_AVX512_DT(f32, PF_DTYPE_F32)
GEMV_AVX512_DT(f16, PF_DTYPE_F16)
GEMV_AVX512_DT(bf16, PF_DTYPE_BF16)

PF_KERN_AVX512_END
#endif /* PF_KERN_HAVE_AVX2 */

/* The kernel for m x rows (1..4) of dtype dt under isa: `one` reads one stream,
 * `many` S streams side by side (S = 1 when pf_kern_gemv_streams is 1). */
typedef struct gemv_kern {
  gemv_fn one, many;
  int S;
} gemv_kern;

/* [isa][dtype][m-1]; dtype order follows pf_dtype (F32, F16, BF16). */
static gemv_kern pick(pf_isa isa, pf_dtype dt, int64_t m) {
#if PF_KERN_HAVE_AVX2
  static const gemv_fn avx2[3][4] = {
      {gemv_avx2_f32_1, gemv_avx2_f32_2, gemv_avx2_f32_3, gemv_avx2_f32_4},
      {gemv_avx2_f16_1, gemv_avx2_f16_2, gemv_avx2_f16_3, gemv_avx2_f16_4},
      {gemv_avx2_bf16_1, gemv_avx2_bf16_2, gemv_avx2_bf16_3, gemv_avx2_bf16_4}};
  static const gemv_fn avx2_s[3][4] = {
      {gemv_avx2_f32_1_s, gemv_avx2_f32_2_s, gemv_avx2_f32_3_s, gemv_avx2_f32_4_s},
      {gemv_avx2_f16_1_s, gemv_avx2_f16_2_s, gemv_avx2_f16_3_s, gemv_avx2_f16_4_s},
      {gemv_avx2_bf16_1_s, gemv_avx2_bf16_2_s, gemv_avx2_bf16_3_s, gemv_avx2_bf16_4_s}};
  static const gemv_fn avx512[3][4] = {
      {gemv_avx512_f32_1, gemv_avx512_f32_2, gemv_avx512_f32_3, gemv_avx512_f32_4},
      {gemv_avx512_f16_1, gemv_avx512_f16_2, gemv_avx512_f16_3, gemv_avx512_f16_4},
      {gemv_avx512_bf16_1, gemv_avx512_bf16_2, gemv_avx512_bf16_3, gemv_avx512_bf16_4}};
  static const gemv_fn avx512_s[3][4] = {
      {gemv_avx512_f32_1_s, gemv_avx512_f32_2_s, gemv_avx512_f32_3_s, gemv_avx512_f32_4_s},
      {gemv_avx512_f16_1_s, gemv_avx512_f16_2_s, gemv_avx512_f16_3_s, gemv_avx512_f16_4_s},
      {gemv_avx512_bf16_1_s, gemv_avx512_bf16_2_s, gemv_avx512_bf16_3_s, gemv_avx512_bf16_4_s}};
  /* the S of each GEMV_AVX2_DT / GEMV_AVX512_DT line, by m */
  static const int avx2_S[4] = {4, 4, 4, 2}, avx512_S[4] = {4, 2, 2, 2};
  _Static_assert(PF_DTYPE_F32 == 0 && PF_DTYPE_F16 == 1 && PF_DTYPE_BF16 == 2, "table order");

  const int streams = pf_kern_gemv_streams > 1;
  if (isa == PF_ISA_AVX512)
    return (gemv_kern){avx512[dt][m - 1], (streams ? avx512_s : avx512)[dt][m - 1],
                       streams ? avx512_S[m - 1] : 1};
  if (isa == PF_ISA_AVX2)
    return (gemv_kern){avx2[dt][m - 1], (streams ? avx2_s : avx2)[dt][m - 1],
                       streams ? avx2_S[m - 1] : 1};
#else
  (void)isa;
  (void)m;
#endif
  const gemv_fn f = dt == PF_DTYPE_F32   ? gemv_scalar_f32
                    : dt == PF_DTYPE_F16 ? gemv_scalar_f16
                                         : gemv_scalar_bf16;
  return (gemv_kern){f, f, 1};
}

/* Rows [r0, r1): split into S equal parts read side by side, the rows left over
 * (fewer than S) after them, one stream. */
static void run_range(const gemv_kern *kr, const gemv_args *a, int64_t r0, int64_t r1) {
  const int64_t per = (r1 - r0) / kr->S, done = r0 + kr->S * per;
  if (per) kr->many(a, r0, per, 0, per);
  if (done < r1) kr->one(a, done, 0, 0, r1 - done);
}

/* Whole 4-row groups of W (at least one) in about `bytes`. */
static int64_t rows_in(size_t bytes, int64_t k, pf_dtype wdt) {
  int64_t rows = (int64_t)bytes / (k * (int64_t)pf_dtype_size(wdt));
  return rows < 4 ? 4 : rows & ~(int64_t)3;
}

/* How the threads divide W's rows at m <= 4 (bench/README.md, "Decode GEMV at the
 * read bandwidth"). Each thread reads its own contiguous share of whole 4-row
 * groups as the kernel's S long streams (the share's S parts side by side), in
 * units of about pf_kern_gemv_unit_bytes of W taken from the front of the share;
 * a thread done with its share takes units from the back of the others' (work
 * stealing). Long streams are what the memory serves best (one share per thread
 * read 4-5 % faster than 1 MiB chunks taken in turn, AMD Zen 5, the 1B model's
 * decode GEMVs back to back), and stealing keeps what fixed shares lose: on a
 * shared or virtualised CPU one thread is often slowed for a while, and the other
 * then waited for it at the end of every product (6-8 % of a decode's samples on
 * Zen 5). 0: the chunks of pf_kern_gemv_chunk_bytes instead. Which thread
 * computes a row does not change its arithmetic: the results are the same. */
size_t pf_kern_gemv_unit_bytes = (size_t)256 << 10;

/* m > 4, or pf_kern_gemv_unit_bytes = 0: threads take chunks of whole 4-row
 * groups, ~pf_kern_gemv_chunk_bytes of W, in turn (dynamic); 0: one contiguous
 * share each (the former split). */
size_t pf_kern_gemv_chunk_bytes = (size_t)1 << 20;

/* pf_kern_gemv_many runs its products in one parallel region (1) or one after
 * the other (0: benchmarks compare). */
int pf_kern_gemv_many_enabled = 1;

/* Output rows [b0, b1): for m > 4 in cache blocks of rb rows, each block passed
 * by every group of 4 x rows. */
static void gemv_rows(const gemv_args *all, pf_dtype wdt, int64_t rb, int64_t b0, int64_t b1) {
  for (int64_t c0 = b0; c0 < b1; c0 += rb) {
    const int64_t c1 = b1 - c0 < rb ? b1 : c0 + rb;
    for (int64_t g = 0; g < all->m; g += 4) {
      gemv_args a = *all;
      a.m = all->m - g < 4 ? all->m - g : 4;
      a.x += g * all->ldx;
      a.y += g * all->ldy;
      const gemv_kern kr = pick(pf_kern_isa_level, wdt, a.m);
      run_range(&kr, &a, c0, c1);
    }
  }
}

/* A thread's share for the stealing schedule: rows base + s * per + o (s < S),
 * in units of u offsets o; front and back (in units) packed in one word, so that
 * the owner (front) and a thief (back) claim with one compare-and-swap each. */
typedef struct gemv_share {
  _Alignas(64) _Atomic uint64_t fb; /* front in the low 32 bits, back in the high */
  int64_t base, per, u;
} gemv_share;

#define GEMV_MAX_SHARES 64

/* Shares of the stealing schedule: 0 (default) one per thread; more than the
 * threads leaves shares that only stealing empties (check_kernels). */
int pf_kern_gemv_shares = 0;

static int64_t claim(gemv_share *sh, int back) {
  uint64_t v = atomic_load_explicit(&sh->fb, memory_order_relaxed);
  for (;;) {
    const uint64_t f = v & 0xffffffffu, b = v >> 32;
    if (f >= b) return -1;
    const uint64_t nv = back ? (b - 1) << 32 | f : v + 1;
    if (atomic_compare_exchange_weak_explicit(&sh->fb, &v, nv, memory_order_relaxed,
                                              memory_order_relaxed))
      return (int64_t)(back ? b - 1 : f);
  }
}

static void run_unit(const gemv_kern *kr, const gemv_args *a, const gemv_share *sh, int64_t j) {
  const int64_t o0 = j * sh->u, o1 = o0 + sh->u < sh->per ? o0 + sh->u : sh->per;
  kr->many(a, sh->base, sh->per, o0, o1);
}

/* One product of the stealing schedule: its arguments, kernel and shares. */
typedef struct steal_job {
  gemv_args a;
  gemv_kern kr;
  int nsh;
  gemv_share sh[GEMV_MAX_SHARES];
} steal_job;

/* Shares of whole 4-row groups, one per thread (pf_kern_gemv_shares: more). */
static void steal_setup(steal_job *j, const gemv_args *all, pf_dtype wdt) {
  j->a = *all;
  j->kr = pick(pf_kern_isa_level, wdt, all->m);
  int nsh = pf_kern_gemv_shares > 0 ? pf_kern_gemv_shares : omp_get_max_threads();
  j->nsh = nsh > GEMV_MAX_SHARES ? GEMV_MAX_SHARES : nsh;
  const int64_t groups = all->n / 4;
  const int64_t row_bytes = all->k * (int64_t)pf_dtype_size(wdt);
  int64_t u = (int64_t)pf_kern_gemv_unit_bytes / (j->kr.S * row_bytes);
  if (u < 1) u = 1;
  for (int t = 0; t < j->nsh; t++) {
    const int64_t r0 = groups * t / j->nsh * 4, r1 = groups * (t + 1) / j->nsh * 4;
    j->sh[t].base = r0;
    j->sh[t].per = (r1 - r0) / j->kr.S; /* whole 4-row groups: S (1, 2 or 4) divides them */
    j->sh[t].u = u;
    atomic_init(&j->sh[t].fb, (uint64_t)((j->sh[t].per + u - 1) / u) << 32);
  }
}

/* Thread t's part of a job: the rows past the last 4-row group (thread 0), its
 * own share from the front, then every other share from the back. Threads past
 * nsh, or shares without a thread, are covered: every thread steals from every
 * other share until all are empty. */
static void steal_run(steal_job *j, int t) {
  const int64_t groups = j->a.n / 4, tail = j->a.n - 4 * groups;
  if (t == 0 && tail) j->kr.one(&j->a, 4 * groups, 0, 0, tail);
  int64_t u;
  if (t < j->nsh)
    while ((u = claim(&j->sh[t], 0)) >= 0)
      run_unit(&j->kr, &j->a, &j->sh[t], u);
  for (int v = 1; v <= j->nsh; v++) {
    gemv_share *o = &j->sh[(t + v) % j->nsh];
    while ((u = claim(o, 1)) >= 0)
      run_unit(&j->kr, &j->a, o, u);
  }
}

/* m <= 4 on several threads, the stealing schedule (pf_kern_gemv_unit_bytes). */
static void gemv_steal(const gemv_args *all, pf_dtype wdt) {
  steal_job j;
  steal_setup(&j, all, wdt);
#pragma omp parallel
  steal_run(&j, omp_get_thread_num());
}

/* Whether one product runs on several threads. */
static int gemv_parallel(int64_t n, int64_t k) {
  return n * k >= PF_KERN_PAR_MIN && n >= 8 && omp_get_max_threads() > 1;
}

void pf_kern_gemv_many(int np, const pf_kern_gemv_part *p) {
  int together = np >= 1 && np <= PF_KERN_GEMV_MAX_PARTS && pf_kern_gemv_unit_bytes &&
                 pf_kern_gemv_many_enabled;
  for (int i = 0; together && i < np; i++)
    together = p[i].m >= 1 && p[i].m <= 4 && gemv_parallel(p[i].n, p[i].k);
  if (!together) {
    for (int i = 0; i < np; i++)
      pf_kern_gemv(p[i].m, p[i].n, p[i].k, p[i].x, p[i].ldx, p[i].w, p[i].wdt, p[i].ldw, p[i].bias,
                   p[i].beta, p[i].y, p[i].ldy);
    return;
  }
  steal_job j[PF_KERN_GEMV_MAX_PARTS];
  for (int i = 0; i < np; i++) {
    const gemv_args a = {p[i].m,   p[i].n,    p[i].k,    p[i].x, p[i].ldx, p[i].w,
                         p[i].ldw, p[i].bias, p[i].beta, p[i].y, p[i].ldy};
    steal_setup(&j[i], &a, p[i].wdt);
  }
  /* no barrier between the products: a thread done with one starts the next */
#pragma omp parallel
  {
    const int t = omp_get_thread_num();
    for (int i = 0; i < np; i++)
      steal_run(&j[i], t);
  }
}

void pf_kern_gemv(int64_t m, int64_t n, int64_t k, const float *x, int64_t ldx, const void *w,
                  pf_dtype wdt, int64_t ldw, const float *bias, float beta, float *y, int64_t ldy) {
  /* m > 4: rows of W kept hot while every group of (up to) 4 x rows passes over
   * them, ~128 KiB, so W comes from DRAM once and from L2 for the later groups */
  const int64_t rb = m > 4 ? rows_in((size_t)128 << 10, k, wdt) : n;
  const int par = gemv_parallel(n, k);
  const gemv_args all = {m, n, k, x, ldx, w, ldw, bias, beta, y, ldy};
  if (!par) {
    gemv_rows(&all, wdt, rb, 0, n);
    return;
  }
  if (m <= 4 && pf_kern_gemv_unit_bytes) {
    gemv_steal(&all, wdt);
    return;
  }
  if (pf_kern_gemv_chunk_bytes) {
    const int64_t cr = rows_in(pf_kern_gemv_chunk_bytes, k, wdt);
    const int64_t chunks = (n + cr - 1) / cr;
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t c = 0; c < chunks; c++)
      gemv_rows(&all, wdt, rb, c * cr, n - c * cr < cr ? n : c * cr + cr);
    return;
  }
#pragma omp parallel
  {
    /* The former split: contiguous blocks of whole 4-row groups per thread. */
    const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
    const int64_t groups = (n + 3) / 4;
    const int64_t r0 = groups * t / nt * 4, r1 = groups * (t + 1) / nt * 4;
    gemv_rows(&all, wdt, rb, r0 < n ? r0 : n, r1 < n ? r1 : n);
  }
}

/* ---- widening for the GEMM path ---- */

static void widen_row(float *dst, const uint16_t *src, pf_dtype dt, int64_t k) {
  int64_t i = 0;
#if PF_KERN_HAVE_AVX2
  if (pf_kern_isa_level >= PF_ISA_AVX2) {
    for (; i + 8 <= k; i += 8)
      _mm256_storeu_ps(dst + i, ld8_w(src, dt, i));
  }
#endif
  for (; i < k; i++)
    dst[i] = dt == PF_DTYPE_BF16 ? pf_bf16_to_f32(src[i]) : pf_f16_to_f32(src[i]);
}

void pf_kern_widen_rows(float *dst, const void *w, pf_dtype wdt, int64_t ldw, int64_t rows,
                        int64_t k) {
  const uint16_t *src = w;
  if (wdt == PF_DTYPE_F32) {
#pragma omp parallel for schedule(static) if (rows * k >= PF_KERN_PAR_MIN)
    for (int64_t r = 0; r < rows; r++)
      memcpy(dst + r * k, (const float *)w + r * ldw, (size_t)k * sizeof(float));
    return;
  }
#pragma omp parallel for schedule(static) if (rows * k >= PF_KERN_PAR_MIN)
  for (int64_t r = 0; r < rows; r++)
    widen_row(dst + r * k, src + r * ldw, wdt, k);
}
