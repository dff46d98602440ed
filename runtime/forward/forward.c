/* forward.c — the forward runner: model checks, buffers, embeddings, the layer
 * loop with taps, the final norm and the chunked lm_head (see forward.h).
 *
 * Memory: every activation buffer is allocated by pf_fwd_reserve for the largest
 * batch seen and reused; logits are computed logit_rows rows at a time (at most
 * 256 rows, 128 MiB of float32), so [B*S, vocab] never exists. Nothing is
 * allocated inside an OpenMP region: the attention scratch is one slice per
 * thread, sized here.
 * The layer itself is in forward_layer.c, attention in forward_attn.c.
 */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "forward_int.h"

/* ---- tap names ---- */

static const char *const tap_names[PF_TAP_COUNT] = {
    "layer_input", "input_norm",      "o_proj_input", "attention_output", "gate_proj",
    "up_proj",     "down_proj_input", "down_proj",    "mlp_output",       "layer_output"};
_Static_assert(sizeof tap_names / sizeof tap_names[0] == PF_TAP_COUNT, "one name per tap point");

const char *pf_tap_name(pf_tap_point p) {
  return (p >= 0 && p < PF_TAP_COUNT) ? tap_names[p] : "unknown";
}

pf_status pf_tap_parse(const char *name, pf_tap_point *out, pf_err *err) {
  for (int i = 0; name && i < PF_TAP_COUNT; i++)
    if (!strcmp(name, tap_names[i])) {
      *out = (pf_tap_point)i;
      return PF_OK;
    }
  return pf_err_set(
      err, PF_ERR_INVALID,
      "tap point: expected one of layer_input, input_norm, o_proj_input, attention_output, "
      "gate_proj, up_proj, down_proj_input, down_proj, mlp_output, layer_output, "
      "got '%s'",
      name ? name : "(null)");
}

/* ---- model checks ---- */

static pf_status check_tensor(const pf_tensor *t, const char *name, int ndim, int64_t d0,
                              int64_t d1, pf_err *err) {
  char got[64], want[64];
  const int64_t shape[2] = {d0, d1};
  if (!t) return pf_err_set(err, PF_ERR_INVALID, "%s: missing", name);
  if (t->ndim != ndim || t->shape[0] != d0 || (ndim == 2 && t->shape[1] != d1))
    return pf_err_set(err, PF_ERR_INVALID, "%s: expected shape %s, got %s", name,
                      pf_shape_str(ndim, shape, want, sizeof want),
                      pf_shape_str(t->ndim, t->shape, got, sizeof got));
  /* lazy tensors (pruned selections, tensor.h) get their bytes here, once */
  if (pf_tensor_materialize(t, err)) return pf_err_prefix(err, "%s", name);
  if (!t->data)
    return pf_err_set(err, PF_ERR_INVALID,
                      "%s: expected weights, got a planned tensor (a dry-run model cannot run)",
                      name);
  return PF_OK;
}

/* Optional tensor: NULL is fine. */
static pf_status check_opt(const pf_tensor *t, const char *name, int ndim, int64_t d0, int64_t d1,
                           pf_err *err) {
  return t ? check_tensor(t, name, ndim, d0, d1, err) : PF_OK;
}

/* Names in messages are the canonical (LLaMA) ones; pf_model_check, run at load
 * and save, names the family's stored tensors. */
