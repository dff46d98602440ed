/* fs_temp.c — temporary folders beside their target, registered so that a
 * signal handler can remove them (pf_cleanup_temps: no malloc, no stdio), and
 * the commit of a finished folder into place (rename / exchange, the old copy
 * removed after). See fsutil.h. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "fsutil.h"

/* The name of the temporary folder being made (pf_make_temp_sibling), while it is
 * not registered yet. */
static char pending[PATH_MAX];
static volatile sig_atomic_t pending_on;

/* Strip trailing slashes (keeps "/"). malloc'd. */
static char *strip_slashes(const char *path) {
  char *p = strdup(path);
  if (!p) return NULL;
  size_t n = strlen(p);
  while (n > 1 && p[n - 1] == '/')
    p[--n] = '\0';
  return p;
}

void pf_temp_owner_tag(char *out, size_t n) {
  char h[256] = "";
  if (gethostname(h, sizeof h - 1) != 0 || !h[0]) snprintf(h, sizeof h, "host");
  size_t i = 0;
  for (; h[i] && i + 1 < n && i < 64; i++) {
    const char c = h[i];
    out[i] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                     c == '.' || c == '_'
                 ? c
                 : '_';
  }
  out[i] = '\0';
  /* the pid namespace: containers on one machine may share a host name, not pids */
  char ns[64] = "";
  const ssize_t k = readlink("/proc/self/ns/pid", ns, sizeof ns - 1);
  unsigned long long id = 0;
  if (k > 0) {
    ns[k] = '\0';
    const char *d = strchr(ns, '[');
    if (d) id = strtoull(d + 1, NULL, 10);
  }
  if (i + 1 < n) snprintf(out + i, n - i, "_p%llu", id);
}

int pf_temp_sweep_stale(const char *target) {
  char *t = target ? strip_slashes(target) : NULL;
  if (!t) return 0;
  char *slash = strrchr(t, '/');
  const char *base = slash ? slash + 1 : t;
  char host[72], prefix[512];
  pf_temp_owner_tag(host, sizeof host);
  const int np = snprintf(prefix, sizeof prefix, "%s.tmp-%s-", base, host);
  if (slash) *slash = '\0';
  const char *parent = slash ? (slash == t ? "/" : t) : ".";
  DIR *d = np > 0 && (size_t)np < sizeof prefix ? opendir(parent) : NULL;
  int removed = 0;
  for (struct dirent *e; d && (e = readdir(d)) != NULL;) {
    if (strncmp(e->d_name, prefix, (size_t)np) != 0) continue;
    /* the rest is "<pid>-XXXXXX" */
    char *end = NULL;
    errno = 0;
    const long pid = strtol(e->d_name + np, &end, 10);
    if (errno || end == e->d_name + np || pid <= 0 || pid == (long)getpid() || *end != '-' ||
        !end[1])
      continue;
    if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue; /* its owner may still run */
    char *path = pf_path_join(parent, e->d_name);
    struct stat st;
    pf_err ignored = {0};
    if (path && lstat(path, &st) == 0 && (S_ISDIR(st.st_mode) || S_ISREG(st.st_mode)) &&
        pf_remove_tree(path, &ignored) == PF_OK)
      removed++;
    free(path);
  }
  if (d) closedir(d);
  free(t);
  return removed;
}

static void janitor_say(char op, const char *path);

