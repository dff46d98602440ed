/* main.c — the pfrun command: with main_print.c (its tables), the only code that
 * prints, and the only place that picks exit codes. Both are the executable's
 * front end, not library code (CMake: add_executable(pfrun ...)).
 * Exit codes: 0 ok, 1 failure, 2 usage error, 128 + signal when interrupted
 * (130 SIGINT, 143 SIGTERM, 129 SIGHUP). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "dist.h"
#include "fsutil.h"
#include "json.h"
#include "kernels/kernels.h"
#include "main_checks.h"
#include "main_print.h"
#include "main_signals.h"
#include "model.h"
#include "op.h"
#include "pf_lua.h"
#include "recipe.h"
#include "safetensors.h"

/* ---- --max-memory / PFRUN_MAX_MEMORY ---- */

static uint64_t g_mem_cap = 0;          /* bytes, 0 = none */
static const char *g_mem_cap_from = ""; /* "--max-memory" or "PFRUN_MAX_MEMORY" */

static void fmt_size(uint64_t b, char *buf, size_t n) {
  if (b >= (1ull << 30) && b % (1ull << 30) == 0)
    snprintf(buf, n, "%llu GiB", (unsigned long long)(b >> 30));
  else if (b >= (1ull << 20) && b % (1ull << 20) == 0)
    snprintf(buf, n, "%llu MiB", (unsigned long long)(b >> 20));
  else if (b >= 1000000000ull)
    snprintf(buf, n, "%.3g GB", (double)b / 1e9);
  else if (b >= 1000000ull)
    snprintf(buf, n, "%.3g MB", (double)b / 1e6);
  else
    snprintf(buf, n, "%llu bytes", (unsigned long long)b);
}

/* VmData of this process (bytes), 0 if unknown. */
static uint64_t data_vm_now(void) {
  return pf_proc_kb("/proc/self/status", "VmData");
}

/* Cap working memory with RLIMIT_DATA: heap and private writable mappings count,
 * read-only file mappings (the weights, scratch slices) do not, so a capped run
 * fails with PF_ERR_NOMEM at the allocation that crosses the cap instead of
 * being killed by the OOM killer. What the process holds before the work
 * starts is added to the cap: the OpenMP worker threads (their stacks) and
 * BLIS's buffer pools are created first by one small GEMM, because libgomp and
 * BLIS abort instead of failing when they cannot allocate. */
static int apply_memory_cap(uint64_t cap) {
  /* a small product (BLIS's unpacked "sup" path) and a large one (packed path) */
  enum { WARM = 384 };
  float *buf = calloc((size_t)3 * WARM * WARM, sizeof *buf);
  if (buf) {
    float *x = buf, *w = buf + WARM * WARM, *y = buf + 2 * WARM * WARM;
    (void)pf_gemm_xwt(32, 32, 32, x, 32, w, PF_DTYPE_F32, 32, NULL, 0.0f, y, 32, NULL, NULL);
    (void)pf_gemm_xwt(WARM, WARM, WARM, x, WARM, w, PF_DTYPE_F32, WARM, NULL, 0.0f, y, WARM, NULL,
                      NULL);
    free(buf);
  }
  uint64_t base = data_vm_now();
  struct rlimit rl;
  if (getrlimit(RLIMIT_DATA, &rl) != 0) return -1;
  pf_json_init(); /* JSON parsers tell a failed allocation from malformed text (json.h) */
  rlim_t want = (rlim_t)(base + cap);
  if (rl.rlim_max != RLIM_INFINITY && want > rl.rlim_max) want = rl.rlim_max;
  rl.rlim_cur = want;
  return setrlimit(RLIMIT_DATA, &rl);
}

/* The memory cap from the command line or PFRUN_MAX_MEMORY; 0 ok, 2 usage error. */
static int setup_memory_cap(const pf_cli *c) {
  pf_err err = {0};
  uint64_t cap = c->max_memory;
  g_mem_cap_from = "--max-memory";
  const char *env = getenv("PFRUN_MAX_MEMORY");
  if (!cap && env && *env) {
    g_mem_cap_from = "PFRUN_MAX_MEMORY";
    if (pf_parse_size(env, &cap, &err) != PF_OK) {
      fprintf(stderr, "pfrun: error: PFRUN_MAX_MEMORY: %s\n", err.msg);
      return 2;
    }
  }
  if (!cap) return 0;
  pf_dist_settle(); /* MPI starts in a helper thread: its own memory is not the work's */
  if (apply_memory_cap(cap) != 0) {
    perror("pfrun: error: cannot set the memory cap (setrlimit RLIMIT_DATA)");
    return 1;
  }
  g_mem_cap = cap;
  char size[32];
  fmt_size(cap, size, sizeof size);
  snprintf(g_crash_note, sizeof g_crash_note,
           "; working memory is capped at %s by %s, and a library that cannot allocate aborts "
           "this way: raise the cap; its temporary files were removed\n",
           size, g_mem_cap_from);
  return 0;
}

