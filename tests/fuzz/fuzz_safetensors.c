/* fuzz_safetensors.c — the input is a .safetensors file: pf_st_open, then every
 * tensor through pf_st_get, touching the first and last byte of each view (a
 * view outside the mapping would fault), plus the metadata getters.
 * Invariants: names are sorted and unique, pf_st_has agrees, each view's byte
 * count is numel * dtype size and total_bytes is their sum. */
#include <string.h>

#include "fuzz_common.h"
#include "safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *path = fz_write("model.safetensors", data, size);
  pf_st_reader *r = NULL;
  pf_err err = {0};
  pf_status s = pf_st_open(path, &r, &err);
  if (s == PF_OK)
    fz_check_st_reader(r);
  else
    FZ_CHECK(r == NULL && err.msg[0], "failed open must leave *out NULL and a message");
  pf_st_close(r);
  free(path);
  return 0;
}
