/* model.c — loading, deriving, counting and checking models (see model.h).
 * Saving lives in model_save.c.
 *
 * Every per-layer tensor is described once, in `slots` below: its name suffix,
 * its field in pf_layer, when it exists and what shape it must have. Loading,
 * enumeration (save order), the unexpected-tensor check and the consistency
 * check all walk that one table, so they cannot disagree about a tensor.
 * Loading never copies weight bytes: tensors are views over the mmap'd files.
 */
#include "model.h"

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "safetensors.h"

/* ---- the family's tensors (arch.h) ---- */

static const pf_arch *arch_of(const pf_model_config *c) {
  return c->arch ? c->arch : pf_arch_default();
}

static int tensor_present(const pf_model_config *c, const pf_arch_tensor *at) {
  switch (at->cond) {
  case PF_COND_ATTN_BIAS:
    return c->attention_bias;
  case PF_COND_O_BIAS:
    return c->attention_bias && strcmp(c->model_type, "qwen2") != 0;
  case PF_COND_QK_NORM:
    return c->qk_norm;
  case PF_COND_MLP_BIAS:
    return c->mlp_bias;
  default:
    return 1;
  }
}

/* Canonical shape of a layer slot for a layer of width I; returns ndim. */
static int slot_shape(const pf_model_config *c, int slot, int64_t I, int64_t *shape) {
  const int64_t H = c->hidden_size, q = c->num_attention_heads * c->head_dim,
                kv = c->num_key_value_heads * c->head_dim;
  shape[1] = 0;
  switch (slot) {
  case PF_SLOT_Q:
    shape[0] = q, shape[1] = H;
    return 2;
  case PF_SLOT_K:
  case PF_SLOT_V:
    shape[0] = kv, shape[1] = H;
    return 2;
  case PF_SLOT_O:
    shape[0] = H, shape[1] = q;
    return 2;
  case PF_SLOT_Q_B:
    shape[0] = q;
    return 1;
  case PF_SLOT_K_B:
  case PF_SLOT_V_B:
    shape[0] = kv;
    return 1;
  case PF_SLOT_Q_NORM:
  case PF_SLOT_K_NORM:
    shape[0] = c->head_dim;
    return 1;
  case PF_SLOT_GATE:
  case PF_SLOT_UP:
    shape[0] = I, shape[1] = H;
    return 2;
  case PF_SLOT_DOWN:
    shape[0] = H, shape[1] = I;
    return 2;
  case PF_SLOT_GATE_B:
  case PF_SLOT_UP_B:
    shape[0] = I;
    return 1;
  default: /* norms, their biases, o/down biases */
    shape[0] = H;
    return 1;
  }
}

/* Canonical shape of a model-level slot. */
static int gslot_shape(const pf_model_config *c, int g, int64_t *shape) {
  shape[1] = c->hidden_size;
  if (g == PF_G_EMBED || g == PF_G_HEAD) {
    shape[0] = c->vocab_size;
    return 2;
  }
  if (g == PF_G_POS) {
    shape[0] = c->max_position_embeddings;
    return 2;
  }
  shape[0] = c->hidden_size;
  shape[1] = 0;
  return 1;
}

static pf_tensor **gslot_ptr(pf_model *m, int g) {
  switch (g) {
  case PF_G_EMBED:
    return &m->embed_tokens;
  case PF_G_POS:
    return &m->embed_positions;
  case PF_G_NORM:
    return &m->norm;
  case PF_G_NORM_B:
    return &m->norm_bias;
  default:
    return &m->lm_head;
  }
}

/* Model-level tensor present? (the head only when untied; positions only for
 * learned-position families) */
static int global_present(const pf_model_config *c, const pf_arch_tensor *at) {
  if (at->parts[0] == PF_G_HEAD) return !c->tie_word_embeddings;
  return 1;
}

/* Layer width of layer li as the config says. */
static int64_t config_width(const pf_model_config *c, int64_t li) {
  return c->intermediate_sizes ? c->intermediate_sizes[li] : c->intermediate_size;
}

/* Checkpoint name of a layer tensor or a model-level one. */
static void layer_name(const pf_model *m, int64_t li, const pf_arch_tensor *at, char *buf,
                       size_t n) {
  const char *pre = arch_of(&m->config)->layer_prefix;
  if (m->legacy_names && !strncmp(pre, "transformer.", 12)) pre += 12;
  snprintf(buf, n, "%s%lld.%s", pre, (long long)li, at->suffix);
}

