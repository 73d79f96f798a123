"""The payout use cases on an in-memory `PayoutRepository`: creation and its idempotency, the approval flow,
the worker's transitions and retries. No database, broker, socket or process."""

from __future__ import annotations

import asyncio
import copy
import hashlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, cast

import pytest
from prometheus_client import CollectorRegistry

from prizeflow_compliance.application.ports import ComplianceStores
from prizeflow_contracts.envelope import Envelope, OutgoingEvent
from prizeflow_contracts.errors import PayoutErrorCode, PayoutProviderError
from prizeflow_contracts.events.audit import AdminActionRecorded
from prizeflow_contracts.events.payouts import (
    PayoutApproved,
    PayoutCancelled,
    PayoutCreated,
    PayoutFailed,
    PayoutPaid,
    PayoutRejected,
    PayoutRequestRefused,
)
from prizeflow_contracts.money import Money
from prizeflow_contracts.providers import (
    DestinationType,
    PayoutDestination,
    PayoutInstruction,
    PayoutLookup,
    ProviderPayoutResult,
    ProviderPayoutStatus,
    ProviderType,
    Quote,
    WebhookEvent,
)
from prizeflow_payouts.application.admin import Actor, AdminError, PayoutAdmin
from prizeflow_payouts.application.books import Books as PayoutBooks
from prizeflow_payouts.application.create import CreatePayouts
from prizeflow_payouts.application.gate import GateStore
from prizeflow_payouts.application.gauges import RefreshPayoutGauges
from prizeflow_payouts.application.metrics import PayoutMetrics
from prizeflow_payouts.application.out_of_band import SettleOutOfBand
from prizeflow_payouts.application.payout_requests import CreatePayoutCommand, PayoutConflictError
from prizeflow_payouts.application.ports import (
    ExternalSigningError,
    ProviderBalance,
    RailProgress,
    SignerResults,
    SourceProgress,
)
from prizeflow_payouts.application.rail import Rail, RailTerms, StableErrors
from prizeflow_payouts.application.registry import ProviderEntry, ProviderRegistry
from prizeflow_payouts.application.transitions import ChangeBuilder, RetryPolicy
from prizeflow_payouts.application.worker import PayoutWorker, WorkerConfig
from prizeflow_payouts.domain.approval import ApprovalBook, ApprovalRule
from prizeflow_payouts.domain.deny import NOTHING_DENIED, DenyList
from prizeflow_payouts.domain.disagreement import Conclusion, Disagreement
from prizeflow_payouts.domain.payout import Change, HistoryEntry, Payout, RequestRefusal
from prizeflow_payouts.domain.state import PayoutState
from prizeflow_reconciliation.statements import LedgerPostings
from prizeflow_runtime.errors import ErrorKind, UseCaseError
from prizeflow_runtime.uow import UnitOfWork

S = PayoutState
T = TypeVar("T")
USDC = 10_000_000  # one USDC in minor units


# -- the fakes ------------------------------------------------------------------------------------------------
@dataclass
class Row:
    """A payout and the columns the entity does not carry (schedules, lease)."""

    payout: Payout
    available_at: datetime
    next_attempt_at: datetime | None = None
    next_sync_at: datetime | None = None
    lease_token: uuid.UUID | None = None
    lease_until: datetime | None = None
    outcome_unknown_since: datetime | None = None


@dataclass
class Books:
    rows: dict[str, Row] = field(default_factory=dict)
    refusals: dict[str, RequestRefusal] = field(default_factory=dict)
    history: list[tuple[str, HistoryEntry]] = field(default_factory=list)
    approvals: dict[str, list[str]] = field(default_factory=dict)
    provider_events: set[tuple[str, str]] = field(default_factory=set)
    events: list[OutgoingEvent] = field(default_factory=list)
    route_digest: tuple[int, str] | None = None
    disagreements: dict[int, dict[str, Any]] = field(default_factory=dict)
    statement_fees: dict[str, tuple[str, int]] = field(default_factory=dict)  # recorded from statements only


class MemoryPayouts:
    """The payouts' stores and their unit of work in memory: a transaction works on a copy of the books and keeps it
    only if its block ends without an error (what a rollback does)."""

    def __init__(self) -> None:
        self.books = Books()
        self.skew = timedelta(0)  # moves this repository's "now" (due dates, leases) forward
        self.on_commit: list[Callable[[], None]] = []  # the open transaction's after-commit callbacks

    def now(self) -> datetime:
        return datetime.now(UTC) + self.skew

    def uow(self) -> UnitOfWork[PayoutBooks]:
        return _MemoryUnitOfWork(self)

    def books_now(self) -> PayoutBooks:
        """The stores on the books as they are (no transaction: what a handler's caller already opened)."""
        repo = _MemoryRepository(self)
        return PayoutBooks(
            payouts=repo,
            holds=cast("GateStore", _NoGate()),
            disagreements=repo,
            gauges=repo,
            compliance=cast("ComplianceStores", None),
            postings=cast("LedgerPostings", None),
            signer_results=cast("SignerResults", None),
        )

    # what the tests look at
    def state(self, payout_id: str) -> PayoutState:
        return self.books.rows[payout_id].payout.state

    def path(self, payout_id: str) -> list[tuple[str | None, str]]:
        return [
            (h.from_state.value if h.from_state else None, h.to_state.value)
            for pid, h in self.books.history
            if pid == payout_id
        ]

    def events_of(self, kind: type[T]) -> list[T]:
        return [e.data for e in self.books.events if isinstance(e.data, kind)]


class _MemoryUnitOfWork:
    def __init__(self, store: MemoryPayouts) -> None:
        self.store = store

    @asynccontextmanager
    async def __call__(self) -> AsyncIterator[PayoutBooks]:
        before = copy.deepcopy(self.store.books)
        self.store.on_commit = []
        try:
            yield self.store.books_now()
        except BaseException:
            self.store.books = before
            self.store.on_commit = []
            raise
        callbacks, self.store.on_commit = self.store.on_commit, []
        for callback in callbacks:
            callback()

    async def run(self, work: Callable[[PayoutBooks], Awaitable[T]]) -> T:
        async with self() as books:
            return await work(books)


class _NoGate:
    """These use cases run without a compliance gate: nothing reads the holds."""


