/* registry.c — the op table, parameter validation and pf_op_run (see op.h).
 *
 * Coercions done by pf_op_validate (so that every front end behaves alike):
 *   BOOL     bool; the strings "true" / "false"
 *   INT      int; a number with no fraction; a string that is a whole integer
 *   NUM      number; int (converted); a string that is a whole finite number
 *   STR      string; an int (written in decimal)
 *   INTLIST  list of ints (integral numbers accepted); a single int; a string
 *            "0,2,5" (spaces allowed; "" is the empty list)
 *   MODEL    a model; or a map holding one under "model" (an earlier step's
 *            result, e.g. the map load or prune_width returned)
 *   ANY      anything, passed through unchanged (retained)
 * An explicit null is the same as an absent key (the default applies).
 * Choices ("a|b|c") are compared as exact text (ints in decimal).
 */
#include "op.h"

#include "dist.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const pf_op *const op_table[] = {
    &pf_op_load,
    &pf_op_calibrate,
    &pf_op_score,
    &pf_op_prune_width,
    &pf_op_prune_depth,
    &pf_op_importance,
    &pf_op_evaluate,
    &pf_op_benchmark,
    &pf_op_generate,
    &pf_op_bias_activations,
    &pf_op_metrics,
    &pf_op_neuron_bias,
    &pf_op_fairness_scores,
    &pf_op_zero_neurons,
    &pf_op_plot,
    &pf_op_save,
    &pf_op_report,
    &pf_op_analyze,
    &pf_op_prune_heads,
};
#define PF_OP_TABLE_COUNT 19
_Static_assert(sizeof op_table / sizeof op_table[0] == PF_OP_TABLE_COUNT,
               "op table and PF_OP_TABLE_COUNT disagree: add the op to both");

size_t pf_op_count(void) {
  return PF_OP_TABLE_COUNT;
}

const pf_op *pf_op_at(size_t i) {
  return i < PF_OP_TABLE_COUNT ? op_table[i] : NULL;
}

const pf_op *pf_op_find(const char *name) {
  if (!name) return NULL;
  for (size_t i = 0; i < PF_OP_TABLE_COUNT; i++) {
    const pf_op *op = op_table[i];
    if (strcmp(op->name, name) == 0 || (op->alias && strcmp(op->alias, name) == 0)) return op;
  }
  return NULL;
}

static const char *ptype_name(pf_ptype t) {
  switch (t) {
  case PF_P_BOOL:
    return "bool";
  case PF_P_INT:
    return "integer";
  case PF_P_NUM:
    return "number";
  case PF_P_STR:
    return "string";
  case PF_P_INTLIST:
    return "list of integers";
  case PF_P_MODEL:
    return "model";
  case PF_P_ANY:
    return "any value";
  }
  return "?";
}

/* Short text of a value for messages: 12, 2.5, "abc", list, map, model. */
static void value_brief(const pf_value *v, char *buf, size_t n) {
  switch (v->type) {
  case PF_V_BOOL:
    snprintf(buf, n, "%s", v->u.b ? "true" : "false");
    break;
  case PF_V_INT:
    snprintf(buf, n, "%lld", (long long)v->u.i);
    break;
  case PF_V_NUM:
    pf_format_pyfloat(v->u.n, buf, n);
    break;
  case PF_V_STR:
    snprintf(buf, n, "string \"%.200s\"", v->u.s);
    break;
  default:
    snprintf(buf, n, "%s", pf_vtype_name(v->type));
    break;
  }
}

static pf_status type_error(const pf_param_spec *p, const pf_value *v, pf_err *err) {
  char b[256];
  value_brief(v, b, sizeof b);
  return pf_err_set(err, PF_ERR_INVALID, "parameter '%s': expected %s, got %s", p->name,
                    ptype_name(p->type), b);
}

static int parse_int_text(const char *s, int64_t *out) {
  char *end;
  errno = 0;
  long long x = strtoll(s, &end, 10);
  while (*end == ' ')
    end++;
  if (errno || end == s || *end) return 0;
  *out = x;
  return 1;
}