static void global_name(const pf_model *m, const pf_arch_tensor *at, char *buf, size_t n) {
  const char *name = at->suffix;
  if (m->legacy_names && !strncmp(name, "transformer.", 12)) name += 12;
  snprintf(buf, n, "%s", name);
}

static int shape_eq(const pf_tensor *t, int ndim, const int64_t *shape) {
  if (t->ndim != ndim) return 0;
  for (int i = 0; i < ndim; i++)
    if (t->shape[i] != shape[i]) return 0;
  return 1;
}

static void release_layer(pf_layer *l) {
  for (int i = 0; i < PF_SLOT_COUNT; i++) {
    pf_tensor_release(l->slot[i]);
    l->slot[i] = NULL;
  }
}

/* Canonical part shapes of a layer tensor; returns the stored ndim and shape. */
static int layer_shapes(const pf_model_config *c, const pf_arch_tensor *at, int64_t I,
                        int64_t parts[3][2], int nd[3], int64_t *stored) {
  for (int p = 0; p < at->n_parts; p++)
    nd[p] = slot_shape(c, at->parts[p], I, parts[p]);
  return pf_arch_stored_shape(at, (const int64_t(*)[2])parts, nd, stored);
}

/* ---- load ---- */

typedef struct loader {
  const char *dir;
  pf_st_reader *r;
  pf_model *m;
  char dtype_from[160]; /* name of the tensor that fixed m->dtype ("" before) */
} loader;

/* Fetch `name`, check dtype and shape. */
static pf_status load_tensor(loader *ld, const char *name, int ndim, const int64_t *shape,
                             const char *hint, pf_tensor **out, pf_err *err) {
  char want[96], got[96];
  if (!pf_st_has(ld->r, name))
    return pf_err_set(err, PF_ERR_NOT_FOUND, "%s: tensor %s is missing (expected shape %s)",
                      ld->dir, name, pf_shape_str(ndim, shape, want, sizeof want));
  pf_tensor *t = NULL;
  pf_status s = pf_st_get(ld->r, name, &t, err);
  if (s != PF_OK) return s;
  if (!ld->dtype_from[0]) {
    ld->m->dtype = t->dtype;
    snprintf(ld->dtype_from, sizeof ld->dtype_from, "%s", name);
  } else if (t->dtype != ld->m->dtype) {
    s = pf_err_set(err, PF_ERR_FORMAT, "%s: %s: expected dtype %s (like %s), got %s", ld->dir, name,
                   pf_dtype_st_name(ld->m->dtype), ld->dtype_from, pf_dtype_st_name(t->dtype));
    pf_tensor_release(t);
    return s;
  }
  if (!shape_eq(t, ndim, shape)) {
    s = pf_err_set(err, PF_ERR_FORMAT, "%s: %s: expected shape %s, got %s%s", ld->dir, name,
                   pf_shape_str(ndim, shape, want, sizeof want),
                   pf_shape_str(t->ndim, t->shape, got, sizeof got), hint ? hint : "");
    pf_tensor_release(t);
    return s;
  }
  *out = t;
  return PF_OK;
}

static int is_mlp(const pf_arch_tensor *at) {
  return at->parts[0] >= PF_SLOT_GATE && at->parts[0] <= PF_SLOT_DOWN_B;
}

/* Width of layer li read off its first stored MLP tensor, when config.json has no
 * "intermediate_sizes" list: a checkpoint that OptiPFair pruned on selected layers
 * records only the last pruned layer's size in intermediate_size. The stored shape is
 * linear in the width, so two probes (widths 1 and 2) find the dimension and factor.
 * Leaves *I unchanged when the tensor is missing or does not fit (the shape check that
 * follows names the mismatch); *from gets the tensor's name. */
static void width_from_shapes(const loader *ld, int64_t li, int64_t *I, char *from, size_t n) {
  const pf_model_config *c = &ld->m->config;
  const pf_arch *arch = arch_of(c);
  for (int i = 0; i < arch->n_layer; i++) {
    const pf_arch_tensor *at = &arch->layer[i];
    if (!is_mlp(at) || !tensor_present(c, at)) continue;
    char name[160];
    layer_name(ld->m, li, at, name, sizeof name);
    int64_t parts[3][2], s1[2], s2[2], got[PF_MAX_DIMS];
    int nd[3];
    int ndim = layer_shapes(c, at, 1, parts, nd, s1);
    layer_shapes(c, at, 2, parts, nd, s2);
    if (pf_st_shape(ld->r, name, got) == ndim) /* the header's shape: no tensor is made */
      for (int d = 0; d < ndim; d++) {
        const int64_t step = s2[d] - s1[d], extra = got[d] - s1[d];
        if (step > 0 && extra >= 0 && extra % step == 0) {
          *I = 1 + extra / step;
          snprintf(from, n, "%s", name);
          break;
        }
      }
    return;
  }
}

