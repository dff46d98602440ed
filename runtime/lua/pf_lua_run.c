/* pf_lua_run.c — running a script file (pf_lua_run_file, see pf_lua.h): the
 * file read by pf_read_file (so a FIFO or a folder is refused, not opened),
 * everything under lua_pcall with lua.c's message handler (traceback), and the
 * status of a failure taken from the op that raised it (pf_lua_error_status). */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "pf_lua.h"

#define PF_LUA_MAX_SCRIPT_BYTES ((size_t)64 << 20)

typedef struct run_args {
  const char *path;
  const char *chunk; /* the script's text, as luaL_loadfilex would read it */
  size_t chunk_len;
  int argc;
  char **argv;
  const pf_ctx *ctx;
  int load_rc;         /* luaL_loadbufferx status: its message gets no traceback */
  pf_status op_status; /* the status of the error, when an op raised it */
} run_args;

/* The part of a script file that Lua compiles, as luaL_loadfilex skips it: a
 * UTF-8 BOM, and a first line starting with '#' (a shebang) whose newline is
 * kept so that line numbers stay right (and dropped before a precompiled chunk). */
static const char *script_chunk(const char *text, size_t len, size_t *n) {
  const char *p = text, *end = text + len;
  if (len >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0) p += 3;
  if (p < end && *p == '#') {
    while (p < end && *p != '\n')
      p++;
    if (p + 1 < end && p[1] == LUA_SIGNATURE[0]) p++;
  }
  *n = (size_t)(end - p);
  return p;
}

/* As lua.c's msghandler: non-string errors via __tostring, then a traceback.
 * Runs where the error was raised, so the error object is still the one an op
 * raised (if it was): its status is taken here, before the traceback. */
static const char run_args_key; /* registry: the run_args (pmain sets it) */

static int msgh(lua_State *L) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &run_args_key);
  run_args *a = lua_touserdata(L, -1);
  lua_pop(L, 1);
  if (!a) return 1; /* pmain failed before it set the key: memory */
  const char *msg = lua_tostring(L, 1);
  if (a->load_rc != LUA_OK && msg) return 1;
  a->op_status = pf_lua_error_status(L, 1);
  if (!msg) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) return 1;
    msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  }
  luaL_traceback(L, L, msg, 1);
  return 1;
}

const char *pf_lua_interpreter = NULL;

/* Test hook: with a value n >= 0, the script state's allocator fails every
 * allocation or growth after the first n (as a full memory would); -1, the
 * default, leaves Lua's own allocator in place. */
long pf_lua_fail_allocs_after = -1;
static long g_lua_allocs;

static void *failing_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  (void)ud;
  if (nsize == 0) {
    free(ptr);
    return NULL;
  }
  if ((!ptr || nsize > osize) && g_lua_allocs++ >= pf_lua_fail_allocs_after) return NULL;
  return realloc(ptr, nsize);
}

/* ---- interrupts ----
 * An op stops at its next safe point once ctx->interrupt is set and raises
 * "interrupted by signal"; Lua code itself never looks at the flag. So, as lua.c's
 * lstop does, the signal handler installs a hook (pf_lua_interrupt; lua_sethook may
 * be called from a signal handler) that fires at the next instruction, removes
 * itself and raises: a pure Lua loop stops at once. Removing itself matters: the
 * error then unwinds like any other, so __close handlers and an xpcall message
 * handler run (a hook left in place raised again at their first instruction).
 * Not a count hook polling the flag: any hook makes the VM call luaG_traceexec on
 * every instruction, measured at +45-75 % on a tight loop (Lua 5.4.4).
 * That the error is not swallowed is the wrappers' job: the script's pcall, xpcall
 * and coroutine.resume (guard_*) raise a caught error again while the flag is set.
 * The hook is on the thread the handler found (the main one); a coroutine already
 * running when the signal comes stops at its next op or when it yields. */
static lua_State *volatile g_script_state; /* the running script's state, or NULL */
static pthread_t g_script_thread;          /* the thread running it (valid with it) */

static void interrupt_hook(lua_State *L, lua_Debug *ar) {
  lua_sethook(L, NULL, 0, 0);
  if (lua_getinfo(L, "Sl", ar) && ar->currentline > 0)
    luaL_error(L, "%s:%d: interrupted by signal", ar->short_src, ar->currentline);
  luaL_error(L, "interrupted by signal");
}

void pf_lua_interrupt_state(lua_State *L) {
  lua_sethook(L, interrupt_hook, LUA_MASKCOUNT, 1);
}

/* lua_sethook walks the state's CallInfo list: from a signal handler on the thread
 * that runs the VM, the VM is stopped between two machine instructions, as in lua.c;
 * from any other thread (an OpenMP worker) it would race with the running VM. So on
 * another thread this does nothing: the flag alone is set, ops still stop at their
 * next safe point, and a pure Lua loop needs the second signal. pfrun blocks SIGINT,
 * SIGTERM and SIGHUP in every thread but the main one, which runs the script, so
 * there the handler always finds the script's thread; the check covers hosts and
 * threads without that mask (pthread_self and pthread_equal only read the thread
 * pointer: safe in a handler, though POSIX does not list them). */
