#!/usr/bin/env bash
# End-to-end: prune_width `reconstruct: true` (training-free recovery) through the
# recipe, the CLI (--reconstruct, the covariance cache), Lua and mpirun; the
# issue's stories260K targets when ../shared is present.
source "$(dirname "$0")/lib.bash" || exit 1 # no helpers, no $WORK: stop before touching anything
CALIB=$SRC/recipes/data/calib.txt
EVAL=$SRC/recipes/data/eval.txt

# the example recipe: before/after figures in results.json, a Recovery section
expect_ok "recipe" "$SRC/recipes/width_reconstruct.yaml" --set output_dir="$WORK/r" --quiet
check "results: reconstruct figures" grep -q '"solve_seconds"' "$WORK/r/results.json"
check "results: recovery" grep -q '"perplexity_before"' "$WORK/r/results.json"
if command -v pdftotext >/dev/null; then
  check "report: Recovery section" bash -c "pdftotext '$WORK/r/report.pdf' - 2>/dev/null | grep -q '^Recovery'"
fi

# the CLI, twice with a cache: the second run reads every layer's C back and
# writes the very same checkpoint; without the cache too
P=(prune --model-path synthetic:llama-tiny --pruning-percentage 20 --reconstruct
   --calibration-data "$CALIB" --quiet --overwrite)
# a dry run says what the recovery will need: one layer's C (I x I doubles) and
# its solve (2 H I + k^2 doubles), plus the hidden states of the calibration pass
OUT=$("$PFRUN" "${P[@]}" --output-path "$WORK/dry" --dry-run --stats-json "$WORK/dry.json" 2>&1)
expect_in "dry run: reconstruct memory" "reconstruct: peak extra memory"
check "dry run: nothing written" test ! -e "$WORK/dry"
check "dry run: C + solve + states" python3 -c "
import json; r = json.load(open('$WORK/dry.json'))['reconstruct']
I, H = 176, 64; k = [l['intermediate_size_after'] for l in json.load(open('$WORK/dry.json'))['layers']][0]
assert k == 141, k
want = 8 * (I * I + 2 * H * I + k * k) + r['tokens'] * H * 4
assert r['tokens'] > 0 and r['peak_memory_bytes'] == want, (r, want)"
expect_ok "cli" "${P[@]}" --output-path "$WORK/c1" --calibration-cache "$WORK/cache" --stats-json "$WORK/s1.json"
expect_ok "cli cached" "${P[@]}" --output-path "$WORK/c2" --calibration-cache "$WORK/cache" --stats-json "$WORK/s2.json"
expect_ok "cli uncached" "${P[@]}" --output-path "$WORK/c3"
check "cache: 4 layer files" test "$(ls "$WORK/cache"/cov-*.bin | wc -l)" -eq 4
check "covariance_file_bytes is the files' size" grep -q "\"covariance_file_bytes\": $(cat "$WORK/cache"/cov-*.bin | wc -c)" "$WORK/s1.json"
check "cache hit" grep -q '"cached_layers": 4' "$WORK/s2.json"
check "first run computed" grep -q '"cached_layers": 0' "$WORK/s1.json"
check "cached = computed" cmp -s "$WORK/c1/model.safetensors" "$WORK/c2/model.safetensors"
check "uncached = computed" cmp -s "$WORK/c1/model.safetensors" "$WORK/c3/model.safetensors"
expect_ok "reconstructed checkpoint reloads" analyze --model-path "$WORK/c1"
# a cache folder that cannot be written (here: under a file) costs the next run time, not
# this one: a warning each for calibrate and the covariances, the same checkpoint (before:
# exit 1 after the calibration pass, "cannot write the covariance cache" with no reason)
echo not-a-folder >"$WORK/cachefile"
LOUD=()
for a in "${P[@]}"; do [ "$a" = --quiet ] || LOUD+=("$a"); done
run "${LOUD[@]}" --output-path "$WORK/c9" --calibration-cache "$WORK/cachefile/cc"
check "unwritable cache: exit 0 ($RC: $OUT)" test "$RC" -eq 0
expect_in "unwritable cache: calibrate warns" "warning: calibrate: the result was not cached"
expect_in "unwritable cache: reconstruct warns once" "warning: reconstruct: the covariance of layer 0 was not cached (nor will the next layers' be in this run)"
check "unwritable cache: one reconstruct warning" test "$(grep -c 'covariance of layer' <<<"$OUT")" -eq 1
check "unwritable cache: same checkpoint" cmp -s "$WORK/c1/model.safetensors" "$WORK/c9/model.safetensors"
# --quiet drops progress and info lines, not the warnings
run "${P[@]}" --output-path "$WORK/c10" --calibration-cache "$WORK/cachefile/cc"
check "quiet, unwritable cache: exit 0 ($RC: $OUT)" test "$RC" -eq 0
expect_in "quiet, unwritable cache: calibrate still warns" "warning: calibrate: the result was not cached"
check "quiet: nothing but the warnings" test "$(grep -vc '^warning: ' <<<"$OUT")" -eq 0
# a different damping changes the weights
expect_ok "cli damping" "${P[@]}" --output-path "$WORK/c4" --reconstruct-damping 0.5
check "damping matters" bash -c "! cmp -s '$WORK/c1/model.safetensors' '$WORK/c4/model.safetensors'"

