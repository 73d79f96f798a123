"""The ton_wallet rail on real PostgreSQL and Kafka, with the signer and the TON API emulator as processes.

What the conformance kit cannot steer: a message accepted but never included is resent until its valid_until,
then provably dead, and the payout is paid by a NEW message with the same seqno (the old one never consumed
it) — once; a jetton transfer our jetton wallet bounces fails `insufficient_provider_funds`, moved nothing,
and is paid once the jetton wallet is funded. And an operator signs a message out of band (signer `external`).

The first waits out real `valid_until`s and the signer's live-signature margin (~60 s): it runs in `make test`'s
payouts lane, which has that room beside the main lane (nothing in the suite is skipped).
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from nacl.signing import SigningKey

from prizeflow_devstack.infra import Infra
from prizeflow_payouts.adapters.ton import TonWalletProvider
from prizeflow_testkit import eventually, fetch
from prizeflow_testkit.payouts import request_payout, state_of, token
from prizeflow_testkit.ton import NANO, random_address, raw, ton_stack
from prizeflow_ton.messages import external_message, from_b64, parse_unsigned, signing_hash, to_b64

pytestmark = pytest.mark.integration

MESSAGES = "SELECT seqno, state, sends, error_code FROM ton_messages WHERE payout_id = $1 ORDER BY created_at"
VALIDITY_S = 10


async def messages(db: str, payout_id: str, until: Any, timeout: float = 30) -> list[dict[str, Any]]:
    async def probe() -> list[dict[str, Any]]:
        return [dict(r) for r in await fetch(db, MESSAGES, payout_id)]

    return await eventually(probe, until, timeout=timeout, interval=0.05)


async def test_expiry_rebuilds_with_the_same_seqno_and_a_bounced_jetton_moves_nothing(
    infra: Infra, db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with ton_stack(
        infra=infra,
        db=db,
        kafka=kafka_bootstrap,
        topic_suffix=topic_suffix,
        tmp=tmp_path,
        monkeypatch=monkeypatch,
        options={"validity_s": VALIDITY_S},
        # Past the fast polls a submitted payout is asked at the reconciler's pace: 1 s here, not 60.
        settings_overrides={"payouts_max_attempts": 20, "payouts_reconcile_interval_ms": 1000},
    ) as s:
        assert isinstance(s.parts.config.registry.get("ton").provider, TonWalletProvider)

        # -- accepted, never included: resent until valid_until, then a new message with the same seqno ----------
        s.api.faults(not_included_rate=1.0)
        dest = random_address()
        key = f"ton-exp-{uuid.uuid4().hex[:8]}"
        payout_id = await request_payout(
            s.settings, key, amount=2 * NANO, address=dest, dtype="ton_wallet", asset="TON"
        )
        first = await messages(db, payout_id, lambda ms: bool(ms) and ms[0]["sends"] >= 2)
        s.api.faults(not_included_rate=0.0)  # the first message stays dropped: it can never land
        done = await messages(db, payout_id, lambda ms: ms[-1]["state"] == "landed", timeout=3 * VALIDITY_S + 10)
        assert done[0]["state"] == "expired"
        assert {m["seqno"] for m in done} == {first[0]["seqno"]}  # the expired message never consumed its seqno
        # Until the signer's own clock says the first can no longer land, it refuses to sign another.
        assert all(m["error_code"] == "live_signature_exists" for m in done[1:-1]), done
        await eventually(lambda: state_of(db, key), lambda st: st == "paid", timeout=30)
        assert s.api.transfers(s.keys.wallet, dest) == {"ton": 1, "jetton": 0}

        # -- our jetton wallet is short: bounced, nothing moved, retried; funded: paid once ----------------------
        owner = {"master": s.keys.jetton_master, "owner": s.keys.wallet, "jetton_wallet": s.keys.jetton_wallet}
        s.api.call("POST", "/emulator/jettons", {**owner, "balance": 0})
        dest = random_address(bounceable=True)
        key = f"ton-jet-{uuid.uuid4().hex[:8]}"
        payout_id = await request_payout(
            s.settings, key, amount=7_000_000, address=dest, dtype="ton_wallet", asset="USDT"
        )

        async def payout_row() -> dict[str, Any]:
            rows = await fetch(
                db, "SELECT state, attempts, last_error_code FROM payouts WHERE idempotency_key = $1", key
            )
            return dict(rows[0])

        await eventually(
            payout_row,
            lambda r: r["last_error_code"] == "insufficient_provider_funds" and r["attempts"] >= 2,
            timeout=60,
        )
        assert s.api.jetton_balance(s.keys.jetton_master, dest) == 0
        s.api.call("POST", "/emulator/jettons", {**owner, "balance": 10**9})
        await eventually(lambda: state_of(db, key), lambda st: st == "paid", timeout=60)
        assert s.api.transfers(s.keys.wallet, dest) == {"ton": 0, "jetton": 1}
        assert s.api.jetton_balance(s.keys.jetton_master, dest) == 7_000_000
        landed = [m for m in await fetch(db, MESSAGES, payout_id) if m["state"] == "landed"]
        assert len(landed) >= 2  # the bounced message(s) consumed their seqnos too


async def test_an_operator_signs_a_ton_message_out_of_band(
    infra: Infra, db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Signer backend `external`: the message waits; the admin API shows what to sign and takes back only the
    message built, signed by the wallet's key; then it is sent and paid once."""
    async with ton_stack(
        infra=infra,
        db=db,
        kafka=kafka_bootstrap,
        topic_suffix=topic_suffix,
        tmp=tmp_path,
        monkeypatch=monkeypatch,
        backend="external",
    ) as s:
        dest = random_address()
        key = f"ton-ext-{uuid.uuid4().hex[:8]}"
        payout_id = await request_payout(s.settings, key, amount=NANO, address=dest, dtype="ton_wallet", asset="TON")
        await messages(db, payout_id, lambda ms: bool(ms) and ms[-1]["state"] == "external")
        admin = token(s.settings, "olga", "admin", "ops")
        shown = (await s.client.get(f"/payouts/{payout_id}/unsigned-xdr", headers=admin)).json()
        built = parse_unsigned(from_b64(shown["unsigned_body_boc"]), wallet=shown["wallet"])
        assert shown["signing_hash"] == signing_hash(built).hex()
        assert shown["intent"]["destination"] == raw(dest)

        forged = external_message(built, SigningKey.generate().sign(signing_hash(built)).signature)
        other = external_message(replace(built, seqno=built.seqno + 1), s.keys.key.sign(signing_hash(built)))
        for bad, code in ((forged, "bad_signature"), (other, "not_the_message_built")):
            resp = await s.client.post(
                f"/payouts/{payout_id}/submit-signed", json={"signed_xdr": to_b64(bad)}, headers=admin
            )
            assert resp.status_code in (400, 409, 422), resp.text
            assert resp.json()["code"] == code, resp.text

        good = external_message(built, s.keys.key.sign(signing_hash(built)))
        resp = await s.client.post(
            f"/payouts/{payout_id}/submit-signed", json={"signed_xdr": to_b64(good)}, headers=admin
        )
        assert resp.status_code == 202, resp.text
        await eventually(lambda: state_of(db, key), lambda st: st == "paid", timeout=30)
        assert s.api.transfers(s.keys.wallet, dest) == {"ton": 1, "jetton": 0}
