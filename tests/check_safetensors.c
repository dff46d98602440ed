/* check_safetensors.c — reader validation, writer round trips, sharding, sizes.
 *
 * Malformed files are crafted byte by byte here (8-byte little-endian header
 * length, JSON header, zero-filled data section), one per error path.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fsutil.h"
#include "safetensors.h"
#include "testutil.h"

static char *g_dir;

static void setup(void) {
  g_dir = pf_test_tmpdir("st");
}

static void teardown(void) {
  pf_test_rmtree(g_dir);
  free(g_dir);
  g_dir = NULL;
}

static char *in_dir(const char *name) {
  return pf_path_join(g_dir, name);
}

static void write_bytes(const char *path, const void *data, size_t len) {
  ck_assert_int_eq(pf_write_file(path, data, len, NULL), PF_OK);
}

/* <u64 len(header)> header <data_len zero bytes> */
static void write_st(const char *name, const char *header, size_t data_len) {
  size_t hl = strlen(header), n = 8 + hl + data_len;
  unsigned char *b = calloc(1, n);
  for (int i = 0; i < 8; i++)
    b[i] = (unsigned char)((uint64_t)hl >> (8 * i));
  memcpy(b + 8, header, hl);
  char *p = in_dir(name);
  write_bytes(p, b, n);
  free(p);
  free(b);
}

/* Open g_dir/name and expect failure `code` with a message containing both needles. */
static void expect_fail(const char *name, pf_status code, const char *n1, const char *n2) {
  char *p = in_dir(name);
  pf_st_reader *r = (pf_st_reader *)1;
  pf_err err = {0};
  pf_status s = pf_st_open(p, &r, &err);
  ck_assert_msg(s == code, "%s: expected status %d, got %d (%s)", name, code, s, err.msg);
  ck_assert_ptr_null(r);
  pf_assert_err(err, name);
  if (n1) pf_assert_err(err, n1);
  if (n2) pf_assert_err(err, n2);
  free(p);
}

static pf_tensor *make(pf_dtype dt, int ndim, const int64_t *shape, unsigned seed) {
  pf_tensor *t = NULL;
  ck_assert_int_eq(pf_tensor_new(dt, ndim, shape, &t, NULL), PF_OK);
  unsigned char *d = pf_tensor_mutable_data(t);
  for (size_t i = 0; i < t->nbytes; i++)
    d[i] = (unsigned char)(seed * 131 + i * 7);
  return t;
}

static void assert_same(const pf_st_reader *r, const char *name, const pf_tensor *want) {
  pf_tensor *got = NULL;
  pf_err err = {0};
  ck_assert_msg(pf_st_get(r, name, &got, &err) == PF_OK, "%s", err.msg);
  ck_assert_int_eq(got->dtype, want->dtype);
  ck_assert_int_eq(got->ndim, want->ndim);
  for (int i = 0; i < want->ndim; i++)
    ck_assert_int_eq(got->shape[i], want->shape[i]);
  ck_assert_uint_eq(got->nbytes, want->nbytes);
  ck_assert_int_eq(memcmp(got->data, want->data, want->nbytes), 0);
  ck_assert_uint_eq((uintptr_t)got->data % pf_dtype_size(got->dtype), 0);
  pf_file_region reg; /* a view of the mapping, unless its bytes were unaligned in the file */
  if (pf_tensor_file_region(got, &reg)) ck_assert_ptr_null(pf_tensor_mutable_data(got));
  pf_tensor_release(got);
}

/* ---- writer + reader round trips ---- */

typedef struct progress_log {
  int calls;
  uint64_t last_done, last_total;
  int monotonic;
} progress_log;

static void on_progress(void *ud, const char *what, uint64_t done, uint64_t total) {
  progress_log *p = ud;
  ck_assert_str_eq(what, "save");
  if (p->calls && done < p->last_done) p->monotonic = 0;
  p->calls++;
  p->last_done = done;
  p->last_total = total;
}

