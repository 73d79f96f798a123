"""The gift-card provider's webhook face (Tremendous-shaped): `Tremendous-Webhook-Signature: sha256=<HMAC of the
body>` (no timestamp: a replay is that event again, a duplicate), then the order fetched back — always: its events
name a resource and carry no status, so the order is the only truth (`giftcard_events` reads both)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final, Protocol

from prizeflow_contracts.giftcard import GIFTCARD_SIGNATURE_HEADER, verify_giftcard_signature
from prizeflow_contracts.providers import ProviderType
from prizeflow_contracts.rails import giftcard_events
from prizeflow_contracts.rails.prizeflow import rail_of
from prizeflow_contracts.rails.reading import (
    Caller,
    Confirmed,
    NormalizationError,
    Normalized,
    NotConfirmed,
    ReaderTerms,
)


class OrderFetcher(Protocol):
    """Fetches a gift-card order back from the provider (its events name a resource only, with no status)."""

    async def fetch_order(self, resource_type: str, resource_id: str) -> Mapping[str, Any] | None:
        """The order (a reward's through its `order_id`) without any card link, or None if the provider has no
        such resource. Raises ProviderUnavailableError."""
        ...


class GiftCardReader:
    terms: Final = ReaderTerms(
        scheme="giftcard_signature",
        headers=(GIFTCARD_SIGNATURE_HEADER,),
        serves=frozenset({ProviderType.GIFT_CARD}),
        confirm="required",
    )

    def verify(self, caller: Caller, headers: Mapping[str, str], body: bytes, *, now: float) -> int | None:
        verify_giftcard_signature(headers, body, keys=caller.secrets)
        return None

    def identify(self, doc: Mapping[str, Any], headers: Mapping[str, str]) -> str | None:
        return giftcard_events.event_ref(doc).event_id

    async def confirm_with(self, api: OrderFetcher, doc: Mapping[str, Any], headers: Mapping[str, str]) -> Confirmed:
        ref = giftcard_events.event_ref(doc)
        order = await api.fetch_order(ref.resource_type, ref.resource_id)
        if order is None:
            raise NotConfirmed("not_found", "the provider has no such order or reward")
        return Confirmed(doc, order)

    def normalize(
        self, caller: Caller, confirmed: Confirmed, headers: Mapping[str, str], *, digest: str, received_at: datetime
    ) -> Normalized:
        if confirmed.extra is None:
            raise NormalizationError("a gift-card event is read from its order, fetched back")
        ref = giftcard_events.event_ref(confirmed.doc)
        return giftcard_events.normalize(
            ref, confirmed.extra, provider=rail_of(caller), digest=digest, received_at=received_at
        )

    def kept(self, doc: Mapping[str, Any]) -> bytes | None:
        return None


# This rail's webhook face, found by the registry under this name.
READER: Final = GiftCardReader()

__all__ = ["READER", "GiftCardReader", "OrderFetcher"]
