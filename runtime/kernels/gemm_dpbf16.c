/* gemm_dpbf16.c — linear layers with BF16 weights on AVX512-BF16 (VDPBF16PS),
 * for CPUs that have it but no AMX (AMD Zen 4/5, Intel Cooper Lake).
 *
 * What it computes: the same as gemm_amx.c, Y[m, n] = bf16(X)[m, k] · W[n, k]^T
 * + beta*Y with float32 accumulation; X is rounded with the same instruction
 * (VCVTNE2PS2BF16: round to nearest even, float32 subnormals read as zero).
 *
 * VDPBF16PS adds, in each of 16 float32 lanes, the two products of a pair of
 * bf16 values. So both operands are packed in pairs along k:
 *   Xp[m block][kp][r]   = (x[r][2kp], x[r][2kp+1])   MR rows of one block side
 *                           by side, so one 32-bit broadcast feeds a row;
 *   Wp[panel][kp][c]     = (w[c][2kp], w[c][2kp+1])   NR output columns of one
 *                           panel, so one 64-byte load gives 16 columns.
 * A W row is already a run of pairs, so packing a panel is a 32-bit transpose
 * (16x16 blocks in registers, kern_transpose16.h). X is packed once per call
 * (it is small next to W and read by every panel); W is packed per thread, one
 * chunk of NC columns x KC of k at a time.
 *
 * Register block: MR = 6 rows x NR = 64 columns = 24 zmm accumulators, 4 W
 * vectors, the X pairs as embedded broadcasts; 24 VDPBF16PS per 4 loads + 6
 * broadcasts. Loops, outer to inner: N chunks of NC = 256 columns (OpenMP,
 * dynamic) -> K chunks of KS (pack W: NC x KS bf16, ~1 MiB, all of k up to
 * 2048) -> M sweeps of MC = 192 rows (the MC x NC block of Y stays in L2) -> K
 * slices of KC = 256 -> NR panels (the KC x NR micro-panel, 32 KiB, stays in L1)
 * -> MR blocks (the Xp slice streams from L2). Every K slice after the first
 * adds to Y. Packing all of k per W chunk (rather than one KC slice, the BLIS
 * way) lets the Y block stay in L2 across the K slices: with M = 1024 the BLIS
 * order reloaded Y from L3 for every slice and ran at ~60 % of this.
 *
 * Ragged edges: X rows past m and W columns past n are packed as zeros and not
 * stored; an odd k gets a zero partner in its last pair.
 *
 * W read in place (m <= pf_kern_dpbf16_direct_max_m, k even): with few rows,
 * packing W costs about as much as using it (each W element serves only m
 * products; pack_w was 20 % of bias_activations' time on the 1B shape). A W row
 * is already a run of bf16 pairs along k, so the roles swap: X is packed 16 rows
 * to a vector, Xq[g][kp][l] = (x[16g+l][2kp], x[16g+l][2kp+1]), and each W pair
 * is broadcast (32 bits) straight from the weights. Register block: DR = 3 X
 * vectors (48 rows) x DC = 8 columns = 24 accumulators, 3 loads + 8 broadcasts
 * per 24 VDPBF16PS. Each DC-column tile streams its W rows whole (k innermost,
 * for the prefetchers), and Y's block is held transposed (columns of Y, as the
 * accumulators are) across the k slices, transposed through pf_transpose16
 * only on the way in and out. The k slices are the same kc slices as above,
 * added to Y's block by the same operations, and each pair's two products are
 * exact in float32 whichever operand is broadcast, so both paths give the same
 * bits (check_kernels tests that). bench_gemm dpbf16-m: 1.04-1.67x the packed
 * path for m = 5 .. 128 on Zen 5, slower from ~192 rows on (bench/README.md).
 */
#include "kern_internal.h"

#include <omp.h>
#include <string.h>

#define MR 6
#define NR 64
#define NV (NR / 16)

int pf_kern_dpbf16 = 0;
int64_t pf_kern_dpbf16_kc = 256;
int64_t pf_kern_dpbf16_direct_max_m = 128;
int64_t pf_kern_dpbf16_mc = 192;
int64_t pf_kern_dpbf16_nc = 256;
size_t pf_kern_dpbf16_wbytes = (size_t)1 << 20;

