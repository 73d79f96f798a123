"""PayPal Payouts' webhook face: PayPal's own signature, checked offline against a pinned certificate, then the
item fetched back (`GET /v1/payments/payouts-item/{id}`) before its status is believed (`normalize` below reads it).

Signature: `PAYPAL-TRANSMISSION-SIG` is the base64 RSA signature (PKCS#1 v1.5, SHA-256: `PAYPAL-AUTH-ALGO` must be
`SHA256withRSA`) of `<PAYPAL-TRANSMISSION-ID>|<PAYPAL-TRANSMISSION-TIME>|<webhook id>|<CRC32 of the raw body, as an
unsigned decimal>`, under the certificate `PAYPAL-CERT-URL` names. The reader never fetches that URL: it checks
with the certificates the provider pins, and refuses a URL that is not PayPal's certificate path on a PayPal API
host (`CERT_HOSTS`, over https), a transmission time outside the provider's tolerance (both directions) and any
header missing.

The provider's `secrets` carry what is pinned, told apart by their form: a PEM certificate is a pinned certificate
(two during a rotation); a bare origin (`https://host[:port]`) is where certificate URLs may point instead of
PayPal's hosts (an emulator: `http://127.0.0.1:12117`); any other value is the webhook's id (PayPal's `webhook_id`,
which the signature covers: a delivery for another webhook of the account does not verify). E.g. `secrets:
[PAYPAL_WEBHOOK_ID, PAYPAL_WEBHOOK_CERT]`.

Why confirm (required outside the dev profile): the signature covers the body through a CRC32 only, which is no
cryptographic hash: within the tolerance window a captured delivery's body can be swapped for another of the same
CRC32 under its headers. Confirmed, what is published is the item as PayPal holds it now, never only the body's.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, Final, Protocol
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from pydantic import ValidationError

from prizeflow_contracts.events.webhooks import ProviderEventReceived
from prizeflow_contracts.money import Money
from prizeflow_contracts.providers import ProviderPayoutStatus, ProviderType
from prizeflow_contracts.rails import paypal_wire
from prizeflow_contracts.rails.paypal_wire import (
    EVENT_CLAIMS,
    ITEM_EVENT_PREFIX,
    ITEM_ID_RE,
    OUR_BATCH_PREFIX,
    SENDER_ID_RE,
    SENDER_ITEM_ID_MAX,
    failure_code,
    read_item,
)
from prizeflow_contracts.rails.prizeflow import rail_of
from prizeflow_contracts.rails.reading import (
    Caller,
    Confirmed,
    IgnoredReason,
    NormalizationError,
    Normalized,
    NotConfirmed,
    ReaderTerms,
    event_identity,
)
from prizeflow_contracts.webhook_signatures import SignatureFailure, SignatureRefused

SIGNATURE_HEADER: Final = "paypal-transmission-sig"


TRANSMISSION_ID_HEADER: Final = "paypal-transmission-id"


TRANSMISSION_TIME_HEADER: Final = "paypal-transmission-time"


CERT_URL_HEADER: Final = "paypal-cert-url"


AUTH_ALGO_HEADER: Final = "paypal-auth-algo"


AUTH_ALGO: Final = "SHA256withRSA"


# Where PayPal serves its webhook certificates (live and sandbox): a cert URL anywhere else is refused.
CERT_HOSTS: Final = frozenset(
    {"api.paypal.com", "api-m.paypal.com", "api.sandbox.paypal.com", "api-m.sandbox.paypal.com"}
)


CERT_PATH: Final = "/v1/notifications/certs/"


PEM_MARKER: Final = "-----BEGIN CERTIFICATE-----"


SERVES: Final = frozenset({ProviderType.PAYPAL})


_ORIGIN_RE: Final = re.compile(r"(https?)://([a-z0-9.-]{1,253})(?::([0-9]{1,5}))?/?")


_MAX_HEADER_CHARS: Final = 2048


_MAX_SIGNATURE_BYTES: Final = 1024


@dataclass(frozen=True, slots=True)
class Pinned:
    """What a provider's secrets pin: the webhook ids and the certificates' RSA public keys."""

    webhook_ids: tuple[str, ...]
    keys: tuple[rsa.RSAPublicKey, ...]
    # (scheme, host, port) certificate URLs may point at; none: PayPal's own hosts over https (`CERT_HOSTS`)
    cert_origins: tuple[tuple[str, str, int | None], ...] = ()


@lru_cache(maxsize=16)
def pinned(secrets: tuple[str, ...]) -> Pinned:
    """The webhook ids, pinned keys and certificate origins among `secrets`; ValueError when ids or keys are
    missing or any value is unusable (the message names no value)."""
    ids, keys, origins = [], [], []
    for value in secrets:
        if (origin := _ORIGIN_RE.fullmatch(value.strip())) is not None:
            scheme, host, port = origin.groups()
            origins.append((scheme, host, int(port) if port else None))
            continue
        if PEM_MARKER in value:
            try:
                certs = x509.load_pem_x509_certificates(value.strip().encode())
            except ValueError:
                raise ValueError("a pinned certificate is no PEM certificate") from None
            for cert in certs:
                key = cert.public_key()
                if not isinstance(key, rsa.RSAPublicKey):
                    raise ValueError("a pinned certificate's key is not RSA")
                keys.append(key)
        elif "|" in value or not value.isascii() or not value.isprintable() or " " in value:
            raise ValueError("a webhook id is printable ASCII without spaces or `|`")
        else:
            ids.append(value)
    if not ids or not keys:
        raise ValueError("a PayPal provider's secrets name its webhook id and a pinned certificate")
    return Pinned(tuple(ids), tuple(keys), tuple(origins))


def signed_message(transmission_id: str, transmission_time: str, webhook_id: str, body: bytes) -> bytes:
    """What PayPal signs for a delivery."""
    return f"{transmission_id}|{transmission_time}|{webhook_id}|{zlib.crc32(body)}".encode()


def paypal_signature(
    private_key: rsa.RSAPrivateKey, transmission_id: str, transmission_time: str, webhook_id: str, body: bytes
) -> str:
    """The `PAYPAL-TRANSMISSION-SIG` PayPal sends for `body` (emulators and tests sign with it)."""
    message = signed_message(transmission_id, transmission_time, webhook_id, body)
    return base64.b64encode(private_key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()


def _header(headers: Mapping[str, str], name: str) -> str:
    raw = next((v for k, v in headers.items() if k.lower() == name), None)
    if raw is None or not raw.strip():
        raise SignatureRefused(SignatureFailure.MISSING, f"no {name} header")
    if len(raw) > _MAX_HEADER_CHARS or not raw.isascii() or "|" in raw:
        raise SignatureRefused(SignatureFailure.MALFORMED, f"{name}: at most {_MAX_HEADER_CHARS} ASCII characters")
    return raw.strip()


def _cert_url_is_pinned(url: str, pins: Pinned) -> bool:
    """A certificate path on a pinned origin, or on one of PayPal's hosts over https when none is pinned."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return False
    if parts.username is not None or parts.query or parts.fragment or not parts.path.startswith(CERT_PATH):
        return False
    if pins.cert_origins:
        return (parts.scheme, parts.hostname or "", port) in pins.cert_origins
    return parts.scheme == "https" and parts.hostname in CERT_HOSTS and port in (None, 443)


