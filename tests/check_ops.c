/* check_ops.c — the ops end to end through pf_op_run on synthetic checkpoints:
 * load -> prune_width -> save -> load round trips (F32, BF16, F16), depth
 * pruning sharing tensors, dry runs that read and write nothing, score,
 * analyze (numbers worked out by hand for llama-tiny), and op error paths.
 */
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "fsutil.h"
#include "model.h"
#include "op.h"
#include "opdata.h"
#include "safetensors.h"
#include "tokenizer.h"
#include "testutil.h"

static char *tmp_root;

static void setup(void) {
  tmp_root = pf_test_tmpdir("ops");
  char *cache = pf_path_join(tmp_root, "cache");
  setenv("PFRUN_CACHE", cache, 1);
  free(cache);
}

static void teardown(void) {
  pf_test_rmtree(tmp_root);
  free(tmp_root);
}

/* Run an op; the params map is consumed. */
static pf_value *run_ok(const char *op, pf_value *params, const pf_ctx *ctx) {
  pf_value *out = NULL;
  pf_err err = {0};
  pf_status st = pf_op_run(op, params, &out, ctx, &err);
  pf_value_release(params);
  ck_assert_msg(st == PF_OK, "%s: %s", op, err.msg);
  return out;
}

static pf_status run_err(const char *op, pf_value *params, pf_err *err) {
  pf_value *out = NULL;
  pf_status st = pf_op_run(op, params, &out, NULL, err);
  pf_value_release(params);
  pf_value_release(out);
  return st;
}

static pf_value *params_model(pf_model *m) {
  pf_value *p = pf_value_map();
  pf_map_set(p, "model", pf_value_model(m));
  return p;
}

static pf_value *load(const char *path) {
  pf_value *p = pf_value_map();
  pf_map_set_str(p, "path", path);
  return run_ok("load", p, NULL);
}

static pf_value *load_synth(const char *preset, const char *dtype) {
  char *dir = pf_test_synth(preset, 11, dtype);
  pf_value *r = load(dir);
  char *slash = strrchr(dir, '/');
  *slash = '\0';
  pf_test_rmtree(dir); /* the model is mmapped; the files may go */
  free(dir);
  return r;
}

/* Every tensor of a and b has the same name, dtype, shape and bytes. */
typedef struct tlist {
  const char *names[256];
  const pf_tensor *t[256];
  int n;
} tlist;

static int collect(void *ud, const char *name, const pf_tensor *t) {
  tlist *l = ud;
  ck_assert_int_lt(l->n, 256);
  l->names[l->n] = strdup(name);
  l->t[l->n++] = t;
  return 0;
}

static void assert_same_tensors(const pf_model *a, const pf_model *b) {
  tlist x = {0}, y = {0};
  pf_model_foreach_tensor(a, collect, &x);
  pf_model_foreach_tensor(b, collect, &y);
  ck_assert_int_eq(x.n, y.n);
  for (int i = 0; i < x.n; i++) {
    ck_assert_str_eq(x.names[i], y.names[i]);
    ck_assert_int_eq(x.t[i]->dtype, y.t[i]->dtype);
    ck_assert_int_eq(x.t[i]->ndim, y.t[i]->ndim);
    ck_assert(!memcmp(x.t[i]->shape, y.t[i]->shape, sizeof x.t[i]->shape));
    ck_assert_msg(!memcmp(pf_test_bytes(x.t[i]), pf_test_bytes(y.t[i]), x.t[i]->nbytes), "%s differs", x.names[i]);
    free((char *)x.names[i]);
    free((char *)y.names[i]);
  }
}

static void round_trip(const char *dtype, pf_dtype want) {
  pf_value *base = load_synth("llama-tiny", dtype);
  pf_model *m = pf_map_model(base, "model");
  ck_assert_int_eq(m->dtype, want);
  pf_value *p = params_model(m);
  pf_map_set_str(p, "method", "PON");
  pf_map_set_num(p, "expansion_rate", 200);
  pf_map_set_int(p, "expansion_divisor", 32);
  pf_map_set_str(p, "layer_indices", "0,2");
  pf_value *pruned = run_ok("prune_width", p, NULL);
  pf_model *pm = pf_map_model(pruned, "model");
  ck_assert_int_eq(pm->layers[0].gate_proj->shape[0], 128); /* 200 % of 64, floor to 32 */
  ck_assert_int_eq(pm->layers[1].gate_proj->shape[0], 176);
  ck_assert_int_eq(pf_map_int(pruned, "pruned_layers", 0), 2);
  char *out = pf_path_join(tmp_root, dtype ? dtype : "f32");
  p = params_model(pm);
  pf_map_set_str(p, "path", out);
  pf_value *saved = run_ok("save", p, NULL);
  ck_assert_str_eq(pf_map_str(saved, "dtype", ""), pf_dtype_torch_name(want));
  pf_value *back = load(out);
  pf_model *bm = pf_map_model(back, "model");
  ck_assert_int_eq(bm->dtype, want);
  ck_assert_int_eq(bm->config.intermediate_sizes[0], 128);
  ck_assert_int_eq(bm->config.intermediate_sizes[1], 176);
  ck_assert_int_eq(bm->config.intermediate_size, 176);
  assert_same_tensors(pm, bm);
  free(out);
  pf_value_release(back);
  pf_value_release(saved);
  pf_value_release(pruned);
  pf_value_release(base);
}

START_TEST(test_round_trip_f32) {
  round_trip(NULL, PF_DTYPE_F32);
}
END_TEST
START_TEST(test_round_trip_bf16) {
  round_trip("bf16", PF_DTYPE_BF16);
}
END_TEST
START_TEST(test_round_trip_f16) {
  round_trip("f16", PF_DTYPE_F16);
}
END_TEST

