/* safetensors.c — mmap reader and streaming writer (see safetensors.h).
 *
 * Reader: each file is mapped once; the header is copied into a NUL-terminated
 * buffer for cJSON (so the parser can never run past the mapping), validated
 * completely, and reduced to a table of st_info records sorted by name. Tensor
 * views are created on demand and hold their own reference to the mapping.
 *
 * Writer: one header per shard, then every tensor's bytes written with write(2)
 * straight from its storage in large chunks; writeback is started early with
 * sync_file_range so the closing fsync does not wait for the whole file.
 */
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
#include <unistd.h>

#include "fsutil.h"
#include "json.h"
#include "safetensors_int.h"
#include "tensor_int.h"

#define ST_MAX_EXACT 9007199254740992.0 /* 2^53: larger JSON numbers are not exact */

typedef struct st_info {
  char *name;
  pf_dtype dtype;
  int ndim;
  int64_t shape[PF_MAX_DIMS];
  uint64_t begin, end; /* byte range relative to the data section */
  size_t file;         /* index into reader->files */
} st_info;

typedef struct st_file {
  char *path;
  pf_storage *storage;
  size_t data_start; /* 8 + header length */
} st_file;

struct pf_st_reader {
  char *source; /* the file or index that was opened */
  st_file *files;
  size_t nfiles;
  st_info *tensors; /* sorted by name */
  size_t n;
  cJSON *metadata; /* "__metadata__" of the first shard, or NULL */
  uint64_t total_bytes;
};

static void free_infos(st_info *v, size_t n) {
  for (size_t i = 0; v && i < n; i++)
    free(v[i].name);
  free(v);
}

static int cmp_info_name(const void *a, const void *b) {
  return strcmp(((const st_info *)a)->name, ((const st_info *)b)->name);
}

static int cmp_info_begin(const void *a, const void *b) {
  const st_info *x = a, *y = b;
  if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
  return x->end < y->end ? -1 : x->end > y->end;
}

/* ---- header entries ---- */

/* Non-negative integer that a double represents exactly. */
static int json_uint(const cJSON *v, uint64_t *out) {
  if (!cJSON_IsNumber(v)) return 0;
  double d = v->valuedouble;
  if (!(d >= 0.0) || d > ST_MAX_EXACT || d != (double)(uint64_t)d) return 0;
  *out = (uint64_t)d;
  return 1;
}

static pf_status parse_dtype(const char *file, const char *name, const cJSON *v, pf_dtype *dt,
                             pf_err *err) {
  static const char *const other[] = {"BOOL",    "U8",      "I8",          "I16",        "U16",
                                      "I32",     "U32",     "I64",         "U64",        "F64",
                                      "F8_E4M3", "F8_E5M2", "F8_E8M0",     "F6_E2M3",    "F6_E3M2",
                                      "F4",      "C64",     "F8_E4M3FNUZ", "F8_E5M2FNUZ"};
  if (!cJSON_IsString(v))
    return ferr(err, PF_ERR_FORMAT, file, "tensor '%s': expected \"dtype\" string, found %s", name,
                pf_json_kind(v));
  const char *s = v->valuestring;
  if (!strcmp(s, "F32"))
    *dt = PF_DTYPE_F32;
  else if (!strcmp(s, "F16"))
    *dt = PF_DTYPE_F16;
  else if (!strcmp(s, "BF16"))
    *dt = PF_DTYPE_BF16;
  else {
    for (size_t i = 0; i < sizeof other / sizeof other[0]; i++)
      if (!strcmp(s, other[i]))
        return ferr(err, PF_ERR_UNSUPPORTED, file,
                    "tensor '%s': dtype %s is not supported (pfrun reads F32, F16 and BF16)", name,
                    s);
    return ferr(err, PF_ERR_FORMAT, file, "tensor '%s': unknown dtype '%.64s'", name, s);
  }
  return PF_OK;
}

