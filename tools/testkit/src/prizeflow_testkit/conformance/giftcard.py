"""The gift-card rail in the kit against the gift-card emulator (tools/giftcard-emulator) as a process.

The rail is steered through the emulator's admin API: what the next order to a recipient does (delivered, held
for approval, refused for its email, failed by the provider), the organisation's approval (`complete`) and faults
on `/api/v2` (429, 500 everywhere for an outage, an order placed whose answer comes too late). Its webhooks are
the emulator's own events, signed with the webhook key and read both by the provider's `parse_webhook` and by the
ingress's normalization (each fetching the order back), which must agree. What the rail paid: orders under the
payout's id whose card was delivered.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Final

import yaml

from prizeflow_contracts.envelope import Envelope
from prizeflow_contracts.errors import PayoutErrorCode
from prizeflow_contracts.events.webhooks import ProviderEventReceived
from prizeflow_contracts.giftcard import GIFTCARD_SIGNATURE_HEADER, giftcard_signature
from prizeflow_contracts.providers import DestinationType, ProviderPayoutStatus, ProviderType
from prizeflow_contracts.rails.giftcard_events import event_ref, normalize
from prizeflow_payouts.adapters.giftcard import GiftCardPayoutProvider
from prizeflow_payouts.application.payout_requests import payout_id_for
from prizeflow_testkit.conformance.base import (
    Behaviour,
    Claims,
    Kit,
    KitEnv,
    ProviderHarness,
    as_ingress_publishes,
)
from prizeflow_testkit.giftcard import GiftCardAdmin, giftcard_emulator
from prizeflow_testkit.giftcard_payouts import giftcard_provider_doc
from prizeflow_testkit.payouts import running, settings_for
from prizeflow_webhooks.adapters.config import ConfirmConfig
from prizeflow_webhooks.adapters.giftcard_api import GiftCardOrderFetcher

API_KEY_ENV: Final = "PAYOUTS_KIT_GIFTCARD_API_KEY"
WEBHOOK_KEY_ENV: Final = "PAYOUTS_KIT_GIFTCARD_WEBHOOK_KEY"
UNKNOWN: Final = ("timeout_unknown_outcome", "provider_unavailable")
# The recipient steering that makes the provider fail an order with each terminal code.
FAILURE_FOR: Final = {
    PayoutErrorCode.INVALID_DESTINATION: "invalid_email",  # refused at creation (422 on recipient.email)
    PayoutErrorCode.TX_FAILED: "order_failed",  # created FAILED by the provider
}
EVENT_FOR: Final = {
    ProviderPayoutStatus.PAID: "REWARDS.DELIVERY.SUCCEEDED",
    ProviderPayoutStatus.PENDING: "ORDERS.CREATED",
}


class GiftCardHarness(ProviderHarness):
    """Delivery by email; held for approval when steered so (pending, cancellable by rejecting it)."""

    name = "gift_card"
    provider_type = ProviderType.GIFT_CARD
    asset = "USD"
    destination_type = DestinationType.EMAIL
    amount = 5_000
    claims = Claims(supports_cancel=True, supports_quote=True, supports_webhooks=True, async_confirmation=True)
    delivery: ClassVar[str] = "email"

    def __init__(self) -> None:
        self.api_key = "TEST_kit_" + secrets.token_hex(16)
        self.webhook_key = "whk_kit_" + secrets.token_hex(16)
        self._admin: GiftCardAdmin | None = None
        self._fetcher: GiftCardOrderFetcher | None = None
        self._log: Path | None = None

    @property
    def admin(self) -> GiftCardAdmin:
        assert self._admin is not None
        return self._admin

    @asynccontextmanager
    async def running(self, env: KitEnv) -> AsyncIterator[Kit]:
        env.monkeypatch.setenv(API_KEY_ENV, self.api_key)
        env.monkeypatch.setenv(WEBHOOK_KEY_ENV, self.webhook_key)
        self._log = env.tmp / f"{self.name}-emulator.log"
        with giftcard_emulator(self._log, api_key=self.api_key) as emulator:
            entry = giftcard_provider_doc(
                name=self.name,
                api_key_env=API_KEY_ENV,
                webhook_key_env=WEBHOOK_KEY_ENV,
                api_base=emulator.url,
                delivery=self.delivery,
                timeout_s=1.0,  # an order answered later than this is a lost answer (timeout after success)
            )
            doc = {"approvals": {self.asset: {"auto_below": "1000000"}}, "providers": [entry]}
            path = env.tmp / f"providers-{self.name}.yaml"
            path.write_text(yaml.safe_dump(doc))
            settings = settings_for(env.db, env.kafka, path, topic_suffix=env.topic_suffix, payouts_max_attempts=20)
            self._fetcher = GiftCardOrderFetcher(ConfirmConfig(emulator.url, self.api_key, 5.0))
            async with emulator.admin() as admin, running(settings) as (parts, client):
                self._admin = admin
                try:
                    yield Kit(self, settings, parts, client, env.db, env.kafka, extra={"emulator_url": emulator.url})
                finally:
                    self._admin = None
                    await self._fetcher.close()

    # -- steering ---------------------------------------------------------------------------------------------
    async def destination(self, kit: Kit, behaviour: Behaviour, code: PayoutErrorCode | None = None) -> str:
        await self.admin.clear_faults()  # whatever an earlier scenario left armed
        email = f"kit-{secrets.token_hex(6)}@example.com"
        if behaviour is Behaviour.FAIL:
            assert code in FAILURE_FOR, f"the gift-card rail reports no failure mapped to {code}"
            await self.admin.steer(email, FAILURE_FOR[code])
        elif behaviour is Behaviour.STAY_PENDING:
            await self.admin.steer(email, "approval")
        elif behaviour is Behaviour.TRANSIENT_THEN_SUCCEED:
            await self.admin.fault("rate_limit", method="POST", path_prefix="/api/v2/orders")
        elif behaviour is Behaviour.OUTAGE:
            await self.admin.fault("server_error", path_prefix="/api/v2/", count=100_000)
        elif behaviour is Behaviour.TIMEOUT_AFTER_SUCCESS:
            await self.admin.fault("timeout_after_success", method="POST", path_prefix="/api/v2/orders", delay_ms=3000)
        return email

    async def _order_id(self, kit: Kit, key: str) -> str:
        """The provider's order once payouts recorded it (the payout is submitted or further)."""
        row = await kit.wait_row(key, lambda r: bool(r.get("provider_ref")), timeout=60)
        return str(row["provider_ref"])

    async def complete(self, kit: Kit, key: str) -> None:
        await self.admin.approve(await self._order_id(kit, key))

    async def outage_felt(self, kit: Kit, key: str) -> bool:
        return any(a["error_code"] in UNKNOWN for a in await kit.attempts(key))

    async def heal(self, kit: Kit) -> None:
        await self.admin.clear_faults()

    async def webhook(
        self, kit: Kit, key: str, status: ProviderPayoutStatus, error_code: PayoutErrorCode | None = None
    ) -> Envelope[ProviderEventReceived]:
        order_id = await self._order_id(kit, key)
        kind = EVENT_FOR[status]
        if not await self._events(kind, order_id):  # the rail's state first: the event tells the truth
            await self.admin.approve(order_id)
        event = {k: v for k, v in (await self._events(kind, order_id))[-1].items() if k != "order_id"}
        body = json.dumps(event).encode()
        headers = {GIFTCARD_SIGNATURE_HEADER: giftcard_signature(self.webhook_key, body)}
        # The provider's own reading, on a client of this loop (the kit's payouts runs its worker on another).
        provider = kit.provider
        assert isinstance(provider, GiftCardPayoutProvider)
        reader = GiftCardPayoutProvider(provider.options, api_key=self.api_key, webhook_keys=(self.webhook_key,))
        try:
            parsed = await reader.parse_webhook(headers, body)
        finally:
            await reader.close()
        ref = event_ref(event)
        assert self._fetcher is not None
        order = await self._fetcher.fetch_order(ref.resource_type, ref.resource_id)
        assert order is not None
        ingress = normalize(
            ref,
            order,
            provider=self.provider_type,
            digest=hashlib.sha256(body).hexdigest(),
            received_at=datetime.now(UTC),
        )
        assert isinstance(ingress.event, ProviderEventReceived)
        return as_ingress_publishes(ingress.event, parsed)

    async def _events(self, kind: str, order_id: str) -> list[dict[str, Any]]:
        return [e for e in await self.admin.events(kind) if e["order_id"] == order_id]

    # -- observing --------------------------------------------------------------------------------------------
    async def discrepancy_reference(self, kit: Kit, key: str) -> str:
        return str((await kit.row(key))["id"])  # the order's external_id is our payout id

    async def payments(self, kit: Kit, key: str) -> int:
        """Cards delivered under this payout's id (from the emulator's records: they answer during an outage)."""
        orders = await self.admin.orders(payout_id_for(key))
        return sum(1 for o in orders if o["rewards"][0]["delivery"]["status"] == "SUCCEEDED")

    async def rail_attempts(self, kit: Kit, key: str) -> int:
        calls = await self.admin.requests(method="POST", path="/api/v2/orders")
        return sum(1 for c in calls if c.get("external_id") == payout_id_for(key))

    def terminal_codes(self) -> tuple[PayoutErrorCode, ...]:
        return tuple(FAILURE_FOR)

    def secrets(self) -> tuple[str, ...]:
        return (self.api_key, self.webhook_key)

    def log_files(self, kit: Kit) -> tuple[Path, ...]:
        return (self._log,) if self._log is not None else ()


__all__ = ["GiftCardHarness"]
