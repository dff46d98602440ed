/* check_hfconfig.c — config.json parsing, defaults, validation, serialisation. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "hfconfig.h"
#include "kernels/kernels.h"
#include "testutil.h"

/* The five required keys; tests append more keys after them. */
#define REQ                                                                                        \
  "\"hidden_size\": 64, \"intermediate_size\": 176, \"num_hidden_layers\": 4, "                    \
  "\"num_attention_heads\": 4, \"vocab_size\": 320"

static pf_model_config parse_ok(const char *json) {
  pf_model_config c;
  pf_err err = {0};
  pf_status s = pf_config_parse(json, "config.json", &c, &err);
  ck_assert_msg(s == PF_OK, "parse failed: %s", err.msg);
  return c;
}

static void parse_fails(const char *json, pf_status code, const char *needle) {
  pf_model_config c;
  pf_err err = {0};
  pf_status s = pf_config_parse(json, "config.json", &c, &err);
  ck_assert_msg(s == code, "expected status %d for %s, got %d (%s)", code, json, s, err.msg);
  pf_assert_err(err, needle);
  ck_assert_ptr_null(c.raw);
  ck_assert_ptr_null(c.intermediate_sizes);
  ck_assert_ptr_null(c.layer_types);
}

START_TEST(test_llama_defaults) {
  pf_model_config c = parse_ok("{\"model_type\": \"llama\", " REQ "}");
  ck_assert_str_eq(c.model_type, "llama");
  ck_assert_int_eq(c.hidden_size, 64);
  ck_assert_int_eq(c.intermediate_size, 176);
  ck_assert_int_eq(c.num_hidden_layers, 4);
  ck_assert_int_eq(c.num_attention_heads, 4);
  ck_assert_int_eq(c.num_key_value_heads, 4); /* = num_attention_heads */
  ck_assert_int_eq(c.head_dim, 16);           /* = hidden / heads */
  ck_assert_int_eq(c.vocab_size, 320);
  ck_assert_int_eq(c.max_position_embeddings, 2048);
  ck_assert_double_eq(c.rms_norm_eps, 1e-6);
  ck_assert_double_eq(c.rope_theta, 10000.0);
  ck_assert_int_eq(c.tie_word_embeddings, 0);
  ck_assert_int_eq(c.attention_bias, 0);
  ck_assert_int_eq(c.mlp_bias, 0);
  ck_assert_int_eq(c.qk_norm, 0);
  ck_assert_str_eq(c.hidden_act, "silu");
  ck_assert_str_eq(c.torch_dtype, "");
  ck_assert_ptr_null(c.layer_types);
  ck_assert_ptr_nonnull(c.intermediate_sizes);
  for (int i = 0; i < 4; i++)
    ck_assert_int_eq(c.intermediate_sizes[i], 176);
  ck_assert_str_eq(c.warning, "");
  pf_config_free(&c);
  pf_config_free(NULL);
}
END_TEST

START_TEST(test_llama_explicit) {
  pf_model_config c =
      parse_ok("{\"model_type\": \"llama\", " REQ ", \"num_key_value_heads\": 2, \"head_dim\": 32, "
               "\"rms_norm_eps\": 1e-05, \"rope_theta\": 500000.0, \"tie_word_embeddings\": true, "
               "\"attention_bias\": true, \"mlp_bias\": true, \"hidden_act\": \"gelu\", "
               "\"torch_dtype\": \"bfloat16\", \"max_position_embeddings\": 131072}");
  ck_assert_int_eq(c.num_key_value_heads, 2);
  ck_assert_int_eq(c.head_dim, 32);
  ck_assert_double_eq(c.rms_norm_eps, 1e-5);
  ck_assert_double_eq(c.rope_theta, 500000.0);
  ck_assert_int_eq(c.tie_word_embeddings, 1);
  ck_assert_int_eq(c.attention_bias, 1);
  ck_assert_int_eq(c.mlp_bias, 1);
  ck_assert_str_eq(c.hidden_act, "gelu");
  ck_assert_str_eq(c.torch_dtype, "bfloat16");
  ck_assert_int_eq(c.max_position_embeddings, 131072);
  pf_config_free(&c);
}
END_TEST

START_TEST(test_model_types) {
  /* mistral: llama-shaped, no extras */
  pf_model_config c = parse_ok("{\"model_type\": \"mistral\", " REQ ", \"sliding_window\": null}");
  ck_assert_str_eq(c.model_type, "mistral");
  ck_assert_int_eq(c.attention_bias + c.qk_norm, 0);
  ck_assert_str_eq(c.warning, "");
  pf_config_free(&c);
  /* qwen2: q/k/v bias always, even when the file says false */
  c = parse_ok("{\"model_type\": \"qwen2\", " REQ ", \"attention_bias\": false, "
               "\"tie_word_embeddings\": true}");
  ck_assert_int_eq(c.attention_bias, 1);
  ck_assert_int_eq(c.qk_norm, 0);
  ck_assert_int_eq(c.tie_word_embeddings, 1);
  pf_config_free(&c);
  /* qwen3: q_norm/k_norm always; layer_types kept; head_dim given */
  c = parse_ok("{\"model_type\": \"qwen3\", " REQ ", \"head_dim\": 16, \"layer_types\": "
               "[\"full_attention\", \"full_attention\", \"sliding_attention\", "
               "\"full_attention\"]}");
  ck_assert_int_eq(c.qk_norm, 1);
  ck_assert_int_eq(c.attention_bias, 0);
  ck_assert_ptr_nonnull(c.layer_types);
  ck_assert_str_eq(c.layer_types[2], "sliding_attention");
  pf_config_free(&c);
  /* qwen3 without head_dim: transformers' Qwen3Config default is 128 */
  c = parse_ok("{\"model_type\": \"qwen3\", " REQ "}");
  ck_assert_int_eq(c.head_dim, 128);
  pf_config_free(&c);
  /* SmolLM checkpoints are model_type llama, tied */
  c = parse_ok("{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", "
               "\"hidden_size\": 576, \"intermediate_size\": 1536, \"num_hidden_layers\": 30, "
               "\"num_attention_heads\": 9, \"num_key_value_heads\": 3, \"vocab_size\": 49152, "
               "\"tie_word_embeddings\": true, \"rope_theta\": 100000}");
  ck_assert_int_eq(c.head_dim, 64);
  ck_assert_int_eq(c.tie_word_embeddings, 1);
  pf_config_free(&c);
  /* unknown model_type / missing model_type: accepted with a warning */
  c = parse_ok("{\"model_type\": \"olmo2\", " REQ "}");
  ck_assert_ptr_nonnull(strstr(c.warning, "olmo2"));
  pf_config_free(&c);
  c = parse_ok("{" REQ "}");
  ck_assert_str_eq(c.model_type, "llama");
  ck_assert_ptr_nonnull(strstr(c.warning, "model_type"));
  pf_config_free(&c);
}
END_TEST

