/* check_bias_reuse.c — bias_activations with `reuse` and `keep_states`
 * (ops/bias/bias_reuse.c): on a depth-pruned model the activations of the layers
 * it shares with its parent are taken from the parent's result and its pass starts
 * after them. The results must be, bit for bit and key for key, those of a step
 * without reuse; the progress must show that only the unshared layers ran. Also
 * neuron_bias computed from a bias_activations result (`activations`). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bias.h"
#include "op.h"
#include "testutil.h"

static const char *const presets[] = {"llama-tiny", "neox-tiny", "gemma2-tiny", "qwen3-tiny"};
#define N_PRESETS (int)(sizeof presets / sizeof presets[0])

static pf_value *pairs(void) {
  static const char *const pr[][2] = {{"The doctor said that he", "The doctor said that she"},
                                      {"Hello world", "Hello there, world"},
                                      {"A", "A longer second prompt"}};
  return pf_test_pairs(pr, sizeof pr / sizeof pr[0]);
}

/* What a step reported: the total of its progress and what it logged. */
typedef struct watch {
  uint64_t total;
  char said[512];
} watch;

static void watch_progress(void *ud, const char *what, uint64_t done, uint64_t total) {
  (void)done;
  if (!strcmp(what, "bias_activations")) ((watch *)ud)->total = total;
}

static void watch_log(void *ud, const char *line) {
  watch *w = ud;
  size_t n = strlen(w->said);
  snprintf(w->said + n, sizeof w->said - n, "%s\n", line);
}

/* bias_activations of m; reuse and keep_states when given. NULL with err on failure. */
static pf_value *acts(pf_model *m, const pf_value *reuse, int keep, const char *layers,
                      pf_pass_order order, watch *w, pf_err *err) {
  *w = (watch){0};
  pf_ctx ctx = {.progress = watch_progress, .log = watch_log, .user_data = w, .pass_order = order};
  pf_value *p = pf_value_map(), *out = NULL;
  pf_map_set(p, "model", pf_value_model(m));
  pf_map_set(p, "prompt_pairs", pairs());
  if (layers) pf_map_set_str(p, "layers", layers);
  if (reuse) {
    pf_value_retain((pf_value *)reuse);
    pf_map_set(p, "reuse", (pf_value *)reuse);
  }
  if (keep) pf_map_set(p, "keep_states", pf_value_bool(1));
  pf_status st = pf_op_run("bias_activations", p, &out, &ctx, err);
  pf_value_release(p);
  return st ? NULL : out;
}

static pf_value *acts_ok(pf_model *m, const pf_value *reuse, int keep, const char *layers,
                         pf_pass_order order, watch *w) {
  pf_err err = {0};
  pf_value *r = acts(m, reuse, keep, layers, order, w, &err);
  ck_assert_msg(r != NULL, "%s", err.msg);
  return r;
}

static pf_model *depth_pruned(pf_model *parent, const int64_t *remove, size_t n) {
  pf_value *p = pf_value_map(), *idx = pf_value_list(), *out = NULL;
  for (size_t i = 0; i < n; i++)
    pf_list_push(idx, pf_value_int(remove[i]));
  pf_map_set(p, "model", pf_value_model(parent));
  pf_map_set(p, "layer_indices", idx);
  pf_map_set_str(p, "layer_selection_method", "custom");
  pf_err err = {0};
  ck_assert_msg(pf_op_run("prune_depth", p, &out, NULL, &err) == PF_OK, "%s", err.msg);
  pf_model *m = pf_map_model(out, "model");
  ck_assert_ptr_nonnull(m);
  pf_model_retain(m);
  pf_value_release(out);
  pf_value_release(p);
  return m;
}

/* The pairs of a and b hold the same activations (keys in the same order, tensors with
 * the same bytes) and, when both kept them, the same states. */
