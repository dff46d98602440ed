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

void pf_tensor_release_pages(const pf_tensor *t) {
  if (t && t->lazy && !t->data) {
    pf_lazy_release_pages(t);
    return;
  }
  if (!t || !t->data || !pf_storage_is_mapped(t->storage) || t->nbytes == 0) return;
  uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
  uintptr_t a = ((uintptr_t)t->data + page - 1) & ~(page - 1);
  uintptr_t b = ((uintptr_t)t->data + t->nbytes) & ~(page - 1);
  if (b > a) (void)madvise((void *)a, b - a, MADV_DONTNEED);
}

void pf_tensor_prefetch(const pf_tensor *t) {
  if (!t || !t->data || !pf_storage_is_mapped(t->storage) || t->nbytes == 0) return;
  populate((uintptr_t)t->data, (uintptr_t)t->data + t->nbytes);
}
