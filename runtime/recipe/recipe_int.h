/* recipe_int.h — internals shared by recipe.c (structure, validation, running)
 * and recipe_yaml.c (libyaml loading, scalars, ${var} substitution, node ->
 * pf_value). Not a public header: only runtime/recipe/ includes it.
 *
 * Error convention inside the recipe code: functions that look at one YAML
 * node fill err with a *bare* message and report the offending node's mark in
 * *where; the caller adds "<file>:<line>:<col>: [step N (op): ]". Functions
 * that take no `where` produce fully formatted messages.
 */
#ifndef PF_RECIPE_INT_H
#define PF_RECIPE_INT_H

#include <yaml.h>

#include "op.h"
#include "recipe.h"

#define PF_RECIPE_MAX_BYTES ((size_t)1 << 20) /* recipe file size */
#define PF_RECIPE_MAX_TEXT ((size_t)1 << 20)  /* a string after ${...} substitution */
#define PF_RECIPE_MAX_DEPTH 32                /* collection nesting, root mapping = 1 */
#define PF_RECIPE_MAX_STEPS 1000
#define PF_RECIPE_MAX_VALUES 1000000 /* values built from the document (alias bombs) */
#define PF_RECIPE_MAX_KEYS 1000      /* keys of one mapping */
/* Building a mapping of n keys costs ~n^2/2 key comparisons (duplicate checks
 * here and in pf_map_set). Aliases can make the same mapping be built many
 * times, so the total over the document is bounded too. */
#define PF_RECIPE_MAX_KEY_PAIRS 10000000

typedef struct pf_ydoc {
  const char *file; /* path, for messages (borrowed) */
  yaml_document_t doc;
  int loaded;
  size_t values;    /* values built so far by pf_ydoc_value */
  size_t key_pairs; /* sum of n*(n-1)/2 over the mappings built so far */
} pf_ydoc;

/* Read (size-checked), pre-scan (syntax, nesting depth, keys per mapping, single
 * document) and
 * load `path`. Fully formatted errors. On failure nothing needs freeing, but
 * pf_ydoc_free is safe anyway. */
pf_status pf_ydoc_load(pf_ydoc *d, const char *path, pf_err *err);
/* The same for text in memory (`name` is used in messages). */
pf_status pf_ydoc_load_text(pf_ydoc *d, const char *name, const char *text, size_t len,
                            pf_err *err);
void pf_ydoc_free(pf_ydoc *d);
yaml_node_t *pf_ydoc_root(pf_ydoc *d);            /* NULL for an empty document */
yaml_node_t *pf_ydoc_node(pf_ydoc *d, int index); /* libyaml node index */
/* Scalar text (NUL-terminated) or NULL when n is not a scalar. */
const char *pf_ynode_text(const yaml_node_t *n);
/* "mapping", "sequence", "scalar". */
const char *pf_ynode_kind(const yaml_node_t *n);
/* 1-based line and column of a mark. */
#define PF_MARK_LINE(m) ((m).line + 1)
#define PF_MARK_COL(m) ((m).column + 1)

/* Resolve a scalar: plain scalars follow the YAML core schema (null/~, true/
 * false, ints incl. 0x/0o, floats incl. .5, 1e3, .inf, .nan); anything else,
 * and every quoted scalar, is a string. Bare message on error. */
pf_status pf_yaml_scalar(const char *text, int plain, pf_value **out, pf_err *err);

/* 1 if s is an identifier ([A-Za-z_][A-Za-z0-9_]*). */
int pf_recipe_is_ident(const char *s);

/* ${var} substitution ("$${" is a literal "${"). When `typed` and the whole
 * text is one "${var}", *out is that variable's value itself (an int stays an
 * int); otherwise a string. Bare message on error (unknown variable lists the
 * defined ones). */
pf_status pf_recipe_subst(const char *text, const pf_value *vars, int typed, pf_value **out,
                          pf_err *err);

/* Convert node `n` at nesting `depth` (of n itself) into a new value, with
 * substitution in every string scalar (vars may not be NULL). Mapping keys must
 * be scalars and unique. Bare message + *where on error. */
pf_status pf_ydoc_value(pf_ydoc *d, yaml_node_t *n, const pf_value *vars, int depth, pf_value **out,
                        yaml_mark_t *where, pf_err *err);

/* ------------------------------------------------ a recipe being run */

typedef struct rref {
  const char *key;  /* parameter name (borrowed from the step's `given` map) */
  size_t target;    /* index of the referenced step (earlier) */
  int want_model;   /* PF_P_MODEL: pass the target's "model"; else its whole result */
  yaml_mark_t mark; /* the value node */
} rref;

typedef struct rstep {
  int index;          /* 1-based */
  const pf_op *op;    /* NULL until known */
  const char *id;     /* scalar text inside the document, or NULL */
  yaml_node_t *node;  /* the step mapping */
  yaml_mark_t mark;   /* the step mapping */
  pf_value *given;    /* params as written (substituted; references still id strings) */
  yaml_mark_t *kmark; /* [given len] key marks, in map order */
  rref *refs;
  size_t n_refs;
  pf_value *result; /* after running */
  int skip;         /* `when:` is false: the step does not run */
  size_t last_use;  /* 0-based index of the last step that takes this result (itself if none) */
  char *save_abs;   /* a save step that runs: its path, absolute (validation), else NULL */
} rstep;

typedef struct recipe {
  const char *path;
  pf_ydoc y;
  pf_value *vars;
  char *name;
  char *output_dir;
  yaml_node_t *top[6]; /* pfrun, name, description, vars, output_dir, steps */
  rstep *steps;
  size_t n_steps;
  size_t n_started; /* steps the run reached (a failed run: the failed one's index + 1) */
} recipe;

enum { K_PFRUN, K_NAME, K_DESCRIPTION, K_VARS, K_OUTPUT_DIR, K_STEPS, K_COUNT };

/* snprintf that may truncate on purpose (messages are bounded by PF_ERR_MSG_MAX). */
void pf_recipe_fmt(char *buf, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Structural error: "<file>:<line>:<col>: message"; returns code. */
pf_status pf_recipe_at(const recipe *r, yaml_mark_t m, pf_err *err, pf_status code, const char *fmt,
                       ...) __attribute__((format(printf, 5, 6)));
/* The top level (recipe_head.c): keys, `pfrun: 1`, vars with --set, the check
 * that each --set names a variable, name and output_dir (both also become
 * vars). Fully formatted errors. */
pf_status pf_recipe_head(recipe *r, const pf_recipe_opts *opts, pf_err *err);

#endif
