"""The ton_wallet driver's decisions without I/O: its books are an in-memory `TonBooks` (adapters/ton/books.py;
the SQL adapter runs against PostgreSQL in the integration tests), the TON API a fake answering in toncenter v2's
shape (parsed by the real client code).

What must never happen: a message that may have landed expired and rebuilt (paid twice), a bounced jetton
recorded paid, a retried payout blocking the wallet's queue.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import pytest

from prizeflow_contracts.errors import PayoutErrorCode
from prizeflow_contracts.events.signer import TonSignatureRequested
from prizeflow_payouts.adapters.ton.driver import TonDriver
from prizeflow_payouts.adapters.ton.freshness import LAGGING
from prizeflow_payouts.adapters.ton.options import TonAsset, TonOptions
from prizeflow_payouts.adapters.ton.toncenter import (
    ChainTx,
    StateRead,
    TonApiError,
    _tx,
    block_ref,
    gen_utime,
    get_method_stack,
    last_block,
    stack_int,
)
from prizeflow_ton.addresses import TonAddress, canonical

WALLET = "0:" + "11" * 32
JETTON_WALLET = "0:" + "33" * 32
MASTER = "0:" + "44" * 32
DEST = "0:" + "22" * 32
DEST_JETTON_WALLET = "0:" + "55" * 32
T0 = 1_800_000_000
VALIDITY = 60
MARGIN = 30


def friendly(raw: str) -> str:
    wc, body = raw.split(":")
    return TonAddress(int(wc), bytes.fromhex(body), None).friendly(bounceable=True)


def b64(hex_hash: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_hash)).decode()


def h(seed: str) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()


class DuplicateKeyError(Exception):
    """What PostgreSQL answers an INSERT hitting ton_messages' primary key."""


LIVE = ("awaiting_signature", "external", "signed")


