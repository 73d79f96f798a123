"""The PostgreSQL ledger: idempotency, pending post/void at most once, all-or-nothing, DB-enforced flags."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from prizeflow_rewards.adapters.ledger_pg import SqlLedger
from prizeflow_rewards.domain.ledger import (
    AccountKind,
    AccountRef,
    LedgerError,
    Transfer,
    TransferFlags,
    TransferKind,
    post_of,
    void_of,
)

pytestmark = pytest.mark.integration

TREASURY = AccountRef(AccountKind.TREASURY, "platform", "USDC")
POOL = AccountRef(AccountKind.CAMPAIGN_POOL, "camp-1", "USDC")
CLEARING = AccountRef(AccountKind.PAYOUT_CLEARING, "platform", "USDC")


def wallet(player: str) -> AccountRef:
    return AccountRef(AccountKind.PLAYER_WALLET, player, "USDC")


async def fund_wallet(engine: AsyncEngine, ledger: type[SqlLedger], player: str, amount: int) -> None:
    async with engine.begin() as conn:
        await ledger(conn).apply([Transfer.of(TREASURY, wallet(player), amount, TransferKind.TOP_UP, player, "seed")])


async def sum_by_asset(engine: AsyncEngine) -> list[tuple[str, int, int]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT asset, sum(credits_posted - debits_posted), sum(credits_pending - debits_pending) "
                "FROM ledger_accounts GROUP BY asset"
            )
        )
        return [(r[0], int(r[1]), int(r[2])) for r in rows]


async def test_retry_is_a_no_op_and_a_different_body_is_refused(engine: AsyncEngine) -> None:
    ledger = SqlLedger
    t = Transfer.of(TREASURY, POOL, 1_000, TransferKind.CAMPAIGN_FUNDING, "camp-1", "ref-1")
    async with engine.begin() as conn:
        first = await ledger(conn).apply([t])
        again = await ledger(conn).apply([t])
    assert first.applied_ids == {t.id}
    assert again.applied_ids == set()
    assert [d.id for d in again.duplicates] == [t.id]
    other = Transfer(t.id, TREASURY, POOL, 2_000, t.kind, t.business_key)
    async with engine.begin() as conn:
        with pytest.raises(LedgerError) as err:
            await ledger(conn).apply([other])
    assert err.value.code == "transfer_conflict"
    async with engine.connect() as conn:
        bal = await ledger(conn).balances([POOL])
    assert bal[POOL].posted == 1_000
    assert await sum_by_asset(engine) == [("USDC", 0, 0)]


async def test_linked_batch_is_all_or_nothing(engine: AsyncEngine) -> None:
    ledger = SqlLedger
    async with engine.begin() as conn:
        await ledger(conn).apply([Transfer.of(TREASURY, POOL, 100, TransferKind.CAMPAIGN_FUNDING, "c", "1")])
    batch = [
        Transfer.of(POOL, wallet("a"), 60, TransferKind.REWARD, "r-1", "a"),
        Transfer.of(POOL, wallet("b"), 60, TransferKind.REWARD, "r-1", "b"),
    ]
    async with engine.begin() as conn:
        with pytest.raises(LedgerError) as err:
            await ledger(conn).apply(batch)
        # The savepoint rolled back; the outer transaction is still usable.
        await conn.execute(text("SELECT 1"))
    assert err.value.code == "exceeds_credits"
    async with engine.connect() as conn:
        bal = await ledger(conn).balances([POOL, wallet("a"), wallet("b")])
        count = (await conn.execute(text("SELECT count(*) FROM ledger_transfers"))).scalar_one()
    assert [b.posted for b in bal.values()] == [100, 0, 0]
    assert count == 1


async def test_database_enforces_debits_must_not_exceed_credits(engine: AsyncEngine) -> None:
    """No code check: the CHECK constraint on the account row refuses, through the ledger and through raw SQL."""
    ledger = SqlLedger
    await fund_wallet(engine, ledger, "p", 50)
    async with engine.begin() as conn:
        with pytest.raises(LedgerError) as err:
            await ledger(conn).apply([Transfer.of(wallet("p"), CLEARING, 51, TransferKind.CLAIM_RESERVE, "x")])
    assert err.value.code == "exceeds_credits"
    assert "on a player_wallet account in USDC" in err.value.detail  # the kind, never the owner (a player id)
    async with engine.begin() as conn:
        with pytest.raises(DBAPIError, match="debits_must_not_exceed_credits"):
            await conn.execute(
                text("UPDATE ledger_accounts SET debits_pending = 51 WHERE id = :id"), {"id": wallet("p").id}
            )


async def test_transfers_are_append_only(engine: AsyncEngine) -> None:
    ledger = SqlLedger
    await fund_wallet(engine, ledger, "p", 50)
    async with engine.begin() as conn:
        with pytest.raises(DBAPIError, match="append-only"):
            await conn.execute(text("UPDATE ledger_transfers SET amount = 1"))


async def test_pending_post_and_void_apply_at_most_once(engine: AsyncEngine) -> None:
    ledger = SqlLedger
    await fund_wallet(engine, ledger, "p", 100)
    pending = Transfer.of(wallet("p"), CLEARING, 70, TransferKind.CLAIM_RESERVE, "cl-1", flags=TransferFlags.PENDING)
    async with engine.begin() as conn:
        await ledger(conn).apply([pending])
        bal = await ledger(conn).balances([wallet("p")])
    assert bal[wallet("p")].available == 30
    assert bal[wallet("p")].posted == 100
    async with engine.begin() as conn:
        assert (await ledger(conn).apply([post_of(pending)])).applied
        assert not (await ledger(conn).apply([post_of(pending)])).applied  # retry: no-op
        with pytest.raises(LedgerError) as err:
            await ledger(conn).apply([void_of(pending)])
    assert err.value.code == "pending_already_resolved"
    async with engine.connect() as conn:
        bal = await ledger(conn).balances([wallet("p"), CLEARING])
    assert (bal[wallet("p")].posted, bal[wallet("p")].available) == (30, 30)
    assert (bal[CLEARING].posted, bal[CLEARING].credits_pending) == (70, 0)
    assert await sum_by_asset(engine) == [("USDC", 0, 0)]


async def test_two_concurrent_posts_of_one_pending_apply_once(engine: AsyncEngine) -> None:
    ledger = SqlLedger
    await fund_wallet(engine, ledger, "p", 100)
    pending = Transfer.of(wallet("p"), CLEARING, 40, TransferKind.CLAIM_RESERVE, "cl-2", flags=TransferFlags.PENDING)
    async with engine.begin() as conn:
        await ledger(conn).apply([pending])
    # Different ids (two different callers), same pending: exactly one may win.
    posts = [post_of(pending, "caller-a"), post_of(pending, "caller-b"), void_of(pending, "caller-c")]
    gate = asyncio.Event()

    async def attempt(t: Transfer) -> str:
        async with engine.connect() as conn, conn.begin():
            await gate.wait()
            try:
                result = await ledger(conn).apply([t])
            except LedgerError as err:
                return err.code
            return "applied" if result.applied else "duplicate"

    tasks = [asyncio.create_task(attempt(t)) for t in posts for _ in range(2)]
    await asyncio.sleep(0.05)
    gate.set()
    outcomes = await asyncio.gather(*tasks)
    assert outcomes.count("applied") == 1, outcomes
    assert set(outcomes) <= {"applied", "duplicate", "pending_already_resolved"}
    async with engine.connect() as conn:
        resolved = (
            await conn.execute(text("SELECT count(*) FROM ledger_transfers WHERE pending_id = :p"), {"p": pending.id})
        ).scalar_one()
        bal = await ledger(conn).balances([wallet("p"), CLEARING])
    assert resolved == 1
    assert bal[wallet("p")].debits_pending == 0
    assert await sum_by_asset(engine) == [("USDC", 0, 0)]
