/* bench_gemm.c — throughput of the linear-layer kernels (see bench/README.md "## Kernels").
 *
 * Build (CMake, not part of `all`):
 *   cmake --build build --target bench_gemm && ./build/bench_gemm
 * or by hand from the repository root:
 *   cc -O3 -march=x86-64-v3 -fopenmp -D_GNU_SOURCE -Iruntime bench/bench_gemm.c \
 *      runtime/kernels/{gemm,gemv,init,ref,rope,rowops}.c runtime/io/tensor.c \
 *      runtime/core/err.c -lblis -lm -o bench_gemm
 *
 * Usage:
 *   bench_gemm             everything below; the sgemm part runs in three child
 *                          processes because BLIS reads its arch once per process:
 *                          BLIS_ARCH_TYPE=25 (generic), BLIS's own cpuid choice, and
 *                          the arch pf_kernels_init selects
 *   bench_gemm sgemm       only the sgemm part, through pf_kernels_init (respects
 *                          BLIS_ARCH_TYPE)
 *   bench_gemm sgemm-blis  only the sgemm part, BLIS initialised without pfrun
 *   bench_gemm linear      only the linear layers (no sgemm children)
 *   bench_gemm bf16        only F32 linear vs the bf16 path, 2048x8192x2048, no sweeps
 *   bench_gemm sup         float32 X·W^T at m = 16 .. 512: BLIS's packed path (what
 *                          pfrun calls) against BLIS's own choice (its "sup" code below
 *                          its thresholds), alternated
 *   bench_gemm dpbf16-m    the AVX512-BF16 path at m = 8 .. 2048 with W packed and W
 *                          read in place (pf_kern_dpbf16_direct_max_m), alternated,
 *                          over 8 weight matrices per round (256 MB: from memory,
 *                          as in a forward pass)
 * Sizes are M x N x K for Y[M,N] = X[M,K] · W[N,K]^T; GFLOP/s counts 2*M*N*K.
 * Times are the best of several runs after a warm-up (buffers are touched first,
 * so no page faults are timed). Threads: OMP_NUM_THREADS / all cores.
 */
#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <blis.h>

#include "kernels/kern_internal.h"

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void *xalloc(size_t bytes) {
  void *p = NULL;
  if (posix_memalign(&p, 64, bytes) != 0) {
    fprintf(stderr, "bench_gemm: cannot allocate %zu bytes\n", bytes);
    exit(1);
  }
  return p;
}

static float *randf(int64_t n, unsigned seed) {
  float *p = xalloc((size_t)n * sizeof(float));
#pragma omp parallel for
  for (int64_t i = 0; i < n; i++)
    p[i] = (float)((i * 2654435761u + seed) % 2001) / 1000.0f - 1.0f;
  return p;
}

static uint16_t *rand_bf16(int64_t n, unsigned seed) {
  uint16_t *p = xalloc((size_t)n * 2);
#pragma omp parallel for
  for (int64_t i = 0; i < n; i++)
    p[i] = pf_f32_to_bf16((float)((i * 2654435761u + seed) % 2001) / 1000.0f - 1.0f);
  return p;
}

static void die(pf_status st, const pf_err *err) {
  if (st == PF_OK) return;
  fprintf(stderr, "bench_gemm: %s\n", err->msg);
  exit(1);
}

