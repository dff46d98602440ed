/* synthetic_json.c — the JSON files of a synthetic checkpoint (see synthetic.h):
 * config.json from the preset, and a small byte-level BPE tokenizer over the
 * synthetic vocabulary with its tokenizer_config.json, special_tokens_map.json
 * and generation_config.json. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "hfconfig.h"
#include "synthetic_internal.h"

/* ---- config.json ---- */

/* Add v (consumed, also on failure) to object o under key k. */
static int add(cJSON *o, const char *k, cJSON *v) {
  if (o && v && cJSON_AddItemToObject(o, k, v)) return 1;
  cJSON_Delete(v);
  return 0;
}
/* add() for a local that is cleaned up later: the local is cleared first. */
static int take(cJSON *o, const char *k, cJSON **v) {
  cJSON *x = *v;
  *v = NULL;
  return add(o, k, x);
}
/* Append v (consumed) to array a. */
static int push(cJSON *a, cJSON *v) {
  if (a && v && cJSON_AddItemToArray(a, v)) return 1;
  cJSON_Delete(v);
  return 0;
}
#define NUM(k, v) ok = ok && add(o, k, cJSON_CreateNumber((double)(v)))
#define BOOL(k, v) ok = ok && add(o, k, cJSON_CreateBool(v))
#define STR(k, v) ok = ok && add(o, k, cJSON_CreateString(v))
#define NUL(k) ok = ok && add(o, k, cJSON_CreateNull())

static cJSON *rope_llama3(void) {
  cJSON *o = cJSON_CreateObject();
  int ok = o != NULL;
  NUM("factor", 32.0);
  NUM("high_freq_factor", 4.0);
  NUM("low_freq_factor", 1.0);
  NUM("original_max_position_embeddings", 8192);
  STR("rope_type", "llama3");
  if (!ok) cJSON_Delete(o);
  return ok ? o : NULL;
}

/* Keys in sorted order, as transformers writes them. */
cJSON *pf_synth_config_json(const pf_synth_preset *p, pf_dtype dt) {
  if (p->json) { /* keys in order, torch_dtype inserted where sorting puts it */
    cJSON *src = cJSON_Parse(p->json), *o = cJSON_CreateObject();
    int ok = src && o, placed = 0;
    while (ok && src->child) {
      cJSON *it = src->child;
      if (!placed && strcmp(it->string, "torch_dtype") > 0) {
        STR("torch_dtype", pf_dtype_torch_name(dt));
        placed = 1;
      }
      char *key = strdup(it->string);
      cJSON_DetachItemViaPointer(src, it);
      ok = ok && key && add(o, key, it);
      free(key);
    }
    if (!placed) STR("torch_dtype", pf_dtype_torch_name(dt));
    cJSON_Delete(src);
    if (!ok) cJSON_Delete(o);
    return ok ? o : NULL;
  }
  int llama = !strcmp(p->model_type, "llama"), qwen = !strncmp(p->model_type, "qwen", 4);
  cJSON *o = cJSON_CreateObject();
  int ok = add(o, "architectures", cJSON_CreateStringArray(&p->arch, 1));
  if (!qwen || !strcmp(p->model_type, "qwen3")) BOOL("attention_bias", 0);
  NUM("attention_dropout", 0.0);
  NUM("bos_token_id", 1);
  NUM("eos_token_id", 2);
  NUM("head_dim", p->H / p->heads);
  STR("hidden_act", "silu");
  NUM("hidden_size", p->H);
  NUM("initializer_range", 0.02);
  NUM("intermediate_size", p->I);
  if (p->qk_norm) {
    cJSON *lt = cJSON_CreateArray();
    for (int64_t i = 0; ok && i < p->L; i++)
      ok = push(lt, cJSON_CreateString("full_attention"));
    ok = take(o, "layer_types", &lt) && ok;
  }
  NUM("max_position_embeddings", p->max_pos);
  if (qwen) NUM("max_window_layers", p->L);
  if (llama) BOOL("mlp_bias", 0);
  STR("model_type", p->model_type);
  NUM("num_attention_heads", p->heads);
  NUM("num_hidden_layers", p->L);
  NUM("num_key_value_heads", p->kv);
  if (llama) NUM("pretraining_tp", 1);
  NUM("rms_norm_eps", p->llama3_rope ? 1e-5 : 1e-6);
  if (p->llama3_rope)
    ok = ok && add(o, "rope_scaling", rope_llama3());
  else
    NUL("rope_scaling");
  NUM("rope_theta", p->rope_theta);
  if (!llama) NUL("sliding_window");
  BOOL("tie_word_embeddings", p->tied);
  STR("torch_dtype", pf_dtype_torch_name(dt));
  BOOL("use_cache", 1);
  if (qwen) BOOL("use_sliding_window", 0);
  NUM("vocab_size", p->vocab);
  if (!ok) cJSON_Delete(o);
  return ok ? o : NULL;
}

