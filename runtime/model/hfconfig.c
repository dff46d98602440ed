/* hfconfig.c — Hugging Face config.json <-> pf_model_config (see hfconfig.h).
 *
 * Parsing is strict about types (an integer key must hold a positive integer,
 * booleans must be true/false) because a wrong width read here turns into a
 * confusing shape error much later. Defaults follow transformers' config
 * classes for each model_type. The parsed JSON is kept in `raw` so that every
 * key we do not model survives a save.
 */
#include "hfconfig.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch.h"
#include "fsutil.h"
#include "json.h"
#include "kernels/kernels.h"

#define PF_CONFIG_MAX_BYTES ((size_t)16 << 20)
#define PF_MAX_DIM ((int64_t)1 << 24)
#define PF_MAX_LAYERS ((int64_t)4096)
#define PF_MAX_VOCAB ((int64_t)1 << 22)
/* Nesting of the whole file. cJSON stops at 1000, but the pretty printer indents
 * every line by its depth: a 16 MB file of values nested 999 deep would print as
 * gigabytes. Real configs nest 3-4 levels (rope_scaling, quantization_config). */
#define PF_CONFIG_MAX_DEPTH 64

/* ---- value helpers ---- */

/* Short printable form of a JSON value for messages: "abc" (quoted), 64.5, null. */
static void describe(const cJSON *v, char *buf, size_t n) {
  if (cJSON_IsNumber(v) && !isfinite(v->valuedouble)) { /* cJSON prints it as null */
    snprintf(buf, n, "a number beyond the range of a double (%s)",
             v->valuedouble > 0   ? "+inf"
             : v->valuedouble < 0 ? "-inf"
                                  : "nan");
    return;
  }
  char *s = cJSON_PrintUnformatted(v);
  if (!s) {
    snprintf(buf, n, "(a value)");
    return;
  }
  if (strlen(s) > 60)
    snprintf(buf, n, "%.57s...", s);
  else
    snprintf(buf, n, "%s", s);
  free(s);
}

static const cJSON *get(const cJSON *root, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
  return (v && !cJSON_IsNull(v)) ? v : NULL;
}

int pf_config_json_pos_int(const struct cJSON *v, int64_t max) {
  if (!cJSON_IsNumber(v)) return 0;
  double d = v->valuedouble;
  return isfinite(d) && d == floor(d) && d >= 1 && d <= (double)max;
}

static pf_status bad_value(const char *name, const char *key, const char *expect, const cJSON *v,
                           pf_err *err) {
  char got[80];
  describe(v, got, sizeof got);
  return pf_err_set(err, PF_ERR_INVALID, "%s: key \"%s\": expected %s, got %s", name, key, expect,
                    got);
}

/* Positive integer key. Absent/null: *out = def, or an error when required. */
static pf_status get_int(const cJSON *root, const char *name, const char *key, int required,
                         int64_t def, int64_t max, int64_t *out, pf_err *err) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
  if (!v || (cJSON_IsNull(v) && !required)) {
    if (required)
      return pf_err_set(err, PF_ERR_INVALID, "%s: missing required key \"%s\"", name, key);
    *out = def;
    return PF_OK;
  }
  if (cJSON_IsNumber(v) && pf_config_json_pos_int(v, INT64_MAX / 2) &&
      !pf_config_json_pos_int(v, max))
    return pf_err_set(err, PF_ERR_INVALID,
                      "%s: key \"%s\": %.0f is larger than the supported maximum %lld", name, key,
                      v->valuedouble, (long long)max);
  if (!pf_config_json_pos_int(v, max)) return bad_value(name, key, "a positive integer", v, err);
  *out = (int64_t)v->valuedouble;
  return PF_OK;
}

static pf_status get_pos_num(const cJSON *root, const char *name, const char *key, double def,
                             double *out, pf_err *err) {
  const cJSON *v = get(root, key);
  if (!v) {
    *out = def;
    return PF_OK;
  }
  if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble <= 0)
    return bad_value(name, key, "a positive number", v, err);
  *out = v->valuedouble;
  return PF_OK;
}

static pf_status get_bool(const cJSON *root, const char *name, const char *key, int def, int *out,
                          pf_err *err) {
  const cJSON *v = get(root, key);
  if (!v) {
    *out = def;
    return PF_OK;
  }
  if (!cJSON_IsBool(v)) return bad_value(name, key, "true or false", v, err);
  *out = cJSON_IsTrue(v) ? 1 : 0;
  return PF_OK;
}

/* String key copied into buf[n] ("" or def when absent). */
static pf_status get_str(const cJSON *root, const char *name, const char *key, const char *def,
                         char *buf, size_t n, pf_err *err) {
  const cJSON *v = get(root, key);
  if (!v) {
    snprintf(buf, n, "%s", def);
    return PF_OK;
  }
  if (!cJSON_IsString(v)) return bad_value(name, key, "a string", v, err);
  if (strlen(v->valuestring) >= n)
    return pf_err_set(err, PF_ERR_INVALID,
                      "%s: key \"%s\": expected at most %zu characters, got %zu", name, key, n - 1,
                      strlen(v->valuestring));
  snprintf(buf, n, "%s", v->valuestring);
  return PF_OK;
}

/* ---- parse ---- */

