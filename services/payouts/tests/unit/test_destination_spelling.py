"""The one spelling of a destination (`prizeflow_contracts.providers.destination_spelling`): contracts parse TON
addresses without the TON library, so a property holds their parsing equal to `prizeflow_ton.addresses` for every
form of a valid address, and both refuse the same corrupted ones (bad checksum, unknown flags, another workchain,
wrong length, not base64)."""

from __future__ import annotations

import base64

from hypothesis import given, settings
from hypothesis import strategies as st

from prizeflow_contracts.providers import DestinationType, destination_spelling, ton_raw_address
from prizeflow_ton.addresses import InvalidTonAddressError, TonAddress, _crc16, parse_address

WORKCHAINS = frozenset({0, -1})
FRIENDLY_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/_-"


def ton_library(text: str) -> str | None:
    try:
        return parse_address(text, workchains=WORKCHAINS).raw
    except InvalidTonAddressError:
        return None


def friendly(tag: int, workchain: int, account: bytes, *, url_safe: bool, crc_delta: int = 0) -> str:
    body = bytes([tag]) + (workchain % 256).to_bytes(1, "big") + account
    crc = (int.from_bytes(_crc16(body), "big") + crc_delta) % 0x10000
    data = body + crc.to_bytes(2, "big")
    return (base64.urlsafe_b64encode if url_safe else base64.standard_b64encode)(data).decode()


accounts = st.binary(min_size=32, max_size=32)
ton_addresses = st.builds(
    TonAddress, workchain=st.sampled_from(sorted(WORKCHAINS)), account=accounts, bounceable=st.none()
)


@st.composite
def valid_spellings(draw: st.DrawFn) -> tuple[TonAddress, str]:
    address = draw(ton_addresses)
    form = draw(st.sampled_from(["raw", "raw_upper", "raw_mixed", "friendly", "friendly_std"]))
    if form.startswith("raw"):
        text = address.raw
        if form == "raw_upper":
            text = text.upper()
        elif form == "raw_mixed":
            text = "".join(c.upper() if draw(st.booleans()) else c for c in text)
    else:
        text = address.friendly(bounceable=draw(st.booleans()), test_only=draw(st.booleans()))
        if form == "friendly_std":
            text = text.replace("-", "+").replace("_", "/")
    return address, draw(st.sampled_from(["", " ", "\t", "\n "])) + text + draw(st.sampled_from(["", " ", "\r\n"]))


@settings(max_examples=400, deadline=None)
@given(valid_spellings(), st.sampled_from(list(DestinationType)))
def test_every_form_of_a_valid_address_is_its_raw_spelling(case: tuple[TonAddress, str], kind: DestinationType) -> None:
    address, text = case
    assert ton_raw_address(text) == ton_library(text) == address.raw
    assert destination_spelling(kind, text) == address.raw


@st.composite
def corrupted(draw: st.DrawFn) -> str:
    account = draw(accounts)
    workchain = draw(st.sampled_from([0, -1, 1, 2, -2, 127]))
    tag = draw(st.sampled_from([0x11, 0x51, 0x91, 0xD1, 0x00, 0x10, 0x12, 0x31, 0x50, 0x80, 0xFF]))
    url_safe = draw(st.booleans())
    how = draw(st.sampled_from(["crc", "flags_or_workchain", "shorter", "longer", "char", "raw_length", "raw_wc"]))
    if how == "crc":
        return friendly(0x11, 0, account, url_safe=url_safe, crc_delta=draw(st.integers(1, 0xFFFF)))
    if how == "flags_or_workchain":
        return friendly(tag, workchain, account, url_safe=url_safe)
    text = friendly(0x51, 0, account, url_safe=url_safe)
    if how == "shorter":
        return text[: draw(st.integers(0, 47))]
    if how == "longer":
        return text + draw(st.text(FRIENDLY_ALPHABET, min_size=1, max_size=8))
    if how == "char":
        i = draw(st.integers(0, 47))
        return text[:i] + draw(st.sampled_from(FRIENDLY_ALPHABET + "=.!")) + text[i + 1 :]
    if how == "raw_length":
        return f"0:{account.hex()}"[: draw(st.integers(0, 65))] + draw(st.sampled_from(["", "a", "ab", "0"]))
    return f"{draw(st.sampled_from(['1', '-2', '00', '+0', '']))}:{account.hex()}"


@settings(max_examples=600, deadline=None)
@given(st.one_of(corrupted(), st.text(FRIENDLY_ALPHABET, min_size=48, max_size=48), st.text(max_size=70)))
def test_contracts_accept_exactly_what_the_ton_library_accepts(text: str) -> None:
    """A corrupted address is refused by both (a one-character change may still be valid: then both accept it,
    with one raw spelling); what is not a TON address is spelled without whitespace, case-folded."""
    assert ton_raw_address(text) == ton_library(text)
    if ton_library(text) is None:
        assert destination_spelling(DestinationType.TON_WALLET, text) == "".join(text.split()).casefold()


def test_known_corruptions_are_refused() -> None:
    good = parse_address("UQBp4MMLFpzSe5t3EugHZonZFMyWl9owGKQiDaiaC-zuO5ZB")
    text = good.friendly(bounceable=True)
    assert ton_raw_address(text) == good.raw
    bad_crc = text[:-1] + ("A" if text[-1] != "A" else "B")
    assert ton_raw_address(bad_crc) is None
    assert ton_raw_address(friendly(0x12, 0, good.account, url_safe=True)) is None  # unknown flags
    assert ton_raw_address(friendly(0x11, 1, good.account, url_safe=True)) is None  # workchain 1
    assert ton_raw_address(text[:-4]) is None
    assert ton_raw_address("1:" + good.account.hex()) is None
    assert destination_spelling(DestinationType.CRYPTO_ADDRESS, " 0xAbC\t01 ") == "0xabc01"
