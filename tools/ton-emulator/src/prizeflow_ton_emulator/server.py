"""HTTP (aiohttp): the toncenter v2 methods a sender uses under /api/v2, and the `/_emulator/...` admin routes (the
emulator kit's).

API answers have toncenter's shape: `{"ok": true, "result": ...}` or `{"ok": false, "code": N, "error": "..."}`;
admin answers are plain JSON, their refusals `{"ok": false, "code": N, "error": "..."}` too.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from prizeflow_emulator_kit.admin import Admin
from prizeflow_ton.addresses import InvalidTonAddressError
from prizeflow_ton.highload import DEFAULT_HIGHLOAD_SUBWALLET_ID
from prizeflow_ton_emulator.chain import ApiError, Chain
from prizeflow_ton_emulator.discrepancies import DiscrepancyError, Injector
from prizeflow_ton_emulator.settings import EmulatorSettings

log = logging.getLogger(__name__)
CHAIN = web.AppKey("chain", Chain)
Route = Callable[[web.Request], Awaitable[web.Response]]


def build_chain(settings: EmulatorSettings) -> Chain:
    chain = Chain(fee_nanotons=settings.ton_emulator_fee_nanotons, rng=random.Random(settings.ton_emulator_seed))  # noqa: S311 - fault draws, not crypto
    for w in settings.ton_emulator_genesis.get("wallets", []):
        _add_wallet(chain, w)
    for j in settings.ton_emulator_genesis.get("jettons", []):
        chain.add_jetton(
            master=str(j["master"]),
            owner=str(j["owner"]),
            jetton_wallet=str(j["jetton_wallet"]),
            balance=int(j.get("balance", 0)),
        )
    return chain


def _add_wallet(chain: Chain, w: dict[str, Any]) -> str:
    """A wallet v4r2 (default) or, with `"type": "highload_v3"`, a highload wallet v3 with its `timeout`."""
    kind = str(w.get("type", "v4r2"))
    key = bytes.fromhex(str(w["public_key"]))
    if kind == "highload_v3":
        return chain.add_highload_wallet(
            str(w["address"]),
            key,
            balance=int(w.get("balance", 0)),
            subwallet_id=int(w.get("subwallet_id", DEFAULT_HIGHLOAD_SUBWALLET_ID)),
            timeout=int(w["timeout"]),
        )
    if kind != "v4r2":
        raise ApiError(400, f"unknown wallet type {kind!r} (v4r2, highload_v3)")
    return chain.add_wallet(
        str(w["address"]), key, balance=int(w.get("balance", 0)), subwallet_id=int(w.get("subwallet_id", 698983191))
    )


def _num(entry: Any) -> int:
    """A toncenter stack entry `["num", "0x.."]` (a negative number as `-0x..`)."""
    if not isinstance(entry, list) or len(entry) != 2 or entry[0] != "num":
        raise ApiError(400, 'stack entries are ["num", "0x.."]')
    return int(str(entry[1]), 16)


def _ok(result: Any) -> web.Response:
    return web.json_response({"ok": True, "result": result})


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"ok": False, "code": status, "error": message}, status=status)


async def _args(request: web.Request) -> dict[str, Any]:
    args: dict[str, Any] = dict(request.query)
    if request.method == "POST" and request.can_read_body:
        try:
            body = await request.json()
        except ValueError as err:
            raise ApiError(400, "the body is not JSON") from err
        if not isinstance(body, dict):
            raise ApiError(400, "the body must be a JSON object")
        args.update(body)
    return args


def _required(args: dict[str, Any], name: str) -> str:
    value = args.get(name)
    if not isinstance(value, str) or not value:
        raise ApiError(400, f"`{name}` is required")
    return value


class Api:
    def __init__(self, chain: Chain, api_key: str | None) -> None:
        self.chain = chain
        self.api_key = api_key

    def wrap(self, route: Route) -> Route:
        """An /api/v2 route: refused during an outage, and without the API key when one is set."""

        async def handler(request: web.Request) -> web.Response:
            if self.chain.faults.outage:
                self.chain.count("outage_refused")
                return _error(503, "service unavailable (injected outage)")
            if self.api_key is not None:
                given = request.headers.get("X-API-Key", "")
                if not hmac.compare_digest(given.encode(), self.api_key.encode()):
                    return _error(401, "API key does not exist")
            try:
                return await route(request)
            except ApiError as err:
                return _error(err.status, err.message)
            except InvalidTonAddressError as err:
                return _error(416, f"Incorrect address: {err}")

        return handler

    async def send_boc(self, request: web.Request) -> web.Response:
        faults = self.chain.faults
        rng = self.chain.rng
        self.chain.count("send_calls")
        if rng.random() < faults.unavailable_rate:
            self.chain.count("unavailable")
            return _error(503, "service unavailable (injected)")
        boc = _required(await _args(request), "boc")
        message_hash = self.chain.send_boc(boc)
        if faults.delay_ms and rng.random() < faults.delay_rate:
            await asyncio.sleep(faults.delay_ms / 1000)
        if rng.random() < faults.lost_response_rate:
            self.chain.count("lost_responses")
            return _error(502, "bad gateway (injected after the message was accepted)")
        b64 = base64.b64encode(bytes.fromhex(message_hash)).decode()
        return _ok({"@type": "raw.extMessageInfo", "hash": b64, "hash_norm": b64})

    async def run_get_method(self, request: web.Request) -> web.Response:
        args = await _args(request)
        address, method = _required(args, "address"), _required(args, "method")
        stack = args.get("stack") or []
        if not isinstance(stack, list):
            raise ApiError(400, "`stack` is a list")
        return _ok(self.chain.run_get_method(address, method, [_num(e) for e in stack]))

    async def masterchain_info(self, _request: web.Request) -> web.Response:
        return _ok(self.chain.masterchain_info())

    async def block_header(self, request: web.Request) -> web.Response:
        args = await _args(request)
        try:
            workchain, seqno = int(_required(args, "workchain")), int(_required(args, "seqno"))
        except ValueError as err:
            raise ApiError(400, "workchain and seqno are integers") from err
        root_hash = args.get("root_hash")
        return _ok(
            self.chain.block_header(
                workchain, _required(args, "shard"), seqno, root_hash if isinstance(root_hash, str) else None
            )
        )

    async def wallet_information(self, request: web.Request) -> web.Response:
        return _ok(self.chain.wallet_information(_required(await _args(request), "address")))

    async def transactions(self, request: web.Request) -> web.Response:
        args = await _args(request)
        try:
            limit = min(int(args.get("limit", 10)), 100)
            lt = int(args["lt"]) if args.get("lt") else None
            to_lt = int(args["to_lt"]) if args.get("to_lt") else None
        except ValueError as err:
            raise ApiError(400, "limit, lt and to_lt are integers") from err
        tx_hash = args.get("hash") or None
        txs = self.chain.get_transactions(
            _required(args, "address"), limit=limit, lt=lt, tx_hash=str(tx_hash) if tx_hash else None, to_lt=to_lt
        )
        return _ok(txs)

    async def locate_result(self, request: web.Request) -> web.Response:
        """`tryLocateResultTx?source=&destination=&created_lt=`: the destination's transaction of that message."""
        args = await _args(request)
        try:
            created_lt = int(_required(args, "created_lt"))
        except ValueError as err:
            raise ApiError(400, "created_lt is an integer") from err
        return _ok(self.chain.locate_result(_required(args, "source"), _required(args, "destination"), created_lt))

    # -- admin (/_emulator) ----------------------------------------------------------------------------------

    def install_admin(self, app: web.Application) -> None:
        admin = Admin(errors=_admin_error)
        for method, path, handler in [
            ("POST", "/wallets", self.add_wallet),
            ("POST", "/jettons", self.add_jetton),
            ("POST", "/blocks/produce", lambda _r, _b: {"block": self.chain.produce_block()}),
            ("POST", "/clock/advance", self.advance_clock),
            ("GET", "/balances", self.balances),
            ("GET", "/stats", self.stats),
            ("GET", "/transfers", self.transfers),
            ("POST", "/discrepancies", self.discrepancies),
        ]:
            admin.route(method, path, handler)
        admin.knobs(lambda: self.chain.faults)
        admin.install(app)

    def add_wallet(self, _request: web.Request, body: dict[str, Any]) -> Any:
        _required(body, "address")
        _required(body, "public_key")
        return {"address": _add_wallet(self.chain, body)}

    def add_jetton(self, _request: web.Request, body: dict[str, Any]) -> Any:
        self.chain.add_jetton(
            master=_required(body, "master"),
            owner=_required(body, "owner"),
            jetton_wallet=_required(body, "jetton_wallet"),
            balance=int(body.get("balance", 0)),
        )
        return {}

    def stats(self, _request: web.Request, _body: dict[str, Any]) -> Any:
        return {"counters": dict(self.chain.counters), "now": self.chain.now(), "block": self.chain.block}

    def transfers(self, request: web.Request, _body: dict[str, Any]) -> Any:
        """Out-messages of a wallet's transactions to `destination` (TON paid) and jetton transfers to it."""
        query = dict(request.query)
        return self.chain.transfers_to(_required(query, "wallet"), _required(query, "destination"))

    def discrepancies(self, _request: web.Request, body: dict[str, Any]) -> Any:
        """`POST /_emulator/discrepancies` (see `discrepancies.py`): 201 `{"line_id"}`."""
        return web.json_response({"line_id": Injector(self.chain).inject(body)}, status=201)

    def advance_clock(self, _request: web.Request, body: dict[str, Any]) -> Any:
        self.chain.offset_s += float(body.get("seconds", 0))
        return {"now": self.chain.now()}

    def balances(self, request: web.Request, _body: dict[str, Any]) -> Any:
        query = dict(request.query)
        address = _required(query, "address")
        master = query.get("master")
        if master:
            return {"jetton": str(self.chain.jetton_balance(master, address))}
        return {"ton": str(self.chain.balance(address))}


