/* gemm_amx.c — linear layers with BF16 weights on Intel AMX (TDPBF16PS).
 *
 * What it computes: Y[m, n] = bf16(X)[m, k] · W[n, k]^T + beta*Y with float32
 * accumulation, i.e. the activations are rounded to BF16 (round to nearest even)
 * before the products, as PyTorch does for a BF16 model. The weights are used as
 * stored. This is the prefill / calibration path for BF16 checkpoints when the
 * matmul precision is "bf16" (kernels.h); "f32" keeps the widening path.
 *
 * Layout trick: AMX multiplies A[16 rows, 32 bf16] by B[16 pairs, 16 columns x 2]
 * where B is in "VNNI" form (pairs of consecutive k next to each other). A weight
 * matrix W[n, k] row-major is already in A form, so we compute the transpose,
 * Y^T[n, m] = W · X^T: W tiles are loaded straight from the (mmap'd) checkpoint,
 * and only X — small next to W — is packed, once per call, into VNNI tiles:
 * Xp[m block][k chunk] = 16 rows (k pairs) x 16 m x 2 bf16 = 1 KiB. The float32
 * result tiles Ct[16 n, 16 m] are transposed while they are written to Y.
 *
 * Blocking: each thread takes blocks of 32 rows of W (two A tiles, 32 x k bf16 =
 * 128-512 KiB, stays in L2) and sweeps all of X in pairs of m blocks, so the
 * register block is 2 x 2 result tiles (tmm0-3), two A tiles (tmm4-5) and two B
 * tiles (tmm6-7): 4 TDPBF16PS per 4 tile loads. Ragged edges (n not a multiple
 * of 32, k not a multiple of 32) copy that block of W into a zero-padded
 * per-thread buffer; X is zero-padded when packed, so padding adds zeros.
 *
 * Linux hands out AMX state only on request (arch_prctl ARCH_REQ_XCOMP_PERM,
 * XTILEDATA), so pf_kern_amx_setup asks once at init; if the CPU lacks AMX-BF16
 * or the kernel refuses, the path is simply unavailable.
 */
#include "kern_internal.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define PF_AMX_BUILD 1
#else
#define PF_AMX_BUILD 0
#endif

#if PF_AMX_BUILD
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

int pf_kern_amx = 0;

/* 32-row blocks of W packed together (one group, <= 512 KiB, shares L2 with a
 * sweep of packed X); each group is packed once per call. */
static int64_t amx_group(int64_t kpad) {
  const int64_t g = ((int64_t)512 << 10) / (32 * kpad * 2);
  return g < 1 ? 1 : g > 16 ? 16 : g;
}
size_t pf_kern_amx_l2_bytes = (size_t)256 << 10;

#if PF_AMX_BUILD

#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18

int pf_kern_amx_setup(void) {
  unsigned a, b, c, d;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
  const int amx_bf16 = (d >> 22) & 1, amx_tile = (d >> 24) & 1;
  if (!amx_bf16 || !amx_tile) return 0;
  /* the X packing uses AVX512-BF16 (VCVTNE2PS2BF16) and AVX-512 F/BW/DQ/VL */
  const int avx512 = ((b >> 16) & 1) && ((b >> 17) & 1) && ((b >> 30) & 1) && ((b >> 31) & 1);
  if (!avx512 || !__get_cpuid_count(7, 1, &a, &b, &c, &d) || !((a >> 5) & 1)) return 0;
  /* OS support for the tile state in XCR0 (bits 17, 18) */
  if (!__get_cpuid(1, &a, &b, &c, &d) || !((c >> 27) & 1)) return 0; /* OSXSAVE */
  unsigned lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  if (((lo >> 17) & 3) != 3 || (lo & 0xe6) != 0xe6) return 0; /* tiles; AVX-512 + AVX state */
  if (syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) != 0) return 0;
  return 1;
}

#pragma GCC push_options
#pragma GCC target("amx-tile,amx-bf16,avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")
#include <immintrin.h>

typedef struct tilecfg {
  uint8_t palette;
  uint8_t start_row;
  uint8_t reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
} tilecfg;

void pf_kern_amx_tiles_configure(void) {
  tilecfg cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.palette = 1;
  for (int t = 0; t < 8; t++) {
    cfg.rows[t] = 16;
    cfg.colsb[t] = 64;
  }
  /* GCC 12 does not model LDTILECFG as reading its operand and may drop the stores
   * above as dead: make them visible first. */
  __asm__ volatile("" : : "r"(&cfg) : "memory");
  _tile_loadconfig(&cfg);
}

#include "kern_transpose16.h"

/* Transpose a 16x16 float block (rows of 16) in registers: out[c] = column c. */
static inline void transpose16(const float *src, __m512 out[16]) {
  __m512 r[16];
  for (int i = 0; i < 16; i++)
    r[i] = _mm512_load_ps(src + 16 * i);
  pf_transpose16(r, out);
}