expect_fail "cli needs data" "--reconstruct needs --calibration-data" \
  prune --model-path synthetic:llama-tiny --output-path "$WORK/x" --reconstruct
expect_fail "cli depth" "--reconstruct is only valid with --pruning-type MLP_GLU, MLP or ATTENTION" \
  prune --model-path synthetic:llama-tiny --output-path "$WORK/x" --pruning-type DEPTH \
  --num-layers-to-remove 1 --reconstruct --calibration-data "$CALIB"
expect_fail "cli damping alone" "--reconstruct-damping is only valid with --reconstruct" \
  prune --model-path synthetic:llama-tiny --output-path "$WORK/x" --reconstruct-damping 0.1
# a non-MAW method with --reconstruct: static scores, the text only reconstructs
expect_ok "cli VOW" prune --model-path synthetic:llama-tiny --output-path "$WORK/c5" --method VOW \
  --reconstruct --calibration-data "$CALIB" --quiet
# plain MLPs (gpt2) reconstruct their fc_out the same way
expect_ok "cli MLP gpt2" prune --model-path synthetic:gpt2-tiny --output-path "$WORK/c6" \
  --pruning-type MLP --reconstruct --calibration-data "$CALIB" --max-length 64 --quiet

# Lua: the same op, the unrecovered variant's figures from evaluate
cat > "$WORK/rec.lua" <<LUA
local base <close> = pf.load{ path = "synthetic:llama-tiny" }
local m <close>, st = pf.prune_width{ model = base, pruning_percentage = 30, reconstruct = true,
                                      reconstruct_damping = 0.02, data = "$CALIB", max_length = 64 }
assert(st.reconstruct.layers == 4 and st.reconstruct.damping == 0.02)
local ev = pf.evaluate{ model = m, compare = base, data = "$EVAL" }
assert(ev.recovery.perplexity_after == ev.perplexity)
assert(ev.recovery.kl_after < ev.recovery.kl_before)
print(string.format("lua recovery: KL %.4f -> %.4f", ev.recovery.kl_before, ev.recovery.kl_after))
LUA
expect_ok "lua" "$WORK/rec.lua"
expect_in "lua figures" "lua recovery: KL"
printf 'pf.prune_width{ model = pf.load{ path = "synthetic:llama-tiny" }, reconstruct = true }\n' \
  > "$WORK/nodata.lua"
expect_fail "lua without data" "reconstruct: true needs calibration text" "$WORK/nodata.lua"

