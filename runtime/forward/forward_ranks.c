/* forward_ranks.c — under MPI, the check that every rank runs the same model on
 * the same tokens before work is split between them (forward.h).
 *
 * Each rank reads the files itself: from a shared file system, or from copies
 * on each node. Copies that differ (another data file at the same path, other
 * weights, a cache folder of another node) would otherwise be mixed silently in
 * the sums, and a different number of batches breaks the exchanges. The model's
 * part of the digest is its config, each weight's name, dtype and shape, and a
 * sample of its values (its first, middle and last 64): a few pages per tensor,
 * so that a model larger than memory is not read again. */
#include <stdlib.h>
#include <string.h>

#include "dist.h"
#include "forward.h"
#include "hfconfig.h"

enum { SAMPLE = 64 };

static int hash_tensor(void *ud, const char *name, const pf_tensor *t) {
  pf_sha256 *h = ud;
  pf_sha256_update(h, name, strlen(name) + 1);
  const int64_t head[6] = {t->dtype, t->ndim, t->shape[0], t->shape[1], t->shape[2], t->shape[3]};
  pf_sha256_update(h, head, sizeof head);
  const size_t n = (size_t)pf_tensor_numel(t), k = n < SAMPLE ? n : SAMPLE;
  const size_t at[3] = {0, (n - k) / 2, n - k};
  _Alignas(8) unsigned char buf[SAMPLE * 8];
  for (int i = 0; i < 3 && k; i++) {
    pf_tensor_read(t, at[i], k, buf);
    pf_sha256_update(h, buf, k * pf_dtype_size(t->dtype));
  }
  return 0;
}

void pf_batch_hash(pf_sha256 *h, const pf_batch *b) {
  const int64_t dims[3] = {b->batch, b->seq, b->mask != NULL};
  pf_sha256_update(h, dims, sizeof dims);
  const size_t n = (size_t)(b->batch * b->seq) * sizeof(int32_t);
  pf_sha256_update(h, b->ids, n);
  if (b->mask) pf_sha256_update(h, b->mask, n);
}

pf_status pf_forward_check_ranks(const pf_model *m, pf_sha256 *h, const char *what, pf_err *err) {
  if (pf_dist_size() < 2) return PF_OK;
  char *cfg = pf_config_to_json(&m->config);
  if (!cfg) return pf_err_set(err, PF_ERR_NOMEM, "%s: out of memory", what);
  pf_sha256_update(h, cfg, strlen(cfg));
  free(cfg);
  pf_model_foreach_canonical(m, hash_tensor, h);
  uint8_t d[PF_SHA256_BYTES];
  pf_sha256_final(h, d);
  return pf_dist_same(d, what, err);
}
