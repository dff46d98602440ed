/* fsutil.h — small file-system helpers with pf_err reporting. */
#ifndef PF_FSUTIL_H
#define PF_FSUTIL_H

#include <stdint.h>
#include <stdio.h>

#include "pf.h"

/* Every input file is opened through pf_open_input / pf_fopen_input (or the
 * readers built on them), so that a FIFO, a directory or a device where a file
 * is expected is refused at once instead of blocking or misbehaving:
 *   "<path>: expected a regular file, found a FIFO" (PF_ERR_IO).
 * The path is stat'ed first (a device is never opened), then opened with
 * O_NONBLOCK (a FIFO swapped in between returns at once) and fstat'ed again;
 * O_NONBLOCK is cleared before the descriptor is handed out. Symbolic links
 * are followed. Missing file: PF_ERR_NOT_FOUND "<path>: cannot open: No such
 * file or directory"; other failures PF_ERR_IO "<path>: cannot open: <why>".
 * *size (may be NULL) gets the file's size. On failure *fd is -1 / *out NULL. */
pf_status pf_open_input(const char *path, int *fd, uint64_t *size, pf_err *err);
pf_status pf_fopen_input(const char *path, FILE **out, uint64_t *size, pf_err *err);
/* "a regular file", "a folder", "a FIFO", "a character device", "a block
 * device", "a socket", "a symbolic link" or "an unknown kind of file" for an
 * st_mode, for messages. */
const char *pf_file_kind(unsigned int st_mode);

/* Read a whole file into a NUL-terminated malloc'd buffer (limit: max_bytes).
 * Opened with pf_open_input: anything but a regular file is refused. */
pf_status pf_read_file(const char *path, size_t max_bytes, char **out, size_t *len, pf_err *err);
/* Write a whole file (created 0644, truncated), fsync'd. A symbolic link's target is
 * replaced as a file is (staged beside it, renamed onto it; the link stays); the
 * process's own descriptors (/dev/stdout, /dev/stderr, /dev/fd/N, /proc/self/fd/N)
 * are written through the descriptor, never reopened and truncated. */
pf_status pf_write_file(const char *path, const void *data, size_t len, pf_err *err);
/* pf_write_file in two steps, for an output that must appear only if other work then
 * succeeds (a stats file beside the checkpoint it describes) while a full disk or a
 * file-size limit shows before that work commits: pf_stage_file writes and fsyncs the
 * bytes into a temporary sibling (registered for clean-up; a device or pipe target keeps
 * a copy of the bytes instead); pf_staged_commit renames it into place (writes the
 * device); pf_staged_discard removes it. Both end the staging. */
typedef struct pf_staged {
  char *tmp, *path;
  void *data; /* device or pipe targets: the bytes, written at commit */
  size_t len;
} pf_staged;
pf_status pf_stage_file(const char *path, const void *data, size_t len, pf_staged *out,
                        pf_err *err);
pf_status pf_staged_commit(pf_staged *s, pf_err *err);
void pf_staged_discard(pf_staged *s); /* zeroed or committed staging: no-op */
/* Whether pf_write_file(path) can succeed, checked before long work: path is not a
 * folder and, unless it is a device or pipe, a file can be created beside it (one is
 * created and removed). PF_ERR_IO naming the path and the reason otherwise. */
pf_status pf_check_writable_file(const char *path, pf_err *err);
/* Copy a regular file (src opened with pf_open_input). */
pf_status pf_copy_file(const char *src, const char *dst, pf_err *err);
/* mkdir -p; only the missing folders are created (mkdir is not called on existing
 * ones, e.g. "/" or "/home", where a guard or a read-only parent may object). */
pf_status pf_mkdirs(const char *path, pf_err *err);
/* The top-most missing folder among the ancestors of `path` (what a mkdir -p of
 * its parent would create first), malloc'd; NULL if the parent exists. */
char *pf_missing_parent(const char *path);
/* rmdir the ancestors of `path` from its parent up to `top` (from
 * pf_missing_parent), stopping at the first that is not empty. NULL top: no-op. */
void pf_remove_empty_parents(const char *path, const char *top);
/* The same for a folder: the top-most missing folder among `dir` and its ancestors
 * (what pf_mkdirs(dir) will create first), malloc'd; NULL if `dir` exists. An op
 * that creates its output folder notes it first, and after a failure, once its
 * files are removed, takes away what it created with pf_remove_empty_dirs: rmdir
 * `dir` and its ancestors up to `top`, stopping at the first that is not empty
 * (something else was put there). NULL top: no-op. */
char *pf_missing_dir(const char *dir);
void pf_remove_empty_dirs(const char *dir, const char *top);
/* unlink every string of `files` (a pf_value list, may be NULL): what an op wrote
 * before it failed, so that it leaves no partial output. Best effort, quiet. */
