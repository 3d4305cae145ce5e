#!/usr/bin/env bash
# Builds everything with ThreadSanitizer into build-tsan/ and runs the unit tests (DESIGN §8: data
# races are defects like any other). The integration tests are left to scripts/test.sh: they time
# out under TSan's 5-15x slowdown on this machine. Not part of CI (a second full build does not
# fit its time budget); run it after changing anything that crosses threads.
# Extra arguments go to ctest, e.g. `scripts/tsan.sh -R http_test`.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-deps.sh
cmake -S . -B build-tsan -G Ninja -DDPA_TSAN=ON -DCMAKE_BUILD_TYPE=Debug \
  -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g1" >/dev/null
ninja -C build-tsan

# gRPC, protobuf and abseil come from Debian uninstrumented: their internal synchronisation is
# invisible to TSan, so reports whose every frame is inside them are suppressed (see the file).
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$PWD/tests/sanitizers/tsan.supp"
ctest --test-dir build-tsan --output-on-failure --timeout 1800 -j2 -E '^integration\.' "$@"
