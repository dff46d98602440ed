/* check_fairness.c — OptiPFair's fairness extras (reference §8.7, §2.6, §4
 * step 4): _normalize, compute_fairness_pruning_scores (ranges for w = 1 and
 * w = 0 and their closed forms), width pruning with fairness scores (custom
 * precedence over calibration, inverted selection, fallbacks, every
 * validation message) and zero_neurons_mlp (weights, shapes, parent
 * unchanged, every validation message), on llama-tiny (H=64, I=176, L=4). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fairness.h"
#include "op.h"
#include "pruning.h"
#include "testutil.h"

static char *tiny_dir;

static void teardown(void) {
  pf_test_synth_free(tiny_dir);
  tiny_dir = NULL;
}

static pf_model *load_tiny(void) {
  if (!tiny_dir) tiny_dir = pf_test_synth("llama-tiny", 11, NULL);
  return pf_test_load(tiny_dir);
}

static pf_value *run(const char *op, pf_value *params, pf_err *err) {
  pf_value *out = NULL;
  pf_status st = pf_op_run(op, params, &out, NULL, err);
  pf_value_release(params);
  return st ? NULL : out;
}

static pf_value *float_list(int64_t n, double (*f)(int64_t, int64_t), int64_t layer) {
  pf_value *l = pf_value_list();
  for (int64_t i = 0; i < n; i++)
    pf_list_push(l, pf_value_num((double)(float)f(layer, i)));
  return l;
}

static double pattern(int64_t layer, int64_t i) {
  return (double)((37 * i + 11 * layer) % 101) / 100.0;
}

START_TEST(test_normalize) {
  float t[5] = {1, 2, 3, 4, 5}, out[5];
  pf_fairness_normalize(t, 5, out);
  ck_assert_float_eq(out[0], 0.0f);
  ck_assert(fabsf(out[4] - 1.0f) < 1e-6f && out[4] <= 1.0f);
  ck_assert_float_eq(out[2], (3.0f - 1.0f) / (4.0f + 1e-8f));
  float eq[3] = {7, 7, 7}, one[1] = {3};
  pf_fairness_normalize(eq, 3, out);
  ck_assert(out[0] == 0 && out[1] == 0 && out[2] == 0);
  pf_fairness_normalize(one, 1, out);
  ck_assert_float_eq(out[0], 0.0f);
}
END_TEST

/* A neuron_bias-shaped map for every layer (gate from pattern, up shifted). */
static double pattern_up(int64_t layer, int64_t i) {
  return pattern(layer + 5, i);
}

static pf_value *bias_scores(int64_t layers) {
  pf_value *b = pf_value_map();
  for (int64_t l = 0; l < layers; l++) {
    char k[64];
    snprintf(k, sizeof k, "gate_proj_layer_%lld", (long long)l);
    pf_map_set(b, k, float_list(176, pattern, l));
    snprintf(k, sizeof k, "up_proj_layer_%lld", (long long)l);
    pf_map_set(b, k, float_list(176, pattern_up, l));
  }
  pf_map_set_str(b, "op", "neuron_bias"); /* op-result metadata is ignored */
  return b;
}

static pf_value *fairness(pf_model *m, pf_value *bs, double w, pf_err *err) {
  pf_value *p = pf_value_map();
  pf_map_set(p, "model", pf_value_model(m));
  pf_map_set(p, "bias_scores", bs);
  pf_map_set_num(p, "bias_weight", w);
  return run("fairness_scores", p, err);
}

