"""The signer as a real process on real Kafka + PostgreSQL: requests in, results out through the outbox; unreadable
requests answered at once; one live signature per payout, held by the database too."""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from nacl.signing import VerifyKey
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from stellar_sdk import Keypair, TransactionEnvelope

import prizeflow_stellar as ps
from prizeflow_contracts.envelope import Envelope, EventPayload, decode, new_event
from prizeflow_contracts.events.signer import SignatureRefused, SignatureRequested, TonBatchSigned, TransactionSigned
from prizeflow_contracts.topics import SIGNER_REQUESTS, SIGNER_RESULTS
from prizeflow_runtime.db import create_engine
from prizeflow_runtime.dead_letters import DLQ_REASON
from prizeflow_runtime.migrations import upgrade_to_head
from prizeflow_runtime.outbox import idempotent_producer
from prizeflow_signer.adapters.sql import SqlSignatureStore
from prizeflow_signer.application.sign_pipeline import result_event_id
from prizeflow_signer.domain.policy import LiveSignature
from prizeflow_testkit import Process, eventually, free_port, provision_test_topics, read_topic
from prizeflow_testkit.ton import batch_request
from prizeflow_ton import highload as ton_highload
from prizeflow_ton.highload import HighloadBatch, QueryId
from prizeflow_ton.messages import Transfer, TransferKind
from prizeflow_ton.messages import from_b64 as ton_from_b64

pytestmark = pytest.mark.integration

ALEMBIC_INI = str(Path(__file__).parents[2] / "alembic.ini")
NETWORK = "Prizeflow Signer Integration ; 2025"
HOT = Keypair.random()
DEST = Keypair.random().public_key


@pytest.fixture
async def db_url(fresh_database: str) -> str:
    await upgrade_to_head(ALEMBIC_INI, fresh_database)
    return fresh_database


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(db_url, pool_size=2)
    yield eng
    await eng.dispose()


@pytest.fixture
def suffix(topic_suffix: str) -> str:
    """The test's topic suffix; its topics are deleted afterwards (the devstack's `topic_suffix`)."""
    return topic_suffix


class SignerProcess(Process):
    """`python -m prizeflow_signer` (hot key) on a free port: the testkit's runner, ready on /health/ready."""

    def __init__(
        self, db_url: str, bootstrap: str, suffix: str, log: Path, extra: dict[str, str] | None = None
    ) -> None:
        self.port = free_port()
        env = {
            "DATABASE_URL": db_url,
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "HTTP_PORT": str(self.port),
            "KAFKA_TOPIC_SUFFIX": suffix,
            "OUTBOX_POLL_INTERVAL_MS": "50",
            "LOG_JSON": "false",
            "STELLAR_NETWORK_PASSPHRASE": NETWORK,
            "PAYOUT_SOURCE_ACCOUNT": HOT.public_key,
            "SIGNER_BACKEND": "hot_key",
            "PAYOUTS_SIGN_WITH_HOT_KEY": "true",
            "PAYOUT_HOT_SIGNER_SECRET": HOT.secret,
            "CONSUMER_BATCH_SIZE": "20",
            **(extra or {}),
        }
        super().__init__(
            [sys.executable, "-m", "prizeflow_signer"], env, log, f"http://127.0.0.1:{self.port}/health/ready"
        )


@pytest.fixture
def signer_factory(db_url: str, kafka_bootstrap: str, suffix: str, tmp_path: Path) -> Iterator[Any]:
    started: list[SignerProcess] = []

    def make(extra: dict[str, str] | None = None) -> SignerProcess:
        svc = SignerProcess(db_url, kafka_bootstrap, suffix, tmp_path / f"signer-{len(started)}.log", extra)
        started.append(svc)
        return svc

    yield make
    for svc in started:
        svc.stop()


def request(n: int, *, amount: int = 10_000_000, payout: str | None = None) -> Envelope[EventPayload]:
    built = ps.build_payments(
        source_account=HOT.public_key,
        sequence=1000 + n,
        payments=[ps.PaymentInstruction(payout or f"po-{n}", DEST, "XLM", amount)],
        network_passphrase=NETWORK,
        valid_until=int(time.time()) + 600,
    )
    payload = built.signature_request(request_id=f"sig-{n}", network_passphrase=NETWORK, max_fee_stroops=10_000)
    return new_event(payload, source="/prizeflow/payouts", correlation_id=f"payout-{n}")


