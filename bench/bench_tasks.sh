#!/usr/bin/env bash
# Benchmark (not a test): `pfrun bench` examples per second on each shipped task, with
# the shared-context KV cache (default) and without it (--no-context-cache: every
# request on its own, batches of --batch-size), on one model (default
# synthetic:llama-1b in BF16; it is written once into $PFRUN_CACHE).
#   bash bench/bench_tasks.sh [build/pfrun] [LIMIT]      (needs ../shared/data/bench)
set -euo pipefail
PFRUN=$(realpath "${1:-build/pfrun}")
LIMIT=${2:-20}
SRC=$(cd "$(dirname "$0")/.." && pwd)
DATA=${DATA:-$SRC/../shared/data/bench}
MODEL=${MODEL:-synthetic:llama-1b:bf16}
[ -d "$DATA" ] || { echo "no task data at $DATA"; exit 1; }
WORK=$(mktemp -d "${TMPDIR:-/tmp}/pfbt-XXXXXX")
trap 'rm -rf "$WORK"' EXIT
echo "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) CPUs; load average $(cut -d' ' -f1-3 /proc/loadavg)"
"$PFRUN" --version | grep -i -E "kernels|matmul" | head -3
echo "model $MODEL, first $LIMIT documents per task"
"$PFRUN" analyze --model-path "$MODEL" --quiet >/dev/null # written once, outside the timings
printf "%-16s %6s %9s %14s %14s %8s\n" task docs requests "cache ex/s" "no-cache ex/s" ratio
for t in arc_easy arc_challenge hellaswag piqa winogrande boolq copa openbookqa lambada_openai; do
  "$PFRUN" bench --model-path "$MODEL" --tasks "$t" --data-dir "$DATA" --limit "$LIMIT" \
    --bootstrap-iters 0 --json "$WORK/c.json" --quiet
  "$PFRUN" bench --model-path "$MODEL" --tasks "$t" --data-dir "$DATA" --limit "$LIMIT" \
    --bootstrap-iters 0 --no-context-cache --json "$WORK/n.json" --quiet
  python3 - "$t" "$WORK/c.json" "$WORK/n.json" <<'PY'
import json, sys
t = sys.argv[1]
c, n = (json.load(open(f))["tasks"][t] for f in sys.argv[2:4])
assert abs(c["acc"] - n["acc"]) < 1e-9, "cache and passes disagree"
print("%-16s %6d %9d %14.2f %14.2f %7.2fx" % (t, c["n"], c["requests"], c["examples_per_second"],
      n["examples_per_second"], c["examples_per_second"] / n["examples_per_second"]))
PY
done
