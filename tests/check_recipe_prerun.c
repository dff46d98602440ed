/* check_recipe_prerun.c — recipes: what a run checks before its first step (a
 * save step's output folder), --set values, what a `when:` error says it found,
 * and where a step's run-time error points. Split from check_recipe.c, which
 * neared 800 lines; both use the fixture of helpers/recipefx.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "recipe.h"
#include "recipefx.h"
#include "testutil.h"

static char *g_cache;

static void suite_setup(void) {
  g_cache = pf_test_tmpdir("recipe-cache");
  setenv("PFRUN_CACHE", g_cache, 1);
}

static void suite_teardown(void) {
  pf_test_rmtree(g_cache);
  free(g_cache);
  g_cache = NULL;
}

/* An op's own check that fails when the step runs points at the parameter it
 * names, as validation's do (pct=abc): not at the step. */
START_TEST(test_run_error_points_at_parameter) {
  fx f = fx_new("pfrun: 1\n"
                "vars: {pct: 20}\n"
                "output_dir: ${out}\n"
                "steps:\n"
                "  - {id: base, op: load, path: synthetic:llama-tiny}\n"
                "  - op: prune_width\n"
                "    model: base\n"
                "    pruning_percentage: ${pct}\n");
  static const struct {
    const char *set, *msg;
  } cases[] = {
      {"pct=1e400", "pruning_percentage must be between 0 and 100, got inf"},
      {"pct=150", "pruning_percentage must be between 0 and 100, got 150"},
      {"pct=abc", "parameter 'pruning_percentage': expected number, got string \"abc\""},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
    for (int dry = 0; dry <= 1; dry++) {
      pf_err err = {0};
      const char *set[] = {cases[i].set};
      char want[512];
      snprintf(want, sizeof want, "recipe.yaml:8:5: step 2 (prune_width): %s", cases[i].msg);
      ck_assert_int_eq(run(&f, dry, set, 1, NULL, &err), PF_ERR_INVALID);
      pf_assert_err(err, want);
    }
  fx_free(&f);
}
END_TEST

static Suite *make_suite(void) {
  Suite *s = suite_create("recipe_prerun");
  TCase *tc = tcase_create("core");
  tcase_add_unchecked_fixture(tc, suite_setup, suite_teardown);
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_run_error_points_at_parameter);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return pf_test_main(make_suite);
}
