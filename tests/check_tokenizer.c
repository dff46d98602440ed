/* check_tokenizer.c — runtime/tokenizer: exactness against Hugging Face and llama.cpp
 * vectors, decode round trips, hand-checked self-made tokenizers, error paths.
 *
 * Golden values:
 *  - ../shared/tokenizers/vectors/NAME.jsonl: {"text", "ids", "ids_no_special"} produced
 *    by the official Hugging Face `tokenizers` library (Rust), encode(text, True/False);
 *  - ../shared/tokenizers/vectors/ggml-vocab-*.gguf.inp/.out: llama.cpp's tokenizer test
 *    vectors (texts separated by "\n__ggml_vocab_test__\n", one line of space-separated
 *    ids per text, no special tokens), produced by llama.cpp's convert script with HF
 *    transformers;
 *  - the self-made tokenizers below: expected ids worked out by hand from the merge
 *    ranks written in the test (explained next to each assertion).
 * The regressions found by fuzzing are in check_tokenizer_fuzz.c.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "testutil.h"
#include "tkutil.h"
#include "tokenizer.h"
#include "tokenizer_internal.h" /* component tests */

/* ---- helpers ---- */

static pf_tokenizer *load_ok(const char *path) {
  pf_err err = {0};
  pf_tokenizer *tok = NULL;
  pf_status s = pf_tokenizer_load(path, &tok, &err);
  ck_assert_msg(s == PF_OK, "load %s: %s", path, err.msg);
  ck_assert_ptr_nonnull(tok);
  return tok;
}

static size_t encode(pf_tokenizer *tok, const char *text, size_t len, int add, int32_t **ids) {
  pf_err err = {0};
  size_t n = 0;
  pf_status s = pf_tokenizer_encode(tok, text, len, add, ids, &n, &err);
  ck_assert_msg(s == PF_OK, "encode: %s", err.msg);
  return n;
}

static char *decode(pf_tokenizer *tok, const int32_t *ids, size_t n, int skip) {
  pf_err err = {0};
  char *text = NULL;
  pf_status s = pf_tokenizer_decode(tok, ids, n, skip, &text, NULL, &err);
  ck_assert_msg(s == PF_OK, "decode: %s", err.msg);
  return text;
}

/* Print-friendly copy of text (control chars escaped, at most ~160 bytes). */
static void show(const char *s, size_t n, char *out, size_t cap) {
  size_t o = 0;
  for (size_t i = 0; i < n && o + 8 < cap && i < 160; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '\n')
      o += (size_t)snprintf(out + o, cap - o, "\\n");
    else if (c == '\t')
      o += (size_t)snprintf(out + o, cap - o, "\\t");
    else if (c < 0x20)
      o += (size_t)snprintf(out + o, cap - o, "\\x%02x", c);
    else
      out[o++] = (char)c;
  }
  out[o] = 0;
}

/* Compare; on mismatch fill msg with the text and the first differing position. */
static int same_ids(const int32_t *got, size_t ng, const int32_t *want, size_t nw, const char *text,
                    size_t tlen, char *msg, size_t cap) {
  size_t i = 0;
  while (i < ng && i < nw && got[i] == want[i])
    i++;
  if (i == ng && i == nw) return 1;
  char t[400];
  show(text, tlen, t, sizeof t);
  snprintf(msg, cap,
           "text \"%s\": first difference at position %zu: expected %ld, got %ld "
           "(%zu vs %zu ids)",
           t, i, i < nw ? (long)want[i] : -1L, i < ng ? (long)got[i] : -1L, nw, ng);
  return 0;
}

static size_t json_ids(const cJSON *arr, int32_t **out) {
  size_t n = (size_t)cJSON_GetArraySize(arr), i = 0;
  *out = malloc((n ? n : 1) * sizeof **out);
  for (const cJSON *c = arr->child; c; c = c->next)
    (*out)[i++] = (int32_t)c->valuedouble;
  return n;
}

/* ---- Hugging Face vectors ---- */

static const char *VEC_NAMES[] = {"llama3",  "qwen3",       "llama2",       "mistral", "gpt2",
                                  "smollm2", "stories260K", "aidreams260K", "gemma",   "phi3",
                                  "neox",    "olmo2",       "gpt4o"};

static char *tokenizer_dir(const char *name) {
  char rel[256];
  int tiny = !strcmp(name, "stories260K") || !strcmp(name, "aidreams260K");
  snprintf(rel, sizeof rel, "%s/%s", tiny ? "models" : "tokenizers", name);
  return pf_test_shared(rel, name);
}

