/* cpus.c — how many CPUs this process can really use: its affinity mask and the
 * CPU quota of its cgroup (cgroup v2 cpu.max, v1 cpu.cfs_quota_us over
 * cpu.cfs_period_us), the smallest quota on the way from its cgroup up to the
 * mount's root.
 *
 * Why: libgomp sizes its team from the affinity mask, which a container limited
 * by a quota (docker --cpus=2, a Kubernetes CPU limit, a systemd CPUQuota) does
 * not narrow: on a 64-CPU host pfrun would start 64 threads for 2 CPUs' worth of
 * time. The spin barriers of BLIS and libgomp then wait on threads that are not
 * running (bench/README.md "Threads and CPU quotas": 3 threads on 2 CPUs made an
 * sgemm 3x slower; a quota of 1 CPU under 2 threads, measured there too).
 *
 * Where the cgroup files are: /proc/self/mountinfo gives each cgroup mount's
 * mount point and the cgroup path it shows (its root: "/" normally, the
 * container's own cgroup when a runtime bind-mounts it without a cgroup
 * namespace); /proc/self/cgroup gives this process's cgroup path. The limits
 * are read in mount point + (path - root) and each parent up to the mount
 * point. Everything is best effort: a file that is missing, unreadable or
 * malformed is no limit. */
#include "kern_internal.h"

#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CPUS_PATH_MAX 1024

/* The first line of root + path, trailing newline removed; 0 if unreadable. */
static int read_line(const char *root, const char *path, char *buf, size_t cap) {
  char full[CPUS_PATH_MAX];
  if ((size_t)snprintf(full, sizeof full, "%s%s", root, path) >= sizeof full) return 0;
  FILE *f = fopen(full, "r");
  if (!f) return 0;
  const int ok = fgets(buf, (int)cap, f) != NULL;
  fclose(f);
  if (ok) buf[strcspn(buf, "\n")] = '\0';
  return ok;
}

/* out = dir + name; 0 if it does not fit. */
static int join(char *out, size_t cap, const char *dir, const char *name) {
  const size_t d = strlen(dir), n = strlen(name);
  if (d + n + 1 > cap) return 0;
  memcpy(out, dir, d);
  memcpy(out + d, name, n + 1);
  return 1;
}

/* The quota in CPUs found in directory dir (below root), 0 if none there. */
static double quota_in(const char *root, const char *dir, int v2, char *src, size_t src_cap) {
  char path[CPUS_PATH_MAX], line[128];
  double q = 0;
  if (v2) {
    char max[32];
    long long period;
    if (join(path, sizeof path, dir, "/cpu.max") && read_line(root, path, line, sizeof line) &&
        sscanf(line, "%31s %lld", max, &period) == 2 && strcmp(max, "max") != 0 && period > 0) {
      char *end;
      const long long quota = strtoll(max, &end, 10);
      if (*end == '\0' && quota > 0) q = (double)quota / (double)period;
    }
  } else {
    long long quota, period;
    char pline[64];
    char ppath[CPUS_PATH_MAX];
    if (join(path, sizeof path, dir, "/cpu.cfs_quota_us") &&
        join(ppath, sizeof ppath, dir, "/cpu.cfs_period_us") &&
        read_line(root, path, line, sizeof line) && sscanf(line, "%lld", &quota) == 1 &&
        quota > 0 && read_line(root, ppath, pline, sizeof pline) &&
        sscanf(pline, "%lld", &period) == 1 && period > 0)
      q = (double)quota / (double)period;
  }
  if (q > 0) snprintf(src, src_cap, "%.255s", path);
  return q;
}

