"""A rail's webhook face: how its provider's callbacks are verified, identified, confirmed and read.

The webhook ingress runs one path for every provider (look up, verify, confirm, store) and knows no rail: each
rail brings a `WebhookReader`, registered once in `prizeflow_contracts.rails.registry` under the name of its
signing scheme (the providers file's `scheme`). A reader is pure but for `confirm`, which asks the provider back
through the port its rail declares (an adapter of the ingress implements it). What a reader says:

| member | what it is |
|---|---|
| `terms.scheme` | its name in the registry and the providers file |
| `terms.headers` | the request headers it reads, lower-case: its signature's first (each at most once in a request) |
| `terms.serves` | the provider types the scheme may be configured for (the providers file is refused otherwise) |
| `terms.confirm` | `required`, `optional` (required outside the dev profile when `confirm_outside_dev`) or `never` |
| `terms.key_id` | its confirmation authenticates with a key id beside the key (basic auth) |
| `verify` | the signature over the body: its timestamp, or None for a scheme without one; `SignatureRefused` |
| `identify` | the provider's event id when known before confirming (a stored one is a duplicate, never asked again) |
| `confirm_with` | the event as the provider holds it now (`Confirmed`), `NotConfirmed`, or `ProviderUnavailableError` |
| `normalize` | the Prizeflow event it becomes (`Normalized`), or `NormalizationError` |
| `kept` | what of the body is stored (None: all of it) — never a person's free text |
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Final, Literal, Protocol

from prizeflow_contracts.events.webhooks import PaymentEventReceived, ProviderEventReceived, VerificationEventReceived
from prizeflow_contracts.ids import is_provider_ref
from prizeflow_contracts.kyc import VerificationVendor
from prizeflow_contracts.providers import ProviderType


class IgnoredReason(StrEnum):
    KIND_NOT_HANDLED = "kind_not_handled"
    PAYMENT_PENDING = "payment_pending"  # checkout completed, money not there yet (async payment methods)
    NO_PAYMENT = "no_payment"  # checkout completed with nothing to pay
    REFUND_NOT_PROCEEDING = (
        "refund_not_proceeding"  # a refund awaiting action (a failed or canceled one: refund_failed)
    )
    # A payment or a transfer on a connected account (`account` set): not money paid to, or sent by, the platform.
    CONNECTED_ACCOUNT = "connected_account"
    # A bank payout of the platform's own balance (`payout.*` without `account`): Prizeflow pays on players' accounts.
    PLATFORM_PAYOUT = "platform_payout"
    # A gift-card order Prizeflow did not place (no payout id as its external id): another user of the account.
    NOT_A_PAYOUT = "not_a_payout"
    # A KYC applicant whose external user id is no player id of ours (made in the vendor's dashboard, say).
    NOT_A_PLAYER = "not_a_player"


NormalizedEvent = ProviderEventReceived | PaymentEventReceived | VerificationEventReceived


@dataclass(frozen=True, slots=True)
class Normalized:
    """A verified callback, normalized: the provider's event id and kind, the flow's correlation id when the
    provider echoed it, and the Prizeflow event to publish (None: ignored, with why)."""

    provider_event_id: str
    kind: str
    correlation_id: str | None
    event: NormalizedEvent | None
    ignored: IgnoredReason | None = None

    def __post_init__(self) -> None:
        if (self.event is None) == (self.ignored is None):
            raise ValueError("a normalized callback is either an event or ignored (with a reason)")


class NormalizationError(ValueError):
    """The callback is well signed but cannot be read as the provider's event (a bug on either side): refused
    with `invalid_payload`, never stored, so a corrected delivery can still take its dedup key."""


_KIND_RE: Final = re.compile(r"[A-Za-z0-9._:/\-]{1,128}")


def event_identity(doc: Mapping[str, Any], id_field: str, kind_field: str) -> tuple[str, str]:
    """A callback's id (a provider reference) and kind (1-128 of `[A-Za-z0-9._:/-]`) under the provider's own field
    names; NormalizationError naming the field otherwise."""
    event_id, kind = doc.get(id_field), doc.get(kind_field)
    if not isinstance(event_id, str) or not is_provider_ref(event_id):
        raise NormalizationError(f"{id_field}: 1-255 printable ASCII characters, no spaces")
    if not isinstance(kind, str) or not _KIND_RE.fullmatch(kind):
        raise NormalizationError(f"{kind_field}: 1-128 characters of [A-Za-z0-9._:/-]")
    return event_id, kind


class ProviderUnavailableError(Exception):
    """The provider could not be asked (network, timeout, 5xx, rate limit): the caller answers 503 and the
    provider delivers again later. Carries no response text (it may hold provider data)."""


class NotConfirmed(Exception):  # noqa: N818 - an answer, not a fault: the provider does not stand by the event
    """The provider does not confirm the event: `outcome` is the confirmation metric's label (`not_found`: it has
    no such thing; `mismatch`: it has another one), `detail` the problem's text. Nothing is stored."""

    def __init__(self, outcome: Literal["not_found", "mismatch"], detail: str) -> None:
        super().__init__(detail)
        self.outcome = outcome
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Confirmed:
    """The event as the provider holds it now (`doc`), and what else was fetched to read it (`extra`: Stripe's
    payment intent, the gift-card order)."""

    doc: Mapping[str, Any]
    extra: Mapping[str, Any] | None = None


