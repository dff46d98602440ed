/* forward_pass.c — many batches through one model, batch-major or layer-major
 * (see forward.h, "passes").
 *
 * Layer-major keeps the residual stream of every batch between layers: in RAM,
 * or, when that would take more than a quarter of the memory budget, in an
 * unlinked scratch file (in $PFRUN_SCRATCH, else $TMPDIR, else /var/tmp) read
 * and written with pread/pwrite into the runner's own buffer, so neither
 * counts in RSS beyond one batch. After a layer has seen every batch its
 * weights' pages are released (pf_tensor_release_pages): RSS holds about one
 * layer of weights, whatever the model's size. Each (batch, layer) step is
 * pf_fwd_layer_run on the batch's own state with the runner set up for that
 * batch (pf_fwd_begin_batch), which is what makes both orders bit-identical.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dist.h"
#include "forward_int.h"
#include "fsutil.h"

/* ---- the choice ---- */

/* Bytes of one batch's hidden states (float32 [batch * seq, H]). */
static uint64_t state_bytes(const pf_forward *f, const pf_batch *b) {
  return (uint64_t)(b->batch * b->seq * f->H) * sizeof(float);
}

static void human(uint64_t b, char *buf, size_t n) {
  if (b >= (1ull << 30))
    snprintf(buf, n, "%.1f GiB", (double)b / (double)(1ull << 30));
  else if (b >= (1ull << 20))
    snprintf(buf, n, "%.1f MiB", (double)b / (double)(1ull << 20));
  else
    snprintf(buf, n, "%llu bytes", (unsigned long long)b);
}

void pf_pass_plan(const pf_forward *f, const pf_pass *p, const pf_ctx *ctx, pf_pass_info *in) {
  memset(in, 0, sizeof *in);
  in->model_bytes = pf_model_weight_bytes(f->m);
  for (int64_t i = 0; i < p->n; i++)
    in->state_bytes += state_bytes(f, &p->batches[i]);
  in->budget =
      ctx && ctx->memory_budget ? ctx->memory_budget : pf_proc_kb("/proc/meminfo", "MemAvailable");
  const pf_pass_order forced = ctx ? ctx->pass_order : PF_PASS_AUTO;
  char mb[32], bb[32], sb[32];
  human(in->model_bytes, mb, sizeof mb);
  human(in->budget, bb, sizeof bb);
  human(in->state_bytes, sb, sizeof sb);
  const char *why;
  if (forced != PF_PASS_AUTO) {
    in->order = forced;
    why = "as asked";
  } else if (in->budget && in->model_bytes > in->budget / 4 * 3) {
    in->order = PF_PASS_LAYER;
    why = "the weights do not fit in the memory budget";
  } else {
    in->order = PF_PASS_BATCH;
    why = "the weights fit in the memory budget";
  }
  in->states_in_file = in->order == PF_PASS_LAYER && in->state_bytes > in->budget / 4;
  if (in->order == PF_PASS_BATCH)
    snprintf(in->why, sizeof in->why, "batch-major (%s: weights %s, budget %s)", why, mb, bb);
  else
    snprintf(in->why, sizeof in->why,
             "layer-major (%s: weights %s, budget %s); hidden states (%s) %s", why, mb, bb, sb,
             in->states_in_file ? "in a scratch file: more than a quarter of the budget"
                                : "in RAM");
}

/* ---- hidden states of every batch ---- */

struct pf_states {
  int fd;    /* scratch file, or -1 */
  char *ram; /* or the whole block in RAM */
  int64_t n;
  uint64_t *off;   /* [n] byte offset of item i */
  uint64_t *bytes; /* [n] */
};

void pf_states_free(pf_states *s) {
  if (!s) return;
  if (s->fd >= 0) close(s->fd);
  free(s->ram);
  free(s->off);
  free(s->bytes);
  free(s);
}