START_TEST(test_missing_keys) {
  const char *keys[] = {"hidden_size", "intermediate_size", "num_hidden_layers",
                        "num_attention_heads", "vocab_size"};
  for (int k = 0; k < 5; k++) {
    char json[512] = "{";
    for (int j = 0; j < 5; j++) {
      if (j == k) continue;
      char kv[64];
      snprintf(kv, sizeof kv, "%s\"%s\": 64", strlen(json) > 1 ? ", " : "", keys[j]);
      strcat(json, kv);
    }
    strcat(json, "}");
    char needle[96];
    snprintf(needle, sizeof needle, "config.json: missing required key \"%s\"", keys[k]);
    parse_fails(json, PF_ERR_INVALID, needle);
  }
}
END_TEST

START_TEST(test_bad_integers) {
  parse_fails("{\"hidden_size\": \"abc\", \"intermediate_size\": 176, \"num_hidden_layers\": 4, "
              "\"num_attention_heads\": 4, \"vocab_size\": 320}",
              PF_ERR_INVALID,
              "config.json: key \"hidden_size\": expected a positive integer, got \"abc\"");
  parse_fails("{\"hidden_size\": 64.5, \"intermediate_size\": 176, \"num_hidden_layers\": 4, "
              "\"num_attention_heads\": 4, \"vocab_size\": 320}",
              PF_ERR_INVALID, "key \"hidden_size\": expected a positive integer, got 64.5");
  parse_fails("{" REQ ", \"num_key_value_heads\": 0}", PF_ERR_INVALID,
              "key \"num_key_value_heads\": expected a positive integer, got 0");
  parse_fails("{\"hidden_size\": 64, \"intermediate_size\": -176, \"num_hidden_layers\": 4, "
              "\"num_attention_heads\": 4, \"vocab_size\": 320}",
              PF_ERR_INVALID, "key \"intermediate_size\": expected a positive integer, got -176");
  parse_fails("{\"hidden_size\": 64, \"intermediate_size\": 176, \"num_hidden_layers\": true, "
              "\"num_attention_heads\": 4, \"vocab_size\": 320}",
              PF_ERR_INVALID, "key \"num_hidden_layers\": expected a positive integer, got true");
  parse_fails("{\"hidden_size\": 64, \"intermediate_size\": 176, \"num_hidden_layers\": 4, "
              "\"num_attention_heads\": 4, \"vocab_size\": null}",
              PF_ERR_INVALID, "key \"vocab_size\": expected a positive integer, got null");
  parse_fails("{" REQ ", \"head_dim\": [16]}", PF_ERR_INVALID,
              "key \"head_dim\": expected a positive integer, got [16]");
}
END_TEST

START_TEST(test_bounds) {
  parse_fails("{\"hidden_size\": 33554432, \"intermediate_size\": 176, \"num_hidden_layers\": 4, "
              "\"num_attention_heads\": 4, \"vocab_size\": 320}",
              PF_ERR_INVALID, "key \"hidden_size\": 33554432 is larger than the supported maximum");
  parse_fails("{\"hidden_size\": 64, \"intermediate_size\": 176, \"num_hidden_layers\": 5000, "
              "\"num_attention_heads\": 4, \"vocab_size\": 320}",
              PF_ERR_INVALID,
              "key \"num_hidden_layers\": 5000 is larger than the supported maximum 4096");
  parse_fails("{\"hidden_size\": 64, \"intermediate_size\": 176, \"num_hidden_layers\": 4, "
              "\"num_attention_heads\": 4, \"vocab_size\": 8388608}",
              PF_ERR_INVALID,
              "key \"vocab_size\": 8388608 is larger than the supported maximum 4194304");
  parse_fails("{" REQ ", \"head_dim\": 1e400}", PF_ERR_INVALID,
              "got a number beyond the range of a double (+inf)");
  parse_fails("{" REQ ", \"head_dim\": 8388608}", PF_ERR_INVALID,
              "num_attention_heads * head_dim = 33554432 is larger than the supported maximum");
  /* GPT-2 with pfrun's head_dim (a head-pruned checkpoint): the same bound (found by
   * fuzz_config: 12 default heads * 1677772 passed) */
  parse_fails("{\"model_type\": \"gpt2\", \"head_dim\": 1677772}", PF_ERR_INVALID,
              "num_attention_heads * head_dim = 20133264 is larger than the supported maximum");
}
END_TEST

