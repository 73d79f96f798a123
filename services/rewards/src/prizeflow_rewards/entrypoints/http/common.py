"""What every rewards controller shares: request bodies' base, who the caller is, the role guards, the read side."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.di import NamedDependency
from pydantic import BaseModel, ConfigDict

from prizeflow_rewards.application.queries import RewardsQueries
from prizeflow_rewards.domain.claims import Claim
from prizeflow_runtime.auth import Principal, Role, require_roles
from prizeflow_runtime.http import ProblemError

Queries = NamedDependency[RewardsQueries]

ADMIN = [require_roles(Role.ADMIN)]
STAFF = [require_roles(Role.ADMIN, Role.OPS)]
PLAYER = [require_roles(Role.PLAYER)]
CORRECTORS = [require_roles(Role.ADMIN, Role.OPS)]
# The second person of a correction holds the approver role, as for payouts: an admin alone never moves money.
APPROVERS = [require_roles(Role.APPROVER)]
LEDGER_READERS = [require_roles(Role.ADMIN, Role.OPS, Role.APPROVER)]

KEY_PATTERN = r"^[A-Za-z0-9:_\-]{1,128}$"


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def principal(request: Request[Any, Any, Any]) -> Principal:
    user = request.user
    assert isinstance(user, Principal)
    return user


def own_or_staff(request: Request[Any, Any, Any], player_id: str) -> None:
    """BOLA guard: a player token reads only its own wallet and claims; admin and ops read all."""
    p = principal(request)
    if p.has_any(Role.ADMIN, Role.OPS):
        return
    if p.has_any(Role.PLAYER) and p.user_id == player_id:
        return
    raise ProblemError(403, "forbidden", "a player may only read their own wallet and claims")


def claim_view(request: Request[Any, Any, Any], claim: Claim) -> dict[str, Any]:
    """Staff (admin, ops, approver) see why a claim waits, with the rules' numbers; anyone else (the player it
    pays) sees the next step only: never a threshold, window, count or score."""
    if principal(request).has_any(Role.ADMIN, Role.OPS, Role.APPROVER):
        return claim.view()
    return claim.player_view()


__all__ = [
    "ADMIN",
    "APPROVERS",
    "CORRECTORS",
    "KEY_PATTERN",
    "LEDGER_READERS",
    "PLAYER",
    "STAFF",
    "Body",
    "Queries",
    "claim_view",
    "own_or_staff",
    "principal",
]