static pf_status load_layer(loader *ld, int64_t li, int have_sizes, pf_err *err) {
  pf_model_config *c = &ld->m->config;
  const pf_arch *arch = arch_of(c);
  pf_layer *l = &ld->m->layers[li];
  l->source_index = li;
  int64_t I = c->intermediate_sizes[li];
  char hint[320], from[160] = "";
  if (!have_sizes) {
    width_from_shapes(ld, li, &I, from, sizeof from);
    c->intermediate_sizes[li] = I;
  }
  if (have_sizes)
    snprintf(hint, sizeof hint, " (config intermediate_sizes[%lld] = %lld)", (long long)li,
             (long long)I);
  else if (from[0])
    snprintf(hint, sizeof hint,
             " (width %lld read off %s; config.json has no \"intermediate_sizes\" list)",
             (long long)I, from);
  else
    snprintf(hint, sizeof hint,
             " (config %s = %lld; per-layer widths need an \"intermediate_sizes\" "
             "list in config.json)",
             arch->key_inter, (long long)I);
  for (int i = 0; i < arch->n_layer; i++) {
    const pf_arch_tensor *at = &arch->layer[i];
    if (!tensor_present(c, at)) continue;
    char name[160];
    int64_t parts[3][2], stored[2];
    int nd[3];
    int ndim = layer_shapes(c, at, I, parts, nd, stored);
    layer_name(ld->m, li, at, name, sizeof name);
    int mlp = is_mlp(at);
    pf_tensor *t = NULL, *out[3] = {NULL, NULL, NULL};
    pf_status st = load_tensor(ld, name, ndim, stored, mlp ? hint : NULL, &t, err);
    if (st != PF_OK) return st;
    st = pf_arch_split(at, t, (const int64_t(*)[2])parts, c->num_attention_heads, out, err);
    pf_tensor_release(t);
    if (st != PF_OK) {
      pf_err_prefix(err, "%s", name);
      return st;
    }
    for (int p = 0; p < at->n_parts; p++)
      l->slot[at->parts[p]] = out[p];
  }
  return PF_OK;
}

/* Layer index after `pre` in `name`, -1 if none; *rest = what follows "N.". */
static int64_t parse_layer_index(const char *name, const char *pre, const char **rest) {
  size_t k = strlen(pre);
  if (strncmp(name, pre, k) != 0) return -1;
  const char *p = name + k;
  if (*p < '0' || *p > '9' || (p[0] == '0' && p[1] >= '0' && p[1] <= '9')) return -1;
  int64_t li = 0;
  while (*p >= '0' && *p <= '9' && li < 1000000000)
    li = li * 10 + (*p++ - '0');
  if (*p != '.') return -1;
  *rest = p + 1;
  return li;
}

/* 1 if `name` is a tensor this model expects (or tolerates). */
static int name_expected(const pf_model *m, const char *name) {
  const pf_model_config *c = &m->config;
  const pf_arch *arch = arch_of(c);
  char buf[160];
  for (int i = 0; i < arch->n_global; i++) {
    global_name(m, &arch->global[i], buf, sizeof buf);
    /* (a tied checkpoint that still stores its head: ignored, as transformers ties it) */
    if (!strcmp(name, buf)) return 1;
  }
  const char *pre = arch->layer_prefix, *rest = NULL;
  if (m->legacy_names && !strncmp(pre, "transformer.", 12)) pre += 12;
  int64_t li = parse_layer_index(name, pre, &rest);
  if (li < 0 || li >= c->num_hidden_layers) return 0;
  for (int i = 0; i < arch->n_layer; i++)
    if (!strcmp(rest, arch->layer[i].suffix)) return tensor_present(c, &arch->layer[i]);
  return 0;
}

static pf_status load_global(loader *ld, const pf_arch_tensor *at, pf_err *err) {
  pf_model *m = ld->m;
  const pf_model_config *c = &m->config;
  char name[160];
  int64_t shape[2];
  int nd = gslot_shape(c, at->parts[0], shape);
  global_name(m, at, name, sizeof name);
  if (!global_present(c, at)) return PF_OK;
  if (at->parts[0] == PF_G_HEAD && !pf_st_has(ld->r, name))
    return pf_err_set(err, PF_ERR_NOT_FOUND, "%s: %s missing and tie_word_embeddings is false",
                      ld->dir, name);
  return load_tensor(ld, name, nd, shape, NULL, gslot_ptr(m, at->parts[0]), err);
}

