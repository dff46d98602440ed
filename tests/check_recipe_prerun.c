/* check_recipe_prerun.c — recipes: what a run checks before its first step (a
 * save step's output folder), --set values, what a `when:` error says it found,
 * and where a step's run-time error points. Split from check_recipe.c, which
 * neared 800 lines; both use the fixture of helpers/recipefx.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

/* pf_ctx log callback: counts the "step N/M: ..." lines, one per step started. */
static void count_steps(void *ud, const char *line) {
  if (!strncmp(line, "step ", 5)) ++*(int *)ud;
}

/* run() with the steps counted. */
static pf_status run_counted(fx *f, int dry, const char *const *extra, size_t n_extra, int *steps,
                             pf_err *err) {
  const char *sets[8];
  char out_set[4200];
  snprintf(out_set, sizeof out_set, "out=%s", f->out);
  size_t n = 0;
  sets[n++] = out_set;
  for (size_t i = 0; i < n_extra && i < 7; i++)
    sets[n++] = extra[i];
  pf_recipe_opts o = {.sets = sets, .n_sets = n};
  *steps = 0;
  pf_ctx ctx = {.dry_run = dry, .log = count_steps, .user_data = steps};
  pf_value *res = NULL;
  pf_status st = pf_recipe_run(f->recipe, &o, &ctx, &res, err);
  pf_value_release(res);
  return st;
}

static const char *SAVE = "pfrun: 1\n"
                          "vars: {keep: true, ow: false}\n"
                          "output_dir: ${out}\n"
                          "steps:\n"
                          "  - {id: base, op: load, path: synthetic:llama-tiny}\n"
                          "  - {id: w, op: prune_width, model: base, pruning_percentage: 20}\n"
                          "  - op: save\n"
                          "    when: ${keep}\n"
                          "    model: w\n"
                          "    overwrite: ${ow}\n"
                          "    path: ${out}/ck\n";

/* A save step whose folder exists and is not empty (a re-run) fails before the
 * first step, as the dry run does, not after the steps before it did their work. */
START_TEST(test_save_target_before_first_step) {
  fx f = fx_new(SAVE);
  char ck[4200], file[4300], results[4300], want[4600];
  snprintf(ck, sizeof ck, "%s/ck", f.out);
  snprintf(file, sizeof file, "%s/config.json", ck);
  snprintf(results, sizeof results, "%s/results.json", f.out);
  pf_err err = {0};
  ck_assert_int_eq(pf_mkdirs(ck, &err), PF_OK);
  pf_test_write(file, "{}");
  snprintf(want, sizeof want,
           "recipe.yaml:11:5: step 3 (save): path '%s': expected a new or empty folder, found "
           "existing content (set overwrite: true to replace it)",
           ck);
  int steps = -1;
  for (int dry = 0; dry <= 1; dry++) {
    memset(&err, 0, sizeof err);
    ck_assert_int_eq(run_counted(&f, dry, NULL, 0, &steps, &err), PF_ERR_INVALID);
    pf_assert_err(err, want);
    ck_assert_msg(steps == 0, "%s run: %d steps ran before the save target was refused",
                  dry ? "dry" : "real", steps);
    ck_assert_msg(!pf_path_exists(results), "results.json written by a refused run");
  }
  /* a file at the path */
  pf_test_rmtree(ck);
  pf_test_write(ck, "a file");
  ck_assert_int_eq(run_counted(&f, 0, NULL, 0, &steps, &err), PF_ERR_INVALID);
  pf_assert_err(err, "step 3 (save): path '");
  pf_assert_err(err, "': expected a new or empty folder, found a file (set overwrite: true");
  ck_assert_int_eq(steps, 0);
  /* a save that does not run (when: false) is not checked */
  const char *skip[] = {"keep=false"};
  ck_assert_msg(run_counted(&f, 0, skip, 1, &steps, &err) == PF_OK, "%s", err.msg);
  ck_assert_int_eq(steps, 3);
  /* an empty folder is new enough; overwrite: true replaces a full one */
  pf_test_rmtree(ck);
  ck_assert_int_eq(pf_mkdirs(ck, &err), PF_OK);
  ck_assert_msg(run_counted(&f, 0, NULL, 0, &steps, &err) == PF_OK, "%s", err.msg);
  const char *ow[] = {"ow=true"};
  ck_assert_msg(run_counted(&f, 0, ow, 1, &steps, &err) == PF_OK, "%s", err.msg);
  ck_assert(pf_path_exists(file));
  fx_free(&f);
  /* two save steps to one path: the second would find the first's checkpoint; refused
   * before the first step unless it says overwrite (before: after the pruning) */
  fx g = fx_new("pfrun: 1\n"
                "vars: {ow: false}\n"
                "output_dir: ${out}\n"
                "steps:\n"
                "  - {id: base, op: load, path: synthetic:llama-tiny}\n"
                "  - {id: w, op: prune_width, model: base, pruning_percentage: 20}\n"
                "  - {op: save, model: w, path: '${out}/same'}\n"
                "  - {op: save, model: base, path: '${out}/./same', overwrite: '${ow}'}\n");
  ck_assert_int_eq(run_counted(&g, 0, NULL, 0, &steps, &err), PF_ERR_INVALID);
  pf_assert_err(err, "step 4 (save): path '");
  pf_assert_err(err, "/./same': step 3 saves there first, so this step would find the folder "
                     "not empty (set overwrite: true to replace it, or save elsewhere)");
  ck_assert_int_eq(steps, 0);
  const char *ow2[] = {"ow=true"};
  ck_assert_msg(run_counted(&g, 0, ow2, 1, &steps, &err) == PF_OK, "%s", err.msg);
  ck_assert_int_eq(steps, 4);
  fx_free(&g);
}
END_TEST