pf_status pf_make_temp_sibling(const char *target, char **out, pf_err *err) {
  *out = NULL;
  if (!target || !*target) return pf_err_set(err, PF_ERR_INVALID, "temp folder: empty target path");
  pf_status s = PF_OK;
  char *t = strip_slashes(target), *tmpl = NULL;
  if (!t) return pf_err_set(err, PF_ERR_NOMEM, "%s: out of memory", target);
  char *slash = strrchr(t, '/');
  if (slash && slash != t) {
    *slash = '\0';
    s = pf_mkdirs(t, err);
    *slash = '/';
    if (s != PF_OK) {
      pf_err_prefix(err, "%s: cannot create its parent folder", target);
      goto fail;
    }
  }
  /* "<target>.tmp-<host>-<pid>-XXXXXX": a later run on this machine knows from the name
   * whether the run that made it is gone (killed before it could remove it) */
  (void)pf_temp_sweep_stale(t);
  char host[72];
  pf_temp_owner_tag(host, sizeof host);
  size_t n = strlen(t) + strlen(host) + 32 + sizeof ".tmp-XXXXXX";
  tmpl = malloc(n);
  if (!tmpl) {
    s = pf_err_set(err, PF_ERR_NOMEM, "%s: out of memory", target);
    goto fail;
  }
  snprintf(tmpl, n, "%s.tmp-%s-%ld-XXXXXX", t, host, (long)getpid());
  /* A signal between mkdtemp and the registration would leave the folder: the name
   * is made in `pending`, which pf_cleanup_temps removes too, until it is registered. */
  const int staged = n <= sizeof pending;
  if (staged) {
    memcpy(pending, tmpl, n);
    pending_on = 1;
  }
  /* A SIGKILL in the same window: the janitor is told the template first, and removes
   * what matches it if pfrun dies before the folder's own name is registered (a test
   * that kills pfrun as soon as the folder appears found it left, under load). */
  char *abs_tmpl = pf_abspath(tmpl);
  if (abs_tmpl) janitor_say('R', abs_tmpl);
  const int made = staged ? mkdtemp(pending) != NULL : mkdtemp(tmpl) != NULL;
  if (made && staged) memcpy(tmpl, pending, n);
  if (made) pf_temp_register(tmpl);
  pending_on = 0;
  if (abs_tmpl) janitor_say('U', abs_tmpl);
  free(abs_tmpl);
  if (!made) {
    s = pf_err_set(err, PF_ERR_IO, "%s: cannot create temporary folder %s: %s", target, tmpl,
                   strerror(errno));
    goto fail;
  }
  free(t);
  *out = tmpl;
  return PF_OK;
fail:
  free(t);
  free(tmpl);
  return s;
}

/* Registered temporary folders: fixed slots with preallocated path storage so
 * that pf_cleanup_temps never allocates (it runs from signal handlers). */
#define PF_TEMP_SLOTS 32
static char temp_paths[PF_TEMP_SLOTS][PATH_MAX];
static volatile sig_atomic_t temp_used[PF_TEMP_SLOTS];
/* Set once pf_cleanup_temps has started (a second signal): the process is about to
 * leave, and a slot must not be refilled while the handler, on another thread,
 * still removes the path it held. */
static volatile sig_atomic_t temp_cleaning;

/* ---- the janitor ---- */

static int janitor_fd = -1; /* write end of the pipe to the janitor; -1: none */

/* One record, sent as one datagram of a SOCK_SEQPACKET socket (atomic, whatever
 * thread or signal handler sends; MSG_NOSIGNAL: a janitor that is gone costs no
 * SIGPIPE): 'R' or 'U', then the path and its NUL. */
static void janitor_say(char op, const char *path) {
  if (janitor_fd < 0) return;
  char rec[PIPE_BUF];
  const size_t n = strlen(path);
  if (n + 2 > sizeof rec) return;
  rec[0] = op;
  memcpy(rec + 1, path, n + 1);
  ssize_t w = send(janitor_fd, rec, n + 2, MSG_NOSIGNAL);
  (void)w;
}

/* A registered mkdtemp template (".../NAME.tmp-HOST-PID-XXXXXX"): the entries of its
 * folder that it names, X for any character (not glob(3): the path may hold
 * brackets or stars of its own). */
static void remove_template_matches(char *tmpl) {
  char *slash = strrchr(tmpl, '/');
  if (!slash) return;
  *slash = '\0';
  const char *base = slash + 1;
  const size_t blen = strlen(base);
  DIR *d = opendir(slash == tmpl ? "/" : tmpl);
  if (d) {
    struct dirent *e;
    while ((e = readdir(d)))
      if (strlen(e->d_name) == blen && !strncmp(e->d_name, base, blen - 6)) {
        char *p = pf_path_join(slash == tmpl ? "/" : tmpl, e->d_name);
        if (p) (void)pf_remove_tree_raw(p);
        free(p);
      }
    closedir(d);
  }
  *slash = '/';
}

