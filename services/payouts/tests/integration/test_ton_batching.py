"""The highload wallet v3 lane's decisions on real PostgreSQL, against the TON emulator's chain in-process (real
highload semantics: signature, created_at window, query id replay, two transactions per batch) with a clock the
test moves, and the signer played by a local key. Every scenario ends with what the chain paid: each payout once.

What must never happen: a payout paid twice (a message rebuilt while one with its payouts could still land), a
payout recorded paid that the batch transaction did not pay, an innocent payout failed for its neighbour.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer
from nacl.signing import SigningKey
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from prizeflow_contracts.envelope import new_event
from prizeflow_contracts.errors import PayoutErrorCode
from prizeflow_contracts.events.signer import (
    SignatureRefusalCode,
    SignatureRefused,
    TonBatchSignatureRequested,
    TonBatchSigned,
)
from prizeflow_contracts.money import Money
from prizeflow_contracts.providers import (
    DestinationType,
    PayoutDestination,
    PayoutInstruction,
    PayoutLookup,
    ProviderPayoutStatus,
)
from prizeflow_payouts.adapters.ton.factory import build_ton_wallet
from prizeflow_payouts.adapters.ton.freshness import LAGGING
from prizeflow_payouts.adapters.ton.options import parse_options
from prizeflow_payouts.adapters.ton.provider import TonWalletProvider
from prizeflow_payouts.adapters.ton.statement import shares_of
from prizeflow_payouts.adapters.ton.toncenter import (
    ChainTx,
    StateRead,
    TonApiError,
    ToncenterClient,
    _tx,
    api_error,
    block_ref,
    gen_utime,
    get_method_stack,
    last_block,
    stack_int,
)
from prizeflow_payouts.application.ports import ExternalSigningError
from prizeflow_payouts.provider_spec import ProviderContext, ProviderSpec
from prizeflow_runtime.db import create_engine
from prizeflow_ton.addresses import TonAddress, canonical
from prizeflow_ton.highload import QueryId, external_message, parse_inner, signing_hash
from prizeflow_ton.messages import Transfer, TransferKind, WalletMessage, from_b64, message_hash, to_b64
from prizeflow_ton.messages import external_message as v4_external_message
from prizeflow_ton.messages import signing_hash as v4_signing_hash
from prizeflow_ton_emulator.chain import ApiError, Chain
from prizeflow_ton_emulator.server import create_app
from prizeflow_ton_emulator.settings import EmulatorSettings

pytestmark = pytest.mark.integration

TON = 10**9
TIMEOUT = 60
MARGIN = 5
C = PayoutErrorCode


@dataclass
class Clock:
    now: float = field(default_factory=lambda: float(int(time.time())))

    def __call__(self) -> float:
        return self.now


class ChainClient:
    """The toncenter client's methods over the in-process chain (answers parsed by the real client code)."""

    def __init__(self, chain: Chain) -> None:
        self.chain = chain
        self.lose_answers = 0  # accepted, then the answer is lost
        self.hidden: set[str] = set()  # accounts whose transactions the API does not show yet (index lag)
        self.sends = 0
        self.tamper: Any = None  # a function rewriting the API's transaction documents
        self.located = 0  # tryLocateResultTx calls

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def send_boc(self, boc: str) -> str:
        self.sends += 1
        try:
            h = self.chain.send_boc(boc)
        except ApiError as err:
            raise api_error(err.status, err.message) from None
        if self.lose_answers:
            self.lose_answers -= 1
            raise TonApiError(C.TIMEOUT_UNKNOWN_OUTCOME, "TON API 502 after sending", status=502)
        return h

    async def transactions(
        self, address: str, *, limit: int = 20, lt: int | None = None, tx_hash: str | None = None
    ) -> list[ChainTx]:
        if address in self.hidden:
            return []
        docs = self.chain.get_transactions(address, limit=limit, lt=lt)
        return [_tx(self.tamper(d) if self.tamper else d) for d in docs]

    async def locate_result(self, source: str, destination: str, created_lt: int) -> ChainTx | None:
        self.located += 1
        if canonical(destination) in self.hidden:
            return None
        try:
            return _tx(self.chain.locate_result(source, destination, created_lt))
        except ApiError as err:
            if err.status == 404:
                return None
            raise api_error(err.status, err.message) from None

    async def processed(self, address: str, query_id: int) -> bool:
        return (await self.processed_at(address, query_id)).value

    async def processed_at(self, address: str, query_id: int) -> StateRead[bool]:
        try:
            result = self.chain.run_get_method(address, "processed?", [query_id, 0])
        except ApiError as err:
            raise api_error(err.status, err.message) from None
        block = block_ref(result.get("block_id"))
        value = stack_int(get_method_stack(result, "processed?")[0]) != 0
        return StateRead(value, await self.block_time(block) if block is not None else None)

    async def block_time(self, block: Any) -> int:
        try:
            header = self.chain.block_header(block.workchain, block.shard, block.seqno, block.root_hash)
        except ApiError as err:
            raise api_error(err.status, err.message) from None
        return gen_utime(header, block)

    async def masterchain_time(self) -> int:
        return await self.block_time(last_block(self.chain.masterchain_info()))

    async def seqno(self, address: str) -> int:
        raise TonApiError(C.PROVIDER_UNAVAILABLE, "a highload wallet has no seqno")

    async def seqno_at(self, address: str) -> StateRead[int]:
        raise TonApiError(C.PROVIDER_UNAVAILABLE, "a highload wallet has no seqno")


