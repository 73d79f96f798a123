"""ApplyRoundEvents on an in-memory store: outcomes, replays and refusals, without I/O."""

from __future__ import annotations

import copy
from collections.abc import Collection, Sequence
from typing import Any

import pytest

from prizeflow_contracts.envelope import Envelope, EventPayload, StagedEvent, decode, new_event
from prizeflow_contracts.errors import EventRefusal
from prizeflow_contracts.events.game import EntryRecorded, RoundClosed, RoundOpened, RoundResultsReported
from prizeflow_contracts.events.settlement import RoundSettled, RoundStateChanged
from prizeflow_contracts.testing import example_payload
from prizeflow_settlement.application import ApplyRoundEvents, EntryKey
from prizeflow_settlement.domain import Round


class MemoryStore:
    def __init__(self) -> None:
        self.rounds: dict[str, Round] = {}
        self.events: list[Envelope[Any]] = []

    async def lock_rounds(
        self,
        round_ids: Collection[str],
        *,
        entry_keys: Sequence[EntryKey] = (),
        full_entries_for: Collection[str] = (),
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
        # What a consumer downstream reads: the staged bytes, decoded.
        self.events.extend(decode(e.payload) if isinstance(e, StagedEvent) else e for e in events)


def env(payload: EventPayload) -> Envelope[EventPayload]:
    return new_event(payload, source="/game/test", correlation_id="r-1")


def round_events() -> list[Envelope[EventPayload]]:
    return [
        env(example_payload(RoundOpened)),
        env(example_payload(EntryRecorded, entry_id="e-1", player_id="p-1")),
        env(example_payload(EntryRecorded, entry_id="e-2", player_id="p-2")),
        env(example_payload(RoundClosed)),
        env(example_payload(RoundResultsReported)),
    ]


async def test_a_round_settles_once_even_when_every_event_is_sent_again_with_new_ids() -> None:
    store, apply = MemoryStore(), ApplyRoundEvents(source="/prizeflow/settlement")
    await apply(store, round_events())
    await apply(store, round_events())  # replays: new event ids, same facts
    for e in round_events():
        await apply(store, [e])
    settled = [e for e in store.events if isinstance(e.data, RoundSettled)]
    assert len(settled) == 1
    assert [e.data.to_state for e in store.events if isinstance(e.data, RoundStateChanged)] == [
        "open",
        "closed",
        "resolved",
        "settled",
    ]
    assert all(e.correlationid == "r-1" and e.causationid for e in store.events)
    assert store.rounds["r-1"].state == "settled"


async def test_event_for_an_unknown_round_is_refused() -> None:
    store, apply = MemoryStore(), ApplyRoundEvents(source="/prizeflow/settlement")
    with pytest.raises(EventRefusal) as err:
        await apply(store, [env(example_payload(RoundClosed, round_id="nope"))])
    assert err.value.reason == "unknown_aggregate"


async def test_illegal_transition_refuses_the_batch_and_changes_nothing() -> None:
    store, apply = MemoryStore(), ApplyRoundEvents(source="/prizeflow/settlement")
    events = round_events()
    with pytest.raises(EventRefusal) as err:
        await apply(store, [events[0], events[4]])  # results before close
    assert err.value.reason == "illegal_transition"
    assert store.rounds == {}
    assert store.events == []


async def test_outcome_event_ids_are_deterministic() -> None:
    a, b = MemoryStore(), MemoryStore()
    await ApplyRoundEvents(source="/s")(a, round_events())
    await ApplyRoundEvents(source="/s")(b, round_events())
    assert [e.id for e in a.events] == [e.id for e in b.events]
