#!/usr/bin/env bash
# fuzz.sh — build the libFuzzer harnesses (tests/fuzz/) and run each for a fixed time.
#
#   scripts/fuzz.sh                        # every harness, FUZZ_SECONDS each, two at a time
#   scripts/fuzz.sh fuzz_config fuzz_cli   # only these
#   FUZZ_SECONDS=60 scripts/fuzz.sh        # a quick pass
#
# Environment:
#   FUZZ_SECONDS   seconds per harness (default 600)
#   FUZZ_JOBS      harnesses run at the same time (default 2: one per core here)
#   FUZZ_BUILD     build folder (default build-fuzz)
#   FUZZ_NO_BUILD  set to 1 to reuse the binaries as they are
#   PF_SHARED      the ../shared folder (real tokenizers for fuzz_tokenizer_real)
#   CC             the compiler (default clang; libFuzzer needs clang)
#
# Per harness: the seeds are tests/fuzz/corpus/<harness>/ (read only; regenerate
# with tests/fuzz/make_seeds.sh), new inputs go to $FUZZ_BUILD/corpus/<harness>/,
# crashes, leaks, timeouts (> 10 s per input) and out-of-memory inputs (> 2 GB)
# to $FUZZ_BUILD/crashes/<harness>/, the log to $FUZZ_BUILD/logs/<harness>.log.
# At the end one summary line per harness (parsed from libFuzzer's
# -print_final_stats=1 and its last status line: executions, exec/s, coverage
# cov/ft, corpus entries/bytes, findings) is printed and written to
# $FUZZ_BUILD/fuzz-summary.txt. Reproduce a crash: $FUZZ_BUILD/<harness> FILE.
# Exit status: 0 when no harness found anything, 1 otherwise.
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
seconds="${FUZZ_SECONDS:-600}"
jobs="${FUZZ_JOBS:-2}"
build="${FUZZ_BUILD:-build-fuzz}"
shared="${PF_SHARED:-$root/../shared}"

# -max_len per harness: big enough for the seeds, small enough to stay fast.
declare -A max_len=(
  [fuzz_safetensors]=65536 [fuzz_safetensors_index]=65536 [fuzz_config]=16384
  [fuzz_tokenizer]=65536 [fuzz_tokenizer_real]=4096 [fuzz_recipe]=16384
  [fuzz_cli]=2048 [fuzz_dataset]=16384
)
all=(fuzz_safetensors fuzz_safetensors_index fuzz_config fuzz_tokenizer fuzz_tokenizer_real
  fuzz_recipe fuzz_cli fuzz_dataset)
if [[ $# -gt 0 ]]; then targets=("$@"); else targets=("${all[@]}"); fi
for t in "${targets[@]}"; do
  [[ -n "${max_len[$t]:-}" ]] || { echo "fuzz.sh: unknown harness '$t' (known: ${all[*]})" >&2; exit 2; }
done

if [[ "${FUZZ_NO_BUILD:-0}" != 1 ]]; then
  cmake -S . -B "$build" -DPF_FUZZ=ON -DCMAKE_C_COMPILER="${CC:-clang}" -DBUILD_TESTING=OFF \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPF_WERROR=OFF -DPF_SHARED_DIR="$shared" >/dev/null ||
    exit 1
  cmake --build "$build" -j"$(nproc)" --target "${targets[@]}" >"$build/fuzz-build.log" 2>&1 ||
    { tail -30 "$build/fuzz-build.log"; echo "fuzz.sh: build failed" >&2; exit 1; }
fi
build="$(cd "$build" && pwd)"
mkdir -p "$build/logs"

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
export OMP_NUM_THREADS=1

run_one() {
  local t="$1" crashes="$build/crashes/$1" corpus="$build/corpus/$1"
  mkdir -p "$crashes" "$corpus"
  date +%s >"$build/logs/$t.start"
  "$build/$t" "$corpus" "$root/tests/fuzz/corpus/$t" -max_total_time="$seconds" \
    -max_len="${max_len[$t]}" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$crashes/" >"$build/logs/$t.log" 2>&1
  echo $? >"$build/logs/$t.rc"
  date +%s >"$build/logs/$t.end"
}

echo "fuzz.sh: ${targets[*]} — ${seconds} s each, ${jobs} at a time"
running=0
for t in "${targets[@]}"; do
  if ((running >= jobs)); then
    wait -n
    running=$((running - 1))
  fi
  run_one "$t" &
  running=$((running + 1))
done
wait

final_stat() { sed -n "s/^stat::$2: *//p" "$1" | tail -1; }
found=0
{
  printf '%-24s %7s %12s %8s %8s %8s %12s %s\n' harness seconds executions exec/s cov ft corpus findings
  for t in "${targets[@]}"; do
    log="$build/logs/$t.log"
    secs=$(($(cat "$build/logs/$t.end") - $(cat "$build/logs/$t.start")))
    last="$(grep -E '(INITED|NEW|REDUCE|pulse|DONE|RELOAD) +cov:' "$log" | tail -1)"
    cov="$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")"
    ft="$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")"
    corp="$(sed -n 's/.* corp: \([0-9]*\/[0-9]*[a-zA-Z]*\).*/\1/p' <<<"$last")"
    nart="$(find "$build/crashes/$t" -type f -newer "$build/logs/$t.start" 2>/dev/null | wc -l)"
    rc="$(cat "$build/logs/$t.rc")"
    what="none"
    if [[ "$rc" != 0 || "$nart" != 0 ]]; then
      found=1
      what="rc=$rc: $(grep -m1 -E 'ERROR: |INVARIANT|runtime error' "$log" | cut -c1-100)"
    fi
    printf '%-24s %7s %12s %8s %8s %8s %12s %s\n' "$t" "$secs" \
      "$(final_stat "$log" number_of_executed_units)" "$(final_stat "$log" average_exec_per_sec)" \
      "${cov:-?}" "${ft:-?}" "${corp:-?}" "$what"
  done
} >"$build/fuzz-summary.txt" # not `| tee`: a pipeline's block runs in a subshell, and its
# found=1 was lost (a run with a finding exited 0)
cat "$build/fuzz-summary.txt"
exit "$found"
