# SpawnIt's container image: `docker build -t spawnit:latest .`
#
# Stage 1 builds the one binary with the locked dependencies; stage 2 is a slim Debian with CA
# certificates (for S3 and AWS over HTTPS) and that binary, run as the non-root user 10001.
# `spawnit serve` listens on 0.0.0.0:8080 with its store on the /data volume, or on S3 when
# SPAWNIT_STORE=s3://bucket/prefix is set (with SPAWNIT_S3_ENDPOINT for an S3-compatible server
# and the standard AWS_* variables). To deploy services it needs the Docker engine's socket:
#   docker run -d -p 127.0.0.1:8080:8080 -v spawnit-data:/data \
#     -v /var/run/docker.sock:/var/run/docker.sock \
#     --group-add "$(stat -c %g /var/run/docker.sock)" spawnit:latest
# The catalog's admin-only `spawnit` template does the same as N replicas behind a load balancer.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p spawnit \
    && install -m 0755 target/release/spawnit /usr/local/bin/spawnit

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 spawnit \
    && useradd --uid 10001 --gid 10001 --home-dir /data --no-create-home --shell /usr/sbin/nologin spawnit \
    && mkdir /data \
    && chown 10001:10001 /data
COPY --from=build /usr/local/bin/spawnit /usr/local/bin/spawnit
USER 10001:10001
WORKDIR /data
ENV SPAWNIT_LISTEN=0.0.0.0:8080 \
    SPAWNIT_DATA=/data
VOLUME /data
EXPOSE 8080
# No curl in a slim image: the binary checks its own /healthz (at SPAWNIT_LISTEN's port).
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 CMD ["spawnit", "healthcheck"]
ENTRYPOINT ["spawnit"]
CMD ["serve"]
