/* bench_metrics.c — per-document predictions and the task metrics of
 * lm-evaluation-harness (reference benchmarks.md §6-7): acc, acc_norm (the
 * log-likelihood divided by the choice's length in code points), LAMBADA's
 * greedy acc and perplexity = exp(-mean of per-document log-likelihoods); the
 * closed-form stderr of a mean and the harness's bootstrap stderr of the
 * perplexity, drawn with a port of Python's random.Random (MT19937 seeded by
 * init_by_array, random() of 53 bits, choices() = floor(random() * n)).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench.h"

/* ---- Python's random.Random ---- */

#define MT_N 624
#define MT_M 397

static void mt_init(pf_pyrandom *r, uint32_t s) {
  r->mt[0] = s;
  for (int i = 1; i < MT_N; i++)
    r->mt[i] = 1812433253u * (r->mt[i - 1] ^ (r->mt[i - 1] >> 30)) + (uint32_t)i;
  r->idx = MT_N;
}

void pf_pyrandom_seed(pf_pyrandom *r, uint64_t seed) {
  /* Random.seed(int): init_by_array over the 32-bit words of the int, least
   * significant first ([0] for 0). */
  uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
  const int len = key[1] ? 2 : 1;
  mt_init(r, 19650218u);
  int i = 1, j = 0;
  for (int k = MT_N > len ? MT_N : len; k; k--) {
    r->mt[i] =
        (r->mt[i] ^ ((r->mt[i - 1] ^ (r->mt[i - 1] >> 30)) * 1664525u)) + key[j] + (uint32_t)j;
    i++, j++;
    if (i >= MT_N) r->mt[0] = r->mt[MT_N - 1], i = 1;
    if (j >= len) j = 0;
  }
  for (int k = MT_N - 1; k; k--) {
    r->mt[i] = (r->mt[i] ^ ((r->mt[i - 1] ^ (r->mt[i - 1] >> 30)) * 1566083941u)) - (uint32_t)i;
    i++;
    if (i >= MT_N) r->mt[0] = r->mt[MT_N - 1], i = 1;
  }
  r->mt[0] = 0x80000000u;
  r->idx = MT_N;
}

static uint32_t mt_next(pf_pyrandom *r) {
  if (r->idx >= MT_N) {
    static const uint32_t mag[2] = {0u, 0x9908b0dfu};
    int k = 0;
    for (; k < MT_N - MT_M; k++) {
      uint32_t y = (r->mt[k] & 0x80000000u) | (r->mt[k + 1] & 0x7fffffffu);
      r->mt[k] = r->mt[k + MT_M] ^ (y >> 1) ^ mag[y & 1u];
    }
    for (; k < MT_N - 1; k++) {
      uint32_t y = (r->mt[k] & 0x80000000u) | (r->mt[k + 1] & 0x7fffffffu);
      r->mt[k] = r->mt[k + (MT_M - MT_N)] ^ (y >> 1) ^ mag[y & 1u];
    }
    uint32_t y = (r->mt[MT_N - 1] & 0x80000000u) | (r->mt[0] & 0x7fffffffu);
    r->mt[MT_N - 1] = r->mt[MT_M - 1] ^ (y >> 1) ^ mag[y & 1u];
    r->idx = 0;
  }
  uint32_t y = r->mt[r->idx++];
  y ^= y >> 11;
  y ^= (y << 7) & 0x9d2c5680u;
  y ^= (y << 15) & 0xefc60000u;
  y ^= y >> 18;
  return y;
}

double pf_pyrandom_random(pf_pyrandom *r) {
  const uint32_t a = mt_next(r) >> 5, b = mt_next(r) >> 6;
  return ((double)a * 67108864.0 + (double)b) * (1.0 / 9007199254740992.0);
}

/* ---- statistics ---- */

static double mean_of(const double *x, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; i++)
    s += x[i];
  return s / (double)n;
}

static double sample_stddev(const double *x, int64_t n) {
  const double mu = mean_of(x, n);
  double s = 0;
  for (int64_t i = 0; i < n; i++)
    s += (x[i] - mu) * (x[i] - mu);
  return sqrt(s / (double)(n - 1));
}

double pf_bench_mean_stderr(const double *x, int64_t n) {
  return n < 2 ? NAN : sample_stddev(x, n) / sqrt((double)n);
}

double pf_bench_perplexity_stderr(const double *ll, int64_t n, int64_t iters) {
  if (iters < 1 || n < 2) return NAN; /* lm-eval: "N/A" for a single document */
  const int64_t chunk = iters < 1000 ? iters : 1000, chunks = iters / chunk;
  double *res = malloc((size_t)(chunks * chunk) * sizeof *res);
  if (!res) return NAN;
  const double fn = (double)n;
  for (int64_t c = 0; c < chunks; c++) {
    pf_pyrandom r;
    pf_pyrandom_seed(&r, (uint64_t)c);
    for (int64_t k = 0; k < chunk; k++) {
      double s = 0;
      for (int64_t i = 0; i < n; i++)
        s += ll[(int64_t)floor(pf_pyrandom_random(&r) * fn)];
      res[c * chunk + k] = exp(-(s / fn));
    }
  }
  const double sd = chunks * chunk < 2 ? NAN : sample_stddev(res, chunks * chunk);
  free(res);
  return sd;
}

/* ---- per task ---- */

