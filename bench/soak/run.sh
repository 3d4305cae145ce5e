#!/usr/bin/env bash
# Soak (DESIGN §8; not in CI): builds the release binary and the testdata plugin into
# build-release/, runs bench/soak/soak.py for SECONDS (default 600) and records its table and
# verdict in bench/README.md ("Soak"). Run it on an otherwise idle machine.
#
# Usage: bench/soak/run.sh [SECONDS]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
SECONDS_TO_RUN="${1:-600}"
BUILD="$ROOT/build-release"
cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
ninja -C "$BUILD" dataplane-aggregator gpx_testdata >/dev/null

OUT="$(mktemp /tmp/dpa-soak.XXXXXX)"
status=0
/usr/bin/python3 "$ROOT/bench/soak/soak.py" "$BUILD" "$SECONDS_TO_RUN" | tee "$OUT" || status=$?

OUT="$OUT" SECS="$SECONDS_TO_RUN" HOSTINFO="$(nproc) cores, $(uname -sr)" python3 - "$ROOT/bench/README.md" <<'PY'
import datetime, os, re, sys
path = sys.argv[1]
result = open(os.environ["OUT"]).read().strip()
section = f"""## Soak

`bench/soak/run.sh {os.environ["SECS"]}` ({datetime.date.today()}, {os.environ["HOSTINFO"]}, release build): queries
(4 workers), stream subscribers joining and leaving (2), watches (2), creates and deletes (1),
delegated GETs (1), a SIGKILL of the testdata plugin every 90 s and a delegate restart every 120 s;
the aggregator's RSS, open file descriptors and threads sampled every 10 s (see
bench/soak/soak.py for what counts as flat and as an expected 5xx).

{result}

"""
text = open(path).read()
pattern = re.compile(r"## Soak\n.*?(?=^## |\Z)", re.S | re.M)
text = pattern.sub(section, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section
open(path, "w").write(text)
PY
rm -f "$OUT"
exit $status
