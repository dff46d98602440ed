/* fuzz_recipe.c — the input is a recipe.yaml, run with ctx.dry_run = 1.
 * Leading lines "#set key=value" become --set values (at most 8).
 *
 * Containment: the process works inside its private folder (fz_dir()): the
 * current folder is <dir>/work, PFRUN_CACHE, HOME, XDG_CACHE_HOME and TMPDIR
 * point inside it. On top of that, the file-system calls the library makes
 * (open/openat for writing, mkdir, rename, unlink, unlinkat, remove, mkdtemp,
 * mkstemp, mkostemp, fopen for writing) are wrapped at link time
 * (-Wl,--wrap=..., see the PF_FUZZ block of CMakeLists.txt): while a recipe
 * runs, any of them aimed outside <dir> aborts, which libFuzzer reports as a
 * crash. So a finding is any dry run that tries to write outside a temp dir.
 *
 * Synthetic models: in a dry run, `load` of "synthetic:NAME" opens the cached
 * checkpoint, or plans it and writes only its config and tokenizer files to the
 * cache (pf_synth_open_plan; a real run writes the checkpoint, pf_synth_resolve).
 * The five tiny presets with the default seed and dtype are written once at
 * start, so their dry runs see real checkpoints; any other spec (another seed or
 * dtype, llama-1b) is parsed for real but resolved against a cache path under a
 * regular file, so it fails before writing a byte instead of filling the disk
 * one seed at a time.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"
#include "fuzz_common.h"
#include "recipe.h"
#include "synthetic.h"

#ifndef PF_SOURCE_DIR
#define PF_SOURCE_DIR "."
#endif

static char g_root[PATH_MAX];
static size_t g_root_len;
static volatile int g_guard; /* 1 while pf_recipe_run runs */
static int g_wet;            /* PF_FUZZ_RECIPE_WET=1: not a dry run (guard self-test) */

/* ---- the write guard ---- */

static int under_root(const char *resolved) {
  return !strncmp(resolved, g_root, g_root_len) &&
         (resolved[g_root_len] == '/' || resolved[g_root_len] == '\0');
}

/* 1 if `path` (relative to folder fd `dirfd`, or AT_FDCWD) names something inside
 * the root. A path whose parent does not exist cannot be created: allowed. */
static int inside(int dirfd, const char *path) {
  char abs[PATH_MAX * 2], res[PATH_MAX], base[PATH_MAX];
  if (!path) return 1;
  if (path[0] == '/')
    snprintf(abs, sizeof abs, "%s", path);
  else {
    if (dirfd == AT_FDCWD) {
      if (!getcwd(base, sizeof base)) return 0;
    } else {
      char link[64];
      snprintf(link, sizeof link, "/proc/self/fd/%d", dirfd);
      ssize_t n = readlink(link, base, sizeof base - 1);
      if (n < 0) return 0;
      base[n] = '\0';
    }
    snprintf(abs, sizeof abs, "%s/%s", base, path);
  }
  if (realpath(abs, res)) return under_root(res); /* exists (symlinks followed) */
  char *slash = strrchr(abs, '/');
  while (slash && slash > abs && slash[1] == '\0') { /* trailing '/' */
    *slash = '\0';
    slash = strrchr(abs, '/');
  }
  if (!slash) return 0;
  if (slash == abs) return under_root("/");
  *slash = '\0';
  if (!realpath(abs, res)) return errno == ENOENT || errno == ENOTDIR;
  return under_root(res);
}

static void violation(const char *call, const char *path) {
  g_guard = 0; /* libFuzzer writes the crash file next */
  fprintf(stderr, "FUZZ INVARIANT FAILED: dry-run recipe called %s(\"%s\") outside %s\n", call,
          path ? path : "(null)", g_root);
  abort();
}

#define GUARD(call, dirfd, path)                                                                   \
  do {                                                                                             \
    if (g_guard && !inside(dirfd, path)) violation(call, path);                                    \
  } while (0)

static int writes(int flags) {
  return (flags & O_ACCMODE) != O_RDONLY || (flags & (O_CREAT | O_TRUNC));
}

int __real_open(const char *path, int flags, ...);
int __real_openat(int dirfd, const char *path, int flags, ...);
FILE *__real_fopen(const char *path, const char *mode);
int __real_mkdir(const char *path, mode_t mode);
int __real_rename(const char *a, const char *b);
int __real_unlink(const char *path);
int __real_unlinkat(int dirfd, const char *path, int flags);
int __real_remove(const char *path);
char *__real_mkdtemp(char *tmpl);
int __real_mkstemp(char *tmpl);
int __real_mkostemp(char *tmpl, int flags);
pf_status __real_pf_synth_resolve(const char *spec, char **out_dir, const pf_ctx *ctx, pf_err *err);

int __wrap_open(const char *path, int flags, ...);
int __wrap_open(const char *path, int flags, ...) {
  mode_t mode = 0;
  if (flags & (O_CREAT | O_TMPFILE)) {
    va_list ap;
    va_start(ap, flags);
    mode = (mode_t)va_arg(ap, int);
    va_end(ap);
  }
  if (writes(flags)) GUARD("open", AT_FDCWD, path);
  return __real_open(path, flags, mode);
}

