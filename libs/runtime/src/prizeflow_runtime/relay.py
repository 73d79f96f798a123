"""`python -m prizeflow_runtime.relay`: a service's outbox relay as a process of its own.

Every service relays its outbox inline by default. Set `OUTBOX_RELAY=external` on the service and run this
next to it (a sidecar, or its own Deployment) with the same `DATABASE_URL`, `KAFKA_BOOTSTRAP_SERVERS`,
`KAFKA_TOPIC_SUFFIX` and `SERVICE_NAME`: publishing then gets a CPU of its own instead of sharing the
consumer's event loop. Inline relays and this one can run at once: the advisory lock keeps exactly one
publishing per database, so switching over needs no coordination. Metrics on `HTTP_PORT` (`/metrics`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

import uvloop
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from prometheus_client import CollectorRegistry, start_http_server

from prizeflow_runtime.logging import configure_logging
from prizeflow_runtime.metrics import RuntimeMetrics
from prizeflow_runtime.outbox import OutboxRelay, abandon_producer, idempotent_producer
from prizeflow_runtime.retry import Backoff
from prizeflow_runtime.settings import ServiceSettings

log = logging.getLogger(__name__)


async def run_relay(settings: ServiceSettings, *, metrics: RuntimeMetrics | None = None) -> None:
    """Relay until SIGTERM/SIGINT, then finish the batch in flight and release the leader lock."""
    producer = await _started_producer(settings)
    relay = OutboxRelay(
        database_url=settings.database_url,
        producer=producer,
        metrics=metrics,
        batch_size=settings.outbox_batch_size,
        poll_interval=settings.outbox_poll_interval_ms / 1000,
        topic_suffix=settings.kafka_topic_suffix,
        ack_timeout=settings.outbox_ack_timeout_ms / 1000,
        renew_producer=lambda stalled: _renewed(settings, stalled),
        timeouts=settings.database_timeouts,
        sweep_after=settings.outbox_sweep_after_s,
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: asyncio.ensure_future(relay.stop()))
    log.info("outbox relay started")
    try:
        await relay.run()
    finally:
        await relay.producer.stop()
        log.info("outbox relay stopped")


async def _started_producer(settings: ServiceSettings) -> AIOKafkaProducer:
    """The relay's producer once Kafka answers: while it does not, the process waits (with backoff) instead of
    exiting, as a service does."""
    backoff = Backoff(base=0.2, cap=settings.startup_retry_max_ms / 1000)
    while True:
        producer = idempotent_producer(
            settings.kafka_bootstrap_servers,
            client_id=f"{settings.service_name}-relay",
            security=settings.kafka_security,
        )
        try:
            await producer.start()
        except KafkaError as err:
            with contextlib.suppress(Exception):
                await producer.stop()
            delay = backoff.next()
            log.warning("Kafka unreachable, retrying in %.1fs", delay, extra={"error": type(err).__name__})
            await asyncio.sleep(delay)
        else:
            return producer


async def _renewed(settings: ServiceSettings, stalled: AIOKafkaProducer) -> AIOKafkaProducer:
    fresh = await _started_producer(settings)
    await abandon_producer(stalled)
    return fresh


def main() -> None:
    settings = ServiceSettings()
    configure_logging(f"{settings.service_name}-relay", level=settings.log_level, json_output=settings.log_json)
    registry = CollectorRegistry()
    metrics = RuntimeMetrics.create(settings.service_name, registry)
    start_http_server(settings.http_port, addr=settings.http_host, registry=registry)
    uvloop.run(run_relay(settings, metrics=metrics))


if __name__ == "__main__":
    main()
