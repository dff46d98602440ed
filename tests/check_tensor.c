/* check_tensor.c — dtypes, conversions, storage, views and selections.
 *
 * Reference values: f16 decoding is checked against an independent ldexp
 * formula ((-1)^s * m * 2^(e-25) with the implicit bit); float -> half rounding
 * is checked against a nearest-neighbour search over the decoded half values
 * (ties to the even code), so neither check reuses the bit tricks under test.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fsutil.h"
#include "tensor.h"
#include "testutil.h"

static uint32_t fbits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}

static float bitsf(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint32_t rnd32(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return (uint32_t)(rng_state >> 16);
}

/* ---- dtypes ---- */

START_TEST(test_dtype_names) {
  pf_dtype dt;
  pf_err err = {0};
  ck_assert_uint_eq(pf_dtype_size(PF_DTYPE_F32), 4);
  ck_assert_uint_eq(pf_dtype_size(PF_DTYPE_F16), 2);
  ck_assert_uint_eq(pf_dtype_size(PF_DTYPE_BF16), 2);
  ck_assert_str_eq(pf_dtype_st_name(PF_DTYPE_BF16), "BF16");
  ck_assert_str_eq(pf_dtype_torch_name(PF_DTYPE_F16), "float16");
  const char *ok[] = {"F32",  "float32", "fp32",     "F16", "float16",
                      "fp16", "BF16",    "bfloat16", "bf16"};
  pf_dtype want[] = {PF_DTYPE_F32, PF_DTYPE_F32,  PF_DTYPE_F32,  PF_DTYPE_F16, PF_DTYPE_F16,
                     PF_DTYPE_F16, PF_DTYPE_BF16, PF_DTYPE_BF16, PF_DTYPE_BF16};
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    ck_assert_int_eq(pf_dtype_parse(ok[i], &dt, &err), PF_OK);
    ck_assert_int_eq(dt, want[i]);
  }
  ck_assert_int_eq(pf_dtype_parse("int8", &dt, &err), PF_ERR_INVALID);
  pf_assert_err(err, "dtype 'int8'");
  pf_assert_err(err, "bfloat16");
}
END_TEST

/* ---- conversions ---- */

static double f16_reference(uint16_t h) {
  int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
  double v = e == 0 ? ldexp(m, -24) : ldexp(m + 1024, e - 25);
  return s ? -v : v;
}

START_TEST(test_f16_exhaustive) {
  for (uint32_t h = 0; h < 65536; h++) {
    float f = pf_f16_to_f32((uint16_t)h);
    int e = (h >> 10) & 31, m = h & 1023;
    if (e == 31 && m) {
      ck_assert_msg(isnan(f), "f16 %04x should decode to NaN", h);
      uint16_t back = pf_f32_to_f16(f);
      ck_assert_msg((back & 0x7c00) == 0x7c00 && (back & 0x3ff), "NaN %04x -> %04x", h, back);
      ck_assert_uint_eq(back & 0x8000, h & 0x8000);
      ck_assert_uint_eq(back & 0x200, 0x200); /* quiet */
      continue;
    }
    if (e == 31)
      ck_assert(isinf(f) && (signbit(f) != 0) == (int)(h >> 15));
    else
      ck_assert_msg((double)f == f16_reference((uint16_t)h), "f16 %04x decodes to %a", h, f);
    ck_assert_msg(pf_f32_to_f16(f) == h, "f16 %04x round trip gave %04x", h, pf_f32_to_f16(f));
  }
}
END_TEST

START_TEST(test_bf16_exhaustive) {
  for (uint32_t h = 0; h < 65536; h++) {
    float f = pf_bf16_to_f32((uint16_t)h);
    ck_assert_uint_eq(fbits(f), h << 16);
    uint16_t back = pf_f32_to_bf16(f);
    if ((h & 0x7f80) == 0x7f80 && (h & 0x7f)) {
      ck_assert_msg(isnan(pf_bf16_to_f32(back)), "NaN %04x -> %04x", h, back);
      ck_assert_uint_eq(back & 0x8000, h & 0x8000);
      ck_assert_uint_eq(back & 0x40, 0x40);
    } else {
      ck_assert_msg(back == h, "bf16 %04x round trip gave %04x", h, back);
    }
  }
}
END_TEST