/* Pack X[m, k] (float32, row stride ldx) into VNNI tiles: tile (mb, kc) holds
 * rows kp = 0..15 of 16 uint32 = (bf16 x[mb*16+i][kc*32+2kp], ...[+1]). Each
 * row's 32 floats become 16 bf16 pairs in one register (VCVTNE2PS2BF16: round to
 * nearest even; it treats float32 subnormals as zero), and a 16x16 transpose
 * turns the 16 rows into the tile. Rows >= m and columns >= k are zero. */
static void pack_x(uint32_t *xp, const float *x, int64_t ldx, int64_t m, int64_t k, int64_t mblocks,
                   int64_t kchunks) {
#pragma omp parallel for schedule(static)
  for (int64_t mb = 0; mb < mblocks; mb++) {
    float rows[256] __attribute__((aligned(64)));
    for (int64_t kc = 0; kc < kchunks; kc++) {
      const int64_t c0 = kc * 32, left = k - c0;
      const __mmask16 lo = left >= 16 ? 0xffff : (__mmask16)((1u << left) - 1u);
      const __mmask16 hi = left >= 32   ? 0xffff
                           : left <= 16 ? 0
                                        : (__mmask16)((1u << (left - 16)) - 1u);
      for (int i = 0; i < 16; i++) {
        const int64_t row = mb * 16 + i;
        __m512i v = _mm512_setzero_si512();
        if (row < m) {
          const float *xr = x + row * ldx + c0;
          const __m512 a = _mm512_maskz_loadu_ps(lo, xr), b = _mm512_maskz_loadu_ps(hi, xr + 16);
          v = (__m512i)_mm512_cvtne2ps_pbh(b, a);
        }
        _mm512_store_si512((void *)(rows + 16 * i), v);
      }
      __m512 col[16];
      transpose16(rows, col);
      uint32_t *t = xp + (mb * kchunks + kc) * 256;
      for (int kp = 0; kp < 16; kp++)
        _mm512_store_ps((float *)(t + 16 * kp), col[kp]);
    }
  }
}

/* Write the 16x16 float tile ct[n][m] (n rows n0.., m columns m0..) into Y. */
static void store_tile(const float *ct, float *y, int64_t ldy, int64_t m0, int64_t n0, int64_t m,
                       int64_t n, float beta) {
  const int64_t mi_end = m - m0 < 16 ? m - m0 : 16, ni_end = n - n0 < 16 ? n - n0 : 16;
  if (mi_end <= 0 || ni_end <= 0) return;
  __m512 col[16];
  transpose16(ct, col);
  const __mmask16 mask = (__mmask16)((1u << ni_end) - 1u);
  const __m512 vb = _mm512_set1_ps(beta);
  for (int64_t mi = 0; mi < mi_end; mi++) {
    float *yr = y + (m0 + mi) * ldy + n0;
    __m512 v = col[mi];
    if (beta != 0.0f) v = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(mask, yr), v);
    _mm512_mask_storeu_ps(yr, mask, v);
  }
}

/* Copy a block of up to 32 rows of W (row stride ldw) into tile order:
 * wp[kc][t][r][0..32) = W[16t + r][32kc ..] (1 KiB per tile, rows 64 bytes apart),
 * zero past `rows` and past k. Loading tiles from W in place would read 16 rows
 * 2*ldw bytes apart — 4 KiB for k = 2048, so every row of a tile falls in the
 * same L1 set and the tiles evict each other. */
static void pack_w(uint16_t *wp, const uint16_t *w, int64_t ldw, int64_t rows, int64_t k,
                   int64_t kchunks) {
  for (int64_t r = 0; r < 32; r++) {
    const uint16_t *src = w + r * ldw;
    uint16_t *dst = wp + (r / 16) * 512 + (r % 16) * 32;
    int64_t kc = 0;
    if (r < rows)
      for (; kc < k / 32; kc++)
        _mm512_store_si512((void *)(dst + kc * 1024), _mm512_loadu_si512(src + kc * 32));
    for (; kc < kchunks; kc++) {
      const int64_t left = r < rows ? k - kc * 32 : 0;
      const __mmask32 mask = left >= 32 ? 0xffffffffu : left <= 0 ? 0 : (1u << left) - 1u;
      _mm512_store_si512((void *)(dst + kc * 1024), _mm512_maskz_loadu_epi16(mask, src + kc * 32));
    }
  }
}

