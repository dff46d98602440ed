/* hfconfig.h — Hugging Face config.json <-> pf_model_config.
 *
 * Field names copy the config.json keys. The whole original JSON is kept in
 * `raw` so that unknown keys survive a save unchanged; pf_config_to_json
 * writes the known fields over a copy of it.
 * Supported model_type values: the families of the architecture table (arch.h):
 * llama, mistral, qwen2, qwen3 (smollm checkpoints use llama), gemma, gemma2,
 * gemma3_text, phi3, gpt2 (keys n_embd/n_layer/n_head/n_inner/n_positions or
 * the generic names), gpt_neox. Anything else with a LLaMA-shaped config is
 * accepted as LLaMA with a note in pf_model_config.warning; the multimodal
 * "gemma3" and bidirectional (EmbeddingGemma) configs are refused by name.
 *
 * Required: hidden_size, intermediate_size, num_hidden_layers,
 * num_attention_heads, vocab_size (positive integers; 64.0 is accepted, 64.5,
 * "64", 0 and negatives are not). Defaults follow transformers: kv heads =
 * heads, head_dim = hidden / heads (qwen3: 128), rms_norm_eps 1e-6, rope_theta
 * 10000, max_position_embeddings 2048 (mistral 131072, qwen2/3 32768), biases
 * off, hidden_act silu. Bounds: dims <= 2^24, layers <= 4096, vocab <= 2^22, file
 * <= 16 MB (pf_config_load), JSON nesting <= 64 levels.
 */
#ifndef PF_HFCONFIG_H
#define PF_HFCONFIG_H

#include "pf.h"

struct cJSON;

/* "rope_scaling" (or, from transformers 4.56, "rope_parameters"). Parsed leniently:
 * a checkpoint with an unusual rope_scaling still loads and prunes; the forward
 * pass (pf_config_rope_params) validates it and refuses what it cannot run. */
typedef struct pf_rope_scaling {
  char rope_type[24];  /* "default" when absent or null; else "rope_type" (or the legacy
                          "type") verbatim: "linear", "llama3", "yarn", "dynamic", ... */
  double factor;       /* 0 when absent, NAN when not a number */
  double low_freq_factor, high_freq_factor;   /* llama3; 0 / NAN as above */
  double original_max_position_embeddings;    /* llama3; 0 / NAN as above */
  double attention_factor, beta_fast, beta_slow; /* yarn / longrope; 0 / NAN as above */
  double *short_factor, *long_factor; /* longrope lists (owned), NULL when absent */
  int64_t n_short, n_long;
  char problem[256];   /* "" or what was malformed (reported by the forward) */
} pf_rope_scaling;

typedef struct pf_model_config {
  char model_type[32];
  int64_t hidden_size;
  int64_t intermediate_size;  /* config value (the largest layer after non-uniform pruning) */
  int64_t *intermediate_sizes; /* [num_hidden_layers], owned; per-layer widths (from the
                                  "intermediate_sizes" key, or intermediate_size repeated) */
  int64_t num_hidden_layers;
  int64_t num_attention_heads;
  int64_t num_key_value_heads; /* defaults to num_attention_heads */
  int64_t head_dim;            /* defaults to hidden_size / num_attention_heads */
  int64_t vocab_size;
  int64_t max_position_embeddings;
  double rms_norm_eps;
  double rope_theta;
  int tie_word_embeddings; /* default 0 for llama, as transformers */
  int attention_bias;      /* q/k/v (and o for llama) biases; qwen2 has q/k/v bias always */
  int mlp_bias;
  int qk_norm;             /* qwen3: q_norm / k_norm per layer */
  char hidden_act[32];     /* the family's activation key: hidden_act, hidden_activation
                              (gemma2/3), activation_function (gpt2) */
  char torch_dtype[16];    /* "" if absent */
  char **layer_types;      /* [num_hidden_layers] or NULL when the key is absent; owned */
  struct cJSON *raw;       /* the parsed file, owned */
  char warning[384];       /* "" or a note (unknown model_type, missing model_type) */
  pf_rope_scaling rope_scaling;
  int64_t sliding_window;    /* 0 = none: null/absent, or qwen2/qwen3 with
                                use_sliding_window false (transformers drops it then) */
  int64_t max_window_layers; /* qwen2/qwen3 without layer_types: layers >= this slide
                                (default num_hidden_layers) */
  const struct pf_arch *arch;  /* the family (arch.h); never NULL after a parse */
  double query_pre_attn_scalar; /* gemma2/3: scores scaled by its -1/2 power; 0 = head_dim */
  double attn_logit_softcapping;  /* gemma2 (c*tanh(s/c) before the mask); 0 = off */
  double final_logit_softcapping; /* gemma2/3; 0 = off */
  double rope_local_base_freq;    /* gemma3: RoPE base of sliding layers (never scaled); 0 = none */
  double partial_rotary_factor;   /* fraction of head_dim rotated: phi3 partial_rotary_factor,
                                     gpt_neox rotary_pct; 1 elsewhere */
  int use_parallel_residual;      /* gpt_neox: x + attn(ln1(x)) + mlp(ln2(x)) */
  int scale_attn_weights;         /* gpt2: scores / sqrt(head_dim) (default true) */
  int scale_attn_by_inverse_layer_idx; /* gpt2: scores / (layer index + 1) */
  int64_t original_max_position_embeddings; /* top-level key (phi3 longrope: the pretrained
                                               context); 0 when absent */
  int layer_types_derived; /* gemma2/3 layer_types computed from the index rule (not in the
                              file): written on save only once layers were removed */
} pf_model_config;

