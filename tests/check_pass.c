/* check_pass.c — layer-major passes give what batch-major ones give, bit for
 * bit: importance, calibration norms, perplexity with a parent (KL, top-1),
 * bias activations and neuron bias (its pairs in chunks under 1/8 of the
 * budget: one pair per chunk with the one-byte budget), on synthetic models of
 * several families (LLaMA, NeoX's parallel residual, Gemma 2's sliding window
 * and soft-caps, Phi-3's longrope, and LLaMA in BF16),
 * with the hidden states in RAM (forced order) and in a scratch file (a
 * one-byte memory budget: AUTO picks layer-major). Also the automatic choice,
 * the messages of a bad batch, and an interrupt in the middle of a pass. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "forward.h"
#include "kernels/kernels.h"
#include "op.h"
#include "testutil.h"

/* llama-tiny in BF16: on AVX512-BF16 (or AMX) CPUs its layers take the bf16
 * matmul */
static const char *const presets[] = {"llama-tiny", "neox-tiny", "gemma2-tiny", "phi3-tiny",
                                      "llama-tiny:bf16"};
enum { N_PRESETS = sizeof presets / sizeof presets[0] };

static char *text_path(void) {
  static char path[4096];
  snprintf(path, sizeof path, "%s/tests/golden/families_text.jsonl", PF_SOURCE_DIR);
  return path;
}

/* Exact equality of two results: same keys in the same order, numbers with the
 * same bits, tensors with the same bytes (wall times, "seconds", aside). */
static int same_value(const pf_value *a, const pf_value *b, char *where, size_t n) {
  if (a->type != b->type) return snprintf(where, n, "types differ"), 0;
  switch (a->type) {
  case PF_V_INT:
    return a->u.i == b->u.i ||
           (snprintf(where, n, "int %lld vs %lld", (long long)a->u.i, (long long)b->u.i), 0);
  case PF_V_NUM:
    if (memcmp(&a->u.n, &b->u.n, sizeof a->u.n) == 0) return 1;
    snprintf(where, n, "%.17g vs %.17g", a->u.n, b->u.n);
    return 0;
  case PF_V_STR:
    return strcmp(a->u.s, b->u.s) == 0 || (snprintf(where, n, "strings"), 0);
  case PF_V_BOOL:
    return a->u.b == b->u.b;
  case PF_V_LIST:
    if (a->u.list.len != b->u.list.len) return snprintf(where, n, "list lengths"), 0;
    for (size_t i = 0; i < a->u.list.len; i++)
      if (!same_value(a->u.list.items[i], b->u.list.items[i], where, n)) return 0;
    return 1;
  case PF_V_MAP:
    if (a->u.map.len != b->u.map.len) return snprintf(where, n, "map sizes"), 0;
    for (size_t i = 0; i < a->u.map.len; i++) {
      if (strcmp(a->u.map.keys[i], b->u.map.keys[i]))
        return snprintf(where, n, "key %s vs %s", a->u.map.keys[i], b->u.map.keys[i]), 0;
      if (!strcmp(a->u.map.keys[i], "seconds")) continue; /* wall time */
      if (!same_value(a->u.map.vals[i], b->u.map.vals[i], where, n)) {
        size_t l = strlen(where);
        snprintf(where + l, n - l, " (at %s)", a->u.map.keys[i]);
        return 0;
      }
    }
    return 1;
  case PF_V_TENSOR: {
    const pf_tensor *x = a->u.tensor, *y = b->u.tensor;
    if (x->nbytes != y->nbytes || memcmp(x->data, y->data, x->nbytes))
      return snprintf(where, n, "tensor bytes"), 0;
    return 1;
  }
  default:
    return 1;
  }
}

static pf_value *run_op(const char *op, pf_value *params, const pf_ctx *ctx) {
  pf_value *out = NULL;
  pf_err err = {0};
  pf_status st = pf_op_run(op, params, &out, ctx, &err);
  ck_assert_msg(st == PF_OK, "%s: %s", op, err.msg);
  return out;
}

static pf_value *data_params(pf_model *m, int64_t batch) {
  pf_value *p = pf_value_map();
  pf_map_set(p, "model", pf_value_model(m));
  pf_map_set_str(p, "data", text_path());
  pf_map_set_int(p, "batch_size", batch);
  return p;
}

