/* charts_bars.c — bar charts, grouped bars, histograms and line charts
 * (see charts.h). Arguments are validated before PLplot is touched. */
#include <math.h>
#include <plplot.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "charts_int.h"

#define DEF_W 10.0
#define DEF_H 6.0

static double or_default(double v, double d) {
  return v > 0 ? v : d;
}

static pf_status check_finite(const char *what, const double *v, size_t n, pf_err *err) {
  if (!v) return pf_err_set(err, PF_ERR_INVALID, "%s: no values given", what);
  for (size_t i = 0; i < n; i++)
    if (!isfinite(v[i]))
      return pf_err_set(err, PF_ERR_INVALID, "%s: value %zu: expected a finite number, got %g",
                        what, i, v[i]);
  return PF_OK;
}

/* y range [lo, hi] covering 0 and the values, with 5% head room (more with a legend). */
static void value_range(const double *v, size_t n, double head, double *lo, double *hi) {
  double a = 0, b = 0;
  for (size_t i = 0; i < n; i++) {
    if (v[i] < a) a = v[i];
    if (v[i] > b) b = v[i];
  }
  if (a == b) b = 1.0;
  double span = b - a;
  if (b > 0) b += span * head;
  if (a < 0) a -= span * 0.05;
  *lo = a;
  *hi = b;
}

/* Margins for a chart with categorical x labels of height xcat_h. */
static void margins(const chart_ctx *c, cc_axes *a, const pf_chart_text *t, double xcat_h) {
  a->left = 12.0 + (t->ylabel && *t->ylabel ? CC_PT_LABEL + 12.0 : 0) +
            cc_ytick_width(a, CC_PT_TICK) + 10.0;
  a->right = 20.0;
  a->top = t->title && *t->title ? CC_PT_TITLE + 24.0 : 16.0;
  a->bottom = xcat_h + (t->xlabel && *t->xlabel ? CC_PT_LABEL + 14.0 : 4.0) +
              cc_footer_pt(c, t->footer) + 8.0;
}

/* ------------------------------------------------------------ bars */

static void draw_bars(const chart_ctx *c, const void *data) {
  const pf_bar_chart *b = data;
  int legend = b->highlight && (b->base_name || b->highlight_name);
  cc_axes a = {.grid = 1, .ynum = 1};
  /* a two-entry legend sits top right: room above the tallest bar for it */
  value_range(b->values, b->n, legend ? 0.32 : 0.05, &a.ymin, &a.ymax);
  cc_ticks(a.ymin, a.ymax, 6, &a.ystep, &a.ydec);
  a.xmin = -0.6;
  a.xmax = (double)b->n - 0.4;
  double xh = cc_xcat_height(c, b->n, b->labels, b->rotate_labels);
  margins(c, &a, &b->text, xh);
  cc_axes_begin(c, &a);
  cc_width(c, 0.5);
  for (size_t i = 0; i < b->n; i++) {
    int col = b->highlight && b->highlight[i] ? CC_SERIES + 3 : CC_SERIES;
    cc_rect((double)i - 0.4, 0.0, (double)i + 0.4, b->values[i], col, -1);
  }
  cc_axes_end(c, &a);
  cc_xcat_labels(c, &a, b->n, b->labels, b->rotate_labels);
  cc_decorate(c, &a, &b->text, xh, cc_ytick_width(&a, CC_PT_TICK) + 6.0);
  if (legend) {
    const char *names[2] = {b->base_name ? b->base_name : "",
                            b->highlight_name ? b->highlight_name : ""};
    int cols[2] = {CC_SERIES, CC_SERIES + 3};
    cc_legend(c, 2, names, cols, 0);
  }
}

pf_status pf_chart_bars(const char *path, pf_chart_format format, const pf_bar_chart *c,
                        pf_err *err) {
  if (!c || c->n == 0)
    return pf_err_set(err, PF_ERR_INVALID, "bar chart: expected at least one bar");
  pf_status st = check_finite("bar chart", c->values, c->n, err);
  for (size_t i = 0; !st && c->labels && i < c->n; i++)
    if (!c->labels[i]) st = pf_err_set(err, PF_ERR_INVALID, "bar chart: label %zu is missing", i);
  if (st) return st;
  return chart_run(path, format, or_default(c->width_in, DEF_W), or_default(c->height_in, DEF_H),
                   draw_bars, c, err);
}

/* ------------------------------------------------------------ grouped bars */

