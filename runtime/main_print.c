/* main_print.c — result tables and dry-run plans the pfrun command prints
 * (main.c's printing, kept apart from its command plumbing). Part of the pfrun
 * executable, not of a library: printing is its job. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "main_print.h"

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
    char *j = compact_json(diff->u.map.vals[i]);
    printf("      config %s: %s\n", diff->u.map.keys[i], j ? j : "?");
    free(j);
  }
  printf("      peak extra memory: %s bytes\n",
         fmt_thousands(pf_map_int(plan, "peak_memory_bytes", 0), a, sizeof a));
}

void print_reconstruct_plan(const pf_value *rec) {
  if (!rec) return;
  char a[40], b[40];
  printf("      reconstruct: peak extra memory %s bytes (the largest pruned layer's covariance "
         "and solve, and the hidden states of %s calibration tokens)\n",
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
