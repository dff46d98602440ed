/* fuzz_dataset.c — the calibration/eval text reader (pf_data_read_samples, the
 * one pf_dataset_load and `pfrun tokenize --input` use). The first input byte
 * picks the file kind (even: data.jsonl, odd: data.txt) and the rest is the
 * file. Invariants: every sample handed to the callback is valid UTF-8 of the
 * stated length with a NUL after it, lines are positive and non-decreasing; a
 * failed read has a message; the digest is 64 hex digits. */
#include <string.h>

#include "dataset.h"
#include "fuzz_common.h"

typedef struct seen {
  int64_t last_line, samples;
} seen;

static pf_status on_sample(void *user, const char *text, size_t len, int64_t line, int *stop,
                           pf_err *err) {
  seen *s = user;
  FZ_CHECK(text && text[len] == '\0', "sample not NUL-terminated");
  FZ_CHECK(fz_utf8_invalid_at(text, len) == SIZE_MAX, "sample %lld is not UTF-8",
           (long long)s->samples);
  FZ_CHECK(line >= 1 && line >= s->last_line, "line %lld after %lld", (long long)line,
           (long long)s->last_line);
  s->last_line = line;
  s->samples++;
  return PF_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0) return 0;
  const char *name = (data[0] & 1) ? "data.txt" : "data.jsonl";
  char *path = fz_write(name, data + 1, size - 1);
  seen s = {0, 0};
  char hex[65] = "";
  pf_err err = {0};
  pf_status st =
      pf_data_read_samples(path, (data[0] & 2) ? "content" : "text", on_sample, &s, hex, &err);
  if (st != PF_OK)
    FZ_CHECK(err.msg[0], "failed read without a message");
  else
    FZ_CHECK(strlen(hex) == 64 && strspn(hex, "0123456789abcdef") == 64, "digest '%s'", hex);
  fz_remove(name);
  free(path);
  return 0;
}
