/* check_fsutil.c — file helpers, paths, temporary folders and commits. */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fsutil.h"
#include "testutil.h"

/* malloc'd dir/rel */
static char *at(const char *dir, const char *rel) {
  return pf_path_join(dir, rel);
}

static int count_entries_with_prefix(const char *dir, const char *prefix) {
  char cmd[4096];
  snprintf(cmd, sizeof cmd, "ls -a '%s' | grep -c '^%s' || true", dir, prefix);
  FILE *p = popen(cmd, "r");
  int n = 0;
  if (p && fscanf(p, "%d", &n) != 1) n = -1;
  if (p) pclose(p);
  return n;
}

/* mkdir calls, recorded while g_record_mkdir is set (check_fsutil links with
 * -Wl,--wrap=mkdir, so pfrun's own calls come here first). */
int __real_mkdir(const char *path, mode_t mode);
int __wrap_mkdir(const char *path, mode_t mode);
static int g_record_mkdir;
static char g_mkdir_log[8][PATH_MAX];
static int g_mkdir_calls;
int __wrap_mkdir(const char *path, mode_t mode) {
  if (g_record_mkdir) {
    if (g_mkdir_calls < 8) snprintf(g_mkdir_log[g_mkdir_calls], PATH_MAX, "%s", path);
    g_mkdir_calls++;
  }
  return __real_mkdir(path, mode);
}

START_TEST(test_read_write_copy) {
  char *dir = pf_test_tmpdir("fsutil");
  char *a = at(dir, "a.txt"), *b = at(dir, "b.txt"), *missing = at(dir, "nope.txt");
  pf_err err = {0};
  ck_assert_int_eq(pf_write_file(a, "hello\0world", 11, &err), PF_OK);
  char *buf = NULL;
  size_t len = 0;
  ck_assert_int_eq(pf_read_file(a, 100, &buf, &len, &err), PF_OK);
  ck_assert_uint_eq(len, 11);
  ck_assert_int_eq(memcmp(buf, "hello\0world", 12), 0); /* NUL-terminated */
  free(buf);
  buf = (char *)1;
  ck_assert_int_eq(pf_read_file(a, 5, &buf, &len, &err), PF_ERR_INVALID);
  ck_assert_ptr_null(buf);
  pf_assert_err(err, "a.txt");
  pf_assert_err(err, "limit");
  ck_assert_int_eq(pf_read_file(missing, 100, &buf, &len, &err), PF_ERR_NOT_FOUND);
  pf_assert_err(err, "nope.txt: cannot open");
  ck_assert_int_eq(pf_read_file(dir, 100, &buf, &len, &err), PF_ERR_IO);
  pf_assert_err(err, "expected a regular file, found a folder");

  ck_assert_int_eq(pf_copy_file(a, b, &err), PF_OK);
  ck_assert_int_eq(pf_read_file(b, 100, &buf, &len, &err), PF_OK);
  ck_assert_uint_eq(len, 11);
  free(buf);
  ck_assert_int_eq(pf_copy_file(missing, b, &err), PF_ERR_NOT_FOUND);
  pf_assert_err(err, "nope.txt");
  char *nodir = at(dir, "no/such/dir/x");
  ck_assert_int_eq(pf_copy_file(a, nodir, &err), PF_ERR_IO);
  pf_assert_err(err, "cannot create");
  ck_assert_int_eq(pf_write_file(nodir, "x", 1, &err), PF_ERR_IO);
  pf_assert_err(err, "no/such/dir/x");
  /* checked before the work: a missing folder, a folder, a device; a writable place
   * is left as it was (the probe file is removed) */
  ck_assert_int_eq(pf_check_writable_file(nodir, &err), PF_ERR_IO);
  pf_assert_err(err, "no/such/dir/x: cannot create: folder ");
  pf_assert_err(err, "/no does not exist");
  ck_assert_int_eq(pf_check_writable_file(dir, &err), PF_ERR_IO);
  pf_assert_err(err, "cannot write a file there: it is a folder");
  ck_assert_int_eq(pf_check_writable_file("/dev/null", &err), PF_OK);
  ck_assert_int_eq(pf_check_writable_file(missing, &err), PF_OK);
  ck_assert(!pf_path_exists(missing));
  ck_assert_int_eq(pf_check_writable_file(a, &err), PF_OK);
  ck_assert(pf_path_exists(a));
  DIR *d = opendir(dir);
  int entries = 0;
  for (struct dirent *e; (e = readdir(d));)
    entries += e->d_name[0] != '.';
  closedir(d);
  ck_assert_int_eq(entries, 2); /* a.txt and b.txt, no probe left */

  /* a larger file crosses the copy chunk and the read growth */
  size_t big = (3u << 20) + 17;
  char *data = malloc(big);
  for (size_t i = 0; i < big; i++)
    data[i] = (char)(i * 31);
  ck_assert_int_eq(pf_write_file(a, data, big, &err), PF_OK);
  ck_assert_int_eq(pf_copy_file(a, b, &err), PF_OK);
  ck_assert_int_eq(pf_read_file(b, big, &buf, &len, &err), PF_OK);
  ck_assert_uint_eq(len, big);
  ck_assert_int_eq(memcmp(buf, data, big), 0);
  free(buf);
  free(data);
  pf_test_rmtree(dir);
  free(nodir);
  free(a);
  free(b);
  free(missing);
  free(dir);
}
END_TEST

