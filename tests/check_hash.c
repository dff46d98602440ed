/* check_hash.c — runtime/hash: SHA-256.
 *
 * Golden values:
 *  - the NIST FIPS 180-4 examples / NIST CSRC "SHA256.pdf" and the one-million-'a'
 *    long message of the SHA test vectors (FIPS 180-2 appendix B.3);
 *  - padding boundaries: messages of n bytes b[i] = (7*i + 3) & 255, digests from
 *    Python's hashlib.sha256 (OpenSSL), printed by
 *      python3 -c "import hashlib; print(hashlib.sha256(bytes((i*7+3)&255 for i in
 * range(n))).hexdigest())"
 *  - files and folders: compared with pf_sha256_hex over the byte stream the
 *    header documents, built independently in the test.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fsutil.h"
#include "hash.h"
#include "testutil.h"

static void hex_of(const char *msg, char hex[PF_SHA256_HEX]) {
  pf_sha256_hex(msg, strlen(msg), hex);
}

START_TEST(test_nist_vectors) {
  char hex[PF_SHA256_HEX];
  hex_of("", hex);
  ck_assert_str_eq(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  hex_of("abc", hex);
  ck_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  hex_of("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", hex); /* 448 bits */
  ck_assert_str_eq(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  hex_of("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrl"
         "mnopqrsmnopqrstnopqrstu", /* 896 bits */
         hex);
  ck_assert_str_eq(hex, "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
}
END_TEST

START_TEST(test_million_a) {
  /* one call, and in uneven pieces through the incremental interface */
  char *a = malloc(1000000), hex[PF_SHA256_HEX];
  memset(a, 'a', 1000000);
  const char *want = "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";
  pf_sha256_hex(a, 1000000, hex);
  ck_assert_str_eq(hex, want);
  pf_sha256 s;
  pf_sha256_init(&s);
  size_t done = 0, step = 1;
  while (done < 1000000) {
    size_t n = step < 1000000 - done ? step : 1000000 - done;
    pf_sha256_update(&s, a + done, n);
    done += n;
    step = step * 3 % 1009 + 1; /* 1..1009 bytes, crossing block edges everywhere */
  }
  pf_sha256_final_hex(&s, hex);
  ck_assert_str_eq(hex, want);
  free(a);
}
END_TEST

START_TEST(test_padding_boundaries) {
  static const struct {
    size_t n;
    const char *hex;
  } cases[] = {
      {55, "e7313d333c272e639f790978283f9eb392e843d0f29b7016828bb1daa4aac70b"},
      {56, "4324d65f3c103567f5589c710bc08f8523f929a9272e3af36fc968e52abc6c27"},
      {57, "35df609437dcfea3279283ab79fd554e2bf78f8f7ae2de532d8ee300b09e8f73"},
      {63, "81c80242132f230c3bd41b3e63bbcff16107339549214a99614ff26664625055"},
      {64, "39e3d7b6b5d075d37d053ad89b24b41bef4f3c29760c84447cab3f3be1882241"},
      {65, "aacca6ff74fdbb296d165a45cecfa04e5127bc008770fbbdd48006f2d2fae95e"},
      {119, "9ce7368e4daf32341631b492e80359dc9f594b48453cd0dd5bf0b19279cc177e"},
      {120, "7836b787757e95e58b3ca5aec90b1b004e8deba1e50e9675af9cabf1a13a04b5"},
      {128, "d2742f1f4ac6bb7ca2b239ee18402ba8b3f9f8e652d2a72973c2b9ba11c08cf6"},
  };
  unsigned char buf[128];
  for (size_t i = 0; i < sizeof buf; i++)
    buf[i] = (unsigned char)((i * 7 + 3) & 255);
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    char hex[PF_SHA256_HEX];
    pf_sha256_hex(buf, cases[c].n, hex);
    ck_assert_msg(!strcmp(hex, cases[c].hex), "n=%zu: %s", cases[c].n, hex);
    /* every split point of the incremental interface gives the same digest */
    for (size_t cut = 0; cut <= cases[c].n; cut++) {
      pf_sha256 s;
      pf_sha256_init(&s);
      pf_sha256_update(&s, buf, cut);
      pf_sha256_update(&s, NULL, 0);
      pf_sha256_update(&s, buf + cut, cases[c].n - cut);
      pf_sha256_final_hex(&s, hex);
      ck_assert_msg(!strcmp(hex, cases[c].hex), "n=%zu cut=%zu", cases[c].n, cut);
    }
  }
  uint8_t d[PF_SHA256_BYTES];
  pf_sha256 s;
  pf_sha256_init(&s);
  pf_sha256_update(&s, "abc", 3);
  pf_sha256_final(&s, d);
  ck_assert_uint_eq(d[0], 0xba);
  ck_assert_uint_eq(d[31], 0xad);
}
END_TEST

/* A file bigger than the 1 MiB read chunk, hashed from disk and in memory. */
START_TEST(test_file) {
  char *dir = pf_test_tmpdir("hash"), *path = pf_path_join(dir, "big.bin");
  size_t n = (3u << 20) + 12345;
  unsigned char *b = malloc(n);
  uint32_t x = 12345;
  for (size_t i = 0; i < n; i++)
    x = x * 1103515245u + 12345u, b[i] = (unsigned char)(x >> 16);
  pf_err err = {0};
  ck_assert_int_eq(pf_write_file(path, b, n, &err), PF_OK);
  char want[PF_SHA256_HEX], got[PF_SHA256_HEX];
  pf_sha256_hex(b, n, want);
  ck_assert_int_eq(pf_sha256_file(path, got, &err), PF_OK);
  ck_assert_str_eq(got, want);
  /* errors */
  char *missing = pf_path_join(dir, "nope.bin");
  ck_assert_int_eq(pf_sha256_file(missing, got, &err), PF_ERR_NOT_FOUND);
  pf_assert_err(err, "nope.bin");
  ck_assert_str_eq(got, "");
  ck_assert_int_eq(pf_sha256_file(dir, got, &err), PF_ERR_IO);
  pf_assert_err(err, "expected a regular file, found a folder");
  free(missing);
  free(b);
  free(path);
  pf_test_rmtree(dir);
  free(dir);
}
END_TEST

