#!/usr/bin/env bash
# Builds envtest's kube-apiserver and etcd from source (the prebuilt archives cannot be downloaded here) into
# $ENVTEST_DIR (default bin/envtest, git-ignored). Skips what is already built for the pinned versions.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${ENVTEST_DIR:-$ROOT/bin/envtest}
HERE="$ROOT/hack/envtest"
# shellcheck source=hack/lib/gobuild.sh
. "$ROOT/hack/lib/gobuild.sh"

build_once "$OUT" kube-apiserver "$HERE/kube-apiserver" \
	">> building kube-apiserver $K8S_VERSION from source (about 5 minutes on 2 cores, once)" \
	-trimpath -ldflags "$(k8s_ldflags)" -o "$OUT/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
build_once "$OUT" etcd "$HERE/etcd" ">> building etcd from source (under a minute, once)" \
	-trimpath -ldflags "-s -w" -o "$OUT/etcd" go.etcd.io/etcd/server/v3
echo ">> envtest binaries ready in $OUT"
