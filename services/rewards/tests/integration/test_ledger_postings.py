"""LedgerPosted on real Kafka + PostgreSQL: a paid claim's PayoutPaid puts exactly one LedgerPosted on payouts'
requests topic, naming the ledger's transfer clearing → external(provider) and its amount; a replay of the outcome
puts nothing more there; a return puts a `return` posting of the transfer external(provider) → wallet. And on
PostgreSQL alone: a poll mixing payouts and reconciliation adjustments stages its postings in the outbox with its
transfers, nothing for a replay, nothing when it rolls back."""

from __future__ import annotations

from typing import Any

import pytest
from rewards_sql import sql_uow
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from prizeflow_contracts.envelope import Envelope, EventPayload, decode, event_id_for, new_event
from prizeflow_contracts.errors import EventRefusal
from prizeflow_contracts.events.payouts import (
    LedgerPosted,
    LedgerPostingKind,
    PayoutPaid,
    PayoutRequested,
    PayoutReturned,
    ReconciliationAdjusted,
)
from prizeflow_contracts.providers import DestinationType, PayoutDestination, ProviderType
from prizeflow_contracts.topics import PAYOUT_EVENTS, PAYOUT_REQUESTS
from prizeflow_rewards.application.claims import Claim, ClaimPolicy, SettlePayout, SubmitClaim
from prizeflow_rewards.domain import accounts
from prizeflow_rewards.domain.ledger import Transfer, TransferKind, transfer_id
from prizeflow_rewards.entrypoints.kafka import PayoutEventsHandler
from prizeflow_runtime.auth import Principal, Role
from prizeflow_runtime.db import create_engine
from prizeflow_testkit import eventually
from prizeflow_testkit.events import AT, example_payload
from prizeflow_testkit.rewards import STELLAR_KEY, Running, routes_event, running_app, settings_for

pytestmark = pytest.mark.integration


async def sql(database_url: str, query: str, **params: Any) -> list[Any]:
    engine = create_engine(database_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            return list(await conn.execute(text(query), params))
    finally:
        await engine.dispose()


async def payouts_consumed(app: Running) -> float:
    """Records the payouts consumer handled, whatever the outcome (applied, duplicate, dead-lettered)."""
    metrics = (await app.client.get("/metrics")).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("prizeflow_rewards_events_consumed_total{") and 'consumer="rewards-payouts"' in line
    )


async def published_all(app: Running) -> None:
    """Wait until the relay has put every staged event on Kafka (it deletes what Kafka acknowledged)."""

    async def staged() -> int:
        return int((await sql(app.settings.database_url, "SELECT count(*) AS n FROM outbox"))[0].n)

    await eventually(staged, lambda n: n == 0, timeout=60)


def outcome(cls: type[Any], req: PayoutRequested, **extra: Any) -> Envelope[Any]:
    return new_event(
        example_payload(
            cls,
            payout_id=f"po-{req.claim_id}",
            payout_request_id=req.payout_request_id,
            claim_id=req.claim_id,
            player_id=req.player_id,
            amount=req.amount.model_dump(),
            provider="stellar",
            idempotency_key=req.idempotency_key,
            **extra,
        ),
        source="/prizeflow/payouts",
        correlation_id=f"flow-{req.claim_id}",
    )