static void same_pairs(const pf_value *a, const pf_value *b, const char *what) {
  const pf_value *la = pf_map_get(a, "pairs"), *lb = pf_map_get(b, "pairs");
  ck_assert_uint_eq(la->u.list.len, lb->u.list.len);
  for (size_t i = 0; i < la->u.list.len; i++) {
    const pf_value *pa = la->u.list.items[i], *pb = lb->u.list.items[i];
    static const char *const keys[2] = {"act1", "act2"};
    for (int k = 0; k < 2; k++) {
      const pf_value *ma = pf_map_get(pa, keys[k]), *mb = pf_map_get(pb, keys[k]);
      ck_assert_msg(ma->u.map.len == mb->u.map.len, "%s: pair %zu %s: %zu vs %zu entries", what,
                    i + 1, keys[k], ma->u.map.len, mb->u.map.len);
      for (size_t j = 0; j < ma->u.map.len; j++) {
        ck_assert_msg(!strcmp(ma->u.map.keys[j], mb->u.map.keys[j]), "%s: pair %zu: %s vs %s", what,
                      i + 1, ma->u.map.keys[j], mb->u.map.keys[j]);
        const pf_tensor *x = ma->u.map.vals[j]->u.tensor, *y = mb->u.map.vals[j]->u.tensor;
        ck_assert_msg(x->nbytes == y->nbytes && !memcmp(x->data, y->data, x->nbytes),
                      "%s: pair %zu: %s differs", what, i + 1, ma->u.map.keys[j]);
      }
    }
    const pf_tensor *sa = pf_map_tensor(pa, "states"), *sb = pf_map_tensor(pb, "states");
    if (sa && sb)
      ck_assert_msg(sa->nbytes == sb->nbytes && !memcmp(sa->data, sb->data, sa->nbytes),
                    "%s: pair %zu: states differ", what, i + 1);
  }
}

/* The parent's states are what a pass of the parent gives: slice l of a pair's states
 * is the hidden state entering layer l + 1, so a pass of the parent started at l + 1
 * from it (by reuse, on the parent itself) gives the parent's own activations. Then,
 * per cut: removing the last layer (all shared: nothing runs), a middle one (the pass
 * starts from the kept states), the first (nothing shared); both pass orders; the
 * states of a pruned model kept through reuse equal its own. */
START_TEST(test_reuse_depth) {
  char *dir = pf_test_synth(presets[_i], 21, NULL);
  pf_model *parent = pf_test_load(dir);
  const int64_t L = parent->n_layers;
  ck_assert_int_ge(L, 3);
  watch w;
  pf_value *before = acts_ok(parent, NULL, 1, NULL, PF_PASS_BATCH, &w);
  const uint64_t full = w.total; /* (layer, batch) steps of a whole pass */
  ck_assert_uint_eq(full, (uint64_t)L * 3);
  const pf_tensor *st0 = pf_map_tensor(pf_map_get(before, "pairs")->u.list.items[0], "states");
  ck_assert_ptr_nonnull(st0);
  ck_assert_int_eq(st0->shape[0], L - 1);
  /* the parent itself reusing its own result: nothing runs, the same numbers (and the
   * same states, when it keeps them too) */
  for (int keep = 0; keep < 2; keep++) {
    pf_value *self = acts_ok(parent, before, keep, NULL, PF_PASS_BATCH, &w);
    same_pairs(before, self, "self");
    ck_assert_uint_eq(w.total, 0);
    ck_assert_ptr_nonnull(strstr(w.said, "nothing to run"));
    ck_assert(!keep || pf_map_tensor(pf_map_get(self, "pairs")->u.list.items[0], "states"));
    pf_value_release(self);
  }
  const int64_t cuts[3] = {L - 1, L / 2, 0};
  for (int c = 0; c < 3; c++)
    for (int o = 0; o < 2; o++) {
      const pf_pass_order order = o ? PF_PASS_LAYER : PF_PASS_BATCH;
      pf_model *m = depth_pruned(parent, &cuts[c], 1);
      char what[96];
      snprintf(what, sizeof what, "%s, layer %lld removed, %s", presets[_i], (long long)cuts[c],
               o ? "layer-major" : "batch-major");
      watch wa, wb;
      pf_value *alone = acts_ok(m, NULL, 1, NULL, order, &wa);
      pf_value *re = acts_ok(m, before, 1, NULL, order, &wb);
      same_pairs(alone, re, what);
      ck_assert_msg(wb.total == (uint64_t)(L - 1 - cuts[c]) * 3, "%s: %llu steps", what,
                    (unsigned long long)wb.total);
      ck_assert_int_eq(pf_map_int(re, "reused_layers", -1), cuts[c]);
      ck_assert(!pf_map_has(alone, "reused_layers"));
      if (cuts[c] > 0)
        ck_assert_msg(strstr(wb.said, "taken from the reused result"), "%s: said %s", what,
                      wb.said);
      /* reusing a result that kept no states: past a middle cut every layer runs */
      if (cuts[c] > 0 && cuts[c] < L - 1 && o == 0) {
        pf_value *plain = acts_ok(parent, NULL, 0, NULL, order, &wb);
        pf_value *again = acts_ok(m, plain, 0, NULL, order, &wb);
        same_pairs(alone, again, what);
        ck_assert_uint_eq(wb.total, (uint64_t)(L - 1) * 3);
        ck_assert_ptr_nonnull(strstr(wb.said, "kept no hidden states"));
        pf_value_release(plain);
        pf_value_release(again);
      }
      pf_value_release(alone);
      pf_value_release(re);
      pf_model_release(m);
    }
  pf_value_release(before);
  pf_model_release(parent);
  pf_test_synth_free(dir);
}
END_TEST

