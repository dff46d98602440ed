/* check_bias.c — bias_activations and neuron_bias end to end on llama-tiny
 * (shapes, key order, token labels aligned with ids, causality: prompts that
 * differ at one token have identical activations before it), metrics on real
 * activations and after a Lua round trip, the tensor value (JSON form, Lua
 * userdata), op errors, and stories260K when ../shared is present. */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bias.h"
#include "op.h"
#include "pf_lua.h"
#include "testutil.h"

static char *tiny_dir; /* the tokenizer is read from the model folder: kept until teardown */

static void teardown(void) {
  pf_test_synth_free(tiny_dir);
  tiny_dir = NULL;
}

static pf_model *load_tiny(void) {
  if (!tiny_dir) tiny_dir = pf_test_synth("llama-tiny", 11, NULL);
  return pf_test_load(tiny_dir);
}

static pf_value *one_pair(const char *a, const char *b) {
  pf_value *l = pf_value_list(), *p = pf_value_list();
  pf_list_push(p, pf_value_str(a));
  pf_list_push(p, pf_value_str(b));
  pf_list_push(l, p);
  return l;
}

/* Run op with params (consumed); returns the result or NULL with err set. */
static pf_value *run(const char *op, pf_value *params, pf_err *err) {
  pf_value *out = NULL;
  pf_status st = pf_op_run(op, params, &out, NULL, err);
  pf_value_release(params);
  return st ? NULL : out;
}

static pf_value *activations(pf_model *m, pf_value *pairs, const char *layers, pf_value *targets) {
  pf_value *p = pf_value_map();
  pf_map_set(p, "model", pf_value_model(m));
  pf_map_set(p, "prompt_pairs", pairs);
  if (layers) pf_map_set_str(p, "layers", layers);
  if (targets) pf_map_set(p, "target_layers", targets);
  pf_err err = {0};
  pf_value *r = run("bias_activations", p, &err);
  ck_assert_msg(r != NULL, "%s", err.msg);
  return r;
}

static int rows_equal(const pf_tensor *a, const pf_tensor *b, int64_t r) {
  const float *x = a->data, *y = b->data;
  return memcmp(x + r * a->shape[1], y + r * b->shape[1], sizeof(float) * (size_t)a->shape[1]) == 0;
}

/* " cat" and " mat" are two tokens each (" c"/" m" + "at") in the synthetic
 * tokenizer, so the prompts have equal lengths and differ at one position. */
