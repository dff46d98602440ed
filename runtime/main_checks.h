/* main_checks.h — what the pfrun command checks before a command's work
 * (runtime/main_checks.c): its option values against the ops' specs, and the paths
 * it will write. Each returns PF_OK or an error in the command's words. */
#ifndef PF_MAIN_CHECKS_H
#define PF_MAIN_CHECKS_H

#include "cli.h"

/* The options that become op parameters: types, ranges and choices, then the ops'
 * model-free checks; *topic: the help topic of the command (for "Try 'pfrun help …'"). */
pf_status pf_main_check_op_options(const pf_cli *c, const char **topic, pf_err *err);
/* The --stats-json / --json file: not a file of a checkpoint the command reads or
 * writes, writable now, and no real result replaced by a dry run. */
pf_status pf_main_check_json_output(const pf_cli *c, pf_err *err);
/* prune's --output-path: not the input folder (or inside or around it), and one the
 * save would accept. */
pf_status pf_main_check_prune_output(const pf_cli *c, pf_err *err);
/* --reconstruct: the calibration text's options added to `params` (prune_width's data
 * parameters); returns whether --reconstruct was given. */
int pf_main_add_reconstruct_data(const pf_cli *c, pf_value *params);

#endif
