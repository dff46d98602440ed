/* synthetic.h — seeded synthetic LLaMA-family checkpoints (tests, demo, benchmarks).
 *
 * Writes a complete Hugging Face folder: config.json, model.safetensors (or
 * shards), tokenizer.json (a small byte-level BPE over the synthetic vocabulary),
 * tokenizer_config.json, special_tokens_map.json, generation_config.json.
 * Weights are drawn from a seeded xorshift generator (N(0, 0.02)-like), norms
 * are 1 + small noise, so every byte is a pure function of (preset, seed, dtype).
 *
 * Presets:
 *   llama-tiny   H=64   I=176  L=4  heads=4  kv=2  vocab=320  F32 untied
 *   llama-small  H=128  I=352  L=6  heads=4  kv=2  vocab=320  F32 tied
 *   qwen2-tiny   as llama-tiny with q/k/v bias, model_type qwen2
 *   qwen3-tiny   as llama-tiny with q_norm/k_norm, layer_types, model_type qwen3
 *   mistral-tiny as llama-tiny, model_type mistral
 *   llama-1b     Llama-3.2-1B shape: H=2048 I=8192 L=16 heads=32 kv=8 vocab=128256,
 *                tied, BF16 (2.5 GB; benchmarks only)
 *   llama-medium H=768  I=2048 L=12 heads=12 kv=4  vocab=320  F32 tied (75 M parameters,
 *                300 MB: big enough that a save takes a while, for the fault tests)
 *   (six tiny presets of the other families: gemma, gemma2, gemma3, phi3, gpt2, neox)
 *   llama-7b     Llama-2-7B shape: H=4096 I=11008 L=32 heads=32 kv=32 vocab=32000,
 *                untied, BF16 (13.5 GB; the memory benchmark of bench/width_prune.sh)
 */
#ifndef PF_SYNTHETIC_H
#define PF_SYNTHETIC_H

#include "model.h"

typedef struct pf_synth_opts {
  const char *preset; /* see above */
  uint64_t seed;      /* default 1234 */
  int have_dtype;     /* override the preset's dtype */
  pf_dtype dtype;
} pf_synth_opts;

/* List of preset names, NULL-terminated. */
const char *const *pf_synth_presets(void);
/* Write the checkpoint into `dir` (created; must not exist or be empty). Written
 * through a temporary folder and renamed, like every pfrun output. */
pf_status pf_synth_write(const pf_synth_opts *opts, const char *dir, const pf_ctx *ctx,
                         pf_err *err);
/* "synthetic:NAME[@SEED][:DTYPE]" -> folder in the cache
 * ($PFRUN_CACHE, else $XDG_CACHE_HOME/pfrun, else ~/.cache/pfrun)/synthetic/NAME-sSEED-DTYPE,
 * written on first use. *out_dir is malloc'd. */
pf_status pf_synth_resolve(const char *spec, char **out_dir, const pf_ctx *ctx, pf_err *err);
/* A synthetic model without its weights being written, for dry runs and for
 * tokenizing: the cached checkpoint when it is complete in the cache (loaded as
 * pf_model_load does), else the planned model (shapes only, every tensor
 * planned) whose source_dir is "<cache folder>.plan", where its config.json (the
 * checkpoint's, byte for byte), tokenizer and side files are written once (a few
 * KB, no weights; pf_model_plan_dir reads it). Named by the spec either way. */
pf_status pf_synth_open_plan(const char *spec, pf_model **out, pf_err *err);
/* 1 if `path` starts with "synthetic:". */
int pf_synth_is_spec(const char *path);
/* 1 if dir is inside the synthetic models' cache (<cache>/synthetic), which only
 * pfrun writes: a checkpoint saved there would be served as a preset. */
int pf_synth_in_cache(const char *dir);

#endif
