/* tokenizer_internal.h — private pieces shared by tokenizer*.c (not part of the API).
 *
 *   tokenizer.c         load (tokenizer.json / tokenizer_config.json), post-processor,
 *                       the encode pipeline, getters
 *   tokenizer_added.c   added tokens: parsing, the radix trie, HF's match rules
 *   tokenizer_bpe.c     hash maps, the BPE model (merges, byte fallback, word cache)
 *   tokenizer_json.c    model.vocab / model.merges read from the text, not through cJSON
 *   tokenizer_text.c    UTF-8 helpers, regex wrapper, normalizers
 *   tokenizer_pre.c     pre-tokenizers (split behaviours, ByteLevel, Metaspace, ...)
 *   tokenizer_decode.c  decoders and pf_tokenizer_decode
 *
 * Component trees (normalizer, pre-tokenizer, decoder) are parsed from cJSON into
 * small tagged structs; each has a parse function that fills a pf_err whose message
 * starts with the JSON key path ("pre_tokenizer.pretokenizers[0].pattern: ...") and
 * a free function that accepts NULL. The caller prefixes the file name.
 */
#ifndef PF_TOKENIZER_INTERNAL_H
#define PF_TOKENIZER_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <cjson/cJSON.h>
#include <pcre2.h>
#include <stdint.h>

#include "tokenizer.h"

/* ---- growable buffers ---- */

typedef struct pf_tk_buf {
  char *p; /* owned; not NUL-terminated unless a caller adds one */
  size_t n, cap;
} pf_tk_buf;

/* 0 on success, -1 when out of memory (the buffer is unchanged). */
int pf_tk_buf_reserve(pf_tk_buf *b, size_t extra);
int pf_tk_buf_put(pf_tk_buf *b, const void *s, size_t n);
void pf_tk_buf_free(pf_tk_buf *b);

typedef struct pf_tk_ids {
  int32_t *v;
  size_t n, cap;
} pf_tk_ids;
int pf_tk_ids_push(pf_tk_ids *a, int32_t id);
int pf_tk_ids_append(pf_tk_ids *a, const int32_t *ids, size_t n);

/* A list of text pieces: ranges of `text`. at_start: the piece begins at offset 0 of
 * the original input (HF's `offsets_original().0 == 0`, used by prepend_scheme "first"). */
typedef struct pf_tk_piece {
  size_t off, len;
  int at_start;
} pf_tk_piece;
typedef struct pf_tk_pieces {
  pf_tk_buf text;
  pf_tk_piece *v;
  size_t n, cap;
} pf_tk_pieces;
int pf_tk_pieces_add(pf_tk_pieces *p, size_t off, size_t len, int at_start);
void pf_tk_pieces_reset(pf_tk_pieces *p);
void pf_tk_pieces_free(pf_tk_pieces *p);

/* ---- UTF-8 (tokenizer_text.c) ---- */

/* Offset of the first byte that is not part of a valid UTF-8 sequence, or SIZE_MAX. */
size_t pf_tk_utf8_invalid_at(const char *s, size_t n);
/* Byte length of the (valid) sequence starting with lead byte c. */
static inline size_t pf_tk_utf8_len(unsigned char c) {
  return c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
}
/* Decode the valid sequence at s[*i], advancing *i. */
uint32_t pf_tk_utf8_next(const char *s, size_t *i);
/* Encode cp into out (>= 4 bytes); returns the byte count. */
size_t pf_tk_utf8_put(uint32_t cp, char *out);
/* Append s[0..n) to b with every invalid sequence replaced by U+FFFD, one per
 * maximal invalid subpart (Rust's String::from_utf8_lossy). 0 or -1 (NOMEM). */
int pf_tk_utf8_lossy(pf_tk_buf *b, const char *s, size_t n);
/* Rust char::is_whitespace (Unicode White_Space). */
int pf_tk_is_whitespace(uint32_t cp);

/* GPT-2 bytes_to_unicode: UTF-8 form of the char standing for byte b (1-2 bytes). */
typedef struct pf_tk_bytemap {
  char enc[256][2];
  uint8_t enc_len[256];
  int16_t dec[324]; /* code point -> byte, -1 if the code point is not a byte char */
} pf_tk_bytemap;
void pf_tk_bytemap_init(pf_tk_bytemap *m);

/* ---- regex (PCRE2, UTF + UCP, JIT when available) ---- */

