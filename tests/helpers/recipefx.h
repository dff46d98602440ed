/* recipefx.h — a recipe fixture for the recipe suites (check_recipe,
 * check_recipe_prerun): a fresh folder holding recipe.yaml, run with
 * --set out=<folder>/run when the text uses ${out}. Header-only (static
 * inline): each suite is its own executable. */
#ifndef PF_TEST_RECIPEFX_H
#define PF_TEST_RECIPEFX_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "recipe.h"
#include "testutil.h"

/* A fresh folder with recipe.yaml holding `text`. */
typedef struct fx {
  char *dir;
  char *recipe;
  char out[4096]; /* dir/run: a default output_dir inside the fixture */
  int uses_out;   /* the text refers to ${out} (run() then sets it) */
} fx;

static inline fx fx_new(const char *text) {
  fx f;
  f.dir = pf_test_tmpdir("recipe");
  f.recipe = pf_path_join(f.dir, "recipe.yaml");
  snprintf(f.out, sizeof f.out, "%s/run", f.dir);
  f.uses_out = strstr(text, "${out}") != NULL;
  pf_test_write(f.recipe, text);
  return f;
}

static inline void fx_free(fx *f) {
  pf_test_rmtree(f->dir);
  free(f->dir);
  free(f->recipe);
}

/* Run with --set out=<fx.out> (when the recipe uses it) plus `extra` sets. */
static inline pf_status run(fx *f, int dry, const char *const *extra, size_t n_extra,
                            pf_value **res, pf_err *err) {
  const char *sets[8];
  char out_set[4200];
  snprintf(out_set, sizeof out_set, "out=%s", f->out);
  size_t n = 0;
  if (f->uses_out) sets[n++] = out_set;
  for (size_t i = 0; i < n_extra && i < 7; i++)
    sets[n++] = extra[i];
  pf_recipe_opts o = {.sets = sets, .n_sets = n};
  pf_ctx ctx = {.dry_run = dry};
  pf_value *r = NULL;
  pf_status st = pf_recipe_run(f->recipe, &o, &ctx, res ? res : &r, err);
  pf_value_release(r);
  return st;
}

/* Expect failure containing every needle. */
static inline void expect_fail(const char *text, const char *n1, const char *n2) {
  fx f = fx_new(text);
  pf_err err = {0};
  pf_value *res = NULL;
  pf_status st = run(&f, 0, NULL, 0, &res, &err);
  ck_assert_msg(st != PF_OK, "expected failure with '%s'", n1);
  ck_assert_ptr_null(res);
  pf_assert_err(err, n1);
  if (n2) pf_assert_err(err, n2);
  ck_assert_msg(!pf_path_exists(f.out), "nothing may run before validation failed");
  fx_free(&f);
}

#endif
