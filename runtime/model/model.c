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

/* When a slot exists, given the config. */
enum { C_ALWAYS, C_ATTN_BIAS, C_O_BIAS, C_QK_NORM, C_MLP_BIAS };
/* Expected shape of a slot. */
enum { S_Q, S_KV, S_O, S_QB, S_KVB, S_HID, S_HD, S_IH, S_HI, S_I };

typedef struct slot {
  const char *suffix; /* after "model.layers.N." */
  size_t off;         /* offsetof(pf_layer, field) */
  int cond, shape;
} slot;

/* Hugging Face module order: self_attn (q, k, v, o, q_norm, k_norm), mlp
 * (gate, up, down), input_layernorm, post_attention_layernorm. */
static const slot slots[] = {
    {"self_attn.q_proj.weight", offsetof(pf_layer, q_proj), C_ALWAYS, S_Q},
    {"self_attn.q_proj.bias", offsetof(pf_layer, q_bias), C_ATTN_BIAS, S_QB},
    {"self_attn.k_proj.weight", offsetof(pf_layer, k_proj), C_ALWAYS, S_KV},
    {"self_attn.k_proj.bias", offsetof(pf_layer, k_bias), C_ATTN_BIAS, S_KVB},
    {"self_attn.v_proj.weight", offsetof(pf_layer, v_proj), C_ALWAYS, S_KV},
    {"self_attn.v_proj.bias", offsetof(pf_layer, v_bias), C_ATTN_BIAS, S_KVB},
    {"self_attn.o_proj.weight", offsetof(pf_layer, o_proj), C_ALWAYS, S_O},
    {"self_attn.o_proj.bias", offsetof(pf_layer, o_bias), C_O_BIAS, S_HID},
    {"self_attn.q_norm.weight", offsetof(pf_layer, q_norm), C_QK_NORM, S_HD},
    {"self_attn.k_norm.weight", offsetof(pf_layer, k_norm), C_QK_NORM, S_HD},
    {"mlp.gate_proj.weight", offsetof(pf_layer, gate_proj), C_ALWAYS, S_IH},
    {"mlp.gate_proj.bias", offsetof(pf_layer, gate_bias), C_MLP_BIAS, S_I},
    {"mlp.up_proj.weight", offsetof(pf_layer, up_proj), C_ALWAYS, S_IH},
    {"mlp.up_proj.bias", offsetof(pf_layer, up_bias), C_MLP_BIAS, S_I},
    {"mlp.down_proj.weight", offsetof(pf_layer, down_proj), C_ALWAYS, S_HI},
    {"mlp.down_proj.bias", offsetof(pf_layer, down_bias), C_MLP_BIAS, S_HID},
    {"input_layernorm.weight", offsetof(pf_layer, input_layernorm), C_ALWAYS, S_HID},
    {"post_attention_layernorm.weight", offsetof(pf_layer, post_attention_layernorm), C_ALWAYS,
     S_HID},
};
#define N_SLOTS (sizeof slots / sizeof slots[0])

static pf_tensor **slot_ptr(pf_layer *l, const slot *s) {
  return (pf_tensor **)((char *)l + s->off);
}
static pf_tensor *slot_get(const pf_layer *l, const slot *s) {
  return *(pf_tensor *const *)((const char *)l + s->off);
}

static int slot_present(const pf_model_config *c, const slot *s) {
  switch (s->cond) {
  case C_ATTN_BIAS:
    return c->attention_bias;
  case C_O_BIAS:
    return c->attention_bias && strcmp(c->model_type, "qwen2") != 0;
  case C_QK_NORM:
    return c->qk_norm;
  case C_MLP_BIAS:
    return c->mlp_bias;
  default:
    return 1;
  }
}

/* Expected shape of slot s for a layer of width I; returns ndim. */
static int slot_shape(const pf_model_config *c, const slot *s, int64_t I, int64_t *shape) {
  int64_t H = c->hidden_size, q = c->num_attention_heads * c->head_dim,
          kv = c->num_key_value_heads * c->head_dim;
  switch (s->shape) {
  case S_Q:
    shape[0] = q, shape[1] = H;
    return 2;
  case S_KV:
    shape[0] = kv, shape[1] = H;
    return 2;
  case S_O:
    shape[0] = H, shape[1] = q;
    return 2;
  case S_QB:
    shape[0] = q;
    return 1;
  case S_KVB:
    shape[0] = kv;
    return 1;
  case S_HD:
    shape[0] = c->head_dim;
    return 1;
  case S_IH:
    shape[0] = I, shape[1] = H;
    return 2;
  case S_HI:
    shape[0] = H, shape[1] = I;
    return 2;
  case S_I:
    shape[0] = I;
    return 1;
  default:
    shape[0] = H;
    return 1;
  }
}

