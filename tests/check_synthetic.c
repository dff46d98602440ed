/* check_synthetic.c — synthetic checkpoints: presets, determinism, spec parsing, cache. */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fsutil.h"
#include "model.h"
#include "modelutil.h"
#include "synthetic.h"
#include "testutil.h"

static char *read_in(const char *dir, const char *file, size_t *len) {
  char *p = pf_path_join(dir, file);
  char *s = pf_test_read(p, len);
  free(p);
  return s;
}

static pf_model *load(const char *dir) {
  pf_model *m = NULL;
  pf_err err = {0};
  ck_assert_msg(pf_model_load(dir, &m, &err) == PF_OK, "load %s: %s", dir, err.msg);
  return m;
}

static void rm_synth(char *dir) {
  /* pf_test_synth returns <tmp>/model: remove <tmp> */
  char *slash = strrchr(dir, '/');
  *slash = '\0';
  pf_test_rmtree(dir);
  free(dir);
}

START_TEST(test_preset_list) {
  const char *const *p = pf_synth_presets();
  int n = 0;
  while (p[n])
    n++;
  ck_assert_int_eq(n, 15); /* 7 LLaMA-family + 6 other families + llama-7b/13b (benchmarks) */
  ck_assert_str_eq(p[0], "llama-tiny");
  ck_assert_str_eq(p[5], "llama-1b");
  ck_assert_str_eq(p[12], "neox-tiny");
  ck_assert_str_eq(p[13], "llama-7b");
  ck_assert_str_eq(p[14], "llama-13b");
}
END_TEST

typedef struct expect {
  const char *preset, *model_type, *arch;
  int64_t H, I, L, heads, kv, vocab;
  int tied, qkv_bias, qk_norm;
} expect;

static const expect expects[] = {
    {"llama-tiny", "llama", "LlamaForCausalLM", 64, 176, 4, 4, 2, 320, 0, 0, 0},
    {"llama-small", "llama", "LlamaForCausalLM", 128, 352, 6, 4, 2, 320, 1, 0, 0},
    {"qwen2-tiny", "qwen2", "Qwen2ForCausalLM", 64, 176, 4, 4, 2, 320, 0, 1, 0},
    {"qwen3-tiny", "qwen3", "Qwen3ForCausalLM", 64, 176, 4, 4, 2, 320, 0, 0, 1},
    {"mistral-tiny", "mistral", "MistralForCausalLM", 64, 176, 4, 4, 2, 320, 0, 0, 0},
};

START_TEST(test_preset_loads) {
  const expect *e = &expects[_i];
  char *dir = pf_test_synth(e->preset, 1234, NULL);
  pf_model *m = load(dir);
  const pf_model_config *c = &m->config;
  ck_assert_str_eq(c->model_type, e->model_type);
  ck_assert_int_eq(c->hidden_size, e->H);
  ck_assert_int_eq(c->intermediate_size, e->I);
  ck_assert_int_eq(m->n_layers, e->L);
  ck_assert_int_eq(c->num_attention_heads, e->heads);
  ck_assert_int_eq(c->num_key_value_heads, e->kv);
  ck_assert_int_eq(c->head_dim, e->H / e->heads);
  ck_assert_int_eq(c->vocab_size, e->vocab);
  ck_assert_int_eq(m->dtype, PF_DTYPE_F32);
  ck_assert_str_eq(c->torch_dtype, "float32");
  ck_assert_int_eq(m->lm_head == NULL, e->tied);
  ck_assert_int_eq(m->layers[0].q_bias != NULL, e->qkv_bias);
  ck_assert_int_eq(m->layers[0].v_bias != NULL, e->qkv_bias);
  ck_assert_ptr_null(m->layers[0].o_bias);
  ck_assert_int_eq(m->layers[3].q_norm != NULL, e->qk_norm);
  ck_assert_int_eq(c->layer_types != NULL, e->qk_norm);
  ck_assert_str_eq(cJSON_GetObjectItem(c->raw, "architectures")->child->valuestring, e->arch);
  ck_assert_int_eq(cJSON_GetObjectItem(c->raw, "bos_token_id")->valueint, 1);
  ck_assert_int_eq(cJSON_GetObjectItem(c->raw, "eos_token_id")->valueint, 2);
  ck_assert_int_eq(c->max_position_embeddings, 2048);
  pf_err err = {0};
  ck_assert_int_eq(pf_model_check(m, &err), PF_OK);
  const char *files[] = {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                         "generation_config.json", "model.safetensors"};
  for (int i = 0; i < 5; i++) {
    char *p = pf_path_join(dir, files[i]);
    ck_assert_msg(pf_path_exists(p), "%s missing", files[i]);
    free(p);
  }
  /* weights look like N(0, 0.02), norms like 1 + N(0, 0.02) */
  const pf_tensor *w = m->layers[1].gate_proj;
  const float *f = w->data;
  double sum = 0, sq = 0;
  int64_t n = pf_tensor_numel(w);
  for (int64_t i = 0; i < n; i++)
    sum += f[i], sq += (double)f[i] * f[i];
  double mean = sum / n, sd = sqrt(sq / n - mean * mean);
  ck_assert_msg(fabs(mean) < 0.002 && fabs(sd - 0.02) < 0.002, "mean %g sd %g", mean, sd);
  const float *g = m->layers[1].input_layernorm->data;
  for (int i = 0; i < e->H; i++)
    ck_assert(g[i] > 0.9f && g[i] < 1.1f);
  pf_model_release(m);
  rm_synth(dir);
}
END_TEST

