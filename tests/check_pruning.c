/* check_pruning.c — the OptiPFair pruning math (ops/pruning.h).
 *
 * Reference values:
 *  - k / expansion-rate / divisor tables: reference/optipfair-behaviour.md
 *    §3.1, §3.2, §3.3, every row (the doc's numbers are Python's).
 *  - error texts and their order: §3.3, §4, §5.1 (OptiPFair's words).
 *  - width/depth pruning of whole models (slicing, sharing, dry runs): check_prune_models.c.
 *  - static scores: a 2-neuron, H = 4 layer whose scores are worked out by hand
 *    in the comments of test_scores_by_hand.
 *  - stories260K golden values (removed neuron indices of every pruned layer,
 *    statistics, depth statistics) were produced by an independent numpy
 *    implementation of §1/§3/§6:
 *        /usr/bin/python3 tests/golden/optipfair_ref.py ../shared/models/stories260K
 *    (run from the repository root; the smallest score gap at any k boundary is
 *    1.7e-5, far above float32 rounding, so the choice of kept neurons is not a
 *    near-tie). The test is skipped visibly when ../shared is absent.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "pruning.h"
#include "testutil.h"

/* A shape-only 4-layer model (H 64, I 176) for validation tests. */
static pf_model *plan_model(int64_t layers) {
  char json[512];
  snprintf(json, sizeof json,
           "{\"model_type\": \"llama\", \"hidden_size\": 64, \"intermediate_size\": 176, "
           "\"num_hidden_layers\": %lld, \"num_attention_heads\": 4, \"num_key_value_heads\": 2, "
           "\"vocab_size\": 320, \"max_position_embeddings\": 128}",
           (long long)layers);
  pf_model_config c;
  pf_err err = {0};
  ck_assert_msg(pf_config_parse(json, "config.json", &c, &err) == PF_OK, "%s", err.msg);
  pf_model *m = NULL;
  ck_assert_msg(pf_model_plan(&c, PF_DTYPE_F32, &m, &err) == PF_OK, "%s", err.msg);
  pf_config_free(&c);
  return m;
}

/* ---- §3.1 ---- */

START_TEST(test_keep_from_percentage_table) {
  static const struct {
    int64_t I;
    double p;
    int64_t k;
  } rows[] = {
      {8192, 20, 6554}, {8192, 10, 7373}, {8192, 15, 6964},
      {3072, 20, 2458}, {3072, 99, 31},   {3072, 100, 1},
  };
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
    ck_assert_int_eq(pf_keep_from_percentage(rows[i].p, rows[i].I), rows[i].k);
  /* the (p/100)*I column: Python gives 1638.4 and 614.4000000000001 */
  ck_assert(fabs((20 / 100.0) * 8192 - 1638.4) == 0);
  ck_assert((20 / 100.0) * 3072 == 614.4000000000001);
  ck_assert_int_eq(pf_keep_from_percentage(0, 3072), 3072); /* 0 % keeps all */
  ck_assert_int_eq(pf_keep_from_percentage(100, 8192), 1);  /* 100 % keeps one */
  ck_assert_int_eq(pf_keep_from_percentage(100, 1), 1);
}
END_TEST

/* ---- §3.2 ---- */

START_TEST(test_expansion_rate_table) {
  static const struct {
    int64_t I, H;
    double e, p;
    int64_t k;
  } rows[] = {
      {5632, 2048, 260, 5.454545454545457, 5325},
      {8192, 2048, 200, 50.0, 4096},
      {8192, 2048, 140, 65.0, 2868},
      {3072, 768, 200, 50.0, 1536},
      {3072, 768, 300, 25.0, 2304},
  };
  pf_err err = {0};
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    double p = -1;
    ck_assert_int_eq(
        pf_percentage_from_expansion_rate(rows[i].I, rows[i].H, rows[i].e, 1, &p, &err), PF_OK);
    ck_assert_msg(p == rows[i].p, "row %zu: p = %.17g, expected %.17g", i, p, rows[i].p);
    ck_assert_int_eq(pf_keep_from_percentage(p, rows[i].I), rows[i].k);
  }
}
END_TEST

START_TEST(test_expansion_rate_errors) {
  pf_err err = {0};
  double p;
  ck_assert_int_eq(pf_percentage_from_expansion_rate(3072, 768, 500, 1, &p, &err), PF_ERR_INVALID);
  ck_assert_str_eq(err.msg, "Target expansion rate (500%) would increase the model size. Current "
                            "expansion rate is 400.00%.");
  /* target == I0 is refused too (>=) */
  ck_assert_int_eq(pf_percentage_from_expansion_rate(1536, 768, 200, 1, &p, &err), PF_ERR_INVALID);
  ck_assert_str_eq(err.msg, "Target expansion rate (200%) would increase the model size. Current "
                            "expansion rate is 200.00%.");
  ck_assert_int_eq(pf_percentage_from_expansion_rate(1536, 768, 200.5, 0, &p, &err),
                   PF_ERR_INVALID);
  pf_assert_err(err, "Target expansion rate (200.5%)");
  ck_assert_int_eq(pf_percentage_from_expansion_rate(1536, 768, 200, 0, &p, &err), PF_ERR_INVALID);
  pf_assert_err(err, "Target expansion rate (200.0%)"); /* Python str(200.0) */
  ck_assert_int_eq(pf_percentage_from_expansion_rate(172, 64, 300, 1, &p, &err), PF_ERR_INVALID);
  pf_assert_err(err, "Current expansion rate is 268.75%.");
}
END_TEST

/* ---- §3.3 ---- */

