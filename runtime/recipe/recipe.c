/* recipe.c — recipes: structure, vars, step references, validation, running,
 * results.json. See recipe.h for the format and recipe_yaml.c for the YAML side.
 *
 * The whole recipe is parsed and every step validated (pf_op_validate with a
 * placeholder model standing in for earlier steps' results, then the op's own
 * model-free checks) before the first step runs, so a typo in step 7 costs nothing. Errors are
 * reported in step order; references are checked against the ids of *all* steps (collected in a
 * first light pass) so that naming a later step gets its own message.
 */
#include "recipe_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dist.h"
#include "fsutil.h"
#include "kernels/kernels.h"
#include "op.h"
#include "synthetic.h"

/* ------------------------------------------------------------- errors */

void pf_recipe_fmt(char *buf, size_t n, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, n, fmt, ap);
  va_end(ap);
}

pf_status pf_recipe_at(const recipe *r, yaml_mark_t m, pf_err *err, pf_status code, const char *fmt,
                       ...) {
  char msg[PF_ERR_MSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return pf_err_set(err, code, "%s:%zu:%zu: %s", r->path, PF_MARK_LINE(m), PF_MARK_COL(m), msg);
}

/* Prefix err's bare message: "<file>:<line>:<col>: step N (op): ". A leading
 * "<op>: " (added by the op table) is dropped, the prefix already names it. */
static pf_status step_fail(const recipe *r, const rstep *s, const char *opname, yaml_mark_t m,
                           pf_err *err) {
  const char *msg = err->msg;
  size_t n = opname ? strlen(opname) : 0;
  if (n && strncmp(msg, opname, n) == 0 && msg[n] == ':' && msg[n + 1] == ' ') msg += n + 2;
  char tmp[PF_ERR_MSG_MAX];
  pf_recipe_fmt(tmp, sizeof tmp, "%s", msg);
  pf_recipe_fmt(err->msg, sizeof err->msg, "%s:%zu:%zu: step %d (%s): %s", r->path, PF_MARK_LINE(m),
                PF_MARK_COL(m), s->index, opname ? opname : "?", tmp);
  return err->code;
}

static pf_status step_at(const recipe *r, const rstep *s, const char *opname, yaml_mark_t m,
                         pf_err *err, pf_status code, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));

static pf_status step_at(const recipe *r, const rstep *s, const char *opname, yaml_mark_t m,
                         pf_err *err, pf_status code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err->msg, sizeof err->msg, fmt, ap);
  va_end(ap);
  err->code = code;
  return step_fail(r, s, opname, m, err);
}

/* Comma-separated names into buf. */
static void join_ids(const recipe *r, size_t upto, char *buf, size_t n) {
  size_t o = 0;
  buf[0] = '\0';
  for (size_t i = 0; i < upto && o + 1 < n; i++) {
    if (!r->steps[i].id) continue;
    int w = snprintf(buf + o, n - o, "%s%s", o ? ", " : "", r->steps[i].id);
    if (w > 0) o = o + (size_t)w < n ? o + (size_t)w : n - 1;
  }
  if (!o) snprintf(buf, n, "none");
}

static void join_ops(char *buf, size_t n) {
  size_t o = 0;
  buf[0] = '\0';
  for (size_t i = 0; i < pf_op_count() && o + 1 < n; i++) {
    int w = snprintf(buf + o, n - o, "%s%s", i ? ", " : "", pf_op_at(i)->name);
    if (w > 0) o = o + (size_t)w < n ? o + (size_t)w : n - 1;
  }
}

/* -------------------------------------------------------------- steps */

static yaml_node_t *map_lookup(recipe *r, yaml_node_t *m, const char *key, yaml_node_t **knode) {
  for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
    yaml_node_t *k = pf_ydoc_node(&r->y, p->key);
    const char *t = pf_ynode_text(k);
    if (t && strcmp(t, key) == 0) {
      if (knode) *knode = k;
      return pf_ydoc_node(&r->y, p->value);
    }
  }
  return NULL;
}