static int parse_num_text(const char *s, double *out) {
  char *end;
  errno = 0;
  double x = strtod(s, &end);
  while (*end == ' ')
    end++;
  if (errno || end == s || *end || !isfinite(x)) return 0;
  *out = x;
  return 1;
}

/* Integer view of an INT or integral NUM. */
static int as_int(const pf_value *v, int64_t *out) {
  if (v->type == PF_V_INT) {
    *out = v->u.i;
    return 1;
  }
  if (v->type == PF_V_NUM && isfinite(v->u.n) && v->u.n == floor(v->u.n) && fabs(v->u.n) < 9.2e18) {
    *out = (int64_t)v->u.n;
    return 1;
  }
  return 0;
}

static pf_status intlist_from_text(const pf_param_spec *p, const char *s, pf_value **out,
                                   pf_err *err) {
  pf_status st = PF_ERR_NOMEM;
  pf_value *list = pf_value_list();
  char *copy = strdup(s);
  if (!list || !copy) goto nomem;
  for (char *save = NULL, *tok = strtok_r(copy, ",", &save); tok;
       tok = strtok_r(NULL, ",", &save)) {
    while (*tok == ' ')
      tok++;
    int64_t x;
    if (!parse_int_text(tok, &x)) {
      st = pf_err_set(err, PF_ERR_INVALID,
                      "parameter '%s': expected comma-separated integers, got \"%s\"", p->name, s);
      goto fail;
    }
    if (pf_list_push(list, pf_value_int(x)) != PF_OK) goto nomem;
  }
  free(copy);
  *out = list;
  return PF_OK;
nomem:
  st = pf_err_set(err, PF_ERR_NOMEM, "parameter '%s': out of memory", p->name);
fail:
  free(copy);
  pf_value_release(list);
  return st;
}

static pf_status coerce_intlist(const pf_param_spec *p, const pf_value *v, pf_value **out,
                                pf_err *err) {
  int64_t x;
  if (v->type == PF_V_STR) return intlist_from_text(p, v->u.s, out, err);
  pf_value *list = pf_value_list();
  if (!list) return pf_err_set(err, PF_ERR_NOMEM, "parameter '%s': out of memory", p->name);
  if (as_int(v, &x)) {
    if (pf_list_push(list, pf_value_int(x)) != PF_OK) goto nomem;
  } else if (v->type == PF_V_LIST) {
    for (size_t i = 0; i < v->u.list.len; i++) {
      const pf_value *e = v->u.list.items[i];
      if (!as_int(e, &x)) {
        char b[256];
        value_brief(e, b, sizeof b);
        pf_value_release(list);
        return pf_err_set(err, PF_ERR_INVALID,
                          "parameter '%s': element %zu: expected an integer, got %s", p->name, i,
                          b);
      }
      if (pf_list_push(list, pf_value_int(x)) != PF_OK) goto nomem;
    }
  } else {
    pf_value_release(list);
    return type_error(p, v, err);
  }
  *out = list;
  return PF_OK;
nomem:
  pf_value_release(list);
  return pf_err_set(err, PF_ERR_NOMEM, "parameter '%s': out of memory", p->name);
}

