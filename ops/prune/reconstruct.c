/* reconstruct.c — see reconstruct.h. The least-squares solve and the collection
 * of C; the op plumbing is in prune_width.c / reconstruct_width.c.
 *
 * Solve: W' = W C[:,K] A⁻¹ with A = C[K,K] + δI symmetric, so W'ᵀ = A⁻¹ (W C)[:,K]ᵀ:
 * one dgemm T = C·Wᵀ [in, out] (= (W·C)ᵀ, C symmetric), its rows K gathered into
 * M [k, out], dpotrf on A and dpotrs for all `out` right-hand sides at once.
 * Cost: out·in² + k³/3 + k²·out multiply-adds; memory: W and T in float64 (2·out·in)
 * and A (k²), besides C.
 *
 * LAPACK: Debian's liblapack needs the BLAS alternative libblas.so.3, but its BLAS
 * calls (dgemm_, dsyrk_, dtrsm_, ...) bind to pfrun's libblis.so.4, which comes
 * first in the symbol search (seen with LD_DEBUG=bindings, 2026-12-06), so
 * dpotrf/dpotrs run on pfrun's BLIS with its arch and every thread, as the dgemm.
 *
 * Collection: the tap hands over [B·S, I] float32 activations; the real rows are
 * widened to float64 in blocks of ROWS and added with dsyrk (lower triangle),
 * so C is float64 from the first product on. The pass is forced layer-major,
 * hence the tap events of layer l all come before those of layer l+1: the first
 * event of a new layer (or the end of the pass) finishes the previous one. */
#include "reconstruct.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "dist.h"
#include "fsutil.h"
#include "hash.h"
#include "kernels/kernels.h"
#include "opdata.h"

/* ---- the solve ---- */

static pf_status check_kept(const int64_t *kept, int64_t k, int64_t n_in, const char *what,
                            pf_err *err) {
  if (k < 1 || k > n_in)
    return pf_err_set(err, PF_ERR_INVALID, "%s: expected 1 to %lld kept input channels, got %lld",
                      what, (long long)n_in, (long long)k);
  for (int64_t j = 0; j < k; j++)
    if (kept[j] < 0 || kept[j] >= n_in || (j && kept[j] <= kept[j - 1]))
      return pf_err_set(err, PF_ERR_INVALID,
                        "%s: kept channel %lld is %lld: expected ascending indices in [0, %lld)",
                        what, (long long)j, (long long)kept[j], (long long)n_in);
  return PF_OK;
}

/* dst [cols, rows] = src [rows, cols]ᵀ in 64 x 64 tiles (both sides stay in cache). */
static void transpose(const double *src, int64_t rows, int64_t cols, double *dst) {
#pragma omp parallel for schedule(static) if (rows * cols > (1 << 18))
  for (int64_t i0 = 0; i0 < rows; i0 += 64)
    for (int64_t j0 = 0; j0 < cols; j0 += 64) {
      int64_t i1 = i0 + 64 < rows ? i0 + 64 : rows, j1 = j0 + 64 < cols ? j0 + 64 : cols;
      for (int64_t i = i0; i < i1; i++)
        for (int64_t j = j0; j < j1; j++)
          dst[j * rows + i] = src[i * cols + j];
    }
}

