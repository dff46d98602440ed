/* report_bench.c — the report's "Benchmarks" section: per benchmark step, a
 * table of every task's metrics (with the parent's value, the difference ± its
 * stderr and the agreement of the predictions when the step compared), and a
 * grouped bar chart of the accuracies, parent beside model. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "charts.h"
#include "plot.h"
#include "report_int.h"

static const char *const METRICS[] = {"acc", "acc_norm", "perplexity"};
enum { N_METRICS = 3 };

static const char *val_se(rep_strs *st, const pf_value *m, const char *key, const char *se_key) {
  char a[32], b[32];
  rep_map_num(m, key, a, sizeof a);
  if (!pf_map_has(m, se_key)) return rep_str(st, "%s", a);
  rep_map_num(m, se_key, b, sizeof b);
  return rep_str(st, "%s \xC2\xB1 %s", a, b);
}

/* Table rows: one per (task, metric) the task reports. */
static size_t count_rows(const pf_value *tasks) {
  size_t n = 0;
  for (size_t i = 0; i < tasks->u.map.len; i++)
    for (int k = 0; k < N_METRICS; k++)
      n += pf_map_has(tasks->u.map.vals[i], METRICS[k]);
  return n;
}

static pf_status bench_table(rep *r, const pf_value *res, const pf_value *tasks,
                             const pf_value *ptasks, const pf_value *cmp, pf_err *err) {
  const size_t rows = count_rows(tasks), nc = ptasks ? 6 : 4;
  rep_strs st = {0};
  const char **cells = calloc(rows * nc + 1, sizeof *cells);
  if (!cells) return pf_err_set(err, PF_ERR_NOMEM, "report: out of memory");
  size_t n = 0;
  for (size_t i = 0; i < tasks->u.map.len; i++) {
    const char *name = tasks->u.map.keys[i];
    const pf_value *t = tasks->u.map.vals[i], *p = ptasks ? pf_map_get(ptasks, name) : NULL;
    const pf_value *c = cmp ? pf_map_get(cmp, name) : NULL;
    for (int k = 0; k < N_METRICS; k++) {
      if (!pf_map_has(t, METRICS[k])) continue;
      const char *m = METRICS[k], **row = cells + n * nc;
      char se[40], dk[40], dse[40];
      snprintf(se, sizeof se, "%s_stderr", m);
      snprintf(dk, sizeof dk, "%s_diff", m);
      snprintf(dse, sizeof dse, "%s_diff_stderr", m);
      row[0] = rep_str(&st, "%s (n = %lld)", name, (long long)pf_map_int(t, "n", 0));
      row[1] = m;
      if (ptasks) {
        row[2] = val_se(&st, p, m, se);
        row[3] = val_se(&st, t, m, se);
        row[4] = c ? val_se(&st, c, dk, dse) : "\xE2\x80\x94";
        const char *ak = k == 1 ? "agreement_norm" : "agreement";
        row[5] = c && pf_map_has(c, ak) && k < 2
                     ? rep_str(&st, "%.1f %%", 100 * pf_map_num(c, ak, NAN))
                     : "\xE2\x80\x94";
      } else {
        row[2] = val_se(&st, t, m, se);
        row[3] = pf_map_bool(t, "context_cache", 0) ? "context cache" : "batched passes";
      }
      n++;
    }
  }
  static const char *const h6[6] = {"Task", "Metric", "Parent", "Model", "Difference", "Agreement"};
  static const char *const h4[4] = {"Task", "Metric", "Value \xC2\xB1 stderr", "Run"};
  static const pf_pdf_align a6[6] = {PF_PDF_LEFT,  PF_PDF_LEFT,  PF_PDF_RIGHT,
                                     PF_PDF_RIGHT, PF_PDF_RIGHT, PF_PDF_RIGHT};
  static const double w6[6] = {1.4, 0.8, 1.1, 1.1, 1.15, 0.95}, w4[4] = {1.8, 0.9, 1.6, 1.2};
  pf_pdf_table_spec spec = {.ncols = nc,
                            .header = ptasks ? h6 : h4,
                            .align = a6,
                            .widths = ptasks ? w6 : w4,
                            .nrows = n,
                            .cells = cells,
                            .zebra = 1};
  pf_status s = PF_OK;
  for (size_t i = 0; i < n * nc; i++)
    if (!cells[i]) s = pf_err_set(err, PF_ERR_NOMEM, "report: out of memory");
  if (!s && n) s = pf_pdf_table(r->pdf, &spec, err);
  if (!s) {
    char note[400];
    snprintf(note, sizeof note,
             "Scored as lm-evaluation-harness scores a Hugging Face causal LM (zero-shot, "
             "summed continuation log-likelihoods; acc_norm divides by the choice's length in "
             "characters). BOS mode: %s; max_length %lld; %.2f examples/s. Stderr as the "
             "harness: closed form for accuracies, bootstrap for perplexity; the difference's "
             "stderr is that of the per-document paired differences.",
             pf_map_str(res, "bos", "default"), (long long)pf_map_int(res, "max_length", 0),
             pf_map_num(res, "examples_per_second", 0));
    s = pf_pdf_note(r->pdf, note, err);
  }
  free(cells);
  rep_strs_free(&st);
  return s;
}