START_TEST(test_activations_tiny) {
  pf_model *m = load_tiny();
  pf_value *r =
      activations(m, one_pair("The cat sat on the mat", "The mat sat on the mat"),
                  "first_middle_last", NULL);
  ck_assert_str_eq(pf_map_str(r, "model", ""), m->name);
  ck_assert_str_eq(pf_map_str(r, "layers", ""), "first_middle_last");
  const pf_value *cl = pf_map_get(r, "captured_layers");
  ck_assert_uint_eq(cl->u.list.len, 3);
  ck_assert(cl->u.list.items[0]->u.i == 0 && cl->u.list.items[1]->u.i == 2 &&
            cl->u.list.items[2]->u.i == 3);
  const pf_value *pair = pf_map_get(r, "pairs")->u.list.items[0];
  ck_assert_int_eq(pf_map_int(pair, "index", 0), 1);
  const pf_value *ids1 = pf_map_get(pair, "ids1"), *ids2 = pf_map_get(pair, "ids2");
  const pf_value *tok1 = pf_map_get(pair, "tokens1"), *tok2 = pf_map_get(pair, "tokens2");
  size_t S = ids1->u.list.len, diff_at = S, ndiff = 0;
  ck_assert_uint_eq(ids2->u.list.len, S);
  ck_assert_uint_eq(tok1->u.list.len, S);
  ck_assert_int_eq(ids1->u.list.items[0]->u.i, 1); /* BOS */
  ck_assert_str_eq(tok1->u.list.items[0]->u.s, "<s>");
  for (size_t i = 0; i < S; i++)
    if (ids1->u.list.items[i]->u.i != ids2->u.list.items[i]->u.i) {
      ndiff++;
      diff_at = i < diff_at ? i : diff_at;
    }
  ck_assert_uint_eq(ndiff, 1);
  ck_assert_str_eq(tok1->u.list.items[diff_at]->u.s, " c");
  ck_assert_str_eq(tok2->u.list.items[diff_at]->u.s, " m");
  const pf_value *a1 = pf_map_get(pair, "act1"), *a2 = pf_map_get(pair, "act2");
  static const char *const order[6] = {"input_norm", "attention_output", "gate_proj",
                                       "up_proj",    "down_proj",        "mlp_output"};
  ck_assert_uint_eq(a1->u.map.len, 18);
  for (size_t k = 0; k < 18; k++) {
    char want[64];
    snprintf(want, sizeof want, "%s_layer_%d", order[k % 6], (int)(k < 6 ? 0 : k < 12 ? 2 : 3));
    ck_assert_str_eq(a1->u.map.keys[k], want);
    const pf_tensor *t1 = pf_map_tensor(a1, want), *t2 = pf_map_tensor(a2, want);
    int64_t D = k % 6 == 2 || k % 6 == 3 ? 176 : 64;
    ck_assert(t1 && t1->ndim == 2 && t1->shape[0] == (int64_t)S && t1->shape[1] == D);
    ck_assert(t1->dtype == PF_DTYPE_F32);
    for (size_t s = 0; s < diff_at; s++) /* causal: identical before the differing token */
      ck_assert_msg(rows_equal(t1, t2, (int64_t)s), "%s row %zu", want, s);
    ck_assert_msg(!rows_equal(t1, t2, (int64_t)diff_at), "%s differs at %zu", want, diff_at);
  }
  const pf_tensor *d = pf_map_tensor(a1, "down_proj_layer_2"),
                  *o = pf_map_tensor(a1, "mlp_output_layer_2");
  ck_assert_int_eq(memcmp(d->data, o->data, d->nbytes), 0);
  pf_value_release(r);
  pf_model_release(m);
}
END_TEST

/* The activations are views into shared blocks (pf_bias_capture_block): with
 * blocks so small that a capture spans many of them, every tensor has the same
 * bytes as with one block; and each result can be released on its own while
 * the other's tensors are still read (their blocks live on). */
/* Tensors of a pair's two maps (act1, act2) sorted by address: returns how many
 * do not start where the previous one ends (rounded up to 64 bytes), i.e. the
 * number of times the capture went on in another block. */
static size_t block_changes(const pf_value *pair) {
  const pf_tensor *ts[256];
  size_t n = 0;
  for (int k = 0; k < 2; k++) {
    const pf_value *a = pf_map_get(pair, k ? "act2" : "act1");
    for (size_t j = 0; j < a->u.map.len && n < 256; j++)
      ts[n++] = a->u.map.vals[j]->u.tensor;
  }
  for (size_t i = 1; i < n; i++) /* insertion sort by address */
    for (size_t j = i; j > 0 && (uintptr_t)ts[j]->data < (uintptr_t)ts[j - 1]->data; j--) {
      const pf_tensor *t = ts[j];
      ts[j] = ts[j - 1];
      ts[j - 1] = t;
    }
  size_t changes = 0;
  for (size_t i = 1; i < n; i++) {
    const uintptr_t end = (uintptr_t)ts[i - 1]->data + ts[i - 1]->nbytes;
    if ((uintptr_t)ts[i]->data != ((end + 63) & ~(uintptr_t)63)) changes++;
  }
  return changes;
}

/* Same bytes in every tensor of two captures' act1/act2; counts the tensors of b
 * in heap storage (*heap) and in mapped (spill) storage (*spilled). */
