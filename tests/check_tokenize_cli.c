/* check_tokenize_cli.c — runtime/cli/tokenize: `pfrun tokenize` parsing and running.
 *
 * Golden values: ../shared/tokenizers/vectors/NAME.jsonl holds {"text", "ids",
 * "ids_no_special"} per line from the official Hugging Face `tokenizers`
 * library; the vectors file is itself a valid --input (field "text"), so each
 * output line must equal the record's "ids" (or "ids_no_special"). The synthetic
 * tokenizer maps byte b to 3 + b and adds <s> = 1 (see check_dataset.c).
 */
#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "testutil.h"
#include "tokenize.h"

static pf_status parse(pf_tokenize_args *a, pf_err *err, int argc, ...) {
  char *argv[16];
  va_list ap;
  va_start(ap, argc);
  for (int i = 0; i < argc; i++)
    argv[i] = va_arg(ap, char *);
  va_end(ap);
  return pf_tokenize_parse(argc, argv, a, err);
}

START_TEST(test_parse) {
  pf_tokenize_args a;
  pf_err err = {0};
  ck_assert_int_eq(parse(&a, &err, 3, "--model-path", "m", "hello world"), PF_OK);
  ck_assert_str_eq(a.model_path, "m");
  ck_assert_str_eq(a.text, "hello world");
  ck_assert_ptr_null(a.input);
  ck_assert_int_eq(a.add_special, 1);
  ck_assert_int_eq(a.help, 0);
  ck_assert_int_eq(parse(&a, &err, 4, "--no-special", "--model-path=m2", "--input", "f.jsonl"),
                   PF_OK);
  ck_assert_str_eq(a.model_path, "m2");
  ck_assert_str_eq(a.input, "f.jsonl");
  ck_assert_str_eq(a.text_field, "text");
  ck_assert_int_eq(a.add_special, 0);
  ck_assert_int_eq(parse(&a, &err, 4, "--input=f.jsonl", "--text-field=body", "--model-path", "m"),
                   PF_OK);
  ck_assert_str_eq(a.text_field, "body");
  /* "--" ends the options; "-" alone is a TEXT */
  ck_assert_int_eq(parse(&a, &err, 4, "--model-path", "m", "--", "--not-an-option"), PF_OK);
  ck_assert_str_eq(a.text, "--not-an-option");
  ck_assert_int_eq(parse(&a, &err, 3, "--model-path", "m", "-"), PF_OK);
  ck_assert_str_eq(a.text, "-");
  ck_assert_int_eq(parse(&a, &err, 3, "x", "--help", "--bogus"), PF_OK);
  ck_assert_int_eq(a.help, 1);
  ck_assert_int_eq(parse(&a, &err, 1, "-h"), PF_OK);
  ck_assert_int_eq(a.help, 1);
  ck_assert_ptr_nonnull(strstr(pf_tokenize_help(), "--text-field NAME"));
}
END_TEST

START_TEST(test_parse_errors) {
  pf_tokenize_args a;
  pf_err err = {0};
  ck_assert_int_eq(parse(&a, &err, 1, "text"), PF_ERR_INVALID);
  pf_assert_err(err, "Missing option '--model-path'.");
  ck_assert_int_eq(parse(&a, &err, 2, "--model-path", "m"), PF_ERR_INVALID);
  pf_assert_err(err, "expected TEXT or --input FILE");
  ck_assert_int_eq(parse(&a, &err, 5, "--model-path", "m", "t", "--input", "f"), PF_ERR_INVALID);
  pf_assert_err(err, "give either TEXT or --input FILE, not both");
  ck_assert_int_eq(parse(&a, &err, 4, "--model-path", "m", "one", "two"), PF_ERR_INVALID);
  pf_assert_err(err, "expected one TEXT argument, got a second: 'two'");
  ck_assert_int_eq(parse(&a, &err, 5, "--model-path", "m", "--text-field", "x", "t"),
                   PF_ERR_INVALID);
  pf_assert_err(err, "--text-field is only valid with --input");
  ck_assert_int_eq(parse(&a, &err, 3, "--model-path", "m", "--bogus"), PF_ERR_INVALID);
  pf_assert_err(err, "No such option: --bogus");
  ck_assert_int_eq(parse(&a, &err, 2, "t", "--model-path"), PF_ERR_INVALID);
  pf_assert_err(err, "Option '--model-path' requires an argument.");
  ck_assert_int_eq(parse(&a, &err, 3, "--model-path", "m", "--input"), PF_ERR_INVALID);
  pf_assert_err(err, "Option '--input' requires an argument.");
  ck_assert_int_eq(parse(&a, &err, 4, "--model-path", "m", "--input=f", "--text-field="),
                   PF_ERR_INVALID);
  pf_assert_err(err, "--text-field: expected a name");
  ck_assert_int_eq(parse(&a, &err, 3, "--model-pathX", "m", "t"), PF_ERR_INVALID);
  pf_assert_err(err, "No such option: --model-pathX");
}
END_TEST

