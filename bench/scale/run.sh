#!/usr/bin/env bash
# Scale benchmark (DESIGN §5; not in CI): builds the release binary into build-release/, runs
# bench/scale/scale.py for each OBJECTS:WATCHERS pair (default 100:10 100:1000 10000:10
# 10000:1000) and records the table in bench/README.md ("Scale"). Run it on an idle machine.
#
# Usage: bench/scale/run.sh [OBJECTS:WATCHERS ...]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BUILD="$ROOT/build-release"
cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
ninja -C "$BUILD" dataplane-aggregator >/dev/null
ulimit -n 65536 2>/dev/null || true

OUT="$(mktemp /tmp/dpa-scale.XXXXXX)"
/usr/bin/python3 "$ROOT/bench/scale/scale.py" "$BUILD" "$@" | tee "$OUT"

OUT="$OUT" COMMIT="$(git -C "$ROOT" rev-parse --short HEAD)" HOSTINFO="$(nproc) cores, $(uname -sr)" \
  python3 - "$ROOT/bench/README.md" <<'PY'
import datetime, os, re, sys
path = sys.argv[1]
section = f"""## Scale

`bench/scale/run.sh` ({datetime.date.today()}, commit {os.environ["COMMIT"]}, {os.environ["HOSTINFO"]}, release
build, SQLite store): N DataPlaneServices created one by one over one connection; once the store
is quiet (the availability controller writes each one's status) they are listed and the RSS taken,
then W watches started at the list's resourceVersion (all at once; the time until every one has
its response head) and one more object created; the delay is from that create until each watcher
read its ADDED event. Last, 20 more objects are applied one at a time, each timed from the
create's response until a query to its group is routed. Targets (DESIGN §5): every watcher within
100 ms at p99 at both sizes, a list of 10,000 under 100 ms, RSS at 10,000 under 60 MB.
Creates wait for SQLite's fsync, so their rate moves with the disk from run to run (860-1240/s on
2026-11-27; alternating runs of two commits differ less than that).

{open(os.environ["OUT"]).read().strip()}

"""
text = open(path).read()
pattern = re.compile(r"## Scale\n.*?(?=^## |\Z)", re.S | re.M)
text = pattern.sub(section, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section
open(path, "w").write(text)
PY
rm -f "$OUT"
