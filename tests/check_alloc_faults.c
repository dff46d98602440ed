/* check_alloc_faults.c — allocation-failure injection (docs/reliability.md "Memory").
 *
 * This executable is linked with -Wl,--wrap=malloc,calloc,realloc,strdup,strndup,
 * posix_memalign,free (the "allocation-failure injection" block at the end of
 * CMakeLists.txt), so every allocation made by pfrun's own code (libpf, the
 * front ends; not the shared libraries libyaml, Lua, PCRE2, BLIS) goes through
 * the wrappers below. cJSON's allocations do too: runtime/json.c installs
 * cJSON hooks that call malloc/free from libpf, so a JSON parse that runs out of
 * memory must be reported as out of memory, not as malformed JSON. A Lua
 * script whose op fails keeps the op's status (PF_ERR_NOMEM).
 * Armed with N, the wrappers fail the N-th allocation after arming (only that
 * one). Each scenario runs for N = 1, 2, ...
 * until an iteration completes without reaching the N-th allocation; every
 * iteration must
 *   - return (no crash, no abort): an error status, or PF_OK when the code has a
 *     fallback for that allocation (counted and printed);
 *   - report the failure as PF_ERR_NOMEM when it returns an error;
 *   - leave no "*.tmp-*" file or folder and no half-written output;
 *   - leak nothing: the wrappers track every pointer they hand out while armed,
 *     and whatever is still live after the scenario cleaned up is a leak (under
 *     ASan, LeakSanitizer checks the whole process at exit as well).
 * The scenarios: load a checkpoint, prune_width, prune_depth, prune_heads, save (converted
 * and sharded), tokenizer load + encode + decode, dataset load, calibrate (with
 * its cache), evaluate, a recipe run, a Lua script, bias_activations reusing a parent's result.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "bias.h"
#include "dataset.h"
#include "fsutil.h"
#include "hfconfig.h"
#include "op.h"
#include "pf_lua.h"
#include "recipe.h"
#include "safetensors.h"
#include "testutil.h"
#include "tokenizer.h"

/* ---- the wrappers ---- */

/* fsync and sync_file_range (also wrapped, CMakeLists.txt) do nothing here: they
 * allocate nothing, durability is not what this suite checks, and waiting for the
 * disk was a third of the save scenario's time (52 -> 33 s under ASan). */
int __wrap_fsync(int fd) {
  (void)fd;
  return 0;
}
int __wrap_sync_file_range(int fd, off64_t off, off64_t n, unsigned int flags) {
  (void)fd, (void)off, (void)n, (void)flags;
  return 0;
}

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t m);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
char *__real_strndup(const char *s, size_t n);
int __real_posix_memalign(void **p, size_t align, size_t n);
void __real_free(void *p);

/* The counters live in a MAP_SHARED page (main), so that the processes a
 * scenario forks (the plot op's chart workers, reports/charts_jobs.c) count and
 * refuse allocations together with the scenario: N is the N-th allocation of
 * them all, and a refusal in a worker is seen here. */
typedef struct counters {
  volatile long fail_at; /* 0: disarmed */
  volatile long count;   /* allocations since arming */
  volatile int hit;      /* the N-th allocation was refused */
} counters;
static counters g_local, *g_c = &g_local;
static long g_trap_at = -1;

/* Live pointers handed out while armed: open addressing, tombstones. */
#define LIVE_CAP ((size_t)1 << 18)
#define TOMB ((void *)1)
static void *g_live[LIVE_CAP];
static volatile int g_lock = 0;
static volatile int g_track = 0;
static long g_live_n = 0;

static void lock(void) {
  while (__sync_lock_test_and_set(&g_lock, 1))
    ;
}
static void unlock(void) { __sync_lock_release(&g_lock); }

static size_t slot_of(const void *p) {
  uintptr_t x = (uintptr_t)p;
  x ^= x >> 17;
  x *= 0xed5ad4bbu;
  x ^= x >> 11;
  return (size_t)x & (LIVE_CAP - 1);
}

static void live_add(void *p) {
  if (!p || !g_track) return;
  lock();
  for (size_t i = slot_of(p), k = 0; k < LIVE_CAP; k++, i = (i + 1) & (LIVE_CAP - 1))
    if (!g_live[i] || g_live[i] == TOMB) {
      g_live[i] = p;
      g_live_n++;
      break;
    }
  unlock();
}

