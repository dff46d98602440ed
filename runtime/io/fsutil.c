/* fsutil.c — small file-system helpers (see fsutil.h).
 *
 * Removal of trees is done with openat/getdents64/unlinkat on stack buffers so
 * that the same code can run from a signal handler (pf_cleanup_temps): no
 * malloc, no stdio, no opendir.
 */
#include "fsutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "value.h"

#define PF_COPY_CHUNK ((size_t)1 << 20)
#define PF_RM_MAX_DEPTH 128

/* ---- opening input files ---- */

const char *pf_file_kind(unsigned int st_mode) {
  mode_t m = (mode_t)st_mode;
  if (S_ISREG(m)) return "a regular file";
  if (S_ISDIR(m)) return "a folder";
  if (S_ISFIFO(m)) return "a FIFO";
  if (S_ISCHR(m)) return "a character device";
  if (S_ISBLK(m)) return "a block device";
  if (S_ISSOCK(m)) return "a socket";
  if (S_ISLNK(m)) return "a symbolic link";
  return "an unknown kind of file";
}

static pf_status open_failed(const char *path, int e, pf_err *err) {
  return pf_err_set(err, e == ENOENT ? PF_ERR_NOT_FOUND : PF_ERR_IO, "%s: cannot open: %s", path,
                    strerror(e));
}

static pf_status not_regular(const char *path, mode_t mode, pf_err *err) {
  return pf_err_set(err, PF_ERR_IO, "%s: expected a regular file, found %s", path,
                    pf_file_kind(mode));
}

/* stat before open: a device is never opened (opening one can have effects);
 * O_NONBLOCK: a FIFO put in place after the stat does not block the open (its
 * fstat then refuses it); a regular file ignores the flag, cleared anyway. */
pf_status pf_open_input(const char *path, int *fd, uint64_t *size, pf_err *err) {
  struct stat st;
  *fd = -1;
  if (size) *size = 0;
  if (!path || !*path) return pf_err_set(err, PF_ERR_INVALID, "expected a file path, got nothing");
  if (stat(path, &st) != 0) return open_failed(path, errno, err);
  if (!S_ISREG(st.st_mode)) return not_regular(path, st.st_mode, err);
  int f = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (f < 0) return open_failed(path, errno, err);
  if (fstat(f, &st) != 0) {
    int e = errno;
    close(f);
    return pf_err_set(err, PF_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
  }
  if (!S_ISREG(st.st_mode)) {
    close(f);
    return not_regular(path, st.st_mode, err);
  }
  int fl = fcntl(f, F_GETFL);
  if (fl != -1) (void)fcntl(f, F_SETFL, fl & ~O_NONBLOCK);
  *fd = f;
  if (size) *size = (uint64_t)st.st_size;
  return PF_OK;
}

pf_status pf_fopen_input(const char *path, FILE **out, uint64_t *size, pf_err *err) {
  int fd = -1;
  *out = NULL;
  pf_status s = pf_open_input(path, &fd, size, err);
  if (s != PF_OK) return s;
  if (!(*out = fdopen(fd, "rb"))) {
    int e = errno;
    close(fd);
    return pf_err_set(err, e == ENOMEM ? PF_ERR_NOMEM : PF_ERR_IO, "%s: cannot open: %s", path,
                      strerror(e));
  }
  return PF_OK;
}

/* ---- whole-file read / write / copy ---- */

/* Read until EOF into a buffer of at most max_bytes (+1 for the NUL). `hint`
 * is the expected size (st_size of a regular file), 0 if unknown. */
static pf_status read_all(int fd, const char *path, size_t hint, size_t max_bytes, char **out,
                          size_t *len, pf_err *err) {
  size_t cap = hint ? hint : 4096, n = 0;
  if (cap > max_bytes) cap = max_bytes;
  char *buf = malloc(cap + 1);
  if (!buf) return pf_err_set(err, PF_ERR_NOMEM, "%s: out of memory", path);
  for (;;) {
    char probe;
    int full = n == cap && cap >= max_bytes; /* only EOF may follow */
    if (n == cap && !full) {
      size_t ncap = cap * 2 + 1 > max_bytes ? max_bytes : cap * 2 + 1;
      char *nb = realloc(buf, ncap + 1);
      if (!nb) {
        free(buf);
        return pf_err_set(err, PF_ERR_NOMEM, "%s: out of memory", path);
      }
      buf = nb;
      cap = ncap;
    }
    ssize_t r = full ? read(fd, &probe, 1) : read(fd, buf + n, cap - n);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 || (full && r > 0)) {
      int e = errno;
      free(buf);
      if (r > 0)
        return pf_err_set(err, PF_ERR_INVALID, "%s: file larger than the limit of %zu bytes", path,
                          max_bytes);
      return pf_err_set(err, PF_ERR_IO, "%s: read failed: %s", path, strerror(e));
    }
    if (r == 0) break;
    n += (size_t)r;
  }
  buf[n] = '\0';
  *out = buf;
  if (len) *len = n;
  return PF_OK;
}