static int is_type(const pf_model_config *c, const char *t) {
  return strcmp(c->model_type, t) == 0;
}

static int is_gemma23(const pf_model_config *c) {
  return is_type(c, "gemma2") || is_type(c, "gemma3_text");
}

static pf_status parse_model_type(const cJSON *root, const char *name, pf_model_config *c,
                                  pf_err *err) {
  pf_status s = get_str(root, name, "model_type", "", c->model_type, sizeof c->model_type, err);
  if (s != PF_OK) return s;
  if (is_type(c, "gemma3"))
    return pf_err_set(err, PF_ERR_UNSUPPORTED,
                      "%s: model_type \"gemma3\" is the multimodal Gemma 3 (Gemma3ForConditional"
                      "Generation); pfrun runs its text model: load a Gemma3ForCausalLM checkpoint "
                      "(model_type \"gemma3_text\", e.g. google/gemma-3-1b-pt) or save the language "
                      "model of this one with transformers first",
                      name);
  const cJSON *bidi = get(root, "use_bidirectional_attention");
  if (bidi && cJSON_IsTrue(bidi))
    return pf_err_set(err, PF_ERR_UNSUPPORTED,
                      "%s: use_bidirectional_attention is true (an embedding model such as "
                      "EmbeddingGemma, not a causal language model)",
                      name);
  if (!c->model_type[0]) {
    snprintf(c->model_type, sizeof c->model_type, "llama");
    snprintf(c->warning, sizeof c->warning, "%s: no \"model_type\"; treating it as llama", name);
  }
  c->arch = pf_arch_find(c->model_type);
  if (!c->arch) {
    c->arch = pf_arch_default();
    char known[160] = "";
    for (const char *const *t = pf_arch_model_types(); *t; t++)
      snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s",
               t == pf_arch_model_types() ? "" : ", ", *t);
    snprintf(c->warning, sizeof c->warning,
             "%.100s: model_type \"%s\" is not one of %s; treating it as LLaMA-shaped", name,
             c->model_type, known);
  }
  return PF_OK;
}

/* An integer under the first present of two spellings (GPT-2's n_embd and the
 * generic hidden_size); `key2` may be NULL. */
static pf_status get_int2(const cJSON *root, const char *name, const char *key1, const char *key2,
                          int required, int64_t def, int64_t max, int64_t *out, pf_err *err) {
  const char *key = key1;
  if (key2 && !get(root, key1) && get(root, key2)) key = key2;
  return get_int(root, name, key, required, def, max, out, err);
}

/* The attention's width, num_attention_heads * head_dim, within PF_MAX_DIM (each is,
 * their product need not be). */
static pf_status check_attn_width(const char *name, const pf_model_config *c, pf_err *err) {
  if (c->num_attention_heads * c->head_dim > PF_MAX_DIM)
    return pf_err_set(err, PF_ERR_INVALID,
                      "%s: num_attention_heads * head_dim = %lld is larger than the supported "
                      "maximum %lld",
                      name, (long long)(c->num_attention_heads * c->head_dim),
                      (long long)PF_MAX_DIM);
  return PF_OK;
}

/* GPT-2: GPT2Config's defaults for every dimension, its own key names first,
 * n_inner null = 4 * n_embd. */
static pf_status parse_dims_gpt2(const cJSON *root, const char *name, pf_model_config *c,
                                 pf_err *err) {
  pf_status s;
  if ((s = get_int2(root, name, "n_embd", "hidden_size", 0, 768, PF_MAX_DIM, &c->hidden_size,
                    err)) ||
      (s = get_int2(root, name, "n_layer", "num_hidden_layers", 0, 12, PF_MAX_LAYERS,
                    &c->num_hidden_layers, err)) ||
      (s = get_int2(root, name, "n_head", "num_attention_heads", 0, 12, PF_MAX_DIM,
                    &c->num_attention_heads, err)) ||
      (s = get_int(root, name, "vocab_size", 0, 50257, PF_MAX_VOCAB, &c->vocab_size, err)) ||
      (s = get_int2(root, name, "n_inner", "intermediate_size", 0, 4 * c->hidden_size, PF_MAX_DIM,
                    &c->intermediate_size, err)) ||
      (s = get_int2(root, name, "n_positions", "max_position_embeddings", 0, 1024,
                    (int64_t)1 << 30, &c->max_position_embeddings, err)))
    return s;
  c->num_key_value_heads = c->num_attention_heads;
  /* pfrun extension: a head-pruned checkpoint records head_dim (and
   * num_key_value_heads == n_head); transformers' GPT2Attention cannot load it */
  if (get(root, "head_dim")) {
    s = get_int(root, name, "head_dim", 1, 0, PF_MAX_DIM, &c->head_dim, err);
    return s ? s : check_attn_width(name, c, err);
  }
  if (c->hidden_size % c->num_attention_heads != 0)
    return pf_err_set(err, PF_ERR_INVALID,
                      "%s: n_embd %lld is not divisible by n_head %lld", name,
                      (long long)c->hidden_size, (long long)c->num_attention_heads);
  c->head_dim = c->hidden_size / c->num_attention_heads;
  return PF_OK;
}