class _MemoryRepository:
    def __init__(self, store: MemoryPayouts) -> None:
        self.store = store

    @property
    def b(self) -> Books:
        return self.store.books

    async def find_existing(
        self, keys: Sequence[str], request_ids: Sequence[str], claim_ids: Sequence[str] = ()
    ) -> list[Payout]:
        return [
            r.payout
            for r in self.b.rows.values()
            if r.payout.idempotency_key in keys
            or r.payout.payout_request_id in request_ids
            or r.payout.claim_id in claim_ids
        ]

    async def insert_new(self, payouts: Sequence[Payout]) -> set[str]:
        inserted = set()
        for p in payouts:  # the unique columns: id, idempotency key, request id, claim
            if p.id in self.b.rows or await self.find_existing(
                [p.idempotency_key], [p.payout_request_id], [p.claim_id]
            ):
                continue
            self.b.rows[p.id] = Row(p, available_at=p.created_at)
            inserted.add(p.id)
        return inserted

    async def find_refusals(self, claim_ids: Sequence[str]) -> dict[str, RequestRefusal]:
        return {c: self.b.refusals[c] for c in claim_ids if c in self.b.refusals}

    async def insert_refusals(self, refusals: Sequence[RequestRefusal]) -> set[str]:
        stored = set()
        for r in refusals:
            if r.claim_id not in self.b.refusals:
                self.b.refusals[r.claim_id] = r
                stored.add(r.claim_id)
        return stored

    async def add_events(self, events: Sequence[Envelope[Any]]) -> None:
        self.b.events.extend(events)

    def after_commit(self, callback: Callable[[], None]) -> None:
        self.store.on_commit.append(callback)

    async def end_leases(self, leases: Sequence[tuple[str, uuid.UUID]]) -> int:
        return 0

    async def get(self, payout_id: str, *, for_update: bool = False) -> Payout | None:
        row = self.b.rows.get(payout_id)
        return row.payout if row else None

    async def find_for_provider_event(
        self, provider_type: str, provider_ref: str | None, key: str | None
    ) -> Payout | None:
        for r in self.b.rows.values():
            p = r.payout
            if p.provider_type == provider_type and (
                (key is not None and p.idempotency_key == key)
                or (provider_ref is not None and p.provider_ref == provider_ref)
            ):
                return p
        return None

    async def claim_for_submit(self, *, owner: str, limit: int, lease_s: float) -> list[Payout]:
        now = self.store.now()
        claimed: list[Payout] = []
        for r in self.b.rows.values():
            p = r.payout
            due = (
                (p.state is S.APPROVED and r.available_at <= now)
                or (p.state is S.FAILED and r.next_attempt_at is not None and r.next_attempt_at <= now)
                or (p.state is S.SUBMITTING and r.lease_until is not None and r.lease_until < now)
            )
            if not due or len(claimed) >= limit:
                continue
            resumed = p.state is S.SUBMITTING
            r.lease_token, r.lease_until, r.next_attempt_at = uuid.uuid4(), now + timedelta(seconds=lease_s), None
            r.payout = replace(
                p,
                state=S.SUBMITTING,
                attempts=p.attempts if resumed else p.attempts + 1,
                sync_first=p.sync_first or resumed or p.attempts > 0,
            )
            claimed.append(replace(r.payout, lease_token=r.lease_token, previous_state=p.state))
        return claimed

    async def claim_for_sync(self, *, owner: str, providers: Sequence[str], limit: int, lease_s: float) -> list[Payout]:
        now = self.store.now()
        claimed: list[Payout] = []
        for r in self.b.rows.values():
            p = r.payout
            due = p.state is S.SUBMITTED and r.next_sync_at is not None and r.next_sync_at <= now
            if due and p.provider_name in providers and len(claimed) < limit:
                r.lease_token, r.next_sync_at = uuid.uuid4(), now + timedelta(seconds=lease_s)
                r.payout = replace(p, lease_token=r.lease_token)  # as the SQL's row: `get` reads the lease
                claimed.append(r.payout)
        return claimed

    async def next_due_in(self, *, providers: Sequence[str]) -> float | None:
        times = []
        for r in self.b.rows.values():
            p = r.payout
            if p.state is S.APPROVED:
                times.append(r.available_at)
            elif p.state is S.FAILED and r.next_attempt_at is not None:
                times.append(r.next_attempt_at)
            elif p.state is S.SUBMITTING and r.lease_until is not None:
                times.append(r.lease_until)
            elif p.state is S.SUBMITTED and r.next_sync_at is not None and p.provider_name in providers:
                times.append(r.next_sync_at)
        return (min(times) - self.store.now()).total_seconds() if times else None

    async def apply(self, changes: Sequence[Change], *, at: datetime) -> list[Change]:
        applied = []
        for c in changes:
            r = self.b.rows[c.record.id]
            if r.payout.state is not c.expected or (c.token is not None and r.lease_token != c.token):
                continue
            p = r.payout
            r.payout = replace(
                p,
                state=c.to,
                provider_ref=c.provider_ref or p.provider_ref,
                tx_hash=c.tx_hash or p.tx_hash,
                last_error_code=c.error_code or p.last_error_code,
                sync_polls=c.sync_polls,
                sync_first=p.sync_first if c.sync_first is None else c.sync_first,
                submitted_at=p.submitted_at or c.submitted_at,
                max_attempts=c.max_attempts or p.max_attempts,
                finished_at=c.finished_at,  # written as given, as the SQL does
                lease_token=None,
            )
            r.available_at = c.available_at or r.available_at
            r.next_attempt_at, r.next_sync_at = c.next_attempt_at, c.next_sync_at
            r.lease_token = r.lease_until = None
            if c.finished_at is not None or c.to in (S.PAID, S.CANCELLED, S.REJECTED, S.RETURNED):
                r.outcome_unknown_since = None  # as the SQL does
            elif c.outcome_unknown is not None:
                r.outcome_unknown_since = (r.outcome_unknown_since or at) if c.outcome_unknown else None
            applied.append(c)
        await self.stage(applied, at=at)
        return applied

    async def stage(self, changes: Sequence[Change], *, at: datetime) -> None:
        await self.add_history([(c.record.id, h) for c in changes for h in c.history], at=at)
        self.b.events.extend(e for c in changes for e in c.events)

    async def add_history(self, entries: Sequence[tuple[str, HistoryEntry]], *, at: datetime) -> None:
        self.b.history.extend(entries)

    async def approvers(self, payout_id: str) -> list[str]:
        return list(self.b.approvals.get(payout_id, []))

    async def add_approval(
        self, payout_id: str, approver: str, *, reason: str | None, correlation_id: str, at: datetime
    ) -> bool:
        approvers = self.b.approvals.setdefault(payout_id, [])
        if approver in approvers:
            return False
        approvers.append(approver)
        return True

    async def record_provider_event(
        self, provider: str, event_id: str, *, payout_id: str | None, status: str | None, outcome: str
    ) -> bool:
        if (provider, event_id) in self.b.provider_events:
            return False
        self.b.provider_events.add((provider, event_id))
        return True

    async def next_route_announcement(self, digest: str, at: datetime) -> int | None:
        last = self.b.route_digest
        if last is not None and last[1] == digest:
            return None
        sequence = 1 if last is None else last[0] + 1
        self.b.route_digest = (sequence, digest)
        return sequence

    async def record_statement_fees(
        self, provider: str, learned: Sequence[tuple[str, str, int]], *, run_id: str, at: datetime
    ) -> int:
        recorded = 0
        for payout_id, asset, amount in learned:
            row = self.b.rows.get(payout_id)
            if row is None or row.payout.provider_name != provider or payout_id in self.b.statement_fees:
                continue
            self.b.statement_fees[payout_id] = (asset, amount)
            state = row.payout.state
            self.b.history.append((payout_id, HistoryEntry(state, state, "reconciliation", f"fee (run {run_id})")))
            recorded += 1
        return recorded

    async def add_disagreement(
        self, payout: Payout, *, provider: str, reported: ProviderPayoutStatus, source_ref: str | None, at: datetime
    ) -> bool:
        open_ = ("checking", "contradiction")
        if any(d["payout_id"] == payout.id and d["status"] in open_ for d in self.b.disagreements.values()):
            return False
        did = len(self.b.disagreements) + 1
        self.b.disagreements[did] = {
            "id": did,
            "payout_id": payout.id,
            "provider": provider,
            "payout_state": payout.state,
            "reported": reported,
            "source_ref": source_ref,
            "status": "checking",
            "checks": 0,
            "next_check_at": at,
            "created_at": at,
            "provider_status_now": None,
        }
        return True

    async def claim_disagreements(self, *, limit: int, lease_s: float) -> list[Disagreement]:
        now = self.store.now()
        due = [d for d in self.b.disagreements.values() if d["status"] == "checking" and d["next_check_at"] <= now][
            :limit
        ]
        for d in due:
            d["checks"] += 1
            d["next_check_at"] = now + timedelta(seconds=lease_s)
        return [
            Disagreement(
                id=d["id"],
                payout=self.b.rows[d["payout_id"]].payout,
                provider=d["provider"],
                payout_state=d["payout_state"],
                reported=d["reported"],
                source_ref=d["source_ref"],
                checks=d["checks"],
                created_at=d["created_at"],
            )
            for d in due
        ]

    async def payouts_for_update(self, payout_ids: Sequence[str]) -> dict[str, Payout]:
        return {i: self.b.rows[i].payout for i in payout_ids}

    async def conclude_disagreements(self, conclusions: Sequence[Conclusion], *, at: datetime) -> list[Conclusion]:
        done = []
        for c in conclusions:
            d = self.b.disagreements[c.disagreement.id]
            if d["status"] != "checking" or d["checks"] != c.disagreement.checks:
                continue
            d.update(status=c.status.value, provider_status_now=c.provider_status_now, next_check_at=c.next_check_at)
            done.append(c)
        return done

    async def acknowledge_disagreement(
        self, disagreement_id: int, *, by: str, reason: str, at: datetime
    ) -> dict[str, Any] | None:
        d = self.b.disagreements.get(disagreement_id)
        if d is None or d["status"] != "contradiction":
            return None
        d.update(status="acknowledged", acknowledged_by=by, acknowledged_reason=reason)
        return {k: getattr(v, "value", v) for k, v in d.items()}

    async def open_contradictions(self) -> list[tuple[str, int]]:
        out: dict[str, int] = {}
        for d in self.b.disagreements.values():
            if d["status"] == "contradiction":
                out[d["provider"]] = out.get(d["provider"], 0) + 1
        return list(out.items())

    async def counts(self) -> list[tuple[str, str, int]]:
        out: dict[tuple[str, str], int] = {}
        for r in self.b.rows.values():
            key = (r.payout.state.value, r.payout.provider_name)
            out[key] = out.get(key, 0) + 1
        return [(s, p, n) for (s, p), n in out.items()]

    async def queue_length(self) -> int:
        return sum(1 for r in self.b.rows.values() if r.payout.state in (S.APPROVED, S.FAILED))

    async def stuck(
        self, *, submitted_older_s: float, operator_after_s: Mapping[str, float], default_operator_after_s: float
    ) -> list[tuple[str, str, int]]:
        """Only `unknown_outcome` (the SQL's count is the integration tests' business)."""
        now = self.store.now()
        out: dict[str, int] = {}
        for r in self.b.rows.values():
            after = timedelta(seconds=operator_after_s.get(r.payout.provider_name, default_operator_after_s))
            if r.outcome_unknown_since is not None and r.outcome_unknown_since < now - after:
                out[r.payout.provider_name] = out.get(r.payout.provider_name, 0) + 1
        return [("unknown_outcome", provider, n) for provider, n in out.items()]


