"""`ServiceRuntime`: the parts every service composes in its `bootstrap.py`.

Engine and sessions, the idempotent producer, the outbox relay, the FastStream broker with reliable
consumers, metrics and the HTTP app. Nothing starts at construction; `start()`/`stop()` are driven by the
HTTP app's lifespan, so one process serves HTTP, consumes Kafka and relays its outbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

from litestar import Litestar
from litestar.types import ControllerRouterHandler
from prometheus_client import CollectorRegistry
from sqlalchemy import text

from prizeflow_contracts.topics import ALL_TOPICS, Topic
from prizeflow_runtime.auth import JwtConfig
from prizeflow_runtime.broker import attach_consumer, create_broker, ensure_topics
from prizeflow_runtime.consumer import BatchHandler, EventHandler, ReliableConsumer
from prizeflow_runtime.db import create_engine, session_factory
from prizeflow_runtime.http import create_app
from prizeflow_runtime.metrics import RuntimeMetrics
from prizeflow_runtime.outbox import OutboxRelay, idempotent_producer
from prizeflow_runtime.settings import ServiceSettings

log = logging.getLogger(__name__)


class ServiceRuntime:
    def __init__(self, settings: ServiceSettings, *, registry: CollectorRegistry | None = None) -> None:
        self.settings = settings
        self.registry = registry or CollectorRegistry()
        self.metrics = RuntimeMetrics.create(settings.service_name, self.registry)
        self.engine = create_engine(settings.database_url, pool_size=settings.database_pool_size)
        self.sessions = session_factory(self.engine)
        self.producer = idempotent_producer(
            settings.kafka_bootstrap_servers, client_id=f"{settings.service_name}-producer"
        )
        self.relay = OutboxRelay(
            database_url=settings.database_url,
            producer=self.producer,
            metrics=self.metrics,
            batch_size=settings.outbox_batch_size,
            poll_interval=settings.outbox_poll_interval_ms / 1000,
            topic_suffix=settings.kafka_topic_suffix,
        )
        self.broker = create_broker(settings.kafka_bootstrap_servers, client_id=settings.service_name)
        self.consumers: list[ReliableConsumer] = []
        self._relay_task: asyncio.Task[None] | None = None

    @property
    def jwt(self) -> JwtConfig:
        s = self.settings
        return JwtConfig(secret=s.jwt_secret.get_secret_value(), issuer=s.jwt_issuer, audience=s.jwt_audience)

    def add_consumer(
        self,
        name: str,
        topics: Sequence[str],
        *,
        handler: EventHandler | None = None,
        batch_handler: BatchHandler | None = None,
    ) -> ReliableConsumer:
        consumer = ReliableConsumer(
            name=name,
            topics=[self.topic(t) for t in topics],
            session_factory=self.sessions,
            producer=self.producer,
            handler=handler,
            batch_handler=batch_handler,
            retry=self.settings.consumer_retry,
            metrics=self.metrics,
        )
        attach_consumer(
            self.broker,
            consumer,
            max_records=self.settings.consumer_batch_size,
            group_id=name + self.settings.kafka_topic_suffix,
        )
        self.consumers.append(consumer)
        return consumer

    def topic(self, name: str) -> str:
        """The physical topic name: the contract's name plus this deployment's suffix (empty in production)."""
        return name + self.settings.kafka_topic_suffix

    async def start(self) -> None:
        suffix = self.settings.kafka_topic_suffix
        topics = [Topic(t.name + suffix, t.producer, t.events, t.partitions) for t in ALL_TOPICS]
        await ensure_topics(self.settings.kafka_bootstrap_servers, topics)
        await self.producer.start()
        await self.broker.start()
        self._relay_task = asyncio.create_task(self.relay.run(), name="outbox-relay")
        log.info("service started", extra={"consumers": [c.name for c in self.consumers]})

    async def stop(self) -> None:
        await self.broker.stop()
        await self.relay.stop()
        if self._relay_task is not None:
            self._relay_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._relay_task
        await self.producer.stop()
        await self.engine.dispose()

    async def database_ready(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def kafka_ready(self) -> None:
        await self.producer.client.fetch_all_metadata()

    def http_app(
        self,
        route_handlers: Sequence[ControllerRouterHandler] = (),
        *,
        dependencies: dict[str, Any] | None = None,
    ) -> Litestar:
        return create_app(
            service_name=self.settings.service_name,
            route_handlers=route_handlers,
            registry=self.registry,
            readiness=[self.database_ready, self.kafka_ready],
            jwt=self.jwt,
            dependencies=dependencies,
            on_startup=[self.start],
            on_shutdown=[self.stop],
        )


def serve(app: Litestar, settings: ServiceSettings) -> None:
    """Run the service's HTTP app (and with it, its consumers and relay) until SIGTERM/SIGINT."""
    import uvicorn

    uvicorn.run(app, host=settings.http_host, port=settings.http_port, log_config=None, access_log=False)
