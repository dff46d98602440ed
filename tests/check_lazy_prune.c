/* check_lazy_prune.c — lazy tensors (tensor.h "Lazy tensors") against the
 * materialised ones they stand for.
 *
 * Width pruning makes lazy selections that the safetensors writer gathers into
 * the file. Each case here prunes a synthetic checkpoint twice with the same
 * options: once as it is (lazy), and once with every pruned tensor replaced by
 * an eager copy (pf_tensor_select_*, the way pruning worked before: heap bytes,
 * composed on save by the eager transpose / concat code). Both are saved and the
 * folders must be byte-identical, in F32, F16 and BF16, sharded and not, with a
 * dtype conversion on save, for LLaMA, Phi-3 (fused gate_up), GPT-2 (Conv1D,
 * transposed) and GPT-NeoX (plain MLP with biases). The lazy model must still
 * be lazy after its save (nothing was materialised), and its fingerprint and
 * logits must equal the eager model's exactly.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "goldutil.h"
#include "model.h"
#include "opdata.h"
#include "pruning.h"
#include "testutil.h"

/* ---- the primitives ---- */

static pf_tensor *ramp(pf_dtype dt, int ndim, int64_t r, int64_t c) {
  int64_t shape[2] = {r, c};
  pf_tensor *t = NULL;
  pf_err err = {0};
  ck_assert_int_eq(pf_tensor_new(dt, ndim, ndim == 1 ? &c : shape, &t, &err), PF_OK);
  float v[1];
  char *d = pf_tensor_mutable_data(t);
  for (int64_t i = 0; i < pf_tensor_numel(t); i++) {
    v[0] = (float)(i * 7 % 1000) - 500.0f;
    pf_convert(d + (size_t)i * pf_dtype_size(dt), dt, v, PF_DTYPE_F32, 1);
  }
  return t;
}

/* Every element range of a (lazy) against b (eager) through pf_tensor_read, and
 * the materialised bytes. */
static void same_bytes(const pf_tensor *a, const pf_tensor *b) {
  ck_assert_int_eq(a->ndim, b->ndim);
  ck_assert(!memcmp(a->shape, b->shape, sizeof(int64_t) * (size_t)a->ndim));
  ck_assert_uint_eq(a->nbytes, b->nbytes);
  const size_t es = pf_dtype_size(a->dtype), n = a->nbytes / es;
  char *buf = malloc(a->nbytes + 1);
  for (size_t first = 0; first < n; first += 1 + n / 7)
    for (size_t len = 0; first + len <= n; len += 1 + n / 5) {
      pf_tensor_read(a, first, len, buf);
      ck_assert(!memcmp(buf, (const char *)b->data + first * es, len * es));
    }
  float *fa = malloc(sizeof(float) * (n ? n : 1)), *fb = malloc(sizeof(float) * (n ? n : 1));
  pf_tensor_to_f32(a, fa);
  pf_tensor_to_f32(b, fb);
  ck_assert(!memcmp(fa, fb, sizeof(float) * n));
  ck_assert(pf_tensor_is_deferred(a));
  ck_assert(!memcmp(pf_test_bytes(a), b->data, a->nbytes));
  ck_assert(!pf_tensor_is_deferred(a));
  free(fa);
  free(fb);
  free(buf);
}