START_TEST(test_tokenizer_json) {
  char *dir = pf_test_synth("llama-tiny", 1, NULL);
  char *text = read_in(dir, "tokenizer.json", NULL);
  cJSON *j = cJSON_Parse(text);
  ck_assert_ptr_nonnull(j);
  ck_assert_str_eq(cJSON_GetObjectItem(j, "version")->valuestring, "1.0");
  cJSON *model = cJSON_GetObjectItem(j, "model");
  ck_assert_str_eq(cJSON_GetObjectItem(model, "type")->valuestring, "BPE");
  cJSON *vocab = cJSON_GetObjectItem(model, "vocab");
  int nv = cJSON_GetArraySize(vocab);
  ck_assert_int_le(nv, 320);
  ck_assert_int_eq(nv, 3 + 256 + cJSON_GetArraySize(cJSON_GetObjectItem(model, "merges")));
  ck_assert_int_eq(cJSON_GetObjectItem(vocab, "<s>")->valueint, 1);
  ck_assert_int_eq(cJSON_GetObjectItem(vocab, "</s>")->valueint, 2);
  ck_assert_int_eq(cJSON_GetObjectItem(vocab, "A")->valueint, 3 + 'A');
  ck_assert_int_eq(cJSON_GetObjectItem(vocab, "\xc4\xa0")->valueint, 3 + ' '); /* "Ġ" */
  ck_assert_ptr_nonnull(cJSON_GetObjectItem(vocab, "\xc4\xa0the"));
  ck_assert_str_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(model, "merges"), 0)->valuestring,
                   "\xc4\xa0 t");
  cJSON *added = cJSON_GetObjectItem(j, "added_tokens");
  ck_assert_int_eq(cJSON_GetArraySize(added), 3);
  ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(added, 0), "content")->valuestring,
                   "<unk>");
  ck_assert_str_eq(
      cJSON_GetObjectItem(cJSON_GetObjectItem(j, "pre_tokenizer"), "type")->valuestring,
      "ByteLevel");
  ck_assert_str_eq(
      cJSON_GetObjectItem(cJSON_GetObjectItem(j, "post_processor"), "type")->valuestring,
      "TemplateProcessing");
  /* every merge's parts and result are in the vocab */
  cJSON *mg;
  cJSON_ArrayForEach(mg, cJSON_GetObjectItem(model, "merges")) {
    char l[64], r[64], both[128];
    ck_assert_int_eq(sscanf(mg->valuestring, "%63s %63s", l, r), 2);
    snprintf(both, sizeof both, "%s%s", l, r);
    ck_assert_ptr_nonnull(cJSON_GetObjectItem(vocab, l));
    ck_assert_ptr_nonnull(cJSON_GetObjectItem(vocab, r));
    ck_assert_ptr_nonnull(cJSON_GetObjectItem(vocab, both));
  }
  cJSON_Delete(j);
  free(text);
  text = read_in(dir, "generation_config.json", NULL);
  j = cJSON_Parse(text);
  ck_assert_int_eq(cJSON_GetObjectItem(j, "bos_token_id")->valueint, 1);
  ck_assert_int_eq(cJSON_GetObjectItem(j, "eos_token_id")->valueint, 2);
  cJSON_Delete(j);
  free(text);
  rm_synth(dir);
}
END_TEST

