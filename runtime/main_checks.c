/* main_checks.c — what the pfrun command checks before a command's work
 * (main_checks.h). Part of the executable, as main.c. */
#include "main_checks.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dist.h"
#include "fsutil.h"
#include "model.h"
#include "op.h"

/* 1 if `path` names a file of the checkpoint folder `dir` (config.json, weights,
 * tokenizer...): its folder is `dir` and its name is one pf_model_save writes. */
static int is_checkpoint_file(const char *given, const char *dir) {
  char *path = pf_abspath(given); /* a symlink is judged by the file it points to */
  if (!path) return 0;
  const char *slash = strrchr(path, '/');
  const char *base = slash ? slash + 1 : path;
  int same = 0;
  if (pf_checkpoint_file_name(base)) {
    char *parent = strndup(path, slash ? (size_t)(slash - path) + (slash == path) : 0);
    same = parent && pf_path_inside(parent, dir) && pf_path_inside(dir, parent);
    free(parent);
  }
  free(path);
  return same;
}

/* The --stats-json / --json file, checked before the work: it must not replace a file
 * of a checkpoint the command reads or (prune) writes; elsewhere it must be writable
 * now, so that a prune does not save its checkpoint and then fail. */
pf_status pf_main_check_json_output(const pf_cli *c, pf_err *err) {
  const char *path = c->stats_json ? c->stats_json : c->json_out;
  if (!path) return PF_OK;
  const char *reads[] = {c->load_params ? pf_map_str(c->load_params, "path", NULL) : NULL,
                         c->compare_path};
  for (size_t i = 0; i < sizeof reads / sizeof reads[0]; i++)
    if (reads[i] && pf_is_dir(reads[i]) && is_checkpoint_file(path, reads[i]))
      return pf_err_set(err, PF_ERR_INVALID,
                        "%s: refusing to write the JSON file over a file of the checkpoint %s "
                        "that this command reads",
                        path, reads[i]);
  const char *out =
      c->kind == PF_CLI_PRUNE && c->save_params ? pf_map_str(c->save_params, "path", NULL) : NULL;
  if (out && is_checkpoint_file(path, out))
    return pf_err_set(err, PF_ERR_INVALID,
                      "%s: refusing to write the statistics over a file of the checkpoint that "
                      "--output-path %s receives",
                      path, out);
  /* a dry run writes no results: prune's plan goes to a new file (or a stream, a device)
   * only, the other commands write none (plan_done says so) */
  if (c->dry_run && c->kind != PF_CLI_PRUNE) return PF_OK;
  struct stat sb;
  if (c->dry_run && out && pf_path_inside(path, out))
    return pf_err_set(err, PF_ERR_INVALID,
                      "%s: inside --output-path %s, which a dry run does not write: give a path "
                      "outside it, or leave --stats-json out",
                      path, out);
  if (c->dry_run && stat(path, &sb) == 0 && S_ISREG(sb.st_mode))
    return pf_err_set(err, PF_ERR_INVALID,
                      "%s: exists, and a dry run does not replace it (the plan would replace "
                      "the statistics of a real run): give a new path, or leave --stats-json out",
                      path);
  if (out && pf_path_inside(path, out)) return PF_OK; /* its folder is made by the save */
  return pf_check_writable_file(path, err);
}

/* --reconstruct: the calibration text is reconstruct's too (prune_width's data params):
 * they are added to `params`. Hybrid scores only with MAW (other methods are static).
 * Returns whether --reconstruct was given. */
int pf_main_add_reconstruct_data(const pf_cli *c, pf_value *params) {
  const int rec = pf_map_bool(params, "reconstruct", 0);
  for (size_t k = 0; rec && c->calib_params && k < c->calib_params->u.map.len; k++) {
    pf_value_retain(c->calib_params->u.map.vals[k]);
    pf_map_set(params, c->calib_params->u.map.keys[k], c->calib_params->u.map.vals[k]);
  }
  return rec;
}

/* The options that become op parameters, checked by the ops' specs before a model is
 * loaded (`--samples abc` was found after the load, exit 1): a usage error. */
pf_status pf_main_check_op_options(const pf_cli *c, const char **topic, pf_err *err) {
  static const struct {
    pf_cli_kind kind;
    const char *op, *topic;
  } cmds[] = {{PF_CLI_IMPORTANCE, "importance", "importance"},
              {PF_CLI_EVAL, "evaluate", "eval"},
              {PF_CLI_GENERATE, "generate", "generate"},
              {PF_CLI_BENCH, "benchmark", "bench"}};
  const char *ops[3] = {NULL, NULL, NULL};
  const pf_value *params[3] = {NULL, NULL, NULL};
  for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
    if (c->kind == cmds[i].kind) {
      *topic = cmds[i].topic;
      ops[0] = cmds[i].op;
      params[0] = c->op_params;
    }
  pf_value *pp = NULL; /* prune's params as cmd_prune will pass them */
  if (c->kind == PF_CLI_PRUNE && c->prune_params) {
    if (!(pp = pf_value_copy(c->prune_params)))
      return pf_err_set(err, PF_ERR_NOMEM, "out of memory");
    pf_main_add_reconstruct_data(c, pp);
  }
  if (c->kind == PF_CLI_PRUNE) {
    *topic = "prune";
    ops[0] = c->prune_op, params[0] = pp;
    ops[1] = "calibrate", params[1] = c->calib_params;
    ops[2] = "save", params[2] = c->save_params;
  }
  /* the types, ranges and choices of the options given, then the op's own checks that
   * need no model (OptiPFair's rules on the options alone: usage errors, as its CLI
   * makes them); what needs the model (layer indices, widths) is found by the op */
  pf_status st = PF_OK;
  for (int i = 0; i < 3 && !st; i++) {
    const pf_op *op = ops[i] ? pf_op_find(ops[i]) : NULL;
    if (op && (pf_op_check_given(op, params[i], err) != PF_OK ||
               (op->check && params[i] && op->check(params[i], err) != PF_OK)))
      st = pf_err_prefix(err, "%s", ops[i]); /* as pf_op_run says it */
  }
  pf_value_release(pp);
  return st;
}

/* prune's --output-path, checked before the work as save checks it after: not the
 * input folder, inside it or around it (through a symlink too). */
pf_status pf_main_check_prune_output(const pf_cli *c, pf_err *err) {
  const char *in = c->load_params ? pf_map_str(c->load_params, "path", NULL) : NULL;
  const char *out = c->save_params ? pf_map_str(c->save_params, "path", NULL) : NULL;
  if (c->kind != PF_CLI_PRUNE || !out) return PF_OK;
  /* an output the save would refuse, before hours of calibration and pruning */
  pf_status st = in && pf_is_dir(in) ? pf_save_input_check(in, out, err) : PF_OK;
  if (!st && !c->dry_run)
    st = pf_save_output_check(out, pf_map_bool(c->save_params, "overwrite", 0), err);
  return st;
}
