"""The signing pipeline on TON highload batches, on the fake stores, with REAL keys (a hot key and an Ed25519 key in
SoftHSM2): an honest mixed highload wallet v3 batch is signed and its external message verifies against the key;
caps apply to the batch's sums; a denied destination anywhere refuses the batch; no payout is ever in two live
messages; the same batch is signed again, counted once; a replayed request gets the same answer; the external
backend checks first.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest
from nacl.signing import VerifyKey
from signer_fakes import SignerFakes
from stellar_sdk import Keypair

from prizeflow_contracts.envelope import Envelope, EventPayload, decode, new_event
from prizeflow_contracts.events.signer import SignatureRefused, TonBatchSignatureRequested, TonBatchSigned
from prizeflow_signer.adapters.backends import ExternalBackend, HotKeyBackend, Pkcs11Backend
from prizeflow_signer.application.ports import SignatureBackend
from prizeflow_signer.application.schemes import HIGHLOAD, StellarScheme, TonScheme
from prizeflow_signer.application.sign_pipeline import SignPipeline
from prizeflow_signer.domain.policy import OneLiveSignature, SpendingPolicy
from prizeflow_signer.domain.ton import TonJetton
from prizeflow_signer.domain.ton_highload import TonHighloadPolicy
from prizeflow_signer.softhsm import DEFAULT_KEY_LABEL as HSM_KEY_LABEL
from prizeflow_signer.softhsm import SoftHsmToken
from prizeflow_stellar.checks import CheckPolicy
from prizeflow_testkit.ton import batch_request
from prizeflow_ton.highload import HighloadBatch, QueryId, parse_external, signing_hash
from prizeflow_ton.messages import Transfer, TransferKind, from_b64

pytestmark = pytest.mark.integration  # signs with a key in SoftHSM2 (PKCS#11)

WALLET = "0:" + "11" * 32
DENIED = "0:" + "66" * 32
MASTER = "0:" + "44" * 32
JETTON_WALLET = "0:" + "33" * 32
TON = 1_000_000_000
NOW = 1_800_000_000
TIMEOUT = 120
MARGIN = 5
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

    async def run(self, request: TonBatchSignatureRequested) -> EventPayload:
        env: Envelope[EventPayload] = new_event(request, source="/test", correlation_id="flow-1", event_id=uuid.uuid4())
        await self.signer(self.fakes.books, env)
        return decode(self.fakes.outbox.emitted[-1].encode()).data


def make_world(backend: SignatureBackend) -> World:
    fakes, clock = SignerFakes(), Clock()
    spending = SpendingPolicy(
        tx_caps={"TON": 10 * TON, "USDT": 100_000_000},
        daily_caps={"TON": 25 * TON, "USDT": 500_000_000},
        deny_destinations=frozenset({DENIED}),
    )
    policy = TonHighloadPolicy(
        wallet=WALLET, subwallet_id=0x10AD, max_timeout_s=600, clock_skew_s=60, max_internal_nanotons=100_000_000,
        max_batch=254, native_asset="TON", jettons={"USDT": TonJetton(master=MASTER, wallet=JETTON_WALLET)},
        max_jetton_attach_nanotons=100_000_000,
    )  # fmt: skip
    live = OneLiveSignature(margin_s=MARGIN)
    stellar = CheckPolicy(
        network_passphrase="n", funding_account=HOT.public_key, allowed_sources=frozenset({HOT.public_key}),
        max_fee_stroops=1, contract_id=None, method_name="m", allowed_assets=frozenset({"XLM"}),
        contract_asset="XLM", max_validity_seconds=60,
    )  # fmt: skip
    signer = SignPipeline(
        schemes=[StellarScheme(stellar), TonScheme(HIGHLOAD, policy)], backend=backend, spending=spending,
        source="/prizeflow/signer", clock=clock, live=live,
    )  # fmt: skip
    return World(signer, fakes, clock)


def dest(i: int) -> str:
    return "0:" + f"{i + 0xA0:064x}"


def ton(i: int, amount: int = TON, *, to: str | None = None) -> Transfer:
    return Transfer(kind=TransferKind.TON, destination=to or dest(i), amount=amount, bounce=False)


def jetton(i: int, amount: int = 2_500_000) -> Transfer:
    return Transfer(
        kind=TransferKind.JETTON, destination=dest(i), amount=amount, bounce=True, jetton_wallet=JETTON_WALLET,
        attached_nanotons=50_000_000, forward_nanotons=1, response_destination=WALLET, query_id=i,
    )  # fmt: skip


def batch(*transfers: Transfer, query: int = 1, created_at: int = NOW) -> HighloadBatch:
    return HighloadBatch(
        wallet=WALLET, subwallet_id=0x10AD, query_id=QueryId.from_sequence(query), created_at=created_at,
        timeout=TIMEOUT, transfers=transfers or (ton(0), jetton(1), ton(2)), internal_nanotons=50_000_000,
    )  # fmt: skip


def assert_signed(result: EventPayload, b: HighloadBatch) -> TonBatchSigned:
    assert isinstance(result, TonBatchSigned), result
    ext = parse_external(from_b64(result.signed_boc))
    assert ext.batch == b
    assert ext.hash == result.message_hash
    VerifyKey(bytes.fromhex(result.signed_by)).verify(signing_hash(b), ext.signature)
    return result


def assert_refused(result: EventPayload, code: str) -> SignatureRefused:
    assert isinstance(result, SignatureRefused), result
    assert result.code.value == code, result.detail
    return result


async def test_signs_an_honest_mixed_batch_and_counts_its_sums(backend: SignatureBackend) -> None:
    w = make_world(backend)
    b = batch()
    req = batch_request(b, master=MASTER)
    signed = assert_signed(await w.run(req), b)
    assert signed.payout_ids == req.payout_ids
    assert w.fakes.spend.spent == {"TON": 2 * TON + 50_000_000, "USDT": 2_500_000}
    live = w.fakes.signatures.by_payout
    assert {p: s.max_time for p, s in live.items()} == dict.fromkeys(req.payout_ids, NOW + TIMEOUT)
    assert w.fakes.audit.records[-1].decision == "signed"
    assert w.fakes.audit.records[-1].payout_ids == tuple(req.payout_ids)


async def test_a_full_batch_of_254_is_signed(backend: SignatureBackend) -> None:
    w = make_world(backend)
    b = batch(*(jetton(i, 100_000) if i % 2 else ton(i, 10_000_000) for i in range(254)))
    assert_signed(await w.run(batch_request(b, master=MASTER)), b)


@pytest.mark.parametrize(
    ("transfers", "code"),
    [
        ((ton(0), ton(1, amount=9 * TON + 1)), "over_tx_cap"),  # each under the cap, the sum over it
        ((ton(0), ton(1, to=DENIED)), "destination_denied"),
    ],
)
async def test_caps_apply_to_the_sum_and_the_deny_list_to_every_destination(
    backend: SignatureBackend, transfers: tuple[Transfer, ...], code: str
) -> None:
    w = make_world(backend)
    assert_refused(await w.run(batch_request(batch(*transfers), master=MASTER)), code)
    assert w.fakes.spend.spent == {}
    assert w.fakes.signatures.by_payout == {}


async def test_the_daily_cap_counts_every_batch_signed(backend: SignatureBackend) -> None:
    w = make_world(backend)
    for n in range(2):
        b = batch(ton(3 * n, 5 * TON), ton(3 * n + 1, 5 * TON), query=n)
        assert_signed(await w.run(batch_request(b, master=MASTER)), b)
    third = batch(ton(9, 5 * TON), ton(10, 5 * TON), query=2)
    assert_refused(await w.run(batch_request(third, master=MASTER)), "over_daily_cap")


async def test_no_payout_is_ever_in_two_live_messages(backend: SignatureBackend) -> None:
    w = make_world(backend)
    first = batch(ton(0), ton(1), query=1)
    req = batch_request(first, master=MASTER)
    assert_signed(await w.run(req), first)
    # Payout of ton(1) again, now beside a new one, in a message with another query id: refused until the first
    # message's created_at + timeout (+ margin) has passed.
    second = batch(ton(1), ton(2), query=2, created_at=NOW + 10)
    again = batch_request(second, master=MASTER, payout_ids=[req.payout_ids[1], "po-new"])
    w.clock.now = NOW + 10
    refused = assert_refused(await w.run(again), "live_signature_exists")
    assert refused.live_until == NOW + TIMEOUT + MARGIN
    assert "po-new" not in w.fakes.signatures.by_payout  # nothing recorded for the innocent one either
    w.clock.now = NOW + TIMEOUT + MARGIN + 1
    later = batch(ton(1), ton(2), query=3, created_at=int(w.clock.now))
    retry = batch_request(later, master=MASTER, payout_ids=[req.payout_ids[1], "po-new"])
    assert_signed(await w.run(retry), later)


async def test_the_same_batch_is_signed_again_and_counted_once(backend: SignatureBackend) -> None:
    w = make_world(backend)
    b = batch()
    req = batch_request(b, master=MASTER)
    first = assert_signed(await w.run(req), b)
    again = assert_signed(await w.run(req.model_copy(update={"request_id": "ton-batch-again"})), b)
    assert first.signed_boc == again.signed_boc
    assert w.fakes.spend.spent == {"TON": 2 * TON + 50_000_000, "USDT": 2_500_000}


async def test_a_replayed_request_gets_the_same_answer() -> None:
    w = make_world(HotKeyBackend(HOT.secret))
    req = batch_request(batch(), master=MASTER)
    first = await w.run(req)
    again = await w.run(req)
    assert first == again
    assert [a.decision for a in w.fakes.audit.records] == ["signed", "replayed"]


async def test_external_backend_checks_then_asks_for_out_of_band_signing() -> None:
    w = make_world(ExternalBackend())
    req = batch_request(batch(), master=MASTER)
    assert_refused(await w.run(req), "external_signing_required")
    intents = [req.intents[0].model_copy(update={"amount": 5}), *req.intents[1:]]
    tampered = req.model_copy(update={"intents": intents, "request_id": "ton-batch-tampered"})
    assert_refused(await w.run(tampered), "amount_mismatch")
