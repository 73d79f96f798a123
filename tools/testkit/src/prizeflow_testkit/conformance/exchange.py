"""The crypto_exchange rail in the kit: ccxt's binance against the exchange emulator (tools/exchange-emulator,
served on its own loop; ccxt reaches it over HTTP with its real request signing), books on the kit's database.

Steering: the exchange settles a withdrawal (`completed`, or `failure` for `tx_failed`), refuses an address off
its whitelist (`destination_blocked`), answers 429 once (a retry), holds an answer past the client's timeout
after making the withdrawal (found by its client id, never made twice), and an outage is the exchange suspending
withdrawals on the network (refused: nothing sent, so retried until it resumes). What the rail paid: withdrawals
carrying the payout's client id that the exchange completed (two live ones would be a double payment).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Final

import yaml

from prizeflow_contracts.errors import PayoutErrorCode
from prizeflow_contracts.providers import DestinationType, ProviderType
from prizeflow_exchange_emulator.server import WITHDRAW
from prizeflow_payouts.adapters.exchange import client_id_for
from prizeflow_testkit.conformance.base import Behaviour, Claims, Kit, KitEnv, ProviderHarness, Scenario
from prizeflow_testkit.exchange import (
    API_KEY_ENV,
    API_SECRET_ENV,
    ETH_ADDRESS,
    ExchangeStack,
    exchange_emulator,
    exchange_provider_doc,
)
from prizeflow_testkit.payouts import running, settings_for
from prizeflow_testkit.waits import eventually

_LIVE: Final = frozenset({0, 2, 4, 6})  # email sent, awaiting approval, processing, completed
_COMPLETED: Final = 6


class ExchangeHarness(ProviderHarness):
    name = "exchange"
    provider_type = ProviderType.CRYPTO_EXCHANGE
    asset = "USDC"
    destination_type = DestinationType.CRYPTO_ADDRESS
    amount = 100_000_000  # 10 USDC (scale 7); the ERC20 network withdraws 6 decimal places
    claims = Claims(supports_cancel=False, supports_quote=True, supports_webhooks=False, async_confirmation=True)

    def __init__(self) -> None:
        self._stack: ExchangeStack | None = None
        self._outage: str | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def stack(self) -> ExchangeStack:
        assert self._stack is not None
        return self._stack

    @asynccontextmanager
    async def running(self, env: KitEnv) -> AsyncIterator[Kit]:
        async with exchange_emulator() as stack:
            self._stack = stack
            # timeout_s 1: an answer held back 3 s is a lost answer (timeout after success).
            entry = exchange_provider_doc(name=self.name, api_base=stack.url, assets=(self.asset,), timeout_s=1)
            env.monkeypatch.setenv(API_KEY_ENV, stack.api_key)
            env.monkeypatch.setenv(API_SECRET_ENV, stack.api_secret)
            doc = {"approvals": {self.asset: {"auto_below": "1000000"}}, "providers": [entry]}
            path = env.tmp / f"providers-{self.name}.yaml"
            path.write_text(yaml.safe_dump(doc))
            settings = settings_for(env.db, env.kafka, path, topic_suffix=env.topic_suffix, payouts_max_attempts=20)
            try:
                async with running(settings) as (parts, client):
                    yield Kit(self, settings, parts, client, env.db, env.kafka, extra={"emulator_url": stack.url})
            finally:
                for task in self._tasks:
                    task.cancel()
                self._stack = None

    def unsupported(self, scenario: Scenario) -> str | None:
        return {
            Scenario.CANCEL: "ccxt has no unified cancel of a withdrawal (binance offers none through its API)",
            Scenario.DUPLICATE_WEBHOOK: "exchanges push no withdrawal webhooks: payouts polls fetch_withdrawals",
            Scenario.STALE_WEBHOOK: "exchanges push no withdrawal webhooks: payouts polls fetch_withdrawals",
        }.get(scenario)

    # -- steering ---------------------------------------------------------------------------------------------
    async def destination(self, kit: Kit, behaviour: Behaviour, code: PayoutErrorCode | None = None) -> str:
        self.stack.emulator.faults.clear()
        if behaviour is Behaviour.FAIL and code is PayoutErrorCode.DESTINATION_BLOCKED:
            return "0x" + secrets.token_hex(20)  # a valid address the account never whitelisted
        if behaviour is Behaviour.FAIL:
            assert code is PayoutErrorCode.TX_FAILED, f"the exchange rail cannot be made to fail with {code}"
        if behaviour is Behaviour.TRANSIENT_THEN_SUCCEED:
            self.stack.emulator.faults.add("rate_limit", method="POST", path_prefix=WITHDRAW)
        elif behaviour is Behaviour.OUTAGE:
            self._suspend(suspended=True)
        elif behaviour is Behaviour.TIMEOUT_AFTER_SUCCESS:
            self.stack.emulator.faults.add("timeout_after_success", method="POST", path_prefix=WITHDRAW, delay_ms=3000)
        return ETH_ADDRESS

    async def stray_destination(self, kit: Kit) -> str:
        return "0x" + secrets.token_hex(20)  # an address no payout of ours names

    def _suspend(self, *, suspended: bool) -> None:
        """The exchange suspends (or resumes) withdrawals on the network: refused, nothing sent, retried."""
        self.stack.emulator.account.network("USDC", "ETH").withdraw_enable = not suspended

    async def _withdrawal(self, key: str) -> dict[str, Any]:
        cid = client_id_for(key)

        async def probe() -> list[dict[str, Any]]:
            return self.stack.withdrawals(client_id=cid)

        found = await eventually(probe, bool, timeout=60, interval=0.05)
        return found[0]

    async def after_request(
        self, kit: Kit, key: str, behaviour: Behaviour, code: PayoutErrorCode | None = None
    ) -> None:
        if behaviour is Behaviour.OUTAGE:
            self._outage = key  # completed once it reaches the exchange after the outage (`heal`)
            return
        if behaviour is Behaviour.STAY_PENDING:
            return
        if behaviour is Behaviour.FAIL and code is PayoutErrorCode.DESTINATION_BLOCKED:
            return  # refused at once: no withdrawal
        outcome = "failure" if behaviour is Behaviour.FAIL else "completed"
        self.stack.settle(str((await self._withdrawal(key))["id"]), outcome)

    async def complete(self, kit: Kit, key: str) -> None:
        self.stack.settle(str((await self._withdrawal(key))["id"]), "completed")

    async def outage_felt(self, kit: Kit, key: str) -> bool:
        return any(a["error_code"] == "provider_unavailable" for a in await kit.attempts(key))

    async def heal(self, kit: Kit) -> None:
        self.stack.emulator.faults.clear()
        self._suspend(suspended=False)
        if self._outage is not None:
            key, self._outage = self._outage, None
            task = asyncio.create_task(self.complete(kit, key), name="exchange-kit-settle")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    # -- observing --------------------------------------------------------------------------------------------
    async def discrepancy_reference(self, kit: Kit, key: str) -> str:
        return client_id_for(key)  # the withdrawal's withdrawOrderId

    async def payments(self, kit: Kit, key: str) -> int:
        ours = self.stack.withdrawals(client_id=client_id_for(key))
        completed = sum(1 for w in ours if w["status"] == _COMPLETED)
        live = sum(1 for w in ours if w["status"] in _LIVE)
        return max(completed, live if live > 1 else 0)

    def terminal_codes(self) -> tuple[PayoutErrorCode, ...]:
        return (PayoutErrorCode.DESTINATION_BLOCKED, PayoutErrorCode.TX_FAILED)

    def secrets(self) -> tuple[str, ...]:
        return (self.stack.api_key, self.stack.api_secret) if self._stack is not None else ()


__all__ = ["ExchangeHarness"]
