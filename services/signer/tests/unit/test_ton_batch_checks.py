"""The highload wallet v3 batch checks without keys or I/O: an honest mixed batch passes with its sums; every
tampered request is refused with its own stable code (the v4r2 checks' codes where they mean the same)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from pytoniq_core.boc.builder import Builder

from prizeflow_contracts.events.signer import SignatureRefusalCode, TonBatchSignatureRequested
from prizeflow_signer.domain.ton import TonJetton
from prizeflow_signer.domain.ton_highload import TonHighloadPolicy, check_ton_batch_request
from prizeflow_stellar.checks import IntentViolation
from prizeflow_testkit.ton import batch_request
from prizeflow_ton.highload import HighloadBatch, QueryId, inner, internal_transfer
from prizeflow_ton.messages import Transfer, TransferKind, internal_message, to_b64

WALLET = "0:" + "11" * 32
OTHER = "0:" + "55" * 32
MASTER = "0:" + "44" * 32
JETTON_WALLET = "0:" + "33" * 32  # the highload wallet's own jetton wallet of MASTER
TON = 1_000_000_000
NOW = 1_800_000_000
POLICY = TonHighloadPolicy(
    wallet=WALLET, subwallet_id=0x10AD, max_timeout_s=3600, clock_skew_s=60, max_internal_nanotons=100_000_000,
    max_batch=10, native_asset="TON", jettons={"USDT": TonJetton(master=MASTER, wallet=JETTON_WALLET)},
    max_jetton_attach_nanotons=100_000_000,
)  # fmt: skip


def dest(i: int) -> str:
    return "0:" + f"{i + 0xA0:064x}"


def ton(i: int, amount: int = TON, *, bounce: bool = False) -> Transfer:
    return Transfer(kind=TransferKind.TON, destination=dest(i), amount=amount, bounce=bounce)


def jetton(i: int, amount: int = 2_500_000, *, via: str = JETTON_WALLET, attach: int = 50_000_000) -> Transfer:
    return Transfer(
        kind=TransferKind.JETTON, destination=dest(i), amount=amount, bounce=True, jetton_wallet=via,
        attached_nanotons=attach, forward_nanotons=1, response_destination=WALLET, query_id=i,
    )  # fmt: skip


def batch(*transfers: Transfer, **kw: Any) -> HighloadBatch:
    base: dict[str, Any] = {
        "wallet": WALLET, "subwallet_id": 0x10AD, "query_id": QueryId(2, 5), "created_at": NOW - 5,
        "timeout": 600, "transfers": transfers or (ton(0), jetton(1), ton(2, 3 * TON)),
        "internal_nanotons": 50_000_000,
    }  # fmt: skip
    base.update(kw)
    return HighloadBatch(**base)


def request(b: HighloadBatch | None = None, **update: Any) -> TonBatchSignatureRequested:
    req = batch_request(b or batch(), master=MASTER)
    return req.model_copy(update=update) if update else req


def refused(req: TonBatchSignatureRequested, code: SignatureRefusalCode, *, now: int = NOW) -> None:
    with pytest.raises(IntentViolation) as caught:
        check_ton_batch_request(req, POLICY, now=now)
    assert caught.value.code is code, caught.value.detail


def intent(req: TonBatchSignatureRequested, n: int, **update: Any) -> TonBatchSignatureRequested:
    intents = list(req.intents)
    intents[n] = intents[n].model_copy(update=update)
    return req.model_copy(update={"intents": intents})


def test_an_honest_mixed_batch_passes_with_its_sums() -> None:
    checked = check_ton_batch_request(request(), POLICY, now=NOW)
    assert checked.amounts == {"TON": 4 * TON + 50_000_000, "USDT": 2_500_000}
    assert checked.destinations == (dest(0), dest(1), dest(2))
    assert checked.live_until == NOW - 5 + 600
    assert checked.signing_hash == inner(batch()).hash


C = SignatureRefusalCode


@pytest.mark.parametrize(
    ("build", "code"),
    [
        (lambda: intent(request(), 0, destination=OTHER), C.DESTINATION_MISMATCH),
        (lambda: intent(request(), 2, amount=3 * TON + 1), C.AMOUNT_MISMATCH),
        (lambda: intent(request(), 0, bounce=True), C.BOUNCE_MISMATCH),
        (lambda: intent(request(), 1, jetton_master=OTHER), C.JETTON_MISMATCH),
        (lambda: intent(request(), 1, asset="TON", jetton_master=None, jetton_wallet=None), C.JETTON_MISMATCH),
        (lambda: intent(request(), 0, asset="XLM"), C.ASSET_NOT_ALLOWED),
        (lambda: request(batch(ton(0), jetton(1, via=OTHER))), C.JETTON_MISMATCH),
        (lambda: request(batch(ton(0), jetton(1, attach=TON))), C.FEE_TOO_HIGH),
        (lambda: request(batch(internal_nanotons=TON)), C.FEE_TOO_HIGH),
        (lambda: request(batch(wallet=OTHER), wallet=OTHER), C.WRONG_SOURCE),
        (lambda: request(batch(subwallet_id=698983191)), C.WRONG_SOURCE),
        (lambda: request(batch(mode=128)), C.UNEXPECTED_OPERATION),
        (lambda: request(batch(action_mode=1)), C.UNEXPECTED_OPERATION),
        (lambda: request(batch(), query_id=QueryId(2, 6).value), C.SEQNO_MISMATCH),
        (lambda: request(batch(created_at=NOW + 61)), C.VALIDITY_OUT_OF_WINDOW),
        (lambda: request(batch(created_at=NOW - 61)), C.VALIDITY_OUT_OF_WINDOW),
        (lambda: request(batch(), created_at=NOW - 6), C.VALIDITY_OUT_OF_WINDOW),
        (lambda: request(batch(timeout=3601)), C.VALIDITY_OUT_OF_WINDOW),
        (lambda: request(batch(timeout=5)), C.VALIDITY_OUT_OF_WINDOW),  # created_at + timeout is already past
        (lambda: request(batch(), timeout=601), C.VALIDITY_OUT_OF_WINDOW),
        (lambda: request(batch(*(ton(i) for i in range(11)))), C.UNEXPECTED_OPERATION),  # over max_batch
        (lambda: request(batch(), unsigned_inner_boc="bm90IGEgYm9j"), C.MALFORMED_XDR),
    ],
)
def test_a_tampered_request_is_refused_with_its_code(build: Any, code: SignatureRefusalCode) -> None:
    refused(build(), code)


def test_an_extra_out_message_not_in_the_intents_is_refused() -> None:
    """The message pays three, the request names two: the third would be paid without an intent."""
    three = request()
    two = three.model_copy(update={"payout_ids": three.payout_ids[:2], "intents": three.intents[:2]})
    refused(two, C.UNEXPECTED_OPERATION)


def test_an_intent_the_message_does_not_pay_is_refused() -> None:
    two = batch(ton(0), jetton(1))
    req = request(two)
    extra = req.intents[0].model_copy(update={"payout_id": "po-extra", "destination": dest(9)})
    refused(req.model_copy(update={"payout_ids": [*req.payout_ids, "po-extra"], "intents": [*req.intents, extra]}),
            C.UNEXPECTED_OPERATION)  # fmt: skip


def test_out_messages_in_another_order_than_the_intents_are_refused() -> None:
    b = batch(ton(0), ton(1, 2 * TON))
    req = request(b)
    swapped = request(replace(b, transfers=b.transfers[::-1]), payout_ids=req.payout_ids, intents=req.intents)
    refused(swapped, C.DESTINATION_MISMATCH)


def test_a_payout_named_twice_is_refused() -> None:
    """The event refuses duplicate payout ids itself; a request built around that (model_copy skips validation)
    is refused by the check too: each payout is paid at most once."""
    b = batch(ton(0), ton(0))
    req = request(b)
    twice = req.model_copy(update={"payout_ids": [req.payout_ids[0]] * 2, "intents": [req.intents[0], req.intents[0]]})
    refused(twice, C.UNEXPECTED_OPERATION)


def test_a_state_init_in_an_out_message_is_refused() -> None:
    b = batch(ton(0))
    plain = internal_message(b.transfers[0]).begin_parse()
    header = plain.load_bits(plain.remaining_bits - 2)
    with_init = (
        Builder().store_bits(header).store_bit(1).store_bit(1).store_ref(Builder().end_cell()).store_bit(0).end_cell()
    )
    actions = Builder().store_ref(Builder().end_cell()).store_uint(0x0EC3C86D, 32).store_uint(3, 8)
    actions = actions.store_ref(with_init).end_cell()
    good = internal_transfer(b).begin_parse()
    info_bits = good.load_bits(good.remaining_bits)
    body = Builder().store_uint(0xAE42E5A4, 32).store_uint(b.query_id.value, 64).store_ref(actions).end_cell()
    message = Builder().store_bits(info_bits).store_ref(body).end_cell()
    tampered = (
        Builder().store_uint(b.subwallet_id, 32).store_ref(message).store_uint(3, 8).store_uint(2, 13)
        .store_uint(5, 10).store_uint(b.created_at, 64).store_uint(b.timeout, 22).end_cell()
    )  # fmt: skip
    refused(request(b, unsigned_inner_boc=to_b64(tampered)), C.UNEXPECTED_OPERATION)


def test_a_non_canonical_encoding_is_refused() -> None:
    b = batch(ton(0))
    good = internal_transfer(b).begin_parse()
    good.skip_bits(1 + 3 + 2)  # int_msg_info$0, flags, src addr_none
    address = good.load_address()
    good.load_coins()
    padded = (
        Builder().store_uint(0, 1).store_bit(1).store_bit(0).store_bit(0).store_uint(0, 2).store_address(address)
        .store_uint(5, 4).store_bytes(b.internal_nanotons.to_bytes(5, "big")).store_slice(good).end_cell()
    )  # fmt: skip
    tampered = (
        Builder().store_uint(b.subwallet_id, 32).store_ref(padded).store_uint(3, 8).store_uint(2, 13)
        .store_uint(5, 10).store_uint(b.created_at, 64).store_uint(b.timeout, 22).end_cell()
    )  # fmt: skip
    refused(request(b, unsigned_inner_boc=to_b64(tampered)), C.NON_CANONICAL_ENCODING)