START_TEST(test_load_synthetic_spec) {
  pf_value *r = load("synthetic:llama-tiny@5:bf16");
  ck_assert_str_eq(pf_map_str(r, "name", ""), "synthetic:llama-tiny@5:bf16");
  ck_assert_int_eq(pf_map_int(r, "num_hidden_layers", 0), 4);
  ck_assert_int_eq(pf_map_int(r, "hidden_size", 0), 64);
  ck_assert_int_eq(pf_map_int(r, "intermediate_size", 0), 176);
  ck_assert_str_eq(pf_map_str(r, "dtype", ""), "bfloat16");
  ck_assert_int_eq(pf_map_int(r, "parameters", 0), 225856);
  char *json = pf_value_to_json_text(r); /* the model shows as its summary */
  ck_assert_msg(strstr(json, "\"model\": {\n    \"model\": \"synthetic:llama-tiny@5:bf16\""), "%s",
                json);
  free(json);
  pf_value_release(r);
}
END_TEST

START_TEST(test_depth_shares_and_importance) {
  pf_value *base = load_synth("llama-tiny", NULL);
  pf_model *m = pf_map_model(base, "model");
  pf_value *p = params_model(m), *imp = pf_value_map();
  pf_map_set_num(imp, "0", 0.9);
  pf_map_set_num(imp, "1", 0.05);
  pf_map_set_num(imp, "2", 0.4);
  pf_map_set_num(imp, "3", 0.05);
  pf_map_set(p, "importance", imp);
  pf_map_set_int(p, "num_layers_to_remove", 1);
  pf_value *r = run_ok("prune-depth", p, NULL);
  pf_model *pm = pf_map_model(r, "model");
  const pf_value *rl = pf_map_get(r, "removed_layers");
  ck_assert_int_eq(rl->u.list.items[0]->u.i, 3); /* tie 1 vs 3: the higher index */
  ck_assert_int_eq(pm->n_layers, 3);
  for (int i = 0; i < 3; i++) {
    ck_assert_ptr_eq(pm->layers[i].q_proj, m->layers[i].q_proj);
    ck_assert_ptr_eq(pm->layers[i].down_proj, m->layers[i].down_proj);
  }
  ck_assert_ptr_eq(pm->embed_tokens, m->embed_tokens);
  ck_assert_int_eq(pf_map_int(r, "layers_removed", 0), 1);
  ck_assert(pf_map_num(r, "layer_reduction_percentage", 0) == 25.0);
  pf_value_release(r);
  p = params_model(m);
  pf_map_set_str(p, "layer_indices", "1,3");
  pf_map_set_int(p, "num_layers_to_remove", 1);
  pf_err err = {0};
  ck_assert_int_eq(run_err("prune_depth", p, &err), PF_ERR_INVALID);
  ck_assert_str_eq(err.msg, "prune_depth: Parameters num_layers_to_remove, layer_indices, and "
                            "depth_pruning_percentage are mutually exclusive");
  pf_value_release(base);
}
END_TEST

static int largest_cb(void *ud, const char *name, const pf_tensor *t) {
  (void)name;
  uint64_t *m = ud;
  if (pf_tensor_numel(t) * pf_dtype_size(t->dtype) > *m)
    *m = pf_tensor_numel(t) * pf_dtype_size(t->dtype);
  return 0;
}

START_TEST(test_dry_run) {
  char *src = pf_test_synth("llama-tiny", 11, NULL); /* kept: the plan compares with it */
  pf_value *base = load(src);
  pf_model *m = pf_map_model(base, "model");
  pf_ctx dry = {.dry_run = 1};
  pf_value *p = params_model(m);
  pf_map_set_num(p, "pruning_percentage", 25);
  pf_map_set_str(p, "layer_indices", "1");
  pf_value *r = run_ok("prune_width", p, &dry);
  pf_model *pm = pf_map_model(r, "model");
  ck_assert_ptr_null(pf_test_bytes(pm->layers[1].gate_proj));
  ck_assert_int_eq(pm->layers[1].gate_proj->shape[0], 132); /* 176 - int(44.0) */
  const pf_value *e = pf_map_get(r, "layers")->u.list.items[0];
  ck_assert_int_eq(pf_map_get(e, "kept_indices")->type, PF_V_NULL);
  char *out = pf_path_join(tmp_root, "dry-out");
  p = params_model(pm);
  pf_map_set_str(p, "path", out);
  pf_map_set_str(p, "dtype", "bfloat16");
  pf_value *s = run_ok("save", p, &dry);
  ck_assert(!pf_path_exists(out)); /* nothing written */
  const pf_value *plan = pf_map_get(s, "plan");
  const pf_value *shapes = pf_map_get(plan, "output_shapes");
  ck_assert_uint_eq(shapes->u.map.len, 3); /* only layer 1's gate, up, down changed */
  const pf_value *g = pf_map_get(shapes, "model.layers.1.mlp.gate_proj.weight");
  ck_assert_int_eq(g->u.list.items[0]->u.i, 132);
  ck_assert_int_eq(g->u.list.items[1]->u.i, 64);
  const pf_value *d = pf_map_get(shapes, "model.layers.1.mlp.down_proj.weight");
  ck_assert_int_eq(d->u.list.items[1]->u.i, 132);
  ck_assert_int_eq(pf_map_int(plan, "parameters_before", 0), 225856);
  ck_assert_int_eq(pf_map_int(plan, "parameters_after", 0), 225856 - 44 * 3 * 64);
  const pf_value *diff = pf_map_get(plan, "config_diff");
  const pf_value *td = pf_map_get(diff, "torch_dtype");
  ck_assert_ptr_nonnull(td);
  ck_assert_str_eq(td->u.list.items[1]->u.s, "bfloat16");
  const pf_value *is = pf_map_get(diff, "intermediate_sizes"); /* widths no longer uniform */
  ck_assert_ptr_nonnull(is);
  ck_assert_int_eq(is->u.list.items[0]->type, PF_V_NULL);
  ck_assert_int_eq(is->u.list.items[1]->u.list.items[1]->u.i, 132);
  ck_assert_ptr_null(pf_map_get(diff, "intermediate_size")); /* still 176 (the largest) */
  /* converting and gathering: the writer's buffers, not a tensor or the model; every
   * tensor is converted, so the buffers are sized by the largest (float32 here) */
  uint64_t largest = 0;
  pf_model_foreach_tensor(pm, largest_cb, &largest);
  ck_assert_uint_gt(largest, 4096);
  const int64_t bufs = (int64_t)pf_st_write_buffer_bytes(1, 1, largest);
  ck_assert_int_ge(bufs, 2 * (int64_t)largest); /* a gather and a conversion chunk */
  ck_assert_int_lt(bufs, (int64_t)pf_st_write_buffer_bytes(1, 1, UINT64_MAX));
  ck_assert_int_ge(pf_map_int(plan, "peak_memory_bytes", 0), bufs);
  ck_assert_int_lt(pf_map_int(plan, "peak_memory_bytes", 0), bufs + 65536);
  /* score in a dry run reads nothing */
  p = params_model(pm);
  pf_value *sc = run_ok("score", p, &dry);
  ck_assert_int_eq(pf_map_get(pf_map_get(sc, "scores"), "1")->type, PF_V_NULL);
  free(out);
  pf_value_release(sc);
  pf_value_release(s);
  pf_value_release(r);
  pf_value_release(base);
  *strrchr(src, '/') = '\0';
  pf_test_rmtree(src);
  free(src);
}
END_TEST