/* The tunables, sanitised: kc a multiple of 32 (whole 16-pair groups, chunks
 * start at even k), nc a multiple of NR, mc at least MR. */
static int64_t eff_kc(void) {
  const int64_t kc = pf_kern_dpbf16_kc & ~(int64_t)31;
  return kc < 32 ? 32 : kc;
}
/* Output columns per W chunk (the nc tunable, a multiple of NR). */
static int64_t eff_nc(void) {
  const int64_t nc = (pf_kern_dpbf16_nc + NR - 1) / NR * NR;
  return nc < NR ? NR : nc;
}
/* k per packed W chunk: a multiple of kc, ~pf_kern_dpbf16_wbytes of bf16 with nc
 * columns, all of k when it is shorter. */
static int64_t eff_ks(int64_t k) {
  const int64_t kc = eff_kc();
  int64_t ks = (int64_t)pf_kern_dpbf16_wbytes / (eff_nc() * 2) / kc * kc;
  if (ks < kc) ks = kc;
  return ks < k ? ks : k;
}
static int64_t eff_mblocks(void) {
  const int64_t b = pf_kern_dpbf16_mc / MR;
  return b < 1 ? 1 : b;
}

#define DR 3            /* W in place: X vectors (16 rows each) per register block */
#define DC 8            /* W in place: output columns per register block */
#define DCHUNK (8 * DC) /* W in place: output columns per OpenMP task */

static int direct_path(int64_t m, int64_t k) {
  return m <= pf_kern_dpbf16_direct_max_m && k % 2 == 0;
}

size_t pf_kern_dpbf16_scratch_bytes(int64_t m, int64_t k, int threads) {
  if (direct_path(m, k)) return (size_t)((m + 15) / 16 * 16) * (size_t)(k / 2) * 4;
  const size_t xwords = (size_t)((m + MR - 1) / MR * MR) * (size_t)((k + 1) / 2);
  const size_t wwords = (size_t)eff_nc() * (size_t)((eff_ks(k) + 1) / 2);
  return ((xwords + 15) & ~(size_t)15) * 4 + (size_t)threads * wwords * 4;
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)

#include <cpuid.h>

int pf_kern_dpbf16_setup(void) {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bf16");
}

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")
#include <immintrin.h>

#include "kern_transpose16.h"

/* 16 bf16 pairs of one row, from float32 x[0 .. left) (left may be <= 0). */
static inline __m512i pairs_of_row(const float *x, int64_t left) {
  const __mmask16 lo = left >= 16 ? 0xffff : left <= 0 ? 0 : (__mmask16)((1u << left) - 1u);
  const __mmask16 hi = left >= 32 ? 0xffff : left <= 16 ? 0 : (__mmask16)((1u << (left - 16)) - 1u);
  const __m512 a = _mm512_maskz_loadu_ps(lo, x), b = _mm512_maskz_loadu_ps(hi, x + 16);
  return (__m512i)_mm512_cvtne2ps_pbh(b, a);
}

/* Rows [r0, r1) of Xp one word at a time (rows >= m are zero): the tail of pack_x. */
static void pack_x_rows(uint32_t *xp, const float *x, int64_t ldx, int64_t m, int64_t k, int64_t r0,
                        int64_t r1) {
  const int64_t kp2 = (k + 1) / 2;
  for (int64_t row = r0; row < r1; row++) {
    uint32_t *dst = xp + row / MR * MR * kp2 + row % MR;
    for (int64_t kw = 0; kw < kp2; kw += 16) {
      uint32_t t[16] __attribute__((aligned(64)));
      _mm512_store_si512((void *)t, row < m ? pairs_of_row(x + row * ldx + 2 * kw, k - 2 * kw)
                                            : _mm512_setzero_si512());
      const int64_t cnt = kp2 - kw < 16 ? kp2 - kw : 16;
      for (int64_t i = 0; i < cnt; i++)
        dst[(kw + i) * MR] = t[i];
    }
  }
}

