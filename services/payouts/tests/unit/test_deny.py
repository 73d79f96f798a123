"""The payouts deny list (`PAYOUTS_DENY_DESTINATIONS`): parsed strictly, compared in one spelling per type."""

from __future__ import annotations

import pytest

from prizeflow_contracts.providers import DestinationType, PayoutDestination
from prizeflow_payouts.domain.deny import DenyList
from prizeflow_payouts.settings import PayoutsSettings
from prizeflow_ton.addresses import parse_address

RAW = "0:" + "ab" * 32


def dest(kind: DestinationType, address: str) -> PayoutDestination:
    return PayoutDestination(type=kind, address=address)


def test_a_ton_address_is_denied_in_every_spelling_of_it() -> None:
    friendly = parse_address(RAW).friendly(bounceable=True)
    deny = DenyList.parse([f"ton_wallet:{friendly}"])
    for spelling in (RAW, friendly, parse_address(RAW).friendly(bounceable=False)):
        assert deny.denies(dest(DestinationType.TON_WALLET, spelling))
    assert not deny.denies(dest(DestinationType.TON_WALLET, "0:" + "cd" * 32))


def test_other_addresses_are_compared_case_folded_and_per_type() -> None:
    deny = DenyList.parse([" email:Fraud@Example.com ", "crypto_address:0xAbC0000000000000000000000000000000000001"])
    assert deny.denies(dest(DestinationType.EMAIL, "fraud@example.COM"))
    assert deny.denies(dest(DestinationType.CRYPTO_ADDRESS, "0xabc0000000000000000000000000000000000001"))
    assert not deny.denies(dest(DestinationType.EMAIL, "0xabc0000000000000000000000000000000000002"))


def test_a_denied_wallet_is_denied_whatever_type_it_is_paid_as() -> None:
    """The type is not in the destination key, nor in the deny list's comparison: an exchange's USDT on TON pays
    a TON wallet as a `crypto_address`."""
    ton = parse_address(RAW)
    deny = DenyList.parse([f"ton_wallet:{ton.friendly(bounceable=True)}"])
    assert deny.denies(dest(DestinationType.CRYPTO_ADDRESS, ton.friendly(bounceable=False, test_only=True)))
    assert deny.denies(dest(DestinationType.CRYPTO_ADDRESS, RAW.upper()))
    assert not DenyList.parse([]).denies(dest(DestinationType.EMAIL, "fraud@example.com"))


@pytest.mark.parametrize(
    ("entry", "why"),
    [
        ("fraud@example.com", "is not <destination type>:<address>"),
        ("email:", "is not <destination type>:<address>"),
        ("wallet:abc", "unknown destination type"),
        ("ton_wallet:not-an-address", "ton_wallet:not-an-address"),
    ],
)
def test_a_malformed_entry_stops_start_up_naming_it(entry: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        DenyList.parse([entry])
    with pytest.raises(ValueError, match="payouts_deny_destinations"):
        PayoutsSettings(payouts_deny_destinations=entry)


def test_the_setting_takes_a_comma_separated_list_or_json() -> None:
    for value in ("email:a@b.c, email:d@e.f", '["email:a@b.c", "email:d@e.f"]'):
        settings = PayoutsSettings(payouts_deny_destinations=value)
        assert len(DenyList.parse(settings.payouts_deny_destinations)) == 2
