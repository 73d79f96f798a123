"""The emulator's aiohttp app: `/resources` (the API subset, app-token signed, faults), `/websdk/p/{token}` (the
hosted flow a player fills in) and `/_emulator` (test controls)."""

from __future__ import annotations

import asyncio
import hmac
import html
import json
import logging
import time
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

from aiohttp import web

from prizeflow_kyc_emulator.faults import FaultKind, Faults
from prizeflow_kyc_emulator.settings import EmulatorSettings
from prizeflow_kyc_emulator.signing import ACCESS_SIG_HEADER, ACCESS_TS_HEADER, APP_TOKEN_HEADER, request_signature
from prizeflow_kyc_emulator.state import ApiError, Applicant, AutoReview, Info, Store
from prizeflow_kyc_emulator.webhooks import Deliverer, WebhookConfig

log = logging.getLogger(__name__)
API = "/resources"


def dump(doc: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, text=json.dumps(doc, separators=(",", ":")), content_type="application/json")


@dataclass
class RequestEntry:
    method: str
    path: str
    at: float
    status: int | None = None
    fault: str | None = None


class Emulator:
    def __init__(self, settings: EmulatorSettings) -> None:
        self.settings = settings
        self.faults = Faults()
        self.requests: deque[RequestEntry] = deque(maxlen=100_000)
        self.deliverer = Deliverer(
            WebhookConfig(
                url=settings.webhook_url,
                secret=settings.webhook_secret,
                alg=settings.webhook_alg,
                retry_base_ms=settings.webhook_retry_base_ms,
                max_attempts=settings.webhook_max_attempts,
                timeout_ms=settings.webhook_timeout_ms,
            )
        )
        self.store = self._new_store()
        self._ticker: asyncio.Task[None] | None = None

    @property
    def public_url(self) -> str:
        s = self.settings
        return s.public_url or f"http://{s.host}:{s.port}"

    def _new_store(self) -> Store:
        s = self.settings
        return Store(
            levels=s.levels,
            auto_review=s.auto_review,
            review_delay_ms=s.review_delay_ms,
            listener=self.deliverer.submit,
        )

    def reset(self) -> None:
        self.store = self._new_store()
        self.faults.clear()
        self.requests.clear()
        self.deliverer.held.clear()
        self.deliverer.config.enabled = True

    async def start(self) -> None:
        await self.deliverer.start()
        self._ticker = asyncio.create_task(self._tick(), name="kyc-reviews")

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            await asyncio.gather(self._ticker, return_exceptions=True)
        await self.deliverer.stop()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(0.05)  # the emulated provider's review clock
            self.store.advance()


EMULATOR: web.AppKey[Emulator] = web.AppKey("emulator", Emulator)


# -- /resources ---------------------------------------------------------------------------------------------------
def _authentic(em: Emulator, request: web.Request, body: bytes) -> str | None:
    """Why the request's app-token signature is refused, or None when it holds."""
    token = request.headers.get(APP_TOKEN_HEADER)
    ts = request.headers.get(ACCESS_TS_HEADER, "")
    sig = request.headers.get(ACCESS_SIG_HEADER, "")
    if token is None or not hmac.compare_digest(token.encode(), em.settings.app_token.encode()):
        return "App token is missing or unknown"
    if not ts.isdigit() or abs(int(ts) - time.time()) > em.settings.ts_tolerance_s:
        return "Request timestamp is missing or too far from now"
    expected = request_signature(em.settings.secret_key, ts, request.method, request.raw_path, body)
    if not hmac.compare_digest(expected.encode(), sig.encode()):
        return "Request signature mismatch"
    return None


@web.middleware
async def api_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    if not request.path.startswith(API + "/"):
        passed: web.StreamResponse = await handler(request)
        return passed
    em = request.app[EMULATOR]
    entry = RequestEntry(request.method, request.path, time.time())
    em.requests.append(entry)
    refused = _authentic(em, request, await request.read())
    if refused is not None:
        entry.status = 401
        return dump(ApiError(401, refused).to_json(), 401)
    fault = em.faults.take(request.method, request.path)
    if fault is not None:
        entry.fault = fault.kind.value
        if fault.kind is FaultKind.SERVER_ERROR:
            entry.status = 500
            return dump(ApiError(500, "Internal server error").to_json(), 500)
        if fault.kind is FaultKind.RATE_LIMIT:
            entry.status = 429
            return dump(ApiError(429, "Too many requests").to_json(), 429)
        if fault.kind is FaultKind.CONNECTION_RESET:
            if request.transport is not None:
                request.transport.close()
            raise asyncio.CancelledError
    try:
        response: web.StreamResponse = await handler(request)
    except ApiError as err:
        entry.status = err.status
        return dump(err.to_json(), err.status)
    entry.status = response.status
    if fault is not None and fault.kind.after_processing:
        await asyncio.sleep(fault.delay_ms / 1000)  # the answer comes too late: the client has given up
    return response


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        doc = json.loads(await request.read() or b"{}")
    except ValueError:
        raise ApiError(400, "The request body is not JSON") from None
    if not isinstance(doc, dict):
        raise ApiError(400, "The request body is a JSON object")
    return doc