static pf_status parse_dims(const cJSON *root, const char *name, pf_model_config *c, pf_err *err) {
  pf_status s;
  if (is_type(c, "gpt2")) return parse_dims_gpt2(root, name, c, err);
  if ((s = get_int(root, name, "hidden_size", 1, 0, PF_MAX_DIM, &c->hidden_size, err)) ||
      (s = get_int(root, name, "intermediate_size", 1, 0, PF_MAX_DIM, &c->intermediate_size,
                   err)) ||
      (s = get_int(root, name, "num_hidden_layers", 1, 0, PF_MAX_LAYERS, &c->num_hidden_layers,
                   err)) ||
      (s = get_int(root, name, "num_attention_heads", 1, 0, PF_MAX_DIM, &c->num_attention_heads,
                   err)) ||
      (s = get_int(root, name, "vocab_size", 1, 0, PF_MAX_VOCAB, &c->vocab_size, err)))
    return s;
  if ((s = get_int(root, name, "num_key_value_heads", 0, c->num_attention_heads, PF_MAX_DIM,
                   &c->num_key_value_heads, err)))
    return s;
  /* transformers: Qwen3Config defaults head_dim to 128; the others derive it. */
  int64_t hd_def = is_type(c, "qwen3") ? 128 : !strncmp(c->model_type, "gemma", 5) ? 256 : 0;
  if (!get(root, "head_dim") && !hd_def) {
    if (c->hidden_size % c->num_attention_heads != 0)
      return pf_err_set(err, PF_ERR_INVALID,
                        "%s: hidden_size %lld is not divisible by num_attention_heads %lld "
                        "(and there is no \"head_dim\")",
                        name, (long long)c->hidden_size, (long long)c->num_attention_heads);
    hd_def = c->hidden_size / c->num_attention_heads;
  }
  if ((s = get_int(root, name, "head_dim", 0, hd_def, PF_MAX_DIM, &c->head_dim, err))) return s;
  int64_t mp_def = 2048;
  if (!strcmp(c->model_type, "mistral")) mp_def = 131072;
  if (!strcmp(c->model_type, "qwen2") || !strcmp(c->model_type, "qwen3")) mp_def = 32768;
  if (!strncmp(c->model_type, "gemma", 5)) mp_def = 8192;
  if (is_type(c, "phi3")) mp_def = 4096;
  if ((s = get_int(root, name, "max_position_embeddings", 0, mp_def, (int64_t)1 << 30,
                   &c->max_position_embeddings, err)))
    return s;
  if (c->num_attention_heads % c->num_key_value_heads != 0)
    return pf_err_set(err, PF_ERR_INVALID,
                      "%s: num_attention_heads %lld is not divisible by num_key_value_heads %lld",
                      name, (long long)c->num_attention_heads, (long long)c->num_key_value_heads);
  return check_attn_width(name, c, err);
}

/* A number key that may be null (= off, 0) with a default when absent. */
static pf_status get_opt_num(const cJSON *root, const char *name, const char *key, double def,
                             double *out, pf_err *err) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
  if (v && cJSON_IsNull(v)) {
    *out = 0;
    return PF_OK;
  }
  return get_pos_num(root, name, key, def, out, err);
}

/* Family defaults (transformers' config classes, ../shared/reference/arch-*.md). */
typedef struct family_defaults {
  const char *eps_key, *act_key, *act_def, *theta_key;
  double eps, theta;
  int tied, attn_bias;
} family_defaults;

static family_defaults defaults_of(const pf_model_config *c) {
  family_defaults d = {"rms_norm_eps", "hidden_act", "silu", "rope_theta", 1e-6, 10000.0, 0, 0};
  if (!strncmp(c->model_type, "gemma", 5)) {
    d.tied = 1;
    d.act_def = "gelu_pytorch_tanh";
    if (is_gemma23(c)) d.act_key = "hidden_activation"; /* gemma (1) reads hidden_act */
    if (is_type(c, "gemma3_text")) d.theta = 1000000.0;
  } else if (is_type(c, "phi3")) {
    d.eps = 1e-5;
  } else if (is_type(c, "gpt2")) {
    d = (family_defaults){"layer_norm_epsilon", "activation_function", "gelu_new", NULL, 1e-5,
                          10000.0, 1, 1};
  } else if (is_type(c, "gpt_neox")) {
    d = (family_defaults){"layer_norm_eps", "hidden_act", "gelu", "rotary_emb_base", 1e-5,
                          10000.0, 0, 1};
  }
  return d;
}

/* gpt_neox's rotary fraction and base under every spelling transformers used
 * (rotary_pct / partial_rotary_factor / rope_parameters.partial_rotary_factor,
 * rotary_emb_base / rope_theta / rope_parameters.rope_theta): each present one is
 * read, two that disagree are refused, none gives def. */