START_TEST(test_divisor_table) {
  static const struct {
    double p;
    int64_t d, k, floor_k;
  } rows[] = {
      {20, 32, 6554, 6528},  {20, 64, 6554, 6528},  {20, 128, 6554, 6528}, {20, 256, 6554, 6400},
      {10, 128, 7373, 7296}, {15, 128, 6964, 6912}, {5, 32, 7783, 7776},   {50, 256, 4096, 4096},
  };
  /* (The doc's k column shows 7776 for 5 % / 32; Python's k is 8192 - int(409.6) = 7783,
   * which the floor rule takes to 7776 — the rounded column is what the doc tests.) */
  pf_err err = {0};
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    int64_t k = 0;
    ck_assert_int_eq(pf_keep_from_percentage(rows[i].p, 8192), rows[i].k);
    ck_assert_int_eq(pf_round_to_divisor(rows[i].k, rows[i].d), rows[i].floor_k);
    ck_assert_int_eq(pf_layer_keep(0, 8192, rows[i].p, rows[i].d, &k, &err), PF_OK);
    ck_assert_int_eq(k, rows[i].floor_k);
  }
  ck_assert_int_eq(pf_round_to_divisor(8100, 128), 8064);
  ck_assert_int_eq(pf_round_to_divisor(8200, 128), 8192);
  ck_assert_int_eq(pf_round_to_divisor(8150, 128), 8064); /* floor, not nearest */
  int64_t k = 0;
  ck_assert_int_eq(pf_layer_keep(0, 8192, 99, 256, &k, &err), PF_OK); /* 82 -> 0 -> 1 */
  ck_assert_int_eq(k, 1);
  ck_assert_int_eq(pf_layer_keep(0, 8200, 0, 128, &k, &err), PF_OK); /* p = 0 still rounds */
  ck_assert_int_eq(k, 8192);
  ck_assert_int_eq(pf_layer_keep(3, 3072, 0, 0, &k, &err), PF_OK); /* 0 % keeps all */
  ck_assert_int_eq(k, 3072);
  ck_assert_int_eq(pf_layer_keep(3, 3072, 100, 0, &k, &err), PF_OK); /* 100 % keeps 1 */
  ck_assert_int_eq(k, 1);
  const int64_t bad[] = {16, 48, 512, 1024, -128, 0};
  for (size_t i = 0; i < 6; i++)
    ck_assert(!pf_divisor_valid(bad[i]));
  for (int64_t d = 32; d <= 256; d *= 2)
    ck_assert(pf_divisor_valid(d));
}
END_TEST

START_TEST(test_no_effective_pruning) {
  pf_err err = {0};
  int64_t k = -5;
  ck_assert_int_eq(pf_layer_keep(0, 8192, 0.01, 128, &k, &err), PF_ERR_INVALID);
  ck_assert_str_eq(err.msg, "No effective pruning for layer 0: resulting intermediate size (8192) "
                            "is >= base size (8192). Increase pruning_percentage, decrease "
                            "expansion_divisor, or disable expansion_divisor.");
  ck_assert_int_eq(k, -5);
  /* also without a divisor when trunc((p/100)*I) == 0 */
  ck_assert_int_eq(pf_layer_keep(7, 8192, 0.01, 0, &k, &err), PF_ERR_INVALID);
  pf_assert_err(err, "No effective pruning for layer 7: resulting intermediate size (8192)");
  ck_assert_int_eq(pf_layer_keep(-1, 8192, 0.01, 0, &k, &err), PF_ERR_INVALID);
  pf_assert_err(err, "No effective pruning for current layer:");
}
END_TEST

/* ---- top-k ---- */

START_TEST(test_topk_ties) {
  pf_err err = {0};
  int64_t kept[8];
  const float equal[6] = {1, 1, 1, 1, 1, 1};
  ck_assert_int_eq(pf_topk_keep(equal, 6, 3, kept, &err), PF_OK);
  ck_assert_int_eq(kept[0], 0); /* all tied: the lowest indices */
  ck_assert_int_eq(kept[1], 1);
  ck_assert_int_eq(kept[2], 2);
  const float mixed[6] = {0.5f, 2, 0.5f, NAN, 2, 0.1f};
  ck_assert_int_eq(pf_topk_keep(mixed, 6, 4, kept, &err), PF_OK);
  /* order: NaN(3), 2(1), 2(4), 0.5(0), 0.5(2), 0.1(5) -> first four, ascending */
  const int64_t want[4] = {0, 1, 3, 4};
  for (int i = 0; i < 4; i++)
    ck_assert_int_eq(kept[i], want[i]);
  ck_assert_int_eq(pf_topk_keep(mixed, 6, 6, kept, &err), PF_OK);
  for (int i = 0; i < 6; i++)
    ck_assert_int_eq(kept[i], i);
  ck_assert_int_eq(pf_topk_keep(mixed, 6, 7, kept, &err), PF_ERR_INVALID);
}
END_TEST

/* ---- §1 scores by hand ---- */

/* Neuron 0: g = [1, -2, 3, 0.5], u = [0.5, 0.5, -1, 2]
 *   MAW: (3 + |-2|) + (2 + |-1|) = 5 + 3 = 8
 *   VOW: mean g = 0.625, squared deviations 0.140625 + 6.890625 + 5.640625 +
 *        0.015625 = 12.6875, / 3 = 4.2291666...; u: mean 0.5, 0 + 0 + 2.25 +
 *        2.25 = 4.5, / 3 = 1.5  ->  4.2291666... + 1.5
 *   PON: (1 + 2 + 3 + 0.5) * (0.5 + 0.5 + 1 + 2) = 6.5 * 4 = 26
 *   L2:  sqrt(1 + 4 + 9 + 0.25) + sqrt(0.25 + 0.25 + 1 + 4) = sqrt(14.25) + sqrt(5.5)
 * Neuron 1: g = [1, 2, 3, 4] (all positive), u = [-1, -1, -1, -1]
 *   MAW: (4 + |1|) + (-1 + |-1|) = 5 + 0 = 5   (max + |min|, not max - min)
 *   VOW: g: mean 2.5, 2.25 + 0.25 + 0.25 + 2.25 = 5, / 3; u: 0  ->  5/3
 *   PON: 10 * 4 = 40
 *   L2:  sqrt(30) + 2
 * Each part is rounded to float32 before the float32 sum, as torch does. */
