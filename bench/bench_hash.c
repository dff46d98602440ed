/* bench_hash.c — SHA-256 throughput of runtime/io/hash (the report's checkpoint
 * hashes): 512 MiB from a reused buffer (memory speed, no disk), best of 3.
 *   cmake --build build --target bench_hash && ./build/bench_hash
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hash.h"

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(void) {
  const size_t n = (size_t)512 << 20, chunk = (size_t)4 << 20;
  unsigned char *buf = malloc(chunk);
  if (!buf) return 1;
  for (size_t i = 0; i < chunk; i++)
    buf[i] = (unsigned char)(i * 2654435761u >> 13);
  double best = 1e30;
  char hex[PF_SHA256_HEX];
  for (int r = 0; r < 3; r++) {
    pf_sha256 s;
    double t0 = now();
    pf_sha256_init(&s);
    for (size_t done = 0; done < n; done += chunk)
      pf_sha256_update(&s, buf, chunk);
    pf_sha256_final_hex(&s, hex);
    double t = now() - t0;
    best = t < best ? t : best;
  }
  printf("sha256: %.2f GB/s (512 MiB in %.3f s, best of 3) digest %.16s...\n",
         (double)n / best / 1e9, best, hex);
  free(buf);
  return 0;
}
