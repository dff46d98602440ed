/* check_model.c — loading, validation, derive/remove, counting (saving:
 * check_model_save.c). */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "model.h"
#include "safetensors.h"
#include "modelutil.h"
#include "testutil.h"

/* ---- helpers ---- */

/* Write a checkpoint straight from tensors + a config, bypassing pf_model_save's checks,
 * plus extra tensors. Returns the new folder (inside a fresh temp dir). */
static char *write_raw(const pf_model *m, const pf_model_config *c, const char **extra_names,
                       pf_tensor **extra, int n_extra) {
  char *root = pf_test_tmpdir("raw");
  char *dir = pf_path_join(root, "ckpt");
  free(root);
  pf_err err = {0};
  ck_assert_int_eq(pf_mkdirs(dir, &err), PF_OK);
  names *l = list_tensors(m);
  pf_st_entry *e = calloc((size_t)(l->count + n_extra), sizeof *e);
  for (int i = 0; i < l->count; i++)
    e[i] = (pf_st_entry){l->n[i], l->t[i]};
  for (int i = 0; i < n_extra; i++)
    e[l->count + i] = (pf_st_entry){extra_names[i], extra[i]};
  ck_assert_msg(
      pf_st_write(dir, e, (size_t)(l->count + n_extra), 5000000000ull, NULL, NULL, &err) == PF_OK,
      "%s", err.msg);
  char *json = pf_config_to_json(c);
  char *p = pf_path_join(dir, "config.json");
  pf_test_write(p, json);
  free(p);
  free(json);
  free(e);
  free(l);
  return dir;
}

static void load_fails(const char *dir, pf_status code, const char *needle) {
  pf_model *m = (pf_model *)1;
  pf_err err = {0};
  pf_status s = pf_model_load(dir, &m, &err);
  ck_assert_msg(s == code, "expected status %d, got %d (%s)", code, s, err.msg);
  ck_assert_ptr_null(m);
  pf_assert_err(err, needle);
}

static const char *presets[] = {"llama-tiny", "llama-small", "qwen2-tiny", "qwen3-tiny",
                                "mistral-tiny"};

START_TEST(test_load_presets) {
  char *dir = pf_test_synth(presets[_i], 1234, NULL);
  pf_model *m = load_ok(dir);
  pf_err err = {0};
  ck_assert_int_eq(pf_model_check(m, &err), PF_OK);
  ck_assert_str_eq(m->name, "model");
  ck_assert_ptr_nonnull(strstr(m->source_dir, "/model"));
  ck_assert_int_eq(m->refcount, 1);
  names *l = list_tensors(m);
  /* zero copy: every tensor is a view over the mapped file */
  for (int i = 0; i < l->count; i++) {
    ck_assert_ptr_nonnull(l->t[i]->data);
    ck_assert_ptr_nonnull(pf_storage_path(l->t[i]->storage));
  }
  for (int64_t i = 0; i < m->n_layers; i++) {
    ck_assert_int_eq(m->layers[i].source_index, i);
    ck_assert_int_eq(m->layers[i].gate_proj->shape[0], m->config.intermediate_sizes[i]);
  }
  ck_assert(pf_model_glu_compatible(m, NULL, 0));
  free(l);
  pf_model_release(m);
  pf_model_release(NULL);
  rm_parent(dir);
}
END_TEST