pf_status pf_read_file(const char *path, size_t max_bytes, char **out, size_t *len, pf_err *err) {
  *out = NULL;
  if (len) *len = 0;
  int fd = -1;
  uint64_t size = 0;
  pf_status s = pf_open_input(path, &fd, &size, err);
  if (s != PF_OK) return s;
  if (size > max_bytes) {
    close(fd);
    return pf_err_set(err, PF_ERR_INVALID, "%s: file has %llu bytes, the limit is %zu", path,
                      (unsigned long long)size, max_bytes);
  }
  s = read_all(fd, path, (size_t)size, max_bytes, out, len, err);
  close(fd);
  return s;
}

/* write(2) the whole buffer, retrying partial writes and EINTR. Returns 0 or errno. */
static int write_all(int fd, const void *data, size_t len) {
  const char *p = data;
  while (len > 0) {
    size_t chunk = len > ((size_t)1 << 30) ? ((size_t)1 << 30) : len;
    ssize_t w = write(fd, p, chunk);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return errno;
    if (w == 0) return EIO;
    p += w;
    len -= (size_t)w;
  }
  return 0;
}

/* The descriptor a path names that is one of this process's own ("/dev/stdout",
 * "/dev/stderr", "/dev/fd/N", "/proc/self/fd/N"), or -1. Opening such a path opens the
 * file behind the descriptor anew, and O_TRUNC would empty a log the shell appends to
 * (`>> run.log`): it is written through the descriptor instead. */
