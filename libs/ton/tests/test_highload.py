"""Highload wallet v3 messages: the published layout, round trips of mixed batches, and the refusal of every
non-canonical or extra form (what is checked is what is signed is what lands)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from nacl.signing import SigningKey
from pytoniq_core.boc.builder import Builder
from pytoniq_core.boc.cell import Cell
from pytoniq_core.tlb.block import CurrencyCollection
from pytoniq_core.tlb.transaction import InternalMsgInfo

from prizeflow_ton.highload import (
    ACTION_SEND_MSG,
    INTERNAL_TRANSFER_OP,
    MAX_ACTIONS,
    QUERY_ID_CYCLE,
    HighloadBatch,
    QueryId,
    QueryIdError,
    external_destination,
    external_message,
    inner,
    internal_transfer,
    out_list,
    parse_external,
    parse_inner,
    signed_inner_hash,
    signing_hash,
)
from prizeflow_ton.messages import (
    MalformedMessageError,
    NonCanonicalMessageError,
    Transfer,
    TransferKind,
    from_b64,
    internal_message,
    message_hash,
    to_address,
    to_b64,
)

WALLET = "0:" + "11" * 32
JETTON_WALLET = "0:" + "33" * 32
OTHER = "0:" + "99" * 32


def dest(i: int) -> str:
    return "0:" + f"{i + 1:064x}"


def ton(i: int, amount: int = 1_000_000_000) -> Transfer:
    return Transfer(kind=TransferKind.TON, destination=dest(i), amount=amount + i, bounce=False)


def jetton(i: int, amount: int = 2_500_000) -> Transfer:
    return Transfer(
        kind=TransferKind.JETTON, destination=dest(i), amount=amount + i, bounce=True, jetton_wallet=JETTON_WALLET,
        attached_nanotons=50_000_000, forward_nanotons=1, response_destination=WALLET, query_id=1000 + i,
    )  # fmt: skip


def batch(transfers: tuple[Transfer, ...] | None = None, **kw: Any) -> HighloadBatch:
    base: dict[str, Any] = {
        "wallet": WALLET, "subwallet_id": 0x10AD, "query_id": QueryId(3, 17), "created_at": 1_800_000_000,
        "timeout": 3600, "transfers": transfers or (ton(0), jetton(1), ton(2)), "internal_nanotons": 10_000_000,
    }  # fmt: skip
    base.update(kw)
    return HighloadBatch(**base)


def inner_of(b: HighloadBatch, *, message_to_send: Cell | None = None, **fields: int) -> Cell:
    """MsgInner written field by field (not by the builder under test), with any field or the message replaced."""
    f = {"subwallet": b.subwallet_id, "mode": b.mode, "shift": b.query_id.shift, "bit": b.query_id.bit_number,
         "created_at": b.created_at, "timeout": b.timeout} | fields  # fmt: skip
    return (  # type: ignore[no-any-return]
        Builder().store_uint(f["subwallet"], 32).store_ref(message_to_send or internal_transfer(b))
        .store_uint(f["mode"], 8).store_uint(f["shift"], 13).store_uint(f["bit"], 10)
        .store_uint(f["created_at"], 64).store_uint(f["timeout"], 22).end_cell()
    )  # fmt: skip


def self_message(b: HighloadBatch, body: Cell, *, bounce: bool = False, to: str = WALLET, inline: bool = False) -> Cell:
    info = InternalMsgInfo(
        ihr_disabled=True, bounce=bounce, bounced=False, src=None, dest=to_address(to),  # type: ignore[arg-type]
        value=CurrencyCollection(grams=b.internal_nanotons), ihr_fee=0, fwd_fee=0, created_lt=0, created_at=0,
    )  # fmt: skip
    out = Builder().store_cell(info.serialize()).store_bit(0)
    if inline:
        return out.store_bit(0).store_cell(body).end_cell()  # type: ignore[no-any-return]
    return out.store_bit(1).store_ref(body).end_cell()  # type: ignore[no-any-return]


def transfer_body(b: HighloadBatch, actions: Cell, *, op: int = INTERNAL_TRANSFER_OP, qid: int | None = None) -> Cell:
    query = b.query_id.value if qid is None else qid
    return Builder().store_uint(op, 32).store_uint(query, 64).store_ref(actions).end_cell()  # type: ignore[no-any-return]


def actions(cells: list[tuple[int, int, Cell]]) -> Cell:
    """An OutList from (tag, mode, out-message) triples, first executed first."""
    cell = Builder().end_cell()
    for tag, mode, msg in cells:
        cell = Builder().store_ref(cell).store_uint(tag, 32).store_uint(mode, 8).store_ref(msg).end_cell()
    return cell


def with_actions(b: HighloadBatch, cells: list[tuple[int, int, Cell]]) -> Cell:
    return inner_of(b, message_to_send=self_message(b, transfer_body(b, actions(cells))))


def standard(b: HighloadBatch) -> list[tuple[int, int, Cell]]:
    return [(ACTION_SEND_MSG, b.action_mode, internal_message(t)) for t in b.transfers]


# -- the layout ---------------------------------------------------------------------------------------------------


def test_the_inner_cell_is_the_published_layout() -> None:
    b = batch()
    assert inner(b).hash == inner_of(b).hash  # written independently, field by field, same cell
    s = inner(b).begin_parse()
    assert s.remaining_bits == 32 + 8 + 13 + 10 + 64 + 22
    assert s.load_uint(32) == 0x10AD
    message = s.load_ref().begin_parse()
    assert s.load_uint(8) == 3
    assert (s.load_uint(13), s.load_uint(10), s.load_uint(64), s.load_uint(22)) == (3, 17, 1_800_000_000, 3600)
    info = InternalMsgInfo.deserialize(message)
    assert info.dest == to_address(WALLET)
    assert not info.bounce
    assert info.value.grams == 10_000_000
    assert (message.load_bit(), message.load_bit()) == (0, 1)  # no state init, body in a reference
    body = message.load_ref().begin_parse()
    assert body.load_uint(32) == 0xAE42E5A4
    assert body.load_uint(64) == (3 << 10) | 17
    head = body.load_ref().begin_parse()  # the LAST action heads the list: ^prev, tag, mode, ^out-message
    assert head.remaining_refs == 2
    head.load_ref()
    assert (head.load_uint(32), head.load_uint(8)) == (0x0EC3C86D, 3)


def test_the_external_body_is_a_signature_and_a_reference_to_the_inner_cell() -> None:
    b = batch()
    signature = SigningKey.generate().sign(signing_hash(b)).signature
    ext = external_message(b, signature)
    body = ext.refs[0]
    assert len(body.bits) == 512
    assert len(body.refs) == 1
    assert body.refs[0].hash == inner(b).hash
    assert signed_inner_hash(body) == signing_hash(b).hex()
    assert external_destination(ext) == WALLET


# -- round trips --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "transfers",
    [
        (ton(0),),
        (jetton(0),),
        (ton(0), jetton(1), ton(2), jetton(3)),
        tuple(jetton(i) if i % 3 else ton(i) for i in range(MAX_ACTIONS)),
    ],
    ids=["one-ton", "one-jetton", "mixed", "254-mixed"],
)
def test_a_batch_round_trips_through_sign_and_parse(transfers: tuple[Transfer, ...]) -> None:
    b = batch(transfers)
    key = SigningKey.generate()
    signature = key.sign(signing_hash(b)).signature
    cell = external_message(b, signature)
    parsed = parse_external(from_b64(to_b64(cell)))
    assert parsed.batch == b
    assert parsed.batch.transfers == transfers  # in order: the first transfer is the first action executed
    assert parsed.signature == signature
    assert parsed.hash == message_hash(cell)
    assert parsed.inner_hash == signing_hash(b).hex()
    assert parse_inner(inner(b), wallet=WALLET) == b


def test_the_signed_hash_changes_with_every_field() -> None:
    b = batch()
    variants = [b, replace(b, subwallet_id=1), replace(b, query_id=QueryId(3, 18)), replace(b, created_at=1),
                replace(b, timeout=3599), replace(b, internal_nanotons=1), replace(b, mode=1),
                replace(b, action_mode=1), replace(b, transfers=b.transfers[::-1]),
                replace(b, transfers=b.transfers[:2])]  # fmt: skip
    assert len({signing_hash(v) for v in variants}) == len(variants)


def test_query_ids_follow_the_contract_s_ranges() -> None:
    assert QueryId.from_sequence(0) == QueryId(0, 0)
    assert QueryId.from_sequence(1022) == QueryId(0, 1022)
    assert QueryId.from_sequence(1023) == QueryId(1, 0)
    assert QueryId.from_sequence(QUERY_ID_CYCLE - 1) == QueryId(8191, 1022)
    assert QueryId.from_sequence(QUERY_ID_CYCLE) == QueryId(0, 0)
    assert QueryId.from_value(QueryId(5, 9).value) == QueryId(5, 9)
    for bad in ((8192, 0), (0, 1023), (-1, 0)):
        with pytest.raises(QueryIdError):
            QueryId(*bad)


# -- refusals -----------------------------------------------------------------------------------------------------


def refused(cell: Cell, kind: type[Exception] = MalformedMessageError) -> None:
    with pytest.raises(kind):
        parse_inner(cell, wallet=WALLET)


def test_more_than_254_transfers_are_neither_built_nor_parsed() -> None:
    many = tuple(ton(i) for i in range(MAX_ACTIONS + 1))
    with pytest.raises(ValueError, match="1 to 254"):
        out_list(many, 3)
    b = batch(many[:MAX_ACTIONS])
    refused(with_actions(b, [*standard(b), (ACTION_SEND_MSG, 3, internal_message(many[-1]))]))


def test_an_empty_action_list_is_refused() -> None:
    b = batch()
    refused(inner_of(b, message_to_send=self_message(b, transfer_body(b, Builder().end_cell()))))


def test_an_action_other_than_send_msg_is_refused() -> None:
    b = batch()
    set_code = 0xAD4DE08E  # action_set_code: would replace the wallet's code
    refused(with_actions(b, [*standard(b)[:-1], (set_code, 3, internal_message(b.transfers[-1]))]))


def test_a_reserve_action_cell_shape_is_refused() -> None:
    b = batch()
    reserve = Builder().store_ref(actions(standard(b))).store_uint(0x36E6B809, 32).store_uint(0, 8)
    reserve = reserve.store_coins(1).store_bit(0).end_cell()  # action_reserve_currency: no out-message ref
    refused(inner_of(b, message_to_send=self_message(b, transfer_body(b, reserve))))


def test_actions_with_different_modes_are_refused() -> None:
    b = batch()
    cells = standard(b)
    cells[1] = (ACTION_SEND_MSG, 128, cells[1][2])  # carry the whole balance: not a mode this platform sends
    refused(with_actions(b, cells))


def test_a_state_init_in_an_out_message_is_refused() -> None:
    b = batch((ton(0),))
    plain = internal_message(b.transfers[0]).begin_parse()
    header = plain.load_bits(plain.remaining_bits - 2)
    with_init = Builder().store_bits(header).store_bit(1).store_bit(1).store_ref(Builder().end_cell())
    refused(with_actions(b, [(ACTION_SEND_MSG, 3, with_init.store_bit(0).end_cell())]))


def test_a_jetton_transfer_with_a_forward_payload_is_refused() -> None:
    b = batch((jetton(0),))
    t = b.transfers[0]
    body = (
        Builder().store_uint(0x0F8A7EA5, 32).store_uint(t.query_id, 64).store_coins(t.amount)
        .store_address(to_address(t.destination)).store_address(to_address(WALLET)).store_bit(0)
        .store_coins(1).store_bit(1).store_ref(Builder().store_uint(7, 8).end_cell()).end_cell()
    )  # fmt: skip
    info = InternalMsgInfo.deserialize(internal_message(t).begin_parse())
    msg = Builder().store_cell(info.serialize()).store_bit(0).store_bit(1).store_ref(body).end_cell()
    refused(with_actions(b, [(ACTION_SEND_MSG, 3, msg)]))


@pytest.mark.parametrize(
    "case",
    ["to-another-address", "bounceable", "inline-body", "wrong-op", "query-id-mismatch", "trailing-bits"],
)
def test_message_to_send_must_be_the_internal_transfer_to_the_wallet_itself(case: str) -> None:
    b = batch()
    good_actions = actions(standard(b))
    body = transfer_body(b, good_actions)
    message = {
        "to-another-address": lambda: self_message(b, body, to=OTHER),
        "bounceable": lambda: self_message(b, body, bounce=True),
        "inline-body": lambda: self_message(b, body, inline=True),
        "wrong-op": lambda: self_message(b, transfer_body(b, good_actions, op=0x0F8A7EA5)),
        "query-id-mismatch": lambda: self_message(b, transfer_body(b, good_actions, qid=b.query_id.value + 1)),
        "trailing-bits": lambda: self_message(b, Builder().store_cell(body).store_uint(1, 1).end_cell()),
    }[case]()
    refused(inner_of(b, message_to_send=message))


def test_inner_fields_out_of_range_or_extra_are_refused() -> None:
    b = batch()
    refused(inner_of(b, bit=1023))  # a processed-set cell has 1023 bits: 0..1022
    refused(inner_of(b, timeout=0))
    longer = Builder().store_cell(inner(b)).store_uint(0, 1).end_cell()
    refused(longer)
    two_refs = Builder().store_cell(inner(b)).store_ref(Builder().end_cell()).end_cell()
    refused(two_refs)


def test_an_extra_out_message_beside_the_internal_transfer_is_refused() -> None:
    """MsgInner has exactly one message: a second reference (a message the wallet would never send, but a
    parser reading only the first would let through) is refused."""
    b = batch()
    extra = Builder().store_cell(inner(b)).store_ref(internal_message(ton(9))).end_cell()
    refused(extra)


def test_a_non_canonical_list_cell_is_refused() -> None:
    """The same transfers with an out-message stored through an extra level (bits moved into a child cell)
    parse to nothing this platform builds."""
    b = batch((ton(0),))
    msg = internal_message(b.transfers[0])
    wrapped = Builder().store_ref(msg).end_cell()
    refused(with_actions(b, [(ACTION_SEND_MSG, 3, wrapped)]))


def test_external_forms_other_than_ours_are_refused() -> None:
    b = batch()
    signature = SigningKey.generate().sign(signing_hash(b)).signature
    good = external_message(b, signature)
    body = good.refs[0]
    header = good.begin_parse()
    bits = header.load_bits(header.remaining_bits - 1)  # everything but "body in a reference"
    inline = Builder().store_bits(bits).store_bit(0).store_cell(body).end_cell()
    with pytest.raises(MalformedMessageError):
        parse_external(inline)
    longer_body = Builder().store_cell(body).store_uint(0, 8).end_cell()
    longer = Builder().store_bits(bits).store_bit(1).store_ref(longer_body).end_cell()
    with pytest.raises(MalformedMessageError):
        parse_external(longer)
    assert signed_inner_hash(longer_body) is None
    # A v4r2 body addressed to the wallet is not a highload message.
    v4_like = Builder().store_bytes(signature).store_cell(inner(b)).end_cell()
    with pytest.raises(MalformedMessageError):
        parse_external(Builder().store_bits(bits).store_bit(1).store_ref(v4_like).end_cell())


def test_a_re_serialized_boc_parses_and_a_padded_amount_is_non_canonical() -> None:
    b = batch()
    assert parse_inner(Cell.one_from_boc(inner(b).to_boc()), wallet=WALLET) == b
    # The internal transfer's value written with a leading zero byte: the same number, other bits, other hash.
    padded = (
        Builder().store_uint(0, 1).store_bit(1).store_bit(0).store_bit(0).store_uint(0, 2)
        .store_address(to_address(WALLET)).store_uint(4, 4).store_bytes(b.internal_nanotons.to_bytes(4, "big"))
        .store_bit(0).store_coins(0).store_coins(0).store_uint(0, 64).store_uint(0, 32)
        .store_bit(0).store_bit(1).store_ref(transfer_body(b, actions(standard(b)))).end_cell()
    )  # fmt: skip
    with pytest.raises(NonCanonicalMessageError):
        parse_inner(inner_of(b, message_to_send=padded), wallet=WALLET)


def test_the_message_is_parsed_for_its_own_wallet_only() -> None:
    b = batch()
    with pytest.raises(MalformedMessageError, match="itself"):
        parse_inner(inner(b), wallet=OTHER)
