"""RazorpayX's webhook delivery, on the kit's deliverer: every event POSTed to the one configured endpoint with
`X-Razorpay-Signature` (under the secret in force at each attempt) and `X-Razorpay-Event-Id`. Retries, holding and
releasing in another order, duplicates are the kit's (`prizeflow_emulator_kit.webhooks`)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Final

from prizeflow_emulator_kit.webhooks import Deliverer, Delivery, DeliveryConfig, Target
from prizeflow_upi_emulator.entities import Event
from prizeflow_upi_emulator.signing import EVENT_ID_HEADER, SIGNATURE_HEADER, sign

ENDPOINT: Final = "webhook"
USER_AGENT: Final = "Razorpay-Webhook/v1"


@dataclass
class WebhookEndpoint:
    """Where webhooks go and the secret they are signed with (changed at run time; None: no webhooks)."""

    url: str | None = None
    secret: str | None = field(default=None, repr=False)


class RazorpayDeliverer(Deliverer):
    def __init__(self, endpoint: WebhookEndpoint, config: DeliveryConfig, *, rng: random.Random) -> None:
        super().__init__(config, self._address, rng=rng)
        self.endpoint = endpoint

    def on_event(self, event: Event) -> None:
        """The books' listener (synchronous: it only enqueues)."""
        if self.endpoint.url is not None:
            self.submit(event.id, event.event, event.body, {ENDPOINT: self.endpoint.url})

    def redeliver(self, event: Event) -> None:
        """One event delivered again now, once (a duplicate, or a late one: out of order)."""
        if self.endpoint.url is not None:
            self.submit(event.id, event.event, event.body, {ENDPOINT: self.endpoint.url}, copies=1, hold=False)

    def _address(self, delivery: Delivery, _timestamp: int) -> Target | None:
        url, secret = self.endpoint.url, self.endpoint.secret
        if url is None or secret is None:
            return None
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            SIGNATURE_HEADER: sign(secret, delivery.body),
            EVENT_ID_HEADER: delivery.event_id,
        }
        return Target(url, headers)

    def to_json(self) -> dict[str, Any]:
        return {
            "url": self.endpoint.url,
            **self.config.to_json(),
            "held": len(self.held),
            "deliveries": [d.to_json() for d in self.deliveries],
        }


__all__ = ["ENDPOINT", "USER_AGENT", "RazorpayDeliverer", "WebhookEndpoint"]
