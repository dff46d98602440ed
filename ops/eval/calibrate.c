/* calibrate.c — op "calibrate": per-layer per-neuron down_proj input norms and
 * layer importance from calibration text, in one forward pass (calibration.h).
 *
 * With `cache` (a folder), the result is stored as <cache>/calib-<key>.json where
 * key = SHA-256 of the model fingerprint (config + weight files' identity or
 * derived bytes), the dataset fingerprint (file contents, every data option, the
 * token ids), the layer selection and the matmul precision that will run (bf16 on
 * AMX or AVX512-BF16, or f32, kernels.h); a later run with the same key reads it back
 * instead of running the model, so a sweep over pruning ratios or methods
 * calibrates once. Any changed input gives another key, never a stale result.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "calibration.h"
#include "fsutil.h"
#include "json.h"
#include "kernels/kernels.h"
#include "dist.h"
#include "ophelp.h"
#include "opdata.h"
#include "pruning.h"

static const pf_param_spec calibrate_params[] = {
    {"model", PF_P_MODEL, 1, NULL, NULL, 0, 0, "the (unpruned) model to calibrate"},
    PF_DATA_PARAMS(1, "0", "8"),
    {"layer_indices", PF_P_INTLIST, 0, NULL, NULL, 0, 0,
     "collect neuron norms for these layers only (default: all)"},
    {"cache", PF_P_STR, 0, NULL, NULL, 0, 0,
     "folder for cached results keyed by model, data and options (created if missing)"},
};

#define CALIB_FORMAT "pfrun-calibration-2" /* 2: with head_norms */

static void cache_key(const char *mfp, const pf_dataset *ds, const int64_t *idx, size_t n,
                      char key[PF_SHA256_HEX]) {
  pf_sha256 h;
  pf_sha256_init(&h);
  pf_sha256_update(&h, CALIB_FORMAT, sizeof CALIB_FORMAT);
  pf_sha256_update(&h, mfp, PF_SHA256_HEX);
  const char *dfp = pf_dataset_fingerprint(ds);
  pf_sha256_update(&h, dfp, strlen(dfp) + 1);
  pf_sha256_update(&h, &n, sizeof n);
  if (n) pf_sha256_update(&h, idx, n * sizeof *idx);
  /* BF16 weights give slightly different norms with the bf16 (AMX, AVX512-BF16) and
   * f32 matmuls */
  const char *mm = pf_matmul_name(pf_kernels_matmul_effective());
  pf_sha256_update(&h, mm, strlen(mm) + 1);
  pf_sha256_final_hex(&h, key);
}

static char *cache_path(const char *dir, const char *key) {
  char name[128];
  snprintf(name, sizeof name, "calib-%s.json", key);
  return pf_path_join(dir, name);
}

/* The cache file is the result's JSON, then a line "sha256 <hex of the JSON>": a
 * damaged or edited file is a miss (computed again), never used. */
#define SUM_TAG "\nsha256 "

static void text_sum(const char *text, size_t len, char hex[PF_SHA256_HEX]) {
  pf_sha256 h;
  pf_sha256_init(&h);
  pf_sha256_update(&h, text, len);
  pf_sha256_final_hex(&h, hex);
}

/* The cached result, or NULL when absent or unreadable (then it is recomputed). */
static pf_value *cache_read(const char *path, const char *key) {
  char *text = NULL;
  size_t len = 0;
  if (!pf_path_exists(path) || pf_read_file(path, (size_t)1 << 31, &text, &len, NULL) != PF_OK)
    return NULL;
  const size_t tail = sizeof SUM_TAG - 1 + PF_SHA256_HEX - 1 + 1; /* tag, hex, "\n" */
  char hex[PF_SHA256_HEX];
  if (len > tail) text_sum(text, len - tail, hex);
  if (len <= tail || memcmp(text + len - tail, SUM_TAG, sizeof SUM_TAG - 1) != 0 ||
      memcmp(text + len - tail + sizeof SUM_TAG - 1, hex, PF_SHA256_HEX - 1) != 0) {
    free(text);
    return NULL;
  }
  len -= tail;
  cJSON *j = pf_json_parse(text, len, NULL, 0, NULL); /* NULL for any reason: a miss */
  free(text);
  pf_value *v = j ? pf_value_from_json(j) : NULL;
  cJSON_Delete(j);
  if (v && (v->type != PF_V_MAP || strcmp(pf_map_str(v, "cache_key", ""), key) != 0)) {
    pf_value_release(v);
    v = NULL;
  }
  return v;
}

/* pf_write_file writes a temporary file and renames it: readers never see half a file. */
static pf_status cache_write(const char *dir, const char *path, const pf_value *v, pf_err *err) {
  pf_status st = pf_mkdirs(dir, err);
  char *json = st ? NULL : pf_value_to_json_text(v);
  const size_t n = json ? strlen(json) : 0;
  char *text = json ? realloc(json, n + sizeof SUM_TAG + PF_SHA256_HEX + 1) : NULL;
  if (!st && !text) {
    free(json);
    st = pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  }
  if (!st) {
    char hex[PF_SHA256_HEX];
    text_sum(text, n, hex);
    snprintf(text + n, sizeof SUM_TAG + PF_SHA256_HEX + 1, "%s%s\n", SUM_TAG, hex);
    st = pf_write_file(path, text, strlen(text), err); /* a temp file and a rename */
  }
  free(text);
  return st;
}

