"""PayPal's REST API as the rail calls it: the REST app's OAuth2 token (client credentials, kept until a minute before
it expires, traded again once on a 401), one `call` per request, and what a failure means (`PayPalErrors`, the rail's
`classify`). Neither the credentials nor a token are ever logged.

And what one `type: paypal` providers-file entry resolves to (`parse_options`): its options validated (unknown keys
refused), its REST app's credentials, the webhook's pins, and the guard that keeps PayPal's live API off a build-only
deployment:

    - name: paypal
      type: paypal
      assets: [USD]
      destination_types: [paypal]
      secrets: {client_id: PAYPAL_CLIENT_ID, client_secret: PAYPAL_CLIENT_SECRET,
                webhook_id: PAYPAL_WEBHOOK_ID, webhook_cert: PAYPAL_WEBHOOK_CERT}   # the webhook's, as the ingress
      options:
        api_base: https://api-m.paypal.com   # live (only with PAYOUTS_LIVE_EXECUTION=true); the sandbox by default
        email_subject: "You have a prize from Prizeflow"
        note: "Your prize"
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

import httpx
from pydantic import Field

from prizeflow_contracts.errors import PayoutError, PayoutErrorCode, PayoutProviderError
from prizeflow_contracts.money import ASSETS
from prizeflow_contracts.providers import DEFAULT_APIS, DestinationType, ProviderType
from prizeflow_contracts.rails import paypal_wire as wire
from prizeflow_contracts.rails.paypal import CERT_HOSTS, pinned
from prizeflow_payouts.adapters.http_options import HttpRailOptions, validated_http_options
from prizeflow_payouts.provider_spec import ProviderConfigError, ProviderContext, ProviderSpec

log = logging.getLogger(__name__)


C = PayoutErrorCode


ITEM_PAGE: Final = 1000  # items per page of a batch (PayPal's maximum)


_TOKEN_MARGIN_S: Final = 60.0  # a token is traded again this long before PayPal says it expires


_NOT_SENT: Final = (httpx.ConnectError, httpx.ConnectTimeout)  # the request never left: nothing can have landed


class PayPalRefusalError(Exception):
    """A non-2xx answer of PayPal's API: its status and its error document (`{name, message, details}`)."""

    def __init__(self, status: int, doc: Mapping[str, Any]) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.doc = doc

    @property
    def name(self) -> str:
        """PayPal's error name; a reused `sender_batch_id` (400 USER_BUSINESS_ERROR on the field SENDER_BATCH_ID)
        read as SENDER_BATCH_ID_ALREADY_USED."""
        error = wire.read_error(self.doc)
        if error is None:
            return str(self.doc.get("error") or "")
        if error.name == "USER_BUSINESS_ERROR" and any(f.upper() == "SENDER_BATCH_ID" for f, _ in error.details):
            return "SENDER_BATCH_ID_ALREADY_USED"
        return error.name


class PayPalCallError(PayoutProviderError):
    """A call's failure, classified. `items`: the batch items PayPal's refusal names (`details[].field`
    `items[<n>]...`, in the order they were sent); none when it names none."""

    def __init__(self, error: PayoutError, items: tuple[int, ...] = ()) -> None:
        super().__init__(error)
        self.items = items


_ITEM_FIELD: Final = re.compile(r"items\[([0-9]{1,5})\]")


def named_items(doc: Mapping[str, Any]) -> tuple[int, ...]:
    """The batch items a refusal names, in order, each once."""
    error = wire.read_error(doc)
    found = (_ITEM_FIELD.match(field) for field, _ in (error.details if error is not None else ()))
    return tuple(sorted({int(m.group(1)) for m in found if m is not None}))


@dataclass(frozen=True, slots=True)
class PayPalErrors:
    """`ClassifiesErrors` of a PayPal rail named `provider`."""

    provider: str

    def error(self, code: PayoutErrorCode, message: str, **kw: Any) -> PayoutError:
        return PayoutError.of(code, f"paypal: {message}", provider=self.provider, **kw)

    def classify(self, error: BaseException, *, mutating: bool) -> PayoutError:
        """What PayPal's client raised, as our code: a refusal by its error name and status; a transport failure by
        whether the request may have left (then, when `mutating`, `timeout_unknown_outcome`)."""
        if isinstance(error, PayPalRefusalError):
            code = refusal_code(error.status, error.name, mutating=mutating)
            if code is C.AUTHENTICATION_FAILED:
                log.error(
                    "paypal: PayPal refused our credentials (HTTP %d): check client_id and client_secret", error.status
                )
            what = error.name or "not JSON"
            return self.error(code, f"HTTP {error.status} ({what[:64]})", provider_code=f"{error.status}:{what}"[:255])
        if isinstance(error, _NOT_SENT):
            return self.error(C.PROVIDER_UNAVAILABLE, "could not connect")
        if isinstance(error, PayoutProviderError):
            return error.error
        code = C.TIMEOUT_UNKNOWN_OUTCOME if mutating else C.PROVIDER_UNAVAILABLE
        return self.error(code, f"no readable answer ({type(error).__name__})")


