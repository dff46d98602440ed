/* check_charts_full.c — charts and op "plot" when the file cannot be written
 * whole: a full disk (a small tmpfs, pf_test_small_fs; SKIP without
 * CAP_SYS_ADMIN) and a file-size limit (RLIMIT_FSIZE with SIGXFSZ ignored:
 * writes past it fail with EFBIG while the disk has room).
 *
 * PLplot's cairo driver ignores cairo's write errors, so before the fix an SVG
 * or PDF chart cut short was renamed into place and the call succeeded; a PNG
 * failed with "cannot encode the PNG file" and libpng printed "libpng error:
 * Write Error" to stderr. Every failure must leave nothing at the chart's path
 * and no temporary file.
 */
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../reports/charts.h"
#include "fsutil.h"
#include "op.h"
#include "testutil.h"
#include "value.h"

static const double bar_v[6] = {0.02, 0.05, 0.04, 0.11, 0.07, 0.09};
static const char *const bar_l[6] = {"0", "1", "2", "3", "4", "5"};

static pf_status bars(const char *path, pf_chart_format f, pf_err *err) {
  pf_bar_chart c = {.text = {"Mean Activation Difference by Layer (mlp_output)", "Layer Number",
                             "Mean Absolute Difference", "Prompt Pair: \"a\" vs \"b\""},
                    .n = 6,
                    .values = bar_v,
                    .labels = bar_l,
                    .rotate_labels = 1};
  return pf_chart_bars(path, f, &c, err);
}

/* Entries of dir other than "." and "..". */
static int entries(const char *dir) {
  DIR *d = opendir(dir);
  ck_assert_msg(d != NULL, "%s: cannot open", dir);
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)))
    n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
  closedir(d);
  return n;
}

/* Size of the chart drawn where there is room. */
static size_t chart_size(pf_chart_format f) {
  char *dir = pf_test_tmpdir("chart-size");
  char path[1200];
  snprintf(path, sizeof path, "%s/c.%s", dir, pf_chart_format_ext(f));
  pf_err err = {0};
  ck_assert_msg(bars(path, f, &err) == PF_OK, "%s", err.msg);
  struct stat sb;
  ck_assert_int_eq(stat(path, &sb), 0);
  pf_test_rmtree(dir);
  free(dir);
  return (size_t)sb.st_size;
}

/* Run bars() with stderr captured; *printed = what went to stderr (malloc'd). */
static pf_status bars_quiet(const char *path, pf_chart_format f, char **printed, pf_err *err) {
  char log[] = "/tmp/pftest-stderr-XXXXXX";
  int fd = mkstemp(log);
  ck_assert_int_ge(fd, 0);
  fflush(stderr);
  int saved = dup(2);
  dup2(fd, 2);
  pf_status st = bars(path, f, err);
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  close(fd);
  *printed = pf_test_read(log, NULL);
  unlink(log);
  return st;
}

/* File-size limit of `bytes` for this process (SIGXFSZ ignored); 0 = lift it. */
static void fsize_limit(size_t bytes) {
  static struct rlimit old;
  static int have;
  if (!have) {
    ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
    have = 1;
  }
  signal(SIGXFSZ, SIG_IGN);
  struct rlimit r = old;
  if (bytes) r.rlim_cur = bytes;
  ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &r), 0);
}

/* SVG / PDF on a full disk: an error naming the chart and the full file system,
 * nothing left (before: the chart cut short, renamed into place, PF_OK). */
START_TEST(test_vector_full_disk) {
  for (pf_chart_format f = PF_CHART_SVG; f <= PF_CHART_PDF; f++) {
    const size_t size = chart_size(f), kb = size / 2 / 4096 * 4;
    ck_assert_msg(kb >= 4, "%s chart of %zu bytes: too small to cut", pf_chart_format_ext(f), size);
    char *fs = pf_test_small_fs(kb, "test_vector_full_disk");
    if (!fs) return;
    char path[1200], *printed = NULL;
    snprintf(path, sizeof path, "%s/c.%s", fs, pf_chart_format_ext(f));
    pf_err err = {0};
    ck_assert_int_eq(bars_quiet(path, f, &printed, &err), PF_ERR_IO);
    pf_assert_err(err, path);
    pf_assert_err(err, "cannot write the chart: the file system is full (No space left on device)");
    ck_assert_msg(!printed || !*printed, "printed: %s", printed);
    free(printed);
    ck_assert_msg(entries(fs) == 0, "%s: the failed chart left a file", fs);
    pf_test_small_fs_free(fs);
  }
}
END_TEST

