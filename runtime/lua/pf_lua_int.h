/* pf_lua_int.h — what pf_lua.c and pf_lua_conv.c share inside the Lua binding. */
#ifndef PF_LUA_INT_H
#define PF_LUA_INT_H

#include <lua.h>

#include "pf_lua.h"

#define MODEL_MT PF_LUA_MODEL_MT
#define TENSOR_MT PF_LUA_TENSOR_MT

/* The userdata behind a model and a tensor. */
typedef struct lmodel {
  pf_model *m; /* owned reference; NULL once closed */
} lmodel;

typedef struct ltensor {
  pf_tensor *t; /* owned reference; NULL once closed */
} ltensor;

/* pf_lua_to_value; force_map: an empty table is an empty map (an op's parameters), not a
 * list. */
pf_status pf_lua_to_value_as(lua_State *L, int idx, int force_map, pf_value **out, pf_err *err);

#endif
