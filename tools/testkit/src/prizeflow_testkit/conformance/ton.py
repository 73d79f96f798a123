"""The TON wallet rail in the kit: the TON API emulator and the signer as processes (`prizeflow_testkit.ton`).

Steered at the rail, like Stellar: the signer is paused (SIGSTOP) to hold a payout pending; the emulator's
fault knobs stand for a flaky API (`unavailable_rate`: sendBoc answers 503), an outage (every call 503) and a
lost answer (`lost_response_rate`: accepted, then 502). A terminal failure is the signer's refusal: a
destination on its deny list. Its books are the transfers the emulated wallet made. `TonHighloadHarness` runs
every scenario again on the highload wallet v3 lane (batches).
"""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, ClassVar, Final

from prizeflow_contracts.errors import PayoutErrorCode
from prizeflow_contracts.providers import DestinationType, ProviderType
from prizeflow_payouts.application.payout_requests import payout_id_for
from prizeflow_testkit.conformance.base import Behaviour, Claims, Kit, KitEnv, ProviderHarness, Scenario
from prizeflow_testkit.db import fetch
from prizeflow_testkit.ton import TonStack, random_address, ton_stack
from prizeflow_testkit.waits import eventually

MESSAGES: Final = "SELECT state, sends FROM ton_messages WHERE payout_id = $1"
# How the TON emulator's `/_emulator/discrepancies` names a payout: a wallet v4r2 payout by its external message's
# hash (the payout's provider reference), a highload batch item by the out-message that paid it.
PROVIDER_REF: Final = "SELECT provider_ref FROM payouts WHERE id = $1"
OUT_MSG_HASH: Final = "SELECT out_msg_hash FROM ton_batch_items WHERE payout_id = $1 AND state = 'paid'"
BATCH_SENDS: Final = """SELECT coalesce(sum(b.sends), 0) AS sends FROM ton_batches b
                        JOIN ton_batch_items i ON i.request_id = b.request_id WHERE i.payout_id = $1"""