/* Xp[b][kp][r] for all m blocks (see the top of the file); rows >= m are zero.
 * 16 rows x 16 pairs at a time: convert, transpose, and store each pair column
 * with masked stores, one per m block its 16 rows touch (lane l of the group
 * starting at row R0 is row R0 + l - MR*B of block B). */
static void pack_x(uint32_t *xp, const float *x, int64_t ldx, int64_t m, int64_t k) {
  const int64_t kp2 = (k + 1) / 2, mpad = (m + MR - 1) / MR * MR, groups = mpad / 16;
#pragma omp parallel for schedule(static)
  for (int64_t g = 0; g <= groups; g++) {
    const int64_t r0 = g * 16;
    if (g == groups) {
      pack_x_rows(xp, x, ldx, m, k, r0, mpad);
      continue;
    }
    for (int64_t kw = 0; kw < kp2; kw += 16) {
      __m512 rows[16], cols[16];
      for (int i = 0; i < 16; i++)
        rows[i] = r0 + i < m ? (__m512)pairs_of_row(x + (r0 + i) * ldx + 2 * kw, k - 2 * kw)
                             : _mm512_setzero_ps();
      pf_transpose16(rows, cols);
      const int64_t cnt = kp2 - kw < 16 ? kp2 - kw : 16;
      for (int64_t blk = r0 / MR; blk * MR < r0 + 16; blk++) {
        const int64_t l0 = blk * MR > r0 ? blk * MR - r0 : 0;
        const int64_t l1 = blk * MR + MR < r0 + 16 ? blk * MR + MR - r0 : 16;
        const __mmask16 mask = (__mmask16)(((1u << l1) - 1u) & ~((1u << l0) - 1u));
        /* lane l goes to word (r0 + l - MR*blk) of the block's row: base may point
         * before the block, but only lanes >= l0 are stored */
        const uintptr_t base =
            (uintptr_t)(xp + blk * MR * kp2) + (uintptr_t)(4 * (r0 - blk * MR + kw * MR));
        for (int64_t t = 0; t < cnt; t++)
          _mm512_mask_storeu_epi32((void *)(base + (uintptr_t)(4 * t * MR)), mask,
                                   (__m512i)cols[t]);
      }
    }
  }
}

/* One chunk of W: columns [0, ncols) of w (row stride ldw), k range [k0, k1),
 * into npanels panels of kpn pairs: wp[j][kp][c] (see the top of the file). */
static void pack_w(uint32_t *wp, const uint16_t *w, int64_t ldw, int64_t ncols, int64_t k0,
                   int64_t k1, int64_t kpn) {
  const int64_t groups = (ncols + 15) / 16;
  for (int64_t g = 0; g < groups; g++) {
    uint32_t *dst = wp + (g / NV) * kpn * NR + (g % NV) * 16;
    for (int64_t kw = 0; kw < kpn; kw += 16) {
      const int64_t e0 = k0 + 2 * kw, left = k1 - e0;
      const __mmask32 mask = left >= 32 ? 0xffffffffu : (1u << left) - 1u; /* left >= 1 */
      __m512 rows[16];
      for (int i = 0; i < 16; i++) {
        const int64_t c = g * 16 + i;
        rows[i] = c < ncols ? (__m512)_mm512_maskz_loadu_epi16(mask, w + c * ldw + e0)
                            : _mm512_setzero_ps();
      }
      __m512 cols[16];
      pf_transpose16(rows, cols);
      const int64_t cnt = kpn - kw < 16 ? kpn - kw : 16;
      for (int64_t t = 0; t < cnt; t++)
        _mm512_store_ps((float *)(dst + (kw + t) * NR), cols[t]);
    }
  }
  /* a last panel with fewer than NV groups: zero the missing columns */
  const int64_t npanels = (ncols + NR - 1) / NR;
  for (int64_t g = groups; g < npanels * NV; g++) {
    uint32_t *dst = wp + (g / NV) * kpn * NR + (g % NV) * 16;
    for (int64_t kp = 0; kp < kpn; kp++)
      _mm512_store_si512((void *)(dst + kp * NR), _mm512_setzero_si512());
  }
}

/* The MR x NR register block: y[0 .. rows)[0 .. cols) = acc (load 0) or
 * acc + beta * y (load 1), acc = sum over kpn pairs of Xp block x Wp panel. */