static pf_status check_layer(const pf_forward *f, int64_t i, const pf_layer *w, pf_err *err) {
  const int64_t H = f->H, Q = f->q_dim, KV = f->kv_dim, hd = f->hd;
  const int64_t I = pf_layer_width(w);
  const int glu = f->arch->mlp == PF_MLP_GLU;
  enum { N = 24 };
  char n[N][96];
  static const char *const names[N] = {"input_layernorm.weight",
                                       "self_attn.q_proj.weight",
                                       "self_attn.k_proj.weight",
                                       "self_attn.v_proj.weight",
                                       "self_attn.o_proj.weight",
                                       "post_attention_layernorm.weight",
                                       "mlp.gate_proj.weight",
                                       "mlp.up_proj.weight",
                                       "mlp.down_proj.weight",
                                       "self_attn.q_proj.bias",
                                       "self_attn.k_proj.bias",
                                       "self_attn.v_proj.bias",
                                       "self_attn.q_norm.weight",
                                       "self_attn.k_norm.weight",
                                       "self_attn.o_proj.bias",
                                       "mlp.gate_proj.bias",
                                       "mlp.up_proj.bias",
                                       "mlp.down_proj.bias",
                                       "input_layernorm.bias",
                                       "post_attention_layernorm.bias",
                                       "attn_post_norm.weight",
                                       "mlp_post_norm.weight",
                                       "(unused)",
                                       "(unused)"};
  for (int j = 0; j < N; j++)
    snprintf(n[j], sizeof n[j], "model.layers.%lld.%s", (long long)i, names[j]);
  pf_status s;
  if ((s = check_tensor(w->input_layernorm, n[0], 1, H, 0, err)) ||
      (s = check_tensor(w->q_proj, n[1], 2, Q, H, err)) ||
      (s = check_tensor(w->k_proj, n[2], 2, KV, H, err)) ||
      (s = check_tensor(w->v_proj, n[3], 2, KV, H, err)) ||
      (s = check_tensor(w->o_proj, n[4], 2, H, Q, err)) ||
      (s = check_tensor(w->post_attention_layernorm, n[5], 1, H, 0, err)) ||
      (glu && (s = check_tensor(w->gate_proj, n[6], 2, I, H, err))) ||
      (s = check_tensor(w->up_proj, n[7], 2, I, H, err)) ||
      (s = check_tensor(w->down_proj, n[8], 2, H, I, err)) ||
      (s = check_opt(w->q_bias, n[9], 1, Q, 0, err)) ||
      (s = check_opt(w->k_bias, n[10], 1, KV, 0, err)) ||
      (s = check_opt(w->v_bias, n[11], 1, KV, 0, err)) ||
      (s = check_opt(w->q_norm, n[12], 1, hd, 0, err)) ||
      (s = check_opt(w->k_norm, n[13], 1, hd, 0, err)) ||
      (s = check_opt(w->o_bias, n[14], 1, H, 0, err)) ||
      (s = check_opt(w->gate_bias, n[15], 1, I, 0, err)) ||
      (s = check_opt(w->up_bias, n[16], 1, I, 0, err)) ||
      (s = check_opt(w->down_bias, n[17], 1, H, 0, err)) ||
      (s = check_opt(w->input_layernorm_bias, n[18], 1, H, 0, err)) ||
      (s = check_opt(w->post_attention_layernorm_bias, n[19], 1, H, 0, err)) ||
      (s = check_opt(w->attn_post_norm, n[20], 1, H, 0, err)) ||
      (s = check_opt(w->mlp_post_norm, n[21], 1, H, 0, err)))
    return s;
  if (I <= 0)
    return pf_err_set(err, PF_ERR_INVALID, "%s: expected at least one neuron, got %lld", n[7],
                      (long long)I);
  if (!w->q_norm != !w->k_norm)
    return pf_err_set(err, PF_ERR_INVALID,
                      "model.layers.%lld: expected both q_norm and k_norm "
                      "or neither, got only one",
                      (long long)i);
  if (f->arch->sandwich_norms && (!w->attn_post_norm || !w->mlp_post_norm))
    return pf_err_set(err, PF_ERR_INVALID,
                      "model.layers.%lld: expected the attention and MLP output norms of %s",
                      (long long)i, f->arch->family);
  return PF_OK;
}

static pf_status check_model(pf_forward *f, const pf_model *m, pf_err *err) {
  const pf_model_config *c = &m->config;
  pf_status s = pf_act_parse(c->hidden_act, &f->act, err);
  if (s != PF_OK) return pf_err_prefix(err, "%s", f->arch->model_type);
  if (c->num_hidden_layers != m->n_layers)
    return pf_err_set(err, PF_ERR_INVALID,
                      "num_hidden_layers: expected %lld (the model's layers), got %lld",
                      (long long)m->n_layers, (long long)c->num_hidden_layers);
  if ((s = check_tensor(m->embed_tokens, "model.embed_tokens.weight", 2, f->vocab, f->H, err)) ||
      (s = check_tensor(m->norm, "model.norm.weight", 1, f->H, 0, err)) ||
      (s = check_opt(m->norm_bias, "model.norm.bias", 1, f->H, 0, err)) ||
      (s = check_opt(m->lm_head, "lm_head.weight", 2, f->vocab, f->H, err)))
    return s;
  if (f->arch->pos == PF_POS_LEARNED &&
      (s = check_tensor(m->embed_positions, "position embeddings (wpe)", 2, f->max_pos, f->H, err)))
    return s;
  for (int64_t i = 0; i < m->n_layers; i++)
    if ((s = check_layer(f, i, &m->layers[i], err))) return s;
  return PF_OK;
}

