"""`python -m prizeflow_ton_emulator` (the emulator kit's runner): a bad setting stops start-up naming it, exit 2."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration  # a process


@pytest.mark.parametrize(
    ("name", "value"), [("TON_EMULATOR_PORT", "not-a-port"), ("TON_EMULATOR_GENESIS", '{"wallets": [{}]}')]
)
def test_a_bad_setting_exits_2_naming_it(name: str, value: str) -> None:
    env = {**os.environ, "TON_EMULATOR_PORT": "0", name: value}
    done = subprocess.run(
        [sys.executable, "-m", "prizeflow_ton_emulator"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "invalid configuration" in done.stderr
    assert name in done.stderr
