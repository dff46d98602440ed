/* model.h — immutable models of every supported family over shared, ref-counted tensors.
 *
 * A pf_model is a config plus tensor references. Models are never changed after
 * they are handed out: pruning builds a *new* model with pf_model_derive (which
 * retains every tensor of the parent) and replaces only what it changes, so a
 * depth-pruned model shares all tensors with its parent and a width-pruned one
 * owns only the sliced MLP tensors. Weights stay in their stored dtype.
 *
 * In memory every family has one canonical layout (pf_layer below: separate
 * q/k/v and gate/up/down, PyTorch [out, in] weights); how a family names and
 * stores them on disk (fused, transposed Conv1D, per-head interleaved) is the
 * architecture table's business (arch.h): loading splits stored tensors into
 * canonical ones, saving joins them back. For LLaMA the two are the same:
 *   model.embed_tokens.weight            [vocab_size, hidden]
 *   model.layers.N.input_layernorm.weight [hidden]
 *   model.layers.N.self_attn.{q,k,v,o}_proj.weight (+ .bias when present)
 *   model.layers.N.self_attn.{q,k}_norm.weight (qwen3) [head_dim]
 *   model.layers.N.post_attention_layernorm.weight [hidden]
 *   model.layers.N.mlp.{gate,up,down}_proj.weight (+ .bias when mlp_bias)
 *   model.norm.weight                    [hidden]
 *   lm_head.weight                       [vocab_size, hidden] (absent when tied)
 */
#ifndef PF_MODEL_H
#define PF_MODEL_H

#include <stddef.h>

#include "arch.h"
#include "hfconfig.h"
#include "tensor.h"

/* One decoder layer. The named fields overlay slot[] in pf_slot order (arch.h),
 * so table-driven code walks slot[] and everything else uses the names.
 * Field names are LLaMA's; their role in other families is in the comments. */
typedef struct pf_layer {
  int64_t source_index; /* index of this layer in the loaded checkpoint */
  union {
    pf_tensor *slot[PF_SLOT_COUNT];
    struct {
      pf_tensor *input_layernorm;      /* [H] pre-attention norm (ln_1) */
      pf_tensor *input_layernorm_bias; /* [H] or NULL (LayerNorm families) */
      pf_tensor *q_proj, *q_bias;      /* [heads*head_dim, H], [heads*head_dim] or NULL */
      pf_tensor *k_proj, *k_bias;      /* [kv*head_dim, H], [kv*head_dim] or NULL */
      pf_tensor *v_proj, *v_bias;      /* [kv*head_dim, H], [kv*head_dim] or NULL */
      pf_tensor *o_proj, *o_bias;      /* [H, heads*head_dim], [H] or NULL */
      pf_tensor *q_norm, *k_norm;      /* [head_dim] or NULL (qwen3, gemma3) */
      pf_tensor *attn_post_norm;       /* [H] or NULL: attention output norm (gemma2/3) */
      pf_tensor *post_attention_layernorm;      /* [H] pre-MLP norm (gemma2/3:
                                                   pre_feedforward_layernorm; gpt2: ln_2) */
      pf_tensor *post_attention_layernorm_bias; /* [H] or NULL */
      pf_tensor *gate_proj, *gate_bias; /* [I, H], [I]; NULL for a plain (non-GLU) MLP */
      pf_tensor *up_proj, *up_bias;     /* [I, H], [I]: GLU up, or a plain MLP's fc_in */
      pf_tensor *down_proj, *down_bias; /* [H, I], [H]: down_proj / fc_out */
      pf_tensor *mlp_post_norm;         /* [H] or NULL: MLP output norm (gemma2/3) */
    };
  };
} pf_layer;
_Static_assert(offsetof(pf_layer, mlp_post_norm) ==
                   offsetof(pf_layer, slot) + PF_SLOT_MLP_POST_NORM * sizeof(pf_tensor *),
               "pf_layer's named fields follow pf_slot");

/* MLP width of a layer (rows of up_proj, the one projection every MLP kind has). */
static inline int64_t pf_layer_width(const pf_layer *l) {
  return l->up_proj ? l->up_proj->shape[0] : 0;
}

