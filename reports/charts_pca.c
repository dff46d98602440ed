/* charts_pca.c — two-component PCA (pf_pca2) and the paired-points scatter
 * chart OptiPFair draws from it (see charts.h).
 *
 * PCA: the covariance eigenproblem is solved on the smaller side. With n rows
 * and d columns, G = Xc Xc^T (n x n) and C = Xc^T Xc (d x d) share their
 * non-zero eigenvalues; for n <= d (token rows, thousands of hidden units) the
 * Gram matrix is the small one. Up to 256 the small matrix is diagonalised
 * exactly by cyclic Jacobi rotations; beyond that, block power iteration on
 * C (applied as Xc^T (Xc V), never formed) with Rayleigh-Ritz finds the two
 * leading eigenvectors.
 */
#include <math.h>
#include <plplot.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "charts_int.h"

#define JACOBI_MAX 256
#define BLOCK 8
#define GRAM_SLICE 512 /* doubles of each row per pass over the Gram matrix */

/* x . y over n doubles, in 8 interleaved partial sums (vectorised). */
static double dotd(const double *x, const double *y, int64_t n) {
  double s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; k++)
      s[k] += x[i + k] * y[i + k];
  double t = ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]));
  for (; i < n; i++)
    t += x[i] * y[i];
  return t;
}

/* (x, y) <- (c x - s y, s x + c y), elementwise over n. */
static void rotate_rows(double *restrict x, double *restrict y, int n, double c, double s) {
  for (int k = 0; k < n; k++) {
    double xk = x[k], yk = y[k];
    x[k] = c * xk - s * yk;
    y[k] = s * xk + c * yk;
  }
}

/* Eigen-decomposition of symmetric a[n*n] (destroyed): w[n] eigenvalues in
 * descending order, vt[n*n] eigenvectors in rows (vt[k*n + i] = component i of
 * vector k). Cyclic Jacobi: each rotation (p, q) rewrites rows p and q of A
 * (contiguous, so the compiler vectorises them) and mirrors them into columns
 * p and q, as A stays symmetric; the 2 x 2 block takes Rutishauser's update
 * (a_pp - t a_pq, a_qq + t a_pq, a_pq = 0). The eigenvectors accumulate as rows
 * of vt, contiguous too. */
static void jacobi(double *a, int n, double *w, double *vt) {
  for (int i = 0; i < n * n; i++)
    vt[i] = 0;
  for (int i = 0; i < n; i++)
    vt[i * n + i] = 1;
  for (int sweep = 0; sweep < 100; sweep++) {
    double off = 0, diag = 0;
    for (int i = 0; i < n; i++) {
      diag += a[i * n + i] * a[i * n + i];
      for (int j = i + 1; j < n; j++)
        off += a[i * n + j] * a[i * n + j];
    }
    if (off <= 1e-30 * (diag > 0 ? diag : 1)) break;
    for (int p = 0; p < n; p++)
      for (int q = p + 1; q < n; q++) {
        double apq = a[p * n + q];
        if (apq == 0) continue;
        double app = a[p * n + p], aqq = a[q * n + q];
        double theta = (aqq - app) / (2 * apq);
        double t = (theta >= 0 ? 1 : -1) / (fabs(theta) + sqrt(theta * theta + 1));
        double cs = 1 / sqrt(t * t + 1), sn = t * cs;
        rotate_rows(a + (size_t)p * n, a + (size_t)q * n, n, cs, sn);
        a[p * n + p] = app - t * apq;
        a[q * n + q] = aqq + t * apq;
        a[p * n + q] = a[q * n + p] = 0;
        double *cp = a + p, *cq = a + q; /* columns p and q mirror rows p and q */
        for (int k = 0; k < n; k++, cp += n, cq += n)
          *cp = a[p * n + k], *cq = a[q * n + k];
        rotate_rows(vt + (size_t)p * n, vt + (size_t)q * n, n, cs, sn);
      }
  }
  for (int i = 0; i < n; i++)
    w[i] = a[i * n + i];
  for (int i = 0; i < n; i++) { /* selection sort, descending, vectors follow */
    int m = i;
    for (int j = i + 1; j < n; j++)
      if (w[j] > w[m]) m = j;
    if (m == i) continue;
    double t = w[i];
    w[i] = w[m];
    w[m] = t;
    for (int k = 0; k < n; k++) {
      t = vt[i * n + k];
      vt[i * n + k] = vt[m * n + k];
      vt[m * n + k] = t;
    }
  }
}

