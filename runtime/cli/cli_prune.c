/* cli_prune.c — `pfrun prune`: its options, OptiPFair's rules between them
 * (click's messages, reference §13.1) and the op parameters they become
 * (prune_width / prune_depth / prune_heads, calibrate, save). See cli.c for
 * the other subcommands. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "cli_int.h"
#include "opcmd.h"
#include "safetensors.h"

typedef struct prune_opts {
  const char *model_path, *output_path, *pruning_type, *method, *divisor, *indices;
  const char *selection, *dtype, *max_shard, *head_indices;
  int have_pct, have_rate, have_num, have_kv_keep, overwrite, reconstruct, have_damping;
  double pct, rate, damping;
  int64_t num, kv_keep;
} prune_opts;

/* MLP_GLU and MLP (width pruning): the same rules. */
/* --reconstruct / --reconstruct-damping (width and attention pruning). */
static pf_status reconstruct_params(const prune_opts *o, pf_value *params, pf_err *err) {
  if (o->have_damping && !o->reconstruct)
    return pf_err_set(err, PF_ERR_INVALID,
                      "--reconstruct-damping is only valid with --reconstruct.");
  if (o->reconstruct) pf_map_set(params, "reconstruct", pf_value_bool(1));
  if (o->have_damping) pf_map_set(params, "reconstruct_damping", pf_value_num(o->damping));
  return PF_OK;
}

static pf_status prune_rules_glu(const prune_opts *o, pf_value *params, pf_err *err) {
  if (o->have_pct && o->have_rate)
    return pf_err_set(err, PF_ERR_INVALID,
                      "--pruning-percentage and --expansion-rate are mutually exclusive.");
  if (o->have_num)
    return pf_err_set(err, PF_ERR_INVALID,
                      "--num-layers-to-remove is only valid with --pruning-type DEPTH.");
  if (o->selection && strcmp(o->selection, "last") != 0)
    return pf_err_set(err, PF_ERR_INVALID,
                      "--layer-selection-method is only valid with --pruning-type DEPTH.");
  pf_map_set(params, "pruning_type", pf_value_str(o->pruning_type));
  pf_map_set(params, "method", pf_value_str(o->method));
  if (o->have_rate)
    pf_map_set(params, "expansion_rate", pf_value_num(o->rate));
  else
    pf_map_set(params, "pruning_percentage", pf_value_num(o->have_pct ? o->pct : 10.0));
  if (o->divisor) pf_map_set(params, "expansion_divisor", pf_value_int(atoi(o->divisor)));
  return reconstruct_params(o, params, err);
}

/* OptiPFair's sentence, then pfrun's width type that takes the option too. */
#define ALSO_MLP " pfrun also takes it with --pruning-type MLP (non-GLU MLPs)."

static pf_status prune_rules_depth(const prune_opts *o, pf_value *params, pf_err *err) {
  if (o->divisor)
    return pf_err_set(err, PF_ERR_INVALID,
                      "--expansion-divisor is only valid with --pruning-type MLP_GLU." ALSO_MLP);
  if (o->reconstruct || o->have_damping)
    return pf_err_set(err, PF_ERR_INVALID,
                      "--reconstruct is only valid with --pruning-type MLP_GLU, MLP or ATTENTION.");
  int given = (o->have_num != 0) + (o->indices != NULL) + (o->have_pct != 0);
  if (given == 0)
    return pf_err_set(err, PF_ERR_INVALID,
                      "For DEPTH pruning, specify one of: --num-layers-to-remove, "
                      "--layer-indices, or --pruning-percentage.");
  if (given > 1)
    return pf_err_set(err, PF_ERR_INVALID,
                      "--num-layers-to-remove, --layer-indices, and --pruning-percentage are "
                      "mutually exclusive.");
  if (o->have_rate)
    return pf_err_set(err, PF_ERR_INVALID,
                      "--expansion-rate is only valid with --pruning-type MLP_GLU." ALSO_MLP);
  if (strcmp(o->method, "MAW") != 0)
    return pf_err_set(err, PF_ERR_INVALID,
                      "--method is only valid with --pruning-type MLP_GLU." ALSO_MLP);
  if (o->have_num) pf_map_set(params, "num_layers_to_remove", pf_value_int(o->num));
  if (o->have_pct) pf_map_set(params, "depth_pruning_percentage", pf_value_num(o->pct));
  if (o->selection) pf_map_set(params, "layer_selection_method", pf_value_str(o->selection));
  return PF_OK;
}

