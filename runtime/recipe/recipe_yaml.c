/* recipe_yaml.c — the YAML side of recipes: loading with libyaml's document API
 * (every node keeps its line/column), scalar resolution, ${var} substitution and
 * node -> pf_value conversion. See recipe_int.h.
 *
 * Why a pre-scan with the event API: libyaml itself has no nesting limit, so a
 * hostile file of a million '[' would make the loader build a huge tree before
 * we could object. The event pass stops at the first collection nested deeper
 * than PF_RECIPE_MAX_DEPTH and reports its position; it also rejects a second
 * document. Aliases cannot deepen the *document*, but expanding them can blow
 * up the value tree, hence the depth check and the value budget in
 * pf_ydoc_value.
 */
#include "recipe_int.h"
#include "strbuf.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fsutil.h"

/* ------------------------------------------------------------ loading */

static pf_status yaml_fail(const char *file, const yaml_parser_t *p, pf_err *err) {
  /* libyaml's loader fails without an error code when one of its own copies cannot
   * be allocated (a strdup of a tag or anchor): no code, no syntax error, memory */
  if (p->error == YAML_MEMORY_ERROR || p->error == YAML_NO_ERROR)
    return pf_err_set(err, PF_ERR_NOMEM, "%s: out of memory while parsing YAML", file);
  if (p->error == YAML_READER_ERROR)
    return pf_err_set(err, PF_ERR_FORMAT, "%s: byte %zu: %s (recipes are UTF-8 text)", file,
                      p->problem_offset, p->problem ? p->problem : "unreadable text");
  const char *problem = p->problem ? p->problem : "syntax error";
  if (p->context)
    return pf_err_set(err, PF_ERR_FORMAT, "%s:%zu:%zu: YAML syntax error: %s (%s at %zu:%zu)", file,
                      PF_MARK_LINE(p->problem_mark), PF_MARK_COL(p->problem_mark), problem,
                      p->context, PF_MARK_LINE(p->context_mark), PF_MARK_COL(p->context_mark));
  return pf_err_set(err, PF_ERR_FORMAT, "%s:%zu:%zu: YAML syntax error: %s", file,
                    PF_MARK_LINE(p->problem_mark), PF_MARK_COL(p->problem_mark), problem);
}

/* Count one node inside the collection open at `depth` (0: the document level);
 * error when a mapping gets more than PF_RECIPE_MAX_KEYS keys. Checked before
 * loading because building a mapping checks its keys pairwise. */
static pf_status count_entry(const char *file, int depth, size_t *count, const int *is_map,
                             const yaml_mark_t *start, pf_err *err) {
  if (depth <= 0 || depth > PF_RECIPE_MAX_DEPTH || !is_map[depth]) return PF_OK;
  if (++count[depth] <= 2 * (size_t)PF_RECIPE_MAX_KEYS) return PF_OK; /* key + value nodes */
  return pf_err_set(err, PF_ERR_INVALID, "%s:%zu:%zu: mapping has more than %d keys (the limit)",
                    file, PF_MARK_LINE(start[depth]), PF_MARK_COL(start[depth]),
                    PF_RECIPE_MAX_KEYS);
}