/* Without a readable source checkpoint the plan lists the tensors pruning made. */
START_TEST(test_dry_run_without_source) {
  pf_value *base = load_synth("llama-tiny", NULL); /* its folder is already gone */
  pf_ctx dry = {.dry_run = 1};
  pf_value *p = params_model(pf_map_model(base, "model"));
  pf_map_set_num(p, "pruning_percentage", 25);
  pf_map_set_str(p, "layer_indices", "2");
  pf_value *r = run_ok("prune_width", p, &dry);
  p = params_model(pf_map_model(r, "model"));
  char *out = pf_path_join(tmp_root, "dry-out2");
  pf_map_set_str(p, "path", out);
  pf_value *s = run_ok("save", p, &dry);
  const pf_value *plan = pf_map_get(s, "plan");
  ck_assert_uint_eq(pf_map_get(plan, "output_shapes")->u.map.len, 3);
  ck_assert_ptr_nonnull(
      pf_map_get(pf_map_get(plan, "output_shapes"), "model.layers.2.mlp.up_proj.weight"));
  ck_assert_int_eq(pf_map_get(plan, "parameters_before")->type, PF_V_NULL);
  ck_assert(!pf_path_exists(out));
  free(out);
  pf_value_release(s);
  pf_value_release(r);
  pf_value_release(base);
}
END_TEST

/* evaluate's `compare` must share the model's vocabulary: the text is
 * tokenized once and fed to both. Checked before anything runs, so a dry run
 * (recipe --dry-run) refuses it too; before, only the real run did. */
START_TEST(test_evaluate_compare_vocab) {
  pf_value *base = load_synth("llama-tiny", NULL);
  pf_model *m = pf_map_model(base, "model"), *other = NULL;
  pf_err err = {0};
  ck_assert_int_eq(pf_model_derive(m, &other, &err), PF_OK);
  other->config.vocab_size = 512; /* as another tokenizer's model would have */
  char *data = pf_path_join(tmp_root, "eval.txt");
  pf_test_write(data, "The cat sat on the mat.\n\nA dog ran.\n");
  pf_ctx dry = {.dry_run = 1};
  for (int i = 0; i < 2; i++) {
    pf_value *p = params_model(m), *out = NULL;
    pf_map_set(p, "compare", pf_value_model(other));
    pf_map_set_str(p, i ? "prompt" : "data", i ? "Hello" : data);
    ck_assert_int_eq(pf_op_run("evaluate", p, &out, &dry, &err), PF_ERR_INVALID);
    pf_assert_err(err, "evaluate: compare: vocabularies differ (512 vs 320 rows)");
    ck_assert_ptr_null(out);
    pf_value_release(p);
  }
  pf_model_release(other);
  free(data);
  pf_value_release(base);
}
END_TEST

START_TEST(test_score_op) {
  pf_value *base = load_synth("llama-tiny", NULL);
  pf_model *m = pf_map_model(base, "model");
  pf_value *p = params_model(m);
  pf_map_set_str(p, "method", "L2");
  pf_map_set_str(p, "layer_indices", "2,0");
  pf_value *r = run_ok("score", p, NULL);
  ck_assert_str_eq(pf_map_str(r, "method", ""), "L2");
  const pf_value *sc = pf_map_get(r, "scores");
  ck_assert_uint_eq(sc->u.map.len, 2);
  ck_assert_str_eq(sc->u.map.keys[0], "2"); /* in the order asked */
  ck_assert_uint_eq(pf_map_get(sc, "0")->u.list.len, 176);
  for (size_t i = 0; i < 176; i++)
    ck_assert(pf_map_get(sc, "0")->u.list.items[i]->u.n > 0);
  pf_value_release(r);
  pf_err err = {0};
  p = params_model(m);
  pf_map_set_str(p, "layer_indices", "0,9");
  ck_assert_int_eq(run_err("score", p, &err), PF_ERR_INVALID);
  ck_assert_str_eq(err.msg, "score: Invalid layer indices: [9]. Model has 4 layers (valid "
                            "indices: 0-3)");
  p = params_model(m);
  pf_map_set_str(p, "method", "FOO");
  ck_assert_int_eq(run_err("score", p, &err), PF_ERR_INVALID);
  pf_assert_err(err, "score: parameter 'method': expected one of MAW|PPM|VOW|PON|L2");
  pf_value_release(base);
}
END_TEST

/* rank_dtype (the CLI's --dtype): an F32 model ranked as bfloat16 keeps what the same
 * model converted to bfloat16 keeps, and its saved bfloat16 checkpoint has the same bytes,
 * as OptiPFair, which loads with torch_dtype, gives (before: ranked on the F32 values). */