START_TEST(test_hf_vectors) {
  const char *name = VEC_NAMES[_i];
  char rel[256];
  snprintf(rel, sizeof rel, "tokenizers/vectors/%s.jsonl", name);
  char *vec = pf_test_shared(rel, "tokenizer vectors"), *dir = tokenizer_dir(name);
  if (!vec || !dir) {
    free(vec);
    free(dir);
    return;
  }
  pf_tokenizer *tok = load_ok(dir);
  size_t len;
  char *all = pf_test_read(vec, &len);
  ck_assert_ptr_nonnull(all);
  int lines = 0, bad = 0;
  char first_bad[1200] = "";
  for (char *line = strtok(all, "\n"); line; line = strtok(NULL, "\n")) {
    cJSON *j = cJSON_Parse(line);
    ck_assert_msg(j != NULL, "%s: bad JSON line %d", vec, lines + 1);
    const cJSON *text = cJSON_GetObjectItem(j, "text");
    size_t tl = strlen(text->valuestring);
    for (int add = 1; add >= 0; add--) {
      int32_t *want, *got;
      size_t nw = json_ids(cJSON_GetObjectItem(j, add ? "ids" : "ids_no_special"), &want);
      size_t ng = encode(tok, text->valuestring, tl, add, &got);
      char msg[1000];
      if (!same_ids(got, ng, want, nw, text->valuestring, tl, msg, sizeof msg)) {
        if (!bad++) snprintf(first_bad, sizeof first_bad, "add_special=%d %s", add, msg);
        fprintf(stderr, "%s line %d add_special=%d: %s\n", name, lines + 1, add, msg);
      }
      free(want);
      free(got);
    }
    cJSON_Delete(j);
    lines++;
  }
  fprintf(stderr, "%s: %d lines x 2 encodings, %d mismatches\n", name, lines, bad);
  ck_assert_int_gt(lines, 0);
  ck_assert_msg(bad == 0, "%s: %d mismatches; first: %s", name, bad, first_bad);
  free(all);
  pf_tokenizer_free(tok);
  free(vec);
  free(dir);
}
END_TEST

/* ---- llama.cpp vectors ---- */

static const char *GGML_NAMES[][2] = {
    {"llama-bpe", "llama3"}, {"qwen2", "qwen3"}, {"gpt-2", "gpt2"}, {"llama-spm", "llama2"}};

START_TEST(test_ggml_vectors) {
  const char *vocab = GGML_NAMES[_i][0], *name = GGML_NAMES[_i][1];
  char rel[256];
  snprintf(rel, sizeof rel, "tokenizers/vectors/ggml-vocab-%s.gguf.inp", vocab);
  char *inp = pf_test_shared(rel, "llama.cpp vectors"), *dir = tokenizer_dir(name);
  if (!inp || !dir) {
    free(inp);
    free(dir);
    return;
  }
  char outp[4096];
  snprintf(outp, sizeof outp, "%.*s.out", (int)(strlen(inp) - 4), inp);
  size_t ilen, olen;
  char *in = pf_test_read(inp, &ilen), *out = pf_test_read(outp, &olen);
  ck_assert_ptr_nonnull(in);
  ck_assert_ptr_nonnull(out);
  pf_tokenizer *tok = load_ok(dir);
  static const char SEP[] = "\n__ggml_vocab_test__\n";
  char *text = in, *line = out;
  int count = 0, bad = 0;
  char first_bad[1200] = "";
  for (char *sep; (sep = strstr(text, SEP)) != NULL; text = sep + sizeof SEP - 1) {
    char *eol = strchr(line, '\n');
    ck_assert_msg(eol != NULL, "%s: fewer id lines than texts", outp);
    *eol = 0;
    int32_t want[4096];
    size_t nw = 0;
    for (char *p = line, *e; nw < 4096; p = e) {
      long v = strtol(p, &e, 10);
      if (e == p) break;
      want[nw++] = (int32_t)v;
    }
    int32_t *got;
    size_t ng = encode(tok, text, (size_t)(sep - text), 0, &got);
    char msg[1000];
    if (!same_ids(got, ng, want, nw, text, (size_t)(sep - text), msg, sizeof msg)) {
      if (!bad++) snprintf(first_bad, sizeof first_bad, "%s", msg);
      fprintf(stderr, "ggml %s #%d: %s\n", vocab, count, msg);
    }
    free(got);
    line = eol + 1;
    count++;
  }
  fprintf(stderr, "ggml-vocab-%s (%s): %d texts, %d mismatches\n", vocab, name, count, bad);
  ck_assert_int_gt(count, 0);
  ck_assert_msg(bad == 0, "ggml-vocab-%s: %d mismatches; first: %s", vocab, bad, first_bad);
  pf_tokenizer_free(tok);
  free(in);
  free(out);
  free(inp);
  free(dir);
}
END_TEST

/* ---- decode(encode(text)) == text on the Brown texts ---- */

static const char *BYTE_LEVEL[] = {"llama3", "qwen3", "gpt2", "smollm2"};

START_TEST(test_roundtrip_brown) {
  char *data = pf_test_shared("data/brown-calib.jsonl", "Brown round trip");
  char *dir = tokenizer_dir(BYTE_LEVEL[_i]);
  if (!data || !dir) {
    free(data);
    free(dir);
    return;
  }
  pf_tokenizer *tok = load_ok(dir);
  size_t len;
  char *all = pf_test_read(data, &len);
  ck_assert_ptr_nonnull(all);
  int count = 0;
  for (char *line = strtok(all, "\n"); line; line = strtok(NULL, "\n")) {
    cJSON *j = cJSON_Parse(line);
    const char *text = cJSON_GetObjectItem(j, "text")->valuestring;
    int32_t *ids;
    size_t n = encode(tok, text, strlen(text), 0, &ids);
    char *back = decode(tok, ids, n, 0);
    ck_assert_msg(!strcmp(back, text), "%s: round trip of text %d differs:\n%s\n%s", BYTE_LEVEL[_i],
                  count, text, back);
    free(back);
    free(ids);
    cJSON_Delete(j);
    count++;
  }
  ck_assert_int_eq(count, 1000);
  free(all);
  pf_tokenizer_free(tok);
  free(data);
  free(dir);
}
END_TEST