static int cmp_double(const void *a, const void *b) {
  const double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* ---- sgemm (one arch per process) ---- */

/* C = X · W^T through pf_sgemm (pfrun's BLIS set-up) or straight to BLIS. */
static void sgemm_pf(int64_t m, int64_t n, int64_t k, const float *x, const float *w, float *y) {
  pf_err err;
  die(pf_sgemm(0, 1, m, n, k, 1.0f, x, k, w, k, 0.0f, y, n, &err), &err);
}

static void sgemm_blis(int64_t m, int64_t n, int64_t k, const float *x, const float *w, float *y) {
  float one = 1.0f, zero = 0.0f;
  bli_sgemm(BLIS_NO_TRANSPOSE, BLIS_TRANSPOSE, m, n, k, &one, (float *)x, k, 1, (float *)w, k, 1,
            &zero, y, n, 1);
}

static void bench_sgemm(int blis_alone) {
  void (*gemm)(int64_t, int64_t, int64_t, const float *, const float *, float *) = sgemm_pf;
  if (blis_alone) { /* what BLIS does by itself: no pf_kernels_init */
    bli_init();
    bli_thread_set_num_threads(omp_get_max_threads());
    printf("  BLIS %s, arch %s (BLIS's own cpuid choice), %d threads\n", bli_info_get_version_str(),
           bli_arch_string(bli_arch_query_id()), (int)bli_thread_get_num_threads());
    gemm = sgemm_blis;
  } else {
    pf_err err;
    die(pf_kernels_init(&err), &err);
    printf("  %s\n", pf_kernels_describe());
  }
  const int64_t shapes[2][3] = {{2048, 2048, 2048}, {2048, 8192, 2048}};
  for (int s = 0; s < 2; s++) {
    const int64_t m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
    float *x = randf(m * k, 1), *w = randf(n * k, 2), *y = randf(m * n, 3);
    double best = 1e30, times[12];
    const int reps = s == 0 ? 12 : 6;
    for (int r = 0; r < reps; r++) {
      double t = now();
      gemm(m, n, k, x, w, y);
      t = now() - t;
      times[r] = t;
      if (r > 0 && t < best) best = t; /* r == 0 is the warm-up */
    }
    const double med = median(times + 1, reps - 1), flop = 2.0 * m * n * k;
    printf("  sgemm %lldx%lldx%lld: %.1f GFLOP/s best, %.1f median (%.1f ms best)\n", (long long)m,
           (long long)n, (long long)k, flop / best / 1e9, flop / med / 1e9, best * 1e3);
    free(x), free(w), free(y);
  }
  fflush(stdout);
}

static void run_child(const char *self, const char *mode, const char *arch_env) {
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    if (arch_env)
      setenv("BLIS_ARCH_TYPE", arch_env, 1);
    else
      unsetenv("BLIS_ARCH_TYPE");
    execl(self, self, mode, (char *)NULL);
    _exit(127);
  }
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
    fprintf(stderr, "bench_gemm: sgemm child (BLIS_ARCH_TYPE=%s) failed\n",
            arch_env ? arch_env : "unset");
}

/* ---- BF16 linear (GEMM path) ---- */

static double time_linear(int64_t m, int64_t n, int64_t k, const float *x, const void *w,
                          pf_dtype dt, float *y, pf_workspace *ws, int reps) {
  pf_err err;
  double best = 1e30;
  for (int r = 0; r <= reps; r++) {
    double t = now();
    die(pf_gemm_xwt(m, n, k, x, k, w, dt, k, NULL, 0.0f, y, n, ws, &err), &err);
    t = now() - t;
    if (r > 0 && t < best) best = t;
  }
  return best;
}

/* The AMX ceiling: TDPBF16PS on tiles that stay in registers (4 independent
 * accumulators, no loads), all threads. 16x16x32 multiply-adds per instruction. */
__attribute__((target("amx-tile,amx-bf16"))) static double amx_peak_gflops(long iters) {
  static uint16_t zero[4][512] __attribute__((aligned(64)));
  double t0 = now();
#pragma omp parallel
  {
    pf_kern_amx_tiles_configure(); /* the kernel's configuration: 8 tiles of 16 x 64 B */
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    _tile_loadd(4, zero[0], 64);
    _tile_loadd(5, zero[1], 64);
    _tile_loadd(6, zero[2], 64);
    _tile_loadd(7, zero[3], 64);
    for (long i = 0; i < iters; i++) {
      _tile_dpbf16ps(0, 4, 6);
      _tile_dpbf16ps(1, 4, 7);
      _tile_dpbf16ps(2, 5, 6);
      _tile_dpbf16ps(3, 5, 7);
    }
    _tile_release();
  }
  const double t = now() - t0;
  return 4.0 * 16 * 16 * 32 * 2 * (double)iters * omp_get_max_threads() / t / 1e9;
}

/* The VDPBF16PS ceiling: 24 independent accumulators, operands in registers, all
 * threads. 16 lanes x 2 multiply-adds per instruction. */
__attribute__((target("avx512f,avx512bf16"))) static double dpbf16_peak_gflops(long iters) {
  double t0 = now();
  float sink = 0;
#pragma omp parallel reduction(+ : sink)
  {
    __m512 c[24];
    for (int i = 0; i < 24; i++)
      c[i] = _mm512_setzero_ps();
    const __m512bh a = (__m512bh)_mm512_set1_epi32(0), b = (__m512bh)_mm512_set1_epi32(1);
    for (long i = 0; i < iters; i++) {
#pragma GCC unroll 24
      for (int j = 0; j < 24; j++)
        c[j] = _mm512_dpbf16_ps(c[j], a, b);
    }
    for (int i = 1; i < 24; i++)
      c[0] = _mm512_add_ps(c[0], c[i]);
    sink += _mm512_reduce_add_ps(c[0]);
  }
  const double t = now() - t0;
  if (sink == 1.0f) printf(" ");
  return 24.0 * 32 * 2 * (double)iters * omp_get_max_threads() / t / 1e9;
}

