# switchyard: the server and its five vendor plugins, run as a non-root user.
#
#   docker build -t switchyard .
#   docker run -p 8080:8080 -v switchyard-data:/var/lib/switchyard \
#     -v switchyard-backups:/var/lib/switchyard-backups \
#     -v ./routes.d:/etc/switchyard/routes.d:ro -e ACME_WATSI_SECRET=... switchyard
#
# The image's /etc/switchyard/routes.yaml is deploy/routes.yaml: it includes every team file
# mounted in /etc/switchyard/routes.d. Mount a whole /etc/switchyard to replace it.
#
# Port 8080 is the public listener (/hooks/, /healthz). Port 9090 is the operator listener
# (/readyz, /metrics, /admin/): for Prometheus and the orchestrator on the internal network
# only; never publish it to the internet.

FROM rust:1-bookworm AS builder
WORKDIR /src
COPY . .
# The server and the shipped plugins only, not the test fixtures or the bench, against Cargo.lock.
RUN cargo build --release --locked -p switchyard -p switchyard-watsi -p switchyard-whatsable \
      -p switchyard-whatssync -p switchyard-wappcloud -p switchyard-docssmith \
 && mkdir /out \
 && cp target/release/switchyard target/release/libswitchyard_*.so /out/

FROM debian:bookworm-slim
# curl: the HEALTHCHECK below. The binary's TLS roots are built in, so no ca-certificates.
# Unpinned: the distribution's security updates are wanted at every build.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/switchyard \
      --shell /usr/sbin/nologin switchyard \
 && mkdir -p /var/lib/switchyard /var/lib/switchyard-backups /etc/switchyard/routes.d \
 && chown switchyard:switchyard /var/lib/switchyard /var/lib/switchyard-backups \
 && chmod 0700 /var/lib/switchyard /var/lib/switchyard-backups
# The plugins beside the binary: where the server looks when plugins_dir is not set.
COPY --from=builder /out/ /opt/switchyard/
COPY deploy/routes.yaml /etc/switchyard/routes.yaml
ENV SWITCHYARD_CONFIG=/etc/switchyard/routes.yaml \
    SWITCHYARD_LISTEN=0.0.0.0:8080 \
    SWITCHYARD_ADMIN_LISTEN=0.0.0.0:9090
USER 10001:10001
WORKDIR /var/lib/switchyard
# The store, and where `switchyard backup --to /var/lib/switchyard-backups/DATE` writes.
VOLUME ["/var/lib/switchyard", "/var/lib/switchyard-backups"]
EXPOSE 8080 9090
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["curl", "-fsS", "http://127.0.0.1:8080/healthz"]
ENTRYPOINT ["/opt/switchyard/switchyard"]
CMD ["serve"]
