"""Who acts through a service's admin API, and the body an admin request's JSON is read into.

    actor = request_actor(request)      # the verified principal: id, roles, the request's correlation id
    class DecisionBody(StrictBody): ... # frozen, no field it does not declare

A context of a deployable that serves admin routes uses these rather than another context's HTTP layer.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from litestar import Request
from pydantic import BaseModel, ConfigDict

from prizeflow_contracts.ids import is_identifier
from prizeflow_runtime.principal import Principal


@dataclass(frozen=True, slots=True)
class RequestActor:
    user_id: str
    roles: frozenset[str]
    correlation_id: str


def request_actor(request: Request[Any, Any, Any], *, prefix: str = "admin") -> RequestActor:
    """The request's verified principal, with its `X-Correlation-Id` when that is an identifier, else a new one."""
    principal = request.user
    if not isinstance(principal, Principal):
        raise TypeError("an admin route without authentication: the runtime's app authenticates every one")
    given = request.headers.get("x-correlation-id", "")
    cid = given if is_identifier(given) else f"{prefix}-{uuid.uuid4().hex}"
    return RequestActor(principal.user_id, frozenset(r.value for r in principal.roles), cid)


class StrictBody(BaseModel):
    """An admin request's JSON body: frozen, and a field it does not declare is refused (422 naming it)."""

    model_config = ConfigDict(frozen=True, extra="forbid")


__all__ = ["RequestActor", "StrictBody", "request_actor"]