START_TEST(test_prune_width_rank_dtype) {
  pf_value *f32 = load_synth("llama-small", NULL);
  pf_model *m = pf_map_model(f32, "model");
  char *dir = pf_path_join(tmp_root, "rank"), *bf = pf_path_join(dir, "bf16");
  char *a = pf_path_join(dir, "a"), *b = pf_path_join(dir, "b");
  pf_value *p = params_model(m);
  pf_map_set_str(p, "path", bf);
  pf_map_set_str(p, "dtype", "bfloat16");
  pf_value_release(run_ok("save", p, NULL));
  pf_value *bfm = load(bf);
  int differs = 0; /* whether ranking the F32 values would have kept other neurons */
  for (int pct = 10; pct <= 90; pct += 10) {
    const char *method = pct % 20 ? "MAW" : "VOW";
    pf_value *q = params_model(m), *r = params_model(pf_map_model(bfm, "model"));
    pf_value *o = params_model(m);
    pf_map_set_num(q, "pruning_percentage", pct);
    pf_map_set_num(r, "pruning_percentage", pct);
    pf_map_set_num(o, "pruning_percentage", pct);
    pf_map_set_str(q, "method", method);
    pf_map_set_str(r, "method", method);
    pf_map_set_str(o, "method", method);
    pf_map_set_str(q, "rank_dtype", "bfloat16");
    pf_value *rq = run_ok("prune_width", q, NULL), *rr = run_ok("prune_width", r, NULL);
    pf_value *ro = run_ok("prune_width", o, NULL);
    char *kq = pf_value_to_json_text(pf_map_get(rq, "layers"));
    char *kr = pf_value_to_json_text(pf_map_get(rr, "layers"));
    char *ko = pf_value_to_json_text(pf_map_get(ro, "layers"));
    ck_assert_msg(strcmp(kq, kr) == 0, "%s %d%%: ranked as bfloat16 keeps other neurons", method,
                  pct);
    differs |= strcmp(ko, kr) != 0;
    if (pct == 50) { /* the checkpoints: the same bytes */
      pf_value *sa = params_model(pf_map_model(rq, "model")),
               *sb = params_model(pf_map_model(rr, "model"));
      pf_map_set_str(sa, "path", a);
      pf_map_set_str(sa, "dtype", "bfloat16");
      pf_map_set_str(sb, "path", b);
      pf_value_release(run_ok("save", sa, NULL));
      pf_value_release(run_ok("save", sb, NULL));
      char *fa = pf_path_join(a, "model.safetensors"), *fb = pf_path_join(b, "model.safetensors");
      size_t la = 0, lb = 0;
      char *ta = pf_test_read(fa, &la), *tb = pf_test_read(fb, &lb);
      ck_assert(la == lb && memcmp(ta, tb, la) == 0);
      free(ta), free(tb), free(fa), free(fb);
    }
    free(kq), free(kr), free(ko);
    pf_value_release(rq), pf_value_release(rr), pf_value_release(ro);
  }
  ck_assert_msg(differs, "the F32 and bfloat16 rankings never differed: the test shows nothing");
  /* head pruning (o_proj norms) too: the same kept heads as the converted model */
  for (int pct = 50; pct <= 50; pct += 25) { /* llama-small: 2 key/value heads */
    pf_value *q = params_model(m), *r = params_model(pf_map_model(bfm, "model"));
    pf_map_set_num(q, "pruning_percentage", pct);
    pf_map_set_num(r, "pruning_percentage", pct);
    pf_map_set_str(q, "rank_dtype", "bfloat16");
    pf_value *rq = run_ok("prune_heads", q, NULL), *rr = run_ok("prune_heads", r, NULL);
    char *kq = pf_value_to_json_text(pf_map_get(rq, "layers"));
    char *kr = pf_value_to_json_text(pf_map_get(rr, "layers"));
    ck_assert_msg(kq && kr && strcmp(kq, kr) == 0, "heads %d%%: %s vs %s", pct, kq, kr);
    free(kq), free(kr);
    pf_value_release(rq), pf_value_release(rr);
  }
  pf_value_release(bfm);
  pf_value_release(f32);
  free(dir), free(bf), free(a), free(b);
}
END_TEST