static const float hand_g[2][4] = {{1, -2, 3, 0.5f}, {1, 2, 3, 4}};
static const float hand_u[2][4] = {{0.5f, 0.5f, -1, 2}, {-1, -1, -1, -1}};

static float hand_expected(int neuron, pf_score_method m) {
  if (neuron == 0) switch (m) {
    case PF_METHOD_PPM:
    case PF_METHOD_MAW:
      return 8.0f;
    case PF_METHOD_VOW:
      return (float)(12.6875 / 3.0) + 1.5f;
    case PF_METHOD_PON:
      return 26.0f;
    case PF_METHOD_L2:
      return (float)sqrt(14.25) + (float)sqrt(5.5);
    }
  switch (m) {
  case PF_METHOD_PPM:
  case PF_METHOD_MAW:
    return 5.0f;
  case PF_METHOD_VOW:
    return (float)(5.0 / 3.0) + 0.0f;
  case PF_METHOD_PON:
    return 40.0f;
  case PF_METHOD_L2:
    return (float)sqrt(30.0) + 2.0f;
  }
  return NAN;
}

/* A layer whose gate/up tensors hold the hand values in dtype dt (exact in bf16/f16 too). */
static void hand_layer(pf_layer *l, pf_dtype dt) {
  memset(l, 0, sizeof *l);
  int64_t shape[2] = {2, 4};
  pf_err err = {0};
  ck_assert_int_eq(pf_tensor_new(dt, 2, shape, &l->gate_proj, &err), PF_OK);
  ck_assert_int_eq(pf_tensor_new(dt, 2, shape, &l->up_proj, &err), PF_OK);
  pf_convert(pf_tensor_mutable_data(l->gate_proj), dt, hand_g, PF_DTYPE_F32, 8);
  pf_convert(pf_tensor_mutable_data(l->up_proj), dt, hand_u, PF_DTYPE_F32, 8);
}

START_TEST(test_scores_by_hand) {
  const pf_dtype dts[3] = {PF_DTYPE_F32, PF_DTYPE_BF16, PF_DTYPE_F16};
  for (int d = 0; d < 3; d++) {
    pf_layer l;
    hand_layer(&l, dts[d]);
    for (int m = PF_METHOD_PPM; m <= PF_METHOD_L2; m++) {
      float s[2];
      pf_err err = {0};
      ck_assert_int_eq(pf_layer_scores(&l, (pf_score_method)m, PF_DTYPE_F32, s, &err), PF_OK);
      for (int n = 0; n < 2; n++) {
        ck_assert_msg(s[n] == hand_expected(n, (pf_score_method)m), "%s neuron %d: %.9g vs %.9g",
                      pf_score_method_name((pf_score_method)m), n, s[n],
                      hand_expected(n, (pf_score_method)m));
        ck_assert(pf_neuron_score(hand_g[n], hand_u[n], 4, (pf_score_method)m) == s[n]);
      }
    }
    pf_tensor_release(l.gate_proj);
    pf_tensor_release(l.up_proj);
  }
}
END_TEST

START_TEST(test_method_names) {
  pf_score_method m;
  pf_err err = {0};
  ck_assert_int_eq(pf_score_method_parse("PPM", &m, &err), PF_OK);
  ck_assert_int_eq(m, PF_METHOD_PPM);
  ck_assert_int_eq(pf_score_method_parse("L2", &m, &err), PF_OK);
  ck_assert_int_eq(m, PF_METHOD_L2);
  ck_assert_int_eq(pf_score_method_parse("maw", &m, &err), PF_ERR_INVALID); /* case-sensitive */
  ck_assert_str_eq(err.msg, "Invalid neuron selection method: maw. Choose from ['PPM', 'MAW', "
                            "'VOW', 'PON', 'L2'].");
  /* a planned (shape-only) layer cannot be scored */
  pf_model *pm = plan_model(1);
  float s[176];
  ck_assert_int_eq(pf_layer_scores(&pm->layers[0], PF_METHOD_MAW, PF_DTYPE_F32, s, &err),
                   PF_ERR_INVALID);
  pf_assert_err(err, "dry-run");
  pf_model_release(pm);
}
END_TEST

/* ---- §4 width validation, in order ---- */

static pf_status plan_err(const pf_model *m, const pf_width_opts *o, pf_err *err) {
  pf_width_plan p;
  pf_status st = pf_width_plan_make(m, o, &p, err);
  if (!st) pf_width_plan_free(&p);
  return st;
}

START_TEST(test_width_validation_order) {
  pf_model *m = plan_model(4);
  pf_err err = {0};
  int64_t none[1] = {0};
  int64_t bad[4] = {0, 4, 5, -1}, dup_bad[4] = {0, 1, 1, 9}, dup[3] = {0, 1, 1};
  /* empty list first, even with a bad divisor and a bad method */
  pf_width_opts o = {.method = "XYZ",
                     .have_divisor = 1,
                     .expansion_divisor = 16,
                     .have_layer_indices = 1,
                     .layer_indices = none,
                     .n_layer_indices = 0};
  ck_assert_int_eq(plan_err(m, &o, &err), PF_ERR_INVALID);
  ck_assert_str_eq(err.msg, "layer_indices cannot be an empty list");
  o.layer_indices = bad;
  o.n_layer_indices = 4;
  plan_err(m, &o, &err);
  ck_assert_str_eq(err.msg, "Invalid layer indices: [4, 5, -1]. Model has 4 layers (valid "
                            "indices: 0-3)");
  o.layer_indices = dup_bad; /* range before duplicates */
  plan_err(m, &o, &err);
  ck_assert_str_eq(err.msg, "Invalid layer indices: [9]. Model has 4 layers (valid indices: 0-3)");
  o.layer_indices = dup;
  o.n_layer_indices = 3;
  plan_err(m, &o, &err);
  ck_assert_str_eq(err.msg, "layer_indices contains duplicate values");
  o.have_layer_indices = 0;
  plan_err(m, &o, &err); /* divisor validity before the method */
  ck_assert_str_eq(err.msg, "expansion_divisor must be one of [32, 64, 128, 256] or None. Got: 16");
  o.expansion_divisor = 64;
  plan_err(m, &o, &err);
  ck_assert_str_eq(err.msg, "expansion_divisor cannot be used alone. Please provide either "
                            "pruning_percentage or expansion_rate.");
  o.have_percentage = o.have_expansion_rate = 1;
  o.pruning_percentage = 20;
  o.expansion_rate = 150;
  plan_err(m, &o, &err); /* method before exclusivity */
  pf_assert_err(err, "Invalid neuron selection method: XYZ.");
  o.method = "VOW";
  plan_err(m, &o, &err);
  ck_assert_str_eq(err.msg, "pruning_percentage and expansion_rate are mutually exclusive. "
                            "Provide only one.");
  o.have_percentage = 0;
  o.expansion_rate = 300;
  o.expansion_rate_is_int = 1;
  plan_err(m, &o, &err);
  pf_assert_err(err, "Target expansion rate (300%) would increase the model size. Current "
                     "expansion rate is 275.00%.");
  pf_model_release(m);
}
END_TEST