START_TEST(test_bad_other_types) {
  parse_fails("{" REQ ", \"tie_word_embeddings\": \"yes\"}", PF_ERR_INVALID,
              "key \"tie_word_embeddings\": expected true or false, got \"yes\"");
  parse_fails("{" REQ ", \"attention_bias\": 1}", PF_ERR_INVALID,
              "key \"attention_bias\": expected true or false, got 1");
  parse_fails("{" REQ ", \"rms_norm_eps\": -1e-6}", PF_ERR_INVALID,
              "key \"rms_norm_eps\": expected a positive number, got -1e-06");
  parse_fails("{" REQ ", \"rope_theta\": \"big\"}", PF_ERR_INVALID,
              "key \"rope_theta\": expected a positive number, got \"big\"");
  parse_fails("{" REQ ", \"hidden_act\": \"a-very-long-activation-name-of-40-chars!\"}",
              PF_ERR_INVALID, "key \"hidden_act\": expected at most 31 characters");
  parse_fails("{\"model_type\": 7, " REQ "}", PF_ERR_INVALID,
              "key \"model_type\": expected a string, got 7");
}
END_TEST

START_TEST(test_divisibility) {
  parse_fails("{" REQ ", \"num_key_value_heads\": 3}", PF_ERR_INVALID,
              "num_attention_heads 4 is not divisible by num_key_value_heads 3");
  parse_fails("{\"hidden_size\": 66, \"intermediate_size\": 176, \"num_hidden_layers\": 4, "
              "\"num_attention_heads\": 4, \"vocab_size\": 320}",
              PF_ERR_INVALID, "hidden_size 66 is not divisible by num_attention_heads 4");
  /* with an explicit head_dim, hidden_size need not divide */
  pf_model_config c = parse_ok("{\"hidden_size\": 66, \"intermediate_size\": 176, "
                               "\"num_hidden_layers\": 4, \"num_attention_heads\": 4, "
                               "\"vocab_size\": 320, \"head_dim\": 16}");
  ck_assert_int_eq(c.head_dim, 16);
  pf_config_free(&c);
}
END_TEST

START_TEST(test_layer_arrays) {
  parse_fails("{" REQ ", \"layer_types\": [\"full_attention\"]}", PF_ERR_INVALID,
              "key \"layer_types\": expected 4 entries (num_hidden_layers), got 1");
  parse_fails("{" REQ ", \"layer_types\": \"full_attention\"}", PF_ERR_INVALID,
              "key \"layer_types\": expected a list of strings");
  parse_fails("{" REQ ", \"layer_types\": [\"a\", \"b\", 3, \"d\"]}", PF_ERR_INVALID,
              "key \"layer_types[2]\": expected a string, got 3");
  parse_fails("{" REQ ", \"intermediate_sizes\": [176, 176]}", PF_ERR_INVALID,
              "key \"intermediate_sizes\": expected 4 entries (num_hidden_layers), got 2");
  parse_fails("{" REQ ", \"intermediate_sizes\": [176, 0, 176, 176]}", PF_ERR_INVALID,
              "key \"intermediate_sizes[1]\": expected a positive integer");
  parse_fails("{" REQ ", \"intermediate_sizes\": [176, 100.5, 176, 176]}", PF_ERR_INVALID,
              "key \"intermediate_sizes[1]\": expected a positive integer <= 16777216, got 100.5");
  pf_model_config c = parse_ok("{" REQ ", \"intermediate_sizes\": [176, 100, 176, 64]}");
  ck_assert_int_eq(c.intermediate_sizes[1], 100);
  ck_assert_int_eq(c.intermediate_sizes[3], 64);
  pf_config_free(&c);
}
END_TEST

START_TEST(test_bad_json) {
  parse_fails("{\"hidden_size\": 64,", PF_ERR_FORMAT, "config.json: invalid JSON near byte");
  parse_fails("[1, 2]", PF_ERR_FORMAT, "config.json: expected a JSON object at the top level");
  parse_fails("", PF_ERR_FORMAT, "invalid JSON");
  parse_fails(NULL, PF_ERR_FORMAT, "invalid JSON");
}
END_TEST

START_TEST(test_load_file) {
  char *dir = pf_test_tmpdir("hfcfg");
  pf_model_config c;
  pf_err err = {0};
  ck_assert_int_eq(pf_config_load(dir, &c, &err), PF_ERR_NOT_FOUND);
  pf_assert_err(err, "config.json");
  char *path = pf_path_join(dir, "config.json");
  pf_test_write(path, "{\"model_type\": \"llama\", " REQ "}");
  ck_assert_int_eq(pf_config_load(dir, &c, &err), PF_OK);
  ck_assert_int_eq(c.hidden_size, 64);
  pf_config_free(&c);
  pf_test_write(path, "{\"model_type\": \"llama\", \"hidden_size\": \"x\"}");
  ck_assert_int_eq(pf_config_load(dir, &c, &err), PF_ERR_INVALID);
  pf_assert_err(err, "config.json: key \"hidden_size\"");
  free(path);
  pf_test_rmtree(dir);
  free(dir);
}
END_TEST

static cJSON *to_json_parsed(const pf_model_config *c) {
  char *s = pf_config_to_json(c);
  ck_assert_ptr_nonnull(s);
  ck_assert_int_eq(s[strlen(s) - 1], '\n');
  cJSON *j = cJSON_Parse(s);
  ck_assert_ptr_nonnull(j);
  free(s);
  return j;
}

