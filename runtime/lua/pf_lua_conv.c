/* pf_lua_conv.c — Lua values to pf_values for the `pf` module (pf_lua.h): tables to
 * lists or maps (keys sorted), models and tensors by reference, with the key path of
 * whatever cannot be converted. Never raises: errors go through pf_err, so the caller
 * releases what it built first. Split from pf_lua.c, which neared 900 lines. */
#include <lauxlib.h>
#include <lua.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "pf_lua_int.h"

/* ---------------------------------------------------- Lua -> pf_value */

typedef struct conv {
  lua_State *L;
  pf_err *err;
  int depth;
  const void *open[PF_LUA_MAX_DEPTH]; /* tables on the current path (cycle check) */
  char path[512];
  size_t plen;
} conv;

static const char *conv_where(conv *c) {
  return c->plen ? c->path : "(top level)";
}

/* Append ".key" or "[i]" to the path; returns the old length to restore. */
static size_t path_push(conv *c, const char *key, lua_Integer index) {
  size_t old = c->plen;
  int n;
  size_t room = sizeof c->path - c->plen;
  if (key)
    n = snprintf(c->path + c->plen, room, "%s%s", c->plen ? "." : "", key);
  else
    n = snprintf(c->path + c->plen, room, "[%lld]", (long long)index);
  if (n > 0) c->plen = (size_t)n < room ? c->plen + (size_t)n : sizeof c->path - 1;
  return old;
}

static void path_pop(conv *c, size_t old) {
  c->plen = old;
  c->path[old] = '\0';
}

static pf_status conv_value(conv *c, int idx, int force_map, pf_value **out);

static pf_status conv_nomem(conv *c) {
  return pf_err_set(c->err, PF_ERR_NOMEM, "%s: out of memory", conv_where(c));
}

static pf_status conv_list(conv *c, int idx, lua_Integer n, pf_value **out) {
  pf_value *list = pf_value_list();
  if (!list) return conv_nomem(c);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(c->L, idx, i);
    size_t old = path_push(c, NULL, i);
    pf_value *item = NULL;
    pf_status st = conv_value(c, lua_gettop(c->L), 0, &item);
    path_pop(c, old);
    lua_pop(c->L, 1);
    if (st == PF_OK && pf_list_push(list, item) != PF_OK) st = conv_nomem(c);
    if (st != PF_OK) {
      pf_value_release(list);
      return st;
    }
  }
  *out = list;
  return PF_OK;
}

typedef struct entry {
  char *key;
  pf_value *val;
} entry;

static int entry_cmp(const void *a, const void *b) {
  return strcmp(((const entry *)a)->key, ((const entry *)b)->key);
}

static void entries_free(entry *e, size_t n) {
  for (size_t i = 0; e && i < n; i++) {
    free(e[i].key);
    pf_value_release(e[i].val);
  }
  free(e);
}

/* Key at stack top-1 (during lua_next) as text; never converts the key in place. */
static pf_status conv_key(conv *c, char **out) {
  lua_State *L = c->L;
  char buf[32];
  const char *k = NULL;
  size_t len = 0;
  if (lua_type(L, -2) == LUA_TSTRING) {
    k = lua_tolstring(L, -2, &len);
    if (strlen(k) != len)
      return pf_err_set(c->err, PF_ERR_INVALID, "%s: table key contains a NUL byte", conv_where(c));
  } else if (lua_type(L, -2) == LUA_TNUMBER && lua_isinteger(L, -2)) {
    snprintf(buf, sizeof buf, "%lld", (long long)lua_tointeger(L, -2));
    k = buf;
  } else {
    return pf_err_set(c->err, PF_ERR_INVALID,
                      "%s: table key of type %s (expected a string or an integer)", conv_where(c),
                      luaL_typename(L, -2));
  }
  *out = strdup(k);
  return *out ? PF_OK : conv_nomem(c);
}