class Books:
    """`TonBooks` in memory: ton_payouts and ton_messages, each operation's guards as the SQL adapter's
    statements have them (store.py: every update names the state it expects)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.payouts: dict[str, dict[str, Any]] = {}
        self.messages: dict[str, dict[str, Any]] = {}
        self.order: list[str] = []
        self.staged: list[Any] = []

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    def queue(self, key: str, *, asset: str = "TON", amount: int = 10**9) -> None:
        self.payouts[key] = {
            "provider": "ton", "idempotency_key": key, "payout_id": f"po-{key}", "asset": asset, "amount": amount,
            "destination": DEST, "bounce": False, "state": "queued", "messages": 0, "not_before": self.now(),
            "created_at": self.now(), "message_hash": None, "tx_hash": None, "error_code": None, "retryable": None,
            "reported": False, "detail": None,
        }  # fmt: skip
        self.order.append(key)

    def of(self, key: str) -> list[dict[str, Any]]:
        return [m for m in self.messages.values() if m["idempotency_key"] == key]

    def requeue_failed(self, key: str) -> None:
        """The worker creates a retryable failed payout again (store.REQUEUE_FAILED)."""
        payout = self.payouts[key]
        if payout["state"] == "failed" and payout["retryable"]:
            payout.update(state="queued", messages=0, not_before=self.now(), error_code=None, retryable=None)

    def sign(self, request_id: str) -> str:
        """The signer's answer taken: the message hash is a stand-in (the driver only compares it)."""
        message = self.messages[request_id]
        message.update(state="signed", signed_boc="te6-signed", message_hash=h(f"ext/{request_id}"))
        self.payouts[message["idempotency_key"]]["message_hash"] = message["message_hash"]
        return str(message["message_hash"])

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[Books]:
        yield self

    # -- TonBooks ---------------------------------------------------------------------------------------------
    async def lead(self) -> bool:
        return True

    # Rows are handed out as copies, as a database hands them out: the driver writes only through the port.
    async def in_flight(self) -> dict[str, Any] | None:
        return next((dict(m) for m in self.messages.values() if m["state"] in LIVE), None)

    async def next_queued(self) -> dict[str, Any] | None:
        ready = [self.payouts[k] for k in self.order if self.payouts[k]["state"] == "queued"]
        ready = [r for r in ready if r["not_before"] <= self.now()]
        first = min(ready, key=lambda r: (r["not_before"], r["created_at"]), default=None)
        return dict(first) if first is not None else None

    async def last_landed_seqno(self, wallet: str) -> int | None:
        return max((m["seqno"] for m in self.messages.values() if m["state"] == "landed"), default=None)

    async def last_message(self) -> dict[str, Any] | None:
        last = max(self.messages.values(), key=lambda m: (m["created_at"], m["request_id"]), default=None)
        return dict(last) if last is not None else None

    async def expired_at_seqno(self, seqno: int) -> list[dict[str, Any]]:
        found = [m for m in self.messages.values() if m["seqno"] == seqno and m["state"] == "expired"]
        return [dict(m) for m in found if m["message_hash"] is not None]

    async def messages_built(self, key: str) -> int:
        return len(self.of(key))

    async def add_message(self, *, request_id: str, key: str, payout_id: str, wallet: str, seqno: int,
                          valid_until: int, request: str) -> None:  # fmt: skip
        if request_id in self.messages:
            raise DuplicateKeyError(request_id)
        self.messages[request_id] = {
            "request_id": request_id, "provider": "ton", "idempotency_key": key, "payout_id": payout_id,
            "wallet": wallet, "seqno": seqno, "valid_until": valid_until, "request": request, "sign_requests": 1,
            "signed_boc": None, "message_hash": None, "state": "awaiting_signature", "sends": 0, "error_code": None,
            "detail": None, "created_at": self.now(), "updated_at": self.now(),
        }  # fmt: skip
        payout = self.payouts[key]
        if payout["state"] == "queued":
            payout.update(state="sending", messages=payout["messages"] + 1)

    async def sign_again(self, request_id: str) -> int:
        message = self.messages[request_id]
        if message["state"] == "awaiting_signature":
            message["sign_requests"] += 1
        return int(message["sign_requests"])

    async def sent(self, request_id: str, *, seqno_moved: str | None = None) -> None:
        message = self.messages[request_id]
        if seqno_moved is not None and message["state"] == "signed":
            message["error_code"] = seqno_moved
        message["sends"] += 1

    def _settle(self, message: dict[str, Any], fee_tx: tuple[str, int | None], error: Any, paid_from: set[str]) -> None:
        payout = self.payouts[message["idempotency_key"]]  # message_hash as the row handed out had it
        if error is None:
            if payout["state"] in paid_from:
                payout.update(state="paid", message_hash=message["message_hash"], tx_hash=fee_tx[0])
        elif payout["state"] in ("queued", "sending"):
            payout.update(state="failed", error_code=error.code.value, retryable=error.retryable, detail=error.message)

    async def landed(self, row: dict[str, Any], fee_tx: tuple[str, int | None], error: Any) -> None:
        message = self.messages[row["request_id"]]
        if message["state"] in LIVE:
            code, detail = (error.code.value, error.message) if error else (None, None)
            message.update(state="landed", error_code=code, detail=detail)
        self._settle(row, fee_tx, error, {"sending"})

    async def landed_late(self, row: dict[str, Any], fee_tx: tuple[str, int | None], error: Any) -> None:
        message = self.messages[row["request_id"]]
        if message["state"] == "expired":
            code, detail = (error.code.value, error.message) if error else (None, None)
            message.update(state="landed", error_code=code, detail=detail)
        self._settle(row, fee_tx, error, {"queued", "failed"})

    async def expire(self, row: dict[str, Any], why: str, *, code: str, max_messages: int, now: datetime) -> None:
        message = self.messages[row["request_id"]]
        if message["state"] in LIVE:
            message.update(state="expired", error_code=code, detail=why)
        payout = self.payouts[message["idempotency_key"]]
        if payout["messages"] >= max_messages:
            if payout["state"] in ("queued", "sending"):
                detail = f"{payout['messages']} messages expired without landing"
                payout.update(state="failed", error_code=code, retryable=True, detail=detail)
        elif payout["state"] == "sending":
            payout.update(state="queued", not_before=now)

    async def stage(self, events: Sequence[Any]) -> None:
        self.staged.extend(events)