START_TEST(test_bf16_rounding) {
  ck_assert_uint_eq(pf_f32_to_bf16(bitsf(0x3F808000)), 0x3F80); /* tie, even stays */
  ck_assert_uint_eq(pf_f32_to_bf16(bitsf(0x3F818000)), 0x3F82); /* tie, odd goes up */
  ck_assert_uint_eq(pf_f32_to_bf16(bitsf(0x3F808001)), 0x3F81); /* above the tie */
  ck_assert_uint_eq(pf_f32_to_bf16(bitsf(0x3F807FFF)), 0x3F80); /* below the tie */
  ck_assert_uint_eq(pf_f32_to_bf16(bitsf(0xBF818000)), 0xBF82); /* negative tie */
  ck_assert_uint_eq(pf_f32_to_bf16(bitsf(0x7F7FFFFF)), 0x7F80); /* FLT_MAX -> inf */
  ck_assert_uint_eq(pf_f32_to_bf16(bitsf(0xFF7FFFFF)), 0xFF80);
  ck_assert_uint_eq(pf_f32_to_bf16(INFINITY), 0x7F80);
  ck_assert_uint_eq(pf_f32_to_bf16(-0.0f), 0x8000);
  ck_assert_uint_eq(pf_f32_to_bf16(bitsf(0x00000001)), 0x0000); /* tiny denormal */
  ck_assert(isnan(pf_bf16_to_f32(pf_f32_to_bf16(NAN))));
  /* a signalling NaN whose payload lives only in the low bits must not become inf */
  uint16_t h = pf_f32_to_bf16(bitsf(0x7F800001));
  ck_assert(isnan(pf_bf16_to_f32(h)));
  ck_assert_uint_eq(pf_f32_to_bf16(bitsf(0xFFC00000)), 0xFFC0);
}
END_TEST

START_TEST(test_f16_rounding) {
  ck_assert_uint_eq(pf_f32_to_f16(65504.0f), 0x7BFF);
  ck_assert_uint_eq(pf_f32_to_f16(65519.0f), 0x7BFF);
  ck_assert_uint_eq(pf_f32_to_f16(65520.0f), 0x7C00); /* tie to even -> overflow */
  ck_assert_uint_eq(pf_f32_to_f16(1e6f), 0x7C00);
  ck_assert_uint_eq(pf_f32_to_f16(-1e6f), 0xFC00);
  ck_assert_uint_eq(pf_f32_to_f16(-INFINITY), 0xFC00);
  ck_assert_uint_eq(pf_f32_to_f16(1.0f), 0x3C00);
  ck_assert_uint_eq(pf_f32_to_f16(1.0f + 0x1p-11f), 0x3C00);     /* tie, even */
  ck_assert_uint_eq(pf_f32_to_f16(1.0f + 3 * 0x1p-11f), 0x3C02); /* tie, odd -> up */
  ck_assert_uint_eq(pf_f32_to_f16(0x1p-24f), 0x0001);            /* smallest subnormal */
  ck_assert_uint_eq(pf_f32_to_f16(0x1p-25f), 0x0000);            /* tie -> 0 */
  ck_assert_uint_eq(pf_f32_to_f16(bitsf(0x33000001)), 0x0001);   /* just above the tie */
  ck_assert_uint_eq(pf_f32_to_f16(3 * 0x1p-25f), 0x0002);        /* tie 1|2 -> 2 */
  ck_assert_uint_eq(pf_f32_to_f16(1023.5f * 0x1p-24f), 0x0400);  /* to the smallest normal */
  ck_assert_uint_eq(pf_f32_to_f16(-0x1p-30f), 0x8000);
  ck_assert_uint_eq(pf_f32_to_f16(NAN) & 0x7e00, 0x7e00);
}
END_TEST

