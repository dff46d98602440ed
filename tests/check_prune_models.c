/* check_prune_models.c — width and depth pruning of whole models (ops/pruning.h):
 * exact slicing against an independent score + top-k selection, tensor sharing
 * with the parent, dry-run plans, MLP biases, and per-layer config widths.
 * Models are synthetic checkpoints written by the test (pf_test_synth) or
 * shape-only plans filled with hand-made tensors.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "pruning.h"
#include "testutil.h"

/* ---- width pruning on models ---- */

static pf_model *load_synth(const char *preset, const char *dtype, char **dir_out) {
  char *dir = pf_test_synth(preset, 7, dtype);
  pf_model *m = NULL;
  pf_err err = {0};
  ck_assert_msg(pf_model_load(dir, &m, &err) == PF_OK, "%s", err.msg);
  if (dir_out)
    *dir_out = dir;
  else
    free(dir);
  return m;
}

START_TEST(test_prune_width_model) {
  char *dir = NULL;
  pf_model *m = load_synth("llama-tiny", NULL, &dir);
  const int64_t H = m->config.hidden_size, I = m->layers[1].gate_proj->shape[0];
  int64_t idx[2] = {3, 1};
  pf_width_opts o = {.method = "VOW",
                     .have_percentage = 1,
                     .pruning_percentage = 25,
                     .have_layer_indices = 1,
                     .layer_indices = idx,
                     .n_layer_indices = 2};
  pf_model *p = NULL;
  pf_value *s = NULL;
  pf_err err = {0};
  ck_assert_msg(pf_prune_width(m, &o, NULL, &p, &s, &err) == PF_OK, "%s", err.msg);
  int64_t k = pf_keep_from_percentage(25, I);
  /* independent selection: scores + top-k on the parent's layer 1 */
  float *sc = malloc(sizeof(float) * (size_t)I);
  int64_t *kept = malloc(sizeof(int64_t) * (size_t)k);
  ck_assert_int_eq(pf_layer_scores(&m->layers[1], PF_METHOD_VOW, PF_DTYPE_F32, sc, &err), PF_OK);
  ck_assert_int_eq(pf_topk_keep(sc, I, k, kept, &err), PF_OK);
  const pf_layer *a = &m->layers[1], *b = &p->layers[1];
  size_t row = (size_t)H * 4, dcols = (size_t)b->down_proj->shape[1];
  for (int64_t j = 0; j < k; j++) {
    ck_assert(!memcmp((const char *)pf_test_bytes(b->gate_proj) + row * (size_t)j,
                      (const char *)pf_test_bytes(a->gate_proj) + row * (size_t)kept[j], row));
    ck_assert(!memcmp((const char *)pf_test_bytes(b->up_proj) + row * (size_t)j,
                      (const char *)pf_test_bytes(a->up_proj) + row * (size_t)kept[j], row));
    for (int64_t h = 0; h < H; h++) /* down column j == parent column kept[j] */
      ck_assert(((const float *)pf_test_bytes(b->down_proj))[(size_t)h * dcols + (size_t)j] ==
                ((const float *)pf_test_bytes(a->down_proj))[(size_t)h * (size_t)I + (size_t)kept[j]]);
  }
  ck_assert_int_eq(b->down_proj->shape[0], H);
  ck_assert_int_eq(b->down_proj->shape[1], k);
  /* unpruned layers and attention share tensors with the parent; the parent is unchanged */
  ck_assert_ptr_eq(p->layers[0].gate_proj, m->layers[0].gate_proj);
  ck_assert_ptr_eq(p->layers[1].q_proj, m->layers[1].q_proj);
  ck_assert_ptr_eq(p->embed_tokens, m->embed_tokens);
  ck_assert_int_eq(m->layers[1].gate_proj->shape[0], I);
  ck_assert_int_eq(p->config.intermediate_sizes[1], k);
  ck_assert_int_eq(p->config.intermediate_sizes[3], k);
  ck_assert_int_eq(p->config.intermediate_sizes[0], I);
  ck_assert_int_eq(p->config.intermediate_size, I); /* the largest */
  /* selective: 5 keys + pruned_layers/total_layers + layers */
  ck_assert_uint_eq(s->u.map.len, 8);
  ck_assert_int_eq(pf_map_int(s, "pruned_layers", 0), 2);
  ck_assert_int_eq(pf_map_int(s, "total_layers", 0), 4);
  ck_assert_int_eq(pf_map_int(s, "reduction", 0), 2 * (I - k) * 3 * H);
  const pf_value *l0 = pf_map_get(s, "layers")->u.list.items[0];
  ck_assert_int_eq(pf_map_int(l0, "index", -1), 1); /* sorted */
  for (int64_t j = 0; j < k; j++)
    ck_assert_int_eq(pf_map_get(l0, "kept_indices")->u.list.items[j]->u.i, kept[j]);
  free(sc);
  free(kept);
  pf_value_release(s);
  pf_model_release(p);
  pf_model_release(m);
  pf_test_synth_free(dir);
}
END_TEST