@dataclass
class Rig:
    provider: TonWalletProvider
    chain: Chain
    client: ChainClient
    clock: Clock
    key: SigningKey
    engine: AsyncEngine
    wallet: str
    master: str
    jetton_wallet: str
    n: int = 0

    async def pay(self, asset: str, amount: int, destination: str | None = None) -> tuple[str, str]:
        """A payout queued with the provider: (idempotency key, raw destination)."""
        self.n += 1
        dest = destination or TonAddress(0, uuid.uuid4().bytes * 2, None).raw
        key = f"k-{uuid.uuid4().hex[:10]}"
        result = await self.provider.create_payout(
            PayoutInstruction(
                payout_id=f"po-{key}",
                idempotency_key=key,
                amount=Money(asset=asset, amount=amount),
                destination=PayoutDestination(type=DestinationType.TON_WALLET, address=dest),
            )
        )
        assert result.status is ProviderPayoutStatus.PENDING, result
        return key, dest

    async def rows(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        async with self.engine.connect() as conn:
            return [dict(r) for r in (await conn.execute(text(sql), params)).mappings().all()]

    async def state(self, key: str) -> str:
        return str((await self.rows("SELECT state FROM ton_payouts WHERE idempotency_key = :k", k=key))[0]["state"])

    async def payout(self, key: str) -> dict[str, Any]:
        return (await self.rows("SELECT * FROM ton_payouts WHERE idempotency_key = :k", k=key))[0]

    async def waiting(self) -> list[TonBatchSignatureRequested]:
        rows = await self.rows("SELECT request FROM ton_batches WHERE state = 'awaiting_signature' ORDER BY created_at")
        return [TonBatchSignatureRequested.model_validate_json(r["request"]) for r in rows]

    async def answer(self, payload: Any) -> None:
        env = new_event(payload, source="/prizeflow/signer", correlation_id="test")
        async with self.engine.begin() as conn, AsyncSession(bind=conn) as session:
            await self.provider.on_signer_results(session, [env])

    async def sign(self, request: TonBatchSignatureRequested) -> str:
        batch = parse_inner(from_b64(request.unsigned_inner_boc), wallet=request.wallet)
        ext = external_message(batch, self.key.sign(signing_hash(batch)).signature)
        await self.answer(
            TonBatchSigned(
                request_id=request.request_id,
                payout_ids=request.payout_ids,
                signed_boc=to_b64(ext),
                message_hash=message_hash(ext),
                signed_by=bytes(self.key.verify_key).hex(),
            )
        )
        return message_hash(ext)

    async def sign_all(self) -> list[TonBatchSignatureRequested]:
        waiting = await self.waiting()
        for request in waiting:
            await self.sign(request)
        return waiting

    async def refuse(self, request: TonBatchSignatureRequested, code: SignatureRefusalCode, **kw: Any) -> None:
        await self.answer(
            SignatureRefused(request_id=request.request_id, payout_ids=request.payout_ids, code=code, detail="no", **kw)
        )

    def block(self) -> None:
        self.chain.produce_block()

    async def settle(self, rounds: int = 3) -> None:
        """Drive, include, drive: enough passes and blocks for a signed batch to land and be read."""
        for _ in range(rounds):
            await self.provider.tick()
            self.block()
        await self.provider.tick()

    def advance(self, seconds: float) -> None:
        self.clock.now += seconds

    def paid(self, destination: str) -> dict[str, int]:
        return self.chain.transfers_to(self.wallet, destination)


@pytest.fixture
async def rig(db: str) -> AsyncIterator[Rig]:
    rig = await make_rig(db)
    yield rig
    await rig.engine.dispose()


async def make_rig(db: str, **options: Any) -> Rig:
    key = SigningKey.generate()
    clock = Clock()
    wallet = "0:" + uuid.uuid4().hex * 2
    master, jetton_wallet = "0:" + uuid.uuid4().hex * 2, "0:" + uuid.uuid4().hex * 2
    chain = Chain(clock=clock, rng=random.Random(3))
    chain.add_highload_wallet(wallet, bytes(key.verify_key), balance=1_000 * TON, subwallet_id=0x10AD, timeout=TIMEOUT)
    chain.add_jetton(master=master, owner=wallet, jetton_wallet=jetton_wallet, balance=10**12)
    spec = ProviderSpec.model_validate(
        {
            "name": "ton",
            "type": "ton_wallet",
            "assets": ["TON", "USDT"],
            "destination_types": ["ton_wallet"],
            "options": {
                "network": "testnet",
                "api_url": "http://127.0.0.1:9",
                "wallet": wallet,
                "public_key": bytes(key.verify_key).hex(),
                "wallet_version": "highload_v3",
                "highload_timeout_s": TIMEOUT,
                "expiry_margin_s": MARGIN,
                "created_at_lag_s": 1,
                "batch_size": 10,
                "batch_linger_s": 0,
                "max_batches_in_flight": 4,
                "resign_after_s": 600,
                "assets": {
                    "TON": {"decimals": 9},
                    "USDT": {"decimals": 6, "jetton_master": master, "jetton_wallet": jetton_wallet},
                },
                **options,
            },
        }
    )
    context = ProviderContext(live_execution=False, database_url=db, provider_timeout_s=10)
    client = ChainClient(chain)
    build_ton_wallet(spec, context)  # the entry is one the factory accepts
    provider = TonWalletProvider(
        parse_options(spec, context),
        client=client,  # type: ignore[arg-type]
        clock=clock,
    )
    engine = create_engine(db, pool_size=2)
    provider.bind_database(engine)
    return Rig(provider, chain, client, clock, key, engine, wallet, master, jetton_wallet)


async def test_a_mixed_batch_of_ton_and_usdt_is_paid_exactly_once(rig: Rig) -> None:
    payouts = [await rig.pay("TON", (i + 1) * TON) for i in range(3)]
    payouts += [await rig.pay("USDT", 5_000_000 + i) for i in range(2)]
    same_destination = await rig.pay("TON", 7 * TON, destination=payouts[0][1])  # goes in the next batch
    assert await rig.provider.tick()
    waiting = await rig.waiting()
    assert [len(r.payout_ids) for r in waiting] == [5, 1]  # one signature request per batch, each naming all
    assert [i.asset for i in waiting[0].intents] == ["TON", "TON", "TON", "USDT", "USDT"]
    hashes = [await rig.sign(r) for r in waiting]
    await rig.provider.tick()  # sends both
    rig.block()  # the external transactions: each sends its internal transfer to the wallet itself
    await rig.provider.tick()
    assert {await rig.state(k) for k, _ in payouts} == {"sending"}  # landed, the internal transaction not yet seen
    await rig.settle()
    for (key, dest), asset in list(zip(payouts, ["TON"] * 3 + ["USDT"] * 2, strict=True))[1:]:
        row = await rig.payout(key)
        assert row["state"] == "paid", row
        assert row["message_hash"] == hashes[0]
        assert rig.paid(dest) == ({"ton": 1, "jetton": 0} if asset == "TON" else {"ton": 0, "jetton": 1})
    assert (await rig.payout(payouts[0][0]))["message_hash"] == hashes[0]
    assert (await rig.payout(same_destination[0]))["state"] == "paid"
    assert rig.paid(payouts[0][1]) == {"ton": 2, "jetton": 0}  # two payouts to one address, two batches
    assert rig.chain.jetton_balance(rig.master, payouts[3][1]) == 5_000_000
    result = await rig.provider.sync_status(PayoutLookup(payout_id="x", idempotency_key=payouts[3][0]))
    assert (result.status, result.provider_ref) == (ProviderPayoutStatus.PAID, hashes[0])
    items = await rig.rows("SELECT state, out_msg_hash FROM ton_batch_items")
    assert {i["state"] for i in items} == {"paid"}
    assert len({i["out_msg_hash"] for i in items}) == 6
    await rig.settle()  # nothing more happens
    assert rig.paid(payouts[1][1]) == {"ton": 1, "jetton": 0}


async def test_a_lost_send_answer_resends_the_same_message_and_pays_once(rig: Rig) -> None:
    key, dest = await rig.pay("TON", TON)
    await rig.provider.tick()
    await rig.sign_all()
    rig.client.lose_answers = 1
    await rig.provider.tick()  # accepted by the chain, the answer lost
    await rig.provider.tick()  # the same message again: one mempool entry
    await rig.settle()
    assert await rig.state(key) == "paid"
    assert rig.paid(dest) == {"ton": 1, "jetton": 0}
    assert (await rig.rows("SELECT count(*) AS n FROM ton_batches"))[0]["n"] == 1


async def test_a_message_that_expires_is_rebuilt_with_a_new_query_id_and_pays_once(rig: Rig) -> None:
    key, dest = await rig.pay("TON", 2 * TON)
    other, other_dest = await rig.pay("USDT", 3_000_000)
    await rig.provider.tick()
    (first,) = await rig.sign_all()
    rig.chain.faults.update({"not_included_rate": 1.0})
    await rig.provider.tick()  # accepted, never to be included
    rig.block()
    rig.chain.faults.update({"not_included_rate": 0.0})
    rig.advance(TIMEOUT - 2)
    await rig.provider.tick()  # still able to land: resent, never expired nor rebuilt
    assert (await rig.rows("SELECT state FROM ton_batches"))[0]["state"] == "signed"
    rig.advance(MARGIN + 2)  # past created_at + timeout + margin
    rig.block()  # the chain drops it: it can never land
    assert await rig.provider.tick()
    batches = await rig.rows("SELECT request_id, state, query_id FROM ton_batches ORDER BY created_at")
    assert next(b["state"] for b in batches) == "expired"
    await rig.provider.tick()  # requeued in that pass's transaction: built in the next
    (second,) = await rig.sign_all()
    assert second.query_id != first.query_id
    assert second.payout_ids == first.payout_ids
    await rig.settle()
    assert (await rig.state(key), await rig.state(other)) == ("paid", "paid")
    assert rig.paid(dest) == {"ton": 1, "jetton": 0}
    assert rig.paid(other_dest) == {"ton": 0, "jetton": 1}
    assert (await rig.payout(key))["messages"] == 2


async def test_a_partial_failure_fails_only_the_transfers_that_could_not_be_paid(rig: Rig) -> None:
    rig.chain.balances[rig.wallet] = 4 * TON
    rig.chain.add_jetton(master=rig.master, owner=rig.wallet, jetton_wallet=rig.jetton_wallet, balance=1_000_000)
    small, small_dest = await rig.pay("TON", TON)
    big, big_dest = await rig.pay("TON", 50 * TON)  # more than the wallet holds: skipped alone
    usdt_ok, usdt_ok_dest = await rig.pay("USDT", 600_000)
    usdt_short, usdt_short_dest = await rig.pay("USDT", 600_000)  # our jetton wallet bounces it
    last, last_dest = await rig.pay("TON", TON)
    await rig.provider.tick()
    await rig.sign_all()
    await rig.settle()
    assert await rig.state(small) == await rig.state(last) == await rig.state(usdt_ok) == "paid"
    for key in (big, usdt_short):
        row = await rig.payout(key)
        assert (row["state"], row["error_code"], row["retryable"]) == (
            "failed",
            C.INSUFFICIENT_PROVIDER_FUNDS.value,
            True,
        ), row
    assert rig.paid(big_dest) == {"ton": 0, "jetton": 0}
    assert rig.chain.jetton_balance(rig.master, usdt_short_dest) == 0
    # The batch's two transactions' fees are split over the four transfers its internal transaction carried (the
    # bounced jetton's too: the chain charged for it), none on the skipped one; a paid payout reports its share.
    items = await rig.rows(
        "SELECT i.idempotency_key, i.fee, b.external_fee, b.internal_fee FROM ton_batch_items i"
        " JOIN ton_batches b ON b.request_id = i.request_id ORDER BY i.position"
    )
    fees = {i["idempotency_key"]: i["fee"] for i in items}
    assert fees[big] is None
    charged = int(items[0]["external_fee"]) + int(items[0]["internal_fee"])
    assert charged > 0
    assert sum(f for f in fees.values() if f is not None) == charged
    carried = [fees[k] for k in (small, usdt_ok, usdt_short, last)]
    assert carried == shares_of((int(items[0]["external_fee"]), int(items[0]["internal_fee"])), 4)
    for key in (small, usdt_ok, last):
        assert (await rig.payout(key))["fee"] == fees[key]
        result = await rig.provider.sync_status(PayoutLookup(payout_id="x", idempotency_key=key))
        assert result.fee == Money(asset="TON", amount=fees[key])
    assert (await rig.payout(usdt_short))["fee"] is None  # failed: nothing reported
    # Funded, the failed ones are created again (the worker's retry, same idempotency key): paid once each.
    rig.chain.balances[rig.wallet] = 100 * TON
    rig.chain.add_jetton(master=rig.master, owner=rig.wallet, jetton_wallet=rig.jetton_wallet, balance=10**9)
    for key, dest, asset, amount in ((big, big_dest, "TON", 50 * TON), (usdt_short, usdt_short_dest, "USDT", 600_000)):
        again = await rig.provider.create_payout(
            PayoutInstruction(
                payout_id=f"po-{key}",
                idempotency_key=key,
                amount=Money(asset=asset, amount=amount),
                destination=PayoutDestination(type=DestinationType.TON_WALLET, address=dest),
            )
        )
        assert again.status in (ProviderPayoutStatus.PENDING, ProviderPayoutStatus.SUBMITTED)
    await rig.provider.tick()
    await rig.sign_all()
    await rig.settle()
    assert await rig.state(big) == await rig.state(usdt_short) == "paid"
    assert rig.paid(big_dest) == {"ton": 1, "jetton": 0}
    assert rig.paid(small_dest) == rig.paid(last_dest) == {"ton": 1, "jetton": 0}
    assert rig.chain.jetton_balance(rig.master, usdt_short_dest) == 600_000
    assert rig.paid(usdt_ok_dest) == {"ton": 0, "jetton": 1}


async def test_a_jetton_the_destination_s_jetton_wallet_bounces_fails_alone_and_terminally(rig: Rig) -> None:
    """A frozen destination jetton wallet refuses the internal_transfer our jetton wallet sent it and bounces the
    jettons back: that payout fails `destination_blocked` (never retried, never paid), the player credited
    nothing, our jetton balance back; its neighbours in the same batch are paid."""
    start = rig.chain.jetton_balance(rig.master, rig.wallet)
    frozen_dest = TonAddress(0, uuid.uuid4().bytes * 2, None).raw
    rig.chain.faults.update({"frozen_jetton_owners": [frozen_dest]})
    frozen, _ = await rig.pay("USDT", 700_000, destination=frozen_dest)
    usdt, usdt_dest = await rig.pay("USDT", 600_000)
    ton, ton_dest = await rig.pay("TON", TON)
    await rig.provider.tick()
    (request,) = await rig.sign_all()
    assert len(request.payout_ids) == 3
    await rig.settle()
    row = await rig.payout(frozen)
    assert (row["state"], row["error_code"], row["retryable"]) == ("failed", C.DESTINATION_BLOCKED.value, False), row
    assert (await rig.state(usdt), await rig.state(ton)) == ("paid", "paid")
    assert rig.chain.jetton_balance(rig.master, frozen_dest) == 0
    assert rig.paid(frozen_dest) == {"ton": 0, "jetton": 0}
    assert rig.chain.jetton_balance(rig.master, usdt_dest) == 600_000
    assert rig.chain.jetton_balance(rig.master, rig.wallet) == start - 600_000  # the bounced 700_000 came back
    assert rig.paid(usdt_dest) == {"ton": 0, "jetton": 1}
    assert rig.paid(ton_dest) == {"ton": 1, "jetton": 0}
    items = {i["payout_id"]: i for i in await rig.rows("SELECT payout_id, state, error_code FROM ton_batch_items")}
    assert (items[f"po-{frozen}"]["state"], items[f"po-{frozen}"]["error_code"]) == ("failed", "destination_blocked")
    result = await rig.provider.sync_status(PayoutLookup(payout_id="x", idempotency_key=frozen))
    assert result.status is ProviderPayoutStatus.FAILED
    assert result.error is not None
    assert (result.error.code, result.error.retryable) == (C.DESTINATION_BLOCKED, False)


async def test_a_jetton_waits_while_the_destination_s_jetton_wallet_transaction_is_not_found(rig: Rig) -> None:
    """The batch and our jetton wallet's transaction are seen, the destination jetton wallet's is not (the index
    lags): the payout stays in flight — not paid, not failed, the batch never expired — until it is found."""
    key, dest = await rig.pay("USDT", 500_000)
    dest_jetton_wallet = rig.chain.jetton_wallet_of(rig.master, dest)
    rig.client.hidden.add(dest_jetton_wallet)
    await rig.provider.tick()
    await rig.sign_all()
    await rig.settle()
    rig.advance(TIMEOUT + MARGIN + 5)  # past the batch's deadline: landed, so never expired
    await rig.settle()
    assert await rig.state(key) == "sending"
    assert [b["state"] for b in await rig.rows("SELECT state FROM ton_batches")] == ["landed"]
    assert [i["state"] for i in await rig.rows("SELECT state FROM ton_batch_items")] == ["in_flight"]
    assert rig.client.located >= 2
    rig.client.hidden.discard(dest_jetton_wallet)
    await rig.provider.tick()
    assert await rig.state(key) == "paid"
    assert rig.paid(dest) == {"ton": 0, "jetton": 1}
    assert (await rig.rows("SELECT count(*) AS n FROM ton_batches"))[0]["n"] == 1


async def test_an_out_message_that_cannot_be_read_stops_concluding_a_skip(rig: Rig) -> None:
    """The wallet skipped one transfer, but the batch transaction also shows an out-message to our jetton wallet
    whose body cannot be read: the skipped payout could be that message, so it is not failed (never retried, never
    paid twice); the ones whose out-messages are read are paid."""
    rig.chain.balances[rig.wallet] = 3 * TON
    paid_key, _ = await rig.pay("TON", TON)
    skipped, skipped_dest = await rig.pay("TON", 50 * TON)
    await rig.provider.tick()
    await rig.sign_all()
    garbage = {"hash": "Z" * 43 + "=", "source": "", "destination": TonAddress(0, bytes.fromhex(
        rig.jetton_wallet.split(":")[1]), None).friendly(bounceable=True), "value": "1",
        "msg_data": {"@type": "msg.dataRaw", "body": "bm90IGEgYm9j"}}  # fmt: skip

    def tamper(doc: dict[str, Any]) -> dict[str, Any]:
        if doc["out_msgs"] and all(o["destination"] != doc["in_msg"]["destination"] for o in doc["out_msgs"]):
            return {**doc, "out_msgs": [*doc["out_msgs"], garbage]}  # the batch's internal transaction
        return doc

    rig.client.tamper = tamper
    await rig.settle()
    assert await rig.state(paid_key) == "paid"
    assert await rig.state(skipped) == "sending"
    assert rig.paid(skipped_dest) == {"ton": 0, "jetton": 0}
    rig.client.tamper = None  # the API shows the transaction as it is: the skip is concluded
    await rig.settle()
    row = await rig.payout(skipped)
    assert (row["state"], row["error_code"]) == ("failed", C.INSUFFICIENT_PROVIDER_FUNDS.value)


async def test_already_executed_or_processed_blocks_expiry_until_the_transaction_is_seen(rig: Rig) -> None:
    key, dest = await rig.pay("TON", TON)
    await rig.provider.tick()
    await rig.sign_all()
    await rig.provider.tick()
    rig.block()  # landed on chain
    rig.client.hidden.add(rig.wallet)  # the API's index lags: the wallet's transactions not shown
    await rig.provider.tick()  # not found: sent again, the wallet answers "already executed" (36)
    (batch,) = await rig.rows("SELECT state, error_code FROM ton_batches")
    assert batch == {"state": "signed", "error_code": "already_executed"}
    rig.advance(TIMEOUT + MARGIN + 5)
    for _ in range(3):
        assert not await rig.provider.tick()  # past its time, not found: still never expired nor rebuilt
    assert await rig.state(key) == "sending"
    rig.client.hidden.clear()
    rig.block()
    await rig.settle()
    assert await rig.state(key) == "paid"
    assert rig.paid(dest) == {"ton": 1, "jetton": 0}
    assert (await rig.rows("SELECT count(*) AS n FROM ton_batches"))[0]["n"] == 1


async def test_a_processed_query_id_alone_blocks_expiry(rig: Rig) -> None:
    key, _ = await rig.pay("TON", TON)
    await rig.provider.tick()
    await rig.sign_all()
    rig.client.hidden.add(rig.wallet)
    await rig.provider.tick()
    rig.block()  # landed; no later sendBoc: no exit code 36 was ever seen
    rig.advance(TIMEOUT + MARGIN + 5)
    assert not await rig.provider.tick()
    assert (await rig.rows("SELECT state, error_code FROM ton_batches"))[0] == {"state": "signed", "error_code": None}
    assert await rig.state(key) == "sending"


async def test_a_signer_refusal_sends_each_payout_again_alone(rig: Rig) -> None:
    good, good_dest = await rig.pay("TON", TON)
    bad, bad_dest = await rig.pay("TON", 2 * TON)
    also, also_dest = await rig.pay("USDT", 1_000_000)
    await rig.provider.tick()
    (batch,) = await rig.waiting()
    await rig.refuse(batch, SignatureRefusalCode.DESTINATION_DENIED)
    assert {await rig.state(k) for k in (good, bad, also)} == {"queued"}
    await rig.provider.tick()
    alone = await rig.waiting()
    assert sorted(len(r.payout_ids) for r in alone) == [1, 1, 1]
    for request in alone:
        if request.payout_ids == [f"po-{bad}"]:
            await rig.refuse(request, SignatureRefusalCode.DESTINATION_DENIED)
        else:
            await rig.sign(request)
    await rig.settle()
    assert (await rig.state(good), await rig.state(also)) == ("paid", "paid")
    row = await rig.payout(bad)
    assert (row["state"], row["error_code"], row["retryable"]) == ("failed", C.SIGNATURE_REFUSED.value, False)
    assert rig.paid(good_dest) == {"ton": 1, "jetton": 0}
    assert rig.paid(also_dest) == {"ton": 0, "jetton": 1}
    assert rig.paid(bad_dest) == {"ton": 0, "jetton": 0}


async def test_live_signature_refusal_requeues_until_the_earlier_message_is_dead(rig: Rig) -> None:
    key, _ = await rig.pay("TON", TON)
    await rig.provider.tick()
    (batch,) = await rig.waiting()
    until = int(rig.clock.now) + 3600
    await rig.refuse(batch, SignatureRefusalCode.LIVE_SIGNATURE_EXISTS, live_until=until)
    row = await rig.payout(key)
    assert row["state"] == "queued"
    assert not row["solo"]
    assert row["not_before"].timestamp() == until + 1
    assert not await rig.provider.tick()  # not built again before then


async def test_batches_in_flight_are_bounded(db: str) -> None:
    rig = await make_rig(db, batch_size=2, max_batches_in_flight=2)
    try:
        keys = [(await rig.pay("TON", TON))[0] for _ in range(7)]
        await rig.provider.tick()
        assert [len(r.payout_ids) for r in await rig.waiting()] == [2, 2]
        await rig.sign_all()
        await rig.settle()
        await rig.sign_all()
        await rig.settle()
        await rig.sign_all()
        await rig.settle()
        assert {await rig.state(k) for k in keys} == {"paid"}
        sizes = [r["payouts"] for r in await rig.rows("SELECT payouts FROM ton_batches ORDER BY query_seqno")]
        assert sizes == [2, 2, 2, 1]
    finally:
        await rig.engine.dispose()


async def test_an_unsigned_batch_past_its_time_expires_unless_it_landed(rig: Rig) -> None:
    key, dest = await rig.pay("TON", TON)
    await rig.provider.tick()
    (request,) = await rig.waiting()
    await rig.refuse(request, SignatureRefusalCode.EXTERNAL_SIGNING_REQUIRED)
    # An operator's tool signs and broadcasts it out of band; payouts never received it.
    batch = parse_inner(from_b64(request.unsigned_inner_boc), wallet=request.wallet)
    rig.chain.send_boc(to_b64(external_message(batch, rig.key.sign(signing_hash(batch)).signature)))
    rig.block()
    rig.advance(TIMEOUT + MARGIN + 5)
    assert not await rig.provider.tick()  # its signed hash is in the wallet's transactions: never rebuilt
    assert (await rig.rows("SELECT state FROM ton_batches"))[0]["state"] == "external"
    assert await rig.state(key) == "sending"
    assert (await rig.rows("SELECT count(*) AS n FROM ton_batches"))[0]["n"] == 1
    rig.block()
    assert rig.paid(dest) == {"ton": 1, "jetton": 0}  # paid by the operator's broadcast: once, never rebuilt


async def test_the_database_enforces_the_lane_s_invariants(rig: Rig) -> None:
    key, dest = await rig.pay("TON", TON)
    await rig.pay("TON", TON)
    await rig.provider.tick()
    (batch,) = await rig.rows("SELECT * FROM ton_batches")
    queued, _ = await rig.pay("TON", TON)  # not in any batch yet
    base = {k: batch[k] for k in ("provider", "wallet", "timeout_s", "request")}

    async def insert_batch(request_id: str, seqno: int, query_id: int, created_at: int) -> None:
        async with rig.engine.begin() as conn:
            await conn.execute(
                text(
                    """INSERT INTO ton_batches (request_id, provider, wallet, query_seqno, query_id, created_at_chain,
                                                timeout_s, payouts, inner_hash, request, state)
                       VALUES (:id, :provider, :wallet, :seqno, :qid, :created, :timeout_s, 1, :inner, :request,
                               'awaiting_signature')"""
                ),
                {
                    **base,
                    "id": request_id,
                    "seqno": seqno,
                    "qid": query_id,
                    "created": created_at,
                    "inner": uuid.uuid4().hex * 2,
                },
            )

    with pytest.raises(DBAPIError, match="ton_batches_query_id_of_seqno"):
        await insert_batch("b-wrong-qid", 5, 6, int(rig.clock.now))
    # The same query id again (its sequence number a whole cycle later) while the first can still be processed.
    cycle = 8192 * 1023
    with pytest.raises(DBAPIError, match="is used by"):
        await insert_batch("b-reuse", batch["query_seqno"] + cycle, batch["query_id"], batch["created_at_chain"] + 10)
    await insert_batch(
        "b-reuse-later", batch["query_seqno"] + cycle, batch["query_id"], batch["created_at_chain"] + 4 * TIMEOUT + 1
    )

    async def insert_item(request_id: str, position: int, key: str, destination: str) -> None:
        async with rig.engine.begin() as conn:
            await conn.execute(
                text(
                    """INSERT INTO ton_batch_items (request_id, position, provider, idempotency_key, payout_id,
                                                    asset, amount, destination, state)
                       VALUES (:id, :pos, 'ton', :key, :pid, 'TON', 1, :dest, 'in_flight')"""
                ),
                {"id": request_id, "pos": position, "key": key, "pid": f"po-{key}", "dest": destination},
            )

    with pytest.raises(DBAPIError, match="ton_batch_items_one_live"):
        await insert_item("b-reuse-later", 0, key, dest)  # already in flight in the first batch
    with pytest.raises(DBAPIError, match="ton_batch_items_one_destination"):
        await insert_item(batch["request_id"], 9, queued, dest)  # a second payout to that address in that batch


async def test_an_operator_signs_a_batch_out_of_band(rig: Rig) -> None:
    """Signer backend `external`: the batch waits; the admin API's view shows what to sign (its MsgInner, every
    payout's intent); only the batch built, signed by the wallet's key, is taken; then it is sent and paid once."""
    first, first_dest = await rig.pay("TON", TON)
    second, second_dest = await rig.pay("USDT", 2_000_000)
    await rig.provider.tick()
    (request,) = await rig.waiting()
    await rig.refuse(request, SignatureRefusalCode.EXTERNAL_SIGNING_REQUIRED)
    shown = await rig.provider.unsigned_transaction(f"po-{second}")
    assert shown is not None
    assert shown["state"] == "external"
    assert shown["payout_ids"] == [f"po-{first}", f"po-{second}"]
    built = parse_inner(from_b64(shown["unsigned_inner_boc"]), wallet=shown["wallet"])
    assert shown["signing_hash"] == signing_hash(built).hex()
    forged = external_message(built, SigningKey.generate().sign(signing_hash(built)).signature)
    other = replace(built, created_at=built.created_at - 1)
    for bad, code in (
        (forged, "bad_signature"),
        (external_message(other, rig.key.sign(signing_hash(other)).signature), "not_the_message_built"),
    ):
        with pytest.raises(ExternalSigningError) as refused:
            await rig.provider.submit_signed(f"po-{first}", to_b64(bad))
        assert refused.value.code == code
    good = external_message(built, rig.key.sign(signing_hash(built)).signature)
    done = await rig.provider.submit_signed(f"po-{first}", to_b64(good))
    assert done.tx_hash == message_hash(good)
    assert done.payout_ids == (f"po-{first}", f"po-{second}")
    await rig.settle()
    assert (await rig.state(first), await rig.state(second)) == ("paid", "paid")
    assert rig.paid(first_dest) == {"ton": 1, "jetton": 0}
    assert rig.paid(second_dest) == {"ton": 0, "jetton": 1}


async def test_a_batch_landed_just_before_it_expired_is_never_rebuilt_while_the_node_lags(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    """The batch lands two seconds before created_at + timeout; the API node answers from a state older than that
    (it lags by more than the margin): no transaction, its query id not processed, and a masterchain block from
    before the landing. Nothing proves the batch dead: it waits, never expired nor rebuilt (a highload wallet has no
    seqno to stop a second batch paying the same payouts). Once the node catches up, it is read landed: paid once."""
    key, dest = await rig.pay("TON", 2 * TON)
    other, other_dest = await rig.pay("USDT", 3_000_000)
    await rig.provider.tick()
    await rig.sign_all()
    await rig.provider.tick()  # sent: in the mempool
    (batch,) = await rig.rows("SELECT created_at_chain, timeout_s FROM ton_batches")
    expires_at = batch["created_at_chain"] + batch["timeout_s"]
    rig.clock.now = expires_at - 2
    rig.block()  # included just before it expires
    rig.chain.faults.update({"lag_s": MARGIN + 30})  # the node we read is that far behind
    rig.clock.now = expires_at + MARGIN + 1
    rig.block()  # the chain moves on (the internal transfer delivered); the node does not show it
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            assert not await rig.provider.tick()
            rig.advance(2)
            rig.block()
    batches = await rig.rows("SELECT state FROM ton_batches")
    assert batches == [{"state": "signed"}], "expired on a lagging node's word"
    assert (await rig.state(key), await rig.state(other)) == ("sending", "sending")
    lagging = [r for r in caplog.records if r.getMessage() == LAGGING]
    assert len(lagging) == 1  # once per batch
    assert lagging[0].__dict__["lag_s"] >= MARGIN + 30
    rig.chain.faults.update({"lag_s": 0})  # the node catches up
    await rig.settle()
    assert (await rig.state(key), await rig.state(other)) == ("paid", "paid")
    assert [b["state"] for b in await rig.rows("SELECT state FROM ton_batches")] == ["landed"]
    assert rig.paid(dest) == {"ton": 1, "jetton": 0}
    assert rig.paid(other_dest) == {"ton": 0, "jetton": 1}
    assert (await rig.payout(key))["messages"] == 1


async def test_a_batch_not_included_expires_once_the_node_has_seen_past_its_time(rig: Rig) -> None:
    """The lagging node is waited for, not forever: once its view is from past created_at + timeout + margin (and
    the batch is not there), the batch is dead and rebuilt."""
    key, dest = await rig.pay("TON", TON)
    await rig.provider.tick()
    await rig.sign_all()
    rig.chain.faults.update({"not_included_rate": 1.0})
    await rig.provider.tick()  # accepted, never to be included
    rig.chain.faults.update({"not_included_rate": 0.0, "lag_s": 20})
    (batch,) = await rig.rows("SELECT created_at_chain, timeout_s FROM ton_batches")
    rig.clock.now = batch["created_at_chain"] + batch["timeout_s"] + MARGIN + 1
    rig.block()
    assert not await rig.provider.tick()  # the node's latest block is 20 s old: no verdict
    rig.advance(20)
    rig.block()
    assert await rig.provider.tick()  # its view is past the deadline now: dead
    assert [b["state"] for b in await rig.rows("SELECT state FROM ton_batches")] == ["expired"]
    rig.chain.faults.update({"lag_s": 0})
    await rig.provider.tick()
    await rig.sign_all()
    await rig.settle()
    assert await rig.state(key) == "paid"
    assert rig.paid(dest) == {"ton": 1, "jetton": 0}


async def test_the_client_reads_the_node_s_time_over_http() -> None:
    """ToncenterClient against the emulator's HTTP app: getMasterchainInfo + getBlockHeader, and runGetMethod's
    `block_id` read back to its block's time; a lagging node answers an older block."""
    chain = Chain(clock=Clock(), rng=random.Random(1))
    wallet, highload = "0:" + "11" * 32, "0:" + "12" * 32
    key = bytes(SigningKey.generate().verify_key)
    chain.add_wallet(wallet, key, balance=TON, subwallet_id=698983191)
    chain.add_highload_wallet(highload, key, balance=TON, subwallet_id=0x10AD, timeout=TIMEOUT)
    server = TestServer(create_app(chain, EmulatorSettings(ton_emulator_block_ms=10**7)))
    await server.start_server()
    client = ToncenterClient(str(server.make_url("")).rstrip("/"), api_key=None, timeout_s=5)
    try:
        start = chain.now()
        assert await client.masterchain_time() == start
        chain.clock.now += 10  # type: ignore[attr-defined]
        chain.produce_block()
        assert await client.masterchain_time() == start + 10
        seqno = await client.seqno_at(wallet)
        assert (seqno.value, seqno.block_time) == (0, start + 10)
        processed = await client.processed_at(highload, QueryId.from_sequence(3).value)
        assert (processed.value, processed.block_time) == (False, start + 10)
        chain.faults.update({"lag_s": 5})  # the node answers from block 0
        assert await client.masterchain_time() == start
        assert (await client.seqno_at(wallet)).block_time == start
        chain.faults.update({"outage": True})
        with pytest.raises(TonApiError) as err:
            await client.masterchain_time()
        assert err.value.code is C.PROVIDER_UNAVAILABLE
    finally:
        await client.close()
        await server.close()


async def test_the_client_locates_the_destination_s_jetton_wallet_transaction_over_http() -> None:
    """ToncenterClient against the emulator's HTTP app: out-messages' created_lt parsed, `tryLocateResultTx`
    answers the destination jetton wallet's transaction (a frozen one's bounces back to ours: the fault set over
    HTTP), None when not found, a TonApiError when the API fails."""
    chain = Chain(clock=Clock(), rng=random.Random(1))
    wallet, dest = "0:" + "11" * 32, "0:" + "22" * 32
    master, jetton_wallet = "0:" + "44" * 32, "0:" + "33" * 32
    key = SigningKey.generate()
    chain.add_wallet(wallet, bytes(key.verify_key), balance=TON, subwallet_id=698983191)
    chain.add_jetton(master=master, owner=wallet, jetton_wallet=jetton_wallet, balance=5_000_000)
    server = TestServer(create_app(chain, EmulatorSettings(ton_emulator_block_ms=10**7)))
    await server.start_server()
    base = str(server.make_url("")).rstrip("/")
    client = ToncenterClient(base, api_key=None, timeout_s=5)
    try:
        frozen = {"frozen_jetton_owners": [dest]}
        async with ClientSession() as session, session.post(f"{base}/_emulator/faults", json=frozen) as resp:
            assert resp.status == 200, await resp.text()
        transfer = Transfer(
            kind=TransferKind.JETTON, destination=dest, amount=1_000_000, bounce=True, jetton_wallet=jetton_wallet,
            attached_nanotons=50_000_000, forward_nanotons=1, response_destination=wallet,
        )  # fmt: skip
        message = WalletMessage(
            wallet=wallet, subwallet_id=698983191, valid_until=chain.now() + 60, seqno=0, transfer=transfer
        )
        signed = v4_external_message(message, key.sign(v4_signing_hash(message)).signature)
        await client.send_boc(to_b64(signed))
        chain.produce_block()
        ours = await client.transactions(jetton_wallet, limit=10)
        (internal,) = ours[-1].out_msgs  # the oldest: the transfer; the newest takes the bounce back
        assert internal.created_lt > ours[-1].lt
        located = await client.locate_result(jetton_wallet, internal.destination, internal.created_lt)
        assert located is not None
        assert located.in_msg is not None
        assert located.in_msg.hash == internal.hash
        assert [canonical(m.destination) for m in located.out_msgs] == [jetton_wallet]
        assert await client.locate_result(jetton_wallet, internal.destination, internal.created_lt + 1) is None
        chain.faults.update({"outage": True})
        with pytest.raises(TonApiError) as err:
            await client.locate_result(jetton_wallet, internal.destination, internal.created_lt)
        assert err.value.code is C.PROVIDER_UNAVAILABLE
    finally:
        await client.close()
        await server.close()
