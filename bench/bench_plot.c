/* bench_plot.c — the chart step of a bias run: op plot, kind bias (OptiPFair's
 * visualize_bias: mean-difference bars, heatmaps and PCA per prompt pair), drawn
 * in the pfrun process (jobs 1) and by forked worker processes (jobs N).
 *
 * Build (CMake, not part of `all`):
 *   cmake --build build --target bench_plot && ./build/bench_plot
 * Usage:
 *   bench_plot [MODEL [RUNS [JOBS [FORMAT]]]]
 *   defaults: synthetic:llama-1b (Llama-3.2-1B shape, 16 layers; written once
 *   into the pfrun cache), 3 timed runs of each, JOBS 0 = the default worker
 *   count (PFRUN_PLOT_JOBS, else the OpenMP thread count), png.
 *
 * bias_activations runs once on OptiPFair's 7 default prompt pairs (all layers,
 * as `pfrun bias` does); then the two plot variants alternate, each into its
 * own folder, so both see the same machine state. Per pair: 4 mean-difference
 * charts, 4 types x 3 layers of heatmaps, 2 x 3 PCA plots: 154 charts. Prints
 * the load average before and after (other work on the same cores slows the
 * workers first), the best and median wall time of each, and checks that the
 * two folders hold the same files with the same bytes. CPU time is that of
 * the process plus its waited-for children (getrusage), i.e. the workers': on
 * a loaded machine it says what the drawing costs when the wall time cannot.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "charts_jobs.h"
#include "fsutil.h"
#include "op.h"

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* CPU seconds of this process plus its waited-for children (the workers). */
static double cpu_all(void) {
  struct rusage s, c;
  getrusage(RUSAGE_SELF, &s);
  getrusage(RUSAGE_CHILDREN, &c);
  return (double)(s.ru_utime.tv_sec + s.ru_stime.tv_sec + c.ru_utime.tv_sec + c.ru_stime.tv_sec) +
         1e-6 * (double)(s.ru_utime.tv_usec + s.ru_stime.tv_usec + c.ru_utime.tv_usec +
                         c.ru_stime.tv_usec);
}

static double g_cpu; /* CPU seconds (process + workers) of the last plot */

