/* bench_read.h — the memory read loop that bench_gemv and bench_forward set their
 * figures against (one definition, so both measure "the read bandwidth" alike).
 *
 * Each thread reads its contiguous share of buf in `streams` interleaved runs of
 * `run` bytes, 128 bytes of each run per step (streams = 1: one sequential pass;
 * run = 0: runs of share/streams, i.e. the share's `streams` parts read side by
 * side, each one long sequential stream); pf > 0: each stream also prefetched pf
 * bytes ahead, non-temporal (as the AVX2 GEMV does). Returns a sum of what was
 * read (to be consumed, so the loads stay). */
#ifndef PF_BENCH_READ_H
#define PF_BENCH_READ_H

#include <immintrin.h>
#include <omp.h>
#include <stddef.h>

static inline float bench_read_pass(const char *buf, size_t bytes, int streams, size_t run,
                                    size_t pf) {
  float tot = 0;
#pragma omp parallel reduction(+ : tot)
  {
    const size_t th = (size_t)omp_get_thread_num(), nt = (size_t)omp_get_num_threads();
    const size_t r = run ? run : bytes / nt / (size_t)streams / 4096 * 4096;
    const size_t share = bytes / nt / (r * (size_t)streams) * (r * (size_t)streams);
    const char *b = buf + share * th;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t blk = 0; blk < share; blk += r * (size_t)streams)
      for (size_t o = 0; o < r; o += 128)
        for (int s = 0; s < streams; s++) {
          const float *p = (const float *)(b + blk + (size_t)s * r + o);
          if (pf) {
            _mm_prefetch((const char *)p + pf, _MM_HINT_NTA);
            _mm_prefetch((const char *)p + pf + 64, _MM_HINT_NTA);
          }
          a0 = _mm256_add_ps(a0, _mm256_loadu_ps(p));
          a1 = _mm256_add_ps(a1, _mm256_loadu_ps(p + 8));
          a2 = _mm256_add_ps(a2, _mm256_loadu_ps(p + 16));
          a3 = _mm256_add_ps(a3, _mm256_loadu_ps(p + 24));
        }
    float l[8];
    _mm256_storeu_ps(l, _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (int j = 0; j < 8; j++)
      tot += l[j];
  }
  return tot;
}

#endif