pf_status pf_reconstruct_f64(const double *W, int64_t n_out, int64_t n_in, const double *C,
                             const int64_t *kept, int64_t k, double lambda, const char *what,
                             double *Wp, pf_err *err) {
  pf_status st = check_kept(kept, k, n_in, what, err);
  if (st) return st;
  if (!(lambda >= 0) || !isfinite(lambda))
    return pf_err_set(err, PF_ERR_INVALID, "%s: expected a damping >= 0, got %g", what, lambda);
  double mean = 0;
  for (int64_t j = 0; j < k; j++) {
    double d = C[kept[j] * n_in + kept[j]];
    if (!isfinite(d))
      return pf_err_set(err, PF_ERR_INVALID,
                        "%s: the covariance is not finite at input channel %lld (non-finite "
                        "activations in the calibration data?)",
                        what, (long long)kept[j]);
    mean += d;
  }
  mean /= (double)k;
  double *T = malloc(sizeof(double) * (size_t)(n_out * n_in));
  double *A = malloc(sizeof(double) * (size_t)(k * k));
  double *M = malloc(sizeof(double) * (size_t)(k * n_out));
  if (!T || !A || !M) {
    st = pf_err_set(err, PF_ERR_NOMEM, "%s: out of memory for the reconstruction", what);
    goto done;
  }
  for (int64_t a = 0; a < k; a++)
    for (int64_t b = 0; b < k; b++)
      A[a * k + b] = C[kept[a] * n_in + kept[b]];
  for (int64_t a = 0; a < k; a++)
    A[a * k + a] += lambda * mean;
  /* T = C · Wᵀ [in, out] = (W · C)ᵀ as C is symmetric; M = its rows K */
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n_in, (int)n_out, (int)n_in, 1.0, C,
              (int)n_in, W, (int)n_in, 0.0, T, (int)n_out);
  for (int64_t a = 0; a < k; a++)
    memcpy(M + a * n_out, T + kept[a] * n_out, sizeof(double) * (size_t)n_out);
  lapack_int info = LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'L', (lapack_int)k, A, (lapack_int)k);
  if (info > 0) {
    st = pf_err_set(err, PF_ERR_INVALID,
                    "%s: the damped covariance of the %lld kept input channels is not positive "
                    "definite (Cholesky failed at kept channel %lld = input channel %lld; damping "
                    "%g x mean diagonal %g): a kept channel that never fires on the calibration "
                    "data, or too little data; use more calibration samples or a larger "
                    "reconstruct_damping",
                    what, (long long)k, (long long)(info - 1), (long long)kept[info - 1], lambda,
                    mean);
    goto done;
  }
  if (info == 0)
    info = LAPACKE_dpotrs(LAPACK_ROW_MAJOR, 'L', (lapack_int)k, (lapack_int)n_out, A, (lapack_int)k,
                          M, (lapack_int)n_out);
  if (info == LAPACK_WORK_MEMORY_ERROR || info == LAPACK_TRANSPOSE_MEMORY_ERROR) {
    st = pf_err_set(err, PF_ERR_NOMEM, "%s: out of memory (LAPACKE could not allocate, info %d)",
                    what, (int)info);
    goto done;
  }
  if (info != 0) {
    st =
        pf_err_set(err, PF_ERR_INVALID, "%s: LAPACK refused the system (info %d)", what, (int)info);
    goto done;
  }
  transpose(M, k, n_out, Wp);
done:
  free(T);
  free(A);
  free(M);
  return st;
}

pf_status pf_reconstruct_weight(const pf_tensor *W, const double *C, const int64_t *kept, int64_t k,
                                double lambda, const char *what, pf_tensor **out, pf_err *err) {
  *out = NULL;
  if (!W || W->ndim != 2)
    return pf_err_set(err, PF_ERR_INVALID, "%s: expected a 2-d weight [out, in]", what);
  if (pf_tensor_is_planned(W))
    return pf_err_set(err, PF_ERR_INVALID, "%s: the weight is planned (dry run), not loaded", what);
  pf_status st = pf_tensor_materialize(W, err);
  if (st) return st;
  const int64_t n_out = W->shape[0], n_in = W->shape[1];
  double *Wd = malloc(sizeof(double) * (size_t)(n_out * n_in));
  double *Wp = malloc(sizeof(double) * (size_t)(n_out * (k > 0 ? k : 1)));
  float *row = malloc(sizeof(float) * (size_t)(n_in > k ? n_in : k));
  pf_tensor *t = NULL;
  if (!Wd || !Wp || !row) st = pf_err_set(err, PF_ERR_NOMEM, "%s: out of memory", what);
  for (int64_t o = 0; !st && o < n_out; o++) {
    pf_tensor_row_f32(W, o, row);
    for (int64_t i = 0; i < n_in; i++)
      Wd[o * n_in + i] = row[i];
  }
  if (!st) st = pf_reconstruct_f64(Wd, n_out, n_in, C, kept, k, lambda, what, Wp, err);
  const int64_t shape[2] = {n_out, k};
  if (!st) st = pf_tensor_new(W->dtype, 2, shape, &t, err);
  if (!st) {
    char *dst = pf_tensor_mutable_data(t);
    size_t es = pf_dtype_size(W->dtype);
    for (int64_t o = 0; o < n_out; o++) {
      for (int64_t a = 0; a < k; a++)
        row[a] = (float)Wp[o * k + a];
      pf_convert(dst + (size_t)(o * k) * es, W->dtype, row, PF_DTYPE_F32, (size_t)k);
    }
    *out = t;
  }
  free(Wd);
  free(Wp);
  free(row);
  return st;
}

