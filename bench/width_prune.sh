#!/usr/bin/env bash
# Benchmark (not a test): width-prune a Llama-3.2-1B-shaped BF16 checkpoint end to end
# and compare with a plain copy of the same bytes (the I/O bound of a prune+save).
#   bash bench/width_prune.sh [build/pfrun]
# Prints wall time and peak RSS of `pfrun prune` and of `cat src > dst`, and their ratio.
set -euo pipefail
PFRUN=${1:-build/pfrun}
export PFRUN_CACHE=${PFRUN_CACHE:-$HOME/.cache/pfrun}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/pfbench-XXXXXX")
trap 'rm -rf "$WORK"' EXIT
SPEC=synthetic:llama-1b

echo "== generating $SPEC (once; cached in $PFRUN_CACHE)"
/usr/bin/time -f "synthetic write: %e s, peak RSS %M KiB" "$PFRUN" analyze --model-path $SPEC --quiet >/dev/null
SRC=$(ls -d "$PFRUN_CACHE"/synthetic/llama-1b-* | head -1)
BYTES=$(stat -c %s "$SRC/model.safetensors")
echo "checkpoint: $SRC ($BYTES bytes)"

# warm the page cache for both runs alike
cat "$SRC/model.safetensors" >/dev/null

# alternate the two measurements REPS times and keep the fastest of each
REPS=${REPS:-3}
ct=999999; pt=999999; crss=0; prss=0
for i in $(seq "$REPS"); do
  read -r t r < <( { /usr/bin/time -f "%e %M" bash -c "cat '$SRC/model.safetensors' > '$WORK/copy.bin' && sync -f '$WORK/copy.bin'" ; } 2>&1 | tail -1)
  rm -f "$WORK/copy.bin"
  awk -v a="$t" -v b="$ct" 'BEGIN{exit !(a<b)}' && ct=$t; [ "$r" -gt "$crss" ] && crss=$r
  rm -rf "$WORK/out"
  read -r t r < <( { /usr/bin/time -f "%e %M" "$PFRUN" prune --model-path "$SRC" --output-path "$WORK/out" --pruning-percentage 20 --quiet ; } 2>&1 | tail -1)
  awk -v a="$t" -v b="$pt" 'BEGIN{exit !(a<b)}' && pt=$t; [ "$r" -gt "$prss" ] && prss=$r
done
out_bytes=$(du -cb "$WORK"/out/*.safetensors | tail -1 | cut -f1)
echo "fastest of $REPS runs each (peak RSS: the largest seen)"
echo
printf "%-34s %10s %14s\n" "" "wall (s)" "peak RSS (MiB)"
printf "%-34s %10s %14d\n" "copy of the input bytes (cat+sync)" "$ct" $((crss / 1024))
printf "%-34s %10s %14d\n" "pfrun prune MAW 20% + save" "$pt" $((prss / 1024))
awk -v p="$pt" -v c="$ct" -v b="$BYTES" -v o="$out_bytes" 'BEGIN {
  printf "ratio prune/copy: %.2fx (target <= 2x); copy rate %.2f GB/s; input %.2f GB, output %.2f GB\n", p / c, b / c / 1e9, b / 1e9, o / 1e9 }'