def block_doc(utime: int) -> dict[str, Any]:
    """A masterchain `ton.blockIdExt` (its seqno stands for its time here)."""
    return {"@type": "ton.blockIdExt", "workchain": -1, "shard": "-9223372036854775808", "seqno": utime,
            "root_hash": b64(h(f"root/{utime}")), "file_hash": b64(h(f"file/{utime}"))}  # fmt: skip


class Api:
    """The TON HTTP API: getTransactions in toncenter v2's raw.transaction shape (no `aborted`), paged by lt;
    tryLocateResultTx by the message's source, destination and created_lt; getMasterchainInfo + getBlockHeader and
    runGetMethod's `block_id` (parsed by the real client code) answer the node's time: the clock minus `lag_s`
    (`get_method_lag_s`: the get-method answered by a node lagging more)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.seqno_value = 5
        self.txs: dict[str, list[dict[str, Any]]] = {}  # oldest first
        self.send_error: TonApiError | None = None
        self.node_error: TonApiError | None = None
        self.sent = 0
        self.lt = 1000
        self.lag_s = 0
        self.get_method_lag_s: int | None = None
        self.get_method_names_block = True
        self.created_lt: dict[str, int] = {}  # out-message hash -> its created_lt
        self.read: list[str] = []  # the addresses whose transactions were paged (getTransactions)
        self.located: list[tuple[str, str, int]] = []  # tryLocateResultTx calls

    async def masterchain_time(self) -> int:
        if self.node_error is not None:
            raise self.node_error
        t = int(self.clock()) - self.lag_s
        last = last_block({"@type": "blocks.masterchainInfo", "last": block_doc(t), "init": block_doc(0)})
        return gen_utime({"@type": "blocks.header", "id": block_doc(t), "gen_utime": t}, last)

    async def seqno(self, address: str) -> int:
        return self.seqno_value

    async def seqno_at(self, address: str) -> StateRead[int]:
        lag = self.lag_s if self.get_method_lag_s is None else self.get_method_lag_s
        t = int(self.clock()) - lag
        result: dict[str, Any] = {"@type": "smc.runResult", "gas_used": 0, "exit_code": 0,
                                  "stack": [["num", hex(self.seqno_value)]]}  # fmt: skip
        if self.get_method_names_block:
            result["block_id"] = block_doc(t)
        block = block_ref(result.get("block_id"))
        value = stack_int(get_method_stack(result, "seqno")[0])
        return StateRead(value, t if block is not None else None)

    async def send_boc(self, boc: str) -> str:
        self.sent += 1
        if self.send_error is not None:
            raise self.send_error
        return h(boc)

    def add(self, account: str, utime: int, in_hash: str, source: str, outs: list[tuple[str, str]]) -> None:
        """One transaction of `account`: its in-message hash (hex) and out-messages (hash, raw destination); an
        in-message that an earlier transaction sent shows that out-message's created_lt."""
        self.lt += 10
        for n, (oh, _d) in enumerate(outs):
            self.created_lt[oh] = self.lt + 1 + n
        in_lt = self.created_lt.get(in_hash, 0)
        self.txs.setdefault(account, []).append(
            {
                "@type": "raw.transaction",
                "utime": utime,
                "data": "te6",
                "transaction_id": {"@type": "internal.transactionId", "lt": str(self.lt), "hash": b64(h(str(self.lt)))},
                "fee": "1000",
                "storage_fee": "0",
                "other_fee": "1000",
                "in_msg": {
                    "hash": b64(in_hash),
                    "source": source,
                    "destination": friendly(account),
                    "value": "0",
                    "created_lt": str(in_lt),
                },
                "out_msgs": [
                    {
                        "hash": b64(oh),
                        "source": friendly(account),
                        "destination": friendly(d),
                        "value": "1",
                        "created_lt": str(self.created_lt[oh]),
                    }
                    for oh, d in outs
                ],
            }
        )

    async def transactions(
        self, address: str, *, limit: int = 20, lt: int | None = None, tx_hash: str | None = None
    ) -> list[ChainTx]:
        self.read.append(address)
        docs = list(reversed(self.txs.get(address, [])))
        if lt is not None:
            docs = [d for d in docs if int(d["transaction_id"]["lt"]) <= lt]
        return [_tx(d) for d in docs[: min(limit, 100)]]

    async def locate_result(self, source: str, destination: str, created_lt: int) -> ChainTx | None:
        self.located.append((source, destination, created_lt))
        for d in self.txs.get(canonical(destination), []):
            m = d["in_msg"]
            if int(m["created_lt"]) == created_lt and m["source"] and canonical(m["source"]) == canonical(source):
                return _tx(d)
        return None


