/* check_registry.c — the op table, parameter validation and pf_op_run.
 *
 * Validation is tested on a local op whose spec has one parameter of every
 * type (pf_op_validate takes the op, so it needs no table row); the table,
 * aliases, timing and error prefixes are tested through pf_op_run.
 */
#include <stdlib.h>
#include <string.h>

#include "op.h"
#include "testutil.h"

static const pf_param_spec test_params[] = {
    {"req", PF_P_STR, 1, NULL, NULL, 0, 0, "required string"},
    {"flag", PF_P_BOOL, 0, "true", NULL, 0, 0, "a bool"},
    {"count", PF_P_INT, 0, "5", NULL, 1, 10, "an int in [1, 10]"},
    {"ratio", PF_P_NUM, 0, NULL, NULL, 0, 100, "a number in [0, 100]"},
    {"mode", PF_P_STR, 0, "fast", "fast|slow", 0, 0, "a choice"},
    {"div", PF_P_INT, 0, NULL, "32|64", 0, 0, "an int choice"},
    {"idx", PF_P_INTLIST, 0, NULL, NULL, 0, 7, "ints in [0, 7]"},
    {"model", PF_P_MODEL, 0, NULL, NULL, 0, 0, "a model"},
    {"any", PF_P_ANY, 0, NULL, NULL, 0, 0, "anything"},
};

static const pf_op test_op = {
    .name = "t", .params = test_params, .n_params = sizeof test_params / sizeof test_params[0]};

static pf_status validate(pf_value *params, pf_value **full, pf_err *err) {
  pf_status st = pf_op_validate(&test_op, params, full, err);
  pf_value_release(params);
  return st;
}

static pf_value *with_req(void) {
  pf_value *p = pf_value_map();
  pf_map_set_str(p, "req", "x");
  return p;
}

START_TEST(test_defaults_filled) {
  pf_value *full = NULL;
  pf_err err = {0};
  ck_assert_msg(validate(with_req(), &full, &err) == PF_OK, "%s", err.msg);
  ck_assert_uint_eq(full->u.map.len, sizeof test_params / sizeof test_params[0]);
  ck_assert_str_eq(pf_map_str(full, "req", ""), "x");
  ck_assert_int_eq(pf_map_get(full, "flag")->type, PF_V_BOOL);
  ck_assert_int_eq(pf_map_bool(full, "flag", 0), 1);
  ck_assert_int_eq(pf_map_get(full, "count")->type, PF_V_INT);
  ck_assert_int_eq(pf_map_int(full, "count", 0), 5);
  ck_assert_str_eq(pf_map_str(full, "mode", ""), "fast");
  ck_assert_int_eq(pf_map_get(full, "ratio")->type, PF_V_NULL); /* no default: null */
  ck_assert_int_eq(pf_map_get(full, "idx")->type, PF_V_NULL);
  pf_value_release(full);
}
END_TEST

START_TEST(test_coercions) {
  pf_value *p = with_req(), *full = NULL;
  pf_err err = {0};
  pf_map_set_int(p, "ratio", 20);     /* int for a number: kept an int (str() tells them apart) */
  pf_map_set_num(p, "count", 3.0);    /* integral number -> int */
  pf_map_set_str(p, "idx", "0, 2,5"); /* text list */
  pf_map_set_str(p, "flag", "false");
  pf_map_set_int(p, "div", 64);
  pf_map_set(p, "mode", pf_value_null()); /* explicit null = absent: default */
  pf_value *anyv = pf_value_list();
  pf_map_set(p, "any", anyv);
  ck_assert_msg(validate(p, &full, &err) == PF_OK, "%s", err.msg);
  ck_assert_int_eq(pf_map_get(full, "ratio")->type, PF_V_INT);
  ck_assert(pf_map_num(full, "ratio", 0) == 20.0);
  ck_assert(pf_map_is_int(full, "ratio"));
  ck_assert_int_eq(pf_map_get(full, "count")->type, PF_V_INT);
  const pf_value *idx = pf_map_get(full, "idx");
  ck_assert_uint_eq(idx->u.list.len, 3);
  ck_assert_int_eq(idx->u.list.items[2]->u.i, 5);
  ck_assert_int_eq(pf_map_bool(full, "flag", 1), 0);
  ck_assert_str_eq(pf_map_str(full, "mode", ""), "fast");
  ck_assert_ptr_eq(pf_map_get(full, "any"), anyv); /* passed through */
  pf_value_release(full);
  p = with_req();
  pf_map_set_int(p, "idx", 4); /* one int = one-element list */
  ck_assert_int_eq(validate(p, &full, &err), PF_OK);
  ck_assert_uint_eq(pf_map_get(full, "idx")->u.list.len, 1);
  pf_value_release(full);
}
END_TEST

