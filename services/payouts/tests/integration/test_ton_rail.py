"""The ton_wallet rail on real PostgreSQL and Kafka, with the signer and the TON API emulator as processes.

What the conformance kit cannot steer: a message accepted but never included is resent until its valid_until,
then provably dead, and the payout is paid by a NEW message with the same seqno (the old one never consumed
it) — once; a jetton transfer our jetton wallet bounces fails `insufficient_provider_funds`, moved nothing,
and is paid once the jetton wallet is funded; one the destination's (frozen) jetton wallet bounces back fails
`destination_blocked`, terminally, and credits nobody. And an operator signs a message out of band (signer
`external`).

The first waits out real `valid_until`s and the signer's live-signature margin (~60 s): it runs in `make test`'s
payouts lane, which has that room beside the main lane (nothing in the suite is skipped).

The highload wallet v3 lane (`wallet_version: highload_v3`), through the same processes: a batch of mixed TON and
USDT payouts with one signature request, its sendBoc answer lost, a transfer the wallet cannot pay and a jetton our
jetton wallet bounces in the same batch (only those fail; funded, they are paid by a later batch), each payout
paid exactly once; and a batch accepted but never included, provably dead past created_at + timeout, rebuilt with a
new query id and paid once (waits out the test wallet's 20 s timeout).
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from nacl.signing import SigningKey

from prizeflow_contracts.providers import DestinationType
from prizeflow_devstack.infra import Infra
from prizeflow_payouts.adapters.ton import TonWalletProvider
from prizeflow_testkit import eventually, fetch
from prizeflow_testkit.payouts import publish, request, request_payout, state_of, token, wait_state
from prizeflow_testkit.ton import HIGHLOAD_TIMEOUT_S, NANO, TonStack, random_address, raw, ton_stack
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
        # A deadline for a loaded machine (the signer, the emulator and the worker share two cores with other lanes).
        done = await messages(db, payout_id, lambda ms: ms[-1]["state"] == "landed", timeout=6 * VALIDITY_S + 30)
        assert done[0]["state"] == "expired"
        assert {m["seqno"] for m in done} == {first[0]["seqno"]}  # the expired message never consumed its seqno
        # Until the signer's own clock says the first can no longer land, it refuses to sign another.
        assert all(m["error_code"] == "live_signature_exists" for m in done[1:-1]), done
        await eventually(lambda: state_of(db, key), lambda st: st == "paid", timeout=30)
        assert s.api.transfers(s.keys.wallet, dest) == {"ton": 1, "jetton": 0}

        # -- our jetton wallet is short: bounced, nothing moved, retried; funded: paid once ----------------------
        owner = {"master": s.keys.jetton_master, "owner": s.keys.wallet, "jetton_wallet": s.keys.jetton_wallet}
        s.api.call("POST", "/jettons", {**owner, "balance": 0})
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
        s.api.call("POST", "/jettons", {**owner, "balance": 10**9})
        await eventually(lambda: state_of(db, key), lambda st: st == "paid", timeout=60)
        assert s.api.transfers(s.keys.wallet, dest) == {"ton": 0, "jetton": 1}
        assert s.api.jetton_balance(s.keys.jetton_master, dest) == 7_000_000
        landed = [m for m in await fetch(db, MESSAGES, payout_id) if m["state"] == "landed"]
        assert len(landed) >= 2  # the bounced message(s) consumed their seqnos too


async def test_a_jetton_a_frozen_destination_jetton_wallet_bounces_fails_terminally_and_credits_nobody(
    infra: Infra, db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Our jetton wallet sends the internal_transfer on, the destination's (frozen) jetton wallet bounces it back:
    the payout fails `destination_blocked` (terminal: one message, never sent again), the player is credited
    nothing, our jetton balance is unchanged. A jetton payout to a wallet that takes it is still paid."""
    async with ton_stack(
        infra=infra,
        db=db,
        kafka=kafka_bootstrap,
        topic_suffix=topic_suffix,
        tmp=tmp_path,
        monkeypatch=monkeypatch,
        settings_overrides={"payouts_max_attempts": 20, "payouts_reconcile_interval_ms": 1000},
    ) as s:
        master = s.keys.jetton_master
        start = s.api.jetton_balance(master, s.keys.wallet)
        frozen = random_address(bounceable=True)
        s.api.faults(frozen_jetton_owners=[frozen])
        key = f"ton-frz-{uuid.uuid4().hex[:8]}"
        payout_id = await request_payout(
            s.settings, key, amount=7_000_000, address=frozen, dtype="ton_wallet", asset="USDT"
        )

        async def payout_row() -> dict[str, Any]:
            rows = await fetch(db, "SELECT state, last_error_code FROM payouts WHERE idempotency_key = $1", key)
            return dict(rows[0])

        row = await eventually(payout_row, lambda r: r["state"] in ("failed", "paid"), timeout=60)
        assert row == {"state": "failed", "last_error_code": "destination_blocked"}, row
        (landed,) = await fetch(db, MESSAGES, payout_id)  # one message: a terminal failure is never sent again
        assert (landed["state"], landed["error_code"]) == ("landed", "destination_blocked")
        assert s.api.counter("jetton_bounced_by_destination") == 1
        assert s.api.jetton_balance(master, frozen) == 0
        assert s.api.transfers(s.keys.wallet, frozen) == {"ton": 0, "jetton": 0}
        assert s.api.jetton_balance(master, s.keys.wallet) == start  # the jettons came back

        dest = random_address(bounceable=True)
        key = f"ton-jok-{uuid.uuid4().hex[:8]}"
        await request_payout(s.settings, key, amount=5_000_000, address=dest, dtype="ton_wallet", asset="USDT")
        await eventually(lambda: state_of(db, key), lambda st: st == "paid", timeout=60)
        assert s.api.jetton_balance(master, dest) == 5_000_000
        assert s.api.transfers(s.keys.wallet, dest) == {"ton": 0, "jetton": 1}
        assert s.api.jetton_balance(master, s.keys.wallet) == start - 5_000_000


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


