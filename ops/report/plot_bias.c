/* plot_bias.c — OptiPFair's bias charts (reference §10) from a
 * bias_activations result: mean-difference bars per type, activation-difference
 * heatmaps and PCA of the paired token activations.
 *
 * What pfrun does differently from OptiPFair, on purpose:
 *  - activations are never recomputed: every chart reads the one captured set;
 *  - the mean-difference bars use the same numbers as the metrics op, so pairs
 *    whose prompts tokenize to different lengths get bars from mean-pooled
 *    activations (said in the footer) instead of no figure;
 *  - PCA token labels are aligned with the activations (labels come from the
 *    same ids, BOS included), where OptiPFair shifts them by one;
 *  - a type matches activation names by exact prefix ("<type>_layer_N"), so
 *    down_proj does not pick up down_proj_input keys.
 *
 * The charts of a call are planned first (which exist, their files, the
 * mean-difference metrics, the log lines), then drawn as one batch by worker
 * processes (reports/charts_jobs.h): a job reads the plan and the activations
 * and draws one file with plain code (no OpenMP), the same way in a worker or
 * in this process. The file list is in plan order either way.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bias.h"
#include "bias_metrics.h"
#include "charts_jobs.h"
#include "plot.h"

static const char *const bias_types[] = {"mlp_output", "attention_output", "gate_proj", "up_proj"};

typedef struct named {
  const char *key;
  int64_t layer;
} named;

static int cmp_named(const void *a, const void *b) {
  const named *x = a, *y = b;
  return (x->layer > y->layer) - (x->layer < y->layer);
}

/* get_layer_names: the keys "<type>_layer_N" of acts sorted by N. *out malloc'd. */
static pf_status layer_names(const pf_value *acts, const char *type, named **out, size_t *n,
                             pf_err *err) {
  size_t tl = strlen(type), k = 0;
  *n = 0;
  *out = calloc(acts->u.map.len ? acts->u.map.len : 1, sizeof **out);
  if (!*out) return pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  for (size_t i = 0; i < acts->u.map.len; i++) {
    const char *key = acts->u.map.keys[i];
    if (strncmp(key, type, tl) != 0 || strncmp(key + tl, "_layer_", 7) != 0) continue;
    int64_t layer = pf_bias_key_layer(key);
    if (layer < 0) continue;
    (*out)[k++] = (named){key, layer};
  }
  /* insertion sort keeps equal numbers in map order (Python's stable sort) */
  for (size_t i = 1; i < k; i++)
    for (size_t j = i; j > 0 && cmp_named(&(*out)[j - 1], &(*out)[j]) > 0; j--) {
      named t = (*out)[j];
      (*out)[j] = (*out)[j - 1];
      (*out)[j - 1] = t;
    }
  *n = k;
  return PF_OK;
}

/* An activation as a float32 [s, d] matrix (leading dimensions averaged). */
typedef struct mat {
  float *v;
  int64_t s, d;
} mat;

static pf_status act_matrix(const pf_value *acts, const char *side, const char *key, mat *m,
                            pf_err *err) {
  m->v = NULL;
  const pf_tensor *t = pf_map_tensor(acts, key);
  const pf_value *v = pf_map_get(acts, key);
  if (!t || !t->data || t->ndim < 1)
    return pf_err_set(err, PF_ERR_INVALID,
                      "data: %s[\"%s\"]: expected an activation tensor, got %s", side, key,
                      t   ? "a planned tensor (dry run)"
                      : v ? pf_vtype_name(v->type)
                          : "nothing");
  int64_t numel = pf_tensor_numel(t), d = t->shape[t->ndim - 1];
  int64_t s = t->ndim >= 2 ? t->shape[t->ndim - 2] : 1, lead = d && s ? numel / (s * d) : 0;
  float *all = malloc(sizeof(float) * (size_t)(numel ? numel : 1));
  m->v = calloc((size_t)(s * d > 0 ? s * d : 1), sizeof(float));
  if (!all || !m->v) {
    free(all);
    free(m->v);
    m->v = NULL;
    return pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  }
  pf_tensor_to_f32(t, all);
  for (int64_t b = 0; b < lead; b++) /* mean over every dimension before the last two */
    for (int64_t i = 0; i < s * d; i++)
      m->v[i] += all[b * s * d + i] / (float)lead;
  free(all);
  m->s = s;
  m->d = d;
  return PF_OK;
}

