"""The persisted admin audit, and the timeline entries every service has (its audit, its dead letters).

Every admin action of every service is staged as an `AdminActionRecorded` in the outbox (`prizeflow_runtime.audit`);
`outbox.add_events`, the one door every staged event goes through, also writes its `admin_audit` row, in the same
statement batch of the same transaction: the action, its event and its row commit or roll back together, and no
service can stage an audit event that is not kept. The row holds who (user id and roles), what (`<object>.<verb>`),
which object, why (the reason, as given), when and under which flow; never the before/after views.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Final

from pydantic import ValidationError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from prizeflow_contracts.envelope import StagedEvent, decode
from prizeflow_contracts.errors import EventRefusal
from prizeflow_contracts.events.audit import AdminActionRecorded
from prizeflow_runtime.timeline import MAX_ENTRIES_PER_SOURCE, EntryKind, TimelineEntry, short_event_type

AUDIT_EVENT_TYPE: Final = AdminActionRecorded.event_type()

_INSERT = """
    INSERT INTO admin_audit (event_id, action_id, correlation_id, service, action, target_type, target_id, actor,
                             actor_roles, reason, occurred_at)
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                         $8::text[], $9::text[], $10::text[], $11::timestamptz[])
    ON CONFLICT (event_id) DO NOTHING
"""


def admin_audit_rows(events: Iterable[StagedEvent]) -> list[tuple[Any, ...]]:
    """The `admin_audit` rows of the audit events among `events` (the others are not read)."""
    rows: list[tuple[Any, ...]] = []
    for staged in events:
        if staged.type != AUDIT_EVENT_TYPE:
            continue
        try:
            envelope = decode(staged.payload)
        except (EventRefusal, ValidationError, ValueError) as err:  # built by `audit.admin_action`: cannot happen
            raise ValueError(f"an {AUDIT_EVENT_TYPE} staged in the outbox does not decode") from err
        a = envelope.data
        if not isinstance(a, AdminActionRecorded):
            raise TypeError(f"event {staged.id} says {AUDIT_EVENT_TYPE} but carries {type(a).__name__}")
        rows.append(
            (
                envelope.id,
                a.action_id,
                envelope.correlationid,
                a.service,
                a.action,
                a.target_type,
                a.target_id,
                a.actor_user_id,
                ",".join(sorted(r.value for r in a.actor_roles)),
                a.reason,
                a.occurred_at,
            )
        )
    return rows


async def record_admin_audit(raw: Any, rows: Sequence[tuple[Any, ...]]) -> None:
    """Insert `rows` (from `admin_audit_rows`) on the asyncpg connection `raw`, inside its open transaction."""
    if rows:
        await raw.execute(_INSERT, *(list(column) for column in zip(*rows, strict=True)))


# Audited objects that are a person: their id (a player id) is personal data, kept in the audit row for whoever
# may read it, never shown in a timeline (its entry says "a player", "a wallet").
PERSONAL_TARGET_TYPES: Final = frozenset({"player", "wallet"})

_AUDIT_OF = text(
    "SELECT occurred_at, action, target_type, target_id, actor, actor_roles FROM admin_audit "
    "WHERE correlation_id = :cid ORDER BY occurred_at, id LIMIT :limit"
)
_DEAD_LETTERS_OF = text(
    "SELECT id, consumer, event_type, reason, status, created_at FROM dead_letters "
    "WHERE correlation_id = :cid ORDER BY id LIMIT :limit"
)


class RuntimeTimeline:
    """What every service knows of a flow: the admin actions on it (`admin_audit`) and the records of it its
    consumers refused (`dead_letters`). The inbox keeps no correlation id: what was applied shows through the
    service's own entries."""

    def __init__(self, engine: AsyncEngine, service: str, *, dead_letters: bool = True) -> None:
        self.engine = engine
        self.service = service
        self.dead_letters = dead_letters

    async def entries(self, correlation_id: str) -> list[TimelineEntry]:
        params = {"cid": correlation_id, "limit": MAX_ENTRIES_PER_SOURCE}
        async with self.engine.connect() as conn:
            audit = (await conn.execute(_AUDIT_OF, params)).all()
            refused = (await conn.execute(_DEAD_LETTERS_OF, params)).all() if self.dead_letters else []
        out = [_audit_entry(r) for r in audit]
        out += [
            TimelineEntry(
                at=r.created_at,
                kind=EntryKind.DEAD_LETTER,
                type=short_event_type(r.event_type),
                subject=f"{self.service}-{r.id}",
                summary=f"dead letter {r.id}: {r.consumer} refused it ({r.reason}); {r.status}",
            )
            for r in refused
        ][: MAX_ENTRIES_PER_SOURCE - len(out)]
        return out


def _audit_entry(r: Any) -> TimelineEntry:
    personal = r.target_type in PERSONAL_TARGET_TYPES
    target = f"a {r.target_type}" if personal else f"{r.target_type} {r.target_id}"
    return TimelineEntry(
        at=r.occurred_at,
        kind=EntryKind.AUDIT,
        type=r.action,
        subject=r.target_type if personal else r.target_id,
        summary=f"{r.action} on {target} by {r.actor} ({r.actor_roles})",
    )


__all__ = ["AUDIT_EVENT_TYPE", "PERSONAL_TARGET_TYPES", "RuntimeTimeline", "admin_audit_rows", "record_admin_audit"]
