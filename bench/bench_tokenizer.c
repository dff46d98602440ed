/* bench_tokenizer.c — single-thread encode throughput of runtime/text/tokenizer.
 *
 * Not built by `all`: `cmake --build build --target bench_tokenizer` (or `benches`), then
 *   build/bench_tokenizer [TOKENIZER_DIR] [JSONL] [PASSES]
 *
 * Defaults: ../shared/tokenizers/llama3, ../shared/data/brown-calib.jsonl, 5 passes.
 * Every "text" of the JSONL file is encoded (add_special = 0), one call per text.
 * Pass 1 starts with an empty word cache (as a fresh tokenizer would); later passes
 * show the steady state. MB are 10^6 bytes of input UTF-8.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fsutil.h"
#include "tokenizer.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
  const char *dir = argc > 1 ? argv[1] : "../shared/tokenizers/llama3";
  const char *data = argc > 2 ? argv[2] : "../shared/data/brown-calib.jsonl";
  int passes = argc > 3 ? atoi(argv[3]) : 5;
  pf_err err = {0};
  char *buf = NULL;
  size_t len = 0;
  if (pf_read_file(data, (size_t)1 << 30, &buf, &len, &err)) {
    fprintf(stderr, "%s\n", err.msg);
    return 1;
  }
  size_t n_texts = 0, cap = 1024, bytes = 0;
  char **texts = malloc(cap * sizeof *texts);
  for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
    cJSON *j = cJSON_Parse(line);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "text");
    if (cJSON_IsString(t)) {
      if (n_texts == cap) texts = realloc(texts, (cap *= 2) * sizeof *texts);
      texts[n_texts++] = strdup(t->valuestring);
      bytes += strlen(t->valuestring);
    }
    cJSON_Delete(j);
  }
  double t0 = now();
  pf_tokenizer *tok = NULL;
  if (pf_tokenizer_load(dir, &tok, &err)) {
    fprintf(stderr, "%s\n", err.msg);
    return 1;
  }
  printf("tokenizer %s: loaded in %.3f s, vocab %d\n", dir, now() - t0,
         pf_tokenizer_vocab_size(tok));
  printf("data %s: %zu texts, %.3f MB\n", data, n_texts, (double)bytes / 1e6);
  for (int p = 1; p <= passes; p++) {
    size_t tokens = 0;
    t0 = now();
    for (size_t i = 0; i < n_texts; i++) {
      int32_t *ids;
      size_t n;
      if (pf_tokenizer_encode(tok, texts[i], strlen(texts[i]), 0, &ids, &n, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
      }
      tokens += n;
      free(ids);
    }
    double dt = now() - t0;
    printf("pass %d%s: %zu tokens in %.3f s: %.2f MB/s, %.0f tokens/s\n", p,
           p == 1 ? " (cold word cache)" : "", tokens, dt, (double)bytes / 1e6 / dt,
           (double)tokens / dt);
  }
  pf_tokenizer_free(tok);
  for (size_t i = 0; i < n_texts; i++)
    free(texts[i]);
  free(texts);
  free(buf);
  return 0;
}
