/* tensor.h — dtypes, ref-counted storage and tensor views.
 *
 * A pf_storage is a ref-counted block of bytes: either a read-only mmap of a
 * file region (weights stay on disk until touched) or a heap block.
 * A pf_tensor is a ref-counted, contiguous, row-major view into a storage
 * (offset + shape + dtype). Tensors are immutable once handed out; a tensor
 * whose `data` is NULL and `lazy` is NULL is a *planned* tensor (shape only,
 * used by --dry-run).
 *
 * Lazy tensors. A *lazy* tensor (`lazy` != NULL) is a selection of another
 * tensor's bytes that has not been copied: a parent tensor with data, the kept
 * parent rows and/or columns (elements of a 1-D parent), optionally transposed.
 * Width pruning makes them (pf_tensor_gather_*), and the layout changes below
 * (transpose, concat_rows, rows_view) compose them into one selection of one
 * parent, so a pruned GPT-2 Conv1D or Phi-3 gate_up weight is still one lazy
 * view of the loaded tensors. Their bytes exist only on demand:
 *   - pf_tensor_read / row_f32 / to_f32 gather what they are asked for (any
 *     tensor: planned gives zeros), so the safetensors writer streams a lazy
 *     tensor straight from its parent into the file (no copy, no scratch file),
 *     and hashes, scores, conversions and Lua read it the same way;
 *   - pf_tensor_materialize builds the bytes once (a scratch-file mapping when
 *     large, like the derived tensors below; heap otherwise) and caches them in
 *     the tensor: afterwards `data` and `storage` are set as for any other
 *     tensor. The forward pass materialises every tensor it uses when it is
 *     created (pf_forward_new), so kernels only ever see `data`.
 * Materialising does not change a tensor's logical contents: it is a cache,
 * which is why it accepts a const tensor. It is serialised by a lock, so
 * several threads may call it; `data` is published after the bytes are
 * complete. Code that reads `->data` directly must first call
 * pf_tensor_materialize (or pf_tensor_data) on a tensor that may be lazy.
 */
#ifndef PF_TENSOR_H
#define PF_TENSOR_H

#include "pf.h"

typedef enum pf_dtype { PF_DTYPE_F32 = 0, PF_DTYPE_F16 = 1, PF_DTYPE_BF16 = 2 } pf_dtype;

#define PF_MAX_DIMS 4

size_t pf_dtype_size(pf_dtype dt);
/* Safetensors / Hugging Face spellings: "F32","F16","BF16". */
const char *pf_dtype_st_name(pf_dtype dt);
/* torch spellings for config.json torch_dtype: "float32","float16","bfloat16". */
const char *pf_dtype_torch_name(pf_dtype dt);
/* Accepts both spellings (and "fp32"/"fp16"/"bf16"). PF_ERR_INVALID if unknown. */
pf_status pf_dtype_parse(const char *s, pf_dtype *out, pf_err *err);

/* Exact conversions. float -> half types round to nearest even; NaN stays NaN. */
uint16_t pf_f32_to_f16(float f);
float pf_f16_to_f32(uint16_t h);
uint16_t pf_f32_to_bf16(float f);
float pf_bf16_to_f32(uint16_t h);
/* Convert n values between dtypes (src and dst must not overlap). */
void pf_convert(void *dst, pf_dtype dst_dt, const void *src, pf_dtype src_dt, size_t n);
/* Round n float32 values in place to what `dt` holds (to `dt` and back, round to
 * nearest even): the values of a tensor converted to `dt`. PF_DTYPE_F32: unchanged. */
void pf_round_through(float *x, size_t n, pf_dtype dt);

typedef struct pf_storage pf_storage;

/* Heap storage of `bytes` bytes (zeroed). */
pf_status pf_storage_new_heap(size_t bytes, pf_storage **out, pf_err *err);
/* Heap storage this large or larger is its own 2 MiB-aligned anonymous mapping
 * with huge pages advised (tensor_storage.c says why). */