/* ---- API on the real tokenizers ---- */

START_TEST(test_api_real) {
  char *l3 = tokenizer_dir("llama3"), *l2 = tokenizer_dir("llama2");
  if (!l3 || !l2) {
    free(l3);
    free(l2);
    return;
  }
  pf_tokenizer *t3 = load_ok(l3), *t2 = load_ok(l2);
  ck_assert_int_eq(pf_tokenizer_vocab_size(t3), 128256);
  ck_assert_int_eq(pf_tokenizer_bos_id(t3), 128000);
  ck_assert_int_eq(pf_tokenizer_eos_id(t3), 128001);
  ck_assert_str_eq(pf_tokenizer_token(t3, 128000), "<|begin_of_text|>");
  ck_assert_str_eq(pf_tokenizer_token(t3, 9906), "Hello");
  ck_assert_int_eq(pf_tokenizer_token_id(t3, "\xC4\xA0world"), 1917); /* "Ġworld" */
  ck_assert_ptr_null(pf_tokenizer_token(t3, 128256));
  ck_assert_ptr_null(pf_tokenizer_token(t3, -1));
  ck_assert_int_eq(pf_tokenizer_vocab_size(t2), 32000);
  ck_assert_int_eq(pf_tokenizer_bos_id(t2), 1);
  ck_assert_int_eq(pf_tokenizer_eos_id(t2), 2);
  /* sentencepiece-style decode: <s> skipped, ▁ -> space, leading space stripped */
  int32_t *ids;
  size_t n = encode(t2, "Hello world", 11, 1, &ids);
  char *s = decode(t2, ids, n, 1);
  ck_assert_str_eq(s, "Hello world");
  free(s);
  s = decode(t2, ids, n, 0);
  ck_assert_str_eq(s, "<s> Hello world");
  free(s);
  free(ids);
  /* byte fallback decode of a CJK character and an emoji */
  const char *cjk = "\xE4\xB8\xAD\xE6\x96\x87 \xF0\x9F\x98\x80";
  n = encode(t2, cjk, strlen(cjk), 0, &ids);
  s = decode(t2, ids, n, 1);
  ck_assert_str_eq(s, cjk);
  free(s);
  free(ids);
  pf_tokenizer_free(t3);
  pf_tokenizer_free(t2);
  free(l3);
  free(l2);
}
END_TEST

/* ---- self-made tokenizers (no ../shared needed) ---- */

/* GPT-2 bytes_to_unicode, written out independently of the library. */
static void byte_char(int b, char *out) {
  int keep = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
  int cp = b;
  if (!keep) {
    int k = 0;
    for (int x = 0; x < b; x++)
      if (!((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255))) k++;
    cp = 256 + k;
  }
  if (cp < 0x80) {
    out[0] = (char)cp;
    out[1] = 0;
  } else {
    out[0] = (char)(0xC0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3F));
    out[2] = 0;
  }
}

static void json_str(char *dst, size_t cap, const char *s) {
  size_t o = 0;
  dst[o++] = '"';
  for (; *s && o + 8 < cap; s++) {
    if (*s == '"' || *s == '\\') dst[o++] = '\\';
    dst[o++] = *s;
  }
  dst[o++] = '"';
  dst[o] = 0;
}

/* Byte-level BPE: ids 0..255 are the byte chars in byte order, then merges
 * 256 "he", 257 "ll", 258 "hell", 259 "hello", 260 "Ġw", 261 "or", 262 "Ġwor",
 * 263 "Ġworl", 264 "Ġworld"; added 266 <|end|> (special), 267 <tool> (not special),
 * 268 <|bos|> (special, prepended by the template); 265 "qq", which no merge builds. */
