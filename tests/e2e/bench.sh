#!/usr/bin/env bash
# End-to-end: `pfrun bench` (zero-shot benchmarks) on the built-in synthetic model
# with the suite's tiny tasks (always) and on stories260K with the shared task data
# (when ../shared is there): the JSON shape of --json / --log-samples / --compare,
# the errors, and that the flagship recipe's optional benchmark step is skipped by
# default (flagship.sh runs it switched on and checks its report section and the
# report's text layer).
source "$(dirname "$0")/lib.bash" || exit 1 # no helpers, no $WORK: stop before touching anything
T=tests/golden/bench_tiny
TASKS="$T/tiny_mc.jsonl,$T/tiny_partial.jsonl,$T/tiny_cloze.jsonl"
M=synthetic:llama-tiny
py() { python3 -c "import json,sys; d=json.load(open('$1')); $2"; }

run bench --help
expect_in "bench --help names --tasks" "--tasks LIST"
expect_in "bench --help names the BOS modes" "--bos MODE"
expect_fail "bench without --tasks" "Missing option '--tasks'" bench --model-path "$M"
expect_fail "an unknown task" "no definition" bench --model-path "$M" --tasks no_such_task
expect_fail "a task name without data folder" "no data folder" bench --model-path "$M" --tasks arc_easy
expect_fail "a bad --bos" "bos" bench --model-path "$M" --tasks "$TASKS" --bos sometimes

expect_ok "bench on the tiny tasks" bench --model-path "$M" --tasks "$TASKS" --json "$WORK/b.json" --log-samples
expect_in "the table prints acc" "tiny_mc"
check "JSON: tasks with n, acc, acc_stderr, acc_norm" py "$WORK/b.json" \
  "t=d['tasks']['tiny_mc']; assert t['n']==6 and 0<=t['acc']<=1 and 'acc_stderr' in t and 'acc_norm' in t"
check "JSON: samples with per-choice log-likelihoods" py "$WORK/b.json" \
  "s=d['tasks']['tiny_mc']['samples'][0]; assert len(s['loglikelihoods'])==3 and len(s['is_greedy'])==3 and s['gold']==0 and 'pred_norm' in s"
check "JSON: LAMBADA-style perplexity and its stderr" py "$WORK/b.json" \
  "t=d['tasks']['tiny_cloze']; assert t['perplexity']>1 and t['perplexity_stderr']>0 and 'acc_norm' not in t"
check "JSON: the BOS mode is recorded" py "$WORK/b.json" "assert d['bos']=='default'"

expect_ok "bench --bos never --no-context-cache" bench --model-path "$M" --tasks "$TASKS" --bos never --no-context-cache --json "$WORK/n.json"
check "JSON: bos never, batched passes" py "$WORK/n.json" \
  "assert d['bos']=='never' and d['tasks']['tiny_mc']['context_cache'] is False"

# a pruned model against its parent
expect_ok "prune for the comparison" prune --model-path "$M" --output-path "$WORK/pruned" --pruning-percentage 40 --quiet
expect_ok "bench --compare" bench --model-path "$WORK/pruned" --compare "$M" --tasks "$TASKS" --json "$WORK/c.json"
expect_in "the table shows the parent column" "agreement"
check "JSON: parent and comparison" py "$WORK/c.json" \
  "c=d['comparison']['tiny_mc']; p=d['parent']['tasks']['tiny_mc']; t=d['tasks']['tiny_mc']; assert abs(c['acc_diff']-(t['acc']-p['acc']))<1e-12 and 0<=c['agreement']<=1 and 'acc_diff_stderr' in c"

# the recipe step (off by default; flagship.sh runs it switched on) and the report's text layer
R="$SRC/recipes/llama_depth_bias.yaml"
expect_ok "flagship dry run (benchmark step skipped by default)" "$R" --set output_dir="$WORK/fl0" --dry-run
expect_in "the dry run says the step is skipped" "skipped (when: false)"
if have_shared && [ -d "$SHARED/data/bench" ]; then
  expect_ok "bench on stories260K" bench --model-path "$SHARED/models/stories260K" \
    --tasks arc_easy,winogrande,lambada_openai --data-dir "$SHARED/data/bench" --limit 20 --json "$WORK/s.json"
  check "stories260K: three tasks of 20 documents" py "$WORK/s.json" \
    "assert [d['tasks'][k]['n'] for k in ('arc_easy','winogrande','lambada_openai')]==[20,20,20]"
  PFRUN_BENCH_DATA="$SHARED/data/bench" expect_ok "bench with PFRUN_BENCH_DATA" bench \
    --model-path "$SHARED/models/stories260K" --tasks copa --limit 5
  # a parent with another tokenizer of the same size (aidreams260K: 512 tokens, other
  # merges) and a shorter context: refused before scoring, not scored on the model's ids
  expect_fail "compare: the parent's shorter context" "give max_length 128" bench \
    --model-path "$SHARED/models/stories260K" --compare "$SHARED/models/aidreams260K" \
    --tasks arc_easy --data-dir "$SHARED/data/bench" --limit 5
  expect_fail "compare: the parent's other tokenizer" "the parent must share the model's tokenizer" \
    bench --model-path "$SHARED/models/stories260K" --compare "$SHARED/models/aidreams260K" \
    --tasks arc_easy --data-dir "$SHARED/data/bench" --limit 5 --max-length 128
else
  echo "SKIP bench.sh stories260K tasks: ../shared not found"
fi
finish
