/* pf_lua.c — the `pf` module for Lua 5.4. See pf_lua.h for the contract.
 *
 * Why things are shaped the way they are:
 *  - Ops are one generic C closure whose upvalue is the op's table row, so the
 *    module can never drift from the op table.
 *  - Lua errors longjmp. Any pf_value that is alive while Lua may raise (memory
 *    errors while pushing results) sits in a "pf.valuebox" userdata whose __gc
 *    releases it; errors we raise ourselves release everything first.
 *  - Lua -> pf_value never raises: it reports errors through pf_err so the
 *    caller can release what it built before raising.
 */
#include "pf_lua.h"

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dist.h"
#include "model.h"
#include "op.h"

#define MODEL_MT PF_LUA_MODEL_MT
#define TENSOR_MT PF_LUA_TENSOR_MT
#define BOX_MT "pf.valuebox"

static const char ctx_key = 'c'; /* registry key (its address) of the host's pf_ctx */
/* registry keys of the last error an op raised: its message and its pf_status,
 * so that the host can tell which status a script's uncaught error carries */
static const char op_err_msg_key = 'm';
static const char op_err_code_key = 's';

/* ---------------------------------------------------------------- models */

typedef struct lmodel {
  pf_model *m; /* owned reference; NULL once closed */
} lmodel;

static unsigned long g_models_closed; /* model userdata closed so far (see l_op) */

static int model_close(lua_State *L) {
  lmodel *u = luaL_checkudata(L, 1, MODEL_MT);
  if (u->m) {
    pf_model *m = u->m;
    u->m = NULL;
    pf_model_release(m);
    g_models_closed++;
  }
  return 0;
}

pf_model *pf_lua_check_model(lua_State *L, int idx) {
  lmodel *u = luaL_checkudata(L, idx, MODEL_MT);
  if (!u->m) luaL_error(L, "pf.model: model is closed");
  return u->m;
}

void pf_lua_push_model(lua_State *L, pf_model *m) {
  lmodel *u = lua_newuserdatauv(L, sizeof *u, 0);
  u->m = NULL;
  luaL_setmetatable(L, MODEL_MT);
  pf_model_retain(m);
  u->m = m;
}

static int model_tostring(lua_State *L) {
  lmodel *u = luaL_checkudata(L, 1, MODEL_MT);
  if (!u->m) {
    lua_pushliteral(L, "pf.model (closed)");
    return 1;
  }
  lua_pushfstring(L, "pf.model(%s, %I layers, %I parameters)", u->m->name ? u->m->name : "?",
                  (lua_Integer)u->m->n_layers, (lua_Integer)pf_model_param_count(u->m));
  return 1;
}

