/* check_report.c — reports/pdf (the libharu document writer) and op "report".
 *
 * Reports are rendered back with poppler: `pdftoppm -r 50 -png` must give one
 * PNG per page and `pdftotext` must find the section titles and the numbers
 * put into the synthetic results (tests that need poppler say SKIP when it is
 * missing). Hashes are compared with pf_sha256_file / pf_sha256_dir_files of
 * the same files.
 */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../reports/pdf.h"
#include "fsutil.h"
#include "hash.h"
#include "model.h"
#include "op.h"
#include "testutil.h"

static int have_poppler(const char *test) {
  if (system("command -v pdftoppm >/dev/null 2>&1 && command -v pdftotext >/dev/null 2>&1") == 0)
    return 1;
  fprintf(stderr, "SKIP %s: pdftoppm/pdftotext not installed (poppler-utils)\n", test);
  return 0;
}

static void assert_pdf_file(const char *path) {
  size_t n = 0;
  char *b = pf_test_read(path, &n);
  ck_assert_msg(b != NULL, "%s: not written", path);
  ck_assert_msg(n > 100 && strncmp(b, "%PDF-", 5) == 0, "%s: no %%PDF- header", path);
  while (n > 0 && (b[n - 1] == '\n' || b[n - 1] == '\r'))
    n--;
  ck_assert_msg(memcmp(b + n - 5, "%%EOF", 5) == 0, "%s: no %%%%EOF", path);
  free(b);
}

/* Pages rendered by pdftoppm -r 50 (one PNG each). */
static int rendered_pages(const char *pdf, const char *dir) {
  char cmd[2048];
  snprintf(cmd, sizeof cmd, "pdftoppm -q -r 50 -png '%s' '%s/page'", pdf, dir);
  ck_assert_int_eq(system(cmd), 0);
  DIR *d = opendir(dir);
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)))
    if (strncmp(e->d_name, "page-", 5) == 0 && strstr(e->d_name, ".png")) {
      char p[1200];
      snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
      char *b = pf_test_read(p, NULL);
      ck_assert_msg(b && memcmp(b, "\x89PNG", 4) == 0, "%s: not a PNG", p);
      free(b);
      n++;
    }
  closedir(d);
  return n;
}

/* pdftotext of the whole document (malloc'd). */
static char *pdf_text(const char *pdf, const char *dir) {
  char cmd[2048], out[1200];
  snprintf(out, sizeof out, "%s/text.txt", dir);
  snprintf(cmd, sizeof cmd, "pdftotext -q '%s' '%s'", pdf, out);
  ck_assert_int_eq(system(cmd), 0);
  char *t = pf_test_read(out, NULL);
  ck_assert_ptr_nonnull(t);
  return t;
}

static void assert_has(const char *text, const char *needle) {
  ck_assert_msg(strstr(text, needle) != NULL, "report text lacks \"%s\"", needle);
}

/* With PF_TEST_KEEP=<folder> set, keep a copy of an output for inspection. */
static void keep_copy(const char *path, const char *name) {
  const char *keep = getenv("PF_TEST_KEEP");
  if (!keep || !*keep) return;
  char dst[1200];
  snprintf(dst, sizeof dst, "%s/%s", keep, name);
  pf_copy_file(path, dst, NULL);
}

static int count_of(const char *text, const char *needle) {
  int n = 0;
  for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle))
    n++;
  return n;
}

/* ------------------------------------------------------------ pdf writer */

