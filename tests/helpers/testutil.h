/* testutil.h — shared helpers for the Check suites. */
#ifndef PF_TESTUTIL_H
#define PF_TESTUTIL_H

#include <check.h>

#include "pf.h"

/* Check's ck_assert_msg (and so every ck_assert_* macro, which expand to it) calls
 * _mark_point on each assertion that holds, and that writes a record to Check's
 * message file: one write(2) per passing assertion. In the loops that compare
 * whole tensors that was most of the suites' time (check_tensor under ASan: 53 s,
 * 1.6 s without it). Here a holding assertion costs its comparison only; a failing
 * one is reported exactly as before (_ck_assert_failed: file, line, message). The
 * cost: a test killed by a signal is reported at its last explicit mark_point()
 * (or its start) instead of its last passing assertion; the sanitizer builds print
 * the stack anyway. */
#undef ck_assert_msg
#define ck_assert_msg(expr, ...)                                                                   \
  ((expr) ? (void)0                                                                                \
          : _ck_assert_failed(__FILE__, __LINE__, "Assertion '" #expr "' failed", ##__VA_ARGS__))

/* Fresh temporary folder under $TMPDIR (malloc'd); removed by pf_test_rmtree. */
char *pf_test_tmpdir(const char *tag);
void pf_test_rmtree(const char *path);
/* Path of ../shared/<rel> if it exists (malloc'd), else NULL after printing
 * "SKIP <what>: ../shared not found" to stderr (a visible skip). */
char *pf_test_shared(const char *rel, const char *what);
/* Write a synthetic checkpoint preset into a fresh folder; returns its path. */
char *pf_test_synth(const char *preset, uint64_t seed, const char *dtype_or_null);
/* Remove what pf_test_synth wrote (the temporary folder around <tmp>/model) and
 * free `dir`. NULL is ignored. */
void pf_test_synth_free(char *dir);
/* Load a model through the "load" op (asserting success); the caller releases it. */
struct pf_model;
struct pf_model *pf_test_load(const char *path);
/* A prompt_pairs value: the list [[pr[0][0], pr[0][1]], ...] of n pairs (caller releases). */
struct pf_value;
struct pf_value *pf_test_pairs(const char *const (*pr)[2], size_t n);
/* The bytes of t, materialising a lazy tensor first (tensor.h; ck_assert that
 * this works); NULL for a planned tensor. */
struct pf_tensor;
const void *pf_test_bytes(const struct pf_tensor *t);
/* Replace the first `from` in dir/config.json by `to` (ck_assert that it is there). */
void pf_test_edit_config(const char *dir, const char *from, const char *to);
/* Write text to a file; ck_assert on failure. */
void pf_test_write(const char *path, const char *text);
/* Read a whole file (malloc'd, NUL-terminated) or NULL. */
char *pf_test_read(const char *path, size_t *len);
/* Run the pfrun binary with args (a shell command tail), capturing stdout+stderr
 * into *output (malloc'd); returns the exit status. */
int pf_test_run_pfrun(const char *args, char **output);
/* A fresh folder that is a tmpfs of `kb` KiB (rounded up to pages; nothing else on
 * it), so that writes past kb KiB fail with ENOSPC: a full disk. It is mounted in a
 * private mount namespace of this process (unshare(CLONE_NEWNS), propagation made
 * private: the host never sees it; children and forked workers share it). Needs
 * CAP_SYS_ADMIN: otherwise NULL after printing "SKIP <what>: ..." (a visible skip).
 * malloc'd; pf_test_small_fs_free unmounts and removes it and frees the path. */
char *pf_test_small_fs(size_t kb, const char *what);
void pf_test_small_fs_free(char *dir);
/* Standard main: runs the suite built by `make_suite`, exit status for CTest. */
int pf_test_main(Suite *(*make_suite)(void));

/* ck_assert that err's message contains `needle`. */
#define pf_assert_err(err, needle)                                                                 \
  ck_assert_msg(strstr((err).msg, (needle)) != NULL, "expected error containing '%s', got '%s'",   \
                (needle), (err).msg)

#endif
