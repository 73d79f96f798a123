"""The sandbox rail in the kit: scenarios chosen by the destination's `<scenario>:` prefix, books in schema
`sandbox` (`transfers`: one row per money movement; `calls`: creates and syncs per key)."""

# ruff: noqa: S608 - SQL names only the kit's own schema constant; values are bound
from __future__ import annotations

import hashlib
import json
import secrets
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Final

import yaml

from prizeflow_contracts.envelope import Envelope
from prizeflow_contracts.errors import PayoutErrorCode
from prizeflow_contracts.events.webhooks import ProviderEventReceived
from prizeflow_contracts.providers import DestinationType, ProviderPayoutStatus, ProviderType
from prizeflow_contracts.rails.prizeflow_events import normalize
from prizeflow_payouts.adapters.providers.sandbox import SIGNATURE_HEADER, sign_webhook
from prizeflow_testkit.conformance.base import (
    DISCREPANCIES,
    Behaviour,
    Claims,
    Kit,
    KitEnv,
    ProviderHarness,
    Scenario,
    as_ingress_publishes,
    retryable,
    terminal,
)
from prizeflow_testkit.db import fetch
from prizeflow_testkit.payouts import running, settings_for

SECRET_ENV: Final = "PAYOUTS_KIT_SANDBOX_WEBHOOK_SECRET"  # noqa: S105 - the NAME of a variable
OUTAGE_SCENARIO: Final = "kit_outage"
SCHEMA: Final = "sandbox"
# Codes a sandbox `fail_<code>` cannot stand for: payouts reads them as something else than a failure of the
# payout (`payout_not_found` from a create, an unknown outcome: the sync-first path, covered by its scenario).
_NOT_A_FAILURE: Final = {PayoutErrorCode.PAYOUT_NOT_FOUND, PayoutErrorCode.TIMEOUT_UNKNOWN_OUTCOME}