START_TEST(test_foreach_order) {
  char *dir = pf_test_synth("llama-tiny", 1, NULL);
  pf_model *m = load_ok(dir);
  names *l = list_tensors(m);
  ck_assert_int_eq(l->count, 1 + 4 * 9 + 2);
  const char *first[] = {"model.embed_tokens.weight",
                         "model.layers.0.self_attn.q_proj.weight",
                         "model.layers.0.self_attn.k_proj.weight",
                         "model.layers.0.self_attn.v_proj.weight",
                         "model.layers.0.self_attn.o_proj.weight",
                         "model.layers.0.mlp.gate_proj.weight",
                         "model.layers.0.mlp.up_proj.weight",
                         "model.layers.0.mlp.down_proj.weight",
                         "model.layers.0.input_layernorm.weight",
                         "model.layers.0.post_attention_layernorm.weight",
                         "model.layers.1.self_attn.q_proj.weight"};
  for (int i = 0; i < 11; i++)
    ck_assert_str_eq(l->n[i], first[i]);
  ck_assert_str_eq(l->n[37], "model.norm.weight");
  ck_assert_str_eq(l->n[38], "lm_head.weight");
  free(l);
  /* a non-zero callback result stops the walk and is returned */
  names *s = calloc(1, sizeof *s);
  s->stop_at = 3;
  ck_assert_int_eq(pf_model_foreach_tensor(m, collect, s), 42);
  ck_assert_int_eq(s->count, 3);
  free(s);
  pf_model_release(m);
  rm_parent(dir);

  dir = pf_test_synth("qwen2-tiny", 1, NULL);
  m = load_ok(dir);
  l = list_tensors(m);
  ck_assert_str_eq(l->n[1], "model.layers.0.self_attn.q_proj.weight");
  ck_assert_str_eq(l->n[2], "model.layers.0.self_attn.q_proj.bias");
  ck_assert_str_eq(l->n[6], "model.layers.0.self_attn.v_proj.bias");
  ck_assert_str_eq(l->n[7], "model.layers.0.self_attn.o_proj.weight");
  ck_assert_str_eq(l->n[8], "model.layers.0.mlp.gate_proj.weight");
  free(l);
  pf_model_release(m);
  rm_parent(dir);

  dir = pf_test_synth("qwen3-tiny", 1, NULL);
  m = load_ok(dir);
  l = list_tensors(m);
  ck_assert_str_eq(l->n[5], "model.layers.0.self_attn.q_norm.weight");
  ck_assert_str_eq(l->n[6], "model.layers.0.self_attn.k_norm.weight");
  ck_assert_str_eq(l->n[7], "model.layers.0.mlp.gate_proj.weight");
  free(l);
  pf_model_release(m);
  rm_parent(dir);
}
END_TEST

static int64_t numel_sum(const pf_model *m) {
  names *l = list_tensors(m);
  int64_t n = 0;
  for (int i = 0; i < l->count; i++)
    n += pf_tensor_numel(l->t[i]);
  free(l);
  return n;
}

START_TEST(test_param_count) {
  /* llama-tiny: H=64, I=176, L=4, heads=4, kv=2, head_dim=16, vocab=320, untied.
   *   embed 320*64 = 20480, lm_head 20480, final norm 64;
   *   per layer: q 64*64 + k 32*64 + v 32*64 + o 64*64 = 12288 (attention),
   *              gate+up+down 3*176*64 = 33792 (mlp), two norms 128 (other) = 46208;
   *   total = 2*20480 + 64 + 4*46208 = 225856. */
  char *dir = pf_test_synth("llama-tiny", 1, NULL);
  pf_model *m = load_ok(dir);
  ck_assert_int_eq(pf_model_param_count(m), 225856);
  ck_assert_int_eq(numel_sum(m), 225856);
  ck_assert_uint_eq(pf_model_weight_bytes(m), 225856u * 4);
  int64_t a, b, c;
  pf_layer_param_split(&m->layers[0], &a, &b, &c);
  ck_assert_int_eq(a, 12288);
  ck_assert_int_eq(b, 33792);
  ck_assert_int_eq(c, 128);
  pf_layer_param_split(&m->layers[0], NULL, NULL, NULL);
  pf_model_release(m);
  rm_parent(dir);
  /* llama-small (tied): H=128, I=352, L=6, heads=4, kv=2, head_dim=32, vocab=320.
   *   embed 40960 (counted once), final norm 128;
   *   per layer: 2*128*128 + 2*64*128 = 49152, 3*352*128 = 135168, norms 256 -> 184576;
   *   total = 40960 + 128 + 6*184576 = 1148544. */
  dir = pf_test_synth("llama-small", 1, NULL);
  m = load_ok(dir);
  ck_assert_ptr_null(m->lm_head);
  ck_assert_int_eq(pf_model_param_count(m), 1148544);
  ck_assert_int_eq(numel_sum(m), 1148544);
  pf_model_release(m);
  rm_parent(dir);
  /* qwen2-tiny: + q/k/v biases 64 + 32 + 32 per layer in attention */
  dir = pf_test_synth("qwen2-tiny", 1, NULL);
  m = load_ok(dir);
  pf_layer_param_split(&m->layers[2], &a, &b, &c);
  ck_assert_int_eq(a, 12288 + 128);
  ck_assert_int_eq(pf_model_param_count(m), 225856 + 4 * 128);
  pf_model_release(m);
  rm_parent(dir);
  /* qwen3-tiny: + q_norm/k_norm 16 + 16 per layer in attention */
  dir = pf_test_synth("qwen3-tiny", 1, NULL);
  m = load_ok(dir);
  pf_layer_param_split(&m->layers[2], &a, &b, &c);
  ck_assert_int_eq(a, 12288 + 32);
  ck_assert_int_eq(pf_model_param_count(m), 225856 + 4 * 32);
  pf_model_release(m);
  rm_parent(dir);
}
END_TEST

