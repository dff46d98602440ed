/* check_pca.c — the two-component PCA of the PCA charts (pf_pca2,
 * reports/charts_pca.c).
 *
 * Golden values are analytic where the input is built from known orthogonal
 * directions (the explained-variance ratios, the scores and the svd_flip signs
 * follow from the construction, stated at each test); on data without such a
 * closed form pf_pca2 is compared with its reference twin below: the plain
 * textbook computation (column-by-column centring, the Gram or covariance
 * matrix by sequential sums, cyclic Jacobi rotations applied to whole rows and
 * columns, loadings and scores by sequential sums).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../reports/charts.h"
#include "testutil.h"

/* Points on a line x = t * (1, 2, -3) + (5, 5, 5): all variance on PC1 (ratio
 * 1, PC2 0). The largest |loading| of (1, 2, -3)/sqrt(14) is the third, which
 * is negative, so svd_flip turns the component into (-1, -2, 3)/sqrt(14) and
 * the scores are -(t - mean t) * sqrt(14). */
START_TEST(test_pca_line) {
  float x[6 * 3];
  double t[6] = {-2, -1, 0, 0.5, 1.5, 4}, tm = 0, sc[12], ratio[2];
  for (int i = 0; i < 6; i++) {
    tm += t[i] / 6;
    x[i * 3] = (float)(t[i] * 1 + 5), x[i * 3 + 1] = (float)(t[i] * 2 + 5),
          x[i * 3 + 2] = (float)(t[i] * -3 + 5);
  }
  pf_err err = {0};
  ck_assert_int_eq(pf_pca2(x, 6, 3, sc, ratio, &err), PF_OK);
  ck_assert_double_eq_tol(ratio[0], 1.0, 1e-6);
  ck_assert_double_eq_tol(ratio[1], 0.0, 1e-6);
  for (int i = 0; i < 6; i++) {
    ck_assert_double_eq_tol(sc[i * 2], -(t[i] - tm) * sqrt(14.0), 1e-4);
    ck_assert_double_eq_tol(sc[i * 2 + 1], 0.0, 1e-4);
  }
}
END_TEST

/* (±3, 0) and (0, ±1): PC1 = x axis with ratio 18 / 20, PC2 = y with 2 / 20;
 * signs: the loading (1, 0) / (0, 1) is positive, so scores are x and y. Both
 * solver paths: the Gram matrix (4 rows < 40 columns, padded with zero columns)
 * and the covariance (4 rows > 2 columns). */
START_TEST(test_pca_axes) {
  float x2[4 * 2] = {3, 0, -3, 0, 0, 1, 0, -1}, x40[4 * 40] = {0};
  for (int r = 0; r < 4; r++)
    x40[r * 40 + 7] = x2[r * 2], x40[r * 40 + 30] = x2[r * 2 + 1];
  double sc[8], ratio[2];
  pf_err err = {0};
  for (int pass = 0; pass < 2; pass++) {
    ck_assert_int_eq(pf_pca2(pass ? x40 : x2, 4, pass ? 40 : 2, sc, ratio, &err), PF_OK);
    ck_assert_double_eq_tol(ratio[0], 0.9, 1e-9);
    ck_assert_double_eq_tol(ratio[1], 0.1, 1e-9);
    for (int r = 0; r < 4; r++) {
      ck_assert_double_eq_tol(sc[r * 2], x2[r * 2], 1e-9);
      ck_assert_double_eq_tol(sc[r * 2 + 1], x2[r * 2 + 1], 1e-9);
    }
  }
  ck_assert_int_eq(pf_pca2(x2, 1, 2, sc, ratio, &err), PF_ERR_INVALID);
  float bad[4] = {1, 2, NAN, 4};
  ck_assert_int_eq(pf_pca2(bad, 2, 2, sc, ratio, &err), PF_ERR_INVALID);
  pf_assert_err(err, "not finite");
}
END_TEST

/* The block-power path (both sides > 256): X = 5 u1 v1^T + 2 u2 v2^T with
 * orthonormal, zero-mean u (300 rows) and orthonormal v (320 columns), so the
 * ratios are 25/29 and 4/29 and the scores 5 u1, 2 u2 up to the svd_flip sign
 * (v1 and v2 have their largest entry positive by construction). */
