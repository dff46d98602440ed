/* hash.c — SHA-256 digests of buffers, files and checkpoint folders (see hash.h).
 *
 * The compression function is Nettle's: checkpoint hashes stream gigabytes (the
 * report hashes both checkpoints), and Nettle's fat build runs SHA-NI or its
 * assembly where the CPU has them (bench/bench_hash.c; bench/README.md). */
#include "hash.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fsutil.h"

void pf_sha256_init(pf_sha256 *s) {
  sha256_init(&s->ctx);
}

void pf_sha256_update(pf_sha256 *s, const void *data, size_t len) {
  if (len) sha256_update(&s->ctx, len, data);
}

void pf_sha256_final(pf_sha256 *s, uint8_t out[PF_SHA256_BYTES]) {
  sha256_digest(&s->ctx, SHA256_DIGEST_SIZE, out);
}

void pf_sha256_to_hex(const uint8_t d[PF_SHA256_BYTES], char hex[PF_SHA256_HEX]) {
  static const char digits[] = "0123456789abcdef";
  for (int i = 0; i < PF_SHA256_BYTES; i++) {
    hex[2 * i] = digits[d[i] >> 4];
    hex[2 * i + 1] = digits[d[i] & 15];
  }
  hex[2 * PF_SHA256_BYTES] = '\0';
}

void pf_sha256_final_hex(pf_sha256 *s, char hex[PF_SHA256_HEX]) {
  uint8_t d[PF_SHA256_BYTES];
  pf_sha256_final(s, d);
  pf_sha256_to_hex(d, hex);
}

void pf_sha256_hex(const void *data, size_t len, char hex[PF_SHA256_HEX]) {
  pf_sha256 s;
  pf_sha256_init(&s);
  pf_sha256_update(&s, data, len);
  pf_sha256_final_hex(&s, hex);
}

/* ---- files ---- */

#define CHUNK ((size_t)1 << 20)

/* Stream the rest of f into s; *n gets the byte count. */
static pf_status hash_stream(pf_sha256 *s, FILE *f, const char *path, uint8_t *buf, uint64_t *n,
                             const pf_ctx *ctx, pf_err *err) {
  size_t r;
  *n = 0;
  while ((r = fread(buf, 1, CHUNK, f)) > 0) {
    pf_sha256_update(s, buf, r);
    *n += r;
    if (ctx && ctx->interrupt && *ctx->interrupt) /* a GB a second: a signal waits <= 1 ms */
      return pf_ctx_check_interrupt(ctx, err);
  }
  if (ferror(f)) return pf_err_set(err, PF_ERR_IO, "%s: read error", path);
  return PF_OK;
}

pf_status pf_sha256_file(const char *path, char hex[PF_SHA256_HEX], pf_err *err) {
  FILE *f = NULL;
  uint8_t *buf = NULL;
  uint64_t n = 0;
  pf_sha256 s;
  pf_status st;
  hex[0] = '\0';
  if ((st = pf_fopen_input(path, &f, NULL, err))) return st;
  if (!(buf = malloc(CHUNK))) {
    st = pf_err_set(err, PF_ERR_NOMEM, "out of memory");
    goto done;
  }
  pf_sha256_init(&s);
  if ((st = hash_stream(&s, f, path, buf, &n, NULL, err))) goto done;
  pf_sha256_final_hex(&s, hex);
done:
  free(buf);
  fclose(f);
  return st;
}

static int cmp_names(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Names of the regular files directly in dir, sorted (malloc'd array of malloc'd strings). */
static pf_status list_files(const char *dir, char ***out, size_t *count, pf_err *err) {
  DIR *d = opendir(dir);
  char **names = NULL, *path = NULL;
  size_t n = 0, cap = 0;
  pf_status st = PF_OK;
  *out = NULL;
  *count = 0;
  if (!d)
    return pf_err_set(err, errno == ENOENT ? PF_ERR_NOT_FOUND : PF_ERR_IO, "%s: %s", dir,
                      strerror(errno));
  for (struct dirent *e; (e = readdir(d)) != NULL;) {
    struct stat sb;
    size_t need = strlen(dir) + strlen(e->d_name) + 2;
    if (!(path = malloc(need))) goto nomem;
    snprintf(path, need, "%s/%s", dir, e->d_name);
    int regular = stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
    free(path);
    path = NULL;
    if (!regular) continue;
    if (n == cap) {
      char **grown = realloc(names, (cap = cap ? 2 * cap : 16) * sizeof *names);
      if (!grown) goto nomem;
      names = grown;
    }
    if (!(names[n] = strdup(e->d_name))) goto nomem;
    n++;
  }
  closedir(d);
  qsort(names, n, sizeof *names, cmp_names);
  *out = names;
  *count = n;
  return PF_OK;
nomem:
  st = pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  closedir(d);
  for (size_t i = 0; i < n; i++)
    free(names[i]);
  free(names);
  return st;
}

pf_status pf_sha256_dir_files(const char *dir, char hex[PF_SHA256_HEX], pf_err *err) {
  return pf_sha256_dir_files_ctx(dir, hex, NULL, err);
}

pf_status pf_sha256_dir_files_ctx(const char *dir, char hex[PF_SHA256_HEX], const pf_ctx *ctx,
                                  pf_err *err) {
  char **names = NULL, *path = NULL;
  size_t n = 0;
  uint8_t *buf = NULL;
  FILE *f = NULL;
  pf_sha256 s;
  pf_status st;
  hex[0] = '\0';
  if ((st = list_files(dir, &names, &n, err))) return st;
  if (!(buf = malloc(CHUNK))) {
    st = pf_err_set(err, PF_ERR_NOMEM, "out of memory");
    goto done;
  }
  pf_sha256_init(&s);
  for (size_t i = 0; i < n; i++) {
    uint64_t size = 0, got = 0;
    uint8_t le[8];
    size_t need = strlen(dir) + strlen(names[i]) + 2;
    if (!(path = malloc(need))) {
      st = pf_err_set(err, PF_ERR_NOMEM, "out of memory");
      goto done;
    }
    snprintf(path, need, "%s/%s", dir, names[i]);
    if ((st = pf_fopen_input(path, &f, &size, err))) goto done;
    pf_sha256_update(&s, names[i], strlen(names[i]) + 1); /* with its NUL */
    for (int b = 0; b < 8; b++)
      le[b] = (uint8_t)(size >> (8 * b));
    pf_sha256_update(&s, le, sizeof le);
    if ((st = hash_stream(&s, f, path, buf, &got, ctx, err))) goto done;
    if (got != size) {
      st = pf_err_set(err, PF_ERR_IO, "%s: expected %llu bytes, read %llu (file changed?)", path,
                      (unsigned long long)size, (unsigned long long)got);
      goto done;
    }
    fclose(f);
    f = NULL;
    free(path);
    path = NULL;
  }
  pf_sha256_final_hex(&s, hex);
done:
  if (f) fclose(f);
  free(path);
  free(buf);
  for (size_t i = 0; i < n; i++)
    free(names[i]);
  free(names);
  return st;
}
