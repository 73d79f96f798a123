"""Stripe's webhook delivery, on the kit's deliverer: every recorded event POSTed to every endpoint that wants it,
signed with `Stripe-Signature` (a `v1` per active secret of the endpoint at that attempt), its `pending_webhooks`
counted down as endpoints take it. Retries, holding and releasing, duplicates and stale timestamps are the kit's
(`prizeflow_emulator_kit.webhooks`)."""

from __future__ import annotations

import json
import random

from prizeflow_emulator_kit.webhooks import Deliverer, Delivery, DeliveryConfig, Target
from prizeflow_stripe_emulator.signing import stripe_signature
from prizeflow_stripe_emulator.state import Obj, Store

USER_AGENT = "Stripe/1.0 (+https://stripe.com/docs/webhooks)"


class StripeDeliverer(Deliverer):
    def __init__(self, store: Store, config: DeliveryConfig, *, rng: random.Random) -> None:
        super().__init__(config, self._address, rng=rng, on_success=self._taken)
        self.store = store
        store.listeners.append(self.on_event)

    def on_event(self, event: Obj) -> None:
        """The store's listener (synchronous: it only enqueues)."""
        targets = {e.id: e.url for e in self.store.endpoints.values() if e.wants(event)}
        event["pending_webhooks"] = len(targets)
        self.submit(event["id"], event["type"], _body(event), targets)

    def resend(self, event: Obj, endpoint_id: str | None = None) -> list[Delivery]:
        """Admin: deliver a recorded event again (to one endpoint, or to every endpoint that wants it)."""
        targets = {
            e.id: e.url
            for e in self.store.endpoints.values()
            if (endpoint_id is None and e.wants(event)) or e.id == endpoint_id
        }
        return self.submit(event["id"], event["type"], _body(event), targets, copies=1)

    def _address(self, delivery: Delivery, timestamp: int) -> Target | None:
        endpoint = self.store.endpoints.get(delivery.endpoint_id)
        if endpoint is None:
            return None
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": USER_AGENT,
            "Stripe-Signature": stripe_signature(endpoint.secrets, timestamp, delivery.body),
        }
        return Target(endpoint.url, headers)

    def _taken(self, delivery: Delivery) -> None:
        event = self.store.events.get(delivery.event_id)
        if event is not None and event["pending_webhooks"] > 0:
            event["pending_webhooks"] -= 1


def _body(event: Obj) -> bytes:
    return json.dumps(event, indent=2).encode()


__all__ = ["USER_AGENT", "StripeDeliverer"]
