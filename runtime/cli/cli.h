/* cli.h — the pfrun command line, parsed into a plan of op calls.
 *
 * Parsing never prints: main.c prints help, errors and results. The OptiPFair-
 * style subcommands keep OptiPFair's option names and its validation messages
 * (reference §13.1), e.g. "--pruning-percentage and --expansion-rate are
 * mutually exclusive.".
 */
#ifndef PF_CLI_H
#define PF_CLI_H

#include "pf.h"
#include "tokenize.h"
#include "value.h"

typedef enum pf_cli_kind {
  PF_CLI_HELP,       /* pfrun --help, pfrun help [topic], pfrun <cmd> --help */
  PF_CLI_VERSION,    /* pfrun --version */
  PF_CLI_PRUNE,      /* pfrun prune ... */
  PF_CLI_ANALYZE,    /* pfrun analyze ... */
  PF_CLI_OPS,        /* pfrun ops [NAME] */
  PF_CLI_RECIPE,     /* pfrun file.yaml [--set k=v] [--dry-run] */
  PF_CLI_LUA,        /* pfrun file.lua args... */
  PF_CLI_TOKENIZE,   /* pfrun tokenize ... */
  PF_CLI_IMPORTANCE, /* pfrun importance ... */
  PF_CLI_EVAL,       /* pfrun eval ... */
  PF_CLI_GENERATE,   /* pfrun generate ... */
  PF_CLI_BENCH,      /* pfrun bench ... */
  PF_CLI_BIAS        /* pfrun bias ... */
} pf_cli_kind;

typedef struct pf_cli {
  pf_cli_kind kind;
  const char *topic;       /* help topic ("prune", ...) or NULL; op name for ops */
  const char *usage_topic; /* the help topic of the command given ("eval", "recipe"), or NULL */
  int quiet;               /* --quiet: no progress, no info lines */
  int dry_run;             /* --dry-run */
  int json;                /* analyze --json */
  const char *file;        /* recipe or script path */
  const char *stats_json;  /* prune --stats-json FILE */
  const char **sets;       /* recipe --set values (pointers into argv) */
  size_t n_sets;
  int script_argc; /* Lua: args after the script name */
  char **script_argv;
  /* prune/analyze: the op calls to make, in order (params maps, owned) */
  pf_value *load_params;     /* {"path": model_path} */
  const char *prune_op;      /* "prune_width" or "prune_depth" */
  pf_value *prune_params;    /* without "model" */
  pf_value *save_params;     /* without "model" */
  pf_tokenize_args tokenize; /* tokenize: its arguments (strings borrowed from argv) */
  /* prune with --calibration-data: calibrate op params (without "model"), or NULL */
  pf_value *calib_params;
  /* importance / eval / generate: the op's params (without "model"), the parent
   * model for eval --compare, and the --json output file */
  pf_value *op_params;
  const char *compare_path;
  const char *json_out;
  /* bias: --visualizations list ("mean_diff,heatmap,pca"), --format, --output-dir */
  const char *visualizations;
  const char *format;
  const char *output_dir;
  pf_value *plot_layers; /* bias: --layers, the layers drawn as heatmaps and PCA */
  /* --max-memory SIZE (any command, before a Lua script's name): working-memory
   * cap in bytes, 0 = none. main.c applies it (RLIMIT_DATA). */
  uint64_t max_memory;
  /* --pass-order auto|batch|layer and --memory-budget SIZE (same places): how
   * data-parallel passes run (pf_ctx.pass_order / memory_budget); 0 = not given */
  pf_pass_order pass_order;
  int pass_order_given;
  uint64_t memory_budget;
  char **argv_owned; /* argv without the options above (owned; other fields point into it) */
} pf_cli;

/* "auto" | "batch" | "layer"; PF_ERR_INVALID naming them otherwise. */
pf_status pf_pass_order_parse(const char *v, pf_pass_order *out, pf_err *err);

/* Parse argv. On PF_ERR_INVALID the message is a usage error (exit code 2). */
pf_status pf_cli_parse(int argc, char **argv, pf_cli *out, pf_err *err);
void pf_cli_free(pf_cli *c);
/* An op's error in command-line words: "parameter 'batch_size'" becomes "option
 * '--batch-size'" where the command has an option for that parameter, save's
 * "use overwrite" prune's "use --overwrite". */
void pf_cli_words(const pf_cli *c, pf_err *err);
/* Help text for a topic (NULL = top level), or NULL if the topic is unknown. */
const char *pf_cli_help(const char *topic);

#endif
