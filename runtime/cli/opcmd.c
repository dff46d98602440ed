/* opcmd.c — see opcmd.h. */
#include "opcmd.h"

#include <string.h>

const pf_opt_map PF_DATA_OPTS[] = {
    {"--data", "data", 0},
    {"--text-field", "text_field", 0},
    {"--samples", "samples", 0},
    {"--max-length", "max_length", 0},
    {"--min-length", "min_length", 0},
    {"--batch-size", "batch_size", 0},
    {"--pack", "pack", 1},
};
const size_t PF_N_DATA_OPTS = sizeof PF_DATA_OPTS / sizeof PF_DATA_OPTS[0];

pf_status pf_opt_take(int argc, char **argv, int *i, const pf_opt_map *map, size_t n,
                      pf_value **dst, int *matched, pf_err *err) {
  const char *a = argv[*i];
  *matched = 0;
  for (size_t k = 0; k < n; k++) {
    size_t fl = strlen(map[k].flag);
    if (strncmp(a, map[k].flag, fl) != 0 || (a[fl] != '\0' && a[fl] != '=')) continue;
    *matched = 1;
    if (!*dst && !(*dst = pf_value_map())) return pf_err_set(err, PF_ERR_NOMEM, "out of memory");
    if (map[k].is_flag) {
      if (a[fl] == '=')
        return pf_err_set(err, PF_ERR_INVALID, "Option '%s' takes no value.", map[k].flag);
      return pf_map_set(*dst, map[k].param, pf_value_bool(1));
    }
    const char *v = a[fl] == '=' ? a + fl + 1 : NULL;
    if (!v) {
      if (*i + 1 >= argc)
        return pf_err_set(err, PF_ERR_INVALID, "Option '%s' requires an argument.", map[k].flag);
      v = argv[++*i];
    }
    return pf_map_set(*dst, map[k].param, pf_value_str(v));
  }
  return PF_OK;
}