/* Validate params built by `set` and expect an error containing `needle`. */
static void expect_error(const char *key, pf_value *val, const char *needle) {
  pf_value *p = with_req(), *full = (pf_value *)1;
  pf_err err = {0};
  pf_map_set(p, key, val);
  ck_assert_int_eq(validate(p, &full, &err), PF_ERR_INVALID);
  ck_assert_ptr_null(full);
  pf_assert_err(err, needle);
}

START_TEST(test_errors) {
  pf_value *full = NULL;
  pf_err err = {0};
  ck_assert_int_eq(validate(pf_value_map(), &full, &err), PF_ERR_INVALID);
  ck_assert_str_eq(err.msg, "missing required parameter 'req' (string)");
  pf_value *p = pf_value_map();
  pf_map_set(p, "req", pf_value_null());
  ck_assert_int_eq(validate(p, &full, &err), PF_ERR_INVALID);
  pf_assert_err(err, "missing required parameter 'req'");
  expect_error("bogus", pf_value_int(1), "unknown parameter 'bogus' (parameters: req, flag, count");
  expect_error("count", pf_value_str("many"),
               "parameter 'count': expected integer, got string \"many\"");
  expect_error("count", pf_value_num(2.5), "parameter 'count': expected integer, got 2.5");
  expect_error("flag", pf_value_int(1), "parameter 'flag': expected bool, got 1");
  expect_error("ratio", pf_value_list(), "parameter 'ratio': expected number, got list");
  expect_error("req", pf_value_map(), "parameter 'req': expected string, got map");
  expect_error("model", pf_value_str("m"), "parameter 'model': expected model, got string");
  expect_error("mode", pf_value_str("medium"),
               "parameter 'mode': expected one of fast|slow, got \"medium\"");
  expect_error("div", pf_value_int(16), "parameter 'div': expected one of 32|64, got 16");
  expect_error("count", pf_value_int(11), "parameter 'count': expected a value in [1, 10], got 11");
  expect_error("ratio", pf_value_num(-0.5), "parameter 'ratio': expected a value in [0, 100]");
  expect_error("idx", pf_value_str("1,x"), "parameter 'idx': expected comma-separated integers");
  pf_value *l = pf_value_list();
  pf_list_push(l, pf_value_int(0));
  pf_list_push(l, pf_value_str("5"));
  expect_error("idx", l, "parameter 'idx': element 1: expected an integer, got string \"5\"");
  l = pf_value_list();
  pf_list_push(l, pf_value_int(9));
  expect_error("idx", l, "parameter 'idx': expected a value in [0, 7], got 9");
  ck_assert_int_eq(validate(pf_value_list(), &full, &err), PF_ERR_INVALID);
  pf_assert_err(err, "parameters: expected a map, got list");
}
END_TEST

START_TEST(test_table) {
  ck_assert_uint_ge(pf_op_count(), 6);
  for (size_t i = 0; i < pf_op_count(); i++) {
    const pf_op *op = pf_op_at(i);
    ck_assert_ptr_nonnull(op->run);
    ck_assert_ptr_eq(pf_op_find(op->name), op);
    ck_assert_msg(op->summary && op->returns, "%s: summary and returns are required", op->name);
    for (size_t k = 0; k < op->n_params; k++)
      ck_assert_msg(op->params[k].help && *op->params[k].help, "%s.%s: no help", op->name,
                    op->params[k].name);
  }
  ck_assert_ptr_null(pf_op_at(pf_op_count()));
  ck_assert_ptr_eq(pf_op_find("prune-width"), &pf_op_prune_width);
  ck_assert_ptr_eq(pf_op_find("prune-depth"), &pf_op_prune_depth);
  ck_assert_ptr_null(pf_op_find("prune"));
  ck_assert_ptr_null(pf_op_find(NULL));
}
END_TEST

