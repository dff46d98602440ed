/* check_model_save.c — pf_model_save: round trips, dtype conversion (each byte
 * written once), refusals, failures that leave nothing, sharding, pruned configs.
 * Split from check_model.c. */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"
#include "model.h"
#include "modelutil.h"
#include "safetensors.h"
#include "testutil.h"

/* ---- saving ---- */

/* The same, making the file's folder first: an output folder that appears meanwhile. */
static void make_during_save(void *ud, const char *what, uint64_t done, uint64_t total) {
  (void)what, (void)done, (void)total;
  char **path = ud;
  if (*path) {
    char *dir = strdup(*path);
    *strrchr(dir, '/') = '\0';
    pf_err e = {0};
    ck_assert_int_eq(pf_mkdirs(dir, &e), PF_OK);
    free(dir);
    pf_test_write(*path, "made meanwhile");
    *path = NULL;
  }
}

/* A progress callback that writes user_data's file (path) at the save's first report:
 * something written into the output folder while the save runs. */
static void write_during_save(void *ud, const char *what, uint64_t done, uint64_t total) {
  (void)what, (void)done, (void)total;
  char **path = ud;
  if (*path) {
    pf_test_write(*path, "the user's notes");
    *path = NULL;
  }
}

/* What every save test starts from and removes at its end: a synthetic
 * checkpoint (dir), the model loaded from it (m), a fresh folder (root) and the
 * output path inside it (out). */
typedef struct save_fx {
  char *dir, *root, *out;
  pf_model *m;
} save_fx;

static save_fx fx_new(const char *preset, uint64_t seed, const char *dtype, const char *tag) {
  save_fx f;
  f.dir = pf_test_synth(preset, seed, dtype);
  f.m = load_ok(f.dir);
  f.root = pf_test_tmpdir(tag);
  f.out = pf_path_join(f.root, "out");
  return f;
}

static void fx_free(save_fx *f) {
  pf_model_release(f->m);
  pf_test_rmtree(f->root);
  free(f->root);
  free(f->out);
  rm_parent(f->dir);
}

static const char *dtypes[] = {NULL, "bf16", "f16"};

START_TEST(test_save_roundtrip) {
  save_fx fx = fx_new("llama-tiny", 3, dtypes[_i], "save");
  char *dir = fx.dir, *root = fx.root, *out = fx.out;
  pf_model *m = fx.m;
  pf_err err = {0};
  /* custom code an auto_map names and a chat template go with the checkpoint; other
   * files (a model card, notes) and folders do not */
  const char *extra[] = {"modeling_custom.py", "configuration_custom.py", "chat_template.json"};
  for (int i = 0; i < 3; i++) {
    char *p = pf_path_join(dir, extra[i]);
    pf_test_write(p, extra[i]);
    free(p);
  }
  char *notes = pf_path_join(dir, "notes.txt"), *pkg = pf_path_join(dir, "pkg.py");
  pf_test_write(notes, "mine");
  ck_assert_int_eq(mkdir(pkg, 0755), 0);
  ck_assert_msg(pf_model_save(m, out, NULL, 0, NULL, &err) == PF_OK, "%s", err.msg);
  rmdir(pkg);
  unlink(notes);
  free(notes);
  free(pkg);
  pf_model *r = load_ok(out);
  ck_assert_int_eq(r->dtype, m->dtype);
  assert_same_bytes(m, r);
  const char *files[] = {"tokenizer.json",          "tokenizer_config.json",
                         "special_tokens_map.json", "generation_config.json",
                         "modeling_custom.py",      "configuration_custom.py",
                         "chat_template.json"};
  for (int i = 0; i < 7; i++)
    assert_same_file(dir, out, files[i]);
  char *no1 = pf_path_join(out, "notes.txt"), *no2 = pf_path_join(out, "pkg.py");
  ck_assert_msg(!pf_path_exists(no1) && !pf_path_exists(no2), "notes.txt or pkg.py copied");
  free(no1);
  free(no2);
  cJSON *j = read_config(out);
  ck_assert_str_eq(cJSON_GetObjectItem(j, "torch_dtype")->valuestring,
                   pf_dtype_torch_name(m->dtype));
  ck_assert_str_eq(cJSON_GetObjectItem(j, "architectures")->child->valuestring, "LlamaForCausalLM");
  ck_assert_double_eq(cJSON_GetObjectItem(j, "initializer_range")->valuedouble, 0.02);
  cJSON_Delete(j);
  ck_assert_int_eq(count_prefixed(root, "out.tmp-"), 0);
  /* a saved model can be saved again (source is now `out`) */
  char *out2 = pf_path_join(root, "out2");
  ck_assert_msg(pf_model_save(r, out2, NULL, 0, NULL, &err) == PF_OK, "%s", err.msg);
  assert_same_file(out, out2, "model.safetensors");
  free(out2);
  pf_model_release(r);
  fx_free(&fx);
}
END_TEST

