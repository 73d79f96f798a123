"""A payout's history at its provider across windows, on real PostgreSQL: every line that named a payout is
remembered (`recon_payout_lines`), so a later run of another window still sees it. Found by an adversarial review:
each of these was missed while a run saw only its own window's lines."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from prizeflow_contracts.providers import ProviderType, StatementLine, StatementLineKind, StatementPage
from prizeflow_payouts.adapters.payouts_pg import SqlPayoutRepository
from prizeflow_payouts.application.recon_returns import ReturnPaidPayouts
from prizeflow_payouts.application.transitions import ChangeBuilder, RetryPolicy
from prizeflow_reconciliation.adapters.books import bind
from prizeflow_reconciliation.application.ports import Actor
from prizeflow_reconciliation.application.queue import ExceptionQueue
from prizeflow_reconciliation.application.runs import ReconcileWindows, ReconGauges
from prizeflow_reconciliation.domain import Action
from prizeflow_reconciliation.statements import RailStatement, Statements
from prizeflow_runtime.db import create_engine, session_factory
from prizeflow_runtime.sql_uow import SqlUnitOfWork
from prizeflow_testkit.db import fetch

pytestmark = pytest.mark.integration

HOUR = timedelta(hours=1)
A = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - 5 * HOUR  # window A = [A, A + 1 h)
B = A + HOUR
SLACK = timedelta(minutes=15)

_INSERT = (
    "INSERT INTO payouts (id, payout_request_id, idempotency_key, request_hash, claim_id, player_id, requested_by, "
    "asset, amount, destination_type, destination_address, provider_type, provider_name, state, approval_policy, "
    "correlation_id, attempts, max_attempts, paid_at, created_at, updated_at) "
    "VALUES ($1, $1, $1, 'h', $1, 'p-1', 'p-1', 'USDC', 1000, 'sandbox', 'dest', 'sandbox', 'rail', $2, 'auto', $1, "
    "1, 3, $3, $4, $4)"
)


def payout_line(line_id: str, at: datetime) -> StatementLine:
    return StatementLine(
        line_id=line_id,
        kind=StatementLineKind.PAYOUT,
        occurred_at=at,
        asset="USDC",
        amount=1000,
        reference="po-1",
        destination="dest",
    )


@dataclass
class _Rail:
    """The provider's books: its listing returns the lines of the range asked for."""

    provider_type: ProviderType = ProviderType.SANDBOX
    lines: list[StatementLine] = field(default_factory=list)

    async def statement(self, since: datetime, until: datetime, cursor: str | None = None) -> StatementPage:
        return StatementPage(lines=tuple(x for x in self.lines if since <= x.occurred_at < until))


@pytest.fixture
async def sessions(db: str) -> AsyncIterator[object]:
    engine = create_engine(db, pool_size=4)
    try:
        yield session_factory(engine)
    finally:
        await engine.dispose()


def recon(sessions: object, rail: _Rail) -> _Recon:
    return _wired(sessions, rail, slack=SLACK, ledger=False)


@dataclass
class _Recon:
    """Reconciliation's two halves on PostgreSQL, wired as `compose_reconciliation` wires them."""

    runs: ReconcileWindows
    queue: ExceptionQueue

    async def run(self, provider: str, since: datetime, until: datetime, *, requested_by: str) -> str:
        return await self.runs.run(provider, since, until, requested_by=requested_by)

    async def resolve(self, exception_id: int, actor: Actor, action: Action, reason: str) -> str:
        return await self.queue.resolve(exception_id, actor, action, reason)


def _wired(sessions: object, rail: _Rail, **options: Any) -> _Recon:
    builder = ChangeBuilder(source="/prizeflow/payouts", policy=RetryPolicy())
    uow: Any = SqlUnitOfWork(
        sessions,  # type: ignore[arg-type]
        functools.partial(bind, returns=lambda session: ReturnPaidPayouts(SqlPayoutRepository(session), builder)),
    )
    settles = hasattr(rail, "settle_unknown_outcome")
    statements = Statements(
        [RailStatement("rail", ProviderType.SANDBOX, reader=rail, settler=rail if settles else None)]  # type: ignore[arg-type]
    )
    clock = options.get("clock")
    queue = ExceptionQueue(uow, statements, service="payouts", source="/prizeflow/payouts")
    if clock is not None:
        queue.clock = clock
    return _Recon(ReconcileWindows(uow, statements, ReconGauges(uow), **options), queue)


async def found(db: str) -> list[tuple[str, str]]:
    rows = await fetch(db, "SELECT kind, subject FROM recon_exceptions ORDER BY kind, subject")
    return [(r["kind"], r["subject"]) for r in rows]