/* ---- --pass-order / --memory-budget (or PFRUN_PASS_ORDER / PFRUN_MEMORY_BUDGET) ---- */

/* 0 ok, 2 usage error (a bad environment value). */
static int setup_pass(const pf_cli *c, pf_ctx *ctx) {
  pf_err err = {0};
  const char *order = getenv("PFRUN_PASS_ORDER"), *budget = getenv("PFRUN_MEMORY_BUDGET");
  ctx->pass_order = c->pass_order;
  ctx->memory_budget = c->memory_budget;
  if (!c->pass_order_given && order && *order &&
      pf_pass_order_parse(order, &ctx->pass_order, &err) != PF_OK) {
    fprintf(stderr, "pfrun: error: PFRUN_PASS_ORDER: %s\n", err.msg);
    return 2;
  }
  if (!c->memory_budget && budget && *budget &&
      pf_parse_size(budget, &ctx->memory_budget, &err) != PF_OK) {
    fprintf(stderr, "pfrun: error: PFRUN_MEMORY_BUDGET: %s\n", err.msg);
    return 2;
  }
  /* read deep in the pass's prefetch thread, where a typo would be ignored */
  const char *pre = getenv("PFRUN_PREFETCH");
  if (pre && *pre && strcmp(pre, "0") && strcmp(pre, "map") && strcmp(pre, "direct")) {
    fprintf(stderr, "pfrun: error: PFRUN_PREFETCH: expected 0, map or direct, got '%.40s'\n", pre);
    return 2;
  }
  return 0;
}

/* ---- progress bar on stderr (TTY only) ---- */

typedef struct ui {
  int quiet, tty;
  int silent;          /* MPI ranks other than 0: nothing at all, warnings neither */
  int open;            /* a progress bar's line is not ended yet */
  double last, start;  /* start: when the current task was first seen */
  uint64_t start_done; /* its progress then */
  char what[32];
} ui;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* "ETA 1m05s" from the rate so far, once a second has passed and something is done. */
static void eta_str(double elapsed, uint64_t done, uint64_t total, char *buf, size_t n) {
  buf[0] = '\0';
  if (elapsed < 1.0 || done == 0 || done >= total) return;
  double left = elapsed / (double)done * (double)(total - done);
  if (left >= 3600)
    snprintf(buf, n, " ETA %dh%02dm", (int)(left / 3600), (int)(left / 60) % 60);
  else
    snprintf(buf, n, " ETA %dm%02ds", (int)(left / 60), (int)left % 60);
}