struct pf_value;
void pf_remove_listed(const struct pf_value *files);
/* rm -rf (does not follow symlinks); missing path is OK. */
pf_status pf_remove_tree(const char *path, pf_err *err);
/* The same, async-signal-safe (system calls and stack buffers only): 0 or errno. */
int pf_remove_tree_raw(const char *path);
/* Where unlinked scratch files go: $PFRUN_SCRATCH, else $TMPDIR, else /var/tmp. */
const char *pf_scratch_dir(void);
/* Bytes of a "Key:  N kB" line of a /proc file (e.g. "/proc/meminfo",
 * "MemAvailable"); 0 when the file or the key is missing. */
uint64_t pf_proc_kb(const char *path, const char *key);
int pf_path_exists(const char *path);
/* For a missing `path` in an error message: " (relative to the current folder
 * /abs/cwd)" when path is relative, else "". Writes at most n bytes; returns out. */
const char *pf_relative_hint(const char *path, char *out, size_t n);
int pf_is_dir(const char *path);
/* 1 if directory exists and has no entries. */
int pf_dir_is_empty(const char *path);
/* Canonical absolute path (realpath of the longest existing prefix + the rest). malloc'd. */
char *pf_abspath(const char *path);
/* 1 if `path` equals `dir` or lies inside it (after pf_abspath on both). */
int pf_path_inside(const char *path, const char *dir);
/* malloc'd "a/b". */
char *pf_path_join(const char *a, const char *b);
/* Create a fresh temporary sibling folder "<target>.tmp-<host>-<pid>-XXXXXX"
 * (parent created), registered for pf_cleanup_temps from the moment it exists (a
 * signal in between cannot leave it). malloc'd path. First removes the stale ones
 * of the same target (pf_temp_sweep_stale). */
pf_status pf_make_temp_sibling(const char *target, char **out, pf_err *err);
/* Remove the temporary siblings (folders and files) of `target` that a process of this
 * machine made and that outlived it (killed by SIGKILL, the OOM killer or an
 * MPI launcher before it could remove them): the pid in the name is gone.
 * Folders of other machines (a shared file system) and of live processes stay.
 * Returns how many were removed. */
int pf_temp_sweep_stale(const char *target);
/* Create "<path>.tmp-<owner>-<pid>-<n>", a new file (O_EXCL, mode 0644 less the
 * umask) beside `path` to be written and renamed over it, after removing the
 * stale ones as pf_make_temp_sibling does. On success *tmp (malloc'd) is
 * registered with pf_temp_register and *fd is open for writing; the caller
 * unregisters and frees it. Returns 0 or an errno value (ENOMEM: out of memory). */
int pf_temp_file_create(const char *path, char **tmp, int *fd);
/* The "<host>" part of those names: the host name ([A-Za-z0-9._], others '_')
 * and "_p<pid namespace id>" (containers may share a host name, not pids). */
void pf_temp_owner_tag(char *out, size_t n);
/* Register / unregister a temporary folder to be removed by pf_cleanup_temps()
 * (the front end calls it from its SIGINT/SIGTERM handler and at exit). */
void pf_temp_register(const char *path);
void pf_temp_unregister(const char *path);
void pf_cleanup_temps(void); /* async-signal-tolerant best effort */
/* In a forked worker: forget the parent's registered paths (not removed), so that
 * the worker's interrupt or crash removes only what the worker itself registers
 * (and let go of the janitor's pipe). */
void pf_temp_forget_inherited(void);
/* Start the janitor: a process of its own session that learns every registered
 * path and, when this process ends in any way (SIGKILL included: an MPI launcher
 * sends it a moment after SIGTERM), removes those still registered, then ends.
 * Call before any thread or MPI starts. 0, or -1 when it could not start (then
 * only the signal handlers clean up). */
int pf_temp_janitor_start(void);
/* Atomically move `tmp` into place at `dst`, judging what is at `dst` at that moment
 * (another run or the user may have made, filled or removed it during the save):
 *  - PF_COMMIT_NEW: `dst` must not exist ("already exists", never replaced);
 *  - PF_COMMIT_EMPTY: as NEW, but an empty folder at `dst` is replaced (rmdir, which
 *    fails on a folder that something wrote into: "not empty any more");
 *  - PF_COMMIT_ANY (overwrite): whatever is at `dst` is replaced: the two are exchanged
 *    atomically (renameat2 RENAME_EXCHANGE) and the old copy removed; where the file
 *    system cannot exchange, the old copy is moved aside, `tmp` renamed, and the old
 *    copy removed.
 * Once `tmp` is in place the commit has succeeded: an old copy that cannot be removed
 * (a read-only folder inside it) is left, and *left (when not NULL) gets
 * "PATH (reason)", malloc'd; else NULL. */
enum { PF_COMMIT_NEW = 0, PF_COMMIT_EMPTY = 1, PF_COMMIT_ANY = 2 };
pf_status pf_commit_dir(const char *tmp, const char *dst, int replace, char **left, pf_err *err);

#endif