START_TEST(test_pdf_writer) {
  char *dir = pf_test_tmpdir("pdf");
  char path[600];
  pf_err err = {0};
  pf_pdf *d = NULL;
  ck_assert_msg(pf_pdf_new("Writer test — ünïcødé", &d, &err) == PF_OK, "%s", err.msg);
  ck_assert_int_eq(pf_pdf_title(d, "Writer test", "subtitle line", &err), PF_OK);
  ck_assert_int_eq(pf_pdf_heading(d, 1, "First section", &err), PF_OK);
  char para[6000] = "Ünïcødé text αβγ wraps across lines. ";
  for (int i = 0; i < 60; i++)
    strcat(para, "word ");
  strcat(para, "averyveryveryveryveryveryveryveryveryveryveryveryveryveryveryveryveryveryvery"
               "veryveryveryverylongword end.");
  ck_assert_int_eq(pf_pdf_paragraph(d, para, &err), PF_OK);
  ck_assert_int_eq(pf_pdf_heading(d, 3, "bad", &err), PF_ERR_INVALID);
  pf_assert_err(err, "expected 1 or 2");
  const char *keys[2] = {"Key one", "Key two"}, *vals[2] = {"value one", "value\nsecond line"};
  ck_assert_int_eq(pf_pdf_kv(d, 2, keys, vals, &err), PF_OK);
  const char *head[16], *cells[16 * 40];
  char cbuf[16 * 40][16];
  for (int c = 0; c < 16; c++)
    head[c] = "col";
  for (int i = 0; i < 16 * 40; i++)
    snprintf(cbuf[i], sizeof cbuf[i], "%d", i), cells[i] = cbuf[i];
  pf_pdf_table_spec t = {.ncols = 16, .header = head, .nrows = 40, .cells = cells, .zebra = 1};
  ck_assert_int_eq(pf_pdf_table(d, &t, &err), PF_OK);
  t.ncols = 17;
  ck_assert_int_eq(pf_pdf_table(d, &t, &err), PF_ERR_INVALID);
  char mono[4000] = "line\twith\ttabs\n";
  for (int i = 0; i < 300; i++)
    strcat(mono, "x");
  strcat(mono, "\nlast line\n\n\n");
  ck_assert_int_eq(pf_pdf_mono(d, mono, &err), PF_OK);
  snprintf(path, sizeof path, "%s/missing.png", dir);
  ck_assert_int_eq(pf_pdf_image(d, path, NULL, &err), PF_ERR_NOT_FOUND);
  snprintf(path, sizeof path, "%s/bad.png", dir);
  pf_test_write(path, "not a png");
  ck_assert_int_ne(pf_pdf_image(d, path, NULL, &err), PF_OK);
  pf_assert_err(err, "bad.png");
  pf_pdf_free(d); /* a libharu error spoils the document: start again */
  ck_assert_int_eq(pf_pdf_new("Writer test", &d, &err), PF_OK);
  ck_assert_int_eq(pf_pdf_heading(d, 1, "Again", &err), PF_OK);
  ck_assert_int_eq(pf_pdf_paragraph(d, para, &err), PF_OK);
  ck_assert_int_eq(
      pf_pdf_table(
          d, &(pf_pdf_table_spec){.ncols = 16, .header = head, .nrows = 40, .cells = cells}, &err),
      PF_OK);
  ck_assert_int_eq(pf_pdf_mono(d, mono, &err), PF_OK);
  ck_assert_int_eq(pf_pdf_heading(d, 2, "Trailing heading", &err), PF_OK);
  snprintf(path, sizeof path, "%s/w.pdf", dir);
  ck_assert_msg(pf_pdf_save(d, path, &err) == PF_OK, "%s", err.msg);
  ck_assert_int_ge(pf_pdf_pages(d), 2);
  ck_assert_int_eq(pf_pdf_paragraph(d, "late", &err), PF_ERR_INVALID);
  pf_assert_err(err, "was saved");
  size_t pages = pf_pdf_pages(d);
  pf_pdf_free(d);
  assert_pdf_file(path);
  keep_copy(path, "pdf_writer.pdf");
  if (have_poppler("test_pdf_writer text")) {
    ck_assert_int_eq(rendered_pages(path, dir), (int)pages);
    char *text = pdf_text(path, dir);
    assert_has(text, "Ünïcødé text αβγ");
    assert_has(text, "639"); /* the last cell */
    assert_has(text, "Trailing heading");
    assert_has(text, "last line");
    char pg[64];
    snprintf(pg, sizeof pg, "Page %zu of %zu", pages, pages);
    assert_has(text, pg);
    free(text);
  }
  /* an unwritable destination */
  ck_assert_int_eq(pf_pdf_new("x", &d, &err), PF_OK);
  snprintf(path, sizeof path, "%s/no/such/dir/x.pdf", dir);
  ck_assert_int_eq(pf_pdf_save(d, path, &err), PF_ERR_IO);
  pf_assert_err(err, "no/such/dir/x.pdf: cannot create: No such file or directory");
  pf_pdf_free(d);
  pf_test_rmtree(dir);
  free(dir);
}
END_TEST

