/* charts.h — charts drawn with PLplot's cairo devices (pngcairo, svgcairo,
 * pdfcairo): OptiPFair's bias figures (mean-difference bars, activation
 * heatmaps, PCA scatter) and pfrun's own (layer importance, before/after
 * grouped bars, neuron-difference histogram, line/bar charts for sweeps).
 *
 * Every chart function writes one file at `path` in `format`:
 *   - the file is drawn into a hidden temporary sibling ".<name>.XXXXXX" and
 *     renamed into place, so a failed chart never leaves a partial file;
 *   - PNG is 150 dpi (a 10 x 6 in figure is 1500 x 900 pixels), SVG and PDF
 *     are vector, sized in points (10 x 6 in = 720 x 432 pt);
 *   - text is UTF-8 and drawn in DejaVu Sans (the environment variable
 *     PLPLOT_FREETYPE_SANS_FAMILY is set to "DejaVu Sans" once, unless the
 *     user set it); PLplot's escape character '#' is escaped, so any text is
 *     drawn literally.
 *
 * PLplot keeps global state: every chart is drawn under one process-wide
 * mutex, the stream is always ended (plend1), even on error, PLplot's abort
 * messages are captured into pf_err, and its exit handler jumps back to the
 * chart function (PLplot never ends the process). Charts may be drawn from
 * any thread; they are serialised.
 *
 * Errors: PF_ERR_INVALID (bad arguments, named), PF_ERR_IO (the folder of
 * `path` is missing or not writable, the file could not be written whole,
 * rename failed: the message names `path` and the cause, e.g. "cannot write
 * the PNG file: No space left on device", "cannot write the chart: the file
 * system is full (No space left on device); ...", "the chart file was cut
 * short (N bytes, no closing </svg>)"), PF_ERR_NOMEM, and PF_ERR_UNSUPPORTED
 * (PLplot failed: its message is in err). A chart is fsync'd before it is
 * renamed into place. Nothing is printed (neither by libpng). No chart
 * function keeps a pointer to its arguments.
 */
#ifndef PF_CHARTS_H
#define PF_CHARTS_H

#include <stddef.h>
#include <stdint.h>

#include "pf.h"

typedef enum pf_chart_format {
  PF_CHART_PNG = 0,
  PF_CHART_SVG = 1,
  PF_CHART_PDF = 2
} pf_chart_format;

#define PF_CHART_DPI 150 /* PNG resolution */

/* "png" | "svg" | "pdf" (case-sensitive). */
pf_status pf_chart_format_parse(const char *name, pf_chart_format *out, pf_err *err);
const char *pf_chart_format_ext(pf_chart_format f); /* "png", "svg", "pdf" */

/* The texts of a chart; NULL or "" = not drawn. The footer is wrapped onto up
 * to three centred lines at the bottom of the figure (OptiPFair's
 * `Prompt Pair: "<p1>" vs "<p2>"`). */
typedef struct pf_chart_text {
  const char *title;
  const char *xlabel;
  const char *ylabel;
  const char *footer;
} pf_chart_text;

/* ---- bar chart (OptiPFair's mean-difference chart, layer importance) ---- */
typedef struct pf_bar_chart {
  pf_chart_text text;
  size_t n;                   /* bars, >= 1 */
  const double *values;       /* [n] finite heights (negative bars go down) */
  const char *const *labels;  /* [n] tick label of each bar, or NULL = "0".."n-1" */
  int rotate_labels;          /* tick labels at 45 degrees */
  const uint8_t *highlight;   /* [n] or NULL: 1 = bar in the accent colour */
  const char *base_name;      /* legend text of plain bars (with highlight), or NULL */
  const char *highlight_name; /* legend text of highlighted bars, or NULL */
  double width_in, height_in; /* figure size; 0 = 10 x 6 in */
} pf_bar_chart;

pf_status pf_chart_bars(const char *path, pf_chart_format format, const pf_bar_chart *c,
                        pf_err *err);

/* ---- grouped bars (before/after per component) ---- */
typedef struct pf_grouped_chart {
  pf_chart_text text;
  size_t n_groups;            /* >= 1 */
  size_t n_series;            /* 1..8 */
  const char *const *groups;  /* [n_groups] tick labels */
  const char *const *series;  /* [n_series] legend names */
  const double *values;       /* [n_series * n_groups], series-major, finite */
  int value_labels;           /* print each value above its bar */
  double width_in, height_in; /* 0 = 10 x 6 in */
} pf_grouped_chart;