START_TEST(test_lazy_primitives) {
  static const pf_dtype dts[3] = {PF_DTYPE_F32, PF_DTYPE_F16, PF_DTYPE_BF16};
  const int64_t r4[4] = {8, 0, 3, 3}, c4[4] = {6, 0, 2, 1}, r3[3] = {3, 1, 2}, e3[3] = {12, 0, 5};
  pf_err err = {0};
  for (int d = 0; d < 3; d++) {
    pf_tensor *t = ramp(dts[d], 2, 9, 11), *v = ramp(dts[d], 1, 1, 13);
    enum { N = 27 };
    pf_tensor *a[N] = {0}, *b[N] = {0}; /* a: lazy, b: eager twins */
    /* rows, columns of the rows, the transpose, rows of that, a row view */
    ck_assert_int_eq(pf_tensor_gather_rows(t, r4, 4, &a[0], &err), PF_OK);
    ck_assert_int_eq(pf_tensor_select_rows(t, r4, 4, &b[0], &err), PF_OK);
    ck_assert_int_eq(pf_tensor_gather_cols(a[0], c4, 4, &a[1], &err), PF_OK);
    ck_assert_int_eq(pf_tensor_select_cols(b[0], c4, 4, &b[1], &err), PF_OK);
    ck_assert_int_eq(pf_tensor_transpose(a[1], &a[2], &err), PF_OK);
    ck_assert_int_eq(pf_tensor_transpose(b[1], &b[2], &err), PF_OK);
    ck_assert_ptr_null(a[2]->data);
    ck_assert_int_eq(pf_tensor_gather_rows(a[2], r3, 3, &a[3], &err), PF_OK);
    ck_assert_int_eq(pf_tensor_select_rows(b[2], r3, 3, &b[3], &err), PF_OK);
    ck_assert_int_eq(pf_tensor_gather_cols(a[3], r3, 3, &a[4], &err), PF_OK);
    ck_assert_int_eq(pf_tensor_select_cols(b[3], r3, 3, &b[4], &err), PF_OK);
    ck_assert_int_eq(pf_tensor_rows_view(a[3], 1, 3, &a[5], &err), PF_OK);
    ck_assert_int_eq(pf_tensor_rows_view(b[3], 1, 3, &b[5], &err), PF_OK);
    ck_assert_int_eq(pf_tensor_transpose(a[4], &a[6], &err), PF_OK);
    ck_assert_int_eq(pf_tensor_transpose(b[4], &b[6], &err), PF_OK);
    for (int i = 6; i >= 0; i--)
      same_bytes(a[i], b[i]);
    /* Phi-3: kept rows of both halves of one fused tensor, joined again */
    ck_assert_int_eq(pf_tensor_rows_view(t, 0, 4, &a[7], &err), PF_OK);
    ck_assert_int_eq(pf_tensor_rows_view(t, 4, 9, &a[8], &err), PF_OK);
    ck_assert_int_eq(pf_tensor_gather_rows(a[7], r3, 2, &a[9], &err), PF_OK);
    ck_assert_int_eq(pf_tensor_gather_rows(a[8], r3, 3, &a[10], &err), PF_OK);
    ck_assert_int_eq(pf_tensor_select_rows(a[7], r3, 2, &b[9], &err), PF_OK);
    ck_assert_int_eq(pf_tensor_select_rows(a[8], r3, 3, &b[10], &err), PF_OK);
    ck_assert_int_eq(pf_tensor_concat_rows((const pf_tensor *const *)&a[9], 2, &a[11], &err),
                     PF_OK);
    ck_assert_int_eq(pf_tensor_concat_rows((const pf_tensor *const *)&b[9], 2, &b[11], &err),
                     PF_OK);
    ck_assert_ptr_nonnull(a[11]->lazy);
    same_bytes(a[11], b[11]);
    /* parts of different tensors: materialised, then joined */
    const pf_tensor *mixed_a[2] = {a[9], a[0]}, *mixed_b[2] = {b[9], b[0]};
    ck_assert_int_eq(pf_tensor_concat_rows(mixed_a, 2, &a[12], &err), PF_OK);
    ck_assert_int_eq(pf_tensor_concat_rows(mixed_b, 2, &b[12], &err), PF_OK);
    ck_assert_ptr_null(a[12]->lazy);
    ck_assert(!memcmp(a[12]->data, b[12]->data, b[12]->nbytes));
    /* biases */
    ck_assert_int_eq(pf_tensor_gather_elems(v, e3, 3, &a[14], &err), PF_OK);
    ck_assert_int_eq(pf_tensor_select_elems(v, e3, 3, &b[14], &err), PF_OK);
    ck_assert_int_eq(pf_tensor_gather_elems(a[14], r3 + 1, 2, &a[15], &err), PF_OK);
    ck_assert_int_eq(pf_tensor_select_elems(b[14], r3 + 1, 2, &b[15], &err), PF_OK);
    same_bytes(a[15], b[15]);
    same_bytes(a[14], b[14]);
    /* out of range is refused, planned in is planned out */
    ck_assert_int_eq(pf_tensor_gather_cols(t, (const int64_t[]){11}, 1, &a[16], &err),
                     PF_ERR_INVALID);
    ck_assert_ptr_null(a[16]);
    ck_assert_int_eq(pf_tensor_new_planned(dts[d], 2, (const int64_t[]){4, 4}, &b[16], &err),
                     PF_OK);
    ck_assert_int_eq(pf_tensor_gather_rows(b[16], r3, 2, &a[17], &err), PF_OK);
    ck_assert(pf_tensor_is_planned(a[17]));
    /* GPT-2 Conv1D: the lazy transpose, q | k | v rows of it joined again, and
     * the transpose of that: t's own rows (no index list), copied from t as is */
    ck_assert_int_eq(pf_tensor_gather_transpose(t, &a[18], &err), PF_OK);
    ck_assert_int_eq(pf_tensor_transpose(t, &b[18], &err), PF_OK);
    ck_assert_int_eq(pf_tensor_rows_view(a[18], 0, 4, &a[19], &err), PF_OK);
    ck_assert_int_eq(pf_tensor_rows_view(a[18], 4, 11, &a[20], &err), PF_OK);
    ck_assert_int_eq(pf_tensor_rows_view(b[18], 0, 4, &b[19], &err), PF_OK);
    ck_assert_int_eq(pf_tensor_rows_view(b[18], 4, 11, &b[20], &err), PF_OK);
    ck_assert_int_eq(pf_tensor_concat_rows((const pf_tensor *const *)&a[19], 2, &a[21], &err),
                     PF_OK);
    ck_assert_int_eq(pf_tensor_concat_rows((const pf_tensor *const *)&b[19], 2, &b[21], &err),
                     PF_OK);
    ck_assert_ptr_nonnull(a[21]->lazy);
    ck_assert_int_eq(pf_tensor_gather_transpose(a[21], &a[22], &err), PF_OK);
    const pf_tensor *parent = NULL;
    const int64_t *rows = (const int64_t *)&parent;
    ck_assert(pf_tensor_lazy_rows(a[22], &parent, &rows));
    ck_assert_ptr_eq(parent, t);
    ck_assert_ptr_null(rows);
    same_bytes(a[22], t);
    same_bytes(a[21], b[21]);
    same_bytes(a[18], b[18]);
    /* NeoX: a row order and its inverse are t's own rows again */
    const int64_t perm[9] = {3, 0, 7, 1, 8, 2, 4, 6, 5};
    int64_t inv[9];
    for (int i = 0; i < 9; i++)
      inv[perm[i]] = i;
    ck_assert_int_eq(pf_tensor_gather_rows(t, perm, 9, &a[23], &err), PF_OK);
    ck_assert_int_eq(pf_tensor_gather_rows(a[23], inv, 9, &a[24], &err), PF_OK);
    ck_assert(pf_tensor_lazy_rows(a[24], &parent, &rows));
    ck_assert_ptr_null(rows);
    same_bytes(a[24], t);
    /* a planned tensor's transpose is planned */
    ck_assert_int_eq(pf_tensor_gather_transpose(b[16], &a[25], &err), PF_OK);
    ck_assert(pf_tensor_is_planned(a[25]));
    for (int i = 0; i < N; i++) {
      pf_tensor_release(a[i]);
      pf_tensor_release(b[i]);
    }
    pf_tensor_release(t);
    pf_tensor_release(v);
  }
}
END_TEST

