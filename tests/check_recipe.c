/* check_recipe.c — YAML recipes: the happy path, --set, ${var}, references,
 * validation before running, structural and YAML errors with file:line:col,
 * dry-run, and the size / depth / step / alias bounds. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "fsutil.h"
#include "kernels/kernels.h"
#include "livelog.h"
#include "recipe.h"
#include "recipe_int.h"
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

static const char *HAPPY = "pfrun: 1\n"
                           "name: happy\n"
                           "vars:\n"
                           "  model: synthetic:llama-tiny\n"
                           "  pct: 20\n"
                           "  ckpt: ${out}/checkpoint\n"
                           "output_dir: ${out}\n"
                           "steps:\n"
                           "  - id: base\n"
                           "    op: load\n"
                           "    path: ${model}\n"
                           "  - id: narrow\n"
                           "    op: prune-width\n"
                           "    model: base\n"
                           "    method: MAW\n"
                           "    pruning_percentage: ${pct}\n"
                           "    layer_indices: &layers [0, 1, 2, 3]\n"
                           "  - id: shallow\n"
                           "    op: prune_depth\n"
                           "    model: narrow\n"
                           "    num_layers_to_remove: 1\n"
                           "  - op: save\n"
                           "    model: shallow\n"
                           "    path: ${ckpt}\n";

/* vars given as alternatives take the first existing path or synthetic model */
START_TEST(test_var_alternatives) {
  fx f = fx_new("pfrun: 1\n"
                "vars:\n"
                "  model: [/nonexistent/model, synthetic:llama-tiny, /also/missing]\n"
                "output_dir: ${out}\n"
                "steps:\n"
                "  - op: load\n"
                "    path: ${model}\n");
  pf_err err = {0};
  pf_value *res = NULL;
  ck_assert_msg(run(&f, 0, NULL, 0, &res, &err) == PF_OK, "%s", err.msg);
  ck_assert_str_eq(pf_map_str(pf_map_get(res, "vars"), "model", ""), "synthetic:llama-tiny");
  pf_value_release(res);
  /* --set still wins over the alternatives */
  const char *set[] = {"model=synthetic:mistral-tiny"};
  ck_assert_msg(run(&f, 0, set, 1, &res, &err) == PF_OK, "%s", err.msg);
  ck_assert_str_eq(pf_map_str(pf_map_get(res, "vars"), "model", ""), "synthetic:mistral-tiny");
  pf_value_release(res);
  fx_free(&f);
}
END_TEST

START_TEST(test_happy_path) {
  fx f = fx_new(HAPPY);
  pf_err err = {0};
  pf_value *res = NULL;
  pf_status st = run(&f, 0, NULL, 0, &res, &err);
  ck_assert_msg(st == PF_OK, "recipe failed: %s", err.msg);
  ck_assert_str_eq(pf_map_str(res, "name", ""), "happy");
  ck_assert_str_eq(pf_map_str(res, "output_dir", ""), f.out);
  ck_assert_int_eq(pf_map_bool(res, "dry_run", 1), 0);
  const pf_value *steps = pf_map_get(res, "steps");
  ck_assert_uint_eq(steps->u.list.len, 4);
  const pf_value *s2 = steps->u.list.items[1];
  ck_assert_str_eq(pf_map_str(s2, "op", ""), "prune_width"); /* alias resolved */
  ck_assert_str_eq(pf_map_str(s2, "id", ""), "narrow");
  ck_assert_int_eq(pf_map_int(s2, "index", 0), 2);
  /* params keep the reference as written; ${pct} stays an int */
  const pf_value *p2 = pf_map_get(s2, "params");
  ck_assert_str_eq(pf_map_str(p2, "model", ""), "base");
  ck_assert_int_eq(pf_map_get(p2, "pruning_percentage")->type, PF_V_INT);
  pf_model *narrow = pf_map_model(pf_map_get(s2, "result"), "model");
  pf_model *shallow = pf_map_model(pf_map_get(steps->u.list.items[2], "result"), "model");
  ck_assert_ptr_nonnull(narrow);
  ck_assert_int_eq(shallow->n_layers, 3);
  ck_assert_int_lt(narrow->config.intermediate_sizes[0], 176);

  char path[4400];
  snprintf(path, sizeof path, "%s/results.json", f.out);
  char *text = pf_test_read(path, NULL);
  ck_assert_msg(text != NULL, "results.json missing");
  cJSON *j = cJSON_Parse(text);
  ck_assert_msg(j != NULL, "results.json does not parse");
  cJSON *js = cJSON_GetObjectItem(j, "steps");
  ck_assert_int_eq(cJSON_GetArraySize(js), 4);
  ck_assert_str_eq(cJSON_GetObjectItem(j, "status")->valuestring, "complete");
  ck_assert_ptr_null(cJSON_GetObjectItem(j, "error"));
  cJSON *vars = cJSON_GetObjectItem(j, "vars");
  ck_assert_int_eq(cJSON_GetObjectItem(vars, "pct")->valueint, 20);
  /* provenance: which matmul path computed the numbers */
  const cJSON *mm = cJSON_GetObjectItem(j, "matmul_bf16_weights");
  ck_assert_msg(cJSON_IsString(mm), "results.json: no matmul_bf16_weights");
  ck_assert_str_eq(mm->valuestring,
                   pf_kernels_have_bf16_matmul() && pf_kernels_matmul() == PF_MATMUL_BF16 ? "bf16"
                                                                                          : "f32");
  const cJSON *mpath = cJSON_GetObjectItem(j, "matmul_path");
  ck_assert_msg(cJSON_IsString(mpath), "results.json: no matmul_path");
  ck_assert_str_eq(mpath->valuestring, pf_kernels_matmul_path());
  ck_assert_str_eq(cJSON_GetObjectItem(j, "kernels")->valuestring, pf_kernels_describe());
  cJSON_Delete(j);
  free(text);
  snprintf(path, sizeof path, "%s/checkpoint/config.json", f.out);
  ck_assert_msg(pf_path_exists(path), "checkpoint missing");
  pf_model *saved = NULL;
  snprintf(path, sizeof path, "%s/checkpoint", f.out);
  ck_assert_msg(pf_model_load(path, &saved, &err) == PF_OK, "%s", err.msg);
  ck_assert_int_eq(saved->n_layers, 3);
  pf_model_release(saved);
  pf_value_release(res);
  fx_free(&f);
}
END_TEST

