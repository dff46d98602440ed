/* safetensors_write.c — the streaming, sharding safetensors writer and pf_parse_size
 * (see safetensors.h). Tensors are written straight from their storage; lazy
 * tensors (pruned selections, tensor.h) are gathered from their parent, and
 * tensors written in another dtype are converted, through small reusable
 * buffers, so every output byte is written once, into the file. */
#include "safetensors.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <omp.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"
#include "safetensors_int.h"
#include "strbuf.h"

/* ---- writer ---- */

typedef struct st_shard {
  size_t first, count;
  uint64_t bytes;
} st_shard;

/* What a tensor becomes in the file: `as` (converted) or its own dtype. */
static pf_dtype out_dtype(const pf_tensor *t, const pf_dtype *as) {
  return as ? *as : t->dtype;
}
static uint64_t out_bytes(const pf_tensor *t, const pf_dtype *as) {
  return as ? (uint64_t)pf_tensor_numel(t) * pf_dtype_size(*as) : t->nbytes;
}

/* Hugging Face (transformers shard_checkpoint) order-preserving split: start a
 * new shard when the next tensor would tip the current one over the limit and
 * the current one is not empty. max == 0 means no limit. */
static pf_status plan_shards(const pf_st_entry *e, size_t n, const pf_dtype *as, uint64_t max,
                             st_shard **out, size_t *nout, pf_err *err) {
  st_shard *v = calloc(n ? n : 1, sizeof *v);
  if (!v) return pf_err_set(err, PF_ERR_NOMEM, "save: out of memory");
  size_t k = 1;
  for (size_t i = 0; i < n; i++) {
    uint64_t b = out_bytes(e[i].tensor, as);
    if (max && v[k - 1].count > 0 && v[k - 1].bytes + b > max) v[k++].first = i;
    v[k - 1].count++;
    v[k - 1].bytes += b;
  }
  *out = v;
  *nout = k;
  return PF_OK;
}

static pf_status check_entries(const char *dir, const pf_st_entry *e, size_t n, pf_err *err) {
  if (!pf_is_dir(dir)) return pf_err_set(err, PF_ERR_IO, "%s: output folder does not exist", dir);
  if (n && !e) return pf_err_set(err, PF_ERR_INVALID, "save: NULL entries");
  const char **names = calloc(n ? n : 1, sizeof *names);
  if (!names) return pf_err_set(err, PF_ERR_NOMEM, "save: out of memory");
  pf_status s = PF_OK;
  for (size_t i = 0; s == PF_OK && i < n; i++) {
    const char *nm = e[i].name;
    if (!nm || !*nm || !strcmp(nm, "__metadata__"))
      s = pf_err_set(err, PF_ERR_INVALID, "save: entry %zu: invalid tensor name '%s'", i,
                     nm ? nm : "(null)");
    else if (!e[i].tensor)
      s = pf_err_set(err, PF_ERR_INVALID, "save: tensor '%s': NULL tensor", nm);
    else if (pf_tensor_is_planned(e[i].tensor))
      s = pf_err_set(err, PF_ERR_INVALID,
                     "save: tensor '%s': planned tensor (no data) cannot be written", nm);
    names[i] = nm;
  }
  if (s == PF_OK) {
    qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 1; i < n && s == PF_OK; i++)
      if (!strcmp(names[i - 1], names[i]))
        s = pf_err_set(err, PF_ERR_INVALID, "save: tensor '%s' appears twice", names[i]);
  }
  free(names);
  return s;
}

/* cJSON raw array of integers, e.g. [2048,8192] (exact: no doubles involved). */
static cJSON *raw_ints(const uint64_t *v, int n) {
  char buf[32 * (PF_MAX_DIMS + 2)];
  size_t len = 0;
  buf[len++] = '[';
  for (int i = 0; i < n; i++)
    len += (size_t)snprintf(buf + len, sizeof buf - len, "%s%llu", i ? "," : "",
                            (unsigned long long)v[i]);
  snprintf(buf + len, sizeof buf - len, "]");
  return cJSON_CreateRaw(buf);
}

