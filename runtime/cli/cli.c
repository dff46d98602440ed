/* cli.c — argv -> pf_cli. The rules and messages of the prune subcommand follow
 * OptiPFair's click CLI (reference §13.1) so scripts that match on them keep
 * working; pfrun adds --dry-run, --stats-json, --max-shard-size, --overwrite,
 * --pruning-type MLP (plain, non-GLU MLPs: gpt2, gpt_neox), which takes every
 * option MLP_GLU takes and follows the same rules, and --pruning-type ATTENTION
 * (op prune_heads) with --num-kv-heads-to-keep / --head-indices. OptiPFair's "... is only
 * valid with --pruning-type MLP_GLU." messages are kept word for word (scripts
 * match on them) and followed by a sentence naming MLP. */
#include "cli.h"

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "cli_int.h"
#include "help.h"
#include "opcmd.h"
#include "safetensors.h"
#include "strbuf.h"

const char *const pf_cli_devices[] = {"auto", "cpu", NULL};

int pf_cli_is_opt(const char *a, const char *name, const char **inline_val) {
  size_t n = strlen(name);
  if (strncmp(a, name, n) != 0) return 0;
  if (a[n] == '\0') {
    *inline_val = NULL;
    return 1;
  }
  if (a[n] == '=') {
    *inline_val = a + n + 1;
    return 1;
  }
  return 0;
}

pf_status pf_cli_take_value(opt_iter *it, const char *name, const char *inline_val,
                            const char **out, pf_err *err) {
  if (inline_val) {
    *out = inline_val;
    return PF_OK;
  }
  if (it->i + 1 >= it->argc)
    return pf_err_set(err, PF_ERR_INVALID, "Option '%s' requires an argument.", name);
  *out = it->argv[++it->i];
  return PF_OK;
}

/* A number as click reads it (Python's float() / int()): spaces around it are
 * allowed; hexadecimal (strtod's "0x10") is not. */
static const char *number_text(const char *s, char *buf, size_t n) {
  while (*s == ' ' || *s == '\t')
    s++;
  snprintf(buf, n, "%s", s);
  size_t len = strlen(buf);
  while (len && (buf[len - 1] == ' ' || buf[len - 1] == '\t'))
    buf[--len] = '\0';
  const char *d = buf + (*buf == '+' || *buf == '-');
  if (d[0] == '0' && (d[1] == 'x' || d[1] == 'X')) return ""; /* invalid */
  return buf;
}

pf_status pf_cli_parse_double(const char *name, const char *s, double *out, pf_err *err) {
  char *end = NULL, buf[128];
  const char *t = number_text(s, buf, sizeof buf);
  double v = strtod(t, &end); /* out of range: +-inf or 0, as Python's float() */
  if (!*t || *end)
    return pf_err_set(err, PF_ERR_INVALID, "Invalid value for '%s': '%s' is not a valid float.",
                      name, s);
  *out = v;
  return PF_OK;
}

pf_status pf_cli_parse_int(const char *name, const char *s, int64_t *out, pf_err *err) {
  char *end = NULL, buf[128];
  const char *t = number_text(s, buf, sizeof buf);
  errno = 0;
  long long v = strtoll(t, &end, 10);
  if (!*t || *end || errno)
    return pf_err_set(err, PF_ERR_INVALID, "Invalid value for '%s': '%s' is not a valid integer.",
                      name, s);
  *out = v;
  return PF_OK;
}

pf_status pf_cli_check_choice(const char *name, const char *v, const char *const *choices,
                              pf_err *err) {
  for (size_t i = 0; choices[i]; i++)
    if (strcmp(v, choices[i]) == 0) return PF_OK;
  char list[256] = "";
  for (size_t i = 0; choices[i]; i++) {
    strncat(list, i ? ", '" : "'", sizeof list - strlen(list) - 1);
    strncat(list, choices[i], sizeof list - strlen(list) - 1);
    strncat(list, "'", sizeof list - strlen(list) - 1);
  }
  return pf_err_set(err, PF_ERR_INVALID, "Invalid value for '%s': '%s' is not one of %s.", name, v,
                    list);
}