/* ---- runner ---- */

static float *f32_copy(const pf_tensor *t) {
  if (!t) return NULL;
  float *p = malloc((size_t)pf_tensor_numel(t) * sizeof *p);
  if (p) pf_tensor_to_f32(t, p);
  return p;
}

/* Norm weight as float32; Gemma's stored w means (1 + w). */
static float *norm_copy(const pf_forward *f, const pf_tensor *t) {
  float *p = f32_copy(t);
  if (p && f->arch->norm == PF_NORM_RMS_OFFSET)
    for (int64_t i = 0; i < pf_tensor_numel(t); i++)
      p[i] += 1.0f;
  return p;
}

/* Attention score scale of layer l (a float32 constant, as transformers uses). */
static float layer_scale(const pf_model_config *c, int64_t l) {
  if (!strcmp(c->arch->model_type, "gpt2")) {
    double d = c->scale_attn_weights ? sqrt((double)c->head_dim) : 1.0;
    if (c->scale_attn_by_inverse_layer_idx) d *= (double)(l + 1);
    return (float)(1.0 / d);
  }
  if (c->query_pre_attn_scalar > 0) return (float)(1.0 / sqrt(c->query_pre_attn_scalar));
  return (float)(1.0 / sqrt((double)c->head_dim));
}

static pf_status init_layers(pf_forward *f, pf_err *err) {
  const pf_model *m = f->m;
  const pf_model_config *c = &m->config;
  f->layers = calloc((size_t)(m->n_layers ? m->n_layers : 1), sizeof *f->layers);
  if (!f->layers) goto nomem;
  for (int64_t i = 0; i < m->n_layers; i++) {
    pf_fwd_layer *L = &f->layers[i];
    const pf_layer *w = &m->layers[i];
    L->w = w;
    L->inter = pf_layer_width(w);
    L->window = pf_config_layer_window(c, i);
    L->scale = layer_scale(c, i);
    if (L->inter > f->inter_max) f->inter_max = L->inter;
    if (!(L->ln1 = norm_copy(f, w->input_layernorm)) ||
        !(L->ln2 = norm_copy(f, w->post_attention_layernorm)))
      goto nomem;
    if ((w->input_layernorm_bias && !(L->ln1_b = f32_copy(w->input_layernorm_bias))) ||
        (w->post_attention_layernorm_bias &&
         !(L->ln2_b = f32_copy(w->post_attention_layernorm_bias))) ||
        (w->attn_post_norm && !(L->attn_post = norm_copy(f, w->attn_post_norm))) ||
        (w->mlp_post_norm && !(L->mlp_post = norm_copy(f, w->mlp_post_norm))))
      goto nomem;
    if (w->q_norm &&
        (!(L->q_norm = norm_copy(f, w->q_norm)) || !(L->k_norm = norm_copy(f, w->k_norm))))
      goto nomem;
  }
  if (!(f->final_norm = norm_copy(f, m->norm))) goto nomem;
  if (m->norm_bias && !(f->final_norm_b = f32_copy(m->norm_bias))) goto nomem;
  return PF_OK;
nomem:
  return pf_err_set(err, PF_ERR_NOMEM, "forward: out of memory for the norm weights");
}

/* RoPE tables: one for the model, and a second one when some layer uses other
 * parameters (Gemma 3's sliding layers). */