#define PF_HEAP_HUGE_MIN ((size_t)4 << 20)
/* Zeroed, writable storage of `bytes` in an unlinked scratch file (in
 * pf_scratch_dir(), mapped shared) instead of anonymous memory: its pages are
 * page cache, which the kernel can write out and drop under memory pressure, so
 * results larger than the memory budget do not have to fit in RAM. Slower to
 * fill than heap storage (a page fault per 4 KiB); for what exceeds a budget. */
pf_status pf_storage_new_spill(size_t bytes, pf_storage **out, pf_err *err);
/* Read-only mmap of the whole file. */
pf_status pf_storage_map_file(const char *path, pf_storage **out, pf_err *err);
/* Count s's size in *counter while s lives: added now, subtracted (atomically)
 * when s is freed. For the live bytes of one kind of storage (bias.c's captured
 * activations). Once per storage. */
void pf_storage_account(pf_storage *s, uint64_t *counter);
void pf_storage_retain(pf_storage *s);
void pf_storage_release(pf_storage *s); /* NULL ok */
void *pf_storage_data(pf_storage *s);   /* writable only for heap and spill storage */
size_t pf_storage_size(const pf_storage *s);
const char *pf_storage_path(const pf_storage *s); /* file path for mmap storage, else NULL */
int pf_storage_is_mapped(const pf_storage *s);    /* 1 for file, scratch or spill mappings */
/* For storage mapped from a file (pf_storage_map_file): 1 and out = the identity of the
 * file that was mapped, taken by fstat when it was mapped — device, inode, size,
 * modification and change times — which names these bytes however the path is spelled,
 * and changes when the file is replaced, rewritten or copied elsewhere (cache keys).
 * 0 for other storage. */
int pf_storage_identity(const pf_storage *s, char *out, size_t n);

typedef struct pf_lazy pf_lazy; /* a lazy selection (tensor_lazy.c) */

typedef struct pf_tensor {
  int refcount;
  pf_dtype dtype;
  int ndim;
  int64_t shape[PF_MAX_DIMS];
  pf_storage *storage; /* owned reference; NULL for a planned tensor */
  const void *data;    /* points into storage; NULL for a planned tensor and for a
                          lazy one until it is materialised */
  size_t nbytes;       /* numel * dtype size */
  pf_lazy *lazy;       /* owned; non-NULL for a lazy selection (see above) */
} pf_tensor;

/* New view of `storage` at byte `offset` (retains storage). Checks that the
 * byte range fits inside the storage. */
pf_status pf_tensor_view(pf_storage *storage, size_t offset, pf_dtype dt, int ndim,
                         const int64_t *shape, pf_tensor **out, pf_err *err);
/* New tensor with its own zeroed heap storage. */
pf_status pf_tensor_new(pf_dtype dt, int ndim, const int64_t *shape, pf_tensor **out,
                        pf_err *err);
/* Shape-only tensor (data == NULL), for dry-run plans. */
pf_status pf_tensor_new_planned(pf_dtype dt, int ndim, const int64_t *shape, pf_tensor **out,
                                pf_err *err);
void pf_tensor_retain(pf_tensor *t);
void pf_tensor_release(pf_tensor *t); /* NULL ok */
int64_t pf_tensor_numel(const pf_tensor *t);
/* Writable data of a tensor created by pf_tensor_new (heap); NULL otherwise. */
void *pf_tensor_mutable_data(pf_tensor *t);
/* "[8192, 2048]" into buf; returns buf. */
char *pf_shape_str(int ndim, const int64_t *shape, char *buf, size_t n);

/* 1 for a planned (shape-only) tensor: no data and nothing to gather it from. */
int pf_tensor_is_planned(const pf_tensor *t);
/* 1 for a lazy tensor that has not been materialised (its `data` is NULL). */
int pf_tensor_is_deferred(const pf_tensor *t);
/* Build and cache the bytes of a lazy tensor (no-op for other tensors; planned
 * tensors stay planned). PF_ERR_NOMEM when neither a scratch file nor the heap
 * can hold them; the tensor is unchanged then. */