def _admin_error(err: Exception) -> web.StreamResponse | None:
    if isinstance(err, DiscrepancyError):
        return web.json_response({"detail": str(err)}, status=err.status)
    if isinstance(err, ApiError):
        return _error(err.status, err.message)
    if isinstance(err, InvalidTonAddressError):
        return _error(416, f"Incorrect address: {err}")
    return None


async def _blocks(chain: Chain, interval_ms: int) -> None:
    while True:
        await asyncio.sleep(interval_ms / 1000)
        try:
            chain.produce_block()
        except Exception:
            log.exception("block production failed")


def create_app(chain: Chain, settings: EmulatorSettings) -> web.Application:
    api = Api(chain, settings.ton_emulator_api_key)
    app = web.Application()
    app[CHAIN] = chain
    w = api.wrap
    app.add_routes(
        [
            web.post("/api/v2/sendBocReturnHash", w(api.send_boc)),
            web.post("/api/v2/runGetMethod", w(api.run_get_method)),
            web.get("/api/v2/getWalletInformation", w(api.wallet_information)),
            web.get("/api/v2/getTransactions", w(api.transactions)),
            web.get("/api/v2/tryLocateResultTx", w(api.locate_result)),
            web.get("/api/v2/getMasterchainInfo", w(api.masterchain_info)),
            web.get("/api/v2/getBlockHeader", w(api.block_header)),
        ]
    )
    api.install_admin(app)
    task: dict[str, asyncio.Task[None]] = {}

    async def start(_app: web.Application) -> None:
        task["blocks"] = asyncio.create_task(_blocks(chain, settings.ton_emulator_block_ms), name="ton-blocks")

    async def stop(_app: web.Application) -> None:
        if "blocks" in task:
            task["blocks"].cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task["blocks"]

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    return app


__all__ = ["CHAIN", "build_chain", "create_app"]
