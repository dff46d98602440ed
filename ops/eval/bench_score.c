/* bench_score.c — the summed continuation log-likelihood and the greedy match
 * of every benchmark request (reference benchmarks.md §5): the logits at the
 * position before each continuation token, log-softmax over the full
 * vocabulary (float64 sums), the target's log-probability summed, and whether
 * each target is the argmax (first index on ties).
 *
 * Two ways to run the model, same numbers up to float32 rounding:
 *  - context cache (default): per document, the context once into a KV cache,
 *    its last position scores every choice's first token, then all choices
 *    continue from copies of that cache as one batch (pf_decoder_branch).
 *    Requests that share no context (WinoGrande, LAMBADA, truncated ones) run
 *    one by one on the same decoder.
 *  - passes: all requests as right-padded batches through pf_forward_pass
 *    (layer-major when the model does not fit the memory budget), the
 *    lm_head only on the scored positions.
 * Under MPI each rank scores a contiguous block of documents; the scores are
 * summed over ranks (every request is scored by exactly one rank, so the sum
 * is exact).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "dist.h"
#include "generate.h"

typedef struct scorer {
  pf_bench_scores *s;
  const int64_t *req;    /* [rows] request of each scored row */
  const int32_t *target; /* [rows] its target token */
} scorer;

static void score_row(pf_bench_scores *s, int64_t r, int32_t t, const float *x, int64_t vocab) {
  float mx = x[0];
  int64_t best = 0;
  for (int64_t v = 1; v < vocab; v++)
    if (x[v] > mx) mx = x[v], best = v;
  double sum = 0;
  for (int64_t v = 0; v < vocab; v++)
    sum += exp((double)x[v] - (double)mx);
  s->ll[r] += (double)x[t] - (double)mx - log(sum);
  if (best != t) s->greedy[r] = 0;
}

static pf_status on_logits(void *ud, int64_t row0, int64_t nrows, const float *logits,
                           int64_t vocab, pf_err *err) {
  (void)err;
  const scorer *sc = ud;
  for (int64_t j = 0; j < nrows; j++)
    score_row(sc->s, sc->req[row0 + j], sc->target[row0 + j], logits + j * vocab, vocab);
  return PF_OK;
}

void pf_bench_scores_free(pf_bench_scores *s) {
  if (!s) return;
  free(s->ll);
  free(s->greedy);
  s->ll = NULL;
  s->greedy = NULL;
}

/* Row buffers, grown as needed. */
typedef struct rows_buf {
  int32_t *ids, *target;
  int64_t *lens, *sel, *req;
  int64_t cap_ids, cap_rows;
} rows_buf;

static pf_status grow(rows_buf *b, int64_t ids, int64_t rows, pf_err *err) {
  if (ids > b->cap_ids) {
    int32_t *p = realloc(b->ids, (size_t)ids * sizeof *p);
    if (!p) return pf_err_set(err, PF_ERR_NOMEM, "benchmark: out of memory");
    b->ids = p;
    b->cap_ids = ids;
  }
  if (rows > b->cap_rows) {
    int32_t *t = realloc(b->target, (size_t)rows * sizeof *t);
    if (t) b->target = t;
    int64_t *l = realloc(b->lens, (size_t)rows * sizeof *l);
    if (l) b->lens = l;
    int64_t *s = realloc(b->sel, (size_t)rows * sizeof *s);
    if (s) b->sel = s;
    int64_t *q = realloc(b->req, (size_t)rows * sizeof *q);
    if (q) b->req = q;
    if (!t || !l || !s || !q) return pf_err_set(err, PF_ERR_NOMEM, "benchmark: out of memory");
    b->cap_rows = rows;
  }
  return PF_OK;
}

static void rows_free(rows_buf *b) {
  free(b->ids), free(b->target), free(b->lens), free(b->sel), free(b->req);
}

/* The requests of one document share their (untruncated) context tokens; a
 * single request gains nothing from the cache (it runs in the batched passes). */
static int shares_context(const pf_bench_req *q, int64_t n) {
  for (int64_t i = 0; i < n; i++)
    if (q[i].start != 0 || q[i].nctx != q[0].nctx ||
        memcmp(q[i].tok, q[0].tok, (size_t)q[0].nctx * sizeof *q[0].tok))
      return 0;
  return n > 1;
}