static pf_status init_rope(pf_forward *f, pf_err *err) {
  const pf_model_config *c = &f->m->config;
  pf_status s = PF_OK;
  const int64_t first = f->max_pos < 1024 ? f->max_pos : 1024;
  if (f->arch->pos != PF_POS_ROPE) return PF_OK;
  if ((s = pf_config_rope_params(c, &f->rope_params, err)) ||
      (s = pf_rope_table_new(&f->rope_params, first, &f->rope, err)) ||
      (s = pf_config_rope_long(c, &f->rope_long_params, &f->long_after, err)) ||
      (f->long_after > 0 &&
       (s = pf_rope_table_new(&f->rope_long_params, first, &f->rope_long, err))))
    return s;
  for (int64_t i = 0; i < f->n_layers; i++) {
    pf_rope_params p;
    if ((s = pf_config_layer_rope(c, i, &p, err))) return s;
    f->layers[i].rope = f->rope;
    if (p.rope_type == f->rope_params.rope_type && p.rope_theta == f->rope_params.rope_theta)
      continue; /* (the only fields a layer changes: pf_config_layer_rope) */
    if (!f->rope_local) {
      f->rope_local_params = p;
      if ((s = pf_rope_table_new(&p, first, &f->rope_local, err))) return s;
    }
    f->layers[i].rope = f->rope_local;
  }
  return PF_OK;
}

pf_status pf_forward_new(const pf_model *m, pf_forward **out, pf_err *err) {
  *out = NULL;
  if (!m) return pf_err_set(err, PF_ERR_INVALID, "forward: NULL model");
  pf_status s = pf_kernels_init(err);
  if (s != PF_OK) return s;
  pf_forward *f = calloc(1, sizeof *f);
  if (!f) return pf_err_set(err, PF_ERR_NOMEM, "forward: out of memory");
  pf_model_retain((pf_model *)m);
  f->m = (pf_model *)m;
  const pf_model_config *c = &m->config;
  f->H = c->hidden_size;
  f->n_heads = c->num_attention_heads;
  f->n_kv = c->num_key_value_heads;
  f->hd = c->head_dim;
  f->vocab = c->vocab_size;
  f->n_layers = m->n_layers;
  f->max_pos = c->max_position_embeddings;
  f->q_dim = f->n_heads * f->hd;
  f->kv_dim = f->n_kv * f->hd;
  f->eps = (float)c->rms_norm_eps;
  f->head = m->lm_head ? m->lm_head : m->embed_tokens;
  f->arch = c->arch ? c->arch : pf_arch_default();
  f->parallel = c->use_parallel_residual;
  f->embed_scale = f->arch->embed_scale ? (float)sqrt((double)f->H) : 0.0f;
  f->attn_softcap = (float)c->attn_logit_softcapping;
  f->final_softcap = (float)c->final_logit_softcapping;
  if ((s = check_model(f, m, err)) || (s = pf_workspace_new(&f->ws, err)) ||
      (s = init_layers(f, err)) || (s = init_rope(f, err)))
    goto fail;
  /* up to 256 rows (128 MiB for a 128k vocabulary): the lm_head's BF16 panels are
   * widened once per chunk, so short chunks cost (65-row chunks: +13% prefill time
   * on a Llama-3.2-1B shape) */
  f->logit_rows = ((int64_t)32 << 20) / (f->vocab ? f->vocab : 1);
  f->logit_rows = f->logit_rows < 16 ? 16 : f->logit_rows > 256 ? 256 : f->logit_rows;
  *out = f;
  return PF_OK;
fail:
  pf_err_prefix(err, "forward (%s)", m->name ? m->name : "model");
  pf_forward_free(f);
  return s;
}

static void free_buffers(pf_forward *f) {
  float **bufs[] = {&f->x, &f->xn, &f->q, &f->k, &f->v, &f->att, &f->o, &f->g, &f->u, &f->a2};
  for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) {
    free(*bufs[i]);
    *bufs[i] = NULL;
  }
  free(f->pos);
  free(f->mask);
  f->pos = NULL;
  f->mask = NULL;
  f->cap_tok = 0;
}

void pf_forward_free(pf_forward *f) {
  if (!f) return;
  for (int64_t i = 0; f->layers && i < f->n_layers; i++) {
    pf_fwd_layer *L = &f->layers[i];
    float *owned[] = {L->ln1,    L->ln1_b,  L->ln2,       L->ln2_b,
                      L->q_norm, L->k_norm, L->attn_post, L->mlp_post};
    for (size_t k = 0; k < sizeof owned / sizeof owned[0]; k++)
      free(owned[k]);
  }
  free(f->layers);
  free(f->final_norm);
  free(f->final_norm_b);
  pf_rope_table_free(f->rope_local);
  pf_rope_table_free(f->rope_long);
  free_buffers(f);
  free(f->len);
  free(f->logits);
  free(f->scratch);
  pf_rope_table_free(f->rope);
  pf_workspace_free(f->ws);
  pf_model_release(f->m);
  free(f);
}