class Rig:
    def __init__(self, *, max_messages: int = 5) -> None:
        self.now = float(T0)
        self.api = Api(lambda: self.now)
        self.books = Books(lambda: self.now)
        options = TonOptions(
            name="ton", network="testnet", api_url="http://127.0.0.1:9", api_key=None, wallet=WALLET,
            subwallet_id=698983191, public_key=None, validity_s=VALIDITY, expiry_margin_s=MARGIN,
            max_messages=max_messages, poll_s=1, resign_after_s=10, timeout_s=5,
            assets={
                "TON": TonAsset("TON", 9, None, None, 50_000_000),
                "USDT": TonAsset("USDT", 6, MASTER, JETTON_WALLET, 50_000_000),
            },
            source="payouts",
        )  # fmt: skip
        api: Any = self.api  # toncenter's client in the shape the driver reads
        self.driver = TonDriver(options, api, uow=self.books.begin, clock=lambda: self.now)

    async def build(self, key: str) -> dict[str, Any]:
        assert await self.driver.tick()
        message = next(m for m in self.books.messages.values() if m["state"] == "awaiting_signature")
        assert message["idempotency_key"] == key
        return message

    def land(self, message: dict[str, Any], *, outs: list[tuple[str, str]] | None = None) -> str:
        """Its wallet transaction (consuming the seqno); returns the out-message hash."""
        out_hash = h(f"out/{message['request_id']}")
        dest = JETTON_WALLET if outs is None and '"jetton_wallet":"0:' in message["request"] else DEST
        self.api.add(WALLET, int(self.now), message["message_hash"], "", [(out_hash, dest)] if outs is None else outs)
        self.api.seqno_value = int(message["seqno"]) + 1
        return out_hash


async def test_a_message_older_than_the_latest_page_is_found_by_paging_back() -> None:
    rig = Rig()
    rig.books.queue("a")
    message = await rig.build("a")
    rig.books.sign(message["request_id"])
    rig.land(message)
    for i in range(250):  # deposits to the wallet since: ours is far past the latest 30 (and 100)
        rig.api.add(WALLET, int(rig.now) + 1, h(f"deposit/{i}"), friendly(DEST), [])
    rig.now += VALIDITY + MARGIN + 1
    assert await rig.driver.tick()
    assert rig.books.payouts["a"]["state"] == "paid"
    assert message["state"] == "landed"


async def test_a_send_refused_because_the_seqno_moved_is_never_expired_nor_rebuilt() -> None:
    rig = Rig()
    rig.books.queue("a")
    message = await rig.build("a")
    rig.books.sign(message["request_id"])
    rig.api.send_error = TonApiError(PayoutErrorCode.TX_BAD_SEQ, "exit code 33")
    assert not await rig.driver.tick()
    # Past valid_until, the transaction not indexed yet and a lagging node still showing the old seqno.
    rig.api.send_error = None
    rig.now += VALIDITY + MARGIN + 1
    for _ in range(3):
        assert not await rig.driver.tick()
    assert message["state"] == "signed"
    assert rig.books.payouts["a"]["state"] == "sending"
    assert len(rig.books.messages) == 1