static void same_acts(const pf_value *ra, const pf_value *rb, int *heap, int *spilled) {
  const pf_value *p1 = pf_map_get(ra, "pairs")->u.list.items[0];
  const pf_value *p2 = pf_map_get(rb, "pairs")->u.list.items[0];
  *heap = *spilled = 0;
  for (int k = 0; k < 2; k++) {
    const pf_value *a = pf_map_get(p1, k ? "act2" : "act1"),
                   *b = pf_map_get(p2, k ? "act2" : "act1");
    ck_assert_uint_eq(a->u.map.len, b->u.map.len);
    for (size_t j = 0; j < a->u.map.len; j++) {
      const pf_tensor *x = a->u.map.vals[j]->u.tensor, *y = b->u.map.vals[j]->u.tensor;
      ck_assert_str_eq(a->u.map.keys[j], b->u.map.keys[j]);
      ck_assert(x->shape[0] == y->shape[0] && x->shape[1] == y->shape[1]);
      ck_assert_msg(memcmp(x->data, y->data, x->nbytes) == 0, "%s", a->u.map.keys[j]);
      if (pf_storage_is_mapped(y->storage))
        (*spilled)++;
      else
        (*heap)++;
    }
  }
}

/* The activations are views into shared blocks (pf_bias_capture_block): by
 * default one pair's tensors lie back to back in one block; with blocks so
 * small that the capture spans many, every tensor has the same bytes; and each
 * result can be released on its own while the other's tensors are still read
 * (their blocks live on). */
START_TEST(test_activations_blocks) {
  pf_model *m = load_tiny();
  const size_t prev = pf_bias_capture_block;
  pf_value *one = activations(m, one_pair("The dog sat on the mat", "The cat sat"), "all", NULL);
  pf_bias_capture_block = 1; /* blocks of 16 tensors */
  pf_value *many = activations(m, one_pair("The dog sat on the mat", "The cat sat"), "all", NULL);
  pf_bias_capture_block = prev;
  const pf_value *p1 = pf_map_get(one, "pairs")->u.list.items[0];
  const pf_value *p2 = pf_map_get(many, "pairs")->u.list.items[0];
  int heap = 0, spilled = 0;
  same_acts(one, many, &heap, &spilled);
  ck_assert_int_eq(spilled, 0);
  const size_t n = 2 * pf_map_get(p1, "act1")->u.map.len;
  ck_assert_uint_eq(block_changes(p1), 0);
  ck_assert_uint_ge(block_changes(p2), (n - 1) / 16);
  pf_value_release(one);
  const pf_value *a = pf_map_get(p2, "act1"); /* `many` still readable on its own */
  const pf_tensor *t = a->u.map.vals[a->u.map.len - 1]->u.tensor;
  float sum = 0;
  for (int64_t i = 0; i < pf_tensor_numel(t); i++)
    sum += ((const float *)t->data)[i];
  ck_assert(isfinite(sum));
  pf_value_release(many);
  pf_model_release(m);
}
END_TEST

/* Once the captured activations alive in the process reach pf_bias_spill_after
 * bytes of heap blocks, further blocks are spill files (page cache): the same
 * bytes, in storage that is a mapping. Earlier captures still held count;
 * released ones do not. */
