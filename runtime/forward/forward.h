/* forward.h — the one implementation of the LLaMA-family decoder, with taps.
 *
 * RMSNorm, RoPE (default / linear / llama3 scaling), grouped-query attention with
 * causal and padding masks, SwiGLU MLP, Qwen2 q/k/v biases, Qwen3 q/k RMSNorm,
 * tied or untied lm_head, per-layer intermediate sizes (pruned models). Weights
 * stay in their stored dtype (F32/BF16/F16); activations are float32.
 * Calibration, layer importance, bias activations and perplexity are all taps and
 * logits callbacks on this forward: nothing else in pfrun runs the model.
 *
 * Batches are right-padded: ids [batch, seq] with mask [batch, seq] (1 = token,
 * 0 = padding). Positions are 0..seq-1 for every row (what transformers uses for
 * right padding). Padded keys are masked out of attention; padded query rows are
 * still computed (their values are defined but meaningless; taps get the mask).
 */
#ifndef PF_FORWARD_H
#define PF_FORWARD_H

#include "hash.h"
#include "model.h"

typedef enum pf_tap_point {
  PF_TAP_LAYER_INPUT = 0,  /* hidden state entering the layer        [B, S, H] */
  PF_TAP_INPUT_NORM,       /* input_layernorm output                 [B, S, H] */
  PF_TAP_O_PROJ_INPUT,     /* attention heads before o_proj: head h  [B, S, nH*hd]
                            * is columns [h*hd, (h+1)*hd) (width = q_dim) */
  PF_TAP_ATTENTION_OUTPUT, /* self_attn output (after o_proj)        [B, S, H] */
  PF_TAP_GATE_PROJ,        /* gate_proj output (before the act)      [B, S, I_l] */
  PF_TAP_UP_PROJ,          /* up_proj output                         [B, S, I_l] */
  PF_TAP_DOWN_PROJ_INPUT,  /* act(gate) * up, the input of down_proj [B, S, I_l] */
  PF_TAP_DOWN_PROJ,        /* down_proj output                       [B, S, H] */
  PF_TAP_MLP_OUTPUT,       /* mlp output (== down_proj output)       [B, S, H] */
  PF_TAP_LAYER_OUTPUT,     /* hidden state leaving the layer         [B, S, H] */
  PF_TAP_COUNT
} pf_tap_point;

/* "layer_input", "input_norm", "o_proj_input", "attention_output", "gate_proj", "up_proj",
 * "down_proj_input", "down_proj", "mlp_output", "layer_output". */
const char *pf_tap_name(pf_tap_point p);
/* PF_ERR_INVALID naming the valid names when unknown. */
pf_status pf_tap_parse(const char *name, pf_tap_point *out, pf_err *err);

typedef struct pf_tap_event {
  pf_tap_point point;
  int64_t layer;       /* position in the model's layer list (0-based) */
  int64_t batch, seq;  /* B, S */
  int64_t width;       /* H or the layer's intermediate size */
  const float *data;   /* [B, S, width], contiguous; valid only during the call */
  const int32_t *mask; /* [B, S]: 1 token, 0 padding (never NULL) */
  int64_t index;       /* the batch's position in a pass (pf_forward_pass); 0 otherwise */
} pf_tap_event;

/* Called on the calling thread, outside any parallel region, in forward order
 * (layer by layer; within a layer in the order of pf_tap_point). In a pass over
 * several batches the events of one batch keep that order, but the batches
 * interleave (layer-major: layer i of every batch before layer i+1): state per
 * batch is keyed by ev->index. A non-OK return
 * stops the forward and is returned by pf_forward_run. */
typedef pf_status (*pf_tap_fn)(void *user_data, const pf_tap_event *ev, pf_err *err);

typedef struct pf_taps {
  uint32_t points;       /* bit (1u << pf_tap_point) per wanted point */
  const uint8_t *layers; /* NULL = every layer, else [n_layers] flags */
  pf_tap_fn fn;
  void *user_data;
} pf_taps;

/* Logits of consecutive flattened positions: rows [row0, row0 + nrows) of the
 * [B*S, vocab] logits matrix (row = b*S + s). Called in chunks (the full matrix
 * is never materialised), on the calling thread. */
typedef pf_status (*pf_logits_fn)(void *user_data, int64_t row0, int64_t nrows, const float *logits,
                                  int64_t vocab, pf_err *err);

typedef struct pf_batch {
  int64_t batch, seq;
  const int32_t *ids;  /* [batch, seq] */
  const int32_t *mask; /* [batch, seq], right padding; NULL = no padding */
} pf_batch;

