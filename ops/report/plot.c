/* plot.c — op "plot": OptiPFair's bias visualizations (reference §10) and
 * pfrun's own charts of step results, drawn with reports/charts.
 *
 * File names are OptiPFair's for its charts (mean_diff_<type>_pair<k>,
 * heatmap_<key>_pair<k>, pca_<key>_pair<k>, k the 0-based pair position) and
 * pfrun's for the others (layer_importance, bias_comparison_<component|overall|overall_pairs>,
 * neuron_differences). The bias charts are in plot_bias.c.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "ophelp.h"
#include "plot.h"
#include "charts_jobs.h"

static const pf_param_spec plot_params[] = {
    {"kind", PF_P_STR, 1, NULL, "mean_diff|heatmap|pca|bias|importance|comparison|neuron_histogram",
     0, 0,
     "what to draw: mean_diff / heatmap / pca (OptiPFair's bias charts from a bias_activations "
     "result), bias (all three, as visualize_bias), importance (layer importance bars), "
     "comparison (before/after bars from a metrics result with before + after), "
     "neuron_histogram (neuron differences from a metrics result with neurons: true)"},
    {"data", PF_P_ANY, 1, NULL, NULL, 0, 0,
     "the step result to draw: bias_activations (mean_diff, heatmap, pca, bias), importance or "
     "calibrate (importance), metrics (comparison, neuron_histogram)"},
    {"output_dir", PF_P_STR, 1, NULL, NULL, 0, 0, "folder for the chart files (created)"},
    {"format", PF_P_STR, 0, "png", "png|svg|pdf", 0, 0, "file format"},
    {"layers", PF_P_ANY, 0, "first_middle_last", NULL, 0, 0,
     "heatmap / pca layers: first_middle_last, all, or a list of positions in the sorted "
     "per-type layer list (OptiPFair's select_layers)"},
    {"layer_type", PF_P_STR, 0, NULL,
     "mlp_output|attention_output|gate_proj|up_proj|down_proj|down_proj_input|input_norm", 0, 0,
     "one activation type instead of visualize_bias's (mean_diff, heatmap: mlp_output, "
     "attention_output, gate_proj, up_proj; pca: mlp_output, attention_output)"},
    {"pair", PF_P_INT, 0, NULL, NULL, 1, 1e9, "draw only this prompt pair (1-based); default all"},
    {"highlight", PF_P_INTLIST, 0, NULL, NULL, 0, 0,
     "importance: layers drawn in the accent colour (e.g. the removed ones)"},
    {"bins", PF_P_INT, 0, "40", NULL, 2, 1000, "neuron_histogram: number of bins"},
    {"jobs", PF_P_INT, 0, NULL, NULL, 1, 64,
     "mean_diff / heatmap / pca / bias: worker processes drawing the charts at once (forked; "
     "same files); default the environment variable PFRUN_PLOT_JOBS, else the OpenMP thread "
     "count; 1 = one after the other in this process"},
};

char *pf_plot_path(const pf_plot_out *o, const char *name) {
  const char *ext = pf_chart_format_ext(o->format);
  size_t n = strlen(o->dir) + strlen(name) + strlen(ext) + 3;
  char *p = malloc(n);
  if (p) snprintf(p, n, "%s/%s.%s", o->dir, name, ext);
  return p;
}

/* Append path to files (the list takes a copy). */
static pf_status add_file(pf_value *files, const char *path, pf_err *err) {
  if (files && pf_list_push(files, pf_value_str(path)) != PF_OK)
    return pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  return PF_OK;
}

static const char *kind_of(const pf_value *v) {
  if (!v || v->type != PF_V_MAP) return v ? pf_vtype_name(v->type) : "nothing";
  const char *op = pf_map_str(v, "op", NULL);
  return op ? op : "a map without the expected keys";
}

/* ------------------------------------------------------------ importance */

typedef struct layer_score {
  int64_t layer;
  double score;
} layer_score;

static int cmp_layer(const void *a, const void *b) {
  const layer_score *x = a, *y = b;
  return (x->layer > y->layer) - (x->layer < y->layer);
}

typedef struct one_chart {
  pf_plot_kind kind;
  const char *path;
  pf_chart_format format;
  const void *chart;
} one_chart;

