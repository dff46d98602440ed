#!/usr/bin/env bash
# End-to-end: the OptiPFair-style command line on a synthetic model.
source "$(dirname "$0")/lib.bash" || exit 1 # no helpers, no $WORK: stop before touching anything
M=synthetic:llama-tiny

expect_ok "help" --help
expect_in "help names subcommands" "pfrun prune"
expect_ok "version" --version
expect_in "version" "pfrun "
expect_in "version names the BLIS arch" "kernels: BLIS"
# more OpenMP threads than CPUs: --version and a warning on stderr say so; the work still runs
NCPU=$(nproc)
OUT=$(OMP_NUM_THREADS=$((NCPU + 1)) "$PFRUN" --version 2>&1)
check "version: oversubscribed threads named" grep -q "OMP_NUM_THREADS asks for $((NCPU + 1)) threads on .*oversubscribed" <<<"$OUT"
OUT=$(OMP_NUM_THREADS=$((NCPU + 1)) "$PFRUN" generate --model-path $M --prompt hi --max-new-tokens 2 2>&1)
RC=$?
check "oversubscribed: a warning, and the run succeeds" test "$RC" -eq 0
check "oversubscribed: the warning line" grep -q "^warning: threads: $((NCPU + 1)), OMP_NUM_THREADS asks for" <<<"$OUT"
OUT=$(OMP_NUM_THREADS=1 "$PFRUN" generate --model-path $M --prompt hi --max-new-tokens 2 2>&1)
check "one thread: no thread warning" test -z "$(grep 'threads:' <<<"$OUT")"
expect_ok "prune help" prune --help
expect_in "prune help lists --expansion-divisor" "--expansion-divisor"
expect_ok "ops" ops
expect_in "ops lists prune_width" "prune_width"
expect_ok "ops prune_width" ops prune_width
expect_in "ops shows parameter" "pruning_percentage"
expect_fail "unknown op" "unknown op" ops nosuchop
expect_fail "unknown command" "unknown command" frobnicate
# --quiet before a Lua script's name: no info lines; after it: the script's argument
printf 'local m <close> = pf.load{ path = "%s" }\nprint("args", #arg, arg[1])\n' "$M" >"$WORK/q.lua"
expect_ok "lua, quiet" --quiet "$WORK/q.lua"
check "lua, quiet: no info lines" test -z "$(grep 'done in' <<<"$OUT")"
expect_in "lua, quiet: the script ran" "args	0	nil"
expect_ok "lua, --quiet after the name" "$WORK/q.lua" --quiet
expect_in "lua: --quiet after the name is the script's" "args	1	--quiet"
expect_in "lua: info lines without --quiet" "load: done in"
expect_fail "unknown option: the close one" "No such option: --calibration-samples Did you mean --samples?" \
  eval --model-path $M --calibration-samples 3
expect_in "unknown option: the command's help" "Try 'pfrun help eval' for its options."
check "unknown option: usage exit code 2" test "$RC" -eq 2

# width pruning, default 10 %
expect_ok "prune MLP_GLU" prune --model-path $M --output-path "$WORK/w10" --quiet --stats-json "$WORK/w10.json"
check "checkpoint written" test -f "$WORK/w10/model.safetensors" -a -f "$WORK/w10/config.json"
check "tokenizer copied" test -f "$WORK/w10/tokenizer.json"
check "stats json has keys" grep -q '"percentage_reduction"' "$WORK/w10.json"
check "stats json has layers" grep -q '"kept_indices"' "$WORK/w10.json"
# I=176 at 10 %: prune trunc(17.6)=17 -> 159
check "intermediate_size 159" grep -q '"intermediate_size": 159' "$WORK/w10/config.json"
expect_ok "analyze pruned" analyze --model-path "$WORK/w10"
expect_in "analyze sees 159" "Intermediate size: 159"
# a --stats-json / --json file that cannot be written fails before any work: no checkpoint
expect_fail "stats file in a missing folder" "$WORK/nofolder/s.json: cannot create: folder $WORK/nofolder does not exist" \
  prune --model-path $M --output-path "$WORK/wst" --quiet --stats-json "$WORK/nofolder/s.json"
check "nothing saved when the stats file cannot be written" test ! -e "$WORK/wst"
expect_fail "json file is a folder" "$WORK: cannot write a file there: it is a folder" \
  importance --model-path $M --data "$SRC/recipes/data/calib.txt" --json "$WORK"
