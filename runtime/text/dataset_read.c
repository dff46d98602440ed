/* dataset_read.c — the sample reader of dataset.h: .jsonl records and .txt
 * paragraphs, streamed line by line with every byte hashed on the way.
 *
 * Why stream: calibration files can be large and `samples` usually asks for
 * the first few hundred records, so the reader parses only until the caller
 * says stop, then just hashes the rest (the fingerprint covers the whole file
 * so that any edit invalidates a cache). Lines are bounded by PF_DATA_MAX_LINE
 * so a file without newlines cannot exhaust memory.
 *
 * JSON lines are parsed with cJSON (strict enough: it refuses trailing
 * garbage with require_null_terminated). cJSON strings are NUL-terminated, so
 * a "\u0000" escape would silently cut a text short; such lines are refused
 * with a clear message instead. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "dataset.h"
#include "fsutil.h"
#include "json.h"

#define CHUNK ((size_t)1 << 16)

typedef struct reader {
  FILE *f;
  const char *path;
  pf_sha256 sha;
  char *chunk;     /* [CHUNK] read buffer */
  size_t pos, end; /* unread bytes are chunk[pos, end) */
  char *line;      /* current line without its "\n", NUL-terminated */
  size_t len, cap;
  int64_t lineno; /* 1-based number of the current line */
  int eof;
} reader;

static pf_status fill(reader *r, pf_err *err) {
  r->pos = 0;
  r->end = fread(r->chunk, 1, CHUNK, r->f);
  if (r->end == 0) {
    if (ferror(r->f)) return pf_err_set(err, PF_ERR_IO, "%s: read error", r->path);
    r->eof = 1;
  }
  pf_sha256_update(&r->sha, r->chunk, r->end);
  return PF_OK;
}

static pf_status append(reader *r, const char *p, size_t n, pf_err *err) {
  if (r->len + n > PF_DATA_MAX_LINE)
    return pf_err_set(err, PF_ERR_INVALID, "%s:%lld: line longer than %zu MiB (the limit)", r->path,
                      (long long)r->lineno, PF_DATA_MAX_LINE >> 20);
  if (r->len + n + 1 > r->cap) {
    size_t cap = r->cap ? r->cap : 256;
    while (cap < r->len + n + 1)
      cap *= 2;
    char *grown = realloc(r->line, cap);
    if (!grown) return pf_err_set(err, PF_ERR_NOMEM, "out of memory");
    r->line = grown, r->cap = cap;
  }
  memcpy(r->line + r->len, p, n);
  r->len += n;
  r->line[r->len] = '\0';
  return PF_OK;
}

/* Next line into r->line; *got = 0 at the end of the file. */
static pf_status next_line(reader *r, int *got, pf_err *err) {
  pf_status st;
  int any = 0;
  *got = 0;
  r->len = 0;
  if ((st = append(r, "", 0, err))) return st;
  r->lineno++;
  for (;;) {
    if (r->pos == r->end) {
      if (r->eof || (st = fill(r, err))) return st;
      if (r->eof) break;
    }
    char *nl = memchr(r->chunk + r->pos, '\n', r->end - r->pos);
    size_t n = nl ? (size_t)(nl - (r->chunk + r->pos)) : r->end - r->pos;
    any = 1;
    if ((st = append(r, r->chunk + r->pos, n, err))) return st;
    r->pos += n + (nl != NULL);
    if (nl) break;
  }
  if (!any) return PF_OK;
  if (r->lineno == 1 && r->len >= 3 && !memcmp(r->line, "\xEF\xBB\xBF", 3)) {
    memmove(r->line, r->line + 3, r->len - 2); /* drop the BOM, keep the NUL */
    r->len -= 3;
  }
  *got = 1;
  return PF_OK;
}

/* Hash whatever is left of the file. */
static pf_status drain(reader *r, pf_err *err) {
  pf_status st;
  while (!r->eof)
    if ((st = fill(r, err))) return st;
  return PF_OK;
}

static int blank(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\f' && s[i] != '\v') return 0;
  return 1;
}

typedef struct sink {
  pf_data_sample_fn fn;
  void *ud;
  int64_t count;
  int stop;
} sink;

static pf_status emit(reader *r, sink *k, const char *text, size_t len, int64_t line, pf_err *err) {
  if (++k->count > PF_DATA_MAX_SAMPLES)
    return pf_err_set(err, PF_ERR_INVALID, "%s:%lld: more than %lld samples (the limit)", r->path,
                      (long long)line, (long long)PF_DATA_MAX_SAMPLES);
  return k->fn(k->ud, text, len, line, &k->stop, err);
}

static pf_status jsonl_line(reader *r, const char *field, sink *k, pf_err *err) {
  const char *path = r->path;
  long long ln = (long long)r->lineno;
  cJSON *root = NULL;
  pf_status st = pf_jsonl_object(r->line, r->len, &root, err); /* as json.loads, or refused */
  if (st) return pf_err_prefix(err, "%s:%lld", path, ln);
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, field);
  if (!cJSON_IsString(v))
    st = pf_err_set(err, PF_ERR_FORMAT, "%s:%lld: expected a string field \"%s\", found %s", path,
                    ln, field, pf_json_kind(v));
  else
    st = emit(r, k, v->valuestring, strlen(v->valuestring), r->lineno, err);
  cJSON_Delete(root);
  return st;
}

