"""The operators' money APIs on real PostgreSQL: closing a campaign sweeps its pool to the treasury through the
ledger; two-person corrections post one compensating transfer; the ledger is read by flow; one flow's timeline.
Every change is audited in the same transaction (`admin_audit`, with its outbox row), and the database holds the
rules on its own (two people, a decision is final)."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import asyncpg
import pytest
from rewards_sql import HeldOpen, bind, sql_uow
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from prizeflow_contracts.envelope import new_event
from prizeflow_contracts.events.settlement import RoundSettled
from prizeflow_rewards.application.corrections import DecideCorrection, Proposal, ProposeCorrection
from prizeflow_rewards.domain import accounts
from prizeflow_rewards.domain.ledger import Transfer, TransferKind
from prizeflow_runtime.auth import Principal, Role
from prizeflow_runtime.db import asyncpg_dsn, session_factory
from prizeflow_runtime.errors import UseCaseError
from prizeflow_testkit import eventually
from prizeflow_testkit.events import example_payload
from prizeflow_testkit.rewards import STELLAR_KEY, Running, running_app, settings_for, token

pytestmark = pytest.mark.integration


async def rows(database_url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def funded(app: Running, campaign: str, amount: int) -> None:
    r = await app.client.post(
        "/campaigns/", json={"campaign_id": campaign, "name": campaign, "asset": "USDC"}, headers=app.admin
    )
    assert r.status_code == 201, r.text
    r = await app.client.post(
        f"/campaigns/{campaign}/fund", json={"amount": amount, "reference": f"wire-{campaign}"}, headers=app.admin
    )
    assert r.status_code == 200, r.text


async def test_closing_a_campaign_sweeps_its_pool_back_to_the_treasury_once(
    database_url: str, kafka_bootstrap: str, topic_suffix: str
) -> None:
    async with running_app(settings_for(database_url, kafka_bootstrap, topic_suffix=topic_suffix), routes=()) as app:
        await funded(app, "camp-open", 10_000)
        await funded(app, "camp-held", 10_000)
        # Money promised from a pool: a round held for it. Closing is refused and changes nothing.
        held = new_event(example_payload(RoundSettled, campaign_id="camp-held"), source="/t", correlation_id="r-h")
        async with asyncio.timeout(10):
            conn = await asyncpg.connect(asyncpg_dsn(database_url))
            try:
                await conn.execute(
                    "INSERT INTO held_allocations (round_id, campaign_id, asset, total, reason, event, status) "
                    "VALUES ('r-h', 'camp-held', 'USDC', 50000, 'pool_exhausted', $1::jsonb, 'held')",
                    held.encode().decode(),
                )
            finally:
                await conn.close()
        r = await app.client.post("/campaigns/camp-held/close", json={"reason": "season over"}, headers=app.admin)
        assert (r.status_code, r.json()["code"], r.json()["held_rounds"]) == (409, "reservations_pending", 1)
        assert r.headers["content-type"].startswith("application/problem+json")

        # A reason is required; ops may not close.
        r = await app.client.post("/campaigns/camp-open/close", json={}, headers=app.admin)
        assert r.status_code == 400
        r = await app.client.post("/campaigns/camp-open/close", json={"reason": "x"}, headers=app.ops)
        assert r.status_code == 403

        r = await app.client.post(
            "/campaigns/camp-open/close",
            json={"reason": "season over"},
            headers={**app.admin, "X-Correlation-Id": "close-camp-open"},
        )
        assert r.status_code == 200, r.text
        closed = r.json()
        assert (closed["status"], closed["swept"], closed["remaining"], closed["changed"]) == (
            "closed",
            10_000,
            0,
            True,
        )
        sweep = await rows(
            database_url,
            "SELECT t.id, t.amount, t.correlation_id, d.kind AS d, c.kind AS c FROM ledger_transfers t "
            "JOIN ledger_accounts d ON d.id = t.debit_account_id JOIN ledger_accounts c ON c.id = t.credit_account_id "
            "WHERE t.kind = 'pool_sweep'",
        )
        assert [(str(s["id"]), s["amount"], s["correlation_id"], s["d"], s["c"]) for s in sweep] == [
            (closed["transfer_id"], 10_000, "close-camp-open", "campaign_pool", "treasury")
        ]
        audit = await rows(
            database_url, "SELECT action, target_id, actor, reason FROM admin_audit WHERE correlation_id = $1",
            "close-camp-open",
        )  # fmt: skip
        assert [tuple(a) for a in audit] == [("campaign.close", "camp-open", "admin-1", "season over")]

        # Closing again moves nothing and says what closing did; a closed pool takes no funding.
        r = await app.client.post("/campaigns/camp-open/close", json={"reason": "again"}, headers=app.admin)
        assert (r.json()["swept"], r.json()["transfer_id"], r.json()["changed"]) == (
            10_000,
            closed["transfer_id"],
            False,
        )
        r = await app.client.post(
            "/campaigns/camp-open/fund", json={"amount": 1, "reference": "late"}, headers=app.admin
        )
        assert (r.status_code, r.json()["code"]) == (409, "campaign_closed")
        assert len(await rows(database_url, "SELECT 1 FROM ledger_transfers WHERE kind = 'pool_sweep'")) == 1

        # The sweep is found by its flow, and on the pool's account.
        r = await app.client.get("/ledger/transfers?correlation_id=close-camp-open", headers=app.ops)
        assert [(t["kind"], t["debit_account"], t["credit_account"], t["amount"]) for t in r.json()["items"]] == [
            ("pool_sweep", "campaign_pool:camp-open", "treasury:platform", 10_000)
        ]
        r = await app.client.get("/ledger/transfers?account=campaign_pool:camp-open", headers=app.ops)
        assert [t["kind"] for t in r.json()["items"]] == ["pool_sweep", "campaign_funding"]
        r = await app.client.get("/ledger/transfers?account=pool", headers=app.ops)
        assert (r.status_code, r.json()["code"]) == (422, "invalid_account")


async def test_two_people_correct_an_over_allocation_with_one_compensating_transfer(
    database_url: str, kafka_bootstrap: str, topic_suffix: str
) -> None:
    settings = settings_for(database_url, kafka_bootstrap, topic_suffix=topic_suffix)
    async with running_app(settings, routes=()) as app:
        r = await app.client.post(
            "/wallets/p-1/top-ups",
            json={"asset": "USDC", "amount": 4_000, "provider": "stripe", "reference": "paid-twice"},
            headers=app.admin,
        )
        paid = r.json()["transfer_id"]
        body = {
            "debit_account": "player_wallet:p-1",
            "credit_account": "provider_external:stripe",
            "asset": "USDC",
            "amount": 2_000,
            "reason": "the top-up was credited at twice its amount",
            "reference": "fix-paid-twice",
            "corrects_transfer_id": paid,
        }
        ops_approver = token(settings, "ops-1", "ops", "approver")
        r = await app.client.post("/ledger/corrections", json=body, headers=ops_approver)
        assert r.status_code == 201, r.text
        proposed = r.json()
        assert (proposed["status"], proposed["created"], proposed["proposed_by"]) == ("proposed", True, "ops-1")
        r = await app.client.post("/ledger/corrections", json=body, headers=ops_approver)
        assert (r.json()["correction_id"], r.json()["created"]) == (proposed["correction_id"], False)
        r = await app.client.post("/ledger/corrections", json={**body, "amount": 3_000}, headers=app.ops)
        assert (r.status_code, r.json()["code"]) == (409, "reference_conflict")
        cid = proposed["correction_id"]

        # Approvers approve; never the proposer, whatever roles they hold.
        r = await app.client.post(f"/ledger/corrections/{cid}/approve", json={}, headers=app.ops)
        assert r.status_code == 403
        r = await app.client.post(
            f"/ledger/corrections/{cid}/approve", json={}, headers=token(settings, "adm-1", "admin")
        )
        assert r.status_code == 403  # an admin is not an approver: the second person holds the approver role
        r = await app.client.post(f"/ledger/corrections/{cid}/approve", json={}, headers=ops_approver)
        assert (r.status_code, r.json()["code"]) == (403, "same_person")
        r = await app.client.get("/ledger/corrections?status=proposed", headers=app.ops)
        assert [c["correction_id"] for c in r.json()["items"]] == [cid]

        r = await app.client.post(
            f"/ledger/corrections/{cid}/approve",
            json={"reason": "matches the bank"},
            headers=token(settings, "ap-1", "approver"),
        )
        assert r.status_code == 200, r.text
        applied = r.json()
        assert (applied["status"], applied["approved_by"]) == ("applied", "ap-1")
        assert (await app.balances("p-1"))["USDC"]["balance"] == 2_000
        corrections = await rows(database_url, "SELECT id, amount FROM ledger_transfers WHERE kind = 'correction'")
        assert [(str(c["id"]), c["amount"]) for c in corrections] == [(applied["transfer_id"], 2_000)]
        r = await app.client.get(f"/ledger/corrections/{cid}", headers=token(settings, "ap-2", "approver"))
        assert r.json()["status"] == "applied"
        audit = await rows(database_url, "SELECT action, actor FROM admin_audit WHERE target_id = $1 ORDER BY id", cid)
        assert [tuple(a) for a in audit] == [
            ("ledger_correction.propose", "ops-1"),
            ("ledger_correction.approve", "ap-1"),
        ]
        r = await app.client.post(f"/ledger/corrections/{cid}/reject", json={"reason": "late"}, headers=app.ops)
        assert (r.status_code, r.json()["code"]) == (409, "not_proposed")

        # A correction that would overdraw the wallet is refused when approved; it stays proposed, nothing moved.
        r = await app.client.post(
            "/ledger/corrections", json={**body, "reference": "too-much", "amount": 5_000}, headers=app.ops
        )
        big = r.json()["correction_id"]
        r = await app.client.post(
            f"/ledger/corrections/{big}/approve", json={}, headers=token(settings, "ap-1", "approver")
        )
        assert (r.status_code, r.json()["code"]) == (409, "exceeds_credits")
        r = await app.client.get(f"/ledger/corrections/{big}", headers=app.ops)
        assert r.json()["status"] == "proposed"
        assert (await app.balances("p-1"))["USDC"]["balance"] == 2_000


async def test_the_database_refuses_one_person_approving_their_own_correction(engine: AsyncEngine) -> None:
    """Whatever the code does: two people, applied only by its own transfer, final once decided, never deleted."""
    wallet = await _wallet_with(engine, "p-db", 1_000)
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO ledger_corrections (id, reference, debit_account_id, credit_account_id, asset, amount, "
                "reason, correlation_id, status, proposed_by, proposed_at) "
                "SELECT 'lc-db', 'db-1', :d, a.id, 'USDC', 10, 'x', 'c', 'proposed', 'ops-1', now() "
                "FROM ledger_accounts a WHERE a.kind = 'treasury'"
            ),
            {"d": wallet},
        )
    own = Transfer.of(accounts.wallet("p-db", "USDC"), accounts.treasury("USDC"), 10, TransferKind.CORRECTION, "lc-db")
    async with session_factory(engine)() as s, s.begin():
        await bind(s).ledger.apply([own])
    apply = (
        "UPDATE ledger_corrections SET status = 'applied', approved_by = :by, approved_at = now(), "
        "transfer_id = :t WHERE id = 'lc-db'"
    )
    with pytest.raises(DBAPIError, match="ledger_corrections_two_people"):
        async with engine.begin() as conn:
            await conn.execute(text(apply), {"by": "ops-1", "t": own.id})
    with pytest.raises(DBAPIError, match="applied only by its own correction transfer"):
        async with engine.begin() as conn:
            other = (await conn.execute(text("SELECT id FROM ledger_transfers WHERE kind = 'top_up'"))).scalar_one()
            await conn.execute(text(apply), {"by": "ap-1", "t": other})
    with pytest.raises(DBAPIError, match="never deleted"):
        async with engine.begin() as conn:
            await conn.execute(text("DELETE FROM ledger_corrections"))
    async with engine.begin() as conn:
        await conn.execute(text(apply), {"by": "ap-1", "t": own.id})
    with pytest.raises(DBAPIError, match="never changes again"):
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE ledger_corrections SET decision_reason = 'rewritten'"))


async def _wallet_with(engine: AsyncEngine, player: str, amount: int) -> uuid.UUID:
    """A wallet holding `amount` (credited from the stripe rail) and a treasury, through the ledger."""
    async with session_factory(engine)() as s, s.begin():
        ledger = bind(s).ledger
        wallet, external, treasury = (
            accounts.wallet(player, "USDC"),
            accounts.external("stripe", "USDC"),
            accounts.treasury("USDC"),
        )
        await ledger.declare([wallet, external, treasury])
        await ledger.apply([Transfer.of(external, wallet, amount, TransferKind.TOP_UP, "stripe", player)])
    return wallet.id


async def test_two_approvals_at_once_post_one_transfer(engine: AsyncEngine) -> None:
    await _wallet_with(engine, "p-c", 1_000)
    uow = sql_uow(engine)
    propose = ProposeCorrection(uow, "/t")
    sessions = session_factory(engine)
    proposal = Proposal("player_wallet:p-c", "treasury:platform", "USDC", 300, "duplicate prize", "race-1")
    c, _ = await propose(Principal("ops-1", frozenset({Role.OPS})), proposal, correlation_id="race")

    first, second = Principal("ap-1", frozenset({Role.APPROVER})), Principal("ap-2", frozenset({Role.APPROVER}))
    outcome: dict[str, Any] = {}
    async with sessions() as a:
        await a.begin()
        # Holds the correction's row until it commits.
        await DecideCorrection(HeldOpen(a), "/t").approve(first, c.id, reason=None)

        async def other() -> None:
            try:
                outcome["second"] = await DecideCorrection(uow, "/t").approve(second, c.id, reason=None)
            except UseCaseError as err:
                outcome["second"] = err.code

        racing = asyncio.create_task(other())

        async def waiting() -> int:
            async with engine.connect() as conn:
                found = await conn.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE wait_event_type = 'Lock' AND datname = current_database()"
                    )
                )
                return int(found.scalar_one())

        await eventually(waiting, lambda n: n >= 1, timeout=10)  # the second approval waits on the row
        await a.commit()
    await racing
    assert outcome["second"] == "not_proposed"
    async with engine.connect() as conn:
        found = (await conn.execute(text("SELECT amount FROM ledger_transfers WHERE kind = 'correction'"))).all()
        audit = (
            await conn.execute(text("SELECT actor FROM admin_audit WHERE action = 'ledger_correction.approve'"))
        ).all()
    assert [r[0] for r in found] == [300]
    assert [r[0] for r in audit] == ["ap-1"]


async def test_a_flows_timeline_has_its_claim_money_and_audit_in_order(
    database_url: str, kafka_bootstrap: str, topic_suffix: str
) -> None:
    settings = settings_for(
        database_url, kafka_bootstrap, rewards_new_destination_cooldown_s=3600, topic_suffix=topic_suffix
    )
    async with running_app(settings) as app:
        r = await app.client.post(
            "/wallets/p-t/top-ups",
            json={"asset": "USDC", "amount": 5_000, "provider": "stripe", "reference": "t-1"},
            headers=app.admin,
        )
        assert r.status_code == 200
        r = await app.client.post(
            "/claims/",
            json={"asset": "USDC", "amount": 1_000, "destination": {"type": "stellar_account", "address": STELLAR_KEY}},
            headers={**app.player("p-t"), "X-Correlation-Id": "flow-t"},
        )
        claim = r.json()
        assert claim["status"] == "held"
        r = await app.client.post(f"/holds/{claim['claim_id']}/release", json={"reason": "known"}, headers=app.ops)
        assert r.status_code == 200

        async def timeline() -> dict[str, Any]:
            r = await app.client.get("/admin/timeline/flow-t", headers=token(settings, "ap-1", "approver"))
            assert r.status_code == 200, r.text
            doc: dict[str, Any] = r.json()
            return doc

        doc = await eventually(timeline, lambda d: len(d["entries"]) >= 4, timeout=10)
        assert (doc["correlation_id"], doc["service"]) == ("flow-t", "rewards")
        kinds = [(e["kind"], e["type"]) for e in doc["entries"]]
        assert ("state", "claim.held") in kinds
        assert ("ledger", "claim_reserve") in kinds
        assert ("state", "claim.approved") in kinds
        assert ("audit", "claim.release") in kinds
        assert [e["at"] for e in doc["entries"]] == sorted(e["at"] for e in doc["entries"])
        text_of_it = json.dumps(doc)
        assert STELLAR_KEY not in text_of_it
        assert "p-t" not in text_of_it
        assert all(e["service"] == "rewards" and e["at"].endswith("Z") for e in doc["entries"])

        r = await app.client.get("/admin/timeline/nobody-knows", headers=app.ops)
        assert (r.status_code, r.json()["entries"]) == (200, [])
        r = await app.client.get("/admin/timeline/flow-t", headers=app.player("p-t"))
        assert r.status_code == 403
        r = await app.client.get("/admin/timeline/bad%20id", headers=app.ops)
        assert (r.status_code, r.json()["code"]) == (400, "validation_error")
        assert [e["key"] for e in r.json()["errors"]] == ["correlation_id"]


async def test_every_campaign_and_wallet_action_is_audited_under_the_callers_correlation_id(
    database_url: str, kafka_bootstrap: str, topic_suffix: str
) -> None:
    """Create, fund, pause, resume, an admin top-up and a risk flag made up a fresh `admin-…` id and dropped the
    caller's `X-Correlation-Id` (closing and corrections kept it): their audit rows could not be found by the
    request that made them, as every other admin action's can."""
    tag = uuid.uuid4().hex[:10]
    cid, camp, player = f"op-{tag}", f"camp-{tag}", f"p-{tag}"
    async with running_app(settings_for(database_url, kafka_bootstrap, topic_suffix=topic_suffix), routes=()) as app:
        headers = {**app.admin, "X-Correlation-Id": cid}
        sent = [
            ("/campaigns/", {"campaign_id": camp, "name": camp, "asset": "USDC"}),
            (f"/campaigns/{camp}/fund", {"amount": 1_000, "reference": f"wire-{tag}"}),
            (f"/campaigns/{camp}/pause", None),
            (f"/campaigns/{camp}/resume", None),
            (f"/wallets/{player}/top-ups", {"asset": "USD", "amount": 500, "provider": "bank", "reference": tag}),
        ]
        for path, body in sent:
            r = await app.client.post(path, json=body, headers=headers)
            assert r.status_code in {200, 201}, (path, r.text)
        r = await app.client.put(
            f"/players/{player}/risk-flag", json={"flagged": True, "reason": "chargebacks"}, headers=headers
        )
        assert r.status_code == 200, r.text
    audit = await rows(database_url, "SELECT action FROM admin_audit WHERE correlation_id = $1 ORDER BY 1", cid)
    assert [a["action"] for a in audit] == sorted(
        ["campaign.create", "campaign.fund", "campaign.pause", "campaign.resume", "wallet.top_up", "player.risk_flag"]
    )
