/* goldutil.h — golden-logit helpers for the Check suites (see goldutil.c). */
#ifndef PF_GOLDUTIL_H
#define PF_GOLDUTIL_H

#include <stdint.h>

#include "golden/forward_golden.h"

#include "pf.h"

struct pf_model;
/* Logits callback collecting consecutive chunks into data [rows, vocab]. */
typedef struct logits_buf {
  float *data; /* [rows, vocab] */
  int64_t rows, vocab, next_row, calls;
} logits_buf;
pf_status collect_logits(void *ud, int64_t row0, int64_t n, const float *lg, int64_t V,
                         pf_err *err);
/* Forward of a batch [B, S] (mask may be NULL); returns malloc'd logits [B*S, V]
 * (ck_asserts on failure); *calls = number of logits callbacks when non-NULL. */
float *run_logits(const struct pf_model *m, const int32_t *ids, const int32_t *mask, int64_t B,
                  int64_t S, int64_t *calls);
/* Compare the model's logits with a golden case, row by row: max|a-b|/max|b| <= tol
 * and the largest relative error of logits above 1e-2 <= tol_rel (both printed). */
void check_golden_tol(const struct pf_model *m, const pf_golden_case *g, double tol,
                      double tol_rel);

#endif
