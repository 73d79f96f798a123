"""`CheckDisagreements`: provider reports that disagreed with a payout's state (`domain/disagreement.py`), each
checked against the provider's current status: a job on the runtime's scheduler (every `checks_interval_s`)."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from prizeflow_payouts.application.books import Books
from prizeflow_payouts.application.metrics import PayoutMetrics
from prizeflow_payouts.application.provider_calls import ProviderCalls
from prizeflow_payouts.domain.disagreement import Conclusion, DisagreementStatus, conclude
from prizeflow_payouts.domain.payout import HistoryEntry, Payout
from prizeflow_runtime.uow import UnitOfWork

log = logging.getLogger(__name__)


class CheckDisagreements:
    def __init__(
        self,
        *,
        uow: UnitOfWork[Books],
        calls: ProviderCalls,
        worker_id: str,
        batch_size: int = 500,
        lease_s: float = 60.0,
        metrics: PayoutMetrics | None = None,
    ) -> None:
        self.uow = uow
        self.calls = calls  # the worker's: one bound on the calls in flight to the providers
        self.worker_id = worker_id
        self.batch_size = batch_size
        self.lease_s = lease_s
        self.metrics = metrics

    async def tick(self) -> bool:
        return await self.execute() > 0

    async def execute(self) -> int:
        """Read each due disagreement's payout at its provider (never holding a lock across the call), then conclude
        against the payout as it is by then: stale, a contradiction for a person, or ask again later. Never moves a
        payout. Returns how many were concluded."""
        async with self.uow() as books:
            due = await books.disagreements.claim_disagreements(limit=self.batch_size, lease_s=self.lease_s)
        if not due:
            return 0
        calls = await asyncio.gather(*(self.calls.sync(d.payout) for d in due))
        now = datetime.now(UTC)
        async with self.uow() as books:
            current = await books.payouts.payouts_for_update([d.payout.id for d in due])
            conclusions = [
                conclude(
                    d,
                    current[d.payout.id],
                    status_now=call.result.status if call.result is not None else None,
                    error=call.error.code if call.error is not None else None,
                    now=now,
                )
                for d, call in zip(due, calls, strict=True)
            ]
            written = await books.disagreements.conclude_disagreements(conclusions, at=now)
            raised = [c for c in written if c.status is DisagreementStatus.CONTRADICTION]
            await books.payouts.add_history(
                [
                    (c.disagreement.payout.id, HistoryEntry(p.state, p.state, self.worker_id, reason=c.detail[:1000]))
                    for c in raised
                    if (p := current[c.disagreement.payout.id])
                ],
                at=now,
            )
        for c in written:
            self._counted(c, current[c.disagreement.payout.id])
        return len(written)

    def _counted(self, c: Conclusion, payout: Payout) -> None:
        d = c.disagreement
        if c.status is DisagreementStatus.CONTRADICTION:
            log.error(
                "a provider contradicts a payout's final state: a person decides (docs/runbooks/"
                "final-state-contradicted.md)",
                extra={"payout_id": payout.id, "disagreement": d.id, "state": payout.state.value},
            )
        if self.metrics is None:
            return
        outcome = "ask_again" if c.status is DisagreementStatus.CHECKING else c.status.value
        self.metrics.disagreement_checks.labels(d.provider, outcome).inc()
        if c.status is DisagreementStatus.CONTRADICTION:
            self.metrics.contradictions.labels("payout", payout.state.value, d.reported.value).inc()


__all__ = ["CheckDisagreements"]
