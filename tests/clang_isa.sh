#!/usr/bin/env bash
# clang_isa.sh — the files with ISA-targeted regions (PF_KERN_AVX512_BEGIN, GCC target
# pragmas) compile with clang too, as the fuzzing build (scripts/fuzz.sh, clang only)
# needs: clang ignores "#pragma GCC target", and an AVX-512 intrinsic in a function it
# compiled without the feature is an error only at code generation, so this compiles
# (-c), not just parses. Skips (77) when clang is not installed.
#   bash tests/clang_isa.sh SOURCE_DIR
set -uo pipefail
src=${1:?usage: clang_isa.sh SOURCE_DIR}
cc=$(command -v clang || command -v clang-14 || true)
[ -n "$cc" ] || { echo "SKIP clang_isa: clang not found"; exit 77; }
cd "$src" || exit 1
mapfile -t files < <(grep -rlE 'PF_KERN_AVX512_BEGIN|pragma GCC target' runtime ops --include='*.c' | sort)
[ ${#files[@]} -gt 0 ] || { echo "FAIL: no file with an ISA region found"; exit 1; }
incs=()
while IFS= read -r d; do incs+=("-I$d"); done < <(find runtime ops reports -type d)
out=$(mktemp -d) && trap 'rm -rf "$out"' EXIT
fail=0
for f in "${files[@]}"; do
  if ! msg=$("$cc" -c -O1 -march=x86-64-v3 -fopenmp -D_GNU_SOURCE -Wno-unknown-pragmas \
    -isystem /usr/include/cjson "${incs[@]}" "$f" -o "$out/x.o" 2>&1); then
    echo "FAIL: clang cannot compile $f:"; grep -m5 'error:' <<<"$msg"; fail=1
  else
    echo "ok: $f"
  fi
done
exit $fail