START_TEST(test_save_convert) {
  save_fx fx = fx_new("llama-tiny", 3, NULL, "conv");
  char *root = fx.root, *out = fx.out;
  pf_model *m = fx.m;
  pf_err err = {0};
  pf_save_opts o = {.have_dtype = 1, .dtype = PF_DTYPE_BF16};
  ck_assert_msg(pf_model_save(m, out, &o, 0, NULL, &err) == PF_OK, "%s", err.msg);
  pf_model *r = load_ok(out);
  ck_assert_int_eq(r->dtype, PF_DTYPE_BF16);
  ck_assert_str_eq(r->config.torch_dtype, "bfloat16");
  names *a = list_tensors(m), *b = list_tensors(r);
  ck_assert_int_eq(a->count, b->count);
  for (int i = 0; i < a->count; i++) {
    const float *f = a->t[i]->data;
    const uint16_t *h = b->t[i]->data;
    for (int64_t k = 0; k < pf_tensor_numel(a->t[i]); k++)
      ck_assert_uint_eq(h[k], pf_f32_to_bf16(f[k])); /* round to nearest even */
  }
  free(a);
  free(b);
  /* and back to F32: exact widening */
  char *back = pf_path_join(root, "back");
  o.dtype = PF_DTYPE_F32;
  ck_assert_msg(pf_model_save(r, back, &o, 0, NULL, &err) == PF_OK, "%s", err.msg);
  pf_model *w = load_ok(back);
  const float *f = w->layers[1].up_proj->data;
  const uint16_t *h = r->layers[1].up_proj->data;
  for (int64_t k = 0; k < pf_tensor_numel(w->layers[1].up_proj); k++)
    ck_assert(f[k] == pf_bf16_to_f32(h[k]));
  ck_assert_int_eq(count_prefixed(root, "back.tmp-"), 0);
  pf_model_release(w);
  free(back);
  pf_model_release(r);
  fx_free(&fx);
}
END_TEST

/* Bytes this process has asked to write so far (/proc/self/io "wchar"), or -1
 * when the kernel does not say. */
static long long wchar_now(void) {
  FILE *f = fopen("/proc/self/io", "r");
  long long v = -1;
  char line[128];
  while (f && fgets(line, sizeof line, f))
    if (sscanf(line, "wchar: %lld", &v) == 1) break;
  if (f) fclose(f);
  return v;
}

static long long folder_bytes(const char *dir) {
  DIR *d = opendir(dir);
  ck_assert_ptr_nonnull(d);
  long long n = 0;
  for (struct dirent *e; (e = readdir(d));) {
    if (e->d_name[0] == '.') continue;
    char *p = pf_path_join(dir, e->d_name);
    size_t len = 0;
    char *b = pf_test_read(p, &len);
    n += (long long)len;
    free(b);
    free(p);
  }
  closedir(d);
  return n;
}

/* A converted save writes each output byte once (no staging copy), and its
 * shards are planned on the converted sizes: the same files as converting
 * first and sharding the converted model. */