static pf_status coerce_scalar(const pf_param_spec *p, const pf_value *v, pf_value **out,
                               pf_err *err) {
  int64_t i;
  double d;
  pf_value *r = NULL;
  switch (p->type) {
  case PF_P_BOOL:
    if (v->type == PF_V_BOOL)
      r = pf_value_bool(v->u.b);
    else if (v->type == PF_V_STR && strcmp(v->u.s, "true") == 0)
      r = pf_value_bool(1);
    else if (v->type == PF_V_STR && strcmp(v->u.s, "false") == 0)
      r = pf_value_bool(0);
    else
      return type_error(p, v, err);
    break;
  case PF_P_INT:
    if (as_int(v, &i) || (v->type == PF_V_STR && parse_int_text(v->u.s, &i)))
      r = pf_value_int(i);
    else
      return type_error(p, v, err);
    break;
  case PF_P_NUM:
    if (v->type == PF_V_NUM)
      r = pf_value_num(v->u.n);
    else if (v->type == PF_V_INT) /* kept an int: messages print it as Python does (str) */
      r = pf_value_int(v->u.i);
    else if (v->type == PF_V_STR && parse_num_text(v->u.s, &d))
      r = pf_value_num(d);
    else
      return type_error(p, v, err);
    break;
  case PF_P_STR:
    if (v->type == PF_V_STR)
      r = pf_value_str(v->u.s);
    else if (v->type == PF_V_INT) {
      char b[32];
      snprintf(b, sizeof b, "%lld", (long long)v->u.i);
      r = pf_value_str(b);
    } else
      return type_error(p, v, err);
    break;
  default:
    return type_error(p, v, err);
  }
  if (!r) return pf_err_set(err, PF_ERR_NOMEM, "parameter '%s': out of memory", p->name);
  *out = r;
  return PF_OK;
}

static pf_status coerce(const pf_param_spec *p, const pf_value *v, pf_value **out, pf_err *err) {
  switch (p->type) {
  case PF_P_INTLIST:
    return coerce_intlist(p, v, out, err);
  case PF_P_MODEL:
    if (v->type == PF_V_MAP && pf_map_model(v, "model")) v = pf_map_get(v, "model");
    if (v->type != PF_V_MODEL) return type_error(p, v, err);
    /* fall through */
  case PF_P_ANY:
    pf_value_retain((pf_value *)v);
    *out = (pf_value *)v;
    return PF_OK;
  default:
    return coerce_scalar(p, v, out, err);
  }
}

static int choice_ok(const char *choices, const char *text) {
  size_t n = strlen(text);
  for (const char *c = choices; c && *c;) {
    const char *bar = strchr(c, '|');
    size_t len = bar ? (size_t)(bar - c) : strlen(c);
    if (len == n && strncmp(c, text, n) == 0) return 1;
    c = bar ? bar + 1 : NULL;
  }
  return 0;
}

static pf_status check_range(const pf_param_spec *p, const pf_value *v, pf_err *err) {
  if (!(p->min < p->max)) return PF_OK;
  double x = v->type == PF_V_INT ? (double)v->u.i : v->u.n;
  if (x >= p->min && x <= p->max) return PF_OK;
  char b[64];
  value_brief(v, b, sizeof b);
  return pf_err_set(err, PF_ERR_INVALID,
                    "parameter '%s': expected a value in [%.15g, %.15g], got %s", p->name, p->min,
                    p->max, b);
}

/* Choices (unless the op checks them itself) and range on a coerced value. */
static pf_status check_value(const pf_param_spec *p, const pf_value *v, int own_choices,
                             pf_err *err) {
  if (p->type == PF_P_STR || p->type == PF_P_INT) {
    char text[64];
    const char *t = v->type == PF_V_STR ? v->u.s : text;
    if (v->type == PF_V_INT) snprintf(text, sizeof text, "%lld", (long long)v->u.i);
    if (p->choices && !own_choices && !choice_ok(p->choices, t))
      return pf_err_set(err, PF_ERR_INVALID, "parameter '%s': expected one of %s, got %s%.200s%s",
                        p->name, p->choices, v->type == PF_V_STR ? "\"" : "", t,
                        v->type == PF_V_STR ? "\"" : "");
  }
  if (p->type == PF_P_INT || p->type == PF_P_NUM) return check_range(p, v, err);
  if (p->type == PF_P_INTLIST)
    for (size_t i = 0; i < v->u.list.len; i++) {
      pf_status st = check_range(p, v->u.list.items[i], err);
      if (st) return st;
    }
  return PF_OK;
}

/* The default of an absent optional parameter (null when the spec has none). */
static pf_status default_value(const pf_param_spec *p, pf_value **out, pf_err *err) {
  if (!p->def) {
    *out = pf_value_null();
    return *out ? PF_OK : pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  }
  pf_value *text = pf_value_str(p->def);
  if (!text) return pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  pf_status st = coerce(p, text, out, err);
  pf_value_release(text);
  if (st) pf_err_prefix(err, "default of parameter '%s'", p->name);
  return st;
}