class PayPalClient:
    """One REST app's calls to PayPal's API (`api_base`), on one `httpx` client made inside the running loop."""

    def __init__(
        self, options: PayPalOptions, keys: PayPalKeys, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.options = options
        self.errors = PayPalErrors(options.name)
        self._keys = keys
        self._transport = transport
        self._http: httpx.AsyncClient | None = None
        self._token: tuple[str, float] | None = None  # (token, monotonic expiry)

    async def batch_items(self, payout_batch_id: str) -> AsyncIterator[dict[str, Any]]:
        """A batch's items as PayPal lists them (`GET /v1/payments/payouts/{id}`), page by page."""
        for page in range(1, 1_000):
            params = {"page": page, "page_size": ITEM_PAGE, "total_required": "true"}
            doc = await self.call("GET", f"/v1/payments/payouts/{payout_batch_id}", params=params, mutating=False)
            for found in doc.get("items") or []:
                if isinstance(found, dict):
                    yield found
            if page >= int(doc.get("total_pages") or doc.get("total_page") or 1):
                return

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(
                base_url=self.options.api_base,
                headers={"Accept": "application/json"},
                timeout=self.options.timeout_s,
                transport=self._transport,
                follow_redirects=False,
            )
        return self._http

    async def _bearer(self) -> str:
        if self._token is not None and time.monotonic() < self._token[1]:
            return self._token[0]
        response = await self._client().post(
            "/v1/oauth2/token",
            data={"grant_type": "client_credentials"},
            auth=(self._keys.client_id, self._keys.client_secret),
        )
        doc = _json(response)
        if response.status_code != httpx.codes.OK or not isinstance(doc.get("access_token"), str):
            raise PayPalRefusalError(response.status_code, doc)
        ttl = float(doc.get("expires_in") or 0)
        self._token = (doc["access_token"], time.monotonic() + max(0.0, ttl - _TOKEN_MARGIN_S))
        return self._token[0]

    async def call(
        self,
        method: str,
        path: str,
        *,
        mutating: bool,
        body: Any = None,
        params: Mapping[str, Any] | None = None,
        request_id: str | None = None,
    ) -> dict[str, Any]:
        """One call; a failure raised as `PayoutProviderError` of its classified code (a 401 trades the token again
        once: PayPal may end one before its time)."""
        try:
            for attempt in (1, 2):
                headers = {"Authorization": f"Bearer {await self._bearer()}"}
                if request_id is not None:
                    headers["PayPal-Request-Id"] = request_id
                response = await self._client().request(method, path, json=body, params=params, headers=headers)
                if response.status_code == httpx.codes.UNAUTHORIZED and attempt == 1:
                    self._token = None
                    continue
                doc = _json(response)
                if not response.is_success:
                    raise PayPalRefusalError(response.status_code, doc)
                return doc
        except PayPalRefusalError as err:
            raise PayPalCallError(self.errors.classify(err, mutating=mutating), named_items(err.doc)) from None
        except (httpx.HTTPError, ValueError) as err:
            raise PayPalCallError(self.errors.classify(err, mutating=mutating)) from None
        raise AssertionError("unreachable")  # pragma: no cover


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        doc = response.json()
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


# PayPal's error `name` of a refused call -> our code (before its status decides).
REFUSALS: Final = {
    **wire.ITEM_ERRORS,  # a batch refused for one of its items' reasons
    "INSUFFICIENT_FUNDS": C.INSUFFICIENT_PROVIDER_FUNDS,
    "VALIDATION_ERROR": C.INVALID_REQUEST,
    "SENDER_BATCH_ID_ALREADY_USED": C.DUPLICATE_REQUEST,
    "DUPLICATE_REQUEST_ID": C.DUPLICATE_REQUEST,
    "RATE_LIMIT_REACHED": C.RATE_LIMITED,
    "AUTHENTICATION_FAILURE": C.AUTHENTICATION_FAILED,
    "invalid_client": C.AUTHENTICATION_FAILED,
    "invalid_token": C.AUTHENTICATION_FAILED,
}


def refusal_code(status: int, name: str, *, mutating: bool) -> PayoutErrorCode:
    """A non-2xx answer as our code. A 5xx of a call that may have moved money is `timeout_unknown_outcome`; any
    4xx proves PayPal made nothing."""
    if status >= httpx.codes.INTERNAL_SERVER_ERROR:
        return C.TIMEOUT_UNKNOWN_OUTCOME if mutating else C.PROVIDER_UNAVAILABLE
    if name in REFUSALS:
        return REFUSALS[name]
    if status in (httpx.codes.UNAUTHORIZED, httpx.codes.FORBIDDEN):
        return C.AUTHENTICATION_FAILED
    if status == httpx.codes.TOO_MANY_REQUESTS:
        return C.RATE_LIMITED
    return C.INVALID_REQUEST


# -- the providers-file entry ----------------------------------------------------------------------------------------
LIVE_API: Final = "https://api-m.paypal.com"


LIVE_HOSTS: Final = frozenset({"api-m.paypal.com", "api.paypal.com"})  # real money: PAYOUTS_LIVE_EXECUTION only


SANDBOX_API: Final = DEFAULT_APIS[ProviderType.PAYPAL]


# What PayPal Payouts pays in (the currencies a business account can send); checked against our asset table too.
CURRENCIES: Final = frozenset({"USD", "EUR", "GBP", "CAD", "AUD", "JPY", "CHF", "SEK", "NOK", "DKK", "PLN", "BRL"})


class _Options(HttpRailOptions):
    api_base: str = SANDBOX_API
    email_subject: str = Field(default="You have a prize payout", min_length=1, max_length=255)
    note: str | None = Field(default="Your prize", min_length=1, max_length=4000)
    # How late Transaction Search lists a movement (PayPal: up to three hours); reconciliation waits that long.
    statement_lag_s: float = Field(default=3 * 3600, ge=0, le=24 * 3600)


@dataclass(frozen=True)
class PayPalOptions:
    name: str
    provider_type: ProviderType
    api_base: str
    assets: tuple[str, ...]
    email_subject: str
    note: str | None
    timeout_s: float
    statement_lag_s: float = 3 * 3600


@dataclass(frozen=True)
class PayPalKeys:
    client_id: str
    client_secret: str
    # What the webhook's signature is checked under (`prizeflow_contracts.rails.paypal.pinned`): its id, the pinned
    # certificate (PEM), and where certificate URLs may point when not PayPal's hosts. Empty: no webhooks read here.
    webhook: tuple[str, ...] = ()


def parse_options(spec: ProviderSpec, context: ProviderContext) -> tuple[PayPalOptions, PayPalKeys]:
    """The options and credentials of a paypal entry; raises `ProviderConfigError` naming what is wrong."""
    where = f"provider {spec.name!r}"
    for asset in spec.assets:
        if asset not in CURRENCIES or asset not in ASSETS:
            raise ProviderConfigError(f"{where}: paypal pays {sorted(CURRENCIES)}, not {asset}")
    for dt in spec.destination_types:
        if dt is not DestinationType.PAYPAL:
            raise ProviderConfigError(f"{where}: paypal pays paypal destinations only, not {dt.value}")
    opts = validated_http_options(_Options, spec, context, where, "paypal")
    host = urlsplit(opts.api_base).hostname
    if host in LIVE_HOSTS and not opts.api_base.startswith("https://"):
        raise ProviderConfigError(f"{where}: PayPal's live API is only ever called over https")
    if host in LIVE_HOSTS and not context.live_execution:
        raise ProviderConfigError(
            f"{where}: {opts.api_base} is PayPal's live API but PAYOUTS_LIVE_EXECUTION is false (build-only deployment)"
        )
    options = PayPalOptions(
        name=spec.name,
        provider_type=spec.type,
        api_base=opts.api_base,
        assets=tuple(spec.assets),
        email_subject=opts.email_subject,
        note=opts.note,
        timeout_s=opts.timeout_s,
        statement_lag_s=opts.statement_lag_s,
    )
    return options, _keys(spec, opts, where)


def _keys(spec: ProviderSpec, opts: _Options, where: str) -> PayPalKeys:
    known = {"client_id", "client_secret", "webhook_id", "webhook_cert"}
    if unknown := set(spec.secrets) - known:
        raise ProviderConfigError(f"{where}: paypal knows the secrets {sorted(known)}, not {sorted(unknown)}")
    client_id, client_secret = spec.secrets.get("client_id"), spec.secrets.get("client_secret")
    if client_id is None or client_secret is None:
        raise ProviderConfigError(
            f"{where}: paypal needs `secrets: {{client_id: <ENV VAR>, client_secret: <ENV VAR>}}`"
        )
    webhook = tuple(spec.secrets[k].reveal() for k in ("webhook_id", "webhook_cert") if k in spec.secrets)
    if len(webhook) == 1:
        raise ProviderConfigError(f"{where}: paypal's webhook_id and webhook_cert go together")
    # Certificate URLs point at PayPal's hosts (`CERT_HOSTS`), or at the API the rail is given when it is not PayPal's
    # (an emulator's): its origin is pinned beside the certificate and the webhook id.
    parts = urlsplit(opts.api_base)
    own = () if parts.hostname in CERT_HOSTS else (f"{parts.scheme}://{parts.netloc}",)
    pins = (*webhook, *own) if webhook else ()
    if pins:
        try:
            pinned(pins)
        except ValueError as err:
            raise ProviderConfigError(f"{where}: paypal webhook: {err}") from None
    return PayPalKeys(client_id.reveal(), client_secret.reveal(), pins)


__all__ = [
    "LIVE_API",
    "REFUSALS",
    "SANDBOX_API",
    "PayPalCallError",
    "PayPalClient",
    "PayPalErrors",
    "PayPalKeys",
    "PayPalOptions",
    "PayPalRefusalError",
    "named_items",
    "parse_options",
    "refusal_code",
]
