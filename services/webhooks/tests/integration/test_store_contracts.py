"""The stores' contract: each test runs against the in-memory fakes the unit tests use (`tests/support`) and against
their PostgreSQL implementations on a migrated database (pyeventsourcing's abstract recorder tests: one body of
tests, one fixture per implementation). The stores of `Books` through the same unit of work; the ingress's writer
as `ReceiveWebhook` sees it (`FakeWriter` against `DeliveryIntake` on PostgreSQL)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from webhooks_fakes import NOW, FakeWriter, WebhooksFakes, new_delivery

from prizeflow_runtime.db import create_engine, session_factory
from prizeflow_runtime.sql_uow import SqlUnitOfWork
from prizeflow_runtime.uow import UnitOfWork
from prizeflow_webhooks.adapters.books import bind
from prizeflow_webhooks.adapters.queries_pg import SqlDeliveryQueries
from prizeflow_webhooks.application.books import Books
from prizeflow_webhooks.application.intake import DeliveryIntake
from prizeflow_webhooks.application.ports import DeliveryWriter

pytestmark = pytest.mark.integration

AT = datetime.fromtimestamp(NOW, UTC)


@dataclass
class Harness:
    """One implementation: the books' unit of work, the ingress's writer, and what the outbox holds (event ids)."""

    uow: UnitOfWork[Books]
    writer: DeliveryWriter
    staged: Callable[[], Awaitable[list[uuid.UUID]]]


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(db_url, pool_size=2)
    yield eng
    await eng.dispose()


@pytest.fixture(params=["fake", "sql"])
def harness(request: pytest.FixtureRequest) -> Harness:
    """Synchronous, so that only the SQL case asks for a database (`getfixturevalue`). The fake writer keeps its
    own deliveries and outbox (as `ReceiveWebhook`'s tests use it); the fake stores theirs."""
    if request.param == "fake":
        fakes, writer = WebhooksFakes(), FakeWriter()

        async def fake_staged() -> list[uuid.UUID]:
            return [e.id for e in [*fakes.outbox.staged, *writer.outbox]]

        return Harness(fakes.uow, writer, fake_staged)
    engine: AsyncEngine = request.getfixturevalue("engine")
    uow = SqlUnitOfWork(session_factory(engine), bind)

    async def sql_staged() -> list[uuid.UUID]:
        async with engine.connect() as conn:
            return list((await conn.execute(text("SELECT event_id FROM outbox ORDER BY seq"))).scalars())

    return Harness(uow, DeliveryIntake(uow, SqlDeliveryQueries(engine), concurrency=1), sql_staged)


async def test_a_dedup_key_is_taken_once_the_first_delivery_of_a_batch_wins(harness: Harness) -> None:
    a, again, b = new_delivery("evt-a")[0], new_delivery("evt-a", published=False)[0], new_delivery("evt-b")[0]
    async with harness.uow() as books:
        assert await books.deliveries.insert_new([a, again, b]) == {("sandbox", "evt-a"), ("sandbox", "evt-b")}
    async with harness.uow() as books:
        assert await books.deliveries.insert_new([new_delivery("evt-a")[0], new_delivery("evt-c")[0]]) == {
            ("sandbox", "evt-c")
        }
        assert await books.deliveries.insert_new([new_delivery("evt-a", provider="stripe")[0]]) == {("stripe", "evt-a")}
        assert await books.deliveries.insert_new([]) == set()


async def test_a_stored_delivery_is_locked_as_stored_and_counts_its_republications(harness: Harness) -> None:
    delivery = new_delivery("evt-a")[0]
    async with harness.uow() as books:
        await books.deliveries.insert_new([new_delivery("evt-0")[0], delivery])
    async with harness.uow() as books:
        found = [d for i in range(1, 10) if (d := await books.deliveries.lock(i)) is not None]
        assert await books.deliveries.lock(10_000) is None
    ((row_id, row),) = [(d.id, d) for d in found if d.provider_event_id == "evt-a"]
    assert (row.provider, row.outcome, row.correlation_id, row.republished) == ("sandbox", "published", "c-evt-a", 0)
    assert row.event_json is not None
    assert delivery.event_json is not None
    assert json.loads(row.event_json) == json.loads(delivery.event_json)
    async with harness.uow() as books:
        await books.deliveries.mark_republished(row_id, at=AT)
        await books.deliveries.mark_republished(row_id, at=AT)
    async with harness.uow() as books:
        again = await books.deliveries.lock(row_id)
    assert again is not None
    assert again.republished == 2


async def test_deliveries_past_a_cutoff_go_a_bounded_batch_at_a_time(harness: Harness) -> None:
    ages = [40, 35, 31, 29, 0]
    async with harness.uow() as books:
        await books.deliveries.insert_new(
            [new_delivery(f"evt-{n}", received_at=AT - timedelta(days=d))[0] for n, d in enumerate(ages)]
        )
    cutoff = AT - timedelta(days=30)
    deleted = []
    for _ in range(3):
        async with harness.uow() as books:
            deleted.append(await books.deliveries.delete_received_before(cutoff, limit=2))
    assert deleted == [2, 1, 0]
    async with harness.uow() as books:  # the newer ones keep their dedup keys
        assert await books.deliveries.insert_new([new_delivery("evt-3")[0], new_delivery("evt-0")[0]]) == {
            ("sandbox", "evt-0")
        }


async def test_a_rolled_back_delivery_leaves_no_row_and_no_event_and_frees_its_key(harness: Harness) -> None:
    delivery, event = new_delivery("evt-a")
    other = new_delivery("evt-b")[1]
    assert event is not None
    assert other is not None
    with pytest.raises(RuntimeError, match="crash"):
        async with harness.uow() as books:
            await books.deliveries.insert_new([delivery])
            await books.outbox.stage([event])
            raise RuntimeError("crash")
    assert await harness.staged() == []
    async with harness.uow() as books:
        assert await books.deliveries.insert_new([delivery]) == {("sandbox", "evt-a")}
        await books.outbox.stage([event, other])
    staged = await harness.staged()
    assert staged[0] == event.id
    assert len(staged) == 2


async def test_the_writer_stores_a_delivery_once_with_its_event(harness: Harness) -> None:
    a, ignored = new_delivery("evt-a"), new_delivery("evt-b", published=False)
    assert a[1] is not None
    assert await harness.writer.seen("sandbox", "evt-a") is False
    assert await harness.writer.write(*a) is True
    assert await harness.writer.write(*new_delivery("evt-a")) is False  # the same key again: nothing new
    assert await harness.writer.write(*ignored) is True
    assert await harness.writer.seen("sandbox", "evt-a") is True
    assert await harness.writer.seen("stripe", "evt-a") is False
    assert await harness.staged() == [a[1].id]  # one event, for the published one
