"""PayPal's webhook delivery, on the kit's deliverer: every event the books emit POSTed to the one configured webhook,
signed at each attempt as PayPal signs (`signing`): a new transmission id and time per attempt, the signature over
them, the webhook's id in force and the body's CRC32. Retries, holding and releasing in another order, duplicates and
a stale transmission time are the kit's (`prizeflow_emulator_kit.webhooks`)."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from prizeflow_emulator_kit.webhooks import Deliverer, Delivery, DeliveryConfig, Target
from prizeflow_paypal_emulator.entities import Event
from prizeflow_paypal_emulator.signing import (
    AUTH_ALGO,
    AUTH_ALGO_HEADER,
    CERT_URL_HEADER,
    TRANSMISSION_ID_HEADER,
    TRANSMISSION_SIG_HEADER,
    TRANSMISSION_TIME_HEADER,
    SigningKey,
)

ENDPOINT: Final = "webhook"
USER_AGENT: Final = "PayPal/AUHD-214.0-emulator"


@dataclass
class WebhookEndpoint:
    """Where webhooks go and the webhook id they are signed for (changed at run time; no URL: no webhooks)."""

    url: str | None = None
    webhook_id: str | None = None


def transmission_time(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class PayPalDeliverer(Deliverer):
    def __init__(
        self,
        endpoint: WebhookEndpoint,
        config: DeliveryConfig,
        signing: SigningKey,
        cert_url: str,
        *,
        rng: random.Random,
        clock: Callable[[], float],
    ) -> None:
        super().__init__(config, self._address, rng=rng, clock=clock)
        self.endpoint = endpoint
        self.signing = signing
        self.cert_url = cert_url

    def on_event(self, event: Event) -> None:
        """The books' listener (synchronous: it only enqueues)."""
        if self.endpoint.url is not None:
            self.submit(event.id, event.event_type, event.body, {ENDPOINT: self.endpoint.url})

    def redeliver(self, event: Event) -> None:
        """One event delivered again now, once (a duplicate, or a late one: out of order)."""
        if self.endpoint.url is not None:
            self.submit(event.id, event.event_type, event.body, {ENDPOINT: self.endpoint.url}, copies=1, hold=False)

    def _address(self, delivery: Delivery, timestamp: int) -> Target | None:
        url, webhook_id = self.endpoint.url, self.endpoint.webhook_id
        if url is None or webhook_id is None:
            return None
        transmission_id, sent_at = str(uuid.uuid4()), transmission_time(timestamp)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            TRANSMISSION_ID_HEADER: transmission_id,
            TRANSMISSION_TIME_HEADER: sent_at,
            TRANSMISSION_SIG_HEADER: self.signing.sign(transmission_id, sent_at, webhook_id, delivery.body),
            CERT_URL_HEADER: self.cert_url,
            AUTH_ALGO_HEADER: AUTH_ALGO,
        }
        return Target(url, headers)

    def to_json(self) -> dict[str, Any]:
        return {
            "url": self.endpoint.url,
            "webhook_id": self.endpoint.webhook_id,
            "cert_url": self.cert_url,
            **self.config.to_json(),
            "held": len(self.held),
            "deliveries": [d.to_json() for d in self.deliveries],
        }


__all__ = ["ENDPOINT", "USER_AGENT", "PayPalDeliverer", "WebhookEndpoint", "transmission_time"]
