/* check_lua.c — the `pf` Lua module: value conversions, model userdata,
 * scripts run through pf_lua_run_file (success, errors with tracebacks).
 * Scripts stopped by a signal or by Lua's memory running out: check_lua_stop.c. */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <pthread.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "fsutil.h"
#include "model.h"
#include "livelog.h"
#include "op.h"
#include "luautil.h"
#include "pf_lua.h"
#include "testutil.h"

static char *g_cache; /* PFRUN_CACHE for the whole suite (synthetic models) */

static void suite_setup(void) {
  g_cache = pf_test_tmpdir("lua-cache");
  setenv("PFRUN_CACHE", g_cache, 1);
}

static void suite_teardown(void) {
  pf_test_rmtree(g_cache);
  free(g_cache);
  g_cache = NULL;
}

static lua_State *new_state(void) {
  lua_State *L = luaL_newstate();
  ck_assert_ptr_nonnull(L);
  luaL_openlibs(L);
  luaL_requiref(L, "pf", pf_lua_open, 1);
  lua_pop(L, 1);
  return L;
}

/* Run a chunk returning one value; ck_assert it ran. */
static void eval(lua_State *L, const char *code) {
  int rc = luaL_dostring(L, code);
  ck_assert_msg(rc == LUA_OK, "lua: %s", lua_tostring(L, -1));
}

static char *json_of(const pf_value *v) {
  char *s = pf_value_to_json_text(v);
  ck_assert_ptr_nonnull(s);
  return s;
}

/* Lua code -> value; expects failure with `needle` in the message. */
static void expect_conv_error(lua_State *L, const char *code, const char *needle) {
  eval(L, code);
  int top = lua_gettop(L);
  pf_err err = {0};
  pf_value *v = (pf_value *)1;
  ck_assert_int_ne(pf_lua_to_value(L, -1, &v, &err), PF_OK);
  ck_assert_ptr_null(v);
  ck_assert_int_eq(lua_gettop(L), top); /* stack untouched */
  pf_assert_err(err, needle);
  lua_pop(L, 1);
}

START_TEST(test_value_roundtrip) {
  lua_State *L = new_state();
  /* keys in sorted order: Lua -> value sorts map keys */
  pf_value *m = pf_value_map(), *list = pf_value_list(), *inner = pf_value_map();
  pf_map_set(m, "a_int", pf_value_int(-42));
  pf_map_set(m, "b_num", pf_value_num(2.5));
  pf_map_set(m, "c_whole_num", pf_value_num(3.0));
  pf_map_set(m, "d_str", pf_value_str("héllo"));
  pf_map_set(m, "e_true", pf_value_bool(1));
  pf_map_set(m, "f_false", pf_value_bool(0));
  pf_list_push(list, pf_value_int(1));
  pf_list_push(list, pf_value_str("two"));
  pf_list_push(list, pf_value_num(0.125));
  pf_map_set(m, "g_list", list);
  pf_map_set(inner, "deep", pf_value_int(INT64_MAX));
  pf_map_set(inner, "empty", pf_value_list());
  pf_map_set(m, "h_map", inner);

  pf_lua_push_value(L, m);
  ck_assert_int_eq(lua_type(L, -1), LUA_TTABLE);
  pf_err err = {0};
  pf_value *back = NULL;
  ck_assert_int_eq(pf_lua_to_value(L, -1, &back, &err), PF_OK);
  char *a = json_of(m), *b = json_of(back);
  ck_assert_str_eq(a, b);
  /* types survive: a float with no fraction stays a number, ints stay ints */
  ck_assert_int_eq(pf_map_get(back, "c_whole_num")->type, PF_V_NUM);
  ck_assert_int_eq(pf_map_get(back, "a_int")->type, PF_V_INT);
  ck_assert(pf_map_get(pf_map_get(back, "h_map"), "deep")->u.i == INT64_MAX);
  free(a);
  free(b);
  pf_value_release(back);
  pf_value_release(m);

  /* null pushes nil; scalars at top level */
  pf_value *n = pf_value_null();
  pf_lua_push_value(L, n);
  ck_assert(lua_isnil(L, -1));
  pf_value_release(n);
  lua_settop(L, 0);
  lua_close(L);
}
END_TEST

