#!/usr/bin/env bash
# What authentication and authorization add to a request (DESIGN §5: under 10 us p50): the query
# benchmark (bench/query/run.sh) run three times on one build, with AUTH=off (anonymous,
# AlwaysAllow), token-abac (static bearer token + ABAC) and webhook (TokenReview and
# SubjectAccessReview webhooks, warm cache), side by side; the table goes into bench/README.md.
#
# Usage: bench/auth/run.sh [BUILD_DIR] [REQUESTS]   (default build-release, 20000)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BUILD="${1:-$ROOT/build-release}"
REQUESTS="${2:-20000}"

declare -A RESULT
for mode in off token-abac webhook; do
  echo "AUTH=$mode" >&2
  RESULT[$mode]="$(AUTH=$mode RECORD=0 "$ROOT/bench/query/run.sh" "$BUILD" "$REQUESTS")"
done

OFF="${RESULT[off]}" TOKEN="${RESULT[token-abac]}" WEBHOOK="${RESULT[webhook]}" \
HOSTINFO="$(nproc) cores, $(uname -sr)" REQUESTS="$REQUESTS" python3 - "$ROOT/bench/README.md" <<'PY'
import datetime, json, os, re, sys
path = sys.argv[1]
rows = [("no authentication (anonymous, AlwaysAllow)", json.loads(os.environ["OFF"])),
        ("static bearer token + ABAC", json.loads(os.environ["TOKEN"])),
        ("token webhook + authorization webhook, warm cache", json.loads(os.environ["WEBHOOK"]))]
base = rows[0][1]["via_aggregator"]["p50_us"]
lines = []
for name, r in rows:
    v = r["via_aggregator"]
    lines.append(f"| {name} | {v['p50_us']:.0f} | {v['p99_us']:.0f} | {v['throughput_rps']:.0f} | "
                 f"{v['p50_us'] - base:+.0f} |")
worst = max(r["via_aggregator"]["p50_us"] - base for _, r in rows[1:])
section = f"""## Authentication and authorization

`bench/auth/run.sh` ({datetime.date.today()}, {os.environ["HOSTINFO"]}; {os.environ["REQUESTS"]}
requests per mode through the query path of `bench/query/run.sh`, one keep-alive connection, after
500 warm-up requests). The same query, authenticated and authorized three ways; the difference of the
p50s is what the check adds.

| mode | p50 (us) | p99 (us) | throughput (req/s) | p50 vs. no authentication (us) |
|---|---|---|---|---|
""" + "\n".join(lines) + f"""

Target: under 10 us added at p50 ({"met" if worst < 10 else "NOT met"}: at most {worst:+.0f} us).

"""
text = open(path).read()
pattern = re.compile(r"## Authentication and authorization\n.*?(?=^## |\Z)", re.S | re.M)
text = pattern.sub(section, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section
open(path, "w").write(text)
PY
