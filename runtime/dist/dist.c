/* dist.c — see dist.h. Every collective here is called by every rank in the
 * same order (the ops are run in the same order on every rank). */
#include "dist.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef PF_HAVE_MPI
#include <mpi.h>
#include <pthread.h>
#endif

static int g_rank = 0, g_size = 1, g_on = 0;
static char g_shared_msg[PF_ERR_MSG_MAX]; /* the last error every rank was given at once */

int pf_dist_error_shared(const char *msg) {
  return g_shared_msg[0] && msg && strstr(msg, g_shared_msg) != NULL;
}

int pf_dist_rank(void) {
  return g_rank;
}
int pf_dist_size(void) {
  return g_size;
}
int pf_dist_writer(void) {
  return g_rank == 0;
}

int pf_dist_launched(void) {
  static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"};
  for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
    const char *v = getenv(vars[i]);
    if (v && *v) return 1;
  }
  return 0;
}

void pf_dist_range(int64_t n, int64_t *lo, int64_t *hi) {
  *lo = n * g_rank / g_size;
  *hi = n * (g_rank + 1) / g_size;
}

#ifdef PF_HAVE_MPI

int pf_dist_available(void) {
  return 1;
}

static pf_status mpi_err(pf_err *err, int rc, const char *what) {
  char msg[MPI_MAX_ERROR_STRING] = "";
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  return pf_err_set(err, PF_ERR_IO, "MPI %s failed on rank %d of %d: %s", what, g_rank, g_size,
                    msg);
}

/* Starting MPI (MPI_Init: loading its components, meeting the launcher) takes
 * ~0.07 s per rank here (bench/README.md). When the launcher says this rank's
 * number and the number of ranks in the environment, the ranks start working
 * at once on that and MPI starts in a helper thread; the first call that needs
 * MPI waits for it (init_wait) and checks that MPI agrees. MPI is asked for
 * MPI_THREAD_SERIALIZED: the main thread makes the calls in between while the
 * helper waits. The standard wants MPI_Finalize on the thread that started MPI
 * (some implementations refuse it elsewhere), so the helper stays until
 * pf_dist_finish and finalizes. */
static pthread_t g_init_th;
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cv = PTHREAD_COND_INITIALIZER;
static int g_thread = 0;  /* the helper exists (joined by pf_dist_finish) */
static int g_started = 0; /* its MPI_Init_thread has returned */
static int g_leave = 0;   /* 1: finalize and end; 2: end without finalizing */
static int g_init_pending = 0, g_init_rc = MPI_SUCCESS, g_env_rank = -1, g_env_size = -1;
static char g_init_msg[200];

static void *init_main(void *arg) {
  (void)arg;
  int provided = 0;
  int rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_SERIALIZED, &provided);
  pthread_mutex_lock(&g_mu);
  g_init_rc = rc;
  if (rc == MPI_SUCCESS && provided < MPI_THREAD_SERIALIZED) {
    snprintf(g_init_msg, sizeof g_init_msg,
             "MPI gives thread level %d, pfrun needs MPI_THREAD_SERIALIZED (%d)", provided,
             MPI_THREAD_SERIALIZED);
    g_init_rc = MPI_ERR_OTHER;
  }
  g_started = 1;
  pthread_cond_broadcast(&g_cv);
  while (!g_leave)
    pthread_cond_wait(&g_cv, &g_mu);
  const int fin = g_leave == 1;
  pthread_mutex_unlock(&g_mu);
  if (fin) MPI_Finalize();
  return NULL;
}

/* The launcher's rank and size for this process, or 0. */
static int env_rank_size(int *rank, int *size) {
  static const char *const vars[][2] = {{"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"},
                                        {"PMI_RANK", "PMI_SIZE"},
                                        {"SLURM_PROCID", "SLURM_NTASKS"}};
  for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
    const char *r = getenv(vars[i][0]), *n = getenv(vars[i][1]);
    char *e1 = NULL, *e2 = NULL;
    if (!r || !n || !*r || !*n) continue;
    long a = strtol(r, &e1, 10), b = strtol(n, &e2, 10);
    if (*e1 || *e2 || a < 0 || b < 1 || a >= b || b > (1L << 24)) continue;
    *rank = (int)a;
    *size = (int)b;
    return 1;
  }
  return 0;
}

