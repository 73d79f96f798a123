"""Litestar app factory: health, metrics, RFC 9457 problem details, bearer JWT auth, OpenAPI at /schema."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from http import HTTPStatus
from typing import Any, cast

from litestar import Litestar, MediaType, Request, Response, Router, get
from litestar.exceptions import HTTPException, ValidationException
from litestar.middleware.base import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.plugins.pydantic import PydanticInitPlugin
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR, HTTP_503_SERVICE_UNAVAILABLE
from litestar.types import ASGIApp, ControllerRouterHandler, Message, Receive, Scope, Send
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import BaseModel

from prizeflow_runtime.auth import BearerJwtAuth, TokenVerifier
from prizeflow_runtime.errors import UseCaseError
from prizeflow_runtime.input_guard import guard_query, refuse_hostile_body
from prizeflow_runtime.outages import exc_sqlstate, is_database_timeout, is_outage
from prizeflow_runtime.params import TYPE_DECODERS

log = logging.getLogger(__name__)

ReadinessCheck = Callable[[], Awaitable[None]]
PROBLEM_JSON = "application/problem+json"
# A route handler (or router) whose `opt` sets this key is served without a token. Only the health probes,
# the metrics and the OpenAPI documents are: the exemption is on those exact routes, never a path pattern.
PUBLIC_KEY = "exclude_from_auth"
PUBLIC = {PUBLIC_KEY: True}
# How long a client is told to wait before retrying while PostgreSQL or Kafka is unreachable.
RETRY_AFTER_S = 5


class NotReady(Exception):  # noqa: N818 - an answer of a readiness check, not a failure of the code
    """Raised by a readiness check; its message is shown on /health/ready, so it names what is missing and
    carries no internal exception text."""


class ProblemError(HTTPException):
    """A domain error rendered as problem details with a stable `code`."""

    def __init__(self, status_code: int, code: str, detail: str, **extra: Any) -> None:
        super().__init__(status_code=status_code, detail=detail, extra=extra or None)
        self.code = code


_PYDANTIC_HEADER = re.compile(r"^\d+ validation errors? for \S+$")
_PYDANTIC_TYPE = re.compile(r" \[type=[a-z_]+[^\]]*\]$")


def field_errors(extra: Any) -> list[Any]:
    """The validation errors, each naming its field. A body model's own errors reach Litestar as the text of one
    pydantic error about `data` (the whole body); that text lists each failing field (its dotted location) and
    what is wrong with it, which become one error each (`key`, `message`, `source: body`). Anything else as is."""
    if not isinstance(extra, list):
        return []
    out: list[Any] = []
    for error in extra:
        message = error.get("message") if isinstance(error, dict) else None
        lines = message.splitlines() if isinstance(message, str) else []
        if not (error.get("key") == "data" and lines and _PYDANTIC_HEADER.match(lines[0])):
            out.append(error)
            continue
        parsed: list[dict[str, str]] = []
        loc: str | None = None
        for line in lines[1:]:
            if line and not line.startswith(" "):
                loc = line.strip()
            elif loc is not None and line.startswith("  ") and not line.startswith("    "):
                parsed.append({"key": loc, "message": _PYDANTIC_TYPE.sub("", line.strip()), "source": "body"})
                loc = None
        out.extend(parsed or [error])
    return out


def _unavailable(request: Request[Any, Any, Any], code: str, detail: str) -> Response[Any]:
    """503 problem details with Retry-After: nothing was changed, the same request may be sent again later."""
    status = HTTP_503_SERVICE_UNAVAILABLE
    body = {
        "type": f"https://prizeflow.dev/problems/{code}",
        "title": "Service Unavailable",
        "status": status,
        "detail": detail,
        "code": code,
        "instance": request.url.path,
    }
    return Response(body, status_code=status, media_type=PROBLEM_JSON, headers={"Retry-After": str(RETRY_AFTER_S)})


def problem_response(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    if isinstance(exc, UseCaseError):
        exc = ProblemError(exc.status, exc.code, exc.detail, **exc.extra)
    if isinstance(exc, HTTPException):
        status = exc.status_code
        if isinstance(exc, ProblemError):
            code, extra = exc.code, (exc.extra if isinstance(exc.extra, dict) else {})
        elif isinstance(exc, ValidationException):
            code, extra = "validation_error", {"errors": field_errors(exc.extra)}
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
        if status == 401:  # RFC 6750 §3: say which scheme, and whether the token presented was the problem
            challenge = 'Bearer realm="prizeflow"'
            if request.headers.get("authorization"):
                challenge += ', error="invalid_token"'
            return Response(body, status_code=status, media_type=PROBLEM_JSON, headers={"WWW-Authenticate": challenge})
    elif is_database_timeout(exc):
        log.warning("database timeout on %s: %s", request.url.path, exc_sqlstate(exc))
        return _unavailable(
            request, "database_timeout", "a statement or lock wait ran past its limit and was rolled back; retry later"
        )
    elif is_outage(exc):
        log.warning("dependency unavailable on %s: %s", request.url.path, type(exc).__name__)
        return _unavailable(
            request, "service_unavailable", "a database or broker this service needs is unreachable; retry later"
        )
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


class FieldStrictPydanticPlugin(PydanticInitPlugin):
    """Request bodies validated the way the contracts say: Litestar's own plugin calls
    `model_validate(value, strict=False)`, which overrides `Field(strict=True)`, so `"1000"` or `1000.0` passed
    as an amount of money. Here each field keeps its own strictness (money and counts are strict ints)."""

    @classmethod
    def decoders(cls, validate_strict: bool = False) -> list[tuple[Callable[[Any], bool], Callable[[Any, Any], Any]]]:
        return [(_is_model_class, _validate_model)]


def _is_model_class(value: Any) -> bool:
    return isinstance(value, type) and issubclass(value, BaseModel)


def _validate_model(model: type[BaseModel], value: Any) -> BaseModel:
    refuse_hostile_body(model.__name__, value)  # every string of every body, whatever its model says of it
    return model.model_validate(value)


MAX_BODY_BYTES = 1_048_576
MAX_JSON_DEPTH = 32
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_JSON_BRACKETS = re.compile(rb"[\[\]{}]")


def json_depth(body: bytes) -> int:
    """How deeply a JSON document nests, counted without parsing it (strings are skipped first)."""
    depth = deepest = 0
    for bracket in _JSON_BRACKETS.findall(_JSON_STRING.sub(b"", body)):
        if bracket in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


class BodyGuardMiddleware:
    """Refuses, before anything parses it, a body over `max_bytes` (413) or a JSON body nested deeper than
    `max_depth` (400): a deep document used to crash the decoder into a 500. Both as problem details."""

    def __init__(self, app: ASGIApp, *, max_bytes: int = MAX_BODY_BYTES, max_depth: int = MAX_JSON_DEPTH) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_depth = max_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if str(scope["type"]) != "http" or scope.get("method") in ("GET", "HEAD", "OPTIONS", "DELETE"):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message: dict[str, Any] = dict(await receive())
            if message["type"] != "http.request":
                await self.app(scope, _replay([], message), send)
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await _problem(send, scope, 413, "body_too_large", f"the request body exceeds {self.max_bytes} bytes")
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        if _is_json(scope) and json_depth(body) > self.max_depth:
            await _problem(send, scope, 400, "json_too_deep", f"JSON nested deeper than {self.max_depth} levels")
            return
        await self.app(scope, _replay([body], None), send)


def _is_json(scope: Scope) -> bool:
    for name, value in scope.get("headers", ()):
        if name == b"content-type":
            return b"json" in value.lower()
    return True  # no content type: judge it as JSON (what the handlers would try to read)


def _replay(bodies: list[bytes], last: dict[str, Any] | None) -> Receive:
    """A `receive` that hands the buffered body over once, then whatever comes next."""
    pending: list[dict[str, Any]] = (
        [{"type": "http.request", "body": b"".join(bodies), "more_body": False}] if bodies else []
    )
    if last is not None:
        pending.append(last)

    async def receive() -> dict[str, Any]:
        if pending:
            return pending.pop(0)
        return {"type": "http.disconnect"}

    return cast("Receive", receive)


async def _problem(send: Send, scope: Scope, status: int, code: str, detail: str) -> None:
    body = json.dumps(
        {
            "type": f"https://prizeflow.dev/problems/{code}",
            "title": _title(status),
            "status": status,
            "detail": detail,
            "instance": scope.get("path", ""),
            "code": code,
        }
    ).encode()
    start: dict[str, Any] = {
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", PROBLEM_JSON.encode()), (b"content-length", str(len(body)).encode())],
    }
    end: dict[str, Any] = {"type": "http.response.body", "body": body}
    await send(cast("Message", start))
    await send(cast("Message", end))


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
    auth: TokenVerifier | None = None,
    dependencies: dict[str, Any] | None = None,
    on_startup: Sequence[Callable[[], Awaitable[None]]] = (),
    on_shutdown: Sequence[Callable[[], Awaitable[None]]] = (),
    version: str = "0.1.0",
    refusal: Callable[[], str | None] | None = None,
) -> Litestar:
    """The HTTP face of a service. Every route but health, metrics and the schema needs a bearer token, checked
    by `auth`; without a verifier the app may serve those public routes only (it refuses to be built otherwise).
    While `refusal` names a reason (a database schema this build cannot run against), every route but the public
    ones answers 503 `schema_incompatible` with it. Every query parameter and every string of a JSON body passes
    `prizeflow_runtime.input_guard` before a handler runs."""

    async def before_request(request: Request[Any, Any, Any]) -> None:
        reason = refusal() if refusal is not None else None
        if reason is not None and not request.route_handler.opt.get(PUBLIC_KEY):
            raise ProblemError(HTTP_503_SERVICE_UNAVAILABLE, "schema_incompatible", reason)
        if request.scope["query_string"]:
            guard_query(request.route_handler, request.query_params.dict(), request.method, request.url.path)

    @get("/health/live", media_type=MediaType.JSON, include_in_schema=False, sync_to_thread=False, opt=PUBLIC)
    def live() -> dict[str, str]:
        return {"status": "ok"}

    @get("/health/ready", media_type=MediaType.JSON, include_in_schema=False, opt=PUBLIC)
    async def ready() -> Response[dict[str, Any]]:
        failures = await readiness_failures(readiness)
        if failures:
            return Response({"status": "unavailable", "failures": failures}, status_code=HTTP_503_SERVICE_UNAVAILABLE)
        return Response({"status": "ok"})

    @get("/metrics", include_in_schema=False, opt=PUBLIC)
    async def metrics() -> Response[bytes]:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    schema_router = Router("/schema", route_handlers=[], include_in_schema=False, opt=PUBLIC)
    app = Litestar(
        route_handlers=[live, ready, metrics, *route_handlers],
        middleware=[DefineMiddleware(BodyGuardMiddleware)],
        on_app_init=[BearerJwtAuth(verifier=auth).on_app_init] if auth is not None else [],
        plugins=[FieldStrictPydanticPlugin()],
        type_decoders=TYPE_DECODERS,
        exception_handlers={Exception: problem_response},
        openapi_config=OpenAPIConfig(
            title=f"Prizeflow {service_name}", version=version, path="/schema", openapi_router=schema_router
        ),
        dependencies=dependencies,
        on_startup=list(on_startup),
        on_shutdown=list(on_shutdown),
        before_request=before_request,
        debug=False,
        logging_config=None,  # the service configured JSON logging already; Litestar must not replace it
    )
    if auth is None and (guarded := _guarded_paths(app)):
        raise ValueError(f"{service_name}: routes {sorted(guarded)} need a token verifier (auth=...)")
    return app


def _guarded_paths(app: Litestar) -> set[str]:
    """Paths with a handler that is not public (Litestar's automatic OPTIONS handlers aside)."""
    return {
        route.path
        for route in app.routes
        for handler in getattr(route, "route_handlers", ())
        if not handler.opt.get(PUBLIC_KEY) and set(getattr(handler, "http_methods", ())) != {"OPTIONS"}
    }


async def readiness_failures(checks: Sequence[ReadinessCheck]) -> list[str]:
    """What /health/ready answers: every check run at once, `<check>: <what is missing>` for each that fails."""
    results = await asyncio.gather(*(_check(c) for c in checks))
    return [r for r in results if r is not None]


async def _check(check: ReadinessCheck) -> str | None:
    """None when the check passes, else `<check>: <what is missing>`: a `NotReady` says what; any other
    failure is only named (the probe is public: internal exception text goes to the log, not the body)."""
    name = getattr(check, "__name__", "check")
    try:
        await asyncio.wait_for(check(), timeout=2.0)
    except NotReady as err:
        return f"{name}: {err}"
    except TimeoutError:
        return f"{name}: no answer within 2s"
    except Exception as err:  # noqa: BLE001 - readiness reports any failure, it never raises
        log.warning("readiness check %s failed: %s", name, type(err).__name__)
        return f"{name}: unavailable"
    return None