static char *write_bytelevel(const char *root, int ignore_merges) {
  size_t cap = 64 * 1024, o = 0;
  char *j = malloc(cap), q[32], c[8];
  o += (size_t)snprintf(
      j + o, cap - o,
      "{\"version\":\"1.0\",\"added_tokens\":["
      "{\"id\":266,\"content\":\"<|end|>\",\"special\":true,\"normalized\":false},"
      "{\"id\":267,\"content\":\"<tool>\",\"special\":false,\"normalized\":false},"
      "{\"id\":268,\"content\":\"<|bos|>\",\"special\":true,\"normalized\":false}],"
      "\"normalizer\":null,"
      "\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":true},"
      "\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":"
      "{\"id\":\"<|bos|>\",\"type_id\":0}},{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}],"
      "\"special_tokens\":{\"<|bos|>\":{\"id\":\"<|bos|>\",\"ids\":[268],\"tokens\":[\"<|bos|>\"]}}"
      "},"
      "\"decoder\":{\"type\":\"ByteLevel\"},"
      "\"model\":{\"type\":\"BPE\",\"ignore_merges\":%s,\"vocab\":{",
      ignore_merges ? "true" : "false");
  for (int b = 0; b < 256; b++) {
    byte_char(b, c);
    json_str(q, sizeof q, c);
    o += (size_t)snprintf(j + o, cap - o, "%s:%d,", q, b);
  }
  o += (size_t)snprintf(
      j + o, cap - o,
      "\"he\":256,\"ll\":257,\"hell\":258,\"hello\":259,\"\xC4\xA0w\":260,\"or\":261,"
      "\"\xC4\xA0wor\":262,\"\xC4\xA0worl\":263,\"\xC4\xA0world\":264,\"qq\":265},\"merges\":["
      "\"h e\",\"l l\",[\"he\",\"ll\"],\"hell o\",\"\xC4\xA0 w\",\"o r\",\"\xC4\xA0w or\","
      "\"\xC4\xA0wor l\",\"\xC4\xA0worl d\"]}}");
  char *path = pf_path_join(root, "tokenizer.json");
  pf_test_write(path, j);
  free(j);
  return path;
}

static void expect_ids(pf_tokenizer *tok, const char *text, int add, const int32_t *want,
                       size_t nw) {
  int32_t *got;
  size_t ng = encode(tok, text, strlen(text), add, &got);
  char msg[1000];
  ck_assert_msg(same_ids(got, ng, want, nw, text, strlen(text), msg, sizeof msg), "%s", msg);
  free(got);
}

#define EXPECT(tok, text, add, ...)                                                                \
  do {                                                                                             \
    const int32_t w_[] = {__VA_ARGS__};                                                            \
    expect_ids(tok, text, add, w_, sizeof w_ / sizeof w_[0]);                                      \
  } while (0)

START_TEST(test_selfmade_bytelevel) {
  char *root = pf_test_tmpdir("tok-bl");
  char *path = write_bytelevel(root, 0);
  pf_tokenizer *tok = load_ok(root); /* the folder form */
  ck_assert_int_eq(pf_tokenizer_vocab_size(tok), 269);
  ck_assert_int_eq(pf_tokenizer_bos_id(tok), 268); /* no tokenizer_config: the template's */
  ck_assert_int_eq(pf_tokenizer_eos_id(tok), -1);
  /* "hello" merges h+e, l+l, he+ll, hell+o; " world": Ġw, or, Ġw+or, +l, +d */
  EXPECT(tok, "hello world", 0, 259, 264);
  EXPECT(tok, "hello world", 1, 268, 259, 264);
  /* added tokens split first; "!" is byte 0x21 = id 33; " hello" keeps Ġ (id 32) alone */
  EXPECT(tok, "hello<|end|> world!", 0, 259, 266, 264, 33);
  EXPECT(tok, " hello<tool>", 0, 32, 259, 267);
  /* "lll": l+l merges leftmost first */
  EXPECT(tok, "lll", 0, 257, 108);
  /* é = C3 A9: two byte chars, ids 195 and 169 */
  EXPECT(tok, "h\xC3\xA9llo", 0, 104, 195, 169, 257, 111);
  /* the GPT-2 regex: "'s" splits off, digits group, spaces before a word stay apart */
  EXPECT(tok, "it's  42", 0, 105, 116, 39, 115, 32, 32, 52, 50);
  int32_t ids[] = {268, 259, 266, 264, 267};
  char *s = decode(tok, ids, 5, 1);
  ck_assert_str_eq(s, "hello world<tool>");
  free(s);
  s = decode(tok, ids, 5, 0);
  ck_assert_str_eq(s, "<|bos|>hello<|end|> world<tool>");
  free(s);
  int32_t lone[] = {195}; /* half of a UTF-8 sequence decodes to U+FFFD */
  s = decode(tok, lone, 1, 0);
  ck_assert_str_eq(s, "\xEF\xBF\xBD");
  free(s);
  EXPECT(tok, "qq", 0, 113, 113); /* no merge builds "qq" */
  /* 6000 distinct words: the word cache's slot table grows several times; the
   * text encodes the same from a full cache, and as the words one by one from a
   * fresh tokenizer */
  const size_t nwords = 6000;
  char *text = malloc(nwords * 8 + 1);
  size_t tl = 0;
  for (size_t w = 0; w < nwords; w++) {
    text[tl++] = ' ';
    for (size_t k = w + 7 * 7 * 7 * 7; k; k /= 7)
      text[tl++] = "helowrd"[k % 7];
  }
  text[tl] = '\0';
  int32_t *first, *again;
  const size_t n1 = encode(tok, text, tl, 0, &first);
  const size_t n2 = encode(tok, text, tl, 0, &again);
  ck_assert_uint_eq(n1, n2);
  ck_assert_int_eq(memcmp(first, again, n1 * sizeof *first), 0);
  pf_tokenizer *fresh = load_ok(root);
  size_t at = 0;
  for (size_t a = 0; a < tl;) {
    size_t z = a + 1;
    while (z < tl && text[z] != ' ')
      z++;
    int32_t *one;
    const size_t n = encode(fresh, text + a, z - a, 0, &one);
    ck_assert_uint_le(at + n, n1);
    ck_assert_int_eq(memcmp(first + at, one, n * sizeof *one), 0);
    at += n;
    free(one);
    a = z;
  }
  ck_assert_uint_eq(at, n1);
  pf_tokenizer_free(fresh);
  free(first);
  free(again);
  free(text);
  pf_tokenizer_free(tok);
  free(path);
  /* ignore_merges: a pre-token that is itself in the vocabulary is emitted as is */
  path = write_bytelevel(root, 1);
  tok = load_ok(path); /* the file form */
  EXPECT(tok, "hello world,qq", 0, 259, 264, 44, 265);
  EXPECT(tok, "qqq", 0, 113, 113, 113);
  pf_tokenizer_free(tok);
  free(path);
  pf_test_rmtree(root);
  free(root);
}
END_TEST

