# shellcheck shell=bash
# Sourced by the local cluster's scripts: where its state and binaries live and how it is named. $ROOT is set.
STATE=${PREFTUNE_CLUSTER_DIR:-$ROOT/.cluster}     # everything the cluster writes (removed by down.sh)
BIN=$ROOT/bin/cluster                              # cached binaries: kubelet, kube-proxy, kcm, scheduler, CoreDNS, crane
ENVTEST_BIN=${ENVTEST_DIR:-$ROOT/bin/envtest}      # kube-apiserver and etcd, shared with envtest
NODE=preftune-node
NODE_IP=${NODE_IP:-$(ip -4 route get 1.1.1.1 2>/dev/null | awk '{for (i = 1; i < NF; i++) if ($i == "src") { print $(i + 1); exit }}')}
NODE_IP=${NODE_IP:-127.0.0.1}
REGISTRY=127.0.0.1:5000                            # images the cluster pulls (plain HTTP, loopback only)
BRIDGE=preftune0                                   # the CNI bridge