/* Light first pass: the steps list and every step's id (for "defined later"). */
static pf_status collect_steps(recipe *r, pf_err *err) {
  yaml_node_t *n = r->top[K_STEPS];
  yaml_mark_t root = pf_ydoc_root(&r->y)->start_mark;
  if (!n) return pf_recipe_at(r, root, err, PF_ERR_INVALID, "missing required key 'steps'");
  if (n->type != YAML_SEQUENCE_NODE)
    return pf_recipe_at(r, n->start_mark, err, PF_ERR_INVALID,
                        "steps: expected a sequence, got a %s", pf_ynode_kind(n));
  size_t count = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
  if (count == 0)
    return pf_recipe_at(r, n->start_mark, err, PF_ERR_INVALID, "steps: the list is empty");
  if (count > PF_RECIPE_MAX_STEPS)
    return pf_recipe_at(r, n->start_mark, err, PF_ERR_INVALID, "steps: %zu steps; the limit is %d",
                        count, PF_RECIPE_MAX_STEPS);
  if (!(r->steps = calloc(count, sizeof *r->steps)))
    return pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  r->n_steps = count;
  for (size_t i = 0; i < count; i++) {
    rstep *s = &r->steps[i];
    s->index = (int)i + 1;
    s->node = pf_ydoc_node(&r->y, n->data.sequence.items.start[i]);
    s->mark = s->node->start_mark;
    if (s->node->type == YAML_MAPPING_NODE)
      s->id = pf_ynode_text(map_lookup(r, s->node, "id", NULL));
  }
  return PF_OK;
}

static const pf_param_spec *find_spec(const pf_op *op, const char *name) {
  for (size_t i = 0; i < op->n_params; i++)
    if (strcmp(op->params[i].name, name) == 0) return &op->params[i];
  return NULL;
}

/* Keys of a step mapping: scalars, each once. */
static pf_status check_keys(recipe *r, rstep *s, const char *opname, pf_err *err) {
  yaml_node_t *n = s->node;
  for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
    yaml_node_t *k = pf_ydoc_node(&r->y, p->key);
    const char *key = pf_ynode_text(k);
    if (!key)
      return step_at(r, s, opname, k ? k->start_mark : s->mark, err, PF_ERR_INVALID,
                     "parameter names must be scalars, got a %s", pf_ynode_kind(k));
    for (yaml_node_pair_t *q = n->data.mapping.pairs.start; q < p; q++)
      if (strcmp(pf_ynode_text(pf_ydoc_node(&r->y, q->key)), key) == 0)
        return step_at(r, s, opname, k->start_mark, err, PF_ERR_INVALID, "duplicate key '%s'", key);
  }
  return PF_OK;
}

static pf_status parse_op_id(recipe *r, rstep *s, pf_err *err) {
  size_t i = (size_t)s->index - 1;
  if (s->node->type != YAML_MAPPING_NODE)
    return step_at(r, s, NULL, s->mark, err, PF_ERR_INVALID,
                   "expected a mapping with 'op' and parameters, got a %s", pf_ynode_kind(s->node));
  yaml_node_t *opn = map_lookup(r, s->node, "op", NULL);
  const char *opname = pf_ynode_text(opn);
  pf_status st = check_keys(r, s, opname, err);
  if (st != PF_OK) return st;
  if (!opn) return step_at(r, s, NULL, s->mark, err, PF_ERR_INVALID, "missing required key 'op'");
  if (!opname || !*opname)
    return step_at(r, s, NULL, opn->start_mark, err, PF_ERR_INVALID,
                   "op: expected an op name, got a %s",
                   opname ? "empty string" : pf_ynode_kind(opn));
  if (!(s->op = pf_op_find(opname))) {
    char ops[512];
    join_ops(ops, sizeof ops);
    return step_at(r, s, opname, opn->start_mark, err, PF_ERR_NOT_FOUND,
                   "unknown op '%s' (known ops: %s)", opname, ops);
  }
  yaml_node_t *idn = map_lookup(r, s->node, "id", NULL);
  if (!idn) return PF_OK;
  if (!s->id || !pf_recipe_is_ident(s->id))
    return step_at(r, s, s->op->name, idn->start_mark, err, PF_ERR_INVALID,
                   "id: '%s' is not an identifier (letters, digits and _, not starting with a "
                   "digit)",
                   s->id ? s->id : pf_ynode_kind(idn));
  for (size_t j = 0; j < i; j++)
    if (r->steps[j].id && strcmp(r->steps[j].id, s->id) == 0)
      return step_at(r, s, s->op->name, idn->start_mark, err, PF_ERR_INVALID,
                     "duplicate step id '%s' (already used by step %d at line %zu)", s->id,
                     r->steps[j].index, PF_MARK_LINE(r->steps[j].mark));
  return PF_OK;
}

