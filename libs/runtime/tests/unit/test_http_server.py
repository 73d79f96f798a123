"""`QuietServer`: uvicorn's main loop, awake once a second instead of ten times, and ended at once by a signal."""

from __future__ import annotations

import asyncio
import signal

import pytest
import uvicorn

from prizeflow_runtime.http_server import QuietServer


async def _app(scope: object, receive: object, send: object) -> None:  # never called: no socket is opened
    raise AssertionError("not served")


@pytest.fixture
def server() -> QuietServer:
    return QuietServer(uvicorn.Config(_app, log_config=None))


async def test_it_wakes_once_a_second_refreshing_the_date_each_time_and_a_signal_ends_its_wait_at_once(
    server: QuietServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    ticks: list[int] = []
    on_tick = server.on_tick

    async def counted(counter: int) -> bool:
        ticks.append(counter)
        return await on_tick(counter)

    monkeypatch.setattr(server, "on_tick", counted)
    loop = asyncio.get_running_loop()
    signalled = loop.time() + 1.5
    loop.call_at(signalled, server.handle_exit, signal.SIGTERM, None)
    await asyncio.wait_for(server.main_loop(), timeout=10)
    returned = loop.time()
    # uvicorn's own loop would have ticked 15 times by the signal: this one ticked at the start, after a second,
    # and once more for the signal, which ended its wait instead of the next second's timeout.
    assert ticks == [0, 10, 20]
    assert all(counter % 10 == 0 for counter in ticks)  # uvicorn refreshes its Date header on these
    assert returned - signalled < 0.4
    assert server.should_exit
    assert server.server_state.default_headers[0][0] == b"date"