typedef struct pf_model {
  int refcount;
  pf_model_config config;  /* num_hidden_layers == n_layers; intermediate_sizes per layer;
                              config.arch: the family */
  pf_dtype dtype;          /* dtype of the weights (of embed_tokens) */
  pf_tensor *embed_tokens; /* [vocab_size, hidden] */
  pf_tensor *embed_positions; /* [max_position_embeddings, hidden] (gpt2 wpe) or NULL */
  pf_tensor *norm;         /* [hidden] */
  pf_tensor *norm_bias;    /* [hidden] or NULL (LayerNorm families) */
  pf_tensor *lm_head;      /* [vocab_size, hidden]; NULL when tied to embed_tokens */
  int legacy_names;        /* gpt2 checkpoint without the "transformer." prefix (old
                              GPT2Model files): saved the same way */
  pf_layer *layers;        /* [n_layers] */
  int64_t n_layers;
  char *source_dir;        /* folder loaded from (tokenizer files are copied from here) */
  char *name;              /* display name ("stories260K", "synthetic:llama-tiny") */
  struct pf_model *unrecovered; /* retained, or NULL: a reconstructed (recovered) pruned
                                   model's variant before recovery, for before/after
                                   figures (evaluate); pf_model_derive does not copy it */
  struct pf_model *live_prev, *live_next; /* the models alive (model_live.c) */
} pf_model;

/* A zeroed model with refcount 1, counted among the live models until its last
 * release (pf_model_unlink). NULL when out of memory. */
pf_model *pf_model_alloc(void);
void pf_model_unlink(pf_model *m);
/* The source_dir of a live model other than `except` that is `dir`, lies inside it
 * or contains it (malloc'd), or NULL. */
char *pf_model_dir_in_use(const char *dir, const pf_model *except);

/* Load a Hugging Face checkpoint folder (config.json + safetensors, single or
 * sharded). Validates every expected tensor's presence and shape against the
 * config (per-layer widths come from the gate_proj shapes) and reports the
 * first mismatch by tensor name; unexpected tensors are an error too.
 * All weights must share one dtype. Tolerated: "*rotary_emb.inv_freq" buffers,
 * and lm_head.weight in a tied checkpoint (ignored, as transformers ties it).
 * Without an "intermediate_sizes" list in config.json, each layer's width is read
 * off its MLP tensors (OptiPFair records only the last pruned layer's width).
 * Tensors are views over the mapped files (no copy). */
pf_status pf_model_load(const char *dir, pf_model **out, pf_err *err);
void pf_model_retain(pf_model *m);
void pf_model_release(pf_model *m); /* NULL ok */

/* A new model sharing every tensor of `parent` (all retained) and a deep copy
 * of its config, with refcount 1. The caller replaces what it changes (releasing
 * the replaced tensor) before handing the model out. */
pf_status pf_model_derive(const pf_model *parent, pf_model **out, pf_err *err);
/* Remove layer i from a model being built by pf_model_derive (config too). */
pf_status pf_model_remove_layer(pf_model *m, int64_t i, pf_err *err);

/* A model of planned tensors (shape only, data NULL) exactly as `config`
 * describes it (deep copy of config; widths from config->intermediate_sizes;
 * lm_head only when not tied), dtype `dt`, source_dir NULL, name = model_type.
 * For dry runs, and for writers that fill the tensors one by one
 * (pf_model_set_tensor) before saving. */
pf_status pf_model_plan(const pf_model_config *config, pf_dtype dt, pf_model **out, pf_err *err);
/* pf_model_plan from dir/config.json (dtype: its torch_dtype), with source_dir and
 * name set as pf_model_load sets them: a folder that holds a config but no weights
 * yet (a synthetic model's plan folder in a dry run). */
pf_status pf_model_plan_dir(const char *dir, pf_model **out, pf_err *err);
/* Replace the tensor with checkpoint name `name` ("model.layers.3.mlp.up_proj.weight",
 * "lm_head.weight", ...) in a model being built; the old one is released. Takes
 * ownership of `t` (also on failure, when it is released). Shapes are not
 * checked here (pf_model_check does that). PF_ERR_NOT_FOUND for a name that is
 * not a tensor slot of a layer in range. */
pf_status pf_model_set_tensor(pf_model *m, const char *name, pf_tensor *t, pf_err *err);

/* Parameter count as OptiPFair counts it (tied weights once). */
int64_t pf_model_param_count(const pf_model *m);
/* Parameters of one layer, split into attention (self_attn.*), mlp and other (norms). */
void pf_layer_param_split(const pf_layer *l, int64_t *attn, int64_t *mlp, int64_t *other);
/* Bytes of all tensors (tied once). */
uint64_t pf_model_weight_bytes(const pf_model *m);
/* 1 if every layer has the GLU MLP (gate/up/down present, gate.in == up.in,
 * gate.out == up.out, down.in == gate.out) — checks layer 0 like OptiPFair.
 * On 0, `why` (if non-NULL, n bytes) says what failed. */