/* One document whose requests share the context: context once, then the choices. */
static pf_status score_shared(pf_decoder *d, const pf_bench_req *q, int64_t r0, int64_t n,
                              float *last, int64_t vocab, rows_buf *b, pf_bench_scores *s,
                              const pf_ctx *ctx, pf_err *err) {
  const int64_t nctx = q[0].nctx;
  pf_decoder_reset(d);
  pf_status st = pf_decoder_feed(d, q[0].tok, nctx, last, ctx, err);
  if (st) return st;
  int64_t seq = 0, rows = 0, nsel = 0;
  for (int64_t i = 0; i < n; i++) {
    score_row(s, r0 + i, q[i].tok[nctx], last, vocab);
    if (q[i].ncont - 1 > seq) seq = q[i].ncont - 1;
    rows += q[i].ncont > 1;
    nsel += q[i].ncont - 1;
  }
  if (rows == 0) return PF_OK;
  if ((st = grow(b, rows * seq, nsel > rows ? nsel : rows, err))) return st;
  pf_decoder_fork(d, rows);
  int64_t row = 0, k = 0;
  for (int64_t i = 0; i < n; i++) {
    const int64_t m = q[i].ncont - 1;
    if (m < 1) continue;
    memset(b->ids + row * seq, 0, (size_t)seq * sizeof *b->ids);
    memcpy(b->ids + row * seq, q[i].tok + nctx, (size_t)m * sizeof *b->ids);
    b->lens[row] = m;
    for (int64_t j = 0; j < m; j++, k++) {
      b->sel[k] = row * seq + j;
      b->req[k] = r0 + i;
      b->target[k] = q[i].tok[nctx + 1 + j];
    }
    row++;
  }
  scorer sc = {.s = s, .req = b->req, .target = b->target};
  return pf_decoder_branch(d, rows, seq, b->ids, b->lens, b->sel, nsel, on_logits, &sc, ctx, err);
}

static pf_status run_cached(const pf_model *m, const pf_bench_req *reqs, const int64_t *first,
                            int64_t lo, int64_t hi, pf_bench_scores *s, pf_bench_run_info *info,
                            const pf_ctx *ctx, pf_err *err) {
  int64_t max_len = 1, slots = 1;
  for (int64_t d = lo; d < hi; d++) {
    const int64_t n = first[d + 1] - first[d];
    if (n > slots) slots = n;
    for (int64_t r = first[d]; r < first[d + 1]; r++)
      if (reqs[r].n - 1 - reqs[r].start > max_len) max_len = reqs[r].n - 1 - reqs[r].start;
  }
  pf_decoder *dec = NULL;
  rows_buf b = {0};
  const int64_t vocab = m->config.vocab_size;
  float *last = malloc((size_t)vocab * sizeof *last);
  pf_status st = last ? pf_decoder_new_slots(m, max_len, slots, &dec, err)
                      : pf_err_set(err, PF_ERR_NOMEM, "benchmark: out of memory");
  for (int64_t d = lo; d < hi && !st; d++) {
    const int64_t r0 = first[d], n = first[d + 1] - first[d];
    if (!shares_context(reqs + r0, n)) continue; /* scored in batched passes */
    st = score_shared(dec, reqs + r0, r0, n, last, vocab, &b, s, ctx, err);
    info->docs_cached++;
    info->forward_tokens += reqs[r0].nctx;
    for (int64_t i = 0; i < n; i++)
      info->forward_tokens += reqs[r0 + i].ncont - 1;
    if (st) pf_err_prefix(err, "document %lld", (long long)d);
    pf_ctx_progress(ctx, "benchmark", (uint64_t)(d + 1 - lo), (uint64_t)(hi - lo));
  }
  pf_decoder_free(dec);
  rows_free(&b);
  free(last);
  return st;
}

/* ---- uncached: batches through a pass ---- */

typedef struct pass_job {
  const pf_bench_req *reqs;
  const int64_t *order;  /* requests of the batches, batch after batch */
  const int64_t *bfirst; /* [nb + 1] */
  pf_forward *f;
  pf_bench_scores *s;
  rows_buf b;
  float *gather;
  int64_t gather_cap, H;
} pass_job;