START_TEST(test_prune_width_op_rules) {
  pf_value *base = load_synth("llama-tiny", NULL);
  pf_model *m = pf_map_model(base, "model");
  pf_err err = {0};
  pf_value *p = params_model(m);
  pf_map_set_num(p, "pruning_percentage", 20);
  pf_map_set_num(p, "expansion_rate", 150);
  pf_value *r = NULL;
  ck_assert_int_eq(run_err("prune_width", p, &err), PF_ERR_INVALID);
  ck_assert_str_eq(err.msg, "prune_width: pruning_percentage and expansion_rate are mutually "
                            "exclusive. Provide only one.");
  /* options that do nothing without what they modify are refused, not ignored (before: a
   * sweep over reconstruct_damping without reconstruct gave identical models) */
  const char *needs[][3] = {{"prune_width", "reconstruct_damping",
                             "reconstruct_damping has no effect without reconstruct (give "
                             "reconstruct: true, or leave reconstruct_damping out)"},
                            {"prune_width", "samples",
                             "samples has no effect without data (give data, or leave samples "
                             "out)"},
                            {"prune_heads", "max_length", "max_length has no effect without data"}};
  for (size_t i = 0; i < sizeof needs / sizeof needs[0]; i++) {
    pf_value *q = params_model(m);
    pf_map_set_num(q, "pruning_percentage", 20);
    pf_map_set_num(q, needs[i][1], 5);
    ck_assert_int_eq(run_err(needs[i][0], q, &err), PF_ERR_INVALID);
    pf_assert_err(err, needs[i][2]);
  }
  /* given with what they modify, or left at null, they pass validation */
  pf_value *q = params_model(m), *full = NULL;
  pf_map_set_num(q, "pruning_percentage", 20);
  pf_map_set(q, "samples", pf_value_null());
  ck_assert_int_eq(pf_op_validate(pf_op_find("prune_width"), q, &full, &err), PF_OK);
  pf_value_release(full);
  pf_map_set_bool(q, "reconstruct", 1);
  pf_map_set_num(q, "reconstruct_damping", 0.5);
  pf_map_set_str(q, "data", "x.txt");
  pf_map_set_num(q, "samples", 3);
  ck_assert_int_eq(pf_op_validate(pf_op_find("prune_width"), q, &full, &err), PF_OK);
  pf_value_release(full);
  pf_value_release(q);
  p = params_model(m);
  pf_map_set_int(p, "expansion_divisor", 16);
  ck_assert_int_eq(run_err("prune_width", p, &err), PF_ERR_INVALID);
  /* OptiPFair's own texts, not the generic "expected one of" (scripts match on them) */
  ck_assert_str_eq(err.msg, "prune_width: expansion_divisor must be one of [32, 64, 128, 256] or "
                            "None. Got: 16");
  p = params_model(m);
  pf_map_set_str(p, "method", "maw");
  ck_assert_int_eq(run_err("prune_width", p, &err), PF_ERR_INVALID);
  ck_assert_str_eq(err.msg, "prune_width: Invalid neuron selection method: maw. Choose from "
                            "['PPM', 'MAW', 'VOW', 'PON', 'L2'].");
  p = params_model(m);
  pf_map_set_int(p, "num_layers_to_remove", 1);
  pf_map_set_str(p, "layer_selection_method", "middle");
  ck_assert_int_eq(run_err("prune_depth", p, &err), PF_ERR_INVALID);
  ck_assert_str_eq(err.msg, "prune_depth: layer_selection_method must be one of ['last', "
                            "'first', 'custom'], got middle");
  p = params_model(m);
  pf_map_set_num(p, "num_layers_to_remove", 2.5);
  ck_assert_int_eq(run_err("prune_depth", p, &err), PF_ERR_INVALID);
  ck_assert_str_eq(err.msg, "prune_depth: num_layers_to_remove must be a positive integer");
  p = params_model(m); /* a positive integer, too large: not "must be a positive integer" */
  pf_map_set_int(p, "num_layers_to_remove", INT64_MAX);
  ck_assert_int_eq(run_err("prune_depth", p, &err), PF_ERR_INVALID);
  pf_assert_err(err, "prune_depth: Cannot remove 9223372036854775807 layers from model with");
  p = params_model(m); /* OptiPFair's isinstance(n, int): 1.0 is refused too */
  pf_map_set_num(p, "num_layers_to_remove", 1.0);
  ck_assert_int_eq(run_err("prune_depth", p, &err), PF_ERR_INVALID);
  ck_assert_str_eq(err.msg, "prune_depth: num_layers_to_remove must be a positive integer");
  p = params_model(m);
  pf_map_set_int(p, "num_layers_to_remove", 1);
  r = run_ok("prune_depth", p, NULL);
  ck_assert_int_eq(pf_map_model(r, "model")->n_layers, 3);
  pf_value_release(r);
  p = params_model(m);
  pf_map_set_int(p, "expansion_rate", 300); /* printed with Python's str: 300 and 300.0 */
  ck_assert_int_eq(run_err("prune_width", p, &err), PF_ERR_INVALID);
  ck_assert_str_eq(err.msg, "prune_width: Target expansion rate (300%) would increase the model "
                            "size. Current expansion rate is 275.00%.");
  p = params_model(m);
  pf_map_set_num(p, "expansion_rate", 300.0);
  ck_assert_int_eq(run_err("prune_width", p, &err), PF_ERR_INVALID);
  ck_assert_str_eq(err.msg, "prune_width: Target expansion rate (300.0%) would increase the "
                            "model size. Current expansion rate is 275.00%.");
  p = params_model(m);
  pf_map_set_num(p, "pruning_percentage", 150.0);
  ck_assert_int_eq(run_err("prune_width", p, &err), PF_ERR_INVALID);
  ck_assert_str_eq(err.msg, "prune_width: pruning_percentage must be between 0 and 100, got 150.0");
  p = params_model(m); /* neither: 10 % -> 176 - int(17.6) = 159 */
  r = run_ok("prune_width", p, NULL);
  ck_assert_int_eq(pf_map_model(r, "model")->layers[3].gate_proj->shape[0], 159);
  ck_assert_uint_eq(r->u.map.len, 9); /* op, model, 5 stats, layers, seconds */
  pf_value_release(r);
  p = params_model(m);
  pf_map_set_num(p, "pruning_percentage", 0.1);
  ck_assert_int_eq(run_err("prune_width", p, &err), PF_ERR_INVALID);
  pf_assert_err(err, "prune_width: No effective pruning for layer 0");
  pf_value_release(base);
}
END_TEST

static void keep_line(void *ud, const char *line) {
  if (strstr(line, "not finite")) snprintf(ud, 512, "%s", line);
}

/* A model whose logits are NaN (here its final norm): the perplexity is NaN, and a log
 * line says why instead of a bare "nan". */
START_TEST(test_evaluate_nan_said) {
  char *dir = pf_test_synth("llama-tiny", 3, NULL);
  pf_value *base = load(dir);
  pf_model *m = pf_map_model(base, "model"), *d = NULL;
  pf_err err = {0};
  ck_assert_int_eq(pf_model_derive(m, &d, &err), PF_OK);
  pf_tensor *norm = NULL;
  const int64_t h = m->config.hidden_size;
  ck_assert_int_eq(pf_tensor_new(PF_DTYPE_F32, 1, &h, &norm, &err), PF_OK);
  for (int64_t i = 0; i < h; i++)
    ((float *)pf_tensor_mutable_data(norm))[i] = NAN;
  ck_assert_int_eq(pf_model_set_tensor(d, "model.norm.weight", norm, &err), PF_OK);
  char *data = pf_path_join(tmp_root, "nan.txt");
  pf_test_write(data, "The cat sat on the mat.\n\nA dog ran in the park today.\n");
  char line[512] = "";
  pf_ctx ctx = {.log = keep_line, .user_data = line};
  pf_value *p = params_model(d);
  pf_map_set_str(p, "data", data);
  pf_value *r = run_ok("evaluate", p, &ctx);
  ck_assert(isnan(pf_map_num(r, "perplexity", 0)));
  ck_assert_msg(strstr(line, "the negative log-likelihood is not finite") != NULL, "%s", line);
  pf_value_release(r);
  pf_model_release(d);
  pf_value_release(base);
  free(data);
  *strrchr(dir, '/') = '\0';
  pf_test_rmtree(dir);
  free(dir);
}
END_TEST