/* out[d*k] = Xc^T (Xc V) for V[d*k] (column j of V at V[i*k + j]). */
static void apply_cov(const double *xc, int64_t n, int64_t d, const double *V, int k, double *t,
                      double *out) {
  for (int64_t r = 0; r < n; r++)
    for (int j = 0; j < k; j++) {
      double s = 0;
      for (int64_t i = 0; i < d; i++)
        s += xc[r * d + i] * V[i * k + j];
      t[r * k + j] = s;
    }
  for (int64_t i = 0; i < d; i++)
    for (int j = 0; j < k; j++) {
      double s = 0;
      for (int64_t r = 0; r < n; r++)
        s += xc[r * d + i] * t[r * k + j];
      out[i * k + j] = s;
    }
}

/* Project the earlier columns out of column j (twice: one pass loses
 * orthogonality when the column is nearly dependent); returns its norm. */
static double project_out(double *V, int64_t d, int k, int j) {
  for (int pass = 0; pass < 2; pass++)
    for (int p = 0; p < j; p++) {
      double dot = 0;
      for (int64_t i = 0; i < d; i++)
        dot += V[i * k + j] * V[i * k + p];
      for (int64_t i = 0; i < d; i++)
        V[i * k + j] -= dot * V[i * k + p];
    }
  double nrm = 0;
  for (int64_t i = 0; i < d; i++)
    nrm += V[i * k + j] * V[i * k + j];
  return sqrt(nrm);
}

/* Gram-Schmidt on the k columns of V[d*k]. A column that collapses (the data
 * has fewer than k directions) is replaced by a pseudo-random one. */
static void orthonormalise(double *V, int64_t d, int k, uint64_t *seed) {
  for (int j = 0; j < k; j++) {
    double before = 0;
    for (int64_t i = 0; i < d; i++)
      before += V[i * k + j] * V[i * k + j];
    double nrm = project_out(V, d, k, j);
    if (!(nrm > 1e-9 * sqrt(before)) || !(nrm > 1e-300)) {
      for (int64_t i = 0; i < d; i++) {
        *seed ^= *seed << 13, *seed ^= *seed >> 7, *seed ^= *seed << 17;
        V[i * k + j] = (double)(*seed >> 11) / 9007199254740992.0 - 0.5;
      }
      nrm = project_out(V, d, k, j);
    }
    for (int64_t i = 0; i < d; i++)
      V[i * k + j] /= nrm;
  }
}

/* Two leading eigenvectors of C (load[0..d) and load[d..2d)) and eigenvalues lam[2],
 * by block power iteration with Rayleigh-Ritz. */