/* "2,5,8" -> list of ints; OptiPFair's message on failure (naming `name`). */
pf_status pf_cli_parse_indices(const char *name, const char *s, pf_value **out, pf_err *err) {
  pf_value *list = pf_value_list();
  if (!list) return pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  const char *p = s;
  while (1) {
    while (*p == ' ')
      p++;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(p, &end, 10);
    if (end == p || errno) goto bad;
    while (*end == ' ')
      end++;
    if (pf_list_push(list, pf_value_int(v)) != PF_OK) {
      pf_value_release(list);
      return pf_err_set(err, PF_ERR_NOMEM, "out of memory");
    }
    if (*end == '\0') break;
    if (*end != ',') goto bad;
    p = end + 1;
  }
  *out = list;
  return PF_OK;
bad:
  pf_value_release(list);
  return pf_err_set(err, PF_ERR_INVALID, "%s must be comma-separated integers (e.g., '2,5,8').",
                    name);
}

/* --quiet, --verbose, --dry-run: 1 when `a` was one of them. */
static int common_flag(const char *a, pf_cli *c) {
  if (!strcmp(a, "--quiet"))
    c->quiet = 1;
  else if (!strcmp(a, "--verbose"))
    c->quiet = 0;
  else if (!strcmp(a, "--dry-run"))
    c->dry_run = 1;
  else
    return 0;
  return 1;
}

/* The options every subcommand takes first: --help/-h switches to the help of
 * `topic` (2), a common flag is applied (1); anything else is 0. */
int pf_cli_leading_flag(const char *a, pf_cli *c, const char *topic) {
  if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
    c->kind = PF_CLI_HELP;
    c->topic = topic;
    return 2;
  }
  return common_flag(a, c);
}

static pf_status parse_analyze(opt_iter *it, pf_cli *c, pf_err *err) {
  const char *path = NULL;
  for (it->i = 2; it->i < it->argc; it->i++) {
    const char *a = it->argv[it->i], *iv = NULL, *v = NULL;
    pf_status st = PF_OK;
    const int lead = pf_cli_leading_flag(a, c, "analyze");
    if (lead == 2) return PF_OK;
    if (lead) continue;
    if (!strcmp(a, "--json"))
      c->json = 1;
    else if (pf_cli_is_opt(a, "--model-path", &iv))
      st = pf_cli_take_value(it, "--model-path", iv, &path, err);
    else if (pf_cli_is_opt(a, "--device", &iv)) {
      if ((st = pf_cli_take_value(it, "--device", iv, &v, err)) == PF_OK)
        st = pf_cli_check_choice("--device", v, pf_cli_devices, err);
    } else
      return pf_err_set(err, PF_ERR_INVALID, "No such option: %s", a);
    if (st != PF_OK) return st;
  }
  if (!path) return pf_err_set(err, PF_ERR_INVALID, "Missing option '--model-path'.");
  c->load_params = pf_value_map();
  if (!c->load_params) return pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  pf_map_set(c->load_params, "path", pf_value_str(path));
  return PF_OK;
}

static const pf_opt_map EVAL_OPTS[] = {
    {"--prompt", "prompt", 0},
    {"--max-new-tokens", "max_new_tokens", 0},
    {"--num-runs", "num_runs", 0},
    {"--warmup-runs", "warmup_runs", 0},
};
static const pf_opt_map BENCH_OPTS[] = {
    {"--tasks", "tasks", 0},
    {"--data-dir", "data_dir", 0},
    {"--task-dir", "task_dir", 0},
    {"--limit", "limit", 0},
    {"--bos", "bos", 0},
    {"--max-length", "max_length", 0},
    {"--batch-size", "batch_size", 0},
    {"--bootstrap-iters", "bootstrap_iters", 0},
    {"--log-samples", "log_samples", 1},
};
static const pf_opt_map GENERATE_OPTS[] = {
    {"--prompt", "prompt", 0},
    {"--max-new-tokens", "max_new_tokens", 0},
};

