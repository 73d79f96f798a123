"""Rewards audits an admin action with the roles its actor holds; an actor holding none is refused before anything
is staged, never recorded as an admin."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from pydantic import ValidationError

from prizeflow_contracts.events.audit import AdminActionRecorded
from prizeflow_rewards.application import common
from prizeflow_runtime.auth import Principal, Role


class Staged:
    """What would be staged in the outbox (the transaction is not the point here)."""

    def __init__(self) -> None:
        self.events: list[Any] = []

    async def stage(self, events: Sequence[Any]) -> None:
        self.events.extend(events)


@pytest.fixture
def staged() -> Staged:
    return Staged()


async def fund(staged: Staged, actor: Principal) -> None:
    await common.audit(
        staged,
        source="/prizeflow/rewards",
        actor=actor,
        action="campaign.fund",
        target_type="campaign",
        target_id="c-1",
        correlation_id="admin-1",
    )


async def test_an_actor_without_a_known_role_is_refused_and_nothing_is_staged(staged: Staged) -> None:
    with pytest.raises(ValidationError, match="actor_roles"):
        await fund(staged, Principal("ghost", frozenset()))
    assert staged.events == []


async def test_the_audit_names_the_roles_the_actor_holds(staged: Staged) -> None:
    await fund(staged, Principal("olga", frozenset({Role.OPS})))
    [envelope] = staged.events
    assert isinstance(envelope.data, AdminActionRecorded)
    assert envelope.data.actor_roles == ["ops"]