START_TEST(test_fairness_scores) {
  pf_model *m = load_tiny();
  pf_err err = {0};
  pf_value *w1 = fairness(m, bias_scores(4), 1.0, &err),
           *w0 = fairness(m, bias_scores(4), 0.0, &err);
  ck_assert_msg(w1 && w0, "%s", err.msg);
  float bias[176], bn[176], imp[176], in[176];
  for (int64_t l = 0; l < 4; l++) {
    char k[24];
    snprintf(k, sizeof k, "%lld", (long long)l);
    const pf_value *s1 = pf_map_get(w1, k), *s0 = pf_map_get(w0, k);
    ck_assert(s1 && s0 && s1->u.list.len == 176 && s0->u.list.len == 176);
    for (int64_t i = 0; i < 176; i++)
      bias[i] = ((float)pattern(l, i) + (float)pattern_up(l, i)) / 2.0f;
    pf_fairness_normalize(bias, 176, bn);
    ck_assert_int_eq(pf_layer_scores(&m->layers[l], PF_METHOD_PPM, PF_DTYPE_F32, imp, &err), PF_OK);
    pf_fairness_normalize(imp, 176, in);
    for (int64_t i = 0; i < 176; i++) {
      double a = s1->u.list.items[i]->u.n, b = s0->u.list.items[i]->u.n;
      ck_assert(a >= 0 && a <= 1 && b >= 0 && b <= 1);
      ck_assert_double_eq(a, (double)bn[i]);
      ck_assert_double_eq(b, (double)(1.0f - in[i]));
    }
  }
  ck_assert_str_eq(w1->u.map.keys[0], "op"); /* the op's own keys come first */
  pf_value_release(w1);
  pf_value_release(w0);
  /* partial input: only layer 0 */
  pf_value *part = pf_value_map();
  pf_map_set(part, "up_proj_layer_0", float_list(176, pattern, 0));
  pf_value *r = fairness(m, part, 0.8, &err);
  ck_assert_ptr_nonnull(r);
  ck_assert_ptr_nonnull(pf_map_get(r, "0"));
  ck_assert_ptr_null(pf_map_get(r, "1"));
  pf_value_release(r);
  pf_model_release(m);
}
END_TEST

START_TEST(test_fairness_errors) {
  pf_model *m = load_tiny();
  pf_err err = {0};
  ck_assert_ptr_null(fairness(m, bias_scores(1), 1.5, &err));
  ck_assert_str_eq(err.msg, "fairness_scores: bias_weight must be in [0.0, 1.0], got 1.5");
  ck_assert_ptr_null(fairness(m, bias_scores(1), -0.1, &err));
  pf_assert_err(err, "bias_weight must be in [0.0, 1.0], got -0.1");
  ck_assert_ptr_null(fairness(m, pf_value_map(), 0.5, &err));
  pf_assert_err(err, "bias_scores dictionary is empty");
  pf_value *meta = pf_value_map();
  pf_map_set_str(meta, "op", "neuron_bias");
  pf_map_set_num(meta, "seconds", 0.1);
  ck_assert_ptr_null(fairness(m, meta, 0.5, &err));
  pf_assert_err(err, "bias_scores dictionary is empty");
  pf_value *shortv = pf_value_map();
  pf_map_set(shortv, "gate_proj_layer_2", float_list(10, pattern, 0));
  ck_assert_ptr_null(fairness(m, shortv, 0.5, &err));
  pf_assert_err(err, "bias_scores['gate_proj_layer_2']: expected 176 values");
  pf_value *l = pf_value_list(); /* a list with items; an empty one is Lua's empty dict */
  pf_list_push(l, pf_value_int(1));
  ck_assert_ptr_null(fairness(m, l, 0.5, &err));
  pf_assert_err(err, "bias_scores must be Dict[str, torch.Tensor]");
  ck_assert_ptr_null(fairness(m, pf_value_list(), 0.5, &err));
  pf_assert_err(err, "bias_scores dictionary is empty");
  pf_model_release(m);
}
END_TEST

/* prune_width at 20 % (k = 141 of 176) with optional fairness scores and calibration. */
static pf_value *prune(pf_model *m, pf_value *fs, pf_value *cal, pf_value *layer_indices,
                       pf_err *err) {
  pf_value *p = pf_value_map();
  pf_map_set(p, "model", pf_value_model(m));
  pf_map_set_int(p, "pruning_percentage", 20);
  if (fs) pf_map_set(p, "fairness_scores", fs);
  if (cal) pf_map_set(p, "calibration", cal);
  if (layer_indices) pf_map_set(p, "layer_indices", layer_indices);
  return run("prune_width", p, err);
}

