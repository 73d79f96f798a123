"""One flow's timeline: entries of every source merged in time order, summaries one short line, audit rows taken
from exactly the audit events a transaction stages."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone

from prizeflow_contracts.envelope import new_event, stage_event
from prizeflow_contracts.events.audit import AdminActionRecorded
from prizeflow_contracts.events.rewards import PoolLow
from prizeflow_runtime.admin_audit import admin_audit_rows
from prizeflow_runtime.audit import admin_action
from prizeflow_runtime.auth import Role
from prizeflow_runtime.timeline import EntryKind, Timeline, TimelineEntry, one_line, rfc3339, short_event_type

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class Fixed:
    def __init__(self, *entries: TimelineEntry) -> None:
        self.items = entries
        self.asked: list[str] = []

    async def entries(self, correlation_id: str) -> Sequence[TimelineEntry]:
        self.asked.append(correlation_id)
        return self.items


def entry(seconds: int, type_: str, kind: EntryKind = EntryKind.STATE) -> TimelineEntry:
    return TimelineEntry(T0 + timedelta(seconds=seconds), kind, type_, "r-1", f"{type_} happened")


async def test_entries_of_every_source_come_back_in_time_order_under_the_service_name() -> None:
    a = Fixed(entry(3, "third"), entry(1, "first"))
    b = Fixed(entry(2, "second", EntryKind.AUDIT), entry(3, "tied-after"))
    doc = await Timeline("rewards", [a, b])("flow-1")
    assert a.asked == b.asked == ["flow-1"]
    assert [e["type"] for e in doc["entries"]] == ["first", "second", "third", "tied-after"]
    assert {e["service"] for e in doc["entries"]} == {"rewards"}
    assert doc["entries"][1] == {
        "at": "2026-03-01T12:00:02Z",
        "service": "rewards",
        "kind": "audit",
        "type": "second",
        "subject": "r-1",
        "summary": "second happened",
    }
    assert (doc["correlation_id"], doc["service"], doc["truncated"]) == ("flow-1", "rewards", False)


async def test_a_flow_nobody_knows_is_an_empty_list() -> None:
    assert (await Timeline("payouts", [Fixed(), Fixed()])("nobody"))["entries"] == []


def test_times_are_rfc3339_utc_and_summaries_one_bounded_line() -> None:
    assert rfc3339(datetime(2026, 3, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))) == "2026-03-01T12:00:00Z"
    assert one_line("two\nlines\t here") == "two lines here"
    assert len(one_line("x" * 1000)) == 240
    assert short_event_type("prizeflow.settlement.RoundSettled.v1") == "RoundSettled"
    assert short_event_type(None) == "unreadable"


def test_only_audit_events_become_admin_audit_rows_whatever_form_they_are_staged_in() -> None:
    audit = admin_action(
        actor_user_id="ops-1",
        actor_roles=[Role.OPS, Role.ADMIN],
        action="campaign.close",
        target_type="campaign",
        target_id="camp-1",
        service="rewards",
        source="/prizeflow/rewards",
        correlation_id="flow-1",
        reason="season over",
        before={"status": "active"},
        occurred_at=T0,
        action_id="act-1",
    )
    other = new_event(
        PoolLow(campaign_id="camp-1", asset="USDC", remaining=5, threshold=10),
        source="/prizeflow/rewards",
        correlation_id="flow-1",
    )
    staged_audit = stage_event(audit.data, source="/prizeflow/rewards", correlation_id="flow-2", time=T0)
    rows = admin_audit_rows([other.staged(), audit.staged(), staged_audit])
    assert rows == [
        (audit.id, "act-1", "flow-1", "rewards", "campaign.close", "campaign", "camp-1", "ops-1", "admin,ops",
         "season over", T0),
        (staged_audit.id, "act-1", "flow-2", "rewards", "campaign.close", "campaign", "camp-1", "ops-1", "admin,ops",
         "season over", T0),
    ]  # fmt: skip
    assert isinstance(audit.data, AdminActionRecorded)
    assert all(isinstance(r[0], uuid.UUID) for r in rows)
