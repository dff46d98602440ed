/* pruning_scores.c — neuron importance for width pruning: OptiPFair's static
 * methods (§1) and data-driven hybrid score (§2.4) for GLU MLPs, and their
 * analogues for plain (non-GLU) MLPs (reference arch-gpt2-neox.md §9.2).
 *
 * Why the arithmetic looks the way it does: torch produces one float32 tensor
 * per row reduction (max, min, var, L1/L2 norm) and combines them in float32.
 * We accumulate each reduction in double and round once, which is what a
 * careful float32 reduction yields; FMA contraction is disabled so Debug and
 * Release give the same bits. A plain MLP's output column c_j (a column of
 * down_proj [H, I]) is reduced by streaming down_proj's rows into per-column
 * double accumulators in row order, which is the same sum in the same order
 * as reducing the column on its own, so no transposed copy is needed.
 */
#pragma GCC optimize("fp-contract=off")
#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pruning.h"

static const char *const method_names[] = {"PPM", "MAW", "VOW", "PON", "L2"};

pf_status pf_score_method_parse(const char *name, pf_score_method *out, pf_err *err) {
  for (int i = 0; i < 5; i++)
    if (name && strcmp(name, method_names[i]) == 0) {
      *out = (pf_score_method)i;
      return PF_OK;
    }
  return pf_err_set(err, PF_ERR_INVALID,
                    "Invalid neuron selection method: %s. Choose from ['PPM', 'MAW', 'VOW', "
                    "'PON', 'L2'].",
                    name ? name : "None");
}

const char *pf_score_method_name(pf_score_method m) {
  return (unsigned)m < 5 ? method_names[m] : "?";
}

pf_status pf_rank_dtype_param(const pf_value *params, pf_dtype *out, pf_err *err) {
  const char *rd = pf_map_str(params, "rank_dtype", "auto");
  *out = PF_DTYPE_F32;
  return strcmp(rd, "auto") != 0 ? pf_dtype_parse(rd, out, err) : PF_OK;
}

/* ---- scores ---- */

/* Row i of t as float32, rounded through `as` when the model is ranked in another
 * precision than it is stored in: OptiPFair loads with torch_dtype and scores the
 * float32 copies of the converted weights (reference §1, §13.1). PF_DTYPE_F32 or
 * t's own dtype: the stored values (widening is exact). */
static void row_as(const pf_tensor *t, int64_t i, float *row, pf_dtype as) {
  pf_tensor_row_f32(t, i, row);
  if (as != t->dtype) pf_round_through(row, (size_t)t->shape[t->ndim - 1], as);
}

/* max + |min| of x[H] (NaN if any is NaN). The AVX2 part gives the same bits:
 * max and min are exact whatever the order, and the only order-dependent
 * choice, +0 or -0 as the maximum, cannot change mx + |mn|. */
