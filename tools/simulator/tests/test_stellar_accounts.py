"""The simulator's Stellar destinations are made on the Soroban RPC emulator through its `/_emulator` admin."""

from __future__ import annotations

from pathlib import Path

import pytest

from prizeflow_simulator.players import stellar_accounts
from prizeflow_soroban_emulator.client import Rpc
from prizeflow_testkit.stellar import emulator_process

pytestmark = pytest.mark.integration  # the emulator runs as a process


async def test_destination_accounts_exist_with_a_usdc_trustline(tmp_path: Path) -> None:
    proc, url = emulator_process(tmp_path / "emulator.log", env={"SOROBAN_EMULATOR_LEDGER_MS": "3600000"})
    proc.start(timeout=90)
    try:
        accounts = await stellar_accounts(url, 3)
        assert len(set(accounts)) == 3
        for account in accounts:
            found = Rpc(url).admin.account(account)
            assert found is not None
            assert sorted(k.split(":")[0] for k in found["balances"]) == ["USDC", "native"], found["balances"]
    finally:
        proc.stop(timeout=10)
