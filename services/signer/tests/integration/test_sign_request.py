"""The signing pipeline on Stellar requests, end to end on the fake stores, with REAL keys: a hot key and an
Ed25519 key in SoftHSM2.

Every tampered request is refused with its own code; the honest one is signed and the signature verifies
with stellar-sdk against the transaction hash on the signer's network. What is signed is exactly the bytes
received (non-canonical encodings are refused), and a payout never has two live signed transactions.
"""

from __future__ import annotations

import base64
import hashlib
import struct
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from signer_fakes import SignerFakes
from stellar_sdk import Account as SdkAccount
from stellar_sdk import Keypair, StrKey, TransactionBuilder, TransactionEnvelope, xdr

import prizeflow_stellar as ps
from prizeflow_contracts.envelope import Envelope, EventPayload, decode, new_event
from prizeflow_contracts.events.signer import SignatureRefused, SignatureRequested, TransactionSigned
from prizeflow_signer.adapters.backends import ExternalBackend, HotKeyBackend, Pkcs11Backend
from prizeflow_signer.application.ports import SignatureBackend
from prizeflow_signer.application.schemes import StellarScheme
from prizeflow_signer.application.sign_pipeline import SignPipeline, result_event_id
from prizeflow_signer.domain.policy import LiveSignature, OneLiveSignature, SpendingPolicy
from prizeflow_signer.softhsm import DEFAULT_KEY_LABEL as HSM_KEY_LABEL
from prizeflow_signer.softhsm import SoftHsmToken
from prizeflow_stellar.checks import CheckPolicy

pytestmark = pytest.mark.integration  # signs with a key in SoftHSM2 (PKCS#11)

NETWORK = "Prizeflow Signer Tests ; 2025"
CONTRACT = StrKey.encode_contract(b"\x42" * 32)
OTHER_CONTRACT = StrKey.encode_contract(b"\x43" * 32)
UNIT = 10_000_000
DEST = Keypair.random().public_key
OTHER = Keypair.random().public_key
DENIED = Keypair.random().public_key


HOT = Keypair.random()


@pytest.fixture(params=["hot_key", "pkcs11"])
def backend(request: pytest.FixtureRequest, softhsm: SoftHsmToken) -> SignatureBackend:
    if request.param == "hot_key":
        return HotKeyBackend(HOT.secret)
    return Pkcs11Backend(
        module=softhsm.module, token_label=softhsm.token_label, pin=softhsm.pin, key_label=HSM_KEY_LABEL
    )


@dataclass
class World:
    signer: SignPipeline
    fakes: SignerFakes
    source: str

    async def run(self, request: SignatureRequested, *, event_id: uuid.UUID | None = None) -> EventPayload:
        env: Envelope[EventPayload] = new_event(request, source="/test", correlation_id="flow-1", event_id=event_id)
        before = len(self.fakes.outbox.emitted)
        await self.signer(self.fakes.books, env)
        assert len(self.fakes.outbox.emitted) == before + 1
        out = self.fakes.outbox.emitted[-1]
        # What goes to Kafka must survive the wire format.
        return decode(out.encode()).data


@dataclass
class Clock:
    now: float = field(default_factory=time.time)

    def __call__(self) -> float:
        return self.now


def make_world(backend: SignatureBackend, *, daily_xlm: int = 1_000 * UNIT, clock: Clock | None = None) -> World:
    source = backend.public_key or Keypair.random().public_key
    fakes = SignerFakes()
    signer = SignPipeline(
        backend=backend,
        schemes=[
            StellarScheme(
                CheckPolicy(
                    network_passphrase=NETWORK,
                    funding_account=source,
                    allowed_sources=frozenset({source}),
                    max_fee_stroops=1_000_000,
                    contract_id=CONTRACT,
                    method_name="distribute_winnings",
                    allowed_assets=frozenset({"XLM", "USDC"}),
                    contract_asset="XLM",
                    max_validity_seconds=3600,
                )
            )
        ],
        spending=SpendingPolicy(
            tx_caps={"XLM": 500 * UNIT, "USDC": 500 * UNIT},
            daily_caps={"XLM": daily_xlm, "USDC": 1_000 * UNIT},
            deny_destinations=frozenset({DENIED}),
        ),
        source="/prizeflow/signer",
        clock=clock or Clock(),
        live=OneLiveSignature(margin_s=5),
    )
    return World(signer, fakes, source)