/* Everything one pair's charts need. */
typedef struct pair_ctx {
  const pf_bias_pair *p;
  const pf_value *raw; /* the pair's map (tokens) */
  char footer[1200];
  const pf_plot_out *o;
} pair_ctx;

/* ------------------------------------------------------------ mean_diff */

/* The bars of one type: the layers of act1 with a finite mean difference in
 * lm, in layer order; *k = 0 when there is none. */
typedef struct md_bars {
  double *v;
  char (*lb)[24];
  const char **labels;
  size_t k;
} md_bars;

static void md_bars_free(md_bars *b) {
  free(b->v), free(b->lb), free(b->labels);
  memset(b, 0, sizeof *b);
}

static pf_status md_bars_build(const pf_value *act1, const char *type, const pf_value *lm,
                               md_bars *b, pf_err *err) {
  named *nm = NULL;
  size_t n = 0;
  memset(b, 0, sizeof *b);
  pf_status st = layer_names(act1, type, &nm, &n, err);
  if (!st) {
    b->v = calloc(n ? n : 1, sizeof *b->v);
    b->lb = calloc(n ? n : 1, sizeof *b->lb);
    b->labels = calloc(n ? n : 1, sizeof *b->labels);
    if (!b->v || !b->lb || !b->labels) st = pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  }
  for (size_t i = 0; !st && i < n; i++) {
    const pf_value *e = lm ? pf_map_get(lm, nm[i].key) : NULL;
    if (!e || e->type != PF_V_MAP || !isfinite(pf_map_num(e, "mean_difference", NAN))) continue;
    b->v[b->k] = pf_map_num(e, "mean_difference", 0);
    snprintf(b->lb[b->k], sizeof b->lb[b->k], "%lld", (long long)nm[i].layer);
    b->labels[b->k] = b->lb[b->k];
    b->k++;
  }
  free(nm);
  if (st) md_bars_free(b);
  return st;
}

static pf_status mean_diff(pair_ctx *pc, const char *type, const pf_value *lm, int pooled,
                           const char *path, pf_err *err) {
  md_bars b;
  pf_status st = md_bars_build(pc->p->act1, type, lm, &b, err);
  if (st) return st;
  char title[200], footer[1300];
  snprintf(title, sizeof title, "Mean Activation Difference by Layer (%s)", type);
  snprintf(footer, sizeof footer, "%s%s", pc->footer,
           pooled ? " (token counts differ: activations mean-pooled over tokens)" : "");
  pf_bar_chart c = {.text = {title, "Layer Number", "Mean Absolute Difference", footer},
                    .n = b.k,
                    .values = b.v,
                    .labels = b.labels,
                    .rotate_labels = 1,
                    .width_in = pc->o->width_in,
                    .height_in = pc->o->height_in};
  st = pf_chart_bars(path, pc->o->format, &c, err);
  md_bars_free(&b);
  return st;
}

/* ------------------------------------------------------------ heatmap */

/* |a1 - a2| cropped to [min S, min D] and subsampled with OptiPFair's strides
 * (max(1, S // 20), max(1, D // 20) when S or D exceeds 20). */
static pf_status heat_cells(const mat *a, const mat *b, pf_heatmap_chart *h, double **cells,
                            int64_t **rt, int64_t **ct, pf_err *err) {
  int64_t S = a->s < b->s ? a->s : b->s, D = a->d < b->d ? a->d : b->d;
  int64_t rs = 1, cs = 1;
  if (S > 20 || D > 20) {
    rs = S / 20 > 1 ? S / 20 : 1;
    cs = D / 20 > 1 ? D / 20 : 1;
  }
  h->rows = (S + rs - 1) / rs;
  h->cols = (D + cs - 1) / cs;
  if (h->rows > 200 || h->cols > 200 || S < 1 || D < 1)
    return pf_err_set(err, PF_ERR_INVALID, "heatmap: %lld x %lld cells after subsampling",
                      (long long)h->rows, (long long)h->cols);
  *cells = malloc(sizeof **cells * (size_t)(h->rows * h->cols));
  *rt = malloc(sizeof **rt * (size_t)h->rows);
  *ct = malloc(sizeof **ct * (size_t)h->cols);
  if (!*cells || !*rt || !*ct) return pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  for (int64_t r = 0; r < h->rows; r++) {
    (*rt)[r] = r * rs;
    for (int64_t c = 0; c < h->cols; c++) {
      int64_t i = r * rs, j = c * cs;
      (*cells)[r * h->cols + c] = fabs((double)a->v[i * a->d + j] - (double)b->v[i * b->d + j]);
    }
  }
  for (int64_t c = 0; c < h->cols; c++)
    (*ct)[c] = c * cs;
  return PF_OK;
}