START_TEST(test_lua_tables_to_values) {
  lua_State *L = new_state();
  pf_err err = {0};
  pf_value *v = NULL;

  eval(L, "return {10, 20, 30}");
  ck_assert_int_eq(pf_lua_to_value(L, -1, &v, &err), PF_OK);
  ck_assert_int_eq(v->type, PF_V_LIST);
  ck_assert_uint_eq(v->u.list.len, 3);
  ck_assert_int_eq(v->u.list.items[2]->u.i, 30);
  pf_value_release(v);
  lua_pop(L, 1);

  /* holes: not a sequence -> map with string keys, sorted */
  eval(L, "return {[1] = 'a', [3] = 'c', x = 1.5}");
  ck_assert_int_eq(pf_lua_to_value(L, -1, &v, &err), PF_OK);
  ck_assert_int_eq(v->type, PF_V_MAP);
  ck_assert_str_eq(pf_map_str(v, "1", ""), "a");
  ck_assert_str_eq(pf_map_str(v, "3", ""), "c");
  ck_assert(pf_map_get(v, "x")->type == PF_V_NUM && pf_map_get(v, "x")->u.n == 1.5);
  ck_assert_str_eq(v->u.map.keys[0], "1");
  pf_value_release(v);
  lua_pop(L, 1);

  /* negative / zero integer keys are map keys too */
  eval(L, "return {[0] = true, [-1] = false}");
  ck_assert_int_eq(pf_lua_to_value(L, -1, &v, &err), PF_OK);
  ck_assert_int_eq(v->type, PF_V_MAP);
  ck_assert(pf_map_bool(v, "0", 0) == 1 && pf_map_has(v, "-1"));
  pf_value_release(v);
  lua_pop(L, 1);

  expect_conv_error(L, "return {params = {fn = function() end}}", "params.fn");
  expect_conv_error(L, "return {params = {fn = function() end}}", "function");
  expect_conv_error(L, "return {co = coroutine.create(function() end)}", "thread");
  expect_conv_error(L, "return {list = {1, 2, print}}", "list[3]");
  expect_conv_error(L, "local t = {}; t.self = t; return t", "cycle");
  expect_conv_error(L, "local t = {} ; t.a = {t} ; return t", "cycle");
  expect_conv_error(L, "local t = {}; for i = 1, 70 do t = {t} end; return t", "deeper than 64");
  expect_conv_error(L, "return {[true] = 1}", "table key of type boolean");
  expect_conv_error(L, "return {[1.5] = 1}", "table key of type number");
  expect_conv_error(L, "return {[1] = 'a', ['1'] = 'b', [5] = 1}", "both");
  expect_conv_error(L, "return {s = 'a\\0b'}", "NUL");
  /* light userdata */
  lua_newtable(L);
  lua_pushlightuserdata(L, &err);
  lua_setfield(L, -2, "ptr");
  ck_assert_int_ne(pf_lua_to_value(L, -1, &v, &err), PF_OK);
  pf_assert_err(err, "ptr");
  pf_assert_err(err, "userdata");
  lua_close(L);
}
END_TEST

START_TEST(test_module_table) {
  lua_State *L = new_state();
  eval(L, "assert(pf.version == '" PF_VERSION "')\n"
          "local names = {}\n"
          "for _, o in ipairs(pf.ops()) do\n"
          "  assert(type(o.name) == 'string' and type(o.summary) == 'string')\n"
          "  names[o.name] = true\n"
          "  assert(type(pf[o.name:gsub('-', '_')]) == 'function', o.name)\n"
          "end\n"
          "assert(names.load and names.prune_width and names.prune_depth and names.save)\n"
          "assert(pf.prune_width ~= nil)\n"
          "return #pf.ops()");
  ck_assert_int_eq((int)lua_tointeger(L, -1), (int)pf_op_count());
  /* non-table argument */
  ck_assert_int_ne(luaL_dostring(L, "pf.load('x')"), LUA_OK);
  ck_assert_ptr_nonnull(strstr(lua_tostring(L, -1), "pf.load: expected a table of parameters"));
  lua_close(L);
}
END_TEST