/* A one-page document; the three embedded DejaVu fonts make it ~220 KB. */
static pf_pdf *small_doc(void) {
  pf_pdf *d = NULL;
  pf_err err = {0};
  ck_assert_msg(pf_pdf_new("Full disk", &d, &err) == PF_OK, "%s", err.msg);
  ck_assert_int_eq(pf_pdf_heading(d, 1, "A section", &err), PF_OK);
  ck_assert_int_eq(pf_pdf_paragraph(d, "Some text, ünïcødé αβγ, and a mono block:", &err), PF_OK);
  ck_assert_int_eq(pf_pdf_mono(d, "x = 1\ny = 2\n", &err), PF_OK);
  return d;
}

/* libharu 2.3's HPDF_SaveToFile ignores a failed last flush: on a disk with room
 * for all but the last stdio buffer the report was cut short (no %%EOF) and the
 * save succeeded. Now the report is complete or absent, and the error says why. */
START_TEST(test_pdf_save_full_disk) {
  char *dir = pf_test_tmpdir("pdf-full");
  char path[1200];
  pf_err err = {0};
  pf_pdf *d = small_doc();
  snprintf(path, sizeof path, "%s/room.pdf", dir);
  ck_assert_msg(pf_pdf_save(d, path, &err) == PF_OK, "%s", err.msg);
  pf_pdf_free(d);
  assert_pdf_file(path);
  struct stat sb;
  ck_assert_int_eq(stat(path, &sb), 0);
  const size_t size = (size_t)sb.st_size;
  pf_test_rmtree(dir);
  free(dir);
  /* room for every whole 4 KiB page of it but the last (the case that was cut
   * short), then for a quarter of it (libharu itself saw that one fail) */
  const size_t kbs[2] = {(size + 4095) / 4096 * 4 - 4, size / 4096},
               big = (size + 4095) / 4096 * 4 + 64;
  for (int i = 0; i < 2; i++) {
    char *fs = pf_test_small_fs(kbs[i], "test_pdf_save_full_disk");
    if (!fs) return;
    d = small_doc();
    snprintf(path, sizeof path, "%s/r.pdf", fs);
    ck_assert_int_eq(pf_pdf_save(d, path, &err), PF_ERR_IO);
    pf_pdf_free(d);
    pf_assert_err(err, "r.pdf: write failed: No space left on device");
    ck_assert_msg(pf_dir_is_empty(fs), "%zu KiB: the failed save left a file behind", kbs[i]);
    pf_test_small_fs_free(fs);
  }
  char *fs = pf_test_small_fs(big, "test_pdf_save_full_disk");
  if (!fs) return;
  d = small_doc();
  snprintf(path, sizeof path, "%s/r.pdf", fs);
  ck_assert_msg(pf_pdf_save(d, path, &err) == PF_OK, "%s", err.msg);
  pf_pdf_free(d);
  assert_pdf_file(path);
  ck_assert_int_eq(stat(path, &sb), 0);
  ck_assert_uint_eq((size_t)sb.st_size, size);
  pf_test_small_fs_free(fs);
}
END_TEST

/* ------------------------------------------------------------ op report */

static pf_value *num_map(const char *k1, double v1, const char *k2, double v2) {
  pf_value *m = pf_value_map();
  if (k1) pf_map_set_num(m, k1, v1);
  if (k2) pf_map_set_num(m, k2, v2);
  return m;
}

