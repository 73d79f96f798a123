"""SignRequest end to end on fakes for the store, with REAL keys: a hot key and an Ed25519 key in SoftHSM2.

Every tampered request is refused with its own code; the honest one is signed and the signature verifies
with stellar-sdk against the transaction hash on the signer's network.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from stellar_sdk import Account as SdkAccount
from stellar_sdk import Keypair, StrKey, TransactionBuilder, TransactionEnvelope, xdr

import prizeflow_stellar as ps
from prizeflow_contracts.envelope import Envelope, EventPayload, decode, new_event
from prizeflow_contracts.events.signer import SignatureRefused, SignatureRequested, TransactionSigned
from prizeflow_signer.adapters.backends import ExternalBackend, HotKeyBackend, Pkcs11Backend
from prizeflow_signer.application.ports import AuditRecord, SignatureBackend
from prizeflow_signer.application.sign_request import SignRequest, result_event_id
from prizeflow_signer.domain.policy import SpendingPolicy
from prizeflow_signer.softhsm import DEFAULT_KEY_LABEL as HSM_KEY_LABEL
from prizeflow_signer.softhsm import SoftHsmToken
from prizeflow_stellar.checks import CheckPolicy

NETWORK = "Prizeflow Signer Tests ; 2025"
CONTRACT = StrKey.encode_contract(b"\x42" * 32)
OTHER_CONTRACT = StrKey.encode_contract(b"\x43" * 32)
UNIT = 10_000_000
DEST = Keypair.random().public_key
OTHER = Keypair.random().public_key
DENIED = Keypair.random().public_key


@dataclass
class FakeStore:
    results: dict[str, str] = field(default_factory=dict)
    spent: dict[str, int] = field(default_factory=dict)
    audits: list[AuditRecord] = field(default_factory=list)
    emitted: list[Envelope[Any]] = field(default_factory=list)
    locks: int = 0

    async def stored_result(self, session: Any, request_id: str) -> str | None:
        return self.results.get(request_id)

    async def save_result(self, session: Any, request_id: str, outcome: str, envelope: str) -> None:
        assert request_id not in self.results
        self.results[request_id] = envelope

    async def lock_spending(self, session: Any) -> None:
        self.locks += 1

    async def spent_in_window(self, session: Any, assets: Sequence[str]) -> dict[str, int]:
        return {a: self.spent.get(a, 0) for a in assets}

    async def record_spend(self, session: Any, request_id: str, amounts: Mapping[str, int]) -> None:
        for asset, amount in amounts.items():
            self.spent[asset] = self.spent.get(asset, 0) + amount

    async def audit(self, session: Any, record: AuditRecord) -> None:
        self.audits.append(record)

    async def emit(self, session: Any, envelope: Envelope[Any]) -> None:
        self.emitted.append(envelope)

    async def reemit(self, session: Any, envelope: Envelope[Any]) -> None:
        self.emitted.append(envelope)


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
    signer: SignRequest
    store: FakeStore
    source: str

    async def run(self, request: SignatureRequested, *, event_id: uuid.UUID | None = None) -> EventPayload:
        env = new_event(request, source="/test", correlation_id="flow-1", event_id=event_id)
        before = len(self.store.emitted)
        await self.signer(None, env)  # type: ignore[arg-type]
        assert len(self.store.emitted) == before + 1
        out = self.store.emitted[-1]
        # What goes to Kafka must survive the wire format.
        return decode(out.encode()).data


def make_world(backend: SignatureBackend, *, daily_xlm: int = 1_000 * UNIT) -> World:
    source = backend.public_key or Keypair.random().public_key
    store = FakeStore()
    signer = SignRequest(
        store=store,
        backend=backend,
        check_policy=CheckPolicy(
            network_passphrase=NETWORK,
            funding_account=source,
            allowed_sources=frozenset({source}),
            max_fee_stroops=1_000_000,
            contract_id=CONTRACT,
            method_name="distribute_winnings",
            allowed_assets=frozenset({"XLM", "USDC"}),
            contract_asset="XLM",
            max_validity_seconds=3600,
        ),
        spending=SpendingPolicy(
            tx_caps={"XLM": 500 * UNIT, "USDC": 500 * UNIT},
            daily_caps={"XLM": daily_xlm, "USDC": 1_000 * UNIT},
            deny_destinations=frozenset({DENIED}),
        ),
        source="/prizeflow/signer",
    )
    return World(signer, store, source)


def payments(source: str, items: Sequence[tuple[str, str, int]], **kw: Any) -> ps.BuiltTransaction:
    args: dict[str, Any] = {
        "source_account": source,
        "sequence": 1234,
        "payments": [ps.PaymentInstruction(f"po-{i}", d, a, n) for i, (d, a, n) in enumerate(items)],
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
    assert w.store.spent == {"XLM": 5 * UNIT, "USDC": 1}
    assert [a.decision for a in w.store.audits] == ["signed"]


async def test_signs_the_honest_contract_call(backend: SignatureBackend) -> None:
    w = make_world(backend)
    built = invoke(w.source, [(DEST, 7), (OTHER, 8)])
    assert_signed(await w.run(request_for(built)), backend, built)
    assert w.store.spent == {"XLM": 15}


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
    assert w.store.spent == {}
    assert [a.code for a in w.store.audits] == [code]


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
    second = payments(w.source, [(DEST, "XLM", 5 * UNIT)], sequence=1235)
    assert isinstance(await w.run(request_for(second)), TransactionSigned)
    third = payments(w.source, [(DEST, "XLM", 5 * UNIT)], sequence=1236)
    assert_refused(await w.run(request_for(third)), "over_daily_cap")
    assert w.store.spent == {"XLM": 10 * UNIT}
    assert w.store.locks == 3


async def test_a_duplicate_request_gets_the_same_result_with_the_same_event_id(backend: SignatureBackend) -> None:
    w = make_world(backend)
    req = request_for(payments(w.source, [(DEST, "XLM", UNIT)]))
    first = await w.run(req)
    again = await w.run(req)  # a new event (new id) carrying the same request id
    assert first == again
    assert w.store.emitted[0].id == w.store.emitted[1].id == result_event_id(req.request_id)
    assert [a.decision for a in w.store.audits] == ["signed", "replayed"]
    assert w.store.spent == {"XLM": UNIT}  # counted once


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
    assert w.store.results == {}  # not a verdict: the same request may be tried again
    assert w.store.spent == {}


def test_hot_key_backend_never_shows_its_secret() -> None:
    backend = HotKeyBackend(HOT.secret)
    assert HOT.secret not in repr(backend)
    assert HOT.secret not in str(vars(backend))