static inline void tile(int64_t kpn, const uint32_t *restrict xp, const uint32_t *restrict wp,
                        float *y, int64_t ldy, int rows, int cols, float beta, int load) {
  __m512 c[MR][NV];
#pragma GCC unroll 8
  for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++)
      c[r][v] = _mm512_setzero_ps();
  for (int64_t p = 0; p < kpn; p++) {
    __m512bh b[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++)
      b[v] = (__m512bh)_mm512_load_si512((const void *)(wp + p * NR + 16 * v));
#pragma GCC unroll 8
    for (int r = 0; r < MR; r++) {
      const __m512bh a = (__m512bh)_mm512_set1_epi32((int)xp[p * MR + r]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; v++)
        c[r][v] = _mm512_dpbf16_ps(c[r][v], a, b[v]);
    }
  }
  const __m512 vb = _mm512_set1_ps(beta);
#pragma GCC unroll 8
  for (int r = 0; r < MR; r++) {
    if (r >= rows) break;
    float *yr = y + r * ldy;
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) {
      const int left = cols - 16 * v;
      if (left <= 0) break;
      const __mmask16 mask = left >= 16 ? 0xffff : (__mmask16)((1u << left) - 1u);
      __m512 val = c[r][v];
      if (load) val = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(mask, yr + 16 * v), val);
      _mm512_mask_storeu_ps(yr + 16 * v, mask, val);
    }
  }
}

/* ---- W read in place ---- */

/* Xq[g][kp][l] (see the top of the file) for k even; rows >= m are zero. */
static void pack_xq(uint32_t *xq, const float *x, int64_t ldx, int64_t m, int64_t k) {
  const int64_t kp2 = k / 2, groups = (m + 15) / 16;
#pragma omp parallel for schedule(static)
  for (int64_t g = 0; g < groups; g++)
    for (int64_t kw = 0; kw < kp2; kw += 16) {
      __m512 rows[16], cols[16];
      for (int i = 0; i < 16; i++)
        rows[i] = g * 16 + i < m ? (__m512)pairs_of_row(x + (g * 16 + i) * ldx + 2 * kw, k - 2 * kw)
                                 : _mm512_setzero_ps();
      pf_transpose16(rows, cols);
      const int64_t cnt = kp2 - kw < 16 ? kp2 - kw : 16;
      for (int64_t t = 0; t < cnt; t++)
        _mm512_store_ps((float *)(xq + (g * kp2 + kw + t) * 16), cols[t]);
    }
}

/* One k slice of the (16 nv) x DC register block, added to yt (Y's block,
 * transposed: yt[v][j] = rows 16v .. 16v + 15 of column j): acc = sum over kpn
 * pairs of the nv Xq vectors (xq, the next group at xq + gstride) times the
 * pairs of W rows w, w + ldw, ... (k offset applied; columns past cols repeat
 * the last one). yt = acc + bk * yt when `load`, else acc: the packed path's
 * per-slice update of Y, operation for operation. */
static inline void dtile(const int nv, int64_t kpn, const uint32_t *restrict xq, int64_t gstride,
                         const uint16_t *restrict w, int64_t ldw, int cols, __m512 yt[DR][DC],
                         float bk, int load) {
  __m512 c[DR][DC];
  const uint16_t *wr[DC];
#pragma GCC unroll 8
  for (int j = 0; j < DC; j++) {
    wr[j] = w + (j < cols ? j : cols - 1) * ldw;
#pragma GCC unroll 3
    for (int v = 0; v < DR; v++)
      c[v][j] = _mm512_setzero_ps();
  }
  for (int64_t p = 0; p < kpn; p++) {
    __m512bh a[DR];
#pragma GCC unroll 3
    for (int v = 0; v < DR; v++)
      if (v < nv) a[v] = (__m512bh)_mm512_load_si512((const void *)(xq + v * gstride + p * 16));
#pragma GCC unroll 8
    for (int j = 0; j < DC; j++) {
      float pair; /* the two bf16 of the pair, as 32 bits (rows need not be 4-byte aligned) */
      __builtin_memcpy(&pair, wr[j] + 2 * p, sizeof pair);
      const __m512bh b = (__m512bh)_mm512_set1_ps(pair);
#pragma GCC unroll 3
      for (int v = 0; v < DR; v++)
        if (v < nv) c[v][j] = _mm512_dpbf16_ps(c[v][j], a[v], b);
    }
  }
  const __m512 vb = _mm512_set1_ps(bk);
#pragma GCC unroll 3
  for (int v = 0; v < DR; v++)
#pragma GCC unroll 8
    for (int j = 0; j < DC; j++)
      if (v < nv) yt[v][j] = load ? _mm512_fmadd_ps(vb, yt[v][j], c[v][j]) : c[v][j];
}