async def create_applicant(request: web.Request) -> web.Response:
    em = request.app[EMULATOR]
    level = request.query.get("levelName", "")
    body = await _body(request)
    applicant = em.store.create(level, str(body.get("externalUserId", "")))
    return dump(applicant.to_json())


async def applicant_one(request: web.Request) -> web.Response:
    """`/resources/applicants/{id}/one`, or `/resources/applicants/-;externalUserId={id}/one`."""
    em = request.app[EMULATOR]
    return dump(_applicant(em, request.match_info["ref"]).to_json())


async def applicant_status(request: web.Request) -> web.Response:
    em = request.app[EMULATOR]
    return dump(_applicant(em, request.match_info["ref"]).status_json())


def _applicant(em: Emulator, ref: str) -> Applicant:
    if ref.startswith("-;externalUserId="):
        return em.store.by_external(ref.removeprefix("-;externalUserId="))
    return em.store.get(ref)


async def websdk_link(request: web.Request) -> web.Response:
    em = request.app[EMULATOR]
    body = await _body(request)
    try:
        ttl = int(body.get("ttlInSecs", 1800))
    except (TypeError, ValueError):
        raise ApiError(400, "ttlInSecs is an integer") from None
    made = em.store.link(str(body.get("levelName", "")), str(body.get("userId", "")), ttl)
    return dump({"url": f"{em.public_url}/websdk/p/{made.token}"})


async def test_completed(request: web.Request) -> web.Response:
    """Sumsub's sandbox-only `status/testCompleted`: a review answer set as if a reviewer gave it."""
    em = request.app[EMULATOR]
    body = await _body(request)
    labels = body.get("rejectLabels") or []
    applicant = em.store.complete(
        request.match_info["id"],
        str(body.get("reviewAnswer", "")),
        reject_type=body.get("reviewRejectType"),
        labels=[str(v) for v in labels] if isinstance(labels, list) else None,
    )
    return dump(applicant.to_json())


async def reset_applicant(request: web.Request) -> web.Response:
    em = request.app[EMULATOR]
    em.store.reset(request.match_info["id"])
    return dump({"ok": 1})