static pf_status load_tensors(loader *ld, pf_err *err) {
  pf_model *m = ld->m;
  const pf_model_config *c = &m->config;
  const pf_arch *arch = arch_of(c);
  pf_status s;
  /* old GPT2Model files: no "transformer." prefix (transformers loads both) */
  if (!strcmp(arch->model_type, "gpt2") && !pf_st_has(ld->r, "transformer.wte.weight") &&
      pf_st_has(ld->r, "wte.weight"))
    m->legacy_names = 1;
  for (int i = 0; i < arch->n_global; i++)
    if (arch->global[i].parts[0] < PF_G_NORM && (s = load_global(ld, &arch->global[i], err)))
      return s;
  m->layers = calloc((size_t)c->num_hidden_layers, sizeof *m->layers);
  if (!m->layers) return pf_err_set(err, PF_ERR_NOMEM, "%s: out of memory", ld->dir);
  m->n_layers = c->num_hidden_layers;
  const cJSON *sizes =
      c->raw ? cJSON_GetObjectItemCaseSensitive(c->raw, "intermediate_sizes") : NULL;
  int have_sizes = sizes && !cJSON_IsNull(sizes);
  for (int64_t i = 0; i < m->n_layers; i++)
    if ((s = load_layer(ld, i, have_sizes, err)) != PF_OK) return s;
  if (!have_sizes) { /* widths read off the shapes: intermediate_size is the largest, as saved */
    const int64_t said = m->config.intermediate_size;
    int64_t lo = 0, hi = 0, matched = 0;
    for (int64_t i = 0; i < m->n_layers; i++) {
      const int64_t w = m->config.intermediate_sizes[i];
      matched |= w == said;
      lo = i == 0 || w < lo ? w : lo;
      hi = i == 0 || w > hi ? w : hi;
    }
    m->config.intermediate_size = hi;
    /* OptiPFair's selective prune writes the last pruned layer's width: some layer has
     * it. None: a config edited by hand or weights from another model; say so. */
    if (!matched && m->n_layers > 0 && !m->config.warning[0])
      snprintf(m->config.warning, sizeof m->config.warning,
               "config.json: %s is %lld, but no layer's MLP has that width (the tensors give "
               "%lld..%lld); the tensors' widths are used",
               arch->key_inter, (long long)said, (long long)lo, (long long)hi);
  }
  for (int i = 0; i < arch->n_global; i++)
    if (arch->global[i].parts[0] >= PF_G_NORM && (s = load_global(ld, &arch->global[i], err)))
      return s;
  size_t n = pf_st_count(ld->r);
  for (size_t i = 0; i < n; i++) {
    const char *name = pf_st_name(ld->r, i);
    if (!name_expected(m, name))
      return pf_err_set(err, PF_ERR_FORMAT,
                        "%s: unexpected tensor %s (not part of a %s model with %lld layers as "
                        "described by config.json)",
                        ld->dir, name, c->model_type, (long long)c->num_hidden_layers);
  }
  return PF_OK;
}

static char *base_name(const char *dir) {
  size_t n = strlen(dir);
  while (n > 1 && dir[n - 1] == '/')
    n--;
  size_t b = n;
  while (b > 0 && dir[b - 1] != '/')
    b--;
  return strndup(dir + b, n - b);
}

pf_status pf_model_load(const char *dir, pf_model **out, pf_err *err) {
  *out = NULL;
  pf_st_reader *r = NULL;
  pf_status s;
  pf_model *m = pf_model_alloc();
  if (!m) return pf_err_set(err, PF_ERR_NOMEM, "%s: out of memory", dir);
  if ((s = pf_config_load(dir, &m->config, err)) != PF_OK) goto fail;
  if ((s = pf_st_open(dir, &r, err)) != PF_OK) goto fail;
  loader ld = {.dir = dir, .r = r, .m = m};
  if ((s = load_tensors(&ld, err)) != PF_OK) goto fail;
  m->source_dir = pf_abspath(dir);
  m->name = base_name(dir);
  if (!m->source_dir || !m->name) {
    s = pf_err_set(err, PF_ERR_NOMEM, "%s: out of memory", dir);
    goto fail;
  }
  pf_st_close(r);
  *out = m;
  return PF_OK;
fail:
  pf_st_close(r);
  pf_model_release(m);
  return s;
}