START_TEST(test_prune_width_dry_run) {
  char *dir = NULL;
  pf_model *m = load_synth("llama-tiny", "bf16", &dir);
  const int64_t I = m->layers[0].gate_proj->shape[0];
  pf_width_opts o = {.method = "MAW",
                     .have_percentage = 1,
                     .pruning_percentage = 50,
                     .have_divisor = 1,
                     .expansion_divisor = 32};
  pf_ctx ctx = {.dry_run = 1};
  pf_model *p = NULL, *real = NULL;
  pf_value *s = NULL, *rs = NULL;
  pf_err err = {0};
  ck_assert_msg(pf_prune_width(m, &o, &ctx, &p, &s, &err) == PF_OK, "%s", err.msg);
  ck_assert_msg(pf_prune_width(m, &o, NULL, &real, &rs, &err) == PF_OK, "%s", err.msg);
  int64_t k = pf_round_to_divisor(pf_keep_from_percentage(50, I), 32);
  for (int64_t i = 0; i < p->n_layers; i++) {
    ck_assert_ptr_null(pf_test_bytes(p->layers[i].gate_proj));
    ck_assert_ptr_null(pf_test_bytes(p->layers[i].down_proj));
    ck_assert_int_eq(p->layers[i].gate_proj->shape[0], k);
    ck_assert_int_eq(p->layers[i].up_proj->shape[0], k);
    ck_assert_int_eq(p->layers[i].down_proj->shape[1], k);
    ck_assert_int_eq(p->layers[i].gate_proj->dtype, PF_DTYPE_BF16);
    ck_assert_int_eq(real->layers[i].gate_proj->dtype, PF_DTYPE_BF16);
    ck_assert_int_eq(real->layers[i].gate_proj->shape[0], k);
  }
  const pf_value *e = pf_map_get(s, "layers")->u.list.items[0];
  ck_assert_int_eq(pf_map_get(e, "kept_indices")->type, PF_V_NULL);
  ck_assert_int_eq(pf_map_int(e, "intermediate_size_after", 0), k);
  /* the same statistics with and without weights */
  ck_assert_uint_eq(s->u.map.len, 6); /* full prune: 5 keys + layers */
  ck_assert_int_eq(pf_map_int(s, "pruned_parameters", 0), pf_map_int(rs, "pruned_parameters", 1));
  ck_assert(pf_map_num(s, "percentage_reduction", 0) == pf_map_num(rs, "percentage_reduction", 1));
  ck_assert(pf_map_num(s, "expansion_rate", 0) == (double)k / (double)m->config.hidden_size * 100);
  pf_value_release(s);
  pf_value_release(rs);
  pf_model_release(p);
  pf_model_release(real);
  pf_model_release(m);
  pf_test_synth_free(dir);
}
END_TEST

