"""A member of staff who also plays, acting on their own wallet: the rules that keep a second person in the loop
(claim holds, the risk flag, admin credits) must not be undone by the person they protect against."""

from __future__ import annotations

import pytest
from rewards_fakes import Fakes

from prizeflow_rewards.application.wallets import SetRiskFlag, TopUp
from prizeflow_rewards.domain import accounts
from prizeflow_runtime.auth import Principal, Role
from prizeflow_runtime.errors import ErrorKind, UseCaseError


@pytest.mark.parametrize("role", [Role.OPS, Role.ADMIN])
async def test_staff_never_clear_nor_set_their_own_risk_flag(role: Role) -> None:
    """Cleared by its own subject, the flag that holds a player's claims for review stops holding them."""
    f = Fakes()
    f.players.flags["eve"] = True
    flag = SetRiskFlag(f.uow, "/test")
    with pytest.raises(UseCaseError) as err:
        await flag(Principal("eve", frozenset({Role.PLAYER, role})), player_id="eve", flagged=False, reason="ok",
                   correlation_id="c-1")  # fmt: skip
    assert (err.value.kind, err.value.code) == (ErrorKind.FORBIDDEN, "self_review")
    assert f.players.flags["eve"] is True
    await flag(Principal("olivia", frozenset({role})), player_id="eve", flagged=False, reason="ok", correlation_id="c")
    assert not f.players.flags.get("eve")


async def test_an_admin_never_credits_their_own_wallet() -> None:
    f = Fakes()
    credit = TopUp(f.uow, "/test")
    with pytest.raises(UseCaseError, match="own wallet"):
        await credit(Principal("adam", frozenset({Role.ADMIN, Role.PLAYER})), player_id="adam", asset="USDC",
                     amount=10_000_000, provider="manual", reference="r-1", correlation_id="c-1")  # fmt: skip
    assert f.ledger.of(accounts.wallet("adam", "USDC")).posted == 0
