/* generate.c — KV-cache decoding (see generate.h).
 *
 * A decoder owns a forward runner and uses its layer step with the cache as
 * the key/value store: the step writes the new keys/values at positions
 * [pos, pos + n) of each layer's cache and attends to [0, pos + n). The cache
 * keeps each KV head's positions together (pf_fwd_step.kv_gstride): a decode
 * step reads a head's keys and values as two sequential runs, which at 512-4096
 * positions took its attention to half the time of rows holding all heads side
 * by side (bench/README.md "Attention at long contexts"). Only the
 * last row goes through the final norm and the lm_head (a GEMV: the largest
 * single weight read of a decode step for big vocabularies).
 */
#include "generate.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "forward_int.h"

struct pf_decoder {
  pf_forward *f;
  int64_t max_ctx;
  int64_t slots;
  int64_t pos;
  float *kc;     /* [n_layers, slots, n_kv, max_ctx, hd]: each KV head's positions in one run */
  float *vc;     /* [n_layers, slots, n_kv, max_ctx, hd] */
  float *gather; /* [gather_cap, H] the hidden states of the rows a branch scores */
  int64_t gather_cap;
  int64_t ready; /* slot 0's cache pages are populated for positions [0, ready) */
};

/* Single-sequence decoding populates the cache pages this many positions ahead,
 * all layers at once (0: each page faults when a step first writes it). A KV
 * cache page of 4 KiB holds 16 positions of one KV head of 64 floats: left to
 * fault, the 16 runs of a layer (8 heads' keys and values) cost one fault a token
 * on average, 16 a token on a 16-layer model. Measured when a page held 2 positions
 * of all heads (the same count), the faults were taken inside the k and v products
 * (+14 and +9 us per layer on AMD Zen 5, bench/README.md "Where the rest of a decode
 * step goes"). */
int64_t pf_decoder_populate_ahead = 64;
int pf_decoder_populate_touch = 0;

/* Populate [from, to) of every layer's slot-0 keys and values: one
 * MADV_POPULATE_WRITE per range (Linux 5.14+), else a write to each page (the
 * cache past pos holds nothing yet). */
static void populate(pf_decoder *d, int64_t from, int64_t to) {
  const pf_forward *f = d->f;
  const size_t per_layer = (size_t)d->slots * (size_t)d->max_ctx * (size_t)f->kv_dim;
  const size_t per_head = (size_t)d->max_ctx * (size_t)f->hd;
  const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
  for (int64_t l = 0; l < f->n_layers; l++)
    for (int64_t r = 0; r < 2 * f->n_kv; r++) { /* keys then values, head by head */
      float *base =
          (r < f->n_kv ? d->kc : d->vc) + (size_t)l * per_layer + (size_t)(r % f->n_kv) * per_head;
      const uintptr_t a = (uintptr_t)(base + (size_t)from * (size_t)f->hd);
      const uintptr_t b = (uintptr_t)(base + (size_t)to * (size_t)f->hd);
      const uintptr_t a0 = a & ~(page - 1), b0 = (b + page - 1) & ~(page - 1);
#ifdef MADV_POPULATE_WRITE
      if (!pf_decoder_populate_touch && madvise((void *)a0, b0 - a0, MADV_POPULATE_WRITE) == 0)
        continue;
#else
      (void)a0;
      (void)b0;
#endif
      /* the pages of [a, b): a write inside the range to each (not below a:
       * that part of the page holds earlier positions) */
      for (uintptr_t p = a; p < b; p = (p & ~(page - 1)) + page)
        *(volatile char *)p = 0;
    }
}

pf_status pf_decoder_new(const pf_model *m, int64_t max_ctx, pf_decoder **out, pf_err *err) {
  return pf_decoder_new_slots(m, max_ctx, 1, out, err);
}