static void live_del(void *p) {
  if (!p || !g_live_n) return;
  lock();
  for (size_t i = slot_of(p), k = 0; k < LIVE_CAP && g_live[i]; k++, i = (i + 1) & (LIVE_CAP - 1))
    if (g_live[i] == p) {
      g_live[i] = TOMB;
      g_live_n--;
      break;
    }
  unlock();
}

static int refuse(void) {
  if (!g_c->fail_at) return 0;
  long c = __sync_add_and_fetch(&g_c->count, 1);
  if (c != g_c->fail_at) return 0;
  g_c->hit = 1;
  if (g_trap_at == c) __builtin_trap(); /* PF_ALLOC_TRAP=N: stop a debugger at allocation N */
  return 1;
}

void *__wrap_malloc(size_t n) {
  if (refuse()) return NULL;
  void *p = __real_malloc(n);
  live_add(p);
  return p;
}
void *__wrap_calloc(size_t n, size_t m) {
  if (refuse()) return NULL;
  void *p = __real_calloc(n, m);
  live_add(p);
  return p;
}
void *__wrap_realloc(void *p, size_t n) {
  if (refuse()) return NULL;
  void *q = __real_realloc(p, n);
  if (q || n == 0) live_del(p);
  live_add(q);
  return q;
}
char *__wrap_strdup(const char *s) {
  if (refuse()) return NULL;
  char *p = __real_strdup(s);
  live_add(p);
  return p;
}
char *__wrap_strndup(const char *s, size_t n) {
  if (refuse()) return NULL;
  char *p = __real_strndup(s, n);
  live_add(p);
  return p;
}
int __wrap_posix_memalign(void **out, size_t align, size_t n) {
  if (refuse()) return 12; /* ENOMEM */
  int r = __real_posix_memalign(out, align, n);
  if (!r) live_add(*out);
  return r;
}
void __wrap_free(void *p) {
  live_del(p);
  __real_free(p);
}

static void arm(long n) {
  g_c->count = 0;
  g_c->hit = 0;
  g_c->fail_at = n;
}
static void disarm(void) { g_c->fail_at = 0; }

static void track_begin(void) {
  lock();
  memset(g_live, 0, sizeof g_live);
  g_live_n = 0;
  g_track = 1;
  unlock();
}
static long track_end(void) {
  g_track = 0;
  return g_live_n;
}

/* LeakSanitizer, when linked in (the sanitizer build). */
int __lsan_do_recoverable_leak_check(void) __attribute__((weak));

/* ---- fixtures ---- */

static char *g_root, *g_model;

