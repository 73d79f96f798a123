"""The reconciliation queue on real PostgreSQL and Kafka, against the sandbox rail's own books: a difference is
found once, owned, and resolved by two people where money moves (through the payout's return, or an adjustment
rewards posts), audited; PostgreSQL refuses what the code would never do."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from prizeflow_contracts.envelope import decode
from prizeflow_runtime.db import asyncpg_dsn
from prizeflow_testkit import eventually, read_topic
from prizeflow_testkit.db import fetch
from prizeflow_testkit.payouts import (
    RECON_SLACK_S,
    providers_file,
    request_payout,
    running,
    settings_for,
    token,
    unique,
    wait_state,
)

pytestmark = pytest.mark.integration

AMOUNT = 10**7  # 1 USDC: approved automatically


async def _events(kafka: str, topic: str, name: str) -> list[Any]:
    return [e for e in (decode(r.value) for r in await read_topic(kafka, topic)) if e.type.split(".")[2] == name]


async def test_a_difference_is_found_once_and_resolved_by_two_people(
    db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path
) -> None:
    settings = settings_for(db, kafka_bootstrap, providers_file(tmp_path), topic_suffix=topic_suffix)
    ops, approver = token(settings, "olga", "ops"), token(settings, "bob", "approver")
    async with running(settings) as (parts, client):
        since = datetime.now(UTC)
        keys = [unique("recon") for _ in range(3)]
        ids = [await request_payout(settings, key, amount=AMOUNT) for key in keys]
        for key in keys:
            assert await wait_state(db, key, "paid") == "paid"
        paid_twice, vanished, clean = keys
        # The sandbox's own books: it paid one payout twice, and has no record of another.
        await fetch(
            db,
            "INSERT INTO sandbox.transfers (idempotency_key, asset, amount) VALUES ($1, 'USDC', $2)",
            paid_twice,
            AMOUNT,
        )
        await fetch(db, "DELETE FROM sandbox.transfers WHERE idempotency_key = $1", vanished)
        until = datetime.now(UTC)
        window = {"provider": "sandbox", "since": since.isoformat(), "until": until.isoformat()}
        # A window is run once it ended the slack ago.
        await eventually(_now, lambda now: now > until + timedelta(seconds=RECON_SLACK_S), timeout=10)

        run = (await client.post("/reconciliation/runs", json=window, headers=ops)).json()
        assert (run["state"], run["lines"], run["matched"], run["exceptions"]) == ("completed", 3, 1, 2)
        assert run["totals"] == [
            {
                "asset": "USDC",
                "ours_paid": 3 * AMOUNT,
                "theirs_paid": 3 * AMOUNT,
                "fees": 0,
                "reversals": 0,
                "debits": 0,
                "credits": 0,
                "provider_movement": 3 * AMOUNT,
                "ledger_movement": None,
            }
        ]
        found = (await client.get("/reconciliation/exceptions", headers=ops)).json()["exceptions"]
        by_kind = {e["kind"]: e for e in found}
        assert sorted(by_kind) == ["duplicate", "missing"]
        assert by_kind["duplicate"]["payout_id"] == ids[0]
        assert by_kind["duplicate"]["severity"] == "critical"
        assert by_kind["missing"]["payout_id"] == ids[1]
        assert by_kind["missing"]["amount"] == AMOUNT
        assert parts.reconciliation.metrics is not None
        assert _gauge(parts, "prizeflow_payouts_recon_unmatched_debits_open", provider="sandbox") == 1

        # The same window again is the same run; a run of another window over the same days finds nothing new.
        again = (await client.post("/reconciliation/runs", json=window, headers=ops)).json()
        assert again["run_id"] == run["run_id"]
        assert len((await client.get("/reconciliation/exceptions", headers=ops)).json()["exceptions"]) == 2

        missing = by_kind["missing"]["id"]
        taken = (await client.post(f"/reconciliation/exceptions/{missing}/take", json={}, headers=ops)).json()
        assert (taken["state"], taken["owner"]) == ("investigating", "olga")

        # A money action: proposed by one person, refused to the proposer, to a second without the role, and to
        # the player it paid; executed by a second person who may.
        body = {"action": "mark_returned", "reason": "the sandbox never paid it"}
        proposed = await client.post(f"/reconciliation/exceptions/{missing}/resolve", json=body, headers=ops)
        assert proposed.status_code == 202
        assert proposed.json()["proposal"]["proposed_by"] == "olga"
        assert await wait_state(db, vanished, "paid") == "paid"  # nothing moved yet
        refusals = {
            "proposer": await client.post(
                f"/reconciliation/exceptions/{missing}/resolve", json=body, headers=token(settings, "olga", "approver")
            ),
            "ops_only": await client.post(
                f"/reconciliation/exceptions/{missing}/resolve", json=body, headers=token(settings, "oscar", "ops")
            ),
            "player": await client.post(
                f"/reconciliation/exceptions/{missing}/resolve",
                json=body,
                headers=token(settings, "player-1", "approver"),
            ),
            "other_action": await client.post(
                f"/reconciliation/exceptions/{missing}/resolve",
                json={"action": "write_off", "reason": "x"},
                headers=approver,
            ),
        }
        assert {k: (r.status_code, r.json()["code"]) for k, r in refusals.items()} == {
            "proposer": (403, "self_approval"),
            "ops_only": (403, "approver_role_required"),
            "player": (403, "self_review"),
            "other_action": (409, "action_not_allowed"),
        }
        done = await client.post(f"/reconciliation/exceptions/{missing}/resolve", json=body, headers=approver)
        assert done.status_code == 200, done.text
        resolved = done.json()
        assert resolved["state"] == "resolved"
        assert resolved["resolution"]["resolved_by"] == ["olga", "bob"]
        assert [h["what"] for h in resolved["history"]] == ["open", "take", "propose mark_returned", "mark_returned"]
        assert await wait_state(db, vanished, "returned") == "returned"

        duplicate = by_kind["duplicate"]["id"]
        write_off = {"action": "write_off", "reason": "paid twice; the sandbox will not give it back"}
        assert (
            await client.post(f"/reconciliation/exceptions/{duplicate}/resolve", json=write_off, headers=ops)
        ).status_code == 202
        assert (
            await client.post(f"/reconciliation/exceptions/{duplicate}/resolve", json=write_off, headers=approver)
        ).status_code == 200
        assert _gauge(parts, "prizeflow_payouts_recon_unmatched_debits_open", provider="sandbox") == 0

        events_topic = "prizeflow.payouts.events.v1" + topic_suffix

        async def adjustments() -> list[Any]:
            return await _events(kafka_bootstrap, events_topic, "ReconciliationAdjusted")

        adjusted = await eventually(adjustments, lambda found: len(found) == 1)
        data = adjusted[0].data
        assert (data.kind.value, data.amount.amount, data.amount.asset, data.payout_id) == (
            "write_off",
            AMOUNT,
            "USDC",
            ids[0],
        )
        assert data.approved_by == ["olga", "bob"]
        returned = await eventually(
            lambda: _events(kafka_bootstrap, events_topic, "PayoutReturned"), lambda found: len(found) == 1
        )
        assert returned[0].data.payout_id == ids[1]
        audit = await eventually(
            lambda: _events(kafka_bootstrap, "prizeflow.audit.v1" + topic_suffix, "AdminActionRecorded"),
            lambda found: len([a for a in found if a.data.target_type == "recon_exception"]) == 5,
        )
        actions = sorted(a.data.action for a in audit if a.data.target_type == "recon_exception")
        assert actions == ["recon.mark_returned", "recon.propose", "recon.propose", "recon.take", "recon.write_off"]

        # A resolved exception is final: confirming again is refused, and so is any write by hand.
        again_done = await client.post(
            f"/reconciliation/exceptions/{duplicate}/resolve", json=write_off, headers=approver
        )
        assert (again_done.status_code, again_done.json()["code"]) == (409, "already_resolved")
        conn = await asyncpg.connect(asyncpg_dsn(db))
        try:
            with pytest.raises(asyncpg.CheckViolationError, match="never moves again"):
                await conn.execute("UPDATE recon_exceptions SET owner = 'mallory' WHERE id = $1", duplicate)
            with pytest.raises(asyncpg.CheckViolationError, match="recon_exceptions_two_people"):
                await conn.execute(
                    "INSERT INTO recon_exceptions (provider, kind, subject, severity, state, run_id, detail,"
                    " correlation_id, opened_at, updated_at, resolution, resolution_reason, resolved_at, resolved_by)"
                    " VALUES ('sandbox', 'unrequested', 'line:forged', 'critical', 'resolved', $1, 'forged', 'c',"
                    " now(), now(), 'write_off', 'alone', now(), ARRAY['mallory'])",
                    run["run_id"],
                )
            with pytest.raises(asyncpg.CheckViolationError, match="append-only"):
                await conn.execute("DELETE FROM recon_exception_history WHERE exception_id = $1", duplicate)
        finally:
            await conn.close()

        exported = await client.get(
            "/v1/admin/exports/reconciliation.csv",
            params={"since": since.isoformat(), "until": datetime.now(UTC).isoformat()},
            headers=ops,
        )
        assert exported.status_code == 200
        assert exported.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(exported.text)))
        assert sorted((r["kind"], r["resolution"], r["resolved_by"]) for r in rows) == [
            ("duplicate", "write_off", "olga bob"),
            ("missing", "mark_returned", "olga bob"),
        ]
        assert sum(int(r["amount"]) for r in rows) == 2 * AMOUNT
        assert clean not in {r["payout_id"] for r in rows}


async def _now() -> datetime:
    return datetime.now(UTC)


def _gauge(parts: Any, name: str, **labels: str) -> float:
    value = parts.runtime.registry.get_sample_value(name, labels)
    return float(value or 0)
