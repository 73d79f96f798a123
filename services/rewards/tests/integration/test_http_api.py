"""HTTP API on real PostgreSQL: refusals with stable codes write nothing; BOLA; holds reviewed by ops."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

from prizeflow_runtime.db import create_engine
from prizeflow_testkit.rewards import STELLAR_KEY, Running, running_app, settings_for, token

pytestmark = pytest.mark.integration

DEST = {"type": "stellar_account", "address": STELLAR_KEY}


async def counts(database_url: str) -> dict[str, int]:
    engine = create_engine(database_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            counted = {
                t: int((await conn.execute(text(f"SELECT count(*) FROM {t}"))).scalar_one())
                for t in ("claims", "ledger_transfers", "payout_destinations")
            }
            # Events ever staged: the relay deletes outbox rows once published, so count what the sequence
            # handed out (a staged-then-rolled-back event counts too: a refusal should stage nothing at all).
            staged = await conn.execute(text("SELECT pg_sequence_last_value(pg_get_serial_sequence('outbox', 'seq'))"))
            return {**counted, "events_staged": int(staged.scalar_one() or 0)}
    finally:
        await engine.dispose()


async def top_up(app: Running, player: str, asset: str, amount: int, ref: str = "ref-1") -> None:
    r = await app.client.post(
        f"/wallets/{player}/top-ups",
        json={"asset": asset, "amount": amount, "provider": "stripe", "reference": ref},
        headers=app.admin,
    )
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"asset": "DOGE", "amount": 1_000}, "unknown_asset"),
        ({"asset": "SP", "amount": 1_000}, "asset_not_redeemable"),
        ({"asset": "USDC", "amount": 50}, "below_minimum"),
        ({"asset": "USDC", "amount": 6_000}, "insufficient_balance"),
        ({"asset": "USDC", "amount": 4_000}, "daily_limit_exceeded"),
    ],
)
async def test_refused_claims_have_stable_codes_and_write_nothing(
    database_url: str, kafka_bootstrap: str, topic_suffix: str, body: dict[str, Any], code: str
) -> None:
    settings = settings_for(
        database_url, kafka_bootstrap, rewards_daily_claim_limit={"USDC": 3_000}, topic_suffix=topic_suffix
    )
    async with running_app(settings) as app:
        await top_up(app, "p-1", "USDC", 5_000)
        await top_up(app, "p-1", "SP", 5_000, "sp-1")
        before = await counts(database_url)
        r = await app.client.post("/claims/", json={**body, "destination": DEST}, headers=app.player("p-1"))
        assert r.status_code == 422, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["code"] == code
        assert await counts(database_url) == before
        assert (await app.balances("p-1"))["USDC"]["available"] == 5_000


async def test_player_reads_only_own_wallet(database_url: str, kafka_bootstrap: str, topic_suffix: str) -> None:
    async with running_app(settings_for(database_url, kafka_bootstrap, topic_suffix=topic_suffix)) as app:
        await top_up(app, "alice", "USDC", 1_000)
        assert (await app.client.get("/wallets/alice", headers=app.player("alice"))).status_code == 200
        for path in ("/wallets/alice", "/wallets/alice/transactions"):
            r = await app.client.get(path, headers=app.player("mallory"))
            assert (r.status_code, r.json()["code"]) == (403, "forbidden")
        assert (await app.client.get("/wallets/alice")).status_code == 401
        assert (await app.client.get("/wallets/alice", headers=app.ops)).status_code == 200
        r = await app.client.post(
            "/claims/", json={"asset": "USDC", "amount": 500, "destination": DEST}, headers=app.player("alice")
        )
        claim_id = r.json()["claim_id"]
        assert (await app.client.get(f"/claims/{claim_id}", headers=app.player("mallory"))).status_code == 403
        # An approver reads the claim behind a payout they decide (its hold and risk signals), whoever it pays.
        approver = token(app.settings, "approver-1", "approver")
        assert (await app.client.get(f"/claims/{claim_id}", headers=approver)).json()["player_id"] == "alice"
        # Players cannot fund, top up or review.
        assert (
            await app.client.post(
                "/wallets/mallory/top-ups",
                json={"asset": "USDC", "amount": 1, "provider": "x", "reference": "r"},
                headers=app.player("mallory"),
            )
        ).status_code == 403
        assert (await app.client.get("/holds/", headers=app.player("mallory"))).status_code == 403


async def test_held_claims_are_reviewed_by_ops(database_url: str, kafka_bootstrap: str, topic_suffix: str) -> None:
    settings = settings_for(
        database_url, kafka_bootstrap, rewards_new_destination_cooldown_s=3600, topic_suffix=topic_suffix
    )
    async with running_app(settings) as app:
        await top_up(app, "p-2", "USDC", 10_000)
        r1 = await app.client.post(
            "/claims/", json={"asset": "USDC", "amount": 1_000, "destination": DEST}, headers=app.player("p-2")
        )
        assert (r1.json()["status"], r1.json()["hold_code"]) == ("held", "new_destination")
        r = await app.client.put("/players/p-2/risk-flag", json={"flagged": True, "reason": "bot"}, headers=app.ops)
        assert r.status_code == 200
        r2 = await app.client.post(
            "/claims/", json={"asset": "USDC", "amount": 2_000, "destination": DEST}, headers=app.player("p-2")
        )
        assert (r2.json()["status"], r2.json()["hold_code"]) == ("held", "risk_score")
        # Held claims stay reserved.
        assert (await app.balances("p-2"))["USDC"]["available"] == 7_000
        holds = (await app.client.get("/holds/", headers=app.ops)).json()
        assert [h["claim_id"] for h in holds] == [r1.json()["claim_id"], r2.json()["claim_id"]]
        r = await app.client.post(f"/holds/{r1.json()['claim_id']}/release", json={"reason": "known"}, headers=app.ops)
        assert r.json()["status"] == "approved"
        r = await app.client.post(
            f"/holds/{r2.json()['claim_id']}/reject", json={"reason": "bot farm"}, headers=app.ops
        )
        assert r.json()["status"] == "rejected"
        r = await app.client.post(f"/holds/{r2.json()['claim_id']}/reject", json={"reason": "again"}, headers=app.ops)
        assert (r.status_code, r.json()["code"]) == (409, "illegal_transition")
        bal = (await app.balances("p-2"))["USDC"]
        assert (bal["balance"], bal["reserved"], bal["available"]) == (10_000, 1_000, 9_000)
        metrics = (await app.client.get("/metrics")).text
        assert 'prizeflow_rewards_abuse_holds_total{reason="risk_score"} 1.0' in metrics
        assert 'prizeflow_rewards_ledger_transfers_total{kind="payout_void"} 1.0' in metrics
