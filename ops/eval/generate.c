/* generate.c — op "generate": greedy decoding with a KV cache (runtime/generate.h),
 * and the OptiPFair timing helpers built on it (reference §12), shared with
 * evaluate through opdata.h. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "generate.h"
#include "ophelp.h"
#include "opdata.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

pf_status pf_encode_prompt(const pf_model *m, pf_tokenizer *tok, const char *prompt, int32_t **ids,
                           size_t *n, pf_err *err) {
  pf_status st = pf_tokenizer_encode(tok, prompt, strlen(prompt), 1, ids, n, err);
  if (st) return pf_err_prefix(err, "prompt");
  if (*n == 0) {
    free(*ids);
    *ids = NULL;
    return pf_err_set(err, PF_ERR_INVALID, "prompt: the text gives no tokens");
  }
  if ((int64_t)*n >= m->config.max_position_embeddings) {
    free(*ids);
    *ids = NULL;
    return pf_err_set(err, PF_ERR_INVALID,
                      "prompt: %zu tokens, but the model's context is %lld positions", *n,
                      (long long)m->config.max_position_embeddings);
  }
  return PF_OK;
}

/* Largest usable number of new tokens for a prompt of n tokens. */
static int64_t clamp_new(const pf_model *m, size_t n, int64_t want) {
  int64_t room = m->config.max_position_embeddings - (int64_t)n;
  return want < room ? want : room;
}

pf_status pf_time_inference(const pf_model *m, const int32_t *ids, size_t n, int64_t max_new,
                            int64_t runs, int64_t warmup, int32_t eos, pf_value **out,
                            const pf_ctx *ctx, pf_err *err) {
  pf_generate_result r = {0};
  double sum = 0, mn = INFINITY, mx = 0;
  int64_t generated = 0;
  max_new = clamp_new(m, n, max_new);
  pf_status st = PF_OK;
  for (int64_t i = 0; !st && i < warmup + runs; i++) {
    double t0 = now_s();
    pf_generate_result_free(&r);
    st = pf_generate_greedy(m, ids, n, max_new, eos, &r, ctx, err);
    double t = now_s() - t0;
    if (st || i < warmup) continue;
    sum += t;
    mn = t < mn ? t : mn;
    mx = t > mx ? t : mx;
    generated = r.n_tokens;
  }
  pf_generate_result_free(&r);
  if (st) return st;
  double avg = runs ? sum / (double)runs : 0;
  pf_value *v = pf_value_map();
  if (!v) return pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  st = pf_map_set_num(v, "avg_time", avg);
  if (!st) st = pf_map_set_num(v, "min_time", runs ? mn : 0);
  if (!st) st = pf_map_set_num(v, "max_time", mx);
  if (!st) st = pf_map_set_num(v, "tokens_per_second", avg > 0 ? (double)generated / avg : 0);
  if (!st) st = pf_map_set_int(v, "num_runs", runs);
  if (!st) st = pf_map_set_int(v, "generated_tokens", generated);
  if (st) {
    pf_value_release(v);
    return pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  }
  *out = v;
  return PF_OK;
}

/* Decode ids to text. A model's embedding may be larger than its tokenizer (padded
 * vocabularies, untrained or random models): ids with no token are left out of the
 * text, as Hugging Face's decode does. */
static pf_status decode_known(const pf_tokenizer *tok, const int32_t *ids, size_t n, char **text,
                              size_t *tlen, pf_err *err) {
  int32_t *known = malloc((n > 0 ? n : 1) * sizeof *known);
  if (!known) return pf_err_set(err, PF_ERR_NOMEM, "generate: out of memory");
  size_t nk = 0;
  for (size_t i = 0; i < n; i++)
    if (pf_tokenizer_token(tok, ids[i])) known[nk++] = ids[i];
  pf_status st = pf_tokenizer_decode(tok, known, nk, 1, text, tlen, err);
  free(known);
  return st;
}

/* The continuation's text as Hugging Face's text-generation pipeline gives it: the
 * prompt and the generated ids decoded together, less the decoded prompt's length.
 * Decoding the generated ids alone would lose what depends on the tokens before them
 * (a SentencePiece word's leading space is dropped at the start of a text). When the
 * decoded prompt is not a prefix of the whole, the generated ids alone are decoded.
 * *unknown counts the generated ids the tokenizer has no token for. */