START_TEST(test_roundtrip_single) {
  int64_t s1[2] = {3, 5}, s2[1] = {7}, s3[3] = {2, 3, 4};
  pf_tensor *t[4] = {make(PF_DTYPE_F32, 2, s1, 1), make(PF_DTYPE_BF16, 1, s2, 2),
                     make(PF_DTYPE_F16, 3, s3, 3), make(PF_DTYPE_F32, 0, NULL, 4)};
  pf_st_entry e[4] = {{"z.weight", t[0]}, {"a.bias", t[1]}, {"m.norm", t[2]}, {"scalar", t[3]}};
  progress_log pl = {.monotonic = 1};
  pf_ctx ctx = {.progress = on_progress, .user_data = &pl};
  pf_err err = {0};
  ck_assert_msg(pf_st_write(g_dir, e, 4, 0, NULL, &ctx, &err) == PF_OK, "%s", err.msg);
  ck_assert(pl.calls >= 2 && pl.monotonic);
  ck_assert_uint_eq(pl.last_done, 60 + 14 + 48 + 4);
  ck_assert_uint_eq(pl.last_total, pl.last_done);

  /* raw layout: header length is a multiple of 8, offsets follow entry order */
  char *path = in_dir("model.safetensors");
  size_t len = 0;
  char *raw = pf_test_read(path, &len);
  uint64_t hl = 0;
  for (int i = 7; i >= 0; i--)
    hl = (hl << 8) | (unsigned char)raw[i];
  ck_assert_uint_eq(hl % 8, 0);
  ck_assert_uint_eq(len, 8 + hl + 126);
  ck_assert(strstr(raw + 8, "\"__metadata__\":{\"format\":\"pt\"}") != NULL);
  ck_assert(strstr(raw + 8, "\"z.weight\":{\"dtype\":\"F32\",\"shape\":[3,5],"
                            "\"data_offsets\":[0,60]}") != NULL);
  ck_assert(strstr(raw + 8, "\"a.bias\":{\"dtype\":\"BF16\",\"shape\":[7],"
                            "\"data_offsets\":[60,74]}") != NULL);
  ck_assert(strstr(raw + 8, "\"scalar\":{\"dtype\":\"F32\",\"shape\":[],") != NULL);
  free(raw);

  pf_st_reader *r = NULL;
  ck_assert_msg(pf_st_open(g_dir, &r, &err) == PF_OK, "%s", err.msg);
  ck_assert_uint_eq(pf_st_count(r), 4);
  ck_assert_str_eq(pf_st_name(r, 0), "a.bias");
  ck_assert_str_eq(pf_st_name(r, 1), "m.norm");
  ck_assert_str_eq(pf_st_name(r, 2), "scalar");
  ck_assert_str_eq(pf_st_name(r, 3), "z.weight");
  ck_assert_ptr_null(pf_st_name(r, 4));
  ck_assert_uint_eq(pf_st_shard_count(r), 1);
  ck_assert_uint_eq(pf_st_total_bytes(r), 126);
  ck_assert_str_eq(pf_st_metadata(r, "format"), "pt");
  ck_assert_ptr_null(pf_st_metadata(r, "nope"));
  ck_assert(pf_st_has(r, "m.norm"));
  ck_assert(!pf_st_has(r, "m.nor"));
  for (int i = 0; i < 4; i++)
    assert_same(r, e[i].name, t[i]);
  pf_tensor *v = (pf_tensor *)1;
  ck_assert_int_eq(pf_st_get(r, "lm_head.weight", &v, &err), PF_ERR_NOT_FOUND);
  ck_assert_ptr_null(v);
  pf_assert_err(err, "'lm_head.weight' not found");
  pf_assert_err(err, "model.safetensors");
  /* views outlive the reader */
  ck_assert_int_eq(pf_st_get(r, "z.weight", &v, &err), PF_OK);
  pf_st_close(r);
  ck_assert_int_eq(memcmp(v->data, t[0]->data, 60), 0);
  ck_assert_str_eq(pf_storage_path(v->storage), path);
  pf_tensor_release(v);
  /* opening the file directly works too */
  ck_assert_int_eq(pf_st_open(path, &r, &err), PF_OK);
  ck_assert_uint_eq(pf_st_count(r), 4);
  pf_st_close(r);
  pf_st_close(NULL);
  for (int i = 0; i < 4; i++)
    pf_tensor_release(t[i]);
  free(path);
}
END_TEST

/* Resident pages of this process (/proc/self/statm), in bytes. */
static long long rss_bytes(void) {
  long long size = 0, res = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  ck_assert_ptr_nonnull(f);
  ck_assert_int_eq(fscanf(f, "%lld %lld", &size, &res), 2);
  fclose(f);
  return res * sysconf(_SC_PAGESIZE);
}

/* A mapped tensor's pages leave the process with pf_tensor_release_pages and come
 * back with pf_tensor_prefetch (RSS moves by about its size), its bytes never
 * change; both are no-ops on heap tensors. */
START_TEST(test_prefetch_release_pages) {
  int64_t shape[2] = {1024, 2048}, small_shape[2] = {240, 1024}; /* 8 MiB, 960 KiB of f32 */
  pf_tensor *t = make(PF_DTYPE_F32, 2, shape, 5), *ts = make(PF_DTYPE_F32, 2, small_shape, 6);
  pf_st_entry e[2] = {{"w", t}, {"s", ts}};
  pf_err err = {0};
  ck_assert_msg(pf_st_write(g_dir, e, 2, 0, NULL, NULL, &err) == PF_OK, "%s", err.msg);
  pf_st_reader *r = NULL;
  pf_tensor *v = NULL, *vs = NULL;
  ck_assert_msg(pf_st_open(g_dir, &r, &err) == PF_OK, "%s", err.msg);
  ck_assert_int_eq(pf_st_get(r, "w", &v, &err), PF_OK);
  ck_assert_int_eq(pf_st_get(r, "s", &vs, &err), PF_OK);
  /* a tensor under 1 MiB keeps its pages (the drop would cost more than it frees) */
  pf_tensor_prefetch(vs);
  const long long small_in = rss_bytes();
  pf_tensor_release_pages(vs);
  const long long small_out = rss_bytes(); /* dropped, it would fall by ~960 KiB */
  ck_assert_msg(small_in - small_out < 256 << 10, "small tensor: RSS %lld -> %lld", small_in,
                small_out);
  /* a range of a large one: the whole pages inside it (2 MiB of the 8) */
  pf_tensor_prefetch(v);
  const long long range_in = rss_bytes();
  pf_tensor_drop_range(v, (const char *)v->data + 100, (size_t)2 << 20);
  const long long range_out = range_in - rss_bytes();
  ck_assert_msg(range_out > (3 << 20) / 2 && range_out <= 2 << 20, "range: RSS %lld -> %lld",
                range_in, rss_bytes());
  pf_tensor_prefetch(v);
  const long long in = rss_bytes();
  pf_tensor_release_pages(v);
  const long long out = rss_bytes();
  pf_tensor_prefetch(v);
  const long long back = rss_bytes();
  ck_assert_msg(in - out > 6 << 20, "release: RSS %lld -> %lld", in, out);
  ck_assert_msg(back - out > 6 << 20, "prefetch: RSS %lld -> %lld", out, back);
  pf_tensor_release_pages(v); /* the path for kernels without MADV_POPULATE_READ */
  pf_tensor_populate_read = 0;
  const long long out2 = rss_bytes();
  pf_tensor_prefetch(v);
  pf_tensor_populate_read = 1;
  ck_assert_msg(rss_bytes() - out2 > 6 << 20, "prefetch (touch): RSS %lld -> %lld", out2,
                rss_bytes());
  ck_assert_int_eq(memcmp(v->data, t->data, t->nbytes), 0);
  pf_tensor_prefetch(t); /* heap: nothing happens */
  pf_tensor_release_pages(t);
  pf_tensor_prefetch(NULL);
  ck_assert_int_eq(memcmp(v->data, t->data, t->nbytes), 0);
  ck_assert_int_eq(memcmp(vs->data, ts->data, ts->nbytes), 0);
  pf_tensor_release(v);
  pf_tensor_release(vs);
  pf_st_close(r);
  pf_tensor_release(t);
  pf_tensor_release(ts);
}
END_TEST

