"""Players' identity verification: `StartVerification` (the hosted flow's link) and `ApplyVerificationEvent` (a
vendor's webhook, relayed by the ingress as `VerificationEventReceived`).

The webhook's body is never trusted for the answer: the applicant's review is fetched from the vendor. When it says
verified, the identity is fetched, screened against the sanctions lists and dropped: only the status, the country,
the screening's outcome, the lists' versions and the matched LIST entries are kept. Each change bumps the record's
sequence, appends a history row and stages `PlayerVerificationChanged`, in one transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Generic, TypeVar

from prizeflow_compliance.application.errors import ComplianceError
from prizeflow_compliance.application.ports import (
    ComplianceBooks,
    KycProvider,
    KycProviderError,
    KycReview,
    KycSession,
    SanctionsScreen,
    ScreeningResult,
    VerificationChanged,
)
from prizeflow_compliance.domain.verification import (
    Reaction,
    Screening,
    ScreeningOutcome,
    VerificationRecord,
    decide,
    player_message,
    verification_reference,
)
from prizeflow_compliance.metrics import ComplianceMetrics
from prizeflow_contracts.envelope import Envelope, event_id_for, new_event
from prizeflow_contracts.errors import EventRefusal
from prizeflow_contracts.events.payouts import PlayerVerificationChanged
from prizeflow_contracts.events.webhooks import VerificationEventReceived
from prizeflow_contracts.policy import VerificationStatus
from prizeflow_runtime.errors import ErrorKind
from prizeflow_runtime.uow import UnitOfWork

V = VerificationStatus
log = logging.getLogger(__name__)
B = TypeVar("B", bound=ComplianceBooks)

# What the player is answered once verified or failed: no new link, nothing more to do in the flow.
SETTLED: Final = frozenset({V.VERIFIED, V.FAILED})


@dataclass(frozen=True, slots=True)
class VerificationView:
    """What a player sees of their verification: a status and the next step (never a threshold or a match)."""

    status: VerificationStatus
    message: str
    url: str | None = None


def changed_event(record: VerificationRecord, *, source: str, causation_id: str | None = None) -> Envelope[Any]:
    """`PlayerVerificationChanged` for the record as it is now (a deterministic id: a re-emission dedups). Keyed by
    our reference, so one player's changes stay in order on one partition."""
    return new_event(
        PlayerVerificationChanged(
            player_id=record.player_id,
            reference=record.reference,
            status=record.status,
            sequence=record.sequence,
            changed_at=record.updated_at,
        ),
        source=source,
        correlation_id=record.reference,
        causation_id=causation_id,
        subject=record.player_id,
        event_id=event_id_for("kyc", record.player_id, record.sequence),
    )


def _unavailable() -> ComplianceError:
    return ComplianceError(
        ErrorKind.UNAVAILABLE, "kyc_unavailable", "identity verification is not available at the moment; try later"
    )


