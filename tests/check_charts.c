/* check_charts.c — reports/charts (PLplot charts, PCA) and op "plot".
 *
 * The PCA behind the PCA charts has its own suite (check_pca.c). Files are checked by their
 * format's signature: PNG magic + IHDR size, SVG
 * "<?xml" + "<svg", PDF "%PDF-" ... "%%EOF".
 */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <png.h>

#include "../reports/charts.h"
#include "op.h"
#include "testutil.h"

/* ------------------------------------------------------------ file checks */

static void assert_png(const char *path, uint32_t w, uint32_t h) {
  size_t n = 0;
  unsigned char *b = (unsigned char *)pf_test_read(path, &n);
  ck_assert_msg(b != NULL, "%s: not written", path);
  ck_assert_msg(n > 33 && memcmp(b, "\x89PNG\r\n\x1a\n", 8) == 0, "%s: no PNG signature", path);
  ck_assert_msg(memcmp(b + 12, "IHDR", 4) == 0, "%s: no IHDR", path);
  uint32_t pw = (uint32_t)b[16] << 24 | (uint32_t)b[17] << 16 | (uint32_t)b[18] << 8 | b[19];
  uint32_t ph = (uint32_t)b[20] << 24 | (uint32_t)b[21] << 16 | (uint32_t)b[22] << 8 | b[23];
  if (w) ck_assert_msg(pw == w && ph == h, "%s: %ux%u, expected %ux%u", path, pw, ph, w, h);
  free(b);
  /* the whole image decodes (CRCs, zlib, filters), on a white page with a drawing on it */
  png_image img;
  memset(&img, 0, sizeof img);
  img.version = PNG_IMAGE_VERSION;
  ck_assert_msg(png_image_begin_read_from_file(&img, path), "%s: %s", path, img.message);
  img.format = PNG_FORMAT_RGB;
  unsigned char *px = malloc(PNG_IMAGE_SIZE(img));
  ck_assert_ptr_nonnull(px);
  ck_assert_msg(png_image_finish_read(&img, NULL, px, 0, NULL), "%s: %s", path, img.message);
  ck_assert_msg(px[0] == 255 && px[1] == 255 && px[2] == 255, "%s: the corner is not white", path);
  size_t dark = 0, coloured = 0;
  for (size_t i = 0; i < (size_t)img.width * img.height; i++) {
    const unsigned char *p = px + 3 * i;
    dark += p[0] < 64 && p[1] < 64 && p[2] < 64;                              /* text, axes */
    coloured += abs((int)p[0] - (int)p[1]) + abs((int)p[1] - (int)p[2]) > 60; /* bars, cells */
  }
  ck_assert_msg(dark > 500 && coloured > 500, "%s: %zu dark, %zu coloured pixels", path, dark,
                coloured);
  free(px);
}

static void assert_svg(const char *path) {
  char *b = pf_test_read(path, NULL);
  ck_assert_msg(b != NULL, "%s: not written", path);
  ck_assert_msg(strncmp(b, "<?xml", 5) == 0 && strstr(b, "<svg") != NULL, "%s: not SVG", path);
  free(b);
}

static void assert_pdf(const char *path) {
  size_t n = 0;
  char *b = pf_test_read(path, &n);
  ck_assert_msg(b != NULL, "%s: not written", path);
  ck_assert_msg(n > 20 && strncmp(b, "%PDF-", 5) == 0, "%s: no %%PDF- header", path);
  while (n > 0 && (b[n - 1] == '\n' || b[n - 1] == '\r'))
    n--;
  ck_assert_msg(n >= 5 && memcmp(b + n - 5, "%%EOF", 5) == 0, "%s: no %%%%EOF at the end", path);
  free(b);
}

static void assert_chart(const char *path, pf_chart_format f, uint32_t w, uint32_t h) {
  if (f == PF_CHART_PNG)
    assert_png(path, w, h);
  else if (f == PF_CHART_SVG)
    assert_svg(path);
  else
    assert_pdf(path);
}

/* Number of entries in dir whose name starts with '.' (temporary files). */
static int hidden_entries(const char *dir) {
  DIR *d = opendir(dir);
  ck_assert(d != NULL);
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)))
    if (e->d_name[0] == '.' && strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
  closedir(d);
  return n;
}

static int have_tool(const char *name) {
  char cmd[256];
  snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", name);
  return system(cmd) == 0;
}

/* ------------------------------------------------------------ chart data */

static const double bar_v[6] = {0.02, 0.05, 0.04, 0.11, 0.07, 0.09};
static const char *const bar_l[6] = {"0", "1", "2", "3", "4", "5"};