/* Read the index back with cJSON: total_size, sorted weight_map, shard names. */
/* Tensors read from a file are copied file to file (copy_file_range), whole or
 * as runs of kept rows; the bytes must be the mapped ones, also when the input
 * file has been replaced since it was opened (then the mapping is written). */
static void assert_same_bytes(const pf_st_reader *r, const char *name, const pf_tensor *want) {
  pf_tensor *got = NULL;
  pf_err err = {0};
  ck_assert_msg(pf_st_get(r, name, &got, &err) == PF_OK, "%s", err.msg);
  ck_assert_uint_eq(got->nbytes, want->nbytes);
  unsigned char *b = malloc(want->nbytes ? want->nbytes : 1);
  pf_tensor_read(want, 0, want->nbytes / pf_dtype_size(want->dtype), b);
  ck_assert_msg(memcmp(got->data, b, want->nbytes) == 0, "%s: bytes differ", name);
  free(b);
  pf_tensor_release(got);
}

static void save_selections(const pf_st_reader *in, const char *out) {
  pf_tensor *w = NULL, *b = NULL, *rows = NULL, *cols = NULL, *all = NULL;
  pf_err err = {0};
  ck_assert_int_eq(pf_st_get(in, "w", &w, &err), PF_OK);
  ck_assert_int_eq(pf_st_get(in, "b", &b, &err), PF_OK);
  int64_t keep[] = {0, 1, 2, 5, 6, 9, 10, 11, 12, 63}, kc[] = {1, 2, 3, 40, 47};
  ck_assert_int_eq(pf_tensor_gather_rows(w, keep, 10, &rows, &err), PF_OK);
  ck_assert_int_eq(pf_tensor_gather_cols(w, kc, 5, &cols, &err), PF_OK);
  int64_t every[64];
  for (int i = 0; i < 64; i++)
    every[i] = i;
  ck_assert_int_eq(pf_tensor_gather_rows(w, every, 64, &all, &err), PF_OK);
  pf_st_entry e[5] = {{"b", b}, {"rows", rows}, {"w", w}, {"cols", cols}, {"all", all}};
  progress_log pl = {.monotonic = 1};
  pf_ctx ctx = {.progress = on_progress, .user_data = &pl};
  ck_assert_int_eq(pf_mkdirs(out, &err), PF_OK);
  ck_assert_msg(pf_st_write(out, e, 5, 0, NULL, &ctx, &err) == PF_OK, "%s", err.msg);
  ck_assert(pl.monotonic);
  ck_assert_uint_eq(pl.last_done, pl.last_total);
  pf_st_reader *r = NULL;
  ck_assert_int_eq(pf_st_open(out, &r, &err), PF_OK);
  for (int i = 0; i < 5; i++)
    assert_same_bytes(r, e[i].name, e[i].tensor);
  pf_st_close(r);
  pf_tensor_release(w);
  pf_tensor_release(b);
  pf_tensor_release(rows);
  pf_tensor_release(cols);
  pf_tensor_release(all);
}

START_TEST(test_copy_from_file) {
  int64_t sw[2] = {64, 48}, sb[1] = {37};
  pf_tensor *t[2] = {make(PF_DTYPE_BF16, 2, sw, 5), make(PF_DTYPE_F32, 1, sb, 6)};
  pf_st_entry e[2] = {{"b", t[1]}, {"w", t[0]}};
  pf_err err = {0};
  char *src = in_dir("src"), *o1 = in_dir("o1"), *o2 = in_dir("o2");
  ck_assert_int_eq(pf_mkdirs(src, &err), PF_OK);
  ck_assert_int_eq(pf_st_write(src, e, 2, 0, NULL, NULL, &err), PF_OK);
  pf_st_reader *in = NULL;
  ck_assert_int_eq(pf_st_open(src, &in, &err), PF_OK);
  save_selections(in, o1);
  /* replace the input file: the reader's mapping still has the old bytes */
  char *f = pf_path_join(src, "model.safetensors"), *g = pf_path_join(src, "other");
  unsigned char junk[4096];
  memset(junk, 0xab, sizeof junk);
  write_bytes(g, junk, sizeof junk);
  ck_assert_int_eq(rename(g, f), 0);
  save_selections(in, o2);
  pf_st_close(in);
  free(f);
  free(g);
  free(src);
  free(o1);
  free(o2);
  pf_tensor_release(t[0]);
  pf_tensor_release(t[1]);
}
END_TEST

/* Written `as` another dtype: each tensor (lazy ones too, and one larger than a
 * conversion chunk) reads back as pf_convert of its elements; shards are cut on
 * the converted sizes; progress counts the converted bytes. */
static void keep_log(void *ud, const char *msg) {
  snprintf(ud, 512, "%s", msg);
}

/* Values beyond float16's range become +-inf in a float16 checkpoint (as torch
 * writes them); the writer says how many, counting neither inf nor NaN inputs. */
START_TEST(test_write_f16_overflow) {
  const float v[] = {1.0f, 1e10f, -7e4f, 65504.0f, 65519.0f, 65520.0f, INFINITY, NAN, -2.5f};
  int64_t shape[1] = {9};
  pf_tensor *t = NULL;
  pf_err err = {0};
  ck_assert_int_eq(pf_tensor_new(PF_DTYPE_F32, 1, shape, &t, &err), PF_OK);
  memcpy(pf_tensor_mutable_data(t), v, sizeof v);
  pf_st_entry e = {"w", t};
  char log[512] = "";
  pf_ctx ctx = {.log = keep_log, .user_data = log};
  const pf_dtype as[] = {PF_DTYPE_F16, PF_DTYPE_BF16};
  for (int k = 0; k < 2; k++) {
    char sub[16];
    snprintf(sub, sizeof sub, "ovf%d", k);
    char *dir = in_dir(sub);
    ck_assert_int_eq(pf_mkdirs(dir, &err), PF_OK);
    log[0] = '\0';
    ck_assert_msg(pf_st_write(dir, &e, 1, 0, &as[k], &ctx, &err) == PF_OK, "%s", err.msg);
    if (k == 0) /* 1e10, -7e4 and 65520 overflow; 65519 rounds to 65504 */
      ck_assert_msg(strstr(log, "save: 3 finite values are beyond float16's range") != NULL,
                    "log: %s", log);
    else
      ck_assert_str_eq(log, ""); /* bfloat16 holds them */
    free(dir);
  }
  pf_tensor_release(t);
}
END_TEST