/* Compact JSON header padded with spaces to a multiple of 8 bytes (malloc'd). */
/* Attach item to obj under key; the item is deleted when that fails (cJSON
 * leaves it with the caller when it cannot copy the key). 0 on failure. */
static int add_owned(cJSON *obj, const char *key, cJSON *item) {
  if (obj && item && cJSON_AddItemToObject(obj, key, item)) return 1;
  cJSON_Delete(item);
  return 0;
}

static char *build_header(const pf_st_entry *e, size_t n, const pf_dtype *as, size_t *len) {
  cJSON *root = cJSON_CreateObject(), *meta = cJSON_CreateObject();
  int ok = root && meta && cJSON_AddStringToObject(meta, "format", "pt");
  ok = add_owned(ok ? root : NULL, "__metadata__", meta) && ok;
  uint64_t off = 0;
  for (size_t i = 0; ok && i < n; i++) {
    const pf_tensor *t = e[i].tensor;
    const uint64_t nb = out_bytes(t, as);
    uint64_t shape[PF_MAX_DIMS], range[2] = {off, off + nb};
    for (int d = 0; d < t->ndim; d++)
      shape[d] = (uint64_t)t->shape[d];
    off += nb;
    cJSON *o = cJSON_CreateObject();
    ok = add_owned(root, e[i].name, o) &&
         cJSON_AddStringToObject(o, "dtype", pf_dtype_st_name(out_dtype(t, as))) &&
         add_owned(o, "shape", raw_ints(shape, t->ndim)) &&
         add_owned(o, "data_offsets", raw_ints(range, 2));
  }
  char *json = ok ? cJSON_PrintUnformatted(root) : NULL;
  cJSON_Delete(root);
  if (!json) return NULL;
  size_t jl = strlen(json), padded = (jl + 7) & ~(size_t)7;
  char *h = realloc(json, padded + 1);
  if (!h) {
    free(json);
    return NULL;
  }
  memset(h + jl, ' ', padded - jl);
  h[padded] = '\0';
  *len = padded;
  return h;
}

/* ---- writing tensors ----
 *
 * Why it is built this way: on a warm page cache a save is CPU-bound (the
 * kernel copying pages, page faults on the mapped input, gathers), not
 * disk-bound, so
 *   - bytes that are a range of an input file (unchanged tensors, and the
 *     kept rows of a row selection: gate_proj / up_proj of width pruning) are
 *     copied file to file with copy_file_range(2): no page faults, no copy
 *     through user memory; when the file systems cannot do that (EXDEV,
 *     ENOSYS, EINVAL, ...) or the input file is not the one that was mapped
 *     any more, the bytes are written from the mapping as before;
 *   - other lazy tensors are gathered into a small per-thread buffer, and
 *     tensors written in another dtype are converted through a second one;
 *   - a shard is cut into jobs of at most JOB_BYTES at known output offsets
 *     (the header fixes them) and the jobs are run on several threads with
 *     pwrite / copy_file_range, so gathers, page faults and kernel copies of
 *     different jobs overlap. Writeback of each job is started at once
 *     (sync_file_range), so the disk works while the CPU does.
 * I/O errors inside the parallel loop are recorded (the first one wins) and
 * stop the remaining jobs; they are reported after it. */

#define LAZY_CHUNK ((size_t)4 << 20) /* gather (and conversion) buffer per thread, at most */
#define JOB_BYTES ((size_t)16 << 20)
#define MAX_WRITERS 4

typedef enum { JOB_MEM, JOB_ROWS, JOB_GATHER, JOB_CONVERT } st_job_kind;

