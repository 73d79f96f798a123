"""Tremendous' webhook delivery, on the kit's deliverer: every event the store emits POSTed to the one configured
endpoint, signed (`Tremendous-Webhook-Signature`) with the private key in force at each attempt. Retries, holding
and releasing in reverse order, duplicates are the kit's (`prizeflow_emulator_kit.webhooks`)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from prizeflow_emulator_kit.webhooks import Deliverer, Delivery, DeliveryConfig, Target
from prizeflow_giftcard_emulator.signing import SIGNATURE_HEADER, sign
from prizeflow_giftcard_emulator.state import Event

ENDPOINT = "webhook"  # the one endpoint a Tremendous organization posts to


@dataclass
class WebhookEndpoint:
    """Where webhooks go and the key they are signed with (changed at run time; None: no webhooks)."""

    url: str | None = None
    private_key: str | None = field(default=None, repr=False)


class GiftCardDeliverer(Deliverer):
    def __init__(self, endpoint: WebhookEndpoint, config: DeliveryConfig) -> None:
        super().__init__(config, self._address)
        self.endpoint = endpoint

    def on_event(self, event: Event) -> None:
        """The store's listener (synchronous: it only enqueues)."""
        if self.endpoint.url is not None:
            self.submit(event.uuid, event.event, _body(event), {ENDPOINT: self.endpoint.url})

    def redeliver(self, event: Event) -> None:
        """One event delivered again now, once (a duplicate, or a late one: out of order)."""
        if self.endpoint.url is not None:
            self.submit(event.uuid, event.event, _body(event), {ENDPOINT: self.endpoint.url}, copies=1, hold=False)

    def _address(self, delivery: Delivery, _timestamp: int) -> Target | None:
        url, key = self.endpoint.url, self.endpoint.private_key
        if url is None or key is None:
            return None
        return Target(url, {"Content-Type": "application/json", SIGNATURE_HEADER: sign(key, delivery.body)})

    def to_json(self) -> dict[str, Any]:
        return {
            "url": self.endpoint.url,
            "duplicates": self.config.duplicates,
            "hold": self.config.hold,
            "held": len(self.held),
            "attempts": [
                {"event_uuid": d.event_id, "event": d.event_type, "status": a.status, "at": a.at}
                for d, a in self.attempts()
            ],
        }


def _body(event: Event) -> bytes:
    return json.dumps(event.to_json(), separators=(",", ":")).encode()


__all__ = ["ENDPOINT", "GiftCardDeliverer", "WebhookEndpoint"]
