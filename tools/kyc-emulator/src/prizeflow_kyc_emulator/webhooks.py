"""Sumsub's webhook delivery, on the kit's deliverer: every event the store emits POSTed to the one configured
endpoint with `X-Payload-Digest` under the secret and algorithm in force at each attempt. Tests turn delivery off
(events are kept, not sent) and on again (what was kept is sent then, in order); retries are the kit's
(`prizeflow_emulator_kit.webhooks`)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from prizeflow_emulator_kit.webhooks import Deliverer, Delivery, DeliveryConfig, ReleaseOrder, Target
from prizeflow_kyc_emulator.signing import DIGEST_ALG_HEADER, DIGEST_ALGS, DIGEST_HEADER, payload_digest
from prizeflow_kyc_emulator.state import Event

ENDPOINT = "webhook"  # the one endpoint the emulated dashboard posts to


@dataclass
class WebhookEndpoint:
    """Where webhooks go and how they are signed (changed at run time; None: no webhooks)."""

    url: str | None = None
    secret: str | None = field(default=None, repr=False)
    alg: str = "HMAC_SHA256_HEX"


class KycDeliverer(Deliverer):
    def __init__(self, endpoint: WebhookEndpoint, config: DeliveryConfig) -> None:
        super().__init__(config, self._address)
        self.endpoint = endpoint

    @property
    def enabled(self) -> bool:
        return not self.config.hold

    def on_event(self, event: Event) -> None:
        """The store's listener (synchronous: it only enqueues); kept while delivery is off."""
        if self.endpoint.url is not None:
            self.submit(event.correlation_id, event.type, _body(event), {ENDPOINT: self.endpoint.url})

    def enable(self, enabled: bool) -> int:
        """Delivery on or off; turned on, what was kept is sent in order. The number released."""
        if not enabled:
            self.config.hold = True
            return 0
        return len(self.release(ReleaseOrder.FIFO))

    def redeliver(self, event: Event) -> None:
        """One event delivered again now (a duplicate, or a late one), delivery on or off."""
        if self.endpoint.url is not None:
            self.submit(event.correlation_id, event.type, _body(event), {ENDPOINT: self.endpoint.url}, hold=False)

    def set_alg(self, alg: str) -> None:
        if alg not in DIGEST_ALGS:
            raise ValueError(f"alg is one of {sorted(DIGEST_ALGS)}")
        self.endpoint.alg = alg

    def _address(self, delivery: Delivery, _timestamp: int) -> Target | None:
        url, secret, alg = self.endpoint.url, self.endpoint.secret, self.endpoint.alg
        if url is None or secret is None:
            return None
        headers = {
            "Content-Type": "application/json",
            DIGEST_HEADER: payload_digest(secret, delivery.body, alg),
            DIGEST_ALG_HEADER: alg,
        }
        return Target(url, headers)

    def to_json(self) -> dict[str, Any]:
        return {
            "url": self.endpoint.url,
            "alg": self.endpoint.alg,
            "enabled": self.enabled,
            "held": len(self.held),
            "attempts": [
                {"correlation_id": d.event_id, "type": d.event_type, "status": a.status, "at": a.at}
                for d, a in self.attempts()
            ],
        }


def _body(event: Event) -> bytes:
    return json.dumps(event.to_json(), separators=(",", ":")).encode()


__all__ = ["ENDPOINT", "KycDeliverer", "WebhookEndpoint"]
