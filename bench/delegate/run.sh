#!/usr/bin/env bash
# Delegate pass-through benchmark: our proxy vs a tuned nginx, side by side, same upstream, same
# wrk settings. Builds nothing itself.
#
#   bench/delegate/run.sh [AGGREGATOR_BIN [UPSTREAM_BIN]]
#
# Build first: ninja -C build-release dataplane-aggregator dpa_bench_upstream
# AGGREGATOR_BIN defaults to build-release/aggregator/dataplane-aggregator, run as the product
# runs (`--delegate-url`, every request through the front router, metrics on, access log at
# --log-level error). PROXY_CMD replaces it with any command, {PORT} and {UPSTREAM} substituted.
# UPSTREAM_BIN defaults to build-release/bench/delegate/dpa_bench_upstream.
#
# Pinning (2-core machine): wrk and the upstream share CPU ${LOAD_CPU:-1}; the proxy under test
# (ours with PROXY_THREADS I/O threads, nginx with worker_processes = cores) is not pinned, so it
# gets CPU 0 to itself plus whatever the load generator leaves of CPU 1. Both proxies get exactly
# the same treatment. Environment knobs: DURATION (10s), CONNECTIONS (64), WRK_THREADS (1),
# ROUNDS (2, alternating ours/nginx), PROXY_THREADS (nproc), README (bench/README.md; "-" = don't
# write).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
PROXY_BIN="${1:-$ROOT/build-release/aggregator/dataplane-aggregator}"
UPSTREAM_BIN="${2:-$ROOT/build-release/bench/delegate/dpa_bench_upstream}"
DURATION="${DURATION:-10s}"
CONNECTIONS="${CONNECTIONS:-64}"
WRK_THREADS="${WRK_THREADS:-1}"
ROUNDS="${ROUNDS:-2}"
LOAD_CPU="${LOAD_CPU:-1}"
PROXY_THREADS="${PROXY_THREADS:-$(nproc)}"
README="${README:-$ROOT/bench/README.md}"

for tool in wrk nginx taskset curl python3; do
  command -v "$tool" >/dev/null || { echo "missing tool: $tool" >&2; exit 1; }
done
[ -x "$UPSTREAM_BIN" ] || { echo "upstream binary not found: $UPSTREAM_BIN" >&2; exit 1; }
if [ -z "${PROXY_CMD:-}" ]; then
  [ -x "$PROXY_BIN" ] || { echo "proxy binary not found: $PROXY_BIN" >&2; exit 1; }
fi

WORK="$(mktemp -d /tmp/dpa-bench-delegate.XXXXXX)"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

wait_ready() {  # url
  for _ in $(seq 1 100); do
    if curl -fsS -o /dev/null "$1" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "not ready: $1" >&2
  return 1
}

stop_pid() {
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

# wrk latency values come as 812.00us / 1.23ms / 1.02s; print milliseconds.
to_ms() {
  awk -v v="$1" 'BEGIN {
    if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
    else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
    else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.3f", v * 1000 }
    else printf "%s", v }'
}

run_wrk() {  # name url -> appends "name rps p50 p99" to $WORK/results
  local name="$1" url="$2" out="$WORK/wrk-$1-$RANDOM.txt"
  taskset -c "$LOAD_CPU" wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d2s "$url" >/dev/null  # warm-up
  taskset -c "$LOAD_CPU" wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$url" >"$out"
  local rps p50 p99 errors
  rps="$(awk '/^Requests\/sec:/ {print $2}' "$out")"
  p50="$(to_ms "$(awk '$1 == "50%" {print $2}' "$out")")"
  p99="$(to_ms "$(awk '$1 == "99%" {print $2}' "$out")")"
  errors="$(awk '/Non-2xx|Socket errors/ {print}' "$out" | tr '\n' ' ')"
  echo "$name $rps $p50 $p99" >>"$WORK/results"
  printf '%-8s %10s req/s  p50 %8s ms  p99 %8s ms  %s\n' "$name" "$rps" "$p50" "$p99" "$errors"
}

UPSTREAM_PORT="$(free_port)"
taskset -c "$LOAD_CPU" "$UPSTREAM_BIN" --port "$UPSTREAM_PORT" --threads 1 &
PIDS+=($!)
wait_ready "http://127.0.0.1:$UPSTREAM_PORT/"

start_ours() {
  OURS_PORT="$(free_port)"
  if [ -n "${PROXY_CMD:-}" ]; then
    local cmd="${PROXY_CMD//\{PORT\}/$OURS_PORT}"
    cmd="${cmd//\{UPSTREAM\}/http://127.0.0.1:$UPSTREAM_PORT}"
    bash -c "exec $cmd" >"$WORK/ours.log" 2>&1 &
  else
    rm -rf "$WORK/aggregator-data"
    # Anonymous and AlwaysAllow, as nginx checks nothing either (bench/auth/run.sh measures
    # what authentication adds).
    "$PROXY_BIN" --port "$OURS_PORT" --secure-port -1 --anonymous-auth \
      --threads "$PROXY_THREADS" --log-level error \
      --data-dir "$WORK/aggregator-data" \
      --delegate-url "http://127.0.0.1:$UPSTREAM_PORT" >"$WORK/ours.log" 2>&1 &
  fi
  OURS_PID=$!
  PIDS+=("$OURS_PID")
  wait_ready "http://127.0.0.1:$OURS_PORT/"
}

