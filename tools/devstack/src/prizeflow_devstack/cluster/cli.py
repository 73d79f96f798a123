"""`prizeflow-cluster`: the one-node Kubernetes the rehearsal runs on (docs/deploy.md "The rehearsal cluster").

prizeflow-cluster up        build what is missing, start the node, push the images, install the operators
prizeflow-cluster down      stop everything it started and clean the host (keeps builds, images, the objects)
prizeflow-cluster wipe      down, then forget the cluster's objects and volumes (a fresh cluster next `up`)
prizeflow-cluster status    what runs
prizeflow-cluster env       `export KUBECONFIG=...` and the kubectl on PATH
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from prizeflow_devstack import images as project_images
from prizeflow_devstack.cluster import build, images, node, operators, strimzi
from prizeflow_devstack.cluster.paths import ClusterPaths
from prizeflow_devstack.paths import find_root


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def up(root: Path) -> float:
    """Everything `up` does; returns the seconds it took."""
    started = time.monotonic()
    paths = ClusterPaths(root)
    build.ensure_built(root, paths.bin, say=_say)
    crds = strimzi.ensure_crds(root)
    state = node.start(root, say=_say)
    assert state.registry_port is not None
    images.forget_missing(root, state.registry_port, say=_say)
    refs = images.push_go_images(root, state.registry_port, say=_say)
    if not all(name in refs for name in ("postgresql", "plugin-barman-cloud-sidecar", "kafka", "squid", "edge")):
        refs = images.build_debian_images(root, state.registry_port, say=_say)
    if not all(name in refs for name in project_images.CLUSTER_IMAGES):
        refs = images.push_tool_images(root, state.registry_port, say=_say)
    node.wait_ready(root)
    operators.install_all(root, refs, crds, say=_say)
    seconds = time.monotonic() - started
    _say(f"cluster: up in {seconds:.0f} s; KUBECONFIG={paths.admin_kubeconfig}")
    return seconds


def exit_on_sigterm() -> None:
    """SIGTERM exits as Ctrl-C does, through the running call: a `go build` it waits on is killed, not orphaned
    (`subprocess.run` kills its child on the way out), where the default action would leave it building on."""

    def _exit(signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _exit)


def main(argv: list[str] | None = None) -> int:
    exit_on_sigterm()
    parser = argparse.ArgumentParser(prog="prizeflow-cluster", description=__doc__.split("\n", 1)[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("up", "down", "wipe", "status", "env", "build"):
        sub.add_parser(name)
    args = parser.parse_args(argv)
    root = find_root()
    paths = ClusterPaths(root)
    if args.command == "build":
        build.ensure_built(root, paths.bin, say=_say)
        strimzi.ensure_crds(root)
    elif args.command == "up":
        up(root)
    elif args.command == "down":
        node.stop(root, say=_say)
    elif args.command == "wipe":
        node.stop(root, say=_say)
        node.wipe(root)
    elif args.command == "status":
        for name, alive in node.running(root).items():
            print(f"{name:26} {'up' if alive else 'DOWN'}")
    elif args.command == "env":
        tools = f"{paths.bin / 'kubernetes'}:{paths.bin / 'cloudnative-pg'}"
        print(f"export KUBECONFIG={paths.admin_kubeconfig} PATH={tools}:$PATH")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
