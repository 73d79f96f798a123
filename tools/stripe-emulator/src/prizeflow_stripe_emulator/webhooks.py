"""Webhook delivery: every recorded event POSTed to every endpoint that wants it, signed with `Stripe-Signature`,
retried with exponential backoff on a non-2xx answer or a connection error.

Each endpoint has one FIFO worker, so first attempts arrive in the order the events were recorded (or released);
retries are scheduled apart and do not hold the queue. For negative tests: hold deliveries and release them in
another order, send each event several times, sign with a shifted (stale) timestamp.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import aiohttp

from prizeflow_stripe_emulator.models import new_id
from prizeflow_stripe_emulator.signing import stripe_signature
from prizeflow_stripe_emulator.state import Obj, Store

log = logging.getLogger(__name__)

USER_AGENT = "Stripe/1.0 (+https://stripe.com/docs/webhooks)"


class DeliveryState(StrEnum):
    HELD = "held"
    QUEUED = "queued"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # attempts exhausted, or the endpoint was deleted


class ReleaseOrder(StrEnum):
    FIFO = "fifo"
    REVERSE = "reverse"
    SHUFFLE = "shuffle"


@dataclass
class DeliveryConfig:
    hold: bool = False
    duplicates: int = 1
    timestamp_offset_s: int = 0
    retry_base_ms: int = 1000
    max_attempts: int = 8
    timeout_ms: int = 10_000

    def update(self, changes: dict[str, Any]) -> None:
        for name, value in changes.items():
            if name not in self.__dataclass_fields__:
                raise ValueError(f"unknown webhook setting {name!r}")
            if name == "hold":
                if not isinstance(value, bool):
                    raise ValueError("hold must be a boolean")
            elif not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(f"{name} must be an integer")
            elif name != "timestamp_offset_s" and value < 1:
                raise ValueError(f"{name} must be >= 1")
            setattr(self, name, value)


@dataclass
class Attempt:
    at: float
    timestamp: int
    status: int | None
    error: str | None


@dataclass
class Delivery:
    id: str
    event_id: str
    event_type: str
    endpoint_id: str
    url: str
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


class Deliverer:
    def __init__(
        self, store: Store, config: DeliveryConfig, *, rng: random.Random, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.config = config
        self.rng = rng
        self.clock = clock
        self.deliveries: list[Delivery] = []
        self.held: list[Delivery] = []
        self._queues: dict[str, asyncio.Queue[Delivery]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._timers: set[asyncio.TimerHandle] = set()
        self._before_start: list[Delivery] = []  # recorded before the event loop ran (settings applied at build)
        self._session: aiohttp.ClientSession | None = None
        store.listeners.append(self.on_event)

    # -- enqueueing (synchronous: called by the store) ----------------------------------------------------

    def on_event(self, event: Obj) -> None:
        targets = [e for e in self.store.endpoints.values() if e.wants(event)]
        event["pending_webhooks"] = len(targets)
        self._fan_out(event, [t.id for t in targets], copies=self.config.duplicates)

    def resend(self, event: Obj, endpoint_id: str | None = None) -> list[Delivery]:
        """Admin: deliver a recorded event again (to one endpoint, or to every endpoint that wants it)."""
        targets = [
            e.id
            for e in self.store.endpoints.values()
            if (endpoint_id is None and e.wants(event)) or e.id == endpoint_id
        ]
        return self._fan_out(event, targets, copies=1)

    def _fan_out(self, event: Obj, endpoint_ids: list[str], *, copies: int) -> list[Delivery]:
        body = json.dumps(event, indent=2).encode()
        created = []
        for endpoint_id in endpoint_ids:
            for copy in range(copies):
                delivery = Delivery(
                    id=new_id("whd", 16),
                    event_id=event["id"],
                    event_type=event["type"],
                    endpoint_id=endpoint_id,
                    url=self.store.endpoints[endpoint_id].url,
                    copy=copy,
                    body=body,
                    timestamp_offset_s=self.config.timestamp_offset_s,
                    state=DeliveryState.HELD if self.config.hold else DeliveryState.QUEUED,
                )
                self.deliveries.append(delivery)
                created.append(delivery)
                if self.config.hold:
                    self.held.append(delivery)
                else:
                    self._enqueue(delivery)
        return created

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

    async def start(self, _app: object = None) -> None:
        """Send what was recorded before the loop ran."""
        waiting, self._before_start = self._before_start, []
        for delivery in waiting:
            self._enqueue(delivery)

    def release(self, order: ReleaseOrder, *, seed: int | None = None) -> list[Delivery]:
        """Admin: send the held deliveries, in recorded order, reversed or shuffled; stops holding."""
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

    # -- sending ------------------------------------------------------------------------------------------

    async def _worker(self, queue: asyncio.Queue[Delivery]) -> None:
        while True:
            delivery = await queue.get()
            try:
                await self._attempt(delivery)
            except Exception:
                log.exception("webhook delivery %s crashed", delivery.id)
                delivery.state = DeliveryState.FAILED

    async def _attempt(self, delivery: Delivery) -> None:
        endpoint = self.store.endpoints.get(delivery.endpoint_id)
        now = self.clock()
        timestamp = int(now) + delivery.timestamp_offset_s
        if endpoint is None:
            delivery.attempts.append(Attempt(now, timestamp, None, "endpoint deleted"))
            delivery.state = DeliveryState.FAILED
            return
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": USER_AGENT,
            "Stripe-Signature": stripe_signature(endpoint.secrets, timestamp, delivery.body),
        }
        status: int | None = None
        error: str | None = None
        try:
            session = self._client()
            timeout = aiohttp.ClientTimeout(total=self.config.timeout_ms / 1000)
            async with session.post(endpoint.url, data=delivery.body, headers=headers, timeout=timeout) as resp:
                status = resp.status
                await resp.read()
        except (aiohttp.ClientError, TimeoutError, OSError) as err:
            error = f"{type(err).__name__}: {err}"
        delivery.attempts.append(Attempt(now, timestamp, status, error))
        if status is not None and 200 <= status < 300:
            delivery.state = DeliveryState.SUCCEEDED
            event = self.store.events.get(delivery.event_id)
            if event is not None and event["pending_webhooks"] > 0:
                event["pending_webhooks"] -= 1
            return
        if len(delivery.attempts) >= self.config.max_attempts:
            delivery.state = DeliveryState.FAILED
            return
        delivery.state = DeliveryState.RETRYING
        delay = self.config.retry_base_ms * 2 ** (len(delivery.attempts) - 1) / 1000
        timer = asyncio.get_running_loop().call_later(delay, self._retry, delivery)
        self._timers.add(timer)

    def _retry(self, delivery: Delivery) -> None:
        self._timers = {t for t in self._timers if not t.cancelled() and t.when() > asyncio.get_running_loop().time()}
        if delivery.state is DeliveryState.RETRYING:
            self._enqueue(delivery)

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    # -- lifecycle and inspection -------------------------------------------------------------------------

    def query(self, filters: dict[str, str]) -> list[dict[str, Any]]:
        out = []
        for d in self.deliveries:
            fields = {
                "event_id": d.event_id,
                "type": d.event_type,
                "endpoint_id": d.endpoint_id,
                "state": d.state.value,
            }
            if all(fields.get(k) == v for k, v in filters.items() if k in fields):
                out.append(d.to_json())
        return out

    def reset(self) -> None:
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


__all__ = ["Attempt", "Deliverer", "Delivery", "DeliveryConfig", "DeliveryState", "ReleaseOrder"]