/* Rows [16v, 16v + 16) ∩ [0, rows) and columns [0, cols) of y to or from yt
 * (transposed through pf_transpose16). */
static void yt_in(__m512 yt[DR][DC], int nv, const float *y, int64_t ldy, int rows, int cols) {
  const __mmask16 cm = (__mmask16)((1u << cols) - 1u);
  for (int v = 0; v < nv; v++) {
    __m512 in[16], out[16];
    for (int l = 0; l < 16; l++)
      in[l] = 16 * v + l < rows ? _mm512_maskz_loadu_ps(cm, y + (16 * v + l) * ldy)
                                : _mm512_setzero_ps();
    pf_transpose16(in, out);
    for (int j = 0; j < DC; j++)
      yt[v][j] = out[j];
  }
}
static void yt_out(__m512 yt[DR][DC], int nv, float *y, int64_t ldy, int rows, int cols) {
  const __mmask16 cm = (__mmask16)((1u << cols) - 1u);
  for (int v = 0; v < nv; v++) {
    __m512 in[16], out[16];
    for (int j = 0; j < 16; j++)
      in[j] = j < DC ? yt[v][j] : _mm512_setzero_ps();
    pf_transpose16(in, out);
    for (int l = 0; l < 16 && 16 * v + l < rows; l++)
      _mm512_mask_storeu_ps(y + (16 * v + l) * ldy, cm, out[l]);
  }
}

/* Loops: column chunks of DCHUNK (OpenMP, dynamic) -> DC columns (their W rows
 * stream through once per row block, from L1/L2 after the first) -> 32-row
 * blocks -> the kc slices of k, Y's block held transposed in yt meanwhile. */
static void gemm_direct(int64_t m, int64_t n, int64_t k, const float *x, int64_t ldx,
                        const uint16_t *w, int64_t ldw, float beta, float *y, int64_t ldy,
                        uint32_t *xq) {
  const int64_t kp2 = k / 2, groups = (m + 15) / 16, kc = eff_kc();
  pack_xq(xq, x, ldx, m, k);
  const int64_t nchunks = (n + DCHUNK - 1) / DCHUNK;
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t jc = 0; jc < nchunks; jc++) {
    const int64_t n0 = jc * DCHUNK, n1 = n - n0 < DCHUNK ? n : n0 + DCHUNK;
    __m512 yt[DR][DC];
    for (int64_t j0 = n0; j0 < n1; j0 += DC) {
      const int cols = (int)(n1 - j0 < DC ? n1 - j0 : DC);
      for (int64_t g = 0; g < groups; g += DR) {
        const int nv = groups - g < DR ? (int)(groups - g) : DR;
        const int rows = (int)(m - 16 * g < 16 * DR ? m - 16 * g : 16 * DR);
        float *yb = y + 16 * g * ldy + j0;
        if (beta != 0.0f) yt_in(yt, nv, yb, ldy, rows, cols);
        for (int64_t k0 = 0; k0 < k; k0 += kc) {
          const int64_t kpn = (k - k0 < kc ? k - k0 : kc) / 2;
          const uint32_t *xg = xq + (g * kp2 + k0 / 2) * 16;
          const int load = k0 > 0 || beta != 0.0f;
          const float bk = k0 > 0 ? 1.0f : beta;
          const uint16_t *wk = w + j0 * ldw + k0;
          if (nv == 3)
            dtile(3, kpn, xg, kp2 * 16, wk, ldw, cols, yt, bk, load);
          else if (nv == 2)
            dtile(2, kpn, xg, kp2 * 16, wk, ldw, cols, yt, bk, load);
          else
            dtile(1, kpn, xg, kp2 * 16, wk, ldw, cols, yt, bk, load);
        }
        yt_out(yt, nv, yb, ldy, rows, cols);
      }
    }
  }
}