async def publish(bootstrap: str, topic: str, items: Sequence[Envelope[Any] | bytes]) -> None:
    """Envelopes as the runtime sends them; raw bytes as they are (garbage a producer might send)."""
    producer = idempotent_producer(bootstrap)
    await producer.start()
    try:
        futures = [
            await (
                producer.send(topic, value=e, key=b"garbage")
                if isinstance(e, bytes)
                else producer.send(topic, value=e.encode(), key=e.key, headers=e.headers())
            )
            for e in items
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def results(bootstrap: str, suffix: str) -> dict[uuid.UUID, EventPayload]:
    """Distinct result events on Kafka by event id (the relay may re-publish after a crash)."""
    return {decode(r.value).id: decode(r.value).data for r in await read_topic(bootstrap, SIGNER_RESULTS.name + suffix)}


async def staged(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as conn:
        rows = await conn.execute(text("SELECT request_id FROM signer_results ORDER BY request_id"))
        return [r[0] for r in rows]


async def test_requests_in_signed_results_out_duplicates_answered_alike_and_audit_is_append_only(
    engine: AsyncEngine, kafka_bootstrap: str, suffix: str, signer_factory: Any
) -> None:
    await provision_test_topics(kafka_bootstrap, suffix)  # as the ops Job does: the signer only verifies
    honest = [request(i) for i in range(5)]
    tampered = request(99)
    bad = tampered.data
    assert isinstance(bad, SignatureRequested)
    forged = new_event(
        bad.model_copy(update={"unsigned_xdr": request(98, amount=20_000_000).data.unsigned_xdr}),  # type: ignore[attr-defined]
        source="/prizeflow/payouts",
        correlation_id="payout-99",
    )
    again = new_event(honest[0].data, source="/prizeflow/payouts", correlation_id="payout-0")  # same request id
    await publish(kafka_bootstrap, SIGNER_REQUESTS.name + suffix, [*honest, forged, honest[1]])
    svc = signer_factory()
    svc.start()
    out = await eventually(lambda: results(kafka_bootstrap, suffix), lambda r: len(r) >= 6, timeout=60)
    await publish(kafka_bootstrap, SIGNER_REQUESTS.name + suffix, [again])
    await eventually(lambda: _audit_decisions(engine), lambda d: d.get("replayed", 0) >= 1, timeout=60)
    await asyncio.sleep(0.5)
    out = await results(kafka_bootstrap, suffix)
    by_request = Counter(p.request_id for p in out.values())  # type: ignore[attr-defined]
    assert by_request == Counter({f"sig-{i}": 1 for i in range(5)} | {"sig-99": 1})
    for payload in out.values():
        if isinstance(payload, TransactionSigned):
            env = TransactionEnvelope.from_xdr(payload.signed_xdr, NETWORK)
            Keypair.from_public_key(HOT.public_key).verify(env.hash(), env.signatures[0].signature)
        else:
            assert isinstance(payload, SignatureRefused)
            assert payload.request_id == "sig-99"
            assert payload.code.value == "amount_mismatch"
    assert await _audit_decisions(engine) == {"signed": 5, "refused": 1, "replayed": 1}
    async with engine.connect() as conn:
        with pytest.raises(DBAPIError, match="append-only"):
            await conn.execute(text("UPDATE signer_audit SET decision = 'signed' WHERE request_id = 'sig-99'"))
    async with engine.connect() as conn:
        with pytest.raises(DBAPIError, match="append-only"):
            await conn.execute(text("DELETE FROM signer_results"))
    async with engine.connect() as conn:
        with pytest.raises(DBAPIError, match="append-only"):
            await conn.execute(text("TRUNCATE signer_spend"))


async def _audit_decisions(engine: AsyncEngine) -> dict[str, int]:
    async with engine.connect() as conn:
        rows = await conn.execute(text("SELECT decision, count(*) FROM signer_audit GROUP BY decision"))
        return {r[0]: r[1] for r in rows}


async def test_sigkill_mid_stream_and_restart_gives_exactly_one_result_per_request(
    engine: AsyncEngine, kafka_bootstrap: str, suffix: str, signer_factory: Any
) -> None:
    await provision_test_topics(kafka_bootstrap, suffix)  # as the ops Job does: the signer only verifies
    count = 300
    await publish(kafka_bootstrap, SIGNER_REQUESTS.name + suffix, [request(i) for i in range(count)])
    first = signer_factory()
    first.start()
    await eventually(lambda: staged(engine), lambda s: len(s) >= 10, timeout=60, interval=0.01)
    first.kill()
    assert first.proc is not None
    assert first.proc.returncode == -9
    partial = len(await staged(engine))
    second = signer_factory()
    second.start()
    await eventually(lambda: staged(engine), lambda s: len(s) >= count, timeout=120)
    out = await eventually(lambda: results(kafka_bootstrap, suffix), lambda r: len(r) >= count, timeout=60)
    await asyncio.sleep(0.5)
    out = await results(kafka_bootstrap, suffix)
    per_request = Counter(p.request_id for p in out.values())  # type: ignore[attr-defined]
    assert per_request == Counter({f"sig-{i}": 1 for i in range(count)}), f"{partial} decided before the kill"
    assert all(isinstance(p, TransactionSigned) for p in out.values())
    async with engine.connect() as conn:
        signed = await conn.scalar(text("SELECT count(*) FROM signer_audit WHERE decision = 'signed'"))
        spent = await conn.scalar(text("SELECT sum(amount) FROM signer_spend"))
    assert signed == count
    assert spent == count * 10_000_000  # the daily cap counted every signature once


async def test_an_unreadable_request_that_names_its_request_id_is_refused_at_once(
    engine: AsyncEngine, kafka_bootstrap: str, suffix: str, signer_factory: Any
) -> None:
    """Garbage naming a valid request id gets SignatureRefused(malformed_request) and an audit row; a later
    readable copy of that request gets the same answer; garbage naming no valid request id only goes to the DLQ."""
    await provision_test_topics(kafka_bootstrap, suffix)  # as the ops Job does: the signer only verifies
    honest = request(1, payout="po-garbage-1")
    doc = json.loads(honest.encode())
    bad_payload = json.dumps(
        {**doc, "id": str(uuid.uuid4()), "data": {**doc["data"], "unsigned_xdr": "!!"}}  # invalid_payload
    ).encode()
    no_envelope = json.dumps({"data": {"request_id": "sig-noenv", "payout_ids": ["po-garbage-2"]}}).encode()
    bad_id = json.dumps({**doc, "id": str(uuid.uuid4()), "data": {**doc["data"], "request_id": "no spaces!"}}).encode()
    not_json = b"\xff{ not json"
    svc = signer_factory()
    svc.start()
    await publish(kafka_bootstrap, SIGNER_REQUESTS.name + suffix, [bad_payload, no_envelope, bad_id, not_json])

    async def dead_letters() -> list[str]:
        async with engine.connect() as conn:
            return [r[0] for r in await conn.execute(text("SELECT reason FROM dead_letters ORDER BY id"))]

    assert sorted(await eventually(dead_letters, lambda d: len(list(d)) >= 4, timeout=60)) == sorted(
        ["invalid_payload", "unknown_event_type", "invalid_payload", "malformed_json"]
    )
    out = await eventually(lambda: results(kafka_bootstrap, suffix), lambda r: len(r) >= 2, timeout=60)
    assert set(out) == {result_event_id("sig-1"), result_event_id("sig-noenv")}
    first, second = out[result_event_id("sig-1")], out[result_event_id("sig-noenv")]
    assert isinstance(first, SignatureRefused)
    assert (first.code.value, first.payout_ids) == ("malformed_request", ["po-garbage-1"])
    assert "invalid_payload" in first.detail
    assert isinstance(second, SignatureRefused)
    assert (second.code.value, second.payout_ids) == ("malformed_request", ["po-garbage-2"])
    # The readable request under the refused request id: the same answer, under the same event id.
    await publish(kafka_bootstrap, SIGNER_REQUESTS.name + suffix, [honest])
    await eventually(lambda: _audit_decisions(engine), lambda d: d.get("replayed", 0) >= 1, timeout=60)
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text("SELECT request_id, decision, code, payout_ids FROM signer_audit ORDER BY request_id, id")
            )
        ).all()
    assert [tuple(r) for r in rows] == [
        ("sig-1", "refused", "malformed_request", ["po-garbage-1"]),
        ("sig-1", "replayed", "malformed_request", ["po-garbage-1"]),
        ("sig-noenv", "refused", "malformed_request", ["po-garbage-2"]),
    ]
    dlq = await eventually(
        lambda: read_topic(kafka_bootstrap, SIGNER_REQUESTS.name + suffix + ".dlq"), lambda r: len(r) >= 4, timeout=60
    )
    assert len(dlq) == 4  # every refused record is still dead-lettered, answered or not
    assert sorted(dict(r.headers)[DLQ_REASON].decode() for r in dlq) == sorted(await dead_letters())
    out = await results(kafka_bootstrap, suffix)
    assert set(out) == {result_event_id("sig-1"), result_event_id("sig-noenv")}  # no answer to what named no id