START_TEST(test_determinism) {
  char *a = pf_test_synth("llama-tiny", 7, NULL);
  char *b = pf_test_synth("llama-tiny", 7, NULL);
  char *c = pf_test_synth("llama-tiny", 8, NULL);
  size_t la, lb, lc;
  char *da = read_in(a, "model.safetensors", &la), *db = read_in(b, "model.safetensors", &lb),
       *dc = read_in(c, "model.safetensors", &lc);
  ck_assert_uint_eq(la, lb);
  ck_assert_int_eq(memcmp(da, db, la), 0);
  ck_assert_uint_eq(la, lc);
  ck_assert_int_ne(memcmp(da, dc, la), 0);
  /* the whole folder is a pure function of (preset, seed, dtype) */
  const char *files[] = {"config.json", "tokenizer.json", "tokenizer_config.json",
                         "special_tokens_map.json", "generation_config.json"};
  for (int i = 0; i < 5; i++) {
    char *x = read_in(a, files[i], &la), *y = read_in(b, files[i], &lb);
    ck_assert_uint_eq(la, lb);
    ck_assert_int_eq(memcmp(x, y, la), 0);
    free(x);
    free(y);
  }
  free(da);
  free(db);
  free(dc);
  /* BF16 copy: the same values rounded (RNE) to bf16 */
  char *h = pf_test_synth("llama-tiny", 7, "bf16");
  pf_model *mf = load(a), *mh = load(h);
  ck_assert_int_eq(mh->dtype, PF_DTYPE_BF16);
  const float *f = mf->layers[2].down_proj->data;
  const uint16_t *u = mh->layers[2].down_proj->data;
  for (int64_t i = 0; i < pf_tensor_numel(mf->layers[2].down_proj); i++)
    ck_assert_uint_eq(u[i], pf_f32_to_bf16(f[i]));
  pf_model_release(mf);
  pf_model_release(mh);
  rm_synth(a);
  rm_synth(b);
  rm_synth(c);
  rm_synth(h);
}
END_TEST

START_TEST(test_write_errors) {
  char *root = pf_test_tmpdir("synerr");
  pf_err err = {0};
  pf_synth_opts o = {.preset = "llama-huge", .seed = 1};
  ck_assert_int_eq(pf_synth_write(&o, root, NULL, &err), PF_ERR_INVALID);
  pf_assert_err(err, "unknown synthetic preset \"llama-huge\" (expected one of llama-tiny,");
  /* a non-empty folder is refused */
  char *f = pf_path_join(root, "x.txt");
  pf_test_write(f, "x");
  o.preset = "llama-tiny";
  ck_assert_int_eq(pf_synth_write(&o, root, NULL, &err), PF_ERR_INVALID);
  pf_assert_err(err, "exists and is not empty");
  ck_assert_int_eq(count_prefixed(root, "x.txt"), 1);
  /* an empty folder is fine */
  char *empty = pf_path_join(root, "empty");
  ck_assert_int_eq(pf_mkdirs(empty, &err), PF_OK);
  ck_assert_msg(pf_synth_write(&o, empty, NULL, &err) == PF_OK, "%s", err.msg);
  char *cfg = pf_path_join(empty, "config.json");
  ck_assert(pf_path_exists(cfg));
  /* no temporary folders left behind */
  ck_assert_int_eq(count_prefixed(root, "empty.tmp-"), 0);
  /* interrupted while generating: nothing appears, no temporary folders remain */
  volatile int stop = 1;
  pf_ctx ctx = {.interrupt = &stop};
  char *intr = pf_path_join(root, "intr");
  ck_assert_int_eq(pf_synth_write(&o, intr, &ctx, &err), PF_ERR_INTERRUPTED);
  pf_assert_err(err, "synthetic llama-tiny: interrupted");
  ck_assert_int_eq(count_prefixed(root, "intr"), 0);
  free(intr);
  free(cfg);
  free(empty);
  free(f);
  pf_test_rmtree(root);
  free(root);
}
END_TEST