expect_fail "refuses non-empty output" "not empty (use --overwrite to replace it)" prune --model-path $M --output-path "$WORK/w10" --quiet
expect_fail "refuses input folder" "input folder" prune --model-path "$WORK/w10" --output-path "$WORK/w10/sub" --quiet
# a JSON output never replaces a file of a checkpoint read or written
cp "$WORK/w10/model.safetensors" "$WORK/w10.weights"
expect_fail "stats over the input weights" "refusing to write the JSON file over a file of the checkpoint $WORK/w10 that this command reads" \
  prune --model-path "$WORK/w10" --output-path "$WORK/wx" --quiet --stats-json "$WORK/w10/../w10/model.safetensors"
check "input weights unchanged" cmp -s "$WORK/w10.weights" "$WORK/w10/model.safetensors"
ln -sfn "$WORK/w10" "$WORK/w10link" # an output path that is the input through a symlink: before the work
expect_fail "output through a symlink to the input" "w10link: refusing to write into the input folder" \
  prune --model-path "$WORK/w10" --output-path "$WORK/w10link" --calibration-data "$SRC/recipes/data/calib.txt"
check "refused before the work" bash -c "! grep -q 'Original parameters' <<<\"\$0\"" "$OUT"
ln -sf "$WORK/w10/model.safetensors" "$WORK/link.json" # a symlink is judged by its target
expect_fail "stats through a symlink to the input weights" "refusing to write the JSON file over a file of the checkpoint" \
  prune --model-path "$WORK/w10" --output-path "$WORK/wx" --quiet --stats-json "$WORK/link.json"
check "input weights unchanged (symlink)" cmp -s "$WORK/w10.weights" "$WORK/w10/model.safetensors"
expect_fail "eval json over the config" "over a file of the checkpoint" \
  eval --model-path "$WORK/w10" --data "$SRC/recipes/data/eval.txt" --samples 2 --json "$WORK/w10/config.json"
expect_fail "stats over the output config" "refusing to write the statistics over a file of the checkpoint that --output-path $WORK/wx receives" \
  prune --model-path $M --output-path "$WORK/wx" --quiet --stats-json "$WORK/wx/config.json"
expect_ok "stats beside the checkpoint it writes" prune --model-path $M --output-path "$WORK/wy" --quiet --stats-json "$WORK/wy/stats.json"
check "stats beside the checkpoint" test -s "$WORK/wy/stats.json" -a -s "$WORK/wy/config.json"

expect_ok "prune summary" prune --model-path $M --output-path "$WORK/w20" --pruning-percentage 20 --method VOW
expect_in "summary line" "Pruning complete!"
expect_in "reduction line" "Reduction: "
expect_ok "expansion rate + divisor" prune --model-path $M --output-path "$WORK/er" --expansion-rate 200 --expansion-divisor 32 --quiet
# H=64: target 128 -> p = (1-128/176)*100 -> k = 128, floor to 32 -> 128
check "rate 200 -> 128" grep -q '"intermediate_size": 128' "$WORK/er/config.json"
expect_ok "selective layers" prune --model-path $M --output-path "$WORK/sel" --layer-indices "0,2" --pruning-percentage 50 --quiet
check "per-layer sizes recorded" grep -q '"intermediate_sizes"' "$WORK/sel/config.json"
expect_ok "bf16 output" prune --model-path $M --output-path "$WORK/bf" --dtype bfloat16 --quiet
check "bf16 dtype in config" grep -q '"torch_dtype": "bfloat16"' "$WORK/bf/config.json"