static pf_status draw_kind(int kind, const char *path, pf_chart_format f, pf_err *err) {
  static double cells[12 * 9], p1[16], p2[16], hv[500];
  static const char *const groups[3] = {"attention_output", "mlp_output", "overall"};
  static const char *const series[2] = {"before", "after"};
  static const double gv[6] = {0.1, 0.2, 0.15, 0.08, 0.22, 0.12};
  static const char *const toks[8] = {"<s>",     "The", "Black / white", "man", "was",
                                      "walking", "at",  "night"};
  static const uint8_t dif[8] = {0, 0, 1, 0, 0, 0, 0, 0};
  for (int i = 0; i < 12 * 9; i++)
    cells[i] = fabs(sin(i * 0.37));
  for (int i = 0; i < 8; i++) {
    p1[2 * i] = i, p1[2 * i + 1] = sin(i), p2[2 * i] = i + 0.4, p2[2 * i + 1] = sin(i) + 0.3;
  }
  for (int i = 0; i < 500; i++)
    hv[i] = fmod(i * 0.618, 1.0) * fmod(i * 0.31, 1.0);
  double x[4] = {10, 20, 30, 40}, y1[4] = {12, 13, 15, 20}, y2[4] = {12, 12.5, 13, 16};
  pf_chart_series ss[2] = {{"MAW", 4, x, y1}, {"VOW", 4, x, y2}};
  switch (kind) {
  case 0: {
    pf_bar_chart c = {.text = {"Mean Activation Difference by Layer (mlp_output)", "Layer Number",
                               "Mean Absolute Difference", "Prompt Pair: \"a\" vs \"b\""},
                      .n = 6,
                      .values = bar_v,
                      .labels = bar_l,
                      .rotate_labels = 1};
    return pf_chart_bars(path, f, &c, err);
  }
  case 1: {
    pf_grouped_chart c = {.text = {"Bias", NULL, "Mean Activation Difference", NULL},
                          .n_groups = 3,
                          .n_series = 2,
                          .groups = groups,
                          .series = series,
                          .values = gv,
                          .value_labels = 1};
    return pf_chart_grouped_bars(path, f, &c, err);
  }
  case 2: {
    pf_hist_chart c = {.text = {"Neuron Activation Differences", "difference", "Neurons", NULL},
                       .n = 500,
                       .values = hv};
    return pf_chart_histogram(path, f, &c, err);
  }
  case 3: {
    pf_line_chart c = {
        .text = {"Sweep", "Pruning percentage", "Perplexity", NULL}, .n_series = 2, .series = ss};
    return pf_chart_lines(path, f, &c, err);
  }
  case 4: {
    pf_heatmap_chart c = {.text = {"Activation Differences - Layer mlp_output_layer_0",
                                   "Target Dimension", "Source Dimension", "footer"},
                          .rows = 12,
                          .cols = 9,
                          .cells = cells,
                          .bar_label = "|diff|"};
    return pf_chart_heatmap(path, f, &c, err);
  }
  default: {
    pf_pca_chart c = {.text = {"PCA Analysis of Activations - Layer mlp_output_layer_0",
                               "PC1 (50.00% explained var.)", "PC2 (20.00% explained var.)", NULL},
                      .n = 8,
                      .p1 = p1,
                      .p2 = p2,
                      .labels = toks,
                      .differs = dif};
    return pf_chart_pca(path, f, &c, err);
  }
  }
}

/* PNG sizes at 150 dpi: 10 x 6 in, heatmap 10 x 8 in, PCA 12 x 10 in. */
static const uint32_t kind_w[6] = {1500, 1500, 1500, 1500, 1500, 1800};
static const uint32_t kind_h[6] = {900, 900, 900, 900, 1200, 1500};
static const char *const kind_name[6] = {"bars", "grouped", "hist", "lines", "heatmap", "pca"};

/* ------------------------------------------------------------ tests */

START_TEST(test_format_parse) {
  pf_chart_format f;
  pf_err err = {0};
  ck_assert_int_eq(pf_chart_format_parse("svg", &f, &err), PF_OK);
  ck_assert_int_eq(f, PF_CHART_SVG);
  ck_assert_str_eq(pf_chart_format_ext(PF_CHART_PDF), "pdf");
  ck_assert_int_eq(pf_chart_format_parse("jpg", &f, &err), PF_ERR_INVALID);
  pf_assert_err(err, "expected png, svg or pdf, got 'jpg'");
}
END_TEST

START_TEST(test_every_kind_every_format) {
  char *dir = pf_test_tmpdir("charts");
  for (int f = 0; f < 3; f++)
    for (int k = 0; k < 6; k++) {
      char path[512];
      pf_err err = {0};
      snprintf(path, sizeof path, "%s/%s.%s", dir, kind_name[k],
               pf_chart_format_ext((pf_chart_format)f));
      pf_status st = draw_kind(k, path, (pf_chart_format)f, &err);
      ck_assert_msg(st == PF_OK, "%s: %s", path, err.msg);
      assert_chart(path, (pf_chart_format)f, kind_w[k], kind_h[k]);
      struct stat sb;
      ck_assert_int_eq(stat(path, &sb), 0);
      ck_assert_int_eq(sb.st_mode & 0777, 0644);
    }
  ck_assert_int_eq(hidden_entries(dir), 0);
  pf_test_rmtree(dir);
  free(dir);
}
END_TEST

