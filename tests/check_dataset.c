/* check_dataset.c — runtime/dataset: text files -> token batches.
 *
 * Expected values are computed in the test, independently of the loader: the
 * test reads its files itself (cJSON per line for .jsonl, its own paragraph
 * split for .txt), encodes each text with pf_tokenizer_encode, truncates /
 * packs / batches by hand and compares every id and mask cell. The synthetic
 * tokenizer (tests/helpers: pf_test_synth) is byte-level BPE with <unk>=0,
 * <s>=1 (BOS, added), </s>=2 (EOS), byte b = 3 + b, and merges only for a few
 * English pairs, so texts of x/y/z/q/k letters encode to one id per byte.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dataset.h"
#include "fsutil.h"
#include "testutil.h"
#include "tokenizer.h"

static char *g_model; /* synthetic checkpoint folder (tokenizer files inside) */
static char *g_dir;   /* scratch folder for data files */
static pf_tokenizer *g_tok;

static void setup(void) {
  pf_err err = {0};
  g_model = pf_test_synth("llama-tiny", 1, NULL);
  g_dir = pf_test_tmpdir("dataset");
  ck_assert_msg(pf_tokenizer_load(g_model, &g_tok, &err) == PF_OK, "%s", err.msg);
}

static void teardown(void) {
  pf_tokenizer_free(g_tok);
  pf_test_synth_free(g_model);
  pf_test_rmtree(g_dir);
  free(g_dir);
}

/* Path of a scratch file holding `text` (static buffer per call site is not
 * enough: the caller frees). */
static char *data_file(const char *name, const char *text) {
  char *p = pf_path_join(g_dir, name);
  pf_test_write(p, text);
  return p;
}

typedef struct ids {
  int32_t *v;
  size_t n;
} ids;

static ids enc(pf_tokenizer *tok, const char *text, size_t len, int add) {
  ids r = {0};
  pf_err err = {0};
  ck_assert_msg(pf_tokenizer_encode(tok, text, len, add, &r.v, &r.n, &err) == PF_OK, "%s", err.msg);
  return r;
}

static pf_dataset *load_ok(const pf_data_opts *o, pf_tokenizer *tok) {
  pf_err err = {0};
  pf_dataset *ds = NULL;
  pf_status st = pf_dataset_load(o, tok, &ds, &err);
  ck_assert_msg(st == PF_OK, "load %s: %s", o->data, err.msg);
  ck_assert_ptr_nonnull(ds);
  return ds;
}

static pf_status load_err(const pf_data_opts *o, pf_err *err) {
  pf_dataset *ds = (pf_dataset *)1;
  pf_status st = pf_dataset_load(o, g_tok, &ds, err);
  ck_assert_int_ne(st, PF_OK);
  ck_assert_ptr_null(ds);
  return st;
}

/* Compare the dataset with rows given as id arrays (already truncated / cut). */
static void check_rows(const pf_dataset *ds, const ids *rows, size_t n_rows, int64_t bs,
                       int32_t pad) {
  int64_t nb = ((int64_t)n_rows + bs - 1) / bs, real = 0, total = 0;
  ck_assert_int_eq(pf_dataset_batch_count(ds), nb);
  for (int64_t b = 0; b < nb; b++) {
    pf_batch batch;
    pf_err err = {0};
    ck_assert_int_eq(pf_dataset_batch(ds, b, &batch, &err), PF_OK);
    int64_t r0 = b * bs, r1 = r0 + bs < (int64_t)n_rows ? r0 + bs : (int64_t)n_rows, seq = 0;
    for (int64_t r = r0; r < r1; r++)
      if ((int64_t)rows[r].n > seq) seq = (int64_t)rows[r].n;
    ck_assert_int_eq(batch.batch, r1 - r0);
    ck_assert_int_eq(batch.seq, seq);
    ck_assert_ptr_nonnull(batch.mask);
    for (int64_t r = r0; r < r1; r++)
      for (int64_t s = 0; s < seq; s++) {
        int in = s < (int64_t)rows[r].n;
        int32_t want = in ? rows[r].v[s] : pad;
        ck_assert_msg(batch.ids[(r - r0) * seq + s] == want,
                      "batch %lld row %lld pos %lld: %d != %d", (long long)b, (long long)r,
                      (long long)s, batch.ids[(r - r0) * seq + s], want);
        ck_assert_int_eq(batch.mask[(r - r0) * seq + s], in);
        real += in;
      }
    total += (r1 - r0) * seq;
  }
  pf_data_stats st = pf_dataset_stats(ds);
  ck_assert_int_eq(st.rows, (int64_t)n_rows);
  ck_assert_int_eq(st.batches, nb);
  ck_assert_int_eq(st.tokens_real, real);
  ck_assert_int_eq(st.tokens_total, total);
  ck_assert_int_eq(st.pad_id, pad);
}

static void free_rows(ids *rows, size_t n) {
  for (size_t i = 0; i < n; i++)
    free(rows[i].v);
}