class ScriptedProvider:
    """A sandbox-like provider answering from a script: per idempotency key, a queue of answers to `create`
    (a status, or an error code raised); `sync` answers `payout_not_found` unless the provider holds it."""

    provider_type = ProviderType.SANDBOX

    terms = RailTerms(cancels=True, quotes=False, webhooks=False, confirms_later=True)

    def rail(self) -> Rail:
        """How it registers: the parts it has (subclasses add theirs)."""
        return Rail(payouts=self, terms=self.terms, errors=StableErrors("scripted"))

    def __init__(self, creates: Mapping[str, list[ProviderPayoutStatus | PayoutErrorCode]] | None = None) -> None:
        self.creates = {k: list(v) for k, v in (creates or {}).items()}
        self.held: dict[str, ProviderPayoutStatus] = {}
        self.sync_errors: dict[str, list[PayoutErrorCode]] = {}  # raised by the next syncs of a key, in order
        self.calls: list[tuple[str, str]] = []

    async def create_payout(self, instruction: PayoutInstruction) -> ProviderPayoutResult:
        key = instruction.idempotency_key
        self.calls.append(("create", key))
        script = self.creates.get(key) or [ProviderPayoutStatus.PAID]
        answer = script.pop(0) if len(script) > 1 else script[0]
        if isinstance(answer, PayoutErrorCode):
            raise PayoutProviderError.of(answer, f"scripted {answer.value}", provider="scripted")
        self.held[key] = answer
        return ProviderPayoutResult(status=answer, idempotency_key=key, provider_ref=f"ref-{key}")

    async def sync_status(self, lookup: PayoutLookup) -> ProviderPayoutResult:
        key = lookup.idempotency_key
        self.calls.append(("sync", key))
        if self.sync_errors.get(key):
            code = self.sync_errors[key].pop(0)
            raise PayoutProviderError.of(code, f"scripted {code.value}", provider="scripted")
        if key not in self.held:
            raise PayoutProviderError.of(PayoutErrorCode.PAYOUT_NOT_FOUND, "never seen", provider="scripted")
        return ProviderPayoutResult(status=self.held[key], idempotency_key=key, provider_ref=f"ref-{key}")

    async def quote(self, instruction: PayoutInstruction) -> Quote:
        raise PayoutProviderError.of(PayoutErrorCode.UNSUPPORTED_OPERATION, "no quotes")

    async def cancel(self, lookup: PayoutLookup) -> ProviderPayoutResult:
        return ProviderPayoutResult(status=ProviderPayoutStatus.CANCELLED, idempotency_key=lookup.idempotency_key)

    async def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> WebhookEvent:
        raise PayoutProviderError.of(PayoutErrorCode.UNSUPPORTED_OPERATION, "no webhooks")


@dataclass
class Service:
    store: MemoryPayouts
    provider: ScriptedProvider
    create: CreatePayouts
    admin: PayoutAdmin
    worker: PayoutWorker
    gauges: RefreshPayoutGauges
    outcomes: SettleOutOfBand

    async def request(self, *commands: CreatePayoutCommand) -> list[Any]:
        async with self.store.uow()() as books:
            return await self.create.execute(books, commands)


SOURCE = "/prizeflow/payouts"


def service(
    provider: ScriptedProvider | None = None,
    *,
    max_attempts: int = 3,
    deny: DenyList = NOTHING_DENIED,
    retry: RetryPolicy | None = None,
    sync_first_until: datetime | None = None,
) -> Service:
    store, provider = MemoryPayouts(), provider or ScriptedProvider()
    registry = ProviderRegistry([ProviderEntry("scripted", provider.rail(), ("USDC",), (DestinationType.SANDBOX,))])
    # Auto below 100 USDC, one approver from there, two from 1000.
    approvals = ApprovalBook({"USDC": ApprovalRule("USDC", 100 * USDC, 1000 * USDC)})
    builder = ChangeBuilder(source=SOURCE, policy=retry or RetryPolicy(base_ms=1000, max_ms=2000))
    uow = store.uow()
    return Service(
        store,
        provider,
        CreatePayouts(registry=registry, approvals=approvals, max_attempts=max_attempts, source=SOURCE, deny=deny),
        PayoutAdmin(uow=uow, registry=registry, builder=builder, service="payouts"),
        PayoutWorker(
            uow=uow,
            registry=registry,
            builder=builder,
            config=WorkerConfig(batch_size=50, lease_s=30, provider_timeout_s=5, sync_first_until=sync_first_until),
            worker_id="w-1",
            deny=deny,
        ),
        RefreshPayoutGauges(
            uow=uow,
            registry=registry,
            unconfirmed_after_s=builder.policy.reconcile_interval_ms / 1000,
            balances_every_s=0.0,
        ),
        SettleOutOfBand(uow=uow, registry=registry, builder=builder, service="payouts"),
    )


def command(n: int = 1, *, usdc: int = 10, asset: str = "USDC", player: str = "p-1", **kw: Any) -> CreatePayoutCommand:
    fields: dict[str, Any] = {
        "payout_request_id": f"pr-{n}",
        "claim_id": f"cl-{n}",
        "player_id": player,
        "amount": Money(asset=asset, amount=usdc * USDC),
        "destination": PayoutDestination(type=DestinationType.SANDBOX, address=f"success:{player}"),
        "idempotency_key": f"claim-{n}:payout:1",
        "requested_by": player,
        "provider": None,
        "correlation_id": f"corr-{n}",
        **kw,
    }
    return CreatePayoutCommand(**fields)


def approver(user: str) -> Actor:
    return Actor(user, frozenset({"approver"}), f"corr-{user}")


# -- creation and idempotency ---------------------------------------------------------------------------------
async def test_a_small_request_is_created_approved_with_its_events() -> None:
    s = service()
    (created,) = await s.request(command())
    assert created.created
    assert created.refused is None
    assert s.store.state(created.payout_id) is S.APPROVED
    assert s.store.path(created.payout_id) == [("requested", "approved")]
    assert len(s.store.events_of(PayoutCreated)) == len(s.store.events_of(PayoutApproved)) == 1


@pytest.mark.parametrize(("usdc", "state"), [(99, S.APPROVED), (100, S.PENDING_APPROVAL), (1000, S.PENDING_APPROVAL)])
async def test_the_amount_picks_the_approval_policy(usdc: int, state: PayoutState) -> None:
    s = service()
    (created,) = await s.request(command(usdc=usdc))
    assert s.store.state(created.payout_id) is state


async def test_the_same_request_again_names_the_same_payout_and_emits_nothing_new() -> None:
    s = service()
    (first,) = await s.request(command())
    events = len(s.store.books.events)
    (again,) = await s.request(command())
    (twice_in_a_batch,) = set(await s.request(command(), command()))
    assert again.payout_id == first.payout_id == twice_in_a_batch.payout_id
    assert not again.created
    assert len(s.store.books.rows) == 1
    assert len(s.store.books.events) == events


@pytest.mark.parametrize(
    "other",
    [
        command(usdc=11),  # same key, request and claim; another amount
        command(payout_request_id="pr-9", idempotency_key="claim-9:payout:1"),  # another request for the claim
    ],
)
async def test_a_different_body_under_a_used_key_request_or_claim_is_a_conflict(other: CreatePayoutCommand) -> None:
    s = service()
    (first,) = await s.request(command())
    with pytest.raises(PayoutConflictError) as raised:
        await s.request(other)
    err = raised.value
    assert isinstance(err, UseCaseError)
    assert (err.kind, err.code) == (ErrorKind.CONFLICT, "conflicting_event")
    assert len(s.store.books.rows) == 1
    assert s.store.state(first.payout_id) is S.APPROVED


async def test_two_requests_for_one_claim_in_a_batch_refuse_the_batch() -> None:
    s = service()
    with pytest.raises(PayoutConflictError, match="one claim has at most one payout"):
        await s.request(command(), command(payout_request_id="pr-2", idempotency_key="claim-2:payout:1"))
    assert not s.store.books.rows
    assert not s.store.books.events  # the transaction rolled back