static pf_status reserve_tokens(pf_forward *f, int64_t T, pf_err *err) {
  if (T <= f->cap_tok) return PF_OK;
  free_buffers(f);
  const size_t t = (size_t)T, H = (size_t)f->H, Q = (size_t)f->q_dim, KV = (size_t)f->kv_dim;
  const size_t I = (size_t)f->inter_max;
  f->x = malloc(t * H * sizeof(float));
  f->xn = malloc(t * H * sizeof(float));
  f->o = malloc(t * H * sizeof(float));
  f->q = malloc(t * Q * sizeof(float));
  f->att = malloc(t * Q * sizeof(float));
  f->k = malloc(t * KV * sizeof(float));
  f->v = malloc(t * KV * sizeof(float));
  f->g = malloc(t * I * sizeof(float));
  f->u = malloc(t * I * sizeof(float));
  f->pos = malloc(t * sizeof *f->pos);
  f->mask = malloc(t * sizeof *f->mask);
  if (f->parallel && !(f->a2 = malloc(t * H * sizeof(float)))) {
    free_buffers(f);
    return pf_err_set(err, PF_ERR_NOMEM, "forward: cannot allocate activations for %lld tokens",
                      (long long)T);
  }
  if (!f->x || !f->xn || !f->o || !f->q || !f->att || !f->k || !f->v || !f->g || !f->u || !f->pos ||
      !f->mask) {
    free_buffers(f);
    return pf_err_set(err, PF_ERR_NOMEM, "forward: cannot allocate activations for %lld tokens",
                      (long long)T);
  }
  f->cap_tok = T;
  return PF_OK;
}

static pf_status reserve_keys(pf_forward *f, int64_t keys, pf_err *err) {
  const int nthr = omp_get_max_threads();
  const int64_t need = (keys + PF_ATTN_KB - 1) / PF_ATTN_KB * PF_ATTN_KB;
  if (need <= f->cap_keys && nthr <= f->nthr) return PF_OK;
  const int64_t cap = need > f->cap_keys ? need : f->cap_keys;
  const int n = nthr > f->nthr ? nthr : f->nthr;
  const size_t per = pf_attn_scratch_floats(f->hd, cap);
  free(f->scratch);
  f->scratch = malloc((size_t)n * per * sizeof(float));
  if (!f->scratch) {
    f->cap_keys = 0;
    f->nthr = 0;
    return pf_err_set(err, PF_ERR_NOMEM, "forward: cannot allocate attention scratch for %lld keys",
                      (long long)keys);
  }
  f->cap_keys = cap;
  f->nthr = n;
  f->scratch_per_thr = per;
  return PF_OK;
}

pf_status pf_fwd_reserve(pf_forward *f, int64_t tokens, int64_t batch, int64_t keys, pf_err *err) {
  pf_status s;
  if ((s = reserve_tokens(f, tokens, err)) || (s = reserve_keys(f, keys, err))) return s;
  if (batch > f->cap_batch) {
    int64_t *len = realloc(f->len, (size_t)batch * sizeof *len);
    if (!len) return pf_err_set(err, PF_ERR_NOMEM, "forward: out of memory");
    f->len = len;
    f->cap_batch = batch;
  }
  if (f->rope_long) { /* longrope: transformers picks the factors by the call's length */
    if (keys > f->rope_long->max_pos) {
      int64_t want = f->rope_long->max_pos * 2 > keys ? f->rope_long->max_pos * 2 : keys;
      pf_rope_table *t = NULL;
      if ((s = pf_rope_table_new(&f->rope_long_params, want > f->max_pos ? f->max_pos : want, &t,
                                 err)))
        return s;
      pf_rope_table_free(f->rope_long);
      f->rope_long = t;
    }
  }
  if (f->rope && keys > f->rope->max_pos) {
    int64_t want = f->rope->max_pos * 2 > keys ? f->rope->max_pos * 2 : keys;
    if (want > f->max_pos) want = f->max_pos;
    pf_rope_table *t = NULL, *tl = NULL;
    if ((s = pf_rope_table_new(&f->rope_params, want, &t, err))) return s;
    if (f->rope_local && (s = pf_rope_table_new(&f->rope_local_params, want, &tl, err))) {
      pf_rope_table_free(t);
      return s;
    }
    for (int64_t i = 0; i < f->n_layers; i++)
      f->layers[i].rope = f->layers[i].rope == f->rope_local && tl ? tl : t;
    pf_rope_table_free(f->rope);
    pf_rope_table_free(f->rope_local);
    f->rope = t;
    f->rope_local = tl;
  }
  if (f->rope_long)
    for (int64_t i = 0; i < f->n_layers; i++)
      f->layers[i].rope = keys > f->long_after ? f->rope_long : f->rope;
  return PF_OK;
}

