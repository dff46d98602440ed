/* charts_int.h — shared internals of charts*.c (not part of the public API).
 *
 * A chart is a draw function run by chart_run inside one PLplot session (see
 * charts.c). Layout is done in points of the figure (72 per inch); the
 * helpers convert to PLplot's normalised page coordinates and character sizes.
 */
#ifndef PF_CHARTS_INT_H
#define PF_CHARTS_INT_H

#include "charts.h"

/* Figure being drawn. */
typedef struct chart_ctx {
  double w_pt, h_pt; /* figure size in points */
  double s;          /* device units per point (PNG: dpi / 72; vector: 1) */
  pf_chart_format format;
} chart_ctx;

/* cmap0 indices set by chart_run. */
enum {
  CC_BG = 0,     /* white */
  CC_FG = 1,     /* black: text, axes */
  CC_GRID = 2,   /* light gray grid lines */
  CC_SERIES = 3, /* 3..10: matplotlib's tab10 order (blue, orange, green, red, ...) */
  CC_RED = 11,   /* highlighted labels */
  CC_ARROW = 12, /* gray, alpha 0.3 */
  CC_DIM = 13,   /* mid gray (secondary text) */
  CC_TMP = 14,   /* scratch colour (alpha points) */
  CC_TMP2 = 15,
  CC_NCOL = 16
};
#define CC_MAX_SERIES 8

/* Font sizes (points) used by every chart. */
#define CC_PT_TITLE 14.0
#define CC_PT_LABEL 12.0
#define CC_PT_TICK 10.0
#define CC_PT_FOOTER 9.0
#define CC_PT_LEGEND 10.0

typedef void (*chart_draw_fn)(const chart_ctx *c, const void *data);

/* Draw a w_in x h_in figure into `path` (temp file + rename), serialised,
 * with PLplot's handlers installed. */
pf_status chart_run(const char *path, pf_chart_format format, double w_in, double h_in,
                    chart_draw_fn draw, const void *data, pf_err *err);

/* ---- the chart's file (charts_file.c) ---- */
/* Create the hidden temporary sibling "<dir>/.<base>.XXXXXX" of `path` (0644,
 * empty, closed) that the chart is drawn into; *out is malloc'd. */
pf_status chart_make_temp(const char *path, char **out, pf_err *err);
/* Encode pixels rgba[h][w] (RGBA, opaque) as an RGB PNG into `tmp` and fsync it.
 * Returns 0, or 1 with msg[n] set: "cannot write the PNG file: <strerror of the
 * failed write>" or "cannot encode the PNG file: <libpng's message>". Prints
 * nothing (libpng's handlers record instead). */
int chart_write_png(const char *tmp, const unsigned char *rgba, int w, int h, char *msg, size_t n);
/* After PLplot's `dev` (svgcairo, pdfcairo) wrote `tmp`: check that the file is
 * complete (cairo ends an SVG with "</svg>\n", a PDF with "%%EOF\n"), make the
 * SVG ids stable, fsync. PF_ERR_IO naming `path` and the cause otherwise: "the
 * file system is full (No space left on device)" when its folder has no free
 * block left, else "the chart file was cut short (N bytes ...)" / "wrote no data",
 * or the strerror of a failed read, write or fsync. */
pf_status chart_finish_vector(const char *tmp, const char *path, pf_chart_format format,
                              const char *dev, pf_err *err);

/* Around the forks of charts_jobs.c: prepare (before the first fork) waits
 * until no thread draws and holds the chart lock while the workers are
 * forked, so that no child starts with PLplot half-way through a chart;
 * parent / child release it on each side. */
void chart_fork_prepare(void);
void chart_fork_parent(void);
void chart_fork_child(void);

/* Remove the hidden temporary ".<name>.XXXXXX" siblings of `path` that an
 * interrupted drawing of it left (a worker killed mid-chart). Best effort. */
void chart_remove_temps(const char *path);