@pytest.mark.parametrize("state", ["awaiting_signature", "external"])
async def test_an_unsent_message_expires_only_if_the_seqno_did_not_move(state: str) -> None:
    rig = Rig()
    rig.books.queue("a")
    message = await rig.build("a")
    message["state"] = state
    rig.now += VALIDITY + MARGIN + 1
    rig.api.seqno_value = int(message["seqno"]) + 1  # an operator's tool may have broadcast it
    for _ in range(3):
        assert not await rig.driver.tick()
    assert message["state"] == state
    assert len(rig.books.messages) == 1
    rig.api.seqno_value = int(message["seqno"])  # nothing consumed it: provably dead, built again
    assert await rig.driver.tick()
    assert message["state"] == "expired"
    assert rig.books.payouts["a"]["state"] == "queued"


async def test_a_jetton_landed_in_our_wallet_waits_for_its_jetton_wallet_never_expires() -> None:
    rig = Rig()
    rig.books.queue("a", asset="USDT", amount=7_000_000)
    message = await rig.build("a")
    rig.books.sign(message["request_id"])
    out_hash = rig.land(message)
    rig.api.seqno_value = int(message["seqno"])  # a lagging node: seqno not moved yet
    rig.now += VALIDITY + MARGIN + 1
    for _ in range(3):
        assert not await rig.driver.tick()
    assert message["state"] == "signed"
    assert rig.books.payouts["a"]["state"] == "sending"
    assert len(rig.books.messages) == 1
    internal = h("internal")
    rig.api.add(JETTON_WALLET, int(rig.now), out_hash, friendly(WALLET), [(internal, DEST_JETTON_WALLET)])
    # The destination's jetton wallet took it: the excess to our wallet, the notification to its owner.
    rig.api.add(DEST_JETTON_WALLET, int(rig.now), internal, friendly(JETTON_WALLET),
                [(h("excess"), WALLET), (h("notification"), DEST)])  # fmt: skip
    assert await rig.driver.tick()
    assert rig.books.payouts["a"]["state"] == "paid"


async def test_a_jetton_whose_destination_jetton_wallet_transaction_is_not_found_yet_waits() -> None:
    """Our jetton wallet sent the internal_transfer on; the destination's jetton wallet's transaction is not found
    (yet): landed, outcome unknown — not paid, not failed, never expired nor rebuilt, the destination's history
    never paged (it is located by the message's created_lt)."""
    rig = Rig()
    rig.books.queue("a", asset="USDT", amount=7_000_000)
    rig.books.queue("b")
    message = await rig.build("a")
    rig.books.sign(message["request_id"])
    out_hash = rig.land(message)
    internal = h("internal")
    rig.api.add(JETTON_WALLET, int(rig.now), out_hash, friendly(WALLET), [(internal, DEST_JETTON_WALLET)])
    rig.now += VALIDITY + MARGIN + 1
    for _ in range(3):
        assert not await rig.driver.tick()
    assert message["state"] == "signed"
    assert rig.books.payouts["a"]["state"] == "sending"
    assert rig.books.payouts["b"]["state"] == "queued"  # nothing built on top of a message whose outcome is open
    assert len(rig.books.messages) == 1
    created_lt = int(rig.api.created_lt[internal])
    assert rig.api.located[-1] == (JETTON_WALLET, friendly(DEST_JETTON_WALLET), created_lt)
    assert DEST_JETTON_WALLET not in rig.api.read
    rig.api.add(DEST_JETTON_WALLET, int(rig.now), internal, friendly(JETTON_WALLET),
                [(h("excess"), WALLET), (h("notification"), DEST)])  # fmt: skip
    assert await rig.driver.tick()
    assert rig.books.payouts["a"]["state"] == "paid"
    assert message["state"] == "landed"


async def test_a_bounced_jetton_is_read_from_the_out_messages_and_never_recorded_paid() -> None:
    rig = Rig()
    rig.books.queue("a", asset="USDT", amount=7_000_000)
    message = await rig.build("a")
    rig.books.sign(message["request_id"])
    out_hash = rig.land(message)
    # toncenter v2: no `aborted`; the jetton wallet's only out-message is the bounce back to our wallet.
    rig.api.add(JETTON_WALLET, int(rig.now), out_hash, friendly(WALLET), [(h("bounce"), WALLET)])
    assert await rig.driver.tick()
    payout = rig.books.payouts["a"]
    assert payout["state"] == "failed"
    assert payout["error_code"] == PayoutErrorCode.INSUFFICIENT_PROVIDER_FUNDS.value
    assert message["state"] == "landed"