START_TEST(test_pca_large) {
  enum { N = 300, D = 320 };
  static float x[N * D];
  static double u1[N], u2[N], v1[D], v2[D], sc[N * 2];
  double n1 = 0, n2 = 0, m1 = 0, m2 = 0, d = 0;
  for (int i = 0; i < N; i++)
    u1[i] = cos(i * 0.1), u2[i] = sin(i * 0.37) + 0.2 * cos(i * 0.05);
  for (int i = 0; i < N; i++)
    m1 += u1[i] / N, m2 += u2[i] / N;
  for (int i = 0; i < N; i++)
    u1[i] -= m1, u2[i] -= m2;
  for (int i = 0; i < N; i++)
    n1 += u1[i] * u1[i];
  for (int i = 0; i < N; i++)
    u1[i] /= sqrt(n1), d += u1[i] * u2[i];
  for (int i = 0; i < N; i++)
    u2[i] -= d * u1[i], n2 += u2[i] * u2[i];
  for (int i = 0; i < N; i++)
    u2[i] /= sqrt(n2);
  for (int j = 0; j < D; j++)
    v1[j] = j == 10 ? 0.8 : j == 11 ? 0.6 : 0, v2[j] = j == 200 ? 1 : 0;
  for (int i = 0; i < N; i++)
    for (int j = 0; j < D; j++)
      x[i * D + j] = (float)(5 * u1[i] * v1[j] + 2 * u2[i] * v2[j]);
  double ratio[2];
  pf_err err = {0};
  ck_assert_int_eq(pf_pca2(x, N, D, sc, ratio, &err), PF_OK);
  ck_assert_double_eq_tol(ratio[0], 25.0 / 29.0, 1e-5);
  ck_assert_double_eq_tol(ratio[1], 4.0 / 29.0, 1e-5);
  for (int i = 0; i < N; i++) {
    ck_assert_double_eq_tol(sc[i * 2], 5 * u1[i], 1e-4);
    ck_assert_double_eq_tol(sc[i * 2 + 1], 2 * u2[i], 1e-4);
  }
}
END_TEST

/* ------------------------------------------------------------ reference twin */

/* Symmetric a[n*n] (destroyed) -> w[n] descending, v[n*n] vectors in columns. */
static void ref_jacobi(double *a, int n, double *w, double *v) {
  for (int i = 0; i < n * n; i++)
    v[i] = i % (n + 1) == 0;
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
        double theta = (a[q * n + q] - a[p * n + p]) / (2 * apq);
        double t = (theta >= 0 ? 1 : -1) / (fabs(theta) + sqrt(theta * theta + 1));
        double c = 1 / sqrt(t * t + 1), s = t * c;
        for (int k = 0; k < n; k++) { /* A J */
          double x = a[k * n + p], y = a[k * n + q];
          a[k * n + p] = c * x - s * y, a[k * n + q] = s * x + c * y;
        }
        for (int k = 0; k < n; k++) { /* J^T A */
          double x = a[p * n + k], y = a[q * n + k];
          a[p * n + k] = c * x - s * y, a[q * n + k] = s * x + c * y;
        }
        for (int k = 0; k < n; k++) {
          double x = v[k * n + p], y = v[k * n + q];
          v[k * n + p] = c * x - s * y, v[k * n + q] = s * x + c * y;
        }
      }
  }
  for (int i = 0; i < n; i++)
    w[i] = a[i * n + i];
  for (int i = 0; i < n; i++) {
    int m = i;
    for (int j = i + 1; j < n; j++)
      if (w[j] > w[m]) m = j;
    double t = w[i];
    w[i] = w[m], w[m] = t;
    for (int k = 0; k < n; k++)
      t = v[k * n + i], v[k * n + i] = v[k * n + m], v[k * n + m] = t;
  }
}

