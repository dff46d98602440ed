/* check_charts_jobs.c — reports/charts_jobs: a batch of charts drawn by forked
 * worker processes.
 *
 * The jobs here write small text files instead of charts (the runner does not
 * care what a job draws), so the suite is fast; check_charts.c draws real
 * charts both ways and compares the bytes. The binary is linked with
 * -Wl,--wrap=fork (CMakeLists.txt) so that a fork can be made to fail.
 *
 * What is checked: every job runs once and its file is there; the jobs run in
 * other processes (their pids, recorded in shared memory) or in this one
 * (1 worker, PFRUN_PLOT_JOBS=1, a failed first fork); a job's error comes back
 * with its code and message, the lowest failing job wins; a worker killed by a
 * signal is reported naming its chart, and the chart's temporary file is
 * removed; progress is reported in this process, up to n; an interrupt stops
 * the batch; no child is left unwaited for (waitpid(-1) finds none).
 */
#include <errno.h>
#include <omp.h>
#include <signal.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../reports/charts_jobs.h"
#include "testutil.h"

/* ------------------------------------------------------------ fork failures */

pid_t __real_fork(void);
static int g_fork_calls, g_fork_fail_at; /* 0: never fail */

pid_t __wrap_fork(void) {
  if (g_fork_fail_at && ++g_fork_calls == g_fork_fail_at) {
    errno = EAGAIN;
    return -1;
  }
  return __real_fork();
}

/* ------------------------------------------------------------ the jobs */

enum { N_MAX = 16 };
enum { OK, FAIL, KILL, EXIT, HANG };

typedef struct batch {
  char *dir;
  char paths[N_MAX][600];
  int how[N_MAX];     /* what job i does */
  pid_t *pid;         /* [N_MAX] shared: the process that ran job i */
  int progress_calls; /* in this process */
  uint64_t last_done;
  volatile int interrupt;
  uint64_t interrupt_at; /* progress done count that sets interrupt (0: never) */
  unsigned char drawn[N_MAX]; /* the runner's flags */
} batch;

static pf_status job(size_t i, void *ud, pf_err *err) {
  batch *b = ud;
  b->pid[i] = getpid();
  if (b->how[i] == FAIL)
    return pf_err_set(err, PF_ERR_IO, "%s: cannot write job %zu", b->paths[i], i);
  if (b->how[i] == KILL || b->how[i] == EXIT || b->how[i] == HANG) {
    char tmp[700]; /* what chart_run leaves while PLplot draws */
    snprintf(tmp, sizeof tmp, "%s/.j%zu.txt.Ab12Cd", b->dir, i);
    pf_test_write(tmp, "half a chart");
    if (b->how[i] == KILL) raise(SIGKILL);
    while (b->how[i] == HANG)
      pause();
    _exit(5);
  }
  usleep(500); /* a chart takes time: the tests of stopping have something to stop */
  char text[32];
  snprintf(text, sizeof text, "job %zu\n", i);
  pf_test_write(b->paths[i], text);
  return PF_OK;
}

static const char *job_path(size_t i, void *ud) {
  return ((batch *)ud)->paths[i];
}

static void on_progress(void *ud, const char *what, uint64_t done, uint64_t total) {
  batch *b = ud;
  ck_assert_str_eq(what, "plot");
  ck_assert_uint_eq(total, N_MAX);
  ck_assert_uint_gt(done, b->last_done); /* counts up */
  b->last_done = done;
  b->progress_calls++;
  if (b->interrupt_at && done >= b->interrupt_at) b->interrupt = 1;
}