/* ---- small files ---- */

START_TEST(test_jsonl_batches) {
  const char *texts[] = {"x", "xx yy", "qqqq kkk zz", "z", "yyyyyyyyyyyyyy"};
  char *path = data_file("a.jsonl", "{\"text\": \"x\", \"n\": 1}\n"
                                    "{\"text\": \"xx yy\"}\n"
                                    "\n"
                                    "   \n"
                                    "{\"id\": 3, \"text\": \"qqqq kkk zz\"}\n"
                                    "{\"text\": \"z\"}\r\n"
                                    "{\"text\": \"yyyyyyyyyyyyyy\"}"); /* no final newline */
  ids rows[5];
  for (int i = 0; i < 5; i++)
    rows[i] = enc(g_tok, texts[i], strlen(texts[i]), 1);
  ck_assert_int_eq((int)rows[1].n, 6); /* <s> x x ' ' y y: no merges among these bytes */
  ck_assert_int_eq(rows[1].v[0], 1);
  ck_assert_int_eq(rows[1].v[1], 3 + 'x');
  pf_data_opts o = pf_data_opts_default();
  o.data = path;
  o.batch_size = 2;
  pf_dataset *ds = load_ok(&o, g_tok);
  check_rows(ds, rows, 5, 2, 2); /* pad = eos </s> = 2 */
  pf_data_stats st = pf_dataset_stats(ds);
  ck_assert_int_eq(st.samples_read, 5);
  ck_assert_int_eq(st.samples_used, 5);
  ck_assert_int_eq(st.samples_skipped, 0);
  ck_assert_int_eq(st.samples_truncated, 0);
  ck_assert_int_eq(st.max_seq, 15);
  ck_assert_int_eq((int)strlen(pf_dataset_fingerprint(ds)), 64);
  char fh[PF_SHA256_HEX];
  pf_err err = {0};
  ck_assert_int_eq(pf_sha256_file(path, fh, &err), PF_OK);
  ck_assert_str_eq(pf_dataset_file_hash(ds), fh);
  /* bad batch index, NULL handling */
  pf_batch b;
  ck_assert_int_eq(pf_dataset_batch(ds, 3, &b, &err), PF_ERR_INVALID);
  pf_assert_err(err, "dataset batch 3: expected an index in [0, 3)");
  ck_assert_int_eq(pf_dataset_batch(ds, -1, &b, &err), PF_ERR_INVALID);
  pf_dataset_free(ds);
  pf_dataset_free(NULL);
  ck_assert_int_eq(pf_dataset_batch_count(NULL), 0);
  /* text_field + a second field; add_special = 0; explicit pad id */
  free(path);
  path = data_file("b.jsonl", "{\"text\": 1, \"body\": \"kk\"}\n{\"body\": \"qqq\"}\n");
  o = pf_data_opts_default();
  o.data = path;
  o.text_field = "body";
  o.add_special = 0;
  o.pad_id = 0;
  ds = load_ok(&o, g_tok);
  ids r2[2] = {enc(g_tok, "kk", 2, 0), enc(g_tok, "qqq", 3, 0)};
  ck_assert_int_eq((int)r2[0].n, 2);
  check_rows(ds, r2, 2, 8, 0);
  pf_dataset_free(ds);
  free_rows(r2, 2);
  free_rows(rows, 5);
  free(path);
}
END_TEST

START_TEST(test_txt_paragraphs) {
  char *path = data_file("p.txt", "\xEF\xBB\xBFxx yy\nzz\r\n"
                                  "\n"
                                  "\n"
                                  "  \t \n"
                                  "qq\n"
                                  "   kk indented\n"
                                  " \n"
                                  "last line without newline");
  const char *texts[] = {"xx yy\nzz", "qq\n   kk indented", "last line without newline"};
  ids rows[3];
  for (int i = 0; i < 3; i++)
    rows[i] = enc(g_tok, texts[i], strlen(texts[i]), 1);
  pf_data_opts o = pf_data_opts_default();
  o.data = path;
  pf_dataset *ds = load_ok(&o, g_tok);
  check_rows(ds, rows, 3, 8, 2);
  pf_dataset_free(ds);
  free_rows(rows, 3);
  free(path);
  /* the extension is case-insensitive */
  path = data_file("UP.TXT", "kk\n");
  o.data = path;
  ds = load_ok(&o, g_tok);
  ck_assert_int_eq(pf_dataset_stats(ds).rows, 1);
  pf_dataset_free(ds);
  free(path);
}
END_TEST

/* A template that appends EOS (a Llama tokenizer with add_eos_token): truncation keeps
 * it, as transformers' truncation=True does, and cuts the text (before: the EOS was cut). */