/* Event pass: syntax, nesting depth, keys per mapping, exactly one document. */
static pf_status prescan(const char *file, const char *text, size_t len, pf_err *err) {
  yaml_parser_t p;
  if (!yaml_parser_initialize(&p))
    return pf_err_set(err, PF_ERR_NOMEM, "%s: cannot initialise the YAML parser", file);
  yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
  pf_status st = PF_OK;
  int depth = 0, docs = 0, done = 0;
  size_t count[PF_RECIPE_MAX_DEPTH + 1] = {0};
  int is_map[PF_RECIPE_MAX_DEPTH + 1] = {0};
  yaml_mark_t start[PF_RECIPE_MAX_DEPTH + 1];
  memset(start, 0, sizeof start);
  while (!done && st == PF_OK) {
    yaml_event_t ev;
    if (!yaml_parser_parse(&p, &ev)) {
      st = yaml_fail(file, &p, err);
      break;
    }
    if (ev.type == YAML_SCALAR_EVENT || ev.type == YAML_ALIAS_EVENT ||
        ev.type == YAML_SEQUENCE_START_EVENT || ev.type == YAML_MAPPING_START_EVENT)
      st = count_entry(file, depth, count, is_map, start, err);
    if (st == PF_OK &&
        (ev.type == YAML_SEQUENCE_START_EVENT || ev.type == YAML_MAPPING_START_EVENT) &&
        depth < PF_RECIPE_MAX_DEPTH) {
      count[depth + 1] = 0;
      is_map[depth + 1] = ev.type == YAML_MAPPING_START_EVENT;
      start[depth + 1] = ev.start_mark;
    }
    if (st != PF_OK) {
      yaml_event_delete(&ev);
      break;
    }
    switch (ev.type) {
    case YAML_STREAM_END_EVENT:
      done = 1;
      break;
    case YAML_DOCUMENT_START_EVENT:
      if (++docs > 1)
        st = pf_err_set(err, PF_ERR_FORMAT,
                        "%s:%zu:%zu: a recipe is a single YAML document; found a second one", file,
                        PF_MARK_LINE(ev.start_mark), PF_MARK_COL(ev.start_mark));
      break;
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT:
      if (++depth > PF_RECIPE_MAX_DEPTH)
        st = pf_err_set(err, PF_ERR_FORMAT,
                        "%s:%zu:%zu: nesting deeper than %d levels (a recipe is at most %d "
                        "mappings/sequences deep)",
                        file, PF_MARK_LINE(ev.start_mark), PF_MARK_COL(ev.start_mark),
                        PF_RECIPE_MAX_DEPTH, PF_RECIPE_MAX_DEPTH);
      break;
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
      depth--;
      break;
    default:
      break;
    }
    yaml_event_delete(&ev);
  }
  yaml_parser_delete(&p);
  return st;
}

static pf_status read_recipe(const char *path, char **out, size_t *len, pf_err *err) {
  struct stat sb;
  if (stat(path, &sb) != 0)
    return pf_err_set(err, PF_ERR_IO, "%s: cannot read the recipe: %s", path, strerror(errno));
  if (!S_ISREG(sb.st_mode))
    return pf_err_set(err, PF_ERR_IO, "%s: expected a recipe file, found %s", path,
                      pf_file_kind(sb.st_mode));
  if ((uint64_t)sb.st_size > PF_RECIPE_MAX_BYTES)
    return pf_err_set(err, PF_ERR_INVALID,
                      "%s: recipe is %lld bytes; the limit is %zu bytes (1 MiB)", path,
                      (long long)sb.st_size, PF_RECIPE_MAX_BYTES);
  pf_status st = pf_read_file(path, PF_RECIPE_MAX_BYTES, out, len, err);
  if (st != PF_OK && err && !strstr(err->msg, path)) pf_err_prefix(err, "%s", path);
  return st;
}

pf_status pf_ydoc_load_text(pf_ydoc *d, const char *name, const char *text, size_t len,
                            pf_err *err) {
  memset(d, 0, sizeof *d);
  d->file = name;
  pf_status st = prescan(name, text, len, err);
  if (st != PF_OK) return st;
  yaml_parser_t p;
  if (!yaml_parser_initialize(&p))
    return pf_err_set(err, PF_ERR_NOMEM, "%s: cannot initialise the YAML parser", name);
  yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
  if (!yaml_parser_load(&p, &d->doc))
    st = yaml_fail(name, &p, err);
  else
    d->loaded = 1;
  yaml_parser_delete(&p);
  return st;
}