pf_status pf_decoder_new_slots(const pf_model *m, int64_t max_ctx, int64_t slots, pf_decoder **out,
                               pf_err *err) {
  *out = NULL;
  if (slots < 1 || slots > 4096)
    return pf_err_set(err, PF_ERR_INVALID, "decoder: expected 1 to 4096 slots, got %lld",
                      (long long)slots);
  pf_decoder *d = calloc(1, sizeof *d);
  if (!d) return pf_err_set(err, PF_ERR_NOMEM, "decoder: out of memory");
  pf_status s = pf_forward_new(m, &d->f, err);
  if (s != PF_OK) goto fail;
  const pf_forward *f = d->f;
  if (max_ctx < 1 || max_ctx > f->max_pos) {
    s = pf_err_set(err, PF_ERR_INVALID,
                   "decoder: expected a context of 1 to %lld tokens (max_position_embeddings), "
                   "got %lld",
                   (long long)f->max_pos, (long long)max_ctx);
    goto fail;
  }
  const size_t n =
      (size_t)(f->n_layers ? f->n_layers : 1) * (size_t)slots * (size_t)max_ctx * (size_t)f->kv_dim;
  d->kc = malloc(n * sizeof(float));
  d->vc = malloc(n * sizeof(float));
  if (!d->kc || !d->vc) {
    s = pf_err_set(err, PF_ERR_NOMEM, "decoder: cannot allocate a KV cache of %zu bytes",
                   2 * n * sizeof(float));
    goto fail;
  }
  d->max_ctx = max_ctx;
  d->slots = slots;
  *out = d;
  return PF_OK;
fail:
  pf_decoder_free(d);
  return s;
}

void pf_decoder_free(pf_decoder *d) {
  if (!d) return;
  pf_forward_free(d->f);
  free(d->kc);
  free(d->vc);
  free(d->gather);
  free(d);
}

int64_t pf_decoder_pos(const pf_decoder *d) {
  return d ? d->pos : 0;
}

void pf_decoder_reset(pf_decoder *d) {
  if (d) d->pos = 0;
}

static pf_status check_feed(const pf_decoder *d, const int32_t *ids, int64_t n, pf_err *err) {
  if (n < 1 || !ids)
    return pf_err_set(err, PF_ERR_INVALID, "decoder: expected at least one token, got %lld",
                      (long long)n);
  if (n > d->max_ctx - d->pos)
    return pf_err_set(err, PF_ERR_INVALID,
                      "decoder: %lld tokens at position %lld do not fit the context of %lld",
                      (long long)n, (long long)d->pos, (long long)d->max_ctx);
  for (int64_t i = 0; i < n; i++)
    if (ids[i] < 0 || ids[i] >= d->f->vocab)
      return pf_err_set(err, PF_ERR_INVALID,
                        "input ids: token %lld: expected a token id in [0, %lld), got %d",
                        (long long)i, (long long)d->f->vocab, (int)ids[i]);
  return PF_OK;
}

pf_status pf_decoder_feed(pf_decoder *d, const int32_t *ids, int64_t n, float *logits,
                          const pf_ctx *ctx, pf_err *err) {
  if (!d) return pf_err_set(err, PF_ERR_INVALID, "decoder: NULL");
  pf_forward *f = d->f;
  pf_status s;
  if ((s = check_feed(d, ids, n, err)) || (s = pf_ctx_check_interrupt(ctx, err)) ||
      (s = pf_fwd_reserve(f, n, 1, d->pos + n, err)))
    return s;
  for (int64_t i = 0; i < n; i++) {
    f->pos[i] = d->pos + i;
    f->mask[i] = 1;
  }
  f->len[0] = d->pos + n;
  if (pf_decoder_populate_ahead > 0 && d->pos + n > d->ready) {
    const int64_t ahead = d->pos + n + pf_decoder_populate_ahead;
    const int64_t to = ahead < d->max_ctx ? ahead : d->max_ctx;
    populate(d, d->ready > d->pos ? d->ready : d->pos, to);
    d->ready = to;
  }
  pf_fwd_embed(f, ids, n);
  const size_t per_layer = (size_t)d->slots * (size_t)d->max_ctx * (size_t)f->kv_dim;
  for (int64_t l = 0; l < f->n_layers; l++) {
    const pf_fwd_step st = {.batch = 1,
                            .seq = n,
                            .p0 = d->pos,
                            .k = d->kc + (size_t)l * per_layer,
                            .v = d->vc + (size_t)l * per_layer,
                            .kv_bstride = 0,
                            .kv_gstride = d->max_ctx * f->hd,
                            .taps = NULL};
    if ((s = pf_fwd_layer_run(f, l, &st, err))) return s;
  }
  d->pos += n;
  if (!logits) return PF_OK;
  return pf_fwd_logits(f, f->x + (n - 1) * f->H, 1, logits, err);
}

void pf_decoder_fork(pf_decoder *d, int64_t n) {
  if (!d || d->pos == 0) return;
  const pf_forward *f = d->f;
  const size_t slot = (size_t)d->max_ctx * (size_t)f->kv_dim, head = (size_t)d->max_ctx * f->hd;
  const size_t used = (size_t)d->pos * f->hd; /* of each head's run */
  for (int64_t l = 0; l < f->n_layers; l++)
    for (int64_t b = 1; b < n && b < d->slots; b++)
      for (int64_t g = 0; g < f->n_kv; g++) {
        const size_t from = (size_t)l * (size_t)d->slots * slot + (size_t)g * head;
        const size_t to = from + (size_t)b * slot;
        memcpy(d->kc + to, d->kc + from, used * sizeof(float));
        memcpy(d->vc + to, d->vc + from, used * sizeof(float));
      }
}