static void push_int_array(lua_State *L, const int64_t *a, int64_t n) {
  lua_createtable(L, (int)n, 0);
  for (int64_t i = 0; a && i < n; i++) {
    lua_pushinteger(L, (lua_Integer)a[i]);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
}

/* m.field: read-only properties; m:close() closes early. Unknown keys are nil. */
static int model_index(lua_State *L) {
  luaL_checkudata(L, 1, MODEL_MT);
  const char *k = lua_tostring(L, 2);
  if (!k) return 0;
  if (strcmp(k, "close") == 0) {
    lua_pushcfunction(L, model_close);
    return 1;
  }
  const pf_model *m = pf_lua_check_model(L, 1);
  const pf_model_config *c = &m->config;
  if (strcmp(k, "name") == 0)
    lua_pushstring(L, m->name ? m->name : "");
  else if (strcmp(k, "num_hidden_layers") == 0)
    lua_pushinteger(L, (lua_Integer)m->n_layers);
  else if (strcmp(k, "hidden_size") == 0)
    lua_pushinteger(L, (lua_Integer)c->hidden_size);
  else if (strcmp(k, "intermediate_size") == 0)
    lua_pushinteger(L, (lua_Integer)c->intermediate_size);
  else if (strcmp(k, "intermediate_sizes") == 0)
    push_int_array(L, c->intermediate_sizes, m->n_layers);
  else if (strcmp(k, "num_attention_heads") == 0)
    lua_pushinteger(L, (lua_Integer)c->num_attention_heads);
  else if (strcmp(k, "num_key_value_heads") == 0)
    lua_pushinteger(L, (lua_Integer)c->num_key_value_heads);
  else if (strcmp(k, "head_dim") == 0)
    lua_pushinteger(L, (lua_Integer)c->head_dim);
  else if (strcmp(k, "vocab_size") == 0)
    lua_pushinteger(L, (lua_Integer)c->vocab_size);
  else if (strcmp(k, "model_type") == 0)
    lua_pushstring(L, c->model_type);
  else if (strcmp(k, "parameters") == 0)
    lua_pushinteger(L, (lua_Integer)pf_model_param_count(m));
  else if (strcmp(k, "dtype") == 0)
    lua_pushstring(L, pf_dtype_st_name(m->dtype));
  else if (strcmp(k, "source_dir") == 0)
    lua_pushstring(L, m->source_dir ? m->source_dir : "");
  else
    return 0;
  return 1;
}

/* --------------------------------------------------------------- tensors */

typedef struct ltensor {
  pf_tensor *t; /* owned reference; NULL once closed */
} ltensor;

/* Bytes of the tensors Lua values hold. Lua's collector paces itself by Lua's
 * own allocations, a few hundred bytes per tensor userdata, while the tensors
 * behind them (captured activations) are gigabytes: a script that drops a
 * result would keep it until the collector happens to run. Past
 * pf_lua_gc_bytes held (or a quarter of the --max-memory cap, when lower), every op
 * starts with a full collection, so what the script no longer references goes
 * before the op allocates more (pf_lua.h). */
size_t pf_lua_gc_bytes = (size_t)64 << 20;
static size_t g_tensor_bytes;

static int tensor_close(lua_State *L) {
  ltensor *u = luaL_checkudata(L, 1, TENSOR_MT);
  pf_tensor *t = u->t;
  u->t = NULL;
  if (t) g_tensor_bytes -= t->nbytes;
  pf_tensor_release(t);
  return 0;
}

void pf_lua_push_tensor(lua_State *L, pf_tensor *t) {
  ltensor *u = lua_newuserdatauv(L, sizeof *u, 0);
  u->t = NULL;
  luaL_setmetatable(L, TENSOR_MT);
  pf_tensor_retain(t);
  u->t = t;
  g_tensor_bytes += t->nbytes;
}

static pf_tensor *check_tensor(lua_State *L, int idx) {
  ltensor *u = luaL_checkudata(L, idx, TENSOR_MT);
  if (!u->t) luaL_error(L, "pf.tensor: tensor is closed");
  return u->t;
}

static int tensor_len(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)pf_tensor_numel(check_tensor(L, 1)));
  return 1;
}

static int tensor_tostring(lua_State *L) {
  ltensor *u = luaL_checkudata(L, 1, TENSOR_MT);
  if (!u->t) {
    lua_pushliteral(L, "pf.tensor (closed)");
    return 1;
  }
  char shape[96];
  lua_pushfstring(L, "pf.tensor(%s, %s)",
                  pf_shape_str(u->t->ndim, u->t->shape, shape, sizeof shape),
                  pf_dtype_torch_name(u->t->dtype));
  return 1;
}

/* t:get(i, j): the element at 1-based indices, one per dimension. */
static int tensor_get(lua_State *L) {
  const pf_tensor *t = check_tensor(L, 1);
  if (lua_gettop(L) - 1 != t->ndim)
    return luaL_error(L, "pf.tensor:get: expected %d indices (one per dimension), got %d", t->ndim,
                      lua_gettop(L) - 1);
  int64_t off = 0;
  for (int d = 0; d < t->ndim; d++) {
    lua_Integer i = luaL_checkinteger(L, d + 2);
    if (i < 1 || i > t->shape[d])
      return luaL_error(L, "pf.tensor:get: index %I of dimension %d is outside [1, %I]", i, d + 1,
                        (lua_Integer)t->shape[d]);
    off = off * t->shape[d] + (i - 1);
  }
  if (pf_tensor_is_planned(t)) return luaL_error(L, "pf.tensor:get: a planned tensor has no data");
  float x;
  unsigned char e[4];
  pf_tensor_read(t, (size_t)off, 1, e); /* lazy tensors too, without materialising them */
  pf_convert(&x, PF_DTYPE_F32, e, t->dtype, 1);
  lua_pushnumber(L, (lua_Number)x);
  return 1;
}