/* pfrun's ATTENTION (op prune_heads): whole attention heads (GQA groups). */
static pf_status prune_rules_heads(const prune_opts *o, pf_value *params, pf_err *err) {
  const char *bad = o->divisor                                     ? "--expansion-divisor"
                    : o->have_rate                                 ? "--expansion-rate"
                    : o->have_num                                  ? "--num-layers-to-remove"
                    : strcmp(o->method, "MAW")                     ? "--method"
                    : o->selection && strcmp(o->selection, "last") ? "--layer-selection-method"
                                                                   : NULL;
  if (bad)
    return pf_err_set(err, PF_ERR_INVALID,
                      "%s is not valid with --pruning-type ATTENTION (it takes "
                      "--pruning-percentage, --num-kv-heads-to-keep or --head-indices).",
                      bad);
  int given = (o->have_pct != 0) + (o->have_kv_keep != 0) + (o->head_indices != NULL);
  if (given == 0)
    return pf_err_set(err, PF_ERR_INVALID,
                      "For ATTENTION pruning, specify one of: --pruning-percentage, "
                      "--num-kv-heads-to-keep, or --head-indices.");
  if (given > 1)
    return pf_err_set(err, PF_ERR_INVALID,
                      "--pruning-percentage, --num-kv-heads-to-keep, and --head-indices are "
                      "mutually exclusive.");
  if (o->have_pct) pf_map_set(params, "pruning_percentage", pf_value_num(o->pct));
  if (o->have_kv_keep) pf_map_set(params, "num_kv_heads_to_keep", pf_value_int(o->kv_keep));
  return reconstruct_params(o, params, err);
}

static const char *const PRUNING_TYPES[] = {"MLP_GLU", "MLP", "DEPTH", "ATTENTION", NULL};
static const char *const METHODS[] = {"MAW", "VOW", "PON", "L2", NULL};
static const char *const DIVISORS[] = {"32", "64", "128", "256", NULL};
static const char *const SELECTIONS[] = {"last", "first", "custom", NULL};
static const char *const DTYPES[] = {"auto", "float32", "float16", "bfloat16", NULL};

/* The string-valued prune options: flag, field, allowed values (NULL = any). */
typedef struct str_opt {
  const char *flag;
  size_t offset;
  const char *const *choices;
} str_opt;

static const str_opt STR_OPTS[] = {
    {"--model-path", offsetof(prune_opts, model_path), NULL},
    {"--output-path", offsetof(prune_opts, output_path), NULL},
    {"--pruning-type", offsetof(prune_opts, pruning_type), PRUNING_TYPES},
    {"--method", offsetof(prune_opts, method), METHODS},
    {"--expansion-divisor", offsetof(prune_opts, divisor), DIVISORS},
    {"--layer-indices", offsetof(prune_opts, indices), NULL},
    {"--layer-selection-method", offsetof(prune_opts, selection), SELECTIONS},
    {"--dtype", offsetof(prune_opts, dtype), DTYPES},
    {"--max-shard-size", offsetof(prune_opts, max_shard), NULL},
    {"--head-indices", offsetof(prune_opts, head_indices), NULL},
};

/* prune's calibration options -> the calibrate op's parameters. */
const pf_opt_map pf_cli_calib_opts[] = {
    {"--calibration-data", "data", 0},   {"--calibration-samples", "samples", 0},
    {"--calibration-cache", "cache", 0}, {"--max-length", "max_length", 0},
    {"--min-length", "min_length", 0},   {"--batch-size", "batch_size", 0},
    {"--text-field", "text_field", 0},   {"--pack", "pack", 1},
};

