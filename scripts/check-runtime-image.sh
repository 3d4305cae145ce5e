#!/usr/bin/env bash
# Proves the Dockerfile's runtime stage without a container runtime (none can run here): builds a
# Debian 12 root with `debootstrap --variant=minbase bookworm`, installs exactly the packages the
# Dockerfile's runtime stage installs (read from the Dockerfile, so the two cannot drift), copies
# in the release binary, the plugins and the examples as its COPY lines do, checks that every
# executable finds its shared libraries there, then runs the aggregator in a chroot with the
# Dockerfile's ENTRYPOINT and CMD arguments (what `docker run IMAGE` runs), applies
# examples/datasource.yml with kubectl and runs examples/query.json through it. A missing library
# fails the script with its name.
#
# Usage (root): scripts/check-runtime-image.sh
#   MIRROR    Debian mirror for debootstrap (default http://deb.debian.org/debian)
#   KEEP=1    leave the root file system in place (its path is printed)
#   DOCKERFILE  the Dockerfile to prove (default: the repository's)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BUILD="$ROOT/build-release"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"
DOCKERFILE="${DOCKERFILE:-$ROOT/Dockerfile}"
started=$(date +%s)
say() { echo "check-runtime-image: $*"; }
fail() { echo "check-runtime-image: FAILED: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || fail "run as root (debootstrap and chroot)"
command -v debootstrap >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null

# What the Dockerfile's runtime stage says, parsed from the Dockerfile itself.
eval "$(python3 - "$DOCKERFILE" <<'PY'
import json, re, shlex, sys
text = open(sys.argv[1]).read().replace("\\\n", " ")
stages = re.split(r"^FROM ", text, flags=re.M)
runtime = stages[-1]
base = runtime.split()[0]
install = re.search(r"apt-get install ([^&]*)", runtime).group(1).split()
packages = [w for w in install if not w.startswith("-")]
copies = []
for line in runtime.splitlines():
    m = re.match(r"\s*COPY\s+(--from=\S+\s+)?(\S+)\s+(\S+)\s*$", line)
    if m:
        copies.append((m.group(1) is not None, m.group(2), m.group(3)))
entry = json.loads(re.search(r"^ENTRYPOINT\s+(\[.*\])\s*$", runtime, re.M).group(1))
cmd = re.search(r"^CMD\s+(\[.*\])\s*$", runtime, re.M)
entry += json.loads(cmd.group(1)) if cmd else []  # what `docker run IMAGE` runs
print("BASE=%s" % shlex.quote(base))
print("PACKAGES=(%s)" % " ".join(shlex.quote(p) for p in packages))
print("COPIES=(%s)" % " ".join(shlex.quote("%d|%s|%s" % c) for c in copies))
print("ENTRYPOINT=(%s)" % " ".join(shlex.quote(a) for a in entry))
PY
)"
[ "$BASE" = "debian:12-slim" ] || fail "the runtime stage is based on $BASE, not debian:12-slim"
say "runtime packages: ${PACKAGES[*]}"

say "release build (binary and plugins)"
cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
ninja -C "$BUILD" dataplane-aggregator plugins >/dev/null

FS="$(mktemp -d /var/tmp/dpa-runtime-image.XXXXXX)"
agg_pid=""
cleanup() {
  [ -n "$agg_pid" ] && kill "$agg_pid" 2>/dev/null && wait "$agg_pid" 2>/dev/null || true
  for m in proc sys dev; do umount -R "$FS/$m" 2>/dev/null || umount -lR "$FS/$m" 2>/dev/null || true; done
  if [ "${KEEP:-0}" = 1 ]; then
    say "root file system kept in $FS"
  elif grep -q " $FS/" /proc/mounts; then
    # Never delete through a bind mount of the host's /dev or /sys.
    say "mounts remain under $FS: not removing it"
  else
    rm -rf --one-file-system "$FS"
  fi
}
trap cleanup EXIT

