/* model_save.c — pf_model_save: a Hugging Face checkpoint folder, atomically.
 *
 * Everything is written into "<dir>.tmp-XXXXXX", re-loaded and checked, and
 * only then renamed into place, so a failed or interrupted save never leaves a
 * half-written checkpoint at `dir`.
 *
 * dtype conversion and lazy tensors (width pruning's selections, tensor.h) are
 * left to pf_st_write, which converts and gathers a few MB at a time on its way
 * to the file: the converted or pruned model never exists in memory as a
 * whole, and each output byte is written once.
 */
#include "model.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fsutil.h"
#include "json.h"
#include "safetensors.h"
#include "strbuf.h"
#include "synthetic.h"

#define SAVE_DEFAULT_SHARD 5000000000ull

/* Files copied from the source folder when present. */
static const char *const aux_files[] = {
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "generation_config.json",
    "tokenizer.model",
    "vocab.json",
    "merges.txt",
    "added_tokens.json",
    "chat_template.jinja",
    "chat_template.json",
    "tokenizer.model.v3",
    "tekken.json",
    "spiece.model",
    "sentencepiece.bpe.model",
    "qwen.tiktoken",
};

int pf_checkpoint_file_name(const char *name) {
  if (!strcmp(name, "config.json") || pf_str_ends_with(name, ".safetensors") ||
      pf_str_ends_with(name, ".safetensors.index.json") || pf_str_ends_with(name, ".py"))
    return 1;
  for (size_t i = 0; i < sizeof aux_files / sizeof aux_files[0]; i++)
    if (!strcmp(name, aux_files[i])) return 1;
  return 0;
}

typedef struct save_list {
  pf_st_entry *e;
  char (*names)[128];
  pf_tensor **held;  /* the stored tensors (joined ones exist only through this) */
  size_t n, cap;
  int failed;
} save_list;

static int collect(void *ud, const char *name, const pf_tensor *t) {
  save_list *l = ud;
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 64;
    pf_st_entry *e = realloc(l->e, cap * sizeof *e);
    if (e) l->e = e;
    char(*names)[128] = realloc(l->names, cap * sizeof *names);
    if (names) l->names = names;
    pf_tensor **held = realloc(l->held, cap * sizeof *held);
    if (held) l->held = held;
    if (!e || !names || !held) return l->failed = 1;
    l->cap = cap;
  }
  snprintf(l->names[l->n], sizeof l->names[l->n], "%s", name);
  pf_tensor_retain((pf_tensor *)t);
  l->held[l->n] = (pf_tensor *)t;
  l->e[l->n].tensor = t;
  l->n++;
  return 0;
}

static void list_free(save_list *l) {
  for (size_t i = 0; i < l->n; i++)
    pf_tensor_release(l->held[i]);
  free(l->held);
  free(l->e);
  free(l->names);
}

/* The config as it will be saved: per-layer widths from the up_proj shapes
 * (the tensors are the truth), the saved dtype, the tie flag from lm_head. */
static pf_status saved_config(const pf_model *m, pf_dtype dt, pf_model_config *c, pf_err *err) {
  pf_status s = pf_config_copy(c, &m->config, err);
  if (s != PF_OK) return s;
  for (int64_t i = 0; i < m->n_layers && i < c->num_hidden_layers; i++)
    if (m->layers[i].up_proj && m->layers[i].up_proj->ndim == 2 && c->intermediate_sizes)
      c->intermediate_sizes[i] = pf_layer_width(&m->layers[i]);
  snprintf(c->torch_dtype, sizeof c->torch_dtype, "%s", pf_dtype_torch_name(dt));
  c->tie_word_embeddings = m->lm_head == NULL;
  cJSON *old = c->raw ? cJSON_GetObjectItemCaseSensitive(c->raw, "tie_word_embeddings") : NULL;
  if (c->raw && (c->tie_word_embeddings || old)) {
    if (!pf_json_set(c->raw, "tie_word_embeddings", cJSON_CreateBool(c->tie_word_embeddings))) {
      pf_config_free(c);
      return pf_err_set(err, PF_ERR_NOMEM, "config.json: out of memory");
    }
  }
  return PF_OK;
}

pf_status pf_model_write_config(const pf_model *m, const char *dir, pf_dtype dt, pf_err *err) {
  pf_model_config c;
  pf_status s = saved_config(m, dt, &c, err);
  if (s != PF_OK) return s;
  char *json = pf_config_to_json(&c);
  char *path = pf_path_join(dir, "config.json");
  if (!json || !path)
    s = pf_err_set(err, PF_ERR_NOMEM, "config.json: out of memory");
  else
    s = pf_write_file(path, json, strlen(json), err);
  free(json);
  free(path);
  pf_config_free(&c);
  return s;
}

