"""The Telegram rail (`telegram_if_supported`: a prize in Stars sent as a gift of that price from the bot's
balance) against the Telegram Bot API emulator (tools/telegram-emulator) as a process.

Each payout goes to a fresh Telegram user id; the rail is steered through the emulator's admin API, per user:
a user who blocked the bot (destination_blocked) or does not exist (destination_not_found), 429 on `sendGift`,
an outage (502 to that user's gifts), a gift carried out whose answer is lost, a gift whose transaction lags
behind the answer (pending until released). What the rail paid: the bot's outgoing gift transactions to that user.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Final

import yaml

from prizeflow_contracts.errors import PayoutErrorCode
from prizeflow_contracts.providers import DestinationType, ProviderType
from prizeflow_testkit.conformance.base import Behaviour, Claims, Kit, KitEnv, ProviderHarness, Scenario
from prizeflow_testkit.db import fetch
from prizeflow_testkit.payouts import running, settings_for
from prizeflow_testkit.telegram import GIFTS, TelegramAdmin, telegram_emulator

TOKEN_ENV: Final = "PAYOUTS_KIT_TELEGRAM_BOT_TOKEN"  # noqa: S105 - the NAME of a variable
UNKNOWN: Final = ("timeout_unknown_outcome", "provider_unavailable")
C = PayoutErrorCode


def telegram_provider_doc(*, name: str, api_base: str, token_env: str, settle_after_s: float) -> dict[str, object]:
    """A providers-file entry of the rail paying the emulator's default gifts."""
    return {
        "name": name,
        "type": "telegram_if_supported",
        "assets": ["XTR"],
        "destination_types": ["telegram_user"],
        "secrets": {"bot_token": token_env},
        "options": {
            "api_base": api_base,
            "gifts": {str(g["id"]): int(g["star_count"]) for g in GIFTS},
            "text": "Prizeflow prize",
            "timeout_s": 1.0,  # a gift answered later than this is a lost answer (timeout after success)
            "settle_after_s": settle_after_s,
        },
    }


class TelegramHarness(ProviderHarness):
    name = "telegram"
    provider_type = ProviderType.TELEGRAM_IF_SUPPORTED
    asset = "XTR"
    destination_type = DestinationType.TELEGRAM_USER
    amount = int(GIFTS[0]["star_count"])
    claims = Claims(supports_cancel=False, supports_quote=False, supports_webhooks=False, async_confirmation=True)
    fees_name_payouts = False  # a Telegram API charge is the bot's, listed on its own

    def __init__(self) -> None:
        self.token = f"{secrets.randbelow(10**9) + 10**9}:{secrets.token_urlsafe(30)[:35]}"
        self._admin: TelegramAdmin | None = None
        self._outage: int | None = None
        self._logs: list[Path] = []

    @property
    def admin(self) -> TelegramAdmin:
        assert self._admin is not None
        return self._admin

    @asynccontextmanager
    async def running(self, env: KitEnv) -> AsyncIterator[Kit]:
        env.monkeypatch.setenv(TOKEN_ENV, self.token)
        log = env.tmp / f"{self.name}-emulator.log"
        self._logs = [log]
        emulator_env = {"TELEGRAM_EMULATOR_HANG_MS": "3000", "TELEGRAM_EMULATOR_BALANCE": "100000000"}
        with telegram_emulator(log, token=self.token, env=emulator_env) as emulator:
            # An unknown outcome not in the transactions 2 s after the call is taken as not sent (the emulator
            # records a gift before it answers).
            entry = telegram_provider_doc(
                name=self.name, api_base=emulator.url, token_env=TOKEN_ENV, settle_after_s=2.0
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

    def unsupported(self, scenario: Scenario) -> str | None:
        return {
            Scenario.CANCEL: "a gift cannot be cancelled or taken back once sent (the Bot API has no such method)",
            Scenario.DUPLICATE_WEBHOOK: "Telegram sends no webhook about a bot's own gifts: outcomes come from "
            "getStarTransactions",
            Scenario.STALE_WEBHOOK: "Telegram sends no webhook about a bot's own gifts",
        }.get(scenario)

    # -- steering ---------------------------------------------------------------------------------------------
    async def destination(self, kit: Kit, behaviour: Behaviour, code: PayoutErrorCode | None = None) -> str:
        user = secrets.randbelow(9 * 10**9) + 10**9
        if behaviour is Behaviour.FAIL:
            state = {C.DESTINATION_BLOCKED: "blocked", C.DESTINATION_NOT_FOUND: "deleted"}.get(
                code or C.INVALID_REQUEST
            )
            if state is not None:
                await self.admin.user(user, state)
            elif code is C.RATE_LIMITED:
                await self.admin.fault("sendGift", "rate_limit", user_id=user, count=100_000)
            else:
                raise AssertionError(f"telegram cannot be made to fail with {code}")
        elif behaviour is Behaviour.TRANSIENT_THEN_SUCCEED:
            await self.admin.fault("sendGift", "rate_limit", user_id=user)
        elif behaviour is Behaviour.OUTAGE:
            await self.admin.fault("sendGift", "outage", user_id=user, count=None)
            self._outage = user
        elif behaviour is Behaviour.TIMEOUT_AFTER_SUCCESS:
            await self.admin.fault("sendGift", "timeout_after_success", user_id=user)
        elif behaviour is Behaviour.STAY_PENDING:
            await self.admin.fault("sendGift", "ledger_delay", user_id=user)
        return str(user)

    async def complete(self, kit: Kit, key: str) -> None:
        await self.admin.release()

    async def outage_felt(self, kit: Kit, key: str) -> bool:
        return any(a["error_code"] in UNKNOWN for a in await kit.attempts(key))

    async def heal(self, kit: Kit) -> None:
        await self.admin.clear_faults()

    # -- observing --------------------------------------------------------------------------------------------
    async def discrepancy_reference(self, kit: Kit, key: str) -> str:
        rows = await fetch(kit.db, "SELECT transaction_id FROM telegram_gift_sends WHERE idempotency_key = $1", key)
        return str(rows[0]["transaction_id"])  # the Star transaction of the gift bought for the player

    async def payments(self, kit: Kit, key: str) -> int:
        return len(await self.admin.gifts_to(int(kit.destinations[key])))

    async def rail_attempts(self, kit: Kit, key: str) -> int:
        user = int(kit.destinations[key])
        return sum(1 for c in await self.admin.calls("sendGift") if c["user_id"] == user)

    def terminal_codes(self) -> tuple[PayoutErrorCode, ...]:
        return (C.DESTINATION_BLOCKED, C.DESTINATION_NOT_FOUND)

    def retryable_codes(self) -> tuple[PayoutErrorCode, ...]:
        return (C.RATE_LIMITED,)

    def secrets(self) -> tuple[str, ...]:
        return (self.token,)

    def log_files(self, kit: Kit) -> tuple[Path, ...]:
        return tuple(self._logs)


__all__ = ["TelegramHarness", "telegram_provider_doc"]