START_TEST(test_utf8_and_escape_text) {
  if (!have_tool("pdftotext")) {
    fprintf(stderr, "SKIP test_utf8_and_escape_text: pdftotext not installed (poppler-utils)\n");
    return;
  }
  char *dir = pf_test_tmpdir("charts-utf8");
  char path[512], cmd[1200];
  snprintf(path, sizeof path, "%s/u.pdf", dir);
  pf_bar_chart c = {.text = {"Ünïcødé — αβγ ✓ #1 of 2", "Layer", "Δ", "naïve <tag> & \"quotes\""},
                    .n = 6,
                    .values = bar_v};
  pf_err err = {0};
  ck_assert_msg(pf_chart_bars(path, PF_CHART_PDF, &c, &err) == PF_OK, "%s", err.msg);
  snprintf(cmd, sizeof cmd, "pdftotext -q '%s' '%s/u.txt'", path, dir);
  ck_assert_int_eq(system(cmd), 0);
  snprintf(path, sizeof path, "%s/u.txt", dir);
  char *text = pf_test_read(path, NULL);
  ck_assert_ptr_nonnull(text);
  ck_assert_msg(strstr(text, "Ünïcødé") && strstr(text, "αβγ"), "UTF-8 title not found in: %s",
                text);
  ck_assert_msg(strstr(text, "#1 of 2"), "'#' must be drawn literally: %s", text);
  ck_assert_msg(strstr(text, "<tag> & \"quotes\""), "markup characters lost: %s", text);
  free(text);
  pf_test_rmtree(dir);
  free(dir);
}
END_TEST

START_TEST(test_errors) {
  char *dir = pf_test_tmpdir("charts-err");
  char path[512];
  pf_err err = {0};
  /* a folder that does not exist: IO error naming the path, nothing printed */
  snprintf(path, sizeof path, "%s/missing/x.png", dir);
  pf_bar_chart c = {.text = {"t", NULL, NULL, NULL}, .n = 6, .values = bar_v};
  ck_assert_int_eq(pf_chart_bars(path, PF_CHART_PNG, &c, &err), PF_ERR_IO);
  pf_assert_err(err, "cannot create the chart file");
  pf_assert_err(err, path);
  /* bad data */
  double bad[2] = {1.0, NAN};
  pf_bar_chart b = {.n = 2, .values = bad};
  snprintf(path, sizeof path, "%s/b.png", dir);
  ck_assert_int_eq(pf_chart_bars(path, PF_CHART_PNG, &b, &err), PF_ERR_INVALID);
  pf_assert_err(err, "value 1: expected a finite number");
  b.n = 0;
  ck_assert_int_eq(pf_chart_bars(path, PF_CHART_PNG, &b, &err), PF_ERR_INVALID);
  pf_heatmap_chart h = {.rows = 300, .cols = 2, .cells = bar_v};
  ck_assert_int_eq(pf_chart_heatmap(path, PF_CHART_PNG, &h, &err), PF_ERR_INVALID);
  pf_assert_err(err, "1..200 rows");
  ck_assert_int_eq(pf_chart_bars(path, (pf_chart_format)7, &c, &err), PF_ERR_INVALID);
  pf_grouped_chart g = {.n_groups = 1, .n_series = 9};
  ck_assert_int_eq(pf_chart_grouped_bars(path, PF_CHART_PNG, &g, &err), PF_ERR_INVALID);
  snprintf(path, sizeof path, "%s/", dir);
  ck_assert_int_eq(pf_chart_bars(path, PF_CHART_PNG, &c, &err), PF_ERR_INVALID);
  pf_assert_err(err, "expected a file name");
  ck_assert_int_eq(hidden_entries(dir), 0);
  pf_test_rmtree(dir);
  free(dir);
}
END_TEST

/* Several threads draw at once: the charts are serialised and all valid. */
static void *thread_draw(void *arg) {
  const char *path = arg;
  pf_err err = {0};
  pf_status st = draw_kind(0, path, PF_CHART_PNG, &err);
  return (void *)(intptr_t)st;
}

START_TEST(test_threads) {
  char *dir = pf_test_tmpdir("charts-thr");
  char paths[4][512];
  pthread_t t[4];
  for (int i = 0; i < 4; i++) {
    snprintf(paths[i], sizeof paths[i], "%s/t%d.png", dir, i);
    ck_assert_int_eq(pthread_create(&t[i], NULL, thread_draw, paths[i]), 0);
  }
  for (int i = 0; i < 4; i++) {
    void *rv;
    pthread_join(t[i], &rv);
    ck_assert_int_eq((int)(intptr_t)rv, PF_OK);
    assert_png(paths[i], 1500, 900);
  }
  pf_test_rmtree(dir);
  free(dir);
}
END_TEST