/* Nearest half to x by search over neighbours (ties to even code). */
static void check_nearest_f16(float x) {
  uint16_t h = pf_f32_to_f16(x);
  double v = f16_reference(h), dx = fabs((double)x - v);
  for (int d = -1; d <= 1; d += 2) {
    int nb = (h & 0x7fff) + d;
    if (nb < 0 || nb > 0x7bff) continue;
    uint16_t hn = (uint16_t)((h & 0x8000) | nb);
    double dn = fabs((double)x - f16_reference(hn));
    ck_assert_msg(dx < dn || (dx == dn && (h & 1) == 0), "%a -> %04x, but %04x is nearer", x, h,
                  hn);
  }
}

START_TEST(test_f16_random_nearest) {
  for (int i = 0; i < 2000000; i++) {
    uint32_t u = rnd32();
    u = (u & 0x80000000u) | ((u & 0x7fffffffu) % 0x477fe000u); /* |x| <= 65504 */
    check_nearest_f16(bitsf(u));
  }
}
END_TEST

START_TEST(test_convert_bulk_matches_scalar) {
  enum { N = 65536 };
  uint16_t *h = malloc(N * 2), *h2 = malloc(N * 2);
  float *f = malloc(N * 4);
  for (uint32_t i = 0; i < N; i++)
    h[i] = (uint16_t)i;
  pf_convert(f, PF_DTYPE_F32, h, PF_DTYPE_F16, N);
  for (uint32_t i = 0; i < N; i++)
    ck_assert_msg(fbits(f[i]) == fbits(pf_f16_to_f32(h[i])), "f16 %04x", i);
  pf_convert(f, PF_DTYPE_F32, h, PF_DTYPE_BF16, N);
  for (uint32_t i = 0; i < N; i++)
    ck_assert_uint_eq(fbits(f[i]), i << 16);
  for (int round = 0; round < 16; round++) {
    for (uint32_t i = 0; i < N; i++)
      f[i] = bitsf(rnd32() ^ (rnd32() << 16));
    pf_convert(h, PF_DTYPE_F16, f, PF_DTYPE_F32, N);
    pf_convert(h2, PF_DTYPE_BF16, f, PF_DTYPE_F32, N);
    for (uint32_t i = 0; i < N; i++) {
      ck_assert_msg(h[i] == pf_f32_to_f16(f[i]), "%08x: bulk %04x scalar %04x", fbits(f[i]), h[i],
                    pf_f32_to_f16(f[i]));
      ck_assert_uint_eq(h2[i], pf_f32_to_bf16(f[i]));
    }
  }
  /* half <-> half goes through float32; unaligned float32 source */
  uint16_t src[3] = {0x3C00, 0xC000, 0x7C00}, dst[3];
  pf_convert(dst, PF_DTYPE_BF16, src, PF_DTYPE_F16, 3);
  ck_assert_uint_eq(dst[0], 0x3F80);
  ck_assert_uint_eq(dst[1], 0xC000);
  ck_assert_uint_eq(dst[2], 0x7F80);
  unsigned char raw[1 + 4 * 3];
  float vals[3] = {1.0f, -2.0f, 0.5f};
  memcpy(raw + 1, vals, sizeof vals);
  pf_convert(dst, PF_DTYPE_F16, raw + 1, PF_DTYPE_F32, 3);
  ck_assert_uint_eq(dst[0], 0x3C00);
  ck_assert_uint_eq(dst[1], 0xC000);
  ck_assert_uint_eq(dst[2], 0x3800);
  free(h);
  free(h2);
  free(f);
}
END_TEST

/* ---- storage and views ---- */

START_TEST(test_storage_heap) {
  pf_storage *s = NULL;
  pf_err err = {0};
  ck_assert_int_eq(pf_storage_new_heap(100, &s, &err), PF_OK);
  ck_assert_uint_eq(pf_storage_size(s), 100);
  ck_assert_ptr_null(pf_storage_path(s));
  unsigned char *p = pf_storage_data(s);
  for (int i = 0; i < 100; i++)
    ck_assert_uint_eq(p[i], 0);
  pf_storage_retain(s);
  pf_storage_release(s);
  pf_storage_release(s);
  pf_storage_release(NULL);
  ck_assert_int_eq(pf_storage_new_heap(0, &s, &err), PF_OK);
  ck_assert_uint_eq(pf_storage_size(s), 0);
  pf_storage_release(s);
}
END_TEST

