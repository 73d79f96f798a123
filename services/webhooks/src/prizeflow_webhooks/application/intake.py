"""DeliveryIntake: the ingress's `DeliveryWriter`, a group commit over the unit of work.

Deliveries that arrive while a transaction is in flight share the next one (`prizeflow_runtime.group_commit`):
ONE insert takes the dedup keys of the whole batch, the events of the deliveries it stored are staged in the same
transaction, then every waiting request learns its own outcome. Each request still answers only after its own
delivery committed; under load a commit carries hundreds of them, so the per-request cost of a transaction (round
trips, WAL flush) vanishes. A batch that fails for one delivery's sake is halved until that one fails alone; an
outage fails the whole batch (each request answers 503 and the provider delivers again).
"""

from __future__ import annotations

from collections.abc import Sequence

from prizeflow_contracts.envelope import StagedEvent
from prizeflow_runtime.group_commit import GroupCommit
from prizeflow_runtime.uow import UnitOfWork
from prizeflow_webhooks.application.books import Books
from prizeflow_webhooks.application.metrics import WebhooksMetrics
from prizeflow_webhooks.application.ports import DeliveryLookup, NewDelivery

Delivered = tuple[NewDelivery, StagedEvent | None]


class DeliveryIntake:
    def __init__(
        self,
        uow: UnitOfWork[Books],
        lookup: DeliveryLookup,
        *,
        max_batch: int = 500,
        concurrency: int = 2,
        metrics: WebhooksMetrics | None = None,
    ) -> None:
        self.uow = uow
        self.lookup = lookup
        self.metrics = metrics
        self._group: GroupCommit[Delivered, bool] = GroupCommit(
            self._commit, name="deliveries", max_batch=max_batch, concurrency=concurrency, observe=self._observe
        )

    async def write(self, delivery: NewDelivery, event: StagedEvent | None) -> bool:
        """True once the delivery (and its event) committed; False if its dedup key was stored already."""
        return await self._group.submit((delivery, event))

    async def seen(self, provider: str, provider_event_id: str) -> bool:
        return await self.lookup.seen(provider, provider_event_id)

    async def _commit(self, batch: Sequence[Delivered]) -> list[bool]:
        # Within a batch the first delivery of a key is the one stored; later ones are duplicates.
        first: dict[tuple[str, str], int] = {}
        for i, (d, _) in enumerate(batch):
            first.setdefault((d.provider, d.provider_event_id), i)
        async with self.uow() as books:
            stored = await books.deliveries.insert_new([batch[i][0] for i in first.values()])
            events = [e for key, i in first.items() if key in stored and (e := batch[i][1]) is not None]
            await books.outbox.stage(events)
        return [
            first[(d.provider, d.provider_event_id)] == i and (d.provider, d.provider_event_id) in stored
            for i, (d, _) in enumerate(batch)
        ]

    def _observe(self, size: int, seconds: float) -> None:
        if self.metrics is not None:
            self.metrics.write_batch.observe(size)
            self.metrics.write_seconds.observe(seconds)

    async def stop(self) -> None:
        """Let the commits in flight finish (their requests are waiting for them)."""
        await self._group.stop()


__all__ = ["DeliveryIntake"]