/* A string parameter naming a step id: a reference (model/any typed params). */
static pf_status parse_ref(recipe *r, rstep *s, const pf_param_spec *spec, const char *key,
                           const pf_value *v, yaml_mark_t vm, pf_err *err) {
  if (!spec || (spec->type != PF_P_MODEL && spec->type != PF_P_ANY) || v->type != PF_V_STR)
    return PF_OK;
  size_t i = (size_t)s->index - 1;
  for (size_t j = 0; j < i; j++) {
    if (!r->steps[j].id || strcmp(r->steps[j].id, v->u.s) != 0) continue;
    rref *ref = &s->refs[s->n_refs++];
    *ref = (rref){.key = key, .target = j, .want_model = spec->type == PF_P_MODEL, .mark = vm};
    return PF_OK;
  }
  if (spec->type != PF_P_MODEL) return PF_OK; /* any-typed: just a string */
  char ids[512];
  join_ids(r, i, ids, sizeof ids);
  for (size_t j = i; j < r->n_steps; j++)
    if (r->steps[j].id && strcmp(r->steps[j].id, v->u.s) == 0)
      return step_at(r, s, s->op->name, vm, err, PF_ERR_INVALID,
                     "%s: step id '%s' is %s (step %d); a step can only use earlier steps "
                     "(earlier ids: %s)",
                     key, v->u.s, j == i ? "this step itself" : "defined later", r->steps[j].index,
                     ids);
  return step_at(r, s, s->op->name, vm, err, PF_ERR_INVALID,
                 "%s: unknown step id '%s' (earlier ids: %s)", key, v->u.s, ids);
}

/* A rejected `when:` value for the message: got 0, got string 'no', ... */
static void when_found(const pf_value *v, char *buf, size_t n) {
  static const char *const yaml11[] = {"yes", "no", "on", "off"};
  switch (v->type) {
  case PF_V_NULL:
    snprintf(buf, n, "null (no value)");
    return;
  case PF_V_INT:
    snprintf(buf, n, "%lld", (long long)v->u.i);
    return;
  case PF_V_NUM:
    pf_format_pyfloat(v->u.n, buf, n);
    return;
  case PF_V_STR:
    for (size_t i = 0; i < sizeof yaml11 / sizeof *yaml11; i++)
      if (!strcasecmp(v->u.s, yaml11[i])) {
        snprintf(buf, n, "string '%s' (yes/no/on/off are strings in YAML 1.2: write true or false)",
                 v->u.s);
        return;
      }
    if (*v->u.s)
      snprintf(buf, n, "string '%.200s'", v->u.s);
    else
      snprintf(buf, n, "an empty string");
    return;
  default:
    snprintf(buf, n, "a %s", pf_vtype_name(v->type));
  }
}

static pf_status parse_params(recipe *r, rstep *s, pf_err *err) {
  yaml_node_t *n = s->node;
  size_t np = (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
  s->given = pf_value_map();
  s->kmark = calloc(np ? np : 1, sizeof *s->kmark);
  s->refs = calloc(np ? np : 1, sizeof *s->refs);
  if (!s->given || !s->kmark || !s->refs) return pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
    yaml_node_t *k = pf_ydoc_node(&r->y, p->key), *vn = pf_ydoc_node(&r->y, p->value);
    const char *key = pf_ynode_text(k); /* scalar: checked by check_keys */
    if (strcmp(key, "op") == 0 || strcmp(key, "id") == 0) continue;
    pf_value *v = NULL;
    yaml_mark_t where;
    pf_status st = pf_ydoc_value(&r->y, vn, r->vars, 4, &v, &where, err);
    if (st != PF_OK) {
      pf_err_prefix(err, "%s", key);
      return step_fail(r, s, s->op->name, where, err);
    }
    if (strcmp(key, "when") == 0) { /* a step switch, not a parameter */
      const int ok = v->type == PF_V_BOOL;
      char got[300] = "";
      s->skip = ok && !v->u.b;
      if (!ok) when_found(v, got, sizeof got);
      pf_value_release(v);
      if (!ok)
        return step_at(r, s, s->op->name, vn->start_mark, err, PF_ERR_INVALID,
                       "when: expected true or false (e.g. when: ${var} with a boolean var), "
                       "got %s",
                       got);
      continue;
    }
    size_t slot = s->given->u.map.len;
    if (pf_map_set(s->given, key, v) != PF_OK)
      return pf_err_set(err, PF_ERR_NOMEM, "out of memory");
    s->kmark[slot] = k->start_mark;
    st = parse_ref(r, s, find_spec(s->op, key), s->given->u.map.keys[slot],
                   s->given->u.map.vals[slot], vn->start_mark, err);
    if (st != PF_OK) return st;
  }
  return PF_OK;
}