START_TEST(test_write_as) {
  int64_t s2[2] = {9, 5}, s1[1] = {7}, s3[3] = {2, 3, 4}, big[2] = {1100, 1000};
  pf_tensor *t[7] = {make(PF_DTYPE_F32, 2, s2, 1), make(PF_DTYPE_BF16, 1, s1, 2),
                     make(PF_DTYPE_F16, 3, s3, 3), make(PF_DTYPE_F32, 0, NULL, 4),
                     make(PF_DTYPE_F32, 2, big, 5)};
  for (size_t i = 0; i < 1100 * 1000; i++) /* finite values: NaN payloads are not the point */
    ((float *)pf_tensor_mutable_data(t[4]))[i] = (float)i * 0.37f - 1000.0f;
  for (size_t i = 0; i < 45; i++)
    ((float *)pf_tensor_mutable_data(t[0]))[i] = (float)i / 7.0f;
  int64_t keep[] = {0, 2, 3, 8}, kc[] = {4, 1};
  pf_err err = {0};
  ck_assert_int_eq(pf_tensor_gather_rows(t[0], keep, 4, &t[5], &err), PF_OK);
  ck_assert_int_eq(pf_tensor_gather_cols(t[4], kc, 2, &t[6], &err), PF_OK);
  const char *names[7] = {"a", "b", "c", "scalar", "big", "rows", "cols"};
  pf_st_entry e[7];
  for (int i = 0; i < 7; i++)
    e[i] = (pf_st_entry){names[i], t[i]};
  for (int as = PF_DTYPE_F32; as <= PF_DTYPE_BF16; as++) {
    for (int sharded = 0; sharded < 2; sharded++) {
      const pf_dtype dt = (pf_dtype)as;
      char sub[32];
      snprintf(sub, sizeof sub, "as%d-%d", as, sharded);
      char *dir = in_dir(sub);
      ck_assert_int_eq(pf_mkdirs(dir, &err), PF_OK);
      progress_log pl = {.monotonic = 1};
      pf_ctx ctx = {.progress = on_progress, .user_data = &pl};
      ck_assert_msg(pf_st_write(dir, e, 7, sharded ? 100 : 0, &dt, &ctx, &err) == PF_OK, "%s",
                    err.msg);
      uint64_t total = 0;
      for (int i = 0; i < 7; i++)
        total += (uint64_t)pf_tensor_numel(t[i]) * pf_dtype_size(dt);
      ck_assert_uint_eq(pl.last_done, total);
      ck_assert_uint_eq(pl.last_total, total);
      char *index = pf_path_join(dir, "model.safetensors.index.json");
      ck_assert_int_eq(pf_path_exists(index), sharded);
      free(index);
      pf_st_reader *r = NULL;
      ck_assert_msg(pf_st_open(dir, &r, &err) == PF_OK, "%s", err.msg);
      for (int i = 0; i < 7; i++) {
        pf_tensor *got = NULL;
        ck_assert_int_eq(pf_st_get(r, names[i], &got, &err), PF_OK);
        size_t n = (size_t)pf_tensor_numel(t[i]), os = pf_dtype_size(dt);
        ck_assert_int_eq(got->dtype, dt);
        ck_assert_int_eq(got->ndim, t[i]->ndim);
        ck_assert_uint_eq(got->nbytes, n * os);
        void *raw = malloc(n * 4 + 1), *want = malloc(n * os + 1);
        pf_tensor_read(t[i], 0, n, raw);
        pf_convert(want, dt, raw, t[i]->dtype, n);
        ck_assert_msg(!memcmp(got->data, want, n * os), "%s as %s differs", names[i],
                      pf_dtype_st_name(dt));
        free(raw);
        free(want);
        pf_tensor_release(got);
      }
      pf_st_close(r);
      free(dir);
    }
  }
  for (int i = 0; i < 7; i++)
    pf_tensor_release(t[i]);
}
END_TEST

static void check_index(int nshards, const pf_st_entry *e, const int *shard_of, int n,
                        uint64_t total) {
  char *path = in_dir("model.safetensors.index.json");
  char *text = pf_test_read(path, NULL);
  ck_assert_ptr_nonnull(text);
  ck_assert(strstr(text, "{\n  \"metadata\": {\n    \"total_size\": ") == text);
  cJSON *root = cJSON_Parse(text);
  ck_assert_ptr_nonnull(root);
  cJSON *ts = cJSON_GetObjectItem(cJSON_GetObjectItem(root, "metadata"), "total_size");
  ck_assert_uint_eq((uint64_t)ts->valuedouble, total);
  cJSON *wm = cJSON_GetObjectItem(root, "weight_map"), *it;
  ck_assert_int_eq(cJSON_GetArraySize(wm), n);
  const char *prev = "";
  cJSON_ArrayForEach(it, wm) {
    ck_assert_int_lt(strcmp(prev, it->string), 0); /* sorted */
    prev = it->string;
    for (int i = 0; i < n; i++) {
      if (strcmp(e[i].name, it->string)) continue;
      char want[64];
      snprintf(want, sizeof want, "model-%05d-of-%05d.safetensors", shard_of[i] + 1, nshards);
      ck_assert_str_eq(it->valuestring, want);
    }
  }
  cJSON_Delete(root);
  free(text);
  free(path);
}