START_TEST(test_spec) {
  ck_assert(pf_synth_is_spec("synthetic:llama-tiny"));
  ck_assert(!pf_synth_is_spec("/models/llama"));
  ck_assert(!pf_synth_is_spec(NULL));
  char *root = pf_test_tmpdir("cache");
  setenv("PFRUN_CACHE", root, 1);
  pf_err err = {0};
  char *dir = NULL;
  ck_assert_int_eq(pf_synth_resolve("synthetic:nope", &dir, NULL, &err), PF_ERR_INVALID);
  pf_assert_err(err, "unknown synthetic preset \"nope\"");
  ck_assert_ptr_null(dir);
  ck_assert_int_eq(pf_synth_resolve("synthetic:llama-tiny@x", &dir, NULL, &err), PF_ERR_INVALID);
  pf_assert_err(err, "expected a decimal seed after '@'");
  ck_assert_int_eq(pf_synth_resolve("synthetic:llama-tiny@12z", &dir, NULL, &err), PF_ERR_INVALID);
  ck_assert_int_eq(pf_synth_resolve("synthetic:llama-tiny:q4", &dir, NULL, &err), PF_ERR_INVALID);
  pf_assert_err(err, "synthetic:llama-tiny:q4");
  ck_assert_int_eq(pf_synth_resolve("/x/y", &dir, NULL, &err), PF_ERR_INVALID);

  /* default seed and dtype */
  ck_assert_msg(pf_synth_resolve("synthetic:llama-tiny", &dir, NULL, &err) == PF_OK, "%s", err.msg);
  char want[4096];
  snprintf(want, sizeof want, "%s/synthetic/llama-tiny-s1234-f32", root);
  ck_assert_str_eq(dir, want);
  /* cached: a marker file survives a second resolve */
  char *marker = pf_path_join(dir, "marker");
  pf_test_write(marker, "here");
  char *dir2 = NULL;
  ck_assert_int_eq(pf_synth_resolve("synthetic:llama-tiny", &dir2, NULL, &err), PF_OK);
  ck_assert_str_eq(dir2, dir);
  ck_assert(pf_path_exists(marker));
  free(marker);
  free(dir2);
  free(dir);

  /* seed + dtype */
  ck_assert_msg(pf_synth_resolve("synthetic:qwen3-tiny@7:bf16", &dir, NULL, &err) == PF_OK, "%s",
                err.msg);
  snprintf(want, sizeof want, "%s/synthetic/qwen3-tiny-s7-bf16", root);
  ck_assert_str_eq(dir, want);
  pf_model *m = load(dir);
  ck_assert_int_eq(m->dtype, PF_DTYPE_BF16);
  ck_assert_str_eq(m->config.torch_dtype, "bfloat16");
  pf_model_release(m);
  free(dir);
  ck_assert_msg(pf_synth_resolve("synthetic:mistral-tiny:f16", &dir, NULL, &err) == PF_OK, "%s",
                err.msg);
  snprintf(want, sizeof want, "%s/synthetic/mistral-tiny-s1234-f16", root);
  ck_assert_str_eq(dir, want);
  /* a cache folder that holds another model (here qwen3-tiny's files moved there) */
  char *other = NULL, *moved = NULL;
  ck_assert_int_eq(pf_synth_resolve("synthetic:qwen3-tiny@7:bf16", &other, NULL, &err), PF_OK);
  pf_test_rmtree(dir);
  ck_assert_int_eq(rename(other, dir), 0);
  ck_assert_int_eq(pf_synth_resolve("synthetic:mistral-tiny:f16", &moved, NULL, &err),
                   PF_ERR_FORMAT);
  ck_assert_ptr_null(moved);
  pf_assert_err(err, "synthetic:mistral-tiny:f16: the cache folder ");
  pf_assert_err(err, " holds another model (qwen3, 4 layers, hidden 64, width 176, bfloat16; "
                     "expected mistral, ");
  pf_model *q = load(dir); /* a save into the cache is refused (it would be served) */
  char *into = pf_path_join(root, "synthetic/llama-tiny-s99-f32");
  ck_assert_int_eq(pf_model_save(q, into, NULL, 1, NULL, &err), PF_ERR_INVALID);
  pf_assert_err(err, "refusing to write into the synthetic models' cache");
  ck_assert(!pf_path_exists(into));
  free(into);
  pf_model_release(q);
  pf_test_rmtree(dir); /* removed: written again */
  ck_assert_int_eq(pf_synth_resolve("synthetic:mistral-tiny:f16", &moved, NULL, &err), PF_OK);
  free(moved);
  free(other);
  free(dir);

  /* the cache parents are created on demand */
  char *deep = pf_path_join(root, "a/b/c");
  setenv("PFRUN_CACHE", deep, 1);
  ck_assert_msg(pf_synth_resolve("synthetic:llama-tiny@3", &dir, NULL, &err) == PF_OK, "%s",
                err.msg);
  ck_assert_ptr_nonnull(strstr(dir, "/a/b/c/synthetic/llama-tiny-s3-f32"));
  free(dir);
  free(deep);
  unsetenv("PFRUN_CACHE");
  pf_test_rmtree(root);
  free(root);
}
END_TEST