def payments(source: str, items: Sequence[tuple[str, str, int]], *, first: int = 0, **kw: Any) -> ps.BuiltTransaction:
    args: dict[str, Any] = {
        "source_account": source,
        "sequence": 1234,
        "payments": [ps.PaymentInstruction(f"po-{first + i}", d, a, n) for i, (d, a, n) in enumerate(items)],
        "network_passphrase": NETWORK,
        "valid_until": int(time.time()) + 300,
    }
    args.update(kw)
    return ps.build_payments(**args)


def invoke(source: str, winners: Sequence[tuple[str, int]], **kw: Any) -> ps.BuiltTransaction:
    args: dict[str, Any] = {
        "source_account": source,
        "sequence": 1234,
        "contract_id": CONTRACT,
        "winners": [ps.Winner(f"po-{i}", d, n) for i, (d, n) in enumerate(winners)],
        "network_passphrase": NETWORK,
        "valid_until": int(time.time()) + 300,
        "asset_code": "XLM",
    }
    args.update(kw)
    return ps.build_contract_invoke(**args)


def request_for(
    honest: ps.BuiltTransaction, *, xdr_from: ps.BuiltTransaction | str | None = None, **kw: Any
) -> SignatureRequested:
    req = honest.signature_request(
        request_id=f"sig-{uuid.uuid4().hex[:8]}", network_passphrase=NETWORK, max_fee_stroops=1_000_000
    )
    updates: dict[str, Any] = dict(kw)
    if xdr_from is not None:
        updates["unsigned_xdr"] = xdr_from if isinstance(xdr_from, str) else xdr_from.envelope_xdr
    return SignatureRequested.model_validate({**req.model_dump(), **updates})


def assert_signed(result: EventPayload, backend: SignatureBackend, built: ps.BuiltTransaction) -> None:
    assert isinstance(result, TransactionSigned), result
    assert result.signed_by == backend.public_key
    assert result.tx_hash == built.tx_hash
    env = TransactionEnvelope.from_xdr(result.signed_xdr, NETWORK)
    assert env.hash_hex() == built.tx_hash
    (sig,) = env.signatures
    Keypair.from_public_key(result.signed_by).verify(env.hash(), sig.signature)  # raises if invalid


def assert_refused(result: EventPayload, code: str) -> None:
    assert isinstance(result, SignatureRefused), result
    assert result.code.value == code, result.detail


async def test_signs_the_honest_payment_batch(backend: SignatureBackend) -> None:
    w = make_world(backend)
    built = payments(w.source, [(DEST, "XLM", 5 * UNIT), (OTHER, "USDC", 1)])
    assert_signed(await w.run(request_for(built)), backend, built)
    assert w.fakes.spend.spent == {"XLM": 5 * UNIT, "USDC": 1}
    assert [a.decision for a in w.fakes.audit.records] == ["signed"]


async def test_signs_the_honest_contract_call(backend: SignatureBackend) -> None:
    w = make_world(backend)
    built = invoke(w.source, [(DEST, 7), (OTHER, 8)])
    assert_signed(await w.run(request_for(built)), backend, built)
    assert w.fakes.spend.spent == {"XLM": 15}


def _no_time_bounds(source: str) -> str:
    from stellar_sdk import Asset

    tx = (
        TransactionBuilder(SdkAccount(source, 1233), NETWORK, base_fee=100)
        .append_payment_op(DEST, Asset.native(), "5")
        .add_time_bounds(0, 0)
        .build()
    )
    return str(tx.to_xdr())


Tamper = Callable[[str], tuple[ps.BuiltTransaction, dict[str, Any]]]