/* sentencepiece-style: <unk> 0, <s> 1, </s> 2, <0x00>..<0xFF> 3..258, ▁ 259, a 260,
 * b 261, ▁a 262, ab 263, ▁ab 264; merges "▁ a" (rank 0), "a b" (1), "▁a b" (2). */
static const char SPM_JSON[] =
    "{\"added_tokens\":[{\"id\":0,\"content\":\"<unk>\",\"special\":true,\"normalized\":false},"
    "{\"id\":1,\"content\":\"<s>\",\"special\":true,\"normalized\":false},"
    "{\"id\":2,\"content\":\"</s>\",\"special\":true,\"normalized\":false}],"
    "\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"Prepend\",\"prepend\":"
    "\"\\u2581\"},{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"\\u2581\"}]},"
    "\"pre_tokenizer\":null,"
    "\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":"
    "\"<s>\",\"type_id\":0}},{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}],\"special_tokens\":"
    "{\"<s>\":{\"id\":\"<s>\",\"ids\":[1],\"tokens\":[\"<s>\"]}}},"
    "\"decoder\":{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"Replace\",\"pattern\":"
    "{\"String\":\"\\u2581\"},\"content\":\" \"},{\"type\":\"ByteFallback\"},{\"type\":\"Fuse\"},"
    "{\"type\":\"Strip\",\"content\":\" \",\"start\":1,\"stop\":0}]},"
    "\"model\":{\"type\":\"BPE\",\"unk_token\":\"<unk>\",\"fuse_unk\":true,\"byte_fallback\":%s,"
    "\"vocab\":{\"<unk>\":0,\"<s>\":1,\"</s>\":2,%s\"\\u2581\":259,\"a\":260,\"b\":261,"
    "\"\\u2581a\":262,\"ab\":263,\"\\u2581ab\":264},"
    "\"merges\":[\"\\u2581 a\",\"a b\",\"\\u2581a b\"]}}";

static char *write_spm(const char *root, int byte_fallback) {
  char bytes[256 * 16], *j = malloc(sizeof SPM_JSON + sizeof bytes);
  size_t o = 0;
  for (int b = 0; b < 256; b++)
    o += (size_t)sprintf(bytes + o, "\"<0x%02X>\":%d,", b, b + 3);
  sprintf(j, SPM_JSON, byte_fallback ? "true" : "false", bytes);
  char *path = pf_path_join(root, "tokenizer.json");
  pf_test_write(path, j);
  free(j);
  return path;
}

START_TEST(test_selfmade_spm) {
  char *root = pf_test_tmpdir("tok-spm");
  char *path = write_spm(root, 1);
  pf_tokenizer *tok = load_ok(root);
  ck_assert_int_eq(pf_tokenizer_bos_id(tok), 1);
  /* "▁ab▁ab": ▁+a at 0 and 3 (rank 0, leftmost first), then ▁a+b twice */
  EXPECT(tok, "ab ab", 1, 1, 264, 264);
  EXPECT(tok, "ab ab", 0, 264, 264);
  EXPECT(tok, "ba", 0, 259, 261, 260); /* no merge applies */
  /* é is not in the vocabulary: byte fallback <0xC3> <0xA9> = ids 198, 172 */
  EXPECT(tok, "\xC3\xA9", 0, 259, 198, 172);
  /* special tokens are split off before normalization: each side gets its own ▁ */
  EXPECT(tok, "a</s>b", 0, 262, 2, 259, 261);
  EXPECT(tok, "", 1, 1);
  int32_t ids[] = {1, 264, 264, 259, 198, 172};
  char *s = decode(tok, ids, 6, 1);
  ck_assert_str_eq(s, "ab ab \xC3\xA9");
  free(s);
  int32_t broken[] = {262, 198}; /* a lone lead byte decodes to U+FFFD */
  s = decode(tok, broken, 2, 1);
  ck_assert_str_eq(s, "a\xEF\xBF\xBD");
  free(s);
  pf_tokenizer_free(tok);
  free(path);
  /* without byte fallback, consecutive unknown chars fuse into one <unk> */
  path = write_spm(root, 0);
  tok = load_ok(root);
  EXPECT(tok, "\xC3\xA9\xC3\xA8 a", 0, 259, 0, 262);
  pf_tokenizer_free(tok);
  free(path);
  pf_test_rmtree(root);
  free(root);
}
END_TEST

