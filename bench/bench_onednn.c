/* bench_onednn.c — pfrun's bf16 linear path against oneDNN's bf16 matmul, same
 * process, interleaved (see bench/README.md "BF16 weights on AVX512-BF16").
 *
 * oneDNN is not a pfrun dependency: the CMake target exists only when oneDNN is
 * installed (Debian: apt-get install libdnnl-dev, 2.6.3, the OpenMP build — the
 * same libgomp as pfrun), to keep the comparison reproducible:
 *   cmake --build build --target bench_onednn
 * Usage: bench_onednn [ROUNDS [M N K]]   (default 6, 2048 8192 2048)
 *
 * Each round times, one after the other: pf_gemm_xwt with float32 weights (BLIS
 * sgemm), pf_gemm_xwt with BF16 weights (the default bf16 matmul: AMX,
 * AVX512-BF16 or the widening path, whichever pfrun picks), and oneDNN: a
 * reorder of X float32 -> bf16 plus a matmul bf16 x bf16 -> float32 with W used
 * as stored ([N, K] row-major, i.e. a K x N matrix with strides {1, K}) — the
 * same inputs and output as pfrun's call. Prints the best round of each. */
#include <dnnl.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/kernels.h"

#define CK(x)                                                                                      \
  do {                                                                                             \
    dnnl_status_t s_ = (x);                                                                        \
    if (s_ != dnnl_success) {                                                                      \
      fprintf(stderr, "bench_onednn: %s failed: %d\n", #x, (int)s_);                               \
      exit(1);                                                                                     \
    }                                                                                              \
  } while (0)

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void *xalloc(size_t bytes) {
  void *p = NULL;
  if (posix_memalign(&p, 64, bytes) != 0) {
    fprintf(stderr, "bench_onednn: cannot allocate %zu bytes\n", bytes);
    exit(1);
  }
  return p;
}

typedef struct dnnl_mm {
  dnnl_engine_t eng;
  dnnl_stream_t st;
  dnnl_memory_t xf, xb, w, y;
  dnnl_primitive_t reorder, matmul;
  const char *impl;
} dnnl_mm;

static void dnnl_setup(dnnl_mm *d, int64_t m, int64_t n, int64_t k, float *x, uint16_t *xb,
                       uint16_t *w, float *y) {
  CK(dnnl_engine_create(&d->eng, dnnl_cpu, 0));
  CK(dnnl_stream_create(&d->st, d->eng, dnnl_stream_default_flags));
  dnnl_memory_desc_t xf_md, xb_md, w_md, y_md;
  dnnl_dims_t xd = {m, k}, wd = {k, n}, yd = {m, n}, wstr = {1, k};
  CK(dnnl_memory_desc_init_by_tag(&xf_md, 2, xd, dnnl_f32, dnnl_ab));
  CK(dnnl_memory_desc_init_by_tag(&xb_md, 2, xd, dnnl_bf16, dnnl_ab));
  CK(dnnl_memory_desc_init_by_strides(&w_md, 2, wd, dnnl_bf16, wstr));
  CK(dnnl_memory_desc_init_by_tag(&y_md, 2, yd, dnnl_f32, dnnl_ab));
  CK(dnnl_memory_create(&d->xf, &xf_md, d->eng, x));
  CK(dnnl_memory_create(&d->xb, &xb_md, d->eng, xb));
  CK(dnnl_memory_create(&d->w, &w_md, d->eng, w));
  CK(dnnl_memory_create(&d->y, &y_md, d->eng, y));
  dnnl_primitive_desc_t rpd, mpd;
  CK(dnnl_reorder_primitive_desc_create(&rpd, &xf_md, d->eng, &xb_md, d->eng, NULL));
  CK(dnnl_primitive_create(&d->reorder, rpd));
  dnnl_matmul_desc_t mmd;
  CK(dnnl_matmul_desc_init(&mmd, &xb_md, &w_md, NULL, &y_md));
  CK(dnnl_primitive_desc_create(&mpd, &mmd, NULL, d->eng, NULL));
  CK(dnnl_primitive_create(&d->matmul, mpd));
  CK(dnnl_primitive_desc_query(mpd, dnnl_query_impl_info_str, 0, &d->impl));
}

static void dnnl_run(dnnl_mm *d) {
  dnnl_exec_arg_t ra[2] = {{DNNL_ARG_FROM, d->xf}, {DNNL_ARG_TO, d->xb}};
  CK(dnnl_primitive_execute(d->reorder, d->st, 2, ra));
  dnnl_exec_arg_t ma[3] = {{DNNL_ARG_SRC, d->xb}, {DNNL_ARG_WEIGHTS, d->w}, {DNNL_ARG_DST, d->y}};
  CK(dnnl_primitive_execute(d->matmul, d->st, 3, ma));
  CK(dnnl_stream_wait(d->st));
}

static void die(pf_status st, const pf_err *err) {
  if (st == PF_OK) return;
  fprintf(stderr, "bench_onednn: %s\n", err->msg);
  exit(1);
}

int main(int argc, char **argv) {
  const int rounds = argc > 1 ? atoi(argv[1]) : 6;
  int64_t m = 2048, n = 8192, k = 2048;
  if (argc > 4) m = atoll(argv[2]), n = atoll(argv[3]), k = atoll(argv[4]);
  pf_err err;
  die(pf_kernels_init(&err), &err);
  float *x = xalloc((size_t)(m * k) * 4), *y = xalloc((size_t)(m * n) * 4);
  float *wf = xalloc((size_t)(n * k) * 4);
  uint16_t *xb = xalloc((size_t)(m * k) * 2), *w = xalloc((size_t)(n * k) * 2);
  for (int64_t i = 0; i < m * k; i++)
    x[i] = (float)((i * 2654435761u) % 2001) / 1000.0f - 1.0f;
  for (int64_t i = 0; i < n * k; i++) {
    wf[i] = (float)((i * 2654435761u + 6) % 2001) / 1000.0f - 1.0f;
    w[i] = pf_f32_to_bf16(wf[i]);
  }
  memset(y, 0, (size_t)(m * n) * 4);
  pf_workspace *ws;
  die(pf_workspace_new(&ws, &err), &err);
  dnnl_mm d;
  dnnl_setup(&d, m, n, k, x, xb, w, y);
  FILE *la = fopen("/proc/loadavg", "r");
  char load[64] = "?";
  if (la) {
    if (!fgets(load, sizeof load, la)) snprintf(load, sizeof load, "?\n");
    fclose(la);
  }
  printf("load average before start: %s%s\n", load, pf_kernels_describe());
  double b32 = 1e30, bbf = 1e30, bdn = 1e30;
  for (int r = 0; r <= rounds; r++) { /* round 0 is the warm-up */
    double t = now();
    die(pf_gemm_xwt(m, n, k, x, k, wf, PF_DTYPE_F32, k, NULL, 0.0f, y, n, ws, &err), &err);
    t = now() - t;
    if (r && t < b32) b32 = t;
    t = now();
    die(pf_gemm_xwt(m, n, k, x, k, w, PF_DTYPE_BF16, k, NULL, 0.0f, y, n, ws, &err), &err);
    t = now() - t;
    if (r && t < bbf) bbf = t;
    t = now();
    dnnl_run(&d);
    t = now() - t;
    if (r && t < bdn) bdn = t;
  }
  const double g = 2.0 * (double)m * (double)n * (double)k / 1e9;
  const dnnl_version_t *v = dnnl_version();
  printf("%lldx%lldx%lld, %d threads, best of %d rounds (GFLOP/s):\n", (long long)m, (long long)n,
         (long long)k, omp_get_max_threads(), rounds);
  printf("  pfrun F32 weights (BLIS sgemm)         %7.1f\n", g / b32);
  printf("  pfrun BF16 weights, %-18s %7.1f  %.2fx F32\n", pf_kernels_matmul_path(), g / bbf,
         b32 / bbf);
  printf("  oneDNN %d.%d.%d bf16 matmul (%s) %7.1f  %.2fx F32\n", v->major, v->minor, v->patch,
         d.impl, g / bdn, b32 / bdn);
  pf_workspace_free(ws);
  free(x), free(y), free(wf), free(xb), free(w);
  return 0;
}
