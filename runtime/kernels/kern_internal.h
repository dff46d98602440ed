/* kern_internal.h — shared between the kernels' .c files; not a public header. */
#ifndef PF_KERN_INTERNAL_H
#define PF_KERN_INTERNAL_H

#include "kernels.h"

/* The ISA every machine running this build has (-march=x86-64-v3 => AVX2+FMA+F16C). */
#if defined(__x86_64__) && defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#define PF_KERN_HAVE_AVX2 1
#define PF_KERN_ISA_BASE PF_ISA_AVX2
#else
#define PF_KERN_HAVE_AVX2 0
#define PF_KERN_ISA_BASE PF_ISA_SCALAR
#endif

/* Code between PF_KERN_AVX512_BEGIN and PF_KERN_AVX512_END is compiled for AVX-512
 * F/BW/VL/DQ (and called only when pf_kern_isa_level says so). GCC takes a target
 * pragma; clang ignores that pragma (its fuzzing builds then failed: AVX-512
 * intrinsics in a function without the feature), so it gets the attribute. */
#if defined(__clang__)
#define PF_KERN_AVX512_BEGIN                                                                       \
  _Pragma(                                                                                         \
      "clang attribute push (__attribute__((target(\"avx512f,avx512bw,avx512vl,avx512dq\"))), \
apply_to = function)")
#define PF_KERN_AVX512_END _Pragma("clang attribute pop")
#else
#define PF_KERN_AVX512_BEGIN                                                                       \
  _Pragma("GCC push_options") _Pragma("GCC target(\"avx512f,avx512bw,avx512vl,avx512dq\")")
#define PF_KERN_AVX512_END _Pragma("GCC pop_options")
#endif

/* Effective ISA for the hand-written kernels: starts at the build baseline so the
 * row kernels need no init; init raises it to AVX-512 when the CPU has it;
 * pf_kernels_set_isa lowers it. */
extern pf_isa pf_kern_isa_level;

/* GEMV: y[m, n] = x[m, k] · W[n, k]^T + bias + beta*y, any m >= 1 (efficient for
 * small m). Arguments already validated. Uses OpenMP over output rows. */
void pf_kern_gemv(int64_t m, int64_t n, int64_t k, const float *x, int64_t ldx, const void *w,
                  pf_dtype wdt, int64_t ldw, const float *bias, float beta, float *y, int64_t ldy);

/* Several GEMVs (pf_kern_gemv's arguments each), e.g. the q/k/v or gate/up
 * projections of one x. At m <= 4 with every product large enough for threads,
 * one parallel region runs them all with the stealing schedule, a thread going
 * on to the next product without waiting for the others (no barrier between
 * them); otherwise one pf_kern_gemv after the other. Every output row is the
 * same bits either way. np <= PF_KERN_GEMV_MAX_PARTS. */
#define PF_KERN_GEMV_MAX_PARTS 4
typedef struct pf_kern_gemv_part {
  int64_t m, n, k;
  const float *x;
  int64_t ldx;
  const void *w;
  pf_dtype wdt;
  int64_t ldw;
  const float *bias;
  float beta;
  float *y;
  int64_t ldy;
} pf_kern_gemv_part;
void pf_kern_gemv_many(int np, const pf_kern_gemv_part *p);
/* 0: pf_kern_gemv_many runs its products one after the other (benchmarks). */
extern int pf_kern_gemv_many_enabled;

/* Widen rows [0, rows) of a half-precision matrix (row stride ldw) into dst
 * [rows, k] (dense). OpenMP over rows. */
void pf_kern_widen_rows(float *dst, const void *w, pf_dtype wdt, int64_t ldw, int64_t rows,
                        int64_t k);

/* Largest m sent to the GEMV path (default PF_GEMV_MAX_M; bench_gemm sweeps it). */
extern int64_t pf_kern_gemv_max_m;
/* GEMV at m <= 4: each thread reads its own share of W's rows in units of about
 * this many bytes and then takes units from the back of the others' (default
 * 256 KiB); 0: the chunks of pf_kern_gemv_chunk_bytes instead. */
extern size_t pf_kern_gemv_unit_bytes;
/* Shares of W's rows in that schedule: 0 (default) one per thread; more: the
 * shares past the threads are emptied by stealing alone (for tests). */
extern int pf_kern_gemv_shares;
/* GEMV at m > 4 (or with pf_kern_gemv_unit_bytes = 0): threads take chunks of
 * about this many bytes of W's rows in turn (default 1 MiB); 0: each thread one
 * contiguous share (the former split). bench_gemv compares them. */
extern size_t pf_kern_gemv_chunk_bytes;
/* GEMV software prefetch distance in bytes of W, per kernel (defaults 1 KiB for
 * AVX2, 2 KiB for AVX-512; 0: none; bench_gemv compares). */
extern size_t pf_kern_gemv_prefetch_avx2;
extern size_t pf_kern_gemv_prefetch_avx512;
/* GEMV: W streams read side by side per thread (1: one; more: each kernel's
 * own count; gemv.c). */
extern int pf_kern_gemv_streams;
/* BF16 weights with more rows than this go to AMX when it is active (default
 * PF_AMX_MIN_M; checked before the GEMV threshold). */