static pf_status parse_shape(const char *file, st_info *ti, const cJSON *v, uint64_t *nbytes,
                             pf_err *err) {
  if (!cJSON_IsArray(v))
    return ferr(err, PF_ERR_FORMAT, file, "tensor '%s': expected \"shape\" array, found %s",
                ti->name, pf_json_kind(v));
  int nd = cJSON_GetArraySize(v);
  if (nd > PF_MAX_DIMS)
    return ferr(err, PF_ERR_UNSUPPORTED, file,
                "tensor '%s': shape has %d dimensions, pfrun supports at most %d", ti->name, nd,
                PF_MAX_DIMS);
  uint64_t bytes = pf_dtype_size(ti->dtype);
  int i = 0;
  const cJSON *d;
  cJSON_ArrayForEach(d, v) {
    uint64_t u;
    if (!json_uint(d, &u) || u > (uint64_t)INT64_MAX)
      return ferr(err, PF_ERR_FORMAT, file,
                  "tensor '%s': shape[%d] is %g, expected a non-negative integer", ti->name, i,
                  cJSON_IsNumber(d) ? d->valuedouble : 0.0);
    if (u && bytes > UINT64_MAX / u)
      return ferr(err, PF_ERR_FORMAT, file, "tensor '%s': shape size overflows", ti->name);
    bytes *= u;
    ti->shape[i++] = (int64_t)u;
  }
  ti->ndim = nd;
  *nbytes = bytes;
  return PF_OK;
}

static pf_status parse_offsets(const char *file, st_info *ti, const cJSON *v, uint64_t nbytes,
                               uint64_t data_size, pf_err *err) {
  if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != 2 ||
      !json_uint(cJSON_GetArrayItem(v, 0), &ti->begin) ||
      !json_uint(cJSON_GetArrayItem(v, 1), &ti->end))
    return ferr(err, PF_ERR_FORMAT, file,
                "tensor '%s': expected \"data_offsets\" [begin, end] of non-negative integers",
                ti->name);
  if (ti->begin > ti->end)
    return ferr(err, PF_ERR_FORMAT, file, "tensor '%s': data_offsets [%llu, %llu] have begin > end",
                ti->name, (unsigned long long)ti->begin, (unsigned long long)ti->end);
  if (ti->end > data_size)
    return ferr(err, PF_ERR_FORMAT, file,
                "tensor '%s': data_offsets end %llu is past the data section of %llu bytes",
                ti->name, (unsigned long long)ti->end, (unsigned long long)data_size);
  if (ti->end - ti->begin != nbytes) {
    char sb[128];
    return ferr(err, PF_ERR_FORMAT, file,
                "tensor '%s': dtype %s shape %s needs %llu bytes, data_offsets give %llu", ti->name,
                pf_dtype_st_name(ti->dtype), pf_shape_str(ti->ndim, ti->shape, sb, 128),
                (unsigned long long)nbytes, (unsigned long long)(ti->end - ti->begin));
  }
  return PF_OK;
}

int pf_st_is_legacy_buffer(const char *name) {
  static const char *const tails[] = {".attn.bias", ".attn.masked_bias", ".attention.bias",
                                      ".attention.masked_bias", "rotary_emb.inv_freq"};
  size_t n = strlen(name);
  for (size_t i = 0; i < sizeof tails / sizeof tails[0]; i++) {
    size_t k = strlen(tails[i]);
    if (n >= k && !strcmp(name + n - k, tails[i])) return 1;
  }
  return 0;
}

