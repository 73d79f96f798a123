"""The HTTP server every Prizeflow process runs: uvicorn, awake once a second rather than ten times while idle.

uvicorn's main loop sleeps 0.1 s between looks at `should_exit` (set by its signal handler), refreshing the `Date`
header on every tenth: ten wake-ups a second in every process, whatever the traffic. `QuietServer` waits for the
exit itself instead (its signal handler ends the wait at once) and looks every second, when it refreshes the
header as uvicorn does. Shutting down is as prompt as before; the header is as fresh.
"""

from __future__ import annotations

import asyncio
import contextlib
from types import FrameType
from typing import Any

import uvicorn

_TICKS_A_SECOND = 10  # uvicorn's `on_tick` refreshes the Date header when its counter is a multiple of this
_COUNTER_WRAP = 864_000  # as uvicorn's


class QuietServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._exit = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        if self._loop is not None:  # a signal handler: wake the loop through its self-pipe
            self._loop.call_soon_threadsafe(self._exit.set)

    async def main_loop(self) -> None:
        self._loop = asyncio.get_running_loop()
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + _TICKS_A_SECOND) % _COUNTER_WRAP
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._exit.wait(), timeout=1.0)


def run(app: Any, *, host: str, port: int) -> None:
    """Serve `app` until SIGTERM/SIGINT (uvloop, httptools, no access log, logging left to ours)."""
    config = uvicorn.Config(
        app, host=host, port=port, loop="uvloop", http="httptools", log_config=None, access_log=False
    )
    QuietServer(config).run()
