/* tensor_pages.c — hints about a mapped tensor's pages: fault them in now, or
 * drop them from this process (see tensor.h). Hints only: a failure changes
 * nothing but timing, and the bytes never change. */
#include <errno.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tensor.h"
#include "tensor_int.h"

/* Linux >= 5.14: fault the range in (reading it from disk) in one call. */
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif

int pf_tensor_populate_read = 1;

/* Fault [p, end) in: one call, or on older kernels (EINVAL) the range asked for and then
 * every page touched (measured on the 13B pass: asking alone was slower than no
 * read-ahead at all; bench/README.md). */
static void populate(uintptr_t p, uintptr_t end) {
  const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE), a = p & ~(page - 1);
  if (end <= p) return;
  if (pf_tensor_populate_read && madvise((void *)a, end - a, MADV_POPULATE_READ) == 0) return;
  if (pf_tensor_populate_read && errno != EINVAL) return; /* e.g. EINTR: a signal came; a hint */
  (void)madvise((void *)a, end - a, MADV_WILLNEED);
  unsigned sum = 0;
  for (; p < end; p = (p | (page - 1)) + 1)
    sum += *(const volatile unsigned char *)p;
  (void)sum;
}

void pf_tensor_prefault_rows(const pf_tensor *t, int64_t r0, int64_t r1) {
  if (!t || !t->data || !pf_storage_is_mapped(t->storage) || t->ndim != 2 || r1 <= r0) return;
  const size_t rb = (size_t)t->shape[1] * pf_dtype_size(t->dtype);
  populate((uintptr_t)t->data + (size_t)r0 * rb, (uintptr_t)t->data + (size_t)r1 * rb);
}

/* A tensor smaller than this keeps its pages: dropping them would free at most that
 * much of RSS (norm weights: a few KiB each, ~2 per layer), and each MADV_DONTNEED
 * costs a TLB shootdown (an interrupt to every CPU the process ran on): in a save of
 * a tiny checkpoint those calls were a fifth of the time (check_alloc_faults' save
 * scenario under perf, AMD EPYC VM). Decided by the tensor's size, not the range's,
 * so the last piece of a large tensor is dropped too and RSS does not grow with the
 * number of large tensors. */
#define DROP_MIN_TENSOR_BYTES ((size_t)1 << 20)

void pf_tensor_drop_range(const pf_tensor *t, const void *p, size_t n) {
  if (!t || !p || t->nbytes < DROP_MIN_TENSOR_BYTES || !pf_storage_is_mapped(t->storage)) return;
  uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
  uintptr_t a = ((uintptr_t)p + page - 1) & ~(page - 1);
  uintptr_t b = ((uintptr_t)p + n) & ~(page - 1);
  if (b > a) (void)madvise((void *)a, b - a, MADV_DONTNEED);
}

void pf_tensor_release_pages(const pf_tensor *t) {
  if (t && t->lazy && !t->data) {
    pf_lazy_release_pages(t);
    return;
  }
  if (t) pf_tensor_drop_range(t, t->data, t->nbytes);
}

void pf_tensor_prefetch(const pf_tensor *t) {
  if (!t || !t->data || !pf_storage_is_mapped(t->storage) || t->nbytes == 0) return;
  populate((uintptr_t)t->data, (uintptr_t)t->data + t->nbytes);
}