pf_status pf_states_new(int64_t n, const uint64_t *bytes, int in_file, pf_states **out,
                        pf_err *err) {
  pf_states *s = calloc(1, sizeof *s);
  *out = NULL;
  if (!s) return pf_err_set(err, PF_ERR_NOMEM, "hidden states: out of memory");
  s->fd = -1;
  s->n = n;
  s->off = calloc((size_t)(n > 0 ? n : 1), sizeof *s->off);
  s->bytes = calloc((size_t)(n > 0 ? n : 1), sizeof *s->bytes);
  if (!s->off || !s->bytes) {
    pf_states_free(s);
    return pf_err_set(err, PF_ERR_NOMEM, "hidden states: out of memory");
  }
  uint64_t at = 0;
  for (int64_t i = 0; i < n; i++) {
    s->off[i] = at;
    at += s->bytes[i] = bytes[i];
  }
  if (!in_file && !(s->ram = malloc(at ? at : 1))) {
    pf_states_free(s);
    return pf_err_set(err, PF_ERR_NOMEM,
                      "hidden states: cannot hold %lld batches in RAM (%llu bytes)", (long long)n,
                      (unsigned long long)at);
  }
  if (in_file) {
    char path[4096];
    snprintf(path, sizeof path, "%s/pfrun-states-XXXXXX", pf_scratch_dir());
    if ((s->fd = mkostemp(path, O_CLOEXEC)) < 0) {
      const int e = errno;
      pf_states_free(s);
      return pf_err_set(err, PF_ERR_IO,
                        "%s: cannot create a scratch file for hidden states there: %s "
                        "(PFRUN_SCRATCH, TMPDIR or /var/tmp)",
                        pf_scratch_dir(), strerror(e));
    }
    unlink(path); /* anonymous: gone when closed, even after a crash */
  }
  *out = s;
  return PF_OK;
}

static pf_status io_fully(int wr, int fd, char *p, uint64_t n, uint64_t off, pf_err *err) {
  while (n > 0) {
    ssize_t r = wr ? pwrite(fd, p, n, (off_t)off) : pread(fd, p, n, (off_t)off);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0)
      return pf_err_set(err, PF_ERR_IO, "%s %s the hidden-states scratch file (in %s): %s",
                        wr ? "cannot write" : "cannot read", wr ? "to" : "from", pf_scratch_dir(),
                        r < 0 ? strerror(errno) : "unexpected end of file");
    p += r;
    n -= (uint64_t)r;
    off += (uint64_t)r;
  }
  return PF_OK;
}

pf_status pf_states_put(pf_states *s, int64_t i, const float *x, pf_err *err) {
  if (!s->ram) return io_fully(1, s->fd, (char *)x, s->bytes[i], s->off[i], err);
  memcpy(s->ram + s->off[i], x, s->bytes[i]);
  return PF_OK;
}

pf_status pf_states_get(pf_states *s, int64_t i, float *x, pf_err *err) {
  if (!s->ram) return io_fully(0, s->fd, (char *)x, s->bytes[i], s->off[i], err);
  memcpy(x, s->ram + s->off[i], s->bytes[i]);
  return PF_OK;
}

pf_status pf_pass_states_new(const pf_forward *f, const pf_pass *p, const pf_pass_info *in,
                             pf_states **out, pf_err *err) {
  uint64_t *bytes = calloc((size_t)(p->n > 0 ? p->n : 1), sizeof *bytes);
  if (!bytes) return pf_err_set(err, PF_ERR_NOMEM, "hidden states: out of memory");
  for (int64_t i = 0; i < p->n; i++)
    bytes[i] = state_bytes(f, &p->batches[i]);
  pf_status s = pf_states_new(p->n, bytes, in->states_in_file, out, err);
  free(bytes);
  return s;
}

/* ---- the pass ---- */

static pf_fwd_step step_of(const pf_forward *f, const pf_pass *p, int64_t i) {
  const pf_batch *b = &p->batches[i];
  pf_fwd_step st = {.batch = b->batch,
                    .seq = b->seq,
                    .p0 = 0,
                    .k = f->k,
                    .v = f->v,
                    .kv_bstride = b->seq * f->kv_dim,
                    .taps = p->taps,
                    .index = i};
  return st;
}

static pf_status final_of(pf_forward *f, const pf_pass *p, int64_t i, pf_err *err) {
  pf_status s = p->final_fn(p->final_ud, i, &p->batches[i], f->x, err);
  if (s == PF_OK) return PF_OK;
  if (err && err->code == PF_OK) pf_err_set(err, s, "the callback returned %d", (int)s);
  if (err) err->code = s;
  return pf_err_prefix(err, "final states");
}

typedef struct progress {
  const pf_ctx *ctx;
  const char *what;
  uint64_t done, total;
} progress;

static void tick(progress *pr) {
  pr->done++;
  pf_ctx_progress(pr->ctx, pr->what, pr->done, pr->total);
}

