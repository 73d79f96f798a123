"""Litestar app factory: health, metrics, RFC 9457 problem details, JWT auth, OpenAPI at /schema."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from http import HTTPStatus
from typing import Any

from litestar import Litestar, MediaType, Request, Response, get
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi import OpenAPIConfig
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR, HTTP_503_SERVICE_UNAVAILABLE
from litestar.types import ControllerRouterHandler
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from prizeflow_runtime.auth import JwtConfig, jwt_middleware
from prizeflow_runtime.errors import UseCaseError

log = logging.getLogger(__name__)

ReadinessCheck = Callable[[], Awaitable[None]]
PUBLIC_PATHS = ["/health", "/metrics", "/schema"]
PROBLEM_JSON = "application/problem+json"


class ProblemError(HTTPException):
    """A domain error rendered as problem details with a stable `code`."""

    def __init__(self, status_code: int, code: str, detail: str, **extra: Any) -> None:
        super().__init__(status_code=status_code, detail=detail, extra=extra or None)
        self.code = code


def problem_response(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    if isinstance(exc, UseCaseError):
        exc = ProblemError(exc.status, exc.code, exc.detail, **exc.extra)
    if isinstance(exc, HTTPException):
        status = exc.status_code
        if isinstance(exc, ProblemError):
            code, extra = exc.code, (exc.extra if isinstance(exc.extra, dict) else {})
        elif isinstance(exc, ValidationException):
            code, extra = "validation_error", {"errors": exc.extra or []}
        else:
            code, extra = _slug(status), {}
        body: dict[str, Any] = {
            "type": f"https://prizeflow.dev/problems/{code}",
            "title": _title(status),
            "status": status,
            "detail": exc.detail,
            "instance": request.url.path,
            "code": code,
            **extra,
        }
    else:
        log.error("unhandled error on %s", request.url.path, exc_info=exc)
        status = HTTP_500_INTERNAL_SERVER_ERROR
        body = {
            "type": "https://prizeflow.dev/problems/internal_error",
            "title": "Internal Server Error",
            "status": status,
            "detail": "an unexpected error occurred; it has been logged",
            "code": "internal_error",
            "instance": request.url.path,
        }
    return Response(body, status_code=status, media_type=PROBLEM_JSON)


def _slug(status: int) -> str:
    return {
        400: "bad_request",
        401: "unauthorized",
        403: "forbidden",
        404: "not_found",
        405: "method_not_allowed",
        409: "conflict",
        422: "unprocessable",
        429: "too_many_requests",
    }.get(status, f"http_{status}")


def _title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def create_app(
    *,
    service_name: str,
    route_handlers: Sequence[ControllerRouterHandler] = (),
    registry: CollectorRegistry,
    readiness: Sequence[ReadinessCheck] = (),
    jwt: JwtConfig | None = None,
    dependencies: dict[str, Any] | None = None,
    on_startup: Sequence[Callable[[], Awaitable[None]]] = (),
    on_shutdown: Sequence[Callable[[], Awaitable[None]]] = (),
    version: str = "0.1.0",
) -> Litestar:
    """The HTTP face of a service. Every route but health, metrics and the schema needs a bearer token."""

    @get("/health/live", media_type=MediaType.JSON, include_in_schema=False, sync_to_thread=False)
    def live() -> dict[str, str]:
        return {"status": "ok"}

    @get("/health/ready", media_type=MediaType.JSON, include_in_schema=False)
    async def ready() -> Response[dict[str, Any]]:
        results = await asyncio.gather(*(_check(c) for c in readiness))
        failures = [r for r in results if r is not None]
        if failures:
            return Response({"status": "unavailable", "failures": failures}, status_code=HTTP_503_SERVICE_UNAVAILABLE)
        return Response({"status": "ok"})

    @get("/metrics", include_in_schema=False)
    async def metrics() -> Response[bytes]:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    middleware = [jwt_middleware(jwt, exclude=PUBLIC_PATHS)] if jwt is not None else []
    return Litestar(
        route_handlers=[live, ready, metrics, *route_handlers],
        middleware=middleware,
        exception_handlers={Exception: problem_response},
        openapi_config=OpenAPIConfig(title=f"Prizeflow {service_name}", version=version, path="/schema"),
        dependencies=dependencies,
        on_startup=list(on_startup),
        on_shutdown=list(on_shutdown),
        debug=False,
        logging_config=None,  # the service configured JSON logging already; Litestar must not replace it
    )


async def _check(check: ReadinessCheck) -> str | None:
    try:
        await asyncio.wait_for(check(), timeout=2.0)
    except Exception as err:  # noqa: BLE001 - readiness reports any failure, it never raises
        return f"{getattr(check, '__name__', 'check')}: {err!r}"
    return None