static void value_text(const chart_ctx *c, const cc_axes *a, double x, double v) {
  char buf[32];
  double px, py;
  snprintf(buf, sizeof buf, fabs(v) >= 1e-3 && fabs(v) < 1e5 ? "%.3g" : "%.2e", v);
  if (v == 0) snprintf(buf, sizeof buf, "0");
  cc_to_page(a, x, v, &px, &py);
  double off = (v >= 0 ? 4.0 + 4.0 : -(4.0 + 4.0)) / c->h_pt;
  cc_page_text(c, px, py + off, 0, 0.5, 8.0, 0, CC_DIM, buf);
}

static void draw_grouped(const chart_ctx *c, const void *data) {
  const pf_grouped_chart *g = data;
  cc_axes a = {.grid = 1, .ynum = 1};
  value_range(g->values, g->n_groups * g->n_series, 0.22, &a.ymin, &a.ymax);
  cc_ticks(a.ymin, a.ymax, 6, &a.ystep, &a.ydec);
  a.xmin = -0.6;
  a.xmax = (double)g->n_groups - 0.4;
  size_t ng = g->n_groups, ns = g->n_series;
  int rotate = 0;
  for (size_t i = 0; i < ng; i++)
    if (cc_text_pt(g->groups[i], CC_PT_TICK) > 0.8 * 0.8 * c->w_pt / (double)ng) rotate = 1;
  double xh = cc_xcat_height(c, ng, g->groups, rotate);
  margins(c, &a, &g->text, xh);
  cc_axes_begin(c, &a);
  double w = 0.8 / (double)ns;
  for (size_t s = 0; s < ns; s++)
    for (size_t i = 0; i < ng; i++) {
      double x0 = (double)i - 0.4 + w * (double)s;
      cc_rect(x0, 0.0, x0 + w * 0.95, g->values[s * ng + i], CC_SERIES + (int)s, -1);
    }
  int fit = g->value_labels; /* value labels only when each fits over its bar */
  for (size_t s = 0; fit && s < ns; s++)
    for (size_t i = 0; fit && i < ng; i++) {
      char buf[32];
      double v = g->values[s * ng + i];
      snprintf(buf, sizeof buf, fabs(v) >= 1e-3 && fabs(v) < 1e5 ? "%.3g" : "%.2e", v);
      if (cc_text_pt(buf, 8.0) > w * cc_pt_per_x(c, &a) * 1.05) fit = 0;
    }
  if (fit)
    for (size_t s = 0; s < ns; s++)
      for (size_t i = 0; i < ng; i++)
        value_text(c, &a, (double)i - 0.4 + w * ((double)s + 0.475), g->values[s * ng + i]);
  cc_axes_end(c, &a);
  cc_xcat_labels(c, &a, ng, g->groups, rotate);
  cc_decorate(c, &a, &g->text, xh, cc_ytick_width(&a, CC_PT_TICK) + 6.0);
  int cols[CC_MAX_SERIES];
  for (size_t s = 0; s < ns; s++)
    cols[s] = CC_SERIES + (int)s;
  cc_legend(c, ns, g->series, cols, 0);
}

pf_status pf_chart_grouped_bars(const char *path, pf_chart_format format, const pf_grouped_chart *c,
                                pf_err *err) {
  if (!c || c->n_groups == 0 || c->n_series == 0 || c->n_series > CC_MAX_SERIES)
    return pf_err_set(err, PF_ERR_INVALID,
                      "grouped bar chart: expected >= 1 group and 1..%d series, got %zu and %zu",
                      CC_MAX_SERIES, c ? c->n_groups : 0, c ? c->n_series : 0);
  if (!c->groups || !c->series)
    return pf_err_set(err, PF_ERR_INVALID,
                      "grouped bar chart: group and series names are required");
  for (size_t i = 0; i < c->n_groups; i++)
    if (!c->groups[i])
      return pf_err_set(err, PF_ERR_INVALID, "grouped bar chart: group %zu has no name", i);
  pf_status st = check_finite("grouped bar chart", c->values, c->n_groups * c->n_series, err);
  if (st) return st;
  return chart_run(path, format, or_default(c->width_in, DEF_W), or_default(c->height_in, DEF_H),
                   draw_grouped, c, err);
}

/* ------------------------------------------------------------ histogram */

typedef struct hist_data {
  const pf_hist_chart *h;
  double lo, hi;
  int bins;
  double *counts;
} hist_data;