/* Count the entries of dir whose name starts with prefix. */
static int count_prefix(const char *dir, const char *prefix) {
  DIR *d = opendir(dir);
  int n = 0;
  for (struct dirent *e; d && (e = readdir(d));)
    n += !strncmp(e->d_name, prefix, strlen(prefix));
  if (d) closedir(d);
  return n;
}

/* A file written at a symbolic link is staged beside the link's target and renamed
 * onto it (the link stays; a full disk keeps the old target whole: before, the target
 * was truncated and rewritten in place); one of the process's own descriptors
 * (/dev/stdout, /dev/fd/N) is written through the descriptor, never reopened and
 * truncated (before: `--json /dev/stdout >> run.log` emptied run.log). */
START_TEST(test_write_through_links_and_fds) {
  char *dir = pf_test_tmpdir("fslink");
  char *sub = at(dir, "real"), *target = at(dir, "real/t.json"), *link = at(dir, "l.json");
  pf_err err = {0};
  ck_assert_int_eq(pf_mkdirs(sub, &err), PF_OK);
  pf_test_write(target, "old");
  ck_assert_int_eq(symlink("real/t.json", link), 0);
  ck_assert_int_eq(pf_check_writable_file(link, &err), PF_OK);
  pf_staged st;
  ck_assert_int_eq(pf_stage_file(link, "new", 3, &st, &err), PF_OK);
  ck_assert_int_eq(count_prefix(sub, "t.json.tmp-"), 1); /* beside the target */
  ck_assert_int_eq(count_prefix(dir, "l.json.tmp-"), 0);
  char *buf = NULL;
  size_t len = 0;
  ck_assert_int_eq(pf_read_file(target, 100, &buf, &len, &err), PF_OK);
  ck_assert_str_eq(buf, "old"); /* untouched until the commit */
  free(buf);
  ck_assert_int_eq(pf_staged_commit(&st, &err), PF_OK);
  struct stat sb;
  ck_assert(lstat(link, &sb) == 0 && S_ISLNK(sb.st_mode));
  ck_assert_int_eq(pf_read_file(link, 100, &buf, &len, &err), PF_OK);
  ck_assert_str_eq(buf, "new");
  free(buf);
  ck_assert_int_eq(count_prefix(sub, "t.json.tmp-"), 0);
  /* a descriptor opened for appending, as `>> log` opens stdout */
  char *log = at(dir, "run.log");
  pf_test_write(log, "precious\n");
  const int fd = open(log, O_WRONLY | O_APPEND);
  ck_assert_int_ge(fd, 0);
  char name[64];
  snprintf(name, sizeof name, "/dev/fd/%d", fd);
  ck_assert_int_eq(pf_check_writable_file(name, &err), PF_OK);
  ck_assert_int_eq(pf_write_file(name, "{}\n", 3, &err), PF_OK);
  snprintf(name, sizeof name, "/proc/self/fd/%d", fd);
  ck_assert_int_eq(pf_write_file(name, "[]\n", 3, &err), PF_OK);
  close(fd);
  ck_assert_int_eq(pf_read_file(log, 100, &buf, &len, &err), PF_OK);
  ck_assert_str_eq(buf, "precious\n{}\n[]\n");
  free(buf);
  /* a link to /dev/stdout, stdout appending to the log: through the descriptor too (a
   * rename over the resolved log would have replaced it), after what stdio buffered */
  char *so = at(dir, "so.json");
  ck_assert_int_eq(symlink("/dev/stdout", so), 0);
  const int saved = dup(1), app = open(log, O_WRONLY | O_APPEND);
  ck_assert(saved >= 0 && app >= 0);
  fflush(stdout);
  ck_assert_int_eq(dup2(app, 1), 1);
  close(app);
  printf("table\n"); /* buffered: the pipe is a file here */
  ck_assert_int_eq(pf_write_file(so, "{1}\n", 4, &err), PF_OK);
  fflush(stdout);
  ck_assert_int_eq(dup2(saved, 1), 1);
  close(saved);
  ck_assert_int_eq(pf_read_file(log, 100, &buf, &len, &err), PF_OK);
  ck_assert_str_eq(buf, "precious\n{}\n[]\ntable\n{1}\n");
  free(buf);
  free(so);
  /* a dangling link into a folder that is not there: said before the work, naming both */
  char *dl = at(dir, "dl.json");
  ck_assert_int_eq(symlink("nowhere/s.json", dl), 0);
  ck_assert_int_eq(pf_check_writable_file(dl, &err), PF_ERR_IO);
  pf_assert_err(err, "dl.json (a link to ");
  pf_assert_err(err, "nowhere/s.json): cannot create: folder ");
  free(dl);
  /* a descriptor open for reading only is said before the work */
  const int ro = open(log, O_RDONLY);
  snprintf(name, sizeof name, "/dev/fd/%d", ro);
  ck_assert_int_eq(pf_check_writable_file(name, &err), PF_ERR_IO);
  pf_assert_err(err, "is not open for writing");
  close(ro);
  pf_test_rmtree(dir);
  free(log);
  free(sub);
  free(target);
  free(link);
  free(dir);
}
END_TEST