START_TEST(test_to_json_roundtrip) {
  pf_model_config c =
      parse_ok("{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", " REQ
               ", \"foo\": {\"bar\": [1, 2], \"baz\": null}, \"rope_scaling\": null, "
               "\"torch_dtype\": \"float32\"}");
  cJSON *j = to_json_parsed(&c);
  cJSON *foo = cJSON_GetObjectItem(j, "foo");
  ck_assert_ptr_nonnull(foo);
  ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(foo, "bar")), 2);
  ck_assert(cJSON_IsNull(cJSON_GetObjectItem(foo, "baz")));
  ck_assert(cJSON_IsNull(cJSON_GetObjectItem(j, "rope_scaling")));
  ck_assert_str_eq(cJSON_GetObjectItem(j, "architectures")->child->valuestring, "LlamaForCausalLM");
  ck_assert_int_eq(cJSON_GetObjectItem(j, "num_hidden_layers")->valueint, 4);
  ck_assert_ptr_null(cJSON_GetObjectItem(j, "intermediate_sizes")); /* uniform */
  ck_assert_str_eq(cJSON_GetObjectItem(j, "torch_dtype")->valuestring, "float32");
  /* key order kept: architectures first */
  ck_assert_str_eq(j->child->string, "architectures");
  cJSON_Delete(j);

  /* the parsed output parses back to the same config */
  char *s = pf_config_to_json(&c);
  pf_model_config d = parse_ok(s);
  ck_assert_int_eq(d.hidden_size, c.hidden_size);
  ck_assert_int_eq(d.vocab_size, c.vocab_size);
  free(s);
  pf_config_free(&d);

  /* torch_dtype from the field; removing layers updates the count */
  snprintf(c.torch_dtype, sizeof c.torch_dtype, "bfloat16");
  pf_err err = {0};
  ck_assert_int_eq(pf_config_remove_layer(&c, 0, &err), PF_OK);
  j = to_json_parsed(&c);
  ck_assert_str_eq(cJSON_GetObjectItem(j, "torch_dtype")->valuestring, "bfloat16");
  ck_assert_int_eq(cJSON_GetObjectItem(j, "num_hidden_layers")->valueint, 3);
  cJSON_Delete(j);
  pf_config_free(&c);
}
END_TEST

/* Per-layer keys of families run LLaMA-shaped follow a removed layer: a list with one
 * entry per layer loses it (no_rope_layers, SmolLM3), a list of layer indices loses it
 * and renumbers the later ones (mlp_only_layers); before, both were written unchanged. */
START_TEST(test_remove_layer_per_layer_keys) {
  pf_model_config c =
      parse_ok("{\"model_type\": \"smollm3\", " REQ ", \"no_rope_layers\": [1, 1, 0, 1], "
               "\"mlp_only_layers\": [0, 2, 3]}");
  pf_err err = {0};
  ck_assert_int_eq(pf_config_remove_layer(&c, 2, &err), PF_OK);
  cJSON *j = to_json_parsed(&c);
  cJSON *nr = cJSON_GetObjectItem(j, "no_rope_layers"),
        *mo = cJSON_GetObjectItem(j, "mlp_only_layers");
  ck_assert_int_eq(cJSON_GetArraySize(nr), 3);
  ck_assert_int_eq(cJSON_GetArrayItem(nr, 2)->valueint, 1); /* the old layer 3 */
  ck_assert_int_eq(cJSON_GetArraySize(mo), 2);
  ck_assert_int_eq(cJSON_GetArrayItem(mo, 0)->valueint, 0);
  ck_assert_int_eq(cJSON_GetArrayItem(mo, 1)->valueint, 2); /* the old layer 3, renumbered */
  cJSON_Delete(j);
  pf_config_free(&c);
}
END_TEST

START_TEST(test_to_json_intermediate_sizes) {
  pf_model_config c = parse_ok("{\"model_type\": \"qwen3\", " REQ ", \"head_dim\": 16, "
                               "\"layer_types\": [\"a\", \"b\", \"c\", \"d\"]}");
  c.intermediate_sizes[1] = 100;
  c.intermediate_sizes[2] = 150;
  cJSON *j = to_json_parsed(&c);
  cJSON *is = cJSON_GetObjectItem(j, "intermediate_sizes");
  ck_assert_ptr_nonnull(is);
  ck_assert_int_eq(cJSON_GetArraySize(is), 4);
  ck_assert_int_eq(cJSON_GetArrayItem(is, 1)->valueint, 100);
  ck_assert_int_eq(cJSON_GetObjectItem(j, "intermediate_size")->valueint, 176); /* the max */
  cJSON_Delete(j);
  /* remove layer 1 (width 100), then layer 1 (width 150 now): uniform again -> key removed,
     even though a reparsed raw would carry it */
  pf_err err = {0};
  ck_assert_int_eq(pf_config_remove_layer(&c, 1, &err), PF_OK);
  ck_assert_str_eq(c.layer_types[1], "c");
  ck_assert_int_eq(c.intermediate_sizes[1], 150);
  char *s = pf_config_to_json(&c);
  pf_model_config d = parse_ok(s); /* raw of d has intermediate_sizes [176, 150, 176] */
  free(s);
  ck_assert_int_eq(d.num_hidden_layers, 3);
  ck_assert_int_eq(d.intermediate_sizes[1], 150);
  ck_assert_int_eq(pf_config_remove_layer(&d, 1, &err), PF_OK);
  j = to_json_parsed(&d);
  ck_assert_ptr_null(cJSON_GetObjectItem(j, "intermediate_sizes"));
  ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "layer_types")), 2);
  ck_assert_str_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "layer_types"), 1)->valuestring, "d");
  cJSON_Delete(j);
  /* all widths shrunk uniformly: intermediate_size follows */
  for (int i = 0; i < 2; i++)
    d.intermediate_sizes[i] = 88;
  j = to_json_parsed(&d);
  ck_assert_int_eq(cJSON_GetObjectItem(j, "intermediate_size")->valueint, 88);
  cJSON_Delete(j);
  pf_config_free(&d);
  pf_config_free(&c);
}
END_TEST