static pf_status neox_spellings(const cJSON *root, const char *name, const char *k0, const char *k1,
                                const char *k2, double def, double *out, pf_err *err) {
  const cJSON *rp = get(root, "rope_parameters");
  const cJSON *v[3] = {get(root, k0), get(root, k1), cJSON_IsObject(rp) ? get(rp, k2) : NULL};
  char sub[64];
  snprintf(sub, sizeof sub, "rope_parameters.%s", k2);
  const char *key[3] = {k0, k1, sub};
  const char *first = NULL;
  *out = def;
  for (int i = 0; i < 3; i++) {
    if (!v[i] || cJSON_IsNull(v[i])) continue;
    if (!cJSON_IsNumber(v[i]) || !isfinite(v[i]->valuedouble) || v[i]->valuedouble <= 0)
      return bad_value(name, key[i], "a positive number", v[i], err);
    if (first && v[i]->valuedouble != *out)
      return pf_err_set(err, PF_ERR_INVALID,
                        "%s: keys \"%s\" (%g) and \"%s\" (%g) disagree: they are two spellings of "
                        "one setting",
                        name, first, *out, key[i], v[i]->valuedouble);
    first = key[i];
    *out = v[i]->valuedouble;
  }
  return PF_OK;
}

static pf_status parse_flags(const cJSON *root, const char *name, pf_model_config *c, pf_err *err) {
  pf_status s;
  int qwen2 = strcmp(c->model_type, "qwen2") == 0, qwen3 = strcmp(c->model_type, "qwen3") == 0;
  family_defaults d = defaults_of(c);
  double theta_def = d.theta;
  /* transformers >= 4.56 may keep rope_theta inside "rope_parameters" (gemma3 in v5:
   * one entry per layer type) */
  const cJSON *rp = get(root, "rope_parameters");
  if (cJSON_IsObject(rp) && cJSON_IsObject(get(rp, "full_attention"))) rp = get(rp, "full_attention");
  const cJSON *rpt = cJSON_IsObject(rp) ? get(rp, "rope_theta") : NULL;
  /* finite: cJSON reads 1e999 as infinity (and would write it back as null) */
  if (rpt && cJSON_IsNumber(rpt) && rpt->valuedouble > 0 && isfinite(rpt->valuedouble))
    theta_def = rpt->valuedouble;
  if (d.theta_key && strcmp(d.theta_key, "rope_theta") && !get(root, d.theta_key) &&
      get(root, "rope_theta"))
    d.theta_key = "rope_theta"; /* gpt_neox written by transformers 4.45+ */
  c->rope_theta = theta_def;
  if ((s = get_pos_num(root, name, d.eps_key, d.eps, &c->rms_norm_eps, err)) ||
      (d.theta_key && (s = get_pos_num(root, name, d.theta_key, theta_def, &c->rope_theta, err))) ||
      (s = get_bool(root, name, "tie_word_embeddings", d.tied, &c->tie_word_embeddings, err)) ||
      (s = get_bool(root, name, "attention_bias", d.attn_bias, &c->attention_bias, err)) ||
      (s = get_bool(root, name, "mlp_bias", 0, &c->mlp_bias, err)) ||
      (s = get_str(root, name, d.act_key, d.act_def, c->hidden_act, sizeof c->hidden_act, err)))
    return s;
  /* newer transformers write "dtype" instead of "torch_dtype" */
  const char *dkey = get(root, "torch_dtype") ? "torch_dtype" : "dtype";
  if ((s = get_str(root, name, dkey, "", c->torch_dtype, sizeof c->torch_dtype, err))) return s;
  if (qwen2) c->attention_bias = 1; /* Qwen2Attention: q/k/v always have a bias */
  if (is_type(c, "gpt2")) c->attention_bias = 1; /* Conv1D always has a bias */
  if (is_type(c, "phi3")) c->attention_bias = 0;  /* Phi3Attention: never */
  c->qk_norm = qwen3 || is_type(c, "gemma3_text");
  /* Gemma 1: current transformers applies hidden_act; 4.39-4.46 applied hidden_activation.
   * Hub files carry both, sometimes different: say which one runs. */
  const cJSON *ha = get(root, "hidden_activation");
  if (is_type(c, "gemma") && cJSON_IsString(ha) && strcmp(ha->valuestring, c->hidden_act) != 0 &&
      !c->warning[0])
    snprintf(c->warning, sizeof c->warning,
             "%.100s: hidden_act \"%.31s\" and hidden_activation \"%.31s\" differ; pfrun applies "
             "hidden_act as current transformers does (4.39-4.46 applied hidden_activation)",
             name, c->hidden_act, ha->valuestring);
  return PF_OK;
}