# -- /websdk/p/{token}: the hosted flow ---------------------------------------------------------------------------
_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Identity verification (emulator)</title>
<style>body{{font-family:sans-serif;max-width:28rem;margin:3rem auto}}label{{display:block;margin:.6rem 0}}
input{{width:100%;padding:.3rem}}</style></head>
<body><h1>Verify your identity</h1><p>A stand-in for the vendor's hosted flow: no document is uploaded.</p>{body}
</body></html>"""
_FORM = """<form method="post">
<label>First name <input name="firstName" required maxlength="100"></label>
<label>Last name <input name="lastName" required maxlength="100"></label>
<label>Date of birth <input name="dob" type="date" required></label>
<label>Country (ISO alpha-3, e.g. DEU) <input name="country" required pattern="[A-Za-z]{{3}}" maxlength="3"></label>
<label>Document number <input name="number" required maxlength="64"></label>
<button type="submit">Submit</button></form>{error}"""


def _page(body: str, status: int = 200) -> web.Response:
    return web.Response(status=status, text=_PAGE.format(body=body), content_type="text/html")


async def flow_page(request: web.Request) -> web.Response:
    em = request.app[EMULATOR]
    try:
        applicant = em.store.open_link(request.match_info["token"])
    except ApiError as err:
        return _page(f"<p>{html.escape(err.description)}</p>", err.status)
    return _page(_state_text(applicant) or _FORM.format(error=""))


async def flow_submit(request: web.Request) -> web.Response:
    em = request.app[EMULATOR]
    try:
        applicant = em.store.open_link(request.match_info["token"])
    except ApiError as err:
        return _page(f"<p>{html.escape(err.description)}</p>", err.status)
    if (done := _state_text(applicant)) is not None:
        return _page(done, 409)
    form = await request.post()
    try:
        info = Info.parse({k: str(v) for k, v in form.items()})
        em.store.submit(applicant.id, info)
    except ValueError as err:
        return _page(_FORM.format(error=f'<p role="alert">{html.escape(str(err))}</p>'), 400)
    except ApiError as err:
        return _page(f"<p>{html.escape(err.description)}</p>", err.status)
    return _page("<p>Thank you. Your documents are being reviewed; you may close this page.</p>")


def _state_text(applicant: Applicant) -> str | None:
    """What the page says instead of the form once there is nothing to fill in."""
    r = applicant.review
    if r.status == "pending":
        return "<p>Your documents are being reviewed.</p>"
    if r.status == "onHold":
        return "<p>Your verification is being looked at by a person.</p>"
    if r.status == "completed" and not (r.answer == "RED" and r.reject_type == "RETRY"):
        return "<p>Your verification is complete.</p>"
    return None


# -- /_emulator ---------------------------------------------------------------------------------------------------
async def health(request: web.Request) -> web.Response:
    return dump({"ok": True})


async def reset(request: web.Request) -> web.Response:
    request.app[EMULATOR].reset()
    return dump({"ok": True})


async def admin_json(request: web.Request) -> dict[str, Any]:
    try:
        doc = json.loads(await request.read() or b"{}")
    except ValueError:
        raise web.HTTPBadRequest(text="not JSON") from None
    if not isinstance(doc, dict):
        raise web.HTTPBadRequest(text="a JSON object")
    return doc


def _admin(call: Any) -> Any:
    """An admin handler whose ApiError answers in the API's shape."""

    async def handler(request: web.Request) -> web.Response:
        try:
            result: web.Response = await call(request)
        except ApiError as err:
            return dump(err.to_json(), err.status)
        return result

    return handler


async def admin_applicants(request: web.Request) -> web.Response:
    """Every applicant (or the one of `?externalUserId=`), as the API shows it."""
    em = request.app[EMULATOR]
    wanted = request.query.get("externalUserId")
    chosen = [a for a in em.store.applicants.values() if wanted is None or a.external_user_id == wanted]
    return dump({"applicants": [a.to_json() for a in chosen]})


async def admin_identity(request: web.Request) -> web.Response:
    """The applicant submits this identity, as the hosted flow would (pending; auto review as configured, unless
    `{"review": false}`)."""
    em = request.app[EMULATOR]
    doc = await admin_json(request)
    try:
        info = Info.parse(doc)
    except ValueError as err:
        raise ApiError(400, str(err)) from None
    applicant = em.store.submit(request.match_info["id"], info)
    if doc.get("review") is False:
        em.store.due.pop(applicant.id, None)
    return dump(applicant.to_json())


async def admin_review(request: web.Request) -> web.Response:
    """`{"answer": "GREEN"}`, `{"answer": "RED", "reject_type": "RETRY" | "FINAL", "labels": [...]}`."""
    em = request.app[EMULATOR]
    doc = await admin_json(request)
    labels = doc.get("labels")
    applicant = em.store.complete(
        request.match_info["id"],
        str(doc.get("answer", "")),
        reject_type=doc.get("reject_type"),
        labels=[str(v) for v in labels] if isinstance(labels, list) else None,
    )
    return dump(applicant.to_json())


async def admin_hold(request: web.Request) -> web.Response:
    em = request.app[EMULATOR]
    return dump(em.store.hold(request.match_info["id"]).to_json())


async def admin_reset_applicant(request: web.Request) -> web.Response:
    em = request.app[EMULATOR]
    return dump(em.store.reset(request.match_info["id"]).to_json())


async def admin_auto_review(request: web.Request) -> web.Response:
    """`{"outcome": "green" | "red_retry" | "red_final" | "none", "delay_ms": int}` for later submissions."""
    em = request.app[EMULATOR]
    doc = await admin_json(request)
    try:
        em.store.auto_review = AutoReview(doc.get("outcome", em.store.auto_review.value))
        em.store.review_delay_ms = max(0, int(doc.get("delay_ms", em.store.review_delay_ms)))
    except ValueError as err:
        raise web.HTTPBadRequest(text=f"bad auto review ({err})") from None
    return dump({"outcome": em.store.auto_review.value, "delay_ms": em.store.review_delay_ms})