class Caller(Protocol):
    """What a reader needs of a configured provider (the ingress's `IngressProvider`)."""

    @property
    def name(self) -> str: ...

    @property
    def type(self) -> ProviderType | VerificationVendor: ...

    @property
    def secrets(self) -> tuple[str, ...]: ...

    @property
    def tolerance_s(self) -> int: ...


Confirmation = Literal["required", "optional", "never"]


@dataclass(frozen=True, slots=True)
class ReaderTerms:
    """What a reader says of its scheme, declared (the module's table: `scheme` ... `key_id`)."""

    scheme: str
    headers: tuple[str, ...]
    serves: frozenset[ProviderType | VerificationVendor]
    confirm: Confirmation = "never"
    confirm_outside_dev: bool = False
    key_id: bool = False


def incoherence(
    terms: ReaderTerms, provider_type: ProviderType | VerificationVendor, *, confirms: bool, key_id: bool
) -> str | None:
    """Why a provider of `provider_type` may not sign with the scheme of `terms`, confirmed (`confirms`, with a key
    id or not) or not; None: it may. The providers file and the ingress's use case both ask (a provider built in
    code is held to the same rules as one read from the file)."""
    if provider_type not in terms.serves:
        return f"a {provider_type.value} provider does not sign with scheme {terms.scheme}"
    if terms.confirm == "required" and not confirms:
        return f"a {provider_type.value} provider needs `confirm` (its events are read from what is fetched back)"
    if terms.confirm == "never" and confirms:
        return f"scheme {terms.scheme} confirms no event: remove `confirm`"
    if confirms and terms.key_id != key_id:
        need = "required" if terms.key_id else "not used"
        return f"confirm.api_key_id (a key id beside the key) is {need} by scheme {terms.scheme}"
    return None


class WebhookReader(Protocol):
    """One signing scheme's callbacks, read (see the module's table). `api` is the port the rail declares for
    asking its provider back; `headers` hold the reader's own headers only, keyed lower-case."""

    @property
    def terms(self) -> ReaderTerms: ...

    def verify(self, caller: Caller, headers: Mapping[str, str], body: bytes, *, now: float) -> int | None: ...

    def identify(self, doc: Mapping[str, Any], headers: Mapping[str, str]) -> str | None: ...

    async def confirm_with(self, api: Any, doc: Mapping[str, Any], headers: Mapping[str, str]) -> Confirmed: ...

    def normalize(
        self,
        caller: Caller,
        confirmed: Confirmed,
        headers: Mapping[str, str],
        *,
        digest: str,
        received_at: datetime,
    ) -> Normalized: ...

    def kept(self, doc: Mapping[str, Any]) -> bytes | None: ...


__all__ = [
    "Caller",
    "Confirmation",
    "Confirmed",
    "IgnoredReason",
    "NormalizationError",
    "Normalized",
    "NormalizedEvent",
    "NotConfirmed",
    "ProviderUnavailableError",
    "ReaderTerms",
    "WebhookReader",
    "event_identity",
    "incoherence",
]
