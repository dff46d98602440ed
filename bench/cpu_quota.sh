#!/bin/bash
# bench/cpu_quota.sh — pfrun under a cgroup CPU quota: the default thread count
# (capped at the quota, runtime/kernels/cpus.c) against as many threads as CPUs
# (OMP_NUM_THREADS, what pfrun ran before the cap), alternated.
#
# Usage: bash bench/cpu_quota.sh [BUILD_DIR [QUOTA_CPUS [ROUNDS]]]
#   defaults: build, 1 CPU, 2 rounds. Needs root and a writable cgroup
#   hierarchy with the cpu controller (cgroup v1 /sys/fs/cgroup/cpu, or v2 with
#   "cpu" in the root's cgroup.subtree_control). Runs
#   BUILD/bench_forward synthetic:llama-1b 1 256 16 (prefill 1 x 256, decode 16
#   tokens) in a cgroup "pfrun-quota" created for the run and removed after.
#   The short figures bench_forward prints first (sgemm, linear, read) run
#   within one quota period and are not what the quota allows; the prefill
#   and decode rates are.
set -euo pipefail
BUILD=${1:-build}
QUOTA=${2:-1}
ROUNDS=${3:-2}
CPUS=$(nproc)
[ -x "$BUILD/bench_forward" ] || { echo "cpu_quota.sh: $BUILD/bench_forward not built (cmake --build $BUILD --target benches)" >&2; exit 1; }
period=100000
quota_us=$(awk -v q="$QUOTA" -v p=$period 'BEGIN { printf "%d", q * p }')
if [ -d /sys/fs/cgroup/cpu ] && [ -w /sys/fs/cgroup/cpu ]; then
  cg=/sys/fs/cgroup/cpu/pfrun-quota
  mkdir -p "$cg"
  echo "$period" >"$cg/cpu.cfs_period_us"
  echo "$quota_us" >"$cg/cpu.cfs_quota_us"
elif [ -f /sys/fs/cgroup/cgroup.subtree_control ] && grep -qw cpu /sys/fs/cgroup/cgroup.subtree_control; then
  cg=/sys/fs/cgroup/pfrun-quota
  mkdir -p "$cg"
  echo "$quota_us $period" >"$cg/cpu.max"
else
  echo "cpu_quota.sh: no writable cgroup with the cpu controller (needs root); nothing measured" >&2
  exit 1
fi
trap 'rmdir "$cg" 2>/dev/null || true' EXIT
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $CPUS CPUs, quota $QUOTA CPU(s) in $cg; $(date -u +%FT%TZ)"
run() { # $1: label, rest: environment assignments
  local label=$1
  shift
  echo "== $label ($(date -u +%T))"
  sh -c 'echo $$ >"$0/cgroup.procs" && exec env "$@"' "$cg" "$@" \
    "$BUILD/bench_forward" synthetic:llama-1b 1 256 16 2>&1 | grep -E '^kernels|^prefill 1|^decode'
}
for r in $(seq "$ROUNDS"); do
  run "default threads" -u OMP_NUM_THREADS
  run "OMP_NUM_THREADS=$CPUS" OMP_NUM_THREADS="$CPUS"
done
