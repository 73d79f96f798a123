"""How the ledger locks accounts (real PostgreSQL): one global order per transaction, taken up front, held to the
end; a consumer poll of payout outcomes takes every lock it needs before applying any of them; a transaction that
loses a real deadlock anyway is run again whole."""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import asyncpg
import pytest
from rewards_sql import bind, sql_uow
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from prizeflow_contracts.envelope import Envelope, EventPayload, new_event
from prizeflow_contracts.errors import PayoutErrorCode
from prizeflow_contracts.events.payouts import (
    PayoutCreated,
    PayoutFailed,
    PayoutPaid,
    PayoutRequestRefused,
    PayoutReturned,
)
from prizeflow_contracts.providers import DestinationType, PayoutDestination
from prizeflow_rewards.adapters.ledger_pg import LockOrderError, SqlLedger
from prizeflow_rewards.adapters.routes_pg import publish_routes
from prizeflow_rewards.application.claims import Claim, ClaimPolicy, SettlePayout, SubmitClaim
from prizeflow_rewards.domain import accounts
from prizeflow_rewards.domain.ledger import AccountRef, LedgerError, Transfer, TransferFlags, TransferKind
from prizeflow_rewards.entrypoints.kafka import PayoutEventsHandler
from prizeflow_runtime.auth import Principal, Role
from prizeflow_runtime.db import asyncpg_dsn, session_factory
from prizeflow_runtime.outages import is_database_timeout, is_transient_conflict
from prizeflow_runtime.uow import ContentionRetry, TransactionContendedError, run_contended
from prizeflow_testkit.events import AT, example_payload
from prizeflow_testkit.rewards import STELLAR_KEY, routes_event

pytestmark = pytest.mark.integration


def by_id(*refs: AccountRef) -> list[AccountRef]:
    return sorted(refs, key=lambda r: r.id.int)


async def locked_elsewhere(database_url: str, ref: AccountRef) -> bool:
    """Whether another transaction holds `ref`: taking it the ledger's way (an upsert that locks, or waits for an
    account being created) from another connection times out."""
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        async with conn.transaction():
            await conn.execute("SET LOCAL lock_timeout = '200ms'")
            await conn.execute(
                "INSERT INTO ledger_accounts AS a (id, kind, owner_id, asset, flags) VALUES ($1, $2, $3, $4, $5) "
                "ON CONFLICT (id) DO UPDATE SET flags = a.flags WHERE false",
                ref.id,
                ref.kind.value,
                ref.owner,
                ref.asset,
                int(ref.flags),
            )
            raise _Rollback
    except asyncpg.LockNotAvailableError:
        return True
    except _Rollback:  # leave nothing behind: the probe must not create the account itself
        return False
    finally:
        await conn.close()


class _Rollback(Exception):
    pass


async def test_accounts_are_taken_up_front_in_id_order_and_never_below_one_held(
    engine: AsyncEngine, database_url: str
) -> None:
    low, mid, high = by_id(accounts.wallet("a", "USDC"), accounts.wallet("b", "USDC"), accounts.wallet("c", "USDC"))
    ledger = SqlLedger
    async with engine.begin() as conn:
        # The transaction's first statement: the accounts are created and held until it ends.
        balances = await ledger(conn).lock([mid])
        assert balances[mid].posted == 0
        assert await locked_elsewhere(database_url, mid)
        with pytest.raises(LockOrderError, match="sorts below an account it already holds"):
            await ledger(conn).declare([low])
        with pytest.raises(LockOrderError):  # nor through a batch that names it
            await ledger(conn).apply([Transfer.of(low, mid, 5, TransferKind.TOP_UP, "x")])
        await ledger(conn).declare([mid, high])  # above every account held: still one global order
        assert await locked_elsewhere(database_url, high)
        assert not await locked_elsewhere(database_url, low)
    assert not await locked_elsewhere(database_url, mid)
    async with engine.begin() as conn:  # a new transaction starts with nothing held
        await ledger(conn).declare([low])


async def test_strict_mode_refuses_any_account_not_declared_first(engine: AsyncEngine) -> None:
    low, high = by_id(accounts.wallet("a", "USDC"), accounts.wallet("b", "USDC"))
    ledger = functools.partial(SqlLedger, strict=True)
    async with engine.begin() as conn:
        await ledger(conn).declare([low])
        await ledger(conn).lock([low])  # already held: nothing new
        with pytest.raises(LockOrderError, match="was not declared in this transaction's first lock"):
            await ledger(conn).declare([high])