static pf_status check_branch(const pf_decoder *d, int64_t rows, int64_t seq, const int32_t *ids,
                              const int64_t *lens, const int64_t *sel, int64_t nsel, pf_err *err) {
  if (rows < 1 || rows > d->slots || seq < 1 || !ids || !lens)
    return pf_err_set(err, PF_ERR_INVALID,
                      "decoder: expected 1 to %lld rows of at least one token, got %lld x %lld",
                      (long long)d->slots, (long long)rows, (long long)seq);
  if (seq > d->max_ctx - d->pos)
    return pf_err_set(err, PF_ERR_INVALID,
                      "decoder: %lld tokens at position %lld do not fit the context of %lld",
                      (long long)seq, (long long)d->pos, (long long)d->max_ctx);
  for (int64_t b = 0; b < rows; b++) {
    if (lens[b] < 1 || lens[b] > seq)
      return pf_err_set(err, PF_ERR_INVALID,
                        "decoder: row %lld: expected 1 to %lld tokens, got %lld", (long long)b,
                        (long long)seq, (long long)lens[b]);
    for (int64_t i = 0; i < lens[b]; i++)
      if (ids[b * seq + i] < 0 || ids[b * seq + i] >= d->f->vocab)
        return pf_err_set(
            err, PF_ERR_INVALID,
            "input ids: row %lld, token %lld: expected a token id in [0, %lld), got %d",
            (long long)b, (long long)i, (long long)d->f->vocab, (int)ids[b * seq + i]);
  }
  for (int64_t j = 0; j < nsel; j++)
    if (sel[j] < 0 || sel[j] >= rows * seq || sel[j] % seq >= lens[sel[j] / seq])
      return pf_err_set(err, PF_ERR_INVALID, "decoder: selected row %lld is not a token",
                        (long long)sel[j]);
  return PF_OK;
}

pf_status pf_decoder_branch(pf_decoder *d, int64_t rows, int64_t seq, const int32_t *ids,
                            const int64_t *lens, const int64_t *sel, int64_t nsel, pf_logits_fn fn,
                            void *ud, const pf_ctx *ctx, pf_err *err) {
  if (!d) return pf_err_set(err, PF_ERR_INVALID, "decoder: NULL");
  pf_forward *f = d->f;
  const int64_t T = rows * seq;
  pf_status s;
  if ((s = check_branch(d, rows, seq, ids, lens, sel, nsel, err)) ||
      (s = pf_ctx_check_interrupt(ctx, err)) || (s = pf_fwd_reserve(f, T, rows, d->pos + seq, err)))
    return s;
  for (int64_t t = 0; t < T; t++) {
    f->pos[t] = d->pos + t % seq;
    f->mask[t] = t % seq < lens[t / seq];
  }
  for (int64_t b = 0; b < rows; b++)
    f->len[b] = d->pos + lens[b];
  int32_t *safe = malloc((size_t)T * sizeof *safe); /* padding embeds token 0 */
  if (!safe) return pf_err_set(err, PF_ERR_NOMEM, "decoder: out of memory");
  for (int64_t t = 0; t < T; t++)
    safe[t] = f->mask[t] ? ids[t] : 0;
  pf_fwd_embed(f, safe, T);
  free(safe);
  const size_t per_layer = (size_t)d->slots * (size_t)d->max_ctx * (size_t)f->kv_dim;
  for (int64_t l = 0; l < f->n_layers; l++) {
    const pf_fwd_step st = {.batch = rows,
                            .seq = seq,
                            .p0 = d->pos,
                            .k = d->kc + (size_t)l * per_layer,
                            .v = d->vc + (size_t)l * per_layer,
                            .kv_bstride = d->max_ctx * f->kv_dim,
                            .kv_gstride = d->max_ctx * f->hd,
                            .taps = NULL};
    if ((s = pf_fwd_layer_run(f, l, &st, err))) return s;
  }
  if (nsel == 0 || !fn) return PF_OK;
  if (nsel > d->gather_cap) {
    float *g = realloc(d->gather, (size_t)nsel * (size_t)f->H * sizeof *g);
    if (!g) return pf_err_set(err, PF_ERR_NOMEM, "decoder: out of memory");
    d->gather = g;
    d->gather_cap = nsel;
  }
  for (int64_t j = 0; j < nsel; j++)
    memcpy(d->gather + j * f->H, f->x + sel[j] * f->H, (size_t)f->H * sizeof(float));
  return pf_forward_logits(f, d->gather, nsel, fn, ud, err);
}