async def test_paid_at_the_provider_while_in_flight_then_failed_here_is_found(db: str, sessions: object) -> None:
    """The provider paid at 10:30 while the payout was still `submitted` here; at 11:20 it failed here (the wallet
    credited back). Window A saw the line but the payout in flight; window B's run finds it paid and not recorded."""
    rail = _Rail(lines=[payout_line("tr-1", A + 30 * timedelta(minutes=1))])
    await fetch(db, _INSERT, "po-1", "submitted", None, A + timedelta(minutes=29))
    await recon(sessions, rail).run("rail", A, B, requested_by="schedule")
    assert await found(db) == []
    await fetch(
        db,
        "UPDATE payouts SET state = 'failed', updated_at = $1, finished_at = $1 WHERE id = 'po-1'",
        B + timedelta(minutes=20),
    )
    await recon(sessions, rail).run("rail", B, B + HOUR, requested_by="schedule")
    assert await found(db) == [("paid_not_recorded", "payout:po-1")]


async def test_paid_again_in_the_next_window_is_a_duplicate(db: str, sessions: object) -> None:
    """Paid at 10:30, and again at 11:40 (past window A's slack): neither run reads both lines from the provider."""
    paid_at = A + 30 * timedelta(minutes=1)
    rail = _Rail(lines=[payout_line("wd-a", paid_at), payout_line("wd-b", B + 40 * timedelta(minutes=1))])
    await fetch(db, _INSERT, "po-1", "paid", paid_at, paid_at)
    await recon(sessions, rail).run("rail", A, B, requested_by="schedule")
    assert await found(db) == []
    await recon(sessions, rail).run("rail", B, B + HOUR, requested_by="schedule")
    assert await found(db) == [("duplicate", "payout:po-1")]


async def test_marked_paid_here_long_after_the_provider_paid_is_not_missing(db: str, sessions: object) -> None:
    """The provider paid at 10:30; the rail learned it at 11:20 (a late poll): window B's run reads lines from
    10:45 only, and still finds the payout's line."""
    sent = A + 30 * timedelta(minutes=1)
    rail = _Rail(lines=[payout_line("tr-1", sent)])
    await fetch(db, _INSERT, "po-1", "submitted", None, sent)
    await recon(sessions, rail).run("rail", A, B, requested_by="schedule")
    remembered = await fetch(db, "SELECT line_id, payout_id FROM recon_payout_lines")
    assert [tuple(r) for r in remembered] == [("tr-1", "po-1")]
    await fetch(
        db,
        "UPDATE payouts SET state = 'paid', paid_at = $1, updated_at = $1 WHERE id = 'po-1'",
        B + 20 * timedelta(minutes=1),
    )
    await recon(sessions, rail).run("rail", B, B + HOUR, requested_by="schedule")
    assert await found(db) == []


async def test_a_line_the_provider_stops_listing_is_found_and_not_counted_where_it_is_read_again(
    db: str, sessions: object
) -> None:
    """Issue 56: the provider listed the payout's payment (matched, remembered), then its statement no longer lists it
    (a correction, or money hidden after the fact). The run that reads its range again finds the line withdrawn (and
    the payout missing: nothing shows it paid). The line stays remembered (evidence is not the run's to delete), and
    a later window's run that names the payout reads its history again: the withdrawn line is not counted there, so
    the payout's payment listed later is its first, not a duplicate; it is found once, whatever runs again."""
    paid_at = A + 30 * timedelta(minutes=1)
    rail = _Rail(lines=[payout_line("tr-1", paid_at)])
    await fetch(db, _INSERT, "po-1", "paid", paid_at, paid_at)
    await recon(sessions, rail).run("rail", A, B, requested_by="schedule")
    assert await found(db) == []
    rail.lines.clear()
    await recon(sessions, rail).run("rail", A, B + HOUR, requested_by="operator")  # a window over A's again
    assert await found(db) == [("missing", "payout:po-1"), ("withdrawn_line", "line:tr-1")]
    rows = await fetch(
        db, "SELECT payout_id, asset, amount, severity FROM recon_exceptions WHERE kind = 'withdrawn_line'"
    )
    assert [tuple(r) for r in rows] == [("po-1", "USDC", 1000, "high")]
    assert [r["line_id"] for r in await fetch(db, "SELECT line_id FROM recon_payout_lines")] == ["tr-1"]
    # Listed again later (the provider's correction undone, dated in window B): its payment, once; and the
    # withdrawn line is found once, whatever runs again.
    rail.lines.append(payout_line("tr-1b", B + 10 * timedelta(minutes=1)))
    await recon(sessions, rail).run("rail", B, B + 2 * HOUR, requested_by="schedule")
    await recon(sessions, rail).run("rail", A, B + 3 * HOUR, requested_by="operator")
    assert await found(db) == [("missing", "payout:po-1"), ("withdrawn_line", "line:tr-1")]