/* Large heap storage (its own mapping in release builds, huge pages advised):
 * zeroed, writable to its last byte, not a file mapping, views work, and the
 * sizes just below and at the threshold behave alike. */
START_TEST(test_storage_heap_large) {
  const size_t sizes[3] = {PF_HEAP_HUGE_MIN - 1, PF_HEAP_HUGE_MIN, 3 * PF_HEAP_HUGE_MIN + 12345};
  for (int k = 0; k < 3; k++) {
    pf_storage *s = NULL;
    pf_err err = {0};
    ck_assert_int_eq(pf_storage_new_heap(sizes[k], &s, &err), PF_OK);
    ck_assert_uint_eq(pf_storage_size(s), sizes[k]);
    ck_assert_int_eq(pf_storage_is_mapped(s), 0);
    unsigned char *p = pf_storage_data(s);
    for (size_t i = 0; i < sizes[k]; i += 997)
      ck_assert_uint_eq(p[i], 0);
    ck_assert_uint_eq(p[sizes[k] - 1], 0);
    memset(p, 0xab, sizes[k]);
    const int64_t shape[1] = {(int64_t)(sizes[k] / 4)};
    pf_tensor *t = NULL;
    ck_assert_int_eq(pf_tensor_view(s, 0, PF_DTYPE_F32, 1, shape, &t, &err), PF_OK);
    pf_storage_release(s); /* the view keeps it */
    ck_assert_ptr_nonnull(pf_tensor_mutable_data(t));
    ck_assert_uint_eq(((const unsigned char *)t->data)[t->nbytes - 1], 0xab);
    pf_tensor_release(t);
  }
}
END_TEST

START_TEST(test_storage_map) {
  char *dir = pf_test_tmpdir("tensor");
  char *path = pf_path_join(dir, "blob.bin"), *empty = pf_path_join(dir, "empty.bin");
  pf_test_write(path, "0123456789");
  pf_test_write(empty, "");
  pf_storage *s = NULL;
  pf_err err = {0};
  ck_assert_int_eq(pf_storage_map_file(path, &s, &err), PF_OK);
  ck_assert_uint_eq(pf_storage_size(s), 10);
  ck_assert_str_eq(pf_storage_path(s), path);
  ck_assert_int_eq(memcmp(pf_storage_data(s), "0123456789", 10), 0);
  /* a view keeps the mapping alive after the storage reference is dropped */
  pf_tensor *t = NULL;
  int64_t shape[1] = {2};
  ck_assert_int_eq(pf_tensor_view(s, 4, PF_DTYPE_BF16, 1, shape, &t, &err), PF_OK);
  pf_storage_release(s);
  ck_assert_int_eq(memcmp(t->data, "4567", 4), 0);
  ck_assert_ptr_null(pf_tensor_mutable_data(t));
  pf_tensor_release(t);

  ck_assert_int_eq(pf_storage_map_file(empty, &s, &err), PF_OK);
  ck_assert_uint_eq(pf_storage_size(s), 0);
  shape[0] = 0;
  ck_assert_int_eq(pf_tensor_view(s, 0, PF_DTYPE_F32, 1, shape, &t, &err), PF_OK);
  ck_assert_ptr_nonnull(t->data); /* empty, but not a planned tensor */
  pf_tensor_release(t);
  pf_storage_release(s);

  char *missing = pf_path_join(dir, "missing.bin");
  s = (pf_storage *)1;
  ck_assert_int_eq(pf_storage_map_file(missing, &s, &err), PF_ERR_NOT_FOUND);
  ck_assert_ptr_null(s);
  pf_assert_err(err, "missing.bin");
  ck_assert_int_ne(pf_storage_map_file(dir, &s, &err), PF_OK);
  pf_assert_err(err, "regular file");
  pf_test_rmtree(dir);
  free(missing);
  free(path);
  free(empty);
  free(dir);
}
END_TEST

