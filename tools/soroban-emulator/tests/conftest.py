"""The emulator as a real process on a free port; tests talk JSON-RPC to it (also through stellar-sdk)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from prizeflow_devstack.ports import pick_free_port
from prizeflow_soroban_emulator.client import Rpc

PASSPHRASE = "Prizeflow Emulator Tests ; 2025"


def start_emulator(log: Path, **env: str) -> tuple[subprocess.Popen[bytes], str]:
    port = pick_free_port()
    full = {
        **os.environ,
        "SOROBAN_RPC_PORT": str(port),
        "STELLAR_NETWORK_PASSPHRASE": PASSPHRASE,
        "SOROBAN_EMULATOR_SEED": "7",
        **env,
    }
    with log.open("ab") as out:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(
            [sys.executable, "-m", "prizeflow_soroban_emulator"], env=full, stdout=out, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"emulator exited: {log.read_text()}")
        try:
            with urllib.request.urlopen(url + "health", timeout=1):
                return proc, url
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"emulator not up: {log.read_text()}")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "emulator_env(**env): environment of the emulator process for this test")


@pytest.fixture
def emulator(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Rpc]:
    marker = request.node.get_closest_marker("emulator_env")
    env = dict(marker.kwargs) if marker else {}
    env.setdefault("SOROBAN_EMULATOR_LEDGER_MS", "3600000")  # tests close ledgers by hand unless they say so
    proc, url = start_emulator(tmp_path / "emulator.log", **env)
    yield Rpc(url)
    proc.terminate()
    proc.wait(timeout=10)