/* Stored tensors of a model as "name dtype shape view" lines. `view`: the tensor is (or,
 * for a planned model, stands for) a view of the checkpoint file. */
typedef struct stored_list {
  const pf_model *m;
  char text[1 << 15];
  size_t len;
} stored_list;

static int list_stored(void *ud, const char *name, const pf_tensor *t) {
  stored_list *l = ud;
  int view = pf_tensor_is_planned(t) ? pf_model_stored_is_view(l->m, name, t->ndim)
                                     : t->data && t->storage && pf_storage_path(t->storage);
  char shape[64];
  l->len += (size_t)snprintf(l->text + l->len, sizeof l->text - l->len, "%s %s %s %d\n", name,
                             pf_dtype_st_name(t->dtype),
                             pf_shape_str(t->ndim, t->shape, shape, sizeof shape), view);
  ck_assert_uint_lt(l->len, sizeof l->text);
  return 0;
}

static size_t dir_bytes(const char *dir) {
  DIR *d = opendir(dir);
  ck_assert_ptr_nonnull(d);
  size_t total = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    ck_assert_msg(!strstr(e->d_name, "safetensors"), "%s/%s: weights written", dir, e->d_name);
    char *p = pf_path_join(dir, e->d_name);
    size_t n = 0;
    free(pf_test_read(p, &n));
    total += n;
    free(p);
  }
  closedir(d);
  return total;
}

/* pf_synth_open_plan on an empty cache: the planned model of every preset, named by
 * the spec, whose config, stored tensors (names, dtypes, shapes, which ones are
 * views of the file) and parameter count are the written checkpoint's; a few KB
 * in "<cache folder>.plan", no weights. Once the checkpoint is cached, it is what
 * pf_synth_open_plan loads. */