START_TEST(test_roundtrip_sharded) {
  int64_t s10[1] = {10};
  pf_tensor *t[5];
  pf_st_entry e[5];
  const char *names[5] = {"layers.4.w", "layers.0.w", "layers.3.w", "layers.1.w", "layers.2.w"};
  for (int i = 0; i < 5; i++) {
    t[i] = make(PF_DTYPE_F32, 1, s10, (unsigned)i + 10); /* 40 bytes each */
    e[i] = (pf_st_entry){names[i], t[i]};
  }
  pf_err err = {0};
  ck_assert_msg(pf_st_write(g_dir, e, 5, 100, NULL, NULL, &err) == PF_OK, "%s", err.msg);
  int shard_of[5] = {0, 0, 1, 1, 2}; /* 40+40 fit, +40 would tip over 100 */
  check_index(3, e, shard_of, 5, 200);
  char *single = in_dir("model.safetensors"), *s3 = in_dir("model-00003-of-00003.safetensors");
  ck_assert(!pf_path_exists(single));
  ck_assert(pf_path_exists(s3));
  pf_st_reader *r = NULL;
  ck_assert_msg(pf_st_open(g_dir, &r, &err) == PF_OK, "%s", err.msg);
  ck_assert_uint_eq(pf_st_count(r), 5);
  ck_assert_uint_eq(pf_st_shard_count(r), 3);
  ck_assert_uint_eq(pf_st_total_bytes(r), 200);
  ck_assert_str_eq(pf_st_name(r, 0), "layers.0.w");
  ck_assert_str_eq(pf_st_metadata(r, "format"), "pt");
  for (int i = 0; i < 5; i++)
    assert_same(r, names[i], t[i]);
  pf_tensor *v = NULL;
  ck_assert_int_eq(pf_st_get(r, "nope", &v, &err), PF_ERR_NOT_FOUND);
  pf_assert_err(err, "searched 3 shards");
  pf_st_close(r);
  char *index = in_dir("model.safetensors.index.json");
  ck_assert_int_eq(pf_st_open(index, &r, &err), PF_OK);
  ck_assert_uint_eq(pf_st_count(r), 5);
  pf_st_close(r);
  for (int i = 0; i < 5; i++)
    pf_tensor_release(t[i]);
  free(index);
  free(single);
  free(s3);
}
END_TEST

START_TEST(test_shard_larger_than_limit) {
  int64_t small[1] = {10}, big[2] = {10, 10};
  pf_tensor *a = make(PF_DTYPE_F32, 1, small, 1), *b = make(PF_DTYPE_BF16, 2, big, 2),
            *c = make(PF_DTYPE_F32, 1, small, 3);
  pf_st_entry e[3] = {{"a", a}, {"b", b}, {"c", c}}; /* 40, 200, 40 */
  pf_err err = {0};
  ck_assert_msg(pf_st_write(g_dir, e, 3, 100, NULL, NULL, &err) == PF_OK, "%s", err.msg);
  int shard_of[3] = {0, 1, 2}; /* the big tensor gets a shard of its own */
  check_index(3, e, shard_of, 3, 280);
  pf_st_reader *r = NULL;
  ck_assert_msg(pf_st_open(g_dir, &r, &err) == PF_OK, "%s", err.msg);
  assert_same(r, "a", a);
  assert_same(r, "b", b);
  assert_same(r, "c", c);
  pf_st_close(r);
  pf_tensor_release(a);
  pf_tensor_release(b);
  pf_tensor_release(c);
}
END_TEST

START_TEST(test_write_errors) {
  int64_t s4[1] = {4};
  pf_tensor *t = make(PF_DTYPE_F32, 1, s4, 1), *p = NULL;
  ck_assert_int_eq(pf_tensor_new_planned(PF_DTYPE_F32, 1, s4, &p, NULL), PF_OK);
  pf_err err = {0};
  pf_st_entry planned[2] = {{"ok", t}, {"plan", p}};
  ck_assert_int_eq(pf_st_write(g_dir, planned, 2, 0, NULL, NULL, &err), PF_ERR_INVALID);
  pf_assert_err(err, "tensor 'plan': planned tensor");
  pf_st_entry dup[2] = {{"x", t}, {"x", t}};
  ck_assert_int_eq(pf_st_write(g_dir, dup, 2, 0, NULL, NULL, &err), PF_ERR_INVALID);
  pf_assert_err(err, "'x' appears twice");
  pf_st_entry meta[1] = {{"__metadata__", t}};
  ck_assert_int_eq(pf_st_write(g_dir, meta, 1, 0, NULL, NULL, &err), PF_ERR_INVALID);
  char *missing = in_dir("no/such");
  ck_assert_int_eq(pf_st_write(missing, planned, 1, 0, NULL, NULL, &err), PF_ERR_IO);
  pf_assert_err(err, "no/such: output folder does not exist");
  volatile int stop = 1;
  pf_ctx ctx = {.interrupt = &stop};
  ck_assert_int_eq(pf_st_write(g_dir, planned, 1, 0, NULL, &ctx, &err), PF_ERR_INTERRUPTED);
  char *single = in_dir("model.safetensors");
  ck_assert(!pf_path_exists(single)); /* partial file removed */
  if (pf_path_exists("/dev/full")) {  /* ENOSPC is reported with the file name */
    char *d = pf_test_tmpdir("stfull");
    char *f = pf_path_join(d, "model.safetensors");
    ck_assert_int_eq(symlink("/dev/full", f), 0);
    ck_assert_int_eq(pf_st_write(d, planned, 1, 0, NULL, NULL, &err), PF_ERR_IO);
    pf_assert_err(err, "model.safetensors: write failed: No space left on device");
    pf_test_rmtree(d);
    free(f);
    free(d);
  }
  ck_assert_int_eq(pf_st_write(g_dir, NULL, 0, 0, NULL, NULL, &err), PF_OK); /* empty checkpoint */
  pf_st_reader *r = NULL;
  ck_assert_int_eq(pf_st_open(g_dir, &r, &err), PF_OK);
  ck_assert_uint_eq(pf_st_count(r), 0);
  pf_st_close(r);
  pf_tensor_release(t);
  pf_tensor_release(p);
  free(single);
  free(missing);
}
END_TEST

