# lib.bash — tiny assertion helpers for the end-to-end tests (sourced, not a test).
# Each test script gets: $1 = path of the pfrun binary, $2 = ../shared (may be absent).
PFRUN=${1:?usage: test.sh PFRUN [SHARED]}
SHARED=${2:-}
SRC=${PF_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/pfe2e-XXXXXX") && [ -d "$WORK" ] || { echo "lib.bash: cannot make a work folder" >&2; exit 1; }
export PFRUN_CACHE=${PFRUN_CACHE:-$WORK/cache}
trap 'rm -rf "$WORK"' EXIT
# recipes resolve relative paths against the current folder, as a user running
# them from the repository root would
cd "$SRC" || exit 1
PASS=0
FAIL=0
OUT=""

ok() { PASS=$((PASS + 1)); }
bad() { FAIL=$((FAIL + 1)); echo "FAIL: $*" >&2; }

# run CMD...: runs pfrun with args, output in $OUT, status in $RC
run() { OUT=$("$PFRUN" "$@" 2>&1); RC=$?; }

# expect_ok DESC ARGS...: exit 0
expect_ok() {
  local d=$1; shift; run "$@"
  if [ "$RC" -eq 0 ]; then ok; else bad "$d: exit $RC: $OUT"; fi
}
# expect_fail DESC NEEDLE ARGS...: non-zero exit, output contains NEEDLE, no crash (< 128)
expect_fail() {
  local d=$1 needle=$2; shift 2; run "$@"
  if [ "$RC" -ne 0 ] && [ "$RC" -lt 128 ] && grep -qF -- "$needle" <<<"$OUT"; then ok
  else bad "$d: exit $RC, wanted failure containing '$needle', got: $OUT"; fi
}
# expect_in DESC NEEDLE: last output contains NEEDLE
expect_in() {
  if grep -qF -- "$2" <<<"$OUT"; then ok; else bad "$1: '$2' not in: $OUT"; fi
}
# check DESC CMD...: a shell condition
check() { local d=$1; shift; if "$@"; then ok; else bad "$d"; fi; }

have_shared() { [ -n "$SHARED" ] && [ -d "$SHARED/models/stories260K" ]; }

finish() {
  echo "$(basename "$0" .sh): $PASS passed, $FAIL failed"
  [ "$FAIL" -eq 0 ]
}