/* A temporary sibling names this machine and process; a later one removes those
 * whose process is gone on this machine, and no other. */
START_TEST(test_temp_sweep_stale) {
  char *dir = pf_test_tmpdir("sweep");
  char *target = pf_path_join(dir, "out"), host[256] = "", path[8192];
  pf_temp_owner_tag(host, sizeof host);
  char name[256] = "", ns[64] = "";
  ck_assert_int_eq(gethostname(name, sizeof name - 1), 0);
  ck_assert_int_gt(readlink("/proc/self/ns/pid", ns, sizeof ns - 1), 0);
  char want[96];
  snprintf(want, sizeof want, "_p%llu", strtoull(strchr(ns, '[') + 1, NULL, 10));
  ck_assert_msg(strstr(host, want) && !strncmp(host, name, strcspn(name, "-")),
                "owner tag %s (host %s, %s)", host, name, ns);
  pid_t dead = fork(); /* a process that has ended: its pid is free */
  if (dead == 0) _exit(0);
  ck_assert_int_gt(dead, 0);
  ck_assert_int_eq(waitpid(dead, NULL, 0), dead);
  const char *names[] = {"stale", "mine", "parent", "otherhost", "oldstyle", "stale file"};
  char made[6][4096];
  snprintf(made[0], sizeof made[0], "%s.tmp-%s-%ld-abcDEF", target, host, (long)dead);
  snprintf(made[1], sizeof made[1], "%s.tmp-%s-%ld-abcDEF", target, host, (long)getpid());
  snprintf(made[2], sizeof made[2], "%s.tmp-%s-%ld-abcDEF", target, host, (long)getppid());
  snprintf(made[3], sizeof made[3], "%s.tmp-%sX-%ld-abcDEF", target, host, (long)dead);
  snprintf(made[4], sizeof made[4], "%s.tmp-abcDEF", target);
  snprintf(made[5], sizeof made[5], "%s.tmp-%s-%ld-7", target, host, (long)dead); /* a file */
  for (int i = 0; i < 6; i++) {
    if (i == 5) {
      pf_test_write(made[i], "a file, not a folder");
      continue;
    }
    ck_assert_int_eq(mkdir(made[i], 0700), 0);
    char *file = pf_path_join(made[i], "model.safetensors");
    pf_test_write(file, "partial");
    free(file);
  }
  char *tmp = NULL;
  pf_err err = {0};
  ck_assert_int_eq(pf_make_temp_sibling(target, &tmp, &err), PF_OK);
  snprintf(path, sizeof path, "%s.tmp-%s-%ld-", target, host, (long)getpid());
  ck_assert_msg(!strncmp(tmp, path, strlen(path)) && strlen(tmp) == strlen(path) + 6,
                "temp folder %s", tmp);
  ck_assert_msg(!pf_path_exists(made[0]), "the stale folder stayed");
  ck_assert_msg(!pf_path_exists(made[5]), "the stale file stayed");
  for (int i = 1; i < 5; i++)
    ck_assert_msg(pf_path_exists(made[i]), "%s (%s) was removed", names[i], made[i]);
  ck_assert_int_eq(pf_temp_sweep_stale(target), 0); /* nothing stale left */
  /* a file written beside its target (pf_write_file) sweeps the same way, and its own
   * temporary name carries the owner */
  char *json = pf_path_join(dir, "r.json");
  snprintf(path, sizeof path, "%s.tmp-%s-%ld-0", json, host, (long)dead);
  pf_test_write(path, "half a file");
  ck_assert_int_eq(pf_write_file(json, "{}\n", 3, &err), PF_OK);
  ck_assert_msg(!pf_path_exists(path), "a stale temp file of r.json stayed");
  char *tmpf = NULL;
  int fd = -1;
  ck_assert_int_eq(pf_temp_file_create(json, &tmpf, &fd), 0);
  snprintf(path, sizeof path, "%s.tmp-%s-%ld-", json, host, (long)getpid());
  ck_assert_msg(tmpf && !strncmp(tmpf, path, strlen(path)), "temp file name %s", tmpf);
  close(fd);
  unlink(tmpf);
  pf_temp_unregister(tmpf);
  free(tmpf);
  free(json);
  free(tmp);
  free(target);
  pf_test_rmtree(dir);
  free(dir);
}
END_TEST