typedef struct pf_tk_regex {
  pcre2_code *code;
  pcre2_match_data *md;
  pcre2_match_context *mctx;
  pcre2_jit_stack *stack;
} pf_tk_regex;

/* Compile `pattern` (literal != 0: match the string itself). `where` names the key
 * for the error message. */
pf_status pf_tk_regex_compile(const char *pattern, size_t len, int literal, const char *where,
                              pf_tk_regex **out, pf_err *err);
void pf_tk_regex_free(pf_tk_regex *re);
/* Next non-empty match in s[0..n) at or after `from` (valid UTF-8 assumed):
 * 1 and [*ms, *me), 0 when none, -1 on a matching error (resource limit). */
int pf_tk_regex_next(pf_tk_regex *re, const char *s, size_t n, size_t from, size_t *ms, size_t *me);
/* The same with caller-owned match data and context (mctx may be NULL: PCRE2's
 * default JIT stack), for paths that must not touch the shared re->md (decode). */
int pf_tk_regex_find(const pf_tk_regex *re, pcre2_match_data *md, pcre2_match_context *mctx,
                     const char *s, size_t n, size_t from, size_t *ms, size_t *me);

/* ---- JSON helpers (tokenizer_text.c) ---- */

/* Member `key` of object o, NULL when absent or JSON null. */
const cJSON *pf_tk_jget(const cJSON *o, const char *key);
/* Typed getters of o[key]; `where` is the key path of o for messages. A wrong type is
 * PF_ERR_FORMAT. Absent or null: jstr gives NULL (an error when `required`), jbool
 * and jint give `def`; jint also requires a whole number in [lo, hi]. */
pf_status pf_tk_jstr(const cJSON *o, const char *key, const char *where, int required,
                     const char **out, pf_err *err);
pf_status pf_tk_jbool(const cJSON *o, const char *key, const char *where, int def, int *out,
                      pf_err *err);
pf_status pf_tk_jint(const cJSON *o, const char *key, const char *where, int64_t lo, int64_t hi,
                     int64_t def, int64_t *out, pf_err *err);
/* "type" of a component object; error naming `where` when missing. */
pf_status pf_tk_jtype(const cJSON *o, const char *where, const char **out, pf_err *err);
/* A {"String": s} or {"Regex": r} pattern compiled into a regex. */
pf_status pf_tk_jpattern(const cJSON *o, const char *key, const char *where, pf_tk_regex **out,
                         pf_err *err);

/* ---- normalizers (tokenizer_text.c) ---- */

typedef enum pf_tk_norm_kind {
  PF_TK_NFC,
  PF_TK_NFD,
  PF_TK_NFKC,
  PF_TK_NFKD,
  PF_TK_LOWERCASE,
  PF_TK_PREPEND,
  PF_TK_REPLACE,
  PF_TK_STRIP,
  PF_TK_STRIP_ACCENTS,
  PF_TK_NORM_SEQUENCE
} pf_tk_norm_kind;

typedef struct pf_tk_norm {
  pf_tk_norm_kind kind;
  char *text; /* Prepend: the prefix; Replace: the content */
  size_t text_len;
  pf_tk_regex *re;          /* Replace */
  int left, right;          /* Strip */
  struct pf_tk_norm **kids; /* Sequence */
  size_t n_kids;
} pf_tk_norm;

pf_status pf_tk_norm_parse(const cJSON *j, const char *where, pf_tk_norm **out, pf_err *err);
void pf_tk_norm_free(pf_tk_norm *nz);
/* Normalize s[0..n) into *out (replaced; owned by the caller). *at_start is cleared
 * when leading characters are stripped. */
pf_status pf_tk_normalize(const pf_tk_norm *nz, const char *s, size_t n, pf_tk_buf *out,
                          int *at_start, pf_err *err);

/* ---- pre-tokenizers (tokenizer_pre.c) ---- */

typedef enum pf_tk_pre_kind {
  PF_TK_PRE_BYTELEVEL,
  PF_TK_PRE_SPLIT,
  PF_TK_PRE_DIGITS,
  PF_TK_PRE_METASPACE,
  PF_TK_PRE_WHITESPACE,
  PF_TK_PRE_WHITESPACE_SPLIT,
  PF_TK_PRE_SEQUENCE
} pf_tk_pre_kind;

/* HF SplitDelimiterBehavior */
typedef enum pf_tk_behavior {
  PF_TK_REMOVED,
  PF_TK_ISOLATED,
  PF_TK_MERGED_PREV,
  PF_TK_MERGED_NEXT,
  PF_TK_CONTIGUOUS
} pf_tk_behavior;