start_nginx() {
  NGINX_PORT="$(free_port)"
  mkdir -p "$WORK/nginx"
  cat >"$WORK/nginx/nginx.conf" <<EOF
# Tuned as a fair peer (reference §3.2): worker_processes = cores, upstream keep-alive with
# HTTP/1.1 and an empty Connection header, access_log off.
worker_processes $(nproc);
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path $WORK/nginx/body;
  proxy_temp_path $WORK/nginx/proxy;
  fastcgi_temp_path $WORK/nginx/fastcgi;
  uwsgi_temp_path $WORK/nginx/uwsgi;
  scgi_temp_path $WORK/nginx/scgi;
  keepalive_requests 1000000;
  upstream backend {
    server 127.0.0.1:$UPSTREAM_PORT;
    keepalive 256;
  }
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
EOF
  nginx -p "$WORK/nginx" -e "$WORK/nginx/error.log" -c "$WORK/nginx/nginx.conf" -g 'daemon off;' &
  NGINX_PID=$!
  PIDS+=("$NGINX_PID")
  wait_ready "http://127.0.0.1:$NGINX_PORT/"
}

echo "wrk -t$WRK_THREADS -c$CONNECTIONS -d$DURATION --latency; wrk+upstream on CPU $LOAD_CPU; $ROUNDS rounds"
: >"$WORK/results"
for round in $(seq 1 "$ROUNDS"); do
  start_ours
  run_wrk ours "http://127.0.0.1:$OURS_PORT/"
  stop_pid "$OURS_PID"
  start_nginx
  run_wrk nginx "http://127.0.0.1:$NGINX_PORT/"
  stop_pid "$NGINX_PID"
done

# Mean over rounds.
summary="$(awk '{ n[$1]++; r[$1]+=$2; a[$1]+=$3; b[$1]+=$4 }
  END {
    printf "%s %.0f %.3f %.3f\n", "ours", r["ours"]/n["ours"], a["ours"]/n["ours"], b["ours"]/n["ours"];
    printf "%s %.0f %.3f %.3f\n", "nginx", r["nginx"]/n["nginx"], a["nginx"]/n["nginx"], b["nginx"]/n["nginx"];
  }' "$WORK/results")"
read -r _ ours_rps ours_p50 ours_p99 <<<"$(echo "$summary" | sed -n 1p)"
read -r _ nginx_rps nginx_p50 nginx_p99 <<<"$(echo "$summary" | sed -n 2p)"
ratio="$(awk -v a="$ours_rps" -v b="$nginx_rps" 'BEGIN { printf "%.2f", a / b }')"
p99_ratio="$(awk -v a="$ours_p99" -v b="$nginx_p99" 'BEGIN { printf "%.2f", a / b }')"

table="$(cat <<EOF
| proxy | req/s | p50 (ms) | p99 (ms) |
|---|---:|---:|---:|
| dataplane-aggregator \`--delegate-url\` (\`$(basename "$(echo "${PROXY_CMD:-$PROXY_BIN}" | cut -d' ' -f1)")\`, $PROXY_THREADS I/O threads) | $ours_rps | $ours_p50 | $ours_p99 |
| nginx $(nginx -v 2>&1 | sed 's|.*nginx/||') (worker_processes $(nproc), upstream keepalive) | $nginx_rps | $nginx_p50 | $nginx_p99 |
| **ratio ours/nginx** | **${ratio}x** | | ${p99_ratio}x |
EOF
)"
echo
echo "$table"

if [ "$README" != "-" ]; then
  run_info="Run $(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')): wrk -t$WRK_THREADS -c$CONNECTIONS -d$DURATION --latency, mean of $ROUNDS alternating rounds; 1 KiB bodies, keep-alive both sides; wrk and the upstream pinned to CPU $LOAD_CPU, proxies unpinned. Target: ratio >= 1.2, p99 ratio <= 1.0."
  section="$(printf '%s\n\n%s\n\n%s\n' "$run_info" "$table" "Reproduce: \`bench/delegate/run.sh\` (see the script header for knobs).")"
  python3 - "$README" "$section" <<'PY'
import os, sys
path, section = sys.argv[1], sys.argv[2]
begin, end = "<!-- delegate-bench:begin -->", "<!-- delegate-bench:end -->"
text = open(path).read() if os.path.exists(path) else "# Benchmarks\n"
block = f"{begin}\n{section}\n{end}"
if begin in text and end in text:
    text = text[:text.index(begin)] + block + text[text.index(end) + len(end):]
else:
    text = text.rstrip("\n") + "\n\n## Delegate pass-through\n\n" + block + "\n"
open(path, "w").write(text)
PY
  echo "wrote $README"
fi