pf_status pf_ydoc_load(pf_ydoc *d, const char *path, pf_err *err) {
  memset(d, 0, sizeof *d);
  char *text = NULL;
  size_t len = 0;
  pf_status st = read_recipe(path, &text, &len, err);
  if (st == PF_OK) st = pf_ydoc_load_text(d, path, text, len, err);
  free(text);
  return st;
}

pf_status pf_yaml_value(const char *name, const char *text, size_t len, pf_value **out,
                        pf_err *err) {
  *out = NULL;
  pf_ydoc d;
  pf_status st = pf_ydoc_load_text(&d, name, text, len, err);
  yaml_node_t *root = st == PF_OK ? pf_ydoc_root(&d) : NULL;
  if (st == PF_OK && !root) st = pf_err_set(err, PF_ERR_FORMAT, "%s: empty document", name);
  pf_value *vars = st == PF_OK ? pf_value_map() : NULL;
  if (st == PF_OK && !vars) st = pf_err_set(err, PF_ERR_NOMEM, "%s: out of memory", name);
  yaml_mark_t where = {0};
  if (st == PF_OK && (st = pf_ydoc_value(&d, root, vars, 1, out, &where, err)) != PF_OK)
    pf_err_prefix(err, "%s:%zu:%zu", name, PF_MARK_LINE(where), PF_MARK_COL(where));
  pf_value_release(vars);
  pf_ydoc_free(&d);
  return st;
}

pf_status pf_yaml_file_value(const char *path, pf_value **out, pf_err *err) {
  *out = NULL;
  char *text = NULL;
  size_t len = 0;
  pf_status st = read_recipe(path, &text, &len, err);
  if (st == PF_OK) st = pf_yaml_value(path, text, len, out, err);
  free(text);
  return st;
}

void pf_ydoc_free(pf_ydoc *d) {
  if (d && d->loaded) yaml_document_delete(&d->doc);
  if (d) d->loaded = 0;
}

yaml_node_t *pf_ydoc_root(pf_ydoc *d) {
  return d->loaded ? yaml_document_get_root_node(&d->doc) : NULL;
}

yaml_node_t *pf_ydoc_node(pf_ydoc *d, int index) {
  return d->loaded ? yaml_document_get_node(&d->doc, index) : NULL;
}

