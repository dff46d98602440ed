/* arch.h — model families as data: one table entry per config.json model_type.
 *
 * pfrun keeps one canonical in-memory layout for every family (pf_layer in
 * model.h: separate q/k/v, gate/up/down, PyTorch [out, in] weights) and one
 * forward pass over it. What differs between families is described here, and
 * nowhere else:
 *  - how the checkpoint stores the canonical tensors: names (a layer prefix plus
 *    suffixes), and the stored layout of each tensor (as is; transposed Conv1D;
 *    several canonical tensors fused along rows; GPT-NeoX's per-head interleaved
 *    query_key_value). The loader splits stored tensors into canonical ones
 *    (row views, no copy, where the layout allows) and the saver joins them
 *    back (pf_arch_compose), so a round trip writes the input's names and bytes;
 *  - the numerics the forward pass needs: norm kind, MLP kind, positions,
 *    residual form, extra norms, embedding scale, soft-caps, which layers slide.
 * Adding a family = one entry in arch.c (+ its config defaults in hfconfig.c),
 * the kernels it lacks, and tests.
 */
#ifndef PF_ARCH_H
#define PF_ARCH_H

#include "tensor.h"

/* Canonical per-layer tensors. The order is the order of the named fields of
 * pf_layer (model.h), which overlays an array of PF_SLOT_COUNT pointers. */
typedef enum pf_slot {
  PF_SLOT_ATTN_NORM,      /* [H] pre-attention norm (input_layernorm, ln_1) */
  PF_SLOT_ATTN_NORM_B,    /* [H] its bias (LayerNorm families) */
  PF_SLOT_Q,              /* [nh*hd, H] */
  PF_SLOT_Q_B,            /* [nh*hd] */
  PF_SLOT_K,              /* [kv*hd, H] */
  PF_SLOT_K_B,            /* [kv*hd] */
  PF_SLOT_V,              /* [kv*hd, H] */
  PF_SLOT_V_B,            /* [kv*hd] */
  PF_SLOT_O,              /* [H, nh*hd] */
  PF_SLOT_O_B,            /* [H] */
  PF_SLOT_Q_NORM,         /* [hd] (qwen3, gemma3) */
  PF_SLOT_K_NORM,         /* [hd] */
  PF_SLOT_ATTN_POST_NORM, /* [H] norm of the attention output (gemma2/3) */
  PF_SLOT_MLP_NORM,       /* [H] pre-MLP norm (post_attention_layernorm in LLaMA,
                             pre_feedforward_layernorm in Gemma 2/3, ln_2 in GPT-2) */
  PF_SLOT_MLP_NORM_B,     /* [H] its bias */
  PF_SLOT_GATE,           /* [I, H] GLU gate; NULL for a plain MLP */
  PF_SLOT_GATE_B,         /* [I] */
  PF_SLOT_UP,             /* [I, H] GLU up, or a plain MLP's input projection (fc_in) */
  PF_SLOT_UP_B,           /* [I] */
  PF_SLOT_DOWN,           /* [H, I] output projection (down_proj, fc_out) */
  PF_SLOT_DOWN_B,         /* [H] */
  PF_SLOT_MLP_POST_NORM,  /* [H] norm of the MLP output (gemma2/3) */
  PF_SLOT_COUNT
} pf_slot;

/* Model-level tensors (not per layer). */
typedef enum pf_gslot {
  PF_G_EMBED,    /* [V, H] token embeddings */
  PF_G_POS,      /* [P, H] learned absolute positions (gpt2) */
  PF_G_NORM,     /* [H] final norm */
  PF_G_NORM_B,   /* [H] its bias */
  PF_G_HEAD,     /* [V, H] output head; absent when tied */
  PF_G_COUNT
} pf_gslot;

/* Stored layout of one checkpoint tensor relative to its canonical parts. */
typedef enum pf_layout {
  PF_LAYOUT_PLAIN,     /* the canonical tensor itself */
  PF_LAYOUT_CONV1D,    /* transposed: [in, out] (HF Conv1D weights) */
  PF_LAYOUT_ROWS,      /* the parts concatenated along dim 0 (Phi-3 qkv_proj, gate_up_proj;
                          GPT-2 c_attn bias) */
  PF_LAYOUT_CONV1D_ROWS, /* transposed, then PF_LAYOUT_ROWS (GPT-2 c_attn weight [H, 3H]) */
  PF_LAYOUT_NEOX_HEADS /* rows grouped per head: [nh][3][hd] of q, k, v (GPT-NeoX) */
} pf_layout;

