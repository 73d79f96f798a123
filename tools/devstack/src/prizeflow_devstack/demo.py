"""The outbox → Kafka → inbox path, live: a small process `make run` starts beside the services.

It commits a business row and its event in one transaction (outbox), lets the relay publish it, consumes
it back through a `ReliableConsumer` (inbox dedup) and applies it. To show the safety nets it also
re-sends some events a second time (a duplicate delivery) and, every `DEMO_MALFORMED_EVERY` pings (40; 0: never),
a malformed record (it lands in the DLQ with a reason). `make run` sets 0: there the DLQ is shown by the
simulator's chaos bursts, whose alert fires and then resolves, instead of one that would never stop firing.
Its /metrics feed the live view; `python -m prizeflow_devstack.demo`.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
from typing import ClassVar

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from prizeflow_contracts.envelope import Envelope, EventPayload, new_event
from prizeflow_contracts.topics import Topic
from prizeflow_runtime.broker import ensure_topics
from prizeflow_runtime.db import create_messaging_schema
from prizeflow_runtime.logging import configure_logging
from prizeflow_runtime.outbox import add_event
from prizeflow_runtime.service import ServiceRuntime, serve
from prizeflow_runtime.settings import ServiceSettings, settings_or_exit

log = logging.getLogger("prizeflow.demo")

DEMO_TOPIC = Topic("prizeflow.demo.pings.v1", "demo", ("PingSent",), partitions=3)


class PingSent(EventPayload):
    EVENT_NAME: ClassVar[str] = "PingSent"
    TOPIC: ClassVar[Topic] = DEMO_TOPIC

    ping_id: int
    amount: int


SCHEMA = (
    "CREATE TABLE IF NOT EXISTS demo_pings (ping_id bigint PRIMARY KEY, amount bigint NOT NULL CHECK (amount >= 0))",
    "CREATE TABLE IF NOT EXISTS demo_applied (ping_id bigint PRIMARY KEY, amount bigint NOT NULL)",
)


async def apply_ping(session: AsyncSession, envelope: Envelope[EventPayload]) -> None:
    data = envelope.data
    assert isinstance(data, PingSent)
    await session.execute(
        text("INSERT INTO demo_applied VALUES (:id, :amount)"), {"id": data.ping_id, "amount": data.amount}
    )


class Demo:
    def __init__(self, rt: ServiceRuntime, rate: float, malformed_every: int = 40) -> None:
        self.rt = rt
        self.rate = rate
        self.malformed_every = malformed_every
        self._task: asyncio.Task[None] | None = None

    async def prepare(self) -> None:
        """Schema and topic before the runtime starts: it verifies its topics, it does not create them (this
        one is the demo's own, outside the contracts' table, so `prizeflow-dev topics` does not know it)."""
        await create_messaging_schema(self.rt.engine)
        async with self.rt.engine.begin() as conn:
            for ddl in SCHEMA:
                await conn.execute(text(ddl))
        topic = Topic(self.rt.topic(DEMO_TOPIC.name), DEMO_TOPIC.producer, DEMO_TOPIC.events, DEMO_TOPIC.partitions)
        await ensure_topics(self.rt.settings.kafka_bootstrap_servers, [topic])

    async def start(self) -> None:
        self._task = asyncio.create_task(self._produce(), name="demo-producer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _produce(self) -> None:
        async with self.rt.engine.connect() as conn:
            start = int(await conn.scalar(text("SELECT coalesce(max(ping_id), 0) FROM demo_pings")) or 0) + 1
        for ping_id in itertools.count(start):
            envelope = new_event(
                PingSent(ping_id=ping_id, amount=ping_id % 100),
                source=self.rt.settings.source,
                correlation_id=f"demo-{ping_id % 16}",
            )
            async with self.rt.sessions() as session, session.begin():
                await session.execute(
                    text("INSERT INTO demo_pings VALUES (:id, :amount)"), {"id": ping_id, "amount": ping_id % 100}
                )
                await add_event(session, envelope)
            if ping_id % 25 == 0:  # a duplicate delivery: the inbox must absorb it
                await self.rt.producer.send_and_wait(
                    self.rt.topic(DEMO_TOPIC.name), envelope.encode(), key=envelope.key, headers=envelope.headers()
                )
            if self.malformed_every and ping_id % self.malformed_every == 0:  # it must land in the DLQ with a reason
                await self.rt.producer.send_and_wait(self.rt.topic(DEMO_TOPIC.name), b"{not an event", key=b"bad")
            await asyncio.sleep(1 / self.rate)


class DemoSettings(ServiceSettings):
    service_name: str = "demo"


def main() -> None:
    settings = settings_or_exit(DemoSettings, "prizeflow-demo")
    configure_logging("demo", level=settings.log_level, json_output=settings.log_json)
    rt = ServiceRuntime(settings)
    rt.add_consumer("demo-applier", [DEMO_TOPIC.name], handler=apply_ping)
    rt.produces([DEMO_TOPIC.name])
    demo = Demo(
        rt,
        rate=float(os.environ.get("DEMO_RATE", "20")),
        malformed_every=int(os.environ.get("DEMO_MALFORMED_EVERY", "40")),
    )
    app = rt.http_app()
    app.on_startup.insert(0, demo.prepare)
    rt.after_start(demo.start)  # it publishes through the runtime's producer, which exists once started
    app.on_shutdown.insert(0, demo.stop)
    serve(app, settings)


if __name__ == "__main__":
    main()