/* ---- collection ---- */

#define ROWS 256 /* activation rows per dsyrk */

typedef struct cov_state {
  const uint8_t *layers;
  int64_t n_layers;
  pf_cov_fn fn;
  void *ud;
  int64_t cur;   /* layer being accumulated (-1 before the first) */
  int64_t width; /* its width */
  double *C;     /* [width, width], lower triangle while accumulating */
  size_t C_cap;  /* doubles */
  double *X;     /* [ROWS, width] widened real rows */
  size_t X_cap;
  int64_t tokens;
  int64_t next; /* first layer not finished yet */
  const pf_model *m;
  pf_tap_point point;
  pf_err own;  /* a finished layer's failure (its hand-over, e.g. the solve): reported */
  int own_set; /* as it is, not under the tap of the next layer that finished it */
} cov_state;

static int64_t cov_width(const cov_state *s, int64_t l) {
  const pf_layer *w = &s->m->layers[l];
  if (s->point == PF_TAP_O_PROJ_INPUT) return w->o_proj ? w->o_proj->shape[1] : 0;
  return pf_layer_width(w);
}

static pf_status cov_begin(cov_state *s, int64_t layer, int64_t width, pf_err *err) {
  size_t need = (size_t)(width * width);
  if (need > s->C_cap) {
    free(s->C);
    s->C = malloc(sizeof(double) * (need ? need : 1));
    s->C_cap = s->C ? need : 0;
  }
  if (need > 0 && (size_t)(ROWS * width) > s->X_cap) {
    free(s->X);
    s->X = malloc(sizeof(double) * (size_t)(ROWS * width));
    s->X_cap = s->X ? (size_t)(ROWS * width) : 0;
  }
  if ((need && !s->C) || (need && !s->X))
    return pf_err_set(err, PF_ERR_NOMEM, "layer %lld: out of memory for the %lld x %lld covariance",
                      (long long)layer, (long long)width, (long long)width);
  memset(s->C, 0, sizeof(double) * need);
  s->cur = layer;
  s->width = width;
  s->tokens = 0;
  return PF_OK;
}

/* Copy the lower triangle of C [n, n] onto the upper one, in tiles. */
static void mirror_lower(double *C, int64_t n) {
#pragma omp parallel for schedule(dynamic) if (n > 512)
  for (int64_t i0 = 0; i0 < n; i0 += 64)
    for (int64_t j0 = 0; j0 <= i0; j0 += 64) {
      int64_t i1 = i0 + 64 < n ? i0 + 64 : n, j1 = j0 + 64 < n ? j0 + 64 : n;
      for (int64_t i = i0; i < i1; i++)
        for (int64_t j = j0; j < j1 && j < i; j++)
          C[j * n + i] = C[i * n + j];
    }
}

/* Sum over ranks, mirror the lower triangle, hand over. */
static pf_status cov_finish(cov_state *s, pf_err *err) {
  const int64_t n = s->width;
  int64_t tok = s->tokens;
  pf_status st = pf_dist_sum_f64(s->C, n * n, err);
  if (!st) st = pf_dist_sum_i64(&tok, 1, err);
  if (!st) mirror_lower(s->C, n);
  if (!st) st = s->fn(s->ud, s->cur, s->C, n, tok, err);
  s->next = s->cur + 1;
  s->cur = -1;
  return st;
}

static void cov_add(cov_state *s, const pf_tap_event *ev) {
  const int64_t w = ev->width, rows = ev->batch * ev->seq;
  int64_t r = 0;
  while (r < rows) {
    int64_t n = 0;
    for (; r < rows && n < ROWS; r++) {
      if (!ev->mask[r]) continue;
      const float *x = ev->data + r * w;
      double *d = s->X + n * w;
      for (int64_t i = 0; i < w; i++)
        d[i] = x[i];
      n++;
    }
    if (n)
      cblas_dsyrk(CblasRowMajor, CblasLower, CblasTrans, (int)w, (int)n, 1.0, s->X, (int)w, 1.0,
                  s->C, (int)w);
    s->tokens += n;
  }
}

