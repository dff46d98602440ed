/* arch.c — the architecture table (see arch.h) and the stored-layout
 * transforms: split a checkpoint tensor into canonical ones, join them back.
 *
 * Names and layouts are from the Hugging Face modelling code of each family
 * (../shared/reference/arch-*.md): LlamaForCausalLM and its Mistral/Qwen2/Qwen3
 * variants, Gemma/Gemma2/Gemma3ForCausalLM, Phi3ForCausalLM (fused qkv_proj rows
 * q|k|v and gate_up_proj rows gate|up), GPT2LMHeadModel (Conv1D weights stored
 * [in, out]; c_attn columns q|k|v) and GPTNeoXForCausalLM (query_key_value rows
 * grouped per head: [nh][q|k|v][hd]).
 */
#include "arch.h"

#include <stdlib.h>
#include <string.h>

#define T1(suffix, slot, cond) {suffix, PF_LAYOUT_PLAIN, 1, {slot, 0, 0}, cond}
#define ALW PF_COND_ALWAYS

/* ---- LLaMA / Mistral / Qwen2 / Qwen3 / Gemma (1) ---- */

static const pf_arch_tensor llama_global[] = {
    T1("model.embed_tokens.weight", PF_G_EMBED, ALW),
    T1("model.norm.weight", PF_G_NORM, ALW),
    T1("lm_head.weight", PF_G_HEAD, ALW),
};

/* Hugging Face module order: self_attn (q, k, v, o, q_norm, k_norm), mlp (gate,
 * up, down), then the norms. */
static const pf_arch_tensor llama_layer[] = {
    T1("self_attn.q_proj.weight", PF_SLOT_Q, ALW),
    T1("self_attn.q_proj.bias", PF_SLOT_Q_B, PF_COND_ATTN_BIAS),
    T1("self_attn.k_proj.weight", PF_SLOT_K, ALW),
    T1("self_attn.k_proj.bias", PF_SLOT_K_B, PF_COND_ATTN_BIAS),
    T1("self_attn.v_proj.weight", PF_SLOT_V, ALW),
    T1("self_attn.v_proj.bias", PF_SLOT_V_B, PF_COND_ATTN_BIAS),
    T1("self_attn.o_proj.weight", PF_SLOT_O, ALW),
    T1("self_attn.o_proj.bias", PF_SLOT_O_B, PF_COND_O_BIAS),
    T1("self_attn.q_norm.weight", PF_SLOT_Q_NORM, PF_COND_QK_NORM),
    T1("self_attn.k_norm.weight", PF_SLOT_K_NORM, PF_COND_QK_NORM),
    T1("mlp.gate_proj.weight", PF_SLOT_GATE, ALW),
    T1("mlp.gate_proj.bias", PF_SLOT_GATE_B, PF_COND_MLP_BIAS),
    T1("mlp.up_proj.weight", PF_SLOT_UP, ALW),
    T1("mlp.up_proj.bias", PF_SLOT_UP_B, PF_COND_MLP_BIAS),
    T1("mlp.down_proj.weight", PF_SLOT_DOWN, ALW),
    T1("mlp.down_proj.bias", PF_SLOT_DOWN_B, PF_COND_MLP_BIAS),
    T1("input_layernorm.weight", PF_SLOT_ATTN_NORM, ALW),
    T1("post_attention_layernorm.weight", PF_SLOT_MLP_NORM, ALW),
};

/* ---- Gemma 2 / Gemma 3: sandwich norms (post_attention_layernorm normalises the
 * attention *output*; the pre-MLP norm is pre_feedforward_layernorm) ---- */

