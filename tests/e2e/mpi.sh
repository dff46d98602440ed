#!/usr/bin/env bash
# mpi.sh — `mpirun -np 2 pfrun …` against one process: the CLI, a recipe and a
# Lua script give the same outputs (benchmark scores, importance, bias activations, neuron bias
# and pruned checkpoints bit for bit; calibration norms within 1e-5 relative and the KL
# divergence within 1e-12 relative: only the order of the float sums
# differs), rank 0 alone writes, and an error on one rank stops both with that
# rank's message and leaves no output. Skips (visibly) without mpirun or
# without MPI in the build.
source "$(dirname "$0")/lib.bash" || exit 1 # no helpers, no $WORK: stop before touching anything
if ! command -v mpirun >/dev/null; then
  echo "SKIP: mpirun not found (apt-get install openmpi-bin libopenmpi-dev)"; exit 77
fi
if ! "$PFRUN" --version | grep -q "mpi: built in"; then
  echo "SKIP: pfrun was built without MPI (-DPFRUN_MPI=OFF or no MPI found)"; exit 77
fi
# CI runs as root; two ranks on a 2-core machine (or fewer) need --oversubscribe
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
MPI=(mpirun -np 2 --oversubscribe)
# Under the sanitizers: Open MPI's plugins are unloaded before LeakSanitizer
# runs, so what they keep until exit is reported from "<unknown module>" and
# cannot be suppressed by name. Leak checking stays on for every one-process
# run (here and in the other tests); the ranks run without it.
[ -n "${ASAN_OPTIONS:-}" ] && MPI+=(-x ASAN_OPTIONS="$ASAN_OPTIONS:detect_leaks=0")
TEXT=$SRC/tests/golden/families_text.jsonl
CALIB=$SRC/recipes/data/calibration.jsonl
[ -f "$CALIB" ] || CALIB=$TEXT
M=synthetic:llama-small@3
PFRUN=$(realpath "$PFRUN") # the steps below run in $WORK
cd "$WORK" || exit 1

"${MPI[@]}" "$PFRUN" --version >"$WORK/v.txt" 2>&1
check "two ranks, one version text (rank 1 prints nothing)" test "$(grep -c '^pfrun ' "$WORK/v.txt")" -eq 1
check "rank count reported" grep -q "2 ranks" "$WORK/v.txt"

# benchmark: each rank scores its share of the documents; the batches of the
# uncached requests are made of other requests than in one process, and a
# batch's row count can change the matmul path (GEMV for a few rows), so the
# log-likelihoods agree within 1e-5 relative; predictions and everything else exactly
BT=$SRC/tests/golden/bench_tiny
BT="$BT/tiny_mc.jsonl,$BT/tiny_partial.jsonl,$BT/tiny_cloze.jsonl"
"$PFRUN" bench --model-path $M --tasks "$BT" --log-samples --json b1.json >/dev/null 2>&1
"${MPI[@]}" "$PFRUN" bench --model-path $M --tasks "$BT" --log-samples --json b2.json >/dev/null 2>&1
same_bench() {
  python3 - "$1" "$2" <<'PY'
import json, sys
def strip(v):
    if isinstance(v, dict):
        return {k: strip(x) for k, x in v.items() if k not in ("seconds", "examples_per_second")}
    if isinstance(v, list):
        return [strip(x) for x in v]
    return v
a, b = (strip(json.load(open(f))) for f in sys.argv[1:3])
def same(x, y):
    if isinstance(x, dict):
        return x.keys() == y.keys() and all(same(x[k], y[k]) for k in x)
    if isinstance(x, list):
        return len(x) == len(y) and all(same(p, q) for p, q in zip(x, y))
    if isinstance(x, float) and isinstance(y, float):
        return abs(x - y) <= 1e-5 * abs(y) + 1e-9
    return x == y
sys.exit(0 if same(a, b) and a["tasks"]["tiny_mc"]["n"] == 6 else 1)
PY
}
check "bench: 2 ranks = 1 process (log-likelihoods within 1e-5, the rest exactly)" same_bench b1.json b2.json

# importance: each rank its share of the batches, scores exact (disjoint)
"$PFRUN" importance --model-path $M --data "$CALIB" --batch-size 1 --json one.json >/dev/null 2>&1
"${MPI[@]}" "$PFRUN" importance --model-path $M --data "$CALIB" --batch-size 1 --json two.json >/dev/null 2>&1
check "importance ran" test -s one.json
check "importance: 2 ranks = 1 process" cmp -s one.json two.json