/* Pairs of one length run as one product per layer in a layer-major pass (a group):
 * the kept states and a reuse past a middle cut are those of the batch-major pass. */
START_TEST(test_reuse_groups) {
  char *dir = pf_test_synth("llama-tiny", 25, NULL);
  pf_model *parent = pf_test_load(dir);
  static const char *const pr[][2] = {{"The doctor said that he went home", "The nurse said so"},
                                      {"The doctor said that he went home", "The nurse said so"},
                                      {"The doctor said that he went home", "The nurse said so"}};
  pf_value *res[2][2] = {{NULL}};
  const int64_t cut = 1;
  pf_model *m = depth_pruned(parent, &cut, 1);
  for (int o = 0; o < 2; o++) {
    watch w;
    pf_ctx ctx = {.progress = watch_progress,
                  .log = watch_log,
                  .user_data = &w,
                  .pass_order = o ? PF_PASS_LAYER : PF_PASS_BATCH};
    for (int step = 0; step < 2; step++) {
      w = (watch){0};
      pf_value *p = pf_value_map();
      pf_map_set(p, "model", pf_value_model(step ? m : parent));
      pf_map_set(p, "prompt_pairs", pf_test_pairs(pr, 3));
      pf_map_set(p, "keep_states", pf_value_bool(1));
      if (step) {
        pf_value_retain(res[o][0]);
        pf_map_set(p, "reuse", res[o][0]);
      }
      pf_err err = {0};
      ck_assert_msg(pf_op_run("bias_activations", p, &res[o][step], &ctx, &err) == PF_OK, "%s",
                    err.msg);
      pf_value_release(p);
      if (o && !step) ck_assert_msg(strstr(w.said, "3 batches run as 1 product"), "%s", w.said);
    }
  }
  same_pairs(res[0][0], res[1][0], "parent, layer-major groups");
  same_pairs(res[0][1], res[1][1], "reuse, layer-major groups");
  for (int o = 0; o < 2; o++)
    for (int step = 0; step < 2; step++)
      pf_value_release(res[o][step]);
  pf_model_release(m);
  pf_model_release(parent);
  pf_test_synth_free(dir);
}
END_TEST

/* Layer selections: the parent captured only some layers, the model wants others; the
 * pass starts at the first shared layer the parent did not capture. */
START_TEST(test_reuse_layers) {
  char *dir = pf_test_synth("llama-tiny", 22, NULL);
  pf_model *parent = pf_test_load(dir);
  const int64_t last = parent->n_layers - 1;
  pf_model *m = depth_pruned(parent, &last, 1); /* shares layers 0..L-2 */
  watch w;
  pf_value *before = acts_ok(parent, NULL, 1, "0", PF_PASS_BATCH, &w); /* layer 0 only */
  pf_value *alone = acts_ok(m, NULL, 0, "all", PF_PASS_BATCH, &w);
  pf_value *re = acts_ok(m, before, 0, "all", PF_PASS_BATCH, &w);
  same_pairs(alone, re, "parent captured layer 0 only");
  ck_assert_uint_eq(w.total, (uint64_t)(m->n_layers - 1) * 3); /* from layer 1 */
  pf_value_release(alone);
  pf_value_release(re);
  alone = acts_ok(m, NULL, 0, "0", PF_PASS_BATCH, &w);
  re = acts_ok(m, before, 0, "0", PF_PASS_BATCH, &w); /* wants only what was captured */
  same_pairs(alone, re, "layer 0");
  ck_assert_uint_eq(w.total, 0);
  pf_value_release(alone);
  pf_value_release(re);
  pf_value_release(before);
  pf_model_release(m);
  pf_model_release(parent);
  pf_test_synth_free(dir);
}
END_TEST

/* metrics' neuron ranking of a depth-pruned model names each layer's number in the
 * parent too (the report shows it); the parent's own ranking has no such key. */
