#!/usr/bin/env bash
# Tears down the local cluster that hack/cluster/up.sh started and restores every host setting it changed: stops its
# processes, removes its containers, mounts, cgroups, CNI bridge and iptables chains, puts back the sysctls and the
# fixed host paths it created, and deletes its state folder (logs are kept in $STATE.logs for a post-mortem).
# Safe to run any number of times, also after a failed start. Needs root.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=hack/cluster/env.sh
. "$ROOT/hack/cluster/env.sh"
[ -d "$STATE" ] || { echo "cluster: nothing to tear down ($STATE does not exist)"; exit 0; }
[ "$(id -u)" -eq 0 ] || { echo "cluster: down needs root" >&2; exit 1; }
export KUBECONFIG=$STATE/kubeconfig
say() { echo "cluster: $*"; }

# Pods first, while the kubelet still runs, so that CNI releases their addresses and veths.
if [ -f "$STATE/kubelet.pid" ] && kill -0 "$(cat "$STATE/kubelet.pid")" 2>/dev/null; then
	kubectl delete pods --all --all-namespaces --grace-period=1 --timeout=60s >/dev/null 2>&1 || true
fi
stop() {
	[ -f "$STATE/$1.pid" ] || return 0
	local pid
	pid=$(cat "$STATE/$1.pid")
	kill "$pid" 2>/dev/null || { rm -f "$STATE/$1.pid"; return 0; }
	for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
	kill -9 "$pid" 2>/dev/null
	rm -f "$STATE/$1.pid"
}
# The apiserver stops before etcd (it hangs on SIGTERM otherwise).
for p in coredns kube-proxy kubelet kcm scheduler apiserver etcd registry; do stop "$p"; done
if [ -S "$STATE/run/containerd.sock" ]; then
	ctr() { command ctr -a "$STATE/run/containerd.sock" -n k8s.io "$@"; }
	for t in $(ctr tasks ls -q 2>/dev/null); do ctr tasks kill -s SIGKILL "$t" 2>/dev/null; done
	sleep 1
	for t in $(ctr tasks ls -q 2>/dev/null); do ctr tasks delete -f "$t" >/dev/null 2>&1; done
	for c in $(ctr containers ls -q 2>/dev/null); do ctr containers delete "$c" >/dev/null 2>&1; done
fi
stop containerd
# Leftover shims (one per pod sandbox) whose socket lives in the state folder.
pkill -9 -f "containerd-shim.*$STATE" 2>/dev/null
say "processes stopped"

# Mounts under the state folder (the kubelet's rshared root, pod volumes, containerd's netns and shm), deepest first.
grep -o " $STATE/[^ ]*" /proc/self/mounts | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
# Pod cgroups (cgroup v1: one tree per controller).
for c in /sys/fs/cgroup/*/kubepods; do [ -d "$c" ] && find "$c" -depth -type d -exec rmdir {} \; 2>/dev/null; done
ip link del "$BRIDGE" 2>/dev/null
# Network rules: back to the saved tables, or else without every KUBE-/CNI- chain and rule.
for t in iptables ip6tables; do
	if [ -f "$STATE/$t.orig" ]; then
		"$t-restore" <"$STATE/$t.orig"
	else
		"$t-save" | grep -vE '^:(KUBE|CNI)-|^-A .*(KUBE|CNI)-' | "$t-restore"
	fi
done
if [ -f "$STATE/host-settings" ]; then
	while read -r what value; do
		case $what in
		sysctl) sysctl -qw "$value" ;;
		created) rm -rf "$value" ;;
		esac
	done <"$STATE/host-settings"
fi
find /var/log/containers -maxdepth 1 -lname "$STATE/*" -delete 2>/dev/null
say "host settings restored"

rm -rf "$STATE.logs"
mv "$STATE/logs" "$STATE.logs" 2>/dev/null
rm -rf "$STATE" || { say "could not remove $STATE (a mount is still busy?)"; exit 1; }
say "down; logs kept in $STATE.logs"