/* Where an op's message points: the given parameter it names first, quoted
 * ('key', as pf_op_validate writes them) or as the message's first word ("key:
 * ...", "key must be between 0 and 100, got inf"), after the "<op>: " that the
 * op table puts in front of a run's message. */
static yaml_mark_t blame(const rstep *s, const char *msg) {
  yaml_mark_t best = s->mark;
  const char *best_at = NULL, *lead = msg;
  char quoted[160];
  size_t ol = strlen(s->op->name);
  if (!strncmp(lead, s->op->name, ol) && lead[ol] == ':' && lead[ol + 1] == ' ') lead += ol + 2;
  for (size_t j = 0; s->given && j < s->given->u.map.len; j++) {
    const char *key = s->given->u.map.keys[j];
    size_t kl = strlen(key);
    const char *h = NULL;
    if (kl + 3 <= sizeof quoted) {
      snprintf(quoted, sizeof quoted, "'%s'", key);
      h = strstr(msg, quoted);
    }
    if (!h && strncmp(lead, key, kl) == 0 && (lead[kl] == ':' || lead[kl] == ' ')) h = lead;
    if (h && (!best_at || h < best_at)) best_at = h, best = s->kmark[j];
  }
  return best;
}

/* Parameters for one run: the given ones with references replaced by `results`
 * (or, for validation, by a placeholder model / an empty map). */
static pf_status build_params(const recipe *r, const rstep *s, pf_model *placeholder,
                              pf_value **out, pf_err *err) {
  pf_value *p = pf_value_copy(s->given);
  *out = NULL;
  if (!p) return pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  for (size_t i = 0; i < s->n_refs; i++) {
    const rref *ref = &s->refs[i];
    const rstep *t = &r->steps[ref->target];
    pf_value *v;
    if (t->skip && !s->skip) {
      pf_value_release(p);
      return step_at(r, s, s->op->name, ref->mark, err, PF_ERR_INVALID,
                     "%s: step '%s' (%s) does not run (when: false)", ref->key, t->id, t->op->name);
    }
    if (placeholder) {
      v = ref->want_model ? pf_value_model(placeholder) : pf_value_map();
    } else if (ref->want_model) {
      v = pf_map_get(t->result, "model");
      if (!v || v->type != PF_V_MODEL) {
        pf_value_release(p);
        return step_at(r, s, s->op->name, ref->mark, err, PF_ERR_INVALID,
                       "%s: step '%s' (%s) did not produce a model", ref->key, t->id, t->op->name);
      }
      pf_value_retain(v);
    } else {
      v = t->result;
      pf_value_retain(v);
    }
    if (!v || pf_map_set(p, ref->key, v) != PF_OK) {
      pf_value_release(p);
      return pf_err_set(err, PF_ERR_NOMEM, "out of memory");
    }
  }
  *out = p;
  return PF_OK;
}

/* The input files a step names (data, prompt_pairs), checked before any step runs:
 * a missing one would otherwise stop the run after the steps before it did their
 * work (a checkpoint written, then "no such data file"). */
