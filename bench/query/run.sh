#!/usr/bin/env bash
# Query-path benchmark (DESIGN §5: added latency over calling the plugin directly, p50 < 150 us).
# Starts the testdata plugin once (go-plugin handshake, by hand), attaches the aggregator to it with
# --plugin-address, registers a DataPlaneService, then runs query_bench, which sends the same query
# through the aggregator over HTTP and straight to the plugin over gRPC, and writes the numbers to
# bench/README.md ("Query path").
#
# Usage: bench/query/run.sh [BUILD_DIR] [REQUESTS]   (BUILD_DIR holds dataplane-aggregator and
# plugins-dist/, e.g. build/; built with: ninja -C BUILD_DIR dataplane-aggregator gpx_testdata)
#
# AUTH selects how requests are authenticated and authorized (DESIGN §6), to measure what that adds:
#   off (default)  anonymous requests, AlwaysAllow: the figure recorded in bench/README.md
#   token-abac     a static bearer token (--token-auth-file) judged by an ABAC policy
#   webhook        a TokenReview and a SubjectAccessReview webhook, answers cached (warm cache)
# RECORD=0 only prints the JSON result (bench/auth/run.sh collects the three modes).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BUILD="${1:-$ROOT/build}"
REQUESTS="${2:-5000}"
AGG="$BUILD/aggregator/dataplane-aggregator"
PLUGIN_BIN="$(find "$BUILD/plugins-dist" -name 'gpx_testdata_linux_*' -type f | head -n1)"
[[ -x "$AGG" ]] || { echo "missing $AGG" >&2; exit 1; }
[[ -n "$PLUGIN_BIN" ]] || { echo "missing gpx_testdata under $BUILD/plugins-dist" >&2; exit 1; }

WORK="$(mktemp -d /tmp/dpa-query-bench.XXXXXX)"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# The driver: compiled against the build's generated protos.
DRIVER="$WORK/query_bench"
g++ -O2 -std=c++20 -I"$ROOT" -isystem "$BUILD/plugins/proto/gen" "$ROOT/bench/query/query_bench.cc" \
  "$BUILD/plugins/proto/libdpa_proto.a" $(pkg-config --cflags --libs grpc++ protobuf) -lpthread \
  -o "$DRIVER"

# 1. The plugin, as a host would start it (reference grafana-plugin-protocol.md §2.3-2.4).
mkfifo "$WORK/handshake"
grafana_plugin_type=datasource PLUGIN_PROTOCOL_VERSIONS=2 PLUGIN_MIN_PORT=10000 \
  PLUGIN_MAX_PORT=25000 GF_VERSION=12.0.0 "$PLUGIN_BIN" >"$WORK/handshake" 2>"$WORK/plugin.log" &
PIDS+=($!)
read -r LINE <"$WORK/handshake"
IFS='|' read -r _core _app NETWORK ADDRESS _proto <<<"$LINE"
if [[ "$NETWORK" == "unix" ]]; then TARGET="unix:$ADDRESS"; else TARGET="$ADDRESS"; fi
cat "$WORK/handshake" >/dev/null &  # keep draining the plugin's stdout

# 2. The aggregator, attached to that plugin, authenticating as AUTH says.
AUTH="${AUTH:-off}"
TOKEN=""
ADMIN="bench-admin-token-0123456789"
case "$AUTH" in
  off) AUTH_FLAGS=(--anonymous-auth) ;;
  token-abac)
    TOKEN="bench-user-token-0123456789"
    printf '%s,admin,0,"system:masters"\n%s,bench,1\n' "$ADMIN" "$TOKEN" >"$WORK/tokens.csv"
    printf '%s\n' '{"apiVersion":"abac.authorization.kubernetes.io/v1beta1","kind":"Policy","spec":{"user":"bench","apiGroup":"testdata.grafana.app","namespace":"default","resource":"datasources"}}' >"$WORK/abac.jsonl"
    AUTH_FLAGS=(--token-auth-file "$WORK/tokens.csv" --authorization-mode ABAC
                --authorization-policy-file "$WORK/abac.jsonl") ;;
  webhook)
    TOKEN="bench-user-token-0123456789"
    WEBHOOK_PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
    python3 "$ROOT/bench/auth/review_server.py" "$WEBHOOK_PORT" "$ADMIN" >"$WORK/webhook.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 1 100); do
      curl -s -o /dev/null "http://127.0.0.1:$WEBHOOK_PORT/" && break
      sleep 0.05
    done
    for f in authn:authenticate authz:authorize; do
      printf 'apiVersion: v1\nkind: Config\nclusters: [{name: w, cluster: {server: "http://127.0.0.1:%s/%s"}}]\nusers: [{name: u, user: {}}]\ncontexts: [{name: c, context: {cluster: w, user: u}}]\ncurrent-context: c\n' \
        "$WEBHOOK_PORT" "${f#*:}" >"$WORK/${f%%:*}.yaml"
    done
    AUTH_FLAGS=(--authentication-token-webhook-config-file "$WORK/authn.yaml" --authorization-mode Webhook
                --authorization-webhook-config-file "$WORK/authz.yaml") ;;
  *) echo "AUTH must be off, token-abac or webhook" >&2; exit 2 ;;