/* Keys only some families have (defaults from their config classes). */
static pf_status parse_family(const cJSON *root, const char *name, pf_model_config *c,
                              pf_err *err) {
  pf_status s = PF_OK;
  c->partial_rotary_factor = 1.0;
  c->scale_attn_weights = 1;
  if (is_gemma23(c)) {
    int g2 = is_type(c, "gemma2");
    if ((s = get_opt_num(root, name, "query_pre_attn_scalar", 256, &c->query_pre_attn_scalar,
                         err)) ||
        (g2 && (s = get_opt_num(root, name, "attn_logit_softcapping", 50.0,
                                &c->attn_logit_softcapping, err))) ||
        (s = get_opt_num(root, name, "final_logit_softcapping", g2 ? 30.0 : 0.0,
                         &c->final_logit_softcapping, err)))
      return s;
    if (!g2) { /* sliding layers: their own base, never scaled */
      double local = 10000.0;
      const cJSON *rp = get(root, "rope_parameters"), *sl = NULL;
      if (cJSON_IsObject(rp)) sl = get(rp, "sliding_attention");
      const cJSON *lt = cJSON_IsObject(sl) ? get(sl, "rope_theta") : NULL;
      if (lt && cJSON_IsNumber(lt) && lt->valuedouble > 0 && isfinite(lt->valuedouble))
        local = lt->valuedouble;
      s = get_pos_num(root, name, "rope_local_base_freq", local, &c->rope_local_base_freq, err);
    }
  } else if (is_type(c, "phi3")) {
    s = get_pos_num(root, name, "partial_rotary_factor", 1.0, &c->partial_rotary_factor, err);
  } else if (is_type(c, "gpt_neox")) {
    if ((s = neox_spellings(root, name, "rotary_pct", "partial_rotary_factor",
                            "partial_rotary_factor", 0.25, &c->partial_rotary_factor, err)) ||
        (s = neox_spellings(root, name, "rotary_emb_base", "rope_theta", "rope_theta", 10000.0,
                            &c->rope_theta, err)) ||
        (s = get_bool(root, name, "use_parallel_residual", 1, &c->use_parallel_residual, err)))
      return s;
    c->mlp_bias = 1;
  } else if (is_type(c, "gpt2")) {
    int reorder = 0, cross = 0;
    if ((s = get_bool(root, name, "scale_attn_weights", 1, &c->scale_attn_weights, err)) ||
        (s = get_bool(root, name, "scale_attn_by_inverse_layer_idx", 0,
                      &c->scale_attn_by_inverse_layer_idx, err)) ||
        (s = get_bool(root, name, "reorder_and_upcast_attn", 0, &reorder, err)) ||
        (s = get_bool(root, name, "add_cross_attention", 0, &cross, err)))
      return s;
    if (reorder || cross)
      return pf_err_set(err, PF_ERR_UNSUPPORTED, "%s: %s is true: not supported by pfrun", name,
                        reorder ? "reorder_and_upcast_attn" : "add_cross_attention");
    c->mlp_bias = 1;
  }
  if (s == PF_OK && c->partial_rotary_factor > 1.0)
    return pf_err_set(err, PF_ERR_INVALID, "%s: partial rotary factor: expected <= 1, got %g",
                      name, c->partial_rotary_factor);
  return s;
}

/* ---- rope_scaling and sliding windows (lenient: the forward validates) ---- */

/* A number of rope_scaling: 0 when absent, NAN (and a problem note) otherwise. */
static double rope_num(const cJSON *rs, const char *name, const char *key, pf_rope_scaling *r) {
  const cJSON *v = get(rs, key);
  if (!v) return 0.0;
  if (cJSON_IsNumber(v) && isfinite(v->valuedouble)) return v->valuedouble;
  if (!r->problem[0]) {
    char got[64];
    describe(v, got, sizeof got);
    snprintf(r->problem, sizeof r->problem, "%.100s: rope_scaling.%.32s: expected a number, got %s",
             name, key, got);
  }
  return NAN;
}

/* A list of numbers of rope_scaling (longrope factors), malloc'd; a problem note
 * when it is not one (or memory runs out). */
static void rope_list(const cJSON *rs, const char *name, const char *key, double **out, int64_t *n,
                      pf_rope_scaling *r) {
  const cJSON *v = get(rs, key), *e;
  if (!v) return;
  int k = cJSON_IsArray(v) ? cJSON_GetArraySize(v) : -1;
  double *a = k > 0 ? malloc((size_t)k * sizeof *a) : NULL;
  int i = 0;
  if (a)
    cJSON_ArrayForEach(e, v) {
      if (!cJSON_IsNumber(e) || !isfinite(e->valuedouble) || e->valuedouble <= 0) break;
      a[i++] = e->valuedouble;
    }
  if (!a || i != k) {
    free(a);
    if (!r->problem[0])
      snprintf(r->problem, sizeof r->problem,
               "%.100s: rope_scaling.%s: expected a list of positive numbers", name, key);
    return;
  }
  *out = a;
  *n = k;
}

static void parse_rope_scaling(const cJSON *root, const char *name, pf_model_config *c) {
  pf_rope_scaling *r = &c->rope_scaling;
  snprintf(r->rope_type, sizeof r->rope_type, "default");
  const cJSON *rs = get(root, "rope_scaling");
  if (!rs && cJSON_IsObject(get(root, "rope_parameters"))) rs = get(root, "rope_parameters");
  /* gemma3 in transformers v5: one entry per layer type; the scaling is the full
   * layers' (the sliding ones are never scaled) */
  if (rs && cJSON_IsObject(rs) && cJSON_IsObject(get(rs, "full_attention")))
    rs = get(rs, "full_attention");
  if (!rs) return;
  if (!cJSON_IsObject(rs)) {
    char got[64];
    describe(rs, got, sizeof got);
    snprintf(r->problem, sizeof r->problem,
             "%.120s: rope_scaling: expected an object or null, got %s", name, got);
    return;
  }
  const cJSON *t = get(rs, "rope_type");
  if (!t) t = get(rs, "type");
  if (t && cJSON_IsString(t))
    snprintf(r->rope_type, sizeof r->rope_type, "%s", t->valuestring);
  else if (t)
    snprintf(r->problem, sizeof r->problem, "%.120s: rope_scaling.rope_type: expected a string",
             name);
  r->factor = rope_num(rs, name, "factor", r);
  r->low_freq_factor = rope_num(rs, name, "low_freq_factor", r);
  r->high_freq_factor = rope_num(rs, name, "high_freq_factor", r);
  r->original_max_position_embeddings = rope_num(rs, name, "original_max_position_embeddings", r);
  r->attention_factor = rope_num(rs, name, "attention_factor", r);
  r->beta_fast = rope_num(rs, name, "beta_fast", r);
  r->beta_slow = rope_num(rs, name, "beta_slow", r);
  rope_list(rs, name, "short_factor", &r->short_factor, &r->n_short, r);
  rope_list(rs, name, "long_factor", &r->long_factor, &r->n_long, r);
}

