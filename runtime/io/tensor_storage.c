/* tensor_storage.c — ref-counted byte storage under tensors (see tensor.h): heap
 * blocks (large ones in huge pages), read-only file mappings, and scratch-file
 * mappings for derived tensors. Split from tensor.c along the storage/tensor seam;
 * struct pf_storage lives in tensor_int.h because tensor views read it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"
#include "tensor_int.h"


/* Heap storage of PF_HEAP_HUGE_MIN bytes or more is an anonymous mapping of its
 * own, 2 MiB aligned, with MADV_HUGEPAGE: with transparent huge pages in
 * "madvise" mode (Debian's default) only such memory gets 2 MiB pages. Filling a
 * fresh buffer of 4 KiB pages costs one page fault per 4 KiB; measured on Zen 5
 * (bench/README.md, "Fresh memory"): 0.37 GB/s for calloc'd 2 MB buffers against
 * 8-10 GB/s in huge pages (0.5-0.9 GB/s where the memory is new to the process).
 * The kernel hands the mapping over zeroed, as calloc does.
 * Sanitizer builds keep calloc, so that overflows of tensor storage are caught. */
#if defined(__SANITIZE_ADDRESS__)
#define PF_HEAP_MAP 0
#else
#define PF_HEAP_MAP 1
#endif
#define HUGE_PAGE ((size_t)2 << 20)

