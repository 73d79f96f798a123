"""The admin API of a running settlement process: auth, bad input, and audited resolve/void."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from prizeflow_contracts.envelope import HEADER_TYPE, decode, new_event
from prizeflow_contracts.events.audit import AdminActionRecorded
from prizeflow_contracts.events.game import RoundResultsReported
from prizeflow_contracts.events.settlement import RoundSettled, RoundVoided
from prizeflow_contracts.topics import AUDIT, GAME_ROUNDS, SETTLEMENT_ROUNDS
from prizeflow_testkit import eventually, header, read_topic

from .conftest import prepare_topics, publish, round_events, token

pytestmark = pytest.mark.integration

ADMIN = {"Authorization": f"Bearer {token('admin-7', 'admin')}"}
OPS = {"Authorization": f"Bearer {token('ops-1', 'ops')}"}
PLAYER = {"Authorization": f"Bearer {token('p0', 'player')}"}


async def emitted(engine: AsyncEngine, bootstrap: str, suffix: str, event_type: str) -> list[Any]:
    """Events of `event_type` the service emitted: still in its outbox or already published to Kafka (the
    relay deletes what it published), one per event id, in the order they were emitted."""
    wanted = f"prizeflow.{event_type}.v1"
    seen: dict[Any, Any] = {}
    topic = {"audit.AdminActionRecorded": AUDIT}.get(event_type, SETTLEMENT_ROUNDS).name + suffix
    for record in await read_topic(bootstrap, topic):
        if header(record, HEADER_TYPE) == wanted:
            env = decode(record.value)
            seen[env.id] = env
    async with engine.connect() as conn:
        rows = await conn.execute(text("SELECT payload FROM outbox WHERE event_type = :t ORDER BY seq"), {"t": wanted})
        for row in rows:
            env = decode(bytes(row[0]))
            seen.setdefault(env.id, env)
    return sorted(seen.values(), key=lambda e: e.time)


async def round_state(engine: AsyncEngine, round_id: str) -> str | None:
    async with engine.connect() as conn:
        value = await conn.scalar(text("SELECT state FROM rounds WHERE round_id = :r"), {"r": round_id})
        return str(value) if value is not None else None


async def test_admin_endpoints_refuse_bad_callers_and_bad_input_and_audit_what_they_do(
    engine: AsyncEngine, kafka_bootstrap: str, suffix: str, service_factory: Any
) -> None:
    await prepare_topics(kafka_bootstrap, suffix)
    # round-held: one entry never arrives (entry_count 3, 2 seen; the results place the two who entered) →
    # held RESOLVED; round-open: still open.
    held = round_events("round-held", players=3)
    held = [e for e in held if getattr(e.data, "entry_id", None) != "round-held-e2"]
    results = held[-1].data
    assert isinstance(results, RoundResultsReported)
    held[-1] = new_event(
        results.model_copy(update={"placements": results.placements[:2]}),
        source="/game/it",
        correlation_id="round-held",
        subject="round-held",
    )
    opened = round_events("round-open", players=2)[:3]
    await publish(kafka_bootstrap, GAME_ROUNDS.name + suffix, [*held, *opened])
    svc = service_factory()
    svc.start()
    await eventually(lambda: round_state(engine, "round-held"), lambda s: s == "resolved", timeout=60)
    await eventually(lambda: round_state(engine, "round-open"), lambda s: s == "open", timeout=60)

    body = {
        "placements": [{"player_id": "p0", "rank": 1, "score": 10}, {"player_id": "p1", "rank": 2, "score": 5}],
        "reason": "entry e2 was refunded by the game; settle with the two real entrants",
    }
    async with httpx.AsyncClient(base_url=svc.base, timeout=10) as http:
        assert (await http.get("/rounds")).status_code == 401
        assert (await http.get("/rounds", headers=PLAYER)).status_code == 403
        for path in ("/rounds/round-held/resolve", "/rounds/round-open/void"):
            for who in (PLAYER, OPS):
                refused = await http.post(path, json=body, headers=who)
                assert refused.status_code == 403, refused.text
                assert refused.headers["content-type"].startswith("application/problem+json")
        for bad in (
            {"reason": "no placements"},
            {"placements": [], "reason": "x"},
            {"placements": [{"player_id": "p0", "rank": 2, "score": 1}], "reason": "rank 2 without a rank 1"},
            {**body, "reason": ""},
            {**body, "extra": True},
        ):
            res = await http.post("/rounds/round-held/resolve", json=bad, headers=ADMIN)
            assert res.status_code in (400, 422), (bad, res.text)
            assert res.json()["code"] == "validation_error"
        for score in (2**63, -(2**63) - 1, 10**40):  # no BIGINT holds it: refused naming the field, never a 500
            placements = [{"player_id": "p0", "rank": 1, "score": score}, {"player_id": "p1", "rank": 2, "score": 1}]
            res = await http.post("/rounds/round-held/resolve", json={**body, "placements": placements}, headers=ADMIN)
            assert (res.status_code, res.json()["code"]) == (400, "validation_error"), res.text
            assert [e["key"] for e in res.json()["errors"]] == ["placements.0.score"], res.text
        bad_void = await http.post("/rounds/round-open/void", content=b"{nope", headers=ADMIN)
        assert bad_void.status_code in (400, 422)
        assert await round_state(engine, "round-held") == "resolved"
        assert await round_state(engine, "round-open") == "open"
        assert await emitted(engine, kafka_bootstrap, suffix, "audit.AdminActionRecorded") == []

        missing = await http.post("/rounds/nope/void", json={"reason": "x"}, headers=ADMIN)
        assert (missing.status_code, missing.json()["code"]) == (404, "round_not_found")
        illegal = await http.post("/rounds/round-open/resolve", json=body, headers=ADMIN)
        assert (illegal.status_code, illegal.json()["code"]) == (409, "illegal_transition")

        resolved = await http.post("/rounds/round-held/resolve", json=body, headers=ADMIN)
        assert resolved.status_code == 200, resolved.text
        assert resolved.json()["state"] == "settled"
        voided = await http.post("/rounds/round-open/void", json={"reason": "server crashed"}, headers=ADMIN)
        assert voided.status_code == 200, voided.text
        again = await http.post("/rounds/round-open/void", json={"reason": "twice"}, headers=ADMIN)
        assert again.status_code == 409

        listed = (await http.get("/rounds", params={"state": "settled"}, headers=OPS)).json()
        assert "items" in listed, (listed, svc.tail())
        assert [r["round_id"] for r in listed["items"]] == ["round-held"]
        page1 = (await http.get("/rounds", params={"limit": 1}, headers=OPS)).json()
        page2 = (await http.get("/rounds", params={"limit": 1, "cursor": page1["next_cursor"]}, headers=OPS)).json()
        assert [page1["items"][0]["round_id"], page2["items"][0]["round_id"]] == ["round-held", "round-open"]
        detail = (await http.get("/rounds/round-held", headers=OPS)).json()
        assert [(h["from_state"], h["to_state"]) for h in detail["history"]] == [
            (None, "open"),
            ("open", "closed"),
            ("closed", "resolved"),
            ("resolved", "settled"),
        ]
        assert detail["history"][-1]["actor"] == "admin-7"
        assert (await http.get("/schema/openapi.json")).status_code == 200

        # The round's flow, in order: its transitions, its settlement and the admin's audited action.
        flow = (await http.get("/admin/timeline/round-held", headers=OPS)).json()
        assert (flow["correlation_id"], flow["service"]) == ("round-held", "settlement")
        entries = [(e["kind"], e["type"]) for e in flow["entries"]]
        assert entries[:3] == [("state", "round.open"), ("state", "round.closed"), ("state", "round.resolved")]
        assert {("state", "round.settled"), ("event", "RoundSettled"), ("audit", "round.resolve")} <= set(entries)
        assert [e["at"] for e in flow["entries"]] == sorted(e["at"] for e in flow["entries"])
        told = json.dumps(flow)
        assert "p0" not in told
        assert str(body["reason"]) not in told  # an admin's free text stays in the audit record
        approver = {"Authorization": f"Bearer {token('ap-1', 'approver')}"}
        assert (await http.get("/admin/timeline/nobody", headers=approver)).json()["entries"] == []
        assert (await http.get("/admin/timeline/round-held", headers=PLAYER)).status_code == 403

    audits = await eventually(
        lambda: emitted(engine, kafka_bootstrap, suffix, "audit.AdminActionRecorded"), lambda a: len(a) >= 2
    )
    assert [(a.data.action, a.data.actor_user_id, a.correlationid) for a in audits] == [
        ("round.resolve", "admin-7", "round-held"),
        ("round.void", "admin-7", "round-open"),
    ]
    assert all(isinstance(a.data, AdminActionRecorded) for a in audits)
    settled = await emitted(engine, kafka_bootstrap, suffix, "settlement.RoundSettled")
    assert [s.data.round_id for s in settled] == ["round-held"]
    assert isinstance(settled[0].data, RoundSettled)
    assert {a.player_id for a in settled[0].data.allocations} == {"p0", "p1"}
    voids = await emitted(engine, kafka_bootstrap, suffix, "settlement.RoundVoided")
    assert isinstance(voids[0].data, RoundVoided)
    assert sorted(r.entry_id for r in voids[0].data.refunds) == ["round-open-e0", "round-open-e1"]
