"""The simulator as a long-running process for `make run`: publishes continuously, exposes /metrics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from prometheus_client import CollectorRegistry

from prizeflow_runtime.http import create_app
from prizeflow_runtime.logging import configure_logging
from prizeflow_runtime.service import serve
from prizeflow_runtime.settings import ServiceSettings
from prizeflow_simulator.runner import Simulator

log = logging.getLogger("prizeflow.simulator")


def serve_simulator(build: Callable[[CollectorRegistry], Simulator], *, rate: float) -> None:
    settings = ServiceSettings(service_name="simulator")
    configure_logging("simulator", level=settings.log_level, json_output=settings.log_json)
    registry = CollectorRegistry()
    sim = build(registry)
    task: asyncio.Task[object] | None = None

    async def start() -> None:
        nonlocal task
        await sim.start()
        task = asyncio.create_task(_forever(sim, rate))

    async def stop() -> None:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await sim.stop()

    async def ready() -> None:
        if task is None or task.done():
            raise RuntimeError("the simulator is not publishing")

    app = create_app(
        service_name="simulator", registry=registry, readiness=[ready], on_startup=[start], on_shutdown=[stop]
    )
    serve(app, settings)


async def _forever(sim: Simulator, rate: float) -> None:
    while True:
        try:
            await sim.run(rate=rate)
        except Exception:
            log.exception("publishing failed; retrying in 1s")
            await asyncio.sleep(1)
