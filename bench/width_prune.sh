#!/usr/bin/env bash
# Benchmark (not a test): width-prune a Llama-3.2-1B-shaped BF16 checkpoint end to end
# and compare with a plain copy of the same bytes (the I/O bound of a prune+save).
#   bash bench/width_prune.sh [build/pfrun]
#   PRESET=llama-7b REPS=1 bash bench/width_prune.sh build/pfrun   # the 13.5 GB case
#   DTYPE=float16 bash bench/width_prune.sh build/pfrun   # saved in another dtype (converted)
# Prints wall time, peak RSS and bytes written (the kernel's write_bytes, from
# /usr/bin/time's file system outputs in 512-byte blocks) of `pfrun prune` and of
# `cp src dst && sync`, and their ratio. pfrun fsyncs what it writes, hence the sync.
set -euo pipefail
PFRUN=${1:-build/pfrun}
export PFRUN_CACHE=${PFRUN_CACHE:-$HOME/.cache/pfrun}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/pfbench-XXXXXX")
trap 'rm -rf "$WORK"' EXIT
PRESET=${PRESET:-llama-1b}
DTYPE=${DTYPE:-auto}
SPEC=synthetic:$PRESET
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg); $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) CPUs"

echo "== generating $SPEC (once; cached in $PFRUN_CACHE)"
/usr/bin/time -f "synthetic write: %e s, peak RSS %M KiB" "$PFRUN" analyze --model-path $SPEC --quiet >/dev/null
SRC=$(ls -d "$PFRUN_CACHE"/synthetic/"$PRESET"-* | head -1)
BYTES=$(du -cb "$SRC"/*.safetensors | tail -1 | cut -f1)
echo "checkpoint: $SRC ($BYTES bytes)"

# warm the page cache for both runs alike (as far as it holds the input)
cat "$SRC"/*.safetensors >/dev/null

# alternate the two measurements REPS times and keep the fastest of each
REPS=${REPS:-3}
ct=999999; pt=999999; crss=0; prss=0; cw=0; pw=0
for i in $(seq "$REPS"); do
  read -r t r o < <( { /usr/bin/time -f "%e %M %O" bash -c "cp '$SRC'/*.safetensors '$WORK/' && sync -f '$WORK'" ; } 2>&1 | tail -1)
  rm -f "$WORK"/*.safetensors
  awk -v a="$t" -v b="$ct" 'BEGIN{exit !(a<b)}' && ct=$t; [ "$r" -gt "$crss" ] && crss=$r; cw=$o
  rm -rf "$WORK/out"
  echo "  run $i: cp+sync $t s; load average $(cut -d' ' -f1-3 /proc/loadavg)"
  read -r t r o < <( { /usr/bin/time -f "%e %M %O" "$PFRUN" prune --model-path "$SRC" --output-path "$WORK/out" --pruning-percentage 20 --dtype "$DTYPE" --quiet ; } 2>&1 | tail -1)
  awk -v a="$t" -v b="$pt" 'BEGIN{exit !(a<b)}' && pt=$t; [ "$r" -gt "$prss" ] && prss=$r; pw=$o
  echo "  run $i: prune $t s, peak RSS $((r / 1024)) MiB, wrote $((o * 512)) bytes; load average $(cut -d' ' -f1-3 /proc/loadavg)"
done
out_bytes=$(du -cb "$WORK"/out/*.safetensors | tail -1 | cut -f1)
all_out=$(du -cb "$WORK"/out/* | tail -1 | cut -f1)
echo "fastest of $REPS runs each (peak RSS: the largest seen; bytes written: the last run)"
echo
printf "%-34s %10s %14s %16s\n" "" "wall (s)" "peak RSS (MiB)" "written (bytes)"
printf "%-34s %10s %14d %16d\n" "copy of the input bytes (cp+sync)" "$ct" $((crss / 1024)) $((cw * 512))
printf "%-34s %10s %14d %16d\n" "pfrun prune MAW 20% + save ($DTYPE)" "$pt" $((prss / 1024)) $((pw * 512))
awk -v p="$pt" -v c="$ct" -v b="$BYTES" -v o="$out_bytes" -v a="$all_out" -v w="$((pw * 512))" 'BEGIN {
  printf "ratio prune/copy: %.2fx (target <= 1.3x); copy rate %.2f GB/s; input %.2f GB, output %.2f GB\n", p / c, b / c / 1e9, b / 1e9, o / 1e9
  printf "bytes written / output size: %.3f (target <= 1.05; the output folder holds %.0f bytes)\n", w / o, a }'