/* cairo numbers surfaces with a process-wide counter; the SVG ids are
 * renumbered, so a chart has the same bytes whatever was drawn before it. */
START_TEST(test_svg_same_bytes_after_other_charts) {
  char *dir = pf_test_tmpdir("charts-svg");
  char a[512], b[512], other[512];
  pf_err err = {0};
  snprintf(a, sizeof a, "%s/a.svg", dir);
  snprintf(b, sizeof b, "%s/b.svg", dir);
  ck_assert_msg(draw_kind(0, a, PF_CHART_SVG, &err) == PF_OK, "%s", err.msg);
  for (int k = 1; k < 6; k++) {
    snprintf(other, sizeof other, "%s/o%d.svg", dir, k);
    ck_assert_msg(draw_kind(k, other, PF_CHART_SVG, &err) == PF_OK, "%s", err.msg);
  }
  ck_assert_msg(draw_kind(0, b, PF_CHART_SVG, &err) == PF_OK, "%s", err.msg);
  size_t na = 0, nb = 0;
  char *ta = pf_test_read(a, &na), *tb = pf_test_read(b, &nb);
  ck_assert_msg(na == nb && memcmp(ta, tb, na) == 0, "the same chart, other bytes");
  ck_assert_msg(strstr(ta, "id=\"surface1\""), "cairo's surface id not renumbered");
  free(ta), free(tb);
  pf_test_rmtree(dir);
  free(dir);
}
END_TEST

/* ------------------------------------------------------------ op plot */

/* A bias_activations-shaped result: pairs of [S, D] activations for layers
 * 0..3 of the four visualize_bias types (pair 2 has different lengths). */
static pf_value *bias_result(int npairs) {
  static const char *const types[4] = {"attention_output", "gate_proj", "up_proj", "mlp_output"};
  pf_value *r = pf_value_map(), *pairs = pf_value_list();
  for (int p = 0; p < npairs; p++) {
    pf_value *e = pf_value_map(), *a[2] = {pf_value_map(), pf_value_map()};
    int64_t S[2] = {6, p ? 7 : 6}, D = 24;
    for (int side = 0; side < 2; side++) {
      pf_value *toks = pf_value_list();
      static const char *const words[7] = {"<s>", "The", " white", " man", " was", " here", "."};
      for (int s = 0; s < S[side]; s++)
        pf_list_push(toks, pf_value_str(side && s == 2 ? " Black" : words[s]));
      pf_map_set(e, side ? "tokens2" : "tokens1", toks);
      for (int l = 0; l < 4; l++)
        for (int t = 0; t < 4; t++) {
          int64_t shape[2] = {S[side], D};
          pf_tensor *x = NULL;
          ck_assert_int_eq(pf_tensor_new(PF_DTYPE_F32, 2, shape, &x, NULL), PF_OK);
          float *v = pf_tensor_mutable_data(x);
          for (int64_t i = 0; i < S[side] * D; i++)
            v[i] = (float)(sin(i * 0.13 + l + t) + (side ? 0.05 * (l + 1) * cos(i * 0.7) : 0));
          char key[64];
          snprintf(key, sizeof key, "%s_layer_%d", types[t], l);
          pf_map_set(a[side], key, pf_value_tensor(x));
          pf_tensor_release(x);
        }
    }
    pf_map_set_int(e, "index", p + 1);
    pf_map_set_str(e, "prompt1", "The white man was here.");
    pf_map_set_str(e, "prompt2", "The Black man was here.");
    pf_map_set(e, "act1", a[0]);
    pf_map_set(e, "act2", a[1]);
    pf_list_push(pairs, e);
  }
  pf_map_set_str(r, "op", "bias_activations");
  pf_map_set(r, "pairs", pairs);
  return r;
}

static pf_status run_plot(const char *kind, pf_value *data, const char *dir, const char *fmt,
                          const char *extra_key, pf_value *extra, pf_value **out, pf_err *err) {
  pf_value *p = pf_value_map();
  pf_map_set_str(p, "kind", kind);
  if (data) pf_map_set(p, "data", data);
  if (dir) pf_map_set_str(p, "output_dir", dir);
  if (fmt) pf_map_set_str(p, "format", fmt);
  if (extra_key) pf_map_set(p, extra_key, extra);
  pf_ctx ctx = {0};
  pf_status st = pf_op_run("plot", p, out, &ctx, err);
  pf_value_release(p);
  return st;
}

static int has_file(const pf_value *files, const char *suffix) {
  for (size_t i = 0; i < files->u.list.len; i++) {
    const char *s = files->u.list.items[i]->u.s;
    size_t n = strlen(s), m = strlen(suffix);
    if (n >= m && strcmp(s + n - m, suffix) == 0) return 1;
  }
  return 0;
}

