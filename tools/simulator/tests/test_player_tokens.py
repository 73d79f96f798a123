"""Simulated players and ops sign their tokens with the dev identity, for rewards' audience; never outside dev."""

from __future__ import annotations

import pytest

from prizeflow_rewards.settings import RewardsSettings
from prizeflow_runtime.auth import Role, token_verifier
from prizeflow_simulator.service import SimulatorSettings, player_tokens
from prizeflow_testkit.production import PRODUCTION_ENV


async def test_player_tokens_are_accepted_by_rewards_in_the_dev_profile() -> None:
    minter = player_tokens(SimulatorSettings())  # the test session's dev profile and identity
    token = minter.bearer("p-42", "player")["Authorization"].removeprefix("Bearer ")
    principal = await token_verifier(RewardsSettings()).verify(token)
    assert (principal.user_id, principal.roles) == ("p-42", frozenset({Role.PLAYER}))


def test_outside_the_dev_profile_the_simulator_mints_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRIZEFLOW_PROFILE", "production")
    for key, value in PRODUCTION_ENV.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SystemExit, match="PRIZEFLOW_PROFILE=dev"):
        player_tokens(SimulatorSettings())
