"""`ProviderCalls`: one call to a rail, bounded in time and in how many run at once, its answer as a `Call`.

Shared by the jobs that ask providers (`PayoutWorker` creates and syncs, `CheckDisagreements` reads the status a
report disagreed with): every failure of a call becomes a stable code, a timeout an unknown outcome.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from prizeflow_contracts.errors import PayoutError, PayoutErrorCode, PayoutProviderError
from prizeflow_contracts.providers import ProviderPayoutResult
from prizeflow_payouts.application.metrics import PayoutMetrics
from prizeflow_payouts.application.ports import CreateOutcome
from prizeflow_payouts.application.registry import ProviderEntry, ProviderRegistry
from prizeflow_payouts.domain.payout import Payout

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Call:
    kind: str  # create | sync
    started: datetime
    finished: datetime
    result: ProviderPayoutResult | None = None
    error: PayoutError | None = None
    deferred: bool = False  # not created: the player's screening waits (`_deferred`)


class ProviderCalls:
    def __init__(
        self,
        registry: ProviderRegistry,
        *,
        timeout_s: float,
        concurrency: int,
        metrics: PayoutMetrics | None = None,
    ) -> None:
        self.registry = registry
        self.timeout_s = timeout_s
        self.metrics = metrics
        self._sem = asyncio.Semaphore(concurrency)

    async def create(self, entry: ProviderEntry, recs: Sequence[Payout]) -> list[Call]:
        provider = entry.provider
        started = datetime.now(UTC)
        t0 = time.perf_counter()
        if (batch := entry.rail.batch) is not None:
            outcomes: Sequence[CreateOutcome | BaseException]
            try:
                async with self._sem:
                    outcomes = await asyncio.wait_for(
                        batch.create_payouts([r.instruction() for r in recs]), self.timeout_s
                    )
            except Exception as err:  # noqa: BLE001 - every failure of the call becomes a stable code below
                outcomes = [err] * len(recs)
            if self.metrics is not None:
                self.metrics.submit_seconds.labels(entry.name).observe(time.perf_counter() - t0)
            return [self._call("create", started, o, entry) for o in outcomes]

        async def one(rec: Payout) -> Call:
            t1 = time.perf_counter()
            begun = datetime.now(UTC)
            try:
                async with self._sem:
                    out: CreateOutcome | BaseException = await asyncio.wait_for(
                        provider.create_payout(rec.instruction()), self.timeout_s
                    )
            except Exception as err:  # noqa: BLE001
                out = err
            if self.metrics is not None:
                self.metrics.submit_seconds.labels(entry.name).observe(time.perf_counter() - t1)
            return self._call("create", begun, out, entry)

        return list(await asyncio.gather(*(one(r) for r in recs)))

    async def sync(self, rec: Payout) -> Call:
        entry = self.registry.get(rec.provider_name)
        started = datetime.now(UTC)
        try:
            async with self._sem:
                out: CreateOutcome | BaseException = await asyncio.wait_for(
                    entry.provider.sync_status(rec.lookup()), self.timeout_s
                )
        except Exception as err:  # noqa: BLE001
            out = err
        return self._call("sync", started, out, entry)

    def _call(self, kind: str, started: datetime, out: CreateOutcome | BaseException, entry: ProviderEntry) -> Call:
        call = Call(kind, started, datetime.now(UTC))
        provider = entry.name
        if isinstance(out, ProviderPayoutResult):
            call.result = out
        elif isinstance(out, PayoutProviderError):
            call.error = out.error
        elif isinstance(out, TimeoutError):
            call.error = PayoutError.of(
                PayoutErrorCode.TIMEOUT_UNKNOWN_OUTCOME,
                f"no answer within {self.timeout_s}s",
                provider=provider,
            )
        else:
            # The rail's one reading of what its client raised (`Rail.errors`); a create it cannot read stays unknown.
            log.error("provider %s raised an error of its client", provider, exc_info=out)
            call.error = entry.rail.errors.classify(out, mutating=kind == "create")
            if kind == "create" and call.error.code is PayoutErrorCode.PAYOUT_NOT_FOUND:
                call.error = PayoutError.of(
                    PayoutErrorCode.TIMEOUT_UNKNOWN_OUTCOME,
                    f"unexpected provider error (outcome unknown): {type(out).__name__}",
                    provider=provider,
                )
        if self.metrics is not None:
            outcome = call.result.status.value if call.result else "error"
            self.metrics.attempts.labels(provider, kind, outcome).inc()
            if call.error is not None:
                self.metrics.provider_errors.labels(provider, call.error.code.value).inc()
            elif call.result is not None and call.result.error is not None:
                self.metrics.provider_errors.labels(provider, call.result.error.code.value).inc()
        return call


__all__ = ["Call", "ProviderCalls"]
