"""The signer as a real process on real Kafka + PostgreSQL: requests in, results out through the outbox."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine
from stellar_sdk import Keypair, TransactionEnvelope

import prizeflow_stellar as ps
from prizeflow_contracts.envelope import Envelope, EventPayload, decode, new_event
from prizeflow_contracts.events.signer import SignatureRefused, SignatureRequested, TransactionSigned
from prizeflow_contracts.topics import SIGNER_REQUESTS, SIGNER_RESULTS
from prizeflow_devstack.ports import pick_free_port
from prizeflow_runtime.broker import ensure_topics
from prizeflow_runtime.db import create_engine
from prizeflow_runtime.migrations import upgrade_to_head
from prizeflow_runtime.outbox import idempotent_producer
from prizeflow_runtime.testing import eventually, read_topic

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
def suffix() -> str:
    return "." + uuid.uuid4().hex[:12]


class SignerProcess:
    def __init__(self, db_url: str, bootstrap: str, suffix: str, log: Path) -> None:
        self.db_url, self.bootstrap, self.suffix, self.log = db_url, bootstrap, suffix, log
        self.port = pick_free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> None:
        env = {
            **os.environ,
            "DATABASE_URL": self.db_url,
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "HTTP_PORT": str(self.port),
            "KAFKA_TOPIC_SUFFIX": self.suffix,
            "OUTBOX_POLL_INTERVAL_MS": "50",
            "LOG_JSON": "false",
            "STELLAR_NETWORK_PASSPHRASE": NETWORK,
            "PAYOUT_SOURCE_ACCOUNT": HOT.public_key,
            "SIGNER_BACKEND": "hot_key",
            "PAYOUTS_SIGN_WITH_HOT_KEY": "true",
            "PAYOUT_HOT_SIGNER_SECRET": HOT.secret,
            "CONSUMER_BATCH_SIZE": "20",
        }
        out = self.log.open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "prizeflow_signer"], env=env, stdout=out, stderr=out)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"signer exited with {self.proc.returncode}:\n{self.log.read_text()[-4000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health/ready", timeout=1) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        raise AssertionError(f"signer not ready:\n{self.log.read_text()[-4000:]}")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def signer_factory(db_url: str, kafka_bootstrap: str, suffix: str, tmp_path: Path) -> Iterator[Any]:
    started: list[SignerProcess] = []

    def make() -> SignerProcess:
        svc = SignerProcess(db_url, kafka_bootstrap, suffix, tmp_path / f"signer-{len(started)}.log")
        started.append(svc)
        return svc

    yield make
    for svc in started:
        svc.stop()


def request(n: int, *, amount: int = 10_000_000) -> Envelope[EventPayload]:
    built = ps.build_payments(
        source_account=HOT.public_key,
        sequence=1000 + n,
        payments=[ps.PaymentInstruction(f"po-{n}", DEST, "XLM", amount)],
        network_passphrase=NETWORK,
        valid_until=int(time.time()) + 600,
    )
    payload = built.signature_request(request_id=f"sig-{n}", network_passphrase=NETWORK, max_fee_stroops=10_000)
    return new_event(payload, source="/prizeflow/payouts", correlation_id=f"payout-{n}")


async def publish(bootstrap: str, topic: str, items: Sequence[Envelope[Any]]) -> None:
    producer = idempotent_producer(bootstrap)
    await producer.start()
    try:
        futures = [await producer.send(topic, value=e.encode(), key=e.key, headers=e.headers()) for e in items]
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
    await ensure_topics(kafka_bootstrap, [SIGNER_REQUESTS.name + suffix, SIGNER_RESULTS.name + suffix])
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
    await ensure_topics(kafka_bootstrap, [SIGNER_REQUESTS.name + suffix, SIGNER_RESULTS.name + suffix])
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