say "debootstrap --variant=minbase bookworm ($MIRROR)"
debootstrap --variant=minbase bookworm "$FS" "$MIRROR" >"$FS.debootstrap.log" 2>&1 \
  || { tail -20 "$FS.debootstrap.log"; fail "debootstrap"; }
rm -f "$FS.debootstrap.log"
mount -t proc proc "$FS/proc"
mount --rbind /sys "$FS/sys"
mount --rbind /dev "$FS/dev"
cp /etc/resolv.conf "$FS/etc/resolv.conf"

say "apt-get install the runtime stage's packages"
chroot "$FS" /usr/bin/env DEBIAN_FRONTEND=noninteractive sh -c \
  "apt-get update -qq && apt-get install -y -qq --no-install-recommends ${PACKAGES[*]} && rm -rf /var/lib/apt/lists/*" \
  >"$FS/apt.log" 2>&1 || { tail -20 "$FS/apt.log"; fail "apt-get install in the root"; }

for copy in "${COPIES[@]}"; do
  IFS='|' read -r from_build src dst <<<"$copy"
  if [ "$from_build" = 1 ]; then src="$BUILD/${src#/build/}"; else src="$ROOT/$src"; fi
  mkdir -p "$(dirname "$FS$dst")"
  cp -a "$src" "$FS$dst"
done

say "shared libraries of every executable"
missing=""
while IFS= read -r exe; do
  rel="/${exe#"$FS"/}"
  out="$(chroot "$FS" /usr/bin/ldd "$rel" 2>&1 || true)"
  case "$out" in *"not a dynamic executable"*) continue ;; esac
  libs="$(grep 'not found' <<<"$out" | awk '{print $1}' | sort -u | tr '\n' ' ' || true)"
  if [ -n "$libs" ]; then missing+="$rel: $libs"$'\n'; fi
done < <(find "$FS/usr/local/bin" "$FS/var/lib/dataplane-aggregator" -type f -perm -u+x)
[ -z "$missing" ] || fail "missing shared libraries:"$'\n'"$missing"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
secure=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
say "chroot: ${ENTRYPOINT[*]} --port $port --secure-port $secure"
chroot "$FS" "${ENTRYPOINT[@]}" --port "$port" --secure-port "$secure" >"$FS/aggregator.log" 2>&1 &
agg_pid=$!
data="$FS/var/lib/dataplane-aggregator/data"
for _ in $(seq 1 300); do
  [ -f "$data/aggregator.kubeconfig" ] && curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
  kill -0 "$agg_pid" 2>/dev/null || { cat "$FS/aggregator.log"; fail "the aggregator exited"; }
  sleep 0.1
done
curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null || { tail -20 "$FS/aggregator.log"; fail "not ready"; }

# The kubeconfig names paths inside the image: seen from here they are under $FS.
kubeconfig="$FS/host.kubeconfig"
sed "s|certificate-authority: /|certificate-authority: $FS/|" "$data/aggregator.kubeconfig" >"$kubeconfig"
KUBECONFIG="$kubeconfig" HOME="$FS/root" kubectl apply -f "$ROOT/examples/datasource.yml" \
  || { tail -20 "$FS/aggregator.log"; fail "kubectl apply"; }
token="$(cat "$data/admin.token")"
query="http://127.0.0.1:$port/apis/testdata.datasource.grafana.app/v0alpha1/namespaces/default/datasources/testdata/query"
ok=""
for _ in $(seq 1 100); do
  code=$(curl -s -o "$FS/query.out" -w '%{http_code}' -X POST "$query" -H "Authorization: Bearer $token" \
         -H 'Content-Type: application/json' -d @"$ROOT/examples/query.json" || true)
  if [ "$code" = 200 ] && grep -q '"frames"' "$FS/query.out"; then ok=1; break; fi
  sleep 0.1
done
[ -n "$ok" ] || { tail -20 "$FS/aggregator.log"; fail "query through the image answered $code"; }
say "OK: ${#PACKAGES[@]} runtime packages, apply and query through the image; $(( $(date +%s) - started )) s"