static pf_status parse_entry(const char *file, const cJSON *item, uint64_t data_size, st_info *ti,
                             pf_err *err) {
  const char *name = item->string;
  if (!cJSON_IsObject(item))
    return ferr(err, PF_ERR_FORMAT, file, "tensor '%s': expected an object, found %s", name,
                pf_json_kind(item));
  if (!(ti->name = strdup(name))) return ferr(err, PF_ERR_NOMEM, file, "out of memory");
  uint64_t nbytes = 0;
  pf_status s =
      parse_dtype(file, name, cJSON_GetObjectItemCaseSensitive(item, "dtype"), &ti->dtype, err);
  if (s == PF_OK)
    s = parse_shape(file, ti, cJSON_GetObjectItemCaseSensitive(item, "shape"), &nbytes, err);
  if (s == PF_OK)
    s = parse_offsets(file, ti, cJSON_GetObjectItemCaseSensitive(item, "data_offsets"), nbytes,
                      data_size, err);
  return s;
}

static pf_status check_metadata(const char *file, const cJSON *meta, pf_err *err) {
  if (!cJSON_IsObject(meta))
    return ferr(err, PF_ERR_FORMAT, file, "\"__metadata__\": expected an object, found %s",
                pf_json_kind(meta));
  const cJSON *kv;
  cJSON_ArrayForEach(kv, meta) {
    if (!cJSON_IsString(kv))
      return ferr(err, PF_ERR_FORMAT, file, "\"__metadata__\": expected string values, '%s' is %s",
                  kv->string, pf_json_kind(kv));
  }
  return PF_OK;
}

/* Reject duplicate names, then check that no two non-empty byte ranges overlap
 * (sorted by offset); leaves v sorted by name. */
static pf_status check_layout(const char *file, st_info *v, size_t n, pf_err *err) {
  qsort(v, n, sizeof *v, cmp_info_name);
  for (size_t i = 1; i < n; i++)
    if (!strcmp(v[i - 1].name, v[i].name))
      return ferr(err, PF_ERR_FORMAT, file, "tensor '%s' appears twice in the header", v[i].name);
  qsort(v, n, sizeof *v, cmp_info_begin);
  uint64_t max_end = 0;
  size_t owner = 0;
  for (size_t i = 0; i < n; i++) {
    if (v[i].end > v[i].begin && v[i].begin < max_end)
      return ferr(err, PF_ERR_FORMAT, file,
                  "tensors '%s' and '%s' overlap: bytes [%llu, %llu) and [%llu, %llu)",
                  v[owner].name, v[i].name, (unsigned long long)v[owner].begin,
                  (unsigned long long)v[owner].end, (unsigned long long)v[i].begin,
                  (unsigned long long)v[i].end);
    if (v[i].end > max_end) {
      max_end = v[i].end;
      owner = i;
    }
  }
  qsort(v, n, sizeof *v, cmp_info_name);
  return PF_OK;
}

/* ---- one file ---- */

/* Map the file, check the 8-byte length and return the parsed header object. */
static pf_status read_header(const char *path, st_file *f, cJSON **out, pf_err *err) {
  *out = NULL;
  pf_status s = pf_storage_map_file(path, &f->storage, err);
  if (s != PF_OK) return s;
  size_t size = pf_storage_size(f->storage);
  const unsigned char *p = pf_storage_data(f->storage);
  if (size < 8)
    return ferr(err, PF_ERR_FORMAT, path,
                "file has %zu bytes, expected at least 8 (the header length)", size);
  uint64_t hl = 0;
  for (int i = 7; i >= 0; i--)
    hl = (hl << 8) | p[i];
  if (hl > PF_ST_MAX_HEADER)
    return ferr(err, PF_ERR_FORMAT, path, "header length %llu exceeds the limit of %u bytes",
                (unsigned long long)hl, PF_ST_MAX_HEADER);
  if (hl > size - 8)
    return ferr(err, PF_ERR_FORMAT, path,
                "header length %llu is past the end of the file (%zu bytes)",
                (unsigned long long)hl, size);
  f->data_start = 8 + (size_t)hl;
  char *text = malloc((size_t)hl + 1);
  if (!text)
    return ferr(err, PF_ERR_NOMEM, path, "out of memory for a %llu-byte header",
                (unsigned long long)hl);
  memcpy(text, p + 8, (size_t)hl);
  text[hl] = '\0';
  const char *end = NULL;
  int oom = 0;
  cJSON *root = pf_json_parse(text, (size_t)hl, &end, 0, &oom);
  size_t at = end ? (size_t)(end - text) : 0;
  if (!root && oom)
    s = pf_json_nomem(err, path);
  else if (!root)
    s = ferr(err, PF_ERR_FORMAT, path, "header is not valid JSON (error at byte %zu)", at);
  else if (!cJSON_IsObject(root))
    s = ferr(err, PF_ERR_FORMAT, path, "header: expected a JSON object, found %s",
             pf_json_kind(root));
  for (size_t i = at; s == PF_OK && i < hl; i++)
    if (!isspace((unsigned char)text[i]))
      s = ferr(err, PF_ERR_FORMAT, path, "header: unexpected bytes after the JSON object at %zu",
               i);
  free(text);
  if (s != PF_OK)
    cJSON_Delete(root);
  else
    *out = root;
  return s;
}