pf_status pf_chart_grouped_bars(const char *path, pf_chart_format format, const pf_grouped_chart *c,
                                pf_err *err);

/* ---- histogram (neuron differences) ---- */
typedef struct pf_hist_chart {
  pf_chart_text text;
  size_t n; /* values, >= 1; non-finite values are skipped */
  const double *values;
  int bins;                   /* 0 = 40 */
  int log_y;                  /* counts on a log10 axis */
  double width_in, height_in; /* 0 = 10 x 6 in */
} pf_hist_chart;

pf_status pf_chart_histogram(const char *path, pf_chart_format format, const pf_hist_chart *c,
                             pf_err *err);

/* ---- line or bar chart of one or more series (sweeps) ---- */
typedef struct pf_chart_series {
  const char *name; /* legend text, or NULL */
  size_t n;         /* points, >= 1 */
  const double *x;  /* [n], or NULL = 0..n-1 */
  const double *y;  /* [n]; non-finite points are skipped */
} pf_chart_series;

typedef struct pf_line_chart {
  pf_chart_text text;
  size_t n_series; /* 1..8 */
  const pf_chart_series *series;
  int bars;                  /* grouped bars at the x positions instead of lines */
  const char *const *xticks; /* labels at x = 0..n_xticks-1 instead of numbers, or NULL */
  size_t n_xticks;
  double width_in, height_in; /* 0 = 10 x 6 in */
} pf_line_chart;

pf_status pf_chart_lines(const char *path, pf_chart_format format, const pf_line_chart *c,
                         pf_err *err);

/* ---- heatmap (activation differences) ---- */
typedef struct pf_heatmap_chart {
  pf_chart_text text;
  int64_t rows, cols;         /* >= 1 each, <= 200 */
  const double *cells;        /* [rows, cols] row-major, finite; row 0 drawn at the top */
  const int64_t *row_ticks;   /* [rows] label of each row, or NULL = 0..rows-1 */
  const int64_t *col_ticks;   /* [cols] label of each column, or NULL = 0..cols-1 */
  const char *bar_label;      /* colour-bar label, or NULL */
  double width_in, height_in; /* 0 = 10 x 8 in */
} pf_heatmap_chart;

/* Viridis-like colour map, colour bar on the right. */
pf_status pf_chart_heatmap(const char *path, pf_chart_format format, const pf_heatmap_chart *c,
                           pf_err *err);

/* ---- PCA scatter of paired points ---- */
typedef struct pf_pca_chart {
  pf_chart_text text;         /* xlabel / ylabel: e.g. "PC1 (62.50% explained var.)" */
  size_t n;                   /* point pairs, >= 1 */
  const double *p1;           /* [n, 2] prompt 1 points */
  const double *p2;           /* [n, 2] prompt 2 points */
  const char *const *labels;  /* [n] label at each pair's midpoint, or NULL */
  const uint8_t *differs;     /* [n] or NULL: 1 = label in bold red */
  const char *name1, *name2;  /* legend names; NULL = "Prompt 1" / "Prompt 2" */
  double width_in, height_in; /* 0 = 12 x 10 in */
} pf_pca_chart;

/* Prompt 1 / prompt 2 points (blue / orange, alpha 0.7), a gray arrow from
 * each prompt 1 point to its prompt 2 point, labels at the midpoints. */
pf_status pf_chart_pca(const char *path, pf_chart_format format, const pf_pca_chart *c,
                       pf_err *err);

/* ---- two-component PCA ----
 * Principal components of the rows of x [rows, cols] (float32, row-major):
 * the rows are centred, the two leading eigenvectors of their covariance are
 * found (a Jacobi eigensolver on the smaller of the covariance and Gram
 * matrices; block power iteration when that is larger than 256), and signs
 * follow scikit-learn's svd_flip: in each component the loading with the
 * largest absolute value is positive.
 *   scores[rows, 2]  the projections (sklearn's PCA(2).fit_transform(x));
 *   ratio[2]         explained variance ratios (0 when the data has no spread).
 * Errors: rows < 2 or cols < 1 (PF_ERR_INVALID), non-finite input, NOMEM. */
pf_status pf_pca2(const float *x, int64_t rows, int64_t cols, double *scores, double ratio[2],
                  pf_err *err);

#endif
