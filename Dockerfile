# syntax=docker/dockerfile:1
# The ideapool image: one static binary (server, operator, CLI) and the same
# binary as kubectl-ideapool, on distroless static, as a non-root user.
#
#   make docker-build docker-push IMG=ghcr.io/ideapool/ideapool:0.1.0
#
# `make image` builds the same image without docker (hack/image); its test
# parses this file and fails when the two disagree.
ARG GO_VERSION=1.26

FROM golang:${GO_VERSION} AS build
WORKDIR /src
# Dependencies first, so that code changes do not re-download them.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
# Static (no cgo): the runtime image has no libc. e2e/helm_test.go builds the
# binary with these same flags and checks it is static and stamped.
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/ideapool . \
 && cp /out/ideapool /out/kubectl-ideapool

FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
LABEL org.opencontainers.image.title="ideapool" \
      org.opencontainers.image.description="Identity and idea-pool service, its Kubernetes operator and kubectl plugin" \
      org.opencontainers.image.source="https://github.com/ideapool/ideapool" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=build /out/ideapool /out/kubectl-ideapool /usr/local/bin/
# The image's own name (make docker-build passes IMG): the operator runs
# IdeasApps on the image it runs itself, unless --app-image or spec.image
# say otherwise.
ARG IMAGE=ghcr.io/ideapool/ideapool:dev
ENV IDEAPOOL_APP_IMAGE=${IMAGE}
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/ideapool"]
CMD ["serve"]
