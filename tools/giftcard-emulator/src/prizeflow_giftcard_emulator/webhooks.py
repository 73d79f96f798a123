"""Webhook delivery: every event the store emits is POSTed, signed, to the configured endpoint, retried with
backoff on anything but a 2xx. Faults: each event delivered `duplicates` times, or held (`hold`) and released
later in reverse order (out-of-order delivery)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from prizeflow_giftcard_emulator.signing import SIGNATURE_HEADER, sign
from prizeflow_giftcard_emulator.state import Event

log = logging.getLogger(__name__)


@dataclass
class WebhookConfig:
    url: str | None = None
    private_key: str | None = field(default=None, repr=False)
    duplicates: int = 1  # deliveries per event
    hold: bool = False  # queue events without delivering them until `release`
    retry_base_ms: int = 1000
    max_attempts: int = 8
    timeout_ms: int = 10_000


@dataclass
class Attempt:
    event_uuid: str
    event: str
    status: int | None
    at: float


class Deliverer:
    def __init__(self, config: WebhookConfig) -> None:
        self.config = config
        self.held: list[Event] = []
        self.attempts: deque[Attempt] = deque(maxlen=10_000)
        self._queue: asyncio.Queue[Event] = asyncio.Queue()
        self._tasks: set[asyncio.Task[None]] = set()
        self._runner: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None

    def body(self, event: Event) -> bytes:
        return json.dumps(event.to_json(), separators=(",", ":")).encode()

    def submit(self, event: Event) -> None:
        if self.config.url is None:
            return
        if self.config.hold:
            self.held.append(event)
            return
        for _ in range(self.config.duplicates):
            self._queue.put_nowait(event)

    def release(self, *, reverse: bool) -> int:
        events = list(reversed(self.held)) if reverse else list(self.held)
        self.held.clear()
        for event in events:
            for _ in range(self.config.duplicates):
                self._queue.put_nowait(event)
        return len(events)

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.config.timeout_ms / 1000))
        self._runner = asyncio.create_task(self._run(), name="giftcard-webhooks")

    async def stop(self) -> None:
        for task in [self._runner, *self._tasks]:
            if task is not None:
                task.cancel()
        await asyncio.gather(*[t for t in [self._runner, *self._tasks] if t is not None], return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    async def _run(self) -> None:
        while True:
            event = await self._queue.get()
            # In queue order: the first attempt of each delivery is made in the order events were queued.
            await self._attempt(event, 1)

    async def _attempt(self, event: Event, attempt: int) -> None:
        url, key = self.config.url, self.config.private_key
        if url is None or key is None or self._session is None:
            return
        body = self.body(event)
        status: int | None = None
        try:
            headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(key, body)}
            async with self._session.post(url, data=body, headers=headers) as resp:
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as err:
            log.info("webhook %s attempt %d failed: %s", event.event, attempt, type(err).__name__)
        self.attempts.append(Attempt(event.uuid, event.event, status, time.time()))
        if (status is None or status >= 300) and attempt < self.config.max_attempts:
            delay = self.config.retry_base_ms / 1000 * 2 ** (attempt - 1)
            task = asyncio.create_task(self._retry(event, attempt + 1, delay))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _retry(self, event: Event, attempt: int, delay: float) -> None:
        await asyncio.sleep(delay)  # the provider's own backoff schedule, not a test's synchronisation
        await self._attempt(event, attempt)

    def to_json(self) -> dict[str, Any]:
        return {
            "url": self.config.url,
            "duplicates": self.config.duplicates,
            "hold": self.config.hold,
            "held": len(self.held),
            "attempts": [a.__dict__ for a in self.attempts],
        }


__all__ = ["Attempt", "Deliverer", "WebhookConfig"]
