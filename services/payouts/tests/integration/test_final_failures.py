"""A final failure stays final in PostgreSQL itself (migrations 0008 and 0015), whatever the application asks:
rewards voided its reservation, so it is never attempted again, and a provider's late `paid` never revives it (it
is a disagreement a person decides: test_final_states.py)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from sqlalchemy.exc import IntegrityError

from prizeflow_contracts.providers import ProviderPayoutResult, ProviderPayoutStatus
from prizeflow_payouts.application.books import Books
from prizeflow_payouts.application.transitions import ChangeBuilder, RetryPolicy
from prizeflow_payouts.bootstrap import bind_books
from prizeflow_payouts.domain.payout import Change, Payout
from prizeflow_payouts.domain.state import PayoutState
from prizeflow_runtime.db import asyncpg_dsn, create_engine, session_factory
from prizeflow_runtime.migrations import migrate, upgrade_to_head
from prizeflow_runtime.sql_uow import SqlUnitOfWork
from prizeflow_runtime.uow import UnitOfWork
from prizeflow_testkit.payouts import ALEMBIC_INI

pytestmark = pytest.mark.integration

S = PayoutState
_INSERT = (
    "INSERT INTO payouts (id, payout_request_id, idempotency_key, request_hash, claim_id, player_id, requested_by, "
    "asset, amount, destination_type, destination_address, provider_type, provider_name, state, approval_policy, "
    "correlation_id, attempts, max_attempts, last_error_code, next_attempt_at, finished_at, created_at, updated_at) "
    "VALUES ($1, $1, $1, 'h', $1, 'p-1', 'p-1', 'USDC', 10000000, 'sandbox', 'success:p-1', 'sandbox', 'sandbox', "
    "'failed', 'auto', 'c', 1, 3, $2, $3, $4, now(), now())"
)


@pytest.fixture
async def transactions(db: str) -> AsyncIterator[UnitOfWork[Books]]:
    engine = create_engine(db, pool_size=2)
    try:
        yield SqlUnitOfWork(session_factory(engine), bind_books())
    finally:
        await engine.dispose()


async def failed(db: str, *, final: bool) -> str:
    """A failed payout as the worker leaves it: final (finished), or retryable (its next attempt an hour away)."""
    pid, now = f"po-{uuid.uuid4().hex[:12]}", datetime.now(UTC)
    conn = await asyncpg.connect(asyncpg_dsn(db))
    try:
        code = "invalid_destination" if final else "provider_unavailable"
        later = None if final else now + timedelta(hours=1)
        await conn.execute(_INSERT, pid, code, later, now if final else None)
    finally:
        await conn.close()
    return pid


async def get(transactions: UnitOfWork[Books], pid: str) -> Payout:
    async with transactions() as books:
        rec = await books.payouts.get(pid)
    assert rec is not None
    return rec


def retry(rec: Payout) -> Change:
    """What an operator's retry writes (finished_at and next_attempt_at cleared), with no use case to refuse it."""
    now = datetime.now(UTC)
    return Change(record=rec, expected=S.FAILED, to=S.APPROVED, available_at=now, sync_first=True, max_attempts=4)


async def test_a_final_failure_is_never_attempted_again_nor_revived_as_paid(
    db: str, transactions: UnitOfWork[Books]
) -> None:
    final, retryable = await failed(db, final=True), await failed(db, final=False)
    rec = await get(transactions, final)
    assert rec.failed_for_good
    assert not (await get(transactions, retryable)).failed_for_good

    with pytest.raises(IntegrityError, match="failed for good"):
        async with transactions() as books:
            await books.payouts.apply([retry(rec)], at=datetime.now(UTC))
    async with transactions() as books:  # a retryable failure: the same change is fine
        assert await books.payouts.apply([retry(await get(transactions, retryable))], at=datetime.now(UTC))

    waiting = await failed(db, final=False)
    conn = await asyncpg.connect(asyncpg_dsn(db))
    try:
        for sql in (
            "UPDATE payouts SET state = 'cancelled' WHERE id = $1",  # a second outcome for a settled claim
            "UPDATE payouts SET finished_at = NULL, next_attempt_at = now() WHERE id = $1",  # made retryable
            "UPDATE payouts SET state = 'submitting', finished_at = NULL, lease_token = gen_random_uuid(), "
            "lease_until = now() WHERE id = $1",
        ):
            with pytest.raises(asyncpg.CheckViolationError):
                await conn.execute(sql, final)
        for sql in (  # the row checks: a failure is retryable or final; in progress is not finished
            "UPDATE payouts SET finished_at = now() WHERE id = $1",  # both
            "UPDATE payouts SET next_attempt_at = NULL WHERE id = $1",  # neither
            "UPDATE payouts SET state = 'approved', finished_at = now(), next_attempt_at = NULL WHERE id = $1",
        ):
            with pytest.raises(asyncpg.CheckViolationError):
                await conn.execute(sql, waiting)
    finally:
        await conn.close()

    # A provider's late `paid` is no step from a final failure, and PostgreSQL refuses the move if code tried it.
    late = ProviderPayoutResult(status=ProviderPayoutStatus.PAID, idempotency_key=rec.idempotency_key, provider_ref="r")
    builder = ChangeBuilder(source="/test", policy=RetryPolicy())
    now = datetime.now(UTC)
    assert builder.from_result(rec, S.FAILED, late, now=now, actor="webhook", token=None, polls_status=False) is None
    forced = Change(record=rec, expected=S.FAILED, to=S.PAID, paid_at=now, finished_at=None)
    with pytest.raises(IntegrityError, match="failed for good"):
        async with transactions() as books:
            await books.payouts.apply([forced], at=now)
    after = await get(transactions, final)
    assert (after.state, after.failed_for_good) == (S.FAILED, True)


async def test_migration_0008_downgrades_and_upgrades_again(db: str) -> None:
    unguarded, guarded = await failed(db, final=True), await failed(db, final=True)
    back_to_approved = "UPDATE payouts SET state = 'approved', finished_at = NULL WHERE id = $1"
    await migrate(ALEMBIC_INI, db, "0007", downgrade=True)
    conn = await asyncpg.connect(asyncpg_dsn(db))
    try:
        await conn.execute(back_to_approved, unguarded)  # what the bug did, unopposed before 0008
    finally:
        await conn.close()
    await upgrade_to_head(ALEMBIC_INI, db)
    conn = await asyncpg.connect(asyncpg_dsn(db))
    try:
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute(back_to_approved, guarded)
    finally:
        await conn.close()