const char *pf_ynode_text(const yaml_node_t *n) {
  return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

const char *pf_ynode_kind(const yaml_node_t *n) {
  if (!n) return "nothing";
  switch (n->type) {
  case YAML_SCALAR_NODE:
    return "scalar";
  case YAML_SEQUENCE_NODE:
    return "sequence";
  case YAML_MAPPING_NODE:
    return "mapping";
  default:
    return "empty node";
  }
}

/* ------------------------------------------------------------ scalars */

static int one_of(const char *s, const char *const *words) {
  for (; *words; words++)
    if (strcmp(s, *words) == 0) return 1;
  return 0;
}

static int all_digits(const char *s, int base) {
  if (!*s) return 0;
  for (; *s; s++) {
    int ok = base == 16
                 ? (*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f') || (*s >= 'A' && *s <= 'F')
             : base == 8 ? *s >= '0' && *s <= '7'
                         : *s >= '0' && *s <= '9';
    if (!ok) return 0;
  }
  return 1;
}

/* [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)? */
static int is_float(const char *s) {
  if (*s == '-' || *s == '+') s++;
  int digits = 0;
  while (*s >= '0' && *s <= '9')
    s++, digits++;
  if (*s == '.') {
    s++;
    while (*s >= '0' && *s <= '9')
      s++, digits++;
  }
  if (!digits) return 0;
  if (*s == 'e' || *s == 'E') {
    s++;
    if (*s == '-' || *s == '+') s++;
    if (!(*s >= '0' && *s <= '9')) return 0;
    while (*s >= '0' && *s <= '9')
      s++;
  }
  return *s == '\0';
}

/* Integer forms: [-+]?[0-9]+, 0x[0-9a-fA-F]+, 0o[0-7]+. 1 = int, 0 = not an int. */
static int parse_int(const char *s, int64_t *v, int *range_err) {
  const char *p = s;
  int neg = 0, base = 10;
  if (*p == '-' || *p == '+') neg = *p++ == '-';
  if (p[0] == '0' && (p[1] == 'x' || p[1] == 'o') && p == s) {
    base = p[1] == 'x' ? 16 : 8;
    p += 2;
  }
  if (!all_digits(p, base)) return 0;
  errno = 0;
  unsigned long long u = strtoull(p, NULL, base);
  unsigned long long lim = neg ? (unsigned long long)INT64_MAX + 1 : (unsigned long long)INT64_MAX;
  if (errno == ERANGE || u > lim) {
    *range_err = 1;
    return 1;
  }
  *v = neg ? (int64_t)(0 - u) : (int64_t)u;
  return 1;
}

pf_status pf_yaml_scalar(const char *text, int plain, pf_value **out, pf_err *err) {
  static const char *const nulls[] = {"", "~", "null", "Null", "NULL", NULL};
  static const char *const trues[] = {"true", "True", "TRUE", NULL};
  static const char *const falses[] = {"false", "False", "FALSE", NULL};
  static const char *const infs[] = {".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", NULL};
  static const char *const ninfs[] = {"-.inf", "-.Inf", "-.INF", NULL};
  static const char *const nans[] = {".nan", ".NaN", ".NAN", NULL};
  pf_value *v;
  int64_t i = 0;
  int range_err = 0;
  if (!plain)
    v = pf_value_str(text);
  else if (one_of(text, nulls))
    v = pf_value_null();
  else if (one_of(text, trues))
    v = pf_value_bool(1);
  else if (one_of(text, falses))
    v = pf_value_bool(0);
  else if (parse_int(text, &i, &range_err)) {
    if (range_err)
      return pf_err_set(err, PF_ERR_INVALID, "integer %s does not fit in 64 bits", text);
    v = pf_value_int(i);
  } else if (is_float(text))
    v = pf_value_num(strtod(text, NULL));
  else if (one_of(text, infs))
    v = pf_value_num(INFINITY);
  else if (one_of(text, ninfs))
    v = pf_value_num(-INFINITY);
  else if (one_of(text, nans))
    v = pf_value_num(NAN);
  else
    v = pf_value_str(text);
  *out = v;
  return v ? PF_OK : pf_err_set(err, PF_ERR_NOMEM, "out of memory");
}

int pf_recipe_is_ident(const char *s) {
  if (!s || !((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || *s == '_')) return 0;
  for (s++; *s; s++)
    if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
          *s == '_'))
      return 0;
  return 1;
}

/* ------------------------------------------------------- substitution */

/* Text form of a scalar variable inside a longer string. */
static void sb_add_value(pf_strbuf *b, const pf_value *v) {
  char tmp[64];
  const char *s = tmp;
  switch (v->type) {
  case PF_V_STR:
    s = v->u.s;
    break;
  case PF_V_INT:
    snprintf(tmp, sizeof tmp, "%lld", (long long)v->u.i);
    break;
  case PF_V_NUM:
    snprintf(tmp, sizeof tmp, "%.15g", v->u.n);
    if (strtod(tmp, NULL) != v->u.n) snprintf(tmp, sizeof tmp, "%.17g", v->u.n);
    break;
  case PF_V_BOOL:
    s = v->u.b ? "true" : "false";
    break;
  default:
    s = "null";
    break;
  }
  pf_sb_put(b, s, strlen(s));
}

static pf_status unknown_var(const char *name, const pf_value *vars, pf_err *err) {
  char list[512] = "";
  size_t o = 0;
  for (size_t i = 0; vars && i < vars->u.map.len && o + 1 < sizeof list; i++) {
    int n = snprintf(list + o, sizeof list - o, "%s%s", i ? ", " : "", vars->u.map.keys[i]);
    if (n > 0) o += (size_t)n;
  }
  if (o >= sizeof list) o = sizeof list - 1;
  if (!vars || vars->u.map.len == 0)
    return pf_err_set(err, PF_ERR_INVALID,
                      "unknown variable '%s' (no vars defined; add it under 'vars' or pass "
                      "--set %s=...)",
                      name, name);
  return pf_err_set(err, PF_ERR_INVALID, "unknown variable '%s' (defined: %s)", name, list);
}

pf_status pf_recipe_subst(const char *text, const pf_value *vars, int typed, pf_value **out,
                          pf_err *err) {
  *out = NULL;
  pf_strbuf b = {0};
  size_t n = strlen(text);
  pf_status st = PF_OK;
  pf_sb_put(&b, "", 0);
  for (size_t i = 0; i < n && st == PF_OK;) {
    if (strncmp(text + i, "$${", 3) == 0) {
      pf_sb_put(&b, "${", 2);
      i += 3;
      continue;
    }
    if (strncmp(text + i, "${", 2) != 0) {
      pf_sb_put(&b, text + i, 1);
      i++;
      continue;
    }
    const char *close = strchr(text + i + 2, '}');
    if (!close) {
      st = pf_err_set(err, PF_ERR_INVALID,
                      "unterminated '${' in '%s' (write '$${' for a literal '${')", text);
      break;
    }
    char name[128];
    size_t nl = (size_t)(close - (text + i + 2));
    if (nl >= sizeof name) nl = sizeof name - 1;
    memcpy(name, text + i + 2, nl);
    name[nl] = '\0';
    const pf_value *v = vars ? pf_map_get(vars, name) : NULL;
    if (!pf_recipe_is_ident(name))
      st = pf_err_set(err, PF_ERR_INVALID, "bad variable reference '${%s}' in '%s'", name, text);
    else if (!v)
      st = unknown_var(name, vars, err);
    else if (typed && i == 0 && close == text + n - 1) {
      pf_sb_free(&b);
      pf_value_retain((pf_value *)v);
      *out = (pf_value *)v;
      return PF_OK;
    } else
      sb_add_value(&b, v);
    i = (size_t)(close - text) + 1;
    if (st == PF_OK && b.len > PF_RECIPE_MAX_TEXT) /* ${a}${a}... of ${a}${a}...: doubling */
      st = pf_err_set(err, PF_ERR_INVALID,
                      "substituting '${%s}' makes a text of more than %zu bytes (the limit)", name,
                      PF_RECIPE_MAX_TEXT);
  }
  if (st == PF_OK && b.oom) st = pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  if (st == PF_OK && !(*out = pf_value_str(b.p)))
    st = pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  pf_sb_free(&b);
  return st;
}

/* --------------------------------------------------- node -> pf_value */

static pf_status node_fail(const yaml_node_t *n, yaml_mark_t *where, pf_err *err, pf_status code,
                           const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static pf_status node_fail(const yaml_node_t *n, yaml_mark_t *where, pf_err *err, pf_status code,
                           const char *fmt, ...) {
  char msg[PF_ERR_MSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  *where = n->start_mark;
  return pf_err_set(err, code, "%s", msg);
}

static pf_status scalar_value(const yaml_node_t *n, const pf_value *vars, pf_value **out,
                              yaml_mark_t *where, pf_err *err) {
  const char *text = (const char *)n->data.scalar.value;
  int plain = n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
  if (strlen(text) != n->data.scalar.length)
    return node_fail(n, where, err, PF_ERR_INVALID, "string contains a NUL character");
  pf_status st = strchr(text, '$') ? pf_recipe_subst(text, vars, plain, out, err)
                                   : pf_yaml_scalar(text, plain, out, err);
  if (st != PF_OK) *where = n->start_mark;
  return st;
}

static pf_status seq_value(pf_ydoc *d, yaml_node_t *n, const pf_value *vars, int depth,
                           pf_value **out, yaml_mark_t *where, pf_err *err) {
  pf_value *list = pf_value_list();
  if (!list) return node_fail(n, where, err, PF_ERR_NOMEM, "out of memory");
  for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++) {
    pf_value *item = NULL;
    pf_status st = pf_ydoc_value(d, pf_ydoc_node(d, *it), vars, depth + 1, &item, where, err);
    if (st == PF_OK && pf_list_push(list, item) != PF_OK)
      st = node_fail(n, where, err, PF_ERR_NOMEM, "out of memory");
    if (st != PF_OK) {
      pf_value_release(list);
      return st;
    }
  }
  *out = list;
  return PF_OK;
}

static pf_status map_value(pf_ydoc *d, yaml_node_t *n, const pf_value *vars, int depth,
                           pf_value **out, yaml_mark_t *where, pf_err *err) {
  size_t keys = (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
  d->key_pairs += keys * (keys ? keys - 1 : 0) / 2;
  if (d->key_pairs > PF_RECIPE_MAX_KEY_PAIRS)
    return node_fail(n, where, err, PF_ERR_INVALID,
                     "the recipe expands to mappings with more than %d pairs of keys to compare "
                     "(aliases expanding too much?)",
                     PF_RECIPE_MAX_KEY_PAIRS);
  pf_value *map = pf_value_map();
  pf_status st = PF_OK;
  if (!map) return node_fail(n, where, err, PF_ERR_NOMEM, "out of memory");
  for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
    yaml_node_t *k = pf_ydoc_node(d, p->key);
    const char *key = pf_ynode_text(k);
    pf_value *v = NULL;
    if (!key)
      st = node_fail(k ? k : n, where, err, PF_ERR_INVALID,
                     "mapping keys must be scalars, got a %s", pf_ynode_kind(k));
    else if (pf_map_get(map, key))
      st = node_fail(k, where, err, PF_ERR_INVALID, "duplicate key '%s'", key);
    else
      st = pf_ydoc_value(d, pf_ydoc_node(d, p->value), vars, depth + 1, &v, where, err);
    if (st == PF_OK && pf_map_set(map, key, v) != PF_OK)
      st = node_fail(n, where, err, PF_ERR_NOMEM, "out of memory");
    if (st != PF_OK) break;
  }
  if (st != PF_OK) {
    pf_value_release(map);
    return st;
  }
  *out = map;
  return PF_OK;
}

pf_status pf_ydoc_value(pf_ydoc *d, yaml_node_t *n, const pf_value *vars, int depth, pf_value **out,
                        yaml_mark_t *where, pf_err *err) {
  *out = NULL;
  if (!n) {
    memset(where, 0, sizeof *where);
    return pf_err_set(err, PF_ERR_FORMAT, "dangling YAML node");
  }
  if (++d->values > PF_RECIPE_MAX_VALUES)
    return node_fail(n, where, err, PF_ERR_INVALID,
                     "the recipe expands to more than %d values (aliases expanding too much?)",
                     PF_RECIPE_MAX_VALUES);
  if (n->type != YAML_SCALAR_NODE && depth > PF_RECIPE_MAX_DEPTH)
    return node_fail(n, where, err, PF_ERR_INVALID,
                     "nesting deeper than %d levels (through an alias?)", PF_RECIPE_MAX_DEPTH);
  switch (n->type) {
  case YAML_SCALAR_NODE:
    return scalar_value(n, vars, out, where, err);
  case YAML_SEQUENCE_NODE:
    return seq_value(d, n, vars, depth, out, where, err);
  case YAML_MAPPING_NODE:
    return map_value(d, n, vars, depth, out, where, err);
  default:
    break;
  }
  *out = pf_value_null();
  return *out ? PF_OK : node_fail(n, where, err, PF_ERR_NOMEM, "out of memory");
}