/* Row t of f->x: the embedding of id (scaled), plus GPT-2's position row. */
static void embed_row(const pf_forward *f, int32_t id, int64_t t) {
  const pf_tensor *wpe = f->m->embed_positions;
  const int64_t H = f->H;
  float *xt = f->x + t * H;
  pf_tensor_row_f32(f->m->embed_tokens, id, xt);
  if (f->embed_scale != 0.0f)
    for (int64_t i = 0; i < H; i++)
      xt[i] *= f->embed_scale;
  if (wpe) { /* GPT-2: wte[id] + wpe[pos], in that order */
    float row[H];
    pf_tensor_row_f32(wpe, f->pos[t], row);
    for (int64_t i = 0; i < H; i++)
      xt[i] += row[i];
  }
}

void pf_fwd_embed(pf_forward *f, const int32_t *ids, int64_t n) {
  PF_PAR_FOR(n * f->H >= 65536, t, n, embed_row(f, ids[t], t));
}

void pf_fwd_norm(const pf_forward *f, float *y, const float *x, const float *w, const float *b,
                 int64_t rows) {
  if (f->arch->norm == PF_NORM_LAYER)
    pf_layernorm(y, x, w, b, rows, f->H, f->eps);
  else
    pf_rmsnorm(y, x, w, rows, f->H, f->eps);
}

pf_status pf_fwd_logits(pf_forward *f, const float *x, int64_t n, float *logits, pf_err *err) {
  pf_fwd_norm(f, f->xn, x, f->final_norm, f->final_norm_b, n);
  pf_status s = pf_linear(f->xn, n, f->H, f->head, NULL, logits, f->ws, err);
  if (s != PF_OK) return pf_err_prefix(err, "lm_head");
  if (f->final_softcap > 0) pf_softcap(logits, n * f->vocab, f->final_softcap);
  return PF_OK;
}

/* ---- running a batch ---- */

/* Shapes, ids, the mask (0/1, right padding) -> f->mask and f->len. */
static pf_status check_batch(pf_forward *f, const pf_batch *b, pf_err *err) {
  if (b->batch < 1 || b->seq < 1 || !b->ids)
    return pf_err_set(err, PF_ERR_INVALID,
                      "batch: expected batch >= 1, seq >= 1 and ids, got batch %lld, seq %lld%s",
                      (long long)b->batch, (long long)b->seq, b->ids ? "" : ", no ids");
  if (b->seq > f->max_pos)
    return pf_err_set(err, PF_ERR_INVALID,
                      "batch: sequence length %lld is longer than max_position_embeddings %lld "
                      "(a max_length / --max-length of %lld or less fits the model)",
                      (long long)b->seq, (long long)f->max_pos, (long long)f->max_pos);
  if (b->batch > INT64_MAX / b->seq / (f->inter_max > f->q_dim ? f->inter_max : f->q_dim))
    return pf_err_set(err, PF_ERR_INVALID, "batch: %lld x %lld tokens is too large",
                      (long long)b->batch, (long long)b->seq);
  return PF_OK;
}