static pf_status power_pca(const double *xc, int64_t n, int64_t d, double *load, double lam[2],
                           pf_err *err) {
  int k = BLOCK;
  double *V = malloc(sizeof(double) * (size_t)(d * k)),
         *W = malloc(sizeof(double) * (size_t)(d * k));
  double *t = malloc(sizeof(double) * (size_t)(n * k));
  if (!V || !W || !t) {
    free(V), free(W), free(t);
    return pf_err_set(err, PF_ERR_NOMEM, "pca: out of memory");
  }
  uint64_t s = 0x9E3779B97F4A7C15ull;
  for (int64_t i = 0; i < d * k; i++) { /* deterministic start */
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    V[i] = (double)(s >> 11) / 9007199254740992.0 - 0.5;
  }
  orthonormalise(V, d, k, &s);
  double H[BLOCK * BLOCK], Hw[BLOCK], Hv[BLOCK * BLOCK], prev[2] = {0, 0};
  for (int it = 0; it < 500; it++) {
    apply_cov(xc, n, d, V, k, t, W);
    for (int a = 0; a < k; a++) /* Rayleigh quotient matrix V^T C V */
      for (int b = 0; b < k; b++) {
        double sum = 0;
        for (int64_t i = 0; i < d; i++)
          sum += V[i * k + a] * W[i * k + b];
        H[a * k + b] = sum;
      }
    jacobi(H, k, Hw, Hv);
    for (int64_t i = 0; i < d; i++) { /* rotate W into the Ritz basis */
      double row[BLOCK];
      for (int j = 0; j < k; j++) {
        row[j] = 0;
        for (int a = 0; a < k; a++)
          row[j] += W[i * k + a] * Hv[j * k + a];
      }
      memcpy(&W[i * k], row, sizeof row);
    }
    memcpy(V, W, sizeof(double) * (size_t)(d * k));
    orthonormalise(V, d, k, &s);
    int done = fabs(Hw[0] - prev[0]) <= 1e-13 * fabs(Hw[0]) &&
               fabs(Hw[1] - prev[1]) <= 1e-13 * fabs(Hw[0]);
    prev[0] = Hw[0], prev[1] = Hw[1];
    if (done && it > 3) break;
  }
  lam[0] = prev[0], lam[1] = prev[1];
  for (int64_t i = 0; i < d; i++)
    load[i] = V[i * k], load[d + i] = V[i * k + 1];
  free(V), free(W), free(t);
  return PF_OK;
}