/* ---- tokenizer files ---- */

/* GPT-2 bytes_to_unicode: printable bytes stand for themselves, the others
 * are shifted to U+0100 + n. */
static int byte_printable(int b) {
  return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
}

static void byte_token(int b, char *out) {
  int cp = b;
  if (!byte_printable(b)) {
    cp = 256;
    for (int c = 0; c < b; c++)
      cp += !byte_printable(c);
  }
  if (cp < 0x80) {
    out[0] = (char)cp, out[1] = 0;
  } else {
    out[0] = (char)(0xc0 | (cp >> 6)), out[1] = (char)(0x80 | (cp & 0x3f)), out[2] = 0;
  }
}

/* Map a raw string to byte-level token text. */
static void bl_text(const char *raw, char *out, size_t n) {
  out[0] = 0;
  for (const unsigned char *p = (const unsigned char *)raw; *p; p++) {
    char t[4];
    byte_token(*p, t);
    strncat(out, t, n - strlen(out) - 1);
  }
}

/* A few merges for common English pairs; every merged token is new. */
static const char *const merges[][2] = {
    {" ", "t"}, {"h", "e"}, {"t", "h"}, {"i", "n"},   {"e", "r"}, {"a", "n"},
    {" ", "a"}, {"o", "n"}, {"r", "e"}, {" t", "he"}, {"e", "n"}, {"o", "u"},
    {" ", "s"}, {" ", "w"}, {" ", "o"}, {"n", "d"},   {" ", "i"}, {"i", "s"},
    {" ", "b"}, {" ", "c"}, {"e", "d"}, {"in", "g"},  {" ", "f"}, {"a", "t"},
    {" ", "h"}, {"o", "r"}, {"a", "r"}, {"e", "s"},   {" ", "m"}, {"l", "l"},
};
#define N_MERGES (sizeof merges / sizeof merges[0])
static const char *const specials[] = {"<unk>", "<s>", "</s>"};

static cJSON *added_token(int id, const char *content) {
  cJSON *o = cJSON_CreateObject();
  int ok = o != NULL;
  NUM("id", id);
  STR("content", content);
  BOOL("single_word", 0);
  BOOL("lstrip", 0);
  BOOL("rstrip", 0);
  BOOL("normalized", 0);
  BOOL("special", 1);
  if (!ok) cJSON_Delete(o);
  return ok ? o : NULL;
}

static cJSON *piece(const char *kind, const char *id, int type_id) {
  cJSON *o = cJSON_CreateObject(), *in = cJSON_CreateObject();
  if (!o || !in || !cJSON_AddItemToObject(o, kind, in)) {
    cJSON_Delete(o);
    cJSON_Delete(in);
    return NULL;
  }
  if (!cJSON_AddStringToObject(in, "id", id) || !cJSON_AddNumberToObject(in, "type_id", type_id)) {
    cJSON_Delete(o);
    return NULL;
  }
  return o;
}

static cJSON *post_processor(void) {
  cJSON *o = cJSON_CreateObject(), *single = cJSON_CreateArray(), *pair = cJSON_CreateArray();
  cJSON *sp = cJSON_CreateObject(), *bos = cJSON_CreateObject();
  int ok = add(o, "type", cJSON_CreateString("TemplateProcessing")) &&
           push(single, piece("SpecialToken", "<s>", 0)) &&
           push(single, piece("Sequence", "A", 0)) && push(pair, piece("SpecialToken", "<s>", 0)) &&
           push(pair, piece("Sequence", "A", 0)) && push(pair, piece("SpecialToken", "<s>", 1)) &&
           push(pair, piece("Sequence", "B", 1)) && take(o, "single", &single) &&
           take(o, "pair", &pair) && add(bos, "id", cJSON_CreateString("<s>")) &&
           add(bos, "ids", cJSON_CreateIntArray((const int[]){1}, 1)) &&
           add(bos, "tokens", cJSON_CreateStringArray((const char *const[]){"<s>"}, 1)) &&
           take(sp, "<s>", &bos) && take(o, "special_tokens", &sp);
  cJSON_Delete(single);
  cJSON_Delete(pair);
  cJSON_Delete(sp);
  cJSON_Delete(bos);
  if (!ok) cJSON_Delete(o);
  return ok ? o : NULL;
}

static cJSON *byte_level(const char *type, int prefix_space) {
  cJSON *o = cJSON_CreateObject();
  int ok = o != NULL;
  STR("type", type);
  BOOL("add_prefix_space", prefix_space);
  BOOL("trim_offsets", 1);
  BOOL("use_regex", 1);
  if (!ok) cJSON_Delete(o);
  return ok ? o : NULL;
}

