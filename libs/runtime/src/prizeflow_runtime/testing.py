"""Helpers for tests against real Kafka: provision a test's topics, read a topic to its end, wait for a group
to catch up, wait for an in-process app to be ready.

They poll with a deadline; nothing here sleeps for a fixed time and hopes.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from prizeflow_runtime.settings import TopicSettings
from prizeflow_runtime.topics import provision_topics, topic_plan

T = TypeVar("T")


async def eventually(
    probe: Callable[[], Awaitable[T]],
    until: Callable[[T], bool],
    *,
    timeout: float = 30.0,
    interval: float = 0.1,
) -> T:
    """Call `probe` until `until(result)` holds; fail with the last result after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = await probe()
        if until(result):
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached within {timeout}s; last value: {result!r}")
        await asyncio.sleep(interval)


async def provision_test_topics(bootstrap: str, suffix: str, settings: TopicSettings | None = None) -> None:
    """Every contract topic and DLQ under `suffix`, as the provisioning Job creates them before a service starts
    (services only verify). Deleting them is the `topic_suffix` fixture's job."""
    report = await provision_topics(bootstrap, topic_plan(settings or TopicSettings(), suffix=suffix))
    if not report.ok:
        raise AssertionError(f"test topics under {suffix} are short: {report.short}")


async def wait_ready(client: Any, *, timeout: float = 60.0) -> None:
    """Wait until an in-process app (a Litestar test client) answers /health/ready with 200: a service comes up
    in the background once its lifespan started."""

    async def probe() -> tuple[int, Any]:
        response = await client.get("/health/ready")
        return response.status_code, response.json()

    await eventually(probe, lambda r: r[0] == 200, timeout=timeout, interval=0.05)


async def end_offsets(bootstrap: str, topic: str) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic)
        if partitions is None:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        return dict(await consumer.end_offsets(tps)) if tps else {}
    finally:
        await consumer.stop()


async def read_topic(bootstrap: str, topic: str, *, timeout: float = 30.0) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record currently in `topic`, from offset 0 to the end offsets taken at call time."""
    ends = await end_offsets(bootstrap, topic)
    wanted = {tp: end for tp, end in ends.items() if end > 0}
    if not wanted:
        return []
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    try:
        consumer.assign(list(wanted))
        await consumer.seek_to_beginning(*wanted)
        positions = dict.fromkeys(wanted, 0)
        deadline = time.monotonic() + timeout
        while any(positions[tp] < end for tp, end in wanted.items()):
            if time.monotonic() > deadline:
                raise AssertionError(f"could not read {topic} to its end within {timeout}s: {positions} of {wanted}")
            batch = await consumer.getmany(timeout_ms=200)
            for tp, recs in batch.items():
                for r in recs:
                    if r.offset < wanted[tp]:
                        records.append(r)
                    positions[tp] = max(positions[tp], r.offset + 1)
    finally:
        await consumer.stop()
    return records


async def committed_offsets(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    """The group's committed offset per partition of `topic` (missing partitions: nothing committed)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets: dict[TopicPartition, Any] = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic and meta.offset >= 0}


async def wait_caught_up(bootstrap: str, group: str, topic: str, *, timeout: float = 60.0) -> None:
    """Wait until `group` has committed the end offset of every non-empty partition of `topic`."""
    ends = {tp.partition: end for tp, end in (await end_offsets(bootstrap, topic)).items() if end > 0}

    async def probe() -> dict[int, int]:
        return await committed_offsets(bootstrap, group, topic)

    await eventually(probe, lambda c: all(c.get(p, 0) >= end for p, end in ends.items()), timeout=timeout)


def header(record: ConsumerRecord[Any, Any], name: str) -> str | None:
    for key, value in record.headers or ():
        if key == name:
            return bytes(value).decode()
    return None


def public_routes(app: Any) -> set[str]:
    """Paths an app serves without a token (its OpenAPI documents collapsed to `/schema`)."""
    out: set[str] = set()
    for route in app.routes:
        if any(getattr(h, "opt", {}).get("exclude_from_auth") for h in getattr(route, "route_handlers", ())):
            out.add("/schema" if route.path.startswith("/schema") else route.path)
    return out


_PATH_PARAM = re.compile(r"\{(\w+):(\w+)\}")
_SAMPLE = {"int": "1", "uuid": "00000000-0000-4000-8000-000000000001"}


async def unauthenticated_answers(app: Any) -> dict[str, int]:
    """What every non-public route of `app` answers a request without a token, by `METHOD path` (from the
    app's own route table, so a route added tomorrow is covered without touching the test). The app's
    lifespan is not run: nothing behind the routes needs to exist for the auth layer to answer."""
    import httpx

    public = public_routes(app)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://service.test")
    answers: dict[str, int] = {}
    try:
        for route in app.routes:
            path = "/schema" if route.path.startswith("/schema") else route.path
            if path in public or not hasattr(route, "route_handlers"):
                continue
            concrete = _PATH_PARAM.sub(lambda m: _SAMPLE.get(m.group(2), "metrics"), route.path)
            for method in sorted(set(getattr(route, "methods", ())) - {"OPTIONS", "HEAD"}):
                response = await client.request(
                    method, concrete, json={} if method in {"POST", "PUT", "PATCH"} else None
                )
                answers[f"{method} {route.path}"] = response.status_code
    finally:
        await client.aclose()
    return answers
