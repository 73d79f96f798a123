"""The reconciler's count of payouts awaiting an operator (migration 0013, `SqlPayoutRepository.stuck`) on real
PostgreSQL: a payout whose outcome stayed unknown past its rail's operator threshold is counted; one the provider
answered, one still under the threshold and one under a rail with a longer threshold are not; a settled payout
can never stay in doubt (CHECK)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from prizeflow_contracts.errors import PayoutError, PayoutErrorCode
from prizeflow_contracts.providers import ProviderPayoutResult, ProviderPayoutStatus
from prizeflow_payouts.application.books import Books
from prizeflow_payouts.application.transitions import ChangeBuilder, RetryPolicy
from prizeflow_payouts.bootstrap import bind_books
from prizeflow_payouts.domain.payout import Payout
from prizeflow_payouts.domain.state import PayoutState
from prizeflow_runtime.db import asyncpg_dsn, create_engine, session_factory
from prizeflow_runtime.sql_uow import SqlUnitOfWork
from prizeflow_runtime.uow import UnitOfWork

pytestmark = pytest.mark.integration

S = PayoutState
BUILDER = ChangeBuilder(source="/test", policy=RetryPolicy())
# A payout claimed by a worker on its last attempt (the lease `lease_until`).
_INSERT = (
    "INSERT INTO payouts (id, payout_request_id, idempotency_key, request_hash, claim_id, player_id, requested_by, "
    "asset, amount, destination_type, destination_address, provider_type, provider_name, state, approval_policy, "
    "correlation_id, attempts, max_attempts, lease_owner, lease_token, lease_until, created_at, updated_at) "
    "VALUES ($1, $1, $1, 'h', $1, 'p-1', 'p-1', 'USDC', 10000000, 'sandbox', 'success:p-1', 'sandbox', $2, "
    "'submitting', 'auto', 'c', 1, 1, 'w-1', gen_random_uuid(), $3, now(), now())"
)


@pytest.fixture
async def transactions(db: str) -> AsyncIterator[UnitOfWork[Books]]:
    engine = create_engine(db, pool_size=2)
    try:
        yield SqlUnitOfWork(session_factory(engine), bind_books())
    finally:
        await engine.dispose()


async def claimed(db: str, provider: str = "sandbox", *, lease_left: timedelta = timedelta(minutes=1)) -> str:
    pid = f"po-{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(asyncpg_dsn(db))
    try:
        await conn.execute(_INSERT, pid, provider, datetime.now(UTC) + lease_left)
    finally:
        await conn.close()
    return pid


async def get(transactions: UnitOfWork[Books], pid: str) -> Payout:
    async with transactions() as books:
        rec = await books.payouts.get(pid)
    assert rec is not None
    return rec


async def lost_answer(transactions: UnitOfWork[Books], pid: str, *, at: datetime) -> None:
    """What the worker writes when its last attempt got no answer: `submitted`, in doubt since `at`."""
    rec = await get(transactions, pid)
    error = PayoutError.of(PayoutErrorCode.TIMEOUT_UNKNOWN_OUTCOME, "no answer", provider=rec.provider_name)
    change = BUILDER.from_error(rec, S.SUBMITTING, error, now=at, actor="w-1", token=rec.lease_token)
    async with transactions() as books:
        assert await books.payouts.apply([change], at=at)


async def answered(transactions: UnitOfWork[Books], pid: str, status: ProviderPayoutStatus) -> None:
    rec = await get(transactions, pid)
    result = ProviderPayoutResult(status=status, idempotency_key=rec.idempotency_key, provider_ref=f"ref-{pid}")
    now = datetime.now(UTC)
    change = BUILDER.from_result(rec, S.SUBMITTED, result, now=now, actor="w-1", token=None, polls_status=True)
    assert change is not None
    async with transactions() as books:
        assert await books.payouts.apply([change], at=now)


async def stuck(transactions: UnitOfWork[Books]) -> dict[tuple[str, str], int]:
    async with transactions() as books:
        rows = await books.gauges.stuck(
            submitted_older_s=3 * 3600, operator_after_s={"exchange": 7200.0}, default_operator_after_s=1800.0
        )
    return {(kind, provider): n for kind, provider, n in rows if n}


async def test_only_a_payout_in_doubt_past_its_rail_s_threshold_awaits_an_operator(
    db: str, transactions: UnitOfWork[Books]
) -> None:
    hour_ago = datetime.now(UTC) - timedelta(hours=1)
    in_doubt, paid, pending, recent, patient = [await claimed(db) for _ in range(4)] + [await claimed(db, "exchange")]
    for pid in (in_doubt, paid, pending, patient):
        await lost_answer(transactions, pid, at=hour_ago)
    await lost_answer(transactions, recent, at=datetime.now(UTC))
    await answered(transactions, paid, ProviderPayoutStatus.PAID)  # the provider found it: settled
    await answered(transactions, pending, ProviderPayoutStatus.PENDING)  # found, not paid yet: no longer in doubt
    await claimed(db, lease_left=-timedelta(seconds=5))  # a worker died holding it: a stale lease

    assert (await get(transactions, pending)).last_error_code == "timeout_unknown_outcome"  # sticky: not the signal
    assert await stuck(transactions) == {("unknown_outcome", "sandbox"): 1, ("stale_leases", "sandbox"): 1}

    conn = await asyncpg.connect(asyncpg_dsn(db))
    try:
        since = await conn.fetchval("SELECT outcome_unknown_since FROM payouts WHERE id = $1", in_doubt)
        assert abs(since - hour_ago) < timedelta(seconds=1)
        assert await conn.fetchval("SELECT outcome_unknown_since FROM payouts WHERE id = $1", paid) is None
        with pytest.raises(asyncpg.CheckViolationError):  # settled, yet in doubt: refused by the database
            await conn.execute("UPDATE payouts SET state = 'paid', paid_at = now() WHERE id = $1", in_doubt)
    finally:
        await conn.close()