/* A forward runner bound to one model: RoPE tables, weights checks, reusable
 * activation buffers (grown to the largest batch seen, then reused). The model
 * is retained. Not thread-safe: one runner per thread. */
typedef struct pf_forward pf_forward;

/* Errors: PF_ERR_UNSUPPORTED for a rope_scaling type other than default/linear/
 * llama3 ("yarn", "dynamic", ...) or a hidden_act other than silu; PF_ERR_INVALID
 * naming the tensor for a missing, planned (dry-run) or misshapen weight, or for
 * malformed rope_scaling values. Sliding-window layers (Mistral, Qwen2/3 with
 * use_sliding_window) follow pf_config_layer_window. */
pf_status pf_forward_new(const pf_model *m, pf_forward **out, pf_err *err);
void pf_forward_free(pf_forward *f); /* NULL ok */

/* Run the batch. `taps` and `logits_fn` may be NULL (then the lm_head is skipped
 * when no logits are wanted). Errors: ids outside the vocabulary (naming the
 * batch row and position), seq longer than max_position_embeddings, taps errors,
 * PF_ERR_INTERRUPTED via ctx->interrupt (checked between layers).
 * Also PF_ERR_INVALID for a mask that is not 0/1 right padding (naming the row)
 * and for tap bits outside PF_TAP_COUNT or points without fn. A row with no token
 * at all is allowed: its attention output is zero. Without logits_fn, layers
 * after the last tapped one are not run. A tap or logits callback error comes
 * back with its status, the message prefixed "layer N: tap NAME: " or
 * "logits callback: ". */
pf_status pf_forward_run(pf_forward *f, const pf_batch *b, const pf_taps *taps,
                         pf_logits_fn logits_fn, void *logits_ud, const pf_ctx *ctx, pf_err *err);

/* Final norm + lm_head of `rows` hidden states x [rows, H] (as after the last
 * layer), handed to fn in chunks exactly as pf_forward_run does (row0 counts
 * from x's first row). */
pf_status pf_forward_logits(pf_forward *f, const float *x, int64_t rows, pf_logits_fn fn, void *ud,
                            pf_err *err);

/* ---- passes: many batches through one model ----
 *
 * Every data-parallel op (calibration, importance, perplexity, bias
 * activations) runs its batches as one pass. The order is batch-major (each
 * batch through all layers, as pf_forward_run) or layer-major (all batches
 * through layer i, then layer i + 1: every weight is read once per pass and its
 * pages are released after its layer, so a model larger than RAM is read from
 * disk once, not once per batch; the hidden states of all batches are kept in
 * RAM, or in an unlinked scratch file when they would take more than a quarter
 * of the memory budget). Each (batch, layer) step is the very computation
 * pf_forward_run does, so both orders give bit-identical taps and states.
 *
 * Groups: layer-major runs consecutive batches of one sequence length as one
 * product, up to PF_PASS_GROUP_TOKENS tokens (each weight is then read and packed
 * once per layer for the group instead of once per batch; it matters for many
 * small batches). A batch joins a group only when its own tokens reach
 * pf_kern_uniform_min_m(), so every row keeps its bits; groups need taps that
 * allow them (pf_pass.group_taps) or no taps.
 *
 * ctx->pass_order forces an order; AUTO picks layer-major when the model's
 * weight bytes exceed three quarters of the budget (ctx->memory_budget, else
 * MemAvailable of /proc/meminfo), even for one batch: its pages are released
 * layer by layer. */

/* Hidden states of batch `index` after the last layer (before the final norm),
 * [batch * seq, H]: pass them to pf_forward_logits for logits. */
typedef pf_status (*pf_final_fn)(void *user_data, int64_t index, const pf_batch *b, const float *x,
                                 pf_err *err);

/* The hidden states entering layer pf_pass.start of batch `index`, [batch * seq, H],
 * into x (a pass that starts past the embeddings). */
typedef pf_status (*pf_start_fn)(void *user_data, int64_t index, const pf_batch *b, float *x,
                                 pf_err *err);

/* Tokens a layer-major group holds at most (a batch larger than this runs alone). */
#define PF_PASS_GROUP_TOKENS 1024