static const pf_arch_tensor gemma2_layer[] = {
    T1("self_attn.q_proj.weight", PF_SLOT_Q, ALW),
    T1("self_attn.q_proj.bias", PF_SLOT_Q_B, PF_COND_ATTN_BIAS),
    T1("self_attn.k_proj.weight", PF_SLOT_K, ALW),
    T1("self_attn.k_proj.bias", PF_SLOT_K_B, PF_COND_ATTN_BIAS),
    T1("self_attn.v_proj.weight", PF_SLOT_V, ALW),
    T1("self_attn.v_proj.bias", PF_SLOT_V_B, PF_COND_ATTN_BIAS),
    T1("self_attn.o_proj.weight", PF_SLOT_O, ALW),
    T1("self_attn.o_proj.bias", PF_SLOT_O_B, PF_COND_O_BIAS),
    T1("self_attn.q_norm.weight", PF_SLOT_Q_NORM, PF_COND_QK_NORM),
    T1("self_attn.k_norm.weight", PF_SLOT_K_NORM, PF_COND_QK_NORM),
    T1("mlp.gate_proj.weight", PF_SLOT_GATE, ALW),
    T1("mlp.up_proj.weight", PF_SLOT_UP, ALW),
    T1("mlp.down_proj.weight", PF_SLOT_DOWN, ALW),
    T1("input_layernorm.weight", PF_SLOT_ATTN_NORM, ALW),
    T1("post_attention_layernorm.weight", PF_SLOT_ATTN_POST_NORM, ALW),
    T1("pre_feedforward_layernorm.weight", PF_SLOT_MLP_NORM, ALW),
    T1("post_feedforward_layernorm.weight", PF_SLOT_MLP_POST_NORM, ALW),
};

/* ---- Phi-3: fused qkv_proj (rows q|k|v) and gate_up_proj (rows gate|up) ---- */

static const pf_arch_tensor phi3_layer[] = {
    {"self_attn.qkv_proj.weight", PF_LAYOUT_ROWS, 3, {PF_SLOT_Q, PF_SLOT_K, PF_SLOT_V}, ALW},
    T1("self_attn.o_proj.weight", PF_SLOT_O, ALW),
    {"mlp.gate_up_proj.weight", PF_LAYOUT_ROWS, 2, {PF_SLOT_GATE, PF_SLOT_UP, 0}, ALW},
    T1("mlp.down_proj.weight", PF_SLOT_DOWN, ALW),
    T1("input_layernorm.weight", PF_SLOT_ATTN_NORM, ALW),
    T1("post_attention_layernorm.weight", PF_SLOT_MLP_NORM, ALW),
};

/* ---- GPT-2: Conv1D weights [in, out], LayerNorm with bias, learned positions ---- */

static const pf_arch_tensor gpt2_global[] = {
    T1("transformer.wte.weight", PF_G_EMBED, ALW),
    T1("transformer.wpe.weight", PF_G_POS, ALW),
    T1("transformer.ln_f.weight", PF_G_NORM, ALW),
    T1("transformer.ln_f.bias", PF_G_NORM_B, ALW),
    T1("lm_head.weight", PF_G_HEAD, ALW),
};

static const pf_arch_tensor gpt2_layer[] = {
    T1("ln_1.weight", PF_SLOT_ATTN_NORM, ALW),
    T1("ln_1.bias", PF_SLOT_ATTN_NORM_B, ALW),
    {"attn.c_attn.weight", PF_LAYOUT_CONV1D_ROWS, 3, {PF_SLOT_Q, PF_SLOT_K, PF_SLOT_V}, ALW},
    {"attn.c_attn.bias", PF_LAYOUT_ROWS, 3, {PF_SLOT_Q_B, PF_SLOT_K_B, PF_SLOT_V_B}, ALW},
    {"attn.c_proj.weight", PF_LAYOUT_CONV1D, 1, {PF_SLOT_O, 0, 0}, ALW},
    T1("attn.c_proj.bias", PF_SLOT_O_B, ALW),
    T1("ln_2.weight", PF_SLOT_MLP_NORM, ALW),
    T1("ln_2.bias", PF_SLOT_MLP_NORM_B, ALW),
    {"mlp.c_fc.weight", PF_LAYOUT_CONV1D, 1, {PF_SLOT_UP, 0, 0}, ALW},
    T1("mlp.c_fc.bias", PF_SLOT_UP_B, ALW),
    {"mlp.c_proj.weight", PF_LAYOUT_CONV1D, 1, {PF_SLOT_DOWN, 0, 0}, ALW},
    T1("mlp.c_proj.bias", PF_SLOT_DOWN_B, ALW),
};

