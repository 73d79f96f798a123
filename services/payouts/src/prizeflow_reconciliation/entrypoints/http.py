"""Reconciliation's admin API: runs, the exception queue and the decisions on it (the CSV exports: `exports_http.py`).

Roles: reading and running need admin, approver or ops; taking an exception and acknowledging it (no money moves)
need ops, approver or admin; a money action is proposed by one of them and executed by a second, different person
holding approver or admin (application/queue.py decides; PostgreSQL refuses a money resolution with
fewer than two people).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, QueryParameter, SkipValidation
from pydantic import BaseModel, ConfigDict

from prizeflow_contracts.ids import Identifier, IsoInstant, ProviderRef, Reason, is_identifier
from prizeflow_reconciliation.application.ports import Actor
from prizeflow_reconciliation.application.ports import ReconQueries as ReconQueriesPort
from prizeflow_reconciliation.application.queue import ExceptionQueue
from prizeflow_reconciliation.application.runs import ReconcileWindows
from prizeflow_reconciliation.domain import Action
from prizeflow_reconciliation.statements import ReconError
from prizeflow_runtime.auth import Principal, Role, require_roles
from prizeflow_runtime.errors import ErrorKind
from prizeflow_runtime.params import IdentifierPath, SerialPath

ReconRuns = NamedDependency[ReconcileWindows]
ReconQueue = NamedDependency[ExceptionQueue]
ReconQueries = NamedDependency[SkipValidation[ReconQueriesPort]]  # a Protocol: nothing to check at run time

READERS = require_roles(Role.ADMIN, Role.APPROVER, Role.OPS)
DECIDERS = require_roles(Role.OPS, Role.APPROVER, Role.ADMIN)


class _Body(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def actor_of(request: Request[Any, Any, Any]) -> Actor:
    principal = request.user
    assert isinstance(principal, Principal)
    given = request.headers.get("x-correlation-id", "")
    cid = given if is_identifier(given) else f"admin-{uuid.uuid4().hex}"
    return Actor(principal.user_id, frozenset(r.value for r in principal.roles), cid)


def summary(row: dict[str, Any]) -> dict[str, Any]:
    """A row as the admin API shows it (timestamps in ISO 8601)."""
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}


class RunBody(_Body):
    provider: Identifier
    since: IsoInstant
    until: IsoInstant


class TakeBody(_Body):
    reason: Reason | None = None


class ResolveParams(_Body):
    withdrawal_id: ProviderRef | None = None


class ResolveBody(_Body):
    action: Action
    reason: Reason
    params: ResolveParams = ResolveParams()


def _out(row: dict[str, Any] | None, what: str, key: object) -> dict[str, Any]:
    if row is None:
        raise ReconError(ErrorKind.NOT_FOUND, f"{what}_not_found", f"no {what} {key}")
    return summary(row)


async def _exception(queries: ReconQueriesPort, exception_id: int) -> dict[str, Any]:
    row = _out(await queries.exception(exception_id), "exception", exception_id)
    row["history"] = [summary(h) for h in row["history"]]
    return row


class ReconciliationController(Controller):
    path = "/reconciliation"
    tags = ["reconciliation"]  # noqa: RUF012 - Litestar reads this class attribute as is

    @post("/runs", guards=[READERS], status_code=200)
    async def run(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[RunBody],
        recon_runs: ReconRuns,
        recon_queries: ReconQueries,
    ) -> dict[str, Any]:
        """Reconcile one provider's window now (to completion); the same window again answers the same run."""
        principal = request.user
        assert isinstance(principal, Principal)
        run_id = await recon_runs.run(data.provider, data.since, data.until, requested_by=principal.user_id)
        return _out(await recon_queries.run(run_id), "run", run_id)

    @get("/runs", guards=[READERS])
    async def runs(
        self,
        recon_queries: ReconQueries,
        provider: Annotated[str | None, QueryParameter(max_length=64)] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 50,
    ) -> dict[str, Any]:
        return {"runs": [summary(r) for r in await recon_queries.runs(provider=provider, limit=limit)]}

    @get("/runs/{run_id:str}", guards=[READERS])
    async def get_run(self, run_id: IdentifierPath, recon_queries: ReconQueries) -> dict[str, Any]:
        return _out(await recon_queries.run(run_id), "run", run_id)

    @get("/exceptions", guards=[READERS])
    async def exceptions(  # noqa: PLR0917 - Litestar maps each query parameter to an argument
        self,
        recon_queries: ReconQueries,
        state_filter: Annotated[
            str | None, QueryParameter(name="state", pattern=r"^(open|investigating|resolved)$")
        ] = None,
        kind: Annotated[str | None, QueryParameter(pattern=r"^[a-z_]{1,40}$")] = None,
        provider: Annotated[str | None, QueryParameter(max_length=64)] = None,
        severity: Annotated[str | None, QueryParameter(pattern=r"^(critical|high|medium)$")] = None,
        owner: Annotated[str | None, QueryParameter(max_length=128)] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
        offset: Annotated[int, QueryParameter(ge=0, le=1_000_000)] = 0,
    ) -> dict[str, Any]:
        filters = {"state": state_filter, "kind": kind, "provider": provider, "severity": severity, "owner": owner}
        rows = await recon_queries.exceptions(filters, limit=limit, offset=offset)
        return {"exceptions": [summary(r) for r in rows]}

    @get("/exceptions/{exception_id:str}", guards=[READERS])
    async def exception(self, exception_id: SerialPath, recon_queries: ReconQueries) -> dict[str, Any]:
        return await _exception(recon_queries, exception_id)

    @post("/exceptions/{exception_id:str}/take", guards=[DECIDERS], status_code=200)
    async def take(
        self,
        request: Request[Any, Any, Any],
        exception_id: SerialPath,
        data: JSONBody[TakeBody],
        recon_queue: ReconQueue,
        recon_queries: ReconQueries,
    ) -> dict[str, Any]:
        await recon_queue.take(exception_id, actor_of(request), data.reason)
        return await _exception(recon_queries, exception_id)

    @post("/exceptions/{exception_id:str}/resolve", guards=[DECIDERS], status_code=200)
    async def resolve(
        self,
        request: Request[Any, Any, Any],
        exception_id: SerialPath,
        data: JSONBody[ResolveBody],
        recon_queue: ReconQueue,
        recon_queries: ReconQueries,
    ) -> Response[dict[str, Any]]:
        """200 with the resolved exception, or 202 while a money action waits for its second person."""
        params = {k: v for k, v in data.params.model_dump().items() if v is not None}
        outcome = await recon_queue.resolve(exception_id, actor_of(request), data.action, data.reason, params)
        body = await _exception(recon_queries, exception_id)
        return Response(body, status_code=202 if outcome == "proposed" else 200)


__all__ = ["DECIDERS", "READERS", "ReconciliationController", "actor_of", "summary"]
