/* report_int.h — shared internals of op "report" (report.c, report_sections.c).
 * Internal to ops/. */
#ifndef PF_REPORT_INT_H
#define PF_REPORT_INT_H

#include "pdf.h"
#include "op.h"

/* Strings owned by the report while a table is built. */
typedef struct rep_strs {
  char **s;
  size_t n, cap;
} rep_strs;

/* printf into a new string kept in st; returns it, or NULL on NOMEM. */
const char *rep_str(rep_strs *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void rep_strs_free(rep_strs *st);

typedef struct rep {
  pf_pdf *pdf;
  const pf_value *steps; /* the run's steps (list of maps), or NULL */
  char *chart_dir;       /* temporary folder for chart PNGs */
  int figures;           /* figures so far (captions "Figure n") */
  const pf_ctx *ctx;
} rep;

/* ---- formatting ---- */
/* 4 significant digits ("0.1235", "1.235e-05", "inf", "nan", "—" for NULL). */
void rep_num(double v, char *buf, size_t n);
/* Grouped thousands: 1,235,814,400. */
void rep_int(int64_t v, char *buf, size_t n);
/* Short text of any value (strings as is, lists "[a, b, …]", maps "{…}"). */
void rep_value(const pf_value *v, char *buf, size_t n);
/* A number of a map as text, "—" when absent. */
void rep_map_num(const pf_value *m, const char *key, char *buf, size_t n);
/* "step 3 (prune_depth, id pruned)". */
void rep_step_name(const pf_value *step, char *buf, size_t n);
/* The i-th step map, or NULL. */
const pf_value *rep_step(const rep *r, size_t i);
size_t rep_nsteps(const rep *r);
/* A step's op name and result (NULL when absent). */
const char *rep_op(const pf_value *step);
const pf_value *rep_result(const pf_value *step);
/* Path for the next chart PNG in the temporary folder (malloc'd). */
char *rep_chart_path(rep *r, const char *name);
/* Embed a chart with "Figure n: caption". */
pf_status rep_figure(rep *r, const char *png, const char *caption, pf_err *err);

/* ---- sections (each adds nothing when its data is absent) ---- */
pf_status rep_pruning(rep *r, pf_err *err);
pf_status rep_importance(rep *r, pf_err *err);
pf_status rep_bias(rep *r, pf_err *err);
pf_status rep_eval(rep *r, pf_err *err);
pf_status rep_bench(rep *r, pf_err *err); /* report_bench.c */
/* "Recovery": prune_width reconstruct figures and evaluate's before/after table. */
pf_status rep_recovery(rep *r, pf_err *err);
pf_status rep_user_table(rep *r, const pf_value *table, pf_err *err);

#endif
