/* forward_int.h — internals shared by forward.c, forward_layer.c, forward_attn.c
 * and generate.c. Not a public header: the contract is forward.h / generate.h.
 *
 * One decoder layer step serves both a full forward (keys and values of the
 * batch itself, positions 0..S-1) and KV-cache decoding (one sequence, new
 * tokens at positions p0.., keys read from a cache): there is exactly one
 * implementation of the model.
 */
#ifndef PF_FORWARD_INT_H
#define PF_FORWARD_INT_H

#include "forward.h"
#include "kernels/kernels.h"

/* Attention works on blocks of this many query rows and key columns. */
#define PF_ATTN_QB 32
#define PF_ATTN_KB 64

/* Per-layer data resolved once by pf_forward_new. */
typedef struct pf_fwd_layer {
  const pf_layer *w;
  float *ln1;     /* [H] pre-attention norm weight as float32 (Gemma: 1 + w) */
  float *ln1_b;   /* [H] its bias, or NULL (RMSNorm) */
  float *ln2;     /* [H] pre-MLP norm weight as float32 */
  float *ln2_b;   /* [H] or NULL */
  float *q_norm;  /* [head_dim] or NULL (qwen3, gemma3) */
  float *k_norm;  /* [head_dim] or NULL */
  float *attn_post; /* [H] attention output norm (gemma2/3) or NULL */
  float *mlp_post;  /* [H] MLP output norm (gemma2/3) or NULL */
  int64_t inter;  /* I_l: this layer's intermediate size */
  int64_t window; /* sliding attention window, 0 = full causal attention */
  float scale;    /* attention score scale of this layer */
  const pf_rope_table *rope; /* this layer's RoPE table (f->rope or f->rope_local); NULL for
                                learned positions */
} pf_fwd_layer;

struct pf_forward {
  pf_model *m; /* retained */
  int64_t H, n_heads, n_kv, hd, vocab, n_layers, max_pos, inter_max;
  int64_t q_dim, kv_dim; /* n_heads * hd, n_kv * hd */
  float eps;
  const pf_arch *arch;   /* the family (norm kind, MLP kind, residual form, ...) */
  pf_act act;            /* MLP activation */
  int parallel;          /* GPT-NeoX parallel residual */
  float embed_scale;     /* Gemma: sqrt(H) rounded to float32; 0 = none */
  float attn_softcap;    /* Gemma 2; 0 = none */
  float final_softcap;   /* Gemma 2/3; 0 = none */
  pf_rope_params rope_params;
  pf_rope_table *rope;   /* positions [0, rope->max_pos), grown on demand; NULL for learned
                            positions */
  pf_rope_params rope_local_params; /* Gemma 3 sliding layers */
  pf_rope_table *rope_local;        /* NULL unless some layer uses it */
  pf_rope_params rope_long_params;  /* longrope: the long_factor table, used by every layer */
  pf_rope_table *rope_long;         /* for calls whose length exceeds long_after; else NULL */
  int64_t long_after;
  pf_fwd_layer *layers;  /* [n_layers] */
  float *final_norm;     /* [H] */
  float *final_norm_b;   /* [H] or NULL */
  const pf_tensor *head; /* lm_head, or embed_tokens when tied */
  pf_workspace *ws;

  /* activation buffers for up to cap_tok tokens (T = B*S), grown, never shrunk */
  int64_t cap_tok;
  float *x;      /* [T, H] residual stream */
  float *xn;     /* [T, H] normed input of a sub-block; the final norm output */
  float *q;      /* [T, q_dim] */
  float *k;      /* [T, kv_dim] (full forward only; decoding writes into its cache) */
  float *v;      /* [T, kv_dim] */
  float *att;    /* [T, q_dim] attention output per head, input of o_proj */
  float *o;      /* [T, H] o_proj output, then down_proj output */
  float *g;      /* [T, inter_max] gate_proj output, then act(gate) * up */
  float *u;      /* [T, inter_max] up_proj output */
  float *a2;     /* [T, H] attention output kept for the parallel residual (NULL otherwise) */
  int64_t *pos;  /* [T] RoPE position of each token */
  int32_t *mask; /* [T] the batch mask, or ones */
  int64_t cap_batch;
  int64_t *len; /* [B] real tokens per row (right padding) */

  /* logits: rows of the [T, vocab] matrix, logit_rows at a time */
  int64_t logit_rows;
  float *logits; /* [logit_rows, vocab], allocated on first use */

  /* attention scratch, one slice per OpenMP thread */
  int nthr;
  int64_t cap_keys;       /* keys per (row, head) the scratch holds (multiple of PF_ATTN_KB) */
  size_t scratch_per_thr; /* floats */
  float *scratch;         /* [nthr, scratch_per_thr] */
};

/* One layer step of `batch` rows of `seq` new tokens at positions p0.. .
 * Keys/values of row b, position j live at k/v + b*kv_bstride + j*kv_dim (a row
 * of kv_dim floats holds the KV heads side by side), or, when kv_gstride > 0, KV
 * head g's at k/v + b*kv_bstride + g*kv_gstride + j*hd (each head's positions in
 * a run of their own: the decoder's cache, which a decode step reads head by head,
 * bench/README.md "Attention at long contexts"); the step writes the new ones at
 * positions [p0, p0+seq).
 * x, xn, q, att, o, g, u, pos, mask, len of the runner hold the step's data. */
/* One batch of a group run as one product (layer-major passes): its position
 * in the pass and its rows. */
typedef struct pf_fwd_member {
  int64_t index, batch;
} pf_fwd_member;