/* ---- crafted malformed files ---- */

#define OK_A "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}"

START_TEST(test_reader_valid_crafted) {
  /* padded header, extra keys ignored, zero-length tensor, metadata of strings */
  write_st("pad.safetensors",
           "{" OK_A ",\"e\":{\"dtype\":\"BF16\",\"shape\":[0,3],\"data_offsets\":[8,8],\"x\":1},"
           "\"__metadata__\":{\"format\":\"pt\",\"k\":\"v\"}}        ",
           8);
  char *p = in_dir("pad.safetensors");
  pf_st_reader *r = NULL;
  pf_err err = {0};
  ck_assert_msg(pf_st_open(p, &r, &err) == PF_OK, "%s", err.msg);
  ck_assert_uint_eq(pf_st_count(r), 2);
  ck_assert_str_eq(pf_st_metadata(r, "k"), "v");
  pf_tensor *t = NULL;
  ck_assert_int_eq(pf_st_get(r, "e", &t, &err), PF_OK);
  ck_assert_uint_eq(t->nbytes, 0);
  ck_assert_ptr_nonnull(t->data);
  pf_tensor_release(t);
  pf_st_close(r);
  free(p);
}
END_TEST

/* A header of any length is valid, so tensor bytes may start at an odd address: such a
 * tensor is copied to aligned storage with the same values (kernels read aligned
 * elements); an aligned one stays a view of the mapping. */