START_TEST(test_truncation_keeps_eos) {
  char *dir = pf_test_tmpdir("dataset-eos");
  char *src = pf_path_join(g_model, "tokenizer.json"), *dst = pf_path_join(dir, "tokenizer.json");
  char *cfg = pf_path_join(dir, "tokenizer_config.json");
  pf_err err = {0};
  ck_assert_int_eq(pf_copy_file(src, dst, &err), PF_OK);
  pf_test_write(cfg, "{\"tokenizer_class\": \"LlamaTokenizer\", \"add_eos_token\": true, "
                     "\"bos_token\": \"<s>\", \"eos_token\": \"</s>\"}");
  pf_tokenizer *tok = NULL;
  ck_assert_msg(pf_tokenizer_load(dir, &tok, &err) == PF_OK, "%s", err.msg);
  ids q = enc(tok, "qqqqq", 5, 1); /* <s> q q q q q </s> */
  ck_assert_int_eq(q.n, 7);
  ck_assert_int_eq(q.v[0], 1);
  ck_assert_int_eq(q.v[6], 2);
  char *path = data_file("eos.jsonl", "{\"text\": \"qqqqq\"}\n{\"text\": \"xy\"}\n");
  pf_data_opts o = pf_data_opts_default();
  o.data = path;
  o.max_length = 5;
  pf_dataset *ds = load_ok(&o, tok);
  int32_t want0[5] = {1, q.v[1], q.v[2], q.v[3], 2};
  ids xy = enc(tok, "xy", 2, 1); /* short: untouched */
  ids rows[2] = {{want0, 5}, xy};
  check_rows(ds, rows, 2, 8, 2);
  ck_assert_int_eq(pf_dataset_stats(ds).samples_truncated, 1);
  pf_dataset_free(ds);
  free(q.v);
  free(xy.v);
  pf_tokenizer_free(tok);
  free(path);
  free(src);
  free(dst);
  free(cfg);
  pf_test_rmtree(dir);
  free(dir);
}
END_TEST

/* samples, min_length (special tokens counted) and truncation. */
START_TEST(test_samples_min_max) {
  /* token counts with BOS: 2, 4, 6, 3, 8, then a malformed line */
  char *path =
      data_file("m.jsonl", "{\"text\": \"x\"}\n{\"text\": \"xyz\"}\n{\"text\": \"qqqqq\"}\n"
                           "{\"text\": \"kk\"}\n{\"text\": \"zzzzzzz\"}\nnot json\n");
  const char *texts[] = {"x", "xyz", "qqqqq", "kk", "zzzzzzz"};
  ids all[5];
  for (int i = 0; i < 5; i++)
    all[i] = enc(g_tok, texts[i], strlen(texts[i]), 1);
  pf_data_opts o = pf_data_opts_default();
  o.data = path;
  o.min_length = 4; /* skips "x" (2) and "kk" (3) */
  o.samples = 3;    /* xyz, qqqqq, zzzzzzz: stops before the malformed line */
  o.max_length = 5; /* truncates qqqqq (6) and zzzzzzz (8) */
  pf_dataset *ds = load_ok(&o, g_tok);
  ids rows[3] = {{all[1].v, 4}, {all[2].v, 5}, {all[4].v, 5}};
  check_rows(ds, rows, 3, 8, 2);
  pf_data_stats st = pf_dataset_stats(ds);
  ck_assert_int_eq(st.samples_read, 5);
  ck_assert_int_eq(st.samples_used, 3);
  ck_assert_int_eq(st.samples_skipped, 2);
  ck_assert_int_eq(st.samples_truncated, 2);
  pf_dataset_free(ds);
  /* all samples: the malformed line is reached */
  o.samples = 0;
  pf_err err = {0};
  ck_assert_int_eq(load_err(&o, &err), PF_ERR_FORMAT);
  pf_assert_err(err, "m.jsonl:6: malformed JSON at column 1");
  /* min_length == the length is kept; samples larger than available is fine */
  free(path);
  path = data_file("m2.jsonl", "{\"text\": \"x\"}\n{\"text\": \"xyz\"}\n");
  o.data = path;
  o.min_length = 2;
  o.samples = 10;
  o.max_length = 512;
  ds = load_ok(&o, g_tok);
  check_rows(ds, all, 2, 8, 2);
  pf_dataset_free(ds);
  free_rows(all, 5);
  free(path);
}
END_TEST