/* The fingerprint that keys the calibration and covariance caches names the file a
 * model mapped, not its path: the same file through another spelling of the path is
 * the same key; a model whose file was replaced (same path, size and modification
 * time, other weights) keeps its own key, and a model loaded from the new file gets
 * another one (before: both got the new file's, so a held model's result was cached
 * under the other's key). */
START_TEST(test_fingerprint_file_identity) {
  char *da = pf_test_synth("llama-tiny", 11, NULL), *db = pf_test_synth("llama-tiny", 12, NULL);
  char *fa = pf_path_join(da, "model.safetensors"), *fb = pf_path_join(db, "model.safetensors");
  pf_value *a = load(da);
  char spelled[4200];
  snprintf(spelled, sizeof spelled, "%s/./", da);
  pf_value *a2 = load(spelled);
  pf_err err = {0};
  char ka[PF_SHA256_HEX], ka2[PF_SHA256_HEX], kb[PF_SHA256_HEX], kheld[PF_SHA256_HEX];
  ck_assert_int_eq(pf_model_fingerprint(pf_map_model(a, "model"), ka, &err), PF_OK);
  ck_assert_int_eq(pf_model_fingerprint(pf_map_model(a2, "model"), ka2, &err), PF_OK);
  ck_assert_str_eq(ka, ka2);
  /* the other weights get a's modification time, then replace a's file */
  struct stat sa;
  ck_assert_int_eq(stat(fa, &sa), 0);
  struct timespec times[2] = {sa.st_atim, sa.st_mtim};
  ck_assert_int_eq(utimensat(AT_FDCWD, fb, times, 0), 0);
  ck_assert_int_eq(rename(fb, fa), 0);
  struct stat sb;
  ck_assert_int_eq(stat(fa, &sb), 0);
  ck_assert_int_eq(sb.st_size, sa.st_size);
  ck_assert_int_eq(sb.st_mtim.tv_sec, sa.st_mtim.tv_sec);
  ck_assert_int_eq(sb.st_mtim.tv_nsec, sa.st_mtim.tv_nsec);
  pf_value *b = load(da);
  ck_assert_int_eq(pf_model_fingerprint(pf_map_model(b, "model"), kb, &err), PF_OK);
  ck_assert_int_eq(pf_model_fingerprint(pf_map_model(a, "model"), kheld, &err), PF_OK);
  ck_assert_str_eq(kheld, ka); /* the held model: still its own file's key */
  ck_assert_str_ne(kb, ka);    /* the new file: another key */
  pf_value_release(a);
  pf_value_release(a2);
  pf_value_release(b);
  free(fa);
  free(fb);
  pf_test_synth_free(da);
  pf_test_synth_free(db);
}
END_TEST

/* calibrate's cache: a second run is a hit with the same result; a damaged file (one
 * digit of a norm changed) is a miss, computed again, and written whole again. */
START_TEST(test_calibrate_cache) {
  char *dir = pf_test_synth("llama-tiny", 11, NULL); /* kept: the tokenizer is read from it */
  pf_value *base = load(dir);
  pf_model *m = pf_map_model(base, "model");
  char *data = pf_path_join(tmp_root, "calib.txt"), *cache = pf_path_join(tmp_root, "cc");
  pf_test_write(data, "The cat sat on the mat.\n\nA dog ran in the park today.\n");
  pf_value *r[3];
  char *file = NULL;
  for (int i = 0; i < 3; i++) {
    pf_value *p = params_model(m);
    pf_map_set_str(p, "data", data);
    pf_map_set_str(p, "cache", cache);
    r[i] = run_ok("calibrate", p, NULL);
    ck_assert_int_eq(pf_map_bool(r[i], "cached", -1), i == 1);
    if (i == 0) {
      char name[128];
      snprintf(name, sizeof name, "calib-%s.json", pf_map_str(r[0], "cache_key", ""));
      file = pf_path_join(cache, name);
    }
    if (i == 1) { /* damage a digit inside the norms */
      size_t len = 0;
      char *text = pf_test_read(file, &len);
      char *at = strstr(text, "\"norms\"");
      ck_assert_ptr_nonnull(at);
      while (*at && (*at < '1' || *at > '8'))
        at++;
      (*at)++;
      pf_test_write(file, text);
      free(text);
    }
  }
  for (int i = 1; i < 3; i++) {
    char *a = pf_value_to_json_text(pf_map_get(r[0], "norms"));
    char *b = pf_value_to_json_text(pf_map_get(r[i], "norms"));
    ck_assert_str_eq(a, b);
    free(a);
    free(b);
  }
  size_t len = 0;
  char *text = pf_test_read(file, &len);
  ck_assert_ptr_nonnull(strstr(text, "\nsha256 ")); /* written again, with its sum */
  free(text);
  for (int i = 0; i < 3; i++)
    pf_value_release(r[i]);
  free(file);
  free(cache);
  free(data);
  pf_value_release(base);
  *strrchr(dir, '/') = '\0';
  pf_test_rmtree(dir);
  free(dir);
}
END_TEST

START_TEST(test_save_errors) {
  pf_value *base = load_synth("llama-tiny", NULL);
  pf_model *m = pf_map_model(base, "model");
  char *out = pf_path_join(tmp_root, "busy");
  pf_mkdirs(out, NULL);
  char *f = pf_path_join(out, "x.txt");
  pf_test_write(f, "x");
  pf_err err = {0};
  pf_ctx dry = {.dry_run = 1};
  pf_value *p = params_model(m), *r = NULL;
  pf_map_set_str(p, "path", out);
  ck_assert_int_eq(pf_op_run("save", p, &r, &dry, &err), PF_ERR_INVALID);
  pf_assert_err(err, "save: path '");
  pf_assert_err(err, "overwrite");
  ck_assert_int_ne(pf_op_run("save", p, &r, NULL, &err), PF_OK); /* the real save refuses too */
  pf_map_set_str(p, "max_shard_size", "lots");
  pf_map_set_bool(p, "overwrite", 1);
  ck_assert_int_eq(pf_op_run("save", p, &r, NULL, &err), PF_ERR_INVALID);
  pf_assert_err(err, "save: max_shard_size");
  pf_value_release(p);
  free(f);
  free(out);
  pf_value_release(base);
}
END_TEST