TAMPERED: dict[str, Tamper] = {
    "wrong_network": lambda s: (
        payments(s, [(DEST, "XLM", 5 * UNIT)]),
        {"network_passphrase": "Public Global Stellar Network ; September 2015"},
    ),
    "destination_mismatch": lambda s: (
        payments(s, [(DEST, "XLM", 5 * UNIT)]),
        {"xdr_from": payments(s, [(OTHER, "XLM", 5 * UNIT)])},
    ),
    "amount_mismatch": lambda s: (
        payments(s, [(DEST, "XLM", 5 * UNIT)]),
        {"xdr_from": payments(s, [(DEST, "XLM", 5 * UNIT + 1)])},
    ),
    "asset_not_allowed": lambda s: (
        payments(s, [(DEST, "XLM", 5 * UNIT)]),
        {"xdr_from": payments(s, [(DEST, "USDC", 5 * UNIT)])},
    ),
    "contract_mismatch": lambda s: (
        invoke(s, [(DEST, 5)]),
        {"xdr_from": invoke(s, [(DEST, 5)], contract_id=OTHER_CONTRACT)},
    ),
    "method_mismatch": lambda s: (invoke(s, [(DEST, 5)]), {"xdr_from": invoke(s, [(DEST, 5)], method="drain")}),
    "unexpected_operation": lambda s: (
        payments(s, [(DEST, "XLM", 5 * UNIT)]),
        {"xdr_from": payments(s, [(DEST, "XLM", 5 * UNIT), (OTHER, "XLM", 1)])},
    ),
    "fee_too_high": lambda s: (payments(s, [(DEST, "XLM", 5 * UNIT)], base_fee=2_000_000), {}),
    "missing_time_bounds": lambda s: (payments(s, [(DEST, "XLM", 5 * UNIT)]), {"xdr_from": _no_time_bounds(s)}),
    "over_tx_cap": lambda s: (payments(s, [(DEST, "XLM", 300 * UNIT), (OTHER, "XLM", 300 * UNIT)]), {}),
    "destination_denied": lambda s: (payments(s, [(DENIED, "XLM", 5 * UNIT)]), {}),
    "wrong_source": lambda s: (payments(s, [(DEST, "XLM", 5 * UNIT)]), {}),
    "malformed_xdr": lambda s: (payments(s, [(DEST, "XLM", 5 * UNIT)]), {"xdr_from": "AAAAAgAAAAA="}),
}


@pytest.mark.parametrize("code", sorted(TAMPERED))
async def test_refuses_tampered_requests_with_their_code(backend: SignatureBackend, code: str) -> None:
    w = make_world(backend)
    source = w.source if code != "wrong_source" else Keypair.random().public_key
    honest, changes = TAMPERED[code](source)
    if code == "wrong_source":
        changes = {}
    result = await w.run(request_for(honest, **changes))
    assert_refused(result, code)
    assert w.fakes.spend.spent == {}
    assert [a.code for a in w.fakes.audit.records] == [code]


async def test_wrong_method_in_the_intent_itself_is_refused(backend: SignatureBackend) -> None:
    w = make_world(backend)
    built = invoke(w.source, [(DEST, 5)], method="drain")
    assert_refused(await w.run(request_for(built)), "method_mismatch")


async def test_invoke_with_a_sub_invocation_in_its_auth_is_refused(backend: SignatureBackend) -> None:
    w = make_world(backend)
    draft = invoke(w.source, [(DEST, 5)])
    tx = xdr.TransactionEnvelope.from_xdr(draft.envelope_xdr)
    assert tx.v1 is not None
    op = tx.v1.tx.operations[0].body.invoke_host_function_op
    assert op is not None
    call = op.host_function.invoke_contract
    assert call is not None
    inner = xdr.SorobanAuthorizedInvocation(
        function=xdr.SorobanAuthorizedFunction(
            xdr.SorobanAuthorizedFunctionType.SOROBAN_AUTHORIZED_FUNCTION_TYPE_CONTRACT_FN, contract_fn=call
        ),
        sub_invocations=[],
    )
    root = xdr.SorobanAuthorizedInvocation(function=inner.function, sub_invocations=[inner])
    op.auth = [
        xdr.SorobanAuthorizationEntry(
            credentials=xdr.SorobanCredentials(xdr.SorobanCredentialsType.SOROBAN_CREDENTIALS_SOURCE_ACCOUNT),
            root_invocation=root,
        )
    ]
    assert_refused(await w.run(request_for(draft, xdr_from=tx.to_xdr())), "unexpected_operation")


