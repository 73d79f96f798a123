"""Addresses and wallet v4r2 messages: strict parsing, canonical rebuilds, signing hash stability."""

from __future__ import annotations

import pytest
from nacl.signing import SigningKey
from pytoniq_core.boc.builder import Builder

from prizeflow_ton.addresses import InvalidTonAddressError, parse_address
from prizeflow_ton.messages import (
    MalformedMessageError,
    NonCanonicalMessageError,
    Transfer,
    TransferKind,
    WalletMessage,
    external_message,
    from_b64,
    message_hash,
    parse_external,
    parse_unsigned,
    signing_hash,
    to_b64,
    unsigned_body,
)

WALLET = "0:" + "11" * 32
DEST = "0:" + "22" * 32
JETTON_WALLET = "0:" + "33" * 32


def ton_message(**kw: object) -> WalletMessage:
    transfer = Transfer(kind=TransferKind.TON, destination=DEST, amount=1_500_000_000, bounce=False)
    base: dict[str, object] = {"wallet": WALLET, "subwallet_id": 698983191, "valid_until": 1_900_000_000,
                               "seqno": 7, "transfer": transfer}  # fmt: skip
    base.update(kw)
    return WalletMessage(**base)  # type: ignore[arg-type]


def jetton_message() -> WalletMessage:
    transfer = Transfer(
        kind=TransferKind.JETTON, destination=DEST, amount=2_500_000, bounce=True, jetton_wallet=JETTON_WALLET,
        attached_nanotons=50_000_000, forward_nanotons=1, response_destination=WALLET, query_id=42,
    )  # fmt: skip
    return ton_message(transfer=transfer)


def test_every_address_form_parses_to_one_raw_spelling() -> None:
    raw = parse_address(DEST)
    bounceable = raw.friendly(bounceable=True)
    plain = raw.friendly(bounceable=False)
    assert bounceable != plain
    assert parse_address(bounceable).raw == parse_address(plain).raw == DEST
    assert parse_address(bounceable).bounceable is True
    assert parse_address(plain).bounceable is False
    std_b64 = bounceable.replace("-", "+").replace("_", "/")
    assert parse_address(std_b64).raw == DEST


@pytest.mark.parametrize(
    "bad",
    ["", "0:abc", "2:" + "22" * 32, "EQ" + "A" * 46, "not an address at all, not at all, not at all!!"],
)
def test_bad_addresses_are_refused(bad: str) -> None:
    with pytest.raises(InvalidTonAddressError):
        parse_address(bad)


def test_a_flipped_checksum_is_refused() -> None:
    good = parse_address(DEST).friendly(bounceable=True)
    bad = good[:-1] + ("A" if good[-1] != "A" else "B")
    with pytest.raises(InvalidTonAddressError):
        parse_address(bad)


def test_masterchain_is_refused_unless_asked_for() -> None:
    with pytest.raises(InvalidTonAddressError):
        parse_address("-1:" + "22" * 32)


@pytest.mark.parametrize("factory", [ton_message, jetton_message])
def test_a_message_round_trips_through_sign_and_parse(factory: object) -> None:
    message = factory()  # type: ignore[operator]
    key = SigningKey.generate()
    signature = key.sign(signing_hash(message)).signature
    cell = external_message(message, signature)
    parsed = parse_external(from_b64(to_b64(cell)))
    assert parsed.message == message
    assert parsed.signature == signature
    assert parsed.hash == message_hash(cell)
    assert parse_unsigned(unsigned_body(message), wallet=WALLET) == message


def test_the_hash_changes_with_every_field() -> None:
    hashes = {signing_hash(ton_message()), signing_hash(ton_message(seqno=8)),
              signing_hash(ton_message(valid_until=1_900_000_001)), signing_hash(jetton_message())}  # fmt: skip
    assert len(hashes) == 4


def test_two_out_messages_are_refused() -> None:
    m = ton_message()
    body = unsigned_body(m)
    s = body.begin_parse()
    two = Builder().store_slice(s).store_uint(3, 8).store_ref(body.refs[0]).end_cell()
    with pytest.raises(MalformedMessageError):
        parse_unsigned(two, wallet=WALLET)


def test_trailing_bits_are_refused() -> None:
    body = unsigned_body(ton_message())
    longer = Builder().store_slice(body.begin_parse()).store_uint(1, 1).end_cell()
    with pytest.raises(MalformedMessageError):
        parse_unsigned(longer, wallet=WALLET)


def test_a_state_init_in_the_out_message_is_refused() -> None:
    m = ton_message()
    internal = unsigned_body(m).refs[0]
    s = internal.begin_parse()
    bits = s.remaining_bits
    header = s.load_bits(bits - 2)
    with_init = Builder().store_bits(header).store_bit(1).store_bit(1).store_ref(Builder().end_cell())
    with_init = with_init.store_bit(0).end_cell()
    bad_body = (
        Builder().store_uint(m.subwallet_id, 32).store_uint(m.valid_until, 32).store_uint(m.seqno, 32)
        .store_uint(0, 8).store_uint(3, 8).store_ref(with_init).end_cell()
    )  # fmt: skip
    with pytest.raises(MalformedMessageError):
        parse_unsigned(bad_body, wallet=WALLET)


def test_garbage_is_not_a_boc() -> None:
    with pytest.raises(MalformedMessageError):
        from_b64("bm90IGEgYm9j")
    assert issubclass(NonCanonicalMessageError, MalformedMessageError)
