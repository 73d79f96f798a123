"""Repository-wide test rules.

The unit tier (tests without the `integration`, `e2e` or `faults` marker) runs without infrastructure: a unit
test that opens a network connection, binds a port or starts a process fails, naming what it did. Such a test
belongs in the integration tier (mark it, and move it under `tests/integration/`).
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import pytest

# urllib3 probes for IPv6 by binding a socket when it is first imported (stellar_sdk and stripe import it): done
# here, before any test, so a unit test that merely imports such a library is not taken for one using the network.
import urllib3  # noqa: F401

# `browser`: Playwright drives Chromium as a process, over a pipe, and the page loads over HTTP.
RESTARTS_INFRA_FILES = ("tests/faults/", "tools/devstack/tests/test_integration.py")
OUTSIDE_THE_UNIT_TIER = ("integration", "e2e", "faults", "containers", "k8s", "browser", "cluster")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test under an `integration/` directory carries the marker (a `pytestmark` in a conftest does not apply
    to the tests beside it): else `-m "not integration"` would run it in the unit tier, where the guard below
    fails it."""
    unmarked = [
        item.nodeid
        for item in items
        if "integration" in item.path.parts[:-1] and item.get_closest_marker("integration") is None
    ]
    if unmarked:
        raise pytest.UsageError("tests under integration/ without the integration marker: " + ", ".join(unmarked))
    # `make test` runs the tests that restart PostgreSQL or Kafka from these files only (RESTARTS_INFRA in the
    # Makefile): one marked anywhere else would run in no lane at all.
    stray = [
        item.nodeid
        for item in items
        if item.get_closest_marker("restarts_infra") is not None and not item.nodeid.startswith(RESTARTS_INFRA_FILES)
    ]
    if stray:
        raise pytest.UsageError(
            "restarts_infra tests outside RESTARTS_INFRA_FILES (conftest.py and the Makefile): " + ", ".join(stray)
        )


class UnitTierViolation(BaseException):
    """A unit test reached for a socket or a process. A BaseException, so that no `except Exception` (or
    `except OSError`) retry loop swallows it and waits until its timeout."""


def _refuse(what: str, seen: list[str]) -> Callable[..., Any]:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        target = [a for a in args if not isinstance(a, (socket.socket, subprocess.Popen))][:1]
        seen.append(f"{what}: {target[0] if target else ''}")
        raise UnitTierViolation(
            f"a unit test {what}: mark it integration (or e2e/faults) and move it to tests/integration/"
        )

    return refuse


@pytest.fixture(autouse=True)
def _unit_tier_guard(request: pytest.FixtureRequest) -> Iterator[None]:
    if any(request.node.get_closest_marker(m) for m in OUTSIDE_THE_UNIT_TIER):
        yield
        return
    seen: list[str] = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket.socket, "connect", _refuse("connected a socket", seen))
        mp.setattr(socket.socket, "connect_ex", _refuse("connected a socket", seen))
        mp.setattr(socket.socket, "bind", _refuse("bound a socket", seen))
        mp.setattr(socket, "create_connection", _refuse("connected a socket", seen))
        mp.setattr(subprocess.Popen, "__init__", _refuse("started a process", seen))
        mp.setattr(asyncio, "create_subprocess_exec", _refuse("started a process", seen))
        mp.setattr(asyncio, "create_subprocess_shell", _refuse("started a process", seen))
        mp.setattr(os, "system", _refuse("started a process", seen))
        mp.setattr(os, "fork", _refuse("forked", seen))
        yield
    if seen:
        pytest.fail(f"a unit-tier test used the network or a process: {seen}", pytrace=False)
