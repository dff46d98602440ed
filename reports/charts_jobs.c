/* charts_jobs.c — a batch of charts drawn by forked worker processes (see
 * charts_jobs.h).
 *
 * Why it looks like this:
 *  - Processes, not threads: PLplot (and the cairo/pango stack under it) is
 *    one global state; a fork gives each worker its own copy, and the data
 *    the charts are drawn from is shared copy-on-write, never serialised.
 *  - Jobs are taken from an atomic counter in a MAP_SHARED page, in order, so
 *    a slow chart (a PCA) does not hold up the others, and the first failure
 *    in job order is always among the jobs taken: the batch reports the error
 *    a serial run would have stopped at.
 *  - One pipe for every worker: a result is one write of at most PIPE_BUF
 *    bytes, which POSIX makes atomic, so results never interleave. The read
 *    end sees EOF once every worker has ended; the pipe is O_CLOEXEC so that
 *    nothing exec'd elsewhere keeps it open.
 *  - The parent polls with a timeout and reaps with WNOHANG in between, so a
 *    crashed worker stops the batch early instead of after the last chart;
 *    between polls it also looks at the job each worker is drawing (the shared
 *    page) and kills a worker whose chart outlasts the time limit.
 *  - The parent allocates nothing (its state is on the stack), so the batch
 *    adds no allocation that could fail; the workers' allocations fail like
 *    the serial ones and come back as the job's error.
 *  - Before forking: stdio is flushed (a child must not write the parent's
 *    buffered output a second time), and the chart lock is held so that no
 *    thread is inside PLplot (chart_fork_prepare). The children end with
 *    _exit: no atexit handler, no stdio flush, no LeakSanitizer pass.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <omp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "charts_int.h"
#include "charts_jobs.h"
#include "dist.h"

#define NO_JOB UINT64_MAX

_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "the job counter is shared between processes");

/* The page the workers share with the parent. */
typedef struct shared {
  atomic_ullong next;                       /* the next job to take */
  atomic_int stop;                          /* take no more jobs (a failure, an interrupt) */
  atomic_ullong current[PF_CHART_JOBS_MAX]; /* the job each worker draws, NO_JOB between jobs */
} shared;

/* One result, written by a worker in one write(). */
typedef struct result {
  uint64_t job;
  int32_t worker;
  int32_t code; /* pf_status */
  char msg[PF_ERR_MSG_MAX];
} result;

_Static_assert(sizeof(result) <= PIPE_BUF, "a result must be one atomic pipe write");

/* The parent's side of a batch. */
typedef struct pool {
  const pf_chart_jobs *j;
  shared *sh;
  int fd;                           /* read end of the result pipe */
  int nw;                           /* workers started */
  pid_t pid[PF_CHART_JOBS_MAX];     /* 0 once reaped */
  uint64_t last[PF_CHART_JOBS_MAX]; /* the last job each worker reported */
  size_t done;                      /* charts drawn */
  int failed, interrupted;
  int broken;        /* the pipe failed: the workers are killed, not waited for */
  int killed;        /* interrupted, and the workers still drawing were killed */
  struct timespec intr_at;
  double limit;                                /* seconds a chart may take; <= 0: no limit */
  uint64_t watch[PF_CHART_JOBS_MAX];           /* the job each worker was last seen drawing */
  struct timespec watch_at[PF_CHART_JOBS_MAX]; /* since when */
  uint64_t fail_job; /* the failure reported: the lowest job (n: not a job's) */
  pf_err fail;
  pf_err intr; /* the interrupt, as pf_ctx_check_interrupt said it */
} pool;

/* ------------------------------------------------------------ worker count */

pf_status pf_chart_jobs_workers(int requested, int *out, pf_err *err) {
  if (requested > 0) {
    *out = requested < PF_CHART_JOBS_MAX ? requested : PF_CHART_JOBS_MAX;
    return PF_OK;
  }
  const char *env = getenv(PF_CHART_JOBS_ENV);
  if (env && *env) {
    char *end;
    errno = 0;
    long v = strtol(env, &end, 10);
    if (errno || *end || end == env || v < 1 || v > PF_CHART_JOBS_MAX)
      return pf_err_set(err, PF_ERR_INVALID,
                        "%s: expected a number of worker processes 1..%d (1 = draw the charts "
                        "in this process), got '%.40s'",
                        PF_CHART_JOBS_ENV, PF_CHART_JOBS_MAX, env);
    *out = (int)v;
    return PF_OK;
  }
  int t = omp_get_max_threads(); /* in the parent, before any fork */
  *out = t < 1 ? 1 : t > PF_CHART_JOBS_MAX ? PF_CHART_JOBS_MAX : t;
  return PF_OK;
}

