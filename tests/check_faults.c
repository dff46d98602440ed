/* check_faults.c — the library under faults (docs/reliability.md "Faults"): a
 * file-size limit (RLIMIT_FSIZE, SIGXFSZ ignored as main.c does) while saving
 * a checkpoint or writing a file, an interrupt during a save (the interrupt flag
 * raised from the progress callback, as the SIGINT handler raises it), the
 * second-signal cleanup of registered temporary folders, an atomic replace, and
 * a shard missing at load. Each failure must return an error naming the cause,
 * leave nothing at the output path (no "*.tmp-*", no parent folder the save
 * created) and leave the input untouched.
 */
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bias.h"
#include "dataset.h"
#include "fsutil.h"
#include "hash.h"
#include "model.h"
#include "pf_lua.h"
#include "recipe.h"
#include "testutil.h"
#include "tokenizer.h"

static char *g_dir, *g_model;

static void setup(void) {
  g_dir = pf_test_tmpdir("faults");
  g_model = pf_test_synth("llama-tiny", 3, NULL);
}

static void teardown(void) {
  pf_test_rmtree(g_dir);
  pf_test_synth_free(g_model);
  free(g_dir);
}

/* Entries of dir whose name contains `part`. */
static int count_named(const char *dir, const char *part) {
  DIR *d = opendir(dir);
  int n = 0;
  struct dirent *e;
  while (d && (e = readdir(d)))
    if (strstr(e->d_name, part)) n++;
  if (d) closedir(d);
  return n;
}

/* Run with RLIMIT_FSIZE = bytes and SIGXFSZ ignored; restored afterwards (the
 * suite may run without fork, e.g. under valgrind). */
typedef struct fsize_guard {
  struct rlimit old;
  void (*old_handler)(int);
} fsize_guard;

static fsize_guard fsize_limit(rlim_t bytes) {
  fsize_guard g;
  ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &g.old), 0);
  g.old_handler = signal(SIGXFSZ, SIG_IGN);
  struct rlimit rl = {bytes, g.old.rlim_max};
  ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
  return g;
}

static void fsize_restore(fsize_guard g) {
  ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &g.old), 0);
  signal(SIGXFSZ, g.old_handler);
}

START_TEST(test_save_over_file_size_limit) {
  pf_model *m = NULL;
  pf_err err = {0};
  ck_assert_int_eq(pf_model_load(g_model, &m, &err), PF_OK);
  char *out = pf_path_join(g_dir, "new/parents/out"), *top = pf_path_join(g_dir, "new");
  fsize_guard g = fsize_limit(64 * 1024);
  pf_save_opts o = {.max_shard_bytes = 40 * 1024};
  pf_status st = pf_model_save(m, out, &o, 0, NULL, &err);
  fsize_restore(g);
  ck_assert_int_eq(st, PF_ERR_IO);
  pf_assert_err(err, "File too large");
  ck_assert(!pf_path_exists(out));
  ck_assert_msg(!pf_path_exists(top), "the parent folders the save created are left");
  ck_assert_int_eq(count_named(g_dir, ".tmp-"), 0);
  /* the same save without the limit works */
  ck_assert_int_eq(pf_model_save(m, out, &o, 0, NULL, &err), PF_OK);
  pf_model_release(m);
  free(out);
  free(top);
}
END_TEST

START_TEST(test_write_file_is_atomic) {
  char *f = pf_path_join(g_dir, "stats.json");
  pf_err err = {0};
  ck_assert_int_eq(pf_write_file(f, "{\"old\": 1}\n", 11, &err), PF_OK);
  size_t big = 256 * 1024;
  char *text = malloc(big);
  memset(text, 'x', big);
  fsize_guard g = fsize_limit(64 * 1024);
  pf_status st = pf_write_file(f, text, big, &err);
  fsize_restore(g);
  ck_assert_int_eq(st, PF_ERR_IO);
  pf_assert_err(err, "stats.json: write failed: File too large");
  char *back = pf_test_read(f, NULL);
  ck_assert_str_eq(back, "{\"old\": 1}\n"); /* the old contents, whole */
  ck_assert_int_eq(count_named(g_dir, ".tmp-"), 0);
  free(back);
  /* special files are written in place (a rename would replace them) */
  ck_assert_int_eq(pf_write_file("/dev/null", "x", 1, &err), PF_OK);
  ck_assert_int_eq(pf_write_file("/dev/full", "x", 1, &err), PF_ERR_IO);
  pf_assert_err(err, "No space left on device");
  free(text);
  free(f);
}
END_TEST

