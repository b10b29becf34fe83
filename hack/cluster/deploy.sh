#!/usr/bin/env bash
# Builds the Preftune image (hack/build-image.sh, no docker engine), pushes it to $IMG's registry, and installs or
# upgrades the operator with the Helm chart, pinned to the pushed digest, waiting until the manager is available.
# Default IMG is the local cluster's registry (127.0.0.1:5000/preftune:dev); for another cluster, set IMG to a
# registry that cluster pulls from (crane pushes with the credentials in ~/.docker/config.json).
# Environment: KUBECONFIG, IMG, NAMESPACE (default preftune-system), RELEASE (default preftune), HELM_ARGS (more
# `helm upgrade` arguments, e.g. "--set concurrency.runs=2"), OPENBLAS_CORETYPE (passed on to the trainer pods).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=hack/cluster/env.sh
. "$ROOT/hack/cluster/env.sh"
IMG=${IMG:-$REGISTRY/preftune:dev}
NAMESPACE=${NAMESPACE:-preftune-system}
RELEASE=${RELEASE:-preftune}
say() { echo "deploy: $*"; }

# shellcheck source=hack/lib/gobuild.sh
. "$ROOT/hack/lib/gobuild.sh"
build_once "$BIN" helm "$ROOT/hack/tools" "deploy: building helm (hack/tools)" -o "$BIN/helm" helm.sh/helm/v3/cmd/helm
build_once "$BIN" crane "$ROOT/hack/tools" "deploy: building crane (hack/tools)" \
	-o "$BIN/crane" github.com/google/go-containerregistry/cmd/crane

say "building the image (manager + static OpenBLAS trainer; the first build compiles for several minutes) and pushing $IMG"
IMG=$IMG PUSH=1 "$ROOT/hack/build-image.sh" | sed 's/^/deploy: /'
digest=$("$BIN/crane" digest "$IMG")

# The host's OPENBLAS_CORETYPE reaches the trainer pods (chart value trainer.env): some machines set it because older
# OpenBLAS builds misdetect their CPU, and it lets a test run the cluster's training under another kernel family.
env_args=()
if [ -n "${OPENBLAS_CORETYPE:-}" ]; then
	env_args=(--set-string "trainer.env.OPENBLAS_CORETYPE=$OPENBLAS_CORETYPE")
fi
say "helm upgrade --install $RELEASE charts/preftune -n $NAMESPACE (image ${IMG%:*}@$digest${OPENBLAS_CORETYPE:+, trainers with OPENBLAS_CORETYPE=$OPENBLAS_CORETYPE})"
# shellcheck disable=SC2086 # HELM_ARGS is a list of arguments
"$BIN/helm" upgrade --install "$RELEASE" "$ROOT/charts/preftune" --namespace "$NAMESPACE" --create-namespace \
	--set image.repository="${IMG%:*}" --set image.digest="$digest" "${env_args[@]}" --wait --timeout 5m ${HELM_ARGS:-} >/dev/null
# The progress endpoint's certificate: on a fresh install the rotator may replace the CA once while the kubelet
# still projects the first Secret into the manager, and a run created in that window hands its trainer a CA the
# endpoint no longer uses (no live progress for that run). Wait until the rotator says the files are current (at most
# 3 minutes; the install stands either way).
for _ in $(seq 90); do
	if kubectl -n "$NAMESPACE" logs deploy/"$RELEASE"-controller-manager 2>/dev/null | grep -q '"certs are ready'; then
		break
	fi
	sleep 2
done
kubectl -n "$NAMESPACE" logs deploy/"$RELEASE"-controller-manager 2>/dev/null | grep -q '"certs are ready' ||
	say "warning: the progress endpoint's certificate is not reported ready yet"
say "operator installed: $(kubectl -n "$NAMESPACE" get deploy -o jsonpath='{range .items[*]}{.metadata.name} {.status.availableReplicas}/{.spec.replicas} available{"\n"}{end}')"
