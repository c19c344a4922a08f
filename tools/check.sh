#!/usr/bin/env bash
# check.sh - install what is needed, build with -Werror, and run every test (all ctest labels:
# unit, integration, slow, ...). This is the test command of README.md, and what CI runs.
#
#   tools/check.sh              build in build/ and run every test
#   tools/check.sh --sanitize   the same under AddressSanitizer + UndefinedBehaviorSanitizer,
#                               in build-asan/
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=build
ARGS=(-DRDT_WERROR=ON)
if [[ "${1:-}" == "--sanitize" ]]; then
    BUILD=build-asan
    ARGS+=(-DRDT_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug)
    export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
    export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
fi

tools/install-deps.sh
cmake -S . -B "$BUILD" "${ARGS[@]}"
cmake --build "$BUILD" -j"$(nproc)"
ctest --test-dir "$BUILD" --output-on-failure --timeout 900

# The hosts-file parser's libFuzzer target (clang), run for a bounded time.
if [[ "$BUILD" == build ]]; then
    CC=clang cmake -S . -B build-fuzz -DRDT_FUZZ=ON -DRDT_WERROR=ON >/dev/null
    cmake --build build-fuzz --target fuzz_hostfile -j"$(nproc)"
    ctest --test-dir build-fuzz -L fuzz --output-on-failure
fi