/* Parse file `fidx` of r (path already set). Returns its tensors sorted by name;
 * *meta receives the detached "__metadata__" when meta is non-NULL. */
static pf_status parse_file(pf_st_reader *r, size_t fidx, st_info **out, size_t *nout, cJSON **meta,
                            pf_err *err) {
  st_file *f = &r->files[fidx];
  const char *path = f->path;
  *out = NULL;
  *nout = 0;
  cJSON *root = NULL;
  pf_status s = read_header(path, f, &root, err);
  if (s != PF_OK) return s;
  uint64_t data_size = pf_storage_size(f->storage) - f->data_start;
  size_t cap = (size_t)cJSON_GetArraySize(root), n = 0;
  st_info *v = NULL;
  if (cap > PF_ST_MAX_TENSORS) {
    s = ferr(err, PF_ERR_FORMAT, path, "header declares %zu entries, the limit is %d", cap,
             PF_ST_MAX_TENSORS);
    goto fail;
  }
  if (!(v = calloc(cap ? cap : 1, sizeof *v))) {
    s = ferr(err, PF_ERR_NOMEM, path, "out of memory");
    goto fail;
  }
  const cJSON *item;
  cJSON_ArrayForEach(item, root) {
    if (!strcmp(item->string, "__metadata__")) {
      if ((s = check_metadata(path, item, err)) != PF_OK) goto fail;
      continue;
    }
    if (pf_st_is_legacy_buffer(item->string)) continue; /* before its dtype: BOOL, U8 */
    v[n].file = fidx;
    s = parse_entry(path, item, data_size, &v[n++], err);
    if (s != PF_OK) goto fail;
  }
  if ((s = check_layout(path, v, n, err)) != PF_OK) goto fail;
  if (meta) *meta = cJSON_DetachItemFromObjectCaseSensitive(root, "__metadata__");
  cJSON_Delete(root);
  *out = v;
  *nout = n;
  return PF_OK;
fail:
  free_infos(v, n);
  cJSON_Delete(root);
  return s;
}

/* ---- opening ---- */

static pf_status reader_files(pf_st_reader *r, size_t n, pf_err *err) {
  r->files = calloc(n ? n : 1, sizeof *r->files);
  if (!r->files) return pf_err_set(err, PF_ERR_NOMEM, "%s: out of memory", r->source);
  r->nfiles = n;
  return PF_OK;
}

static pf_status open_single(pf_st_reader *r, const char *path, pf_err *err) {
  pf_status s = reader_files(r, 1, err);
  if (s != PF_OK) return s;
  if (!(r->files[0].path = strdup(path))) return pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  return parse_file(r, 0, &r->tensors, &r->n, &r->metadata, err);
}

static int bad_shard_name(const char *s) {
  return !*s || strchr(s, '/') || strstr(s, "..") || strchr(s, '\\');
}