static int own_fd(const char *path) {
  if (!strcmp(path, "/dev/stdout")) return 1;
  if (!strcmp(path, "/dev/stderr")) return 2;
  const char *n = !strncmp(path, "/dev/fd/", 8)          ? path + 8
                  : !strncmp(path, "/proc/self/fd/", 14) ? path + 14
                                                         : NULL;
  if (n && *n) {
    char *end;
    const long fd = strtol(n, &end, 10);
    return *end || fd < 0 || fd > 1 << 20 ? -1 : (int)fd;
  }
  /* the file behind stdout or stderr under another name: a link to /dev/stdout (it
   * resolves to the log stdout appends to, which a rename would replace), or that log */
  struct stat a, b;
  if (stat(path, &a) != 0) return -1;
  for (int fd = 1; fd <= 2; fd++)
    if (fstat(fd, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino) return fd;
  return -1;
}

/* Where a file written at `path` lands (malloc'd): a symbolic link's target, so that
 * the link stays and the target is replaced by a rename beside it as any file is (a
 * dangling link: the path it names, followed link by link, so that a missing folder
 * there is found before the work); `path` itself otherwise. NULL: out of memory. */
static char *write_target(const char *path) {
  struct stat st;
  if (own_fd(path) >= 0 || lstat(path, &st) != 0 || !S_ISLNK(st.st_mode)) return strdup(path);
  char *real = realpath(path, NULL);
  if (real) return real;
  char *cur = strdup(path);
  for (int hop = 0; cur && hop < 40 && lstat(cur, &st) == 0 && S_ISLNK(st.st_mode); hop++) {
    char to[PATH_MAX];
    const ssize_t n = readlink(cur, to, sizeof to - 1);
    if (n <= 0) break;
    to[n] = '\0';
    const char *slash = strrchr(cur, '/');
    char *next = NULL;
    if (to[0] == '/' || !slash) {
      next = strdup(to);
    } else if ((next = malloc((size_t)(slash - cur) + (size_t)n + 2))) {
      sprintf(next, "%.*s/%s", (int)(slash - cur), cur, to);
    }
    free(cur);
    cur = next;
  }
  return cur;
}

/* An error about `path`, the target of the link `given`: named as the user wrote it. */
static pf_status name_link(const char *given, const char *path, pf_status st, pf_err *err) {
  const size_t n = strlen(path);
  if (!st || !err || !strcmp(given, path) || strncmp(err->msg, path, n) != 0) return st;
  char msg[PF_ERR_MSG_MAX];
  snprintf(msg, sizeof msg, "%s (a link to %s)%s", given, path, err->msg + n);
  snprintf(err->msg, sizeof err->msg, "%s", msg);
  return st;
}

/* Write in place (devices, pipes, the process's own descriptors: what a rename would
 * replace or cannot reach). */
static pf_status write_in_place(const char *path, const void *data, size_t len, pf_err *err) {
  const int own = own_fd(path);
  if (own == 1 || own == 2) fflush(own == 1 ? stdout : stderr); /* what was printed first */
  int fd = own >= 0 ? fcntl(own, F_DUPFD_CLOEXEC, 3)
                    : open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return pf_err_set(err, PF_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
  int e = write_all(fd, data, len);
  if (!e && fsync(fd) != 0 && errno != EINVAL && errno != EROFS) e = errno; /* a pipe */
  if (close(fd) != 0 && !e) e = errno;
  if (e) return pf_err_set(err, PF_ERR_IO, "%s: write failed: %s", path, strerror(e));
  return PF_OK;
}

int pf_temp_file_create(const char *path, char **tmp_out, int *fd_out) {
  static unsigned counter = 0;
  *tmp_out = NULL;
  *fd_out = -1;
  (void)pf_temp_sweep_stale(path);
  char tag[160];
  pf_temp_owner_tag(tag, sizeof tag);
  const size_t n = strlen(path) + strlen(tag) + 48;
  char *tmp = malloc(n);
  if (!tmp) return ENOMEM;
  int fd = -1;
  for (int tries = 0; fd < 0 && tries < 100; tries++) {
    snprintf(tmp, n, "%s.tmp-%s-%ld-%u", path, tag, (long)getpid(),
             __sync_fetch_and_add(&counter, 1));
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0 && errno != EEXIST) break;
  }
  if (fd < 0) {
    const int e = errno;
    free(tmp);
    return e;
  }
  pf_temp_register(tmp);
  *tmp_out = tmp;
  *fd_out = fd;
  return 0;
}

static pf_status stage_at(const char *path, int in_place, const void *data, size_t len,
                          pf_staged *out, pf_err *err);

/* 1 when a link's target `path` is a file that can be written while its folder takes no
 * new file (a shared file in a read-only or foreign folder): written in place then. */
static int target_writable_in_place(const char *given, const char *path) {
  struct stat st;
  if (!strcmp(given, path) || stat(path, &st) != 0 || !S_ISREG(st.st_mode)) return 0;
  char *dir = strdup(path), *slash = dir ? strrchr(dir, '/') : NULL;
  if (slash == dir && slash) /* "/file": the root */
    slash[1] = '\0';
  else if (slash)
    *slash = '\0';
  const int folder_ok = dir && access(slash ? dir : ".", W_OK) == 0;
  free(dir);
  return !folder_ok && access(path, W_OK) == 0;
}

/* A regular file (new or replaced) is written to "<path>.tmp-<owner>-PID-N" beside it
 * and renamed over `path`, so a full disk, a file-size limit or an interrupt
 * never leaves half a file: `path` holds the old contents or the new ones. */
pf_status pf_stage_file(const char *given, const void *data, size_t len, pf_staged *out,
                        pf_err *err) {
  memset(out, 0, sizeof *out);
  char *path = write_target(given);
  if (!path) return pf_err_set(err, PF_ERR_NOMEM, "%s: out of memory", given);
  pf_status r = name_link(
      given, path, stage_at(path, target_writable_in_place(given, path), data, len, out, err), err);
  free(path);
  return r;
}

static pf_status stage_at(const char *path, int in_place, const void *data, size_t len,
                          pf_staged *out, pf_err *err) {
  struct stat st;
  if (in_place || own_fd(path) >= 0 || (lstat(path, &st) == 0 && !S_ISREG(st.st_mode))) {
    /* /dev/stdout, a pipe, a device: at commit */
    out->path = strdup(path);
    out->data = malloc(len ? len : 1);
    if (!out->path || !out->data) {
      pf_staged_discard(out);
      return pf_err_set(err, PF_ERR_NOMEM, "%s: out of memory", path);
    }
    memcpy(out->data, data, len);
    out->len = len;
    return PF_OK;
  }
  char *tmp = NULL;
  int fd = -1;
  const int ce = pf_temp_file_create(path, &tmp, &fd);
  if (ce == ENOMEM) return pf_err_set(err, PF_ERR_NOMEM, "%s: out of memory", path);
  if (ce) return pf_err_set(err, PF_ERR_IO, "%s: cannot create: %s", path, strerror(ce));
  int e = write_all(fd, data, len);
  if (!e && fsync(fd) != 0) e = errno;
  if (close(fd) != 0 && !e) e = errno;
  if (!e && !(out->path = strdup(path))) e = ENOMEM;
  if (e) {
    unlink(tmp);
    pf_temp_unregister(tmp);
    free(tmp);
    free(out->path);
    out->path = NULL;
    return pf_err_set(err, e == ENOMEM ? PF_ERR_NOMEM : PF_ERR_IO, "%s: write failed: %s", path,
                      strerror(e));
  }
  out->tmp = tmp;
  return PF_OK;
}

pf_status pf_staged_commit(pf_staged *s, pf_err *err) {
  pf_status st = PF_OK;
  if (s->tmp && rename(s->tmp, s->path) != 0) {
    const int e = errno;
    unlink(s->tmp);
    st = pf_err_set(err, PF_ERR_IO, "%s: write failed: %s", s->path, strerror(e));
  } else if (!s->tmp && s->path) {
    st = write_in_place(s->path, s->data, s->len, err);
  }
  if (s->tmp) pf_temp_unregister(s->tmp);
  free(s->tmp);
  s->tmp = NULL;
  pf_staged_discard(s);
  return st;
}

void pf_staged_discard(pf_staged *s) {
  if (s->tmp) {
    unlink(s->tmp);
    pf_temp_unregister(s->tmp);
  }
  free(s->tmp);
  free(s->path);
  free(s->data);
  memset(s, 0, sizeof *s);
}

pf_status pf_write_file(const char *path, const void *data, size_t len, pf_err *err) {
  pf_staged s;
  pf_status st = pf_stage_file(path, data, len, &s, err);
  return st ? st : pf_staged_commit(&s, err);
}

static pf_status check_writable_at(const char *path, pf_err *err);

pf_status pf_check_writable_file(const char *given, pf_err *err) {
  const int own = own_fd(given);
  if (own >= 0) { /* written through the descriptor: it must be open for writing */
    const int fl = fcntl(own, F_GETFL);
    if (fl < 0 || (fl & O_ACCMODE) == O_RDONLY)
      return pf_err_set(err, PF_ERR_IO, "%s: cannot write: descriptor %d is %s", given, own,
                        fl < 0 ? "closed" : "not open for writing");
    return PF_OK;
  }
  char *path = write_target(given); /* a link's target: the file beside which it is staged */
  if (!path) return pf_err_set(err, PF_ERR_NOMEM, "%s: out of memory", given);
  pf_status r = target_writable_in_place(given, path)
                    ? PF_OK
                    : name_link(given, path, check_writable_at(path, err), err);
  free(path);
  return r;
}

static pf_status check_writable_at(const char *path, pf_err *err) {
  struct stat st;
  if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode))
    return pf_err_set(err, PF_ERR_IO, "%s: cannot write a file there: it is a folder", path);
  if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) return PF_OK; /* a pipe, a device */
  char *tmp = NULL;
  int fd = -1;
  const int e = pf_temp_file_create(path, &tmp, &fd);
  if (e == ENOMEM) return pf_err_set(err, PF_ERR_NOMEM, "%s: out of memory", path);
  if (e) {
    char *missing = e == ENOENT ? pf_missing_parent(path) : NULL;
    pf_status s = missing ? pf_err_set(err, PF_ERR_IO,
                                       "%s: cannot create: folder %s does not exist", path, missing)
                          : pf_err_set(err, PF_ERR_IO, "%s: cannot create: %s", path, strerror(e));
    free(missing);
    return s;
  }
  close(fd);
  unlink(tmp);
  pf_temp_unregister(tmp);
  free(tmp);
  return PF_OK;
}

