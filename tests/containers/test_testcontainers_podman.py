"""The devstack's testcontainers path, for real: podman's Docker-compatible API as the engine, the official images (or
their local stand-ins under the same names), and a slice of the integration tier run against the containers it
starts. Podman that cannot serve the API fails this test; it never skips."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from prizeflow_devstack import docker_infra, images
from prizeflow_devstack.procs import run_sync
from prizeflow_devstack.state import State

# The nested run is bounded by its own timeout; this one only has to exceed it (the suite's default is 300 s).
pytestmark = [pytest.mark.containers, pytest.mark.timeout(720)]

API_DEADLINE_S = 30.0
# Outbox + relay, inbox dedup + retries + DLQ + lanes, and one service end to end (its process, its database, its
# topics: duplicates/replays settle once, poison goes to the DLQ): bounded, and each needs PostgreSQL and Kafka. The
# settlement SIGKILL test (20 s of restarts) is left to the integration tier proper.
_SETTLEMENT_FLOW = "services/settlement/tests/integration/test_settlement_flow.py"
INTEGRATION_SLICE = (
    "libs/runtime/tests/integration/test_outbox.py",
    "libs/runtime/tests/integration/test_consumer.py",
    f"{_SETTLEMENT_FLOW}::test_duplicates_and_replays_yield_exactly_one_settlement",
    f"{_SETTLEMENT_FLOW}::test_poison_events_go_to_the_dlq_with_their_reason_and_the_next_round_settles",
)
# What the session that runs us may have exported and must not leak into the nested run.
_FOREIGN_ENV = ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS", "PYTEST_ADDOPTS", "PRIZEFLOW_DEVSTACK_TEARDOWN")


def _engine() -> Any:
    """The Docker API client testcontainers itself uses (DOCKER_HOST and the docker context resolved its way)."""
    from testcontainers.core.docker_client import DockerClient

    return DockerClient().client


def _pings(path: Path) -> bool:
    """The API on the unix socket `path` answers `GET /_ping` (a closed socket whatever happens)."""
    with contextlib.closing(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)) as conn:
        conn.settimeout(2)
        try:
            conn.connect(str(path))
            conn.sendall(b"GET /_ping HTTP/1.0\r\nHost: podman\r\n\r\n")
            return conn.recv(12).startswith(b"HTTP/1.")
        except OSError:
            return False


def _note(message: str) -> None:
    print(f"\n[testcontainers] {message}", file=sys.stderr, flush=True)


@pytest.fixture
def podman_api(repo_root: Path, podman_ready: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """`podman system service` on a private socket (the project's containers.conf), as DOCKER_HOST; stopped after."""
    sock = tmp_path / "podman.sock"
    url = f"unix://{sock}"
    log = tmp_path / "podman-service.log"
    with log.open("wb") as out:
        service = subprocess.Popen(
            ["podman", "system", "service", "--time=0", url],
            env=images.podman_env(repo_root), stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    monkeypatch.setenv("DOCKER_HOST", url)
    try:
        deadline = time.monotonic() + API_DEADLINE_S
        # A plain socket first: a Docker client built before the API answers raises from its constructor and
        # leaves its half-open socket to the garbage collector (a ResourceWarning that fails the session).
        while not _pings(sock):
            assert service.poll() is None, f"podman system service exited ({service.returncode}):\n{log.read_text()}"
            assert time.monotonic() < deadline, f"podman's API did not answer on {url} in {API_DEADLINE_S:.0f} s"
            time.sleep(0.2)
        probe = _engine()
        try:
            version = probe.version()
        finally:
            probe.close()
        _note(f"podman API on {url}: {version['Components'][0]['Name']} {version['Version']}")
        yield url
    finally:
        service.terminate()
        try:
            service.wait(timeout=30)
        except subprocess.TimeoutExpired:
            service.kill()
            service.wait(timeout=10)


async def _consumer_groups(bootstrap: str) -> list[str]:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return [group for group, _ in await admin.list_consumer_groups()]
    finally:
        await admin.close()


def test_the_integration_tier_passes_on_testcontainers_over_podman(
    repo_root: Path, podman_api: str, request: pytest.FixtureRequest
) -> None:
    for ref in (images.POSTGRES_IMAGE, images.kafka_image()):
        how = images.ensure_official(repo_root, ref)
        _note(f"{ref}: {how}{' (local stand-in: no registry reachable)' if how == 'stand-in' else ''}")
    client = _engine()
    request.addfinalizer(client.close)
    state = State()
    started = time.monotonic()
    try:
        postgres_url, bootstrap = docker_infra.ensure(state, need_pg=True, need_kafka=True)
        up_s = time.monotonic() - started
        containers = {
            "postgres": client.containers.get(state.docker.postgres_container),
            "kafka": client.containers.get(state.docker.kafka_container),
        }
        assert containers["postgres"].image.tags == [images.POSTGRES_IMAGE]
        assert containers["kafka"].image.tags == [images.kafka_image()]
        assert docker_infra.active(state)
        where = postgres_url.rsplit("@", 1)[-1]
        _note(f"testcontainers started PostgreSQL ({where}) and Kafka ({bootstrap}) in {up_s:.0f} s")
        assert run_sync(lambda: _consumer_groups(bootstrap)) == []

        env = {k: v for k, v in os.environ.items() if k not in _FOREIGN_ENV}
        env |= {"DATABASE_URL": postgres_url, "KAFKA_BOOTSTRAP_SERVERS": bootstrap}
        t0 = time.monotonic()
        nested = [sys.executable, "-m", "pytest", "-m", "integration", "-q", "-p", "no:cacheprovider"]
        try:
            run = subprocess.run(
                [*nested, *INTEGRATION_SLICE],
                cwd=repo_root, env=env, capture_output=True, text=True, timeout=480, check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired as err:
            out = err.stdout.decode(errors="replace") if isinstance(err.stdout, bytes) else (err.stdout or "")
            pytest.fail(f"the integration slice on the containers ran past {err.timeout:.0f} s:\n{out[-6000:]}")
        tier_s = time.monotonic() - t0
        summary = (run.stdout.strip().splitlines() or ["no output"])[-1]
        _note(f"integration slice through testcontainers: {summary} ({tier_s:.0f} s)")
        assert run.returncode == 0, (
            f"the integration slice failed on the containers:\n{run.stdout[-6000:]}{run.stderr[-3000:]}"
        )
        assert " passed" in summary, summary
        assert "skipped" not in summary, summary
        # The nested run used the containers, not the devstack: its consumer groups are on the container's broker.
        assert run_sync(lambda: _consumer_groups(bootstrap)), "no consumer group on the container's broker"
    finally:
        ids = [cid for cid in (state.docker.postgres_container, state.docker.kafka_container) if cid]
        stopped = docker_infra.stop(state)
        _note(f"stopped {', '.join(stopped) or 'nothing'}; {time.monotonic() - started:.0f} s in all")
    assert not docker_infra.active(state)
    for cid in ids:
        assert client.containers.list(all=True, filters={"id": cid}) == [], f"container {cid[:12]} is still there"