static void ui_progress(void *ud, const char *what, uint64_t done, uint64_t total) {
  ui *u = ud;
  if (u->quiet || !u->tty || total == 0) return;
  double t = now_s();
  int finished = done >= total, same = strcmp(u->what, what) == 0;
  if (!same || done < u->start_done) {
    u->start = t;
    u->start_done = done;
  }
  if (!finished && same && t - u->last < 0.1) return;
  u->last = t;
  snprintf(u->what, sizeof u->what, "%s", what);
  /* the line fits the terminal: a wrapped line would not be redrawn by \r */
  struct winsize ws;
  const int cols = ioctl(2, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 ? ws.ws_col : 80;
  int width = cols - 35 < 30 ? cols - 35 : 30;
  if (width < 0) width = 0;
  const int fill = (int)((double)done / (double)total * width);
  char bar[64], eta[32];
  for (int i = 0; i < width; i++)
    bar[i] = i < fill ? '#' : '.';
  bar[width] = '\0';
  eta_str(t - u->start, done - u->start_done, total - u->start_done, eta, sizeof eta);
  if (width > 0)
    fprintf(stderr, "\r%-12s [%s] %5.1f%%%-12s", what, bar, 100.0 * (double)done / (double)total,
            eta);
  else /* narrow: the task and the percentage, within the width */
    fprintf(stderr, "\r%-*.*s %5.1f%%", cols > 8 ? cols - 8 : 1, cols > 8 ? cols - 8 : 1, what,
            100.0 * (double)done / (double)total);
  u->open = !finished;
  if (finished) fputc('\n', stderr);
  fflush(stderr);
}

static ui *g_ui; /* for fail(): a message starts on a line of its own */

/* End a progress bar's line before another line is written to stderr. */
static void ui_end_line(ui *u) {
  if (u && u->open) fputc('\n', stderr);
  if (u) u->open = 0;
}

/* --quiet drops progress and info lines, not warnings (a cache that could not be
 * written, a model_type run LLaMA-shaped, a checkpoint transformers would not load). */
static void ui_log(void *ud, const char *line) {
  ui *u = ud;
  if (u->silent || (u->quiet && strncmp(line, "warning: ", 9) != 0)) return;
  ui_end_line(u);
  fprintf(stderr, "%s\n", line);
}

/* ---- helpers ---- */

static int print_json(FILE *f, const pf_value *v) {
  char *text = pf_value_to_json_text(v);
  if (!text) return 1;
  fprintf(f, "%s\n", text);
  free(text);
  return 0;
}

/* Stage v's JSON for path (pf_stage_file); rank 0 alone under MPI (others: nothing). */
static int stage_json_file(const char *path, const pf_value *v, pf_staged *out, pf_err *err) {
  memset(out, 0, sizeof *out);
  if (!pf_dist_writer()) return PF_OK; /* MPI: rank 0 writes the outputs */
  char *text = pf_value_to_json_text(v);
  if (!text) return pf_err_set(err, PF_ERR_NOMEM, "out of memory");
  size_t n = strlen(text);
  text[n] = '\n';
  pf_status st = pf_stage_file(path, text, n + 1, out, err);
  free(text);
  return st;
}

static int write_json_file(const char *path, const pf_value *v, pf_err *err) {
  pf_staged s;
  pf_status st = stage_json_file(path, v, &s, err);
  return st ? st : pf_staged_commit(&s, err);
}

/* MPI: after this rank printed its error, stop every rank (the others may be
 * waiting for it in a collective step); one process: nothing to do. */
static void stop_all_ranks(int rc) {
  if (pf_dist_size() < 2) return;
  g_stop_msg[0] = '\0'; /* the launcher's signal then stops a rank that said why */
  fflush(NULL);
  pf_cleanup_temps();
  pf_dist_abort(rc);
}

static const pf_cli *g_cli; /* the command line, for errors in its words */

static int fail(const pf_err *given) {
  ui_end_line(g_ui);
  pf_err words = *given;
  if (g_cli) pf_cli_words(g_cli, &words);
  const pf_err *err = &words;
  char who[48] = ""; /* MPI: which rank failed */
  if (pf_dist_size() > 1 && pf_dist_error_shared(given->msg)) {
    /* every rank has this error at the same point: rank 0 says it, all stop. A rank
     * still ending when the launcher signals it (rank 0's exit came first) ends by
     * this error, not by the launcher: it says nothing more (before: "stopped by the
     * MPI launcher" from rank 1 when it was slower than mpirun, under load) */
    g_stop_msg[0] = '\0';
    if (pf_dist_writer()) fprintf(stderr, "pfrun: error: %s\n", err->msg);
    return 1;
  }
  if (pf_dist_size() > 1) {
    snprintf(who, sizeof who, "rank %d of %d: ", pf_dist_rank(), pf_dist_size());
    g_stop_msg[0] = '\0'; /* this rank says why itself */
    /* An error every rank meets at once (a missing file) is said once: rank 0 says it
     * and its MPI_Abort makes the launcher end the others (SIGCONT, SIGTERM a second
     * later) before they speak. An error of this rank alone comes 1.5 s later. */
    if (!pf_dist_writer()) nanosleep(&(struct timespec){.tv_sec = 1, .tv_nsec = 500000000}, NULL);
  }
  /* under a memory cap, an allocation failure is the cap: say so (one line) */
  if (g_mem_cap &&
      (err->code == PF_ERR_NOMEM || strstr(err->msg, "out of memory") ||
       strstr(err->msg, "cannot allocate") || strstr(err->msg, "not enough memory") ||
       /* a chart worker: the renderer's libraries abort when they cannot allocate */
       (strstr(err->msg, "worker process") && strstr(err->msg, "killed by signal")) ||
       /* PLplot cannot load its driver (a shared library) under the cap */
       strstr(err->msg, "Unable to load driver") || strstr(err->msg, strerror(ENOMEM)))) {
    char cap[32];
    fmt_size(g_mem_cap, cap, sizeof cap);
    fprintf(stderr,
            "pfrun: error: %sout of memory: working memory is capped at %s by %s; raise the cap "
            "or use less (smaller --batch-size / --max-length) (%s)\n",
            who, cap, g_mem_cap_from, err->msg);
    stop_all_ranks(1);
    return 1;
  }
  int rc = err->code == PF_ERR_INTERRUPTED ? 128 + (g_interrupt ? g_interrupt : SIGINT) : 1;
  fprintf(stderr, "pfrun: error: %s%s\n", who, err->msg);
  stop_all_ranks(rc);
  return rc;
}

/* Run op `name` with params + optional model; *out gets the result. */
static pf_status run_op(const char *name, pf_value *params, pf_model *model, pf_value **out,
                        const pf_ctx *ctx, pf_err *err) {
  if (model) pf_map_set(params, "model", pf_value_model(model));
  pf_status st = pf_op_run(name, params, out, ctx, err);
  if (model) pf_map_del(params, "model");
  return st;
}

/* ---- subcommands ---- */

static int cmd_prune(pf_cli *c, const pf_ctx *ctx) {
  pf_err err = {0};
  pf_value *loaded = NULL, *pruned = NULL, *saved = NULL, *stats = NULL, *calib = NULL;
  pf_staged staged = {0}; /* --stats-json, written with the checkpoint */
  int rc = 1;
  if (run_op("load", c->load_params, NULL, &loaded, ctx, &err) != PF_OK) goto out;
  pf_model *base = pf_map_model(loaded, "model");
  char a[40];
  pf_ctx_log(ctx, "Model: %s", pf_map_str(c->load_params, "path", ""));
  pf_ctx_log(ctx, "Original parameters: %s", fmt_thousands(pf_model_param_count(base), a, sizeof a));
  int rec = pf_main_add_reconstruct_data(c, c->prune_params);
  if (c->calib_params && (!rec || !strcmp(pf_map_str(c->prune_params, "method", "MAW"), "MAW"))) {
    /* data-driven: calibrate the unpruned model first; width pruning uses the
     * neuron norms (hybrid MAW), head pruning the head norms, depth pruning the
     * layer importance */
    if (run_op("calibrate", c->calib_params, base, &calib, ctx, &err) != PF_OK) goto out;
    int depth = strcmp(c->prune_op, "prune_depth") == 0;
    pf_value_retain(calib);
    pf_map_set(c->prune_params, depth ? "importance" : "calibration", calib);
  }
  if (run_op(c->prune_op, c->prune_params, base, &pruned, ctx, &err) != PF_OK) goto out;
  stats = pf_value_copy(pruned);
  if (!stats) {
    pf_err_set(&err, PF_ERR_NOMEM, "out of memory");
    goto out;
  }
  pf_map_del(stats, "model");
  pf_map_del(stats, "op");
  pf_map_del(stats, "seconds");
  /* the stats file is written before the checkpoint moves into place and appears with
   * it: a full disk there fails the run before a checkpoint it would not describe is
   * saved (the run could not be repeated without --overwrite) */
  const char *out_dir = pf_map_str(c->save_params, "path", "");
  const int inside = c->stats_json && pf_path_inside(c->stats_json, out_dir); /* after the save */
  if (c->stats_json && !inside && stage_json_file(c->stats_json, stats, &staged, &err) != PF_OK)
    goto out;
  if (run_op("save", c->save_params, pf_map_model(pruned, "model"), &saved, ctx, &err) != PF_OK)
    goto out;
  if (pf_staged_commit(&staged, &err) != PF_OK) goto out;
  if (inside && write_json_file(c->stats_json, stats, &err) != PF_OK) goto out;
  if (c->dry_run) {
    printf("Dry run: no weight was read or written. Plan for %s:\n",
           pf_map_str(c->save_params, "path", ""));
    pf_value *plan = pf_map_get(saved, "plan");
    if (plan) print_save_plan(plan);
    print_reconstruct_plan(pf_map_get(stats, "reconstruct"));
    print_calibration_plan(calib);
  } else if (!c->quiet) {
    print_prune_summary(stats);
    printf("Saved to %s\n", pf_map_str(c->save_params, "path", ""));
  }
  rc = 0;
out:
  pf_staged_discard(&staged);
  pf_value_release(loaded);
  pf_value_release(pruned);
  pf_value_release(saved);
  pf_value_release(stats);
  pf_value_release(calib);
  return rc ? fail(&err) : 0;
}

static int cmd_analyze(pf_cli *c, const pf_ctx *ctx) {
  pf_err err = {0};
  pf_value *loaded = NULL, *res = NULL, *params = NULL;
  int rc = 1;
  if (run_op("load", c->load_params, NULL, &loaded, ctx, &err) != PF_OK) goto out;
  if (!(params = pf_value_map())) {
    pf_err_set(&err, PF_ERR_NOMEM, "analyze: out of memory");
    goto out;
  }
  if (run_op("analyze", params, pf_map_model(loaded, "model"), &res, ctx, &err) != PF_OK) goto out;
  pf_map_del(res, "op");
  pf_map_del(res, "seconds");
  if (c->json)
    print_json(stdout, res);
  else
    print_analyze(res, pf_map_str(c->load_params, "path", ""));
  rc = 0;
out:
  pf_value_release(loaded);
  pf_value_release(params);
  pf_value_release(res);
  return rc ? fail(&err) : 0;
}

/* Load --model-path (and --compare), then run `op` with c->op_params. */
static pf_status run_opcmd(pf_cli *c, const char *op, pf_value **loaded, pf_value **parent,
                           pf_value **res, const pf_ctx *ctx, pf_err *err) {
  pf_status st = run_op("load", c->load_params, NULL, loaded, ctx, err);
  if (!st && c->compare_path) {
    pf_value *p = pf_value_map();
    if (!p) return pf_err_set(err, PF_ERR_NOMEM, "out of memory");
    pf_map_set(p, "path", pf_value_str(c->compare_path));
    st = run_op("load", p, NULL, parent, ctx, err);
    pf_value_release(p);
    if (!st) pf_map_set(c->op_params, "compare", pf_value_model(pf_map_model(*parent, "model")));
  }
  if (!st) st = run_op(op, c->op_params, pf_map_model(*loaded, "model"), res, ctx, err);
  if (!st) {
    pf_map_del(*res, "op");
    pf_map_del(*res, "seconds");
  }
  return st;
}

static int cmd_importance(pf_cli *c, const pf_ctx *ctx) {
  pf_err err = {0};
  pf_value *loaded = NULL, *parent = NULL, *res = NULL;
  int rc = 1;
  if (run_opcmd(c, "importance", &loaded, &parent, &res, ctx, &err) != PF_OK) goto out;
  const pf_value *imp = pf_map_get(res, "importance");
  if (!c->quiet && !c->dry_run) print_importance(imp);
  if (c->json_out && !c->dry_run && imp && write_json_file(c->json_out, imp, &err) != PF_OK)
    goto out;
  rc = 0;
out:
  pf_value_release(loaded);
  pf_value_release(parent);
  pf_value_release(res);
  return rc ? fail(&err) : 0;
}

static int cmd_eval(pf_cli *c, const pf_ctx *ctx) {
  pf_err err = {0};
  pf_value *loaded = NULL, *parent = NULL, *res = NULL;
  int rc = 1;
  if (run_opcmd(c, "evaluate", &loaded, &parent, &res, ctx, &err) != PF_OK) goto out;
  pf_map_set_str(res, "model_path", pf_map_str(c->load_params, "path", ""));
  pf_value *cmp = pf_map_get(res, "compare");
  if (cmp && c->compare_path) pf_map_set_str(cmp, "model_path", c->compare_path);
  if (!c->quiet && !c->dry_run)
    print_eval(pf_map_str(c->load_params, "path", ""), c->compare_path, res);
  if (c->json_out && !c->dry_run && write_json_file(c->json_out, res, &err) != PF_OK) goto out;
  rc = 0;
out:
  pf_value_release(loaded);
  pf_value_release(parent);
  pf_value_release(res);
  return rc ? fail(&err) : 0;
}

static int cmd_bench(pf_cli *c, const pf_ctx *ctx) {
  pf_err err = {0};
  pf_value *loaded = NULL, *parent = NULL, *res = NULL;
  int rc = 1;
  if (run_opcmd(c, "benchmark", &loaded, &parent, &res, ctx, &err) != PF_OK) goto out;
  pf_map_set_str(res, "model_path", pf_map_str(c->load_params, "path", ""));
  if (!c->quiet && !c->dry_run) print_bench(res);
  if (c->json_out && !c->dry_run && write_json_file(c->json_out, res, &err) != PF_OK) goto out;
  rc = 0;
out:
  pf_value_release(loaded);
  pf_value_release(parent);
  pf_value_release(res);
  return rc ? fail(&err) : 0;
}

static int cmd_generate(pf_cli *c, const pf_ctx *ctx) {
  pf_err err = {0};
  pf_value *loaded = NULL, *parent = NULL, *res = NULL;
  if (run_opcmd(c, "generate", &loaded, &parent, &res, ctx, &err) != PF_OK) {
    pf_value_release(loaded);
    return fail(&err);
  }
  if (!c->dry_run) {
    printf("%s%s\n", pf_map_str(c->op_params, "prompt", ""), pf_map_str(res, "text", ""));
    const long long unknown = (long long)pf_map_int(res, "tokens_not_in_tokenizer", 0);
    if (!c->quiet)
      fprintf(stderr, "%lld tokens, %.1f tokens/s decode, prefill %.3f s\n",
              (long long)pf_map_int(res, "generated_tokens", 0),
              pf_map_num(res, "decode_tokens_per_second", 0),
              pf_map_num(res, "prefill_seconds", 0));
    if (unknown > 0 && !c->quiet)
      fprintf(stderr,
              "pfrun: warning: %lld generated ids have no token in the tokenizer (the model's "
              "vocabulary is larger); they are left out of the text\n",
              unknown);
  }
  pf_value_release(loaded);
  pf_value_release(res);
  return 0;
}

/* Per pair: the overall mean difference and the per-component means. */
static int cmd_bias(pf_cli *c, const pf_ctx *ctx) {
  pf_err err = {0};
  pf_value *loaded = NULL, *acts = NULL, *metrics = NULL, *mp = NULL, *pp = NULL, *plot = NULL,
           *written = NULL; /* the charts drawn so far */
  int rc = 1;
  /* the folders the metrics and plot ops will create for the output */
  char *made = c->output_dir && !c->dry_run ? pf_missing_dir(c->output_dir) : NULL;
  /* the output folder itself, when this run creates it, is removed whole, as a temporary
   * folder is, should the run end abruptly (a second Ctrl-C, SIGKILL: the janitor): not
   * half the charts under their final names. Not the ancestors the run creates too: a
   * parallel run may put its own output folder beside it there. */
  const int guard = made && pf_dist_writer();
  if (guard) pf_temp_register(c->output_dir);
  if (run_op("load", c->load_params, NULL, &loaded, ctx, &err) != PF_OK) goto out;
  if (run_op("bias_activations", c->op_params, pf_map_model(loaded, "model"), &acts, ctx, &err))
    goto out;
  if (!(mp = pf_value_map()) || !(pp = pf_value_map())) goto nomem;
  pf_value_retain(acts);
  pf_map_set(mp, "activations", acts);
  if (c->output_dir) pf_map_set_str(mp, "output_dir", c->output_dir);
  if (run_op("metrics", mp, NULL, &metrics, ctx, &err) != PF_OK) goto out;
  char vis[256];
  snprintf(vis, sizeof vis, "%s", c->visualizations);
  pf_value_retain(acts);
  pf_map_set(pp, "data", acts);
  pf_map_set(pp, "layers", pf_value_copy(c->plot_layers));
  pf_map_set_str(pp, "format", c->format);
  if (c->output_dir) pf_map_set_str(pp, "output_dir", c->output_dir);
  if (!(written = pf_value_list())) goto nomem;
  for (char *save = NULL, *t = strtok_r(vis, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
    pf_map_set_str(pp, "kind", t);
    pf_value_release(plot);
    plot = NULL;
    if (run_op("plot", pp, NULL, &plot, ctx, &err) != PF_OK) goto out;
    const pf_value *files = pf_map_get(plot, "files");
    for (size_t i = 0; files && files->type == PF_V_LIST && i < files->u.list.len; i++)
      if (pf_list_push(written, pf_value_copy(files->u.list.items[i]))) goto nomem;
    if (!c->quiet && files && files->type == PF_V_LIST)
      fprintf(stderr, "%s: %zu charts in %s\n", t, files->u.list.len, c->output_dir);
  }
  if (!c->quiet && !c->dry_run) print_bias(metrics);
  if (c->json_out && !c->dry_run &&
      write_json_file(c->json_out, pf_map_get(metrics, "pairs"), &err) != PF_OK)
    goto out;
  rc = 0;
  goto out;
nomem:
  pf_err_set(&err, PF_ERR_NOMEM, "out of memory");
out:
  if (rc) { /* the command leaves no partial output: neither the metrics nor some charts */
    pf_remove_listed(pf_map_get(metrics, "files"));
    pf_remove_listed(written);
    pf_remove_empty_dirs(c->output_dir, made);
  }
  if (guard) pf_temp_unregister(c->output_dir);
  free(made);
  pf_value_release(written);
  pf_value_release(loaded);
  pf_value_release(acts);
  pf_value_release(metrics);
  pf_value_release(mp);
  pf_value_release(pp);
  pf_value_release(plot);
  return rc ? fail(&err) : 0;
}

static const char *ptype_name(pf_ptype t) {
  switch (t) {
  case PF_P_BOOL:
    return "bool";
  case PF_P_INT:
    return "int";
  case PF_P_NUM:
    return "number";
  case PF_P_STR:
    return "string";
  case PF_P_INTLIST:
    return "int list";
  case PF_P_MODEL:
    return "model";
  case PF_P_ANY:
    return "any";
  }
  return "?";
}

static int cmd_ops(pf_cli *c) {
  if (!c->topic) {
    printf("%-16s %s\n", "op", "summary");
    for (size_t i = 0; i < pf_op_count(); i++)
      printf("%-16s %s\n", pf_op_at(i)->name, pf_op_at(i)->summary);
    printf("\npfrun ops NAME shows an op's parameters.\n");
    return 0;
  }
  const pf_op *op = pf_op_find(c->topic);
  if (!op) {
    fprintf(stderr, "pfrun: error: unknown op '%s' (pfrun ops lists them)\n", c->topic);
    return 2;
  }
  if (op->alias)
    printf("%s (alias %s) — %s\n\nparameters:\n", op->name, op->alias, op->summary);
  else
    printf("%s — %s\n\nparameters:\n", op->name, op->summary);
  for (size_t i = 0; i < op->n_params; i++) {
    const pf_param_spec *p = &op->params[i];
    printf("  %-26s %-8s %s", p->name, ptype_name(p->type), p->required ? "required" : "optional");
    if (p->def) printf(", default %s", p->def);
    if (p->choices) printf(", one of %s", p->choices);
    if (p->min < p->max) printf(", range [%g, %g]", p->min, p->max);
    printf("\n      %s\n", p->help ? p->help : "");
  }
  if (op->returns)
    printf("\nreturns: %s\n(every result also holds op, the op's name, and seconds, its wall "
           "time)\n",
           op->returns);
  return 0;
}

static int cmd_recipe(pf_cli *c, const pf_ctx *ctx) {
  pf_err err = {0};
  pf_value *res = NULL;
  pf_recipe_opts o = {.sets = c->sets, .n_sets = c->n_sets};
  if (pf_recipe_run(c->file, &o, ctx, &res, &err) != PF_OK) {
    int rc = fail(&err);
    if (strstr(err.msg, ": --set '") && rc == 1) { /* a bad --set is a usage error */
      fprintf(stderr, "Try 'pfrun help recipe' for its options.\n");
      rc = 2;
    }
    return rc;
  }
  if (c->dry_run) {
    printf("Dry run of %s: every step validated, no weight read or written. Plan:\n", c->file);
    print_recipe_plan(res);
  } else if (!c->quiet) {
    const pf_value *steps = pf_map_get(res, "steps");
    size_t n = steps && steps->type == PF_V_LIST ? steps->u.list.len : 0;
    char a[40], b[40];
    for (size_t i = 0; i < n; i++) {
      const pf_value *st = steps->u.list.items[i], *r = pf_map_get(st, "result");
      const char *id = pf_map_str(st, "id", NULL);
      printf("  %zu. %-12s %-12s %8.3f s", i + 1, pf_map_str(st, "op", "?"), id ? id : "",
             pf_map_num(st, "seconds", 0));
      if (r && pf_map_has(r, "pruned_parameters"))
        printf("  parameters %s -> %s (-%.2f%%)",
               fmt_thousands(pf_map_int(r, "original_parameters", 0), a, sizeof a),
               fmt_thousands(pf_map_int(r, "pruned_parameters", 0), b, sizeof b),
               pf_map_num(r, "percentage_reduction", 0));
      else if (r && pf_map_has(r, "path"))
        printf("  -> %s", pf_map_str(r, "path", ""));
      else if (r && pf_map_has(r, "perplexity")) {
        printf("  perplexity %.3f", pf_map_num(r, "perplexity", 0));
        const pf_value *cmp = pf_map_get(r, "compare");
        if (cmp)
          printf(" (parent %.3f, KL %.4f, top-1 %.1f%%)", pf_map_num(cmp, "perplexity", 0),
                 pf_map_num(r, "kl_divergence", 0), 100 * pf_map_num(r, "top1_agreement", 0));
      } else if (r && pf_map_has(r, "parameters"))
        printf("  %s parameters", fmt_thousands(pf_map_int(r, "parameters", 0), a, sizeof a));
      else if (r && pf_map_has(r, "reused_layers"))
        printf("  %lld layers taken from the reused result",
               (long long)pf_map_int(r, "reused_layers", 0));
      printf("\n");
    }
    printf("Recipe %s: %zu steps done; results in %s/results.json\n", c->file, n,
           pf_map_str(res, "output_dir", "."));
  }
  pf_value_release(res);
  return 0;
}

static void print_version(void) {
  printf("pfrun %s\n", PF_VERSION);
  printf("kernels: %s\n", pf_kernels_describe());
  if (!pf_dist_available())
    printf(
        "mpi: not built in (one process; see README, \"Models larger than RAM, and clusters\")\n");
  else
    printf("mpi: built in; this run: %d rank%s (rank %d)\n", pf_dist_size(),
           pf_dist_size() > 1 ? "s" : "", pf_dist_rank());
}

int main(int argc, char **argv) {
  pf_lua_interpreter = argv[0];
  pf_cli c;
  pf_err err = {0};
  pf_main_open_standard_fds();
  /* output piped into `head`: the reader's end closes, and SIGPIPE would end the run in
   * the middle of its work (a recipe between two steps); caught, the writes fail (EPIPE),
   * the work finishes, and check_stdout ends the run as the signal would have (141) */
  pf_main_catch_sigpipe();
  /* A process killed outright (SIGKILL: the OOM killer; Ctrl-C on mpirun, which sends
   * SIGTERM and a moment later SIGKILL) cannot remove its temporary folders itself: a
   * janitor process removes what it leaves (fsutil.h). Forked first, before MPI and any
   * thread. */
  (void)pf_temp_janitor_start();
  /* Ctrl-C, SIGTERM and SIGHUP are handled by this thread, which runs a Lua script (its
   * handler installs a Lua hook, which must not race the interpreter from another
   * thread): blocked while MPI and OpenMP start their threads, which keep them blocked;
   * pf_main_install_signals starts the OpenMP team and unblocks them here. */
  pf_main_block_interrupts();
  /* MPI (mpirun / srun): before any thread starts. Ranks other than 0 print
   * nothing but their errors; rank 0 alone writes (runtime/dist/dist.h). */
  if (pf_dist_init(&argc, &argv, &err) != PF_OK) {
    fprintf(stderr, "pfrun: error: %s\n", err.msg);
    return 1;
  }
  atexit(pf_dist_finish); /* every normal exit leaves MPI cleanly */
  g_ranks = pf_dist_size();
  snprintf(g_stop_msg, sizeof g_stop_msg,
           "pfrun: rank %d of %d: stopped by the MPI launcher; temporary folders removed\n",
           pf_dist_rank(), g_ranks);
  if (!pf_dist_writer() && !freopen("/dev/null", "w", stdout)) {
    fprintf(stderr, "pfrun: error: rank %d: cannot silence stdout\n", pf_dist_rank());
    pf_dist_abort(1);
  }
  if (pf_cli_parse(argc, argv, &c, &err) != PF_OK) {
    fprintf(stderr, "pfrun: error: %s\n", err.msg);
    if (err.code == PF_ERR_NOMEM) { /* not a usage error: nothing to correct */
      pf_cli_free(&c);
      return 1;
    }
    if (c.usage_topic)
      fprintf(stderr, "Try 'pfrun help %s' for its options.\n", c.usage_topic);
    else
      fprintf(stderr, "Try 'pfrun --help' for help.\n");
    pf_cli_free(&c);
    return 2;
  }
  if (!pf_dist_writer()) c.quiet = 1; /* MPI: rank 0 alone prints (errors aside) */
  /* BLIS reads its architecture from the environment when it initialises:
   * choose it now, before any thread starts (see kernels.h). A failure here is
   * reported by the first op that needs the kernels. */
  pf_kernels_init(NULL);
  pf_main_install_signals();
  int cap_rc = setup_memory_cap(&c);
  if (cap_rc) {
    pf_cli_free(&c);
    return cap_rc;
  }

  ui u = {.quiet = c.quiet || !pf_dist_writer(), .silent = !pf_dist_writer(), .tty = isatty(2)};
  g_ui = &u;
  pf_ctx ctx = {.progress = ui_progress,
                .log = ui_log,
                .user_data = &u,
                .dry_run = c.dry_run,
                .interrupt = &g_interrupt,
                .memory_cap = g_mem_cap};
  const pf_kernels_info *ki = pf_kernels_info_get();
  /* more threads than CPUs (OMP_NUM_THREADS): a warning; a quota's cap is told by
   * --version only (an info line on every command would be noise) */
  if (ki && ki->omp_threads > ki->cpus)
    pf_ctx_log(&ctx, "warning: threads: %d, %s", ki->omp_threads, ki->threads_note);
  int pass_rc = setup_pass(&c, &ctx);
  if (pass_rc) {
    pf_cli_free(&c);
    return pass_rc;
  }
  int rc = 0;
  g_cli = &c;
  const char *topic = NULL;
  if (pf_main_check_op_options(&c, &topic, &err) != PF_OK) {
    pf_cli_words(&c, &err);
    fprintf(stderr, "pfrun: error: %s\nTry 'pfrun help %s' for its options.\n", err.msg, topic);
    pf_cli_free(&c);
    return 2;
  }
  /* the output paths are rank 0's to check (it writes them, maybe before another
   * rank gets here); what it finds stops every rank, said once */
  pf_status pre = pf_dist_writer() ? pf_main_check_json_output(&c, &err) : PF_OK;
  if (pf_dist_writer() && pre == PF_OK) pre = pf_main_check_prune_output(&c, &err);
  if (pf_dist_writer_outcome(pre, &err) != PF_OK) {
    rc = fail(&err);
    pf_cli_free(&c);
    return rc;
  }
  /* clang-format off */
  switch (c.kind) {
  case PF_CLI_HELP: fputs(pf_cli_help(c.topic), stdout); break;
  case PF_CLI_VERSION: print_version(); break;
  case PF_CLI_PRUNE: rc = cmd_prune(&c, &ctx); break;
  case PF_CLI_ANALYZE: rc = cmd_analyze(&c, &ctx); break;
  case PF_CLI_OPS: rc = cmd_ops(&c); break;
  case PF_CLI_RECIPE: rc = cmd_recipe(&c, &ctx); break;
  case PF_CLI_IMPORTANCE: rc = cmd_importance(&c, &ctx); break;
  case PF_CLI_EVAL: rc = cmd_eval(&c, &ctx); break;
  case PF_CLI_GENERATE: rc = cmd_generate(&c, &ctx); break;
  case PF_CLI_BENCH: rc = cmd_bench(&c, &ctx); break;
  case PF_CLI_BIAS: rc = cmd_bias(&c, &ctx); break;
  case PF_CLI_TOKENIZE:
    if (pf_tokenize_run(&c.tokenize, stdout, &err) != PF_OK) rc = fail(&err);
    break;
  case PF_CLI_LUA:
    if (pf_lua_run_file(c.file, c.script_argc, c.script_argv, &ctx, &err) != PF_OK) rc = fail(&err);
    break;
  }
  /* clang-format on */
  if (rc == 0) print_plan_done(&c);
  pf_cleanup_temps();
  g_cli = NULL;
  pf_cli_free(&c);
  if (g_interrupt && rc == 0) {
    /* the signal came after the last check: the work is done, its outputs complete */
    rc = 128 + g_interrupt;
    fprintf(stderr,
            "pfrun: interrupted by signal %d after the work finished: every output is complete "
            "and kept\n",
            g_interrupt);
  }
  return pf_main_check_stdout(rc);
}
