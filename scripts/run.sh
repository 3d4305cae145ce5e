#!/usr/bin/env bash
# Sets up and runs the aggregator with its embedded defaults and the example testdata plugin:
# installs the Debian packages, builds a release binary into build-release/, then serves plain
# HTTP on 127.0.0.1:8080 and HTTPS on 127.0.0.1:8443 (self-signed). The first start writes an
# admin token (./dataplane-aggregator-data/admin.token) and a kubeconfig that uses it over HTTPS
# (./dataplane-aggregator-data/aggregator.kubeconfig).
# Extra arguments go to dataplane-aggregator, e.g. `scripts/run.sh --port 9000`.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-deps.sh
cmake -S . -B build-release -G Ninja -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF -DDPA_WERROR=OFF >/dev/null
ninja -C build-release dataplane-aggregator plugins
exec build-release/aggregator/dataplane-aggregator \
  --plugins-dir build-release/plugins-dist \
  --datasources examples/provisioning/datasources.yaml \
  --data-dir ./dataplane-aggregator-data "$@"
