#!/usr/bin/env bash
# End-to-end: YAML recipes and Lua scripts through the real binary.
source "$(dirname "$0")/lib.bash" || exit 1 # no helpers, no $WORK: stop before touching anything

# the demo recipe, redirected to a scratch folder
expect_ok "demo recipe" "$SRC/recipes/demo.yaml" --set output_dir="$WORK/demo" --quiet
check "demo width checkpoint" test -f "$WORK/demo/width-maw20/model.safetensors"
check "demo depth checkpoint" test -f "$WORK/demo/depth-last2/model.safetensors"
check "demo results.json" grep -q '"prune_depth"' "$WORK/demo/results.json"
# llama-small: I=352, 20 % -> k=282 (trunc 70.4), divisor 32 -> 256
check "demo width 256" grep -q '"intermediate_size": 256' "$WORK/demo/width-maw20/config.json"
check "demo depth 4 layers" grep -q '"num_hidden_layers": 4' "$WORK/demo/depth-last2/config.json"
expect_ok "pruned checkpoint reloads" analyze --model-path "$WORK/demo/width-maw20"
expect_in "reloaded width" "Intermediate size: 256"

# dry run writes nothing
expect_ok "demo dry run" "$SRC/recipes/demo.yaml" --set output_dir="$WORK/dry" --dry-run
expect_in "dry run shows changed tensors" "changed tensors: 18"
check "dry run wrote nothing" test ! -e "$WORK/dry"
expect_ok "flagship dry run" "$SRC/recipes/llama_depth_bias.yaml" --set model=synthetic:llama-tiny --set output_dir="$WORK/dryf" --dry-run
expect_in "dry run marks a step whose when is false" "benchmark bench_pruned: skipped (when: false)"