/* Run and capture the output. */
static pf_status run(const pf_tokenize_args *a, char **out, pf_err *err) {
  size_t len = 0;
  FILE *f = open_memstream(out, &len);
  ck_assert_ptr_nonnull(f);
  pf_status st = pf_tokenize_run(a, f, err);
  fclose(f);
  return st;
}

/* A folder with only the tokenizer files of a synthetic checkpoint. */
static char *tokenizer_only_dir(char **root_out) {
  char *model = pf_test_synth("llama-tiny", 1, NULL), *root = pf_test_tmpdir("tokcli");
  const char *files[] = {"tokenizer.json", "tokenizer_config.json"};
  pf_err err = {0};
  for (int i = 0; i < 2; i++) {
    char *src = pf_path_join(model, files[i]), *dst = pf_path_join(root, files[i]);
    ck_assert_int_eq(pf_copy_file(src, dst, &err), PF_OK);
    free(src);
    free(dst);
  }
  char *mroot = strdup(model), *slash = strrchr(mroot, '/');
  *slash = 0;
  pf_test_rmtree(mroot);
  free(mroot);
  free(model);
  *root_out = root;
  return strdup(root);
}

START_TEST(test_run_synthetic) {
  char *root = NULL, *dir = tokenizer_only_dir(&root), *out = NULL;
  pf_tokenize_args a = {.model_path = dir, .text = "xyz", .text_field = "text", .add_special = 1};
  pf_err err = {0};
  ck_assert_int_eq(run(&a, &out, &err), PF_OK);
  ck_assert_str_eq(out, "[1, 123, 124, 125]\n");
  free(out);
  a.add_special = 0;
  ck_assert_int_eq(run(&a, &out, &err), PF_OK);
  ck_assert_str_eq(out, "[123, 124, 125]\n");
  free(out);
  a.text = "";
  ck_assert_int_eq(run(&a, &out, &err), PF_OK);
  ck_assert_str_eq(out, "[]\n");
  free(out);
  /* --input: one line per record, blank lines are not records */
  char *in = pf_path_join(root, "in.jsonl");
  pf_test_write(in, "{\"text\": \"x\", \"body\": \"k\"}\n\n{\"text\": \"\", \"body\": \"qq\"}\n");
  a = (pf_tokenize_args){.model_path = dir, .input = in, .text_field = "text", .add_special = 1};
  ck_assert_int_eq(run(&a, &out, &err), PF_OK);
  ck_assert_str_eq(out, "[1, 123]\n[1]\n");
  free(out);
  a.text_field = "body";
  a.add_special = 0;
  ck_assert_int_eq(run(&a, &out, &err), PF_OK);
  ck_assert_str_eq(out, "[110]\n[116, 116]\n");
  free(out);
  /* .txt paragraphs */
  char *txt = pf_path_join(root, "in.txt");
  pf_test_write(txt, "x\nx\n\nz\n");
  a.input = txt;
  ck_assert_int_eq(run(&a, &out, &err), PF_OK);
  ck_assert_str_eq(out, "[123, 13, 123]\n[125]\n");
  free(out);
  /* errors: a bad record (earlier lines stay written), a missing file, no tokenizer, bad UTF-8 */
  pf_test_write(in, "{\"text\": \"x\"}\n{\"text\": 5}\n");
  a.input = in;
  a.text_field = "text";
  ck_assert_int_eq(run(&a, &out, &err), PF_ERR_FORMAT);
  pf_assert_err(err, "in.jsonl:2: expected a string field \"text\", found a number");
  ck_assert_str_eq(out, "[123]\n");
  free(out);
  char *missing = pf_path_join(root, "missing.jsonl");
  a.input = missing;
  ck_assert_int_eq(run(&a, &out, &err), PF_ERR_NOT_FOUND);
  pf_assert_err(err, "missing.jsonl: no such data file");
  free(out);
  a.model_path = missing;
  ck_assert_int_eq(run(&a, &out, &err), PF_ERR_NOT_FOUND);
  free(out);
  a = (pf_tokenize_args){.model_path = dir, .text = "a\xff", .add_special = 1};
  ck_assert_int_eq(run(&a, &out, &err), PF_ERR_INVALID);
  pf_assert_err(err, "TEXT: ");
  pf_assert_err(err, "UTF-8");
  free(out);
  ck_assert_int_eq(pf_tokenize_run(NULL, stdout, &err), PF_ERR_INVALID);
  free(missing);
  free(txt);
  free(in);
  pf_test_rmtree(root);
  free(root);
  free(dir);
}
END_TEST