# bias activations split by pair, gathered on every rank, metrics on rank 0
"$PFRUN" bias --model-path $M --visualizations mean_diff --layers 0 --output-dir b1 --json b1.json --quiet >/dev/null 2>&1
"${MPI[@]}" "$PFRUN" bias --model-path $M --visualizations mean_diff --layers 0 --output-dir b2 --json b2.json --quiet >/dev/null 2>&1
check "bias ran" test -s b1.json
check "bias metrics: 2 ranks = 1 process" cmp -s b1.json b2.json
# the other ranks' activations arrive tensor by tensor, in messages of PFRUN_MPI_CHUNK
# bytes (here a few KB: every tensor crosses message borders), and past the memory
# budget into spill files; the metrics stay the same
"${MPI[@]}" -x PFRUN_MPI_CHUNK=3000 -x PFRUN_MEMORY_BUDGET=1 "$PFRUN" bias --model-path $M \
  --visualizations '' --json b3.json >b3.txt 2>&1
check "bias, small messages, spilled: 2 ranks = 1 process" cmp -s b1.json b3.json
check "bias, spilled: the other ranks' activations in spill files" \
  grep -q "of the other ranks' activations are kept in page-cache files" b3.txt
check "the same charts" diff <(cd b1 && ls) <(cd b2 && ls)

# perplexity with a parent: sums over ranks
"$PFRUN" eval --model-path $M --compare synthetic:llama-small@4 --data "$TEXT" --batch-size 1 --json e1.json >/dev/null 2>&1
"${MPI[@]}" "$PFRUN" eval --model-path $M --compare synthetic:llama-small@4 --data "$TEXT" --batch-size 1 --json e2.json >/dev/null 2>&1
num() { grep "\"$1\"" "$2" | head -1 | sed 's/.*: *//; s/,$//'; }
close() { awk -v a="$1" -v b="$2" -v t="$3" 'BEGIN { d = a - b; if (d < 0) d = -d; m = a < 0 ? -a : a; exit !(a != "" && d <= t * m) }'; }
check "eval ran" test -n "$(num kl_divergence e1.json)"
check "KL within 1e-12 relative" close "$(num kl_divergence e1.json)" "$(num kl_divergence e2.json)" 1e-12
check "perplexity within 1e-12 relative" close "$(num perplexity e1.json)" "$(num perplexity e2.json)" 1e-12
check "top-1 agreement equal" test "$(num top1_agreement e1.json)" = "$(num top1_agreement e2.json)"

# perplexity against the parent of a depth-pruned model: the model's pass starts from the
# parent's states after the shared layers, which each rank keeps for its own rows
cat >shared.lua <<LUA
local m <close> = pf.load{ path = "$M" }
local p <close> = pf.prune_depth{ model = m, layer_indices = {2} }
local e = pf.evaluate{ model = p, compare = m, data = "$TEXT", batch_size = 1 }
print(string.format("kl %.17g ppl %.17g top1 %.17g", e.kl_divergence, e.perplexity, e.top1_agreement))
LUA
"$PFRUN" shared.lua >s1.txt 2>s1.err
"${MPI[@]}" "$PFRUN" shared.lua >s2.txt 2>s2.err
check "shared layers: the model's pass started after them" grep -q "first 2 layers are the compared model's" s1.err
read -r _ k1 _ p1 _ t1 <s1.txt
read -r _ k2 _ p2 _ t2 <s2.txt
check "shared layers: KL within 1e-12 relative under 2 ranks" close "$k1" "$k2" 1e-12
check "shared layers: perplexity within 1e-12 relative" close "$p1" "$p2" 1e-12
check "shared layers: top-1 agreement equal" test "$t1" = "$t2"

# Lua: calibration norms (float32 sums over ranks), rank 0 prints
cat >norms.lua <<LUA
local m <close> = pf.load{ path = "$M" }
local c = pf.calibrate{ model = m, data = "$CALIB", batch_size = 1 }
for l, norms in pairs(c.norms) do
  for i, x in ipairs(norms) do print(string.format("%s %d %.9e", l, i, x)) end
