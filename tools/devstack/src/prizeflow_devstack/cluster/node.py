"""A one-node Kubernetes on this machine: etcd, the control plane, containerd, the kubelet, kube-proxy and
kube-router's firewall as processes of the host, like a node's systemd units; everything else runs in the cluster.

Layout (`.devstack/cluster/`): `bin/` (the Go builds), `pki/`, `kubeconfig/`, `etcd/`, `containerd/`, `kubelet/`,
`pod-logs/`, `cni/`, `registry/` (the image registry's storage), `logs/`, `state.json`.

What the host needs, and why each is done here:
- root (the kubelet mounts volumes, runc makes namespaces, kube-proxy writes iptables);
- `/` shared (`mount --make-rshared /`), as on any systemd host: mount propagation for the CSI-less volumes and the
  `HostToContainer` mounts;
- the node's address on a bridge of its own (`pfnode0`, 10.250.0.1/32), the same on every machine;
- IP forwarding, and the pod network accepted in `FORWARD` ahead of anything else's policy (Docker sets `FORWARD`
  to DROP when it starts, and the container tier starts a dockerd beside the cluster);
- containerd with `restrict_oom_score_adj`: this sandbox refuses a negative oom_score_adj, which containerd gives
  every pod sandbox (-998) unless restricted to its own.

`stop` leaves the machine as it found it: no process, no container, no mount under the cluster's directory, no
iptables chain or ipset or interface of the cluster's (`prizeflow-cluster down`, also run by `prizeflow-dev down`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from prizeflow_devstack.cluster import versions as v
from prizeflow_devstack.cluster.configs import (
    API_PORT,
    IDENTITIES,
    cni_config,
    containerd_config,
    hosts_toml,
    kube_proxy_config,
    kubelet_config,
    registry_config,
    write_kubeconfigs,
)
from prizeflow_devstack.cluster.host import prepare_host, restore_host, run, unmount_under
from prizeflow_devstack.cluster.paths import ClusterPaths
from prizeflow_devstack.cluster.pki import ensure_pki
from prizeflow_devstack.procs import pid_alive, pids_matching, spawn_detached, start_ticks

REGISTRY_HOST = "registry.prizeflow.internal"
ETCD_CLIENT_PORT = 12379
ETCD_PEER_PORT = 12380
# What the node's images (containerd and the registry each hold a copy), volumes and logs take during the rehearsal,
# with room to spare: `up` refuses to start with less free on the disk `.devstack/cluster` is on.
NEEDS_FREE_GB = 12


class ClusterError(RuntimeError):
    """The cluster cannot start or is not healthy; the message names the component and its log."""


@dataclass
class ProcessState:
    pid: int
    ticks: int | None
    log: str
    argv: list[str] = field(default_factory=list)


@dataclass
class NodeState:
    processes: dict[str, ProcessState] = field(default_factory=dict)
    registry_port: int | None = None


def load_state(paths: ClusterPaths) -> NodeState:
    if not paths.state.exists():
        return NodeState()
    raw = json.loads(paths.state.read_text())
    return NodeState(
        processes={k: ProcessState(**p) for k, p in raw.get("processes", {}).items()},
        registry_port=raw.get("registry_port"),
    )


def save_state(paths: ClusterPaths, state: NodeState) -> None:
    paths.base.mkdir(parents=True, exist_ok=True)
    paths.state.write_text(json.dumps(asdict(state), indent=2))


# ---- processes -----------------------------------------------------------------------------------------------------


def _start(
    paths: ClusterPaths, state: NodeState, name: str, argv: Sequence[str], env: dict[str, str] | None = None
) -> None:
    """Start `name` unless it runs already with the same command line (a changed one restarts it)."""
    current = state.processes.get(name)
    if current is not None and pid_alive(current.pid, current.ticks):
        if current.argv == list(argv):
            return
        _restart(paths, state, name)
    paths.logs.mkdir(parents=True, exist_ok=True)
    log = paths.logs / f"{name}.log"
    with log.open("ab") as out:
        pid = spawn_detached(list(argv), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
    state.processes[name] = ProcessState(pid=pid, ticks=start_ticks(pid), log=str(log), argv=list(argv))
    save_state(paths, state)


def _start_until_it_stays(
    paths: ClusterPaths,
    state: NodeState,
    name: str,
    argv: Sequence[str],
    *,
    settle_s: float = 5,
    deadline_s: float = 90,
) -> None:
    """`_start`, then again each time the process exits within `settle_s`, until `deadline_s`."""
    deadline = time.monotonic() + deadline_s
    while True:
        _start(paths, state, name, argv)
        time.sleep(settle_s)
        proc = state.processes[name]
        if pid_alive(proc.pid, proc.ticks):
            return
        if time.monotonic() > deadline:
            raise ClusterError(f"{name} keeps exiting:\n{_tail(proc.log)}")


def _write(path: Path, content: str) -> bool:
    """Write `content` unless the file holds it already; whether it changed (kube-proxy exits when its
    configuration file changes under it, and a changed file means a process must restart to read it)."""
    if path.exists() and path.read_text() == content:
        return False
    path.write_text(content)
    return True


def _restart(paths: ClusterPaths, state: NodeState, name: str) -> None:
    proc = state.processes.pop(name, None)
    if proc is not None and pid_alive(proc.pid, proc.ticks):
        _stop_pids([proc.pid], 10)
    save_state(paths, state)


def _tail(path: str | Path, lines: int = 30) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _answers(socket_path: Path) -> bool:
    """A unix socket that accepts a connection (a file left by a process that died does not)."""
    with contextlib.closing(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)) as sock:
        sock.settimeout(1)
        try:
            sock.connect(str(socket_path))
        except OSError:
            return False
    return True


def _wait(what: str, check: Callable[[], bool], deadline_s: float, log: str | Path | None = None) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(0.3)
    detail = f"\n--- {log} ---\n{_tail(log)}" if log else ""
    raise ClusterError(f"{what} was not ready within {deadline_s:.0f} s{detail}")


def _tcp_open(host: str, port: int) -> bool:
    with socket.create_connection((host, port), timeout=1):
        return True


def _api_ready(paths: ClusterPaths) -> bool:
    ctx = ssl.create_default_context(cafile=str(paths.pki / "ca.crt"))
    ctx.load_cert_chain(str(paths.pki / "admin.crt"), str(paths.pki / "admin.key"))
    with urllib.request.urlopen(f"https://{v.NODE_IP}:{API_PORT}/readyz", context=ctx, timeout=2) as answer:
        return bool(answer.status == 200)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(root: Path, *, say: Callable[[str], None] = print) -> NodeState:
    """Start (or keep) every node process and wait until the node is Ready; idempotent."""
    paths = ClusterPaths(root)
    paths.base.mkdir(parents=True, exist_ok=True)
    free_gb = shutil.disk_usage(paths.base).free / 1e9
    if free_gb < NEEDS_FREE_GB:
        raise ClusterError(
            f"{free_gb:.1f} GB free on the disk of {paths.base}: the node needs {NEEDS_FREE_GB} GB for its images, "
            "volumes and logs (free some: `podman image prune`, Go's build cache `go clean -cache`, a stale checkout)"
        )
    prepare_host()
    ensure_pki(paths.pki, IDENTITIES)
    write_kubeconfigs(paths)
    state = load_state(paths)
    for directory in (paths.etcd, paths.kubelet, paths.cni, paths.registry, paths.pod_logs, paths.logs):
        directory.mkdir(parents=True, exist_ok=True)
    (paths.etcd).chmod(0o700)
    pki = paths.pki
    kc = paths.kubeconfig

    # The image registry (Debian's docker-registry), plain HTTP on loopback; containerd maps REGISTRY_HOST onto it.
    if state.registry_port is None:
        state.registry_port = _free_port()
    if _write(paths.base / "registry.json", registry_config(paths, state.registry_port)):
        _restart(paths, state, "registry")
    _start(paths, state, "registry", ["docker-registry", "serve", str(paths.base / "registry.json")])
    _wait(
        "the image registry", lambda: _tcp_open("127.0.0.1", state.registry_port or 0), 20, paths.logs / "registry.log"
    )

    etcd = paths.binary("etcd", "server")
    _start(
        paths,
        state,
        "etcd",
        [
            str(etcd),
            "--name=node",
            f"--data-dir={paths.etcd}",
            f"--listen-client-urls=http://127.0.0.1:{ETCD_CLIENT_PORT}",
            f"--advertise-client-urls=http://127.0.0.1:{ETCD_CLIENT_PORT}",
            f"--listen-peer-urls=http://127.0.0.1:{ETCD_PEER_PORT}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{ETCD_PEER_PORT}",
            f"--initial-cluster=node=http://127.0.0.1:{ETCD_PEER_PORT}",
            "--listen-metrics-urls=",
            "--quota-backend-bytes=4294967296",
        ],
    )
    _wait("etcd", lambda: _tcp_open("127.0.0.1", ETCD_CLIENT_PORT), 30, paths.logs / "etcd.log")

    _start(
        paths,
        state,
        "kube-apiserver",
        [
            str(paths.binary("kubernetes", "kube-apiserver")),
            f"--etcd-servers=http://127.0.0.1:{ETCD_CLIENT_PORT}",
            f"--advertise-address={v.NODE_IP}",
            f"--bind-address={v.NODE_IP}",
            f"--secure-port={API_PORT}",
            f"--service-cluster-ip-range={v.SERVICE_CIDR}",
            f"--client-ca-file={pki / 'ca.crt'}",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
            f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
            f"--kubelet-certificate-authority={pki / 'ca.crt'}",
            "--kubelet-preferred-address-types=InternalIP",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            f"--service-account-issuer=https://kubernetes.default.svc.{v.CLUSTER_DOMAIN}",
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction",
            f"--requestheader-client-ca-file={pki / 'front-proxy-ca.crt'}",
            f"--proxy-client-cert-file={pki / 'front-proxy-client.crt'}",
            f"--proxy-client-key-file={pki / 'front-proxy-client.key'}",
            "--requestheader-allowed-names=front-proxy-client",
            "--requestheader-username-headers=X-Remote-User",
            "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            "--enable-aggregator-routing=true",
            "--allow-privileged=true",
            "--profiling=false",
        ],
    )
    _wait("the API server", lambda: _api_ready(paths), 90, paths.logs / "kube-apiserver.log")
    # kube-router's firewall lists pods and policies as its own identity: its permissions before it starts (it
    # gives up when its caches do not sync within a minute).
    rbac = root / "tools" / "devstack" / "cluster" / "manifests" / "kube-router-rbac.yaml"
    kubectl = [str(paths.binary("kubernetes", "kubectl")), f"--kubeconfig={paths.admin_kubeconfig}"]
    run([*kubectl, "apply", "--server-side", "--force-conflicts", "-f", str(rbac)])

    _start(
        paths,
        state,
        "kube-controller-manager",
        [
            str(paths.binary("kubernetes", "kube-controller-manager")),
            f"--kubeconfig={kc / 'controller-manager.conf'}",
            f"--authentication-kubeconfig={kc / 'controller-manager.conf'}",
            f"--authorization-kubeconfig={kc / 'controller-manager.conf'}",
            f"--cluster-signing-cert-file={pki / 'ca.crt'}",
            f"--cluster-signing-key-file={pki / 'ca.key'}",
            f"--root-ca-file={pki / 'ca.crt'}",
            f"--service-account-private-key-file={pki / 'sa.key'}",
            "--use-service-account-credentials=true",
            "--allocate-node-cidrs=true",
            f"--cluster-cidr={v.CLUSTER_CIDR}",
            "--node-cidr-mask-size=24",
            f"--service-cluster-ip-range={v.SERVICE_CIDR}",
            "--bind-address=127.0.0.1",
            "--leader-elect=false",
            "--profiling=false",
        ],
    )
    _start(
        paths,
        state,
        "kube-scheduler",
        [
            str(paths.binary("kubernetes", "kube-scheduler")),
            f"--kubeconfig={kc / 'scheduler.conf'}",
            f"--authentication-kubeconfig={kc / 'scheduler.conf'}",
            f"--authorization-kubeconfig={kc / 'scheduler.conf'}",
            "--bind-address=127.0.0.1",
            "--leader-elect=false",
            "--profiling=false",
        ],
    )

    # containerd, its registry mapping, the CNI network, the pause image.
    (paths.containerd / "certs.d" / REGISTRY_HOST).mkdir(parents=True, exist_ok=True)
    _write(paths.containerd / "certs.d" / REGISTRY_HOST / "hosts.toml", hosts_toml(state.registry_port))
    if _write(paths.containerd / "config.toml", containerd_config(paths)):
        _restart(paths, state, "containerd")
    _write(paths.cni / "10-prizeflow.conflist", cni_config(paths))
    _start(paths, state, "containerd", ["containerd", "--config", str(paths.containerd / "config.toml")])
    _wait("containerd", lambda: _answers(paths.containerd_socket), 30, paths.logs / "containerd.log")
    from prizeflow_devstack.cluster.images import ensure_pause_image

    ensure_pause_image(root)

    if _write(paths.base / "kubelet.json", kubelet_config(paths)):
        _restart(paths, state, "kubelet")
    # The kubelet exits when containerd's CRI service is not initialized yet ("server is not initialized yet"), which
    # it is a few seconds after its socket answers on a fresh root: started again until it stays up.
    _start_until_it_stays(
        paths,
        state,
        "kubelet",
        [
            str(paths.binary("kubernetes", "kubelet")),
            f"--config={paths.base / 'kubelet.json'}",
            f"--kubeconfig={kc / 'kubelet.conf'}",
            f"--root-dir={paths.kubelet}",
            f"--node-ip={v.NODE_IP}",
            f"--hostname-override={v.NODE_NAME}",
            # A zone, as a cloud node has: the bundle spreads Kafka's pools across zones (DoNotSchedule), which
            # a node without the label can never satisfy.
            f"--node-labels=topology.kubernetes.io/region={v.NODE_REGION},topology.kubernetes.io/zone={v.NODE_ZONE}",
            "--v=1",
        ],
    )
    if _write(paths.base / "kube-proxy.json", kube_proxy_config(paths)):
        _restart(paths, state, "kube-proxy")
    _start(
        paths,
        state,
        "kube-proxy",
        [
            str(paths.binary("kubernetes", "kube-proxy")),
            f"--config={paths.base / 'kube-proxy.json'}",
            f"--hostname-override={v.NODE_NAME}",
        ],
    )
    _start(
        paths,
        state,
        "kube-router",
        [
            str(paths.binary("kube-router", "kube-router")),
            "--run-router=false",
            "--run-firewall=true",
            "--run-service-proxy=false",
            f"--kubeconfig={kc / 'kube-router.conf'}",
            f"--hostname-override={v.NODE_NAME}",
            "--health-port=20244",
            "--metrics-port=0",
        ],
        env={**os.environ, "NODE_NAME": v.NODE_NAME},
    )
    say(f"cluster: node {v.NODE_NAME} processes up (logs: {paths.logs})")
    return state


def wait_ready(root: Path, deadline_s: float = 120) -> None:
    """The node registered and Ready (the kubelet, containerd and the CNI network work together)."""
    paths = ClusterPaths(root)
    kubectl = [str(paths.binary("kubernetes", "kubectl")), f"--kubeconfig={paths.admin_kubeconfig}"]

    seen = {"node": "not registered"}

    def ready() -> bool:
        """Ready, and no taint: a taint (not-ready, disk-pressure, ...) keeps every pod of the rehearsal off it."""
        out = run([*kubectl, "get", "node", v.NODE_NAME, "-o", "json"], check=False)
        if out.returncode != 0:
            return False
        found = json.loads(out.stdout)
        conditions = {c["type"]: c["status"] for c in found.get("status", {}).get("conditions", [])}
        taints = [f"{t['key']}:{t['effect']}" for t in found.get("spec", {}).get("taints") or []]
        seen["node"] = f"conditions {conditions}, taints {taints or 'none'}"
        return conditions.get("Ready") == "True" and not taints

    state = load_state(paths)
    try:
        _wait(
            f"node {v.NODE_NAME}",
            ready,
            deadline_s,
            state.processes["kubelet"].log if "kubelet" in state.processes else None,
        )
    except ClusterError as error:
        raise ClusterError(f"{error}\n--- the node: {seen['node']}") from None


def running(root: Path) -> dict[str, bool]:
    paths = ClusterPaths(root)
    state = load_state(paths)
    return {name: pid_alive(p.pid, p.ticks) for name, p in state.processes.items()}


_STOP_ORDER = (
    "kube-router",
    "kube-proxy",
    "kubelet",
    "kube-scheduler",
    "kube-controller-manager",
    "kube-apiserver",
    "etcd",
    "containerd",
    "registry",
)


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def _stop_pids(pids: Sequence[int], grace_s: float) -> None:
    for pid in pids:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(pid_alive(p) for p in pids):
        time.sleep(0.1)
    for pid in pids:
        if pid_alive(pid):
            _signal(pid, signal.SIGKILL)


def stop(root: Path, *, say: Callable[[str], None] = print) -> list[str]:
    """Stop every node process and every container it ran; clean the host. Returns what was stopped."""
    paths = ClusterPaths(root)
    state = load_state(paths)
    stopped: list[str] = []
    for name in _STOP_ORDER:
        proc = state.processes.get(name)
        if proc is not None and pid_alive(proc.pid, proc.ticks):
            _stop_pids([proc.pid], 10 if name != "containerd" else 5)
            stopped.append(name)
    # Containers outlive containerd (their shims are their parents): the shims of our containerd, and their children.
    shims = pids_matching(f"-address {paths.containerd_socket}")
    for shim in shims:
        children = run(["pgrep", "-P", str(shim)], check=False).stdout.split()
        _stop_pids([int(c) for c in children], 5)
    _stop_pids(shims, 5)
    # Anything else started from our binaries (a process whose state was lost).
    leftovers = [p for p in pids_matching(str(paths.base)) if p != os.getpid()]
    _stop_pids(leftovers, 5)
    if shims:
        stopped.append(f"{len(shims)} pod sandboxes and containers")
    for netns in Path("/var/run/netns").glob("cni-*"):
        run(["umount", str(netns)], check=False)
        netns.unlink(missing_ok=True)
    unmount_under(paths.base)
    restore_host()
    state.processes.clear()
    save_state(paths, state)
    if stopped:
        say(f"cluster: stopped {', '.join(stopped)}")
    return stopped


def wipe(root: Path) -> None:
    """Forget the cluster's objects and volumes (etcd, the kubelet's pods, local volumes), keep images and builds."""
    paths = ClusterPaths(root)
    for directory in (
        paths.etcd,
        paths.kubelet,
        paths.pod_logs,
        paths.base / "volumes",
        paths.base / "cni-ipam",
        paths.containerd / "state",
    ):
        shutil.rmtree(directory, ignore_errors=True)


__all__ = [
    "API_PORT",
    "REGISTRY_HOST",
    "ClusterError",
    "ClusterPaths",
    "NodeState",
    "load_state",
    "running",
    "start",
    "stop",
    "wait_ready",
    "wipe",
]
