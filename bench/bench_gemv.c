/* bench_gemv.c — the decode GEMV against the memory read bandwidth, measured side by
 * side (see bench/README.md "Decode GEMV").
 *
 *   cmake --build build --target bench_gemv && ./build/bench_gemv [dir]
 *
 * Writes 1 GiB of BF16 weights (32 matrices 8192 x 2048, larger than any cache) to
 * an unlinked file in `dir` (default $TMPDIR or /var/tmp), maps it read-only the way
 * pfrun maps safetensors (pf_storage_map_file), and reads it once so the page cache
 * is warm. A heap copy (4 KiB pages, and one with MADV_HUGEPAGE) is measured too.
 * Then, in rounds, each round running every measurement once so that they all see
 * the same machine (the read bandwidth of this VM moves by 2x within minutes):
 *   read 1 stream   each thread sums its contiguous half with 256-byte loads
 *   read 4 streams  each thread reads 4 rows of 4 KiB side by side (the old GEMV's
 *                   access pattern: 4 output rows at a time), and its share's four
 *                   quarters side by side ("far apart": 4 long streams)
 *   gemv m=1, m=4   pf_gemm_xwt forced onto the GEMV path over the 32 matrices; at
 *                   m = 1 also the same bytes as 16 F32 and 32 F16 matrices
 *   decode          the 7 products of 8 Llama-3.2-1B-shaped layers at m = 1 (56 calls
 *                   of 2-32 MiB, what one decode token does), with each thread reading
 *                   its own share and then taking 256 KiB units from the back of the
 *                   other's (the default, pf_kern_gemv_unit_bytes), with the threads
 *                   taking chunks of W's rows in turn instead (1 MiB, 4 MiB;
 *                   pf_kern_gemv_unit_bytes = 0) and with one contiguous share each
 *                   (pf_kern_gemv_chunk_bytes = 0 too, the former split), with the
 *                   kernel reading one stream
 *                   (pf_kern_gemv_streams = 1) and without its software prefetch
 *                   (pf_kern_gemv_prefetch_avx2 / _avx512 = 0); gemv m=4 BF16 also
 *                   with one stream and without the prefetch
 * and keeps the best and the median of each. Reported: GB/s (of the best round) and
 * the ratio to "read 1 stream" and to the best of the three reads over the same
 * memory, and the median round's GB/s (a slowed thread shows there, not in the best). Threads:
 * OMP_NUM_THREADS / all cores.
 */
#include <errno.h>
#include <fcntl.h>
#include <immintrin.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "bench_read.h"
#include "kernels/kern_internal.h"

enum { N = 8192, K = 2048, NMAT = 32, ROUNDS = 15 };
#define PER ((size_t)N * K * 2)
#define TOTAL (PER * NMAT)

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void fail(const char *what) {
  fprintf(stderr, "bench_gemv: %s: %s\n", what, strerror(errno));
  exit(1);
}

static volatile float sink;

static void read_pass(const char *buf, size_t bytes, int streams, size_t run) {
  sink += bench_read_pass(buf, bytes, streams, run, 0);
}

/* The whole buffer as N x K matrices of dtype dt (BF16 and F16: 32 of them, F32: 16;
 * the BF16 test pattern read as F16 is 1.0-2.5, as F32 normal numbers). */
static void gemv_pass(const char *buf, int64_t m, pf_dtype dt, const float *x, float *y) {
  pf_err err;
  const size_t per = (size_t)N * K * pf_dtype_size(dt);
  for (size_t i = 0; i < TOTAL / per; i++)
    if (pf_gemm_xwt(m, N, K, x, K, buf + per * i, dt, K, NULL, 0, y, N, NULL, &err)) {
      fprintf(stderr, "bench_gemv: %s\n", err.msg);
      exit(1);
    }
}

/* One decode token's products over `layers` layers of the Llama-3.2-1B shape (q, k,
 * v, o, gate, up, down: 7 products of 2-32 MiB each, a barrier after each), W taken
 * from buf one after the other; returns the bytes read. */
static size_t decode_pass(const char *buf, int layers, const float *x, float *y) {
  static const int64_t shape[7][2] = {{2048, 2048}, {512, 2048},  {512, 2048}, {2048, 2048},
                                      {8192, 2048}, {8192, 2048}, {2048, 8192}};
  size_t off = 0;
  pf_err err;
  for (int l = 0; l < layers; l++)
    for (int p = 0; p < 7; p++) {
      const int64_t n = shape[p][0], k = shape[p][1];
      if (pf_gemm_xwt(1, n, k, x, k, buf + off, PF_DTYPE_BF16, k, NULL, 0, y, n, NULL, &err)) {
        fprintf(stderr, "bench_gemv: %s\n", err.msg);
        exit(1);
      }
      off += (size_t)(n * k * 2);
    }
  return off;
}