static pf_value *pairs(void) {
  static const char *const pr[][2] = {{"The cat sat", "The dog sat"},
                                      {"Hello world", "Hello there, world"},
                                      {"A quick brown fox", "A slow brown fox"}};
  return pf_test_pairs(pr, sizeof pr / sizeof pr[0]);
}

/* Every data-parallel op of one model in the order ctx asks for: one list. */
static pf_value *all_ops(pf_model *m, pf_model *parent, const pf_ctx *ctx) {
  pf_value *res = pf_value_list(), *p;
  p = data_params(m, 2); /* 4 samples: 2 batches with padding */
  pf_list_push(res, run_op("importance", p, ctx));
  pf_value_release(p);
  p = data_params(m, 1);
  pf_list_push(res, run_op("calibrate", p, ctx));
  pf_value_release(p);
  p = data_params(m, 3);
  pf_map_set(p, "compare", pf_value_model(parent));
  pf_list_push(res, run_op("evaluate", p, ctx));
  pf_value_release(p);
  p = data_params(m, 2);
  pf_list_push(res, run_op("evaluate", p, ctx));
  pf_value_release(p);
  /* packed 20-token blocks, one or two per batch: layer-major runs them in groups */
  for (int64_t bs = 1; bs <= 2; bs++) {
    p = data_params(m, bs);
    pf_map_set(p, "pack", pf_value_bool(1));
    pf_map_set_int(p, "max_length", 20);
    pf_list_push(res, run_op("importance", p, ctx));
    pf_list_push(res, run_op("calibrate", p, ctx));
    pf_map_set(p, "compare", pf_value_model(parent));
    pf_list_push(res, run_op("evaluate", p, ctx));
    pf_value_release(p);
  }
  p = pf_value_map();
  pf_map_set(p, "model", pf_value_model(m));
  pf_map_set(p, "prompt_pairs", pairs());
  pf_list_push(res, run_op("bias_activations", p, ctx));
  pf_value_release(p);
  p = pf_value_map();
  pf_map_set(p, "model", pf_value_model(m));
  pf_map_set(p, "prompt_pairs", pairs());
  pf_list_push(res, run_op("neuron_bias", p, ctx));
  pf_value_release(p);
  return res;
}

/* The synthetic checkpoint of "PRESET[:DTYPE]" with this seed; its preset name into name. */
static char *synth_of(const char *spec, uint64_t seed, char name[64]) {
  snprintf(name, 64, "%s", spec);
  char *colon = strchr(name, ':');
  if (colon) *colon = '\0';
  return pf_test_synth(name, seed, colon ? colon + 1 : NULL);
}

START_TEST(test_layer_major_equals_batch_major) {
  char name[64];
  char *dir = synth_of(presets[_i], 11, name), *pdir = synth_of(presets[_i], 12, name);
  pf_model *m = pf_test_load(dir), *parent = pf_test_load(pdir);
  const pf_ctx batch = {.pass_order = PF_PASS_BATCH}, layer = {.pass_order = PF_PASS_LAYER},
               file = {.memory_budget = 1};
  pf_value *a = all_ops(m, parent, &batch), *b = all_ops(m, parent, &layer),
           *c = all_ops(m, parent, &file);
  char where[256] = "";
  ck_assert_msg(same_value(a, b, where, sizeof where), "%s: layer-major (RAM) differs: %s", name,
                where);
  ck_assert_msg(same_value(a, c, where, sizeof where), "%s: layer-major (file) differs: %s", name,
                where);
  /* the results are real numbers, not an empty comparison */
  const pf_value *ev = a->u.list.items[2];
  ck_assert(isfinite(pf_map_num(ev, "perplexity", NAN)) && pf_map_num(ev, "kl_divergence", 0) > 0);
  /* the parent's figures beside the model's are what evaluating the parent alone gives (the
   * flagship recipe evaluates only the pruned model, with compare) */
  pf_value *pp = data_params(parent, 3);
  pf_value *alone = run_op("evaluate", pp, &batch);
  const pf_value *cmp = pf_map_get(ev, "compare");
  ck_assert_ptr_nonnull(cmp);
  ck_assert_msg(pf_map_num(cmp, "nll", NAN) == pf_map_num(alone, "nll", -1) &&
                    pf_map_num(cmp, "perplexity", NAN) == pf_map_num(alone, "perplexity", -1) &&
                    pf_map_int(cmp, "predicted_tokens", -1) ==
                        pf_map_int(alone, "predicted_tokens", -2),
                "%s: the parent's figures differ from evaluating it alone (nll %.17g vs %.17g)",
                name, pf_map_num(cmp, "nll", NAN), pf_map_num(alone, "nll", NAN));
  pf_value_release(alone);
  pf_value_release(pp);
  pf_value_release(a);
  pf_value_release(b);
  pf_value_release(c);
  pf_model_release(m);
  pf_model_release(parent);
  pf_test_synth_free(dir);
  pf_test_synth_free(pdir);
}
END_TEST