START_TEST(test_plot_bias_names) {
  char *dir = pf_test_tmpdir("plot-bias");
  pf_value *out = NULL;
  pf_err err = {0};
  pf_status st = run_plot("bias", bias_result(2), dir, NULL, NULL, NULL, &out, &err);
  ck_assert_msg(st == PF_OK, "%s", err.msg);
  const pf_value *files = pf_map_get(out, "files");
  /* per pair: 4 mean_diff + 4 types x 3 layers (0, 2, 3) heatmaps + 2 x 3 PCA */
  ck_assert_int_eq(files->u.list.len, 2 * (4 + 12 + 6));
  static const char *const want[] = {
      "/mean_diff_mlp_output_pair0.png",         "/mean_diff_attention_output_pair1.png",
      "/mean_diff_gate_proj_pair0.png",          "/mean_diff_up_proj_pair1.png",
      "/heatmap_mlp_output_layer_0_pair0.png",   "/heatmap_up_proj_layer_3_pair1.png",
      "/heatmap_gate_proj_layer_2_pair0.png",    "/pca_mlp_output_layer_3_pair1.png",
      "/pca_attention_output_layer_0_pair0.png", NULL};
  for (int i = 0; want[i]; i++)
    ck_assert_msg(has_file(files, want[i]), "missing %s", want[i]);
  ck_assert(!has_file(files, "/heatmap_mlp_output_layer_1_pair0.png"));
  ck_assert(!has_file(files, "/pca_gate_proj_layer_0_pair0.png"));
  for (size_t i = 0; i < files->u.list.len; i++)
    assert_png(files->u.list.items[i]->u.s, 0, 0);
  pf_value_release(out);
  /* one pair, one kind, all layers, svg */
  st = run_plot("heatmap", bias_result(2), dir, "svg", "layers", pf_value_str("all"), &out, &err);
  ck_assert_msg(st == PF_OK, "%s", err.msg);
  files = pf_map_get(out, "files");
  ck_assert_int_eq(files->u.list.len, 2 * 16);
  ck_assert(has_file(files, "/heatmap_mlp_output_layer_1_pair1.svg"));
  pf_value_release(out);
  pf_value *p = pf_value_map();
  pf_map_set_str(p, "kind", "pca");
  pf_map_set(p, "data", bias_result(2));
  pf_map_set_str(p, "output_dir", dir);
  pf_map_set_str(p, "format", "pdf");
  pf_map_set_int(p, "pair", 2);
  pf_map_set_str(p, "layer_type", "up_proj");
  pf_ctx ctx = {0};
  ck_assert_msg(pf_op_run("plot", p, &out, &ctx, &err) == PF_OK, "%s", err.msg);
  files = pf_map_get(out, "files");
  ck_assert_int_eq(files->u.list.len, 3);
  ck_assert(has_file(files, "/pca_up_proj_layer_0_pair1.pdf"));
  assert_pdf(files->u.list.items[0]->u.s);
  pf_value_release(out);
  pf_map_set_int(p, "pair", 3);
  ck_assert_int_eq(pf_op_run("plot", p, &out, &ctx, &err), PF_ERR_INVALID);
  pf_assert_err(err, "pair: expected 1..2");
  pf_value_release(p);
  ck_assert_int_eq(hidden_entries(dir), 0);
  pf_test_rmtree(dir);
  free(dir);
}
END_TEST

/* Bytes of a and b equal; PDF: but for cairo's /CreationDate (the clock). */
static void assert_same_bytes(const char *a, const char *b) {
  size_t na = 0, nb = 0;
  char *ta = pf_test_read(a, &na), *tb = pf_test_read(b, &nb);
  ck_assert_msg(ta && tb, "%s or %s not written", a, b);
  static const char key[] = "/CreationDate (D:"; /* then YYYYMMDDhhmmssZ */
  char *da = memmem(ta, na, key, sizeof key - 1), *db = memmem(tb, nb, key, sizeof key - 1);
  if (da && db && na - (size_t)(da - ta) > 40 && nb - (size_t)(db - tb) > 40)
    memcpy(db + sizeof key - 1, da + sizeof key - 1, 15);
  ck_assert_msg(na == nb && memcmp(ta, tb, na) == 0, "%s and %s differ", a, b);
  free(ta), free(tb);
}

