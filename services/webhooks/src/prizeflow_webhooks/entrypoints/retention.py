"""The periodic pruning of deliveries past their retention, beside the ingress (every replica runs it: the
deletes skip rows another replica holds)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class RetentionLoop:
    def __init__(self, prune: Callable[[], Awaitable[int]], *, interval_s: float) -> None:
        self.prune = prune
        self.interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Started once the runtime is up; prunes at once, then every interval."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="deliveries-retention")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self.prune()
            except Exception:
                log.exception("deleting deliveries past their retention failed; again in %.0fs", self.interval_s)
            await asyncio.sleep(self.interval_s)


__all__ = ["RetentionLoop"]
