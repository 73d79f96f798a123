"""HTTP routes the runtime gives services: the dead letters of a consuming service (ops and admins), and the
timeline of one flow in every service with an authenticated API (ops, admins and approvers)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromQuery, JSONBody, QueryParameter
from pydantic import BaseModel, ConfigDict

from prizeflow_contracts.ids import Reason, is_identifier
from prizeflow_runtime.auth import Principal, Role, require_roles
from prizeflow_runtime.dead_letters import DeadLetterAdmin, DeadLetterFilter
from prizeflow_runtime.params import IdentifierPath, SerialPath
from prizeflow_runtime.timeline import Timeline

OPERATORS = require_roles(Role.ADMIN, Role.OPS)
TIMELINE_READERS = require_roles(Role.ADMIN, Role.OPS, Role.APPROVER)


def correlation_id_of(request: Request[Any, Any, Any], prefix: str = "admin") -> str:
    """The caller's `X-Correlation-Id` when it is a valid one, else a new id for this action's flow."""
    given = request.headers.get("x-correlation-id", "")
    return given if is_identifier(given) else f"{prefix}-{uuid.uuid4().hex}"


def principal_of(request: Request[Any, Any, Any]) -> Principal:
    principal = request.user
    if not isinstance(principal, Principal):  # the auth middleware guarantees it on every guarded route
        raise TypeError("no authenticated principal on this request")
    return principal


class DecisionBody(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    reason: Reason


class DeadLettersController(Controller):
    """What this service's consumers refused: list, inspect, redrive (apply it now) or discard, audited."""

    path = "/admin/dead-letters"
    tags = ["dead letters"]  # noqa: RUF012 - Litestar reads this class attribute as is

    @get("/", guards=[OPERATORS])
    async def list_dead_letters(  # noqa: PLR0917 - Litestar maps each query parameter to an argument
        self,
        dead_letters: NamedDependency[DeadLetterAdmin],
        consumer: FromQuery[str | None] = None,
        status_filter: Annotated[
            str | None, QueryParameter(name="status", pattern="^(open|redriven|discarded)$")
        ] = "open",
        reason: FromQuery[str | None] = None,
        after: Annotated[int | None, QueryParameter(ge=0)] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
    ) -> dict[str, Any]:
        items = await dead_letters.list(
            DeadLetterFilter(consumer=consumer, status=status_filter, reason=reason, after_id=after, limit=limit)
        )
        return {"items": items, "next_after": items[-1]["id"] if len(items) == limit else None}

    @get("/{dead_letter_id:str}", guards=[OPERATORS])
    async def get_dead_letter(
        self, dead_letter_id: SerialPath, dead_letters: NamedDependency[DeadLetterAdmin]
    ) -> dict[str, Any]:
        return await dead_letters.get(dead_letter_id)

    @post("/{dead_letter_id:str}/redrive", guards=[OPERATORS], status_code=200)
    async def redrive(
        self,
        request: Request[Any, Any, Any],
        dead_letter_id: SerialPath,
        data: JSONBody[DecisionBody],
        dead_letters: NamedDependency[DeadLetterAdmin],
    ) -> dict[str, Any]:
        return await dead_letters.redrive(
            dead_letter_id,
            actor=principal_of(request),
            reason=data.reason,
            correlation_id=correlation_id_of(request),
        )

    @post("/{dead_letter_id:str}/discard", guards=[OPERATORS], status_code=200)
    async def discard(
        self,
        request: Request[Any, Any, Any],
        dead_letter_id: SerialPath,
        data: JSONBody[DecisionBody],
        dead_letters: NamedDependency[DeadLetterAdmin],
    ) -> dict[str, Any]:
        return await dead_letters.discard(
            dead_letter_id,
            actor=principal_of(request),
            reason=data.reason,
            correlation_id=correlation_id_of(request),
        )


class TimelineController(Controller):
    """Everything this service knows of one flow, in time order (`prizeflow_runtime.timeline`)."""

    path = "/admin/timeline"
    tags = ["timeline"]  # noqa: RUF012 - Litestar reads this class attribute as is

    @get("/{correlation_id:str}", guards=[TIMELINE_READERS], summary="One flow's entries here, sorted by time")
    async def timeline(self, correlation_id: IdentifierPath, timeline: NamedDependency[Timeline]) -> dict[str, Any]:
        return await timeline(correlation_id)


__all__ = ["DeadLettersController", "DecisionBody", "TimelineController", "correlation_id_of", "principal_of"]