def verify_paypal_signature(
    headers: Mapping[str, str], body: bytes, *, secrets: Iterable[str], now: float, tolerance_s: int
) -> int:
    """The transmission's time (unix seconds) once its signature checks under a pinned certificate and webhook
    id; raises `SignatureRefused` otherwise."""
    try:
        pins = pinned(tuple(s for s in secrets if s))
    except ValueError as err:
        raise SignatureRefused(SignatureFailure.MISMATCH, str(err)) from None
    given = _header(headers, SIGNATURE_HEADER)
    transmission_id = _header(headers, TRANSMISSION_ID_HEADER)
    transmission_time = _header(headers, TRANSMISSION_TIME_HEADER)
    cert_url = _header(headers, CERT_URL_HEADER)
    if _header(headers, AUTH_ALGO_HEADER) != AUTH_ALGO:
        raise SignatureRefused(SignatureFailure.MALFORMED, f"{AUTH_ALGO_HEADER} must be {AUTH_ALGO}")
    if not _cert_url_is_pinned(cert_url, pins):
        raise SignatureRefused(SignatureFailure.MISMATCH, "the certificate URL is not on a pinned host")
    try:
        at = datetime.fromisoformat(transmission_time)
    except ValueError:
        at = None
    if at is None or at.tzinfo is None:
        raise SignatureRefused(SignatureFailure.MALFORMED, f"{TRANSMISSION_TIME_HEADER}: an ISO 8601 time with a zone")
    timestamp = int(at.timestamp())
    if timestamp < now - tolerance_s:
        raise SignatureRefused(SignatureFailure.STALE, f"transmission older than {tolerance_s} s")
    if timestamp > now + tolerance_s:
        raise SignatureRefused(SignatureFailure.FUTURE, f"transmission more than {tolerance_s} s in the future")
    try:
        signature = base64.b64decode(given, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureRefused(SignatureFailure.MALFORMED, "the signature is not base64") from None
    if not signature or len(signature) > _MAX_SIGNATURE_BYTES:
        raise SignatureRefused(SignatureFailure.MALFORMED, "the signature's length is not an RSA signature's")
    for webhook_id in pins.webhook_ids:
        message = signed_message(transmission_id, transmission_time, webhook_id, body)
        for key in pins.keys:
            try:
                key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
            except InvalidSignature:
                continue
            return timestamp
    raise SignatureRefused(SignatureFailure.MISMATCH, "no pinned certificate and webhook id verify the signature")


class PayoutItemFetcher(Protocol):
    """Fetches a payout item back from PayPal (`GET /v1/payments/payouts-item/{payout_item_id}`)."""

    async def fetch_item(self, payout_item_id: str) -> Mapping[str, Any] | None:
        """The item as PayPal holds it now, without its receiver or note (`redact_item`), or None if
        PayPal has no such item. Raises ProviderUnavailableError."""
        ...


class PayPalReader:
    terms: Final = ReaderTerms(
        scheme="paypal",
        headers=(SIGNATURE_HEADER, TRANSMISSION_ID_HEADER, TRANSMISSION_TIME_HEADER, CERT_URL_HEADER, AUTH_ALGO_HEADER),
        serves=SERVES,
        confirm="optional",
        confirm_outside_dev=True,  # the body is signed through a CRC32 only (the module's docstring)
        key_id=True,  # the REST app's client id beside its secret (OAuth2 client credentials)
    )

    def verify(self, caller: Caller, headers: Mapping[str, str], body: bytes, *, now: float) -> int | None:
        return verify_paypal_signature(headers, body, secrets=caller.secrets, now=now, tolerance_s=caller.tolerance_s)

    def identify(self, doc: Mapping[str, Any], headers: Mapping[str, str]) -> str | None:
        return event_ref(doc).event_id

    async def confirm_with(
        self, api: PayoutItemFetcher, doc: Mapping[str, Any], headers: Mapping[str, str]
    ) -> Confirmed:
        """The event with its item as PayPal holds it now. An item it does not know, or knows as another payout or
        batch, is not confirmed; the event's type gives way to `MOVED_ON_KIND` when the item moved on since. Any
        other event (a batch's) is stored and ignored without asking."""
        ref = event_ref(doc)
        if ref.item_id is None:
            return Confirmed(doc)
        sent = doc["resource"]
        fetched = await api.fetch_item(ref.item_id)
        if fetched is None:
            raise NotConfirmed("not_found", "PayPal has no such payout item")
        try:
            was, now = paypal_wire.read_item(sent), paypal_wire.read_item(fetched)
        except (KeyError, TypeError, ValueError) as err:
            raise NormalizationError(f"resource: not a PayPal payout item ({err})") from None
        if (now.payout_item_id, now.sender_item_id) != (was.payout_item_id, was.sender_item_id) or (
            was.payout_batch_id is not None and now.payout_batch_id != was.payout_batch_id
        ):
            raise NotConfirmed("mismatch", "PayPal's payout item is another one")
        kind = ref.kind if now.state == was.state else paypal_wire.MOVED_ON_KIND
        return Confirmed({**doc, "event_type": kind, "resource": dict(fetched)})

    def normalize(
        self, caller: Caller, confirmed: Confirmed, headers: Mapping[str, str], *, digest: str, received_at: datetime
    ) -> Normalized:
        return normalize(confirmed.doc, provider=rail_of(caller), digest=digest, received_at=received_at)

    def kept(self, doc: Mapping[str, Any]) -> bytes | None:
        return kept_body(doc)  # never the receiver's email or phone, nor the note


# This rail's webhook face, found by the registry under this name.
READER: Final = PayPalReader()


# -- the callbacks, normalized ---------------------------------------------------------------------------------------
# Callback: `{"id": "WH-…", "event_type": "PAYMENT.PAYOUTS-ITEM.SUCCEEDED", "create_time": "…", "resource_type":
# "payouts_item", "resource": {<the item>}}`. Item events are published with the status the item carries, and only
# when it is the state the event type claims (`EVENT_CLAIMS`); batch events (`PAYMENT.PAYOUTSBATCH.*`) and any other
# type are stored and ignored (each item has its own event). What is stored of a body never holds the receiver (an
# email, a phone) or the note (`kept_body`). Pure: the verifying and fetching are the reader's.


P = ProviderPayoutStatus


@dataclass(frozen=True, slots=True)
class EventRef:
    event_id: str
    kind: str
    item_id: str | None  # the item an item event names (validated for a URL); None for any other type


def event_ref(doc: Mapping[str, Any]) -> EventRef:
    """The callback's id, type and item; NormalizationError for anything else."""
    event_id, kind = event_identity(doc, "id", "event_type")
    if not kind.startswith(ITEM_EVENT_PREFIX):
        return EventRef(event_id, kind, None)
    resource = doc.get("resource")
    item_id = resource.get("payout_item_id") if isinstance(resource, Mapping) else None
    if not isinstance(item_id, str) or not ITEM_ID_RE.fullmatch(item_id):
        raise NormalizationError("resource.payout_item_id: upper-case letters and digits")
    return EventRef(event_id, kind, item_id)


def normalize(doc: Mapping[str, Any], *, provider: ProviderType, digest: str, received_at: datetime) -> Normalized:
    """The event to publish for a verified (and, where configured, confirmed) callback, or ignored."""
    ref = event_ref(doc)
    if ref.item_id is None:  # a batch's event (its items have theirs) or a type this rail does not read
        return Normalized(ref.event_id, ref.kind, None, None, IgnoredReason.KIND_NOT_HANDLED)
    resource = doc["resource"]
    try:
        item = read_item(resource)
    except (KeyError, TypeError, ValueError) as err:
        raise NormalizationError(f"resource: not a PayPal payout item ({err})") from None
    key = item.sender_item_id
    if key is None or len(key) > SENDER_ITEM_ID_MAX or not SENDER_ID_RE.fullmatch(key):
        return Normalized(ref.event_id, ref.kind, None, None, IgnoredReason.NOT_A_PAYOUT)
    if item.sender_batch_id is not None and not item.sender_batch_id.startswith(OUR_BATCH_PREFIX):
        return Normalized(ref.event_id, ref.kind, None, None, IgnoredReason.NOT_A_PAYOUT)  # another sender's item
    claim = EVENT_CLAIMS.get(ref.kind)
    status = item.status if claim is None or claim == item.state else None  # a body at odds with its type: nothing
    try:
        fee = None
        if status is P.PAID and item.fee is not None and item.fee_currency is not None:
            fee = Money(asset=item.fee_currency, amount=item.fee)
        event = ProviderEventReceived(
            provider=provider,
            provider_event_id=ref.event_id,
            provider_payout_ref=item.payout_item_id,
            idempotency_key=key,
            kind=ref.kind,
            received_at=received_at,
            verified=True,
            status=status,
            error_code=failure_code(item.state, item.error_name) if status is P.FAILED else None,
            fee=fee,
            payload_digest=digest,
        )
    except ValidationError as err:
        first = err.errors(include_url=False, include_input=False)[0]
        raise NormalizationError(f"{'.'.join(str(p) for p in first['loc']) or '<root>'}: {first['msg']}") from err
    return Normalized(ref.event_id, ref.kind, None, event)


# What is kept of a callback and of an item fetched back: ids, states, amounts. Never the receiver, the note, the
# email subject or message, PayPal's free text (`summary`, `errors.message`) or links.
KEPT_EVENT_FIELDS: Final = ("id", "event_type", "event_version", "create_time", "resource_type", "resource_version")


KEPT_ITEM_FIELDS: Final = (
    "payout_item_id",
    "transaction_id",
    "activity_id",
    "transaction_status",
    "payout_batch_id",
    "sender_batch_id",
    "payout_item_fee",
    "time_processed",
)


KEPT_SENT_FIELDS: Final = ("sender_item_id", "amount", "recipient_type", "recipient_wallet")


KEPT_BATCH_FIELDS: Final = ("payout_batch_id", "batch_status", "time_created", "time_completed", "amount", "fees")


def _pick(doc: Any, fields: Sequence[str]) -> dict[str, Any]:
    return {k: doc[k] for k in fields if k in doc} if isinstance(doc, Mapping) else {}


def redact_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """An item without personal data or free text (`KEPT_ITEM_FIELDS`, `KEPT_SENT_FIELDS`, `errors.name`)."""
    kept = _pick(item, KEPT_ITEM_FIELDS)
    if isinstance(item.get("payout_item"), Mapping):
        kept["payout_item"] = _pick(item["payout_item"], KEPT_SENT_FIELDS)
    if isinstance(item.get("errors"), Mapping):
        kept["errors"] = _pick(item["errors"], ("name",))
    return kept


def kept_body(doc: Mapping[str, Any]) -> bytes:
    """The callback body Prizeflow stores: what identifies the event, the item's ids, state and amounts."""
    kept = _pick(doc, KEPT_EVENT_FIELDS)
    resource = doc.get("resource")
    if isinstance(resource, Mapping) and "batch_header" in resource:
        header = resource["batch_header"]
        batch = _pick(header, KEPT_BATCH_FIELDS)
        sender = header.get("sender_batch_header") if isinstance(header, Mapping) else None
        batch["sender_batch_header"] = _pick(sender, ("sender_batch_id",))
        kept["resource"] = {"batch_header": batch}
    elif isinstance(resource, Mapping):
        kept["resource"] = redact_item(resource)
    return json.dumps(kept, separators=(",", ":"), sort_keys=True).encode()


__all__ = [
    "AUTH_ALGO",
    "CERT_HOSTS",
    "READER",
    "SERVES",
    "EventRef",
    "PayPalReader",
    "PayoutItemFetcher",
    "Pinned",
    "event_ref",
    "kept_body",
    "normalize",
    "paypal_signature",
    "pinned",
    "redact_item",
    "signed_message",
    "verify_paypal_signature",
]
