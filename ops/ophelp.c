/* ophelp.c — see ophelp.h. */
#include "ophelp.h"

#include <math.h>
#include <stdlib.h>

pf_status pf_param_intlist(const pf_value *params, const char *key, int64_t **arr, size_t *n,
                           int *have, pf_err *err) {
  *arr = NULL;
  *n = 0;
  *have = 0;
  const pf_value *v = pf_map_get(params, key);
  if (!v || v->type == PF_V_NULL) return PF_OK;
  if (v->type != PF_V_LIST)
    return pf_err_set(err, PF_ERR_INVALID, "parameter '%s': expected a list of integers, got %s",
                      key, pf_vtype_name(v->type));
  int64_t *a = malloc(sizeof *a * (v->u.list.len ? v->u.list.len : 1));
  if (!a) return pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  for (size_t i = 0; i < v->u.list.len; i++) {
    const pf_value *e = v->u.list.items[i];
    if (e->type != PF_V_INT) {
      free(a);
      return pf_err_set(err, PF_ERR_INVALID, "parameter '%s': element %zu is not an integer", key,
                        i);
    }
    a[i] = e->u.i;
  }
  *arr = a;
  *n = v->u.list.len;
  *have = 1;
  return PF_OK;
}

int pf_num_is_integral(double v) {
  return isfinite(v) && v == floor(v) && fabs(v) < 1e18;
}

pf_value *pf_model_result(pf_model *m, pf_value *stats) {
  pf_value *r = pf_value_map();
  pf_status st = r ? pf_map_set(r, "model", pf_value_model(m)) : PF_ERR_NOMEM;
  for (size_t i = 0; !st && stats && i < stats->u.map.len; i++) {
    pf_value_retain(stats->u.map.vals[i]);
    st = pf_map_set(r, stats->u.map.keys[i], stats->u.map.vals[i]);
  }
  pf_value_release(stats);
  if (st) {
    pf_value_release(r);
    return NULL;
  }
  return r;
}