/* When a stored tensor exists, given the config. */
typedef enum pf_cond {
  PF_COND_ALWAYS,
  PF_COND_ATTN_BIAS, /* config attention_bias (q/k/v bias) */
  PF_COND_O_BIAS,    /* attention_bias, except qwen2 (q/k/v only) */
  PF_COND_QK_NORM,   /* config qk_norm */
  PF_COND_MLP_BIAS   /* config mlp_bias */
} pf_cond;

typedef struct pf_arch_tensor {
  const char *suffix; /* after "<layer_prefix>N." (or the whole name for model-level) */
  pf_layout layout;
  int n_parts;        /* 1, or 2-3 for fused layouts */
  int parts[3];       /* pf_slot (per layer) or pf_gslot (model level) */
  pf_cond cond;
} pf_arch_tensor;

typedef enum pf_norm_kind {
  PF_NORM_RMS,        /* x * rsqrt(mean(x^2) + eps) * w */
  PF_NORM_RMS_OFFSET, /* ... * (1 + w) (Gemma) */
  PF_NORM_LAYER       /* (x - mean) / sqrt(var + eps) * w + b */
} pf_norm_kind;

typedef enum pf_mlp_kind { PF_MLP_GLU, PF_MLP_PLAIN } pf_mlp_kind;
typedef enum pf_pos_kind { PF_POS_ROPE, PF_POS_LEARNED } pf_pos_kind;

typedef struct pf_arch {
  const char *model_type;  /* "llama", "gemma2", "gpt2", ... */
  const char *family;      /* display: "LLaMA", "Gemma 2", "GPT-2" */
  const char *layer_prefix; /* "model.layers." */
  const char *key_layers;  /* config key of the layer count ("num_hidden_layers", "n_layer") */
  const char *key_inter;   /* config key of the MLP width ("intermediate_size", "n_inner") */
  const pf_arch_tensor *global; /* model-level tensors, save order */
  int n_global;
  const pf_arch_tensor *layer; /* per-layer tensors, save order */
  int n_layer;
  pf_norm_kind norm;
  pf_mlp_kind mlp;
  pf_pos_kind pos;
  int sandwich_norms; /* gemma2/3: attn/MLP outputs normalised before the residual add */
  int embed_scale;    /* gemma*: embeddings * sqrt(H) (rounded to float32) */
} pf_arch;

/* The entry for a model_type; NULL if unknown. LLaMA-shaped unknown types use
 * pf_arch_default() (the llama entry). */
const pf_arch *pf_arch_find(const char *model_type);
const pf_arch *pf_arch_default(void);
/* NULL-terminated list of the model_types in the table. */
const char *const *pf_arch_model_types(void);

/* Stored shape of `at` from the canonical shapes of its parts (parts[i] has
 * ndim[i], shape[i]); returns the stored ndim. `nh`/`hd` for NEOX layouts. */
int pf_arch_stored_shape(const pf_arch_tensor *at, const int64_t part_shapes[][2],
                         const int *part_ndims, int64_t *stored_shape);

/* Split a stored tensor into its canonical parts (out[n_parts], new references).
 * part_shapes give each part's canonical shape (rows of fused layouts); nh = the
 * number of heads for NEOX layouts. ROWS parts of a mapped/heap tensor are views
 * (no copy); CONV1D / NEOX parts are new tensors. Planned tensors give planned
 * parts. */
pf_status pf_arch_split(const pf_arch_tensor *at, pf_tensor *stored,
                        const int64_t part_shapes[][2], int64_t nh, pf_tensor **out,
                        pf_err *err);
/* Join canonical parts into the stored tensor (a new reference). Adjacent row
 * views of one storage are joined without a copy. Any part planned -> planned. */
pf_status pf_arch_compose(const pf_arch_tensor *at, pf_tensor *const *parts, int64_t nh,
                          pf_tensor **out, pf_err *err);
/* 1 when pf_arch_compose gives a loaded checkpoint's parts of `at` (stored ndim
 * `ndim`) back as a view of the file: plain and row-fused layouts, and 1-D
 * Conv1D tensors (biases); transposed and head-interleaved ones are gathered. */
int pf_arch_composes_view(const pf_arch_tensor *at, int ndim);

#endif