START_TEST(test_view_ranges) {
  pf_storage *s = NULL;
  pf_tensor *t = NULL;
  pf_err err = {0};
  ck_assert_int_eq(pf_storage_new_heap(64, &s, &err), PF_OK);
  int64_t shape[2] = {4, 4};
  ck_assert_int_eq(pf_tensor_view(s, 0, PF_DTYPE_F32, 2, shape, &t, &err), PF_OK);
  ck_assert_uint_eq(t->nbytes, 64);
  ck_assert_int_eq(pf_tensor_numel(t), 16);
  pf_tensor_release(t);
  ck_assert_int_eq(pf_tensor_view(s, 32, PF_DTYPE_BF16, 2, shape, &t, &err), PF_OK);
  pf_tensor_release(t);
  t = (pf_tensor *)1;
  ck_assert_int_eq(pf_tensor_view(s, 4, PF_DTYPE_F32, 2, shape, &t, &err), PF_ERR_INVALID);
  ck_assert_ptr_null(t);
  pf_assert_err(err, "needs 64 bytes, storage has 64");
  pf_assert_err(err, "offset 4");
  ck_assert_int_eq(pf_tensor_view(s, 100, PF_DTYPE_F32, 1, shape, &t, &err), PF_ERR_INVALID);
  ck_assert_int_eq(pf_tensor_view(s, SIZE_MAX, PF_DTYPE_F32, 1, shape, &t, &err), PF_ERR_INVALID);
  int64_t neg[2] = {4, -1};
  ck_assert_int_eq(pf_tensor_view(s, 0, PF_DTYPE_F32, 2, neg, &t, &err), PF_ERR_INVALID);
  pf_assert_err(err, "negative dimension");
  int64_t huge[3] = {INT64_MAX, INT64_MAX, 2};
  ck_assert_int_eq(pf_tensor_view(s, 0, PF_DTYPE_F32, 3, huge, &t, &err), PF_ERR_INVALID);
  pf_assert_err(err, "overflows");
  int64_t five[5] = {1, 1, 1, 1, 1};
  ck_assert_int_eq(pf_tensor_view(s, 0, PF_DTYPE_F32, 5, five, &t, &err), PF_ERR_INVALID);
  pf_assert_err(err, "dimensions");
  ck_assert_int_eq(pf_tensor_view(s, 64, PF_DTYPE_F32, 0, NULL, &t, &err), PF_ERR_INVALID);
  ck_assert_int_eq(pf_tensor_view(s, 60, PF_DTYPE_F32, 0, NULL, &t, &err), PF_OK); /* scalar */
  ck_assert_int_eq(pf_tensor_numel(t), 1);
  pf_tensor_release(t);
  pf_storage_release(s);
}
END_TEST

START_TEST(test_new_and_planned) {
  pf_tensor *t = NULL, *p = NULL;
  pf_err err = {0};
  int64_t shape[2] = {3, 5};
  ck_assert_int_eq(pf_tensor_new(PF_DTYPE_BF16, 2, shape, &t, &err), PF_OK);
  ck_assert_uint_eq(t->nbytes, 30);
  ck_assert_ptr_nonnull(pf_tensor_mutable_data(t));
  ck_assert_int_eq(t->refcount, 1);
  pf_tensor_retain(t);
  ck_assert_int_eq(t->refcount, 2);
  pf_tensor_release(t);
  ck_assert_int_eq(pf_tensor_new_planned(PF_DTYPE_F16, 2, shape, &p, &err), PF_OK);
  ck_assert_ptr_null(p->data);
  ck_assert_ptr_null(p->storage);
  ck_assert_ptr_null(pf_tensor_mutable_data(p));
  ck_assert_uint_eq(p->nbytes, 30);
  char buf[64];
  ck_assert_str_eq(pf_shape_str(2, shape, buf, sizeof buf), "[3, 5]");
  ck_assert_str_eq(pf_shape_str(0, NULL, buf, sizeof buf), "[]");
  pf_shape_str(2, shape, buf, 4); /* truncation is safe */
  ck_assert_str_eq(buf, "[3,");
  pf_tensor_release(t);
  pf_tensor_release(p);
  pf_tensor_release(NULL);
}
END_TEST

