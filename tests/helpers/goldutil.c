/* goldutil.c — running a forward pass and comparing its logits with a golden case
 * (the headers in tests/golden), shared by check_forward and check_families. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "forward.h"
#include "goldutil.h"
#include "model.h"
#include "testutil.h"


pf_status collect_logits(void *ud, int64_t row0, int64_t n, const float *lg, int64_t V,
                                pf_err *err) {
  logits_buf *b = ud;
  ck_assert_int_eq(row0, b->next_row); /* consecutive chunks */
  ck_assert_int_eq(V, b->vocab);
  ck_assert(row0 + n <= b->rows);
  memcpy(b->data + row0 * V, lg, (size_t)(n * V) * sizeof *lg);
  b->next_row += n;
  b->calls++;
  return PF_OK;
}

/* Forward of a batch; returns malloc'd logits [B*S, V]. */
float *run_logits(const pf_model *m, const int32_t *ids, const int32_t *mask, int64_t B,
                         int64_t S, int64_t *calls) {
  pf_forward *f = NULL;
  pf_err err = {0};
  ck_assert_msg(pf_forward_new(m, &f, &err) == PF_OK, "%s", err.msg);
  logits_buf lb = {.rows = B * S, .vocab = m->config.vocab_size};
  lb.data = malloc((size_t)(B * S * lb.vocab) * sizeof(float));
  pf_batch b = {.batch = B, .seq = S, .ids = ids, .mask = mask};
  ck_assert_msg(pf_forward_run(f, &b, NULL, collect_logits, &lb, NULL, &err) == PF_OK, "%s",
                err.msg);
  ck_assert_int_eq(lb.next_row, B * S);
  if (calls) *calls = lb.calls;
  pf_forward_free(f);
  return lb.data;
}

static double logsumexp_d(const float *x, int64_t n) {
  double mx = x[0], s = 0;
  for (int64_t i = 1; i < n; i++)
    mx = x[i] > mx ? x[i] : mx;
  for (int64_t i = 0; i < n; i++)
    s += exp((double)x[i] - mx);
  return mx + log(s);
}

typedef struct err_acc {
  double max_abs, max_ref, max_rel;
} err_acc;

static void acc(err_acc *e, double a, double b) {
  ck_assert_msg(isfinite(a), "non-finite logit");
  double d = fabs(a - b);
  e->max_abs = d > e->max_abs ? d : e->max_abs;
  e->max_ref = fabs(b) > e->max_ref ? fabs(b) : e->max_ref;
  if (fabs(b) > 1e-2 && d / fabs(b) > e->max_rel) e->max_rel = d / fabs(b);
}

/* Compare the model's logits with a golden case, row by row: max|a-b|/max|b| <= tol
 * and the largest relative error of logits above 1e-2 <= tol_rel. */
void check_golden_tol(const pf_model *m, const pf_golden_case *g, double tol,
                             double tol_rel) {
  const int64_t B = g->batch, S = g->seq, V = g->vocab;
  ck_assert_int_eq(m->config.vocab_size, V);
  float *lg = run_logits(m, g->ids, g->mask, B, S, NULL);
  for (int64_t b = 0; b < B; b++) {
    err_acc e = {0};
    int64_t len = 0;
    for (int64_t s = 0; s < S; s++)
      len += g->mask[b * S + s];
    for (int64_t s = 0; s < len; s++) {
      const float *row = lg + (b * S + s) * V;
      for (int i = 0; i < PF_GOLDEN_NSEL; i++)
        acc(&e, row[(5 + 31 * i + 7 * s) % V], g->sel[(b * S + s) * PF_GOLDEN_NSEL + i]);
      acc(&e, logsumexp_d(row, V), g->lse[b * S + s]);
    }
    for (int64_t j = 0; j < V; j++)
      acc(&e, lg[(b * S + len - 1) * V + j], g->last[b * V + j]);
    double rel = e.max_abs / e.max_ref;
    fprintf(stderr,
            "golden %s row %lld (%lld tokens): max|a-b|/max|b| = %.2e, max rel (|b|>1e-2) "
            "= %.2e\n",
            g->name, (long long)b, (long long)len, rel, e.max_rel);
    ck_assert_msg(rel <= tol, "%s row %lld: max|a-b|/max|b| = %g", g->name, (long long)b, rel);
    ck_assert_msg(e.max_rel <= tol_rel, "%s row %lld: max rel = %g", g->name, (long long)b,
                  e.max_rel);
  }
  free(lg);
}

