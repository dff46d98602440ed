/* load.c — op "load": open a checkpoint folder or a built-in synthetic model. */
#include <stdlib.h>
#include <string.h>

#include "op.h"
#include "synthetic.h"

static const pf_param_spec load_params[] = {
    {"path", PF_P_STR, 1, NULL, NULL, 0, 0,
     "a Hugging Face checkpoint folder (config.json + safetensors), or "
     "\"synthetic:NAME[@SEED][:DTYPE]\" for a seeded synthetic model written once to the cache "
     "(a dry run plans it without writing it) (presets: llama-tiny, llama-small, qwen2-tiny, "
     "qwen3-tiny, mistral-tiny, llama-1b, llama-medium, gemma-tiny, gemma2-tiny, gemma3-tiny, "
     "phi3-tiny, gpt2-tiny, neox-tiny, llama-7b, llama-13b)"},
};

/* The result map: {model, name, num_hidden_layers, parameters, ...}. */
static pf_status load_result(pf_model *m, pf_value **out, pf_err *err) {
  pf_value *sum = pf_value_model_summary(m), *r = pf_value_map();
  pf_status st = sum && r ? pf_map_set(r, "model", pf_value_model(m)) : PF_ERR_NOMEM;
  if (!st) st = pf_map_set_str(r, "name", m->name ? m->name : "");
  if (!st) st = pf_map_set_str(r, "model_type", m->config.model_type);
  if (!st && m->config.warning[0]) st = pf_map_set_str(r, "warning", m->config.warning);
  for (size_t i = 0; !st && i < sum->u.map.len; i++) {
    if (i == 0) continue; /* the summary's "model" is the name again */
    pf_value_retain(sum->u.map.vals[i]);
    st = pf_map_set(r, sum->u.map.keys[i], sum->u.map.vals[i]);
  }
  pf_value_release(sum);
  if (st) {
    pf_value_release(r);
    return pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  }
  *out = r;
  return PF_OK;
}

/* A synthetic model is named by its spec ("synthetic:llama-tiny"), not by the
 * cache folder it was written to. The model is not handed out yet. */
static pf_status name_model(pf_model *m, const char *spec, pf_err *err) {
  char *name = strdup(spec);
  if (!name) return pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  free(m->name);
  m->name = name;
  return PF_OK;
}

static pf_status load_run(const pf_op *op, const pf_value *params, pf_value **out,
                          const pf_ctx *ctx, pf_err *err) {
  const char *path = pf_map_str(params, "path", "");
  char *dir = NULL;
  pf_model *m = NULL;
  pf_status st = PF_OK;
  if (pf_synth_is_spec(path) && ctx && ctx->dry_run)
    st = pf_synth_open_plan(path, &m, err); /* a dry run writes no weights, not even these */
  else if (pf_synth_is_spec(path))
    st = pf_synth_resolve(path, &dir, ctx, err);
  if (!st && !m) st = pf_model_load(dir ? dir : path, &m, err);
  if (!st && dir) st = name_model(m, path, err);
  free(dir);
  if (!st) st = load_result(m, out, err);
  /* config notes (unknown model_type read as LLaMA, Gemma's two activation keys) */
  if (!st && m->config.warning[0]) pf_ctx_log(ctx, "warning: %s", m->config.warning);
  pf_model_release(m);
  return st;
}

const pf_op pf_op_load = {
    .name = "load",
    .alias = NULL,
    .summary = "open a checkpoint folder (or a built-in synthetic model)",
    .params = load_params,
    .n_params = sizeof load_params / sizeof load_params[0],
    .returns = "{model, name, model_type, [warning], num_hidden_layers, parameters, dtype, "
               "hidden_size, intermediate_size}; weights are memory-mapped, not read",
    .run = load_run,
};