pf_status pf_copy_file(const char *src, const char *dst, pf_err *err) {
  pf_status s = PF_OK;
  char *buf = NULL;
  int out = -1, in = -1;
  uint64_t size = 0;
  if ((s = pf_open_input(src, &in, &size, err)) != PF_OK) return s;
  /* a small file (a config, most tokenizers) gets a buffer of its size, not 1 MiB */
  size_t cap = PF_COPY_CHUNK;
  if (size < cap) cap = ((size_t)size + 4096) / 4096 * 4096; /* room for the read finding EOF */
  buf = malloc(cap);
  if (!buf) {
    s = pf_err_set(err, PF_ERR_NOMEM, "%s: out of memory", src);
    goto done;
  }
  out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (out < 0) {
    s = pf_err_set(err, PF_ERR_IO, "%s: cannot create: %s", dst, strerror(errno));
    goto done;
  }
  for (;;) {
    ssize_t r = read(in, buf, cap);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      s = pf_err_set(err, PF_ERR_IO, "%s: read failed: %s", src, strerror(errno));
      goto done;
    }
    if (r == 0) break;
    int e = write_all(out, buf, (size_t)r);
    if (e) {
      s = pf_err_set(err, PF_ERR_IO, "%s: write failed: %s", dst, strerror(e));
      goto done;
    }
  }
  if (fsync(out) != 0) s = pf_err_set(err, PF_ERR_IO, "%s: fsync failed: %s", dst, strerror(errno));