/* importance / eval / generate / bench: --model-path, their op options, --json, --compare. */
static pf_status parse_opcmd(opt_iter *it, pf_cli *c, const char *topic, pf_err *err) {
  const char *path = NULL;
  int is_gen = c->kind == PF_CLI_GENERATE, is_bench = c->kind == PF_CLI_BENCH;
  int is_eval = c->kind == PF_CLI_EVAL || is_bench; /* both take --compare */
  for (it->i = 2; it->i < it->argc; it->i++) {
    const char *a = it->argv[it->i], *iv = NULL;
    int matched = 0;
    pf_status st = PF_OK;
    const int lead = pf_cli_leading_flag(a, c, topic);
    if (lead == 2) return PF_OK;
    if (lead) continue;
    if (pf_cli_is_opt(a, "--model-path", &iv))
      st = pf_cli_take_value(it, "--model-path", iv, &path, err);
    else if (!is_gen && pf_cli_is_opt(a, "--json", &iv))
      st = pf_cli_take_value(it, "--json", iv, &c->json_out, err);
    else if (is_eval && pf_cli_is_opt(a, "--compare", &iv))
      st = pf_cli_take_value(it, "--compare", iv, &c->compare_path, err);
    else if (is_bench && !strcmp(a, "--no-context-cache")) {
      if (!c->op_params && !(c->op_params = pf_value_map()))
        return pf_err_set(err, PF_ERR_NOMEM, "out of memory");
      st = pf_map_set_bool(c->op_params, "context_cache", 0);
    } else if (is_bench) {
      st = pf_opt_take(it->argc, it->argv, &it->i, BENCH_OPTS,
                       sizeof BENCH_OPTS / sizeof *BENCH_OPTS, &c->op_params, &matched, err);
      if (!st && !matched) return pf_err_set(err, PF_ERR_INVALID, "No such option: %s", a);
    } else {
      if (!is_gen)
        st = pf_opt_take(it->argc, it->argv, &it->i, PF_DATA_OPTS, PF_N_DATA_OPTS, &c->op_params,
                         &matched, err);
      if (!st && !matched && (is_eval || is_gen))
        st = pf_opt_take(it->argc, it->argv, &it->i, is_gen ? GENERATE_OPTS : EVAL_OPTS,
                         is_gen ? 2 : sizeof EVAL_OPTS / sizeof *EVAL_OPTS, &c->op_params, &matched,
                         err);
      if (!st && !matched) return pf_err_set(err, PF_ERR_INVALID, "No such option: %s", a);
    }
    if (st != PF_OK) return st;
  }
  if (!path) return pf_err_set(err, PF_ERR_INVALID, "Missing option '--model-path'.");
  if (!c->op_params && !(c->op_params = pf_value_map()))
    return pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  if (c->kind == PF_CLI_IMPORTANCE && !pf_map_has(c->op_params, "data"))
    return pf_err_set(err, PF_ERR_INVALID, "Missing option '--data'.");
  if (is_gen && !pf_map_has(c->op_params, "prompt"))
    return pf_err_set(err, PF_ERR_INVALID, "Missing option '--prompt'.");
  if (is_bench && !pf_map_has(c->op_params, "tasks"))
    return pf_err_set(err, PF_ERR_INVALID, "Missing option '--tasks'.");
  if (c->kind == PF_CLI_EVAL && !pf_map_has(c->op_params, "data") &&
      !pf_map_has(c->op_params, "prompt"))
    return pf_err_set(err, PF_ERR_INVALID,
                      "eval needs --data FILE (perplexity) and/or --prompt TEXT (speed).");
  /* the speed options measure the prompt's generation: without one they did nothing */
  for (size_t k = 1; c->kind == PF_CLI_EVAL && k < sizeof EVAL_OPTS / sizeof *EVAL_OPTS; k++)
    if (pf_map_has(c->op_params, EVAL_OPTS[k].param) && !pf_map_has(c->op_params, "prompt"))
      return pf_err_set(err, PF_ERR_INVALID,
                        "%s needs --prompt TEXT (it times the generation of that prompt).",
                        EVAL_OPTS[k].flag);
  c->load_params = pf_value_map();
  if (!c->load_params) return pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  return pf_map_set(c->load_params, "path", pf_value_str(path));
}