static pf_status heatmap(pair_ctx *pc, const char *key, const char *path, pf_err *err) {
  mat a = {0}, b = {0};
  double *cells = NULL;
  int64_t *rt = NULL, *ct = NULL;
  char title[200];
  pf_status st = act_matrix(pc->p->act1, "act1", key, &a, err);
  if (!st) st = act_matrix(pc->p->act2, "act2", key, &b, err);
  pf_heatmap_chart h = {.text = {title, "Target Dimension", "Source Dimension", pc->footer},
                        .bar_label = "Absolute Activation Difference",
                        .width_in = pc->o->width_in,
                        .height_in = pc->o->height_in};
  if (!st) st = heat_cells(&a, &b, &h, &cells, &rt, &ct, err);
  if (!st) {
    snprintf(title, sizeof title, "Activation Differences - Layer %s", key);
    h.cells = cells, h.row_ticks = rt, h.col_ticks = ct;
    st = pf_chart_heatmap(path, pc->o->format, &h, err);
  }
  free(a.v), free(b.v), free(cells), free(rt), free(ct);
  return st;
}

/* ------------------------------------------------------------ pca */

static const char *token_at(const pf_value *list, size_t i) {
  if (!list || list->type != PF_V_LIST || i >= list->u.list.len) return NULL;
  const pf_value *t = list->u.list.items[i];
  return t->type == PF_V_STR ? t->u.s : NULL;
}

/* Token text for display: surrounding whitespace trimmed, "␣" for blank. */
static void show_token(const char *t, char *out, size_t n) {
  while (*t == ' ' || *t == '\t' || *t == '\n')
    t++;
  size_t len = strlen(t);
  while (len && (t[len - 1] == ' ' || t[len - 1] == '\n' || t[len - 1] == '\t'))
    len--;
  if (!len)
    snprintf(out, n, "\xE2\x90\xA3");
  else
    snprintf(out, n, "%.*s", (int)len, t);
}

static pf_status pca_labels(pair_ctx *pc, size_t n, char (*buf)[96], const char **labels,
                            uint8_t *differs) {
  const pf_value *t1 = pf_map_get(pc->raw, "tokens1"), *t2 = pf_map_get(pc->raw, "tokens2");
  for (size_t i = 0; i < n; i++) {
    const char *a = token_at(t1, i), *b = token_at(t2, i);
    char sa[40], sb[40];
    show_token(a ? a : "", sa, sizeof sa);
    show_token(b ? b : "", sb, sizeof sb);
    differs[i] = a && b && strcmp(a, b) != 0;
    if (differs[i])
      snprintf(buf[i], sizeof buf[i], "%s / %s", sb, sa);
    else
      snprintf(buf[i], sizeof buf[i], "%s", sa);
    labels[i] = buf[i];
  }
  return PF_OK;
}