/* Columns per OpenMP chunk: the nc tunable, but small enough that every thread
 * gets a chunk when n allows. */
static int64_t chunk_cols(int64_t n, int threads) {
  int64_t per = (n + threads - 1) / threads;
  per = (per + NR - 1) / NR * NR;
  const int64_t nc = eff_nc();
  return per < nc ? per : nc;
}

void pf_kern_gemm_dpbf16(int64_t m, int64_t n, int64_t k, const float *x, int64_t ldx,
                         const uint16_t *w, int64_t ldw, float beta, float *y, int64_t ldy,
                         void *scratch) {
  if (direct_path(m, k)) {
    gemm_direct(m, n, k, x, ldx, w, ldw, beta, y, ldy, scratch);
    return;
  }
  const int64_t kp2 = (k + 1) / 2, mblocks = (m + MR - 1) / MR;
  uint32_t *xp = scratch;
  uint32_t *wbuf = xp + (((size_t)(mblocks * MR * kp2) + 15) & ~(size_t)15);
  pack_x(xp, x, ldx, m, k);
  const int threads = omp_get_max_threads();
  const int64_t kc = eff_kc(), ks = eff_ks(k), mcb = eff_mblocks(), nc = chunk_cols(n, threads);
  const int64_t nchunks = (n + nc - 1) / nc;
#pragma omp parallel
  {
    uint32_t *wp = wbuf + (size_t)omp_get_thread_num() * (size_t)(eff_nc() * ((ks + 1) / 2));
#pragma omp for schedule(dynamic, 1)
    for (int64_t jc = 0; jc < nchunks; jc++) {
      const int64_t n0 = jc * nc, ncols = n - n0 < nc ? n - n0 : nc;
      const int64_t npanels = (ncols + NR - 1) / NR;
      for (int64_t s0 = 0; s0 < k; s0 += ks) { /* one packed W chunk: k in [s0, s1) */
        const int64_t s1 = k - s0 < ks ? k : s0 + ks, kps = (s1 - s0 + 1) / 2;
        pack_w(wp, w + n0 * ldw, ldw, ncols, s0, s1, kps);
        for (int64_t b0 = 0; b0 < mblocks; b0 += mcb) { /* MC rows: Y block stays in L2 */
          const int64_t b1 = b0 + mcb < mblocks ? b0 + mcb : mblocks;
          for (int64_t k0 = s0; k0 < s1; k0 += kc) {
            const int64_t k1 = s1 - k0 < kc ? s1 : k0 + kc, kpn = (k1 - k0 + 1) / 2;
            const int load = k0 > 0 || beta != 0.0f;
            const float bk = k0 > 0 ? 1.0f : beta;
            for (int64_t j = 0; j < npanels; j++) {
              const int cols = (int)(ncols - j * NR < NR ? ncols - j * NR : NR);
              const uint32_t *wj = wp + j * kps * NR + (k0 - s0) / 2 * NR;
              for (int64_t b = b0; b < b1; b++) {
                const int rows = (int)(m - b * MR < MR ? m - b * MR : MR);
                tile(kpn, xp + b * MR * kp2 + k0 / 2 * MR, wj, y + b * MR * ldy + n0 + j * NR, ldy,
                     rows, cols, bk, load);
              }
            }
          }
        }
      }
    }
  }
}

#pragma GCC pop_options

#else /* no GCC x86-64 build: the path is never available */

int pf_kern_dpbf16_setup(void) {
  return 0;
}

void pf_kern_gemm_dpbf16(int64_t m, int64_t n, int64_t k, const float *x, int64_t ldx,
                         const uint16_t *w, int64_t ldw, float beta, float *y, int64_t ldy,
                         void *scratch) {
  (void)m, (void)n, (void)k, (void)x, (void)ldx, (void)w, (void)ldw, (void)beta, (void)y, (void)ldy,
      (void)scratch;
}

#endif