/* Plot into dir with `jobs` worker processes; the files (paths under dir). */
static pf_value *plot_jobs(const char *dir, int64_t jobs, const char *kind, const char *fmt,
                           const char *layer_type, int64_t pair) {
  pf_value *p = pf_value_map(), *out = NULL;
  pf_map_set_str(p, "kind", kind);
  pf_map_set(p, "data", bias_result(2));
  pf_map_set_str(p, "output_dir", dir);
  pf_map_set_str(p, "format", fmt);
  pf_map_set_int(p, "jobs", jobs);
  if (layer_type) pf_map_set_str(p, "layer_type", layer_type);
  if (pair) pf_map_set_int(p, "pair", pair);
  pf_ctx ctx = {0};
  pf_err err = {0};
  ck_assert_msg(pf_op_run("plot", p, &out, &ctx, &err) == PF_OK, "jobs %lld: %s", (long long)jobs,
                err.msg);
  pf_value_release(p);
  return out;
}

/* The same charts drawn in one process and by 3 worker processes: the same
 * file list, in the same order, and the same bytes. */
START_TEST(test_plot_parallel_same_bytes) {
  char *root = pf_test_tmpdir("plot-par");
  static const struct {
    const char *kind, *fmt, *layer_type;
    int64_t pair;
    size_t n;
  } runs[] = {{"bias", "png", "mlp_output", 0, 2 * 7}, /* per pair 1 + 3 heatmaps + 3 PCA */
              {"mean_diff", "svg", NULL, 0, 2 * 4},
              {"pca", "pdf", "up_proj", 2, 3}};
  for (size_t r = 0; r < sizeof runs / sizeof runs[0]; r++) {
    pf_value *res[2];
    char dirs[2][600];
    for (int k = 0; k < 2; k++) {
      snprintf(dirs[k], sizeof dirs[k], "%s/%s%d", root, runs[r].fmt, k);
      res[k] = plot_jobs(dirs[k], k ? 3 : 1, runs[r].kind, runs[r].fmt, runs[r].layer_type,
                         runs[r].pair);
      ck_assert_int_eq(hidden_entries(dirs[k]), 0);
    }
    const pf_value *f0 = pf_map_get(res[0], "files"), *f1 = pf_map_get(res[1], "files");
    ck_assert_uint_eq(f0->u.list.len, runs[r].n);
    ck_assert_uint_eq(f1->u.list.len, runs[r].n);
    for (size_t i = 0; i < runs[r].n; i++) {
      const char *a = f0->u.list.items[i]->u.s, *b = f1->u.list.items[i]->u.s;
      ck_assert_str_eq(strrchr(a, '/'), strrchr(b, '/'));
      assert_same_bytes(a, b);
    }
    pf_value_release(res[0]);
    pf_value_release(res[1]);
  }
  errno = 0; /* every worker was waited for */
  ck_assert_int_eq(waitpid(-1, NULL, WNOHANG), -1);
  ck_assert_int_eq(errno, ECHILD);
  pf_test_rmtree(root);
  free(root);
}
END_TEST

/* Errors inside worker processes come back as the step's error. */
START_TEST(test_plot_parallel_errors) {
  char *dir = pf_test_tmpdir("plot-par-err");
  pf_value *out = NULL;
  pf_err err = {0};
  /* a bad activation: found while drawing (the plan only names the charts) */
  pf_value *br = bias_result(2);
  pf_value *a1 = pf_map_get(br->u.map.vals[1]->u.list.items[1], "act2");
  pf_map_set(a1, "mlp_output_layer_3", pf_value_int(1));
  pf_value *p = pf_value_map();
  pf_map_set_str(p, "kind", "heatmap");
  pf_map_set(p, "data", br);
  pf_map_set_str(p, "output_dir", dir);
  pf_map_set_int(p, "jobs", 2);
  pf_ctx ctx = {0};
  ck_assert_int_eq(pf_op_run("plot", p, &out, &ctx, &err), PF_ERR_INVALID);
  pf_assert_err(err, "plot: pair 2: data: act2[\"mlp_output_layer_3\"]: expected an activation "
                     "tensor, got int");
  /* a chart that cannot be moved into place (a folder has its name) */
  pf_map_set(p, "data", bias_result(2));
  char sub[640], busy[700];
  snprintf(sub, sizeof sub, "%s/b", dir);
  pf_map_set_str(p, "output_dir", sub);
  ck_assert_int_eq(mkdir(sub, 0755), 0);
  snprintf(busy, sizeof busy, "%s/heatmap_gate_proj_layer_2_pair0.png", sub);
  ck_assert_int_eq(mkdir(busy, 0755), 0);
  ck_assert_int_eq(pf_op_run("plot", p, &out, &ctx, &err), PF_ERR_IO);
  pf_assert_err(err, "plot: pair 1: ");
  pf_assert_err(err, busy);
  pf_assert_err(err, "cannot move the chart into place");
  ck_assert_int_eq(hidden_entries(dir), 0);
  ck_assert_int_eq(hidden_entries(sub), 0);
  errno = 0;
  ck_assert_int_eq(waitpid(-1, NULL, WNOHANG), -1);
  ck_assert_int_eq(errno, ECHILD);
  pf_value_release(p);
  pf_test_rmtree(dir);
  free(dir);
}
END_TEST