static pf_status batch_major(pf_forward *f, const pf_pass *p, int64_t lo, int64_t hi, int64_t n_run,
                             progress *pr, const pf_ctx *ctx, pf_err *err) {
  pf_status s = PF_OK;
  for (int64_t i = lo; !s && i < hi; i++) {
    const pf_batch *b = &p->batches[i];
    const pf_fwd_step st = step_of(f, p, i);
    if ((s = pf_fwd_begin_batch(f, b, err))) break;
    pf_fwd_embed(f, b->ids, b->batch * b->seq);
    for (int64_t l = 0; !s && l < n_run; l++) {
      if (!(s = pf_ctx_check_interrupt(ctx, err))) s = pf_fwd_layer_run(f, l, &st, err);
      tick(pr);
    }
    if (!s && p->final_fn) s = final_of(f, p, i, err);
    if (s) pf_err_prefix(err, "batch %lld", (long long)i);
  }
  return s;
}

static void release_layer(const pf_layer *w) {
  for (int k = 0; k < PF_SLOT_COUNT; k++)
    pf_tensor_release_pages(w->slot[k]);
}

static pf_status layer_major(pf_forward *f, const pf_pass *p, int64_t lo, int64_t hi, int64_t n_run,
                             pf_states *sv, progress *pr, const pf_ctx *ctx, pf_err *err) {
  pf_status s = PF_OK;
  int64_t i = 0, l = -1;
  for (i = lo; !s && i < hi; i++) {
    const pf_batch *b = &p->batches[i];
    if ((s = pf_fwd_begin_batch(f, b, err))) break;
    pf_fwd_embed(f, b->ids, b->batch * b->seq);
    if ((s = pf_states_put(sv, i, f->x, err))) break;
  }
  pf_tensor_release_pages(f->m->embed_tokens);
  for (l = 0; !s && l < n_run; l++) {
    for (i = lo; !s && i < hi; i++) {
      const pf_fwd_step st = step_of(f, p, i);
      if ((s = pf_ctx_check_interrupt(ctx, err)) ||
          (s = pf_fwd_begin_batch(f, &p->batches[i], err)) ||
          (s = pf_states_get(sv, i, f->x, err)) || (s = pf_fwd_layer_run(f, l, &st, err)) ||
          (s = pf_states_put(sv, i, f->x, err)))
        break;
      tick(pr);
    }
    if (!s) release_layer(&f->m->layers[l]);
  }
  for (i = lo; !s && p->final_fn && i < hi; i++)
    if ((s = pf_fwd_begin_batch(f, &p->batches[i], err)) || (s = pf_states_get(sv, i, f->x, err)) ||
        (s = final_of(f, p, i, err)))
      break;
  if (s) pf_err_prefix(err, "batch %lld", (long long)(i < p->n ? i : p->n - 1));
  return s;
}

pf_status pf_forward_pass(pf_forward *f, const pf_pass *p, pf_pass_info *info, const pf_ctx *ctx,
                          pf_err *err) {
  if (!f || !p || (p->n > 0 && !p->batches))
    return pf_err_set(err, PF_ERR_INVALID, "pass: NULL runner or batches");
  pf_pass_info local;
  pf_pass_info *in = info ? info : &local;
  pf_pass_plan(f, p, ctx, in);
  pf_status s = pf_fwd_check_taps(p->taps, err);
  /* every batch is checked before any work: a bad sample fails at once */
  int64_t i = 0;
  for (i = 0; !s && i < p->n; i++)
    s = pf_fwd_begin_batch(f, &p->batches[i], err);
  if (s) return i ? pf_err_prefix(err, "batch %lld", (long long)(i - 1)) : s;
  const int64_t n_run = pf_fwd_layers_needed(f, p->taps, p->final_fn != NULL);
  if (p->n == 0 || (n_run == 0 && !p->final_fn)) return PF_OK;
  int64_t lo = 0, hi = p->n;
  if (p->split) pf_dist_range(p->n, &lo, &hi);
  progress pr = {
      .ctx = ctx, .what = p->what ? p->what : "forward", .total = (uint64_t)(n_run * (hi - lo))};
  if (hi <= lo) return PF_OK;
  if (in->order != PF_PASS_LAYER) return batch_major(f, p, lo, hi, n_run, &pr, ctx, err);
  pf_states *sv = NULL;
  s = pf_pass_states_new(f, p, in, &sv, err);
  if (!s) s = layer_major(f, p, lo, hi, n_run, sv, &pr, ctx, err);
  pf_states_free(sv);
  return s;
}