/* ---- GPT-NeoX (Pythia): per-head interleaved query_key_value, parallel residual ---- */

static const pf_arch_tensor neox_global[] = {
    T1("gpt_neox.embed_in.weight", PF_G_EMBED, ALW),
    T1("gpt_neox.final_layer_norm.weight", PF_G_NORM, ALW),
    T1("gpt_neox.final_layer_norm.bias", PF_G_NORM_B, ALW),
    T1("embed_out.weight", PF_G_HEAD, ALW),
};

static const pf_arch_tensor neox_layer[] = {
    T1("input_layernorm.weight", PF_SLOT_ATTN_NORM, ALW),
    T1("input_layernorm.bias", PF_SLOT_ATTN_NORM_B, ALW),
    T1("post_attention_layernorm.weight", PF_SLOT_MLP_NORM, ALW),
    T1("post_attention_layernorm.bias", PF_SLOT_MLP_NORM_B, ALW),
    {"attention.query_key_value.weight", PF_LAYOUT_NEOX_HEADS, 3,
     {PF_SLOT_Q, PF_SLOT_K, PF_SLOT_V}, ALW},
    {"attention.query_key_value.bias", PF_LAYOUT_NEOX_HEADS, 3,
     {PF_SLOT_Q_B, PF_SLOT_K_B, PF_SLOT_V_B}, PF_COND_ATTN_BIAS},
    T1("attention.dense.weight", PF_SLOT_O, ALW),
    T1("attention.dense.bias", PF_SLOT_O_B, PF_COND_ATTN_BIAS),
    T1("mlp.dense_h_to_4h.weight", PF_SLOT_UP, ALW),
    T1("mlp.dense_h_to_4h.bias", PF_SLOT_UP_B, ALW),
    T1("mlp.dense_4h_to_h.weight", PF_SLOT_DOWN, ALW),
    T1("mlp.dense_4h_to_h.bias", PF_SLOT_DOWN_B, ALW),
};

#define N(a) (int)(sizeof a / sizeof a[0])
#define LLAMA_LIKE(type, fam)                                                                  \
  {type, fam, "model.layers.", "num_hidden_layers", "intermediate_size", llama_global,        \
   N(llama_global), llama_layer, N(llama_layer), PF_NORM_RMS, PF_MLP_GLU, PF_POS_ROPE, 0, 0}

static const pf_arch archs[] = {
    LLAMA_LIKE("llama", "LLaMA"),
    LLAMA_LIKE("mistral", "Mistral"),
    LLAMA_LIKE("qwen2", "Qwen2"),
    LLAMA_LIKE("qwen3", "Qwen3"),
    {"gemma", "Gemma", "model.layers.", "num_hidden_layers", "intermediate_size", llama_global,
     N(llama_global), llama_layer, N(llama_layer), PF_NORM_RMS_OFFSET, PF_MLP_GLU, PF_POS_ROPE, 0,
     1},
    {"gemma2", "Gemma 2", "model.layers.", "num_hidden_layers", "intermediate_size",
     llama_global, N(llama_global), gemma2_layer, N(gemma2_layer), PF_NORM_RMS_OFFSET,
     PF_MLP_GLU, PF_POS_ROPE, 1, 1},
    {"gemma3_text", "Gemma 3", "model.layers.", "num_hidden_layers", "intermediate_size",
     llama_global, N(llama_global), gemma2_layer, N(gemma2_layer), PF_NORM_RMS_OFFSET,
     PF_MLP_GLU, PF_POS_ROPE, 1, 1},
    {"phi3", "Phi-3", "model.layers.", "num_hidden_layers", "intermediate_size", llama_global,
     N(llama_global), phi3_layer, N(phi3_layer), PF_NORM_RMS, PF_MLP_GLU, PF_POS_ROPE, 0, 0},
    {"gpt2", "GPT-2", "transformer.h.", "n_layer", "n_inner", gpt2_global, N(gpt2_global),
     gpt2_layer, N(gpt2_layer), PF_NORM_LAYER, PF_MLP_PLAIN, PF_POS_LEARNED, 0, 0},
    {"gpt_neox", "GPT-NeoX", "gpt_neox.layers.", "num_hidden_layers", "intermediate_size",
     neox_global, N(neox_global), neox_layer, N(neox_layer), PF_NORM_LAYER, PF_MLP_PLAIN,
     PF_POS_ROPE, 0, 0},
};