/* ---- components (internal API): pre-tokenizers, normalizers, decoders ----
 * Expected splits for the five behaviours are the examples of HF's
 * SplitDelimiterBehavior documentation ("the-final--countdown" split on "-"); the
 * others follow the HF component definitions and are worked out by hand. */


#define SPLIT(beh) "{\"type\":\"Split\",\"pattern\":{\"String\":\"-\"},\"behavior\":\"" beh "\"}"
#define META(scheme, split)                                                                        \
  "{\"type\":\"Metaspace\",\"replacement\":\"\\u2581\",\"prepend_scheme\":\"" scheme               \
  "\",\"split\":" split "}"

START_TEST(test_pretokenizers) {
  const char *t = "the-final--countdown";
  pf_test_check_pre(SPLIT("Removed"), t, 1, "the|final|countdown");
  pf_test_check_pre(SPLIT("Isolated"), t, 1, "the|-|final|-|-|countdown");
  pf_test_check_pre(SPLIT("MergedWithPrevious"), t, 1, "the-|final-|-|countdown");
  pf_test_check_pre(SPLIT("MergedWithNext"), t, 1, "the|-final|-|-countdown");
  pf_test_check_pre(SPLIT("Contiguous"), t, 1, "the|-|final|--|countdown");
  pf_test_check_pre("{\"type\":\"Split\",\"pattern\":{\"Regex\":\"\\\\w+\"},\"behavior\":\"Removed\","
            "\"invert\":true}",
            "ab, cd", 1, "ab|cd");
  pf_test_check_pre("{\"type\":\"Split\",\"pattern\":{\"Regex\":\"\\\\w+\"},\"behavior\":\"Removed\","
            "\"invert\":false}",
            "ab, cd", 1, ", ");
  pf_test_check_pre(META("always", "true"), "hello world", 1, "\xE2\x96\x81hello|\xE2\x96\x81world");
  pf_test_check_pre(META("always", "false"), "hello world", 0, "\xE2\x96\x81hello\xE2\x96\x81world");
  pf_test_check_pre(META("first", "true"), "hello world", 1, "\xE2\x96\x81hello|\xE2\x96\x81world");
  pf_test_check_pre(META("first", "true"), "hello world", 0, "hello|\xE2\x96\x81world");
  pf_test_check_pre(META("never", "false"), " hello", 1, "\xE2\x96\x81hello");
  pf_test_check_pre("{\"type\":\"Metaspace\",\"replacement\":\"_\",\"add_prefix_space\":true}", "a b", 0,
            "_a|_b"); /* legacy form: add_prefix_space -> always, split defaults to true */
  pf_test_check_pre("{\"type\":\"Digits\",\"individual_digits\":false}", "ab123c4", 1, "ab|123|c|4");
  pf_test_check_pre("{\"type\":\"Digits\",\"individual_digits\":true}", "ab123c4", 1, "ab|1|2|3|c|4");
  pf_test_check_pre("{\"type\":\"Whitespace\"}", "Hey man!! ok?", 1, "Hey|man|!!|ok|?");
  pf_test_check_pre("{\"type\":\"WhitespaceSplit\"}", "Hey  man!!\tok?", 1, "Hey|man!!|ok?");
  pf_test_check_pre("{\"type\":\"ByteLevel\",\"add_prefix_space\":true,\"use_regex\":true}", "hello world",
            1, "\xC4\xA0hello|\xC4\xA0world");
  pf_test_check_pre("{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":false}", "a b\n", 1,
            "a\xC4\xA0"
            "b\xC4\x8A");
  pf_test_check_pre("{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Digits\",\"individual_digits\":"
            "true},{\"type\":\"ByteLevel\",\"add_prefix_space\":false}]}",
            "a12 b", 1,
            "a|1|2|\xC4\xA0"
            "b");
}
END_TEST

static void check_norm(const char *json, const char *text, const char *want) {
  pf_err err = {0};
  cJSON *j = cJSON_Parse(json);
  ck_assert_msg(j != NULL, "bad test JSON %s", json);
  pf_tk_norm *nz = NULL;
  ck_assert_msg(pf_tk_norm_parse(j, "normalizer", &nz, &err) == PF_OK, "%s", err.msg);
  pf_tk_buf out = {0};
  int at_start = 1;
  ck_assert_msg(pf_tk_normalize(nz, text, strlen(text), &out, &at_start, &err) == PF_OK, "%s",
                err.msg);
  ck_assert_msg(out.n == strlen(want) && !memcmp(out.p, want, out.n),
                "%s on \"%s\": expected \"%s\", got \"%.*s\"", json, text, want, (int)out.n,
                out.p ? out.p : "");
  pf_tk_buf_free(&out);
  pf_tk_norm_free(nz);
  cJSON_Delete(j);
}

