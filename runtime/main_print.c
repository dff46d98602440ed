/* main_print.c — result tables and dry-run plans the pfrun command prints
 * (main.c's printing, kept apart from its command plumbing). Part of the pfrun
 * executable, not of a library: printing is its job. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "main_print.h"

#include "cli.h"
#include "dist.h"

char *fmt_thousands(int64_t v, char *buf, size_t n) {
  char tmp[32];
  snprintf(tmp, sizeof tmp, "%lld", (long long)(v < 0 ? -v : v));
  size_t len = strlen(tmp), o = 0;
  if (v < 0 && o + 1 < n) buf[o++] = '-';
  for (size_t i = 0; i < len && o + 2 < n; i++) {
    if (i && (len - i) % 3 == 0) buf[o++] = ',';
    buf[o++] = tmp[i];
  }
  buf[o] = '\0';
  return buf;
}

/* One-line JSON of v (malloc'd), or NULL. */
char *compact_json(const pf_value *v) {
  cJSON *j = pf_value_to_json(v);
  char *text = j ? cJSON_PrintUnformatted(j) : NULL;
  cJSON_Delete(j);
  return text;
}

/* Human-readable plan of one save step (dry runs). */
void print_save_plan(const pf_value *plan) {
  char a[40], b[40];
  const pf_value *shapes = pf_map_get(plan, "output_shapes");
  size_t n = shapes && shapes->type == PF_V_MAP ? shapes->u.map.len : 0;
  printf("      changed tensors: %zu\n", n);
  for (size_t i = 0; i < n && i < 6; i++) {
    char *j = compact_json(shapes->u.map.vals[i]);
    printf("        %s -> %s\n", shapes->u.map.keys[i], j ? j : "?");
    free(j);
  }
  if (n > 6) printf("        ... (%zu more)\n", n - 6);
  if (pf_map_has(plan, "parameters_before"))
    printf("      parameters: %s -> %s\n",
           fmt_thousands(pf_map_int(plan, "parameters_before", 0), a, sizeof a),
           fmt_thousands(pf_map_int(plan, "parameters_after", 0), b, sizeof b));
  const pf_value *diff = pf_map_get(plan, "config_diff");
  for (size_t i = 0; diff && diff->type == PF_V_MAP && i < diff->u.map.len; i++) {
    const pf_value *d = diff->u.map.vals[i]; /* [old, new] */
    const int pair = d->type == PF_V_LIST && d->u.list.len == 2;
    char *o = compact_json(pair ? d->u.list.items[0] : d);
    char *w = pair ? compact_json(d->u.list.items[1]) : NULL;
    if (pair)
      printf("      config %s: %s -> %s\n", diff->u.map.keys[i], o ? o : "?", w ? w : "?");
    else
      printf("      config %s: %s\n", diff->u.map.keys[i], o ? o : "?");
    free(o);
    free(w);
  }
  printf("      peak extra memory of the save: %s bytes\n",
         fmt_thousands(pf_map_int(plan, "peak_memory_bytes", 0), a, sizeof a));
}

void print_calibration_plan(const pf_value *calib) {
  const pf_value *d = calib ? pf_map_get(calib, "data") : NULL;
  if (!d) return;
  char a[40];
  printf("      calibration: %s tokens in %lld batches (%lld samples) through the unpruned "
         "model first (a dry run does not estimate that pass's memory)\n",
         fmt_thousands(pf_map_int(d, "tokens", 0), a, sizeof a),
         (long long)pf_map_int(d, "batches", 0), (long long)pf_map_int(d, "samples", 0));
}

void print_reconstruct_plan(const pf_value *rec) {
  if (!rec) return;
  char a[40], b[40];
  printf("      reconstruct: peak extra memory %s bytes (the largest pruned layer's covariance "
         "and solve, and the hidden states of %s token positions: the calibration batches "
         "with their padding)\n",
         fmt_thousands(pf_map_int(rec, "peak_memory_bytes", 0), a, sizeof a),
         fmt_thousands(pf_map_int(rec, "tokens", 0), b, sizeof b));
}