static const char *const arch_types[] = {"llama", "mistral", "qwen2",    "qwen3", "gemma",
                                         "gemma2", "gemma3_text", "phi3", "gpt2",  "gpt_neox",
                                         NULL};
_Static_assert(sizeof arch_types / sizeof arch_types[0] == sizeof archs / sizeof archs[0] + 1,
               "one name per table entry");

const pf_arch *pf_arch_find(const char *model_type) {
  for (size_t i = 0; model_type && i < sizeof archs / sizeof archs[0]; i++)
    if (!strcmp(archs[i].model_type, model_type)) return &archs[i];
  return NULL;
}

const pf_arch *pf_arch_default(void) {
  return &archs[0];
}

const char *const *pf_arch_model_types(void) {
  return arch_types;
}

int pf_arch_stored_shape(const pf_arch_tensor *at, const int64_t part_shapes[][2],
                         const int *part_ndims, int64_t *stored) {
  const int nd = part_ndims[0];
  stored[0] = 0;
  stored[1] = nd == 2 ? part_shapes[0][1] : 0;
  for (int i = 0; i < at->n_parts; i++)
    stored[0] += part_shapes[i][0];
  if (at->layout == PF_LAYOUT_CONV1D || at->layout == PF_LAYOUT_CONV1D_ROWS) {
    if (nd == 2) {
      int64_t t = stored[0];
      stored[0] = stored[1];
      stored[1] = t;
    }
  }
  return nd;
}

/* Row order of a GPT-NeoX query_key_value tensor: canonical row r of part p
 * (head h = r / hd, d = r % hd) is stored row h*3*hd + p*hd + d. */
static int64_t *neox_index(int64_t rows_per_part, int64_t nh, pf_err *err) {
  const int64_t hd = rows_per_part / nh;
  int64_t *idx = malloc((size_t)(3 * rows_per_part) * sizeof *idx);
  if (!idx) {
    pf_err_set(err, PF_ERR_NOMEM, "query_key_value: out of memory");
    return NULL;
  }
  for (int p = 0; p < 3; p++)
    for (int64_t r = 0; r < rows_per_part; r++)
      idx[p * rows_per_part + r] = (r / hd) * 3 * hd + p * hd + r % hd;
  return idx;
}

/* Layout changes are lazy selections (tensor.h): loading a Conv1D or fused
 * checkpoint copies nothing, and composing the stored layout again for a save
 * gives selections of the loaded file's tensors, which the writer copies file
 * to file; a forward pass materialises what it uses, once. */
static pf_status select_any(const pf_tensor *t, const int64_t *idx, int64_t k, pf_tensor **out,
                            pf_err *err) {
  return t->ndim == 1 ? pf_tensor_gather_elems(t, idx, k, out, err)
                      : pf_tensor_gather_rows(t, idx, k, out, err);
}