static pf_status draw_one(size_t i, void *ud, pf_err *err) {
  (void)i;
  const one_chart *c = ud;
  switch (c->kind) {
  case PF_PLOT_BARS:
    return pf_chart_bars(c->path, c->format, c->chart, err);
  case PF_PLOT_GROUPED:
    return pf_chart_grouped_bars(c->path, c->format, c->chart, err);
  case PF_PLOT_HIST:
    return pf_chart_histogram(c->path, c->format, c->chart, err);
  }
  return pf_err_set(err, PF_ERR_INVALID, "%s: unknown chart kind %d", c->path, (int)c->kind);
}

pf_status pf_plot_one(const pf_ctx *ctx, pf_plot_kind kind, const char *path,
                      pf_chart_format format, const void *chart, pf_err *err) {
  one_chart c = {.kind = kind, .path = path, .format = format, .chart = chart};
  return pf_chart_one(ctx, path, draw_one, &c, err);
}

pf_status pf_plot_importance(const pf_value *data, const int64_t *highlight, size_t nh,
                             const pf_plot_out *o, pf_value *files, pf_err *err) {
  const pf_value *imp = data && data->type == PF_V_MAP ? pf_map_get(data, "importance") : NULL;
  /* a map {"<layer>": score} or, as prune_depth takes it, a list (layer = position) */
  const int is_list = imp && imp->type == PF_V_LIST;
  if (imp && !is_list && imp->type != PF_V_MAP)
    return pf_err_set(err, PF_ERR_INVALID,
                      "data.importance: expected a map {\"<layer>\": score} or a list of scores, "
                      "got %s",
                      pf_vtype_name(imp->type));
  if (!imp || (is_list ? imp->u.list.len : imp->u.map.len) == 0)
    return pf_err_set(err, PF_ERR_INVALID,
                      "data: expected an importance or calibrate result with per-layer "
                      "\"importance\" scores, got %s",
                      imp ? "no scores" : kind_of(data));
  size_t n = is_list ? imp->u.list.len : imp->u.map.len;
  layer_score *ls = calloc(n, sizeof *ls);
  double *v = calloc(n, sizeof *v);
  char(*lb)[24] = calloc(n, sizeof *lb);
  const char **labels = calloc(n, sizeof *labels);
  uint8_t *hl = calloc(n, 1);
  char *path = NULL;
  pf_status st =
      ls && v && lb && labels && hl ? PF_OK : pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  for (size_t i = 0; !st && i < n; i++) {
    char *end = "", key[24];
    const pf_value *s = is_list ? imp->u.list.items[i] : imp->u.map.vals[i];
    snprintf(key, sizeof key, "%zu", i);
    const char *k = is_list ? key : imp->u.map.keys[i];
    ls[i].layer = is_list ? (int64_t)i : strtoll(k, &end, 10);
    if (*end || (!is_list && end == k) || !s || (s->type != PF_V_NUM && s->type != PF_V_INT))
      st = pf_err_set(err, PF_ERR_INVALID,
                      "data.importance[\"%s\"]: expected a layer number and its score", k);
    else
      ls[i].score = s->type == PF_V_INT ? (double)s->u.i : s->u.n;
  }
  int any_hl = 0;
  if (!st) {
    qsort(ls, n, sizeof *ls, cmp_layer);
    for (size_t i = 0; i < n; i++) {
      v[i] = isfinite(ls[i].score) ? ls[i].score : 0.0;
      snprintf(lb[i], sizeof lb[i], "%lld", (long long)ls[i].layer);
      labels[i] = lb[i];
      for (size_t j = 0; j < nh; j++)
        if (highlight[j] == ls[i].layer) hl[i] = 1, any_hl = 1;
    }
    if (!(path = pf_plot_path(o, "layer_importance")))
      st = pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  }
  if (!st) {
    char footer[160] = "";
    const pf_value *dv = pf_map_get(data, "data");
    if (dv && dv->type == PF_V_MAP && pf_map_has(dv, "samples"))
      snprintf(footer, sizeof footer, "Calibration data: %lld samples, %lld tokens",
               (long long)pf_map_int(dv, "samples", 0), (long long)pf_map_int(dv, "tokens", 0));
    pf_bar_chart c = {.text = {"Layer Importance", "Layer",
                               "Importance (1 \xE2\x88\x92 cosine similarity)",
                               o->no_footer ? NULL : footer},
                      .n = n,
                      .values = v,
                      .labels = labels,
                      .rotate_labels = n > 40,
                      .highlight = any_hl ? hl : NULL,
                      .base_name = "kept",
                      .highlight_name = "removed",
                      .width_in = o->width_in,
                      .height_in = o->height_in};
    st = pf_plot_one(o->ctx, PF_PLOT_BARS, path, o->format, &c, err);
  }
  if (!st) st = add_file(files, path, err);
  free(path), free(ls), free(v), free(lb), free(labels), free(hl);
  return st;
}