START_TEST(test_mkdirs_and_remove_tree) {
  char *dir = pf_test_tmpdir("fsutil");
  char *deep = at(dir, "x/y/z/"), *file = at(dir, "x/y/f.txt"), *outside = at(dir, "keep");
  char *keepfile = at(dir, "keep/precious.txt"), *link = at(dir, "x/y/z/link");
  pf_err err = {0};
  ck_assert_int_eq(pf_mkdirs(deep, &err), PF_OK);
  ck_assert(pf_is_dir(deep));
  /* existing is fine, and asks for nothing: no mkdir of "/", "/tmp", ... or of the
   * existing folders (a dry run's write guard saw mkdir("/dev") for a path under
   * /dev/shm: fuzz_recipe) */
  g_mkdir_calls = 0;
  g_record_mkdir = 1;
  ck_assert_int_eq(pf_mkdirs(deep, &err), PF_OK);
  ck_assert_int_eq(g_mkdir_calls, 0);
  char *deeper = at(dir, "x/y/z/new/leaf");
  ck_assert_int_eq(pf_mkdirs(deeper, &err), PF_OK);
  g_record_mkdir = 0;
  ck_assert_int_eq(g_mkdir_calls, 2); /* only .../new and .../new/leaf */
  ck_assert_msg(strstr(g_mkdir_log[0], "x/y/z/new") && !strstr(g_mkdir_log[0], "leaf"), "%s",
                g_mkdir_log[0]);
  ck_assert_msg(strstr(g_mkdir_log[1], "x/y/z/new/leaf"), "%s", g_mkdir_log[1]);
  ck_assert(pf_is_dir(deeper));
  ck_assert_int_eq(rmdir(deeper), 0);
  char *newdir = at(dir, "x/y/z/new");
  ck_assert_int_eq(rmdir(newdir), 0);
  free(newdir);
  free(deeper);
  ck_assert(pf_dir_is_empty(deep));
  pf_test_write(file, "data");
  ck_assert(!pf_dir_is_empty(dir));
  ck_assert(!pf_dir_is_empty(file));
  char *under_file = at(file, "sub");
  ck_assert_int_eq(pf_mkdirs(under_file, &err), PF_ERR_IO);
  pf_assert_err(err, "f.txt");
  ck_assert_int_eq(pf_mkdirs("", &err), PF_ERR_INVALID);

  /* a symlink to a folder outside must be removed without touching its target */
  ck_assert_int_eq(pf_mkdirs(outside, &err), PF_OK);
  pf_test_write(keepfile, "keep me");
  ck_assert_int_eq(symlink(outside, link), 0);
  for (int i = 0; i < 300; i++) { /* many entries: several getdents passes */
    char name[64];
    snprintf(name, sizeof name, "x/y/z/file-with-a-long-name-%03d", i);
    char *p = at(dir, name);
    pf_test_write(p, "x");
    free(p);
  }
  char *x = at(dir, "x");
  ck_assert(pf_path_exists(link));
  ck_assert_int_eq(pf_remove_tree(x, &err), PF_OK);
  ck_assert(!pf_path_exists(x));
  ck_assert(pf_path_exists(keepfile));
  ck_assert_int_eq(pf_remove_tree(x, &err), PF_OK);        /* missing is fine */
  ck_assert_int_eq(pf_remove_tree(keepfile, &err), PF_OK); /* plain file */
  ck_assert(!pf_path_exists(keepfile));
  ck_assert(!pf_is_dir(keepfile));
  pf_test_rmtree(dir);
  free(x);
  free(under_file);
  free(deep);
  free(file);
  free(outside);
  free(keepfile);
  free(link);
  free(dir);
}
END_TEST

