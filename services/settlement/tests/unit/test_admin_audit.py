"""An admin action is audited with the roles its actor holds: an actor holding none is refused, never recorded
as an admin (the fallback that used to fill in `admin` is gone)."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Collection, Sequence
from contextlib import asynccontextmanager
from typing import Any

import pytest
from pydantic import ValidationError

from prizeflow_contracts.envelope import Envelope, StagedEvent, new_event
from prizeflow_contracts.events.audit import AdminActionRecorded
from prizeflow_contracts.events.game import RoundOpened
from prizeflow_settlement.application import ApplyRoundEvents, EntryKey
from prizeflow_settlement.application.admin import Actor, VoidRound
from prizeflow_settlement.domain import Round
from prizeflow_testkit.events import example_payload


class MemoryStore:
    def __init__(self) -> None:
        self.rounds: dict[str, Round] = {}
        self.events: list[Envelope[Any] | StagedEvent] = []

    async def lock_rounds(
        self, round_ids: Collection[str], *, entry_keys: Sequence[EntryKey] = (), full_entries_for: Collection[str] = ()
    ) -> dict[str, Round]:
        out = {rid: copy.deepcopy(self.rounds[rid]) for rid in round_ids if rid in self.rounds}
        for r in out.values():
            r.all_entries_loaded = True
        return out

    async def save(self, rounds: Sequence[Round]) -> None:
        for r in rounds:
            r.clear_pending()
            self.rounds[r.round_id] = copy.deepcopy(r)

    async def add_events(self, events: Sequence[Envelope[Any] | StagedEvent]) -> None:
        self.events.extend(events)


async def open_round() -> tuple[MemoryStore, VoidRound]:
    store = MemoryStore()
    await ApplyRoundEvents(source="/s")(
        store, [new_event(example_payload(RoundOpened), source="/g", correlation_id="r-1")]
    )
    store.events.clear()

    @asynccontextmanager
    async def stores() -> AsyncIterator[MemoryStore]:
        yield store

    return store, VoidRound(stores=stores, source="/prizeflow/settlement", service="settlement")


@pytest.mark.parametrize("roles", [(), ("superuser",)])
async def test_an_actor_without_a_known_role_is_refused_and_nothing_changes(roles: tuple[str, ...]) -> None:
    store, void = await open_round()
    with pytest.raises(ValidationError, match="actor_roles"):
        await void("r-1", reason="no role", actor=Actor(user_id="ghost", roles=roles))
    assert store.rounds["r-1"].state == "open"
    assert store.events == []


async def test_the_audit_names_the_roles_the_actor_holds() -> None:
    store, void = await open_round()
    await void("r-1", reason="server crashed", actor=Actor(user_id="olga", roles=("ops", "admin", "nope")))
    audits = [e.data for e in store.events if isinstance(e, Envelope) and isinstance(e.data, AdminActionRecorded)]
    assert [(a.actor_user_id, a.actor_roles) for a in audits] == [("olga", ["admin", "ops"])]
