/* hfconfig_rope.c — what a parsed config means per layer: RoPE parameters (default,
 * linear, llama3, yarn, longrope with its short/long switch, partial rotary, the
 * local base of sliding layers) and each layer's sliding window. Pure functions of
 * pf_model_config (hfconfig.h); the parsing is in hfconfig.c. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "hfconfig.h"
#include "kernels/kernels.h"

/* transformers' _compute_longrope_parameters: the context it was trained on is the
 * top-level original_max_position_embeddings when present (Phi-3: factor =
 * max_position_embeddings / it), else max_position_embeddings (factor from
 * rope_scaling); attention factor sqrt(1 + ln f / ln original) when f > 1 unless
 * given. `lng` picks long_factor. */
static pf_status longrope_params(const pf_model_config *c, pf_rope_params *out, int lng,
                                 pf_err *err) {
  const pf_rope_scaling *r = &c->rope_scaling;
  const int64_t half = (out->rotary_dim ? out->rotary_dim : out->head_dim) / 2;
  const double *f = lng ? r->long_factor : r->short_factor;
  const int64_t n = lng ? r->n_long : r->n_short;
  if (!r->short_factor || !r->long_factor || n != half)
    return pf_err_set(err, PF_ERR_INVALID,
                      "rope_scaling (longrope): expected short_factor and long_factor lists of "
                      "%lld numbers (half the rotary width), got %lld and %lld",
                      (long long)half, (long long)r->n_short, (long long)r->n_long);
  double orig = (double)c->max_position_embeddings, factor = r->factor;
  if (c->original_max_position_embeddings > 0) {
    orig = (double)c->original_max_position_embeddings;
    factor = (double)c->max_position_embeddings / orig;
  }
  if (!(factor > 0) && !(r->attention_factor > 0))
    return pf_err_set(err, PF_ERR_INVALID,
                      "rope_scaling (longrope): expected \"factor\" or an "
                      "original_max_position_embeddings key");
  out->ext_factors = f;
  out->factor = factor;
  out->attention_factor = r->attention_factor > 0 ? r->attention_factor
                          : factor <= 1.0         ? 1.0
                                                  : sqrt(1.0 + log(factor) / log(orig));
  return PF_OK;
}

pf_status pf_config_rope_long(const pf_model_config *c, pf_rope_params *out, int64_t *after,
                              pf_err *err) {
  *after = 0;
  pf_status s = pf_config_rope_params(c, out, err);
  if (s != PF_OK || out->rope_type != PF_ROPE_LONGROPE) return s;
  *after = c->original_max_position_embeddings > 0 ? c->original_max_position_embeddings
                                                   : c->max_position_embeddings;
  return longrope_params(c, out, 1, err);
}

pf_status pf_config_rope_params(const pf_model_config *c, pf_rope_params *out, pf_err *err) {
  const pf_rope_scaling *r = &c->rope_scaling;
  *out = pf_rope_default_params();
  if (r->problem[0]) return pf_err_set(err, PF_ERR_INVALID, "%s", r->problem);
  pf_status s = pf_rope_type_parse(r->rope_type, &out->rope_type, err);
  if (s != PF_OK) return s;
  out->rope_theta = c->rope_theta;
  out->head_dim = c->head_dim;
  if (c->partial_rotary_factor > 0 && c->partial_rotary_factor < 1.0) {
    /* int(head_dim * factor), as transformers truncates it */
    out->rotary_dim = (int64_t)((double)c->head_dim * c->partial_rotary_factor);
    if (out->rotary_dim < 2 || out->rotary_dim % 2)
      return pf_err_set(err, PF_ERR_UNSUPPORTED,
                        "partial rotary: head_dim %lld * %g = %lld rotated features: expected an "
                        "even number >= 2",
                        (long long)c->head_dim, c->partial_rotary_factor,
                        (long long)out->rotary_dim);
  }
  if (out->rope_type == PF_ROPE_DEFAULT) return PF_OK;
  if (out->rope_type == PF_ROPE_LONGROPE) return longrope_params(c, out, 0, err);
  if (!(r->factor > 0))
    return pf_err_set(err, PF_ERR_INVALID,
                      "rope_scaling (%s): expected a positive \"factor\", got %g", r->rope_type,
                      r->factor);
  out->factor = r->factor;
  if (out->rope_type == PF_ROPE_YARN) {
    if (!(r->attention_factor >= 0) || !(r->beta_fast >= 0) || !(r->beta_slow >= 0))
      return pf_err_set(err, PF_ERR_INVALID,
                        "rope_scaling (yarn): expected non-negative attention_factor, beta_fast "
                        "and beta_slow");
    /* transformers 4.4x: 0.1 ln(factor) + 1 unless given */
    out->attention_factor =
        r->attention_factor > 0 ? r->attention_factor : 0.1 * log(r->factor) + 1.0;
    out->beta_fast = r->beta_fast;
    out->beta_slow = r->beta_slow;
    out->max_position_embeddings = c->max_position_embeddings;
    return PF_OK;
  }
  if (out->rope_type != PF_ROPE_LLAMA3) return PF_OK;
  const double orig = r->original_max_position_embeddings;
  /* <= 2^30 like max_position_embeddings (and so inside int64_t before the cast) */
  if (!(r->low_freq_factor > 0) || !(r->high_freq_factor > r->low_freq_factor) || !(orig >= 1) ||
      !(orig <= (double)((int64_t)1 << 30)) || orig != floor(orig))
    return pf_err_set(err, PF_ERR_INVALID,
                      "rope_scaling (llama3): expected 0 < low_freq_factor < high_freq_factor and "
                      "an integer original_max_position_embeddings in [1, 2^30], got %g, %g, %g",
                      r->low_freq_factor, r->high_freq_factor, orig);
  out->low_freq_factor = r->low_freq_factor;
  out->high_freq_factor = r->high_freq_factor;
  out->original_max_position_embeddings = (int64_t)orig;
  return PF_OK;
}

pf_status pf_config_layer_rope(const pf_model_config *c, int64_t i, pf_rope_params *out,
                               pf_err *err) {
  pf_status s = pf_config_rope_params(c, out, err);
  if (s != PF_OK || c->rope_local_base_freq <= 0 || pf_config_layer_window(c, i) == 0) return s;
  out->rope_type = PF_ROPE_DEFAULT;
  out->rope_theta = c->rope_local_base_freq;
  return PF_OK;
}

/* transformers reads layer_types where a family has per-layer attention types
 * (gemma2/3, qwen2/3, and the newer families pfrun runs LLaMA-shaped): LLaMA never
 * slides and Mistral and Phi-3 slide in every layer whatever the key says
 * (MistralConfig warns that it ignores it and points to Ministral). */
static int reads_layer_types(const pf_model_config *c) {
  return strcmp(c->model_type, "llama") && strcmp(c->model_type, "mistral") &&
         strcmp(c->model_type, "phi3");
}

int64_t pf_config_layer_window(const pf_model_config *c, int64_t i) {
  if (c->sliding_window <= 0 || i < 0 || i >= c->num_hidden_layers) return 0;
  if (c->layer_types && reads_layer_types(c)) {
    if (c->layer_types[i] && !strcmp(c->layer_types[i], "sliding_attention"))
      return c->sliding_window;
    return 0;
  }
  if (!strcmp(c->model_type, "mistral") || !strcmp(c->model_type, "phi3")) return c->sliding_window;
  if (!strncmp(c->model_type, "qwen", 4) && i >= c->max_window_layers) return c->sliding_window;
  return 0;
}
