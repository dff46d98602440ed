/* rope.c — rotary position embeddings as Hugging Face transformers computes them.
 *
 * inv_freq follows transformers' modeling_rope_utils in float32, step by step:
 *   default: inv_freq[i] = 1 / theta ** ((2i) / dim)       (float32 pow and divide)
 *   linear:  default / factor
 *   llama3:  _compute_llama3_parameters: wavelen = 2*pi / inv_freq (torch evaluates a
 *            scalar / tensor as reciprocal(tensor) * scalar); low-frequency entries
 *            (wavelen > orig / low_freq_factor) are divided by factor, high-frequency
 *            ones (wavelen < orig / high_freq_factor) kept, the band between blended
 *            with smooth = (orig / wavelen - low) / (high - low).
 * The float32 evaluation order matters at the last bit only; it is kept so the
 * values match transformers exactly in the common case. FMA contraction is turned
 * off for that function because torch rounds after every operation.
 * Tables: freqs = (float)(pos * inv_freq) as HF's float32 outer product, then cos
 * and sin of that float32 value (evaluated in double, rounded once).
 */
#include "kern_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

pf_rope_params pf_rope_default_params(void) {
  /* factor .. original_max_position_embeddings: Llama 3.1's rope_scaling */
  pf_rope_params p = {PF_ROPE_DEFAULT, 10000.0, 128, 8.0, 1.0, 4.0, 8192, 0, 0, 0, 0, 0, NULL};
  return p;
}

pf_status pf_rope_type_parse(const char *s, pf_rope_type *out, pf_err *err) {
  if (!s || !*s || strcasecmp(s, "default") == 0)
    *out = PF_ROPE_DEFAULT;
  else if (strcasecmp(s, "linear") == 0)
    *out = PF_ROPE_LINEAR;
  else if (strcasecmp(s, "llama3") == 0)
    *out = PF_ROPE_LLAMA3;
  else if (strcasecmp(s, "yarn") == 0)
    *out = PF_ROPE_YARN;
  else if (strcasecmp(s, "longrope") == 0 || strcasecmp(s, "su") == 0)
    *out = PF_ROPE_LONGROPE; /* (Phi3Config renames the legacy "su") */
  else
    return pf_err_set(err, PF_ERR_UNSUPPORTED,
                      "rope_scaling.rope_type: expected one of default, linear, llama3, yarn, "
                      "longrope, got '%s'",
                      s);
  return PF_OK;
}

static int64_t rot_dim(const pf_rope_params *p) {
  return p->rotary_dim ? p->rotary_dim : p->head_dim;
}

static pf_status check_params(const pf_rope_params *p, pf_err *err) {
  if (p->head_dim <= 0 || p->head_dim % 2 != 0)
    return pf_err_set(err, PF_ERR_INVALID, "rope: expected an even head_dim > 0, got %lld",
                      (long long)p->head_dim);
  if (p->rotary_dim < 0 || p->rotary_dim % 2 != 0 || p->rotary_dim > p->head_dim)
    return pf_err_set(err, PF_ERR_INVALID,
                      "rope: expected an even rotary width in [2, head_dim %lld], got %lld",
                      (long long)p->head_dim, (long long)p->rotary_dim);
  if (!(p->rope_theta > 0.0))
    return pf_err_set(err, PF_ERR_INVALID, "rope: expected rope_theta > 0, got %g", p->rope_theta);
  if (p->rope_type == PF_ROPE_LONGROPE && !p->ext_factors)
    return pf_err_set(err, PF_ERR_INVALID, "rope_scaling (longrope): expected the factor lists");
  if (p->rope_type == PF_ROPE_YARN && p->max_position_embeddings <= 0)
    return pf_err_set(err, PF_ERR_INVALID, "rope_scaling (yarn): expected max_position_embeddings");
  if (p->rope_type != PF_ROPE_DEFAULT && p->rope_type != PF_ROPE_LONGROPE && !(p->factor > 0.0))
    return pf_err_set(err, PF_ERR_INVALID, "rope_scaling.factor: expected > 0, got %g", p->factor);
  if (p->rope_type == PF_ROPE_LLAMA3) {
    if (!(p->low_freq_factor > 0.0) || !(p->high_freq_factor > p->low_freq_factor))
      return pf_err_set(err, PF_ERR_INVALID,
                        "rope_scaling: expected 0 < low_freq_factor < high_freq_factor, got %g "
                        "and %g",
                        p->low_freq_factor, p->high_freq_factor);
    if (p->original_max_position_embeddings <= 0)
      return pf_err_set(err, PF_ERR_INVALID,
                        "rope_scaling.original_max_position_embeddings: expected > 0, got %lld",
                        (long long)p->original_max_position_embeddings);
  }
  if (p->rope_type < PF_ROPE_DEFAULT || p->rope_type > PF_ROPE_LONGROPE)
    return pf_err_set(err, PF_ERR_INVALID, "rope: unknown rope_type %d", (int)p->rope_type);
  return PF_OK;
}

