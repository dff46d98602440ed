/* tokenizer.h — Hugging Face tokenizer.json (BPE model) in C.
 *
 * Reproduces the ids of the official Hugging Face `tokenizers` library (Rust) for
 * BPE tokenizers of the two families LLaMA-style models use:
 *  - byte-level BPE (GPT-2, LLaMA 3, Qwen2/3, SmolLM2, GPT-NeoX/Pythia, OLMo-2,
 *    o200k/GPT-4o): pre-tokenizers ByteLevel, Split (PCRE2 regex or string, every
 *    behaviour, invert), Digits, Metaspace, Whitespace, WhitespaceSplit, Sequence;
 *  - sentencepiece-style BPE with byte fallback (LLaMA 2, Mistral, Phi-3, Gemma 3,
 *    llama2.c's tiny models): normalizers Prepend/Replace or the Metaspace
 *    pre-tokenizer.
 * Normalizers: NFC/NFD/NFKC/NFKD, Lowercase, Prepend, Replace, Strip, StripAccents,
 * Sequence. Added tokens (special or not; thousands of them are fine) are matched
 * before pre-tokenization, leftmost-longest, honouring lstrip/rstrip/single_word/
 * normalized; their ids are the ones HF's loader gives them (a content in the model
 * vocabulary takes its id, any other the next id after the vocabulary), which real
 * files always write, whatever a hand-edited file says. Missing options take HF's
 * serde defaults (ByteLevel use_regex true; BPE byte_fallback / ignore_merges false).
 * Post-processors: TemplateProcessing (single sequence; it may add nothing),
 * ByteLevel, Roberta/Bert, Sequence. Decoders: ByteLevel, Replace, ByteFallback,
 * Fuse, Strip, Metaspace, Sequence.
 * Anything else (WordPiece/Unigram/WordLevel models, BPE dropout, other component
 * types) is refused at load time with PF_ERR_UNSUPPORTED naming the type.
 *
 * Threads: a pf_tokenizer keeps a word cache and scratch buffers, so encode
 * mutates it; use one tokenizer per thread (or a lock). Decode and the getters
 * only read it. There is no global mutable state.
 */
#ifndef PF_TOKENIZER_H
#define PF_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "pf.h"

/* Load limits (a file over a limit is refused with PF_ERR_INVALID / PF_ERR_FORMAT).
 * Real files stay far below them: nesting depth ~6, < 10 components, regexes of a
 * few hundred bytes. */
#define PF_TOKENIZER_MAX_FILE_BYTES ((size_t)256 << 20) /* tokenizer.json */
#define PF_TOKENIZER_MAX_VOCAB ((int32_t)1 << 22)       /* entries, and max id + 1 */
#define PF_TOKENIZER_MAX_MERGES ((size_t)1 << 22)
#define PF_TOKENIZER_MAX_ADDED ((size_t)1 << 20) /* added_tokens entries */
#define PF_TOKENIZER_MAX_DEPTH 32                /* JSON nesting of the whole file */
/* normalizers + pre-tokenizers + decoders + post-processors, Sequences included */
#define PF_TOKENIZER_MAX_COMPONENTS 256
#define PF_TOKENIZER_MAX_REGEX_BYTES ((size_t)16 << 10) /* one Split/Replace pattern */

typedef struct pf_tokenizer pf_tokenizer;

/* Load `path`: a tokenizer.json file, or a folder holding one. A
 * tokenizer_config.json next to it is read when present, for bos_token /
 * eos_token and, only when tokenizer.json has no post_processor, for
 * add_bos_token / add_eos_token (older LLaMA-2-style exports).
 * Errors: PF_ERR_NOT_FOUND (no file), PF_ERR_FORMAT (not UTF-8, as JSON must be:
 * file and byte; malformed JSON: file, line, column; a missing or mistyped key: file
 * and key path such as
 * "tokenizer.json: model.merges[12]: ..."), PF_ERR_UNSUPPORTED (model type such as
 * "WordPiece" / "Unigram", or another component type; the message names it),
 * PF_ERR_INVALID (over a limit). On failure *out is NULL.
 * The caller owns *out and releases it with pf_tokenizer_free. */
pf_status pf_tokenizer_load(const char *path, pf_tokenizer **out, pf_err *err);

/* Release the caller's hold; the last one releases everything. NULL is fine. */
void pf_tokenizer_free(pf_tokenizer *tok);
/* One more holder of tok (released with pf_tokenizer_free); returns tok. A
 * tokenizer is used by one thread at a time (encode keeps scratch and a word
 * cache in it). */
pf_tokenizer *pf_tokenizer_ref(pf_tokenizer *tok);

/* Encode `len` bytes of UTF-8 `text` (need not be NUL-terminated; may contain NUL).
 * add_special != 0 applies the post-processor (e.g. prepends <s> or
 * <|begin_of_text|>), exactly like HF `encode(text, add_special_tokens=True)`;
 * added tokens inside the text are recognised either way.
 * On success *ids is malloc'd (caller frees; non-NULL even when *n == 0).
 * Errors: PF_ERR_INVALID "text is not valid UTF-8 at byte N", PF_ERR_NOMEM.
 * On failure *ids is NULL and *n is 0. Not thread-safe for one `tok`. */
pf_status pf_tokenizer_encode(pf_tokenizer *tok, const char *text, size_t len, int add_special,
                              int32_t **ids, size_t *n, pf_err *err);

/* Decode ids to UTF-8 text through the tokenizer's decoder chain (as HF
 * `decode`). skip_special != 0 drops added tokens marked special. Invalid byte
 * sequences produced by byte-level pieces become U+FFFD, as HF does.
 * On success *text is malloc'd and NUL-terminated (caller frees), *len excludes
 * the NUL (len may be NULL). Errors: PF_ERR_INVALID for an id outside
 * [0, vocab_size) or with no token, PF_ERR_NOMEM. On failure *text is NULL. */
pf_status pf_tokenizer_decode(const pf_tokenizer *tok, const int32_t *ids, size_t n,
                              int skip_special, char **text, size_t *len, pf_err *err);

/* max id + 1 over the model vocabulary and the added tokens. */
int32_t pf_tokenizer_vocab_size(const pf_tokenizer *tok);
/* How many ids pf_tokenizer_encode(add_special = 1) puts before and after the text's
 * (the post-processor's single-sequence template). */
void pf_tokenizer_special_counts(const pf_tokenizer *tok, size_t *before, size_t *after);
/* Beginning / end of sequence id, or -1 when the tokenizer has none. Taken from
 * tokenizer_config.json's bos_token / eos_token when present, else from the
 * special tokens before / after $A in a TemplateProcessing post-processor. */
int32_t pf_tokenizer_bos_id(const pf_tokenizer *tok);
int32_t pf_tokenizer_eos_id(const pf_tokenizer *tok);
/* The token string of `id` (an added token's content, else the model
 * vocabulary entry, in its stored form, e.g. "Ġthe" or "▁the"), or NULL if
 * no token has that id. Borrowed: valid until pf_tokenizer_free. */
const char *pf_tokenizer_token(const pf_tokenizer *tok, int32_t id);
/* Id of an exact token string (added tokens first, then the vocabulary), or -1. */
int32_t pf_tokenizer_token_id(const pf_tokenizer *tok, const char *token);

#endif