/* ---- whole models: lazy save == eager save ---- */

typedef struct lz_case {
  const char *preset, *dtype; /* dtype of the checkpoint */
  pf_width_type type;
  uint64_t shard;      /* max_shard_bytes, 0 = one file */
  const char *save_as; /* convert on save, or NULL */
  int twice;           /* prune the pruned model again */
} lz_case;

static pf_model *load_dir(const char *dir) {
  pf_model *m = NULL;
  pf_err err = {0};
  ck_assert_msg(pf_model_load(dir, &m, &err) == PF_OK, "%s", err.msg);
  return m;
}

static void put_eager(pf_tensor **slot, const pf_tensor *src, const int64_t *kept, int64_t k,
                      int cols) {
  if (!*slot) return;
  pf_tensor *t = NULL;
  pf_err err = {0};
  pf_status s = src->ndim == 1 ? pf_tensor_select_elems(src, kept, k, &t, &err)
                : cols         ? pf_tensor_select_cols(src, kept, k, &t, &err)
                               : pf_tensor_select_rows(src, kept, k, &t, &err);
  ck_assert_msg(s == PF_OK, "%s", err.msg);
  ck_assert_ptr_null(t->lazy);
  pf_tensor_release(*slot);
  *slot = t;
}

/* Replace the pruned tensors of q (pruned from m, stats st) by eager copies. */
static void make_eager(const pf_model *m, pf_model *q, const pf_value *st) {
  const pf_value *layers = pf_map_get(st, "layers");
  for (size_t i = 0; i < layers->u.list.len; i++) {
    const pf_value *e = layers->u.list.items[i], *kl = pf_map_get(e, "kept_indices");
    const int64_t li = pf_map_get(e, "index")->u.i, k = (int64_t)kl->u.list.len;
    int64_t *kept = malloc(sizeof(int64_t) * (size_t)(k ? k : 1));
    for (int64_t j = 0; j < k; j++)
      kept[j] = kl->u.list.items[j]->u.i;
    const pf_layer *a = &m->layers[li];
    pf_layer *b = &q->layers[li];
    put_eager(&b->gate_proj, a->gate_proj, kept, k, 0);
    put_eager(&b->up_proj, a->up_proj, kept, k, 0);
    put_eager(&b->down_proj, a->down_proj, kept, k, 1);
    put_eager(&b->gate_bias, a->gate_bias, kept, k, 0);
    put_eager(&b->up_bias, a->up_bias, kept, k, 0);
    free(kept);
  }
}