START_TEST(test_width_percentage_range) {
  pf_model *m = plan_model(2);
  pf_err err = {0};
  pf_width_opts o = {
      .method = "MAW", .have_percentage = 1, .pruning_percentage = 150, .percentage_is_int = 1};
  ck_assert_int_eq(plan_err(m, &o, &err), PF_ERR_INVALID);
  ck_assert_str_eq(err.msg, "pruning_percentage must be between 0 and 100, got 150");
  o.pruning_percentage = -0.5;
  o.percentage_is_int = 0;
  plan_err(m, &o, &err);
  ck_assert_str_eq(err.msg, "pruning_percentage must be between 0 and 100, got -0.5");
  o.have_percentage = 0;
  plan_err(m, &o, &err);
  ck_assert_str_eq(err.msg, "pruning_percentage must be between 0 and 100, got None");
  /* the first layer (in ascending order) without effect is the one reported */
  int64_t idx[2] = {1, 0};
  o = (pf_width_opts){.method = "MAW",
                      .have_percentage = 1,
                      .pruning_percentage = 0.1,
                      .have_layer_indices = 1,
                      .layer_indices = idx,
                      .n_layer_indices = 2};
  plan_err(m, &o, &err);
  pf_assert_err(err, "No effective pruning for layer 0: resulting intermediate size (176) is >= "
                     "base size (176).");
  /* a valid plan: 20 % of 176 -> int(35.2) = 35 pruned -> 141 kept, only layer 1 */
  pf_width_plan p;
  int64_t one[1] = {1};
  o = (pf_width_opts){.method = "PON",
                      .have_percentage = 1,
                      .pruning_percentage = 20,
                      .have_layer_indices = 1,
                      .layer_indices = one,
                      .n_layer_indices = 1};
  ck_assert_int_eq(pf_width_plan_make(m, &o, &p, &err), PF_OK);
  ck_assert_int_eq(p.keep[0], 176);
  ck_assert_int_eq(p.keep[1], 141);
  ck_assert(!p.selected[0] && p.selected[1]);
  ck_assert_int_eq(p.method, PF_METHOD_PON);
  pf_width_plan_free(&p);
  /* the method default of prune_model_mlp_glu is PPM */
  o.method = NULL;
  ck_assert_int_eq(pf_width_plan_make(m, &o, &p, &err), PF_OK);
  ck_assert_int_eq(p.method, PF_METHOD_PPM);
  pf_width_plan_free(&p);
  pf_model_release(m);
}
END_TEST

START_TEST(test_width_not_glu) {
  pf_model *m = plan_model(2), *d = NULL;
  pf_err err = {0};
  ck_assert_int_eq(pf_model_derive(m, &d, &err), PF_OK);
  pf_tensor_release(d->layers[0].up_proj);
  d->layers[0].up_proj = NULL;
  pf_width_opts o = {.method = "XYZ", .have_percentage = 1, .pruning_percentage = 20};
  ck_assert_int_eq(plan_err(d, &o, &err), PF_ERR_INVALID);
  pf_assert_err(err, "Model is not compatible with GLU pruning. It must have gate_proj, up_proj, "
                     "and down_proj layers.");
  pf_model_release(d);
  pf_model_release(m);
}
END_TEST

/* ---- §5.1 depth validation, in order ---- */

static pf_status depth_err(const pf_model *m, const pf_depth_opts *o, pf_err *err) {
  int64_t *r = NULL;
  size_t n = 0;
  pf_status st = pf_depth_select(m, o, &r, &n, err);
  free(r);
  return st;
}