typedef struct memory {
  const char *name;
  const char *buf;
} memory;

static int cmp_double(const void *a, const void *b) {
  const double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  const char *dir = argc > 1 ? argv[1] : getenv("TMPDIR");
  if (!dir || !*dir) dir = "/var/tmp";
  pf_err err;
  if (pf_kernels_init(&err)) {
    fprintf(stderr, "bench_gemv: %s\n", err.msg);
    return 1;
  }
  FILE *la = fopen("/proc/loadavg", "r");
  char load[64] = "?\n";
  if (la) {
    if (!fgets(load, sizeof load, la)) snprintf(load, sizeof load, "?\n");
    fclose(la);
  }
  printf("%s\nload average before start: %s", pf_kernels_describe(), load);

  /* the weights: heap (4 KiB pages), heap with MADV_HUGEPAGE, and a file mapping */
  char *heap = mmap(NULL, TOTAL, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  char *raw = mmap(NULL, TOTAL + (2u << 20), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (heap == MAP_FAILED || raw == MAP_FAILED) fail("mmap");
  madvise(heap, TOTAL, MADV_NOHUGEPAGE);
  char *huge = (char *)(((uintptr_t)raw + (2u << 20) - 1) & ~(uintptr_t)((2u << 20) - 1));
  madvise(huge, TOTAL, MADV_HUGEPAGE);
  uint16_t *h16 = (uint16_t *)heap;
#pragma omp parallel for
  for (size_t i = 0; i < TOTAL / 2; i++)
    h16[i] = (uint16_t)(0x3c00 + (i * 2654435761u >> 20) % 0x600); /* |w| in [2^-7, 2^4) */
  memcpy(huge, heap, TOTAL);

  char path[4096];
  snprintf(path, sizeof path, "%s/pfrun-bench-gemv-XXXXXX", dir);
  int fd = mkstemp(path);
  if (fd < 0) fail(path);
  for (size_t o = 0; o < TOTAL;) {
    ssize_t w = pwrite(fd, heap + o, TOTAL - o < (64u << 20) ? TOTAL - o : (64u << 20), (off_t)o);
    if (w <= 0) fail("write");
    o += (size_t)w;
  }
  close(fd);
  pf_storage *st;
  if (pf_storage_map_file(path, &st, &err)) {
    fprintf(stderr, "bench_gemv: %s\n", err.msg);
    return 1;
  }
  unlink(path);
  const char *file = pf_storage_data(st);
  read_pass(file, TOTAL, 1, 4096); /* page cache warm, pages mapped */

  float *x = aligned_alloc(64, 4 * K * sizeof(float)), *y = aligned_alloc(64, 4 * N * sizeof(float));
  for (int i = 0; i < 4 * K; i++)
    x[i] = (float)(i % 17) * 0.0625f - 0.5f;

  const memory mem[3] = {{"file mapping (page cache)", file},
                         {"heap, 4 KiB pages", heap},
                         {"heap, MADV_HUGEPAGE", huge}};
  enum { NMEAS = 15, NREAD = 3, DEC = 7, DEC_END = 13 };
  const char *meas[NMEAS] = {"read, 1 stream/thread",
                             "read, 4 streams/thread (4 KiB rows)",
                             "read, 4 streams/thread, far apart",
                             "gemv m=1 BF16",
                             "gemv m=4 BF16",
                             "gemv m=1 F32",
                             "gemv m=1 F16",
                             "decode m=1, shares+stealing (default)",
                             "decode m=1, 1 MiB chunks",
                             "decode m=1, 4 MiB chunks",
                             "decode m=1, one share/thread",
                             "decode m=1, one stream",
                             "decode m=1, no prefetch",
                             "gemv m=4 BF16, one stream",
                             "gemv m=4 BF16, no prefetch"};
  const size_t chunk[NMEAS] = {0,        0,        0, 0,        0,        0, 0, 1u << 20,
                               1u << 20, 4u << 20, 0, 1u << 20, 1u << 20, 0, 0};
  /* decode and m = 4 variants: 1 = the default stealing schedule, 0 = chunks */
  const int steal[NMEAS] = {0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1};
  const int dec_layers = 8; /* 8 x 121.6 MB of the 1 GiB */
  size_t bytes[NMEAS] = {TOTAL, TOTAL, TOTAL, TOTAL, TOTAL, TOTAL, TOTAL, 0,
                         0,     0,     0,     0,     0,     TOTAL, TOTAL};
  const size_t prefetch_default = pf_kern_gemv_prefetch_avx2,
               prefetch512_default = pf_kern_gemv_prefetch_avx512;
  const size_t chunk_default = pf_kern_gemv_chunk_bytes, unit_default = pf_kern_gemv_unit_bytes;
  const int streams_default = pf_kern_gemv_streams;
  const pf_isa best_isa = pf_kernels_isa();
  const int nisa = best_isa - PF_ISA_AVX2 + 1;
  static double times[3][2][NMEAS][ROUNDS];
  pf_kern_gemv_max_m = 4;
  for (int r = 0; r < ROUNDS; r++)
    for (int mi = 0; mi < 3; mi++)
      for (int is = 0; is < nisa; is++) {
        pf_kernels_set_isa((pf_isa)(PF_ISA_AVX2 + is));
        for (int c = 0; c < NMEAS; c++) {
          if (is > 0 && c < NREAD) continue; /* the read loops do not depend on the ISA */
          double t = now();
          if (c == 0) read_pass(mem[mi].buf, TOTAL, 1, 4096);
          if (c == 1) read_pass(mem[mi].buf, TOTAL, 4, 4096);
          if (c == 2) read_pass(mem[mi].buf, TOTAL, 4, 0);
          if (c == 3) gemv_pass(mem[mi].buf, 1, PF_DTYPE_BF16, x, y);
          if (c == 4) gemv_pass(mem[mi].buf, 4, PF_DTYPE_BF16, x, y);
          if (c == 5) gemv_pass(mem[mi].buf, 1, PF_DTYPE_F32, x, y);
          if (c == 6) gemv_pass(mem[mi].buf, 1, PF_DTYPE_F16, x, y);
          if (c >= DEC) {
            if (c < DEC_END) pf_kern_gemv_chunk_bytes = chunk[c];
            if (!steal[c]) pf_kern_gemv_unit_bytes = 0;
            if (c == DEC_END - 2 || c == DEC_END) pf_kern_gemv_streams = 1;
            if (c == DEC_END - 1 || c == DEC_END + 1)
              pf_kern_gemv_prefetch_avx2 = pf_kern_gemv_prefetch_avx512 = 0;
            if (c < DEC_END)
              bytes[c] = decode_pass(mem[mi].buf, dec_layers, x, y);
            else
              gemv_pass(mem[mi].buf, 4, PF_DTYPE_BF16, x, y);
            pf_kern_gemv_chunk_bytes = chunk_default;
            pf_kern_gemv_unit_bytes = unit_default;
            pf_kern_gemv_prefetch_avx2 = prefetch_default;
            pf_kern_gemv_prefetch_avx512 = prefetch512_default;
            pf_kern_gemv_streams = streams_default;
          }
          times[mi][is][c][r] = now() - t;
        }
      }
  pf_kernels_set_isa(best_isa);
  pf_kern_gemv_max_m = PF_GEMV_MAX_M;
  double best[3][2][NMEAS], median[3][2][NMEAS];
  for (int a = 0; a < 3; a++)
    for (int b = 0; b < nisa; b++)
      for (int c = 0; c < NMEAS; c++) {
        qsort(times[a][b][c], ROUNDS, sizeof(double), cmp_double);
        best[a][b][c] = times[a][b][c][0];
        median[a][b][c] = times[a][b][c][ROUNDS / 2];
      }

  printf("best of %d rounds, %d threads, %.0f MiB of weights per pass:\n", ROUNDS,
         omp_get_max_threads(), (double)TOTAL / (1 << 20));
  for (int mi = 0; mi < 3; mi++) {
    const double bw = (double)TOTAL / best[mi][0][0] / 1e9;
    double bw_max = bw;
    for (int c = 1; c < NREAD; c++)
      if ((double)TOTAL / best[mi][0][c] / 1e9 > bw_max)
        bw_max = (double)TOTAL / best[mi][0][c] / 1e9;
    printf("  %s\n", mem[mi].name);
    for (int c = 0; c < NMEAS; c++)
      for (int is = 0; is < (c < NREAD ? 1 : nisa); is++) {
        const double g = (double)bytes[c] / best[mi][is][c] / 1e9;
        printf("    %-38s %-6s %6.1f GB/s  %5.1f %% of read  %5.1f %% of the best read  "
               "median %5.1f GB/s\n",
               meas[c], c < NREAD ? "" : pf_isa_name((pf_isa)(PF_ISA_AVX2 + is)), g, 100.0 * g / bw,
               100.0 * g / bw_max, (double)bytes[c] / median[mi][is][c] / 1e9);
      }
  }
  la = fopen("/proc/loadavg", "r");
  if (la) {
    if (fgets(load, sizeof load, la)) printf("load average after: %s", load);
    fclose(la);
  }
  pf_storage_release(st);
  return sink == 12345.0f ? 2 : 0;
}
