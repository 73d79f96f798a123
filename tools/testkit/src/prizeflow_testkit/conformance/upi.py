"""The upi rail (RazorpayX-shaped) in the kit against the UPI emulator (tools/upi-emulator) as a process.

The rail is steered through the emulator's admin API: the bank's rules by VPA (`*.invalid@*` fails the fund-account
validation, `*.failed@*` fails the payout), the partner bank down for UPI (new payouts queue: pending, cancellable;
up again, they are processed) and faults on `/v1` (429, an outage's HTML 502, a payout made whose answer is lost).
Its webhooks are the emulator's own recorded events, signed with the webhook secret and read both by the
provider's `parse_webhook` and by the ingress's normalization, which must agree. What the rail paid: processed
RazorpayX payouts under the payout's reference.
"""

from __future__ import annotations

import hashlib
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
from prizeflow_contracts.rails.razorpayx_events import normalize
from prizeflow_payouts.application.payout_requests import payout_id_for
from prizeflow_testkit.conformance.base import (
    Behaviour,
    Claims,
    Kit,
    KitEnv,
    ProviderHarness,
    as_ingress_publishes,
)
from prizeflow_testkit.payouts import running, settings_for
from prizeflow_testkit.upi import UpiAdmin, upi_emulator
from prizeflow_testkit.upi_payouts import signed_delivery, upi_provider_doc
from prizeflow_testkit.waits import eventually

KEY_ID_ENV: Final = "PAYOUTS_KIT_UPI_KEY_ID"
KEY_SECRET_ENV: Final = "PAYOUTS_KIT_UPI_KEY_SECRET"  # noqa: S105 - a variable name
WEBHOOK_SECRET_ENV: Final = "PAYOUTS_KIT_UPI_WEBHOOK_SECRET"  # noqa: S105 - a variable name
UNKNOWN: Final = ("timeout_unknown_outcome", "provider_unavailable", "rate_limited")
# The VPA steering (the emulator's default rules) that makes the rail fail a payout with each terminal code.
FAILURE_FOR: Final = {
    PayoutErrorCode.INVALID_DESTINATION: "invalid",  # the fund-account validation finds no account
    PayoutErrorCode.TX_FAILED: "failed",  # processing, then failed by the partner bank
}
EVENT_FOR: Final = {ProviderPayoutStatus.PAID: "payout.processed", ProviderPayoutStatus.PENDING: "payout.queued"}
EMULATOR_ENV: Final = {
    "UPI_EMULATOR_VALIDATION_MS": "200",
    "UPI_EMULATOR_SETTLE_MS": "UPI:300,IMPS:300,NEFT:300,RTGS:300",
}