static int argmax_first(const double *x, int n) {
  int best = 0;
  for (int i = 1; i < n; i++)
    if (x[i] > x[best]) best = i;
  return best;
}

void pf_bench_preds_free(pf_bench_preds *p) {
  if (!p) return;
  free(p->pred);
  free(p->pred_norm);
  p->pred = p->pred_norm = NULL;
}

static pf_value *num_or_null(double x) {
  return isfinite(x) ? pf_value_num(x) : pf_value_null();
}

static pf_status put_metric(pf_value *m, const char *name, double v, double se) {
  char key[48];
  snprintf(key, sizeof key, "%s_stderr", name);
  pf_status st = pf_map_set(m, name, num_or_null(v));
  return st ? st : pf_map_set(m, key, num_or_null(se));
}

static pf_value *sample_of(const pf_bench_doc *doc, const double *ll, const uint8_t *greedy,
                           int pred, int pred_norm, int with_norm) {
  pf_value *s = pf_value_map(), *lls = pf_value_list(), *gs = pf_value_list();
  if (!s || !lls || !gs) {
    pf_value_release(s), pf_value_release(lls), pf_value_release(gs);
    return NULL;
  }
  for (int i = 0; i < doc->n; i++) {
    pf_list_push(lls, pf_value_num(ll[i]));
    pf_list_push(gs, pf_value_bool(greedy[i]));
  }
  pf_map_set_str(s, "id", doc->id);
  pf_map_set(s, "loglikelihoods", lls);
  pf_map_set(s, "is_greedy", gs);
  if (doc->gold >= 0) {
    pf_map_set_int(s, "pred", pred);
    if (with_norm) pf_map_set_int(s, "pred_norm", pred_norm);
    pf_map_set_int(s, "gold", doc->gold);
  }
  return s;
}

pf_status pf_bench_task_result(const pf_bench_task *t, const pf_bench_docs *d,
                               const pf_bench_scores *s, int log_samples, int64_t bootstrap_iters,
                               pf_value **out, pf_bench_preds *preds, pf_err *err) {
  *out = NULL;
  const int64_t n = d->n;
  const int norm = (t->metrics & PF_BENCH_ACC_NORM) && t->type == PF_BENCH_MC;
  double *acc = malloc((size_t)(n ? n : 1) * sizeof *acc);
  double *accn = malloc((size_t)(n ? n : 1) * sizeof *accn);
  double *lls = malloc((size_t)(n ? n : 1) * sizeof *lls);
  double *tmp = NULL;
  pf_value *m = pf_value_map(), *samples = log_samples ? pf_value_list() : NULL;
  preds->pred = calloc((size_t)(n ? n : 1), sizeof *preds->pred);
  preds->pred_norm = calloc((size_t)(n ? n : 1), sizeof *preds->pred_norm);
  pf_status st = PF_OK;
  if (!acc || !accn || !lls || !m || (log_samples && !samples) || !preds->pred ||
      !preds->pred_norm) {
    st = pf_err_set(err, PF_ERR_NOMEM, "benchmark: %s: out of memory", t->name);
    goto done;
  }
  int64_t r = 0;
  for (int64_t i = 0; i < n && !st; i++) {
    const pf_bench_doc *doc = &d->doc[i];
    const double *ll = s->ll + r;
    int pred = 0, pn = 0;
    if (doc->gold >= 0) {
      pred = argmax_first(ll, doc->n);
      if (norm) {
        double q[doc->n > 0 ? doc->n : 1];
        for (int c = 0; c < doc->n; c++)
          q[c] = ll[c] / doc->norm_len[c];
        pn = argmax_first(q, doc->n);
      }
      acc[i] = pred == doc->gold;
      accn[i] = pn == doc->gold;
    } else {
      acc[i] = s->greedy[r];
      lls[i] = ll[0];
    }
    preds->pred[i] = pred;
    preds->pred_norm[i] = pn;
    if (samples) {
      pf_value *one = sample_of(doc, ll, s->greedy + r, pred, pn, norm);
      if (!one || pf_list_push(samples, one) != PF_OK)
        st = pf_err_set(err, PF_ERR_NOMEM, "benchmark: %s: out of memory", t->name);
    }
    r += doc->n;
  }
  if (st) goto done;
  pf_map_set_int(m, "n", n);
  /* lm-eval's stderr_for_metric: no stderr function at all when bootstrap_iters <= 0,
   * for the closed-form means too ("N/A", here null) */
  const int se = bootstrap_iters > 0;
  if (t->metrics & PF_BENCH_ACC)
    put_metric(m, "acc", n ? mean_of(acc, n) : NAN, se ? pf_bench_mean_stderr(acc, n) : NAN);
  if (norm)
    put_metric(m, "acc_norm", n ? mean_of(accn, n) : NAN, se ? pf_bench_mean_stderr(accn, n) : NAN);
  if ((t->metrics & PF_BENCH_PERPLEXITY) && t->type == PF_BENCH_CLOZE)
    put_metric(m, "perplexity", n ? exp(-mean_of(lls, n)) : NAN,
               pf_bench_perplexity_stderr(lls, n, bootstrap_iters));
  if (samples) {
    pf_map_set(m, "samples", samples);
    samples = NULL;
  }
  *out = m;
  m = NULL;
done:
  free(acc), free(accn), free(lls), free(tmp);
  pf_value_release(m);
  pf_value_release(samples);
  if (st) pf_bench_preds_free(preds);
  return st;
}