static batch *batch_new(void) {
  batch *b = calloc(1, sizeof *b);
  b->dir = pf_test_tmpdir("chart-jobs");
  b->pid =
      mmap(NULL, N_MAX * sizeof *b->pid, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  ck_assert(b->pid != MAP_FAILED);
  for (int i = 0; i < N_MAX; i++)
    snprintf(b->paths[i], sizeof b->paths[i], "%s/j%d.txt", b->dir, i);
  return b;
}

static void batch_free(batch *b) {
  munmap(b->pid, N_MAX * sizeof *b->pid);
  pf_test_rmtree(b->dir);
  free(b->dir);
  free(b);
}

/* Run the batch with `workers` and the chart time limit `timeout_s` (0: the
 * environment's); *used receives the worker count. */
static pf_status run_limited(batch *b, int workers, double timeout_s, int *used, pf_err *err) {
  memset(b->pid, 0, N_MAX * sizeof *b->pid);
  b->progress_calls = 0;
  b->last_done = 0;
  b->interrupt = 0;
  memset(b->drawn, 0, sizeof b->drawn);
  pf_ctx ctx = {.progress = on_progress, .user_data = b, .interrupt = &b->interrupt};
  pf_chart_jobs j = {.n = N_MAX,
                     .draw = job,
                     .path = job_path,
                     .user_data = b,
                     .workers = workers,
                     .ctx = &ctx,
                     .what = "plot",
                     .drawn = b->drawn,
                     .timeout_s = timeout_s};
  pf_status st = pf_chart_jobs_run(&j, used, err);
  /* every worker was waited for */
  errno = 0;
  ck_assert_int_eq(waitpid(-1, NULL, WNOHANG), -1);
  ck_assert_int_eq(errno, ECHILD);
  return st;
}

static pf_status run(batch *b, int workers, int *used, pf_err *err) {
  return run_limited(b, workers, 0, used, err);
}

static void assert_all_drawn(batch *b, int here) {
  for (int i = 0; i < N_MAX; i++) {
    char *t = pf_test_read(b->paths[i], NULL);
    char want[32];
    snprintf(want, sizeof want, "job %d\n", i);
    ck_assert_msg(t && strcmp(t, want) == 0, "%s: %s", b->paths[i], t ? t : "not written");
    free(t);
    ck_assert_msg(here ? b->pid[i] == getpid() : b->pid[i] != getpid() && b->pid[i] > 0,
                  "job %d ran in pid %d (this process: %d)", i, (int)b->pid[i], (int)getpid());
    ck_assert_int_eq(b->drawn[i], 1);
  }
  ck_assert_int_eq(b->progress_calls, N_MAX);
  ck_assert_uint_eq(b->last_done, N_MAX);
}

/* ------------------------------------------------------------ tests */

START_TEST(test_workers_count) {
  int w = 0;
  pf_err err = {0};
  unsetenv(PF_CHART_JOBS_ENV);
  ck_assert_int_eq(pf_chart_jobs_workers(3, &w, &err), PF_OK);
  ck_assert_int_eq(w, 3);
  ck_assert_int_eq(pf_chart_jobs_workers(1000, &w, &err), PF_OK);
  ck_assert_int_eq(w, PF_CHART_JOBS_MAX);
  ck_assert_int_eq(pf_chart_jobs_workers(0, &w, &err), PF_OK);
  int t = omp_get_max_threads();
  ck_assert_int_eq(w, t < PF_CHART_JOBS_MAX ? t : PF_CHART_JOBS_MAX);
  setenv(PF_CHART_JOBS_ENV, "5", 1);
  ck_assert_int_eq(pf_chart_jobs_workers(0, &w, &err), PF_OK);
  ck_assert_int_eq(w, 5);
  ck_assert_int_eq(pf_chart_jobs_workers(2, &w, &err), PF_OK); /* an explicit count wins */
  ck_assert_int_eq(w, 2);
  static const char *const bad[] = {"0", "-2", "many", "3x", "65"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    setenv(PF_CHART_JOBS_ENV, bad[i], 1);
    ck_assert_int_eq(pf_chart_jobs_workers(0, &w, &err), PF_ERR_INVALID);
    pf_assert_err(err, "PFRUN_PLOT_JOBS: expected a number of worker processes 1..64");
    pf_assert_err(err, bad[i]);
  }
  /* a bad variable fails the batch before anything is drawn */
  batch *b = batch_new();
  ck_assert_int_eq(run(b, 0, NULL, &err), PF_ERR_INVALID);
  ck_assert_int_eq(b->progress_calls, 0);
  unsetenv(PF_CHART_JOBS_ENV);
  batch_free(b);
}
END_TEST

START_TEST(test_parallel_and_serial) {
  batch *b = batch_new();
  pf_err err = {0};
  int used = 0;
  ck_assert_msg(run(b, 3, &used, &err) == PF_OK, "%s", err.msg);
  ck_assert_int_eq(used, 3);
  assert_all_drawn(b, 0);
  ck_assert_msg(run(b, 1, &used, &err) == PF_OK, "%s", err.msg);
  ck_assert_int_eq(used, 1);
  assert_all_drawn(b, 1);
  setenv(PF_CHART_JOBS_ENV, "1", 1); /* forces one process */
  ck_assert_msg(run(b, 0, &used, &err) == PF_OK, "%s", err.msg);
  assert_all_drawn(b, 1);
  setenv(PF_CHART_JOBS_ENV, "2", 1);
  ck_assert_msg(run(b, 0, &used, &err) == PF_OK, "%s", err.msg);
  ck_assert_int_eq(used, 2);
  assert_all_drawn(b, 0);
  unsetenv(PF_CHART_JOBS_ENV);
  /* more workers than jobs: one per job at most */
  pf_chart_jobs one = {.n = 1, .draw = job, .path = job_path, .user_data = b, .workers = 4};
  ck_assert_int_eq(pf_chart_jobs_run(&one, &used, &err), PF_OK);
  ck_assert_int_eq(used, 1);
  ck_assert_int_eq(b->pid[0], getpid());
  batch_free(b);
}
END_TEST

START_TEST(test_fork_fails) {
  batch *b = batch_new();
  pf_err err = {0};
  int used = 0;
  g_fork_calls = 0, g_fork_fail_at = 1; /* no worker: everything in this process */
  ck_assert_msg(run(b, 3, &used, &err) == PF_OK, "%s", err.msg);
  ck_assert_int_eq(used, 1);
  assert_all_drawn(b, 1);
  g_fork_calls = 0, g_fork_fail_at = 2; /* one worker draws everything */
  ck_assert_msg(run(b, 3, &used, &err) == PF_OK, "%s", err.msg);
  ck_assert_int_eq(used, 1);
  assert_all_drawn(b, 0);
  for (int i = 1; i < N_MAX; i++)
    ck_assert_int_eq(b->pid[i], b->pid[0]);
  g_fork_fail_at = 0;
  batch_free(b);
}
END_TEST

START_TEST(test_job_errors) {
  batch *b = batch_new();
  pf_err err = {0};
  for (int workers = 1; workers <= 3; workers += 2) {
    b->how[4] = FAIL, b->how[9] = FAIL;
    ck_assert_int_eq(run(b, workers, NULL, &err), PF_ERR_IO);
    ck_assert_int_eq(err.code, PF_ERR_IO);
    pf_assert_err(err, "j4.txt: cannot write job 4"); /* the first in job order */
    if (workers == 1) {                               /* in order, and nothing after the failure */
      ck_assert_uint_eq(b->last_done, 4);
      ck_assert(b->pid[5] == 0);
    }
    /* the flags name exactly the charts drawn (what a caller removes after a failure) */
    uint64_t flagged = 0;
    for (int i = 0; i < N_MAX; i++) {
      flagged += b->drawn[i];
      if (b->drawn[i]) ck_assert_msg(b->how[i] == OK && b->pid[i] > 0, "job %d flagged", i);
      if (workers == 1) ck_assert_int_eq(b->drawn[i], i < 4);
    }
    ck_assert_uint_eq(flagged, b->last_done);
    b->how[4] = OK, b->how[9] = OK;
  }
  batch_free(b);
}
END_TEST

START_TEST(test_worker_killed) {
  batch *b = batch_new();
  pf_err err = {0};
  b->how[5] = KILL;
  ck_assert_int_eq(run(b, 3, NULL, &err), PF_ERR_UNSUPPORTED);
  pf_assert_err(err, b->paths[5]);
  pf_assert_err(err, "the worker process drawing this chart");
  pf_assert_err(err, "killed by signal 9");
  char tmp[700];
  snprintf(tmp, sizeof tmp, "%s/.j5.txt.Ab12Cd", b->dir);
  ck_assert_msg(access(tmp, F_OK) != 0, "%s: the temporary file is still there", tmp);
  b->how[5] = EXIT; /* a job that ends the process */
  ck_assert_int_eq(run(b, 2, NULL, &err), PF_ERR_UNSUPPORTED);
  pf_assert_err(err, "j5.txt: the worker process drawing this chart");
  pf_assert_err(err, "exited with status 5");
  batch_free(b);
}
END_TEST

START_TEST(test_interrupt) {
  batch *b = batch_new();
  pf_err err = {0};
  for (int workers = 1; workers <= 2; workers++) {
    b->interrupt_at = 3;
    ck_assert_int_eq(run(b, workers, NULL, &err), PF_ERR_INTERRUPTED);
    pf_assert_err(err, "interrupted");
    if (workers == 1) ck_assert_uint_eq(b->last_done, 3);
  }
  b->interrupt_at = 0;
  batch_free(b);
}
END_TEST

/* One chart isolated in a worker (pf_chart_one; the plot and report steps): a
 * renderer that crashes fails the chart, this process goes on, and the chart's
 * temporary file is removed; PFRUN_PLOT_JOBS=1 draws it here. */
START_TEST(test_one_isolated) {
  batch *b = batch_new();
  memset(b->pid, 0, N_MAX * sizeof *b->pid);
  pf_err err = {0};
  b->how[0] = OK;
  unsetenv(PF_CHART_JOBS_ENV);
  ck_assert_msg(pf_chart_one(NULL, b->paths[0], job, b, &err) == PF_OK, "%s", err.msg);
  ck_assert_msg(b->pid[0] > 0 && b->pid[0] != getpid(), "drawn in pid %d (this process: %d)",
                (int)b->pid[0], (int)getpid());
  b->how[0] = KILL; /* what a SIGSEGV or GLib's SIGTRAP in the renderer does */
  ck_assert_int_eq(pf_chart_one(NULL, b->paths[0], job, b, &err), PF_ERR_UNSUPPORTED);
  pf_assert_err(err, "j0.txt: the worker process drawing this chart");
  pf_assert_err(err, "killed by signal 9");
  char tmp[700];
  snprintf(tmp, sizeof tmp, "%s/.j0.txt.Ab12Cd", b->dir);
  ck_assert_msg(access(tmp, F_OK) != 0, "%s: the temporary file is still there", tmp);
  errno = 0;
  ck_assert_int_eq(waitpid(-1, NULL, WNOHANG), -1); /* the worker was waited for */
  b->how[0] = OK;
  setenv(PF_CHART_JOBS_ENV, "1", 1);
  ck_assert_msg(pf_chart_one(NULL, b->paths[0], job, b, &err) == PF_OK, "%s", err.msg);
  ck_assert_int_eq(b->pid[0], getpid());
  unsetenv(PF_CHART_JOBS_ENV);
  batch_free(b);
}
END_TEST

/* A worker that never finishes its chart (pango's font set-up looping under a
 * memory cap was seen to) does not hold an interrupted batch: a second after the
 * interrupt it is killed, the batch says interrupted, its temporary is removed. */
static void *interrupt_later(void *ud) {
  usleep(300 * 1000);
  *(volatile int *)ud = 1;
  return NULL;
}

static _Noreturn pf_status hang_job(size_t i, void *ud, pf_err *err) {
  (void)err;
  batch *b = ud;
  b->pid[i] = getpid();
  char tmp[700];
  snprintf(tmp, sizeof tmp, "%s/.j%zu.txt.Ab12Cd", b->dir, i);
  pf_test_write(tmp, "half a chart");
  for (;;)
    pause();
}

START_TEST(test_interrupt_kills_stuck_worker) {
  batch *b = batch_new();
  volatile int stop = 0;
  pf_ctx ctx = {.interrupt = &stop};
  pf_chart_jobs j = {.n = 2,
                     .draw = hang_job,
                     .path = job_path,
                     .user_data = b,
                     .workers = 2,
                     .ctx = &ctx,
                     .what = "plot",
                     .isolate = 1};
  pthread_t t;
  ck_assert_int_eq(pthread_create(&t, NULL, interrupt_later, (void *)&stop), 0);
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  pf_err err = {0};
  ck_assert_int_eq(pf_chart_jobs_run(&j, NULL, &err), PF_ERR_INTERRUPTED);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  pthread_join(t, NULL);
  pf_assert_err(err, "interrupted");
  const double s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
  ck_assert_msg(s < 20.0, "the batch took %.1f s to stop", s);
  errno = 0;
  ck_assert_int_eq(waitpid(-1, NULL, WNOHANG), -1);
  ck_assert_int_eq(errno, ECHILD);
  for (int i = 0; i < 2; i++) {
    char tmp[700];
    snprintf(tmp, sizeof tmp, "%s/.j%d.txt.Ab12Cd", b->dir, i);
    ck_assert_msg(access(tmp, F_OK) != 0, "%s: the temporary file is still there", tmp);
  }
  batch_free(b);
}
END_TEST

/* A chart that outlasts the time limit: its worker is killed, the batch fails
 * naming the chart and the limit (not "killed by signal 9"), its temporary is
 * removed, the charts before it are there, and nothing waits for ever. The
 * limit comes from the batch, or from PFRUN_PLOT_TIMEOUT. */
static double elapsed(const struct timespec *t0) {
  struct timespec t1;
  clock_gettime(CLOCK_MONOTONIC, &t1);
  return (double)(t1.tv_sec - t0->tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0->tv_nsec);
}

START_TEST(test_timeout_kills_stuck_worker) {
  batch *b = batch_new();
  for (int env = 0; env < 2; env++) {
    memset(b->how, 0, sizeof b->how);
    b->how[3] = HANG;
    if (env) setenv(PF_CHART_TIMEOUT_ENV, "0.4", 1);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pf_err err = {0};
    ck_assert_int_eq(run_limited(b, 2, env ? 0 : 0.5, NULL, &err), PF_ERR_UNSUPPORTED);
    unsetenv(PF_CHART_TIMEOUT_ENV);
    const double s = elapsed(&t0);
    ck_assert_msg(s >= (env ? 0.4 : 0.5) && s < 20.0, "the batch took %.1f s", s);
    pf_assert_err(err, b->paths[3]);
    pf_assert_err(err, env ? "still being drawn after 0.4 s" : "still being drawn after 0.5 s");
    pf_assert_err(err, PF_CHART_TIMEOUT_ENV);
    char tmp[700];
    snprintf(tmp, sizeof tmp, "%s/.j3.txt.Ab12Cd", b->dir);
    ck_assert_msg(access(tmp, F_OK) != 0, "%s: the temporary file is still there", tmp);
    ck_assert_int_eq(b->drawn[3], 0);
    for (int i = 0; i < 3; i++) /* taken before it, drawn long before the limit */
      ck_assert_msg(b->drawn[i], "chart %d", i);
  }
  batch_free(b);
}
END_TEST

START_TEST(test_timeout_setting) {
  double v = 0;
  pf_err err = {0};
  unsetenv(PF_CHART_TIMEOUT_ENV);
  ck_assert_int_eq(pf_chart_jobs_timeout(&v, &err), PF_OK);
  ck_assert_double_eq(v, PF_CHART_TIMEOUT_DEFAULT);
  setenv(PF_CHART_TIMEOUT_ENV, "2.5", 1);
  ck_assert_int_eq(pf_chart_jobs_timeout(&v, &err), PF_OK);
  ck_assert_double_eq(v, 2.5);
  setenv(PF_CHART_TIMEOUT_ENV, "0", 1); /* no limit */
  ck_assert_int_eq(pf_chart_jobs_timeout(&v, &err), PF_OK);
  ck_assert(v < 0);
  static const char *bad[] = {"abc", "-1", "1e7", "5s", "nan"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    setenv(PF_CHART_TIMEOUT_ENV, bad[i], 1);
    ck_assert_int_eq(pf_chart_jobs_timeout(&v, &err), PF_ERR_INVALID);
    pf_assert_err(err, "PFRUN_PLOT_TIMEOUT: expected the seconds one chart may take");
    pf_assert_err(err, bad[i]);
  }
  /* a batch with a bad setting fails before drawing anything */
  batch *b = batch_new();
  ck_assert_int_eq(run(b, 2, NULL, &err), PF_ERR_INVALID);
  for (int i = 0; i < N_MAX; i++)
    ck_assert_int_eq(b->drawn[i], 0);
  unsetenv(PF_CHART_TIMEOUT_ENV);
  batch_free(b);
}
END_TEST

static Suite *make_suite(void) {
  Suite *s = suite_create("charts_jobs");
  TCase *tc = tcase_create("jobs");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_workers_count);
  tcase_add_test(tc, test_parallel_and_serial);
  tcase_add_test(tc, test_fork_fails);
  tcase_add_test(tc, test_job_errors);
  tcase_add_test(tc, test_worker_killed);
  tcase_add_test(tc, test_interrupt);
  tcase_add_test(tc, test_one_isolated);
  tcase_add_test(tc, test_interrupt_kills_stuck_worker);
  tcase_add_test(tc, test_timeout_kills_stuck_worker);
  tcase_add_test(tc, test_timeout_setting);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return pf_test_main(make_suite);
}
