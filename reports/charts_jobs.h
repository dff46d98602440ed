/* charts_jobs.h — draw a batch of charts at once, in worker processes.
 *
 * PLplot keeps global state and is not thread-safe (charts.c draws every
 * chart under one mutex), so a batch is spread over forked worker processes
 * instead of threads. Each worker takes the next job from a counter in shared
 * memory, draws it and sends the job's status and message to the parent
 * through a pipe; the parent only waits, reports progress and collects the
 * results. The files are the same, byte for byte, as drawn in one process.
 *
 * The job function, when it runs in a worker (more than one worker):
 *  - must be plain code: no OpenMP (libgomp is not fork-safe: the parent's
 *    thread pool does not exist in the child, a parallel region there can
 *    hang), no BLIS, no Lua, no pf_ctx callbacks, nothing printed;
 *  - sees the parent's memory as it was at the fork, read-only in effect:
 *    what it allocates or changes stays in the worker (which ends with
 *    _exit, so no atexit handler, stdio flush or leak check runs there);
 *  - has one effect the parent sees: the file it writes at path(i).
 * Charts' own code (pf_chart_*, pf_pca2) and tensor reads qualify.
 *
 * Results:
 *  - PF_OK when every job drew its chart;
 *  - otherwise the error of the first failing job in job order (the one a
 *    serial run would stop at), with its code and message as the job set them;
 *    no new job starts after a failure, jobs already running finish;
 *  - a worker killed by a signal (or ending with a non-zero status) fails the
 *    batch with PF_ERR_UNSUPPORTED naming the chart it was drawing and the
 *    signal; the hidden temporary file of that chart is removed;
 *  - PF_ERR_INTERRUPTED when ctx->interrupt was set (no new job starts; a worker
 *    still drawing a second after it is killed, its chart's temporary removed:
 *    a renderer stuck in a loop does not hold pfrun);
 *  - a chart still being drawn after the time limit (timeout_s): its worker is
 *    killed, its temporary removed, and the batch fails with PF_ERR_UNSUPPORTED
 *    naming the chart and the limit, so that an unattended run whose renderer
 *    hangs (pango's font set-up looping under a memory cap was seen to) ends
 *    instead of waiting for ever. Charts drawn in this process have no limit.
 * Every worker is waited for before returning (no zombies), on every path.
 * When the shared memory, the pipe or the first fork cannot be had, the jobs
 * run in this process instead (if a later fork fails, the workers already
 * started draw everything). Progress: ctx->progress(what, done, n) from the
 * calling thread after each chart. Nothing is printed.
 */
#ifndef PF_CHARTS_JOBS_H
#define PF_CHARTS_JOBS_H

#include <stddef.h>

#include "pf.h"

#define PF_CHART_JOBS_MAX 64 /* worker processes at most */
#define PF_CHART_JOBS_ENV "PFRUN_PLOT_JOBS"
/* Seconds one chart may take in a worker (a chart takes ~0.1 s, a PCA of many
 * tokens a few); PFRUN_PLOT_TIMEOUT overrides it, 0 = no limit. */
#define PF_CHART_TIMEOUT_ENV "PFRUN_PLOT_TIMEOUT"
#define PF_CHART_TIMEOUT_DEFAULT 600.0

/* Draw chart i (0 <= i < n). */
typedef pf_status (*pf_chart_job_fn)(size_t i, void *user_data, pf_err *err);
/* The file chart i is written to (for messages and the clean-up after a crash). */
typedef const char *(*pf_chart_job_path_fn)(size_t i, void *user_data);

typedef struct pf_chart_jobs {
  size_t n;
  pf_chart_job_fn draw;
  pf_chart_job_path_fn path;
  void *user_data;   /* passed to draw and path */
  int workers;       /* 0 = pf_chart_jobs_workers(0); 1 = in this process, in job order */
  const pf_ctx *ctx; /* progress and interrupt; may be NULL */
  const char *what;  /* progress label, e.g. "plot" */
  unsigned char *drawn; /* may be NULL; else n flags, set to 1 for each chart drawn (so that
                         * a caller can remove a failed batch's charts, and only those) */
  /* 1: in a forked worker even with one worker or one job, so that a crash or an abort
   * inside the renderer's libraries (GLib, cairo, PLplot under a memory cap) fails the
   * batch instead of ending pfrun */
  int isolate;
  /* seconds one chart may take in a worker: > 0 itself, 0 = pf_chart_jobs_timeout (the
   * environment, else the default), < 0 = no limit */
  double timeout_s;
} pf_chart_jobs;

/* The worker count for `requested` (> 0: itself, capped at PF_CHART_JOBS_MAX;
 * 0: PFRUN_PLOT_JOBS when set, else the OpenMP thread count). Errors: a
 * PFRUN_PLOT_JOBS that is not a whole number in 1..PF_CHART_JOBS_MAX
 * (PF_ERR_INVALID, naming the variable and its value). */
pf_status pf_chart_jobs_workers(int requested, int *out, pf_err *err);

/* The time limit of one chart in a worker: PFRUN_PLOT_TIMEOUT (seconds, 0 = none,
 * given as *out = -1) when set, else PF_CHART_TIMEOUT_DEFAULT. Errors: a value
 * that is not a number of seconds in [0, 1e6] (PF_ERR_INVALID, naming the
 * variable and its value). */
pf_status pf_chart_jobs_timeout(double *out, pf_err *err);

/* Run the batch (see above). *used (may be NULL) receives the number of
 * worker processes that drew charts, 1 when they were drawn in this process. */
pf_status pf_chart_jobs_run(const pf_chart_jobs *jobs, int *used, pf_err *err);

/* One chart, drawn by draw(0, user_data, err) into `path`, in a forked worker
 * (isolate) unless PFRUN_PLOT_JOBS is 1: charts that are not drawn in batches (a
 * recipe's plot and report steps) get the same protection as the bias charts. */
pf_status pf_chart_one(const pf_ctx *ctx, const char *path, pf_chart_job_fn draw, void *user_data,
                       pf_err *err);

#endif
