"""Helpers the use cases share: the clock, audit events, counting applied transfers."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from prizeflow_contracts.envelope import new_event
from prizeflow_contracts.events.audit import AdminActionRecorded
from prizeflow_contracts.events.audit import Role as AuditRole
from prizeflow_rewards.application.ports import Conn
from prizeflow_rewards.domain.ledger import BatchResult
from prizeflow_rewards.metrics import RewardsMetrics
from prizeflow_runtime.auth import Principal
from prizeflow_runtime.outbox import add_event

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


def count_transfers(metrics: RewardsMetrics | None, result: BatchResult) -> None:
    if metrics is not None:
        for t in result.applied:
            metrics.transfers.labels(t.kind.value).inc()


async def audit(
    conn: Conn,
    *,
    source: str,
    actor: Principal,
    action: str,
    target_type: str,
    target_id: str,
    correlation_id: str,
    reason: str | None = None,
    before: Mapping[str, object] | None = None,
    after: Mapping[str, object] | None = None,
    at: datetime | None = None,
) -> None:
    """Stage an AdminActionRecorded in the transaction of the action itself, with the roles the actor holds (an
    actor without one is refused by the event's contract, and the action with it: no role is ever assumed)."""
    roles = sorted({AuditRole(r.value) for r in actor.roles})
    payload = AdminActionRecorded(
        action_id=str(uuid.uuid4()),
        actor_user_id=actor.user_id,
        actor_roles=roles,
        action=action,
        target_type=target_type,
        target_id=target_id,
        reason=reason,
        before={k: str(v) for k, v in (before or {}).items()},
        after={k: str(v) for k, v in (after or {}).items()},
        service="rewards",
        occurred_at=at or utcnow(),
    )
    await add_event(conn, new_event(payload, source=source, correlation_id=correlation_id, subject=target_id))


def admin_correlation_id() -> str:
    return f"admin-{uuid.uuid4()}"