async def test_a_request_to_a_denied_destination_is_refused_for_good_whatever_the_rail() -> None:
    s = service(deny=DenyList.parse(["sandbox:SUCCESS:Mallory"]))  # compared case-folded
    (refused,) = await s.request(command(player="mallory"))
    assert refused.payout_id is None
    assert refused.refused is not None
    assert refused.refused.code is PayoutErrorCode.DESTINATION_BLOCKED
    assert not refused.refused.retryable
    assert [e.claim_id for e in s.store.events_of(PayoutRequestRefused)] == ["cl-1"]  # the reservation is voided
    assert not s.store.books.rows
    (fine,) = await s.request(command(2, player="ada", idempotency_key="claim-2:payout:1"))
    assert s.store.state(fine.payout_id) is S.APPROVED


async def test_a_destination_denied_after_its_request_was_accepted_is_never_sent() -> None:
    s = service()
    (created,) = await s.request(command(player="mallory"))
    assert s.store.state(created.payout_id) is S.APPROVED
    s.worker.deny = DenyList.parse(["sandbox:success:mallory"])  # the entry arrives with the next deployment
    await s.worker.run_once()
    assert s.provider.calls == []  # never sent
    assert s.store.state(created.payout_id) is S.FAILED
    (failed,) = s.store.events_of(PayoutFailed)
    assert (failed.code, failed.retryable, failed.final) == (PayoutErrorCode.DESTINATION_BLOCKED, False, True)


async def test_a_request_no_provider_pays_is_refused_once_for_good() -> None:
    s = service()
    (refused,) = await s.request(command(asset="XLM"))
    assert refused.payout_id is None
    assert refused.refused is not None
    assert refused.refused.code is PayoutErrorCode.NO_PROVIDER_ROUTE
    (again,) = await s.request(command(asset="XLM"))
    assert not again.created
    assert again.refused is not None
    assert [e.claim_id for e in s.store.events_of(PayoutRequestRefused)] == ["cl-1"]
    with pytest.raises(PayoutConflictError, match="was refused"):
        await s.request(command(usdc=5, asset="XLM"))


# -- the approval flow ----------------------------------------------------------------------------------------
async def test_a_dual_approval_needs_two_distinct_approvers() -> None:
    s = service()
    (created,) = await s.request(command(usdc=1000))
    pid = created.payout_id
    assert await s.admin.approve(pid, approver("bob"), "ok") == "pending_approval"
    with pytest.raises(AdminError) as twice:
        await s.admin.approve(pid, approver("bob"), "again")
    assert (twice.value.kind, twice.value.code) == (ErrorKind.CONFLICT, "already_approved")
    assert await s.admin.approve(pid, approver("carol"), None) == "approved"
    assert s.store.state(pid) is S.APPROVED
    (approved,) = s.store.events_of(PayoutApproved)
    assert approved.approved_by == ["bob", "carol"]
    assert s.store.path(pid)[1:] == [("pending_approval", "pending_approval"), ("pending_approval", "approved")]


@pytest.mark.parametrize(
    ("actor", "code"),
    [
        (Actor("p-1", frozenset({"approver"}), "c"), "self_approval"),  # the beneficiary and requester
        (Actor("olga", frozenset({"ops", "admin"}), "c"), "approver_role_required"),
    ],
)
async def test_who_may_not_decide_is_forbidden_and_nothing_is_recorded(actor: Actor, code: str) -> None:
    s = service()
    (created,) = await s.request(command(usdc=500))
    events = len(s.store.books.events)
    for decide in (s.admin.approve, s.admin.reject):
        with pytest.raises(AdminError) as refused:
            await decide(created.payout_id, actor, "because")
        assert (refused.value.kind, refused.value.code, refused.value.status) == (ErrorKind.FORBIDDEN, code, 403)
    assert s.store.state(created.payout_id) is S.PENDING_APPROVAL
    assert not s.store.books.approvals
    assert len(s.store.books.events) == events


async def test_a_rejected_payout_is_final_and_cannot_be_approved() -> None:
    s = service()
    (created,) = await s.request(command(usdc=500))
    assert await s.admin.reject(created.payout_id, approver("bob"), "suspicious") == "rejected"
    assert [e.rejected_by for e in s.store.events_of(PayoutRejected)] == ["bob"]
    with pytest.raises(AdminError) as late:
        await s.admin.approve(created.payout_id, approver("carol"), None)
    assert (late.value.kind, late.value.code) == (ErrorKind.CONFLICT, "not_pending_approval")


async def test_an_unknown_payout_is_not_found() -> None:
    s = service()
    with pytest.raises(AdminError) as missing:
        await s.admin.approve("po-nope", approver("bob"), None)
    assert (missing.value.kind, missing.value.code) == (ErrorKind.NOT_FOUND, "payout_not_found")


# -- the worker: transitions and retries ----------------------------------------------------------------------
async def test_an_approved_payout_is_submitted_and_paid() -> None:
    s = service()
    (created,) = await s.request(command())
    result = await s.worker.run_once()
    assert (result.processed, result.confirmed) == (1, 1)
    assert s.store.state(created.payout_id) is S.PAID
    assert s.store.path(created.payout_id) == [
        ("requested", "approved"),
        ("approved", "submitting"),
        ("submitting", "paid"),
    ]
    assert len(s.store.events_of(PayoutPaid)) == 1
    assert s.provider.calls == [("create", "claim-1:payout:1")]
    assert (await s.worker.run_once()).processed == 0  # nothing left to do


async def test_a_pending_payout_waits_for_approval_before_any_provider_call() -> None:
    s = service()
    (created,) = await s.request(command(usdc=500))
    assert (await s.worker.run_once()).processed == 0
    await s.admin.approve(created.payout_id, approver("bob"), None)
    await s.worker.run_once()
    assert s.store.state(created.payout_id) is S.PAID


async def test_a_retryable_failure_is_retried_after_its_backoff_asking_the_provider_first() -> None:
    key = "claim-1:payout:1"
    # A backoff of minutes: the second pass must come before it however slowly a loaded machine runs the test.
    s = service(
        ScriptedProvider({key: [PayoutErrorCode.PROVIDER_UNAVAILABLE, ProviderPayoutStatus.PAID]}),
        retry=RetryPolicy(base_ms=600_000, max_ms=1_200_000),
    )
    (created,) = await s.request(command())
    pid = created.payout_id
    assert (await s.worker.run_once()).failed == 1
    assert s.store.state(pid) is S.FAILED
    (failed,) = s.store.events_of(PayoutFailed)
    assert failed.retryable
    assert not failed.final
    assert (await s.worker.run_once()).processed == 0  # not before the backoff (10-20 min)
    s.store.skew = timedelta(minutes=21)
    await s.worker.run_once()
    assert s.store.state(pid) is S.PAID
    assert s.provider.calls == [("create", key), ("sync", key), ("create", key)]  # a retry syncs first
    assert ("failed", "approved") in s.store.path(pid)
    assert s.store.books.rows[pid].payout.attempts == 2


async def test_a_final_failure_is_not_retried() -> None:
    key = "claim-1:payout:1"
    s = service(ScriptedProvider({key: [PayoutErrorCode.INVALID_DESTINATION]}))
    (created,) = await s.request(command())
    await s.worker.run_once()
    s.store.skew = timedelta(hours=1)
    assert (await s.worker.run_once()).processed == 0
    assert s.store.state(created.payout_id) is S.FAILED
    (failed,) = s.store.events_of(PayoutFailed)
    assert failed.final
    assert failed.code is PayoutErrorCode.INVALID_DESTINATION
    assert s.provider.calls == [("create", key)]


async def test_an_unknown_outcome_on_the_last_attempt_waits_in_submitted_never_failed() -> None:
    key = "claim-1:payout:1"
    s = service(ScriptedProvider({key: [PayoutErrorCode.TIMEOUT_UNKNOWN_OUTCOME]}), max_attempts=1)
    (created,) = await s.request(command())
    await s.worker.run_once()
    assert s.store.state(created.payout_id) is S.SUBMITTED
    assert not s.store.events_of(PayoutFailed)