/* PF_OK, or (every time it is asked: a rank must not go on with its share alone)
 * why MPI did not start. */
static pf_status init_failed(pf_err *err) {
  if (g_init_rc == MPI_SUCCESS) return PF_OK;
  if (!g_init_msg[0]) snprintf(g_init_msg, sizeof g_init_msg, "error %d", g_init_rc);
  return pf_err_set(err, PF_ERR_IO, "MPI failed to start on rank %d of %d: %s", g_rank, g_size,
                    g_init_msg);
}

static pf_status init_done(pf_err *err) {
  if (g_init_rc != MPI_SUCCESS) return init_failed(err);
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  int r = 0, n = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  MPI_Comm_size(MPI_COMM_WORLD, &n);
  if (g_env_rank >= 0 && (r != g_env_rank || n != g_env_size)) {
    snprintf(g_init_msg, sizeof g_init_msg,
             "the launcher's environment said rank %d of %d, MPI says rank %d of %d", g_env_rank,
             g_env_size, r, n);
    g_init_rc = MPI_ERR_OTHER; /* the work was split on the environment's numbers */
    return init_failed(err);
  }
  g_rank = r;
  g_size = n;
  return PF_OK;
}

/* Wait for MPI when it is starting in the helper thread. */
static pf_status init_wait(pf_err *err) {
  if (!g_init_pending) return init_failed(err);
  g_init_pending = 0;
  pthread_mutex_lock(&g_mu);
  while (!g_started)
    pthread_cond_wait(&g_cv, &g_mu);
  pthread_mutex_unlock(&g_mu);
  return init_done(err);
}

pf_status pf_dist_init(int *argc, char ***argv, pf_err *err) {
  if (g_on || !pf_dist_launched()) return PF_OK;
  g_on = 1;
  if (env_rank_size(&g_env_rank, &g_env_size)) {
    g_rank = g_env_rank;
    g_size = g_env_size;
    if (pthread_create(&g_init_th, NULL, init_main, NULL) == 0) {
      g_init_pending = g_thread = 1;
      return PF_OK;
    }
  }
  int provided = 0;
  g_init_rc = MPI_Init_thread(argc, argv, MPI_THREAD_SERIALIZED, &provided);
  pf_status st = init_done(err);
  if (st) g_on = 0; /* main reports it and stops */
  return st;
}

void pf_dist_finish(void) {
  pf_err err = {0};
  const int ok = g_on && init_wait(&err) == PF_OK;
  if (g_thread) { /* MPI started there: it finalizes there */
    pthread_mutex_lock(&g_mu);
    g_leave = ok ? 1 : 2;
    pthread_cond_broadcast(&g_cv);
    pthread_mutex_unlock(&g_mu);
    pthread_join(g_init_th, NULL);
    g_thread = 0;
  } else if (ok) {
    MPI_Finalize();
  }
  g_on = 0;
}

void pf_dist_abort(int code) {
  pf_err err = {0};
  if (g_on && g_size > 1 && init_wait(&err) == PF_OK) MPI_Abort(MPI_COMM_WORLD, code);
}

void pf_dist_settle(void) {
  pf_err err = {0};
  if (g_on) (void)init_wait(&err); /* a failure comes back at the next exchange */
}

void pf_dist_barrier(void) {
  pf_err err = {0};
  if (g_on && g_size > 1 && init_wait(&err) == PF_OK) MPI_Barrier(MPI_COMM_WORLD);
}

/* Gather n elements of every rank on rank 0, add them in rank order there,
 * broadcast the sums. Chunks keep MPI's int counts and rank 0's buffer small. */