async def test_rolling_daily_cap_counts_what_was_signed_before(backend: SignatureBackend) -> None:
    w = make_world(backend, daily_xlm=12 * UNIT)
    first = payments(w.source, [(DEST, "XLM", 5 * UNIT)])
    assert isinstance(await w.run(request_for(first)), TransactionSigned)
    second = payments(w.source, [(DEST, "XLM", 5 * UNIT)], sequence=1235, first=1)
    assert isinstance(await w.run(request_for(second)), TransactionSigned)
    third = payments(w.source, [(DEST, "XLM", 5 * UNIT)], sequence=1236, first=2)
    assert_refused(await w.run(request_for(third)), "over_daily_cap")
    assert w.fakes.spend.spent == {"XLM": 10 * UNIT}
    assert w.fakes.spend.locks == 3


async def test_a_duplicate_request_gets_the_same_result_with_the_same_event_id(backend: SignatureBackend) -> None:
    w = make_world(backend)
    req = request_for(payments(w.source, [(DEST, "XLM", UNIT)]))
    first = await w.run(req)
    again = await w.run(req)  # a new event (new id) carrying the same request id
    assert first == again
    assert w.fakes.outbox.emitted[0].id == w.fakes.outbox.emitted[1].id == result_event_id(req.request_id)
    assert [a.decision for a in w.fakes.audit.records] == ["signed", "replayed"]
    assert w.fakes.spend.spent == {"XLM": UNIT}  # counted once


async def test_external_backend_checks_then_asks_for_out_of_band_signing() -> None:
    w = make_world(ExternalBackend())
    assert_refused(await w.run(request_for(payments(w.source, [(DEST, "XLM", UNIT)]))), "external_signing_required")
    # ... and a tampered one still gets its own verdict.
    honest = payments(w.source, [(DEST, "XLM", UNIT)])
    assert_refused(
        await w.run(request_for(honest, xdr_from=payments(w.source, [(OTHER, "XLM", UNIT)]))), "destination_mismatch"
    )


class BrokenBackend(HotKeyBackend):
    def sign(self, tx_hash: bytes) -> bytes:
        return b"\x00" * 64  # a "signature" that does not verify: never let it out


async def test_a_backend_that_signs_wrong_is_caught_and_retryable() -> None:
    w = make_world(BrokenBackend(HOT.secret))
    req = request_for(payments(w.source, [(DEST, "XLM", UNIT)]))
    result = await w.run(req)
    assert_refused(result, "backend_unavailable")
    assert isinstance(result, SignatureRefused)
    assert result.retryable
    assert w.fakes.results.saved == {}  # not a verdict: the same request may be tried again
    assert w.fakes.spend.spent == {}


def test_hot_key_backend_never_shows_its_secret() -> None:
    backend = HotKeyBackend(HOT.secret)
    assert HOT.secret not in repr(backend)
    assert HOT.secret not in str(vars(backend))


# --- exactly what was checked is what gets signed -----------------------------------------------------------


def _zero_padded_alphanum12(canonical: str) -> str:
    """The same payment with its 4-character asset code sent as a zero-padded 12-character one."""
    env = xdr.TransactionEnvelope.from_xdr(canonical)
    assert env.v1 is not None
    pay = env.v1.tx.operations[0].body.payment_op
    assert pay is not None
    assert pay.asset.alpha_num4 is not None
    a4 = pay.asset.alpha_num4
    pay.asset = xdr.Asset(
        xdr.AssetType.ASSET_TYPE_CREDIT_ALPHANUM12,
        alpha_num12=xdr.AlphaNum12(xdr.AssetCode12(a4.asset_code.asset_code4 + b"\0" * 8), a4.issuer),
    )
    return str(env.to_xdr())