/* ---- text ---- */
void cc_font(const chart_ctx *c, double pt, int bold);
void cc_width(const chart_ctx *c, double pt); /* line width in points */
/* Copy `in` into out[n] with PLplot's escape character '#' doubled; clips long
 * text at a UTF-8 boundary. */
void cc_escape(const char *in, char *out, size_t n);
/* Estimated width in points of UTF-8 `s` at `pt` (DejaVu Sans averages). */
double cc_text_pt(const char *s, double pt);
/* Text at normalised page position (x, y) (0..1, y up): the reference point is
 * at half the height of a capital letter; just 0 = left, 0.5 = centre, 1 =
 * right; angle in degrees counter-clockwise. */
void cc_page_text(const chart_ctx *c, double x, double y, double angle, double just, double pt,
                  int bold, int color, const char *text);

/* Line between normalised page positions (never clipped by the viewport). */
void cc_page_line(const chart_ctx *c, double x0, double y0, double x1, double y1, int color,
                  double width_pt);

/* ---- axes ---- */
typedef struct cc_axes {
  double left, right, top, bottom; /* margins in points */
  double xmin, xmax, ymin, ymax;   /* world window */
  double vx0, vx1, vy0, vy1;       /* viewport (normalised), set by cc_axes_begin */
  double xstep, ystep;             /* tick steps (0 = none on that axis) */
  int xdec, ydec;                  /* label decimals (-1 = %.2e) */
  int xnum, ynum;                  /* numeric tick labels on x / y */
  int ylog;                        /* y window is log10 of the values */
  int grid;                        /* light horizontal grid lines */
} cc_axes;

/* "Nice" tick step for [lo, hi] with about `target` ticks, and the decimals
 * needed to print it (-1 = exponent notation). */
void cc_ticks(double lo, double hi, int target, double *step, int *decimals);
/* Format a tick value as the axis labels do. */
void cc_tick_label(double v, int decimals, int log10_axis, char *buf, size_t n);
/* Width in points of the widest y tick label of a. */
double cc_ytick_width(const cc_axes *a, double pt);
/* Set the viewport from the margins and the world window; draw the grid. */
void cc_axes_begin(const chart_ctx *c, cc_axes *a);
/* Draw the axes box with ticks and numeric labels (after the data). */
void cc_axes_end(const chart_ctx *c, const cc_axes *a);
/* World -> normalised page coordinates. */
void cc_to_page(const cc_axes *a, double x, double y, double *px, double *py);
/* Points per world unit along x / y. */
double cc_pt_per_x(const chart_ctx *c, const cc_axes *a);
double cc_pt_per_y(const chart_ctx *c, const cc_axes *a);

/* Title above, x label below (below `xtick_pt` of tick labels), y label left
 * (beside `ytick_pt` of tick labels), footer wrapped at the bottom. */
void cc_decorate(const chart_ctx *c, const cc_axes *a, const pf_chart_text *t, double xtick_pt,
                 double ytick_pt);
/* Lines the footer takes (0..3) and the bottom margin it needs in points. */
int cc_footer_lines(const chart_ctx *c, const char *footer);
double cc_footer_pt(const chart_ctx *c, const char *footer);

/* Category labels under x = 0..n-1 (every k-th when crowded), optionally at 45
 * degrees; returns nothing. cc_xcat_height gives the room they need. */
void cc_xcat_labels(const chart_ctx *c, const cc_axes *a, size_t n, const char *const *labels,
                    int rotate);
double cc_xcat_height(const chart_ctx *c, size_t n, const char *const *labels, int rotate);

/* Legend in the top-right corner inside the plot; kind 0 = colour boxes,
 * 1 = lines with markers, 2 = filled circles. */
void cc_legend(const chart_ctx *c, size_t n, const char *const *names, const int *colors, int kind);

/* Filled rectangle in world coordinates with an outline in `edge` (-1 = none). */
void cc_rect(double x0, double y0, double x1, double y1, int fill, int edge);

#endif