static pf_status check_ids(pf_forward *f, const pf_batch *b, pf_err *err) {
  for (int64_t r = 0; r < b->batch; r++) {
    int64_t len = b->seq;
    for (int64_t s = 0; s < b->seq; s++) {
      const int64_t t = r * b->seq + s;
      const int32_t id = b->ids[t], mk = b->mask ? b->mask[t] : 1;
      if (id < 0 || id >= f->vocab)
        return pf_err_set(err, PF_ERR_INVALID,
                          "input ids: row %lld, position %lld: expected a token id in [0, %lld), "
                          "got %d",
                          (long long)r, (long long)s, (long long)f->vocab, (int)id);
      if (mk != 0 && mk != 1)
        return pf_err_set(err, PF_ERR_INVALID,
                          "attention mask: row %lld, position %lld: expected 0 or 1, got %d",
                          (long long)r, (long long)s, (int)mk);
      if (mk == 1 && len < b->seq)
        return pf_err_set(err, PF_ERR_INVALID,
                          "attention mask: row %lld: expected right padding (1s then 0s), got a "
                          "1 at position %lld after a 0 at position %lld",
                          (long long)r, (long long)s, (long long)len);
      if (mk == 0 && len == b->seq) len = s;
      f->mask[t] = mk;
      f->pos[t] = s;
    }
    f->len[r] = len;
  }
  return PF_OK;
}

pf_status pf_fwd_check_taps(const pf_taps *taps, pf_err *err) {
  if (!taps || !taps->points) return PF_OK;
  if (taps->points >> PF_TAP_COUNT)
    return pf_err_set(err, PF_ERR_INVALID, "taps: expected bits below 1 << %d, got 0x%x",
                      PF_TAP_COUNT, taps->points);
  if (!taps->fn) return pf_err_set(err, PF_ERR_INVALID, "taps: points are set but fn is NULL");
  return PF_OK;
}

int64_t pf_fwd_layers_needed(const pf_forward *f, const pf_taps *taps, int want_final) {
  if (want_final) return f->n_layers;
  if (!taps || !taps->points || !taps->fn) return 0;
  for (int64_t l = f->n_layers; l > 0; l--)
    if (!taps->layers || taps->layers[l - 1]) return l;
  return 0;
}

pf_status pf_fwd_begin_batch(pf_forward *f, const pf_batch *b, pf_err *err) {
  pf_status s;
  if ((s = check_batch(f, b, err)) ||
      (s = pf_fwd_reserve(f, b->batch * b->seq, b->batch, b->seq, err)))
    return s;
  return check_ids(f, b, err);
}

pf_status pf_forward_logits(pf_forward *f, const float *x, int64_t T, pf_logits_fn fn, void *ud,
                            pf_err *err) {
  if (!f->logits) {
    f->logits = malloc((size_t)(f->logit_rows * f->vocab) * sizeof(float));
    if (!f->logits) return pf_err_set(err, PF_ERR_NOMEM, "forward: out of memory for logits");
  }
  for (int64_t r0 = 0; r0 < T; r0 += f->logit_rows) {
    const int64_t n = T - r0 < f->logit_rows ? T - r0 : f->logit_rows;
    pf_status s = pf_fwd_logits(f, x + r0 * f->H, n, f->logits, err);
    if (s != PF_OK) return s;
    if ((s = fn(ud, r0, n, f->logits, f->vocab, err)) != PF_OK) {
      if (err && err->code == PF_OK) pf_err_set(err, s, "the callback returned %d", (int)s);
      if (err) err->code = s;
      return pf_err_prefix(err, "logits callback");
    }
  }
  return PF_OK;
}

/* ---- layers two runners share ---- */

static int rope_same(const pf_rope_params *a, const pf_rope_params *b) {
  const int64_t half = (a->rotary_dim ? a->rotary_dim : a->head_dim) / 2;
  if (a->rope_type != b->rope_type || a->rope_theta != b->rope_theta ||
      a->head_dim != b->head_dim || a->factor != b->factor ||
      a->low_freq_factor != b->low_freq_factor || a->high_freq_factor != b->high_freq_factor ||
      a->original_max_position_embeddings != b->original_max_position_embeddings ||
      a->rotary_dim != b->rotary_dim || a->attention_factor != b->attention_factor ||
      a->beta_fast != b->beta_fast || a->beta_slow != b->beta_slow ||
      a->max_position_embeddings != b->max_position_embeddings ||
      !a->ext_factors != !b->ext_factors)
    return 0;
  return !a->ext_factors || !memcmp(a->ext_factors, b->ext_factors, (size_t)half * sizeof(double));
}

