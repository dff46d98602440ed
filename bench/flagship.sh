#!/usr/bin/env bash
# flagship.sh — the flagship recipe (recipes/llama_depth_bias.yaml) on the Llama-3.2-1B-shaped
# synthetic checkpoint, step by step, for one or more pfrun binaries side by side.
#
# usage: bash bench/flagship.sh PFRUN [PFRUN...]
#   each PFRUN runs `PFRUN recipes/llama_depth_bias.yaml --set model=MODEL --set output_dir=DIR`
#   once (the checkpoint is written into the pfrun cache first, outside the timing), one
#   binary after the other; then a table of every step's seconds (results.json) per binary
#   and the wall time of the whole run (/usr/bin/time), with the load average before each.
# environment: MODEL (default synthetic:llama-1b), KEEP=DIR keeps the outputs there.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
[ $# -ge 1 ] || { echo "usage: bash bench/flagship.sh PFRUN [PFRUN...]" >&2; exit 2; }
MODEL=${MODEL:-synthetic:llama-1b}
out=${KEEP:-$(mktemp -d)}
mkdir -p "$out"
[ -n "${KEEP:-}" ] || trap 'rm -rf "$out"' EXIT

echo "== flagship $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) CPUs, CPU: $(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -1)"
"$1" analyze --model-path "$MODEL" >/dev/null 2>&1 # writes the synthetic checkpoint once
i=0
for bin in "$@"; do
  i=$((i + 1))
  echo "== run $i: $bin ($("$bin" --version | head -1)); load average $(cut -d' ' -f1-3 /proc/loadavg)"
  /usr/bin/time -f "%e %M" -o "$out/time$i" "$bin" recipes/llama_depth_bias.yaml \
    --set model="$MODEL" --set output_dir="$out/run$i" >"$out/log$i" 2>&1 ||
    { echo "flagship: run $i failed, see $out/log$i" >&2; tail -5 "$out/log$i" >&2; exit 1; }
done
/usr/bin/python3 - "$out" "$i" <<'PY'
import json, sys
out, n = sys.argv[1], int(sys.argv[2])
runs = [json.load(open(f"{out}/run{i}/results.json")) for i in range(1, n + 1)]
walls = [open(f"{out}/time{i}").read().split() for i in range(1, n + 1)]
print("| step | " + " | ".join(f"run {i} (s)" for i in range(1, n + 1)) + " |")
print("|---|" + "---|" * n)
for k, st in enumerate(runs[0]["steps"]):
    name = f"{st['index']} {st.get('id') or ''} {st['op']}".replace("  ", " ")
    cells = [f"{r['steps'][k]['seconds']:.2f}" if k < len(r["steps"]) else "-" for r in runs]
    print(f"| {name} | " + " | ".join(cells) + " |")
print("| sum of steps | " + " | ".join(f"{sum(s['seconds'] for s in r['steps']):.2f}" for r in runs) + " |")
print("| wall (process) | " + " | ".join(w[0] for w in walls) + " |")
print("| peak RSS (MiB) | " + " | ".join(f"{int(w[1]) / 1024:.0f}" for w in walls) + " |")
PY
