"""Audit trail on `prizeflow.audit.v1`: every admin action, from every service (docs/architecture.md §7)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, ClassVar, Final

from pydantic import AwareDatetime, Field, model_validator

from prizeflow_contracts.envelope import EventPayload
from prizeflow_contracts.ids import Identifier, Reason, ServiceName
from prizeflow_contracts.topics import AUDIT, Topic

MAX_SUMMARY_ITEMS: Final = 50


class Role(StrEnum):
    PLAYER = "player"
    ADMIN = "admin"
    APPROVER = "approver"
    OPS = "ops"


SummaryKey = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_.]{0,63}$")]
SummaryValue = Annotated[str, Field(max_length=1000)]
# A redacted before/after view of the target: the fields that changed, as strings; never secrets.
Summary = Annotated[dict[SummaryKey, SummaryValue], Field(max_length=MAX_SUMMARY_ITEMS)]


class AdminActionRecorded(EventPayload):
    """Who did what to which object, why, and what it looked like before and after."""

    EVENT_NAME: ClassVar[str] = "AdminActionRecorded"
    TOPIC: ClassVar[Topic] = AUDIT

    action_id: Identifier
    actor_user_id: Identifier
    actor_roles: Annotated[list[Role], Field(min_length=1, max_length=len(Role))]
    action: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*){1,3}$", max_length=64)] = Field(
        description="<object>.<verb>, e.g. payout.approve, round.resolve_dispute"
    )
    target_type: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
    target_id: Identifier
    reason: Reason | None = None
    before: Summary = Field(default_factory=dict)
    after: Summary = Field(default_factory=dict)
    service: ServiceName
    occurred_at: AwareDatetime

    @model_validator(mode="after")
    def _check(self) -> AdminActionRecorded:
        if len(set(self.actor_roles)) != len(self.actor_roles):
            raise ValueError("actor_roles must not repeat a role")
        return self


__all__ = ["AdminActionRecorded", "Role"]
