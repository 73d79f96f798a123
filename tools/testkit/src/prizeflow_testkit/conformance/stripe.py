"""The Stripe rail in the kit (mode `transfer_and_payout`: a transfer to the player's connected account, then
that account's payout to the bank) against the Stripe emulator (tools/stripe-emulator) as a process.

The rail is steered through the emulator's admin API: the bank's answer (`/payouts/{id}/settle`: paid, or
failed with a Stripe `failure_code`) and faults on `/v1` (429, 500 everywhere for an outage, a transfer that
lands but answers too late). Its webhooks are the emulator's own events, signed with the endpoint secret and
verified by the provider's `parse_webhook`, as the webhooks ingress would. What the rail paid: transfers of the
payout that were not reversed.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, Final

import yaml

from prizeflow_contracts.envelope import Envelope
from prizeflow_contracts.errors import PAYOUT_ERROR_RETRYABLE, PayoutErrorCode
from prizeflow_contracts.events.webhooks import ProviderEventReceived
from prizeflow_contracts.providers import DestinationType, ProviderPayoutStatus, ProviderType
from prizeflow_contracts.rails.stripe_events import normalize
from prizeflow_contracts.webhook_signatures import STRIPE_SIGNATURE_HEADER, signature_header
from prizeflow_payouts.adapters.stripe.classify import PAYOUT_FAILURE_CODES
from prizeflow_testkit.conformance.base import (
    Behaviour,
    Claims,
    Kit,
    KitEnv,
    ProviderHarness,
    Scenario,
    as_ingress_publishes,
)
from prizeflow_testkit.payouts import running, settings_for
from prizeflow_testkit.stripe import StripeAdmin, stripe_emulator
from prizeflow_testkit.stripe_payouts import stripe_provider_doc

API_KEY_ENV: Final = "PAYOUTS_KIT_STRIPE_API_KEY"
WEBHOOK_SECRET_ENV: Final = "PAYOUTS_KIT_STRIPE_WEBHOOK_SECRET"  # noqa: S105 - the NAME of a variable
UNKNOWN: Final = ("timeout_unknown_outcome", "provider_unavailable")
# One Stripe `failure_code` per stable code it maps to (terminal ones: a payout failure never succeeds later).
FAILURE_CODE_FOR: Final = {
    code: fc for fc, code in reversed(list(PAYOUT_FAILURE_CODES.items())) if not PAYOUT_ERROR_RETRYABLE[code]
}
EVENT_FOR: Final = {
    ProviderPayoutStatus.PENDING: "payout.created",
    ProviderPayoutStatus.PAID: "payout.paid",
    ProviderPayoutStatus.FAILED: "payout.failed",
}


class StripeHarness(ProviderHarness):
    """Mode `transfer_and_payout`: pending until the bank answers, cancellable while pending."""

    name = "stripe"
    mode = "transfer_and_payout"
    provider_type = ProviderType.STRIPE
    asset = "USD"
    destination_type = DestinationType.STRIPE_ACCOUNT
    amount = 5_000
    claims = Claims(supports_cancel=True, supports_quote=True, supports_webhooks=True, async_confirmation=True)

    def __init__(self) -> None:
        self.api_key = "sk_test_kit" + secrets.token_hex(16)
        self.webhook_secret = "whsec_" + secrets.token_hex(16)
        self._admin: StripeAdmin | None = None
        self._outage: str | None = None

    @property
    def admin(self) -> StripeAdmin:
        assert self._admin is not None
        return self._admin

    @asynccontextmanager
    async def running(self, env: KitEnv) -> AsyncIterator[Kit]:
        entry = stripe_provider_doc(
            name=self.name,
            mode=self.mode,
            api_base="http://127.0.0.1:1",
            api_key_env=API_KEY_ENV,
            assets=(self.asset,),
            timeout_s=1.0,  # a transfer answered later than this is a lost answer (timeout after success)
            max_network_retries=0,  # every fault reaches payouts
        )
        entry["secrets"]["webhook_secret"] = WEBHOOK_SECRET_ENV
        env.monkeypatch.setenv(API_KEY_ENV, self.api_key)
        env.monkeypatch.setenv(WEBHOOK_SECRET_ENV, self.webhook_secret)
        balance = {"STRIPE_EMULATOR_PLATFORM_BALANCE": "usd:100000000000"}
        with stripe_emulator(env.tmp / f"{self.name}-emulator.log", api_key=self.api_key, env=balance) as emulator:
            entry["options"]["api_base"] = emulator.url
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

    def discrepancies_waived(self) -> dict[str, str]:
        return {
            "reversal": "in transfer_and_payout mode the money is at the player's bank once paid: a late return comes "
            "as a failed bank payout (the returns tests), and Stripe refuses to reverse a transfer the connected "
            "account no longer holds"
        }

    def unsupported(self, scenario: Scenario) -> str | None:
        return None

    # -- steering ---------------------------------------------------------------------------------------------
    async def destination(self, kit: Kit, behaviour: Behaviour, code: PayoutErrorCode | None = None) -> str:
        if behaviour is Behaviour.FAIL:
            assert code in FAILURE_CODE_FOR, f"stripe reports no payout failure mapped to {code}"
        await self.admin.clear_faults()  # whatever an earlier scenario left armed
        account = str((await self.admin.create_account())["id"])
        if behaviour is Behaviour.TRANSIENT_THEN_SUCCEED:
            await self.admin.fault("rate_limit", method="POST", path_prefix="/v1/transfers")
        elif behaviour is Behaviour.OUTAGE:
            await self.admin.fault("api_error", path_prefix="/v1/", count=100_000)  # Stripe answers 500 to all
        elif behaviour is Behaviour.TIMEOUT_AFTER_SUCCESS:
            await self.admin.fault("timeout_after_success", method="POST", path_prefix="/v1/transfers", delay_ms=3000)
        return account

    async def _payout_ref(self, kit: Kit, key: str) -> str:
        """The connected account's payout (`po_...`) once payouts recorded it (the payout is `submitted`)."""
        row = await kit.wait_row(key, lambda r: str(r.get("provider_ref") or "").startswith("po_"), timeout=60)
        return str(row["provider_ref"])

    async def after_request(
        self, kit: Kit, key: str, behaviour: Behaviour, code: PayoutErrorCode | None = None
    ) -> None:
        """The bank's answer to the connected account's payout, once it exists."""
        if behaviour is Behaviour.STAY_PENDING:
            return
        if behaviour is Behaviour.OUTAGE:
            self._outage = key  # answered once the outage is over (`heal`)
            return
        ref = await self._payout_ref(kit, key)
        if behaviour is Behaviour.FAIL:
            assert code is not None
            await self.admin.settle_payout(ref, "failed", FAILURE_CODE_FOR[code])
        else:
            await self.admin.settle_payout(ref, "paid")

    async def complete(self, kit: Kit, key: str) -> None:
        await self.admin.settle_payout(await self._payout_ref(kit, key), "paid")

    async def outage_felt(self, kit: Kit, key: str) -> bool:
        return any(a["error_code"] in UNKNOWN for a in await kit.attempts(key))

    async def heal(self, kit: Kit) -> None:
        await self.admin.clear_faults()
        if self._outage is not None:
            key, self._outage = self._outage, None
            await self.admin.settle_payout(await self._payout_ref(kit, key), "paid")

    async def webhook(
        self, kit: Kit, key: str, status: ProviderPayoutStatus, error_code: PayoutErrorCode | None = None
    ) -> Envelope[ProviderEventReceived]:
        ref = await self._payout_ref(kit, key)
        kind = EVENT_FOR[status]
        if not await self._events(kind, ref):  # the rail's state first: the event tells the truth
            fc = FAILURE_CODE_FOR[error_code] if error_code else None
            await self.admin.settle_payout(ref, "paid" if status is ProviderPayoutStatus.PAID else "failed", fc)
        event = (await self._events(kind, ref))[-1]
        body = json.dumps(event).encode()
        header = signature_header(self.webhook_secret, int(time.time()), body)
        parsed = await kit.provider.parse_webhook({STRIPE_SIGNATURE_HEADER: header}, body)
        ingress = normalize(
            event, provider=self.provider_type, digest=hashlib.sha256(body).hexdigest(), received_at=datetime.now(UTC)
        )
        assert isinstance(ingress.event, ProviderEventReceived | None)
        return as_ingress_publishes(ingress.event, parsed)

    async def _events(self, kind: str, payout_ref: str) -> list[dict[str, Any]]:
        return [e for e in await self.admin.events(kind) if e["data"]["object"]["id"] == payout_ref]

    # -- observing --------------------------------------------------------------------------------------------
    async def payments(self, kit: Kit, key: str) -> int:
        """Money that reached the player for good: the connected account's payouts the bank paid. A transfer is
        only in flight until then (a failure or a cancel reverses it), but a second live transfer is a double
        payment whatever its payout says."""

        # From the emulator's records (its admin API answers during an outage of `/v1`).
        def ours(kind: str) -> list[dict[str, Any]]:
            return [e["data"]["object"] for e in events if e["type"] == kind and _key(e) == key]

        events = await self.admin.events()
        reversed_ = {t["id"] for t in ours("transfer.reversed") if t.get("reversed")}
        live = {t["id"] for t in ours("transfer.created")} - reversed_
        paid = {p["id"] for p in ours("payout.paid")}
        return max(len(paid), len(live) if len(live) > 1 else 0)

    async def rail_attempts(self, kit: Kit, key: str) -> int:
        calls = await self.admin.requests(method="POST", path="/v1/transfers")
        return sum(1 for c in calls if c.get("idempotency_key") == key)

    def terminal_codes(self) -> tuple[PayoutErrorCode, ...]:
        return tuple(FAILURE_CODE_FOR)

    def secrets(self) -> tuple[str, ...]:
        return (self.api_key, self.webhook_secret)


