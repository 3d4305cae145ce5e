#!/usr/bin/env bash
# Installs the Debian 12 packages the build, the tests and the benchmarks need. Idempotent: packages
# already present are skipped by apt. Runs as root, or through sudo when it is available.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config ccache git curl ca-certificates openssl
  libboost-dev libssl-dev libyaml-cpp-dev libyaml-dev nlohmann-json3-dev prometheus-cpp-dev
  libgtest-dev libgmock-dev libbenchmark-dev libsqlite3-dev
  libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc libnghttp2-dev
  libflatbuffers-dev flatbuffers-compiler
  # scripts/fuzz.sh: libFuzzer targets built with clang.
  clang-14 libfuzzer-14-dev
  python3-kubernetes python3-yaml python3-grpcio python3-websocket
  prometheus wrk nginx-light haproxy procps psmisc iproute2
  # Go, grpc-go and go-plugin: tests/integration/test_go_plugin.py builds a plugin the way Grafana's are.
  golang-go golang-google-grpc-dev golang-github-hashicorp-go-plugin-dev golang-google-protobuf-dev
  # The etcd3 storage backend's tests start their own etcd members (DESIGN §7).
  etcd-server etcd-client
)

sudo=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: run as root or install sudo" >&2; exit 1; }
  sudo=sudo
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# kubectl is not packaged in Debian 12; the development machines and CI have it preinstalled.
command -v kubectl >/dev/null || echo "install-deps: kubectl not found; the kubectl tests will fail" >&2
