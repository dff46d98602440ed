/* generate.h — KV-cache decoding on the forward's layer code (greedy generation,
 * generation speed).
 *
 * A pf_decoder holds one sequence's keys and values for every layer
 * ([n_layers, max_ctx, kv_heads*head_dim] float32, twice) and appends tokens to
 * it: feeding a prompt is one batched step (prefill), every further token is a
 * one-token step whose projections take the GEMV path (weights streamed once in
 * their stored dtype). The layers are the very ones pf_forward_run runs, so
 * logits match a full forward of the whole sequence up to float32 rounding.
 */
#ifndef PF_GENERATE_H
#define PF_GENERATE_H

#include "forward.h"

typedef struct pf_decoder pf_decoder;

/* A decoder for sequences of up to max_ctx tokens (1 <= max_ctx <=
 * max_position_embeddings). Retains the model. Errors: those of pf_forward_new,
 * PF_ERR_INVALID for max_ctx, PF_ERR_NOMEM for the cache. */
pf_status pf_decoder_new(const pf_model *m, int64_t max_ctx, pf_decoder **out, pf_err *err);
void pf_decoder_free(pf_decoder *d); /* NULL ok */

/* Append ids[0..n) at positions [pos, pos + n) and, when `logits` is non-NULL,
 * write the logits of the last of them into logits[vocab_size]. Errors: n < 1,
 * an id outside the vocabulary (naming its index), pos + n > max_ctx,
 * PF_ERR_INTERRUPTED via ctx (checked before the step). On error the cache is
 * unchanged (the position does not advance). */
pf_status pf_decoder_feed(pf_decoder *d, const int32_t *ids, int64_t n, float *logits,
                          const pf_ctx *ctx, pf_err *err);
/* Tuning knobs (benchmarks, tests): pf_decoder_feed populates the cache pages of
 * the next pf_decoder_populate_ahead positions (default 64; 0: each page faults
 * when a step first writes it), with MADV_POPULATE_WRITE, or by a write to each
 * page where that fails or pf_decoder_populate_touch is set. Same results. */
extern int64_t pf_decoder_populate_ahead;
extern int pf_decoder_populate_touch;
/* A decoder of `slots` sequences side by side (1 to 4096): pf_decoder_feed uses
 * slot 0; pf_decoder_branch runs one row per slot. Memory: slots times the
 * single cache. */
pf_status pf_decoder_new_slots(const pf_model *m, int64_t max_ctx, int64_t slots, pf_decoder **out,
                               pf_err *err);
/* Copy slot 0's cache [0, pos) into slots 1 .. n-1 (a shared prefix, e.g. a
 * benchmark question, that several continuations extend). */
void pf_decoder_fork(pf_decoder *d, int64_t n);
/* Score continuations of the cached prefix without keeping them: row b (in slot
 * b, b < rows <= slots) appends ids[b*seq .. b*seq + lens[b]) at positions
 * [pos, pos + lens[b]) (right padding after lens[b]); the position does not
 * advance, so the next branch starts from the same prefix. The logits of the
 * flattened rows sel[0..nsel) (row b*seq + s, s < lens[b]) go to fn, whose row0
 * counts in sel. Slots that are not forked see their own older cache: fork first.
 * Errors: as pf_decoder_feed, per row. */
pf_status pf_decoder_branch(pf_decoder *d, int64_t rows, int64_t seq, const int32_t *ids,
                            const int64_t *lens, const int64_t *sel, int64_t nsel, pf_logits_fn fn,
                            void *ud, const pf_ctx *ctx, pf_err *err);
/* Tokens in the cache (the position of the next token). */
int64_t pf_decoder_pos(const pf_decoder *d);
/* Forget the sequence (the cache is reused). */
void pf_decoder_reset(pf_decoder *d);

typedef struct pf_generate_result {
  int32_t *tokens; /* [n_tokens] generated ids (the EOS that stopped the run is
                      included), malloc'd, owned by the result; NULL when none */
  int64_t n_tokens;
  int64_t n_prompt;
  int hit_eos;                      /* 1 when generation stopped at eos_id */
  double prefill_seconds;           /* prompt step + the first token */
  double decode_seconds;            /* the n_tokens - 1 one-token steps */
  double prefill_tokens_per_second; /* n_prompt / prefill_seconds */
  double decode_tokens_per_second;  /* (n_tokens - 1) / decode_seconds; 0 if n_tokens < 2 */
} pf_generate_result;

/* Greedy decoding (argmax, first index on ties, as torch.argmax): feeds the
 * prompt, then appends the most likely token until max_new_tokens tokens were
 * produced or eos_id (-1 = none) was produced. Needs n_prompt >= 1 and
 * n_prompt + max_new_tokens <= max_position_embeddings (PF_ERR_INVALID saying
 * both numbers otherwise); max_new_tokens == 0 produces nothing. On failure *out
 * is zeroed (no tokens to free). */
pf_status pf_generate_greedy(const pf_model *m, const int32_t *prompt, size_t n_prompt,
                             int64_t max_new_tokens, int32_t eos_id, pf_generate_result *out,
                             const pf_ctx *ctx, pf_err *err);
/* Free the tokens and zero the result; NULL ok, safe twice. */
void pf_generate_result_free(pf_generate_result *r);

#endif
