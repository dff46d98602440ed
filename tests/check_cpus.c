/* check_cpus.c — the CPU budget (runtime/kernels/cpus.c): cgroup v1 and v2 CPU
 * quotas read from fixture trees (mountinfo, the process's cgroup, the limit
 * files in it and its parents), and the thread count chosen from them. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kernels/kernels.h"
#include "testutil.h"

static char g_root[256];

/* Write text to g_root + path, creating the folders on the way. */
static void put(const char *path, const char *text) {
  char full[1024];
  snprintf(full, sizeof full, "%s%s", g_root, path);
  for (char *p = full + strlen(g_root) + 1; *p; p++)
    if (*p == '/') {
      *p = '\0';
      ck_assert_msg(mkdir(full, 0755) == 0 || errno == EEXIST, "mkdir %s", full);
      *p = '/';
    }
  FILE *f = fopen(full, "w");
  ck_assert_ptr_nonnull(f);
  fputs(text, f);
  fclose(f);
}

static void setup(void) {
  snprintf(g_root, sizeof g_root, "/tmp/pf-cpus-XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(g_root));
}

static void teardown(void) {
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_root);
  ck_assert_int_eq(system(cmd), 0);
}

static const char *V2_MOUNT =
    "24 23 0:22 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 "
    "rw,nsdelegate\n";

static double quota(char *src, size_t cap) {
  return pf_cpu_quota_read(g_root, src, cap);
}

START_TEST(test_v2_namespace_root) {
  /* a container with its own cgroup namespace: its cgroup is "/" */
  put("/proc/self/mountinfo", V2_MOUNT);
  put("/proc/self/cgroup", "0::/\n");
  put("/sys/fs/cgroup/cpu.max", "150000 100000\n");
  char src[256];
  ck_assert_double_eq_tol(quota(src, sizeof src), 1.5, 1e-9);
  ck_assert_str_eq(src, "/sys/fs/cgroup/cpu.max");
  ck_assert_int_eq(pf_cpus_from_quota(1.5), 2);
  ck_assert_int_eq(pf_cpus_from_quota(2.0), 2);
  ck_assert_int_eq(pf_cpus_from_quota(0.2), 1);
  ck_assert_int_eq(pf_cpus_from_quota(0), 0);
}
END_TEST

START_TEST(test_v2_nested_smallest) {
  /* no limit in the process's own cgroup; the parent's is smaller than the root's */
  put("/proc/self/mountinfo", V2_MOUNT);
  put("/proc/self/cgroup", "0::/a/b\n");
  put("/sys/fs/cgroup/a/b/cpu.max", "max 100000\n");
  put("/sys/fs/cgroup/a/cpu.max", "300000 100000\n");
  put("/sys/fs/cgroup/cpu.max", "800000 100000\n");
  char src[256];
  ck_assert_double_eq_tol(quota(src, sizeof src), 3.0, 1e-9);
  ck_assert_str_eq(src, "/sys/fs/cgroup/a/cpu.max");
  /* the own cgroup's limit, when smaller, wins */
  put("/sys/fs/cgroup/a/b/cpu.max", "50000 100000\n");
  ck_assert_double_eq_tol(quota(src, sizeof src), 0.5, 1e-9);
  ck_assert_str_eq(src, "/sys/fs/cgroup/a/b/cpu.max");
}
END_TEST

START_TEST(test_v2_no_limit_and_malformed) {
  put("/proc/self/mountinfo", V2_MOUNT);
  put("/proc/self/cgroup", "0::/x\n");
  put("/sys/fs/cgroup/x/cpu.max", "max 100000\n");
  char src[256] = "junk";
  ck_assert_double_eq(quota(src, sizeof src), 0);
  ck_assert_str_eq(src, "");
  put("/sys/fs/cgroup/x/cpu.max", "12abc 100000\n");
  ck_assert_double_eq(quota(src, sizeof src), 0);
  put("/sys/fs/cgroup/x/cpu.max", "100000 0\n");
  ck_assert_double_eq(quota(src, sizeof src), 0);
  put("/sys/fs/cgroup/x/cpu.max", "\n");
  ck_assert_double_eq(quota(src, sizeof src), 0);
}
END_TEST

