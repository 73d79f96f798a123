#!/usr/bin/env bash
# Install what the one-node rehearsal cluster needs from Debian's packages (prizeflow_devstack.cluster, tests/k8s):
# containerd and runc (the node's container runtime), the CNI plugins (bridge, host-local, portmap, loopback),
# iptables, ipset and conntrack (kube-proxy and kube-router's firewall), docker-registry (the cluster's image
# registry), gcc and a static libc (the pod sandbox image is compiled from Kubernetes' pause.c). Everything else of
# the cluster builds from the Go module proxy and Maven Central. Idempotent; needs root (the node runs as root).
set -euo pipefail

PACKAGES=(containerd runc containernetworking-plugins iptables ipset conntrack docker-registry gcc libc6-dev)
missing=()
for tool in containerd runc iptables ipset conntrack docker-registry gcc ctr; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
[[ -x /usr/lib/cni/bridge ]] || missing+=(containernetworking-plugins)
[[ -f /usr/lib/x86_64-linux-gnu/libc.a ]] || missing+=(libc6-dev)
if ((${#missing[@]})); then
    if [[ "$(id -u)" -ne 0 ]]; then
        echo "ensure-cluster-deps: ${missing[*]} missing, and the cluster's node runs as root: run as root" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y --no-install-recommends "${PACKAGES[@]}" >/dev/null 2>&1; then
        apt-get update >/dev/null  # the package lists may be missing or stale on a fresh machine
        apt-get install -y --no-install-recommends "${PACKAGES[@]}" >/dev/null
    fi
    echo "ensure-cluster-deps: installed ${PACKAGES[*]} ($(containerd --version | awk '{print $3}'))"
fi
