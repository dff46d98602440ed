/* fuzz_tokenizer_real.c — arbitrary bytes encoded with every real tokenizer:
 * $PF_FUZZ_SHARED (default: the ../shared beside the sources)/tokenizers/
 * NAME/tokenizer.json, the two tiny checkpoints' tokenizers in shared/models,
 * and the tokenizer of the synthetic checkpoint (llama-tiny, written at start).
 * Invariants per tokenizer, with and without special tokens: encode succeeds
 * exactly when the input is UTF-8, and otherwise fails with "not valid UTF-8 at
 * byte N" (N from an independent check); ids are in [0, vocab_size); decoding
 * them succeeds and gives valid UTF-8; for byte-level tokenizers without a
 * normalizer whose vocabulary covers every ASCII byte (gpt2, llama3, synthetic;
 * checked by probes at start) decode(encode(x)) == x. */
#include <dirent.h>
#include <string.h>

#include "fsutil.h"
#include "fuzz_common.h"
#include "synthetic.h"
#include "tokenizer.h"

#ifndef PF_SHARED_DIR
#define PF_SHARED_DIR "../shared"
#endif
#define MAX_TOK 16

typedef struct loaded {
  char name[128];
  pf_tokenizer *tok;
  int roundtrip; /* decode(encode(x)) == x expected */
} loaded;

static loaded g_tok[MAX_TOK];
static size_t g_n;

static int decodes_back(pf_tokenizer *t, const char *s) {
  int32_t *ids = NULL;
  size_t n = 0;
  char *out = NULL;
  int ok = pf_tokenizer_encode(t, s, strlen(s), 0, &ids, &n, NULL) == PF_OK &&
           pf_tokenizer_decode(t, ids, n, 0, &out, NULL, NULL) == PF_OK && !strcmp(out, s);
  free(ids);
  free(out);
  return ok;
}

static void add(const char *name, const char *path) {
  pf_err err = {0};
  if (g_n == MAX_TOK || !pf_path_exists(path)) return;
  loaded *l = &g_tok[g_n];
  if (pf_tokenizer_load(path, &l->tok, &err) != PF_OK) {
    fprintf(stderr, "fuzz_tokenizer_real: %s does not load: %s\n", path, err.msg);
    abort();
  }
  snprintf(l->name, sizeof l->name, "%s", name);
  /* Exact round trips: the byte-level tokenizers without a normalizer (sentencepiece
   * ones drop a leading space by design, qwen3's NFC changes "e" + U+0301). */
  static const char *const byte_level[] = {"gpt2", "llama3", "smollm2", "synthetic:llama-tiny"};
  int listed = 0;
  for (size_t i = 0; i < sizeof byte_level / sizeof byte_level[0]; i++)
    listed |= !strcmp(name, byte_level[i]);
  l->roundtrip = listed &&
                 decodes_back(l->tok, " Hello  world,\n\tdon't 123 \xC3\xA9te\xCC\x81 ") &&
                 decodes_back(l->tok, "Hello") && decodes_back(l->tok, "  x  ");
  /* and only when the vocabulary has every ASCII byte (smollm2 lacks a few control
   * bytes: with no unk token they are dropped, as Hugging Face drops them) */
  char ascii[128];
  for (int c = 1; c < 128; c++)
    ascii[c - 1] = (char)c;
  ascii[127] = '\0';
  l->roundtrip = l->roundtrip && decodes_back(l->tok, ascii);
  fprintf(stderr, "fuzz_tokenizer_real: %s (vocab %d%s)\n", name,
          (int)pf_tokenizer_vocab_size(l->tok), l->roundtrip ? ", round trip" : "");
  g_n++;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  const char *shared = getenv("PF_FUZZ_SHARED");
  if (!shared || !*shared) shared = PF_SHARED_DIR;
  char path[4096], sub[4096];
  snprintf(sub, sizeof sub, "%s/tokenizers", shared);
  DIR *d = opendir(sub);
  struct dirent *e;
  while (d && (e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    snprintf(path, sizeof path, "%s/%s/tokenizer.json", sub, e->d_name);
    add(e->d_name, path);
  }
  if (d) closedir(d);
  const char *models[] = {"stories260K", "aidreams260K"};
  for (size_t i = 0; i < 2; i++) {
    snprintf(path, sizeof path, "%s/models/%s/tokenizer.json", shared, models[i]);
    add(models[i], path);
  }
  char *synth = fz_path("synthetic-llama-tiny");
  pf_synth_opts o = {.preset = "llama-tiny", .seed = 1234};
  pf_err err = {0};
  if (pf_synth_write(&o, synth, NULL, &err) != PF_OK) {
    fprintf(stderr, "fuzz_tokenizer_real: synthetic checkpoint: %s\n", err.msg);
    abort();
  }
  add("synthetic:llama-tiny", synth);
  free(synth);
  if (g_n < 2) {
    fprintf(stderr, "fuzz_tokenizer_real: found %zu tokenizers (is %s there?)\n", g_n, shared);
    abort();
  }
  return 0;
}

static void check(const loaded *l, const uint8_t *data, size_t size, int add_special) {
  int32_t *ids = NULL;
  size_t n = 0;
  pf_err err = {0};
  pf_status s = pf_tokenizer_encode(l->tok, (const char *)data, size, add_special, &ids, &n, &err);
  size_t bad = fz_utf8_invalid_at(data, size);
  if (bad != SIZE_MAX) {
    char want[64];
    snprintf(want, sizeof want, "text is not valid UTF-8 at byte %zu", bad);
    FZ_CHECK(s == PF_ERR_INVALID && !ids && !n && !strcmp(err.msg, want),
             "%s: invalid input: got %d '%s', want '%s'", l->name, (int)s, err.msg, want);
    return;
  }
  FZ_CHECK(s == PF_OK, "%s: encode of valid UTF-8 failed: %s", l->name, err.msg);
  int32_t vs = pf_tokenizer_vocab_size(l->tok);
  for (size_t i = 0; i < n; i++)
    FZ_CHECK(ids[i] >= 0 && ids[i] < vs, "%s: id %d outside [0, %d)", l->name, (int)ids[i],
             (int)vs);
  char *out = NULL;
  size_t len = 0;
  s = pf_tokenizer_decode(l->tok, ids, n, 0, &out, &len, &err);
  FZ_CHECK(s == PF_OK, "%s: decode of encoded ids failed: %s", l->name, err.msg);
  FZ_CHECK(fz_utf8_invalid_at(out, len) == SIZE_MAX, "%s: decode gave invalid UTF-8", l->name);
  if (l->roundtrip && !add_special)
    FZ_CHECK(len == size && !memcmp(out, data, size),
             "%s: decode(encode(x)) != x (%zu vs %zu bytes)", l->name, len, size);
  free(out);
  free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  for (size_t i = 0; i < g_n; i++) {
    check(&g_tok[i], data, size, 0);
    check(&g_tok[i], data, size, 1);
  }
  return 0;
}
