/* check_strbuf.c — the growable text buffer. */
#include <stdlib.h>
#include <string.h>

#include "strbuf.h"
#include "testutil.h"

START_TEST(test_append_and_take) {
  pf_strbuf b = {0};
  pf_sb_str(&b, "a");
  pf_sb_put(&b, "bcd", 2);
  pf_sb_printf(&b, "-%d-%s", 42, "x");
  for (int i = 0; i < 1000; i++) pf_sb_str(&b, "0123456789");
  ck_assert_int_eq((int)b.len, 3 + 5 + 10000);
  char *t = pf_sb_take(&b);
  ck_assert_ptr_nonnull(t);
  ck_assert(strncmp(t, "abc-42-x0123", 12) == 0);
  ck_assert_int_eq((int)strlen(t), 10008);
  ck_assert_ptr_null(b.p);
  free(t);
  t = pf_sb_take(&b); /* empty buffer gives "" */
  ck_assert_str_eq(t, "");
  free(t);
}
END_TEST

START_TEST(test_json_string) {
  pf_strbuf b = {0};
  pf_sb_json_string(&b, "a\"b\\c\n\x01");
  ck_assert_str_eq(b.p, "\"a\\\"b\\\\c\\u000a\\u0001\"");
  pf_sb_free(&b);
}
END_TEST

static Suite *make_suite(void) {
  Suite *s = suite_create("strbuf");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, test_append_and_take);
  tcase_add_test(tc, test_json_string);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return pf_test_main(make_suite); }
