"""RazorpayX's webhook face (the upi rail): `X-Razorpay-Signature`, the HMAC of the body (constant time, before
anything reads it), no timestamp; the event's id in `X-Razorpay-Event-Id` is the dedup key (a replay is that event
again, a duplicate); confirmed by fetching the payout back (`GET /v1/payouts/{id}`, basic auth with a key id) so the
status published is the provider's, never only the body's (`razorpayx_events` reads it)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final, Protocol

from prizeflow_contracts.providers import ProviderType
from prizeflow_contracts.rails import razorpayx_events
from prizeflow_contracts.rails.prizeflow import rail_of
from prizeflow_contracts.rails.reading import (
    Caller,
    Confirmed,
    NormalizationError,
    Normalized,
    NotConfirmed,
    ReaderTerms,
)
from prizeflow_contracts.upi import RAZORPAY_EVENT_ID_HEADER, RAZORPAY_SIGNATURE_HEADER, verify_razorpay_signature


class PayoutFetcher(Protocol):
    """Fetches a payout back from the provider (RazorpayX: `GET /v1/payouts/{id}`), to confirm a signed event."""

    async def fetch_payout(self, payout_id: str) -> Mapping[str, Any] | None:
        """The payout as the provider holds it now, or None if it has no such payout. Raises
        ProviderUnavailableError."""
        ...


class RazorpayxReader:
    terms: Final = ReaderTerms(
        scheme="razorpay_signature",
        headers=(RAZORPAY_SIGNATURE_HEADER, RAZORPAY_EVENT_ID_HEADER),
        serves=frozenset({ProviderType.UPI}),
        confirm="optional",
        # The signature covers the body only: its event id (the dedup key) is an unsigned header, so a captured
        # body replayed under a new id is a new delivery. Confirmed, a replay publishes the payout's status as
        # RazorpayX holds it now; unconfirmed, an old status. Outside the dev profile it is confirmed.
        confirm_outside_dev=True,
        key_id=True,
    )

    def verify(self, caller: Caller, headers: Mapping[str, str], body: bytes, *, now: float) -> int | None:
        verify_razorpay_signature(headers, body, secrets=caller.secrets)
        return None

    def identify(self, doc: Mapping[str, Any], headers: Mapping[str, str]) -> str | None:
        return razorpayx_events.event_id_of(headers.get(RAZORPAY_EVENT_ID_HEADER))

    async def confirm_with(self, api: PayoutFetcher, doc: Mapping[str, Any], headers: Mapping[str, str]) -> Confirmed:
        """The event with its payout as RazorpayX holds it now. A payout it does not know, or knows under another
        reference, is not confirmed; the event's kind gives way to `payout.updated` when the payout moved on."""
        try:
            entity = doc["payload"]["payout"]["entity"]
            payout_id = entity["id"]
            if not isinstance(payout_id, str):
                raise TypeError("payout id")
        except (KeyError, TypeError) as err:
            raise NormalizationError(f"not a RazorpayX payout event ({type(err).__name__})") from None
        fetched = await api.fetch_payout(payout_id)
        if fetched is None:
            raise NotConfirmed("not_found", "the provider has no such payout")
        if fetched.get("id") != payout_id or fetched.get("reference_id") != entity.get("reference_id"):
            raise NotConfirmed("mismatch", "the provider's payout is another one")
        # The payout moved on since this event (out of order): its current status, under `payout.updated` (a kind
        # that claims no status of its own), never the stale one the kind names.
        kind = doc.get("event") if fetched.get("status") == entity.get("status") else "payout.updated"
        return Confirmed({**doc, "event": kind, "payload": {**doc["payload"], "payout": {"entity": dict(fetched)}}})

    def normalize(
        self, caller: Caller, confirmed: Confirmed, headers: Mapping[str, str], *, digest: str, received_at: datetime
    ) -> Normalized:
        ref = razorpayx_events.event_id_of(headers.get(RAZORPAY_EVENT_ID_HEADER))
        return razorpayx_events.normalize(
            dict(confirmed.doc), ref, provider=rail_of(caller), digest=digest, received_at=received_at
        )

    def kept(self, doc: Mapping[str, Any]) -> bytes | None:
        return None


# This rail's webhook face, found by the registry under this name.
READER: Final = RazorpayxReader()

__all__ = ["READER", "PayoutFetcher", "RazorpayxReader"]
