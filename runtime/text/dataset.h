/* dataset.h — calibration / evaluation text -> right-padded token batches.
 *
 * Input files (chosen by the extension of `data`, case-insensitive):
 *  - .jsonl: one JSON object per line; the sample is its string field
 *    `text_field` (default "text"). Lines holding only whitespace are skipped.
 *  - .txt:   samples are paragraphs separated by blank (whitespace-only) lines;
 *    a paragraph is its lines joined with "\n" (a final "\r" of a line is dropped).
 * A UTF-8 byte order mark at the start of the file is ignored.
 *
 * Each sample is encoded with the tokenizer (add_special as HF's
 * add_special_tokens), then
 *  - min_length: samples with fewer ids (special tokens counted, before
 *    truncation) are skipped; a sample with no ids at all is always skipped;
 *  - without pack: ids are truncated to the first max_length; the first
 *    `samples` usable samples in file order become the rows (0 = all);
 *  - with pack: the ids of all usable samples are concatenated in file order and
 *    cut into rows of exactly max_length, the remainder dropped; `samples` then
 *    counts rows (blocks).
 * Rows are grouped into batches of batch_size in order (the last may be smaller).
 * Each batch is right-padded to its own longest row with the pad id (opts.pad_id
 * if >= 0, else the tokenizer's eos, else 0) and has a mask (1 token, 0 pad).
 * Reading stops once enough rows are made (lines after that are not parsed,
 * only hashed for the fingerprint).
 *
 * Limits: a line (and a .txt paragraph) at most PF_DATA_MAX_LINE bytes; at most
 * PF_DATA_MAX_SAMPLES samples read; max_length at most PF_DATA_MAX_LENGTH.
 *
 * Errors name the file and line, e.g.
 *   brown.jsonl:12: expected a string field "text", found a number
 *   brown.jsonl:3: malformed JSON at column 17
 *   notes.txt:40: text is not valid UTF-8 at byte 5 of the line
 *   brown.jsonl: no usable samples: all 500 samples have fewer than 600 tokens
 * PF_ERR_NOT_FOUND (missing file), PF_ERR_FORMAT (file contents), PF_ERR_INVALID
 * (options, limits, unsupported kind), PF_ERR_IO, PF_ERR_NOMEM.
 */
#ifndef PF_DATASET_H
#define PF_DATASET_H

#include <stdint.h>

#include "forward.h"
#include "hash.h"
#include "pf.h"
#include "tokenizer.h"

#define PF_DATA_MAX_LINE ((size_t)64 << 20)     /* bytes per line / paragraph */
#define PF_DATA_MAX_SAMPLES ((int64_t)10000000) /* samples read from one file */
#define PF_DATA_MAX_LENGTH ((int64_t)1 << 20)   /* max_length */

/* Option names are the parameter names of recipes, Lua and the CLI. */
typedef struct pf_data_opts {
  const char *data;       /* path of a .jsonl or .txt file (required; borrowed) */
  const char *text_field; /* JSONL field holding the text; default "text" */
  int64_t samples;        /* first N usable samples (blocks when pack); 0 = all; default 0 */
  int64_t max_length;     /* ids per row: truncation / block size; default 512 */
  int64_t min_length;     /* skip samples with fewer ids; default 0 */
  int pack;               /* concatenate and cut into max_length blocks; default 0 */
  int64_t batch_size;     /* rows per batch; default 8 */
  int add_special;        /* the tokenizer's special tokens (e.g. BOS); default 1 */
  int32_t pad_id;         /* padding id; -1 (default) = the tokenizer's eos, else 0 */
} pf_data_opts;

pf_data_opts pf_data_opts_default(void);

typedef struct pf_data_stats {
  int64_t samples_read;      /* samples tokenized (usable + skipped) */
  int64_t samples_used;      /* samples whose ids are in the rows (pack: in the stream read) */
  int64_t samples_skipped;   /* fewer than min_length ids (or none) */
  int64_t samples_truncated; /* not pack: samples longer than max_length */
  int64_t rows;              /* rows over all batches (samples, or blocks when packing) */
  int64_t batches;
  int64_t tokens_total; /* batch cells including padding: sum of batch*seq */
  int64_t tokens_real;  /* cells with mask 1 */
  int64_t max_seq;      /* longest row */
  int32_t pad_id;       /* the pad id used */
} pf_data_stats;

typedef struct pf_dataset pf_dataset;

/* Read, tokenize and batch `o->data` with `tok` (used only during the call).
 * On success the caller owns *out (pf_dataset_free). On failure *out is NULL. */
pf_status pf_dataset_load(const pf_data_opts *o, pf_tokenizer *tok, pf_dataset **out, pf_err *err);
void pf_dataset_free(pf_dataset *ds); /* NULL ok */

int64_t pf_dataset_batch_count(const pf_dataset *ds);
/* Fill *out with batch i (0 <= i < count): ids and mask point into the dataset
 * and stay valid while it lives; mask is never NULL. PF_ERR_INVALID for a bad i. */
pf_status pf_dataset_batch(const pf_dataset *ds, int64_t i, pf_batch *out, pf_err *err);
/* Every batch, in order, as a malloc'd array of pf_dataset_batch_count(ds)
 * (at least one element allocated); free() it. */
pf_status pf_dataset_batches(const pf_dataset *ds, pf_batch **out, pf_err *err);
pf_data_stats pf_dataset_stats(const pf_dataset *ds);
/* Hex SHA-256 of: the data file's contents hash, the file kind, every option
 * except the path (text_field, samples, max_length, min_length, pack,
 * batch_size, add_special, pad_id as given and as resolved) and every batch's
 * shape, ids and mask. A cache key: equal fingerprints mean identical batches
 * from identical input; any changed option or byte of the file changes it
 * (the same bytes at another path do not). Borrowed; valid while ds lives. */
const char *pf_dataset_fingerprint(const pf_dataset *ds);
/* Hex SHA-256 of the data file's whole contents. Borrowed. */
const char *pf_dataset_file_hash(const pf_dataset *ds);

/* ---- the sample reader (shared with `pfrun tokenize --input`) ---- */

/* Called once per sample, in file order. `text` holds len bytes of valid UTF-8,
 * NUL-terminated after them (a .txt paragraph may contain NUL bytes; a JSON
 * "\u0000" escape is refused), valid only during the call. `line` is the
 * sample's first line (1-based). Set *stop to end the parsing early (the rest
 * of the file is still hashed). A non-OK return aborts the read as is: the
 * reader adds no context, so name the file and line in the message. */
typedef pf_status (*pf_data_sample_fn)(void *user_data, const char *text, size_t len, int64_t line,
                                       int *stop, pf_err *err);

/* Parse `path` (.jsonl with `text_field`, or .txt) as described above, calling
 * fn per sample (blank JSONL lines are not samples); checks the limits, JSON shape and UTF-8
 * validity of each text. When sha256_hex is non-NULL it receives the digest of the file's contents.
 * Errors as pf_dataset_load's (file missing, empty, malformed lines, ...). */
pf_status pf_data_read_samples(const char *path, const char *text_field, pf_data_sample_fn fn,
                               void *user_data, char *sha256_hex, pf_err *err);

#endif