/* "Key: N kB" lines of /proc files; a key is matched whole, not as a prefix. */
START_TEST(test_proc_kb) {
  const uint64_t total = pf_proc_kb("/proc/meminfo", "MemTotal");
  ck_assert_uint_gt(total, (uint64_t)1 << 20);
  ck_assert_uint_eq(total % 1024, 0);
  ck_assert_uint_le(pf_proc_kb("/proc/meminfo", "MemAvailable"), total);
  ck_assert_uint_eq(pf_proc_kb("/proc/meminfo", "MemTot"), 0);
  ck_assert_uint_eq(pf_proc_kb("/proc/meminfo", "NoSuchKey"), 0);
  ck_assert_uint_eq(pf_proc_kb("/nonexistent/status", "VmData"), 0);
  ck_assert_uint_gt(pf_proc_kb("/proc/self/status", "VmData"), 0);
}
END_TEST

START_TEST(test_paths) {
  char *j = pf_path_join("a", "b");
  ck_assert_str_eq(j, "a/b");
  free(j);
  j = pf_path_join("a/", "b");
  ck_assert_str_eq(j, "a/b");
  free(j);
  j = pf_path_join("", "b");
  ck_assert_str_eq(j, "b");
  free(j);

  char *dir = pf_test_tmpdir("fsutil");
  char *real = pf_abspath(dir);
  ck_assert_ptr_nonnull(real);
  ck_assert(real[0] == '/');
  char *sub = at(dir, "sub"), *tail = at(dir, "sub/../missing/./deeper/");
  ck_assert_int_eq(pf_mkdirs(sub, NULL), PF_OK);
  char *a = pf_abspath(tail), *want = at(real, "missing/deeper");
  ck_assert_str_eq(a, want); /* the rest after the existing prefix, normalised */
  free(a);
  free(want);
  /* symlinked folders resolve to their target */
  char *ln = at(dir, "ln"), *viaLink = at(dir, "ln/new");
  ck_assert_int_eq(symlink(sub, ln), 0);
  a = pf_abspath(viaLink);
  want = at(real, "sub/new");
  ck_assert_str_eq(a, want);
  free(a);
  free(want);
  /* relative paths are taken from the working folder */
  char oldcwd[4096];
  ck_assert_ptr_nonnull(getcwd(oldcwd, sizeof oldcwd));
  ck_assert_int_eq(chdir(dir), 0);
  a = pf_abspath("not/yet");
  want = at(real, "not/yet");
  ck_assert_str_eq(a, want);
  free(a);
  free(want);
  a = pf_abspath("/");
  ck_assert_str_eq(a, "/");
  free(a);
  a = pf_abspath("/../..");
  ck_assert_str_eq(a, "/");
  free(a);
  ck_assert_ptr_null(pf_abspath(""));

  ck_assert(pf_path_inside(sub, dir));
  ck_assert(pf_path_inside(dir, dir));
  ck_assert(pf_path_inside("sub/x/y", "."));
  ck_assert(pf_path_inside(viaLink, sub));
  ck_assert(!pf_path_inside(dir, sub));
  ck_assert(!pf_path_inside("sub/../../elsewhere", dir));
  char *sibling = malloc(strlen(dir) + 8);
  sprintf(sibling, "%s-other", dir); /* shares a string prefix, not a path prefix */
  ck_assert(!pf_path_inside(sibling, dir));
  ck_assert(pf_path_inside(sibling, "/"));
  free(sibling);
  ck_assert(pf_path_exists(ln));
  ck_assert(!pf_path_exists("definitely/missing"));
  ck_assert_int_eq(chdir(oldcwd), 0);
  pf_test_rmtree(dir);
  free(ln);
  free(viaLink);
  free(sub);
  free(tail);
  free(real);
  free(dir);
}
END_TEST

