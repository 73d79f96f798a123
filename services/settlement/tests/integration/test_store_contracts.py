"""The stores' contract: each test runs against the in-memory fakes the unit tests use (`tests/support`) and against
the PostgreSQL stores on a migrated database, through the same unit of work (pyeventsourcing's abstract recorder
tests: one body of tests, one fixture per implementation). A fake that drifts from its SQL store fails here."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from settlement_fakes import SettlementFakes
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from prizeflow_contracts.envelope import Envelope, decode, new_event, stage_event
from prizeflow_contracts.events.game import EntryRecorded, Placement, RoundOpened
from prizeflow_contracts.events.settlement import RoundState
from prizeflow_runtime.db import session_factory
from prizeflow_runtime.sql_uow import SqlUnitOfWork
from prizeflow_runtime.uow import UnitOfWork
from prizeflow_settlement.adapters.books import bind
from prizeflow_settlement.adapters.spec_cache import SpecCache
from prizeflow_settlement.application.books import Books
from prizeflow_settlement.application.ports import EntryKey
from prizeflow_settlement.domain.results import ResultSet
from prizeflow_settlement.domain.round import Round
from prizeflow_testkit.events import example_payload

pytestmark = pytest.mark.integration

AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@dataclass
class Harness:
    """One implementation of the books: its unit of work, and what its outbox holds (in order)."""

    uow: UnitOfWork[Books]
    staged: Callable[[], Awaitable[list[Envelope[Any]]]]


@pytest.fixture(params=["fake", "sql"])
def harness(request: pytest.FixtureRequest) -> Harness:
    """Synchronous, so that only the SQL case asks for a database (`getfixturevalue`)."""
    if request.param == "fake":
        fakes = SettlementFakes()

        async def fake_staged() -> list[Envelope[Any]]:
            return list(fakes.outbox.events)

        return Harness(fakes.uow, fake_staged)
    engine: AsyncEngine = request.getfixturevalue("engine")

    async def sql_staged() -> list[Envelope[Any]]:
        async with engine.connect() as conn:
            rows = (await conn.execute(text("SELECT payload FROM outbox ORDER BY seq"))).scalars().all()
        return [decode(bytes(r)) for r in rows]

    return Harness(SqlUnitOfWork(session_factory(engine), functools.partial(bind, specs=SpecCache(0))), sql_staged)


def opened(round_id: str = "r-1", **terms: object) -> Round:
    spec = example_payload(RoundOpened, round_id=round_id, opened_at=AT, **terms)
    return Round.open(spec, correlation_id=round_id, at=AT, cause_id="ev-open")


PLAYERS = [EntryKey("r-1", None, "p0"), EntryKey("r-1", None, "p1")]


def entry(round_id: str, n: int) -> EntryRecorded:
    return example_payload(EntryRecorded, round_id=round_id, entry_id=f"{round_id}-e{n}", player_id=f"p{n}")


async def with_entries(h: Harness, round_id: str = "r-1", players: int = 3) -> None:
    r = opened(round_id)
    for n in range(players):
        r.record_entry(entry(round_id, n), at=AT)
    async with h.uow() as books:
        await books.rounds.save([r])


async def lock(h: Harness, *round_ids: str, **kw: Any) -> dict[str, Round]:
    async with h.uow() as books:
        return await books.rounds.lock_rounds(round_ids, **kw)


async def test_nothing_is_found_for_ids_never_saved(harness: Harness) -> None:
    assert await lock(harness) == {}
    assert await lock(harness, "r-none") == {}


async def test_a_saved_round_is_locked_back_as_it_was_saved_with_nothing_pending(harness: Harness) -> None:
    r = opened()
    spec = r.spec
    async with harness.uow() as books:
        await books.rounds.save([r])
    assert (r.pending_events, r.pending_transitions, r.is_new, r.dirty) == ([], [], False, False)  # cleared by save
    back = (await lock(harness, "r-1", "r-other"))["r-1"]
    assert (back.round_id, back.correlation_id, back.competition_id) == ("r-1", "r-1", spec.competition_id)
    assert back.spec == spec
    assert (back.state, back.reached, back.version) == (RoundState.OPEN, {RoundState.OPEN}, 0)
    assert (back.pot, back.entries_seen) == (0, 0)
    assert (back.is_new, back.dirty, back.pending_events, back.pending_transitions) == (False, False, [], [])
    assert (back.cause_id, back.last_actor, back.results, back.had_results) == (None, None, None, False)


async def test_entries_are_loaded_only_as_asked(harness: Harness) -> None:
    await with_entries(harness)
    bare = (await lock(harness, "r-1"))["r-1"]
    assert (bare.entries, bare.players, bare.all_entries_loaded) == ({}, {}, False)
    assert (bare.entries_seen, bare.pot) == (3, 1500)
    keys = [EntryKey("r-1", "r-1-e0", "nobody"), EntryKey("r-1", None, "p2"), EntryKey("r-other", "r-1-e1", "p1")]
    keyed = (await lock(harness, "r-1", entry_keys=keys))["r-1"]
    assert sorted(keyed.entries) == ["r-1-e0", "r-1-e2"]  # by entry id, and by player
    assert keyed.players == {"p0": "r-1-e0", "p2": "r-1-e2"}
    assert keyed.all_entries_loaded is False
    assert keyed.entries["r-1-e0"].fee.amount == 500
    full = (await lock(harness, "r-1", full_entries_for=["r-1", "r-other"]))["r-1"]
    assert sorted(full.entries) == ["r-1-e0", "r-1-e1", "r-1-e2"]
    assert full.all_entries_loaded is True


async def test_each_saved_change_comes_back_and_counts_a_version(harness: Harness) -> None:
    await with_entries(harness, players=2)
    async with harness.uow() as books:
        r = (await books.rounds.lock_rounds(["r-1"], entry_keys=PLAYERS))["r-1"]
        r.close(entry_count=2, closed_at=AT, at=AT)
        await books.rounds.save([r])
    closed = (await lock(harness, "r-1"))["r-1"]
    assert (closed.state, closed.version, closed.entries_expected, closed.closed_at) == (RoundState.CLOSED, 1, 2, AT)
    later = AT + timedelta(minutes=1)
    placements = [Placement(player_id="p0", rank=1, score=9), Placement(player_id="p1", rank=2, score=5)]
    results = ResultSet.of(placements, reported_at=later, event_id="ev-results")
    async with harness.uow() as books:
        r = (await books.rounds.lock_rounds(["r-1"], entry_keys=PLAYERS))["r-1"]
        r.report_results(results, at=later)
        await books.rounds.save([r])
    settled = (await lock(harness, "r-1"))["r-1"]
    assert settled.state is RoundState.SETTLED
    assert settled.reached == {RoundState.OPEN, RoundState.CLOSED, RoundState.RESOLVED, RoundState.SETTLED}
    assert (settled.version, settled.settled_at, settled.hold_reason) == (2, later, None)
    assert settled.results is not None
    assert (settled.results.digest, settled.had_results) == (results.digest, True)


async def test_a_round_saved_unchanged_is_not_written(harness: Harness) -> None:
    await with_entries(harness, players=1)
    async with harness.uow() as books:
        r = (await books.rounds.lock_rounds(["r-1"], full_entries_for=["r-1"]))["r-1"]
        r.record_entry(entry("r-1", 0), at=AT)  # the same entry again: a replay, nothing changes
        await books.rounds.save([r])
    back = (await lock(harness, "r-1"))["r-1"]
    assert (back.version, back.entries_seen) == (0, 1)


async def test_a_dispute_is_kept_until_an_admin_resolves_it(harness: Harness) -> None:
    await with_entries(harness, players=2)
    first = ResultSet.of([Placement(player_id="p0", rank=1, score=9)], reported_at=AT, event_id="ev-1")
    other = ResultSet.of([Placement(player_id="p1", rank=1, score=9)], reported_at=AT, event_id="ev-2")
    async with harness.uow() as books:
        r = (await books.rounds.lock_rounds(["r-1"], entry_keys=PLAYERS))["r-1"]
        r.close(entry_count=3, closed_at=AT, at=AT)  # one entry missing: the results are held
        r.report_results(first, at=AT)
        r.report_results(other, at=AT)
        await books.rounds.save([r])
    held = (await lock(harness, "r-1"))["r-1"]
    assert (held.state, held.disputed, held.hold_reason) == (RoundState.RESOLVED, True, "disputed")
    async with harness.uow() as books:
        r = (await books.rounds.lock_rounds(["r-1"], entry_keys=PLAYERS))["r-1"]
        r.admin_resolve(other, reason="reviewed", actor="olga", at=AT)
        await books.rounds.save([r])
    done = (await lock(harness, "r-1"))["r-1"]
    assert (done.state, done.disputed, done.hold_reason) == (RoundState.SETTLED, False, None)
    assert done.results is not None
    assert done.results.digest == other.digest


async def test_events_are_staged_in_order_and_only_if_the_transaction_commits(harness: Harness) -> None:
    first = new_event(example_payload(RoundOpened, round_id="r-1"), source="/t", correlation_id="r-1")
    second = stage_event(example_payload(RoundOpened, round_id="r-2"), source="/t", correlation_id="r-2")
    async with harness.uow() as books:
        await books.outbox.stage([first, second])
    with pytest.raises(RuntimeError, match="boom"):
        async with harness.uow() as books:
            await books.outbox.stage([new_event(example_payload(RoundOpened), source="/t", correlation_id="x")])
            raise RuntimeError("boom")
    staged = await harness.staged()
    assert [e.id for e in staged] == [first.id, second.id]
    assert staged[0].data == first.data


async def test_a_transaction_that_fails_leaves_no_round_behind(harness: Harness) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        async with harness.uow() as books:
            await books.rounds.save([opened()])
            raise RuntimeError("boom")
    assert await lock(harness, "r-1") == {}