@pytest.mark.parametrize(
    "sync_error",
    [PayoutErrorCode.PROVIDER_UNAVAILABLE, PayoutErrorCode.RATE_LIMITED, PayoutErrorCode.AUTHENTICATION_FAILED],
)
async def test_a_lost_answer_then_unreadable_status_never_ends_the_payout(sync_error: PayoutErrorCode) -> None:
    """The provider paid but its answer was lost; every later attempt syncs first and the status cannot be read
    (an outage, a rate limit, a rotated key). Were those read errors judged as the payout's failure, attempts
    would run out, `PayoutFailed(final)` would void the reservation, and the player could claim it again."""
    key = "claim-1:payout:1"
    s = service(ScriptedProvider({key: [PayoutErrorCode.TIMEOUT_UNKNOWN_OUTCOME]}), max_attempts=3)
    (created,) = await s.request(command())
    pid = created.payout_id
    await s.worker.run_once()
    s.provider.held[key] = ProviderPayoutStatus.PAID  # the lost answer: the provider did pay
    s.provider.sync_errors[key] = [sync_error] * 6
    for hours in range(1, 8):
        s.store.skew = timedelta(hours=hours)
        await s.worker.run_once()
        assert not any(e.final for e in s.store.events_of(PayoutFailed)), s.store.path(pid)
        assert not s.store.books.rows[pid].payout.failed_for_good
    assert s.store.state(pid) is S.PAID  # found once the status could be read
    assert [c for c in s.provider.calls if c[0] == "create"] == [("create", key)]  # never created twice


async def test_an_operator_retry_gives_a_failed_payout_one_more_attempt() -> None:
    key = "claim-1:payout:1"
    s = service(ScriptedProvider({key: [PayoutErrorCode.PROVIDER_UNAVAILABLE, ProviderPayoutStatus.PAID]}))
    s.worker.builder = ChangeBuilder(source=SOURCE, policy=RetryPolicy(base_ms=3_600_000, max_ms=3_600_000))
    (created,) = await s.request(command())
    await s.worker.run_once()
    assert s.store.state(created.payout_id) is S.FAILED
    admin = Actor("ada", frozenset({"admin"}), "c")
    assert await s.admin.retry(created.payout_id, admin, "provider is back") == "approved"
    await s.worker.run_once()  # now, not after the hour-long backoff
    assert s.store.state(created.payout_id) is S.PAID
    with pytest.raises(AdminError) as not_failed:
        await s.admin.retry(created.payout_id, admin, "again")
    assert (not_failed.value.kind, not_failed.value.code) == (ErrorKind.CONFLICT, "not_failed")


@pytest.mark.parametrize(
    ("code", "max_attempts"),
    [
        (PayoutErrorCode.INVALID_DESTINATION, 3),  # terminal code
        (PayoutErrorCode.PROVIDER_UNAVAILABLE, 1),  # retryable code, attempts exhausted
    ],
)
async def test_a_final_failure_is_neither_retried_nor_cancelled_by_an_operator(
    code: PayoutErrorCode, max_attempts: int
) -> None:
    """Rewards voided the reservation on `PayoutFailed(final=True)`: the money is back in the wallet, so another
    attempt would pay twice, and a cancel would publish a second outcome for a settled claim."""
    key = "claim-1:payout:1"
    s = service(ScriptedProvider({key: [code, ProviderPayoutStatus.PAID]}), max_attempts=max_attempts)
    (created,) = await s.request(command())
    pid = created.payout_id
    await s.worker.run_once()
    (failed,) = s.store.events_of(PayoutFailed)
    assert failed.final
    assert s.store.books.rows[pid].payout.failed_for_good
    events, admin = len(s.store.books.events), Actor("ada", frozenset({"admin"}), "c")
    for act in (s.admin.retry, s.admin.cancel):
        with pytest.raises(AdminError) as refused:
            await act(pid, admin, "give it one more go")
        assert (refused.value.kind, refused.value.code, refused.value.status) == (
            ErrorKind.CONFLICT,
            "failure_final",
            409,
        )
        assert "the reservation went back to the player's wallet" in refused.value.detail
    s.store.skew = timedelta(hours=1)
    assert (await s.worker.run_once()).processed == 0
    assert s.store.state(pid) is S.FAILED
    assert len(s.store.books.events) == events  # no audit, no event: nothing happened
    assert s.provider.calls == [("create", key)]


async def test_a_retryable_failure_waiting_for_its_backoff_can_be_cancelled() -> None:
    key = "claim-1:payout:1"
    s = service(ScriptedProvider({key: [PayoutErrorCode.PROVIDER_UNAVAILABLE]}))
    (created,) = await s.request(command())
    await s.worker.run_once()
    assert not s.store.books.rows[created.payout_id].payout.failed_for_good
    assert await s.admin.cancel(created.payout_id, Actor("ada", frozenset({"admin"}), "c"), "stop") == "cancelled"
    assert len(s.store.events_of(PayoutCancelled)) == 1  # rewards voids the reservation now


async def test_a_cancel_refuses_when_a_new_attempt_happened_while_it_asked_the_provider() -> None:
    """The state alone is not enough: while the cancel asked the provider, a worker made a new attempt (same state
    afterwards). Cancelling locally would void the reservation while the provider may still pay that attempt."""
    key = "claim-1:payout:1"
    s = service(ScriptedProvider({key: [ProviderPayoutStatus.SUBMITTED]}))
    (created,) = await s.request(command())
    await s.worker.run_once()
    pid = created.payout_id
    assert s.store.state(pid) is S.SUBMITTED
    asked = s.provider.cancel

    async def cancel_meanwhile(lookup: PayoutLookup) -> ProviderPayoutResult:
        row = s.store.books.rows[pid]
        row.payout = replace(row.payout, attempts=row.payout.attempts + 1)  # a retry ran meanwhile, still submitted
        return await asked(lookup)

    s.provider.cancel = cancel_meanwhile  # type: ignore[method-assign]
    events = len(s.store.books.events)
    with pytest.raises(AdminError) as moved:
        await s.admin.cancel(pid, Actor("ada", frozenset({"admin"}), "c"), "stop")
    assert (moved.value.kind, moved.value.code) == (ErrorKind.CONFLICT, "concurrent_change")
    assert s.store.state(pid) is S.SUBMITTED
    assert len(s.store.books.events) == events  # no cancel, no audit


async def test_a_cancel_whose_provider_report_arrived_first_is_answered_done_and_audited_once() -> None:
    """The provider cancelled it; before the cancel took its lock, the provider's report of that same cancel (a
    status sync, a webhook) moved the payout to cancelled. The person asked for exactly this: done, not a 409."""
    key = "claim-1:payout:1"
    s = service(ScriptedProvider({key: [ProviderPayoutStatus.SUBMITTED]}))
    (created,) = await s.request(command())
    await s.worker.run_once()
    pid = created.payout_id
    asked = s.provider.cancel

    async def reported_meanwhile(lookup: PayoutLookup) -> ProviderPayoutResult:
        answer = await asked(lookup)
        row = s.store.books.rows[pid]
        row.payout = replace(row.payout, state=S.CANCELLED)  # the sync applied the provider's "cancelled"
        return answer

    s.provider.cancel = reported_meanwhile  # type: ignore[method-assign]
    events = len(s.store.books.events)
    assert await s.admin.cancel(pid, Actor("ada", frozenset({"admin"}), "c"), "stop") == "cancelled"
    assert s.store.state(pid) is S.CANCELLED
    assert len(s.store.books.events) == events + 1  # the person's request, audited; no second PayoutCancelled
    assert len(s.store.events_of(PayoutCancelled)) == 0


class SendsOnSync(ScriptedProvider):
    """A rail whose status sync may itself send the payout: the upi rail creates a payout that waited for its
    destination's fund-account validation in the sync that finds the validation active
    (`adapters/upi/provider.py`, `sync_status`). Its create sends nothing (pending); its first sync sends, once
    `release` is set; its cancel finds nothing before that (RazorpayX has no payout under the reference yet)."""

    def __init__(self) -> None:
        super().__init__()
        self.sending, self.release = asyncio.Event(), asyncio.Event()
        self.sent: set[str] = set()

    async def create_payout(self, instruction: PayoutInstruction) -> ProviderPayoutResult:
        self.calls.append(("create", instruction.idempotency_key))
        return ProviderPayoutResult(status=ProviderPayoutStatus.PENDING, idempotency_key=instruction.idempotency_key)

    async def sync_status(self, lookup: PayoutLookup) -> ProviderPayoutResult:
        key = lookup.idempotency_key
        self.calls.append(("sync", key))
        if key not in self.sent:
            self.sending.set()
            await self.release.wait()
            self.sent.add(key)
        return ProviderPayoutResult(status=ProviderPayoutStatus.SUBMITTED, idempotency_key=key, provider_ref="ref-1")

    async def cancel(self, lookup: PayoutLookup) -> ProviderPayoutResult:
        if lookup.idempotency_key in self.sent:
            raise PayoutProviderError.of(PayoutErrorCode.NOT_CANCELLABLE, "processing", provider="scripted")
        raise PayoutProviderError.of(PayoutErrorCode.PAYOUT_NOT_FOUND, "no payout yet", provider="scripted")