typedef struct st_job {
  st_job_kind kind;
  size_t entry;     /* index of the tensor in the shard */
  size_t first, n;  /* JOB_ROWS: output rows [first, first + n); else elements */
  uint64_t out;     /* output file offset of the first byte */
  uint64_t bytes;   /* bytes written */
  int src;          /* copy_file_range source (the tensor's or the parent's file), or -1 */
  uint64_t src_off; /* file offset of the tensor's (JOB_ROWS: the parent's) byte 0 */
} st_job;

typedef struct st_src {
  uint64_t dev, ino;
  int fd; /* -1: cannot be used (gone, replaced, unreadable) */
} st_src;

typedef struct st_writer {
  const pf_ctx *ctx;
  uint64_t done, total, shown; /* shown: the last progress reported */
  char *bufs[MAX_WRITERS];     /* chunk bytes each (twice that when converting), when needed */
  size_t chunk;                /* buffer_chunk(): LAZY_CHUNK, less when every tensor is smaller */
  const pf_dtype *as;          /* the dtype written, or NULL: each tensor's own */
  int nt;                      /* threads */
  st_src *src;
  size_t nsrc, capsrc;
  int no_cfr; /* copy_file_range is not supported here: write from memory */
  uint64_t overflows; /* finite values that became +-inf in float16 (atomic) */
} st_writer;

/* An fd of the file holding region r, opened once per file and checked to be
 * the file that was mapped; -1 when it is not (the mapping is then used). */
static int source_fd(st_writer *w, const pf_file_region *r) {
  for (size_t i = 0; i < w->nsrc; i++)
    if (w->src[i].dev == r->dev && w->src[i].ino == r->ino) return w->src[i].fd;
  if (w->nsrc == w->capsrc) {
    size_t cap = w->capsrc ? 2 * w->capsrc : 8;
    st_src *v = realloc(w->src, cap * sizeof *v);
    if (!v) return -1;
    w->src = v;
    w->capsrc = cap;
  }
  int fd = open(r->path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  struct stat st;
  if (fd >= 0 &&
      (fstat(fd, &st) != 0 || (uint64_t)st.st_dev != r->dev || (uint64_t)st.st_ino != r->ino)) {
    close(fd);
    fd = -1;
  }
  w->src[w->nsrc++] = (st_src){r->dev, r->ino, fd};
  return fd;
}

static int pwrite_fully(int fd, const void *data, size_t len, uint64_t off) {
  const char *p = data;
  while (len > 0) {
    ssize_t k = pwrite(fd, p, len > ST_WRITE_CHUNK ? ST_WRITE_CHUNK : len, (off_t)off);
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) return errno;
    if (k == 0) return EIO;
    p += k;
    off += (uint64_t)k;
    len -= (size_t)k;
  }
  return 0;
}

/* len bytes of src at soff, which are also mem[0, len), to dst at doff: in the
 * kernel when it can, else from memory. 0 or an errno. */
static int copy_range(st_writer *w, int src, uint64_t soff, int dst, uint64_t doff, size_t len,
                      const char *mem) {
  size_t done = 0;
  while (src >= 0 && done < len && !__atomic_load_n(&w->no_cfr, __ATOMIC_RELAXED)) {
    loff_t in = (loff_t)(soff + done), out = (loff_t)(doff + done);
    ssize_t k = copy_file_range(src, &in, dst, &out, len - done, 0);
    if (k > 0) {
      done += (size_t)k;
      continue;
    }
    if (k < 0 && errno == EINTR) continue;
    if (k < 0 && errno != EXDEV && errno != ENOSYS && errno != EINVAL && errno != EOPNOTSUPP &&
        errno != EPERM && errno != EBADF)
      return errno;
    if (k < 0) __atomic_store_n(&w->no_cfr, 1, __ATOMIC_RELAXED);
    break; /* k == 0: the file ends early; the mapping has the bytes */
  }
  return done < len ? pwrite_fully(dst, mem + done, len - done, doff + done) : 0;
}

/* Output rows [first, first + n) of a row selection: runs of adjacent parent
 * rows, one copy each. */