extern int64_t pf_kern_amx_min_m;

/* 0 (default): BLIS products always take BLIS's packed path; 1: BLIS's own
 * choice, its unpacked "sup" code for small dimensions (slower for X·W^T: see
 * blis_xwt in gemm.c; bench_gemm "sup" compares them). */
extern int pf_kern_blis_sup;

/* Target size of one widened weight panel in the GEMM path (default 8 MiB);
 * a variable so bench_gemm can sweep it. */
extern size_t pf_kern_panel_bytes;

/* ---- AMX (gemm_amx.c) ---- */

/* 1 when init found AMX-BF16 and Linux granted the tile state (pf_kern_amx_setup). */
extern int pf_kern_amx;
/* Bytes of packed X kept in L2 per sweep over W (default 1 MiB; bench_gemm sweeps it). */
extern size_t pf_kern_amx_l2_bytes;
/* Probe cpuid/XCR0 and request XTILEDATA permission; returns 1 if AMX can be used. */
int pf_kern_amx_setup(void);
/* Whether BF16 linear layers with m > gemv_max_m go to pf_kern_gemm_amx: AMX
 * available and matmul precision bf16. */
int pf_kern_amx_active(void);
/* Load the tile configuration pf_kern_gemm_amx uses into the calling thread: tiles
 * 0-7 all 16 rows x 64 bytes. Only where pf_kern_amx is 1; pair with _tile_release. */
void pf_kern_amx_tiles_configure(void);
/* Bytes of scratch pf_kern_gemm_amx needs (packed X + per-thread padded W blocks). */
size_t pf_kern_amx_scratch_bytes(int64_t m, int64_t k, int threads);
/* Y[m, n] = bf16(X)[m, k] · W[n, k]^T + beta*Y, W BF16 bits (row stride ldw).
 * scratch: pf_kern_amx_scratch_bytes(m, k, omp_get_max_threads()), 64-byte aligned.
 * Arguments validated, m, n, k > 0. Uses all OpenMP threads. */
void pf_kern_gemm_amx(int64_t m, int64_t n, int64_t k, const float *x, int64_t ldx,
                      const uint16_t *w, int64_t ldw, float beta, float *y, int64_t ldy,
                      void *scratch);

/* ---- AVX512-BF16 (gemm_dpbf16.c): the bf16 matmul where AMX is missing ---- */

/* 1 when init found AVX-512 F/BW/VL + AVX512-BF16 (pf_kern_dpbf16_setup). */
extern int pf_kern_dpbf16;
/* BF16 weights with more rows than this go to pf_kern_gemm_dpbf16 when it is
 * active (default PF_DPBF16_MIN_M; checked before the GEMV threshold). */
extern int64_t pf_kern_dpbf16_min_m;
/* Blocking (bench_gemm sweeps them, tests force small values), read at each call:
 * k per register-block pass (rounded down to a multiple of 32, default 256), X
 * rows per sweep (default 192), output columns per W chunk and OpenMP task
 * (rounded up to a multiple of 64, default 256), bytes of one packed W chunk
 * (sets its k extent, a multiple of kc; default 1 MiB). */
extern int64_t pf_kern_dpbf16_kc, pf_kern_dpbf16_mc, pf_kern_dpbf16_nc;
extern size_t pf_kern_dpbf16_wbytes;
/* Products with at most this many rows and an even k read W in place instead of
 * packing it (gemm_dpbf16.c; same bits; default 128, 0 = never). */
extern int64_t pf_kern_dpbf16_direct_max_m;
/* Returns 1 if the CPU (and OS) can run the AVX512-BF16 kernel. */
int pf_kern_dpbf16_setup(void);
/* Whether BF16 linear layers go to pf_kern_gemm_dpbf16: available, AMX not
 * active, the hand-written kernels' ISA level is AVX-512 (pf_kernels_set_isa
 * caps it) and the matmul precision is bf16. */
int pf_kern_dpbf16_active(void);
/* Bytes of scratch pf_kern_gemm_dpbf16 needs (packed X + per-thread W chunks),
 * for the current blocking. */
size_t pf_kern_dpbf16_scratch_bytes(int64_t m, int64_t k, int threads);
/* Y[m, n] = bf16(X)[m, k] · W[n, k]^T + beta*Y, W BF16 bits (row stride ldw),
 * the same contract and rounding as pf_kern_gemm_amx; scratch:
 * pf_kern_dpbf16_scratch_bytes(m, k, omp_get_max_threads()), 64-byte aligned.
 * Arguments validated, m, n, k > 0. Uses all OpenMP threads. */
void pf_kern_gemm_dpbf16(int64_t m, int64_t n, int64_t k, const float *x, int64_t ldx,
                         const uint16_t *w, int64_t ldw, float beta, float *y, int64_t ldy,
                         void *scratch);

/* Whether pf_gemm_xwt multiplies bf16-rounded activations for this call (AMX or
 * AVX512-BF16 path taken), e.g. for tests choosing their reference twin. */
int pf_kern_bf16x_taken(int64_t m, int64_t k, pf_dtype wdt);

/* Loop bounds below this many multiply-adds stay single-threaded (PF_PAR_FOR:
 * outside any OpenMP construct). */
#define PF_KERN_PAR_MIN 32768

#endif