START_TEST(test_save_convert_once) {
  save_fx fx = fx_new("llama-small", 4, NULL, "conv1");
  char *root = fx.root, *out = fx.out;
  pf_model *m = fx.m;
  char *sharded = pf_path_join(root, "sharded"), *resharded = pf_path_join(root, "resharded");
  pf_err err = {0};
  pf_save_opts o = {.have_dtype = 1, .dtype = PF_DTYPE_BF16};
  long long w0 = wchar_now();
  ck_assert_msg(pf_model_save(m, out, &o, 0, NULL, &err) == PF_OK, "%s", err.msg);
  long long w1 = wchar_now(), size = folder_bytes(out);
  if (w0 < 0 || w1 < 0)
    fprintf(stderr, "test_save_convert_once: /proc/self/io has no wchar here; bytes written "
                    "not checked\n");
  else
    ck_assert_msg(w1 - w0 <= size + size / 20, "a converted save of %lld bytes wrote %lld", size,
                  w1 - w0);
  o.max_shard_bytes = 500000;
  ck_assert_msg(pf_model_save(m, sharded, &o, 0, NULL, &err) == PF_OK, "%s", err.msg);
  pf_model *r = load_ok(out);
  pf_save_opts plain = {.max_shard_bytes = 500000};
  ck_assert_msg(pf_model_save(r, resharded, &plain, 0, NULL, &err) == PF_OK, "%s", err.msg);
  ck_assert_int_ge(count_prefixed(sharded, "model-0000"), 4); /* 2.3 MB in <= 0.5 MB shards */
  ck_assert_int_eq(count_prefixed(sharded, "model-0000"), count_prefixed(resharded, "model-0000"));
  DIR *d = opendir(resharded);
  for (struct dirent *e; (e = readdir(d));)
    if (strstr(e->d_name, ".safetensors")) assert_same_file(sharded, resharded, e->d_name);
  closedir(d);
  pf_model_release(r);
  free(sharded);
  free(resharded);
  fx_free(&fx);
}
END_TEST

START_TEST(test_save_refusals) {
  save_fx fx = fx_new("llama-small", 3, NULL, "refuse");
  char *dir = fx.dir, *root = fx.root, *out = fx.out;
  pf_model *m = fx.m;
  pf_err err = {0};
  /* into the input folder, or below it */
  ck_assert_int_eq(pf_model_save(m, dir, NULL, 1, NULL, &err), PF_ERR_INVALID);
  pf_assert_err(err, "refusing to write into the input folder");
  char *sub = pf_path_join(dir, "pruned");
  ck_assert_int_eq(pf_model_save(m, sub, NULL, 0, NULL, &err), PF_ERR_INVALID);
  pf_assert_err(err, "refusing to write into the input folder");
  ck_assert(!pf_path_exists(sub));
  free(sub);
  /* replacing a parent of the input folder would delete it */
  char *parent = strdup(dir);
  *strrchr(parent, '/') = '\0';
  ck_assert_int_eq(pf_model_save(m, parent, NULL, 1, NULL, &err), PF_ERR_INVALID);
  pf_assert_err(err, "contains the input folder");
  free(parent);
  /* an existing non-empty folder: refused unless overwrite */
  ck_assert_int_eq(pf_mkdirs(out, &err), PF_OK);
  char *marker = pf_path_join(out, "old.txt");
  pf_test_write(marker, "old");
  ck_assert_int_eq(pf_model_save(m, out, NULL, 0, NULL, &err), PF_ERR_INVALID);
  pf_assert_err(err, "the output folder exists and is not empty");
  ck_assert(pf_path_exists(marker));
  ck_assert_msg(pf_model_save(m, out, NULL, 1, NULL, &err) == PF_OK, "%s", err.msg);
  ck_assert(!pf_path_exists(marker)); /* replaced as a whole */
  pf_model *r = load_ok(out);
  assert_same_bytes(m, r);
  /* while r, loaded from out, is alive, no other model replaces out or writes into it */
  ck_assert_int_eq(pf_model_save(m, out, NULL, 1, NULL, &err), PF_ERR_INVALID);
  pf_assert_err(err, "refusing to write there: a model loaded from ");
  pf_assert_err(err, "is still in use and reads its files (tokenizer, weights) from that folder");
  char *inside = pf_path_join(out, "sub");
  ck_assert_int_eq(pf_model_save(m, inside, NULL, 0, NULL, &err), PF_ERR_INVALID);
  pf_assert_err(err, "is still in use");
  ck_assert(!pf_path_exists(inside));
  free(inside);
  pf_model *d = NULL; /* a model derived from r counts as reading out too */
  ck_assert_int_eq(pf_model_derive(r, &d, &err), PF_OK);
  pf_model_release(r);
  ck_assert_int_eq(pf_model_save(m, out, NULL, 1, NULL, &err), PF_ERR_INVALID);
  pf_model_release(d);
  ck_assert_msg(pf_model_save(m, out, NULL, 1, NULL, &err) == PF_OK, "%s", err.msg);
  /* an existing empty folder is fine */
  char *empty = pf_path_join(root, "empty");
  ck_assert_int_eq(pf_mkdirs(empty, &err), PF_OK);
  ck_assert_msg(pf_model_save(m, empty, NULL, 0, NULL, &err) == PF_OK, "%s", err.msg);
  ck_assert_int_eq(count_prefixed(root, "out.tmp-") + count_prefixed(root, "empty.tmp-"), 0);
  /* an empty folder that something writes into during the save is not replaced: the
   * save fails and the file stays (before: the folder was swapped out and deleted) */
  char *filled = pf_path_join(root, "filled"), *notes = pf_path_join(filled, "notes.txt");
  ck_assert_int_eq(pf_mkdirs(filled, &err), PF_OK);
  char *pending = notes;
  pf_ctx during = {.progress = write_during_save, .user_data = &pending};
  ck_assert_int_eq(pf_model_save(m, filled, NULL, 0, &during, &err), PF_ERR_INVALID);
  ck_assert_ptr_null(pending); /* the file was written during the save */
  pf_assert_err(err, "not empty any more");
  char *kept = pf_test_read(notes, NULL);
  ck_assert_str_eq(kept, "the user's notes");
  free(kept);
  ck_assert_int_eq(count_prefixed(root, "filled.tmp-"), 0);
  /* with overwrite, a folder that appears during the save is replaced, as asked
   * (before: "already exists (not replacing it)") */
  char *appears = pf_path_join(root, "appears"), *late = pf_path_join(appears, "late.txt");
  pending = late;
  during.progress = make_during_save;
  ck_assert_msg(pf_model_save(m, appears, NULL, 1, &during, &err) == PF_OK, "%s", err.msg);
  ck_assert_ptr_null(pending);
  ck_assert(!pf_path_exists(late)); /* replaced as a whole */
  pf_model *a = load_ok(appears);
  assert_same_bytes(m, a);
  pf_model_release(a);
  free(appears);
  free(late);
  free(filled);
  free(notes);
  free(empty);
  free(marker);
  fx_free(&fx);
}
END_TEST