/* t.shape, t.dtype, t.numel, t:get(...), t:close(); unknown keys are nil. */
static int tensor_index(lua_State *L) {
  luaL_checkudata(L, 1, TENSOR_MT);
  const char *k = lua_tostring(L, 2);
  if (!k) return 0;
  if (strcmp(k, "close") == 0 || strcmp(k, "get") == 0) {
    lua_pushcfunction(L, k[0] == 'c' ? tensor_close : tensor_get);
    return 1;
  }
  const pf_tensor *t = check_tensor(L, 1);
  if (strcmp(k, "shape") == 0)
    push_int_array(L, t->shape, t->ndim);
  else if (strcmp(k, "dtype") == 0)
    lua_pushstring(L, pf_dtype_torch_name(t->dtype));
  else if (strcmp(k, "numel") == 0)
    lua_pushinteger(L, (lua_Integer)pf_tensor_numel(t));
  else
    return 0;
  return 1;
}

/* ------------------------------------------------------- value boxes */

typedef struct vbox {
  pf_value *v; /* owned; released by __gc if a Lua error unwinds past us */
} vbox;

static int box_gc(lua_State *L) {
  vbox *b = luaL_checkudata(L, 1, BOX_MT);
  pf_value *v = b->v;
  b->v = NULL;
  pf_value_release(v);
  return 0;
}

/* ---------------------------------------------------- pf_value -> Lua */

void pf_lua_push_value(lua_State *L, const pf_value *v) {
  luaL_checkstack(L, 4, "pf: value nested too deeply");
  if (!v) {
    lua_pushnil(L);
    return;
  }
  switch (v->type) {
  case PF_V_NULL:
    lua_pushnil(L);
    break;
  case PF_V_BOOL:
    lua_pushboolean(L, v->u.b);
    break;
  case PF_V_INT:
    lua_pushinteger(L, (lua_Integer)v->u.i);
    break;
  case PF_V_NUM:
    lua_pushnumber(L, v->u.n);
    break;
  case PF_V_STR:
    lua_pushstring(L, v->u.s);
    break;
  case PF_V_LIST:
    lua_createtable(L, (int)v->u.list.len, 0);
    for (size_t i = 0; i < v->u.list.len; i++) {
      pf_lua_push_value(L, v->u.list.items[i]);
      lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    break;
  case PF_V_MAP:
    lua_createtable(L, 0, (int)v->u.map.len);
    for (size_t i = 0; i < v->u.map.len; i++) {
      pf_lua_push_value(L, v->u.map.vals[i]); /* null -> nil: the key is absent */
      lua_setfield(L, -2, v->u.map.keys[i]);
    }
    break;
  case PF_V_MODEL:
    if (v->u.model)
      pf_lua_push_model(L, v->u.model);
    else
      lua_pushnil(L);
    break;
  case PF_V_TENSOR:
    if (v->u.tensor)
      pf_lua_push_tensor(L, v->u.tensor);
    else
      lua_pushnil(L);
    break;
  }
}

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

static pf_status to_value(lua_State *L, int idx, int force_map, pf_value **out, pf_err *err) {
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
  return to_value(L, idx, 0, out, err);
}

/* ------------------------------------------------------------- ops */

void pf_lua_set_ctx(lua_State *L, const pf_ctx *ctx) {
  lua_pushlightuserdata(L, (void *)ctx);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &ctx_key);
}

static const pf_ctx *get_ctx(lua_State *L) {
  static const pf_ctx none;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &ctx_key);
  const pf_ctx *ctx = lua_touserdata(L, -1);
  lua_pop(L, 1);
  return ctx ? ctx : &none;
}

/* Raise "pf.<op>: msg" without the "<op>: " prefix pf_op_run already added.
 * The error object and err->code are remembered in the registry: a Lua error
 * is only a string, and pf_lua_error_status maps it back to the op's status
 * (an out-of-memory op must not end the script as "invalid argument"). */
/* "file:line: " of the innermost Lua function with a current line that called the
 * op, pushed ("" when there is none). luaL_where(L, 1) names only the direct caller,
 * which is pcall or xpcall in pcall(pf.load, {...}): no location at all. */