/* A depth prune keeps each layer's attention type: qwen2's types come from
 * max_window_layers (no layer_types in the file), an index rule that shifts once a
 * layer is gone (an audit measured NLL 5.8036 instead of 5.7940 after removing
 * layer 1 of 4). The saved config lists the kept types and a max_window_layers
 * that gives them too. */
START_TEST(test_remove_layer_keeps_types) {
  pf_model_config c = parse_ok("{\"model_type\": \"qwen2\", " REQ ", \"use_sliding_window\": true, "
                               "\"sliding_window\": 4, \"max_window_layers\": 2}");
  ck_assert_int_eq(pf_config_layer_window(&c, 1), 0);
  ck_assert_int_eq(pf_config_layer_window(&c, 2), 4);
  char *s = pf_config_to_json(&c); /* unpruned: the file's own form */
  ck_assert_ptr_null(strstr(s, "layer_types"));
  free(s);
  pf_err err = {0};
  ck_assert_int_eq(pf_config_remove_layer(&c, 1, &err), PF_OK);
  const int64_t want[3] = {0, 4, 4}; /* full, sliding, sliding: layers 0, 2, 3 */
  for (int i = 0; i < 3; i++)
    ck_assert_int_eq(pf_config_layer_window(&c, i), want[i]);
  cJSON *j = to_json_parsed(&c);
  ck_assert_int_eq(cJSON_GetObjectItem(j, "max_window_layers")->valueint, 1);
  ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "layer_types")), 3);
  cJSON_Delete(j);
  s = pf_config_to_json(&c);
  pf_model_config d = parse_ok(s); /* read back: the same types */
  free(s);
  for (int i = 0; i < 3; i++)
    ck_assert_int_eq(pf_config_layer_window(&d, i), want[i]);
  pf_config_free(&d);
  pf_config_free(&c);
  /* GPT-2 with the generic names: written in the n_* spelling, no stale alias left
   * (GPT2Config would let num_hidden_layers 4 win over n_layer 3) */
  c = parse_ok(
      "{\"model_type\": \"gpt2\", \"hidden_size\": 64, \"num_hidden_layers\": 4, "
      "\"num_attention_heads\": 4, \"vocab_size\": 320, \"max_position_embeddings\": 128}");
  ck_assert_int_eq(pf_config_remove_layer(&c, 1, &err), PF_OK);
  j = to_json_parsed(&c);
  ck_assert_ptr_null(cJSON_GetObjectItem(j, "num_hidden_layers"));
  ck_assert_ptr_null(cJSON_GetObjectItem(j, "hidden_size"));
  ck_assert_int_eq(cJSON_GetObjectItem(j, "n_layer")->valueint, 3);
  ck_assert_int_eq(cJSON_GetObjectItem(j, "n_embd")->valueint, 64);
  ck_assert_int_eq(cJSON_GetObjectItem(j, "n_head")->valueint, 4);
  ck_assert_int_eq(cJSON_GetObjectItem(j, "n_positions")->valueint, 128);
  cJSON_Delete(j);
  pf_config_free(&c);
  /* found by fuzz_config: the heads written under their generic name were renamed
   * only by a second write (to_json not idempotent); a key given twice kept one copy */
  c = parse_ok("{\"model_type\": \"gpt2\", \"head_dim\": 32, \"num_hidden_layers\": 4, "
               "\"num_hidden_layers\": 4}");
  s = pf_config_to_json(&c);
  pf_model_config d2 = parse_ok(s);
  char *s2 = pf_config_to_json(&d2);
  ck_assert_str_eq(s, s2);
  ck_assert_ptr_null(strstr(s, "num_hidden_layers"));
  free(s), free(s2);
  pf_config_free(&d2);
  pf_config_free(&c);
  /* and: a prune that keeps only sliding layers writes max_window_layers 0, which reads */
  c = parse_ok("{\"model_type\": \"qwen3\", " REQ
               ", \"head_dim\": 16, \"use_sliding_window\": true, "
               "\"sliding_window\": 32, \"max_window_layers\": 1}");
  ck_assert_int_eq(pf_config_remove_layer(&c, 0, &err), PF_OK);
  s = pf_config_to_json(&c);
  d2 = parse_ok(s);
  free(s);
  ck_assert_int_eq(d2.max_window_layers, 0);
  for (int i = 0; i < 3; i++)
    ck_assert_int_eq(pf_config_layer_window(&d2, i), 32);
  pf_config_free(&d2);
  pf_config_free(&c);
}
END_TEST

/* transformers renamed GPT-NeoX's rotary settings twice and v5 nests RoPE under
 * rope_parameters (gemma3: per layer type): every spelling is read, two that
 * disagree are refused (an audit found v5's partial_rotary_factor ignored, 0.25
 * used, and the linear factor of gemma3's full layers dropped). */
