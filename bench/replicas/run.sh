#!/usr/bin/env bash
# Replicas benchmark (DESIGN §7; not in CI): builds the release binary into build-release/, runs
# bench/replicas/replicas.py (3 etcd members, 3 replicas, all on this machine) and records the
# tables in bench/README.md ("Replicas on etcd"). Run it on an idle machine.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BUILD="$ROOT/build-release"
cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
ninja -C "$BUILD" dataplane-aggregator >/dev/null
ulimit -n 65536 2>/dev/null || true

OUT="$(mktemp /tmp/dpa-replicas.XXXXXX)"
/usr/bin/python3 "$ROOT/bench/replicas/replicas.py" "$BUILD" | tee "$OUT"

OUT="$OUT" COMMIT="$(git -C "$ROOT" rev-parse --short HEAD)" HOSTINFO="$(nproc) cores, $(uname -sr)" \
  python3 - "$ROOT/bench/README.md" <<'PY'
import datetime, os, re, sys
path = sys.argv[1]
section = f"""## Replicas on etcd

`bench/replicas/run.sh` ({datetime.date.today()}, commit {os.environ["COMMIT"]}, {os.environ["HOSTINFO"]},
release build): three etcd 3.4 members (Debian's `etcd-server`, data on disk, fsync on) and three
aggregator replicas with `--storage-backend=etcd3`, all on this machine, beside one aggregator on
SQLite. Creates are sequential per connection; apply-to-routable is timed from the create's
response (through replica i % 3) until a query to the new group is routed on all three replicas;
the watchers are spread evenly over the replicas and started at one list's resourceVersion.
Targets (issue "Scale-out"): apply-to-routable p99 under 100 ms, watchers p99 under 100 ms, one
etcd watch per replica.

{open(os.environ["OUT"]).read().strip()}

"""
text = open(path).read()
pattern = re.compile(r"## Replicas on etcd\n.*?(?=^## |\Z)", re.S | re.M)
text = pattern.sub(section, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section
open(path, "w").write(text)
PY
rm -f "$OUT"