BATCHES = """SELECT b.request_id, b.state, b.query_id, b.payouts, b.sends, b.error_code
             FROM ton_batches b ORDER BY b.created_at"""
ITEMS = "SELECT payout_id, state, error_code, request_id FROM ton_batch_items WHERE payout_id = $1 ORDER BY updated_at"


async def request_many(s: TonStack, wanted: list[tuple[str, int, str]]) -> list[str]:
    """PayoutRequested for each (asset, amount, address) published at once (so that they queue together); their
    idempotency keys once payouts stored them."""
    keys = [f"tonhl-{uuid.uuid4().hex[:8]}" for _ in wanted]
    envelopes = [
        request(key, address=address, amount=amount, asset=asset, dtype=DestinationType.TON_WALLET)
        for key, (asset, amount, address) in zip(keys, wanted, strict=True)
    ]
    await publish(s.settings.kafka_bootstrap_servers, "prizeflow.payouts.requests.v1" + s.settings.kafka_topic_suffix,
                  envelopes)  # fmt: skip
    for key in keys:
        await wait_state(s.settings.database_url, key, "submitting", "submitted", "paid", "failed")
    return keys


async def test_a_highload_batch_pays_mixed_ton_and_usdt_once_through_a_lost_answer_and_a_partial_failure(
    infra: Infra, db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with ton_stack(
        infra=infra,
        db=db,
        kafka=kafka_bootstrap,
        topic_suffix=topic_suffix,
        tmp=tmp_path,
        monkeypatch=monkeypatch,
        # The test's six payouts make a full batch, built at once; a partial one (the retries) waits 5 s.
        options={"wallet_version": "highload_v3", "batch_size": 6, "batch_linger_s": 5.0},
        settings_overrides={"payouts_max_attempts": 20, "payouts_reconcile_interval_ms": 1000},
    ) as s:
        # The wallet holds 10 TON (and USDT for one transfer of two); re-created before anything was sent.
        s.api.call("POST", "/wallets", {"address": s.wallet, "public_key": s.keys.public_key_hex,
                                                 "balance": 10 * NANO, "type": "highload_v3",
                                                 "timeout": HIGHLOAD_TIMEOUT_S})  # fmt: skip
        owner = {"master": s.keys.jetton_master, "owner": s.wallet, "jetton_wallet": s.jetton_wallet}
        s.api.call("POST", "/jettons", {**owner, "balance": 10_000_000})
        s.api.faults(lost_response_rate=1.0)  # the first sendBoc is accepted, its answer lost
        dests = [random_address(bounceable=i % 2 == 1) for i in range(6)]
        wanted = [("TON", NANO, dests[0]), ("USDT", 6_000_000, dests[1]), ("TON", 2 * NANO, dests[2]),
                  ("TON", 50 * NANO, dests[3]),  # more than the wallet holds: skipped by the wallet, alone
                  ("USDT", 6_000_000, dests[4]),  # our jetton wallet holds 10 USDT: one of the two bounces
                  ("TON", NANO, dests[5])]  # fmt: skip
        keys = await request_many(s, wanted)

        async def lost() -> int:
            return s.api.counter("lost_responses")

        await eventually(lost, lambda n: n >= 1, timeout=60, interval=0.05)
        s.api.faults(lost_response_rate=0.0)

        async def settled() -> list[str | None]:
            return [await state_of(db, k) for k in keys]

        async def payout_rows() -> list[dict[str, Any]]:
            rows = await fetch(
                db,
                "SELECT idempotency_key, state, last_error_code, attempts FROM payouts WHERE idempotency_key = ANY($1)",
                keys,
            )
            return [dict(r) for r in rows]

        def done(rows: list[dict[str, Any]]) -> bool:
            by_key = {r["idempotency_key"]: r for r in rows}
            paid = [by_key[keys[i]]["state"] == "paid" for i in (0, 2, 5)]
            failed_once = [by_key[keys[i]]["last_error_code"] == "insufficient_provider_funds" for i in (3,)]
            return all(paid) and all(failed_once) and sum(by_key[keys[i]]["state"] == "paid" for i in (1, 4)) == 1

        await eventually(payout_rows, done, timeout=90)
        assert s.api.transfers(s.wallet, dests[3]) == {"ton": 0, "jetton": 0}
        usdt_paid = [i for i in (1, 4) if await state_of(db, keys[i]) == "paid"]
        (bounced,) = [i for i in (1, 4) if i not in usdt_paid]
        assert s.api.jetton_balance(s.keys.jetton_master, dests[bounced]) == 0
        # One signature request paid them all; its first sendBoc answer was lost (the message may have landed before
        # the next pass resent it: either way, once).
        first = (await fetch(db, BATCHES))[0]
        assert first["payouts"] == 6
        assert first["sends"] >= 1
        assert first["state"] == "landed"
        # Funded: the failed ones are retried by the worker and paid by a later batch, once.
        s.api.call("POST", "/wallets", {"address": s.wallet, "public_key": s.keys.public_key_hex,
                                                 "balance": 1_000 * NANO, "type": "highload_v3",
                                                 "timeout": HIGHLOAD_TIMEOUT_S})  # fmt: skip
        s.api.call("POST", "/jettons", {**owner, "balance": 10**9})
        await eventually(settled, lambda st: st == ["paid"] * 6, timeout=90)
        for i, (asset, amount, dest) in enumerate(wanted):
            assert s.api.transfers(s.wallet, dest) == ({"ton": 1, "jetton": 0} if asset == "TON" else
                                                       {"ton": 0, "jetton": 1}), i  # fmt: skip
            if asset == "USDT":
                assert s.api.jetton_balance(s.keys.jetton_master, dest) == amount


async def test_a_highload_batch_never_included_is_rebuilt_after_it_expires_and_pays_once(
    infra: Infra, db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with ton_stack(
        infra=infra,
        db=db,
        kafka=kafka_bootstrap,
        topic_suffix=topic_suffix,
        tmp=tmp_path,
        monkeypatch=monkeypatch,
        options={"wallet_version": "highload_v3", "batch_size": 8, "batch_linger_s": 1.0},
        settings_overrides={"payouts_max_attempts": 20, "payouts_reconcile_interval_ms": 1000},
    ) as s:
        s.api.faults(not_included_rate=1.0)
        dests = [random_address(), random_address(bounceable=True)]
        keys = await request_many(s, [("TON", 3 * NANO, dests[0]), ("USDT", 4_000_000, dests[1])])

        async def batches() -> list[dict[str, Any]]:
            return [dict(r) for r in await fetch(db, BATCHES)]

        await eventually(batches, lambda bs: bool(bs) and bs[0]["sends"] >= 2, timeout=60, interval=0.05)
        s.api.faults(not_included_rate=0.0)  # the first message stays dropped: it can never land
        done = await eventually(
            batches, lambda bs: any(b["state"] == "landed" for b in bs), timeout=3 * HIGHLOAD_TIMEOUT_S + 30
        )
        assert done[0]["state"] == "expired"
        landed = [b for b in done if b["state"] == "landed"]
        assert len(landed) == 1
        assert landed[0]["query_id"] != done[0]["query_id"]
        # Until the signer's own clock says the first can no longer land, it refuses to sign another for them.
        assert all(b["error_code"] == "live_signature_exists" for b in done[1:-1]), done
        for key in keys:
            await wait_state(db, key, "paid")
        assert s.api.transfers(s.wallet, dests[0]) == {"ton": 1, "jetton": 0}
        assert s.api.transfers(s.wallet, dests[1]) == {"ton": 0, "jetton": 1}
        assert s.api.jetton_balance(s.keys.jetton_master, dests[1]) == 4_000_000


async def test_a_ton_payout_to_an_uninitialised_wallet_is_sent_non_bounceable_and_stays_paid(
    infra: Infra, db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A native TON transfer to a wallet never deployed, given in its bounceable form: sent bounceable, it would be
    aborted and come back after the transaction that reads as paid. The rail never sends one bounceable (and the
    database refuses a bounceable row: migration 0016), so it is credited there and `paid` is the truth for good."""
    async with ton_stack(
        infra=infra, db=db, kafka=kafka_bootstrap, topic_suffix=topic_suffix, tmp=tmp_path, monkeypatch=monkeypatch
    ) as s:
        dest = random_address(bounceable=True)  # uninitialised: no contract, no balance
        key = f"ton-uninit-{uuid.uuid4().hex[:8]}"
        payout_id = await request_payout(
            s.settings, key, amount=NANO // 2, address=dest, dtype="ton_wallet", asset="TON"
        )
        await eventually(lambda: state_of(db, key), lambda st: st == "paid", timeout=60)
        [row] = await fetch(db, "SELECT state, bounce FROM ton_payouts WHERE payout_id = $1", payout_id)
        assert (row["state"], row["bounce"]) == ("paid", False)
        assert s.api.counter("native_bounced") == 0
        assert s.api.ton_balance(dest) == NANO // 2