static pf_value *metrics_result(void) {
  const char *json_comps[3] = {"attention_output", "mlp_output", "gate_proj"};
  pf_value *r = pf_value_map(), *cmp = pf_value_map(), *comps = pf_value_map(),
           *pairs = pf_value_map();
  for (int i = 0; i < 3; i++) {
    pf_value *e = pf_value_map();
    pf_map_set_num(e, "before", 0.1 * (i + 1));
    pf_map_set_num(e, "after", 0.08 * (i + 1));
    pf_map_set_num(e, "change_percent", -20.0);
    pf_map_set(comps, json_comps[i], e);
  }
  for (int p = 0; p < 2; p++) {
    pf_value *pm = pf_value_copy(comps), *o = pf_value_map();
    pf_map_set_num(o, "before", 0.2);
    pf_map_set_num(o, "after", 0.15 + 0.01 * p);
    pf_map_set_num(o, "change_percent", -25.0);
    pf_map_set(pm, "overall", o);
    pf_map_set(pairs, p ? "pair_2" : "pair_1", pm);
  }
  pf_value *ov = pf_value_map();
  pf_map_set_num(ov, "before", 0.2);
  pf_map_set_num(ov, "after", 0.16);
  pf_map_set_num(ov, "change_percent", -20.0);
  pf_map_set(cmp, "pairs", pairs);
  pf_map_set(cmp, "components", comps);
  pf_map_set(cmp, "overall", ov);
  pf_map_set_str(r, "op", "metrics");
  pf_map_set(r, "comparison", cmp);
  pf_value *neu = pf_value_map(), *l = pf_value_list(), *top = pf_value_list(),
           *t0 = pf_value_map();
  for (int i = 0; i < 64; i++)
    pf_list_push(l, pf_value_num(fabs(sin(i * 1.3)) * 0.01));
  pf_map_set(neu, "gate_proj_layer_0", l);
  pf_map_set_str(t0, "key", "gate_proj_layer_0");
  pf_map_set_int(t0, "neuron", 5);
  pf_map_set_num(t0, "difference", 0.0099);
  pf_list_push(top, t0);
  pf_map_set(neu, "top", top);
  pf_map_set(r, "neurons", neu);
  return r;
}

START_TEST(test_plot_other_kinds) {
  char *dir = pf_test_tmpdir("plot-other");
  pf_value *out = NULL, *imp = pf_value_map(), *scores = pf_value_map();
  pf_err err = {0};
  for (int l = 0; l < 5; l++) {
    char k[8];
    snprintf(k, sizeof k, "%d", 4 - l); /* keys out of order: sorted by layer */
    pf_map_set_num(scores, k, 0.1 + 0.02 * l);
  }
  pf_map_set(imp, "importance", scores);
  pf_value *hl = pf_value_list();
  pf_list_push(hl, pf_value_int(2));
  pf_status st = run_plot("importance", imp, dir, NULL, "highlight", hl, &out, &err);
  ck_assert_msg(st == PF_OK, "%s", err.msg);
  ck_assert(has_file(pf_map_get(out, "files"), "/layer_importance.png"));
  assert_png(pf_map_get(out, "files")->u.list.items[0]->u.s, 1500, 900);
  pf_value_release(out);
  /* the scores as a list (layer = position), as prune_depth takes them; before: "got a
   * map without the expected keys" although the key was there */
  pf_value *as_list = pf_value_map(), *ls = pf_value_list();
  for (int l = 0; l < 3; l++)
    pf_list_push(ls, pf_value_num(0.1 * (l + 1)));
  pf_map_set(as_list, "importance", ls);
  st = run_plot("importance", as_list, dir, NULL, NULL, NULL, &out, &err);
  ck_assert_msg(st == PF_OK, "%s", err.msg);
  pf_value_release(out);
  pf_value *bad = pf_value_map();
  pf_map_set_str(bad, "importance", "x");
  ck_assert_int_eq(run_plot("importance", bad, dir, NULL, NULL, NULL, &out, &err), PF_ERR_INVALID);
  pf_assert_err(err, "data.importance: expected a map {\"<layer>\": score} or a list of scores, "
                     "got string");
  st = run_plot("comparison", metrics_result(), dir, "pdf", NULL, NULL, &out, &err);
  ck_assert_msg(st == PF_OK, "%s", err.msg);
  const pf_value *files = pf_map_get(out, "files");
  ck_assert_int_eq(files->u.list.len, 1 + 4); /* overall + 3 components + overall per pair */
  ck_assert(has_file(files, "/bias_comparison_overall.pdf"));
  ck_assert(has_file(files, "/bias_comparison_mlp_output.pdf"));
  ck_assert(has_file(files, "/bias_comparison_overall_pairs.pdf")); /* not overwriting the first */
  for (size_t i = 0; i < files->u.list.len; i++)                    /* every path once */
    for (size_t j = 0; j < i; j++)
      ck_assert_str_ne(files->u.list.items[i]->u.s, files->u.list.items[j]->u.s);
  for (size_t i = 0; i < files->u.list.len; i++)
    assert_pdf(files->u.list.items[i]->u.s);
  pf_value_release(out);
  st = run_plot("neuron_histogram", metrics_result(), dir, "svg", NULL, NULL, &out, &err);
  ck_assert_msg(st == PF_OK, "%s", err.msg);
  ck_assert(has_file(pf_map_get(out, "files"), "/neuron_differences.svg"));
  assert_svg(pf_map_get(out, "files")->u.list.items[0]->u.s);
  pf_value_release(out);
  pf_test_rmtree(dir);
  free(dir);
}
END_TEST

