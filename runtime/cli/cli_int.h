/* cli_int.h — what cli.c and cli_prune.c share: walking argv and parsing
 * option values with click's words. Not a public header. */
#ifndef PF_CLI_INT_H
#define PF_CLI_INT_H

#include "cli.h"
#include "opcmd.h"

/* One option as given: --name value or --name=value. */
typedef struct opt_iter {
  int argc, i;
  char **argv;
} opt_iter;

/* 1 when `a` is option `name` (as "--name" or "--name=..."; *inline_val then
 * points after '=', else NULL). */
int pf_cli_is_opt(const char *a, const char *name, const char **inline_val);
/* The option's value: inline_val, else the next word (it->i advances). */
pf_status pf_cli_take_value(opt_iter *it, const char *name, const char *inline_val,
                            const char **out, pf_err *err);
/* Numbers as click reads them; its messages on failure. */
pf_status pf_cli_parse_double(const char *name, const char *s, double *out, pf_err *err);
pf_status pf_cli_parse_int(const char *name, const char *s, int64_t *out, pf_err *err);
/* v one of choices (NULL-terminated), else click's "is not one of" message. */
pf_status pf_cli_check_choice(const char *name, const char *v, const char *const *choices,
                              pf_err *err);
/* "2,5,8" -> a new list of ints; OptiPFair's message on failure, naming option `name`. */
pf_status pf_cli_parse_indices(const char *name, const char *s, pf_value **out, pf_err *err);
/* --help/-h: switch to the help of `topic` (2); --quiet, --verbose, --dry-run
 * applied (1); else 0. */
int pf_cli_leading_flag(const char *a, pf_cli *c, const char *topic);

/* --device's choices (prune, analyze): OptiPFair's, only the CPU runs. */
extern const char *const pf_cli_devices[];

/* prune's calibration options -> the calibrate op's parameters. */
extern const pf_opt_map pf_cli_calib_opts[];
extern const size_t pf_cli_n_calib_opts;

/* `pfrun prune ...` (cli_prune.c). */
pf_status pf_cli_parse_prune(opt_iter *it, pf_cli *c, pf_err *err);

#endif