pf_status pf_model_plan_dir(const char *dir, pf_model **out, pf_err *err) {
  *out = NULL;
  pf_model_config c;
  pf_dtype dt;
  pf_status s = pf_config_load(dir, &c, err);
  if (s != PF_OK) return s;
  if (pf_dtype_parse(c.torch_dtype, &dt, NULL) != PF_OK)
    s = pf_err_set(err, PF_ERR_FORMAT,
                   "%s/config.json: torch_dtype \"%s\": expected float32, float16 or bfloat16 "
                   "(a folder without weights is planned in its torch_dtype)",
                   dir, c.torch_dtype);
  if (s == PF_OK) s = pf_model_plan(&c, dt, out, err);
  pf_config_free(&c);
  if (s != PF_OK) return s;
  pf_model *m = *out;
  free(m->name);
  m->source_dir = pf_abspath(dir);
  m->name = base_name(dir);
  if (!m->source_dir || !m->name) {
    pf_model_release(m);
    *out = NULL;
    return pf_err_set(err, PF_ERR_NOMEM, "%s: out of memory", dir);
  }
  return PF_OK;
}

void pf_model_retain(pf_model *m) {
  if (m) m->refcount++;
}

void pf_model_release(pf_model *m) {
  if (!m || --m->refcount > 0) return;
  pf_model_unlink(m);
  pf_tensor_release(m->embed_tokens);
  pf_tensor_release(m->embed_positions);
  pf_tensor_release(m->norm);
  pf_tensor_release(m->norm_bias);
  pf_tensor_release(m->lm_head);
  if (m->layers)
    for (int64_t i = 0; i < m->n_layers; i++)
      release_layer(&m->layers[i]);
  free(m->layers);
  pf_config_free(&m->config);
  free(m->source_dir);
  free(m->name);
  pf_model_release(m->unrecovered);
  free(m);
}

/* ---- derive / remove ---- */

pf_status pf_model_derive(const pf_model *parent, pf_model **out, pf_err *err) {
  *out = NULL;
  pf_model *m = pf_model_alloc();
  if (!m) return pf_err_set(err, PF_ERR_NOMEM, "derive %s: out of memory", parent->name);
  m->dtype = parent->dtype;
  m->legacy_names = parent->legacy_names;
  pf_status s = pf_config_copy(&m->config, &parent->config, err);
  if (s != PF_OK) goto fail;
  m->layers = calloc(parent->n_layers ? (size_t)parent->n_layers : 1, sizeof *m->layers);
  m->source_dir = parent->source_dir ? strdup(parent->source_dir) : NULL;
  m->name = parent->name ? strdup(parent->name) : NULL;
  if (!m->layers || (parent->source_dir && !m->source_dir) || (parent->name && !m->name)) {
    s = pf_err_set(err, PF_ERR_NOMEM, "derive %s: out of memory", parent->name);
    goto fail;
  }
  m->n_layers = parent->n_layers;
  for (int64_t i = 0; i < m->n_layers; i++) {
    m->layers[i] = parent->layers[i];
    for (int k = 0; k < PF_SLOT_COUNT; k++)
      pf_tensor_retain(m->layers[i].slot[k]);
  }
  pf_tensor_retain(m->embed_tokens = parent->embed_tokens);
  pf_tensor_retain(m->embed_positions = parent->embed_positions);
  pf_tensor_retain(m->norm = parent->norm);
  pf_tensor_retain(m->norm_bias = parent->norm_bias);
  pf_tensor_retain(m->lm_head = parent->lm_head);
  *out = m;
  return PF_OK;
fail:
  pf_model_release(m);
  return s;
}

pf_status pf_model_remove_layer(pf_model *m, int64_t i, pf_err *err) {
  if (i < 0 || i >= m->n_layers)
    return pf_err_set(err, PF_ERR_INVALID, "remove layer %lld: expected an index in [0, %lld)",
                      (long long)i, (long long)m->n_layers);
  pf_status s = pf_config_remove_layer(&m->config, i, err);
  if (s != PF_OK) return s;
  release_layer(&m->layers[i]);
  memmove(m->layers + i, m->layers + i + 1, (size_t)(m->n_layers - i - 1) * sizeof *m->layers);
  m->n_layers--;
  memset(&m->layers[m->n_layers], 0, sizeof *m->layers);
  return PF_OK;
}

/* ---- enumeration ---- */