static void die(const char *what, const pf_err *err) {
  fprintf(stderr, "bench_plot: %s: %s\n", what, err->msg);
  exit(1);
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static pf_value *run_op(const char *op, pf_value *params, double *secs) {
  pf_value *out = NULL;
  pf_err err = {0};
  double t0 = now();
  if (pf_op_run(op, params, &out, NULL, &err)) die(op, &err);
  *secs = now() - t0;
  return out;
}

static void loadavg(const char *when) {
  double l[3];
  if (getloadavg(l, 3) == 3) printf("load average %s: %.2f %.2f %.2f\n", when, l[0], l[1], l[2]);
}

/* One plot into dir (emptied first); returns the wall time, *n the charts. */
static double plot(const pf_value *acts, const char *dir, int jobs, const char *fmt, size_t *n) {
  pf_remove_tree(dir, NULL);
  pf_value *p = pf_value_map();
  pf_map_set_str(p, "kind", "bias");
  pf_map_set(p, "data", pf_value_copy(acts));
  pf_map_set_str(p, "output_dir", dir);
  pf_map_set_str(p, "format", fmt);
  if (jobs > 0) pf_map_set_int(p, "jobs", jobs);
  double secs, c0 = cpu_all();
  pf_value *r = run_op("plot", p, &secs);
  g_cpu = cpu_all() - c0;
  *n = pf_map_get(r, "files")->u.list.len;
  pf_value_release(r);
  pf_value_release(p);
  return secs;
}

/* 1 when every file of a is in b with the same bytes. */
static int same_files(const char *a, const char *b, size_t *count) {
  DIR *d = opendir(a);
  struct dirent *e;
  int same = d != NULL;
  *count = 0;
  while (same && (e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    char pa[4096], pb[4096];
    snprintf(pa, sizeof pa, "%s/%s", a, e->d_name);
    snprintf(pb, sizeof pb, "%s/%s", b, e->d_name);
    char *ta = NULL, *tb = NULL;
    size_t na = 0, nb = 0;
    same = pf_read_file(pa, (size_t)1 << 30, &ta, &na, NULL) == PF_OK &&
           pf_read_file(pb, (size_t)1 << 30, &tb, &nb, NULL) == PF_OK && na == nb &&
           memcmp(ta, tb, na) == 0;
    free(ta);
    free(tb);
    (*count)++;
  }
  if (d) closedir(d);
  return same;
}

static void report(const char *what, double *t, double *cpu, int n, size_t charts) {
  qsort(t, (size_t)n, sizeof *t, cmp_d);
  qsort(cpu, (size_t)n, sizeof *cpu, cmp_d);
  printf("%-18s wall best %.2f s  median %.2f s;  CPU (with workers) best %.2f s, %.1f ms a "
         "chart  (%zu charts, %d runs)\n",
         what, t[0], t[n / 2], cpu[0], 1000.0 * cpu[0] / (double)charts, charts, n);
}

int main(int argc, char **argv) {
  const char *spec = argc > 1 ? argv[1] : "synthetic:llama-1b";
  int runs = argc > 2 ? atoi(argv[2]) : 3;
  int jobs = argc > 3 ? atoi(argv[3]) : 0;
  const char *fmt = argc > 4 ? argv[4] : "png";
  if (runs < 1 || runs > 50) runs = 3;
  int workers = 0;
  pf_err err = {0};
  if (pf_chart_jobs_workers(jobs, &workers, &err)) die("workers", &err);
  loadavg("at start");
  pf_value *lp = pf_value_map();
  pf_map_set_str(lp, "path", spec);
  double secs;
  pf_value *loaded = run_op("load", lp, &secs);
  pf_value_release(lp);
  pf_model *m = pf_map_model(loaded, "model");
  printf("model %s: %lld layers (load %.2f s)\n", m->name, (long long)m->n_layers, secs);
  pf_value *ap = pf_value_map();
  pf_map_set(ap, "model", pf_value_model(m));
  pf_map_set_str(ap, "prompt_pairs", "default");
  pf_value *acts = run_op("bias_activations", ap, &secs);
  pf_value_release(ap);
  printf("bias_activations: %zu pairs, %.2f s\n", pf_map_get(acts, "pairs")->u.list.len, secs);
  char root[] = "/tmp/bench_plot.XXXXXX", serial[64], par[64];
  if (!mkdtemp(root)) return 1;
  snprintf(serial, sizeof serial, "%s/serial", root);
  snprintf(par, sizeof par, "%s/parallel", root);
  double *ts = calloc((size_t)runs, sizeof *ts), *tp = calloc((size_t)runs, sizeof *tp);
  double *cs = calloc((size_t)runs, sizeof *cs), *cp = calloc((size_t)runs, sizeof *cp);
  size_t ns = 0, np = 0;
  (void)plot(acts, par, workers, fmt, &np); /* warm-up: fonts, page cache */
  for (int r = 0; r < runs; r++) {
    for (int k = 0; k < 2; k++)
      if ((k + r) % 2 == 0)
        ts[r] = plot(acts, serial, 1, fmt, &ns), cs[r] = g_cpu;
      else
        tp[r] = plot(acts, par, workers, fmt, &np), cp[r] = g_cpu;
  }
  char label[64];
  report("plot, 1 process", ts, cs, runs, ns);
  snprintf(label, sizeof label, "plot, %d worker%s", workers, workers == 1 ? "" : "s");
  report(label, tp, cp, runs, np);
  printf("speed-up (best / best): %.2fx\n", ts[0] / tp[0]);
  size_t nf = 0;
  int same = same_files(serial, par, &nf);
  printf("%s files: %s\n", fmt, same && nf == ns ? "the same bytes" : "DIFFERENT");
  loadavg("at end");
  pf_remove_tree(root, NULL);
  free(ts), free(tp), free(cs), free(cp);
  pf_value_release(acts);
  pf_value_release(loaded);
  return same ? 0 : 1;
}