static pf_status on_final(void *ud, int64_t index, const pf_batch *bt, const float *x,
                          pf_err *err) {
  pass_job *j = ud;
  int64_t nsel = 0;
  for (int64_t k = j->bfirst[index]; k < j->bfirst[index + 1]; k++)
    nsel += j->reqs[j->order[k]].ncont;
  pf_status st = grow(&j->b, 1, nsel, err);
  if (st) return st;
  if (nsel > j->gather_cap) {
    float *g = realloc(j->gather, (size_t)nsel * (size_t)j->H * sizeof *g);
    if (!g) return pf_err_set(err, PF_ERR_NOMEM, "benchmark: out of memory");
    j->gather = g;
    j->gather_cap = nsel;
  }
  int64_t k = 0;
  for (int64_t row = 0; row < bt->batch; row++) {
    const int64_t r = j->order[j->bfirst[index] + row];
    const pf_bench_req *q = &j->reqs[r];
    const int64_t len = q->n - 1 - q->start;
    for (int64_t c = 0; c < q->ncont; c++, k++) {
      memcpy(j->gather + k * j->H, x + (row * bt->seq + len - q->ncont + c) * j->H,
             (size_t)j->H * sizeof *x);
      j->b.req[k] = r;
      j->b.target[k] = q->tok[q->n - q->ncont + c];
    }
  }
  scorer sc = {.s = j->s, .req = j->b.req, .target = j->b.target};
  return pf_forward_logits(j->f, j->gather, nsel, on_logits, &sc, err);
}

static int by_length_desc(const void *a, const void *b, void *ud) {
  const pf_bench_req *q = ud;
  const int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  const int64_t lx = q[x].n - q[x].start, ly = q[y].n - q[y].start;
  return lx != ly ? (lx > ly ? -1 : 1) : (x > y) - (x < y);
}

static pf_status run_passes(pf_forward *f, int64_t H, const pf_bench_req *reqs,
                            const int64_t *which, int64_t nr, int64_t batch_size,
                            pf_bench_scores *s, pf_bench_run_info *info, const pf_ctx *ctx,
                            pf_err *err) {
  const int64_t nb = (nr + batch_size - 1) / batch_size;
  int64_t *order = malloc((size_t)(nr ? nr : 1) * sizeof *order);
  int64_t *bfirst = malloc((size_t)(nb + 1) * sizeof *bfirst);
  pf_batch *batches = calloc((size_t)(nb ? nb : 1), sizeof *batches);
  pass_job job = {.reqs = reqs, .order = order, .bfirst = bfirst, .f = f, .s = s, .H = H};
  pf_status st = order && bfirst && batches
                     ? PF_OK
                     : pf_err_set(err, PF_ERR_NOMEM, "benchmark: out of memory");
  for (int64_t i = 0; !st && i < nr; i++)
    order[i] = which[i];
  if (!st) qsort_r(order, (size_t)nr, sizeof *order, by_length_desc, (void *)reqs);
  for (int64_t bi = 0; !st && bi < nb; bi++) {
    const int64_t k0 = bi * batch_size, k1 = k0 + batch_size < nr ? k0 + batch_size : nr;
    bfirst[bi] = k0;
    const int64_t seq = reqs[order[k0]].n - 1 - reqs[order[k0]].start; /* longest first */
    int32_t *ids = calloc((size_t)((k1 - k0) * seq), sizeof *ids);
    int32_t *mask = calloc((size_t)((k1 - k0) * seq), sizeof *mask);
    batches[bi] = (pf_batch){.batch = k1 - k0, .seq = seq, .ids = ids, .mask = mask};
    if (!ids || !mask) {
      st = pf_err_set(err, PF_ERR_NOMEM, "benchmark: out of memory");
      break;
    }
    for (int64_t k = k0; k < k1; k++) {
      const pf_bench_req *q = &reqs[order[k]];
      const int64_t len = q->n - 1 - q->start;
      memcpy(ids + (k - k0) * seq, q->tok + q->start, (size_t)len * sizeof *ids);
      for (int64_t t = 0; t < len; t++)
        mask[(k - k0) * seq + t] = 1;
      info->forward_tokens += len;
    }
  }
  if (!st) {
    bfirst[nb] = nr;
    const pf_pass p = {
        .batches = batches, .n = nb, .final_fn = on_final, .final_ud = &job, .what = "benchmark"};
    if (nb > 0) st = pf_forward_pass(f, &p, &info->pass, ctx, err);
  }
  for (int64_t bi = 0; batches && bi < nb; bi++) {
    free((void *)batches[bi].ids);
    free((void *)batches[bi].mask);
  }
  rows_free(&job.b);
  free(job.gather), free(order), free(bfirst), free(batches);
  return st;
}

