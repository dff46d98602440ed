/* model_count.c — counting a model: parameters as OptiPFair counts them, the
 * attention / MLP split of a layer, weight bytes, and whether layer 0 is a GLU MLP.
 * Only the model's public fields are read (model.h). */
#include <stdio.h>

#include "model.h"

int64_t pf_model_param_count(const pf_model *m) {
  int64_t n = pf_tensor_numel(m->embed_tokens) + pf_tensor_numel(m->embed_positions) +
              pf_tensor_numel(m->norm) + pf_tensor_numel(m->norm_bias);
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
  for (int i = 0; i < PF_SLOT_COUNT; i++) {
    int64_t n = pf_tensor_numel(l->slot[i]);
    if (i >= PF_SLOT_Q && i <= PF_SLOT_K_NORM)
      a += n;
    else if (i >= PF_SLOT_GATE && i <= PF_SLOT_DOWN_B)
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
  pf_model_foreach_canonical(m, add_bytes, &n);
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