/* The progress callback raises the interrupt flag once the save has written
 * some bytes: what the SIGINT handler does, at a moment inside the save. */
typedef struct intr {
  volatile int flag;
  uint64_t after;
  const char *tmp_dir;
  int saw_temp;
} intr;

static void raise_on_progress(void *ud, const char *what, uint64_t done, uint64_t total) {
  intr *x = ud;
  (void)total;
  if (!strcmp(what, "save") && done >= x->after && !x->flag) {
    x->saw_temp = count_named(x->tmp_dir, "out.tmp-");
    x->flag = 2; /* SIGINT */
  }
}

START_TEST(test_interrupt_during_save) {
  pf_model *m = NULL;
  pf_err err = {0};
  ck_assert_int_eq(pf_model_load(g_model, &m, &err), PF_OK);
  char *out = pf_path_join(g_dir, "out");
  intr x = {.after = 1, .tmp_dir = g_dir};
  pf_ctx ctx = {.progress = raise_on_progress, .user_data = &x, .interrupt = &x.flag};
  pf_save_opts o = {.max_shard_bytes = 100 * 1024};
  pf_status st = pf_model_save(m, out, &o, 0, &ctx, &err);
  ck_assert_int_eq(st, PF_ERR_INTERRUPTED);
  pf_assert_err(err, "interrupted");
  ck_assert_int_eq(x.saw_temp, 1); /* it was stopped while the temp folder existed */
  ck_assert(!pf_path_exists(out));
  ck_assert_int_eq(count_named(g_dir, ".tmp-"), 0);
  /* interrupted while replacing an existing checkpoint: the old one stays */
  ck_assert_int_eq(pf_model_save(m, out, &o, 0, NULL, &err), PF_OK);
  char *cfg = pf_path_join(out, "config.json");
  char *before = pf_test_read(cfg, NULL);
  x.flag = 0;
  st = pf_model_save(m, out, &o, 1, &ctx, &err);
  ck_assert_int_eq(st, PF_ERR_INTERRUPTED);
  char *after = pf_test_read(cfg, NULL);
  ck_assert_str_eq(before, after);
  ck_assert_int_eq(count_named(g_dir, ".tmp-") + count_named(g_dir, ".old-"), 0);
  free(before);
  free(after);
  free(cfg);
  free(out);
  pf_model_release(m);
}
END_TEST

START_TEST(test_second_signal_cleanup) {
  /* what the handler does on a second signal: every registered temp folder goes */
  char *a = pf_path_join(g_dir, "x.tmp-1"), *b = pf_path_join(g_dir, "y.tmp-2");
  char *deep = pf_path_join(a, "sub/dir");
  pf_err err = {0};
  ck_assert_int_eq(pf_mkdirs(deep, &err), PF_OK);
  ck_assert_int_eq(pf_mkdirs(b, &err), PF_OK);
  char *f = pf_path_join(deep, "w.bin");
  pf_test_write(f, "data");
  pf_temp_register(a);
  pf_temp_register(b);
  pf_cleanup_temps();
  ck_assert(!pf_path_exists(a));
  ck_assert(!pf_path_exists(b));
  pf_cleanup_temps(); /* nothing registered any more: a no-op */
  free(a);
  free(b);
  free(deep);
  free(f);
}
END_TEST

