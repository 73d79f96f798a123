"""kubectl against the cluster, as the admin, and the small manifest edits the installs need (image references)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from prizeflow_devstack.cluster.paths import ClusterPaths


class KubeError(RuntimeError):
    """kubectl failed, or something did not become ready in time; the message holds what kubectl said."""


class Kube:
    def __init__(self, root: Path) -> None:
        self.paths = ClusterPaths(root)
        self.kubectl = str(self.paths.binary("kubernetes", "kubectl"))
        self.kubeconfig = str(self.paths.admin_kubeconfig)

    def env(self) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": self.kubeconfig}

    def run(self, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 600) -> str:
        result = subprocess.run(
            [self.kubectl, *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=self.env(),
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise KubeError(f"kubectl {' '.join(args[:4])} failed ({result.returncode}):\n{result.stderr[-3000:]}")
        return result.stdout

    def apply(self, docs: Iterable[Mapping[str, Any]], *, server_side: bool = True) -> None:
        text = yaml.safe_dump_all([d for d in docs if d], sort_keys=False)
        args = ["apply", "-f", "-"]
        if server_side:
            args += ["--server-side", "--force-conflicts", "--field-manager=prizeflow-cluster"]
        self.run(*args, stdin=text)

    def get(self, *args: str) -> Any:
        return json.loads(self.run("get", *args, "-o", "json"))

    def wait_rollout(self, namespace: str, kind_name: str, timeout_s: int = 300) -> None:
        self.run("-n", namespace, "rollout", "status", kind_name, f"--timeout={timeout_s}s", timeout=timeout_s + 30)

    def wait_for(self, what: str, check: Callable[[], bool], timeout_s: float = 300, every_s: float = 1.0) -> None:
        deadline = time.monotonic() + timeout_s
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                if check():
                    return
            except (KubeError, KeyError, IndexError, ValueError) as err:
                last = err
            time.sleep(every_s)
        raise KubeError(f"{what}: not within {timeout_s:.0f} s" + (f" ({last})" if last else ""))


def load_docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def containers(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every container and init container of a workload (Deployment, DaemonSet, StatefulSet, Job, Pod)."""
    spec = doc.get("spec", {})
    pod = spec.get("template", {}).get("spec") if "template" in spec else spec if doc.get("kind") == "Pod" else None
    if not isinstance(pod, dict):
        return []
    return [*pod.get("containers", []), *pod.get("initContainers", [])]


def image_name(reference: str) -> str:
    """`ghcr.io/a/b:1.2@sha256:...` → `ghcr.io/a/b` (a registry's port is kept)."""
    head, _, last = reference.split("@", 1)[0].rpartition("/")
    return f"{head}/{last.split(':', 1)[0]}" if head else last.split(":", 1)[0]


def set_images(docs: Sequence[dict[str, Any]], images: Mapping[str, str]) -> list[dict[str, Any]]:
    """Replace each container image whose name (before its tag or digest) is a key of `images`; every image of a
    workload must be replaced (an upstream reference cannot be pulled here), or this raises naming it."""
    for doc in docs:
        for container in containers(doc):
            name = image_name(container["image"])
            if name not in images:
                raise KubeError(f"{doc['kind']}/{doc['metadata']['name']}: no local image for {container['image']}")
            container["image"] = images[name]
            container["imagePullPolicy"] = "IfNotPresent"
    return list(docs)


__all__ = ["Kube", "KubeError", "containers", "image_name", "load_docs", "set_images"]