/* One line per task and metric; with --compare the parent's value and the difference. */
void print_bench(const pf_value *r) {
  const pf_value *tasks = pf_map_get(r, "tasks"), *pt = pf_map_get(r, "parent");
  const pf_value *cmp = pf_map_get(r, "comparison");
  pt = pt ? pf_map_get(pt, "tasks") : NULL;
  static const char *const metrics[] = {"acc", "acc_norm", "perplexity"};
  printf("%-16s %-10s %6s %10s %10s", "task", "metric", "n", "value", "stderr");
  printf(pt ? " %10s %10s %10s\n" : "\n", "parent", "diff", "agreement");
  for (size_t i = 0; tasks && tasks->type == PF_V_MAP && i < tasks->u.map.len; i++) {
    const char *name = tasks->u.map.keys[i];
    const pf_value *t = tasks->u.map.vals[i], *p = pt ? pf_map_get(pt, name) : NULL;
    const pf_value *c = cmp ? pf_map_get(cmp, name) : NULL;
    for (size_t k = 0; k < sizeof metrics / sizeof *metrics; k++) {
      if (!pf_map_has(t, metrics[k])) continue;
      char se[40], dk[40], ak[40];
      snprintf(se, sizeof se, "%s_stderr", metrics[k]);
      snprintf(dk, sizeof dk, "%s_diff", metrics[k]);
      snprintf(ak, sizeof ak, "%s", k == 1 ? "agreement_norm" : "agreement");
      printf("%-16s %-10s %6lld %10.4f %10.4f", name, metrics[k], (long long)pf_map_int(t, "n", 0),
             pf_map_num(t, metrics[k], 0), pf_map_num(t, se, NAN));
      if (p)
        printf(" %10.4f %+10.4f %10.4f", pf_map_num(p, metrics[k], 0), pf_map_num(c, dk, NAN),
               k == 2 ? NAN : pf_map_num(c, ak, NAN));
      printf("\n");
    }
  }
}

void print_prune_summary(const pf_value *r) {
  char a[40], b[40], c[40];
  int64_t orig = pf_map_int(r, "original_parameters", 0);
  int64_t pruned = pf_map_int(r, "pruned_parameters", 0);
  int64_t red = pf_map_int(r, "reduction", 0);
  printf("Pruning complete!\n");
  printf("Original parameters: %s\n", fmt_thousands(orig, a, sizeof a));
  printf("Pruned parameters: %s\n", fmt_thousands(pruned, b, sizeof b));
  printf("Reduction: %s parameters (%.2f%%)\n", fmt_thousands(red, c, sizeof c),
         pf_map_num(r, "percentage_reduction", 0.0));
  if (pf_map_has(r, "expansion_rate"))
    printf("Final expansion rate: %.2f%%\n", pf_map_num(r, "expansion_rate", 0.0));
  if (pf_map_has(r, "pruned_layers") && pf_map_has(r, "total_layers"))
    printf("Pruned layers: %lld of %lld\n", (long long)pf_map_int(r, "pruned_layers", 0),
           (long long)pf_map_int(r, "total_layers", 0));
  if (pf_map_has(r, "num_attention_heads_after")) {
    printf("Attention heads: %lld -> %lld, key/value heads: %lld -> %lld (head_dim %lld)\n",
           (long long)pf_map_int(r, "num_attention_heads_before", 0),
           (long long)pf_map_int(r, "num_attention_heads_after", 0),
           (long long)pf_map_int(r, "num_key_value_heads_before", 0),
           (long long)pf_map_int(r, "num_key_value_heads_after", 0),
           (long long)pf_map_int(r, "head_dim", 0));
    printf("KV cache per token: %lld -> %lld bytes\n",
           (long long)pf_map_int(r, "kv_cache_bytes_per_token_before", 0),
           (long long)pf_map_int(r, "kv_cache_bytes_per_token_after", 0));
  }
  if (pf_map_has(r, "original_layer_count"))
    printf("Layers: %lld -> %lld (%lld removed)\n",
           (long long)pf_map_int(r, "original_layer_count", 0),
           (long long)pf_map_int(r, "final_layer_count", 0),
           (long long)pf_map_int(r, "layers_removed", 0));
}