static void draw_hist(const chart_ctx *c, const void *data) {
  const hist_data *d = data;
  const pf_hist_chart *h = d->h;
  double maxc = 0;
  for (int i = 0; i < d->bins; i++)
    if (d->counts[i] > maxc) maxc = d->counts[i];
  cc_axes a = {.grid = 1, .ynum = 1, .xnum = 1, .ylog = h->log_y};
  double bw = (d->hi - d->lo) / d->bins;
  a.xmin = d->lo - bw * 0.5;
  a.xmax = d->hi + bw * 0.5;
  cc_ticks(a.xmin, a.xmax, 7, &a.xstep, &a.xdec);
  if (h->log_y) {
    a.ymin = 0;
    a.ymax = maxc > 1 ? log10(maxc) * 1.08 : 1.0;
    a.ystep = 1;
    a.ydec = 0;
  } else {
    a.ymin = 0;
    a.ymax = maxc > 0 ? maxc * 1.08 : 1.0;
    cc_ticks(a.ymin, a.ymax, 6, &a.ystep, &a.ydec);
    if (a.ystep < 1) {
      a.ystep = 1;
      a.ydec = 0;
    }
  }
  margins(c, &a, &h->text, CC_PT_TICK + 10.0);
  cc_axes_begin(c, &a);
  for (int i = 0; i < d->bins; i++) {
    double v = d->counts[i];
    if (v <= 0) continue;
    double top = h->log_y ? log10(v) : v;
    if (h->log_y && v == 1) top = 0.02 * a.ymax; /* a single neuron still shows */
    cc_rect(d->lo + bw * i, 0.0, d->lo + bw * (i + 1), top, CC_SERIES, CC_BG);
  }
  cc_axes_end(c, &a);
  cc_decorate(c, &a, &h->text, CC_PT_TICK + 10.0, cc_ytick_width(&a, CC_PT_TICK) + 6.0);
}

pf_status pf_chart_histogram(const char *path, pf_chart_format format, const pf_hist_chart *c,
                             pf_err *err) {
  if (!c || c->n == 0 || !c->values)
    return pf_err_set(err, PF_ERR_INVALID, "histogram: expected at least one value");
  int bins = c->bins > 0 ? c->bins : 40;
  if (bins > 1000)
    return pf_err_set(err, PF_ERR_INVALID, "histogram: expected <= 1000 bins, got %d", bins);
  hist_data d = {.h = c, .bins = bins, .lo = INFINITY, .hi = -INFINITY};
  size_t finite = 0;
  for (size_t i = 0; i < c->n; i++)
    if (isfinite(c->values[i])) {
      finite++;
      if (c->values[i] < d.lo) d.lo = c->values[i];
      if (c->values[i] > d.hi) d.hi = c->values[i];
    }
  if (!finite) return pf_err_set(err, PF_ERR_INVALID, "histogram: no finite value among %zu", c->n);
  if (d.hi == d.lo) {
    double e = d.lo != 0 ? fabs(d.lo) * 0.5 : 0.5;
    d.lo -= e;
    d.hi += e;
  }
  if (!(d.counts = calloc((size_t)bins, sizeof *d.counts)))
    return pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  for (size_t i = 0; i < c->n; i++) {
    if (!isfinite(c->values[i])) continue;
    int k = (int)((c->values[i] - d.lo) / (d.hi - d.lo) * bins);
    d.counts[k < 0 ? 0 : k >= bins ? bins - 1 : k] += 1;
  }
  pf_status st = chart_run(path, format, or_default(c->width_in, DEF_W),
                           or_default(c->height_in, DEF_H), draw_hist, &d, err);
  free(d.counts);
  return st;
}

/* ------------------------------------------------------------ lines */

static double line_x(const pf_line_chart *l, const pf_chart_series *r, size_t i) {
  return l->bars || l->xticks || !r->x ? (double)i : r->x[i];
}