/* ------------------------------------------------------------ comparison */

/* before / after of a {before, after, change_percent} entry; 0 when absent. */
static int before_after(const pf_value *e, double *b, double *a) {
  const pf_value *x = e && e->type == PF_V_MAP ? pf_map_get(e, "before") : NULL;
  const pf_value *y = e && e->type == PF_V_MAP ? pf_map_get(e, "after") : NULL;
  if (!x || !y || (x->type != PF_V_NUM && x->type != PF_V_INT) ||
      (y->type != PF_V_NUM && y->type != PF_V_INT))
    return 0;
  *b = pf_map_num(e, "before", 0);
  *a = pf_map_num(e, "after", 0);
  return isfinite(*b) && isfinite(*a);
}

/* One grouped chart: groups[i] from entries[i]. */
static pf_status grouped_file(const char *name, const char *title, const char *xlabel,
                              const char *const *groups, const pf_value *const *entries, size_t n,
                              const pf_plot_out *o, pf_value *files, pf_err *err) {
  double *v = calloc(2 * (n ? n : 1), sizeof *v);
  const char **g = calloc(n ? n : 1, sizeof *g);
  char *path = pf_plot_path(o, name);
  pf_status st = v && g && path ? PF_OK : pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  size_t k = 0;
  for (size_t i = 0; !st && i < n; i++) {
    double b, a;
    if (!before_after(entries[i], &b, &a)) continue;
    g[k] = groups[i];
    v[k] = b;
    v[n + k] = a;
    k++;
  }
  if (!st && k == 0)
    st = pf_err_set(err, PF_ERR_INVALID, "data.comparison: no before/after values for %s", name);
  if (!st) {
    memmove(v + k, v + n, k * sizeof *v); /* series-major [2, k] */
    static const char *const series[2] = {"before", "after"};
    const char *footer = "Mean absolute activation difference between the two prompts of each "
                         "pair (OptiPFair's bias metric); lower is more similar";
    pf_grouped_chart c = {
        .text = {title, xlabel, "Mean Activation Difference", o->no_footer ? NULL : footer},
        .n_groups = k,
        .n_series = 2,
        .groups = g,
        .series = series,
        .values = v,
        .value_labels = k <= 16,
        .width_in = o->width_in,
        .height_in = o->height_in};
    st = pf_plot_one(o->ctx, PF_PLOT_GROUPED, path, o->format, &c, err);
  }
  if (!st) st = add_file(files, path, err);
  free(v), free(g), free(path);
  return st;
}

/* Per-component chart over the pairs. */
static pf_status component_file(const char *comp, const pf_value *pairs, const pf_plot_out *o,
                                pf_value *files, pf_err *err) {
  size_t n = pairs->u.map.len;
  const pf_value **e = calloc(n ? n : 1, sizeof *e);
  if (!e) return pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  for (size_t i = 0; i < n; i++)
    e[i] = pairs->u.map.vals[i]->type == PF_V_MAP ? pf_map_get(pairs->u.map.vals[i], comp) : NULL;
  char name[160], title[200];
  /* the overall value per pair: not bias_comparison_overall, the components chart */
  snprintf(name, sizeof name, "bias_comparison_%s%s", comp,
           strcmp(comp, "overall") ? "" : "_pairs");
  snprintf(title, sizeof title, "Bias Before vs After Pruning (%s)", comp);
  pf_status st = grouped_file(name, title, "Prompt Pair", (const char *const *)pairs->u.map.keys, e,
                              n, o, files, err);
  free(e);
  return st;
}