static pf_value *step(int index, const char *id, const char *op, pf_value *params,
                      pf_value *result) {
  pf_value *s = pf_value_map();
  pf_map_set_int(s, "index", index);
  pf_map_set(s, "id", id ? pf_value_str(id) : pf_value_null());
  pf_map_set_str(s, "op", op);
  pf_map_set(s, "params", params ? params : pf_value_map());
  if (result) pf_map_set_str(result, "op", op);
  pf_map_set(s, "result", result ? result : pf_value_null());
  pf_map_set_num(s, "seconds", 0.25 * index);
  return s;
}

static pf_value *comparison_metrics(void) {
  static const char *const comps[3] = {"attention_output", "mlp_output", "gate_proj"};
  pf_value *r = pf_value_map(), *cmp = pf_value_map(), *cs = pf_value_map(),
           *pairs = pf_value_map();
  for (int i = 0; i < 3; i++) {
    pf_value *e = num_map("before", 0.1 * (i + 1), "after", 0.075 * (i + 1));
    pf_map_set_num(e, "change_percent", -25.0);
    pf_map_set(cs, comps[i], e);
  }
  pf_value *o = num_map("before", 0.2, "after", 0.1746);
  pf_map_set_num(o, "change_percent", -12.7);
  pf_value *p1 = pf_value_copy(cs);
  pf_map_set(p1, "overall", pf_value_copy(o));
  pf_map_set(pairs, "pair_1", p1);
  pf_map_set(cmp, "pairs", pairs);
  pf_map_set(cmp, "components", cs);
  pf_map_set(cmp, "overall", o);
  pf_map_set(r, "comparison", cmp);
  pf_value *mp = pf_value_map(), *m1 = pf_value_map(); /* the pairs: their prompts */
  pf_map_set_str(m1, "prompt1", "The médico said hello");
  pf_map_set_str(m1, "prompt2", "The nurse from Zürich said hello");
  pf_map_set_str(m1, "aligned", "mean_pooled");
  pf_map_set(mp, "pair_1", m1);
  pf_map_set(r, "pairs", mp);
  pf_value *neu = pf_value_map(), *l = pf_value_list(), *top = pf_value_list(),
           *t0 = pf_value_map();
  for (int i = 0; i < 128; i++)
    pf_list_push(l, pf_value_num(fabs(sin(i * 0.7)) * 0.02));
  pf_map_set(neu, "up_proj_layer_2", l);
  pf_map_set_str(t0, "key", "up_proj_layer_2");
  pf_map_set_int(t0, "neuron", 77);
  pf_map_set_num(t0, "difference", 0.0199);
  pf_map_set_int(t0, "source_layer", 5); /* a depth-pruned model's layer 2 */
  pf_list_push(top, t0);
  pf_map_set(neu, "top", top);
  pf_map_set(r, "neurons", neu);
  return r;
}

typedef struct fixture {
  char *dir, *model_dir, *saved_dir, *recipe;
  pf_model *model;
} fixture;

static void fixture_make(fixture *f) {
  pf_err err = {0};
  f->dir = pf_test_tmpdir("report");
  f->model_dir = pf_test_synth("llama-tiny", 7, NULL);
  ck_assert_msg(pf_model_load(f->model_dir, &f->model, &err) == PF_OK, "%s", err.msg);
  f->saved_dir = pf_path_join(f->dir, "checkpoint");
  ck_assert_int_eq(pf_mkdirs(f->saved_dir, &err), PF_OK);
  char p[1200];
  snprintf(p, sizeof p, "%s/config.json", f->saved_dir);
  pf_test_write(p, "{\"num_hidden_layers\": 3}\n");
  f->recipe = pf_path_join(f->dir, "recipe.yaml");
  pf_test_write(f->recipe, "pfrun: 1\nname: check_report\n# ünïcode comment in the recipe\n"
                           "steps:\n  - op: load\n    path: synthetic:llama-tiny\n");
}