static int copy_rows(st_writer *w, const st_job *j, const pf_tensor *t, int fd) {
  const pf_tensor *parent;
  const int64_t *rows;
  pf_tensor_lazy_rows(t, &parent, &rows);
  const size_t rb = (size_t)parent->shape[1] * pf_dtype_size(t->dtype);
  const char *pd = parent->data;
  for (size_t i = j->first, end = j->first + j->n; i < end;) {
    size_t r = (size_t)(rows ? rows[i] : (int64_t)i), k = 1;
    while (i + k < end && (size_t)(rows ? rows[i + k] : (int64_t)(i + k)) == r + k)
      k++;
    int e = copy_range(w, j->src, j->src_off + r * rb, fd, j->out + (i - j->first) * rb, k * rb,
                       pd + r * rb);
    if (e) return e;
    i += k;
  }
  return 0;
}

/* Finite values of src (float32 or bfloat16) whose float16 in out is +-inf: beyond
 * float16's range (|x| >= 65520), as torch's .to(float16) makes them too. */
static uint64_t f16_overflows(const char *src, pf_dtype sdt, const unsigned char *out, size_t n) {
  uint64_t c = 0;
  for (size_t i = 0; i < n; i++) {
    uint16_t h;
    memcpy(&h, out + 2 * i, 2);
    if ((h & 0x7fff) != 0x7c00) continue;
    uint32_t bits = 0;
    if (sdt == PF_DTYPE_F32)
      memcpy(&bits, src + 4 * i, 4);
    else {
      uint16_t b;
      memcpy(&b, src + 2 * i, 2);
      bits = (uint32_t)b << 16;
    }
    c += (bits & 0x7f800000u) != 0x7f800000u; /* the source was not inf or NaN */
  }
  return c;
}

/* Elements [first, first + n) of t, converted to w->as into buf + w->chunk
 * (gathered into buf first when t is lazy), written at j->out. */
static int convert_job(st_writer *w, const st_job *j, const pf_tensor *t, int fd, char *buf) {
  const size_t esz = pf_dtype_size(t->dtype);
  const char *from = buf;
  if (t->data)
    from = (const char *)t->data + j->first * esz;
  else
    pf_tensor_read(t, j->first, j->n, buf);
  pf_convert(buf + w->chunk, *w->as, from, t->dtype, j->n);
  if (*w->as == PF_DTYPE_F16) {
    const uint64_t c = f16_overflows(from, t->dtype, (const unsigned char *)buf + w->chunk, j->n);
    if (c) __atomic_add_fetch(&w->overflows, c, __ATOMIC_RELAXED);
  }
  int e = pwrite_fully(fd, buf + w->chunk, j->bytes, j->out);
  if (t->data) pf_tensor_drop_range(t, from, j->n * esz); /* written: see run_job */
  return e;
}

static int run_job(st_writer *w, const st_job *j, const pf_tensor *t, int fd, char *buf) {
  const size_t esz = pf_dtype_size(t->dtype);
  int e = 0;
  if (j->kind == JOB_ROWS) {
    e = copy_rows(w, j, t, fd);
  } else if (j->kind == JOB_CONVERT) {
    e = convert_job(w, j, t, fd, buf);
  } else if (j->kind == JOB_GATHER) {
    pf_tensor_read(t, j->first, j->n, buf);
    e = pwrite_fully(fd, buf, j->bytes, j->out);
  } else {
    const char *mem = (const char *)t->data + j->first * esz;
    e = copy_range(w, j->src, j->src_off + j->first * esz, fd, j->out, j->bytes, mem);
    /* written bytes of a file-mapped tensor are not needed again soon: dropped from
     * this process (they stay in the page cache and fault back in if a live model
     * touches them), so saving a mapped checkpoint keeps RSS small */
    pf_tensor_drop_range(t, mem, j->bytes);
  }
  if (!e && j->bytes)
    (void)sync_file_range(fd, (off64_t)j->out, (off64_t)j->bytes, SYNC_FILE_RANGE_WRITE);
  return e;
}