async def test_a_held_account_does_not_hold_up_foreign_key_checks(engine: AsyncEngine, database_url: str) -> None:
    """Accounts are locked FOR NO KEY UPDATE: a check that an account exists (FOR KEY SHARE) never waits."""
    wallet = accounts.wallet("a", "USDC")
    async with engine.begin() as conn:
        await SqlLedger(conn).declare([wallet])
        other = await asyncpg.connect(asyncpg_dsn(database_url))
        try:
            async with other.transaction():
                await other.execute("SELECT 1 FROM ledger_accounts WHERE id = $1 FOR KEY SHARE NOWAIT", wallet.id)
        finally:
            await other.close()


def outcome(cls: type[Any], claim: Claim, **extra: Any) -> Envelope[EventPayload]:
    payload = example_payload(
        cls,
        payout_id=f"po-{claim.id}",
        payout_request_id=claim.payout_request_id,
        claim_id=claim.id,
        player_id=claim.player_id,
        amount={"asset": claim.asset, "amount": claim.amount},
        provider="stellar",
        idempotency_key=f"{claim.id}:payout",
        **extra,
    )
    return new_event(payload, source="/payouts", correlation_id=claim.id)


async def test_a_poll_of_payout_outcomes_takes_all_its_locks_before_applying_any(engine: AsyncEngine) -> None:
    """Paid, failed for good, paid then returned, refused, for claims of several players, in one poll and
    one transaction: applied in a strict ledger, so every account was locked by `prepare`, in one go."""
    ledger = functools.partial(SqlLedger, strict=True)
    sessions = session_factory(engine)
    players = [f"p-{i}" for i in range(4)]
    for p in players:
        async with sessions() as s, s.begin():
            await ledger(s).apply(
                [
                    Transfer.of(
                        accounts.external("stripe", "USDC"), accounts.wallet(p, "USDC"), 1_000, TransferKind.TOP_UP, p
                    )
                ],
            )
    async with sessions() as s, s.begin():
        await publish_routes(s, routes_event().data)
    submit = SubmitClaim(ClaimPolicy({"USDC": 1}, {"USDC": 10**9}, {"USDC": 10**9}, new_destination_cooldown_s=0), "/t")
    uow = sql_uow(engine)
    dest = PayoutDestination(type=DestinationType.STELLAR_ACCOUNT, address=STELLAR_KEY)
    claims: list[Claim] = []
    for p in players:
        async with uow() as books:
            claim, _ = await submit(
                books, Principal(p, frozenset({Role.PLAYER})), player_id=p, asset="USDC", amount=400, destination=dest
            )
            claims.append(claim)
    paid, failed, returned, refused = claims
    poll: list[Envelope[EventPayload]] = [
        outcome(PayoutCreated, paid),
        outcome(PayoutPaid, paid, paid_at=AT),
        outcome(
            PayoutFailed,
            failed,
            attempt=1,
            code=PayoutErrorCode.INVALID_DESTINATION,
            retryable=False,
            final=True,
            detail="no such account",
            next_attempt_at=None,
            failed_at=AT,
        ),
        outcome(PayoutPaid, returned, paid_at=AT),
        outcome(
            PayoutReturned, returned, returned_amount={"asset": "USDC", "amount": 400}, reason="bounced", returned_at=AT
        ),
        new_event(
            PayoutRequestRefused(
                payout_request_id=refused.payout_request_id,
                claim_id=refused.id,
                code=PayoutErrorCode.INVALID_DESTINATION,
                detail="unpayable",
                refused_at=AT,
            ),
            source="/payouts",
            correlation_id=refused.id,
        ),
    ]
    async with uow() as books:
        await PayoutEventsHandler(SettlePayout())(books, poll)
    async with engine.connect() as conn:
        statuses: dict[str, str] = {r.id: r.status for r in await conn.execute(text("SELECT id, status FROM claims"))}
        balances = await ledger(conn).balances([accounts.wallet(p, "USDC") for p in players])
    assert [statuses[c.id] for c in claims] == ["paid", "voided", "returned", "voided"]
    assert [b.posted for b in balances.values()] == [600, 1_000, 1_000, 1_000]
    assert [b.debits_pending for b in balances.values()] == [0, 0, 0, 0]


