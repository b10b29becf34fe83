#!/usr/bin/env bash
# Regenerates the two throwaway modules that build envtest's binaries from source.
# k8s.io/kubernetes' go.mod points its staging modules at ./staging/...; a module that requires it must replace each
# of them with the published k8s.io/<staging> v0.<minor>.<patch>, or the build cannot resolve them.
set -euo pipefail
cd "$(dirname "$0")"
K8S=${K8S_VERSION:-v1.37.2}
STAGING=${K8S/v1./v0.}
ETCD=${ETCD_VERSION:-v3.6.16}

(
  cd kube-apiserver
  go mod edit -droprequire k8s.io/kubernetes -require "k8s.io/kubernetes@$K8S"
  gomod=$(go mod download -json "k8s.io/kubernetes@$K8S" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  for m in $(grep -oE '^\s*k8s\.io/[a-z0-9-]+ => \./staging' "$gomod" | awk '{print $1}'); do
    go mod edit -replace "$m=$m@$STAGING"
  done
  go mod tidy
)
(
  cd etcd
  go mod edit -droprequire go.etcd.io/etcd/server/v3 -require "go.etcd.io/etcd/server/v3@$ETCD"
  go mod tidy
)