static pf_status check_inputs(recipe *r, rstep *s, pf_err *err) {
  static const char *const keys[] = {"data", "prompt_pairs"};
  for (size_t i = 0; !s->skip && i < sizeof keys / sizeof *keys; i++) {
    const pf_value *v = pf_map_get(s->given, keys[i]);
    if (!v || v->type != PF_V_STR || !strcmp(v->u.s, "default") || pf_path_exists(v->u.s)) continue;
    int ref = 0; /* a step's id (plot's data: bias_before), not a file */
    for (size_t k = 0; k < s->n_refs; k++)
      ref |= !strcmp(s->refs[k].key, keys[i]);
    if (ref) continue;
    char hint[4200];
    pf_err_set(err, PF_ERR_NOT_FOUND, "%s: %s: no such file%s", keys[i], v->u.s,
               pf_relative_hint(v->u.s, hint, sizeof hint));
    return step_fail(r, s, s->op->name, blame(s, err->msg), err);
  }
  return PF_OK;
}

/* A save step's output folder, checked before any step runs for the same
 * reason: a re-run of a recipe would otherwise calibrate, prune and evaluate,
 * then stop at the save ("the output folder exists and is not empty") with no
 * results.json. `params` are the validated ones (path substituted, overwrite a
 * bool). A skipped step (when: false) writes nothing and is not checked. */
static pf_status check_save_target(recipe *r, rstep *s, const pf_value *params, pf_err *err) {
  if (s->skip || strcmp(s->op->name, "save") != 0) return PF_OK;
  const char *path = pf_map_str(params, "path", NULL);
  const int overwrite = pf_map_bool(params, "overwrite", 0);
  /* MPI: rank 0 checks the folder it will write (another rank may get here after
   * rank 0 started writing there); pf_recipe_run shares what it finds */
  if (path && pf_dist_writer() && pf_save_target_check(path, overwrite, err) != PF_OK)
    return step_fail(r, s, s->op->name, blame(s, err->msg), err);
  if (!path || !(s->save_abs = pf_abspath(path))) return PF_OK;
  /* an earlier save step that runs writes there first: this one would find it full */
  for (rstep *e = r->steps; !overwrite && e < s; e++)
    if (e->save_abs && !strcmp(e->save_abs, s->save_abs)) {
      pf_err_set(err, PF_ERR_INVALID,
                 "path '%s': step %d saves there first, so this step would find the folder "
                 "not empty (set overwrite: true to replace it, or save elsewhere)",
                 path, e->index);
      return step_fail(r, s, s->op->name, blame(s, err->msg), err);
    }
  return PF_OK;
}

static pf_status validate_step(recipe *r, rstep *s, pf_model *placeholder, pf_err *err) {
  pf_value *p = NULL, *full = NULL;
  pf_status st = check_inputs(r, s, err);
  if (st != PF_OK) return st;
  st = build_params(r, s, placeholder, &p, err);
  if (st != PF_OK) return st;
  st = pf_op_validate(s->op, p, &full, err);
  pf_value_release(p);
  /* the op's own model-free checks too, unless the step will not run */
  if (st == PF_OK && s->op->check && !s->skip) st = s->op->check(full, err);
  if (st != PF_OK) {
    pf_value_release(full);
    return step_fail(r, s, s->op->name, blame(s, err->msg), err);
  }
  st = check_save_target(r, s, full, err);
  pf_value_release(full);
  return st;
}

/* Parse and validate every step before anything runs. */
static pf_status parse_steps(recipe *r, pf_err *err) {
  pf_status st = collect_steps(r, err);
  if (st != PF_OK) return st;
  /* stands in for earlier steps' models during validation; never freed by the
   * values that borrow it because we keep the first reference */
  pf_model placeholder;
  memset(&placeholder, 0, sizeof placeholder);
  char phname[] = "(model of an earlier step)";
  placeholder.refcount = 1;
  placeholder.name = phname;
  snprintf(placeholder.config.model_type, sizeof placeholder.config.model_type, "llama");
  for (size_t i = 0; i < r->n_steps && st == PF_OK; i++) {
    rstep *s = &r->steps[i];
    st = parse_op_id(r, s, err);
    if (st == PF_OK) st = parse_params(r, s, err);
    if (st == PF_OK) st = validate_step(r, s, &placeholder, err);
  }
  return st;
}

/* ------------------------------------------------------------ running */

static pf_value *results_map(const recipe *r, int dry_run, size_t n_steps);

/* 1 when the op takes a parameter `name`. */
static int op_has_param(const pf_op *op, const char *name) {
  for (size_t i = 0; i < op->n_params; i++)
    if (strcmp(op->params[i].name, name) == 0) return 1;
  return 0;
}

