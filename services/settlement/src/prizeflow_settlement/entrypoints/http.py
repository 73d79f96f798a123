"""Admin HTTP API: list and inspect rounds, resolve or void one (admin only, audited)."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromQuery, JSONBody, QueryParameter, SkipValidation
from pydantic import BaseModel, ConfigDict, Field, model_validator

from prizeflow_contracts.events.game import MAX_PLACEMENTS, Placement, check_placements
from prizeflow_contracts.events.settlement import RoundState
from prizeflow_runtime.auth import Principal, Role, require_roles
from prizeflow_runtime.params import IdentifierPath
from prizeflow_settlement.application.admin import Actor, ResolveRound, RoundNotFoundError, VoidRound
from prizeflow_settlement.application.cursor import decode_cursor
from prizeflow_settlement.application.ports import RoundQueries
from prizeflow_settlement.domain.round import Round

# Room for the "admin: " prefix inside the contract's 1000-char Reason.
AdminReason = Annotated[str, Field(min_length=1, max_length=900)]
# A Protocol cannot be validated as a value: the composition root vouches for what it injects.
Queries = NamedDependency[SkipValidation[RoundQueries]]


class ResolveRequest(BaseModel):
    """Results an admin vouches for, and why."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    placements: Annotated[list[Placement], Field(min_length=1, max_length=MAX_PLACEMENTS)]
    reason: AdminReason

    @model_validator(mode="after")
    def _check(self) -> ResolveRequest:
        check_placements(self.placements)
        return self


class VoidRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    reason: AdminReason


def _actor(request: Request[Any, Any, Any]) -> Actor:
    principal = request.user
    assert isinstance(principal, Principal)
    return Actor(user_id=principal.user_id, roles=tuple(sorted(r.value for r in principal.roles)))


def _view(r: Round) -> dict[str, Any]:
    return {
        "round_id": r.round_id,
        "state": r.state.value,
        "disputed": r.disputed,
        "hold_reason": r.hold_reason,
        "results_digest": r.results.digest if r.results else None,
    }


class RoundsController(Controller):
    path = "/rounds"
    tags = ["rounds"]  # noqa: RUF012  (Litestar reads a plain class attribute)

    @get("/", guards=[require_roles(Role.ADMIN, Role.OPS)], summary="List rounds (filter, cursor pagination)")
    async def list_rounds(
        self,
        queries: Queries,
        *,
        round_state: Annotated[RoundState | None, QueryParameter(name="state")] = None,
        competition_id: FromQuery[str | None] = None,
        disputed: FromQuery[bool | None] = None,
        cursor: FromQuery[str | None] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 50,
    ) -> dict[str, Any]:
        after = None if cursor is None else decode_cursor(cursor)
        page = await queries.list_rounds(
            state=round_state, competition_id=competition_id, disputed=disputed, after=after, limit=limit
        )
        return {"items": page.items, "next_cursor": page.next_cursor}

    @get("/{round_id:str}", guards=[require_roles(Role.ADMIN, Role.OPS)], summary="One round with its history")
    async def get_round(self, queries: Queries, round_id: IdentifierPath) -> dict[str, Any]:
        found = await queries.get_round(round_id)
        if found is None:
            raise RoundNotFoundError(round_id)
        return found

    @post(
        "/{round_id:str}/resolve",
        guards=[require_roles(Role.ADMIN)],
        status_code=200,
        summary="Settle a disputed or stuck round with the given results (admin, audited)",
    )
    async def resolve(
        self,
        request: Request[Any, Any, Any],
        resolve_round: NamedDependency[ResolveRound],
        round_id: IdentifierPath,
        data: JSONBody[ResolveRequest],
    ) -> dict[str, Any]:
        resolved = await resolve_round(round_id, placements=data.placements, reason=data.reason, actor=_actor(request))
        return _view(resolved)

    @post(
        "/{round_id:str}/void",
        guards=[require_roles(Role.ADMIN)],
        status_code=200,
        summary="Void a round that is not final; entry fees are owed back (admin, audited)",
    )
    async def void(
        self,
        request: Request[Any, Any, Any],
        void_round: NamedDependency[VoidRound],
        round_id: IdentifierPath,
        data: JSONBody[VoidRequest],
    ) -> dict[str, Any]:
        return _view(await void_round(round_id, reason=data.reason, actor=_actor(request)))


__all__ = ["ResolveRequest", "RoundsController", "VoidRequest"]