/* World window of a line / bar chart. */
static void line_window(const pf_line_chart *l, cc_axes *a, size_t *ncat) {
  double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
  size_t maxn = 0;
  for (size_t s = 0; s < l->n_series; s++) {
    const pf_chart_series *r = &l->series[s];
    if (r->n > maxn) maxn = r->n;
    for (size_t i = 0; i < r->n; i++) {
      double x = line_x(l, r, i), y = r->y[i];
      if (!isfinite(x) || !isfinite(y)) continue;
      xlo = fmin(xlo, x), xhi = fmax(xhi, x), ylo = fmin(ylo, y), yhi = fmax(yhi, y);
    }
  }
  if (!(xlo <= xhi)) xlo = 0, xhi = 1, ylo = 0, yhi = 1;
  if (l->bars) ylo = fmin(ylo, 0), yhi = fmax(yhi, 0);
  double ys = yhi - ylo > 0 ? yhi - ylo : fabs(yhi) > 0 ? fabs(yhi) : 1.0;
  int legend = l->n_series > 1 || l->series[0].name;
  a->ymin = l->bars && ylo >= 0 ? 0 : ylo - ys * 0.06;
  a->ymax = yhi + ys * (legend ? 0.25 : 0.08);
  cc_ticks(a->ymin, a->ymax, 6, &a->ystep, &a->ydec);
  *ncat = l->xticks ? l->n_xticks : maxn;
  if (l->xticks || l->bars) {
    a->xmin = -0.6;
    a->xmax = (double)(*ncat > maxn ? *ncat : maxn ? maxn : 1) - 0.4;
  } else {
    double xs = xhi - xlo > 0 ? xhi - xlo : 1.0;
    a->xmin = xlo - xs * 0.04;
    a->xmax = xhi + xs * 0.04;
    cc_ticks(a->xmin, a->xmax, 7, &a->xstep, &a->xdec);
  }
}

static void draw_series(const chart_ctx *c, const pf_line_chart *l, size_t s) {
  const pf_chart_series *r = &l->series[s];
  int col = CC_SERIES + (int)s;
  double w = 0.8 / (double)l->n_series;
  cc_width(c, 1.8);
  for (size_t i = 0; i < r->n; i++) {
    double x = line_x(l, r, i), y = r->y[i];
    if (!isfinite(x) || !isfinite(y)) continue;
    if (l->bars) {
      double x0 = x - 0.4 + w * (double)s;
      cc_rect(x0, 0.0, x0 + w * 0.95, y, col, -1);
      continue;
    }
    for (size_t j = i + 1; j < r->n; j++) { /* segment to the next finite point */
      double x2 = line_x(l, r, j), y2 = r->y[j];
      if (!isfinite(x2) || !isfinite(y2)) continue;
      double xs[2] = {x, x2}, ys[2] = {y, y2};
      plcol0(col);
      plline(2, xs, ys);
      break;
    }
    cc_font(c, 7.0, 0);
    plcol0(col);
    PLFLT px = x, py = y;
    plstring(1, &px, &py, "\xE2\x97\x8F"); /* ● */
  }
}

static void draw_lines(const chart_ctx *c, const void *data) {
  const pf_line_chart *l = data;
  cc_axes a = {.grid = 1, .ynum = 1, .xnum = !l->xticks && !l->bars};
  size_t ncat = 0;
  line_window(l, &a, &ncat);
  double xh = a.xnum ? CC_PT_TICK + 10.0 : cc_xcat_height(c, ncat, l->xticks, 0);
  margins(c, &a, &l->text, xh);
  cc_axes_begin(c, &a);
  int cols[CC_MAX_SERIES];
  const char *names[CC_MAX_SERIES];
  size_t named = 0;
  for (size_t s = 0; s < l->n_series; s++) {
    cols[s] = CC_SERIES + (int)s;
    names[s] = l->series[s].name ? l->series[s].name : "";
    named += l->series[s].name != NULL;
    draw_series(c, l, s);
  }
  cc_axes_end(c, &a);
  if (!a.xnum) cc_xcat_labels(c, &a, ncat, l->xticks, 0);
  cc_decorate(c, &a, &l->text, xh, cc_ytick_width(&a, CC_PT_TICK) + 6.0);
  if (named) cc_legend(c, l->n_series, names, cols, l->bars ? 0 : 1);
}

pf_status pf_chart_lines(const char *path, pf_chart_format format, const pf_line_chart *c,
                         pf_err *err) {
  if (!c || c->n_series == 0 || c->n_series > CC_MAX_SERIES || !c->series)
    return pf_err_set(err, PF_ERR_INVALID, "line chart: expected 1..%d series, got %zu",
                      CC_MAX_SERIES, c ? c->n_series : 0);
  for (size_t s = 0; s < c->n_series; s++)
    if (c->series[s].n == 0 || !c->series[s].y)
      return pf_err_set(err, PF_ERR_INVALID, "line chart: series %zu has no points", s);
  for (size_t i = 0; c->xticks && i < c->n_xticks; i++)
    if (!c->xticks[i])
      return pf_err_set(err, PF_ERR_INVALID, "line chart: x tick %zu is missing", i);
  return chart_run(path, format, or_default(c->width_in, DEF_W), or_default(c->height_in, DEF_H),
                   draw_lines, c, err);
}