/* Parse one prune option at it->i; *matched = 0 when the option is not a prune option. */
static pf_status prune_option(opt_iter *it, prune_opts *o, pf_cli *c, int *matched, pf_err *err) {
  const char *a = it->argv[it->i], *iv = NULL, *v = NULL;
  pf_status st = PF_OK;
  *matched = 1;
  for (size_t k = 0; k < sizeof STR_OPTS / sizeof STR_OPTS[0]; k++) {
    const str_opt *so = &STR_OPTS[k];
    if (!pf_cli_is_opt(a, so->flag, &iv)) continue;
    if ((st = pf_cli_take_value(it, so->flag, iv, &v, err)) != PF_OK) return st;
    if (so->choices && (st = pf_cli_check_choice(so->flag, v, so->choices, err)) != PF_OK)
      return st;
    *(const char **)((char *)o + so->offset) = v;
    return PF_OK;
  }
  if (pf_cli_is_opt(a, "--device", &iv)) {
    if ((st = pf_cli_take_value(it, "--device", iv, &v, err)) != PF_OK) return st;
    return pf_cli_check_choice("--device", v, pf_cli_devices, err);
  }
  if (pf_cli_is_opt(a, "--stats-json", &iv))
    return pf_cli_take_value(it, "--stats-json", iv, &c->stats_json, err);
  if (pf_cli_is_opt(a, "--pruning-percentage", &iv)) {
    if ((st = pf_cli_take_value(it, "--pruning-percentage", iv, &v, err)) != PF_OK) return st;
    o->have_pct = 1;
    return pf_cli_parse_double("--pruning-percentage", v, &o->pct, err);
  }
  if (pf_cli_is_opt(a, "--expansion-rate", &iv)) {
    if ((st = pf_cli_take_value(it, "--expansion-rate", iv, &v, err)) != PF_OK) return st;
    o->have_rate = 1;
    return pf_cli_parse_double("--expansion-rate", v, &o->rate, err);
  }
  if (pf_cli_is_opt(a, "--num-layers-to-remove", &iv)) {
    if ((st = pf_cli_take_value(it, "--num-layers-to-remove", iv, &v, err)) != PF_OK) return st;
    o->have_num = 1;
    return pf_cli_parse_int("--num-layers-to-remove", v, &o->num, err);
  }
  if (pf_cli_is_opt(a, "--num-kv-heads-to-keep", &iv)) {
    if ((st = pf_cli_take_value(it, "--num-kv-heads-to-keep", iv, &v, err)) != PF_OK) return st;
    o->have_kv_keep = 1;
    return pf_cli_parse_int("--num-kv-heads-to-keep", v, &o->kv_keep, err);
  }
  if (pf_cli_is_opt(a, "--reconstruct-damping", &iv)) {
    if ((st = pf_cli_take_value(it, "--reconstruct-damping", iv, &v, err)) != PF_OK) return st;
    o->have_damping = 1;
    return pf_cli_parse_double("--reconstruct-damping", v, &o->damping, err);
  }
  if (!strcmp(a, "--reconstruct"))
    o->reconstruct = 1;
  else if (!strcmp(a, "--overwrite"))
    o->overwrite = 1;
  else
    *matched = 0;
  if (*matched) return PF_OK;
  return pf_opt_take(it->argc, it->argv, &it->i, pf_cli_calib_opts,
                     sizeof pf_cli_calib_opts / sizeof *pf_cli_calib_opts, &c->calib_params,
                     matched, err);
}