START_TEST(test_open_plan) {
  const char *preset = pf_synth_presets()[_i];
  int big = strstr(preset, "1b") || strstr(preset, "7b") || strstr(preset, "13b") ||
            strstr(preset, "medium"); /* not written here: too big for a unit test */
  char *root = pf_test_tmpdir("plan");
  setenv("PFRUN_CACHE", root, 1);
  char spec[64], leaf[96];
  snprintf(spec, sizeof spec, "synthetic:%s@9", preset);
  pf_err err = {0};
  pf_model *plan = NULL, *real = NULL, *again = NULL;
  ck_assert_msg(pf_synth_open_plan(spec, &plan, &err) == PF_OK, "%s: %s", spec, err.msg);
  ck_assert_str_eq(plan->name, spec);
  ck_assert(pf_tensor_is_planned(plan->layers[0].up_proj));
  ck_assert_ptr_nonnull(strstr(plan->source_dir, ".plan"));
  ck_assert_uint_lt(dir_bytes(plan->source_dir), 64 << 10);
  char *syn = pf_path_join(root, "synthetic");
  ck_assert_int_eq(count_prefixed(syn, preset), 1); /* only the .plan folder */
  /* the tokenizer is there */
  char *tok = pf_path_join(plan->source_dir, "tokenizer.json");
  ck_assert(pf_path_exists(tok));
  free(tok);
  if (!big) {
    char *dir = NULL;
    ck_assert_msg(pf_synth_resolve(spec, &dir, NULL, &err) == PF_OK, "%s", err.msg);
    real = load(dir);
    size_t a = 0, b = 0;
    char *ca = read_in(plan->source_dir, "config.json", &a), *cb = read_in(dir, "config.json", &b);
    ck_assert_msg(a == b && memcmp(ca, cb, a) == 0, "%s: config.json differs:\n%s\n---\n%s", spec,
                  ca, cb);
    free(ca);
    free(cb);
    stored_list *lp = calloc(1, sizeof *lp), *lr = calloc(1, sizeof *lr);
    lp->m = plan;
    lr->m = real;
    pf_model_foreach_tensor(plan, list_stored, lp);
    pf_model_foreach_tensor(real, list_stored, lr);
    size_t d = 0; /* the first line that differs */
    for (size_t i = 0; lp->text[i] && lp->text[i] == lr->text[i]; i++)
      if (lp->text[i] == '\n') d = i + 1;
    ck_assert_msg(strcmp(lp->text, lr->text) == 0, "%s: planned %.120s, written %.120s", spec,
                  lp->text + d, lr->text + d);
    ck_assert_int_eq(pf_model_param_count(plan), pf_model_param_count(real));
    ck_assert_uint_eq(pf_model_weight_bytes(plan), pf_model_weight_bytes(real));
    free(lp);
    free(lr);
    /* cached now: the checkpoint itself */
    ck_assert_msg(pf_synth_open_plan(spec, &again, &err) == PF_OK, "%s", err.msg);
    ck_assert_str_eq(again->name, spec);
    ck_assert(!pf_tensor_is_planned(again->layers[0].up_proj));
    ck_assert_str_eq(again->source_dir, real->source_dir);
    free(dir);
  }
  snprintf(leaf, sizeof leaf, "%s-s9-", preset);
  ck_assert_int_eq(count_prefixed(syn, leaf), big ? 1 : 2); /* no .tmp- siblings */
  /* a cache that cannot be written: the error names the spec */
  char *file = pf_path_join(root, "file"), *under = pf_path_join(file, "cache");
  pf_test_write(file, "x");
  setenv("PFRUN_CACHE", under, 1);
  pf_model *none = NULL;
  ck_assert_int_eq(pf_synth_open_plan(spec, &none, &err), PF_ERR_IO);
  ck_assert_ptr_null(none);
  char want[128];
  snprintf(want, sizeof want, "%s: writing its config and tokenizer to the cache: ", spec);
  pf_assert_err(err, want);
  free(file);
  free(under);
  pf_model_release(plan);
  pf_model_release(real);
  pf_model_release(again);
  free(syn);
  unsetenv("PFRUN_CACHE");
  pf_test_rmtree(root);
  free(root);
}
END_TEST

/* Several processes resolve the same spec at once: all succeed, one folder, no leftovers. */
START_TEST(test_concurrent_resolve) {
  char *root = pf_test_tmpdir("race");
  setenv("PFRUN_CACHE", root, 1);
  pid_t kids[4];
  for (int i = 0; i < 4; i++) {
    kids[i] = fork();
    ck_assert_int_ge(kids[i], 0);
    if (kids[i] == 0) {
      char *dir = NULL;
      pf_err err = {0};
      pf_status s = pf_synth_resolve("synthetic:llama-small@5", &dir, NULL, &err);
      if (s != PF_OK) fprintf(stderr, "child: %s\n", err.msg);
      free(dir);
      free(root); /* the child's copy (valgrind checks the children for leaks too) */
      _exit(s == PF_OK ? 0 : 1);
    }
  }
  for (int i = 0; i < 4; i++) {
    int st = 0;
    ck_assert_int_eq(waitpid(kids[i], &st, 0), kids[i]);
    ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  }
  char *syn = pf_path_join(root, "synthetic");
  ck_assert_int_eq(count_prefixed(syn, "llama-small-s5-f32"), 1); /* no .tmp- siblings */
  char *dir = pf_path_join(syn, "llama-small-s5-f32");
  pf_model *m = load(dir);
  ck_assert_int_eq(m->n_layers, 6);
  pf_model_release(m);
  free(dir);
  free(syn);
  unsetenv("PFRUN_CACHE");
  pf_test_rmtree(root);
  free(root);
}
END_TEST

static Suite *make_suite(void) {
  Suite *s = suite_create("synthetic");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_preset_list);
  tcase_add_loop_test(tc, test_preset_loads, 0, (int)(sizeof expects / sizeof expects[0]));
  tcase_add_test(tc, test_tokenizer_json);
  tcase_add_test(tc, test_determinism);
  tcase_add_test(tc, test_write_errors);
  tcase_add_test(tc, test_spec);
  tcase_add_test(tc, test_concurrent_resolve);
  tcase_add_loop_test(tc, test_open_plan, 0, 15);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return pf_test_main(make_suite);
}