/* Ops that describe the run (report) get it as `results` unless the step says
 * otherwise: the recipe, vars and every step done so far. */
static pf_status add_run_results(const recipe *r, const rstep *s, size_t done, int dry, pf_value *p,
                                 pf_err *err) {
  if (!op_has_param(s->op, "results") || pf_map_has(p, "results")) return PF_OK;
  pf_value *res = results_map(r, dry, done);
  if (!res || pf_map_set(p, "results", res) != PF_OK)
    return pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  return PF_OK;
}

/* After step `done`: the results that no later step takes keep their JSON form
 * (results.json, the report) but not their tensors — captured activations are
 * gigabytes on large models, and a recipe with several bias steps would
 * otherwise hold all of them to its end. Models stay (the report names them). */
static pf_status drop_dead_tensors(recipe *r, size_t done, pf_err *err) {
  for (size_t t = 0; t <= done; t++) {
    rstep *s = &r->steps[t];
    if (s->last_use != done || !pf_value_has_tensor(s->result)) continue;
    pf_value *h = pf_value_hollow(s->result);
    if (!h) return pf_err_set(err, PF_ERR_NOMEM, "out of memory");
    pf_value_release(s->result);
    s->result = h;
  }
  return PF_OK;
}

/* A run that stops at step `failed` keeps what the steps before it wrote (a saved
 * checkpoint is complete, and a re-run of the recipe refuses its folder): the message
 * says which, after the error. */
static pf_status with_kept(const recipe *r, const pf_ctx *ctx, size_t failed, pf_status st,
                           pf_err *err) {
  if (ctx && ctx->dry_run) return st; /* nothing was written */
  char kept[1024] = "";
  size_t used = 0;
  for (size_t t = 0; t < failed && used < sizeof kept - 1; t++) {
    const rstep *k = &r->steps[t];
    /* a checkpoint or report (its path), or the files a step wrote (charts, metrics) */
    const pf_value *files = k->result ? pf_map_get(k->result, "files") : NULL;
    const size_t nfiles = files && files->type == PF_V_LIST ? files->u.list.len : 0;
    if (k->skip || !k->result || (!k->op->writes && nfiles == 0)) continue;
    const char *path = pf_map_str(k->result, "path", NULL);
    char in_dir[512];
    if (!path && nfiles > 0) { /* "N files in DIR", DIR the first file's folder */
      const pf_value *f0 = files->u.list.items[0];
      const char *first = f0 && f0->type == PF_V_STR ? f0->u.s : "";
      const char *slash = strrchr(first, '/');
      snprintf(in_dir, sizeof in_dir, "%zu file%s in %.*s", nfiles, nfiles == 1 ? "" : "s",
               slash ? (int)(slash - first) : 1, slash ? first : ".");
      path = in_dir;
    }
    used +=
        (size_t)snprintf(kept + used, sizeof kept - used, "%sstep %d (%s)%s%s", used ? ", " : "",
                         k->index, k->op->name, path ? " " : "", path ? path : "");
  }
  if (used && strlen(err->msg) + used + 120 < sizeof err->msg) {
    char tmp[PF_ERR_MSG_MAX];
    pf_recipe_fmt(tmp, sizeof tmp, "%s", err->msg);
    pf_recipe_fmt(err->msg, sizeof err->msg,
                  "%s [kept, complete: what %s wrote; a re-run needs overwrite: true for a "
                  "save folder]",
                  tmp, kept);
  }
  return st;
}