int __wrap_openat(int dirfd, const char *path, int flags, ...);
int __wrap_openat(int dirfd, const char *path, int flags, ...) {
  mode_t mode = 0;
  if (flags & (O_CREAT | O_TMPFILE)) {
    va_list ap;
    va_start(ap, flags);
    mode = (mode_t)va_arg(ap, int);
    va_end(ap);
  }
  if (writes(flags)) GUARD("openat", dirfd, path);
  return __real_openat(dirfd, path, flags, mode);
}

/* libFuzzer writes its artifacts with fopen(..., "wb") (from a signal handler
 * too), so those names are let through. */
static int fuzzer_artifact(const char *path) {
  const char *b = strrchr(path, '/');
  b = b ? b + 1 : path;
  return !strncmp(b, "crash-", 6) || !strncmp(b, "leak-", 5) || !strncmp(b, "timeout-", 8) ||
         !strncmp(b, "oom-", 4) || !strncmp(b, "slow-unit-", 10);
}

FILE *__wrap_fopen(const char *path, const char *mode);
FILE *__wrap_fopen(const char *path, const char *mode) {
  if (path && mode && strpbrk(mode, "wa+") && !fuzzer_artifact(path))
    GUARD("fopen", AT_FDCWD, path);
  return __real_fopen(path, mode);
}

int __wrap_mkdir(const char *path, mode_t mode);
int __wrap_mkdir(const char *path, mode_t mode) {
  GUARD("mkdir", AT_FDCWD, path);
  return __real_mkdir(path, mode);
}

int __wrap_rename(const char *a, const char *b);
int __wrap_rename(const char *a, const char *b) {
  GUARD("rename", AT_FDCWD, a);
  GUARD("rename", AT_FDCWD, b);
  return __real_rename(a, b);
}

int __wrap_unlink(const char *path);
int __wrap_unlink(const char *path) {
  GUARD("unlink", AT_FDCWD, path);
  return __real_unlink(path);
}

int __wrap_unlinkat(int dirfd, const char *path, int flags);
int __wrap_unlinkat(int dirfd, const char *path, int flags) {
  GUARD("unlinkat", dirfd, path);
  return __real_unlinkat(dirfd, path, flags);
}

int __wrap_remove(const char *path);
int __wrap_remove(const char *path) {
  GUARD("remove", AT_FDCWD, path);
  return __real_remove(path);
}

char *__wrap_mkdtemp(char *tmpl);
char *__wrap_mkdtemp(char *tmpl) {
  GUARD("mkdtemp", AT_FDCWD, tmpl);
  return __real_mkdtemp(tmpl);
}

int __wrap_mkstemp(char *tmpl);
int __wrap_mkstemp(char *tmpl) {
  GUARD("mkstemp", AT_FDCWD, tmpl);
  return __real_mkstemp(tmpl);
}

int __wrap_mkostemp(char *tmpl, int flags);
int __wrap_mkostemp(char *tmpl, int flags) {
  GUARD("mkostemp", AT_FDCWD, tmpl);
  return __real_mkostemp(tmpl, flags);
}

/* ---- synthetic models ---- */

static const char *const g_presets[] = {"synthetic:llama-tiny", "synthetic:llama-small",
                                        "synthetic:qwen2-tiny", "synthetic:qwen3-tiny",
                                        "synthetic:mistral-tiny"};
static char g_cache[PATH_MAX], g_blocked_cache[PATH_MAX];

static int is_preset(const char *spec) {
  for (size_t i = 0; i < sizeof g_presets / sizeof g_presets[0]; i++)
    if (spec && !strcmp(spec, g_presets[i])) return 1;
  return 0;
}

pf_status __wrap_pf_synth_resolve(const char *spec, char **out_dir, const pf_ctx *ctx, pf_err *err);
pf_status __wrap_pf_synth_resolve(const char *spec, char **out_dir, const pf_ctx *ctx,
                                  pf_err *err) {
  if (!is_preset(spec)) setenv("PFRUN_CACHE", g_blocked_cache, 1);
  pf_status s = __real_pf_synth_resolve(spec, out_dir, ctx, err);
  setenv("PFRUN_CACHE", g_cache, 1);
  return s;
}

pf_status __real_pf_synth_open_plan(const char *spec, pf_model **out, pf_err *err);
pf_status __wrap_pf_synth_open_plan(const char *spec, pf_model **out, pf_err *err);
pf_status __wrap_pf_synth_open_plan(const char *spec, pf_model **out, pf_err *err) {
  if (!is_preset(spec)) setenv("PFRUN_CACHE", g_blocked_cache, 1);
  pf_status s = __real_pf_synth_open_plan(spec, out, err);
  setenv("PFRUN_CACHE", g_cache, 1);
  return s;
}

/* ---- set-up ---- */

static void mkdir_in_root(const char *rel) {
  char *p = fz_path(rel);
  pf_err err = {0};
  if (pf_mkdirs(p, &err) != PF_OK) {
    fprintf(stderr, "fuzz_recipe: %s\n", err.msg);
    abort();
  }
  free(p);
}

