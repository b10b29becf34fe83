//go:build tools

// Package tools pins k8s.io/kubernetes so that `go build k8s.io/kubernetes/cmd/kube-apiserver`
// works from the Go module proxy alone (envtest's prebuilt binaries cannot be downloaded here).
package tools

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
