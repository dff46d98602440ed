/* tensor.c — dtypes, conversions and tensor views (see tensor.h); the storage under
 * them is tensor_storage.c.
 *
 * Loads and stores of elements go through memcpy: safetensors data offsets need
 * not be aligned, and memcpy of 2/4 bytes compiles to a plain unaligned move.
 */
#include "tensor.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tensor_int.h"

#ifdef __F16C__
#include <immintrin.h>
#endif

const char pf_tensor_empty_bytes[8];
#define pf_empty_bytes pf_tensor_empty_bytes

/* ---- dtypes ---- */

size_t pf_dtype_size(pf_dtype dt) {
  return dt == PF_DTYPE_F32 ? 4 : 2;
}

const char *pf_dtype_st_name(pf_dtype dt) {
  switch (dt) {
  case PF_DTYPE_F32:
    return "F32";
  case PF_DTYPE_F16:
    return "F16";
  case PF_DTYPE_BF16:
    return "BF16";
  }
  return "?";
}

const char *pf_dtype_torch_name(pf_dtype dt) {
  switch (dt) {
  case PF_DTYPE_F32:
    return "float32";
  case PF_DTYPE_F16:
    return "float16";
  case PF_DTYPE_BF16:
    return "bfloat16";
  }
  return "?";
}

pf_status pf_dtype_parse(const char *s, pf_dtype *out, pf_err *err) {
  static const struct {
    const char *name;
    pf_dtype dt;
  } names[] = {{"F32", PF_DTYPE_F32},       {"float32", PF_DTYPE_F32}, {"fp32", PF_DTYPE_F32},
               {"float", PF_DTYPE_F32},     {"F16", PF_DTYPE_F16},     {"float16", PF_DTYPE_F16},
               {"fp16", PF_DTYPE_F16},      {"half", PF_DTYPE_F16},    {"BF16", PF_DTYPE_BF16},
               {"bfloat16", PF_DTYPE_BF16}, {"bf16", PF_DTYPE_BF16}};
  for (size_t i = 0; s && i < sizeof names / sizeof names[0]; i++) {
    if (strcasecmp(s, names[i].name) == 0) {
      *out = names[i].dt;
      return PF_OK;
    }
  }
  return pf_err_set(err, PF_ERR_INVALID,
                    "dtype '%s': expected one of float32, float16, bfloat16 (F32, F16, BF16)",
                    s ? s : "(null)");
}

/* ---- conversions ---- */

static inline uint32_t f32_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}

static inline float bits_f32(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}

uint16_t pf_f32_to_bf16(float f) {
  uint32_t u = f32_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x0040u); /* quiet NaN */
  u += 0x7fffu + ((u >> 16) & 1u); /* round to nearest, ties to even; overflows to inf */
  return (uint16_t)(u >> 16);
}

float pf_bf16_to_f32(uint16_t h) {
  return bits_f32((uint32_t)h << 16);
}

uint16_t pf_f32_to_f16(float f) {
  uint32_t u = f32_bits(f);
  uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
  uint32_t x = u & 0x7fffffffu;
  if (x > 0x7f800000u) return (uint16_t)(sign | 0x7e00u | ((x >> 13) & 0x3ffu)); /* NaN */
  if (x >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* >= 65520 rounds to inf */
  if (x >= 0x38800000u) {                                  /* normal half */
    x += 0xfffu + ((x >> 13) & 1u);
    return (uint16_t)(sign | ((x - 0x38000000u) >> 13));
  }
  /* subnormal half: value = mant * 2^(e-150); in units of 2^-24 that is mant >> (126-e) */
  uint32_t e = x >> 23;
  uint32_t shift = 126u - e;
  if (shift > 24) return sign; /* below 2^-25: rounds to zero */
  uint32_t mant = (x & 0x7fffffu) | 0x800000u;
  uint32_t q = mant >> shift, r = mant & ((1u << shift) - 1u), half = 1u << (shift - 1);
  if (r > half || (r == half && (q & 1u))) q++;
  return (uint16_t)(sign | q);
}

float pf_f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
  if (e == 31) return bits_f32(sign | 0x7f800000u | (m ? 0x400000u | (m << 13) : 0));
  if (e == 0) {
    float v = (float)m * 0x1p-24f; /* exact: m < 2^10 */
    return sign ? -v : v;
  }
  return bits_f32(sign | ((e + 112u) << 23) | (m << 13));
}

