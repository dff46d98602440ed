/* opcmd.h — command-line options that map one to one onto op parameters
 * (--max-length N -> max_length = "N"; the op table coerces the text to the
 * parameter's type and validates it, so the CLI and recipes agree on every rule).
 * Used by `pfrun importance`, `pfrun eval`, `pfrun generate` and the calibration
 * options of `pfrun prune`. */
#ifndef PF_OPCMD_H
#define PF_OPCMD_H

#include "pf.h"
#include "value.h"

typedef struct pf_opt_map {
  const char *flag;  /* "--max-length" */
  const char *param; /* "max_length" */
  int is_flag;       /* takes no value: sets the parameter to true */
} pf_opt_map;

/* The text-data options shared by every command that reads text. */
extern const pf_opt_map PF_DATA_OPTS[];
extern const size_t PF_N_DATA_OPTS;

/* If argv[*i] is one of map's options, store it into dst (created on first use)
 * and advance *i past its value; *matched says whether it was one. Accepts
 * "--flag value" and "--flag=value". */
pf_status pf_opt_take(int argc, char **argv, int *i, const pf_opt_map *map, size_t n,
                      pf_value **dst, int *matched, pf_err *err);

#endif