# OptiPFair's messages
expect_fail "pct+rate" "--pruning-percentage and --expansion-rate are mutually exclusive." prune --model-path $M --output-path "$WORK/x" --pruning-percentage 10 --expansion-rate 200
expect_fail "num layers with glu" "--num-layers-to-remove is only valid with --pruning-type DEPTH." prune --model-path $M --output-path "$WORK/x" --num-layers-to-remove 1
expect_fail "selection with glu" "--layer-selection-method is only valid with --pruning-type DEPTH." prune --model-path $M --output-path "$WORK/x" --layer-selection-method first
expect_fail "bad indices" "--layer-indices must be comma-separated integers (e.g., '2,5,8')." prune --model-path $M --output-path "$WORK/x" --layer-indices "1,a"
expect_fail "depth divisor" "--expansion-divisor is only valid with --pruning-type MLP_GLU." prune --model-path $M --output-path "$WORK/x" --pruning-type DEPTH --expansion-divisor 32 --num-layers-to-remove 1
expect_fail "depth calibration with a selection method" "--layer-selection-method cannot be combined with --calibration-data for --pruning-type DEPTH" prune --model-path $M --output-path "$WORK/x" --pruning-type DEPTH --num-layers-to-remove 1 --layer-selection-method first --calibration-data "$SRC/recipes/data/calib.txt"
expect_fail "depth calibration with indices" "--layer-indices cannot be combined with --calibration-data" prune --model-path $M --output-path "$WORK/x" --pruning-type DEPTH --layer-indices 1 --calibration-data "$SRC/recipes/data/calib.txt"
expect_fail "hexadecimal is not a float (click)" "Invalid value for '--pruning-percentage': '0x10' is not a valid float." prune --model-path $M --output-path "$WORK/x" --pruning-percentage 0x10
expect_ok "spaces around a number (click)" prune --model-path $M --output-path "$WORK/x" --pruning-percentage "20 " --dry-run --quiet
PFRUN_PREFETCH=bogus expect_fail "PFRUN_PREFETCH checked" "PFRUN_PREFETCH: expected 0, map or direct, got 'bogus'" analyze --model-path $M
expect_ok "generate past the context" generate --model-path $M --prompt "the cat" --max-new-tokens 100000
expect_in "generate says where it stopped" "generate: 2043 new tokens fit the model's context of 2048 positions after the 5 prompt tokens (100000 asked)"
expect_fail "op errors in option words (prune)" "calibrate: option '--batch-size': expected a value in [1, 65536], got 0" prune --model-path $M --output-path "$WORK/x" --calibration-data "$SRC/recipes/data/calib.txt" --batch-size 0
expect_fail "op errors in option words (eval)" "evaluate: option '--max-length': expected a value in [1, 1048576], got 0" eval --model-path $M --data "$SRC/recipes/data/eval.txt" --max-length 0
expect_fail "unknown --set key" "--set 'modle=x': the recipe has no variable 'modle'" "$SRC/recipes/demo.yaml" --set modle=x --dry-run
check "unknown --set key: usage error (2)" test "$RC" -eq 2
expect_fail "empty --set value" "--set 'model=': no value for variable 'model' (give a value, or leave the option out to keep the recipe's; an empty string is --set 'model=\"\"')" "$SRC/recipes/demo.yaml" --set model= --dry-run
check "empty --set value: usage error (2)" test "$RC" -eq 2
expect_fail "stray word" "Got unexpected extra argument (foo)" prune foo --model-path $M --output-path "$WORK/x"
expect_fail "analyze --json is a flag" "Got unexpected extra argument (out.json) (analyze's --json is a flag" analyze --model-path $M --json out.json
expect_fail "shard size checked before the work" "Invalid value for '--max-shard-size': size '0': expected a positive size" prune --model-path $M --output-path "$WORK/x" --max-shard-size 0
check "shard size: usage error (2)" test "$RC" -eq 2
check "shard size: nothing pruned or saved" test ! -e "$WORK/x"
expect_fail "empty output path" "Invalid value for '--output-path': an empty path." prune --model-path $M --output-path ""
expect_fail "depth none" "For DEPTH pruning, specify one of" prune --model-path $M --output-path "$WORK/x" --pruning-type DEPTH
expect_fail "depth method" "--method is only valid with --pruning-type MLP_GLU." prune --model-path $M --output-path "$WORK/x" --pruning-type DEPTH --num-layers-to-remove 1 --method VOW
expect_fail "bad divisor" "is not one of" prune --model-path $M --output-path "$WORK/x" --expansion-divisor 48
expect_fail "no effective pruning" "No effective pruning" prune --model-path $M --output-path "$WORK/x" --pruning-percentage 0.01
expect_fail "invalid layer indices" "Invalid layer indices: [9]" prune --model-path $M --output-path "$WORK/x" --layer-indices 0,9
# found against the model: exit 1 (OptiPFair's CLI makes every prune_model ValueError a
# usage error, 2; README "Differences"); a rule on the options alone is a usage error
check "invalid layer indices: exit 1 (found against the model)" test "$RC" -eq 1
expect_fail "rule on the options alone" "pruning_percentage must be between 0 and 100, got 150" prune --model-path $M --output-path "$WORK/x" --pruning-percentage 150
check "rule on the options alone: usage error (2) before the load" test "$RC" -eq 2 -a -z "$(grep 'load: done' <<<"$OUT")"
expect_fail "pct range" "pruning_percentage must be between 0 and 100" prune --model-path $M --output-path "$WORK/x" --pruning-percentage 120
check "failed runs leave no output" test ! -e "$WORK/x"
check "no temp folders left" bash -c "! ls -d '$WORK'/*.tmp-* 2>/dev/null"