static void push_where(lua_State *L) {
  lua_Debug ar;
  for (int level = 1; lua_getstack(L, level, &ar); level++) {
    lua_getinfo(L, "Sl", &ar);
    if (ar.currentline > 0) {
      lua_pushfstring(L, "%s:%d: ", ar.short_src, ar.currentline);
      return;
    }
  }
  lua_pushliteral(L, "");
}

/* luaL_error with push_where's location. */
static int where_error(lua_State *L, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  push_where(L);
  lua_pushvfstring(L, fmt, ap);
  va_end(ap);
  lua_concat(L, 2);
  return lua_error(L);
}

static int op_error(lua_State *L, const pf_op *op, const pf_err *err) {
  const char *msg = err->msg;
  size_t n = strlen(op->name);
  if (strncmp(msg, op->name, n) == 0 && msg[n] == ':' && msg[n + 1] == ' ') msg += n + 2;
  push_where(L);
  lua_pushfstring(L, "pf.%s: %s", op->name, msg);
  lua_concat(L, 2);
  lua_pushvalue(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &op_err_msg_key);
  lua_pushinteger(L, (lua_Integer)(err->code != PF_OK ? err->code : PF_ERR_INVALID));
  lua_rawsetp(L, LUA_REGISTRYINDEX, &op_err_code_key);
  return lua_error(L);
}

pf_status pf_lua_error_status(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  pf_status st = PF_ERR_INVALID;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &op_err_msg_key);
  if (lua_type(L, idx) == LUA_TSTRING && lua_rawequal(L, idx, -1)) {
    lua_rawgetp(L, LUA_REGISTRYINDEX, &op_err_code_key);
    lua_Integer code = lua_tointeger(L, -1);
    if (code > PF_OK && code <= PF_ERR_INTERRUPTED) st = (pf_status)code;
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return st;
}

static int gettable_fn(lua_State *L) {
  lua_gettable(L, 1);
  return 1;
}

/* The op's parameter table (argument 1) as a plain table, pushed: itself when it has
 * no metatable; else every parameter the op's spec names read raw, and only when
 * missing raw through __index (defaults inherited from another table, a read-only
 * proxy), protected: a "strict" table whose __index raises on unknown keys gives
 * nil (absent) for a parameter it lacks. Plus its own keys the spec does not name
 * (pf_op_validate reports them). Runs before any pf_value exists, so it may raise:
 * a memory error, or an interrupt that came during __index, is raised again. */
static void push_plain_params(lua_State *L, const pf_op *op) {
  if (!lua_getmetatable(L, 1)) {
    lua_pushvalue(L, 1);
    return;
  }
  lua_pop(L, 1);
  lua_createtable(L, 0, (int)op->n_params);
  const int flat = lua_gettop(L);
  for (size_t i = 0; i < op->n_params; i++) {
    lua_pushstring(L, op->params[i].name);
    if (lua_rawget(L, 1) == LUA_TNIL) {
      lua_pop(L, 1);
      lua_pushcfunction(L, gettable_fn);
      lua_pushvalue(L, 1);
      lua_pushstring(L, op->params[i].name);
      int rc = lua_pcall(L, 2, 1, 0);
      const pf_ctx *ctx = get_ctx(L);
      if (rc == LUA_ERRMEM || (rc != LUA_OK && ctx->interrupt && *ctx->interrupt)) lua_error(L);
      if (rc != LUA_OK) {
        lua_pop(L, 1);
        lua_pushnil(L);
      }
    }
    lua_setfield(L, flat, op->params[i].name); /* nil: absent */
  }
  lua_pushnil(L);
  while (lua_next(L, 1)) {
    int named = 0;
    if (lua_type(L, -2) == LUA_TSTRING)
      for (size_t i = 0; !named && i < op->n_params; i++)
        named = strcmp(lua_tostring(L, -2), op->params[i].name) == 0;
    if (named) {
      lua_pop(L, 1);
      continue;
    }
    lua_pushvalue(L, -2);
    lua_insert(L, -2);
    lua_rawset(L, flat); /* the key stays for lua_next */
  }
}