/* The janitor's life: read records until every sender is gone (end of stream), keep
 * the registered paths in temp_paths (its own copy, emptied first), then remove them. */
static void janitor_main(int rfd) {
  for (int i = 0; i < PF_TEMP_SLOTS; i++)
    temp_used[i] = 0;
  char rec[PIPE_BUF + 1];
  for (;;) {
    const ssize_t r = recv(rfd, rec, sizeof rec - 1, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    rec[r] = '\0';
    const char op = rec[0], *path = rec + 1;
    for (int i = 0; r > 1 && i < PF_TEMP_SLOTS; i++) {
      if (op == 'R' && !temp_used[i]) {
        memcpy(temp_paths[i], path, strlen(path) + 1);
        temp_used[i] = 1;
        break;
      }
      if (op == 'U' && temp_used[i] && !strcmp(temp_paths[i], path)) temp_used[i] = 0;
    }
  }
  for (int i = 0; i < PF_TEMP_SLOTS; i++)
    if (temp_used[i]) {
      const size_t n = strlen(temp_paths[i]);
      if (n > 6 && !strcmp(temp_paths[i] + n - 6, "XXXXXX"))
        remove_template_matches(temp_paths[i]);
      else
        (void)pf_remove_tree_raw(temp_paths[i]);
    }
}

int pf_temp_janitor_start(void) {
  if (janitor_fd >= 0) return 0;
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) != 0) return -1;
  const pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]), close(fds[1]);
    return -1;
  }
  if (pid == 0) { /* its own session: a launcher's kill of the process group misses it */
    close(fds[1]);
    setsid();
    /* a job's SIGTERM reaches every process of the job (Slurm), SIGKILL right after: the
     * janitor outlives pfrun by ignoring them and ends when pfrun's end of the socket
     * closes, however pfrun ends */
    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    /* its socket above the standard descriptors it replaces (pfrun started with stdin
     * or stdout closed got the socket as fd 0 or 1) */
    if (fds[0] < 3) {
      const int up = fcntl(fds[0], F_DUPFD_CLOEXEC, 3);
      if (up < 0) _exit(1);
      fds[0] = up;
    }
    const int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
    for (int fd = 0; fd < 3 && nul >= 0; fd++) /* the launcher waits for the output pipes */
      dup2(nul, fd);
    for (int fd = 3; fd < 1024; fd++)
      if (fd != fds[0]) close(fd);
    janitor_main(fds[0]);
    _exit(0);
  }
  close(fds[0]);
  janitor_fd = fds[1];
  return 0;
}

void pf_temp_register(const char *path) {
  if (!path || temp_cleaning) return;
  char *abs = pf_abspath(path);
  const char *p = abs ? abs : path;
  janitor_say('R', p);
  if (strlen(p) < PATH_MAX) {
    for (int i = 0; i < PF_TEMP_SLOTS; i++) {
      if (temp_used[i]) continue;
      memcpy(temp_paths[i], p, strlen(p) + 1);
      temp_used[i] = 1;
      break;
    }
  }
  free(abs);
}

void pf_temp_unregister(const char *path) {
  if (!path) return;
  char *abs = pf_abspath(path);
  janitor_say('U', abs ? abs : path);
  for (int i = 0; i < PF_TEMP_SLOTS; i++) {
    if (!temp_used[i]) continue;
    if (!strcmp(temp_paths[i], path) || (abs && !strcmp(temp_paths[i], abs))) temp_used[i] = 0;
  }
  free(abs);
}

void pf_temp_forget_inherited(void) {
  for (int i = 0; i < PF_TEMP_SLOTS; i++)
    temp_used[i] = 0;
  if (janitor_fd >= 0) close(janitor_fd); /* the janitor ends with the parent alone */
  janitor_fd = -1;
}

/* May run in a signal handler on one thread while the others go on (OpenMP
 * workers writing into the folder being removed, the main thread registering a
 * file): the path is copied before use and its slot freed only afterwards, and
 * a removal that finds the folder refilled (ENOTEMPTY: a writer created a file
 * after the last pass) is tried again. */