async def test_a_transaction_that_loses_a_real_deadlock_is_run_again_whole(engine: AsyncEngine) -> None:
    """Two transactions lock two rows in opposite orders (what the ledger never does): PostgreSQL aborts one
    of them with 40P01; `run_contended` (the unit of work's) runs it again, and nothing of its first attempt is kept."""
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE pair (id int PRIMARY KEY, n int NOT NULL)"))
        await conn.execute(text("CREATE TABLE attempts (who text NOT NULL)"))
        await conn.execute(text("INSERT INTO pair VALUES (1, 0), (2, 0)"))
    sessions = session_factory(engine)
    first_locked = {1: asyncio.Event(), 2: asyncio.Event()}
    runs: list[str] = []

    async def transfer(first: int, second: int) -> None:
        async def attempt() -> None:
            async with sessions() as s, s.begin():
                runs.append(f"{first}->{second}")
                await s.execute(text("INSERT INTO attempts VALUES (:w)"), {"w": f"{first}->{second}"})
                await s.execute(text("UPDATE pair SET n = n + 1 WHERE id = :i"), {"i": first})
                first_locked[first].set()
                await first_locked[second].wait()  # each holds one row and wants the other's
                await s.execute(text("UPDATE pair SET n = n + 1 WHERE id = :i"), {"i": second})

        await run_contended(attempt, policy=ContentionRetry(attempts=10))

    await asyncio.gather(transfer(1, 2), transfer(2, 1))
    # At least one ran again. How many times is PostgreSQL's: a loser's retry can take the row its winner was only
    # woken up to lock (a woken waiter has no place in a queue) and deadlock again, so it is not asserted exactly.
    assert len(runs) >= 3
    async with engine.connect() as conn:
        assert list(await conn.execute(text("SELECT id, n FROM pair ORDER BY id"))) == [(1, 2), (2, 2)]
        assert (await conn.execute(text("SELECT count(*) FROM attempts"))).scalar_one() == 2  # the lost one left none


async def test_a_transaction_still_losing_after_its_attempts_is_contended(engine: AsyncEngine) -> None:
    class Deadlock(Exception):
        sqlstate = "40P01"

    calls = 0

    async def attempt() -> None:
        nonlocal calls
        calls += 1
        raise Deadlock("deadlock detected")

    with pytest.raises(TransactionContendedError) as err:
        await run_contended(attempt, policy=ContentionRetry(attempts=3, backoff_initial_s=0.001))
    assert (calls, err.value.attempts, err.value.retry_after_s) == (3, 3, 1)
    assert is_transient_conflict(err.value)  # its cause is kept for the logs

    async def bug() -> None:
        raise ValueError("not a conflict")

    with pytest.raises(ValueError, match="not a conflict"):
        await run_contended(bug, policy=ContentionRetry())


async def test_the_session_lock_set_follows_the_session_transaction(engine: AsyncEngine, database_url: str) -> None:
    """Through an ORM session (the HTTP and consumer paths), as through a connection."""
    wallet = accounts.wallet("s", "USDC")
    sessions = session_factory(engine)
    ledger = functools.partial(SqlLedger, strict=True)
    for _ in range(2):  # the same pooled connection, two transactions: each starts with nothing held
        async with sessions() as s, s.begin():
            session: AsyncSession = s
            await ledger(session).declare([wallet, accounts.clearing("USDC")])
            assert await locked_elsewhere(database_url, wallet)
        assert not await locked_elsewhere(database_url, wallet)


async def test_a_refused_batch_gives_back_the_accounts_it_took(engine: AsyncEngine) -> None:
    """A batch the database refuses (an empty wallet debited, a new one or one that exists): its savepoint takes
    the accounts it created and the locks it took with it, and the lock set forgets them."""
    ledger = SqlLedger
    empty, fresh, escrow = (
        accounts.wallet("empty", "USDC"),
        accounts.wallet("new", "USDC"),
        accounts.escrow("r", "USDC"),
    )
    async with engine.begin() as conn:
        await ledger(conn).declare([empty, escrow])  # they exist from now on, with nothing in them
    floor = min(empty.id.int, fresh.id.int, escrow.id.int)
    below = next(r for i in range(10_000) if (r := accounts.wallet(f"low-{i}", "USDC")).id.int < floor)
    for payer in (empty, fresh):
        async with engine.begin() as conn:
            with pytest.raises(LedgerError) as err:
                await ledger(conn).apply([Transfer.of(payer, escrow, 5, TransferKind.ENTRY_FEE, "r", payer.owner)])
            assert err.value.code == "exceeds_credits"
            await ledger(conn).declare([below])  # nothing held any more: an account below them all may come first
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM ledger_transfers"))).scalar_one() == 0
        owners = {r[0] for r in await conn.execute(text("SELECT owner_id FROM ledger_accounts"))}
    assert "new" not in owners


async def test_a_new_account_past_int64_in_one_batch_is_out_of_range(engine: AsyncEngine) -> None:
    ledger = SqlLedger
    big = 2**62
    source = accounts.external("stripe", "USDC")
    batch = [Transfer.of(source, accounts.wallet("w", "USDC"), big, TransferKind.TOP_UP, "stripe", i) for i in (1, 2)]
    async with engine.begin() as conn:
        with pytest.raises(LedgerError) as err:
            await ledger(conn).apply(batch)
    assert err.value.code == "amount_out_of_range"


def top_up(wallet: AccountRef, amount: int) -> Transfer:
    return Transfer.of(accounts.external("stripe", wallet.asset), wallet, amount, TransferKind.TOP_UP, wallet.owner)