async def _submitted_awaiting_its_sync(provider: SendsOnSync) -> tuple[Service, str]:
    s = service(provider)
    (created,) = await s.request(command())
    await s.worker.submit_due()  # pending at the provider: submitted, its sync due later
    assert s.store.state(created.payout_id) is S.SUBMITTED
    s.store.skew = timedelta(minutes=5)  # the sync is due
    return s, created.payout_id


async def test_a_cancel_while_a_status_sync_is_sending_the_payout_is_refused() -> None:
    """A status sync holds the payout's lease and is sending it (the upi rail's sync creates a payout once its
    destination is validated). A cancel then finds nothing at the provider yet; cancelling locally would void the
    reservation (the money back in the wallet) while the provider pays the payout: paid twice."""
    provider = SendsOnSync()
    s, pid = await _submitted_awaiting_its_sync(provider)
    syncing = asyncio.create_task(s.worker.sync_submitted())
    await provider.sending.wait()
    try:
        with pytest.raises(AdminError) as refused:
            await s.admin.cancel(pid, Actor("ada", frozenset({"admin"}), "c"), "stop")
        assert (refused.value.kind, refused.value.code) == (ErrorKind.CONFLICT, "in_flight")
    finally:
        provider.release.set()
        await syncing
    assert "claim-1:payout:1" in provider.sent
    assert s.store.state(pid) is S.SUBMITTED
    assert s.store.events_of(PayoutCancelled) == []


async def test_a_cancel_refuses_when_a_status_sync_sent_the_payout_while_it_asked_the_provider() -> None:
    """The cancel asked the provider (nothing there yet); before it took its lock, a status sync claimed the payout,
    sent it and recorded the provider's answer (still submitted: same state, attempts and error as before).
    Cancelling locally would void the reservation while the provider pays the payout."""
    provider = SendsOnSync()
    provider.release.set()
    s, pid = await _submitted_awaiting_its_sync(provider)
    asked = provider.cancel

    async def synced_meanwhile(lookup: PayoutLookup) -> ProviderPayoutResult:
        try:
            return await asked(lookup)
        finally:
            await s.worker.sync_submitted()  # claims, sends, records "submitted"

    provider.cancel = synced_meanwhile  # type: ignore[method-assign]
    with pytest.raises(AdminError) as moved:
        await s.admin.cancel(pid, Actor("ada", frozenset({"admin"}), "c"), "stop")
    assert (moved.value.kind, moved.value.code) == (ErrorKind.CONFLICT, "concurrent_change")
    assert "claim-1:payout:1" in provider.sent
    assert s.store.state(pid) is S.SUBMITTED
    assert s.store.events_of(PayoutCancelled) == []


async def test_a_payout_a_crashed_worker_left_submitting_is_synced_not_created_again() -> None:
    key = "claim-1:payout:1"
    s = service()
    (created,) = await s.request(command())
    async with s.store.uow()() as books:  # a worker claimed it, reached the provider, then died
        await books.payouts.claim_for_submit(owner="w-dead", limit=10, lease_s=30)
    s.provider.held[key] = ProviderPayoutStatus.PAID
    assert (await s.worker.run_once()).processed == 0  # its lease still runs
    s.store.skew = timedelta(minutes=5)
    await s.worker.run_once()
    assert s.store.state(created.payout_id) is S.PAID
    assert s.provider.calls == [("sync", key)]
    assert ("submitting", "submitting") in s.store.path(created.payout_id)
    assert s.store.books.rows[created.payout_id].payout.attempts == 1  # the same attempt, resumed


class BooksProvider(ScriptedProvider):
    """A rail whose sync reads the provider's own books (Stripe, gift cards): `finds_payouts_at_provider`."""

    terms = replace(ScriptedProvider.terms, finds_payouts_at_provider=True)


WINDOW_OPEN = timedelta(hours=1)


async def test_after_a_restore_a_replayed_request_the_provider_already_paid_is_found_not_paid_again() -> None:
    """A point-in-time restore forgets payouts made after its target; their requests come back from Kafka. While
    the recovery window is open, every payout asks its provider first and is sent only when the provider has none."""
    paid_key, new_key = "claim-1:payout:1", "claim-2:payout:1"
    s = service(BooksProvider(), sync_first_until=datetime.now(UTC) + WINDOW_OPEN)
    s.provider.held[paid_key] = ProviderPayoutStatus.PAID  # paid before the disaster, forgotten by the restore
    (replayed,) = await s.request(command(1))
    (fresh,) = await s.request(command(2))
    await s.worker.run_once()
    assert s.store.state(replayed.payout_id) is S.PAID
    assert s.store.state(fresh.payout_id) is S.PAID
    assert sorted(s.provider.calls) == sorted([("sync", paid_key), ("sync", new_key), ("create", new_key)])


@pytest.mark.parametrize("pending", [True, False], ids=["approved-again-after-the-restore", "approved-never-picked-up"])
async def test_a_payout_restored_from_before_its_sending_is_asked_for_first(pending: bool) -> None:
    """At the target the payout waited for an approver (approved after it, over HTTP: forgotten) or was approved and
    not yet picked up; the provider paid it after the target. Restored, it is sent again only if the provider says
    it has none, however long ago its request was created."""
    key = "claim-1:payout:1"
    s = service(BooksProvider(), sync_first_until=datetime.now(UTC) + WINDOW_OPEN)
    (created,) = await s.request(command(usdc=150 if pending else 10))
    if pending:
        assert s.store.state(created.payout_id) is S.PENDING_APPROVAL
        await s.admin.approve(created.payout_id, approver("ops-2"), reason="approved again after the restore")
    s.provider.held[key] = ProviderPayoutStatus.PAID
    await s.worker.run_once()
    assert s.store.state(created.payout_id) is S.PAID
    assert s.provider.calls == [("sync", key)]


async def test_in_the_recovery_window_a_rail_that_answers_from_our_own_records_sends_nothing() -> None:
    """Stellar, TON, the exchange and Telegram find a payout in payouts' own tables, restored with the rest: their
    "not found" proves nothing about what they sent after the target. The payout waits in doubt for a person."""
    key = "claim-1:payout:1"
    s = service(sync_first_until=datetime.now(UTC) + WINDOW_OPEN)  # ScriptedProvider: not finds_payouts_at_provider
    (created,) = await s.request(command())
    await s.worker.run_once()
    assert s.provider.calls == [("sync", key)]
    assert s.store.state(created.payout_id) is not S.PAID
    assert s.store.books.rows[created.payout_id].payout.last_error_code == "timeout_unknown_outcome"


async def test_once_the_recovery_window_has_passed_a_new_payout_is_created_without_asking_first() -> None:
    s = service(sync_first_until=datetime.now(UTC) - timedelta(seconds=1))
    (created,) = await s.request(command(1))
    await s.worker.run_once()
    assert s.store.state(created.payout_id) is S.PAID
    assert s.provider.calls == [("create", "claim-1:payout:1")]