static pf_status read_jsonl(reader *r, const char *field, sink *k, pf_err *err) {
  pf_status st;
  int got;
  while (!k->stop) {
    if ((st = next_line(r, &got, err))) return st;
    if (!got) break;
    if (blank(r->line, r->len)) continue;
    if ((st = jsonl_line(r, field, k, err))) return st;
  }
  return PF_OK;
}

/* A finished paragraph: check UTF-8 (naming the line of the bad byte), emit. */
static pf_status paragraph(reader *r, sink *k, const char *p, size_t n, int64_t first,
                           pf_err *err) {
  size_t bad = pf_utf8_invalid_at(p, n);
  if (bad < n) {
    int64_t line = first;
    size_t col = bad;
    for (size_t i = 0; i < bad; i++)
      if (p[i] == '\n') line++, col = bad - i - 1;
    return pf_err_set(err, PF_ERR_FORMAT, "%s:%lld: not valid UTF-8 at column %zu", r->path,
                      (long long)line, col + 1);
  }
  return emit(r, k, p, n, first, err);
}

static pf_status read_txt(reader *r, sink *k, pf_err *err) {
  char *para = NULL;
  size_t len = 0, cap = 0;
  int64_t first = 0;
  pf_status st = PF_OK;
  int got = 1;
  while (!k->stop && got) {
    if ((st = next_line(r, &got, err))) goto done;
    size_t n = r->len;
    if (got && n && r->line[n - 1] == '\r') n--;
    if (!got || blank(r->line, n)) {
      if (len && (st = paragraph(r, k, para, len, first, err))) goto done;
      len = 0;
      continue;
    }
    if (!len) first = r->lineno;
    size_t need = len + (len ? 1 : 0) + n + 1; /* with the NUL */
    if (need - 1 > PF_DATA_MAX_LINE) {
      st = pf_err_set(err, PF_ERR_INVALID, "%s:%lld: paragraph longer than %zu MiB (the limit)",
                      r->path, (long long)first, PF_DATA_MAX_LINE >> 20);
      goto done;
    }
    if (need > cap) {
      size_t c = cap ? cap : 1024;
      while (c < need)
        c *= 2;
      char *grown = realloc(para, c);
      if (!grown) {
        st = pf_err_set(err, PF_ERR_NOMEM, "out of memory");
        goto done;
      }
      para = grown, cap = c;
    }
    if (len) para[len++] = '\n';
    memcpy(para + len, r->line, n);
    len += n;
    para[len] = '\0';
  }
done:
  free(para);
  return st;
}

typedef enum kind { KIND_JSONL, KIND_TXT } kind;

static int has_ext(const char *path, const char *ext) {
  size_t n = strlen(path), m = strlen(ext);
  const char *slash = strrchr(path, '/');
  const char *base = slash ? slash + 1 : path;
  return (size_t)(path + n - base) > m && strcasecmp(path + n - m, ext) == 0;
}

static pf_status open_data(const char *path, kind *k, FILE **f, pf_err *err) {
  struct stat sb;
  *f = NULL;
  if (!path || !*path) return pf_err_set(err, PF_ERR_INVALID, "data: expected a file path");
  if (stat(path, &sb) != 0) { /* first: a path that is not there is not a kind problem */
    char hint[4200];
    if (errno == ENOENT)
      return pf_err_set(err, PF_ERR_NOT_FOUND, "%s: no such data file%s", path,
                        pf_relative_hint(path, hint, sizeof hint));
    return pf_err_set(err, PF_ERR_IO, "%s: %s", path, strerror(errno));
  }
  if (has_ext(path, ".jsonl"))
    *k = KIND_JSONL;
  else if (has_ext(path, ".txt"))
    *k = KIND_TXT;
  else
    return pf_err_set(err, PF_ERR_INVALID,
                      "%s: unsupported data file kind (expected .jsonl: one JSON object per "
                      "line, or .txt: paragraphs separated by blank lines)",
                      path);
  if (!S_ISREG(sb.st_mode))
    return pf_err_set(err, PF_ERR_INVALID, "%s: expected a data file, found %s", path,
                      pf_file_kind(sb.st_mode));
  if (sb.st_size == 0) return pf_err_set(err, PF_ERR_FORMAT, "%s: the data file is empty", path);
  return pf_fopen_input(path, f, NULL, err); /* refuses a FIFO put there since the stat */
}

pf_status pf_data_read_samples(const char *path, const char *text_field, pf_data_sample_fn fn,
                               void *user_data, char *sha256_hex, pf_err *err) {
  reader r = {.path = path};
  sink k = {.fn = fn, .ud = user_data};
  kind kd = KIND_JSONL;
  pf_status st;
  if (sha256_hex) sha256_hex[0] = '\0';
  if (!text_field || !*text_field)
    return pf_err_set(err, PF_ERR_INVALID, "text_field: expected a non-empty field name");
  if ((st = open_data(path, &kd, &r.f, err))) return st;
  pf_sha256_init(&r.sha);
  if (!(r.chunk = malloc(CHUNK))) {
    st = pf_err_set(err, PF_ERR_NOMEM, "out of memory");
    goto done;
  }
  st = kd == KIND_JSONL ? read_jsonl(&r, text_field, &k, err) : read_txt(&r, &k, err);
  if (st || (st = drain(&r, err))) goto done;
  if (k.count == 0) {
    st = pf_err_set(err, PF_ERR_FORMAT, "%s: no samples (the file holds only blank lines)", path);
    goto done;
  }
  if (sha256_hex) pf_sha256_final_hex(&r.sha, sha256_hex);
done:
  fclose(r.f);
  free(r.chunk);
  free(r.line);
  return st;
}