/* The same weights: one tensor, or (by_bytes) two of one dtype and shape holding the same
 * bytes, e.g. a pruned checkpoint saved and loaded again beside its parent (a runner's
 * tensors have their bytes: pf_forward_new materialises lazy ones). */
static int tensor_same(const pf_tensor *x, const pf_tensor *y, int by_bytes) {
  if (x == y) return 1;
  if (!by_bytes || !x || !y || !x->data || !y->data || x->dtype != y->dtype || x->ndim != y->ndim ||
      x->nbytes != y->nbytes)
    return 0;
  for (int d = 0; d < x->ndim; d++)
    if (x->shape[d] != y->shape[d]) return 0;
  return memcmp(x->data, y->data, x->nbytes) == 0;
}

/* Everything outside the layers that a layer step or the embedding reads. */
static int globals_same(const pf_forward *a, const pf_forward *b, int by_bytes) {
  return a->H == b->H && a->n_heads == b->n_heads && a->n_kv == b->n_kv && a->hd == b->hd &&
         a->vocab == b->vocab && a->max_pos == b->max_pos && a->eps == b->eps &&
         a->arch == b->arch && a->act == b->act && a->parallel == b->parallel &&
         a->embed_scale == b->embed_scale && a->attn_softcap == b->attn_softcap &&
         tensor_same(a->m->embed_tokens, b->m->embed_tokens, by_bytes) &&
         tensor_same(a->m->embed_positions, b->m->embed_positions, by_bytes) &&
         !a->rope == !b->rope && (!a->rope || rope_same(&a->rope_params, &b->rope_params)) &&
         a->long_after == b->long_after &&
         (!a->long_after || rope_same(&a->rope_long_params, &b->rope_long_params)) &&
         !a->rope_local == !b->rope_local &&
         (!a->rope_local || rope_same(&a->rope_local_params, &b->rope_local_params));
}

static int layer_same(const pf_forward *a, const pf_forward *b, int64_t l, int by_bytes) {
  const pf_fwd_layer *x = &a->layers[l], *y = &b->layers[l];
  if (x->inter != y->inter || x->window != y->window || x->scale != y->scale ||
      (x->rope == a->rope_local) != (y->rope == b->rope_local))
    return 0;
  for (int k = 0; k < PF_SLOT_COUNT; k++)
    if (!tensor_same(x->w->slot[k], y->w->slot[k], by_bytes)) return 0;
  return 1;
}

int64_t pf_forward_shared_layers(const pf_forward *a, const pf_forward *b, int by_bytes) {
  if (!a || !b || !globals_same(a, b, by_bytes)) return 0;
  int64_t l = 0;
  while (l < a->n_layers && l < b->n_layers && layer_same(a, b, l, by_bytes))
    l++;
  return l;
}

pf_status pf_forward_run(pf_forward *f, const pf_batch *b, const pf_taps *taps,
                         pf_logits_fn logits_fn, void *logits_ud, const pf_ctx *ctx, pf_err *err) {
  if (!f || !b) return pf_err_set(err, PF_ERR_INVALID, "forward: NULL runner or batch");
  pf_status s;
  if ((s = pf_fwd_check_taps(taps, err)) || (s = pf_fwd_begin_batch(f, b, err))) return s;
  const int64_t T = b->batch * b->seq, n_run = pf_fwd_layers_needed(f, taps, logits_fn != NULL);
  if (n_run == 0 && !logits_fn) return PF_OK;
  pf_fwd_embed(f, b->ids, T);
  const pf_fwd_step st = {.batch = b->batch,
                          .seq = b->seq,
                          .p0 = 0,
                          .k = f->k,
                          .v = f->v,
                          .kv_bstride = b->seq * f->kv_dim,
                          .taps = taps};
  for (int64_t l = 0; l < n_run; l++) {
    if ((s = pf_ctx_check_interrupt(ctx, err)) || (s = pf_fwd_layer_run(f, l, &st, err))) return s;
  }
  if (!logits_fn) return PF_OK;
  if ((s = pf_ctx_check_interrupt(ctx, err))) return s;
  return pf_forward_logits(f, f->x, T, logits_fn, logits_ud, err);
}