START_TEST(test_depth_validation) {
  pf_model *m = plan_model(4);
  pf_err err = {0};
  pf_depth_opts o = {0};
  ck_assert_int_eq(depth_err(m, &o, &err), PF_ERR_INVALID);
  ck_assert_str_eq(err.msg, "Must specify one of: num_layers_to_remove, layer_indices, or "
                            "depth_pruning_percentage");
  o = (pf_depth_opts){.have_num = 1,
                      .num_layers_to_remove = 1,
                      .have_percentage = 1,
                      .depth_pruning_percentage = 25,
                      .layer_selection_method = "middle"};
  depth_err(m, &o, &err);
  ck_assert_str_eq(err.msg, "Parameters num_layers_to_remove, layer_indices, and "
                            "depth_pruning_percentage are mutually exclusive");
  int64_t idx[2] = {0, 1};
  o = (pf_depth_opts){.have_layer_indices = 1,
                      .layer_indices = idx,
                      .n_layer_indices = 2,
                      .layer_selection_method = "middle"}; /* checked even with indices */
  depth_err(m, &o, &err);
  ck_assert_str_eq(err.msg, "layer_selection_method must be one of ['last', 'first', 'custom'], "
                            "got middle");
  o = (pf_depth_opts){.have_num = 1, .num_layers_to_remove = 0};
  depth_err(m, &o, &err);
  ck_assert_str_eq(err.msg, "num_layers_to_remove must be a positive integer");
  o.num_layers_to_remove = 4;
  depth_err(m, &o, &err);
  ck_assert_str_eq(err.msg, "Cannot remove 4 layers from model with 4 layers");
  o = (pf_depth_opts){.have_percentage = 1, .depth_pruning_percentage = 0};
  depth_err(m, &o, &err);
  ck_assert_str_eq(err.msg, "depth_pruning_percentage must be between 0 and 100");
  o.depth_pruning_percentage = 100;
  depth_err(m, &o, &err);
  ck_assert_str_eq(err.msg, "depth_pruning_percentage must be between 0 and 100");
  o.depth_pruning_percentage = 5; /* int(4 * 5 / 100) = 0; q printed as a Python float */
  depth_err(m, &o, &err);
  ck_assert_str_eq(err.msg, "depth_pruning_percentage 5.0% would remove 0 layers");
  o.depth_pruning_percentage = 12.5;
  depth_err(m, &o, &err);
  ck_assert_str_eq(err.msg, "depth_pruning_percentage 12.5% would remove 0 layers");
  /* ("would remove all layers" cannot happen for q < 100: int(T*q/100) < T for every T
   * up to 200 at the largest double below 100, checked in Python.) */
  int64_t out_of_range[1] = {15}, dup[2] = {2, 2}, all[4] = {0, 1, 2, 3};
  o = (pf_depth_opts){.have_layer_indices = 1, .layer_indices = idx, .n_layer_indices = 0};
  depth_err(m, &o, &err);
  ck_assert_str_eq(err.msg, "layer_indices must be a non-empty list");
  o.layer_indices = out_of_range;
  o.n_layer_indices = 1;
  depth_err(m, &o, &err);
  ck_assert_str_eq(err.msg, "All layer_indices must be between 0 and 3");
  o.layer_indices = dup;
  o.n_layer_indices = 2;
  depth_err(m, &o, &err);
  ck_assert_str_eq(err.msg, "layer_indices must not contain duplicates");
  o.layer_indices = all;
  o.n_layer_indices = 4;
  depth_err(m, &o, &err);
  ck_assert_str_eq(err.msg, "Cannot remove 4 layers from model with 4 layers");
  o = (pf_depth_opts){.have_num = 1, .num_layers_to_remove = 2, .layer_selection_method = "custom"};
  depth_err(m, &o, &err);
  ck_assert_str_eq(err.msg, "custom_indices must be provided when layer_selection_method is "
                            "'custom'");
  /* ("Could not find transformer layers in the model." needs a model without layers,
   * which pfrun cannot build: configs require num_hidden_layers >= 1.) */
  pf_model_release(m);
}
END_TEST

static void expect_removed(const pf_model *m, const pf_depth_opts *o, const int64_t *want,
                           size_t n) {
  int64_t *r = NULL;
  size_t got = 0;
  pf_err err = {0};
  ck_assert_msg(pf_depth_select(m, o, &r, &got, &err) == PF_OK, "%s", err.msg);
  ck_assert_uint_eq(got, n);
  for (size_t i = 0; i < n; i++)
    ck_assert_int_eq(r[i], want[i]);
  free(r);
}

START_TEST(test_depth_selection) {
  pf_model *m = plan_model(12);
  int64_t custom[3] = {8, 2, 5};
  pf_depth_opts o = {.have_num = 1, .num_layers_to_remove = 3};
  expect_removed(m, &o, (const int64_t[]){9, 10, 11}, 3); /* default last */
  o.layer_selection_method = "first";
  expect_removed(m, &o, (const int64_t[]){0, 1, 2}, 3);
  o = (pf_depth_opts){.have_percentage = 1, .depth_pruning_percentage = 25};
  expect_removed(m, &o, (const int64_t[]){9, 10, 11}, 3); /* T = 12, q = 25 -> 3 */
  o = (pf_depth_opts){.have_layer_indices = 1,
                      .layer_indices = custom,
                      .n_layer_indices = 3,
                      .layer_selection_method = "first"}; /* forced to custom */
  expect_removed(m, &o, (const int64_t[]){2, 5, 8}, 3);
  pf_model_release(m);
}
END_TEST