START_TEST(test_rope_spellings) {
#define NEOX "{\"model_type\": \"gpt_neox\", " REQ ", "
  pf_model_config c =
      parse_ok(NEOX "\"rope_parameters\": {\"rope_theta\": 100, \"partial_rotary_factor\": 0.5}}");
  ck_assert_double_eq(c.partial_rotary_factor, 0.5);
  ck_assert_double_eq(c.rope_theta, 100);
  pf_config_free(&c);
  c = parse_ok(NEOX "\"rotary_pct\": 0.5, \"partial_rotary_factor\": 0.5}");
  ck_assert_double_eq(c.partial_rotary_factor, 0.5);
  ck_assert_double_eq(c.rope_theta, 10000);
  pf_config_free(&c);
  parse_fails(NEOX "\"rotary_pct\": 0.25, \"partial_rotary_factor\": 1.0}", PF_ERR_INVALID,
              "keys \"rotary_pct\" (0.25) and \"partial_rotary_factor\" (1) disagree");
  parse_fails(NEOX "\"rotary_emb_base\": 10000, \"rope_theta\": 10}", PF_ERR_INVALID, "disagree");
  parse_fails(NEOX "\"rotary_pct\": 0.5, \"rope_parameters\": {\"partial_rotary_factor\": 0.25}}",
              PF_ERR_INVALID, "\"rope_parameters.partial_rotary_factor\" (0.25) disagree");
#undef NEOX
  c = parse_ok("{\"model_type\": \"gemma3_text\", " REQ ", \"head_dim\": 16, "
               "\"rope_parameters\": {\"full_attention\": {\"rope_type\": \"linear\", \"factor\": "
               "8.0, \"rope_theta\": 1000000}, \"sliding_attention\": {\"rope_type\": "
               "\"default\", \"rope_theta\": 10000}}}");
  ck_assert_str_eq(c.rope_scaling.rope_type, "linear");
  ck_assert_double_eq(c.rope_scaling.factor, 8.0);
  ck_assert_double_eq(c.rope_theta, 1000000);
  ck_assert_double_eq(c.rope_local_base_freq, 10000);
  pf_config_free(&c);
}
END_TEST

START_TEST(test_copy_and_remove) {
  pf_model_config c = parse_ok("{\"model_type\": \"qwen3\", " REQ ", \"head_dim\": 16, "
                               "\"layer_types\": [\"a\", \"b\", \"c\", \"d\"]}");
  pf_model_config d;
  pf_err err = {0};
  ck_assert_int_eq(pf_config_copy(&d, &c, &err), PF_OK);
  ck_assert_ptr_ne(d.raw, c.raw);
  ck_assert_ptr_ne(d.intermediate_sizes, c.intermediate_sizes);
  ck_assert_int_eq(pf_config_remove_layer(&d, 3, &err), PF_OK);
  ck_assert_int_eq(d.num_hidden_layers, 3);
  ck_assert_int_eq(c.num_hidden_layers, 4);
  ck_assert_str_eq(c.layer_types[3], "d");
  ck_assert_int_eq(pf_config_remove_layer(&d, 3, &err), PF_ERR_INVALID);
  pf_assert_err(err, "expected an index in [0, 3)");
  ck_assert_int_eq(pf_config_remove_layer(&d, -1, &err), PF_ERR_INVALID);
  ck_assert_int_eq(pf_config_remove_layer(&d, 0, &err), PF_OK);
  ck_assert_int_eq(pf_config_remove_layer(&d, 0, &err), PF_OK);
  ck_assert_int_eq(pf_config_remove_layer(&d, 0, &err), PF_ERR_INVALID);
  pf_assert_err(err, "only one layer");
  ck_assert_str_eq(d.layer_types[0], "c");
  pf_config_free(&d);
  pf_config_free(&c);
}
END_TEST

START_TEST(test_to_json_without_raw) {
  pf_model_config c =
      parse_ok("{\"model_type\": \"mistral\", " REQ ", \"num_key_value_heads\": 2}");
  cJSON_Delete(c.raw);
  c.raw = NULL;
  cJSON *j = to_json_parsed(&c);
  ck_assert_str_eq(cJSON_GetObjectItem(j, "model_type")->valuestring, "mistral");
  ck_assert_int_eq(cJSON_GetObjectItem(j, "num_key_value_heads")->valueint, 2);
  ck_assert_int_eq(cJSON_GetObjectItem(j, "head_dim")->valueint, 16);
  cJSON_Delete(j);
  pf_config_free(&c);
}
END_TEST

START_TEST(test_pretty_printer) {
  cJSON *j = cJSON_Parse("{\"a\": 1, \"b\": [1, 2.5, \"x\\\"y\"], \"c\": {}, \"d\": [], "
                         "\"e\": {\"f\": null, \"g\": true}, \"h\": 1e-05}");
  char *s = pf_json_print_pretty(j);
  ck_assert_str_eq(s, "{\n  \"a\": 1,\n  \"b\": [\n    1,\n    2.5,\n    \"x\\\"y\"\n  ],\n"
                      "  \"c\": {},\n  \"d\": [],\n  \"e\": {\n    \"f\": null,\n    \"g\": true\n"
                      "  },\n  \"h\": 1e-05\n}\n");
  free(s);
  cJSON_Delete(j);
  ck_assert_ptr_null(pf_json_print_pretty(NULL));
}
END_TEST

/* Fuzzing findings (tests/fuzz/fuzz_config.c; docs/reliability.md). Deep
 * nesting under an unknown key: the pretty printer indents each line by its
 * depth, so 400 KB nested 900 deep took 46 s and 1.3 GB to round-trip. */
START_TEST(test_fuzz_nesting) {
  char *j = malloc(4096), *p = j + sprintf(j, "{" REQ ", \"x\": ");
  for (int i = 0; i < 65; i++)
    *p++ = '[';
  for (int i = 0; i < 65; i++)
    *p++ = ']';
  strcpy(p, "}");
  parse_fails(j, PF_ERR_FORMAT, "config.json: JSON nested deeper than 64 levels");
  p = j + sprintf(j, "{" REQ ", \"x\": ");
  for (int i = 0; i < 63; i++)
    *p++ = '[';
  for (int i = 0; i < 63; i++)
    *p++ = ']';
  strcpy(p, "}");
  pf_model_config c = parse_ok(j); /* 64 levels with the top object */
  pf_config_free(&c);
  free(j);
}
END_TEST

/* rope_parameters.rope_theta 1e999 is infinity to cJSON: it became rope_theta
 * (and was written back as null by pf_config_to_json). */
