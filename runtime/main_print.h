/* main_print.h — tables printed by the pfrun command (runtime/main_print.c). */
#ifndef PF_MAIN_PRINT_H
#define PF_MAIN_PRINT_H

#include "value.h"

/* v with thousands separators ("1,234,567") in buf[n]; returns buf. */
char *fmt_thousands(int64_t v, char *buf, size_t n);
/* One-line JSON of v (malloc'd), or NULL. */
char *compact_json(const pf_value *v);
/* Dry runs: the plan of one save step, and a prune's recovery estimate (NULL: none). */
void print_save_plan(const pf_value *plan);
/* The calibration pass a prune runs first (its result's data counts), dry runs. */
void print_calibration_plan(const pf_value *calib);
void print_reconstruct_plan(const pf_value *rec);

/* `pfrun bench`: one line per task and metric; with --compare the parent's
 * value, the difference and the agreement. */
void print_bench(const pf_value *r);

/* Command results: prune, analyze (the model's path), importance (layer -> score),
 * eval (with --compare the parent's path, else NULL), bias, and a recipe's
 * dry-run plan. */
void print_prune_summary(const pf_value *r);
void print_analyze(const pf_value *r, const char *path);
void print_importance(const pf_value *imp);
void print_eval(const char *path, const char *compare_path, const pf_value *r);
void print_bias(const pf_value *metrics);
void print_recipe_plan(const pf_value *res);
/* After a dry run of a command that computes nothing (importance, eval, generate, bench,
 * bias): that nothing was computed or written. */
struct pf_cli;
void print_plan_done(const struct pf_cli *c);

#endif