/* Maps get sorted keys so that results do not depend on Lua's hash order. */
static pf_status conv_map(conv *c, int idx, size_t n, pf_value **out) {
  lua_State *L = c->L;
  entry *e = calloc(n ? n : 1, sizeof *e);
  pf_value *map = pf_value_map();
  size_t k = 0;
  pf_status st = PF_OK;
  if (!e || !map) {
    st = conv_nomem(c);
    goto fail;
  }
  lua_pushnil(L);
  while (lua_next(L, idx)) { /* n is exact: the table cannot change meanwhile */
    st = conv_key(c, &e[k].key);
    if (st == PF_OK) {
      size_t old = path_push(c, e[k].key, 0);
      st = conv_value(c, lua_gettop(L), 0, &e[k].val);
      path_pop(c, old);
    }
    k++;
    lua_pop(L, 1);
    if (st != PF_OK) {
      lua_pop(L, 1); /* the key: stop iterating */
      goto fail;
    }
  }
  qsort(e, k, sizeof *e, entry_cmp);
  for (size_t i = 0; i < k; i++) {
    if (i > 0 && strcmp(e[i].key, e[i - 1].key) == 0) {
      st = pf_err_set(c->err, PF_ERR_INVALID,
                      "%s: key '%s' appears both as an integer and as a string", conv_where(c),
                      e[i].key);
      goto fail;
    }
    st = pf_map_set(map, e[i].key, e[i].val);
    e[i].val = NULL; /* stolen, even on failure */
    if (st != PF_OK) {
      st = conv_nomem(c);
      goto fail;
    }
  }
  entries_free(e, k);
  *out = map;
  return PF_OK;
fail:
  entries_free(e, k);
  pf_value_release(map);
  return st;
}

/* A proxy, a table whose metatable has __index, __pairs or __len and whose own keys
 * are not what it means (a read-only proxy, a list proxy), would be read as empty or
 * short, and an op would then run its defaults: such a table is refused by name. A
 * proxy here is a table with no own keys and one of those events, or one whose __len
 * disagrees with its raw length (called protected: an error refuses it too). A table
 * whose content is its own keys and whose __index is a methods table (a class
 * instance, Penlight's List{0, 1}) is read raw, as a plain one. */
static int raw_len_agrees(lua_State *L, int idx) {
  if (lua_getfield(L, -1, "__len") == LUA_TNIL) {
    lua_pop(L, 1);
    return 1;
  }
  lua_pushvalue(L, idx);
  int ok = lua_pcall(L, 1, 1, 0) == LUA_OK && lua_isinteger(L, -1) &&
           lua_tointeger(L, -1) == (lua_Integer)lua_rawlen(L, idx);
  lua_pop(L, 1);
  return ok;
}

static pf_status conv_check_meta(conv *c, int idx) {
  lua_State *L = c->L;
  if (!lua_getmetatable(L, idx)) return PF_OK;
  static const char *const events[] = {"__index", "__pairs", "__len"};
  const char *found = NULL;
  for (size_t i = 0; !found && i < sizeof events / sizeof events[0]; i++) {
    lua_pushstring(L, events[i]);
    if (lua_rawget(L, -2) != LUA_TNIL) found = events[i];
    lua_pop(L, 1);
  }
  if (found) {
    lua_pushnil(L);
    int empty = !lua_next(L, idx);
    if (!empty) lua_pop(L, 2);
    if (!empty && !raw_len_agrees(L, idx))
      found = "__len";
    else if (!empty)
      found = NULL;
  }
  lua_pop(L, 1);
  if (!found) return PF_OK;
  return pf_err_set(c->err, PF_ERR_INVALID,
                    "%s: expected a plain table, got a table whose metatable has %s (its own "
                    "keys are not all it holds; copy it into a plain table with pairs or ipairs)",
                    conv_where(c), found);
}

