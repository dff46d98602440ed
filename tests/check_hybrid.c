/* check_hybrid.c — data-driven hybrid MAW pruning (reference §2): the score
 * formula and selection against an independent numpy implementation, OptiPFair's
 * guard messages, and calibration results that do not fit the model. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "op.h"
#include "testutil.h"

/* Produced by `/usr/bin/python3 tests/golden/hybrid_ref.py ../shared/models/stories260K`:
 * removed neuron indices of each layer for 20 % pruning (k = 138 of 172) with the
 * fixed norm pattern X_i = 1 + ((37 i + 11 layer) % 101) / 100 (smallest score gap
 * at the k boundary 0.0022, far from a tie). */
static const int64_t REMOVED[5][34] = {
    {0,  1,  3,  6,  11, 14, 17,  22,  25,  28,  44,  50,  52,  53,  58,  63,  71,
     74, 82, 85, 88, 93, 94, 101, 104, 107, 112, 123, 137, 142, 153, 156, 159, 170},
    {3,  8,   11,  19,  22,  27,  30,  38,  41,  44,  49,  55,  60,  66,  68,  79,  90,
     98, 101, 109, 120, 128, 131, 134, 137, 142, 145, 148, 150, 153, 156, 161, 164, 169},
    {5,  8,  11, 14, 16, 24,  27,  35,  46,  49,  52,  54,  57,  65,  68,  76,  79,
     82, 87, 90, 95, 96, 106, 117, 120, 125, 131, 136, 147, 155, 158, 161, 164, 169},
    {2,   21,  32,  35,  39,  43,  46,  51,  62,  65,  68,  73,  76,  81,  87,  92,  98,
     103, 106, 114, 120, 122, 125, 128, 133, 136, 139, 144, 152, 155, 158, 163, 166, 169},
    {5,  7,   10,  18,  21,  29,  32,  35,  40,  48,  59,  62,  70,  73,  78,  81,  89,
     95, 100, 103, 108, 111, 114, 119, 122, 123, 130, 133, 141, 149, 152, 160, 163, 171},
};

static double pattern(int64_t layer, int64_t i) {
  return 1 + (double)((37 * i + 11 * layer) % 101) / 100.0;
}

/* A calibrate-shaped result {"norms": {"<l>": [X...]}} for widths[l] (layers < n). */
static pf_value *make_calibration(const int64_t *widths, int64_t n) {
  pf_value *r = pf_value_map(), *norms = pf_value_map();
  for (int64_t l = 0; l < n; l++) {
    pf_value *list = pf_value_list();
    for (int64_t i = 0; i < widths[l]; i++)
      pf_list_push(list, pf_value_num((double)(float)pattern(l, i)));
    char key[24];
    snprintf(key, sizeof key, "%lld", (long long)l);
    pf_map_set(norms, key, list);
  }
  pf_map_set(r, "norms", norms);
  return r;
}

static pf_status prune(pf_model *m, const char *method, pf_value *cal, pf_value **out,
                       pf_err *err) {
  pf_value *p = pf_value_map();
  pf_map_set(p, "model", pf_value_model(m));
  pf_map_set(p, "method", pf_value_str(method));
  pf_map_set(p, "pruning_percentage", pf_value_int(20));
  pf_value_retain(cal);
  pf_map_set(p, "calibration", cal);
  pf_status st = pf_op_run("prune_width", p, out, NULL, err);
  pf_value_release(p);
  return st;
}

START_TEST(test_stories_golden) {
  char *dir = pf_test_shared("models/stories260K", "hybrid golden on stories260K");
  if (!dir) return;
  pf_model *m = pf_test_load(dir);
  int64_t widths[5] = {172, 172, 172, 172, 172};
  pf_value *cal = make_calibration(widths, 5), *out = NULL;
  pf_err err = {0};
  ck_assert_msg(prune(m, "MAW", cal, &out, &err) == PF_OK, "%s", err.msg);
  const pf_value *layers = pf_map_get(out, "layers");
  ck_assert_int_eq((int)layers->u.list.len, 5);
  for (int l = 0; l < 5; l++) {
    const pf_value *kept = pf_map_get(layers->u.list.items[l], "kept_indices");
    ck_assert_int_eq((int)kept->u.list.len, 138);
    /* kept = complement of REMOVED[l] */
    int r = 0, k = 0;
    for (int64_t i = 0; i < 172; i++) {
      if (r < 34 && REMOVED[l][r] == i) {
        r++;
        continue;
      }
      ck_assert_msg(kept->u.list.items[k]->u.i == i, "layer %d: kept[%d] = %lld, expected %lld", l,
                    k, (long long)kept->u.list.items[k]->u.i, (long long)i);
      k++;
    }
  }
  /* the static MAW choice differs (the norms matter) */
  pf_value *stat = NULL;
  pf_value *p = pf_value_map();
  pf_map_set(p, "model", pf_value_model(m));
  pf_map_set(p, "pruning_percentage", pf_value_int(20));
  ck_assert_int_eq(pf_op_run("prune_width", p, &stat, NULL, &err), PF_OK);
  const pf_value *k0 = pf_map_get(pf_map_get(stat, "layers")->u.list.items[0], "kept_indices");
  const pf_value *h0 = pf_map_get(layers->u.list.items[0], "kept_indices");
  int differ = 0;
  for (size_t i = 0; i < k0->u.list.len; i++)
    differ |= k0->u.list.items[i]->u.i != h0->u.list.items[i]->u.i;
  ck_assert_msg(differ, "hybrid and static MAW kept the same neurons");
  pf_value_release(p);
  pf_value_release(stat);
  pf_value_release(out);
  pf_value_release(cal);
  pf_model_release(m);
  free(dir);
}
END_TEST

