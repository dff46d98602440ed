/* check_tokenizer_fuzz.c — runtime/tokenizer: regressions for what fuzzing found
 * (tests/fuzz/fuzz_tokenizer*.c; the findings are listed in docs/reliability.md).
 * Each tokenizer.json is written to a fresh folder and loaded from there.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "testutil.h"
#include "tokenizer.h"

static size_t encode(pf_tokenizer *tok, const char *text, size_t len, int add, int32_t **ids) {
  pf_err err = {0};
  size_t n = 0;
  pf_status s = pf_tokenizer_encode(tok, text, len, add, ids, &n, &err);
  ck_assert_msg(s == PF_OK, "encode: %s", err.msg);
  return n;
}

/* Load `json` from a fresh folder: the status, *tok (NULL on failure) and err. */
static pf_status load_json(const char *json, pf_tokenizer **tok, pf_err *err) {
  char *root = pf_test_tmpdir("tok-fz");
  char *path = pf_path_join(root, "tokenizer.json");
  pf_test_write(path, json);
  pf_status s = pf_tokenizer_load(path, tok, err);
  if (s != PF_OK) ck_assert_ptr_null(*tok);
  free(path);
  pf_test_rmtree(root);
  free(root);
  return s;
}

/* 1. A word whose every char is dropped (no unk, no byte fallback) is cached with
 *    zero ids; the cache hit did NULL + 0 on the empty id store (UBSan). */
START_TEST(test_fuzz_empty_cached_word) {
  pf_err err = {0};
  pf_tokenizer *tok = NULL;
  ck_assert_int_eq(
      load_json("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]}}", &tok, &err),
      PF_OK);
  for (int i = 0; i < 2; i++) {
    int32_t *ids;
    ck_assert_int_eq(encode(tok, "b", 1, 0, &ids), 0);
    free(ids);
  }
  pf_tokenizer_free(tok);
}
END_TEST

/* 2. Ids far outside int64_t were converted before the range check (UBSan
 *    float-cast-overflow). */
START_TEST(test_fuzz_huge_ids) {
  pf_err err = {0};
  pf_tokenizer *tok = NULL;
  ck_assert_int_eq(load_json("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":1e300}}}", &tok, &err),
                   PF_ERR_FORMAT);
  pf_assert_err(err, "model.vocab[\"a\"]: expected an integer id");
  ck_assert_int_eq(load_json("{\"model\":{\"type\":\"BPE\",\"vocab\":{}},\"added_tokens\":"
                             "[{\"id\":-1e300,\"content\":\"x\"}]}",
                             &tok, &err),
                   PF_ERR_FORMAT);
  pf_assert_err(err, "added_tokens[0].id: expected an integer");
}
END_TEST

/* 3. A path with no folder part and no room for "." (heap overflow, ASan). */
START_TEST(test_fuzz_empty_path) {
  pf_err err = {0};
  pf_tokenizer *tok = NULL;
  ck_assert_int_ne(pf_tokenizer_load("", &tok, &err), PF_OK);
  ck_assert_ptr_null(tok);
}
END_TEST

/* 4. Raw bytes that are not UTF-8 inside JSON strings reached PCRE2 (run with
 *    PCRE2_NO_UTF_CHECK) and the decoders; JSON text must be UTF-8. 5. \C matches
 *    one byte of a UTF-8 char, leaving pieces that are not UTF-8. */
START_TEST(test_fuzz_not_utf8) {
  pf_err err = {0};
  pf_tokenizer *tok = NULL;
  ck_assert_int_eq(load_json("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0}},\"normalizer\":"
                             "{\"type\":\"Replace\",\"pattern\":{\"String\":\"a\"},"
                             "\"content\":\"\xFF\"}}",
                             &tok, &err),
                   PF_ERR_FORMAT);
  pf_assert_err(err, "not valid UTF-8 at byte 107");
  ck_assert_int_eq(load_json("{\"model\":{\"type\":\"BPE\",\"vocab\":{}},\"pre_tokenizer\":"
                             "{\"type\":\"Split\",\"pattern\":{\"Regex\":\"\\\\C\"},"
                             "\"behavior\":\"Isolated\"}}",
                             &tok, &err),
                   PF_ERR_FORMAT);
  pf_assert_err(err, "pre_tokenizer.pattern: bad regex");
}
END_TEST

