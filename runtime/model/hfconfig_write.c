/* hfconfig_write.c — pf_model_config -> config.json (see hfconfig.h): a copy of the
 * parsed file with the fields pfrun changes written back under the family's key
 * names, and the json.dumps(indent=2) pretty printer used for every JSON pfrun writes.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch.h"
#include "hfconfig.h"
#include "json.h"
#include "strbuf.h"

/* ---- serialise ---- */

static int set_item(cJSON *obj, const char *key, cJSON *v) {
  return pf_json_set(obj, key, v);
}

static int set_int(cJSON *obj, const char *key, int64_t v) {
  return set_item(obj, key, cJSON_CreateNumber((double)v));
}

/* Fields that only matter when there is no raw JSON to start from. */
static int write_all_fields(cJSON *o, const pf_model_config *c) {
  return set_item(o, "model_type",
                  cJSON_CreateString(c->model_type[0] ? c->model_type : "llama")) &&
         set_int(o, "hidden_size", c->hidden_size) &&
         set_int(o, "num_attention_heads", c->num_attention_heads) &&
         set_int(o, "num_key_value_heads", c->num_key_value_heads) &&
         set_int(o, "head_dim", c->head_dim) && set_int(o, "vocab_size", c->vocab_size) &&
         set_int(o, "max_position_embeddings", c->max_position_embeddings) &&
         set_item(o, "rms_norm_eps", cJSON_CreateNumber(c->rms_norm_eps)) &&
         set_item(o, "rope_theta", cJSON_CreateNumber(c->rope_theta)) &&
         set_item(o, "tie_word_embeddings", cJSON_CreateBool(c->tie_word_embeddings)) &&
         set_item(o, "attention_bias", cJSON_CreateBool(c->attention_bias)) &&
         set_item(o, "mlp_bias", cJSON_CreateBool(c->mlp_bias)) &&
         set_item(o, "hidden_act", cJSON_CreateString(c->hidden_act[0] ? c->hidden_act : "silu"));
}

/* A count as the file states it (a whole number in [1, INT64_MAX / 2], read as the
 * parser reads counts), else -1, also for a missing key or a non-number: a key the
 * family's parser ignores may hold anything (GPT-2 reads no num_key_value_heads). */
static int64_t file_count(const cJSON *v) {
  return pf_config_json_pos_int(v, INT64_MAX / 2) ? (int64_t)v->valuedouble : -1;
}

/* Head counts, when they differ from the file (attention-head pruning): the
 * family's heads key (gpt2 "n_head" when the file uses it), num_key_value_heads
 * and head_dim, written explicitly since transformers otherwise derives
 * head_dim = hidden_size / num_attention_heads. Unchanged counts leave the file
 * as it was. */
static int write_head_fields(cJSON *o, const pf_model_config *c) {
  const char *hk = cJSON_GetObjectItemCaseSensitive(o, "num_attention_heads")
                       ? "num_attention_heads"
                   : cJSON_GetObjectItemCaseSensitive(o, "n_head") ? "n_head"
                                                                   : NULL;
  const cJSON *h = hk ? cJSON_GetObjectItemCaseSensitive(o, hk) : NULL;
  const cJSON *kv = cJSON_GetObjectItemCaseSensitive(o, "num_key_value_heads");
  const int64_t kv_file = cJSON_IsNumber(kv) ? file_count(kv) : file_count(h);
  if (h && file_count(h) == c->num_attention_heads && kv_file == c->num_key_value_heads) return 1;
  if (!h && c->num_key_value_heads == c->num_attention_heads &&
      c->num_attention_heads * c->head_dim == c->hidden_size)
    return 1; /* gpt2 without n_head: the default, unchanged */
  return set_int(o, hk ? hk : "num_attention_heads", c->num_attention_heads) &&
         set_int(o, "num_key_value_heads", c->num_key_value_heads) &&
         set_int(o, "head_dim", c->head_dim);
}

/* GPT-2 files may use the generic names (hidden_size, num_hidden_layers, ...), which
 * transformers' GPT2Config maps onto n_* after setting those: a stale generic
 * num_hidden_layers beside a pruned n_layer would win. Written in the n_* spelling,
 * as transformers itself writes. */
static int gpt2_spelling(cJSON *o) {
  static const char *const pairs[][2] = {{"num_hidden_layers", "n_layer"},
                                         {"hidden_size", "n_embd"},
                                         {"num_attention_heads", "n_head"},
                                         {"max_position_embeddings", "n_positions"}};
  for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, pairs[i][0]);
    if (!a) continue;
    if (!cJSON_GetObjectItemCaseSensitive(o, pairs[i][1]) &&
        !set_item(o, pairs[i][1], cJSON_Duplicate(a, 1)))
      return 0;
    while (cJSON_GetObjectItemCaseSensitive(o, pairs[i][0])) /* a file may repeat a key */
      cJSON_DeleteItemFromObjectCaseSensitive(o, pairs[i][0]);
  }
  return 1;
}