def _nonzero_padding(canonical: str) -> str:
    """A contract call whose method name's XDR padding byte is 1 instead of 0 (stellar-sdk does not check it)."""
    raw = base64.b64decode(canonical)
    name = b"distribute_winnings"  # 19 bytes: one padding byte follows
    at = raw.index(name + b"\0") + len(name)
    return base64.b64encode(raw[:at] + b"\1" + raw[at + 1 :]).decode()


def _trailing_bytes(canonical: str) -> str:
    return base64.b64encode(base64.b64decode(canonical) + b"\0\0\0\0").decode()


def _non_canonical_base64(canonical: str) -> str:
    """Same bytes, other text: the unused low bits of the last base64 character set."""
    last = canonical.rstrip("=")
    assert last != canonical, "needs a padded encoding"
    assert last[-1] == "A", "the last character only carries the zero signature count's bits"
    return last[:-1] + "B" + canonical[len(last) :]


NON_CANONICAL: dict[str, tuple[Callable[[str], ps.BuiltTransaction], Callable[[str], str]]] = {
    "zero_padded_alphanum12_usdc": (lambda s: payments(s, [(DEST, "USDC", 5 * UNIT)]), _zero_padded_alphanum12),
    "nonzero_xdr_padding": (lambda s: invoke(s, [(DEST, 5)]), _nonzero_padding),
    "trailing_bytes": (lambda s: payments(s, [(DEST, "XLM", 5 * UNIT)]), _trailing_bytes),
    "non_canonical_base64": (lambda s: payments(s, [(DEST, "USDC", 5 * UNIT)]), _non_canonical_base64),
}


@pytest.mark.parametrize("form", sorted(NON_CANONICAL))
async def test_a_non_canonical_envelope_is_refused_not_signed_as_re_encoded(
    backend: SignatureBackend, form: str
) -> None:
    w = make_world(backend)
    build, mangle = NON_CANONICAL[form]
    honest = build(w.source)
    variant = mangle(honest.envelope_xdr)
    assert variant != honest.envelope_xdr
    # stellar-sdk reads the variant as a valid envelope (what the signer used to check, then re-encode and sign).
    if form != "trailing_bytes":
        assert TransactionEnvelope.from_xdr(variant, NETWORK).transaction is not None
    result = await w.run(request_for(honest, xdr_from=variant))
    assert_refused(result, "non_canonical_encoding")
    assert w.fakes.spend.spent == {}
    assert w.fakes.signatures.by_payout == {}
    assert [a.code for a in w.fakes.audit.records] == ["non_canonical_encoding"]


def _signature_base(envelope_xdr: str) -> bytes:
    """network id ‖ ENVELOPE_TYPE_TX ‖ transaction, straight from the bytes of an unsigned v1 envelope."""
    raw = base64.b64decode(envelope_xdr)
    assert raw[:4] == struct.pack(">I", 2)  # ENVELOPE_TYPE_TX
    assert raw[-4:] == b"\0\0\0\0"  # no signatures
    return hashlib.sha256(NETWORK.encode()).digest() + raw[:-4]


@pytest.mark.parametrize("shape", ["payments", "invoke"])
async def test_the_signed_envelope_is_the_received_bytes_plus_a_signature(
    backend: SignatureBackend, shape: str
) -> None:
    w = make_world(backend)
    built = (
        payments(w.source, [(DEST, "USDC", 5 * UNIT), (OTHER, "XLM", 1)])
        if shape == "payments"
        else invoke(w.source, [(DEST, 7)])
    )
    result = await w.run(request_for(built))
    assert isinstance(result, TransactionSigned)
    received = base64.b64decode(built.envelope_xdr)
    signed = base64.b64decode(result.signed_xdr)
    expected_hash = hashlib.sha256(_signature_base(built.envelope_xdr)).digest()
    assert result.tx_hash == expected_hash.hex()
    assert signed[: len(received) - 4] == received[:-4]  # the transaction part, byte for byte
    hint, signature = signed[len(received) : len(received) + 4], signed[len(received) + 8 :]
    assert signed[len(received) - 4 : len(received)] == struct.pack(">I", 1)
    assert signed[len(received) + 4 : len(received) + 8] == struct.pack(">I", 64)
    key = Keypair.from_public_key(result.signed_by)
    assert hint == key.signature_hint()
    key.verify(expected_hash, signature)  # over the hash of the input's bytes
    assert len(signed) == len(received) + 72


