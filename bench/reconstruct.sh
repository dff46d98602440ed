#!/usr/bin/env bash
# bench/reconstruct.sh — training-free recovery (prune_width reconstruct: true), issue 12 B.
#   bash bench/reconstruct.sh [PFRUN] [SHARED] [SAMPLES_1B]
# 1. stories260K, MAW 20 % and 40 %, C from 200 Brown paragraphs, perplexity on 100 other
#    paragraphs, 128 tokens each: perplexity before / after recovery, share of the gap closed,
#    collection and solve times.
# 2. synthetic:llama-1b, all 16 layers, SAMPLES_1B (default 256) packed blocks of 512 tokens:
#    wall time, collection vs solve time, peak RSS (GNU time).
set -euo pipefail
PFRUN=${1:-build/pfrun}
SHARED=${2:-../shared}
N1B=${3:-256}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/pfbench-rec-XXXXXX")
trap 'rm -rf "$WORK"' EXIT
lscpu | grep -E "Model name|^CPU\(s\)" || true

figures() { # figures RESULTS.JSON
  /usr/bin/python3 - "$1" <<'PY'
import json, sys
steps = json.load(open(sys.argv[1]))["steps"]
for s in steps:
    r = s.get("result", {})
    if "reconstruct" in r:
        c = r["reconstruct"]
        print("  reconstruct: %d layers, %d tokens, collect %.2f s, solve %.2f s (step %.2f s)" % (
            c["layers"], c["tokens"], c["collect_seconds"], c["solve_seconds"], s["seconds"]))
    if "recovery" in r:
        v = r["recovery"]
        print("  perplexity parent %.2f, pruned %.2f -> recovered %.2f; gap closed %.1f %%; "
              "KL %.4f -> %.4f" % (v["parent_perplexity"], v["perplexity_before"],
                                   v["perplexity_after"], 100 * v.get("gap_recovered", 0),
                                   v["kl_before"], v["kl_after"]))
PY
}

if [ -d "$SHARED/models/stories260K" ]; then
  for p in 20 40; do
    echo "stories260K MAW $p %"
    "$PFRUN" recipes/width_reconstruct.yaml --quiet --set model="$SHARED/models/stories260K" \
      --set calib="$SHARED/data/brown-calib.jsonl" --set eval="$SHARED/data/brown-eval.jsonl" \
      --set pruning_percentage=$p --set output_dir="$WORK/st$p" >/dev/null
    figures "$WORK/st$p/results.json"
  done
else
  echo "SKIP stories260K: $SHARED not found"
fi

cat > "$WORK/1b.yaml" <<YAML
pfrun: 1
name: reconstruct_1b
steps:
  - {id: base, op: load, path: synthetic:llama-1b}
  - {id: pruned, op: prune_width, model: base, pruning_percentage: 20, reconstruct: true,
     data: $SHARED/data/brown-calib.jsonl, samples: $N1B, max_length: 512, pack: true,
     batch_size: 4}
YAML
echo "synthetic:llama-1b, 16 layers, $N1B x 512 tokens"
/usr/bin/time -f "  wall %e s, peak RSS %M KiB" "$PFRUN" "$WORK/1b.yaml" --set output_dir="$WORK/1b" \
  2>&1 | grep -E "wall|reconstruct: layer|covariance"
figures "$WORK/1b/results.json"
