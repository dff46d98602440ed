/* synthetic_internal.h — what synthetic.c (presets, weights, cache) and
 * synthetic_json.c (config.json and the tokenizer files) share. Not a public API. */
#ifndef PF_SYNTHETIC_INTERNAL_H
#define PF_SYNTHETIC_INTERNAL_H

#include <cjson/cJSON.h>

#include "tensor.h"

typedef struct pf_synth_preset {
  const char *name, *model_type, *arch;
  int64_t H, I, L, heads, kv, vocab, max_pos;
  pf_dtype dtype;
  int tied, qkv_bias, qk_norm, llama3_rope;
  double rope_theta;
  const char *json; /* families other than LLaMA: the whole config.json (sorted keys, no
                       torch_dtype); the numeric fields above are then only a summary */
} pf_synth_preset;

/* The preset's config.json (keys sorted as transformers writes them); NULL when out of memory. */
cJSON *pf_synth_config_json(const pf_synth_preset *p, pf_dtype dt);
/* tokenizer.json, tokenizer_config.json, special_tokens_map.json and
 * generation_config.json into `dir` (which exists). */
pf_status pf_synth_write_side_files(const pf_synth_preset *p, const char *dir, pf_err *err);

#endif
