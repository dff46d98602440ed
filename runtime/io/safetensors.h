/* safetensors.h — mmap reader (single file or sharded folder) and streaming writer.
 *
 * Format: 8-byte little-endian header length N, N bytes of JSON
 * {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
 *  "__metadata__": {"k": "v"}}, then the data section. Offsets are relative to
 * the data section. The reader validates everything before handing out views:
 * header size and JSON, dtypes (F32/F16/BF16 supported; others are a clear
 * PF_ERR_UNSUPPORTED), shape × dtype size == byte range, ranges inside the
 * file, no overlapping ranges, duplicate names. Sharded folders are read through
 * model.safetensors.index.json (every weight_map entry must exist in its shard).
 */
#ifndef PF_SAFETENSORS_H
#define PF_SAFETENSORS_H

#include "tensor.h"

/* Bounds on what a header may declare (over a bound: PF_ERR_FORMAT). */
#define PF_ST_MAX_HEADER (100u * 1024u * 1024u)
#define PF_ST_MAX_TENSORS 1000000
#define PF_ST_MAX_SHARDS 100000

typedef struct pf_st_reader pf_st_reader;

/* Open `path`: a .safetensors file, a model.safetensors.index.json file, or a
 * folder holding model.safetensors or model.safetensors.index.json. */
pf_status pf_st_open(const char *path, pf_st_reader **out, pf_err *err);
void pf_st_close(pf_st_reader *r); /* NULL ok; views handed out stay valid */

size_t pf_st_count(const pf_st_reader *r);
const char *pf_st_name(const pf_st_reader *r, size_t i); /* sorted by name */
/* 1 if present. */
int pf_st_has(const pf_st_reader *r, const char *name);
/* The header's shape of `name` (shape has PF_MAX_DIMS entries): its ndim, or -1 when
 * absent. Reads no tensor bytes. */
int pf_st_shape(const pf_st_reader *r, const char *name, int64_t *shape);
/* New reference to a view over the mapped bytes. PF_ERR_NOT_FOUND names the
 * tensor and the file(s) searched. */
pf_status pf_st_get(const pf_st_reader *r, const char *name, pf_tensor **out, pf_err *err);
/* Value of __metadata__[key] from the first shard, or NULL. */
const char *pf_st_metadata(const pf_st_reader *r, const char *key);
/* Number of shard files and total data bytes of all tensors. */
size_t pf_st_shard_count(const pf_st_reader *r);
uint64_t pf_st_total_bytes(const pf_st_reader *r);

/* Streaming writer: tensors are written straight from their storage (an mmap
 * or a heap block; ranges of a mapped input file are copied file to file with
 * copy_file_range), never gathered into a model-sized buffer. A shard's writes
 * run on up to 4 threads (OpenMP) at the offsets its header fixes; progress is
 * reported from the calling thread only.
 * Sharding follows Hugging Face save_pretrained: tensors in the given order
 * fill a shard until the next one would exceed max_shard_bytes (a tensor
 * larger than the limit gets a shard of its own). One shard is written as
 * model.safetensors; more as model-0000i-of-0000n.safetensors plus
 * model.safetensors.index.json ({"metadata": {"total_size": N}, "weight_map": {...}}).
 * Header metadata is {"format": "pt"}. The folder `dir` must exist.
 * `as`: the dtype every tensor is written in, converted on the way (pf_convert,
 * a few MB at a time), shard sizes counted in it; NULL writes each tensor in
 * its own dtype. */
typedef struct pf_st_entry {
  const char *name;
  const pf_tensor *tensor; /* must have data (not planned) */
} pf_st_entry;

pf_status pf_st_write(const char *dir, const pf_st_entry *entries, size_t n,
                      uint64_t max_shard_bytes, const pf_dtype *as, const struct pf_ctx *ctx,
                      pf_err *err);

/* The buffers pf_st_write allocates (at most a few MB per writer thread, not growing
 * with the model): when some tensor is lazy (gather) and/or is converted; `largest`:
 * the bytes of the largest such tensor (in its larger dtype, source or output), which
 * caps them for a small model. */
uint64_t pf_st_write_buffer_bytes(int gather, int convert, uint64_t largest);

/* Parse "5GB", "500MB", "2GiB", "1000" (bytes). Decimal units are powers of 10
 * as in Hugging Face ("5GB" = 5e9). */
pf_status pf_parse_size(const char *s, uint64_t *out, pf_err *err);

/* 1 for the attention buffers old Hugging Face files carry and transformers ignores
 * on load (GPT-2 "*.attn.bias" / "*.attn.masked_bias", GPT-NeoX "*.attention.bias" /
 * "*.attention.masked_bias", "*rotary_emb.inv_freq"): the reader skips them by name,
 * before their dtype (BOOL, U8) is looked at, so they are neither listed nor loaded. */
int pf_st_is_legacy_buffer(const char *name);

#endif