/* Whether the comma-separated list has the exact word w. */
static int has_word(const char *list, const char *w) {
  const size_t n = strlen(w);
  for (const char *p = list; p && *p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
    if (strncmp(p, w, n) == 0 && (p[n] == ',' || p[n] == '\0')) return 1;
  return 0;
}

/* This process's cgroup path for v2 (controllers "") or for the v1 hierarchy
 * whose controllers include "cpu"; 0 if none. */
static int cgroup_path(const char *root, int v2, char *out, size_t cap) {
  char full[CPUS_PATH_MAX], line[CPUS_PATH_MAX];
  snprintf(full, sizeof full, "%s/proc/self/cgroup", root);
  FILE *f = fopen(full, "r");
  if (!f) return 0;
  int found = 0;
  while (!found && fgets(line, sizeof line, f)) {
    line[strcspn(line, "\n")] = '\0';
    char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    if (!c2) continue;
    *c1 = '\0';
    *c2 = '\0';
    const char *ctl = c1 + 1;
    if (v2 ? (strcmp(line, "0") == 0 && *ctl == '\0') : has_word(ctl, "cpu")) {
      snprintf(out, cap, "%s", c2 + 1);
      found = 1;
    }
  }
  fclose(f);
  return found;
}

/* The smallest quota from the process's cgroup up to the mount point of one
 * cgroup mount (mnt: mount point, mroot: the cgroup path it shows). */
static double quota_of_mount(const char *root, const char *mnt, const char *mroot, int v2,
                             char *src, size_t src_cap) {
  char cg[CPUS_PATH_MAX], dir[CPUS_PATH_MAX];
  if (!cgroup_path(root, v2, cg, sizeof cg)) return 0;
  const size_t rl = strlen(mroot);
  const char *rel = cg;
  if (strcmp(mroot, "/") != 0) {
    if (strncmp(cg, mroot, rl) == 0 && (cg[rl] == '/' || cg[rl] == '\0'))
      rel = cg + rl;
    else
      rel = ""; /* the process is outside what is mounted: read the mount point itself */
  }
  if ((size_t)snprintf(dir, sizeof dir, "%s%s", mnt, strcmp(rel, "/") == 0 ? "" : rel) >=
      sizeof dir)
    return 0;
  const size_t ml = strlen(mnt);
  double best = 0;
  for (;;) {
    char here[256];
    const double q = quota_in(root, dir, v2, here, sizeof here);
    if (q > 0 && (best == 0 || q < best)) {
      best = q;
      snprintf(src, src_cap, "%s", here);
    }
    char *slash = strrchr(dir, '/');
    if (strlen(dir) <= ml || !slash || (size_t)(slash - dir) < ml) break;
    *slash = '\0';
  }
  return best;
}

double pf_cpu_quota_read(const char *root, char *src, size_t src_cap) {
  char full[CPUS_PATH_MAX];
  if (src_cap) src[0] = '\0';
  snprintf(full, sizeof full, "%s/proc/self/mountinfo", root ? root : "");
  FILE *f = fopen(full, "r");
  if (!f) return 0;
  double best = 0;
  char *line = NULL; /* whole lines: an overlay mount's options run to kilobytes */
  size_t cap = 0;
  while (getline(&line, &cap, f) > 0) {
    /* id parent maj:min root mountpoint options [optional...] - fstype source superopts */
    char mroot[512], mnt[512], fstype[32], superopts[512];
    const char *dash = strstr(line, " - ");
    if (!dash || sscanf(line, "%*s %*s %*s %511s %511s", mroot, mnt) != 2 ||
        sscanf(dash + 3, "%31s %*s %511s", fstype, superopts) != 2)
      continue;
    const int v2 = strcmp(fstype, "cgroup2") == 0;
    if (!v2 && !(strcmp(fstype, "cgroup") == 0 && has_word(superopts, "cpu"))) continue;
    char here[256];
    const double q = quota_of_mount(root ? root : "", mnt, mroot, v2, here, sizeof here);
    if (q > 0 && (best == 0 || q < best)) {
      best = q;
      snprintf(src, src_cap, "%s", here);
    }
  }
  free(line);
  fclose(f);
  return best;
}

int pf_cpus_from_quota(double quota) {
  if (!(quota > 0)) return 0;
  const double c = ceil(quota - 1e-6);
  return c < 1 ? 1 : c > 1e6 ? 1000000 : (int)c;
}

void pf_cpu_budget_get(pf_cpu_budget *b) {
  memset(b, 0, sizeof *b);
  const long on = sysconf(_SC_NPROCESSORS_ONLN);
  b->online = on > 0 ? (int)on : 1;
  cpu_set_t set;
  CPU_ZERO(&set);
  b->affinity = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : b->online;
  b->quota = pf_cpu_quota_read("", b->quota_src, sizeof b->quota_src);
  const int q = pf_cpus_from_quota(b->quota);
  b->cpus = b->affinity > 0 ? b->affinity : b->online;
  if (q > 0 && q < b->cpus) b->cpus = q;
}

int pf_threads_choose(int omp_default, int user_set, const pf_cpu_budget *b, char *note,
                      size_t cap) {
  if (cap) note[0] = '\0';
  if (!user_set && b->quota > 0 && b->cpus < omp_default) {
    snprintf(note, cap, "capped at the cgroup CPU quota of %.2f CPUs (%s)", b->quota, b->quota_src);
    return b->cpus;
  }
  if (omp_default > b->cpus)
    snprintf(note, cap, "%s%d threads on %d CPU%s: oversubscribed, expect slow matrix products",
             user_set ? "OMP_NUM_THREADS asks for " : "", omp_default, b->cpus,
             b->cpus == 1 ? "" : "s");
  return omp_default;
}