START_TEST(test_activations_spill) {
  pf_model *m = load_tiny();
  const size_t prev = pf_bias_capture_block;
  const uint64_t base = pf_bias_capture_heap_bytes();
  int heap = 0, spilled = 0;
  pf_value *one = activations(m, one_pair("The dog sat on the mat", "The cat sat"), "all", NULL);
  const uint64_t live = pf_bias_capture_heap_bytes();
  ck_assert_uint_gt(live, base);
  pf_bias_spill_after = live; /* reached already, by `one`: the next capture spills at once */
  pf_value *two = activations(m, one_pair("The dog sat on the mat", "The cat sat"), "all", NULL);
  same_acts(one, two, &heap, &spilled);
  ck_assert_int_eq(heap, 0);
  ck_assert_int_gt(spilled, 0);
  ck_assert_uint_eq(pf_bias_capture_heap_bytes(), live);
  pf_value_release(one); /* its blocks no longer count */
  ck_assert_uint_eq(pf_bias_capture_heap_bytes(), base);
  pf_bias_capture_block = 1;      /* blocks of 16 tensors */
  pf_bias_spill_after = base + 1; /* a block that would cross the threshold spills, the first too */
  pf_value *three = activations(m, one_pair("The dog sat on the mat", "The cat sat"), "all", NULL);
  same_acts(two, three, &heap, &spilled);
  ck_assert_int_eq(heap, 0);
  ck_assert_int_gt(spilled, 0);
  pf_value_release(three);
  pf_bias_spill_after = UINT64_MAX; /* all on the heap: how many bytes of blocks */
  three = activations(m, one_pair("The dog sat on the mat", "The cat sat"), "all", NULL);
  const uint64_t all = pf_bias_capture_heap_bytes() - base;
  pf_value_release(three);
  pf_bias_spill_after = base + all / 2; /* the first blocks on the heap, the rest spilled */
  three = activations(m, one_pair("The dog sat on the mat", "The cat sat"), "all", NULL);
  pf_bias_capture_block = prev;
  pf_bias_spill_after = 0;
  same_acts(two, three, &heap, &spilled);
  ck_assert_int_gt(heap, 0);
  ck_assert_int_gt(spilled, 0);
  ck_assert_uint_le(pf_bias_capture_heap_bytes() - base, all / 2);
  pf_value_release(two);
  pf_value_release(three);
  ck_assert_uint_eq(pf_bias_capture_heap_bytes(), base);
  pf_model_release(m);
}
END_TEST

START_TEST(test_activations_all_down_proj_input) {
  pf_model *m = load_tiny();
  pf_value *t = pf_value_list();
  pf_list_push(t, pf_value_str("down_proj"));
  pf_list_push(t, pf_value_str("down_proj_input"));
  pf_value *r = activations(m, one_pair("The cat sat", "The dog sat"), "all", t);
  const pf_value *tl = pf_map_get(r, "target_layers");
  ck_assert_uint_eq(tl->u.list.len, 2);
  const pf_value *pair = pf_map_get(r, "pairs")->u.list.items[0];
  const pf_value *a1 = pf_map_get(pair, "act1");
  ck_assert_uint_eq(a1->u.map.len, 8);
  ck_assert_str_eq(a1->u.map.keys[0], "down_proj_input_layer_0");
  ck_assert_str_eq(a1->u.map.keys[1], "down_proj_layer_0");
  ck_assert_str_eq(a1->u.map.keys[7], "down_proj_layer_3");
  ck_assert_int_eq(pf_map_tensor(a1, "down_proj_input_layer_1")->shape[1], 176);
  ck_assert_int_eq(pf_map_tensor(a1, "down_proj_layer_1")->shape[1], 64);
  /* different lengths: metrics are mean-pooled */
  pf_value *p = pf_value_map(), *out = NULL;
  pf_map_set(p, "activations", r);
  pf_err err = {0};
  out = run("metrics", p, &err);
  ck_assert_msg(out != NULL, "%s", err.msg);
  const pf_value *pm = pf_map_get(pf_map_get(out, "pairs"), "pair_1");
  ck_assert_str_eq(pf_map_str(pm, "aligned", ""), "mean_pooled");
  ck_assert_uint_eq(pf_map_get(pf_map_get(pm, "metrics"), "layer_metrics")->u.map.len, 8);
  pf_value_release(out);
  pf_model_release(m);
}
END_TEST