pf_status pf_bench_score(const pf_model *m, const pf_bench_req *reqs, const int64_t *first,
                         int64_t ndocs, const pf_bench_run_opts *o, pf_bench_scores *out,
                         pf_bench_run_info *info, pf_err *err) {
  memset(info, 0, sizeof *info);
  const int64_t R = first[ndocs];
  out->ll = calloc((size_t)(R ? R : 1), sizeof *out->ll);
  out->greedy = malloc((size_t)(R ? R : 1));
  if (!out->ll || !out->greedy) {
    pf_bench_scores_free(out);
    return pf_err_set(err, PF_ERR_NOMEM, "benchmark: out of memory");
  }
  if (pf_dist_size() > 1) { /* every rank the same model and requests */
    pf_sha256 h;
    pf_sha256_init(&h);
    pf_sha256_update(&h, first, (size_t)(ndocs + 1) * sizeof *first);
    for (int64_t r = 0; r < R; r++) {
      const int64_t dims[4] = {reqs[r].n, reqs[r].nctx, reqs[r].ncont, reqs[r].start};
      pf_sha256_update(&h, dims, sizeof dims);
      pf_sha256_update(&h, reqs[r].tok, (size_t)reqs[r].n * sizeof(int32_t));
    }
    pf_status st = pf_forward_check_ranks(m, &h, "the model or the benchmark data", err);
    if (st) {
      pf_bench_scores_free(out);
      return st;
    }
  }
  int64_t lo = 0, hi = ndocs;
  pf_dist_range(ndocs, &lo, &hi);
  info->docs_here = hi - lo;
  for (int64_t r = 0; r < R; r++) /* scored requests start greedy; others stay 0 for the sum */
    out->greedy[r] = r >= first[lo] && r < first[hi];
  pf_forward *f = NULL;
  pf_status st = pf_forward_new(m, &f, err);
  if (!st) { /* the cache streams the weights once per document: not for models beyond memory */
    const pf_pass probe = {.n = 0};
    pf_pass_plan(f, &probe, o->ctx, &info->pass);
    info->cached = o->context_cache && info->pass.order != PF_PASS_LAYER;
  }
  /* With the cache: the documents whose requests share their context; the rest
   * (different contexts: WinoGrande's partial scoring, one-request LAMBADA
   * documents, truncated requests) in batched passes, as without the cache. */
  int64_t *rest = malloc((size_t)(R ? R : 1) * sizeof *rest), nrest = 0;
  if (!st && !rest) st = pf_err_set(err, PF_ERR_NOMEM, "benchmark: out of memory");
  for (int64_t d = lo; !st && d < hi; d++)
    if (!info->cached || !shares_context(reqs + first[d], first[d + 1] - first[d]))
      for (int64_t r = first[d]; r < first[d + 1]; r++)
        rest[nrest++] = r;
  if (!st && info->cached && nrest < first[hi] - first[lo]) { /* the decoder has its own runner */
    pf_forward_free(f);
    f = NULL;
    st = run_cached(m, reqs, first, lo, hi, out, info, o->ctx, err);
  }
  if (!st && nrest && !f) st = pf_forward_new(m, &f, err);
  if (!st && nrest)
    st = run_passes(f, m->config.hidden_size, reqs, rest, nrest, o->batch_size, out, info, o->ctx,
                    err);
  free(rest);
  pf_forward_free(f);
  if (!st && pf_dist_size() > 1) { /* the counts of the whole run, not rank 0's share */
    int64_t n[3] = {info->docs_cached, info->docs_here, info->forward_tokens};
    if (!(st = pf_dist_sum_i64(n, 3, err)))
      info->docs_cached = n[0], info->docs_here = n[1], info->forward_tokens = n[2];
  }
  info->cached = info->docs_cached > 0;
  if (!st && pf_dist_size() > 1) {
    double *g = malloc((size_t)(R ? R : 1) * sizeof *g);
    if (!g) st = pf_err_set(err, PF_ERR_NOMEM, "benchmark: out of memory");
    for (int64_t r = 0; !st && r < R; r++)
      g[r] = out->greedy[r];
    if (!st && !(st = pf_dist_sum_f64(out->ll, R, err)) && !(st = pf_dist_sum_f64(g, R, err)))
      for (int64_t r = 0; r < R; r++)
        out->greedy[r] = g[r] > 0.5;
    free(g);
  }
  if (st) pf_bench_scores_free(out);
  return st;
}