class UpiHarness(ProviderHarness):
    """UPI to a VPA; held pending (queued) while the partner bank is down for UPI, cancellable meanwhile."""

    name = "upi"
    provider_type = ProviderType.UPI
    asset = "INR"
    destination_type = DestinationType.UPI
    amount = 50_000  # ₹500
    claims = Claims(supports_cancel=True, supports_quote=True, supports_webhooks=True, async_confirmation=True)

    def __init__(self) -> None:
        self.webhook_secret = "whsec_upi_kit_" + secrets.token_hex(16)
        self.key_secret = ""
        self._admin: UpiAdmin | None = None
        self._log: Path | None = None

    @property
    def admin(self) -> UpiAdmin:
        assert self._admin is not None
        return self._admin

    @asynccontextmanager
    async def running(self, env: KitEnv) -> AsyncIterator[Kit]:
        self._log = env.tmp / f"{self.name}-emulator.log"
        with upi_emulator(self._log, env=EMULATOR_ENV) as emulator:
            self.key_secret = emulator.key_secret
            env.monkeypatch.setenv(KEY_ID_ENV, emulator.key_id)
            env.monkeypatch.setenv(KEY_SECRET_ENV, emulator.key_secret)
            env.monkeypatch.setenv(WEBHOOK_SECRET_ENV, self.webhook_secret)
            entry = upi_provider_doc(
                name=self.name,
                api_base=emulator.url,
                key_id_env=KEY_ID_ENV,
                key_secret_env=KEY_SECRET_ENV,
                webhook_secret_env=WEBHOOK_SECRET_ENV,
                timeout_s=1.0,  # a payout answered later than this is a lost answer (timeout after success)
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
        await self.admin.downtime(down=False, mode="UPI")
        user = f"kit-{secrets.token_hex(6)}"
        if behaviour is Behaviour.FAIL:
            assert code in FAILURE_FOR, f"the upi rail reports no failure mapped to {code}"
            return f"{user}.{FAILURE_FOR[code]}@okaxis"
        if behaviour is Behaviour.STAY_PENDING:
            await self.admin.downtime(down=True, mode="UPI")
        elif behaviour is Behaviour.TRANSIENT_THEN_SUCCEED:
            await self.admin.fault("rate_limit", method="POST", path_prefix="/v1/payouts")
        elif behaviour is Behaviour.OUTAGE:
            await self.admin.fault("outage", path_prefix="/v1/", count=100_000)
        elif behaviour is Behaviour.TIMEOUT_AFTER_SUCCESS:
            await self.admin.fault("timeout_after_success", method="POST", path_prefix="/v1/payouts", delay_ms=3000)
        return f"{user}@okaxis"

    async def _payout(self, kit: Kit, key: str) -> dict[str, Any]:
        """RazorpayX's payout of ours, once the rail made it (a queued one included)."""

        async def made() -> list[dict[str, Any]]:
            return await self.admin.payouts(reference_id=payout_id_for(key))

        return (await eventually(made, bool, timeout=60))[0]

    async def complete(self, kit: Kit, key: str) -> None:
        await self._payout(kit, key)
        await self.admin.downtime(down=False, mode="UPI")

    async def outage_felt(self, kit: Kit, key: str) -> bool:
        return any(a["error_code"] in UNKNOWN for a in await kit.attempts(key))

    async def heal(self, kit: Kit) -> None:
        await self.admin.clear_faults()

    async def webhook(
        self, kit: Kit, key: str, status: ProviderPayoutStatus, error_code: PayoutErrorCode | None = None
    ) -> Envelope[ProviderEventReceived]:
        payout = await self._payout(kit, key)
        kind = EVENT_FOR[status]
        if status is ProviderPayoutStatus.PAID and not await self.admin.events(kind, payout["id"]):
            await self.admin.downtime(down=False, mode="UPI")  # the rail's state first: the event tells the truth

        async def recorded() -> list[dict[str, Any]]:
            return await self.admin.events(kind, payout["id"])

        event = (await eventually(recorded, bool, timeout=30))[-1]
        headers, body = signed_delivery(event, self.webhook_secret)
        parsed = await kit.provider.parse_webhook(headers, body)
        ingress = normalize(
            event["body"],
            str(event["id"]),
            provider=self.provider_type,
            digest=hashlib.sha256(body).hexdigest(),
            received_at=datetime.now(UTC),
        )
        assert isinstance(ingress.event, ProviderEventReceived)
        return as_ingress_publishes(ingress.event, parsed)

    # -- observing --------------------------------------------------------------------------------------------
    async def discrepancy_reference(self, kit: Kit, key: str) -> str:
        return str((await kit.row(key))["id"])  # the payout's reference_id is our payout id

    async def stray_destination(self, kit: Kit) -> str:
        return f"stray-{secrets.token_hex(6)}@okaxis"

    async def payments(self, kit: Kit, key: str) -> int:
        """Processed RazorpayX payouts under this payout's reference (the admin API answers during an outage)."""
        found = await self.admin.payouts(reference_id=payout_id_for(key), status="processed")
        return sum(1 for p in found if not p.get("hidden"))

    async def rail_attempts(self, kit: Kit, key: str) -> int:
        calls = await self.admin.requests(method="POST", path="/v1/payouts")
        return sum(1 for c in calls if c.get("reference_id") == payout_id_for(key))

    def terminal_codes(self) -> tuple[PayoutErrorCode, ...]:
        return tuple(FAILURE_FOR)

    def secrets(self) -> tuple[str, ...]:
        return (self.key_secret, self.webhook_secret)

    def log_files(self, kit: Kit) -> tuple[Path, ...]:
        return (self._log,) if self._log is not None else ()


__all__ = ["UpiHarness"]
