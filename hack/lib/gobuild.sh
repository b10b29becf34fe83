# shellcheck shell=bash
# Sourced by the scripts that build binaries from throwaway or tool modules (hack/envtest, hack/cluster, hack/tools):
# build_once rebuilds a binary only when the go.mod it was built from changes; k8s_ldflags stamps Kubernetes' version.
K8S_VERSION=v1.37.2

# k8s_ldflags prints the -ldflags for Kubernetes binaries: without the version stamps they report
# v0.0.0-master+$Format:%H$, which kubectl cannot parse.
k8s_ldflags() {
	local flags="-s -w" p
	for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		flags="$flags -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=37 -X $p.gitTreeState=clean"
	done
	echo "$flags"
}

# build_once OUT NAME MODULE MESSAGE GO_BUILD_ARGS...: unless OUT/NAME exists and was built from MODULE/go.mod as it
# is now (a stamp in OUT/.NAME.stamp), prints MESSAGE and runs `go build GO_BUILD_ARGS...` in MODULE.
build_once() {
	local out=$1 name=$2 module=$3 message=$4 stamp
	shift 4
	stamp=$(sha256sum "$module/go.mod" | cut -c1-16)
	if [ -x "$out/$name" ] && [ "$(cat "$out/.$name.stamp" 2>/dev/null)" = "$stamp" ]; then
		return 0
	fi
	echo "$message"
	mkdir -p "$out"
	(cd "$module" && go build "$@")
	echo "$stamp" >"$out/.$name.stamp"
}