# --- one live signature per payout ---------------------------------------------------------------------------


async def test_a_second_transaction_for_a_payout_is_refused_while_the_first_can_land(
    backend: SignatureBackend,
) -> None:
    clock = Clock()
    w = make_world(backend, clock=clock)
    first = payments(w.source, [(DEST, "XLM", UNIT)], valid_until=int(clock.now) + 60)
    signed = await w.run(request_for(first))
    assert isinstance(signed, TransactionSigned)
    rebuilt = payments(w.source, [(DEST, "XLM", UNIT)], sequence=1235, valid_until=int(clock.now) + 120)
    refused = await w.run(request_for(rebuilt))
    assert_refused(refused, "live_signature_exists")
    assert isinstance(refused, SignatureRefused)
    assert refused.live_until == first.max_time + 5
    assert w.fakes.signatures.by_payout["po-0"] == LiveSignature(first.tx_hash, first.max_time)
    clock.now = first.max_time + 5  # bound passed, but within the margin the ledger clock may lag
    assert_refused(await w.run(request_for(rebuilt)), "live_signature_exists")
    clock.now = first.max_time + 6
    assert isinstance(await w.run(request_for(rebuilt)), TransactionSigned)
    assert w.fakes.signatures.by_payout["po-0"] == LiveSignature(rebuilt.tx_hash, rebuilt.max_time)
    assert w.fakes.spend.spent == {"XLM": 2 * UNIT}


async def test_another_batch_sharing_one_payout_is_refused_too(backend: SignatureBackend) -> None:
    w = make_world(backend)
    assert isinstance(await w.run(request_for(payments(w.source, [(DEST, "XLM", UNIT)]))), TransactionSigned)
    # po-0 again, alongside a new payout po-1: po-1 must not be signed either (one transaction, all or nothing).
    batch = payments(w.source, [(DEST, "XLM", UNIT), (OTHER, "XLM", UNIT)], sequence=1240)
    assert_refused(await w.run(request_for(batch)), "live_signature_exists")
    assert "po-1" not in w.fakes.signatures.by_payout


async def test_the_same_transaction_under_a_new_request_id_is_signed_again_and_counted_once(
    backend: SignatureBackend,
) -> None:
    w = make_world(backend)
    built = payments(w.source, [(DEST, "XLM", UNIT)])
    first = await w.run(request_for(built))
    again = await w.run(request_for(built))  # request_for mints a new request id
    assert isinstance(first, TransactionSigned)
    assert isinstance(again, TransactionSigned)
    assert first.request_id != again.request_id
    assert again.signed_xdr == first.signed_xdr  # Ed25519 is deterministic: the very same envelope
    assert w.fakes.spend.spent == {"XLM": UNIT}
    assert [a.decision for a in w.fakes.audit.records] == ["signed", "signed"]
    assert w.fakes.audit.records[1].detail is not None


async def test_external_backend_records_no_live_signature() -> None:
    w = make_world(ExternalBackend())
    first = payments(w.source, [(DEST, "XLM", UNIT)])
    assert_refused(await w.run(request_for(first)), "external_signing_required")
    rebuilt = payments(w.source, [(DEST, "XLM", UNIT)], sequence=1235)
    assert_refused(await w.run(request_for(rebuilt)), "external_signing_required")
    assert w.fakes.signatures.by_payout == {}