START_TEST(test_temp_and_commit) {
  char *dir = pf_test_tmpdir("fsutil");
  char *target = at(dir, "out/ckpt"), *parent = at(dir, "out");
  pf_err err = {0};
  char *tmp = NULL;
  ck_assert_int_eq(pf_make_temp_sibling(target, &tmp, &err), PF_OK);
  ck_assert(pf_is_dir(tmp));
  ck_assert_int_eq(strncmp(tmp, target, strlen(target)), 0);
  ck_assert_int_eq(strncmp(tmp + strlen(target), ".tmp-", 5), 0);
  char *f = at(tmp, "model.safetensors");
  pf_test_write(f, "v1");
  free(f);
  ck_assert_int_eq(pf_commit_dir(tmp, target, PF_COMMIT_NEW, NULL, &err), PF_OK);
  ck_assert(!pf_path_exists(tmp));
  char *committed = at(target, "model.safetensors");
  char *txt = pf_test_read(committed, NULL);
  ck_assert_str_eq(txt, "v1");
  free(txt);
  free(tmp);

  /* a second commit over the first: refused without replace, done with it */
  ck_assert_int_eq(pf_make_temp_sibling(target, &tmp, &err), PF_OK);
  f = at(tmp, "model.safetensors");
  pf_test_write(f, "v2");
  free(f);
  ck_assert_int_eq(pf_commit_dir(tmp, target, PF_COMMIT_NEW, NULL, &err), PF_ERR_INVALID);
  pf_assert_err(err, "already exists");
  ck_assert(pf_is_dir(tmp));
  /* a save into an empty folder replaces only a folder that is still empty (before: a
   * folder filled during the save, by the user or another run, was replaced and its
   * files deleted) */
  ck_assert_int_eq(pf_commit_dir(tmp, target, PF_COMMIT_EMPTY, NULL, &err), PF_ERR_INVALID);
  pf_assert_err(err, "not empty any more");
  ck_assert(pf_is_dir(tmp));
  txt = pf_test_read(committed, NULL);
  ck_assert_str_eq(txt, "v1");
  free(txt);
  ck_assert_int_eq(pf_commit_dir(tmp, target, PF_COMMIT_ANY, NULL, &err), PF_OK);
  txt = pf_test_read(committed, NULL);
  ck_assert_str_eq(txt, "v2");
  free(txt);
  ck_assert_int_eq(count_entries_with_prefix(parent, "ckpt"), 1);   /* nothing left aside */
  ck_assert_int_eq(pf_commit_dir(tmp, target, PF_COMMIT_ANY, NULL, &err), PF_ERR_IO); /* tmp gone */
  pf_assert_err(err, "cannot rename");
  ck_assert(pf_is_dir(target)); /* the old folder was put back */
  free(tmp);

  /* an empty folder at the target is replaced in PF_COMMIT_EMPTY mode, and a folder
   * that appeared meanwhile (empty or not) is never replaced in PF_COMMIT_NEW mode */
  char *empty = at(dir, "out/empty"), *inside = at(dir, "out/empty/model.safetensors");
  for (int mode = PF_COMMIT_NEW; mode <= PF_COMMIT_EMPTY; mode++) {
    ck_assert_int_eq(pf_mkdirs(empty, &err), PF_OK);
    ck_assert_int_eq(pf_make_temp_sibling(empty, &tmp, &err), PF_OK);
    f = at(tmp, "model.safetensors");
    pf_test_write(f, "v3");
    free(f);
    ck_assert_int_eq(pf_commit_dir(tmp, empty, mode, NULL, &err),
                     mode == PF_COMMIT_EMPTY ? PF_OK : PF_ERR_INVALID);
    if (mode == PF_COMMIT_EMPTY) {
      txt = pf_test_read(inside, NULL);
      ck_assert_str_eq(txt, "v3");
      free(txt);
    } else {
      pf_assert_err(err, "already exists");
      ck_assert(pf_dir_is_empty(empty));
      pf_test_rmtree(tmp);
    }
    free(tmp);
  }
  free(empty);
  free(inside);

  char *trailing = at(dir, "out/other/");
  ck_assert_int_eq(pf_make_temp_sibling(trailing, &tmp, &err), PF_OK);
  ck_assert(strstr(tmp, "/out/other.tmp-") != NULL);
  pf_test_rmtree(tmp);
  free(tmp);
  tmp = (char *)1;
  ck_assert_int_eq(pf_make_temp_sibling("", &tmp, &err), PF_ERR_INVALID);
  ck_assert_ptr_null(tmp);
  pf_test_rmtree(dir);
  free(trailing);
  free(committed);
  free(target);
  free(parent);
  free(dir);
}
END_TEST