/* Every wanted layer in [next, upto) that this rank never saw (no batches of
 * its own) is finished with its C = 0, so every rank reduces every wanted layer
 * once, in ascending order, and the MPI sums pair up. */
static pf_status cov_catch_up(cov_state *s, int64_t upto, pf_err *err) {
  pf_status st = PF_OK;
  for (int64_t l = s->next; !st && l < upto; l++) {
    if (s->layers && !s->layers[l]) continue;
    st = cov_begin(s, l, cov_width(s, l), err);
    if (!st) st = cov_finish(s, err);
  }
  if (!st && s->next < upto) s->next = upto;
  return st;
}

static pf_status cov_tap(void *ud, const pf_tap_event *ev, pf_err *err) {
  cov_state *s = ud;
  if (ev->point != s->point) return PF_OK;
  pf_status st = PF_OK;
  if (s->cur != ev->layer) {
    if (s->cur >= 0) st = cov_finish(s, &s->own);
    if (!st) st = cov_catch_up(s, ev->layer, &s->own);
    if (st) {
      s->own_set = 1;
      return pf_err_set(err, st, "%s", s->own.msg);
    }
    st = cov_begin(s, ev->layer, ev->width, err);
    if (st) return st;
  }
  cov_add(s, ev);
  return PF_OK;
}

pf_status pf_cov_collect(const pf_model *m, const pf_batch *batches, int64_t n_batches,
                         pf_tap_point point, const uint8_t *layers, pf_cov_fn fn, void *user_data,
                         const pf_ctx *ctx, pf_err *err) {
  if (point != PF_TAP_DOWN_PROJ_INPUT && point != PF_TAP_O_PROJ_INPUT)
    return pf_err_set(err, PF_ERR_INVALID,
                      "covariance: expected the tap down_proj_input or o_proj_input, got %s",
                      pf_tap_name(point));
  cov_state s = {.layers = layers,
                 .n_layers = m->n_layers,
                 .fn = fn,
                 .ud = user_data,
                 .cur = -1,
                 .m = m,
                 .point = point};
  pf_taps taps = {.points = 1u << point, .layers = layers, .fn = cov_tap, .user_data = &s};
  const pf_pass pass = {.batches = batches,
                        .n = n_batches,
                        .taps = &taps,
                        .split = 1,
                        .group_taps = 1,
                        .what = "covariance",
                        .log_plan = 1,
                        .need_layer = 1}; /* one C alive at a time (see the header) */
  pf_forward *f = NULL;
  pf_pass_info info;
  pf_status st = pf_forward_new(m, &f, err);
  if (!st) st = pf_forward_pass(f, &pass, &info, ctx, err);
  if (st && s.own_set && err) /* an earlier layer's solve, not the pass, failed */
    *err = s.own;
  else if (st)
    pf_err_prefix(err, "covariance");
  if (!st && s.cur >= 0) st = cov_finish(&s, err);
  if (!st) st = cov_catch_up(&s, m->n_layers, err);
  pf_forward_free(f);
  free(s.C);
  free(s.X);
  return st;
}

/* ---- cache ---- */

/* magic, {width, tokens, layer}, the lower triangle row by row, then the SHA-256 of
 * all that: a damaged or edited file is a miss (computed again), never used */
#define COV_FORMAT "pfrun-covariance-2"
static const char COV_MAGIC[8] = {'P', 'F', 'C', 'O', 'V', '2', 0, 0};

pf_status pf_cov_cache_key(const pf_model *m, const pf_dataset *ds, pf_tap_point point,
                           char key[65], pf_err *err) {
  char mfp[PF_SHA256_HEX];
  pf_status st = pf_model_fingerprint(m, mfp, err);
  if (st) return st;
  pf_sha256 h;
  pf_sha256_init(&h);
  pf_sha256_update(&h, COV_FORMAT, sizeof COV_FORMAT);
  pf_sha256_update(&h, mfp, sizeof mfp);
  const char *dfp = pf_dataset_fingerprint(ds);
  pf_sha256_update(&h, dfp, strlen(dfp) + 1);
  const char *tap = pf_tap_name(point);
  pf_sha256_update(&h, tap, strlen(tap) + 1);
  const char *mm = pf_matmul_name(pf_kernels_matmul_effective());
  pf_sha256_update(&h, mm, strlen(mm) + 1);
  pf_sha256_final_hex(&h, key);
  return PF_OK;
}