void pf_cleanup_temps(void) {
  temp_cleaning = 1;
  if (pending_on) (void)pf_remove_tree_raw(pending);
  char path[PATH_MAX];
  for (int i = 0; i < PF_TEMP_SLOTS; i++) {
    if (!temp_used[i]) continue;
    memcpy(path, temp_paths[i], sizeof path);
    path[sizeof path - 1] = '\0';
    for (int tries = 0; tries < 8 && pf_remove_tree_raw(path) == ENOTEMPTY; tries++) {
    }
    temp_used[i] = 0;
  }
  temp_cleaning = 0;
}

/* fsync the folder holding `path` so a rename survives a crash (best effort). */
static void sync_parent(const char *path) {
  char *p = strip_slashes(path);
  if (!p) return;
  char *slash = strrchr(p, '/');
  const char *parent = ".";
  if (slash == p)
    parent = "/";
  else if (slash) {
    *slash = '\0';
    parent = p;
  }
  int fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    (void)fsync(fd);
    close(fd);
  }
  free(p);
}

/* Unused sibling name "<dst>.old-<pid>-<n>" (malloc'd). */
static char *aside_name(const char *dst) {
  size_t n = strlen(dst) + 64;
  char *a = malloc(n);
  if (!a) return NULL;
  for (unsigned i = 0; i < 100000; i++) {
    snprintf(a, n, "%s.old-%ld-%u", dst, (long)getpid(), i);
    if (!pf_path_exists(a)) return a;
  }
  free(a);
  return NULL;
}

/* Parent folder of `path` (malloc'd; "." for a bare name), NULL on OOM. */
static char *parent_of(const char *path) {
  char *p = strip_slashes(path);
  if (!p) return NULL;
  char *slash = strrchr(p, '/');
  if (!slash) {
    free(p);
    return strdup(".");
  }
  if (slash == p)
    slash[1] = '\0';
  else
    *slash = '\0';
  return p;
}

char *pf_missing_parent(const char *path) {
  char *p = parent_of(path), *top = NULL;
  while (p && !pf_path_exists(p)) {
    free(top);
    top = p;
    p = parent_of(top);
    if (p && !strcmp(p, top)) break;
  }
  free(p);
  return top;
}

void pf_remove_empty_parents(const char *path, const char *top) {
  if (!top) return;
  char *p = parent_of(path);
  while (p && rmdir(p) == 0 && strcmp(p, top) != 0) {
    char *q = parent_of(p);
    free(p);
    p = q;
  }
  free(p);
}

/* "<dir>/x": a path whose parent is `dir`, for the two helpers below. */
static char *child_of(const char *dir) {
  char *c = strip_slashes(dir);
  char *j = c ? pf_path_join(c, "x") : NULL;
  free(c);
  return j;
}

char *pf_missing_dir(const char *dir) {
  char *probe = child_of(dir);
  char *top = probe ? pf_missing_parent(probe) : NULL;
  free(probe);
  return top;
}

void pf_remove_empty_dirs(const char *dir, const char *top) {
  char *probe = top ? child_of(dir) : NULL;
  if (probe) pf_remove_empty_parents(probe, top);
  free(probe);
}

/* Replace `dst` by `tmp` with one atomic exchange: at no moment is there no
 * checkpoint at `dst`. Afterwards `tmp` holds the old copy, still registered, so
 * an interrupt from here on removes the old copy, never the new one.
 * Returns 0, or errno when the file system cannot exchange (the caller falls
 * back to moving the old copy aside). */
static int exchange_into_place(const char *tmp, const char *dst) {
#ifdef RENAME_EXCHANGE
  if (renameat2(AT_FDCWD, tmp, AT_FDCWD, dst, RENAME_EXCHANGE) == 0) return 0;
  return errno;
#else
  return ENOSYS;
#endif
}