/* One packed 32-row block of W (pack_w) times the m blocks [mb0, mb1) of Xp. */
static void block_rows(const uint16_t *wp, const uint32_t *xp, int64_t mb0, int64_t mb1,
                       int64_t kchunks, float *y, int64_t ldy, int64_t m, int64_t n, int64_t n0,
                       float beta, float *ct) {
  for (int64_t mb = mb0; mb < mb1; mb += 2) {
    const uint32_t *b0 = xp + mb * kchunks * 256, *b1 = b0 + kchunks * 256;
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    for (int64_t kc = 0; kc < kchunks; kc++) {
      _tile_loadd(4, wp + kc * 1024, 64);
      _tile_loadd(5, wp + kc * 1024 + 512, 64);
      _tile_loadd(6, b0 + kc * 256, 64);
      _tile_loadd(7, b1 + kc * 256, 64);
      _tile_dpbf16ps(0, 4, 6);
      _tile_dpbf16ps(1, 4, 7);
      _tile_dpbf16ps(2, 5, 6);
      _tile_dpbf16ps(3, 5, 7);
    }
    _tile_stored(0, ct, 64);
    _tile_stored(1, ct + 256, 64);
    _tile_stored(2, ct + 512, 64);
    _tile_stored(3, ct + 768, 64);
    const int64_t m0 = mb * 16;
    store_tile(ct, y, ldy, m0, n0, m, n, beta);
    store_tile(ct + 256, y, ldy, m0 + 16, n0, m, n, beta);
    store_tile(ct + 512, y, ldy, m0, n0 + 16, m, n, beta);
    store_tile(ct + 768, y, ldy, m0 + 16, n0 + 16, m, n, beta);
  }
}

void pf_kern_gemm_amx(int64_t m, int64_t n, int64_t k, const float *x, int64_t ldx,
                      const uint16_t *w, int64_t ldw, float beta, float *y, int64_t ldy,
                      void *scratch) {
  const int64_t mblocks = ((m + 31) / 32) * 2, kchunks = (k + 31) / 32, kpad = kchunks * 32;
  uint32_t *xp = scratch;
  uint16_t *pads = (uint16_t *)(xp + mblocks * kchunks * 256);
  pack_x(xp, x, ldx, m, k, mblocks, kchunks);
  const int64_t nblocks = (n + 31) / 32, group = amx_group(kpad);
  const int64_t ngroups = (nblocks + group - 1) / group;
  /* m blocks per sweep: the packed X of one sweep (chunk x 16 x kpad bf16) stays
   * in L2 (~1 MiB) next to the packed W group. Even, so pairs stay whole. */
  int64_t chunk = (int64_t)pf_kern_amx_l2_bytes / (32 * kpad) & ~(int64_t)1;
  if (chunk < 2) chunk = 2;
#pragma omp parallel
  {
    const int tid = omp_get_thread_num();
    float ct[4 * 256] __attribute__((aligned(64)));
    uint16_t *pad = pads + (size_t)tid * (size_t)group * 32 * (size_t)kpad;
    pf_kern_amx_tiles_configure();
#pragma omp for schedule(static)
    for (int64_t g = 0; g < ngroups; g++) {
      const int64_t nb0 = g * group, nb1 = nb0 + group < nblocks ? nb0 + group : nblocks;
      for (int64_t nb = nb0; nb < nb1; nb++) {
        const int64_t n0 = nb * 32, rows = n - n0 < 32 ? n - n0 : 32;
        pack_w(pad + (nb - nb0) * 32 * kpad, w + n0 * ldw, ldw, rows, k, kchunks);
      }
      for (int64_t mb0 = 0; mb0 < mblocks; mb0 += chunk) {
        const int64_t mb1 = mb0 + chunk < mblocks ? mb0 + chunk : mblocks;
        for (int64_t nb = nb0; nb < nb1; nb++)
          block_rows(pad + (nb - nb0) * 32 * kpad, xp, mb0, mb1, kchunks, y, ldy, m, n, nb * 32,
                     beta, ct);
      }
    }
    _tile_release();
  }
}

#pragma GCC pop_options

#else /* !PF_AMX_BUILD */

int pf_kern_amx_setup(void) {
  return 0;
}

void pf_kern_amx_tiles_configure(void) {}

void pf_kern_gemm_amx(int64_t m, int64_t n, int64_t k, const float *x, int64_t ldx,
                      const uint16_t *w, int64_t ldw, float beta, float *y, int64_t ldy,
                      void *scratch) {
  (void)m, (void)n, (void)k, (void)x, (void)ldx, (void)w, (void)ldw, (void)beta, (void)y, (void)ldy,
      (void)scratch;
}

#endif

size_t pf_kern_amx_scratch_bytes(int64_t m, int64_t k, int threads) {
  const size_t mblocks = (size_t)((m + 31) / 32) * 2, kchunks = (size_t)((k + 31) / 32);
  return mblocks * kchunks * 1024 +
         (size_t)threads * (size_t)amx_group((int64_t)kchunks * 32) * 32 * kchunks * 32 * 2;
}