START_TEST(test_fuzz_infinite_theta) {
  pf_model_config c = parse_ok("{" REQ ", \"rope_parameters\": {\"rope_type\": \"default\", "
                               "\"rope_theta\": 1e999}}");
  ck_assert_double_eq(c.rope_theta, 10000.0);
  pf_config_free(&c);
}
END_TEST

/* cJSON printed 9.5588888888888881e62 as 9.55888888888889e+62 (it checks the read-back
 * within DBL_EPSILON, not exactly): a save moved rope_theta and unknown numbers by
 * an ulp. Found by fuzz_config's round-trip check. */
START_TEST(test_fuzz_number_round_trip) {
  const char *big = "955888888888888888888888888888888888888888888888888888888881615.0";
  char json[512];
  snprintf(json, sizeof json, "{" REQ ", \"rope_theta\": %s, \"x\": %s}", big, big);
  pf_model_config c = parse_ok(json);
  char *text = pf_config_to_json(&c);
  ck_assert_ptr_nonnull(text);
  pf_model_config c2 = parse_ok(text);
  ck_assert_msg(c2.rope_theta == c.rope_theta, "rope_theta %.17g became %.17g", c.rope_theta,
                c2.rope_theta);
  const cJSON *x1 = cJSON_GetObjectItemCaseSensitive(c.raw, "x");
  const cJSON *x2 = cJSON_GetObjectItemCaseSensitive(c2.raw, "x");
  ck_assert(x1->valuedouble == x2->valuedouble);
  ck_assert_ptr_nonnull(strstr(text, "\"rope_theta\": 9.5588888888888881e+62"));
  free(text);
  pf_config_free(&c2);
  pf_config_free(&c);
}
END_TEST

/* llama3 original_max_position_embeddings 8e192 passed the integer test and was
 * converted to int64_t (float-cast-overflow; a garbage value in a plain build).
 * Found by fuzz_config. */
START_TEST(test_fuzz_huge_original_positions) {
  pf_model_config c = parse_ok("{" REQ ", \"rope_scaling\": {\"rope_type\": \"llama3\", "
                               "\"factor\": 32.0, \"low_freq_factor\": 1.0, "
                               "\"high_freq_factor\": 4.0, "
                               "\"original_max_position_embeddings\": 8e192}}");
  pf_rope_params rp;
  pf_err err = {0};
  ck_assert_int_eq(pf_config_rope_params(&c, &rp, &err), PF_ERR_INVALID);
  pf_assert_err(err, "original_max_position_embeddings in [1, 2^30], got 1, 4, 8e+192");
  pf_config_free(&c);
}
END_TEST

/* GPT-2 reads no num_key_value_heads, so the key may hold anything; the writer
 * converted the file's 7.8e87 to int64_t to compare it (float-cast-overflow under
 * UBSan). Now such a value counts as "not the model's": the head keys are written
 * from the model. Found by fuzz_config. */
START_TEST(test_fuzz_huge_kv_heads_ignored_key) {
  pf_model_config c =
      parse_ok("{\"model_type\": \"gpt2\", " REQ ", \"num_key_value_heads\": 7.7777e87}");
  ck_assert_int_eq(c.num_key_value_heads, 4);
  char *text = pf_config_to_json(&c);
  ck_assert_ptr_nonnull(text);
  ck_assert_msg(strstr(text, "\"num_key_value_heads\": 4,"), "%s", text);
  pf_model_config c2 = parse_ok(text);
  ck_assert_int_eq(c2.num_key_value_heads, 4);
  ck_assert_int_eq(c2.num_attention_heads, 4);
  free(text);
  pf_config_free(&c2);
  pf_config_free(&c);
}
END_TEST

/* llama3 original_max_position_embeddings 8e1292 is infinity to cJSON: kept as an
 * invalid value (a problem note), but the writer printed it as null, which reads
 * back as a missing key, so a save changed what the file said. Now it is written
 * as 1e999 and reads back as the same invalid value. Found by fuzz_config. */
START_TEST(test_fuzz_infinite_number_round_trip) {
  pf_model_config c = parse_ok("{" REQ ", \"rope_scaling\": {\"rope_type\": \"llama3\", "
                               "\"factor\": 32.0, \"low_freq_factor\": 1.0, "
                               "\"high_freq_factor\": 4.0, "
                               "\"original_max_position_embeddings\": 8e1292}, \"x\": -1e400}");
  ck_assert(isnan(c.rope_scaling.original_max_position_embeddings));
  ck_assert_ptr_nonnull(strstr(c.rope_scaling.problem, "original_max_position_embeddings"));
  char *text = pf_config_to_json(&c);
  ck_assert_ptr_nonnull(text);
  ck_assert_msg(strstr(text, "\"original_max_position_embeddings\": 1e999"), "%s", text);
  ck_assert_msg(strstr(text, "\"x\": -1e999"), "%s", text);
  pf_model_config c2 = parse_ok(text);
  ck_assert(isnan(c2.rope_scaling.original_max_position_embeddings));
  ck_assert_str_eq(c2.rope_scaling.problem, c.rope_scaling.problem);
  free(text);
  pf_config_free(&c2);
  pf_config_free(&c);
}
END_TEST

/* A repeated key reads as json.loads reads it (transformers' view): the last value, at the
 * first one's place; nested objects too. Before, the parser took the first value while the
 * writer replaced only the first entry: found by fuzz_config, a config with
 * "intermediate_sizes" twice whose first layer was removed wrote a file that did not parse. */
