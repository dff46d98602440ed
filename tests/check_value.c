/* check_value.c — pf_value: constructors, containers, copies and JSON.
 *
 * Expected JSON texts are written out by hand; the float spellings are those
 * of Python's repr()/json.dumps (25.0, 0.1, 1e-05, 1e+16, 13.029622571156315).
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "value.h"

START_TEST(test_constructors) {
  pf_value *v = pf_value_null();
  ck_assert_int_eq(v->type, PF_V_NULL);
  ck_assert_int_eq(v->refcount, 1);
  pf_value_release(v);
  v = pf_value_bool(7);
  ck_assert_int_eq(v->u.b, 1);
  pf_value_release(v);
  v = pf_value_int(-9007199254740993LL);
  ck_assert_int_eq(v->u.i, -9007199254740993LL);
  pf_value_release(v);
  v = pf_value_num(2.5);
  ck_assert(v->u.n == 2.5);
  pf_value_release(v);
  char buf[8] = "abc";
  v = pf_value_str(buf);
  buf[0] = 'x'; /* copied */
  ck_assert_str_eq(v->u.s, "abc");
  pf_value_retain(v);
  ck_assert_int_eq(v->refcount, 2);
  pf_value_release(v);
  pf_value_release(v);
  pf_value_release(NULL);
  ck_assert_ptr_null(pf_value_model(NULL));
  ck_assert_str_eq(pf_vtype_name(PF_V_MAP), "map");
  ck_assert_str_eq(pf_vtype_name(PF_V_NUM), "number");
}
END_TEST

START_TEST(test_map_order_replace) {
  pf_value *m = pf_value_map();
  ck_assert_int_eq(pf_map_set_int(m, "b", 1), PF_OK);
  ck_assert_int_eq(pf_map_set_str(m, "a", "x"), PF_OK);
  ck_assert_int_eq(pf_map_set_num(m, "c", 0.5), PF_OK);
  ck_assert_int_eq(pf_map_set_bool(m, "a", 1), PF_OK); /* replaced in place */
  ck_assert_uint_eq(m->u.map.len, 3);
  ck_assert_str_eq(m->u.map.keys[0], "b");
  ck_assert_str_eq(m->u.map.keys[1], "a");
  ck_assert_str_eq(m->u.map.keys[2], "c");
  ck_assert_int_eq(pf_map_get(m, "a")->type, PF_V_BOOL);
  ck_assert_ptr_null(pf_map_get(m, "zz"));
  ck_assert_int_eq(pf_map_int(m, "b", -1), 1);
  ck_assert_int_eq(pf_map_int(m, "zz", -1), -1);
  ck_assert(pf_map_num(m, "b", 0) == 1.0); /* ints read as numbers */
  ck_assert(pf_map_num(m, "c", 0) == 0.5);
  ck_assert_str_eq(pf_map_str(m, "b", "fallback"), "fallback");
  ck_assert_int_eq(pf_map_bool(m, "a", 0), 1);
  ck_assert_ptr_null(pf_map_model(m, "a"));
  pf_map_set(m, "n", pf_value_null());
  ck_assert_int_eq(pf_map_has(m, "n"), 0); /* null counts as absent */
  ck_assert_int_eq(pf_map_has(m, "b"), 1);
  ck_assert_int_eq(pf_map_del(m, "a"), 1);
  ck_assert_int_eq(pf_map_del(m, "a"), 0);
  ck_assert_str_eq(m->u.map.keys[1], "c");
  /* set on a non-map releases the value and fails */
  pf_value *l = pf_value_list();
  ck_assert_int_eq(pf_map_set(l, "k", pf_value_int(1)), PF_ERR_INVALID);
  ck_assert_int_eq(pf_list_push(m, pf_value_int(1)), PF_ERR_INVALID);
  for (int i = 0; i < 100; i++)
    ck_assert_int_eq(pf_list_push(l, pf_value_int(i)), PF_OK);
  ck_assert_uint_eq(l->u.list.len, 100);
  ck_assert_int_eq(l->u.list.items[99]->u.i, 99);
  pf_value_release(l);
  pf_value_release(m);
}
END_TEST

static pf_value *sample(void) {
  pf_value *m = pf_value_map(), *l = pf_value_list(), *inner = pf_value_map();
  pf_map_set_str(m, "name", "a \"quoted\"\n\ttext\\");
  pf_map_set_int(m, "count", 260032);
  pf_map_set_num(m, "pct", 12.552301255230125);
  pf_map_set_bool(m, "ok", 0);
  pf_map_set(m, "none", pf_value_null());
  pf_list_push(l, pf_value_int(-3));
  pf_list_push(l, pf_value_num(0.1));
  pf_list_push(l, pf_value_str(""));
  pf_map_set_num(inner, "x", 1e-05);
  pf_list_push(l, inner);
  pf_map_set(m, "list", l);
  pf_map_set(m, "empty", pf_value_list());
  return m;
}