/* llama-tiny by hand: H 64, I 176, 4 layers, 4 heads of 16, 2 kv heads, vocab 320, untied.
 *   attention per layer: q 64*64 + k 32*64 + v 32*64 + o 64*64 = 12288
 *   mlp per layer: 3 * 176 * 64 = 33792;  other (2 norms): 128;  layer: 46208
 *   total: 4 * 46208 + embed 320*64 + lm_head 320*64 + norm 64 = 225856
 *   estimate p: I' = 176 (1 - p/100); ratio I'/64; reduction (176 - I') * 3 * 64 per layer,
 *   of the model: reduction * 4 / 225856 * 100 (10 %: 17.6 * 192 * 4 / 225856 * 100). */
START_TEST(test_analyze_by_hand) {
  pf_value *base = load_synth("llama-tiny", NULL);
  pf_value *r = run_ok("analyze", params_model(pf_map_model(base, "model")), NULL);
  ck_assert_int_eq(pf_map_int(r, "total_parameters", 0), 225856);
  ck_assert_int_eq(pf_map_int(r, "num_layers", 0), 4);
  ck_assert_int_eq(pf_map_bool(r, "glu_compatible", 0), 1);
  ck_assert_int_eq(pf_map_int(r, "hidden_size", 0), 64);
  ck_assert_int_eq(pf_map_int(r, "intermediate_size", 0), 176);
  ck_assert_double_eq_tol(pf_map_num(r, "expansion_ratio", 0), 2.75, 1e-15);
  const pf_value *d = pf_map_get(r, "distribution");
  ck_assert_int_eq(pf_map_int(pf_map_get(d, "attention"), "count", 0), 12288);
  ck_assert_int_eq(pf_map_int(pf_map_get(d, "mlp"), "count", 0), 33792);
  ck_assert_int_eq(pf_map_int(pf_map_get(d, "other"), "count", 0), 128);
  ck_assert_double_eq_tol(pf_map_num(pf_map_get(d, "mlp"), "percent", 0), 33792.0 / 46208 * 100,
                          1e-12);
  const pf_value *est = pf_map_get(r, "estimates");
  ck_assert_uint_eq(est->u.list.len, 5);
  for (int i = 0; i < 5; i++) {
    const pf_value *e = est->u.list.items[i];
    double p = 10.0 * (i + 1), ni = 176 * (1 - p / 100);
    ck_assert_int_eq(pf_map_int(e, "percentage", 0), (int64_t)p);
    ck_assert_double_eq_tol(pf_map_num(e, "new_expansion_ratio", 0), ni / 64, 1e-12);
    ck_assert_double_eq_tol(pf_map_num(e, "new_expansion_percent", 0), ni / 64 * 100, 1e-10);
    ck_assert_double_eq_tol(pf_map_num(e, "estimated_reduction_percent", 0),
                            (176 * p / 100) * 192 * 4 / 225856 * 100, 1e-10);
  }
  ck_assert_double_eq_tol(pf_map_num(est->u.list.items[0], "estimated_reduction_percent", 0),
                          17.6 * 192 * 4 / 225856 * 100, 1e-10);
  pf_value_release(r);
  pf_value_release(base);
}
END_TEST

/* A model whose embedding is larger than its tokenizer (the synthetic tiny
 * models: 320 ids, 289 tokens) can generate ids with no token: they are left
 * out of the text (as HF decode does) and counted, not an error. */
/* The tokenizer is kept between ops: the same one while its files are
 * unchanged, a new one once tokenizer.json changes; every hold is released by
 * its own pf_tokenizer_free (ASan sees a use after free otherwise). */
START_TEST(test_tokenizer_kept_between_ops) {
  char *dir = pf_test_synth("llama-tiny", 11, NULL);
  pf_value *r = load(dir);
  pf_model *m = pf_map_model(r, "model");
  pf_err err = {0};
  pf_model_tokenizer_forget();
  const long loads = pf_model_tokenizer_loads();
  pf_tokenizer *a = NULL, *b = NULL, *c = NULL;
  ck_assert_int_eq(pf_model_tokenizer(m, &a, &err), PF_OK);
  ck_assert_int_eq(pf_model_tokenizer(m, &b, &err), PF_OK);
  ck_assert_ptr_eq(a, b);
  ck_assert_int_eq(pf_model_tokenizer_loads(), loads + 1);
  pf_tokenizer_free(a);
  int32_t *ids = NULL;
  size_t n = 0;
  ck_assert_int_eq(pf_tokenizer_encode(b, "the cat sat", 11, 1, &ids, &n, &err), PF_OK);
  ck_assert_uint_gt(n, 2);
  free(ids);
  pf_tokenizer_free(b);
  /* the file rewritten (same bytes, another modification time): loaded again */
  char *path = pf_path_join(dir, "tokenizer.json"), *bytes = NULL;
  size_t len = 0;
  ck_assert_int_eq(pf_read_file(path, 1 << 26, &bytes, &len, &err), PF_OK);
  ck_assert_int_eq(unlink(path), 0);
  FILE *f = fopen(path, "wb");
  ck_assert_ptr_nonnull(f);
  ck_assert_uint_eq(fwrite(bytes, 1, len, f), len);
  fclose(f);
  const struct timespec when[2] = {{.tv_sec = 1000000000}, {.tv_sec = 1000000000}};
  ck_assert_int_eq(utimensat(AT_FDCWD, path, when, 0), 0);
  ck_assert_int_eq(pf_model_tokenizer(m, &c, &err), PF_OK);
  ck_assert_int_eq(pf_model_tokenizer_loads(), loads + 2);
  pf_tokenizer *d = NULL;
  ck_assert_int_eq(pf_model_tokenizer(m, &d, &err), PF_OK);
  ck_assert_ptr_eq(c, d);
  ck_assert_int_eq(pf_model_tokenizer_loads(), loads + 2);
  ck_assert_int_eq(pf_tokenizer_encode(c, "the cat sat", 11, 1, &ids, &n, &err), PF_OK);
  free(ids);
  pf_tokenizer_free(c);
  pf_tokenizer_free(d);
  /* a tokenizer.json that no longer loads is an error, not the kept one */
  f = fopen(path, "wb");
  ck_assert_ptr_nonnull(f);
  fputs("{\"model\": ", f);
  fclose(f);
  pf_tokenizer *e = NULL;
  ck_assert_int_ne(pf_model_tokenizer(m, &e, &err), PF_OK);
  ck_assert_ptr_null(e);
  pf_model_tokenizer_forget();
  free(bytes);
  free(path);
  pf_value_release(r);
  pf_test_synth_free(dir);
}
END_TEST

