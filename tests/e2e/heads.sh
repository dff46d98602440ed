#!/usr/bin/env bash
# End-to-end: attention-head pruning (op prune_heads, pfrun prune --pruning-type ATTENTION)
# through the real binary: every family's synthetic preset pruned from the command line
# and re-read (config keys as transformers reads them: num_attention_heads,
# num_key_value_heads, an explicit head_dim, q/k/v/o shapes that agree with them), the
# stats JSON, the CLI's rules, the Lua binding, and stories260K (GQA) when ../shared is there.
source "$(dirname "$0")/lib.bash" || exit 1 # no helpers, no $WORK: stop before touching anything
CAL="$SRC/recipes/data/calib.txt"
py() { /usr/bin/python3 - "$@"; }
# consistent DIR: config heads/head_dim agree with every layer's stored attention shapes
consistent() {
  py "$1" <<'PY'
import json, struct, sys
d = sys.argv[1]
c = json.load(open(d + "/config.json"))
b = open(d + "/model.safetensors", "rb").read()
h = json.loads(b[8:8 + struct.unpack("<Q", b[:8])[0]])
nh = c.get("num_attention_heads", c.get("n_head"))
kv, hd = c["num_key_value_heads"], c["head_dim"]
assert nh % kv == 0, (nh, kv)
q, k = nh * hd, kv * hd
for n, v in h.items():
    s = v.get("shape")
    if n.endswith("qkv_proj.weight") or n.endswith("query_key_value.weight"):
        assert s[0] == q + 2 * k, (n, s)
    elif n.endswith(".q_proj.weight"): assert s[0] == q, (n, s)
    elif n.endswith((".k_proj.weight", ".v_proj.weight")): assert s[0] == k, (n, s)
    if n.endswith("o_proj.weight") or n.endswith("attention.dense.weight"): assert s[1] == q, (n, s)
    if n.endswith("c_attn.weight"): assert s[1] == q + 2 * k, (n, s)
    if n.endswith("c_proj.weight") and ".attn." in n: assert s[0] == q, (n, s)
print("ok", nh, kv, hd)
PY
}
jget() { py "$1" "$2" <<'PY'
import json, sys
v = json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."):
    v = v[int(k)] if isinstance(v, list) else v[k]
print(json.dumps(v))
PY
}

for p in llama-tiny qwen2-tiny qwen3-tiny mistral-tiny gemma-tiny gemma2-tiny gemma3-tiny phi3-tiny gpt2-tiny neox-tiny; do
  expect_ok "$p ATTENTION 50%" prune --model-path "synthetic:$p" --output-path "$WORK/$p" \
    --pruning-type ATTENTION --pruning-percentage 50 --stats-json "$WORK/$p.json" --quiet
  check "$p config and shapes agree" consistent "$WORK/$p"
  expect_ok "$p reloads" analyze --model-path "$WORK/$p" --json
done
check "llama-tiny heads 4 -> 2" test "$(jget "$WORK/llama-tiny.json" num_attention_heads_after)" = 2
check "llama-tiny kv cache halves" test "$(jget "$WORK/llama-tiny.json" kv_cache_bytes_per_token_after)" = 512
check "gpt2 writes n_head + head_dim" grep -q '"head_dim": 16' "$WORK/gpt2-tiny/config.json"

# data-driven, num_kv_heads_to_keep, head_indices, dry run
expect_ok "calibrated" prune --model-path synthetic:llama-small --output-path "$WORK/cal" \
  --pruning-type ATTENTION --num-kv-heads-to-keep 1 --calibration-data "$CAL" --max-length 64 \
  --stats-json "$WORK/cal.json" --quiet
check "calibrated keeps 1 kv head" test "$(jget "$WORK/cal.json" layers.0.kv_heads_after)" = 1
expect_ok "head indices" prune --model-path synthetic:llama-small --output-path "$WORK/hi" \
  --pruning-type ATTENTION --head-indices 0 --stats-json "$WORK/hi.json" --quiet
check "head indices keep unit 1" test "$(jget "$WORK/hi.json" layers.3.kept_kv_heads)" = "[1]"
expect_ok "dry run" prune --model-path synthetic:llama-small --output-path "$WORK/dry" \
  --pruning-type ATTENTION --pruning-percentage 50 --dry-run
expect_in "dry run shows the config change" "config num_key_value_heads: 2 -> 1"
check "dry run wrote nothing" test ! -e "$WORK/dry"