START_TEST(test_replace_is_atomic) {
  /* overwrite: the new checkpoint takes the old one's place in one exchange */
  pf_model *m = NULL;
  pf_err err = {0};
  ck_assert_int_eq(pf_model_load(g_model, &m, &err), PF_OK);
  char *out = pf_path_join(g_dir, "ckpt"), *marker = pf_path_join(out, "old-marker");
  ck_assert_int_eq(pf_model_save(m, out, NULL, 0, NULL, &err), PF_OK);
  pf_test_write(marker, "old");
  ck_assert_int_eq(pf_model_save(m, out, NULL, 1, NULL, &err), PF_OK);
  ck_assert(!pf_path_exists(marker));
  ck_assert_int_eq(count_named(g_dir, "ckpt"), 1);
  pf_model_release(m);
  free(out);
  free(marker);
}
END_TEST

START_TEST(test_missing_parent_helpers) {
  char *p = pf_path_join(g_dir, "a/b/c/out"), *a = pf_path_join(g_dir, "a");
  char *top = pf_missing_parent(p);
  ck_assert_str_eq(top, a);
  pf_err err = {0};
  char *abc = pf_path_join(g_dir, "a/b/c");
  ck_assert_int_eq(pf_mkdirs(abc, &err), PF_OK);
  pf_remove_empty_parents(p, top);
  ck_assert(!pf_path_exists(a));
  ck_assert_ptr_null(pf_missing_parent(a)); /* its parent exists */
  free(top);
  /* a non-empty folder stops the removal */
  ck_assert_int_eq(pf_mkdirs(abc, &err), PF_OK);
  char *keep = pf_path_join(g_dir, "a/keep");
  pf_test_write(keep, "k");
  top = pf_path_join(g_dir, "a");
  pf_remove_empty_parents(p, top);
  ck_assert(pf_path_exists(keep));
  char *b = pf_path_join(g_dir, "a/b");
  ck_assert(!pf_path_exists(b));
  free(b);
  free(keep);
  free(top);
  free(abc);
  free(a);
  free(p);
}
END_TEST

START_TEST(test_missing_shard) {
  pf_model *m = NULL;
  pf_err err = {0};
  ck_assert_int_eq(pf_model_load(g_model, &m, &err), PF_OK);
  char *out = pf_path_join(g_dir, "sharded");
  pf_save_opts o = {.max_shard_bytes = 100 * 1024};
  ck_assert_int_eq(pf_model_save(m, out, &o, 0, NULL, &err), PF_OK);
  pf_model_release(m);
  m = NULL;
  char name[64], *shard = NULL;
  for (int n = 2; n < 100 && !shard; n++) { /* model-00002-of-0000N */
    snprintf(name, sizeof name, "model-00002-of-%05d.safetensors", n);
    shard = pf_path_join(out, name);
    if (!pf_path_exists(shard)) {
      free(shard);
      shard = NULL;
    }
  }
  ck_assert_msg(shard != NULL, "expected a sharded checkpoint");
  ck_assert_int_eq(unlink(shard), 0);
  pf_status st = pf_model_load(out, &m, &err);
  ck_assert_int_ne(st, PF_OK);
  ck_assert_ptr_null(m);
  pf_assert_err(err, name);
  pf_assert_err(err, "No such file or directory");
  free(shard);
  free(out);
}
END_TEST

/* ---- inputs that are not regular files ---- */

/* A copy of the test checkpoint whose file `name` is replaced by a FIFO. */
static char *model_with_fifo(const char *tag, const char *name) {
  char *copy = pf_path_join(g_dir, tag), cmd[8192];
  snprintf(cmd, sizeof cmd, "cp -r '%s' '%s'", g_model, copy);
  ck_assert_int_eq(system(cmd), 0);
  char *f = pf_path_join(copy, name);
  ck_assert_int_eq(unlink(f), 0);
  ck_assert_int_eq(mkfifo(f, 0644), 0);
  free(f);
  return copy;
}

/* err names `dir`/`name` as a FIFO where a regular file was expected. */
static void expect_fifo_err(const pf_err *err, const char *dir, const char *name) {
  char want[8192];
  snprintf(want, sizeof want, "%s%s%s: expected %s file, found a FIFO", dir ? dir : "",
           dir ? "/" : "", name, strstr(name, ".txt") ? "a data" : "a regular");
  ck_assert_msg(strstr(err->msg, want) != NULL, "expected '%s' in '%s'", want, err->msg);
}

