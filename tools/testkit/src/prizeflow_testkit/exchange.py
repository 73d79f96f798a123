"""The crypto_exchange rail's test stack: the exchange emulator (tools/exchange-emulator) served in this event
loop on a loopback port, and providers built by the real factory (options validated as at start-up) on it.

In-process on purpose (its own event loop in a thread, so any loop reaches it): no process to start (well under a
second), and tests steer it directly (faults, settling, whitelist, balances, suspended networks) through
`ExchangeStack.emulator`; ccxt still reaches it over HTTP with its real request signing.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final, TypeVar

from aiohttp import web

from prizeflow_exchange_emulator import Emulator, EmulatorSettings, create_app
from prizeflow_exchange_emulator.settings import WhitelistEntry
from prizeflow_payouts.adapters.exchange import ExchangeWithdrawalProvider, WithdrawalBook, build_exchange
from prizeflow_payouts.provider_spec import ProviderContext, ProviderSpec

T = TypeVar("T")
API_KEY_ENV: Final = "PAYOUTS_EXCHANGE_API_KEY"
API_SECRET_ENV: Final = "PAYOUTS_EXCHANGE_API_SECRET"  # noqa: S105 - the NAME of a variable
ETH_ADDRESS: Final = "0x" + "5a" * 20
XLM_ADDRESS: Final = "GCKFBEIYV2U22IO2BJ4KVJOIP7XPWQGQFKKWXR6DOSJBV7STMAQSMTGG"
XLM_MEMO: Final = "4242"
# Our asset -> how the exchange withdraws it: USDC on Ethereum (no memo), XLM on Stellar (memo required).
ASSETS: Final[dict[str, dict[str, Any]]] = {
    "USDC": {"currency": "USDC", "network": "ERC20", "precision": 6, "address_pattern": r"^0x[0-9a-fA-F]{40}$"},
    "XLM": {"currency": "XLM", "network": "XLM", "precision": 7, "memo": "required"},
}


@dataclass
class ExchangeStack:
    emulator: Emulator
    url: str
    api_key: str
    api_secret: str
    server: _ServerThread | None = None

    def whitelist(self, network: str, address: str, tag: str | None = None) -> None:
        self.emulator.account.whitelist.add(WhitelistEntry(network, address, tag))

    def withdrawals(self, *, client_id: str | None = None, address: str | None = None) -> list[dict[str, Any]]:
        return [
            w.to_json()
            for w in list(self.emulator.account.withdrawals.values())
            if (client_id is None or w.withdraw_order_id == client_id) and (address is None or w.address == address)
        ]

    def settle(self, withdrawal_id: str, outcome: str = "completed") -> None:
        self.emulator.account.settle(withdrawal_id, outcome, time.time())

    def reverse(self, withdrawal_id: str, outcome: str = "failure") -> None:
        """The exchange reports a completed withdrawal failed (or rejected, cancelled) after all."""
        self.emulator.account.reverse(withdrawal_id, outcome, time.time())

    def calls(self, path: str) -> int:
        return sum(1 for r in list(self.emulator.requests) if r.path == path)


class _ServerThread:
    """The emulator's own event loop in a thread: reachable from any loop (a test client's portal included)."""

    def __init__(self, emulator: Emulator) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="exchange-emulator", daemon=True)
        self.runner = web.AppRunner(create_app(emulator), access_log=None)
        self.site: web.TCPSite | None = None
        self.port = 0

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    async def listen(self) -> None:
        self.site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await self.site.start()
        self.port = self.runner.addresses[0][1]

    def start(self) -> None:
        self.thread.start()
        self.run(self.runner.setup())
        self.run(self.listen())

    def stop(self) -> None:
        try:
            self.run(self.runner.cleanup())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=10)
            self.loop.close()


@asynccontextmanager
async def exchange_emulator(**settings: Any) -> AsyncIterator[ExchangeStack]:
    """The emulator on 127.0.0.1:<free port> (its own thread), funded and whitelisting the two test addresses."""
    key, secret = "kit" + secrets.token_hex(16), secrets.token_hex(32)
    defaults: dict[str, Any] = {
        "balances": {"USDC": Decimal(1_000_000), "XLM": Decimal(1_000_000)},
        "whitelist": (WhitelistEntry("ETH", ETH_ADDRESS), WhitelistEntry("XLM", XLM_ADDRESS, XLM_MEMO)),
    }
    emulator = Emulator(EmulatorSettings(api_key=key, api_secret=secret, port=0, **{**defaults, **settings}))
    server = _ServerThread(emulator)
    await asyncio.to_thread(server.start)
    try:
        yield ExchangeStack(emulator, f"http://127.0.0.1:{server.port}", key, secret, server)
    finally:
        await asyncio.to_thread(server.stop)


def exchange_provider_doc(
    *, name: str = "exchange", api_base: str, assets: tuple[str, ...] = ("USDC", "XLM"), **options: Any
) -> dict[str, Any]:
    """A providers-file entry for the rail on the emulator (binance through ccxt)."""
    return {
        "name": name,
        "type": "crypto_exchange",
        "assets": list(assets),
        "destination_types": ["crypto_address"],
        "secrets": {"api_key": API_KEY_ENV, "api_secret": API_SECRET_ENV},
        "options": {
            "exchange": "binance",
            "api_base": api_base,
            "timeout_s": 2,
            "assets": {a: ASSETS[a] for a in assets},
            **options,
        },
    }


def build_exchange_provider(
    stack: ExchangeStack,
    *,
    database_url: str = "",
    book: WithdrawalBook | None = None,
    provider_timeout_s: float = 10.0,
    **options: Any,
) -> ExchangeWithdrawalProvider:
    raw = exchange_provider_doc(api_base=stack.url, **options)
    env = {API_KEY_ENV: stack.api_key, API_SECRET_ENV: stack.api_secret}
    spec = ProviderSpec.model_validate(raw, context={"env": env})
    context = ProviderContext(live_execution=False, database_url=database_url, provider_timeout_s=provider_timeout_s)
    provider = build_exchange(spec, context, book=book).payouts
    assert isinstance(provider, ExchangeWithdrawalProvider)
    return provider


__all__ = [
    "API_KEY_ENV",
    "API_SECRET_ENV",
    "ASSETS",
    "ETH_ADDRESS",
    "XLM_ADDRESS",
    "XLM_MEMO",
    "ExchangeStack",
    "build_exchange_provider",
    "exchange_emulator",
    "exchange_provider_doc",
]
