"""The admin audit is persisted with its outbox row, in the same transaction, and nobody rewrites it; the runtime's
timeline reads it back (and the flow's dead letters) by correlation id."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sample import thing
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from prizeflow_runtime.admin_audit import RuntimeTimeline
from prizeflow_runtime.audit import admin_action
from prizeflow_runtime.auth import Role
from prizeflow_runtime.db import session_factory
from prizeflow_runtime.outbox import add_events
from prizeflow_runtime.timeline import EntryKind

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class Boom(Exception):
    pass


def action(target: str, *, correlation_id: str, at: datetime = T0) -> object:
    return admin_action(
        actor_user_id="ops-1",
        actor_roles=[Role.OPS],
        action="payout.retry",
        target_type="payout",
        target_id=target,
        service="payouts",
        source="/prizeflow/payouts",
        correlation_id=correlation_id,
        reason="provider back up",
        occurred_at=at,
    )


async def rows(engine: AsyncEngine) -> list[tuple[object, ...]]:
    async with engine.connect() as conn:
        result = await conn.execute(
            text("SELECT correlation_id, action, target_id, actor, actor_roles, reason FROM admin_audit ORDER BY id")
        )
        return [tuple(r) for r in result]


async def test_an_audit_event_is_kept_with_its_outbox_row_or_not_at_all(engine: AsyncEngine) -> None:
    sessions = session_factory(engine)
    with pytest.raises(Boom):
        async with sessions() as s, s.begin():
            await add_events(s, [action("po-rolled-back", correlation_id="flow-1")])  # type: ignore[list-item]
            raise Boom
    assert await rows(engine) == []

    async with sessions() as s, s.begin():
        await add_events(s, [thing("t-1"), action("po-1", correlation_id="flow-1"), thing("t-2")])  # type: ignore[list-item]
    assert await rows(engine) == [("flow-1", "payout.retry", "po-1", "ops-1", "ops", "provider back up")]
    async with engine.connect() as conn:
        types = (await conn.execute(text("SELECT event_type FROM outbox ORDER BY seq"))).scalars().all()
    assert types[1] == "prizeflow.audit.AdminActionRecorded.v1"
    assert len(types) == 3


@pytest.mark.parametrize(
    "statement",
    ["UPDATE admin_audit SET reason = 'rewritten'", "DELETE FROM admin_audit", "TRUNCATE admin_audit"],
)
async def test_nobody_rewrites_the_audit(engine: AsyncEngine, statement: str) -> None:
    async with session_factory(engine)() as s, s.begin():
        await add_events(s, [action("po-1", correlation_id="flow-1")])  # type: ignore[list-item]
    with pytest.raises(DBAPIError, match="append-only"):
        async with engine.begin() as conn:
            await conn.execute(text(statement))
    assert len(await rows(engine)) == 1


async def test_the_runtime_timeline_has_the_flows_audit_and_dead_letters_in_order(engine: AsyncEngine) -> None:
    async with session_factory(engine)() as s, s.begin():
        await add_events(
            s,
            [
                action("po-2", correlation_id="flow-1", at=T0 + timedelta(seconds=5)),  # type: ignore[list-item]
                action("po-1", correlation_id="flow-1"),  # type: ignore[list-item]
                action("po-9", correlation_id="another-flow"),  # type: ignore[list-item]
            ],
        )
        await s.execute(
            text(
                'INSERT INTO dead_letters (consumer, digest, event_type, correlation_id, topic, partition, "offset", '
                "value, headers, reason, detail, error_type, attempts, created_at) VALUES ('payouts-requests', "
                "'\\x01', 'prizeflow.payouts.PayoutRequested.v1', 'flow-1', 't', 0, 1, '{}', '{}', "
                "'unknown_aggregate', 'the player p-7 is unknown', 'EventRefusal', 1, :at)"
            ),
            {"at": T0 + timedelta(seconds=1)},
        )
    found = sorted(await RuntimeTimeline(engine, "payouts").entries("flow-1"), key=lambda e: e.at)
    assert [(e.kind, e.type, e.subject) for e in found] == [
        (EntryKind.AUDIT, "payout.retry", "po-1"),
        (EntryKind.DEAD_LETTER, "PayoutRequested", found[1].subject),
        (EntryKind.AUDIT, "payout.retry", "po-2"),
    ]
    assert found[0].summary == "payout.retry on payout po-1 by ops-1 (ops)"
    assert "p-7" not in found[1].summary  # the refusal's detail (it may name a player) stays out
    assert found[1].subject.startswith("payouts-")
    assert await RuntimeTimeline(engine, "payouts").entries("nobody") == []


@pytest.mark.parametrize(("action_name", "target_type"), [("wallet.top_up", "wallet"), ("player.risk_flag", "player")])
async def test_the_timeline_never_names_the_player_an_admin_action_was_about(
    engine: AsyncEngine, action_name: str, target_type: str
) -> None:
    """An admin top-up or risk flag under a flow's correlation id (the caller's X-Correlation-Id): the audit row
    keeps the player's id, the timeline an operator reads does not (ids of people are personal data)."""
    about_a_player = admin_action(
        actor_user_id="ops-1",
        actor_roles=[Role.OPS],
        action=action_name,
        target_type=target_type,
        target_id="p-4242",
        service="rewards",
        source="/prizeflow/rewards",
        correlation_id="flow-p",
        occurred_at=T0,
    )
    async with session_factory(engine)() as s, s.begin():
        await add_events(s, [about_a_player])
    assert (await rows(engine))[0][2] == "p-4242"
    [entry] = await RuntimeTimeline(engine, "rewards").entries("flow-p")
    assert "p-4242" not in f"{entry.subject} {entry.summary}"
    assert (entry.type, entry.subject, entry.summary) == (
        action_name,
        target_type,
        f"{action_name} on a {target_type} by ops-1 (ops)",
    )