/* The jobs of e[0..n) written from data offset `base` on; NULL when out of
 * memory. *nj: their count. */
static st_job *plan_jobs(st_writer *w, const pf_st_entry *e, size_t n, uint64_t base, size_t *nj) {
  size_t cap = 0;
  /* at most one job per LAZY_CHUNK / 4 elements: a tensor through a buffer smaller than
   * LAZY_CHUNK fits it whole (buffer_chunk), one job */
  for (size_t i = 0; i < n; i++)
    cap += (size_t)pf_tensor_numel(e[i].tensor) / (LAZY_CHUNK / 4) + 1;
  st_job *v = malloc((cap ? cap : 1) * sizeof *v);
  if (!v) return NULL;
  size_t k = 0;
  uint64_t off = base;
  for (size_t i = 0; i < n; i++) {
    const pf_tensor *t = e[i].tensor, *parent = NULL;
    const int64_t *rows = NULL;
    const size_t esz = pf_dtype_size(t->dtype), numel = t->nbytes / esz;
    const size_t osz = pf_dtype_size(out_dtype(t, w->as));
    pf_file_region r;
    st_job base_job = {JOB_MEM, i, 0, 0, 0, 0, -1, 0};
    size_t unit = esz, count = numel, step = JOB_BYTES / esz; /* per job */
    if (out_dtype(t, w->as) != t->dtype) {
      base_job.kind = JOB_CONVERT;
      unit = osz;
      step = w->chunk / (esz > osz ? esz : osz);
    } else if (!pf_tensor_is_deferred(t)) {
      if (pf_tensor_file_region(t, &r)) {
        base_job.src = source_fd(w, &r);
        base_job.src_off = r.offset;
      }
    } else if (pf_tensor_lazy_rows(t, &parent, &rows) && pf_tensor_file_region(parent, &r) &&
               (base_job.src = source_fd(w, &r)) >= 0) {
      base_job.kind = JOB_ROWS;
      base_job.src_off = r.offset;
      unit = (size_t)t->shape[1] * esz;
      count = (size_t)t->shape[0];
      step = JOB_BYTES / (unit ? unit : 1);
    } else {
      base_job.kind = JOB_GATHER;
      step = w->chunk / esz;
    }
    if (step == 0) step = 1;
    for (size_t f = 0; f < count; f += step) {
      st_job j = base_job;
      j.first = f;
      j.n = count - f < step ? count - f : step;
      j.bytes = j.n * unit;
      j.out = off + f * unit;
      v[k++] = j;
    }
    off += numel * osz;
  }
  *nj = k;
  return v;
}

/* Run the jobs on w->nt threads; 0 or the first errno (EINTR: interrupted).
 * Thread 0 (the caller's) reports progress; a lazy tensor's parent pages are
 * dropped after its last job. */