pf_status pf_chart_jobs_timeout(double *out, pf_err *err) {
  const char *env = getenv(PF_CHART_TIMEOUT_ENV);
  *out = PF_CHART_TIMEOUT_DEFAULT;
  if (!env || !*env) return PF_OK;
  char *end;
  errno = 0;
  const double v = strtod(env, &end);
  if (errno || *end || end == env || !(v >= 0 && v <= 1e6))
    return pf_err_set(err, PF_ERR_INVALID,
                      "%s: expected the seconds one chart may take, 0 to 1000000 (0 = no "
                      "limit), got '%.40s'",
                      PF_CHART_TIMEOUT_ENV, env);
  *out = v > 0 ? v : -1.0;
  return PF_OK;
}

/* ------------------------------------------------------------ in this process */

static pf_status run_here(const pf_chart_jobs *j, pf_err *err) {
  for (size_t i = 0; i < j->n; i++) {
    pf_status st = pf_ctx_check_interrupt(j->ctx, err);
    if (!st) st = j->draw(i, j->user_data, err);
    if (st) return st;
    if (j->drawn) j->drawn[i] = 1;
    pf_ctx_progress(j->ctx, j->what, i + 1, j->n);
  }
  return PF_OK;
}

/* ------------------------------------------------------------ worker */