# every example recipe validates in dry-run
for r in "$SRC"/recipes/*.yaml; do
  expect_ok "dry run $(basename "$r")" "$r" --set output_dir="$WORK/dry-$(basename "$r" .yaml)" --dry-run --quiet
done

# a dry run plans a synthetic model that is not in the cache without writing it: the
# same plan as from the cached checkpoint (written by the demo run above), a few KB in
# the cache (its tokenizer and config), no weights
expect_ok "demo dry run, cached model" "$SRC/recipes/demo.yaml" --set output_dir="$WORK/dry" --dry-run --quiet
cached_plan=$OUT
PFRUN_CACHE="$WORK/empty-cache" expect_ok "demo dry run, empty cache" "$SRC/recipes/demo.yaml" --set output_dir="$WORK/dry" --dry-run --quiet
check "dry run: same plan with and without the cached model" test "$OUT" = "$cached_plan"
check "dry run: no weights in the empty cache" test -z "$(find "$WORK/empty-cache" -name '*.safetensors')"
check "dry run: a few KB in the empty cache" test "$(du -sk "$WORK/empty-cache" | cut -f1)" -lt 512
# (llama-medium: 300 MB if this broke; the same holds for llama-13b's 26 GB)
PFRUN_CACHE="$WORK/empty-cache" expect_ok "prune dry run, model not cached" prune --model-path synthetic:llama-medium --pruning-percentage 20 --output-path "$WORK/never-medium" --dry-run
expect_in "llama-medium plan" "parameters: 75,762,432 -> 64,454,400"
check "prune dry run wrote no weights" test "$(du -sk "$WORK/empty-cache" | cut -f1)" -lt 512
PFRUN_CACHE="$WORK/empty-cache" expect_ok "tokenize, model not cached" tokenize --model-path synthetic:llama-medium "the cat"
expect_in "tokenize ids" "[1,"
check "tokenize wrote no weights" test "$(du -sk "$WORK/empty-cache" | cut -f1)" -lt 512

# --dry-run checks that the models of different steps fit together, as the real
# run does: a calibration planned on one model, used on another
cross() { # cross FILE CALIBRATED-MODEL TARGET-STEP
  cat > "$1" <<YAML
pfrun: 1
name: cross
steps:
  - {id: base, op: load, path: synthetic:llama-tiny}
  - {id: src, op: load, path: $2}
  - {id: d, op: prune_depth, model: base, num_layers_to_remove: 1}
  - {id: cal, op: calibrate, model: src, data: $SRC/recipes/data/calib.txt, max_length: 32}
  - {op: prune_width, model: $3, calibration: cal, pruning_percentage: 20}
  - {op: prune_depth, model: $3, importance: cal, num_layers_to_remove: 1}
YAML
}
cross "$WORK/cross-ok.yaml" synthetic:llama-tiny base
expect_ok "dry run: calibration of the same model" "$WORK/cross-ok.yaml" --dry-run --quiet
expect_ok "prune --calibration-data --dry-run" prune --model-path synthetic:llama-tiny --output-path "$WORK/never" --calibration-data "$SRC/recipes/data/calib.txt" --max-length 32 --dry-run --quiet
check "prune dry run wrote nothing" test ! -e "$WORK/never"
cross "$WORK/cross-other.yaml" synthetic:llama-small base
expect_fail "dry run: calibration of another model" "step 5 (prune_width): calibration: computed on a model with 6 layers, this model has 4" "$WORK/cross-other.yaml" --dry-run --set output_dir="$WORK/cross-other"
check "cross dry run wrote nothing" test ! -e "$WORK/cross-other"
cross "$WORK/cross-depth.yaml" synthetic:llama-tiny d
expect_fail "dry run: calibration from before depth pruning" "step 5 (prune_width): calibration: computed on a model with 4 layers, this model has 3" "$WORK/cross-depth.yaml" --dry-run
sed -i '/op: prune_width/d' "$WORK/cross-depth.yaml"
expect_fail "dry run: importance from before depth pruning" "step 5 (prune_depth): importance: computed on a model with 4 layers, this model has 3" "$WORK/cross-depth.yaml" --dry-run

# recipe errors point at file:line:col and name the step
cat > "$WORK/bad.yaml" <<'YAML'
pfrun: 1
name: bad
steps:
  - id: base
    op: load
    path: synthetic:llama-tiny
  - op: prune_width
    model: base
    pruning_pct: 20
YAML
expect_fail "unknown parameter" "bad.yaml:" "$WORK/bad.yaml"
expect_in "names the step" "step 2 (prune_width)"
expect_in "names the parameter" "pruning_pct"
# a re-run whose save target is there (no overwrite) stops before its first step,
# as --dry-run does, not after pruning with no results.json
cat > "$WORK/rerun.yaml" <<'YAML'
pfrun: 1
vars: {output_dir: runs/rerun}
output_dir: ${output_dir}
steps:
  - {id: base, op: load, path: synthetic:llama-tiny}
  - {id: w, op: prune_width, model: base, pruning_percentage: 20}
  - op: save
    model: w
    path: ${output_dir}/ck
YAML
expect_ok "rerun: first run" "$WORK/rerun.yaml" --set output_dir="$WORK/rerun" --quiet
rm "$WORK/rerun/results.json"
expect_fail "rerun: save target checked first" "rerun.yaml:9:5: step 3 (save): path '$WORK/rerun/ck': expected a new or empty folder, found existing content (set overwrite: true to replace it)" "$WORK/rerun.yaml" --set output_dir="$WORK/rerun"
check "rerun: no step ran" bash -c '! grep -q "^step 1/" <<<"$1"' _ "$OUT"
check "rerun: no results.json" test ! -e "$WORK/rerun/results.json"
printf 'pfrun: 1\nsteps:\n  - op: frobnicate\n' > "$WORK/badop.yaml"
expect_fail "unknown op" "frobnicate" "$WORK/badop.yaml"
printf 'pfrun: 1\nsteps: [\n' > "$WORK/syntax.yaml"
expect_fail "yaml syntax" "syntax.yaml:" "$WORK/syntax.yaml"
printf 'pfrun: 1\nsteps:\n  - op: load\n    path: ${nope}\n' > "$WORK/var.yaml"
expect_fail "missing var" "nope" "$WORK/var.yaml"
expect_fail "missing recipe" "missing.yaml" "$WORK/missing.yaml"

# Lua: load once, several variants, <close>, save
cat > "$WORK/sweep.lua" <<'LUA'
local base <close> = pf.load{ path = arg[1] }
local out = arg[2]
for _, method in ipairs{ "MAW", "VOW", "PON", "L2" } do
  for _, pct in ipairs{ 10, 30 } do
    local m <close>, stats = pf.prune_width{ model = base, method = method, pruning_percentage = pct }
    print(string.format("%s %d %.4f %d", method, pct, stats.percentage_reduction, m.parameters))
  end
end
local d <close> = pf.prune_depth{ model = base, num_layers_to_remove = 1 }
pf.save{ model = d, path = out }
print("layers", d.num_hidden_layers)
LUA
expect_ok "lua sweep" "$WORK/sweep.lua" synthetic:llama-tiny "$WORK/lua-depth"
expect_in "lua printed MAW" "MAW 10"
expect_in "lua printed L2" "L2 30"
expect_in "lua layers" "layers	3"
check "lua saved" test -f "$WORK/lua-depth/model.safetensors"
printf 'local m = pf.load{ path = "synthetic:llama-tiny" }\npf.prune_width{ model = m, pruning_percentage = 500 }\n' > "$WORK/err.lua"
expect_fail "lua error" "pf.prune_width" "$WORK/err.lua"
expect_in "lua traceback" "traceback"
printf 'this is not lua\n' > "$WORK/syntax.lua"
expect_fail "lua syntax" "syntax.lua" "$WORK/syntax.lua"

# bias_activations reuse from Lua: a result that went through Lua tables (act maps in no
# particular order) serves a depth-pruned copy; every activation equals a run without reuse
cat > "$WORK/reuse.lua" <<'LUA'
local base = pf.load{ path = "synthetic:llama-tiny" }
local before = pf.bias_activations{ model = base, prompt_pairs = "default", keep_states = true }
local pruned = pf.prune_depth{ model = base, layer_indices = {2}, layer_selection_method = "custom" }
local plain = pf.bias_activations{ model = pruned, prompt_pairs = "default" }
local re = pf.bias_activations{ model = pruned, prompt_pairs = "default", reuse = before }
local n, same = 0, 0
for i, p in ipairs(plain.pairs) do
  for _, side in ipairs{ "act1", "act2" } do
    for k, t in pairs(p[side]) do
      n = n + 1
      local u, ok = re.pairs[i][side][k], true
      ok = u ~= nil and #u == #t
      for s = 1, ok and t.shape[1] or 0 do
        for d = 1, t.shape[2] do
          if t:get(s, d) ~= u:get(s, d) then ok = false end
        end
      end
      if ok then same = same + 1 end
    end
  end
end
print(string.format("reuse: %d of %d activations equal", same, n))
LUA
expect_ok "lua bias reuse" "$WORK/reuse.lua"
expect_in "lua reuse started past the shared layers" "layers 0-1 (of 3) taken from the reused result"
expect_in "lua reuse equal" "reuse: 252 of 252 activations equal"

# the example scripts run as documented
for s in "$SRC"/scripts/*.lua; do
  expect_ok "script $(basename "$s")" "$s" synthetic:llama-tiny "$WORK/script-$(basename "$s" .lua)"
done
check "sweep saved" test -f "$WORK/script-sweep_width/maw40-div32/config.json"
check "width_vs_depth saved" test -f "$WORK/script-width_vs_depth/depth/config.json"
check "sweep report" bash -c "head -c 5 '$WORK/script-sweep_width/report.pdf' | grep -q '%PDF-'"
check "width_vs_depth report" bash -c "head -c 5 '$WORK/script-width_vs_depth/report.pdf' | grep -q '%PDF-'"

finish