async def test_a_payout_retried_after_its_messages_expired_gets_new_messages_and_the_queue_moves() -> None:
    rig = Rig(max_messages=1)
    rig.books.queue("a")
    rig.books.queue("b")
    first = await rig.build("a")
    rig.books.sign(first["request_id"])
    rig.now += VALIDITY + MARGIN + 1
    assert await rig.driver.tick()  # dead (seqno unmoved): max_messages reached, failed retryable
    assert rig.books.payouts["a"]["state"] == "failed"
    rig.books.requeue_failed("a")  # the worker creates it again
    rig.books.payouts["a"]["not_before"] = rig.books.payouts["b"]["not_before"].replace(year=2000)
    again = await rig.build("a")  # same payout, same seqno, count reset: still a new request id
    assert again["request_id"] != first["request_id"]
    assert TonSignatureRequested.model_validate_json(again["request"]).seqno == first["seqno"]
    rig.books.sign(again["request_id"])
    rig.land(again)
    assert await rig.driver.tick()
    assert rig.books.payouts["a"]["state"] == "paid"
    assert (await rig.build("b"))["idempotency_key"] == "b"


async def test_a_message_that_landed_while_the_api_lagged_is_recorded_never_paid_again() -> None:
    """The API node answering us lags past valid_until + margin: neither the transaction nor the moved seqno shows,
    so the message is expired and the payout queued again. Once the node catches up, the wallet's seqno is past
    that message's: it landed. The payout is recorded paid from its transaction, never sent under the next seqno."""
    rig = Rig()
    rig.books.queue("a")
    message = await rig.build("a")
    rig.books.sign(message["request_id"])
    assert not await rig.driver.tick()  # sent
    seqno = rig.api.seqno_value
    rig.land(message)  # it lands on chain...
    indexed = rig.api.txs.pop(WALLET)  # ...but the node we read has neither the transaction
    rig.api.seqno_value = seqno  # nor the seqno it consumed
    rig.now += VALIDITY + MARGIN + 1
    assert await rig.driver.tick()
    assert message["state"] == "expired"  # on the lagging node's word
    rig.api.txs[WALLET] = indexed  # the node catches up
    rig.api.seqno_value = seqno + 1
    for _ in range(3):
        await rig.driver.tick()
    assert len(rig.books.messages) == 1, "a second message was built for a payout whose first one landed"
    assert rig.books.payouts["a"]["state"] == "paid"
    assert message["state"] == "landed"


async def test_a_message_rebuilt_on_a_lagging_node_is_closed_once_the_first_is_found_landed() -> None:
    """The node still lags when the payout is built again: the new message gets the same (consumed) seqno, can never
    land, and the wallet refuses it (exit code 33). Once the first message's transaction shows, it is recorded
    landed (the payout paid) and the stuck one closed: the wallet's queue moves on, nothing is paid twice."""
    rig = Rig()
    rig.books.queue("a")
    rig.books.queue("b")
    first = await rig.build("a")
    rig.books.sign(first["request_id"])
    assert not await rig.driver.tick()
    seqno = rig.api.seqno_value
    rig.land(first)
    indexed = rig.api.txs.pop(WALLET)
    rig.api.seqno_value = seqno
    rig.now += VALIDITY + MARGIN + 1
    assert await rig.driver.tick()  # expired on the lagging node's word
    second = await rig.build("a")  # still lagging: the same seqno, which the first message consumed
    assert second["seqno"] == first["seqno"]
    rig.books.sign(second["request_id"])
    rig.api.txs[WALLET] = indexed  # the node catches up; the wallet refuses the second message
    rig.api.seqno_value = seqno + 1
    rig.api.send_error = TonApiError(PayoutErrorCode.TX_BAD_SEQ, "exit code 33")
    assert not await rig.driver.tick()
    rig.api.send_error = None
    rig.now += VALIDITY + MARGIN + 1
    assert await rig.driver.tick()
    assert first["state"] == "landed"
    assert second["state"] == "expired"
    assert rig.books.payouts["a"]["state"] == "paid"
    assert (await rig.build("b"))["seqno"] == seqno + 1  # the queue moves on
    assert [m["idempotency_key"] for m in rig.books.messages.values()] == ["a", "a", "b"]