typedef struct pf_fwd_step {
  int64_t batch, seq, p0;
  float *k, *v;
  int64_t kv_bstride;
  int64_t kv_gstride;  /* 0: positions as rows of kv_dim; > 0: heads apart (above) */
  const pf_taps *taps; /* NULL = none */
  int64_t index;       /* the batch's position in a pass (tap events carry it) */
  /* A group: the step's rows are these batches' rows one after the other; every
   * tap fires once per member, on its rows, with its index (n_members 0: one batch). */
  const pf_fwd_member *members;
  int64_t n_members;
} pf_fwd_step;

/* Make room for `tokens` tokens in `batch` rows attending to up to `keys` keys
 * (positions < keys). Grows buffers, the RoPE table and the attention scratch. */
pf_status pf_fwd_reserve(pf_forward *f, int64_t tokens, int64_t batch, int64_t keys, pf_err *err);
/* x[t] = embed_tokens[ids[t]] (* sqrt(H) for Gemma, + wpe[pos[t]] for GPT-2) for
 * t < n (ids and f->pos already set and validated). */
void pf_fwd_embed(pf_forward *f, const int32_t *ids, int64_t n);
/* y = the family's norm of `rows` rows of x (RMSNorm or LayerNorm with bias b). */
void pf_fwd_norm(const pf_forward *f, float *y, const float *x, const float *w, const float *b,
                 int64_t rows);
/* Final norm of rows [0, n) of x into f->xn, then logits[n, vocab] = head (and the
 * final soft-cap). */
pf_status pf_fwd_logits(pf_forward *f, const float *x, int64_t n, float *logits, pf_err *err);
/* The decoder layer l on the runner's buffers (see pf_fwd_step). */
pf_status pf_fwd_layer_run(pf_forward *f, int64_t l, const pf_fwd_step *st, pf_err *err);
/* Validate the batch (shapes, ids, 0/1 right-padded mask) and make it the
 * runner's current one: buffers reserved, f->mask / pos / len set, the RoPE
 * tables chosen for its length. */
pf_status pf_fwd_begin_batch(pf_forward *f, const pf_batch *b, pf_err *err);
/* Layers to run: all when final states or logits are wanted, else up to the last tap. */
int64_t pf_fwd_layers_needed(const pf_forward *f, const pf_taps *taps, int want_final);
/* Check taps (bits, fn). */
pf_status pf_fwd_check_taps(const pf_taps *taps, pf_err *err);
/* 1 if a tap at (point, layer) is wanted. */
int pf_fwd_tap_wanted(const pf_taps *taps, pf_tap_point p, int64_t layer);

/* ---- reading ahead (forward_stream.c) ----
 * Layer-major passes: a helper thread reads layer l + 1 while layer l computes,
 * with O_DIRECT into one of two reused buffers (or, without O_DIRECT, by
 * faulting the mapping's pages in). NULL when turned off (PFRUN_PREFETCH=0) or
 * the thread cannot start: then nothing is read ahead. */
typedef struct pf_stream pf_stream;
/* budget: the pass's memory budget (0: none). O_DIRECT when the weights exceed
 * 3/4 of it and the two buffers fit a quarter of it; else the mapping. */
pf_stream *pf_stream_new(const pf_model *m, int64_t n_run, uint64_t budget);
void pf_stream_free(pf_stream *st); /* NULL ok */
/* 1 when layers are read with O_DIRECT (0: the mapping's pages; NULL: 0). */
int pf_stream_direct(const pf_stream *st);
/* Start reading layer l (after pf_stream_wait of layer l - 1: its buffer is reused
 * for layer l + 1). NULL ok. */
void pf_stream_post(pf_stream *st, int64_t l);
/* Wait for layer l (posted before); the layer to compute with: the shadow whose
 * tensors point into the buffer, or the model's own layer (map mode, a tensor or
 * read the stream could not take). Valid until layer l + 2 is posted. */
const pf_layer *pf_stream_wait(pf_stream *st, int64_t l);

/* Grouped-query attention of one step, OpenMP over (batch row, head).
 * Query row r of batch row b is at position p0 + r and sees keys
 * [max(0, pos - window + 1), min(pos, len[b] - 1)] (causal, right padding,
 * sliding window); a row with no key gets zeros. Softmax in float32. */
typedef struct pf_attn_job {
  int64_t batch, seq, p0;
  int64_t n_heads, n_kv, hd, window;
  float scale;
  float softcap; /* scores = softcap * tanh(scores / softcap) before the mask; 0 = off */
  const float *q; /* [batch*seq, ldq]; head h at column h*hd */
  int64_t ldq;
  const float *k, *v; /* row b, kv head g, key j at + b*bstride + g*gstride + j*ldkv */
  int64_t ldkv, bstride;
  int64_t gstride;    /* 0: hd (a key row holds the heads side by side, ldkv >= n_kv*hd) */
  const int64_t *len; /* [batch] */
  float *out;         /* [batch*seq, ldo] like q */
  int64_t ldo;
} pf_attn_job;

/* Floats of scratch one thread needs for `keys` keys (keys a multiple of PF_ATTN_KB). */
size_t pf_attn_scratch_floats(int64_t hd, int64_t keys);
/* Run the job with nthr threads, each using its own scratch_per_thr floats slice. */
void pf_attn_run(const pf_attn_job *j, float *scratch, size_t scratch_per_thr, int nthr);
/* 1 (default): decoding rows take the query heads of a KV group (of 4 or more)
 * four at a time;
 * 0: one task per head. Same bits either way (tests, benchmarks). */
extern int pf_attn_group_heads;
/* Decoding (seq < 8) prefetches each key and value row this many rows ahead
 * (default 16; 0: none). Same results either way. */
extern int64_t pf_attn_prefetch_rows;

#endif