/* The commit of a replacement succeeds even when the old copy cannot be removed (a
 * read-only folder inside it, as another user): it is left and named. Run as an
 * unprivileged user (a child that drops root, when the tests run as root, for whom
 * permissions do not stop a removal). */
static int commit_over_read_only(const char *dir) {
  char *target = at(dir, "out"), *ro = at(dir, "out/ro"), *f = at(dir, "out/ro/a");
  char *tmp = NULL, *left = NULL, *v2 = NULL;
  pf_err err = {0};
  int bad = pf_mkdirs(ro, &err) != PF_OK;
  if (!bad) pf_test_write(f, "old");
  bad = bad || chmod(ro, 0555) != 0 || pf_make_temp_sibling(target, &tmp, &err) != PF_OK;
  if (!bad) {
    v2 = at(tmp, "new.txt");
    pf_test_write(v2, "v2");
    free(v2);
    v2 = at(target, "new.txt");
  }
  bad = bad || pf_commit_dir(tmp, target, PF_COMMIT_ANY, &left, &err) != PF_OK ||
        !pf_path_exists(v2) || !left || !strstr(left, "/out") || !strstr(left, "Permission denied");
  if (left) { /* let the test's cleanup remove it */
    char *lro = strdup(left);
    *strchr(lro, ' ') = '\0';
    char *inner = at(lro, "ro");
    (void)chmod(inner, 0755);
    free(inner);
    free(lro);
  }
  free(left);
  free(tmp);
  free(v2);
  free(f);
  free(ro);
  free(target);
  return bad;
}

START_TEST(test_commit_leaves_old_copy) {
  char *dir = pf_test_tmpdir("fsutil");
  ck_assert_int_eq(chmod(dir, 0777), 0);
  int bad;
  if (geteuid() != 0) {
    bad = commit_over_read_only(dir);
  } else {
    pid_t pid = fork();
    if (pid == 0) _exit(setgid(65534) || setuid(65534) ? 2 : commit_over_read_only(dir));
    int status = 0;
    waitpid(pid, &status, 0);
    bad = !WIFEXITED(status) ? 3 : WEXITSTATUS(status);
  }
  ck_assert_int_eq(bad, 0);
  pf_test_rmtree(dir);
  free(dir);
}
END_TEST

/* The janitor removes what a registered mkdtemp template names once its process is
 * gone, and nothing else: pf_make_temp_sibling tells it the template before mkdtemp,
 * so a SIGKILL between mkdtemp and the folder's own registration (an e2e test that
 * kills pfrun as soon as the folder appears hit it under load) leaves nothing. */
START_TEST(test_janitor_template) {
  char *dir = pf_test_tmpdir("fsutil");
  char *hit = at(dir, "out.tmp-h-7-ab12cd"), *longer = at(dir, "out.tmp-h-7-ab12cdx"),
       *other = at(dir, "out.tmp-h-8-ab12cd"), *tmpl = at(dir, "out.tmp-h-7-XXXXXX");
  ck_assert_int_eq(pf_mkdirs(hit, NULL), PF_OK);
  ck_assert_int_eq(pf_mkdirs(longer, NULL), PF_OK);
  ck_assert_int_eq(pf_mkdirs(other, NULL), PF_OK);
  pid_t pid = fork();
  if (pid == 0) {
    if (pf_temp_janitor_start() != 0) _exit(3);
    pf_temp_register(tmpl);
    raise(SIGKILL);
  }
  int status = 0;
  ck_assert_int_eq(waitpid(pid, &status, 0), pid);
  ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  for (int i = 0; i < 200 && pf_path_exists(hit); i++)
    usleep(25 * 1000);
  ck_assert_msg(!pf_path_exists(hit), "%s: left by the janitor", hit);
  ck_assert(pf_is_dir(longer));
  ck_assert(pf_is_dir(other));
  pf_test_rmtree(dir);
  free(hit), free(longer), free(other), free(tmpl), free(dir);
}
END_TEST

