# syntax=docker/dockerfile:1
#
# shardbridge as a static binary on distroless, run as the non-root user.
#   docker build --build-arg VERSION=$(git describe --tags --always) -t shardbridge .
#   docker run -v $PWD/configs/compose.yaml:/etc/shardbridge/shardbridge.yaml:ro -p 8083:8083 shardbridge
# The config folder /etc/shardbridge is mounted, not baked in. Inside a container http.addr
# must be "0.0.0.0:8083" (with http.auth_token) for the API to be reachable.

# The Go toolchain of go.mod's go line, pinned.
FROM golang:1.26.8-bookworm AS build
WORKDIR /src
# Modules first, so a source change does not download them again.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" \
      -o /out/shardbridge ./cmd/shardbridge

# No shell, no package manager, CA certificates included (for AWS and MSK TLS).
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/shardbridge /shardbridge
# nonroot is uid 65532 in distroless images; nothing here needs root.
USER nonroot:nonroot
EXPOSE 8083
# The binary probes itself: distroless has no curl.
HEALTHCHECK --interval=10s --timeout=5s --start-period=15s --retries=3 \
  CMD ["/shardbridge","healthcheck","--url","http://127.0.0.1:8083/healthz"]
ENTRYPOINT ["/shardbridge"]
CMD ["run","--config","/etc/shardbridge"]
