"""`RefreshPayoutGauges`: the payout gauges read from the database (every replica exports the same figures) and
the rails' progress: a job on the runtime's scheduler (every `gauges_interval_s`); the rails' balances at their
providers, an HTTP call each, at most every `balances_every_s`."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from prizeflow_payouts.application.balances import read_balances
from prizeflow_payouts.application.books import Books
from prizeflow_payouts.application.gate import PayoutGate
from prizeflow_payouts.application.metrics import PayoutMetrics
from prizeflow_payouts.application.ports import STUCK_KINDS
from prizeflow_payouts.application.registry import ProviderRegistry
from prizeflow_runtime.uow import UnitOfWork

log = logging.getLogger(__name__)


class RefreshPayoutGauges:
    def __init__(
        self,
        *,
        uow: UnitOfWork[Books],
        registry: ProviderRegistry,
        unconfirmed_after_s: float,
        operator_after_s: float = 1800.0,
        metrics: PayoutMetrics | None = None,
        gate: PayoutGate | None = None,
        balances_every_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`unconfirmed_after_s`: a payout submitted longer ago is `unconfirmed` (the reconcile interval).
        `operator_after_s`: an outcome unknown this long needs an operator (`unknown_outcome`), unless the rail says
        otherwise (`RailTerms.operator_after_s`). `balances_every_s`: how often the providers are asked their
        balances (the low-balance alert waits 5 minutes; a provider's balance API is rate-limited)."""
        self.uow = uow
        self.registry = registry
        self.unconfirmed_after_s = unconfirmed_after_s
        self.operator_after_s = operator_after_s
        self.metrics = metrics
        self.gate = gate
        self._stuck_seen: set[tuple[str, str]] = set()
        self.balances_every_s = balances_every_s
        self._clock = clock
        self._balances_read_at: float | None = None

    async def tick(self) -> bool:
        await self.refresh()
        return True

    async def refresh(self) -> dict[str, int]:
        """The gauges read from the database (every replica exports the same figures); returns the totals."""
        async with self.uow() as books:
            counts = await books.gauges.counts()
            queue = await books.gauges.queue_length()
            contradictions = dict(await books.disagreements.open_contradictions())
            if self.gate is not None:
                await self.gate.refresh_held(books)
            stuck = await books.gauges.stuck(
                submitted_older_s=self.unconfirmed_after_s,
                operator_after_s=self.operator_thresholds(),
                default_operator_after_s=self.operator_after_s,
            )
        totals = dict.fromkeys(STUCK_KINDS, 0)
        for kind, _, count in stuck:
            totals[kind] += count
        if self.metrics is not None:
            self.metrics.payouts.clear()
            for state, provider, count in counts:
                self.metrics.payouts.labels(state, provider).set(count)
            self.metrics.queue_length.set(queue)
            for name in {e.name for e in self.registry} | set(contradictions):
                self.metrics.contradictions_open.labels(name).set(contradictions.get(name, 0))
            self._stuck_gauges(self.metrics, stuck)
            await self._progress_gauges(self.metrics)
            now = self._clock()
            if self._balances_read_at is None or now - self._balances_read_at >= self.balances_every_s:
                self._balances_read_at = now
                await self._balance_gauges(self.metrics)
        if any(totals.values()):
            log.warning(
                "reconciler: payouts waiting on recovery or an operator (docs/runbooks/payouts-awaiting-operator.md)",
                extra=totals,
            )
        return {"queue": queue, "contradictions": sum(contradictions.values()), **totals}

    def operator_thresholds(self) -> dict[str, float]:
        """Each configured provider's operator threshold: its own (`RailTerms.operator_after_s`), else the worker's."""
        return {
            e.name: self.operator_after_s if (after := e.rail.terms.operator_after_s) is None else after
            for e in self.registry
        }

    def _stuck_gauges(self, metrics: PayoutMetrics, stuck: Sequence[tuple[str, str, int]]) -> None:
        """Every configured provider, and any provider seen before, gets each kind (0 when nothing waits), so an
        alert's series never vanishes when the last payout is resolved; never cleared, so never briefly absent."""
        values = {(kind, e.name): 0 for e in self.registry for kind in STUCK_KINDS}
        values.update(dict.fromkeys(self._stuck_seen, 0))
        values.update({(kind, provider): count for kind, provider, count in stuck})
        for (kind, provider), count in values.items():
            metrics.stuck.labels(kind, provider).set(count)
        self._stuck_seen = set(values)

    async def _progress_gauges(self, metrics: PayoutMetrics) -> None:
        """Each rail's source accounts (sequence, last landing) and its oldest waiting payout, from its books: every
        replica reports the same figures. A rail that cannot answer keeps its last ones."""
        for entry in self.registry:
            if (rail := entry.rail.progress) is None:
                continue
            try:
                progress = await rail.progress()
            except Exception as err:  # noqa: BLE001 - a gauge refresh never stops the worker
                log.warning("progress of %s unavailable: %s", entry.name, type(err).__name__)
                continue
            for source in progress.sources:
                metrics.source_sequence.labels(entry.name, source.account).set(source.sequence)
                metrics.source_advanced.labels(entry.name, source.account).set(source.advanced_at)
            metrics.oldest_waiting.labels(entry.name).set(progress.oldest_waiting_s)

    async def _balance_gauges(self, metrics: PayoutMetrics) -> None:
        """Each rail's balance at the provider (and the operator's threshold for it). A rail that cannot answer
        keeps its last figures: an outage shows in the provider error alerts, not as a balance of 0."""
        for name, read in (await read_balances(self.registry, timeout_s=None)).items():
            for balance in read.balances:  # none when unreadable: the last figures stay
                metrics.provider_balance.labels(name, balance.currency).set(balance.available)
                if balance.low_below is not None:
                    metrics.provider_balance_low.labels(name, balance.currency).set(balance.low_below)


__all__ = ["RefreshPayoutGauges"]