/* MLP biases: gate/up biases are sliced, the down bias is shared unchanged. */
START_TEST(test_prune_width_biases) {
  pf_model_config c;
  pf_err err = {0};
  ck_assert_int_eq(pf_config_parse("{\"model_type\": \"llama\", \"hidden_size\": 8, "
                                   "\"intermediate_size\": 10, \"num_hidden_layers\": 1, "
                                   "\"num_attention_heads\": 2, \"vocab_size\": 16, "
                                   "\"mlp_bias\": true}",
                                   "config.json", &c, &err),
                   PF_OK);
  pf_model *m = NULL, *p = NULL;
  ck_assert_int_eq(pf_model_plan(&c, PF_DTYPE_F32, &m, &err), PF_OK);
  pf_config_free(&c);
  const char *names[5] = {"gate_proj.weight", "up_proj.weight", "down_proj.weight",
                          "gate_proj.bias", "up_proj.bias"};
  const int64_t shapes[5][2] = {{10, 8}, {10, 8}, {8, 10}, {10, 0}, {10, 0}};
  for (int t = 0; t < 5; t++) {
    pf_tensor *x = NULL;
    ck_assert_int_eq(pf_tensor_new(PF_DTYPE_F32, shapes[t][1] ? 2 : 1, shapes[t], &x, &err), PF_OK);
    float *d = pf_tensor_mutable_data(x);
    for (int64_t i = 0; i < pf_tensor_numel(x); i++) /* row r of gate/up: magnitude r */
      d[i] = t < 2 ? (float)(i / 8) * ((i % 2) ? 1.0f : -1.0f) : (float)i;
    char name[64];
    snprintf(name, sizeof name, "model.layers.0.mlp.%s", names[t]);
    ck_assert_int_eq(pf_model_set_tensor(m, name, x, &err), PF_OK);
  }
  pf_width_opts o = {.method = "PON", .have_percentage = 1, .pruning_percentage = 40};
  ck_assert_msg(pf_prune_width(m, &o, NULL, &p, NULL, &err) == PF_OK, "%s", err.msg);
  /* PON grows with the row index, so rows 4..9 are kept (k = 10 - 4 = 6) */
  const pf_layer *l = &p->layers[0];
  ck_assert_int_eq(l->gate_bias->shape[0], 6);
  for (int j = 0; j < 6; j++) {
    ck_assert(((const float *)pf_test_bytes(l->gate_bias))[j] == (float)(j + 4));
    ck_assert(((const float *)pf_test_bytes(l->up_bias))[j] == (float)(j + 4));
  }
  ck_assert_ptr_eq(l->down_bias, m->layers[0].down_bias);
  pf_model_release(p);
  pf_model_release(m);
}
END_TEST

START_TEST(test_prune_depth_shares) {
  char *dir = NULL;
  pf_model *m = load_synth("qwen3-tiny", NULL, &dir);
  pf_depth_opts o = {.have_num = 1, .num_layers_to_remove = 2, .layer_selection_method = "first"};
  pf_model *p = NULL;
  pf_err err = {0};
  ck_assert_msg(pf_prune_depth(m, &o, &p, NULL, &err) == PF_OK, "%s", err.msg);
  ck_assert_int_eq(p->n_layers, m->n_layers - 2);
  for (int64_t i = 0; i < p->n_layers; i++) {
    ck_assert_ptr_eq(p->layers[i].gate_proj, m->layers[i + 2].gate_proj);
    ck_assert_ptr_eq(p->layers[i].q_norm, m->layers[i + 2].q_norm);
    ck_assert_int_eq(p->layers[i].source_index, m->layers[i + 2].source_index);
  }
  if (m->config.layer_types) /* popped with the layers */
    ck_assert_str_eq(p->config.layer_types[0], m->config.layer_types[2]);
  ck_assert_int_eq(m->n_layers, 4); /* parent unchanged */
  pf_model_release(p);
  pf_model_release(m);
  pf_test_synth_free(dir);
}
END_TEST

static Suite *prune_models_suite(void) {
  Suite *s = suite_create("prune_models");
  TCase *t = tcase_create("models");
  tcase_set_timeout(t, 120);
  tcase_add_test(t, test_prune_width_model);
  tcase_add_test(t, test_prune_width_dry_run);
  tcase_add_test(t, test_prune_width_biases);
  tcase_add_test(t, test_prune_depth_shares);
  suite_add_tcase(s, t);
  return s;
}

int main(void) {
  return pf_test_main(prune_models_suite);
}