/* Tensors of one stored entry (a layer tensor when l != NULL, else model-level). */
static int entry_parts(pf_model *m, pf_layer *l, const pf_arch_tensor *at, pf_tensor **parts) {
  int have = 0;
  for (int p = 0; p < at->n_parts; p++) {
    parts[p] = l ? l->slot[at->parts[p]] : *gslot_ptr(m, at->parts[p]);
    have += parts[p] != NULL;
  }
  return have;
}

int pf_model_foreach_stored(const pf_model *m, pf_model_tensor_cb cb, void *ud, pf_err *err) {
  pf_model *mm = (pf_model *)m; /* only read: gslot_ptr takes a mutable model */
  const pf_arch *arch = arch_of(&m->config);
  char name[160];
  pf_tensor *parts[3];
  int r = 0;
  for (int pass = 0; pass < 3 && !r; pass++) { /* globals before norm, layers, norm.. */
    if (pass == 1) {
      for (int64_t li = 0; li < m->n_layers && !r; li++)
        for (int i = 0; i < arch->n_layer && !r; i++) {
          const pf_arch_tensor *at = &arch->layer[i];
          int have = entry_parts(mm, &mm->layers[li], at, parts);
          if (!have) continue;
          layer_name(m, li, at, name, sizeof name);
          if (have < at->n_parts) {
            if (err) pf_err_set(err, PF_ERR_INVALID, "%s: some of its parts are missing", name);
            return -1;
          }
          pf_tensor *t = NULL;
          if (pf_arch_compose(at, parts, m->config.num_attention_heads, &t, err) != PF_OK)
            return -1;
          r = cb(ud, name, t);
          pf_tensor_release(t);
        }
      continue;
    }
    for (int i = 0; i < arch->n_global && !r; i++) {
      const pf_arch_tensor *at = &arch->global[i];
      if ((at->parts[0] >= PF_G_NORM) != (pass == 2)) continue;
      if (!entry_parts(mm, NULL, at, parts)) continue;
      if (at->parts[0] == PF_G_HEAD && parts[0] == m->embed_tokens) continue;
      global_name(m, at, name, sizeof name);
      r = cb(ud, name, parts[0]);
    }
  }
  return r;
}

int pf_model_foreach_tensor(const pf_model *m, pf_model_tensor_cb cb, void *ud) {
  return pf_model_foreach_stored(m, cb, ud, NULL);
}

int pf_model_stored_is_view(const pf_model *m, const char *name, int ndim) {
  const pf_arch *arch = arch_of(&m->config);
  char buf[160];
  for (int i = 0; i < arch->n_global; i++) {
    global_name(m, &arch->global[i], buf, sizeof buf);
    if (!strcmp(buf, name)) return pf_arch_composes_view(&arch->global[i], ndim);
  }
  for (int64_t li = 0; li < m->n_layers; li++)
    for (int i = 0; i < arch->n_layer; i++) {
      layer_name(m, li, &arch->layer[i], buf, sizeof buf);
      if (!strcmp(buf, name)) return pf_arch_composes_view(&arch->layer[i], ndim);
    }
  return 0;
}

int pf_model_foreach_canonical(const pf_model *m, pf_model_tensor_cb cb, void *ud) {
  const pf_arch *arch = arch_of(&m->config);
  pf_model *mm = (pf_model *)m;
  char name[176], base[160];
  pf_tensor *parts[3];
  int r;
  for (int i = 0; i < arch->n_global; i++) {
    const pf_arch_tensor *at = &arch->global[i];
    if (!entry_parts(mm, NULL, at, parts)) continue;
    if (at->parts[0] == PF_G_HEAD && parts[0] == m->embed_tokens) continue;
    global_name(m, at, name, sizeof name);
    if ((r = cb(ud, name, parts[0]))) return r;
  }
  for (int64_t li = 0; li < m->n_layers; li++)
    for (int i = 0; i < arch->n_layer; i++) {
      const pf_arch_tensor *at = &arch->layer[i];
      entry_parts(mm, &mm->layers[li], at, parts);
      layer_name(m, li, at, base, sizeof base);
      for (int p = 0; p < at->n_parts; p++) {
        if (!parts[p]) continue;
        if (at->n_parts == 1)
          snprintf(name, sizeof name, "%s", base);
        else
          snprintf(name, sizeof name, "%s#%d", base, p & 3);
        if ((r = cb(ud, name, parts[p]))) return r;
      }
    }
  return 0;
}

/* ---- consistency check ---- */