/* pfrun bias: prompt pairs, layer selection, charts, metrics JSON. */
static pf_status parse_bias(opt_iter *it, pf_cli *c, pf_err *err) {
  const char *path = NULL, *pairs = "default", *layers = "first_middle_last";
  c->visualizations = NULL; /* default: mean_diff,heatmap,pca with --output-dir, else none */
  c->format = "png";
  for (it->i = 2; it->i < it->argc; it->i++) {
    const char *a = it->argv[it->i], *iv = NULL;
    pf_status st = PF_OK;
    const int lead = pf_cli_leading_flag(a, c, "bias");
    if (lead == 2) return PF_OK;
    if (lead) continue;
    if (pf_cli_is_opt(a, "--model-path", &iv))
      st = pf_cli_take_value(it, "--model-path", iv, &path, err);
    else if (pf_cli_is_opt(a, "--prompt-pairs", &iv))
      st = pf_cli_take_value(it, "--prompt-pairs", iv, &pairs, err);
    else if (pf_cli_is_opt(a, "--layers", &iv))
      st = pf_cli_take_value(it, "--layers", iv, &layers, err);
    else if (pf_cli_is_opt(a, "--visualizations", &iv))
      st = pf_cli_take_value(it, "--visualizations", iv, &c->visualizations, err);
    else if (pf_cli_is_opt(a, "--format", &iv)) {
      static const char *const FORMATS[] = {"png", "svg", "pdf", NULL};
      st = pf_cli_take_value(it, "--format", iv, &c->format, err);
      if (!st) st = pf_cli_check_choice("--format", c->format, FORMATS, err);
    } else if (pf_cli_is_opt(a, "--output-dir", &iv))
      st = pf_cli_take_value(it, "--output-dir", iv, &c->output_dir, err);
    else if (pf_cli_is_opt(a, "--json", &iv))
      st = pf_cli_take_value(it, "--json", iv, &c->json_out, err);
    else
      return pf_err_set(err, PF_ERR_INVALID, "No such option: %s", a);
    if (st != PF_OK) return st;
  }
  if (!path) return pf_err_set(err, PF_ERR_INVALID, "Missing option '--model-path'.");
  /* OptiPFair draws on screen without an output_dir; a command line without one prints
   * the metrics only (--visualizations given without --output-dir is an error below) */
  if (!c->visualizations) c->visualizations = c->output_dir ? "mean_diff,heatmap,pca" : "";
  static const char *const VIS[] = {"mean_diff", "heatmap", "pca", NULL};
  char buf[256];
  snprintf(buf, sizeof buf, "%s", c->visualizations);
  for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
    pf_status st = pf_cli_check_choice("--visualizations", t, VIS, err);
    if (st) return st;
  }
  if (*c->visualizations && !c->output_dir)
    return pf_err_set(err, PF_ERR_INVALID,
                      "--visualizations needs --output-dir DIR (or --visualizations '' for none).");
  c->load_params = pf_value_map();
  c->op_params = pf_value_map();
  if (!c->load_params || !c->op_params) return pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  pf_map_set(c->load_params, "path", pf_value_str(path));
  pf_map_set(c->op_params, "prompt_pairs", pf_value_str(pairs));
  /* metrics cover every layer (OptiPFair captures all of them); --layers picks the
   * layers drawn as heatmaps and PCA plots */
  if (!strcmp(layers, "first_middle_last") || !strcmp(layers, "all")) {
    c->plot_layers = pf_value_str(layers);
  } else {
    pf_status st = pf_cli_parse_indices("--layers", layers, &c->plot_layers, err);
    if (st)
      return pf_err_set(err, PF_ERR_INVALID,
                        "--layers must be first_middle_last, all, or comma-separated "
                        "integers (e.g. '0,2,5'), got '%s'",
                        layers);
  }
  return PF_OK;
}

