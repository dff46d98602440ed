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
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "forward_int.h"

/* ---- tap names ---- */

static const char *const tap_names[PF_TAP_COUNT] = {"layer_input", "input_norm", "attention_output",
                                                    "gate_proj",   "up_proj",    "down_proj_input",
                                                    "down_proj",   "mlp_output", "layer_output"};
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
  return pf_err_set(err, PF_ERR_INVALID,
                    "tap point: expected one of layer_input, input_norm, attention_output, "
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

static pf_status check_layer(const pf_forward *f, int64_t i, const pf_layer *w, pf_err *err) {
  const int64_t H = f->H, Q = f->q_dim, KV = f->kv_dim, hd = f->hd;
  const int64_t I = w->gate_proj ? w->gate_proj->shape[0] : 0;
  enum { N = 18 };
  char n[N][96];
  static const char *const names[N] = {
      "input_layernorm.weight",  "self_attn.q_proj.weight", "self_attn.k_proj.weight",
      "self_attn.v_proj.weight", "self_attn.o_proj.weight", "post_attention_layernorm.weight",
      "mlp.gate_proj.weight",    "mlp.up_proj.weight",      "mlp.down_proj.weight",
      "self_attn.q_proj.bias",   "self_attn.k_proj.bias",   "self_attn.v_proj.bias",
      "self_attn.q_norm.weight", "self_attn.k_norm.weight", "self_attn.o_proj.bias",
      "mlp.gate_proj.bias",      "mlp.up_proj.bias",        "mlp.down_proj.bias"};
  for (int j = 0; j < N; j++)
    snprintf(n[j], sizeof n[j], "model.layers.%lld.%s", (long long)i, names[j]);
  pf_status s;
  if ((s = check_tensor(w->input_layernorm, n[0], 1, H, 0, err)) ||
      (s = check_tensor(w->q_proj, n[1], 2, Q, H, err)) ||
      (s = check_tensor(w->k_proj, n[2], 2, KV, H, err)) ||
      (s = check_tensor(w->v_proj, n[3], 2, KV, H, err)) ||
      (s = check_tensor(w->o_proj, n[4], 2, H, Q, err)) ||
      (s = check_tensor(w->post_attention_layernorm, n[5], 1, H, 0, err)) ||
      (s = check_tensor(w->gate_proj, n[6], 2, I, H, err)) ||
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
      (s = check_opt(w->down_bias, n[17], 1, H, 0, err)))
    return s;
  if (I <= 0)
    return pf_err_set(err, PF_ERR_INVALID, "%s: expected at least one neuron, got %lld", n[6],
                      (long long)I);
  if (!w->q_norm != !w->k_norm)
    return pf_err_set(err, PF_ERR_INVALID,
                      "model.layers.%lld: expected both q_norm and k_norm "
                      "or neither, got only one",
                      (long long)i);
  return PF_OK;
}

static pf_status check_model(const pf_forward *f, const pf_model *m, pf_err *err) {
  const pf_model_config *c = &m->config;
  if (strcmp(c->hidden_act, "silu") != 0)
    return pf_err_set(err, PF_ERR_UNSUPPORTED, "hidden_act: expected \"silu\", got \"%s\"",
                      c->hidden_act);
  if (c->num_hidden_layers != m->n_layers)
    return pf_err_set(err, PF_ERR_INVALID,
                      "num_hidden_layers: expected %lld (the model's layers), got %lld",
                      (long long)m->n_layers, (long long)c->num_hidden_layers);
  pf_status s;
  if ((s = check_tensor(m->embed_tokens, "model.embed_tokens.weight", 2, f->vocab, f->H, err)) ||
      (s = check_tensor(m->norm, "model.norm.weight", 1, f->H, 0, err)) ||
      (s = check_opt(m->lm_head, "lm_head.weight", 2, f->vocab, f->H, err)))
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

static pf_status init_layers(pf_forward *f, pf_err *err) {
  const pf_model *m = f->m;
  f->layers = calloc((size_t)(m->n_layers ? m->n_layers : 1), sizeof *f->layers);
  if (!f->layers) goto nomem;
  for (int64_t i = 0; i < m->n_layers; i++) {
    pf_fwd_layer *L = &f->layers[i];
    const pf_layer *w = &m->layers[i];
    L->w = w;
    L->inter = w->gate_proj->shape[0];
    L->window = pf_config_layer_window(&m->config, i);
    if (L->inter > f->inter_max) f->inter_max = L->inter;
    if (!(L->ln1 = f32_copy(w->input_layernorm)) ||
        !(L->ln2 = f32_copy(w->post_attention_layernorm)))
      goto nomem;
    if (w->q_norm && (!(L->q_norm = f32_copy(w->q_norm)) || !(L->k_norm = f32_copy(w->k_norm))))
      goto nomem;
  }
  if (!(f->final_norm = f32_copy(m->norm))) goto nomem;
  return PF_OK;
nomem:
  return pf_err_set(err, PF_ERR_NOMEM, "forward: out of memory for the norm weights");
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
  if ((s = check_model(f, m, err)) || (s = pf_config_rope_params(c, &f->rope_params, err)) ||
      (s = pf_rope_table_new(&f->rope_params, f->max_pos < 1024 ? f->max_pos : 1024, &f->rope,
                             err)) ||
      (s = pf_workspace_new(&f->ws, err)) || (s = init_layers(f, err)))
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
  float **bufs[] = {&f->x, &f->xn, &f->q, &f->k, &f->v, &f->att, &f->o, &f->g, &f->u};
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
    free(f->layers[i].ln1);
    free(f->layers[i].ln2);
    free(f->layers[i].q_norm);
    free(f->layers[i].k_norm);
  }
  free(f->layers);
  free(f->final_norm);
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
  if (keys > f->rope->max_pos) {
    int64_t want = f->rope->max_pos * 2 > keys ? f->rope->max_pos * 2 : keys;
    if (want > f->max_pos) want = f->max_pos;
    pf_rope_table *t = NULL;
    if ((s = pf_rope_table_new(&f->rope_params, want, &t, err))) return s;
    pf_rope_table_free(f->rope);
    f->rope = t;
  }
  return PF_OK;
}

void pf_fwd_embed(pf_forward *f, const int32_t *ids, int64_t n) {
  const pf_tensor *e = f->m->embed_tokens;
  float *x = f->x;
  const int64_t H = f->H;
#pragma omp parallel for schedule(static) if (n * H >= 65536)
  for (int64_t t = 0; t < n; t++)
    pf_tensor_row_f32(e, ids[t], x + t * H);
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
                      "batch: sequence length %lld is longer than max_position_embeddings %lld",
                      (long long)b->seq, (long long)f->max_pos);
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

static pf_status check_taps(const pf_forward *f, const pf_taps *taps, pf_err *err) {
  if (!taps || !taps->points) return PF_OK;
  if (taps->points >> PF_TAP_COUNT)
    return pf_err_set(err, PF_ERR_INVALID, "taps: expected bits below 1 << %d, got 0x%x",
                      PF_TAP_COUNT, taps->points);
  if (!taps->fn) return pf_err_set(err, PF_ERR_INVALID, "taps: points are set but fn is NULL");
  return PF_OK;
}

/* Number of layers to run: all when logits are wanted, else up to the last tap. */
static int64_t layers_needed(const pf_forward *f, const pf_taps *taps, int want_logits) {
  if (want_logits) return f->n_layers;
  if (!taps || !taps->points || !taps->fn) return 0;
  for (int64_t l = f->n_layers; l > 0; l--)
    if (!taps->layers || taps->layers[l - 1]) return l;
  return 0;
}

static pf_status emit_logits(pf_forward *f, int64_t T, pf_logits_fn fn, void *ud, pf_err *err) {
  if (!f->logits) {
    f->logits = malloc((size_t)(f->logit_rows * f->vocab) * sizeof(float));
    if (!f->logits) return pf_err_set(err, PF_ERR_NOMEM, "forward: out of memory for logits");
  }
  pf_rmsnorm(f->xn, f->x, f->final_norm, T, f->H, f->eps);
  for (int64_t r0 = 0; r0 < T; r0 += f->logit_rows) {
    const int64_t n = T - r0 < f->logit_rows ? T - r0 : f->logit_rows;
    pf_status s = pf_linear(f->xn + r0 * f->H, n, f->H, f->head, NULL, f->logits, f->ws, err);
    if (s != PF_OK) return pf_err_prefix(err, "lm_head");
    if ((s = fn(ud, r0, n, f->logits, f->vocab, err)) != PF_OK) {
      if (err && err->code == PF_OK) pf_err_set(err, s, "the callback returned %d", (int)s);
      if (err) err->code = s;
      return pf_err_prefix(err, "logits callback");
    }
  }
  return PF_OK;
}

pf_status pf_forward_run(pf_forward *f, const pf_batch *b, const pf_taps *taps,
                         pf_logits_fn logits_fn, void *logits_ud, const pf_ctx *ctx, pf_err *err) {
  if (!f || !b) return pf_err_set(err, PF_ERR_INVALID, "forward: NULL runner or batch");
  pf_status s;
  if ((s = check_batch(f, b, err)) || (s = check_taps(f, taps, err))) return s;
  const int64_t T = b->batch * b->seq, n_run = layers_needed(f, taps, logits_fn != NULL);
  if ((s = pf_fwd_reserve(f, T, b->batch, b->seq, err)) || (s = check_ids(f, b, err))) return s;
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
  return emit_logits(f, T, logits_fn, logits_ud, err);
}