START_TEST(test_stories260K) {
  char *dir = pf_test_shared("models/stories260K", "stories260K model test");
  if (!dir) return;
  pf_model *m = load_ok(dir);
  ck_assert_str_eq(m->name, "stories260K");
  ck_assert_int_eq(m->n_layers, 5);
  ck_assert_ptr_null(m->lm_head); /* tied */
  ck_assert_int_eq(m->dtype, PF_DTYPE_F32);
  for (int i = 0; i < 5; i++)
    ck_assert_int_eq(m->layers[i].gate_proj->shape[0], 172);
  /* config: H=64, I=172, L=5, heads=8, kv=4, head_dim=8, vocab=512, tied.
   *   embed 512*64 = 32768; final norm 64;
   *   per layer: q 64*64 + k 32*64 + v 32*64 + o 64*64 = 12288, mlp 3*172*64 = 33024,
   *   norms 128 -> 45440; total = 32768 + 64 + 5*45440 = 260032. */
  ck_assert_int_eq(pf_model_param_count(m), 260032);
  ck_assert_int_eq(numel_sum(m), 260032);
  pf_err err = {0};
  ck_assert_int_eq(pf_model_check(m, &err), PF_OK);
  pf_model_release(m);
  free(dir);
  /* aidreams260K: H=64, I=172, L=4, heads=4, kv=4, head_dim=16, vocab=512, tied:
   *   32768 + 64 + 4*(4*64*64 + 3*172*64 + 128) = 32768 + 64 + 4*49536 = 230976. */
  dir = pf_test_shared("models/aidreams260K", "aidreams260K model test");
  if (!dir) return;
  m = load_ok(dir);
  ck_assert_int_eq(m->n_layers, 4);
  ck_assert_int_eq(pf_model_param_count(m), 230976);
  ck_assert_int_eq(numel_sum(m), 230976);
  pf_model_release(m);
  free(dir);
}
END_TEST

/* ---- load errors ---- */

