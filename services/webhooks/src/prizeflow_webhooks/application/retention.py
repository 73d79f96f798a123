"""PruneDeliveries: deliveries are kept for their retention, then deleted (ADR 0008), a job on the scheduler.

A delivery row keeps a provider callback's raw body and its dedup key `(provider, provider_event_id)`. Past the
providers' retry window a redelivery cannot come (and a replayed old callback is refused by its signature's
timestamp), so the row has no further use: its event lives on in Kafka and in the consumers' state. Every replica
runs the job: each deletes rows the others have not locked.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from prizeflow_runtime.jobs import Tick
from prizeflow_runtime.uow import UnitOfWork
from prizeflow_webhooks.application.books import Books

log = logging.getLogger(__name__)


@dataclass
class PruneDeliveries:
    uow: UnitOfWork[Books]
    retention: timedelta
    batch: int = 10_000
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    async def tick(self) -> Tick:
        """One batch (a short transaction); a full one is followed at once, the rest wait for the interval."""
        deleted = await self._prune(self.clock() - self.retention)
        return 0 if deleted >= self.batch else deleted > 0

    async def __call__(self) -> int:
        """Everything past the retention now, batch by batch; how many went."""
        cutoff = self.clock() - self.retention
        total, deleted = 0, self.batch
        while deleted >= self.batch:
            deleted = await self._prune(cutoff)
            total += deleted
        return total

    async def _prune(self, cutoff: datetime) -> int:
        async with self.uow() as books:
            deleted = await books.deliveries.delete_received_before(cutoff, limit=self.batch)
        if deleted:
            log.info("deliveries past their retention deleted", extra={"deleted": deleted})
        return deleted


__all__ = ["PruneDeliveries"]
