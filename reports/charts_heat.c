/* charts_heat.c — heatmaps with a viridis colour map and a colour bar (see
 * charts.h). Cells are filled rectangles (crisp in every format); row 0 is at
 * the top, as in seaborn's heatmap. */
#include <math.h>
#include <plplot.h>
#include <stdio.h>
#include <string.h>

#include "charts_int.h"

/* matplotlib's viridis sampled at 0, 0.1, ..., 1. */
static void set_viridis(void) {
  static const int v[11][3] = {{68, 1, 84},    {72, 36, 117},  {65, 68, 135},  {53, 95, 141},
                               {42, 120, 142}, {33, 145, 140}, {34, 168, 132}, {68, 191, 112},
                               {122, 209, 81}, {189, 223, 38}, {253, 231, 37}};
  PLFLT pos[11], r[11], g[11], b[11];
  for (int i = 0; i < 11; i++) {
    pos[i] = i / 10.0;
    r[i] = v[i][0] / 255.0;
    g[i] = v[i][1] / 255.0;
    b[i] = v[i][2] / 255.0;
  }
  plscmap1n(256);
  plscmap1l(1, 11, pos, r, g, b, NULL);
}

typedef struct heat_layout {
  double zmin, zmax, zstep;
  int zdec;
  double ytick_w, ztick_w;
} heat_layout;

static void tick_text(const int64_t *ticks, int64_t i, char *buf, size_t n) {
  snprintf(buf, n, "%lld", (long long)(ticks ? ticks[i] : i));
}

/* Row labels left of the axis (every k-th when crowded). */
static void row_labels(const chart_ctx *c, const cc_axes *a, const pf_heatmap_chart *h) {
  double per_row = cc_pt_per_y(c, a);
  int64_t k = per_row > 0 ? (int64_t)ceil(CC_PT_TICK * 1.4 / per_row) : 1;
  if (k < 1) k = 1;
  plcol0(CC_FG);
  cc_width(c, 0.8);
  for (int64_t r = 0; r < h->rows; r += k) {
    char buf[32];
    tick_text(h->row_ticks, r, buf, sizeof buf);
    double y = (double)(h->rows - 1 - r), px, py;
    cc_to_page(a, a->xmin, y, &px, &py);
    cc_page_line(c, px, py, px - 3.5 / c->w_pt, py, CC_FG, 0.8);
    cc_page_text(c, px - 6.0 / c->w_pt, py, 0, 1.0, CC_PT_TICK, 0, CC_FG, buf);
  }
}

static void colour_bar(const chart_ctx *c, const cc_axes *a, const pf_heatmap_chart *h,
                       const heat_layout *L) {
  double x0 = a->vx1 + 14.0 / c->w_pt, x1 = x0 + 16.0 / c->w_pt;
  plvpor(x0, x1, a->vy0, a->vy1);
  plwind(0.0, 1.0, L->zmin, L->zmax);
  const int steps = 128;
  for (int i = 0; i < steps; i++) {
    double z0 = L->zmin + (L->zmax - L->zmin) * i / steps;
    double z1 = L->zmin + (L->zmax - L->zmin) * (i + 1.02) / steps;
    double x[4] = {0, 0, 1, 1}, y[4] = {z0, fmin(z1, L->zmax), fmin(z1, L->zmax), z0};
    plcol1((i + 0.5) / steps);
    plfill(4, x, y);
  }
  cc_axes bar = {.xmin = 0,
                 .xmax = 1,
                 .ymin = L->zmin,
                 .ymax = L->zmax,
                 .ystep = L->zstep,
                 .ydec = L->zdec,
                 .ynum = 1,
                 .vx0 = x0,
                 .vx1 = x1,
                 .vy0 = a->vy0,
                 .vy1 = a->vy1};
  cc_font(c, CC_PT_TICK, 0);
  plcol0(CC_FG);
  cc_width(c, 0.8);
  plsmaj(3.5 * c->s * 25.4 / 72.0, 1.0);
  plsmin(0.0, 1.0);
  plbox("bc", 0.0, 0, "bc", 0.0, 0);
  /* tick labels on the right, drawn by us so their position is exact */
  char buf[64];
  for (double z = ceil(L->zmin / L->zstep) * L->zstep; z <= L->zmax + L->zstep * 1e-6;
       z += L->zstep) {
    double px, py;
    cc_to_page(&bar, 1.0, z, &px, &py);
    cc_page_line(c, px, py, px + 3.5 / c->w_pt, py, CC_FG, 0.8);
    cc_tick_label(z, L->zdec, 0, buf, sizeof buf);
    cc_page_text(c, px + 7.0 / c->w_pt, py, 0, 0.0, CC_PT_TICK, 0, CC_FG, buf);
  }
  if (h->bar_label && *h->bar_label)
    cc_page_text(c, x1 + (L->ztick_w + 16.0 + CC_PT_LABEL * 0.5) / c->w_pt, (a->vy0 + a->vy1) / 2,
                 90, 0.5, CC_PT_LABEL, 0, CC_FG, h->bar_label);
  plvpor(a->vx0, a->vx1, a->vy0, a->vy1);
  plwind(a->xmin, a->xmax, a->ymin, a->ymax);
}

