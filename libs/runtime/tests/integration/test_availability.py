"""A service started while Kafka, PostgreSQL or its topics are missing: the process stays up and live, is not
ready (saying what it waits for), answers its API with 503 + Retry-After, and comes up once they are there.

The service is a real process (`support/availability_app.py` on `ServiceRuntime`). "Down" is a port nobody
listens on; "back" is that port forwarding to the shared PostgreSQL or Kafka (`support/forwarder.py`).
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from forwarder import Forwarder
from harness import publish
from sample import SAMPLE_TOPIC, thing
from sqlalchemy.ext.asyncio import AsyncEngine

from prizeflow_contracts.topics import AUDIT, Topic
from prizeflow_runtime.outbox import idempotent_producer
from prizeflow_runtime.settings import ServiceSettings, TopicSettings
from prizeflow_runtime.topics import ensure_topics, provision_topics, topic_plan
from prizeflow_testkit import Process, dev_bearer, eventually, free_port

pytestmark = pytest.mark.integration

APP = Path(__file__).parents[1] / "support" / "availability_app.py"


def admin() -> dict[str, str]:
    """A token the app accepts: the session's dev identity (JWT_JWKS_URL, inherited), the app's audience."""
    return dev_bearer(ServiceSettings(service_name="availability"), "ops-1", "admin")


class Service:
    """The app as a process, and what an orchestrator's probes and a client would see of it."""

    def __init__(self, *, database_url: str, kafka: str, suffix: str, log: Path) -> None:
        self.port = free_port()
        self.log = log
        env = {
            "DATABASE_URL": database_url,
            "KAFKA_BOOTSTRAP_SERVERS": kafka,
            "KAFKA_TOPIC_SUFFIX": suffix,
            "HTTP_PORT": str(self.port),
            "STARTUP_RETRY_MAX_MS": "1000",
            "OUTBOX_POLL_INTERVAL_MS": "50",
            "METRICS_SAMPLE_INTERVAL_MS": "200",
            "LOG_JSON": "false",
        }
        # Not waited for: the app is meant to come up without its dependencies, and not be ready.
        self.process = Process([sys.executable, str(APP)], env, log).spawn()
        self.http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.port}", timeout=5.0)

    async def get(self, path: str, **kwargs: Any) -> httpx.Response | None:
        assert self.process.running, f"the service exited ({self.process.returncode}):\n{self.log.read_text()}"
        try:
            return await self.http.get(path, **kwargs)
        except httpx.TransportError:
            return None  # not listening yet

    async def ready(self) -> tuple[int, Any]:
        response = await self.get("/health/ready")
        return (0, None) if response is None else (response.status_code, response.json())

    async def metric(self, name: str) -> float | None:
        """A sample of /metrics by its exact series name (`name{labels}` as exposed), None while absent."""
        response = await self.get("/metrics")
        for line in response.text.splitlines() if response is not None else ():
            series, _, value = line.rpartition(" ")
            if series == name:
                return float(value)
        return None

    def retries_logged(self) -> int:
        return self.log.read_text(errors="replace").count("retrying start-up")

    async def stop(self) -> int | None:
        await self.http.aclose()
        # waited for off the loop: the forwarders this process talks through run on it
        return await asyncio.to_thread(self.process.stop)


async def _retries(svc: Service) -> int:
    return svc.retries_logged()


async def _effects(svc: Service) -> tuple[int, Any]:
    response = await svc.get("/effects/count", headers=admin())
    return (0, None) if response is None else (response.status_code, response.json())


async def _topics(bootstrap: str, suffix: str) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return sorted(t for t in await admin.list_topics() if suffix in t)
    finally:
        await admin.close()


async def _publish_one(bootstrap: str, topic: str, thing_id: str) -> None:
    producer = idempotent_producer(bootstrap)
    await producer.start()
    try:
        await publish(producer, topic, [thing(thing_id, 7, correlation_id=thing_id)])
    finally:
        await producer.stop()


