/* opdata.c — see opdata.h. */
#include "opdata.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fsutil.h"

pf_data_opts pf_params_data_opts(const pf_value *params) {
  pf_data_opts o = pf_data_opts_default();
  o.data = pf_map_str(params, "data", NULL);
  o.text_field = pf_map_str(params, "text_field", o.text_field);
  o.samples = pf_map_int(params, "samples", o.samples);
  o.max_length = pf_map_int(params, "max_length", o.max_length);
  o.min_length = pf_map_int(params, "min_length", o.min_length);
  o.batch_size = pf_map_int(params, "batch_size", o.batch_size);
  o.pack = pf_map_bool(params, "pack", o.pack);
  return o;
}

/* The last tokenizer loaded, kept for the next op on the same folder: loading a
 * large tokenizer.json takes 0.24-0.38 s (Llama 3, Qwen3, GPT-4o vocabularies;
 * bench/README.md), once per data op before. It is taken again only while the
 * files it was read from (tokenizer.json, tokenizer_config.json) are the same
 * (device, inode, size, modification time; a missing file counts as such). */
typedef struct file_stamp {
  uint64_t exists; /* every field 8 bytes: no padding, so memcmp compares stamps */
  uint64_t dev, ino, size;
  int64_t mtime_s, mtime_ns;
} file_stamp;

static struct {
  pthread_mutex_t mu;
  char *dir;
  file_stamp stamp[2];
  pf_tokenizer *tok;
} g_tok = {.mu = PTHREAD_MUTEX_INITIALIZER};
static long g_tok_loads;

long pf_model_tokenizer_loads(void) {
  return g_tok_loads;
}

/* 0 when out of memory (then nothing is taken from or put in the cache). */
static int stamps_of(const char *dir, file_stamp st[2]) {
  static const char *const names[2] = {"tokenizer.json", "tokenizer_config.json"};
  for (int i = 0; i < 2; i++) {
    char *path = pf_path_join(dir, names[i]);
    struct stat sb;
    st[i] = (file_stamp){0};
    if (!path) return 0;
    if (stat(path, &sb) == 0)
      st[i] = (file_stamp){1,
                           (uint64_t)sb.st_dev,
                           (uint64_t)sb.st_ino,
                           (uint64_t)sb.st_size,
                           (int64_t)sb.st_mtim.tv_sec,
                           (int64_t)sb.st_mtim.tv_nsec};
    free(path);
  }
  return 1;
}

/* The tokenizer of folder dir, from the cache when its files did not change. */
static pf_status cached_tokenizer(const char *dir, pf_tokenizer **out, pf_err *err) {
  file_stamp st[2];
  if (!stamps_of(dir, st)) {
    pf_status s = pf_tokenizer_load(dir, out, err);
    g_tok_loads += s == PF_OK;
    return s;
  }
  pthread_mutex_lock(&g_tok.mu);
  if (g_tok.tok && !strcmp(g_tok.dir, dir) && !memcmp(st, g_tok.stamp, sizeof st)) {
    *out = pf_tokenizer_ref(g_tok.tok);
    pthread_mutex_unlock(&g_tok.mu);
    return PF_OK;
  }
  pthread_mutex_unlock(&g_tok.mu);
  pf_status s = pf_tokenizer_load(dir, out, err);
  if (s) return s;
  g_tok_loads++;
  char *copy = strdup(dir);
  if (!copy) return PF_OK; /* not kept: the next op loads it again */
  pthread_mutex_lock(&g_tok.mu);
  pf_tokenizer_free(g_tok.tok);
  free(g_tok.dir);
  g_tok.tok = pf_tokenizer_ref(*out);
  g_tok.dir = copy;
  memcpy(g_tok.stamp, st, sizeof st);
  pthread_mutex_unlock(&g_tok.mu);
  return PF_OK;
}

void pf_model_tokenizer_forget(void) {
  pthread_mutex_lock(&g_tok.mu);
  pf_tokenizer_free(g_tok.tok);
  free(g_tok.dir);
  g_tok.tok = NULL;
  g_tok.dir = NULL;
  pthread_mutex_unlock(&g_tok.mu);
}

pf_status pf_model_tokenizer(const pf_model *m, pf_tokenizer **out, pf_err *err) {
  *out = NULL;
  if (!m->source_dir)
    return pf_err_set(err, PF_ERR_INVALID, "model %s has no source folder to read a tokenizer from",
                      m->name ? m->name : "?");
  pf_tokenizer *tok = NULL;
  pf_status st = cached_tokenizer(m->source_dir, &tok, err);
  if (st) return st;
  int32_t n = pf_tokenizer_vocab_size(tok);
  if (n > m->config.vocab_size) {
    pf_tokenizer_free(tok);
    return pf_err_set(err, PF_ERR_INVALID,
                      "%s: the tokenizer has %d ids but the model's embedding has %lld rows "
                      "(tokenizer and model do not belong together)",
                      m->source_dir, (int)n, (long long)m->config.vocab_size);
  }
  *out = tok;
  return PF_OK;
}