/* Any "*.tmp-*" under dir (recursive); its path into buf. */
static int find_temp(const char *dir, char *buf, size_t n) {
  DIR *d = opendir(dir);
  if (!d) return 0;
  struct dirent *e;
  int found = 0;
  while (!found && (e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
    if (strstr(e->d_name, ".tmp-")) {
      snprintf(buf, n, "%s", p);
      found = 1;
    } else if (pf_is_dir(p))
      found = find_temp(p, buf, n);
  }
  closedir(d);
  return found;
}

static void setup(void) {
  g_root = pf_test_tmpdir("allocfault");
  char *cache = pf_path_join(g_root, "cache"), *scratch = pf_path_join(g_root, "scratch");
  setenv("PFRUN_CACHE", cache, 1);
  setenv("PFRUN_SCRATCH", scratch, 1);
  pf_err err = {0};
  ck_assert_int_eq(pf_mkdirs(scratch, &err), PF_OK);
  free(cache);
  free(scratch);
  g_model = pf_test_synth("llama-tiny", 5, NULL);
  /* captured activations in 256 KiB blocks, not 32 MiB ones: the same code and the same
   * allocations (this model's tensors of a run fit in one block either way), without
   * mapping 32 MiB in each of the ~1000 runs of the bias scenarios (ASan fills and poisons
   * its shadow each time: bias_reuse 11.7 -> 1.3 s under ASan) */
  pf_bias_capture_block = (size_t)256 << 10;
  char *data = pf_path_join(g_root, "data.txt");
  pf_test_write(data, "The cat sat on the mat.\n\nA dog ran in the park today.\n\n"
                      "Then it rained and the children went home.\n\nThe end.\n");
  free(data);
}

static void teardown(void) {
  pf_test_rmtree(g_root);
  free(g_root);
  pf_test_synth_free(g_model);
}

/* ---- scenarios: prepare (not armed), run (armed), finish (not armed) ---- */

typedef struct scen {
  const char *name;
  pf_value *params; /* op scenarios */
  pf_value *base;   /* a loaded model result */
  pf_tokenizer *tok;
  char *path; /* output path, recipe or script */
  pf_status (*run)(struct scen *s, pf_err *err);
  const char *op;
} scen;

static pf_value *load_base(void) {
  pf_value *p = pf_value_map(), *out = NULL;
  pf_map_set_str(p, "path", g_model);
  pf_err err = {0};
  ck_assert_msg(pf_op_run("load", p, &out, NULL, &err) == PF_OK, "load: %s", err.msg);
  pf_value_release(p);
  return out;
}

static pf_value *params_with_model(const pf_value *base) {
  pf_value *p = pf_value_map();
  pf_map_set(p, "model", pf_value_model(pf_map_model(base, "model")));
  return p;
}

/* The base model width-pruned, as {"model": ...}: its MLP tensors are lazy
 * (tensor.h), so save gathers them and a forward pass materialises them. */
static pf_value *load_pruned(void) {
  pf_value *base = load_base(), *p = params_with_model(base), *out = NULL;
  pf_map_set(p, "pruning_percentage", pf_value_num(30));
  pf_err err = {0};
  ck_assert_msg(pf_op_run("prune_width", p, &out, NULL, &err) == PF_OK, "prune_width: %s",
                err.msg);
  pf_value_release(p);
  pf_value_release(base);
  return out;
}

static pf_status run_op(scen *s, pf_err *err) {
  pf_value *out = NULL;
  pf_status st = pf_op_run(s->op, s->params, &out, NULL, err);
  pf_value_release(out);
  return st;
}

static pf_status run_tokenizer(scen *s, pf_err *err) {
  pf_tokenizer *tok = NULL;
  int32_t *ids = NULL;
  size_t n = 0;
  char *text = NULL;
  static const char in[] = "Hello world, the cat sat on the mat. \xc3\xa9t\xc3\xa9 <s> 123";
  pf_status st = pf_tokenizer_load(s->path, &tok, err);
  if (!st) st = pf_tokenizer_encode(tok, in, sizeof in - 1, 1, &ids, &n, err);
  if (!st) st = pf_tokenizer_decode(tok, ids, n, 0, &text, NULL, err);
  if (!st && strstr(text, "cat sat") == NULL)
    st = pf_err_set(err, PF_ERR_INVALID, "round trip lost the text: %s", text);
  free(text);
  free(ids);
  pf_tokenizer_free(tok);
  return st;
}

static pf_status run_dataset(scen *s, pf_err *err) {
  pf_data_opts o = pf_data_opts_default();
  o.data = s->path;
  o.max_length = 16;
  o.batch_size = 2;
  pf_dataset *ds = NULL;
  pf_status st = pf_dataset_load(&o, s->tok, &ds, err);
  if (!st && pf_dataset_batch_count(ds) < 1) st = pf_err_set(err, PF_ERR_INVALID, "no batches");
  pf_dataset_free(ds);
  return st;
}

static pf_status run_recipe(scen *s, pf_err *err) {
  pf_value *res = NULL;
  pf_recipe_opts o = {0};
  pf_status st = pf_recipe_run(s->path, &o, NULL, &res, err);
  pf_value_release(res);
  return st;
}

static pf_status run_lua(scen *s, pf_err *err) {
  char *argv[] = {g_model};
  return pf_lua_run_file(s->path, 1, argv, NULL, err);
}

static pf_status count_sample(void *ud, const char *text, size_t len, int64_t line, int *stop,
                              pf_err *err) {
  (*(int *)ud)++;
  return PF_OK;
}

/* Every JSON parser: config.json, a safetensors header, a .jsonl data file and
 * a prompt-pairs file. A failure inside cJSON must read "out of memory while
 * parsing JSON" (PF_ERR_NOMEM), never "malformed JSON"; g_json_oom counts them. */
static long g_json_oom;

static pf_status run_json(scen *s, pf_err *err) {
  char *text = NULL, *cfg = pf_path_join(g_model, "config.json");
  char *st_path = pf_path_join(g_model, "model.safetensors");
  char *jsonl = pf_path_join(g_root, "data.jsonl"), *pairs = pf_path_join(g_root, "pairs.jsonl");
  pf_model_config c;
  pf_st_reader *r = NULL;
  pf_prompt_pairs pp = {0};
  pf_value *pv = NULL;
  int n = 0;
  memset(&c, 0, sizeof c);
  pf_status st = cfg && st_path && jsonl && pairs ? PF_OK : pf_err_set(err, PF_ERR_NOMEM, "oom");
  if (!st) st = pf_read_file(cfg, (size_t)1 << 20, &text, NULL, err);
  if (!st) st = pf_config_parse(text, cfg, &c, err);
  if (!st) st = pf_st_open(st_path, &r, err);
  if (!st) st = pf_data_read_samples(jsonl, "text", count_sample, &n, NULL, err);
  if (!st && !(pv = pf_value_str(pairs))) st = pf_err_set(err, PF_ERR_NOMEM, "oom");
  if (!st) st = pf_prompt_pairs_from_value(pv, &pp, err);
  if (st && strstr(err->msg, "out of memory while parsing JSON")) g_json_oom++;
  pf_prompt_pairs_free(&pp);
  pf_value_release(pv);
  pf_st_close(r);
  pf_config_free(&c);
  free(text);
  free(cfg);
  free(st_path);
  free(jsonl);
  free(pairs);
  return st;
}

/* Output folders the scenarios write (removed after each iteration). */
static void remove_outputs(void) {
  static const char *const outs[] = {"out", "rout", "lout", "calcache", "results"};
  for (size_t i = 0; i < sizeof outs / sizeof outs[0]; i++) {
    char *p = pf_path_join(g_root, outs[i]);
    pf_remove_tree(p, NULL);
    free(p);
  }
}

typedef struct tally {
  long iterations, errors, absorbed;
} tally;

/* Run s for N = 1, 2, ... until an iteration does not reach allocation N. */
static tally inject(scen *s, long max_iter) {
  tally t = {0};
  pf_err err = {0};
  const char *only = getenv("PF_ALLOC_ONLY"); /* debugging: one scenario */
  if (only && *only && strcmp(only, s->name)) return t;
  const char *trap = getenv("PF_ALLOC_TRAP");
  g_trap_at = trap ? atol(trap) : -1;
  /* warm up once unarmed: lazily built process-wide state (kernel set-up,
   * tables) is made here, not counted as a leak later */
  pf_status st = s->run(s, &err);
  ck_assert_msg(st == PF_OK, "%s: unarmed run failed: %s", s->name, err.msg);
  remove_outputs();
  for (long n = 1; n <= max_iter; n++) {
    pf_err_clear(&err);
    track_begin();
    arm(n);
    st = s->run(s, &err);
    disarm();
    int hit = g_c->hit;
    remove_outputs(); /* outputs of a run that succeeded */
    long live = track_end();
    t.iterations++;
    char tmp[4096];
    ck_assert_msg(!find_temp(g_root, tmp, sizeof tmp), "%s: allocation %ld failed: left %s",
                  s->name, n, tmp);
    if (live) {
      for (size_t i = 0; i < LIVE_CAP; i++)
        if (g_live[i] && g_live[i] != TOMB) {
          fprintf(stderr, "%s: allocation %ld: leaked block %p\n", s->name, n, g_live[i]);
          break;
        }
    }
    ck_assert_msg(live == 0, "%s: allocation %ld failed (%s): %ld blocks leaked", s->name, n,
                  st ? err.msg : "absorbed", live);
    if (__lsan_do_recoverable_leak_check && n % 64 == 0)
      ck_assert_msg(__lsan_do_recoverable_leak_check() == 0, "%s: LeakSanitizer found leaks",
                    s->name);
    if (!hit) {
      ck_assert_msg(st == PF_OK, "%s: failed without an injected failure: %s", s->name, err.msg);
      fprintf(stderr, "%s: %ld allocations, %ld errors, %ld absorbed by fallbacks\n", s->name,
              n - 1, t.errors, t.absorbed);
      return t;
    }
    if (st == PF_OK) {
      t.absorbed++;
      continue;
    }
    t.errors++;
    ck_assert_msg(err.code == PF_ERR_NOMEM,
                  "%s: allocation %ld failed, reported as '%s' (%s), not out of memory", s->name,
                  n, pf_status_name(err.code), err.msg);
  }
  ck_abort_msg("%s: still allocating after %ld iterations", s->name, max_iter);
  return t;
}

#define MAX_ITER 200000

START_TEST(test_load) {
  scen s = {.name = "load", .op = "load", .run = run_op};
  s.params = pf_value_map();
  pf_map_set_str(s.params, "path", g_model);
  inject(&s, MAX_ITER);
  pf_value_release(s.params);
}
END_TEST

START_TEST(test_prune_width) {
  scen s = {.name = "prune_width", .op = "prune_width", .run = run_op};
  s.base = load_base();
  s.params = params_with_model(s.base);
  pf_map_set(s.params, "pruning_percentage", pf_value_num(30));
  pf_map_set(s.params, "expansion_divisor", pf_value_int(32));
  inject(&s, MAX_ITER);
  pf_value_release(s.params);
  pf_value_release(s.base);
}
END_TEST

START_TEST(test_prune_depth) {
  scen s = {.name = "prune_depth", .op = "prune_depth", .run = run_op};
  s.base = load_base();
  s.params = params_with_model(s.base);
  pf_map_set(s.params, "num_layers_to_remove", pf_value_int(2));
  inject(&s, MAX_ITER);
  pf_value_release(s.params);
  pf_value_release(s.base);
}
END_TEST

START_TEST(test_prune_heads) {
  scen s = {.name = "prune_heads", .op = "prune_heads", .run = run_op};
  s.base = load_base();
  s.params = params_with_model(s.base);
  pf_map_set(s.params, "pruning_percentage", pf_value_int(50));
  inject(&s, MAX_ITER);
  pf_value_release(s.params);
  pf_value_release(s.base);
}
END_TEST

START_TEST(test_save) {
  scen s = {.name = "save", .op = "save", .run = run_op};
  s.base = load_pruned(); /* lazy tensors gathered, converted, sharded */
  s.params = params_with_model(s.base);
  s.path = pf_path_join(g_root, "out/sub/model"); /* parents created by the save */
  pf_map_set_str(s.params, "path", s.path);
  pf_map_set_str(s.params, "dtype", "bfloat16");   /* the conversion stage */
  pf_map_set_str(s.params, "max_shard_size", "100KB"); /* shards + index */
  inject(&s, MAX_ITER);
  char *out = pf_path_join(g_root, "out");
  ck_assert_msg(!pf_path_exists(out), "a failed save left its parent folders");
  free(out);
  pf_value_release(s.params);
  pf_value_release(s.base);
  free(s.path);
}
END_TEST

START_TEST(test_tokenizer) {
  scen s = {.name = "tokenizer", .run = run_tokenizer};
  s.path = pf_path_join(g_model, "tokenizer.json");
  inject(&s, MAX_ITER);
  free(s.path);
}
END_TEST

START_TEST(test_dataset) {
  scen s = {.name = "dataset", .run = run_dataset};
  char *tj = pf_path_join(g_model, "tokenizer.json");
  pf_err err = {0};
  ck_assert_int_eq(pf_tokenizer_load(tj, &s.tok, &err), PF_OK);
  free(tj);
  s.path = pf_path_join(g_root, "data.txt");
  inject(&s, MAX_ITER);
  pf_tokenizer_free(s.tok);
  free(s.path);
}
END_TEST

START_TEST(test_calibrate) {
  scen s = {.name = "calibrate", .op = "calibrate", .run = run_op};
  s.base = load_base();
  s.params = params_with_model(s.base);
  char *data = pf_path_join(g_root, "data.txt"), *cache = pf_path_join(g_root, "calcache");
  pf_map_set_str(s.params, "data", data);
  pf_map_set_str(s.params, "cache", cache);
  pf_map_set(s.params, "max_length", pf_value_int(16));
  pf_map_set(s.params, "batch_size", pf_value_int(2));
  inject(&s, MAX_ITER);
  free(data);
  free(cache);
  pf_value_release(s.params);
  pf_value_release(s.base);
}
END_TEST

START_TEST(test_evaluate) {
  scen s = {.name = "evaluate", .op = "evaluate", .run = run_op};
  s.base = load_pruned(); /* materialised by the forward pass, compared with the base */
  s.params = params_with_model(s.base);
  char *data = pf_path_join(g_root, "data.txt");
  pf_map_set_str(s.params, "data", data);
  pf_map_set(s.params, "max_length", pf_value_int(16));
  pf_map_set(s.params, "compare", pf_value_model(pf_map_model(s.base, "model")));
  inject(&s, MAX_ITER);
  free(data);
  pf_value_release(s.params);
  pf_value_release(s.base);
}
END_TEST

START_TEST(test_recipe) {
  scen s = {.name = "recipe", .run = run_recipe};
  s.path = pf_path_join(g_root, "r.yaml");
  char text[8192];
  /* no save step: the save scenario injects into the save op already, and here it
   * was 1398 of the recipe's 3745 allocations and most of its time (under ASan 50 s
   * with it, 6.5 s without); the recipe's own files (results, output folder) and a
   * failing step's clean-up are what this scenario adds */
  snprintf(text, sizeof text,
           "pfrun: 1\n"
           "name: alloc\n"
           "vars: { model: '%s' }\n"
           "output_dir: '%s/results'\n"
           "steps:\n"
           "  - id: base\n"
           "    op: load\n"
           "    path: ${model}\n"
           "  - id: w\n"
           "    op: prune_width\n"
           "    model: base\n"
           "    pruning_percentage: 25\n"
           "  - id: d\n"
           "    op: prune_depth\n"
           "    model: w\n"
           "    num_layers_to_remove: 1\n"
           "  - op: analyze\n"
           "    model: d\n",
           g_model, g_root);
  pf_test_write(s.path, text);
  inject(&s, MAX_ITER);
  free(s.path);
}
END_TEST

START_TEST(test_lua) {
  scen s = {.name = "lua", .run = run_lua};
  s.path = pf_path_join(g_root, "s.lua");
  char text[4096];
  /* no save here: the save and recipe scenarios inject into it already (and it
   * doubled this scenario's allocations, the suite's long pole under ASan) */
  snprintf(text, sizeof text,
           "local base <close> = pf.load{ path = arg[1] }\n"
           "local m <close>, st = pf.prune_width{ model = base, pruning_percentage = 20 }\n"
           "local d <close> = pf.prune_depth{ model = m, num_layers_to_remove = 1 }\n"
           "local a = pf.analyze{ model = d }\n"
           "assert(st.percentage_reduction > 0 and a.total_parameters > 0)\n");
  pf_test_write(s.path, text);
  inject(&s, MAX_ITER);
  free(s.path);
}
END_TEST

START_TEST(test_json) {
  scen s = {.name = "json", .run = run_json};
  char *jsonl = pf_path_join(g_root, "data.jsonl"), *pairs = pf_path_join(g_root, "pairs.jsonl");
  pf_test_write(jsonl, "{\"text\": \"The cat sat on the mat.\"}\n{\"text\": \"A dog.\", \"n\": [1, 2]}\n");
  pf_test_write(pairs, "{\"prompt1\": \"The white man\", \"prompt2\": \"The black man\"}\n");
  g_json_oom = 0;
  tally t = inject(&s, MAX_ITER);
  /* cJSON's own allocations were refused (its hooks call the wrapped malloc)
   * and reported as out of memory */
  if (t.iterations) ck_assert_msg(g_json_oom > 0, "no allocation inside cJSON was refused");
  free(jsonl);
  free(pairs);
}
END_TEST

/* The plot op (mean_diff bars of one type for two prompt pairs, SVG) on a
 * bias_activations result made before arming, drawn in this process (jobs 1)
 * or by two worker processes (jobs 2). A failed chart leaves no hidden
 * temporary file in the output folder. */
static pf_status run_plot(scen *s, pf_err *err) {
  pf_status st = run_op(s, err);
  DIR *d = opendir(s->path);
  struct dirent *e;
  while (d && (e = readdir(d)))
    if (e->d_name[0] == '.' && strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
      st = pf_err_set(err, PF_ERR_INVALID, "plot left %s/%s", s->path, e->d_name);
      break;
    }
  if (d) closedir(d);
  return st;
}

static void plot_scenario(const char *name, int64_t jobs) {
  scen s = {.name = name, .op = "plot", .run = run_plot};
  s.base = load_base();
  pf_value *ap = params_with_model(s.base), *pairs = pf_value_list(), *acts = NULL;
  static const char *const prompts[2][2] = {{"The white man walked", "The black man walked"},
                                            {"She is a nurse", "He is a nurse"}};
  for (int i = 0; i < 2; i++) {
    pf_value *pair = pf_value_list();
    pf_list_push(pair, pf_value_str(prompts[i][0]));
    pf_list_push(pair, pf_value_str(prompts[i][1]));
    pf_list_push(pairs, pair);
  }
  pf_map_set(ap, "prompt_pairs", pairs);
  pf_value *targets = pf_value_list();
  pf_list_push(targets, pf_value_str("mlp_output"));
  pf_map_set(ap, "target_layers", targets);
  pf_err err = {0};
  ck_assert_msg(pf_op_run("bias_activations", ap, &acts, NULL, &err) == PF_OK, "%s", err.msg);
  pf_value_release(ap);
  s.path = pf_path_join(g_root, "out");
  s.params = pf_value_map();
  pf_map_set_str(s.params, "kind", "mean_diff");
  pf_map_set(s.params, "data", acts);
  pf_map_set_str(s.params, "output_dir", s.path);
  pf_map_set_str(s.params, "format", "svg");
  pf_map_set_str(s.params, "layer_type", "mlp_output");
  pf_map_set_int(s.params, "jobs", jobs);
  inject(&s, MAX_ITER);
  pf_value_release(s.params);
  pf_value_release(s.base);
  free(s.path);
}

START_TEST(test_plot) {
  plot_scenario("plot", 1);
}
END_TEST

START_TEST(test_plot_workers) {
  plot_scenario("plot_workers", 2);
}
END_TEST

/* bias_activations with reuse on a depth-pruned copy (a middle layer removed): the
 * entries of the shared layers taken from the parent's result (made before arming,
 * with its states), the pass started from those states, the copy's own states kept. */
START_TEST(test_bias_reuse) {
  scen s = {.name = "bias_reuse", .op = "bias_activations", .run = run_op};
  s.base = load_base();
  pf_value *pairs = pf_value_list(), *pair = pf_value_list(), *before = NULL, *pruned = NULL;
  pf_list_push(pair, pf_value_str("The white man walked"));
  pf_list_push(pair, pf_value_str("The black man walked home"));
  pf_list_push(pairs, pair);
  pf_value *ap = params_with_model(s.base), *dp = params_with_model(s.base), *idx = pf_value_list();
  pf_value_retain(pairs);
  pf_map_set(ap, "prompt_pairs", pairs);
  pf_map_set(ap, "keep_states", pf_value_bool(1));
  pf_err err = {0};
  ck_assert_msg(pf_op_run("bias_activations", ap, &before, NULL, &err) == PF_OK, "%s", err.msg);
  pf_list_push(idx, pf_value_int(1));
  pf_map_set(dp, "layer_indices", idx);
  pf_map_set_str(dp, "layer_selection_method", "custom");
  ck_assert_msg(pf_op_run("prune_depth", dp, &pruned, NULL, &err) == PF_OK, "%s", err.msg);
  s.params = params_with_model(pruned);
  pf_map_set(s.params, "prompt_pairs", pairs);
  pf_map_set(s.params, "reuse", before);
  pf_map_set(s.params, "keep_states", pf_value_bool(1));
  inject(&s, MAX_ITER);
  pf_value_release(s.params);
  pf_value_release(ap);
  pf_value_release(dp);
  pf_value_release(pruned);
  pf_value_release(s.base);
}
END_TEST

static Suite *make_suite(void) {
  Suite *s = suite_create("alloc_faults");
  TCase *tc = tcase_create("inject");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 900);
  tcase_add_test(tc, test_load);
  tcase_add_test(tc, test_prune_width);
  tcase_add_test(tc, test_prune_depth);
  tcase_add_test(tc, test_prune_heads);
  tcase_add_test(tc, test_save);
  tcase_add_test(tc, test_tokenizer);
  tcase_add_test(tc, test_dataset);
  tcase_add_test(tc, test_calibrate);
  tcase_add_test(tc, test_evaluate);
  tcase_add_test(tc, test_recipe);
  tcase_add_test(tc, test_lua);
  tcase_add_test(tc, test_json);
  tcase_add_test(tc, test_plot);
  tcase_add_test(tc, test_plot_workers);
  tcase_add_test(tc, test_bias_reuse);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  void *page =
      mmap(NULL, sizeof(counters), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (page != MAP_FAILED) g_c = page;
  return pf_test_main(make_suite);
}