/* BF16 weights with VDPBF16PS (the bf16 path on CPUs without AMX), next to the
 * F32 sgemm rate measured in the same run, and its blocking sweeps. */
static int g_quick; /* "bf16" mode: no sweeps */

/* The AVX512-BF16 path at each value of one block-size tunable (restored after). */
static void sweep_dpbf16(const char *name, int64_t *var, const int64_t *vals, int nv, int64_t m,
                         int64_t n, int64_t k, const float *x, const uint16_t *wb, float *y,
                         pf_workspace *ws) {
  const int64_t def = *var;
  const double flop = 2.0 * (double)m * (double)n * (double)k;
  for (int i = 0; i < nv; i++) {
    *var = vals[i];
    double t = time_linear(m, n, k, x, wb, PF_DTYPE_BF16, y, ws, 3);
    printf("  AVX512-BF16 %s %4lld%s: %.1f GFLOP/s\n", name, (long long)vals[i],
           vals[i] == def ? " (default)" : "          ", flop / t / 1e9);
  }
  *var = def;
}

static void bench_dpbf16(int64_t m, int64_t n, int64_t k, const float *x, const uint16_t *wb,
                         float *y, pf_workspace *ws, double f32_gflops) {
  const double flop = 2.0 * m * n * k;
  dpbf16_peak_gflops(1000000); /* warm-up */
  printf("  VDPBF16PS peak (registers only, %d threads): %.0f GFLOP/s\n", omp_get_max_threads(),
         dpbf16_peak_gflops(20000000));
  pf_kernels_set_matmul(PF_MATMUL_BF16);
  double ta = time_linear(m, n, k, x, wb, PF_DTYPE_BF16, y, ws, 5);
  printf("  linear BF16 W %lldx%lldx%lld, bf16 matmul on AVX512-BF16: %.1f GFLOP/s (%.1f ms) = "
         "%.2fx the F32 linear above\n",
         (long long)m, (long long)n, (long long)k, flop / ta / 1e9, ta * 1e3,
         flop / ta / 1e9 / f32_gflops);
  double tq = time_linear(m, n / 4, 4 * k, x, wb, PF_DTYPE_BF16, y, ws, 3);
  printf("  linear BF16 W %lldx%lldx%lld (down_proj shape), AVX512-BF16: %.1f GFLOP/s\n",
         (long long)m, (long long)n / 4, (long long)k * 4, flop / tq / 1e9);
  if (g_quick) return;
  const int64_t kcs[] = {128, 256, 384, 512}, mcs[] = {192, 384, 768, 2048},
                ncs[] = {128, 256, 512};
  sweep_dpbf16("kc", &pf_kern_dpbf16_kc, kcs, 4, m, n, k, x, wb, y, ws);
  sweep_dpbf16("mc", &pf_kern_dpbf16_mc, mcs, 4, m, n, k, x, wb, y, ws);
  sweep_dpbf16("nc", &pf_kern_dpbf16_nc, ncs, 3, m, n, k, x, wb, y, ws);
}

