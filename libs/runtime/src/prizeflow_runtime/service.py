"""`ServiceRuntime`: the parts every service composes in its `bootstrap.py`.

Engine and sessions, the idempotent producer, the outbox relay, the FastStream broker with reliable
consumers, metrics and the HTTP app. Nothing starts at construction; `start()`/`stop()` are driven by the
HTTP app's lifespan, so one process serves HTTP, consumes Kafka and relays its outbox.

Start-up first checks the database's schema against the one the service was built for
(`prizeflow_runtime.schema_compat`): behind, ahead through a contract step or unknown, the process neither consumes
nor serves its API (503 `schema_incompatible`), and readiness names the service, the database's revision and the
expected one, until the right migrations or the right release arrive. Start-up never creates topics and never gives
up: it verifies that the topics this process consumes and
produces exist with their partitions (`prizeflow_runtime.topics`), then starts the Kafka clients, then the
service's `after_start` hooks, retrying with backoff while Kafka, PostgreSQL or a topic is missing. Until it
is through, the process serves `/health/live` and answers `/health/ready` with 503 naming what it waits for.
A process with consumers also checks its inbox dedup horizon against the consumed topics' retention (it never
consumes with a horizon Kafka can outlast, ADR 0008) and keeps the inbox's partitions: created ahead and dropped
past the horizon before its consumers start, then every `INBOX_MAINTENANCE_INTERVAL_S`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable, Collection, Hashable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from faststream.kafka import KafkaBroker
from litestar import Litestar
from litestar.types import ControllerRouterHandler
from prometheus_client import CollectorRegistry
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from prizeflow_contracts.envelope import Envelope, EventPayload
from prizeflow_contracts.topics import DLQ_SUFFIX
from prizeflow_runtime.auth import TokenVerifier, token_verifier
from prizeflow_runtime.broker import attach_consumer, create_broker
from prizeflow_runtime.consumer import BatchHandler, EventHandler, ReliableConsumer, unbound
from prizeflow_runtime.db import create_engine, read_schema_state, session_factory
from prizeflow_runtime.dead_letters import DeadLetterAdmin, RefusalHook
from prizeflow_runtime.gauges import LagReader, LagSource, RuntimeGauges
from prizeflow_runtime.http import NotReady, ReadinessCheck, readiness_failures
from prizeflow_runtime.inbox_retention import InboxHorizonError, InboxRetention, horizon_problems, maintain_inbox
from prizeflow_runtime.jobs import Scheduler
from prizeflow_runtime.kafka_security import KafkaAuthenticationError, KafkaSecurityError, authentication_problem
from prizeflow_runtime.metrics import RuntimeMetrics
from prizeflow_runtime.outages import is_outage
from prizeflow_runtime.outbox import (
    OutboxRelay,
    abandon_producer,
    idempotent_producer,
    oldest_pending_age,
    publish_after_commit,
)
from prizeflow_runtime.outbox_publisher import OutboxPublisher
from prizeflow_runtime.retry import backoff_delay
from prizeflow_runtime.schema_compat import ExpectedSchema, SchemaMismatchError, check_compatible
from prizeflow_runtime.serving import GC_THRESHOLDS, serve, service_app, tune_gc
from prizeflow_runtime.settings import ServiceSettings
from prizeflow_runtime.sql_uow import SqlUnitOfWork
from prizeflow_runtime.timeline import TimelineSource
from prizeflow_runtime.topics import TopicsNotReadyError, check_topics, required_topics, topic_retention_ms

log = logging.getLogger(__name__)


StartupHook = Callable[[], Awaitable[None]]
_FIRST_RETRY_S = 0.2
_PUBLISHER_DRAIN_S = 5.0


@dataclass(frozen=True)
class KafkaUsage:
    """The contract topics a process reads (per consumer group) and writes: what its Kafka ACLs must allow.
    Groups and topics carry no deployment suffix. Every consumed topic's `.dlq` is written too (a refusal's
    copy goes there through the outbox)."""

    consumes: dict[str, tuple[str, ...]]
    produces: tuple[str, ...]

    @property
    def writes(self) -> tuple[str, ...]:
        dlqs = [t + DLQ_SUFFIX for topics in self.consumes.values() for t in topics]
        return tuple(sorted({*self.produces, *dlqs}))

    @property
    def reads(self) -> tuple[str, ...]:
        return tuple(sorted({t for topics in self.consumes.values() for t in topics}))


@dataclass(frozen=True)
class _ConsumerSpec:
    name: str
    topics: tuple[str, ...]
    handler: EventHandler | None
    batch_handler: BatchHandler | None
    partition_lanes: bool
    on_refusal: RefusalHook | None
    lane_key: Callable[[Envelope[EventPayload]], Hashable] | None = None
    acts_on: frozenset[str] | None = None


class ServiceRuntime:
    """Owns the process-wide clients. aiokafka clients need a running loop, so they are built in `start()`."""

    def __init__(
        self,
        settings: ServiceSettings,
        *,
        registry: CollectorRegistry | None = None,
        schema: ExpectedSchema | None = None,
        bind: Callable[[AsyncSession], Any] | None = None,
    ) -> None:
        self.settings = settings
        # The schema this build runs against (None: a process without migrations of its own, e.g. a test app).
        self.schema = schema
        self.schema_refused: SchemaMismatchError | None = None
        self.registry = registry or CollectorRegistry()
        self.metrics = RuntimeMetrics.create(settings.service_name, self.registry)
        self.engine = create_engine(
            settings.database_url, pool_size=settings.database_pool_size, timeouts=settings.database_timeouts
        )
        self.sessions = session_factory(self.engine)
        # The service's stores on one session (`prizeflow_runtime.uow`): what its use cases and consumers receive.
        self.bind = bind
        self.uow: SqlUnitOfWork[Any] = SqlUnitOfWork(self.sessions, bind or unbound)
        # The process's periodic jobs: started once it is up (after the start-up hooks), stopped first at shutdown.
        self.jobs = Scheduler()
        # Built by `start()` (it reads the Kafka credentials): construction never touches a secret or the network.
        self.broker: KafkaBroker | None = None
        self.consumers: list[ReliableConsumer] = []
        self._subscribers: dict[str, Any] = {}  # consumer name → its FastStream subscriber (`.consumer`: aiokafka)
        self._consumer_specs: list[_ConsumerSpec] = []
        self._produced: list[str] = []
        self._after_start: list[StartupHook] = []
        self._producer: AIOKafkaProducer | None = None
        self._relay: OutboxRelay | None = None
        self._relay_task: asyncio.Task[None] | None = None
        self._publisher: OutboxPublisher | None = None
        self._publisher_task: asyncio.Task[None] | None = None
        self.inbox_retention = InboxRetention.from_settings(settings.inbox)
        self._inbox_task: asyncio.Task[None] | None = None
        # Built from validated settings, no I/O: the JWKS is fetched when the first token arrives.
        self.auth: TokenVerifier | None = token_verifier(settings) if settings.verifies_tokens else None
        self._clients_up = False
        self._hooks_done = 0
        self._waiting_for: str | None = "starting"
        self._start_task: asyncio.Task[None] | None = None
        self.gauges = RuntimeGauges(
            self.metrics,
            ready=self.is_ready,
            outbox_age=self.outbox_age,
            consumers=self._lag_sources,
            interval_s=settings.metrics_sample_interval_ms / 1000,
        )

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
        lane_key: Callable[[Envelope[EventPayload]], Hashable] | None = None,
        acts_on: Collection[str] | None = None,
    ) -> None:
        """Declare a consumer; it is built and subscribed in `start()`. Name = inbox key and group id.

        `partition_lanes`: the handler's aggregates are keyed like the topic (no two partitions touch the
        same rows), so a poll may be applied as `CONSUMER_LANES` concurrent transactions, one per lane of
        partitions. `lane_key`: lanes keep the events of one such key together instead (the key concurrent
        transactions would wait on each other for; one per topic key). `on_refusal` runs in the transaction that
        records a new dead letter. `acts_on`: the event types the handler does anything with; a record whose type
        header names another is skipped before decoding and before the inbox (`ReliableConsumer.acts_on`).
        """
        if (handler is None) == (batch_handler is None):
            raise ValueError(f"consumer {name}: give exactly one of handler or batch_handler")
        self._consumer_specs.append(
            _ConsumerSpec(
                name,
                tuple(topics),
                handler,
                batch_handler,
                partition_lanes,
                on_refusal,
                lane_key,
                frozenset(acts_on) if acts_on is not None else None,
            )
        )
        self.metrics.declare_consumer(name, [self.topic(t) for t in topics])

    def produces(self, topics: Sequence[str]) -> None:
        """Declare the contract topics this process publishes (through its outbox): verified at start like the
        ones it consumes, so a missing topic keeps the service not ready instead of failing its relay later."""
        self._produced.extend(t for t in topics if t not in self._produced)

    def kafka_usage(self) -> KafkaUsage:
        """What this process was declared to consume and produce (deploy/k8s derives its KafkaUser from it)."""
        return KafkaUsage(
            consumes={spec.name: spec.topics for spec in self._consumer_specs}, produces=tuple(self._produced)
        )

    def after_start(self, hook: StartupHook) -> None:
        """Run `hook` at start-up once the Kafka clients are up, before the service reports ready; retried with
        backoff until it succeeds. For start-up work that needs PostgreSQL or Kafka (it must be idempotent)."""
        self._after_start.append(hook)

    def topic(self, name: str) -> str:
        """The physical topic name: the contract's name plus this deployment's suffix (empty in production)."""
        return name + self.settings.kafka_topic_suffix

    def required_topics(self) -> dict[str, int]:
        """Physical name → partitions expected, of every topic this process consumes (and its DLQ) or produces."""
        names = list(self._produced)
        for spec in self._consumer_specs:
            for topic in spec.topics:
                names += [topic, topic + DLQ_SUFFIX]
        return required_topics(names, self.settings.kafka_topics, suffix=self.settings.kafka_topic_suffix)

    async def start(self) -> None:
        """Come up, however long it takes: verify topics, start the Kafka clients, run the `after_start` hooks,
        retrying with backoff while Kafka, PostgreSQL or a topic is missing. Returns once the service is up."""
        failures = 0
        while not self._clients_up:
            try:
                await self._verify_schema()
                await self._verify_topics()
                await self._prepare_inbox()
            except Exception as err:  # noqa: BLE001 - whatever failed, start-up retries (and logs why)
                failures += 1
                await self._pause(failures, err)
                continue
            try:
                await self._start_clients()
            except Exception as err:  # noqa: BLE001 - whatever failed, start-up retries (and logs why)
                await self._stop_clients()
                self._waiting_for = "kafka clients failed to start (retrying)"
                failures += 1
                await self._pause(failures, err)
        while self._hooks_done < len(self._after_start):
            hook = self._after_start[self._hooks_done]
            try:
                await hook()
            except Exception as err:  # noqa: BLE001 - whatever failed, start-up retries (and logs why)
                self._waiting_for = f"{getattr(hook, '__name__', 'start-up hook')} failed (retrying)"
                failures += 1
                await self._pause(failures, err)
            else:
                self._hooks_done += 1
        self._waiting_for = None
        await self.jobs.start()
        tune_gc()
        log.info("service started", extra={"consumers": [c.name for c in self.consumers]})

    async def start_in_background(self) -> None:
        """The HTTP app's start-up: return at once (so the liveness probe answers) and come up in a task; the
        sampled gauges (readiness, outbox age, consumer lag) are refreshed from now on."""
        self._start_task = asyncio.create_task(self.start(), name="service-start")
        self.gauges.start()

    async def _verify_schema(self) -> None:
        """Refuse to consume or serve against a schema this build cannot run against (`check_compatible`)."""
        if self.schema is None:
            return
        try:
            async with self.engine.connect() as conn:
                revision, applied = await read_schema_state(conn)
        except Exception as err:
            self._waiting_for = (
                "database unreachable (schema not checked yet)"
                if is_outage(err)
                else ("database schema could not be read (retrying)")
            )
            raise
        try:
            ahead = check_compatible(self.schema, revision, applied)
        except SchemaMismatchError as err:
            self.schema_refused = err
            self._waiting_for = str(err)
            raise
        self.schema_refused = None
        if ahead:
            log.info(
                "database schema ahead of this build through expand steps only",
                extra={"expected": self.schema.head, "ahead_by": list(ahead)},
            )

    async def _verify_topics(self) -> None:
        s = self.settings
        try:
            problems = await check_topics(s.kafka_bootstrap_servers, self.required_topics(), security=s.kafka_security)
        except KafkaSecurityError as err:
            self._waiting_for = f"kafka security settings unusable: {err}"
            raise
        except (KafkaError, OSError) as err:
            refusal = await authentication_problem(s.kafka_bootstrap_servers, s.kafka_security)
            if refusal is not None:
                self._waiting_for = str(refusal)
                raise refusal from err
            self._waiting_for = "kafka unreachable"
            raise
        except Exception:
            self._waiting_for = "topic check failed (retrying)"
            raise
        if problems:
            error = TopicsNotReadyError(problems)
            self._waiting_for = str(error)
            raise error
        await self._verify_inbox_horizon()

    def consumed_topics(self) -> list[str]:
        """The physical topics this process's consumers read."""
        return sorted({self.topic(t) for spec in self._consumer_specs for t in spec.topics})

    async def _verify_inbox_horizon(self) -> None:
        """Refuse to consume while a consumed topic may redeliver what the inbox will have forgotten (ADR 0008)."""
        consumed = self.consumed_topics()
        if not consumed:
            return
        s = self.settings
        try:
            retention = await topic_retention_ms(s.kafka_bootstrap_servers, consumed, security=s.kafka_security)
        except Exception:
            self._waiting_for = "topic retention could not be described (retrying)"
            raise
        problems = horizon_problems(retention, s.inbox)
        if problems:
            error = InboxHorizonError(problems)
            self._waiting_for = str(error)
            raise error

    async def _prepare_inbox(self) -> None:
        """The inbox's partitions exist around now before any consumer claims into them."""
        if not self._consumer_specs:
            return
        try:
            await maintain_inbox(self.engine, self.inbox_retention, datetime.now(UTC))
        except Exception:
            self._waiting_for = "inbox partitions could not be maintained (retrying)"
            raise

    async def _maintain_inbox_periodically(self) -> None:
        """Every replica runs it; they queue on an advisory lock and the later ones find nothing to do."""
        interval = self.settings.inbox.maintenance_interval_s
        while True:
            await asyncio.sleep(interval)
            try:
                await maintain_inbox(self.engine, self.inbox_retention, datetime.now(UTC))
            except Exception:
                log.exception("inbox partition maintenance failed; retrying in %.0fs", interval)
            try:  # a topic's retention may have been raised since start-up: say so loudly, every run
                await self._verify_inbox_horizon()
            except InboxHorizonError as err:
                log.error("the dedup horizon no longer covers a consumed topic: %s", err)
            except Exception:
                log.warning("topic retention could not be described; checked again next run", exc_info=True)

    async def _pause(self, failures: int, err: Exception) -> None:
        """Backoff with jitter up to `STARTUP_RETRY_MAX_MS`; the reason is logged (a bug's with its traceback)."""
        cap = self.settings.startup_retry_max_ms / 1000
        delay = backoff_delay(min(failures, 16) + 1, base=_FIRST_RETRY_S, cap=cap)
        waiting = {"waiting_for": self._waiting_for}
        if isinstance(err, (KafkaAuthenticationError, KafkaSecurityError, InboxHorizonError, SchemaMismatchError)):
            # A configuration or credentials problem, not an outage: loud, but no traceback to read (it names
            # the settings to check). Still retried: a rotated Secret is read again by the next attempt.
            log.error("%s, retrying start-up in %.1fs", self._waiting_for, delay, extra=waiting)
        elif isinstance(err, (TopicsNotReadyError, KafkaError)) or is_outage(err):
            log.warning("not ready (%s), retrying start-up in %.1fs", self._waiting_for, delay, extra=waiting)
        else:
            log.error("%s, retrying start-up in %.1fs", self._waiting_for, delay, extra=waiting, exc_info=err)
        await asyncio.sleep(delay)

    async def _start_clients(self) -> None:
        s = self.settings
        suffix = s.kafka_topic_suffix
        self._producer = self._new_producer()
        await self._producer.start()
        # A broker whose start failed is not started again: each attempt subscribes on a fresh one.
        self.broker = create_broker(s.kafka_bootstrap_servers, client_id=s.service_name, security=s.kafka_security)
        self.consumers = []
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
                lane_key=spec.lane_key,
                topic_suffix=suffix,
                on_refusal=spec.on_refusal,
                retention=self.inbox_retention,
                bind=self.bind or unbound,
                acts_on=spec.acts_on,
            )
            self._subscribers[spec.name] = attach_consumer(
                self.broker, consumer, max_records=s.consumer_batch_size, group_id=spec.name + suffix
            )
            self.consumers.append(consumer)
        if s.outbox_publish_after_commit:
            # Before the consumers start: their first commits' events are published at once.
            self._publisher = OutboxPublisher(
                database_url=s.database_url,
                producer=lambda: self.producer,
                metrics=self.metrics,
                topic_suffix=suffix,
                ack_timeout=s.outbox_ack_timeout_ms / 1000,
                timeouts=s.database_timeouts,
            )
            publish_after_commit(self.engine, self._publisher)
            self._publisher_task = asyncio.create_task(self._publisher.run(), name="outbox-publisher")
        await self.broker.start()
        if s.outbox_relay == "inline":
            self._relay = OutboxRelay(
                database_url=s.database_url,
                producer=self._producer,
                metrics=self.metrics,
                batch_size=s.outbox_batch_size,
                poll_interval=s.outbox_poll_interval_ms / 1000,
                topic_suffix=suffix,
                ack_timeout=s.outbox_ack_timeout_ms / 1000,
                renew_producer=self._renew_producer,
                timeouts=s.database_timeouts,
                sweep_after=s.outbox_sweep_after_s,
            )
            self._relay_task = asyncio.create_task(self._relay.run(), name="outbox-relay")
            self._relay_task.add_done_callback(_relay_ended)
        if self._consumer_specs:
            self._inbox_task = asyncio.create_task(self._maintain_inbox_periodically(), name="inbox-maintenance")
        self._clients_up = True

    def _new_producer(self) -> AIOKafkaProducer:
        s = self.settings
        return idempotent_producer(
            s.kafka_bootstrap_servers, client_id=f"{s.service_name}-producer", security=s.kafka_security
        )

    async def _renew_producer(self, stalled: AIOKafkaProducer) -> AIOKafkaProducer:
        """A started producer in place of `stalled` (which the relay found stalled or broken), abandoned without a
        flush."""
        fresh = self._new_producer()
        try:
            await fresh.start()
        except BaseException:
            with contextlib.suppress(Exception):
                await fresh.stop()
            raise
        self._producer = fresh
        await abandon_producer(stalled)
        return fresh

    async def _stop_clients(self) -> None:
        """Stop whatever Kafka clients run (all of them, or what a failed start-up attempt left behind)."""
        self._clients_up = False
        self._subscribers = {}
        if self.broker is not None:
            with contextlib.suppress(Exception):
                await self.broker.stop()
        await self._stop_publisher()
        if self._relay is not None:
            await self._relay.stop()
            self._relay = None
        for task in (self._relay_task, self._inbox_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._relay_task = self._inbox_task = None
        if self._producer is not None:
            with contextlib.suppress(Exception):
                await self._producer.stop()
            self._producer = None

    async def _stop_publisher(self) -> None:
        """No more events handed over (the relay sweeps them); what is queued goes out, for a few seconds at most."""
        publish_after_commit(self.engine, None)
        task, self._publisher_task = self._publisher_task, None
        if self._publisher is not None:
            self._publisher.stop()
            self._publisher = None
        if task is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(task, timeout=_PUBLISHER_DRAIN_S)

    async def stop(self) -> None:
        """The jobs first (a pass in progress ends), then start-up, the Kafka clients and the pool."""
        await self.jobs.stop()
        await self.gauges.stop()
        if self._start_task is not None:
            self._start_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._start_task
            self._start_task = None
        await self._stop_clients()
        await self.engine.dispose()

    async def database_ready(self) -> None:
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception as err:
            if is_outage(err):
                raise NotReady("unreachable") from err
            raise

    async def kafka_ready(self) -> None:
        if self._producer is None:
            raise NotReady("not connected")
        try:
            await self._producer.client.fetch_all_metadata()
        except KafkaError as err:
            raise NotReady("unreachable") from err
        task = self._relay_task
        if task is not None and task.done():  # it only returns when stopped, and stopping clears it
            raise NotReady("the outbox relay stopped")

    async def startup_ready(self) -> None:
        """Ready once start-up went through; until then, what it waits for (a topic, Kafka, a hook)."""
        if self._waiting_for is not None:
            raise NotReady(self._waiting_for)

    def readiness_checks(self) -> list[ReadinessCheck]:
        """What /health/ready runs (and the `ready` gauge reflects)."""
        return [self.database_ready, self.kafka_ready, self.startup_ready]

    async def is_ready(self) -> bool:
        return not await readiness_failures(self.readiness_checks())

    async def outbox_age(self) -> float:
        """Seconds the oldest unpublished outbox row has waited (0 when the outbox is empty)."""
        async with self.engine.connect() as conn:
            return await oldest_pending_age(conn)

    def _lag_sources(self) -> list[LagSource]:
        def reader(name: str) -> LagReader | None:
            subscriber = self._subscribers.get(name)
            client: LagReader | None = getattr(subscriber, "consumer", None)
            return client

        return [
            LagSource(spec.name, tuple(self.topic(t) for t in spec.topics), functools.partial(reader, spec.name))
            for spec in self._consumer_specs
        ]

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
        timeline: Sequence[TimelineSource] = (),
    ) -> Litestar:
        """The service's app (`prizeflow_runtime.serving.service_app`): its routes, health, metrics and admin."""
        return service_app(
            self, route_handlers, dependencies=dependencies, dead_letter_routes=dead_letter_routes, timeline=timeline
        )

    @property
    def has_consumers(self) -> bool:
        return bool(self._consumer_specs)

    def _serving_refused(self) -> str | None:
        """Why the API must not serve now (a schema this build cannot run against), or None."""
        return str(self.schema_refused) if self.schema_refused is not None else None


def _relay_ended(task: asyncio.Task[None]) -> None:
    """A relay task ends only when stopped; anything else is loud (and the readiness check reports it)."""
    if not task.cancelled() and (err := task.exception()) is not None:
        log.critical("outbox relay died; this process publishes nothing until restarted", exc_info=err)


__all__ = ["GC_THRESHOLDS", "KafkaUsage", "ServiceRuntime", "StartupHook", "serve", "tune_gc"]
