"""ApplyRoundEvents on the in-memory stores: outcomes, replays and refusals, without I/O."""

from __future__ import annotations

import pytest
from settlement_fakes import SettlementFakes

from prizeflow_contracts.envelope import Envelope, EventPayload, new_event
from prizeflow_contracts.errors import EventRefusal
from prizeflow_contracts.events.game import EntryRecorded, RoundClosed, RoundOpened, RoundResultsReported
from prizeflow_contracts.events.settlement import EntryAccepted, RoundSettled, RoundStateChanged
from prizeflow_settlement.application import ApplyRoundEvents
from prizeflow_testkit.events import example_payload


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
    fakes, apply = SettlementFakes(), ApplyRoundEvents(source="/prizeflow/settlement")
    await apply(fakes.books, round_events())
    await apply(fakes.books, round_events())  # replays: new event ids, same facts
    for e in round_events():
        await apply(fakes.books, [e])
    settled = [e for e in fakes.outbox.events if isinstance(e.data, RoundSettled)]
    assert len(settled) == 1
    assert [e.data.to_state for e in fakes.outbox.events if isinstance(e.data, RoundStateChanged)] == [
        "open",
        "closed",
        "resolved",
        "settled",
    ]
    assert all(e.correlationid == "r-1" and e.causationid for e in fakes.outbox.events)
    assert fakes.rounds.saved["r-1"].state == "settled"


async def test_event_for_an_unknown_round_is_refused() -> None:
    fakes, apply = SettlementFakes(), ApplyRoundEvents(source="/prizeflow/settlement")
    with pytest.raises(EventRefusal) as err:
        await apply(fakes.books, [env(example_payload(RoundClosed, round_id="nope"))])
    assert err.value.reason == "unknown_aggregate"


async def test_illegal_transition_refuses_the_batch_and_changes_nothing() -> None:
    fakes, apply = SettlementFakes(), ApplyRoundEvents(source="/prizeflow/settlement")
    events = round_events()
    with pytest.raises(EventRefusal) as err:
        await apply(fakes.books, [events[0], events[4]])  # results before close
    assert err.value.reason == "illegal_transition"
    assert fakes.rounds.saved == {}
    assert fakes.outbox.events == []


async def test_outcome_event_ids_are_deterministic() -> None:
    a, b = SettlementFakes(), SettlementFakes()
    await ApplyRoundEvents(source="/s")(a.books, round_events())
    await ApplyRoundEvents(source="/s")(b.books, round_events())
    assert [e.id for e in a.outbox.events] == [e.id for e in b.outbox.events]


async def test_paid_entries_are_announced_once_under_the_rounds_own_flow_id() -> None:
    fakes, apply = SettlementFakes(), ApplyRoundEvents(source="/prizeflow/settlement")
    opened = env(example_payload(RoundOpened))
    # The game server keys its entries under another flow id: settlement's outcomes follow the round's.
    paid: Envelope[EventPayload] = new_event(
        example_payload(EntryRecorded, entry_id="e-1", player_id="p-1"), source="/g", correlation_id="x"
    )
    free = env(example_payload(EntryRecorded, entry_id="e-2", player_id="p-2", fee={"asset": "USD", "amount": 0}))
    await apply(fakes.books, [opened, paid, free])
    await apply(fakes.books, [paid])  # a redelivery with the same facts
    accepted = [e for e in fakes.outbox.events if isinstance(e.data, EntryAccepted)]
    assert [(e.data.entry_id, e.data.fee.amount, e.correlationid) for e in accepted] == [("e-1", 500, "r-1")]
    assert {e.correlationid for e in fakes.outbox.events} == {"r-1"}


async def test_an_entry_settlement_refuses_is_never_announced() -> None:
    fakes, apply = SettlementFakes(), ApplyRoundEvents(source="/prizeflow/settlement")
    await apply(fakes.books, [env(example_payload(RoundOpened)), env(example_payload(RoundClosed, entry_count=0))])
    with pytest.raises(EventRefusal) as late:
        await apply(fakes.books, [env(example_payload(EntryRecorded, entry_id="e-9", player_id="p-9"))])
    assert late.value.reason == "illegal_transition"
    with pytest.raises(EventRefusal) as unknown:
        await apply(fakes.books, [env(example_payload(EntryRecorded, round_id="no-such-round"))])
    assert unknown.value.reason == "unknown_aggregate"
    assert not [e for e in fakes.outbox.events if isinstance(e.data, EntryAccepted)]


async def test_results_placing_a_player_who_never_entered_are_refused_and_nothing_is_paid() -> None:
    fakes, apply = SettlementFakes(), ApplyRoundEvents(source="/prizeflow/settlement")
    events = round_events()
    await apply(fakes.books, events[:4])
    stranger = example_payload(
        RoundResultsReported,
        placements=[{"player_id": "p-1", "rank": 1, "score": 9}, {"player_id": "intruder", "rank": 2, "score": 8}],
    )
    with pytest.raises(EventRefusal) as err:
        await apply(fakes.books, [env(stranger)])
    assert err.value.reason == "placement_not_entered"
    assert "intruder" in err.value.detail
    assert fakes.rounds.saved["r-1"].state == "closed"
    assert not [e for e in fakes.outbox.events if isinstance(e.data, RoundSettled)]


async def test_rounds_whose_terms_need_no_entry_may_place_anyone() -> None:
    fakes, apply = SettlementFakes(), ApplyRoundEvents(source="/prizeflow/settlement")
    opened = example_payload(RoundOpened, placements_require_entry=False, entry_fee=None)
    await apply(
        fakes.books,
        [env(opened), env(example_payload(RoundClosed, entry_count=0)), env(example_payload(RoundResultsReported))],
    )
    (settled,) = [e.data for e in fakes.outbox.events if isinstance(e.data, RoundSettled)]
    assert [a.player_id for a in settled.allocations] == ["p-1", "p-2"]