static void same_folders(const char *x, const char *y) {
  DIR *d = opendir(x);
  ck_assert_ptr_nonnull(d);
  int files = 0, shards = 0;
  for (struct dirent *e; (e = readdir(d));) {
    if (e->d_name[0] == '.') continue;
    char a[4096], b[4096];
    snprintf(a, sizeof a, "%s/%s", x, e->d_name);
    snprintf(b, sizeof b, "%s/%s", y, e->d_name);
    size_t na = 0, nb = 0;
    char *ta = pf_test_read(a, &na), *tb = pf_test_read(b, &nb);
    ck_assert_msg(ta && tb && na == nb && !memcmp(ta, tb, na), "%s differs from %s", a, b);
    free(ta);
    free(tb);
    files++;
    shards += strstr(e->d_name, ".safetensors") && !strstr(e->d_name, "index");
  }
  closedir(d);
  ck_assert_int_ge(files, 2);
  ck_assert_int_ge(shards, 1);
}

static int count_shards(const char *dir) {
  DIR *d = opendir(dir);
  int n = 0;
  for (struct dirent *e; d && (e = readdir(d));)
    n += strstr(e->d_name, "-of-") != NULL;
  if (d) closedir(d);
  return n;
}

static pf_model *prune(const pf_model *m, const lz_case *c, pf_value **st) {
  pf_width_opts o = {.pruning_type = c->type,
                     .method = c->type ? "L2" : "VOW",
                     .have_percentage = 1,
                     .pruning_percentage = 30};
  pf_model *p = NULL;
  pf_err err = {0};
  ck_assert_msg(pf_prune_width(m, &o, NULL, &p, st, &err) == PF_OK, "%s", err.msg);
  return p;
}

