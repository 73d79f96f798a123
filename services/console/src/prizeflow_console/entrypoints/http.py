"""The console's Litestar app: pages, sign-in, health and metrics, security headers, sessions and CSRF."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from litestar import Litestar, Request, Response, get
from litestar.config.csrf import CSRFConfig
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.di import Provide
from litestar.exceptions import HTTPException, NotFoundException, PermissionDeniedException, ValidationException
from litestar.middleware.base import DefineMiddleware
from litestar.middleware.session.client_side import ClientSideSessionBackend, CookieBackendConfig
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Redirect, Template
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig
from litestar.types import ControllerRouterHandler, Receive, Scope, Send
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest

from prizeflow_console.application.login import SignInFlow
from prizeflow_console.application.ports import Downloads, IdentityProvider, PlatformApi, SessionStore
from prizeflow_console.application.timeline import TraceFlow
from prizeflow_console.domain.money import format_minor, mask_destination, redeemable
from prizeflow_console.domain.session import Timeouts, expiry_of, id_hash, judge, needs_touch
from prizeflow_console.domain.viewer import Role
from prizeflow_console.entrypoints.auth import AuthController, PeopleController
from prizeflow_console.entrypoints.pages.approvals import ApprovalsController
from prizeflow_console.entrypoints.pages.campaigns import CampaignsController
from prizeflow_console.entrypoints.pages.compliance import ComplianceController
from prizeflow_console.entrypoints.pages.dead_letters import DeadLettersController
from prizeflow_console.entrypoints.pages.fx import FxController
from prizeflow_console.entrypoints.pages.holds import HoldsController
from prizeflow_console.entrypoints.pages.reconciliation import (
    ExceptionsController,
    ExportsController,
    ReconciliationController,
)
from prizeflow_console.entrypoints.pages.rounds import RoundsController
from prizeflow_console.entrypoints.pages.timeline import TimelineController
from prizeflow_console.entrypoints.pages.wallet import WalletController
from prizeflow_console.entrypoints.web import (
    SCOPE_SESSION,
    SESSION_USER,
    ForbiddenPageError,
    Session,
    SignInRequiredError,
    current,
    page,
    session_data,
    session_id,
    signed_in,
)
from prizeflow_runtime.params import TYPE_DECODERS

log = logging.getLogger("prizeflow_console")
PACKAGE = Path(__file__).resolve().parent.parent
PUBLIC = {"exclude_from_csrf": True}
# `reason` of `prizeflow_console_refused_total`: a session cookie that is no session, or a request from elsewhere.
REFUSALS = (
    "session_unverifiable",
    "session_revoked",
    "session_expired_idle",
    "session_expired_absolute",
    "session_token_expired",
    "cross_origin",
)
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _verifying_backend(refused: Counter) -> type[ClientSideSessionBackend]:
    class VerifyingCookieBackend(ClientSideSessionBackend):
        """A session cookie that does not decrypt, verify or parse is no session: the person signs in again (the
        empty session clears the cookie), never an error page; counted. Litestar's own backend lets a cookie whose
        associated data was altered raise."""

        async def load_from_connection(self, connection: ASGIConnection[Any, Any, Any, Any]) -> dict[str, Any]:
            if cookie_keys := self.get_cookie_keys(connection):
                data = [connection.cookies[key].encode("utf-8") for key in cookie_keys]
                try:
                    return self.load_data(data)
                except Exception:  # noqa: BLE001 - whatever fails to read it, an unverifiable cookie is no session
                    refused.labels("session_unverifiable").inc()
                    log.info("session cookie refused: it does not verify")
            return {}

    return VerifyingCookieBackend


class SameOriginMiddleware:
    """The browsers' own signal as a second wall behind the CSRF token: a state-changing request whose `Origin` (or,
    without one or with `null`, `Sec-Fetch-Site`) says it comes from another site is refused before anything runs. A
    request with neither (not a browser) is judged by the CSRF token alone."""

    def __init__(self, app: Any, *, origin: str, refused: Counter) -> None:
        self.app = app
        self.origin = origin
        self.refused = refused

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if str(scope["type"]) == "http" and scope.get("method") in UNSAFE_METHODS and not self._same_origin(scope):
            self.refused.labels("cross_origin").inc()
            log.warning("state-changing request from another origin refused", extra={"path": scope.get("path")})
            raise PermissionDeniedException("this request came from another site")
        await self.app(scope, receive, send)

    def _same_origin(self, scope: Scope) -> bool:
        headers = {k.lower(): v for k, v in scope.get("headers") or []}
        origin = headers.get(b"origin")
        # `null`: the browser withholds the origin (the console's own pages send `Referrer-Policy: no-referrer`,
        # under which a form's POST carries `Origin: null`): then its `Sec-Fetch-Site` says where the request is from.
        if origin is not None and origin != b"null":
            return origin.decode("latin-1").rstrip("/").lower() == self.origin.lower()
        site = headers.get(b"sec-fetch-site")
        return site is None or site in (b"same-origin", b"none")


PAGES: tuple[ControllerRouterHandler, ...] = (
    ApprovalsController,
    HoldsController,
    RoundsController,
    CampaignsController,
    DeadLettersController,
    TimelineController,
    ReconciliationController,
    ExceptionsController,
    ExportsController,
    ComplianceController,
    FxController,
    WalletController,
)


def _when(value: Any) -> str:
    """An RFC 3339 instant as people read it (UTC, seconds)."""
    if not value:
        return ""
    try:
        at = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return str(value)
    return at.strftime("%Y-%m-%d %H:%M:%S UTC")


def template_config() -> TemplateConfig[JinjaTemplateEngine]:
    def setup(engine: JinjaTemplateEngine) -> None:
        env = engine.engine
        env.filters["money"] = lambda amount, asset: format_minor(int(amount), str(asset))
        env.filters["mask"] = mask_destination
        env.filters["when"] = _when
        env.tests["redeemable"] = redeemable
        env.globals["urlencode"] = urlencode

    return TemplateConfig(directory=PACKAGE / "templates", engine=JinjaTemplateEngine, engine_callback=setup)


@get("/", include_in_schema=False)
async def home(request: Request[Any, Any, Any]) -> Template:
    session = signed_in(request)
    return page(
        request, "home.html", session=session, title="Prizeflow console", is_admin=Role.ADMIN in session.viewer.roles
    )


@get("/health/live", include_in_schema=False, opt=PUBLIC, sync_to_thread=False)
def live() -> dict[str, str]:
    return {"status": "ok"}


@get("/health/ready", include_in_schema=False, opt=PUBLIC, sync_to_thread=False)
def ready() -> dict[str, str]:
    return {"status": "ok"}


def _sign_in_required(request: Request[Any, Any, Any], exc: SignInRequiredError) -> Response[Any]:
    target = "/auth/login?" + urlencode({"next": exc.next_path})
    if request.headers.get("hx-request"):
        return Response(content="", status_code=401, headers={"HX-Redirect": target})
    return Redirect(path=target, status_code=303)


def _forbidden(request: Request[Any, Any, Any], exc: ForbiddenPageError) -> Template:
    return page(request, "forbidden.html", session=current(request), title="Not for your role", status_code=403)


def _http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Template:
    status = exc.status_code
    if status >= 500:
        log.error("HTTP %s on %s: %s", status, request.url.path, exc.detail, exc_info=exc)
    title = "Page not found" if isinstance(exc, NotFoundException) else "Request refused"
    if status >= 500:
        detail = "something went wrong on our side"
    elif isinstance(exc, ValidationException):  # its detail is the request's URL: a callback's code, say
        named = sorted({str(e["key"]) for e in exc.extra or [] if isinstance(e, dict) and e.get("key")})
        detail = "the address or the form holds a value this page does not take" + (
            f": {', '.join(named)}" if named else ""
        )
    else:
        detail = exc.detail
    return page(request, "error.html", session=current(request), title=title, detail=detail, status_code=status)


def _unexpected(request: Request[Any, Any, Any], exc: Exception) -> Template:
    log.error("unhandled %s on %s", type(exc).__name__, request.url.path, exc_info=exc)
    return page(request, "error.html", session=current(request), title="Something went wrong",
                detail="the console failed to show this page; try again", status_code=500)  # fmt: skip


def _security_headers(idp_origin: str) -> dict[str, str]:
    return {
        "Content-Security-Policy": (
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
            f"frame-ancestors 'none'; base-uri 'none'; object-src 'none'; form-action 'self' {idp_origin}"
        ),
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
    }


def create_app(
    *,
    sign_in: SignInFlow,
    idp: IdentityProvider,
    apis: PlatformApi,
    session_secret: str,
    public_url: str,
    idp_origin: str,
    dev: bool = False,
    secure_cookies: bool,
    max_age_s: int,
    sessions: SessionStore,
    timeouts: Timeouts,
    registry: CollectorRegistry,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    pages: Sequence[ControllerRouterHandler] = PAGES,
    on_shutdown: Sequence[Any] = (),
    downloads: Downloads | None = None,
) -> Litestar:
    """`downloads` (the exports, streamed) defaults to `apis` when it streams too (`HttpPlatformApi` does)."""
    key = hashlib.sha256(b"prizeflow-console/session\0" + session_secret.encode()).digest()
    csrf_key = hashlib.sha256(b"prizeflow-console/csrf\0" + session_secret.encode()).hexdigest()
    # Over https both cookies are `__Host-`: a sibling host cannot plant its own session (a victim signed in as the
    # attacker tops up the attacker's wallet) or a CSRF token it knows. Plain http (dev) cannot use the prefix.
    prefix = "__Host-" if secure_cookies else ""
    cookies = CookieBackendConfig(
        secret=key, key=f"{prefix}pf_console", max_age=max_age_s, httponly=True, secure=secure_cookies,
        samesite="lax", path="/", exclude=["/static", "/health", "/metrics"],
    )  # fmt: skip
    requests = Counter(
        "prizeflow_console_http_requests", "Console responses by route and status class", ["route", "status"],
        registry=registry,
    )  # fmt: skip
    refused = Counter(
        "prizeflow_console_refused",
        "Session cookies that are no session and state-changing requests from another site, by reason",
        ["reason"],
        registry=registry,
    )
    for reason in REFUSALS:
        refused.labels(reason)
    cookies._backend_class = _verifying_backend(refused)

    @get("/metrics", include_in_schema=False, opt=PUBLIC)
    async def metrics() -> Response[bytes]:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    headers = [(name.lower().encode(), value.encode()) for name, value in _security_headers(idp_origin).items()]

    async def secure(message: Any, scope: Any) -> None:
        """On every answer, error pages and redirects from exception handlers too (`after_request` skips those)."""
        if message.get("type") == "http.response.start":
            present = {bytes(name).lower() for name, _ in message.get("headers") or []}
            message["headers"] = [*(message.get("headers") or []), *((n, v) for n, v in headers if n not in present)]

    async def count(message: Any, scope: Any) -> None:
        if message.get("type") == "http.response.start":
            route = scope.get("path_template") or "unmatched"
            requests.labels(route, f"{int(message['status']) // 100}xx").inc()

    async def resolve_session(request: Request[Any, Any, Any]) -> None:
        """The cookie names a session; the server's row decides whether it is one now. A session ended (signed
        out, ended by an admin), idle or too old, or whose token expired, is none: the cookie forgets it, the
        person signs in again; counted by reason. Its last use is written at most once a minute."""
        sid = session_id(request)
        if sid is None:
            return
        key, now = id_hash(sid), clock()
        record = await sessions.get(key)
        reason = "session_revoked" if record is None else judge(record, now=now, timeouts=timeouts)
        if record is None or reason is not None:
            assert reason is not None
            refused.labels(reason).inc()
            if record is not None and (ended := expiry_of(reason)) is not None:
                await sessions.end(key, reason=ended, at=now)
            if (store := session_data(request)) is not None:
                store.pop(SESSION_USER, None)
            log.info("console session refused: %s", reason)
            return
        if needs_touch(record, now):
            await sessions.touch(key, now)
        request.scope[SCOPE_SESSION] = Session(record.viewer, record.access_token)  # type: ignore[literal-required]

    trace = TraceFlow(apis)
    return Litestar(
        route_handlers=[
            home,
            live,
            ready,
            metrics,
            AuthController,
            PeopleController,
            *pages,
            create_static_files_router(
                path="/static", directories=[PACKAGE / "static"], opt=PUBLIC, include_in_schema=False
            ),
        ],
        dependencies={
            "sign_in": Provide(lambda: sign_in, sync_to_thread=False),
            "idp": Provide(lambda: idp, sync_to_thread=False),
            "trace": Provide(lambda: trace, sync_to_thread=False),
        },
        middleware=[
            DefineMiddleware(SameOriginMiddleware, origin=origin_of(public_url), refused=refused),
            cookies.middleware,
        ],
        csrf_config=CSRFConfig(
            secret=csrf_key,
            cookie_name=f"{prefix}pf_csrf",
            cookie_path="/",
            cookie_secure=secure_cookies,
            cookie_httponly=True,
            cookie_samesite="strict",
            header_name="x-csrftoken",
            exclude_from_csrf_key="exclude_from_csrf",
        ),
        template_config=template_config(),
        type_decoders=TYPE_DECODERS,
        exception_handlers={
            SignInRequiredError: _sign_in_required,
            ForbiddenPageError: _forbidden,
            HTTPException: _http_error,
            Exception: _unexpected,
        },
        before_send=[secure, count],
        before_request=resolve_session,
        state=State(
            {
                "apis": apis,
                "downloads": downloads or (apis if isinstance(apis, Downloads) else None),
                "public_url": public_url,
                "dev": dev,
                "sessions": sessions,
                "clock": clock,
            }
        ),
        openapi_config=None,
        on_shutdown=list(on_shutdown),
        debug=False,
        logging_config=None,
    )


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


__all__ = ["create_app", "origin_of", "template_config"]