typedef enum pf_tk_prepend {
  PF_TK_PREPEND_ALWAYS,
  PF_TK_PREPEND_FIRST,
  PF_TK_PREPEND_NEVER
} pf_tk_prepend;

typedef struct pf_tk_pre {
  pf_tk_pre_kind kind;
  pf_tk_regex *re;              /* Split, ByteLevel with use_regex, Whitespace */
  pf_tk_behavior behavior;      /* Split */
  int invert;                   /* Split */
  int add_prefix_space;         /* ByteLevel */
  int individual_digits;        /* Digits */
  uint32_t rep;                 /* Metaspace replacement code point */
  pf_tk_prepend prepend;        /* Metaspace */
  int split;                    /* Metaspace */
  const pf_tk_bytemap *bytemap; /* ByteLevel (borrowed from the tokenizer) */
  struct pf_tk_pre **kids;      /* Sequence */
  size_t n_kids;
} pf_tk_pre;

/* Metaspace "replacement" + "prepend_scheme" (or legacy "add_prefix_space"). */
pf_status pf_tk_metaspace_parse(const cJSON *j, const char *where, uint32_t *rep,
                                pf_tk_prepend *prepend, pf_err *err);
pf_status pf_tk_pre_parse(const cJSON *j, const char *where, const pf_tk_bytemap *bm,
                          pf_tk_pre **out, pf_err *err);
void pf_tk_pre_free(pf_tk_pre *pt);
/* Pre-tokenize *io in place (*tmp is scratch); empty pieces are dropped. */
pf_status pf_tk_pretokenize(const pf_tk_pre *pt, pf_tk_pieces *io, pf_tk_pieces *tmp, pf_err *err);

/* ---- decoders (tokenizer_decode.c) ---- */

typedef enum pf_tk_dec_kind {
  PF_TK_DEC_BYTELEVEL,
  PF_TK_DEC_REPLACE,
  PF_TK_DEC_BYTE_FALLBACK,
  PF_TK_DEC_FUSE,
  PF_TK_DEC_STRIP,
  PF_TK_DEC_METASPACE,
  PF_TK_DEC_SEQUENCE
} pf_tk_dec_kind;

typedef struct pf_tk_dec {
  pf_tk_dec_kind kind;
  pf_tk_regex *re; /* Replace */
  char *text;      /* Replace: content */
  size_t text_len;
  uint32_t cp;           /* Strip: content char; Metaspace: replacement */
  int start, stop;       /* Strip */
  pf_tk_prepend prepend; /* Metaspace */
  const pf_tk_bytemap *bytemap;
  struct pf_tk_dec **kids;
  size_t n_kids;
} pf_tk_dec;

pf_status pf_tk_dec_parse(const cJSON *j, const char *where, const pf_tk_bytemap *bm,
                          pf_tk_dec **out, pf_err *err);
void pf_tk_dec_free(pf_tk_dec *d);
/* Run decoder d over the token strings in *io (pieces of io->text; empty strings
 * allowed), leaving the resulting strings in *io. *tmp is scratch. */
pf_status pf_tk_decode_chain(const pf_tk_dec *d, pf_tk_pieces *io, pf_tk_pieces *tmp, pf_err *err);
/* Append a string to a piece list, keeping empty strings (decoders need them). */
int pf_tk_strs_add(pf_tk_pieces *p, const char *s, size_t n);

/* ---- model.vocab / model.merges from the text (tokenizer_json.c) ---- */

typedef struct pf_tk_fastjson {
  const char *vocab, *merges; /* the values' text in the file, or NULL: left to cJSON */
  size_t vocab_n, merges_n;
  size_t n_vocab, vocab_bytes; /* entries; decoded key bytes + 1 per key */
  size_t n_merges;
  char *stripped; /* the file with the taken values emptied, for cJSON (owned) */
  size_t stripped_n;
} pf_tk_fastjson;

/* Find and check model.vocab / model.merges in the file text buf[0..n) (valid
 * UTF-8). 1: at least one was taken (*fj filled); 0: neither, parse buf with cJSON
 * as it is; -1: out of memory. */
int pf_tk_fastjson_make(const char *buf, size_t n, pf_tk_fastjson *fj);
void pf_tk_fastjson_free(pf_tk_fastjson *fj);