class VendorCalls:
    """The vendor's calls, counted by operation and outcome (`kyc_requests`)."""

    def __init__(self, kyc: KycProvider, metrics: ComplianceMetrics | None) -> None:
        self.kyc = kyc
        self.metrics = metrics

    def _count(self, operation: str, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.kyc_requests.labels(operation, outcome).inc()

    async def start(self, player_id: str) -> KycSession:
        try:
            session = await self.kyc.start(player_id)
        except KycProviderError:
            self._count("start", "error")
            raise
        self._count("start", "ok")
        return session

    async def review(self, reference: str) -> KycReview:
        try:
            review = await self.kyc.review(reference)
        except KycProviderError:
            self._count("status", "error")
            raise
        self._count("status", "ok")
        return review

    async def screen(self, reference: str, screen: SanctionsScreen) -> ScreeningResult:
        """The verified identity, screened and dropped here: it never leaves this frame."""
        try:
            identity = await self.kyc.identity(reference)
        except KycProviderError:
            self._count("identity", "error")
            raise
        self._count("identity", "ok")
        try:
            return screen.screen_person(identity)
        finally:
            del identity


class StartVerification:
    """The player's link to the vendor's hosted flow; the record created (pending) or kept. Idempotent per player:
    the vendor's applicant is created once (the player id is its external user id) and our reference is derived from
    the player id."""

    def __init__(
        self,
        *,
        uow: UnitOfWork[ComplianceBooks],
        kyc: KycProvider | None,
        source: str,
        metrics: ComplianceMetrics | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.uow = uow
        self.kyc = kyc
        self.source = source
        self.metrics = metrics
        self.clock = clock

    async def execute(self, player_id: str) -> VerificationView:
        if self.kyc is None:
            raise _unavailable()
        async with self.uow() as books:
            store = books.compliance.records
            existing = await store.verification(player_id)
        if existing is not None and existing.status in SETTLED:
            return VerificationView(existing.status, player_message(existing.status))
        try:
            session = await VendorCalls(self.kyc, self.metrics).start(player_id)
        except KycProviderError as err:
            if err.retryable:
                raise _unavailable() from err
            raise ComplianceError(
                ErrorKind.CONFLICT, "kyc_refused", "identity verification cannot be started for this account"
            ) from err
        now = self.clock()
        async with self.uow() as books:
            store = books.compliance.records
            record = VerificationRecord(
                player_id=player_id,
                reference=verification_reference(player_id),
                vendor=self.kyc.name,
                vendor_ref=session.reference,
                status=V.PENDING,
                sequence=1,
                updated_at=now,
            )
            if await store.insert_verification(record, detail="started"):
                await store.add_events([changed_event(record, source=self.source)])
                self._count(record.status)
            else:
                found = await store.verification(player_id, for_update=True)
                assert found is not None
                record = found
                if record.status is V.NOT_STARTED:
                    record = record.moved(V.PENDING, at=now)
                    await store.update_verification(record, detail="started")
                    await store.add_events([changed_event(record, source=self.source)])
                    self._count(record.status)
        url = None if record.status in SETTLED else session.url
        return VerificationView(record.status, player_message(record.status), url)

    def _count(self, status: VerificationStatus) -> None:
        if self.metrics is not None:
            self.metrics.verifications.labels(status.value).inc()


class ReadVerification:
    """The player's own view of their verification."""

    def __init__(self, uow: UnitOfWork[ComplianceBooks]) -> None:
        self.uow = uow

    async def execute(self, player_id: str) -> VerificationView:
        async with self.uow() as books:
            store = books.compliance.records
            record = await store.verification(player_id)
        status = V.NOT_STARTED if record is None else record.status
        return VerificationView(status, player_message(status))


class ScreeningUnavailableError(Exception):
    """A verified identity cannot be screened now (no lists loaded): the event is retried, never applied unscreened."""


class ApplyVerificationEvent(Generic[B]):
    """`VerificationEventReceived` (the ingress verified and deduplicated the vendor's webhook): the record follows
    the vendor's CURRENT review, fetched now. A vendor outage raises (`KycProviderError`, retryable): the consumer
    retries the event, then dead-letters it; it is never dropped."""

    def __init__(
        self,
        *,
        kyc: KycProvider | None,
        screen: SanctionsScreen | None,
        source: str,
        metrics: ComplianceMetrics | None = None,
        trusted_sources: frozenset[str] = frozenset({"/prizeflow/webhooks"}),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_changed: VerificationChanged[B] | None = None,
    ) -> None:
        """`on_changed`: called with the player in the transaction of each change (the payout gate resumes or
        refuses the payouts waiting for it)."""
        self.kyc = kyc
        self.screen = screen
        self.on_changed = on_changed
        self.source = source
        self.metrics = metrics
        self.trusted_sources = trusted_sources
        self.clock = clock

    async def execute(self, books: B, envelopes: Sequence[Envelope[Any]]) -> list[str]:
        """In the caller's transaction (`books`): an outcome per event (applied, duplicate, stale)."""
        return [await self._one(books, env) for env in envelopes]

    def _outcome(self, outcome: str) -> str:
        if self.metrics is not None:
            self.metrics.kyc_webhooks.labels(outcome).inc()
        return outcome

    def _trusted(self, env: Envelope[Any]) -> VerificationEventReceived:
        ev = env.data
        if not isinstance(ev, VerificationEventReceived):
            raise EventRefusal("unknown_event_type", f"payouts' verifications do not handle {env.type}")
        if env.source not in self.trusted_sources:
            # Only the ingress verifies the vendor's signature: anyone else's word could mark a player verified.
            self._outcome("error")
            raise EventRefusal(
                "unverified_provider_event",
                f"verification event {ev.provider_event_id}: published by {env.source[:100]!r}, not the ingress",
            )
        return ev

    async def _one(self, books: B, env: Envelope[Any]) -> str:
        ev = self._trusted(env)
        store = books.compliance.records
        if self.kyc is None:
            self._outcome("error")
            raise EventRefusal(
                "handler_failed",
                "kyc_unavailable: no identity-verification vendor is configured (PAYOUTS_KYC_PROVIDER)",
            )
        vendor = VendorCalls(self.kyc, self.metrics)
        record = await store.verification(ev.player_id, for_update=True)
        if record is None:
            # The vendor's event beat the commit of the player's start: the record begins here, from nothing.
            record = VerificationRecord(
                player_id=ev.player_id,
                reference=verification_reference(ev.player_id),
                vendor=self.kyc.name,
                vendor_ref=ev.applicant_ref,
                status=V.NOT_STARTED,
                sequence=1,
                updated_at=self.clock(),
            )
            if not await store.insert_verification(record, detail="created by the vendor's event"):
                raise RuntimeError(f"the verification of {ev.player_id} appeared meanwhile; again")  # retried
        if record.vendor_ref != ev.applicant_ref:
            self._outcome("error")
            raise EventRefusal(
                "conflicting_event",
                f"verification event {ev.provider_event_id} names applicant {ev.applicant_ref}, "
                f"not the player's ({record.vendor_ref})",
            )
        try:
            review = await vendor.review(record.vendor_ref)
        except KycProviderError as err:
            self._outcome("error")
            if err.retryable:
                raise  # the consumer retries, then dead-letters: never dropped
            raise EventRefusal(
                "unknown_aggregate", f"the vendor refused the review of {record.vendor_ref} ({err.code})"
            ) from err
        if review.subject is not None and review.subject != record.player_id:
            self._outcome("error")
            raise EventRefusal(
                "conflicting_event",
                f"verification event {ev.provider_event_id}: the vendor's applicant {record.vendor_ref} belongs to "
                "another user, not the record's player",
            )
        decision = decide(record.status, review.status)
        if decision.reaction is not Reaction.MOVE:
            return self._outcome(decision.reaction.value)
        assert decision.to is not None
        now = self.clock()
        if decision.to is V.VERIFIED:
            screening = await self._screened(vendor, record.vendor_ref)
            moved = record.moved(V.VERIFIED, at=now, country=review.country, screening=screening)
        else:
            moved = record.moved(decision.to, at=now)
        await store.update_verification(moved, detail=review.detail[:200])
        await store.add_events([changed_event(moved, source=self.source, causation_id=str(env.id))])
        if self.on_changed is not None:
            await self.on_changed(books, [moved.player_id])
        if self.metrics is not None:
            self.metrics.verifications.labels(moved.status.value).inc()
        log.info(
            "verification changed",
            extra={"reference": moved.reference, "status": moved.status.value, "sequence": moved.sequence},
        )
        return self._outcome(Reaction.MOVE.value)

    async def _screened(self, vendor: VendorCalls, reference: str) -> Screening:
        if self.screen is None:
            raise ScreeningUnavailableError("no sanctions screen is configured: a verified identity waits for one")
        try:
            result = await vendor.screen(reference, self.screen)
        except KycProviderError as err:
            self._outcome("error")
            if err.retryable:
                raise
            raise EventRefusal(
                "unknown_aggregate", f"the vendor refused the identity of {reference} ({err.code})"
            ) from err
        screening = screening_of(result)
        if self.metrics is not None:
            self.metrics.screenings.labels("player", screening.outcome.value).inc()
            if result.hit:
                self.metrics.screening_hits.labels("player").inc()
        return screening


def screening_of(result: ScreeningResult) -> Screening:
    """What a screening of the verified identity leaves on the record: the outcome, the lists' versions and the
    LISTS' matched entries (never the player's data)."""
    outcome = ScreeningOutcome.HIT if result.hit else ScreeningOutcome.CLEAR
    matches = tuple(
        {"source": m.source, "entry_uid": m.entry_uid, "entry_name": m.entry_name, "kind": m.kind, "score": m.score}
        for m in result.matches
    )
    return Screening(outcome=outcome, versions=dict(result.versions), matches=matches)


__all__ = [
    "SETTLED",
    "ApplyVerificationEvent",
    "ReadVerification",
    "ScreeningUnavailableError",
    "StartVerification",
    "VendorCalls",
    "VerificationView",
    "changed_event",
    "screening_of",
]
