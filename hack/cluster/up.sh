#!/usr/bin/env bash
# Brings up a single-node Kubernetes v1.37.2 on this machine: etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, a real kubelet on Debian's containerd and runc, kube-proxy (iptables), CoreDNS for Service names,
# the CNI bridge plugin, and an image registry on 127.0.0.1:5000 (go-containerregistry's `crane registry serve`).
# Every binary is built from the Go module proxy (nothing is downloaded from elsewhere) and cached under
# bin/cluster and bin/envtest, so a second start takes seconds. The node advertises $GPUS `nvidia.com/gpu` (an
# extended resource patched into its status) so that GPU requests are scheduled and accounted for for real; the
# trainer runs on the CPU there.
#
# Needs root (containerd, the kubelet's cgroups and mounts, iptables). All state lives under $STATE; hack/cluster/
# down.sh stops everything and restores every host setting this changes. Idempotent: when the cluster is already up,
# it says so and exits.
#
# Environment: PREFTUNE_CLUSTER_DIR (state, default .cluster in the repository), PREFTUNE_NODE_GPUS (default 2),
# NODE_IP (default: this host's address on its default route).
# This machine's two needs (../shared/notes/local-cluster): containerd `restrict_oom_score_adj = true` (no
# CAP_SYS_RESOURCE), and the kubelet's `failCgroupV1: false` with `cgroupDriver: cgroupfs` (cgroup v1, no systemd).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=hack/cluster/env.sh
. "$ROOT/hack/cluster/env.sh"
GPUS=${PREFTUNE_NODE_GPUS:-2}
T0=$(date +%s)
say() { echo "cluster: [+$(($(date +%s) - T0))s] $*"; }
die() { echo "cluster: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "needs root (containerd, kubelet cgroups and mounts, iptables): run as root"
export KUBECONFIG=$STATE/kubeconfig
if [ -f "$STATE/kubelet.pid" ] && kill -0 "$(cat "$STATE/kubelet.pid")" 2>/dev/null &&
	kubectl get --raw /readyz >/dev/null 2>&1; then
	say "already up; export KUBECONFIG=$KUBECONFIG"
	exit 0
fi
[ ! -d "$STATE/pki" ] || die "$STATE holds a cluster that is not running: run hack/cluster/down.sh first"

# 1. Debian packages: containerd 1.6, runc, iptables, the CNI plugins.
if ! command -v containerd >/dev/null || ! command -v runc >/dev/null || ! command -v iptables >/dev/null ||
	[ ! -x /usr/lib/cni/bridge ]; then
	log() { echo "cluster: $*" >&2; }
	# shellcheck source=hack/lib/apt.sh
	. "$ROOT/hack/lib/apt.sh"
	apt_prepare "containerd runc iptables containernetworking-plugins" || exit 1
	say "apt-get install containerd runc iptables containernetworking-plugins"
	apt-get install -y -qq --no-install-recommends containerd runc iptables containernetworking-plugins >/dev/null
fi

# 2. Binaries, built once from the Go module proxy (rebuilt when their module's go.mod changes).
# shellcheck source=hack/lib/gobuild.sh
. "$ROOT/hack/lib/gobuild.sh"
"$ROOT/hack/envtest/build.sh" | sed 's/^/cluster: /' # kube-apiserver and etcd, shared with envtest
build_once "$BIN" kubelet "$ROOT/hack/cluster/k8s" \
	"$(say "building kube-controller-manager, kube-scheduler, kubelet, kube-proxy $K8S_VERSION from source (about 4-8 minutes on 2 cores, once)")" \
	-trimpath -ldflags "$(k8s_ldflags)" -o "$BIN/" k8s.io/kubernetes/cmd/kube-controller-manager \
	k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy
build_once "$BIN" coredns "$ROOT/hack/cluster/coredns" "$(say "building CoreDNS from source (about 2 minutes, once)")" \
	-trimpath -ldflags "-s -w" -o "$BIN/coredns" .
build_once "$BIN" crane "$ROOT/hack/tools" "$(say "building crane (the registry)")" \
	-o "$BIN/crane" github.com/google/go-containerregistry/cmd/crane
(cd "$ROOT" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$BIN/pause" ./hack/cluster/pause)
say "binaries ready"

# 3. PKI: a CA, serving certificates and one client certificate per component (ECDSA: fast to make).
mkdir -p "$STATE"/{pki,logs,run,cni/net.d,containerd/root,containerd/state,containerd/certs.d,kubelet/root,kubelet/pod-logs,kubelet/manifests,etcd,registry,volumes}
P=$STATE/pki
(
	cd "$P"
	openssl ecparam -name prime256v1 -genkey -noout -out ca.key
	openssl req -x509 -new -key ca.key -subj "/CN=preftune-local-ca" -days 30 -out ca.crt
	openssl ecparam -name prime256v1 -genkey -noout -out sa.key
	openssl ec -in sa.key -pubout -out sa.pub 2>/dev/null
	printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n' >client.ext
	printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:%s,IP:127.0.0.1,IP:10.96.0.1,IP:%s\n' \
		"$NODE" "$NODE_IP" >server.ext
	cert() {
		openssl ecparam -name prime256v1 -genkey -noout -out "$1.key"
		openssl req -new -key "$1.key" -subj "$2" -out "$1.csr"
		openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 -extfile "$3" -out "$1.crt" 2>/dev/null
	}
	cert apiserver "/CN=kube-apiserver" server.ext
	cert kubelet-serving "/CN=$NODE" server.ext
	cert apiserver-kubelet-client "/CN=kube-apiserver-kubelet-client/O=system:masters" client.ext
	cert admin "/CN=preftune-admin/O=system:masters" client.ext
	cert kcm "/CN=system:kube-controller-manager" client.ext
	cert scheduler "/CN=system:kube-scheduler" client.ext
	cert kubelet "/CN=system:node:$NODE/O=system:nodes" client.ext
	cert kube-proxy "/CN=system:kube-proxy" client.ext
	cert coredns "/CN=system:coredns" client.ext
	for u in admin kcm scheduler kubelet kube-proxy coredns; do
		k=$u.kubeconfig
		kubectl --kubeconfig="$k" config set-cluster local --server=https://127.0.0.1:6443 --certificate-authority=ca.crt --embed-certs >/dev/null
		kubectl --kubeconfig="$k" config set-credentials "$u" --client-certificate="$u.crt" --client-key="$u.key" --embed-certs >/dev/null
		kubectl --kubeconfig="$k" config set-context local --cluster=local --user="$u" >/dev/null
		kubectl --kubeconfig="$k" config use-context local >/dev/null
	done
) 2>&1 | grep -v '^Certificate request self-signature ok' || true
cp "$P/admin.kubeconfig" "$KUBECONFIG"
say "certificates made"

# 4. Configuration files.
containerd config default >"$STATE/containerd/config.toml"
sed -i -e "s#^root = .*#root = \"$STATE/containerd/root\"#" -e "s#^state = .*#state = \"$STATE/containerd/state\"#" \
	-e "s#address = \"/run/containerd/containerd.sock\"#address = \"$STATE/run/containerd.sock\"#" \
	-e 's#sandbox_image = .*#sandbox_image = "registry.k8s.io/pause:3.10"#' \
	-e 's#restrict_oom_score_adj = false#restrict_oom_score_adj = true#' \
	-e 's#netns_mounts_under_state_dir = false#netns_mounts_under_state_dir = true#' \
	-e 's#bin_dir = "/opt/cni/bin"#bin_dir = "/usr/lib/cni"#' -e "s#conf_dir = \"/etc/cni/net.d\"#conf_dir = \"$STATE/cni/net.d\"#" \
	-e "s#config_path = \"\"#config_path = \"$STATE/containerd/certs.d\"#" "$STATE/containerd/config.toml"
grep -q 'restrict_oom_score_adj = true' "$STATE/containerd/config.toml" || die "could not set containerd's restrict_oom_score_adj"
mkdir -p "$STATE/containerd/certs.d/$REGISTRY"
printf 'server = "http://%s"\n[host."http://%s"]\n  capabilities = ["pull", "resolve"]\n' "$REGISTRY" "$REGISTRY" \
	>"$STATE/containerd/certs.d/$REGISTRY/hosts.toml"
cat >"$STATE/cni/net.d/10-preftune.conflist" <<EOF
{"cniVersion": "1.0.0", "name": "preftune", "plugins": [
  {"type": "bridge", "bridge": "$BRIDGE", "isGateway": true, "ipMasq": true, "hairpinMode": true,
   "ipam": {"type": "host-local", "dataDir": "$STATE/cni/ipam", "ranges": [[{"subnet": "10.244.0.0/24"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
  {"type": "portmap", "capabilities": {"portMappings": true}},
  {"type": "loopback"}]}
EOF
cat >"$STATE/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false    # this host has cgroup v1; kubelet 1.37 refuses it unless told
cgroupDriver: cgroupfs # no systemd, and containerd 1.6 cannot report its driver
failSwapOn: false
containerRuntimeEndpoint: unix://$STATE/run/containerd.sock
address: $NODE_IP      # on the node IP, or the apiserver cannot reach it for logs and exec
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
tlsCertFile: $P/kubelet-serving.crt
tlsPrivateKeyFile: $P/kubelet-serving.key
authentication: {anonymous: {enabled: false}, webhook: {enabled: true}, x509: {clientCAFile: $P/ca.crt}}
authorization: {mode: Webhook}
clusterDomain: cluster.local
clusterDNS: ["$NODE_IP"] # CoreDNS runs on the host, bound to the node IP
podLogsDir: $STATE/kubelet/pod-logs
staticPodPath: $STATE/kubelet/manifests
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
serializeImagePulls: false
EOF
cat >"$STATE/Corefile" <<EOF
.:53 {
    bind $NODE_IP
    ready 127.0.0.1:8181
    errors
    cache 5
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig $P/coredns.kubeconfig local
        pods insecure
    }
}
EOF

# 5. Host settings this changes (or the kubelet and kube-proxy change), saved for down.sh to restore. The state folder
# is new here (a stopped cluster's folder makes this script stop above), so these are the host's own settings.
{
	for k in net.ipv4.ip_forward kernel.panic kernel.panic_on_oops vm.overcommit_memory net.ipv4.conf.all.route_localnet; do
		echo "sysctl $k=$(sysctl -n "$k")"
	done
	for d in /var/lib/kubelet /var/lib/cni /var/log/containers /run/containerd /etc/cni; do
		[ -e "$d" ] || echo "created $d"
	done
} >"$STATE/host-settings"
iptables-save >"$STATE/iptables.orig"
ip6tables-save >"$STATE/ip6tables.orig"
sysctl -qw net.ipv4.ip_forward=1

# 6. Start the processes (PIDs in $STATE/*.pid, logs in $STATE/logs).
start() {
	local name=$1
	shift
	nohup "$@" >"$STATE/logs/$name.log" 2>&1 &
	echo $! >"$STATE/$name.pid"
}
alive() { kill -0 "$(cat "$STATE/$1.pid")" 2>/dev/null || die "$1 exited: see $STATE/logs/$1.log ($(tail -n 3 "$STATE/logs/$1.log"))"; }
cd "$STATE"
start containerd containerd --config "$STATE/containerd/config.toml"
start etcd "$ENVTEST_BIN/etcd" --name preftune --data-dir "$STATE/etcd" \
	--listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
	--listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
	--initial-cluster preftune=http://127.0.0.1:2380 --listen-metrics-urls http://127.0.0.1:2381 --unsafe-no-fsync=true
start registry "$BIN/crane" registry serve --address "$REGISTRY" --disk "$STATE/registry"
start apiserver "$ENVTEST_BIN/kube-apiserver" --etcd-servers=http://127.0.0.1:2379 --bind-address=0.0.0.0 \
	--advertise-address="$NODE_IP" --secure-port=6443 \
	--tls-cert-file="$P/apiserver.crt" --tls-private-key-file="$P/apiserver.key" --client-ca-file="$P/ca.crt" \
	--kubelet-client-certificate="$P/apiserver-kubelet-client.crt" --kubelet-client-key="$P/apiserver-kubelet-client.key" \
	--kubelet-certificate-authority="$P/ca.crt" --kubelet-preferred-address-types=InternalIP,Hostname \
	--service-account-key-file="$P/sa.pub" --service-account-signing-key-file="$P/sa.key" \
	--service-account-issuer=https://kubernetes.default.svc.cluster.local --service-cluster-ip-range=10.96.0.0/16 \
	--authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction --allow-privileged=true --profiling=false
for _ in $(seq 300); do kubectl get --raw /readyz >/dev/null 2>&1 && break; alive apiserver; alive etcd; sleep 0.3; done
kubectl get --raw /readyz >/dev/null || die "the apiserver did not become ready: see $STATE/logs/apiserver.log"
say "apiserver ready"
# CoreDNS reads Services and EndpointSlices (kubeadm makes the same role).
kubectl apply -f - >/dev/null <<EOF
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "system:coredns"}
rules:
- {apiGroups: [""], resources: [endpoints, services, pods, namespaces], verbs: [list, watch]}
- {apiGroups: [discovery.k8s.io], resources: [endpointslices], verbs: [list, watch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "system:coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:coredns"}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: "system:coredns"}]
EOF
start kcm "$BIN/kube-controller-manager" --kubeconfig="$P/kcm.kubeconfig" --authentication-kubeconfig="$P/kcm.kubeconfig" \
	--authorization-kubeconfig="$P/kcm.kubeconfig" --bind-address=127.0.0.1 --service-account-private-key-file="$P/sa.key" \
	--root-ca-file="$P/ca.crt" --cluster-signing-cert-file="$P/ca.crt" --cluster-signing-key-file="$P/ca.key" \
	--use-service-account-credentials=true --leader-elect=false --controllers='*' --service-cluster-ip-range=10.96.0.0/16
start scheduler "$BIN/kube-scheduler" --kubeconfig="$P/scheduler.kubeconfig" --authentication-kubeconfig="$P/scheduler.kubeconfig" \
	--authorization-kubeconfig="$P/scheduler.kubeconfig" --bind-address=127.0.0.1 --leader-elect=false
start kubelet "$BIN/kubelet" --config="$STATE/kubelet/config.yaml" --kubeconfig="$P/kubelet.kubeconfig" \
	--root-dir="$STATE/kubelet/root" --hostname-override="$NODE" --node-ip="$NODE_IP"
start kube-proxy "$BIN/kube-proxy" --kubeconfig="$P/kube-proxy.kubeconfig" --proxy-mode=iptables --hostname-override="$NODE" \
	--cluster-cidr=10.244.0.0/16 --conntrack-max-per-core=0 --conntrack-tcp-timeout-established=0 \
	--conntrack-tcp-timeout-close-wait=0 --iptables-localhost-nodeports=false \
	--metrics-bind-address=127.0.0.1:10249 --healthz-bind-address=127.0.0.1:10256
start coredns "$BIN/coredns" -conf "$STATE/Corefile"

# 7. The sandbox image, which containerd must hold under its configured name (registry.k8s.io is unreachable).
img=$STATE/pause-image
mkdir -p "$img/root"
cp "$BIN/pause" "$img/root/pause"
tar --owner=0 --group=0 --numeric-owner -C "$img/root" -cf "$img/pause.tar" .
for _ in $(seq 100); do curl -fs "http://$REGISTRY/v2/" >/dev/null && break; alive registry; sleep 0.1; done
crane() { "$BIN/crane" "$@" 2>/dev/null; }
crane append --oci-empty-base -f "$img/pause.tar" -t "$REGISTRY/pause:base" >/dev/null
crane mutate "$REGISTRY/pause:base" --set-platform linux/amd64 --entrypoint /pause -t "$REGISTRY/pause:3.10" >/dev/null
ctr() { command ctr -a "$STATE/run/containerd.sock" -n k8s.io "$@"; }
for _ in $(seq 100); do ctr version >/dev/null 2>&1 && break; alive containerd; sleep 0.1; done
ctr images pull --plain-http "$REGISTRY/pause:3.10" >/dev/null
ctr images tag --force "$REGISTRY/pause:3.10" registry.k8s.io/pause:3.10 >/dev/null
say "pause image in containerd; registry on $REGISTRY"

# 8. Node Ready, with GPUs, and the default ServiceAccount (pods cannot be created before it exists).
for _ in $(seq 300); do kubectl get node "$NODE" >/dev/null 2>&1 && break; alive kubelet; sleep 0.3; done
kubectl wait --for=condition=Ready "node/$NODE" --timeout=120s >/dev/null || die "node $NODE is not Ready: see $STATE/logs/kubelet.log"
kubectl patch node "$NODE" --subresource=status --type=json \
	-p "[{\"op\": \"add\", \"path\": \"/status/capacity/nvidia.com~1gpu\", \"value\": \"$GPUS\"}]" >/dev/null
for _ in $(seq 100); do
	[ "$(kubectl get node "$NODE" -o jsonpath='{.status.allocatable.nvidia\.com/gpu}')" = "$GPUS" ] && break
	sleep 0.2
done
for _ in $(seq 300); do kubectl get serviceaccount default >/dev/null 2>&1 && break; alive kcm; sleep 0.3; done
for _ in $(seq 100); do curl -fs http://127.0.0.1:8181/ready >/dev/null && break; alive coredns; sleep 0.2; done
say "node $NODE Ready with $GPUS nvidia.com/gpu; export KUBECONFIG=$KUBECONFIG"