START_TEST(test_load_errors) {
  char *dir = pf_test_synth("llama-tiny", 1, NULL);
  pf_model *m = load_ok(dir), *d = NULL;
  pf_err err = {0};
  char *bad;

  /* no folder there (a relative path names the current folder), a file instead */
  load_fails("no-such-model-here", PF_ERR_NOT_FOUND,
             "no-such-model-here: no such checkpoint folder (relative to the current folder /");
  ck_assert_int_eq(pf_model_load("/no-such-model-here", &d, &err), PF_ERR_NOT_FOUND);
  ck_assert_str_eq(err.msg, "/no-such-model-here: no such checkpoint folder");
  char *file = pf_path_join(dir, "config.json");
  load_fails(file, PF_ERR_INVALID, "config.json: expected a checkpoint folder");
  free(file);

  /* missing tensor */
  ck_assert_int_eq(pf_model_derive(m, &d, &err), PF_OK);
  ck_assert_int_eq(pf_model_set_tensor(d, "model.layers.1.mlp.up_proj.weight", NULL, &err), PF_OK);
  bad = write_raw(d, &m->config, NULL, NULL, 0);
  load_fails(bad, PF_ERR_NOT_FOUND,
             "tensor model.layers.1.mlp.up_proj.weight is missing (expected shape [176, 64])");
  rm_parent(bad);
  pf_model_release(d);

  /* wrong shape */
  ck_assert_int_eq(pf_model_derive(m, &d, &err), PF_OK);
  int64_t cols[32];
  for (int i = 0; i < 32; i++)
    cols[i] = i;
  pf_tensor *t = NULL;
  ck_assert_int_eq(pf_tensor_select_cols(m->layers[3].gate_proj, cols, 32, &t, &err), PF_OK);
  ck_assert_int_eq(pf_model_set_tensor(d, "model.layers.3.mlp.gate_proj.weight", t, &err), PF_OK);
  bad = write_raw(d, &m->config, NULL, NULL, 0);
  load_fails(bad, PF_ERR_FORMAT,
             "model.layers.3.mlp.gate_proj.weight: expected shape [176, 64], got [176, 32]");
  rm_parent(bad);
  pf_model_release(d);

  /* odd dtype */
  ck_assert_int_eq(pf_model_derive(m, &d, &err), PF_OK);
  int64_t shape[2] = {176, 64};
  ck_assert_int_eq(pf_tensor_new(PF_DTYPE_BF16, 2, shape, &t, &err), PF_OK);
  ck_assert_int_eq(pf_model_set_tensor(d, "model.layers.2.mlp.up_proj.weight", t, &err), PF_OK);
  bad = write_raw(d, &m->config, NULL, NULL, 0);
  load_fails(bad, PF_ERR_FORMAT,
             "model.layers.2.mlp.up_proj.weight: expected dtype F32 (like "
             "model.embed_tokens.weight), got BF16");
  rm_parent(bad);
  pf_model_release(d);

  /* unexpected tensors */
  pf_tensor *one = NULL;
  int64_t s1[1] = {4};
  ck_assert_int_eq(pf_tensor_new(PF_DTYPE_F32, 1, s1, &one, &err), PF_OK);
  const char *foo[] = {"foo"};
  bad = write_raw(m, &m->config, foo, &one, 1);
  load_fails(bad, PF_ERR_FORMAT, "unexpected tensor foo");
  rm_parent(bad);
  const char *l99[] = {"model.layers.99.mlp.up_proj.weight"};
  bad = write_raw(m, &m->config, l99, &one, 1);
  load_fails(bad, PF_ERR_FORMAT, "unexpected tensor model.layers.99.mlp.up_proj.weight");
  rm_parent(bad);
  const char *bias[] = {"model.layers.0.self_attn.q_proj.bias"}; /* no attention_bias */
  bad = write_raw(m, &m->config, bias, &one, 1);
  load_fails(bad, PF_ERR_FORMAT, "unexpected tensor model.layers.0.self_attn.q_proj.bias");
  rm_parent(bad);
  /* rotary buffers are tolerated */
  const char *rot[] = {"model.layers.0.self_attn.rotary_emb.inv_freq"};
  bad = write_raw(m, &m->config, rot, &one, 1);
  pf_model *ok = load_ok(bad);
  ck_assert_int_eq(pf_model_param_count(ok), 225856);
  pf_model_release(ok);
  rm_parent(bad);
  pf_tensor_release(one);

  /* lm_head missing while untied */
  ck_assert_int_eq(pf_model_derive(m, &d, &err), PF_OK);
  ck_assert_int_eq(pf_model_set_tensor(d, "lm_head.weight", NULL, &err), PF_OK);
  bad = write_raw(d, &m->config, NULL, NULL, 0);
  load_fails(bad, PF_ERR_NOT_FOUND, "lm_head.weight missing and tie_word_embeddings is false");
  rm_parent(bad);
  pf_model_release(d);

  /* missing config.json / missing weights */
  char *empty = pf_test_tmpdir("empty");
  load_fails(empty, PF_ERR_NOT_FOUND, "config.json");
  char *cfg = pf_path_join(empty, "config.json");
  char *json = pf_config_to_json(&m->config);
  pf_test_write(cfg, json);
  load_fails(empty, PF_ERR_NOT_FOUND, "model.safetensors");
  free(json);
  free(cfg);
  pf_test_rmtree(empty);
  free(empty);

  pf_model_release(m);
  rm_parent(dir);
}
END_TEST