START_TEST(test_plot_errors) {
  char *dir = pf_test_tmpdir("plot-err");
  pf_value *out = NULL;
  pf_err err = {0};
  /* wrong data kinds */
  ck_assert_int_eq(run_plot("importance", bias_result(1), dir, NULL, NULL, NULL, &out, &err),
                   PF_ERR_INVALID);
  pf_assert_err(err, "data: expected an importance or calibrate result");
  pf_assert_err(err, "got bias_activations");
  ck_assert_int_eq(run_plot("comparison", bias_result(1), dir, NULL, NULL, NULL, &out, &err),
                   PF_ERR_INVALID);
  pf_assert_err(err, "expected a metrics result with a before/after");
  ck_assert_int_eq(run_plot("neuron_histogram", pf_value_int(3), dir, NULL, NULL, NULL, &out, &err),
                   PF_ERR_INVALID);
  pf_assert_err(err, "got int");
  ck_assert_int_eq(run_plot("mean_diff", metrics_result(), dir, NULL, NULL, NULL, &out, &err),
                   PF_ERR_INVALID);
  pf_assert_err(err, "expected a bias_activations result");
  /* an activation that is not a tensor */
  pf_value *br = bias_result(1);
  pf_value *a1 = pf_map_get(br->u.map.vals[1]->u.list.items[0], "act1");
  pf_map_set(a1, "mlp_output_layer_0", pf_value_int(1));
  pf_value *lt = pf_value_str("mlp_output");
  ck_assert_int_eq(run_plot("heatmap", br, dir, NULL, "layer_type", lt, &out, &err),
                   PF_ERR_INVALID);
  pf_assert_err(err, "act1[\"mlp_output_layer_0\"]: expected an activation tensor, got int");
  /* a layer type the result did not capture: an error, not zero charts */
  ck_assert_int_eq(run_plot("mean_diff", bias_result(1), dir, NULL, "layer_type",
                            pf_value_str("down_proj_input"), &out, &err),
                   PF_ERR_INVALID);
  pf_assert_err(err, "layer_type down_proj_input: the activations hold no layer of this type");
  /* bad parameters (validated by the op table) */
  ck_assert_int_eq(run_plot("bias", bias_result(1), dir, "jpg", NULL, NULL, &out, &err),
                   PF_ERR_INVALID);
  pf_assert_err(err, "format");
  ck_assert_int_eq(run_plot("scatter", bias_result(1), dir, NULL, NULL, NULL, &out, &err),
                   PF_ERR_INVALID);
  pf_assert_err(err, "kind");
  ck_assert_int_eq(run_plot("bias", bias_result(1), NULL, NULL, NULL, NULL, &out, &err),
                   PF_ERR_INVALID);
  pf_assert_err(err, "output_dir");
  /* an output folder that cannot be created */
  char bad[600];
  snprintf(bad, sizeof bad, "%s/file", dir);
  pf_test_write(bad, "x");
  snprintf(bad, sizeof bad, "%s/file/sub", dir);
  ck_assert_int_ne(run_plot("bias", bias_result(1), bad, NULL, NULL, NULL, &out, &err), PF_OK);
  pf_assert_err(err, "output_dir");
  pf_test_rmtree(dir);
  free(dir);
}
END_TEST

static Suite *make_suite(void) {
  Suite *s = suite_create("charts");
  TCase *tc = tcase_create("charts");
  tcase_set_timeout(tc, 300);
  tcase_add_test(tc, test_format_parse);
  tcase_add_test(tc, test_every_kind_every_format);
  tcase_add_test(tc, test_utf8_and_escape_text);
  tcase_add_test(tc, test_errors);
  tcase_add_test(tc, test_threads);
  tcase_add_test(tc, test_svg_same_bytes_after_other_charts);
  tcase_add_test(tc, test_plot_bias_names);
  tcase_add_test(tc, test_plot_parallel_same_bytes);
  tcase_add_test(tc, test_plot_parallel_errors);
  tcase_add_test(tc, test_plot_other_kinds);
  tcase_add_test(tc, test_plot_errors);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return pf_test_main(make_suite);
}
