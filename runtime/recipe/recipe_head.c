/* recipe_head.c — a recipe's top level: the known keys and `pfrun: 1`, vars
 * (--set values first, then the file's, lists of alternatives), the check that
 * every --set names a variable, and name / output_dir with their defaults.
 * Everything here runs before any step is parsed (recipe.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "recipe_int.h"
#include "synthetic.h"

static const char *const top_keys[K_COUNT] = {"pfrun", "name",       "description",
                                              "vars",  "output_dir", "steps"};

static pf_status parse_top_keys(recipe *r, yaml_node_t *root, pf_err *err) {
  if (!root)
    return pf_err_set(err, PF_ERR_FORMAT,
                      "%s:1:1: the recipe is empty (expected a mapping with pfrun: 1, name and "
                      "steps)",
                      r->path);
  if (root->type != YAML_MAPPING_NODE)
    return pf_recipe_at(r, root->start_mark, err, PF_ERR_FORMAT,
                        "a recipe must be a YAML mapping (pfrun: 1, name, steps), got a %s",
                        pf_ynode_kind(root));
  for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top;
       p++) {
    yaml_node_t *k = pf_ydoc_node(&r->y, p->key);
    const char *key = pf_ynode_text(k);
    if (!key)
      return pf_recipe_at(r, k ? k->start_mark : root->start_mark, err, PF_ERR_FORMAT,
                          "top-level keys must be scalars, got a %s", pf_ynode_kind(k));
    int which = -1;
    for (int i = 0; i < K_COUNT; i++)
      if (strcmp(key, top_keys[i]) == 0) which = i;
    if (which < 0)
      return pf_recipe_at(r, k->start_mark, err, PF_ERR_INVALID,
                          "unknown top-level key '%s' (expected pfrun, name, description, vars, "
                          "output_dir, steps)",
                          key);
    if (r->top[which])
      return pf_recipe_at(r, k->start_mark, err, PF_ERR_INVALID, "duplicate key '%s'", key);
    r->top[which] = pf_ydoc_node(&r->y, p->value);
  }
  yaml_node_t *v = r->top[K_PFRUN];
  if (!v)
    return pf_recipe_at(r, root->start_mark, err, PF_ERR_INVALID,
                        "missing required key 'pfrun' (the recipe format version: add 'pfrun: 1')");
  const char *t = pf_ynode_text(v);
  if (!t || v->data.scalar.style != YAML_PLAIN_SCALAR_STYLE || strcmp(t, "1") != 0)
    return pf_recipe_at(r, v->start_mark, err, PF_ERR_UNSUPPORTED,
                        "unsupported recipe format version '%s' (this pfrun reads pfrun: 1)",
                        t ? t : pf_ynode_kind(v));
  return PF_OK;
}

/* --set key=value: the value is a YAML scalar; quotes make it a string. An
 * empty value is refused: as a scalar it is null, which an op takes as "use the
 * default", so `--set pct=$P` with P unset would run the default silently. */
static pf_status parse_set(const recipe *r, const char *set, pf_value *sets, pf_err *err) {
  const char *eq = strchr(set, '=');
  char key[128];
  if (!eq || eq == set || (size_t)(eq - set) >= sizeof key)
    return pf_err_set(err, PF_ERR_INVALID, "%s: --set '%s': expected key=value", r->path, set);
  memcpy(key, set, (size_t)(eq - set));
  key[eq - set] = '\0';
  if (!pf_recipe_is_ident(key))
    return pf_err_set(err, PF_ERR_INVALID,
                      "%s: --set '%s': variable names are identifiers (letters, digits, _)",
                      r->path, set);
  const char *val = eq + 1;
  size_t n = strlen(val);
  if (!n) /* as a YAML scalar it would be null: the op's default, without a word */
    return pf_err_set(err, PF_ERR_INVALID,
                      "%s: --set '%s': no value for variable '%s' (give a value, or leave the "
                      "option out to keep the recipe's; an empty string is --set '%s=\"\"')",
                      r->path, set, key, key);
  pf_value *v = NULL;
  pf_status st;
  if (n >= 2 && (val[0] == '"' || val[0] == '\'') && val[n - 1] == val[0]) {
    char *inner = strndup(val + 1, n - 2);
    v = inner ? pf_value_str(inner) : NULL;
    free(inner);
    st = v ? PF_OK : pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  } else {
    st = pf_yaml_scalar(val, 1, &v, err);
  }
  if (st == PF_OK && pf_map_set(sets, key, v) != PF_OK)
    st = pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  if (st != PF_OK) return pf_err_prefix(err, "%s: --set '%s'", r->path, set);
  return PF_OK;
}

