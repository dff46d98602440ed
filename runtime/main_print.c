/* main_print.c — result tables the pfrun command prints (main.c's printing,
 * kept apart from its command plumbing). */
#include <math.h>
#include <stdio.h>

#include "main_print.h"

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
