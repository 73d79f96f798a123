"""The manual rail in the kit: a person pays outside the system and reports it through the admin API
(`mark-paid` with a reference, `mark-failed` with a code). Its "books" are those reports."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import yaml

from prizeflow_contracts.errors import PayoutErrorCode
from prizeflow_contracts.providers import DestinationType, ProviderType
from prizeflow_testkit.conformance.base import (
    DISCREPANCIES,
    Behaviour,
    Claims,
    Kit,
    KitEnv,
    ProviderHarness,
    Scenario,
    terminal,
)
from prizeflow_testkit.db import fetch
from prizeflow_testkit.payouts import running, settings_for


class ManualHarness(ProviderHarness):
    name = "manual"
    provider_type = ProviderType.MANUAL
    asset = "USD"
    destination_type = DestinationType.BANK_ACCOUNT
    claims = Claims(supports_cancel=True, supports_quote=False, supports_webhooks=False, async_confirmation=True)

    @asynccontextmanager
    async def running(self, env: KitEnv) -> AsyncIterator[Kit]:
        doc = {
            "approvals": {self.asset: {"auto_below": "1000000"}},
            "providers": [
                {"name": self.name, "type": "manual", "assets": [self.asset], "destination_types": ["bank_account"]}
            ],
        }
        path = env.tmp / "providers-manual.yaml"
        path.write_text(yaml.safe_dump(doc))
        settings = settings_for(env.db, env.kafka, path, topic_suffix=env.topic_suffix, payouts_max_attempts=20)
        async with running(settings) as (parts, client):
            yield Kit(self, settings, parts, client, env.db, env.kafka)

    def discrepancies_waived(self) -> dict[str, str]:
        reason = "the manual rail's statement is the operators' own recorded evidence: no provider keeps other books"
        return dict.fromkeys(DISCREPANCIES, reason)

    def unsupported(self, scenario: Scenario) -> str | None:
        return {
            Scenario.DUPLICATE_WEBHOOK: "the manual rail has no webhooks: operators report through the admin API",
            Scenario.STALE_WEBHOOK: "the manual rail has no webhooks: operators report through the admin API",
            Scenario.OUTAGE: "nothing is called out: a person pays outside the system, there is no rail to be down",
            Scenario.TIMEOUT_AFTER_SUCCESS: "nothing is called out, so no answer can be lost: the operator's report "
            "is the answer",
        }.get(scenario)

    async def destination(self, kit: Kit, behaviour: Behaviour, code: PayoutErrorCode | None = None) -> str:
        return f"IBAN-KIT-{uuid.uuid4().hex[:12]}"

    async def after_request(
        self, kit: Kit, key: str, behaviour: Behaviour, code: PayoutErrorCode | None = None
    ) -> None:
        """The operator's report once the payout is on their list (`submitted`)."""
        if behaviour is Behaviour.STAY_PENDING:
            return
        await kit.wait_state(key, "submitted")
        if behaviour is Behaviour.SUCCEED:
            resp = await kit.mark_paid(key)
        elif behaviour is Behaviour.FAIL:
            assert code is not None
            resp = await kit.mark_failed(key, code)
        elif behaviour is Behaviour.TRANSIENT_THEN_SUCCEED:
            # "The bank was down, try again": back on the list after the backoff, then paid.
            resp = await kit.mark_failed(key, PayoutErrorCode.PROVIDER_UNAVAILABLE)
            assert resp.status_code == 200, resp.text
            await kit.wait_row(key, lambda r: r.get("state") == "submitted" and r["attempts"] >= 2)
            resp = await kit.mark_paid(key)
        else:
            raise AssertionError(f"manual: no {behaviour.value}")
        assert resp.status_code == 200, resp.text

    async def complete(self, kit: Kit, key: str) -> None:
        resp = await kit.mark_paid(key)
        assert resp.status_code == 200, resp.text

    async def payments(self, kit: Kit, key: str) -> int:
        """Payments an operator reported for this payout (mark-paid accepted: audited as `payout.mark_paid`)."""
        rows = await fetch(
            kit.db,
            "SELECT count(*) AS n FROM payout_history h JOIN payouts p ON p.id = h.payout_id "
            "WHERE p.idempotency_key = $1 AND h.to_state = 'paid'",
            key,
        )
        return int(rows[0]["n"])

    async def rail_attempts(self, kit: Kit, key: str) -> int:
        """Times the payout was put on the operators' list."""
        return int((await kit.row(key))["attempts"])

    def terminal_codes(self) -> tuple[PayoutErrorCode, ...]:
        return terminal(list(PayoutErrorCode))

    def retryable_codes(self) -> tuple[PayoutErrorCode, ...]:
        # An operator reports what they saw; an unknown outcome is theirs to find out, never a retry.
        return (PayoutErrorCode.PROVIDER_UNAVAILABLE, PayoutErrorCode.RATE_LIMITED, PayoutErrorCode.INTERNAL_ERROR)


__all__ = ["ManualHarness"]