static pf_status decode_continuation(const pf_tokenizer *tok, const int32_t *prompt, size_t np,
                                     const pf_generate_result *r, char **text, size_t *tlen,
                                     int64_t *unknown, pf_err *err) {
  const size_t ng = (size_t)r->n_tokens;
  for (size_t i = 0; i < ng; i++)
    *unknown += !pf_tokenizer_token(tok, r->tokens[i]);
  int32_t *all = malloc((np + ng + 1) * sizeof *all);
  char *whole = NULL, *head = NULL;
  size_t wlen = 0, hlen = 0;
  if (!all) return pf_err_set(err, PF_ERR_NOMEM, "generate: out of memory");
  memcpy(all, prompt, np * sizeof *all);
  if (ng) memcpy(all + np, r->tokens, ng * sizeof *all);
  pf_status st = decode_known(tok, all, np + ng, &whole, &wlen, err);
  if (!st) st = decode_known(tok, prompt, np, &head, &hlen, err);
  free(all);
  if (!st && hlen <= wlen && !memcmp(whole, head, hlen)) {
    memmove(whole, whole + hlen, wlen - hlen + 1);
    *text = whole, *tlen = wlen - hlen;
    whole = NULL;
  } else if (!st) {
    st = decode_known(tok, r->tokens, ng, text, tlen, err);
  }
  free(whole);
  free(head);
  return st;
}

static const pf_param_spec generate_params[] = {
    {"model", PF_P_MODEL, 1, NULL, NULL, 0, 0, "the model"},
    {"prompt", PF_P_STR, 1, NULL, NULL, 0, 0,
     "the prompt (tokenized with the model's tokenizer, special tokens added)"},
    {"max_new_tokens", PF_P_INT, 0, "100", NULL, 1, 1e7,
     "tokens to generate at most (greedy; stops at the end-of-sequence token)"},
};

static pf_status generate_run(const pf_op *op, const pf_value *params, pf_value **out,
                              const pf_ctx *ctx, pf_err *err) {
  const pf_model *m = pf_map_model(params, "model");
  pf_tokenizer *tok = NULL;
  int32_t *ids = NULL;
  size_t n = 0;
  char *text = NULL;
  size_t tlen = 0;
  pf_generate_result r = {0};
  pf_value *v = NULL;
  int64_t unknown = 0;
  pf_status st = pf_model_tokenizer(m, &tok, err);
  if (!st) st = pf_encode_prompt(m, tok, pf_map_str(params, "prompt", ""), &ids, &n, err);
  if (!st && !(ctx && ctx->dry_run)) {
    const int64_t want = pf_map_int(params, "max_new_tokens", 100);
    int64_t max_new = clamp_new(m, n, want);
    if (max_new < want)
      pf_ctx_log(ctx,
                 "generate: %lld new tokens fit the model's context of %lld positions after the "
                 "%zu prompt tokens (%lld asked)",
                 (long long)max_new, (long long)m->config.max_position_embeddings, n,
                 (long long)want);
    st = pf_generate_greedy(m, ids, n, max_new, pf_tokenizer_eos_id(tok), &r, ctx, err);
    if (!st) st = decode_continuation(tok, ids, n, &r, &text, &tlen, &unknown, err);
  }
  if (!st && !(v = pf_value_map())) st = pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  if (!st) st = pf_map_set_str(v, "text", text ? text : "");
  if (!st) st = pf_map_set_int(v, "prompt_tokens", (int64_t)n);
  if (!st) st = pf_map_set_int(v, "generated_tokens", r.n_tokens);
  if (!st) st = pf_map_set_int(v, "tokens_not_in_tokenizer", unknown);
  if (!st) st = pf_map_set_bool(v, "stopped_at_eos", r.hit_eos);
  if (!st) st = pf_map_set_num(v, "prefill_seconds", r.prefill_seconds);
  if (!st) st = pf_map_set_num(v, "decode_seconds", r.decode_seconds);
  if (!st) st = pf_map_set_num(v, "decode_tokens_per_second", r.decode_tokens_per_second);
  if (!st) {
    pf_value *list = pf_value_list();
    pf_status s2 = list ? PF_OK : PF_ERR_NOMEM;
    for (int64_t i = 0; !s2 && i < r.n_tokens; i++)
      s2 = pf_list_push(list, pf_value_int(r.tokens[i]));
    if (!s2) {
      s2 = pf_map_set(v, "tokens", list); /* steals list */
      list = NULL;
    }
    pf_value_release(list);
    if (s2) st = pf_err_set(err, s2, "out of memory");
  }
  free(text);
  free(ids);
  pf_generate_result_free(&r);
  pf_tokenizer_free(tok);
  if (st) {
    pf_value_release(v);
    return st;
  }
  *out = v;
  return PF_OK;
}

const pf_op pf_op_generate = {
    .name = "generate",
    .alias = NULL,
    .summary = "greedy text generation with a KV cache",
    .params = generate_params,
    .n_params = sizeof generate_params / sizeof generate_params[0],
    .returns = "{text (the continuation, decoded after the prompt as Hugging Face's "
               "text-generation pipeline does, so a leading space is kept), tokens, prompt_tokens, "
               "generated_tokens, tokens_not_in_tokenizer (ids the "
               "tokenizer cannot decode, left out of text as Hugging Face does), stopped_at_eos, "
               "prefill_seconds, decode_seconds, decode_tokens_per_second}",
    .run = generate_run,
};
