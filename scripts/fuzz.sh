#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz (clang 14, libFuzzer, AddressSanitizer and
# UndefinedBehaviorSanitizer) into build-fuzz/ and runs each for SECONDS (default 60) from its
# seed corpus. A crash, leak or sanitizer report fails the script; the input that caused it is
# left in build-fuzz/findings/<target>/ (turn it into a unit test, then add it to the seeds).
# New inputs that reach new code are kept in build-fuzz/corpus/<target>/ between runs.
#
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]
# FUZZ_TIMEOUT (default 10) is libFuzzer's per-input -timeout in seconds; the long runs use 60 so that
# an input left unscheduled on a busy machine is not reported as a hang.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_PER_TARGET="${1:-60}"
shift || true
ALL=(fuzz_body_decode fuzz_selectors fuzz_patches fuzz_arrow_frames fuzz_frame_json
     fuzz_request_auth fuzz_auth_files fuzz_plugin_handshake fuzz_provisioning fuzz_http_session
     fuzz_http_client_response fuzz_websocket_frames fuzz_h2_reply)
TARGETS=("${@:-${ALL[@]}}")

./scripts/install-deps.sh
cmake -S . -B build-fuzz -G Ninja -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14 \
  -DDPA_FUZZ=ON -DDPA_WERROR=OFF -DBUILD_TESTING=OFF -DCMAKE_BUILD_TYPE=Debug \
  -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g1" >/dev/null
ninja -C build-fuzz "${TARGETS[@]}"

export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
status=0
printf '%-26s %12s %8s %s\n' target executions corpus result
for target in "${TARGETS[@]}"; do
  corpus="build-fuzz/corpus/$target"
  findings="build-fuzz/findings/$target"
  mkdir -p "$corpus" "$findings"
  log="build-fuzz/$target.log"
  if "build-fuzz/tests/fuzz/$target" -max_total_time="$SECONDS_PER_TARGET" -timeout="${FUZZ_TIMEOUT:-10}" \
       -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 -artifact_prefix="$findings/" \
       "$corpus" "tests/fuzz/corpus/$target" >"$log" 2>&1; then
    result=ok
  else
    result="FAILED (see $log, input in $findings/)"
    status=1
  fi
  runs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -n1 || echo '?')"
  printf '%-26s %12s %8s %s\n' "$target" "$runs" "$(ls "$corpus" | wc -l)" "$result"
done
exit $status