async def test_a_second_live_transaction_for_a_payout_is_refused_through_kafka(
    engine: AsyncEngine, kafka_bootstrap: str, suffix: str, signer_factory: Any
) -> None:
    await provision_test_topics(kafka_bootstrap, suffix)  # as the ops Job does: the signer only verifies
    first, rebuilt = request(1, payout="po-live"), request(2, payout="po-live")  # two transactions, one payout
    same_again = new_event(
        first.data.model_copy(update={"request_id": "sig-1b"}),
        source="/prizeflow/payouts",
        correlation_id="payout-1",
    )
    svc = signer_factory()
    svc.start()
    await publish(kafka_bootstrap, SIGNER_REQUESTS.name + suffix, [first])
    await eventually(lambda: results(kafka_bootstrap, suffix), lambda r: len(r) >= 1, timeout=60)
    await publish(kafka_bootstrap, SIGNER_REQUESTS.name + suffix, [rebuilt, same_again])
    out = await eventually(lambda: results(kafka_bootstrap, suffix), lambda r: len(r) >= 3, timeout=60)
    by_request = {p.request_id: p for p in out.values()}  # type: ignore[attr-defined]
    signed, refused, again = by_request["sig-1"], by_request["sig-2"], by_request["sig-1b"]
    assert isinstance(signed, TransactionSigned)
    assert isinstance(refused, SignatureRefused)
    assert refused.code.value == "live_signature_exists"
    assert isinstance(again, TransactionSigned)
    assert again.signed_xdr == signed.signed_xdr
    async with engine.connect() as conn:
        live = (await conn.execute(text("SELECT payout_id, tx_hash FROM signer_payout_signatures"))).all()
        spent = await conn.scalar(text("SELECT sum(amount) FROM signer_spend"))
    assert [tuple(r) for r in live] == [("po-live", signed.tx_hash)]
    assert spent == 10_000_000  # the same transaction signed twice is counted once