static pf_status parse_recipe(opt_iter *it, pf_cli *c, pf_err *err) {
  c->kind = PF_CLI_RECIPE;
  c->file = it->argv[1];
  c->sets = calloc((size_t)it->argc, sizeof *c->sets);
  if (!c->sets) return pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  for (it->i = 2; it->i < it->argc; it->i++) {
    const char *a = it->argv[it->i], *iv = NULL, *v = NULL;
    const int lead = pf_cli_leading_flag(a, c, "recipe");
    if (lead == 2) return PF_OK;
    if (lead) continue;
    if (pf_cli_is_opt(a, "--set", &iv)) {
      pf_status st = pf_cli_take_value(it, "--set", iv, &v, err);
      if (st != PF_OK) return st;
      if (!strchr(v, '=') || v[0] == '=')
        return pf_err_set(err, PF_ERR_INVALID, "--set expects key=value, got '%s'", v);
      c->sets[c->n_sets++] = v;
    } else {
      return pf_err_set(err, PF_ERR_INVALID, "No such option for a recipe: %s", a);
    }
  }
  return PF_OK;
}

pf_status pf_pass_order_parse(const char *v, pf_pass_order *out, pf_err *err) {
  static const char *const names[] = {"auto", "batch", "layer"};
  for (int k = 0; k < 3; k++)
    if (v && !strcmp(v, names[k])) {
      *out = (pf_pass_order)k;
      return PF_OK;
    }
  return pf_err_set(err, PF_ERR_INVALID, "expected auto, batch or layer, got '%s'", v ? v : "");
}

/* One global option's value into c. */
static pf_status take_global(pf_cli *c, int k, const char *v, pf_err *err) {
  pf_status st = k == 0   ? pf_parse_size(v, &c->max_memory, err)
                 : k == 1 ? pf_parse_size(v, &c->memory_budget, err)
                          : pf_pass_order_parse(v, &c->pass_order, err);
  if (k == 2) c->pass_order_given = 1;
  return st;
}

/* --max-memory, --memory-budget and --pass-order (SIZE / VALUE, or =VALUE),
 * taken out of argv wherever they stand before a Lua script's name (arguments
 * after the script are the script's). The rest goes to *argv (a copy owned by
 * c; the strings stay argv's). */
static pf_status take_globals(int *argc, char ***argv, pf_cli *c, pf_err *err) {
  static const char *const names[] = {"--max-memory", "--memory-budget", "--pass-order"};
  char **in = *argv, **out = calloc((size_t)*argc + 1, sizeof *out);
  if (!out) return pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  c->argv_owned = out;
  int n = 0, lua = 0;
  for (int i = 0; i < *argc; i++) {
    const char *a = in[i], *iv = NULL;
    int k = -1;
    if (i > 0 && !lua && !strcmp(a, "--quiet")) { /* any command; a Lua script: before its name */
      c->quiet = 1;
      continue;
    }
    for (int j = 0; k < 0 && i > 0 && !lua && j < 3; j++)
      if (pf_cli_is_opt(a, names[j], &iv)) k = j;
    if (k >= 0) {
      if (!iv && i + 1 >= *argc)
        return pf_err_set(err, PF_ERR_INVALID, "Option '%s' requires an argument.", names[k]);
      const char *v = iv ? iv : in[++i];
      if (take_global(c, k, v, err) != PF_OK)
        return pf_err_prefix(err, "Invalid value for '%s'", names[k]);
      continue;
    }
    if (n == 1) lua = pf_str_ends_with(a, ".lua"); /* a is the command */
    out[n++] = in[i];
  }
  *argc = n;
  *argv = out;
  return PF_OK;
}

static pf_status parse_command(int argc, char **argv, pf_cli *c, pf_err *err);

