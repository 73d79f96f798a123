"""The HTTP layer over the chain, in memory: `tryLocateResultTx` in toncenter's shape."""

from __future__ import annotations

import json
import random
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from nacl.signing import SigningKey

from prizeflow_ton.addresses import parse_address
from prizeflow_ton.messages import Transfer, TransferKind, WalletMessage, external_message, signing_hash, to_b64
from prizeflow_ton_emulator.chain import Chain
from prizeflow_ton_emulator.server import create_app
from prizeflow_ton_emulator.settings import EmulatorSettings

WALLET = "0:" + "11" * 32
DEST = "0:" + "22" * 32
MASTER = "0:" + "44" * 32
JETTON_WALLET = "0:" + "33" * 32
TON = 1_000_000_000


@pytest.fixture
def key() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture
def chain(key: SigningKey) -> Chain:
    c = Chain(clock=lambda: 1_800_000_000.0, rng=random.Random(1))
    c.add_wallet(WALLET, bytes(key.verify_key), balance=10 * TON, subwallet_id=698983191)
    c.add_jetton(master=MASTER, owner=WALLET, jetton_wallet=JETTON_WALLET, balance=5_000_000)
    return c


async def get(chain: Chain, path: str, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
    """A GET through the app's router and handler, in memory (the unit tier binds no socket)."""
    app = create_app(chain, EmulatorSettings(ton_emulator_block_ms=10**7))
    request = make_mocked_request("GET", f"{path}?{urlencode(params)}", app=app)
    match = await app.router.resolve(request)
    response = await match.handler(request)
    assert isinstance(response, web.Response)
    assert response.text is not None
    return response.status, json.loads(response.text)


def send_jetton(chain: Chain, key: SigningKey, seqno: int) -> None:
    t = Transfer(
        kind=TransferKind.JETTON, destination=DEST, amount=1_000_000, bounce=True, jetton_wallet=JETTON_WALLET,
        attached_nanotons=50_000_000, forward_nanotons=1, response_destination=WALLET,
    )  # fmt: skip
    m = WalletMessage(wallet=WALLET, subwallet_id=698983191, valid_until=chain.now() + 60, seqno=seqno, transfer=t)
    chain.send_boc(to_b64(external_message(m, key.sign(signing_hash(m)).signature)))
    chain.produce_block()


async def test_try_locate_result_tx_answers_in_toncenter_s_shape(chain: Chain, key: SigningKey) -> None:
    chain.faults.update({"frozen_jetton_owners": [parse_address(DEST).friendly(bounceable=True)]})
    send_jetton(chain, key, 0)
    (internal,) = chain.transactions[JETTON_WALLET][0].out_msgs
    params = {"source": JETTON_WALLET, "destination": internal["destination"], "created_lt": internal["created_lt"]}
    status, doc = await get(chain, "/api/v2/tryLocateResultTx", params)
    assert (status, doc["ok"], doc["result"]["@type"]) == (200, True, "raw.transaction")
    assert doc["result"]["in_msg"]["hash"] == internal["hash"]
    assert [parse_address(m["destination"]).raw for m in doc["result"]["out_msgs"]] == [JETTON_WALLET]  # bounced
    status, doc = await get(chain, "/api/v2/tryLocateResultTx", {**params, "created_lt": "7"})
    assert (status, doc["ok"]) == (404, False)
    assert "not found" in doc["error"].lower()
    status, doc = await get(chain, "/api/v2/tryLocateResultTx", {**params, "created_lt": "x"})
    assert (status, doc["ok"]) == (400, False)
    status, doc = await get(chain, "/_emulator/transfers", {"wallet": WALLET, "destination": DEST})
    assert (status, doc) == (200, {"ton": 0, "jetton": 0})
    status, doc = await get(chain, "/_emulator/balances", {"address": WALLET, "master": MASTER})
    assert (status, doc) == (200, {"jetton": "5000000"})


async def test_the_admin_routes_are_under_the_one_scheme_only(chain: Chain) -> None:
    """`/_emulator/...` (the emulator kit's), no alias left at the old `/emulator/...`."""
    app = create_app(chain, EmulatorSettings(ton_emulator_block_ms=10**7))
    for method, path in [
        ("POST", "/_emulator/wallets"), ("POST", "/_emulator/jettons"), ("GET", "/_emulator/faults"),
        ("POST", "/_emulator/faults"), ("POST", "/_emulator/blocks/produce"), ("POST", "/_emulator/clock/advance"),
        ("GET", "/_emulator/balances"), ("GET", "/_emulator/stats"), ("GET", "/_emulator/transfers"),
        ("POST", "/_emulator/discrepancies"), ("GET", "/_emulator/health"),
    ]:  # fmt: skip
        match = await app.router.resolve(make_mocked_request(method, path, app=app))
        assert match.http_exception is None, (method, path)
    for method, path in [("POST", "/emulator/faults"), ("GET", "/emulator/stats"), ("POST", "/emulator/wallets")]:
        match = await app.router.resolve(make_mocked_request(method, path, app=app))
        assert match.http_exception is not None
        assert match.http_exception.status == 404
    status, doc = await get(chain, "/_emulator/faults", {})
    assert (status, doc["outage"], doc["frozen_jetton_owners"]) == (200, False, [])
