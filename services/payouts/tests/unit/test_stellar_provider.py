"""Stellar provider without I/O: configuration, validation before anything is built, amounts, classification."""

from __future__ import annotations

from typing import Any

import pytest
from stellar_sdk import Keypair, MuxedAccount

import prizeflow_stellar as ps
from prizeflow_contracts.errors import PayoutErrorCode, is_retryable
from prizeflow_contracts.events.signer import SignatureRefusalCode
from prizeflow_contracts.money import Money
from prizeflow_contracts.providers import DestinationType, PayoutDestination, PayoutInstruction
from prizeflow_payouts.adapters.stellar import StellarPayoutProvider, classify
from prizeflow_payouts.adapters.stellar.factory import stellar_rail
from prizeflow_payouts.bootstrap import parse_config
from prizeflow_payouts.provider_spec import ProviderConfigError, ProviderContext

CTX = ProviderContext(live_execution=True, database_url="postgresql+asyncpg://x@127.0.0.1:1/x", provider_timeout_s=1)
FUNDING = Keypair.random().public_key
STELLAR = {"name": "stellar", "type": "stellar", "assets": ["XLM", "USDC"], "destination_types": ["stellar_account"]}


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAYOUT_SOURCE_ACCOUNT", FUNDING)
    monkeypatch.setenv("SOROBAN_RPC_URL", "http://127.0.0.1:1/")
    monkeypatch.delenv("PAYOUT_CHANNEL_ACCOUNTS", raising=False)
    monkeypatch.delenv("PAYOUT_CONTRACT_ID", raising=False)


def provider(**options: Any) -> StellarPayoutProvider:
    config = parse_config({"providers": [{**STELLAR, "options": options}]}, CTX, env={})
    p = config.registry.get("stellar").provider
    assert isinstance(p, StellarPayoutProvider)
    return p


def instruction(address: str, amount: int = 10_000_000, asset: str = "XLM", key: str = "k-1") -> PayoutInstruction:
    return PayoutInstruction.model_construct(
        payout_id="po-1",
        idempotency_key=key,
        amount=Money.model_construct(asset=asset, amount=amount),
        destination=PayoutDestination.model_construct(type=DestinationType.STELLAR_ACCOUNT, address=address, memo=None),
        metadata={},
    )


def test_stellar_is_registered_with_its_environment() -> None:
    p = provider(max_ops_per_tx=50, validity_s=120)
    assert p.o.funding_account == FUNDING
    assert p.o.max_ops_per_tx == 50
    assert p.o.live_execution
    caps = stellar_rail(p).capabilities(p.o.assets, (DestinationType.STELLAR_ACCOUNT,))
    assert caps.requires_signature
    assert caps.supports_batching


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"mode": "bridge"}, "mode must be payments or contract"),
        ({"mode": "contract"}, "PAYOUT_CONTRACT_ID"),
        ({"max_ops_per_tx": 101}, "max_ops_per_tx"),
        ({"channel_accounts": ["GNOPE"]}, "channel_accounts"),
        ({"surprise": 1}, "unknown stellar options"),
    ],
)
def test_bad_stellar_options_stop_the_service(options: dict[str, Any], match: str) -> None:
    with pytest.raises(ProviderConfigError, match=match):
        provider(**options)


def test_missing_source_account_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PAYOUT_SOURCE_ACCOUNT")
    with pytest.raises(ProviderConfigError, match="PAYOUT_SOURCE_ACCOUNT"):
        provider()


def test_assets_without_a_stellar_mapping_are_refused() -> None:
    with pytest.raises(ProviderConfigError, match="no Stellar mapping"):
        parse_config({"providers": [{**STELLAR, "assets": ["USD"]}]}, CTX, env={})


