"""Operators' API: list recent deliveries, read one (with its body), re-publish one (audited).

Reading needs ops or admin; so does re-publishing, which cannot double-apply anything (consumers dedup on
the provider event id) and is audited with its reason. Lists never carry bodies; headers are never stored.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromQuery, JSONBody, QueryParameter, SkipValidation
from pydantic import BaseModel, ConfigDict, Field

from prizeflow_runtime.auth import Principal, Role, require_roles
from prizeflow_runtime.errors import ErrorKind, UseCaseError
from prizeflow_runtime.params import SerialPath
from prizeflow_webhooks.application.ports import DeliveryQueries
from prizeflow_webhooks.application.republish import Actor, RepublishDelivery
from prizeflow_webhooks.domain.deliveries import DeliveryOutcome

OPERATORS = require_roles(Role.ADMIN, Role.OPS)
Queries = NamedDependency[SkipValidation[DeliveryQueries]]  # a Protocol: the composition root vouches for it
# What the `outcome` filter takes: what is stored (a duplicate is never stored).
STORED_OUTCOMES = {"published": "published", DeliveryOutcome.IGNORED.value: "ignored"}


class RepublishRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    reason: Annotated[str, Field(min_length=1, max_length=1000)]


def _actor(request: Request[Any, Any, Any]) -> Actor:
    principal = request.user
    assert isinstance(principal, Principal)
    return Actor(user_id=principal.user_id, roles=tuple(sorted(r.value for r in principal.roles)))


def _cursor(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    if not cursor.isdigit() or len(cursor) > 19:
        raise UseCaseError(ErrorKind.BAD_REQUEST, "invalid_cursor", "cursor: the next_cursor of a previous page")
    return int(cursor)


class DeliveriesController(Controller):
    path = "/admin/deliveries"
    tags = ["deliveries"]  # noqa: RUF012 - Litestar reads this class attribute as is

    @get("/", guards=[OPERATORS], summary="Recent deliveries, newest first (never their bodies)")
    async def list_deliveries(
        self,
        queries: Queries,
        *,
        provider: FromQuery[str | None] = None,
        outcome: Annotated[str | None, QueryParameter(pattern=r"^(published|ignored)$")] = None,
        cursor: FromQuery[str | None] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 50,
    ) -> dict[str, Any]:
        page = await queries.list_deliveries(
            provider=provider,
            outcome=STORED_OUTCOMES.get(outcome) if outcome else None,
            before_id=_cursor(cursor),
            limit=limit,
        )
        return {"items": page.items, "next_cursor": page.next_cursor}

    @get("/{delivery_id:str}", guards=[OPERATORS], summary="One delivery with its raw body and published event")
    async def get_delivery(self, queries: Queries, delivery_id: SerialPath) -> dict[str, Any]:
        found = await queries.get_delivery(delivery_id)
        if found is None:
            raise UseCaseError(ErrorKind.NOT_FOUND, "delivery_not_found", f"delivery {delivery_id} not found")
        return found

    @post(
        "/{delivery_id:str}/republish",
        guards=[OPERATORS],
        status_code=200,
        summary="Publish a stored delivery's event again, with a new envelope id (audited)",
    )
    async def republish(
        self,
        request: Request[Any, Any, Any],
        republish_delivery: NamedDependency[RepublishDelivery],
        delivery_id: SerialPath,
        data: JSONBody[RepublishRequest],
    ) -> dict[str, Any]:
        return await republish_delivery(delivery_id, reason=data.reason, actor=_actor(request))


__all__ = ["DeliveriesController", "RepublishRequest"]