static pf_status run_steps(recipe *r, const pf_ctx *ctx, pf_err *err) {
  for (size_t i = 0; i < r->n_steps; i++)
    r->steps[i].last_use = i;
  for (size_t i = 0; i < r->n_steps; i++)
    for (size_t k = 0; k < r->steps[i].n_refs; k++) {
      rstep *t = &r->steps[r->steps[i].refs[k].target];
      if (t->last_use < i) t->last_use = i;
    }
  for (size_t i = 0; i < r->n_steps; i++) {
    rstep *s = &r->steps[i];
    r->n_started = i + 1;
    pf_status st = pf_ctx_check_interrupt(ctx, err);
    if (st != PF_OK) return with_kept(r, ctx, i, step_fail(r, s, s->op->name, s->mark, err), err);
    pf_ctx_log(ctx, "step %d/%zu: %s%s%s%s", s->index, r->n_steps, s->op->name, s->id ? " " : "",
               s->id ? s->id : "", s->skip ? ": skipped (when: false)" : "");
    if (s->skip) continue;
    pf_value *p = NULL;
    if ((st = build_params(r, s, NULL, &p, err)) != PF_OK) return st;
    st = add_run_results(r, s, i, ctx->dry_run, p, err);
    if (st == PF_OK) st = pf_op_run(s->op->name, p, &s->result, ctx, err);
    pf_value_release(p);
    if (st != PF_OK)
      return with_kept(r, ctx, i, step_fail(r, s, s->op->name, blame(s, err->msg), err), err);
    if ((st = drop_dead_tensors(r, i, err)) != PF_OK) return st;
  }
  return PF_OK;
}

static pf_status set_or_fail(pf_value *map, const char *key, pf_value *v, int *oom) {
  if (!v || pf_map_set(map, key, v) != PF_OK) *oom = 1;
  return *oom ? PF_ERR_NOMEM : PF_OK;
}

static pf_value *step_summary(const rstep *s, int *oom) {
  pf_value *m = pf_value_map();
  if (!m) {
    *oom = 1;
    return NULL;
  }
  set_or_fail(m, "index", pf_value_int(s->index), oom);
  set_or_fail(m, "id", s->id ? pf_value_str(s->id) : pf_value_null(), oom);
  set_or_fail(m, "op", pf_value_str(s->op->name), oom);
  pf_value_retain(s->given);
  set_or_fail(m, "params", s->given, oom);
  if (s->result) pf_value_retain(s->result);
  set_or_fail(m, "result", s->result ? s->result : pf_value_null(), oom);
  set_or_fail(m, "seconds", pf_value_num(pf_map_num(s->result, "seconds", 0.0)), oom);
  if (s->skip) set_or_fail(m, "skipped", pf_value_bool(1), oom);
  return m;
}

/* The run's results: recipe, vars and the first n_steps steps. */
static pf_value *results_map(const recipe *r, int dry_run, size_t n_steps) {
  int oom = 0;
  pf_value *m = pf_value_map(), *steps = pf_value_list();
  if (!m || !steps) {
    pf_value_release(m);
    pf_value_release(steps);
    return NULL;
  }
  set_or_fail(m, "recipe", pf_value_str(r->path), &oom);
  set_or_fail(m, "name", pf_value_str(r->name), &oom);
  set_or_fail(m, "output_dir", pf_value_str(r->output_dir), &oom);
  set_or_fail(m, "dry_run", pf_value_bool(dry_run), &oom);
  /* what computed the numbers: BF16 models give slightly different results with
   * the bf16 (AMX or AVX512-BF16) and f32 matmul paths */
  set_or_fail(m, "pfrun_version", pf_value_str(PF_VERSION_STR), &oom);
  set_or_fail(m, "kernels", pf_value_str(pf_kernels_describe()), &oom);
  set_or_fail(m, "matmul_bf16_weights", pf_value_str(pf_matmul_name(pf_kernels_matmul_effective())),
              &oom);
  set_or_fail(m, "matmul_path", pf_value_str(pf_kernels_matmul_path()), &oom);
  pf_value_retain(r->vars);
  set_or_fail(m, "vars", r->vars, &oom);
  for (size_t i = 0; i < n_steps && !oom; i++) {
    pf_value *st = step_summary(&r->steps[i], &oom);
    if (st && pf_list_push(steps, st) != PF_OK) oom = 1;
  }
  set_or_fail(m, "steps", steps, &oom);
  if (oom) {
    pf_value_release(m);
    return NULL;
  }
  return m;
}

static pf_status write_results(const recipe *r, const pf_value *res, pf_err *err) {
  if (!pf_dist_writer()) return PF_OK; /* MPI: rank 0 writes the outputs */
  char *path = pf_path_join(r->output_dir, "results.json");
  char *text = pf_value_to_json_text(res);
  pf_status st;
  if (!path || !text)
    st = pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  else if ((st = pf_mkdirs(r->output_dir, err)) != PF_OK)
    pf_err_prefix(err, "%s: output_dir '%s'", r->path, r->output_dir);
  else if ((st = pf_write_file(path, text, strlen(text), err)) != PF_OK)
    pf_err_prefix(err, "%s: %s", r->path, path);
  free(path);
  free(text);
  return st;
}

