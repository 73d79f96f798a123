"""PayPal Payouts' webhook face: PayPal's own signature, checked offline against a pinned certificate, then the
item fetched back (`GET /v1/payments/payouts-item/{id}`) before its status is believed (`paypal_events` reads it).

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
import re
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, Final, Protocol
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from prizeflow_contracts.providers import ProviderType
from prizeflow_contracts.rails import paypal_events, paypal_wire
from prizeflow_contracts.rails.prizeflow import rail_of
from prizeflow_contracts.rails.reading import (
    Caller,
    Confirmed,
    NormalizationError,
    Normalized,
    NotConfirmed,
    ReaderTerms,
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
        """The item as PayPal holds it now, without its receiver or note (`paypal_events.redact_item`), or None if
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
        return paypal_events.event_ref(doc).event_id

    async def confirm_with(
        self, api: PayoutItemFetcher, doc: Mapping[str, Any], headers: Mapping[str, str]
    ) -> Confirmed:
        """The event with its item as PayPal holds it now. An item it does not know, or knows as another payout or
        batch, is not confirmed; the event's type gives way to `MOVED_ON_KIND` when the item moved on since. Any
        other event (a batch's) is stored and ignored without asking."""
        ref = paypal_events.event_ref(doc)
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
        return paypal_events.normalize(confirmed.doc, provider=rail_of(caller), digest=digest, received_at=received_at)

    def kept(self, doc: Mapping[str, Any]) -> bytes | None:
        return paypal_events.kept_body(doc)  # never the receiver's email or phone, nor the note


__all__ = [
    "AUTH_ALGO",
    "CERT_HOSTS",
    "SERVES",
    "PayPalReader",
    "PayoutItemFetcher",
    "Pinned",
    "paypal_signature",
    "pinned",
    "signed_message",
    "verify_paypal_signature",
]