pf_status pf_pca2(const float *x, int64_t rows, int64_t cols, double *scores, double ratio[2],
                  pf_err *err) {
  if (!x || !scores || rows < 2 || cols < 1)
    return pf_err_set(err, PF_ERR_INVALID,
                      "pca: expected at least 2 rows and 1 column, got %lld x %lld",
                      (long long)rows, (long long)cols);
  int64_t n = rows, d = cols, m = n <= d ? n : d;
  int gram = n <= d; /* the small matrix: G = Xc Xc^T, or C = Xc^T Xc */
  double *xc = malloc(sizeof(double) * (size_t)(n * d)), *mean = calloc((size_t)d, sizeof(double)),
         *load = malloc(sizeof(double) * (size_t)(d * 2)); /* [2][d] */
  double *a = NULL, *w = NULL, *v = NULL, lam[2] = {0, 0}, total = 0;
  pf_status st = xc && mean && load ? PF_OK : pf_err_set(err, PF_ERR_NOMEM, "pca: out of memory");
  for (int64_t r = 0; !st && r < n; r++) /* column means, row by row */
    for (int64_t j = 0; j < d; j++) {
      float f = x[r * d + j];
      if (!isfinite(f)) {
        st = pf_err_set(err, PF_ERR_INVALID, "pca: value [%lld, %lld] is not finite", (long long)r,
                        (long long)j);
        break;
      }
      mean[j] += f;
    }
  for (int64_t j = 0; !st && j < d; j++)
    mean[j] /= (double)n;
  for (int64_t r = 0; !st && r < n; r++) { /* centre */
    for (int64_t j = 0; j < d; j++)
      xc[r * d + j] = x[r * d + j] - mean[j];
    total += dotd(xc + r * d, xc + r * d, d);
  }
  if (!st && m <= JACOBI_MAX) {
    a = malloc(sizeof(double) * (size_t)(m * m)), w = malloc(sizeof(double) * (size_t)m);
    v = malloc(sizeof(double) * (size_t)(m * m));
    if (!a || !w || !v) st = pf_err_set(err, PF_ERR_NOMEM, "pca: out of memory");
  }
  if (!st && m <= JACOBI_MAX) {
    double *cols_t = gram ? xc : malloc(sizeof(double) * (size_t)(n * d)); /* C: Xc^T rows */
    if (!cols_t) st = pf_err_set(err, PF_ERR_NOMEM, "pca: out of memory");
    for (int64_t r = 0; !st && !gram && r < n; r++)
      for (int64_t j = 0; j < d; j++)
        cols_t[j * n + r] = xc[r * d + j];
    const int64_t len = gram ? d : n;
    for (int64_t i = 0; !st && i < m * m; i++)
      a[i] = 0;
    for (int64_t b = 0; !st && b < len; b += GRAM_SLICE) /* slices of every row stay in L2 */
      for (int64_t p = 0; p < m; p++)
        for (int64_t q = p; q < m; q++) {
          const int64_t k = len - b < GRAM_SLICE ? len - b : GRAM_SLICE;
          a[p * m + q] += dotd(cols_t + p * len + b, cols_t + q * len + b, k);
        }
    for (int64_t p = 0; !st && p < m; p++)
      for (int64_t q = p + 1; q < m; q++)
        a[q * m + p] = a[p * m + q];
    if (!gram) free(cols_t);
  }
  if (!st && m <= JACOBI_MAX) {
    jacobi(a, (int)m, w, v);
    for (int k = 0; k < 2; k++) {
      double *lk = load + k * d;
      lam[k] = k < m && w[k] > 0 ? w[k] : 0;
      if (!gram) { /* the eigenvector of C is the loading */
        for (int64_t i = 0; i < d; i++)
          lk[i] = k < m ? v[k * m + i] : 0;
        continue;
      }
      for (int64_t i = 0; i < d; i++)
        lk[i] = 0;
      if (!(k < m && lam[k] > 0)) continue;
      for (int64_t r = 0; r < n; r++) { /* Xc^T u_k / sqrt(lam_k) */
        const double c = v[k * m + r] / sqrt(lam[k]), *xr = xc + r * d;
        for (int64_t i = 0; i < d; i++)
          lk[i] += c * xr[i];
      }
    }
  } else if (!st) {
    st = power_pca(xc, n, d, load, lam, err);
  }
  for (int k = 0; !st && k < 2; k++) {
    const double *lk = load + k * d;
    int64_t big = 0; /* svd_flip: the largest |loading| is positive */
    for (int64_t i = 1; i < d; i++)
      if (fabs(lk[i]) > fabs(lk[big])) big = i;
    double sign = lk[big] < 0 ? -1.0 : 1.0;
    int zero = !(lam[k] > total * 1e-24) || k >= m;
    for (int64_t r = 0; r < n; r++)
      scores[r * 2 + k] = zero ? 0.0 : sign * dotd(xc + r * d, lk, d);
    ratio[k] = zero || !(total > 0) ? 0.0 : lam[k] / total;
  }
  free(xc), free(mean), free(load), free(a), free(w), free(v);
  return st;
}

/* ------------------------------------------------------------ scatter */

static void arrow(const chart_ctx *c, const cc_axes *a, const double *p, const double *q) {
  double ppx = cc_pt_per_x(c, a), ppy = cc_pt_per_y(c, a);
  double dx = (q[0] - p[0]) * ppx, dy = (q[1] - p[1]) * ppy, len = hypot(dx, dy);
  if (len < 1.0) return;
  double ux = dx / len, uy = dy / len, head = len < 16 ? len * 0.5 : 8.0, hw = head * 0.45;
  double bx = q[0] - ux * head / ppx, by = q[1] - uy * head / ppy;
  double xs[2] = {p[0], bx}, ys[2] = {p[1], by};
  plcol0(CC_ARROW);
  cc_width(c, 1.0);
  plline(2, xs, ys);
  double tx[3] = {q[0], bx - uy * hw / ppx, bx + uy * hw / ppx};
  double ty[3] = {q[1], by + ux * hw / ppy, by - ux * hw / ppy};
  plfill(3, tx, ty);
}

static void dot(const chart_ctx *c, const cc_axes *a, const double *p, int col) {
  static const int rgb[2][3] = {{31, 119, 180}, {255, 127, 14}};
  plscol0a(CC_TMP, rgb[col][0], rgb[col][1], rgb[col][2], 0.7);
  plcol0(CC_TMP);
  double r = 4.5;
  plarc(p[0], p[1], r / cc_pt_per_x(c, a), r / cc_pt_per_y(c, a), 0.0, 360.0, 0.0, 1);
}

