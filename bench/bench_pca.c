/* bench_pca.c — the two-component PCA behind the PCA charts (pf_pca2), on the
 * shapes a bias run gives it: the token rows of a prompt pair (about 30 with a
 * real tokenizer, about 110 with the synthetic models' byte-level one) by the
 * width of the activation (hidden size, or the MLP width for gate_proj /
 * up_proj), plus one shape past the exact solver's 256 limit (block power
 * iteration).
 *
 * Build (CMake, not part of `all`):
 *   cmake --build build --target bench_pca && ./build/bench_pca [RUNS]
 * Prints, per shape, the best and median milliseconds of RUNS calls (default
 * 20) on the same seeded data, and the first score and explained-variance
 * ratio (so that two builds can be checked to agree). One thread: the chart
 * workers call it one chart at a time.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "charts.h"

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  int runs = argc > 1 ? atoi(argv[1]) : 20;
  if (runs < 1) runs = 1;
  static const int shapes[][2] = {{30, 2048},  {30, 4096}, {30, 14336}, {110, 2048},
                                  {110, 8192}, {60, 2048}, {300, 40},   {257, 300}};
  printf("pf_pca2, %d runs per shape, one thread\n", runs);
  printf("%-12s %10s %10s  %-22s %s\n", "rows x cols", "best ms", "median ms", "score[0]",
         "ratio[0]");
  for (size_t c = 0; c < sizeof shapes / sizeof shapes[0]; c++) {
    const int n = shapes[c][0], d = shapes[c][1];
    float *x = malloc(sizeof(float) * (size_t)n * (size_t)d);
    double *sc = malloc(sizeof(double) * (size_t)n * 2), *t = malloc(sizeof(double) * runs);
    if (!x || !sc || !t) return 1;
    uint64_t s = 42;
    for (int64_t i = 0; i < (int64_t)n * d; i++) { /* noise plus a ramp in 3 columns */
      s ^= s << 13, s ^= s >> 7, s ^= s << 17;
      x[i] = (float)((double)(s >> 11) / 9007199254740992.0 - 0.5) +
             (i % d < 3 ? (float)(i / d) * 0.01f : 0.0f);
    }
    double ratio[2];
    pf_err err = {0};
    for (int k = 0; k < runs; k++) {
      double t0 = now();
      if (pf_pca2(x, n, d, sc, ratio, &err) != PF_OK) {
        fprintf(stderr, "bench_pca: %s\n", err.msg);
        return 1;
      }
      t[k] = now() - t0;
    }
    qsort(t, (size_t)runs, sizeof *t, cmp_double);
    char shape[32];
    snprintf(shape, sizeof shape, "%d x %d", n, d);
    printf("%-12s %10.3f %10.3f  %-22.15g %.15g\n", shape, t[0] * 1e3, t[runs / 2] * 1e3, sc[0],
           ratio[0]);
    free(x), free(sc), free(t);
  }
  return 0;
}