typedef struct pf_pass {
  const pf_batch *batches; /* [n] */
  int64_t n;
  const pf_taps *taps;  /* may be NULL; ev->index is the batch's position in batches */
  pf_final_fn final_fn; /* may be NULL: then layers after the last tapped one are not run */
  void *final_ud;
  const char *what; /* progress label, e.g. "importance" (NULL: "forward") */
  int split;        /* MPI: run only this rank's share of the batches (pf_dist_range); the
                       caller combines the ranks' results (runtime/dist/dist.h) */
  int group_taps;   /* 1: the taps keep their state per ev->index and accept that, within a
                       layer, the events of a group's batches come point by point (point P of
                       each member, then point P + 1). Without taps this is implied. */
  int64_t start;    /* the first layer to run: 0 = from the embeddings; > 0 (up to the
                       model's layer count, which runs none) takes each batch's states from
                       start_fn, and no tap may want an earlier layer */
  pf_start_fn start_fn;
  void *start_ud;
  int log_plan;   /* 1: say the order chosen ("<what>: <pf_pass_info.why>", ctx's log)
                     before the work, so a long pass says it at its start */
  int need_layer; /* 1: the pass itself needs layer-major order (whatever ctx asks) */
} pf_pass;

typedef struct pf_pass_info {
  pf_pass_order order;  /* PF_PASS_BATCH or PF_PASS_LAYER: the order used */
  int states_in_file;   /* layer-major: the hidden states were in a scratch file */
  uint64_t model_bytes; /* weight bytes of the model */
  uint64_t state_bytes; /* hidden states of every batch (float32) */
  uint64_t budget;      /* the memory budget the choice used */
  uint64_t work_budget; /* the budget of what the pass holds (pf_ctx_work_budget) */
  int64_t groups;       /* layer-major: products per layer (<= batches run; see groups) */
  int direct;           /* layer-major: the next layer was read ahead with O_DIRECT */
  char why[320];        /* one sentence: the order, where the states were, and why */
} pf_pass_info;

/* How many leading layers a and b compute alike: the same tensors (with by_bytes, also
 * tensors of one dtype and shape holding the same bytes: reading them costs a pass over
 * both, so only for models in memory), the same per-layer settings (width, window,
 * scale, RoPE) and the same embeddings and global settings.
 * The states leaving layer k - 1 of a are then, bit for bit, those leaving layer k - 1 of
 * b for every k up to that count, so a pass of b may start at k (pf_pass.start) from
 * states tapped in a pass of a (PF_TAP_LAYER_OUTPUT at layer k - 1). A depth-pruned
 * model shares the layers before the first one removed; a model shares all with itself. */
int64_t pf_forward_shared_layers(const pf_forward *a, const pf_forward *b, int by_bytes);
/* Whether comparing the bytes of a and b (by_bytes above) is affordable: both models'
 * weights fit in three quarters of the memory budget (ctx->memory_budget, else
 * MemAvailable), the share a pass keeps its weights in memory with. */
int pf_forward_bytes_affordable(const pf_model *a, const pf_model *b, const pf_ctx *ctx);

/* MPI (more than one rank): before work is split between the ranks, check that
 * every rank runs the same model (config, each weight's name, dtype, shape and a
 * sample of its values) on the same input, which the caller has fed into h
 * (pf_batch_hash for batches). On a difference every rank gets the same error,
 * "<what> differ between the ranks: ..." (dist.h, pf_dist_same). Call on every
 * rank at the same point. One rank: PF_OK at once, h unused. pf_forward_pass
 * calls it for split passes. */
pf_status pf_forward_check_ranks(const pf_model *m, pf_sha256 *h, const char *what, pf_err *err);
void pf_batch_hash(pf_sha256 *h, const pf_batch *b);

/* Run the pass. Callbacks fire on the calling thread; finals in batch order,
 * after every layer of that batch. Errors as pf_forward_run, prefixed "batch
 * N: " (N its position in batches). info may be NULL. Progress: what, done /
 * total counted in (layer, batch) steps. */
pf_status pf_forward_pass(pf_forward *f, const pf_pass *p, pf_pass_info *info, const pf_ctx *ctx,
                          pf_err *err);
/* The order pf_forward_pass would take, and why (fills *out). */
void pf_pass_plan(const pf_forward *f, const pf_pass *p, const pf_ctx *ctx, pf_pass_info *out);

/* Float32 blocks of n items (bytes[i] each) kept between passes: in RAM, or
 * (in_file) in an unlinked scratch file read and written with pread/pwrite.
 * pf_pass_states_new: one [batch * seq, H] block per batch of p, placed as
 * in->states_in_file says. */
typedef struct pf_states pf_states;
pf_status pf_states_new(int64_t n, const uint64_t *bytes, int in_file, pf_states **out,
                        pf_err *err);
pf_status pf_pass_states_new(const pf_forward *f, const pf_pass *p, const pf_pass_info *in,
                             pf_states **out, pf_err *err);
pf_status pf_states_put(pf_states *s, int64_t i, const float *x, pf_err *err);
pf_status pf_states_get(pf_states *s, int64_t i, float *x, pf_err *err);
void pf_states_free(pf_states *s); /* NULL ok */

#endif