/* transformers: MistralConfig keeps sliding_window as given (4096 when the key is
 * absent; null: none); Qwen2/Qwen3Config set it to None unless use_sliding_window. */
static pf_status parse_window(const cJSON *root, const char *name, pf_model_config *c,
                              pf_err *err) {
  pf_status s;
  int use = 1;
  if (!strncmp(c->model_type, "qwen", 4) &&
      (s = get_bool(root, name, "use_sliding_window", 0, &use, err)))
    return s;
  const cJSON *w = get(root, "sliding_window"); /* 0 is taken as "none" too */
  if (w && !(cJSON_IsNumber(w) && w->valuedouble == 0) &&
      (s = get_int(root, name, "sliding_window", 0, 0, (int64_t)1 << 30, &c->sliding_window, err)))
    return s;
  if (!cJSON_GetObjectItemCaseSensitive(root, "sliding_window") &&
      (is_gemma23(c) || is_type(c, "mistral")))
    c->sliding_window = 4096; /* Gemma2Config / Gemma3TextConfig / MistralConfig default */
  /* 0 is valid: every layer slides (written so by a depth prune that kept only those) */
  const cJSON *mw = get(root, "max_window_layers");
  const int mw_zero = cJSON_IsNumber(mw) && mw->valuedouble == 0;
  if (mw_zero) c->max_window_layers = 0;
  if ((!mw_zero && (s = get_int(root, name, "max_window_layers", 0, c->num_hidden_layers,
                                PF_MAX_LAYERS, &c->max_window_layers, err))) ||
      (s = get_int(root, name, "original_max_position_embeddings", 0, 0, (int64_t)1 << 30,
                   &c->original_max_position_embeddings, err)))
    return s;
  if (!use) c->sliding_window = 0;
  return PF_OK;
}

/* gemma2: layer i slides iff i is even; gemma3_text: full iff (i + 1) % P == 0
 * with P = sliding_window_pattern (default 6); qwen2/qwen3 (sliding window on, no
 * layer_types): slides iff i >= max_window_layers. Kept per layer so that a depth
 * prune keeps each layer's type (the index rule shifts once a layer is gone). */
static pf_status derive_layer_types(const cJSON *root, const char *name, pf_model_config *c,
                                    pf_err *err) {
  int64_t P = 6;
  pf_status s;
  if (is_type(c, "gemma3_text") &&
      (s = get_int(root, name, "sliding_window_pattern", 0, 6, PF_MAX_LAYERS, &P, err)))
    return s;
  c->layer_types = calloc((size_t)c->num_hidden_layers, sizeof *c->layer_types);
  if (!c->layer_types) return pf_err_set(err, PF_ERR_NOMEM, "%s: out of memory", name);
  for (int64_t i = 0; i < c->num_hidden_layers; i++) {
    int slide = is_type(c, "gemma2")        ? i % 2 == 0
                : is_type(c, "gemma3_text") ? (i + 1) % P != 0
                                            : i >= c->max_window_layers;
    c->layer_types[i] = strdup(slide ? "sliding_attention" : "full_attention");
    if (!c->layer_types[i]) return pf_err_set(err, PF_ERR_NOMEM, "%s: out of memory", name);
  }
  c->layer_types_derived = 1;
  return PF_OK;
}

