"""The signing pipeline on TON wallet messages, on the fake stores, with REAL keys (a hot key and an Ed25519 key in
SoftHSM2): the honest TON and jetton messages are signed and the external message verifies against the key; every
tampered request is refused with its own code; a payout never has two live messages; the same message is signed
again, counted once.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from nacl.signing import VerifyKey
from signer_fakes import SignerFakes
from stellar_sdk import Keypair

from prizeflow_contracts.envelope import Envelope, EventPayload, decode, new_event
from prizeflow_contracts.events.signer import SignatureRefused, TonMessageSigned, TonSignatureRequested
from prizeflow_signer.adapters.backends import ExternalBackend, HotKeyBackend, Pkcs11Backend
from prizeflow_signer.application.ports import SignatureBackend
from prizeflow_signer.application.schemes import V4R2, StellarScheme, TonScheme
from prizeflow_signer.application.sign_pipeline import SignPipeline
from prizeflow_signer.domain.policy import OneLiveSignature, SpendingPolicy
from prizeflow_signer.domain.ton import TonJetton, TonPolicy
from prizeflow_signer.softhsm import DEFAULT_KEY_LABEL as HSM_KEY_LABEL
from prizeflow_signer.softhsm import SoftHsmToken
from prizeflow_stellar.checks import CheckPolicy
from prizeflow_ton.messages import (
    Transfer,
    TransferKind,
    WalletMessage,
    from_b64,
    parse_external,
    signing_hash,
    to_b64,
    unsigned_body,
)

pytestmark = pytest.mark.integration  # signs with a key in SoftHSM2 (PKCS#11)

WALLET = "0:" + "11" * 32
DEST = "0:" + "22" * 32
OTHER = "0:" + "55" * 32
DENIED = "0:" + "66" * 32
MASTER = "0:" + "44" * 32
JETTON_WALLET = "0:" + "33" * 32
TON = 1_000_000_000
NOW = 1_800_000_000
HOT = Keypair.random()


@pytest.fixture(params=["hot_key", "pkcs11"])
def backend(request: pytest.FixtureRequest, softhsm: SoftHsmToken) -> SignatureBackend:
    if request.param == "hot_key":
        return HotKeyBackend(HOT.secret)
    return Pkcs11Backend(
        module=softhsm.module, token_label=softhsm.token_label, pin=softhsm.pin, key_label=HSM_KEY_LABEL
    )


@dataclass
class Clock:
    now: float = NOW

    def __call__(self) -> float:
        return self.now


@dataclass
class World:
    signer: SignPipeline
    fakes: SignerFakes
    clock: Clock

    async def run(self, request: TonSignatureRequested) -> EventPayload:
        env: Envelope[EventPayload] = new_event(request, source="/test", correlation_id="flow-1", event_id=uuid.uuid4())
        await self.signer(self.fakes.books, env)
        return decode(self.fakes.outbox.emitted[-1].encode()).data


def make_world(backend: SignatureBackend) -> World:
    fakes, clock = SignerFakes(), Clock()
    spending = SpendingPolicy(
        tx_caps={"TON": 100 * TON, "USDT": 1_000_000_000},
        daily_caps={"TON": 150 * TON, "USDT": 5_000_000_000},
        deny_destinations=frozenset({DENIED}),
    )
    policy = TonPolicy(
        wallet=WALLET,
        subwallet_id=698983191,
        max_validity_s=600,
        native_asset="TON",
        jettons={"USDT": TonJetton(master=MASTER, wallet=JETTON_WALLET)},
        max_jetton_attach_nanotons=100_000_000,
    )
    live = OneLiveSignature(margin_s=5)
    stellar = CheckPolicy(
        network_passphrase="n", funding_account=HOT.public_key, allowed_sources=frozenset({HOT.public_key}),
        max_fee_stroops=1, contract_id=None, method_name="m", allowed_assets=frozenset({"XLM"}),
        contract_asset="XLM", max_validity_seconds=60,
    )  # fmt: skip
    signer = SignPipeline(
        schemes=[StellarScheme(stellar), TonScheme(V4R2, policy)], backend=backend, spending=spending,
        source="/prizeflow/signer", clock=clock, live=live,
    )  # fmt: skip
    return World(signer, fakes, clock)


def ton_transfer(amount: int = TON, *, dest: str = DEST, bounce: bool = False) -> Transfer:
    return Transfer(kind=TransferKind.TON, destination=dest, amount=amount, bounce=bounce)


def jetton_transfer(
    amount: int = 2_500_000, *, jetton_wallet: str = JETTON_WALLET, attach: int = 50_000_000
) -> Transfer:
    return Transfer(
        kind=TransferKind.JETTON, destination=DEST, amount=amount, bounce=True, jetton_wallet=jetton_wallet,
        attached_nanotons=attach, forward_nanotons=1, response_destination=WALLET,
    )  # fmt: skip


def message(transfer: Transfer | None = None, *, seqno: int = 7, ttl: int = 120, **kw: Any) -> WalletMessage:
    args: dict[str, Any] = {"wallet": WALLET, "subwallet_id": 698983191, "valid_until": NOW + ttl, "seqno": seqno,
                            "transfer": transfer or ton_transfer()}  # fmt: skip
    args.update(kw)
    return WalletMessage(**args)


def request_for(m: WalletMessage, *, payout: str = "po-1", **intent_kw: Any) -> TonSignatureRequested:
    t = m.transfer
    intent: dict[str, Any] = {"payout_id": payout, "destination": t.destination, "amount": t.amount,
                              "bounce": t.bounce, "asset": "TON"}  # fmt: skip
    if t.kind is TransferKind.JETTON:
        intent.update(asset="USDT", jetton_master=MASTER, jetton_wallet=t.jetton_wallet)
    intent.update(intent_kw)
    return TonSignatureRequested(
        request_id=f"ton-{uuid.uuid4().hex[:12]}",
        payout_ids=[payout],
        wallet=m.wallet,
        unsigned_body_boc=to_b64(unsigned_body(m)),
        seqno=m.seqno,
        valid_until=m.valid_until,
        intent=intent,
    )


def assert_signed(result: EventPayload, m: WalletMessage) -> TonMessageSigned:
    assert isinstance(result, TonMessageSigned), result
    ext = parse_external(from_b64(result.signed_boc))
    assert ext.message == m
    assert ext.hash == result.message_hash
    VerifyKey(bytes.fromhex(result.signed_by)).verify(signing_hash(m), ext.signature)
    return result


def assert_refused(result: EventPayload, code: str) -> None:
    assert isinstance(result, SignatureRefused), result
    assert result.code.value == code, result.detail


@pytest.mark.parametrize("transfer", [ton_transfer(), jetton_transfer()], ids=["ton", "jetton"])
async def test_signs_the_honest_message(backend: SignatureBackend, transfer: Transfer) -> None:
    w = make_world(backend)
    m = message(transfer)
    assert_signed(await w.run(request_for(m)), m)
    expected = {"TON": TON} if transfer.kind is TransferKind.TON else {"USDT": 2_500_000, "TON": 50_000_000}
    assert w.fakes.spend.spent == expected
    assert w.fakes.audit.records[-1].decision == "signed"


@pytest.mark.parametrize(
    ("build", "code"),
    [
        (lambda: request_for(message(), destination=OTHER), "destination_mismatch"),
        (lambda: request_for(message(), amount=TON + 1), "amount_mismatch"),
        (lambda: request_for(message(), bounce=True), "bounce_mismatch"),
        (lambda: request_for(message(ton_transfer(dest=DENIED))), "destination_denied"),
        (lambda: request_for(message(ton_transfer(101 * TON))), "over_tx_cap"),
        (lambda: request_for(message(ttl=0)), "validity_out_of_window"),
        (lambda: request_for(message(ttl=601)), "validity_out_of_window"),
        (lambda: request_for(message(wallet=OTHER)), "wrong_source"),
        (lambda: request_for(message(subwallet_id=1)), "wrong_source"),
        (lambda: request_for(message(mode=128)), "unexpected_operation"),
        (lambda: request_for(message(jetton_transfer(jetton_wallet=OTHER))), "jetton_mismatch"),
        (lambda: request_for(message(jetton_transfer()), jetton_master=OTHER), "jetton_mismatch"),
        (lambda: request_for(message(jetton_transfer(attach=TON))), "fee_too_high"),
        (lambda: request_for(message(), asset="XLM"), "asset_not_allowed"),
        # The live-signature rule is keyed by payout_ids: an intent for a payout not among them is refused.
        (lambda: request_for(message()).model_copy(update={"payout_ids": ["po-2"]}), "unexpected_operation"),
        (
            lambda: request_for(message(jetton_transfer()), asset="TON", jetton_master=None, jetton_wallet=None),
            "jetton_mismatch",
        ),
    ],
)
async def test_refuses_tampered_requests_with_their_code(backend: SignatureBackend, build: Any, code: str) -> None:
    w = make_world(backend)
    assert_refused(await w.run(build()), code)
    assert w.fakes.spend.spent == {}
    assert w.fakes.signatures.by_payout == {}


async def test_a_seqno_other_than_the_requests_is_refused(backend: SignatureBackend) -> None:
    w = make_world(backend)
    req = request_for(message(seqno=7)).model_copy(update={"seqno": 8})
    assert_refused(await w.run(req), "seqno_mismatch")


async def test_bytes_that_are_not_one_message_are_refused(backend: SignatureBackend) -> None:
    w = make_world(backend)
    req = request_for(message()).model_copy(update={"unsigned_body_boc": "bm90IGEgYm9j"})
    assert_refused(await w.run(req), "malformed_xdr")


async def test_a_second_message_for_a_payout_waits_for_the_first_to_expire(backend: SignatureBackend) -> None:
    w = make_world(backend)
    first = message(seqno=7, ttl=60)
    assert_signed(await w.run(request_for(first)), first)
    second = message(seqno=8, ttl=120)
    assert_refused(await w.run(request_for(second)), "live_signature_exists")
    w.clock.now = NOW + 60 + 6  # past valid_until and the margin: the first provably never lands
    second = message(seqno=8, ttl=200)
    assert_signed(await w.run(request_for(second)), second)
    assert w.fakes.spend.spent == {"TON": 2 * TON}


async def test_the_same_message_is_signed_again_and_counted_once(backend: SignatureBackend) -> None:
    w = make_world(backend)
    m = message()
    first = assert_signed(await w.run(request_for(m)), m)
    again = assert_signed(await w.run(request_for(m)), m)
    assert first.signed_boc == again.signed_boc
    assert w.fakes.spend.spent == {"TON": TON}


async def test_a_replayed_request_gets_the_same_answer() -> None:
    w = make_world(HotKeyBackend(HOT.secret))
    req = request_for(message())
    first = await w.run(req)
    again = await w.run(req)
    assert first == again
    assert [a.decision for a in w.fakes.audit.records] == ["signed", "replayed"]


async def test_external_backend_checks_then_asks_for_out_of_band_signing() -> None:
    w = make_world(ExternalBackend())
    assert_refused(await w.run(request_for(message())), "external_signing_required")
    assert_refused(await w.run(request_for(message(), amount=5)), "amount_mismatch")