START_TEST(test_set_override) {
  char text[2048]; /* HAPPY, whose description uses three more variables */
  snprintf(text, sizeof text, "description: ${extra} ${flag} ${ratio}\n%s", HAPPY);
  fx f = fx_new(text);
  const char *sets[] = {"pct=50", "extra='quoted text'", "flag=true", "ratio=.5"};
  pf_err err = {0};
  pf_value *res = NULL;
  pf_status st = run(&f, 0, sets, 4, &res, &err);
  ck_assert_msg(st == PF_OK, "%s", err.msg);
  const pf_value *vars = pf_map_get(res, "vars");
  ck_assert_int_eq(pf_map_int(vars, "pct", 0), 50);
  ck_assert_str_eq(pf_map_str(vars, "extra", ""), "quoted text");
  ck_assert_int_eq(pf_map_get(vars, "flag")->type, PF_V_BOOL);
  ck_assert(pf_map_num(vars, "ratio", 0) == 0.5);
  const pf_value *s2 = pf_map_get(res, "steps")->u.list.items[1];
  ck_assert_int_eq(pf_map_int(pf_map_get(s2, "params"), "pruning_percentage", 0), 50);
  pf_model *narrow = pf_map_model(pf_map_get(s2, "result"), "model");
  ck_assert_int_eq(narrow->config.intermediate_sizes[0], 88); /* 176 * (1 - 0.5) */
  pf_value_release(res);

  /* malformed --set */
  const char *bad[] = {"novalue"};
  ck_assert_int_ne(run(&f, 1, bad, 1, NULL, &err), PF_OK);
  pf_assert_err(err, "--set 'novalue': expected key=value");
  /* a --set of a variable the recipe neither declares nor uses (a typo) */
  const char *typo[] = {"modle=synthetic:qwen3-tiny"};
  ck_assert_int_eq(run(&f, 1, typo, 1, NULL, &err), PF_ERR_INVALID);
  pf_assert_err(err, "--set 'modle=synthetic:qwen3-tiny': the recipe has no variable 'modle' (its "
                     "variables: model, pct, ckpt, name, output_dir)");
  fx_free(&f);
}
END_TEST

START_TEST(test_dry_run_writes_nothing) {
  fx f = fx_new(HAPPY);
  pf_err err = {0};
  pf_value *res = NULL;
  pf_status st = run(&f, 1, NULL, 0, &res, &err);
  ck_assert_msg(st == PF_OK, "dry run failed: %s", err.msg);
  ck_assert_int_eq(pf_map_bool(res, "dry_run", 0), 1);
  ck_assert_uint_eq(pf_map_get(res, "steps")->u.list.len, 4);
  ck_assert_msg(!pf_path_exists(f.out), "dry run created %s", f.out);
  pf_value_release(res);
  fx_free(&f);
}
END_TEST

/* A two-sample text file in the fixture's folder (malloc'd path) and its --set (data=...). */
static char *two_sample_data(const fx *f, char *set, size_t n) {
  char *data = pf_path_join(f->dir, "d.txt");
  pf_test_write(data, "The cat sat on the mat.\n\nA dog ran in the park.\n");
  snprintf(set, n, "data=%s", data);
  return data;
}

/* A recipe whose step 5 runs `op` on `target` with `key: cal` and `extra`,
 * where cal is a calibration of `other`. The dry run and the real run must
 * agree: both pass, or both fail at step 5 with `needle`. */
