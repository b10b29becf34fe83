#!/usr/bin/env bash
# volume.sh NAMESPACE CLAIM [SIZE]: makes the PersistentVolumeClaim CLAIM in NAMESPACE that runs write to.
# On the local cluster (its state folder exists and KUBECONFIG is its own) the claim binds a hostPath
# PersistentVolume at $STATE/volumes/NAMESPACE-CLAIM, owned by the trainer's user (65532), so that the host can read
# what the runs wrote; the local cluster has no dynamic provisioner. Elsewhere the claim uses the default StorageClass.
# Prints the host folder (local cluster) or nothing.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=hack/cluster/env.sh
. "$ROOT/hack/cluster/env.sh"
ns=$1 claim=$2 size=${3:-1Gi}
if [ "${KUBECONFIG:-}" = "$STATE/kubeconfig" ]; then
	dir=$STATE/volumes/$ns-$claim
	mkdir -p "$dir"
	chown 65532:65532 "$dir"
	kubectl apply -f - >/dev/null <<EOF2
apiVersion: v1
kind: PersistentVolume
metadata: {name: $ns-$claim, labels: {app.kubernetes.io/part-of: preftune-local-cluster}}
spec:
  capacity: {storage: $size}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: ""
  claimRef: {namespace: $ns, name: $claim}
  hostPath: {path: $dir, type: Directory}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: $claim, namespace: $ns}
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: ""
  volumeName: $ns-$claim
  resources: {requests: {storage: $size}}
EOF2
	echo "$dir"
else
	kubectl apply -f - >/dev/null <<EOF2
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: $claim, namespace: $ns}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: $size}}
EOF2
fi
