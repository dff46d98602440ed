#!/usr/bin/env bash
# End-to-end: the engine commands (tokenize, generate, importance, eval, prune with
# calibration data) through the real binary, on a synthetic model and bundled text;
# on stories260K and the Brown corpus too when ../shared is present.
source "$(dirname "$0")/lib.bash" || exit 1 # no helpers, no $WORK: stop before touching anything
M=synthetic:llama-small
CAL="$SRC/recipes/data/calib.txt"
EV="$SRC/recipes/data/eval.txt"

expect_ok "load synthetic once" analyze --model-path $M --quiet
SYN=$(ls -d "$PFRUN_CACHE"/synthetic/llama-small-* | head -1)
expect_ok "tokenize synthetic" tokenize --model-path "$SYN" "the cat"
expect_in "tokenize prints a JSON array" "["
expect_ok "generate" generate --model-path $M --prompt "the cat" --max-new-tokens 8 --quiet
expect_in "generate echoes the prompt" "the cat"
expect_fail "generate needs a prompt" "Missing option '--prompt'" generate --model-path $M

expect_ok "importance" importance --model-path $M --data "$CAL" --max-length 64 --json "$WORK/imp.json"
expect_in "importance table" "importance"
check "importance json has every layer" grep -q '"5"' "$WORK/imp.json"
expect_fail "importance needs data" "Missing option '--data'" importance --model-path $M
expect_fail "importance bad file" "nope.jsonl" importance --model-path $M --data "$WORK/nope.jsonl"
printf 'not json\n' > "$WORK/bad.jsonl"
expect_fail "importance malformed jsonl" "bad.jsonl:1" importance --model-path $M --data "$WORK/bad.jsonl"
printf '\xff\xfe bad\n' > "$WORK/bad.txt"
expect_fail "importance non-utf8" "not valid UTF-8" importance --model-path $M --data "$WORK/bad.txt"
expect_fail "importance all too short" "no usable samples" importance --model-path $M --data "$CAL" --min-length 100000

expect_ok "eval" eval --model-path $M --data "$EV" --max-length 64 --json "$WORK/ev.json" --quiet
check "eval json perplexity" grep -q '"perplexity"' "$WORK/ev.json"
expect_ok "prune with calibration" prune --model-path $M --output-path "$WORK/hyb" --calibration-data "$CAL" --max-length 64 --calibration-cache "$WORK/cache" --stats-json "$WORK/hyb.json" --quiet
check "calibration cached" test -n "$(ls "$WORK/cache")"
expect_ok "eval against parent" eval --model-path "$WORK/hyb" --compare $M --data "$EV" --max-length 64 --prompt "the cat" --max-new-tokens 4 --num-runs 1 --warmup-runs 0 --json "$WORK/cmp.json"
expect_in "eval prints KL" "KL divergence"
check "compare json has both perplexities" test "$(grep -c '"perplexity"' "$WORK/cmp.json")" -eq 2
check "compare json has speedup" grep -q '"speedup"' "$WORK/cmp.json"
check "compare json has top-1" grep -q '"top1_agreement"' "$WORK/cmp.json"
expect_ok "depth by importance" prune --model-path $M --output-path "$WORK/dep" --pruning-type DEPTH --num-layers-to-remove 2 --calibration-data "$CAL" --max-length 64 --calibration-cache "$WORK/cache" --stats-json "$WORK/dep.json" --quiet
check "depth removed 2" grep -q '"layers_removed": 2' "$WORK/dep.json"
# the matmul precision is part of the calibration cache key (BF16 weights: bf16 on AMX or
# AVX512-BF16 vs f32)
B=synthetic:llama-tiny@5:bf16
expect_ok "calibrate bf16 model" prune --model-path $B --output-path "$WORK/hb1" --calibration-data "$CAL" --max-length 64 --calibration-cache "$WORK/cache2" --quiet
PFRUN_MATMUL=f32 expect_ok "calibrate bf16 model, f32 matmul" prune --model-path $B --output-path "$WORK/hb2" --calibration-data "$CAL" --max-length 64 --calibration-cache "$WORK/cache2" --quiet
want=1
"$PFRUN" --version | grep -q "bf16 matmul on" && want=2
check "matmul precision keys the calibration cache ($want entries)" test "$(ls "$WORK/cache2" | wc -l)" -eq "$want"
expect_fail "hybrid only with MAW" "Data-driven pruning with dataloader is only supported for PPM method" prune --model-path $M --output-path "$WORK/x" --method PON --calibration-data "$CAL"

# the importance -> depth -> perplexity recipe, on the synthetic model and bundled text
expect_ok "importance_depth recipe (synthetic)" "$SRC/recipes/importance_depth.yaml" --set model=$M --set calib="$CAL" --set eval="$EV" --set output_dir="$WORK/rid" --quiet
check "recipe checkpoint" test -f "$WORK/rid/checkpoint/config.json"
check "recipe perplexity" grep -q '"perplexity"' "$WORK/rid/results.json"

if have_shared; then
  S="$SHARED/models/stories260K"
  expect_ok "stories generate" generate --model-path "$S" --prompt "Once upon a time" --max-new-tokens 24 --quiet
  expect_in "stories story" "Once upon a time, there was a little girl named Lily."
  # the continuation is decoded after the prompt: its first word keeps its space
  expect_ok "stories generate mid-sentence" generate --model-path "$S" --prompt "Once upon" --max-new-tokens 4 --quiet
  expect_in "stories continuation spaced" "Once upon a time"
  expect_ok "stories tokenize" tokenize --model-path "$S" "Once upon a time"
  expect_in "stories ids" "[1, 403, 407, 261, 378]"
  expect_ok "importance_depth recipe (stories)" "$SRC/recipes/importance_depth.yaml" --set model="$S" --set calib="$SHARED/data/brown-calib.jsonl" --set eval="$SHARED/data/brown-eval.jsonl" --set output_dir="$WORK/ris" --quiet
  check "stories recipe perplexity" grep -q '"kl_divergence"' "$WORK/ris/results.json"
else
  echo "SKIP engine.sh stories260K part: ../shared not found"
fi
finish
