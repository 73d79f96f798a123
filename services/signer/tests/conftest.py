"""Shared fixtures: a real SoftHSM2 token with an Ed25519 key (session-wide: SoftHSM reads its config once)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "support"))  # `signer_fakes`: the in-memory stores

from prizeflow_signer.softhsm import DEFAULT_KEY_LABEL, SoftHsmToken


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> SoftHsmToken:
    token = SoftHsmToken.create(Path(tmp_path_factory.mktemp("softhsm")))
    token.generate_key(DEFAULT_KEY_LABEL)
    return token