static pf_value *fairness_all(int64_t layers, double (*f)(int64_t, int64_t)) {
  pf_value *fs = pf_value_map();
  for (int64_t l = 0; l < layers; l++) {
    char k[24];
    snprintf(k, sizeof k, "%lld", (long long)l);
    pf_map_set(fs, k, float_list(176, f, l));
  }
  return fs;
}

static pf_value *calibration(void) {
  pf_value *c = pf_value_map(), *norms = pf_value_map();
  for (int64_t l = 0; l < 4; l++) {
    char k[24];
    snprintf(k, sizeof k, "%lld", (long long)l);
    pf_map_set(norms, k, float_list(176, pattern_up, l));
  }
  pf_map_set(c, "norms", norms);
  return c;
}

static const pf_value *kept(const pf_value *res, size_t layer_entry) {
  return pf_map_get(pf_map_get(res, "layers")->u.list.items[layer_entry], "kept_indices");
}

static char *kept_text(const pf_value *res) {
  return pf_value_to_json_text(pf_map_get(res, "layers"));
}

/* The first 35 neurons (= int(0.2 * 176)) have the highest fairness score. */
static double first35(int64_t layer, int64_t i) {
  return i < 35 ? 0.9 : 0.1 + (double)i / 1000.0;
}

START_TEST(test_prune_fairness) {
  pf_model *m = load_tiny();
  pf_err err = {0};
  pf_value *a = prune(m, fairness_all(4, first35), NULL, NULL, &err);
  ck_assert_msg(a != NULL, "%s", err.msg);
  for (size_t l = 0; l < 4; l++) { /* inverted: the high scores are removed */
    const pf_value *k = kept(a, l);
    ck_assert_uint_eq(k->u.list.len, 141);
    ck_assert_int_eq(k->u.list.items[0]->u.i, 35);
    ck_assert_int_eq(k->u.list.items[140]->u.i, 175);
  }
  /* custom precedence: the same selection with calibration */
  pf_value *b = prune(m, fairness_all(4, first35), calibration(), NULL, &err);
  ck_assert_msg(b != NULL, "%s", err.msg);
  char *ta = kept_text(a), *tb = kept_text(b);
  ck_assert_str_eq(ta, tb);
  free(tb);
  /* layers without scores fall back: layer 0 fair, layers 1-3 as static MAW */
  pf_value *part = fairness_all(1, first35), *stat = prune(m, NULL, NULL, NULL, &err);
  pf_value *c = prune(m, part, NULL, NULL, &err);
  ck_assert_msg(stat && c, "%s", err.msg);
  ck_assert_int_eq(kept(c, 0)->u.list.items[0]->u.i, 35);
  for (size_t l = 1; l < 4; l++) {
    char *x = pf_value_to_json_text(kept(c, l)), *y = pf_value_to_json_text(kept(stat, l));
    ck_assert_str_eq(x, y);
    free(x);
    free(y);
  }
  /* {} is accepted and changes nothing */
  pf_value *e = prune(m, pf_value_map(), NULL, NULL, &err);
  ck_assert_ptr_nonnull(e);
  char *te = kept_text(e), *ts = kept_text(stat);
  ck_assert_str_eq(te, ts);
  free(te);
  free(ts);
  free(ta);
  pf_value_release(a);
  pf_value_release(b);
  pf_value_release(c);
  pf_value_release(e);
  pf_value_release(stat);
  pf_model_release(m);
}
END_TEST

static double half(int64_t layer, int64_t i) {
  return 0.5;
}