pf_status pf_cli_parse(int argc, char **argv, pf_cli *c, pf_err *err) {
  memset(c, 0, sizeof *c);
  if (argc > 0) {
    pf_status st = take_globals(&argc, &argv, c, err);
    if (st != PF_OK) return st;
  }
  /* the help topic that covers the command (for "Try 'pfrun help TOPIC'") */
  static const char *const commands[] = {"prune", "analyze", "importance", "eval", "generate",
                                         "bench", "bias",    "tokenize",   "ops",  NULL};
  for (int k = 0; argc > 1 && commands[k]; k++)
    if (!strcmp(argv[1], commands[k])) c->usage_topic = commands[k];
  if (argc > 1 && (pf_str_ends_with(argv[1], ".yaml") || pf_str_ends_with(argv[1], ".yml")))
    c->usage_topic = "recipe";
  pf_status st = parse_command(argc, argv, c, err);
  /* "No such option: X" (or "... for a recipe: X"): name the close ones */
  const char *colon = err ? strstr(err->msg, ": ") : NULL;
  if (st != PF_OK && colon && !strncmp(err->msg, "No such option: ", 16) && colon[2] != '-') {
    /* not an option at all: a stray word (click's words for it) */
    char word[256];
    snprintf(word, sizeof word, "%s", colon + 2);
    int after_flag = 0; /* analyze's --json takes no value */
    for (int k = 2; k < argc; k++)
      if (!strcmp(argv[k], word) && !strcmp(argv[k - 1], "--json")) after_flag = 1;
    return pf_err_set(err, st, "Got unexpected extra argument (%s)%s", word,
                      after_flag && c->usage_topic && !strcmp(c->usage_topic, "analyze")
                          ? " (analyze's --json is a flag: the JSON goes to standard output)"
                          : "");
  }
  if (st != PF_OK && colon && !strncmp(err->msg, "No such option", 14)) {
    char msg[PF_ERR_MSG_MAX], hint[256];
    snprintf(msg, sizeof msg, "%s", err->msg);
    pf_help_suggest(c->usage_topic, msg + (colon - err->msg) + 2, hint, sizeof hint);
    pf_err_set(err, st, "%s%s", msg, hint);
  }
  return st;
}

static pf_status parse_command(int argc, char **argv, pf_cli *c, pf_err *err) {
  opt_iter it = {.argc = argc, .i = 1, .argv = argv};
  if (argc < 2) {
    c->kind = PF_CLI_HELP;
    return PF_OK;
  }
  const char *cmd = argv[1];
  if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
    c->kind = PF_CLI_HELP;
    c->topic = argc > 2 ? argv[2] : NULL;
    if (c->topic && !pf_cli_help(c->topic))
      return pf_err_set(err, PF_ERR_INVALID, "No help for '%s'.", c->topic);
    return PF_OK;
  }
  if (!strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
    c->kind = PF_CLI_VERSION;
    return PF_OK;
  }
  if (!strcmp(cmd, "prune")) {
    c->kind = PF_CLI_PRUNE;
    return pf_cli_parse_prune(&it, c, err);
  }
  if (!strcmp(cmd, "analyze")) {
    c->kind = PF_CLI_ANALYZE;
    return parse_analyze(&it, c, err);
  }
  if (!strcmp(cmd, "ops")) {
    c->kind = PF_CLI_OPS;
    const char *name = NULL;
    for (it.i = 2; it.i < argc; it.i++) {
      const int lead = pf_cli_leading_flag(argv[it.i], c, "ops");
      if (lead == 2) return PF_OK; /* --help / -h */
      if (lead) continue;
      if (argv[it.i][0] == '-' && argv[it.i][1])
        return pf_err_set(err, PF_ERR_INVALID, "No such option: %s", argv[it.i]);
      if (name) return pf_err_set(err, PF_ERR_INVALID, "usage: pfrun ops [NAME]");
      name = argv[it.i];
    }
    c->topic = name;
    return PF_OK;
  }
  static const struct {
    const char *name;
    pf_cli_kind kind;
  } opcmds[] = {{"importance", PF_CLI_IMPORTANCE},
                {"eval", PF_CLI_EVAL},
                {"generate", PF_CLI_GENERATE},
                {"bench", PF_CLI_BENCH}};
  for (size_t k = 0; k < sizeof opcmds / sizeof opcmds[0]; k++)
    if (!strcmp(cmd, opcmds[k].name)) {
      c->kind = opcmds[k].kind;
      return parse_opcmd(&it, c, opcmds[k].name, err);
    }
  if (!strcmp(cmd, "bias")) {
    c->kind = PF_CLI_BIAS;
    return parse_bias(&it, c, err);
  }
  if (!strcmp(cmd, "tokenize")) {
    pf_status st = pf_tokenize_parse(argc - 2, argv + 2, &c->tokenize, err);
    c->kind = st == PF_OK && c->tokenize.help ? PF_CLI_HELP : PF_CLI_TOKENIZE;
    if (c->kind == PF_CLI_HELP) c->topic = "tokenize";
    return st;
  }
  if (pf_str_ends_with(cmd, ".yaml") || pf_str_ends_with(cmd, ".yml"))
    return parse_recipe(&it, c, err);
  if (pf_str_ends_with(cmd, ".lua")) {
    c->kind = PF_CLI_LUA;
    c->file = cmd;
    c->script_argc = argc - 2;
    c->script_argv = argv + 2;
    return PF_OK;
  }
  return pf_err_set(
      err, PF_ERR_INVALID,
      "unknown command '%s' (expected prune, analyze, importance, eval, generate, bench, bias, "
      "tokenize, ops, a .yaml recipe or a .lua script; see pfrun --help)",
      cmd);
}

