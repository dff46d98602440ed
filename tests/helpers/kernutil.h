/* kernutil.h — what the kernel suites (check_kernels.c, check_rowops.c) share:
 * a seeded splitmix64 generator, float buffers, and the ISA levels of this CPU.
 * Header-only (static): each suite is its own executable with its own state. */
#ifndef PF_TEST_KERNUTIL_H
#define PF_TEST_KERNUTIL_H

#include "testutil.h" /* <check.h>, with its quiet ck_assert_msg */
#include <stdint.h>
#include <stdlib.h>

#include "kernels/kern_internal.h"

static uint64_t rng_state;
static inline void rng_seed(uint64_t s) {
  rng_state = s * 0x9E3779B97F4A7C15ull + 1;
}
static inline uint64_t rng_next(void) { /* splitmix64 */
  uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
static inline float rng_uniform(float lo, float hi) {
  return lo + (hi - lo) * (float)((rng_next() >> 40) / 16777216.0);
}
static inline void fill(float *x, int64_t n, float lo, float hi) {
  for (int64_t i = 0; i < n; i++)
    x[i] = rng_uniform(lo, hi);
}
static inline float *falloc(int64_t n) {
  float *p = calloc((size_t)(n > 0 ? n : 1), sizeof(float));
  ck_assert_ptr_nonnull(p);
  return p;
}

/* ISA levels this machine can run, lowest first. */
static inline int isa_levels(pf_isa *out) {
  ck_assert_int_eq(pf_kernels_init(NULL), PF_OK);
  pf_isa prev = pf_kernels_set_isa(PF_ISA_AVX512);
  pf_isa best = pf_kernels_isa();
  pf_kernels_set_isa(prev);
  int n = 0;
  for (int l = PF_ISA_SCALAR; l <= (int)best; l++)
    out[n++] = (pf_isa)l;
  return n;
}

#endif