/* The old copy at `old` is removed; if it cannot be, *left says where it stays. */
static void remove_old_copy(const char *old, char **left) {
  pf_err e = {0};
  if (pf_remove_tree(old, &e) == PF_OK || !left) return;
  const size_t n = strlen(old) + strlen(e.msg) + 8;
  if ((*left = malloc(n))) snprintf(*left, n, "%s (%s)", old, e.msg);
}

/* rename(tmp, dst) that fails with EEXIST when dst exists (renameat2 RENAME_NOREPLACE;
 * where the file system lacks it, a plain rename when dst is absent, which an empty
 * folder appearing in between could still meet). 0 or errno. */
static int rename_new(const char *tmp, const char *dst) {
#ifdef RENAME_NOREPLACE
  if (renameat2(AT_FDCWD, tmp, AT_FDCWD, dst, RENAME_NOREPLACE) == 0) return 0;
  if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP) return errno;
#endif
  if (pf_path_exists(dst)) return EEXIST;
  return rename(tmp, dst) == 0 ? 0 : errno;
}

pf_status pf_commit_dir(const char *tmp, const char *dst, int replace, char **left, pf_err *err) {
  char *aside = NULL;
  if (left) *left = NULL;
  /* what is at dst is judged now, not when the save started: another run (or the
   * user) may have made, filled or removed it since */
  if (replace == PF_COMMIT_EMPTY && pf_path_exists(dst) && rmdir(dst) != 0) {
    const int e = errno;
    if (e == ENOTEMPTY || e == EEXIST)
      return pf_err_set(err, PF_ERR_INVALID,
                        "%s: the output folder is not empty any more (something was written "
                        "into it during the save); not replacing it (use overwrite to replace it)",
                        dst);
    struct stat ls;
    if (e == ENOTDIR && lstat(dst, &ls) == 0 && S_ISLNK(ls.st_mode))
      return pf_err_set(err, PF_ERR_INVALID,
                        "%s: the output path is a symbolic link; not replacing it (give the "
                        "folder it points to, or overwrite to replace the link)",
                        dst);
    if (e == ENOTDIR)
      return pf_err_set(err, PF_ERR_INVALID,
                        "%s: the output path is not a folder any more; not replacing it", dst);
    if (e != ENOENT)
      return pf_err_set(err, PF_ERR_IO, "%s: cannot replace the empty folder: %s", dst,
                        strerror(e));
  }
  if (replace == PF_COMMIT_ANY && pf_path_exists(dst)) {
    int e = exchange_into_place(tmp, dst);
    if (e == 0) {
      sync_parent(dst);
      remove_old_copy(tmp, left);
      pf_temp_unregister(tmp);
      return PF_OK;
    }
    if (e != EINVAL && e != ENOSYS && e != ENOTSUP)
      return pf_err_set(err, PF_ERR_IO, "%s: cannot rename %s into place: %s", dst, tmp,
                        strerror(e));
    aside = aside_name(dst);
    if (!aside) return pf_err_set(err, PF_ERR_NOMEM, "%s: out of memory", dst);
    if (rename(dst, aside) != 0) {
      pf_status s = pf_err_set(err, PF_ERR_IO, "%s: cannot move the old folder aside to %s: %s",
                               dst, aside, strerror(errno));
      free(aside);
      return s;
    }
  }
  int e = rename_new(tmp, dst);
  if (e == EEXIST && replace == PF_COMMIT_ANY && !aside) /* made while we renamed: replace it */
    return pf_commit_dir(tmp, dst, replace, left, err);
  if (e) {
    if (aside) (void)rename(aside, dst); /* put the old one back */
    free(aside);
    if (e == EEXIST)
      return pf_err_set(err, PF_ERR_INVALID,
                        "%s: already exists (made by something else during the save); not "
                        "replacing it",
                        dst);
    return pf_err_set(err, PF_ERR_IO, "%s: cannot rename %s into place: %s", dst, tmp, strerror(e));
  }
  /* tmp no longer exists under its name: forget it so cleanup cannot hit it. */
  pf_temp_unregister(tmp);
  sync_parent(dst);
  if (aside) remove_old_copy(aside, left);
  free(aside);
  return PF_OK;
}