static void bench_linear(void) {
  const int64_t m = 2048, n = 8192, k = 2048;
  float *x = randf(m * k * 4, 4), *y = randf(m * n, 5), *wf = randf(n * k, 6); /* x: also [m, 4k] */
  uint16_t *wb = rand_bf16(n * k, 6);
  pf_workspace *ws;
  pf_err err;
  die(pf_workspace_new(&ws, &err), &err);
  const double flop = 2.0 * m * n * k;
  double t32 = time_linear(m, n, k, x, wf, PF_DTYPE_F32, y, ws, 3);
  printf("  linear F32  W %lldx%lldx%lld: %.1f GFLOP/s (%.1f ms)\n", (long long)m, (long long)n,
         (long long)k, flop / t32 / 1e9, t32 * 1e3);
  /* BF16 weights on AMX (the default matmul precision where the CPU has AMX-BF16) */
  if (pf_kernels_have_amx()) {
    amx_peak_gflops(100000); /* warm-up */
    printf("  AMX TDPBF16PS peak (tiles in registers, %d threads): %.0f GFLOP/s\n",
           omp_get_max_threads(), amx_peak_gflops(2000000));
    pf_kernels_set_matmul(PF_MATMUL_BF16);
    double ta = time_linear(m, n, k, x, wb, PF_DTYPE_BF16, y, ws, 5);
    printf("  linear BF16 W %lldx%lldx%lld, bf16 matmul on AMX: %.1f GFLOP/s (%.1f ms)\n",
           (long long)m, (long long)n, (long long)k, flop / ta / 1e9, ta * 1e3);
    const size_t budgets[] = {(size_t)128 << 10, (size_t)256 << 10, (size_t)1 << 20};
    const size_t def_b = pf_kern_amx_l2_bytes;
    for (size_t i = 0; i < sizeof budgets / sizeof budgets[0]; i++) {
      pf_kern_amx_l2_bytes = budgets[i];
      double t = time_linear(m, n / 4, 4 * k, x, wb, PF_DTYPE_BF16, y, ws, 5);
      printf("  linear BF16 W %lldx%lldx%lld (down_proj shape), AMX X sweep %4zu KiB%s: %.1f "
             "GFLOP/s\n",
             (long long)m, (long long)n / 4, (long long)k * 4, budgets[i] >> 10,
             budgets[i] == def_b ? " (default)" : "", flop / t / 1e9);
    }
    pf_kern_amx_l2_bytes = def_b;
  } else if (pf_kern_dpbf16) {
    bench_dpbf16(m, n, k, x, wb, y, ws, flop / t32 / 1e9);
  } else {
    printf("  (no AMX-BF16 or AVX512-BF16 on this CPU: BF16 weights take the float32 path)\n");
  }
  if (g_quick) {
    pf_workspace_free(ws);
    free(x), free(y), free(wf), free(wb);
    return;
  }
  pf_kernels_set_matmul(PF_MATMUL_F32); /* the widening path, for the panel sweep and the m sweep */
  const size_t panels[] = {(size_t)2 << 20, (size_t)4 << 20, (size_t)8 << 20, (size_t)16 << 20};
  const size_t def = pf_kern_panel_bytes;
  for (size_t i = 0; i < sizeof panels / sizeof panels[0]; i++) {
    pf_kern_panel_bytes = panels[i];
    double t = time_linear(m, n, k, x, wb, PF_DTYPE_BF16, y, ws, 3);
    printf("  linear BF16 W %lldx%lldx%lld, panel %2zu MiB%s: %.1f GFLOP/s (%.1f ms)\n",
           (long long)m, (long long)n, (long long)k, panels[i] >> 20,
           panels[i] == def ? " (default)" : "          ", flop / t / 1e9, t * 1e3);
  }
  pf_kern_panel_bytes = def;
  /* small m: the GEMV path vs the GEMM path (BLIS; widening first for BF16) at the same m */
  const int64_t def_max = pf_kern_gemv_max_m;
  for (int d = 0; d < 2; d++) {
    const void *w = d == 0 ? (const void *)wb : (const void *)wf;
    const pf_dtype dt = d == 0 ? PF_DTYPE_BF16 : PF_DTYPE_F32;
    for (int64_t mm = 1; mm <= 64; mm *= 2) {
      pf_kern_gemv_max_m = mm;
      double tv = time_linear(mm, n, k, x, w, dt, y, ws, 8);
      pf_kern_gemv_max_m = 0;
      double tg = time_linear(mm, n, k, x, w, dt, y, ws, 4);
      printf("  linear %-4s m=%-2lld: gemv path %7.3f ms, gemm path %7.3f ms%s\n",
             d == 0 ? "BF16" : "F32", (long long)mm, tv * 1e3, tg * 1e3,
             mm <= def_max ? "  (pfrun uses gemv)" : "");
    }
  }
  pf_kern_gemv_max_m = def_max;
  if (pf_kern_dpbf16 && !pf_kernels_have_amx()) { /* small m: GEMV vs AVX512-BF16 */
    pf_kernels_set_matmul(PF_MATMUL_BF16);
    const int64_t def_d = pf_kern_dpbf16_min_m;
    for (int64_t mm = 2; mm <= 64; mm *= 2) {
      pf_kern_gemv_max_m = mm;
      pf_kern_dpbf16_min_m = mm;
      double tv = time_linear(mm, n, k, x, wb, PF_DTYPE_BF16, y, ws, 8);
      pf_kern_dpbf16_min_m = 0;
      double tg = time_linear(mm, n, k, x, wb, PF_DTYPE_BF16, y, ws, 8);
      printf("  linear BF16 m=%-2lld: gemv path %7.3f ms, AVX512-BF16 path %7.3f ms%s\n",
             (long long)mm, tv * 1e3, tg * 1e3,
             mm <= def_d ? "  (pfrun uses gemv)" : "  (pfrun uses AVX512-BF16)");
    }
    pf_kern_gemv_max_m = def_max;
    pf_kern_dpbf16_min_m = def_d;
  }
  if (pf_kernels_have_amx()) { /* small m: GEMV (float32 x) vs AMX (bf16 x) */
    pf_kernels_set_matmul(PF_MATMUL_BF16);
    const int64_t def_amx = pf_kern_amx_min_m;
    for (int64_t mm = 2; mm <= 64; mm *= 2) {
      pf_kern_gemv_max_m = mm;
      pf_kern_amx_min_m = mm;
      double tv = time_linear(mm, n, k, x, wb, PF_DTYPE_BF16, y, ws, 8);
      pf_kern_amx_min_m = 0;
      double tg = time_linear(mm, n, k, x, wb, PF_DTYPE_BF16, y, ws, 8);
      printf("  linear BF16 m=%-2lld: gemv path %7.3f ms, AMX path %7.3f ms%s\n", (long long)mm,
             tv * 1e3, tg * 1e3, mm <= def_amx ? "  (pfrun uses gemv)" : "  (pfrun uses AMX)");
    }
    pf_kern_gemv_max_m = def_max;
    pf_kern_amx_min_m = def_amx;
  }
  pf_kernels_set_matmul(PF_MATMUL_BF16);
  pf_workspace_free(ws);
  free(x), free(y), free(wf), free(wb);
}