void pf_lua_interrupt(void) {
  lua_State *L = g_script_state;
  if (L && pthread_equal(pthread_self(), g_script_thread)) pf_lua_interrupt_state(L);
}

/* An op raised "interrupted by signal" itself: the hook the handler set on the main
 * thread has nothing left to do, and fired later it would hit a __close handler or
 * a message handler that the op's error runs. */
void pf_lua_interrupt_raised(lua_State *L) {
  if (lua_gethook(L) == interrupt_hook) lua_sethook(L, NULL, 0, 0);
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
  lua_State *main = lua_tothread(L, -1);
  lua_pop(L, 1);
  if (main && lua_gethook(main) == interrupt_hook) lua_sethook(main, NULL, 0, 0);
}

/* The guards: lbaselib's pcall and xpcall and lcorolib's resume, which raise the
 * error they caught again when the run is interrupted (upvalue 1: the pf_ctx), so
 * that the interruption ends the script whatever catches it on the way. pcall and
 * xpcall stay yieldable (lua_pcallk with the same continuation as lbaselib). */
static int interrupted(lua_State *L) {
  const pf_ctx *ctx = lua_touserdata(L, lua_upvalueindex(1));
  return ctx && ctx->interrupt && *ctx->interrupt;
}

static int guard_finish(lua_State *L, int status, lua_KContext extra) {
  if (status != LUA_OK && status != LUA_YIELD) {
    if (interrupted(L)) return lua_error(L); /* the error object is on top */
    lua_pushboolean(L, 0);
    lua_pushvalue(L, -2);
    return 2;
  }
  return lua_gettop(L) - (int)extra;
}

static int guard_pcall(lua_State *L) {
  luaL_checkany(L, 1);
  lua_pushboolean(L, 1);
  lua_insert(L, 1);
  int status = lua_pcallk(L, lua_gettop(L) - 2, LUA_MULTRET, 0, 0, guard_finish);
  return guard_finish(L, status, 0);
}

static int guard_xpcall(lua_State *L) {
  int n = lua_gettop(L);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_pushboolean(L, 1);
  lua_pushvalue(L, 1);
  lua_rotate(L, 3, 2);
  int status = lua_pcallk(L, n - 2, LUA_MULTRET, 2, 2, guard_finish);
  return guard_finish(L, status, 2);
}

static int guard_resume(lua_State *L) {
  lua_State *co = lua_tothread(L, 1);
  luaL_argexpected(L, co, 1, "coroutine");
  int narg = lua_gettop(L) - 1, nres;
  if (!lua_checkstack(co, narg)) {
    lua_pushboolean(L, 0);
    lua_pushliteral(L, "too many arguments to resume");
    return 2;
  }
  lua_xmove(L, co, narg);
  int status = lua_resume(co, L, narg, &nres);
  if (status == LUA_OK || status == LUA_YIELD) {
    if (!lua_checkstack(L, nres + 1)) {
      lua_pop(co, nres);
      lua_pushboolean(L, 0);
      lua_pushliteral(L, "too many results to resume");
      return 2;
    }
    lua_pushboolean(L, 1);
    lua_xmove(co, L, nres);
    return nres + 1;
  }
  lua_xmove(co, L, 1); /* the error object */
  if (interrupted(L)) return lua_error(L);
  lua_pushboolean(L, 0);
  lua_insert(L, -2);
  return 2;
}

static void install_guards(lua_State *L, const pf_ctx *ctx) {
  lua_pushlightuserdata(L, (void *)ctx);
  lua_pushcclosure(L, guard_pcall, 1);
  lua_setglobal(L, "pcall");
  lua_pushlightuserdata(L, (void *)ctx);
  lua_pushcclosure(L, guard_xpcall, 1);
  lua_setglobal(L, "xpcall");
  lua_getglobal(L, "coroutine");
  lua_pushlightuserdata(L, (void *)ctx);
  lua_pushcclosure(L, guard_resume, 1);
  lua_setfield(L, -2, "resume");
  lua_pop(L, 1);
}

/* package.path starts with the script's folder, so that `require "mymod"` finds
 * mymod.lua next to the script from any current folder (lua.c leaves that to
 * LUA_PATH; a pfrun script is usually run from elsewhere). A folder whose name has
 * ';' or '?' (package.path's separators) is left out. */
static void add_script_dir(lua_State *L, const char *path) {
  const char *slash = strrchr(path, '/');
  size_t n = slash ? (size_t)(slash - path) : 1;
  const char *dir = slash ? path : ".";
  if (slash && n == 0) n = 1; /* "/x.lua": the root */
  if (memchr(dir, ';', n) || memchr(dir, '?', n)) return;
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "path");
  const char *old = lua_tostring(L, -1);
  const char *sep = n == 1 && dir[0] == '/' ? "" : "/";
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  luaL_addlstring(&b, dir, n);
  luaL_addstring(&b, sep);
  luaL_addstring(&b, "?.lua;");
  luaL_addlstring(&b, dir, n);
  luaL_addstring(&b, sep);
  luaL_addstring(&b, "?/init.lua;");
  luaL_addstring(&b, old ? old : "");
  luaL_pushresult(&b);
  lua_setfield(L, -3, "path");
  lua_pop(L, 2);
}