START_TEST(test_prune_fairness_errors) {
  pf_model *m = load_tiny();
  pf_err err = {0};
  pf_value *fs = pf_value_map();
  pf_map_set(fs, "0", float_list(10, half, 0));
  ck_assert_ptr_null(prune(m, fs, NULL, NULL, &err));
  pf_assert_err(err, "model.layers.0.mlp: custom_importance_scores shape mismatch: expected [176], "
                     "got [10]");
  fs = fairness_all(2, half);
  pf_value *l1 = pf_map_get(fs, "1");
  pf_value_release(l1->u.list.items[7]);
  l1->u.list.items[7] = pf_value_num(1.5);
  pf_value_release(l1->u.list.items[8]);
  l1->u.list.items[8] = pf_value_num(-0.25);
  ck_assert_ptr_null(prune(m, fs, NULL, NULL, &err));
  pf_assert_err(err, "model.layers.1.mlp: custom_importance_scores must be in [0, 1] range, got "
                     "min=-0.2500, max=1.5000");
  pf_value *empty = prune(m, pf_value_list(), NULL, NULL, &err); /* Lua's empty dict: accepted */
  ck_assert_msg(empty != NULL, "%s", err.msg);
  pf_value_release(empty);
  pf_value *l = pf_value_list();
  pf_list_push(l, pf_value_int(1));
  ck_assert_ptr_null(prune(m, l, NULL, NULL, &err));
  pf_assert_err(err, "fairness_scores must be Dict[int, torch.Tensor]");
  pf_assert_err(err, "got list");
  fs = pf_value_map();
  pf_map_set(fs, "first", float_list(176, half, 0));
  ck_assert_ptr_null(prune(m, fs, NULL, NULL, &err));
  pf_assert_err(err, "fairness_scores keys must be int (layer indices), got string for key first");
  fs = pf_value_map();
  pf_map_set_str(fs, "2", "high");
  ck_assert_ptr_null(prune(m, fs, NULL, NULL, &err));
  pf_assert_err(err, "fairness_scores values must be torch.Tensor (a list of numbers), got string "
                     "for layer 2");
  /* scores of layers that are not pruned are ignored, even malformed-length ones */
  fs = pf_value_map();
  pf_map_set(fs, "0", float_list(10, half, 0));
  pf_value *li = pf_value_list();
  pf_list_push(li, pf_value_int(1));
  pf_value *ok = prune(m, fs, NULL, li, &err);
  ck_assert_msg(ok != NULL, "%s", err.msg);
  pf_value_release(ok);
  /* layer_indices are checked before fairness_scores (§4 steps 3, 4) */
  li = pf_value_list();
  pf_list_push(li, pf_value_int(9));
  ck_assert_ptr_null(prune(m, pf_value_list(), NULL, li, &err));
  pf_assert_err(err, "Invalid layer indices: [9]");
  pf_model_release(m);
}
END_TEST

static pf_value *zero(pf_model *m, pf_value *indices, pf_err *err) {
  pf_value *p = pf_value_map();
  pf_map_set(p, "model", pf_value_model(m));
  pf_map_set(p, "neuron_indices", indices);
  return run("zero_neurons", p, err);
}

static pf_value *ints(int n, const int *v) {
  pf_value *l = pf_value_list();
  for (int i = 0; i < n; i++)
    pf_list_push(l, pf_value_int(v[i]));
  return l;
}

START_TEST(test_zero_neurons) {
  pf_model *m = load_tiny();
  pf_err err = {0};
  pf_value *idx = pf_value_map();
  pf_map_set(idx, "2", ints(3, (int[]){5, 0, 175}));
  pf_map_set(idx, "0", ints(1, (int[]){42}));
  pf_value *r = zero(m, idx, &err);
  ck_assert_msg(r != NULL, "%s", err.msg);
  ck_assert_int_eq(pf_map_int(r, "zeroed_neurons", 0), 4);
  const pf_value *ls = pf_map_get(r, "layers");
  ck_assert_int_eq(pf_map_int(ls->u.list.items[0], "index", -1), 0); /* ascending */
  ck_assert_int_eq(pf_map_int(ls->u.list.items[1], "neurons", -1), 3);
  pf_model *z = pf_map_model(r, "model");
  float row[176], prow[176];
  for (int l = 0; l < 4; l++) {
    const pf_layer *zl = &z->layers[l], *pl = &m->layers[l];
    ck_assert(zl->gate_proj->shape[0] == 176 && zl->down_proj->shape[1] == 176);
    for (int64_t i = 0; i < 176; i++) {
      int zeroed = (l == 2 && (i == 5 || i == 0 || i == 175)) || (l == 0 && i == 42);
      pf_tensor_row_f32(zl->gate_proj, i, row);
      pf_tensor_row_f32(pl->gate_proj, i, prow);
      for (int h = 0; h < 64; h++)
        ck_assert(zeroed ? row[h] == 0 : row[h] == prow[h]);
      pf_tensor_row_f32(zl->up_proj, i, row);
      ck_assert(!zeroed || (row[0] == 0 && row[63] == 0));
    }
    for (int64_t h = 0; h < 64; h++) {
      pf_tensor_row_f32(zl->down_proj, h, row);
      pf_tensor_row_f32(pl->down_proj, h, prow);
      for (int64_t i = 0; i < 176; i++) {
        int zeroed = (l == 2 && (i == 5 || i == 0 || i == 175)) || (l == 0 && i == 42);
        ck_assert(zeroed ? row[i] == 0 : row[i] == prow[i]);
        ck_assert(prow[i] != 0); /* parent unchanged */
      }
    }
  }
  ck_assert_ptr_eq(z->layers[1].gate_proj, m->layers[1].gate_proj); /* untouched layers shared */
  ck_assert_ptr_ne(z->layers[2].gate_proj, m->layers[2].gate_proj);
  pf_value_release(r);
  pf_model_release(m);
}
END_TEST