static void cross_case_cal(const char *op, const char *key, const char *extra, const char *other,
                           const char *target, const char *needle, const char *cal_extra) {
  char text[4096];
  snprintf(text, sizeof text,
           "pfrun: 1\n"
           "name: cross\n"
           "output_dir: ${out}\n"
           "steps:\n"
           "  - {id: base, op: load, path: synthetic:llama-tiny}\n"
           "  - {id: src, op: load, path: '%s'}\n"
           "  - {id: d, op: prune_depth, model: base, num_layers_to_remove: 1}\n"
           "  - id: cal\n"
           "    op: calibrate\n"
           "    model: src\n"
           "    data: ${data}\n"
           "    max_length: 16%s\n"
           "  - op: %s\n"
           "    model: %s\n"
           "    %s: cal\n"
           "    %s\n",
           other, cal_extra, op, target, key, extra);
  fx f = fx_new(text);
  char s_data[4200], *data = two_sample_data(&f, s_data, sizeof s_data);
  const char *sets[] = {s_data};
  for (int dry = 1; dry >= 0; dry--) {
    pf_err err = {0};
    pf_value *res = NULL;
    pf_status st = run(&f, dry, sets, 1, &res, &err);
    const char *how = dry ? "dry" : "real";
    if (!needle) {
      ck_assert_msg(st == PF_OK, "%s (%s run): %s", op, how, err.msg);
    } else {
      ck_assert_msg(st != PF_OK, "%s (%s run) passed, expected '%s'", op, how, needle);
      /* the message names `key`: it points at that parameter (line 15, one more per line
       * cal_extra adds), not the step */
      char at[64];
      snprintf(at, sizeof at, "recipe.yaml:%d:5: step 5 (", 15 + (strchr(cal_extra, '\n') != NULL));
      ck_assert_msg(strstr(err.msg, needle) && strstr(err.msg, at),
                    "%s (%s run): expected '%s...): ...%s', got '%s'", op, how, at, needle,
                    err.msg);
    }
    pf_value_release(res);
  }
  free(data);
  fx_free(&f);
}

static void cross_case(const char *op, const char *key, const char *extra, const char *other,
                       const char *target, const char *needle) {
  cross_case_cal(op, key, extra, other, target, needle, "");
}

/* Models compatible across steps, found by --dry-run as the real run finds
 * them: a dry-run calibrate / importance step plans the shape of its result
 * (layers, widths), so prune_width / score / prune_depth check it against their
 * own model. Before, a dry run let an importance of another model through and
 * refused every valid calibration ("norms key 'op' is not a layer"). */
START_TEST(test_dry_run_cross_step) {
  /* compatible: the calibration of the model itself */
  cross_case("prune_width", "calibration", "pruning_percentage: 20", "synthetic:llama-tiny", "base",
             NULL);
  cross_case("score", "calibration", "method: MAW", "synthetic:llama-tiny", "base", NULL);
  cross_case("prune_depth", "importance", "num_layers_to_remove: 1", "synthetic:llama-tiny", "base",
             NULL);
  /* computed on another model (6 layers, width 352) */
  cross_case("prune_width", "calibration", "pruning_percentage: 20", "synthetic:llama-small",
             "base", "calibration: computed on a model with 6 layers, this model has 4");
  cross_case("score", "calibration", "method: MAW", "synthetic:llama-small", "base",
             "calibration: computed on a model with 6 layers, this model has 4");
  cross_case("prune_depth", "importance", "num_layers_to_remove: 1", "synthetic:llama-small",
             "base", "importance: computed on a model with 6 layers, this model has 4");
  /* computed before depth pruning, used on the pruned model (3 layers) */
  cross_case("prune_width", "calibration", "pruning_percentage: 20", "synthetic:llama-tiny", "d",
             "calibration: computed on a model with 4 layers, this model has 3 (a calibration "
             "of the model before depth pruning?");
  cross_case("prune_depth", "importance", "num_layers_to_remove: 1", "synthetic:llama-tiny", "d",
             "importance: computed on a model with 4 layers, this model has 3");
  /* ... also when it covers only layers that exist in the pruned model (before: accepted,
   * and the parent's layer 1 norms pruned the child's layer 0) */
  cross_case_cal("prune_width", "calibration", "layer_indices: [0, 1]", "synthetic:llama-tiny", "d",
                 "calibration: computed on a model with 4 layers, this model has 3",
                 "\n    layer_indices: [0, 1]");
  cross_case_cal("prune_width", "calibration", "layer_indices: [0, 1]", "synthetic:llama-tiny",
                 "base", NULL, "\n    layer_indices: [0, 1]");
  /* a planned result written into a recipe is refused by a real run */
  expect_fail("pfrun: 1\nname: t\nsteps:\n"
              "  - {id: base, op: load, path: synthetic:llama-tiny}\n"
              "  - op: prune_width\n"
              "    model: base\n"
              "    calibration: {planned: {num_hidden_layers: 4, norm_widths: {'0': 176}}}\n",
              "recipe.yaml:7:5: step 2 (prune_width): calibration: a dry run's planned result "
              "holds no norms",
              NULL);
}
END_TEST

/* A calibration of another model of the same shape (another seed, another checkpoint
 * in a sweep) is refused when the step runs (the dry run plans no fingerprint); the
 * same checkpoint loaded twice is the same model. */