START_TEST(test_model_userdata) {
  lua_State *L = new_state();
  eval(L, "local m = pf.load{ path = 'synthetic:llama-tiny' }\n"
          "assert(m.num_hidden_layers == 4, 'layers ' .. tostring(m.num_hidden_layers))\n"
          "assert(m.hidden_size == 64)\n"
          "assert(#m.intermediate_sizes == 4 and m.intermediate_sizes[1] == 176)\n"
          "assert(m.parameters > 0 and m.dtype == 'F32')\n"
          "assert(tostring(m):find('pf.model', 1, true))\n"
          "assert(m.no_such_field == nil)\n"
          "m:close(); m:close()\n"
          "getmetatable(m).__gc(m); getmetatable(m).__close(m)\n"
          "assert(tostring(m) == 'pf.model (closed)')\n"
          "local ok, e = pcall(function() return m.hidden_size end)\n"
          "assert(not ok and e:find('pf.model: model is closed', 1, true), e)\n"
          "ok, e = pcall(pf.prune_width, { model = m, pruning_percentage = 10 })\n"
          "assert(not ok and e:find('model is closed', 1, true), e)\n"
          "return m");
  /* the C side sees a closed model as an error too */
  pf_value *v = NULL;
  pf_err err = {0};
  ck_assert_int_ne(pf_lua_to_value(L, -1, &v, &err), PF_OK);
  pf_assert_err(err, "model is closed");
  lua_close(L);
}
END_TEST

START_TEST(test_model_values_in_c) {
  /* a model pushed from C and read back is the same model, retained */
  lua_State *L = new_state();
  pf_value *params = pf_value_map(), *out = NULL;
  pf_map_set(params, "path", pf_value_str("synthetic:llama-tiny"));
  pf_err err = {0};
  ck_assert_msg(pf_op_run("load", params, &out, NULL, &err) == PF_OK, "%s", err.msg);
  pf_value_release(params);
  pf_model *m = pf_map_model(out, "model");
  ck_assert_ptr_nonnull(m);
  int before = m->refcount;
  pf_lua_push_value(L, out);
  lua_getfield(L, -1, "model");
  ck_assert_ptr_eq(pf_lua_check_model(L, -1), m);
  ck_assert_int_eq(m->refcount, before + 1);
  pf_value *back = NULL;
  ck_assert_int_eq(pf_lua_to_value(L, -2, &back, &err), PF_OK);
  ck_assert_ptr_eq(pf_map_model(back, "model"), m);
  pf_value_release(back);
  pf_value_release(out);
  lua_close(L); /* __gc releases the userdata's reference */
}
END_TEST

START_TEST(test_script_prune) {
  char *dir = pf_test_tmpdir("lua-script");
  char *script = lua_test_script(
      dir, "local spec = arg[1]\n"
           "assert(arg[0]:find('script.lua', 1, true))\n"
           "assert(select('#', ...) == 2 and select(2, ...) == 'extra')\n"
           "local base <close> = pf.load{ path = spec }\n"
           "local kept\n"
           "do\n"
           "  local narrow <close>, stats = pf.prune_width{ model = base, method = 'MAW',\n"
           "                                             pruning_percentage = 20 }\n"
           "  assert(type(stats) == 'table' and stats.op == 'prune_width')\n"
           "  assert(narrow.intermediate_sizes[1] < base.intermediate_sizes[1])\n"
           "  local shallow <close> = pf.prune_depth{ model = narrow, num_layers_to_remove = 1 }\n"
           "  assert(shallow.num_hidden_layers == base.num_hidden_layers - 1)\n"
           "  assert(shallow.intermediate_sizes[1] == narrow.intermediate_sizes[1])\n"
           "  kept = shallow\n"
           "end\n"
           "-- <close> closed it at the end of the block\n"
           "local ok, e = pcall(function() return kept.num_hidden_layers end)\n"
           "assert(not ok and e:find('model is closed', 1, true))\n"
           "assert(base.num_hidden_layers == 4) -- the base model is untouched\n");
  char *args[] = {"synthetic:llama-tiny", "extra"};
  pf_err err = {0};
  pf_status st = pf_lua_run_file(script, 2, args, NULL, &err);
  ck_assert_msg(st == PF_OK, "script failed: %s", err.msg);
  free(script);
  pf_test_rmtree(dir);
  free(dir);
}
END_TEST

/* A sweep that saves each child to one path and loads it again, dropping the loaded
 * model without closing it: the save collects what only Lua still held (before: the
 * second save refused the folder, "a model loaded from ... is still in use"). A model
 * the script still holds keeps the folder refused. */