static pf_status conv_table(conv *c, int idx, int force_map, pf_value **out) {
  lua_State *L = c->L;
  const void *p = lua_topointer(L, idx);
  if (!lua_checkstack(L, 6)) return conv_nomem(c);
  pf_status mst = conv_check_meta(c, idx);
  if (mst != PF_OK) return mst;
  if (c->depth >= PF_LUA_MAX_DEPTH)
    return pf_err_set(c->err, PF_ERR_INVALID, "%s: tables nested deeper than %d levels",
                      conv_where(c), PF_LUA_MAX_DEPTH);
  for (int i = 0; i < c->depth; i++)
    if (c->open[i] == p)
      return pf_err_set(c->err, PF_ERR_INVALID, "%s: table contains itself (a cycle)",
                        conv_where(c));
  /* one pass to learn the shape: a sequence has exactly the keys 1..n */
  size_t n = 0;
  lua_Integer maxk = 0;
  int seq = 1;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    n++;
    if (lua_type(L, -2) == LUA_TNUMBER && lua_isinteger(L, -2) && lua_tointeger(L, -2) >= 1) {
      if (lua_tointeger(L, -2) > maxk) maxk = lua_tointeger(L, -2);
    } else {
      seq = 0;
    }
    lua_pop(L, 1);
  }
  c->open[c->depth++] = p;
  pf_status st;
  if (seq && !force_map && (lua_Integer)n == maxk)
    st = conv_list(c, idx, maxk, out);
  else
    st = conv_map(c, idx, n, out);
  c->depth--;
  return st;
}

static pf_status conv_unsupported(conv *c, int idx) {
  return pf_err_set(c->err, PF_ERR_INVALID,
                    "%s: cannot convert a %s (expected nil, boolean, number, string, table, "
                    "pf.model or pf.tensor)",
                    conv_where(c), luaL_typename(c->L, idx));
}

static pf_status conv_value(conv *c, int idx, int force_map, pf_value **out) {
  lua_State *L = c->L;
  pf_value *v = NULL;
  *out = NULL;
  switch (lua_type(L, idx)) {
  case LUA_TNIL:
  case LUA_TNONE:
    v = pf_value_null();
    break;
  case LUA_TBOOLEAN:
    v = pf_value_bool(lua_toboolean(L, idx));
    break;
  case LUA_TNUMBER:
    if (lua_isinteger(L, idx))
      v = pf_value_int((int64_t)lua_tointeger(L, idx));
    else
      v = pf_value_num((double)lua_tonumber(L, idx));
    break;
  case LUA_TSTRING: {
    size_t len = 0;
    const char *s = lua_tolstring(L, idx, &len);
    if (strlen(s) != len)
      return pf_err_set(c->err, PF_ERR_INVALID, "%s: string contains a NUL byte", conv_where(c));
    v = pf_value_str(s);
    break;
  }
  case LUA_TTABLE:
    return conv_table(c, idx, force_map, out);
  case LUA_TUSERDATA: {
    ltensor *tu = luaL_testudata(L, idx, TENSOR_MT);
    if (tu && !tu->t)
      return pf_err_set(c->err, PF_ERR_INVALID, "%s: pf.tensor: tensor is closed", conv_where(c));
    if (tu) {
      v = pf_value_tensor(tu->t);
      break;
    }
    lmodel *u = luaL_testudata(L, idx, MODEL_MT);
    if (u && !u->m)
      return pf_err_set(c->err, PF_ERR_INVALID, "%s: pf.model: model is closed", conv_where(c));
    if (!u) return conv_unsupported(c, idx);
    v = pf_value_model(u->m);
    break;
  }
  default:
    return conv_unsupported(c, idx);
  }
  if (!v) return conv_nomem(c);
  *out = v;
  return PF_OK;
}

pf_status pf_lua_to_value_as(lua_State *L, int idx, int force_map, pf_value **out, pf_err *err) {
  conv c;
  memset(&c, 0, sizeof c);
  c.L = L;
  c.err = err;
  int top = lua_gettop(L);
  pf_status st = conv_value(&c, lua_absindex(L, idx), force_map, out);
  lua_settop(L, top);
  return st;
}

pf_status pf_lua_to_value(lua_State *L, int idx, pf_value **out, pf_err *err) {
  return pf_lua_to_value_as(L, idx, 0, out, err);
}
