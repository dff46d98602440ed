/* ophelp.h — small helpers shared by the op files (internal to ops/). */
#ifndef PF_OPHELP_H
#define PF_OPHELP_H

#include "op.h"

/* An INTLIST parameter as a malloc'd array. *have = 0 (and *arr = NULL) when
 * the parameter is null. */
pf_status pf_param_intlist(const pf_value *params, const char *key, int64_t **arr, size_t *n,
                           int *have, pf_err *err);
/* 1 when the number has no fraction (printed like a Python int in messages). */
int pf_num_is_integral(double v);
/* {"model": m, <every key of stats>}; consumes stats. NULL on NOMEM. */
pf_value *pf_model_result(pf_model *m, pf_value *stats);

#endif
