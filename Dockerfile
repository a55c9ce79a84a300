# switchyard: the server and its vendor plugins, run as a non-root user.
#
#   docker build -t switchyard .
#   docker run -p 8080:8080 -v switchyard-data:/var/lib/switchyard \
#     -v ./routes.d:/etc/switchyard/routes.d:ro -e ACME_WATSI_SECRET=... switchyard
#
# The image's /etc/switchyard/routes.yaml is deploy/routes.yaml: it includes every team file
# mounted in /etc/switchyard/routes.d. Mount a whole /etc/switchyard to replace it.

FROM rust:1-bookworm AS builder
WORKDIR /src
COPY . .
# Builds the core and every plugin (the workspace's default members) against Cargo.lock.
RUN cargo build --release --locked \
 && mkdir /out \
 && cp target/release/switchyard target/release/libswitchyard_*.so /out/

FROM debian:bookworm-slim
# curl: the HEALTHCHECK below. The binary's TLS roots are built in, so no ca-certificates.
RUN apt-get update \
 && apt-get install -y --no-install-recommends curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/switchyard \
      --shell /usr/sbin/nologin switchyard \
 && mkdir -p /var/lib/switchyard /etc/switchyard/routes.d \
 && chown switchyard:switchyard /var/lib/switchyard \
 && chmod 0700 /var/lib/switchyard
# The plugins beside the binary: where the server looks when plugins_dir is not set.
COPY --from=builder /out/ /opt/switchyard/
COPY deploy/routes.yaml /etc/switchyard/routes.yaml
ENV SWITCHYARD_CONFIG=/etc/switchyard/routes.yaml \
    SWITCHYARD_LISTEN=0.0.0.0:8080
USER switchyard
WORKDIR /var/lib/switchyard
VOLUME /var/lib/switchyard
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
ENTRYPOINT ["/opt/switchyard/switchyard"]
CMD ["serve"]
