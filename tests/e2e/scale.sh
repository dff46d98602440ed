#!/usr/bin/env bash
# scale.sh — passes at scale through the real binary: layer-major (forced, and
# picked by a one-byte memory budget with the hidden states in a scratch file)
# gives the same importance and perplexity as batch-major; option errors.
source "$(dirname "$0")/lib.bash" || exit 1 # no helpers, no $WORK: stop before touching anything
TEXT=$SRC/tests/golden/families_text.jsonl
M=synthetic:llama-small@5

imp() { "$PFRUN" "$@" importance --model-path $M --data "$TEXT" --batch-size 1 --json "$WORK/$1.json" 2>"$WORK/$1.err" >/dev/null; }
"$PFRUN" importance --model-path $M --data "$TEXT" --batch-size 1 --json "$WORK/batch.json" --pass-order batch >/dev/null 2>"$WORK/batch.err"
check "batch-major importance ran" test -s "$WORK/batch.json"
check "batch-major said so" grep -q "importance: batch-major (as asked" "$WORK/batch.err"
"$PFRUN" --pass-order layer importance --model-path $M --data "$TEXT" --batch-size 1 --json "$WORK/layer.json" >/dev/null 2>"$WORK/layer.err"
check "layer-major said so" grep -q "importance: layer-major (as asked.*in RAM" "$WORK/layer.err"
check "layer-major importance = batch-major" cmp -s "$WORK/batch.json" "$WORK/layer.json"
PFRUN_MEMORY_BUDGET=1 "$PFRUN" importance --model-path $M --data "$TEXT" --batch-size 1 --json "$WORK/file.json" >/dev/null 2>"$WORK/file.err"
check "a tiny budget picks layer-major with a scratch file" grep -q "layer-major (the weights do not fit.*in a scratch file" "$WORK/file.err"
check "scratch-file importance = batch-major" cmp -s "$WORK/batch.json" "$WORK/file.json"

# perplexity with a parent: the same numbers either way
for o in batch layer; do
  "$PFRUN" eval --model-path $M --compare synthetic:llama-small@6 --data "$TEXT" --batch-size 2 --pass-order $o --json "$WORK/eval_$o.json" >/dev/null 2>&1
done
check "eval ran" grep -q kl_divergence "$WORK/eval_batch.json"
strip() { grep -v '"seconds"\|_time\|per_second' "$1"; }
check "layer-major eval = batch-major" diff <(strip "$WORK/eval_batch.json") <(strip "$WORK/eval_layer.json")

expect_fail "a bad --pass-order" "Invalid value for '--pass-order': expected auto, batch or layer, got 'sideways'" --pass-order sideways importance --model-path $M --data "$TEXT"
check "usage error exit code" test "$RC" -eq 2
OUT=$(PFRUN_PASS_ORDER=diagonal "$PFRUN" importance --model-path $M --data "$TEXT" 2>&1); RC=$?
check "a bad PFRUN_PASS_ORDER is a usage error" test "$RC" -eq 2
expect_in "PFRUN_PASS_ORDER named" "PFRUN_PASS_ORDER: expected auto, batch or layer, got 'diagonal'"
expect_fail "a bad --memory-budget" "Invalid value for '--memory-budget'" --memory-budget lots importance --model-path $M --data "$TEXT"

# the scratch folder missing: the op fails naming it, nothing is left behind
OUT=$(PFRUN_MEMORY_BUDGET=1 PFRUN_SCRATCH=$WORK/no/such/dir "$PFRUN" importance --model-path $M --data "$TEXT" --batch-size 1 2>&1); RC=$?
check "no scratch folder: a failure, not a crash" test "$RC" -eq 1
expect_in "no scratch folder: named" "$WORK/no/such/dir: cannot create a scratch file for hidden states there: No such file or directory"

# captured activations past a quarter of the memory budget go to spill files:
# the metrics are the same, and the info line says so
cat > "$WORK/bias.yaml" <<YAML
pfrun: 1
name: spill
vars:
  output_dir: $WORK/bias-out
steps:
  - id: base
    op: load
    path: $M
  - id: acts
    op: bias_activations
    model: base
    prompt_pairs: default
  - id: m
    op: metrics
    activations: acts
YAML
"$PFRUN" "$WORK/bias.yaml" --set output_dir="$WORK/bias-heap" >/dev/null 2>"$WORK/bias-heap.err"
PFRUN_MEMORY_BUDGET=1 "$PFRUN" "$WORK/bias.yaml" --set output_dir="$WORK/bias-spill" >/dev/null 2>"$WORK/bias-spill.err"
check "bias recipe ran" test -s "$WORK/bias-heap/results.json"
check "no spill with the default budget" bash -c "! grep -q 'page-cache files' '$WORK/bias-heap.err'"
check "a tiny budget spills the activations" grep -q "bias_activations: .* GB of activations past .* are kept in page-cache files under" "$WORK/bias-spill.err"
metrics() { python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(json.dumps([s['result']['pairs'] for s in r['steps'] if s['op']=='metrics'], sort_keys=True))" "$1"; }
check "spilled activations give the same metrics" test "$(metrics "$WORK/bias-heap/results.json")" = "$(metrics "$WORK/bias-spill/results.json")"
check "metrics were compared" grep -q "pair_1" <(metrics "$WORK/bias-heap/results.json")

echo "scale: $PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