static void fixture_free(fixture *f) {
  pf_model_release(f->model);
  char *root = strdup(f->model_dir);
  char *slash = strrchr(root, '/');
  if (slash) *slash = '\0';
  pf_test_rmtree(root);
  free(root);
  pf_test_rmtree(f->dir);
  free(f->dir), free(f->model_dir), free(f->saved_dir), free(f->recipe);
}

static pf_value *full_results(const fixture *f) {
  pf_value *r = pf_value_map(), *steps = pf_value_list(), *vars = pf_value_map();
  pf_map_set_str(r, "recipe", f->recipe);
  pf_map_set_str(r, "name", "check_report");
  pf_map_set_str(r, "output_dir", f->dir);
  pf_map_set_str(vars, "model", "synthetic:llama-tiny");
  pf_map_set(r, "vars", vars);
  /* 1 load */
  pf_value *p = pf_value_map(), *res = pf_value_map();
  pf_map_set_str(p, "path", f->model_dir);
  pf_map_set(res, "model", pf_value_model(f->model));
  pf_map_set_str(res, "name", "tiny-model");
  pf_list_push(steps, step(1, "base", "load", p, res));
  /* 2 importance */
  res = pf_value_map();
  pf_value *imp = num_map("0", 0.31, "1", 0.1234);
  pf_map_set_num(imp, "2", 0.22);
  pf_map_set_num(imp, "3", 0.27);
  pf_map_set(res, "importance", imp);
  pf_value *data = pf_value_map();
  pf_map_set_int(data, "samples", 16);
  pf_map_set_int(data, "tokens", 2048);
  pf_map_set(res, "data", data);
  p = pf_value_map();
  pf_map_set_str(p, "model", "base");
  pf_list_push(steps, step(2, "imp", "importance", p, res));
  /* 3 prune_depth using imp */
  p = pf_value_map();
  pf_map_set_str(p, "model", "base");
  pf_map_set_str(p, "importance", "imp");
  pf_map_set_int(p, "num_layers_to_remove", 1);
  res = pf_value_map();
  pf_map_set_int(res, "original_parameters", 1000000);
  pf_map_set_int(res, "pruned_parameters", 750000);
  pf_map_set_int(res, "reduction", 250000);
  pf_map_set_num(res, "percentage_reduction", 25.0);
  pf_map_set_int(res, "original_layer_count", 4);
  pf_map_set_int(res, "final_layer_count", 3);
  pf_map_set_num(res, "layer_reduction_percentage", 25.0);
  pf_value *rl = pf_value_list();
  pf_list_push(rl, pf_value_int(1));
  pf_map_set(res, "removed_layers", rl);
  pf_list_push(steps, step(3, "pruned", "prune_depth", p, res));
  /* 4 prune_width */
  res = pf_value_map();
  pf_map_set_int(res, "original_parameters", 1000000);
  pf_map_set_int(res, "pruned_parameters", 812345);
  pf_map_set_int(res, "reduction", 187655);
  pf_map_set_num(res, "percentage_reduction", 18.7655);
  pf_map_set_num(res, "expansion_rate", 300.0);
  pf_value *layers = pf_value_list();
  for (int l = 0; l < 4; l++) {
    pf_value *e = pf_value_map();
    pf_map_set_int(e, "index", l);
    pf_map_set_int(e, "intermediate_size_before", 256);
    pf_map_set_int(e, "intermediate_size_after", 192);
    pf_list_push(layers, e);
  }
  pf_map_set(res, "layers", layers);
  pf_list_push(steps, step(4, "width", "prune_width", NULL, res));
  /* 5 metrics, 6 evaluate, 7 save */
  pf_list_push(steps, step(5, "bias", "metrics", NULL, comparison_metrics()));
  p = pf_value_map();
  pf_map_set_str(p, "model", "pruned");
  pf_map_set_str(p, "compare", "base");
  res = num_map("perplexity", 96.61126, "nll", 4.5707);
  pf_map_set(res, "compare", num_map("perplexity", 60.16827, "nll", 4.0971));
  pf_map_set_num(res, "kl_divergence", 1.131975);
  pf_map_set_num(res, "top1_agreement", 0.418226);
  pf_value *sp = num_map("tokens_per_second", 7807.84, "avg_time", 0.0041);
  pf_map_set_num(sp, "min_time", 0.0031);
  pf_map_set_num(sp, "max_time", 0.0057);
  pf_map_set_int(sp, "num_runs", 5);
  pf_map_set_int(sp, "generated_tokens", 32);
  pf_map_set(res, "speed", sp);
  pf_value *cp = num_map("tokens_per_second", 5123.4, "avg_time", 0.0062);
  pf_map_set_num(cp, "min_time", 0.0058);
  pf_map_set_num(cp, "max_time", 0.0071);
  pf_map_set(res, "compare_speed", cp);
  pf_map_set(res, "inference_comparison", num_map("speedup", 1.5123, NULL, 0));
  pf_list_push(steps, step(6, "eval", "evaluate", p, res));
  res = pf_value_map();
  pf_map_set_str(res, "path", f->saved_dir);
  pf_list_push(steps, step(7, NULL, "save", NULL, res));
  pf_value *sk = step(8, "later", "benchmark", NULL, NULL); /* when: false */
  pf_map_set_bool(sk, "skipped", 1);
  pf_list_push(steps, sk);
  pf_map_set(r, "steps", steps);
  return r;
}

