"""The Stellar provider on real Kafka + PostgreSQL, with the Soroban emulator and the signer as processes."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import pytest
from stellar_sdk import Keypair, MuxedAccount, TransactionEnvelope

from prizeflow_devstack.infra import Infra
from prizeflow_payouts.adapters.payout_rows import payout_from_row
from prizeflow_payouts.adapters.stellar import StellarPayoutProvider
from prizeflow_testkit import eventually
from prizeflow_testkit.payouts import fetch
from prizeflow_testkit.stellar import NETWORK, Stack, destinations, stellar_stack

pytestmark = pytest.mark.integration


async def test_payouts_are_paid_once_on_the_ledger(
    infra: Infra, db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with stellar_stack(
        infra=infra, db=db, kafka=kafka_bootstrap, tmp=tmp_path, monkeypatch=monkeypatch, topic_suffix=topic_suffix
    ) as s:
        # An idle engine asks the network nothing: while it leads and nothing is queued, its passes read the queue
        # and stop there (no `getLatestLedger` every pass).
        provider = s.parts.config.registry.get("stellar").provider
        assert isinstance(provider, StellarPayoutProvider)
        await eventually(lambda: _now(provider.engine.leadership.leads), bool, timeout=10, interval=0.05)
        before = _asked(s, "getLatestLedger")
        await asyncio.sleep(2.5)  # idle passes, their pauses doubling from `tick_s`
        assert _asked(s, "getLatestLedger") == before
        dests = destinations(s.rpc, 5)
        keys = []
        for n, d in enumerate(dests):
            resp = await s.create(d, 10_000_000 * (n + 1), asset="XLM" if n % 2 else "USDC")
            assert resp.kind == "payout", resp
            assert resp.payout_id is not None
            keys.append(resp.payout_id)
        rows = await fetch(db, "SELECT idempotency_key FROM payouts")
        final = await s.wait_final([r["idempotency_key"] for r in rows], timeout=60)
        assert set(final.values()) == {"paid"}, final
        paid = s.paid_count()
        assert all(paid[d] == 1 for d in dests), paid
        txs = await fetch(db, "SELECT state, payout_ids, sequence FROM stellar_txs")
        landed = [p for t in txs if t["state"] == "success" for p in t["payout_ids"]]
        assert sorted(landed) == sorted(keys)  # each payout in exactly one transaction that landed
        # What the "stuck source account" alert reads (the worker refreshes it): the funding account advanced to
        # the last landed sequence, and nothing waits.
        last = max(t["sequence"] for t in txs if t["state"] == "success")
        funding = '{account="funding",provider="stellar"}'

        async def scraped() -> dict[str, float]:
            return samples((await s.client.get("/metrics")).text)

        got = await eventually(scraped, lambda m: m.get(f"prizeflow_payouts_source_sequence{funding}") == last)
        assert abs(got[f"prizeflow_payouts_source_advanced_timestamp_seconds{funding}"] - time.time()) < 120
        assert got['prizeflow_payouts_oldest_waiting_seconds{provider="stellar"}'] == 0
        assert _asked(s, "getLatestLedger") > before  # once there was work, it did


async def _now(value: bool) -> bool:
    return value


def _asked(s: Stack, method: str) -> int:
    """How many times the emulated network was asked `method`."""
    return int(s.rpc.admin.stats()["counters"].get(f"rpc_{method}", 0))


def samples(exposition: str) -> dict[str, float]:
    """`series{labels}` → value, of a Prometheus text exposition."""
    out: dict[str, float] = {}
    for line in exposition.splitlines():
        if line and not line.startswith("#"):
            series, _, value = line.rpartition(" ")
            out[series] = float(value)
    return out


async def test_build_only_stores_unsigned_xdr_and_submits_nothing(
    infra: Infra, db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with stellar_stack(
        infra=infra,
        db=db,
        kafka=kafka_bootstrap,
        tmp=tmp_path,
        monkeypatch=monkeypatch,
        live=False,
        backend=None,
        topic_suffix=topic_suffix,
    ) as s:
        dests = destinations(s.rpc, 3)
        ids = []
        for d in dests:
            resp = await s.create(d, 5_000_000)
            assert resp.kind == "payout", resp
            assert resp.payout_id is not None
            ids.append(resp.payout_id)

        async def built() -> list[str]:
            rows = await fetch(db, "SELECT state FROM stellar_payouts WHERE state = 'in_tx'")
            return [r["state"] for r in rows]

        await eventually(built, lambda r: len(r) == 3, timeout=30)
        view = (await s.client.get(f"/payouts/{ids[0]}/unsigned-xdr", headers=s.admin)).json()
        tx = view["transaction"]
        assert tx["state"] == "built"
        assert not tx["awaiting_signature"]
        env = TransactionEnvelope.from_xdr(tx["unsigned_xdr"], NETWORK)
        assert env.hash_hex() == tx["tx_hash"]
        assert not env.signatures
        assert env.transaction.preconditions is not None
        assert env.transaction.preconditions.time_bounds is not None
        assert env.transaction.preconditions.time_bounds.max_time > 0
        await asyncio.sleep(1.0)
        counters = s.rpc.admin.stats()["counters"]
        assert not any(k.startswith("send_") for k in counters), counters  # nothing submitted
        assert s.payments() == []
        states = await fetch(db, "SELECT state FROM payouts")
        assert {r["state"] for r in states} == {"submitted"}


async def test_one_payout_one_transaction(
    infra: Infra, db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with stellar_stack(
        infra=infra, db=db, kafka=kafka_bootstrap, tmp=tmp_path, monkeypatch=monkeypatch, topic_suffix=topic_suffix
    ) as s:
        (dest,) = destinations(s.rpc, 1)
        key = "claim-42:payout:1"
        first = await s.create(dest, 12_345_678, key=key)
        again = await s.create(dest, 12_345_678, key=key)
        assert first.kind == again.kind == "payout"
        assert first.payout_id == again.payout_id
        assert first.created
        assert not again.created
        conflict = await s.create(dest, 99, key=key)
        assert (conflict.kind, conflict.code) == ("dead_letter", "conflicting_event")
        # The provider itself is idempotent per key too (a worker retry after an unknown outcome).
        provider = s.parts.config.registry.get("stellar").provider
        assert isinstance(provider, StellarPayoutProvider)
        await s.wait_final([key])
        row = (await fetch(db, "SELECT * FROM payouts WHERE idempotency_key = $1", key))[0]
        rec = payout_from_row(row)
        # A second process (own pool, own event loop) asking again: the books answer, nothing new is built.
        other = StellarPayoutProvider(provider.o, database_url=db)
        try:
            replay = await other.create_payouts([rec.instruction(), rec.instruction()])
            synced = await other.sync_status(rec.lookup())
        finally:
            await other.close()
        assert synced.status.value == "paid"
        assert synced.tx_hash is not None
        assert {r.status.value for r in replay if not isinstance(r, Exception)} == {"paid"}
        txs = await fetch(db, "SELECT state FROM stellar_txs WHERE $1 = ANY(payout_ids)", rec.id)
        assert [t["state"] for t in txs] == ["success"]
        assert s.paid_count()[dest] == 1
        assert [p["amount"] for p in s.payments()] == [12_345_678]


async def test_100_concurrent_payouts_from_one_source_account(
    infra: Infra, db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with stellar_stack(
        infra=infra,
        db=db,
        kafka=kafka_bootstrap,
        tmp=tmp_path,
        monkeypatch=monkeypatch,
        ledger_ms=400,
        options={"max_ops_per_tx": 7},  # many transactions, so many sequence numbers, from one account
        topic_suffix=topic_suffix,
    ) as s:
        dests = destinations(s.rpc, 100, usdc=False)
        keys = [f"nonce-{n}-{uuid.uuid4().hex[:6]}" for n in range(100)]
        answers = await asyncio.gather(
            *(s.create(d, 1_000_000 + n, key=k) for n, (d, k) in enumerate(zip(dests, keys, strict=True)))
        )
        assert all(a.kind == "payout" for a in answers)
        final = await s.wait_final(keys, timeout=120)
        assert set(final.values()) == {"paid"}, await s.dump()
        paid = s.paid_count()
        assert all(paid[d] == 1 for d in dests)
        assert len(s.payments()) == 100  # none lost, none twice
        txs = await fetch(db, "SELECT lane, sequence, state FROM stellar_txs ORDER BY sequence")
        landed = [t["sequence"] for t in txs if t["state"] in ("success", "failed")]
        assert len({t["lane"] for t in txs}) == 1
        assert len(landed) >= 100 // 7
        assert landed == list(range(landed[0], landed[0] + len(landed)))  # consecutive, no collision, no gap
        live = [(t["lane"], t["sequence"]) for t in txs if t["state"] not in ("dead", "refused")]
        assert len(live) == len(set(live))
        funding = s.rpc.admin.account(s.keys.funding.public_key)
        assert funding is not None
        ledger_seq = funding["sequence"]
        assert ledger_seq == landed[-1]


async def test_invalid_payouts_are_refused_for_good_or_dead_lettered(
    infra: Infra, db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with stellar_stack(
        infra=infra,
        db=db,
        kafka=kafka_bootstrap,
        tmp=tmp_path,
        monkeypatch=monkeypatch,
        live=False,
        backend=None,
        topic_suffix=topic_suffix,
    ) as s:
        good = Keypair.random().public_key
        bad_checksum = good[:-1] + ("A" if good[-1] != "A" else "B")
        # What the provider can never pay is refused for good (rewards voids the reservation on it).
        resp = await s.create(bad_checksum, 10)
        assert (resp.kind, resp.code) == ("refused", "invalid_destination")
        resp = await s.create(s.keys.funding.public_key, 10)
        assert resp.kind == "refused"
        resp = await s.create(good, 10, asset="USD")
        assert (resp.kind, resp.code) == ("refused", "no_provider_route")
        # What the contract itself refuses is a dead letter (and, naming its claim, refused for good too).
        muxed = MuxedAccount(good, 7).account_muxed
        assert muxed is not None
        resp = await s.create(muxed, 10)
        assert (resp.kind, resp.code) == ("dead_letter", "invalid_payload")  # the contract accepts G... only
        assert "G..." in (resp.detail or "")
        resp = await s.create(good, 10, key="bad key!")
        assert (resp.kind, resp.code) == ("dead_letter", "invalid_payload")
        resp = await s.create(good, 2**63)  # beyond int64 stroops
        assert (resp.kind, resp.code) == ("dead_letter", "invalid_payload")
        assert (await fetch(db, "SELECT count(*) AS n FROM payouts"))[0]["n"] == 0
