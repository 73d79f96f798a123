"""The ton_wallet provider without I/O: its providers-file entry (fail closed, naming the culprit), address
validation (raw and user-friendly, bounceable or not), idempotent results, and toncenter error classification."""

from __future__ import annotations

from typing import Any

import pytest

from prizeflow_contracts.errors import PayoutErrorCode
from prizeflow_contracts.money import ASSETS, Money
from prizeflow_contracts.providers import DestinationType, PayoutDestination, PayoutInstruction, ProviderType
from prizeflow_payouts.adapters.ton.batching import TonBatchDriver
from prizeflow_payouts.adapters.ton.driver import TonDriver
from prizeflow_payouts.adapters.ton.factory import ton_rail
from prizeflow_payouts.adapters.ton.provider import TonWalletProvider
from prizeflow_payouts.adapters.ton.toncenter import api_error
from prizeflow_payouts.bootstrap import parse_config
from prizeflow_payouts.provider_spec import ProviderConfigError, ProviderContext
from prizeflow_ton.addresses import TonAddress

CTX = ProviderContext(live_execution=False, database_url="postgresql+asyncpg://x@127.0.0.1:1/x", provider_timeout_s=10)
WALLET = "0:" + "11" * 32
MASTER = "0:" + "44" * 32
JETTON_WALLET = "0:" + "33" * 32
DEST = TonAddress(0, bytes.fromhex("22" * 32), None)


def spec(**options: Any) -> dict[str, Any]:
    opts: dict[str, Any] = {
        "network": "testnet",
        "api_url": "http://127.0.0.1:9",
        "wallet": WALLET,
        "assets": {
            "TON": {"decimals": 9},
            "USDT": {"decimals": 6, "jetton_master": MASTER, "jetton_wallet": JETTON_WALLET},
        },
    }
    opts.update(options)
    return {
        "name": "ton",
        "type": "ton_wallet",
        "assets": ["TON", "USDT"],
        "destination_types": ["ton_wallet"],
        "options": opts,
    }


def build(env: dict[str, str] | None = None, **options: Any) -> TonWalletProvider:
    config = parse_config({"providers": [spec(**options)]}, CTX, env=env or {})
    provider = config.registry.get("ton").provider
    assert isinstance(provider, TonWalletProvider)
    return provider


def instruction(address: str, *, asset: str = "TON", amount: int = 10**9, memo: str | None = None) -> PayoutInstruction:
    return PayoutInstruction(
        payout_id="po-1",
        idempotency_key="k-1",
        amount=Money(asset=asset, amount=amount),
        destination=PayoutDestination(type=DestinationType.TON_WALLET, address=address, memo=memo),
    )


def test_a_valid_entry_builds_the_rail() -> None:
    provider = build()
    assert provider.provider_type is ProviderType.TON_WALLET
    caps = ton_rail(provider).capabilities(("TON",), (DestinationType.TON_WALLET,))
    assert caps.requires_signature
    assert caps.async_confirmation
    assert not caps.supports_batching
    assert provider.o.assets["USDT"].jetton_wallet == JETTON_WALLET


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"assets": {"TON": {"decimals": 6}, "USDT": {"decimals": 6}}}, "decimals"),
        ({"assets": {"TON": {"decimals": 9}}}, "exactly the provider's assets"),
        ({"assets": {"TON": {"decimals": 9}, "USDT": {"decimals": 6, "jetton_master": MASTER}}}, "jetton_wallet"),
        ({"wallet": "EQ-not-an-address"}, "wallet"),
        ({"network": "mainnet"}, "PAYOUTS_LIVE_EXECUTION"),
        ({"api_url": "http://toncenter.example.com"}, "https"),
        ({"timeout_s": 30}, "timeout_s"),
        ({"bogus": 1}, "unknown option"),
        ({"wallet": None, "wallet_env": "TON_WALLET"}, "TON_WALLET, which is not set"),
        ({"api_url": "https://toncenter.com"}, "must be local or"),  # testnet declared, mainnet URL, not live
        ({"api_url": "https://ton-api.example.com"}, "must be local or"),
        ({"expiry_margin_s": 0}, "expiry_margin_s"),
    ],
)
def test_a_bad_entry_stops_start_up_naming_why(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ProviderConfigError, match=message):
        build(**options)


def test_the_network_is_never_assumed() -> None:
    entry = spec()
    del entry["options"]["network"]
    with pytest.raises(ProviderConfigError, match="network"):
        parse_config({"providers": [entry]}, CTX, env={})


def test_the_testnet_toncenter_is_allowed_without_live_execution() -> None:
    assert build(api_url="https://testnet.toncenter.com").o.api_url == "https://testnet.toncenter.com"


def test_the_api_key_is_not_in_the_options_repr() -> None:
    config = parse_config(
        {"providers": [{**spec(), "secrets": {"api_key": "TON_KEY"}}]}, CTX, env={"TON_KEY": "s3cr3t-key"}
    )
    provider = config.registry.get("ton").provider
    assert isinstance(provider, TonWalletProvider)
    assert provider.o.api_key == "s3cr3t-key"
    assert "s3cr3t" not in repr(provider.o)