# depth pruning
expect_ok "depth last" prune --model-path $M --output-path "$WORK/d" --pruning-type DEPTH --num-layers-to-remove 1 --stats-json "$WORK/d.json" --quiet
check "3 layers" grep -q '"num_hidden_layers": 3' "$WORK/d/config.json"
check "depth stats" grep -q '"layers_removed": 1' "$WORK/d.json"
check "removed layer 3" grep -A2 '"removed_layers"' "$WORK/d.json" | grep -q 3
# against its parent, the checkpoint's first 3 layers hold the parent's bytes: run once
expect_ok "eval depth-pruned against parent" eval --model-path "$WORK/d" --compare $M --data "$SRC/recipes/data/eval.txt"
expect_in "eval: shared layers run once" "the model's first 3 layers are the compared model's"
expect_fail "remove all" "Cannot remove 4 layers from model with 4 layers" prune --model-path $M --output-path "$WORK/x" --pruning-type DEPTH --num-layers-to-remove 4
expect_fail "depth pct all" "would remove 0 layers" prune --model-path $M --output-path "$WORK/x" --pruning-type DEPTH --pruning-percentage 10

# an output the save would refuse is refused before the work (before: after calibration and
# pruning, which can take hours); a symbolic link too (the checkpoint replaced the link)
mkdir -p "$WORK/full-out" "$WORK/link-target"
echo keep >"$WORK/full-out/notes.txt"
expect_fail "existing output, before the work" "full-out: the output folder exists and is not empty (use --overwrite to replace it)" prune --model-path $M --output-path "$WORK/full-out" --calibration-data "$SRC/recipes/data/calib.txt"
check "existing output: nothing ran ($OUT)" bash -c "! grep -q 'calibrate:' <<<\"\$1\"" _ "$OUT"
check "existing output: untouched" test -f "$WORK/full-out/notes.txt"
ln -s "$WORK/link-target" "$WORK/link-out"
expect_fail "symlinked output" "link-out: the output path is a symbolic link" prune --model-path $M --output-path "$WORK/link-out" --quiet
check "symlinked output: the link stays" test -L "$WORK/link-out"

# dry run: plan only
expect_ok "dry run" prune --model-path $M --output-path "$WORK/dry" --pruning-percentage 20 --dry-run
expect_in "dry run plan shapes" "model.layers.0.mlp.down_proj.weight -> [64,141]"
expect_in "dry run memory" "peak extra memory of the save"
# with calibration data the plan names the calibration pass, whose memory it does not count
expect_ok "dry run with calibration" prune --model-path $M --output-path "$WORK/dry" --pruning-percentage 20 --calibration-data "$SRC/recipes/data/eval.txt" --dry-run
expect_in "dry run names the calibration pass" "calibration: "
expect_in "dry run says the pass is not estimated" "a dry run does not estimate that pass's memory"
expect_in "dry run config diff" "config intermediate_size: 176 -> 141"
check "dry run wrote nothing" test ! -e "$WORK/dry"
# a dry run replaces no results: prune's plan statistics go to a new file only; the
# commands whose dry run computes nothing write no --json (before: the plan's or an
# empty JSON replaced a real run's perplexity, metrics, scores)
expect_ok "real run, stats" prune --model-path $M --output-path "$WORK/dry-real" --pruning-percentage 20 --stats-json "$WORK/dry-stats.json" --quiet
cp "$WORK/dry-stats.json" "$WORK/dry-stats.before"
expect_fail "dry run keeps the real stats" "dry-stats.json: exists, and a dry run does not replace it" prune --model-path $M --output-path "$WORK/dry-real" --pruning-percentage 20 --stats-json "$WORK/dry-stats.json" --overwrite --dry-run
check "the real stats are unchanged" cmp -s "$WORK/dry-stats.json" "$WORK/dry-stats.before"
expect_ok "dry run, new stats file" prune --model-path $M --output-path "$WORK/dry-real" --pruning-percentage 20 --stats-json "$WORK/dry-plan.json" --overwrite --dry-run
check "the plan's stats are written to a new file" grep -q '"kept_indices": null' "$WORK/dry-plan.json"
expect_ok "dry run, stats to stdout" prune --model-path $M --output-path "$WORK/dry-real" --pruning-percentage 20 --stats-json /dev/stdout --overwrite --dry-run
expect_in "dry run, stats to stdout: the plan's" '"kept_indices": null'
expect_ok "real run, stats inside the checkpoint" prune --model-path $M --output-path "$WORK/dry-in" --pruning-percentage 20 --stats-json "$WORK/dry-in/stats.json" --quiet
cp "$WORK/dry-in/stats.json" "$WORK/dry-in.before"
expect_fail "dry run, stats inside the checkpoint" "dry-in/stats.json: inside --output-path" prune --model-path $M --output-path "$WORK/dry-in" --pruning-percentage 20 --stats-json "$WORK/dry-in/stats.json" --overwrite --dry-run
check "dry run: the checkpoint's stats are unchanged" cmp -s "$WORK/dry-in/stats.json" "$WORK/dry-in.before"
expect_ok "real eval" eval --model-path $M --data "$SRC/recipes/data/eval.txt" --samples 2 --json "$WORK/dry-eval.json" --quiet
cp "$WORK/dry-eval.json" "$WORK/dry-eval.before"
expect_ok "dry-run eval" eval --model-path $M --data "$SRC/recipes/data/eval.txt" --samples 2 --json "$WORK/dry-eval.json" --dry-run
expect_in "dry-run eval says what it did" "Dry run: the model and inputs were checked; nothing was computed or written (not the --json file either)."
check "dry-run eval keeps the real results" cmp -s "$WORK/dry-eval.json" "$WORK/dry-eval.before"
expect_ok "dry-run bench, new file" bench --model-path $M --tasks "$SRC/tests/golden/bench_tiny/tiny_mc.jsonl" --json "$WORK/dry-bench.json" --dry-run
check "dry-run bench writes no file" test ! -e "$WORK/dry-bench.json"