static void run_case(const lz_case *c) {
  char *src = pf_test_synth(c->preset, 11, c->dtype), *tmp = pf_test_tmpdir("lazy");
  pf_model *m = load_dir(src);
  pf_value *st = NULL, *st2 = NULL;
  pf_model *p = prune(m, c, &st), *q = prune(m, c, NULL);
  make_eager(m, q, st);
  if (c->twice) { /* lazy of lazy against eager of eager */
    pf_model *p2 = prune(p, c, &st2), *q2 = prune(q, c, NULL);
    make_eager(q, q2, st2);
    pf_model_release(p);
    pf_model_release(q);
    p = p2;
    q = q2;
  }
  pf_save_opts so = {.max_shard_bytes = c->shard};
  pf_err err = {0};
  if (c->save_as) {
    ck_assert_int_eq(pf_dtype_parse(c->save_as, &so.dtype, &err), PF_OK);
    so.have_dtype = 1;
  }
  char lazy_dir[4200], eager_dir[4200];
  snprintf(lazy_dir, sizeof lazy_dir, "%s/lazy", tmp);
  snprintf(eager_dir, sizeof eager_dir, "%s/eager", tmp);
  ck_assert_msg(pf_model_save(p, lazy_dir, &so, 0, NULL, &err) == PF_OK, "%s", err.msg);
  ck_assert_msg(pf_model_save(q, eager_dir, &so, 0, NULL, &err) == PF_OK, "%s", err.msg);
  same_folders(lazy_dir, eager_dir);
  same_folders(eager_dir, lazy_dir);
  ck_assert_int_eq(count_shards(lazy_dir) > 1, c->shard != 0);
  for (int64_t l = 0; l < p->n_layers; l++) /* prune + save materialised nothing */
    ck_assert_msg(pf_tensor_is_deferred(p->layers[l].up_proj) &&
                      pf_tensor_is_deferred(p->layers[l].down_proj),
                  "%s layer %lld was materialised", c->preset, (long long)l);
  /* The fingerprint (calibration and covariance caches, the calibration check) of a
   * lazily pruned model names what it selects from which loaded weights, not its
   * bytes: the same pruning of the same file gives the same one, before and after a
   * forward pass materialised it; the parent and another pruning get others. */
  char fa[PF_SHA256_HEX], fa2[PF_SHA256_HEX], fm[PF_SHA256_HEX], fo[PF_SHA256_HEX];
  ck_assert_int_eq(pf_model_fingerprint(p, fa, &err), PF_OK);
  ck_assert_int_eq(pf_model_fingerprint(m, fm, &err), PF_OK);
  ck_assert_str_ne(fa, fm);
  if (!c->twice) {
    pf_model *again = prune(m, c, NULL);
    ck_assert_int_eq(pf_model_fingerprint(again, fa2, &err), PF_OK);
    ck_assert_str_eq(fa, fa2);
    pf_model_release(again);
    /* same widths, other neurons kept: only the kept indices tell them apart */
    pf_width_opts o = {.pruning_type = c->type,
                       .method = c->type ? "PPM" : "PON",
                       .have_percentage = 1,
                       .pruning_percentage = 30};
    pf_model *other = NULL;
    ck_assert_msg(pf_prune_width(m, &o, NULL, &other, NULL, &err) == PF_OK, "%s", err.msg);
    ck_assert_int_eq(pf_model_fingerprint(other, fo, &err), PF_OK);
    ck_assert_str_ne(fa, fo);
    pf_model_release(other);
  }
  const int32_t ids[6] = {1, 5, 9, 77, 3, 200};
  float *la = run_logits(p, ids, NULL, 1, 6, NULL), *lb = run_logits(q, ids, NULL, 1, 6, NULL);
  ck_assert(!memcmp(la, lb, sizeof(float) * 6 * (size_t)m->config.vocab_size));
  ck_assert(!pf_tensor_is_deferred(p->layers[0].up_proj)); /* the forward materialised it */
  ck_assert_int_eq(pf_model_fingerprint(p, fa2, &err), PF_OK);
  ck_assert_str_eq(fa, fa2);
  free(la);
  free(lb);
  pf_value_release(st);
  pf_value_release(st2);
  pf_model_release(p);
  pf_model_release(q);
  pf_model_release(m);
  pf_test_rmtree(tmp);
  free(tmp);
  pf_test_synth_free(src);
}

