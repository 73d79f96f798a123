"""One held row no longer stalls an asset's claims (issue 56, class 4), on real PostgreSQL and Kafka.

An asset's payout clearing account is `CLEARING_SHARDS` accounts; a claim batch credits whichever one no other
transaction holds (SKIP LOCKED), and the claim records it, so that its payout's outcome settles the same one:
- through the HTTP API: while a transaction of the test's own holds the asset's clearing account (as the poll of
  payout outcomes or an operator's session would), claims are answered 201 (before, each waited for the lock
  timeout and the batch answered 503 `database_timeout`); their payouts' outcomes settle every shard back to zero;
- the ledger's `one_free_of`: the first free shard in order, a missing one created when none is free, none when
  every one is held elsewhere; never a wait.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from rewards_sql import sql_uow
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from prizeflow_contracts.envelope import Envelope, new_event
from prizeflow_contracts.events.payouts import PayoutPaid
from prizeflow_contracts.providers import DestinationType, PayoutDestination
from prizeflow_contracts.topics import PAYOUT_EVENTS, PAYOUT_REQUESTS
from prizeflow_rewards.adapters.ledger_pg import SqlLedger
from prizeflow_rewards.adapters.routes_pg import publish_routes
from prizeflow_rewards.application.claims import SubmitClaim
from prizeflow_rewards.application.claims.batch import ClaimRequest
from prizeflow_rewards.domain import accounts
from prizeflow_rewards.domain.ledger import Transfer, TransferFlags, TransferKind
from prizeflow_runtime.auth import Principal, Role
from prizeflow_runtime.db import asyncpg_dsn
from prizeflow_runtime.migrations import migrate
from prizeflow_testkit import eventually, fetch
from prizeflow_testkit.db import holding
from prizeflow_testkit.events import AT, example_payload
from prizeflow_testkit.rewards import OPEN_CLAIM_POLICY, STELLAR_KEY, routes_event, running_app, settings_for

pytestmark = pytest.mark.integration

DEST = {"type": "stellar_account", "address": STELLAR_KEY}
DESTINATION = PayoutDestination(type=DestinationType.STELLAR_ACCOUNT, address=STELLAR_KEY)
ALEMBIC_INI = str(Path(__file__).resolve().parents[2] / "alembic.ini")


async def _shards(database_url: str, asset: str) -> dict[int, tuple[int, int, int, int]]:
    """Each clearing shard of the asset that exists: its debits and credits, posted and pending."""
    ids = {ref.id: accounts.shard_of(ref) for ref in accounts.clearing_shards(asset)}
    rows = await fetch(
        database_url,
        "SELECT id, debits_posted, credits_posted, debits_pending, credits_pending FROM ledger_accounts "
        "WHERE id = ANY($1::uuid[])",
        list(ids),
    )
    return {ids[r["id"]]: (r[1], r[2], r[3], r[4]) for r in rows}


async def test_claims_are_answered_while_the_clearing_account_is_held_and_settle_on_their_shard(
    database_url: str, kafka_bootstrap: str, topic_suffix: str
) -> None:
    settings = settings_for(database_url, kafka_bootstrap, topic_suffix=topic_suffix)
    async with running_app(settings) as app:
        top_up = {"asset": "USDC", "amount": 10_000, "provider": "stripe", "reference": "ch_1"}
        assert (await app.client.post("/wallets/p-1/top-ups", json=top_up, headers=app.admin)).status_code == 200

        async def claim(key: str, amount: int) -> dict[str, Any]:
            r = await app.client.post(
                "/claims/",
                json={"asset": "USDC", "amount": amount, "destination": DEST},
                headers={**app.player("p-1"), "Idempotency-Key": key},
            )
            assert r.status_code == 201, r.text
            return dict(r.json())

        first = await claim("c-0", 1_000)  # on shard 0: the account there always was
        # The asset's clearing account held by another transaction, as a poll of outcomes or an operator holds it.
        async with holding(
            database_url,
            "SELECT 1 FROM ledger_accounts WHERE id = $1 FOR UPDATE",
            accounts.clearing("USDC").id,
        ):
            during = [await claim(f"c-{i}", 1_000 * i) for i in (1, 2, 3)]
        claims = [first, *during]
        stored = {
            r["id"]: r["clearing_shard"]
            for r in await fetch(database_url, "SELECT id, clearing_shard FROM claims WHERE player_id = 'p-1'")
        }
        assert stored[first["claim_id"]] == 0
        assert all(stored[c["claim_id"]] != 0 for c in during), stored
        shards = await _shards(database_url, "USDC")
        assert shards[0] == (0, 0, 0, 1_000)
        assert sum(s[3] for k, s in shards.items() if k != 0) == 6_000  # the three reserved where they could be

        async def requests() -> list[Envelope[Any]]:
            return await app.events(PAYOUT_REQUESTS.name)

        reqs = await eventually(requests, lambda es: len(es) == 4, timeout=60)
        paid = [
            example_payload(
                PayoutPaid,
                payout_id=f"po-{e.data.claim_id}",
                payout_request_id=e.data.payout_request_id,
                claim_id=e.data.claim_id,
                player_id=e.data.player_id,
                amount=e.data.amount.model_dump(),
                provider="stellar",
                idempotency_key=e.data.idempotency_key,
                paid_at=AT,
            )
            for e in reqs
        ]
        await app.publish(
            PAYOUT_EVENTS.name, [new_event(p, source="/payouts", correlation_id=p.claim_id) for p in paid]
        )

        async def states() -> list[str]:
            return [
                (await app.client.get(f"/claims/{c['claim_id']}", headers=app.player("p-1"))).json()["status"]
                for c in claims
            ]

        await eventually(states, lambda s: s == ["paid"] * 4, timeout=60)
        balance = (await app.balances("p-1"))["USDC"]
    assert (balance["balance"], balance["reserved"]) == (3_000, 0)
    # Every shard settled what it reserved: what came in left, nothing pending, each its own.
    after = await _shards(database_url, "USDC")
    assert {k: (d - c, dp, cp) for k, (d, c, dp, cp) in after.items()} == dict.fromkeys(after, (0, 0, 0))
    assert after[0] == (1_000, 1_000, 0, 0)
    external = await fetch(
        database_url,
        "SELECT credits_posted FROM ledger_accounts WHERE id = $1",
        accounts.external("stellar", "USDC").id,
    )
    assert external[0]["credits_posted"] == 7_000


async def test_one_free_of_takes_the_first_free_shard_creates_a_missing_one_and_never_waits(
    engine: AsyncEngine, database_url: str
) -> None:
    shards = accounts.clearing_shards("XLM")
    wallet = accounts.wallet("w", "XLM")
    async with engine.begin() as conn:
        await SqlLedger(conn).apply(
            [Transfer.of(accounts.external("stripe", "XLM"), wallet, 500, TransferKind.TOP_UP, "w")]
        )
    async with engine.begin() as conn:
        await SqlLedger(conn).declare(shards[:2])  # shards 0 and 1 exist, the rest not yet
    holder = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        async with holder.transaction():
            await holder.execute("SELECT 1 FROM ledger_accounts WHERE id = ANY($1::uuid[]) FOR UPDATE", [shards[0].id])
            async with engine.begin() as conn:
                await conn.execute(text("SET LOCAL lock_timeout = '5s'"))
                balances, _ = await asyncio.wait_for(
                    SqlLedger(conn, strict=True).lock_unless_busy([wallet], unless_busy=[], one_free_of=[shards]),
                    timeout=2,
                )
                assert set(balances) == {wallet, shards[1]}  # 0 is held elsewhere: the next one, not waited for
                await SqlLedger(conn, strict=True).apply(
                    [Transfer.of(wallet, shards[1], 100, TransferKind.CLAIM_RESERVE, "r", flags=TransferFlags.PENDING)]
                )
            # With 0 and 1 both held elsewhere, the first missing shard is created and taken.
            await holder.execute("SELECT 1 FROM ledger_accounts WHERE id = $1 FOR UPDATE", shards[1].id)
            async with engine.begin() as conn:
                taken = await asyncio.wait_for(SqlLedger(conn).take_one_free([shards]), timeout=2)
                assert set(taken) == {shards[2]}
            # Every shard there and held elsewhere: none, at once.
            async with engine.begin() as conn:
                await SqlLedger(conn).declare(shards[3:])  # 0, 1, 2 exist (and are held)
            await holder.execute(
                "SELECT 1 FROM ledger_accounts WHERE id = ANY($1::uuid[]) FOR UPDATE", [s.id for s in shards]
            )
            async with engine.begin() as conn:
                assert await asyncio.wait_for(SqlLedger(conn).take_one_free([shards]), timeout=2) == {}
    finally:
        await holder.close()


async def test_rewards_0016_downgrade_is_refused_while_a_claim_is_reserved_past_shard_0(
    engine: AsyncEngine, database_url: str
) -> None:
    """The release before 0016 rebuilds every reservation on shard 0: a claim approved on shard 1 could be posted or
    voided by nothing once the column is gone. The downgrade says so and changes nothing; once the claim is final, it
    goes through."""
    async with engine.begin() as conn:
        wallet = accounts.wallet("p", "USDC")
        top_up = Transfer.of(accounts.external("stripe", "USDC"), wallet, 1_000, TransferKind.TOP_UP, "p")
        await SqlLedger(conn).apply([top_up])
        await publish_routes(conn, routes_event().data)
    holder = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        async with holder.transaction():
            async with engine.begin() as conn:
                await SqlLedger(conn).declare([accounts.clearing("USDC")])
            await holder.execute("SELECT 1 FROM ledger_accounts WHERE id = $1 FOR UPDATE", accounts.clearing("USDC").id)
            async with sql_uow(engine)() as books:
                request = ClaimRequest(Principal("p", frozenset({Role.PLAYER})), "p", "USDC", 100, DESTINATION, "k")
                [outcome] = await SubmitClaim(OPEN_CLAIM_POLICY, "/test").decide(books, [request])
    finally:
        await holder.close()
    assert isinstance(outcome, tuple), outcome
    assert outcome[0].clearing_shard == 1
    with pytest.raises(Exception, match="reserved on clearing shards past 0"):
        await migrate(ALEMBIC_INI, database_url, "0015", downgrade=True)
    assert [r["clearing_shard"] for r in await fetch(database_url, "SELECT clearing_shard FROM claims")] == [1]
    await fetch(database_url, "UPDATE claims SET status = 'voided'")
    await migrate(ALEMBIC_INI, database_url, "0015", downgrade=True)
    assert (
        await fetch(
            database_url, "SELECT column_name FROM information_schema.columns WHERE column_name = 'clearing_shard'"
        )
        == []
    )