/* [rows, cols] tensor whose element (r, c) is r * 100 + c. */
static pf_tensor *iota(pf_dtype dt, int64_t rows, int64_t cols) {
  pf_tensor *t = NULL;
  int64_t shape[2] = {rows, cols};
  ck_assert_int_eq(pf_tensor_new(dt, 2, shape, &t, NULL), PF_OK);
  float *v = malloc((size_t)(rows * cols) * sizeof *v);
  for (int64_t i = 0; i < rows * cols; i++)
    v[i] = (float)((i / cols) * 100 + i % cols);
  pf_convert(pf_tensor_mutable_data(t), dt, v, PF_DTYPE_F32, (size_t)(rows * cols));
  free(v);
  return t;
}

START_TEST(test_row_and_to_f32) {
  pf_tensor *t = iota(PF_DTYPE_BF16, 3, 4);
  float row[6], all[12];
  pf_tensor_row_f32(t, 2, row);
  for (int c = 0; c < 4; c++)
    ck_assert_float_eq(row[c], 200 + c);
  pf_tensor_to_f32(t, all);
  ck_assert_float_eq(all[5], 101);
  pf_tensor_row_f32(t, 7, row); /* out of range: zeros */
  ck_assert_float_eq(row[0], 0);
  pf_tensor_release(t);
  t = iota(PF_DTYPE_F16, 1, 6);
  pf_tensor *v = NULL;
  int64_t shape[1] = {6};
  ck_assert_int_eq(pf_tensor_view(t->storage, 0, PF_DTYPE_F16, 1, shape, &v, NULL), PF_OK);
  pf_tensor_row_f32(v, 0, row);
  ck_assert_float_eq(row[3], 3);
  pf_tensor_release(v);
  pf_tensor_release(t);
}
END_TEST

START_TEST(test_select) {
  pf_err err = {0};
  pf_tensor *t = iota(PF_DTYPE_F32, 4, 5), *r = NULL;
  int64_t rows[3] = {3, 0, 3};
  ck_assert_int_eq(pf_tensor_select_rows(t, rows, 3, &r, &err), PF_OK);
  ck_assert_int_eq(r->shape[0], 3);
  ck_assert_int_eq(r->shape[1], 5);
  const float *d = r->data;
  ck_assert_float_eq(d[0], 300);
  ck_assert_float_eq(d[5 + 4], 4);
  ck_assert_float_eq(d[10 + 2], 302);
  pf_tensor_release(r);
  int64_t cols[2] = {4, 1};
  ck_assert_int_eq(pf_tensor_select_cols(t, cols, 2, &r, &err), PF_OK);
  ck_assert_int_eq(r->shape[0], 4);
  ck_assert_int_eq(r->shape[1], 2);
  d = r->data;
  ck_assert_float_eq(d[0], 4);
  ck_assert_float_eq(d[1], 1);
  ck_assert_float_eq(d[7], 301);
  pf_tensor_release(r);
  int64_t bad[2] = {1, 5};
  r = (pf_tensor *)1;
  ck_assert_int_eq(pf_tensor_select_cols(t, bad, 2, &r, &err), PF_ERR_INVALID);
  ck_assert_ptr_null(r);
  pf_assert_err(err, "select_cols: index 5 (position 1) out of range [0, 5) for shape [4, 5]");
  ck_assert_int_eq(pf_tensor_select_rows(t, bad, 2, &r, &err), PF_ERR_INVALID);
  pf_assert_err(err, "select_rows: index 5");
  int64_t negi[1] = {-1};
  ck_assert_int_eq(pf_tensor_select_rows(t, negi, 1, &r, &err), PF_ERR_INVALID);
  ck_assert_int_eq(pf_tensor_select_elems(t, negi, 1, &r, &err), PF_ERR_INVALID);
  pf_assert_err(err, "expected a 1-D tensor, got shape [4, 5]");
  pf_tensor_release(t);

  pf_tensor *b = NULL;
  int64_t n = 6;
  ck_assert_int_eq(pf_tensor_new(PF_DTYPE_BF16, 1, &n, &b, &err), PF_OK);
  uint16_t *bd = pf_tensor_mutable_data(b);
  for (int i = 0; i < 6; i++)
    bd[i] = (uint16_t)(0x1000 + i);
  int64_t el[3] = {5, 2, 0};
  ck_assert_int_eq(pf_tensor_select_elems(b, el, 3, &r, &err), PF_OK);
  ck_assert_int_eq(r->ndim, 1);
  ck_assert_int_eq(r->shape[0], 3);
  const uint16_t *rd = r->data;
  ck_assert_uint_eq(rd[0], 0x1005);
  ck_assert_uint_eq(rd[1], 0x1002);
  ck_assert_uint_eq(rd[2], 0x1000);
  pf_tensor_release(r);
  ck_assert_int_eq(pf_tensor_select_rows(b, el, 3, &r, &err), PF_ERR_INVALID);
  pf_assert_err(err, "expected a 2-D tensor");
  pf_tensor_release(b);
}
END_TEST