/* Ops with a "model" in their result return the model first, the rest second. */
static int push_result(lua_State *L, const pf_value *out) {
  const pf_value *m = pf_map_get(out, "model");
  if (!m || m->type != PF_V_MODEL || !m->u.model) {
    pf_lua_push_value(L, out);
    return 1;
  }
  pf_lua_push_model(L, m->u.model);
  lua_createtable(L, 0, (int)out->u.map.len);
  for (size_t i = 0; i < out->u.map.len; i++) {
    if (strcmp(out->u.map.keys[i], "model") == 0) continue;
    pf_lua_push_value(L, out->u.map.vals[i]);
    lua_setfield(L, -2, out->u.map.keys[i]);
  }
  return 2;
}

#define CLOSING_KEY "pfrun.closing"

void pf_lua_closing(lua_State *L) {
  lua_pushboolean(L, 1);
  lua_setfield(L, LUA_REGISTRYINDEX, CLOSING_KEY);
}

/* After an op ran out of memory: a full collection, and whether it freed enough for
 * running the op again to be worth it: at least PF_LUA_RETRY_BYTES of Lua's heap or
 * of tensors, or a model (whose own tensors the count cannot see). Less than that
 * cannot turn a failure into a success under any cap an op fits in (every op needs
 * several MiB), while a retry doubles a long calibrate or benchmark that is simply
 * too big for --max-memory, and prints its log lines twice. */
#define PF_LUA_RETRY_BYTES ((size_t)1 << 20)

static size_t lua_heap_bytes(lua_State *L) {
  return (size_t)lua_gc(L, LUA_GCCOUNT) * 1024 + (size_t)lua_gc(L, LUA_GCCOUNTB);
}

static int collect_freed_memory(lua_State *L) {
  const size_t heap = lua_heap_bytes(L), tensors = g_tensor_bytes;
  const unsigned long models = g_models_closed;
  lua_gc(L, LUA_GCCOLLECT);
  const size_t heap_after = lua_heap_bytes(L);
  size_t freed = heap > heap_after ? heap - heap_after : 0;
  freed += tensors > g_tensor_bytes ? tensors - g_tensor_bytes : 0;
  return freed >= PF_LUA_RETRY_BYTES || g_models_closed != models;
}

static int l_op(lua_State *L) {
  const pf_op *op = lua_touserdata(L, lua_upvalueindex(1));
  lua_getfield(L, LUA_REGISTRYINDEX, CLOSING_KEY);
  const int closing = lua_toboolean(L, -1);
  lua_pop(L, 1);
  if (closing)
    return where_error(L,
                       "pf.%s: called while the script ends (from a finaliser); ops run "
                       "before the end of the script",
                       op->name);
  int nargs = lua_gettop(L);
  if (nargs > 1)
    return where_error(L, "pf.%s: expected one table of parameters, got %d arguments", op->name,
                       nargs);
  int t = lua_type(L, 1);
  if (nargs == 1 && t != LUA_TTABLE && t != LUA_TNIL)
    return where_error(L, "pf.%s: expected a table of parameters, got %s", op->name,
                       luaL_typename(L, 1));
  /* the box holds whatever pf_value is alive while Lua might raise */
  vbox *box = lua_newuserdatauv(L, sizeof *box, 0);
  box->v = NULL;
  luaL_setmetatable(L, BOX_MT);
  pf_err err = {0};
  pf_value *params = NULL;
  pf_status st;
  if (t == LUA_TTABLE) {
    push_plain_params(L, op);
    st = to_value(L, -1, 1, &params, &err);
    lua_pop(L, 1);
    if (st != PF_OK) return op_error(L, op, &err); /* nothing allocated on failure */
  } else if (!(params = pf_value_map())) {
    pf_err_set(&err, PF_ERR_NOMEM, "out of memory");
    return op_error(L, op, &err);
  }
  box->v = params;
  const pf_ctx *ctx = get_ctx(L);
  /* under a working-memory cap, sooner: a quarter of it (three dropped 32 MiB results
   * were still held under a 100 MB cap) */
  const uint64_t quarter = ctx && ctx->memory_cap ? pf_ctx_work_budget(ctx) / 4 : 0;
  if (g_tensor_bytes > (quarter && quarter < pf_lua_gc_bytes ? quarter : pf_lua_gc_bytes))
    lua_gc(L, LUA_GCCOLLECT);
  /* a save over the folder of a model that only the collector still holds (a sweep that
   * saves each child to one path and loads it again): collect it first, or the save
   * refuses the folder as in use */
  if (!strcmp(op->name, "save")) {
    const char *path = pf_map_str(params, "path", NULL);
    char *used = path ? pf_model_dir_in_use(path, pf_map_model(params, "model")) : NULL;
    if (used) lua_gc(L, LUA_GCCOLLECT);
    free(used);
  }
  pf_value *out = NULL;
  st = pf_op_run(op->name, params, &out, ctx, &err);
  if (st == PF_ERR_NOMEM && collect_freed_memory(L)) {
    /* Lua's garbage held memory the op may need (a table that a caught Lua memory
     * error left, not collected yet): run the op once more. Ops are functional
     * (models are immutable) and a failed one leaves nothing behind (a save removes
     * its partial copy), so the retry starts clean. */
    pf_err_clear(&err);
    st = pf_op_run(op->name, params, &out, ctx, &err);
  }
  box->v = NULL;
  pf_value_release(params);
  if (st == PF_ERR_INTERRUPTED) pf_lua_interrupt_raised(L);
  if (st != PF_OK) return op_error(L, op, &err);
  box->v = out;
  int nret = push_result(L, out);
  box->v = NULL;
  pf_value_release(out);
  return nret;
}