static pf_value *rows(int n) {
  pf_value *l = pf_value_list();
  for (int i = 0; i < n; i++) {
    pf_value *m = pf_value_map();
    pf_map_set_str(m, "method", i % 2 ? "VOW" : "MAW");
    pf_map_set_int(m, "pct", 10 * (i + 1));
    pf_map_set_num(m, "ppl", 12.5 + i);
    pf_list_push(l, m);
  }
  return l;
}

static pf_status run_report(const char *path, pf_value *results, pf_value *table, const char *title,
                            int dry, pf_value **out, pf_err *err) {
  pf_value *p = pf_value_map();
  if (path) pf_map_set_str(p, "path", path);
  if (results) pf_map_set(p, "results", results);
  if (table) pf_map_set(p, "table", table);
  if (title) pf_map_set_str(p, "title", title);
  pf_ctx ctx = {.dry_run = dry};
  pf_status st = pf_op_run("report", p, out, &ctx, err);
  pf_value_release(p);
  return st;
}

START_TEST(test_report_full) {
  fixture f;
  fixture_make(&f);
  char path[1200];
  snprintf(path, sizeof path, "%s/out/report.pdf", f.dir);
  pf_value *out = NULL;
  pf_err err = {0};
  pf_status st = run_report(path, full_results(&f), rows(3), "Check report", 0, &out, &err);
  ck_assert_msg(st == PF_OK, "%s", err.msg);
  assert_pdf_file(path);
  keep_copy(path, "report_full.pdf");
  int64_t pages = pf_map_int(out, "pages", 0);
  ck_assert_int_ge(pages, 3);
  ck_assert_int_eq(pf_map_int(out, "figures", 0), 3); /* importance, bias, neurons */
  pf_value_release(out);
  /* the chart folder is gone, nothing else is left next to the report */
  char outdir[1200];
  snprintf(outdir, sizeof outdir, "%s/out", f.dir);
  DIR *d = opendir(outdir);
  struct dirent *e;
  int entries = 0;
  while ((e = readdir(d)))
    if (e->d_name[0] != '.') entries++;
  closedir(d);
  ck_assert_int_eq(entries, 1);
  if (have_poppler("test_report_full")) {
    char *pngdir = pf_path_join(f.dir, "png");
    ck_assert_int_eq(pf_mkdirs(pngdir, &err), PF_OK);
    ck_assert_int_eq(rendered_pages(path, pngdir), (int)pages);
    char *text = pdf_text(path, pngdir);
    static const char *const want[] = {"Check report",
                                       "Run",
                                       "Steps",
                                       "Pruning",
                                       "Depth pruning",
                                       "Width pruning",
                                       "Layer importance",
                                       "Bias",
                                       "Evaluation",
                                       "Table",
                                       "Appendix: recipe",
                                       "1,000,000",
                                       "750,000",
                                       "250,000 (25.0000 %)",
                                       "812,345",
                                       "[1]",
                                       "layer 1 (0.1234)",
                                       "96.6113",
                                       "60.1683",
                                       "1.1320",
                                       "41.82",
                                       "7807.8",
                                       "1.51",
                                       "0.00310 / 0.00410 / 0.00570",
                                       "1.87", /* fastest runs: 0.0058 / 0.0031 */
                                       "5 timed runs of 32 new tokens each after 2 warm-up",
                                       "skipped",
                                       "A skipped step did not run",
                                       "it is not the sha256sum of one file",
                                       "The médico said hello",
                                       "The nurse from Zürich said hello",
                                       "mean-pooled",
                                       "Layer before",
                                       "0.1746",
                                       "-12.7",
                                       "up_proj_layer_2",
                                       "MAW",
                                       "VOW",
                                       "12.5",
                                       "ünïcode comment",
                                       "Figure 3",
                                       "pfrun version",
                                       "Kernels",
                                       NULL};
    for (int i = 0; want[i]; i++)
      assert_has(text, want[i]);
    assert_has(text, f.model_dir);
    char hex[PF_SHA256_HEX], pre[25];
    ck_assert_int_eq(pf_sha256_file(f.recipe, hex, &err), PF_OK);
    snprintf(pre, sizeof pre, "%.24s", hex);
    assert_has(text, pre);
    ck_assert_int_eq(pf_sha256_dir_files(f.model_dir, hex, &err), PF_OK);
    snprintf(pre, sizeof pre, "%.24s", hex);
    assert_has(text, pre);
    const char *in_hash = strstr(text, pre);
    ck_assert_int_eq(pf_sha256_dir_files(f.saved_dir, hex, &err), PF_OK);
    snprintf(pre, sizeof pre, "%.24s", hex);
    assert_has(text, pre);
    /* each hash on its own row (the folders are hashed together, then listed) */
    const char *out_row = strstr(text, "Output checkpoint");
    ck_assert_msg(out_row && in_hash < out_row && strstr(text, pre) > out_row,
                  "input hash, then the output row, then its hash");
    free(text);
    free(pngdir);
  }
  fixture_free(&f);
}
END_TEST