/* Sorted, de-duplicated shard names of a weight map (pointers into the JSON). */
static pf_status shard_names(const char *index, const cJSON *wm, const char ***out, size_t *nout,
                             pf_err *err) {
  size_t n = (size_t)cJSON_GetArraySize(wm), k = 0;
  *out = NULL;
  if (n > PF_ST_MAX_TENSORS)
    return ferr(err, PF_ERR_FORMAT, index, "weight_map has %zu entries, the limit is %d", n,
                PF_ST_MAX_TENSORS);
  const char **v = calloc(n ? n : 1, sizeof *v);
  if (!v) return ferr(err, PF_ERR_NOMEM, index, "out of memory");
  const cJSON *e;
  cJSON_ArrayForEach(e, wm) {
    if (!cJSON_IsString(e) || bad_shard_name(e->valuestring)) {
      free(v);
      return ferr(err, PF_ERR_FORMAT, index,
                  "weight_map['%s']: expected a shard file name in the same folder, found %s%s%s",
                  e->string, cJSON_IsString(e) ? "'" : pf_json_kind(e),
                  cJSON_IsString(e) ? e->valuestring : "", cJSON_IsString(e) ? "'" : "");
    }
    v[k++] = e->valuestring;
  }
  qsort(v, k, sizeof *v, cmp_str);
  size_t u = 0;
  for (size_t i = 0; i < k; i++)
    if (u == 0 || strcmp(v[u - 1], v[i])) v[u++] = v[i];
  if (u > PF_ST_MAX_SHARDS) {
    free(v);
    return ferr(err, PF_ERR_FORMAT, index, "weight_map names %zu shards, the limit is %d", u,
                PF_ST_MAX_SHARDS);
  }
  *out = v;
  *nout = u;
  return PF_OK;
}

/* Copy weight_map's tensors out of the parsed shards into r->tensors. */
static pf_status collect_mapped(pf_st_reader *r, const char *index, const cJSON *wm,
                                const char **names, st_info **per, size_t *pern, pf_err *err) {
  size_t n = (size_t)cJSON_GetArraySize(wm);
  if (!(r->tensors = calloc(n ? n : 1, sizeof *r->tensors)))
    return ferr(err, PF_ERR_NOMEM, index, "out of memory");
  const cJSON *e;
  cJSON_ArrayForEach(e, wm) {
    const char *shard = e->valuestring;
    if (pf_st_is_legacy_buffer(e->string)) continue;
    const char **sp = bsearch(&shard, names, r->nfiles, sizeof *names, cmp_str);
    size_t si = (size_t)(sp - names);
    st_info key = {.name = e->string};
    const st_info *ti = bsearch(&key, per[si], pern[si], sizeof key, cmp_info_name);
    if (!ti)
      return ferr(err, PF_ERR_FORMAT, index,
                  "tensor '%s' is mapped to %s but that shard has no such tensor", e->string,
                  shard);
    r->tensors[r->n] = *ti;
    if (!(r->tensors[r->n].name = strdup(ti->name)))
      return ferr(err, PF_ERR_NOMEM, index, "out of memory");
    r->n++;
  }
  qsort(r->tensors, r->n, sizeof *r->tensors, cmp_info_name);
  for (size_t i = 1; i < r->n; i++)
    if (!strcmp(r->tensors[i - 1].name, r->tensors[i].name))
      return ferr(err, PF_ERR_FORMAT, index, "weight_map lists tensor '%s' twice",
                  r->tensors[i].name);
  return PF_OK;
}

