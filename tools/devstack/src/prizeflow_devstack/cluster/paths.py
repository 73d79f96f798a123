"""Where the one-node cluster keeps everything: `.devstack/cluster/` of the repository (ignored by git)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ClusterPaths:
    root: Path

    @property
    def base(self) -> Path:
        return self.root / ".devstack" / "cluster"

    def __getattr__(self, name: str) -> Path:
        if name in {"bin", "pki", "kubeconfig", "etcd", "containerd", "kubelet", "cni", "registry", "logs"}:
            return self.base / name
        raise AttributeError(name)

    @property
    def pod_logs(self) -> Path:
        return self.base / "pod-logs"

    @property
    def state(self) -> Path:
        return self.base / "state.json"

    @property
    def admin_kubeconfig(self) -> Path:
        return self.base / "kubeconfig" / "admin.conf"

    @property
    def containerd_socket(self) -> Path:
        return self.base / "containerd" / "containerd.sock"

    def binary(self, component: str, name: str) -> Path:
        return self.bin / component / name


__all__ = ["ClusterPaths"]
