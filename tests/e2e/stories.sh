#!/usr/bin/env bash
# End-to-end on the real trained checkpoint ../shared/models/stories260K (skips without it).
source "$(dirname "$0")/lib.bash" || exit 1 # no helpers, no $WORK: stop before touching anything
if ! have_shared; then
  echo "SKIP stories.sh: ../shared/models/stories260K not found"
  exit 77
fi
M="$SHARED/models/stories260K"

expect_ok "analyze" analyze --model-path "$M"
expect_in "params" "Total parameters: 260,032"
expect_in "layers" "Number of layers: 5"
# 20 %: I=172 -> trunc(34.4)=34 pruned -> 138 kept
expect_ok "prune 20%" prune --model-path "$M" --output-path "$WORK/w" --pruning-percentage 20 --stats-json "$WORK/w.json" --quiet
check "width 138" grep -q '"intermediate_size": 138' "$WORK/w/config.json"
check "tied stays tied" grep -q '"tie_word_embeddings": true' "$WORK/w/config.json"
# reduction = 5 layers * 34 neurons * 3 * 64
check "reduction 32640" grep -q '"reduction": 32640' "$WORK/w.json"
check "tokenizer copied" cmp -s "$M/tokenizer.json" "$WORK/w/tokenizer.json"
expect_ok "depth" prune --model-path "$M" --output-path "$WORK/d" --pruning-type DEPTH --layer-indices 1,3 --stats-json "$WORK/d.json" --quiet
check "3 layers" grep -q '"num_hidden_layers": 3' "$WORK/d/config.json"
check "depth stats" grep -q '"layer_reduction_percentage": 40' "$WORK/d.json"
expect_ok "reload depth" analyze --model-path "$WORK/d" --json
expect_in "reloaded 3 layers" '"num_layers": 3'
expect_ok "bf16 save" prune --model-path "$M" --output-path "$WORK/b" --dtype bfloat16 --quiet
check "bf16 half the bytes" test "$(stat -c %s "$WORK/b/model.safetensors")" -lt 600000
expect_fail "refuses to write into the input" "input folder" prune --model-path "$M" --output-path "$M/out" --quiet
finish