static pf_status pca(pair_ctx *pc, const char *key, const char *path, pf_err *err) {
  mat a = {0}, b = {0};
  float *x = NULL;
  double *sc = NULL, ratio[2] = {0, 0};
  char(*buf)[96] = NULL;
  const char **labels = NULL;
  uint8_t *differs = NULL;
  pf_status st = act_matrix(pc->p->act1, "act1", key, &a, err);
  if (!st) st = act_matrix(pc->p->act2, "act2", key, &b, err);
  if (!st && a.d != b.d)
    st = pf_err_set(err, PF_ERR_INVALID, "data: %s: prompt 1 has width %lld, prompt 2 %lld", key,
                    (long long)a.d, (long long)b.d);
  int64_t rows = a.s + b.s;
  if (!st && rows < 2) st = pf_err_set(err, PF_ERR_INVALID, "data: %s: fewer than 2 tokens", key);
  if (!st) {
    x = malloc(sizeof(float) * (size_t)(rows * a.d));
    sc = malloc(sizeof(double) * (size_t)(rows * 2));
    if (!x || !sc) st = pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  }
  if (!st) {
    memcpy(x, a.v, sizeof(float) * (size_t)(a.s * a.d));
    memcpy(x + a.s * a.d, b.v, sizeof(float) * (size_t)(b.s * b.d));
    st = pf_pca2(x, rows, a.d, sc, ratio, err);
  }
  size_t n = (size_t)(a.s < b.s ? a.s : b.s);
  const pf_value *t1 = pf_map_get(pc->raw, "tokens1"), *t2 = pf_map_get(pc->raw, "tokens2");
  int have_tokens = t1 && t2 && t1->type == PF_V_LIST && t2->type == PF_V_LIST;
  if (have_tokens)
    n = n < t1->u.list.len ? n : t1->u.list.len, n = n < t2->u.list.len ? n : t2->u.list.len;
  if (!st && n == 0) st = pf_err_set(err, PF_ERR_INVALID, "data: %s: no token to draw", key);
  if (!st && have_tokens) {
    buf = calloc(n, sizeof *buf), labels = calloc(n, sizeof *labels), differs = calloc(n, 1);
    if (!buf || !labels || !differs)
      st = pf_err_set(err, PF_ERR_NOMEM, "out of memory");
    else
      pca_labels(pc, n, buf, labels, differs);
  }
  if (!st) {
    char title[200], xl[64], yl[64];
    snprintf(title, sizeof title, "PCA Analysis of Activations - Layer %s", key);
    snprintf(xl, sizeof xl, "PC1 (%.2f%% explained var.)", ratio[0] * 100);
    snprintf(yl, sizeof yl, "PC2 (%.2f%% explained var.)", ratio[1] * 100);
    pf_pca_chart c = {.text = {title, xl, yl, pc->footer},
                      .n = n,
                      .p1 = sc,
                      .p2 = sc + a.s * 2,
                      .labels = labels,
                      .differs = differs,
                      .width_in = pc->o->width_in,
                      .height_in = pc->o->height_in};
    st = pf_chart_pca(path, pc->o->format, &c, err);
  }
  free(a.v), free(b.v), free(x), free(sc), free(buf), free(labels), free(differs);
  return st;
}

/* ------------------------------------------------------------ the plan */

/* One chart to draw. */
typedef struct bias_job {
  unsigned kind;    /* PF_PLOT_MEAN_DIFF, PF_PLOT_HEATMAP or PF_PLOT_PCA */
  size_t pair;      /* position in the pair list */
  const char *what; /* mean_diff: the type; heatmap, pca: the activation key (owned by data) */
  char *path;       /* the chart file (owned) */
} bias_job;

/* Every chart of a call, planned before any is drawn, so that the drawing can
 * be spread over worker processes (charts_jobs.h): the plan does everything
 * that logs or decides which charts exist; a job only reads the plan and the
 * data, and draws one file. */
typedef struct bias_plan {
  const pf_plot_out *o;
  const pf_ctx *ctx;
  const pf_bias_pair *pairs;
  const pf_value *list; /* data.pairs */
  pf_value **metrics;   /* [pairs] mean_diff: pf_bias_pair_metrics of the pair, or NULL */
  int *pooled;          /* [pairs] the metrics mean-pooled the tokens */
  bias_job *jobs;       /* [n] in drawing (and file list) order */
  size_t n, cap;
} bias_plan;

static void plan_free(bias_plan *pl, size_t n_pairs) {
  for (size_t i = 0; pl->metrics && i < n_pairs; i++)
    pf_value_release(pl->metrics[i]);
  for (size_t i = 0; i < pl->n; i++)
    free(pl->jobs[i].path);
  free(pl->metrics), free(pl->pooled), free(pl->jobs);
}