/* W packed against W read in place at each m, the two alternated round by round;
 * each round runs 8 different weight matrices of one layer shape. */
static void bench_dpbf16_m(void) {
  if (!pf_kern_dpbf16 || pf_kernels_have_amx()) {
    printf("  (the AVX512-BF16 path is not active on this CPU)\n");
    return;
  }
  pf_kernels_set_matmul(PF_MATMUL_BF16);
  static const int64_t shapes[][2] = {{8192, 2048}, {2048, 8192}}; /* gate/up, down_proj */
  static const int64_t ms[] = {5, 8, 16, 32, 48, 64, 96, 128, 160, 192, 256, 512, 2048};
  enum { NW = 8, ROUNDS = 5 };
  pf_workspace *ws;
  pf_err err;
  die(pf_workspace_new(&ws, &err), &err);
  const int64_t def = pf_kern_dpbf16_direct_max_m;
  for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
    const int64_t n = shapes[s][0], k = shapes[s][1];
    uint16_t *w[NW];
    for (int i = 0; i < NW; i++)
      w[i] = rand_bf16(n * k, 40 + (unsigned)i);
    float *x = randf(2048 * k, 7), *y = randf(2048 * n, 8);
    printf("  n=%lld k=%lld, 8 matrices (%.0f MB) per round, best of %d rounds:\n", (long long)n,
           (long long)k, NW * 2.0 * (double)n * (double)k / 1e6, ROUNDS);
    for (size_t a = 0; a < sizeof ms / sizeof ms[0]; a++) {
      const int64_t m = ms[a];
      double best[2] = {1e30, 1e30};
      for (int r = 0; r <= ROUNDS; r++)
        for (int d = 0; d < 2; d++) {
          pf_kern_dpbf16_direct_max_m = d ? m : 0;
          double t = now();
          for (int i = 0; i < NW; i++)
            die(pf_gemm_xwt(m, n, k, x, k, w[i], PF_DTYPE_BF16, k, NULL, 0.0f, y, n, ws, &err),
                &err);
          t = now() - t;
          if (r > 0 && t < best[d]) best[d] = t;
        }
      const double flop = 2.0 * (double)m * (double)n * (double)k * NW;
      printf("    m=%-5lld W packed %7.1f GFLOP/s (%6.2f ms), W in place %7.1f GFLOP/s (%6.2f ms): "
             "%.2fx%s\n",
             (long long)m, flop / best[0] / 1e9, best[0] * 1e3, flop / best[1] / 1e9, best[1] * 1e3,
             best[0] / best[1], m <= def ? "  (pfrun: in place)" : "");
    }
    for (int i = 0; i < NW; i++)
      free(w[i]);
    free(x), free(y);
  }
  pf_kern_dpbf16_direct_max_m = def;
  pf_workspace_free(ws);
}