def test_validation_before_anything_is_built() -> None:
    p = provider()
    good = Keypair.random().public_key
    assert p.validate(instruction(good)) is None
    bad_checksum = good[:-1] + ("A" if good[-1] != "A" else "B")
    err = p.validate(instruction(bad_checksum))
    assert err is not None
    assert err.code is PayoutErrorCode.INVALID_DESTINATION
    muxed = MuxedAccount(good, 1).account_muxed
    assert muxed is not None
    err = p.validate(instruction(muxed))
    assert err is not None
    assert "muxed" in err.message
    contract = ps.address_kind("CA3D5KRYM6CB7OWQ6TWYRR3Z4T7GNZLKERYNZGGA5SOAOPIFY6YQGAXE")
    assert contract is ps.AddressKind.CONTRACT
    err = p.validate(instruction("CA3D5KRYM6CB7OWQ6TWYRR3Z4T7GNZLKERYNZGGA5SOAOPIFY6YQGAXE"))
    assert err is not None
    assert err.code is PayoutErrorCode.INVALID_DESTINATION
    err = p.validate(instruction(FUNDING))
    assert err is not None
    assert err.code is PayoutErrorCode.INVALID_DESTINATION
    err = p.validate(instruction(good, asset="USD"))
    assert err is not None
    assert err.code is PayoutErrorCode.UNSUPPORTED_ASSET
    err = p.validate(instruction(good, key="not a key"))
    assert err is not None
    assert err.code is PayoutErrorCode.INVALID_REQUEST
    assert p.validate(instruction(good, amount=ps.INT64_MAX)) is None
    err = p.validate(instruction(good, amount=ps.INT64_MAX + 1))
    assert err is not None
    assert err.code is PayoutErrorCode.AMOUNT_ABOVE_MAXIMUM
    err = p.validate(instruction(good, amount=0))
    assert err is not None


@pytest.mark.parametrize(
    ("text", "stroops"),
    [
        ("0.0000001", 1),
        ("1", 10_000_000),
        ("12.5", 125_000_000),
        ("922337203685.4775807", 2**63 - 1),
    ],
)
def test_amount_conversion_is_exact_at_the_edges(text: str, stroops: int) -> None:
    assert ps.to_stroops(text) == stroops
    assert ps.to_stroops(ps.from_stroops(stroops)) == stroops


@pytest.mark.parametrize("text", ["0.00000001", "922337203685.4775808", "0", "-1", "1e3", "1.", " 1", "1\n"])
def test_amount_conversion_refuses_what_is_not_exact(text: str) -> None:
    with pytest.raises(ps.AmountError):
        ps.to_stroops(text)


@pytest.mark.parametrize(
    ("code", "expected", "retryable"),
    [
        ("tx_bad_seq", PayoutErrorCode.TX_BAD_SEQ, True),
        ("tx_insufficient_fee", PayoutErrorCode.TX_INSUFFICIENT_FEE, True),
        ("tx_too_late", PayoutErrorCode.TX_EXPIRED, True),
        ("tx_insufficient_balance", PayoutErrorCode.INSUFFICIENT_PROVIDER_FUNDS, True),
        ("tx_bad_auth", PayoutErrorCode.AUTHENTICATION_FAILED, False),
        ("tx_something_new", PayoutErrorCode.TX_FAILED, False),
    ],
)
def test_transaction_codes_map_to_stable_codes(code: str, expected: PayoutErrorCode, retryable: bool) -> None:
    assert classify.tx_code(code) is expected
    assert is_retryable(expected) is retryable


def test_operation_and_refusal_codes() -> None:
    assert classify.op_code("payment_success") is None
    assert classify.op_code("payment_no_destination") is PayoutErrorCode.DESTINATION_NOT_FOUND
    assert classify.op_code("payment_no_trust") is PayoutErrorCode.DESTINATION_NO_TRUSTLINE
    assert classify.op_code("payment_underfunded") is PayoutErrorCode.INSUFFICIENT_PROVIDER_FUNDS
    assert classify.refusal_code(SignatureRefusalCode.BACKEND_UNAVAILABLE) is PayoutErrorCode.SIGNER_UNAVAILABLE
    assert classify.refusal_code(SignatureRefusalCode.OVER_DAILY_CAP) is PayoutErrorCode.SIGNATURE_REFUSED