async def add_fault(request: web.Request) -> web.Response:
    em = request.app[EMULATOR]
    doc = await admin_json(request)
    try:
        rule = em.faults.add(
            str(doc["kind"]),
            method=str(doc.get("method", "*")),
            path_prefix=str(doc.get("path_prefix", API + "/")),
            count=int(doc.get("count", 1)),
            delay_ms=int(doc.get("delay_ms", 30_000)),
        )
    except (KeyError, ValueError) as err:
        raise web.HTTPBadRequest(text=f"bad fault ({err})") from None
    return dump(rule.to_json())


async def clear_faults(request: web.Request) -> web.Response:
    request.app[EMULATOR].faults.clear()
    return dump({"ok": True})


async def requests_log(request: web.Request) -> web.Response:
    em = request.app[EMULATOR]
    method = request.query.get("method")
    chosen = [asdict(e) for e in em.requests if method is None or e.method == method.upper()]
    return dump({"requests": chosen})


async def events(request: web.Request) -> web.Response:
    em = request.app[EMULATOR]
    kind, applicant = request.query.get("type"), request.query.get("applicantId")
    chosen = [
        e.to_json()
        for e in em.store.events
        if (kind is None or e.type == kind) and (applicant is None or e.applicant.id == applicant)
    ]
    return dump({"events": chosen})


async def redeliver(request: web.Request) -> web.Response:
    """One event delivered again now (a duplicate, or a late one)."""
    em = request.app[EMULATOR]
    wanted = request.match_info["correlation_id"]
    found = next((e for e in em.store.events if e.correlation_id == wanted), None)
    if found is None:
        raise web.HTTPNotFound(text="no such event")
    em.deliverer.redeliver(found)
    return dump({"ok": True})


async def webhook_config(request: web.Request) -> web.Response:
    """`{"url", "secret", "alg", "enabled"}`: any subset. Turning delivery on sends what was held, in order."""
    em = request.app[EMULATOR]
    doc = await admin_json(request)
    cfg = em.deliverer.config
    if "url" in doc:
        cfg.url = doc["url"] or None
    if "secret" in doc:
        cfg.secret = doc["secret"] or None
    if "alg" in doc:
        cfg.alg = str(doc["alg"])
    released = em.deliverer.enable(bool(doc["enabled"])) if "enabled" in doc else 0
    return dump({**em.deliverer.to_json(), "released": released})


async def deliveries(request: web.Request) -> web.Response:
    return dump(request.app[EMULATOR].deliverer.to_json())


def create_app(emulator: Emulator) -> web.Application:
    app = web.Application(middlewares=[api_middleware])
    app[EMULATOR] = emulator
    r = app.router
    r.add_post(f"{API}/applicants", create_applicant)
    r.add_get(f"{API}/applicants/{{ref}}/one", applicant_one)
    r.add_get(f"{API}/applicants/{{ref}}/status", applicant_status)
    r.add_post(f"{API}/applicants/{{id}}/status/testCompleted", test_completed)
    r.add_post(f"{API}/applicants/{{id}}/reset", reset_applicant)
    r.add_post(f"{API}/sdkIntegrations/levels/-/websdkLink", websdk_link)
    r.add_get("/websdk/p/{token}", flow_page)
    r.add_post("/websdk/p/{token}", flow_submit)
    r.add_get("/_emulator/health", health)
    r.add_get("/health/live", health)  # what the devstack's supervisor waits on
    r.add_get("/health/ready", health)
    r.add_post("/_emulator/reset", reset)
    r.add_get("/_emulator/applicants", admin_applicants)
    r.add_post("/_emulator/applicants/{id}/identity", _admin(admin_identity))
    r.add_post("/_emulator/applicants/{id}/review", _admin(admin_review))
    r.add_post("/_emulator/applicants/{id}/hold", _admin(admin_hold))
    r.add_post("/_emulator/applicants/{id}/reset", _admin(admin_reset_applicant))
    r.add_post("/_emulator/auto_review", admin_auto_review)
    r.add_post("/_emulator/faults", add_fault)
    r.add_delete("/_emulator/faults", clear_faults)
    r.add_get("/_emulator/requests", requests_log)
    r.add_get("/_emulator/events", events)
    r.add_post("/_emulator/events/{correlation_id}/deliver", redeliver)
    r.add_post("/_emulator/webhooks", webhook_config)
    r.add_get("/_emulator/webhooks", deliveries)

    async def on_startup(_: web.Application) -> None:
        await emulator.start()

    async def on_cleanup(_: web.Application) -> None:
        await emulator.stop()

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return app


__all__ = ["Emulator", "create_app"]
