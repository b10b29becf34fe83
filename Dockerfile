# The same image hack/build-image.sh builds without a docker engine (`make image`): /manager and /preftune-trainer,
# static (the trainer with OpenBLAS linked in statically), on distroless static (CA certificates, /etc/passwd, nothing else), running as 65532 (nonroot).
#   docker build -t ghcr.io/preftune/preftune:dev .
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
# Only the packages the two binaries build from (bin/ holds large build outputs).
COPY api ./api
COPY cmd ./cmd
COPY controllers ./controllers
COPY trainer ./trainer
ARG TARGETOS=linux TARGETARCH=amd64
RUN apt-get update && apt-get install -y --no-install-recommends libopenblas-dev libgfortran-12-dev
RUN CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath -ldflags="-s -w" -o /out/manager ./cmd/manager && \
    CGO_ENABLED=1 GOOS=$TARGETOS GOARCH=$TARGETARCH CGO_LDFLAGS="-lopenblas -lgfortran -lquadmath -lm -lpthread" \
    go build -trimpath -tags openblas,netgo,osusergo -ldflags='-s -w -linkmode external -extldflags "-static"' \
    -o /out/preftune-trainer ./cmd/trainer

FROM gcr.io/distroless/static-debian12:nonroot
LABEL org.opencontainers.image.title="preftune" \
      org.opencontainers.image.description="Preftune operator (/manager) and trainer (/preftune-trainer)" \
      org.opencontainers.image.source="https://github.com/preftune/preftune"
COPY --from=build /out/manager /out/preftune-trainer /
USER 65532:65532
ENTRYPOINT ["/manager"]
