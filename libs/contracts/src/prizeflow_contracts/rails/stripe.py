"""Stripe's webhook face: `Stripe-Signature` (`t=<unix>,v1=<HMAC of "<t>.<body>">`), then the event fetched back
from Stripe (`GET /v1/events/{id}`, in the connected account's scope when it names one) and the payment intent it
names, before it is believed (`stripe_events` reads it). Confirmation is required outside the dev profile."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final, Protocol

from prizeflow_contracts.providers import ProviderType
from prizeflow_contracts.rails import stripe_events
from prizeflow_contracts.rails.prizeflow import rail_of, timed_verify
from prizeflow_contracts.rails.reading import (
    Caller,
    Confirmed,
    NormalizationError,
    Normalized,
    NotConfirmed,
    ReaderTerms,
)
from prizeflow_contracts.webhook_signatures import STRIPE_SIGNATURE_HEADER


class EventConfirmer(Protocol):
    """Asks Stripe itself about an event it says it sent (a leaked webhook secret alone cannot forge one)."""

    async def fetch_event(self, event_id: str, *, account: str | None) -> Mapping[str, Any] | None:
        """The provider's event, or None if it has no such event. Raises ProviderUnavailableError."""
        ...

    async def fetch_payment_intent(self, payment_intent_id: str, *, account: str | None) -> Mapping[str, Any] | None:
        """A payment intent (for its metadata), or None if it has none by that id. Raises ProviderUnavailableError."""
        ...


class StripeReader:
    terms: Final = ReaderTerms(
        scheme="stripe_signature",
        headers=(STRIPE_SIGNATURE_HEADER,),
        serves=frozenset({ProviderType.STRIPE}),
        confirm="optional",
        confirm_outside_dev=True,
    )

    def verify(self, caller: Caller, headers: Mapping[str, str], body: bytes, *, now: float) -> int | None:
        return timed_verify(STRIPE_SIGNATURE_HEADER, caller, headers, body, now)

    def identify(self, doc: Mapping[str, Any], headers: Mapping[str, str]) -> str | None:
        return stripe_events.event_ref(doc).event_id

    async def confirm_with(self, api: EventConfirmer, doc: Mapping[str, Any], headers: Mapping[str, str]) -> Confirmed:
        """The event as Stripe has it, and the payment intent a refund or dispute names."""
        ref = stripe_events.event_ref(doc)
        fetched = await api.fetch_event(ref.event_id, account=ref.account)
        if fetched is None:
            raise NotConfirmed("not_found", f"the provider has no event {ref.event_id}")
        try:
            got = stripe_events.event_ref(fetched)
        except NormalizationError:
            got = None
        if (
            got is None
            or (got.event_id, got.kind, got.object_id) != (ref.event_id, ref.kind, ref.object_id)
            or got.account not in {None, ref.account}
        ):
            raise NotConfirmed("mismatch", "the provider's event differs in type, object or account")
        if got.account is None and ref.account is not None:
            # Found only in that connected account's scope, it is that account's event whether or not the API's copy
            # names it: without it, a connected account's checkout or refund would read as the platform's own.
            fetched = {**fetched, "account": ref.account}
        payment_intent = None
        if (pi := stripe_events.payment_intent_of(fetched)) is not None:
            payment_intent = await api.fetch_payment_intent(pi, account=got.account)
            if payment_intent is None:
                raise NotConfirmed("not_found", "the provider has no such payment")
        return Confirmed(fetched, payment_intent)

    def normalize(
        self, caller: Caller, confirmed: Confirmed, headers: Mapping[str, str], *, digest: str, received_at: datetime
    ) -> Normalized:
        return stripe_events.normalize(
            confirmed.doc,
            provider=rail_of(caller),
            digest=digest,
            received_at=received_at,
            payment_intent=confirmed.extra,
        )

    def kept(self, doc: Mapping[str, Any]) -> bytes | None:
        return None


# This rail's webhook face, found by the registry under this name.
READER: Final = StripeReader()

__all__ = ["READER", "EventConfirmer", "StripeReader"]