START_TEST(test_nonuniform_widths) {
  char *dir = pf_test_synth("llama-tiny", 1, NULL);
  pf_model *m = load_ok(dir);
  pf_model *d = narrow_layer1(m);
  pf_err err = {0};
  /* config.json without "intermediate_sizes": each layer's width is read off its tensors,
   * whether intermediate_size is the widest layer's or, as OptiPFair writes after pruning
   * selected layers, the last pruned layer's */
  for (int optipfair = 0; optipfair < 3; optipfair++) {
    int64_t keep = m->config.intermediate_size;
    if (optipfair) { /* 2: a width no layer has (a hand-edited config) loads with a warning */
      const int64_t said = optipfair == 1 ? 100 : 150;
      m->config.intermediate_size = said;
      for (int64_t i = 0; i < m->config.num_hidden_layers; i++)
        m->config.intermediate_sizes[i] = said;
    }
    char *raw = write_raw(d, &m->config, NULL, NULL, 0);
    m->config.intermediate_size = keep;
    for (int64_t i = 0; i < m->config.num_hidden_layers; i++)
      m->config.intermediate_sizes[i] = keep;
    pf_model *r = load_ok(raw);
    ck_assert_int_eq(r->config.intermediate_size, 176); /* the largest, as pfrun saves it */
    for (int64_t i = 0; i < r->config.num_hidden_layers; i++)
      ck_assert_int_eq(r->config.intermediate_sizes[i], i == 1 ? 100 : 176);
    ck_assert_int_eq(r->layers[1].down_proj->shape[1], 100);
    ck_assert_int_eq(pf_model_check(r, &err), PF_OK);
    if (optipfair == 2)
      ck_assert_str_eq(r->config.warning,
                       "config.json: intermediate_size is 150, but no layer's MLP has that width "
                       "(the tensors give 100..176); the tensors' widths are used");
    else
      ck_assert_str_eq(r->config.warning, "");
    pf_model_release(r);
    rm_parent(raw);
  }
  /* the width read off gate_proj must fit the layer's other tensors */
  pf_model *g = NULL;
  ck_assert_int_eq(pf_model_derive(m, &g, &err), PF_OK);
  pf_tensor_retain(d->layers[1].gate_proj);
  ck_assert_int_eq(
      pf_model_set_tensor(g, "model.layers.1.mlp.gate_proj.weight", d->layers[1].gate_proj, &err),
      PF_OK);
  char *bad = write_raw(g, &m->config, NULL, NULL, 0);
  load_fails(bad, PF_ERR_FORMAT,
             "model.layers.1.mlp.up_proj.weight: expected shape [100, 64], got [176, 64] "
             "(width 100 read off model.layers.1.mlp.gate_proj.weight; config.json has no "
             "\"intermediate_sizes\" list)");
  rm_parent(bad);
  pf_model_release(g);
  /* with intermediate_sizes the shapes are accepted */
  d->config.intermediate_sizes[1] = 100;
  char *good = write_raw(d, &d->config, NULL, NULL, 0);
  pf_model *r = load_ok(good);
  ck_assert_int_eq(r->config.intermediate_sizes[1], 100);
  ck_assert_int_eq(r->config.intermediate_size, 176);
  ck_assert_int_eq(r->layers[1].down_proj->shape[1], 100);
  ck_assert_int_eq(pf_model_check(r, &err), PF_OK);
  pf_model_release(r);
  rm_parent(good);
  /* intermediate_sizes that disagree with the tensors */
  d->config.intermediate_sizes[1] = 120;
  bad = write_raw(d, &d->config, NULL, NULL, 0);
  load_fails(bad, PF_ERR_FORMAT,
             "model.layers.1.mlp.gate_proj.weight: expected shape [120, 64], got [100, 64] "
             "(config intermediate_sizes[1] = 120)");
  rm_parent(bad);
  pf_model_release(d);
  pf_model_release(m);
  rm_parent(dir);
}
END_TEST

/* ---- derive / remove / check ---- */

