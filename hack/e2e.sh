#!/usr/bin/env bash
# `make test-e2e`: the end-to-end tests (test/e2e, build tag e2e) on a real cluster: the local single-node cluster,
# which it starts (hack/cluster/up.sh, root). Only there: the tests read what the runs wrote from the host, through
# the claim's hostPath volume, to check checkpoints and models file by file. It installs the operator
# from a freshly built image with the Helm chart (hack/cluster/deploy.sh), and runs the tests, which also drive
# `helm upgrade` mid-run. The cluster is left up; .ci/run tears it down.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=hack/cluster/env.sh
. "$ROOT/hack/cluster/env.sh"
T0=$(date +%s)
"$ROOT/hack/cluster/up.sh"
export KUBECONFIG=$STATE/kubeconfig
echo "e2e: [+$(($(date +%s) - T0))s] cluster ready"
"$ROOT/hack/cluster/deploy.sh"
echo "e2e: [+$(($(date +%s) - T0))s] operator installed"
(cd "$ROOT" && go build -o "$ROOT/bin/preftune-trainer" ./cmd/trainer)
export PREFTUNE_E2E_HELM=$BIN/helm PREFTUNE_E2E_TRAINER=$ROOT/bin/preftune-trainer
export PREFTUNE_E2E_IMAGE_REPOSITORY=${IMG:-$REGISTRY/preftune:dev}
export PREFTUNE_E2E_IMAGE_REPOSITORY=${PREFTUNE_E2E_IMAGE_REPOSITORY%:*}
export PREFTUNE_E2E_IMAGE_DIGEST=$("$BIN/crane" digest "${IMG:-$REGISTRY/preftune:dev}")
cd "$ROOT"
# E2E_RUN=REGEXP runs only the tests it matches (go test -run).
if ! go test -tags e2e -count=1 -v -timeout 40m ${E2E_RUN:+-run "$E2E_RUN"} ./test/e2e/; then
	# What CI needs for a post-mortem once the cluster is gone (the tests keep their namespace on failure).
	echo "e2e: FAILED; the cluster as it is now:"
	kubectl get nodes,pods -A -o wide || true
	kubectl get preftune -A -o wide || true
	kubectl get events -A --sort-by=.lastTimestamp | tail -n 40 || true
	kubectl -n preftune-system logs deploy/preftune-controller-manager --tail=80 || true
	exit 1
fi
echo "e2e: [+$(($(date +%s) - T0))s] done"
