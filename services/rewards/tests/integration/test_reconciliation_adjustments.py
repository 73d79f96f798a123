"""Reconciliation adjustments on real PostgreSQL (and Kafka): one transfer treasury → provider_external per adjustment
id, posted once however often it arrives, another body for the id dead-lettered as `conflicting_event`, and the
ledger still summing to zero per asset."""

from __future__ import annotations

from typing import Any

import pytest
from rewards_sql import bind, sql_uow
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from prizeflow_contracts.envelope import Envelope, EventPayload, new_event
from prizeflow_contracts.errors import EventRefusal
from prizeflow_contracts.events.payouts import PayoutPaid, ReconciliationAdjusted
from prizeflow_contracts.providers import DestinationType, PayoutDestination
from prizeflow_contracts.topics import PAYOUT_EVENTS
from prizeflow_rewards.application.claims import ClaimPolicy, SettlePayout, SubmitClaim
from prizeflow_rewards.domain import accounts
from prizeflow_rewards.domain.ledger import Transfer, TransferKind
from prizeflow_rewards.entrypoints.kafka import PayoutEventsHandler
from prizeflow_runtime.auth import Principal, Role
from prizeflow_runtime.db import create_engine
from prizeflow_testkit import eventually
from prizeflow_testkit.events import AT, example_payload
from prizeflow_testkit.rewards import STELLAR_KEY, Running, routes_event, running_app, settings_for

pytestmark = pytest.mark.integration

ADJUSTMENT_KINDS = ("reconciliation_fee", "reconciliation_write_off")


def adjusted(
    adjustment_id: str, *, kind: str = "write_off", provider: str = "stellar", amount: int = 700, asset: str = "USDC"
) -> Envelope[EventPayload]:
    payload = ReconciliationAdjusted.model_validate(
        {
            "adjustment_id": adjustment_id,
            "exception_id": 7,
            "kind": kind,
            "provider": provider,
            "provider_name": provider,
            "amount": {"asset": asset, "amount": amount},
            "approved_by": ["ops-1", "approver-1"],
            "reason": "the provider's statement shows a payout nothing of ours explains",
            "adjusted_at": AT,
        }
    )
    return new_event(payload, source="/prizeflow/payouts", correlation_id=f"recon-{adjustment_id}")


async def rows(database_url: str, query: str) -> list[Any]:
    engine = create_engine(database_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            return list(await conn.execute(text(query)))
    finally:
        await engine.dispose()


async def ledger_sums(database_url: str) -> list[tuple[str, int, int]]:
    """Per asset, the net posted and pending balance of every account: zero in a double-entry ledger."""
    return [
        (r.asset, int(r.posted), int(r.pending))
        for r in await rows(
            database_url,
            "SELECT asset, sum(credits_posted - debits_posted) AS posted, "
            "sum(credits_pending - debits_pending) AS pending FROM ledger_accounts GROUP BY asset ORDER BY asset",
        )
    ]


async def posted_adjustments(database_url: str) -> list[tuple[str, str, str, int, str, str]]:
    return [
        (r.kind, r.debit, r.credit, r.amount, r.business_key, r.correlation_id)
        for r in await rows(
            database_url,
            "SELECT t.kind, d.kind || ':' || d.owner_id AS debit, c.kind || ':' || c.owner_id AS credit, t.amount, "
            "t.business_key, t.correlation_id FROM ledger_transfers t "
            "JOIN ledger_accounts d ON d.id = t.debit_account_id JOIN ledger_accounts c ON c.id = t.credit_account_id "
            f"WHERE t.kind IN {ADJUSTMENT_KINDS!r} ORDER BY t.seq",
        )
    ]


async def consumed(app: Running, n: int) -> None:
    """Wait until the consumers have settled `n` records (applied or dead-lettered); redeliveries do not count."""

    async def total() -> float:
        metrics = (await app.client.get("/metrics")).text
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in metrics.splitlines()
            if line.startswith("prizeflow_rewards_events_consumed_total{") and 'outcome="duplicate"' not in line
        )

    await eventually(total, lambda t: t >= n, timeout=60)


