"""The one builder of `AdminActionRecorded`: every admin action of every service is audited the same way.

The event is staged in the transaction of the action itself (outbox), so an action and its audit record commit
or roll back together. The roles are those the actor holds: an actor holding none is refused by the event's
contract (and the action with it); no role is ever assumed.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from enum import Enum

from prizeflow_contracts.envelope import Envelope, new_event
from prizeflow_contracts.events.audit import AdminActionRecorded
from prizeflow_contracts.events.audit import Role as AuditRole


def audit_roles(roles: Iterable[str | Enum]) -> list[AuditRole]:
    """The roles an audit record names: those of `roles` the audit contract knows, each once, sorted."""
    values = (r.value if isinstance(r, Enum) else r for r in roles)
    return sorted({AuditRole(v) for v in values if v in AuditRole._value2member_map_})


def admin_action(
    *,
    actor_user_id: str,
    actor_roles: Iterable[str | Enum],
    action: str,
    target_type: str,
    target_id: str,
    service: str,
    source: str,
    correlation_id: str,
    reason: str | None = None,
    before: Mapping[str, object] | None = None,
    after: Mapping[str, object] | None = None,
    occurred_at: datetime | None = None,
    action_id: str | None = None,
    causation_id: str | None = None,
) -> Envelope[AdminActionRecorded]:
    """An `AdminActionRecorded` envelope for `action` (`<object>.<verb>`) on `target_type`/`target_id`, its
    subject the target, under `correlation_id` (the target's own flow when it has one). `before`/`after` are
    redacted views of the target (values become strings); never put a secret or personal data in them."""
    payload = AdminActionRecorded(
        action_id=action_id or uuid.uuid4().hex,
        actor_user_id=actor_user_id,
        actor_roles=audit_roles(actor_roles),
        action=action,
        target_type=target_type,
        target_id=target_id,
        reason=reason,
        before={k: str(v) for k, v in (before or {}).items()},
        after={k: str(v) for k, v in (after or {}).items()},
        service=service,
        occurred_at=occurred_at or datetime.now(UTC),
    )
    return new_event(
        payload, source=source, correlation_id=correlation_id, subject=target_id, causation_id=causation_id
    )


__all__ = ["admin_action", "audit_roles"]