/* A var given as a list of alternatives: the first entry that is an existing
 * path (relative to the current folder) or a synthetic: model, e.g.
 *   model: [../shared/models/stories260K, synthetic:llama-small]
 * so one recipe runs on real data where it is present and on built-in data
 * elsewhere. Data only: nothing is executed. */
static pf_status pick_alternative(recipe *r, const char *key, yaml_node_t *seq, pf_value **out,
                                  pf_err *err) {
  char tried[512] = "", hint[4200] = ""; /* hint: for a relative alternative, the current folder */
  size_t len = 0;
  for (yaml_node_item_t *it = seq->data.sequence.items.start; it < seq->data.sequence.items.top;
       it++) {
    yaml_node_t *n = pf_ydoc_node(&r->y, *it);
    pf_value *v = NULL;
    yaml_mark_t where;
    if (!n || n->type != YAML_SCALAR_NODE)
      return pf_recipe_at(r, n ? n->start_mark : seq->start_mark, err, PF_ERR_INVALID,
                          "vars.%s: alternatives must be strings", key);
    pf_status st = pf_ydoc_value(&r->y, n, r->vars, 3, &v, &where, err);
    if (st != PF_OK) return st;
    if (v->type != PF_V_STR) {
      pf_value_release(v);
      return pf_recipe_at(r, n->start_mark, err, PF_ERR_INVALID,
                          "vars.%s: alternatives must be strings", key);
    }
    if (pf_synth_is_spec(v->u.s) || pf_path_exists(v->u.s)) {
      *out = v;
      return PF_OK;
    }
    if (!hint[0] && v->u.s[0] != '/') pf_relative_hint(v->u.s, hint, sizeof hint);
    if (len < sizeof tried)
      len += (size_t)snprintf(tried + len, sizeof tried - len, "%s%s", len ? ", " : "", v->u.s);
    pf_value_release(v);
  }
  return pf_recipe_at(r, seq->start_mark, err, PF_ERR_NOT_FOUND,
                      "vars.%s: none of the alternatives exists "
                      "(%s)%s",
                      key, tried, hint);
}

/* vars: --set values first (they win), then the file's vars in order; a var's
 * string value may use ${...} of the vars before it and of --set ones. */
