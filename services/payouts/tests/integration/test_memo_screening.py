"""A memo that names a listed wallet, end to end: the sanctions emulator (a process) publishes the lists, the payouts
API process loads them over HTTP as bootstrap wires it (the real screen, the compliance facts from PostgreSQL),
requests arrive as PayoutRequested on Kafka, the worker gates again at send. A `crypto_address` payout to an
unlisted address whose memo is a listed address (a swap router's `=:ETH.ETH:<address>`, a TON wallet in another
form, or one listed between the request and the send) is held for two people, never sent."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from litestar.testing import AsyncTestClient

from prizeflow_contracts.providers import DestinationType
from prizeflow_payouts.bootstrap import Payouts, compose
from prizeflow_payouts.settings import PayoutsSettings
from prizeflow_sanctions_emulator.server import KNOWN, PATHS
from prizeflow_testkit import eventually
from prizeflow_testkit.payouts import (
    WEBHOOK_SECRET_ENV,
    books,
    fetch,
    publish,
    request,
    running,
    settings_for,
    state_of,
    token,
    wait_state,
)
from prizeflow_testkit.sanctions import SanctionsAdmin, sanctions_emulator
from prizeflow_ton.addresses import parse_address

pytestmark = pytest.mark.integration

REQUESTS = "prizeflow.payouts.requests.v1"
LISTED_ETH = "0x" + "7a" * 20  # published by the test into OFAC's SDN list
LATER_ETH = "0x" + "7b" * 20  # published between a request and its send
UNLISTED = "0x" + "11" * 20  # where every payout here is addressed
LISTED_TON_ENTRY = "40091"  # the SDN fixture's entry of KNOWN["ton_wallet"]


def providers(tmp_path: Path) -> Path:
    """The sandbox rail taking `crypto_address` destinations with their memo (as the exchange rail does)."""
    doc = {
        "approvals": {"USDC": {"auto_below": "100", "dual_from": "1000"}},
        "providers": [
            {
                "name": "sandbox",
                "type": "sandbox",
                "assets": ["USDC"],
                "destination_types": ["sandbox", "crypto_address"],
                "secrets": {"webhook_secret": WEBHOOK_SECRET_ENV},
                "options": {"default_scenario": "success", "scenarios": {}},
            }
        ],
    }
    path = tmp_path / f"providers-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@dataclass
class Stack:
    settings: PayoutsSettings
    client: AsyncTestClient[Any]
    local: Payouts  # this test's own worker (its gate loads the newest stored lists before each pass)
    publisher: SanctionsAdmin

    async def ask(self, *, memo: str, player: str) -> str:
        env = request(address=UNLISTED, dtype=DestinationType.CRYPTO_ADDRESS, memo=memo, player_id=player,
                      requested_by=player)  # fmt: skip
        await publish(self.settings.kafka_bootstrap_servers, REQUESTS + self.settings.kafka_topic_suffix, [env])
        return env.data.idempotency_key

    async def row(self, key: str) -> dict[str, Any]:
        rows = await fetch(
            self.settings.database_url,
            "SELECT id, state, hold_code, hold_detail, approval_policy FROM payouts WHERE idempotency_key = $1",
            key,
        )
        return dict(rows[0])


@asynccontextmanager
async def stack(db: str, kafka: str, topic_suffix: str, tmp_path: Path) -> AsyncIterator[Stack]:
    with sanctions_emulator(tmp_path / "sanctions.log") as emulator:
        async with emulator.admin() as publisher:
            await publisher.publish(
                "ofac_sdn", {"name": "Fictional Swap Mixer", "kind": "entity",
                             "addresses": [{"currency": "ETH", "address": LISTED_ETH}]}
            )  # fmt: skip
            settings = settings_for(
                db,
                kafka,
                providers(tmp_path),
                topic_suffix=topic_suffix,
                payouts_sanctions_sources=emulator.sources(PATHS),
                payouts_worker_enabled=False,
            )
            async with running(settings) as (_parts, client):
                ops = token(settings, "olga", "ops")

                async def loaded() -> list[Any]:
                    return list((await client.get("/v1/admin/compliance/screening/lists", headers=ops)).json())

                await eventually(loaded, lambda rows: all(r["version"] for r in rows), timeout=60)
                local = compose(settings)
                await local.start_providers()
                try:
                    yield Stack(settings, client, local, publisher)
                finally:
                    await local.close_providers()
                    await local.runtime.engine.dispose()


async def test_a_memo_naming_a_listed_wallet_is_held_for_two_people_and_never_sent(
    db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path
) -> None:
    ton = parse_address(KNOWN["ton_wallet"])
    async with stack(db, kafka_bootstrap, topic_suffix, tmp_path) as s:
        memos = {
            f"=:ETH.ETH:{LISTED_ETH.upper().replace('0X', '0x')}:0/1/0": "ofac_sdn:",  # a swap router's recipient
            LISTED_ETH: "ofac_sdn:",
            ton.friendly(bounceable=False): f"ofac_sdn:{LISTED_TON_ENTRY}",  # the fixture lists it bounceable
        }
        keys = {memo: await s.ask(memo=memo, player=f"player-memo-{n}") for n, memo in enumerate(memos)}
        clean = await s.ask(memo="104729", player="player-memo-clean")  # an exchange tag: no address in it
        for memo, key in keys.items():
            assert await wait_state(db, key, "pending_approval") == "pending_approval", memo
            row = await s.row(key)
            assert (row["hold_code"], row["approval_policy"]) == ("screening_hit", "dual"), memo
            assert memos[memo] in row["hold_detail"]
            assert "(memo, score 1000)" in row["hold_detail"]
        assert await wait_state(db, clean, "approved") == "approved"
        await s.local.worker.run_once()
        await s.local.worker.run_once()
        for key in keys.values():
            assert await state_of(db, key) == "pending_approval"
            assert await books(db, key) == {"transfers": 0, "create_calls": 0, "sync_calls": 0}
        assert await wait_state(db, clean, "paid") == "paid"

        # One approver is not enough for a screening hit.
        pid = (await s.row(keys[LISTED_ETH]))["id"]
        one = await s.client.post(f"/payouts/{pid}/approve", json={}, headers=token(s.settings, "bob", "approver"))
        assert one.json()["state"] == "pending_approval"
        await s.local.worker.run_once()
        assert await books(db, keys[LISTED_ETH]) == {"transfers": 0, "create_calls": 0, "sync_calls": 0}


async def test_a_memo_listed_between_the_request_and_the_send_is_held_at_send(
    db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path
) -> None:
    async with stack(db, kafka_bootstrap, topic_suffix, tmp_path) as s:
        key = await s.ask(memo=f"=:ETH.USDC:{LATER_ETH}", player="player-memo-late")
        assert await wait_state(db, key, "approved") == "approved"
        await s.publisher.publish(
            "ofac_sdn", {"name": "Fictional Late Mixer", "kind": "entity",
                         "addresses": [{"currency": "ETH", "address": LATER_ETH}]}
        )  # fmt: skip
        refreshed = await s.client.post(
            "/v1/admin/compliance/screening/refresh", headers=token(s.settings, "adam", "admin")
        )
        assert refreshed.status_code == 200, refreshed.text
        await s.local.worker.run_once()  # its gate loads the version the API process stored, then holds
        row = await s.row(key)
        assert (row["state"], row["hold_code"], row["approval_policy"]) == ("pending_approval", "screening_hit", "dual")
        assert "(memo, score 1000)" in row["hold_detail"]
        assert await books(db, key) == {"transfers": 0, "create_calls": 0, "sync_calls": 0}
        decisions = await fetch(
            db, "SELECT stage, action, hold_code FROM compliance_decisions WHERE payout_id = $1 ORDER BY id", row["id"]
        )
        assert [tuple(d) for d in decisions] == [("request", "allow", None), ("send", "hold", "screening_hit")]