pf_status pf_arch_split(const pf_arch_tensor *at, pf_tensor *stored,
                        const int64_t part_shapes[][2], int64_t nh, pf_tensor **out,
                        pf_err *err) {
  for (int i = 0; i < at->n_parts; i++)
    out[i] = NULL;
  pf_tensor *rows = NULL; /* the stored tensor with canonical rows in part order */
  pf_status s = PF_OK;
  switch (at->layout) {
  case PF_LAYOUT_PLAIN:
    pf_tensor_retain(stored);
    out[0] = stored;
    return PF_OK;
  case PF_LAYOUT_CONV1D:
    return stored->ndim == 2 ? pf_tensor_gather_transpose(stored, &out[0], err)
                             : (pf_tensor_retain(stored), out[0] = stored, PF_OK);
  case PF_LAYOUT_CONV1D_ROWS:
  case PF_LAYOUT_ROWS:
    if (at->layout == PF_LAYOUT_CONV1D_ROWS && stored->ndim == 2) {
      s = pf_tensor_gather_transpose(stored, &rows, err);
      break;
    }
    pf_tensor_retain(stored); /* 1-D tensors are in row order already */
    rows = stored;
    break;
  case PF_LAYOUT_NEOX_HEADS: {
    const int64_t per = part_shapes[0][0];
    if (nh <= 0 || per % nh != 0 || at->n_parts != 3)
      return pf_err_set(err, PF_ERR_INVALID, "%s: expected %lld rows per part in %lld heads",
                        at->suffix, (long long)per, (long long)nh);
    int64_t *idx = neox_index(per, nh, err);
    if (!idx) return PF_ERR_NOMEM;
    s = select_any(stored, idx, 3 * per, &rows, err);
    free(idx);
    break;
  }
  }
  int64_t r0 = 0;
  for (int i = 0; s == PF_OK && i < at->n_parts; i++) {
    s = pf_tensor_rows_view(rows, r0, r0 + part_shapes[i][0], &out[i], err);
    r0 += part_shapes[i][0];
  }
  pf_tensor_release(rows);
  if (s != PF_OK)
    for (int i = 0; i < at->n_parts; i++) {
      pf_tensor_release(out[i]);
      out[i] = NULL;
    }
  return s;
}

int pf_arch_composes_view(const pf_arch_tensor *at, int ndim) {
  return at->layout == PF_LAYOUT_PLAIN || at->layout == PF_LAYOUT_ROWS ||
         ((at->layout == PF_LAYOUT_CONV1D || at->layout == PF_LAYOUT_CONV1D_ROWS) && ndim == 1);
}

pf_status pf_arch_compose(const pf_arch_tensor *at, pf_tensor *const *parts, int64_t nh,
                          pf_tensor **out, pf_err *err) {
  *out = NULL;
  if (at->layout == PF_LAYOUT_PLAIN) {
    pf_tensor_retain(parts[0]);
    *out = parts[0];
    return PF_OK;
  }
  if (at->layout == PF_LAYOUT_CONV1D)
    return parts[0]->ndim == 2 ? pf_tensor_gather_transpose(parts[0], out, err)
                               : (pf_tensor_retain(parts[0]), *out = parts[0], PF_OK);
  pf_tensor *rows = NULL;
  pf_status s = pf_tensor_concat_rows((const pf_tensor *const *)parts, at->n_parts, &rows, err);
  if (s != PF_OK) return s;
  if (at->layout == PF_LAYOUT_ROWS || (at->layout == PF_LAYOUT_CONV1D_ROWS && rows->ndim == 1)) {
    *out = rows;
    return PF_OK;
  }
  if (at->layout == PF_LAYOUT_CONV1D_ROWS) {
    s = pf_tensor_gather_transpose(rows, out, err);
    pf_tensor_release(rows);
    return s;
  }
  /* NEOX: stored row h*3*hd + p*hd + d = canonical row p*per + h*hd + d */
  const int64_t per = parts[0]->shape[0], hd = nh > 0 ? per / nh : 0;
  int64_t *inv = malloc((size_t)(3 * per) * sizeof *inv);
  if (!inv || hd <= 0) {
    pf_tensor_release(rows);
    free(inv);
    return pf_err_set(err, inv ? PF_ERR_INVALID : PF_ERR_NOMEM, "%s: cannot interleave heads",
                      at->suffix);
  }
  for (int64_t h = 0; h < nh; h++)
    for (int p = 0; p < 3; p++)
      for (int64_t d = 0; d < hd; d++)
        inv[h * 3 * hd + p * hd + d] = p * per + h * hd + d;
  s = select_any(rows, inv, 3 * per, out, err);
  free(inv);
  pf_tensor_release(rows);
  return s;
}
