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

int pf_forward_bytes_affordable(const pf_model *a, const pf_model *b, const pf_ctx *ctx) {
  const uint64_t budget = pf_ctx_budget(ctx);
  return budget && pf_model_weight_bytes(a) + pf_model_weight_bytes(b) <= budget / 4 * 3;
}

void pf_pass_plan(const pf_forward *f, const pf_pass *p, const pf_ctx *ctx, pf_pass_info *in) {
  memset(in, 0, sizeof *in);
  in->model_bytes = pf_model_weight_bytes(f->m);
  for (int64_t i = 0; i < p->n; i++)
    in->state_bytes += state_bytes(f, &p->batches[i]);
  in->budget = pf_ctx_budget(ctx);
  in->work_budget = pf_ctx_work_budget(ctx);
  const pf_pass_order forced = ctx ? ctx->pass_order : PF_PASS_AUTO;
  char mb[32], bb[32], sb[32];
  human(in->model_bytes, mb, sizeof mb);
  human(in->budget, bb, sizeof bb);
  human(in->state_bytes, sb, sizeof sb);
  const char *why;
  if (p->need_layer) {
    in->order = PF_PASS_LAYER;
    why = "this pass works layer by layer";
  } else if (forced != PF_PASS_AUTO) {
    in->order = forced;
    why = "as asked";
  } else if (in->budget && in->model_bytes > in->budget / 4 * 3) {
    in->order = PF_PASS_LAYER;
    why = "the weights do not fit in the memory budget";
  } else {
    in->order = PF_PASS_BATCH;
    why = "the weights fit in the memory budget";
  }
  in->states_in_file = in->order == PF_PASS_LAYER && in->state_bytes > in->work_budget / 4;
  char cap[64] = "";
  if (in->work_budget && in->work_budget < in->budget) {
    char wb[32];
    human(in->work_budget, wb, sizeof wb);
    snprintf(cap, sizeof cap, ", working memory capped at %s", wb);
  }
  if (in->order == PF_PASS_BATCH)
    snprintf(in->why, sizeof in->why, "batch-major (%s: weights %s, budget %s%s)", why, mb, bb,
             cap);
  else
    snprintf(in->why, sizeof in->why,
             "layer-major (%s: weights %s, budget %s%s); hidden states (%s) %s", why, mb, bb, cap,
             sb,
             !in->states_in_file ? "in RAM"
             : cap[0]            ? "in a scratch file: more than a quarter of the working memory"
                                 : "in a scratch file: more than a quarter of the budget");
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

/* The states entering layer p->start of batch i into f->x: its embeddings, or start_fn's. */
static pf_status start_of(pf_forward *f, const pf_pass *p, int64_t i, pf_err *err) {
  const pf_batch *b = &p->batches[i];
  if (!p->start) {
    pf_fwd_embed(f, b->ids, b->batch * b->seq);
    return PF_OK;
  }
  pf_status s = p->start_fn(p->start_ud, i, b, f->x, err);
  if (s == PF_OK) return PF_OK;
  if (err && err->code == PF_OK) pf_err_set(err, s, "the callback returned %d", (int)s);
  if (err) err->code = s;
  return pf_err_prefix(err, "start states");
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
    if ((s = pf_fwd_begin_batch(f, b, err)) || (s = start_of(f, p, i, err))) {
      pf_err_prefix(err, "batch %lld", (long long)i);
      break;
    }
    for (int64_t l = p->start; !s && l < n_run; l++) {
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

/* ---- layer-major groups ---- */

typedef struct group {
  int64_t first, count; /* batches [first, first + count) of the pass */
  pf_batch merged;      /* count > 1: their ids and masks one after the other */
  pf_fwd_member *members;
} group;

typedef struct groups {
  group *g;
  int64_t n;
  int32_t *ids, *mask;    /* the merged batches' ids and masks */
  pf_fwd_member *members; /* [hi - lo] */
} groups;

static void groups_free(groups *gs) {
  free(gs->g);
  free(gs->ids);
  free(gs->mask);
  free(gs->members);
}

/* Whether batch b may join a group whose first batch is a, holding `tokens` tokens. */
static int joins(const pf_batch *a, const pf_batch *b, int64_t tokens, int64_t min_tok,
                 int64_t max_tok) {
  const int64_t t = b->batch * b->seq;
  return b->seq == a->seq && t >= min_tok && a->batch * a->seq >= min_tok && tokens + t <= max_tok;
}

/* Tokens a group may hold: PF_PASS_GROUP_TOKENS, fewer when the runner's activations
 * for them (x, its norm, attention and MLP buffers: float32 per token) would take
 * more than a quarter of the working-memory budget (under --max-memory). */
static int64_t group_tokens(const pf_forward *f, const pf_pass_info *in) {
  const uint64_t per_tok = sizeof(float) * (uint64_t)(4 * f->H + 2 * f->q_dim + 2 * f->kv_dim +
                                                      2 * f->inter_max + (f->parallel ? f->H : 0));
  const uint64_t fit = in->work_budget ? in->work_budget / 4 / per_tok : PF_PASS_GROUP_TOKENS;
  return fit < PF_PASS_GROUP_TOKENS ? (int64_t)fit : PF_PASS_GROUP_TOKENS;
}

/* Split batches [lo, hi) into groups (see forward.h) and build the merged batches. */
static pf_status groups_plan(const pf_pass *p, int64_t lo, int64_t hi, int64_t max_tok, groups *gs,
                             pf_err *err) {
  memset(gs, 0, sizeof *gs);
  const int allowed = !p->taps || p->group_taps;
  const int64_t min_tok = pf_kern_uniform_min_m();
  int64_t tok = 0;
  gs->g = calloc((size_t)(hi - lo), sizeof *gs->g);
  gs->members = calloc((size_t)(hi - lo), sizeof *gs->members);
  if (!gs->g || !gs->members) return pf_err_set(err, PF_ERR_NOMEM, "pass: out of memory");
  for (int64_t i = lo; i < hi; i++) {
    const pf_batch *b = &p->batches[i];
    group *g = gs->n ? &gs->g[gs->n - 1] : NULL;
    if (allowed && g &&
        joins(&p->batches[g->first], b, g->merged.batch * b->seq, min_tok, max_tok)) {
      g->count++;
      g->merged.batch += b->batch;
    } else {
      g = &gs->g[gs->n++];
      *g = (group){.first = i, .count = 1, .merged = *b, .members = gs->members + (i - lo)};
    }
    g->members[g->count - 1] = (pf_fwd_member){.index = i, .batch = b->batch};
  }
  for (int64_t j = 0; j < gs->n; j++)
    if (gs->g[j].count > 1) tok += gs->g[j].merged.batch * gs->g[j].merged.seq;
  if (!tok) return PF_OK;
  gs->ids = malloc((size_t)tok * sizeof *gs->ids);
  gs->mask = malloc((size_t)tok * sizeof *gs->mask);
  if (!gs->ids || !gs->mask) return pf_err_set(err, PF_ERR_NOMEM, "pass: out of memory");
  int64_t at = 0;
  for (int64_t j = 0; j < gs->n; j++) {
    group *g = &gs->g[j];
    if (g->count < 2) continue;
    g->merged.ids = gs->ids + at;
    g->merged.mask = gs->mask + at;
    for (int64_t i = g->first; i < g->first + g->count; i++) {
      const pf_batch *b = &p->batches[i];
      const int64_t t = b->batch * b->seq;
      memcpy(gs->ids + at, b->ids, (size_t)t * sizeof *gs->ids);
      for (int64_t r = 0; r < t; r++)
        gs->mask[at + r] = b->mask ? b->mask[r] : 1;
      at += t;
    }
  }
  return PF_OK;
}

/* Layer l of group g: the members' states in, one step, the states out. */
static pf_status group_layer(pf_forward *f, const pf_pass *p, const group *g, int64_t l,
                             pf_states *sv, progress *pr, const pf_ctx *ctx, pf_err *err) {
  pf_status s;
  if ((s = pf_ctx_check_interrupt(ctx, err)) || (s = pf_fwd_begin_batch(f, &g->merged, err)))
    return s;
  pf_fwd_step st = step_of(f, p, g->first); /* after begin_batch: it may move f->k, f->v */
  if (g->count > 1) {
    st.batch = g->merged.batch;
    st.kv_bstride = g->merged.seq * f->kv_dim;
    st.members = g->members;
    st.n_members = g->count;
  }
  const int64_t row = g->merged.seq * f->H;
  int64_t r = 0;
  for (int64_t i = 0; i < g->count; r += g->members[i++].batch)
    if ((s = pf_states_get(sv, g->first + i, f->x + r * row, err))) return s;
  if ((s = pf_fwd_layer_run(f, l, &st, err))) return s;
  r = 0;
  for (int64_t i = 0; i < g->count; r += g->members[i++].batch) {
    if ((s = pf_states_put(sv, g->first + i, f->x + r * row, err))) return s;
    tick(pr);
  }
  return PF_OK;
}

/* Name the batches [first, first + count) in an error. */
static void prefix_batches(pf_err *err, int64_t first, int64_t count) {
  if (count > 1)
    pf_err_prefix(err, "batches %lld-%lld", (long long)first, (long long)(first + count - 1));
  else
    pf_err_prefix(err, "batch %lld", (long long)first);
}

static pf_status layer_major(pf_forward *f, const pf_pass *p, int64_t lo, int64_t hi, int64_t n_run,
                             pf_states *sv, progress *pr, pf_pass_info *in, const pf_ctx *ctx,
                             pf_err *err) {
  groups gs;
  pf_stream *rd = NULL;
  pf_status s = groups_plan(p, lo, hi, group_tokens(f, in), &gs, err);
  if (s) goto out;
  rd = n_run > p->start ? pf_stream_new(f->m, n_run, in->work_budget) : NULL;
  pf_stream_post(rd, p->start); /* while the embeddings are looked up */
  in->groups = gs.n;
  in->direct = pf_stream_direct(rd);
  size_t len = strlen(in->why);
  if (gs.n < hi - lo)
    len += (size_t)snprintf(in->why + len, sizeof in->why - len,
                            "; %lld batches run as %lld product%s per layer", (long long)(hi - lo),
                            (long long)gs.n, gs.n == 1 ? "" : "s");
  if (in->direct && len < sizeof in->why)
    snprintf(in->why + len, sizeof in->why - len, "; layers read ahead with O_DIRECT");
  if (p->log_plan) pf_ctx_log(ctx, "%s: %s", p->what ? p->what : "forward", in->why);
  for (int64_t i = lo; !s && i < hi; i++) {
    const pf_batch *b = &p->batches[i];
    if ((s = pf_fwd_begin_batch(f, b, err)) || (s = start_of(f, p, i, err)) ||
        (s = pf_states_put(sv, i, f->x, err)))
      prefix_batches(err, i, 1);
  }
  if (!p->start) pf_tensor_release_pages(f->m->embed_tokens);
  for (int64_t l = p->start; !s && l < n_run; l++) {
    const pf_layer *own = f->layers[l].w;
    if (rd) f->layers[l].w = pf_stream_wait(rd, l);
    if (l + 1 < n_run) pf_stream_post(rd, l + 1);
    for (int64_t j = 0; !s && j < gs.n; j++)
      if ((s = group_layer(f, p, &gs.g[j], l, sv, pr, ctx, err)))
        prefix_batches(err, gs.g[j].first, gs.g[j].count);
    f->layers[l].w = own;
    if (!s) release_layer(own);
  }
  pf_stream_free(rd);
  rd = NULL;
  for (int64_t i = lo; !s && p->final_fn && i < hi; i++)
    if ((s = pf_fwd_begin_batch(f, &p->batches[i], err)) || (s = pf_states_get(sv, i, f->x, err)) ||
        (s = final_of(f, p, i, err)))
      prefix_batches(err, i, 1);
out:
  pf_stream_free(rd);
  groups_free(&gs);
  return s;
}

/* A start past the embeddings needs start_fn and leaves no tap behind. */
static pf_status check_start(const pf_forward *f, const pf_pass *p, pf_err *err) {
  if (p->start < 0 || p->start > f->n_layers || (p->start > 0 && !p->start_fn))
    return pf_err_set(err, PF_ERR_INVALID,
                      "pass: start layer %lld: expected 0 to %lld, and start_fn when above 0",
                      (long long)p->start, (long long)f->n_layers);
  const pf_taps *t = p->taps;
  for (int64_t l = 0; t && t->points && l < p->start; l++)
    if (!t->layers || t->layers[l])
      return pf_err_set(err, PF_ERR_INVALID,
                        "pass: a tap wants layer %lld, before the start layer %lld", (long long)l,
                        (long long)p->start);
  return PF_OK;
}

pf_status pf_forward_pass(pf_forward *f, const pf_pass *p, pf_pass_info *info, const pf_ctx *ctx,
                          pf_err *err) {
  if (!f || !p || (p->n > 0 && !p->batches))
    return pf_err_set(err, PF_ERR_INVALID, "pass: NULL runner or batches");
  pf_pass_info local;
  pf_pass_info *in = info ? info : &local;
  pf_pass_plan(f, p, ctx, in);
  pf_status s = pf_fwd_check_taps(p->taps, err);
  if (!s) s = check_start(f, p, err);
  /* every batch is checked before any work: a bad sample fails at once */
  int64_t i = 0;
  for (i = 0; !s && i < p->n; i++)
    s = pf_fwd_begin_batch(f, &p->batches[i], err);
  if (s) return i ? pf_err_prefix(err, "batch %lld", (long long)(i - 1)) : s;
  if (p->split && pf_dist_size() > 1) { /* before any return that depends on the input */
    pf_sha256 h;
    pf_sha256_init(&h);
    pf_sha256_update(&h, &p->n, sizeof p->n);
    for (i = 0; i < p->n; i++)
      pf_batch_hash(&h, &p->batches[i]);
    if ((s = pf_forward_check_ranks(f->m, &h, "the model or the data", err))) return s;
  }
  const int64_t n_run = pf_fwd_layers_needed(f, p->taps, p->final_fn != NULL);
  if (p->n == 0 || (n_run == 0 && !p->final_fn)) return PF_OK;
  int64_t lo = 0, hi = p->n;
  if (p->split) pf_dist_range(p->n, &lo, &hi);
  progress pr = {.ctx = ctx,
                 .what = p->what ? p->what : "forward",
                 .total = (uint64_t)((n_run - p->start) * (hi - lo))};
  if (hi <= lo) return PF_OK;
  if (in->order != PF_PASS_LAYER) {
    if (p->log_plan) pf_ctx_log(ctx, "%s: %s", p->what ? p->what : "forward", in->why);
    return batch_major(f, p, lo, hi, n_run, &pr, ctx, err);
  }
  pf_states *sv = NULL;
  s = pf_pass_states_new(f, p, in, &sv, err);
  if (!s) s = layer_major(f, p, lo, hi, n_run, sv, &pr, in, ctx, err);
  pf_states_free(sv);
  return s;
}