static void copy_in(const char *src_rel, const char *dst_rel) {
  char src[PATH_MAX];
  snprintf(src, sizeof src, "%s/%s", PF_SOURCE_DIR, src_rel);
  char *dst = fz_path(dst_rel);
  if (pf_path_exists(src)) pf_copy_file(src, dst, NULL);
  free(dst);
}

/* The harness changes folder below, before libFuzzer reads its arguments:
 * make relative corpus folders and artifact paths absolute first. */
static void absolute_args(int argc, char **argv) {
  static const char *const flags[] = {"-artifact_prefix=", "-exact_artifact_path=", "-dict="};
  char cwd[PATH_MAX];
  if (!getcwd(cwd, sizeof cwd)) return;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *val = NULL;
    size_t pre = 0;
    if (a[0] != '-') val = a;
    for (size_t k = 0; k < sizeof flags / sizeof flags[0] && !val; k++)
      if (!strncmp(a, flags[k], strlen(flags[k]))) pre = strlen(flags[k]), val = a + pre;
    if (!val || !*val || val[0] == '/') continue;
    size_t n = pre + strlen(cwd) + strlen(val) + 2;
    char *abs = malloc(n); /* lives as long as the process */
    if (!abs) abort();
    snprintf(abs, n, "%.*s%s/%s", (int)pre, a, cwd, val);
    argv[i] = abs;
  }
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  absolute_args(*argc, *argv);
  const char *wet = getenv("PF_FUZZ_RECIPE_WET");
  g_wet = wet && !strcmp(wet, "1");
  snprintf(g_root, sizeof g_root, "%s", fz_dir());
  g_root_len = strlen(g_root);
  mkdir_in_root("work/recipes/data");
  mkdir_in_root("cache");
  mkdir_in_root("home");
  mkdir_in_root("tmp");
  free(fz_write("blocker", "", 0)); /* a file: nothing can be created below it */
  snprintf(g_cache, sizeof g_cache, "%s/cache", g_root);
  snprintf(g_blocked_cache, sizeof g_blocked_cache, "%s/blocker/cache", g_root);
  char buf[PATH_MAX];
  setenv("PFRUN_CACHE", g_cache, 1);
  snprintf(buf, sizeof buf, "%s/home", g_root);
  setenv("HOME", buf, 1);
  snprintf(buf, sizeof buf, "%s/home/.cache", g_root);
  setenv("XDG_CACHE_HOME", buf, 1);
  snprintf(buf, sizeof buf, "%s/tmp", g_root);
  setenv("TMPDIR", buf, 1);
  setenv("OMP_NUM_THREADS", "1", 1);
  /* the bundled texts, so recipes that name recipes/data/... find them */
  copy_in("recipes/data/calib.txt", "work/recipes/data/calib.txt");
  copy_in("recipes/data/eval.txt", "work/recipes/data/eval.txt");
  snprintf(buf, sizeof buf, "%s/work", g_root);
  if (chdir(buf) != 0) abort();
  for (size_t i = 0; i < sizeof g_presets / sizeof g_presets[0]; i++) {
    char *dir = NULL;
    pf_err err = {0};
    if (__real_pf_synth_resolve(g_presets[i], &dir, NULL, &err) != PF_OK) {
      fprintf(stderr, "fuzz_recipe: %s: %s\n", g_presets[i], err.msg);
      abort();
    }
    free(dir);
  }
  return 0;
}

/* ---- one input ---- */

#define MAX_SETS 8

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = malloc(size + 1);
  if (!text) return 0;
  memcpy(text, data, size);
  text[size] = '\0';
  const char *sets[MAX_SETS];
  size_t n_sets = 0;
  char *p = text;
  while (n_sets < MAX_SETS && (size_t)(p - text) < size && !strncmp(p, "#set ", 5)) {
    char *nl = memchr(p, '\n', size - (size_t)(p - text));
    if (!nl) break;
    *nl = '\0';
    sets[n_sets++] = p + 5;
    p = nl + 1;
  }
  /* the recipe keeps the whole input (a "#set" line is a YAML comment) */
  char *path = fz_write("work/recipe.yaml", data, size);
  pf_recipe_opts opts = {.sets = sets, .n_sets = n_sets};
  pf_ctx ctx = {0};
  /* PF_FUZZ_RECIPE_WET=1 runs recipes for real: only to check that the guard
   * catches a write outside (e.g. output_dir: /tmp/elsewhere), never for fuzzing */
  ctx.dry_run = !g_wet;
  pf_value *res = NULL;
  pf_err err = {0};
  g_guard = 1;
  pf_status s = pf_recipe_run(path, &opts, &ctx, &res, &err);
  g_guard = 0;
  if (s == PF_OK)
    FZ_CHECK(res != NULL, "recipe ran but returned no results");
  else
    FZ_CHECK(res == NULL && err.msg[0], "failed recipe left results or no message");
  pf_value_release(res);
  free(path);
  free(text);
  return 0;
}