static pf_status check_2d(const pf_tensor *t, const char *name, int64_t rows, int64_t cols,
                          pf_err *err) {
  char want[64], got[64];
  int64_t shape[2] = {rows, cols};
  if (!t) return pf_err_set(err, PF_ERR_FORMAT, "%s: missing", name);
  if (!shape_eq(t, 2, shape))
    return pf_err_set(err, PF_ERR_FORMAT,
                      "%s: expected shape %s ([vocab_size, hidden_size]), got %s", name,
                      pf_shape_str(2, shape, want, sizeof want),
                      pf_shape_str(t->ndim, t->shape, got, sizeof got));
  return PF_OK;
}

static pf_status check_layer(const pf_model *m, int64_t li, pf_err *err) {
  const pf_model_config *c = &m->config;
  const pf_arch *arch = arch_of(c);
  const pf_layer *l = &m->layers[li];
  const int64_t I = config_width(c, li);
  for (int i = 0; i < arch->n_layer; i++) {
    const pf_arch_tensor *at = &arch->layer[i];
    char name[160], want[96], got[96];
    layer_name(m, li, at, name, sizeof name);
    const int want_it = tensor_present(c, at);
    for (int p = 0; p < at->n_parts; p++) {
      const pf_tensor *t = l->slot[at->parts[p]];
      int64_t shape[2];
      if (!t && want_it) return pf_err_set(err, PF_ERR_FORMAT, "%s: missing", name);
      if (t && !want_it)
        return pf_err_set(err, PF_ERR_FORMAT, "%s: present but config.json does not describe it",
                          name);
      if (!t) continue;
      int ndim = slot_shape(c, at->parts[p], I, shape);
      if (!shape_eq(t, ndim, shape))
        return pf_err_set(err, PF_ERR_FORMAT,
                          "%s%s: expected shape %s from config.json (intermediate width %lld), "
                          "got %s",
                          name, at->n_parts > 1 ? " (a part)" : "",
                          pf_shape_str(ndim, shape, want, sizeof want), (long long)I,
                          pf_shape_str(t->ndim, t->shape, got, sizeof got));
    }
  }
  if (c->layer_types && !c->layer_types[li])
    return pf_err_set(err, PF_ERR_FORMAT, "config layer_types[%lld]: missing", (long long)li);
  return PF_OK;
}

pf_status pf_model_check(const pf_model *m, pf_err *err) {
  const pf_model_config *c = &m->config;
  char head[160] = "lm_head.weight", embed[160] = "model.embed_tokens.weight";
  const pf_arch *arch = arch_of(c);
  for (int i = 0; i < arch->n_global; i++) {
    if (arch->global[i].parts[0] == PF_G_HEAD) global_name(m, &arch->global[i], head, sizeof head);
    if (arch->global[i].parts[0] == PF_G_EMBED)
      global_name(m, &arch->global[i], embed, sizeof embed);
  }
  if (m->n_layers != c->num_hidden_layers)
    return pf_err_set(err, PF_ERR_FORMAT,
                      "model has %lld layers but config num_hidden_layers is %lld",
                      (long long)m->n_layers, (long long)c->num_hidden_layers);
  if (c->num_key_value_heads <= 0 || c->num_attention_heads % c->num_key_value_heads != 0)
    return pf_err_set(err, PF_ERR_FORMAT,
                      "config: num_attention_heads %lld is not divisible by num_key_value_heads "
                      "%lld",
                      (long long)c->num_attention_heads, (long long)c->num_key_value_heads);
  pf_status s =
      check_2d(m->embed_tokens, embed, c->vocab_size, c->hidden_size, err);
  if (s == PF_OK && m->lm_head) s = check_2d(m->lm_head, head, c->vocab_size, c->hidden_size, err);
  if (s == PF_OK && !m->lm_head && !c->tie_word_embeddings)
    s = pf_err_set(err, PF_ERR_FORMAT, "%s: missing and tie_word_embeddings is false", head);
  if (s == PF_OK && (!m->norm || m->norm->ndim != 1 || m->norm->shape[0] != c->hidden_size))
    s = pf_err_set(err, PF_ERR_FORMAT, "final norm: expected shape [%lld] (hidden_size)",
                   (long long)c->hidden_size);
  if (s == PF_OK && arch->pos == PF_POS_LEARNED &&
      (!m->embed_positions || m->embed_positions->ndim != 2 ||
       m->embed_positions->shape[0] != c->max_position_embeddings ||
       m->embed_positions->shape[1] != c->hidden_size))
    s = pf_err_set(err, PF_ERR_FORMAT,
                   "position embeddings: expected shape [%lld, %lld] (n_positions, n_embd)",
                   (long long)c->max_position_embeddings, (long long)c->hidden_size);
  for (int64_t i = 0; s == PF_OK && i < m->n_layers; i++)
    s = check_layer(m, i, err);
  return s;
}