START_TEST(test_script_save_reload_loop) {
  char *dir = pf_test_tmpdir("lua-reload");
  char script_text[8192];
  snprintf(script_text, sizeof script_text,
           "local base <close> = pf.load{ path = 'synthetic:llama-tiny' }\n"
           "local out = '%s/current'\n"
           "for _, pct in ipairs{10, 20, 30} do\n"
           "  local m = pf.prune_width{ model = base, pruning_percentage = pct }\n"
           "  pf.save{ model = m, path = out, overwrite = true }\n"
           "  local r = pf.load{ path = out }\n"
           "  assert(r.intermediate_sizes[1] == m.intermediate_sizes[1])\n"
           "end\n"
           "local held = pf.load{ path = out }\n"
           "local ok, e = pcall(pf.save, { model = base, path = out, overwrite = true })\n"
           "assert(not ok and e:find('is still in use', 1, true), e)\n"
           "print(held)\n",
           dir);
  lua_test_run_ok(dir, script_text);
  pf_test_rmtree(dir);
  free(dir);
}
END_TEST

START_TEST(test_script_bad_param) {
  char *dir = pf_test_tmpdir("lua-bad");
  char *script = lua_test_script(dir, "local m <close> = pf.load{ path = 'synthetic:llama-tiny' }\n"
                                      "local function go()\n"
                                      "  return pf.prune_width{ model = m, bogus_knob = 3 }\n"
                                      "end\n"
                                      "go()\n");
  pf_err err = {0};
  ck_assert_int_eq(pf_lua_run_file(script, 0, NULL, NULL, &err), PF_ERR_INVALID);
  pf_assert_err(err, "script.lua:3: pf.prune_width: ");
  pf_assert_err(err, "bogus_knob");
  pf_assert_err(err, "stack traceback");
  pf_assert_err(err, "in function 'pf.prune_width'");
  pf_assert_err(err, "in local 'go'");
  ck_assert_ptr_null(strstr(err.msg, "prune_width: prune_width:")); /* no doubled prefix */

  /* a non-convertible parameter releases everything and names the key */
  pf_test_write(script, "pf.prune_width{ model = 1, method = function() end }\n");
  ck_assert_int_eq(pf_lua_run_file(script, 0, NULL, NULL, &err), PF_ERR_INVALID);
  pf_assert_err(err, "pf.prune_width: method: cannot convert a function");

  /* an empty table where a dict is expected is the empty dict (Lua's {} is both) */
  const char *empty[][2] = {
      {"local r <close> = pf.prune_width{ model = m, fairness_scores = {} }\nerror('ran')\n",
       "script.lua:3: ran"},
      {"pf.fairness_scores{ model = m, bias_scores = {} }\n",
       "pf.fairness_scores: bias_scores dictionary is empty"},
      {"pf.zero_neurons{ model = m, neuron_indices = {} }\n",
       "pf.zero_neurons: neuron_indices cannot be empty"}};
  for (int i = 0; i < 3; i++) {
    char text[512];
    snprintf(text, sizeof text, "local m <close> = pf.load{ path = 'synthetic:llama-tiny' }\n%s",
             empty[i][0]);
    pf_test_write(script, text);
    ck_assert_int_eq(pf_lua_run_file(script, 0, NULL, NULL, &err), PF_ERR_INVALID);
    pf_assert_err(err, empty[i][1]);
  }

  /* error objects that are not strings */
  pf_test_write(script, "error({})\n");
  ck_assert_int_eq(pf_lua_run_file(script, 0, NULL, NULL, &err), PF_ERR_INVALID);
  pf_assert_err(err, "error object is a table value");

  /* syntax error and missing file */
  pf_test_write(script, "local x = = 1\n");
  ck_assert_int_eq(pf_lua_run_file(script, 0, NULL, NULL, &err), PF_ERR_FORMAT);
  pf_assert_err(err, "script.lua:1:");
  ck_assert_ptr_null(strstr(err.msg, "traceback"));
  ck_assert_int_eq(pf_lua_run_file("/nonexistent/x.lua", 0, NULL, NULL, &err), PF_ERR_NOT_FOUND);
  pf_assert_err(err, "/nonexistent/x.lua: cannot open: No such file or directory");
  ck_assert_int_eq(pf_lua_run_file(dir, 0, NULL, NULL, &err), PF_ERR_IO);
  pf_assert_err(err, "expected a regular file, found a folder");

  /* a shebang line is skipped and line numbers stay right; a UTF-8 BOM too */
  pf_test_write(script, "#!/usr/bin/env pfrun\n\nerror('here')\n");
  ck_assert_int_eq(pf_lua_run_file(script, 0, NULL, NULL, &err), PF_ERR_INVALID);
  pf_assert_err(err, "script.lua:3: here");
  pf_test_write(script, "\xEF\xBB\xBFlocal x = 1\nerror('bom ' .. x)\n");
  ck_assert_int_eq(pf_lua_run_file(script, 0, NULL, NULL, &err), PF_ERR_INVALID);
  pf_assert_err(err, "script.lua:2: bom 1");

  /* interrupted host */
  volatile int stop = 1;
  pf_ctx ctx = {.interrupt = &stop};
  pf_test_write(script, "error('stopped')\n");
  ck_assert_int_eq(pf_lua_run_file(script, 0, NULL, &ctx, &err), PF_ERR_INTERRUPTED);
  free(script);
  pf_test_rmtree(dir);
  free(dir);
}
END_TEST

