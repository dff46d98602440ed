/* bench_tok.c — a benchmark request as token ids, the way lm-evaluation-harness's
 * TemplateLM._encode_pair and HFLM._loglikelihood_tokens make them (reference
 * benchmarks.md §4, §5, §9): trailing whitespace of the context (Python's
 * str.isspace) moves to the continuation; context and context + continuation
 * are encoded, the continuation is what the joint encoding has after the
 * context's token count; BOS as the mode says (never doubled when the text
 * already starts with it); an empty context is the prefix token (BOS, else EOS)
 * with the continuation encoded without special tokens; left truncation keeps
 * the last max_length + 1 tokens.
 */
#include <stdlib.h>
#include <string.h>

#include "bench.h"

/* Python's str.isspace for one code point. */
static int py_space(uint32_t c) {
  return (c >= 9 && c <= 13) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f ||
         c == 0x3000;
}

/* Length of s[0..len) without its trailing whitespace (valid UTF-8). */
static size_t rstrip_len(const char *s, size_t len) {
  while (len > 0) {
    size_t b = len - 1;
    while (b > 0 && ((unsigned char)s[b] & 0xC0) == 0x80)
      b--;
    const unsigned char *p = (const unsigned char *)s + b;
    uint32_t c = p[0];
    const size_t n = len - b;
    if (n == 2)
      c = ((c & 0x1Fu) << 6) | (p[1] & 0x3Fu);
    else if (n == 3)
      c = ((c & 0x0Fu) << 12) | ((p[1] & 0x3Fu) << 6) | (p[2] & 0x3Fu);
    else if (n == 4)
      c = 0x10000; /* nothing outside the BMP is a space */
    if (!py_space(c)) break;
    len = b;
  }
  return len;
}

static pf_status encode(pf_tokenizer *tok, pf_bench_bos bos, const char *text, size_t len,
                        int32_t **ids, size_t *n, pf_err *err) {
  const int32_t b = pf_tokenizer_bos_id(tok);
  const char *bt = b >= 0 ? pf_tokenizer_token(tok, b) : NULL;
  int special = bos != PF_BOS_NEVER;
  if (special && bt && *bt && len >= strlen(bt) && !strncmp(text, bt, strlen(bt))) special = 0;
  pf_status st = pf_tokenizer_encode(tok, text, len, special, ids, n, err);
  if (st || bos != PF_BOS_ALWAYS || b < 0 || !special || (*n > 0 && (*ids)[0] == b)) return st;
  int32_t *g = realloc(*ids, (*n + 1) * sizeof *g);
  if (!g) return pf_err_set(err, PF_ERR_NOMEM, "benchmark: out of memory");
  memmove(g + 1, g, *n * sizeof *g);
  g[0] = b;
  *ids = g;
  (*n)++;
  return PF_OK;
}

void pf_bench_req_free(pf_bench_req *r) {
  if (!r) return;
  free(r->tok);
  memset(r, 0, sizeof *r);
}

pf_status pf_bench_encode(pf_tokenizer *tok, pf_bench_bos bos, const char *ctx, const char *cont,
                          int64_t max_length, pf_bench_req *out, pf_err *err) {
  memset(out, 0, sizeof *out);
  const size_t lc = strlen(ctx), lk = strlen(cont), kept = rstrip_len(ctx, lc);
  char *joint = malloc(lc + lk + 1);
  if (!joint) return pf_err_set(err, PF_ERR_NOMEM, "benchmark: out of memory");
  memcpy(joint, ctx, lc);
  memcpy(joint + lc, cont, lk + 1); /* context + continuation: the same bytes either way */
  int32_t *whole = NULL, *head = NULL;
  size_t nw = 0, nh = 0;
  pf_status st;
  if (kept == 0) { /* empty context: the prefix token, then the continuation on its own */
    const int32_t b = pf_tokenizer_bos_id(tok), prefix = b >= 0 ? b : pf_tokenizer_eos_id(tok);
    if (prefix < 0) {
      st = pf_err_set(err, PF_ERR_INVALID,
                      "benchmark: an empty context needs a BOS or EOS token; the tokenizer has "
                      "neither");
      goto done;
    }
    if ((st = pf_tokenizer_encode(tok, joint, lc + lk, 0, &whole, &nw, err))) goto done;
    const int skip = nw > 0 && whole[0] == prefix;
    out->tok = malloc((nw + 1) * sizeof *out->tok);
    if (!out->tok) {
      st = pf_err_set(err, PF_ERR_NOMEM, "benchmark: out of memory");
      goto done;
    }
    out->tok[0] = prefix;
    memcpy(out->tok + 1, whole + skip, (nw - (size_t)skip) * sizeof *whole);
    out->nctx = 1;
    out->n = 1 + (int64_t)nw - skip;
  } else {
    if ((st = encode(tok, bos, joint, lc + lk, &whole, &nw, err)) ||
        (st = encode(tok, bos, joint, kept, &head, &nh, err)))
      goto done;
    if (nw <= nh) {
      st = pf_err_set(err, PF_ERR_INVALID,
                      "benchmark: the continuation has no tokens of its own (context %zu tokens, "
                      "context + continuation %zu)",
                      nh, nw);
      goto done;
    }
    out->tok = malloc(nw * sizeof *out->tok);
    if (!out->tok) {
      st = pf_err_set(err, PF_ERR_NOMEM, "benchmark: out of memory");
      goto done;
    }
    memcpy(out->tok, head, nh * sizeof *head); /* the context as encoded alone */
    memcpy(out->tok + nh, whole + nh, (nw - nh) * sizeof *whole);
    out->nctx = (int64_t)nh;
    out->n = (int64_t)nw;
  }
  out->ncont = out->n - out->nctx;
  if (out->ncont < 1 || out->nctx < 1) {
    st = pf_err_set(err, PF_ERR_INVALID, "benchmark: the continuation has no tokens");
    goto done;
  }
  if (out->ncont > max_length) {
    st =
        pf_err_set(err, PF_ERR_INVALID,
                   "benchmark: the continuation has %lld tokens, more than the model's length %lld",
                   (long long)out->ncont, (long long)max_length);
    goto done;
  }
  out->start = out->n > max_length + 1 ? out->n - (max_length + 1) : 0;
done:
  free(joint), free(whole), free(head);
  if (st) pf_bench_req_free(out);
  return st;
}