#define SUM_IMPL(NAME, T, MPIT)                                                                    \
  pf_status NAME(T *buf, int64_t n, pf_err *err) {                                                 \
    if (!g_on || g_size < 2 || n <= 0) return PF_OK;                                               \
    pf_status ist = init_wait(err);                                                                \
    if (ist != PF_OK) return ist;                                                                  \
    const int64_t chunk = ((int64_t)1 << 22);                                                      \
    T *all =                                                                                       \
        g_rank == 0 ? malloc(sizeof(T) * (size_t)g_size * (size_t)(n < chunk ? n : chunk)) : NULL; \
    int ok = g_rank != 0 || all != NULL, all_ok = 0;                                               \
    MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);                              \
    if (!all_ok) {                                                                                 \
      free(all);                                                                                   \
      return pf_err_set(err, PF_ERR_NOMEM, "MPI sum: rank 0 is out of memory");                    \
    }                                                                                              \
    for (int64_t at = 0; at < n; at += chunk) {                                                    \
      const int c = (int)(n - at < chunk ? n - at : chunk);                                        \
      int rc = MPI_Gather(buf + at, c, MPIT, all, c, MPIT, 0, MPI_COMM_WORLD);                     \
      if (rc != MPI_SUCCESS) {                                                                     \
        free(all);                                                                                 \
        return mpi_err(err, rc, "gather");                                                         \
      }                                                                                            \
      if (g_rank == 0)                                                                             \
        for (int i = 0; i < c; i++) {                                                              \
          T s = all[i];                                                                            \
          for (int r = 1; r < g_size; r++)                                                         \
            s += all[(size_t)r * (size_t)c + (size_t)i];                                           \
          buf[at + i] = s;                                                                         \
        }                                                                                          \
      if ((rc = MPI_Bcast(buf + at, c, MPIT, 0, MPI_COMM_WORLD)) != MPI_SUCCESS) {                 \
        free(all);                                                                                 \
        return mpi_err(err, rc, "broadcast");                                                      \
      }                                                                                            \
    }                                                                                              \
    free(all);                                                                                     \
    return PF_OK;                                                                                  \
  }

SUM_IMPL(pf_dist_sum_f32, float, MPI_FLOAT)
SUM_IMPL(pf_dist_sum_f64, double, MPI_DOUBLE)
SUM_IMPL(pf_dist_sum_i64, int64_t, MPI_INT64_T)

int pf_dist_all(int v) {
  pf_err err = {0};
  int all = v != 0;
  if (g_on && g_size > 1 && init_wait(&err) == PF_OK) {
    const int mine = v != 0;
    if (MPI_Allreduce(&mine, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD) != MPI_SUCCESS) all = 0;
  }
  return all;
}

/* Rank 0's digest to every rank; each says whether its own is the same; every
 * rank learns which differ and words the same message. */
pf_status pf_dist_same(const uint8_t digest[32], const char *what, pf_err *err) {
  if (!g_on || g_size < 2) return PF_OK;
  pf_status st = init_wait(err);
  if (st != PF_OK) return st;
  uint8_t root[32];
  memcpy(root, digest, sizeof root);
  int rc = MPI_Bcast(root, 32, MPI_BYTE, 0, MPI_COMM_WORLD);
  if (rc != MPI_SUCCESS) return mpi_err(err, rc, "broadcast");
  const int same = memcmp(root, digest, sizeof root) == 0;
  int *all = malloc(sizeof *all * (size_t)g_size), ok = all != NULL, all_ok = 0;
  MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  if (!all_ok) {
    free(all);
    return pf_err_set(err, PF_ERR_NOMEM, "MPI: a rank is out of memory");
  }
  if ((rc = MPI_Allgather(&same, 1, MPI_INT, all, 1, MPI_INT, MPI_COMM_WORLD)) != MPI_SUCCESS) {
    free(all);
    return mpi_err(err, rc, "allgather");
  }
  char list[160] = "";
  size_t o = 0;
  int n_diff = 0;
  for (int r = 1; r < g_size; r++) {
    if (all[r]) continue;
    if (n_diff++ < 8 && o < sizeof list)
      o += (size_t)snprintf(list + o, sizeof list - o, "%s%d", o ? ", " : "", r);
  }
  free(all);
  if (!n_diff) return PF_OK;
  snprintf(g_shared_msg, sizeof g_shared_msg,
           "%s differ between the ranks: rank%s %s%s read other inputs than rank 0 (every rank "
           "must read the same model and data files, e.g. from a shared file system)",
           what, n_diff > 1 ? "s" : "", list, n_diff > 8 ? ", ..." : "");
  return pf_err_set(err, PF_ERR_INVALID, "%s", g_shared_msg);
}

