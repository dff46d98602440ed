/* fuzz_safetensors_index.c — a sharded checkpoint: the input is split on the
 * line "#SHARD" ("\n#SHARD\n"): part 0 is model.safetensors.index.json, part i
 * (1..8) is written as model-0000i-of-0000k.safetensors (k = number of shard
 * parts, the names pf_st_write gives). pf_st_open runs on the folder, then
 * every tensor is read as in fuzz_safetensors.c. */
#include <string.h>

#include "fsutil.h"
#include "fuzz_common.h"
#include "safetensors.h"

#define SEP "\n#SHARD\n"
#define MAX_SHARDS 8

static const uint8_t *find_sep(const uint8_t *p, const uint8_t *end) {
  size_t sl = sizeof SEP - 1;
  for (; p + sl <= end; p++)
    if (!memcmp(p, SEP, sl)) return p;
  return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const uint8_t *part[MAX_SHARDS + 1], *end = data + size;
  size_t len[MAX_SHARDS + 1], n = 0;
  const uint8_t *p = data;
  while (n < MAX_SHARDS + 1) {
    const uint8_t *q = n < MAX_SHARDS ? find_sep(p, end) : NULL;
    part[n] = p;
    len[n++] = (size_t)((q ? q : end) - p);
    if (!q) break;
    p = q + sizeof SEP - 1;
  }
  fz_remove("ckpt");
  char *dir = fz_path("ckpt");
  pf_err err = {0};
  if (pf_mkdirs(dir, &err) != PF_OK) abort();
  char name[96];
  free(fz_write("ckpt/model.safetensors.index.json", part[0], len[0]));
  for (size_t i = 1; i < n; i++) {
    snprintf(name, sizeof name, "ckpt/model-%05zu-of-%05zu.safetensors", i, n - 1);
    free(fz_write(name, part[i], len[i]));
  }
  pf_st_reader *r = NULL;
  pf_status s = pf_st_open(dir, &r, &err);
  if (s == PF_OK)
    fz_check_st_reader(r);
  else
    FZ_CHECK(r == NULL && err.msg[0], "failed open must leave *out NULL and a message");
  pf_st_close(r);
  free(dir);
  return 0;
}