START_TEST(test_report_sections_only_with_data) {
  fixture f;
  fixture_make(&f);
  char path[1200];
  snprintf(path, sizeof path, "%s/minimal.pdf", f.dir);
  pf_value *r = pf_value_map(), *steps = pf_value_list(), *p = pf_value_map(),
           *res = pf_value_map();
  pf_map_set_str(p, "path", f.model_dir);
  pf_map_set(res, "model", pf_value_model(f.model));
  pf_list_push(steps, step(1, "base", "load", p, res));
  pf_map_set_str(r, "name", "minimal");
  pf_map_set(r, "steps", steps);
  pf_value *out = NULL;
  pf_err err = {0};
  ck_assert_msg(run_report(path, r, NULL, NULL, 0, &out, &err) == PF_OK, "%s", err.msg);
  ck_assert_int_eq(pf_map_int(out, "figures", -1), 0);
  keep_copy(path, "report_minimal.pdf");
  pf_value_release(out);
  if (have_poppler("test_report_sections_only_with_data")) {
    char *text = pdf_text(path, f.dir);
    assert_has(text, "pfrun report"); /* the default title */
    assert_has(text, "Steps");
    static const char *const absent[] = {"Pruning",  "Layer importance", "Bias", "Evaluation",
                                         "Appendix", "Figure",           NULL};
    for (int i = 0; absent[i]; i++)
      ck_assert_msg(!strstr(text, absent[i]), "section \"%s\" without data", absent[i]);
    free(text);
  }
  /* a Lua sweep: only a table, long enough for several pages */
  snprintf(path, sizeof path, "%s/sweep.pdf", f.dir);
  ck_assert_msg(run_report(path, NULL, rows(150), "Width pruning sweep", 0, &out, &err) == PF_OK,
                "%s", err.msg);
  ck_assert_int_ge(pf_map_int(out, "pages", 0), 3);
  keep_copy(path, "report_sweep.pdf");
  pf_value_release(out);
  if (have_poppler("test_report_sections_only_with_data sweep")) {
    char *text = pdf_text(path, f.dir);
    assert_has(text, "Width pruning sweep");
    assert_has(text, "161.5"); /* the last row's ppl */
    ck_assert_msg(!strstr(text, "Steps"), "steps section without a run");
    ck_assert_int_ge(count_of(text, "method"), 3); /* the header repeats on every page */
    free(text);
  }
  fixture_free(&f);
}
END_TEST