START_TEST(test_pack) {
  char *path = data_file("k.txt", "xx\n\nyyy\n\nx\n\nzzzzzz\n\nkk\n");
  const char *texts[] = {"xx", "yyy", "x", "zzzzzz", "kk"};
  int32_t stream[64];
  size_t n = 0;
  for (int i = 0; i < 5; i++) {
    ids r = enc(g_tok, texts[i], strlen(texts[i]), 1);
    memcpy(stream + n, r.v, r.n * sizeof *r.v);
    n += r.n;
    free(r.v);
  }
  ck_assert_int_eq((int)n, 3 + 4 + 2 + 7 + 3); /* 19 ids */
  pf_data_opts o = pf_data_opts_default();
  o.data = path;
  o.pack = 1;
  o.max_length = 4;
  o.batch_size = 3;
  pf_dataset *ds = load_ok(&o, g_tok);
  ids rows[4];
  for (int i = 0; i < 4; i++)
    rows[i] = (ids){stream + 4 * i, 4}; /* 19 / 4 = 4 blocks, 3 ids dropped */
  check_rows(ds, rows, 4, 3, 2);
  pf_data_stats st = pf_dataset_stats(ds);
  ck_assert_int_eq(st.samples_used, 5);
  ck_assert_int_eq(st.tokens_real, st.tokens_total);
  pf_dataset_free(ds);
  /* samples counts blocks; reading stops once they are full */
  o.samples = 2;
  ds = load_ok(&o, g_tok);
  check_rows(ds, rows, 2, 3, 2);
  ck_assert_int_eq(pf_dataset_stats(ds).samples_read, 3); /* 3 + 4 + 2 = 9 >= 8 ids */
  pf_dataset_free(ds);
  /* min_length applies per sample before packing */
  o.samples = 0;
  o.min_length = 4;
  ds = load_ok(&o, g_tok);
  int32_t kept[] = {stream[3], stream[4],  stream[5],  stream[6],
                    stream[9], stream[10], stream[11], stream[12]};
  ids r2[2] = {{kept, 4}, {kept + 4, 4}};
  check_rows(ds, r2, 2, 3, 2);
  ck_assert_int_eq(pf_dataset_stats(ds).samples_skipped, 3);
  pf_dataset_free(ds);
  /* not enough for one block */
  o.min_length = 0;
  o.max_length = 100;
  pf_err err = {0};
  ck_assert_int_eq(load_err(&o, &err), PF_ERR_INVALID);
  pf_assert_err(err,
                "nothing to pack: 19 tokens from 5 samples make no full block of max_length 100");
  free(path);
}
END_TEST

static void fp_of(const pf_data_opts *o, char out[PF_SHA256_HEX]) {
  pf_dataset *ds = load_ok(o, g_tok);
  snprintf(out, PF_SHA256_HEX, "%s", pf_dataset_fingerprint(ds));
  pf_dataset_free(ds);
}