char *pf_cov_cache_path(const char *dir, const char *key, int64_t layer) {
  char name[128];
  snprintf(name, sizeof name, "cov-%s-%lld.bin", key, (long long)layer);
  return pf_path_join(dir, name);
}

int pf_cov_cache_read(const char *path, int64_t width, double *C, int64_t *tokens) {
  FILE *f = fopen(path, "rb");
  if (!f) return 0;
  char magic[8];
  int64_t hdr[3];
  uint8_t want[PF_SHA256_BYTES], got[PF_SHA256_BYTES];
  pf_sha256 h;
  pf_sha256_init(&h);
  int ok = fread(magic, 1, 8, f) == 8 && memcmp(magic, COV_MAGIC, 8) == 0 &&
           fread(hdr, sizeof(int64_t), 3, f) == 3 && hdr[0] == width;
  if (ok) pf_sha256_update(&h, magic, 8), pf_sha256_update(&h, hdr, sizeof hdr);
  for (int64_t i = 0; ok && i < width; i++) { /* row i: C[i, 0..i] */
    ok = fread(C + i * width, sizeof(double), (size_t)(i + 1), f) == (size_t)(i + 1);
    if (ok) pf_sha256_update(&h, C + i * width, sizeof(double) * (size_t)(i + 1));
  }
  ok = ok && fread(want, 1, sizeof want, f) == sizeof want && fgetc(f) == EOF;
  fclose(f);
  if (ok) pf_sha256_final(&h, got);
  ok = ok && memcmp(got, want, sizeof got) == 0;
  if (!ok) return 0;
  mirror_lower(C, width);
  *tokens = hdr[1];
  return 1;
}

pf_status pf_cov_cache_write(const char *dir, const char *path, int64_t layer, const double *C,
                             int64_t width, int64_t tokens, pf_err *err) {
  pf_status st = pf_mkdirs(dir, err);
  if (st) return st;
  /* a temporary file, removed on an interrupt, swept by a later run after a kill */
  char *tmp = NULL;
  int fd = -1;
  const int ce = pf_temp_file_create(path, &tmp, &fd);
  if (ce == ENOMEM) return pf_err_set(err, PF_ERR_NOMEM, "%s: out of memory", path);
  FILE *f = ce ? NULL : fdopen(fd, "wb");
  if (!f) {
    const int e = ce ? ce : errno;
    st = pf_err_set(err, PF_ERR_IO, "%s: cannot write the covariance cache: %s", tmp ? tmp : path,
                    strerror(e));
    if (fd >= 0) close(fd), unlink(tmp);
    pf_temp_unregister(tmp);
    free(tmp);
    return st;
  }
  const int64_t hdr[3] = {width, tokens, layer};
  pf_sha256 h;
  pf_sha256_init(&h);
  pf_sha256_update(&h, COV_MAGIC, 8);
  pf_sha256_update(&h, hdr, sizeof hdr);
  errno = 0;
  int ok = fwrite(COV_MAGIC, 1, 8, f) == 8 && fwrite(hdr, sizeof(int64_t), 3, f) == 3;
  for (int64_t i = 0; ok && i < width; i++) {
    ok = fwrite(C + i * width, sizeof(double), (size_t)(i + 1), f) == (size_t)(i + 1);
    pf_sha256_update(&h, C + i * width, sizeof(double) * (size_t)(i + 1));
  }
  uint8_t sum[PF_SHA256_BYTES];
  pf_sha256_final(&h, sum);
  ok = ok && fwrite(sum, 1, sizeof sum, f) == sizeof sum;
  int e = ok ? 0 : errno;
  if (fclose(f) != 0 && ok) ok = 0, e = errno; /* the buffered tail's error comes here */
  if (ok && rename(tmp, path) != 0) ok = 0, e = errno;
  if (!ok) {
    remove(tmp);
    st = pf_err_set(err, PF_ERR_IO, "%s: cannot write the covariance cache: %s", path,
                    e ? strerror(e) : "short write");
  }
  pf_temp_unregister(tmp);
  free(tmp);
  return st;
}