/* A parameter table with a metatable: the op reads each of its parameters through
 * __index (before, only the raw keys were read and the op silently ran its defaults:
 * MAW 10 % instead of the inherited VOW 30 %); nested tables with __index, __pairs or
 * __len are refused by name instead of being read as empty. */
START_TEST(test_script_param_metatables) {
  lua_test_script_ok(
      "lua-meta",
      "local m <close> = pf.load{ path = 'synthetic:llama-tiny' }\n"
      "local function red(p) return select(2, pf.prune_width(p)).percentage_reduction end\n"
      "local want = red{ model = m, method = 'VOW', pruning_percentage = 30 }\n"
      "assert(want ~= red{ model = m }, 'the defaults differ')\n"
      "local defaults = { method = 'VOW', pruning_percentage = 30 }\n"
      "assert(red(setmetatable({ model = m }, { __index = defaults })) == want)\n"
      "local real = { model = m, method = 'VOW', pruning_percentage = 30 }\n"
      "local proxy = setmetatable({}, { __index = function(_, k) return real[k] end,\n"
      "  __newindex = function() error('read-only') end, __pairs = function() return next, real "
      "end })\n"
      "assert(red(proxy) == want)\n"
      "-- unknown keys among the table's own keys are still reported\n"
      "local ok, e = pcall(pf.prune_width, setmetatable({ model = m, bogus = 1 }, { __index = "
      "defaults }))\n"
      "assert(not ok and e:find(\"unknown parameter 'bogus'\", 1, true), e)\n"
      "-- nested proxies are refused, not read as empty\n"
      "local list = setmetatable({}, { __index = function(_, i) if i <= 1 then return 0 end end,\n"
      "  __len = function() return 1 end })\n"
      "ok, e = pcall(pf.prune_heads, { model = m, head_indices = list })\n"
      "assert(not ok and e:find('head_indices: expected a plain table, got a table whose '\n"
      "  .. 'metatable has __index', 1, true), e)\n"
      "ok, e = pcall(pf.zero_neurons, { model = m, neuron_indices = setmetatable({}, { __pairs =\n"
      "  function() return next, { ['0'] = { 1 } } end }) })\n"
      "assert(not ok and e:find('neuron_indices: expected a plain table, got a table whose '\n"
      "  .. 'metatable has __pairs', 1, true), e)\n"
      "-- a metatable without those events changes nothing\n"
      "assert(red(setmetatable({ model = m, method = 'VOW', pruning_percentage = 30 },\n"
      "  { __tostring = function() return 'p' end })) == want)\n");
}
END_TEST

/* Tables with a metatable that are not proxies work (before: refused): a class
 * instance (Penlight's List{0, 1}) whose content is its own keys and whose __index is
 * a methods table, nested; a "strict" parameter table whose __index raises on unknown
 * keys (before: every parameter was read through __index, so it raised). A proxy is
 * still refused: no own keys behind __index/__pairs/__len, or a __len that disagrees
 * with the raw length. */
START_TEST(test_script_param_classes) {
  lua_test_script_ok(
      "lua-classes",
      "local m <close> = pf.load{ path = 'synthetic:llama-tiny' }\n"
      "local List = {} List.__index = List\n"
      "function List.new(t) return setmetatable(t, List) end\n"
      "function List:append(x) self[#self + 1] = x return self end\n"
      "local function layers(p) return select(2, pf.prune_depth(p)) end\n"
      "local want = layers{ model = m, layer_selection_method = 'custom', layer_indices = "
      "{0, 1} }\n"
      "local got = layers{ model = m, layer_selection_method = 'custom',\n"
      "  layer_indices = List.new{0}:append(1) }\n"
      "assert(got.layers_removed == want.layers_removed and "
      "got.layers_removed == 2,\n"
      "  tostring(got.layers_removed))\n"
      "local strict = setmetatable({ model = m, layer_selection_method = 'custom',\n"
      "  layer_indices = {0, 1} }, { __index = function(_, k) error('strict: no key ' .. k) "
      "end })\n"
      "assert(layers(strict).layers_removed == 2)\n"
      "local function red(p) return select(2, pf.prune_width(p)).percentage_reduction end\n"
      "local base = { model = m, method = 'VOW', pruning_percentage = 30 }\n"
      "assert(red(setmetatable(base, { __index = function(_, k) error('no ' .. k) end }))\n"
      "  == red{ model = m, method = 'VOW', pruning_percentage = 30 })\n"
      "local ok, e = pcall(pf.prune_depth, { model = m, layer_selection_method = 'custom',\n"
      "  layer_indices = setmetatable({0}, { __len = function() return 3 end }) })\n"
      "assert(not ok and e:find('layer_indices: expected a plain table, got a table whose '\n"
      "  .. 'metatable has __len', 1, true), e)\n");
}
END_TEST