pf_status pf_params_dataset(const pf_model *m, const pf_value *params, pf_tokenizer **tok,
                            pf_dataset **ds, pf_err *err) {
  *tok = NULL;
  *ds = NULL;
  pf_data_opts o = pf_params_data_opts(params);
  pf_status st = pf_model_tokenizer(m, tok, err);
  if (!st) st = pf_dataset_load(&o, *tok, ds, err);
  /* the forward pass refuses a batch longer than the model's positions: say so now,
   * not after the batches before it were computed */
  const int64_t max_pos = m->config.max_position_embeddings;
  const pf_data_stats ds_stats = st ? (pf_data_stats){0} : pf_dataset_stats(*ds);
  if (!st && max_pos > 0 && ds_stats.max_seq > max_pos) {
    st = pf_err_set(err, PF_ERR_INVALID,
                    "%s: the longest %s has %lld tokens, more than the model's "
                    "max_position_embeddings %lld (a max_length / --max-length of %lld or less "
                    "fits the model)",
                    o.data ? o.data : "data", o.pack ? "block" : "sample",
                    (long long)ds_stats.max_seq, (long long)max_pos, (long long)max_pos);
    pf_dataset_free(*ds);
    *ds = NULL;
  }
  if (st) {
    pf_tokenizer_free(*tok);
    *tok = NULL;
  }
  return st;
}

typedef struct fp_state {
  pf_sha256 h;
  pf_err *err;
  _Alignas(8) unsigned char buf[16384]; /* gathered bytes of lazy tensors */
} fp_state;

static void fp_str(pf_sha256 *h, const char *s) {
  pf_sha256_update(h, s, strlen(s) + 1);
}

static int fp_tensor(void *ud, const char *name, const pf_tensor *t) {
  fp_state *f = ud;
  char buf[256];
  fp_str(&f->h, name);
  snprintf(buf, sizeof buf, "%d:%d:%lld,%lld,%lld,%lld", (int)t->dtype, t->ndim,
           (long long)t->shape[0], (long long)t->shape[1], (long long)t->shape[2],
           (long long)t->shape[3]);
  fp_str(&f->h, buf);
  /* a loaded weight: the identity of the file mapped (taken when it was mapped, not
   * of whatever the path names now) and the offset; no path (it may be spelled
   * differently for the same file, or name another file since) */
  char id[160];
  pf_lazy_sel sel;
  if (pf_tensor_lazy_selection(t, &sel) && sel.parent->storage &&
      pf_storage_identity(sel.parent->storage, id, sizeof id)) {
    /* a pruned weight, materialised or not: what it selects from which loaded
     * weight (the kept indices), not its bytes, which the hash would have to read
     * (pruned llama-medium: 0.12 s that way, 0.3 ms this one; pruned 1B: 1.1 s) */
    const pf_tensor *p = sel.parent;
    snprintf(buf, sizeof buf, "lazy:%s:%lld:%d:%d:%lld,%lld:%d:%lld:%lld", id,
             (long long)((const char *)p->data - (const char *)pf_storage_data(p->storage)),
             (int)p->dtype, p->ndim, (long long)p->shape[0], (long long)p->shape[1], sel.transposed,
             (long long)(sel.rows ? sel.nr : -1), (long long)(sel.cols ? sel.nc : -1));
    fp_str(&f->h, buf);
    if (sel.rows) pf_sha256_update(&f->h, sel.rows, (size_t)sel.nr * sizeof *sel.rows);
    if (sel.cols) pf_sha256_update(&f->h, sel.cols, (size_t)sel.nc * sizeof *sel.cols);
  } else if (t->data && t->storage && pf_storage_identity(t->storage, id, sizeof id)) {
    snprintf(buf, sizeof buf, "%s:%lld", id,
             (long long)((const char *)t->data - (const char *)pf_storage_data(t->storage)));
    fp_str(&f->h, buf);
  } else if (t->data) {
    pf_sha256_update(&f->h, t->data, t->nbytes);
  } else if (t->lazy) { /* the selected bytes, gathered (tensor.h) */
    const size_t esz = pf_dtype_size(t->dtype), step = sizeof f->buf / esz, n = t->nbytes / esz;
    for (size_t i = 0; i < n; i += step) {
      const size_t k = n - i < step ? n - i : step;
      pf_tensor_read(t, i, k, f->buf);
      pf_sha256_update(&f->h, f->buf, k * esz);
    }
  } else {
    pf_err_set(f->err, PF_ERR_INVALID, "%s: a planned (dry-run) tensor has no data", name);
    return 1;
  }
  return 0;
}

pf_status pf_model_fingerprint(const pf_model *m, char hex[PF_SHA256_HEX], pf_err *err) {
  fp_state f = {.err = err};
  pf_sha256_init(&f.h);
  char *cfg = pf_config_to_json(&m->config);
  if (!cfg) return pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  fp_str(&f.h, cfg);
  free(cfg);
  /* the canonical tensors: the same bytes as the stored ones (joined layouts are only
   * rearranged), without transposing GPT-2's weights for every fingerprint */
  if (pf_model_foreach_canonical(m, fp_tensor, &f)) return err ? err->code : PF_ERR_INVALID;
  pf_sha256_final_hex(&f.h, hex);
  return PF_OK;
}

pf_value *pf_data_stats_value(const pf_dataset *ds) {
  pf_data_stats s = pf_dataset_stats(ds);
  pf_value *v = pf_value_map();
  if (!v) return NULL;
  pf_status st = pf_map_set_int(v, "samples", s.rows);
  if (!st) st = pf_map_set_int(v, "samples_skipped", s.samples_skipped);
  if (!st) st = pf_map_set_int(v, "samples_truncated", s.samples_truncated);
  if (!st) st = pf_map_set_int(v, "batches", s.batches);
  if (!st) st = pf_map_set_int(v, "tokens", s.tokens_real);
  if (st) {
    pf_value_release(v);
    return NULL;
  }
  return v;
}