START_TEST(test_calibration_of_another_model) {
  static const struct {
    const char *src, *op, *extra, *needle; /* needle NULL: passes */
  } cases[] = {
      {"synthetic:llama-tiny@7", "prune_width", "pruning_percentage: 20",
       "step 4 (prune_width): calibration: computed on another model than synthetic:llama-tiny"},
      {"synthetic:llama-tiny@7", "prune_heads", "pruning_percentage: 50",
       "step 4 (prune_heads): calibration: computed on another model than synthetic:llama-tiny"},
      {"synthetic:llama-tiny@7", "score", "method: MAW",
       "step 4 (score): calibration: computed on another model than synthetic:llama-tiny"},
      {"synthetic:llama-tiny", "prune_width", "pruning_percentage: 20", NULL},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    char text[2048];
    snprintf(text, sizeof text,
             "pfrun: 1\n"
             "output_dir: ${out}\n"
             "steps:\n"
             "  - {id: base, op: load, path: synthetic:llama-tiny}\n"
             "  - {id: src, op: load, path: '%s'}\n"
             "  - id: cal\n"
             "    op: calibrate\n"
             "    model: src\n"
             "    data: ${data}\n"
             "    max_length: 16\n"
             "  - {op: %s, model: base, calibration: cal, %s}\n",
             cases[i].src, cases[i].op, cases[i].extra);
    fx f = fx_new(text);
    char s_data[4200], *data = two_sample_data(&f, s_data, sizeof s_data);
    const char *sets[] = {s_data};
    for (int dry = 1; dry >= 0; dry--) {
      pf_err err = {0};
      pf_status st = run(&f, dry, sets, 1, NULL, &err);
      if (dry || !cases[i].needle)
        ck_assert_msg(st == PF_OK, "case %zu (%s run): %s", i, dry ? "dry" : "real", err.msg);
      else
        ck_assert_msg(st == PF_ERR_INVALID && strstr(err.msg, cases[i].needle),
                      "case %zu: expected '%s', got '%s'", i, cases[i].needle, err.msg);
    }
    free(data);
    fx_free(&f);
  }
}
END_TEST

/* An input file a later step names is checked before the first step runs: nothing is
 * saved by the steps before it. */
START_TEST(test_missing_input_file_first) {
  fx f = fx_new("pfrun: 1\noutput_dir: ${out}\nsteps:\n"
                "  - {id: base, op: load, path: synthetic:llama-tiny}\n"
                "  - {op: save, model: base, path: '${out}/ckpt'}\n"
                "  - {op: evaluate, model: base, data: /nonexistent/eval.txt}\n");
  pf_err err = {0};
  ck_assert_int_eq(run(&f, 0, NULL, 0, NULL, &err), PF_ERR_NOT_FOUND);
  pf_assert_err(err, "step 3 (evaluate): data: /nonexistent/eval.txt: no such file");
  ck_assert_msg(!pf_path_exists(f.out), "the save step ran: %s exists", f.out);
  /* an output_dir that is a file: said before any step */
  pf_test_write(f.out, "a file");
  fx g = fx_new("pfrun: 1\noutput_dir: ${out}\nsteps:\n"
                "  - {id: base, op: load, path: synthetic:llama-tiny}\n");
  snprintf(g.out, sizeof g.out, "%s", f.out);
  ck_assert_int_eq(run(&g, 0, NULL, 0, NULL, &err), PF_ERR_INVALID);
  pf_assert_err(err, "output_dir: ");
  pf_assert_err(err, " is a file, not a folder");
  fx_free(&g);
  fx_free(&f);
}
END_TEST

START_TEST(test_missing_var) {
  expect_fail("pfrun: 1\nname: t\nsteps:\n  - op: load\n    path: ${nope}/x\n",
              "recipe.yaml:5:11: step 1 (load): path: unknown variable 'nope'", "defined: ");
  expect_fail("pfrun: 1\nname: t\nvars: {a: 1, b: '${c}'}\nsteps:\n  - op: load\n    path: x\n",
              "recipe.yaml:3:17: vars.b: unknown variable 'c' (defined: a)", NULL);
  expect_fail("pfrun: 1\nname: t\nsteps:\n  - op: load\n    path: ${oops\n", "unterminated '${'",
              NULL);
}
END_TEST

START_TEST(test_unknown_op) {
  expect_fail("pfrun: 1\nname: t\nsteps:\n  - op: load\n    path: x\n  - op: prune_widht\n",
              "recipe.yaml:6:9: step 2 (prune_widht): unknown op 'prune_widht'",
              "known ops: load, calibrate, score, prune_width");
  expect_fail("pfrun: 1\nname: t\nsteps:\n  - path: x\n",
              "recipe.yaml:4:5: step 1 (?): ", "missing required key 'op'");
}
END_TEST

START_TEST(test_unknown_parameter_before_running) {
  /* step 3's typo is found before step 2 (save) writes anything */
  expect_fail("pfrun: 1\n"
              "name: t\n"
              "steps:\n"
              "  - {id: base, op: load, path: synthetic:llama-tiny}\n"
              "  - {op: save, model: base, path: '${out}/ckpt'}\n"
              "  - op: prune_depth\n"
              "    model: base\n"
              "    num_layer_to_remove: 1\n",
              "recipe.yaml:8:5: step 3 (prune_depth): ", "num_layer_to_remove");
}
END_TEST