static int write_all(int fd, const void *p, size_t n) {
  const char *c = p;
  while (n) {
    ssize_t w = write(fd, c, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    c += w;
    n -= (size_t)w;
  }
  return 0;
}

static _Noreturn void worker(const pf_chart_jobs *j, shared *sh, int w, int fd) {
  static result r; /* static: the stack stays small; one per process */
  for (;;) {
    if (atomic_load(&sh->stop) || (j->ctx && j->ctx->interrupt && *j->ctx->interrupt)) break;
    uint64_t i = atomic_fetch_add(&sh->next, 1);
    if (i >= j->n) break;
    atomic_store(&sh->current[w], i);
    pf_err e = {0};
    memset(&r, 0, sizeof r);
    r.job = i;
    r.worker = w;
    r.code = (int32_t)j->draw(i, j->user_data, &e);
    if (r.code != PF_OK) {
      atomic_store(&sh->stop, 1);
      memcpy(r.msg, e.msg, sizeof r.msg);
      r.msg[sizeof r.msg - 1] = '\0';
    }
    if (write_all(fd, &r, sizeof r) != 0) _exit(3); /* the parent is gone */
    atomic_store(&sh->current[w], NO_JOB);
  }
  _exit(0);
}

/* ------------------------------------------------------------ parent */

/* Keep the failure of the lowest job. */
__attribute__((format(printf, 4, 5))) static void fail(pool *p, uint64_t job, pf_status code,
                                                       const char *fmt, ...) {
  atomic_store(&p->sh->stop, 1);
  if (p->failed && p->fail_job <= job) return;
  p->failed = 1;
  p->fail_job = job;
  p->fail.code = code;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(p->fail.msg, sizeof p->fail.msg, fmt, ap);
  va_end(ap);
}

static void take(pool *p, result *r) {
  const pf_chart_jobs *j = p->j;
  r->msg[sizeof r->msg - 1] = '\0';
  if (r->job >= j->n || r->worker < 0 || r->worker >= p->nw) {
    fail(p, j->n, PF_ERR_UNSUPPORTED, "chart workers: a malformed result (job %llu, worker %d)",
         (unsigned long long)r->job, (int)r->worker);
    return;
  }
  p->last[r->worker] = r->job;
  if (r->code != PF_OK) {
    pf_status code =
        r->code > PF_OK && r->code <= PF_ERR_INTERRUPTED ? (pf_status)r->code : PF_ERR_UNSUPPORTED;
    fail(p, r->job, code, "%s", r->msg[0] ? r->msg : "the chart could not be drawn");
    return;
  }
  p->done++;
  if (j->drawn) j->drawn[r->job] = 1;
  pf_ctx_progress(j->ctx, j->what, p->done, j->n);
}

/* A worker that ended: anything but exit status 0 fails the batch, naming the
 * chart it was drawing (if any) and removing that chart's temporary file. */
static void ended(pool *p, int w, int status) {
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return;
  char how[96];
  if (WIFSIGNALED(status))
    snprintf(how, sizeof how, "was killed by signal %d (%s)", WTERMSIG(status),
             strsignal(WTERMSIG(status)));
  else
    snprintf(how, sizeof how, "exited with status %d",
             WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  uint64_t job = atomic_load(&p->sh->current[w]);
  if (job != NO_JOB && job != p->last[w] && job < p->j->n) {
    const char *path = p->j->path(job, p->j->user_data);
    chart_remove_temps(path);
    if (p->broken || p->killed) return; /* killed by us: the pipe's failure or the interrupt */
    fail(p, job, PF_ERR_UNSUPPORTED, "%s: the worker process drawing this chart (pid %d) %s", path,
         (int)p->pid[w], how);
  } else if (!p->broken && !p->killed) {
    fail(p, p->j->n, PF_ERR_UNSUPPORTED, "chart worker process %d (pid %d) %s between charts", w,
         (int)p->pid[w], how);
  }
}

/* Wait for the workers (flags 0) or collect those that ended (WNOHANG). */
static void reap(pool *p, int flags) {
  for (int w = 0; w < p->nw; w++) {
    if (!p->pid[w]) continue;
    int status = 0;
    pid_t r;
    do
      r = waitpid(p->pid[w], &status, flags);
    while (r < 0 && errno == EINTR);
    if (r == 0) continue; /* still drawing */
    if (r > 0) ended(p, w, status);
    p->pid[w] = 0; /* r < 0: not ours to wait for any more (SIGCHLD ignored) */
  }
}

static double seconds_since(const struct timespec *t) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (double)(now.tv_sec - t->tv_sec) + 1e-9 * (double)(now.tv_nsec - t->tv_nsec);
}

/* Kill the workers whose chart has taken longer than the limit; the batch fails
 * naming the chart (ended() removes its temporary when the worker is reaped). */
static void watchdog(pool *p) {
  if (p->limit <= 0) return;
  for (int w = 0; w < p->nw; w++) {
    if (!p->pid[w]) continue;
    const uint64_t job = atomic_load(&p->sh->current[w]);
    if (job != p->watch[w]) {
      p->watch[w] = job;
      clock_gettime(CLOCK_MONOTONIC, &p->watch_at[w]);
      continue;
    }
    if (job == NO_JOB || job >= p->j->n || seconds_since(&p->watch_at[w]) <= p->limit) continue;
    kill(p->pid[w], SIGKILL);
    fail(p, job, PF_ERR_UNSUPPORTED,
         "%s: the chart was still being drawn after %g s; its worker process (pid %d) was "
         "killed (%s sets the limit in seconds, 0 = none)",
         p->j->path(job, p->j->user_data), p->limit, (int)p->pid[w], PF_CHART_TIMEOUT_ENV);
    p->watch[w] = NO_JOB; /* killed once */
  }
}

/* Read results until every worker has closed its end of the pipe. */
static void collect(pool *p) {
  result r;
  size_t have = 0;
  struct pollfd pfd = {.fd = p->fd, .events = POLLIN};
  for (;;) {
    if (!p->interrupted && pf_ctx_check_interrupt(p->j->ctx, &p->intr)) {
      p->interrupted = 1;
      atomic_store(&p->sh->stop, 1);
      clock_gettime(CLOCK_MONOTONIC, &p->intr_at);
    }
    if (p->interrupted && !p->killed) { /* a second for the charts being drawn, then kill */
      if (seconds_since(&p->intr_at) > 1.0) {
        p->killed = 1;
        for (int w = 0; w < p->nw; w++)
          if (p->pid[w]) kill(p->pid[w], SIGKILL);
      }
    }
    int ready = poll(&pfd, 1, 100);
    if (ready < 0 && errno != EINTR) {
      fail(p, p->j->n, PF_ERR_IO, "chart workers: poll: %s", strerror(errno));
      p->broken = 1;
      break;
    }
    if (ready > 0) {
      ssize_t k = read(p->fd, (char *)&r + have, sizeof r - have);
      if (k < 0 && errno != EINTR && errno != EAGAIN) {
        fail(p, p->j->n, PF_ERR_IO, "chart workers: reading the results: %s", strerror(errno));
        p->broken = 1;
        break;
      }
      if (k == 0) break; /* EOF: every worker has ended */
      if (k > 0 && (have += (size_t)k) == sizeof r) {
        take(p, &r);
        have = 0;
      }
    }
    reap(p, WNOHANG);
    watchdog(p);
  }
  if (have && !p->failed)
    fail(p, p->j->n, PF_ERR_UNSUPPORTED, "chart workers: a result was cut short");
}

/* Fork up to `want` workers; returns how many started. */
static int start(pool *p, int want, int wfd) {
  pf_dist_settle(); /* no fork while MPI may still be starting in its thread */
  fflush(NULL);
  chart_fork_prepare();
  for (int w = 0; w < want; w++) {
    pid_t pid = fork();
    if (pid == 0) {
      chart_fork_child();
      close(p->fd);
      worker(p->j, p->sh, w, wfd);
    }
    if (pid < 0) break; /* fewer workers; those started take every job */
    p->pid[w] = pid;
    p->nw++;
  }
  chart_fork_parent();
  return p->nw;
}

pf_status pf_chart_jobs_run(const pf_chart_jobs *j, int *used, pf_err *err) {
  int want = j->workers;
  if (used) *used = 1;
  if (j->n == 0) return PF_OK;
  if (want <= 0) {
    pf_status st = pf_chart_jobs_workers(0, &want, err);
    if (st) return st;
  }
  if (want > PF_CHART_JOBS_MAX) want = PF_CHART_JOBS_MAX;
  if ((size_t)want > j->n) want = (int)j->n;
  if (want <= 1 && !j->isolate) return run_here(j, err);
  pool p = {.j = j, .fd = -1, .limit = j->timeout_s};
  if (p.limit == 0) {
    pf_status st = pf_chart_jobs_timeout(&p.limit, err);
    if (st) return st;
  }
  int fds[2];
  p.sh = mmap(NULL, sizeof *p.sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p.sh == MAP_FAILED) return run_here(j, err);
  atomic_init(&p.sh->next, 0);
  atomic_init(&p.sh->stop, 0);
  for (int w = 0; w < PF_CHART_JOBS_MAX; w++) {
    atomic_init(&p.sh->current[w], NO_JOB);
    p.last[w] = NO_JOB;
    p.watch[w] = NO_JOB;
  }
  if (pipe2(fds, O_CLOEXEC) != 0) {
    munmap(p.sh, sizeof *p.sh);
    return run_here(j, err);
  }
  p.fd = fds[0];
  int nw = start(&p, want, fds[1]);
  close(fds[1]); /* the workers hold the write ends now */
  if (nw == 0) {
    close(p.fd);
    munmap(p.sh, sizeof *p.sh);
    return run_here(j, err);
  }
  collect(&p);
  for (int w = 0; p.broken && w < p.nw; w++) /* they could block on a full pipe */
    if (p.pid[w]) kill(p.pid[w], SIGKILL);
  reap(&p, 0);
  close(p.fd);
  munmap(p.sh, sizeof *p.sh);
  if (used) *used = nw;
  if (p.failed) {
    if (err) *err = p.fail;
    return p.fail.code;
  }
  if (p.interrupted) {
    if (err) *err = p.intr;
    return p.intr.code;
  }
  if (p.done != j->n)
    return pf_err_set(err, PF_ERR_UNSUPPORTED, "chart workers: %zu of %zu charts were not drawn",
                      j->n - p.done, j->n);
  return PF_OK;
}

/* ------------------------------------------------------------ one chart */

typedef struct one_job {
  const char *path;
  pf_chart_job_fn draw;
  void *user_data;
} one_job;

static pf_status one_draw(size_t i, void *ud, pf_err *err) {
  const one_job *o = ud;
  return o->draw(i, o->user_data, err);
}

static const char *one_path(size_t i, void *ud) {
  (void)i;
  return ((const one_job *)ud)->path;
}

pf_status pf_chart_one(const pf_ctx *ctx, const char *path, pf_chart_job_fn draw, void *user_data,
                       pf_err *err) {
  int workers = 0;
  pf_status st = pf_chart_jobs_workers(0, &workers, err);
  if (st) return st;
  const char *env = getenv(PF_CHART_JOBS_ENV);
  one_job o = {.path = path, .draw = draw, .user_data = user_data};
  pf_chart_jobs j = {.n = 1,
                     .draw = one_draw,
                     .path = one_path,
                     .user_data = &o,
                     .workers = 1,
                     .ctx = ctx,
                     .what = "chart",
                     .isolate = !(env && *env && workers == 1)};
  return pf_chart_jobs_run(&j, NULL, err);
}
