/* fuzz_tokenizer.c — the input is split on NUL bytes: part 0 is tokenizer.json,
 * part 1 (optional) a text to encode, part 2 (optional) tokenizer_config.json.
 * The files go into a folder that pf_tokenizer_load opens (there is no
 * in-memory loader). When the tokenizer loads, the text is encoded with and
 * without special tokens and the ids decoded with and without skipping
 * special tokens. Invariants: a failed load leaves *out NULL with a message;
 * encode fails with "not valid UTF-8 at byte N" exactly when the text is not
 * UTF-8 (N from an independent check); ids are inside [0, vocab_size);
 * decoded text is valid UTF-8. */
#include <string.h>

#include "fsutil.h"
#include "fuzz_common.h"
#include "tokenizer.h"

static void check_encode(pf_tokenizer *t, const char *text, size_t n, int add_special) {
  int32_t *ids = NULL;
  size_t nids = 0;
  pf_err err = {0};
  pf_status s = pf_tokenizer_encode(t, text, n, add_special, &ids, &nids, &err);
  size_t bad = fz_utf8_invalid_at(text, n);
  if (bad != SIZE_MAX) {
    char want[64];
    snprintf(want, sizeof want, "not valid UTF-8 at byte %zu", bad);
    FZ_CHECK(s == PF_ERR_INVALID && strstr(err.msg, want), "invalid text: got %d '%s', want '%s'",
             (int)s, err.msg, want);
  }
  if (s != PF_OK) {
    FZ_CHECK(!ids && !nids && err.msg[0], "failed encode left ids or no message");
    return;
  }
  FZ_CHECK(bad == SIZE_MAX, "encode accepted invalid UTF-8 at byte %zu", bad);
  int32_t vs = pf_tokenizer_vocab_size(t);
  for (size_t i = 0; i < nids; i++)
    FZ_CHECK(ids[i] >= 0 && ids[i] < vs, "id %d at %zu outside [0, %d)", (int)ids[i], i, (int)vs);
  for (int skip = 0; skip < 2; skip++) {
    char *out = NULL;
    size_t len = 0;
    pf_err derr = {0};
    if (pf_tokenizer_decode(t, ids, nids, skip, &out, &len, &derr) == PF_OK) {
      FZ_CHECK(out && out[len] == '\0', "decode: not NUL-terminated");
      size_t at = fz_utf8_invalid_at(out, len);
      FZ_CHECK(at == SIZE_MAX, "decode produced invalid UTF-8 at byte %zu", at);
    } else {
      FZ_CHECK(!out && derr.msg[0], "failed decode left text or no message");
    }
    free(out);
  }
  free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const uint8_t *end = data + size, *part[3] = {data, NULL, NULL};
  size_t len[3] = {size, 0, 0};
  for (int k = 0; k < 2 && part[k]; k++) {
    const uint8_t *z = memchr(part[k], 0, (size_t)(end - part[k]));
    if (!z) break;
    len[k] = (size_t)(z - part[k]);
    part[k + 1] = z + 1;
    len[k + 1] = (size_t)(end - z - 1);
  }
  fz_remove("tok");
  char *dir = fz_path("tok");
  pf_err err = {0};
  if (pf_mkdirs(dir, &err) != PF_OK) abort();
  free(fz_write("tok/tokenizer.json", part[0], len[0]));
  if (part[2]) free(fz_write("tok/tokenizer_config.json", part[2], len[2]));
  pf_tokenizer *t = NULL;
  pf_status s = pf_tokenizer_load(dir, &t, &err);
  if (s != PF_OK) {
    FZ_CHECK(!t && err.msg[0], "failed load left a tokenizer or no message");
  } else {
    int32_t vs = pf_tokenizer_vocab_size(t), bos = pf_tokenizer_bos_id(t);
    int32_t eos = pf_tokenizer_eos_id(t);
    FZ_CHECK(vs >= 0 && bos >= -1 && bos < vs && eos >= -1 && eos < vs, "vocab %d bos %d eos %d",
             (int)vs, (int)bos, (int)eos);
    for (int32_t id = 0; id < vs && id < 64; id++) {
      const char *tok = pf_tokenizer_token(t, id);
      if (tok)
        FZ_CHECK(pf_tokenizer_token_id(t, tok) >= 0, "token %d '%s' has no id", (int)id, tok);
    }
    const char *text = part[1] ? (const char *)part[1] : "";
    for (int add = 0; add < 2; add++)
      check_encode(t, text, len[1], add);
  }
  pf_tokenizer_free(t);
  free(dir);
  return 0;
}