async def test_a_highload_batch_is_signed_through_kafka_and_its_payouts_held_live(
    engine: AsyncEngine, kafka_bootstrap: str, suffix: str, signer_factory: Any
) -> None:
    """A TonBatchSignatureRequested of a mixed TON + USDT batch in, TonBatchSigned out (the external message
    verifies against the hot key); a second batch naming one of its payouts is refused while the first can land;
    the database holds every payout's live message and the batch's sums."""
    await provision_test_topics(kafka_bootstrap, suffix)  # as the ops Job does: the signer only verifies
    wallet, master, jetton_wallet = "0:" + "11" * 32, "0:" + "44" * 32, "0:" + "33" * 32
    svc = signer_factory(
        {
            "SIGNER_TON_HIGHLOAD_WALLET": wallet,
            "SIGNER_TON_HIGHLOAD_JETTONS": json.dumps({"USDT": {"master": master, "wallet": jetton_wallet}}),
            "SIGNER_TX_CAPS": json.dumps({"XLM": 10**12, "USDC": 10**12, "TON": 10**12, "USDT": 10**12}),
            "SIGNER_DAILY_CAPS": json.dumps({"XLM": 10**13, "USDC": 10**13, "TON": 10**13, "USDT": 10**13}),
        }
    )
    now = int(time.time())

    def ton_batch(query: int, transfers: list[Transfer]) -> HighloadBatch:
        return HighloadBatch(
            wallet=wallet, subwallet_id=0x10AD, query_id=QueryId.from_sequence(query), created_at=now - 2,
            timeout=300, transfers=tuple(transfers), internal_nanotons=50_000_000,
        )  # fmt: skip

    def dest(i: int) -> str:
        return "0:" + f"{i + 0xA0:064x}"

    usdt = Transfer(
        kind=TransferKind.JETTON, destination=dest(1), amount=7_000_000, bounce=True, jetton_wallet=jetton_wallet,
        attached_nanotons=50_000_000, forward_nanotons=1, response_destination=wallet, query_id=1,
    )  # fmt: skip
    first = ton_batch(1, [Transfer(kind=TransferKind.TON, destination=dest(0), amount=2 * 10**9, bounce=False), usdt])
    request_1 = batch_request(first, master=master, payout_ids=["po-hl-0", "po-hl-1"], request_id="ton-batch-1")
    second = ton_batch(2, [usdt, Transfer(kind=TransferKind.TON, destination=dest(2), amount=10**9, bounce=False)])
    request_2 = batch_request(second, master=master, payout_ids=["po-hl-1", "po-hl-2"], request_id="ton-batch-2")
    svc.start()
    await publish(
        kafka_bootstrap,
        SIGNER_REQUESTS.name + suffix,
        [new_event(request_1, source="/prizeflow/payouts", correlation_id="po-hl-0")],
    )
    await eventually(lambda: results(kafka_bootstrap, suffix), lambda r: len(r) >= 1, timeout=60)
    await publish(
        kafka_bootstrap,
        SIGNER_REQUESTS.name + suffix,
        [new_event(request_2, source="/prizeflow/payouts", correlation_id="po-hl-1")],
    )
    out = await eventually(lambda: results(kafka_bootstrap, suffix), lambda r: len(r) >= 2, timeout=60)
    by_request = {p.request_id: p for p in out.values()}  # type: ignore[attr-defined]
    signed, refused = by_request["ton-batch-1"], by_request["ton-batch-2"]
    assert isinstance(signed, TonBatchSigned)
    assert signed.payout_ids == ["po-hl-0", "po-hl-1"]
    ext = ton_highload.parse_external(ton_from_b64(signed.signed_boc))
    assert ext.batch == first
    assert ext.hash == signed.message_hash
    VerifyKey(bytes(HOT.raw_public_key())).verify(ton_highload.signing_hash(first), ext.signature)
    assert isinstance(refused, SignatureRefused)
    assert refused.code.value == "live_signature_exists"
    assert refused.live_until is not None
    assert refused.live_until >= first.expires_at
    async with engine.connect() as conn:
        live = (await conn.execute(text("SELECT payout_id, tx_hash, max_time FROM signer_payout_signatures"))).all()
        rows = (await conn.execute(text("SELECT asset, sum(amount) FROM signer_spend GROUP BY asset"))).all()
    spent: dict[str, int] = {r[0]: int(r[1]) for r in rows}
    inner_hash = ton_highload.signing_hash(first).hex()
    assert sorted(tuple(r) for r in live) == [
        ("po-hl-0", inner_hash, first.expires_at),
        ("po-hl-1", inner_hash, first.expires_at),
    ]
    assert spent == {"TON": 2 * 10**9 + 50_000_000, "USDT": 7_000_000}


