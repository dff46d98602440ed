/* opdata.h — what the data-driven ops (calibrate, importance, evaluate,
 * generate) share: the data-option parameters, loading the model's tokenizer
 * and a dataset, and a model fingerprint for caches. Internal to ops/. */
#ifndef PF_OPDATA_H
#define PF_OPDATA_H

#include "dataset.h"
#include "hash.h"
#include "op.h"
#include "tokenizer.h"

/* The data options, with the same names on every op that reads text (and on the
 * CLI as --data/--samples/...). Put PF_DATA_PARAMS(...) inside a param spec array. */
#define PF_DATA_PARAMS(required, def_samples, def_batch)                                            \
  {                                                                                                 \
      "data",                                                                                       \
      PF_P_STR,                                                                                     \
      required,                                                                                     \
      NULL,                                                                                         \
      NULL,                                                                                         \
      0,                                                                                            \
      0,                                                                                            \
      "text file: .jsonl (one JSON object per line, field text_field) or .txt (paragraphs)"},       \
      {"text_field", PF_P_STR, 0, "text", NULL, 0, 0, "the JSONL field holding the text"},          \
      {"samples", PF_P_INT,                                                                         \
       0,         def_samples,                                                                      \
       NULL,      0,                                                                                \
       1e9,       "use the first N usable samples in file order (blocks when pack); 0 = all"},      \
      {"max_length",                                                                                \
       PF_P_INT,                                                                                    \
       0,                                                                                           \
       "512",                                                                                       \
       NULL,                                                                                        \
       1,                                                                                           \
       1048576,                                                                                     \
       "tokens per sample: longer samples are truncated (the block size when pack)"},               \
      {"min_length", PF_P_INT, 0,       "0",                                                        \
       NULL,         0,        1048576, "skip samples with fewer tokens (special tokens counted)"}, \
      {"batch_size",                                                                                \
       PF_P_INT,                                                                                    \
       0,                                                                                           \
       def_batch,                                                                                   \
       NULL,                                                                                        \
       1,                                                                                           \
       65536,                                                                                       \
       "samples per forward pass (batches in file order, right-padded)"},                           \
  {                                                                                                 \
    "pack", PF_P_BOOL, 0, "false", NULL, 0, 0,                                                      \
        "concatenate the samples and cut them into max_length blocks"                               \
  }

/* pf_data_opts from the validated params (pointers borrow from params). */
pf_data_opts pf_params_data_opts(const pf_value *params);

/* The tokenizer of a model: tokenizer.json in its source folder. Errors name the
 * folder; a tokenizer whose ids do not fit the model's vocabulary is an error
 * ("tokenizer has 32000 ids but the model's embedding has 512 rows"). The last
 * one loaded is kept and handed out again (a new hold, released with
 * pf_tokenizer_free) while its files are unchanged; ops run one at a time. */
pf_status pf_model_tokenizer(const pf_model *m, pf_tokenizer **out, pf_err *err);
/* Drop the kept tokenizer (tests; the process end frees it otherwise). */
void pf_model_tokenizer_forget(void);
/* How many times a tokenizer was read from its files (tests). */
long pf_model_tokenizer_loads(void);

/* Tokenizer + dataset for op params holding the PF_DATA_PARAMS. */
pf_status pf_params_dataset(const pf_model *m, const pf_value *params, pf_tokenizer **tok,
                            pf_dataset **ds, pf_err *err);

/* Hex SHA-256 identifying a model's weights and config: the config JSON, and per
 * tensor its name, dtype, shape and either the identity of the file it was mapped
 * from (pf_storage_identity: device, inode, size, modification and change times when
 * mapped) and its offset, for a lazy selection of such a weight (width pruning,
 * materialised or not) that identity and the kept rows / columns, or the bytes of
 * other derived tensors. A weight file replaced or rewritten, another selection, or a
 * changed derived tensor, changes it; another spelling of the path does not. */
pf_status pf_model_fingerprint(const pf_model *m, char hex[PF_SHA256_HEX], pf_err *err);

/* Encode a prompt with special tokens; errors for an empty result or one that
 * does not fit the model's context. *ids malloc'd. */
pf_status pf_encode_prompt(const pf_model *m, pf_tokenizer *tok, const char *prompt,
                           int32_t **ids, size_t *n, pf_err *err);

/* OptiPFair's time_inference (reference §12): `warmup` untimed greedy runs, then
 * `runs` timed ones of max_new tokens (stopping at eos as generate does);
 * {avg_time, min_time, max_time, tokens_per_second (= generated / avg_time),
 * num_runs, generated_tokens (of the last run)}. */
pf_status pf_time_inference(const pf_model *m, const int32_t *ids, size_t n, int64_t max_new,
                            int64_t runs, int64_t warmup, int32_t eos, pf_value **out,
                            const pf_ctx *ctx, pf_err *err);

/* Dataset statistics as a map {samples, skipped, truncated, rows, batches, tokens}. */
pf_value *pf_data_stats_value(const pf_dataset *ds);

#endif