START_TEST(test_run_errors) {
  pf_value *out = (pf_value *)1;
  pf_err err = {0};
  ck_assert_int_eq(pf_op_run("frobnicate", NULL, &out, NULL, &err), PF_ERR_INVALID);
  ck_assert_ptr_null(out);
  pf_assert_err(err, "unknown op 'frobnicate' (ops: load, ");
  for (size_t i = 0; i < pf_op_count(); i++) /* the message lists every op */
    ck_assert_msg(strstr(err.msg, pf_op_at(i)->name), "%s missing from '%s'", pf_op_at(i)->name,
                  err.msg);
  pf_value *p = pf_value_map();
  pf_map_set_str(p, "paht", "x");
  ck_assert_int_eq(pf_op_run("load", p, &out, NULL, &err), PF_ERR_INVALID);
  ck_assert_str_eq(err.msg, "load: unknown parameter 'paht' (parameters: path)");
  pf_value_release(p);
  ck_assert_int_eq(pf_op_run("prune-width", NULL, &out, NULL, &err), PF_ERR_INVALID);
  ck_assert_str_eq(err.msg, "prune_width: missing required parameter 'model' (model)");
  p = pf_value_map();
  pf_map_set_str(p, "path", "/nonexistent/pfrun-model");
  ck_assert_int_ne(pf_op_run("load", p, &out, NULL, &err), PF_OK);
  ck_assert_msg(strncmp(err.msg, "load: ", 6) == 0, "%s", err.msg);
  pf_value_release(p);
}
END_TEST

static void count_log(void *ud, const char *line) {
  if (strstr(line, "load: done in")) (*(int *)ud)++;
}

START_TEST(test_run_ok_alias_seconds) {
  char *dir = pf_test_synth("llama-tiny", 3, NULL);
  pf_value *p = pf_value_map(), *out = NULL, *r2 = NULL;
  pf_map_set_str(p, "path", dir);
  int logged = 0;
  pf_ctx ctx = {.log = count_log, .user_data = &logged};
  pf_err err = {0};
  ck_assert_msg(pf_op_run("load", p, &out, &ctx, &err) == PF_OK, "%s", err.msg);
  ck_assert_int_eq(logged, 1);
  ck_assert_str_eq(out->u.map.keys[0], "op");
  ck_assert_str_eq(pf_map_str(out, "op", ""), "load");
  ck_assert_int_eq(pf_map_get(out, "seconds")->type, PF_V_NUM);
  ck_assert(pf_map_num(out, "seconds", -1) >= 0);
  ck_assert_ptr_nonnull(pf_map_model(out, "model"));
  pf_value *q = pf_value_map();
  pf_map_set(q, "model", pf_value_model(pf_map_model(out, "model")));
  pf_map_set_num(q, "pruning_percentage", 50);
  ck_assert_msg(pf_op_run("prune-width", q, &r2, NULL, &err) == PF_OK, "%s", err.msg);
  ck_assert_str_eq(pf_map_str(r2, "op", ""), "prune_width"); /* the canonical name */
  pf_value_release(r2);
  pf_value_release(q);
  q = pf_value_map(); /* a step result holding a model counts as the model */
  pf_map_set(q, "model", pf_value_copy(out));
  ck_assert_msg(pf_op_run("analyze", q, &r2, NULL, &err) == PF_OK, "%s", err.msg);
  ck_assert_int_eq(pf_map_int(r2, "num_layers", 0), 4);
  pf_value_release(r2);
  pf_value_release(q);
  q = pf_value_map();
  pf_map_set(q, "model", pf_value_map());
  ck_assert_int_eq(pf_op_run("analyze", q, &r2, NULL, &err), PF_ERR_INVALID);
  ck_assert_str_eq(err.msg, "analyze: parameter 'model': expected model, got map");
  pf_value_release(q);
  q = pf_value_map();
  pf_map_set(q, "model", pf_value_model(pf_map_model(out, "model")));
  pf_map_set_num(q, "pruning_percentage", 50);
  ck_assert_msg(pf_op_run("prune-width", q, &r2, NULL, &err) == PF_OK, "%s", err.msg);
  ck_assert(pf_map_has(r2, "seconds"));
  ck_assert(pf_map_has(r2, "percentage_reduction"));
  pf_value_release(r2);
  pf_value_release(q);
  pf_value_release(out);
  pf_value_release(p);
  char *slash = strrchr(dir, '/');
  *slash = '\0';
  pf_test_rmtree(dir);
  free(dir);
}
END_TEST

static Suite *registry_suite(void) {
  Suite *s = suite_create("registry");
  TCase *t = tcase_create("validate");
  tcase_add_test(t, test_defaults_filled);
  tcase_add_test(t, test_coercions);
  tcase_add_test(t, test_errors);
  suite_add_tcase(s, t);
  TCase *r = tcase_create("run");
  tcase_add_test(r, test_table);
  tcase_add_test(r, test_run_errors);
  tcase_add_test(r, test_run_ok_alias_seconds);
  suite_add_tcase(s, r);
  return s;
}

int main(void) {
  return pf_test_main(registry_suite);
}