static pf_status add_job(bias_plan *pl, unsigned kind, size_t pair, const char *what, pf_err *err) {
  if (pl->n == pl->cap) {
    size_t cap = pl->cap ? 2 * pl->cap : 32;
    bias_job *j = realloc(pl->jobs, cap * sizeof *j);
    if (!j) return pf_err_set(err, PF_ERR_NOMEM, "out of memory");
    pl->jobs = j, pl->cap = cap;
  }
  const pf_bias_pair *p = &pl->pairs[pair];
  int64_t k = p->index >= 1 ? p->index - 1 : (int64_t)pair; /* 0-based, as OptiPFair names */
  const char *prefix = kind == PF_PLOT_MEAN_DIFF ? "mean_diff"
                       : kind == PF_PLOT_HEATMAP ? "heatmap"
                                                 : "pca";
  char name[200];
  snprintf(name, sizeof name, "%s_%s_pair%lld", prefix, what, (long long)k);
  char *path = pf_plot_path(pl->o, name);
  if (!path) return pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  pl->jobs[pl->n++] = (bias_job){.kind = kind, .pair = pair, .what = what, .path = path};
  return PF_OK;
}

/* Heatmaps or PCA for the selected layers of each type. */
static pf_status plan_layers(bias_plan *pl, size_t pair, const char *const *types, size_t nt,
                             const pf_layer_sel *sel, unsigned kind, pf_err *err) {
  const pf_bias_pair *p = &pl->pairs[pair];
  pf_status st = PF_OK;
  for (size_t t = 0; !st && t < nt; t++) {
    named *nm = NULL;
    size_t n = 0;
    st = layer_names(p->act1, types[t], &nm, &n, err);
    size_t cap = n > sel->n ? n : sel->n;
    int64_t *pos = st ? NULL : malloc(sizeof *pos * (cap > 3 ? cap : 3));
    if (!st && !pos) st = pf_err_set(err, PF_ERR_NOMEM, "out of memory");
    size_t k = st ? 0 : pf_bias_select_layers((int64_t)n, sel, pos);
    if (!st && pair == 0 && t == 0 && sel->kind == PF_SEL_LIST && k < sel->n)
      pf_ctx_log(pl->ctx,
                 "plot: layers: %zu of the %zu positions given are outside 0-%lld (%zu layers "
                 "of %s captured) and are skipped, as OptiPFair's select_layers does",
                 sel->n - k, sel->n, (long long)n - 1, n, types[t]);
    for (size_t i = 0; !st && i < k; i++) {
      const char *key = nm[pos[i]].key;
      if (!pf_map_get(p->act2, key)) {
        pf_ctx_log(pl->ctx, "plot: pair %lld: %s missing for prompt 2", (long long)p->index, key);
        continue;
      }
      st = add_job(pl, kind, pair, key, err);
    }
    free(pos);
    free(nm);
  }
  return st;
}

static pf_status plan_pair(bias_plan *pl, size_t pair, unsigned kinds, const char *layer_type,
                           const pf_layer_sel *sel, pf_err *err) {
  const pf_bias_pair *p = &pl->pairs[pair];
  const char *const *types = layer_type ? &layer_type : bias_types;
  size_t nt = layer_type ? 1 : 4, np = layer_type ? 1 : 2;
  pf_status st = PF_OK;
  if (kinds & PF_PLOT_MEAN_DIFF) {
    st = pf_bias_pair_metrics(p->act1, p->act2, &pl->metrics[pair], &pl->pooled[pair], err);
    const pf_value *lm = st ? NULL : pf_map_get(pl->metrics[pair], "layer_metrics");
    for (size_t t = 0; !st && t < nt; t++) {
      md_bars b;
      st = md_bars_build(p->act1, types[t], lm, &b, err);
      if (!st && b.k == 0)
        pf_ctx_log(pl->ctx, "plot: pair %lld: no layers of type %s found", (long long)p->index,
                   types[t]);
      else if (!st)
        st = add_job(pl, PF_PLOT_MEAN_DIFF, pair, types[t], err);
      md_bars_free(&b);
    }
  }
  if (!st && (kinds & PF_PLOT_HEATMAP))
    st = plan_layers(pl, pair, types, nt, sel, PF_PLOT_HEATMAP, err);
  if (!st && (kinds & PF_PLOT_PCA)) st = plan_layers(pl, pair, types, np, sel, PF_PLOT_PCA, err);
  return st;
}

/* ------------------------------------------------------------ drawing */

/* Job i of the plan; may run in a worker process (charts_jobs.h): reads the
 * plan and the data, writes the chart file, nothing else. */
