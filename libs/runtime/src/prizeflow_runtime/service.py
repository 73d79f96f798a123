"""`ServiceRuntime`: the parts every service composes in its `bootstrap.py`.

Engine and sessions, the idempotent producer, the outbox relay, the FastStream broker with reliable
consumers, metrics and the HTTP app. Nothing starts at construction; `start()`/`stop()` are driven by the
HTTP app's lifespan, so one process serves HTTP, consumes Kafka and relays its outbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer
from litestar import Litestar
from litestar.di import Provide
from litestar.types import ControllerRouterHandler
from prometheus_client import CollectorRegistry
from sqlalchemy import text

from prizeflow_contracts.topics import ALL_TOPICS, Topic
from prizeflow_runtime.admin_http import DeadLettersController
from prizeflow_runtime.auth import TokenVerifier, token_verifier
from prizeflow_runtime.broker import attach_consumer, create_broker, ensure_topics
from prizeflow_runtime.consumer import BatchHandler, EventHandler, ReliableConsumer
from prizeflow_runtime.db import create_engine, session_factory
from prizeflow_runtime.dead_letters import DeadLetterAdmin, RefusalHook
from prizeflow_runtime.http import create_app
from prizeflow_runtime.metrics import RuntimeMetrics
from prizeflow_runtime.outbox import OutboxRelay, idempotent_producer
from prizeflow_runtime.settings import ServiceSettings

log = logging.getLogger(__name__)


# A poll of thousands of events allocates millions of short-lived objects, most of them still referenced
# until the poll's transaction commits. With CPython's default thresholds (700, 10, 10) that triggers
# hundreds of collections per poll, the full ones scanning every long-lived object in the process: about
# a third of the consumer's CPU time in the settlement benchmark. Larger thresholds plus freezing what
# start-up allocated keep the collector (cycles are still collected) off the hot path.
GC_THRESHOLDS = (50_000, 20, 100)


_gc_tuned = False


def tune_gc(thresholds: tuple[int, int, int] = GC_THRESHOLDS) -> None:
    """Move start-up objects to the permanent generation (once per process), raise the thresholds."""
    global _gc_tuned  # noqa: PLW0603 - a process-wide setting, applied once
    if not _gc_tuned:
        _gc_tuned = True
        gc.collect()
        gc.freeze()
    gc.set_threshold(*thresholds)


@dataclass(frozen=True)
class _ConsumerSpec:
    name: str
    topics: tuple[str, ...]
    handler: EventHandler | None
    batch_handler: BatchHandler | None
    partition_lanes: bool
    on_refusal: RefusalHook | None


class ServiceRuntime:
    """Owns the process-wide clients. aiokafka clients need a running loop, so they are built in `start()`."""

    def __init__(self, settings: ServiceSettings, *, registry: CollectorRegistry | None = None) -> None:
        self.settings = settings
        self.registry = registry or CollectorRegistry()
        self.metrics = RuntimeMetrics.create(settings.service_name, self.registry)
        self.engine = create_engine(settings.database_url, pool_size=settings.database_pool_size)
        self.sessions = session_factory(self.engine)
        self.broker = create_broker(settings.kafka_bootstrap_servers, client_id=settings.service_name)
        self.consumers: list[ReliableConsumer] = []
        self._consumer_specs: list[_ConsumerSpec] = []
        self._producer: AIOKafkaProducer | None = None
        self._relay: OutboxRelay | None = None
        self._relay_task: asyncio.Task[None] | None = None
        # Built from validated settings, no I/O: the JWKS is fetched when the first token arrives.
        self.auth: TokenVerifier | None = token_verifier(settings) if settings.verifies_tokens else None

    @property
    def producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            raise RuntimeError("the Kafka producer exists once ServiceRuntime.start() has run")
        return self._producer

    def add_consumer(
        self,
        name: str,
        topics: Sequence[str],
        *,
        handler: EventHandler | None = None,
        batch_handler: BatchHandler | None = None,
        partition_lanes: bool = False,
        on_refusal: RefusalHook | None = None,
    ) -> None:
        """Declare a consumer; it is built and subscribed in `start()`. Name = inbox key and group id.

        `partition_lanes`: the handler's aggregates are keyed like the topic (no two partitions touch the
        same rows), so a poll may be applied as `CONSUMER_LANES` concurrent transactions, one per lane of
        partitions. `on_refusal` runs in the transaction that records a new dead letter.
        """
        if (handler is None) == (batch_handler is None):
            raise ValueError(f"consumer {name}: give exactly one of handler or batch_handler")
        self._consumer_specs.append(
            _ConsumerSpec(name, tuple(topics), handler, batch_handler, partition_lanes, on_refusal)
        )

    def topic(self, name: str) -> str:
        """The physical topic name: the contract's name plus this deployment's suffix (empty in production)."""
        return name + self.settings.kafka_topic_suffix

    async def start(self) -> None:
        s = self.settings
        suffix = s.kafka_topic_suffix
        topics = [Topic(t.name + suffix, t.producer, t.events, t.partitions) for t in ALL_TOPICS]
        await ensure_topics(s.kafka_bootstrap_servers, topics)
        self._producer = idempotent_producer(s.kafka_bootstrap_servers, client_id=f"{s.service_name}-producer")
        await self._producer.start()
        for spec in self._consumer_specs:
            consumer = ReliableConsumer(
                name=spec.name,
                topics=[self.topic(t) for t in spec.topics],
                session_factory=self.sessions,
                handler=spec.handler,
                batch_handler=spec.batch_handler,
                retry=s.consumer_retry,
                metrics=self.metrics,
                lanes=s.consumer_lanes if spec.partition_lanes else 1,
                topic_suffix=suffix,
                on_refusal=spec.on_refusal,
            )
            attach_consumer(self.broker, consumer, max_records=s.consumer_batch_size, group_id=spec.name + suffix)
            self.consumers.append(consumer)
        await self.broker.start()
        if s.outbox_relay == "inline":
            self._relay = OutboxRelay(
                database_url=s.database_url,
                producer=self._producer,
                metrics=self.metrics,
                batch_size=s.outbox_batch_size,
                poll_interval=s.outbox_poll_interval_ms / 1000,
                topic_suffix=suffix,
            )
            self._relay_task = asyncio.create_task(self._relay.run(), name="outbox-relay")
        tune_gc()
        log.info("service started", extra={"consumers": [c.name for c in self.consumers]})

    async def stop(self) -> None:
        await self.broker.stop()
        if self._relay is not None:
            await self._relay.stop()
        if self._relay_task is not None:
            self._relay_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._relay_task
        if self._producer is not None:
            await self._producer.stop()
        await self.engine.dispose()

    async def database_ready(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def kafka_ready(self) -> None:
        await self.producer.client.fetch_all_metadata()

    def dead_letter_admin(self) -> DeadLetterAdmin:
        """Dead letters of this process's consumers (those are known once `start()` built them)."""
        return DeadLetterAdmin(
            sessions=self.sessions,
            consumers=lambda: {c.name: c for c in self.consumers},
            service=self.settings.service_name,
            source=self.settings.source,
        )

    def http_app(
        self,
        route_handlers: Sequence[ControllerRouterHandler] = (),
        *,
        dependencies: dict[str, Any] | None = None,
        dead_letter_routes: bool = True,
    ) -> Litestar:
        """The service's app; a service with consumers also serves `/admin/dead-letters` unless it has no inbound
        API by design (the signer: its dead letters are decided in its database, by its operators)."""
        handlers = list(route_handlers)
        deps = dict(dependencies or {})
        if self._consumer_specs and dead_letter_routes:
            admin = self.dead_letter_admin()
            handlers.append(DeadLettersController)
            deps["dead_letters"] = Provide(lambda: admin, sync_to_thread=False)
        return create_app(
            service_name=self.settings.service_name,
            route_handlers=handlers,
            registry=self.registry,
            readiness=[self.database_ready, self.kafka_ready],
            auth=self.auth,
            dependencies=deps,
            on_startup=[self.start],
            on_shutdown=[self.stop],
        )


def serve(app: Litestar, settings: ServiceSettings) -> None:
    """Run the service's HTTP app (and with it, its consumers and relay) until SIGTERM/SIGINT."""
    import uvicorn

    uvicorn.run(app, host=settings.http_host, port=settings.http_port, loop="uvloop", log_config=None, access_log=False)