START_TEST(test_neuron_top_source_layer) {
  char *dir = pf_test_synth("llama-tiny", 23, NULL);
  pf_model *parent = pf_test_load(dir);
  const int64_t first = 0;
  pf_model *m = depth_pruned(parent, &first, 1); /* layer l was the parent's l + 1 */
  watch w;
  for (int k = 0; k < 2; k++) {
    pf_value *a = acts_ok(k ? m : parent, NULL, 0, "all", PF_PASS_BATCH, &w);
    pf_value *p = pf_value_map(), *out = NULL;
    pf_map_set(p, "activations", a);
    pf_map_set(p, "neurons", pf_value_bool(1));
    pf_map_set_int(p, "top_n", 50);
    pf_err err = {0};
    ck_assert_msg(pf_op_run("metrics", p, &out, NULL, &err) == PF_OK, "%s", err.msg);
    const pf_value *top = pf_map_get(pf_map_get(out, "neurons"), "top");
    ck_assert_uint_eq(top->u.list.len, 50);
    for (size_t i = 0; i < top->u.list.len; i++) {
      const pf_value *e = top->u.list.items[i];
      if (k)
        ck_assert_int_eq(pf_map_int(e, "source_layer", -1), pf_map_int(e, "layer", -1) + 1);
      else
        ck_assert(!pf_map_has(e, "source_layer"));
    }
    pf_value_release(out);
    pf_value_release(p);
  }
  pf_model_release(m);
  pf_model_release(parent);
  pf_test_synth_free(dir);
}
END_TEST

START_TEST(test_reuse_errors) {
  char *dir = pf_test_synth("llama-tiny", 23, NULL);
  pf_model *parent = pf_test_load(dir);
  watch w;
  pf_err err = {0};
  pf_value *before = acts_ok(parent, NULL, 0, NULL, PF_PASS_BATCH, &w);
  /* not a bias_activations result */
  pf_value *s = pf_value_str("bias_before");
  ck_assert_ptr_null(acts(parent, s, 0, NULL, PF_PASS_BATCH, &w, &err));
  pf_assert_err(err, "reuse: expected the result of a bias_activations step");
  pf_value_release(s);
  /* other prompt pairs */
  pf_value *p = pf_value_map(), *out = NULL;
  pf_map_set(p, "model", pf_value_model(parent));
  pf_map_set_str(p, "prompt_pairs", "default");
  pf_value_retain(before);
  pf_map_set(p, "reuse", before);
  ck_assert_int_eq(pf_op_run("bias_activations", p, &out, NULL, &err), PF_ERR_INVALID);
  pf_assert_err(err, "the result holds 3 prompt pairs, this step has 7");
  pf_value_release(p);
  /* the same count, other text */
  pf_value *other = pf_value_copy(before);
  pf_value *ids = pf_map_get(pf_map_get(other, "pairs")->u.list.items[1], "ids2");
  ids->u.list.items[1]->u.i += 1;
  ck_assert_ptr_null(acts(parent, other, 0, NULL, PF_PASS_BATCH, &w, &err));
  pf_assert_err(err, "reuse: pair 2 is not the same token ids");
  pf_value_release(other);
  /* a target the result did not capture */
  p = pf_value_map();
  pf_map_set(p, "model", pf_value_model(parent));
  pf_map_set(p, "prompt_pairs", pairs());
  pf_map_set_str(p, "target_layers", "down_proj_input");
  pf_value_retain(before);
  pf_map_set(p, "reuse", before);
  ck_assert_int_eq(pf_op_run("bias_activations", p, &out, NULL, &err), PF_ERR_INVALID);
  pf_assert_err(err, "did not capture down_proj_input");
  pf_value_release(p);
  /* a dry run checks the same (and plans the states it would keep) */
  pf_ctx dry = {.dry_run = 1};
  p = pf_value_map();
  pf_map_set(p, "model", pf_value_model(parent));
  pf_map_set(p, "prompt_pairs", pairs());
  pf_map_set(p, "keep_states", pf_value_bool(1));
  pf_value_retain(before);
  pf_map_set(p, "reuse", before);
  ck_assert_int_eq(pf_op_run("bias_activations", p, &out, &dry, &err), PF_OK);
  const pf_tensor *planned = pf_map_tensor(pf_map_get(out, "pairs")->u.list.items[0], "states");
  ck_assert_ptr_nonnull(planned);
  ck_assert_int_eq(planned->shape[0], parent->n_layers - 1);
  pf_value_release(out);
  pf_value_release(p);
  pf_value_release(before);
  pf_model_release(parent);
  pf_test_synth_free(dir);
}
END_TEST