async def test_accounts_only_some_requests_need_are_taken_unless_busy_never_waited_for(
    engine: AsyncEngine, database_url: str
) -> None:
    """A claim batch waits for the clearing account and takes wallets with SKIP LOCKED: a wallet another transaction
    holds comes back busy at once (not waited for); a free one is taken and held to the end; a missing one is
    neither created nor held (its balance is zero)."""
    clearing, free, stuck, missing = (
        accounts.clearing("USDC"),
        accounts.wallet("free", "USDC"),
        accounts.wallet("stuck", "USDC"),
        accounts.wallet("missing", "USDC"),
    )
    ledger = functools.partial(SqlLedger, strict=True)
    async with engine.begin() as conn:
        await ledger(conn).apply(
            [
                Transfer.of(accounts.external("stripe", "USDC"), w, 500, TransferKind.TOP_UP, w.owner)
                for w in (free, stuck)
            ],
        )
    holder = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        async with holder.transaction():
            await holder.execute("SELECT 1 FROM ledger_accounts WHERE id = $1 FOR UPDATE", stuck.id)
            async with engine.begin() as conn:
                await conn.execute(text("SET LOCAL lock_timeout = '5s'"))
                started = asyncio.get_running_loop().time()
                balances, busy = await asyncio.wait_for(
                    ledger(conn).lock_unless_busy([clearing], unless_busy=[free, stuck, missing]), timeout=2
                )
                assert asyncio.get_running_loop().time() - started < 2
                assert busy == {stuck}
                assert (balances[free].available, balances[missing].available) == (500, 0)
                assert set(balances) == {clearing, free, missing}
                assert await locked_elsewhere(database_url, free)
                assert await locked_elsewhere(database_url, clearing)
                # Applied on the accounts it holds, within the strict lock set.
                await ledger(conn).apply(
                    [Transfer.of(free, clearing, 100, TransferKind.CLAIM_RESERVE, "r-1", flags=TransferFlags.PENDING)],
                )
                rows = await conn.execute(text("SELECT count(*) FROM ledger_accounts WHERE owner_id = 'missing'"))
                assert rows.scalar_one() == 0
    finally:
        await holder.close()


async def test_wait_free_waits_for_the_holder_and_keeps_no_lock(engine: AsyncEngine, database_url: str) -> None:
    wallet = accounts.wallet("w", "USDC")
    ledger = SqlLedger
    async with engine.begin() as conn:
        await ledger(conn).apply(
            [Transfer.of(accounts.external("stripe", "USDC"), wallet, 500, TransferKind.TOP_UP, "w")]
        )
    holder = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        tx = holder.transaction()
        await tx.start()
        await holder.execute("SELECT 1 FROM ledger_accounts WHERE id = $1 FOR UPDATE", wallet.id)
        async with engine.begin() as conn:
            waiting = asyncio.create_task(ledger(conn).wait_free([wallet]))
            await asyncio.sleep(0.3)
            assert not waiting.done()  # it waits for the holder
            await tx.rollback()
            await asyncio.wait_for(waiting, timeout=5)
            assert not await locked_elsewhere(database_url, wallet)  # and holds nothing after
            await ledger(conn).declare([wallet])
            with pytest.raises(LockOrderError):  # once the transaction holds an account it may not wait this way
                await ledger(conn).wait_free([accounts.wallet("x", "USDC")])
    finally:
        await holder.close()


async def test_a_lock_wait_of_wait_free_past_the_timeout_fails_and_the_transaction_goes_on(
    engine: AsyncEngine, database_url: str
) -> None:
    wallet = accounts.wallet("w", "USDC")
    ledger = SqlLedger
    async with engine.begin() as conn:
        await ledger(conn).apply(
            [Transfer.of(accounts.external("stripe", "USDC"), wallet, 500, TransferKind.TOP_UP, "w")]
        )
    holder = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        async with holder.transaction():
            await holder.execute("SELECT 1 FROM ledger_accounts WHERE id = $1 FOR UPDATE", wallet.id)
            async with engine.begin() as conn:
                await conn.execute(text("SET LOCAL lock_timeout = '200ms'"))
                with pytest.raises(Exception) as err:
                    await ledger(conn).wait_free([wallet])
                assert is_database_timeout(err.value)
                assert (await conn.execute(text("SELECT 1"))).scalar_one() == 1  # only its savepoint was lost
    finally:
        await holder.close()


async def test_a_players_verification_lock_held_by_a_change_is_busy_for_a_claim_batch(
    engine: AsyncEngine, database_url: str
) -> None:
    holder = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        async with holder.transaction():
            await holder.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended('prizeflow:verification:' || $1::text, 0))", "stuck"
            )
            async with engine.begin() as conn:
                _, statuses, busy = await asyncio.wait_for(
                    bind(conn).compliance.intake_unless_busy(["free", "stuck"]), timeout=2
                )
            assert busy == {"stuck"}
            assert set(statuses) == {"free"}
    finally:
        await holder.close()
