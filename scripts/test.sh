#!/usr/bin/env bash
# The test command (README; .ci/run calls it): install deps, build, run the Check
# suites and end-to-end tests, then the same suite under ASan + UBSan.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
jobs=$(nproc 2>/dev/null || echo 2)

echo "== release build + tests"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$jobs"
cmake --build build -j"$jobs" --target benches # bench/ programs: built, so none rots unnoticed
ctest --test-dir build --output-on-failure -j"$jobs" --timeout 600

echo "== sanitizer build (ASan + UBSan) + tests"
# -O1, as AddressSanitizer's documentation recommends: the checks are the same, the
# suite runs about twice as fast as at -O0
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS_DEBUG="-g -O1" -DPF_SANITIZE=ON >/dev/null
cmake --build build-asan -j"$jobs"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan --output-on-failure -j"$jobs" --timeout 900