/* --set pct= (a shell's --set pct=$P with P unset) is refused: as a YAML scalar it
 * would be null, and the op would run its default without a word. */
START_TEST(test_empty_set_value) {
  fx f = fx_new("pfrun: 1\n"
                "vars: {pct: 20}\n"
                "output_dir: ${out}\n"
                "steps:\n"
                "  - {id: base, op: load, path: synthetic:llama-tiny}\n"
                "  - op: prune_width\n"
                "    model: base\n"
                "    pruning_percentage: ${pct}\n");
  pf_err err = {0};
  const char *empty[] = {"pct="};
  ck_assert_int_eq(run(&f, 0, empty, 1, NULL, &err), PF_ERR_INVALID);
  pf_assert_err(err, "recipe.yaml: --set 'pct=': no value for variable 'pct' (give a value, or "
                     "leave the option out to keep the recipe's; an empty string is --set "
                     "'pct=\"\"')");
  ck_assert_msg(!pf_path_exists(f.out), "the recipe ran");
  /* the empty string the message offers */
  const char *quoted[] = {"pct=\"\""};
  ck_assert_int_eq(run(&f, 0, quoted, 1, NULL, &err), PF_ERR_INVALID);
  pf_assert_err(err, "parameter 'pruning_percentage': expected number, got string \"\"");
  fx_free(&f);
}
END_TEST

/* when: that is not a boolean says what it got. */
START_TEST(test_when_says_what_it_got) {
  static const struct {
    const char *set, *got;
  } cases[] = {
      {"go=no", "got string 'no' (yes/no/on/off are strings in YAML 1.2: write true or false)"},
      {"go=off", "got string 'off' (yes/no/on/off are strings"},
      {"go=maybe", "got string 'maybe'"},
      {"go=0", "got 0"},
      {"go=1", "got 1"},
      {"go=0.5", "got 0.5"},
      {"go=\"\"", "got an empty string"},
      {"go=null", "got null (no value)"},
  };
  fx f = fx_new("pfrun: 1\n"
                "vars: {go: true}\n"
                "steps:\n"
                "  - op: load\n"
                "    when: ${go}\n"
                "    path: synthetic:llama-tiny\n");
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    pf_err err = {0};
    const char *set[] = {cases[i].set};
    char want[512];
    snprintf(want, sizeof want,
             "recipe.yaml:5:11: step 1 (load): when: expected true or false (e.g. when: ${var} "
             "with a boolean var), %s",
             cases[i].got);
    ck_assert_int_eq(run(&f, 1, set, 1, NULL, &err), PF_ERR_INVALID);
    pf_assert_err(err, want);
  }
  fx_free(&f);
}
END_TEST

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

/* The ops' own checks that need no model (a percentage out of range, an unknown
 * method, two ways of choosing layers, an evaluate with nothing to measure) fail
 * before the first step, with the words the step would have used, not after the
 * steps before it did their work; a step that does not run is not checked. */