static pf_status compute(const pf_model *m, const pf_dataset *ds, const int64_t *idx, size_t n,
                         const pf_ctx *ctx, pf_value **out, pf_err *err) {
  uint8_t *flags = NULL;
  if (n) {
    flags = calloc((size_t)m->n_layers, 1);
    if (!flags) return pf_err_set(err, PF_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++)
      flags[idx[i]] = 1;
  }
  pf_calibration c;
  pf_status st = pf_calibration_run(m, ds, flags, 1, 1, &c, ctx, err);
  free(flags);
  if (st) return st;
  *out = pf_calibration_to_value(&c);
  pf_calibration_free(&c);
  return *out ? PF_OK : pf_err_set(err, PF_ERR_NOMEM, "out of memory");
}

/* A dry run's result: the shape of the norms and importance it would compute. */
static pf_value *planned(const pf_model *m, const int64_t *idx, size_t n) {
  uint8_t *flags = n ? calloc((size_t)m->n_layers, 1) : NULL;
  if (n && !flags) return NULL;
  for (size_t i = 0; i < n; i++)
    flags[idx[i]] = 1;
  pf_value *v = pf_calibration_plan_value(m, flags, 1);
  free(flags);
  return v;
}

static pf_status calibrate_run(const pf_op *op, const pf_value *params, pf_value **out,
                               const pf_ctx *ctx, pf_err *err) {
  const pf_model *m = pf_map_model(params, "model");
  const char *cache = pf_map_str(params, "cache", NULL);
  int64_t *idx = NULL;
  size_t n = 0;
  int have = 0;
  pf_tokenizer *tok = NULL;
  pf_dataset *ds = NULL;
  pf_value *r = NULL;
  char key[PF_SHA256_HEX] = "", mfp[PF_SHA256_HEX] = "", *path = NULL;
  pf_status st = pf_param_intlist(params, "layer_indices", &idx, &n, &have, err);
  if (!st && have) st = pf_check_layer_indices(idx, n, m->n_layers, err);
  if (!st) st = pf_params_dataset(m, params, &tok, &ds, err);
  int dry = ctx && ctx->dry_run, cached = 0;
  if (!st && dry && !(r = planned(m, idx, n))) st = pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  /* the model the result belongs to: prune_width / prune_heads / score refuse it for
   * another (pf_calibration_check_model) */
  if (!st && !dry) st = pf_model_fingerprint(m, mfp, err);
  if (!st && !dry && cache) {
    cache_key(mfp, ds, idx, n, key);
    if (!(path = cache_path(cache, key))) st = pf_err_set(err, PF_ERR_NOMEM, "out of memory");
    if (!st) cached = (r = cache_read(path, key)) != NULL;
    /* MPI: a hit on some ranks only (node-local cache folders) and the others would
     * wait in the pass for ranks that never come: all hit, or all compute */
    if (!st && !pf_dist_all(cached)) {
      pf_value_release(r);
      r = NULL;
      cached = 0;
    }
  }
  if (!st && !r) st = compute(m, ds, idx, n, ctx, &r, err);
  if (!st && !dry) st = pf_map_set_str(r, "model_fingerprint", mfp);
  if (!st && !dry && cache) st = pf_map_set_str(r, "cache_key", key);
  /* MPI: rank 0 alone writes */
  if (!st && !dry && cache && !cached && pf_dist_writer()) {
    pf_err w = {0}; /* a cache that cannot be written costs the next run time, not this one */
    if (cache_write(cache, path, r, &w) != PF_OK) {
      char note[PF_ERR_MSG_MAX + 40];
      snprintf(note, sizeof note, "the result was not cached: %s", w.msg);
      pf_ctx_log(ctx, "warning: calibrate: %s", note);
      st = pf_map_set_str(r, "warning", note); /* a script tells "not yet" from "failed" */
    }
  }
  if (!st) st = pf_map_set_bool(r, "cached", cached);
  if (!st) {
    pf_value *sv = pf_data_stats_value(ds);
    st = sv ? pf_map_set(r, "data", sv) : pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  }
  free(idx);
  free(path);
  pf_dataset_free(ds);
  pf_tokenizer_free(tok);
  if (st) {
    pf_value_release(r);
    return st;
  }
  *out = r;
  return PF_OK;
}

const pf_op pf_op_calibrate = {
    .name = "calibrate",
    .alias = NULL,
    .summary = "run calibration text: per-neuron down_proj input norms + layer importance",
    .params = calibrate_params,
    .n_params = sizeof calibrate_params / sizeof calibrate_params[0],
    .returns =
        "{norms: {\"<layer>\": [X_i...]}, importance: {\"<layer>\": score}, head_norms: "
        "{\"<layer>\": [mean per-token L2 norm of each attention head's output]}, "
        "num_hidden_layers (of the model calibrated: another model's count is refused), "
        "model_fingerprint (of the model calibrated: the ops that take the result refuse it for "
        "another model), cached, [warning: why the result was not cached], "
        "cache_key (with cache), data: {samples, samples_skipped, samples_truncated, "
        "batches, tokens}}; pass it as `calibration` to prune_width / score (method "
        "MAW), to prune_heads, or as `importance` to prune_depth",
    .run = calibrate_run,
};