# usage errors in the options' own words, before a model is loaded (exit 2; before:
# exit 1 after the load, or another option's name)
E="$SRC/recipes/data/eval.txt"
expect_fail "bad --head-indices" "--head-indices must be comma-separated integers (e.g., '2,5,8')." prune --model-path $M --output-path "$WORK/x" --pruning-type ATTENTION --head-indices a
expect_fail "bad --samples" "option '--samples': expected integer, got string \"abc\"" importance --model-path $M --data "$E" --samples abc
check "bad --samples: usage error (2) before the load" test "$RC" -eq 2 -a -z "$(grep 'load: done' <<<"$OUT")"
expect_fail "bad --reconstruct-damping" "option '--reconstruct-damping'" prune --model-path $M --output-path "$WORK/x" --calibration-data "$E" --reconstruct --reconstruct-damping -1
check "bad --reconstruct-damping: usage error (2) before the calibration" test "$RC" -eq 2 -a -z "$(grep 'load: done' <<<"$OUT")"
expect_fail "speed options need a prompt" "--max-new-tokens needs --prompt TEXT" eval --model-path $M --data "$E" --max-new-tokens 5
expect_fail "bench: a task folder that is not there" "task_dir: $WORK/nope: no such folder" bench --model-path $M --tasks "$SRC/tests/golden/bench_tiny/tiny_mc.jsonl" --task-dir "$WORK/nope"
expect_fail "a Hub id says pfrun downloads nothing" "(a Hugging Face Hub id? pfrun reads local folders and downloads nothing" analyze --model-path meta-llama/Llama-3.2-1B
# help everywhere
expect_ok "ops --help" ops --help
expect_in "ops --help: its usage" "usage: pfrun ops [NAME]"
expect_ok "recipe --help" "$SRC/recipes/demo.yaml" --help
expect_in "recipe --help: its usage" "usage: pfrun RECIPE.yaml"
expect_ok "ops NAME --quiet" ops prune_width --quiet
# bias without --output-dir: the metrics, no chart (before: an error with the defaults)
expect_ok "bias without an output folder" bias --model-path $M --layers 0
expect_in "bias without an output folder: the metrics" "overall mean difference"

# analyze
expect_ok "analyze" analyze --model-path $M
expect_in "analyze lines" "Compatible with GLU pruning: True"
expect_in "analyze estimate" "With 10% MLP neuron pruning:"
expect_ok "analyze json" analyze --model-path $M --json
expect_in "analyze json key" '"total_parameters"'

# bad input files
mkdir -p "$WORK/badcfg"; echo '{"hidden_size": "x"' > "$WORK/badcfg/config.json"
expect_fail "bad config.json" "config.json" analyze --model-path "$WORK/badcfg"
expect_fail "missing folder" "$WORK/nope" analyze --model-path "$WORK/nope"
mkdir -p "$WORK/trunc"; cp "$WORK/w10/config.json" "$WORK/trunc/"
head -c 100 "$WORK/w10/model.safetensors" > "$WORK/trunc/model.safetensors"
expect_fail "truncated safetensors" "model.safetensors" analyze --model-path "$WORK/trunc"

finish