/* sklearn's PCA(2).fit_transform(x) with svd_flip, textbook style (min(n, d) <= 256). */
static void ref_pca2(const float *x, int n, int d, double *sc, double ratio[2]) {
  int m = n <= d ? n : d, gram = n <= d;
  double *xc = malloc(sizeof(double) * n * d), *a = malloc(sizeof(double) * m * m),
         *w = malloc(sizeof(double) * m), *v = malloc(sizeof(double) * m * m),
         *load = malloc(sizeof(double) * d), total = 0;
  for (int j = 0; j < d; j++) {
    double mean = 0;
    for (int r = 0; r < n; r++)
      mean += x[r * d + j];
    mean /= n;
    for (int r = 0; r < n; r++)
      xc[r * d + j] = x[r * d + j] - mean, total += xc[r * d + j] * xc[r * d + j];
  }
  for (int p = 0; p < m; p++)
    for (int q = 0; q < m; q++) {
      double s = 0;
      for (int i = 0; i < (gram ? d : n); i++)
        s += gram ? xc[p * d + i] * xc[q * d + i] : xc[i * d + p] * xc[i * d + q];
      a[p * m + q] = s;
    }
  ref_jacobi(a, m, w, v);
  for (int k = 0; k < 2; k++) {
    if (!(k < m && w[k] > total * 1e-24)) { /* no spread left: zeros, as sklearn's ~1e-30 */
      for (int r = 0; r < n; r++)
        sc[r * 2 + k] = 0;
      ratio[k] = 0;
      continue;
    }
    for (int i = 0; i < d; i++) {
      double s = 0;
      if (!gram)
        s = v[i * m + k];
      else
        for (int r = 0; r < n; r++)
          s += xc[r * d + i] * v[r * m + k] / sqrt(w[k]);
      load[i] = s;
    }
    int big = 0;
    for (int i = 1; i < d; i++)
      if (fabs(load[i]) > fabs(load[big])) big = i;
    for (int r = 0; r < n; r++) {
      double s = 0;
      for (int i = 0; i < d; i++)
        s += xc[r * d + i] * load[i];
      sc[r * 2 + k] = load[big] < 0 ? -s : s;
    }
    ratio[k] = w[k] / total;
  }
  free(xc), free(a), free(w), free(v), free(load);
}

/* Activation-like data: a few strong directions, ramps and noise, rows of two
 * prompts with an offset between them. Shapes: Gram side (n <= d) with d below
 * and past the slice of 512 columns and not a multiple of 8, the covariance side
 * (n > d), and the 256 limit of the exact path on either side. */
START_TEST(test_pca_reference_twin) {
  static const int shapes[][2] = {{2, 3},     {7, 5},    {37, 1100}, {110, 2048},
                                  {30, 4103}, {120, 33}, {300, 45},  {256, 700},
                                  {400, 256}, {64, 512}, {9, 9},     {250, 513}};
  for (size_t c = 0; c < sizeof shapes / sizeof shapes[0]; c++) {
    const int n = shapes[c][0], d = shapes[c][1];
    float *x = malloc(sizeof(float) * n * d);
    uint64_t s = 0x2545F4914F6CDD1Dull + c;
    for (int r = 0; r < n; r++)
      for (int j = 0; j < d; j++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        double noise = (double)(s >> 11) / 9007199254740992.0 - 0.5;
        double u = sin(0.37 * r + 0.011 * j), t = cos(0.05 * r) * ((j * 7) % 13 - 6);
        x[r * d + j] = (float)(3 * u * (j % 5 == 1) + 0.8 * t + noise + (r >= n / 2 ? 0.3 : 0));
      }
    double *got = malloc(sizeof(double) * n * 2), *want = malloc(sizeof(double) * n * 2);
    double rg[2], rw[2], scale = 0;
    pf_err err = {0};
    ck_assert_msg(pf_pca2(x, n, d, got, rg, &err) == PF_OK, "%s", err.msg);
    ref_pca2(x, n, d, want, rw);
    for (int i = 0; i < n * 2; i++)
      scale = fmax(scale, fabs(want[i]));
    for (int k = 0; k < 2; k++)
      ck_assert_msg(fabs(rg[k] - rw[k]) <= 1e-12, "%d x %d: ratio %d %.17g, reference %.17g", n, d,
                    k, rg[k], rw[k]);
    for (int i = 0; i < n * 2; i++)
      ck_assert_msg(fabs(got[i] - want[i]) <= 1e-9 * scale,
                    "%d x %d: score [%d, %d] %.17g, reference %.17g", n, d, i / 2, i % 2, got[i],
                    want[i]);
    free(x), free(got), free(want);
  }
}
END_TEST

static Suite *make_suite(void) {
  Suite *s = suite_create("pca");
  TCase *tc = tcase_create("pca");
  tcase_set_timeout(tc, 300);
  tcase_add_test(tc, test_pca_line);
  tcase_add_test(tc, test_pca_axes);
  tcase_add_test(tc, test_pca_large);
  tcase_add_test(tc, test_pca_reference_twin);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return pf_test_main(make_suite);
}
