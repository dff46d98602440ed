/* plot.h — the chart builders behind op "plot", shared with op "report"
 * (internal to ops/). Each builder turns a step result into chart files and
 * appends the paths it wrote to `files` (a pf_value list). Errors name the
 * parameter ("data: ...") and what was expected. */
#ifndef PF_PLOT_H
#define PF_PLOT_H

#include "charts.h"
#include "op.h"

/* Where and how charts are written. */
typedef struct pf_plot_out {
  const char *dir; /* existing folder */
  pf_chart_format format;
  double width_in, height_in; /* 0 = each chart's default size */
  int no_footer;              /* leave the explanatory footer out (the report has captions) */
  int jobs; /* worker processes drawing a batch of charts (pf_plot_bias; charts_jobs.h):
               0 = PFRUN_PLOT_JOBS or the OpenMP thread count, 1 = in this process */
  const pf_ctx *ctx; /* may be NULL: the interrupt while a single chart is drawn */
} pf_plot_out;

/* One chart of the kind given (a pf_bar_chart, pf_grouped_chart or pf_hist_chart at
 * `chart`) drawn into `path` in a forked worker (pf_chart_one): a renderer that
 * crashes or aborts under a memory cap fails the step instead of ending pfrun. */
typedef enum { PF_PLOT_BARS, PF_PLOT_GROUPED, PF_PLOT_HIST } pf_plot_kind;
pf_status pf_plot_one(const pf_ctx *ctx, pf_plot_kind kind, const char *path,
                      pf_chart_format format, const void *chart, pf_err *err);

/* Layer importance bars from an importance or calibrate result (the map under
 * "importance": {"<layer>": score}); layers in highlight[nh] are drawn in the
 * accent colour ("removed"). Writes layer_importance.<fmt>. */
pf_status pf_plot_importance(const pf_value *data, const int64_t *highlight, size_t nh,
                             const pf_plot_out *o, pf_value *files, pf_err *err);

/* Before/after grouped bars from a metrics result with "comparison":
 * bias_comparison_overall.<fmt> (every component and the overall value) and,
 * unless overall_only, bias_comparison_<component>.<fmt> and
 * bias_comparison_overall_pairs.<fmt> (per prompt pair). */
pf_status pf_plot_comparison(const pf_value *data, int overall_only, const pf_plot_out *o,
                             pf_value *files, pf_err *err);

/* Histogram of every neuron difference of a metrics result with "neurons":
 * neuron_differences.<fmt>. */
pf_status pf_plot_neurons(const pf_value *data, int bins, const pf_plot_out *o, pf_value *files,
                          pf_err *err);

/* OptiPFair's bias charts from a bias_activations result (plot_bias.c).
 * kinds: bit 0 mean_diff, bit 1 heatmap, bit 2 pca. layer_type NULL = OptiPFair's
 * visualize_bias types (mean_diff / heatmap: mlp_output, attention_output,
 * gate_proj, up_proj; pca: mlp_output, attention_output). pair: 1-based index
 * of the one pair to draw, 0 = all. layers: the §8.6 selection value. The
 * charts are drawn by o->jobs worker processes (charts_jobs.h); progress is
 * ctx->progress("plot", charts drawn, charts). */
#define PF_PLOT_MEAN_DIFF 1u
#define PF_PLOT_HEATMAP 2u
#define PF_PLOT_PCA 4u
pf_status pf_plot_bias(const pf_value *data, unsigned kinds, const char *layer_type,
                       const pf_value *layers, int64_t pair, const pf_plot_out *o, pf_value *files,
                       const pf_ctx *ctx, pf_err *err);

/* "<dir>/<name>.<ext>" (malloc'd) and append it to files; NULL on NOMEM. */
char *pf_plot_path(const pf_plot_out *o, const char *name);

#endif
