/* recipe.h — YAML recipes (the only place that includes yaml.h).
 *
 * A recipe is a YAML mapping:
 *   pfrun: 1                 # format version (required)
 *   name: demo
 *   vars: { model: synthetic:llama-tiny, output_dir: runs/demo }
 *   output_dir: ${output_dir}   # optional; default runs/<name>
 *   steps:
 *     - id: base
 *       op: load
 *       path: ${model}
 *     - op: prune_width
 *       model: base            # an earlier step id
 *       pruning_percentage: 20
 * Values are data only: `${var}` substitution in strings, earlier step ids as
 * references (for model-typed parameters, and for any parameter whose string
 * value equals an earlier step id and whose type is PF_P_ANY). No code runs.
 * `--set key=value` overrides vars (the value is parsed as a YAML scalar; an
 * empty value is an error, an empty string is key="").
 * Errors: "recipe.yaml:LINE:COL: step N (op): message" (N counts from 1).
 */
#ifndef PF_RECIPE_H
#define PF_RECIPE_H

#include "pf.h"
#include "value.h"

typedef struct pf_recipe_opts {
  const char *const *sets; /* "key=value" strings */
  size_t n_sets;
} pf_recipe_opts;

/* Parse, validate and run (or plan, when ctx->dry_run) a recipe.
 * On success *results is a map:
 *   {"recipe": path, "name": ..., "output_dir": ..., "dry_run": bool,
 *    "vars": {...}, "steps": [ {"index": N, "id": ..., "op": ..., "params": {...},
 *                               "result": {...}, "seconds": t}, ... ],
 *    "status": "complete"}
 * and <output_dir>/results.json holds its JSON form (not written in dry-run).
 * A run that fails or is interrupted at a step after others finished writes
 * results.json too, with those steps only, "status": "failed" or "interrupted",
 * "error" and "failed_step" {"index", "id", "op"}, and says so in err.
 * In dry-run every step is validated against the op table (unknown ops and
 * parameters, types, references to unknown or later step ids, missing vars) and
 * run with ctx->dry_run set, so ops plan without touching weights. */
pf_status pf_recipe_run(const char *path, const pf_recipe_opts *opts, const pf_ctx *ctx,
                        pf_value **results, pf_err *err);

/* A YAML document (not a recipe: no steps, no ${var} values) as a value, with
 * the recipe loader's limits and messages ("NAME:LINE:COL: ..."). For data
 * files such as benchmark task definitions. pf_yaml_value reads `len` bytes of
 * `text` (`name` is used in messages); pf_yaml_file_value reads a file. */
pf_status pf_yaml_value(const char *name, const char *text, size_t len, pf_value **out,
                        pf_err *err);
pf_status pf_yaml_file_value(const char *path, pf_value **out, pf_err *err);

/* Notes (behaviour details of pf_recipe_run):
 *  - Limits: file <= 1 MiB, nesting <= 32 mappings/sequences, <= 1000 steps,
 *    <= 1000 keys in one mapping, <= 1e6 values and <= 1e7 pairs of keys in the
 *    mappings built after alias expansion, <= 1000 --set values; a single YAML
 *    document.
 *  - Top-level keys: pfrun, name, description, vars, output_dir, steps (others
 *    are errors). `name` defaults to the file name without extension;
 *    output_dir to vars.output_dir, else "runs/<name>". `${name}` and
 *    `${output_dir}` are available as vars unless vars defines them.
 *  - vars values may use ${...} of --set vars and of vars defined above them.
 *    A plain scalar that is exactly "${v}" takes v's type (an int stays an int);
 *    anywhere else the value is spliced in as text. "$${" is a literal "${".
 *  - A reference must name an earlier step; for model-typed parameters an
 *    unknown id or a later step is an error, for any-typed ones a string that
 *    names no earlier step stays a string.
 *  - "params" in the results are as written (references stay step ids).
 *  - A step with `when: false` (typically `when: ${var}` with a boolean var) is
 *    validated but does not run; its results entry says "skipped": true and a
 *    running step that references it is an error.
 *  - Before the first step (dry run or not): the input files steps name (data,
 *    prompt_pairs) exist, and the path of each save step that runs and has no
 *    overwrite: true is not a file or a non-empty folder (pf_save_target_check). */

#endif
