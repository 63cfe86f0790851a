# syntax=docker/dockerfile:1
# The one image of every hub role: `hub ingest`, `hub process`, `hub sink ...`, `hub topology ...`,
# `hub schemas ...`, `hub readmodel migrate`, `hub demo`, `hub probe URL` (health checks).
#
#   docker build -t interchange/hub:0.1.0 .
#
# Build stage: a release build of the `hub` binary alone (`-p hub`; bench/ is copied only because
# cargo reads every workspace member's manifest: the `hub-bench` load generators are not built).
# rdkafka builds the bundled librdkafka with gcc, make and perl (all in the rust image), with
# OpenSSL for Kafka TLS (feature kafka-tls) and zlib compiled in (feature static-zlib). HTTP TLS
# (the edge, partner and registry clients) uses the same OpenSSL: one TLS stack.
FROM rust:1.95.0-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends pkg-config libssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock rustfmt.toml ./
COPY core core
COPY ingest ingest
COPY processors processors
COPY sinks sinks
COPY console console
COPY bench bench
# The read model's schema, compiled into core (include_str!).
COPY cql cql
COPY src src
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p hub --bin hub --features kafka-tls,static-zlib \
 && install -m 0755 target/release/hub /usr/local/bin/hub \
 && ldd /usr/local/bin/hub

# Runtime stage: distroless (glibc, libgcc, OpenSSL's libssl3, CA certificates; no shell, no
# package manager), as the unprivileged user 65532. Pinned by digest: refresh it deliberately
# (docker buildx imagetools inspect gcr.io/distroless/cc-debian12:nonroot).
FROM gcr.io/distroless/cc-debian12:nonroot@sha256:9dac0a79194e45a7da0158a9c6da57b217585af0786db3845d1f0ec1a0dd182f AS runtime
COPY --from=build /usr/local/bin/hub /usr/local/bin/hub
# The reference topology, its contracts and declared machines; mount your own over /etc/interchange.
COPY topology.toml /etc/interchange/topology.toml
COPY schemas /etc/interchange/schemas
COPY machines /etc/interchange/machines
ENV HUB_TOPOLOGY=/etc/interchange/topology.toml \
    HUB_LOG_FORMAT=json
USER 65532:65532
# ingest edge, processor health/metrics, sink health/metrics
EXPOSE 8080 9091 9095
ENTRYPOINT ["/usr/local/bin/hub"]
CMD ["--help"]