START_TEST(test_activation_errors) {
  pf_model *m = load_tiny();
  pf_err err = {0};
  pf_value *p = pf_value_map(), *t = pf_value_list();
  pf_list_push(t, pf_value_str("attention"));
  pf_list_push(t, pf_value_str("mlp"));
  pf_map_set(p, "model", pf_value_model(m));
  pf_map_set(p, "target_layers", t);
  ck_assert_ptr_null(run("bias_activations", p, &err));
  pf_assert_err(err, "Invalid target_layers: ['mlp']. Valid options are: ['attention',");
  p = pf_value_map();
  pf_map_set(p, "model", pf_value_model(m));
  pf_map_set_str(p, "layers", "9");
  ck_assert_ptr_null(run("bias_activations", p, &err));
  pf_assert_err(err, "layers: the selection picks no layer (the model has 4 layers");
  p = pf_value_map();
  pf_map_set(p, "model", pf_value_model(m));
  pf_map_set(p, "prompt_pairs", pf_value_list());
  ck_assert_ptr_null(run("bias_activations", p, &err));
  pf_assert_err(err, "prompt_pairs cannot be empty");
  p = pf_value_map();
  pf_map_set(p, "model", pf_value_model(m));
  pf_map_set_str(p, "prompt_pairs", "/nonexistent/pairs.jsonl");
  ck_assert_ptr_null(run("bias_activations", p, &err));
  pf_assert_err(err, "prompt_pairs: not \"default\" and not a readable .jsonl file");
  pf_model_release(m);
}
END_TEST

/* Metrics and neurons on real activations; a Lua round trip (which sorts map
 * keys) gives the same metrics. */
START_TEST(test_metrics_real_and_lua) {
  pf_model *m = load_tiny();
  pf_value *r =
      activations(m, one_pair("The cat sat on the mat", "The mat sat on the mat"), "all", NULL);
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  luaL_requiref(L, "pf", pf_lua_open, 1);
  lua_pop(L, 1);
  pf_lua_push_value(L, r);
  pf_value *back = NULL;
  pf_err err = {0};
  ck_assert_int_eq(pf_lua_to_value(L, -1, &back, &err), PF_OK);
  const pf_value *bpair = pf_map_get(back, "pairs")->u.list.items[0];
  ck_assert_ptr_eq(pf_map_tensor(pf_map_get(bpair, "act1"), "mlp_output_layer_1"),
                   pf_map_tensor(pf_map_get(pf_map_get(r, "pairs")->u.list.items[0], "act1"),
                                 "mlp_output_layer_1"));
  lua_close(L);
  char *texts[2];
  for (int k = 0; k < 2; k++) {
    pf_value *p = pf_value_map();
    pf_map_set(p, "activations", k ? back : r);
    pf_map_set_bool(p, "neurons", 1);
    pf_map_set_int(p, "top_n", 5);
    pf_value *out = run("metrics", p, &err);
    ck_assert_msg(out != NULL, "%s", err.msg);
    const pf_value *pm = pf_map_get(pf_map_get(out, "pairs"), "pair_1");
    ck_assert_str_eq(pf_map_str(pm, "aligned", ""), "exact");
    const pf_value *om = pf_map_get(pf_map_get(pm, "metrics"), "overall_metrics");
    ck_assert(pf_map_num(om, "mean_difference", 0) > 0);
    ck_assert_int_eq(pf_map_int(om, "total_layers", 0), 24);
    const pf_value *nv = pf_map_get(out, "neurons"), *top = pf_map_get(nv, "top");
    ck_assert_uint_eq(top->u.list.len, 5);
    ck_assert_uint_eq(pf_map_get(nv, "gate_proj_layer_3")->u.list.len, 176);
    ck_assert(pf_map_num(top->u.list.items[0], "difference", 0) >=
              pf_map_num(top->u.list.items[4], "difference", 0));
    texts[k] = pf_value_to_json_text(pf_map_get(out, "pairs"));
    pf_value_release(out);
  }
  ck_assert_str_eq(texts[0], texts[1]);
  free(texts[0]);
  free(texts[1]);
  pf_model_release(m);
}
END_TEST

