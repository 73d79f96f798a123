"""`DeliveryIntake` (the ingress's group commit over the unit of work) and `PruneDeliveries` (the retention job) on
the fake stores: concurrent deliveries share a transaction and each learns its own outcome, a delivery that breaks
its batch fails alone and leaves nothing behind, and the job's pace follows what it found."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from webhooks_fakes import NOW, FakeDeliveries, WebhooksFakes, new_delivery

from prizeflow_webhooks.application.intake import DeliveryIntake
from prizeflow_webhooks.application.ports import NewDelivery
from prizeflow_webhooks.application.retention import PruneDeliveries


class Lookup:
    def __init__(self, deliveries: FakeDeliveries) -> None:
        self.deliveries = deliveries

    async def seen(self, provider: str, provider_event_id: str) -> bool:
        keys = {(r.provider, r.provider_event_id) for r in self.deliveries.rows.values()}
        return (provider, provider_event_id) in keys


class PoisonedDeliveries(FakeDeliveries):
    """A row the database would refuse: the whole statement fails, whatever else it carried."""

    async def insert_new(self, deliveries: Sequence[NewDelivery]) -> set[tuple[str, str]]:
        stored = await super().insert_new(deliveries)
        if any(d.provider_event_id.startswith("poison") for d in deliveries):
            raise ValueError("value too long for type character varying(255)")
        return stored


def intake(fakes: WebhooksFakes, *, max_batch: int = 500) -> DeliveryIntake:
    return DeliveryIntake(fakes.uow, Lookup(fakes.deliveries), max_batch=max_batch, concurrency=1)


async def test_concurrent_deliveries_share_one_transaction_and_each_learns_its_outcome() -> None:
    fakes = WebhooksFakes()
    writer = intake(fakes)
    a, b, ignored = new_delivery("evt-a"), new_delivery("evt-b"), new_delivery("evt-c", published=False)
    outcomes = await asyncio.gather(*(writer.write(*d) for d in (a, b, a, ignored)))
    assert outcomes == [True, True, False, True]  # the second `a` of the batch is its duplicate
    assert fakes.uow.commits == 1
    assert [e.id for e in fakes.outbox.staged] == [e.id for _, e in (a, b) if e is not None]  # nothing for ignored
    assert await writer.write(*a) is False  # stored already: nothing new, nothing staged
    assert len(fakes.outbox.staged) == 2
    assert await writer.seen("sandbox", "evt-a") is True
    assert await writer.seen("sandbox", "evt-z") is False


async def test_a_delivery_that_breaks_its_batch_fails_alone_and_leaves_nothing() -> None:
    fakes = WebhooksFakes(deliveries=PoisonedDeliveries())
    writer = intake(fakes)
    a, poison, b = new_delivery("evt-a"), new_delivery("poison-1"), new_delivery("evt-b")
    outcomes = await asyncio.gather(*(writer.write(*d) for d in (a, poison, b)), return_exceptions=True)
    assert outcomes[0] is True
    assert isinstance(outcomes[1], ValueError)
    assert outcomes[2] is True
    assert sorted(r.provider_event_id for r in fakes.deliveries.rows.values()) == ["evt-a", "evt-b"]
    assert sorted(str(e.id) for e in fakes.outbox.staged) == sorted(str(e.id) for _, e in (a, b) if e is not None)
    await writer.stop()


async def test_the_retention_job_prunes_a_batch_a_pass_and_comes_back_at_once_while_batches_are_full() -> None:
    fakes = WebhooksFakes()
    now = datetime.fromtimestamp(NOW, UTC)
    ages = [40, 35, 31, 29, 1]
    old = [new_delivery(f"evt-{n}", received_at=now - timedelta(days=d))[0] for n, d in enumerate(ages)]
    await fakes.deliveries.insert_new(old)
    prune = PruneDeliveries(fakes.uow, retention=timedelta(days=30), batch=2, clock=lambda: now)
    assert await prune.tick() == 0  # a full batch: again at once
    assert await prune.tick() is True  # the last old one: again after the interval
    assert await prune.tick() is False  # nothing to do
    assert sorted(r.provider_event_id for r in fakes.deliveries.rows.values()) == ["evt-3", "evt-4"]


@pytest.mark.parametrize("batch", [1, 2, 10])
async def test_pruning_now_takes_everything_past_the_retention_whatever_the_batch(batch: int) -> None:
    fakes = WebhooksFakes()
    now = datetime.fromtimestamp(NOW, UTC)
    month_old = now - timedelta(days=31)
    await fakes.deliveries.insert_new([new_delivery(f"evt-{n}", received_at=month_old)[0] for n in range(4)])
    prune = PruneDeliveries(fakes.uow, retention=timedelta(days=30), batch=batch, clock=lambda: now)
    assert await prune() == 4
    assert fakes.deliveries.rows == {}