# MPI: two ranks sum C in rank order; the result matches one process to rounding
if command -v mpirun >/dev/null && "$PFRUN" --version | grep -q "mpi: built in"; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
  MPI=(mpirun -np 2 --oversubscribe)
  [ -n "${ASAN_OPTIONS:-}" ] && MPI+=(-x ASAN_OPTIONS="$ASAN_OPTIONS:detect_leaks=0")
  if OUT=$("${MPI[@]}" "$PFRUN" "${P[@]}" --output-path "$WORK/m1" --stats-json "$WORK/m1.json" 2>&1); then ok
  else bad "mpirun reconstruct: $OUT"; fi
  check "mpi: same token count" bash -c "grep -o '\"tokens\": [0-9]*' '$WORK/m1.json' | head -1 | \
    grep -qF \"\$(grep -o '\"tokens\": [0-9]*' '$WORK/s1.json' | head -1)\""
  expect_ok "mpi checkpoint reloads" analyze --model-path "$WORK/m1"
else
  echo "SKIP (mpi part): mpirun or an MPI build not available"
fi

# the issue's targets on stories260K: MAW 20 % / 40 %, C from 200 Brown paragraphs,
# perplexity on 100 others, 128 tokens each: >= 80 % / >= 70 % of the gap recovered
if [ -n "${ASAN_OPTIONS:-}" ]; then
  echo "SKIP (stories260K targets) under the sanitizers: numbers, checked in the release run"
elif have_shared && [ -f "$SHARED/data/brown-calib.jsonl" ]; then
  for pct in 20:0.80 40:0.70; do
    p=${pct%%:*} want=${pct##*:}
    expect_ok "stories $p %" "$SRC/recipes/width_reconstruct.yaml" --quiet \
      --set model="$SHARED/models/stories260K" --set calib="$SHARED/data/brown-calib.jsonl" \
      --set eval="$SHARED/data/brown-eval.jsonl" --set pruning_percentage="$p" \
      --set output_dir="$WORK/st$p"
    g=$(grep -o '"gap_recovered": [0-9.e-]*' "$WORK/st$p/results.json" | awk '{print $2}')
    echo "stories260K MAW $p %: gap recovered $g (target $want)"
    check "stories $p % gap $g >= $want" awk -v g="$g" -v w="$want" 'BEGIN { exit !(g >= w) }'
  done
else
  echo "SKIP (stories260K targets): ../shared not found"
fi

# attention-head pruning refits o_proj the same way
expect_ok "cli heads --reconstruct" prune --model-path synthetic:llama-tiny --output-path "$WORK/heads_rec" \
  --pruning-type ATTENTION --pruning-percentage 50 --reconstruct \
  --calibration-data "$SRC/recipes/data/calib.txt" --stats-json "$WORK/heads_rec.json" --quiet
check "heads --reconstruct: o_proj of every layer refitted" python3 -c "
import json; s = json.load(open('$WORK/heads_rec.json')); r = s['reconstruct']
assert r['layers'] == 4 and r['tokens'] > 0, r"
# recipes/heads_recovery.yaml: calibrate -> heads (o_proj refit) -> width (down_proj refit)
# -> evaluate -> checkpoint -> report
expect_ok "recipe heads_recovery" "$SRC/recipes/heads_recovery.yaml" --set output_dir="$WORK/hr" --quiet
check "heads_recovery: fewer heads and a narrower MLP in the checkpoint" python3 -c "
import json; c = json.load(open('$WORK/hr/checkpoint/config.json'))
assert c['num_key_value_heads'] == 1 and c['num_attention_heads'] < 8 and 'head_dim' in c, c"
check "heads_recovery: both steps refitted, evaluate reports before/after" python3 -c "
import json; d = json.load(open('$WORK/hr/results.json')); st = {s['id']: s['result'] for s in d['steps']}
assert st['heads']['reconstruct']['layers'] > 0 and st['pruned']['reconstruct']['layers'] > 0
assert 'perplexity_before' in st['eval_pruned']['recovery']"
if command -v pdftotext >/dev/null; then
  txt=$(pdftotext "$WORK/hr/report.pdf" - 2>/dev/null)
  for want in "Attention-head pruning" "Recovery" "o_proj'" "down_proj'" "Evaluation"; do
    if grep -qF -- "$want" <<<"$txt"; then ok; else bad "heads_recovery report lacks '$want'"; fi
  done
fi
finish