async def test_the_database_refuses_replacing_a_transaction_that_can_still_land(engine: AsyncEngine) -> None:
    a, b = "a" * 64, "b" * 64
    async with engine.begin() as conn, AsyncSession(bind=conn) as session:
        store = SqlSignatureStore(session)
        await store.record(request_id="r-a", tx_hash=a, max_time=1_000, payout_ids=["p"], now=900)
        await store.record(request_id="r-a2", tx_hash=a, max_time=1_000, payout_ids=["p"], now=950)
    with pytest.raises(DBAPIError, match="can still land"):
        async with engine.begin() as conn, AsyncSession(bind=conn) as session:
            await SqlSignatureStore(session).record(
                request_id="r-b", tx_hash=b, max_time=2_000, payout_ids=["p"], now=1_000
            )
    async with engine.begin() as conn, AsyncSession(bind=conn) as session:
        store = SqlSignatureStore(session)
        await store.record(request_id="r-b", tx_hash=b, max_time=2_000, payout_ids=["p"], now=1_001)
        assert (await store.live(["p", "q"])) == {"p": LiveSignature(b, 2_000)}
    with pytest.raises(DBAPIError, match="refused"):
        async with engine.begin() as conn:
            await conn.execute(text("DELETE FROM signer_payout_signatures"))