START_TEST(test_report_errors) {
  char *dir = pf_test_tmpdir("report-err");
  char path[1200];
  pf_value *out = NULL;
  pf_err err = {0};
  snprintf(path, sizeof path, "%s/r.txt", dir);
  ck_assert_int_eq(run_report(path, NULL, rows(1), NULL, 0, &out, &err), PF_ERR_INVALID);
  pf_assert_err(err, "path: expected a file name ending in .pdf");
  snprintf(path, sizeof path, "%s/r.pdf", dir);
  ck_assert_int_eq(run_report(path, pf_value_str("x"), NULL, NULL, 0, &out, &err), PF_ERR_INVALID);
  pf_assert_err(err, "results: expected a run's results map");
  pf_value *bad = pf_value_map();
  pf_map_set_int(bad, "steps", 3);
  ck_assert_int_eq(run_report(path, bad, NULL, NULL, 0, &out, &err), PF_ERR_INVALID);
  pf_assert_err(err, "steps is not a list");
  ck_assert_int_eq(run_report(path, NULL, pf_value_map(), NULL, 0, &out, &err), PF_ERR_INVALID);
  pf_assert_err(err, "table: expected a list of maps");
  pf_value *l = pf_value_list();
  pf_list_push(l, pf_value_int(1));
  ck_assert_int_eq(run_report(path, NULL, l, NULL, 0, &out, &err), PF_ERR_INVALID);
  pf_assert_err(err, "table[1]: expected a map");
  ck_assert_int_eq(run_report(path, NULL, NULL, NULL, 0, &out, &err), PF_ERR_INVALID);
  pf_assert_err(err, "nothing to report");
  ck_assert_int_eq(run_report(NULL, NULL, rows(1), NULL, 0, &out, &err), PF_ERR_INVALID);
  pf_assert_err(err, "path");
  /* unwritable: a folder under a regular file */
  snprintf(path, sizeof path, "%s/file", dir);
  pf_test_write(path, "x");
  snprintf(path, sizeof path, "%s/file/sub/r.pdf", dir);
  ck_assert_int_ne(run_report(path, NULL, rows(1), NULL, 0, &out, &err), PF_OK);
  pf_assert_err(err, "path");
  /* dry run: validated, nothing written */
  snprintf(path, sizeof path, "%s/dry.pdf", dir);
  ck_assert_int_eq(run_report(path, NULL, rows(1), NULL, 1, &out, &err), PF_OK);
  ck_assert_str_eq(pf_map_str(out, "path", ""), path);
  pf_value_release(out);
  ck_assert(!pf_path_exists(path));
  pf_test_rmtree(dir);
  free(dir);
}
END_TEST

static Suite *make_suite(void) {
  Suite *s = suite_create("report");
  TCase *tc = tcase_create("report");
  tcase_set_timeout(tc, 300);
  tcase_add_test(tc, test_pdf_writer);
  tcase_add_test(tc, test_pdf_save_full_disk);
  tcase_add_test(tc, test_report_full);
  tcase_add_test(tc, test_report_sections_only_with_data);
  tcase_add_test(tc, test_report_errors);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return pf_test_main(make_suite);
}
