"""Serving a service runtime (`prizeflow_runtime.service.ServiceRuntime`, as `Served` sees it): its HTTP app
(routes, health, metrics, admin), the process's garbage-collector tuning and `serve()` (uvicorn until SIGTERM/SIGINT).
The runtime's lifecycle is `prizeflow_runtime.service`."""

from __future__ import annotations

import gc
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from litestar import Litestar
from litestar.di import Provide
from litestar.types import ASGIApp, ControllerRouterHandler

from prizeflow_contracts.topics import AUDIT
from prizeflow_runtime.admin_audit import RuntimeTimeline
from prizeflow_runtime.admin_http import DeadLettersController, TimelineController
from prizeflow_runtime.http import create_app
from prizeflow_runtime.settings import ServiceSettings
from prizeflow_runtime.timeline import Timeline, TimelineSource

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from sqlalchemy.ext.asyncio import AsyncEngine

    from prizeflow_runtime.auth import TokenVerifier
    from prizeflow_runtime.dead_letters import DeadLetterAdmin
    from prizeflow_runtime.http import ReadinessCheck


class Served(Protocol):
    """What the app serves of a service runtime (`prizeflow_runtime.service.ServiceRuntime`): its settings, metrics,
    database, token verifier, readiness, dead letters and lifecycle."""

    settings: ServiceSettings
    registry: CollectorRegistry
    engine: AsyncEngine
    auth: TokenVerifier | None

    @property
    def has_consumers(self) -> bool: ...

    def dead_letter_admin(self) -> DeadLetterAdmin: ...

    def produces(self, topics: Sequence[str]) -> None: ...

    def readiness_checks(self) -> list[ReadinessCheck]: ...

    async def start_in_background(self) -> None: ...

    async def stop(self) -> None: ...

    def _serving_refused(self) -> str | None: ...


# A poll of thousands of events allocates millions of short-lived objects, most of them still referenced
# until the poll's transaction commits. With CPython's default thresholds (700, 10, 10) that triggers
# hundreds of collections per poll, the full ones scanning every long-lived object in the process: about
# a third of the consumer's CPU time in the settlement benchmark. Larger thresholds plus freezing what
# start-up allocated keep the collector (cycles are still collected) off the hot path.
GC_THRESHOLDS = (50_000, 20, 100)


_gc_tuned = False


def tune_gc(thresholds: tuple[int, int, int] = GC_THRESHOLDS) -> None:
    """Move start-up objects to the permanent generation (once per process), raise the thresholds."""
    global _gc_tuned  # noqa: PLW0603 - a process-wide setting, applied once
    if not _gc_tuned:
        _gc_tuned = True
        gc.collect()
        gc.freeze()
    gc.set_threshold(*thresholds)


def service_app(
    runtime: Served,
    route_handlers: Sequence[ControllerRouterHandler] = (),
    *,
    dependencies: dict[str, Any] | None = None,
    dead_letter_routes: bool = True,
    timeline: Sequence[TimelineSource] = (),
) -> Litestar:
    """The service's app; a service with consumers also serves `/admin/dead-letters` unless it has no inbound
    API by design (the signer: its dead letters are decided in its database, by its operators). A service
    that verifies tokens serves `/admin/timeline/{correlation_id}`: its admin audit and dead letters, plus
    the entries of its own `timeline` sources."""
    handlers = list(route_handlers)
    deps = dict(dependencies or {})
    if runtime.auth is not None:
        name = runtime.settings.service_name
        flow = Timeline(name, [RuntimeTimeline(runtime.engine, name), *timeline])
        handlers.append(TimelineController)
        deps["timeline"] = Provide(lambda: flow, sync_to_thread=False)
    if runtime.has_consumers and dead_letter_routes:
        admin = runtime.dead_letter_admin()
        handlers.append(DeadLettersController)
        deps["dead_letters"] = Provide(lambda: admin, sync_to_thread=False)
        runtime.produces([AUDIT.name])  # a redrive or a discard is audited
    return create_app(
        service_name=runtime.settings.service_name,
        route_handlers=handlers,
        registry=runtime.registry,
        readiness=runtime.readiness_checks(),
        auth=runtime.auth,
        dependencies=deps,
        on_startup=[runtime.start_in_background],
        on_shutdown=[runtime.stop],
        refusal=runtime._serving_refused,
    )


def serve(app: Litestar | ASGIApp, settings: ServiceSettings) -> None:
    """Run the service's HTTP app (and with it, its consumers and relay) until SIGTERM/SIGINT. `app` is the
    Litestar app, or an ASGI app in front of it (the webhook ingress)."""
    from prizeflow_runtime.http_server import run

    run(app, host=settings.http_host, port=settings.http_port)