class SandboxHarness(ProviderHarness):
    name = "sandbox"
    provider_type = ProviderType.SANDBOX
    asset = "USDC"
    destination_type = DestinationType.SANDBOX
    claims = Claims(supports_cancel=True, supports_quote=True, supports_webhooks=True, async_confirmation=True)

    def __init__(self) -> None:
        self.webhook_secret = "sbx-whsec-" + secrets.token_hex(16)

    @asynccontextmanager
    async def running(self, env: KitEnv) -> AsyncIterator[Kit]:
        doc = {
            "approvals": {self.asset: {"auto_below": "1000000"}},
            "providers": [
                {
                    "name": self.name,
                    "type": "sandbox",
                    "assets": [self.asset],
                    "destination_types": ["sandbox"],
                    "secrets": {"webhook_secret": SECRET_ENV},
                    "options": {
                        "default_scenario": "success",
                        "schema": SCHEMA,
                        "scenarios": {OUTAGE_SCENARIO: {"outcome": "outage", "duration_ms": 1200}},
                    },
                }
            ],
        }
        path = env.tmp / "providers-sandbox.yaml"
        path.write_text(yaml.safe_dump(doc))
        env.monkeypatch.setenv(SECRET_ENV, self.webhook_secret)
        settings = settings_for(env.db, env.kafka, path, topic_suffix=env.topic_suffix, payouts_max_attempts=20)
        async with running(settings) as (parts, client):
            yield Kit(self, settings, parts, client, env.db, env.kafka)

    def discrepancies_waived(self) -> dict[str, str]:
        reason = "the sandbox rail keeps its books in the service's own database: it has no emulator to make differ"
        return dict.fromkeys(DISCREPANCIES, reason)

    def unsupported(self, scenario: Scenario) -> str | None:
        return None

    async def destination(self, kit: Kit, behaviour: Behaviour, code: PayoutErrorCode | None = None) -> str:
        tail = uuid.uuid4().hex[:10]
        if behaviour is Behaviour.OUTAGE:
            # The outage window opens at the scenario's first call after this: a fresh one per run.
            await fetch(kit.db, f"DELETE FROM {SCHEMA}.windows WHERE scenario = $1", OUTAGE_SCENARIO)
            return f"{OUTAGE_SCENARIO}:{tail}"
        if behaviour is Behaviour.FAIL:
            assert code is not None
            return f"fail_{code.value}:{tail}"
        scenario = {
            Behaviour.SUCCEED: "success",
            Behaviour.STAY_PENDING: "pending_forever",
            Behaviour.TRANSIENT_THEN_SUCCEED: "flaky",
            Behaviour.TIMEOUT_AFTER_SUCCESS: "timeout_after_success",
        }[behaviour]
        return f"{scenario}:{tail}"

    async def complete(self, kit: Kit, key: str) -> None:
        """The rail pays it: the next status sync answers paid (and moves the money, once)."""
        await fetch(
            kit.db,
            f"UPDATE {SCHEMA}.payouts SET polls_left = 0 WHERE idempotency_key = $1 AND status = 'pending'",
            key,
        )

    async def outage_felt(self, kit: Kit, key: str) -> bool:
        return any(a["error_code"] == "provider_unavailable" for a in await kit.attempts(key))

    async def webhook(
        self,
        kit: Kit,
        key: str,
        status: ProviderPayoutStatus,
        error_code: PayoutErrorCode | None = None,
    ) -> Envelope[ProviderEventReceived]:
        event_id = "evt_" + hashlib.sha256(f"{key}:{status.value}".encode()).hexdigest()[:24]
        if status in (ProviderPayoutStatus.PAID, ProviderPayoutStatus.FAILED):
            rows = await fetch(
                kit.db,
                f"""UPDATE {SCHEMA}.payouts SET status = $2, error_code = $3, updated_at = clock_timestamp()
                    WHERE idempotency_key = $1 AND status = 'pending' RETURNING asset, amount""",
                key,
                status.value,
                error_code.value if error_code else None,
            )
            if rows and status is ProviderPayoutStatus.PAID:
                await fetch(
                    kit.db,
                    f"INSERT INTO {SCHEMA}.transfers (idempotency_key, asset, amount) VALUES ($1, $2, $3)",
                    key,
                    rows[0]["asset"],
                    rows[0]["amount"],
                )
        # The Prizeflow webhook format, signed with `Prizeflow-Signature`: what the sandbox sends and the ingress reads.
        doc = {
            "event_id": event_id,
            "kind": f"payout.{status.value}",
            "subject": "payout",
            "idempotency_key": key,
            "status": status.value,
            "error_code": error_code.value if error_code else None,
        }
        body = json.dumps(doc).encode()
        parsed = await kit.provider.parse_webhook({SIGNATURE_HEADER: sign_webhook(self.webhook_secret, body)}, body)
        ingress = normalize(
            doc, provider=self.provider_type, digest=hashlib.sha256(body).hexdigest(), received_at=datetime.now(UTC)
        )
        assert isinstance(ingress.event, ProviderEventReceived | None)
        return as_ingress_publishes(ingress.event, parsed)

    async def payments(self, kit: Kit, key: str) -> int:
        rows = await fetch(kit.db, f"SELECT count(*) AS n FROM {SCHEMA}.transfers WHERE idempotency_key = $1", key)
        return int(rows[0]["n"])

    async def rail_attempts(self, kit: Kit, key: str) -> int:
        rows = await fetch(kit.db, f"SELECT create_calls FROM {SCHEMA}.calls WHERE idempotency_key = $1", key)
        return int(rows[0]["create_calls"]) if rows else 0

    def terminal_codes(self) -> tuple[PayoutErrorCode, ...]:
        return terminal(list(PayoutErrorCode))

    def retryable_codes(self) -> tuple[PayoutErrorCode, ...]:
        return retryable([c for c in PayoutErrorCode if c not in _NOT_A_FAILURE])

    def secrets(self) -> tuple[str, ...]:
        return (self.webhook_secret,)


__all__ = ["SandboxHarness"]