/* transformers' _compute_yarn_parameters (4.4x): the correction range [low, high]
 * in double (floor / ceil, clamped to [0, d-1]), a float32 linear ramp over the
 * d/2 frequencies, and a blend of the interpolated (1 / (factor * base^(2j/d)))
 * and extrapolated (1 / base^(2j/d)) frequencies. */
static double yarn_dim(double rotations, double d, double base, double ctx) {
  return d * log(ctx / (rotations * 2.0 * M_PI)) / (2.0 * log(base));
}

#if defined(__GNUC__) && !defined(__clang__)
__attribute__((optimize("fp-contract=off")))
#endif
static void
yarn_inv_freq(const pf_rope_params *p, int64_t half, float dim, float base, float *inv) {
  const double d = (double)dim, ctx = (double)p->max_position_embeddings;
  const double fast = p->beta_fast > 0 ? p->beta_fast : 32.0;
  const double slow = p->beta_slow > 0 ? p->beta_slow : 1.0;
  double low = floor(yarn_dim(fast, d, p->rope_theta, ctx));
  double high = ceil(yarn_dim(slow, d, p->rope_theta, ctx));
  low = low < 0 ? 0 : low;
  high = high > d - 1 ? d - 1 : high;
  if (low == high) high += 0.001;
  const float factor = (float)p->factor;
  for (int64_t i = 0; i < half; i++) {
    const float pos = powf(base, (float)(2 * i) / dim);
    const float extra = 1.0f / pos, inter = 1.0f / (factor * pos);
    float ramp = ((float)i - (float)low) / ((float)high - (float)low);
    ramp = ramp < 0.0f ? 0.0f : ramp > 1.0f ? 1.0f : ramp;
    const float ef = 1.0f - ramp;
    inv[i] = inter * (1.0f - ef) + extra * ef;
  }
}

#if defined(__GNUC__) && !defined(__clang__)
__attribute__((optimize("fp-contract=off")))
#endif
static void
inv_freq_f32(const pf_rope_params *p, float *inv) {
  const int64_t half = rot_dim(p) / 2;
  const float dim = (float)rot_dim(p), base = (float)p->rope_theta;
  for (int64_t i = 0; i < half; i++)
    inv[i] = 1.0f / powf(base, (float)(2 * i) / dim);
  if (p->rope_type == PF_ROPE_LINEAR) {
    for (int64_t i = 0; i < half; i++)
      inv[i] = inv[i] / (float)p->factor;
    return;
  }
  if (p->rope_type == PF_ROPE_LONGROPE) { /* 1 / (ext * base^(2j/d)), float32 */
    for (int64_t i = 0; i < half; i++)
      inv[i] = 1.0f / ((float)p->ext_factors[i] * powf(base, (float)(2 * i) / dim));
    return;
  }
  if (p->rope_type == PF_ROPE_YARN) {
    yarn_inv_freq(p, half, dim, base, inv);
    return;
  }
  if (p->rope_type != PF_ROPE_LLAMA3) return;
  const float factor = (float)p->factor, lo = (float)p->low_freq_factor;
  const float old_ctx = (float)p->original_max_position_embeddings;
  const float low_wl = (float)((double)p->original_max_position_embeddings / p->low_freq_factor);
  const float high_wl = (float)((double)p->original_max_position_embeddings / p->high_freq_factor);
  const float band = (float)(p->high_freq_factor - p->low_freq_factor);
  const float two_pi = (float)(2.0 * M_PI);
  for (int64_t i = 0; i < half; i++) {
    const float f = inv[i];
    const float wavelen = (1.0f / f) * two_pi;
    const float llama = wavelen > low_wl ? f / factor : f;
    const float smooth = ((1.0f / wavelen) * old_ctx - lo) / band;
    const float a = (1.0f - smooth) * llama;
    const float smoothed = a / factor + smooth * llama;
    const int medium = !(wavelen < high_wl) && !(wavelen > low_wl);
    inv[i] = medium ? smoothed : llama;
  }
}