/* The tensor value: JSON summary, shared copies, Lua userdata. */
START_TEST(test_tensor_value_lua) {
  int64_t shape[2] = {2, 3};
  pf_tensor *t = NULL;
  pf_err err = {0};
  ck_assert_int_eq(pf_tensor_new(PF_DTYPE_F32, 2, shape, &t, &err), PF_OK);
  float *d = pf_tensor_mutable_data(t);
  for (int i = 0; i < 6; i++)
    d[i] = (float)i + 0.5f;
  pf_value *v = pf_value_map();
  pf_map_set(v, "t", pf_value_tensor(t));
  ck_assert_int_eq(t->refcount, 2);
  pf_value *c = pf_value_copy(v);
  ck_assert_ptr_eq(pf_map_tensor(c, "t"), t);
  ck_assert_int_eq(t->refcount, 3);
  pf_value_release(c);
  char *text = pf_value_to_json_text(v);
  ck_assert_str_eq(text, "{\n  \"t\": {\n    \"tensor\": [\n      2,\n      3\n    ],\n"
                         "    \"dtype\": \"float32\"\n  }\n}\n");
  free(text);
  ck_assert_str_eq(pf_vtype_name(PF_V_TENSOR), "tensor");
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  luaL_requiref(L, "pf", pf_lua_open, 1);
  lua_pop(L, 1);
  pf_lua_push_value(L, v);
  lua_setglobal(L, "v");
  const char *code = "local t = v.t\n"
                     "assert(#t == 6, 'len')\n"
                     "assert(t.shape[1] == 2 and t.shape[2] == 3, 'shape')\n"
                     "assert(t.numel == 6 and t.dtype == 'float32', 'numel/dtype')\n"
                     "assert(t:get(1, 1) == 0.5 and t:get(2, 3) == 5.5, 'get')\n"
                     "assert(tostring(t) == 'pf.tensor([2, 3], float32)', tostring(t))\n"
                     "local ok, e = pcall(t.get, t, 3, 1)\n"
                     "assert(not ok and e:find('outside %[1, 2%]'), e)\n"
                     "ok, e = pcall(t.get, t, 1)\n"
                     "assert(not ok and e:find('expected 2 indices'), e)\n";
  ck_assert_msg(luaL_dostring(L, code) == LUA_OK, "%s", lua_tostring(L, -1));
  lua_getglobal(L, "v");
  pf_value *back = NULL;
  ck_assert_int_eq(pf_lua_to_value(L, -1, &back, &err), PF_OK);
  ck_assert_ptr_eq(pf_map_tensor(back, "t"), t);
  pf_value_release(back);
  ck_assert_msg(luaL_dostring(L, "local t = v.t; t:close(); t:close(); "
                                 "assert(tostring(t) == 'pf.tensor (closed)'); "
                                 "assert(not pcall(function() return #t end))") == LUA_OK,
                "%s", lua_tostring(L, -1));
  lua_close(L);
  pf_value_release(v);
  ck_assert_int_eq(t->refcount, 1);
  pf_tensor_release(t);
}
END_TEST

START_TEST(test_neuron_bias_op) {
  pf_model *m = load_tiny();
  pf_value *p = pf_value_map();
  pf_map_set(p, "model", pf_value_model(m));
  pf_value *pairs = one_pair("The cat sat", "The dog sat"); /* asymmetric lengths */
  pf_list_push(pairs, pf_value_copy(pairs->u.list.items[0]));
  pf_map_set(p, "prompt_pairs", pairs);
  pf_err err = {0};
  pf_value *r = run("neuron_bias", p, &err);
  ck_assert_msg(r != NULL, "%s", err.msg);
  size_t n = 0;
  for (size_t i = 0; i < r->u.map.len; i++) {
    const char *k = r->u.map.keys[i];
    if (!strcmp(k, "op") || !strcmp(k, "seconds")) continue;
    char want[64];
    snprintf(want, sizeof want, "%s_layer_%zu", n % 2 ? "up_proj" : "gate_proj", n / 2);
    ck_assert_str_eq(k, want);
    ck_assert_uint_eq(r->u.map.vals[i]->u.list.len, 176);
    n++;
  }
  ck_assert_uint_eq(n, 8);
  pf_value_release(r);
  /* errors, in OptiPFair's order: aggregation first, then empty pairs */
  p = pf_value_map();
  pf_map_set(p, "model", pf_value_model(m));
  pf_map_set_str(p, "aggregation", "median");
  pf_map_set(p, "prompt_pairs", pf_value_list());
  ck_assert_ptr_null(run("neuron_bias", p, &err));
  pf_assert_err(err, "aggregation must be 'mean' or 'max', got 'median'");
  p = pf_value_map();
  pf_map_set(p, "model", pf_value_model(m));
  pf_map_set(p, "prompt_pairs", pf_value_list());
  ck_assert_ptr_null(run("neuron_bias", p, &err));
  pf_assert_err(err, "prompt_pairs cannot be empty");
  pf_model_release(m);
}
END_TEST