START_TEST(test_depth_importance) {
  pf_model *m = plan_model(4);
  pf_err err = {0};
  const double imp[4] = {0.5, 0.1, 0.2, 0.9};
  pf_depth_opts o = {
      .have_num = 1, .num_layers_to_remove = 2, .importance = imp, .n_importance = 4};
  expect_removed(m, &o, (const int64_t[]){1, 2}, 2);
  o.layer_selection_method = "first"; /* would be ignored: refused */
  ck_assert_int_eq(depth_err(m, &o, &err), PF_ERR_INVALID);
  pf_assert_err(err, "importance cannot be combined with layer_selection_method");
  o.layer_selection_method = NULL;
  const double ties[4] = {0.3, 0.1, 0.2, 0.1}; /* layers 1 and 3 tie: 3 goes first */
  o.importance = ties;
  o.num_layers_to_remove = 1;
  expect_removed(m, &o, (const int64_t[]){3}, 1);
  o.num_layers_to_remove = 3;
  expect_removed(m, &o, (const int64_t[]){1, 2, 3}, 3);
  int64_t idx[1] = {0};
  o = (pf_depth_opts){.have_layer_indices = 1,
                      .layer_indices = idx,
                      .n_layer_indices = 1,
                      .importance = ties,
                      .n_importance = 4};
  ck_assert_int_eq(depth_err(m, &o, &err), PF_ERR_INVALID);
  pf_assert_err(err, "importance cannot be combined with layer_indices");
  /* from values: a map with string keys, a list, a nested "scores" */
  pf_value *map = pf_value_map();
  pf_map_set_num(map, "1", 0.1);
  pf_map_set_num(map, "0", 0.5);
  pf_map_set_int(map, "3", 1);
  double *s = NULL;
  ck_assert_int_eq(pf_importance_from_value(map, 4, 0, &s, &err), PF_ERR_INVALID);
  ck_assert_str_eq(err.msg, "importance: no score for layer 2 (scores must cover layers 0-3)");
  pf_map_set_num(map, "2", 0.25);
  ck_assert_int_eq(pf_importance_from_value(map, 4, 0, &s, &err), PF_OK);
  ck_assert(s[0] == 0.5 && s[1] == 0.1 && s[2] == 0.25 && s[3] == 1.0);
  free(s);
  pf_map_set_num(map, "7", 0.25);
  ck_assert_int_eq(pf_importance_from_value(map, 4, 0, &s, &err), PF_ERR_INVALID);
  pf_assert_err(err, "importance: layer 7 is out of range");
  pf_map_del(map, "7");
  pf_map_set_str(map, "x", "y");
  ck_assert_int_eq(pf_importance_from_value(map, 4, 0, &s, &err), PF_ERR_INVALID);
  pf_assert_err(err, "importance: key \"x\" is not a layer index");
  pf_map_del(map, "x");
  pf_map_set_str(map, "2", "high");
  ck_assert_int_eq(pf_importance_from_value(map, 4, 0, &s, &err), PF_ERR_INVALID);
  pf_assert_err(err, "importance: layer 2: expected a number, got string");
  pf_value *list = pf_value_list(), *res = pf_value_map();
  for (int i = 0; i < 3; i++)
    pf_list_push(list, pf_value_num(i * 0.5));
  ck_assert_int_eq(pf_importance_from_value(list, 4, 0, &s, &err), PF_ERR_INVALID);
  ck_assert_str_eq(err.msg, "importance: expected 4 scores (one per layer), got 3");
  pf_list_push(list, pf_value_int(2));
  pf_map_set(res, "scores", list);
  ck_assert_int_eq(pf_importance_from_value(res, 4, 0, &s, &err), PF_OK);
  ck_assert(s[1] == 0.5 && s[3] == 2.0);
  free(s);
  pf_value_release(res);
  pf_value_release(map);
  pf_model_release(m);
}
END_TEST

/* ---- stories260K golden values (see the header comment for how they were made) ---- */

static const int64_t maw20_l0[34] = {0,   2,   6,   13,  16,  17,  19,  21,  24,  25,  27,  30,
                                     43,  50,  53,  63,  74,  78,  85,  88,  90,  103, 117, 120,
                                     122, 130, 139, 141, 152, 153, 156, 157, 159, 163};
static const int64_t maw20_l1[34] = {3,  5,  7,   8,   19,  23,  24,  45,  48,  51, 55, 56,
                                     61, 66, 69,  72,  73,  74,  76,  79,  80,  82, 84, 91,
                                     98, 99, 105, 109, 118, 143, 148, 151, 156, 163};
static const int64_t maw20_l2[34] = {1,   4,   8,   11,  12,  17,  20,  22,  23,  24,  25,  49,
                                     50,  51,  52,  54,  70,  77,  78,  85,  92,  105, 108, 135,
                                     136, 137, 140, 155, 162, 163, 164, 165, 167, 169};
static const int64_t maw20_l3[34] = {12,  16,  17,  20,  28,  39,  56,  62,  63,  64,  67,  68,
                                     77,  80,  83,  88,  96,  97,  98,  103, 107, 113, 121, 122,
                                     123, 126, 127, 128, 143, 144, 152, 155, 158, 169};
static const int64_t maw20_l4[34] = {0,   7,   8,   14,  20,  21,  26,  34,  35,  37,  42,  47,
                                     50,  68,  80,  95,  97,  100, 101, 111, 112, 120, 122, 123,
                                     127, 128, 132, 133, 139, 146, 156, 160, 162, 167};
static const int64_t vow30_l0[51] = {
    0,   2,   6,   10,  13,  16,  17,  19,  21,  24,  25,  27,  37,  39,  43,  45,  46,
    50,  53,  62,  72,  74,  78,  80,  85,  87,  88,  90,  98,  102, 103, 109, 115, 117,
    120, 122, 124, 127, 130, 135, 139, 141, 142, 147, 152, 153, 154, 157, 159, 163, 170};
static const int64_t vow30_l2[51] = {
    1,   7,   8,   12,  14,  17,  20,  21,  22,  23,  24,  25,  28,  41,  46,  49,  50,
    54,  75,  77,  78,  79,  81,  82,  85,  87,  90,  92,  95,  96,  99,  102, 105, 106,
    108, 110, 111, 116, 127, 130, 131, 135, 136, 137, 140, 143, 155, 162, 163, 167, 169};
static const int64_t pon200_l0[44] = {2,   6,   16,  17,  19,  21,  24,  25,  27,  32,  39,
                                      45,  46,  50,  51,  53,  62,  63,  72,  74,  78,  80,
                                      85,  87,  88,  90,  94,  98,  103, 106, 109, 113, 115,
                                      117, 120, 124, 127, 135, 141, 147, 152, 157, 163, 170};
static const int64_t pon200_l1[44] = {2,   5,   7,   8,   9,   12,  19,  23,  24,  32,  35,
                                      41,  46,  48,  49,  52,  61,  65,  66,  67,  72,  73,
                                      74,  76,  77,  80,  84,  91,  98,  99,  103, 105, 106,
                                      108, 109, 112, 121, 128, 130, 136, 142, 146, 164, 165};
static const int64_t pon200_l2[44] = {1,   7,   12,  14,  17,  20,  21,  22,  23,  24,  25,
                                      41,  46,  50,  54,  56,  78,  79,  81,  85,  87,  90,
                                      92,  95,  96,  101, 102, 105, 106, 110, 111, 116, 124,
                                      131, 135, 136, 137, 140, 143, 155, 159, 162, 163, 169};