async def test_a_paid_claim_tells_payouts_its_ledger_posting_once_and_a_return_tells_a_return(
    database_url: str, kafka_bootstrap: str, topic_suffix: str
) -> None:
    async with running_app(settings_for(database_url, kafka_bootstrap, topic_suffix=topic_suffix)) as app:
        r = await app.client.post(
            "/wallets/p-1/top-ups",
            json={"asset": "USDC", "amount": 10_000, "provider": "stripe", "reference": "t-1"},
            headers=app.admin,
        )
        assert r.status_code == 200, r.text
        r = await app.client.post(
            "/claims/",
            json={"asset": "USDC", "amount": 3_000, "destination": {"type": "stellar_account", "address": STELLAR_KEY}},
            headers={**app.player("p-1"), "Idempotency-Key": "k-1"},
        )
        assert r.status_code == 201, r.text
        claim_id = r.json()["claim_id"]

        async def on_requests_topic() -> list[Envelope[Any]]:
            return await app.events(PAYOUT_REQUESTS.name)

        def postings(events: list[Envelope[Any]]) -> list[Envelope[LedgerPosted]]:
            return [e for e in events if isinstance(e.data, LedgerPosted)]

        [requested] = await eventually(on_requests_topic, lambda es: len(es) == 1, timeout=60)
        assert isinstance(requested.data, PayoutRequested)
        paid_at = AT.replace(minute=17)
        paid = outcome(PayoutPaid, requested.data, paid_at=paid_at)
        await app.publish(PAYOUT_EVENTS.name, [paid])

        [posted] = postings(await eventually(on_requests_topic, lambda es: len(postings(es)) >= 1, timeout=60))
        settle = transfer_id(f"payout_settle|{claim_id}")
        [row] = await sql(
            database_url,
            "SELECT t.amount, t.asset, t.kind, a.kind AS credit_kind, a.owner_id AS credit_owner "
            "FROM ledger_transfers t JOIN ledger_accounts a ON a.id = t.credit_account_id WHERE t.id = :id",
            id=settle,
        )
        assert (row.amount, row.asset, row.kind, row.credit_kind, row.credit_owner) == (
            3_000,
            "USDC",
            "payout_settle",
            "provider_external",
            "stellar",
        )
        assert posted.data == LedgerPosted(
            transfer_id=str(settle),
            kind=LedgerPostingKind.PAYOUT,
            provider=ProviderType.STELLAR,
            amount={"asset": "USDC", "amount": 3_000},
            claim_id=claim_id,
            payout_id=f"po-{claim_id}",
            posted_at=paid_at,
        )
        assert (posted.id, posted.correlationid, posted.time) == (
            event_id_for("ledger-posted", settle),
            paid.correlationid,
            paid_at,
        )

        # Replays: the same event again (the inbox drops it) and the same outcome under a new event id (the ledger
        # finds its transfers written): nothing more reaches payouts.
        before = await payouts_consumed(app)
        await app.publish(PAYOUT_EVENTS.name, [paid, outcome(PayoutPaid, requested.data, paid_at=paid_at)])
        await eventually(lambda: payouts_consumed(app), lambda n: n >= before + 2, timeout=60)
        await published_all(app)
        events = await app.events(PAYOUT_REQUESTS.name)
        assert [e.id for e in postings(events)] == [posted.id]
        assert len(events) == 2  # the PayoutRequested and the one LedgerPosted

        returned_at = AT.replace(minute=42)
        back = outcome(
            PayoutReturned,
            requested.data,
            returned_amount={"asset": "USDC", "amount": 3_000},
            reason="bounced",
            returned_at=returned_at,
        )
        await app.publish(PAYOUT_EVENTS.name, [back])
        both = postings(await eventually(on_requests_topic, lambda es: len(postings(es)) >= 2, timeout=60))
        assert both[0].id == posted.id
        ret = both[1]
        transfer = transfer_id(f"payout_return|{claim_id}")
        assert (ret.data.kind, ret.data.transfer_id, ret.data.amount.amount, ret.data.posted_at) == (
            LedgerPostingKind.RETURN,
            str(transfer),
            3_000,
            returned_at,
        )
        assert (ret.data.claim_id, ret.data.payout_id, ret.data.provider) == (
            claim_id,
            f"po-{claim_id}",
            ProviderType.STELLAR,
        )
        [row] = await sql(
            database_url,
            "SELECT amount, debit_account_id, credit_account_id FROM ledger_transfers WHERE id = :id",
            id=transfer,
        )
        assert (row.amount, row.debit_account_id, row.credit_account_id) == (
            3_000,
            accounts.external("stellar", "USDC").id,
            accounts.wallet("p-1", "USDC").id,
        )
        assert (await app.balances("p-1"))["USDC"]["balance"] == 10_000


async def staged_postings(engine: AsyncEngine) -> list[tuple[Any, Any, bytes, Envelope[Any]]]:
    """The LedgerPosted rows of the outbox, in staging order: (event id, topic, key, the event)."""
    async with engine.connect() as conn:
        found = await conn.execute(
            text("SELECT event_id, topic, key, payload FROM outbox WHERE event_type = :t ORDER BY seq"),
            {"t": LedgerPosted.event_type()},
        )
        return [(r.event_id, r.topic, bytes(r.key), decode(bytes(r.payload))) for r in found]