/* ---- plans and tensor replacement ---- */

pf_status pf_model_plan(const pf_model_config *config, pf_dtype dt, pf_model **out, pf_err *err) {
  *out = NULL;
  pf_status s;
  pf_model *m = pf_model_alloc();
  if (!m) return pf_err_set(err, PF_ERR_NOMEM, "plan: out of memory");
  m->dtype = dt;
  if ((s = pf_config_copy(&m->config, config, err)) != PF_OK) goto fail;
  const pf_model_config *c = &m->config;
  const pf_arch *arch = arch_of(c);
  m->layers =
      calloc(c->num_hidden_layers > 0 ? (size_t)c->num_hidden_layers : 1, sizeof *m->layers);
  m->name = strdup(c->model_type[0] ? c->model_type : "model");
  if (!m->layers || !m->name) {
    s = pf_err_set(err, PF_ERR_NOMEM, "plan: out of memory");
    goto fail;
  }
  m->n_layers = c->num_hidden_layers;
  for (int i = 0; i < arch->n_global; i++) {
    int64_t shape[2];
    int g = arch->global[i].parts[0];
    if (!global_present(c, &arch->global[i])) continue;
    int nd = gslot_shape(c, g, shape);
    if ((s = pf_tensor_new_planned(dt, nd, shape, gslot_ptr(m, g), err))) goto fail;
  }
  for (int64_t li = 0; li < m->n_layers; li++) {
    m->layers[li].source_index = li;
    for (int i = 0; i < arch->n_layer; i++) {
      const pf_arch_tensor *at = &arch->layer[i];
      if (!tensor_present(c, at)) continue;
      for (int p = 0; p < at->n_parts; p++) {
        int64_t shape[2];
        int nd = slot_shape(c, at->parts[p], config_width(c, li), shape);
        if ((s = pf_tensor_new_planned(dt, nd, shape, &m->layers[li].slot[at->parts[p]], err)))
          goto fail;
      }
    }
  }
  *out = m;
  return PF_OK;
fail:
  pf_model_release(m);
  return s;
}

pf_status pf_model_set_tensor(pf_model *m, const char *name, pf_tensor *t, pf_err *err) {
  const pf_model_config *c = &m->config;
  const pf_arch *arch = arch_of(c);
  char buf[160];
  for (int i = 0; i < arch->n_global; i++) {
    global_name(m, &arch->global[i], buf, sizeof buf);
    if (strcmp(name, buf) != 0) continue;
    pf_tensor **p = gslot_ptr(m, arch->global[i].parts[0]);
    pf_tensor_release(*p);
    *p = t;
    return PF_OK;
  }
  const char *pre = arch->layer_prefix, *rest = NULL;
  if (m->legacy_names && !strncmp(pre, "transformer.", 12)) pre += 12;
  int64_t li = parse_layer_index(name, pre, &rest);
  for (int i = 0; li >= 0 && li < m->n_layers && i < arch->n_layer; i++) {
    const pf_arch_tensor *at = &arch->layer[i];
    if (strcmp(rest, at->suffix) != 0) continue;
    pf_layer *l = &m->layers[li];
    pf_tensor *parts[3] = {NULL, NULL, NULL};
    pf_status s = PF_OK;
    if (!t) { /* clear every part */
    } else if (at->n_parts == 1 && at->layout == PF_LAYOUT_PLAIN) {
      parts[0] = t;
      t = NULL;
    } else {
      int64_t ps[3][2], stored[2];
      int nd[3];
      layer_shapes(c, at, config_width(c, li), ps, nd, stored);
      s = pf_arch_split(at, t, (const int64_t(*)[2])ps, c->num_attention_heads, parts, err);
      pf_tensor_release(t);
      if (s != PF_OK) return s;
    }
    for (int p = 0; p < at->n_parts; p++) {
      pf_tensor_release(l->slot[at->parts[p]]);
      l->slot[at->parts[p]] = parts[p];
    }
    return PF_OK;
  }
  pf_tensor_release(t);
  return pf_err_set(err, PF_ERR_NOT_FOUND, "%s: not a tensor of a %lld-layer %s model", name,
                    (long long)m->n_layers, m->config.model_type);
}