static const int64_t pon200_l3[44] = {6,   12,  16,  20,  24,  28,  31,  32,  34,  37,  39,
                                      40,  41,  42,  43,  45,  54,  56,  62,  63,  65,  79,
                                      83,  84,  87,  95,  97,  100, 103, 104, 107, 112, 121,
                                      122, 128, 134, 144, 151, 155, 157, 161, 165, 167, 168};
static const int64_t pon200_l4[44] = {2,   8,   14,  25,  26,  31,  34,  35,  37,  45,  47,
                                      50,  55,  60,  63,  67,  68,  71,  80,  82,  87,  93,
                                      96,  99,  100, 104, 109, 113, 120, 121, 123, 126, 127,
                                      128, 135, 148, 150, 151, 153, 154, 158, 162, 165, 167};
static const int64_t l2_10_l0[17] = {17, 19, 21,  45,  50,  53,  74,  80, 85,
                                     88, 90, 115, 135, 141, 147, 157, 163};
static const int64_t l2_10_l1[17] = {2,  5,  7,   8,   46,  61,  66,  72, 76,
                                     84, 98, 105, 106, 109, 121, 164, 165};
static const int64_t l2_10_l2[17] = {1,  7,  20, 41,  50,  54,  78,  81, 85,
                                     92, 95, 96, 106, 110, 136, 155, 162};
static const int64_t l2_10_l3[17] = {16, 20,  34,  39,  45,  56,  63,  65, 87,
                                     97, 100, 107, 121, 144, 151, 155, 165};
static const int64_t l2_10_l4[17] = {14, 25,  34,  35,  37,  50,  68,  80, 82,
                                     96, 100, 104, 113, 123, 127, 128, 167};

typedef struct golden_layer {
  int64_t index, k;
  const int64_t *removed;
  size_t n_removed;
} golden_layer;

#define GL(i, k, arr)                                                                              \
  { i, k, arr, sizeof arr / sizeof arr[0] }

static const golden_layer maw20[] = {GL(0, 138, maw20_l0), GL(1, 138, maw20_l1),
                                     GL(2, 138, maw20_l2), GL(3, 138, maw20_l3),
                                     GL(4, 138, maw20_l4)};
static const golden_layer vow30[] = {GL(0, 121, vow30_l0), GL(2, 121, vow30_l2)};
static const golden_layer pon200[] = {GL(0, 128, pon200_l0), GL(1, 128, pon200_l1),
                                      GL(2, 128, pon200_l2), GL(3, 128, pon200_l3),
                                      GL(4, 128, pon200_l4)};
static const golden_layer l2_10[] = {GL(0, 155, l2_10_l0), GL(1, 155, l2_10_l1),
                                     GL(2, 155, l2_10_l2), GL(3, 155, l2_10_l3),
                                     GL(4, 155, l2_10_l4)};

static pf_model *load_stories(void) {
  char *dir = pf_test_shared("models/stories260K", "stories260K golden values");
  if (!dir) return NULL;
  pf_model *m = NULL;
  pf_err err = {0};
  ck_assert_msg(pf_model_load(dir, &m, &err) == PF_OK, "%s", err.msg);
  free(dir);
  return m;
}

/* The kept indices of one stats "layers" entry are exactly the complement of g->removed. */
static void check_golden_layer(const pf_value *entry, const golden_layer *g, int64_t I) {
  ck_assert_int_eq(pf_map_int(entry, "index", -1), g->index);
  ck_assert_int_eq(pf_map_int(entry, "intermediate_size_before", -1), I);
  ck_assert_int_eq(pf_map_int(entry, "intermediate_size_after", -1), g->k);
  const pf_value *kept = pf_map_get(entry, "kept_indices");
  ck_assert_uint_eq(kept->u.list.len, (size_t)g->k);
  size_t r = 0, j = 0;
  for (int64_t i = 0; i < I; i++) {
    if (r < g->n_removed && g->removed[r] == i) {
      r++;
      continue;
    }
    ck_assert_msg(kept->u.list.items[j]->u.i == i, "layer %lld: kept[%zu] = %lld, expected %lld",
                  (long long)g->index, j, (long long)kept->u.list.items[j]->u.i, (long long)i);
    j++;
  }
  ck_assert_uint_eq(j, (size_t)g->k);
}

static void check_width_golden(const pf_model *m, const pf_width_opts *o, const golden_layer *g,
                               size_t n, int64_t pruned_params, double pct, double rate,
                               int64_t pruned_layers) {
  pf_model *p = NULL;
  pf_value *s = NULL;
  pf_err err = {0};
  ck_assert_msg(pf_prune_width(m, o, NULL, &p, &s, &err) == PF_OK, "%s", err.msg);
  ck_assert_int_eq(pf_map_int(s, "original_parameters", 0), 260032);
  ck_assert_int_eq(pf_map_int(s, "pruned_parameters", 0), pruned_params);
  ck_assert_int_eq(pf_map_int(s, "reduction", 0), 260032 - pruned_params);
  ck_assert_msg(pf_map_num(s, "percentage_reduction", 0) == pct, "%.17g",
                pf_map_num(s, "percentage_reduction", 0));
  ck_assert(pf_map_num(s, "expansion_rate", 0) == rate);
  ck_assert_int_eq(pf_map_has(s, "pruned_layers"), pruned_layers >= 0);
  if (pruned_layers >= 0) {
    ck_assert_int_eq(pf_map_int(s, "pruned_layers", -1), pruned_layers);
    ck_assert_int_eq(pf_map_int(s, "total_layers", -1), 5);
  }
  const pf_value *layers = pf_map_get(s, "layers");
  ck_assert_uint_eq(layers->u.list.len, n);
  for (size_t i = 0; i < n; i++) {
    check_golden_layer(layers->u.list.items[i], &g[i], 172);
    ck_assert_int_eq(p->layers[g[i].index].gate_proj->shape[0], g[i].k);
    ck_assert_int_eq(p->config.intermediate_sizes[g[i].index], g[i].k);
  }
  pf_value_release(s);
  pf_model_release(p);
}

