"""A memo a rail reads is part of the destination: a listed wallet named in a `crypto_address` memo (plain, in a
swap router's `=:CHAIN.ASSET:<address>` form, a payment URI, a TON wallet in any of its forms, an EVM address in
either case or without `0x`) is met by the screen, whatever surrounds it; a type whose rails never read a memo is
screened by its address alone."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from prizeflow_contracts.providers import MEMO_TYPES, DestinationType, PayoutDestination
from prizeflow_payouts.application.compliance.sanctions import ListsScreen, ListVersion
from prizeflow_payouts.domain.compliance.sanctions import (
    EntryKind,
    ListEntry,
    ListIndex,
    list_version,
    memo_tokens,
    screen_destination_in,
)
from prizeflow_ton.addresses import parse_address

KNOWN_TON = "UQBp4MMLFpzSe5t3EugHZonZFMyWl9owGKQiDaiaC-zuO5ZB"
LISTED_ETH = "0x7F367cC41522cE07553e823bf3be79A889DEbe1B"
LISTED_BTC = "bc1qsxjm2gdyu5ftqz6xz2c3c2dj3ej5gf6nykhzx5"
UNLISTED = "0x1111111111111111111111111111111111111111"
ENTRIES = (
    ListEntry("eth-1", EntryKind.ENTITY, ("Listed Mixer",), addresses=(f"ETH:{LISTED_ETH}",)),
    ListEntry("ton-1", EntryKind.ENTITY, ("Listed Wallet",), addresses=(f"TON:{KNOWN_TON}",)),
    ListEntry("btc-1", EntryKind.ENTITY, ("Listed Exchange",), addresses=(f"XBT:{LISTED_BTC}",)),
)
INDEX = ListIndex.build(ENTRIES)
TON = parse_address(KNOWN_TON)
# Every spelling of a listed address a memo may carry, and the entry it is.
SPELLINGS = [
    (LISTED_ETH, "eth-1"),
    (LISTED_ETH.lower(), "eth-1"),
    (LISTED_ETH.upper().replace("0X", "0x"), "eth-1"),
    (LISTED_ETH.removeprefix("0x"), "eth-1"),
    (LISTED_ETH.lower().removeprefix("0x"), "eth-1"),
    (LISTED_BTC, "btc-1"),
    (LISTED_BTC.upper(), "btc-1"),
    (TON.friendly(bounceable=True), "ton-1"),
    (TON.friendly(bounceable=False), "ton-1"),
    (TON.friendly(bounceable=True, test_only=True), "ton-1"),
    (TON.friendly(bounceable=False).replace("-", "+").replace("_", "/"), "ton-1"),
]


def memo_dest(memo: str, kind: DestinationType = DestinationType.CRYPTO_ADDRESS) -> PayoutDestination:
    return PayoutDestination(type=kind, address=UNLISTED, memo=memo)


def matched(destination: PayoutDestination) -> list[tuple[str, str]]:
    return sorted((h.uid, h.kind) for h in screen_destination_in(INDEX, destination))


@pytest.mark.parametrize(
    ("memo", "uid"),
    [
        (LISTED_ETH, "eth-1"),
        (f"=:ETH.ETH:{LISTED_ETH}", "eth-1"),
        (f"=:ETH.ETH:{LISTED_ETH}:0/1/0", "eth-1"),
        (f"s:ETH.USDT:{LISTED_ETH.lower()}:1e6", "eth-1"),
        (f"ethereum:{LISTED_ETH}@1", "eth-1"),
        (f"bitcoin:{LISTED_BTC}?amount=1", "btc-1"),
        (f"  {LISTED_BTC}  ", "btc-1"),
        (TON.friendly(bounceable=True), "ton-1"),
        (f"to:{TON.friendly(bounceable=False)}", "ton-1"),
        (f"=:TON.TON:{TON.friendly(bounceable=True, test_only=True)}", "ton-1"),
    ],
)
def test_a_listed_wallet_in_the_memo_is_a_match_of_the_memo(memo: str, uid: str) -> None:
    assert matched(memo_dest(memo)) == [(uid, "memo")]


def test_the_address_and_the_memo_matching_one_entry_is_one_match_of_the_address() -> None:
    both = PayoutDestination(type=DestinationType.CRYPTO_ADDRESS, address=LISTED_ETH, memo=f"=:ETH.ETH:{LISTED_ETH}")
    assert matched(both) == [("eth-1", "address")]
    two = PayoutDestination(type=DestinationType.CRYPTO_ADDRESS, address=LISTED_ETH, memo=LISTED_BTC)
    assert matched(two) == [("btc-1", "memo"), ("eth-1", "address")]


def test_an_unlisted_memo_or_none_matches_nothing() -> None:
    for memo in ("12345", "0", "=:ETH.ETH:" + UNLISTED, "hello world", LISTED_ETH[:-1]):
        assert matched(memo_dest(memo)) == [], memo
    assert matched(PayoutDestination(type=DestinationType.CRYPTO_ADDRESS, address=UNLISTED)) == []


@pytest.mark.parametrize("kind", sorted(set(DestinationType) - MEMO_TYPES))
def test_a_memo_no_rail_reads_is_not_screened(kind: DestinationType) -> None:
    """Rewards refuses a memo on these types and their rails refuse or ignore one: it says nothing of where the
    money goes (screening it would only hold payouts for words nobody acts on)."""
    if kind is DestinationType.STELLAR_ACCOUNT:
        dest = PayoutDestination(type=kind, address="G" + "A" * 55, memo=TON.friendly(bounceable=True)[:28])
    elif kind is DestinationType.UPI:  # a VPA or an IFSC/account, strictly (prizeflow_contracts.upi)
        dest = PayoutDestination(type=kind, address="player@paytm", memo=LISTED_ETH)
    else:
        dest = memo_dest(LISTED_ETH, kind)
    assert matched(dest) == []


separator = st.sampled_from(list(" =:./-_?&@#,;|+!~"))
filler = st.text(st.sampled_from("abcdefXYZ0123456789"), max_size=8)


@given(
    spelling=st.sampled_from(SPELLINGS),
    before=st.lists(st.tuples(filler, separator), max_size=3),
    after=st.lists(st.tuples(separator, filler), max_size=3),
)
def test_a_listed_spelling_between_any_separators_is_met(
    spelling: tuple[str, str], before: list[tuple[str, str]], after: list[tuple[str, str]]
) -> None:
    """Whatever a router or an exchange puts around it, once it stands between two characters that are no letter
    or digit (or the memo's ends), the listed address is found."""
    address, uid = spelling
    memo = "".join(a + b for a, b in before) + address + "".join(a + b for a, b in after)
    if len(memo.strip()) > 64 or memo.strip() != memo:
        memo = address  # a memo is at most 64 characters; whitespace around it is no part of it
    assert (uid, "memo") in matched(memo_dest(memo))


@given(st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=64))
def test_memo_tokens_are_runs_of_the_memo(memo: str) -> None:
    tokens = memo_tokens(memo)
    assert memo.strip() in tokens or not memo.strip()
    assert all(t in memo or (t.startswith("0x") and t[2:] in memo) for t in tokens)


def test_the_screen_names_the_memo_and_fails_closed_the_same() -> None:
    screen = ListsScreen(["ofac_sdn"], threshold=920)
    now = datetime.now(UTC)
    sha = "c" * 64
    screen.install(ListVersion("ofac_sdn", list_version(now, sha), now, now, sha, len(ENTRIES)), INDEX, at=now)
    result = screen.screen_destination(memo_dest(f"=:ETH.ETH:{LISTED_ETH}"))
    assert [(m.source, m.entry_uid, m.kind, m.score) for m in result.matches] == [("ofac_sdn", "eth-1", "memo", 1000)]
    assert result.hit