START_TEST(test_v1_bind_mounted_container) {
  /* cgroup v1, no namespace: /proc/self/cgroup names the host's path, the
   * runtime mounted that cgroup itself at the mount point (root field) */
  /* an overlay root with kilobytes of options comes first; read in pieces, its
   * tail would look like a cgroup mount of its own at /fake (0.1 CPU) */
  char mi[8000];
  int o = snprintf(mi, sizeof mi, "22 1 0:21 / / rw - overlay overlay rw,lowerdir=");
  for (int i = 0; i < 400; i++)
    o += snprintf(mi + o, sizeof mi - (size_t)o, "/l/%03d:", i);
  snprintf(mi + o, sizeof mi - (size_t)o,
           " 23 0:9 / /fake rw - cgroup cgroup rw,cpu\n"
           "30 22 0:27 / /sys/fs/cgroup ro - tmpfs tmpfs ro,mode=755\n"
           "31 30 0:28 /docker/abc /sys/fs/cgroup/cpu,cpuacct ro,nosuid - cgroup cgroup "
           "rw,cpu,cpuacct\n"
           "32 30 0:29 /docker/abc /sys/fs/cgroup/cpuset ro - cgroup cgroup rw,cpuset\n");
  put("/proc/self/mountinfo", mi);
  put("/fake/cpu.cfs_quota_us", "10000\n");
  put("/fake/cpu.cfs_period_us", "100000\n");
  put("/proc/self/cgroup", "5:cpuset:/docker/abc\n4:cpu,cpuacct:/docker/abc\n");
  put("/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "200000\n");
  put("/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us", "100000\n");
  /* a quota-like file under cpuset is not read */
  put("/sys/fs/cgroup/cpuset/cpu.cfs_quota_us", "10000\n");
  put("/sys/fs/cgroup/cpuset/cpu.cfs_period_us", "100000\n");
  char src[256];
  ck_assert_double_eq_tol(quota(src, sizeof src), 2.0, 1e-9);
  ck_assert_str_eq(src, "/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us");
  /* -1 is no quota */
  put("/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "-1\n");
  ck_assert_double_eq(quota(src, sizeof src), 0);
}
END_TEST

START_TEST(test_v1_host_path_and_hybrid) {
  /* v1 "cpu" hierarchy at its usual place and a v2 mount beside it (hybrid):
   * the smaller quota of the two */
  put("/proc/self/mountinfo", "31 30 0:28 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n"
                              "32 30 0:29 / /sys/fs/cgroup/cpuacct rw - cgroup cgroup rw,cpuacct\n"
                              "33 30 0:30 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n");
  put("/proc/self/cgroup", "2:cpuacct:/\n1:cpu:/jobs/7\n0::/jobs/7\n");
  put("/sys/fs/cgroup/cpu/jobs/7/cpu.cfs_quota_us", "400000\n");
  put("/sys/fs/cgroup/cpu/jobs/7/cpu.cfs_period_us", "100000\n");
  put("/sys/fs/cgroup/cpuacct/jobs/7/cpu.cfs_quota_us", "1000\n"); /* not the cpu controller */
  put("/sys/fs/cgroup/cpuacct/jobs/7/cpu.cfs_period_us", "100000\n");
  char src[256];
  ck_assert_double_eq_tol(quota(src, sizeof src), 4.0, 1e-9);
  put("/sys/fs/cgroup/unified/jobs/cpu.max", "250000 100000\n");
  ck_assert_double_eq_tol(quota(src, sizeof src), 2.5, 1e-9);
  ck_assert_str_eq(src, "/sys/fs/cgroup/unified/jobs/cpu.max");
}
END_TEST

START_TEST(test_missing_files) {
  char src[256];
  ck_assert_double_eq(quota(src, sizeof src), 0); /* no mountinfo */
  put("/proc/self/mountinfo", V2_MOUNT);
  ck_assert_double_eq(quota(src, sizeof src), 0); /* no /proc/self/cgroup */
  put("/proc/self/cgroup", "0::/gone\n");
  ck_assert_double_eq(quota(src, sizeof src), 0); /* no limit files at all */
  put("/proc/self/mountinfo", "garbage line\n\n31 30 0:28\n");
  ck_assert_double_eq(quota(src, sizeof src), 0);
}
END_TEST

START_TEST(test_threads_choose) {
  char note[320];
  pf_cpu_budget b = {.online = 64, .affinity = 64, .quota = 2.0, .cpus = 2};
  snprintf(b.quota_src, sizeof b.quota_src, "/sys/fs/cgroup/cpu.max");
  /* OpenMP would start 64 threads for 2 CPUs' worth of time: capped */
  ck_assert_int_eq(pf_threads_choose(64, 0, &b, note, sizeof note), 2);
  ck_assert_msg(strstr(note, "capped at the cgroup CPU quota of 2.00 CPUs") &&
                    strstr(note, "/sys/fs/cgroup/cpu.max"),
                "%s", note);
  /* the user's OMP_NUM_THREADS is kept, and said to oversubscribe */
  ck_assert_int_eq(pf_threads_choose(8, 1, &b, note, sizeof note), 8);
  ck_assert_msg(strstr(note, "OMP_NUM_THREADS asks for 8 threads on 2 CPUs: oversubscribed"), "%s",
                note);
  /* within the budget: nothing to say */
  ck_assert_int_eq(pf_threads_choose(2, 0, &b, note, sizeof note), 2);
  ck_assert_str_eq(note, "");
  ck_assert_int_eq(pf_threads_choose(1, 1, &b, note, sizeof note), 1);
  ck_assert_str_eq(note, "");
  /* no quota, affinity narrower than the threads (OMP_NUM_THREADS) */
  pf_cpu_budget a = {.online = 8, .affinity = 1, .quota = 0, .cpus = 1};
  ck_assert_int_eq(pf_threads_choose(4, 1, &a, note, sizeof note), 4);
  ck_assert_msg(strstr(note, "4 threads on 1 CPU: oversubscribed"), "%s", note);
}
END_TEST

START_TEST(test_budget_of_this_process) {
  /* whatever this machine is: consistent and at least one CPU */
  pf_cpu_budget b;
  pf_cpu_budget_get(&b);
  ck_assert_int_ge(b.online, 1);
  ck_assert_int_ge(b.affinity, 1);
  ck_assert_int_ge(b.cpus, 1);
  ck_assert_int_le(b.cpus, b.affinity);
  if (b.quota > 0) ck_assert_int_le(b.cpus, pf_cpus_from_quota(b.quota));
  printf("check_cpus: this process: %d online, %d in the affinity mask, quota %.2f (%s), %d "
         "usable\n",
         b.online, b.affinity, b.quota, b.quota_src[0] ? b.quota_src : "none", b.cpus);
}
END_TEST

static Suite *make_suite(void) {
  Suite *s = suite_create("cpus");
  TCase *tc = tcase_create("quota");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_v2_namespace_root);
  tcase_add_test(tc, test_v2_nested_smallest);
  tcase_add_test(tc, test_v2_no_limit_and_malformed);
  tcase_add_test(tc, test_v1_bind_mounted_container);
  tcase_add_test(tc, test_v1_host_path_and_hybrid);
  tcase_add_test(tc, test_missing_files);
  tcase_add_test(tc, test_threads_choose);
  tcase_add_test(tc, test_budget_of_this_process);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return pf_test_main(make_suite);
}