def test_addresses_and_key_can_come_from_the_environment() -> None:
    provider = build({"TON_WALLET": DEST.friendly(bounceable=True)}, wallet=None, wallet_env="TON_WALLET")
    assert provider.o.wallet == DEST.raw


@pytest.mark.parametrize("address", [DEST.raw, DEST.friendly(bounceable=True), DEST.friendly(bounceable=False)])
def test_every_address_form_is_accepted(address: str) -> None:
    assert build().validate(instruction(address)) is None


@pytest.mark.parametrize(
    ("make", "code"),
    [
        (lambda: instruction("EQ" + "A" * 46), PayoutErrorCode.INVALID_DESTINATION),
        (lambda: instruction("-1:" + "22" * 32), PayoutErrorCode.INVALID_DESTINATION),
        (lambda: instruction(WALLET), PayoutErrorCode.INVALID_DESTINATION),
        (lambda: instruction(JETTON_WALLET, asset="USDT", amount=10), PayoutErrorCode.INVALID_DESTINATION),
        (lambda: instruction(DEST.raw, memo="hello"), PayoutErrorCode.INVALID_DESTINATION),
        (lambda: instruction(DEST.raw, asset="USDC"), PayoutErrorCode.UNSUPPORTED_ASSET),
    ],
)
def test_what_cannot_be_paid_is_refused_before_anything_is_built(make: Any, code: PayoutErrorCode) -> None:
    err = build().validate(make())
    assert err is not None
    assert err.code is code
    assert not err.retryable


def test_a_testnet_only_address_is_refused_on_mainnet() -> None:
    mainnet = (
        parse_config(
            {"providers": [spec(network="mainnet", api_url="https://toncenter.com")]},
            ProviderContext(live_execution=True, database_url="postgresql+asyncpg://x@h/x", provider_timeout_s=10),
            env={},
        )
        .registry.get("ton")
        .provider
    )
    assert isinstance(mainnet, TonWalletProvider)
    err = mainnet.validate(instruction(DEST.friendly(bounceable=False, test_only=True)))
    assert err is not None
    assert err.code is PayoutErrorCode.INVALID_DESTINATION


@pytest.mark.parametrize(
    ("status", "error", "code"),
    [
        (429, "", PayoutErrorCode.RATE_LIMITED),
        (401, "API key does not exist", PayoutErrorCode.AUTHENTICATION_FAILED),
        (500, "External message was not accepted (exitcode=33: seqno)", PayoutErrorCode.TX_BAD_SEQ),
        (500, "External message was not accepted (exitcode=36: valid_until passed)", PayoutErrorCode.TX_EXPIRED),
        (500, "External message was not accepted (exitcode=35: signature)", PayoutErrorCode.SIGNATURE_REFUSED),
        (503, "unavailable", PayoutErrorCode.PROVIDER_UNAVAILABLE),
        (400, "bad boc", PayoutErrorCode.INVALID_REQUEST),
    ],
)
def test_api_errors_map_to_stable_codes(status: int, error: str, code: PayoutErrorCode) -> None:
    assert api_error(status, error).code is code


def test_the_highload_lane_is_chosen_by_wallet_version_and_batches() -> None:
    assert isinstance(build().driver, TonDriver)
    assert build().o.subwallet_id == 698983191
    provider = build(wallet_version="highload_v3", highload_timeout_s=600, batch_size=100)
    assert isinstance(provider.driver, TonBatchDriver)
    assert ton_rail(provider).capabilities(("TON",), (DestinationType.TON_WALLET,)).supports_batching
    assert provider.o.subwallet_id == 0x10AD  # highload wallet v3's recommended subwallet id
    assert (provider.o.highload_timeout_s, provider.o.batch_size) == (600, 100)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"batch_size": 5}, "do not apply to wallet_version v4r2"),
        ({"wallet_version": "highload_v3", "validity_s": 60}, "do not apply to wallet_version highload_v3"),
        ({"wallet_version": "highload_v3", "batch_size": 255}, "batch_size"),
        ({"wallet_version": "highload_v3", "highload_timeout_s": 60, "created_at_lag_s": 20}, "highload_timeout_s"),
        ({"wallet_version": "highload_v4"}, "wallet_version"),
    ],
)
def test_highload_options_fail_closed(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ProviderConfigError, match=message):
        build(**options)


def _row(state: str, fee: int | None) -> dict[str, Any]:
    return {
        "idempotency_key": "k-1",
        "message_hash": "ab" * 32,
        "tx_hash": "cd" * 32,
        "state": state,
        "fee": fee,
        "error_code": None,
        "detail": None,
        "retryable": None,
    }


def test_a_paid_payout_reports_its_transaction_fee_in_nanotons() -> None:
    provider = build()
    result = provider._result(_row("paid", 3_000_001))
    assert result.fee == Money(asset="TON", amount=3_000_001)
    assert result.fee.asset in ASSETS  # a registered asset: payouts.fee_asset holds it


@pytest.mark.parametrize(("state", "fee"), [("paid", None), ("paid", 0), ("sending", 3_000_000)])
def test_no_fee_is_reported_when_unknown_nothing_or_not_paid(state: str, fee: int | None) -> None:
    assert build()._result(_row(state, fee)).fee is None