/* Everything that can raise runs here, under lua_pcall: outside it, a memory error
 * is Lua's "unprotected error" panic (an abort), so pf_lua_run_file only pushes
 * what allocates nothing (light C functions, a light userdata) before the call. */
static int pmain(lua_State *L) {
  run_args *a = lua_touserdata(L, 1);
  lua_pushlightuserdata(L, a);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &run_args_key);
  luaL_openlibs(L);
  luaL_requiref(L, "pf", pf_lua_open, 1);
  lua_pop(L, 1);
  pf_lua_set_ctx(L, a->ctx);
  install_guards(L, a->ctx);
  if (a->ctx && a->ctx->interrupt && *a->ctx->interrupt) pf_lua_interrupt_state(L);
  add_script_dir(L, a->path);
  lua_createtable(L, a->argc, 2);
  if (pf_lua_interpreter) {
    lua_pushstring(L, pf_lua_interpreter);
    lua_rawseti(L, -2, -1);
  }
  lua_pushstring(L, a->path);
  lua_rawseti(L, -2, 0);
  for (int i = 0; i < a->argc; i++) {
    lua_pushstring(L, a->argv[i]);
    lua_rawseti(L, -2, i + 1);
  }
  lua_setglobal(L, "arg");
  const char *name = lua_pushfstring(L, "@%s", a->path);
  a->load_rc = luaL_loadbufferx(L, a->chunk, a->chunk_len, name, NULL);
  if (a->load_rc != LUA_OK) return lua_error(L);
  luaL_checkstack(L, a->argc + 1, "too many script arguments");
  for (int i = 0; i < a->argc; i++)
    lua_pushstring(L, a->argv[i]);
  lua_call(L, a->argc, 0);
  return 0;
}

/* The status of a failed run: a Lua memory error or an interrupt first, then a
 * syntax error, then the status of the op that raised the error, else the
 * script's own error (PF_ERR_INVALID). */
static pf_status run_status(int rc, const run_args *a) {
  if (rc == LUA_ERRMEM || a->load_rc == LUA_ERRMEM) return PF_ERR_NOMEM;
  if (a->ctx && a->ctx->interrupt && *a->ctx->interrupt) return PF_ERR_INTERRUPTED;
  if (a->load_rc == LUA_ERRSYNTAX) return PF_ERR_FORMAT;
  if (a->load_rc != LUA_OK) return PF_ERR_INVALID;
  return a->op_status != PF_OK ? a->op_status : PF_ERR_INVALID;
}

pf_status pf_lua_run_file(const char *path, int argc, char **argv, const pf_ctx *ctx, pf_err *err) {
  if (!path) return pf_err_set(err, PF_ERR_INVALID, "lua: no script path given");
  char *text = NULL;
  size_t len = 0;
  /* read here, not by luaL_loadfile: a FIFO or a folder is refused, not opened */
  pf_status st = pf_read_file(path, PF_LUA_MAX_SCRIPT_BYTES, &text, &len, err);
  if (st != PF_OK) return st;
  lua_State *L = luaL_newstate();
  if (!L) {
    free(text);
    return pf_err_set(err, PF_ERR_NOMEM, "%s: cannot create a Lua state", path);
  }
  if (pf_lua_fail_allocs_after >= 0) {
    g_lua_allocs = 0;
    lua_setallocf(L, failing_alloc, NULL);
  }
  run_args a = {.path = path, .argc = argc < 0 ? 0 : argc, .argv = argv, .ctx = ctx};
  a.chunk = script_chunk(text, len, &a.chunk_len);
  lua_pushcfunction(L, msgh);
  lua_pushcfunction(L, pmain);
  lua_pushlightuserdata(L, &a);
  lua_State *outer = g_script_state;
  pthread_t outer_thread = g_script_thread;
  g_script_thread = pthread_self(); /* before the state: the handler reads it second */
  __atomic_signal_fence(__ATOMIC_SEQ_CST);
  g_script_state = L;
  int rc = lua_pcall(L, 1, 0, 1);
  g_script_state = outer;
  __atomic_signal_fence(__ATOMIC_SEQ_CST);
  g_script_thread = outer_thread;
  lua_sethook(L, NULL, 0, 0); /* the finalisers below run to their end */
  if (rc != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    st = run_status(rc, &a);
    pf_err_set(err, st, "%s", msg ? msg : "(error without a message)");
  }
  /* the garbage's finalisers first, while ops may still run in them; then the rest */
  lua_gc(L, LUA_GCCOLLECT);
  lua_gc(L, LUA_GCCOLLECT);
  pf_lua_closing(L);
  lua_close(L); /* runs __gc: models still open are released here */
  free(text);
  return st;
}
