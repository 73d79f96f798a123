"""`GET /wallets/{player}/claims`: a player's own payout requests, newest first, with status and payout id; never
another player's (BOLA, as the wallet's other reads)."""

from __future__ import annotations

import pytest

from prizeflow_testkit.rewards import STELLAR_KEY, running_app, settings_for

pytestmark = pytest.mark.integration

DEST = {"type": "stellar_account", "address": STELLAR_KEY}


async def test_a_player_lists_their_own_claims_newest_first(
    database_url: str, kafka_bootstrap: str, topic_suffix: str
) -> None:
    async with running_app(settings_for(database_url, kafka_bootstrap, topic_suffix=topic_suffix)) as app:
        r = await app.client.post(
            "/wallets/carol/top-ups",
            json={"asset": "USDC", "amount": 5_000, "provider": "stripe", "reference": "ref-c"},
            headers=app.admin,
        )
        assert r.status_code == 200, r.text
        made = []
        for amount in (1_000, 2_000, 300):
            r = await app.client.post(
                "/claims/", json={"asset": "USDC", "amount": amount, "destination": DEST}, headers=app.player("carol")
            )
            assert r.status_code == 201, r.text
            made.append(r.json())

        r = await app.client.get("/wallets/carol/claims", headers=app.player("carol"))
        assert r.status_code == 200, r.text
        items = r.json()["items"]
        assert [c["claim_id"] for c in items] == [c["claim_id"] for c in reversed(made)]
        assert [c["amount"] for c in items] == [300, 2_000, 1_000]
        first = items[-1]
        assert {k: first[k] for k in ("player_id", "asset", "status", "payout_id")} == {
            "player_id": "carol",
            "asset": "USDC",
            "status": made[0]["status"],
            "payout_id": None,
        }
        assert (await app.client.get("/wallets/carol/claims?limit=1", headers=app.player("carol"))).json()[
            "items"
        ] == items[:1]
        # Staff see the same claims with why they wait (the rules' numbers) and the policy version; the player
        # sees the next step instead.
        staff = (await app.client.get("/wallets/carol/claims", headers=app.ops)).json()["items"]
        assert [{k: v for k, v in c.items() if k not in ("hold_detail", "policy_version")} for c in staff] == items
        assert all("hold_detail" not in c and c["next_step"] for c in items)

        # Another player's list: refused, nothing of it in the answer; their own is empty.
        refused = await app.client.get("/wallets/carol/claims", headers=app.player("mallory"))
        assert (refused.status_code, refused.json()["code"]) == (403, "forbidden")
        assert "claim_id" not in refused.text
        assert (await app.client.get("/wallets/mallory/claims", headers=app.player("mallory"))).json() == {"items": []}
        assert (await app.client.get("/wallets/carol/claims")).status_code == 401
        assert (await app.client.get("/wallets/carol/claims?limit=101", headers=app.ops)).status_code == 400