START_TEST(test_wrong_type) {
  expect_fail("pfrun: 1\nname: t\nsteps:\n"
              "  - {id: base, op: load, path: synthetic:llama-tiny}\n"
              "  - op: prune_depth\n"
              "    model: base\n"
              "    num_layers_to_remove: [1, 2]\n",
              "recipe.yaml:7:5: step 2 (prune_depth): ", "num_layers_to_remove");
  /* quoted scalars are strings: "1" is not a model reference but a wrong type... */
  expect_fail("pfrun: 1\nname: t\nsteps:\n  - op: load\n    path: {a: 1}\n",
              "step 1 (load): ", "path");
}
END_TEST

START_TEST(test_references) {
  expect_fail("pfrun: 1\nname: t\nsteps:\n"
              "  - {id: base, op: load, path: synthetic:llama-tiny}\n"
              "  - op: prune_depth\n"
              "    model: nothere\n"
              "    num_layers_to_remove: 1\n",
              "recipe.yaml:6:12: step 2 (prune_depth): model: unknown step id 'nothere'",
              "(earlier ids: base)");
  expect_fail("pfrun: 1\nname: t\nsteps:\n"
              "  - {id: base, op: load, path: synthetic:llama-tiny}\n"
              "  - {op: prune_depth, model: later, num_layers_to_remove: 1}\n"
              "  - {id: later, op: prune_depth, model: base, num_layers_to_remove: 1}\n",
              "recipe.yaml:5:30: step 2 (prune_depth): model: step id 'later' is defined later",
              NULL);
  expect_fail("pfrun: 1\nname: t\nsteps:\n"
              "  - {id: base, op: load, path: synthetic:llama-tiny}\n"
              "  - {id: base, op: prune_depth, model: base, num_layers_to_remove: 1}\n",
              "recipe.yaml:5:10: step 2 (prune_depth): duplicate step id 'base'",
              "already used by step 1");
  expect_fail("pfrun: 1\nname: t\nsteps:\n  - {id: 2bad, op: load, path: x}\n",
              "is not an identifier", NULL);
  /* a reference to a step without a model fails when it runs */
  expect_fail("pfrun: 1\nname: t\nsteps:\n"
              "  - {id: base, op: load, path: synthetic:llama-tiny}\n"
              "  - {id: sc, op: score, model: base}\n"
              "  - {op: prune_depth, model: sc, num_layers_to_remove: 1}\n",
              "recipe.yaml:6:30: step 3 (prune_depth): model: step 'sc' (score) did not produce "
              "a model",
              NULL);
}
END_TEST

START_TEST(test_structure_errors) {
  expect_fail("name: t\nsteps:\n  - op: load\n    path: x\n",
              "recipe.yaml:1:1: missing required key 'pfrun'", NULL);
  expect_fail("pfrun: 2\nname: t\nsteps: []\n",
              "recipe.yaml:1:8: unsupported recipe format version '2'", NULL);
  expect_fail("- op: load\n- op: save\n", "recipe.yaml:1:1: a recipe must be a YAML mapping",
              "got a sequence");
  expect_fail("just text\n", "must be a YAML mapping", "got a scalar");
  expect_fail("", "recipe.yaml:1:1: the recipe is empty", NULL);
  expect_fail("pfrun: 1\nname: t\nsteps: []\n", "recipe.yaml:3:8: steps: the list is empty", NULL);
  expect_fail("pfrun: 1\nname: t\n", "missing required key 'steps'", NULL);
  expect_fail("pfrun: 1\nname: t\nstep:\n  - op: load\n",
              "recipe.yaml:3:1: unknown top-level key 'step'", NULL);
  expect_fail("pfrun: 1\nname: t\nname: u\nsteps: [{op: load, path: x}]\n",
              "recipe.yaml:3:1: duplicate key 'name'", NULL);
  expect_fail("pfrun: 1\nsteps:\n  - op: load\n    path: a\n    path: b\n",
              "recipe.yaml:5:5: step 1 (load): duplicate key 'path'", NULL);
  expect_fail("pfrun: 1\nsteps:\n  - load\n", "step 1 (?): expected a mapping", NULL);
  expect_fail("pfrun: 1\nvars: [1]\nsteps:\n  - op: load\n", "vars: expected a mapping", NULL);
  expect_fail("pfrun: 1\nvars: {a: {b: 1}}\nsteps:\n  - op: load\n", "vars.a: expected a scalar",
              NULL);
  expect_fail("pfrun: 1\nvars: {a: [1]}\nsteps:\n  - op: load\n",
              "vars.a: alternatives must be strings", NULL);
  expect_fail("pfrun: 1\nvars: {a: [/nonexistent/x, /nonexistent/y]}\nsteps:\n  - op: load\n",
              "vars.a: none of the alternatives exists (/nonexistent/x, /nonexistent/y)", NULL);
  expect_fail("pfrun: 1\nvars: {a: [/nonexistent/x, nonexistent/y]}\nsteps:\n  - op: load\n",
              "(/nonexistent/x, nonexistent/y) (relative to the current folder /", NULL);
  expect_fail("pfrun: 1\n---\npfrun: 1\n", "recipe.yaml:2:1: a recipe is a single YAML document",
              NULL);
}
END_TEST

