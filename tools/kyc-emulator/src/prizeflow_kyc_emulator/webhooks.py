"""Webhook delivery: every event the store emits is POSTed, with its digest, to the configured endpoint, retried
with backoff on anything but a 2xx. Tests turn delivery off (events are kept, not sent) and on again (what was
kept is sent then, in order)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from prizeflow_kyc_emulator.signing import DIGEST_ALG_HEADER, DIGEST_HEADER, payload_digest
from prizeflow_kyc_emulator.state import Event

log = logging.getLogger(__name__)


@dataclass
class WebhookConfig:
    url: str | None = None
    secret: str | None = field(default=None, repr=False)
    alg: str = "HMAC_SHA256_HEX"
    enabled: bool = True  # off: events are kept (`held`) until it is turned on again
    retry_base_ms: int = 1000
    max_attempts: int = 5
    timeout_ms: int = 5000


@dataclass
class Attempt:
    correlation_id: str
    type: str
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

    @staticmethod
    def body(event: Event) -> bytes:
        return json.dumps(event.to_json(), separators=(",", ":")).encode()

    def submit(self, event: Event) -> None:
        if self.config.url is None:
            return
        if not self.config.enabled:
            self.held.append(event)
            return
        self._queue.put_nowait(event)

    def enable(self, enabled: bool) -> int:
        """Delivery on or off; turned on, what was held is queued in order. The number released."""
        self.config.enabled = enabled
        if not enabled:
            return 0
        held, self.held = self.held, []
        for event in held:
            self._queue.put_nowait(event)
        return len(held)

    def redeliver(self, event: Event) -> None:
        self._queue.put_nowait(event)

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.config.timeout_ms / 1000))
        self._runner = asyncio.create_task(self._run(), name="kyc-webhooks")

    async def stop(self) -> None:
        tasks = [t for t in [self._runner, *self._tasks] if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    async def _run(self) -> None:
        while True:
            event = await self._queue.get()
            await self._attempt(event, 1)

    async def _attempt(self, event: Event, attempt: int) -> None:
        url, secret, alg = self.config.url, self.config.secret, self.config.alg
        if url is None or secret is None or self._session is None:
            return
        body = self.body(event)
        status: int | None = None
        headers = {
            "Content-Type": "application/json",
            DIGEST_HEADER: payload_digest(secret, body, alg),
            DIGEST_ALG_HEADER: alg,
        }
        try:
            async with self._session.post(url, data=body, headers=headers) as resp:
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as err:
            log.info("webhook %s attempt %d failed: %s", event.type, attempt, type(err).__name__)
        self.attempts.append(Attempt(event.correlation_id, event.type, status, time.time()))
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
            "alg": self.config.alg,
            "enabled": self.config.enabled,
            "held": len(self.held),
            "attempts": [a.__dict__ for a in self.attempts],
        }


__all__ = ["Attempt", "Deliverer", "WebhookConfig"]