static int run_jobs(st_writer *w, const pf_st_entry *e, const st_job *jobs, size_t nj, int fd,
                    size_t *left) {
  int ec = 0, stop = 0;
  for (size_t i = 0; i < nj; i++)
    left[jobs[i].entry]++;
#pragma omp parallel num_threads(w->nt) if (w->nt > 1 && nj > 1)
  {
    const int me = omp_get_thread_num();
    char *buf = w->bufs[me];
#pragma omp for schedule(dynamic, 1)
    for (size_t i = 0; i < nj; i++) {
      if (__atomic_load_n(&stop, __ATOMIC_RELAXED)) continue;
      const st_job *j = &jobs[i];
      const pf_tensor *t = e[j->entry].tensor;
      int r = pf_ctx_check_interrupt(w->ctx, NULL) != PF_OK ? EINTR : run_job(w, j, t, fd, buf);
      if (r) {
        int zero = 0;
        __atomic_compare_exchange_n(&ec, &zero, r, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
        __atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
        continue;
      }
      uint64_t d = __atomic_add_fetch(&w->done, j->bytes, __ATOMIC_RELAXED);
      if (__atomic_sub_fetch(&left[j->entry], 1, __ATOMIC_ACQ_REL) == 0 && pf_tensor_is_deferred(t))
        pf_tensor_release_pages(t); /* the parent's pages read for it */
      if (me == 0 && d > w->shown) {
        w->shown = d;
        pf_ctx_progress(w->ctx, "save", d, w->total);
      }
    }
  }
  return ec;
}

static pf_status write_shard(const char *path, const pf_st_entry *e, size_t n, uint64_t bytes,
                             st_writer *w, pf_err *err) {
  size_t hl = 0, nj = 0;
  char *header = build_header(e, n, w->as, &hl);
  if (!header) return ferr(err, PF_ERR_NOMEM, path, "out of memory building the header");
  size_t *left = calloc(n ? n : 1, sizeof *left);
  st_job *jobs = left ? plan_jobs(w, e, n, 8 + (uint64_t)hl, &nj) : NULL;
  pf_status s = PF_OK;
  int fd = -1, ec = 0;
  if (!jobs) {
    s = ferr(err, PF_ERR_NOMEM, path, "out of memory planning the writes");
    goto done;
  }
  if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0) {
    s = ferr(err, PF_ERR_IO, path, "cannot create: %s", strerror(errno));
    goto done;
  }
  uint64_t total = 8 + (uint64_t)hl + bytes;
  if (total && fallocate(fd, 0, 0, (off_t)total) != 0 && errno == ENOSPC) ec = ENOSPC;
  unsigned char len8[8];
  for (int i = 0; i < 8; i++)
    len8[i] = (unsigned char)((uint64_t)hl >> (8 * i));
  if (!ec) ec = pwrite_fully(fd, len8, 8, 0);
  if (!ec) ec = pwrite_fully(fd, header, hl, 8);
  if (!ec) ec = run_jobs(w, e, jobs, nj, fd, left);
  if (ec == EINTR && (s = pf_ctx_check_interrupt(w->ctx, err)) != PF_OK) ec = 0;
  if (!ec && s == PF_OK && fsync(fd) != 0) ec = errno;
  if (close(fd) != 0 && !ec && s == PF_OK) ec = errno;
  if (ec) s = ferr(err, PF_ERR_IO, path, "write failed: %s", strerror(ec));
  if (s != PF_OK) unlink(path);
done:
  free(jobs);
  free(left);
  free(header);
  return s;
}

typedef struct st_mapped {
  const char *name;
  size_t shard;
} st_mapped;

static int cmp_mapped(const void *a, const void *b) {
  return strcmp(((const st_mapped *)a)->name, ((const st_mapped *)b)->name);
}

static void shard_file_name(char *buf, size_t n, size_t i, size_t count) {
  if (count == 1)
    snprintf(buf, n, "%s", ST_SINGLE);
  else
    snprintf(buf, n, "model-%05zu-of-%05zu.safetensors", i + 1, count);
}

/* model.safetensors.index.json as save_pretrained writes it (indent 2, sorted keys). */
static pf_status write_index(const char *dir, const pf_st_entry *e, size_t n, const st_shard *sh,
                             size_t nsh, uint64_t total, pf_err *err) {
  st_mapped *m = calloc(n ? n : 1, sizeof *m);
  char *path = pf_path_join(dir, ST_INDEX);
  pf_strbuf b = {0};
  pf_status s = PF_OK;
  if (!m || !path) goto nomem;
  for (size_t i = 0; i < nsh; i++)
    for (size_t j = 0; j < sh[i].count; j++)
      m[sh[i].first + j] = (st_mapped){e[sh[i].first + j].name, i};
  qsort(m, n, sizeof *m, cmp_mapped);
  pf_sb_printf(&b, "{\n  \"metadata\": {\n    \"total_size\": %llu\n  },\n",
               (unsigned long long)total);
  pf_sb_str(&b, "  \"weight_map\": {\n");
  for (size_t i = 0; i < n; i++) {
    char file[64];
    shard_file_name(file, sizeof file, m[i].shard, nsh);
    pf_sb_str(&b, "    ");
    pf_sb_json_string(&b, m[i].name);
    pf_sb_str(&b, ": ");
    pf_sb_json_string(&b, file);
    pf_sb_str(&b, i + 1 < n ? ",\n" : "\n");
  }
  pf_sb_str(&b, "  }\n}\n");
  if (b.oom) goto nomem;
  s = pf_write_file(path, b.p, b.len, err);
  goto done;
nomem:
  s = pf_err_set(err, PF_ERR_NOMEM, "%s: out of memory writing the index", dir);
done:
  pf_sb_free(&b);
  free(path);
  free(m);
  return s;
}