static cJSON *bpe_model(void) {
  cJSON *o = cJSON_CreateObject(), *vocab = cJSON_CreateObject(), *mg = cJSON_CreateArray();
  int ok = o && vocab && mg, id = 0;
  for (size_t i = 0; ok && i < 3; i++)
    ok = add(vocab, specials[i], cJSON_CreateNumber(id++));
  for (int b = 0; ok && b < 256; b++) {
    char t[4];
    byte_token(b, t);
    ok = add(vocab, t, cJSON_CreateNumber(id++));
  }
  for (size_t i = 0; ok && i < N_MERGES; i++) {
    char l[32], r[32], both[64], m[72];
    bl_text(merges[i][0], l, sizeof l);
    bl_text(merges[i][1], r, sizeof r);
    snprintf(both, sizeof both, "%s%s", l, r);
    snprintf(m, sizeof m, "%s %s", l, r);
    ok = add(vocab, both, cJSON_CreateNumber(id++)) && push(mg, cJSON_CreateString(m));
  }
  STR("type", "BPE");
  NUL("dropout");
  NUL("unk_token");
  NUL("continuing_subword_prefix");
  NUL("end_of_word_suffix");
  BOOL("fuse_unk", 0);
  BOOL("byte_fallback", 0);
  BOOL("ignore_merges", 0);
  ok = ok && take(o, "vocab", &vocab) && take(o, "merges", &mg);
  cJSON_Delete(vocab);
  cJSON_Delete(mg);
  if (!ok) cJSON_Delete(o);
  return ok ? o : NULL;
}

static cJSON *make_tokenizer(void) {
  cJSON *o = cJSON_CreateObject(), *at = cJSON_CreateArray();
  int ok = o && at;
  for (int i = 0; ok && i < 3; i++)
    ok = push(at, added_token(i, specials[i]));
  STR("version", "1.0");
  NUL("truncation");
  NUL("padding");
  ok = ok && take(o, "added_tokens", &at);
  NUL("normalizer");
  ok = ok && add(o, "pre_tokenizer", byte_level("ByteLevel", 0)) &&
       add(o, "post_processor", post_processor()) &&
       add(o, "decoder", byte_level("ByteLevel", 1)) && add(o, "model", bpe_model());
  cJSON_Delete(at);
  if (!ok) cJSON_Delete(o);
  return ok ? o : NULL;
}

static cJSON *make_tokenizer_config(int64_t max_len) {
  cJSON *o = cJSON_CreateObject();
  int ok = o != NULL;
  BOOL("add_bos_token", 1);
  BOOL("add_eos_token", 0);
  STR("bos_token", "<s>");
  BOOL("clean_up_tokenization_spaces", 0);
  STR("eos_token", "</s>");
  NUM("model_max_length", max_len);
  STR("tokenizer_class", "PreTrainedTokenizerFast");
  STR("unk_token", "<unk>");
  if (!ok) cJSON_Delete(o);
  return ok ? o : NULL;
}

static cJSON *make_special_map(void) {
  cJSON *o = cJSON_CreateObject();
  int ok = o != NULL;
  STR("bos_token", "<s>");
  STR("eos_token", "</s>");
  STR("unk_token", "<unk>");
  if (!ok) cJSON_Delete(o);
  return ok ? o : NULL;
}

static cJSON *make_generation_config(void) {
  cJSON *o = cJSON_CreateObject();
  int ok = o != NULL;
  BOOL("_from_model_config", 1);
  NUM("bos_token_id", 1);
  NUM("eos_token_id", 2);
  if (!ok) cJSON_Delete(o);
  return ok ? o : NULL;
}

/* Write `v` (consumed) as pretty JSON to dir/file. */
static pf_status write_json(const char *dir, const char *file, cJSON *v, pf_err *err) {
  char *text = v ? pf_json_print_pretty(v) : NULL;
  char *path = pf_path_join(dir, file);
  pf_status s = (!text || !path) ? pf_err_set(err, PF_ERR_NOMEM, "%s: out of memory", file)
                                 : pf_write_file(path, text, strlen(text), err);
  cJSON_Delete(v);
  free(text);
  free(path);
  return s;
}

pf_status pf_synth_write_side_files(const pf_synth_preset *p, const char *dir, pf_err *err) {
  pf_status s;
  if ((s = write_json(dir, "tokenizer.json", make_tokenizer(), err)) ||
      (s = write_json(dir, "tokenizer_config.json", make_tokenizer_config(p->max_pos), err)) ||
      (s = write_json(dir, "special_tokens_map.json", make_special_map(), err)) ||
      (s = write_json(dir, "generation_config.json", make_generation_config(), err)))
    return s;
  return PF_OK;
}