/* The source's file `name` into tmp, when it is there (a regular file). */
static pf_status copy_one(const pf_model *m, const char *tmp, const char *name, pf_err *err) {
  char *src = pf_path_join(m->source_dir, name);
  char *dst = pf_path_join(tmp, name);
  pf_status s = PF_OK;
  if (!src || !dst)
    s = pf_err_set(err, PF_ERR_NOMEM, "save: out of memory");
  else if (pf_path_exists(src) && !pf_is_dir(src))
    s = pf_copy_file(src, dst, err);
  free(src);
  free(dst);
  return s;
}

/* The tokenizer and generation files, and the Python files of the source folder:
 * the custom code a config's or tokenizer config's auto_map names (Phi-3 and others
 * on the Hub), which from_pretrained(trust_remote_code=True) imports from the folder. */
static pf_status copy_aux(const pf_model *m, const char *tmp, pf_err *err) {
  if (!m->source_dir) return PF_OK;
  pf_status s = PF_OK;
  for (size_t i = 0; s == PF_OK && i < sizeof aux_files / sizeof aux_files[0]; i++)
    s = copy_one(m, tmp, aux_files[i], err);
  DIR *d = s == PF_OK ? opendir(m->source_dir) : NULL;
  for (struct dirent *e; d && s == PF_OK && (e = readdir(d));)
    if (e->d_name[0] != '.' && pf_str_ends_with(e->d_name, ".py"))
      s = copy_one(m, tmp, e->d_name, err);
  if (d) closedir(d);
  return s;
}

/* Re-open what was written and check it against what was meant to be written. */
static pf_status verify(const pf_model *m, const char *tmp, pf_dtype dt, pf_err *err) {
  pf_model *r = NULL;
  pf_status s = pf_model_load(tmp, &r, err);
  if (s == PF_OK) s = pf_model_check(r, err);
  if (s == PF_OK && (r->n_layers != m->n_layers || r->dtype != dt ||
                     pf_model_param_count(r) != pf_model_param_count(m)))
    s = pf_err_set(err, PF_ERR_FORMAT,
                   "re-loaded checkpoint differs: %lld layers %s, %lld parameters "
                   "(expected %lld layers %s, %lld parameters)",
                   (long long)r->n_layers, pf_dtype_st_name(r->dtype),
                   (long long)pf_model_param_count(r), (long long)m->n_layers, pf_dtype_st_name(dt),
                   (long long)pf_model_param_count(m));
  pf_model_release(r);
  if (s != PF_OK) pf_err_prefix(err, "verifying the saved checkpoint");
  return s;
}

/* What is at a save's output path without overwrite: nothing to refuse, or the kind of
 * thing the save refuses (pf_save_target_check and pf_save_output_check word it). */
typedef enum { TARGET_OK, TARGET_LINK, TARGET_FILE, TARGET_FULL } target_kind;

static target_kind save_target_kind(const char *dir, int overwrite) {
  struct stat ls;
  if (overwrite || lstat(dir, &ls) != 0) return TARGET_OK;
  if (S_ISLNK(ls.st_mode)) return TARGET_LINK; /* the checkpoint would replace the link */
  if (!pf_is_dir(dir)) return TARGET_FILE;
  return pf_dir_is_empty(dir) ? TARGET_OK : TARGET_FULL;
}

pf_status pf_save_target_check(const char *dir, int overwrite, pf_err *err) {
  static const char *const found[] = {
      NULL, "a symbolic link (the checkpoint would replace the link; give the folder it points to)",
      "a file", "existing content"};
  const target_kind k = save_target_kind(dir, overwrite);
  if (k == TARGET_OK) return PF_OK;
  return pf_err_set(err, PF_ERR_INVALID,
                    "path '%s': expected a new or empty folder, found %s (set overwrite: true to "
                    "replace it)",
                    dir, found[k]);
}

pf_status pf_save_input_check(const char *source_dir, const char *dir, pf_err *err) {
  if (!source_dir) return PF_OK;
  if (pf_path_inside(dir, source_dir))
    return pf_err_set(err, PF_ERR_INVALID, "%s: refusing to write into the input folder %s", dir,
                      source_dir);
  if (pf_path_exists(dir) && pf_path_inside(source_dir, dir))
    return pf_err_set(err, PF_ERR_INVALID,
                      "%s: refusing to replace a folder that contains the input folder %s", dir,
                      source_dir);
  return PF_OK;
}

