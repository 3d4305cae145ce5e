# dataplane-aggregator on Debian 12: build stage with the same dependency script as CI, then a slim
# runtime with the binary and the example plugins.
FROM debian:12 AS build
WORKDIR /src
COPY scripts/install-deps.sh scripts/install-deps.sh
RUN ./scripts/install-deps.sh
COPY . .
RUN cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF -DDPA_WERROR=OFF \
 && ninja -C /build dataplane-aggregator plugins

FROM debian:12-slim
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends \
      libgrpc++1.51 libprotobuf32 libnghttp2-14 libyaml-cpp0.7 libyaml-0-2 libsqlite3-0 libssl3 libprometheus-cpp-core1.0 ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /build/aggregator/dataplane-aggregator /usr/local/bin/dataplane-aggregator
COPY --from=build /build/plugins-dist /var/lib/dataplane-aggregator/plugins
COPY examples /usr/share/dataplane-aggregator/examples
EXPOSE 8080 8443
VOLUME /var/lib/dataplane-aggregator/data
# Listening on every address is safe by default: without authentication flags the first start
# writes an admin token to /var/lib/dataplane-aggregator/data/admin.token and answers anything
# without it with 401.
ENTRYPOINT ["dataplane-aggregator", "--bind-address", "0.0.0.0", \
            "--data-dir", "/var/lib/dataplane-aggregator/data", \
            "--plugins-dir", "/var/lib/dataplane-aggregator/plugins"]
# The example datasources, as ./scripts/run.sh starts with; `docker run IMAGE --datasources FILE`
# (or any other flags) replaces them.
CMD ["--datasources", "/usr/share/dataplane-aggregator/examples/provisioning/datasources.yaml"]