static pf_status open_shards(pf_st_reader *r, const char *index, const cJSON *wm,
                             const char **names, size_t nshards, pf_err *err) {
  pf_status s = reader_files(r, nshards, err);
  char *dir = strdup(index), *slash = dir ? strrchr(dir, '/') : NULL;
  st_info **per = calloc(nshards ? nshards : 1, sizeof *per);
  size_t *pern = calloc(nshards ? nshards : 1, sizeof *pern);
  if (s == PF_OK && (!dir || !per || !pern)) s = ferr(err, PF_ERR_NOMEM, index, "out of memory");
  if (slash) *slash = '\0';
  for (size_t i = 0; s == PF_OK && i < nshards; i++) {
    r->files[i].path = pf_path_join(slash ? dir : "", names[i]);
    if (!r->files[i].path)
      s = ferr(err, PF_ERR_NOMEM, index, "out of memory");
    else
      s = parse_file(r, i, &per[i], &pern[i], i == 0 ? &r->metadata : NULL, err);
    if (s != PF_OK) pf_err_prefix(err, "%s", index);
  }
  if (s == PF_OK) s = collect_mapped(r, index, wm, names, per, pern, err);
  for (size_t i = 0; per && pern && i < nshards; i++) /* either may be NULL after NOMEM */
    free_infos(per[i], pern[i]);
  free(per);
  free(pern);
  free(dir);
  return s;
}

static pf_status open_index(pf_st_reader *r, const char *index, pf_err *err) {
  char *text = NULL;
  size_t len = 0;
  pf_status s = pf_read_file(index, PF_ST_MAX_HEADER, &text, &len, err);
  if (s != PF_OK) return s;
  const char **names = NULL;
  size_t nshards = 0;
  int oom = 0;
  cJSON *root = pf_json_parse(text, len, NULL, 0, &oom);
  const cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
  if (!root && oom)
    s = pf_json_nomem(err, index);
  else if (!root || !cJSON_IsObject(root))
    s = ferr(err, PF_ERR_FORMAT, index, "not a JSON object");
  else if (!cJSON_IsObject(wm))
    s = ferr(err, PF_ERR_FORMAT, index, "expected \"weight_map\" object, found %s",
             pf_json_kind(wm));
  else
    s = shard_names(index, wm, &names, &nshards, err);
  if (s == PF_OK) s = open_shards(r, index, wm, names, nshards, err);
  free(names);
  cJSON_Delete(root);
  free(text);
  return s;
}

pf_status pf_st_open(const char *path, pf_st_reader **out, pf_err *err) {
  *out = NULL;
  pf_st_reader *r = calloc(1, sizeof *r);
  char *single = NULL, *index = NULL;
  pf_status s = PF_OK;
  if (!r) return pf_err_set(err, PF_ERR_NOMEM, "%s: out of memory", path);
  if (pf_is_dir(path)) {
    single = pf_path_join(path, ST_SINGLE);
    index = pf_path_join(path, ST_INDEX);
    if (!single || !index)
      s = pf_err_set(err, PF_ERR_NOMEM, "%s: out of memory", path);
    else if (!pf_path_exists(single) && !pf_path_exists(index))
      s = pf_err_set(err, PF_ERR_NOT_FOUND, "%s: no %s or %s in this folder", path, ST_SINGLE,
                     ST_INDEX);
    else if (pf_path_exists(single))
      path = single;
    else
      path = index;
  }
  if (s == PF_OK && !(r->source = strdup(path))) s = pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  size_t pl = strlen(path);
  if (s == PF_OK) {
    if (pl >= 5 && !strcmp(path + pl - 5, ".json"))
      s = open_index(r, path, err);
    else
      s = open_single(r, path, err);
  }
  free(single);
  free(index);
  if (s != PF_OK) {
    pf_st_close(r);
    return s;
  }
  for (size_t i = 0; i < r->n; i++)
    r->total_bytes += r->tensors[i].end - r->tensors[i].begin;
  *out = r;
  return PF_OK;
}

void pf_st_close(pf_st_reader *r) {
  if (!r) return;
  for (size_t i = 0; r->files && i < r->nfiles; i++) {
    free(r->files[i].path);
    pf_storage_release(r->files[i].storage);
  }
  free(r->files);
  free_infos(r->tensors, r->n);
  cJSON_Delete(r->metadata);
  free(r->source);
  free(r);
}

size_t pf_st_count(const pf_st_reader *r) {
  return r ? r->n : 0;
}

