"""Webhook delivery: each event POSTed to each endpoint that wants it, signed, retried with exponential backoff on a
non-2xx answer or a connection error.

Each endpoint has one FIFO worker, so first attempts arrive in the order the events were recorded (or released);
retries are scheduled apart and do not hold the queue. For negative tests: hold deliveries and release them in
another order, send each event several times, sign with a shifted (stale) timestamp. How a delivery is signed, and
where it goes, is the emulator's (`Address`): asked at every attempt, so a rolled secret or a moved URL applies to
retries too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any

import aiohttp

log = logging.getLogger(__name__)


class DeliveryState(StrEnum):
    HELD = "held"
    QUEUED = "queued"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # attempts exhausted, or the endpoint is gone


class ReleaseOrder(StrEnum):
    FIFO = "fifo"
    REVERSE = "reverse"
    SHUFFLE = "shuffle"


@dataclass
class DeliveryConfig:
    """What the deliverer does with the next events (changed at run time through the admin API)."""

    hold: bool = False  # keep new deliveries until `release`
    duplicates: int = 1  # deliveries per event and endpoint
    timestamp_offset_s: int = 0  # added to the signing timestamp (a stale signature), fixed when the event is recorded
    retry_base_ms: int = 1000  # the first retry's delay; doubled after each failed attempt
    max_attempts: int = 8
    timeout_ms: int = 10_000

    def update(self, changes: Mapping[str, Any]) -> None:
        """Apply `changes`, each checked first (ValueError naming it): nothing is applied when one is wrong."""
        known = {f.name for f in fields(self)}
        for name, value in changes.items():
            if name not in known:
                raise ValueError(f"unknown webhook setting {name!r}")
            if name == "hold":
                if not isinstance(value, bool):
                    raise ValueError("hold must be a boolean")
            elif not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(f"{name} must be an integer")
            elif name != "timestamp_offset_s" and value < 1:
                raise ValueError(f"{name} must be >= 1")
        for name, value in changes.items():
            setattr(self, name, value)

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass
class Attempt:
    at: float
    timestamp: int  # the signing timestamp (with the delivery's offset)
    status: int | None
    error: str | None


@dataclass
class Delivery:
    id: str
    event_id: str
    event_type: str
    endpoint_id: str
    url: str  # where the endpoint was when the event was recorded
    copy: int
    body: bytes
    timestamp_offset_s: int
    state: DeliveryState
    attempts: list[Attempt] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "event_id": self.event_id,
            "event_type": self.event_type,
            "endpoint_id": self.endpoint_id,
            "url": self.url,
            "copy": self.copy,
            "state": self.state.value,
            "attempts": [a.__dict__ for a in self.attempts],
        }


@dataclass(frozen=True)
class Target:
    """Where one attempt goes and its headers (the signature over the body at that timestamp among them)."""

    url: str
    headers: Mapping[str, str]


Address = Callable[[Delivery, int], Target | None]
"""The emulator's: `(delivery, signing timestamp)` → the attempt's target, or None when the endpoint is gone."""


class Deliverer:
    def __init__(
        self,
        config: DeliveryConfig,
        address: Address,
        *,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
        on_success: Callable[[Delivery], None] | None = None,
        limit: int = 100_000,
    ) -> None:
        self.config = config
        self.address = address
        self.rng = rng or random.Random()  # noqa: S311 - delivery order shuffles, not cryptography
        self.clock = clock
        self.on_success = on_success
        self.deliveries: deque[Delivery] = deque(maxlen=limit)
        self.held: list[Delivery] = []
        self._queues: dict[str, asyncio.Queue[Delivery]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._timers: set[asyncio.TimerHandle] = set()
        self._before_start: list[Delivery] = []  # recorded before the event loop ran (settings applied at build)
        self._session: aiohttp.ClientSession | None = None

    # -- recording (synchronous: called by the emulator's books) ------------------------------------------------

    def submit(
        self,
        event_id: str,
        event_type: str,
        body: bytes,
        endpoints: Mapping[str, str],
        *,
        copies: int | None = None,
        hold: bool | None = None,
    ) -> list[Delivery]:
        """Deliveries of one event to each endpoint (id → URL), `copies` times each, held or queued (by default as
        configured: a redelivery asked for by hand is neither duplicated nor held)."""
        hold = self.config.hold if hold is None else hold
        created = []
        for endpoint_id, url in endpoints.items():
            for copy in range(self.config.duplicates if copies is None else copies):
                delivery = Delivery(
                    id="whd_" + secrets.token_hex(8),
                    event_id=event_id,
                    event_type=event_type,
                    endpoint_id=endpoint_id,
                    url=url,
                    copy=copy,
                    body=body,
                    timestamp_offset_s=self.config.timestamp_offset_s,
                    state=DeliveryState.HELD if hold else DeliveryState.QUEUED,
                )
                self.deliveries.append(delivery)
                created.append(delivery)
                if hold:
                    self.held.append(delivery)
                else:
                    self._enqueue(delivery)
        return created

    def release(self, order: ReleaseOrder = ReleaseOrder.FIFO, *, seed: int | None = None) -> list[Delivery]:
        """Send the held deliveries, in recorded order, reversed or shuffled; stop holding."""
        held, self.held = self.held, []
        self.config.hold = False
        if order is ReleaseOrder.REVERSE:
            held.reverse()
        elif order is ReleaseOrder.SHUFFLE:
            (random.Random(seed) if seed is not None else self.rng).shuffle(held)  # noqa: S311 - test ordering
        for delivery in held:
            delivery.state = DeliveryState.QUEUED
            self._enqueue(delivery)
        return held

    def _enqueue(self, delivery: Delivery) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._before_start.append(delivery)
            return
        queue = self._queues.get(delivery.endpoint_id)
        if queue is None:
            queue = self._queues[delivery.endpoint_id] = asyncio.Queue()
            self._workers[delivery.endpoint_id] = loop.create_task(
                self._worker(queue), name=f"webhooks-{delivery.endpoint_id}"
            )
        queue.put_nowait(delivery)

    # -- sending ------------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Send what was recorded before the loop ran."""
        waiting, self._before_start = self._before_start, []
        for delivery in waiting:
            self._enqueue(delivery)

    async def _worker(self, queue: asyncio.Queue[Delivery]) -> None:
        while True:
            delivery = await queue.get()
            try:
                await self._attempt(delivery)
            except Exception:
                log.exception("webhook delivery %s crashed", delivery.id)
                delivery.state = DeliveryState.FAILED

    async def _attempt(self, delivery: Delivery) -> None:
        now = self.clock()
        timestamp = int(now) + delivery.timestamp_offset_s
        target = self.address(delivery, timestamp)
        if target is None:
            delivery.attempts.append(Attempt(now, timestamp, None, "endpoint gone"))
            delivery.state = DeliveryState.FAILED
            return
        status: int | None = None
        error: str | None = None
        try:
            timeout = aiohttp.ClientTimeout(total=self.config.timeout_ms / 1000)
            async with self._client().post(
                target.url, data=delivery.body, headers=dict(target.headers), timeout=timeout
            ) as resp:
                status = resp.status
                await resp.read()
        except (aiohttp.ClientError, TimeoutError, OSError) as err:
            error = f"{type(err).__name__}: {err}"
            log.info("webhook %s attempt %d failed: %s", delivery.event_type, len(delivery.attempts) + 1, error)
        delivery.attempts.append(Attempt(now, timestamp, status, error))
        if status is not None and 200 <= status < 300:
            delivery.state = DeliveryState.SUCCEEDED
            if self.on_success is not None:
                self.on_success(delivery)
            return
        if len(delivery.attempts) >= self.config.max_attempts:
            delivery.state = DeliveryState.FAILED
            return
        delivery.state = DeliveryState.RETRYING
        delay = self.config.retry_base_ms * 2 ** (len(delivery.attempts) - 1) / 1000
        timer = asyncio.get_running_loop().call_later(delay, self._retry, delivery)
        self._timers.add(timer)

    def _retry(self, delivery: Delivery) -> None:
        now = asyncio.get_running_loop().time()
        self._timers = {t for t in self._timers if not t.cancelled() and t.when() > now}
        if delivery.state is DeliveryState.RETRYING:
            self._enqueue(delivery)

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    # -- inspection and lifecycle -------------------------------------------------------------------------------

    def query(self, filters: Mapping[str, str]) -> list[dict[str, Any]]:
        """Deliveries matching every filter among event_id, type, endpoint_id and state, oldest first."""
        out = []
        for d in self.deliveries:
            facts = {"event_id": d.event_id, "type": d.event_type, "endpoint_id": d.endpoint_id, "state": d.state.value}
            if all(facts.get(k) == v for k, v in filters.items() if k in facts):
                out.append(d.to_json())
        return out

    def attempts(self) -> list[tuple[Delivery, Attempt]]:
        """Every attempt made, in the order they were made."""
        return sorted(((d, a) for d in self.deliveries for a in d.attempts), key=lambda pair: pair[1].at)

    def reset(self) -> None:
        """Forget every delivery; what is queued or waiting for a retry is not sent."""
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        for queue in self._queues.values():
            while not queue.empty():
                queue.get_nowait()
        self.deliveries.clear()
        self.held.clear()

    async def close(self) -> None:
        self.reset()
        for task in self._workers.values():
            task.cancel()
        for task in self._workers.values():
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._workers.clear()
        self._queues.clear()
        if self._session is not None:
            await self._session.close()


__all__ = [
    "Address",
    "Attempt",
    "Deliverer",
    "Delivery",
    "DeliveryConfig",
    "DeliveryState",
    "ReleaseOrder",
    "Target",
]