/* Refusals that must happen before anything is written. */
static pf_status check_target(const pf_model *m, const save_list *l, const char *dir, int overwrite,
                              int cache_ok, pf_err *err) {
  for (size_t i = 0; i < l->n; i++)
    if (pf_tensor_is_planned(l->e[i].tensor))
      return pf_err_set(err, PF_ERR_INVALID,
                        "%s: %s is a planned tensor (dry run) without data; a dry-run model "
                        "cannot be saved",
                        dir, l->names[i]);
  pf_status s = pf_save_input_check(m->source_dir, dir, err);
  if (s != PF_OK) return s;
  if (!cache_ok && pf_synth_in_cache(dir))
    return pf_err_set(err, PF_ERR_INVALID,
                      "%s: refusing to write into the synthetic models' cache (pfrun would serve "
                      "the checkpoint as a preset); save it elsewhere",
                      dir);
  char *used = pf_model_dir_in_use(dir, m);
  if (used) {
    s = pf_err_set(err, PF_ERR_INVALID,
                   "%s: refusing to write there: a model loaded from %s is still in use "
                   "and reads its files (tokenizer, weights) from that folder",
                   dir, used);
    free(used);
    return s;
  }
  return pf_save_output_check(dir, overwrite, err);
}

pf_status pf_save_output_check(const char *dir, int overwrite, pf_err *err) {
  switch (save_target_kind(dir, overwrite)) {
  case TARGET_OK:
    return PF_OK;
  case TARGET_LINK:
    return pf_err_set(err, PF_ERR_INVALID,
                      "%s: the output path is a symbolic link (give the folder it points to, or "
                      "use overwrite to replace the link)",
                      dir);
  case TARGET_FILE:
    return pf_err_set(
        err, PF_ERR_INVALID,
        "%s: the output path exists and is not a folder (use overwrite to replace it)", dir);
  case TARGET_FULL:
    break;
  }
  return pf_err_set(err, PF_ERR_INVALID,
                    "%s: the output folder exists and is not empty (use overwrite to replace it)",
                    dir);
}

pf_status pf_model_save(const pf_model *m, const char *dir, const pf_save_opts *opts, int overwrite,
                        const pf_ctx *ctx, pf_err *err) {
  save_list l = {0};
  char *tmp = NULL, *made = NULL; /* made: the first parent folder this save creates */
  pf_status s;
  pf_dtype dt = (opts && opts->have_dtype) ? opts->dtype : m->dtype;
  uint64_t shard = (opts && opts->max_shard_bytes) ? opts->max_shard_bytes : SAVE_DEFAULT_SHARD;
  int fr = pf_model_foreach_stored(m, collect, &l, err);
  if (fr || l.failed) {
    s = fr == -1 ? (err ? err->code : PF_ERR_INVALID) : pf_err_set(err, PF_ERR_NOMEM, "%s: out of memory", dir);
    goto done;
  }
  for (size_t i = 0; i < l.n; i++)
    l.e[i].name = l.names[i];
  if ((s = check_target(m, &l, dir, overwrite, opts && opts->synthetic_cache, err)) != PF_OK)
    goto done;
  /* check the model with the config it will be saved with, before writing */
  pf_model shadow = *m;
  if ((s = saved_config(m, dt, &shadow.config, err)) != PF_OK) goto done;
  s = pf_model_check(&shadow, err);
  pf_config_free(&shadow.config);
  if (s != PF_OK) {
    pf_err_prefix(err, "%s: the model is inconsistent", dir);
    goto done;
  }
  made = pf_missing_parent(dir);
  if ((s = pf_make_temp_sibling(dir, &tmp, err)) != PF_OK) goto done;
  if ((s = pf_ctx_check_interrupt(ctx, err)) != PF_OK ||
      (s = pf_st_write(tmp, l.e, l.n, shard, &dt, ctx, err)) != PF_OK ||
      (s = pf_model_write_config(m, tmp, dt, err)) != PF_OK ||
      (s = copy_aux(m, tmp, err)) != PF_OK || (s = verify(m, tmp, dt, err)) != PF_OK ||
      (s = pf_ctx_check_interrupt(ctx, err)) != PF_OK)
    goto done;
  (void)chmod(tmp, 0755); /* mkdtemp made it 0700; a checkpoint is a normal folder */
  char *left = NULL;
  s = pf_commit_dir(tmp, dir, overwrite ? PF_COMMIT_ANY : PF_COMMIT_EMPTY, &left, err);
  if (left)
    pf_ctx_log(ctx, "save: %s: saved; the old copy it replaced could not be removed: %s", dir,
               left);
  free(left);
  if (s == PF_OK) {
    free(tmp);
    tmp = NULL;
  }
done:
  if (tmp && s != PF_ERR_INTERRUPTED) /* name the target, not only the temp file that failed */
    pf_err_prefix(err, "%s: not saved (the partial copy was removed)", dir);
  if (tmp) {
    pf_remove_tree(tmp, NULL);
    pf_temp_unregister(tmp);
    free(tmp);
  }
  if (s != PF_OK) pf_remove_empty_parents(dir, made); /* a failed save leaves no trace */
  free(made);
  list_free(&l);
  return s;
}
