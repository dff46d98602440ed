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
#include "pf_lua_int.h"

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

#define BOX_MT "pf.valuebox"

static const char ctx_key = 'c'; /* registry key (its address) of the host's pf_ctx */
/* registry keys of the last error an op raised: its message and its pf_status,
 * so that the host can tell which status a script's uncaught error carries */
static const char op_err_msg_key = 'm';
static const char op_err_code_key = 's';

/* ---------------------------------------------------------------- models */

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

/* The registry flag that ops see while the state closes. pf_lua_open creates the
 * entry (false), so that setting it afterwards allocates nothing: pf_lua_closing
 * runs outside any protected call, where a memory error (the script ended with the
 * memory full) would be Lua's "unprotected error" panic, an abort. The key is a
 * light userdata (an address), not a string, so no string is interned either;
 * without the entry (pf_lua_open did not run: the state has no ops) nothing is set. */
static const char closing_key;

void pf_lua_closing(lua_State *L) {
  const int opened = lua_rawgetp(L, LUA_REGISTRYINDEX, &closing_key) != LUA_TNIL;
  lua_pop(L, 1);
  if (!opened) return; /* pf_lua_open never ran here: no op to keep out */
  lua_pushboolean(L, 1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &closing_key);
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
  lua_rawgetp(L, LUA_REGISTRYINDEX, &closing_key);
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
    st = pf_lua_to_value_as(L, -1, 1, &params, &err);
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
  lua_pushboolean(L, 0);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &closing_key); /* see pf_lua_closing */
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