START_TEST(test_guards) {
  char *dir = pf_test_synth("llama-tiny", 3, NULL);
  pf_model *m = pf_test_load(dir);
  int64_t widths[4] = {176, 176, 176, 176};
  pf_value *cal = make_calibration(widths, 4), *out = NULL;
  pf_err err = {0};
  ck_assert_int_eq(prune(m, "VOW", cal, &out, &err), PF_ERR_INVALID);
  pf_assert_err(err, "Data-driven pruning with dataloader is only supported for PPM method "
                     "(parameter 'MAW'). Got neuron_selection_method='VOW'.");
  ck_assert_int_eq(prune(m, "PPM", cal, &out, &err), PF_ERR_INVALID);
  pf_assert_err(err, "Got neuron_selection_method='PPM'");
  pf_value_release(cal);
  /* norms for layers 0-2 only: layer 3 is missing */
  cal = make_calibration(widths, 3);
  ck_assert_int_eq(prune(m, "MAW", cal, &out, &err), PF_ERR_INVALID);
  pf_assert_err(err, "No activation norms found for layer 3. Available layers: [0, 1, 2]");
  pf_value_release(cal);
  /* norms of another model's width */
  int64_t wrong[4] = {100, 176, 176, 176};
  cal = make_calibration(wrong, 4);
  ck_assert_int_eq(prune(m, "MAW", cal, &out, &err), PF_ERR_INVALID);
  pf_assert_err(err, "norms of layer 0: expected 176 values, got 100");
  pf_value_release(cal);
  /* a NaN among the norms (an overflowing pass, a tampered result): refused, not ranked */
  cal = make_calibration(widths, 4);
  pf_value *l1 = pf_map_get(pf_map_get(cal, "norms"), "1");
  pf_value_release(l1->u.list.items[5]);
  l1->u.list.items[5] = pf_value_num(NAN);
  ck_assert_int_eq(prune(m, "MAW", cal, &out, &err), PF_ERR_INVALID);
  pf_assert_err(err, "norms of layer 1: item 5 is nan, expected a finite number");
  pf_value_release(cal);
  /* not a calibration at all */
  cal = pf_value_str("nope");
  ck_assert_int_eq(prune(m, "MAW", cal, &out, &err), PF_ERR_INVALID);
  pf_assert_err(err, "expected a calibrate result");
  pf_value_release(cal);
  /* with proper norms it prunes to k = 176 - 35 = 141 */
  cal = make_calibration(widths, 4);
  ck_assert_msg(prune(m, "MAW", cal, &out, &err) == PF_OK, "%s", err.msg);
  ck_assert_int_eq(pf_map_model(out, "model")->layers[2].gate_proj->shape[0], 141);
  pf_value_release(out);
  /* score op: hybrid scores, same guard */
  pf_value *p = pf_value_map();
  pf_map_set(p, "model", pf_value_model(m));
  pf_map_set(p, "method", pf_value_str("L2"));
  pf_value_retain(cal);
  pf_map_set(p, "calibration", cal);
  ck_assert_int_eq(pf_op_run("score", p, &out, NULL, &err), PF_ERR_INVALID);
  pf_assert_err(err, "Got neuron_selection_method='L2'");
  pf_map_set(p, "method", pf_value_str("MAW"));
  ck_assert_msg(pf_op_run("score", p, &out, NULL, &err) == PF_OK, "%s", err.msg);
  const pf_value *s0 = pf_map_get(pf_map_get(out, "scores"), "0");
  ck_assert_int_eq((int)s0->u.list.len, 176);
  for (size_t i = 0; i < s0->u.list.len; i++) /* (g^+u^+d^) in (0, 3], X in [1, 2] */
    ck_assert(s0->u.list.items[i]->u.n > 0 && s0->u.list.items[i]->u.n <= 6.0);
  pf_value_release(out);
  pf_value_release(p);
  pf_value_release(cal);
  pf_model_release(m);
  pf_test_synth_free(dir);
}
END_TEST

static Suite *make_suite(void) {
  Suite *s = suite_create("hybrid");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_stories_golden);
  tcase_add_test(tc, test_guards);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return pf_test_main(make_suite);
}
