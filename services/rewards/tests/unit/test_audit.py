"""Rewards audits an admin action with the roles its actor holds; an actor holding none is refused before anything
is staged, never recorded as an admin."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from prizeflow_contracts.events.audit import AdminActionRecorded
from prizeflow_rewards.application import common
from prizeflow_runtime.auth import Principal, Role


@pytest.fixture
def staged(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """What would be staged in the outbox (the transaction is not the point here)."""
    out: list[Any] = []

    async def add_event(conn: object, envelope: Any) -> None:
        out.append(envelope)

    monkeypatch.setattr(common, "add_event", add_event)
    return out


async def fund(actor: Principal) -> None:
    await common.audit(
        object(),  # type: ignore[arg-type]
        source="/prizeflow/rewards",
        actor=actor,
        action="campaign.fund",
        target_type="campaign",
        target_id="c-1",
        correlation_id="admin-1",
    )


async def test_an_actor_without_a_known_role_is_refused_and_nothing_is_staged(staged: list[Any]) -> None:
    with pytest.raises(ValidationError, match="actor_roles"):
        await fund(Principal("ghost", frozenset()))
    assert staged == []


async def test_the_audit_names_the_roles_the_actor_holds(staged: list[Any]) -> None:
    await fund(Principal("olga", frozenset({Role.OPS})))
    [envelope] = staged
    assert isinstance(envelope.data, AdminActionRecorded)
    assert envelope.data.actor_roles == ["ops"]