def adjusted(adjustment_id: str, *, amount: int = 700, payout_id: str | None = None) -> Envelope[EventPayload]:
    payload = example_payload(
        ReconciliationAdjusted,
        adjustment_id=adjustment_id,
        kind="write_off",
        provider="stellar",
        provider_name="stellar",
        amount={"asset": "USDC", "amount": amount},
        payout_id=payout_id,
        adjusted_at=AT,
    )
    return new_event(payload, source="/prizeflow/payouts", correlation_id=f"recon-{adjustment_id}")


async def test_a_poll_stages_its_payouts_and_adjustments_postings_with_its_transfers_and_a_replay_stages_none(
    engine: AsyncEngine,
) -> None:
    uow = sql_uow(engine)
    players = ("p-1", "p-2")
    async with uow() as books:
        await books.routes.publish(routes_event().data)
        await books.ledger.apply(
            [
                Transfer.of(
                    accounts.external("stripe", "USDC"), accounts.wallet(p, "USDC"), 5_000, TransferKind.TOP_UP, p
                )
                for p in players
            ],
        )
    submit = SubmitClaim(ClaimPolicy({"USDC": 1}, {"USDC": 10**9}, {"USDC": 10**9}, new_destination_cooldown_s=0), "/t")
    claims: list[Claim] = []
    for p in players:
        async with uow() as books:
            claim, _ = await submit(
                books,
                Principal(p, frozenset({Role.PLAYER})),
                player_id=p,
                asset="USDC",
                amount=1_000,
                destination=PayoutDestination(type=DestinationType.STELLAR_ACCOUNT, address=STELLAR_KEY),
            )
            claims.append(claim)

    def paid(claim: Claim) -> Envelope[EventPayload]:
        payload = example_payload(
            PayoutPaid,
            payout_id=f"po-{claim.id}",
            payout_request_id=claim.payout_request_id,
            claim_id=claim.id,
            player_id=claim.player_id,
            amount={"asset": "USDC", "amount": 1_000},
            provider="stellar",
            idempotency_key=f"{claim.id}:payout",
            paid_at=AT,
        )
        return new_event(payload, source="/prizeflow/payouts", correlation_id=claim.id)

    handler = PayoutEventsHandler(SettlePayout())
    # A poll that the ledger refuses (an adjustment id with two bodies) rolls back: nothing staged.
    with pytest.raises(EventRefusal):
        async with uow() as books:
            await handler(books, [paid(claims[0]), adjusted("adj-x"), adjusted("adj-x", amount=701)])
    assert await staged_postings(engine) == []

    poll = [paid(claims[0]), adjusted("adj-1", payout_id="po-9"), paid(claims[1]), adjusted("adj-1", payout_id="po-9")]
    async with uow() as books:
        await handler(books, poll)
    staged = await staged_postings(engine)
    settles = [transfer_id(f"payout_settle|{c.id}") for c in claims]
    adjustment = transfer_id("reconciliation_adjustment|adj-1")
    assert [(e.data.kind, e.data.transfer_id, e.data.amount.amount) for _, _, _, e in staged] == [
        (LedgerPostingKind.PAYOUT, str(settles[0]), 1_000),
        (LedgerPostingKind.PAYOUT, str(settles[1]), 1_000),
        (LedgerPostingKind.ADJUSTMENT, str(adjustment), 700),
    ]
    assert [event_id for event_id, _, _, _ in staged] == [
        event_id_for("ledger-posted", t) for t in (*settles, adjustment)
    ]
    assert {topic for _, topic, _, _ in staged} == {PAYOUT_REQUESTS.name}
    assert [key for _, _, key, _ in staged] == [claims[0].id.encode(), claims[1].id.encode(), b"recon-adj-1"]
    assert (staged[2][3].data.adjustment_id, staged[2][3].data.payout_id) == ("adj-1", "po-9")

    # The same facts again under new event ids (the inbox would not stop them): the ledger writes nothing, nor
    # does the outbox.
    async with uow() as books:
        await handler(books, [new_event(e.data, source=e.source, correlation_id=e.correlationid) for e in poll])
    assert len(await staged_postings(engine)) == 3