pf_status pf_dist_writer_outcome(pf_status st, pf_err *err) {
  if (!g_on || g_size < 2) return st;
  pf_err scratch = {0}; /* this rank's error, if any, stays in err */
  const pf_status ist = init_wait(st != PF_OK || !err ? &scratch : err);
  if (ist != PF_OK) return st != PF_OK ? st : ist;
  struct {
    int code;
    char msg[PF_ERR_MSG_MAX];
  } root = {0};
  if (g_rank == 0 && st != PF_OK) {
    root.code = (int)st;
    snprintf(root.msg, sizeof root.msg, "%s", err && err->msg[0] ? err->msg : pf_status_name(st));
  }
  const int rc = MPI_Bcast(&root, (int)sizeof root, MPI_BYTE, 0, MPI_COMM_WORLD);
  if (rc != MPI_SUCCESS) return st != PF_OK ? st : mpi_err(err, rc, "broadcast");
  if (root.code == PF_OK) return st;
  root.msg[sizeof root.msg - 1] = '\0';
  snprintf(g_shared_msg, sizeof g_shared_msg, "%s", root.msg);
  return pf_err_set(err, (pf_status)root.code, "%s", root.msg);
}

pf_status pf_dist_bcast(void *buf, size_t len, int root, pf_err *err) {
  if (!g_on || g_size < 2 || len == 0) return PF_OK;
  pf_status st = init_wait(err);
  if (st != PF_OK) return st;
  const size_t chunk = pf_dist_bcast_chunk();
  for (size_t at = 0; at < len; at += chunk) {
    const int n = (int)(len - at < chunk ? len - at : chunk);
    const int rc = MPI_Bcast((char *)buf + at, n, MPI_BYTE, root, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) return mpi_err(err, rc, "broadcast");
  }
  return PF_OK;
}

#else /* no MPI in this build: one rank */

int pf_dist_available(void) {
  return 0;
}
pf_status pf_dist_init(int *argc, char ***argv, pf_err *err) {
  (void)argc, (void)argv, (void)err;
  (void)g_on;
  return PF_OK;
}
void pf_dist_finish(void) {}
void pf_dist_abort(int code) {
  (void)code;
}
void pf_dist_barrier(void) {}
void pf_dist_settle(void) {}
pf_status pf_dist_sum_f32(float *buf, int64_t n, pf_err *err) {
  (void)buf, (void)n, (void)err;
  return PF_OK;
}
pf_status pf_dist_sum_f64(double *buf, int64_t n, pf_err *err) {
  (void)buf, (void)n, (void)err;
  return PF_OK;
}
pf_status pf_dist_sum_i64(int64_t *buf, int64_t n, pf_err *err) {
  (void)buf, (void)n, (void)err;
  return PF_OK;
}
pf_status pf_dist_bcast(void *buf, size_t len, int root, pf_err *err) {
  (void)buf, (void)len, (void)root, (void)err;
  return PF_OK;
}
int pf_dist_all(int v) {
  return v != 0;
}
pf_status pf_dist_writer_outcome(pf_status st, pf_err *err) {
  (void)err;
  return st;
}
pf_status pf_dist_same(const uint8_t digest[32], const char *what, pf_err *err) {
  (void)digest, (void)what, (void)err;
  return PF_OK;
}

#endif

/* Bytes per MPI message of pf_dist_bcast: 1 GiB (MPI counts are ints), or
 * PFRUN_MPI_CHUNK bytes (tests use a small one to cross the chunk borders). */
size_t pf_dist_bcast_chunk(void) {
  static size_t chunk;
  if (!chunk) {
    const char *v = getenv("PFRUN_MPI_CHUNK");
    const long long n = v ? atoll(v) : 0;
    chunk = n > 0 && n <= (1ll << 30) ? (size_t)n : (size_t)1 << 30;
  }
  return chunk;
}