START_TEST(test_yaml_syntax_error) {
  expect_fail("pfrun: 1\nname: t\nsteps:\n  - op: load\n    path: [unclosed, list\n"
              "  - op: save\n",
              "recipe.yaml:6:", "YAML syntax error");
  expect_fail("pfrun: 1\nsteps:\n  - op: load\n   path: bad indent\n",
              "recipe.yaml:4:", "YAML syntax error");
  expect_fail("pfrun: 1\nsteps:\n  - {op: load, path: *nowhere}\n", "YAML syntax error",
              "undefined alias");
}
END_TEST

START_TEST(test_bounds) {
  /* nesting deeper than 32 */
  char text[4096] = "pfrun: 1\nsteps:\n  - op: load\n    path: ";
  for (int i = 0; i < 40; i++)
    strcat(text, "[");
  for (int i = 0; i < 40; i++)
    strcat(text, "]");
  strcat(text, "\n");
  expect_fail(text, "recipe.yaml:4:", "nesting deeper than 32 levels");
  expect_fail("pfrun: 1\nvars:\n  a: '${b}'\n  b: '${a}'\nsteps:\n  - {op: load, path: x}\n",
              "vars.a: '${b}' refers to a variable defined after it", NULL);

  /* variables that double the text at each level: stopped at 1 MiB, not 100 MB later */
  snprintf(text, sizeof text, "pfrun: 1\nvars:\n  v0: aaaaaaaaaaaaaaaa\n");
  for (int i = 1; i < 30; i++)
    snprintf(text + strlen(text), sizeof text - strlen(text), "  v%d: '${v%d}${v%d}'\n", i, i - 1,
             i - 1);
  strcat(text, "steps:\n  - {op: load, path: '${v29}'}\n");
  expect_fail(text, "vars.v17: substituting '${v16}' makes a text of more than 1048576 bytes",
              NULL);

  /* billion laughs: aliases expanding without end */
  expect_fail("pfrun: 1\nsteps:\n"
              "  - op: load\n"
              "    a: &a [x, x, x, x, x, x, x, x, x, x]\n"
              "    b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
              "    c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
              "    d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
              "    e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
              "    f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
              "    g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\n",
              "more than 1000000 values", NULL);
  /* an alias of its own ancestor */
  expect_fail("pfrun: 1\nsteps:\n  - op: load\n    path: &p [1, *p]\n", "nesting deeper", NULL);

  /* too many steps */
  size_t cap = 1100 * 32 + 64;
  char *big = malloc(cap);
  strcpy(big, "pfrun: 1\nsteps:\n");
  for (int i = 0; i < 1001; i++)
    strcat(big, "  - {op: load, path: x}\n");
  expect_fail(big, "recipe.yaml:3:3: steps: 1001 steps; the limit is 1000", NULL);
  free(big);

  /* file larger than 1 MiB */
  size_t n = ((size_t)1 << 20) + 100;
  char *huge = malloc(n + 1);
  memset(huge, '#', n);
  huge[0] = '\n';
  huge[n] = '\0';
  expect_fail(huge, "bytes; the limit is 1048576 bytes", NULL);
  free(huge);
}
END_TEST

START_TEST(test_scalars_and_subst) {
  struct {
    const char *text;
    pf_vtype type;
  } cases[] = {{"42", PF_V_INT},     {"-7", PF_V_INT},    {"0x1F", PF_V_INT}, {"0o17", PF_V_INT},
               {"1.5", PF_V_NUM},    {".5", PF_V_NUM},    {"1e3", PF_V_NUM},  {"-2.5E-3", PF_V_NUM},
               {".inf", PF_V_NUM},   {"-.inf", PF_V_NUM}, {".nan", PF_V_NUM}, {"true", PF_V_BOOL},
               {"False", PF_V_BOOL}, {"null", PF_V_NULL}, {"~", PF_V_NULL},   {"", PF_V_NULL},
               {"yes", PF_V_STR},    {"1.2.3", PF_V_STR}, {"e3", PF_V_STR},   {"0x", PF_V_STR},
               {"MAW", PF_V_STR},    {"-", PF_V_STR},     {"1_000", PF_V_STR}};
  pf_err err = {0};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    pf_value *v = NULL;
    ck_assert_int_eq(pf_yaml_scalar(cases[i].text, 1, &v, &err), PF_OK);
    ck_assert_msg(v->type == cases[i].type, "'%s': got %s", cases[i].text, pf_vtype_name(v->type));
    pf_value_release(v);
    ck_assert_int_eq(pf_yaml_scalar(cases[i].text, 0, &v, &err), PF_OK); /* quoted */
    ck_assert_int_eq(v->type, PF_V_STR);
    pf_value_release(v);
  }
  pf_value *v = NULL;
  ck_assert_int_eq(pf_yaml_scalar("0x1F", 1, &v, &err), PF_OK);
  ck_assert_int_eq(v->u.i, 31);
  pf_value_release(v);
  ck_assert_int_eq(pf_yaml_scalar("-9223372036854775808", 1, &v, &err), PF_OK);
  ck_assert(v->u.i == INT64_MIN);
  pf_value_release(v);
  ck_assert_int_ne(pf_yaml_scalar("99999999999999999999", 1, &v, &err), PF_OK);
  pf_assert_err(err, "does not fit in 64 bits");

  pf_value *vars = pf_value_map();
  pf_map_set(vars, "n", pf_value_int(64));
  pf_map_set(vars, "x", pf_value_num(0.1));
  pf_map_set(vars, "s", pf_value_str("abc"));
  ck_assert_int_eq(pf_recipe_subst("${n}", vars, 1, &v, &err), PF_OK);
  ck_assert_int_eq(v->type, PF_V_INT);
  pf_value_release(v);
  ck_assert_int_eq(pf_recipe_subst("${n}", vars, 0, &v, &err), PF_OK);
  ck_assert_str_eq(v->u.s, "64");
  pf_value_release(v);
  ck_assert_int_eq(pf_recipe_subst("a-${s}-${n}-${x}$${s}$x", vars, 1, &v, &err), PF_OK);
  ck_assert_str_eq(v->u.s, "a-abc-64-0.1${s}$x");
  pf_value_release(v);
  ck_assert_int_ne(pf_recipe_subst("${bad name}", vars, 1, &v, &err), PF_OK);
  pf_assert_err(err, "bad variable reference");
  ck_assert_int_ne(pf_recipe_subst("${zz}", vars, 1, &v, &err), PF_OK);
  pf_assert_err(err, "unknown variable 'zz' (defined: n, x, s)");
  pf_value_release(vars);
}
END_TEST