async def test_a_poll_posts_adjustments_beside_claim_outcomes_once_and_refuses_another_body(
    engine: AsyncEngine, database_url: str
) -> None:
    """In a strict ledger (any account not taken by the transaction's first lock is refused), a poll mixing a paid
    claim and adjustments applies all of them; the same poll again moves nothing; another body for an adjustment
    id is refused naming its event, and its transaction leaves nothing."""
    uow = sql_uow(engine)
    async with uow() as books:
        await books.routes.publish(routes_event().data)
        await books.ledger.apply(
            [
                Transfer.of(
                    accounts.external("stripe", "USDC"), accounts.wallet("p-1", "USDC"), 5_000, TransferKind.TOP_UP, "t"
                )
            ],
        )
    submit = SubmitClaim(ClaimPolicy({"USDC": 1}, {"USDC": 10**9}, {"USDC": 10**9}, new_destination_cooldown_s=0), "/t")
    async with uow() as books:
        claim, _ = await submit(
            books,
            Principal("p-1", frozenset({Role.PLAYER})),
            player_id="p-1",
            asset="USDC",
            amount=1_000,
            destination=PayoutDestination(type=DestinationType.STELLAR_ACCOUNT, address=STELLAR_KEY),
        )
    paid = example_payload(
        PayoutPaid,
        payout_id="po-1",
        payout_request_id=claim.payout_request_id,
        claim_id=claim.id,
        player_id="p-1",
        amount={"asset": "USDC", "amount": 1_000},
        provider="stellar",
        idempotency_key=f"{claim.id}:payout",
        paid_at=AT,
    )
    handler = PayoutEventsHandler(SettlePayout())
    poll: list[Envelope[EventPayload]] = [
        new_event(paid, source="/payouts", correlation_id=claim.id),
        adjusted("adj-1"),  # the treasury holds nothing in USDC: a loss posts anyway
        adjusted("adj-2", kind="fee", amount=3),
        adjusted("adj-1"),  # re-emitted under another event id within the poll
    ]
    for _ in range(2):  # the same facts again (new event ids: the inbox would not stop them)
        async with uow() as books:
            await handler(books, [new_event(e.data, source=e.source, correlation_id=e.correlationid) for e in poll])
    assert sorted(await posted_adjustments(database_url)) == [
        (
            "reconciliation_fee",
            "treasury:platform",
            "provider_external:stellar",
            3,
            "reconciliation_adjustment|adj-2",
            "recon-adj-2",
        ),
        (
            "reconciliation_write_off",
            "treasury:platform",
            "provider_external:stellar",
            700,
            "reconciliation_adjustment|adj-1",
            "recon-adj-1",
        ),
    ]
    treasury, external = accounts.treasury("USDC"), accounts.external("stellar", "USDC")
    async with engine.connect() as conn:
        balances = await bind(conn).ledger.balances([treasury, external])
    assert (balances[treasury].posted, balances[external].posted) == (-703, 1_000 + 703)

    conflicting = adjusted("adj-1", amount=701)
    with pytest.raises(EventRefusal) as refused:
        async with uow() as books:
            await handler(books, [adjusted("adj-3", amount=1), conflicting])
    assert (refused.value.reason, refused.value.event_id) == ("conflicting_event", conflicting.id)
    assert "transfer_conflict" in refused.value.detail
    assert len(await posted_adjustments(database_url)) == 2  # adj-3 rolled back with the poll
    assert await ledger_sums(database_url) == [("USDC", 0, 0)]


async def test_an_adjustment_through_kafka_posts_once_and_another_body_is_dead_lettered(
    database_url: str, kafka_bootstrap: str, topic_suffix: str
) -> None:
    """The service as deployed: the payouts consumer posts an adjustment delivered twice and re-emitted once exactly
    once; a second body for its id goes to the dead letters as `conflicting_event`, its neighbour is applied."""
    async with running_app(settings_for(database_url, kafka_bootstrap, topic_suffix=topic_suffix)) as app:
        first = adjusted("adj-k", provider="stripe", amount=1_250)
        again = new_event(first.data, source=first.source, correlation_id=first.correlationid)
        conflicting = adjusted("adj-k", kind="fee", provider="stripe", amount=1_250)
        neighbour = adjusted("adj-n", kind="fee", provider="stripe", amount=40, asset="XLM")
        await app.publish(PAYOUT_EVENTS.name, [first, first, again, conflicting, neighbour])

        async def letters() -> list[tuple[str, str]]:
            found = await rows(database_url, "SELECT event_type, reason FROM dead_letters ORDER BY id")
            return [(str(r.event_type).split(".")[-2], str(r.reason)) for r in found]

        await consumed(app, 5)  # the routes running_app announced, then four distinct events (one twice)
        assert await letters() == [("ReconciliationAdjusted", "conflicting_event")]
        assert sorted(await posted_adjustments(database_url)) == [
            (
                "reconciliation_fee",
                "treasury:platform",
                "provider_external:stripe",
                40,
                "reconciliation_adjustment|adj-n",
                "recon-adj-n",
            ),
            (
                "reconciliation_write_off",
                "treasury:platform",
                "provider_external:stripe",
                1_250,
                "reconciliation_adjustment|adj-k",
                "recon-adj-k",
            ),
        ]
        assert await ledger_sums(database_url) == [("USDC", 0, 0), ("XLM", 0, 0)]