/* A map by layer with integer keys 1..n is a Lua list: the error says so and how to
 * write it (before: "got list" alone, or "item 0: expected a unit index (an
 * integer), got list" for head_indices); string keys and a [0] key make maps. */
START_TEST(test_script_layer_map_keys) {
  lua_test_script_ok(
      "lua-layermap",
      "local m <close> = pf.load{ path = 'synthetic:llama-tiny' }\n"
      "local hint = 'a Lua table with keys 1..n is a list: give the layers as string keys, '\n"
      "  .. '{[\"1\"] = {...}}'\n"
      "local ok, e = pcall(pf.zero_neurons, { model = m, neuron_indices = { [1] = {1} } })\n"
      "assert(not ok and e:find('neuron_indices must be Dict[int, List[int]]', 1, true)\n"
      "  and e:find(hint, 1, true), e)\n"
      "ok, e = pcall(pf.prune_heads, { model = m, head_indices = { [1] = {0}, [2] = {0},\n"
      "  [3] = {0} } })\n"
      "assert(not ok and e:find('head_indices: item 0: expected a unit index (an integer), '\n"
      "  .. 'got list (' .. hint, 1, true), e)\n"
      "ok, e = pcall(pf.prune_width, { model = m, fairness_scores = { [1] = {0.5} } })\n"
      "assert(not ok and e:find(hint, 1, true), e)\n"
      "-- a list of units and other list errors keep their words\n"
      "ok, e = pcall(pf.prune_heads, { model = m, head_indices = { 0, 'x' } })\n"
      "assert(not ok and not e:find(hint, 1, true), e)\n"
      "-- string keys, or a [0] key, make maps\n"
      "assert(pf.zero_neurons{ model = m, neuron_indices = { ['1'] = {1} } })\n"
      "assert(pf.zero_neurons{ model = m, neuron_indices = { [0] = {1}, [1] = {1} } })\n"
      "assert(pf.prune_heads{ model = m, head_indices = { ['0'] = {0}, ['1'] = {0}, ['2'] = {0},\n"
      "  ['3'] = {0} } })\n");
}
END_TEST

/* require finds a module next to the script whatever the current folder (before:
 * only when run from the script's folder, "module 'helper' not found"); arg[-1] is
 * the host program, as in lua.c. */
START_TEST(test_script_require_next_to_it) {
  char *dir = pf_test_tmpdir("lua-require");
  char *mod = pf_path_join(dir, "helper_pf_test.lua"), *sub = pf_path_join(dir, "pkgdir");
  char *init = pf_path_join(sub, "init.lua");
  pf_test_write(mod, "return { answer = 42 }\n");
  pf_err err = {0};
  ck_assert_int_eq(pf_mkdirs(sub, &err), PF_OK);
  pf_test_write(init, "return 'init'\n");
  char *script = lua_test_script(dir, "assert(require('helper_pf_test').answer == 42)\n"
                                      "assert(require('pkgdir') == 'init')\n"
                                      "assert(arg[-1] == 'the-host', tostring(arg[-1]))\n");
  char cwd[4096];
  ck_assert_ptr_nonnull(getcwd(cwd, sizeof cwd));
  ck_assert_str_ne(cwd, dir);
  pf_lua_interpreter = "the-host";
  pf_status st = pf_lua_run_file(script, 0, NULL, NULL, &err);
  pf_lua_interpreter = NULL;
  ck_assert_msg(st == PF_OK, "script failed: %s", err.msg);
  free(script);
  free(init);
  free(sub);
  free(mod);
  pf_test_rmtree(dir);
  free(dir);
}
END_TEST

