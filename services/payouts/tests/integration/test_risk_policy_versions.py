"""The risk policy's versions on real PostgreSQL + Kafka, through the compliance API: admin A proposes, A cannot
approve it, admin B activates it (RiskPolicyActivated published, the decisions audited), a proposal made against an
older active version is refused as stale, a bad policy names its fields; PostgreSQL refuses two active versions, a
proposer deciding their own version and any rewrite of what was proposed."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from prizeflow_compliance.adapters.records_pg import SqlComplianceFacts
from prizeflow_contracts.envelope import decode
from prizeflow_contracts.events.audit import AdminActionRecorded
from prizeflow_contracts.events.payouts import RiskPolicyActivated
from prizeflow_payouts.settings import PayoutsSettings
from prizeflow_runtime.db import create_engine, session_factory
from prizeflow_testkit import eventually, read_topic
from prizeflow_testkit.db import fetch
from prizeflow_testkit.payouts import providers_file, running, settings_for, token

pytestmark = pytest.mark.integration

RULES = [{"scope": {"asset": "USDC"}, "kyc_above": {"amount": 100_000_000, "window_s": 2_592_000}}]


def _settings(db: str, kafka: str, suffix: str, tmp_path: Path) -> PayoutsSettings:
    return settings_for(db, kafka, providers_file(tmp_path), topic_suffix=suffix, payouts_worker_enabled=False)


async def _topic(kafka: str, name: str, settings: PayoutsSettings, cls: type[Any], expect: int) -> list[Any]:
    async def probe() -> list[Any]:
        records = await read_topic(kafka, name + settings.kafka_topic_suffix)
        return [d for d in (decode(r.value).data for r in records) if isinstance(d, cls)]

    return await eventually(probe, lambda found: len(found) >= expect, timeout=30, interval=0.2)


async def test_two_admins_activate_a_version_and_a_stale_one_is_refused(
    db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path
) -> None:
    settings = _settings(db, kafka_bootstrap, topic_suffix, tmp_path)
    ann, bob, cid = (token(settings, u, "admin") for u in ("ann", "bob", "cid"))
    async with running(settings) as (parts, client):
        empty = (await client.get("/v1/admin/compliance/policy", headers=token(settings, "olga", "ops"))).json()
        assert empty == {"active": None, "proposals": []}

        body = {"policy": {"rules": RULES, "note": "verify above 10 USDC a month"}, "reason": "licence terms"}
        refused = await client.post(
            "/v1/admin/compliance/policy/proposals", json=body, headers=token(settings, "val", "approver")
        )
        assert refused.status_code == 403
        created = await client.post("/v1/admin/compliance/policy/proposals", json=body, headers=ann)
        assert created.status_code == 201, created.text
        v1 = created.json()
        assert (v1["version"], v1["status"], v1["proposed_by"], v1["base_version"]) == (1, "proposed", "ann", 0)
        assert v1["policy"]["rules"][0]["kyc_above"]["amount"] == 100_000_000

        own = await client.post(f"/v1/admin/compliance/policy/proposals/{v1['id']}/approve", json={}, headers=ann)
        assert own.status_code == 403
        assert own.json()["code"] == "self_decision"
        assert own.headers["content-type"].startswith("application/problem+json")

        # Made while version 0 (none) is active: stale once version 1 is.
        stale = (
            await client.post(
                "/v1/admin/compliance/policy/proposals",
                json={"policy": {"rules": [], "note": "relax"}, "reason": "too strict"},
                headers=cid,
            )
        ).json()
        assert (stale["version"], stale["base_version"]) == (2, 0)

        approved = await client.post(
            f"/v1/admin/compliance/policy/proposals/{v1['id']}/approve",
            json={"reason": "agreed with compliance"},
            headers={**bob, "X-Correlation-Id": "cr-bob-approves"},
        )
        assert approved.status_code == 200, approved.text
        assert (approved.json()["status"], approved.json()["decided_by"]) == ("active", "bob")
        twice = await client.post(f"/v1/admin/compliance/policy/proposals/{v1['id']}/approve", json={}, headers=cid)
        assert (twice.status_code, twice.json()["code"]) == (409, "not_proposed")

        late = await client.post(f"/v1/admin/compliance/policy/proposals/{stale['id']}/approve", json={}, headers=bob)
        assert (late.status_code, late.json()["code"]) == (409, "stale_policy")
        rejected = await client.post(
            f"/v1/admin/compliance/policy/proposals/{stale['id']}/reject", json={"reason": "stale"}, headers=bob
        )
        assert (rejected.status_code, rejected.json()["status"]) == (200, "rejected")

        v3 = (
            await client.post(
                "/v1/admin/compliance/policy/proposals",
                json={"policy": {"rules": RULES, "note": "again"}, "reason": "re-proposed on v1"},
                headers=cid,
            )
        ).json()
        assert (v3["version"], v3["base_version"]) == (3, 1)
        assert (
            await client.post(f"/v1/admin/compliance/policy/proposals/{v3['id']}/approve", json={}, headers=ann)
        ).status_code == 200

        view = (await client.get("/v1/admin/compliance/policy", headers=token(settings, "olga", "ops"))).json()
        assert view["active"]["version"] == 3
        assert (view["active"]["proposed_by"], view["active"]["approved_by"]) == ("cid", "ann")
        assert [(p["version"], p["status"]) for p in view["proposals"]] == [
            (3, "active"),
            (2, "rejected"),
            (1, "superseded"),
        ]

        # The gate's read, in a transaction of its own here: the active version.
        # (its own engine: the app's pool lives on the test client's event loop)
        engine = create_engine(settings.database_url, pool_size=1)
        try:
            async with session_factory(engine)() as session, session.begin():
                facts = SqlComplianceFacts(session)
                policy = await facts.active_policy()
                players = await facts.players(["nobody"])
        finally:
            await engine.dispose()
        assert (policy.version, policy.note) == (3, "again")
        assert players["nobody"].verification.value == "not_started"

        activated = await _topic(kafka_bootstrap, "prizeflow.payouts.events.v1", settings, RiskPolicyActivated, 2)
        assert [(a.policy.version, a.proposed_by, a.approved_by) for a in activated] == [
            (1, "ann", "bob"),
            (3, "cid", "ann"),
        ]
        audits = await _topic(kafka_bootstrap, "prizeflow.audit.v1", settings, AdminActionRecorded, 6)
        # (each under its request's correlation id: partitions differ, so no order across them)
        assert sorted((a.action, a.actor_user_id, a.target_id) for a in audits) == sorted(
            [
                ("risk_policy.propose", "ann", "1"),
                ("risk_policy.propose", "cid", "2"),
                ("risk_policy.approve", "bob", "1"),
                ("risk_policy.reject", "bob", "2"),
                ("risk_policy.propose", "cid", "3"),
                ("risk_policy.approve", "ann", "3"),
            ]
        )
        kept = await fetch(db, "SELECT action, actor FROM admin_audit WHERE target_type = 'risk_policy' ORDER BY id")
        assert [(r["action"], r["actor"]) for r in kept][2] == ("risk_policy.approve", "bob")
        assert parts.compliance_metrics is not None
        assert parts.compliance_metrics.policy_version._value.get() == 3

    # A restart announces nothing more: version 3 was announced when it was approved.
    async with running(settings):
        announced = await fetch(db, "SELECT version FROM risk_policy_announcements")
        assert [r["version"] for r in announced] == [3]


async def test_a_policy_that_fails_validation_names_its_fields(
    db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path
) -> None:
    settings = _settings(db, kafka_bootstrap, topic_suffix, tmp_path)
    async with running(settings) as (_, client):
        bad = {
            "policy": {"rules": [{"kyc_above": {"amount": -5, "window_s": 10}, "allowed_countries": ["france"]}]},
            "reason": "typo",
        }
        answer = await client.post(
            "/v1/admin/compliance/policy/proposals", json=bad, headers=token(settings, "ann", "admin")
        )
        assert answer.status_code == 422, answer.text
        problem = answer.json()
        assert problem["code"] == "invalid_policy"
        assert {e["key"] for e in problem["errors"]} == {
            "rules.0.kyc_above.amount",
            "rules.0.kyc_above.window_s",
            "rules.0.allowed_countries.0",
        }
        unknown = await client.post(
            "/v1/admin/compliance/policy/proposals",
            json={"policy": {"rules": [], "version": 9}, "reason": "x"},
            headers=token(settings, "ann", "admin"),
        )
        assert unknown.status_code == 400
        assert await fetch(db, "SELECT 1 FROM risk_policies") == []


def _doc(version: int) -> str:
    return json.dumps({"version": version, "rules": [], "note": ""})


async def test_the_database_holds_two_people_and_one_active_version(db: str) -> None:
    insert = (
        "INSERT INTO risk_policies (version, document, status, base_version, proposed_by, proposed_at, reason, "
        "decided_by, decided_at) VALUES ($1, CAST($2 AS jsonb), $3, 0, $4, now(), 'r', $5, $6)"
    )
    await fetch(db, insert, 1, _doc(1), "active", "ann", "bob", _now())
    with pytest.raises(asyncpg.UniqueViolationError):
        await fetch(db, insert, 2, _doc(2), "active", "cid", "bob", _now())
    with pytest.raises(asyncpg.CheckViolationError):
        await fetch(db, insert, 2, _doc(2), "active", "ann", "ann", _now())
    with pytest.raises(asyncpg.CheckViolationError):  # the document names its own version
        await fetch(db, insert, 2, _doc(7), "proposed", "ann", None, None)
    await fetch(db, insert, 2, _doc(2), "proposed", "ann", None, None)
    with pytest.raises(asyncpg.CheckViolationError):
        await fetch(
            db, "UPDATE risk_policies SET status = 'rejected', decided_by = 'ann', decided_at = now() WHERE version = 2"
        )
    with pytest.raises(asyncpg.CheckViolationError, match="never changes"):
        await fetch(
            db, "UPDATE risk_policies SET document = CAST($1 AS jsonb) WHERE version = 2", _doc(2).replace('""', '"x"')
        )
    with pytest.raises(asyncpg.CheckViolationError, match="never changes"):
        await fetch(db, "UPDATE risk_policies SET proposed_by = 'zed' WHERE version = 2")
    with pytest.raises(asyncpg.CheckViolationError, match="is not allowed"):
        await fetch(db, "UPDATE risk_policies SET status = 'proposed' WHERE version = 1")
    with pytest.raises(asyncpg.CheckViolationError, match="is not allowed"):
        await fetch(
            db,
            "UPDATE risk_policies SET status = 'superseded', decided_by = 'bob', decided_at = now() WHERE version = 2",
        )
    with pytest.raises(asyncpg.CheckViolationError, match="never deleted"):
        await fetch(db, "DELETE FROM risk_policies WHERE version = 2")
    with pytest.raises(asyncpg.CheckViolationError, match="never rewritten"):
        await fetch(db, "UPDATE risk_policies SET decided_by = 'cid' WHERE version = 1")
    await fetch(db, "UPDATE risk_policies SET status = 'superseded' WHERE version = 1")
    with pytest.raises(asyncpg.CheckViolationError, match="is not allowed"):
        await fetch(db, "UPDATE risk_policies SET status = 'active' WHERE version = 1")


def _now() -> datetime:
    return datetime.now(UTC)