static pf_status parse_vars(recipe *r, const pf_recipe_opts *opts, pf_err *err) {
  if (!(r->vars = pf_value_map())) return pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  if (opts && opts->n_sets > PF_RECIPE_MAX_KEYS)
    return pf_err_set(err, PF_ERR_INVALID, "%s: %zu --set values; the limit is %d", r->path,
                      opts->n_sets, PF_RECIPE_MAX_KEYS);
  for (size_t i = 0; opts && i < opts->n_sets; i++) {
    pf_status st = parse_set(r, opts->sets[i], r->vars, err);
    if (st != PF_OK) return st;
  }
  yaml_node_t *n = r->top[K_VARS];
  if (!n || (n->type == YAML_SCALAR_NODE && !*pf_ynode_text(n))) return PF_OK; /* vars: (null) */
  if (n->type != YAML_MAPPING_NODE)
    return pf_recipe_at(r, n->start_mark, err, PF_ERR_INVALID, "vars: expected a mapping, got a %s",
                        pf_ynode_kind(n));
  for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
    yaml_node_t *k = pf_ydoc_node(&r->y, p->key), *v = pf_ydoc_node(&r->y, p->value);
    const char *key = pf_ynode_text(k);
    if (!key || !pf_recipe_is_ident(key))
      return pf_recipe_at(r, k ? k->start_mark : n->start_mark, err, PF_ERR_INVALID,
                          "vars: '%s' is not a variable name (letters, digits and _)",
                          key ? key : "?");
    for (yaml_node_pair_t *q = n->data.mapping.pairs.start; q < p; q++)
      if (strcmp(pf_ynode_text(pf_ydoc_node(&r->y, q->key)), key) == 0)
        return pf_recipe_at(r, k->start_mark, err, PF_ERR_INVALID, "vars: duplicate key '%s'", key);
    if (!v || (v->type != YAML_SCALAR_NODE && v->type != YAML_SEQUENCE_NODE))
      return pf_recipe_at(
          r, v ? v->start_mark : k->start_mark, err, PF_ERR_INVALID,
          "vars.%s: expected a scalar (string, number, boolean or null) or a list of "
          "alternatives, got a %s",
          key, pf_ynode_kind(v));
    if (pf_map_get(r->vars, key)) continue; /* set by --set, which wins over the file */
    pf_value *val = NULL;
    if (v->type == YAML_SEQUENCE_NODE) {
      pf_status st = pick_alternative(r, key, v, &val, err);
      if (st != PF_OK) return st;
      if (pf_map_set(r->vars, key, val) != PF_OK)
        return pf_err_set(err, PF_ERR_NOMEM, "out of memory");
      continue;
    }
    yaml_mark_t where;
    pf_status st = pf_ydoc_value(&r->y, v, r->vars, 3, &val, &where, err);
    if (st != PF_OK) {
      char tmp[PF_ERR_MSG_MAX], later[128] = "";
      const char *u = strstr(err->msg, "unknown variable '");
      if (u && sscanf(u + 18, "%127[A-Za-z0-9_]", later) == 1) /* defined further down? */
        for (yaml_node_pair_t *q = p + 1; q < n->data.mapping.pairs.top; q++)
          if (!strcmp(pf_ynode_text(pf_ydoc_node(&r->y, q->key)), later))
            return pf_recipe_at(
                r, where, err, PF_ERR_INVALID,
                "vars.%s: '${%s}' refers to a variable defined after it (a variable may "
                "use the ones above it and --set ones)",
                key, later);
      pf_recipe_fmt(tmp, sizeof tmp, "vars.%s: %s", key, err->msg);
      return pf_recipe_at(r, where, err, st, "%s", tmp);
    }
    if (pf_map_set(r->vars, key, val) != PF_OK)
      return pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  }
  return PF_OK;
}

/* 1 if the file's vars declare `key` or one of its strings refers to ${key}. */
static int var_known(recipe *r, const char *key) {
  yaml_node_t *vars = r->top[K_VARS];
  if (vars && vars->type == YAML_MAPPING_NODE)
    for (yaml_node_pair_t *p = vars->data.mapping.pairs.start; p < vars->data.mapping.pairs.top;
         p++) {
      const char *k = pf_ynode_text(pf_ydoc_node(&r->y, p->key));
      if (k && !strcmp(k, key)) return 1;
    }
  char ref[140];
  snprintf(ref, sizeof ref, "${%s}", key);
  for (yaml_node_t *n = r->y.doc.nodes.start; n < r->y.doc.nodes.top; n++)
    if (n->type == YAML_SCALAR_NODE && strstr((const char *)n->data.scalar.value, ref)) return 1;
  return 0;
}

/* Every --set names a variable the recipe has: a typo (--set modle=...) would
 * otherwise run the recipe on its defaults without a word. name and output_dir
 * are variables of every recipe. */
static pf_status check_sets(recipe *r, const pf_recipe_opts *opts, pf_err *err) {
  for (size_t i = 0; opts && i < opts->n_sets; i++) {
    const char *set = opts->sets[i], *eq = strchr(set, '=');
    char key[128];
    snprintf(key, sizeof key, "%.*s", (int)(eq - set), set);
    if (!strcmp(key, "name") || !strcmp(key, "output_dir") || var_known(r, key)) continue;
    char list[512] = "";
    size_t o = 0;
    yaml_node_t *vars = r->top[K_VARS];
    if (vars && vars->type == YAML_MAPPING_NODE)
      for (yaml_node_pair_t *p = vars->data.mapping.pairs.start;
           p < vars->data.mapping.pairs.top && o < sizeof list; p++) {
        const char *k = pf_ynode_text(pf_ydoc_node(&r->y, p->key));
        if (k && strcmp(k, "name") && strcmp(k, "output_dir"))
          o += (size_t)snprintf(list + o, sizeof list - o, "%s, ", k);
      }
    return pf_err_set(err, PF_ERR_INVALID,
                      "%s: --set '%s': the recipe has no variable '%s' (its variables: %sname, "
                      "output_dir)",
                      r->path, set, key, list);
  }
  return PF_OK;
}