/* The documented stream: name, 0, size as 8 bytes LE, content, per file in name order. */
static void dir_stream(pf_sha256 *s, const char *name, const char *content) {
  uint8_t le[8];
  uint64_t n = strlen(content);
  for (int i = 0; i < 8; i++)
    le[i] = (uint8_t)(n >> (8 * i));
  pf_sha256_update(s, name, strlen(name) + 1);
  pf_sha256_update(s, le, 8);
  pf_sha256_update(s, content, n);
}

START_TEST(test_dir_files) {
  char *dir = pf_test_tmpdir("hashdir"), path[4096];
  const char *names[] = {"model.safetensors", "config.json", "B.txt"};
  const char *texts[] = {"weights", "{\"a\": 1}", "upper"};
  for (int i = 0; i < 3; i++) {
    snprintf(path, sizeof path, "%s/%s", dir, names[i]);
    pf_test_write(path, texts[i]);
  }
  snprintf(path, sizeof path, "%s/sub", dir);
  ck_assert_int_eq(mkdir(path, 0755), 0); /* folders are ignored */
  snprintf(path, sizeof path, "%s/sub/x", dir);
  pf_test_write(path, "ignored");
  pf_sha256 s;
  char want[PF_SHA256_HEX], got[PF_SHA256_HEX], before[PF_SHA256_HEX];
  pf_sha256_init(&s);
  dir_stream(&s, "B.txt", "upper"); /* byte order: 'B' < 'c' < 'm' */
  dir_stream(&s, "config.json", "{\"a\": 1}");
  dir_stream(&s, "model.safetensors", "weights");
  pf_sha256_final_hex(&s, want);
  pf_err err = {0};
  ck_assert_int_eq(pf_sha256_dir_files(dir, got, &err), PF_OK);
  ck_assert_str_eq(got, want);
  strcpy(before, got);
  /* an empty file changes it; so do a rename and a content edit */
  snprintf(path, sizeof path, "%s/empty", dir);
  pf_test_write(path, "");
  ck_assert_int_eq(pf_sha256_dir_files(dir, got, &err), PF_OK);
  ck_assert_str_ne(got, before);
  remove(path);
  ck_assert_int_eq(pf_sha256_dir_files(dir, got, &err), PF_OK);
  ck_assert_str_eq(got, before);
  char from[4096];
  snprintf(from, sizeof from, "%s/B.txt", dir);
  snprintf(path, sizeof path, "%s/C.txt", dir);
  ck_assert_int_eq(rename(from, path), 0);
  ck_assert_int_eq(pf_sha256_dir_files(dir, got, &err), PF_OK);
  ck_assert_str_ne(got, before);
  ck_assert_int_eq(rename(path, from), 0);
  pf_test_write(from, "uppeR");
  ck_assert_int_eq(pf_sha256_dir_files(dir, got, &err), PF_OK);
  ck_assert_str_ne(got, before);
  /* a signal stops it (a report hashing a 70B checkpoint would read on for a minute) */
  volatile int flag = 0;
  const pf_ctx ctx = {.interrupt = &flag};
  ck_assert_int_eq(pf_sha256_dir_files_ctx(dir, got, &ctx, &err), PF_OK);
  flag = SIGINT;
  ck_assert_int_eq(pf_sha256_dir_files_ctx(dir, got, &ctx, &err), PF_ERR_INTERRUPTED);
  ck_assert_str_eq(got, "");
  /* errors */
  snprintf(path, sizeof path, "%s/missing", dir);
  ck_assert_int_eq(pf_sha256_dir_files(path, got, &err), PF_ERR_NOT_FOUND);
  pf_assert_err(err, "missing");
  ck_assert_str_eq(got, "");
  pf_test_rmtree(dir);
  free(dir);
}
END_TEST

START_TEST(test_dir_real_checkpoint) {
  char *m = pf_test_shared("models/stories260K", "stories260K folder hash");
  if (!m) return;
  char a[PF_SHA256_HEX], b[PF_SHA256_HEX], f[PF_SHA256_HEX];
  pf_err err = {0};
  ck_assert_int_eq(pf_sha256_dir_files(m, a, &err), PF_OK);
  ck_assert_int_eq(pf_sha256_dir_files(m, b, &err), PF_OK);
  ck_assert_str_eq(a, b); /* deterministic */
  char *w = pf_path_join(m, "model.safetensors");
  ck_assert_int_eq(pf_sha256_file(w, f, &err), PF_OK);
  ck_assert_int_eq((int)strlen(f), 64);
  ck_assert_str_ne(a, f);
  free(w);
  free(m);
}
END_TEST

static Suite *make_suite(void) {
  Suite *s = suite_create("hash");
  TCase *tc = tcase_create("sha256");
  tcase_add_test(tc, test_nist_vectors);
  tcase_add_test(tc, test_million_a);
  tcase_add_test(tc, test_padding_boundaries);
  tcase_add_test(tc, test_file);
  tcase_add_test(tc, test_dir_files);
  tcase_add_test(tc, test_dir_real_checkpoint);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return pf_test_main(make_suite);
}
