/* testutil.c — see testutil.h. */
#include "testutil.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fsutil.h"
#include "model.h"
#include "op.h"
#include "synthetic.h"
#include "value.h"

char *pf_test_tmpdir(const char *tag) {
  const char *base = getenv("TMPDIR");
  if (!base || !*base) base = "/tmp";
  char tmpl[4096];
  snprintf(tmpl, sizeof tmpl, "%s/pftest-%s-XXXXXX", base, tag);
  char *d = mkdtemp(tmpl);
  ck_assert_msg(d != NULL, "mkdtemp failed for %s", tmpl);
  return strdup(d);
}

void pf_test_rmtree(const char *path) {
  if (path) pf_remove_tree(path, NULL);
}

char *pf_test_shared(const char *rel, const char *what) {
  char p[4096];
  snprintf(p, sizeof p, "%s/%s", PF_SHARED_DIR, rel);
  if (access(p, F_OK) == 0) return strdup(p);
  fprintf(stderr, "SKIP %s: %s not found (../shared is absent)\n", what, p);
  return NULL;
}

char *pf_test_synth(const char *preset, uint64_t seed, const char *dtype) {
  char *root = pf_test_tmpdir(preset);
  char *dir = pf_path_join(root, "model");
  free(root);
  pf_synth_opts o = {.preset = preset, .seed = seed};
  pf_err err = {0};
  if (dtype) {
    o.have_dtype = 1;
    ck_assert_int_eq(pf_dtype_parse(dtype, &o.dtype, &err), PF_OK);
  }
  pf_status st = pf_synth_write(&o, dir, NULL, &err);
  ck_assert_msg(st == PF_OK, "synthetic %s: %s", preset, err.msg);
  return dir;
}

void pf_test_synth_free(char *dir) {
  if (!dir) return;
  char *slash = strrchr(dir, '/'); /* pf_test_synth returns <tmp>/model */
  if (slash) *slash = '\0';
  pf_test_rmtree(dir);
  free(dir);
}

pf_model *pf_test_load(const char *path) {
  pf_value *p = pf_value_map(), *out = NULL;
  pf_map_set_str(p, "path", path);
  pf_err err = {0};
  ck_assert_msg(pf_op_run("load", p, &out, NULL, &err) == PF_OK, "load %s: %s", path, err.msg);
  pf_model *m = pf_map_model(out, "model");
  pf_model_retain(m);
  pf_value_release(out);
  pf_value_release(p);
  return m;
}

pf_value *pf_test_pairs(const char *const (*pr)[2], size_t n) {
  pf_value *l = pf_value_list();
  for (size_t i = 0; i < n; i++) {
    pf_value *p = pf_value_list();
    pf_list_push(p, pf_value_str(pr[i][0]));
    pf_list_push(p, pf_value_str(pr[i][1]));
    pf_list_push(l, p);
  }
  return l;
}

void pf_test_write(const char *path, const char *text) {
  FILE *f = fopen(path, "wb");
  ck_assert_msg(f != NULL, "cannot write %s", path);
  fputs(text, f);
  fclose(f);
}

char *pf_test_read(const char *path, size_t *len) {
  char *buf = NULL;
  size_t n = 0;
  if (pf_read_file(path, (size_t)1 << 30, &buf, &n, NULL) != PF_OK) return NULL;
  if (len) *len = n;
  return buf;
}

int pf_test_run_pfrun(const char *args, char **output) {
  char cmd[8192];
  snprintf(cmd, sizeof cmd, "'%s' %s 2>&1", PF_BINARY, args);
  FILE *p = popen(cmd, "r");
  ck_assert_msg(p != NULL, "popen failed");
  size_t cap = 4096, len = 0;
  char *buf = malloc(cap);
  size_t r;
  while ((r = fread(buf + len, 1, cap - len - 1, p)) > 0) {
    len += r;
    if (cap - len < 1024) buf = realloc(buf, cap *= 2);
  }
  buf[len] = '\0';
  int st = pclose(p);
  if (output) *output = buf;
  else free(buf);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

char *pf_test_small_fs(size_t kb, const char *what) {
  static int private_ns; /* this process already has its own mount namespace */
  if (!private_ns) {
    if (unshare(CLONE_NEWNS) != 0) {
      fprintf(stderr, "SKIP %s: cannot make a mount namespace for a small tmpfs: %s\n", what,
              strerror(errno));
      return NULL;
    }
    /* mounts made below must not propagate to the host's namespace */
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
      fprintf(stderr, "SKIP %s: cannot make the mount namespace private: %s\n", what,
              strerror(errno));
      return NULL;
    }
    private_ns = 1;
  }
  char *dir = pf_test_tmpdir("smallfs");
  char opts[64];
  snprintf(opts, sizeof opts, "size=%zuk,mode=0755", kb);
  if (mount("pftest-small", dir, "tmpfs", 0, opts) != 0) {
    fprintf(stderr, "SKIP %s: cannot mount a %zu KiB tmpfs: %s\n", what, kb, strerror(errno));
    rmdir(dir);
    free(dir);
    return NULL;
  }
  return dir;
}

void pf_test_small_fs_free(char *dir) {
  if (!dir) return;
  umount2(dir, MNT_DETACH);
  rmdir(dir);
  free(dir);
}

int pf_test_main(Suite *(*make_suite)(void)) {
  SRunner *sr = srunner_create(make_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? 0 : 1;
}

/* Replace the first `from` in dir/config.json by `to`. */
void pf_test_edit_config(const char *dir, const char *from, const char *to) {
  char path[4096];
  snprintf(path, sizeof path, "%s/config.json", dir);
  char *text = pf_test_read(path, NULL);
  ck_assert_ptr_nonnull(text);
  char *at = strstr(text, from);
  ck_assert_msg(at != NULL, "config.json has no %s", from);
  size_t n = strlen(text) + strlen(to) + 1;
  char *out = malloc(n);
  snprintf(out, n, "%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
  pf_test_write(path, out);
  free(out);
  free(text);
}

const void *pf_test_bytes(const pf_tensor *t) {
  pf_err err = {0};
  ck_assert_msg(pf_tensor_materialize(t, &err) == PF_OK, "%s", err.msg);
  return t->data;
}