/* Every line of the output equals the golden ids of the same record. */
static void check_vectors(const char *name, const char *tok_rel) {
  char vrel[256];
  snprintf(vrel, sizeof vrel, "tokenizers/vectors/%s.jsonl", name);
  char *vec = pf_test_shared(vrel, "tokenize --input vectors"),
       *tok = pf_test_shared(tok_rel, vrel);
  if (!vec || !tok) {
    free(vec);
    free(tok);
    return;
  }
  for (int special = 1; special >= 0; special--) {
    pf_tokenize_args a = {
        .model_path = tok, .input = vec, .text_field = "text", .add_special = special};
    char *out = NULL;
    pf_err err = {0};
    ck_assert_msg(run(&a, &out, &err) == PF_OK, "%s: %s", name, err.msg);
    char *golden = pf_test_read(vec, NULL), *g = golden, *o = out;
    int n = 0;
    for (char *gl; (gl = strsep(&g, "\n")) != NULL;) {
      if (!*gl) continue;
      char *ol = strsep(&o, "\n");
      ck_assert_ptr_nonnull(ol);
      cJSON *j = cJSON_Parse(gl), *mine = cJSON_Parse(ol);
      ck_assert_ptr_nonnull(mine);
      const cJSON *want = cJSON_GetObjectItemCaseSensitive(j, special ? "ids" : "ids_no_special");
      ck_assert_msg(cJSON_Compare(want, mine, 1), "%s record %d (special %d): got %s", name, n,
                    special, ol);
      /* and the exact "[a, b]" spelling */
      char *flat = cJSON_PrintUnformatted(want);
      size_t k = 0;
      for (char *p = flat; *p; p++)
        k += *p == ',';
      size_t commas_spaced = 0;
      for (char *p = ol; *p; p++)
        commas_spaced += p[0] == ',' && p[1] == ' ';
      ck_assert_uint_eq(k, commas_spaced);
      free(flat);
      cJSON_Delete(j);
      cJSON_Delete(mine);
      n++;
    }
    ck_assert_msg(o == NULL || *o == '\0', "%s: extra output lines", name);
    ck_assert_int_gt(n, 100);
    free(golden);
    free(out);
  }
  free(vec);
  free(tok);
}

/* --model-path takes a built-in synthetic model as every other command does: its
 * tokenizer files are written into the cache (not its weights) and used (before:
 * "cannot open"). The ids are those of the same tokenizer read from a folder. */
START_TEST(test_run_synthetic_spec) {
  char *root = NULL, *dir = tokenizer_only_dir(&root), *out = NULL, *want = NULL;
  char *cache = pf_path_join(root, "cache");
  const char *prev = getenv("PFRUN_CACHE");
  char *saved = prev ? strdup(prev) : NULL;
  setenv("PFRUN_CACHE", cache, 1);
  pf_err err = {0};
  pf_tokenize_args a = {
      .model_path = dir, .text = "xyz yx", .text_field = "text", .add_special = 1};
  ck_assert_int_eq(run(&a, &want, &err), PF_OK);
  a.model_path = "synthetic:llama-tiny";
  ck_assert_int_eq(run(&a, &out, &err), PF_OK);
  ck_assert_str_eq(out, want);
  free(out);
  a.model_path = "synthetic:no-such-model";
  ck_assert_int_eq(run(&a, &out, &err), PF_ERR_INVALID);
  pf_assert_err(err, "unknown synthetic preset \"no-such-model\"");
  free(out);
  if (saved)
    setenv("PFRUN_CACHE", saved, 1);
  else
    unsetenv("PFRUN_CACHE");
  free(saved);
  free(want);
  free(cache);
  free(dir);
  pf_test_rmtree(root);
  free(root);
}
END_TEST

START_TEST(test_vectors_llama3) {
  check_vectors("llama3", "tokenizers/llama3");
}
END_TEST

START_TEST(test_vectors_stories260K) {
  check_vectors("stories260K", "models/stories260K");
}
END_TEST

/* Folders that hold only tokenizer files (neox has no tokenizer_config.json). */
static const char *NEW_VEC[] = {"gemma", "phi3", "neox", "olmo2", "gpt4o"};

START_TEST(test_vectors_new) {
  char rel[64];
  snprintf(rel, sizeof rel, "tokenizers/%s", NEW_VEC[_i]);
  check_vectors(NEW_VEC[_i], rel);
}
END_TEST

static Suite *make_suite(void) {
  Suite *s = suite_create("tokenize_cli");
  TCase *tc = tcase_create("tokenize");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_parse);
  tcase_add_test(tc, test_parse_errors);
  tcase_add_test(tc, test_run_synthetic);
  tcase_add_test(tc, test_run_synthetic_spec);
  tcase_add_test(tc, test_vectors_llama3);
  tcase_add_test(tc, test_vectors_stories260K);
  tcase_add_loop_test(tc, test_vectors_new, 0, (int)(sizeof NEW_VEC / sizeof NEW_VEC[0]));
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return pf_test_main(make_suite);
}