/* The order each budget gives, and why. */
START_TEST(test_plan) {
  char *dir = pf_test_synth("llama-tiny", 11, NULL);
  pf_model *m = pf_test_load(dir);
  pf_forward *f = NULL;
  pf_err err = {0};
  ck_assert_int_eq(pf_forward_new(m, &f, &err), PF_OK);
  int32_t ids[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  pf_batch bt[2] = {{.batch = 2, .seq = 4, .ids = ids}, {.batch = 1, .seq = 8, .ids = ids}};
  pf_pass p = {.batches = bt, .n = 2};
  pf_pass_info in;
  const uint64_t w = pf_model_weight_bytes(m);
  const pf_ctx big = {.memory_budget = w * 2}, tight = {.memory_budget = w},
               tiny = {.memory_budget = 1},
               forced = {.memory_budget = 1, .pass_order = PF_PASS_BATCH};
  pf_pass_plan(f, &p, &big, &in);
  ck_assert_int_eq(in.order, PF_PASS_BATCH);
  ck_assert_msg(strstr(in.why, "batch-major (the weights fit"), "%s", in.why);
  pf_pass_plan(f, &p, &tight, &in);
  ck_assert_int_eq(in.order, PF_PASS_LAYER);
  ck_assert_int_eq(in.states_in_file, 0);
  ck_assert_uint_eq(in.state_bytes, (uint64_t)16 * m->config.hidden_size * 4);
  ck_assert_msg(strstr(in.why, "in RAM"), "%s", in.why);
  pf_pass_plan(f, &p, &tiny, &in);
  ck_assert_int_eq(in.order, PF_PASS_LAYER);
  ck_assert_int_eq(in.states_in_file, 1);
  ck_assert_msg(strstr(in.why, "in a scratch file"), "%s", in.why);
  pf_pass_plan(f, &p, &forced, &in);
  ck_assert_int_eq(in.order, PF_PASS_BATCH);
  p.n = 1; /* one batch: layer-major still releases each layer's pages */
  pf_pass_plan(f, &p, &tiny, &in);
  ck_assert_int_eq(in.order, PF_PASS_LAYER);
  pf_pass_plan(f, &p, &big, &in);
  ck_assert_int_eq(in.order, PF_PASS_BATCH);
  pf_forward_free(f);
  pf_model_release(m);
  pf_test_synth_free(dir);
}
END_TEST

typedef struct counter {
  int64_t events, stop_after;
  volatile int *flag;
  int64_t last_layer, order_ok;
} counter;

static pf_status count_tap(void *ud, const pf_tap_event *ev, pf_err *err) {
  (void)err;
  counter *c = ud;
  if (ev->layer < c->last_layer) c->order_ok = 0; /* layer-major: never back to an earlier layer */
  c->last_layer = ev->layer;
  if (++c->events == c->stop_after) *c->flag = 1;
  return PF_OK;
}

/* A bad id in the second batch fails before any work, naming the batch; an
 * interrupt stops the pass at the next step. */
START_TEST(test_errors_and_interrupt) {
  char *dir = pf_test_synth("llama-tiny", 11, NULL);
  pf_model *m = pf_test_load(dir);
  pf_forward *f = NULL;
  pf_err err = {0};
  ck_assert_int_eq(pf_forward_new(m, &f, &err), PF_OK);
  int32_t ids[8] = {1, 2, 3, 4, 5, 6, 7, 8}, bad[4] = {1, 2, (int32_t)m->config.vocab_size, 3};
  pf_batch bt[3] = {{.batch = 2, .seq = 4, .ids = ids},
                    {.batch = 1, .seq = 4, .ids = bad},
                    {.batch = 1, .seq = 8, .ids = ids}};
  volatile int flag = 0;
  counter c = {.stop_after = 5, .flag = &flag, .order_ok = 1};
  pf_taps taps = {.points = 1u << PF_TAP_LAYER_OUTPUT, .fn = count_tap, .user_data = &c};
  const pf_ctx ctx = {.pass_order = PF_PASS_LAYER, .interrupt = &flag};
  pf_pass p = {.batches = bt, .n = 3, .taps = &taps};
  ck_assert_int_eq(pf_forward_pass(f, &p, NULL, &ctx, &err), PF_ERR_INVALID);
  ck_assert_msg(strstr(err.msg, "batch 1: input ids: row 0, position 2"), "%s", err.msg);
  ck_assert_int_eq(c.events, 0);
  bt[1].ids = ids;
  ck_assert_int_eq(pf_forward_pass(f, &p, NULL, &ctx, &err), PF_ERR_INTERRUPTED);
  ck_assert_int_eq(c.events, 5); /* stopped at the step after the flag was raised */
  ck_assert(c.order_ok);
  flag = 0;
  c.events = 0;
  c.stop_after = -1;
  c.last_layer = 0;
  ck_assert_int_eq(pf_forward_pass(f, &p, NULL, &ctx, &err), PF_OK);
  ck_assert_int_eq(c.events, 3 * m->n_layers);
  ck_assert(c.order_ok);
  pf_forward_free(f);
  pf_model_release(m);
  pf_test_synth_free(dir);
}
END_TEST

/* What a pass's taps saw: (index, layer, point) -> a hash of the data's bytes. */
typedef struct seen {
  uint64_t hash[8][8][PF_TAP_COUNT];
  int64_t events, last_layer, layer_ok;
  int64_t order[64]; /* layer 0: the index of each event, in order */
  int64_t n_order;
  int64_t fail_index; /* > 0: fail at layer 1 on this batch's first event */
} seen;

static pf_status seen_tap(void *ud, const pf_tap_event *ev, pf_err *err) {
  seen *s = ud;
  if (s->fail_index > 0 && ev->index == s->fail_index && ev->layer == 1)
    return pf_err_set(err, PF_ERR_INVALID, "tap says no");
  uint64_t h = 1469598103934665603ull;
  const unsigned char *b = (const unsigned char *)ev->data;
  for (size_t i = 0; i < (size_t)(ev->batch * ev->seq * ev->width) * sizeof(float); i++)
    h = (h ^ b[i]) * 1099511628211ull;
  for (int64_t r = 0; r < ev->batch * ev->seq; r++)
    h = (h ^ (uint64_t)ev->mask[r]) * 1099511628211ull;
  s->hash[ev->index][ev->layer][ev->point] = h ^ (uint64_t)ev->batch;
  if (ev->layer < s->last_layer) s->layer_ok = 0;
  s->last_layer = ev->layer;
  if (ev->layer == 0 && s->n_order < 64)
    s->order[s->n_order++] = ev->index;
  s->events++;
  return PF_OK;
}

/* Layer-major groups: batches 0-2 (20 tokens each, one of them 2 rows with
 * padding) run as one product per layer, batch 3 (8 tokens: under
 * pf_kern_uniform_min_m) alone, batch 4 (20 tokens after a short one) alone;
 * every tap of every batch has the bytes batch-major gives, the members' events
 * come point by point, and without group_taps there are no groups. */
START_TEST(test_groups) {
  static const char *const models[] = {"llama-tiny", "llama-tiny:bf16", "neox-tiny"};
  char name[64];
  char *dir = synth_of(models[_i], 11, name);
  pf_model *m = pf_test_load(dir);
  pf_forward *f = NULL;
  pf_err err = {0};
  ck_assert_int_eq(pf_forward_new(m, &f, &err), PF_OK);
  ck_assert_int_le(pf_kern_uniform_min_m(), 20);
  ck_assert_int_gt(pf_kern_uniform_min_m(), 8);
  int32_t ids[40], mask[40];
  for (int i = 0; i < 40; i++) {
    ids[i] = (int32_t)((i * 7919 + 13) % m->config.vocab_size);
    mask[i] = i < 33; /* row 1 of batch 2: 13 tokens, 7 of padding */
  }
  const pf_batch bt[5] = {{.batch = 1, .seq = 20, .ids = ids},
                          {.batch = 1, .seq = 20, .ids = ids + 20},
                          {.batch = 2, .seq = 20, .ids = ids, .mask = mask},
                          {.batch = 1, .seq = 8, .ids = ids + 3},
                          {.batch = 1, .seq = 20, .ids = ids + 1}};
  pf_taps taps = {.points = (1u << PF_TAP_COUNT) - 1, .fn = seen_tap};
  pf_pass p = {.batches = bt, .n = 5, .taps = &taps, .group_taps = 1};
  const pf_ctx batch = {.pass_order = PF_PASS_BATCH}, layer = {.pass_order = PF_PASS_LAYER};
  seen *a = calloc(1, sizeof *a), *b = calloc(1, sizeof *b), *c = calloc(1, sizeof *c);
  a->layer_ok = b->layer_ok = c->layer_ok = 1;
  pf_pass_info in;
  taps.user_data = a;
  ck_assert_int_eq(pf_forward_pass(f, &p, &in, &batch, &err), PF_OK);
  taps.user_data = b;
  setenv("PFRUN_PREFETCH", "direct", 1); /* the model fits: the default would map */
  ck_assert_int_eq(pf_forward_pass(f, &p, &in, &layer, &err), PF_OK);
  unsetenv("PFRUN_PREFETCH");
  ck_assert_int_eq(in.groups, 3);
  ck_assert_msg(strstr(in.why, "5 batches run as 3 products per layer"), "%s", in.why);
  ck_assert_int_eq(a->events, b->events);
  ck_assert_int_ge(a->events, 5 * m->n_layers * 8);
  for (int i = 0; i < 5; i++)
    for (int l = 0; l < m->n_layers; l++)
      for (int t = 0; t < PF_TAP_COUNT; t++)
        ck_assert_msg(a->hash[i][l][t] == b->hash[i][l][t], "%s: batch %d layer %d %s differs",
                      models[_i], i, l, pf_tap_name((pf_tap_point)t));
  ck_assert(b->layer_ok);
  /* layer 0: layer_input of batches 0, 1, 2, then their input_norm, ... */
  for (int i = 0; i < 6; i++)
    ck_assert_int_eq(b->order[i], i % 3);
  ck_assert_int_eq(a->order[1], 0); /* batch-major: batch 0's events first */
  /* O_DIRECT where the file system of the synthetic checkpoint has it (not tmpfs) */
  char shard[4200];
  snprintf(shard, sizeof shard, "%s/model.safetensors", dir);
  const int fd = open(shard, O_RDONLY | O_DIRECT);
  if (fd < 0) {
    fprintf(stderr, "note: %s: no O_DIRECT here (%s): the stream path is not tested\n", shard,
            strerror(errno));
    ck_assert_int_eq(in.direct, 0);
  } else {
    close(fd);
    ck_assert_int_eq(in.direct, 1);
  }
  ck_assert(!in.direct || strstr(in.why, "read ahead with O_DIRECT"));
  /* without group_taps: one product per batch, the same bytes */
  p.group_taps = 0;
  taps.user_data = c;
  ck_assert_int_eq(pf_forward_pass(f, &p, &in, &layer, &err), PF_OK);
  ck_assert_int_eq(in.groups, 5);
  ck_assert_ptr_null(strstr(in.why, "products"));
  ck_assert_int_eq(memcmp(a->hash, c->hash, sizeof a->hash), 0);
  /* reading ahead through the mapping (the default for a model that fits), or not
   * at all: the same bytes again */
  static const char *const modes[] = {"map", "0", ""};
  for (int i = 0; i < 3; i++) {
    if (*modes[i])
      setenv("PFRUN_PREFETCH", modes[i], 1);
    else
      unsetenv("PFRUN_PREFETCH");
    memset(c, 0, sizeof *c);
    ck_assert_int_eq(pf_forward_pass(f, &p, &in, &layer, &err), PF_OK);
    ck_assert_int_eq(in.direct, 0);
    ck_assert_int_eq(memcmp(a->hash, c->hash, sizeof a->hash), 0);
  }
  unsetenv("PFRUN_PREFETCH");
  /* a budget two layers of buffers do not fit a quarter of: read ahead through the mapping */
  const pf_ctx small = {.pass_order = PF_PASS_LAYER, .memory_budget = 4096};
  memset(c, 0, sizeof *c);
  ck_assert_int_eq(pf_forward_pass(f, &p, &in, &small, &err), PF_OK);
  ck_assert_int_eq(in.direct, 0);
  ck_assert_int_eq(memcmp(a->hash, c->hash, sizeof a->hash), 0);
  /* the checkpoint replaced on disk after loading: the stream does not read the new
   * file (its identity differs), the mapping keeps the loaded bytes */
  char moved[4300];
  snprintf(moved, sizeof moved, "%s.moved", shard);
  setenv("PFRUN_PREFETCH", "direct", 1);
  ck_assert_int_eq(rename(shard, moved), 0);
  FILE *w = fopen(shard, "wb");
  ck_assert_ptr_nonnull(w);
  for (int i = 0; i < 1 << 16; i++)
    fputc(0x7f, w);
  fclose(w);
  memset(c, 0, sizeof *c);
  ck_assert_int_eq(pf_forward_pass(f, &p, &in, &layer, &err), PF_OK);
  ck_assert_int_eq(in.direct, 0);
  ck_assert_int_eq(memcmp(a->hash, c->hash, sizeof a->hash), 0);
  unsetenv("PFRUN_PREFETCH");
  ck_assert_int_eq(rename(moved, shard), 0);
  /* a tap that fails in layer 1 names the group's batches, or the batch alone */
  p.group_taps = 1;
  static const struct {
    int64_t index;
    const char *want;
  } fails[] = {{2, "batches 0-2: layer 1: "}, {3, "batch 3: layer 1: "}};
  for (int i = 0; i < 2; i++) {
    memset(c, 0, sizeof *c);
    c->fail_index = fails[i].index;
    err = (pf_err){0};
    ck_assert_int_ne(pf_forward_pass(f, &p, &in, &layer, &err), PF_OK);
    ck_assert_msg(strstr(err.msg, fails[i].want) == err.msg && strstr(err.msg, "tap says no"), "%s",
                  err.msg);
  }
  free(a);
  free(b);
  free(c);
  pf_forward_free(f);
  pf_model_release(m);
  pf_test_synth_free(dir);
}
END_TEST

static pf_status start_zero(void *ud, int64_t index, const pf_batch *b, float *x, pf_err *err) {
  (void)index, (void)err;
  memset(x, 0, (size_t)(b->batch * b->seq * *(const int64_t *)ud) * sizeof *x);
  return PF_OK;
}

static pf_status start_fail(void *ud, int64_t index, const pf_batch *b, float *x, pf_err *err) {
  (void)ud, (void)index, (void)b, (void)x;
  return pf_err_set(err, PF_ERR_IO, "no states here");
}

/* What an evaluate run reported: the total of its "evaluate" progress (the model's
 * (batch, layer) steps) and whether it said it started past shared layers. */
typedef struct watch {
  uint64_t total;
  int said_shared;
} watch;

static void watch_progress(void *ud, const char *what, uint64_t done, uint64_t total) {
  (void)done;
  if (!strcmp(what, "evaluate")) ((watch *)ud)->total = total;
}

static void watch_log(void *ud, const char *line) {
  if (strstr(line, "layers are the compared model's")) ((watch *)ud)->said_shared = 1;
}

static pf_value *evaluate_compare(pf_model *m, pf_model *parent, pf_ctx ctx, watch *w) {
  *w = (watch){0};
  ctx.progress = watch_progress;
  ctx.log = watch_log;
  ctx.user_data = w;
  pf_value *p = data_params(m, 2);
  pf_map_set(p, "compare", pf_value_model(parent));
  pf_value *r = run_op("evaluate", p, &ctx);
  pf_value_release(p);
  return r;
}

static pf_value *alone_of(pf_model *m, pf_model *parent, pf_ctx ctx) {
  watch w;
  return evaluate_compare(m, parent, ctx, &w);
}

/* m saved and loaded again (other tensors, the same bytes) shares its first layer with
 * parent by bytes: evaluate starts its pass there and gives `alone` (released here). */
static void saved_shares(pf_model *m, pf_model *parent, pf_value *alone, int64_t rows,
                         const char *name) {
  char *tmp = pf_test_tmpdir("shared"), path[4200];
  snprintf(path, sizeof path, "%s/saved", tmp);
  pf_err err = {0};
  pf_save_opts so = {0};
  ck_assert_msg(pf_model_save(m, path, &so, 0, NULL, &err) == PF_OK, "%s", err.msg);
  pf_model *r = pf_test_load(path);
  pf_forward *fr = NULL, *fp = NULL;
  ck_assert_int_eq(pf_forward_new(r, &fr, &err), PF_OK);
  ck_assert_int_eq(pf_forward_new(parent, &fp, &err), PF_OK);
  ck_assert_int_eq(pf_forward_shared_layers(fp, fr, 0), 0);
  ck_assert_int_eq(pf_forward_shared_layers(fp, fr, 1), 1);
  watch w;
  pf_value *got = evaluate_compare(r, parent, (pf_ctx){0}, &w);
  char where[256] = "";
  ck_assert_msg(same_value(alone, got, where, sizeof where), "%s, saved: %s", name, where);
  ck_assert(w.said_shared);
  ck_assert_uint_eq(w.total, (uint64_t)(rows * (r->n_layers - 1)));
  pf_value_release(got);
  pf_value_release(alone);
  pf_forward_free(fr);
  pf_forward_free(fp);
  pf_model_release(r);
  pf_test_rmtree(tmp);
  free(tmp);
}

/* evaluate with a parent runs the model's pass from the parent's states after the
 * layers both share (a depth-pruned model: those before the first layer removed;
 * the model itself: all; a pruned model saved and loaded again: the layers whose bytes
 * are the parent's): the results have the bits of a run against a second load of the
 * parent with a budget too small to compare bytes (nothing shared), in both orders
 * and with the states in a file, and the model's pass runs only the layers after the
 * shared ones. */
START_TEST(test_shared_layers) {
  char name[64];
  char *dir = synth_of(presets[_i], 11, name);
  pf_model *a = pf_test_load(dir), *b = pf_test_load(dir);
  const int64_t L = a->n_layers, rows = 4; /* 4 samples: one batch per row with a parent */
  ck_assert_int_ge(L, 3);
  pf_err err = {0};
  pf_forward *fa = NULL, *fb = NULL;
  ck_assert_int_eq(pf_forward_new(a, &fa, &err), PF_OK);
  ck_assert_int_eq(pf_forward_new(b, &fb, &err), PF_OK);
  ck_assert_int_eq(pf_forward_shared_layers(fa, fa, 0), L);
  ck_assert_int_eq(pf_forward_shared_layers(fa, fb, 0), 0); /* other tensors ... */
  ck_assert_int_eq(pf_forward_shared_layers(fa, fb, 1), L); /* ... of the same bytes */
  const pf_ctx apart = {.memory_budget = 1}; /* too small to compare bytes: nothing shared */
  const int64_t removed[] = {L - 1, 1, 0, -1};           /* -1: the parent itself */
  const pf_ctx orders[] = {
      {.pass_order = PF_PASS_BATCH}, {.pass_order = PF_PASS_LAYER}, {.memory_budget = 1}};
  for (size_t k = 0; k < sizeof removed / sizeof removed[0]; k++) {
    pf_model *m = a;
    if (removed[k] >= 0) {
      ck_assert_int_eq(pf_model_derive(a, &m, &err), PF_OK);
      ck_assert_int_eq(pf_model_remove_layer(m, removed[k], &err), PF_OK);
    } else {
      pf_model_retain(m);
    }
    const int64_t want = removed[k] >= 0 ? removed[k] : L;
    pf_forward *fm = NULL;
    ck_assert_int_eq(pf_forward_new(m, &fm, &err), PF_OK);
    ck_assert_int_eq(pf_forward_shared_layers(fa, fm, 0), want);
    ck_assert_int_eq(pf_forward_shared_layers(fm, fa, 1), want);
    pf_forward_free(fm);
    for (size_t o = 0; o < sizeof orders / sizeof orders[0]; o++) {
      watch ws, wn;
      pf_value *shared = evaluate_compare(m, a, orders[o], &ws),
               *alone = evaluate_compare(m, b, apart, &wn);
      char where[256] = "";
      ck_assert_msg(same_value(alone, shared, where, sizeof where),
                    "%s, layer %lld removed, order %zu: %s", name, (long long)removed[k], o, where);
      ck_assert_uint_eq(wn.total, (uint64_t)(rows * m->n_layers));
      ck_assert_uint_eq(ws.total, (uint64_t)(rows * (m->n_layers - want)));
      ck_assert_int_eq(ws.said_shared, want > 0);
      ck_assert_int_eq(wn.said_shared, 0);
      ck_assert(removed[k] < 0 ? pf_map_num(shared, "kl_divergence", -1) == 0
                               : pf_map_num(shared, "kl_divergence", 0) > 0);
      pf_value_release(shared);
      pf_value_release(alone);
    }
    if (removed[k] == 1) saved_shares(m, a, alone_of(m, b, apart), rows, name);
    pf_model_release(m);
  }
  pf_forward_free(fa);
  pf_forward_free(fb);
  pf_model_release(a);
  pf_model_release(b);
  pf_test_synth_free(dir);
}
END_TEST

/* A pass's start layer: at most the model's layers, with start_fn, no tap before it. */
START_TEST(test_start_errors) {
  char *dir = pf_test_synth("llama-tiny", 11, NULL);
  pf_model *m = pf_test_load(dir);
  pf_forward *f = NULL;
  pf_err err = {0};
  ck_assert_int_eq(pf_forward_new(m, &f, &err), PF_OK);
  int32_t ids[4] = {1, 2, 3, 4};
  pf_batch bt = {.batch = 1, .seq = 4, .ids = ids};
  counter c = {.stop_after = -1, .order_ok = 1};
  uint8_t at[64] = {0};
  at[0] = 1;
  pf_taps taps = {
      .points = 1u << PF_TAP_LAYER_OUTPUT, .layers = at, .fn = count_tap, .user_data = &c};
  pf_pass p = {.batches = &bt,
               .n = 1,
               .start = m->n_layers + 1,
               .start_fn = start_zero,
               .start_ud = &m->config.hidden_size};
  ck_assert_int_eq(pf_forward_pass(f, &p, NULL, NULL, &err), PF_ERR_INVALID);
  pf_assert_err(err, "pass: start layer 5: expected 0 to 4, and start_fn when above 0");
  p.start = 1;
  p.start_fn = NULL;
  ck_assert_int_eq(pf_forward_pass(f, &p, NULL, NULL, &err), PF_ERR_INVALID);
  p.start_fn = start_zero;
  p.taps = &taps;
  ck_assert_int_eq(pf_forward_pass(f, &p, NULL, NULL, &err), PF_ERR_INVALID);
  pf_assert_err(err, "pass: a tap wants layer 0, before the start layer 1");
  at[0] = 0;
  at[2] = 1; /* a tap after the start fires */
  ck_assert_int_eq(pf_forward_pass(f, &p, NULL, NULL, &err), PF_OK);
  ck_assert_int_eq(c.events, 1);
  p.start_fn = start_fail;
  ck_assert_int_eq(pf_forward_pass(f, &p, NULL, NULL, &err), PF_ERR_IO);
  pf_assert_err(err, "batch 0: start states: no states here");
  pf_forward_free(f);
  pf_model_release(m);
  pf_test_synth_free(dir);
}
END_TEST

static Suite *make_suite(void) {
  Suite *s = suite_create("pass");
  TCase *tc = tcase_create("pass");
  tcase_set_timeout(tc, 600);
  tcase_add_loop_test(tc, test_layer_major_equals_batch_major, 0, N_PRESETS);
  tcase_add_test(tc, test_plan);
  tcase_add_loop_test(tc, test_groups, 0, 3);
  tcase_add_loop_test(tc, test_shared_layers, 0, N_PRESETS);
  tcase_add_test(tc, test_start_errors);
  tcase_add_test(tc, test_errors_and_interrupt);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return pf_test_main(make_suite);
}