const char *pf_st_name(const pf_st_reader *r, size_t i) {
  return r && i < r->n ? r->tensors[i].name : NULL;
}

static const st_info *find(const pf_st_reader *r, const char *name) {
  if (!r || !name || !r->n) return NULL;
  st_info key = {.name = (char *)name};
  return bsearch(&key, r->tensors, r->n, sizeof key, cmp_info_name);
}

int pf_st_has(const pf_st_reader *r, const char *name) {
  return find(r, name) != NULL;
}

typedef struct unaligned_copy {
  const char *src;
  size_t row_bytes;
} unaligned_copy;

static void copy_rows(const void *job, int64_t r0, int64_t r1, char *dst) {
  const unaligned_copy *c = job;
  memcpy(dst, c->src + (size_t)r0 * c->row_bytes, (size_t)(r1 - r0) * c->row_bytes);
}

/* The format lets the header have any length, so a tensor's bytes need not be aligned
 * to its element size (Python's json.dumps of a header gives such files); every kernel
 * reads elements as aligned values. Such a tensor is copied once into aligned storage
 * (a scratch file from PF_SCRATCH_MIN bytes, which the kernel can page out; memory does
 * not grow with the model). Files written by safetensors and by pfrun are aligned. */
static pf_status aligned_copy(const pf_tensor *t, pf_tensor **out, pf_err *err) {
  const int64_t rows = t->ndim > 0 && t->shape[0] > 0 ? t->shape[0] : 1;
  unaligned_copy job = {t->data, t->nbytes / (size_t)rows};
  pf_storage *st = NULL;
  pf_status s = pf_storage_derived((size_t)rows, job.row_bytes, copy_rows, &job, &st, err);
  if (s == PF_OK) s = pf_tensor_view(st, 0, t->dtype, t->ndim, t->shape, out, err);
  pf_storage_release(st);
  return s;
}

pf_status pf_st_get(const pf_st_reader *r, const char *name, pf_tensor **out, pf_err *err) {
  *out = NULL;
  const st_info *ti = find(r, name);
  if (!ti) {
    if (r && r->nfiles > 1)
      return pf_err_set(err, PF_ERR_NOT_FOUND, "%s: tensor '%s' not found (searched %zu shards)",
                        r->source, name ? name : "(null)", r->nfiles);
    return pf_err_set(err, PF_ERR_NOT_FOUND, "%s: tensor '%s' not found",
                      r ? r->source : "(no reader)", name ? name : "(null)");
  }
  const st_file *f = &r->files[ti->file];
  pf_status s = pf_tensor_view(f->storage, f->data_start + (size_t)ti->begin, ti->dtype, ti->ndim,
                               ti->shape, out, err);
  const size_t esize = pf_dtype_size(ti->dtype);
  if (s == PF_OK && (*out)->nbytes && pf_storage_data(f->storage) && esize > 1 &&
      (uintptr_t)(*out)->data % esize) {
    pf_tensor *copy = NULL;
    s = aligned_copy(*out, &copy, err);
    pf_tensor_release(*out);
    *out = copy;
  }
  if (s != PF_OK) pf_err_prefix(err, "%s: tensor '%s'", f->path, name);
  return s;
}

int pf_st_shape(const pf_st_reader *r, const char *name, int64_t *shape) {
  const st_info *ti = find(r, name);
  if (!ti) return -1;
  memcpy(shape, ti->shape, sizeof ti->shape);
  return ti->ndim;
}

const char *pf_st_metadata(const pf_st_reader *r, const char *key) {
  const cJSON *v = r && key ? cJSON_GetObjectItemCaseSensitive(r->metadata, key) : NULL;
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

size_t pf_st_shard_count(const pf_st_reader *r) {
  return r ? r->nfiles : 0;
}
uint64_t pf_st_total_bytes(const pf_st_reader *r) {
  return r ? r->total_bytes : 0;
}