void pf_cli_free(pf_cli *c) {
  if (!c) return;
  pf_value_release(c->load_params);
  pf_value_release(c->prune_params);
  pf_value_release(c->save_params);
  pf_value_release(c->calib_params);
  pf_value_release(c->op_params);
  pf_value_release(c->plot_layers);
  free(c->sets);
  free(c->argv_owned);
  memset(c, 0, sizeof *c);
}

const char *pf_cli_help(const char *topic) {
  return pf_help_text(topic);
}

/* ------------------------------------------------------------ error words */

static const char *flag_for(const pf_opt_map *map, size_t n, const char *param) {
  for (size_t i = 0; i < n; i++)
    if (!strcmp(map[i].param, param)) return map[i].flag;
  return NULL;
}

void pf_cli_words(const pf_cli *c, pf_err *err) {
  static const char ow[] = "(use overwrite ";
  char *o = err && c->kind == PF_CLI_PRUNE ? strstr(err->msg, ow) : NULL;
  if (o) { /* save's hint: the option prune has for it */
    char msg[PF_ERR_MSG_MAX];
    snprintf(msg, sizeof msg, "%.*s(use --overwrite %s", (int)(o - err->msg), err->msg,
             o + sizeof ow - 1);
    snprintf(err->msg, sizeof err->msg, "%s", msg);
  }
  static const char key[] = "parameter '";
  char *at = err ? strstr(err->msg, key) : NULL;
  if (!at) return;
  char name[64];
  if (sscanf(at + sizeof key - 1, "%63[a-z_]", name) != 1 ||
      at[sizeof key - 1 + strlen(name)] != '\'')
    return;
  const char *flag = NULL;
  char dashed[72];
  if (c->kind == PF_CLI_PRUNE) {
    flag = flag_for(pf_cli_calib_opts, pf_cli_n_calib_opts, name);
    /* prune's own options are the parameters' names with dashes (--reconstruct-damping) */
    snprintf(dashed, sizeof dashed, "--%s", name);
    for (char *d = dashed; *d; d++)
      if (*d == '_') *d = '-';
    const char *help = pf_help_text("prune");
    const char *hit = help ? strstr(help, dashed) : NULL;
    if (!flag && hit && !isalnum((unsigned char)hit[strlen(dashed)]) && hit[strlen(dashed)] != '-')
      flag = dashed;
  } else if (c->kind == PF_CLI_BENCH)
    flag = flag_for(BENCH_OPTS, sizeof BENCH_OPTS / sizeof *BENCH_OPTS, name);
  else if (c->kind == PF_CLI_GENERATE)
    flag = flag_for(GENERATE_OPTS, sizeof GENERATE_OPTS / sizeof *GENERATE_OPTS, name);
  else if (c->kind == PF_CLI_EVAL || c->kind == PF_CLI_IMPORTANCE)
    flag = (flag = flag_for(PF_DATA_OPTS, PF_N_DATA_OPTS, name))
               ? flag
               : flag_for(EVAL_OPTS, sizeof EVAL_OPTS / sizeof *EVAL_OPTS, name);
  if (!flag) return;
  char msg[PF_ERR_MSG_MAX];
  snprintf(msg, sizeof msg, "%.*soption '%s'%s", (int)(at - err->msg), err->msg, flag,
           at + sizeof key - 1 + strlen(name) + 1);
  snprintf(err->msg, sizeof err->msg, "%s", msg);
}
