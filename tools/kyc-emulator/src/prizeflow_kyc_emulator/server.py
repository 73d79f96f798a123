"""The emulator's aiohttp app: `/resources` (the API subset, app-token signed, faults), `/websdk/p/{token}` (the
hosted flow a player fills in) and `/_emulator` (test controls)."""

from __future__ import annotations

import asyncio
import hmac
import html
import json
import logging
import time
from typing import Any

from aiohttp import web

from prizeflow_emulator_kit.admin import Admin, AdminError
from prizeflow_emulator_kit.faults import FaultKind, FaultRule, Faults
from prizeflow_emulator_kit.requests import RequestEntry, RequestLog
from prizeflow_emulator_kit.strike import strike
from prizeflow_emulator_kit.webhooks import DeliveryConfig
from prizeflow_kyc_emulator.settings import EmulatorSettings
from prizeflow_kyc_emulator.signing import ACCESS_SIG_HEADER, ACCESS_TS_HEADER, APP_TOKEN_HEADER, request_signature
from prizeflow_kyc_emulator.state import ApiError, Applicant, AutoReview, Info, Store
from prizeflow_kyc_emulator.webhooks import KycDeliverer, WebhookEndpoint

log = logging.getLogger(__name__)
API = "/resources"
FAULT_KINDS = (
    FaultKind.SERVER_ERROR,  # 500, not processed
    FaultKind.RATE_LIMIT,  # 429, not processed
    FaultKind.CONNECTION_RESET,  # cut before processing
    FaultKind.TIMEOUT_AFTER_SUCCESS,  # processed and stored, the answer held back `delay_ms`
)


def dumps(doc: Any) -> str:
    return json.dumps(doc, separators=(",", ":"))


def dump(doc: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, text=dumps(doc), content_type="application/json")


class Emulator:
    def __init__(self, settings: EmulatorSettings) -> None:
        self.settings = settings
        self.faults = Faults(FAULT_KINDS, path_prefixes=(API,))
        self.requests: RequestLog[RequestEntry] = RequestLog()
        self.deliverer = KycDeliverer(
            WebhookEndpoint(url=settings.webhook_url, secret=settings.webhook_secret, alg=settings.webhook_alg),
            DeliveryConfig(
                retry_base_ms=settings.webhook_retry_base_ms,
                max_attempts=settings.webhook_max_attempts,
                timeout_ms=settings.webhook_timeout_ms,
            ),
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
            listener=self.deliverer.on_event,
        )

    def reset(self) -> None:
        self.store = self._new_store()
        self.faults.reset()
        self.requests.clear()
        self.deliverer.reset()
        self.deliverer.config.hold = False

    async def start(self) -> None:
        await self.deliverer.start()
        self._ticker = asyncio.create_task(self._tick(), name="kyc-reviews")

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            await asyncio.gather(self._ticker, return_exceptions=True)
        await self.deliverer.close()

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
    entry = em.requests.record(RequestEntry(request.method, request.path))
    refused = _authentic(em, request, await request.read())
    if refused is not None:
        entry.status = 401
        return dump(ApiError(401, refused).to_json(), 401)

    async def carry_out() -> web.StreamResponse:
        try:
            response: web.StreamResponse = await handler(request)
        except ApiError as err:
            return dump(err.to_json(), err.status)
        return response

    return await strike(em.faults.take(request.method, request.path), request, carry_out, _refusal, entry)


