"""prizeflow_stellar: exact amounts, StrKeys, assets, builders and the intent checker on edge cases."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st
from stellar_sdk import Asset, Keypair, MuxedAccount, StrKey, TransactionEnvelope

import prizeflow_stellar as ps
from prizeflow_contracts.events.signer import ContractInvokeIntent, PaymentIntent
from prizeflow_contracts.money import USDC_TESTNET_ISSUER

NET = "Prizeflow Stellar Lib ; 2025"
SRC = Keypair.random().public_key
DEST = Keypair.random().public_key
CONTRACT = StrKey.encode_contract(b"\x05" * 32)


@pytest.mark.parametrize(
    ("text", "stroops"),
    [
        ("0.0000001", 1),
        ("1", 10_000_000),
        ("1.5", 15_000_000),
        ("100.5000000", 1_005_000_000),
        ("922337203685.4775807", 2**63 - 1),
    ],
)
def test_to_stroops_is_exact_at_the_edges(text: str, stroops: int) -> None:
    assert ps.to_stroops(text) == stroops
    assert ps.to_stroops(ps.from_stroops(stroops)) == stroops


@pytest.mark.parametrize(
    "text",
    [
        "0.00000001",
        "1.12345678",
        "922337203685.4775808",
        "999999999999999999999",
        "-1",
        "1e3",
        " 1",
        "1.",
        ".5",
        "01",
        "1\n",
        "0",
        "0.0000000",
        "NaN",
        "\uff11",
    ],
)
def test_to_stroops_refuses(text: str) -> None:
    with pytest.raises(ps.AmountError):
        ps.to_stroops(text)


def test_zero_only_when_allowed_and_format() -> None:
    assert ps.to_stroops("0", allow_zero=True) == 0
    assert ps.from_stroops(1) == "0.0000001"
    assert ps.from_stroops(2**63 - 1) == "922337203685.4775807"
    with pytest.raises(ps.AmountError):
        ps.from_stroops(2**63)
    with pytest.raises(ps.AmountError):
        ps.from_stroops(-1)


@given(st.integers(min_value=1, max_value=2**63 - 1))
def test_round_trip_every_int64(stroops: int) -> None:
    assert ps.to_stroops(ps.from_stroops(stroops)) == stroops


def test_strkeys() -> None:
    muxed = MuxedAccount(DEST, 42).account_muxed
    assert muxed is not None
    assert ps.address_kind(DEST) is ps.AddressKind.ACCOUNT
    assert ps.address_kind(muxed) is ps.AddressKind.MUXED
    assert ps.address_kind(CONTRACT) is ps.AddressKind.CONTRACT
    broken = DEST[:-1] + ("A" if DEST[-1] != "A" else "B")  # checksum no longer matches
    assert ps.address_kind(broken) is None
    assert ps.address_kind(Keypair.random().secret) is None
    assert ps.validate_destination(muxed) is ps.AddressKind.MUXED
    with pytest.raises(ps.InvalidAddressError):
        ps.validate_destination(muxed, allow_muxed=False)
    with pytest.raises(ps.InvalidAddressError):
        ps.validate_destination(CONTRACT)
    with pytest.raises(ps.InvalidAddressError):
        ps.validate_destination(broken)


@pytest.mark.parametrize(
    ("key", "ok"),
    [
        ("claim-42:payout:1", True),
        ("a" * 255, True),
        ("a" * 256, False),
        ("", False),
        ("a b", False),
        ("é", False),
        ("a\n", False),
    ],
)
def test_idempotency_keys(key: str, ok: bool) -> None:
    assert ps.is_valid_idempotency_key(key) is ok


def test_assets_from_the_registry() -> None:
    assert ps.stellar_asset("XLM").is_native()
    usdc = ps.stellar_asset("USDC")
    assert (usdc.code, usdc.issuer) == ("USDC", USDC_TESTNET_ISSUER)
    assert ps.registry_code_of(usdc) == "USDC"
    assert ps.registry_code_of(Asset("USDC", Keypair.random().public_key)) is None  # same code, other issuer
    assert ps.supported_asset_codes() == {"XLM", "USDC"}
    for code in ("USD", "SP", "NOPE"):
        with pytest.raises(ps.UnsupportedAssetError):
            ps.stellar_asset(code)


def test_payments_batch_has_sequence_fee_and_upper_time_bound() -> None:
    until = int(time.time()) + 120
    items = [ps.PaymentInstruction(f"po-{i}", DEST, "USDC", i + 1) for i in range(100)]
    built = ps.build_payments(
        source_account=SRC, sequence=77, payments=items, network_passphrase=NET, valid_until=until
    )
    env = TransactionEnvelope.from_xdr(built.envelope_xdr, NET)
    assert env.transaction.sequence == 77
    assert built.sequence == 77
    assert built.fee == 100 * 100
    assert built.max_time == until
    assert env.hash_hex() == built.tx_hash
    assert all(isinstance(i, PaymentIntent) for i in built.intent)
    assert [i.amount_stroops for i in built.intent] == list(range(1, 101))  # type: ignore[union-attr]
    with pytest.raises(ps.BuildError):
        ps.build_payments(
            source_account=SRC, sequence=77, payments=[*items, items[0]], network_passphrase=NET, valid_until=until
        )
    with pytest.raises(ps.BuildError):
        ps.build_payments(source_account=SRC, sequence=77, payments=items[:1], network_passphrase=NET, valid_until=0)


def test_contract_invoke_carries_the_winners_vector() -> None:
    winners = [ps.Winner(f"po-{i}", Keypair.random().public_key, 10 * (i + 1)) for i in range(100)]
    built = ps.build_contract_invoke(
        source_account=SRC,
        sequence=5,
        contract_id=CONTRACT,
        winners=winners,
        network_passphrase=NET,
        valid_until=int(time.time()) + 60,
        asset_code="USDC",
    )
    (intent,) = built.intent
    assert isinstance(intent, ContractInvokeIntent)
    assert intent.method == ps.DEFAULT_METHOD_NAME
    assert intent.asset == "USDC"
    assert [(w.address, w.amount_stroops) for w in intent.winners] == [(w.address, w.amount_stroops) for w in winners]
    policy = ps.CheckPolicy(
        network_passphrase=NET,
        funding_account=SRC,
        allowed_sources=frozenset({SRC}),
        max_fee_stroops=10**6,
        contract_id=CONTRACT,
        method_name=ps.DEFAULT_METHOD_NAME,
        allowed_assets=frozenset({"USDC"}),
    )
    req = built.signature_request(request_id="r-1", network_passphrase=NET, max_fee_stroops=10**6)
    checked = ps.decode_and_check(built.envelope_xdr, req, policy)
    assert checked.amounts == {"USDC": sum(w.amount_stroops for w in winners)}
    assert checked.tx_hash_hex == built.tx_hash


def test_channel_account_spends_from_the_funding_account_only() -> None:
    channel = Keypair.random().public_key
    policy = ps.CheckPolicy(
        network_passphrase=NET,
        funding_account=SRC,
        allowed_sources=frozenset({SRC, channel}),
        max_fee_stroops=10**6,
        contract_id=None,
        method_name=ps.DEFAULT_METHOD_NAME,
        allowed_assets=frozenset({"XLM"}),
    )
    args = {
        "source_account": channel,
        "sequence": 9,
        "payments": [ps.PaymentInstruction("po-1", DEST, "XLM", 5)],
        "network_passphrase": NET,
        "valid_until": int(time.time()) + 60,
    }
    good = ps.build_payments(operation_source=SRC, **args)  # type: ignore[arg-type]
    ps.decode_and_check(
        good.envelope_xdr, good.signature_request(request_id="r", network_passphrase=NET, max_fee_stroops=10**6), policy
    )
    bad = ps.build_payments(**args)  # type: ignore[arg-type]  # the channel's own funds
    with pytest.raises(ps.IntentViolation) as err:
        ps.decode_and_check(
            bad.envelope_xdr,
            bad.signature_request(request_id="r", network_passphrase=NET, max_fee_stroops=10**6),
            policy,
        )
    assert err.value.code.value == "wrong_source"


def test_result_codes() -> None:
    from stellar_sdk import xdr

    result = xdr.TransactionResult(
        fee_charged=xdr.Int64(0),
        result=xdr.TransactionResultResult(code=xdr.TransactionResultCode.txBAD_SEQ),
        ext=xdr.TransactionResultExt(0),
    )
    assert ps.transaction_result_code(result.to_xdr()) == "tx_bad_seq"


def _usdc_payment() -> ps.BuiltTransaction:
    return ps.build_payments(
        source_account=SRC,
        sequence=9,
        payments=[ps.PaymentInstruction("po-1", DEST, "USDC", 5)],
        network_passphrase=NET,
        valid_until=int(time.time()) + 60,
    )


def test_an_exact_envelope_hashes_and_signs_the_bytes_received() -> None:
    import base64

    built = _usdc_payment()
    exact = ps.exact_envelope(built.envelope_xdr, NET)
    assert exact.tx_hash_hex == built.tx_hash
    assert exact.transaction_bytes == base64.b64decode(built.envelope_xdr)[4:-4]
    key = Keypair.random()
    signed = ps.exact_envelope(exact.with_signature(key.signature_hint(), key.sign(exact.tx_hash)), NET)
    assert signed.transaction_bytes == exact.transaction_bytes
    assert signed.tx_hash == exact.tx_hash
    assert signed.signed_by(key.public_key)
    assert not signed.signed_by(Keypair.random().public_key)
    assert not signed.signed_by("G" + "A" * 55)  # not a valid key: no signature of it
    assert ps.exact_envelope(built.envelope_xdr, "Another network").tx_hash != exact.tx_hash


def test_a_zero_padded_asset_code_is_not_canonical_though_stellar_sdk_reads_it() -> None:
    from stellar_sdk import xdr

    built = _usdc_payment()
    env = xdr.TransactionEnvelope.from_xdr(built.envelope_xdr)
    assert env.v1 is not None
    pay = env.v1.tx.operations[0].body.payment_op
    assert pay is not None
    assert pay.asset.alpha_num4 is not None
    a4 = pay.asset.alpha_num4
    pay.asset = xdr.Asset(
        xdr.AssetType.ASSET_TYPE_CREDIT_ALPHANUM12,
        alpha_num12=xdr.AlphaNum12(xdr.AssetCode12(a4.asset_code.asset_code4 + b"\0" * 8), a4.issuer),
    )
    variant = env.to_xdr()
    # stellar-sdk reads it back as USDC and re-encodes it as the canonical transaction: another hash.
    assert TransactionEnvelope.from_xdr(variant, NET).hash_hex() == built.tx_hash
    with pytest.raises(ps.NonCanonicalEnvelopeError):
        ps.exact_envelope(variant, NET)
    policy = ps.CheckPolicy(
        network_passphrase=NET,
        funding_account=SRC,
        allowed_sources=frozenset({SRC}),
        max_fee_stroops=10**6,
        contract_id=None,
        method_name=ps.DEFAULT_METHOD_NAME,
        allowed_assets=frozenset({"USDC"}),
    )
    req = built.signature_request(request_id="r", network_passphrase=NET, max_fee_stroops=10**6)
    with pytest.raises(ps.IntentViolation) as err:
        ps.decode_and_check(variant, req, policy)
    assert err.value.code.value == "non_canonical_encoding"


@pytest.mark.parametrize("text", ["", "AAAA", "not base64!", "AAAAAgAAAAA="])
def test_what_is_not_a_v1_envelope_is_an_envelope_error(text: str) -> None:
    with pytest.raises(ps.EnvelopeError):
        ps.exact_envelope(text, NET)