static pf_status build_prune(const prune_opts *o, pf_cli *c, pf_err *err) {
  if (!o->model_path) return pf_err_set(err, PF_ERR_INVALID, "Missing option '--model-path'.");
  if (!o->output_path) return pf_err_set(err, PF_ERR_INVALID, "Missing option '--output-path'.");
  if (!*o->output_path || !*o->model_path)
    return pf_err_set(err, PF_ERR_INVALID, "Invalid value for '%s': an empty path.",
                      *o->output_path ? "--model-path" : "--output-path");
  uint64_t shard = 0; /* checked now, not after the pruning */
  if (o->max_shard && pf_parse_size(o->max_shard, &shard, err) != PF_OK)
    return pf_err_prefix(err, "Invalid value for '--max-shard-size'");
  c->load_params = pf_value_map();
  c->prune_params = pf_value_map();
  c->save_params = pf_value_map();
  if (!c->load_params || !c->prune_params || !c->save_params)
    return pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  pf_map_set(c->load_params, "path", pf_value_str(o->model_path));
  int depth = strcmp(o->pruning_type, "DEPTH") == 0;
  int heads = strcmp(o->pruning_type, "ATTENTION") == 0;
  c->prune_op = depth ? "prune_depth" : heads ? "prune_heads" : "prune_width";
  pf_status st = depth   ? prune_rules_depth(o, c->prune_params, err)
                 : heads ? prune_rules_heads(o, c->prune_params, err)
                         : prune_rules_glu(o, c->prune_params, err);
  if (st != PF_OK) return st;
  if (!heads && (o->have_kv_keep || o->head_indices))
    return pf_err_set(err, PF_ERR_INVALID, "%s is only valid with --pruning-type ATTENTION.",
                      o->have_kv_keep ? "--num-kv-heads-to-keep" : "--head-indices");
  if (o->head_indices) {
    pf_value *list = NULL;
    if ((st = pf_cli_parse_indices("--head-indices", o->head_indices, &list, err)) != PF_OK)
      return st;
    pf_map_set(c->prune_params, "head_indices", list);
  }
  if (o->indices) {
    pf_value *list = NULL;
    if ((st = pf_cli_parse_indices("--layer-indices", o->indices, &list, err)) != PF_OK) return st;
    pf_map_set(c->prune_params, "layer_indices", list);
  }
  if (c->calib_params && !pf_map_has(c->calib_params, "data"))
    return pf_err_set(err, PF_ERR_INVALID,
                      "calibration options need --calibration-data FILE (a .jsonl or .txt file).");
  if (o->reconstruct && !c->calib_params)
    return pf_err_set(err, PF_ERR_INVALID,
                      "--reconstruct needs --calibration-data FILE (a .jsonl or .txt file).");
  /* DEPTH with calibration text removes the least important layers: a selection
   * method or fixed indices would be ignored or refused by the op in its own words */
  if (depth && c->calib_params && (o->indices || o->selection)) /* even "last", the default */
    return pf_err_set(err, PF_ERR_INVALID,
                      "%s cannot be combined with --calibration-data for --pruning-type DEPTH "
                      "(the calibration text picks the least important layers; use "
                      "--num-layers-to-remove or --pruning-percentage with it).",
                      o->indices ? "--layer-indices" : "--layer-selection-method");
  /* OptiPFair's guard, before any calibration work is done (with --reconstruct the
   * text is reconstruct's, and hybrid scores are used for MAW only) */
  if (c->calib_params && !depth && !o->reconstruct && strcmp(o->method, "MAW") != 0)
    return pf_err_set(err, PF_ERR_INVALID,
                      "Data-driven pruning with dataloader is only supported for PPM method "
                      "(parameter 'MAW'). Got neuron_selection_method='%s'. Please use "
                      "neuron_selection_method='MAW' or remove the dataloader parameter.",
                      o->method);
  pf_map_set(c->save_params, "path", pf_value_str(o->output_path));
  pf_map_set(c->save_params, "dtype", pf_value_str(o->dtype));
  /* OptiPFair's CLI loads the model with torch_dtype and ranks the converted weights */
  if (strcmp(c->prune_op, "prune_depth") != 0 && strcmp(o->dtype, "auto") != 0)
    pf_map_set(c->prune_params, "rank_dtype", pf_value_str(o->dtype));
  if (o->max_shard) pf_map_set(c->save_params, "max_shard_size", pf_value_str(o->max_shard));
  if (o->overwrite) pf_map_set(c->save_params, "overwrite", pf_value_bool(1));
  return PF_OK;
}

pf_status pf_cli_parse_prune(opt_iter *it, pf_cli *c, pf_err *err) {
  prune_opts o = {.pruning_type = "MLP_GLU", .method = "MAW", .dtype = "auto"}; /* selection:
                                                                   NULL unless given ("last") */
  for (it->i = 2; it->i < it->argc; it->i++) {
    const char *a = it->argv[it->i];
    int matched = 0;
    const int lead = pf_cli_leading_flag(a, c, "prune");
    if (lead == 2) return PF_OK;
    if (lead) continue;
    pf_status st = prune_option(it, &o, c, &matched, err);
    if (st != PF_OK) return st;
    if (!matched) return pf_err_set(err, PF_ERR_INVALID, "No such option: %s", a);
  }
  return build_prune(&o, c, err);
}

const size_t pf_cli_n_calib_opts = sizeof pf_cli_calib_opts / sizeof *pf_cli_calib_opts;