static void *heap_map(size_t bytes, size_t *len) {
  *len = (bytes + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
  char *raw =
      mmap(NULL, *len + HUGE_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) return NULL;
  char *p = (char *)(((uintptr_t)raw + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1));
  if (p > raw) munmap(raw, (size_t)(p - raw));
  munmap(p + *len, (size_t)(raw + HUGE_PAGE - p)); /* the rest of the slack */
  /* advice only: without transparent huge pages the memory is as good */
  madvise(p, *len, MADV_HUGEPAGE);
  /* Fault it in on every thread now: the kernel (and, in a VM, the host) zeroes
   * fresh pages at ~0.4-1 GB/s a core here, and the callers fill such storage
   * from one thread. */
#pragma omp parallel for schedule(static) if (*len >= ((size_t)16 << 20))
  for (size_t o = 0; o < *len; o += 4096)
    p[o] = 0;
  return p;
}

pf_status pf_storage_new_heap(size_t bytes, pf_storage **out, pf_err *err) {
  *out = NULL;
  pf_storage *s = calloc(1, sizeof *s);
  if (!s) goto nomem;
  if (PF_HEAP_MAP && bytes >= PF_HEAP_HUGE_MIN) {
    if (!(s->data = heap_map(bytes, &s->heap_map))) goto nomem;
  } else if (!(s->data = calloc(bytes ? bytes : 1, 1))) {
    goto nomem;
  }
  s->refcount = 1;
  s->size = bytes;
  *out = s;
  return PF_OK;
nomem:
  free(s);
  return pf_err_set(err, PF_ERR_NOMEM, "cannot allocate %zu bytes of tensor storage", bytes);
}

pf_status pf_storage_map_file(const char *path, pf_storage **out, pf_err *err) {
  *out = NULL;
  pf_status st = PF_OK;
  pf_storage *s = NULL;
  int fd = -1;
  uint64_t size = 0;
  if ((st = pf_open_input(path, &fd, &size, err)) != PF_OK) return st;
  s = calloc(1, sizeof *s);
  if (!s || !(s->path = strdup(path))) {
    st = pf_err_set(err, PF_ERR_NOMEM, "%s: out of memory", path);
    goto fail;
  }
  s->size = (size_t)size;
  struct stat fst;
  if (fstat(fd, &fst) == 0) {
    s->dev = (uint64_t)fst.st_dev;
    s->ino = (uint64_t)fst.st_ino;
    s->mtim = fst.st_mtim;
    s->ctim = fst.st_ctim;
  }
  if (s->size > 0) {
    void *p = mmap(NULL, s->size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      st = pf_err_set(err, PF_ERR_IO, "%s: cannot mmap %zu bytes: %s", path, s->size,
                      strerror(errno));
      goto fail;
    }
    s->data = p;
  }
  s->is_mmap = 1;
  s->refcount = 1;
  close(fd);
  *out = s;
  return PF_OK;
fail:
  if (s) free(s->path);
  free(s);
  close(fd);
  return st;
}


static int pwrite_fully(int fd, const char *p, size_t n, off_t off) {
  while (n > 0) {
    ssize_t w = pwrite(fd, p, n, off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return w < 0 ? errno : EIO;
    p += w;
    n -= (size_t)w;
    off += w;
  }
  return 0;
}

/* An unlinked file "pfrun-<kind>-XXXXXX" in pf_scratch_dir(), or -1 (err set). */
static int scratch_fd(const char *kind, pf_err *err) {
  char path[4096];
  snprintf(path, sizeof path, "%s/pfrun-%s-XXXXXX", pf_scratch_dir(), kind);
  int fd = mkostemp(path, O_CLOEXEC);
  if (fd < 0) {
    pf_err_set(err, PF_ERR_IO, "%s: cannot create a %s file: %s", path, kind, strerror(errno));
    return -1;
  }
  unlink(path); /* anonymous from now on: gone when unmapped, even after a crash */
  return fd;
}

/* `bytes` of the scratch file fd mapped shared (read-write when `writable`) as a
 * new storage; fd is closed. e: an errno from preparing the file (0: none). */
static pf_status scratch_map(int fd, size_t bytes, int writable, int e, const char *kind,
                             pf_storage **out, pf_err *err) {
  pf_storage *s = e ? NULL : calloc(1, sizeof *s);
  void *p = MAP_FAILED;
  if (!e && !s) e = ENOMEM;
  if (!e && (p = mmap(NULL, bytes, writable ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED, fd,
                      0)) == MAP_FAILED)
    e = errno;
  close(fd);
  if (e) {
    free(s);
    return pf_err_set(err, e == ENOMEM ? PF_ERR_NOMEM : PF_ERR_IO,
                      "%s: cannot make a %zu-byte %s file: %s", pf_scratch_dir(), bytes, kind,
                      strerror(e));
  }
  s->data = p;
  s->size = bytes;
  s->is_mmap = 1;
  s->writable = writable;
  s->refcount = 1;
  *out = s;
  return PF_OK;
}

/* Build `rows` rows of `row_bytes` into an unlinked scratch file through a small
 * reusable buffer (pwrite into the page cache, no page faults on a writable
 * mapping), then map it read-only. PF_ERR_IO/NOMEM when that is not possible. */
static pf_status scratch_build(size_t rows, size_t row_bytes, pf_fill_rows_fn fill, const void *job,
                               pf_storage **out, pf_err *err) {
  *out = NULL;
  size_t bytes = rows * row_bytes, chunk_rows = ((size_t)1 << 20) / (row_bytes ? row_bytes : 1);
  if (chunk_rows == 0) chunk_rows = 1;
  int fd = scratch_fd("scratch", err);
  if (fd < 0) return PF_ERR_IO;
  char *buf = malloc(chunk_rows * row_bytes);
  int e = !buf ? ENOMEM : 0;
  for (size_t r = 0; !e && r < rows; r += chunk_rows) {
    size_t n = rows - r < chunk_rows ? rows - r : chunk_rows;
    fill(job, (int64_t)r, (int64_t)(r + n), buf);
    e = pwrite_fully(fd, buf, n * row_bytes, (off_t)(r * row_bytes));
  }
  free(buf);
  return scratch_map(fd, bytes, 0, e, "scratch", out, err);
}

pf_status pf_storage_new_spill(size_t bytes, pf_storage **out, pf_err *err) {
  *out = NULL;
  if (bytes == 0) bytes = 1; /* mmap refuses zero bytes */
  int fd = scratch_fd("spill", err);
  if (fd < 0) return PF_ERR_IO;
  /* the blocks are reserved now: a file only extended (ftruncate) would meet a full
   * folder as SIGBUS when a page is first written through the mapping */
  const int e = posix_fallocate(fd, 0, (off_t)bytes);
  return scratch_map(fd, bytes, 1, e, "spill", out, err);
}

void pf_storage_retain(pf_storage *s) {
  if (s) s->refcount++;
}

void pf_storage_account(pf_storage *s, uint64_t *counter) {
  if (!s || !counter || s->account) return;
  s->account = counter;
  __atomic_add_fetch(counter, (uint64_t)s->size, __ATOMIC_RELAXED);
}

void pf_storage_release(pf_storage *s) {
  if (!s || s->refcount <= 0) return;
  if (--s->refcount > 0) return;
  if (s->account) __atomic_sub_fetch(s->account, (uint64_t)s->size, __ATOMIC_RELAXED);
  if (s->is_mmap) {
    if (s->data) munmap(s->data, s->size);
  } else if (s->heap_map) {
    munmap(s->data, s->heap_map);
  } else {
    free(s->data);
  }
  free(s->path);
  free(s);
}

void *pf_storage_data(pf_storage *s) {
  return s ? s->data : NULL;
}
size_t pf_storage_size(const pf_storage *s) {
  return s ? s->size : 0;
}
const char *pf_storage_path(const pf_storage *s) {
  return s && s->is_mmap ? s->path : NULL;
}
int pf_storage_identity(const pf_storage *s, char *out, size_t n) {
  if (!s || !s->is_mmap || !s->path || s->writable) return 0;
  snprintf(out, n, "%llu:%llu:%zu:%lld.%09ld:%lld.%09ld", (unsigned long long)s->dev,
           (unsigned long long)s->ino, s->size, (long long)s->mtim.tv_sec, s->mtim.tv_nsec,
           (long long)s->ctim.tv_sec, s->ctim.tv_nsec);
  return 1;
}
int pf_storage_is_mapped(const pf_storage *s) {
  return s && s->is_mmap && s->data;
}

int pf_tensor_file_region(const pf_tensor *t, pf_file_region *out) {
  if (!t || !t->data || !t->storage || !t->storage->path || !t->storage->data) return 0;
  const pf_storage *s = t->storage;
  *out = (pf_file_region){s->path, s->dev, s->ino,
                          (uint64_t)((const char *)t->data - (const char *)s->data)};
  return 1;
}

pf_status pf_storage_derived(size_t rows, size_t row_bytes, pf_fill_rows_fn fill, const void *job,
                             pf_storage **out, pf_err *err) {
  *out = NULL;
  if (rows * row_bytes >= PF_SCRATCH_MIN &&
      scratch_build(rows, row_bytes, fill, job, out, NULL) == PF_OK)
    return PF_OK;
  pf_status st = pf_storage_new_heap(rows * row_bytes, out, err);
  if (st == PF_OK) fill(job, 0, (int64_t)rows, (*out)->data);
  return st;
}
