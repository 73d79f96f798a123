"""A Sumsub-shaped identity-verification vendor (`KycProvider`, docs/adr/0012), over `httpx` (async).

Every request is signed as Sumsub documents: `X-App-Token`, `X-App-Access-Ts` (seconds) and `X-App-Access-Sig`, the
hex HMAC-SHA256 under the secret key of `<ts><METHOD><path with query><body>`. Calls:

- start: `POST /resources/applicants?levelName=<level>` `{externalUserId: <player id>}` (409: the applicant exists,
  read back by `GET /resources/applicants/-;externalUserId=<player id>/one`), then
  `POST /resources/sdkIntegrations/levels/-/websdkLink` `{levelName, userId, ttlInSecs}` → `{url}`;
- review and identity: `GET /resources/applicants/<id>/one` (its `review` and, once submitted, `info`).

The identity read is personal data: it lives in the returned `Identity` only, never in a log line, an error or a
metric label. Errors are `KycProviderError`, retryable for timeouts, connection failures, 429 and 5xx.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final
from urllib.parse import quote

import httpx

from prizeflow_compliance.adapters.kyc.countries import alpha2
from prizeflow_compliance.application.ports import Identity, KycProviderError, KycReview, KycSession
from prizeflow_compliance.metrics import ComplianceMetrics
from prizeflow_contracts.policy import VerificationStatus

log = logging.getLogger(__name__)

# Our player id becomes the path of a lookup: the contracts' identifier alphabet only (no `/`, `?`, `%`, `;`).
PLAYER_ID_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9:_.\-]{0,127}$")
# Sumsub's applicant ids: 24 hex characters; accepted a little wider, never anything that changes the path.
APPLICANT_ID_RE: Final = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
LINK_TTL_S: Final = 1800  # the hosted flow link's lifetime (Sumsub's dashboard permalinks live 30 minutes too)
PENDING_STATUSES: Final = frozenset({"init", "pending", "onHold", "queued", "prechecked", "awaitingService"})


def request_signature(secret_key: str, ts: str, method: str, path_qs: str, body: bytes) -> str:
    """`X-App-Access-Sig`: hex HMAC-SHA256 of `<ts><METHOD><path with query><body>` under the secret key."""
    message = ts.encode() + method.upper().encode() + path_qs.encode() + body
    return hmac.new(secret_key.encode(), message, hashlib.sha256).hexdigest()


def review_status(review: Mapping[str, Any] | None) -> tuple[VerificationStatus, str]:
    """Sumsub's `review` as our status and a short detail (no labels, no comments: those may name the person).

    init / pending / onHold (and the other in-flight statuses) → pending; completed GREEN → verified; completed RED
    with reviewRejectType RETRY → retry, FINAL (or none given) → failed. Anything unknown reads pending: never
    verified by accident."""
    if not isinstance(review, Mapping):
        return VerificationStatus.PENDING, "no_review"
    status = review.get("reviewStatus")
    result = review.get("reviewResult")
    answer = result.get("reviewAnswer") if isinstance(result, Mapping) else None
    if status == "completed" and answer == "GREEN":
        return VerificationStatus.VERIFIED, "GREEN"
    if status == "completed" and answer == "RED":
        reject = result.get("reviewRejectType") if isinstance(result, Mapping) else None
        if reject == "RETRY":
            return VerificationStatus.RETRY, "RED/RETRY"
        return VerificationStatus.FAILED, "RED/FINAL" if reject == "FINAL" else "RED"
    if isinstance(status, str) and status in PENDING_STATUSES:
        return VerificationStatus.PENDING, status
    return VerificationStatus.PENDING, "unknown"


class SumsubKycProvider:
    """The vendor's API. Holds the app token and secret key; never logs them, nor anything of the applicant."""

    name = "sumsub"

    def __init__(
        self,
        *,
        base_url: str,
        app_token: str,
        secret_key: str,
        level: str,
        timeout_s: float = 10.0,
        link_ttl_s: int = LINK_TTL_S,
        metrics: ComplianceMetrics | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`metrics`: counted per port call (`kyc_requests`) — pass it only where the caller does not count them
        itself (payouts' verification use cases do)."""
        self.base_url = base_url.rstrip("/")
        self.level = level
        self.timeout_s = timeout_s
        self.link_ttl_s = link_ttl_s
        self.metrics = metrics
        self._app_token = app_token
        self._secret_key = secret_key
        self._transport = transport
        self._clock = clock
        self._http: httpx.AsyncClient | None = None

    def __repr__(self) -> str:
        return f"SumsubKycProvider(base_url={self.base_url!r}, level={self.level!r})"

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(
                base_url=self.base_url,
                headers={"Accept": "application/json"},
                timeout=self.timeout_s,
                transport=self._transport,
                follow_redirects=False,
            )
        return self._http

    # -- KycProvider --------------------------------------------------------------------------------------------
    async def start(self, player_id: str) -> KycSession:
        with self._counted("start"):
            if not PLAYER_ID_RE.fullmatch(player_id):
                raise KycProviderError("invalid_player", "the player id is not an identifier", retryable=False)
            created = await self._call(
                "POST",
                f"/resources/applicants?levelName={quote(self.level, safe='')}",
                {"externalUserId": player_id},
                allow=(409,),
            )
            if created is None:  # 409: made before (an earlier start): found by our id
                created = await self._call("GET", f"/resources/applicants/-;externalUserId={player_id}/one")
            reference = _applicant_id(created)
            link = await self._call(
                "POST",
                "/resources/sdkIntegrations/levels/-/websdkLink",
                {"levelName": self.level, "userId": player_id, "ttlInSecs": self.link_ttl_s},
            )
            url = link.get("url") if isinstance(link, Mapping) else None
            if not isinstance(url, str) or not url.startswith(("https://", "http://")):
                raise KycProviderError("bad_answer", "the vendor's link answer has no url", retryable=False)
            expires = datetime.fromtimestamp(self._clock(), UTC) + timedelta(seconds=self.link_ttl_s)
            return KycSession(reference=reference, url=url, expires_at=expires)

    async def review(self, reference: str) -> KycReview:
        with self._counted("status"):
            doc = await self._applicant(reference)
            status, detail = review_status(doc.get("review"))
            country = None
            if status is VerificationStatus.VERIFIED:
                info = doc.get("info")
                country = alpha2(info.get("country")) if isinstance(info, Mapping) else None
            subject = doc.get("externalUserId")
            return KycReview(
                reference=reference,
                status=status,
                country=country,
                detail=detail,
                subject=subject if isinstance(subject, str) else None,
            )

    async def identity(self, reference: str) -> Identity:
        with self._counted("identity"):
            doc = await self._applicant(reference)
            info = doc.get("info")
            if not isinstance(info, Mapping):
                raise KycProviderError("no_identity", "the applicant has submitted no identity", retryable=False)
            first, last = _text(info.get("firstName")), _text(info.get("lastName"))
            full = " ".join(p for p in (first, last) if p)
            if not full:
                raise KycProviderError("no_identity", "the applicant's identity has no name", retryable=False)
            latin = " ".join(p for p in (_text(info.get("firstNameEn")), _text(info.get("lastNameEn"))) if p)
            aliases = (latin,) if latin and latin != full else ()
            return Identity(
                full_name=full,
                aliases=aliases,
                birth_date=_date(info.get("dob")),
                country=alpha2(_text(info.get("country"))),
            )

    # -- the wire -----------------------------------------------------------------------------------------------
    async def _applicant(self, reference: str) -> Mapping[str, Any]:
        if not APPLICANT_ID_RE.fullmatch(reference):
            raise KycProviderError("invalid_reference", "not an applicant id", retryable=False)
        doc = await self._call("GET", f"/resources/applicants/{reference}/one")
        if not isinstance(doc, Mapping):
            raise KycProviderError("bad_answer", "the applicant is not a JSON object", retryable=False)
        return doc

    async def _call(
        self, method: str, path_qs: str, body: Mapping[str, Any] | None = None, *, allow: tuple[int, ...] = ()
    ) -> Any:
        """The JSON answer of a signed call; None for an `allow`ed error status; KycProviderError otherwise."""
        raw = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
        ts = str(int(self._clock()))
        headers = {
            "X-App-Token": self._app_token,
            "X-App-Access-Ts": ts,
            "X-App-Access-Sig": request_signature(self._secret_key, ts, method, path_qs, raw),
        }
        if body is not None:
            headers["Content-Type"] = "application/json"
        operation = path_qs.split("?", 1)[0].rsplit("/", 1)[-1]  # for messages: no ids, no player
        try:
            resp = await self._client().request(method, self.base_url + path_qs, content=raw, headers=headers)
        except httpx.TimeoutException:
            raise KycProviderError(
                "timeout", f"the vendor did not answer in time ({operation})", retryable=True
            ) from None
        except httpx.TransportError as err:
            raise KycProviderError(
                "unavailable", f"the vendor is unreachable ({type(err).__name__})", retryable=True
            ) from None
        if resp.status_code in allow:
            return None
        if resp.status_code >= 400:
            raise _refusal(resp.status_code, operation)
        try:
            return resp.json()
        except ValueError:
            raise KycProviderError(
                "bad_answer", f"the vendor's answer is not JSON ({operation})", retryable=False
            ) from None

    def _counted(self, operation: str) -> _Counted:
        return _Counted(self.metrics, operation)


class _Counted:
    """`kyc_requests{operation, outcome}` around one port call (when metrics were given)."""

    def __init__(self, metrics: ComplianceMetrics | None, operation: str) -> None:
        self.metrics = metrics
        self.operation = operation

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        if self.metrics is not None:
            self.metrics.kyc_requests.labels(self.operation, "ok" if exc_type is None else "error").inc()


def _refusal(status: int, operation: str) -> KycProviderError:
    if status == 429:
        return KycProviderError("rate_limited", f"the vendor rate-limits us ({operation})", retryable=True)
    if status >= 500:
        return KycProviderError("unavailable", f"the vendor failed (HTTP {status}, {operation})", retryable=True)
    if status in (401, 403):
        # Loud: nobody can verify until an operator fixes the token, its secret or its permissions. Never the token.
        log.error("kyc: the vendor refused our app token (HTTP %d): check PAYOUTS_KYC_APP_TOKEN / _SECRET_KEY", status)
        return KycProviderError(
            "authentication_failed", f"the vendor refused our credentials (HTTP {status})", retryable=False
        )
    if status == 404:
        return KycProviderError(
            "not_found", f"the vendor has no such applicant or level ({operation})", retryable=False
        )
    return KycProviderError("refused", f"the vendor refused the request (HTTP {status}, {operation})", retryable=False)


def _applicant_id(doc: Any) -> str:
    found = doc.get("id") if isinstance(doc, Mapping) else None
    if not isinstance(found, str) or not APPLICANT_ID_RE.fullmatch(found):
        raise KycProviderError("bad_answer", "the vendor's applicant has no usable id", retryable=False)
    return found


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _date(value: Any) -> date | None:
    try:
        return date.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def build_sumsub(settings: Any, *, metrics: ComplianceMetrics | None = None) -> SumsubKycProvider:
    """From payouts' settings (`PAYOUTS_KYC_BASE_URL`, `_APP_TOKEN`, `_SECRET_KEY`, `_LEVEL`, `_TIMEOUT_S`)."""
    token, secret = settings.kyc_credentials()
    base = settings.payouts_kyc_base_url
    if not base:
        raise ValueError("PAYOUTS_KYC_BASE_URL is not set")
    return SumsubKycProvider(
        base_url=base,
        app_token=token,
        secret_key=secret,
        level=settings.payouts_kyc_level,
        timeout_s=settings.payouts_kyc_timeout_s,
        metrics=metrics,
    )


__all__ = ["SumsubKycProvider", "build_sumsub", "request_signature", "review_status"]