/* A run that failed or was interrupted at a step after others had finished: their
 * results (statistics, perplexities, timings: often hours of work) go to
 * results.json all the same, marked "status": "failed" or "interrupted" with the
 * error and the step it came from, and the error says where they are. Nothing is
 * written when no step had finished (a previous run's results.json stays). A
 * failure to write them leaves the run's own error as it was. */
static void keep_finished_results(recipe *r, pf_status failure, pf_err *err) {
  if (r->n_started == 0) return;
  const size_t done = r->n_started - 1; /* steps [0, done) finished or were skipped */
  size_t ran = 0;
  for (size_t i = 0; i < done; i++)
    ran += !r->steps[i].skip;
  if (ran == 0) return;
  const rstep *f = &r->steps[done];
  pf_value *res = results_map(r, 0, done), *fs = pf_value_map();
  int oom = !res || !fs;
  if (!oom) {
    set_or_fail(fs, "index", pf_value_int(f->index), &oom);
    set_or_fail(fs, "id", f->id ? pf_value_str(f->id) : pf_value_null(), &oom);
    set_or_fail(fs, "op", pf_value_str(f->op->name), &oom);
    set_or_fail(res, "status",
                pf_value_str(failure == PF_ERR_INTERRUPTED ? "interrupted" : "failed"), &oom);
    set_or_fail(res, "error", pf_value_str(err->msg), &oom);
    pf_value_retain(fs);
    set_or_fail(res, "failed_step", fs, &oom);
  }
  pf_err werr = {0};
  if (!oom && write_results(r, res, &werr) == PF_OK && pf_dist_writer()) {
    char tmp[PF_ERR_MSG_MAX];
    pf_recipe_fmt(tmp, sizeof tmp, "%s", err->msg);
    pf_recipe_fmt(err->msg, sizeof err->msg, "%s [the results of the %zu finished step%s: %s/%s]",
                  tmp, ran, ran == 1 ? "" : "s", r->output_dir, "results.json");
  }
  pf_value_release(fs);
  pf_value_release(res);
}

static void recipe_free(recipe *r) {
  for (size_t i = 0; r->steps && i < r->n_steps; i++) {
    pf_value_release(r->steps[i].given);
    pf_value_release(r->steps[i].result);
    free(r->steps[i].kmark);
    free(r->steps[i].refs);
    free(r->steps[i].save_abs);
  }
  free(r->steps);
  pf_value_release(r->vars);
  free(r->name);
  free(r->output_dir);
  pf_ydoc_free(&r->y);
}

pf_status pf_recipe_run(const char *path, const pf_recipe_opts *opts, const pf_ctx *ctx,
                        pf_value **results, pf_err *err) {
  static const pf_ctx no_ctx;
  pf_err local = {0};
  recipe r;
  memset(&r, 0, sizeof r);
  r.path = path ? path : "(recipe)";
  if (!err) err = &local;
  if (!ctx) ctx = &no_ctx;
  if (results) *results = NULL;
  pf_value *res = NULL;
  pf_status st = path ? pf_ydoc_load(&r.y, path, err)
                      : pf_err_set(err, PF_ERR_INVALID, "recipe: no file given");
  if (st == PF_OK) st = pf_recipe_head(&r, opts, err);
  if (st == PF_OK) st = parse_steps(&r, err);
  st = pf_dist_writer_outcome(st, err); /* MPI: every rank, whether or not it failed */
  if (st == PF_OK && (st = run_steps(&r, ctx, err)) != PF_OK && !ctx->dry_run)
    keep_finished_results(&r, st, err);
  if (st == PF_OK && !(res = results_map(&r, ctx->dry_run, r.n_steps)))
    st = pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  if (st == PF_OK && pf_map_set(res, "status", pf_value_str("complete")) != PF_OK)
    st = pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  if (st == PF_OK && !ctx->dry_run) st = write_results(&r, res, err);
  recipe_free(&r);
  if (st != PF_OK) {
    pf_value_release(res);
    return st;
  }
  if (results)
    *results = res;
  else
    pf_value_release(res);
  return PF_OK;
}
