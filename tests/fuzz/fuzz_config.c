/* fuzz_config.c — the input is a config.json text: pf_config_parse, and when it
 * parses, the round trip pf_config_to_json -> pf_config_parse must succeed and
 * give the same configuration, and serialising that again must give the same
 * text (to_json is idempotent). Also exercised: pf_config_copy,
 * pf_config_remove_layer, pf_config_layer_window, pf_config_rope_params. */
#include <math.h>
#include <string.h>

#include "fuzz_common.h"
#include "hfconfig.h"
#include "kernels/kernels.h"

static int same_num(double a, double b) {
  return a == b || (isnan(a) && isnan(b));
}

/* Field-by-field equality of two configurations (raw JSON aside). */
/* `after_remove`: a removed layer changes the default of max_window_layers. */
static void check_same(const pf_model_config *a, const pf_model_config *b, const char *json,
                       int after_remove) {
#define SAME_I(f)                                                                                  \
  FZ_CHECK(a->f == b->f, #f ": %lld then %lld after the round trip\n%s", (long long)a->f,          \
           (long long)b->f, json)
#define SAME_D(f)                                                                                  \
  FZ_CHECK(same_num(a->f, b->f), #f ": %g then %g after the round trip\n%s", a->f, b->f, json)
#define SAME_S(f)                                                                                  \
  FZ_CHECK(!strcmp(a->f, b->f), #f ": '%s' then '%s' after the round trip\n%s", a->f, b->f, json)
  SAME_S(model_type);
  SAME_I(hidden_size);
  SAME_I(num_hidden_layers);
  SAME_I(num_attention_heads);
  SAME_I(num_key_value_heads);
  SAME_I(head_dim);
  SAME_I(vocab_size);
  SAME_I(max_position_embeddings);
  SAME_D(rms_norm_eps);
  SAME_D(rope_theta);
  SAME_I(tie_word_embeddings);
  SAME_I(attention_bias);
  SAME_I(mlp_bias);
  SAME_I(qk_norm);
  SAME_S(hidden_act);
  SAME_S(torch_dtype);
  SAME_I(sliding_window);
  if (!after_remove) SAME_I(max_window_layers);
  SAME_S(rope_scaling.rope_type);
  SAME_D(rope_scaling.factor);
  SAME_D(rope_scaling.low_freq_factor);
  SAME_D(rope_scaling.high_freq_factor);
  SAME_D(rope_scaling.original_max_position_embeddings);
  SAME_S(rope_scaling.problem);
  for (int64_t i = 0; i < a->num_hidden_layers; i++) {
    SAME_I(intermediate_sizes[i]);
    FZ_CHECK(!a->layer_types == !b->layer_types, "layer_types present only once\n%s", json);
    if (a->layer_types) SAME_S(layer_types[i]);
  }
#undef SAME_I
#undef SAME_D
#undef SAME_S
}

static void check_bounds(const pf_model_config *c) {
  FZ_CHECK(c->hidden_size >= 1 && c->hidden_size <= (1 << 24), "hidden_size %lld",
           (long long)c->hidden_size);
  FZ_CHECK(c->num_hidden_layers >= 1 && c->num_hidden_layers <= 4096, "layers %lld",
           (long long)c->num_hidden_layers);
  FZ_CHECK(c->vocab_size >= 1 && c->vocab_size <= (1 << 22), "vocab %lld",
           (long long)c->vocab_size);
  FZ_CHECK(c->head_dim >= 1 && c->num_attention_heads * c->head_dim <= (1 << 24), "head_dim");
  FZ_CHECK(c->num_key_value_heads >= 1 && c->num_attention_heads % c->num_key_value_heads == 0,
           "kv heads");
  FZ_CHECK(c->intermediate_sizes != NULL, "no intermediate_sizes");
  FZ_CHECK(isfinite(c->rope_theta) && c->rope_theta > 0, "rope_theta %g", c->rope_theta);
  FZ_CHECK(isfinite(c->rms_norm_eps) && c->rms_norm_eps > 0, "rms_norm_eps %g", c->rms_norm_eps);
  for (int64_t i = 0; i < c->num_hidden_layers; i++) {
    FZ_CHECK(c->intermediate_sizes[i] >= 1 && c->intermediate_sizes[i] <= (1 << 24),
             "intermediate_sizes[%lld]", (long long)i);
    (void)pf_config_layer_window(c, i);
  }
  pf_rope_params rp;
  (void)pf_config_rope_params(c, &rp, NULL);
}

static void round_trip(const pf_model_config *c, int after_remove) {
  char *json = pf_config_to_json(c);
  FZ_CHECK(json != NULL, "pf_config_to_json returned NULL");
  pf_model_config c2;
  pf_err err = {0};
  pf_status s = pf_config_parse(json, "config.json", &c2, &err);
  FZ_CHECK(s == PF_OK, "the serialised config does not parse: %s\n%s", err.msg, json);
  check_same(c, &c2, json, after_remove);
  char *json2 = pf_config_to_json(&c2);
  FZ_CHECK(json2 && !strcmp(json, json2), "to_json is not idempotent:\n%s\n---\n%s", json,
           json2 ? json2 : "(null)");
  free(json2);
  pf_config_free(&c2);
  free(json);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = malloc(size + 1);
  if (!text) return 0;
  memcpy(text, data, size);
  text[size] = '\0';
  pf_model_config c;
  pf_err err = {0};
  if (pf_config_parse(text, "config.json", &c, &err) == PF_OK) {
    check_bounds(&c);
    round_trip(&c, 0);
    pf_model_config cp;
    FZ_CHECK(pf_config_copy(&cp, &c, &err) == PF_OK, "copy: %s", err.msg);
    if (cp.num_hidden_layers > 1) {
      FZ_CHECK(pf_config_remove_layer(&cp, 0, &err) == PF_OK, "remove_layer: %s", err.msg);
      round_trip(&cp, 1);
    }
    pf_config_free(&cp);
    pf_config_free(&c);
  } else {
    FZ_CHECK(c.raw == NULL && c.intermediate_sizes == NULL && err.msg[0],
             "failed parse left members or no message");
  }
  free(text);
  return 0;
}