pf_status pf_plot_comparison(const pf_value *data, int overall_only, const pf_plot_out *o,
                             pf_value *files, pf_err *err) {
  const pf_value *cmp = data && data->type == PF_V_MAP ? pf_map_get(data, "comparison") : NULL;
  const pf_value *comps = cmp && cmp->type == PF_V_MAP ? pf_map_get(cmp, "components") : NULL;
  if (!comps || comps->type != PF_V_MAP)
    return pf_err_set(err, PF_ERR_INVALID,
                      "data: expected a metrics result with a before/after \"comparison\" (metrics "
                      "with before and after), got %s",
                      kind_of(data));
  size_t n = comps->u.map.len;
  const char **g = calloc(n + 1, sizeof *g);
  const pf_value **e = calloc(n + 1, sizeof *e);
  pf_status st = g && e ? PF_OK : pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  for (size_t i = 0; !st && i < n; i++) {
    g[i] = comps->u.map.keys[i];
    e[i] = comps->u.map.vals[i];
  }
  if (!st) {
    g[n] = "overall";
    e[n] = pf_map_get(cmp, "overall");
    st = grouped_file("bias_comparison_overall", "Bias Before vs After Pruning", "Component", g, e,
                      n + 1, o, files, err);
  }
  const pf_value *pairs = pf_map_get(cmp, "pairs");
  for (size_t i = 0; !st && !overall_only && pairs && pairs->type == PF_V_MAP && i <= n; i++)
    st = component_file(g[i], pairs, o, files, err);
  free(g);
  free(e);
  return st;
}

/* ------------------------------------------------------------ neurons */

pf_status pf_plot_neurons(const pf_value *data, int bins, const pf_plot_out *o, pf_value *files,
                          pf_err *err) {
  const pf_value *nv = data && data->type == PF_V_MAP ? pf_map_get(data, "neurons") : NULL;
  if (!nv || nv->type != PF_V_MAP)
    return pf_err_set(err, PF_ERR_INVALID,
                      "data: expected a metrics result with \"neurons\" (metrics with neurons: "
                      "true), got %s",
                      kind_of(data));
  size_t total = 0, keys = 0;
  for (size_t i = 0; i < nv->u.map.len; i++)
    if (nv->u.map.vals[i]->type == PF_V_LIST && strcmp(nv->u.map.keys[i], "top") != 0) {
      total += nv->u.map.vals[i]->u.list.len;
      keys++;
    }
  if (!total) return pf_err_set(err, PF_ERR_INVALID, "data.neurons: no neuron differences");
  double *v = malloc(total * sizeof *v);
  char *path = pf_plot_path(o, "neuron_differences");
  pf_status st = v && path ? PF_OK : pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  size_t k = 0;
  for (size_t i = 0; !st && i < nv->u.map.len; i++) {
    const pf_value *l = nv->u.map.vals[i];
    if (l->type != PF_V_LIST || strcmp(nv->u.map.keys[i], "top") == 0) continue;
    for (size_t j = 0; j < l->u.list.len; j++) {
      const pf_value *x = l->u.list.items[j];
      v[k++] = x->type == PF_V_NUM ? x->u.n : x->type == PF_V_INT ? (double)x->u.i : NAN;
    }
  }
  if (!st) {
    char footer[400];
    int w = snprintf(footer, sizeof footer, "%zu neurons in %zu activations", total, keys);
    const pf_value *top = pf_map_get(nv, "top");
    const pf_value *t0 =
        top && top->type == PF_V_LIST && top->u.list.len ? top->u.list.items[0] : NULL;
    if (t0 && t0->type == PF_V_MAP && w > 0 && (size_t)w < sizeof footer)
      snprintf(footer + w, sizeof footer - (size_t)w, "; largest: %s neuron %lld (%.4g)",
               pf_map_str(t0, "key", "?"), (long long)pf_map_int(t0, "neuron", -1),
               pf_map_num(t0, "difference", NAN));
    pf_hist_chart c = {
        .text = {"Neuron Activation Differences",
                 "|mean activation (prompt 1) \xE2\x88\x92 mean activation (prompt 2)|"
                 ", mean over pairs",
                 "Neurons", o->no_footer ? NULL : footer},
        .n = total,
        .values = v,
        .bins = bins,
        .width_in = o->width_in,
        .height_in = o->height_in};
    st = pf_plot_one(o->ctx, PF_PLOT_HIST, path, o->format, &c, err);
  }
  if (!st) st = add_file(files, path, err);
  free(v);
  free(path);
  return st;
}