START_TEST(test_normalizers) {
  check_norm("{\"type\":\"NFKC\"}", "\xEF\xAC\x81x", "fix"); /* U+FB01 ligature */
  check_norm("{\"type\":\"NFD\"}", "\xC3\xA9", "e\xCC\x81"); /* é -> e + U+0301 */
  check_norm("{\"type\":\"NFC\"}", "e\xCC\x81", "\xC3\xA9");
  check_norm("{\"type\":\"NFKD\"}", "\xC2\xB2", "2"); /* superscript two */
  check_norm("{\"type\":\"Lowercase\"}", "HeLLo \xC3\x80\xC4\xB0", "hello \xC3\xA0i\xCC\x87");
  check_norm("{\"type\":\"Strip\",\"strip_left\":true,\"strip_right\":true}", " \t a b \n", "a b");
  check_norm("{\"type\":\"Strip\",\"strip_left\":false,\"strip_right\":true}", " a ", " a");
  check_norm("{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"NFD\"},{\"type\":"
             "\"StripAccents\"}]}",
             "caf\xC3\xA9", "cafe");
  check_norm("{\"type\":\"Replace\",\"pattern\":{\"Regex\":\" +\"},\"content\":\" \"}", "a   b  c",
             "a b c");
  check_norm("{\"type\":\"Prepend\",\"prepend\":\"_\"}", "", "");
  check_norm("{\"type\":\"Prepend\",\"prepend\":\"_\"}", "x", "_x");
}
END_TEST

/* Decode the strings of `toks` (NULL-terminated) with the decoder in json. */
static void check_dec(const char *json, const char **toks, const char *want) {
  pf_err err = {0};
  pf_tk_bytemap bm;
  pf_tk_bytemap_init(&bm);
  cJSON *j = cJSON_Parse(json);
  ck_assert_msg(j != NULL, "bad test JSON %s", json);
  pf_tk_dec *d = NULL;
  ck_assert_msg(pf_tk_dec_parse(j, "decoder", &bm, &d, &err) == PF_OK, "%s", err.msg);
  pf_tk_pieces io = {0}, tmp = {0};
  for (; *toks; toks++)
    ck_assert_int_eq(pf_tk_strs_add(&io, *toks, strlen(*toks)), 0);
  ck_assert_msg(pf_tk_decode_chain(d, &io, &tmp, &err) == PF_OK, "%s", err.msg);
  char got[512] = "";
  size_t o = 0;
  for (size_t k = 0; k < io.n; k++)
    o += (size_t)snprintf(got + o, sizeof got - o, "%.*s", (int)io.v[k].len,
                          io.text.p + io.v[k].off);
  ck_assert_msg(!strcmp(got, want), "%s: expected \"%s\", got \"%s\"", json, want, got);
  pf_tk_pieces_free(&io);
  pf_tk_pieces_free(&tmp);
  pf_tk_dec_free(d);
  cJSON_Delete(j);
}

START_TEST(test_decoders) {
  const char *meta[] = {"\xE2\x96\x81Hey",
                        "\xE2\x96\x81"
                        "friend",
                        NULL};
  check_dec("{\"type\":\"Metaspace\",\"replacement\":\"\\u2581\",\"prepend_scheme\":\"always\"}",
            meta, "Hey friend");
  check_dec("{\"type\":\"Metaspace\",\"replacement\":\"\\u2581\",\"prepend_scheme\":\"never\"}",
            meta, " Hey friend");
  const char *strip[] = {"  a  ", NULL};
  check_dec("{\"type\":\"Strip\",\"content\":\" \",\"start\":1,\"stop\":3}", strip, " a");
  /* a run of byte tokens that is not valid UTF-8 gives one U+FFFD per byte, even
   * for the valid 0x41 inside the run (HF ByteFallback) */
  const char *bytes[] = {"<0xE2>", "<0x82>", "<0xAC>", "x", "<0xFF>", "<0x41>", "y", NULL};
  check_dec("{\"type\":\"ByteFallback\"}", bytes, "\xE2\x82\xACx\xEF\xBF\xBD\xEF\xBF\xBDy");
  const char *bl[] = {"\xC4\xA0"
                      "caf",
                      "\xC3\x83\xC2\xA9", "<x>", NULL}; /* " caf" + C3 A9 */
  check_dec("{\"type\":\"ByteLevel\"}", bl, " caf\xC3\xA9<x>");
  const char *rep[] = {"a_b", "_c", NULL};
  check_dec("{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"Replace\",\"pattern\":{\"String\":"
            "\"_\"},\"content\":\"  \"},{\"type\":\"Fuse\"}]}",
            rep, "a  b  c");
}
END_TEST

/* ---- error paths ---- */

static pf_status load_text(const char *root, const char *json, pf_err *err) {
  char *path = pf_path_join(root, "tokenizer.json");
  pf_test_write(path, json);
  pf_tokenizer *tok = (pf_tokenizer *)1;
  pf_status s = pf_tokenizer_load(path, &tok, err);
  ck_assert_ptr_null(tok);
  free(path);
  return s;
}