static void draw_pca(const chart_ctx *c, const void *data) {
  const pf_pca_chart *p = data;
  double lo[2] = {INFINITY, INFINITY}, hi[2] = {-INFINITY, -INFINITY};
  for (size_t i = 0; i < p->n; i++)
    for (int k = 0; k < 2; k++) {
      lo[k] = fmin(lo[k], fmin(p->p1[i * 2 + k], p->p2[i * 2 + k]));
      hi[k] = fmax(hi[k], fmax(p->p1[i * 2 + k], p->p2[i * 2 + k]));
    }
  cc_axes a = {.xnum = 1, .ynum = 1, .grid = 1};
  for (int k = 0; k < 2; k++) {
    double span = hi[k] - lo[k] > 0 ? hi[k] - lo[k] : fabs(hi[k]) > 0 ? fabs(hi[k]) : 1.0;
    double *mn = k ? &a.ymin : &a.xmin, *mx = k ? &a.ymax : &a.xmax;
    *mn = lo[k] - span * 0.08;
    *mx = hi[k] + span * (k ? 0.16 : 0.08); /* room for the legend */
  }
  cc_ticks(a.xmin, a.xmax, 8, &a.xstep, &a.xdec);
  cc_ticks(a.ymin, a.ymax, 8, &a.ystep, &a.ydec);
  a.left = 12.0 + CC_PT_LABEL + 12.0 + cc_ytick_width(&a, CC_PT_TICK) + 10.0;
  a.right = 24.0;
  a.top = p->text.title && *p->text.title ? CC_PT_TITLE + 24.0 : 16.0;
  a.bottom = CC_PT_TICK + 10.0 + CC_PT_LABEL + 14.0 + cc_footer_pt(c, p->text.footer) + 8.0;
  cc_axes_begin(c, &a);
  for (size_t i = 0; i < p->n; i++)
    dot(c, &a, &p->p1[i * 2], 0);
  for (size_t i = 0; i < p->n; i++)
    dot(c, &a, &p->p2[i * 2], 1);
  for (size_t i = 0; i < p->n; i++)
    arrow(c, &a, &p->p1[i * 2], &p->p2[i * 2]);
  for (size_t i = 0; p->labels && i < p->n; i++) {
    if (!p->labels[i]) continue;
    double mx = (p->p1[i * 2] + p->p2[i * 2]) / 2, my = (p->p1[i * 2 + 1] + p->p2[i * 2 + 1]) / 2;
    double px, py;
    cc_to_page(&a, mx, my, &px, &py);
    int hl = p->differs && p->differs[i];
    cc_page_text(c, px, py, 0, 0.5, 9.0, hl, hl ? CC_RED : CC_FG, p->labels[i]);
  }
  cc_axes_end(c, &a);
  cc_decorate(c, &a, &p->text, CC_PT_TICK + 10.0, cc_ytick_width(&a, CC_PT_TICK) + 6.0);
  const char *names[2] = {p->name1 ? p->name1 : "Prompt 1", p->name2 ? p->name2 : "Prompt 2"};
  int cols[2] = {CC_SERIES, CC_SERIES + 1};
  cc_legend(c, 2, names, cols, 2);
}

pf_status pf_chart_pca(const char *path, pf_chart_format format, const pf_pca_chart *c,
                       pf_err *err) {
  if (!c || c->n == 0 || !c->p1 || !c->p2)
    return pf_err_set(err, PF_ERR_INVALID, "pca chart: expected at least one pair of points");
  for (size_t i = 0; i < c->n * 2; i++)
    if (!isfinite(c->p1[i]) || !isfinite(c->p2[i]))
      return pf_err_set(err, PF_ERR_INVALID, "pca chart: point %zu is not finite", i / 2);
  return chart_run(path, format, c->width_in > 0 ? c->width_in : 12.0,
                   c->height_in > 0 ? c->height_in : 10.0, draw_pca, c, err);
}
