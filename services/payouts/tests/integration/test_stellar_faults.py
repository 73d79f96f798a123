"""Never twice under faults: dropped-after-accept, TRY_AGAIN_LATER, tx_bad_seq on the emulator, and the signer
SIGKILLed mid-stream; plus external signing through the admin API."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from stellar_sdk import Keypair, TransactionEnvelope

import prizeflow_stellar as ps
from prizeflow_devstack.infra import Infra
from prizeflow_testkit import eventually
from prizeflow_testkit.payouts import fetch
from prizeflow_testkit.stellar import NETWORK, destinations, stellar_stack

pytestmark = pytest.mark.integration

FAULTS = {"drop_after_accept_rate": 0.25, "try_again_later_rate": 0.25, "bad_seq_rate": 0.2}


async def test_faults_and_a_killed_signer_never_pay_twice(
    infra: Infra, db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with stellar_stack(
        infra=infra,
        db=db,
        kafka=kafka_bootstrap,
        tmp=tmp_path,
        monkeypatch=monkeypatch,
        ledger_ms=500,
        channels=2,
        options={"validity_s": 8, "max_ops_per_tx": 10},
        emulator_env={"SOROBAN_EMULATOR_FAULTS": json.dumps(FAULTS)},
        topic_suffix=topic_suffix,
    ) as s:
        dests = destinations(s.rpc, 40)
        keys = [f"fault-{n}-{uuid.uuid4().hex[:6]}" for n in range(40)]
        for n in range(20):
            assert (await s.create(dests[n], 3_000_000 + n, asset="USDC", key=keys[n])).kind == "payout"
        await asyncio.sleep(0.3)
        assert s.signer is not None
        s.signer.kill()  # mid-stream: requests in flight, none answered
        for n in range(20, 40):
            assert (await s.create(dests[n], 3_000_000 + n, key=keys[n])).kind == "payout"
        await asyncio.sleep(2.0)
        s.signer.start()
        final = await s.wait_final(keys, timeout=180)
        paid = s.paid_count()
        for key, dest in zip(keys, dests, strict=True):
            if final[key] == "paid":
                assert paid[dest] == 1, (key, paid[dest])
            else:
                assert paid[dest] == 0, (key, paid[dest])
                row = (await fetch(db, "SELECT last_error_code FROM payouts WHERE idempotency_key = $1", key))[0]
                assert row["last_error_code"], key
        assert max(paid.values()) == 1  # never twice, whatever happened
        assert sum(1 for v in final.values() if v == "paid") == 40, await s.dump()
        counters = s.rpc.admin.stats()["counters"]
        assert counters.get("dropped_after_accept", 0) > 0
        assert counters.get("send_try_again_later", 0) > 0
        assert counters.get("send_error_txBAD_SEQ", 0) > 0
        requests = await fetch(db, "SELECT max(sign_requests) AS n FROM stellar_txs")
        assert requests[0]["n"] >= 1


async def test_external_signing_refuses_wrong_signatures_and_other_transactions(
    infra: Infra, db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with stellar_stack(
        infra=infra,
        db=db,
        kafka=kafka_bootstrap,
        tmp=tmp_path,
        monkeypatch=monkeypatch,
        backend="external",
        ledger_ms=1000,
        options={"validity_s": 600},
        topic_suffix=topic_suffix,
    ) as s:
        (dest,) = destinations(s.rpc, 1)
        resp = await s.create(dest, 77_000_000, key="ext-1")
        payout_id = resp.payout_id
        assert payout_id is not None

        async def view() -> dict[str, Any]:
            out: dict[str, Any] = (await s.client.get(f"/payouts/{payout_id}/unsigned-xdr", headers=s.admin)).json()
            return out

        got = await eventually(
            view,
            lambda v: isinstance(v.get("transaction"), dict) and v["transaction"]["state"] == "external",
            timeout=30,
        )
        tx = got["transaction"]
        assert isinstance(tx, dict)
        post = f"/payouts/{payout_id}/submit-signed"

        wrong = TransactionEnvelope.from_xdr(tx["unsigned_xdr"], NETWORK)
        wrong.sign(Keypair.random())
        r = await s.client.post(post, json={"signed_xdr": wrong.to_xdr()}, headers=s.admin)
        assert r.status_code == 422
        assert r.json()["code"] == "signature_invalid", r.text

        other = ps.build_payments(
            source_account=s.keys.funding.public_key,
            sequence=int(tx["sequence"]),
            payments=[ps.PaymentInstruction(payout_id, dest, "XLM", 770_000_000)],
            network_passphrase=NETWORK,
            valid_until=int(time.time()) + 600,
        )
        other_env = TransactionEnvelope.from_xdr(other.envelope_xdr, NETWORK)
        other_env.sign(s.keys.funding)
        r = await s.client.post(post, json={"signed_xdr": other_env.to_xdr()}, headers=s.admin)
        assert r.status_code == 422
        assert r.json()["code"] == "tx_hash_mismatch", r.text

        r = await s.client.post(post, json={"signed_xdr": "AAAA"}, headers=s.admin)
        assert r.status_code in (400, 422)

        right = TransactionEnvelope.from_xdr(tx["unsigned_xdr"], NETWORK)
        right.sign(s.keys.funding)
        r = await s.client.post(post, json={"signed_xdr": right.to_xdr()}, headers=s.admin)
        assert r.status_code == 202, r.text
        assert r.json()["tx_hash"] == tx["tx_hash"]
        again = await s.client.post(post, json={"signed_xdr": right.to_xdr()}, headers=s.admin)
        assert again.status_code == 409  # already queued: no second submission path
        assert (await s.wait_final(["ext-1"]))["ext-1"] == "paid"
        assert s.paid_count()[dest] == 1
        assert [p["amount"] for p in s.payments()] == [77_000_000]


async def test_signed_by_an_hsm_through_pkcs11(
    infra: Infra, db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The signer's pkcs11 backend on a real SoftHSM2 token: its Ed25519 key (a signer of the funding account)
    signs the batch; the funding account's own seed is never given to the signer."""
    from prizeflow_signer.softhsm import SoftHsmToken

    token = SoftHsmToken.create(tmp_path / "hsm")
    hsm_key = token.generate_key("payout-key")
    async with stellar_stack(
        infra=infra,
        db=db,
        kafka=kafka_bootstrap,
        tmp=tmp_path,
        monkeypatch=monkeypatch,
        backend="pkcs11",
        ledger_ms=500,
        signer_env=token.env("payout-key"),
        extra_signers=[hsm_key],
        topic_suffix=topic_suffix,
    ) as s:
        dests = destinations(s.rpc, 3)
        keys = [f"hsm-{n}-{uuid.uuid4().hex[:6]}" for n in range(3)]
        for d, k in zip(dests, keys, strict=True):
            assert (await s.create(d, 4_200_000, asset="USDC", key=k)).kind == "payout"
        final = await s.wait_final(keys, timeout=60)
        assert set(final.values()) == {"paid"}
        assert all(s.paid_count()[d] == 1 for d in dests)
        rows = await fetch(db, "SELECT DISTINCT signed_by FROM stellar_txs WHERE state = 'success'")
        assert [r["signed_by"] for r in rows] == [hsm_key]
