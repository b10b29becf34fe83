#!/usr/bin/env bash
# Regenerates the throwaway modules that build Kubernetes binaries from source: envtest's kube-apiserver and etcd
# (hack/envtest), the local cluster's kubelet, kube-proxy, controller-manager and scheduler (hack/cluster/k8s) and
# its CoreDNS (hack/cluster/coredns).
# k8s.io/kubernetes' go.mod points its staging modules at ./staging/...; a module that requires it must replace each
# of them with the published k8s.io/<staging> v0.<minor>.<patch>, or the build cannot resolve them.
set -euo pipefail
cd "$(dirname "$0")"
K8S=${K8S_VERSION:-v1.37.2}
STAGING=${K8S/v1./v0.}
ETCD=${ETCD_VERSION:-v3.6.16}
COREDNS=${COREDNS_VERSION:-v1.15.0}

kubernetes_module() {
  (
    cd "$1"
    go mod edit -droprequire k8s.io/kubernetes -require "k8s.io/kubernetes@$K8S"
    gomod=$(go mod download -json "k8s.io/kubernetes@$K8S" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
    for m in $(grep -oE '^\s*k8s\.io/[a-z0-9-]+ => \./staging' "$gomod" | awk '{print $1}'); do
      go mod edit -replace "$m=$m@$STAGING"
    done
    go mod tidy
  )
}
kubernetes_module kube-apiserver
kubernetes_module ../cluster/k8s
(
  cd etcd
  go mod edit -droprequire go.etcd.io/etcd/server/v3 -require "go.etcd.io/etcd/server/v3@$ETCD"
  go mod tidy
)
(
  cd ../cluster/coredns
  go mod edit -droprequire github.com/coredns/coredns -require "github.com/coredns/coredns@$COREDNS"
  go mod tidy
)
