/* safetensors_write.c — the streaming, sharding safetensors writer and pf_parse_size
 * (see safetensors.h). Tensors are written straight from their storage; lazy
 * tensors (pruned selections, tensor.h) are gathered from their parent through
 * one small reusable buffer, so their bytes are written once, into the file. */
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
#include <sys/mman.h>
#include <unistd.h>

#include "fsutil.h"
#include "safetensors_int.h"
#include "strbuf.h"


/* ---- writer ---- */

typedef struct st_shard {
  size_t first, count;
  uint64_t bytes;
} st_shard;

/* Hugging Face (transformers shard_checkpoint) order-preserving split: start a
 * new shard when the next tensor would tip the current one over the limit and
 * the current one is not empty. max == 0 means no limit. */
static pf_status plan_shards(const pf_st_entry *e, size_t n, uint64_t max, st_shard **out,
                             size_t *nout, pf_err *err) {
  st_shard *v = calloc(n ? n : 1, sizeof *v);
  if (!v) return pf_err_set(err, PF_ERR_NOMEM, "save: out of memory");
  size_t k = 1;
  for (size_t i = 0; i < n; i++) {
    uint64_t b = e[i].tensor->nbytes;
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

static char *build_header(const pf_st_entry *e, size_t n, size_t *len) {
  cJSON *root = cJSON_CreateObject(), *meta = cJSON_CreateObject();
  int ok = root && meta && cJSON_AddStringToObject(meta, "format", "pt");
  ok = add_owned(ok ? root : NULL, "__metadata__", meta) && ok;
  uint64_t off = 0;
  for (size_t i = 0; ok && i < n; i++) {
    const pf_tensor *t = e[i].tensor;
    uint64_t shape[PF_MAX_DIMS], range[2] = {off, off + t->nbytes};
    for (int d = 0; d < t->ndim; d++)
      shape[d] = (uint64_t)t->shape[d];
    off += t->nbytes;
    cJSON *o = cJSON_CreateObject();
    ok = add_owned(root, e[i].name, o) &&
         cJSON_AddStringToObject(o, "dtype", pf_dtype_st_name(t->dtype)) &&
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

typedef struct st_progress {
  const pf_ctx *ctx;
  uint64_t done, total;
  char *gather; /* LAZY_CHUNK bytes for lazy tensors (NULL when there are none) */
} st_progress;

#define LAZY_CHUNK ((size_t)4 << 20)

static int write_fully(int fd, const void *data, size_t len) {
  const char *p = data;
  while (len > 0) {
    ssize_t w = write(fd, p, len > ST_WRITE_CHUNK ? ST_WRITE_CHUNK : len);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return errno;
    if (w == 0) return EIO;
    p += w;
    len -= (size_t)w;
  }
  return 0;
}

/* Write one tensor's bytes in chunks, reporting progress and starting writeback. */
/* Written bytes of a file-mapped tensor are not needed again soon: drop those
 * pages from this process (they stay in the page cache and fault back in if a
 * live model touches them), so saving a mapped checkpoint keeps RSS small. */
static void drop_mapped_pages(const pf_tensor *t, const char *p, size_t k) {
  if (!pf_storage_is_mapped(t->storage)) return;
  uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
  uintptr_t a = ((uintptr_t)p + page - 1) & ~(page - 1);
  uintptr_t b = ((uintptr_t)p + k) & ~(page - 1);
  if (b > a) (void)madvise((void *)a, b - a, MADV_DONTNEED);
}

/* A lazy tensor, gathered chunk by chunk into pr->gather and written. */
static int write_lazy(int fd, const pf_tensor *t, uint64_t *pos, st_progress *pr) {
  const size_t esz = pf_dtype_size(t->dtype), step = LAZY_CHUNK / esz;
  const size_t n = t->nbytes / esz;
  uint64_t from = *pos; /* writeback is started per ST_WRITE_CHUNK, as for other tensors */
  for (size_t i = 0; i < n; i += step) {
    size_t k = n - i < step ? n - i : step;
    pf_tensor_read(t, i, k, pr->gather);
    int e = write_fully(fd, pr->gather, k * esz);
    if (e) return e;
    *pos += k * esz;
    if (*pos - from >= ST_WRITE_CHUNK || i + k == n) {
      (void)sync_file_range(fd, (off64_t)from, (off64_t)(*pos - from), SYNC_FILE_RANGE_WRITE);
      from = *pos;
    }
    pr->done += k * esz;
    pf_ctx_progress(pr->ctx, "save", pr->done, pr->total);
  }
  pf_tensor_release_pages(t); /* the parent's pages read for it */
  return 0;
}

static int write_tensor(int fd, const pf_tensor *t, uint64_t *pos, st_progress *pr) {
  if (pf_tensor_is_deferred(t)) return write_lazy(fd, t, pos, pr);
  const char *p = t->data;
  for (size_t left = t->nbytes; left > 0;) {
    size_t k = left > ST_WRITE_CHUNK ? ST_WRITE_CHUNK : left;
    int e = write_fully(fd, p, k);
    if (e) return e;
    (void)sync_file_range(fd, (off64_t)*pos, (off64_t)k, SYNC_FILE_RANGE_WRITE);
    drop_mapped_pages(t, p, k);
    *pos += k;
    p += k;
    left -= k;
    pr->done += k;
    pf_ctx_progress(pr->ctx, "save", pr->done, pr->total);
  }
  return 0;
}

static pf_status write_shard(const char *path, const pf_st_entry *e, size_t n, uint64_t bytes,
                             st_progress *pr, pf_err *err) {
  size_t hl = 0;
  char *header = build_header(e, n, &hl);
  if (!header) return ferr(err, PF_ERR_NOMEM, path, "out of memory building the header");
  pf_status s = PF_OK;
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644), ec = 0;
  if (fd < 0) {
    s = ferr(err, PF_ERR_IO, path, "cannot create: %s", strerror(errno));
    free(header);
    return s;
  }
  uint64_t total = 8 + (uint64_t)hl + bytes, pos = 8 + hl;
  if (total && fallocate(fd, 0, 0, (off_t)total) != 0 && errno == ENOSPC) ec = ENOSPC;
  unsigned char len8[8];
  for (int i = 0; i < 8; i++)
    len8[i] = (unsigned char)((uint64_t)hl >> (8 * i));
  if (!ec) ec = write_fully(fd, len8, 8);
  if (!ec) ec = write_fully(fd, header, hl);
  for (size_t i = 0; !ec && i < n; i++) {
    if ((s = pf_ctx_check_interrupt(pr->ctx, err)) != PF_OK) break;
    ec = write_tensor(fd, e[i].tensor, &pos, pr);
  }
  if (!ec && s == PF_OK && fsync(fd) != 0) ec = errno;
  if (close(fd) != 0 && !ec && s == PF_OK) ec = errno;
  if (ec) s = ferr(err, PF_ERR_IO, path, "write failed: %s", strerror(ec));
  if (s != PF_OK) unlink(path);
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

pf_status pf_st_write(const char *dir, const pf_st_entry *entries, size_t n,
                      uint64_t max_shard_bytes, const struct pf_ctx *ctx, pf_err *err) {
  pf_status s = check_entries(dir, entries, n, err);
  if (s != PF_OK) return s;
  st_shard *sh = NULL;
  size_t nsh = 0;
  if ((s = plan_shards(entries, n, max_shard_bytes, &sh, &nsh, err)) != PF_OK) return s;
  st_progress pr = {ctx, 0, 0, NULL};
  int lazy = 0;
  for (size_t i = 0; i < n; i++) {
    pr.total += entries[i].tensor->nbytes;
    lazy |= pf_tensor_is_deferred(entries[i].tensor);
  }
  if (lazy && !(pr.gather = malloc(LAZY_CHUNK))) {
    free(sh);
    return pf_err_set(err, PF_ERR_NOMEM, "save: out of memory");
  }
  pf_ctx_progress(ctx, "save", 0, pr.total);
  for (size_t i = 0; s == PF_OK && i < nsh; i++) {
    char file[64];
    shard_file_name(file, sizeof file, i, nsh);
    char *path = pf_path_join(dir, file);
    if (!path)
      s = pf_err_set(err, PF_ERR_NOMEM, "%s: out of memory", dir);
    else
      s = write_shard(path, n ? entries + sh[i].first : entries, sh[i].count, sh[i].bytes, &pr,
                      err); /* n == 0: entries may be NULL (an empty checkpoint) */
    free(path);
  }
  if (s == PF_OK && nsh > 1) s = write_index(dir, entries, n, sh, nsh, pr.total, err);
  if (s == PF_OK && pr.total == 0) pf_ctx_progress(ctx, "save", 0, 0);
  free(pr.gather);
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