START_TEST(test_script_error_status) {
  char *dir = pf_test_tmpdir("lua-status");
  char *bad = pf_path_join(dir, "bad"), *cfg = pf_path_join(bad, "config.json");
  pf_err err = {0};
  ck_assert_int_eq(pf_mkdirs(bad, &err), PF_OK);
  pf_test_write(cfg, "{\"hidden_size\": 64,");
  char text[8192];
  snprintf(text, sizeof text, "pf.load{ path = '%s/none' }\n", dir);
  char *script = lua_test_script(dir, text);
  ck_assert_int_eq(pf_lua_run_file(script, 0, NULL, NULL, &err), PF_ERR_NOT_FOUND);
  pf_assert_err(err, "script.lua:1: pf.load: ");
  pf_assert_err(err, "stack traceback");
  snprintf(text, sizeof text, "pf.load{ path = '%s' }\n", bad);
  pf_test_write(script, text);
  ck_assert_int_eq(pf_lua_run_file(script, 0, NULL, NULL, &err), PF_ERR_FORMAT);
  pf_assert_err(err, "invalid JSON");
  /* re-raised unchanged: still the op's error; caught and replaced: the script's */
  snprintf(text, sizeof text,
           "local ok, e = pcall(pf.load, { path = '%s' })\n"
           "assert(not ok)\n"
           "error(e, 0)\n",
           bad);
  pf_test_write(script, text);
  ck_assert_int_eq(pf_lua_run_file(script, 0, NULL, NULL, &err), PF_ERR_FORMAT);
  snprintf(text, sizeof text,
           "local ok, e = pcall(pf.load, { path = '%s' })\n"
           "error('gave up: ' .. e)\n",
           bad);
  pf_test_write(script, text);
  ck_assert_int_eq(pf_lua_run_file(script, 0, NULL, NULL, &err), PF_ERR_INVALID);
  pf_assert_err(err, "gave up: ");
  /* called through pcall or xpcall directly, the error still names the script's line
   * (before: "pf.load: missing required parameter ..." without one: level 1 was pcall) */
  pf_test_write(script, "local ok, e = pcall(pf.load, {})\n"
                        "assert(e:find('^[^:]*script.lua:1: pf.load: missing required'), e)\n"
                        "ok, e = xpcall(pf.load, debug.traceback, 'x')\n"
                        "assert(e:find('^[^:]*script.lua:3: pf.load: expected a table'), e)\n"
                        "local function f() return pcall(pf.load, { path = 1 }) end\n"
                        "ok, e = f()\n"
                        "assert(e:find('^[^:]*script.lua:5: pf.load: '), e)\n");
  ck_assert_msg(pf_lua_run_file(script, 0, NULL, NULL, &err) == PF_OK, "%s", err.msg);
  /* a parameter error is an invalid argument */
  pf_test_write(script, "pf.load{ path = 'x', bogus = 1 }\n");
  ck_assert_int_eq(pf_lua_run_file(script, 0, NULL, NULL, &err), PF_ERR_INVALID);

  /* the mapping itself, for hosts with their own lua_pcall */
  lua_State *L = new_state();
  snprintf(text, sizeof text, "return pcall(pf.load, { path = '%s/none' })", dir);
  ck_assert_int_eq(luaL_dostring(L, text), LUA_OK);
  ck_assert(!lua_toboolean(L, -2));
  ck_assert_int_eq(pf_lua_error_status(L, -1), PF_ERR_NOT_FOUND);
  lua_settop(L, 0);
  ck_assert_int_eq(luaL_dostring(L, "return pcall(error, 'pf.load: not from an op', 0)"), LUA_OK);
  ck_assert_int_eq(pf_lua_error_status(L, -1), PF_ERR_INVALID);
  lua_pushinteger(L, 4);
  ck_assert_int_eq(pf_lua_error_status(L, -1), PF_ERR_INVALID);
  lua_close(L);
  pf_test_rmtree(dir);
  free(script);
  free(cfg);
  free(bad);
  free(dir);
}
END_TEST

START_TEST(test_script_models_left_open) {
  /* models never closed by the script are released by lua_close */
  char *dir = pf_test_tmpdir("lua-open");
  char *script =
      lua_test_script(dir, "m1 = pf.load{ path = 'synthetic:llama-tiny' }\n"
                           "m2 = pf.prune_depth{ model = m1, num_layers_to_remove = 2 }\n"
                           "t = { a = m1, b = { m2 } }\n");
  pf_err err = {0};
  ck_assert_msg(pf_lua_run_file(script, 0, NULL, NULL, &err) == PF_OK, "%s", err.msg);
  free(script);
  pf_test_rmtree(dir);
  free(dir);
}
END_TEST