START_TEST(test_golden_width) {
  pf_model *m = load_stories();
  if (!m) return;
  pf_width_opts o = {.method = "MAW", .have_percentage = 1, .pruning_percentage = 20};
  check_width_golden(m, &o, maw20, 5, 227392, 12.552301255230125, 215.625, -1);
  int64_t idx[2] = {0, 2};
  o = (pf_width_opts){.method = "VOW",
                      .have_percentage = 1,
                      .pruning_percentage = 30,
                      .have_layer_indices = 1,
                      .layer_indices = idx,
                      .n_layer_indices = 2};
  check_width_golden(m, &o, vow30, 2, 240448, 7.531380753138076, 189.0625, 2);
  o = (pf_width_opts){.method = "PON",
                      .have_expansion_rate = 1,
                      .expansion_rate = 200,
                      .have_divisor = 1,
                      .expansion_divisor = 32};
  check_width_golden(m, &o, pon200, 5, 217792, 16.244154565591927, 200.0, -1);
  o = (pf_width_opts){.method = "L2", .have_percentage = 1, .pruning_percentage = 10};
  check_width_golden(m, &o, l2_10, 5, 243712, 6.2761506276150625, 242.1875, -1);
  pf_model_release(m);
}
END_TEST

static void check_depth_golden(const pf_model *m, const pf_depth_opts *o, const int64_t *removed,
                               size_t n, int64_t pruned, double pct, double layer_pct) {
  pf_model *p = NULL;
  pf_value *s = NULL;
  pf_err err = {0};
  ck_assert_msg(pf_prune_depth(m, o, &p, &s, &err) == PF_OK, "%s", err.msg);
  static const char *keys[9] = {
      "original_parameters",  "pruned_parameters",          "reduction",
      "percentage_reduction", "original_layer_count",       "final_layer_count",
      "layers_removed",       "layer_reduction_percentage", "removed_layers"};
  ck_assert_uint_eq(s->u.map.len, 9);
  for (int i = 0; i < 9; i++)
    ck_assert_str_eq(s->u.map.keys[i], keys[i]);
  ck_assert_int_eq(pf_map_int(s, "original_parameters", 0), 260032);
  ck_assert_int_eq(pf_map_int(s, "pruned_parameters", 0), pruned);
  ck_assert_int_eq(pf_map_int(s, "reduction", 0), 260032 - pruned);
  ck_assert(pf_map_num(s, "percentage_reduction", 0) == pct);
  ck_assert_int_eq(pf_map_int(s, "original_layer_count", 0), 5);
  ck_assert_int_eq(pf_map_int(s, "final_layer_count", 0), 5 - (int64_t)n);
  ck_assert_int_eq(pf_map_int(s, "layers_removed", 0), (int64_t)n);
  ck_assert(pf_map_num(s, "layer_reduction_percentage", 0) == layer_pct);
  const pf_value *rl = pf_map_get(s, "removed_layers");
  ck_assert_uint_eq(rl->u.list.len, n);
  for (size_t i = 0; i < n; i++)
    ck_assert_int_eq(rl->u.list.items[i]->u.i, removed[i]);
  ck_assert_int_eq(p->n_layers, 5 - (int64_t)n);
  ck_assert_int_eq(p->config.num_hidden_layers, 5 - (int64_t)n);
  pf_value_release(s);
  pf_model_release(p);
}

START_TEST(test_golden_depth) {
  pf_model *m = load_stories();
  if (!m) return;
  pf_depth_opts o = {.have_num = 1, .num_layers_to_remove = 2, .layer_selection_method = "last"};
  check_depth_golden(m, &o, (const int64_t[]){3, 4}, 2, 169152, 34.94954467142505, 40.0);
  o = (pf_depth_opts){.have_num = 1, .num_layers_to_remove = 1, .layer_selection_method = "first"};
  check_depth_golden(m, &o, (const int64_t[]){0}, 1, 214592, 17.474772335712526, 20.0);
  int64_t custom[2] = {3, 1};
  o = (pf_depth_opts){.have_layer_indices = 1, .layer_indices = custom, .n_layer_indices = 2};
  check_depth_golden(m, &o, (const int64_t[]){1, 3}, 2, 169152, 34.94954467142505, 40.0);
  o = (pf_depth_opts){.have_percentage = 1, .depth_pruning_percentage = 40};
  check_depth_golden(m, &o, (const int64_t[]){3, 4}, 2, 169152, 34.94954467142505, 40.0);
  pf_model_release(m);
}
END_TEST

static Suite *pruning_suite(void) {
  Suite *s = suite_create("pruning");
  TCase *t = tcase_create("math");
  tcase_add_test(t, test_keep_from_percentage_table);
  tcase_add_test(t, test_expansion_rate_table);
  tcase_add_test(t, test_expansion_rate_errors);
  tcase_add_test(t, test_divisor_table);
  tcase_add_test(t, test_no_effective_pruning);
  tcase_add_test(t, test_topk_ties);
  tcase_add_test(t, test_scores_by_hand);
  tcase_add_test(t, test_method_names);
  suite_add_tcase(s, t);
  TCase *v = tcase_create("validation");
  tcase_add_test(v, test_width_validation_order);
  tcase_add_test(v, test_width_percentage_range);
  tcase_add_test(v, test_width_not_glu);
  tcase_add_test(v, test_depth_validation);
  tcase_add_test(v, test_depth_selection);
  tcase_add_test(v, test_depth_importance);
  suite_add_tcase(s, v);
  TCase *g = tcase_create("models");
  tcase_set_timeout(g, 120);
  tcase_add_test(g, test_golden_width);
  tcase_add_test(g, test_golden_depth);
  suite_add_tcase(s, g);
  return s;
}

int main(void) {
  return pf_test_main(pruning_suite);
}