static pf_status unknown_param(const pf_op *op, const char *key, pf_err *err) {
  char names[768] = "";
  size_t used = 0;
  for (size_t i = 0; i < op->n_params && used < sizeof names - 1; i++)
    used += (size_t)snprintf(names + used, sizeof names - used, "%s%s", i ? ", " : "",
                             op->params[i].name);
  return pf_err_set(err, PF_ERR_INVALID, "unknown parameter '%s' (parameters: %s)", key, names);
}

static const pf_param_spec *find_spec(const pf_op *op, const char *key) {
  for (size_t i = 0; i < op->n_params; i++)
    if (strcmp(op->params[i].name, key) == 0) return &op->params[i];
  return NULL;
}

static pf_status validate_one(const pf_op *op, const pf_param_spec *p, const pf_value *given,
                              pf_value **out, pf_err *err) {
  *out = NULL;
  if (!given || given->type == PF_V_NULL) {
    if (p->required)
      return pf_err_set(err, PF_ERR_INVALID, "missing required parameter '%s' (%s)", p->name,
                        ptype_name(p->type));
    return default_value(p, out, err);
  }
  pf_status st = coerce(p, given, out, err);
  if (!st) st = check_value(p, *out, op->own_checks && choice_ok(op->own_checks, p->name), err);
  if (st) {
    pf_value_release(*out);
    *out = NULL;
  }
  return st;
}

/* op->needs over the given params and the full map. */
static pf_status check_needs(const pf_op *op, const pf_value *params, const pf_value *full,
                             pf_err *err) {
  for (const char *p = op->needs; p && *p;) {
    while (*p == ' ')
      p++;
    const char *colon = strchr(p, ':'), *end = strchr(p, ' ');
    if (!colon) break;
    if (!end) end = p + strlen(p);
    char key[64], dep[64];
    snprintf(key, sizeof key, "%.*s", (int)(colon - p), p);
    snprintf(dep, sizeof dep, "%.*s", (int)(end - colon - 1), colon + 1);
    p = end;
    const pf_value *k = params ? pf_map_get(params, key) : NULL, *d = pf_map_get(full, dep);
    if (!k || k->type == PF_V_NULL) continue;
    if (d && d->type != PF_V_NULL && !(d->type == PF_V_BOOL && !d->u.b)) continue;
    return pf_err_set(err, PF_ERR_INVALID,
                      "%s has no effect without %s (give %s%s, or leave %s out)", key, dep, dep,
                      d && d->type == PF_V_BOOL ? ": true" : "", key);
  }
  return PF_OK;
}

pf_status pf_op_check_given(const pf_op *op, const pf_value *params, pf_err *err) {
  if (!op || !params || params->type != PF_V_MAP) return PF_OK;
  for (size_t i = 0; i < params->u.map.len; i++) {
    const pf_param_spec *p = find_spec(op, params->u.map.keys[i]);
    if (!p) return unknown_param(op, params->u.map.keys[i], err);
    const pf_value *given = params->u.map.vals[i];
    if (!given || given->type == PF_V_NULL || p->type == PF_P_MODEL || p->type == PF_P_ANY)
      continue;
    pf_value *v = NULL;
    pf_status st = validate_one(op, p, given, &v, err);
    pf_value_release(v);
    if (st) return st;
  }
  return PF_OK;
}