static float row_range(const float *x, int64_t H) {
  float mx = x[0], mn = x[0];
  int64_t j = 0;
#ifdef __AVX2__
  if (H >= 8) {
    __m256 vmx = _mm256_loadu_ps(x), vmn = vmx, nan = _mm256_setzero_ps();
    for (; j + 8 <= H; j += 8) {
      __m256 v = _mm256_loadu_ps(x + j);
      nan = _mm256_or_ps(nan, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
      vmx = _mm256_max_ps(vmx, v);
      vmn = _mm256_min_ps(vmn, v);
    }
    if (_mm256_movemask_ps(nan)) return NAN;
    float a[8], b[8];
    _mm256_storeu_ps(a, vmx);
    _mm256_storeu_ps(b, vmn);
    for (int k = 0; k < 8; k++) {
      if (a[k] > mx) mx = a[k];
      if (b[k] < mn) mn = b[k];
    }
  }
#endif
  for (; j < H; j++) {
    if (isnan(x[j])) return NAN; /* torch.max / min propagate NaN */
    if (x[j] > mx) mx = x[j];
    if (x[j] < mn) mn = x[j];
  }
  return mx + fabsf(mn);
}

static float row_var(const float *x, int64_t H) {
  if (H < 2) return NAN;
  double s = 0;
  for (int64_t j = 0; j < H; j++)
    s += x[j];
  double mean = s / (double)H, ss = 0;
  for (int64_t j = 0; j < H; j++) {
    double d = (double)x[j] - mean;
    ss += d * d;
  }
  return (float)(ss / (double)(H - 1));
}

static float row_l1(const float *x, int64_t H) {
  double s = 0;
  for (int64_t j = 0; j < H; j++)
    s += fabs((double)x[j]);
  return (float)s;
}

static float row_l2(const float *x, int64_t H) {
  double s = 0;
  for (int64_t j = 0; j < H; j++)
    s += (double)x[j] * (double)x[j];
  return (float)sqrt(s);
}

float pf_neuron_score(const float *g, const float *u, int64_t H, pf_score_method m) {
  if (H <= 0) return NAN;
  switch (m) {
  case PF_METHOD_PPM:
  case PF_METHOD_MAW:
    return row_range(g, H) + row_range(u, H);
  case PF_METHOD_VOW:
    return row_var(g, H) + row_var(u, H);
  case PF_METHOD_PON:
    return row_l1(g, H) * row_l1(u, H);
  case PF_METHOD_L2:
    return row_l2(g, H) + row_l2(u, H);
  }
  return NAN;
}

/* A plain neuron's score from its input row r[H] and its output column's L1 and
 * L2 norms (already rounded to float32). */
static float plain_score(const float *r, int64_t H, float c_l1, float c_l2, pf_score_method m) {
  switch (m) {
  case PF_METHOD_PPM:
  case PF_METHOD_MAW:
    return row_range(r, H);
  case PF_METHOD_VOW:
    return row_var(r, H);
  case PF_METHOD_PON:
    return row_l1(r, H) * c_l1;
  case PF_METHOD_L2:
    return row_l2(r, H) + c_l2;
  }
  return NAN;
}

float pf_plain_neuron_score(const float *r, const float *c, int64_t H, pf_score_method m) {
  if (H <= 0) return NAN;
  return plain_score(r, H, row_l1(c, H), row_l2(c, H), m);
}

static pf_status check_gate_up(const pf_layer *l, pf_err *err) {
  const pf_tensor *g = l->gate_proj, *u = l->up_proj;
  if (!g || !u) return pf_err_set(err, PF_ERR_INVALID, "mlp: gate_proj / up_proj missing");
  if (pf_tensor_is_planned(g) || pf_tensor_is_planned(u))
    return pf_err_set(err, PF_ERR_INVALID,
                      "mlp.gate_proj: no weight data (a dry-run plan cannot be scored)");
  if (g->ndim != 2 || u->ndim != 2 || g->shape[0] != u->shape[0] || g->shape[1] != u->shape[1]) {
    char a[64], b[64];
    return pf_err_set(err, PF_ERR_INVALID, "mlp.up_proj: expected shape %s (as gate_proj), got %s",
                      pf_shape_str(g->ndim, g->shape, a, sizeof a),
                      pf_shape_str(u->ndim, u->shape, b, sizeof b));
  }
  return PF_OK;
}

/* A plain MLP layer: up_proj (fc_in) [I, H] and down_proj (fc_out) [H, I], weights present. */
static pf_status check_plain(const pf_layer *l, pf_err *err) {
  const pf_tensor *u = l->up_proj, *d = l->down_proj;
  if (!u || !d)
    return pf_err_set(err, PF_ERR_INVALID,
                      "mlp: up_proj (fc_in) / down_proj (fc_out) missing (a plain MLP has both)");
  if (pf_tensor_is_planned(u) || pf_tensor_is_planned(d))
    return pf_err_set(err, PF_ERR_INVALID,
                      "mlp.up_proj: no weight data (a dry-run plan cannot be scored)");
  if (u->ndim != 2 || d->ndim != 2 || d->shape[0] != u->shape[1] || d->shape[1] != u->shape[0]) {
    char a[64], b[64];
    return pf_err_set(
        err, PF_ERR_INVALID,
        "mlp.down_proj: expected shape [%lld, %lld] (up_proj %s transposed), got %s",
        u->ndim == 2 ? (long long)u->shape[1] : -1LL, u->ndim == 2 ? (long long)u->shape[0] : -1LL,
        pf_shape_str(u->ndim, u->shape, a, sizeof a), pf_shape_str(d->ndim, d->shape, b, sizeof b));
  }
  return PF_OK;
}

/* L1 and L2 norms of every column of D [H, I] (float32 results): one pass over
 * the rows, double accumulators per column, in row order. */
static pf_status column_norms(const pf_tensor *D, pf_dtype as, float *l1, float *l2, pf_err *err) {
  const int64_t H = D->shape[0], I = D->shape[1];
  double *acc = calloc((size_t)(2 * I), sizeof(double));
  float *row = malloc(sizeof(float) * (size_t)(I ? I : 1));
  if (!acc || !row) {
    free(acc);
    free(row);
    return pf_err_set(err, PF_ERR_NOMEM, "scores: out of memory for column norms");
  }
  double *s1 = acc, *s2 = acc + I;
  for (int64_t h = 0; h < H; h++) {
    row_as(D, h, row, as);
    for (int64_t i = 0; i < I; i++) {
      s1[i] += fabs((double)row[i]);
      s2[i] += (double)row[i] * (double)row[i];
    }
  }
  for (int64_t i = 0; i < I; i++) {
    l1[i] = (float)s1[i];
    l2[i] = (float)sqrt(s2[i]);
  }
  free(acc);
  free(row);
  pf_tensor_release_pages(D);
  return PF_OK;
}

/* §9.2 static scores of a plain MLP layer (no gate_proj). */
static pf_status plain_layer_scores(const pf_layer *l, pf_score_method m, pf_dtype as, float *out,
                                    pf_err *err) {
  pf_status st = check_plain(l, err);
  if (st) return st;
  const int64_t I = l->up_proj->shape[0], H = l->up_proj->shape[1];
  const int cols = m == PF_METHOD_PON || m == PF_METHOD_L2;
  const int nt = omp_get_max_threads();
  float *cn = cols ? malloc(sizeof(float) * (size_t)(2 * I)) : NULL;
  float *buf = malloc(sizeof(float) * (size_t)H * (size_t)nt);
  if (!buf || (cols && !cn)) st = pf_err_set(err, PF_ERR_NOMEM, "scores: out of memory");
  if (!st && cols) st = column_norms(l->down_proj, as, cn, cn + I, err);
  if (st) {
    free(cn);
    free(buf);
    return st;
  }
#pragma omp parallel for schedule(static) num_threads(nt)
  for (int64_t i = 0; i < I; i++) {
    float *r = buf + (size_t)H * (size_t)omp_get_thread_num();
    row_as(l->up_proj, i, r, as);
    out[i] = plain_score(r, H, cn ? cn[i] : 0.0f, cn ? cn[I + i] : 0.0f, m);
  }
  free(cn);
  free(buf);
  pf_tensor_release_pages(l->up_proj);
  return PF_OK;
}

pf_status pf_layer_scores(const pf_layer *l, pf_score_method m, pf_dtype as, float *out,
                          pf_err *err) {
  if (!l->gate_proj) return plain_layer_scores(l, m, as, out, err);
  pf_status st = check_gate_up(l, err);
  if (st) return st;
  const int64_t I = l->gate_proj->shape[0], H = l->gate_proj->shape[1];
  const int nt = omp_get_max_threads();
  float *buf = malloc(sizeof(float) * (size_t)(2 * H) * (size_t)nt);
  if (!buf) return pf_err_set(err, PF_ERR_NOMEM, "scores: out of memory for row buffers");
#pragma omp parallel num_threads(nt)
  {
    /* each thread scores one block of rows: map its pages in one call first
     * (far cheaper than a page fault per 64 KiB on a virtual machine) */
    const int me = omp_get_thread_num(), team = omp_get_num_threads();
    const int64_t r0 = I * me / team, r1 = I * (me + 1) / team;
    float *g = buf + (size_t)(2 * H) * (size_t)me, *u = g + H;
    pf_tensor_prefault_rows(l->gate_proj, r0, r1);
    pf_tensor_prefault_rows(l->up_proj, r0, r1);
    for (int64_t i = r0; i < r1; i++) {
      row_as(l->gate_proj, i, g, as);
      row_as(l->up_proj, i, u, as);
      out[i] = pf_neuron_score(g, u, H, m);
    }
  }
  free(buf);
  /* the rows are read once: do not keep the mapped pages resident */
  pf_tensor_release_pages(l->gate_proj);
  pf_tensor_release_pages(l->up_proj);
  return PF_OK;
}

/* max + |min| of n values (float32 result, as torch). */
static float peak_to_peak(const float *x, int64_t n) {
  float mx = x[0], mn = x[0];
  for (int64_t j = 1; j < n; j++) {
    if (x[j] > mx) mx = x[j];
    if (x[j] < mn) mn = x[j];
  }
  return mx + fabsf(mn);
}

/* v[i] / (max(v) + 1e-8) in place, float32 arithmetic. */
static void normalise_by_max(float *v, int64_t n) {
  float mx = v[0];
  for (int64_t i = 1; i < n; i++)
    if (v[i] > mx) mx = v[i];
  float den = mx + 1e-8f;
  for (int64_t i = 0; i < n; i++)
    v[i] = v[i] / den;
}

/* Column-wise max + |min| of D [H, I]: d[I]. */
static void down_peaks(const pf_tensor *D, pf_dtype as, float *d, float *row, float *mx,
                       float *mn) {
  const int64_t H = D->shape[0], I = D->shape[1];
  for (int64_t h = 0; h < H; h++) {
    row_as(D, h, row, as);
    for (int64_t i = 0; i < I; i++) {
      if (h == 0 || row[i] > mx[i]) mx[i] = row[i];
      if (h == 0 || row[i] < mn[i]) mn[i] = row[i];
    }
  }
  for (int64_t i = 0; i < I; i++)
    d[i] = mx[i] + fabsf(mn[i]);
}

/* Hybrid score of a plain MLP layer: (r^ + c^) * X with r = rng(up rows),
 * c = rng(down columns), each divided by (its max + 1e-8). */
static pf_status plain_hybrid_scores(const pf_layer *l, const float *X, pf_dtype as, float *out,
                                     pf_err *err) {
  pf_status st = check_plain(l, err);
  if (st) return st;
  const pf_tensor *U = l->up_proj, *D = l->down_proj;
  const int64_t I = U->shape[0], H = U->shape[1];
  int64_t rowlen = H > I ? H : I;
  float *buf = malloc(sizeof(float) * (size_t)(4 * I + rowlen));
  if (!buf) return pf_err_set(err, PF_ERR_NOMEM, "hybrid scores: out of memory");
  float *r = buf, *c = r + I, *mx = c + I, *mn = mx + I, *row = mn + I;
  for (int64_t i = 0; i < I; i++) {
    row_as(U, i, row, as);
    r[i] = peak_to_peak(row, H);
  }
  down_peaks(D, as, c, row, mx, mn);
  normalise_by_max(r, I);
  normalise_by_max(c, I);
  for (int64_t i = 0; i < I; i++)
    out[i] = (r[i] + c[i]) * X[i];
  free(buf);
  pf_tensor_release_pages(U);
  pf_tensor_release_pages(D);
  return PF_OK;
}

pf_status pf_layer_hybrid_scores(const pf_layer *l, const float *X, pf_dtype as, float *out,
                                 pf_err *err) {
  if (!l->gate_proj) return plain_hybrid_scores(l, X, as, out, err);
  pf_status st = check_gate_up(l, err);
  if (st) return st;
  const pf_tensor *D = l->down_proj;
  const int64_t I = l->gate_proj->shape[0], H = l->gate_proj->shape[1];
  if (!D || pf_tensor_is_planned(D) || D->ndim != 2 || D->shape[1] != I)
    return pf_err_set(err, PF_ERR_INVALID, "mlp.down_proj: expected shape [%lld, %lld]",
                      (long long)H, (long long)I);
  int64_t rowlen = H > D->shape[1] ? H : D->shape[1];
  float *buf = malloc(sizeof(float) * (size_t)(5 * I + rowlen));
  if (!buf) return pf_err_set(err, PF_ERR_NOMEM, "hybrid scores: out of memory");
  float *g = buf, *u = g + I, *d = u + I, *mx = d + I, *mn = mx + I, *row = mn + I;
  for (int64_t i = 0; i < I; i++) {
    row_as(l->gate_proj, i, row, as);
    g[i] = peak_to_peak(row, H);
    row_as(l->up_proj, i, row, as);
    u[i] = peak_to_peak(row, H);
  }
  down_peaks(D, as, d, row, mx, mn);
  normalise_by_max(g, I);
  normalise_by_max(u, I);
  normalise_by_max(d, I);
  for (int64_t i = 0; i < I; i++)
    out[i] = (g[i] + u[i] + d[i]) * X[i];
  free(buf);
  pf_tensor_release_pages(l->gate_proj);
  pf_tensor_release_pages(l->up_proj);
  pf_tensor_release_pages(D);
  return PF_OK;
}