START_TEST(test_fingerprint) {
  const char *body =
      "{\"text\": \"xx yy\", \"alt\": \"xx yy\"}\n{\"text\": \"qqq\", \"alt\": \"qqq\"}\n"
      "{\"text\": \"kkkkkkkk\", \"alt\": \"kkkkkkkk\"}\n{\"text\": \"z\", \"alt\": \"z\"}\n";
  char *path = data_file("f.jsonl", body);
  pf_data_opts base = pf_data_opts_default();
  base.data = path;
  base.batch_size = 2;
  base.max_length = 16; /* longer than every sample (at most 9 ids); 21 ids in all */
  char fp0[PF_SHA256_HEX], fp[PF_SHA256_HEX];
  fp_of(&base, fp0);
  fp_of(&base, fp);
  ck_assert_str_eq(fp, fp0); /* deterministic */
  /* every option changes it, even where the batches happen to be identical */
  pf_data_opts o;
#define CHANGED(field, value)                                                                      \
  do {                                                                                             \
    o = base;                                                                                      \
    o.field = value;                                                                               \
    fp_of(&o, fp);                                                                                 \
    ck_assert_msg(strcmp(fp, fp0) != 0, "fingerprint unchanged by " #field);                       \
  } while (0)
  CHANGED(text_field, "alt"); /* same texts */
  CHANGED(samples, 3);
  CHANGED(samples, 4); /* == all 4: same rows */
  CHANGED(max_length, 5);
  CHANGED(max_length, 100); /* longer than every sample too: same rows */
  CHANGED(min_length, 1);
  CHANGED(pack, 1); /* one block of 16 */
  CHANGED(batch_size, 4);
  CHANGED(add_special, 0);
  CHANGED(pad_id, 0);
  CHANGED(pad_id, 2); /* == the automatic pad (eos) */
#undef CHANGED
  /* the file: an edit after the samples used still changes it */
  o = base;
  o.samples = 1;
  char fp1[PF_SHA256_HEX];
  fp_of(&o, fp1);
  char *edited = malloc(strlen(body) + 2);
  strcpy(edited, body);
  edited[strlen(edited) - 4] = 'y'; /* "z" -> "y" in the last record */
  pf_test_write(path, edited);
  fp_of(&o, fp);
  ck_assert_str_ne(fp, fp1);
  /* same bytes at another path: same fingerprint (the path is not hashed) */
  char *copy = data_file("copy.jsonl", edited);
  o.data = copy;
  char fp2[PF_SHA256_HEX];
  fp_of(&o, fp2);
  ck_assert_str_eq(fp2, fp);
  /* the same texts as .txt: another kind, another fingerprint */
  char *txt = data_file("f.txt", "xx yy\n\nqqq\n\nkkkkkkkk\n\ny\n");
  o.data = txt;
  fp_of(&o, fp2);
  ck_assert_str_ne(fp2, fp);
  free(edited);
  free(copy);
  free(txt);
  free(path);
}
END_TEST

/* ---- errors ---- */

static void expect_err(const char *name, const char *text, pf_status code, const char *needle) {
  char *path = text ? data_file(name, text) : pf_path_join(g_dir, name);
  pf_data_opts o = pf_data_opts_default();
  o.data = path;
  pf_err err = {0};
  ck_assert_int_eq(load_err(&o, &err), code);
  pf_assert_err(err, needle);
  free(path);
}

START_TEST(test_errors_files) {
  expect_err("missing.jsonl", NULL, PF_ERR_NOT_FOUND, "missing.jsonl: no such data file");
  /* missing whatever its name: not "unsupported data file kind" */
  expect_err("missing", NULL, PF_ERR_NOT_FOUND, "missing: no such data file");
  { /* a relative path: the message names the folder it was looked for in */
    pf_data_opts o = pf_data_opts_default();
    o.data = "no-such-dir/missing.jsonl";
    pf_err err = {0};
    ck_assert_int_eq(load_err(&o, &err), PF_ERR_NOT_FOUND);
    pf_assert_err(err, "no-such-dir/missing.jsonl: no such data file (relative to the current "
                       "folder /");
  }
  expect_err("empty.jsonl", "", PF_ERR_FORMAT, "empty.jsonl: the data file is empty");
  expect_err("blank.txt", "\n  \n\n", PF_ERR_FORMAT, "blank.txt: no samples");
  expect_err("blank.jsonl", "\n\n", PF_ERR_FORMAT, "blank.jsonl: no samples");
  expect_err("data.csv", "a,b\n", PF_ERR_INVALID,
             "data.csv: unsupported data file kind (expected .jsonl");
  expect_err(".jsonl", "{}\n", PF_ERR_INVALID, "unsupported data file kind");
  char *sub = pf_path_join(g_dir, "folder.jsonl");
  ck_assert_int_eq(mkdir(sub, 0755), 0);
  free(sub);
  expect_err("folder.jsonl", NULL, PF_ERR_INVALID,
             "folder.jsonl: expected a data file, found a folder");
}
END_TEST

START_TEST(test_errors_lines) {
  const char *ok = "{\"text\": \"xx\"}\n";
  char buf[512];
#define LINE3(name, line, code, needle)                                                            \
  snprintf(buf, sizeof buf, "%s%s%s", ok, ok, line);                                               \
  expect_err(name, buf, code, needle)
  LINE3("j1.jsonl", "{\"text\": \"xx\"\n", PF_ERR_FORMAT, "j1.jsonl:3: malformed JSON at column");
  LINE3("j2.jsonl", "[\"text\"]\n", PF_ERR_FORMAT,
        "j2.jsonl:3: expected a JSON object, found an array");
  LINE3("j3.jsonl", "\"text\"\n", PF_ERR_FORMAT,
        "j3.jsonl:3: expected a JSON object, found a string");
  LINE3("j4.jsonl", "{\"txt\": \"a\"}\n", PF_ERR_FORMAT,
        "j4.jsonl:3: expected a string field \"text\", found no such field");
  LINE3("j5.jsonl", "{\"text\": 12}\n", PF_ERR_FORMAT,
        "j5.jsonl:3: expected a string field \"text\", found a number");
  LINE3("j6.jsonl", "{\"text\": null}\n", PF_ERR_FORMAT, "found null");
  LINE3("j7.jsonl", "{\"text\": [\"a\"]}\n", PF_ERR_FORMAT, "found an array");
  LINE3("j8.jsonl", "{\"text\": \"a\"} x\n", PF_ERR_FORMAT,
        "j8.jsonl:3: text after the JSON object at column 15");
  LINE3("j9.jsonl", "{\"text\": \"a\xff b\"}\n", PF_ERR_FORMAT,
        "j9.jsonl:3: not valid UTF-8 at column 12");
  LINE3("ja.jsonl", "{\"text\": \"a\xed\xa0\x80\"}\n", PF_ERR_FORMAT, /* a UTF-16 surrogate */
        "ja.jsonl:3: not valid UTF-8 at column 12");
  LINE3("jb.jsonl", "{\"text\": \"a\\u0000b\"}\n", PF_ERR_FORMAT,
        "jb.jsonl:3: a \"\\u0000\" escape (NUL character) is not supported");
  LINE3("jc.jsonl", "{\"text\": true}\n", PF_ERR_FORMAT, "found a boolean");
  /* json.loads would read the last "text" (before: pfrun read the first, silently) */
  LINE3("jd.jsonl", "{\"text\": \"placeholder\", \"text\": \"real\"}\n", PF_ERR_FORMAT,
        "jd.jsonl:3: duplicate key 'text' (Python's json.loads would keep the last value)");
  LINE3("je.jsonl", "{\"text\": \"a\", \"score\": NaN}\n", PF_ERR_FORMAT,
        "je.jsonl:3: malformed JSON at column 24 (NaN and Infinity, which Python's json.dumps "
        "writes for float nan and inf, are not JSON: write null)");
#undef LINE3
  /* a raw NUL byte in a JSON line (written by hand: pf_test_write stops at NUL) */
  char *path = pf_path_join(g_dir, "nul.jsonl");
  FILE *f = fopen(path, "wb");
  fwrite("{\"text\": \"a\0\"}\n", 1, 15, f);
  fclose(f);
  pf_data_opts o = pf_data_opts_default();
  o.data = path;
  pf_err err = {0};
  ck_assert_int_eq(load_err(&o, &err), PF_ERR_FORMAT);
  pf_assert_err(err, "nul.jsonl:1: malformed JSON: a NUL byte at column 12");
  free(path);
  /* .txt: the line of the bad byte inside a paragraph, and its column */
  expect_err("u.txt", "xx\n\nfirst\nsec\xc3(\nthird\n", PF_ERR_FORMAT,
             "u.txt:4: not valid UTF-8 at column 4");
  /* valid multi-byte text passes */
  path = data_file("good.txt", "h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80\n");
  o.data = path;
  pf_dataset *ds = load_ok(&o, g_tok);
  pf_dataset_free(ds);
  free(path);
}
END_TEST

START_TEST(test_errors_usable) {
  char *path =
      data_file("short.jsonl", "{\"text\": \"xx\"}\n{\"text\": \"x\"}\n{\"text\": \"xyz\"}\n");
  pf_data_opts o = pf_data_opts_default();
  o.data = path;
  o.min_length = 600;
  pf_err err = {0};
  ck_assert_int_eq(load_err(&o, &err), PF_ERR_INVALID);
  pf_assert_err(err, "short.jsonl: no usable samples: all 3 samples have fewer than 600 tokens");
  free(path);
  /* empty texts without special tokens have no ids at all: never usable */
  path = data_file("none.jsonl", "{\"text\": \"\"}\n{\"text\": \"\"}\n");
  o = pf_data_opts_default();
  o.data = path;
  o.add_special = 0;
  ck_assert_int_eq(load_err(&o, &err), PF_ERR_INVALID);
  pf_assert_err(err, "none.jsonl: no usable samples: all 2 samples have no tokens");
  o.add_special = 1; /* with BOS they are one-token rows */
  pf_dataset *ds = load_ok(&o, g_tok);
  ck_assert_int_eq(pf_dataset_stats(ds).tokens_real, 2);
  pf_dataset_free(ds);
  free(path);
}
END_TEST

START_TEST(test_errors_options) {
  char *path = data_file("o.jsonl", "{\"text\": \"xx\"}\n");
  pf_err err = {0};
  pf_data_opts o;
#define BAD(field, value, needle)                                                                  \
  do {                                                                                             \
    o = pf_data_opts_default();                                                                    \
    o.data = path;                                                                                 \
    o.field = value;                                                                               \
    ck_assert_int_eq(load_err(&o, &err), PF_ERR_INVALID);                                          \
    pf_assert_err(err, needle);                                                                    \
  } while (0)
  BAD(max_length, 0, "max_length: expected an integer in [1, 1048576], got 0");
  BAD(max_length, PF_DATA_MAX_LENGTH + 1, "max_length: expected an integer in [1, 1048576]");
  BAD(min_length, -1, "min_length: expected 0 or more, got -1");
  BAD(samples, -2, "samples: expected 0 (all) or a positive count, got -2");
  BAD(batch_size, 0, "batch_size: expected an integer in [1, 10000000], got 0");
  BAD(pad_id, -2, "pad_id: expected -1 (automatic) or an id in [0, 289) of the tokenizer, got -2");
  BAD(pad_id, 289, "got 289");
  BAD(text_field, "", "text_field: expected a field name");
  BAD(data, NULL, "data: expected the path of a .jsonl or .txt file");
  BAD(data, "", "data: expected the path");
#undef BAD
  o = pf_data_opts_default();
  o.data = path;
  o.text_field = NULL; /* NULL means the default "text" */
  pf_dataset *ds = load_ok(&o, g_tok);
  pf_dataset_free(ds);
  ck_assert_int_eq(pf_dataset_load(&o, NULL, &ds, &err), PF_ERR_INVALID);
  ck_assert_ptr_null(ds);
  ck_assert_int_eq(pf_dataset_load(NULL, g_tok, &ds, &err), PF_ERR_INVALID);
  free(path);
}
END_TEST

static pf_status count_cb(void *ud, const char *text, size_t len, int64_t line, int *stop,
                          pf_err *err) {
  (*(int64_t *)ud)++;
  return PF_OK;
}

/* The two limits, exercised on the reader (no tokenizing: fast). */
START_TEST(test_limits) {
  char *path = pf_path_join(g_dir, "long.txt");
  FILE *f = fopen(path, "wb");
  ck_assert_ptr_nonnull(f);
  char *chunk = malloc(1 << 20);
  memset(chunk, 'x', 1 << 20);
  for (int i = 0; i < 64; i++)
    fwrite(chunk, 1, 1 << 20, f);
  fputs("x\n", f); /* 64 MiB + 1 */
  fclose(f);
  pf_err err = {0};
  int64_t n = 0;
  ck_assert_int_eq(pf_data_read_samples(path, "text", count_cb, &n, NULL, &err), PF_ERR_INVALID);
  pf_assert_err(err, "long.txt:1: line longer than 64 MiB (the limit)");
  /* exactly 64 MiB is fine */
  f = fopen(path, "wb");
  for (int i = 0; i < 64; i++)
    fwrite(chunk, 1, 1 << 20, f);
  fclose(f);
  ck_assert_int_eq(pf_data_read_samples(path, "text", count_cb, &n, NULL, &err), PF_OK);
  ck_assert_int_eq(n, 1);
  free(chunk);
  /* 10M + 1 one-byte paragraphs */
  f = fopen(path, "wb");
  char *many = malloc(3 * 1000000);
  for (int i = 0; i < 1000000; i++)
    memcpy(many + 3 * i, "a\n\n", 3);
  for (int i = 0; i < 10; i++)
    fwrite(many, 1, 3 * 1000000, f);
  fputs("b\n", f);
  fclose(f);
  free(many);
  n = 0;
  ck_assert_int_eq(pf_data_read_samples(path, "text", count_cb, &n, NULL, &err), PF_ERR_INVALID);
  pf_assert_err(err, "long.txt:20000001: more than 10000000 samples (the limit)");
  ck_assert_int_eq(n, 10000000);
  remove(path);
  free(path);
}
END_TEST

/* ---- the shared Brown calibration file ---- */

typedef struct brown {
  ids rows[1000];
  size_t n;
} brown;

/* Encode every record of the file independently of the loader. */
static void brown_encode(const char *path, pf_tokenizer *tok, brown *b) {
  size_t len = 0;
  char *buf = pf_test_read(path, &len), *line = buf, *end;
  ck_assert_ptr_nonnull(buf);
  b->n = 0;
  for (; line < buf + len; line = end + 1) {
    end = strchr(line, '\n');
    if (!end) end = buf + len;
    *end = 0;
    if (!*line) continue;
    cJSON *j = cJSON_Parse(line);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "text");
    ck_assert_msg(cJSON_IsString(t), "brown record %zu", b->n);
    ck_assert_uint_lt(b->n, 1000);
    b->rows[b->n++] = enc(tok, t->valuestring, strlen(t->valuestring), 1);
    cJSON_Delete(j);
  }
  free(buf);
}