START_TEST(test_derive_shares) {
  char *dir = pf_test_synth("llama-tiny", 1, NULL);
  pf_model *m = load_ok(dir), *d = NULL;
  pf_err err = {0};
  int rc = m->layers[2].q_proj->refcount;
  ck_assert_int_eq(pf_model_derive(m, &d, &err), PF_OK);
  ck_assert_int_eq(d->refcount, 1);
  ck_assert_ptr_eq(d->embed_tokens, m->embed_tokens);
  ck_assert_ptr_eq(d->lm_head, m->lm_head);
  ck_assert_ptr_eq(d->norm, m->norm);
  for (int i = 0; i < 4; i++) {
    ck_assert_ptr_eq(d->layers[i].q_proj, m->layers[i].q_proj);
    ck_assert_ptr_eq(d->layers[i].down_proj, m->layers[i].down_proj);
    ck_assert_ptr_eq(d->layers[i].post_attention_layernorm, m->layers[i].post_attention_layernorm);
  }
  ck_assert_int_eq(m->layers[2].q_proj->refcount, rc + 1);
  ck_assert_ptr_ne(d->config.raw, m->config.raw);
  ck_assert_ptr_ne(d->layers, m->layers);
  ck_assert_str_eq(d->source_dir, m->source_dir);

  /* removing a layer in the child leaves the parent alone */
  const pf_tensor *l2q = m->layers[2].q_proj;
  ck_assert_int_eq(pf_model_remove_layer(d, 1, &err), PF_OK);
  ck_assert_int_eq(d->n_layers, 3);
  ck_assert_int_eq(d->config.num_hidden_layers, 3);
  ck_assert_int_eq(d->layers[1].source_index, 2);
  ck_assert_ptr_eq(d->layers[1].q_proj, l2q);
  ck_assert_int_eq(m->n_layers, 4);
  ck_assert_int_eq(m->config.num_hidden_layers, 4);
  ck_assert_int_eq(pf_model_check(d, &err), PF_OK);
  ck_assert_int_eq(pf_model_param_count(d), 225856 - 46208);
  ck_assert_int_eq(pf_model_remove_layer(d, 3, &err), PF_ERR_INVALID);
  pf_assert_err(err, "expected an index in [0, 3)");
  ck_assert_int_eq(pf_model_remove_layer(d, -1, &err), PF_ERR_INVALID);

  /* the child outlives its parent */
  float first = ((const float *)m->layers[3].gate_proj->data)[0];
  pf_model_release(m);
  ck_assert_int_eq(l2q->refcount, 1);
  ck_assert(((const float *)d->layers[2].gate_proj->data)[0] == first);
  pf_model_retain(d);
  ck_assert_int_eq(d->refcount, 2);
  pf_model_release(d);
  pf_model_release(d);
  rm_parent(dir);
}
END_TEST

START_TEST(test_remove_layer_qwen3) {
  char *dir = pf_test_synth("qwen3-tiny", 1, NULL);
  pf_model *m = load_ok(dir), *d = NULL;
  pf_err err = {0};
  ck_assert_int_eq(pf_model_derive(m, &d, &err), PF_OK);
  for (int i = 0; i < 3; i++)
    ck_assert_int_eq(pf_model_remove_layer(d, 0, &err), PF_OK);
  ck_assert_int_eq(d->n_layers, 1);
  ck_assert_int_eq(d->layers[0].source_index, 3);
  ck_assert_ptr_eq(d->layers[0].k_norm, m->layers[3].k_norm);
  ck_assert_str_eq(d->config.layer_types[0], "full_attention");
  ck_assert_int_eq(pf_model_remove_layer(d, 0, &err), PF_ERR_INVALID); /* the last layer */
  ck_assert_int_eq(d->n_layers, 1);
  ck_assert_int_eq(pf_model_check(d, &err), PF_OK);
  pf_model_release(d);
  pf_model_release(m);
  rm_parent(dir);
}
END_TEST