async def test_missing_or_short_topics_keep_a_service_unready_naming_them_and_it_creates_none(
    engine: AsyncEngine, fresh_database: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path
) -> None:
    audit, sample = AUDIT.name + topic_suffix, SAMPLE_TOPIC.name + topic_suffix
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(audit, 2, 1)])  # created by hand, narrower than the contract says
    finally:
        await admin.close()
    svc = Service(database_url=fresh_database, kafka=kafka_bootstrap, suffix=topic_suffix, log=tmp_path / "svc.log")
    try:
        _, body = await eventually(svc.ready, lambda r: r[0] == 503 and "topics" in str(r[1]), timeout=60)
        assert sorted(body["failures"]) == [
            "kafka_ready: not connected",
            f"startup_ready: topics not provisioned: {audit} has 2 partitions, expected 6; "
            f"{sample} missing; {sample}.dlq missing",  # audit's DLQ is not its business: it only produces audit
        ]
        assert ((await svc.get("/health/live")) or httpx.Response(0)).status_code == 200
        assert await svc.metric("prizeflow_availability_ready") == 0  # what the not-ready alert reads
        lag = f'prizeflow_availability_consumer_lag_records{{consumer="availability",topic="{sample}"}}'
        assert await svc.metric(lag) == 0  # exported before the consumer exists
        await eventually(lambda: _retries(svc), lambda n: n >= 3, timeout=60)  # it keeps checking...
        assert await _topics(kafka_bootstrap, topic_suffix) == [audit]  # ...and never creates a topic itself

        report = await provision_topics(
            kafka_bootstrap, topic_plan(TopicSettings(), suffix=topic_suffix, topics=[AUDIT]), increase_partitions=True
        )
        assert [p.name for p in report.increased] == [audit]
        await ensure_topics(kafka_bootstrap, [Topic(sample, "tests", (), 3)])
        await eventually(svc.ready, lambda r: r[0] == 200, timeout=60)
        await eventually(lambda: svc.metric("prizeflow_availability_ready"), lambda v: v == 1, timeout=10)
        await _publish_one(kafka_bootstrap, sample, "after-provisioning")
        await eventually(lambda: _effects(svc), lambda r: r == (200, {"effects": 1}), timeout=60)
    finally:
        code = await svc.stop()
    assert code in (0, -signal.SIGTERM), svc.log.read_text()  # uvicorn re-raises SIGTERM once it shut down
    assert "Application shutdown complete" in svc.log.read_text()


async def test_a_service_started_while_postgres_and_kafka_are_down_stays_up_then_comes_up_and_consumes(
    engine: AsyncEngine, fresh_database: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path
) -> None:
    await ensure_topics(kafka_bootstrap, [Topic(SAMPLE_TOPIC.name + topic_suffix, "tests", (), 3)])
    await provision_topics(kafka_bootstrap, topic_plan(TopicSettings(), suffix=topic_suffix, topics=[AUDIT]))
    pg_url = urlsplit(fresh_database)
    kafka_host, _, kafka_port = kafka_bootstrap.rpartition(":")
    postgres = Forwarder(pg_url.hostname or "127.0.0.1", pg_url.port or 5432)
    kafka = Forwarder(kafka_host, int(kafka_port))
    via_forwarder = urlunsplit(pg_url._replace(netloc=f"{pg_url.username}@127.0.0.1:{postgres.port}"))
    svc = Service(
        database_url=via_forwarder, kafka=f"127.0.0.1:{kafka.port}", suffix=topic_suffix, log=tmp_path / "svc.log"
    )
    try:
        # Both down: live, not ready, each missing dependency named, the API a 503 problem with Retry-After.
        _, body = await eventually(svc.ready, lambda r: "kafka unreachable" in str(r[1]), timeout=60)
        assert sorted(body["failures"]) == [
            "database_ready: unreachable",
            "kafka_ready: not connected",
            "startup_ready: kafka unreachable",
        ]
        assert ((await svc.get("/health/live")) or httpx.Response(0)).status_code == 200
        api = await svc.get("/effects/count", headers=admin())
        assert api is not None
        assert api.status_code == 503
        assert api.headers["content-type"].startswith("application/problem+json")
        assert api.headers["retry-after"] == "5"
        assert api.json()["code"] == "service_unavailable"
        await eventually(lambda: _retries(svc), lambda n: n >= 3, timeout=60)  # retrying, not exiting

        # PostgreSQL back, Kafka still down: the API answers; the service is still not ready.
        await postgres.open()
        await eventually(lambda: _effects(svc), lambda r: r == (200, {"effects": 0}), timeout=60)
        status, body = await svc.ready()
        assert (status, sorted(body["failures"])) == (
            503,
            ["kafka_ready: not connected", "startup_ready: kafka unreachable"],
        )

        # Kafka back: ready, and it consumes.
        await kafka.open()
        await eventually(svc.ready, lambda r: r[0] == 200, timeout=60)
        await _publish_one(kafka_bootstrap, SAMPLE_TOPIC.name + topic_suffix, "after-the-outage")
        await eventually(lambda: _effects(svc), lambda r: r == (200, {"effects": 1}), timeout=60)
    finally:
        code = await svc.stop()
        await postgres.close()
        await kafka.close()
    assert code in (0, -signal.SIGTERM), svc.log.read_text()  # uvicorn re-raises SIGTERM once it shut down
    assert "Application shutdown complete" in svc.log.read_text()