/* Readers of a taken value, entry by entry. */
typedef struct pf_tk_jcur {
  const char *p, *e;
} pf_tk_jcur;
void pf_tk_fast_begin(pf_tk_jcur *c, const char *text, size_t n);
/* The next "key": id; the key decoded into out (room for its bytes + 1, NUL added).
 * 0 after the last. */
int pf_tk_fast_vocab_next(pf_tk_jcur *c, char *out, size_t *len, int32_t *id);
/* The next merge: one string (*pair = 0, in a) or two (a, b), NUL-terminated. 0
 * after the last, -1 out of memory. */
int pf_tk_fast_merge_next(pf_tk_jcur *c, pf_tk_buf *a, pf_tk_buf *b, int *pair);

/* ---- the BPE model (tokenizer_bpe.c) ---- */

typedef struct pf_tk_bpe pf_tk_bpe;

/* Parse `model` (the "model" object); vocab and merges come from fj's text when it
 * took them (fj may be NULL). *max_id receives the largest vocabulary id. */
pf_status pf_tk_bpe_parse(const cJSON *model, const pf_tk_fastjson *fj, pf_tk_bpe **out,
                          int32_t *max_id, pf_err *err);
void pf_tk_bpe_free(pf_tk_bpe *bpe);
/* Append the ids of one pre-token (valid UTF-8, non-empty) to *out. */
pf_status pf_tk_bpe_encode(pf_tk_bpe *bpe, const char *s, size_t n, pf_tk_ids *out, pf_err *err);
/* Vocabulary lookups (model vocabulary only). */
int32_t pf_tk_bpe_lookup(const pf_tk_bpe *bpe, const char *s, size_t n);
const char *pf_tk_bpe_token(const pf_tk_bpe *bpe, int32_t id, size_t *len);
int32_t pf_tk_bpe_max_id(const pf_tk_bpe *bpe);
/* Distinct vocabulary strings (HF's BPE::get_vocab_size, where added tokens start). */
size_t pf_tk_bpe_vocab_len(const pf_tk_bpe *bpe);

/* 64-bit string hash used by every table. */
uint64_t pf_tk_hash(const void *p, size_t n);

/* ---- added tokens (tokenizer_added.c) ---- */

typedef struct pf_tk_added {
  char *content; /* as written in tokenizer.json */
  size_t len;
  char *match; /* what is searched: content, or its normalized form (normalized tokens) */
  size_t match_len;
  int32_t id;
  int special, lstrip, rstrip, single_word, normalized;
} pf_tk_added;

/* Parse the "added_tokens" array (arr may be NULL: none) as HF's deserializer adds
 * them, in file order: an empty content is ignored; a content seen before keeps
 * that entry's id and takes the new flags ("special" is kept if either had it); a
 * content in the model vocabulary takes the model's id; any other gets the next
 * fresh id, counting from pf_tk_bpe_vocab_len. The "id" written in the file must
 * be there but is not used (HF only warns when it differs). A "normalized" token's
 * match string is its content run through `norm` (may be NULL). *max_id is raised to
 * the largest id. On failure *out still holds the *n kept entries (free them). */
pf_status pf_tk_added_parse(const cJSON *arr, const pf_tk_norm *norm, const pf_tk_bpe *bpe,
                            pf_tk_added **out, size_t *n, int32_t *max_id, pf_err *err);
void pf_tk_added_free(pf_tk_added *a, size_t n);

/* Matcher of the tokens of a[0..n) whose `normalized` equals `normalized` (empty
 * strings never match). It points into a[]'s strings: free it first. */
typedef struct pf_tk_trie pf_tk_trie;
pf_status pf_tk_trie_build(const pf_tk_added *a, size_t n, int normalized, pf_tk_trie **out,
                           pf_err *err);
void pf_tk_trie_free(pf_tk_trie *t);
/* Leftmost-longest token in s[from..n): its index in a[], *at and *len; or -1. */
long pf_tk_trie_find(const pf_tk_trie *t, const char *s, size_t n, size_t from, size_t *at,
                     size_t *len);
/* HF AddedVocabulary::find_matches, one token at a time: the next match at or after
 * *scan that passes its single_word test (a failing one is skipped and the search
 * goes on after it). Returns its index and sets *start / *stop to the match widened
 * by lstrip (never before `pos`, where the previous token's span ended) and rstrip,
 * and *scan to the end of the bare match; -1 when there is none. */
long pf_tk_added_next(const pf_tk_trie *t, const pf_tk_added *a, const char *s, size_t n,
                      size_t pos, size_t *scan, size_t *start, size_t *stop);

#endif