START_TEST(test_check_errors) {
  char *dir = pf_test_synth("llama-tiny", 1, NULL);
  pf_model *m = load_ok(dir), *d = NULL;
  pf_err err = {0};
  ck_assert_int_eq(pf_model_derive(m, &d, &err), PF_OK);
  d->config.vocab_size = 321;
  ck_assert_int_eq(pf_model_check(d, &err), PF_ERR_FORMAT);
  pf_assert_err(err, "model.embed_tokens.weight: expected shape [321, 64]");
  d->config.vocab_size = 320;
  d->config.num_key_value_heads = 3;
  ck_assert_int_eq(pf_model_check(d, &err), PF_ERR_FORMAT);
  pf_assert_err(err, "num_attention_heads 4 is not divisible by num_key_value_heads 3");
  d->config.num_key_value_heads = 2;
  d->config.num_attention_heads = 2; /* q_proj has 4*16 rows */
  ck_assert_int_eq(pf_model_check(d, &err), PF_ERR_FORMAT);
  pf_assert_err(err, "model.layers.0.self_attn.q_proj.weight: expected shape [32, 64]");
  d->config.num_attention_heads = 4;
  d->config.intermediate_sizes[2] = 170;
  ck_assert_int_eq(pf_model_check(d, &err), PF_ERR_FORMAT);
  pf_assert_err(err, "model.layers.2.mlp.gate_proj.weight: expected shape [170, 64]");
  d->config.intermediate_sizes[2] = 176;
  d->n_layers = 3; /* pretend a layer vanished without the config knowing */
  ck_assert_int_eq(pf_model_check(d, &err), PF_ERR_FORMAT);
  pf_assert_err(err, "model has 3 layers but config num_hidden_layers is 4");
  d->n_layers = 4;
  ck_assert_int_eq(pf_model_check(d, &err), PF_OK);
  /* glu: a down_proj that does not chain */
  int64_t idx[10] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  pf_tensor *t;
  ck_assert_int_eq(pf_tensor_select_cols(m->layers[0].down_proj, idx, 10, &t, &err), PF_OK);
  ck_assert_int_eq(pf_model_set_tensor(d, "model.layers.0.mlp.down_proj.weight", t, &err), PF_OK);
  char why[160] = "";
  ck_assert(!pf_model_glu_compatible(d, why, sizeof why));
  ck_assert_ptr_nonnull(strstr(why, "down [64, 10]"));
  ck_assert_int_eq(pf_model_set_tensor(d, "model.layers.0.mlp.gate_proj.weight", NULL, &err),
                   PF_OK);
  ck_assert(!pf_model_glu_compatible(d, why, sizeof why));
  ck_assert_ptr_nonnull(strstr(why, "not a GLU MLP"));
  /* set_tensor on a name that is no slot */
  ck_assert_int_eq(pf_model_set_tensor(d, "model.layers.9.mlp.up_proj.weight", NULL, &err),
                   PF_ERR_NOT_FOUND);
  ck_assert_int_eq(pf_model_set_tensor(d, "foo", NULL, &err), PF_ERR_NOT_FOUND);
  pf_assert_err(err, "foo: not a tensor of a 4-layer llama model");
  pf_model_release(d);
  pf_model_release(m);
  rm_parent(dir);
}
END_TEST

START_TEST(test_plan) {
  char *dir = pf_test_synth("qwen2-tiny", 1, NULL);
  pf_model *m = load_ok(dir), *p = NULL;
  pf_err err = {0};
  ck_assert_int_eq(pf_model_plan(&m->config, PF_DTYPE_BF16, &p, &err), PF_OK);
  names *a = list_tensors(m), *b = list_tensors(p);
  ck_assert_int_eq(a->count, b->count);
  for (int i = 0; i < a->count; i++) {
    ck_assert_str_eq(a->n[i], b->n[i]);
    ck_assert_ptr_null(b->t[i]->data);
    ck_assert_int_eq(b->t[i]->dtype, PF_DTYPE_BF16);
    ck_assert_int_eq(pf_tensor_numel(a->t[i]), pf_tensor_numel(b->t[i]));
  }
  ck_assert_int_eq(pf_model_param_count(p), pf_model_param_count(m));
  ck_assert_int_eq(pf_model_check(p, &err), PF_OK);
  free(a);
  free(b);
  pf_model_release(p);
  pf_model_release(m);
  rm_parent(dir);
}
END_TEST

static Suite *make_suite(void) {
  Suite *s = suite_create("model");
  TCase *tc = tcase_create("load");
  tcase_set_timeout(tc, 120);
  tcase_add_loop_test(tc, test_load_presets, 0, 5);
  tcase_add_test(tc, test_foreach_order);
  tcase_add_test(tc, test_param_count);
  tcase_add_test(tc, test_stories260K);
  tcase_add_test(tc, test_load_errors);
  tcase_add_test(tc, test_nonuniform_widths);
  suite_add_tcase(s, tc);
  tc = tcase_create("derive");
  tcase_add_test(tc, test_derive_shares);
  tcase_add_test(tc, test_remove_layer_qwen3);
  tcase_add_test(tc, test_check_errors);
  tcase_add_test(tc, test_plan);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return pf_test_main(make_suite);
}