/* The pair runs as one padded batch of two rows: each prompt's activations match
 * its own forward pass (here within 1e-5 relative; float rounding only). */
START_TEST(test_batch_matches_single) {
  pf_model *m = load_tiny();
  pf_value *r = activations(m, one_pair("The dog sat on the mat", "The cat sat"), "all", NULL);
  const pf_value *pair = pf_map_get(r, "pairs")->u.list.items[0];
  pf_forward *f = NULL;
  pf_err err = {0};
  ck_assert_int_eq(pf_forward_new(m, &f, &err), PF_OK);
  for (int k = 0; k < 2; k++) {
    const pf_value *ids = pf_map_get(pair, k ? "ids2" : "ids1");
    int32_t buf[64];
    for (size_t i = 0; i < ids->u.list.len; i++)
      buf[i] = (int32_t)ids->u.list.items[i]->u.i;
    pf_value *single = NULL;
    ck_assert_int_eq(pf_bias_capture(f, buf, ids->u.list.len, pf_bias_targets_default(), NULL,
                                     &single, NULL, &err),
                     PF_OK);
    const pf_value *batched = pf_map_get(pair, k ? "act2" : "act1");
    ck_assert_uint_eq(single->u.map.len, batched->u.map.len);
    for (size_t j = 0; j < single->u.map.len; j++) {
      ck_assert_str_eq(single->u.map.keys[j], batched->u.map.keys[j]);
      const pf_tensor *a = single->u.map.vals[j]->u.tensor, *b = batched->u.map.vals[j]->u.tensor;
      ck_assert(a->shape[0] == b->shape[0] && a->shape[1] == b->shape[1]);
      const float *x = a->data, *y = b->data;
      for (int64_t i = 0; i < pf_tensor_numel(a); i++)
        ck_assert_msg(fabsf(x[i] - y[i]) <= 1e-5f * (1.0f + fabsf(x[i])), "%s[%lld]: %g vs %g",
                      single->u.map.keys[j], (long long)i, x[i], y[i]);
    }
    pf_value_release(single);
  }
  pf_forward_free(f);
  pf_value_release(r);
  pf_model_release(m);
}
END_TEST

/* A dry run tokenizes but runs nothing: planned tensors; metrics and neuron_bias compute nothing.
 */