/* ------------------------------------------------------------ the op */

static pf_status plot_run(const pf_op *op, const pf_value *params, pf_value **out,
                          const pf_ctx *ctx, pf_err *err) {
  const char *kind = pf_map_str(params, "kind", "");
  const pf_value *data = pf_map_get(params, "data");
  pf_plot_out o = {.dir = pf_map_str(params, "output_dir", ""),
                   .jobs = (int)pf_map_int(params, "jobs", 0),
                   .ctx = ctx};
  pf_status st = pf_chart_format_parse(pf_map_str(params, "format", "png"), &o.format, err);
  if (st) return pf_err_prefix(err, "format");
  if (!*o.dir) return pf_err_set(err, PF_ERR_INVALID, "output_dir: expected a folder, got \"\"");
  pf_value *files = pf_value_list(), *r = pf_value_map();
  if (!files || !r) st = pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  int dry = ctx && ctx->dry_run;
  char *made = !st && !dry ? pf_missing_dir(o.dir) : NULL; /* the folders pf_mkdirs creates */
  if (!st && !dry && (st = pf_mkdirs(o.dir, err))) pf_err_prefix(err, "output_dir");
  if (!st && !dry) {
    if (strcmp(kind, "importance") == 0) {
      int64_t *hl = NULL;
      size_t nh = 0;
      int have = 0;
      st = pf_param_intlist(params, "highlight", &hl, &nh, &have, err);
      if (!st) st = pf_plot_importance(data, hl, nh, &o, files, err);
      free(hl);
    } else if (strcmp(kind, "comparison") == 0) {
      st = pf_plot_comparison(data, 0, &o, files, err);
    } else if (strcmp(kind, "neuron_histogram") == 0) {
      st = pf_plot_neurons(data, (int)pf_map_int(params, "bins", 40), &o, files, err);
    } else {
      unsigned kinds = strcmp(kind, "mean_diff") == 0 ? PF_PLOT_MEAN_DIFF
                       : strcmp(kind, "heatmap") == 0 ? PF_PLOT_HEATMAP
                       : strcmp(kind, "pca") == 0
                           ? PF_PLOT_PCA
                           : PF_PLOT_MEAN_DIFF | PF_PLOT_HEATMAP | PF_PLOT_PCA;
      st = pf_plot_bias(data, kinds, pf_map_str(params, "layer_type", NULL),
                        pf_map_get(params, "layers"), pf_map_int(params, "pair", 0), &o, files, ctx,
                        err);
    }
  }
  if (!st) {
    st = pf_map_set(r, "files", files);
    files = NULL;
    if (st) pf_err_set(err, st, "out of memory");
  }
  if (st) { /* a failed plot leaves none of its charts, nor the folders it made for them */
    pf_remove_listed(files);
    pf_remove_empty_dirs(o.dir, made);
  }
  free(made);
  pf_value_release(files);
  if (st) {
    pf_value_release(r);
    return st;
  }
  *out = r;
  return PF_OK;
}

const pf_op pf_op_plot = {
    .name = "plot",
    .alias = NULL,
    .summary = "charts: OptiPFair's bias mean-difference bars, heatmaps and PCA; layer importance, "
               "before/after bias, neuron differences (png, svg, pdf)",
    .params = plot_params,
    .n_params = sizeof plot_params / sizeof plot_params[0],
    .returns = "{files: [paths written]}; OptiPFair's names mean_diff_<type>_pair<k>, "
               "heatmap_<key>_pair<k>, pca_<key>_pair<k> (k 0-based), and layer_importance, "
               "bias_comparison_<component|overall>, neuron_differences",
    .run = plot_run,
    .writes = 1,
};