async def test_a_seqno_moved_past_our_last_message_without_its_transaction_stops_building() -> None:
    """The wallet's seqno moved past our last message (expired here) and its transaction is not found: it may have
    landed (the index lags) or someone else used the wallet. Nothing new is built until it is resolved."""
    rig = Rig()
    rig.books.queue("a")
    rig.books.queue("b")
    message = await rig.build("a")
    rig.books.sign(message["request_id"])
    rig.now += VALIDITY + MARGIN + 1
    assert await rig.driver.tick()
    assert message["state"] == "expired"
    rig.api.seqno_value = int(message["seqno"]) + 1
    for _ in range(3):
        assert not await rig.driver.tick()
    assert len(rig.books.messages) == 1
    assert rig.books.payouts["a"]["state"] == "queued"


async def test_a_message_landed_just_before_valid_until_is_never_rebuilt_while_the_node_lags(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The message lands a second before valid_until; the API node answers from a state older than that (it lags
    the chain by more than the margin): no transaction, the old seqno, and a masterchain block from before the
    landing. Its time proves nothing past valid_until + margin: the message waits, never expired nor rebuilt. Once
    the node catches up it is recorded landed, the payout paid once."""
    rig = Rig()
    rig.books.queue("a")
    rig.books.queue("b")
    message = await rig.build("a")
    rig.books.sign(message["request_id"])
    assert not await rig.driver.tick()  # sent
    seqno = rig.api.seqno_value
    rig.now = float(message["valid_until"] - 1)
    rig.land(message)  # it lands on chain just before valid_until...
    indexed = rig.api.txs.pop(WALLET)  # ...but the node we read is behind by more than the margin:
    rig.api.seqno_value = seqno  # neither its transaction nor the seqno it consumed,
    rig.api.lag_s = MARGIN + 20  # and its latest block is that old
    rig.now = float(message["valid_until"] + MARGIN + 1)
    with caplog.at_level("WARNING"):
        for _ in range(3):
            assert not await rig.driver.tick()
            rig.now += 1
    assert message["state"] == "signed", "expired on a lagging node's word"
    assert rig.books.payouts["a"]["state"] == "sending"
    assert len(rig.books.messages) == 1
    lagging = [r for r in caplog.records if r.getMessage() == LAGGING]
    assert len(lagging) == 1  # once per message
    assert lagging[0].__dict__["lag_s"] == MARGIN + 20
    assert lagging[0].__dict__["request_id"] == message["request_id"]
    rig.api.lag_s = 0  # the node catches up
    rig.api.txs[WALLET] = indexed
    rig.api.seqno_value = seqno + 1
    assert await rig.driver.tick()
    assert message["state"] == "landed"
    assert rig.books.payouts["a"]["state"] == "paid"
    assert (await rig.build("b"))["seqno"] == seqno + 1
    assert [m["idempotency_key"] for m in rig.books.messages.values()] == ["a", "b"]


async def test_a_message_expires_once_the_node_has_seen_past_valid_until_and_margin() -> None:
    rig = Rig()
    rig.books.queue("a")
    message = await rig.build("a")
    rig.books.sign(message["request_id"])
    rig.api.lag_s = 10  # behind, but less than needed once enough time passed
    rig.now = float(message["valid_until"] + MARGIN + 5)
    assert not await rig.driver.tick()  # the node's latest block: valid_until + margin - 5
    assert message["state"] == "signed"
    rig.now += 5
    assert await rig.driver.tick()  # now valid_until + margin: dead, requeued
    assert message["state"] == "expired"
    assert rig.books.payouts["a"]["state"] == "queued"


async def test_no_node_time_or_a_stale_get_method_block_means_no_verdict() -> None:
    """Fail closed: the masterchain time cannot be read, or the seqno answer names a block from before the
    deadline (a load-balanced API answering it from a lagging backend): never expired."""
    rig = Rig()
    rig.books.queue("a")
    message = await rig.build("a")
    rig.books.sign(message["request_id"])
    rig.now = float(message["valid_until"] + MARGIN + 60)
    rig.api.node_error = TonApiError(PayoutErrorCode.PROVIDER_UNAVAILABLE, "TON API 503")
    assert not await rig.driver.tick()
    rig.api.node_error = None
    rig.api.get_method_lag_s = 61
    assert not await rig.driver.tick()
    assert message["state"] == "signed"
    rig.api.get_method_names_block = False  # no block named: the masterchain time read before it is relied on
    assert await rig.driver.tick()
    assert message["state"] == "expired"


@pytest.mark.parametrize("state", ["awaiting_signature", "external"])
async def test_an_unsent_message_is_not_expired_while_the_node_lags(state: str) -> None:
    rig = Rig()
    rig.books.queue("a")
    message = await rig.build("a")
    message["state"] = state
    rig.now += VALIDITY + MARGIN + 1
    rig.api.lag_s = MARGIN + 10  # an operator's tool may have broadcast it: the node cannot tell yet
    for _ in range(3):
        assert not await rig.driver.tick()
    assert message["state"] == state
    rig.api.lag_s = 0
    assert await rig.driver.tick()
    assert message["state"] == "expired"


async def test_a_jetton_bounced_by_the_destinations_jetton_wallet_is_never_recorded_paid() -> None:
    rig = Rig()
    rig.books.queue("a", asset="USDT", amount=7_000_000)
    message = await rig.build("a")
    rig.books.sign(message["request_id"])
    out_hash = rig.land(message)
    internal = h("internal")
    rig.api.add(JETTON_WALLET, int(rig.now), out_hash, friendly(WALLET), [(internal, DEST_JETTON_WALLET)])
    # The destination's jetton wallet refuses the internal_transfer: the jettons bounce back to our jetton wallet.
    rig.api.add(DEST_JETTON_WALLET, int(rig.now), internal, friendly(JETTON_WALLET), [(h("bounce"), JETTON_WALLET)])
    await rig.driver.tick()
    assert rig.books.payouts["a"]["state"] != "paid"
    # Failed terminally (sending again to a refusing wallet bounces again); the jettons are back in ours.
    payout = rig.books.payouts["a"]
    assert (payout["state"], payout["error_code"], payout["retryable"]) == (
        "failed",
        PayoutErrorCode.DESTINATION_BLOCKED.value,
        False,
    )
    assert (message["state"], message["error_code"]) == ("landed", PayoutErrorCode.DESTINATION_BLOCKED.value)
    assert len(rig.books.messages) == 1
    assert DEST_JETTON_WALLET not in rig.api.read  # located, never paged


async def test_the_driver_says_whether_its_next_pass_is_a_poll_or_an_idle_pause() -> None:
    """`waiting` after a pass: a message in flight (awaiting its signature, or sent and not yet seen landed) is polled
    every `poll_s`; with nothing in flight and nothing queued the pass is idle (the scheduler's pause doubles)."""
    rig = Rig()
    assert not await rig.driver.tick()
    assert not _waiting(rig)  # nothing queued, nothing in flight
    rig.books.queue("a")
    message = await rig.build("a")
    assert _waiting(rig)
    assert not await rig.driver.tick()  # awaiting its signature: nothing changed, but something to watch
    assert _waiting(rig)
    rig.books.sign(message["request_id"])
    rig.land(message)
    rig.now += 1
    while await rig.driver.tick():  # sent, then seen landed
        pass
    assert rig.books.payouts["a"]["state"] == "paid"
    assert not _waiting(rig)


def _waiting(rig: Rig) -> bool:
    return rig.driver.waiting