pf_status pf_tensor_materialize(const pf_tensor *t, pf_err *err);
/* pf_tensor_materialize, then the tensor's data (NULL on failure or when planned). */
const void *pf_tensor_data(const pf_tensor *t, pf_err *err);
/* Elements [first, first + n) of t in row-major order and t's dtype into dst
 * (n * dtype size bytes). Works for every tensor without materialising it: lazy
 * tensors are gathered from their parent, planned tensors give zeros. The range
 * must lie inside the tensor. Cannot fail. */
void pf_tensor_read(const pf_tensor *t, size_t first, size_t n, void *dst);

/* Where a tensor's bytes lie in a file, for copying them file to file
 * (copy_file_range) instead of through the mapping. */
typedef struct pf_file_region {
  const char *path;  /* the file mapped by pf_storage_map_file (borrowed from the storage) */
  uint64_t dev, ino; /* its identity when it was mapped: whoever opens `path` again must
                        check that fstat gives these (the file may have been replaced or
                        unlinked since; then the mapping is the only copy of the bytes) */
  uint64_t offset;   /* byte offset of the tensor's first byte in the file */
} pf_file_region;
/* 1 and *out filled when t's nbytes bytes are a range of a file mapped with
 * pf_storage_map_file (a view of a loaded checkpoint); 0 for heap, scratch,
 * lazy (not materialised) and planned tensors. */
int pf_tensor_file_region(const pf_tensor *t, pf_file_region *out);

/* 1 when t is a lazy tensor (not materialised) made of whole rows of its 2-D
 * parent, in order: output row i is parent row rows[i] (rows NULL: row i).
 * *parent and *rows are borrowed from t. 0 for every other tensor. */
int pf_tensor_lazy_rows(const pf_tensor *t, const pf_tensor **parent, const int64_t **rows);

/* The selection a lazy tensor stands for, materialised or not: its parent (has
 * data, is not lazy), the kept parent rows [*nr] (NULL: all), kept columns or
 * elements [*nc] (NULL: all) and whether it is the transpose. All borrowed from t.
 * 0 for a tensor that is not lazy. */
typedef struct pf_lazy_sel {
  const pf_tensor *parent;
  const int64_t *rows, *cols;
  int64_t nr, nc;
  int transposed;
} pf_lazy_sel;
int pf_tensor_lazy_selection(const pf_tensor *t, pf_lazy_sel *out);

/* Hint that rows [r0, r1) of a 2-D tensor are about to be read: for mapped
 * storage their pages are mapped into this process in one call
 * (MADV_POPULATE_READ), instead of one page fault after another; no-op for
 * other tensors. Never fails, never changes the contents. */
void pf_tensor_prefault_rows(const pf_tensor *t, int64_t r0, int64_t r1);

/* Hint that the tensor's bytes are not needed in memory now: for mapped
 * storage its whole pages are dropped from this process (they stay in the page
 * cache / scratch file and fault back in on the next access); no-op for heap
 * storage and planned tensors; for a lazy tensor not yet materialised, its
 * parent's pages. Never changes the tensor's contents. */
void pf_tensor_release_pages(const pf_tensor *t);
/* The same for the bytes [p, p + n) of t's storage (the whole pages inside them).
 * Both leave tensors under 1 MiB in place (the drop would cost more than it frees). */
void pf_tensor_drop_range(const pf_tensor *t, const void *p, size_t n);

/* The opposite: read a mapped tensor's pages in now (MADV_POPULATE_READ, or on
 * older kernels MADV_WILLNEED and a touch of every page), blocking until they
 * are in memory. For a helper thread that fetches the next layer from disk while this
 * one computes. No-op for heap storage, planned and lazy tensors. Never changes
 * the tensor's contents. */