/* Parse from a JSON text. `name` is used in messages ("config.json"). */
pf_status pf_config_parse(const char *json, const char *name, pf_model_config *out, pf_err *err);
/* Read `dir`/config.json. */
pf_status pf_config_load(const char *dir, pf_model_config *out, pf_err *err);
/* Deep copy (dst is overwritten; free it with pf_config_free). */
pf_status pf_config_copy(pf_model_config *dst, const pf_model_config *src, pf_err *err);
void pf_config_free(pf_model_config *c); /* frees the members; c itself is not freed; NULL ok */
/* Remove layer `i` from the per-layer arrays (intermediate_sizes, layer_types)
 * and decrement num_hidden_layers. */
pf_status pf_config_remove_layer(pf_model_config *c, int64_t i, pf_err *err);
struct pf_rope_params;
/* The RoPE parameters of the forward pass (kernels.h) from rope_theta, head_dim
 * and rope_scaling. PF_ERR_UNSUPPORTED naming the type for rope types other
 * than default/linear/llama3 ("yarn", "dynamic", "longrope", ...),
 * PF_ERR_INVALID for malformed or missing rope_scaling values. */
pf_status pf_config_rope_params(const pf_model_config *c, struct pf_rope_params *out, pf_err *err);
/* longrope: the parameters of the long-context table (long_factor) and the sequence
 * length above which transformers switches to it (max position + 1 of a call >
 * original_max_position_embeddings, else max_position_embeddings). *after = 0 and
 * PF_OK for other rope types. */
pf_status pf_config_rope_long(const pf_model_config *c, struct pf_rope_params *out,
                              int64_t *after, pf_err *err);
/* RoPE of layer i: as pf_config_rope_params, except gemma3 sliding layers (base
 * rope_local_base_freq, no scaling). */
pf_status pf_config_layer_rope(const pf_model_config *c, int64_t i, struct pf_rope_params *out,
                               pf_err *err);
/* Sliding attention window of layer `i` of this config (0 = full attention):
 * layer_types[i] == "sliding_attention" when layer_types is present (gemma2/3
 * always have them, derived from the index when the file has none), else every
 * layer for mistral and phi3 and layers >= max_window_layers for qwen2/qwen3;
 * always 0 when sliding_window is 0. */
int64_t pf_config_layer_window(const pf_model_config *c, int64_t i);

/* Serialise: a copy of raw with the known fields written back. Keys written:
 * num_hidden_layers, intermediate_size (max of intermediate_sizes), layer_types
 * (when present), intermediate_sizes (only when the widths are not uniform;
 * removed when they are), torch_dtype. Returns a malloc'd string (pretty, 2-space
 * indent, trailing newline) or NULL on allocation failure. */
char *pf_config_to_json(const pf_model_config *c);

/* Pretty-print any JSON value the way Python's json.dumps(indent=2) does
 * ("key": value, 2-space indent, empty containers as {} / []), plus a trailing
 * newline. malloc'd, NULL on allocation failure. Key order is kept. */
char *pf_json_print_pretty(const struct cJSON *v);
/* 1 if v is a JSON number holding a whole value in [1, max] (how config.json's
 * counts are read; also used by the writer to compare a file's count). */
int pf_config_json_pos_int(const struct cJSON *v, int64_t max);

#endif
