# syntax=docker/dockerfile:1
#
# optinproxy as a container: a static binary on a distroless base, run as
# the unprivileged user nonroot (uid 65532). Build it with
#
#   docker build --build-arg VERSION="$(git describe --always --dirty)" -t optinproxy .
#
# and see docs/deploy.md for running it, alone or with docker-compose.yml.

# The builder's Go is the one go.mod names, so that the image is built as
# the tests were run.
FROM --platform=$BUILDPLATFORM golang:1.26.8 AS build
ARG TARGETOS
ARG TARGETARCH
ARG VERSION=dev
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# CGO_ENABLED=0 makes a static binary, which the distroless static base
# (no libc) needs; -trimpath keeps the build machine's paths out of it.
# deploy_test.go runs this same command and checks the result, so keep it
# on one line.
RUN CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath -ldflags="-s -w -X main.version=$VERSION" -o /out/optinproxy ./cmd/optinproxy
# The data folder (and keys/ in it, for the keys docker-compose.yml shares
# between proxies) is made here because the final image has no shell; a
# named volume mounted on one takes over its owner, the nonroot user.
RUN mkdir -p /out/data/keys

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/optinproxy /usr/local/bin/optinproxy
COPY --from=build --chown=65532:65532 /out/data /var/lib/optinproxy
COPY deploy/docker/optinproxy.yml /etc/optinproxy/config.yaml
# The configuration is a file, so that a file of one's own mounted over it
# (or named by OPTINPROXY_CONFIG) replaces it whole. Environment variables
# set here would override every user's file, which is why the image sets
# none but this one.
ENV OPTINPROXY_CONFIG=/etc/optinproxy/config.yaml
WORKDIR /var/lib/optinproxy
VOLUME /var/lib/optinproxy
USER 65532:65532
# SMTP (STARTTLS when smtp.tls is set) and HTTP (unsubscribe pages,
# webhooks, admin API, /healthz, /readyz, /metrics).
EXPOSE 2525 8080
ENTRYPOINT ["/usr/local/bin/optinproxy"]
CMD ["serve"]