/* BLIS's packed path (pfrun's default) against BLIS's own choice, which sends
 * products with a small dimension to its unpacked "sup" code (pf_kern_blis_sup),
 * float32 W [n, k] at the shapes of a prefill's small batches and lm_head chunks,
 * alternated, best of 3 each. */
static void bench_sup(void) {
  const int64_t k = 2048, ns[] = {8192, 128256}, ms[] = {16, 64, 256, 384, 512};
  float *x = randf(512 * k, 5), *w = randf(128256 * k, 6), *y = xalloc((size_t)512 * 128256 * 4);
  memset(y, 0, (size_t)512 * 128256 * 4);
  pf_workspace *ws = NULL;
  pf_err err;
  die(pf_workspace_new(&ws, &err), &err);
  for (size_t a = 0; a < sizeof ns / sizeof ns[0]; a++)
    for (size_t b = 0; b < sizeof ms / sizeof ms[0]; b++) {
      const int64_t m = ms[b], n = ns[a];
      const double flop = 2.0 * (double)m * (double)n * (double)k;
      double t[2] = {1e30, 1e30};
      for (int r = 0; r < 3; r++)
        for (int sup = 0; sup < 2; sup++) {
          pf_kern_blis_sup = sup;
          double s = time_linear(m, n, k, x, w, PF_DTYPE_F32, y, ws, 1);
          if (s < t[sup]) t[sup] = s;
        }
      pf_kern_blis_sup = 0;
      printf("  sgemm X·W^T %4lldx%6lldx%lld: packed (pfrun) %6.1f GFLOP/s, BLIS's choice %6.1f "
             "GFLOP/s (%.2fx)\n",
             (long long)m, (long long)n, (long long)k, flop / t[0] / 1e9, flop / t[1] / 1e9,
             t[1] / t[0]);
    }
  pf_workspace_free(ws);
  free(x), free(w), free(y);
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "sup") == 0) {
    pf_err err;
    die(pf_kernels_init(&err), &err);
    printf("BLIS packed path vs BLIS's small-matrix (sup) choice (%s):\n", pf_kernels_describe());
    bench_sup();
    return 0;
  }
  if (argc > 1 && strcmp(argv[1], "dpbf16-m") == 0) {
    pf_err err;
    die(pf_kernels_init(&err), &err);
    printf("AVX512-BF16 linear, W packed vs read in place (%s):\n", pf_kernels_describe());
    bench_dpbf16_m();
    return 0;
  }
  if (argc > 1 && (strcmp(argv[1], "linear") == 0 || strcmp(argv[1], "bf16") == 0)) {
    g_quick = strcmp(argv[1], "bf16") == 0;
    pf_err err;
    die(pf_kernels_init(&err), &err);
    printf("linear layers (%s):\n", pf_kernels_describe());
    bench_linear();
    return 0;
  }
  if (argc > 1 && (strcmp(argv[1], "sgemm") == 0 || strcmp(argv[1], "sgemm-blis") == 0)) {
    bench_sgemm(strcmp(argv[1], "sgemm-blis") == 0);
    return 0;
  }
  char self[4096];
  ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
  if (len <= 0) {
    fprintf(stderr, "bench_gemm: cannot find own executable\n");
    return 1;
  }
  self[len] = '\0';
  const char *user_arch = getenv("BLIS_ARCH_TYPE");
  FILE *la = fopen("/proc/loadavg", "r");
  char load[64] = "?";
  if (la) {
    if (!fgets(load, sizeof load, la)) snprintf(load, sizeof load, "?");
    fclose(la);
  }
  printf("load average before start: %s(the numbers are only meaningful on an idle machine)\n",
         load);
  printf("sgemm, BLIS generic kernels (BLIS_ARCH_TYPE=25):\n");
  run_child(self, "sgemm", "25");
  printf("sgemm, BLIS left to choose by itself (BLIS_ARCH_TYPE unset, no pf_kernels_init):\n");
  run_child(self, "sgemm-blis", NULL);
  printf("sgemm, arch selected by pf_kernels_init%s:\n",
         user_arch ? " (BLIS_ARCH_TYPE ignored)" : "");
  run_child(self, "sgemm", NULL);
  unsetenv("BLIS_ARCH_TYPE");
  pf_err err;
  die(pf_kernels_init(&err), &err);
  printf("linear layers (%s):\n", pf_kernels_describe());
  bench_linear();
  printf("decode GEMV vs memory bandwidth: see bench_gemv\n");
  return 0;
}