static int shape_eq(const pf_tensor *t, int ndim, const int64_t *shape) {
  if (t->ndim != ndim) return 0;
  for (int i = 0; i < ndim; i++)
    if (t->shape[i] != shape[i]) return 0;
  return 1;
}

static void release_layer(pf_layer *l) {
  for (size_t i = 0; i < N_SLOTS; i++) {
    pf_tensor **p = slot_ptr(l, &slots[i]);
    pf_tensor_release(*p);
    *p = NULL;
  }
}

/* ---- load ---- */

typedef struct loader {
  const char *dir;
  pf_st_reader *r;
  pf_model *m;
  const char *dtype_from; /* name of the tensor that fixed m->dtype */
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
  if (!ld->dtype_from) {
    ld->m->dtype = t->dtype;
    ld->dtype_from = name;
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

static pf_status load_layer(loader *ld, int64_t li, int have_sizes, pf_err *err) {
  const pf_model_config *c = &ld->m->config;
  pf_layer *l = &ld->m->layers[li];
  l->source_index = li;
  int64_t I = c->intermediate_sizes[li];
  char hint[160];
  if (have_sizes)
    snprintf(hint, sizeof hint, " (config intermediate_sizes[%lld] = %lld)", (long long)li,
             (long long)I);
  else
    snprintf(hint, sizeof hint,
             " (config intermediate_size = %lld; per-layer widths need an \"intermediate_sizes\" "
             "list in config.json)",
             (long long)I);
  for (size_t i = 0; i < N_SLOTS; i++) {
    const slot *s = &slots[i];
    if (!slot_present(c, s)) continue;
    char name[128];
    int64_t shape[2];
    int ndim = slot_shape(c, s, I, shape);
    snprintf(name, sizeof name, "model.layers.%lld.%s", (long long)li, s->suffix);
    int mlp = s->shape == S_IH || s->shape == S_HI || s->shape == S_I;
    pf_status st = load_tensor(ld, name, ndim, shape, mlp ? hint : NULL, slot_ptr(l, s), err);
    if (st != PF_OK) return st;
  }
  return PF_OK;
}

/* 1 if `name` is a tensor this config expects (or tolerates). */
static int name_expected(const pf_model_config *c, const char *name) {
  static const char rot[] = "rotary_emb.inv_freq";
  size_t n = strlen(name);
  if (n >= sizeof rot - 1 && strcmp(name + n - (sizeof rot - 1), rot) == 0) return 1;
  if (!strcmp(name, "model.embed_tokens.weight") || !strcmp(name, "model.norm.weight") ||
      !strcmp(name, "lm_head.weight"))
    return 1;
  static const char pre[] = "model.layers.";
  if (strncmp(name, pre, sizeof pre - 1) != 0) return 0;
  const char *p = name + sizeof pre - 1;
  if (*p < '0' || *p > '9' || (p[0] == '0' && p[1] >= '0' && p[1] <= '9')) return 0;
  int64_t li = 0;
  while (*p >= '0' && *p <= '9' && li < 1000000000)
    li = li * 10 + (*p++ - '0');
  if (*p != '.' || li >= c->num_hidden_layers) return 0;
  p++;
  for (size_t i = 0; i < N_SLOTS; i++)
    if (!strcmp(p, slots[i].suffix)) return slot_present(c, &slots[i]);
  return 0;
}

static pf_status load_tensors(loader *ld, pf_err *err) {
  pf_model *m = ld->m;
  const pf_model_config *c = &m->config;
  int64_t e_shape[2] = {c->vocab_size, c->hidden_size}, n_shape[1] = {c->hidden_size};
  pf_status s =
      load_tensor(ld, "model.embed_tokens.weight", 2, e_shape, NULL, &m->embed_tokens, err);
  if (s != PF_OK) return s;
  m->layers = calloc((size_t)c->num_hidden_layers, sizeof *m->layers);
  if (!m->layers) return pf_err_set(err, PF_ERR_NOMEM, "%s: out of memory", ld->dir);
  m->n_layers = c->num_hidden_layers;
  const cJSON *sizes =
      c->raw ? cJSON_GetObjectItemCaseSensitive(c->raw, "intermediate_sizes") : NULL;
  int have_sizes = sizes && !cJSON_IsNull(sizes);
  for (int64_t i = 0; i < m->n_layers; i++)
    if ((s = load_layer(ld, i, have_sizes, err)) != PF_OK) return s;
  if ((s = load_tensor(ld, "model.norm.weight", 1, n_shape, NULL, &m->norm, err)) != PF_OK)
    return s;
  if (!c->tie_word_embeddings) {
    if (!pf_st_has(ld->r, "lm_head.weight"))
      return pf_err_set(err, PF_ERR_NOT_FOUND,
                        "%s: lm_head.weight missing and tie_word_embeddings is false", ld->dir);
    if ((s = load_tensor(ld, "lm_head.weight", 2, e_shape, NULL, &m->lm_head, err)) != PF_OK)
      return s;
  }
  /* (a tied checkpoint that still stores lm_head.weight: ignored, as transformers ties it) */
  size_t n = pf_st_count(ld->r);
  for (size_t i = 0; i < n; i++) {
    const char *name = pf_st_name(ld->r, i);
    if (!name_expected(c, name))
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
  pf_model *m = calloc(1, sizeof *m);
  if (!m) return pf_err_set(err, PF_ERR_NOMEM, "%s: out of memory", dir);
  m->refcount = 1;
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

void pf_model_retain(pf_model *m) {
  if (m) m->refcount++;
}

void pf_model_release(pf_model *m) {
  if (!m || --m->refcount > 0) return;
  pf_tensor_release(m->embed_tokens);
  pf_tensor_release(m->norm);
  pf_tensor_release(m->lm_head);
  if (m->layers)
    for (int64_t i = 0; i < m->n_layers; i++)
      release_layer(&m->layers[i]);
  free(m->layers);
  pf_config_free(&m->config);
  free(m->source_dir);
  free(m->name);
  free(m);
}

/* ---- derive / remove ---- */

pf_status pf_model_derive(const pf_model *parent, pf_model **out, pf_err *err) {
  *out = NULL;
  pf_model *m = calloc(1, sizeof *m);
  if (!m) return pf_err_set(err, PF_ERR_NOMEM, "derive %s: out of memory", parent->name);
  m->refcount = 1;
  m->dtype = parent->dtype;
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
    for (size_t k = 0; k < N_SLOTS; k++)
      pf_tensor_retain(slot_get(&m->layers[i], &slots[k]));
  }
  pf_tensor_retain(m->embed_tokens = parent->embed_tokens);
  pf_tensor_retain(m->norm = parent->norm);
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

/* ---- counting ---- */

int64_t pf_model_param_count(const pf_model *m) {
  int64_t n = pf_tensor_numel(m->embed_tokens) + pf_tensor_numel(m->norm);
  if (m->lm_head && m->lm_head != m->embed_tokens) n += pf_tensor_numel(m->lm_head);
  for (int64_t i = 0; i < m->n_layers; i++) {
    int64_t a, b, c;
    pf_layer_param_split(&m->layers[i], &a, &b, &c);
    n += a + b + c;
  }
  return n;
}

void pf_layer_param_split(const pf_layer *l, int64_t *attn, int64_t *mlp, int64_t *other) {
  int64_t a = 0, b = 0, c = 0;
  for (size_t i = 0; i < N_SLOTS; i++) {
    int64_t n = pf_tensor_numel(slot_get(l, &slots[i]));
    if (!strncmp(slots[i].suffix, "self_attn.", 10))
      a += n;
    else if (!strncmp(slots[i].suffix, "mlp.", 4))
      b += n;
    else
      c += n;
  }
  if (attn) *attn = a;
  if (mlp) *mlp = b;
  if (other) *other = c;
}

static uint64_t tensor_bytes(const pf_tensor *t) {
  return t ? (uint64_t)pf_tensor_numel(t) * pf_dtype_size(t->dtype) : 0;
}

static int add_bytes(void *ud, const char *name, const pf_tensor *t) {
  (void)name;
  *(uint64_t *)ud += tensor_bytes(t);
  return 0;
}

uint64_t pf_model_weight_bytes(const pf_model *m) {
  uint64_t n = 0;
  pf_model_foreach_tensor(m, add_bytes, &n);
  return n;
}

int pf_model_glu_compatible(const pf_model *m, char *why, size_t n) {
  const char *msg = NULL;
  char buf[160];
  const pf_layer *l = m->n_layers > 0 ? &m->layers[0] : NULL;
  if (!l)
    msg = "the model has no layers";
  else if (!l->gate_proj || !l->up_proj || !l->down_proj)
    msg = "layer 0 has no gate_proj/up_proj/down_proj (not a GLU MLP)";
  else if (l->gate_proj->ndim != 2 || l->up_proj->ndim != 2 || l->down_proj->ndim != 2)
    msg = "layer 0 MLP weights are not 2-D";
  else if (l->gate_proj->shape[1] != l->up_proj->shape[1] ||
           l->gate_proj->shape[0] != l->up_proj->shape[0] ||
           l->down_proj->shape[1] != l->gate_proj->shape[0]) {
    char g[48], u[48], d[48];
    snprintf(buf, sizeof buf, "layer 0 MLP shapes do not chain: gate %s, up %s, down %s",
             pf_shape_str(2, l->gate_proj->shape, g, sizeof g),
             pf_shape_str(2, l->up_proj->shape, u, sizeof u),
             pf_shape_str(2, l->down_proj->shape, d, sizeof d));
    msg = buf;
  }
  if (msg && why && n) snprintf(why, n, "%s", msg);
  return msg == NULL;
}

int pf_model_foreach_tensor(const pf_model *m, pf_model_tensor_cb cb, void *ud) {
  int r;
  char name[128];
  if (m->embed_tokens && (r = cb(ud, "model.embed_tokens.weight", m->embed_tokens))) return r;
  for (int64_t li = 0; li < m->n_layers; li++) {
    for (size_t i = 0; i < N_SLOTS; i++) {
      const pf_tensor *t = slot_get(&m->layers[li], &slots[i]);
      if (!t) continue;
      snprintf(name, sizeof name, "model.layers.%lld.%s", (long long)li, slots[i].suffix);
      if ((r = cb(ud, name, t))) return r;
    }
  }
  if (m->norm && (r = cb(ud, "model.norm.weight", m->norm))) return r;
  if (m->lm_head && m->lm_head != m->embed_tokens && (r = cb(ud, "lm_head.weight", m->lm_head)))
    return r;
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
  const pf_layer *l = &m->layers[li];
  int64_t I = c->intermediate_sizes ? c->intermediate_sizes[li] : c->intermediate_size;
  for (size_t i = 0; i < N_SLOTS; i++) {
    const slot *s = &slots[i];
    const pf_tensor *t = slot_get(l, s);
    char name[128], want[96], got[96];
    int64_t shape[2];
    snprintf(name, sizeof name, "model.layers.%lld.%s", (long long)li, s->suffix);
    int want_it = slot_present(c, s);
    if (!t && want_it) return pf_err_set(err, PF_ERR_FORMAT, "%s: missing", name);
    if (t && !want_it)
      return pf_err_set(err, PF_ERR_FORMAT, "%s: present but config.json does not describe it",
                        name);
    if (!t) continue;
    int ndim = slot_shape(c, s, I, shape);
    if (!shape_eq(t, ndim, shape))
      return pf_err_set(err, PF_ERR_FORMAT,
                        "%s: expected shape %s from config.json (intermediate width %lld), got %s",
                        name, pf_shape_str(ndim, shape, want, sizeof want), (long long)I,
                        pf_shape_str(t->ndim, t->shape, got, sizeof got));
  }
  if (c->layer_types && !c->layer_types[li])
    return pf_err_set(err, PF_ERR_FORMAT, "config layer_types[%lld]: missing", (long long)li);
  return PF_OK;
}

pf_status pf_model_check(const pf_model *m, pf_err *err) {
  const pf_model_config *c = &m->config;
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
      check_2d(m->embed_tokens, "model.embed_tokens.weight", c->vocab_size, c->hidden_size, err);
  if (s == PF_OK && m->lm_head)
    s = check_2d(m->lm_head, "lm_head.weight", c->vocab_size, c->hidden_size, err);
  if (s == PF_OK && !m->lm_head && !c->tie_word_embeddings)
    s = pf_err_set(err, PF_ERR_FORMAT, "lm_head.weight: missing and tie_word_embeddings is false");
  if (s == PF_OK && (!m->norm || m->norm->ndim != 1 || m->norm->shape[0] != c->hidden_size))
    s = pf_err_set(err, PF_ERR_FORMAT, "model.norm.weight: expected shape [%lld] (hidden_size)",
                   (long long)c->hidden_size);
  for (int64_t i = 0; s == PF_OK && i < m->n_layers; i++)
    s = check_layer(m, i, err);
  return s;
}

/* ---- plans and tensor replacement ---- */

pf_status pf_model_plan(const pf_model_config *config, pf_dtype dt, pf_model **out, pf_err *err) {
  *out = NULL;
  pf_status s;
  pf_model *m = calloc(1, sizeof *m);
  if (!m) return pf_err_set(err, PF_ERR_NOMEM, "plan: out of memory");
  m->refcount = 1;
  m->dtype = dt;
  if ((s = pf_config_copy(&m->config, config, err)) != PF_OK) goto fail;
  const pf_model_config *c = &m->config;
  int64_t e_shape[2] = {c->vocab_size, c->hidden_size}, n_shape[1] = {c->hidden_size};
  m->layers =
      calloc(c->num_hidden_layers > 0 ? (size_t)c->num_hidden_layers : 1, sizeof *m->layers);
  m->name = strdup(c->model_type[0] ? c->model_type : "model");
  if (!m->layers || !m->name) {
    s = pf_err_set(err, PF_ERR_NOMEM, "plan: out of memory");
    goto fail;
  }
  m->n_layers = c->num_hidden_layers;
  if ((s = pf_tensor_new_planned(dt, 2, e_shape, &m->embed_tokens, err)) ||
      (s = pf_tensor_new_planned(dt, 1, n_shape, &m->norm, err)) ||
      (!c->tie_word_embeddings && (s = pf_tensor_new_planned(dt, 2, e_shape, &m->lm_head, err))))
    goto fail;
  for (int64_t li = 0; li < m->n_layers; li++) {
    m->layers[li].source_index = li;
    for (size_t i = 0; i < N_SLOTS; i++) {
      if (!slot_present(c, &slots[i])) continue;
      int64_t shape[2];
      int64_t I = c->intermediate_sizes ? c->intermediate_sizes[li] : c->intermediate_size;
      int nd = slot_shape(c, &slots[i], I, shape);
      if ((s = pf_tensor_new_planned(dt, nd, shape, slot_ptr(&m->layers[li], &slots[i]), err)))
        goto fail;
    }
  }
  *out = m;
  return PF_OK;
fail:
  pf_model_release(m);
  return s;
}

static pf_tensor **find_slot(pf_model *m, const char *name) {
  if (!strcmp(name, "model.embed_tokens.weight")) return &m->embed_tokens;
  if (!strcmp(name, "model.norm.weight")) return &m->norm;
  if (!strcmp(name, "lm_head.weight")) return &m->lm_head;
  static const char pre[] = "model.layers.";
  if (strncmp(name, pre, sizeof pre - 1) != 0) return NULL;
  char *end = NULL;
  long long li = strtoll(name + sizeof pre - 1, &end, 10);
  if (end == name + sizeof pre - 1 || *end != '.' || li < 0 || li >= m->n_layers) return NULL;
  for (size_t i = 0; i < N_SLOTS; i++)
    if (!strcmp(end + 1, slots[i].suffix)) return slot_ptr(&m->layers[li], &slots[i]);
  return NULL;
}

pf_status pf_model_set_tensor(pf_model *m, const char *name, pf_tensor *t, pf_err *err) {
  pf_tensor **p = find_slot(m, name);
  if (!p) {
    pf_tensor_release(t);
    return pf_err_set(err, PF_ERR_NOT_FOUND, "%s: not a tensor of a %lld-layer %s model", name,
                      (long long)m->n_layers, m->config.model_type);
  }
  pf_tensor_release(*p);
  *p = t;
  return PF_OK;
}