static int writer_threads(void) {
  int nt = omp_get_max_threads();
  return nt > MAX_WRITERS ? MAX_WRITERS : nt < 1 ? 1 : nt;
}

/* The bytes of one gather (or conversion) chunk: LAZY_CHUNK, or the largest tensor that
 * goes through a buffer (in its larger dtype, source or output) rounded up to 4 KiB when
 * that is smaller, so that saving a small model does not map and fault in 16 MiB of
 * buffers (half of the allocation-failure suite's save scenario under ASan). */
static size_t buffer_chunk(uint64_t largest) {
  if (largest >= LAZY_CHUNK) return LAZY_CHUNK;
  return largest == 0 ? 4096 : (size_t)(largest + 4095) / 4096 * 4096;
}

/* One writer thread's buffer: a gather chunk, and a conversion chunk after it. */
static size_t thread_buffer(int gather, int convert, size_t chunk) {
  return (convert ? 2 : gather ? 1 : 0) * chunk;
}

uint64_t pf_st_write_buffer_bytes(int gather, int convert, uint64_t largest) {
  return (uint64_t)writer_threads() * thread_buffer(gather, convert, buffer_chunk(largest));
}

pf_status pf_st_write(const char *dir, const pf_st_entry *entries, size_t n,
                      uint64_t max_shard_bytes, const pf_dtype *as, const struct pf_ctx *ctx,
                      pf_err *err) {
  pf_status s = check_entries(dir, entries, n, err);
  if (s != PF_OK) return s;
  st_shard *sh = NULL;
  size_t nsh = 0;
  if ((s = plan_shards(entries, n, as, max_shard_bytes, &sh, &nsh, err)) != PF_OK) return s;
  st_writer w = {.ctx = ctx, .nt = writer_threads(), .as = as};
  int lazy = 0, conv = 0;
  uint64_t largest = 0; /* bytes of the largest tensor written through a buffer */
  for (size_t i = 0; i < n; i++) {
    const pf_tensor *t = entries[i].tensor;
    const int l = pf_tensor_is_deferred(t), c = out_dtype(t, as) != t->dtype;
    const uint64_t b = out_bytes(t, as) > t->nbytes ? out_bytes(t, as) : t->nbytes;
    w.total += out_bytes(t, as);
    lazy |= l;
    conv |= c;
    if ((l || c) && b > largest) largest = b;
  }
  w.chunk = buffer_chunk(largest);
  for (int i = 0; (lazy || conv) && s == PF_OK && i < w.nt; i++)
    if (!(w.bufs[i] = malloc(thread_buffer(lazy, conv, w.chunk))))
      s = pf_err_set(err, PF_ERR_NOMEM, "save: out of memory");
  if (s == PF_OK) pf_ctx_progress(ctx, "save", 0, w.total);
  for (size_t i = 0; s == PF_OK && i < nsh; i++) {
    if ((s = pf_ctx_check_interrupt(ctx, err)) != PF_OK) break;
    char file[64];
    shard_file_name(file, sizeof file, i, nsh);
    char *path = pf_path_join(dir, file);
    if (!path)
      s = pf_err_set(err, PF_ERR_NOMEM, "%s: out of memory", dir);
    else
      s = write_shard(path, n ? entries + sh[i].first : entries, sh[i].count, sh[i].bytes, &w,
                      err); /* n == 0: entries may be NULL (an empty checkpoint) */
    free(path);
  }
  if (s == PF_OK && w.shown < w.total) pf_ctx_progress(ctx, "save", w.total, w.total);
  if (s == PF_OK && w.overflows)
    pf_ctx_log(ctx,
               "save: %llu finite values are beyond float16's range (|x| >= 65520) and were "
               "written as +-inf, as torch's .to(float16) does: the float16 checkpoint is not "
               "the model (keep float32 or bfloat16)",
               (unsigned long long)w.overflows);
  if (s == PF_OK && nsh > 1) s = write_index(dir, entries, n, sh, nsh, w.total, err);
  if (s == PF_OK && w.total == 0) pf_ctx_progress(ctx, "save", 0, 0);
  for (int i = 0; i < MAX_WRITERS; i++)
    free(w.bufs[i]);
  for (size_t i = 0; i < w.nsrc; i++)
    if (w.src[i].fd >= 0) close(w.src[i].fd);
  free(w.src);
  free(sh);
  return s;
}

