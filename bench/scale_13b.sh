#!/usr/bin/env bash
# Benchmark (not a test): a Llama-2-13B-shaped BF16 checkpoint (26 GB,
# synthetic:llama-13b, written once into $PFRUN_CACHE) on a machine with less
# RAM than that. Cold page cache before every run (needs root: drop_caches).
#   bash bench/scale_13b.sh [build/pfrun]
# 1. importance over 1 and over 8 batches of 1 x 32 tokens (auto order: the
#    weights do not fit, so layer-major), wall time and peak RSS; optionally
#    (BATCH_MAJOR=1) 2 batches forced batch-major, for the per-batch re-read cost;
# 2. width pruning 20 % (MAW + save) against cp + sync of the same bytes
#    (IMPORTANCE_ONLY=1 stops after 1).
# VARIANTS=... instead compares binaries / settings in alternating rounds (see below).
set -euo pipefail
PFRUN=$(realpath "${1:-build/pfrun}")
SRC=$(cd "$(dirname "$0")/.." && pwd)
export PFRUN_CACHE=${PFRUN_CACHE:-$HOME/.cache/pfrun}
DATA=${DATA:-$SRC/../shared/data/brown-calib.jsonl}
[ -f "$DATA" ] || DATA=$SRC/recipes/data/calib.txt
WORK=$(mktemp -d "${TMPDIR:-/var/tmp}/pf13b-XXXXXX")
trap 'rm -rf "$WORK"' EXIT
cold() { sync; echo 3 >/proc/sys/vm/drop_caches; }
echo "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) CPUs, $(free -g | awk '/Mem:/ {print $2}') GiB RAM; load average $(cut -d' ' -f1-3 /proc/loadavg)"
/usr/bin/time -f "synthetic write (once): %e s" "$PFRUN" analyze --model-path synthetic:llama-13b --quiet >/dev/null
SRCDIR=$(ls -d "$PFRUN_CACHE"/synthetic/llama-13b-* | head -1)
echo "checkpoint: $SRCDIR ($(du -cb "$SRCDIR"/*.safetensors | tail -1 | cut -f1) bytes)"

imp() { # imp SAMPLES [extra options]
  local n=$1; shift
  cold
  /usr/bin/time -f "%e %M" -o "$WORK/t" "$PFRUN" importance --model-path "$SRCDIR" --data "$DATA" \
    --samples "$n" --batch-size 1 --max-length 32 --min-length 32 "$@" >"$WORK/out" 2>"$WORK/err"
  read -r t r <"$WORK/t"
  echo "  importance, $n batch(es) of 1 x 32 tokens $*: $t s, peak RSS $((r / 1024)) MiB; $(grep -m1 'major' "$WORK/err")" >&2
  echo "$t"
}
if [ -n "${VARIANTS:-}" ]; then
  # VARIANTS="label:binary:VAR=value ...": rounds alternating over the variants, 1 then 8
  # batches each (e.g. direct:build/pfrun:PFRUN_PREFETCH=1 map:build/pfrun:PFRUN_PREFETCH=map
  # old:/tmp/old/build/pfrun:PFRUN_PREFETCH=1)
  for r in $(seq "${REPS:-3}"); do
    for v in $VARIANTS; do
      IFS=: read -r label bin envs <<<"$v"
      for n in 1 8; do
        cold
        env $envs /usr/bin/time -f "round $r $label n=$n wall %e s user %U sys %S peak RSS %M KiB" \
          "$bin" importance --model-path "$SRCDIR" --data "$DATA" --samples "$n" --batch-size 1 \
          --max-length 32 --min-length 32 --quiet 2>&1 | tail -1
      done
    done
  done
  exit 0
fi
echo "== importance (cold cache each run)"
t1=999999; t8=999999
for r in $(seq "${REPS:-2}"); do # alternating, the fastest of each
  a=$(imp 1); b=$(imp 8)
  t1=$(awk -v a="$a" -v b="$t1" 'BEGIN { print (a < b ? a : b) }')
  t8=$(awk -v a="$b" -v b="$t8" 'BEGIN { print (a < b ? a : b) }')
done
awk -v a="$t1" -v b="$t8" 'BEGIN { printf "  fastest: 1 batch %s s, 8 batches %s s: %.2fx (target <= 2x)\n", a, b, b / a }'
if [ "${BATCH_MAJOR:-0}" = 1 ]; then imp 2 --pass-order batch >/dev/null; fi

[ "${IMPORTANCE_ONLY:-0}" = 1 ] && exit 0
echo "== width prune 20 % against cp + sync (cold cache each)"
cold
read -r ct < <( { /usr/bin/time -f "%e" bash -c "cp '$SRCDIR'/*.safetensors '$WORK/' && sync -f '$WORK'" ; } 2>&1 | tail -1)
rm -f "$WORK"/*.safetensors
cold
read -r pt pr po < <( { /usr/bin/time -f "%e %M %O" "$PFRUN" prune --model-path "$SRCDIR" --output-path "$WORK/out13" --pruning-percentage 20 --quiet ; } 2>&1 | tail -1)
ob=$(du -cb "$WORK"/out13/*.safetensors | tail -1 | cut -f1)
rm -rf "$WORK/out13"
echo "  cp + sync: $ct s; prune: $pt s, peak RSS $((pr / 1024)) MiB, wrote $((po * 512)) bytes (output $ob bytes)"
awk -v p="$pt" -v c="$ct" 'BEGIN { printf "  prune / copy: %.2fx (target <= 1.3x)\n", p / c }'
