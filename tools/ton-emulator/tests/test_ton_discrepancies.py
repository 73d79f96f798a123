"""getTransactions paging by (lt, hash) and `to_lt`, and POST /_emulator/discrepancies, on the chain in memory."""

from __future__ import annotations

import asyncio
import base64
import json
import random
from typing import Any
from unittest import mock
from urllib.parse import urlencode

import pytest
from aiohttp import streams, web
from aiohttp.test_utils import make_mocked_request
from nacl.signing import SigningKey

from prizeflow_ton.addresses import parse_address
from prizeflow_ton.messages import Transfer, TransferKind, WalletMessage, external_message, signing_hash, to_b64
from prizeflow_ton_emulator.chain import ApiError, Chain
from prizeflow_ton_emulator.discrepancies import DiscrepancyError, Injector
from prizeflow_ton_emulator.server import create_app
from prizeflow_ton_emulator.settings import EmulatorSettings

WALLET = "0:" + "11" * 32
DEST = "0:" + "22" * 32
OTHER = "0:" + "55" * 32
TON = 1_000_000_000


@pytest.fixture
def key() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture
def chain(key: SigningKey) -> Chain:
    c = Chain(clock=lambda: 1_800_000_000.0, rng=random.Random(1))
    c.add_wallet(WALLET, bytes(key.verify_key), balance=100 * TON, subwallet_id=698983191)
    return c


def pay(chain: Chain, key: SigningKey, seqno: int, amount: int, dest: str = DEST) -> str:
    """One v4r2 TON transfer landed; the external message's hash (hex)."""
    t = Transfer(kind=TransferKind.TON, destination=dest, amount=amount, bounce=False)
    m = WalletMessage(wallet=WALLET, subwallet_id=698983191, valid_until=chain.now() + 60, seqno=seqno, transfer=t)
    message_hash = chain.send_boc(to_b64(external_message(m, key.sign(signing_hash(m)).signature)))
    chain.produce_block()
    return message_hash


def hexed(b64: str) -> str:
    return base64.b64decode(b64).hex()


async def call(chain: Chain, method: str, path: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    app = create_app(chain, EmulatorSettings(ton_emulator_block_ms=10**7))
    if method == "GET":
        request = make_mocked_request("GET", f"{path}?{urlencode(params)}", app=app)
    else:
        body = json.dumps(params).encode()
        payload = streams.StreamReader(mock.Mock(_reading_paused=False), 2**16, loop=asyncio.get_running_loop())
        payload.feed_data(body)
        payload.feed_eof()
        headers = {"Content-Type": "application/json", "Content-Length": str(len(body))}
        request = make_mocked_request("POST", path, app=app, headers=headers, payload=payload)
    match = await app.router.resolve(request)
    response = await match.handler(request)
    assert isinstance(response, web.Response)
    assert response.text is not None
    return response.status, json.loads(response.text)


def test_transactions_page_back_by_lt_and_hash(chain: Chain, key: SigningKey) -> None:
    for n in range(5):
        pay(chain, key, n, TON + n)
    newest = chain.get_transactions(WALLET, limit=2)
    assert [int(t["out_msgs"][0]["value"]) for t in newest] == [TON + 4, TON + 3]
    last = newest[-1]["transaction_id"]
    page = chain.get_transactions(WALLET, limit=3, lt=int(last["lt"]), tx_hash=last["hash"])
    assert [int(t["out_msgs"][0]["value"]) for t in page] == [TON + 3, TON + 2, TON + 1]  # inclusive
    same = chain.get_transactions(WALLET, limit=3, lt=int(last["lt"]), tx_hash=hexed(last["hash"]))
    assert same == page  # the hash in hex or base64
    assert len(chain.get_transactions(WALLET, limit=10, to_lt=int(last["lt"]))) == 1  # newer than to_lt only
    with pytest.raises(ApiError, match="cannot find transaction"):
        chain.get_transactions(WALLET, limit=3, lt=int(last["lt"]), tx_hash="00" * 32)


async def test_discrepancies_rewrite_the_listing_and_land_new_transactions(chain: Chain, key: SigningKey) -> None:
    first, second, third = (pay(chain, key, n, TON * (n + 1)) for n in range(3))
    inject = Injector(chain).inject
    view = {hexed(t["in_msg"]["hash"]): t for t in chain.get_transactions(WALLET, limit=10)}

    line = inject({"kind": "amount", "reference": first, "amount": 5})
    assert line == hexed(view[first]["out_msgs"][0]["hash"])
    listed = {hexed(t["in_msg"]["hash"]): t for t in chain.get_transactions(WALLET, limit=10)}
    assert listed[first]["out_msgs"][0]["value"] == "5"
    assert chain.transactions[WALLET][0].out_msgs[0]["value"] == str(TON)  # applied: unchanged
    assert chain.balance(DEST) == 6 * TON

    assert inject({"kind": "fee", "reference": line, "amount": 9}) == f"{hexed(chain.transactions[WALLET][0].hash)}:fee"
    assert inject({"kind": "missing", "reference": second}) is None
    listed = {hexed(t["in_msg"]["hash"]): t for t in chain.get_transactions(WALLET, limit=10)}
    assert second not in listed
    assert int(listed[first]["fee"]) == chain.fee_nanotons + 9

    copy = inject({"kind": "duplicate", "reference": third})
    replays = [t for t in chain.get_transactions(WALLET, limit=10) if hexed(t["in_msg"]["hash"]) == third]
    assert len(replays) == 2
    assert copy in {hexed(t["out_msgs"][0]["hash"]) for t in replays}

    status, doc = await call(chain, "POST", "/_emulator/discrepancies", {"kind": "reversal", "reference": third})
    assert status == 201
    (refund,) = [t for t in chain.get_transactions(WALLET, limit=10) if hexed(t["in_msg"]["hash"]) == doc["line_id"]]
    assert (refund["in_msg"]["message"], int(refund["in_msg"]["value"])) == (third, 3 * TON)
    assert parse_address(refund["in_msg"]["source"]).raw == DEST

    stray = inject({"kind": "unrequested", "amount": 7, "asset": "TON", "destination": OTHER})
    (sent,) = chain.get_transactions(WALLET, limit=1)
    assert hexed(sent["out_msgs"][0]["hash"]) == stray
    assert int(sent["fee"]) == 0

    status, doc = await call(chain, "GET", "/api/v2/getTransactions", {"address": WALLET, "limit": "2", "to_lt": "0"})
    assert (status, len(doc["result"])) == (200, 2)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"kind": "nope"}, "kind must be"),
        ({"kind": "duplicate", "reference": "00" * 32}, "no transfer"),
        ({"kind": "unrequested", "amount": 1, "asset": "USDT", "destination": OTHER}, "in TON only"),
        ({"kind": "amount", "reference": third}, "amount must be"),
    ]
    for bad, why in cases:
        with pytest.raises(DiscrepancyError, match=why):
            inject(bad)