START_TEST(test_repeated_keys_keep_last) {
  pf_model_config c =
      parse_ok("{" REQ ", \"num_hidden_layers\": 2, \"rope_scaling\": {\"rope_type\": "
               "\"linear\", \"factor\": 2.0, \"factor\": 4.0}, \"x\": 1, "
               "\"num_hidden_layers\": 3, \"x\": 2}");
  ck_assert_int_eq(c.num_hidden_layers, 3);
  ck_assert_double_eq(c.rope_scaling.factor, 4.0);
  char *text = pf_config_to_json(&c);
  ck_assert_ptr_nonnull(text);
  const char *first = strstr(text, "\"num_hidden_layers\": 3");
  ck_assert_msg(first && !strstr(first + 1, "\"num_hidden_layers\""), "%s", text);
  ck_assert_msg(strstr(text, "\"factor\": 4.0\n") && !strstr(text, "\"factor\": 2"), "%s", text);
  /* json.dumps(json.loads(...)) order: the key where it first appeared */
  ck_assert_msg(first < strstr(text, "\"num_attention_heads\"") && strstr(text, "\"x\": 2"), "%s",
                text);
  free(text);
  pf_config_free(&c);
  /* the fuzzer's input: GPT-2, two layers, the per-layer widths twice */
  c = parse_ok("{\"model_type\": \"gpt2\", \"num_hidden_layers\": 2, \"num_hidden_layers\": 2, "
               "\"intermediate_sizes\": [2, 1], \"intermediate_sizes\": [2, 1]}");
  pf_err err = {0};
  ck_assert_int_eq(pf_config_remove_layer(&c, 0, &err), PF_OK);
  text = pf_config_to_json(&c);
  ck_assert_ptr_nonnull(text);
  pf_model_config back = parse_ok(text);
  ck_assert_int_eq(back.num_hidden_layers, 1);
  ck_assert_int_eq(back.intermediate_sizes[0], 1);
  free(text);
  pf_config_free(&back);
  pf_config_free(&c);
}
END_TEST

/* A number the file writes as a float is written back as one (json.dumps of a Python
 * float): "rope_theta": 500000.0, "attention_dropout": 0.0 and the llama3 factors stay
 * floats (before: 500000, 0 and 32, and transformers' rope validation warned that factor,
 * low_freq_factor and high_freq_factor must be floats); integers stay integers. */
START_TEST(test_float_literals_kept) {
  static const char *const kept[] = {"\"rope_theta\": 500000.0,",
                                     "\"attention_dropout\": 0.0,",
                                     "\"factor\": 32.0,",
                                     "\"low_freq_factor\": 1.0,",
                                     "\"high_freq_factor\": 4.0,",
                                     "\"original_max_position_embeddings\": 8192,",
                                     "\"rms_norm_eps\": 1e-05,",
                                     "\"big\": 1e+16,",
                                     "\"neg\": -0.0,",
                                     "\"tiny\": 2.5e-300,",
                                     "\"whole\": 7,",
                                     "\"list\": [\n    1.0,\n    2,\n    3.5\n  ]",
                                     "\"exp\": 300.0\n"};
  pf_model_config c = parse_ok(
      "{" REQ ", \"rope_theta\": 500000.0, \"attention_dropout\": 0.0, \"rope_scaling\": "
      "{\"factor\": 32.0, \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0, "
      "\"original_max_position_embeddings\": 8192, \"rope_type\": \"llama3\"}, \"rms_norm_eps\": "
      "1e-05, \"s\": \"a \\\" 1.5 \\\\\", \"big\": 1e16, \"neg\": -0.0, \"tiny\": 2.5e-300, "
      "\"whole\": 7, \"list\": [1.0, 2, 3.5], \"exp\": 3e2}");
  char *text = pf_config_to_json(&c);
  ck_assert_ptr_nonnull(text);
  for (size_t i = 0; i < sizeof kept / sizeof *kept; i++)
    ck_assert_msg(strstr(text, kept[i]), "no %s in\n%s", kept[i], text);
  /* and again from what was written: the same text */
  pf_model_config c2 = parse_ok(text);
  char *again = pf_config_to_json(&c2);
  ck_assert_ptr_nonnull(again);
  ck_assert_str_eq(again, text);
  free(again);
  free(text);
  pf_config_free(&c2);
  pf_config_free(&c);
}
END_TEST

static Suite *make_suite(void) {
  Suite *s = suite_create("hfconfig");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, test_llama_defaults);
  tcase_add_test(tc, test_llama_explicit);
  tcase_add_test(tc, test_model_types);
  tcase_add_test(tc, test_missing_keys);
  tcase_add_test(tc, test_bad_integers);
  tcase_add_test(tc, test_bounds);
  tcase_add_test(tc, test_bad_other_types);
  tcase_add_test(tc, test_divisibility);
  tcase_add_test(tc, test_layer_arrays);
  tcase_add_test(tc, test_bad_json);
  tcase_add_test(tc, test_fuzz_nesting);
  tcase_add_test(tc, test_fuzz_infinite_theta);
  tcase_add_test(tc, test_fuzz_number_round_trip);
  tcase_add_test(tc, test_fuzz_huge_original_positions);
  tcase_add_test(tc, test_fuzz_huge_kv_heads_ignored_key);
  tcase_add_test(tc, test_fuzz_infinite_number_round_trip);
  tcase_add_test(tc, test_repeated_keys_keep_last);
  tcase_add_test(tc, test_float_literals_kept);
  tcase_add_test(tc, test_load_file);
  tcase_add_test(tc, test_to_json_roundtrip);
  tcase_add_test(tc, test_to_json_intermediate_sizes);
  tcase_add_test(tc, test_remove_layer_per_layer_keys);
  tcase_add_test(tc, test_copy_and_remove);
  tcase_add_test(tc, test_remove_layer_keeps_types);
  tcase_add_test(tc, test_rope_spellings);
  tcase_add_test(tc, test_to_json_without_raw);
  tcase_add_test(tc, test_pretty_printer);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return pf_test_main(make_suite);
}