static pf_status parse_layer_arrays(const cJSON *root, const char *name, pf_model_config *c,
                                    pf_err *err) {
  int64_t L = c->num_hidden_layers;
  c->intermediate_sizes = malloc((size_t)L * sizeof *c->intermediate_sizes);
  if (!c->intermediate_sizes) return pf_err_set(err, PF_ERR_NOMEM, "%s: out of memory", name);
  const cJSON *is = get(root, "intermediate_sizes");
  if (is) {
    if (!cJSON_IsArray(is)) return bad_value(name, "intermediate_sizes", "a list", is, err);
    if (cJSON_GetArraySize(is) != L)
      return pf_err_set(err, PF_ERR_INVALID,
                        "%s: key \"intermediate_sizes\": expected %lld entries "
                        "(num_hidden_layers), got %d",
                        name, (long long)L, cJSON_GetArraySize(is));
    int64_t i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, is) {
      if (!pf_config_json_pos_int(e, PF_MAX_DIM)) {
        char key[48];
        snprintf(key, sizeof key, "intermediate_sizes[%lld]", (long long)i);
        return bad_value(name, key, "a positive integer <= 16777216", e, err);
      }
      c->intermediate_sizes[i++] = (int64_t)e->valuedouble;
    }
  } else {
    for (int64_t i = 0; i < L; i++)
      c->intermediate_sizes[i] = c->intermediate_size;
  }
  const cJSON *lt = get(root, "layer_types");
  if (!lt && (is_gemma23(c) || (!strncmp(c->model_type, "qwen", 4) && c->sliding_window > 0)))
    return derive_layer_types(root, name, c, err);
  if (!lt) return PF_OK;
  if (!cJSON_IsArray(lt)) return bad_value(name, "layer_types", "a list of strings", lt, err);
  if (cJSON_GetArraySize(lt) != L)
    return pf_err_set(err, PF_ERR_INVALID,
                      "%s: key \"layer_types\": expected %lld entries (num_hidden_layers), got %d",
                      name, (long long)L, cJSON_GetArraySize(lt));
  c->layer_types = calloc((size_t)L, sizeof *c->layer_types);
  if (!c->layer_types) return pf_err_set(err, PF_ERR_NOMEM, "%s: out of memory", name);
  int64_t i = 0;
  const cJSON *e;
  cJSON_ArrayForEach(e, lt) {
    if (!cJSON_IsString(e)) {
      char key[48];
      snprintf(key, sizeof key, "layer_types[%lld]", (long long)i);
      return bad_value(name, key, "a string", e, err);
    }
    c->layer_types[i] = strdup(e->valuestring);
    if (!c->layer_types[i++]) return pf_err_set(err, PF_ERR_NOMEM, "%s: out of memory", name);
  }
  return PF_OK;
}

pf_status pf_config_parse(const char *json, const char *name, pf_model_config *out, pf_err *err) {
  memset(out, 0, sizeof *out);
  if (!name) name = "config.json";
  pf_status s = PF_OK;
  const char *at = NULL;
  int oom = 0;
  cJSON *root = json ? pf_json_parse(json, strlen(json), &at, 0, &oom) : NULL;
  if (!root && oom) return pf_json_nomem(err, name);
  if (!root) {
    long off = (json && at && at >= json) ? (long)(at - json) : 0;
    return pf_err_set(err, PF_ERR_FORMAT, "%s: invalid JSON near byte %ld", name, off);
  }
  if (!cJSON_IsObject(root)) {
    cJSON_Delete(root);
    return pf_err_set(err, PF_ERR_FORMAT, "%s: expected a JSON object at the top level", name);
  }
  if (pf_json_depth(root, PF_CONFIG_MAX_DEPTH) > PF_CONFIG_MAX_DEPTH) {
    cJSON_Delete(root);
    return pf_err_set(err, PF_ERR_FORMAT, "%s: JSON nested deeper than %d levels", name,
                      PF_CONFIG_MAX_DEPTH);
  }
  /* which numbers the file writes as floats (before repeated keys go: matched in order) */
  (void)pf_json_mark_float_literals(root, json, at && at >= json ? (size_t)(at - json) : 0);
  if (!pf_json_keep_last(root)) { /* a repeated key: its last value, as json.loads reads it */
    cJSON_Delete(root);
    return pf_json_nomem(err, name);
  }
  out->raw = root;
  if ((s = parse_model_type(root, name, out, err)) || (s = parse_dims(root, name, out, err)) ||
      (s = parse_flags(root, name, out, err)) || (s = parse_family(root, name, out, err)) ||
      (s = parse_window(root, name, out, err)) ||
      (s = parse_layer_arrays(root, name, out, err)))
    goto fail;
  parse_rope_scaling(root, name, out);
  return PF_OK;
fail:
  pf_config_free(out);
  memset(out, 0, sizeof *out);
  return s;
}

pf_status pf_config_load(const char *dir, pf_model_config *out, pf_err *err) {
  memset(out, 0, sizeof *out);
  char hint[4200];
  if (dir && !pf_path_exists(dir)) {
    /* "owner/name", as OptiPFair's examples give models: a Hub id, which pfrun does not fetch */
    const char *slash = strchr(dir, '/');
    const int hub = slash && slash != dir && dir[0] != '.' && !strchr(slash + 1, '/') && slash[1];
    return pf_err_set(err, PF_ERR_NOT_FOUND, "%s: no such checkpoint folder%s%s", dir,
                      pf_relative_hint(dir, hint, sizeof hint),
                      hub ? " (a Hugging Face Hub id? pfrun reads local folders and downloads "
                            "nothing: huggingface-cli download ID --local-dir DIR fetches one)"
                          : "");
  }
  if (dir && !pf_is_dir(dir))
    return pf_err_set(
        err, PF_ERR_INVALID,
        "%s: expected a checkpoint folder (config.json + *.safetensors), found a file", dir);
  char *path = pf_path_join(dir, "config.json");
  if (!path) return pf_err_set(err, PF_ERR_NOMEM, "%s: out of memory", dir);
  char *text = NULL;
  pf_status s = pf_read_file(path, PF_CONFIG_MAX_BYTES, &text, NULL, err);
  if (s == PF_OK) s = pf_config_parse(text, path, out, err);
  free(text);
  free(path);
  return s;
}

