"""The emulator as a real process on a free port (the testkit's runner); tests talk JSON-RPC to it (also through
stellar-sdk) and drive it through its `/_emulator` admin (`Rpc.admin`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from prizeflow_soroban_emulator.client import Rpc
from prizeflow_testkit.stellar import emulator_process

PASSPHRASE = "Prizeflow Emulator Tests ; 2025"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "emulator_env(**env): environment of the emulator process for this test")


@pytest.fixture
def emulator(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Rpc]:
    marker = request.node.get_closest_marker("emulator_env")
    env = {"STELLAR_NETWORK_PASSPHRASE": PASSPHRASE, **(dict(marker.kwargs) if marker else {})}
    env.setdefault("SOROBAN_EMULATOR_LEDGER_MS", "3600000")  # tests close ledgers by hand unless they say so
    proc, url = emulator_process(tmp_path / "emulator.log", env=env)
    proc.start(timeout=90)  # a process start on a loaded CI machine
    yield Rpc(url)
    proc.stop(timeout=10)
