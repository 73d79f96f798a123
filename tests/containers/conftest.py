"""The container tier (`make deploy-test`, and part of `make test`): images built offline with podman, the compose
stack under podman-compose. Podman that cannot run fails these tests; nothing here skips."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from prizeflow_devstack import images
from prizeflow_devstack.compose import NOT_RUNNABLE_HERE, PORT_ENV, ComposeStack, ensure_compose_secrets
from prizeflow_devstack.paths import resolve_root
from prizeflow_devstack.ports import pick_free_port


def _note(message: str) -> None:
    print(f"\n[containers] {message}", file=sys.stderr, flush=True)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return resolve_root(None)


@pytest.fixture(scope="session")
def podman_ready(repo_root: Path) -> None:
    """Podman installed and able to run a container with the project's settings, or the tier fails here."""
    script = repo_root / "tools" / "devstack" / "scripts" / "ensure-podman.sh"
    result = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=900, check=False)
    assert result.returncode == 0, f"podman cannot run here:\n{result.stdout}{result.stderr}"


@pytest.fixture(scope="session")
def built_images(repo_root: Path, podman_ready: None) -> dict[str, images.Built]:
    """Every platform image plus the official images compose runs (pulled, or local stand-ins: said so)."""
    started = time.monotonic()
    for ref, how in images.ensure_infrastructure_images(repo_root).items():
        _note(
            f"{ref}: {how}{' (built locally from Debian packages: no registry reachable)' if how == 'stand-in' else ''}"
        )
    built = images.build_images(repo_root)
    _note("image sizes\n" + images.report(repo_root, built, repo_root / ".results" / "images.json"))
    _note(f"images ready in {time.monotonic() - started:.0f} s")
    return {b.ref: b for b in built}


@pytest.fixture(scope="session")
def compose_stack(repo_root: Path, built_images: dict[str, images.Built]) -> Iterator[ComposeStack]:
    """docker-compose.yml up (every service but Grafana, with the demo profile), ready; torn down after."""
    ensure_compose_secrets(repo_root)
    taken: set[int] = set()
    ports = {}
    for name in PORT_ENV:
        ports[name] = pick_free_port(taken)
        taken.add(ports[name])
    stack = ComposeStack(repo_root, f"pftest{uuid.uuid4().hex[:6]}", ports, profiles=("demo",))
    for service, why in NOT_RUNNABLE_HERE.items():
        _note(f"{service}: not started here ({why}); every other service of docker-compose.yml is")
    started = time.monotonic()
    try:
        stack.up()
        stack.wait_ready(timeout=360)
        stack.startup_s = time.monotonic() - started
        _note(
            f"compose stack {stack.project} ready in {stack.startup_s:.0f} s (podman-compose up → every service ready)"
        )
        yield stack
    finally:
        left = stack.down()
        results = repo_root / ".results"
        results.mkdir(exist_ok=True)
        (results / "compose.json").write_text(json.dumps({"startup_s": stack.startup_s, **stack.timings}, indent=2))
        assert left == [], f"compose down left {left}"
        _note(f"compose stack {stack.project} torn down: no container, network or volume left")
