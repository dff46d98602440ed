/* bench_fresh.c — filling fresh memory: what the activation capture of the bias
 * ops pays for every tensor it keeps (see bench/README.md "Fresh memory").
 *
 *   cmake --build build --target bench_fresh && ./build/bench_fresh [MiB [ROUNDS]]
 *
 * Copies MiB (default 90: one 60-token prompt of the Llama-3.2-1B shape, 96
 * activations) as tensors of 60 x 8192 float32 (1.9 MB, the largest activation of
 * that prompt) into memory that is new each round, three ways, interleaved in
 * rounds (default 5) and freed after each:
 *   calloc each       one calloc per tensor (4 KiB pages, a page fault per 4 KiB;
 *                     what the capture did before)
 *   one heap block    one pf_storage_new_heap of the whole size (PF_HEAP_HUGE_MIN or
 *                     more: its own mapping, huge pages advised, faulted in on every
 *                     OpenMP thread), the tensors copied in back to back (the capture
 *                     now, with its 32 MiB blocks)
 *   reused block      the same copies into a block that stays (the cost of the copy
 *                     alone)
 * Prints the best and median GB/s of each. The first round of a fresh process can
 * be slow for every variant (the kernel finding free huge pages).
 */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tensor.h"

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  const size_t mib = argc > 1 ? (size_t)atol(argv[1]) : 90;
  const int rounds = argc > 2 ? atoi(argv[2]) : 5;
  const size_t tensor = (size_t)60 * 8192 * 4, n = (mib << 20) / tensor, total = n * tensor;
  if (n == 0 || rounds < 1 || rounds > 100) {
    fprintf(stderr, "usage: bench_fresh [MiB >= 2 [ROUNDS 1-100]]\n");
    return 2;
  }
  char *src = malloc(tensor);
  void **p = calloc(n, sizeof *p);
  if (!src || !p) return 1;
  memset(src, 0x3f, tensor);
  pf_err err;
  pf_storage *keep = NULL;
  if (pf_storage_new_heap(total, &keep, &err)) {
    fprintf(stderr, "bench_fresh: %s\n", err.msg);
    return 1;
  }
  double t[3][100];
  for (int r = 0; r < rounds; r++) {
    double t0 = now();
    for (size_t i = 0; i < n; i++) {
      if (!(p[i] = calloc(tensor, 1))) return 1;
      memcpy(p[i], src, tensor);
    }
    t[0][r] = now() - t0;
    for (size_t i = 0; i < n; i++)
      free(p[i]);

    t0 = now();
    pf_storage *s = NULL;
    if (pf_storage_new_heap(total, &s, &err)) {
      fprintf(stderr, "bench_fresh: %s\n", err.msg);
      return 1;
    }
    char *d = pf_storage_data(s);
    for (size_t i = 0; i < n; i++)
      memcpy(d + i * tensor, src, tensor);
    t[1][r] = now() - t0;
    pf_storage_release(s);

    t0 = now();
    d = pf_storage_data(keep);
    for (size_t i = 0; i < n; i++)
      memcpy(d + i * tensor, src, tensor);
    t[2][r] = now() - t0;
  }
  static const char *name[3] = {"calloc each", "one heap block", "reused block"};
  printf("%zu tensors of %zu bytes (%.1f MiB), %d rounds, %d OpenMP threads\n", n, tensor,
         (double)total / (1 << 20), rounds, omp_get_max_threads());
  for (int v = 0; v < 3; v++) {
    qsort(t[v], (size_t)rounds, sizeof(double), cmp_d);
    printf("  %-15s best %7.2f GB/s (%7.1f ms)  median %7.2f GB/s\n", name[v],
           (double)total / t[v][0] / 1e9, t[v][0] * 1e3, (double)total / t[v][rounds / 2] / 1e9);
  }
  pf_storage_release(keep);
  free(p);
  free(src);
  return 0;
}
