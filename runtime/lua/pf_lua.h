/* pf_lua.h — the `pf` module for Lua 5.4 (the only place that includes lua.h).
 *
 * Every op of the op table is a function of the module taking one table:
 *   local m <close> = pf.load{ path = "synthetic:llama-tiny" }
 *   local p, stats  = pf.prune_width{ model = m, method = "MAW", pruning_percentage = 20 }
 * Ops whose result holds a "model" return the model userdata first and the rest
 * of the result table second; other ops return the result table.
 * Models are userdata (metatable "pf.model") with __gc and __close sharing one
 * release function that is safe to call twice, __tostring, and fields
 * (m.num_hidden_layers, m.hidden_size, m.parameters, m.name, m.dtype,
 * m.intermediate_sizes). Errors raise a Lua error "pf.<op>: message".
 * Tensors (bias_activations results) are userdata (metatable "pf.tensor")
 * holding a retained pf_tensor: #t is the number of elements, t.shape a table
 * ({S, D}), t.dtype ("float32"), t.numel, t:get(i, j) the element at 1-BASED
 * indices (one per dimension, Lua's convention: t:get(1, 1) is the first
 * element), tostring(t) "pf.tensor([S, D], float32)", t:close() / <close> /
 * __gc release it (safe twice). Passing a tensor back to an op passes the same
 * tensor (no copy).
 * Also: pf.ops() lists op names, pf.version.
 */
#ifndef PF_LUA_H
#define PF_LUA_H

#include "pf.h"
#include "value.h"

struct lua_State;

/* luaL_requiref-style opener: pushes the module table. The ctx pointer must
 * outlive the state (progress/log/dry-run of the host). */
int pf_lua_open(struct lua_State *L);
/* Before lua_close: the finalisers that lua_close runs may not run ops (a model an
 * op made there would never be finalised, so never released); they get an error. */
void pf_lua_closing(struct lua_State *L);
/* Tests: pf_lua_run_file's state fails every allocation after this many (-1: off). */
extern long pf_lua_fail_allocs_after;
void pf_lua_set_ctx(struct lua_State *L, const pf_ctx *ctx);

/* Run a Lua script file with `arg` set as lua.c does (arg[0] = script,
 * arg[1..] = args). Runs under lua_pcall with a traceback; on error the message
 * (with traceback) goes into err and the status says why (see the notes). */
/* Past this many bytes of tensors held by Lua values (default 64 MiB), each op
 * called from Lua starts with a full garbage collection, so that results the
 * script dropped let their tensors go before the op makes new ones. */
extern size_t pf_lua_gc_bytes;

pf_status pf_lua_run_file(const char *path, int argc, char **argv, const pf_ctx *ctx,
                          pf_err *err);
/* Stop the running script (pf_lua_run_file): async-signal-safe, for a signal handler
 * that has just set the ctx's interrupt flag. The script's next Lua instruction
 * raises "interrupted by signal" (once: __close and xpcall message handlers then
 * run), and while the flag is set the script's pcall, xpcall and coroutine.resume
 * raise a caught error again, so nothing swallows the interruption and a pure Lua
 * loop stops too; the run's status is PF_ERR_INTERRUPTED. No-op without a running
 * script, and when called on another thread than the one running it (the flag alone
 * then stops the ops; a signal handler should run on the script's thread). pf_lua_interrupt_state
 * does the same for one state (thread); pf_lua_interrupt_raised removes that pending hook from L
 * and the main thread (for an op that raised the interruption itself). */
void pf_lua_interrupt(void);
void pf_lua_interrupt_state(struct lua_State *L);
void pf_lua_interrupt_raised(struct lua_State *L);
/* The host program's name (pfrun's argv[0]), given to scripts as arg[-1] as lua.c
 * does; NULL (the default): arg[-1] is nil. */
extern const char *pf_lua_interpreter;
/* The pf_status behind the Lua error object at idx: the status of the op when
 * a pf.<op> function raised exactly this error (PF_ERR_NOMEM for an op that ran
 * out of memory, PF_ERR_IO, PF_ERR_NOT_FOUND, ...), else PF_ERR_INVALID (an
 * error of the script itself). For hosts that run their own lua_pcall; call it
 * from the message handler or right after the call, before another op runs. */
pf_status pf_lua_error_status(struct lua_State *L, int idx);

/* Conversions (exposed for tests). Push a value; read the value at index idx
 * (tables with 1..n keys become lists, others maps; model userdata -> MODEL). */
void pf_lua_push_value(struct lua_State *L, const pf_value *v);
pf_status pf_lua_to_value(struct lua_State *L, int idx, pf_value **out, pf_err *err);

/* ---- additions (implementation details other front ends may use) ---- */

/* Metatable name of model userdata, and the nesting bound of Lua -> pf_value
 * (deeper tables, and tables that contain themselves, are errors). */
#define PF_LUA_MODEL_MT "pf.model"
#define PF_LUA_TENSOR_MT "pf.tensor"
#define PF_LUA_MAX_DEPTH 64

/* Push model userdata holding a new reference to m (retained). */
void pf_lua_push_model(struct lua_State *L, pf_model *m);
/* The open model at idx (borrowed); raises "pf.model: model is closed" for a
 * closed one and a type error for anything else. */
pf_model *pf_lua_check_model(struct lua_State *L, int idx);
/* Push tensor userdata holding a new reference to t (retained). */
void pf_lua_push_tensor(struct lua_State *L, pf_tensor *t);

/* Notes on the conversions:
 *  - pf_lua_to_value never raises: errors name the offending key path
 *    ("calibration.fn: cannot convert a function ..."). Integers -> INT, other
 *    numbers -> NUM; an empty table becomes an empty list; map keys come out
 *    sorted; integer keys of non-sequence tables become string keys. Tables are
 *    read by their own keys; a proxy is refused (no own keys and a metatable with
 *    __index, __pairs or __len, or a __len that differs from the raw length). An
 *    op's top-level parameter table may be a proxy: the op's parameters missing
 *    among its own keys are read through __index (protected). The Lua
 *    stack is left as it was.
 *  - pf_lua_push_value: nulls become nil (so they vanish from maps), models
 *    become userdata. Raises only on Lua memory errors.
 *  - pf_lua_run_file: argv[0..argc) are the script's own arguments (arg[1..]);
 *    they are also passed to the chunk as `...`. package.path starts with
 *    "<script folder>/?.lua;<script folder>/?/init.lua", so require finds the
 *    modules next to the script from any current folder. The file is read with
 *    pf_read_file (a FIFO, folder or device is refused: "<path>: expected a
 *    regular file, found a FIFO"; its status, PF_ERR_NOT_FOUND for a missing
 *    file). Status of a failed run: PF_ERR_NOMEM for a Lua memory error,
 *    PF_ERR_INTERRUPTED when ctx->interrupt is set, PF_ERR_FORMAT for a syntax
 *    error, the op's own status when the uncaught error is one a pf.<op>
 *    raised (pf_lua_error_status), else PF_ERR_INVALID. */

#endif