/* An op called from a finaliser: for garbage, before the end (the op runs); for an
 * object still referenced when the script ends, it is refused (a model made while
 * lua_close runs the finalisers would never be released). No model stays alive. */
START_TEST(test_ops_in_finalisers) {
  char *dir = pf_test_tmpdir("lua-gc-op");
  char *model = pf_test_synth("llama-tiny", 5, NULL);
  char text[2048];
  snprintf(text, sizeof text,
           "local m = pf.load{ path = '%s' }\n"
           "setmetatable({}, { __gc = function() ran = pf.prune_width{ model = m } end })\n"
           "collectgarbage(); collectgarbage()\n"
           "assert(ran, 'the finaliser of garbage runs ops')\n"
           "G = setmetatable({}, { __gc = function()\n"
           "  local ok, e = pcall(pf.prune_width, { model = m })\n"
           "  assert(not ok and e:find('called while the script ends', 1, true))\n"
           "end })\n",
           model);
  char *script = lua_test_script(dir, text);
  pf_err err = {0};
  ck_assert_msg(pf_lua_run_file(script, 0, NULL, NULL, &err) == PF_OK, "%s", err.msg);
  char *left = pf_model_dir_in_use(model, NULL);
  ck_assert_msg(left == NULL, "a model of %s is still alive", left);
  free(script);
  *strrchr(model, '/') = '\0';
  pf_test_rmtree(model);
  free(model);
  pf_test_rmtree(dir);
  free(dir);
}
END_TEST

/* A result the script dropped lets its tensors go before the next op makes new
 * ones (a full collection once Lua holds more than pf_lua_gc_bytes of tensors):
 * a loop of captures holds one at a time, not as many as the collector left. */
START_TEST(test_dropped_results_collected) {
  char *dir = pf_test_tmpdir("lua-gc");
  char *script = lua_test_script(dir, "local m <close> = pf.load{ path = 'synthetic:llama-tiny' }\n"
                                      "for i = 1, 3 do\n"
                                      "  local r = pf.bias_activations{ model = m,\n"
                                      "    prompt_pairs = { { 'a b', 'a c' } } }\n"
                                      "end\n");
  const size_t saved = pf_lua_gc_bytes;
  pf_lua_gc_bytes = 1;
  live_log l = {.prefix = "bias_activations: done"}; /* alive when each call ends */
  pf_ctx ctx = {.log = live_log_line, .user_data = &l};
  pf_err err = {0};
  const uint64_t before = pf_bias_capture_heap_bytes();
  ck_assert_msg(pf_lua_run_file(script, 0, NULL, &ctx, &err) == PF_OK, "%s", err.msg);
  pf_lua_gc_bytes = saved;
  ck_assert_int_eq(l.n, 3);
  ck_assert_uint_gt(l.live[0], before);
  ck_assert_uint_eq(l.live[1], l.live[0]); /* the first capture went before the second */
  ck_assert_uint_eq(l.live[2], l.live[0]);
  free(script);
  pf_test_rmtree(dir);
  free(dir);
}
END_TEST

static Suite *make_suite(void) {
  Suite *s = suite_create("lua");
  TCase *tc = tcase_create("core");
  tcase_add_unchecked_fixture(tc, suite_setup, suite_teardown);
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_value_roundtrip);
  tcase_add_test(tc, test_lua_tables_to_values);
  tcase_add_test(tc, test_module_table);
  tcase_add_test(tc, test_model_userdata);
  tcase_add_test(tc, test_model_values_in_c);
  tcase_add_test(tc, test_script_prune);
  tcase_add_test(tc, test_script_bad_param);
  tcase_add_test(tc, test_script_save_reload_loop);
  tcase_add_test(tc, test_script_error_status);
  tcase_add_test(tc, test_script_param_metatables);
  tcase_add_test(tc, test_script_param_classes);
  tcase_add_test(tc, test_script_layer_map_keys);
  tcase_add_test(tc, test_script_require_next_to_it);
  tcase_add_test(tc, test_script_models_left_open);
  tcase_add_test(tc, test_dropped_results_collected);
  tcase_add_test(tc, test_ops_in_finalisers);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return pf_test_main(make_suite);
}