static pf_status count_sample(void *ud, const char *text, size_t len, int64_t line, int *stop,
                              pf_err *err) {
  (*(int *)ud)++;
  return PF_OK;
}

/* Every parser of a downloaded or given file refuses a FIFO at once (a FIFO
 * without a writer blocked open() for ever before: the test then hit the Check
 * timeout) with "<path>: expected a regular file, found a FIFO". */
START_TEST(test_fifo_inputs) {
  pf_err err = {0};
  pf_model *m = (pf_model *)1;
  static const char *const files[] = {"config.json", "model.safetensors"};
  for (size_t i = 0; i < 2; i++) {
    char *dir = model_with_fifo(files[i], files[i]);
    ck_assert_int_ne(pf_model_load(dir, &m, &err), PF_OK);
    ck_assert_ptr_null(m);
    expect_fifo_err(&err, dir, files[i]);
    free(dir);
  }
  static const char *const tok_files[] = {"tokenizer.json", "tokenizer_config.json"};
  for (size_t i = 0; i < 2; i++) {
    char *dir = model_with_fifo(tok_files[i], tok_files[i]);
    pf_tokenizer *t = (pf_tokenizer *)1;
    ck_assert_int_eq(pf_tokenizer_load(dir, &t, &err), PF_ERR_IO);
    ck_assert_ptr_null(t);
    expect_fifo_err(&err, dir, tok_files[i]);
    /* the checkpoint's hash (report) and a save's copy of the tokenizer files */
    char hex[PF_SHA256_HEX];
    ck_assert_int_eq(pf_sha256_dir_files(dir, hex, &err), PF_OK); /* FIFOs are not listed */
    char *f = pf_path_join(dir, tok_files[i]);
    ck_assert_int_eq(pf_sha256_file(f, hex, &err), PF_ERR_IO);
    expect_fifo_err(&err, dir, tok_files[i]);
    free(f);
    free(dir);
  }
  /* data, recipe, Lua script and prompt-pair files */
  static const char *const names[] = {"d.txt", "r.yaml", "s.lua", "p.jsonl"};
  for (size_t i = 0; i < 4; i++) {
    char *f = pf_path_join(g_dir, names[i]);
    ck_assert_int_eq(mkfifo(f, 0644), 0);
    pf_status st;
    if (i == 0) {
      int n = 0;
      st = pf_data_read_samples(f, "text", count_sample, &n, NULL, &err);
      ck_assert_int_eq(n, 0);
    } else if (i == 1) {
      pf_recipe_opts o = {0};
      pf_value *res = NULL;
      st = pf_recipe_run(f, &o, NULL, &res, &err);
      ck_assert_ptr_null(res);
      pf_assert_err(err, "expected a recipe file, found a FIFO");
    } else if (i == 2) {
      st = pf_lua_run_file(f, 0, NULL, NULL, &err);
      expect_fifo_err(&err, g_dir, names[i]);
    } else {
      pf_prompt_pairs pp = {0};
      pf_value *v = pf_value_str(f);
      st = pf_prompt_pairs_from_value(v, &pp, &err);
      pf_value_release(v);
      pf_prompt_pairs_free(&pp);
      expect_fifo_err(&err, g_dir, names[i]);
    }
    ck_assert_msg(st != PF_OK, "%s: a FIFO was accepted", names[i]);
    if (i == 0) expect_fifo_err(&err, g_dir, names[i]);
    free(f);
  }
}
END_TEST

static Suite *make_suite(void) {
  Suite *s = suite_create("faults");
  TCase *tc = tcase_create("core");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_save_over_file_size_limit);
  tcase_add_test(tc, test_write_file_is_atomic);
  tcase_add_test(tc, test_interrupt_during_save);
  tcase_add_test(tc, test_second_signal_cleanup);
  tcase_add_test(tc, test_replace_is_atomic);
  tcase_add_test(tc, test_missing_parent_helpers);
  tcase_add_test(tc, test_missing_shard);
  tcase_add_test(tc, test_fifo_inputs);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return pf_test_main(make_suite); }