START_TEST(test_dry_run) {
  pf_model *m = load_tiny();
  pf_ctx ctx = {.dry_run = 1};
  pf_value *p = pf_value_map(), *r = NULL, *out = NULL;
  pf_map_set(p, "model", pf_value_model(m));
  pf_map_set(p, "prompt_pairs", one_pair("The cat sat", "The dog sat"));
  pf_err err = {0};
  ck_assert_msg(pf_op_run("bias_activations", p, &r, &ctx, &err) == PF_OK, "%s", err.msg);
  pf_value_release(p);
  const pf_value *pair = pf_map_get(r, "pairs")->u.list.items[0], *a1 = pf_map_get(pair, "act1");
  ck_assert_uint_eq(a1->u.map.len, 24); /* default: every layer (4 x 6 types) */
  const pf_tensor *g = pf_map_tensor(a1, "gate_proj_layer_3");
  ck_assert(g && g->data == NULL && g->shape[1] == 176);
  ck_assert_int_eq(g->shape[0], (int64_t)pf_map_get(pair, "ids1")->u.list.len);
  p = pf_value_map();
  pf_map_set(p, "activations", r);
  pf_map_set_str(p, "output_dir", "/nonexistent/never-written");
  ck_assert_msg(pf_op_run("metrics", p, &out, &ctx, &err) == PF_OK, "%s", err.msg);
  ck_assert_uint_eq(pf_map_get(out, "pairs")->u.map.len, 0);
  ck_assert_ptr_null(pf_map_get(out, "files"));
  pf_value_release(out);
  pf_value_release(p);
  p = pf_value_map();
  pf_map_set(p, "model", pf_value_model(m));
  ck_assert_msg(pf_op_run("neuron_bias", p, &out, &ctx, &err) == PF_OK, "%s", err.msg);
  ck_assert_int_eq(pf_map_tensor(out, "up_proj_layer_2")->shape[0], 176);
  pf_value_release(out);
  pf_value_release(p);
  pf_model_release(m);
}
END_TEST

/* stories260K (llama2 sentencepiece tokenizer): default pairs, non-zero differences. */
START_TEST(test_stories) {
  char *dir = pf_test_shared("models/stories260K", "bias_activations on stories260K");
  if (!dir) return;
  pf_model *m = pf_test_load(dir);
  pf_value *r = activations(m, pf_value_str("default"), NULL, NULL);
  const pf_value *pairs = pf_map_get(r, "pairs");
  ck_assert_uint_eq(pairs->u.list.len, 7);
  const pf_value *a1 = pf_map_get(pairs->u.list.items[0], "act1");
  ck_assert_uint_eq(a1->u.map.len, 30); /* 6 types x all 5 layers (the default) */
  ck_assert_str_eq(a1->u.map.keys[0], "input_norm_layer_0");
  ck_assert_str_eq(a1->u.map.keys[29], "mlp_output_layer_4");
  pf_value *p = pf_value_map();
  pf_map_set(p, "activations", r);
  pf_err err = {0};
  pf_value *out = run("metrics", p, &err);
  ck_assert_msg(out != NULL, "%s", err.msg);
  const pf_value *pm = pf_map_get(out, "pairs");
  ck_assert_uint_eq(pm->u.map.len, 7);
  for (size_t i = 0; i < pm->u.map.len; i++) {
    const pf_value *lm = pf_map_get(pf_map_get(pm->u.map.vals[i], "metrics"), "layer_metrics");
    ck_assert_uint_eq(lm->u.map.len, 30);
    for (size_t k = 0; k < lm->u.map.len; k++)
      ck_assert_msg(pf_map_num(lm->u.map.vals[k], "mean_difference", 0) > 0, "%s",
                    lm->u.map.keys[k]);
  }
  ck_assert(pf_map_num(pf_map_get(out, "summary"), "overall", 0) > 0);
  pf_value_release(out);
  pf_model_release(m);
  free(dir);
}
END_TEST

static Suite *make_suite(void) {
  Suite *s = suite_create("bias");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 120);
  tcase_add_checked_fixture(tc, NULL, teardown);
  tcase_add_test(tc, test_activations_tiny);
  tcase_add_test(tc, test_activations_all_down_proj_input);
  tcase_add_test(tc, test_activation_errors);
  tcase_add_test(tc, test_metrics_real_and_lua);
  tcase_add_test(tc, test_tensor_value_lua);
  tcase_add_test(tc, test_neuron_bias_op);
  tcase_add_test(tc, test_batch_matches_single);
  tcase_add_test(tc, test_activations_blocks);
  tcase_add_test(tc, test_activations_spill);
  tcase_add_test(tc, test_dry_run);
  tcase_add_test(tc, test_stories);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return pf_test_main(make_suite);
}