START_TEST(test_op_checks_before_first_step) {
  static const struct {
    const char *step, *msg;
  } cases[] = {
      {"{op: prune_width, model: base, pruning_percentage: 150}",
       "step 3 (prune_width): pruning_percentage must be between 0 and 100, got 150"},
      {"{op: prune_width, model: base, method: XYZ}",
       "step 3 (prune_width): Invalid neuron selection method: XYZ"},
      {"{op: prune_width, model: base, pruning_percentage: 20, expansion_rate: 140}",
       "step 3 (prune_width): pruning_percentage and expansion_rate are mutually exclusive"},
      {"{op: prune_width, model: base, expansion_divisor: 48}",
       "step 3 (prune_width): expansion_divisor must be one of [32, 64, 128, 256] or None. Got: "
       "48"},
      {"{op: prune_width, model: base, reconstruct: true}",
       "step 3 (prune_width): reconstruct: true needs calibration text"},
      {"{op: prune_depth, model: base, num_layers_to_remove: 1, depth_pruning_percentage: 50}",
       "step 3 (prune_depth): Parameters num_layers_to_remove, layer_indices, and "
       "depth_pruning_percentage are mutually exclusive"},
      {"{op: prune_depth, model: base, depth_pruning_percentage: 100}",
       "step 3 (prune_depth): depth_pruning_percentage must be between 0 and 100"},
      {"{op: prune_depth, model: base, num_layers_to_remove: 1, layer_selection_method: middle}",
       "step 3 (prune_depth): layer_selection_method must be one of ['last', 'first', 'custom'], "
       "got middle"},
      {"{op: prune_depth, model: base, num_layers_to_remove: 1, importance: {'0': 1}, "
       "layer_selection_method: first}",
       "step 3 (prune_depth): importance cannot be combined with layer_selection_method"},
      {"{op: prune_heads, model: base}",
       "step 3 (prune_heads): attention-head pruning needs pruning_percentage, "
       "num_kv_heads_to_keep or head_indices"},
      {"{op: prune_heads, model: base, pruning_percentage: -5}",
       "step 3 (prune_heads): pruning_percentage must be between 0 and 100, got -5"},
      {"{op: evaluate, model: base}",
       "step 3 (evaluate): nothing to evaluate: give `data` (perplexity) and/or `prompt` (speed)"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    char yaml[1024];
    snprintf(yaml, sizeof yaml,
             "pfrun: 1\n"
             "output_dir: ${out}\n"
             "steps:\n"
             "  - {id: base, op: load, path: synthetic:llama-tiny}\n"
             "  - {op: prune_width, model: base, pruning_percentage: 20}\n"
             "  - %s\n",
             cases[i].step);
    fx f = fx_new(yaml);
    for (int dry = 0; dry <= 1; dry++) {
      pf_err err = {0};
      int steps = -1;
      ck_assert_int_eq(run_counted(&f, dry, NULL, 0, &steps, &err), PF_ERR_INVALID);
      pf_assert_err(err, cases[i].msg);
      ck_assert_msg(steps == 0, "%s: %d steps ran before the error", cases[i].step, steps);
    }
    fx_free(&f);
  }
  /* a step that does not run (when: false) is not checked */
  fx g = fx_new("pfrun: 1\n"
                "vars: {go: false}\n"
                "output_dir: ${out}\n"
                "steps:\n"
                "  - {id: base, op: load, path: synthetic:llama-tiny}\n"
                "  - op: prune_width\n"
                "    when: ${go}\n"
                "    model: base\n"
                "    pruning_percentage: 150\n");
  pf_err err = {0};
  int steps = -1;
  ck_assert_msg(run_counted(&g, 0, NULL, 0, &steps, &err) == PF_OK, "%s", err.msg);
  ck_assert_int_eq(steps, 2); /* the skipped step's line says so */
  fx_free(&g);
}
END_TEST

/* A run that stops at a step keeps what the steps before it wrote, and says so: a
 * re-run of the recipe would otherwise meet a full save folder it was not told of. */
START_TEST(test_failure_says_what_was_kept) {
  fx f = fx_new("pfrun: 1\n"
                "output_dir: ${out}\n"
                "steps:\n"
                "  - {id: base, op: load, path: synthetic:llama-tiny}\n"
                "  - {op: save, model: base, path: '${out}/ck'}\n"
                "  - {op: prune_width, model: base, pruning_percentage: 0.1}\n");
  pf_err err = {0};
  int steps = -1;
  ck_assert_int_eq(run_counted(&f, 0, NULL, 0, &steps, &err), PF_ERR_INVALID);
  pf_assert_err(err, "step 3 (prune_width): No effective pruning");
  char want[4400];
  snprintf(want, sizeof want,
           " [kept, complete: what step 2 (save) %s/ck wrote; a re-run needs overwrite: true for "
           "a save folder]",
           f.out);
  pf_assert_err(err, want);
  /* the finished steps' results are in results.json, marked as a failed run */
  char results[4300];
  snprintf(results, sizeof results, "%s/results.json", f.out);
  snprintf(want, sizeof want, " [the results of the 2 finished steps: %s]", results);
  pf_assert_err(err, want);
  char *text = pf_test_read(results, NULL);
  ck_assert_msg(text != NULL, "no results.json after the failed step");
  ck_assert_msg(strstr(text, "\"status\": \"failed\"") != NULL, "%s", text);
  ck_assert_msg(strstr(text, "\"failed_step\": {\n    \"index\": 3,") != NULL, "%s", text);
  ck_assert_msg(strstr(text, "No effective pruning") != NULL, "%s", text);
  ck_assert_msg(strstr(text, "\"op\": \"save\"") != NULL, "%s", text);
  /* steps 1 and 2 only: the failed one appears as failed_step, not among the steps */
  ck_assert_msg(strstr(text, "\"op\": \"prune_width\",\n      \"params\"") == NULL, "%s", text);
  free(text);
  /* a dry run wrote nothing and says nothing of the kind */
  pf_test_rmtree(f.out);
  ck_assert_int_eq(run_counted(&f, 1, NULL, 0, &steps, &err), PF_ERR_INVALID);
  ck_assert_msg(!strstr(err.msg, "[kept"), "%s", err.msg);
  ck_assert_msg(!strstr(err.msg, "finished step"), "%s", err.msg);
  ck_assert_msg(!pf_path_exists(results), "a dry run wrote results.json");
  /* files written by a step that is not a save (charts, metrics) are named too */
  fx h = fx_new("pfrun: 1\n"
                "output_dir: ${out}\n"
                "steps:\n"
                "  - {id: base, op: load, path: synthetic:llama-tiny}\n"
                "  - {op: plot, kind: importance, data: {importance: [0.1, 0.3, 0.2, 0.4]},\n"
                "     output_dir: '${out}/charts'}\n"
                "  - {op: prune_depth, model: base, num_layers_to_remove: 99}\n");
  ck_assert_int_eq(run_counted(&h, 0, NULL, 0, &steps, &err), PF_ERR_INVALID);
  snprintf(want, sizeof want, " [kept, complete: what step 2 (plot) 1 file in %s/charts wrote;",
           h.out);
  pf_assert_err(err, want);
  fx_free(&h);
  /* one finished step; then a failure at the first step, which leaves no results.json
   * (nothing finished: a previous run's file would stay) */
  fx g = fx_new("pfrun: 1\n"
                "vars: {from: synthetic:llama-tiny}\n"
                "output_dir: ${out}\n"
                "steps:\n"
                "  - {id: base, op: load, path: '${from}'}\n"
                "  - {op: prune_depth, model: base, num_layers_to_remove: 99}\n");
  ck_assert_int_eq(run_counted(&g, 0, NULL, 0, &steps, &err), PF_ERR_INVALID);
  snprintf(want, sizeof want, " [the results of the 1 finished step: %s/results.json]", g.out);
  pf_assert_err(err, want);
  snprintf(results, sizeof results, "%s/results.json", g.out);
  ck_assert_int_eq(unlink(results), 0);
  char from[4400];
  snprintf(from, sizeof from, "from=%s/none", g.out);
  const char *extra[] = {from};
  ck_assert_int_eq(run_counted(&g, 0, extra, 1, &steps, &err), PF_ERR_NOT_FOUND);
  ck_assert_msg(!strstr(err.msg, "finished step"), "%s", err.msg);
  ck_assert_msg(!pf_path_exists(results), "results.json written with no finished step");
  fx_free(&g);
  fx_free(&f);
}
END_TEST

static Suite *make_suite(void) {
  Suite *s = suite_create("recipe_prerun");
  TCase *tc = tcase_create("core");
  tcase_add_unchecked_fixture(tc, suite_setup, suite_teardown);
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_save_target_before_first_step);
  tcase_add_test(tc, test_empty_set_value);
  tcase_add_test(tc, test_when_says_what_it_got);
  tcase_add_test(tc, test_run_error_points_at_parameter);
  tcase_add_test(tc, test_op_checks_before_first_step);
  tcase_add_test(tc, test_failure_says_what_was_kept);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return pf_test_main(make_suite);
}
