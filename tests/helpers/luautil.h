/* luautil.h — running Lua script files in the Check suites (check_lua, check_lua_stop). */
#ifndef PF_TEST_LUAUTIL_H
#define PF_TEST_LUAUTIL_H

#include <stdlib.h>

#include "fsutil.h"
#include "pf_lua.h"
#include "testutil.h"

/* `text` written to DIR/script.lua; the path (malloc'd). */
static inline char *lua_test_script(const char *dir, const char *text) {
  char *path = pf_path_join(dir, "script.lua");
  ck_assert_ptr_nonnull(path);
  pf_test_write(path, text);
  return path;
}

/* Run `text` as a script in DIR; it must end without error. */
static inline void lua_test_run_ok(const char *dir, const char *text) {
  char *script = lua_test_script(dir, text);
  pf_err err = {0};
  pf_status st = pf_lua_run_file(script, 0, NULL, NULL, &err);
  ck_assert_msg(st == PF_OK, "script failed: %s", err.msg);
  free(script);
}

/* The same in a fresh folder, removed afterwards. */
static inline void lua_test_script_ok(const char *tag, const char *text) {
  char *dir = pf_test_tmpdir(tag);
  lua_test_run_ok(dir, text);
  pf_test_rmtree(dir);
  free(dir);
}

#endif