class TonHarness(ProviderHarness):
    name = "ton"
    provider_type = ProviderType.TON_WALLET
    asset = "TON"
    destination_type = DestinationType.TON_WALLET
    amount = 1_500_000_000  # 1.5 TON
    claims = Claims(supports_cancel=False, supports_quote=True, supports_webhooks=False, async_confirmation=True)

    options: ClassVar[dict[str, Any]] = {}  # the provider's options beyond the stack's (the wallet version)

    def __init__(self) -> None:
        self._stack: TonStack | None = None
        self._held: set[str] = set()

    @property
    def stack(self) -> TonStack:
        assert self._stack is not None
        return self._stack

    @asynccontextmanager
    async def running(self, env: KitEnv) -> AsyncIterator[Kit]:
        async with ton_stack(
            infra=env.infra,
            db=env.db,
            kafka=env.kafka,
            topic_suffix=env.topic_suffix,
            tmp=env.tmp,
            monkeypatch=env.monkeypatch,
            options=self.options,
            settings_overrides={"payouts_max_attempts": 20},
            provider_name=self.name,
        ) as stack:
            self._stack = stack
            try:
                yield Kit(
                    self,
                    stack.settings,
                    stack.parts,
                    stack.client,
                    env.db,
                    env.kafka,
                    extra={"emulator_url": stack.url},
                )
            finally:
                self._signer(signal.SIGCONT)
                self._stack = None

    def unsupported(self, scenario: Scenario) -> str | None:
        return {
            Scenario.CANCEL: "a TON payout cannot be called back once queued for the wallet",
            Scenario.DUPLICATE_WEBHOOK: "TON has no webhooks: payouts reads the wallet's transactions",
            Scenario.STALE_WEBHOOK: "TON has no webhooks: payouts reads the wallet's transactions",
        }.get(scenario)

    async def discrepancy_reference(self, kit: Kit, key: str) -> str:
        """v4r2: the payout's provider reference (its external message's hash); highload: the out-message of the
        batch transaction that paid it (`ton_batch_items.out_msg_hash`)."""
        query = OUT_MSG_HASH if self.stack.highload else PROVIDER_REF
        rows = await fetch(kit.db, query, payout_id_for(key))
        assert len(rows) == 1, f"{self.name}: payout {key} is not one paid payout of the books"
        assert rows[0][0], f"{self.name}: payout {key} has no hash the emulator can name"
        return str(rows[0][0]).strip()

    def _signer(self, sig: signal.Signals) -> None:
        if self._stack is not None:
            self._stack.signer.signal(sig)

    async def _messages(self, kit: Kit, key: str, until: Any) -> list[dict[str, Any]]:
        async def probe() -> list[dict[str, Any]]:
            return [dict(r) for r in await fetch(kit.db, MESSAGES, payout_id_for(key))]

        return await eventually(probe, until, timeout=30, interval=0.05)

    # -- steering ---------------------------------------------------------------------------------------------
    async def destination(self, kit: Kit, behaviour: Behaviour, code: PayoutErrorCode | None = None) -> str:
        api = self.stack.api
        if behaviour is Behaviour.FAIL:
            if code is PayoutErrorCode.SIGNATURE_REFUSED:
                return self.stack.keys.denied
            raise AssertionError(f"ton cannot be made to fail with {code}")
        if behaviour is Behaviour.TRANSIENT_THEN_SUCCEED:
            kit.extra["unavailable_before"] = api.counter("unavailable")
            api.faults(unavailable_rate=1.0)
        elif behaviour is Behaviour.OUTAGE:
            kit.extra["outage_before"] = api.counter("outage_refused")
            api.faults(outage=True)
        elif behaviour is Behaviour.TIMEOUT_AFTER_SUCCESS:
            kit.extra["lost_before"] = api.counter("lost_responses")
            api.faults(lost_response_rate=1.0)
        elif behaviour is Behaviour.STAY_PENDING:
            self._signer(signal.SIGSTOP)  # the message waits in awaiting_signature until we say
        return random_address()

    async def after_request(
        self, kit: Kit, key: str, behaviour: Behaviour, code: PayoutErrorCode | None = None
    ) -> None:
        api = self.stack.api
        if behaviour is Behaviour.TRANSIENT_THEN_SUCCEED:
            before = int(kit.extra.pop("unavailable_before"))

            async def refused_twice() -> int:
                return api.counter("unavailable")

            await eventually(refused_twice, lambda n: n >= before + 2, timeout=30, interval=0.05)
            api.faults(unavailable_rate=0.0)
        elif behaviour is Behaviour.TIMEOUT_AFTER_SUCCESS:
            before = int(kit.extra.pop("lost_before"))

            async def lost() -> int:
                return api.counter("lost_responses")

            await eventually(lost, lambda n: n > before, timeout=30, interval=0.05)
            api.faults(lost_response_rate=0.0)
        elif behaviour is Behaviour.STAY_PENDING:
            self._held.add(key)

    async def complete(self, kit: Kit, key: str) -> None:
        assert key in self._held, "only a payout held by the paused signer can be completed"
        self._held.discard(key)
        self._signer(signal.SIGCONT)

    async def outage_felt(self, kit: Kit, key: str) -> bool:
        return self.stack.api.counter("outage_refused") > int(kit.extra.get("outage_before", 0))

    async def heal(self, kit: Kit) -> None:
        self.stack.api.faults(outage=False, unavailable_rate=0.0, lost_response_rate=0.0)

    # -- observing --------------------------------------------------------------------------------------------
    async def payments(self, kit: Kit, key: str) -> int:
        made = self.stack.api.transfers(self.stack.wallet, kit.destinations[key])
        return made["ton"] + made["jetton"]

    async def rail_attempts(self, kit: Kit, key: str) -> int:
        """Messages sent to the API for this payout (sendBoc calls, resubmissions of the same message included)."""
        if self.stack.highload:
            return int((await fetch(kit.db, BATCH_SENDS, payout_id_for(key)))[0]["sends"])
        return sum(int(m["sends"]) for m in await fetch(kit.db, MESSAGES, payout_id_for(key)))

    def terminal_codes(self) -> tuple[PayoutErrorCode, ...]:
        return (PayoutErrorCode.SIGNATURE_REFUSED,)

    def retryable_codes(self) -> tuple[PayoutErrorCode, ...]:
        # The API's transient answers never reach payouts as failures: the provider resends the same message
        # itself until valid_until (the retry, outage and timeout scenarios prove it pays once).
        return ()

    def secrets(self) -> tuple[str, ...]:
        return (self.stack.keys.key.secret, self.stack.keys.api_key) if self._stack is not None else ()

    def log_files(self, kit: Kit) -> tuple[Any, ...]:
        return (self.stack.emulator.log, self.stack.signer.log)


class TonHighloadHarness(TonHarness):
    """The same rail from a highload wallet v3 (`wallet_version: highload_v3`): payouts batched per wallet, one
    signature request per batch, several batches in flight; every scenario's payout rides in a batch."""

    name = "ton_highload"
    options: ClassVar[dict[str, Any]] = {"wallet_version": "highload_v3", "batch_size": 8, "batch_linger_s": 0.2}

    def discrepancies_waived(self) -> dict[str, str]:
        return {
            "duplicate": "a highload message is protected by its query id, so the chain never applies a batch twice; "
            "a second transfer of the same amount to the same destination is a new out-message of a transaction "
            "the provider's books never built, which names no payout: it shows as (and is found as) unrequested"
        }


__all__ = ["TonHarness", "TonHighloadHarness"]