START_TEST(test_generate_ids_without_token) {
  char *dir = pf_test_synth("llama-tiny", 11, NULL);
  pf_value *r = load(dir); /* the generate op reads the tokenizer from the folder */
  pf_model *m = pf_map_model(r, "model");
  pf_tokenizer *tok = NULL;
  pf_err err = {0};
  ck_assert_int_eq(pf_model_tokenizer(m, &tok, &err), PF_OK);
  int64_t seen_unknown = 0;
  const char *prompts[] = {"the cat", "a dog", "once upon", "xyz"};
  for (int p = 0; p < 4; p++) {
    pf_value *params = params_model(m);
    pf_map_set_str(params, "prompt", prompts[p]);
    pf_map_set_int(params, "max_new_tokens", 60);
    pf_value *out = run_ok("generate", params, NULL);
    const pf_value *ids = pf_map_get(out, "tokens");
    ck_assert_ptr_nonnull(ids);
    int64_t unknown = 0;
    for (size_t i = 0; i < ids->u.list.len; i++)
      unknown += pf_tokenizer_token(tok, (int32_t)ids->u.list.items[i]->u.i) == NULL;
    ck_assert_int_eq(pf_map_int(out, "tokens_not_in_tokenizer", -1), unknown);
    seen_unknown += unknown;
    pf_value_release(out);
  }
  ck_assert_msg(seen_unknown > 0, "no prompt produced an id without a token: test not exercised");
  pf_tokenizer_free(tok);
  pf_value_release(r);
  pf_test_synth_free(dir);
}
END_TEST

/* Data longer than the model's positions (gpt2-tiny: 128; the default max_length is
 * 512) is refused when the data is read, before any batch runs, by every op that
 * runs the model over a data file (before: evaluate and importance failed at the
 * first long batch, after computing the ones before it). */
static void count_progress(void *ud, const char *what, uint64_t done, uint64_t total) {
  (void)what, (void)done, (void)total;
  (*(int *)ud)++;
}

START_TEST(test_data_longer_than_positions) {
  char *data = pf_path_join(tmp_root, "long-positions.txt");
  char text[8192] = "Short one.\n\n";
  for (int i = 0; i < 150; i++)
    strcat(text, "the cat sat on the mat ");
  strcat(text, "\n");
  pf_test_write(data, text);
  char *dir = pf_test_synth("gpt2-tiny", 3, NULL); /* kept: the tokenizer is read from it */
  pf_value *base = load(dir);
  static const char *const ops[] = {"evaluate", "importance", "calibrate"};
  for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
    pf_value *p = params_model(pf_map_model(base, "model"));
    pf_map_set_str(p, "data", data);
    pf_map_set_int(p, "batch_size", 1);
    int events = 0;
    pf_ctx ctx = {.progress = count_progress, .user_data = &events};
    pf_value *out = NULL;
    pf_err err = {0};
    const pf_status st = pf_op_run(ops[i], p, &out, &ctx, &err);
    ck_assert_msg(st == PF_ERR_INVALID, "%s: status %d: %s", ops[i], (int)st, err.msg);
    pf_assert_err(err, "tokens, more than the model's max_position_embeddings 128 (a max_length / "
                       "--max-length of 128 or less fits the model)");
    pf_assert_err(err, "the longest sample has ");
    ck_assert_msg(events == 0, "%s: %d progress events before the refusal", ops[i], events);
    pf_value_release(p);
    /* within the positions it runs */
    p = params_model(pf_map_model(base, "model"));
    pf_map_set_str(p, "data", data);
    pf_map_set_int(p, "max_length", 128);
    pf_value_release(run_ok(ops[i], p, NULL));
  }
  pf_value_release(base);
  free(data);
  *strrchr(dir, '/') = '\0';
  pf_test_rmtree(dir);
  free(dir);
}
END_TEST

static Suite *ops_suite(void) {
  Suite *s = suite_create("ops");
  TCase *t = tcase_create("ops");
  tcase_add_checked_fixture(t, setup, teardown);
  tcase_set_timeout(t, 120);
  tcase_add_test(t, test_round_trip_f32);
  tcase_add_test(t, test_round_trip_bf16);
  tcase_add_test(t, test_round_trip_f16);
  tcase_add_test(t, test_load_synthetic_spec);
  tcase_add_test(t, test_depth_shares_and_importance);
  tcase_add_test(t, test_dry_run);
  tcase_add_test(t, test_dry_run_without_source);
  tcase_add_test(t, test_evaluate_compare_vocab);
  tcase_add_test(t, test_score_op);
  tcase_add_test(t, test_prune_width_op_rules);
  tcase_add_test(t, test_prune_width_rank_dtype);
  tcase_add_test(t, test_save_errors);
  tcase_add_test(t, test_analyze_by_hand);
  tcase_add_test(t, test_calibrate_cache);
  tcase_add_test(t, test_fingerprint_file_identity);
  tcase_add_test(t, test_evaluate_nan_said);
  tcase_add_test(t, test_data_longer_than_positions);
  tcase_add_test(t, test_generate_ids_without_token);
  tcase_add_test(t, test_tokenizer_kept_between_ops);
  suite_add_tcase(s, t);
  return s;
}

int main(void) {
  return pf_test_main(ops_suite);
}
