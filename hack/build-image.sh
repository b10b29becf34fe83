#!/usr/bin/env bash
# Builds the Preftune image without a docker engine: one OCI image holding /manager and /preftune-trainer (static,
# CGO off), CA certificates and /etc/passwd, running as 65532 (nonroot), on an empty base. The Dockerfile describes
# the same image for users with docker.
#
# Layers come from a tarball of the binaries; go-containerregistry's crane (hack/tools) appends it to an empty base
# and sets entrypoint, user, platform and labels, in a registry it serves on localhost for the duration (crane edits
# images in registries), then writes:
#   bin/image/oci           the image as an OCI layout
#   bin/image/preftune.tar  the image as a tarball (docker load, crane push bin/image/preftune.tar REF)
# Environment: IMG (name:tag, default ghcr.io/preftune/preftune:dev), PUSH=1 (push IMG with crane, using the docker
# credentials in ~/.docker/config.json), GOARCH (default: this machine's), IMAGE_OUT (default bin/image),
# SOURCE_DATE_EPOCH (file times and creation label, default the last commit's time, so the same sources give the same digest).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
IMG=${IMG:-ghcr.io/preftune/preftune:dev}
PUSH=${PUSH:-}
ARCH=${GOARCH:-$(go env GOARCH)}
OUT=${IMAGE_OUT:-$root/bin/image}
EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}

work=$(mktemp -d)
regpid=
cleanup() {
	if [[ -n $regpid ]]; then kill "$regpid" 2>/dev/null || true; wait "$regpid" 2>/dev/null || true; fi
	rm -rf "$work"
}
trap cleanup EXIT

crane=$work/crane
(cd hack/tools && go build -o "$crane" github.com/google/go-containerregistry/cmd/crane)

rootfs=$work/rootfs
mkdir -p "$rootfs/etc/ssl/certs" "$rootfs/tmp" "$rootfs/home/nonroot"
CGO_ENABLED=0 GOOS=linux GOARCH="$ARCH" go build -trimpath -ldflags="-s -w" -o "$rootfs/manager" ./cmd/manager
# The trainer is the fast OpenBLAS build, linked fully static (libopenblas.a, the gfortran runtime, glibc) so the
# image needs no shared libraries. Where OpenBLAS cannot be installed (no apt), the pure-Go trainer goes in instead,
# and the build says so.
if hack/install-openblas.sh; then
	CGO_ENABLED=1 GOOS=linux GOARCH="$ARCH" CGO_LDFLAGS="-lopenblas -lgfortran -lquadmath -lm -lpthread" \
		go build -trimpath -tags openblas,netgo,osusergo \
		-ldflags='-s -w -linkmode external -extldflags "-static"' -o "$rootfs/preftune-trainer" ./cmd/trainer
	trainer_build=openblas
else
	echo "build-image: WARNING: OpenBLAS is unavailable; the image gets the pure-Go trainer (several times slower)" >&2
	CGO_ENABLED=0 GOOS=linux GOARCH="$ARCH" go build -trimpath -ldflags="-s -w" -o "$rootfs/preftune-trainer" ./cmd/trainer
	trainer_build=pure-go
fi
# The trainer fetches datasets and writes outputs over HTTPS (s3://, gs://, azblob://): it needs the CA bundle.
certs=/etc/ssl/certs/ca-certificates.crt
[[ -f $certs ]] || { echo "build-image: $certs is missing (apt-get install ca-certificates)" >&2; exit 1; }
cp "$certs" "$rootfs/etc/ssl/certs/ca-certificates.crt"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$rootfs/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' >"$rootfs/etc/group"
chmod 1777 "$rootfs/tmp"
chmod 0755 "$rootfs/manager" "$rootfs/preftune-trainer"
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$EPOCH" -C "$rootfs" -cf "$work/layer.tar" .

# A registry on localhost: crane mutates images in registries; it is gone when this script ends.
port=
for try in 1 2 3 4 5; do
	p=$((20000 + RANDOM % 30000))
	"$crane" registry serve --address "127.0.0.1:$p" >"$work/registry.log" 2>&1 &
	regpid=$!
	for _ in $(seq 50); do
		if "$crane" catalog "127.0.0.1:$p" >/dev/null 2>&1; then port=$p; break; fi
		kill -0 "$regpid" 2>/dev/null || break
		sleep 0.1
	done
	[[ -n $port ]] && break
	kill "$regpid" 2>/dev/null || true; wait "$regpid" 2>/dev/null || true; regpid=
done
[[ -n $port ]] || { echo "build-image: could not start crane's local registry:" >&2; cat "$work/registry.log" >&2; exit 1; }

ref=127.0.0.1:$port/preftune:build
created=$(date -u -d "@$EPOCH" +%Y-%m-%dT%H:%M:%SZ)
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
"$crane" append --oci-empty-base -f "$work/layer.tar" -t "$ref" >/dev/null
"$crane" mutate "$ref" -t "$ref" \
	--entrypoint /manager --user 65532:65532 --workdir / \
	--env PATH=/ --env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
	--set-platform "linux/$ARCH" \
	--label org.opencontainers.image.title=preftune \
	--label "org.opencontainers.image.description=Preftune operator (/manager) and trainer (/preftune-trainer)" \
	--label "io.preftune.trainer-build=$trainer_build" \
	--label org.opencontainers.image.source=https://github.com/preftune/preftune \
	--label "org.opencontainers.image.revision=$revision" \
	--label "org.opencontainers.image.created=$created" >/dev/null

rm -rf "$OUT/oci" "$OUT/preftune.tar"
mkdir -p "$OUT"
"$crane" pull --format=oci "$ref" "$OUT/oci"
"$crane" pull "$ref" "$OUT/preftune.tar"
digest=$("$crane" digest "$ref")
echo "built $IMG ($digest, linux/$ARCH): $OUT/oci, $OUT/preftune.tar"
if [[ $PUSH == 1 ]]; then
	"$crane" copy "$ref" "$IMG"
	echo "pushed $IMG@$digest"
fi