START_TEST(test_select_planned) {
  pf_tensor *p = NULL, *r = NULL;
  int64_t shape[2] = {8, 16}, idx[3] = {1, 2, 15};
  ck_assert_int_eq(pf_tensor_new_planned(PF_DTYPE_BF16, 2, shape, &p, NULL), PF_OK);
  ck_assert_int_eq(pf_tensor_select_cols(p, idx, 3, &r, NULL), PF_OK);
  ck_assert_ptr_null(r->data);
  ck_assert_int_eq(r->shape[0], 8);
  ck_assert_int_eq(r->shape[1], 3);
  ck_assert_uint_eq(r->nbytes, 48);
  pf_tensor_release(r);
  pf_tensor_release(p);
}
END_TEST

/* Large BF16 gather against a naive loop (the width-pruning shape, scaled down). */
START_TEST(test_select_cols_large) {
  const int64_t rows = 512, cols = 2048, k = 1500;
  pf_tensor *t = NULL, *r = NULL;
  int64_t shape[2] = {rows, cols};
  ck_assert_int_eq(pf_tensor_new(PF_DTYPE_BF16, 2, shape, &t, NULL), PF_OK);
  uint16_t *d = pf_tensor_mutable_data(t);
  for (int64_t i = 0; i < rows * cols; i++)
    d[i] = (uint16_t)rnd32();
  int64_t *idx = malloc((size_t)k * sizeof *idx);
  for (int64_t j = 0; j < k; j++)
    idx[j] = (j * 7919) % cols;
  ck_assert_int_eq(pf_tensor_select_cols(t, idx, k, &r, NULL), PF_OK);
  const uint16_t *o = r->data;
  for (int64_t i = 0; i < rows; i++)
    for (int64_t j = 0; j < k; j++)
      ck_assert_uint_eq(o[i * k + j], d[i * cols + idx[j]]);
  free(idx);
  pf_tensor_release(r);
  pf_tensor_release(t);
}
END_TEST

static Suite *make_suite(void) {
  Suite *s = suite_create("tensor");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_dtype_names);
  tcase_add_test(tc, test_f16_exhaustive);
  tcase_add_test(tc, test_bf16_exhaustive);
  tcase_add_test(tc, test_bf16_rounding);
  tcase_add_test(tc, test_f16_rounding);
  tcase_add_test(tc, test_f16_random_nearest);
  tcase_add_test(tc, test_convert_bulk_matches_scalar);
  tcase_add_test(tc, test_storage_heap);
  tcase_add_test(tc, test_storage_heap_large);
  tcase_add_test(tc, test_storage_map);
  tcase_add_test(tc, test_view_ranges);
  tcase_add_test(tc, test_new_and_planned);
  tcase_add_test(tc, test_row_and_to_f32);
  tcase_add_test(tc, test_select);
  tcase_add_test(tc, test_select_planned);
  tcase_add_test(tc, test_select_cols_large);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return pf_test_main(make_suite);
}