static void draw_heatmap(const chart_ctx *c, const void *data) {
  const pf_heatmap_chart *h = data;
  heat_layout L = {.zmin = INFINITY, .zmax = -INFINITY};
  for (int64_t i = 0; i < h->rows * h->cols; i++) {
    L.zmin = fmin(L.zmin, h->cells[i]);
    L.zmax = fmax(L.zmax, h->cells[i]);
  }
  if (L.zmax == L.zmin) L.zmax = L.zmin + (L.zmin != 0 ? fabs(L.zmin) : 1.0);
  cc_ticks(L.zmin, L.zmax, 7, &L.zstep, &L.zdec);
  char buf[64];
  for (double z = ceil(L.zmin / L.zstep) * L.zstep; z <= L.zmax + L.zstep * 1e-6; z += L.zstep) {
    cc_tick_label(z, L.zdec, 0, buf, sizeof buf);
    L.ztick_w = fmax(L.ztick_w, cc_text_pt(buf, CC_PT_TICK));
  }
  for (int64_t r = 0; r < h->rows; r++) {
    tick_text(h->row_ticks, r, buf, sizeof buf);
    L.ytick_w = fmax(L.ytick_w, cc_text_pt(buf, CC_PT_TICK));
  }
  const char **cols = NULL;
  char colbuf[200][24];
  const char *colp[200];
  for (int64_t i = 0; i < h->cols; i++) {
    tick_text(h->col_ticks, i, colbuf[i], sizeof colbuf[i]);
    colp[i] = colbuf[i];
  }
  cols = colp;
  int rotate = cc_text_pt("00000", CC_PT_TICK) * (double)h->cols > 0.7 * c->w_pt;
  double xh = cc_xcat_height(c, (size_t)h->cols, cols, rotate);
  cc_axes a = {
      .xmin = -0.5, .xmax = (double)h->cols - 0.5, .ymin = -0.5, .ymax = (double)h->rows - 0.5};
  a.left = 12.0 + (h->text.ylabel && *h->text.ylabel ? CC_PT_LABEL + 12.0 : 0) + L.ytick_w + 12.0;
  a.right = 14.0 + 16.0 + 8.0 + L.ztick_w + 10.0 +
            (h->bar_label && *h->bar_label ? CC_PT_LABEL + 10.0 : 0) + 8.0;
  a.top = h->text.title && *h->text.title ? CC_PT_TITLE + 24.0 : 16.0;
  a.bottom = xh + (h->text.xlabel && *h->text.xlabel ? CC_PT_LABEL + 14.0 : 4.0) +
             cc_footer_pt(c, h->text.footer) + 8.0;
  cc_axes_begin(c, &a);
  set_viridis();
  double span = L.zmax - L.zmin;
  for (int64_t r = 0; r < h->rows; r++)
    for (int64_t k = 0; k < h->cols; k++) {
      double y = (double)(h->rows - 1 - r), x = (double)k;
      double xs[4] = {x - 0.5, x - 0.5, x + 0.5, x + 0.5};
      double ys[4] = {y - 0.5, y + 0.5, y + 0.5, y - 0.5};
      double t = (h->cells[r * h->cols + k] - L.zmin) / span;
      plcol1(t < 0 ? 0 : t > 1 ? 1 : t);
      double lx[5] = {xs[0], xs[1], xs[2], xs[3], xs[0]},
             ly[5] = {ys[0], ys[1], ys[2], ys[3], ys[0]};
      cc_width(c, 0.3); /* hide hairline seams between cells */
      plfill(4, xs, ys);
      plline(5, lx, ly);
    }
  cc_axes_end(c, &a);
  cc_xcat_labels(c, &a, (size_t)h->cols, cols, rotate);
  row_labels(c, &a, h);
  colour_bar(c, &a, h, &L);
  cc_decorate(c, &a, &h->text, xh, L.ytick_w + 10.0);
}

pf_status pf_chart_heatmap(const char *path, pf_chart_format format, const pf_heatmap_chart *c,
                           pf_err *err) {
  if (!c || c->rows < 1 || c->cols < 1 || c->rows > 200 || c->cols > 200)
    return pf_err_set(err, PF_ERR_INVALID,
                      "heatmap: expected 1..200 rows and columns, got %lld x %lld",
                      c ? (long long)c->rows : 0LL, c ? (long long)c->cols : 0LL);
  if (!c->cells) return pf_err_set(err, PF_ERR_INVALID, "heatmap: no cells given");
  for (int64_t i = 0; i < c->rows * c->cols; i++)
    if (!isfinite(c->cells[i]))
      return pf_err_set(err, PF_ERR_INVALID,
                        "heatmap: cell [%lld, %lld]: expected a finite number, got %g",
                        (long long)(i / c->cols), (long long)(i % c->cols), c->cells[i]);
  return chart_run(path, format, c->width_in > 0 ? c->width_in : 10.0,
                   c->height_in > 0 ? c->height_in : 8.0, draw_heatmap, c, err);
}