pf_status pf_rope_inv_freq(const pf_rope_params *p, float *inv_freq, pf_err *err) {
  if (!p || !inv_freq) return pf_err_set(err, PF_ERR_INVALID, "rope: NULL argument");
  pf_status st = check_params(p, err);
  if (st != PF_OK) return st;
  inv_freq_f32(p, inv_freq);
  return PF_OK;
}

pf_status pf_rope_table_new(const pf_rope_params *p, int64_t max_pos, pf_rope_table **out,
                            pf_err *err) {
  *out = NULL;
  if (!p) return pf_err_set(err, PF_ERR_INVALID, "rope: NULL params");
  pf_status st = check_params(p, err);
  if (st != PF_OK) return st;
  if (max_pos <= 0)
    return pf_err_set(err, PF_ERR_INVALID, "rope: expected max_pos > 0, got %lld",
                      (long long)max_pos);
  const int64_t half = rot_dim(p) / 2;
  pf_rope_table *t = calloc(1, sizeof *t);
  if (!t) goto nomem;
  t->head_dim = p->head_dim;
  t->rot_dim = rot_dim(p);
  t->max_pos = max_pos;
  t->inv_freq = malloc((size_t)half * sizeof(float));
  t->cos = malloc((size_t)(max_pos * half) * sizeof(float));
  t->sin = malloc((size_t)(max_pos * half) * sizeof(float));
  if (!t->inv_freq || !t->cos || !t->sin) goto nomem;
  inv_freq_f32(p, t->inv_freq);
  /* yarn / longrope: cos and sin times the attention factor, in float32 */
  const float mscale = p->attention_factor > 0 ? (float)p->attention_factor : 1.0f;
#pragma omp parallel for schedule(static) if (max_pos * half >= PF_KERN_PAR_MIN)
  for (int64_t pos = 0; pos < max_pos; pos++)
    for (int64_t i = 0; i < half; i++) {
      const float ang = (float)pos * t->inv_freq[i];
      t->cos[pos * half + i] = (float)cos((double)ang) * mscale;
      t->sin[pos * half + i] = (float)sin((double)ang) * mscale;
    }
  *out = t;
  return PF_OK;
nomem:
  pf_rope_table_free(t);
  return pf_err_set(err, PF_ERR_NOMEM, "rope: cannot allocate tables for %lld positions",
                    (long long)max_pos);
}

void pf_rope_table_free(pf_rope_table *t) {
  if (!t) return;
  free(t->inv_freq);
  free(t->cos);
  free(t->sin);
  free(t);
}

static void rope_head(float *restrict x, const float *restrict c, const float *restrict s,
                      int64_t half) {
  float *restrict x2 = x + half;
  for (int64_t i = 0; i < half; i++) {
    const float a = x[i], b = x2[i];
    x[i] = a * c[i] - b * s[i];
    x2[i] = b * c[i] + a * s[i];
  }
}

/* Head j % n_heads of token j / n_heads. */
static inline void rope_at(const pf_rope_table *t, float *x, int64_t ld, int64_t n_heads,
                           const int64_t *pos, int64_t j) {
  const int64_t tok = j / n_heads, h = j % n_heads, half = t->rot_dim / 2;
  rope_head(x + tok * ld + h * t->head_dim, t->cos + pos[tok] * half, t->sin + pos[tok] * half,
            half);
}

pf_status pf_rope_apply(const pf_rope_table *t, float *x, int64_t n_tok, int64_t n_heads,
                        int64_t ld, const int64_t *pos, pf_err *err) {
  if (!t || (n_tok > 0 && (!x || !pos)))
    return pf_err_set(err, PF_ERR_INVALID, "rope: NULL argument");
  if (n_tok < 0 || n_heads < 0 || ld < n_heads * t->head_dim)
    return pf_err_set(err, PF_ERR_INVALID,
                      "rope: expected n_tok, n_heads >= 0 and ld >= %lld, got %lld, %lld, %lld",
                      (long long)(n_heads * t->head_dim), (long long)n_tok, (long long)n_heads,
                      (long long)ld);
  for (int64_t i = 0; i < n_tok; i++)
    if (pos[i] < 0 || pos[i] >= t->max_pos)
      return pf_err_set(err, PF_ERR_INVALID,
                        "rope: token %lld: expected a position in [0, %lld), got %lld",
                        (long long)i, (long long)t->max_pos, (long long)pos[i]);
  const int64_t half = t->rot_dim / 2, total = n_tok * n_heads;
  PF_PAR_FOR(total > 1 && total * half >= PF_KERN_PAR_MIN, j, total,
             rope_at(t, x, ld, n_heads, pos, j));
  return PF_OK;
}
