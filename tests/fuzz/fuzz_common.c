/* fuzz_common.c — see fuzz_common.h. */
#include "fuzz_common.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"
#include "safetensors.h"

static char g_dir[4096];
static pid_t g_owner;

static void remove_dir(void) {
  if (g_dir[0] && getpid() == g_owner) pf_remove_tree(g_dir, NULL);
}

static int writable_dir(const char *d) {
  struct stat sb;
  return d && *d && stat(d, &sb) == 0 && S_ISDIR(sb.st_mode) && access(d, W_OK | X_OK) == 0;
}

const char *fz_dir(void) {
  if (g_dir[0]) return g_dir;
  const char *cands[] = {getenv("PF_FUZZ_TMP"), getenv("TMPDIR"), "/dev/shm", "/tmp"};
  const char *base = NULL;
  for (size_t i = 0; i < sizeof cands / sizeof cands[0] && !base; i++)
    if (writable_dir(cands[i])) base = cands[i];
  if (!base) {
    fprintf(stderr, "fuzz: no writable temporary folder\n");
    abort();
  }
  char tmpl[4096];
  snprintf(tmpl, sizeof tmpl, "%s/pfrun-fuzz-XXXXXX", base);
  if (!mkdtemp(tmpl)) {
    fprintf(stderr, "fuzz: mkdtemp %s: %s\n", tmpl, strerror(errno));
    abort();
  }
  /* realpath: the recipe harness compares resolved paths against this one */
  if (!realpath(tmpl, g_dir)) snprintf(g_dir, sizeof g_dir, "%s", tmpl);
  g_owner = getpid();
  atexit(remove_dir);
  return g_dir;
}

char *fz_path(const char *name) {
  char *p = pf_path_join(fz_dir(), name);
  if (!p) abort();
  return p;
}

char *fz_write(const char *name, const void *data, size_t n) {
  char *p = fz_path(name);
  pf_err err = {0};
  if (pf_write_file(p, data, n, &err) != PF_OK) {
    fprintf(stderr, "fuzz: %s\n", err.msg);
    abort();
  }
  return p;
}

void fz_remove(const char *name) {
  char *p = fz_path(name);
  pf_remove_tree(p, NULL);
  free(p);
}

size_t fz_utf8_invalid_at(const void *s, size_t n) {
  const unsigned char *u = s;
  size_t i = 0;
  while (i < n) {
    unsigned c = u[i];
    size_t len;
    unsigned lo = 0x80, hi = 0xBF;
    if (c <= 0x7F) {
      i++;
      continue;
    } else if (c >= 0xC2 && c <= 0xDF)
      len = 2;
    else if (c == 0xE0)
      len = 3, lo = 0xA0;
    else if (c == 0xED)
      len = 3, hi = 0x9F;
    else if (c >= 0xE1 && c <= 0xEF)
      len = 3;
    else if (c == 0xF0)
      len = 4, lo = 0x90;
    else if (c == 0xF4)
      len = 4, hi = 0x8F;
    else if (c >= 0xF1 && c <= 0xF3)
      len = 4;
    else
      return i;
    if (i + len > n) return i;
    if (u[i + 1] < lo || u[i + 1] > hi) return i;
    for (size_t k = 2; k < len; k++)
      if (u[i + k] < 0x80 || u[i + k] > 0xBF) return i;
    i += len;
  }
  return SIZE_MAX;
}

int fz_split_args(const uint8_t *data, size_t n, int max, char ***argv, char **block) {
  char *b = malloc(n + 1);
  char **v = malloc(((size_t)max + 1) * sizeof *v);
  if (!b || !v) abort();
  memcpy(b, data, n);
  b[n] = '\0';
  int argc = 0;
  size_t start = 0;
  for (size_t i = 0; i <= n && argc < max; i++) {
    if (i == n || b[i] == '\0' || b[i] == '\n') {
      b[i] = '\0';
      if (i < n || i > start) v[argc++] = b + start; /* no empty last piece */
      start = i + 1;
    }
  }
  v[argc] = NULL;
  *argv = v;
  *block = b;
  return argc;
}

/* ---- safetensors ---- */

static volatile unsigned char g_sink;

void fz_check_st_reader(const pf_st_reader *r) {
  size_t n = pf_st_count(r);
  uint64_t total = 0;
  for (size_t i = 0; i < n; i++) {
    const char *name = pf_st_name(r, i);
    FZ_CHECK(name != NULL, "tensor %zu has no name", i);
    if (i) FZ_CHECK(strcmp(pf_st_name(r, i - 1), name) < 0, "names not sorted/unique at %zu", i);
    FZ_CHECK(pf_st_has(r, name), "pf_st_has('%s') is 0", name);
    pf_tensor *t = NULL;
    pf_err err = {0};
    pf_status s = pf_st_get(r, name, &t, &err);
    FZ_CHECK(s == PF_OK, "pf_st_get('%s') failed after a successful open: %s", name, err.msg);
    int64_t numel = pf_tensor_numel(t);
    FZ_CHECK(numel >= 0 && (uint64_t)numel * pf_dtype_size(t->dtype) == t->nbytes,
             "'%s': nbytes %zu disagrees with the shape", name, t->nbytes);
    if (t->nbytes) {
      const unsigned char *d = t->data;
      g_sink ^= d[0];
      g_sink ^= d[t->nbytes - 1];
    }
    total += t->nbytes;
    pf_tensor_release(t);
  }
  FZ_CHECK(total == pf_st_total_bytes(r), "total_bytes %llu, sum of views %llu",
           (unsigned long long)pf_st_total_bytes(r), (unsigned long long)total);
  const char *missing = "\x01no such tensor";
  pf_tensor *t = NULL;
  if (!pf_st_has(r, missing))
    FZ_CHECK(pf_st_get(r, missing, &t, NULL) == PF_ERR_NOT_FOUND && !t, "lookup of a missing name");
  (void)pf_st_metadata(r, "format");
  (void)pf_st_shard_count(r);
}