START_TEST(test_reader_unaligned_data) {
  for (int extra = 0; extra < 4; extra++) {
    const char *h = "{\"f\":{\"dtype\":\"F32\",\"shape\":[3,2],\"data_offsets\":[0,24]},"
                    "\"b\":{\"dtype\":\"BF16\",\"shape\":[5],\"data_offsets\":[24,34]},"
                    "\"h\":{\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[34,36]}}";
    char header[512];
    snprintf(header, sizeof header, "%s%.*s", h, extra, "   ");
    const size_t hl = strlen(header), n = 8 + hl + 36;
    unsigned char *buf = calloc(1, n);
    for (int i = 0; i < 8; i++)
      buf[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    memcpy(buf + 8, header, hl);
    unsigned char *data = buf + 8 + hl;
    for (int i = 0; i < 36; i++)
      data[i] = (unsigned char)(i * 37 + 11);
    char *p = in_dir("odd.safetensors");
    write_bytes(p, buf, n);
    pf_st_reader *r = NULL;
    pf_err err = {0};
    ck_assert_msg(pf_st_open(p, &r, &err) == PF_OK, "%s", err.msg);
    int64_t sh[PF_MAX_DIMS];
    ck_assert_int_eq(pf_st_shape(r, "f", sh), 2); /* the header's shape, no tensor made */
    ck_assert(sh[0] == 3 && sh[1] == 2);
    ck_assert_int_eq(pf_st_shape(r, "nope", sh), -1);
    const char *names[] = {"f", "b", "h"};
    const size_t at[] = {0, 24, 34}, esize[] = {4, 2, 2};
    for (int k = 0; k < 3; k++) {
      pf_tensor *t = NULL;
      ck_assert_msg(pf_st_get(r, names[k], &t, &err) == PF_OK, "%s", err.msg);
      ck_assert_uint_eq((uintptr_t)t->data % esize[k], 0);
      ck_assert_int_eq(memcmp(t->data, data + at[k], t->nbytes), 0);
      const int aligned = (8 + hl + at[k]) % esize[k] == 0;
      pf_file_region reg;
      ck_assert_int_eq(pf_tensor_file_region(t, &reg), aligned); /* a view, or a copy */
      pf_tensor_release(t);
    }
    pf_st_close(r);
    free(p);
    free(buf);
  }
}
END_TEST

START_TEST(test_reader_header_errors) {
  char *p = in_dir("short.safetensors");
  write_bytes(p, "\x05\0\0\0", 4);
  free(p);
  expect_fail("short.safetensors", PF_ERR_FORMAT, "file has 4 bytes", "at least 8");
  p = in_dir("eof.safetensors"); /* claim 64 header bytes in a 10-byte file */
  write_bytes(p, "\x40\0\0\0\0\0\0\0{}", 10);
  free(p);
  expect_fail("eof.safetensors", PF_ERR_FORMAT, "header length 64", "past the end of the file");
  p = in_dir("huge.safetensors");
  write_bytes(p, "\xff\xff\xff\xff\xff\xff\xff\x7f{}", 10);
  free(p);
  expect_fail("huge.safetensors", PF_ERR_FORMAT, "exceeds the limit", NULL);
  write_st("notjson.safetensors", "{\"a\": {\"dtype\": ", 0);
  expect_fail("notjson.safetensors", PF_ERR_FORMAT, "not valid JSON", NULL);
  write_st("array.safetensors", "[1, 2]  ", 0);
  expect_fail("array.safetensors", PF_ERR_FORMAT, "expected a JSON object, found an array", NULL);
  write_st("trail.safetensors", "{}  x", 0);
  expect_fail("trail.safetensors", PF_ERR_FORMAT, "unexpected bytes after the JSON", NULL);
  write_st("entry.safetensors", "{\"a\":[1]}", 0);
  expect_fail("entry.safetensors", PF_ERR_FORMAT, "tensor 'a': expected an object", NULL);
  write_st("meta.safetensors", "{\"__metadata__\":{\"format\":\"pt\",\"n\":1}}", 0);
  expect_fail("meta.safetensors", PF_ERR_FORMAT, "__metadata__", "'n' is a number");
  write_st("meta2.safetensors", "{\"__metadata__\":[]}", 0);
  expect_fail("meta2.safetensors", PF_ERR_FORMAT, "__metadata__", "expected an object");
  write_st("dup.safetensors", "{" OK_A "," OK_A "}", 8);
  expect_fail("dup.safetensors", PF_ERR_FORMAT, "tensor 'a' appears twice", NULL);
}
END_TEST

START_TEST(test_reader_entry_errors) {
  write_st("nodtype.safetensors", "{\"a\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8);
  expect_fail("nodtype.safetensors", PF_ERR_FORMAT, "tensor 'a'", "\"dtype\" string");
  write_st("noshape.safetensors", "{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", 8);
  expect_fail("noshape.safetensors", PF_ERR_FORMAT, "tensor 'a'", "\"shape\" array");
  write_st("nooff.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8);
  expect_fail("nooff.safetensors", PF_ERR_FORMAT, "tensor 'a'", "data_offsets");
  write_st("negshape.safetensors",
           "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,-1],\"data_offsets\":[0,8]}}", 8);
  expect_fail("negshape.safetensors", PF_ERR_FORMAT, "shape[1] is -1", "non-negative integer");
  write_st("fracshape.safetensors",
           "{\"a\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,8]}}", 8);
  expect_fail("fracshape.safetensors", PF_ERR_FORMAT, "shape[0]", NULL);
  write_st("dims.safetensors",
           "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,2],\"data_offsets\":[0,8]}}", 8);
  expect_fail("dims.safetensors", PF_ERR_UNSUPPORTED, "5 dimensions", NULL);
  write_st("overflow.safetensors",
           "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,8]}}",
           8);
  expect_fail("overflow.safetensors", PF_ERR_FORMAT, "overflows", NULL);
  write_st("order.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}",
           8);
  expect_fail("order.safetensors", PF_ERR_FORMAT, "[8, 0]", "begin > end");
  write_st("past.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
           8);
  expect_fail("past.safetensors", PF_ERR_FORMAT, "end 12 is past the data section of 8 bytes",
              NULL);
  write_st("size.safetensors",
           "{\"model.norm.weight\":{\"dtype\":\"F32\",\"shape\":[64],\"data_offsets\":[0,128]}}",
           128);
  expect_fail("size.safetensors", PF_ERR_FORMAT,
              "tensor 'model.norm.weight': dtype F32 shape [64] needs 256 bytes, "
              "data_offsets give 128",
              NULL);
  write_st("overlap.safetensors",
           "{" OK_A ",\"b\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[4,12]}}", 12);
  expect_fail("overlap.safetensors", PF_ERR_FORMAT, "tensors 'a' and 'b' overlap", NULL);
  write_st("i64.safetensors", "{\"ids\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]}}",
           8);
  expect_fail("i64.safetensors", PF_ERR_UNSUPPORTED, "tensor 'ids'", "dtype I64 is not supported");
  write_st("f8.safetensors", "{\"q\":{\"dtype\":\"F8_E4M3\",\"shape\":[8],\"data_offsets\":[0,8]}}",
           8);
  expect_fail("f8.safetensors", PF_ERR_UNSUPPORTED, "dtype F8_E4M3", NULL);
  write_st("bogus.safetensors", "{\"q\":{\"dtype\":\"Q4\",\"shape\":[8],\"data_offsets\":[0,8]}}",
           8);
  expect_fail("bogus.safetensors", PF_ERR_FORMAT, "unknown dtype 'Q4'", NULL);
}
END_TEST

/* ---- sharded folders ---- */

static void write_index(const char *json) {
  char *p = in_dir("model.safetensors.index.json");
  pf_test_write(p, json);
  free(p);
}

static void expect_index_fail(pf_status code, const char *n1, const char *n2) {
  expect_fail("model.safetensors.index.json", code, n1, n2);
}

START_TEST(test_index_errors) {
  write_st("s1.safetensors",
           "{" OK_A ",\"extra\":{\"dtype\":\"F32\",\"shape\":[1],"
           "\"data_offsets\":[8,12]}}",
           12);
  /* tensors in a shard but not in the weight_map are ignored */
  write_index("{\"metadata\":{},\"weight_map\":{\"a\":\"s1.safetensors\"}}");
  pf_st_reader *r = NULL;
  pf_err err = {0};
  ck_assert_msg(pf_st_open(g_dir, &r, &err) == PF_OK, "%s", err.msg);
  ck_assert_uint_eq(pf_st_count(r), 1);
  ck_assert(!pf_st_has(r, "extra"));
  pf_st_close(r);

  write_index("{\"weight_map\":{\"a\":\"s1.safetensors\",\"b\":\"missing.safetensors\"}}");
  expect_index_fail(PF_ERR_NOT_FOUND, "missing.safetensors", "cannot open");
  write_index("{\"weight_map\":{\"a\":\"s1.safetensors\",\"zz\":\"s1.safetensors\"}}");
  expect_index_fail(PF_ERR_FORMAT, "tensor 'zz' is mapped to s1.safetensors", "has no such tensor");
  write_index("{\"weight_map\":{\"a\":\"../s1.safetensors\"}}");
  expect_index_fail(PF_ERR_FORMAT, "weight_map['a']", "'../s1.safetensors'");
  write_index("{\"weight_map\":{\"a\":\"sub/s1.safetensors\"}}");
  expect_index_fail(PF_ERR_FORMAT, "shard file name", NULL);
  write_index("{\"weight_map\":{\"a\":3}}");
  expect_index_fail(PF_ERR_FORMAT, "weight_map['a']", "a number");
  write_index("{\"weight_map\":{\"a\":\"s1.safetensors\",\"a\":\"s1.safetensors\"}}");
  expect_index_fail(PF_ERR_FORMAT, "lists tensor 'a' twice", NULL);
  write_index("{\"metadata\":{}}");
  expect_index_fail(PF_ERR_FORMAT, "\"weight_map\" object", NULL);
  write_index("not json");
  expect_index_fail(PF_ERR_FORMAT, "not a JSON object", NULL);
  /* a broken shard is reported with the index and the shard name */
  write_st("s2.safetensors", "{\"b\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]}}", 8);
  write_index("{\"weight_map\":{\"a\":\"s1.safetensors\",\"b\":\"s2.safetensors\"}}");
  expect_index_fail(PF_ERR_UNSUPPORTED, "s2.safetensors", "dtype I64");
}
END_TEST

START_TEST(test_open_missing) {
  pf_st_reader *r = (pf_st_reader *)1;
  pf_err err = {0};
  ck_assert_int_eq(pf_st_open(g_dir, &r, &err), PF_ERR_NOT_FOUND);
  ck_assert_ptr_null(r);
  pf_assert_err(err, "no model.safetensors or model.safetensors.index.json");
  char *p = in_dir("x.safetensors");
  ck_assert_int_eq(pf_st_open(p, &r, &err), PF_ERR_NOT_FOUND);
  pf_assert_err(err, "x.safetensors");
  free(p);
}
END_TEST

START_TEST(test_stories260k) {
  char *path = pf_test_shared("models/stories260K/model.safetensors", "stories260K reader test");
  if (!path) return;
  pf_st_reader *r = NULL;
  pf_err err = {0};
  ck_assert_msg(pf_st_open(path, &r, &err) == PF_OK, "%s", err.msg);
  ck_assert_uint_eq(pf_st_count(r), 47);
  ck_assert_str_eq(pf_st_metadata(r, "format"), "pt");
  pf_tensor *t = NULL;
  ck_assert_int_eq(pf_st_get(r, "model.embed_tokens.weight", &t, &err), PF_OK);
  ck_assert_int_eq(t->dtype, PF_DTYPE_F32);
  ck_assert_int_eq(t->ndim, 2);
  ck_assert_int_eq(t->shape[0], 512);
  ck_assert_int_eq(t->shape[1], 64);
  /* first element's bits as read by Python's struct from the same file: 0xBE96E950 */
  uint32_t bits;
  memcpy(&bits, t->data, 4);
  ck_assert_uint_eq(bits, 0xBE96E950u);
  pf_tensor_release(t);
  ck_assert_int_eq(pf_st_get(r, "model.layers.0.mlp.down_proj.weight", &t, &err), PF_OK);
  ck_assert_int_eq(t->shape[0], 64);
  ck_assert_int_eq(t->shape[1], 172);
  pf_tensor_release(t);
  ck_assert_int_eq(pf_st_get(r, "model.layers.0.self_attn.k_proj.weight", &t, &err), PF_OK);
  ck_assert_int_eq(t->shape[0], 32);
  pf_tensor_release(t);
  ck_assert_int_eq(pf_st_get(r, "model.norm.weight", &t, &err), PF_OK);
  ck_assert_int_eq(t->ndim, 1);
  ck_assert_int_eq(t->shape[0], 64);
  pf_tensor_release(t);
  pf_st_close(r);
  free(path);
}
END_TEST

/* ---- sizes ---- */

START_TEST(test_parse_size) {
  struct {
    const char *s;
    uint64_t v;
  } ok[] = {{"5GB", 5000000000ull},
            {"500MB", 500000000ull},
            {"100KB", 100000ull},
            {"2GiB", 2ull << 30},
            {"1MiB", 1ull << 20},
            {"1000", 1000},
            {"42B", 42},
            {"5gb", 5000000000ull},
            {" 10 MB ", 10000000ull},
            {"1.5GB", 1500000000ull},
            {"2TB", 2000000000000ull},
            {"3KiB", 3072}};
  pf_err err = {0};
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    uint64_t v = 0;
    ck_assert_msg(pf_parse_size(ok[i].s, &v, &err) == PF_OK, "%s: %s", ok[i].s, err.msg);
    ck_assert_msg(v == ok[i].v, "%s -> %llu", ok[i].s, (unsigned long long)v);
  }
  const char *bad[] = {"",        "GB",         "5XB",
                       "abc",     "5 GB x",     "99999999999999999999999",
                       "1.2.3GB", "20000000TB", "18446744073709551.999KB"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    uint64_t v = 1;
    ck_assert_msg(pf_parse_size(bad[i], &v, &err) == PF_ERR_INVALID, "'%s' accepted", bad[i]);
    pf_assert_err(err, "expected a positive");
  }
  uint64_t v;
  ck_assert_int_eq(pf_parse_size("0", &v, &err), PF_ERR_INVALID);
  pf_assert_err(err, "got zero");
  ck_assert_int_eq(pf_parse_size("0MB", &v, &err), PF_ERR_INVALID);
  ck_assert_int_eq(pf_parse_size("-5GB", &v, &err), PF_ERR_INVALID);
  pf_assert_err(err, "negative");
  ck_assert_int_eq(pf_parse_size(NULL, &v, &err), PF_ERR_INVALID);
}
END_TEST

static Suite *make_suite(void) {
  Suite *s = suite_create("safetensors");
  TCase *rt = tcase_create("roundtrip");
  tcase_add_checked_fixture(rt, setup, teardown);
  tcase_add_test(rt, test_roundtrip_single);
  tcase_add_test(rt, test_prefetch_release_pages);
  tcase_add_test(rt, test_roundtrip_sharded);
  tcase_add_test(rt, test_shard_larger_than_limit);
  tcase_add_test(rt, test_write_errors);
  tcase_add_test(rt, test_copy_from_file);
  tcase_add_test(rt, test_write_as);
  suite_add_tcase(s, rt);
  TCase *bad = tcase_create("reader");
  tcase_add_checked_fixture(bad, setup, teardown);
  tcase_add_test(bad, test_reader_valid_crafted);
  tcase_add_test(bad, test_reader_unaligned_data);
  tcase_add_test(bad, test_write_f16_overflow);
  tcase_add_test(bad, test_reader_header_errors);
  tcase_add_test(bad, test_reader_entry_errors);
  tcase_add_test(bad, test_index_errors);
  tcase_add_test(bad, test_open_missing);
  tcase_add_test(bad, test_stories260k);
  suite_add_tcase(s, bad);
  TCase *sz = tcase_create("sizes");
  tcase_add_test(sz, test_parse_size);
  suite_add_tcase(s, sz);
  return s;
}

int main(void) {
  return pf_test_main(make_suite);
}