/* 6. Bounds: regex size, nesting (Sequence in Sequence ...), component count. */
START_TEST(test_fuzz_component_bounds) {
  pf_err err = {0};
  pf_tokenizer *tok = NULL;
  char *j = malloc(64 * 1024), *p;
  p = j + sprintf(j, "{\"model\":{\"type\":\"BPE\",\"vocab\":{}},\"normalizer\":{\"type\":"
                     "\"Replace\",\"content\":\"\",\"pattern\":{\"Regex\":\"");
  memset(p, 'a', 20000);
  strcpy(p + 20000, "\"}}}");
  ck_assert_int_eq(load_json(j, &tok, &err), PF_ERR_INVALID);
  pf_assert_err(err, "normalizer.pattern: pattern of 20000 bytes, the limit is 16384");
  p = j + sprintf(j, "{\"model\":{\"type\":\"BPE\",\"vocab\":{}},\"pre_tokenizer\":");
  for (int i = 0; i < 40; i++)
    p += sprintf(p, "{\"type\":\"Sequence\",\"pretokenizers\":[");
  p += sprintf(p, "{\"type\":\"Digits\"}");
  for (int i = 0; i < 40; i++)
    p += sprintf(p, "]}");
  strcpy(p, "}");
  ck_assert_int_eq(load_json(j, &tok, &err), PF_ERR_INVALID);
  pf_assert_err(err, "nested deeper than 32 levels");
  p = j + sprintf(j, "{\"model\":{\"type\":\"BPE\",\"vocab\":{}},\"decoder\":{\"type\":"
                     "\"Sequence\",\"decoders\":[");
  for (int i = 0; i < 300; i++)
    p += sprintf(p, "%s{\"type\":\"Fuse\"}", i ? "," : "");
  strcpy(p, "]}}");
  ck_assert_int_eq(load_json(j, &tok, &err), PF_ERR_INVALID);
  pf_assert_err(err, "more than 256 normalizer/pre-tokenizer/decoder/post-processor");
  free(j);
}
END_TEST

/* 7. Added tokens were sorted by insertion: O(n^2), minutes for 200k entries in
 *    ascending length. Leftmost-longest matching must be unchanged. The entries hold
 *    16 distinct strings "<a" .. "<aaaaaaaaaaaaaaaa"; as in HF, repeats share the id of
 *    the first, and ids count on from the vocabulary's size (1), whatever the file says. */
START_TEST(test_fuzz_many_added_tokens) {
  pf_err err = {0};
  pf_tokenizer *tok = NULL;
  size_t n = 200000;
  char *j = malloc(n * 64 + 256), *p;
  p = j + sprintf(j, "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"z\":0}},\"added_tokens\":[");
  for (size_t i = 0; i < n; i++)
    p += sprintf(p, "%s{\"id\":%zu,\"content\":\"<%.*s\",\"normalized\":false}", i ? "," : "",
                 i + 1, (int)(1 + i * 16 / n), "aaaaaaaaaaaaaaaa");
  strcpy(p, "]}");
  ck_assert_int_eq(load_json(j, &tok, &err), PF_OK);
  free(j);
  int32_t *ids;
  ck_assert_int_eq(encode(tok, "z<aaaz", 6, 0, &ids), 3);
  ck_assert_int_eq(ids[1], 3); /* "<aaa", the third distinct string */
  ck_assert_int_eq(pf_tokenizer_vocab_size(tok), 17);
  free(ids);
  pf_tokenizer_free(tok);
}
END_TEST

static Suite *make_suite(void) {
  Suite *s = suite_create("tokenizer_fuzz");
  TCase *fz = tcase_create("fuzz");
  tcase_set_timeout(fz, 60);
  tcase_add_test(fz, test_fuzz_empty_cached_word);
  tcase_add_test(fz, test_fuzz_huge_ids);
  tcase_add_test(fz, test_fuzz_empty_path);
  tcase_add_test(fz, test_fuzz_not_utf8);
  tcase_add_test(fz, test_fuzz_component_bounds);
  tcase_add_test(fz, test_fuzz_many_added_tokens);
  suite_add_tcase(s, fz);
  return s;
}

int main(void) {
  return pf_test_main(make_suite);
}
