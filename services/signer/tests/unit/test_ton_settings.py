"""The signer's TON settings fail closed: a TON wallet needs caps for its assets and well-formed addresses."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError
from stellar_sdk import Keypair

from prizeflow_contracts.events.signer import SignatureRefusalCode, TonSignatureRequested, TonTransferIntent
from prizeflow_signer.bootstrap import spending_policy, ton_highload_policy, ton_policy
from prizeflow_signer.domain.ton import check_ton_request
from prizeflow_signer.settings import SignerSettings
from prizeflow_stellar.checks import IntentViolation
from prizeflow_ton.addresses import TonAddress
from prizeflow_ton.messages import Transfer, TransferKind, WalletMessage, to_b64, unsigned_body

WALLET = TonAddress(0, bytes.fromhex("11" * 32), None)
MASTER = "0:" + "44" * 32
JETTON_WALLET = "0:" + "33" * 32


def settings(**kw: Any) -> SignerSettings:
    base: dict[str, Any] = {
        "database_url": "postgresql+asyncpg://x@127.0.0.1:1/x",
        "kafka_bootstrap_servers": "127.0.0.1:1",
        "payout_source_account": Keypair.random().public_key,
    }
    base.update(kw)
    return SignerSettings(**base)


def test_no_ton_wallet_means_no_ton_policy() -> None:
    assert ton_policy(settings()) is None


def test_a_ton_wallet_in_any_form_becomes_the_raw_policy() -> None:
    s = settings(
        signer_ton_wallet=WALLET.friendly(bounceable=True),
        signer_ton_jettons={"USDT": {"master": MASTER, "wallet": JETTON_WALLET}},
    )
    policy = ton_policy(s)
    assert policy is not None
    assert policy.wallet == WALLET.raw
    assert policy.jettons["USDT"].wallet == JETTON_WALLET


def test_a_ton_asset_without_caps_stops_start_up() -> None:
    with pytest.raises(ValidationError, match="every TON asset needs"):
        settings(
            signer_ton_wallet=WALLET.raw,
            signer_ton_jettons={"DOGS": {"master": MASTER, "wallet": JETTON_WALLET}},
        )


def test_a_jetton_needs_exactly_master_and_wallet() -> None:
    caps = {"XLM": 1, "USDC": 1, "TON": 1, "USDT": 1}
    with pytest.raises(ValidationError, match="exactly `master` and `wallet`"):
        settings(
            signer_ton_wallet=WALLET.raw,
            signer_ton_jettons={"USDT": {"master": MASTER}},
            signer_tx_caps=json.loads(json.dumps(caps)),
            signer_daily_caps=caps,
        )


def test_a_malformed_ton_wallet_stops_start_up_naming_the_setting() -> None:
    with pytest.raises(ValueError, match="SIGNER_TON_WALLET"):
        ton_policy(settings(signer_ton_wallet="EQ-not-an-address"))


@pytest.mark.parametrize("bounceable", [True, False])
def test_a_ton_destination_denied_in_its_user_friendly_form_is_never_signed(bounceable: bool) -> None:
    """SIGNER_DENY_DESTINATIONS holds addresses as operators copy them: a TON address in its user-friendly form
    (bounceable or not) denies every form of it, as the message carries it raw."""
    denied = TonAddress(0, bytes.fromhex("66" * 32), None)
    s = settings(signer_ton_wallet=WALLET.raw, signer_deny_destinations=denied.friendly(bounceable=bounceable))
    policy = ton_policy(s)
    assert policy is not None
    now = 1_800_000_000
    m = WalletMessage(
        wallet=WALLET.raw,
        subwallet_id=policy.subwallet_id,
        valid_until=now + 60,
        seqno=7,
        transfer=Transfer(kind=TransferKind.TON, destination=denied.raw, amount=10**9, bounce=False),
    )
    request = TonSignatureRequested(
        request_id="ton-1",
        payout_ids=["po-1"],
        wallet=WALLET.raw,
        unsigned_body_boc=to_b64(unsigned_body(m)),
        seqno=7,
        valid_until=m.valid_until,
        intent=TonTransferIntent(payout_id="po-1", destination=denied.raw, asset="TON", amount=10**9, bounce=False),
    )
    checked = check_ton_request(request, policy, now=now)
    with pytest.raises(IntentViolation) as refused:
        spending_policy(s).check_transaction(checked.destinations, checked.amounts)
    assert refused.value.code is SignatureRefusalCode.DESTINATION_DENIED


def test_a_highload_wallet_has_its_own_policy_and_jetton_wallets() -> None:
    assert ton_highload_policy(settings()) is None
    highload_jetton_wallet = "0:" + "77" * 32  # the highload wallet's own jetton wallet of the same master
    s = settings(
        signer_ton_wallet=WALLET.raw,
        signer_ton_jettons={"USDT": {"master": MASTER, "wallet": JETTON_WALLET}},
        signer_ton_highload_wallet=TonAddress(0, bytes.fromhex("88" * 32), None).friendly(bounceable=True),
        signer_ton_highload_jettons={"USDT": {"master": MASTER, "wallet": highload_jetton_wallet}},
        signer_ton_highload_max_timeout_s=600,
    )
    policy = ton_highload_policy(s)
    assert policy is not None
    assert policy.wallet == "0:" + "88" * 32
    assert policy.subwallet_id == 0x10AD
    assert policy.jettons["USDT"].wallet == highload_jetton_wallet
    assert policy.max_timeout_s == 600
    assert policy.max_batch == 254
    with pytest.raises(ValidationError, match="every TON asset needs"):
        settings(signer_ton_highload_wallet=WALLET.raw, signer_ton_highload_jettons={"DOGS": {"master": MASTER,
                 "wallet": JETTON_WALLET}})  # fmt: skip
    with pytest.raises(ValueError, match="SIGNER_TON_HIGHLOAD_WALLET"):
        ton_highload_policy(settings(signer_ton_highload_wallet="EQ-not-an-address"))
    with pytest.raises(ValidationError):
        settings(signer_ton_highload_max_batch=255)