static int values_equal(const pf_value *a, const pf_value *b) {
  if (a->type != b->type) return 0;
  switch (a->type) {
  case PF_V_NULL:
    return 1;
  case PF_V_BOOL:
    return a->u.b == b->u.b;
  case PF_V_INT:
    return a->u.i == b->u.i;
  case PF_V_NUM:
    return a->u.n == b->u.n;
  case PF_V_STR:
    return strcmp(a->u.s, b->u.s) == 0;
  case PF_V_MODEL:
    return a->u.model == b->u.model;
  case PF_V_TENSOR:
    return a->u.tensor == b->u.tensor;
  case PF_V_LIST:
    if (a->u.list.len != b->u.list.len) return 0;
    for (size_t i = 0; i < a->u.list.len; i++)
      if (!values_equal(a->u.list.items[i], b->u.list.items[i])) return 0;
    return 1;
  case PF_V_MAP:
    if (a->u.map.len != b->u.map.len) return 0;
    for (size_t i = 0; i < a->u.map.len; i++)
      if (strcmp(a->u.map.keys[i], b->u.map.keys[i]) ||
          !values_equal(a->u.map.vals[i], b->u.map.vals[i]))
        return 0;
    return 1;
  }
  return 0;
}

START_TEST(test_json_round_trip) {
  pf_value *v = sample();
  cJSON *j = pf_value_to_json(v);
  ck_assert_ptr_nonnull(j);
  pf_value *back = pf_value_from_json(j);
  ck_assert(values_equal(v, back));
  cJSON_Delete(j);
  /* through text as well */
  char *text = pf_value_to_json_text(v);
  cJSON *parsed = cJSON_Parse(text);
  pf_value *back2 = pf_value_from_json(parsed);
  ck_assert(values_equal(v, back2));
  /* a float with no fraction reads back as an int (cJSON cannot tell 5.0 from 5) */
  pf_value *five = pf_value_num(5.0);
  cJSON *jf = pf_value_to_json(five);
  pf_value *fb = pf_value_from_json(jf);
  ck_assert_int_eq(fb->type, PF_V_INT);
  ck_assert_int_eq(fb->u.i, 5);
  pf_value_release(fb);
  cJSON_Delete(jf);
  pf_value_release(five);
  free(text);
  cJSON_Delete(parsed);
  pf_value_release(back2);
  pf_value_release(back);
  pf_value_release(v);
}
END_TEST

START_TEST(test_json_text) {
  pf_value *m = pf_value_map(), *l = pf_value_list();
  pf_map_set_num(m, "a", 25.0);
  pf_map_set_int(m, "b", 3);
  pf_list_push(l, pf_value_num(0.1));
  pf_list_push(l, pf_value_num(1e16));
  pf_list_push(l, pf_value_num(-0.0001));
  pf_list_push(l, pf_value_num(13.029622571156315));
  pf_map_set(m, "c", l);
  pf_map_set(m, "d", pf_value_map());
  char *t = pf_value_to_json_text(m);
  ck_assert_str_eq(t, "{\n  \"a\": 25.0,\n  \"b\": 3,\n  \"c\": [\n    0.1,\n    1e+16,\n"
                      "    -0.0001,\n    13.029622571156315\n  ],\n  \"d\": {}\n}\n");
  free(t);
  char buf[48];
  const struct {
    double d;
    const char *s;
  } py[] = {{5, "5.0"},
            {12.5, "12.5"},
            {1e-05, "1e-05"},
            {1e15, "1000000000000000.0"},
            {123456789.125, "123456789.125"},
            {-0.0, "-0.0"},
            {614.4000000000001, "614.4000000000001"},
            {1.5e300, "1.5e+300"},
            {INFINITY, "inf"},
            {NAN, "nan"}};
  for (size_t i = 0; i < sizeof py / sizeof py[0]; i++) {
    pf_format_pyfloat(py[i].d, buf, sizeof buf);
    ck_assert_str_eq(buf, py[i].s);
  }
  pf_value_release(m);
}
END_TEST

START_TEST(test_non_finite_null) {
  pf_value *l = pf_value_list();
  pf_list_push(l, pf_value_num(NAN));
  pf_list_push(l, pf_value_num(INFINITY));
  pf_list_push(l, pf_value_num(-INFINITY));
  char *t = pf_value_to_json_text(l);
  ck_assert_str_eq(t, "[\n  null,\n  null,\n  null\n]\n");
  cJSON *j = pf_value_to_json(l);
  ck_assert(cJSON_IsNull(cJSON_GetArrayItem(j, 0)));
  ck_assert(cJSON_IsNull(cJSON_GetArrayItem(j, 2)));
  cJSON_Delete(j);
  free(t);
  pf_value_release(l);
}
END_TEST

START_TEST(test_copy) {
  pf_value *v = sample();
  pf_value *c = pf_value_copy(v);
  ck_assert(values_equal(v, c));
  ck_assert_ptr_ne(pf_map_get(v, "list"), pf_map_get(c, "list")); /* deep */
  pf_map_set_int(pf_map_get(c, "list"), "x", 1);                  /* no-op on a list */
  pf_list_push(pf_map_get(c, "list"), pf_value_int(9));
  ck_assert_uint_eq(pf_map_get(v, "list")->u.list.len, 4);
  ck_assert_uint_eq(pf_map_get(c, "list")->u.list.len, 5);
  ck_assert_ptr_null(pf_value_copy(NULL));
  pf_value_release(c);
  pf_value_release(v);
}
END_TEST

static Suite *value_suite(void) {
  Suite *s = suite_create("value");
  TCase *t = tcase_create("value");
  tcase_add_test(t, test_constructors);
  tcase_add_test(t, test_map_order_replace);
  tcase_add_test(t, test_json_round_trip);
  tcase_add_test(t, test_json_text);
  tcase_add_test(t, test_non_finite_null);
  tcase_add_test(t, test_copy);
  suite_add_tcase(s, t);
  return s;
}

int main(void) {
  return pf_test_main(value_suite);
}
