"""`RescreenVerifiedPlayers`: verified players screened again when the sanctions lists change
(docs/adr/0012-pay-only-whom-you-may.md, "Re-screening").

A verified player's identity is screened when the vendor verifies it; a list version published later may name them.
Their stored screening is then stale (its versions differ from the loaded lists'), the gate holds their payouts
(`screening_pending`), and this job screens them again: each run claims a batch of stale verified players with a
lease (two replicas never fetch one player at once), fetches each identity from the vendor OUTSIDE any transaction,
screens it, drops it, and writes the new screening in one short transaction, only if the record did not change
meanwhile. The gate's hook (`on_changed`, as for a verification) then decides the player's waiting payouts again: a
clear screening releases them, a hit holds them for two approvers.

Vendor errors: a retryable one leaves the lease to lapse (a later run retries); any other is counted, logged (no
personal data) and written to the player's history, and the player stays stale, held (fail closed) until the lease
for refused players lapses and a run asks again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final, Generic, TypeVar

from prizeflow_compliance.application.ports import (
    ComplianceBooks,
    KycProvider,
    KycProviderError,
    RescreenClaim,
    SanctionsScreen,
    ScreeningUnavailable,
    VerificationChanged,
)
from prizeflow_compliance.application.verification import VendorCalls, screening_of
from prizeflow_compliance.domain.verification import Screening, ScreeningOutcome
from prizeflow_compliance.metrics import ComplianceMetrics
from prizeflow_runtime.jobs import Tick
from prizeflow_runtime.uow import UnitOfWork

log = logging.getLogger(__name__)
B = TypeVar("B", bound=ComplianceBooks)

RESCREEN_OUTCOMES: Final = ("clear", "hit", "error")
DEFAULT_REFUSED_RETRY_S: Final = 6 * 3600.0  # a player the vendor refused is asked again after this (the alert's span)


@dataclass(slots=True)
class RescreenReport:
    """One run: what was claimed and done, and how many stale verified players are left."""

    claimed: int = 0
    clear: int = 0
    hit: int = 0
    changed: int = 0  # the outcome or the matched entries changed
    errors: int = 0
    skipped: int = 0  # the record changed meanwhile (another screening, a revocation): nothing written
    stale: int = 0
    reason: str = ""  # why nothing was claimed, when nothing was


def _detail(verb: str, versions: Mapping[str, str]) -> str:
    against = ", ".join(f"{source} {version}" for source, version in sorted(versions.items())) or "no list"
    return f"{verb} against {against}"[:200]


def _entries(screening: Screening) -> frozenset[tuple[str, str]]:
    return frozenset((str(m.get("source")), str(m.get("entry_uid"))) for m in screening.matches)


class RescreenVerifiedPlayers(Generic[B]):
    def __init__(
        self,
        *,
        uow: UnitOfWork[B],
        kyc: KycProvider | None,
        screen: SanctionsScreen,
        sources: Sequence[str],
        batch: int = 100,
        lease_s: float = 600.0,
        refused_retry_s: float = DEFAULT_REFUSED_RETRY_S,
        on_changed: VerificationChanged[B] | None = None,
        metrics: ComplianceMetrics | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """`sources`: the configured lists (their loaded versions are what a screening must be made against).
        `lease_s`: how long a claimed player is this run's (longer than a batch of vendor calls takes).
        `on_changed`: the gate's hook, called in the transaction of each re-screen (the player's waiting payouts)."""
        if batch <= 0:
            raise ValueError("the re-screen batch is at least one player")
        self.uow = uow
        self.kyc = kyc
        self.screen = screen
        self.sources = tuple(sources)
        self.batch = batch
        self.lease_s = lease_s
        self.refused_retry_s = refused_retry_s
        self.on_changed = on_changed
        self.metrics = metrics
        self.clock = clock

    def current(self) -> dict[str, str] | None:
        """The configured sources' loaded versions; None while one has never loaded (nobody can be screened)."""
        try:
            loaded = dict(self.screen.versions())
        except Exception:
            log.exception("sanctions screen: versions unavailable")
            return None
        if any(s not in loaded for s in self.sources):
            return None
        return {s: loaded[s] for s in self.sources}

    async def execute(self) -> RescreenReport:
        """One run: claim up to `batch` stale verified players and screen each again."""
        current = self.current()
        if current is None:
            return RescreenReport(reason="a configured list is not loaded")
        if not current:
            return RescreenReport(reason="no list configured")
        now = self.clock()
        claims: list[RescreenClaim] = []
        reason = ""
        async with self.uow() as books:
            store = books.compliance.rescreen
            newest = await store.newest_versions()
            if any(newest.get(s, v) != v for s, v in current.items()):
                # The database holds a version this replica has not loaded yet: screening against the older one
                # would undo another replica's newer screening. This replica's next load catches up.
                reason = "newer lists stored than loaded here"
            elif self.kyc is None:
                reason = "no identity-verification vendor configured"
            else:
                claims = await store.claim_stale(
                    current, limit=self.batch, lease_until=now + timedelta(seconds=self.lease_s), now=now
                )
        report = RescreenReport(claimed=len(claims), reason=reason)
        for claim in claims:
            try:
                await self._one(claim, report)
            except Exception:  # a database fault on one player: its lease lapses, the rest of the batch goes on
                log.exception(
                    "re-screen of a player failed; retried once its lease lapses", extra={"reference": claim.reference}
                )
                self._count("error")
                report.errors += 1
        async with self.uow() as books:
            store = books.compliance.rescreen
            stale = await store.count_stale(current)
        if self.metrics is not None:
            self.metrics.stale_players.set(stale)
        if reason and stale:
            log.warning("re-screen: %d stale verified players wait (%s)", stale, reason)
        report.stale = stale
        return report

    async def _one(self, claim: RescreenClaim, report: RescreenReport) -> None:
        assert self.kyc is not None
        try:
            # The identity lives in this call's frame only; no transaction is open and no row is locked here.
            result = await VendorCalls(self.kyc, self.metrics).screen(claim.vendor_ref, self.screen)
        except KycProviderError as err:
            self._count("error")
            log.warning(
                "re-screen: the vendor gave no identity",
                extra={"reference": claim.reference, "code": err.code, "retryable": err.retryable},
            )
            if not err.retryable:
                now = self.clock()
                async with self.uow() as books:
                    store = books.compliance.rescreen
                    await store.record_refusal(
                        claim,
                        at=now,
                        detail=f"re-screen refused by the vendor ({err.code}): still held"[:200],
                        retry_at=now + timedelta(seconds=self.refused_retry_s),
                    )
            report.errors += 1
            return
        except ScreeningUnavailable as err:  # a list dropped out meanwhile: the lease lapses, a later run retries
            self._count("error")
            log.warning("re-screen: screening unavailable (%s)", err, extra={"reference": claim.reference})
            report.errors += 1
            return
        screening = screening_of(result)
        now = self.clock()
        async with self.uow() as books:
            store = books.compliance.rescreen
            written = await store.record_rescreen(
                claim, screening, at=now, detail=_detail(f"re-screened: {screening.outcome.value}", screening.versions)
            )
            if written and self.on_changed is not None:
                # Every re-screen, not only a changed one: a clear one releases the player's screening_pending holds.
                await self.on_changed(books, [claim.player_id])
        if not written:
            report.skipped += 1
            return
        self._count(screening.outcome.value)
        changed = claim.outcome is not screening.outcome or claim.entries != _entries(screening)
        (log.info if changed else log.debug)(
            "re-screened",
            extra={
                "reference": claim.reference,
                "outcome": screening.outcome.value,
                "previous": claim.outcome.value,
                "versions": dict(screening.versions),
            },
        )
        if screening.outcome is ScreeningOutcome.HIT:
            report.hit += 1
        else:
            report.clear += 1
        report.changed += changed

    def _count(self, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.rescreens.labels(outcome).inc()

    async def tick(self) -> Tick:
        """One run, a job on the runtime's scheduler (every PAYOUTS_COMPLIANCE_SWEEP_S, and at once when a list
        load changed the versions: the scheduler's wake)."""
        try:
            report = await self.execute()
        except Exception:
            log.exception("re-screen run failed; retrying")
            return True
        if report.claimed >= self.batch and not report.errors:
            # A full batch, all answered: more stale players wait, and the vendor's pace is the limit, not the tick
            # (100 000 verified players at 100 per 30 s would take 8 hours). A batch with errors waits for the
            # tick: a vendor outage is not hammered through every stale player.
            return 0.0
        return True


__all__ = ["DEFAULT_REFUSED_RETRY_S", "RESCREEN_OUTCOMES", "RescreenReport", "RescreenVerifiedPlayers"]