void pf_tensor_prefetch(const pf_tensor *t);
/* 0: pf_tensor_prefetch takes the older kernels' path (for tests). Default 1. */
extern int pf_tensor_populate_read;

/* Row r of a 2-D tensor (or the whole 1-D tensor when r == 0) as float32. */
void pf_tensor_row_f32(const pf_tensor *t, int64_t r, float *out);
/* Whole tensor as float32 into out[numel]. */
void pf_tensor_to_f32(const pf_tensor *t, float *out);

/* Lazy selections (see "Lazy tensors" above): the same shapes and bytes as the
 * select functions below, without copying anything. Indices are checked and
 * copied; t is retained (through its root parent). Planned in, planned out. */
pf_status pf_tensor_gather_rows(const pf_tensor *t, const int64_t *idx, int64_t k,
                                pf_tensor **out, pf_err *err);
pf_status pf_tensor_gather_cols(const pf_tensor *t, const int64_t *idx, int64_t k,
                                pf_tensor **out, pf_err *err);
pf_status pf_tensor_gather_elems(const pf_tensor *t, const int64_t *idx, int64_t k,
                                 pf_tensor **out, pf_err *err);
/* The transpose of a 2-D tensor as a lazy selection (pf_tensor_transpose copies
 * a tensor that is not lazy). Transposing it back gives a lazy selection of all
 * of t's rows, which the writer copies straight from t's file. */
pf_status pf_tensor_gather_transpose(const pf_tensor *t, pf_tensor **out, pf_err *err);

/* The select functions below return heap tensors, or — when the result is
 * PF_SCRATCH_MIN bytes or more — tensors mapped read-only from an unlinked
 * scratch file (in $PFRUN_SCRATCH, else $TMPDIR, else /var/tmp) filled through a
 * small buffer, so large derived tensors (pruned slices) live in the page cache
 * instead of pinning anonymous memory: a 70B model can be pruned in far less RAM
 * than its pruned size. The source pages they read are released afterwards. */
#define PF_SCRATCH_MIN ((size_t)16 << 20)
/* New 2-D tensor made of rows idx[0..k) of t (same dtype, exact bytes). */
pf_status pf_tensor_select_rows(const pf_tensor *t, const int64_t *idx, int64_t k,
                                pf_tensor **out, pf_err *err);
/* New 2-D tensor made of columns idx[0..k) of t (same dtype, exact bytes). */
pf_status pf_tensor_select_cols(const pf_tensor *t, const int64_t *idx, int64_t k,
                                pf_tensor **out, pf_err *err);
/* New 1-D tensor of elements idx[0..k) (for biases). */
pf_status pf_tensor_select_elems(const pf_tensor *t, const int64_t *idx, int64_t k,
                                 pf_tensor **out, pf_err *err);

/* Rows [r0, r1) of a 1-D or 2-D tensor as a view of the same storage (no copy;
 * planned in, planned out; lazy in, lazy out). */
pf_status pf_tensor_rows_view(const pf_tensor *t, int64_t r0, int64_t r1, pf_tensor **out,
                              pf_err *err);
/* The transpose of a 2-D tensor (exact bytes; heap or scratch like the selections;
 * a lazy tensor gives a lazy transpose). */
pf_status pf_tensor_transpose(const pf_tensor *t, pf_tensor **out, pf_err *err);
/* parts[0..n) (same dtype, same row length) stacked along dim 0. Parts that are
 * adjacent row views of one storage give a view of it (no copy); any planned part
 * gives a planned result; lazy parts (untransposed, same columns) whose parents are
 * one tensor or adjacent row views of one storage give one lazy selection of
 * them; other lazy parts are materialised first. */
pf_status pf_tensor_concat_rows(const pf_tensor *const *parts, int n, pf_tensor **out,
                                pf_err *err);

#endif