def _refusal(fault: FaultRule) -> web.Response:
    if fault.kind is FaultKind.RATE_LIMIT:
        return dump(ApiError(429, "Too many requests").to_json(), 429)
    return dump(ApiError(500, "Internal server error").to_json(), 500)


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
def install_admin(em: Emulator, app: web.Application) -> None:
    admin = Admin(errors=_api_error, dumps=dumps)

    def reset(_request: web.Request, _body: dict[str, Any]) -> Any:
        em.reset()
        return {"status": "reset"}

    def applicants(request: web.Request, _body: dict[str, Any]) -> Any:
        """Every applicant (or the one of `?externalUserId=`), as the API shows it."""
        wanted = request.query.get("externalUserId")
        chosen = [a for a in em.store.applicants.values() if wanted is None or a.external_user_id == wanted]
        return {"applicants": [a.to_json() for a in chosen]}

    def identity(request: web.Request, body: dict[str, Any]) -> Any:
        """The applicant submits this identity, as the hosted flow would (pending; auto review as configured,
        unless `{"review": false}`)."""
        try:
            info = Info.parse(body)
        except ValueError as err:
            raise ApiError(400, str(err)) from None
        applicant = em.store.submit(request.match_info["id"], info)
        if body.get("review") is False:
            em.store.due.pop(applicant.id, None)
        return applicant.to_json()

    def review(request: web.Request, body: dict[str, Any]) -> Any:
        """`{"answer": "GREEN"}`, `{"answer": "RED", "reject_type": "RETRY" | "FINAL", "labels": [...]}`."""
        labels = body.get("labels")
        return em.store.complete(
            request.match_info["id"],
            str(body.get("answer", "")),
            reject_type=body.get("reject_type"),
            labels=[str(v) for v in labels] if isinstance(labels, list) else None,
        ).to_json()

    def auto_review(_request: web.Request, body: dict[str, Any]) -> Any:
        """`{"outcome": "green" | "red_retry" | "red_final" | "none", "delay_ms": int}` for later submissions."""
        em.store.auto_review = AutoReview(body.get("outcome", em.store.auto_review.value))
        em.store.review_delay_ms = max(0, int(body.get("delay_ms", em.store.review_delay_ms)))
        return {"outcome": em.store.auto_review.value, "delay_ms": em.store.review_delay_ms}

    def events(request: web.Request, _body: dict[str, Any]) -> Any:
        kind, applicant = request.query.get("type"), request.query.get("applicantId")
        return {
            "events": [
                e.to_json()
                for e in em.store.events
                if (kind is None or e.type == kind) and (applicant is None or e.applicant.id == applicant)
            ]
        }

    def redeliver(request: web.Request, _body: dict[str, Any]) -> Any:
        """One event delivered again now (a duplicate, or a late one)."""
        wanted = request.match_info["correlation_id"]
        found = next((e for e in em.store.events if e.correlation_id == wanted), None)
        if found is None:
            raise AdminError("no such event", status=404)
        em.deliverer.redeliver(found)
        return {"ok": True}

    def webhook_config(_request: web.Request, body: dict[str, Any]) -> Any:
        """`{"url", "secret", "alg", "enabled"}`: any subset. Turning delivery on sends what was held, in order."""
        if "alg" in body:
            em.deliverer.set_alg(str(body["alg"]))
        if "url" in body:
            em.deliverer.endpoint.url = body["url"] or None
        if "secret" in body:
            em.deliverer.endpoint.secret = body["secret"] or None
        released = em.deliverer.enable(bool(body["enabled"])) if "enabled" in body else 0
        return {**em.deliverer.to_json(), "released": released}

    for method, path, handler in [
        ("POST", "/reset", reset),
        ("GET", "/applicants", applicants),
        ("POST", "/applicants/{id}/identity", identity),
        ("POST", "/applicants/{id}/review", review),
        ("POST", "/applicants/{id}/hold", lambda r, _b: em.store.hold(r.match_info["id"]).to_json()),
        ("POST", "/applicants/{id}/reset", lambda r, _b: em.store.reset(r.match_info["id"]).to_json()),
        ("POST", "/auto_review", auto_review),
        ("GET", "/events", events),
        ("POST", "/events/{correlation_id}/deliver", redeliver),
        ("POST", "/webhooks", webhook_config),
        ("GET", "/webhooks", lambda _r, _b: em.deliverer.to_json()),
    ]:
        admin.route(method, path, handler)
    admin.faults(em.faults)
    admin.requests(em.requests)
    admin.install(app)


def _api_error(err: Exception) -> web.StreamResponse | None:
    return dump(err.to_json(), err.status) if isinstance(err, ApiError) else None


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
    install_admin(emulator, app)

    async def on_startup(_: web.Application) -> None:
        await emulator.start()

    async def on_cleanup(_: web.Application) -> None:
        await emulator.stop()

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return app


__all__ = ["EMULATOR", "FAULT_KINDS", "Emulator", "create_app"]