static void expect_zero_error(pf_model *m, pf_value *indices, const char *msg) {
  pf_err err = {0};
  ck_assert_ptr_null(zero(m, indices, &err));
  ck_assert_msg(strstr(err.msg, msg) != NULL, "expected '%s', got '%s'", msg, err.msg);
}

static pf_value *one(const char *key, pf_value *v) {
  pf_value *m = pf_value_map();
  pf_map_set(m, key, v);
  return m;
}

START_TEST(test_zero_neurons_errors) {
  pf_model *m = load_tiny();
  pf_value *l = pf_value_list(); /* an empty list is Lua's empty dict */
  pf_list_push(l, pf_value_int(1));
  expect_zero_error(m, l, "neuron_indices must be Dict[int, List[int]]");
  expect_zero_error(m, pf_value_list(), "neuron_indices cannot be empty");
  expect_zero_error(m, pf_value_map(), "neuron_indices cannot be empty");
  expect_zero_error(m, one("x", ints(1, (int[]){1})),
                    "neuron_indices keys must be int, got string for key x");
  expect_zero_error(m, one("7", ints(1, (int[]){1})),
                    "Layer index 7 is out of range. Model has 4 layers (valid indices: 0-3)");
  expect_zero_error(m, one("0", pf_value_str("1")),
                    "neuron_indices values must be List[int], got string for layer 0");
  expect_zero_error(m, one("0", pf_value_list()), "Neuron index list for layer 0 cannot be empty");
  expect_zero_error(m, one("0", ints(3, (int[]){176, 3, -1})),
                    "Layer 0: neuron indices [176, -1] are out of range [0, 175]");
  expect_zero_error(m, one("1", ints(3, (int[]){4, 1, 4})),
                    "Layer 1: neuron_indices contains duplicate values");
  /* not GLU: layer 0 without gate_proj */
  pf_model *bad = NULL;
  pf_err err = {0};
  ck_assert_int_eq(pf_model_derive(m, &bad, &err), PF_OK);
  pf_tensor_release(bad->layers[0].gate_proj);
  bad->layers[0].gate_proj = NULL;
  expect_zero_error(bad, one("0", ints(1, (int[]){1})),
                    "Model is not compatible with GLU pruning. It must have gate_proj, up_proj, "
                    "and down_proj layers.");
  pf_model_release(bad);
  pf_model_release(m);
}
END_TEST

static Suite *make_suite(void) {
  Suite *s = suite_create("fairness");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 120);
  tcase_add_checked_fixture(tc, NULL, teardown);
  tcase_add_test(tc, test_normalize);
  tcase_add_test(tc, test_fairness_scores);
  tcase_add_test(tc, test_fairness_errors);
  tcase_add_test(tc, test_prune_fairness);
  tcase_add_test(tc, test_prune_fairness_errors);
  tcase_add_test(tc, test_zero_neurons);
  tcase_add_test(tc, test_zero_neurons_errors);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return pf_test_main(make_suite);
}