/* Accuracies (acc, acc_norm: both in [0, 1]) as grouped bars. */
static pf_status bench_chart(rep *r, const pf_value *tasks, const pf_value *ptasks, pf_err *err) {
  const size_t cap = 2 * tasks->u.map.len;
  const char **groups = calloc(cap + 1, sizeof *groups);
  double *vals = calloc(2 * cap + 1, sizeof *vals);
  rep_strs st = {0};
  pf_status s = groups && vals ? PF_OK : pf_err_set(err, PF_ERR_NOMEM, "report: out of memory");
  size_t g = 0;
  for (size_t i = 0; !s && i < tasks->u.map.len; i++)
    for (int k = 0; k < 2; k++) {
      const pf_value *t = tasks->u.map.vals[i];
      const pf_value *p = ptasks ? pf_map_get(ptasks, tasks->u.map.keys[i]) : NULL;
      if (!pf_map_has(t, METRICS[k])) continue;
      groups[g] = rep_str(&st, "%s %s", tasks->u.map.keys[i], METRICS[k]);
      vals[g] = p ? pf_map_num(p, METRICS[k], 0) : 0; /* series 0: parent */
      vals[cap + g] = pf_map_num(t, METRICS[k], 0);   /* series 1: model */
      g++;
    }
  if (!s && g) {
    /* series-major over the g groups drawn */
    memmove(vals + g, vals + cap, g * sizeof *vals);
    static const char *const both[2] = {"Parent", "Model"}, *one[1] = {"Model"};
    pf_grouped_chart c = {.text = {.title = "Zero-shot accuracy", .ylabel = "accuracy"},
                          .n_groups = g,
                          .n_series = ptasks ? 2 : 1,
                          .groups = groups,
                          .series = ptasks ? both : one,
                          .values = ptasks ? vals : vals + g,
                          .value_labels = 1,
                          .width_in = 8.0,
                          .height_in = 4.4};
    char *png = rep_chart_path(r, "benchmarks.png");
    if (!png) s = pf_err_set(err, PF_ERR_NOMEM, "report: out of memory");
    if (!s) s = pf_plot_one(r->ctx, PF_PLOT_GROUPED, png, PF_CHART_PNG, &c, err);
    if (!s)
      s = rep_figure(r, png,
                     ptasks ? "Zero-shot accuracy of the parent and the model, per task and metric."
                            : "Zero-shot accuracy per task and metric.",
                     err);
    free(png);
  }
  free(groups);
  free(vals);
  rep_strs_free(&st);
  return s;
}

pf_status rep_bench(rep *r, pf_err *err) {
  int started = 0;
  pf_status s = PF_OK;
  for (size_t i = 0; !s && i < rep_nsteps(r); i++) {
    const pf_value *step = rep_step(r, i), *res = rep_result(step);
    if (!res || strcmp(rep_op(step), "benchmark") != 0) continue;
    const pf_value *tasks = pf_map_get(res, "tasks"), *parent = pf_map_get(res, "parent");
    if (!tasks || tasks->type != PF_V_MAP || !tasks->u.map.len) continue;
    const pf_value *ptasks = parent ? pf_map_get(parent, "tasks") : NULL;
    if (ptasks && ptasks->type != PF_V_MAP) ptasks = NULL;
    if (!started) {
      s = pf_pdf_heading(r->pdf, 1, "Benchmarks", err);
      started = 1;
    }
    char name[160], h[240];
    rep_step_name(step, name, sizeof name);
    snprintf(h, sizeof h, "Benchmarks \xE2\x80\x94 %s", name);
    if (!s) s = pf_pdf_heading(r->pdf, 2, h, err);
    if (!s) s = bench_table(r, res, tasks, ptasks, pf_map_get(res, "comparison"), err);
    if (!s) s = bench_chart(r, tasks, ptasks, err);
  }
  return s;
}
