"""`destination_key` v2: the memo counts only for the types whose rails read one (`MEMO_TYPES`), an all-digit memo
as its number, and the hashed fields are length-prefixed, so no `|` (or `:`) in an address or a memo can make two
destinations one key."""

from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from prizeflow_contracts.providers import (
    MEMO_TYPES,
    DestinationType,
    PayoutDestination,
    destination_key,
    destination_memo,
)

EVM = "0xabc0000000000000000000000000000000000001"


def key(kind: DestinationType, address: str, memo: str | None = None) -> str:
    return destination_key(PayoutDestination(type=kind, address=address, memo=memo))


def test_memos_count_only_for_the_types_whose_rails_read_them() -> None:
    # The exchange's withdrawal tag (crypto_address) is the only memo a rail reads; Stellar and TON refuse one.
    assert {DestinationType.CRYPTO_ADDRESS} == MEMO_TYPES
    email = {key(DestinationType.EMAIL, "winner@example.com", memo) for memo in (None, "1", "2", "x")}
    assert len(email) == 1
    ton = {key(DestinationType.TON_WALLET, "0:" + "ab" * 32, memo) for memo in (None, "1", "hello")}
    assert len(ton) == 1
    tags = {key(DestinationType.CRYPTO_ADDRESS, EVM, memo) for memo in (None, "1", "2", "x")}
    assert len(tags) == 4
    # One wallet as a ton_wallet and as a crypto_address without a tag is still one destination.
    assert key(DestinationType.TON_WALLET, "0:" + "ab" * 32, "7") == key(
        DestinationType.CRYPTO_ADDRESS, "0:" + "AB" * 32
    )


def test_an_all_digit_memo_is_its_number() -> None:
    assert len({key(DestinationType.CRYPTO_ADDRESS, EVM, m) for m in ("123", "0123", "00123", " 0123 ")}) == 1
    assert key(DestinationType.CRYPTO_ADDRESS, EVM, "0") == key(DestinationType.CRYPTO_ADDRESS, EVM, "000")
    assert key(DestinationType.CRYPTO_ADDRESS, EVM, "0") != key(DestinationType.CRYPTO_ADDRESS, EVM)
    assert key(DestinationType.CRYPTO_ADDRESS, EVM, "0x1") != key(DestinationType.CRYPTO_ADDRESS, EVM, "1")
    assert key(DestinationType.CRYPTO_ADDRESS, EVM, "1 2") != key(DestinationType.CRYPTO_ADDRESS, EVM, "12")
    assert destination_memo(DestinationType.CRYPTO_ADDRESS, " 007 ") == "7"
    assert destination_memo(DestinationType.EMAIL, "007") == ""


def test_a_bar_moves_no_boundary() -> None:
    assert key(DestinationType.CRYPTO_ADDRESS, "0xabc|tag") != key(DestinationType.CRYPTO_ADDRESS, "0xabc", "tag|")
    spelling, memo = "0xabc", "7"
    expected = hashlib.sha256(f"v2|{len(spelling)}:{spelling}|{len(memo)}:{memo}".encode()).hexdigest()
    assert key(DestinationType.CRYPTO_ADDRESS, "0xABC", "07") == expected


# Lowercase, no whitespace: an address that is its own spelling, so only the encoding can tell two apart.
_FIELD = st.text(alphabet="abcdefxyz0123456789|:", min_size=1, max_size=12)


@settings(max_examples=300, deadline=None)
@given(_FIELD, _FIELD, _FIELD)
def test_moving_text_across_a_separator_makes_another_key(head: str, middle: str, tail: str) -> None:
    """`<head>|<middle>` with memo `<tail>` and `<head>` with memo `<middle>|<tail>` (and the same with `:`) are
    one string once joined with the separator: with the fields length-prefixed, two keys."""
    for sep in ("|", ":"):
        one = key(DestinationType.CRYPTO_ADDRESS, f"{head}{sep}{middle}", tail)
        other = key(DestinationType.CRYPTO_ADDRESS, head, f"{middle}{sep}{tail}")
        assert one != other