/* A PNG on a full disk: the write's errno, nothing printed by libpng. */
START_TEST(test_png_full_disk) {
  char *fs = pf_test_small_fs(16, "test_png_full_disk");
  if (!fs) return;
  char path[1200], *printed = NULL;
  snprintf(path, sizeof path, "%s/c.png", fs);
  pf_err err = {0};
  ck_assert_int_eq(bars_quiet(path, PF_CHART_PNG, &printed, &err), PF_ERR_IO);
  pf_assert_err(err, "c.png: cannot write the PNG file: No space left on device");
  ck_assert_msg(!printed || !*printed, "printed: %s", printed);
  free(printed);
  ck_assert_int_eq(entries(fs), 0);
  pf_test_small_fs_free(fs);
}
END_TEST

/* Cut short while the disk has room (a file-size limit): said so, with the size. */
START_TEST(test_cut_short_with_room) {
  char *dir = pf_test_tmpdir("chart-fsize");
  for (pf_chart_format f = PF_CHART_PNG; f <= PF_CHART_PDF; f++) {
    const size_t limit = chart_size(f) / 2;
    char path[1200], *printed = NULL, want[160];
    snprintf(path, sizeof path, "%s/c.%s", dir, pf_chart_format_ext(f));
    pf_err err = {0};
    fsize_limit(limit);
    pf_status st = bars_quiet(path, f, &printed, &err);
    fsize_limit(0);
    ck_assert_int_eq(st, PF_ERR_IO);
    if (f == PF_CHART_PNG)
      snprintf(want, sizeof want, "c.png: cannot write the PNG file: File too large");
    else
      snprintf(want, sizeof want, "c.%s: the chart file was cut short (%zu bytes, no closing %s)",
               pf_chart_format_ext(f), limit, f == PF_CHART_SVG ? "</svg>" : "%%EOF");
    pf_assert_err(err, want);
    ck_assert_msg(!printed || !*printed, "printed: %s", printed);
    free(printed);
    ck_assert_msg(entries(dir) == 0, "%s: the failed chart left a file", dir);
  }
  pf_test_rmtree(dir);
  free(dir);
}
END_TEST

static pf_status plot_importance(const char *dir, pf_err *err) {
  pf_value *p = pf_value_map(), *imp = pf_value_map(), *scores = pf_value_map(), *out = NULL;
  for (int l = 0; l < 5; l++) {
    char k[16];
    snprintf(k, sizeof k, "%d", l);
    pf_map_set_num(scores, k, 0.1 + 0.02 * l);
  }
  pf_map_set(imp, "importance", scores);
  pf_map_set_str(p, "kind", "importance");
  pf_map_set(p, "data", imp);
  pf_map_set_str(p, "output_dir", dir);
  pf_ctx ctx = {0};
  pf_status st = pf_op_run("plot", p, &out, &ctx, err);
  pf_value_release(out);
  pf_value_release(p);
  return st;
}

/* A failed plot takes away the output folders it created (and only those). */
START_TEST(test_plot_removes_its_folders) {
  char *dir = pf_test_tmpdir("plot-folders");
  char out[1200], keep[1200];
  pf_err err = {0};
  snprintf(out, sizeof out, "%s/new/er/charts", dir);
  fsize_limit(1000);
  pf_status st = plot_importance(out, &err);
  fsize_limit(0);
  ck_assert_int_eq(st, PF_ERR_IO);
  pf_assert_err(err, "layer_importance.png: cannot write the PNG file: File too large");
  ck_assert_msg(entries(dir) == 0, "%s: the failed plot left %s", dir, out);
  /* a folder that was there stays, with what was in it */
  snprintf(out, sizeof out, "%s/old", dir);
  snprintf(keep, sizeof keep, "%s/old/keep.txt", dir);
  ck_assert_int_eq(pf_mkdirs(out, &err), PF_OK);
  pf_test_write(keep, "keep");
  snprintf(out, sizeof out, "%s/old/charts", dir);
  fsize_limit(1000);
  st = plot_importance(out, &err);
  fsize_limit(0);
  ck_assert_int_eq(st, PF_ERR_IO);
  ck_assert(!pf_path_exists(out));
  ck_assert(pf_path_exists(keep));
  snprintf(out, sizeof out, "%s/old", dir);
  ck_assert_int_eq(entries(out), 1);
  /* with room: the folders are made and kept */
  snprintf(out, sizeof out, "%s/new/charts", dir);
  ck_assert_msg(plot_importance(out, &err) == PF_OK, "%s", err.msg);
  ck_assert_int_eq(entries(out), 1);
  pf_test_rmtree(dir);
  free(dir);
}
END_TEST

static Suite *make_suite(void) {
  Suite *s = suite_create("charts_full");
  TCase *tc = tcase_create("charts_full");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_vector_full_disk);
  tcase_add_test(tc, test_png_full_disk);
  tcase_add_test(tc, test_cut_short_with_room);
  tcase_add_test(tc, test_plot_removes_its_folders);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return pf_test_main(make_suite);
}