static void brown_check(const char *data, const char *tok_rel, const char *what) {
  char *tp = pf_test_shared(tok_rel, what);
  if (!tp) return;
  pf_tokenizer *tok = NULL;
  pf_err err = {0};
  ck_assert_msg(pf_tokenizer_load(tp, &tok, &err) == PF_OK, "%s", err.msg);
  brown *b = calloc(1, sizeof *b);
  brown_encode(data, tok, b);
  ck_assert_uint_eq(b->n, 1000);
  /* samples=64, max_length=128, batch_size 8 */
  ids rows[64];
  int64_t real = 0, truncated = 0;
  for (int i = 0; i < 64; i++) {
    rows[i] = b->rows[i];
    if (rows[i].n > 128) rows[i].n = 128, truncated++;
    real += (int64_t)rows[i].n;
  }
  pf_data_opts o = pf_data_opts_default();
  o.data = data;
  o.samples = 64;
  o.max_length = 128;
  pf_dataset *ds = load_ok(&o, tok);
  int32_t pad = pf_tokenizer_eos_id(tok);
  check_rows(ds, rows, 64, 8, pad);
  pf_data_stats st = pf_dataset_stats(ds);
  ck_assert_int_eq(st.tokens_real, real);
  ck_assert_int_eq(st.samples_truncated, truncated);
  fprintf(stderr,
          "%s: samples=64 max_length=128: %lld rows, %lld batches, %lld real tokens, "
          "%lld cells, %lld truncated, pad %d\n",
          what, (long long)st.rows, (long long)st.batches, (long long)st.tokens_real,
          (long long)st.tokens_total, (long long)st.samples_truncated, st.pad_id);
  char fp[PF_SHA256_HEX];
  snprintf(fp, sizeof fp, "%s", pf_dataset_fingerprint(ds));
  pf_dataset_free(ds);
  /* pack: every record, cut into 128-id blocks */
  size_t total = 0;
  for (size_t i = 0; i < b->n; i++)
    total += b->rows[i].n;
  int32_t *stream = malloc(total * sizeof *stream);
  size_t at = 0;
  for (size_t i = 0; i < b->n; i++) {
    memcpy(stream + at, b->rows[i].v, b->rows[i].n * sizeof *stream);
    at += b->rows[i].n;
  }
  size_t blocks = total / 128;
  ids *prow = malloc(blocks * sizeof *prow);
  for (size_t i = 0; i < blocks; i++)
    prow[i] = (ids){stream + 128 * i, 128};
  o.samples = 0;
  o.pack = 1;
  ds = load_ok(&o, tok);
  check_rows(ds, prow, blocks, 8, pad);
  fprintf(stderr, "%s: pack max_length=128: %zu tokens in 1000 samples -> %zu blocks\n", what,
          total, blocks);
  ck_assert_str_ne(pf_dataset_fingerprint(ds), fp);
  pf_dataset_free(ds);
  free(prow);
  free(stream);
  for (size_t i = 0; i < b->n; i++)
    free(b->rows[i].v);
  free(b);
  pf_tokenizer_free(tok);
  free(tp);
}