class StripeTransferHarness(StripeHarness):
    """Mode `transfer`: the transfer to the player's connected account is the payment, final when created."""

    name = "stripe_transfer"
    mode = "transfer"
    claims = Claims(supports_cancel=False, supports_quote=True, supports_webhooks=True, async_confirmation=False)

    def discrepancies_waived(self) -> dict[str, str]:
        return {}

    def unsupported(self, scenario: Scenario) -> str | None:
        final = "a transfer is paid when created: "
        return {
            Scenario.PENDING: final + "nothing stays pending",
            Scenario.DUPLICATE_WEBHOOK: final + "no pending payout for a webhook to move (a later transfer.reversed "
            "is a return, covered by the rail's own tests)",
            Scenario.STALE_WEBHOOK: final + "its events cannot arrive before what they report",
            Scenario.CANCEL: final + "it can be reversed, never cancelled",
        }.get(scenario)

    async def destination(self, kit: Kit, behaviour: Behaviour, code: PayoutErrorCode | None = None) -> str:
        if behaviour is not Behaviour.FAIL:
            return await super().destination(kit, behaviour, code)
        await self.admin.clear_faults()
        if code is PayoutErrorCode.DESTINATION_NOT_FOUND:
            return "acct_" + secrets.token_hex(8)  # no such connected account
        assert code is PayoutErrorCode.DESTINATION_BLOCKED, f"stripe_transfer cannot be made to fail with {code}"
        account = str((await self.admin.create_account())["id"])
        await self.admin.restrict_account(account, transfers="inactive")
        return account

    async def after_request(
        self, kit: Kit, key: str, behaviour: Behaviour, code: PayoutErrorCode | None = None
    ) -> None:
        return  # no bank step: the create answers

    async def heal(self, kit: Kit) -> None:
        await self.admin.clear_faults()

    async def payments(self, kit: Kit, key: str) -> int:
        """Transfers of this payout to the player's account that Stripe did not take back."""
        events = await self.admin.events()
        created = {e["data"]["object"]["id"] for e in events if e["type"] == "transfer.created" and _key(e) == key}
        gone = {
            e["data"]["object"]["id"]
            for e in events
            if e["type"] == "transfer.reversed" and _key(e) == key and e["data"]["object"].get("reversed")
        }
        return len(created - gone)

    def terminal_codes(self) -> tuple[PayoutErrorCode, ...]:
        return (PayoutErrorCode.DESTINATION_BLOCKED, PayoutErrorCode.DESTINATION_NOT_FOUND)


def _key(event: dict[str, Any]) -> str | None:
    return (event["data"]["object"].get("metadata") or {}).get("idempotency_key")


__all__ = ["StripeHarness", "StripeTransferHarness"]