START_TEST(test_errors) {
  char *root = pf_test_tmpdir("tok-err");
  pf_err err = {0};
  pf_tokenizer *tok = (pf_tokenizer *)1;
  ck_assert_int_eq(pf_tokenizer_load("/nonexistent/pfrun/tokenizer.json", &tok, &err),
                   PF_ERR_NOT_FOUND);
  ck_assert_ptr_null(tok);
  pf_assert_err(err, "/nonexistent/pfrun/tokenizer.json");
  ck_assert_int_eq(pf_tokenizer_load(root, &tok, &err), PF_ERR_NOT_FOUND); /* empty folder */
  pf_assert_err(err, "tokenizer.json");

  ck_assert_int_eq(load_text(root, "{\"model\": {\"type\": \"BPE\",\n  ,}}", &err), PF_ERR_FORMAT);
  pf_assert_err(err, "tokenizer.json: malformed JSON at line 2");
  ck_assert_int_eq(load_text(root, "{\"version\": \"1.0\"}", &err), PF_ERR_FORMAT);
  pf_assert_err(err, "missing key \"model\"");
  ck_assert_int_eq(load_text(root, "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}}", &err),
                   PF_ERR_UNSUPPORTED);
  pf_assert_err(err, "\"WordPiece\"");
  ck_assert_int_eq(load_text(root, "{\"model\": {\"type\": \"Unigram\", \"vocab\": []}}", &err),
                   PF_ERR_UNSUPPORTED);
  pf_assert_err(err, "\"Unigram\"");
  ck_assert_int_eq(load_text(root,
                             "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0},"
                             " \"merges\": [\"a b\"]}}",
                             &err),
                   PF_ERR_FORMAT);
  pf_assert_err(err, "model.merges[0]: token \"b\" is not in the vocabulary");
  ck_assert_int_eq(
      load_text(root, "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": \"x\"}}}", &err),
      PF_ERR_FORMAT);
  pf_assert_err(err, "model.vocab[\"a\"]");
  ck_assert_int_eq(load_text(root,
                             "{\"model\": {\"type\": \"BPE\", \"vocab\": {}},"
                             " \"pre_tokenizer\": {\"type\": \"BertPreTokenizer\"}}",
                             &err),
                   PF_ERR_UNSUPPORTED);
  pf_assert_err(err, "pre_tokenizer: pre-tokenizer type \"BertPreTokenizer\"");
  ck_assert_int_eq(load_text(root,
                             "{\"model\": {\"type\": \"BPE\", \"vocab\": {}},"
                             " \"pre_tokenizer\": {\"type\": \"Split\", \"behavior\":"
                             " \"Isolated\", \"pattern\": {\"Regex\": \"(a\"}}}",
                             &err),
                   PF_ERR_FORMAT);
  pf_assert_err(err, "pre_tokenizer.pattern: bad regex");

  /* text that is not UTF-8 */
  char *path = write_bytelevel(root, 0);
  tok = load_ok(path);
  static const struct {
    const char *s;
    size_t n, at;
  } bad[] = {{"ab\xFF", 3, 2},
             {"\xE2\x82", 2, 0},
             {"x\xC0\xAF", 3, 1},
             {"ok\xED\xA0\x80", 5, 2},
             {"\xF4\x90\x80\x80", 4, 0}};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    int32_t *ids = (int32_t *)1;
    size_t n = 7;
    char want[64];
    ck_assert_int_eq(pf_tokenizer_encode(tok, bad[i].s, bad[i].n, 0, &ids, &n, &err),
                     PF_ERR_INVALID);
    ck_assert_ptr_null(ids);
    ck_assert_int_eq(n, 0);
    snprintf(want, sizeof want, "text is not valid UTF-8 at byte %zu", bad[i].at);
    pf_assert_err(err, want);
  }
  int32_t bad_id[] = {5, 269};
  char *text = (char *)1;
  ck_assert_int_eq(pf_tokenizer_decode(tok, bad_id, 2, 0, &text, NULL, &err), PF_ERR_INVALID);
  ck_assert_ptr_null(text);
  pf_assert_err(err, "token id 269");
  /* NUL bytes are valid UTF-8 and pass through */
  int32_t *ids;
  size_t n = encode(tok, "a\0b", 3, 0, &ids);
  ck_assert_int_eq(n, 3);
  ck_assert_int_eq(ids[1], 0);
  free(ids);
  pf_tokenizer_free(tok);
  pf_tokenizer_free(NULL);
  free(path);
  pf_test_rmtree(root);
  free(root);
}
END_TEST

static Suite *make_suite(void) {
  Suite *s = suite_create("tokenizer");
  TCase *tc = tcase_create("selfmade");
  tcase_add_test(tc, test_selfmade_bytelevel);
  tcase_add_test(tc, test_selfmade_spm);
  tcase_add_test(tc, test_pretokenizers);
  tcase_add_test(tc, test_normalizers);
  tcase_add_test(tc, test_decoders);
  tcase_add_test(tc, test_errors);
  suite_add_tcase(s, tc);
  TCase *real = tcase_create("shared");
  tcase_set_timeout(real, 300);
  tcase_add_loop_test(real, test_hf_vectors, 0, (int)(sizeof VEC_NAMES / sizeof VEC_NAMES[0]));
  tcase_add_loop_test(real, test_ggml_vectors, 0, (int)(sizeof GGML_NAMES / sizeof GGML_NAMES[0]));
  tcase_add_loop_test(real, test_roundtrip_brown, 0,
                      (int)(sizeof BYTE_LEVEL / sizeof BYTE_LEVEL[0]));
  tcase_add_test(real, test_api_real);
  suite_add_tcase(s, real);
  return s;
}

int main(void) {
  return pf_test_main(make_suite);
}