START_TEST(test_defaults_and_escapes) {
  /* output_dir defaults to vars.output_dir; name defaults to the file name;
   * $${ is a literal; quoted scalars stay strings; ${output_dir} is a var */
  fx f = fx_new("pfrun: 1\n"
                "vars:\n"
                "  output_dir: ${out}/from-vars\n"
                "steps:\n"
                "  - id: base\n"
                "    op: load\n"
                "    path: \"synthetic:llama-tiny\"\n"
                "  - op: save\n"
                "    model: base\n"
                "    path: ${output_dir}/ck$${x}\n");
  pf_err err = {0};
  pf_value *res = NULL;
  ck_assert_msg(run(&f, 0, NULL, 0, &res, &err) == PF_OK, "%s", err.msg);
  ck_assert_str_eq(pf_map_str(res, "name", ""), "recipe");
  char want[4400];
  snprintf(want, sizeof want, "%s/from-vars", f.out);
  ck_assert_str_eq(pf_map_str(res, "output_dir", ""), want);
  snprintf(want, sizeof want, "%s/from-vars/ck${x}/config.json", f.out);
  ck_assert_msg(pf_path_exists(want), "%s missing", want);
  snprintf(want, sizeof want, "%s/from-vars/results.json", f.out);
  ck_assert_msg(pf_path_exists(want), "%s missing", want);
  pf_value_release(res);
  fx_free(&f);

  /* without output_dir anywhere: runs/<name> (checked in dry-run: nothing written) */
  f = fx_new("pfrun: 1\nname: demo\nsteps:\n  - {op: load, path: synthetic:llama-tiny}\n");
  ck_assert_msg(run(&f, 1, NULL, 0, &res, &err) == PF_OK, "%s", err.msg);
  ck_assert_str_eq(pf_map_str(res, "output_dir", ""), "runs/demo");
  pf_value_release(res);
  fx_free(&f);

  /* missing file */
  pf_recipe_opts o = {0};
  ck_assert_int_eq(pf_recipe_run("/nonexistent/r.yaml", &o, NULL, &res, &err), PF_ERR_IO);
  pf_assert_err(err, "/nonexistent/r.yaml");
}
END_TEST

/* Fuzzing findings (tests/fuzz/fuzz_recipe.c; docs/reliability.md): work that
 * grew with the square of a mapping's size. 80000 vars in a 950 KB file: the
 * duplicate checks took minutes. */
START_TEST(test_fuzz_mapping_keys) {
  size_t cap = 1001 * 24 + 256;
  char *t = malloc(cap), *p = t + sprintf(t, "pfrun: 1\nvars:\n");
  for (int i = 0; i < 1001; i++)
    p += sprintf(p, "  v%d: 1\n", i);
  strcpy(p, "steps:\n  - {op: load, path: x}\n");
  expect_fail(t, "recipe.yaml:3:3: mapping has more than 1000 keys", NULL);
  free(t);
}
END_TEST

/* One mapping of 999 keys built once per alias: 997 aliases in 22 KB took 50 s
 * in the fuzz build (each build checks the keys pairwise). */
START_TEST(test_fuzz_alias_key_pairs) {
  size_t cap = 999 * 12 + 40 * 16 + 256;
  char *t = malloc(cap), *p = t + sprintf(t, "pfrun: 1\nsteps:\n  - op: load\n    a0: &m {");
  for (int i = 0; i < 999; i++)
    p += sprintf(p, "%sk%d: 1", i ? ", " : "", i);
  p += sprintf(p, "}\n");
  for (int i = 1; i < 40; i++)
    p += sprintf(p, "    a%d: *m\n", i);
  expect_fail(t, "more than 10000000 pairs of keys to compare", NULL);
  free(t);
}
END_TEST