done:
  if (out >= 0 && close(out) != 0 && s == PF_OK)
    s = pf_err_set(err, PF_ERR_IO, "%s: close failed: %s", dst, strerror(errno));
  close(in);
  free(buf);
  return s;
}

/* ---- directories ---- */

pf_status pf_mkdirs(const char *path, pf_err *err) {
  size_t n = strlen(path);
  if (n == 0) return pf_err_set(err, PF_ERR_INVALID, "mkdirs: empty path");
  char *p = strdup(path);
  if (!p) return pf_err_set(err, PF_ERR_NOMEM, "%s: out of memory", path);
  pf_status s = PF_OK;
  for (size_t i = 1; i <= n; i++) {
    if (p[i] != '/' && p[i] != '\0') continue;
    char c = p[i];
    p[i] = '\0';
    if (pf_is_dir(p)) { /* existing folders are not asked for (no write attempt outside) */
      p[i] = c;
      continue;
    }
    if (mkdir(p, 0755) != 0 && errno != EEXIST) {
      s = pf_err_set(err, PF_ERR_IO, "%s: cannot create directory '%s': %s", path, p,
                     strerror(errno));
      break;
    }
    if (!pf_is_dir(p)) {
      s = pf_err_set(err, PF_ERR_IO, "%s: '%s' exists and is not a directory", path, p);
      break;
    }
    p[i] = c;
  }
  free(p);
  return s;
}

/* Remove `name` (relative to dirfd) recursively without following symlinks.
 * Async-signal-safe: only system calls and stack buffers. Returns 0 or errno. */
static int rm_at(int dirfd, const char *name, int depth) {
  struct stat st;
  if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) return errno == ENOENT ? 0 : errno;
  if (!S_ISDIR(st.st_mode)) {
    if (unlinkat(dirfd, name, 0) != 0 && errno != ENOENT) return errno;
    return 0;
  }
  if (depth > PF_RM_MAX_DEPTH) return ELOOP;
  int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return errno;
  int first_err = 0;
  char buf[2048] __attribute__((aligned(8)));
  /* Re-read from the start until a pass removes nothing: deleting entries
   * while reading a directory may make getdents skip some. */
  for (int removed = 1; removed && !first_err;) {
    removed = 0;
    if (lseek(fd, 0, SEEK_SET) != 0) {
      first_err = errno;
      break;
    }
    ssize_t n;
    while ((n = getdents64(fd, buf, sizeof buf)) > 0) {
      for (ssize_t off = 0; off < n;) {
        struct dirent64 *d = (struct dirent64 *)(void *)(buf + off);
        off += d->d_reclen;
        if (!strcmp(d->d_name, ".") || !strcmp(d->d_name, "..")) continue;
        int e = rm_at(fd, d->d_name, depth + 1);
        if (e && !first_err) first_err = e;
        if (!e) removed = 1;
      }
    }
    if (n < 0 && !first_err) first_err = errno;
  }
  close(fd);
  if (first_err) return first_err;
  if (unlinkat(dirfd, name, AT_REMOVEDIR) != 0 && errno != ENOENT) return errno;
  return 0;
}

int pf_remove_tree_raw(const char *path) {
  return rm_at(AT_FDCWD, path, 0);
}

pf_status pf_remove_tree(const char *path, pf_err *err) {
  if (!path || !*path) return pf_err_set(err, PF_ERR_INVALID, "remove_tree: empty path");
  int e = rm_at(AT_FDCWD, path, 0);
  if (e) return pf_err_set(err, PF_ERR_IO, "%s: cannot remove: %s", path, strerror(e));
  return PF_OK;
}

int pf_path_exists(const char *path) {
  struct stat st;
  return path && lstat(path, &st) == 0;
}

