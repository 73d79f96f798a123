"""Adversarial review of reconciliation (issue 34) on real PostgreSQL: two replicas over one window, and a run
before the ledger's postings arrived. A test marked `xfail(strict=True)` proves a defect still in the product code:
it fails today and must pass once the defect is fixed (then drop the mark)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from prizeflow_contracts.providers import DestinationType, ProviderType, StatementLine, StatementLineKind, StatementPage
from prizeflow_payouts.adapters.reconciliation_pg import recon_transactions
from prizeflow_payouts.application.rail import Rail, RailTerms
from prizeflow_payouts.application.reconciliation import Reconciliation
from prizeflow_payouts.application.registry import ProviderEntry, ProviderRegistry
from prizeflow_payouts.application.transitions import ChangeBuilder, RetryPolicy
from prizeflow_runtime.db import create_engine, session_factory
from prizeflow_testkit.db import fetch

pytestmark = pytest.mark.integration

T0 = datetime.now(UTC).replace(microsecond=0)
SINCE, UNTIL = T0 - timedelta(hours=2), T0 - timedelta(hours=1)
PAID_AT = SINCE + timedelta(minutes=30)

_INSERT = (
    "INSERT INTO payouts (id, payout_request_id, idempotency_key, request_hash, claim_id, player_id, requested_by, "
    "asset, amount, destination_type, destination_address, provider_type, provider_name, state, approval_policy, "
    "correlation_id, attempts, max_attempts, provider_ref, paid_at, finished_at, created_at, updated_at) "
    "VALUES ($1, $1, $1, 'h', $1, 'p-1', 'p-1', 'USDC', 1000, 'sandbox', 'dest-' || $1, 'sandbox', 'rail', 'paid', "
    "'auto', $1, 1, 3, NULL, $2, $2, $2, $2)"
)

TERMS = RailTerms(cancels=False, quotes=False, webhooks=False, confirms_later=True)


def _line(n: int) -> StatementLine:
    return StatementLine(
        line_id=f"line-{n}",
        kind=StatementLineKind.PAYOUT,
        occurred_at=PAID_AT,
        asset="USDC",
        amount=1000,
        reference=f"po-{n}",
        destination=f"dest-po-{n}",
    )


@dataclass
class _Rail:
    """Two pages: po-1's line, then po-2's. `hold`: the second page waits until `release` is set."""

    provider_type: ProviderType = ProviderType.SANDBOX
    hold: bool = False
    asked_second: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def statement(self, since: datetime, until: datetime, cursor: str | None = None) -> StatementPage:
        if cursor is None:
            return StatementPage(lines=(_line(1),), next_cursor="2")
        self.asked_second.set()
        if self.hold:
            await self.release.wait()
        return StatementPage(lines=(_line(2),), next_cursor=None)


@pytest.fixture
async def sessions(db: str) -> AsyncIterator[object]:
    engine = create_engine(db, pool_size=4)
    try:
        yield session_factory(engine)
    finally:
        await engine.dispose()


def _replica(
    sessions: object, rail: _Rail, *, owner: str, now: datetime, lease_s: float, ledger: bool = False
) -> Reconciliation:
    entry = ProviderEntry("rail", Rail(rail, TERMS, statement=rail), ("USDC",), (DestinationType.SANDBOX,))  # type: ignore[arg-type]
    return Reconciliation(
        transactions=recon_transactions(sessions),  # type: ignore[arg-type]
        registry=ProviderRegistry([entry]),
        builder=ChangeBuilder(source="/prizeflow/payouts", policy=RetryPolicy()),
        service="payouts",
        source="/prizeflow/payouts",
        owner=owner,
        lease_s=lease_s,
        ledger=ledger,
        clock=lambda: now,
    )


async def test_a_replica_whose_lease_ran_out_changes_nothing_after_another_completed_the_window(
    db: str, sessions: object
) -> None:
    for n in (1, 2):
        await fetch(db, _INSERT, f"po-{n}", PAID_AT)
    slow_rail = _Rail(hold=True)
    slow = _replica(sessions, slow_rail, owner="replica-a", now=T0, lease_s=1.0)
    fast = _replica(sessions, _Rail(), owner="replica-b", now=T0 + timedelta(seconds=10), lease_s=300.0)

    late = asyncio.create_task(slow.run("rail", SINCE, UNTIL, requested_by="schedule"))
    await asyncio.wait_for(slow_rail.asked_second.wait(), timeout=30)  # page 1 staged; its lease (1 s) is over

    run_id = await fast.run("rail", SINCE, UNTIL, requested_by="schedule")
    done = await fetch(db, "SELECT state, lines, matched, exceptions FROM recon_runs WHERE id = $1", run_id)
    assert [tuple(r) for r in done] == [("completed", 2, 2, 0)]  # a clean window

    slow_rail.release.set()
    late_outcome: BaseException | str
    try:
        late_outcome = await asyncio.wait_for(late, timeout=30)
    except Exception as err:  # noqa: BLE001 - refusing the stale replica is a fix
        late_outcome = err
    assert late_outcome is not None
    found = await fetch(db, "SELECT kind, subject FROM recon_exceptions")
    after = await fetch(db, "SELECT state, lines, matched, exceptions FROM recon_runs WHERE id = $1", run_id)
    assert ([tuple(r) for r in found], [tuple(r) for r in after]) == ([], [("completed", 2, 2, 0)])


async def test_a_clean_window_whose_ledger_postings_are_late_is_not_a_ledger_mismatch(
    db: str, sessions: object
) -> None:
    for n in (1, 2):
        await fetch(db, _INSERT, f"po-{n}", PAID_AT)
    recon = _replica(sessions, _Rail(), owner="replica-a", now=T0, lease_s=300.0, ledger=True)
    await recon.run("rail", SINCE, UNTIL, requested_by="schedule")
    found = await fetch(db, "SELECT kind, subject FROM recon_exceptions ORDER BY subject")
    assert [tuple(r) for r in found] == []


@dataclass
class _Exchange(_Rail):
    """A rail whose unknown outcomes people settle; it records what it was told."""

    settled: list[tuple[str, str | None]] = field(default_factory=list)

    async def settle_unknown_outcome(self, payout_id: str, found_ref: str | None, actor: str) -> None:
        self.settled.append((payout_id, found_ref))


async def test_a_second_unknown_outcome_of_the_same_payout_is_queued_again(db: str, sessions: object) -> None:
    from prizeflow_payouts.application.admin import Actor
    from prizeflow_payouts.domain.reconciliation import Action

    await fetch(
        db,
        "INSERT INTO payouts (id, payout_request_id, idempotency_key, request_hash, claim_id, player_id, "
        "requested_by, asset, amount, destination_type, destination_address, provider_type, provider_name, state, "
        "approval_policy, correlation_id, attempts, max_attempts, outcome_unknown_since, created_at, updated_at, "
        "lease_token, lease_until) "
        "VALUES ($1, $1, $1, 'h', $1, 'p-1', 'p-1', 'USDC', 1000, 'sandbox', 'dest', 'sandbox', 'rail', "
        "'submitting', 'auto', $1, 1, 3, $2, $2, $2, gen_random_uuid(), $2)",
        "po-1",
        SINCE - timedelta(minutes=30),
    )
    rail = _Exchange()
    recon = _replica(sessions, rail, owner="replica-a", now=T0, lease_s=300.0)
    await recon.run("rail", SINCE - timedelta(hours=1), SINCE, requested_by="schedule")
    (first,) = await fetch(db, "SELECT id FROM recon_exceptions WHERE kind = 'unknown_outcome' AND state = 'open'")
    ops, approver = Actor("olga", frozenset({"ops"}), "c"), Actor("bob", frozenset({"approver"}), "c")
    await recon.resolve(first["id"], ops, Action.SETTLE_NOT_MADE, "not in the exchange's history")
    await recon.resolve(first["id"], approver, Action.SETTLE_NOT_MADE, "agreed")
    assert rail.settled == [("po-1", None)]
    # Asked again with the same client id; the exchange times out again: its outcome is unknown once more.
    await fetch(
        db, "UPDATE payouts SET outcome_unknown_since = $2 WHERE id = $1", "po-1", SINCE + timedelta(minutes=40)
    )
    await recon.run("rail", SINCE, UNTIL, requested_by="schedule")
    found = await fetch(db, "SELECT state FROM recon_exceptions WHERE kind = 'unknown_outcome' AND state <> 'resolved'")
    assert len(found) == 1


@dataclass
class _Stray(_Rail):
    """One payout line naming no payout of ours: an unrequested debit of 1000 USDC."""

    async def statement(self, since: datetime, until: datetime, cursor: str | None = None) -> StatementPage:
        stray = _line(9).model_copy(update={"reference": None, "destination": "GTHIEF"})
        return StatementPage(lines=(stray,), next_cursor=None)


async def test_a_write_off_books_the_amount_that_was_proposed(db: str, sessions: object) -> None:
    from prizeflow_contracts.envelope import decode
    from prizeflow_contracts.events.payouts import ReconciliationAdjusted
    from prizeflow_payouts.application.admin import Actor
    from prizeflow_payouts.domain.reconciliation import Action

    recon = _replica(sessions, _Stray(), owner="replica-a", now=T0, lease_s=300.0)
    await recon.run("rail", SINCE, UNTIL, requested_by="schedule")
    (exc,) = await fetch(db, "SELECT id, amount FROM recon_exceptions WHERE kind = 'unrequested'")
    assert exc["amount"] == 1000
    await recon.resolve(exc["id"], Actor("olga", frozenset({"ops"}), "c"), Action.WRITE_OFF, "lost to a thief")
    changed = True
    try:
        await fetch(db, "UPDATE recon_exceptions SET amount = 1000000000 WHERE id = $1", exc["id"])
    except Exception:  # noqa: BLE001 - the database refusing the change is a fix
        changed = False
    try:
        await recon.resolve(exc["id"], Actor("bob", frozenset({"approver"}), "c"), Action.WRITE_OFF, "agreed")
    except Exception:  # noqa: BLE001 - refusing a confirmation of a changed exception is a fix
        assert changed
        return
    rows = await fetch(db, "SELECT payload FROM outbox WHERE event_type LIKE '%ReconciliationAdjusted%'")
    adjusted = [decode(bytes(r["payload"])).data for r in rows]
    amounts = [a.amount.amount for a in adjusted if isinstance(a, ReconciliationAdjusted)]
    assert amounts == [1000]