void print_analyze(const pf_value *r, const char *path) {
  char a[40];
  printf("Model: %s\n", path);
  printf("Total parameters: %s\n",
         fmt_thousands(pf_map_int(r, "total_parameters", 0), a, sizeof a));
  printf("Number of layers: %lld\n", (long long)pf_map_int(r, "num_layers", 0));
  int glu = pf_map_bool(r, "glu_compatible", 0);
  const char *mlp = pf_map_str(r, "mlp", "");
  if (!glu) /* (GLU models: exactly OptiPFair's lines) */
    printf("Architecture: %s (model_type %s)\n", pf_map_str(r, "family", ""),
           pf_map_str(r, "model_type", ""));
  printf("Compatible with GLU pruning: %s\n", glu ? "True" : "False");
  if (!glu && strcmp(mlp, "plain") == 0)
    printf("MLP: plain (fc_in, activation, fc_out); prune neurons with --pruning-type MLP\n");
  if (!glu && strcmp(mlp, "plain") != 0) return;
  double ratio = pf_map_num(r, "expansion_ratio", 0);
  printf("Hidden size: %lld\n", (long long)pf_map_int(r, "hidden_size", 0));
  printf("Intermediate size: %lld\n", (long long)pf_map_int(r, "intermediate_size", 0));
  printf("Expansion ratio: %.2fx (%.2f%%)\n", ratio, ratio * 100.0);
  const pf_value *d = pf_map_get(r, "distribution");
  if (d) {
    printf("\nParameter distribution per layer:\n");
    const char *parts[] = {"attention", "mlp", "other"};
    const char *labels[] = {"Attention", "MLP", "Other"};
    for (int i = 0; i < 3; i++) {
      const pf_value *p = pf_map_get(d, parts[i]);
      if (!p) continue;
      printf("%s: %s (%.2f%%)\n", labels[i], fmt_thousands(pf_map_int(p, "count", 0), a, sizeof a),
             pf_map_num(p, "percent", 0));
    }
  }
  const pf_value *est = pf_map_get(r, "estimates");
  for (size_t i = 0; est && est->type == PF_V_LIST && i < est->u.list.len; i++) {
    const pf_value *e = est->u.list.items[i];
    printf("\nWith %g%% MLP neuron pruning:\n", pf_map_num(e, "percentage", 0));
    printf("  New expansion ratio: %.3f (%.2f%%)\n", pf_map_num(e, "new_expansion_ratio", 0),
           pf_map_num(e, "new_expansion_percent", 0));
    printf("  Estimated parameter reduction: %.2f%% of model\n",
           pf_map_num(e, "estimated_reduction_percent", 0));
  }
}

void print_importance(const pf_value *imp) {
  printf("%-6s %12s\n", "layer", "importance");
  for (size_t i = 0; imp && imp->type == PF_V_MAP && i < imp->u.map.len; i++)
    printf("%-6s %12.6f\n", imp->u.map.keys[i], pf_map_num(imp, imp->u.map.keys[i], 0));
}