START_TEST(test_brown_stories260K) {
  char *data = pf_test_shared("data/brown-calib.jsonl", "brown + stories260K");
  if (!data) return;
  brown_check(data, "models/stories260K", "stories260K");
  free(data);
}
END_TEST

START_TEST(test_brown_llama3) {
  char *data = pf_test_shared("data/brown-calib.jsonl", "brown + llama3");
  if (!data) return;
  brown_check(data, "tokenizers/llama3", "llama3");
  free(data);
}
END_TEST

/* A copy of the Brown file edited in its last line: the fingerprint of the first
 * 64 samples changes; the error for an impossible min_length counts all 1000. */
START_TEST(test_brown_edits) {
  char *data = pf_test_shared("data/brown-calib.jsonl", "brown edits");
  char *tp = pf_test_shared("models/stories260K", "brown edits");
  if (!data || !tp) {
    free(data);
    free(tp);
    return;
  }
  pf_tokenizer *tok = NULL;
  pf_err err = {0};
  ck_assert_int_eq(pf_tokenizer_load(tp, &tok, &err), PF_OK);
  size_t len = 0;
  char *buf = pf_test_read(data, &len);
  char *copy = pf_path_join(g_dir, "brown.jsonl");
  ck_assert_int_eq(pf_write_file(copy, buf, len, &err), PF_OK);
  pf_data_opts o = pf_data_opts_default();
  o.data = copy;
  o.samples = 64;
  o.max_length = 128;
  pf_dataset *ds = load_ok(&o, tok);
  char fp[PF_SHA256_HEX];
  snprintf(fp, sizeof fp, "%s", pf_dataset_fingerprint(ds));
  ck_assert_str_eq(
      pf_dataset_file_hash(ds),
      "ac25710ad9c50b4374fdcfe6866a4b44f2a44ec36cac01f92ee3bf493a5889f8"); /* sha256sum */
  pf_dataset_free(ds);
  char *q = strrchr(buf, '"'); /* "source": "..." of the last record: flip one letter */
  ck_assert_ptr_nonnull(q);
  q[-1] = q[-1] == 'x' ? 'y' : 'x';
  ck_assert_int_eq(pf_write_file(copy, buf, len, &err), PF_OK);
  ds = load_ok(&o, tok);
  ck_assert_str_ne(pf_dataset_fingerprint(ds), fp);
  pf_dataset_free(ds);
  o.samples = 0;
  o.min_length = 100000;
  ds = (pf_dataset *)1;
  ck_assert_int_eq(pf_dataset_load(&o, tok, &ds, &err), PF_ERR_INVALID);
  pf_assert_err(err,
                "brown.jsonl: no usable samples: all 1000 samples have fewer than 100000 tokens");
  free(copy);
  free(buf);
  pf_tokenizer_free(tok);
  free(tp);
  free(data);
}
END_TEST

static Suite *make_suite(void) {
  Suite *s = suite_create("dataset");
  TCase *tc = tcase_create("small");
  tcase_add_unchecked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 120); /* test_limits writes and reads ~100 MB (slow under ASan) */
  tcase_add_test(tc, test_jsonl_batches);
  tcase_add_test(tc, test_txt_paragraphs);
  tcase_add_test(tc, test_samples_min_max);
  tcase_add_test(tc, test_truncation_keeps_eos);
  tcase_add_test(tc, test_pack);
  tcase_add_test(tc, test_fingerprint);
  tcase_add_test(tc, test_errors_files);
  tcase_add_test(tc, test_errors_lines);
  tcase_add_test(tc, test_errors_usable);
  tcase_add_test(tc, test_errors_options);
  tcase_add_test(tc, test_limits);
  suite_add_tcase(s, tc);
  TCase *real = tcase_create("brown");
  tcase_add_unchecked_fixture(real, setup, teardown);
  tcase_set_timeout(real, 300);
  tcase_add_test(real, test_brown_stories260K);
  tcase_add_test(real, test_brown_llama3);
  tcase_add_test(real, test_brown_edits);
  suite_add_tcase(s, real);
  return s;
}

int main(void) {
  return pf_test_main(make_suite);
}