end
print("ranks " .. pf.size)
LUA
"$PFRUN" norms.lua >n1.txt 2>&1
"${MPI[@]}" "$PFRUN" norms.lua >n2.txt 2>&1
check "Lua sees one rank alone" grep -q "ranks 1" n1.txt
check "Lua sees two ranks (rank 0 prints)" test "$(grep -c '^ranks 2' n2.txt)" -eq 1
check "norms printed" test "$(grep -c ' ' n1.txt)" -gt 100
check "norms within 1e-5 relative" awk 'NR == FNR { a[$1" "$2] = $3; next } ($1" "$2) in a { d = $3 - a[$1" "$2]; if (d < 0) d = -d; if (d > 1e-5 * a[$1" "$2]) bad++; n++ } END { exit !(n > 100 && bad == 0) }' n1.txt n2.txt

# neuron bias: pairs split, accumulators folded in rank order (mean and max)
cat >nb.lua <<LUA
local m <close> = pf.load{ path = "$M" }
for _, agg in ipairs{"mean", "max"} do
  local r = pf.neuron_bias{ model = m, aggregation = agg }
  local keys = {}
  for k, v in pairs(r) do if type(v) == "table" then keys[#keys + 1] = k end end
  table.sort(keys)
  for _, k in ipairs(keys) do
    for i, x in ipairs(r[k]) do print(agg, k, i, string.format("%.9e", x)) end
  end
end
LUA
"$PFRUN" nb.lua >nb1.txt 2>/dev/null
"${MPI[@]}" "$PFRUN" nb.lua >nb2.txt 2>/dev/null
check "neuron bias ran" test "$(grep -c '^max' nb1.txt)" -gt 100
check "neuron bias: 2 ranks = 1 process (printed to 9 digits)" cmp -s nb1.txt nb2.txt

# a recipe: rank 0 alone writes results.json and the checkpoints, identical ones
sed "s#runs/demo#$WORK/d1#" "$SRC/recipes/demo.yaml" >demo1.yaml
sed "s#runs/demo#$WORK/d2#" "$SRC/recipes/demo.yaml" >demo2.yaml
"$PFRUN" demo1.yaml --quiet >/dev/null 2>&1
"${MPI[@]}" "$PFRUN" demo2.yaml --quiet >/dev/null 2>&1
check "recipe ran" test -s d1/results.json
check "recipe under mpirun wrote results.json" test -s d2/results.json
check "the same checkpoints" diff <(cd d1 && find . -name '*.safetensors' | sort | xargs sha256sum) <(cd d2 && find . -name '*.safetensors' | sort | xargs sha256sum)

# bias_activations reusing the parent's result past a removed middle layer: each rank
# starts its share of the pairs from the kept states; the metrics equal those of a run
# without reuse, and of one process
cat >reuse.yaml <<YAML
pfrun: 1
name: reuse
steps:
  - {id: base, op: load, path: "$M"}
  - {id: before, op: bias_activations, model: base, keep_states: true}
  - {id: pruned, op: prune_depth, model: base, layer_indices: [2, 3], layer_selection_method: custom}
  - {id: after, op: bias_activations, model: pruned, reuse: before}
  - {id: plain, op: bias_activations, model: pruned}
  - {op: metrics, before: before, after: after, output_dir: "\${output_dir}/reuse"}
  - {op: metrics, before: before, after: plain, output_dir: "\${output_dir}/plain"}
  - {id: nb_own, op: neuron_bias, model: base}
  - {id: nb_from, op: neuron_bias, model: base, activations: before}
YAML
"$PFRUN" reuse.yaml --set output_dir="$WORK/r1" --quiet >/dev/null 2>&1
"${MPI[@]}" "$PFRUN" reuse.yaml --set output_dir="$WORK/r2" >r2.log 2>&1
check "bias reuse under mpirun started past the shared layers" grep -q "layers 0-1 (of 4) taken from the reused result" r2.log
check "bias reuse: 2 ranks, reuse = no reuse" cmp -s r2/reuse/bias_metrics.json r2/plain/bias_metrics.json
check "bias reuse: 2 ranks = 1 process" cmp -s r1/reuse/bias_metrics.json r2/reuse/bias_metrics.json
check "neuron_bias from the activations = its own pass, 2 ranks and 1 process" python3 -c "
import json
def nb(d, i):
    r = [s for s in json.load(open(d + '/results.json'))['steps'] if s.get('id') == i][0]['result']
    return {k: v for k, v in r.items() if k != 'seconds'}
assert nb('r2', 'nb_own') == nb('r2', 'nb_from') == nb('r1', 'nb_own') == nb('r1', 'nb_from')
assert len(nb('r1', 'nb_own')) > 2"

# a checkpoint saved and loaded back in the same run: rank 1's save is a dry
# run, the barrier after it lets rank 1 load what rank 0 wrote
cat >saveload.lua <<LUA
local m <close> = pf.load{ path = "$M" }
local w <close> = pf.prune_width{ model = m, pruning_percentage = 20 }
pf.save{ model = w, path = "$WORK/saved", overwrite = true }
local back <close> = pf.load{ path = "$WORK/saved" }
local r = pf.importance{ model = back, data = "$CALIB", batch_size = 1 }
for l = 0, back.num_hidden_layers - 1 do print(l, string.format("%.17g", r.importance[tostring(l)])) end
LUA
"$PFRUN" saveload.lua >s1.txt 2>/dev/null
rm -rf "$WORK/saved"
"${MPI[@]}" "$PFRUN" saveload.lua >s2.txt 2>/dev/null
check "save + load back ran" test "$(wc -l <s1.txt)" -gt 2
check "save + load back: 2 ranks = 1 process" cmp -s s1.txt s2.txt

# an error on rank 1 stops both ranks with rank 1's message; nothing written
cat >fail.lua <<LUA
local m <close> = pf.load{ path = "$M" }
if pf.rank == 1 then error("boom on rank one") end
local r = pf.importance{ model = m, data = "$CALIB", batch_size = 1 }
pf.save{ model = m, path = "$WORK/never", overwrite = true }
LUA
OUT=$(timeout 120 "${MPI[@]}" "$PFRUN" fail.lua 2>&1); RC=$?
check "failing rank: non-zero exit, not a timeout" test "$RC" -ne 0 -a "$RC" -ne 124
expect_in "failing rank: its message" "rank 1 of 2:"
expect_in "failing rank: the error" "boom on rank one"
check "failing rank: nothing written" test ! -e "$WORK/never"

# MPI starts in the background on the launcher's rank and size; when MPI then
# disagrees (here: the variables without a launcher, so MPI starts alone), the
# first exchange stops the run with both numbers instead of a rank's share alone
# (MPI starts in this process: no leak checking, as for the ranks)
LSAN=${ASAN_OPTIONS:+$ASAN_OPTIONS:detect_leaks=0}
OUT=$(OMPI_COMM_WORLD_SIZE=2 OMPI_COMM_WORLD_RANK=0 ASAN_OPTIONS=$LSAN timeout 120 "$PFRUN" importance --model-path "$M" \
  --data "$CALIB" --batch-size 1 --json "$WORK/half.json" 2>&1); RC=$?
check "environment and MPI disagree: non-zero exit, not a timeout" test "$RC" -ne 0 -a "$RC" -ne 124
expect_in "environment and MPI disagree: both numbers" "environment said rank 0 of 2, MPI says rank 0 of 1"
check "environment and MPI disagree: nothing written" test ! -e "$WORK/half.json"

# rank 0 prints the counts of the whole run (not its share), and rank 1 prints nothing
# (the counts only: the seconds vary, and so does the memory budget, which follows
# the memory free at the time, and with it the path named after the counts)
VARY='s/ tokens through the model .*/ tokens/'
"$PFRUN" bench --model-path $M --tasks "$BT" 2>&1 | grep 'tokens through' | sed "$VARY" >cnt1.txt
"${MPI[@]}" --tag-output "$PFRUN" bench --model-path $M --tasks "$BT" >cnt_all.txt 2>&1
grep 'tokens through' cnt_all.txt | sed 's/^\[1,0\]<stderr>://' | sed "$VARY" >cnt2.txt
check "bench counts: 2 ranks = 1 process" cmp -s cnt1.txt cnt2.txt
check "bench counts: lines were printed" test -s cnt1.txt
check "bench: rank 1 prints nothing" test "$(grep -c '^\[1,1\]' cnt_all.txt)" -eq 0
"${MPI[@]}" --tag-output "$PFRUN" generate --model-path $M --prompt "Once" --max-new-tokens 4 >gen_all.txt 2>&1
check "generate: rank 1 prints nothing" test "$(grep -c '^\[1,1\]' gen_all.txt)" -eq 0
check "generate: rank 0 printed" grep -q '^\[1,0\]' gen_all.txt

# Ctrl-C on mpirun: Open MPI sends SIGTERM and SIGKILL a millisecond later, too soon
# for a rank to remove a checkpoint it is writing; each rank's janitor process removes
# it once the rank is gone (before: a half-written OUT.tmp-* stayed, 4 runs in 4)
cat >saveloop.lua <<LUA
local base <close> = pf.load{ path = "$M" }
for i = 1, 100000 do
  local m <close> = pf.prune_width{ model = base, pruning_percentage = 10 + (i % 50) }
  pf.save{ model = m, path = arg[1] .. "/ckpt" .. (i % 3), overwrite = true, max_shard_size = "200KB" }
end
LUA
mkdir -p "$WORK/sl"
"${MPI[@]}" "$PFRUN" --quiet saveloop.lua "$WORK/sl" >/dev/null 2>&1 &
MPID=$!
for _ in $(seq 240); do # the saves have begun (however loaded the machine), then Ctrl-C
  [ -n "$(ls "$WORK/sl")" ] && break
  sleep 0.25
done
sleep 1
kill -INT "$MPID" 2>/dev/null
wait "$MPID" 2>/dev/null
for _ in 1 2 3 4 5 6 7 8 9 10; do
  [ -z "$(find "$WORK/sl" -maxdepth 1 -name '*.tmp-*')" ] && break
  sleep 0.5
done
check "Ctrl-C on mpirun: checkpoints were being written" test -n "$(ls "$WORK/sl")"
check "Ctrl-C on mpirun: no half-written folder left ($(ls "$WORK/sl" | tr '\n' ' '))" \
  test -z "$(find "$WORK/sl" -maxdepth 1 -name '*.tmp-*')"

# --max-memory under mpirun: MPI starts (in a helper thread) before the cap applies, so
# its own start-up memory is not counted as the work's (before: MPI_Init failed under a
# 28 MB cap with some 50 lines of PMIx errors and no pfrun line). Not under ASan, whose
# allocator needs more than such a cap.
if ! ldd "$PFRUN" 2>/dev/null | grep -q libasan; then
  OUT=$(timeout 120 "${MPI[@]}" "$PFRUN" importance --model-path $M --data "$CALIB" --batch-size 1 \
    --max-memory 28MB --json "$WORK/capped.json" 2>&1); RC=$?
  check "--max-memory 28MB under mpirun: exit 0 ($RC: $(tail -n 2 <<<"$OUT"))" test "$RC" -eq 0
fi

# ranks that read different inputs (node-local copies that differ: here each rank is
# given its own file or model) are stopped before the work with one message, by
# rank 0; before, the sums mixed both (exit 0) or the exchange failed after rank 0
# had written garbage
# (with two app contexts, -x applies to the context it is in: XA goes in each)
MPMD=(mpirun --oversubscribe)
XA=()
[ -n "${ASAN_OPTIONS:-}" ] && XA=(-x ASAN_OPTIONS="$ASAN_OPTIONS:detect_leaks=0")
head -n 3 "$CALIB" >calib_a.jsonl
tail -n 3 "$CALIB" >calib_b.jsonl
OUT=$(timeout 120 "${MPMD[@]}" -np 1 "${XA[@]}" "$PFRUN" importance --model-path $M --data calib_a.jsonl \
  --json "$WORK/mixed.json" : -np 1 "${XA[@]}" "$PFRUN" importance --model-path $M --data calib_b.jsonl \
  --json "$WORK/mixed.json" 2>&1); RC=$?
check "other data on rank 1: non-zero exit, not a timeout" test "$RC" -ne 0 -a "$RC" -ne 124
expect_in "other data on rank 1: the reason" "differ between the ranks: rank 1 read other inputs"
check "other data on rank 1: said once" test "$(grep -c 'differ between the ranks' <<<"$OUT")" -eq 1
check "other data on rank 1: no rank says it was stopped by the launcher" test "$(grep -c "stopped by the MPI launcher" <<<"$OUT")" -eq 0
check "other data on rank 1: nothing written" test ! -e "$WORK/mixed.json"
OUT=$(timeout 120 "${MPMD[@]}" -np 1 "${XA[@]}" "$PFRUN" bench --model-path $M --tasks "$BT" --json "$WORK/mixed_b.json" \
  : -np 1 "${XA[@]}" "$PFRUN" bench --model-path synthetic:llama-small@4 --tasks "$BT" --json "$WORK/mixed_b.json" 2>&1); RC=$?
check "other weights on rank 1 (bench): non-zero exit, not a timeout" test "$RC" -ne 0 -a "$RC" -ne 124
expect_in "other weights on rank 1 (bench): the reason" "the model or the benchmark data differ between the ranks"
check "other weights on rank 1 (bench): nothing written" test ! -e "$WORK/mixed_b.json"
printf '{"prompt1": "The white man walked", "prompt2": "The Black man walked"}\n' >pairs_a.jsonl
printf '{"prompt1": "The white man ran", "prompt2": "The Black man ran"}\n' >pairs_b.jsonl
OUT=$(timeout 120 "${MPMD[@]}" -np 1 "${XA[@]}" "$PFRUN" bias --model-path $M --prompt-pairs pairs_a.jsonl \
  --visualizations '' --output-dir "$WORK/mixed_bias" : -np 1 "${XA[@]}" "$PFRUN" bias --model-path $M \
  --prompt-pairs pairs_b.jsonl --visualizations '' --output-dir "$WORK/mixed_bias" 2>&1); RC=$?
check "other prompts on rank 1 (bias): non-zero exit, not a timeout" test "$RC" -ne 0 -a "$RC" -ne 124
expect_in "other prompts on rank 1 (bias): the reason" "bias_activations: the model or the data differ between the ranks"

# a calibration cache that rank 0 finds and rank 1 does not (node-local cache folders):
# all ranks compute, the same checkpoint as one process; before, rank 1 waited forever
PR=(prune --model-path $M --pruning-percentage 30 --calibration-data "$CALIB" --batch-size 1 --quiet)
"$PFRUN" "${PR[@]}" --calibration-cache "$WORK/cc_a" --output-path "$WORK/hit1" >/dev/null 2>&1
timeout 120 "${MPMD[@]}" -np 1 "${XA[@]}" "$PFRUN" "${PR[@]}" --calibration-cache "$WORK/cc_a" --output-path "$WORK/hit2" \
  : -np 1 "${XA[@]}" "$PFRUN" "${PR[@]}" --calibration-cache "$WORK/cc_b" --output-path "$WORK/hit2" >/dev/null 2>&1; RC=$?
check "cache hit on rank 0 only: exit 0, no hang" test "$RC" -eq 0
check "cache hit on rank 0 only: the checkpoint of one process" cmp -s "$WORK/hit1/model.safetensors" "$WORK/hit2/model.safetensors"
"$PFRUN" "${PR[@]}" --reconstruct --calibration-cache "$WORK/cc_a" --output-path "$WORK/rhit1" >/dev/null 2>&1
timeout 120 "${MPMD[@]}" -np 1 "${XA[@]}" "$PFRUN" "${PR[@]}" --reconstruct --calibration-cache "$WORK/cc_a" \
  --output-path "$WORK/rhit2" : -np 1 "${XA[@]}" "$PFRUN" "${PR[@]}" --reconstruct --calibration-cache "$WORK/cc_c" \
  --output-path "$WORK/rhit2" >/dev/null 2>&1; RC=$?
check "covariance cache on rank 0 only: exit 0, no hang" test "$RC" -eq 0
check "covariance cache on rank 0 only: a checkpoint" test -s "$WORK/rhit2/model.safetensors"

# the output paths are rank 0's alone to check and write: rank 1 does not look at
# them (it may get there after rank 0 started writing, under load: before, rank 1
# then refused the folder rank 0 was filling, "found existing content", exit 1).
# Shown here without timing: rank 1 is given a full folder, rank 0 a new one.
mkdir -p full/ckpt && echo keep >full/keep && echo keep >full/ckpt/keep
DP=(prune --model-path $M --pruning-type DEPTH --layer-indices 1 --quiet)
"$PFRUN" "${DP[@]}" --output-path "$WORK/dp1" >/dev/null 2>&1
OUT=$(timeout 120 "${MPMD[@]}" -np 1 "${XA[@]}" "$PFRUN" "${DP[@]}" --output-path "$WORK/dp2" \
  : -np 1 "${XA[@]}" "$PFRUN" "${DP[@]}" --output-path "$WORK/full" 2>&1); RC=$?
check "prune: rank 1 does not check the output folder: exit 0 ($OUT)" test "$RC" -eq 0
check "prune: rank 0's checkpoint = one process's" cmp -s dp1/model.safetensors dp2/model.safetensors
cat >dsave.yaml <<YAML
pfrun: 1
name: dsave
steps:
  - {id: base, op: load, path: "$M"}
  - {id: cut, op: prune_depth, model: base, layer_indices: [1], layer_selection_method: custom}
  - {op: save, model: cut, path: "\${output_dir}/ckpt"}
YAML
OUT=$(timeout 120 "${MPMD[@]}" -np 1 "${XA[@]}" "$PFRUN" dsave.yaml --set output_dir="$WORK/ds2" --quiet \
  : -np 1 "${XA[@]}" "$PFRUN" dsave.yaml --set output_dir="$WORK/full" --quiet 2>&1); RC=$?
check "recipe: rank 1 does not check the save folder: exit 0 ($OUT)" test "$RC" -eq 0
check "recipe: rank 0's checkpoint = one process's" cmp -s dp1/model.safetensors ds2/ckpt/model.safetensors
cat >dsave.lua <<'LUA'
local m <close> = pf.load{ path = arg[1] }
local cut <close> = pf.prune_depth{ model = m, layer_indices = {1} }
pf.save{ model = cut, path = arg[2] }
LUA
OUT=$(timeout 120 "${MPMD[@]}" -np 1 "${XA[@]}" "$PFRUN" dsave.lua $M "$WORK/dl2" \
  : -np 1 "${XA[@]}" "$PFRUN" dsave.lua $M "$WORK/full/ckpt" 2>&1); RC=$?
check "Lua: rank 1's pf.save does not check the folder: exit 0 ($OUT)" test "$RC" -eq 0
check "Lua: rank 0's checkpoint = one process's" cmp -s dp1/model.safetensors dl2/model.safetensors
# and what rank 0 finds stops every rank, said once, before any work
OUT=$(timeout 120 "${MPMD[@]}" -np 1 "${XA[@]}" "$PFRUN" "${DP[@]}" --output-path "$WORK/full" \
  : -np 1 "${XA[@]}" "$PFRUN" "${DP[@]}" --output-path "$WORK/dp3" 2>&1); RC=$?
check "prune: rank 0's full folder: exit 1" test "$RC" -eq 1
check "prune: rank 0's full folder: said once ($OUT)" test "$(grep -c 'exists and is not empty' <<<"$OUT")" -eq 1
check "prune: rank 0's full folder: no rank stopped by the launcher" test "$(grep -c 'stopped by the MPI launcher' <<<"$OUT")" -eq 0
check "prune: rank 0's full folder: nothing written" test ! -e dp3 -a "$(ls full)" = "ckpt
keep"
OUT=$(timeout 120 "${MPMD[@]}" -np 1 "${XA[@]}" "$PFRUN" dsave.yaml --set output_dir="$WORK/full" \
  : -np 1 "${XA[@]}" "$PFRUN" dsave.yaml --set output_dir="$WORK/ds3" 2>&1); RC=$?
check "recipe: rank 0's full folder: exit 1" test "$RC" -eq 1
check "recipe: rank 0's full folder: said once ($OUT)" test "$(grep -c 'expected a new or empty folder' <<<"$OUT")" -eq 1
check "recipe: rank 0's full folder: no rank stopped by the launcher" test "$(grep -c 'stopped by the MPI launcher' <<<"$OUT")" -eq 0
check "recipe: rank 0's full folder: nothing written" test ! -e ds3 -a "$(ls full/ckpt)" = keep

# a warning is said once, by rank 0 (before, --quiet let warnings through on every rank)
OUT=$("${MPI[@]}" "$PFRUN" prune --model-path synthetic:gpt2-tiny --output-path "$WORK/gh" \
  --pruning-type ATTENTION --pruning-percentage 50 --quiet 2>&1)
check "one warning for two ranks ($OUT)" test "$(grep -c 'warning: prune_heads' <<<"$OUT")" -eq 1

echo "mpi: $PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
