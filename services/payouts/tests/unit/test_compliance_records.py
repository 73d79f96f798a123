"""Compliance records on fakes: the verification's transition table (equal to the database's), what a vendor's
review does to a record, the two-admin rule of the risk policy, and the use cases over an in-memory store."""

from __future__ import annotations

import importlib.util
import itertools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar, cast

import pytest
from compliance_fakes import SECRET_NAME, FakeKyc, FakeScreen
from prometheus_client import CollectorRegistry

from prizeflow_compliance.application.errors import ComplianceError
from prizeflow_compliance.application.policy import (
    ApprovePolicy,
    ProposePolicy,
    PublishActivePolicy,
    RejectPolicy,
)
from prizeflow_compliance.application.ports import (
    ComplianceStores,
    Identity,
    KycProviderError,
    KycReview,
    PlayerCompliance,
    RescreenClaim,
    ScreeningMatch,
)
from prizeflow_compliance.application.rescreen import RescreenVerifiedPlayers
from prizeflow_compliance.application.verification import (
    ApplyVerificationEvent,
    ReadVerification,
    ScreeningUnavailableError,
    StartVerification,
)
from prizeflow_compliance.domain.policy import (
    PolicyProposal,
    PolicyRefusedError,
    ProposalStatus,
    check_decision,
)
from prizeflow_compliance.domain.verification import (
    TRANSITIONS,
    Reaction,
    Screening,
    ScreeningOutcome,
    VerificationRecord,
    can_move,
    decide,
    player_message,
    verification_reference,
)
from prizeflow_compliance.metrics import ComplianceMetrics
from prizeflow_contracts.envelope import Envelope, new_event
from prizeflow_contracts.errors import EventRefusal
from prizeflow_contracts.events.audit import AdminActionRecorded
from prizeflow_contracts.events.payouts import ApprovalPolicy, PlayerVerificationChanged, RiskPolicyActivated
from prizeflow_contracts.events.webhooks import VerificationEventReceived
from prizeflow_contracts.kyc import VerificationVendor
from prizeflow_contracts.policy import PLAYER_MESSAGE, Action, RiskPolicy, Verdict, VerificationStatus
from prizeflow_contracts.transitions import IllegalTransition
from prizeflow_payouts.application.admin import Actor
from prizeflow_payouts.domain.gate import (
    Clearance,
    GateDecision,
    GateInput,
    HoldCode,
    Stage,
    SubjectKind,
    clearances_from_reasons,
)
from prizeflow_payouts.domain.gate import Screening as GateScreening
from prizeflow_payouts.domain.gate import decide as gate_decide
from prizeflow_runtime.errors import ErrorKind

V = VerificationStatus
T = TypeVar("T")
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)

LEGAL = {
    (V.NOT_STARTED, V.PENDING),
    (V.NOT_STARTED, V.RETRY),
    (V.NOT_STARTED, V.VERIFIED),
    (V.NOT_STARTED, V.FAILED),
    (V.PENDING, V.RETRY),
    (V.PENDING, V.VERIFIED),
    (V.PENDING, V.FAILED),
    (V.RETRY, V.PENDING),
    (V.RETRY, V.VERIFIED),
    (V.RETRY, V.FAILED),
    (V.VERIFIED, V.FAILED),
}


# -- the transition table ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(("src", "dst"), list(itertools.product(V, V)), ids=lambda s: s.value)
def test_every_move_of_the_table(src: VerificationStatus, dst: VerificationStatus) -> None:
    assert can_move(src, dst) is ((src, dst) in LEGAL)
    record = _record(status=src)
    if (src, dst) in LEGAL:
        moved = record.moved(dst, at=NOW)
        assert (moved.status, moved.sequence) == (dst, record.sequence + 1)
    else:
        with pytest.raises(IllegalTransition):
            record.moved(dst, at=NOW)


def test_failed_is_final_and_verified_only_fails() -> None:
    assert TRANSITIONS[V.FAILED] == frozenset()
    assert TRANSITIONS[V.VERIFIED] == frozenset({V.FAILED})


