"""What the node changes on the host, and how it is undone (node.py's docstring says why each change is needed)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from prizeflow_devstack.cluster import versions as v


class HostError(RuntimeError):
    """The host cannot run the node: not root, or a package is missing (the message names it)."""


def run(argv: Sequence[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, check=check)


def _iptables_rule(table: str, chain: str, rule: Sequence[str]) -> None:
    """Insert `rule` at the top of `chain` unless it is there already."""
    if run(["iptables", "-t", table, "-C", chain, *rule], check=False).returncode != 0:
        run(["iptables", "-t", table, "-I", chain, "1", *rule])


def _delete_iptables_rule(table: str, chain: str, rule: Sequence[str]) -> None:
    while run(["iptables", "-t", table, "-D", chain, *rule], check=False).returncode == 0:
        pass


_FORWARD_RULES = (
    ("-s", v.CLUSTER_CIDR, "-m", "comment", "--comment", "prizeflow-cluster pods", "-j", "ACCEPT"),
    ("-d", v.CLUSTER_CIDR, "-m", "comment", "--comment", "prizeflow-cluster pods", "-j", "ACCEPT"),
)


def prepare_host() -> None:
    if os.geteuid() != 0:
        raise HostError("the cluster's node runs as root (kubelet, containerd, kube-proxy): run as root")
    missing = [
        b for b in ("containerd", "runc", "iptables", "ipset", "conntrack", "docker-registry") if not shutil.which(b)
    ]
    if missing or not Path("/usr/lib/cni/bridge").exists():
        raise HostError(
            f"missing {', '.join(missing) or 'the CNI plugins'}: run tools/devstack/scripts/ensure-cluster-deps.sh "
            "(make k8s-cluster does)"
        )
    run(["mount", "--make-rshared", "/"])
    for bridge, address in ((v.NODE_BRIDGE, v.NODE_IP), (v.INTERNET_BRIDGE, v.INTERNET_ADDRESS)):
        if run(["ip", "link", "show", bridge], check=False).returncode != 0:
            run(["ip", "link", "add", bridge, "type", "bridge"])
        if address not in run(["ip", "-4", "addr", "show", bridge]).stdout:
            run(["ip", "addr", "add", f"{address}/32", "dev", bridge])
        run(["ip", "link", "set", bridge, "up"])
    Path("/proc/sys/net/ipv4/ip_forward").write_text("1\n")
    Path("/var/run/netns").mkdir(parents=True, exist_ok=True)
    for rule in _FORWARD_RULES:
        _iptables_rule("filter", "FORWARD", rule)


def restore_host() -> None:
    """Undo what the node added to the host's network (the root's propagation stays shared: harmless)."""
    for rule in _FORWARD_RULES:
        _delete_iptables_rule("filter", "FORWARD", rule)
    # kube-proxy's and kube-router's chains, and the CNI plugins' (bridge masquerade, portmap).
    for table in ("filter", "nat", "mangle"):
        listing = run(["iptables-save", "-t", table], check=False).stdout
        chains = [
            line.split()[0][1:]
            for line in listing.splitlines()
            if line.startswith(":") and line.split()[0][1:].startswith(("KUBE-", "CNI-"))
        ]
        for line in listing.splitlines():
            if line.startswith("-A ") and any(f"-j {c}" in line for c in chains):
                parts = line.split()
                run(["iptables", "-t", table, "-D", *parts[1:]], check=False)
        for chain in chains:
            run(["iptables", "-t", table, "-F", chain], check=False)
        for chain in chains:
            run(["iptables", "-t", table, "-X", chain], check=False)
    for name in run(["ipset", "list", "-n"], check=False).stdout.split():
        if name.startswith(("KUBE-", "kube-router")):
            run(["ipset", "destroy", name], check=False)
    for link in ("cni0", v.NODE_BRIDGE, v.INTERNET_BRIDGE, "kube-ipvs0"):
        run(["ip", "link", "del", link], check=False)


def unmount_under(directory: Path) -> None:
    prefix = str(directory.resolve())
    mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    for mount in sorted((m for m in mounts if m.startswith(prefix)), key=len, reverse=True):
        run(["umount", "-l", mount], check=False)


__all__ = ["HostError", "prepare_host", "restore_host", "run", "unmount_under"]
