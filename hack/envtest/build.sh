#!/usr/bin/env bash
# Builds envtest's kube-apiserver and etcd from source (the prebuilt archives cannot be downloaded here) into
# $ENVTEST_DIR (default bin/envtest, git-ignored). Skips what is already built for the pinned versions.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${ENVTEST_DIR:-$ROOT/bin/envtest}
mkdir -p "$OUT"
HERE="$ROOT/hack/envtest"
stamp() { sha256sum "$HERE/$1/go.mod" | cut -c1-16; }

K8S=v1.37.2
LDF="-s -w"
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  LDF="$LDF -X $p.gitVersion=$K8S -X $p.gitMajor=1 -X $p.gitMinor=37 -X $p.gitTreeState=clean"
done

if [ ! -x "$OUT/kube-apiserver" ] || [ "$(cat "$OUT/.kube-apiserver.stamp" 2>/dev/null)" != "$(stamp kube-apiserver)" ]; then
  echo ">> building kube-apiserver $K8S from source (about 5 minutes on 2 cores, once)"
  (cd "$HERE/kube-apiserver" && go build -trimpath -ldflags "$LDF" -o "$OUT/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver)
  stamp kube-apiserver > "$OUT/.kube-apiserver.stamp"
fi
if [ ! -x "$OUT/etcd" ] || [ "$(cat "$OUT/.etcd.stamp" 2>/dev/null)" != "$(stamp etcd)" ]; then
  echo ">> building etcd from source (under a minute, once)"
  (cd "$HERE/etcd" && go build -trimpath -ldflags "-s -w" -o "$OUT/etcd" go.etcd.io/etcd/server/v3)
  stamp etcd > "$OUT/.etcd.stamp"
fi
echo ">> envtest binaries ready in $OUT"
