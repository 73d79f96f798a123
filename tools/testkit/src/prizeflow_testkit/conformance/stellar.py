"""The Stellar rail in the kit: the Soroban RPC emulator and the signer as processes (`prizeflow_testkit.stellar`).

The payout's fate is steered at the rail, not by its address: the signer is paused (SIGSTOP) to hold a payout
pending or to fault the network at the exact moment its envelope is sent, and the emulator's fault knobs or
its process stand for the network's transient errors (`TRY_AGAIN_LATER`), an outage (RPC down) and a lost
answer (a `sendTransaction` that applies after the client gave up). Its books are the ledger's payments.
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Final

from stellar_sdk import Keypair

from prizeflow_contracts.errors import PayoutErrorCode
from prizeflow_contracts.providers import DestinationType, ProviderType
from prizeflow_payouts.application.payout_requests import payout_id_for
from prizeflow_testkit.conformance.base import Behaviour, Claims, Kit, KitEnv, ProviderHarness, Scenario
from prizeflow_testkit.db import fetch
from prizeflow_testkit.stellar import Stack, destinations, stellar_stack
from prizeflow_testkit.waits import eventually

RPC_TIMEOUT_S: Final = 1.0
LOST_ANSWER_DELAY_MS: Final = 2500  # longer than RPC_TIMEOUT_S: the answer comes after the client gave up
TXS: Final = "SELECT state, last_status, submits FROM stellar_txs WHERE $1 = ANY(payout_ids)"


class StellarHarness(ProviderHarness):
    name = "stellar"
    provider_type = ProviderType.STELLAR
    asset = "USDC"
    destination_type = DestinationType.STELLAR_ACCOUNT
    amount = 2_500_000
    claims = Claims(supports_cancel=False, supports_quote=True, supports_webhooks=False, async_confirmation=True)

    def __init__(self) -> None:
        self._stack: Stack | None = None
        self._held: set[str] = set()
        self.state_file = Path()

    @property
    def stack(self) -> Stack:
        assert self._stack is not None
        return self._stack

    @asynccontextmanager
    async def running(self, env: KitEnv) -> AsyncIterator[Kit]:
        self.state_file = env.tmp / "ledger.json"
        async with stellar_stack(
            infra=env.infra,
            db=env.db,
            kafka=env.kafka,
            topic_suffix=env.topic_suffix,
            tmp=env.tmp,
            monkeypatch=env.monkeypatch,
            ledger_ms=300,
            options={"rpc_timeout_s": RPC_TIMEOUT_S},
            # A snapshot at every ledger close: the emulator comes back from an outage with its ledger.
            emulator_env={"SOROBAN_EMULATOR_STATE_FILE": str(self.state_file)},
            # Past its confirm polls (5 s here) a payout is synced at the reconciler's pace: an outage longer than
            # that (the emulator restarting on a loaded machine) must not leave a landed payout a minute unseen.
            settings_overrides={"payouts_max_attempts": 20, "payouts_reconcile_interval_ms": 2_000},
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
                    extra={"emulator_url": stack.rpc_url.rstrip("/")},
                )
            finally:
                self._signer(signal.SIGCONT)
                self._stack = None

    def unsupported(self, scenario: Scenario) -> str | None:
        return {
            Scenario.CANCEL: "a Stellar payout cannot be called back once its envelope is handed to the signer",
            Scenario.DUPLICATE_WEBHOOK: "the ledger has no webhooks: payouts polls the transaction's status",
            Scenario.STALE_WEBHOOK: "the ledger has no webhooks: payouts polls the transaction's status",
        }.get(scenario)

    # -- steering ---------------------------------------------------------------------------------------------
    def _signer(self, sig: signal.Signals) -> None:
        if self._stack is not None and self._stack.signer is not None:
            self._stack.signer.signal(sig)

    def _counter(self, name: str) -> int:
        return int(self.stack.rpc.admin.stats()["counters"].get(name, 0))

    async def destination(self, kit: Kit, behaviour: Behaviour, code: PayoutErrorCode | None = None) -> str:
        if behaviour is Behaviour.FAIL:
            if code is PayoutErrorCode.DESTINATION_NOT_FOUND:
                return Keypair.random().public_key  # no such account on the ledger
            if code is PayoutErrorCode.DESTINATION_NO_TRUSTLINE:
                (address,) = destinations(self.stack.rpc, 1, usdc=False)
                return address
            raise AssertionError(f"stellar cannot be made to fail with {code}")
        (address,) = destinations(self.stack.rpc, 1)
        if behaviour is Behaviour.TRANSIENT_THEN_SUCCEED:
            kit.extra["busy_before"] = self._counter("send_try_again_later")
            self.stack.rpc.admin.set_faults(try_again_later_rate=1.0)
        elif behaviour in (Behaviour.STAY_PENDING, Behaviour.OUTAGE, Behaviour.TIMEOUT_AFTER_SUCCESS):
            self._signer(signal.SIGSTOP)  # the envelope waits in `signing` until we say
        return address

    async def _tx(self, kit: Kit, key: str, until: Any) -> list[dict[str, Any]]:
        async def probe() -> list[dict[str, Any]]:
            return [dict(r) for r in await fetch(kit.db, TXS, payout_id_for(key))]

        return await eventually(probe, until, timeout=30, interval=0.05)

    async def after_request(
        self, kit: Kit, key: str, behaviour: Behaviour, code: PayoutErrorCode | None = None
    ) -> None:
        if behaviour is Behaviour.TRANSIENT_THEN_SUCCEED:
            busy = int(kit.extra.pop("busy_before"))

            async def answered_busy() -> int:
                return self._counter("send_try_again_later")

            await eventually(answered_busy, lambda n: n > busy, timeout=30, interval=0.05)
            self.stack.rpc.admin.set_faults(try_again_later_rate=0.0)
        elif behaviour is Behaviour.OUTAGE:
            await self._tx(kit, key, lambda txs: any(t["state"] == "signing" for t in txs))
            closed = self._counter("ledgers_closed")

            async def ledgers() -> int:
                return self._counter("ledgers_closed")

            # The destination account is in a snapshot (one per ledger close) before the network goes down.
            await eventually(ledgers, lambda n: n > closed, timeout=10, interval=0.05)
            await asyncio.to_thread(self.stack.emulator.stop)
            self._signer(signal.SIGCONT)
        elif behaviour is Behaviour.TIMEOUT_AFTER_SUCCESS:
            await self._tx(kit, key, lambda txs: any(t["state"] == "signing" for t in txs))
            accepted = self._counter("send_pending")
            self.stack.rpc.admin.set_faults(delay_rate=1.0, delay_ms=LOST_ANSWER_DELAY_MS)
            self._signer(signal.SIGCONT)
            # The client gave up on sendTransaction (outcome unknown to it), and the network did accept it.
            await self._tx(kit, key, lambda txs: any(t["last_status"] == "unknown" for t in txs))

            async def sent() -> int:
                return self._counter("send_pending")

            await eventually(sent, lambda n: n > accepted, timeout=30, interval=0.1)
            self.stack.rpc.admin.set_faults(delay_rate=0.0, delay_ms=0)
        elif behaviour is Behaviour.STAY_PENDING:
            self._held.add(key)

    async def complete(self, kit: Kit, key: str) -> None:
        assert key in self._held, "only a payout held by the paused signer can be completed"
        self._held.discard(key)
        self._signer(signal.SIGCONT)

    async def outage_felt(self, kit: Kit, key: str) -> bool:
        txs = await fetch(kit.db, TXS, payout_id_for(key))
        return any(t["last_status"] in ("unknown", "rpc_unavailable") for t in txs)

    async def heal(self, kit: Kit) -> None:
        await asyncio.to_thread(self.stack.emulator.start)

    # -- observing --------------------------------------------------------------------------------------------
    async def discrepancy_reference(self, kit: Kit, key: str) -> str:
        return str((await kit.row(key))["tx_hash"])  # the transaction that paid it (its payment's place: the first)

    async def payments(self, kit: Kit, key: str) -> int:
        dest = kit.destinations[key]
        if not self.stack.emulator.running:  # the network is down: its last ledger, as snapshotted at its close
            doc = json.loads(self.state_file.read_text())
            return sum(1 for p in doc["payments"] if p["destination"] == dest)
        return len(self.stack.rpc.admin.payments(destination=dest))

    async def rail_attempts(self, kit: Kit, key: str) -> int:
        """Envelopes sent to the network for this payout (`sendTransaction` calls, resubmissions included)."""
        return sum(int(t["submits"]) for t in await fetch(kit.db, TXS, payout_id_for(key)))

    def terminal_codes(self) -> tuple[PayoutErrorCode, ...]:
        return (PayoutErrorCode.DESTINATION_NO_TRUSTLINE, PayoutErrorCode.DESTINATION_NOT_FOUND)

    def retryable_codes(self) -> tuple[PayoutErrorCode, ...]:
        # The network's transient answers never reach payouts as failures: the provider resubmits the same
        # envelope itself (the retry, outage and timeout scenarios prove it pays once).
        return ()

    def secrets(self) -> tuple[str, ...]:
        return (self.stack.keys.funding.secret,) if self._stack is not None else ()

    def log_files(self, kit: Kit) -> tuple[Any, ...]:
        return (self.stack.emulator.log, *((self.stack.signer.log,) if self.stack.signer else ()))


__all__ = ["StellarHarness"]
