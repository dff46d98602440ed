#!/usr/bin/env bash
# End-to-end: the flagship recipe recipes/llama_depth_bias.yaml — on the built-in
# synthetic model (as on a fresh clone), and on stories260K + the Brown corpus when
# ../shared is present. Checks the checkpoint, results.json, bias_metrics.json, the
# charts, and that report.pdf renders (pdftoppm) with the expected sections (pdftotext).
source "$(dirname "$0")/lib.bash" || exit 1 # no helpers, no $WORK: stop before touching anything
R="$SRC/recipes/llama_depth_bias.yaml"

check_run() { # DIR LABEL
  local d=$1 l=$2
  check "$l: checkpoint" test -f "$d/checkpoint/config.json"
  check "$l: results.json" grep -q '"kl_divergence"' "$d/results.json"
  check "$l: bias_metrics.json" grep -q '"pair_7"' "$d/bias/bias_metrics.json"
  check "$l: mean_diff chart" test -s "$d/charts/before/mean_diff_mlp_output_pair0.png"
  check "$l: pca chart is a PNG" bash -c "head -c 8 '$d/charts/after/pca_mlp_output_layer_0_pair0.png' | od -An -c | grep -q 'P   N   G'"
  check "$l: importance chart" test -s "$d/charts/layer_importance.png"
  check "$l: bias_after took the layers before the first removed one from bias_before" python3 -c "
import json; s = {x['id']: x for x in json.load(open('$d/results.json'))['steps'] if x.get('id')}
assert s['bias_after']['result']['reused_layers'] == min(s['pruned']['result']['removed_layers'])"
  check "$l: report.pdf" bash -c "head -c 5 '$d/report.pdf' | grep -q '%PDF-'"
  if command -v pdftoppm >/dev/null && command -v pdftotext >/dev/null; then
    rm -rf "$d/pages"; mkdir -p "$d/pages"
    pdftoppm -r 30 -png "$d/report.pdf" "$d/pages/p" 2>/dev/null
    local n; n=$(ls "$d/pages" | wc -l)
    check "$l: every page renders ($n pages)" test "$n" -ge 3
    local txt; txt=$(pdftotext "$d/report.pdf" - 2>"$d/pdftotext.err")
    check "$l: pdftotext prints no warnings ($(head -c 200 "$d/pdftotext.err"))" test ! -s "$d/pdftotext.err"
    if command -v qpdf >/dev/null; then check "$l: qpdf --check" qpdf --check "$d/report.pdf"
    else echo "SKIP flagship.sh qpdf --check: qpdf not installed"; fi
    for want in "Steps" "Pruning" "Layer importance" "Bias" "Evaluation" "Recipe" "SHA-256" "perplexity"; do
      if grep -qi -- "$want" <<<"$txt"; then ok; else bad "$l: report lacks '$want'"; fi
    done
    local ppl; ppl=$(python3 -c "import json,sys; r=json.load(open('$d/results.json')); print('%.2f' % [s for s in r['steps'] if s['id']=='eval_pruned'][0]['result']['perplexity'])")
    if grep -q -- "$ppl" <<<"$txt"; then ok; else bad "$l: report lacks the perplexity $ppl"; fi
  else
    echo "SKIP flagship.sh report rendering: pdftoppm/pdftotext not installed"
  fi
}

# the synthetic run also switches on the optional benchmark step (the suite's tiny tasks)
T=$SRC/tests/golden/bench_tiny
expect_ok "flagship on the synthetic model" "$R" --set output_dir="$WORK/syn" --quiet \
  --set bench=true --set bench_tasks="$T/tiny_mc.jsonl,$T/tiny_partial.jsonl,$T/tiny_cloze.jsonl" \
  --set bench_limit=4
check_run "$WORK/syn" synthetic
check "synthetic: the benchmark step ran against the parent" python3 -c "
import json; d = json.load(open('$WORK/syn/results.json'))
s = [s for s in d['steps'] if s['id'] == 'bench_pruned'][0]
assert not s.get('skipped') and s['result']['tasks']['tiny_mc']['n'] == 4 and 'parent' in s['result']"
if command -v pdftotext >/dev/null; then
  check "synthetic: report has the Benchmarks section" bash -c "pdftotext '$WORK/syn/report.pdf' - | grep -q 'tiny_mc (n = 4)'"
fi

if [ -n "${ASAN_OPTIONS:-}" ]; then
  # the same code paths as the synthetic run; its numbers are checked in the release run
  echo "SKIP flagship.sh stories260K run under the sanitizers (checked in the release run)"
elif have_shared; then
  expect_ok "flagship on stories260K" "$R" --set model="$SHARED/models/stories260K" \
    --set calib="$SHARED/data/brown-calib.jsonl" --set eval="$SHARED/data/brown-eval.jsonl" \
    --set output_dir="$WORK/stories" --quiet
  check_run "$WORK/stories" stories260K
  check "stories: 2 layers removed" grep -q '"layers_removed": 2' "$WORK/stories/results.json"
  # the same run without reuse (bias_after runs every layer): the same bias metrics and charts
  sed -e '/reuse: bias_before/d' -e '/keep_states: true/d' "$R" >"$WORK/noreuse.yaml"
  expect_ok "flagship on stories260K without reuse" "$WORK/noreuse.yaml" \
    --set model="$SHARED/models/stories260K" --set calib="$SHARED/data/brown-calib.jsonl" \
    --set eval="$SHARED/data/brown-eval.jsonl" --set output_dir="$WORK/stories-noreuse" --quiet
  check "stories: bias_after reused layers" python3 -c "
import json; s = [x for x in json.load(open('$WORK/stories/results.json'))['steps'] if x.get('id') == 'bias_after'][0]
assert s['result']['reused_layers'] > 0"
  check "stories: reuse gives the same bias metrics" diff -r "$WORK/stories/bias" "$WORK/stories-noreuse/bias"
  check "stories: reuse gives the same charts" diff -r "$WORK/stories/charts" "$WORK/stories-noreuse/charts"
else
  echo "SKIP flagship.sh stories260K run: ../shared not found"
fi
finish
