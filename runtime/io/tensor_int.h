/* tensor_int.h — what tensor.c, tensor_storage.c and tensor_lazy.c share (not a public
 * header). */
#ifndef PF_TENSOR_INT_H
#define PF_TENSOR_INT_H

#include <time.h>

#include "tensor.h"

/* tensor_storage.c's storage; tensor.c's views read its fields. */
struct pf_storage {
  int refcount;
  int is_mmap;
  void *data; /* NULL only for an empty mapped file */
  size_t size;
  char *path;        /* mmap: the file; heap: NULL */
  uint64_t dev, ino; /* the mapped file's identity (path != NULL) */
  struct timespec mtim, ctim; /* its modification and change times when it was mapped */
  size_t heap_map;   /* heap storage that is an anonymous mapping: its length, else 0 */
  int writable;      /* a spill mapping (pf_storage_new_spill): mmap, yet written to */
  uint64_t *account; /* pf_storage_account: size subtracted from it when freed, or NULL */
};

/* Non-NULL data pointer for zero-byte tensors (NULL data means "planned"). */
extern const char pf_tensor_empty_bytes[8];

/* Rows [r0, r1) of a derived tensor into dst (contiguous output rows). */
typedef void (*pf_fill_rows_fn)(const void *job, int64_t r0, int64_t r1, char *dst);

/* A storage of rows * row_bytes bytes filled by `fill`: an unlinked scratch file
 * mapped read-only when PF_SCRATCH_MIN bytes or more and one can be made, else
 * the heap. PF_ERR_NOMEM when neither works. */
pf_status pf_storage_derived(size_t rows, size_t row_bytes, pf_fill_rows_fn fill, const void *job,
                             pf_storage **out, pf_err *err);

/* tensor_lazy.c: the lazy parts of tensor.c's functions (t->lazy != NULL). */
void pf_lazy_free(pf_lazy *l); /* NULL ok */
/* Rows ridx[rk] and columns cidx[ck] of t (NULL: all; in range), transposed when
 * flip, as one lazy selection of t's root parent. t has data or is lazy. */
pf_status pf_lazy_select(const pf_tensor *t, const int64_t *ridx, int64_t rk, const int64_t *cidx,
                         int64_t ck, int flip, pf_tensor **out, pf_err *err);
void pf_lazy_read(const pf_tensor *t, size_t first, size_t n, void *dst);
void pf_lazy_release_pages(const pf_tensor *t);
pf_status pf_lazy_transpose(const pf_tensor *t, pf_tensor **out, pf_err *err);
pf_status pf_lazy_rows_view(const pf_tensor *t, int64_t r0, int64_t r1, pf_tensor **out,
                            pf_err *err);
/* One lazy selection for the concatenation of parts (some of them lazy) when
 * that exists (1, *st set); 0 when the parts do not share a parent. */
int pf_lazy_concat(const pf_tensor *const *parts, int n, pf_tensor **out, pf_status *st,
                   pf_err *err);

#endif