# the example recipe, for real: two pruned checkpoints, an evaluation and the report
expect_ok "heads recipe" "$SRC/recipes/heads.yaml" --set output_dir="$WORK/rh" --quiet
check "recipe static checkpoint consistent" consistent "$WORK/rh/static50"
check "recipe calibrated checkpoint consistent" consistent "$WORK/rh/calibrated-kv1"
check "recipe report" test -s "$WORK/rh/report.pdf"
if command -v pdftotext >/dev/null 2>&1; then # the heads each layer kept, per pruning step
  check "report lists the kept heads" test "$(pdftotext "$WORK/rh/report.pdf" - | grep -c 'Kept key/value heads')" -ge 2
else
  echo "SKIP heads.sh report text: pdftotext not installed"
fi

# rules
expect_fail "no amount" "For ATTENTION pruning, specify one of" prune --model-path synthetic:llama-tiny \
  --output-path "$WORK/x" --pruning-type ATTENTION
expect_fail "exclusive" "mutually exclusive" prune --model-path synthetic:llama-tiny \
  --output-path "$WORK/x" --pruning-type ATTENTION --pruning-percentage 50 --num-kv-heads-to-keep 1
expect_fail "width option" "--expansion-rate is not valid with --pruning-type ATTENTION" prune \
  --model-path synthetic:llama-tiny --output-path "$WORK/x" --pruning-type ATTENTION --expansion-rate 100
expect_fail "heads option without ATTENTION" "--head-indices is only valid with --pruning-type ATTENTION" \
  prune --model-path synthetic:llama-tiny --output-path "$WORK/x" --head-indices 0
expect_fail "per-layer counts refused" "must prune every layer alike" prune \
  --model-path synthetic:llama-small --output-path "$WORK/x" --pruning-type ATTENTION \
  --pruning-percentage 50 --layer-indices 1,2
run prune --help
expect_in "help names ATTENTION" "--num-kv-heads-to-keep N"
run ops prune_heads
expect_in "ops lists prune_heads" "num_kv_heads_to_keep"

# Lua
cat > "$WORK/h.lua" <<'LUA'
local base <close> = pf.load{ path = "synthetic:llama-tiny" }
local m <close>, s = pf.prune_heads{ model = base, num_kv_heads_to_keep = 1 }
assert(s.num_key_value_heads_after == 1 and #s.layers == 4)
print("lua heads " .. s.num_attention_heads_after)
LUA
expect_ok "lua binding" "$WORK/h.lua"
expect_in "lua result" "lua heads 2"

# MPI: calibrated head scores summed over 2 ranks = one process (kept units equal, scores
# to rounding)
if command -v mpirun >/dev/null && "$PFRUN" --version | grep -q "mpi: built in"; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  MPIX=(mpirun -np 2 --oversubscribe)
  [ -n "${ASAN_OPTIONS:-}" ] && MPIX+=(-x ASAN_OPTIONS="$ASAN_OPTIONS:detect_leaks=0")
  for n in 1 2; do
    pre=(); [ "$n" = 2 ] && pre=("${MPIX[@]}")
    OMP_NUM_THREADS=1 "${pre[@]}" "$PFRUN" prune --model-path synthetic:llama-small@3 \
      --output-path "$WORK/mpi$n" --pruning-type ATTENTION --pruning-percentage 50 \
      --calibration-data "$CAL" --batch-size 2 --max-length 64 --stats-json "$WORK/mpi$n.json" \
      --quiet >/dev/null 2>&1
  done
  check "mpi: 2 ranks = 1 process" py "$WORK/mpi1.json" "$WORK/mpi2.json" <<'PY'
import json, sys
a, b = (json.load(open(p))["layers"] for p in sys.argv[1:3])
assert [l["kept_kv_heads"] for l in a] == [l["kept_kv_heads"] for l in b]
assert all(abs(x - y) <= 1e-12 * abs(x) for p, q in zip(a, b) for x, y in zip(p["scores"], q["scores"]))
PY
else
  echo "SKIP mpi head pruning: mpirun or an MPI build not found"
fi

if have_shared; then
  expect_ok "stories260K 25%" prune --model-path "$SHARED/models/stories260K" --output-path "$WORK/st" \
    --pruning-type ATTENTION --pruning-percentage 25 --stats-json "$WORK/st.json" --quiet
  check "stories260K config and shapes agree" consistent "$WORK/st"
  check "stories260K kv 4 -> 3" test "$(jget "$WORK/st.json" num_key_value_heads_after)" = 3
  expect_ok "stories260K pruned evaluates" eval --model-path "$WORK/st" --data "$SRC/recipes/data/eval.txt" --max-length 64
else
  echo "SKIP stories260K head pruning: ../shared not found"
fi
finish