esac
# Only the testdata datasource: the aggregator refuses to start with a datasource whose plugin it
# does not have (the example file also lists Prometheus).
cat >"$WORK/datasources.yaml" <<'YAML'
apiVersion: 1
datasources:
  - name: TestData
    type: grafana-testdata-datasource
    uid: testdata
    orgId: 1
YAML
"$AGG" --port 0 --secure-port -1 --data-dir "$WORK/data" --log-level error "${AUTH_FLAGS[@]}" \
  --datasources "$WORK/datasources.yaml" \
  --plugin-address "grafana-testdata-datasource=$TARGET" >"$WORK/aggregator.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 200); do [[ -f "$WORK/data/aggregator.kubeconfig" ]] && break; sleep 0.05; done
URL="$(awk '/server:/ {print $2; exit}' "$WORK/data/aggregator.kubeconfig")"
[[ -n "$URL" ]] || { cat "$WORK/aggregator.log" >&2; exit 1; }
ADMIN_HEADER=(-H "Authorization: Bearer $ADMIN")
[[ "$AUTH" == off ]] && ADMIN_HEADER=()
USER_HEADER=()
[[ -n "$TOKEN" ]] && USER_HEADER=(-H "Authorization: Bearer $TOKEN")

curl -sf -X POST "$URL/apis/aggregation.grafana.app/v0alpha1/dataplaneservices" "${ADMIN_HEADER[@]}" \
  -H 'Content-Type: application/json' -d '{
  "apiVersion": "aggregation.grafana.app/v0alpha1", "kind": "DataPlaneService",
  "metadata": {"name": "v0alpha1.testdata.grafana.app"},
  "spec": {"pluginID": "grafana-testdata-datasource", "pluginType": "datasource",
           "group": "testdata.grafana.app", "version": "v0alpha1",
           "services": [{"type": "query"}]}}' >/dev/null
QUERY_URL="$URL/apis/testdata.grafana.app/v0alpha1/namespaces/default/datasources/testdata/query"
for _ in $(seq 1 200); do
  code="$(curl -s -o /dev/null -w '%{http_code}' -X POST "$QUERY_URL" "${USER_HEADER[@]}" -d @"$ROOT/examples/query.json" || true)"
  [[ "$code" == 200 ]] && break
  sleep 0.05
done

# 3. Measure.
RESULT="$("$DRIVER" --url "$URL" --grpc "$TARGET" --requests "$REQUESTS" --warmup 500 --token "$TOKEN")"
echo "$RESULT"
[[ "${RECORD:-1}" == 1 && "$AUTH" == off ]] || exit 0

# 4. Record.
RESULT="$RESULT" HOSTINFO="$(nproc) cores, $(uname -sr)" python3 - "$ROOT/bench/README.md" <<'PY'
import json, os, re, sys, datetime
path = sys.argv[1]
r = json.loads(os.environ["RESULT"])
d, v = r["direct_grpc"], r["via_aggregator"]
section = f"""## Query path

`bench/query/run.sh` ({datetime.date.today()}, {os.environ["HOSTINFO"]}; {r["requests"]} sequential
requests per path in 5 alternating rounds, one keep-alive connection / one gRPC channel each, after 500
warm-up requests; testdata `random_walk`, 60 points; both paths share the same 2 cores).
The same QueryData goes straight to the plugin over gRPC and through the aggregator as HTTP POST
`.../datasources/testdata/query` (JSON decode, PluginContext, gRPC, Arrow decode, frame JSON encode).

| path | p50 (us) | p90 (us) | p99 (us) | throughput (req/s) |
|---|---|---|---|---|
| plugin directly (gRPC QueryData) | {d["p50_us"]:.0f} | {d["p90_us"]:.0f} | {d["p99_us"]:.0f} | {d["throughput_rps"]:.0f} |
| through the aggregator (HTTP) | {v["p50_us"]:.0f} | {v["p90_us"]:.0f} | {v["p99_us"]:.0f} | {v["throughput_rps"]:.0f} |
| **added by the aggregator** | **{r["added_p50_us"]:.0f}** | | {r["added_p99_us"]:.0f} | |

Target: added p50 < 150 us ({"met" if r["added_p50_us"] < 150 else "NOT met"}).

"""
text = open(path).read() if os.path.exists(path) else "# Benchmarks\n\n"
pattern = re.compile(r"## Query path\n.*?(?=^## |\Z)", re.S | re.M)
text = pattern.sub(section, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section
open(path, "w").write(text)
PY