/* ---- greedy generation ---- */

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int32_t argmax(const float *x, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; i++)
    if (x[i] > x[best]) best = i;
  return (int32_t)best;
}

static pf_status check_request(const pf_model *m, const int32_t *prompt, size_t n_prompt,
                               int64_t max_new, pf_err *err) {
  if (!m) return pf_err_set(err, PF_ERR_INVALID, "generate: NULL model");
  const int64_t max_pos = m->config.max_position_embeddings;
  if (n_prompt < 1 || !prompt)
    return pf_err_set(err, PF_ERR_INVALID, "generate: expected a prompt of at least one token");
  if (max_new < 0)
    return pf_err_set(err, PF_ERR_INVALID, "generate: expected max_new_tokens >= 0, got %lld",
                      (long long)max_new);
  if ((int64_t)n_prompt > max_pos || max_new > max_pos - (int64_t)n_prompt)
    return pf_err_set(err, PF_ERR_INVALID,
                      "generate: a prompt of %zu tokens plus %lld new tokens is longer than "
                      "max_position_embeddings %lld",
                      n_prompt, (long long)max_new, (long long)max_pos);
  return PF_OK;
}

/* Generate into out->tokens (allocated by the caller for max_new ids). */
static pf_status run_greedy(pf_decoder *d, const int32_t *prompt, int64_t n_prompt, int64_t max_new,
                            int32_t eos, float *logits, pf_generate_result *out, const pf_ctx *ctx,
                            pf_err *err) {
  const int64_t V = d->f->vocab;
  double t0 = now_seconds();
  pf_status s = pf_decoder_feed(d, prompt, n_prompt, logits, ctx, err);
  if (s != PF_OK) return s;
  int32_t next = argmax(logits, V);
  out->tokens[out->n_tokens++] = next;
  double t1 = now_seconds();
  out->prefill_seconds = t1 - t0;
  while (out->n_tokens < max_new && !(eos >= 0 && next == eos)) {
    if ((s = pf_decoder_feed(d, &next, 1, logits, ctx, err)) != PF_OK) return s;
    next = argmax(logits, V);
    out->tokens[out->n_tokens++] = next;
  }
  out->hit_eos = eos >= 0 && next == eos;
  out->decode_seconds = now_seconds() - t1;
  return PF_OK;
}

pf_status pf_generate_greedy(const pf_model *m, const int32_t *prompt, size_t n_prompt,
                             int64_t max_new_tokens, int32_t eos_id, pf_generate_result *out,
                             const pf_ctx *ctx, pf_err *err) {
  memset(out, 0, sizeof *out);
  pf_status s = check_request(m, prompt, n_prompt, max_new_tokens, err);
  if (s != PF_OK || max_new_tokens == 0) {
    out->n_prompt = s == PF_OK ? (int64_t)n_prompt : 0;
    return s;
  }
  pf_decoder *d = NULL;
  float *logits = NULL;
  if ((s = pf_decoder_new(m, (int64_t)n_prompt + max_new_tokens, &d, err))) goto fail;
  logits = malloc((size_t)d->f->vocab * sizeof *logits);
  out->tokens = malloc((size_t)max_new_tokens * sizeof *out->tokens);
  if (!logits || !out->tokens) {
    s = pf_err_set(err, PF_ERR_NOMEM, "generate: out of memory");
    goto fail;
  }
  out->n_prompt = (int64_t)n_prompt;
  if ((s = run_greedy(d, prompt, (int64_t)n_prompt, max_new_tokens, eos_id, logits, out, ctx, err)))
    goto fail;
  out->prefill_tokens_per_second =
      out->prefill_seconds > 0 ? (double)n_prompt / out->prefill_seconds : 0.0;
  out->decode_tokens_per_second = out->n_tokens > 1 && out->decode_seconds > 0
                                      ? (double)(out->n_tokens - 1) / out->decode_seconds
                                      : 0.0;
  free(logits);
  pf_decoder_free(d);
  return PF_OK;
fail:
  pf_err_prefix(err, "generate");
  free(logits);
  pf_decoder_free(d);
  pf_generate_result_free(out);
  return s;
}

void pf_generate_result_free(pf_generate_result *r) {
  if (!r) return;
  free(r->tokens);
  memset(r, 0, sizeof *r);
}