static const lz_case cases[] = {
    {"llama-tiny", "float32", PF_WIDTH_MLP_GLU, 0, NULL, 0},
    {"llama-tiny", "float16", PF_WIDTH_MLP_GLU, 60000, NULL, 0},
    {"llama-tiny", "bfloat16", PF_WIDTH_MLP_GLU, 0, NULL, 0},
    {"llama-tiny", "bfloat16", PF_WIDTH_MLP_GLU, 60000, "float32", 0},
    {"llama-tiny", "float32", PF_WIDTH_MLP_GLU, 60000, "bfloat16", 1},
    {"phi3-tiny", "bfloat16", PF_WIDTH_MLP_GLU, 60000, NULL, 0},
    {"phi3-tiny", "float32", PF_WIDTH_MLP_GLU, 0, NULL, 1},
    {"gpt2-tiny", "float32", PF_WIDTH_MLP, 60000, NULL, 0},
    {"gpt2-tiny", "float16", PF_WIDTH_MLP, 0, "float32", 1},
    {"neox-tiny", "float16", PF_WIDTH_MLP, 60000, NULL, 0},
};

START_TEST(test_lazy_save_identical) {
  run_case(&cases[_i]);
}
END_TEST

/* An unchanged model's stored tensors, for every family (GPT-2's transposed
 * Conv1D and fused c_attn, NeoX's head-interleaved query_key_value, Phi-3's
 * fused gate_up), are ranges of the loaded files: loading copied nothing, and
 * a save copies them file to file, byte for byte (fused 1-D biases are
 * gathered element by element: a few KB). */
static int stored_is_file(void *ud, const char *name, const pf_tensor *t) {
  (void)ud;
  pf_file_region r;
  const pf_tensor *parent = NULL;
  const int64_t *rows = NULL;
  if (t->ndim == 1 && pf_tensor_is_deferred(t)) return 0; /* a fused bias: gathered, small */
  if (!pf_tensor_is_deferred(t)) {
    ck_assert_msg(pf_tensor_file_region(t, &r), "%s is not a range of a file", name);
    return 0;
  }
  ck_assert_msg(pf_tensor_lazy_rows(t, &parent, &rows), "%s is not a row selection", name);
  ck_assert_msg(rows == NULL, "%s selects rows", name);
  ck_assert_msg(pf_tensor_file_region(parent, &r), "%s is not a selection of a file", name);
  return 0;
}

static const char *const stored_presets[] = {"llama-tiny", "qwen3-tiny", "gemma2-tiny",
                                             "phi3-tiny",  "gpt2-tiny",  "neox-tiny"};

START_TEST(test_stored_is_file) {
  const char *preset = stored_presets[_i];
  char *src = pf_test_synth(preset, 5, NULL), *tmp = pf_test_tmpdir("stored");
  pf_model *m = load_dir(src);
  pf_err err = {0};
  ck_assert_int_eq(pf_model_foreach_stored(m, stored_is_file, NULL, &err), 0);
  char out[4200];
  snprintf(out, sizeof out, "%s/out", tmp);
  ck_assert_msg(pf_model_save(m, out, NULL, 0, NULL, &err) == PF_OK, "%s", err.msg);
  char *a = pf_path_join(src, "model.safetensors"), *b = pf_path_join(out, "model.safetensors");
  size_t la = 0, lb = 0;
  char *da = pf_test_read(a, &la), *db = pf_test_read(b, &lb);
  ck_assert_msg(da && db && la == lb && !memcmp(da, db, la), "%s: saved bytes differ", preset);
  free(da);
  free(db);
  free(a);
  free(b);
  pf_model_release(m);
  pf_test_rmtree(tmp);
  free(tmp);
  pf_test_synth_free(src);
}
END_TEST

int main(void) {
  Suite *s = suite_create("lazy_prune");
  TCase *t = tcase_create("core");
  tcase_set_timeout(t, 120);
  tcase_add_test(t, test_lazy_primitives);
  tcase_add_loop_test(t, test_stored_is_file, 0,
                      (int)(sizeof stored_presets / sizeof stored_presets[0]));
  tcase_add_loop_test(t, test_lazy_save_identical, 0, (int)(sizeof cases / sizeof cases[0]));
  suite_add_tcase(s, t);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
