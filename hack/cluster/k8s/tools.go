//go:build tools

// Package tools pins k8s.io/kubernetes so that the local cluster's node and control-plane binaries build from the Go
// module proxy alone (hack/cluster/up.sh). kube-apiserver and etcd come from hack/envtest, built once for both.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
