"""PruneDeliveries: deliveries are kept for their retention, then deleted (ADR 0008).

A delivery row keeps a provider callback's raw body and its dedup key `(provider, provider_event_id)`. Past the
providers' retry window a redelivery cannot come (and a replayed old callback is refused by its signature's
timestamp), so the row has no further use: its event lives on in Kafka and in the consumers' state.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from prizeflow_webhooks.application.ports import DeliveryRetention

log = logging.getLogger(__name__)


@dataclass
class PruneDeliveries:
    store: DeliveryRetention
    retention: timedelta
    batch: int = 10_000
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    async def __call__(self) -> int:
        """Delete every delivery past the retention, batch by batch (short transactions); how many went."""
        cutoff = self.clock() - self.retention
        total = 0
        while True:
            deleted = await self.store.delete_received_before(cutoff, limit=self.batch)
            total += deleted
            if deleted < self.batch:
                break
        if total:
            log.info("deliveries past their retention deleted", extra={"deleted": total})
        return total


__all__ = ["PruneDeliveries"]