static pf_value *neuron_bias(pf_model *m, const pf_value *activations, const char *targets,
                             const char *agg, pf_err *err) {
  pf_value *p = pf_value_map(), *out = NULL;
  pf_map_set(p, "model", pf_value_model(m));
  pf_map_set(p, "prompt_pairs", pairs());
  pf_map_set_str(p, "aggregation", agg);
  if (targets) pf_map_set_str(p, "target_layers", targets);
  if (activations) {
    pf_value_retain((pf_value *)activations);
    pf_map_set(p, "activations", (pf_value *)activations);
  }
  pf_status st = pf_op_run("neuron_bias", p, &out, NULL, err);
  pf_value_release(p);
  return st ? NULL : out;
}

/* neuron_bias from a bias_activations result equals neuron_bias running the model: the
 * same keys in the same order, the same numbers (GLU and plain MLPs, mean and max). */
START_TEST(test_neuron_bias_from_activations) {
  static const char *const models[] = {"llama-tiny", "neox-tiny"};
  char *dir = pf_test_synth(models[_i], 24, NULL);
  pf_model *m = pf_test_load(dir);
  watch w;
  pf_err err = {0};
  pf_value *acts_all = acts_ok(m, NULL, 0, "all", PF_PASS_BATCH, &w);
  const char *targets = _i ? "mlp_output" : NULL; /* plain MLPs have no gate/up */
  for (int agg = 0; agg < 2; agg++) {
    const char *a = agg ? "max" : "mean";
    pf_value *own = neuron_bias(m, NULL, targets, a, &err);
    ck_assert_msg(own != NULL, "%s", err.msg);
    pf_value *from = neuron_bias(m, acts_all, targets, a, &err);
    ck_assert_msg(from != NULL, "%s", err.msg);
    size_t keys = 0;
    ck_assert_uint_eq(own->u.map.len, from->u.map.len);
    for (size_t i = 0; i < own->u.map.len; i++) {
      ck_assert_str_eq(own->u.map.keys[i], from->u.map.keys[i]);
      const pf_value *x = own->u.map.vals[i], *y = from->u.map.vals[i];
      if (x->type != PF_V_LIST) continue; /* op, seconds */
      keys++;
      ck_assert_uint_eq(x->u.list.len, y->u.list.len);
      for (size_t j = 0; j < x->u.list.len; j++)
        ck_assert_msg(x->u.list.items[j]->u.n == y->u.list.items[j]->u.n, "%s %s [%zu]: %g vs %g",
                      a, own->u.map.keys[i], j, x->u.list.items[j]->u.n, y->u.list.items[j]->u.n);
    }
    ck_assert_uint_eq(keys, (size_t)m->n_layers * (_i ? 1 : 2));
    pf_value_release(own);
    pf_value_release(from);
  }
  /* errors: another model, a result of some layers only, a target it did not capture */
  pf_model *other = pf_test_load(dir);
  ck_assert_ptr_null(neuron_bias(other, acts_all, targets, "mean", &err));
  pf_assert_err(err, "activations: the result was computed on");
  pf_model_release(other);
  pf_value *first = acts_ok(m, NULL, 0, "0", PF_PASS_BATCH, &w);
  ck_assert_ptr_null(neuron_bias(m, first, targets, "mean", &err));
  pf_assert_err(err, "_layer_1 (capture every layer");
  pf_value_release(first);
  ck_assert_ptr_null(neuron_bias(m, acts_all, "down_proj_input", "mean", &err));
  pf_assert_err(err, "activations: the result lacks down_proj_input_layer_0");
  pf_value_release(acts_all);
  pf_model_release(m);
  pf_test_synth_free(dir);
}
END_TEST

static Suite *make_suite(void) {
  Suite *s = suite_create("bias_reuse");
  TCase *tc = tcase_create("bias_reuse");
  tcase_set_timeout(tc, 300);
  tcase_add_loop_test(tc, test_reuse_depth, 0, N_PRESETS);
  tcase_add_test(tc, test_reuse_layers);
  tcase_add_test(tc, test_neuron_top_source_layer);
  tcase_add_test(tc, test_reuse_groups);
  tcase_add_test(tc, test_reuse_errors);
  tcase_add_loop_test(tc, test_neuron_bias_from_activations, 0, 2);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return pf_test_main(make_suite);
}