pf_status pf_config_copy(pf_model_config *dst, const pf_model_config *src, pf_err *err) {
  *dst = *src;
  dst->intermediate_sizes = NULL;
  dst->layer_types = NULL;
  dst->raw = NULL;
  size_t L = (size_t)src->num_hidden_layers;
  if (src->raw && !(dst->raw = cJSON_Duplicate(src->raw, 1))) goto nomem;
  dst->rope_scaling.short_factor = dst->rope_scaling.long_factor = NULL;
  const pf_rope_scaling *rs = &src->rope_scaling;
  if (rs->short_factor &&
      !(dst->rope_scaling.short_factor = malloc((size_t)rs->n_short * sizeof(double))))
    goto nomem;
  if (rs->long_factor &&
      !(dst->rope_scaling.long_factor = malloc((size_t)rs->n_long * sizeof(double))))
    goto nomem;
  if (rs->short_factor)
    memcpy(dst->rope_scaling.short_factor, rs->short_factor, (size_t)rs->n_short * sizeof(double));
  if (rs->long_factor)
    memcpy(dst->rope_scaling.long_factor, rs->long_factor, (size_t)rs->n_long * sizeof(double));
  if (src->intermediate_sizes) {
    if (!(dst->intermediate_sizes = malloc((L ? L : 1) * sizeof(int64_t)))) goto nomem;
    memcpy(dst->intermediate_sizes, src->intermediate_sizes, L * sizeof(int64_t));
  }
  if (src->layer_types) {
    if (!(dst->layer_types = calloc(L ? L : 1, sizeof(char *)))) goto nomem;
    for (size_t i = 0; i < L; i++)
      if (src->layer_types[i] && !(dst->layer_types[i] = strdup(src->layer_types[i]))) goto nomem;
  }
  return PF_OK;
nomem:
  pf_config_free(dst);
  memset(dst, 0, sizeof *dst);
  return pf_err_set(err, PF_ERR_NOMEM, "config: out of memory");
}

void pf_config_free(pf_model_config *c) {
  if (!c) return;
  if (c->layer_types)
    for (int64_t i = 0; i < c->num_hidden_layers; i++)
      free(c->layer_types[i]);
  free(c->layer_types);
  free(c->intermediate_sizes);
  free(c->rope_scaling.short_factor);
  free(c->rope_scaling.long_factor);
  c->rope_scaling.short_factor = c->rope_scaling.long_factor = NULL;
  cJSON_Delete(c->raw);
  c->layer_types = NULL;
  c->intermediate_sizes = NULL;
  c->raw = NULL;
}

pf_status pf_config_remove_layer(pf_model_config *c, int64_t i, pf_err *err) {
  int64_t L = c->num_hidden_layers;
  if (i < 0 || i >= L)
    return pf_err_set(err, PF_ERR_INVALID, "remove layer %lld: expected an index in [0, %lld)",
                      (long long)i, (long long)L);
  if (L == 1)
    return pf_err_set(err, PF_ERR_INVALID,
                      "remove layer %lld: the model has only one layer; it cannot be removed",
                      (long long)i);
  size_t tail = (size_t)(L - i - 1);
  if (c->intermediate_sizes)
    memmove(c->intermediate_sizes + i, c->intermediate_sizes + i + 1, tail * sizeof(int64_t));
  if (c->layer_types) {
    free(c->layer_types[i]);
    memmove(c->layer_types + i, c->layer_types + i + 1, tail * sizeof(char *));
    c->layer_types[L - 1] = NULL;
    c->layer_types_derived = 0; /* the index rule no longer holds: write the kept types */
    if (!strncmp(c->model_type, "qwen", 4)) { /* and max_window_layers for readers of it */
      int64_t full = 0, prefix = 1;
      for (int64_t k = 0; k < L - 1; k++) {
        const int slide = c->layer_types[k] && !strcmp(c->layer_types[k], "sliding_attention");
        if (!slide && prefix) full++;
        if (slide) prefix = 0;
        if (!slide && !prefix) full = -1; /* full after sliding: no index rule fits */
      }
      if (full >= 0) c->max_window_layers = full;
    }
  }
  /* per-layer keys of families run LLaMA-shaped, kept as written: a list with one entry
   * per layer loses layer i (SmolLM3 / Llama 4 no_rope_layers), a list of layer indices
   * loses i and renumbers the later ones (Qwen MoE mlp_only_layers) */
  cJSON *nr = c->raw ? cJSON_GetObjectItemCaseSensitive(c->raw, "no_rope_layers") : NULL;
  if (cJSON_IsArray(nr) && cJSON_GetArraySize(nr) == L) cJSON_DeleteItemFromArray(nr, (int)i);
  cJSON *mo = c->raw ? cJSON_GetObjectItemCaseSensitive(c->raw, "mlp_only_layers") : NULL;
  for (int k = cJSON_IsArray(mo) ? cJSON_GetArraySize(mo) - 1 : -1; k >= 0; k--) {
    cJSON *e = cJSON_GetArrayItem(mo, k);
    if (!cJSON_IsNumber(e)) continue;
    if (e->valuedouble == (double)i)
      cJSON_DeleteItemFromArray(mo, k);
    else if (e->valuedouble > (double)i)
      cJSON_SetNumberValue(e, e->valuedouble - 1);
  }
  c->num_hidden_layers = L - 1;
  return PF_OK;
}