int pf_model_glu_compatible(const pf_model *m, char *why, size_t n);

/* Enumerate the checkpoint tensors as they are saved, in save order (the family's
 * names and stored layouts, e.g. Phi-3's fused qkv_proj, GPT-2's [in, out]
 * Conv1D weights), named for layer positions 0..n_layers-1 of *this* model.
 * Fused or transposed tensors are joined for the call (adjacent views without a
 * copy): `t` is valid during the callback only; pf_tensor_retain it to keep it.
 * `cb` returns non-zero to stop (that value is returned; -1 when joining failed,
 * with `err` filled if non-NULL). */
typedef int (*pf_model_tensor_cb)(void *ud, const char *name, const pf_tensor *t);
int pf_model_foreach_tensor(const pf_model *m, pf_model_tensor_cb cb, void *ud);
int pf_model_foreach_stored(const pf_model *m, pf_model_tensor_cb cb, void *ud, pf_err *err);
/* The canonical tensors (no joining, never fails): stored names for tensors kept
 * as they are, "NAME#p" for part p of a fused stored tensor. For fingerprints
 * and byte counts. */
int pf_model_foreach_canonical(const pf_model *m, pf_model_tensor_cb cb, void *ud);

/* 1 when the stored tensor `name` (stored ndim `ndim`) of a loaded checkpoint is a
 * view of its file as pf_model_foreach_stored hands it out (no gather): what an
 * unchanged tensor of a model planned from a folder (pf_model_plan_dir) stands for. */
int pf_model_stored_is_view(const pf_model *m, const char *name, int ndim);

typedef struct pf_save_opts {
  uint64_t max_shard_bytes; /* 0 = default 5GB */
  int have_dtype;           /* convert weights to `dtype` on save */
  pf_dtype dtype;
  int synthetic_cache; /* the synthetic writer filling its own cache entry (others may not) */
} pf_save_opts;
/* dir/config.json as pf_model_save writes it for m saved in dtype dt (widths
 * from the tensors, torch_dtype, tie flag). */
pf_status pf_model_write_config(const pf_model *m, const char *dir, pf_dtype dt, pf_err *err);

/* Save as a Hugging Face checkpoint folder at `dir`:
 *  - refuses when `dir` is (or is inside) m->source_dir, or exists and is not an
 *    empty folder... unless `overwrite` is set (then it is replaced atomically);
 *  - writes everything into a temporary sibling folder "<dir>.tmp-XXXXXX",
 *    copies tokenizer / generation / special-token files from source_dir,
 *    re-opens the result with pf_model_load and checks config against tensors
 *    (layer count, layer_types length, widths, vocab vs embedding rows, head
 *    divisibility), and only then renames it into place. On any failure the
 *    temporary folder is removed and nothing appears at `dir`. */
pf_status pf_model_save(const pf_model *m, const char *dir, const pf_save_opts *opts,
                        int overwrite, const pf_ctx *ctx, pf_err *err);
/* pf_model_save's refusals about the input: `dir` is (or is inside) source_dir, or
 * is an existing folder around it (replacing it would delete the input). Also
 * callable before the work, from the path a model will be loaded from. */
pf_status pf_save_input_check(const char *source_dir, const char *dir, pf_err *err);
/* What pf_model_save refuses at `dir` without overwrite, in its words ("... (use
 * overwrite to replace it)"): a file, a non-empty folder, a symbolic link (the
 * checkpoint would replace the link). Callable before the work (the CLI's prune). */
pf_status pf_save_output_check(const char *dir, int overwrite, pf_err *err);
/* What the save op refuses to replace without overwrite: an existing file, a
 * non-empty folder or a symbolic link at `dir`. Checked by save's dry run and, before the first
 * step runs, for every save step of a recipe. Message (bare, for a step):
 * "path 'DIR': expected a new or empty folder, found existing content (set
 * overwrite: true to replace it)" ("found a file" for a file). */
pf_status pf_save_target_check(const char *dir, int overwrite, pf_err *err);
/* 1 if pf_model_save writes or copies a file of this name into a checkpoint
 * (config.json, *.safetensors, the shard index, tokenizer and generation files,
 * *.py: custom code). */
int pf_checkpoint_file_name(const char *name);
/* The consistency check used after save, on a loaded model. */
pf_status pf_model_check(const pf_model *m, pf_err *err);

#endif