# -- metrics the alert rules read ----------------------------------------------------------------------------
class RailWithSources(ScriptedProvider):
    """A rail sending from source accounts of its own: it reports their progress, or fails to."""

    def __init__(self) -> None:
        super().__init__()
        self.answer: RailProgress | Exception = RailProgress(
            sources=(SourceProgress("channel-0", 41, 1_700_000_000.0), SourceProgress("channel-1", 0, 0.0)),
            oldest_waiting_s=12.5,
        )

    def rail(self) -> Rail:
        return replace(super().rail(), progress=self)

    async def progress(self) -> RailProgress:
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def gauge(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(f"prizeflow_payouts_{name}", labels)


async def test_the_worker_exports_each_source_account_s_progress_and_the_oldest_waiting_payout() -> None:
    rail = RailWithSources()
    s = service(rail)
    registry = CollectorRegistry()
    s.gauges.metrics = PayoutMetrics.create(registry, providers=["scripted"])
    await s.gauges.refresh()
    assert gauge(registry, "source_sequence", provider="scripted", account="channel-0") == 41
    assert gauge(registry, "source_advanced_timestamp_seconds", provider="scripted", account="channel-0") == 1.7e9
    assert gauge(registry, "source_advanced_timestamp_seconds", provider="scripted", account="channel-1") == 0
    assert gauge(registry, "oldest_waiting_seconds", provider="scripted") == 12.5

    rail.answer = ConnectionRefusedError("books unreachable")
    await s.gauges.refresh()  # no exception: the worker goes on, the gauges keep their last values
    assert gauge(registry, "source_sequence", provider="scripted", account="channel-0") == 41


class RailWithBalance(ScriptedProvider):
    """A rail paying from an account at its provider: it reports the balance there, or fails to."""

    def __init__(self) -> None:
        super().__init__()
        self.answer: tuple[ProviderBalance, ...] | Exception = (ProviderBalance("INR", 12_345_600, 5_000_000),)

    def rail(self) -> Rail:
        return replace(super().rail(), balance=self)

    async def balances(self) -> tuple[ProviderBalance, ...]:
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


async def test_the_worker_exports_a_rail_s_balance_at_the_provider_and_keeps_it_when_unreadable() -> None:
    rail = RailWithBalance()
    s = service(rail)
    registry = CollectorRegistry()
    s.gauges.metrics = PayoutMetrics.create(registry, providers=["scripted"])
    await s.gauges.refresh()
    assert gauge(registry, "provider_balance", provider="scripted", currency="INR") == 12_345_600
    assert gauge(registry, "provider_balance_low_threshold", provider="scripted", currency="INR") == 5_000_000

    rail.answer = (ProviderBalance("INR", 4_000_000, 5_000_000),)
    await s.gauges.refresh()
    assert gauge(registry, "provider_balance", provider="scripted", currency="INR") == 4_000_000

    rail.answer = ConnectionRefusedError("razorpayx unreachable")
    await s.gauges.refresh()  # no exception: the worker goes on, the balance is never guessed (0) nor dropped
    assert gauge(registry, "provider_balance", provider="scripted", currency="INR") == 4_000_000


async def test_the_balances_are_read_at_the_provider_at_most_every_balances_every_s() -> None:
    """The gauges job runs every few seconds; each balance is an HTTP call to a rate-limited provider API, and the
    low-balance alert waits five minutes: the balances are read at the first refresh, then once the interval passed."""
    rail = RailWithBalance()
    s = service(rail)
    now = [1000.0]
    s.gauges.balances_every_s, s.gauges._clock = 60.0, lambda: now[0]
    registry = CollectorRegistry()
    s.gauges.metrics = PayoutMetrics.create(registry, providers=["scripted"])
    await s.gauges.refresh()
    rail.answer = (ProviderBalance("INR", 4_000_000, 5_000_000),)
    now[0] += 59
    await s.gauges.refresh()
    assert gauge(registry, "provider_balance", provider="scripted", currency="INR") == 12_345_600  # not asked
    now[0] += 1
    await s.gauges.refresh()
    assert gauge(registry, "provider_balance", provider="scripted", currency="INR") == 4_000_000


class PatientRail(ScriptedProvider):
    """A rail with an operator threshold of its own (`RailTerms.operator_after_s`), as the exchange rail has."""

    terms = replace(ScriptedProvider.terms, operator_after_s=7200.0)


async def test_a_payout_in_doubt_past_its_rail_s_threshold_is_counted_awaiting_an_operator_until_answered() -> None:
    key = "claim-1:payout:1"
    s = service(ScriptedProvider({key: [PayoutErrorCode.TIMEOUT_UNKNOWN_OUTCOME]}), max_attempts=1)
    registry = CollectorRegistry()
    s.gauges.metrics = PayoutMetrics.create(registry, providers=["scripted"])
    (created,) = await s.request(command())
    await s.worker.run_once()  # the last attempt's answer is lost: submitted, in doubt
    assert s.store.state(created.payout_id) is S.SUBMITTED
    assert gauge(registry, "stuck", kind="unknown_outcome", provider="scripted") == 0  # before any refresh

    s.store.skew = timedelta(minutes=29)  # under the worker's default threshold (30 minutes)
    assert (await s.gauges.refresh())["unknown_outcome"] == 0
    s.store.skew = timedelta(minutes=31)
    assert (await s.gauges.refresh())["unknown_outcome"] == 1
    assert gauge(registry, "stuck", kind="unknown_outcome", provider="scripted") == 1

    s.provider.held[key] = ProviderPayoutStatus.PAID  # found at the provider: the next status sync settles it
    await s.worker.run_once()
    assert s.store.state(created.payout_id) is S.PAID
    await s.gauges.refresh()
    assert gauge(registry, "stuck", kind="unknown_outcome", provider="scripted") == 0  # there, at 0: not absent


async def test_a_payout_found_after_a_lost_answer_is_no_longer_in_doubt_though_its_last_error_says_so() -> None:
    key = "claim-1:payout:1"
    s = service(ScriptedProvider({key: [PayoutErrorCode.TIMEOUT_UNKNOWN_OUTCOME]}), max_attempts=3)
    (created,) = await s.request(command())
    await s.worker.run_once()  # no answer: failed, retried later (sync first)
    s.provider.held[key] = ProviderPayoutStatus.PENDING  # it was made: the provider holds it, not paid yet
    s.store.skew = timedelta(minutes=5)
    await s.worker.run_once()
    row = s.store.books.rows[created.payout_id]
    assert (row.payout.state, row.payout.last_error_code) == (S.SUBMITTED, "timeout_unknown_outcome")
    s.store.skew = timedelta(hours=3)
    assert (await s.gauges.refresh())["unknown_outcome"] == 0


async def test_a_known_answer_after_a_lost_one_ends_the_doubt_an_unreadable_status_does_not() -> None:
    key = "claim-1:payout:1"
    codes: list[ProviderPayoutStatus | PayoutErrorCode] = [
        PayoutErrorCode.TIMEOUT_UNKNOWN_OUTCOME,
        PayoutErrorCode.PROVIDER_UNAVAILABLE,
    ]
    s = service(ScriptedProvider({key: codes}), max_attempts=4)
    (created,) = await s.request(command())
    row = s.store.books.rows[created.payout_id]
    await s.worker.run_once()
    since = row.outcome_unknown_since
    assert since is not None
    s.provider.sync_errors[key] = [PayoutErrorCode.RATE_LIMITED]  # the next attempt cannot read the status
    s.store.skew = timedelta(minutes=5)
    await s.worker.run_once()
    assert (row.payout.state, row.outcome_unknown_since) == (S.FAILED, since)  # still in doubt, since the first
    s.store.skew = timedelta(minutes=10)
    await s.worker.run_once()  # not at the provider (payout_not_found), created again: refused as unavailable
    assert s.provider.calls[-2:] == [("sync", key), ("create", key)]
    assert (row.payout.state, row.outcome_unknown_since) == (S.FAILED, None)  # known: it was not made


async def test_a_rail_s_own_operator_threshold_wins_over_the_worker_s() -> None:
    key = "claim-1:payout:1"
    s = service(PatientRail({key: [PayoutErrorCode.TIMEOUT_UNKNOWN_OUTCOME]}), max_attempts=1)
    assert s.gauges.operator_thresholds() == {"scripted": 7200.0}
    await s.request(command())
    await s.worker.run_once()
    s.store.skew = timedelta(hours=1)
    assert (await s.gauges.refresh())["unknown_outcome"] == 0
    s.store.skew = timedelta(hours=2, minutes=1)
    assert (await s.gauges.refresh())["unknown_outcome"] == 1


def test_the_series_the_alerts_read_exist_at_zero_for_every_configured_provider() -> None:
    registry = CollectorRegistry()
    PayoutMetrics.create(registry, providers=["stellar", "stripe"], webhook_providers=["stripe"])
    for provider in ("stellar", "stripe"):
        for code in PayoutErrorCode:
            assert gauge(registry, "provider_errors_total", provider=provider, code=code.value) == 0
        assert gauge(registry, "attempts_total", provider=provider, kind="create", outcome="error") == 0
    for outcome in ("applied", "duplicate", "stale", "no_status", "sync_requested", "unverified"):
        assert gauge(registry, "webhooks_total", provider="stripe", outcome=outcome) == 0
    assert gauge(registry, "webhooks_total", provider="stellar", outcome="applied") is None  # no webhooks there
    assert gauge(registry, "duplicate_payouts_refused_total", source="kafka") == 0
    for kind in ("stale_leases", "unconfirmed", "unknown_outcome"):
        assert gauge(registry, "stuck", kind=kind, provider="stellar") == 0


async def test_the_worker_is_woken_when_a_payout_becomes_approved_and_not_before() -> None:
    s = service()
    woken: list[str] = []
    s.admin.on_due = lambda: woken.append("wake")
    (created,) = await s.request(command(usdc=1000))
    assert await s.admin.approve(created.payout_id, approver("bob"), "ok") == "pending_approval"
    assert woken == []  # one approval of two: nothing due yet
    assert await s.admin.approve(created.payout_id, approver("carol"), None) == "approved"
    assert woken == ["wake"]  # due now: this process's worker looks at once instead of after its idle pause


class ManualRail(ScriptedProvider):
    """Paid by hand: the payout waits `submitted` until an operator reports what the bank did."""

    provider_type = ProviderType.MANUAL


@pytest.mark.parametrize("outcome", ["mark_paid", "mark_failed"])
async def test_nobody_reports_the_outcome_of_a_manual_payout_that_pays_them(outcome: str) -> None:
    """An operator who is also the player: paid by hand, then marking the payout failed (a final code) gave the
    reservation back to their wallet, to be claimed and paid again. Marking it paid unpaid hides the same hand."""
    key = "claim-1:payout:1"
    s = service(ManualRail({key: [ProviderPayoutStatus.SUBMITTED]}))
    (created,) = await s.request(command(player="olga"))
    await s.worker.run_once()
    pid = created.payout_id
    assert s.store.state(pid) is S.SUBMITTED
    events = len(s.store.books.events)

    async def report(user: str) -> str:
        actor = Actor(user, frozenset({"ops"}), "c")
        if outcome == "mark_paid":
            return await s.outcomes.mark_paid(pid, actor, "bank-1", None)
        return await s.outcomes.mark_failed(pid, actor, "account closed", PayoutErrorCode.ACCOUNT_CLOSED)

    with pytest.raises(AdminError) as refused:
        await report("olga")
    assert (refused.value.kind, refused.value.code) == (ErrorKind.FORBIDDEN, "self_review")
    assert s.store.state(pid) is S.SUBMITTED
    assert len(s.store.books.events) == events  # no outcome, no audit
    assert await report("oscar") in {"paid", "failed"}  # a colleague may


class SignedOutOfBand(ScriptedProvider):
    """A rail whose envelopes an operator signs out of band and hands in (`Rail.external`)."""

    def rail(self) -> Rail:
        return replace(super().rail(), external=self)

    async def unsigned_transaction(self, payout_id: str) -> dict[str, Any] | None:
        return {"payout_id": payout_id}

    async def submit_signed(self, payout_id: str, signed_xdr: str) -> Any:
        return {"tx_hash": "ab" * 32, "payout_ids": [payout_id]}


async def test_an_envelope_handed_in_after_signing_out_of_band_is_audited() -> None:
    s = service(SignedOutOfBand())
    (created,) = await s.request(command())
    ada = Actor("ada", frozenset({"admin"}), "c")
    await s.outcomes.submit_signed(created.payout_id, "AAAA", ada)
    audits = [a for a in s.store.events_of(AdminActionRecorded) if a.action == "payout.submit_signed"]
    assert [(a.actor_user_id, a.target_id) for a in audits] == [("ada", created.payout_id)]
    assert audits[0].after == {"envelope_sha256": hashlib.sha256(b"AAAA").hexdigest()}  # never the envelope


class RefusesEnvelopes(SignedOutOfBand):
    async def submit_signed(self, payout_id: str, signed_xdr: str) -> Any:
        raise ExternalSigningError(ErrorKind.INVALID, "bad_signature", "not signed by the source account")


async def test_a_refused_envelope_is_on_record_as_an_attempt() -> None:
    s = service(RefusesEnvelopes())
    (created,) = await s.request(command())
    with pytest.raises(ExternalSigningError):
        await s.outcomes.submit_signed(created.payout_id, "BBBB", Actor("ada", frozenset({"admin"}), "c"))
    audits = [a for a in s.store.events_of(AdminActionRecorded) if a.action == "payout.submit_signed"]
    assert [a.actor_user_id for a in audits] == ["ada"]


class WaitsForTheNextClaim(ScriptedProvider):
    """Holds the first batch's calls until the worker has claimed the next batch (`submitting` rows beyond it)."""

    def __init__(self, batch: int) -> None:
        super().__init__()
        self.store, self.batch = MemoryPayouts(), batch
        self.overlapped = False

    async def create_payout(self, instruction: PayoutInstruction) -> ProviderPayoutResult:
        if len(self.calls) < self.batch:  # the first batch

            async def next_claimed() -> None:
                while sum(r.payout.state is S.SUBMITTING for r in self.store.books.rows.values()) <= self.batch:
                    await asyncio.sleep(0.001)

            await asyncio.wait_for(next_claimed(), timeout=5)
            self.overlapped = True
        return await super().create_payout(instruction)


async def test_a_pass_claims_the_next_batch_while_the_last_is_at_its_provider_and_sends_all_it_claimed() -> None:
    """Issue 46: the worker's job claims batch n+1 while batch n is at its provider (the provider of the first batch
    answers only once the second is claimed), sends every batch it claimed within the pass, and stops after
    `batches_per_pass`, saying whether more is due; nothing is left claimed and unsent."""
    provider = WaitsForTheNextClaim(batch=5)
    s = service(provider)
    provider.store = s.store
    s.worker.config = replace(s.worker.config, batch_size=5, batches_per_pass=2)
    created = await s.request(*(command(n) for n in range(1, 13)))
    result, more = await s.worker.submit_pipelined()
    assert provider.overlapped
    assert (result.processed, result.confirmed, more) == (10, 10, True)
    states = [s.store.state(c.payout_id) for c in created]
    assert states.count(S.PAID) == 10
    assert states.count(S.APPROVED) == 2  # not claimed: no lease left waiting to expire
    result, more = await s.worker.submit_pipelined()
    assert (result.processed, more) == (2, False)
    assert {s.store.state(c.payout_id) for c in created} == {S.PAID}
    assert sorted(k for kind, k in provider.calls if kind == "create") == sorted(
        f"claim-{n}:payout:1" for n in range(1, 13)
    )


class PaysThenHangs(ScriptedProvider):
    """Pays each payout, then never answers (a connection lost after the provider acted); `called` is set then."""

    def __init__(self) -> None:
        super().__init__()
        self.called, self.hang = asyncio.Event(), True

    async def create_payout(self, instruction: PayoutInstruction) -> ProviderPayoutResult:
        answer = await super().create_payout(instruction)
        if self.hang:
            self.called.set()
            await asyncio.Event().wait()
        return answer


async def test_a_pass_cancelled_while_its_batch_is_at_the_provider_never_pays_that_batch_twice() -> None:
    """A stop that outlasts its grace cancels the worker's pass while a batch is at its provider, which has paid it
    but not answered: the batch stays `submitting` under its lease (nothing recorded as failed or unpaid); once the
    lease expires the next pass asks the provider first (`sync_first`) and records it paid, with no second send."""
    provider = PaysThenHangs()
    s = service(provider)
    s.worker.config = replace(s.worker.config, batch_size=5)
    created = await s.request(*(command(n) for n in range(1, 4)))
    pass_ = asyncio.create_task(s.worker.submit_pipelined())
    await asyncio.wait_for(provider.called.wait(), timeout=5)
    pass_.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(pass_, timeout=5)
    assert {s.store.state(c.payout_id) for c in created} == {S.SUBMITTING}
    provider.hang = False
    result, _ = await s.worker.submit_pipelined()
    assert result.processed == 0  # leased: not due again before the lease expires
    s.store.skew = timedelta(seconds=s.worker.config.lease_s + 1)
    await s.worker.submit_pipelined()
    assert {s.store.state(c.payout_id) for c in created} == {S.PAID}
    creates = [k for kind, k in provider.calls if kind == "create"]
    assert len(creates) == len(set(creates)) == 3  # each sent once
    assert sorted(k for kind, k in provider.calls if kind == "sync") == sorted(creates)


async def test_a_claim_that_fails_while_a_batch_is_at_its_provider_still_records_that_batch() -> None:
    """The pass's next claim fails (the database went away) while the batch before it is at its provider: that batch's
    answers are recorded before the failure reaches the scheduler; nothing is left `submitting` to wait for its
    lease."""
    s = service()
    s.worker.config = replace(s.worker.config, batch_size=5)
    created = await s.request(*(command(n) for n in range(1, 9)))
    claim = s.worker._claim_due
    claims = 0

    async def second_fails() -> Any:
        nonlocal claims
        claims += 1
        if claims == 2:
            await asyncio.sleep(0.01)
            raise ConnectionResetError("the database went away")
        return await claim()

    s.worker._claim_due = second_fails  # type: ignore[method-assign]
    with pytest.raises(ConnectionResetError):
        await s.worker.submit_pipelined()
    states = [s.store.state(c.payout_id) for c in created]
    assert states.count(S.PAID) == 5
    assert states.count(S.APPROVED) == 3
    assert S.SUBMITTING not in states
