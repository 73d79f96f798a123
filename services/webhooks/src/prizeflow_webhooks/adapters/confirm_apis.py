"""The clients a rail's reader asks its provider back through, by the reader's scheme: each implements the port
its rail declares (`prizeflow_contracts.rails.<rail>`). A provider configured with `confirm` gets one, built from
its `ConfirmConfig`; a scheme that confirms has a client here (`test_app` holds the two lists together)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final, Protocol

from prizeflow_webhooks.adapters.config import ConfirmConfig
from prizeflow_webhooks.adapters.giftcard_api import GiftCardOrderFetcher
from prizeflow_webhooks.adapters.paypal_api import PayPalItemFetcher
from prizeflow_webhooks.adapters.razorpayx_api import RazorpayxPayoutFetcher
from prizeflow_webhooks.adapters.stripe_api import StripeEventConfirmer


class ConfirmClient(Protocol):
    """A provider API client: what its rail's port asks (not typed here), and `close` at shutdown."""

    async def close(self) -> None: ...


CONFIRM_CLIENTS: Final[Mapping[str, Callable[[ConfirmConfig], ConfirmClient]]] = {
    "stripe_signature": StripeEventConfirmer,
    "giftcard_signature": GiftCardOrderFetcher,
    "razorpay_signature": RazorpayxPayoutFetcher,
    "paypal": PayPalItemFetcher,
}


def confirm_client(scheme: str, config: ConfirmConfig) -> ConfirmClient:
    """The client of `scheme`'s provider API, configured."""
    make = CONFIRM_CLIENTS.get(scheme)
    if make is None:
        raise ValueError(f"scheme {scheme} has no confirmation client")
    return make(config)


__all__ = ["CONFIRM_CLIENTS", "ConfirmClient", "confirm_client"]