static int write_layer_fields(cJSON *o, const pf_model_config *c) {
  int64_t L = c->num_hidden_layers, max = c->intermediate_size;
  int uniform = 1;
  if (c->intermediate_sizes && L > 0) {
    max = c->intermediate_sizes[0];
    for (int64_t i = 1; i < L; i++) {
      if (c->intermediate_sizes[i] != c->intermediate_sizes[0]) uniform = 0;
      if (c->intermediate_sizes[i] > max) max = c->intermediate_sizes[i];
    }
  }
  const pf_arch *arch = c->arch ? c->arch : pf_arch_default();
  if (!set_int(o, arch->key_layers, L) || !write_head_fields(o, c)) return 0;
  /* GPT-2's n_inner: null means 4 * n_embd; kept null when that is still the width */
  const cJSON *ni = cJSON_GetObjectItemCaseSensitive(o, arch->key_inter);
  int keep_null = !strcmp(arch->key_inter, "n_inner") && (!ni || cJSON_IsNull(ni)) && uniform &&
                  max == 4 * c->hidden_size;
  if (!keep_null && !set_int(o, arch->key_inter, max)) return 0;
  if (uniform) {
    cJSON_DeleteItemFromObjectCaseSensitive(o, "intermediate_sizes");
  } else {
    cJSON *a = cJSON_CreateArray();
    for (int64_t i = 0; a && i < L; i++) {
      cJSON *n = cJSON_CreateNumber((double)c->intermediate_sizes[i]);
      if (!n || !cJSON_AddItemToArray(a, n)) {
        cJSON_Delete(n);
        cJSON_Delete(a);
        return 0;
      }
    }
    if (!set_item(o, "intermediate_sizes", a)) return 0;
  }
  if (c->layer_types && !c->layer_types_derived) {
    cJSON *a = cJSON_CreateArray();
    for (int64_t i = 0; a && i < L; i++) {
      cJSON *s = cJSON_CreateString(c->layer_types[i] ? c->layer_types[i] : "full_attention");
      if (!s || !cJSON_AddItemToArray(a, s)) {
        cJSON_Delete(s);
        cJSON_Delete(a);
        return 0;
      }
    }
    if (!set_item(o, "layer_types", a)) return 0;
    /* qwen: max_window_layers too, for readers that derive the types from it */
    if (!strncmp(c->model_type, "qwen", 4) &&
        cJSON_GetObjectItemCaseSensitive(o, "max_window_layers") &&
        !set_int(o, "max_window_layers", c->max_window_layers))
      return 0;
  }
  if (c->torch_dtype[0]) {
    if (!set_item(o, "torch_dtype", cJSON_CreateString(c->torch_dtype))) return 0;
    if (cJSON_IsString(cJSON_GetObjectItemCaseSensitive(o, "dtype")) &&
        !set_item(o, "dtype", cJSON_CreateString(c->torch_dtype)))
      return 0;
  }
  return 1;
}

char *pf_config_to_json(const pf_model_config *c) {
  cJSON *o = c->raw ? cJSON_Duplicate(c->raw, 1) : cJSON_CreateObject();
  char *out = NULL;
  if (!o) return NULL;
  /* the spelling last: the fields above may write a generic name (num_attention_heads) */
  if ((c->raw || write_all_fields(o, c)) && write_layer_fields(o, c) &&
      (strcmp(c->model_type, "gpt2") || gpt2_spelling(o)))
    out = pf_json_print_pretty(o);
  cJSON_Delete(o);
  return out;
}

/* ---- pretty printer (json.dumps(indent=2) layout) ---- */

static void sb_indent(pf_strbuf *b, int depth) {
  for (int i = 0; i < depth; i++)
    pf_sb_put(b, "  ", 2);
}

/* cJSON prints 15 significant digits whenever they read back within DBL_EPSILON
 * of the value (an approximate test), so a save could move a number by an ulp:
 * keep cJSON's text when it reads back exactly, else print 17 digits. A number
 * too large for a double (8e1292 in a file) is infinity to cJSON, which prints
 * null: it is written as 1e999 (or -1e999), which reads back as the same
 * infinity here and in Python's json, so the saved file means what the read one
 * did (found by fuzz_config's round trip: an invalid rope value became "missing"). */
static void sb_number(pf_strbuf *b, const cJSON *v) {
  const double d = v->valuedouble;
  if (isinf(d)) {
    pf_sb_str(b, d > 0 ? "1e999" : "-1e999");
    return;
  }
  char *s = cJSON_PrintUnformatted(v);
  if (!s) {
    b->oom = 1;
    return;
  }
  char exact[40];
  const char *w = s;
  if (isfinite(d) && strtod(s, NULL) != d) {
    snprintf(exact, sizeof exact, "%.17g", d);
    w = exact;
  }
  pf_sb_str(b, w);
  /* a float in the file stays one, as json.dumps writes a Python float: 32.0, not 32 */
  if ((v->type & PF_JSON_FLOAT_LITERAL) && isfinite(d) && !strpbrk(w, ".eE")) pf_sb_str(b, ".0");
  free(s);
}

static void sb_value(pf_strbuf *b, const cJSON *v, int depth) {
  int obj = cJSON_IsObject(v);
  if (obj || cJSON_IsArray(v)) {
    const cJSON *e = v->child;
    if (!e) {
      pf_sb_str(b, obj ? "{}" : "[]");
      return;
    }
    pf_sb_str(b, obj ? "{\n" : "[\n");
    for (; e; e = e->next) {
      sb_indent(b, depth + 1);
      if (obj) {
        pf_sb_json_string(b, e->string ? e->string : "");
        pf_sb_put(b, ": ", 2);
      }
      sb_value(b, e, depth + 1);
      pf_sb_str(b, e->next ? ",\n" : "\n");
    }
    sb_indent(b, depth);
    pf_sb_str(b, obj ? "}" : "]");
    return;
  }
  if (cJSON_IsString(v)) {
    pf_sb_json_string(b, v->valuestring);
    return;
  }
  if (cJSON_IsNumber(v)) {
    sb_number(b, v);
    return;
  }
  char *s = cJSON_PrintUnformatted(v);
  if (!s) {
    b->oom = 1;
    return;
  }
  pf_sb_str(b, s);
  free(s);
}

char *pf_json_print_pretty(const cJSON *v) {
  pf_strbuf b = {0};
  if (!v) return NULL;
  sb_value(&b, v, 0);
  pf_sb_put(&b, "\n", 1);
  return pf_sb_take(&b);
}