static pf_status draw_job(size_t i, void *user_data, pf_err *err) {
  const bias_plan *pl = user_data;
  const bias_job *j = &pl->jobs[i];
  const pf_bias_pair *p = &pl->pairs[j->pair];
  pair_ctx pc = {.p = p, .raw = pl->list->u.list.items[j->pair], .o = pl->o};
  snprintf(pc.footer, sizeof pc.footer, "Prompt Pair: \"%s\" vs \"%s\"", p->prompt1, p->prompt2);
  pf_status st;
  if (j->kind == PF_PLOT_MEAN_DIFF)
    st = mean_diff(&pc, j->what, pf_map_get(pl->metrics[j->pair], "layer_metrics"),
                   pl->pooled[j->pair], j->path, err);
  else if (j->kind == PF_PLOT_HEATMAP)
    st = heatmap(&pc, j->what, j->path, err);
  else
    st = pca(&pc, j->what, j->path, err);
  if (st) pf_err_prefix(err, "pair %lld", (long long)p->index);
  return st;
}

static const char *job_path(size_t i, void *user_data) {
  return ((const bias_plan *)user_data)->jobs[i].path;
}

pf_status pf_plot_bias(const pf_value *data, unsigned kinds, const char *layer_type,
                       const pf_value *layers, int64_t pair, const pf_plot_out *o, pf_value *files,
                       const pf_ctx *ctx, pf_err *err) {
  pf_bias_pair *pairs = NULL;
  size_t n = 0;
  pf_layer_sel sel;
  int64_t *idx = NULL;
  pf_status st = pf_bias_result_pairs(data, "data", &pairs, &n, err);
  if (!st) st = pf_layer_sel_from_value(layers, &sel, &idx, err);
  if (!st && n == 0)
    st = pf_err_set(err, PF_ERR_INVALID, "data: the bias_activations result has no pairs");
  if (!st && pair > (int64_t)n)
    st = pf_err_set(err, PF_ERR_INVALID,
                    "pair: expected 1..%zu (the result has %zu pairs), got %lld", n, n,
                    (long long)pair);
  bias_plan pl = {
      .o = o, .ctx = ctx, .pairs = pairs, .list = st ? NULL : pf_map_get(data, "pairs")};
  if (!st) {
    pl.metrics = calloc(n, sizeof *pl.metrics);
    pl.pooled = calloc(n, sizeof *pl.pooled);
    if (!pl.metrics || !pl.pooled) st = pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  }
  for (size_t i = 0; !st && i < n; i++) {
    if (pair > 0 && (int64_t)i + 1 != pair) continue;
    if ((st = plan_pair(&pl, i, kinds, layer_type, &sel, err)))
      pf_err_prefix(err, "pair %lld", (long long)pairs[i].index);
  }
  /* a layer_type asked for by name that no pair captured: an error, not 0 charts (a
   * pair of prompts of different lengths that lacks it is OptiPFair's warning) */
  for (size_t i = 0; !st && layer_type && pl.n == 0 && i < n; i++) {
    named *nm = NULL;
    size_t k = 0;
    st = layer_names(pairs[i].act1, layer_type, &nm, &k, err);
    free(nm);
    if (!st && k) break;
    if (!st && i + 1 == n)
      st = pf_err_set(err, PF_ERR_INVALID,
                      "layer_type %s: the activations hold no layer of this type (capture it "
                      "with bias_activations' target_layers)",
                      layer_type);
  }
  unsigned char *drawn = st ? NULL : calloc(pl.n ? pl.n : 1, 1);
  if (!st && !drawn) st = pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  if (!st) {
    pf_chart_jobs cj = {.n = pl.n,
                        .draw = draw_job,
                        .path = job_path,
                        .user_data = &pl,
                        .workers = o->jobs,
                        .ctx = ctx,
                        .what = "plot",
                        .drawn = drawn};
    st = pf_chart_jobs_run(&cj, NULL, err);
    for (size_t i = 0; st && i < pl.n; i++) /* a failed batch leaves none of its charts */
      if (drawn[i]) unlink(pl.jobs[i].path);
  }
  free(drawn);
  for (size_t i = 0; !st && files && i < pl.n; i++)
    if (pf_list_push(files, pf_value_str(pl.jobs[i].path)) != PF_OK)
      st = pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  plan_free(&pl, n);
  free(pairs);
  free(idx);
  return st;
}