START_TEST(test_temp_registry) {
  char *dir = pf_test_tmpdir("fsutil");
  char *t1 = at(dir, "t1"), *t2 = at(dir, "t2"), *inner = at(dir, "t1/a/b");
  ck_assert_int_eq(pf_mkdirs(inner, NULL), PF_OK);
  ck_assert_int_eq(pf_mkdirs(t2, NULL), PF_OK);
  pf_temp_register(t1);
  pf_temp_register(t2);
  pf_temp_unregister(t2);
  pf_cleanup_temps();
  ck_assert(!pf_path_exists(t1));
  ck_assert(pf_is_dir(t2));
  pf_cleanup_temps(); /* nothing registered any more */
  ck_assert(pf_is_dir(t2));
  /* slots are reused: register and unregister many times */
  for (int i = 0; i < 200; i++) {
    pf_temp_register(t2);
    pf_temp_unregister(t2);
  }
  pf_cleanup_temps();
  ck_assert(pf_is_dir(t2));
  pf_test_rmtree(dir);
  free(t1);
  free(t2);
  free(inner);
  free(dir);
}
END_TEST

/* A FIFO (no writer), a folder or a character device where an input file is
 * expected: refused at once with the kind named. Before, open() of a FIFO
 * blocked for ever (this test then ends by the Check timeout). */
START_TEST(test_non_regular_inputs) {
  char *dir = pf_test_tmpdir("fsutil");
  char *fifo = at(dir, "tokenizer.json"), *copy = at(dir, "copy.json");
  ck_assert_int_eq(mkfifo(fifo, 0644), 0);
  pf_err err = {0};
  char *buf = (char *)1;
  size_t len = 7;
  char want[4200];
  snprintf(want, sizeof want, "%s: expected a regular file, found a FIFO", fifo);
  ck_assert_int_eq(pf_read_file(fifo, 100, &buf, &len, &err), PF_ERR_IO);
  ck_assert_ptr_null(buf);
  ck_assert_uint_eq(len, 0);
  pf_assert_err(err, want);
  int fd = 5;
  uint64_t size = 9;
  ck_assert_int_eq(pf_open_input(fifo, &fd, &size, &err), PF_ERR_IO);
  ck_assert_int_eq(fd, -1);
  pf_assert_err(err, want);
  FILE *f = (FILE *)1;
  ck_assert_int_eq(pf_fopen_input(fifo, &f, NULL, &err), PF_ERR_IO);
  ck_assert_ptr_null(f);
  pf_assert_err(err, want);
  ck_assert_int_eq(pf_copy_file(fifo, copy, &err), PF_ERR_IO);
  pf_assert_err(err, want);
  ck_assert(!pf_path_exists(copy));
  ck_assert_int_eq(pf_open_input("/dev/null", &fd, NULL, &err), PF_ERR_IO);
  pf_assert_err(err, "/dev/null: expected a regular file, found a character device");
  ck_assert_int_eq(pf_open_input(dir, &fd, NULL, &err), PF_ERR_IO);
  pf_assert_err(err, "expected a regular file, found a folder");
  char *missing = at(dir, "none.json");
  ck_assert_int_eq(pf_open_input(missing, &fd, NULL, &err), PF_ERR_NOT_FOUND);
  pf_assert_err(err, "none.json: cannot open: No such file or directory");
  /* a regular file: a blocking descriptor (O_NONBLOCK cleared) and its size */
  pf_test_write(copy, "12345");
  ck_assert_int_eq(pf_open_input(copy, &fd, &size, &err), PF_OK);
  ck_assert_int_ge(fd, 0);
  ck_assert_uint_eq(size, 5);
  ck_assert_int_eq(fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
  close(fd);
  ck_assert_str_eq(pf_file_kind(S_IFIFO), "a FIFO");
  ck_assert_str_eq(pf_file_kind(S_IFSOCK), "a socket");
  ck_assert_str_eq(pf_file_kind(S_IFBLK), "a block device");
  pf_test_rmtree(dir);
  free(missing);
  free(fifo);
  free(copy);
  free(dir);
}
END_TEST

static Suite *make_suite(void) {
  Suite *s = suite_create("fsutil");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, test_read_write_copy);
  tcase_add_test(tc, test_proc_kb);
  tcase_add_test(tc, test_mkdirs_and_remove_tree);
  tcase_add_test(tc, test_temp_sweep_stale);
  tcase_add_test(tc, test_paths);
  tcase_add_test(tc, test_temp_and_commit);
  tcase_add_test(tc, test_temp_registry);
  tcase_add_test(tc, test_janitor_template);
  tcase_add_test(tc, test_commit_leaves_old_copy);
  tcase_add_test(tc, test_non_regular_inputs);
  tcase_add_test(tc, test_write_through_links_and_fds);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return pf_test_main(make_suite);
}