void print_eval(const char *path, const char *compare_path, const pf_value *r) {
  if (pf_map_has(r, "perplexity")) {
    printf("%s: perplexity %.4f over %lld predicted tokens\n", path, pf_map_num(r, "perplexity", 0),
           (long long)pf_map_int(r, "predicted_tokens", 0));
    const pf_value *cmp = pf_map_get(r, "compare");
    if (cmp)
      printf("%s: perplexity %.4f\nKL divergence (parent || model): %.6f\ntop-1 agreement: "
             "%.2f%%\n",
             compare_path, pf_map_num(cmp, "perplexity", 0), pf_map_num(r, "kl_divergence", 0),
             100.0 * pf_map_num(r, "top1_agreement", 0));
  }
  const pf_value *sp = pf_map_get(r, "speed");
  if (sp)
    printf("generation: %.2f tokens/s (%lld tokens, avg %.3f s over %lld runs)\n",
           pf_map_num(sp, "tokens_per_second", 0), (long long)pf_map_int(sp, "generated_tokens", 0),
           pf_map_num(sp, "avg_time", 0), (long long)pf_map_int(sp, "num_runs", 0));
  const pf_value *ic = pf_map_get(r, "inference_comparison");
  if (ic)
    printf("parent: %.2f tokens/s; speedup %.3fx (%+.2f%% tokens/s)\n",
           pf_map_num(ic, "avg_original_tokens_per_second", 0), pf_map_num(ic, "speedup", 0),
           pf_map_num(ic, "tps_improvement_percent", 0));
}

void print_bias(const pf_value *metrics) {
  const pf_value *pairs = pf_map_get(metrics, "pairs");
  for (size_t i = 0; pairs && pairs->type == PF_V_MAP && i < pairs->u.map.len; i++) {
    const pf_value *p = pairs->u.map.vals[i], *m = pf_map_get(p, "metrics");
    printf("%s: \"%s\" vs \"%s\"%s\n", pairs->u.map.keys[i], pf_map_str(p, "prompt1", ""),
           pf_map_str(p, "prompt2", ""),
           strcmp(pf_map_str(p, "aligned", "exact"), "exact") ? " (different lengths: mean-pooled)"
                                                              : "");
    const pf_value *ov = m ? pf_map_get(m, "overall_metrics") : NULL;
    if (ov) printf("  overall mean difference %.6g\n", pf_map_num(ov, "mean_difference", 0));
    const pf_value *comp = m ? pf_map_get(m, "component_metrics") : NULL;
    for (size_t k = 0; comp && comp->type == PF_V_MAP && k < comp->u.map.len; k++)
      printf("  %-18s %.6g\n", comp->u.map.keys[k],
             pf_map_num(comp->u.map.vals[k], "mean_difference", 0));
  }
}

void print_recipe_plan(const pf_value *res) {
  const pf_value *steps = pf_map_get(res, "steps");
  for (size_t i = 0; steps && steps->type == PF_V_LIST && i < steps->u.list.len; i++) {
    const pf_value *st = steps->u.list.items[i], *r = pf_map_get(st, "result");
    const char *id = pf_map_str(st, "id", NULL);
    printf("  step %zu %s%s%s%s\n", i + 1, pf_map_str(st, "op", "?"), id ? " " : "", id ? id : "",
           pf_map_bool(st, "skipped", 0) ? ": skipped (when: false)" : "");
    const pf_value *params = pf_map_get(st, "params");
    for (size_t k = 0; params && params->type == PF_V_MAP && k < params->u.map.len; k++) {
      char *j = compact_json(params->u.map.vals[k]);
      if (j) printf("      %s = %s\n", params->u.map.keys[k], j);
      free(j);
    }
    if (r && pf_map_has(r, "pruned_parameters"))
      printf("      parameters after: %lld\n", (long long)pf_map_int(r, "pruned_parameters", 0));
    const pf_value *plan = r ? pf_map_get(r, "plan") : NULL;
    if (plan) print_save_plan(plan);
  }
}

/* The commands whose dry run computes nothing print nothing else: say so. */
void print_plan_done(const pf_cli *c) {
  if (!c->dry_run || !pf_dist_writer()) return;
  if (c->kind == PF_CLI_IMPORTANCE || c->kind == PF_CLI_EVAL || c->kind == PF_CLI_GENERATE ||
      c->kind == PF_CLI_BENCH || c->kind == PF_CLI_BIAS)
    printf("Dry run: the model and inputs were checked; nothing was computed or written%s.\n",
           c->json_out ? " (not the --json file either)" : "");
}