static void f16_to_f32_n(float *dst, const unsigned char *src, size_t n) {
  size_t i = 0;
#ifdef __F16C__
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + 2 * i))));
#endif
  for (; i < n; i++) {
    uint16_t h;
    memcpy(&h, src + 2 * i, 2);
    dst[i] = pf_f16_to_f32(h);
  }
}

static void f32_to_f16_n(unsigned char *dst, const float *src, size_t n) {
  size_t i = 0;
#ifdef __F16C__
  for (; i + 8 <= n; i += 8)
    _mm_storeu_si128((__m128i *)(dst + 2 * i),
                     _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
#endif
  for (; i < n; i++) {
    uint16_t h = pf_f32_to_f16(src[i]);
    memcpy(dst + 2 * i, &h, 2);
  }
}

static void bf16_to_f32_n(float *dst, const unsigned char *src, size_t n) {
  for (size_t i = 0; i < n; i++) {
    uint16_t h;
    memcpy(&h, src + 2 * i, 2);
    dst[i] = pf_bf16_to_f32(h);
  }
}

static void f32_to_bf16_n(unsigned char *dst, const float *src, size_t n) {
  for (size_t i = 0; i < n; i++) {
    uint16_t h = pf_f32_to_bf16(src[i]);
    memcpy(dst + 2 * i, &h, 2);
  }
}

/* src (any dtype) -> float32 dst (aligned float array owned by us or the caller). */
static void to_f32_n(float *dst, const void *src, pf_dtype dt, size_t n) {
  switch (dt) {
  case PF_DTYPE_F32:
    memcpy(dst, src, n * 4);
    break;
  case PF_DTYPE_F16:
    f16_to_f32_n(dst, src, n);
    break;
  case PF_DTYPE_BF16:
    bf16_to_f32_n(dst, src, n);
    break;
  }
}

static void from_f32_n(void *dst, pf_dtype dt, const float *src, size_t n) {
  switch (dt) {
  case PF_DTYPE_F32:
    memcpy(dst, src, n * 4);
    break;
  case PF_DTYPE_F16:
    f32_to_f16_n(dst, src, n);
    break;
  case PF_DTYPE_BF16:
    f32_to_bf16_n(dst, src, n);
    break;
  }
}

void pf_round_through(float *x, size_t n, pf_dtype dt) {
  if (dt == PF_DTYPE_BF16)
    for (size_t i = 0; i < n; i++)
      x[i] = pf_bf16_to_f32(pf_f32_to_bf16(x[i]));
  else if (dt == PF_DTYPE_F16)
    for (size_t i = 0; i < n; i++)
      x[i] = pf_f16_to_f32(pf_f32_to_f16(x[i]));
}

void pf_convert(void *dst, pf_dtype dst_dt, const void *src, pf_dtype src_dt, size_t n) {
  if (dst_dt == src_dt) {
    memcpy(dst, src, n * pf_dtype_size(dst_dt));
    return;
  }
  if (dst_dt == PF_DTYPE_F32 && ((uintptr_t)dst & 3u) == 0) {
    to_f32_n(dst, src, src_dt, n);
    return;
  }
  if (src_dt == PF_DTYPE_F32 && ((uintptr_t)src & 3u) == 0) {
    from_f32_n(dst, dst_dt, src, n);
    return;
  }
  /* half <-> half, or unaligned float32: go through a float32 block on the stack */
  float tmp[256];
  unsigned char *d = dst;
  const unsigned char *s = src;
  size_t dsz = pf_dtype_size(dst_dt), ssz = pf_dtype_size(src_dt);
  for (size_t i = 0; i < n; i += 256) {
    size_t k = n - i < 256 ? n - i : 256;
    if (src_dt == PF_DTYPE_F32)
      memcpy(tmp, s + i * ssz, k * 4);
    else
      to_f32_n(tmp, s + i * ssz, src_dt, k);
    if (dst_dt == PF_DTYPE_F32)
      memcpy(d + i * dsz, tmp, k * 4);
    else
      from_f32_n(d + i * dsz, dst_dt, tmp, k);
  }
}

/* ---- tensors ---- */

char *pf_shape_str(int ndim, const int64_t *shape, char *buf, size_t n) {
  if (!buf || n == 0) return buf;
  size_t len = 0;
  buf[0] = '\0';
  len += (size_t)snprintf(buf, n, "[");
  for (int i = 0; i < ndim && len < n; i++)
    len += (size_t)snprintf(buf + len, n - len, "%s%lld", i ? ", " : "", (long long)shape[i]);
  if (len < n) snprintf(buf + len, n - len, "]");
  return buf;
}

/* Validate ndim/shape and compute the byte size. */
static pf_status shape_bytes(pf_dtype dt, int ndim, const int64_t *shape, size_t *nbytes,
                             pf_err *err) {
  if (dt != PF_DTYPE_F32 && dt != PF_DTYPE_F16 && dt != PF_DTYPE_BF16)
    return pf_err_set(err, PF_ERR_INVALID, "tensor: unknown dtype %d", (int)dt);
  if (ndim < 0 || ndim > PF_MAX_DIMS || (ndim > 0 && !shape))
    return pf_err_set(err, PF_ERR_INVALID, "tensor: expected 0..%d dimensions, got %d", PF_MAX_DIMS,
                      ndim);
  uint64_t bytes = pf_dtype_size(dt);
  for (int i = 0; i < ndim; i++) {
    char sb[128];
    if (shape[i] < 0)
      return pf_err_set(err, PF_ERR_INVALID, "tensor shape %s: negative dimension %d",
                        pf_shape_str(ndim, shape, sb, sizeof sb), i);
    if (shape[i] > 0 && bytes > (uint64_t)SIZE_MAX / (uint64_t)shape[i])
      return pf_err_set(err, PF_ERR_INVALID, "tensor shape %s: byte size overflows",
                        pf_shape_str(ndim, shape, sb, sizeof sb));
    bytes *= (uint64_t)shape[i];
  }
  *nbytes = (size_t)bytes;
  return PF_OK;
}

static pf_tensor *tensor_alloc(pf_dtype dt, int ndim, const int64_t *shape, size_t nbytes) {
  pf_tensor *t = calloc(1, sizeof *t);
  if (!t) return NULL;
  t->refcount = 1;
  t->dtype = dt;
  t->ndim = ndim;
  for (int i = 0; i < ndim; i++)
    t->shape[i] = shape[i];
  t->nbytes = nbytes;
  return t;
}

pf_status pf_tensor_view(pf_storage *storage, size_t offset, pf_dtype dt, int ndim,
                         const int64_t *shape, pf_tensor **out, pf_err *err) {
  *out = NULL;
  size_t nbytes;
  pf_status s = shape_bytes(dt, ndim, shape, &nbytes, err);
  if (s != PF_OK) return s;
  if (!storage) return pf_err_set(err, PF_ERR_INVALID, "tensor view: NULL storage");
  size_t size = storage->size;
  if (offset > size || nbytes > size - offset) {
    char sb[128];
    const char *what = storage->path ? storage->path : "heap storage";
    return pf_err_set(
        err, PF_ERR_INVALID, "%s: view %s %s at offset %zu needs %zu bytes, storage has %zu", what,
        pf_dtype_st_name(dt), pf_shape_str(ndim, shape, sb, sizeof sb), offset, nbytes, size);
  }
  pf_tensor *t = tensor_alloc(dt, ndim, shape, nbytes);
  if (!t) return pf_err_set(err, PF_ERR_NOMEM, "tensor view: out of memory");
  pf_storage_retain(storage);
  t->storage = storage;
  t->data = storage->data ? (const char *)storage->data + offset : pf_empty_bytes;
  *out = t;
  return PF_OK;
}

pf_status pf_tensor_new(pf_dtype dt, int ndim, const int64_t *shape, pf_tensor **out, pf_err *err) {
  *out = NULL;
  size_t nbytes = 0;
  pf_status s = shape_bytes(dt, ndim, shape, &nbytes, err);
  if (s != PF_OK) return s;
  pf_storage *st = NULL;
  s = pf_storage_new_heap(nbytes, &st, err);
  if (s != PF_OK) return s;
  s = pf_tensor_view(st, 0, dt, ndim, shape, out, err);
  pf_storage_release(st); /* the tensor holds the only reference now */
  return s;
}

pf_status pf_tensor_new_planned(pf_dtype dt, int ndim, const int64_t *shape, pf_tensor **out,
                                pf_err *err) {
  *out = NULL;
  size_t nbytes;
  pf_status s = shape_bytes(dt, ndim, shape, &nbytes, err);
  if (s != PF_OK) return s;
  pf_tensor *t = tensor_alloc(dt, ndim, shape, nbytes);
  if (!t) return pf_err_set(err, PF_ERR_NOMEM, "planned tensor: out of memory");
  *out = t;
  return PF_OK;
}

void pf_tensor_retain(pf_tensor *t) {
  if (t) t->refcount++;
}

void pf_tensor_release(pf_tensor *t) {
  if (!t || t->refcount <= 0) return;
  if (--t->refcount > 0) return;
  pf_storage_release(t->storage);
  pf_lazy_free(t->lazy);
  free(t);
}

int64_t pf_tensor_numel(const pf_tensor *t) {
  if (!t) return 0;
  int64_t n = 1;
  for (int i = 0; i < t->ndim; i++)
    n *= t->shape[i];
  return n;
}

void *pf_tensor_mutable_data(pf_tensor *t) {
  if (!t || t->lazy || !t->data || !t->storage || (t->storage->is_mmap && !t->storage->writable))
    return NULL;
  return (void *)t->data;
}

/* Rows and row length of t seen as a matrix [shape0, prod(rest)] (1-D: one row). */
static void as_matrix(const pf_tensor *t, int64_t *rows, int64_t *cols) {
  if (t->ndim <= 1) {
    *rows = 1;
    *cols = t->ndim == 1 ? t->shape[0] : 1;
    return;
  }
  *rows = t->shape[0];
  *cols = pf_tensor_numel(t) / (t->shape[0] ? t->shape[0] : 1);
  if (t->shape[0] == 0) *cols = 0;
}

int pf_tensor_is_planned(const pf_tensor *t) {
  return t && !t->lazy && !__atomic_load_n(&t->data, __ATOMIC_ACQUIRE);
}

int pf_tensor_is_deferred(const pf_tensor *t) {
  return t && t->lazy && !__atomic_load_n(&t->data, __ATOMIC_ACQUIRE);
}

void pf_tensor_read(const pf_tensor *t, size_t first, size_t n, void *dst) {
  const size_t esz = t ? pf_dtype_size(t->dtype) : 0;
  const void *d = t ? __atomic_load_n(&t->data, __ATOMIC_ACQUIRE) : NULL;
  if (!t || n == 0) return;
  if (d)
    memcpy(dst, (const char *)d + first * esz, n * esz);
  else if (t->lazy)
    pf_lazy_read(t, first, n, dst);
  else
    memset(dst, 0, n * esz);
}

/* Elements [first, first + n) of a lazy tensor as float32, through a small
 * stack buffer (row_f32 and to_f32 cannot fail, so they cannot allocate). */
static void lazy_to_f32(const pf_tensor *t, size_t first, size_t n, float *out) {
  _Alignas(8) unsigned char buf[4096];
  const size_t step = sizeof buf / pf_dtype_size(t->dtype);
  for (size_t i = 0; i < n; i += step) {
    size_t k = n - i < step ? n - i : step;
    pf_tensor_read(t, first + i, k, buf);
    to_f32_n(out + i, buf, t->dtype, k);
  }
}

/* Out-of-range rows and planned tensors give zeros (the function cannot fail). */
void pf_tensor_row_f32(const pf_tensor *t, int64_t r, float *out) {
  int64_t rows, cols;
  if (!t || !out) return;
  as_matrix(t, &rows, &cols);
  if (pf_tensor_is_planned(t) || r < 0 || r >= rows) {
    memset(out, 0, (size_t)cols * sizeof *out);
    return;
  }
  size_t esz = pf_dtype_size(t->dtype);
  if (!t->data) {
    lazy_to_f32(t, (size_t)r * (size_t)cols, (size_t)cols, out);
    return;
  }
  to_f32_n(out, (const char *)t->data + (size_t)r * (size_t)cols * esz, t->dtype, (size_t)cols);
}

void pf_tensor_to_f32(const pf_tensor *t, float *out) {
  if (!t || !out) return;
  size_t n = (size_t)pf_tensor_numel(t);
  if (pf_tensor_is_planned(t)) {
    memset(out, 0, n * sizeof *out);
    return;
  }
  if (!t->data) {
    lazy_to_f32(t, 0, n, out);
    return;
  }
  to_f32_n(out, t->data, t->dtype, n);
}

/* ---- selections ---- */

static pf_status check_indices(const char *op, const pf_tensor *t, const int64_t *idx, int64_t k,
                               int64_t limit, pf_err *err) {
  char sb[128];
  if (k < 0 || (k > 0 && !idx))
    return pf_err_set(err, PF_ERR_INVALID, "%s: expected k >= 0 indices, got %lld", op,
                      (long long)k);
  for (int64_t i = 0; i < k; i++) {
    if (idx[i] < 0 || idx[i] >= limit)
      return pf_err_set(err, PF_ERR_INVALID,
                        "%s: index %lld (position %lld) out of range [0, %lld) for shape %s", op,
                        (long long)idx[i], (long long)i, (long long)limit,
                        pf_shape_str(t->ndim, t->shape, sb, sizeof sb));
  }
  return PF_OK;
}

static pf_status check_ndim(const char *op, const pf_tensor *t, int ndim, pf_err *err) {
  char sb[128];
  if (!t) return pf_err_set(err, PF_ERR_INVALID, "%s: NULL tensor", op);
  if (t->ndim != ndim)
    return pf_err_set(err, PF_ERR_INVALID, "%s: expected a %d-D tensor, got shape %s", op, ndim,
                      pf_shape_str(t->ndim, t->shape, sb, sizeof sb));
  return PF_OK;
}

/* A derived 2-D tensor of `rows` x `cols` (dtype of t) filled by `fill`: planned
 * when t is planned (dry runs), a scratch-file mapping when large (see
 * PF_SCRATCH_MIN in tensor.h; falls back to the heap when no scratch file can be
 * made), else heap. The source pages read are released afterwards. */
static pf_status derive(const pf_tensor *t, int ndim, const int64_t *shape, pf_fill_rows_fn fill,
                        const void *job, pf_tensor **out, pf_err *err) {
  if (!t->data) return pf_tensor_new_planned(t->dtype, ndim, shape, out, err);
  size_t rows = ndim == 2 ? (size_t)shape[0] : 1;
  size_t row_bytes = (size_t)shape[ndim - 1] * pf_dtype_size(t->dtype);
  pf_storage *s = NULL;
  pf_status st = pf_storage_derived(rows, row_bytes, fill, job, &s, err);
  if (st == PF_OK) st = pf_tensor_view(s, 0, t->dtype, ndim, shape, out, err);
  pf_storage_release(s); /* the view holds it */
  if (st == PF_OK) pf_tensor_release_pages(t);
  return st;
}

typedef struct gather_job {
  const char *src;
  int64_t src_cols; /* elements per source row */
  const int64_t *idx;
  int64_t k;
  size_t esz;
} gather_job;

/* Output row i = source row idx[i]. */
static void fill_rows(const void *vj, int64_t r0, int64_t r1, char *dst) {
  const gather_job *j = vj;
  size_t row = (size_t)j->src_cols * j->esz;
  for (int64_t i = r0; i < r1; i++)
    memcpy(dst + (size_t)(i - r0) * row, j->src + (size_t)j->idx[i] * row, row);
}

/* Output row r = source row r at columns idx[0..k). */
static void fill_cols(const void *vj, int64_t r0, int64_t r1, char *dst) {
  const gather_job *j = vj;
  const size_t esz = j->esz;
  const int64_t k = j->k;
#pragma omp parallel for schedule(static) if ((r1 - r0) * k > (1 << 20))
  for (int64_t r = r0; r < r1; r++) {
    const char *s = j->src + (size_t)r * (size_t)j->src_cols * esz;
    char *d = dst + (size_t)(r - r0) * (size_t)k * esz;
    if (esz == 2) {
      for (int64_t c = 0; c < k; c++)
        memcpy(d + 2 * c, s + 2 * j->idx[c], 2);
    } else {
      for (int64_t c = 0; c < k; c++)
        memcpy(d + 4 * c, s + 4 * j->idx[c], 4);
    }
  }
}

pf_status pf_tensor_select_rows(const pf_tensor *t, const int64_t *idx, int64_t k, pf_tensor **out,
                                pf_err *err) {
  *out = NULL;
  pf_status s = check_ndim("select_rows", t, 2, err);
  if (s == PF_OK) s = pf_tensor_materialize(t, err);
  if (s == PF_OK) s = check_indices("select_rows", t, idx, k, t->shape[0], err);
  if (s != PF_OK) return s;
  int64_t shape[2] = {k, t->shape[1]};
  gather_job j = {t->data, t->shape[1], idx, k, pf_dtype_size(t->dtype)};
  return derive(t, 2, shape, fill_rows, &j, out, err);
}

pf_status pf_tensor_select_cols(const pf_tensor *t, const int64_t *idx, int64_t k, pf_tensor **out,
                                pf_err *err) {
  *out = NULL;
  pf_status s = check_ndim("select_cols", t, 2, err);
  if (s == PF_OK) s = pf_tensor_materialize(t, err);
  if (s == PF_OK) s = check_indices("select_cols", t, idx, k, t->shape[1], err);
  if (s != PF_OK) return s;
  int64_t shape[2] = {t->shape[0], k};
  gather_job j = {t->data, t->shape[1], idx, k, pf_dtype_size(t->dtype)};
  return derive(t, 2, shape, fill_cols, &j, out, err);
}

pf_status pf_tensor_select_elems(const pf_tensor *t, const int64_t *idx, int64_t k, pf_tensor **out,
                                 pf_err *err) {
  *out = NULL;
  pf_status s = check_ndim("select_elems", t, 1, err);
  if (s == PF_OK) s = pf_tensor_materialize(t, err);
  if (s == PF_OK) s = check_indices("select_elems", t, idx, k, t->shape[0], err);
  if (s != PF_OK) return s;
  gather_job j = {t->data, t->shape[0], idx, k, pf_dtype_size(t->dtype)};
  return derive(t, 1, &k, fill_cols, &j, out, err);
}

/* ---- lazy selections (tensor_lazy.c) ---- */

pf_status pf_tensor_gather_rows(const pf_tensor *t, const int64_t *idx, int64_t k,
                                pf_tensor **out, pf_err *err) {
  *out = NULL;
  pf_status s = check_ndim("gather_rows", t, 2, err);
  if (s == PF_OK) s = check_indices("gather_rows", t, idx, k, t->shape[0], err);
  if (s != PF_OK) return s;
  int64_t shape[2] = {k, t->shape[1]};
  if (pf_tensor_is_planned(t)) return pf_tensor_new_planned(t->dtype, 2, shape, out, err);
  return pf_lazy_select(t, idx, k, NULL, 0, 0, out, err);
}

pf_status pf_tensor_gather_cols(const pf_tensor *t, const int64_t *idx, int64_t k,
                                pf_tensor **out, pf_err *err) {
  *out = NULL;
  pf_status s = check_ndim("gather_cols", t, 2, err);
  if (s == PF_OK) s = check_indices("gather_cols", t, idx, k, t->shape[1], err);
  if (s != PF_OK) return s;
  int64_t shape[2] = {t->shape[0], k};
  if (pf_tensor_is_planned(t)) return pf_tensor_new_planned(t->dtype, 2, shape, out, err);
  return pf_lazy_select(t, NULL, 0, idx, k, 0, out, err);
}

pf_status pf_tensor_gather_elems(const pf_tensor *t, const int64_t *idx, int64_t k,
                                 pf_tensor **out, pf_err *err) {
  *out = NULL;
  pf_status s = check_ndim("gather_elems", t, 1, err);
  if (s == PF_OK) s = check_indices("gather_elems", t, idx, k, t->shape[0], err);
  if (s != PF_OK) return s;
  if (pf_tensor_is_planned(t)) return pf_tensor_new_planned(t->dtype, 1, &k, out, err);
  return pf_lazy_select(t, NULL, 0, idx, k, 0, out, err);
}

pf_status pf_tensor_gather_transpose(const pf_tensor *t, pf_tensor **out, pf_err *err) {
  *out = NULL;
  pf_status s = check_ndim("gather_transpose", t, 2, err);
  if (s != PF_OK) return s;
  int64_t shape[2] = {t->shape[1], t->shape[0]};
  if (pf_tensor_is_planned(t)) return pf_tensor_new_planned(t->dtype, 2, shape, out, err);
  return pf_lazy_select(t, NULL, 0, NULL, 0, 1, out, err);
}

/* ---- layout changes (model families that store fused or transposed weights) ---- */

pf_status pf_tensor_rows_view(const pf_tensor *t, int64_t r0, int64_t r1, pf_tensor **out,
                              pf_err *err) {
  *out = NULL;
  char sb[128];
  if (!t || t->ndim < 1 || t->ndim > 2 || r0 < 0 || r1 < r0 || r1 > t->shape[0])
    return pf_err_set(err, PF_ERR_INVALID, "rows_view: expected rows [%lld, %lld) of shape %s",
                      (long long)r0, (long long)r1,
                      t ? pf_shape_str(t->ndim, t->shape, sb, sizeof sb) : "(null)");
  int64_t shape[2] = {r1 - r0, t->ndim == 2 ? t->shape[1] : 0};
  if (t->lazy) return pf_lazy_rows_view(t, r0, r1, out, err);
  if (!t->data) return pf_tensor_new_planned(t->dtype, t->ndim, shape, out, err);
  const size_t row = (t->ndim == 2 ? (size_t)t->shape[1] : 1) * pf_dtype_size(t->dtype);
  const size_t off = (size_t)((const char *)t->data - (const char *)pf_storage_data(t->storage));
  return pf_tensor_view(t->storage, off + (size_t)r0 * row, t->dtype, t->ndim, shape, out, err);
}

typedef struct transpose_job {
  const char *src;
  int64_t rows, cols; /* of the source */
  size_t esz;
} transpose_job;

/* Output row r (= source column r) for r in [r0, r1). */
static void fill_transpose(const void *vj, int64_t r0, int64_t r1, char *dst) {
  const transpose_job *j = vj;
  const size_t esz = j->esz;
#pragma omp parallel for schedule(static) if ((r1 - r0) * j->rows > (1 << 20))
  for (int64_t r = r0; r < r1; r++) {
    char *d = dst + (size_t)(r - r0) * (size_t)j->rows * esz;
    for (int64_t c = 0; c < j->rows; c++)
      memcpy(d + (size_t)c * esz, j->src + ((size_t)c * (size_t)j->cols + (size_t)r) * esz, esz);
  }
}

pf_status pf_tensor_transpose(const pf_tensor *t, pf_tensor **out, pf_err *err) {
  *out = NULL;
  pf_status s = check_ndim("transpose", t, 2, err);
  if (s != PF_OK) return s;
  if (t->lazy) return pf_lazy_transpose(t, out, err);
  int64_t shape[2] = {t->shape[1], t->shape[0]};
  transpose_job j = {t->data, t->shape[0], t->shape[1], pf_dtype_size(t->dtype)};
  return derive(t, 2, shape, fill_transpose, &j, out, err);
}

typedef struct concat_job {
  const pf_tensor *const *parts;
  int n;
  size_t row; /* bytes per row */
} concat_job;

static void fill_concat(const void *vj, int64_t r0, int64_t r1, char *dst) {
  const concat_job *j = vj;
  int64_t base = 0;
  for (int p = 0; p < j->n; p++) {
    const pf_tensor *t = j->parts[p];
    const int64_t rows = t->ndim == 2 ? t->shape[0] : 1;
    const int64_t a = r0 > base ? r0 : base, b = r1 < base + rows ? r1 : base + rows;
    if (a < b)
      memcpy(dst + (size_t)(a - r0) * j->row, (const char *)t->data + (size_t)(a - base) * j->row,
             (size_t)(b - a) * j->row);
    base += rows;
  }
}

pf_status pf_tensor_concat_rows(const pf_tensor *const *parts, int n, pf_tensor **out,
                                pf_err *err) {
  *out = NULL;
  char sa[128], sb[128];
  if (n < 1 || !parts[0] || parts[0]->ndim < 1 || parts[0]->ndim > 2)
    return pf_err_set(err, PF_ERR_INVALID, "concat_rows: expected 1-D or 2-D tensors");
  const pf_tensor *t0 = parts[0];
  int planned = 0, adjacent = 1, lazy = 0;
  int64_t rows = 0;
  for (int i = 0; i < n; i++) {
    const pf_tensor *t = parts[i];
    if (!t || t->ndim != t0->ndim || t->dtype != t0->dtype ||
        (t0->ndim == 2 && t->shape[1] != t0->shape[1]))
      return pf_err_set(err, PF_ERR_INVALID, "concat_rows: part %d: expected shape [*, %lld] of %s, got %s",
                        i, (long long)(t0->ndim == 2 ? t0->shape[1] : 0),
                        pf_shape_str(t0->ndim, t0->shape, sa, sizeof sa),
                        t ? pf_shape_str(t->ndim, t->shape, sb, sizeof sb) : "(null)");
    planned |= pf_tensor_is_planned(t);
    lazy |= t->lazy != NULL;
    if (i > 0 && (!t->data || t->storage != t0->storage ||
                  (const char *)parts[i - 1]->data + parts[i - 1]->nbytes != t->data))
      adjacent = 0;
    rows += t->shape[0];
  }
  int64_t shape[2] = {rows, t0->ndim == 2 ? t0->shape[1] : 0};
  if (planned) return pf_tensor_new_planned(t0->dtype, t0->ndim, shape, out, err);
  if (lazy) {
    pf_status st = PF_OK;
    if (pf_lazy_concat(parts, n, out, &st, err)) return st;
    for (int i = 0; i < n; i++) /* no common parent: copy, as for other parts */
      if ((st = pf_tensor_materialize(parts[i], err)) != PF_OK) return st;
  }
  if (adjacent) { /* row views of one block, side by side: the block itself */
    const size_t off = (size_t)((const char *)t0->data - (const char *)pf_storage_data(t0->storage));
    return pf_tensor_view(t0->storage, off, t0->dtype, t0->ndim, shape, out, err);
  }
  if (t0->ndim == 1) { /* biases: small, on the heap */
    int64_t one[1] = {rows};
    pf_tensor *tmp = NULL;
    pf_status s = pf_tensor_new(t0->dtype, 1, one, &tmp, err);
    if (s != PF_OK) return s;
    char *d = pf_tensor_mutable_data(tmp);
    for (int i = 0; i < n; i++) {
      memcpy(d, parts[i]->data, parts[i]->nbytes);
      d += parts[i]->nbytes;
    }
    *out = tmp;
    return PF_OK;
  }
  concat_job j = {parts, n, (size_t)t0->shape[1] * pf_dtype_size(t0->dtype)};
  return derive(t0, 2, shape, fill_concat, &j, out, err);
}