START_TEST(test_save_failure_leaves_nothing) {
  save_fx fx = fx_new("llama-tiny", 3, NULL, "fail");
  char *root = fx.root, *out = fx.out;
  pf_model *m = fx.m, *d = NULL;
  pf_err err = {0};
  /* a planned tensor (from a dry run) cannot be saved */
  ck_assert_int_eq(pf_model_derive(m, &d, &err), PF_OK);
  pf_tensor *p = NULL;
  int64_t shape[2] = {176, 64};
  ck_assert_int_eq(pf_tensor_new_planned(PF_DTYPE_F32, 2, shape, &p, &err), PF_OK);
  ck_assert_int_eq(pf_model_set_tensor(d, "model.layers.2.mlp.up_proj.weight", p, &err), PF_OK);
  ck_assert_int_eq(pf_model_save(d, out, NULL, 0, NULL, &err), PF_ERR_INVALID);
  pf_assert_err(err, "model.layers.2.mlp.up_proj.weight is a planned tensor");
  ck_assert(!pf_path_exists(out));
  ck_assert_int_eq(count_prefixed(root, "out"), 0);
  pf_model_release(d);
  /* an inconsistent model is refused before anything is written */
  ck_assert_int_eq(pf_model_derive(m, &d, &err), PF_OK);
  d->config.vocab_size = 100;
  ck_assert_int_eq(pf_model_save(d, out, NULL, 0, NULL, &err), PF_ERR_FORMAT);
  pf_assert_err(err, "the model is inconsistent");
  ck_assert_int_eq(count_prefixed(root, "out"), 0);
  pf_model_release(d);
  /* a failure after the temporary folder exists (interrupt): it is removed */
  volatile int stop = 1;
  pf_ctx ctx = {.interrupt = &stop};
  ck_assert_int_eq(pf_model_save(m, out, NULL, 0, &ctx, &err), PF_ERR_INTERRUPTED);
  ck_assert_int_eq(count_prefixed(root, "out"), 0);
  pf_save_opts o = {.have_dtype = 1, .dtype = PF_DTYPE_F16};
  ck_assert_int_eq(pf_model_save(m, out, &o, 0, &ctx, &err), PF_ERR_INTERRUPTED);
  ck_assert_int_eq(count_prefixed(root, "out"), 0);
  fx_free(&fx);
}
END_TEST