pf_status pf_op_validate(const pf_op *op, const pf_value *params, pf_value **out, pf_err *err) {
  *out = NULL;
  if (!op) return pf_err_set(err, PF_ERR_INVALID, "no op given");
  if (params && params->type != PF_V_MAP)
    return pf_err_set(err, PF_ERR_INVALID, "parameters: expected a map, got %s",
                      pf_vtype_name(params->type));
  for (size_t i = 0; params && i < params->u.map.len; i++)
    if (!find_spec(op, params->u.map.keys[i])) return unknown_param(op, params->u.map.keys[i], err);
  pf_value *full = pf_value_map();
  if (!full) return pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  for (size_t i = 0; i < op->n_params; i++) {
    const pf_param_spec *p = &op->params[i];
    pf_value *v;
    pf_status st = validate_one(op, p, params ? pf_map_get(params, p->name) : NULL, &v, err);
    if (!st && pf_map_set(full, p->name, v) != PF_OK)
      st = pf_err_set(err, PF_ERR_NOMEM, "out of memory");
    if (st) {
      pf_value_release(full);
      return st;
    }
  }
  pf_status st = check_needs(op, params, full, err);
  if (st) {
    pf_value_release(full);
    return st;
  }
  *out = full;
  return PF_OK;
}

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static pf_status unknown_op(const char *name, pf_err *err) {
  char names[512] = "";
  size_t used = 0;
  for (size_t i = 0; i < PF_OP_TABLE_COUNT && used < sizeof names - 1; i++)
    used += (size_t)snprintf(names + used, sizeof names - used, "%s%s", i ? ", " : "",
                             op_table[i]->name);
  return pf_err_set(err, PF_ERR_INVALID, "unknown op '%s' (ops: %s)", name ? name : "(null)",
                    names);
}

/* {"op": name, <the op's keys>..., "seconds": t}; consumes `res`. */
static pf_status finish_result(const pf_op *op, pf_value *res, double secs, pf_value **out,
                               pf_err *err) {
  pf_value *m = pf_value_map();
  pf_status st = m ? pf_map_set_str(m, "op", op->name) : PF_ERR_NOMEM;
  for (size_t i = 0; !st && i < res->u.map.len; i++) {
    if (strcmp(res->u.map.keys[i], "op") == 0 || strcmp(res->u.map.keys[i], "seconds") == 0)
      continue;
    pf_value_retain(res->u.map.vals[i]);
    st = pf_map_set(m, res->u.map.keys[i], res->u.map.vals[i]);
  }
  if (!st) st = pf_map_set_num(m, "seconds", secs);
  pf_value_release(res);
  if (st) {
    pf_value_release(m);
    return pf_err_set(err, PF_ERR_NOMEM, "%s: out of memory", op->name);
  }
  *out = m;
  return PF_OK;
}

pf_status pf_op_run(const char *name, const pf_value *params, pf_value **out, const pf_ctx *ctx,
                    pf_err *err) {
  *out = NULL;
  const pf_op *op = pf_op_find(name);
  if (!op) return unknown_op(name, err);
  pf_value *full = NULL, *res = NULL;
  pf_status st = pf_op_validate(op, params, &full, err);
  if (!st) st = pf_ctx_check_interrupt(ctx, err);
  double t0 = now_seconds();
  pf_ctx follower = {0}; /* MPI, ranks other than 0: an op that writes files only plans */
  if (op->writes && !pf_dist_writer()) {
    if (ctx) follower = *ctx;
    follower.dry_run = 1;
    follower.follower = 1;
    ctx = &follower;
  }
  if (!st) st = op->run(op, full, &res, ctx, err);
  if (op->writes) pf_dist_barrier(); /* the files exist for every rank afterwards */
  double secs = now_seconds() - t0;
  pf_value_release(full);
  if (!st && (!res || res->type != PF_V_MAP))
    st = pf_err_set(err, PF_ERR_INVALID, "op returned no result map");
  if (st) {
    pf_value_release(res);
    /* a failure passed up without a message (e.g. a pf_map_set status): name it */
    if (err && err->code == PF_OK) pf_err_set(err, st, "%s", pf_status_name(st));
    /* name the op, unless its own message already starts with it */
    const size_t nl = strlen(op->name);
    if (err && !(strncmp(err->msg, op->name, nl) == 0 && err->msg[nl] == ':'))
      pf_err_prefix(err, "%s", op->name);
    return st;
  }
  pf_ctx_log(ctx, "%s: done in %.3f s", op->name, secs);
  return finish_result(op, res, secs, out, err);
}