const char *pf_relative_hint(const char *path, char *out, size_t n) {
  char cwd[4096];
  if (n) out[0] = 0;
  if (n && path && path[0] != '/' && getcwd(cwd, sizeof cwd))
    snprintf(out, n, " (relative to the current folder %s)", cwd);
  return out;
}

int pf_is_dir(const char *path) {
  struct stat st;
  return path && stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int pf_dir_is_empty(const char *path) {
  DIR *d = path ? opendir(path) : NULL;
  if (!d) return 0;
  int empty = 1;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
      empty = 0;
      break;
    }
  }
  closedir(d);
  return empty;
}

/* ---- paths ---- */

/* Append the components of `rest` to the canonical absolute `base` (capacity
 * cap), resolving "." and ".." lexically. */
static void append_components(char *base, size_t cap, const char *rest) {
  const char *p = rest;
  while (*p) {
    while (*p == '/')
      p++;
    const char *q = p;
    while (*q && *q != '/')
      q++;
    size_t len = (size_t)(q - p);
    if (len == 0 || (len == 1 && p[0] == '.')) {
      /* nothing */
    } else if (len == 2 && p[0] == '.' && p[1] == '.') {
      char *slash = strrchr(base, '/');
      if (slash == base)
        base[1] = '\0';
      else if (slash)
        *slash = '\0';
    } else {
      size_t bl = strlen(base);
      if (bl + 1 + len < cap) {
        if (bl > 1 || base[0] != '/') base[bl++] = '/';
        memcpy(base + bl, p, len);
        base[bl + len] = '\0';
      }
    }
    p = q;
  }
}

char *pf_abspath(const char *path) {
  if (!path || !*path) return NULL;
  char absbuf[PATH_MAX * 2];
  if (path[0] == '/') {
    snprintf(absbuf, sizeof absbuf, "%s", path);
  } else {
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd)) return NULL;
    snprintf(absbuf, sizeof absbuf, "%s/%s", cwd, path);
  }
  /* Longest prefix (at a component boundary) that realpath resolves. */
  size_t cut = strlen(absbuf);
  char resolved[PATH_MAX * 2];
  for (;;) {
    char save = absbuf[cut];
    absbuf[cut] = '\0';
    const char *prefix = cut ? absbuf : "/";
    char *r = realpath(prefix, resolved);
    absbuf[cut] = save;
    if (r) break;
    if (cut == 0) return NULL;
    while (cut > 0 && absbuf[cut - 1] != '/')
      cut--;
    while (cut > 0 && absbuf[cut - 1] == '/')
      cut--;
  }
  append_components(resolved, sizeof resolved, absbuf + cut);
  return strdup(resolved);
}

int pf_path_inside(const char *path, const char *dir) {
  char *p = pf_abspath(path), *d = pf_abspath(dir);
  int inside = 0;
  if (p && d) {
    size_t dl = strlen(d);
    if (dl == 1 && d[0] == '/')
      inside = 1;
    else
      inside = strncmp(p, d, dl) == 0 && (p[dl] == '\0' || p[dl] == '/');
  }
  free(p);
  free(d);
  return inside;
}

char *pf_path_join(const char *a, const char *b) {
  if (!a || !*a) return strdup(b ? b : "");
  if (!b || !*b) return strdup(a);
  size_t al = strlen(a), bl = strlen(b);
  int slash = a[al - 1] != '/';
  char *s = malloc(al + (size_t)slash + bl + 1);
  if (!s) return NULL;
  memcpy(s, a, al);
  if (slash) s[al] = '/';
  memcpy(s + al + (size_t)slash, b, bl + 1);
  return s;
}

uint64_t pf_proc_kb(const char *path, const char *key) {
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  char line[256];
  const size_t n = strlen(key);
  unsigned long long kb = 0;
  while (fgets(line, sizeof line, f))
    if (!strncmp(line, key, n) && line[n] == ':' && sscanf(line + n + 1, "%llu", &kb) == 1) break;
  fclose(f);
  return (uint64_t)kb * 1024;
}

const char *pf_scratch_dir(void) {
  const char *d = getenv("PFRUN_SCRATCH");
  if (!d || !*d) d = getenv("TMPDIR");
  return d && *d ? d : "/var/tmp";
}

void pf_remove_listed(const struct pf_value *files) {
  if (!files || files->type != PF_V_LIST) return;
  for (size_t i = 0; i < files->u.list.len; i++) {
    const pf_value *f = files->u.list.items[i];
    if (f && f->type == PF_V_STR) unlink(f->u.s);
  }
}