START_TEST(test_save_sharded) {
  save_fx fx = fx_new("llama-small", 4, NULL, "shard");
  char *out = fx.out;
  pf_model *m = fx.m;
  pf_err err = {0};
  pf_save_opts o = {.max_shard_bytes = 1000000};
  ck_assert_msg(pf_model_save(m, out, &o, 0, NULL, &err) == PF_OK, "%s", err.msg);
  char *index = pf_path_join(out, "model.safetensors.index.json");
  ck_assert(pf_path_exists(index));
  ck_assert_int_ge(count_prefixed(out, "model-0000"), 4); /* 4.6 MB in <= 1 MB shards */
  pf_model *r = load_ok(out);
  assert_same_bytes(m, r);
  ck_assert_ptr_null(r->lm_head);
  pf_model_release(r);
  free(index);
  fx_free(&fx);
}
END_TEST

START_TEST(test_save_pruned_config) {
  save_fx fx = fx_new("llama-tiny", 5, NULL, "pruned");
  char *root = fx.root, *out = fx.out;
  pf_model *m = fx.m;
  pf_model *d = narrow_layer1(m); /* config not told: save takes widths from the tensors */
  pf_err err = {0};
  ck_assert_int_eq(pf_model_remove_layer(d, 0, &err), PF_OK); /* layer 1 is now 0 */
  ck_assert_msg(pf_model_save(d, out, NULL, 0, NULL, &err) == PF_OK, "%s", err.msg);
  cJSON *j = read_config(out);
  ck_assert_int_eq(cJSON_GetObjectItem(j, "num_hidden_layers")->valueint, 3);
  ck_assert_int_eq(cJSON_GetObjectItem(j, "intermediate_size")->valueint, 176);
  cJSON *is = cJSON_GetObjectItem(j, "intermediate_sizes");
  ck_assert_int_eq(cJSON_GetArraySize(is), 3);
  ck_assert_int_eq(cJSON_GetArrayItem(is, 0)->valueint, 100);
  ck_assert_int_eq(cJSON_GetArrayItem(is, 1)->valueint, 176);
  ck_assert_int_eq(cJSON_GetObjectItem(j, "bos_token_id")->valueint, 1); /* kept */
  ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(j, "tie_word_embeddings")));
  cJSON_Delete(j);
  pf_model *r = load_ok(out);
  ck_assert_int_eq(r->n_layers, 3);
  ck_assert_int_eq(r->layers[0].up_proj->shape[0], 100);
  ck_assert_int_eq(pf_model_param_count(r), pf_model_param_count(d));
  assert_same_bytes(d, r);
  pf_model_release(r);
  /* tying: a model whose lm_head was dropped saves as tied */
  pf_model *t = NULL;
  ck_assert_int_eq(pf_model_derive(m, &t, &err), PF_OK);
  ck_assert_int_eq(pf_model_set_tensor(t, "lm_head.weight", NULL, &err), PF_OK);
  char *tied = pf_path_join(root, "tied");
  ck_assert_msg(pf_model_save(t, tied, NULL, 0, NULL, &err) == PF_OK, "%s", err.msg);
  r = load_ok(tied);
  ck_assert_ptr_null(r->lm_head);
  ck_assert_int_eq(r->config.tie_word_embeddings, 1);
  pf_model_release(r);
  pf_model_release(t);
  free(tied);
  pf_model_release(d);
  fx_free(&fx);
}
END_TEST

static Suite *make_suite(void) {
  Suite *s = suite_create("model_save");
  TCase *tc;
  tc = tcase_create("save");
  tcase_set_timeout(tc, 120);
  tcase_add_loop_test(tc, test_save_roundtrip, 0, 3);
  tcase_add_test(tc, test_save_convert);
  tcase_add_test(tc, test_save_convert_once);
  tcase_add_test(tc, test_save_refusals);
  tcase_add_test(tc, test_save_failure_leaves_nothing);
  tcase_add_test(tc, test_save_sharded);
  tcase_add_test(tc, test_save_pruned_config);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return pf_test_main(make_suite);
}
