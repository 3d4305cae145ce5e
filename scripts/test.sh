#!/usr/bin/env bash
# Sets up and runs the whole test suite: installs the Debian packages, builds everything once with
# AddressSanitizer + UndefinedBehaviorSanitizer into build/ (incremental on later runs), then runs
# the unit tests and the integration tests (real binary, real plugins, kubectl, curl, Prometheus),
# then each libFuzzer target for a few seconds (scripts/fuzz.sh).
# Extra arguments go to ctest, e.g. `scripts/test.sh -R integration`.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-deps.sh
cmake -S . -B build -G Ninja -DDPA_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-O0 -g1" >/dev/null
ninja -C build

export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=0"
export LSAN_OPTIONS="suppressions=$PWD/tests/sanitizers/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
# Timing-sensitive tests on a loaded 2-core machine get one retry; a real failure fails twice.
ctest --test-dir build --output-on-failure --timeout 900 -j2 --repeat until-pass:2 "$@"

# The whole suite (no ctest arguments) also runs every fuzz target briefly (DESIGN §8); longer
# runs: scripts/fuzz.sh SECONDS.
if [ $# -eq 0 ]; then
  ./scripts/fuzz.sh "${DPA_FUZZ_SECONDS:-10}"
fi
