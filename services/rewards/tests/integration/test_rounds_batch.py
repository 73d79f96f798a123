"""A poll of round events paid in batches gives what paying each event in order gives."""

from __future__ import annotations

from typing import Any

import pytest
from rewards_sql import bind, sql_uow
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from prizeflow_contracts.envelope import Envelope, EventPayload, event_id_for, new_event
from prizeflow_contracts.events.settlement import EntryAccepted, RoundSettled
from prizeflow_rewards.application.campaigns import CreateCampaign, FundCampaign
from prizeflow_rewards.application.rounds import RoundMoney
from prizeflow_rewards.domain import accounts
from prizeflow_rewards.entrypoints.kafka import RoundEventsHandler
from prizeflow_runtime.auth import Principal, Role
from prizeflow_testkit.events import AT, example_payload

pytestmark = pytest.mark.integration

ADMIN = Principal("admin-1", frozenset({Role.ADMIN}))


def settled(round_id: str, campaign_id: str, shares: dict[str, int], fee: int = 0) -> Envelope[EventPayload]:
    allocations = [
        {"player_id": p, "rank": i + 1, "amount": a, "source": "pool"} for i, (p, a) in enumerate(shares.items())
    ]
    fees = [{"party": "platform", "account_id": "plat-1", "amount": {"asset": "USDC", "amount": fee}}] if fee else []
    payload = example_payload(
        RoundSettled,
        round_id=round_id,
        competition_id="comp-1",
        asset="USDC",
        prize_source="sponsored",
        campaign_id=campaign_id,
        distributable=sum(shares.values()),
        allocations=allocations,
        remainder=0,
        fees=fees,
    )
    return new_event(payload, source="/test", correlation_id=round_id)


def entry(round_id: str, player_id: str, amount: int, *, paid_via: str = "wallet") -> Envelope[EventPayload]:
    payload = EntryAccepted(
        round_id=round_id,
        entry_id=f"{round_id}-e1",
        player_id=player_id,
        fee={"asset": "USDC", "amount": amount},
        paid_via=paid_via,
        accepted_at=AT,
    )
    return new_event(payload, source="/test", correlation_id=round_id)


async def test_poll_batches_rounds_with_the_guarantees_of_one_by_one(engine: AsyncEngine) -> None:
    uow = sql_uow(engine)
    for cid, funded, low in (("camp-a", 5_000, 2_000), ("camp-b", 2_500, None)):
        # One admin action per transaction, as over HTTP.
        await CreateCampaign(uow, "/test")(
            ADMIN, campaign_id=cid, name=cid, asset="USDC", low_threshold=low, correlation_id=cid
        )
        await FundCampaign(uow, "/test")(ADMIN, campaign_id=cid, amount=funded, reference="wire-1", correlation_id=cid)
    a1 = settled("r-a1", "camp-a", {"p-1": 600, "p-2": 400}, fee=50)
    a2 = settled("r-a2", "camp-a", {"w-1": 1_000})
    a3 = settled("r-a3", "camp-a", {"p-1": 1_000})
    a4 = settled("r-a4", "camp-a", {"p-2": 1_000})
    b1, b2, b3 = (settled(f"r-b{i}", "camp-b", {"p-3": 1_000}) for i in (1, 2, 3))
    replay = new_event(a1.data, source="/test", correlation_id="r-a1")
    # r-a1's fee comes from its own entry; w-1 pays an entry with the prize of r-a2, which must therefore be
    # credited first.
    poll = [
        entry("r-a1", "p-9", 50, paid_via="external"),
        a1,
        b1,
        a2,
        entry("r-x9", "w-1", 300),
        b2,
        replay,
        a3,
        b3,
        a4,
    ]
    handler = RoundEventsHandler(RoundMoney("/test"))
    async with uow() as books:
        await handler(books, poll)
    async with uow() as books:  # a later replay of the held round changes nothing
        await handler(books, [new_event(b3.data, source="/test", correlation_id="r-b3")])

    async with engine.connect() as conn:
        refs = {
            "p-1": accounts.wallet("p-1", "USDC"),
            "p-2": accounts.wallet("p-2", "USDC"),
            "p-3": accounts.wallet("p-3", "USDC"),
            "w-1": accounts.wallet("w-1", "USDC"),
            "camp-a": accounts.pool("camp-a", "USDC"),
            "camp-b": accounts.pool("camp-b", "USDC"),
            "revenue": accounts.platform_revenue("plat-1", "USDC"),
        }
        balances = await bind(conn).ledger.balances(refs.values())
        got = {k: balances[r].posted for k, r in refs.items()}
        assert got == {
            "p-1": 1_600,
            "p-2": 1_400,
            "p-3": 2_000,
            "w-1": 700,
            "camp-a": 1_000,
            "camp-b": 500,
            "revenue": 50,
        }
        held = [tuple(r) for r in await conn.execute(text("SELECT round_id, reason FROM held_allocations"))]
        assert held == [("r-b3", "pool_exhausted")]
        rows: list[Any] = list(await conn.execute(text("SELECT event_id, event_type FROM outbox ORDER BY seq")))
    by_type: dict[str, list[Any]] = {}
    for r in rows:
        by_type.setdefault(r.event_type.split(".")[-2], []).append(r.event_id)
    expected_allocations = {
        event_id_for("RewardAllocated", round_id, player)
        for round_id, player in [
            ("r-a1", "p-1"),
            ("r-a1", "p-2"),
            ("r-a2", "w-1"),
            ("r-a3", "p-1"),
            ("r-a4", "p-2"),
            ("r-b1", "p-3"),
            ("r-b2", "p-3"),
        ]
    }
    assert sorted(by_type["RewardAllocated"]) == sorted(expected_allocations)
    assert by_type["PoolLow"] == [event_id_for("PoolLow", "camp-a", a3.id)]
    assert by_type["PoolExhausted"] == [event_id_for("PoolExhausted", "camp-b", "r-b3")]