def test_the_database_trigger_holds_the_same_pairs() -> None:
    path = Path(__file__).parents[2] / "migrations" / "versions" / "0019_compliance_records.py"
    spec = importlib.util.spec_from_file_location("migration_0019", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert {(V(a), V(b)) for a, b in module.ALLOWED} == {(a, b) for a, tos in TRANSITIONS.items() for b in tos}


@pytest.mark.parametrize(
    ("current", "reviewed", "reaction", "to"),
    [
        (V.PENDING, V.VERIFIED, Reaction.MOVE, V.VERIFIED),
        (V.PENDING, V.RETRY, Reaction.MOVE, V.RETRY),
        (V.RETRY, V.PENDING, Reaction.MOVE, V.PENDING),
        (V.PENDING, V.PENDING, Reaction.SAME, None),
        (V.VERIFIED, V.VERIFIED, Reaction.SAME, None),
        (V.VERIFIED, V.FAILED, Reaction.MOVE, V.FAILED),  # the vendor revoked it
        (V.VERIFIED, V.PENDING, Reaction.STALE, None),
        (V.VERIFIED, V.RETRY, Reaction.STALE, None),
        (V.FAILED, V.VERIFIED, Reaction.STALE, None),
        (V.PENDING, V.NOT_STARTED, Reaction.STALE, None),
    ],
)
def test_what_a_review_does(
    current: VerificationStatus, reviewed: VerificationStatus, reaction: Reaction, to: VerificationStatus | None
) -> None:
    decision = decide(current, reviewed)
    assert (decision.reaction, decision.to) == (reaction, to)


def test_player_messages_name_a_next_step_never_a_number() -> None:
    assert player_message(V.NOT_STARTED) == "Verify your identity to withdraw."
    for status in V:
        message = player_message(status)
        assert not any(ch.isdigit() for ch in message)
        assert "sanction" not in message.lower()
        assert "score" not in message.lower()


def test_reference_is_stable_per_player() -> None:
    assert verification_reference("p-1") == verification_reference("p-1")
    assert verification_reference("p-1") != verification_reference("p-2")
    assert verification_reference("p-1").startswith("kyc-")


# -- the two-admin rule -----------------------------------------------------------------------------------------
def _proposal(*, base: int = 0, status: ProposalStatus = ProposalStatus.PROPOSED, by: str = "ann") -> PolicyProposal:
    return PolicyProposal(
        id=1,
        policy=RiskPolicy(version=base + 1),
        status=status,
        base_version=base,
        proposed_by=by,
        proposed_at=NOW,
        reason="tighten",
    )


def test_a_second_admin_decides() -> None:
    check_decision(_proposal(), "bob", to=ProposalStatus.ACTIVE, active_version=0)
    check_decision(_proposal(), "bob", to=ProposalStatus.REJECTED, active_version=0)
    for to in (ProposalStatus.ACTIVE, ProposalStatus.REJECTED):
        with pytest.raises(PolicyRefusedError) as refused:
            check_decision(_proposal(by="ann"), "ann", to=to, active_version=0)
        assert refused.value.code == "self_decision"


def test_a_proposal_against_an_older_active_version_is_stale() -> None:
    with pytest.raises(PolicyRefusedError) as refused:
        check_decision(_proposal(base=1), "bob", to=ProposalStatus.ACTIVE, active_version=2)
    assert refused.value.code == "stale_policy"
    # Rejecting a stale proposal is fine: nothing takes effect.
    check_decision(_proposal(base=1), "bob", to=ProposalStatus.REJECTED, active_version=2)


@pytest.mark.parametrize("status", [ProposalStatus.ACTIVE, ProposalStatus.SUPERSEDED, ProposalStatus.REJECTED])
def test_only_a_proposal_is_decided(status: ProposalStatus) -> None:
    with pytest.raises(PolicyRefusedError) as refused:
        check_decision(_proposal(status=status), "bob", to=ProposalStatus.ACTIVE, active_version=0)
    assert refused.value.code == "not_proposed"


# -- fakes ------------------------------------------------------------------------------------------------------
@dataclass
class MemoryBooks:
    records: dict[str, VerificationRecord] = field(default_factory=dict)
    history: list[tuple[str, int, str, str]] = field(default_factory=list)
    events: list[Envelope[Any]] = field(default_factory=list)
    proposals: dict[int, PolicyProposal] = field(default_factory=dict)
    announced: int | None = None
    leases: dict[str, datetime] = field(default_factory=dict)  # rescreen_lease_until
    newest: dict[str, str] = field(default_factory=dict)  # the newest stored list versions ({}: as loaded)


class MemoryStore:
    """`ComplianceStore` in memory: writes land in a copy, kept only when the transaction commits."""

    def __init__(self, books: MemoryBooks) -> None:
        self.books = books

    async def verification(self, player_id: str, *, for_update: bool = False) -> VerificationRecord | None:
        return self.books.records.get(player_id)

    async def insert_verification(self, record: VerificationRecord, *, detail: str) -> bool:
        if record.player_id in self.books.records:
            return False
        self.books.records[record.player_id] = record
        self.books.history.append((record.player_id, record.sequence, record.status.value, detail))
        return True

    async def update_verification(self, record: VerificationRecord, *, detail: str) -> None:
        old = self.books.records[record.player_id]
        assert can_move(old.status, record.status)
        assert record.sequence > old.sequence
        self.books.records[record.player_id] = record
        self.books.history.append((record.player_id, record.sequence, record.status.value, detail))

    async def add_events(self, events: Sequence[Envelope[Any]]) -> None:
        self.books.events.extend(events)

    async def lock_policies(self) -> None:
        return None

    async def active_proposal(self) -> PolicyProposal | None:
        return next((p for p in self.books.proposals.values() if p.status is ProposalStatus.ACTIVE), None)

    async def proposal(self, proposal_id: int) -> PolicyProposal | None:
        return self.books.proposals.get(proposal_id)

    async def next_policy_version(self) -> int:
        return max((p.version for p in self.books.proposals.values()), default=0) + 1

    async def insert_proposal(self, proposal: PolicyProposal) -> int:
        new_id = len(self.books.proposals) + 1
        self.books.proposals[new_id] = replace(proposal, id=new_id)
        return new_id

    async def decide_proposal(
        self, proposal_id: int, *, to: ProposalStatus, by: str, reason: str | None, at: datetime
    ) -> None:
        p = self.books.proposals[proposal_id]
        assert by != p.proposed_by
        self.books.proposals[proposal_id] = replace(p, status=to, decided_by=by, decided_at=at, decision_reason=reason)

    async def supersede(self, proposal_id: int) -> None:
        p = self.books.proposals[proposal_id]
        self.books.proposals[proposal_id] = replace(p, status=ProposalStatus.SUPERSEDED)

    async def announced_policy_version(self) -> int | None:
        return self.books.announced

    async def record_policy_announcement(self, version: int, at: datetime) -> None:
        self.books.announced = version

    # -- RescreenStore (as SqlRescreenStore: stale, claimed with a lease, written only as claimed) ---------------
    async def newest_versions(self) -> Mapping[str, str]:
        return dict(self.books.newest)

    def _stale(self, record: VerificationRecord, current: Mapping[str, str]) -> bool:
        return record.status is V.VERIFIED and any(record.screening.versions.get(s) != v for s, v in current.items())

    async def count_stale(self, current: Mapping[str, str]) -> int:
        return sum(self._stale(r, current) for r in self.books.records.values())

    async def claim_stale(
        self, current: Mapping[str, str], *, limit: int, lease_until: datetime, now: datetime
    ) -> list[RescreenClaim]:
        out: list[RescreenClaim] = []
        for r in sorted(self.books.records.values(), key=lambda r: r.player_id):
            lease = self.books.leases.get(r.player_id)
            if len(out) < limit and self._stale(r, current) and (lease is None or lease <= now):
                self.books.leases[r.player_id] = lease_until
                entries = frozenset((str(m["source"]), str(m["entry_uid"])) for m in r.screening.matches)
                out.append(
                    RescreenClaim(r.player_id, r.reference, r.vendor_ref, r.sequence, r.screening.outcome, entries)
                )
        return out

    def _as_claimed(self, claim: RescreenClaim) -> VerificationRecord | None:
        r = self.books.records.get(claim.player_id)
        return r if r is not None and r.status is V.VERIFIED and r.sequence == claim.sequence else None

    async def record_rescreen(self, claim: RescreenClaim, screening: Screening, *, at: datetime, detail: str) -> bool:
        r = self._as_claimed(claim)
        if r is None:
            return False
        self.books.records[r.player_id] = replace(r, sequence=r.sequence + 1, updated_at=at, screening=screening)
        self.books.leases.pop(r.player_id, None)
        self.books.history.append((r.player_id, r.sequence + 1, r.status.value, detail))
        return True

    async def record_refusal(self, claim: RescreenClaim, *, at: datetime, detail: str, retry_at: datetime) -> bool:
        r = self._as_claimed(claim)
        if r is None:
            return False
        self.books.records[r.player_id] = replace(r, sequence=r.sequence + 1, updated_at=at)
        self.books.leases[r.player_id] = retry_at
        self.books.history.append((r.player_id, r.sequence + 1, r.status.value, detail))
        return True


@dataclass(frozen=True)
class MemoryComplianceBooks:
    """A unit of work's books with compliance's stores (what the deployable's `Books` carries)."""

    compliance: ComplianceStores


Apply = ApplyVerificationEvent[MemoryComplianceBooks]


class MemoryTransactions:
    """Compliance's stores under a unit of work in memory: a block's writes land in a copy, kept when it commits."""

    def __init__(self) -> None:
        self.books = MemoryBooks()

    async def run(self, work: Callable[[MemoryComplianceBooks], Awaitable[T]]) -> T:
        async with self() as books:
            return await work(books)

    def __call__(self) -> AbstractAsyncContextManager[MemoryComplianceBooks]:
        @asynccontextmanager
        async def tx() -> AsyncIterator[MemoryComplianceBooks]:
            copy = MemoryBooks(
                dict(self.books.records),
                list(self.books.history),
                list(self.books.events),
                dict(self.books.proposals),
                self.books.announced,
                dict(self.books.leases),
                dict(self.books.newest),
            )
            store = MemoryStore(copy)
            yield MemoryComplianceBooks(ComplianceStores(records=store, rescreen=store, facts=cast("Any", None)))
            self.books = copy

        return tx()


def lists(*, version: str = "2026-11-24", hits: tuple[str, ...] = ()) -> FakeScreen:
    """The screen on OFAC's list at `version`, naming the vendor's applicant under the entries `hits`."""
    return FakeScreen(
        loaded={"ofac_sdn": version}, persons={SECRET_NAME: list(hits)} if hits else {}, destinations=False
    )


def _record(*, status: VerificationStatus = V.PENDING, player: str = "p-1") -> VerificationRecord:
    return VerificationRecord(
        player_id=player,
        reference=verification_reference(player),
        vendor="sumsub",
        vendor_ref=f"app-{player}",
        status=status,
        sequence=1,
        updated_at=NOW,
    )


def _event(player: str = "p-1", *, applicant: str | None = None, source: str = "/prizeflow/webhooks") -> Envelope[Any]:
    return new_event(
        VerificationEventReceived(
            provider=VerificationVendor.SUMSUB,
            provider_name="sumsub",
            provider_event_id=f"evt-{player}-{applicant}",
            applicant_ref=applicant or f"app-{player}",
            player_id=player,
            kind="applicantReviewed",
            received_at=NOW,
            payload_digest="0" * 64,
        ),
        source=source,
        correlation_id=f"kyc-{player}",
    )


@pytest.fixture
def metrics() -> ComplianceMetrics:
    return ComplianceMetrics.create(CollectorRegistry())


def _value(metric: Any, *labels: str) -> float:
    return float(metric.labels(*labels)._value.get())


# -- StartVerification ------------------------------------------------------------------------------------------
async def test_start_creates_a_pending_record_once(metrics: ComplianceMetrics) -> None:
    tx = MemoryTransactions()
    start = StartVerification(uow=tx, kyc=FakeKyc(), source="/prizeflow/payouts", metrics=metrics)
    first = await start.execute("p-1")
    again = await start.execute("p-1")
    assert (first.status, first.url) == (V.PENDING, "https://kyc.test/flow/app-p-1")
    assert (again.status, again.url) == (V.PENDING, "https://kyc.test/flow/app-p-1")
    record = tx.books.records["p-1"]
    assert (record.reference, record.vendor_ref, record.sequence) == (verification_reference("p-1"), "app-p-1", 1)
    (event,) = tx.books.events
    assert isinstance(event.data, PlayerVerificationChanged)
    assert (event.data.player_id, event.data.reference, event.data.status, event.data.sequence) == (
        "p-1",
        record.reference,
        V.PENDING,
        1,
    )
    assert _value(metrics.kyc_requests, "start", "ok") == 2


async def test_start_without_a_vendor_is_unavailable() -> None:
    start = StartVerification(uow=MemoryTransactions(), kyc=None, source="/prizeflow/payouts")
    with pytest.raises(ComplianceError) as refused:
        await start.execute("p-1")
    assert (refused.value.kind, refused.value.code) == (ErrorKind.UNAVAILABLE, "kyc_unavailable")


async def test_start_during_a_vendor_outage_is_unavailable_and_writes_nothing(metrics: ComplianceMetrics) -> None:
    tx = MemoryTransactions()
    kyc = FakeKyc(fail=KycProviderError("timeout", "vendor timed out", retryable=True))
    with pytest.raises(ComplianceError) as refused:
        await StartVerification(uow=tx, kyc=kyc, source="/s", metrics=metrics).execute("p-1")
    assert refused.value.kind is ErrorKind.UNAVAILABLE
    assert tx.books.records == {}
    assert _value(metrics.kyc_requests, "start", "error") == 1


async def test_a_verified_player_gets_no_new_link() -> None:
    tx = MemoryTransactions()
    tx.books.records["p-1"] = replace(_record(status=V.VERIFIED), sequence=3)
    kyc = FakeKyc()
    view = await StartVerification(uow=tx, kyc=kyc, source="/s").execute("p-1")
    assert (view.status, view.url, kyc.calls) == (V.VERIFIED, None, [])
    read = await ReadVerification(tx).execute("p-2")
    assert (read.status, read.message) == (V.NOT_STARTED, PLAYER_MESSAGE[next(iter(PLAYER_MESSAGE))])


# -- ApplyVerificationEvent -------------------------------------------------------------------------------------
async def _apply(tx: MemoryTransactions, use: Apply, *envelopes: Envelope[Any]) -> list[str]:
    async with tx() as books:
        return await use.execute(books, list(envelopes))


async def test_verified_and_clear(metrics: ComplianceMetrics, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    tx = MemoryTransactions()
    tx.books.records["p-1"] = _record()
    kyc = FakeKyc(reviews={"app-p-1": KycReview("app-p-1", V.VERIFIED, "DE", "GREEN")})
    screen = lists()
    use: Apply = ApplyVerificationEvent(kyc=kyc, screen=screen, source="/prizeflow/payouts", metrics=metrics)
    assert await _apply(tx, use, _event()) == ["applied"]
    record = tx.books.records["p-1"]
    assert (record.status, record.country, record.sequence) == (V.VERIFIED, "DE", 2)
    assert record.screening.outcome is ScreeningOutcome.CLEAR
    assert dict(record.screening.versions) == {"ofac_sdn": "2026-11-24"}
    assert tx.books.history[-1] == ("p-1", 2, "verified", "GREEN")
    (event,) = tx.books.events
    assert isinstance(event.data, PlayerVerificationChanged)
    assert (event.data.status, event.data.sequence, event.data.reference) == (V.VERIFIED, 2, record.reference)
    assert kyc.calls == ["review", "identity"]
    assert len(screen.screened) == 1
    # The identity reached the screen and nothing else: not a log line, not the record, not an event.
    assert SECRET_NAME not in caplog.text
    assert SECRET_NAME not in repr(record)
    assert SECRET_NAME not in event.model_dump_json()
    assert SECRET_NAME not in repr(screen.screened[0])
    assert _value(metrics.verifications, "verified") == 1
    assert _value(metrics.screenings, "player", "clear") == 1
    assert _value(metrics.kyc_webhooks, "applied") == 1


async def test_a_hit_is_recorded_with_the_lists_entries_only(metrics: ComplianceMetrics) -> None:
    tx = MemoryTransactions()
    tx.books.records["p-1"] = _record()
    kyc = FakeKyc(reviews={"app-p-1": KycReview("app-p-1", V.VERIFIED, "DE", "GREEN")})
    use: Apply = ApplyVerificationEvent(kyc=kyc, screen=lists(hits=("sdn-42",)), source="/s", metrics=metrics)
    await _apply(tx, use, _event())
    record = tx.books.records["p-1"]
    assert record.status is V.VERIFIED
    assert record.screening_hit
    assert list(record.screening.matches) == [
        {"source": "ofac_sdn", "entry_uid": "sdn-42", "entry_name": "Listed sdn-42", "kind": "name", "score": 950}
    ]
    assert SECRET_NAME not in repr(record)
    assert _value(metrics.screening_hits, "player") == 1


async def test_replays_and_stale_reviews_change_nothing(metrics: ComplianceMetrics) -> None:
    tx = MemoryTransactions()
    tx.books.records["p-1"] = _record()
    kyc = FakeKyc(reviews={"app-p-1": KycReview("app-p-1", V.VERIFIED, "DE", "GREEN")})
    use: Apply = ApplyVerificationEvent(kyc=kyc, screen=lists(), source="/s", metrics=metrics)
    await _apply(tx, use, _event())
    before = (dict(tx.books.records), len(tx.books.history), len(tx.books.events))
    assert await _apply(tx, use, _event(), _event()) == ["duplicate", "duplicate"]
    kyc.reviews["app-p-1"] = KycReview("app-p-1", V.PENDING, None, "re-review")
    assert await _apply(tx, use, _event()) == ["stale"]
    assert (dict(tx.books.records), len(tx.books.history), len(tx.books.events)) == before
    kyc.reviews["app-p-1"] = KycReview("app-p-1", V.FAILED, None, "RED/FINAL")
    assert await _apply(tx, use, _event()) == ["applied"]  # the vendor revoked it
    assert (tx.books.records["p-1"].status, tx.books.records["p-1"].sequence) == (V.FAILED, 3)


async def test_retry_then_failed() -> None:
    tx = MemoryTransactions()
    tx.books.records["p-1"] = _record()
    kyc = FakeKyc(reviews={"app-p-1": KycReview("app-p-1", V.RETRY, None, "RED/RETRY")})
    use: Apply = ApplyVerificationEvent(kyc=kyc, screen=lists(), source="/s")
    await _apply(tx, use, _event())
    kyc.reviews["app-p-1"] = KycReview("app-p-1", V.FAILED, None, "RED/FINAL")
    await _apply(tx, use, _event())
    assert [h[2] for h in tx.books.history] == ["retry", "failed"]
    assert [e.data.sequence for e in tx.books.events] == [2, 3]
    assert "identity" not in kyc.calls


async def test_a_vendor_outage_raises_for_the_consumer_to_retry(metrics: ComplianceMetrics) -> None:
    tx = MemoryTransactions()
    tx.books.records["p-1"] = _record()
    kyc = FakeKyc(fail=KycProviderError("unavailable", "503 from vendor", retryable=True))
    use: Apply = ApplyVerificationEvent(kyc=kyc, screen=lists(), source="/s", metrics=metrics)
    with pytest.raises(KycProviderError):
        await _apply(tx, use, _event())
    kyc.fail = KycProviderError("not_found", "no applicant", retryable=False)
    with pytest.raises(EventRefusal):
        await _apply(tx, use, _event())
    assert tx.books.records["p-1"].status is V.PENDING
    assert _value(metrics.kyc_requests, "status", "error") == 2
    assert _value(metrics.kyc_webhooks, "error") == 2


async def test_no_screen_no_verification() -> None:
    tx = MemoryTransactions()
    tx.books.records["p-1"] = _record()
    kyc = FakeKyc(reviews={"app-p-1": KycReview("app-p-1", V.VERIFIED, "DE", "GREEN")})
    with pytest.raises(ScreeningUnavailableError):
        await _apply(tx, ApplyVerificationEvent(kyc=kyc, screen=None, source="/s"), _event())
    assert tx.books.records["p-1"].status is V.PENDING


async def test_refusals_forged_foreign_and_vendorless() -> None:
    tx = MemoryTransactions()
    tx.books.records["p-1"] = _record()
    use: Apply = ApplyVerificationEvent(kyc=FakeKyc(), screen=lists(), source="/s")
    with pytest.raises(EventRefusal) as forged:
        await _apply(tx, use, _event(source="/somebody"))
    assert forged.value.reason == "unverified_provider_event"
    with pytest.raises(EventRefusal) as foreign:
        await _apply(tx, use, _event(applicant="app-someone-else"))
    assert foreign.value.reason == "conflicting_event"
    with pytest.raises(EventRefusal) as vendorless:
        await _apply(tx, ApplyVerificationEvent(kyc=None, screen=lists(), source="/s"), _event())
    assert vendorless.value.reason == "handler_failed"
    assert "kyc_unavailable" in vendorless.value.detail


async def test_an_event_before_the_start_commits_creates_the_record() -> None:
    tx = MemoryTransactions()
    use: Apply = ApplyVerificationEvent(kyc=FakeKyc(), screen=lists(), source="/s")
    assert await _apply(tx, use, _event("p-9")) == ["applied"]
    record = tx.books.records["p-9"]
    assert (record.status, record.sequence, record.vendor_ref) == (V.PENDING, 2, "app-p-9")
    view = await StartVerification(uow=tx, kyc=FakeKyc(), source="/s").execute("p-9")
    assert view.status is V.PENDING
    assert tx.books.records["p-9"].sequence == 2


# -- the policy's versions --------------------------------------------------------------------------------------
def _admin(user: str, *roles: str) -> Actor:
    return Actor(user, frozenset(roles or ("admin",)), f"cr-{user}")


def _policy_cases(tx: MemoryTransactions, metrics: ComplianceMetrics | None = None) -> dict[str, Any]:
    common: dict[str, Any] = {"uow": tx, "service": "payouts", "source": "/prizeflow/payouts"}
    return {
        "propose": ProposePolicy(**common, metrics=metrics),
        "approve": ApprovePolicy(**common, metrics=metrics),
        "reject": RejectPolicy(**common, metrics=metrics),
        "publish": PublishActivePolicy(**common, metrics=metrics),
    }


DOC = {"rules": [{"scope": {"asset": "USDC"}, "kyc_above": {"amount": 100_000, "window_s": 86_400}}], "note": "kyc"}


async def test_propose_then_a_second_admin_approves(metrics: ComplianceMetrics) -> None:
    tx = MemoryTransactions()
    cases = _policy_cases(tx, metrics)
    proposal = await cases["propose"].execute(_admin("ann"), DOC, "verify big winners")
    assert (proposal.version, proposal.base_version, proposal.status) == (1, 0, ProposalStatus.PROPOSED)
    with pytest.raises(ComplianceError) as self_approval:
        await cases["approve"].execute(_admin("ann"), proposal.id, "mine")
    assert (self_approval.value.kind, self_approval.value.code) == (ErrorKind.FORBIDDEN, "self_decision")
    with pytest.raises(ComplianceError) as not_admin:
        await cases["approve"].execute(_admin("val", "approver"), proposal.id, "ok")
    assert not_admin.value.code == "admin_role_required"
    active = await cases["approve"].execute(_admin("bob"), proposal.id, "agreed")
    assert (active.status, active.decided_by) == (ProposalStatus.ACTIVE, "bob")
    kinds = [type(e.data) for e in tx.books.events]
    assert kinds == [AdminActionRecorded, AdminActionRecorded, RiskPolicyActivated]
    activated = tx.books.events[-1].data
    assert isinstance(activated, RiskPolicyActivated)
    assert (activated.policy.version, activated.proposed_by, activated.approved_by) == (1, "ann", "bob")
    audits = [e.data for e in tx.books.events if isinstance(e.data, AdminActionRecorded)]
    assert [(a.action, a.actor_user_id, a.target_id) for a in audits] == [
        ("risk_policy.propose", "ann", "1"),
        ("risk_policy.approve", "bob", "1"),
    ]
    assert metrics.policy_version._value.get() == 1
    # Already announced at approval: a start-up announces nothing.
    assert await cases["publish"].execute() is None


async def test_a_stale_proposal_is_refused_and_supersession_keeps_one_active() -> None:
    tx = MemoryTransactions()
    cases = _policy_cases(tx)
    first = await cases["propose"].execute(_admin("ann"), DOC, "v1")
    second = await cases["propose"].execute(_admin("ann"), {"rules": [], "note": "relax"}, "v2, against v0")
    await cases["approve"].execute(_admin("bob"), first.id, "ok")
    with pytest.raises(ComplianceError) as stale:
        await cases["approve"].execute(_admin("bob"), second.id, "ok")
    assert (stale.value.kind, stale.value.code) == (ErrorKind.CONFLICT, "stale_policy")
    rejected = await cases["reject"].execute(_admin("bob"), second.id, "stale")
    assert rejected.status is ProposalStatus.REJECTED
    third = await cases["propose"].execute(_admin("cid"), {"rules": [], "note": "relax"}, "v3, against v1")
    assert (third.version, third.base_version) == (3, 1)
    await cases["approve"].execute(_admin("ann"), third.id, "ok")
    statuses = {p.version: p.status for p in tx.books.proposals.values()}
    assert statuses == {1: ProposalStatus.SUPERSEDED, 2: ProposalStatus.REJECTED, 3: ProposalStatus.ACTIVE}


async def test_an_invalid_policy_names_its_fields() -> None:
    tx = MemoryTransactions()
    bad = {"rules": [{"kyc_above": {"amount": -1, "window_s": 5}}], "note": ""}
    with pytest.raises(ComplianceError) as invalid:
        await _policy_cases(tx)["propose"].execute(_admin("ann"), bad, "broken")
    assert (invalid.value.kind, invalid.value.code) == (ErrorKind.INVALID, "invalid_policy")
    keys = {e["key"] for e in invalid.value.extra["errors"]}
    assert keys == {"rules.0.kyc_above.amount", "rules.0.kyc_above.window_s"}
    assert tx.books.proposals == {}


async def test_start_up_announces_an_active_version_never_announced() -> None:
    tx = MemoryTransactions()
    cases = _policy_cases(tx)
    assert await cases["publish"].execute() is None  # nothing active: nothing to announce
    proposal = await cases["propose"].execute(_admin("ann"), DOC, "v1")
    await cases["approve"].execute(_admin("bob"), proposal.id, "ok")
    tx.books.announced = None  # e.g. an operator asked for it again
    assert await cases["publish"].execute() == 1
    assert await cases["publish"].execute() is None
    activations = [e for e in tx.books.events if isinstance(e.data, RiskPolicyActivated)]
    assert len(activations) == 2
    assert activations[0].id == activations[1].id  # one event id per version: consumers dedup


async def test_the_gate_hook_runs_in_the_transaction_of_each_change() -> None:
    tx = MemoryTransactions()
    tx.books.records["p-1"] = _record()
    seen: list[tuple[VerificationStatus, list[str]]] = []

    async def hook(books: MemoryComplianceBooks, player_ids: Sequence[str]) -> int:
        record = await books.compliance.records.verification(player_ids[0])
        assert record is not None
        seen.append((record.status, list(player_ids)))
        return 0

    kyc = FakeKyc(reviews={"app-p-1": KycReview("app-p-1", V.VERIFIED, "DE", "GREEN")})
    use: Apply = ApplyVerificationEvent(kyc=kyc, screen=lists(), source="/s", on_changed=hook)
    await _apply(tx, use, _event(), _event())
    assert seen == [(V.VERIFIED, ["p-1"])]  # the change it sees is the one being committed; a duplicate calls nothing


async def test_a_review_of_an_applicant_that_belongs_to_another_player_is_refused() -> None:
    """The vendor's applicant names its own player (Sumsub's externalUserId). An applicant re-linked in the vendor's
    dashboard, or made by another integration of the same vendor account, must never verify the player of the
    record: another person's identity would release this player's payouts."""
    tx = MemoryTransactions()
    tx.books.records["p-1"] = _record()
    kyc = FakeKyc(reviews={"app-p-1": KycReview("app-p-1", V.VERIFIED, "DE", "GREEN", subject="p-2")})
    use: Apply = ApplyVerificationEvent(kyc=kyc, screen=lists(), source="/s")
    with pytest.raises(EventRefusal) as refused:
        await _apply(tx, use, _event())
    assert refused.value.reason == "conflicting_event"
    assert (tx.books.records["p-1"].status, tx.books.records["p-1"].sequence) == (V.PENDING, 1)
    assert "identity" not in kyc.calls  # never screened, never fetched
    kyc.reviews["app-p-1"] = KycReview("app-p-1", V.VERIFIED, "DE", "GREEN", subject="p-1")
    assert await _apply(tx, use, _event()) == ["applied"]
    assert (tx.books.records["p-1"].status, tx.books.records["p-1"].sequence) == (V.VERIFIED, 2)


# -- RescreenVerifiedPlayers (a list version published later) -----------------------------------------------------
KEY = "d" * 64


def _player_compliance(record: VerificationRecord) -> PlayerCompliance:
    """As `SqlComplianceFacts.players` reads the record: the stored screening's entries and versions."""
    hit = record.screening.outcome is ScreeningOutcome.HIT
    return PlayerCompliance(
        record.player_id,
        record.status,
        record.country,
        screening_matches=tuple(
            ScreeningMatch(
                str(m["source"]), str(m["entry_uid"]), str(m["entry_name"]), str(m["kind"]), int(str(m["score"]))
            )
            for m in record.screening.matches
        )
        if hit
        else (),
        screening_versions=dict(record.screening.versions),
    )


@dataclass
class GateProbe:
    """The gate's hook (`on_changed`), deciding one waiting payout of each player as `PayoutGate` would: the
    player's stored screening against the screen's loaded versions, a clear destination, no policy finding."""

    screen: FakeScreen
    cleared: list[Clearance] = field(default_factory=list)
    decisions: dict[str, GateDecision] = field(default_factory=dict)
    calls: int = 0

    async def __call__(self, books: MemoryComplianceBooks, player_ids: Sequence[str]) -> int:
        self.calls += 1
        for player_id in player_ids:
            record = await books.compliance.records.verification(player_id)
            assert record is not None
            self.decisions[player_id] = self.decide(record)
        return len(player_ids)

    def decide(self, record: VerificationRecord) -> GateDecision:
        player = _player_compliance(record)
        current = dict(self.screen.versions())
        return gate_decide(
            GateInput(
                stage=Stage.VERIFICATION,
                player_id=record.player_id,
                player_screening_hit=player.screening_hit,
                destination_key=KEY,
                verdict=Verdict(1, ()),
                screening=GateScreening((), current),
                cleared=self.cleared,
                player_matches=player.screening_matches,
                player_screening_stale=player.screening_stale(current),
            )
        )


def _screened_record(
    player: str = "p-1", *, version: str = "2026-11-24", hit_entries: tuple[str, ...] = ()
) -> VerificationRecord:
    matches = tuple(
        {"source": "ofac_sdn", "entry_uid": uid, "entry_name": f"Listed {uid}", "kind": "name", "score": 950}
        for uid in hit_entries
    )
    return replace(
        _record(status=V.VERIFIED, player=player),
        sequence=2,
        country="DE",
        screening=Screening(
            ScreeningOutcome.HIT if matches else ScreeningOutcome.CLEAR, {"ofac_sdn": version}, matches
        ),
    )


def _rescreen(
    tx: MemoryTransactions,
    kyc: FakeKyc,
    screen: FakeScreen,
    probe: GateProbe | None = None,
    metrics: ComplianceMetrics | None = None,
    clock: list[datetime] | None = None,
) -> RescreenVerifiedPlayers[MemoryComplianceBooks]:
    now = clock or [NOW]
    return RescreenVerifiedPlayers(
        uow=tx,
        kyc=kyc,
        screen=screen,
        sources=("ofac_sdn",),
        batch=10,
        lease_s=600,
        on_changed=probe,
        metrics=metrics,
        clock=lambda: now[0],
    )


async def test_a_verified_player_listed_later_is_held(metrics: ComplianceMetrics) -> None:
    """Screened clear at verification; a list version published later names them: their payouts wait from the
    moment the new version is loaded (stale), and the re-screen turns the wait into a hit for two approvers."""
    tx = MemoryTransactions()
    tx.books.records["p-1"] = _record()
    kyc = FakeKyc(reviews={"app-p-1": KycReview("app-p-1", V.VERIFIED, "DE", "GREEN")})
    screen = lists()
    probe = GateProbe(screen)
    assert await _apply(tx, ApplyVerificationEvent(kyc=kyc, screen=screen, source="/s"), _event()) == ["applied"]
    assert probe.decide(tx.books.records["p-1"]).action is Action.ALLOW
    screen.persons[SECRET_NAME], screen.loaded["ofac_sdn"] = (
        ["sdn-42"],
        "2026-11-25",
    )  # a new list version names the player
    waiting = probe.decide(tx.books.records["p-1"])
    assert (waiting.hold, waiting.approval_policy, waiting.player_message) == (HoldCode.SCREENING_PENDING, None, None)
    report = await _rescreen(tx, kyc, screen, probe, metrics).execute()
    assert (report.claimed, report.hit, report.changed, report.stale) == (1, 1, 1, 0)
    record = tx.books.records["p-1"]
    assert record.screening_hit
    assert (record.status, record.sequence, dict(record.screening.versions)) == (
        V.VERIFIED,
        3,
        {"ofac_sdn": "2026-11-25"},
    )
    held = probe.decisions["p-1"]  # the hook decided the player's waiting payouts in the re-screen's transaction
    assert (held.hold, held.approval_policy) == (HoldCode.SCREENING_HIT, ApprovalPolicy.DUAL)
    assert [m.entry_uid for m in held.player_matches] == ["sdn-42"]
    assert held.player_message is None  # never a list or an entry
    assert tx.books.history[-1] == ("p-1", 3, "verified", "re-screened: hit against ofac_sdn 2026-11-25")
    assert _value(metrics.rescreens, "hit") == 1
    assert metrics.stale_players._value.get() == 0
    assert not [e for e in tx.books.events if e.data.sequence == 3]  # no status change: nothing published


async def test_a_clear_rescreen_updates_the_versions_and_releases_the_wait(
    metrics: ComplianceMetrics, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    tx = MemoryTransactions()
    tx.books.records["p-1"] = _screened_record()
    tx.books.records["p-2"] = _record(player="p-2")  # not verified: nothing to re-screen
    kyc, screen = FakeKyc(), lists(version="2026-11-25")
    probe = GateProbe(screen)
    assert probe.decide(tx.books.records["p-1"]).hold is HoldCode.SCREENING_PENDING
    report = await _rescreen(tx, kyc, screen, probe, metrics).execute()
    assert (report.claimed, report.clear, report.changed, report.stale) == (1, 1, 0, 0)
    assert dict(tx.books.records["p-1"].screening.versions) == {"ofac_sdn": "2026-11-25"}
    assert probe.decisions["p-1"].action is Action.ALLOW  # released by the re-screen, not by a person
    assert kyc.calls == ["identity"]
    assert tx.books.leases == {}
    assert _value(metrics.rescreens, "clear") == 1
    again = await _rescreen(tx, kyc, screen, probe, metrics).execute()
    assert (again.claimed, again.stale) == (0, 0)  # current now: not fetched again
    assert SECRET_NAME not in caplog.text
    assert "1970" not in caplog.text


async def test_a_refused_identity_keeps_the_player_stale_and_held(
    metrics: ComplianceMetrics, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    tx = MemoryTransactions()
    tx.books.records["p-1"] = _screened_record()
    kyc = FakeKyc(identity_fail=KycProviderError("applicant_deleted", "gone", retryable=False))
    screen = lists(version="2026-11-25")
    probe = GateProbe(screen)
    clock = [NOW]
    job = _rescreen(tx, kyc, screen, probe, metrics, clock)
    report = await job.execute()
    assert (report.claimed, report.errors, report.stale) == (1, 1, 1)
    record = tx.books.records["p-1"]
    assert dict(record.screening.versions) == {"ofac_sdn": "2026-11-24"}  # still stale: fail closed
    assert probe.decide(record).hold is HoldCode.SCREENING_PENDING
    assert probe.calls == 0
    assert tx.books.history[-1][3] == "re-screen refused by the vendor (applicant_deleted): still held"
    assert _value(metrics.rescreens, "error") == 1
    assert metrics.stale_players._value.get() == 1
    # Not asked again at every tick: the lease of a refused player runs for hours.
    clock[0] = NOW + timedelta(hours=1)
    assert (await job.execute()).claimed == 0
    clock[0] = NOW + timedelta(hours=7)
    kyc.identity_fail = None
    assert (await job.execute()).clear == 1
    assert probe.decisions["p-1"].action is Action.ALLOW
    assert SECRET_NAME not in caplog.text


async def test_a_vendor_outage_leaves_the_lease_to_lapse_and_a_later_run_retries(metrics: ComplianceMetrics) -> None:
    tx = MemoryTransactions()
    tx.books.records["p-1"] = _screened_record()
    kyc = FakeKyc(identity_fail=KycProviderError("timeout", "vendor timed out", retryable=True))
    screen = lists(version="2026-11-25")
    clock = [NOW]
    job = _rescreen(tx, kyc, screen, GateProbe(screen), metrics, clock)
    assert (await job.execute()).errors == 1
    assert len(tx.books.history) == 0  # nothing written: the lease lapses by itself
    assert (await job.execute()).claimed == 0  # leased
    kyc.identity_fail = None
    clock[0] = NOW + timedelta(seconds=601)
    assert (await job.execute()).clear == 1


async def test_a_record_changed_during_the_vendor_call_is_not_overwritten() -> None:
    tx = MemoryTransactions()
    tx.books.records["p-1"] = _screened_record()
    screen = lists(version="2026-11-25")

    class RevokingKyc(FakeKyc):
        async def identity(self, reference: str) -> Identity:
            # The vendor revokes the player while their identity is being fetched (another transaction commits).
            tx.books.records["p-1"] = tx.books.records["p-1"].moved(V.FAILED, at=NOW)
            return await super().identity(reference)

    probe = GateProbe(screen)
    report = await _rescreen(tx, RevokingKyc(), screen, probe).execute()
    assert (report.claimed, report.skipped) == (1, 1)
    assert tx.books.records["p-1"].status is V.FAILED
    assert dict(tx.books.records["p-1"].screening.versions) == {"ofac_sdn": "2026-11-24"}
    assert probe.calls == 0


async def test_no_rescreen_against_lists_older_than_the_newest_stored() -> None:
    """Another replica stored (and screened against) a newer version this one has not loaded: screening against the
    older one would undo its screening. Nothing is claimed until this replica loads it."""
    tx = MemoryTransactions()
    tx.books.records["p-1"] = _screened_record(version="2026-11-26")
    tx.books.newest = {"ofac_sdn": "2026-11-26"}
    kyc = FakeKyc()
    report = await _rescreen(tx, kyc, lists(version="2026-11-25")).execute()
    assert (report.claimed, report.stale, kyc.calls) == (0, 1, [])
    assert report.reason == "newer lists stored than loaded here"


async def test_a_player_clearance_is_per_entry_a_new_entry_holds_again() -> None:
    """Two approvers cleared the player's false positive (sdn-42). A later list names them under another entry: the
    old clearance does not clear it."""
    tx = MemoryTransactions()
    tx.books.records["p-1"] = _screened_record(hit_entries=("sdn-42",))
    screen = lists(hits=("sdn-42",))
    probe = GateProbe(screen)
    first = probe.decide(tx.books.records["p-1"])
    assert first.hold is HoldCode.SCREENING_HIT
    probe.cleared = clearances_from_reasons(first.reasons, player_id="p-1", destination=KEY)
    assert probe.cleared == [Clearance(SubjectKind.PLAYER, "p-1", "ofac_sdn", "sdn-42")]
    assert probe.decide(tx.books.records["p-1"]).action is Action.ALLOW
    # The legacy wholesale clearance ("identity") never clears an entry.
    legacy = GateProbe(screen, cleared=[Clearance(SubjectKind.PLAYER, "p-1", "player_screening", "identity")])
    assert legacy.decide(tx.books.records["p-1"]).hold is HoldCode.SCREENING_HIT
    screen.loaded["ofac_sdn"], screen.persons[SECRET_NAME] = "2026-11-25", ["sdn-42", "sdn-77"]
    report = await _rescreen(tx, FakeKyc(), screen, probe).execute()
    assert (report.hit, report.changed) == (1, 1)
    again = probe.decisions["p-1"]
    assert (again.hold, again.approval_policy) == (HoldCode.SCREENING_HIT, ApprovalPolicy.DUAL)
    assert [m.entry_uid for m in again.player_matches] == ["sdn-77"]
    assert "sdn-42" not in again.detail
