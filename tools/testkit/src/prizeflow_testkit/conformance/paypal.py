"""The PayPal Payouts rail in the kit against the PayPal emulator (tools/paypal-emulator) as a process.

The rail is steered through the emulator's receiver rules and admin API: an address ending `.unclaimed` has no
PayPal account (the item waits UNCLAIMED: pending, cancellable, paid once claimed), `.failed` is a locked account
(FAILED, RECEIVER_ACCOUNT_LOCKED), `.denied` is refused by PayPal's risk review (RISK_DECLINE); faults on `/v1` (429,
an outage's HTML 502, a batch made whose answer is lost). Its webhooks are the emulator's own recorded events,
signed as PayPal signs them, read both by the provider's `parse_webhook` and by the ingress's normalization, which
must agree. What the rail paid: items under the payout's key that reached the receiver.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import yaml

from prizeflow_contracts.envelope import Envelope
from prizeflow_contracts.errors import PayoutErrorCode
from prizeflow_contracts.events.webhooks import ProviderEventReceived
from prizeflow_contracts.providers import DestinationType, ProviderPayoutStatus, ProviderType
from prizeflow_contracts.rails.paypal import normalize
from prizeflow_testkit.conformance.base import (
    Behaviour,
    Claims,
    Kit,
    KitEnv,
    ProviderHarness,
    as_ingress_publishes,
)
from prizeflow_testkit.payouts import running, settings_for
from prizeflow_testkit.paypal import PayPalAdmin, paypal_emulator, paypal_provider_doc
from prizeflow_testkit.waits import eventually

CLIENT_ID_ENV: Final = "PAYOUTS_KIT_PAYPAL_CLIENT_ID"
CLIENT_SECRET_ENV: Final = "PAYOUTS_KIT_PAYPAL_CLIENT_SECRET"  # noqa: S105 - a variable's name
WEBHOOK_ID_ENV: Final = "PAYOUTS_KIT_PAYPAL_WEBHOOK_ID"
WEBHOOK_CERT_ENV: Final = "PAYOUTS_KIT_PAYPAL_WEBHOOK_CERT"
UNKNOWN: Final = ("timeout_unknown_outcome", "provider_unavailable", "rate_limited")
# The receiver steering (the emulator's default rules) that makes PayPal fail an item with each terminal code.
FAILURE_FOR: Final = {
    PayoutErrorCode.DESTINATION_BLOCKED: "failed",  # FAILED, RECEIVER_ACCOUNT_LOCKED
    PayoutErrorCode.COMPLIANCE_REJECTED: "denied",  # FAILED, RISK_DECLINE
}
EVENT_FOR: Final = {
    ProviderPayoutStatus.PAID: "PAYMENT.PAYOUTS-ITEM.SUCCEEDED",
    ProviderPayoutStatus.PENDING: "PAYMENT.PAYOUTS-ITEM.UNCLAIMED",
}
PAID_STATES: Final = frozenset({"SUCCESS", "REFUNDED", "REVERSED"})  # the receiver got it (and maybe gave it back)


class PayPalHarness(ProviderHarness):
    """Batches to PayPal accounts by email; an unclaimed item pending and cancellable until claimed."""

    name = "paypal"
    provider_type = ProviderType.PAYPAL
    asset = "USD"
    destination_type = DestinationType.PAYPAL
    amount = 5_000
    claims = Claims(supports_cancel=True, supports_quote=True, supports_webhooks=True, async_confirmation=True)

    def __init__(self) -> None:
        self.client_secret = ""
        self._admin: PayPalAdmin | None = None
        self._log: Path | None = None
        self._emulator: Any = None

    @property
    def admin(self) -> PayPalAdmin:
        assert self._admin is not None
        return self._admin

    @asynccontextmanager
    async def running(self, env: KitEnv) -> AsyncIterator[Kit]:
        self._log = env.tmp / f"{self.name}-emulator.log"
        with paypal_emulator(self._log) as emulator:
            self._emulator, self.client_secret = emulator, emulator.client_secret
            env.monkeypatch.setenv(CLIENT_ID_ENV, emulator.client_id)
            env.monkeypatch.setenv(CLIENT_SECRET_ENV, emulator.client_secret)
            env.monkeypatch.setenv(WEBHOOK_ID_ENV, emulator.webhook_id)
            env.monkeypatch.setenv(WEBHOOK_CERT_ENV, emulator.cert_pem)
            entry = paypal_provider_doc(
                name=self.name,
                client_id_env=CLIENT_ID_ENV,
                client_secret_env=CLIENT_SECRET_ENV,
                webhook_id_env=WEBHOOK_ID_ENV,
                webhook_cert_env=WEBHOOK_CERT_ENV,
                api_base=emulator.url,
                timeout_s=1.0,  # a batch answered later than this is a lost answer (timeout after success)
            )
            doc = {"approvals": {self.asset: {"auto_below": "1000000"}}, "providers": [entry]}
            path = env.tmp / f"providers-{self.name}.yaml"
            path.write_text(yaml.safe_dump(doc))
            settings = settings_for(env.db, env.kafka, path, topic_suffix=env.topic_suffix, payouts_max_attempts=20)
            async with emulator.admin() as admin, running(settings) as (parts, client):
                self._admin = admin
                try:
                    yield Kit(self, settings, parts, client, env.db, env.kafka, extra={"emulator_url": emulator.url})
                finally:
                    self._admin = None

    # -- steering ---------------------------------------------------------------------------------------------
    async def destination(self, kit: Kit, behaviour: Behaviour, code: PayoutErrorCode | None = None) -> str:
        await self.admin.clear_faults()  # whatever an earlier scenario left armed
        user = f"kit-{secrets.token_hex(6)}"
        if behaviour is Behaviour.FAIL:
            assert code in FAILURE_FOR, f"the paypal rail reports no failure mapped to {code}"
            return f"{user}.{FAILURE_FOR[code]}@example.com"
        if behaviour is Behaviour.STAY_PENDING:
            return f"{user}.unclaimed@example.com"
        if behaviour is Behaviour.TRANSIENT_THEN_SUCCEED:
            await self.admin.fault("rate_limit", method="POST", path_prefix="/v1/payments/payouts")
        elif behaviour is Behaviour.OUTAGE:
            await self.admin.fault("outage", path_prefix="/v1/", count=100_000)
        elif behaviour is Behaviour.TIMEOUT_AFTER_SUCCESS:
            await self.admin.fault(
                "timeout_after_success", method="POST", path_prefix="/v1/payments/payouts", delay_ms=3000
            )
        return f"{user}@example.com"

    async def after_request(
        self, kit: Kit, key: str, behaviour: Behaviour, code: PayoutErrorCode | None = None
    ) -> None:
        """A payout held pending is held by PayPal: its item processed (UNCLAIMED), not merely accepted (PENDING,
        which no one can cancel), before the scenario goes on."""
        if behaviour is Behaviour.STAY_PENDING:
            await self._item(key)

    async def _item(self, key: str, *, processed: bool = True) -> dict[str, Any]:
        """PayPal's item of our payout once the rail sent it (and PayPal processed it)."""

        async def made() -> list[dict[str, Any]]:
            found = [i for i in await self.admin.items(sender_item_id=key) if not i.get("hidden")]
            return [i for i in found if not processed or i["transaction_status"] != "PENDING"]

        return (await eventually(made, bool, timeout=60))[0]

    async def complete(self, kit: Kit, key: str) -> None:
        await self.admin.item((await self._item(key))["payout_item_id"], "release")  # claimed: paid

    async def outage_felt(self, kit: Kit, key: str) -> bool:
        return any(a["error_code"] in UNKNOWN for a in await kit.attempts(key))

    async def heal(self, kit: Kit) -> None:
        await self.admin.clear_faults()

    async def webhook(
        self, kit: Kit, key: str, status: ProviderPayoutStatus, error_code: PayoutErrorCode | None = None
    ) -> Envelope[ProviderEventReceived]:
        item = await self._item(key)
        kind = EVENT_FOR[status]
        if status is ProviderPayoutStatus.PAID and item["transaction_status"] != "SUCCESS":
            await self.admin.item(
                item["payout_item_id"], "release"
            )  # the rail's state first: the event tells the truth

        async def recorded() -> list[dict[str, Any]]:
            return await self.admin.events(event_type=kind, subject_id=item["payout_item_id"])

        event = (await eventually(recorded, bool, timeout=30))[-1]
        headers, body = self._emulator.signed_delivery(event)
        parsed = await kit.provider.parse_webhook(headers, body)
        ingress = normalize(
            json.loads(body),
            provider=self.provider_type,
            digest=hashlib.sha256(body).hexdigest(),
            received_at=datetime.now(UTC),
        )
        assert isinstance(ingress.event, ProviderEventReceived)
        return as_ingress_publishes(ingress.event, parsed)

    # -- observing --------------------------------------------------------------------------------------------
    async def stray_destination(self, kit: Kit) -> str:
        return f"stray-{secrets.token_hex(6)}@example.com"

    async def payments(self, kit: Kit, key: str) -> int:
        """Items under this payout's key that reached the receiver (the admin API answers during an outage)."""
        found = await self.admin.items(sender_item_id=key)
        return sum(1 for i in found if i["transaction_status"] in PAID_STATES and not i.get("hidden"))

    def terminal_codes(self) -> tuple[PayoutErrorCode, ...]:
        return tuple(FAILURE_FOR)

    def secrets(self) -> tuple[str, ...]:
        return (self.client_secret,)

    def log_files(self, kit: Kit) -> tuple[Path, ...]:
        return (self._log,) if self._log is not None else ()


__all__ = ["PayPalHarness"]