/* ---- sizes ---- */

pf_status pf_parse_size(const char *s, uint64_t *out, pf_err *err) {
  static const struct {
    const char *unit;
    uint64_t mult;
  } units[] = {{"", 1},
               {"B", 1},
               {"KB", 1000ull},
               {"MB", 1000000ull},
               {"GB", 1000000000ull},
               {"TB", 1000000000000ull},
               {"KIB", 1ull << 10},
               {"MIB", 1ull << 20},
               {"GIB", 1ull << 30},
               {"TIB", 1ull << 40}};
  const char *p = s ? s : "";
  *out = 0;
  while (isspace((unsigned char)*p))
    p++;
  if (*p == '-')
    return pf_err_set(err, PF_ERR_INVALID,
                      "size '%s': expected a positive size, got a negative one", s);
  uint64_t ip = 0, frac = 0, scale = 1;
  int digits = 0;
  for (; isdigit((unsigned char)*p); p++, digits++) {
    if (ip > (UINT64_MAX - 9) / 10) goto bad;
    ip = ip * 10 + (uint64_t)(*p - '0');
  }
  if (*p == '.') {
    for (p++; isdigit((unsigned char)*p); p++, digits++)
      if (scale < 1000000000ull) {
        frac = frac * 10 + (uint64_t)(*p - '0');
        scale *= 10;
      }
  }
  if (!digits) goto bad;
  while (isspace((unsigned char)*p))
    p++;
  char unit[8] = {0};
  size_t ul = 0;
  while (*p && !isspace((unsigned char)*p) && ul < sizeof unit - 1)
    unit[ul++] = *p++;
  while (isspace((unsigned char)*p))
    p++;
  if (*p) goto bad;
  for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
    if (strcasecmp(unit, units[i].unit)) continue;
    uint64_t m = units[i].mult;
    if (ip && m > UINT64_MAX / ip) goto bad;
    uint64_t part = (uint64_t)((long double)frac * (long double)m / (long double)scale);
    if (ip * m > UINT64_MAX - part) goto bad; /* "18446744073709551.999KB" wrapped to 383 */
    uint64_t v = ip * m + part;
    if (v == 0)
      return pf_err_set(err, PF_ERR_INVALID, "size '%s': expected a positive size, got zero", s);
    *out = v;
    return PF_OK;
  }
bad:
  return pf_err_set(err, PF_ERR_INVALID,
                    "size '%s': expected a positive number with an optional unit "
                    "(B, KB, MB, GB, TB, KiB, MiB, GiB, TiB), e.g. 5GB or 500MB",
                    s ? s : "(null)");
}