/* A string-valued top-level key with substitution; NULL node -> *out NULL. */
static pf_status top_string(recipe *r, int which, char **out, pf_err *err) {
  yaml_node_t *n = r->top[which];
  *out = NULL;
  if (!n) return PF_OK;
  const char *t = pf_ynode_text(n);
  if (!t || !*t)
    return pf_recipe_at(r, n->start_mark, err, PF_ERR_INVALID,
                        "%s: expected a non-empty string, got %s", top_keys[which],
                        t ? "nothing" : pf_ynode_kind(n));
  pf_value *v = NULL;
  pf_status st = pf_recipe_subst(t, r->vars, 0, &v, err);
  if (st != PF_OK) {
    char tmp[PF_ERR_MSG_MAX];
    pf_recipe_fmt(tmp, sizeof tmp, "%s: %s", top_keys[which], err->msg);
    return pf_recipe_at(r, n->start_mark, err, st, "%s", tmp);
  }
  *out = strdup(v->u.s);
  pf_value_release(v);
  return *out ? PF_OK : pf_err_set(err, PF_ERR_NOMEM, "out of memory");
}

static pf_status default_var(recipe *r, const char *key, const char *val, pf_err *err) {
  if (pf_map_get(r->vars, key)) return PF_OK;
  pf_value *v = pf_value_str(val);
  if (!v || pf_map_set(r->vars, key, v) != PF_OK)
    return pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  return PF_OK;
}

/* name (default: the file name without extension), output_dir (default
 * vars.output_dir, else runs/<name>); both become vars if not defined. */
static pf_status parse_name_dir(recipe *r, pf_err *err) {
  pf_status st = top_string(r, K_NAME, &r->name, err);
  if (st != PF_OK) return st;
  if (!r->name) {
    const char *base = strrchr(r->path, '/');
    base = base ? base + 1 : r->path;
    const char *dot = strrchr(base, '.');
    r->name = strndup(base, dot && dot != base ? (size_t)(dot - base) : strlen(base));
    if (!r->name) return pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  }
  if (strchr(r->name, '/') || strcmp(r->name, ".") == 0 || strcmp(r->name, "..") == 0)
    return pf_recipe_at(r, (r->top[K_NAME] ? r->top[K_NAME] : pf_ydoc_root(&r->y))->start_mark, err,
                        PF_ERR_INVALID, "name: '%s' cannot be a folder name (no '/', '.' or '..')",
                        r->name);
  if ((st = top_string(r, K_OUTPUT_DIR, &r->output_dir, err)) != PF_OK) return st;
  if (!r->output_dir) {
    const char *vd = pf_map_str(r->vars, "output_dir", NULL);
    char buf[4096];
    snprintf(buf, sizeof buf, "runs/%s", r->name);
    if (!(r->output_dir = strdup(vd && *vd ? vd : buf)))
      return pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  }
  if (pf_path_exists(r->output_dir) && !pf_is_dir(r->output_dir)) /* found now, not at the end */
    return pf_recipe_at(
        r, (r->top[K_OUTPUT_DIR] ? r->top[K_OUTPUT_DIR] : pf_ydoc_root(&r->y))->start_mark, err,
        PF_ERR_INVALID, "output_dir: %s is a file, not a folder", r->output_dir);
  if ((st = default_var(r, "name", r->name, err)) != PF_OK) return st;
  return default_var(r, "output_dir", r->output_dir, err);
}

pf_status pf_recipe_head(recipe *r, const pf_recipe_opts *opts, pf_err *err) {
  pf_status st = parse_top_keys(r, pf_ydoc_root(&r->y), err);
  if (st == PF_OK) st = parse_vars(r, opts, err);
  if (st == PF_OK) st = check_sets(r, opts, err);
  if (st == PF_OK) st = parse_name_dir(r, err);
  return st;
}
