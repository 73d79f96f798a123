"""JSON-RPC 2.0 over HTTP (aiohttp): the Soroban RPC methods payouts uses; and the `/_emulator/...` admin routes (the
emulator kit's): accounts, faults, the payments applied, the ledger clock, statistics, discrepancies."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from aiohttp import web

from prizeflow_emulator_kit.admin import Admin, AdminError
from prizeflow_soroban_emulator.discrepancies import DiscrepancyError, Injector
from prizeflow_soroban_emulator.history import transactions_page
from prizeflow_soroban_emulator.ledger import PROTOCOL_VERSION, Ledger, RpcError
from prizeflow_soroban_emulator.settings import EmulatorSettings
from prizeflow_stellar.assets import canonical, stellar_asset

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], Awaitable[Any]]
LEDGER_KEY = web.AppKey("ledger", Ledger)


class Emulator:
    """The ledger plus its clock and the RPC method table."""

    def __init__(self, ledger: Ledger, *, ledger_ms: int) -> None:
        self.ledger = ledger
        self.ledger_ms = ledger_ms
        self._task: asyncio.Task[None] | None = None
        self._closed = asyncio.Event()
        self.methods: dict[str, Handler] = {
            "getHealth": self.get_health,
            "getNetwork": self.get_network,
            "getLatestLedger": self.get_latest_ledger,
            "getLedgerEntries": self.get_ledger_entries,
            "simulateTransaction": self.simulate_transaction,
            "sendTransaction": self.send_transaction,
            "getTransaction": self.get_transaction,
            "getTransactions": self.get_transactions,
        }

    # -- clock -------------------------------------------------------------------------------------------

    async def _clock(self) -> None:
        while True:
            await asyncio.sleep((self.ledger_ms + self.ledger.faults.slow_ledger_ms) / 1000)
            try:
                self.ledger.close_ledger()
            except Exception:
                log.exception("ledger close failed")
            self._closed.set()
            self._closed = asyncio.Event()

    async def start(self, _app: web.Application | None = None) -> None:
        self._task = asyncio.create_task(self._clock(), name="ledger-clock")

    async def stop(self, _app: web.Application | None = None) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    # -- Soroban RPC ---------------------------------------------------------------------------------------

    async def get_health(self, _params: dict[str, Any]) -> dict[str, Any]:
        lg = self.ledger
        return {
            "status": "healthy",
            "latestLedger": lg.sequence,
            "oldestLedger": lg.oldest_ledger(),
            "ledgerRetentionWindow": 17280,
        }

    async def get_network(self, _params: dict[str, Any]) -> dict[str, Any]:
        return {"passphrase": self.ledger.passphrase, "protocolVersion": PROTOCOL_VERSION, "friendbotUrl": None}

    async def get_latest_ledger(self, _params: dict[str, Any]) -> dict[str, Any]:
        lg = self.ledger
        return {
            "id": f"{lg.sequence:064x}",
            "protocolVersion": PROTOCOL_VERSION,
            "sequence": lg.sequence,
            "closeTime": str(lg.close_time),
            "headerXdr": "",
            "metadataXdr": "",
        }

    async def get_ledger_entries(self, params: dict[str, Any]) -> dict[str, Any]:
        keys = params.get("keys")
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise RpcError(-32602, "keys must be a list of base64 LedgerKey XDR strings")
        return {"entries": self.ledger.ledger_entries(keys), "latestLedger": self.ledger.sequence}

    async def simulate_transaction(self, params: dict[str, Any]) -> dict[str, Any]:
        return self.ledger.simulate(_str_param(params, "transaction"))

    async def send_transaction(self, params: dict[str, Any]) -> dict[str, Any]:
        return self.ledger.send(_str_param(params, "transaction"))

    async def get_transaction(self, params: dict[str, Any]) -> dict[str, Any]:
        return self.ledger.transaction(_str_param(params, "hash").lower())

    async def get_transactions(self, params: dict[str, Any]) -> dict[str, Any]:
        return transactions_page(self.ledger, params)

    # -- admin (/_emulator) ----------------------------------------------------------------------------------

    def install_admin(self, app: web.Application) -> None:
        admin = Admin(errors=_admin_error, health=self.health)
        for method, path, handler in [
            ("POST", "/accounts", self.create_account),
            ("GET", "/accounts/{account}", self.get_account),
            ("GET", "/payments", self.get_payments),
            ("POST", "/ledgers/close", self.close_ledger),
            ("POST", "/ledgers/interval", self.set_ledger_interval),
            ("GET", "/stats", self.stats),
            ("POST", "/discrepancies", self.discrepancies),
        ]:
            admin.route(method, path, handler)
        admin.knobs(lambda: self.ledger.faults)
        admin.install(app)

    def health(self) -> dict[str, Any]:
        return {"status": "ok", "latestLedger": self.ledger.sequence}

    def create_account(self, _request: web.Request, body: dict[str, Any]) -> Any:
        """Create or top up an account: `balances` (`{"XLM": "100"}`; a key creates the trustline), `signers`
        (`{"G...": weight}`; 0 removes), `medThreshold`, `masterWeight`, `sequence`."""
        acct = self.ledger.create_account(
            _str_param(body, "account"),
            body.get("balances") or {},
            signers=body.get("signers") or None,
            med_threshold=int(body.get("medThreshold", 0)),
            master_weight=int(body.get("masterWeight", 1)),
            sequence=body.get("sequence"),
        )
        return asdict(acct)

    def get_account(self, request: web.Request, _body: dict[str, Any]) -> Any:
        acct = self.ledger.accounts.get(request.match_info["account"])
        if acct is None:
            raise AdminError("no such account", status=404)
        return asdict(acct)

    def get_payments(self, request: web.Request, _body: dict[str, Any]) -> Any:
        """Every movement the ledger applied; filter by `destination`, `txHash` or `asset` (registry code)."""
        query = request.query
        out = self.ledger.payments
        if "destination" in query:
            out = [p for p in out if p.destination == query["destination"]]
        if "txHash" in query:
            out = [p for p in out if p.tx_hash == query["txHash"]]
        if "asset" in query:
            key = canonical(stellar_asset(query["asset"]))
            out = [p for p in out if p.asset == key]
        return [asdict(p) for p in out]

    def close_ledger(self, _request: web.Request, _body: dict[str, Any]) -> Any:
        """Close one ledger now (deterministic tests)."""
        included = self.ledger.close_ledger()
        return {"sequence": self.ledger.sequence, "included": included}

    def set_ledger_interval(self, _request: web.Request, body: dict[str, Any]) -> Any:
        ms = int(body["ms"])
        if ms < 10:
            raise AdminError("ms is 10 at least")
        self.ledger_ms = ms
        return {"ms": self.ledger_ms}

    def stats(self, _request: web.Request, _body: dict[str, Any]) -> Any:
        lg = self.ledger
        return {"sequence": lg.sequence, "mempool": len(lg.mempool), "counters": dict(lg.counters)}

    def discrepancies(self, _request: web.Request, body: dict[str, Any]) -> Any:
        """`POST /_emulator/discrepancies` (see `discrepancies.py`): 201 `{"line_id"}`."""
        return web.json_response({"line_id": Injector(self.ledger).inject(body)}, status=201)

    # -- HTTP ----------------------------------------------------------------------------------------------

    async def _call(self, request: dict[str, Any]) -> dict[str, Any] | None:  # noqa: PLR0911 - one per JSON-RPC error
        rid = request.get("id")
        method = request.get("method")
        params = request.get("params") or {}
        if request.get("jsonrpc") != "2.0" or not isinstance(method, str):
            return _error(rid, -32600, "invalid request")
        handler = self.methods.get(method)
        if handler is None:
            return _error(rid, -32601, f"method not found: {method}")
        if not isinstance(params, dict):
            return _error(rid, -32602, "params must be an object")
        self.ledger._count(f"rpc_{method}")  # what a client asked, by method (`GET /_emulator/stats`)
        faults = self.ledger.faults
        try:
            result = await handler(params)
        except RpcError as err:
            return _error(rid, err.code, err.message)
        except (KeyError, TypeError, ValueError) as err:
            return _error(rid, -32602, f"invalid params: {err}")
        except Exception as err:
            log.exception("%s failed", method)
            return _error(rid, -32603, f"internal error: {type(err).__name__}")
        if faults.delay_ms and self.ledger.rng.random() < faults.delay_rate:
            self.ledger._count("delayed")
            await asyncio.sleep(faults.delay_ms / 1000)
        return {"jsonrpc": "2.0", "id": rid, "result": result}

    async def handle(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except json.JSONDecodeError:
            return web.json_response(_error(None, -32700, "parse error"))
        if isinstance(body, list):
            replies = [
                await self._call(item) if isinstance(item, dict) else _error(None, -32600, "invalid") for item in body
            ]
            return web.json_response(replies)
        if not isinstance(body, dict):
            return web.json_response(_error(None, -32600, "invalid request"))
        return web.json_response(await self._call(body))

    async def friendbot(self, request: web.Request) -> web.Response:
        addr = request.query.get("addr", "")
        try:
            self.ledger.create_account(addr, {"XLM": "10000"})
        except RpcError as err:
            return web.json_response({"detail": err.message}, status=400)
        return web.json_response({"account": addr, "funded": "10000.0000000"})


def _str_param(params: dict[str, Any], name: str) -> str:
    value = params.get(name)
    if not isinstance(value, str) or not value:
        raise RpcError(-32602, f"missing string param {name!r}")
    return value


def _error(rid: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rid, "error": {"code": code, "message": message}}


def _admin_error(err: Exception) -> web.StreamResponse | None:
    if isinstance(err, DiscrepancyError):
        return web.json_response({"error": str(err)}, status=err.status)
    if isinstance(err, RpcError):
        return web.json_response({"error": err.message, "code": err.code}, status=400)
    return None


def build_emulator(settings: EmulatorSettings) -> Emulator:
    ledger = Ledger(
        passphrase=settings.stellar_network_passphrase,
        capacity_ops=settings.soroban_emulator_ledger_capacity,
        faults=settings.faults(),
        contract_id=settings.payout_contract_id,
        method_name=settings.payout_method_name,
        contract_asset=canonical(stellar_asset(settings.soroban_emulator_contract_asset)),
        rng=random.Random(settings.soroban_emulator_seed),  # noqa: S311 - fault injection, not cryptography
        state_file=Path(settings.soroban_emulator_state_file) if settings.soroban_emulator_state_file else None,
    )
    if ledger.state_file is not None and ledger.state_file.is_file():
        ledger.load(ledger.state_file)
    for account, balances in settings.soroban_emulator_accounts.items():
        if account not in ledger.accounts:
            ledger.create_account(account, balances)
    return Emulator(ledger, ledger_ms=settings.soroban_emulator_ledger_ms)


def create_app(emulator: Emulator) -> web.Application:
    app = web.Application(client_max_size=4 * 1024 * 1024)
    app.router.add_post("/", emulator.handle)
    app.router.add_post("/rpc", emulator.handle)
    app.router.add_get("/friendbot", emulator.friendbot)
    emulator.install_admin(app)
    app.on_startup.append(emulator.start)
    app.on_cleanup.append(emulator.stop)
    return app


__all__ = ["Emulator", "build_emulator", "create_app"]