static int l_ops(lua_State *L) {
  size_t n = pf_op_count();
  lua_createtable(L, (int)n, 0);
  for (size_t i = 0; i < n; i++) {
    const pf_op *op = pf_op_at(i);
    lua_createtable(L, 0, 3);
    lua_pushstring(L, op->name);
    lua_setfield(L, -2, "name");
    lua_pushstring(L, op->summary ? op->summary : "");
    lua_setfield(L, -2, "summary");
    if (op->alias) {
      lua_pushstring(L, op->alias);
      lua_setfield(L, -2, "alias");
    }
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  return 1;
}

/* Register `op` under `name` with '-' replaced by '_'. Module table at -1. */
static void set_op(lua_State *L, const pf_op *op, const char *name) {
  char key[128];
  snprintf(key, sizeof key, "%s", name);
  for (char *p = key; *p; p++)
    if (*p == '-') *p = '_';
  lua_pushlightuserdata(L, (void *)op);
  lua_pushcclosure(L, l_op, 1);
  lua_setfield(L, -2, key);
}

int pf_lua_open(lua_State *L) {
  static const luaL_Reg model_meta[] = {{"__gc", model_close},
                                        {"__close", model_close},
                                        {"__tostring", model_tostring},
                                        {"__index", model_index},
                                        {NULL, NULL}};
  if (luaL_newmetatable(L, MODEL_MT)) luaL_setfuncs(L, model_meta, 0);
  lua_pop(L, 1);
  static const luaL_Reg tensor_meta[] = {{"__gc", tensor_close},    {"__close", tensor_close},
                                         {"__len", tensor_len},     {"__tostring", tensor_tostring},
                                         {"__index", tensor_index}, {NULL, NULL}};
  if (luaL_newmetatable(L, TENSOR_MT)) luaL_setfuncs(L, tensor_meta, 0);
  lua_pop(L, 1);
  if (luaL_newmetatable(L, BOX_MT)) {
    lua_pushcfunction(L, box_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  size_t n = pf_op_count();
  lua_createtable(L, 0, (int)n + 2);
  for (size_t i = 0; i < n; i++) {
    const pf_op *op = pf_op_at(i);
    set_op(L, op, op->name);
    if (op->alias) set_op(L, op, op->alias);
  }
  lua_pushcfunction(L, l_ops);
  lua_setfield(L, -2, "ops");
  lua_pushliteral(L, PF_VERSION);
  lua_setfield(L, -2, "version");
  /* MPI: this process's rank and the number of ranks (0 and 1 without mpirun) */
  lua_pushinteger(L, pf_dist_rank());
  lua_setfield(L, -2, "rank");
  lua_pushinteger(L, pf_dist_size());
  lua_setfield(L, -2, "size");
  return 1;
}