/* --set values become vars, checked pairwise too. */
START_TEST(test_fuzz_many_sets) {
  fx f = fx_new("pfrun: 1\nsteps:\n  - {op: load, path: x}\n");
  const char **sets = malloc(1001 * sizeof *sets);
  for (int i = 0; i < 1001; i++)
    sets[i] = "k=1";
  pf_recipe_opts o = {.sets = sets, .n_sets = 1001};
  pf_ctx ctx = {.dry_run = 1};
  pf_value *res = NULL;
  pf_err err = {0};
  ck_assert_int_eq(pf_recipe_run(f.recipe, &o, &ctx, &res, &err), PF_ERR_INVALID);
  ck_assert_ptr_null(res);
  pf_assert_err(err, "1001 --set values; the limit is 1000");
  free(sets);
  fx_free(&f);
}
END_TEST

/* A result that no later step takes lets its tensors go after its last use;
 * results.json keeps their summaries (same JSON as before). */
START_TEST(test_dead_results_let_tensors_go) {
  fx f = fx_new("pfrun: 1\n"
                "output_dir: ${out}\n"
                "steps:\n"
                "  - {id: base, op: load, path: synthetic:llama-tiny}\n"
                "  - {id: acts, op: bias_activations, model: base, prompt_pairs: [[a b, a c]]}\n"
                "  - {id: kept, op: bias_activations, model: base, prompt_pairs: [[d e, d f]]}\n"
                "  - {id: m, op: metrics, activations: acts}\n"
                "  - {op: metrics, activations: kept}\n"
                "  - {op: analyze, model: base}\n");
  live_log l = {.prefix = "step "}; /* alive at the start of each step */
  pf_recipe_opts o = {0};
  const char *sets[1];
  char out_set[4200];
  snprintf(out_set, sizeof out_set, "out=%s", f.out);
  sets[0] = out_set;
  o.sets = sets;
  o.n_sets = 1;
  pf_ctx ctx = {.log = live_log_line, .user_data = &l};
  pf_value *res = NULL;
  pf_err err = {0};
  const uint64_t before = pf_bias_capture_heap_bytes();
  ck_assert_msg(pf_recipe_run(f.recipe, &o, &ctx, &res, &err) == PF_OK, "%s", err.msg);
  ck_assert_int_eq(l.n, 6);
  /* steps 2 and 3 capture; step 4 is the last to take acts, step 5 the last to take kept */
  ck_assert_uint_gt(l.live[3], l.live[2]); /* both captures alive at step 4 */
  ck_assert_uint_lt(l.live[4], l.live[3]); /* acts let go after step 4 */
  ck_assert_uint_gt(l.live[4], before);    /* kept still alive at step 5 */
  ck_assert_uint_eq(l.live[5], before);    /* and let go after it */
  /* results.json still shows the tensors' summaries */
  char path[4300];
  snprintf(path, sizeof path, "%s/results.json", f.out);
  char *text = NULL;
  ck_assert_int_eq(pf_read_file(path, 1 << 26, &text, NULL, &err), PF_OK);
  ck_assert_msg(strstr(text, "\"input_norm_layer_0\": {\n") != NULL, "no activation summary");
  ck_assert_msg(strstr(text, "\"tensor\": [") != NULL, "no tensor summary in results.json");
  free(text);
  pf_value_release(res);
  fx_free(&f);
}
END_TEST

static Suite *make_suite(void) {
  Suite *s = suite_create("recipe");
  TCase *tc = tcase_create("core");
  tcase_add_unchecked_fixture(tc, suite_setup, suite_teardown);
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_happy_path);
  tcase_add_test(tc, test_var_alternatives);
  tcase_add_test(tc, test_set_override);
  tcase_add_test(tc, test_dry_run_writes_nothing);
  tcase_add_test(tc, test_dry_run_cross_step);
  tcase_add_test(tc, test_calibration_of_another_model);
  tcase_add_test(tc, test_missing_var);
  tcase_add_test(tc, test_missing_input_file_first);
  tcase_add_test(tc, test_unknown_op);
  tcase_add_test(tc, test_unknown_parameter_before_running);
  tcase_add_test(tc, test_wrong_type);
  tcase_add_test(tc, test_references);
  tcase_add_test(tc, test_structure_errors);
  tcase_add_test(tc, test_yaml_syntax_error);
  tcase_add_test(tc, test_bounds);
  tcase_add_test(tc, test_fuzz_mapping_keys);
  tcase_add_test(tc, test_fuzz_alias_key_pairs);
  tcase_add_test(tc, test_fuzz_many_sets);
  tcase_add_test(tc, test_scalars_and_subst);
  tcase_add_test(tc, test_defaults_and_escapes);
  tcase_add_test(tc, test_dead_results_let_tensors_go);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return pf_test_main(make_suite);
}
