"""The round-terms cache on real PostgreSQL: what it serves is what the row holds, and only committed rows
reach it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from prizeflow_contracts.envelope import Envelope, EventPayload, new_event
from prizeflow_contracts.events.game import GameRoundVoided, RoundOpened
from prizeflow_settlement.adapters.books import bind
from prizeflow_settlement.adapters.rounds_pg import SqlRoundStore
from prizeflow_settlement.adapters.spec_cache import SpecCache
from prizeflow_settlement.application.apply_round_events import ApplyRoundEvents
from prizeflow_testkit.events import example_payload

pytestmark = pytest.mark.integration

AT = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def opened(round_id: str, **terms: object) -> RoundOpened:
    return example_payload(RoundOpened, round_id=round_id, opened_at=AT, **terms)


async def open_round(
    engine: AsyncEngine, spec: RoundOpened, *, commit: bool = True, cache: SpecCache | None = None
) -> None:
    apply = ApplyRoundEvents(source="/settlement/test")
    async with AsyncSession(engine) as session:
        await session.begin()
        opening: Envelope[EventPayload] = new_event(spec, source="/game/t", correlation_id=spec.round_id)
        await apply(bind(session, specs=cache), [opening])
        await (session.commit() if commit else session.rollback())


async def lock(engine: AsyncEngine, cache: SpecCache, *round_ids: str) -> dict[str, RoundOpened]:
    async with AsyncSession(engine) as session, session.begin():
        return {rid: r.spec for rid, r in (await SqlRoundStore(session, cache).lock_rounds(round_ids)).items()}


async def test_a_locked_round_gets_its_terms_from_the_row_once_then_from_the_cache(engine: AsyncEngine) -> None:
    a, b = opened("r-a"), opened("r-b", competition_id="comp-b")
    await open_round(engine, a)
    await open_round(engine, b)
    cache = SpecCache(10)
    first = await lock(engine, cache, "r-a", "r-b", "r-unknown")
    assert first == {"r-a": a, "r-b": b}
    assert len(cache) == 2
    assert cache.get("r-b") is first["r-b"]
    again = await lock(engine, cache, "r-a", "r-b")
    assert again["r-a"] is first["r-a"]  # served from memory
    assert again["r-b"] is first["r-b"]
    assert await lock(engine, SpecCache(0), "r-a") == {"r-a": a}  # disabled: read from the row


async def test_a_round_opened_here_is_cached_once_committed_and_never_if_rolled_back(engine: AsyncEngine) -> None:
    cache = SpecCache(10)
    await open_round(engine, opened("r-x", competition_id="comp-old"), commit=False, cache=cache)
    assert len(cache) == 0
    assert await lock(engine, cache, "r-x") == {}
    assert len(cache) == 0
    committed = opened("r-x", competition_id="comp-new")
    await open_round(engine, committed, cache=cache)
    assert cache.get("r-x") is committed
    # What the cache serves is what the row holds.
    assert await lock(engine, SpecCache(0), "r-x") == {"r-x": committed}
    assert await lock(engine, cache, "r-x") == {"r-x": committed}


def test_the_cache_is_bounded_and_drops_the_oldest_first() -> None:
    cache = SpecCache(2)
    specs = {rid: opened(rid) for rid in ("r-1", "r-2", "r-3")}
    for rid, spec in specs.items():
        cache.put(rid, spec)
    assert len(cache) == 2
    assert cache.get("r-1") is None
    assert cache.get("r-3") is specs["r-3"]
    cache.put("r-2", specs["r-2"])  # known: nothing is evicted
    assert cache.get("r-2") is specs["r-2"]
    assert cache.get("r-3") is specs["r-3"]
    disabled = SpecCache(0)
    disabled.put("r-1", specs["r-1"])
    assert len(disabled) == 0
    with pytest.raises(ValueError, match="capacity"):
        SpecCache(-1)


async def test_a_finished_round_leaves_the_cache_once_that_is_committed(engine: AsyncEngine) -> None:
    """The cache holds live rounds: a voided (or settled) one is forgotten, so memory follows the rounds in play,
    not the last `capacity` ever opened (a soak read 20,000 cached terms, ~60 MB, as a leak)."""
    cache = SpecCache(10)
    await open_round(engine, opened("r-live"), cache=cache)
    await open_round(engine, opened("r-done"), cache=cache)
    apply = ApplyRoundEvents(source="/settlement/test")
    voiding: Envelope[EventPayload] = new_event(
        example_payload(GameRoundVoided, round_id="r-done", voided_at=AT), source="/game/t", correlation_id="r-done"
    )
    async with AsyncSession(engine) as session:
        await session.begin()
        await apply(bind(session, specs=cache), [voiding])
        assert cache.get("r-done") is not None  # not before the commit: a rollback would leave it live
        await session.commit()
    assert cache.get("r-done") is None
    assert cache.get("r-live") is not None
