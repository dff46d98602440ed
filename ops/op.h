/* op.h — the op table: every op's name, typed parameter spec, help and run
 * function. Lua, YAML recipes and the CLI subcommands reach ops only through
 * pf_op_run, which validates the parameters against the spec (unknown keys,
 * missing required keys, wrong types, values outside choices or range are
 * errors), fills defaults, times the op, and prefixes errors with the op name.
 */
#ifndef PF_OP_H
#define PF_OP_H

#include "value.h"

typedef enum pf_ptype {
  PF_P_BOOL,
  PF_P_INT,
  PF_P_NUM, /* ints are accepted and kept ints (pf_map_num reads both; OptiPFair's
               messages print 300 and 300.0 apart, as Python's str does) */
  PF_P_STR,
  PF_P_INTLIST, /* list of ints; a single int is accepted as a one-element list,
                   a string "0,2,5" too */
  PF_P_MODEL,   /* a model (recipes: an earlier step id; Lua: model userdata) */
  PF_P_ANY      /* any value (a result of an earlier step, a table) */
} pf_ptype;

typedef struct pf_param_spec {
  const char *name;
  pf_ptype type;
  int required;
  const char *def;     /* default as text ("10", "MAW", "true"); NULL = absent (null) */
  const char *choices; /* "a|b|c" for strings/ints; NULL = any */
  double min, max;     /* inclusive range for INT/NUM/INTLIST elements when min < max */
  const char *help;
} pf_param_spec;

typedef struct pf_op pf_op;
/* Run with validated params (a map holding every spec'd name; absent optional
 * params without default are null). *out receives a new map on success. */
typedef pf_status (*pf_op_fn)(const pf_op *op, const pf_value *params, pf_value **out,
                              const pf_ctx *ctx, pf_err *err);

struct pf_op {
  const char *name;
  const char *alias; /* alternative name accepted ("prune-width"), or NULL */
  const char *summary;
  const pf_param_spec *params;
  size_t n_params;
  const char *returns; /* help text describing the result map */
  pf_op_fn run;
  int writes; /* writes files (checkpoints, charts, a report): under MPI only rank 0 runs it
                 for real, the other ranks run it as a dry run and wait for rank 0 */
  /* "a|b": parameters whose choices are listed in help but checked by the op itself,
   * with OptiPFair's own error text ("Invalid neuron selection method: ...") at the
   * point of OptiPFair's order of checks, which scripts match on; NULL: none */
  const char *own_checks;
  /* "key:dep key:dep ...": a parameter `key` given (not null) has no effect unless `dep`
   * is given too (a bool dep: true); pf_op_validate refuses it instead of ignoring it
   * (a sweep over reconstruct_damping without reconstruct would give identical models).
   * NULL: none */
  const char *needs;
  /* The op's own checks that need no model and no file, on the validated params,
   * with the words of the run (which makes them too, in its order among the
   * others). A recipe runs them on every step before its first step runs, so a
   * pruning_percentage of 150 in step 5 fails before steps 1-4 do their work. NULL: none */
  pf_status (*check)(const pf_value *params, pf_err *err);
};

/* Appended to "got list" where a parameter takes a map by layer ({"<layer>": ...}):
 * Lua turns a table whose keys are exactly 1..n into a list, so layers 1..n given
 * as integer keys arrive as one (layer 0 among them, or string keys, make a map). */
#define PF_LAYER_MAP_LIST_HINT                                                                     \
  " (a Lua table with keys 1..n is a list: give the layers as string keys, "                       \
  "{[\"1\"] = {...}}, e.g. t[tostring(layer)] = ...)"

size_t pf_op_count(void);
const pf_op *pf_op_at(size_t i);
const pf_op *pf_op_find(const char *name); /* name or alias; NULL if unknown */

/* Validate `params` against op `name` and produce the full parameter map
 * (defaults filled, types coerced). Errors: unknown op (with the list of ops),
 * unknown parameter (with the op's parameter names), missing required, wrong
 * type, out of range, not in choices — each naming the parameter and value. */
pf_status pf_op_validate(const pf_op *op, const pf_value *params, pf_value **out, pf_err *err);
/* The parameters given in `params` alone (no required or model parameter is asked
 * for): unknown names, types, choices and ranges, as pf_op_validate words them. The
 * subcommands check their options with it before loading a model. */
pf_status pf_op_check_given(const pf_op *op, const pf_value *params, pf_err *err);
/* Validate and run. On success *out is the result map, which always contains
 * "op" (name) and "seconds" (wall time) besides the op's own keys. On failure
 * the message is prefixed "<op>: ". */
pf_status pf_op_run(const char *name, const pf_value *params, pf_value **out,
                    const pf_ctx *ctx, pf_err *err);

/* The op implementations (one file each in ops/). */
extern const pf_op pf_op_load;
extern const pf_op pf_op_score;
extern const pf_op pf_op_prune_width;
extern const pf_op pf_op_prune_depth;
extern const pf_op pf_op_prune_heads;
extern const pf_op pf_op_save;
extern const pf_op pf_op_analyze;
extern const pf_op pf_op_calibrate;
extern const pf_op pf_op_importance;
extern const pf_op pf_op_evaluate;
extern const pf_op pf_op_benchmark;
extern const pf_op pf_op_generate;
extern const pf_op pf_op_bias_activations;
extern const pf_op pf_op_metrics;
extern const pf_op pf_op_neuron_bias;
extern const pf_op pf_op_fairness_scores;
extern const pf_op pf_op_zero_neurons;
extern const pf_op pf_op_plot;
extern const pf_op pf_op_report;

#endif
