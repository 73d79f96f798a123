"""Reconciliation's admin API: runs, the exception queue, the decisions on it, and its CSV export.

Roles: reading and running need admin, approver or ops; taking an exception and acknowledging it (no money moves)
need ops, approver or admin; a money action is proposed by one of them and executed by a second, different person
holding approver or admin (application/reconciliation.py decides; PostgreSQL refuses a money resolution with
fewer than two people).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, QueryParameter, SkipValidation
from litestar.response import Stream
from pydantic import AwareDatetime

from prizeflow_contracts.ids import Identifier, ProviderRef, Reason
from prizeflow_payouts.adapters.reconciliation_pg import SqlReconQueries
from prizeflow_payouts.application.reconciliation import Reconciliation, ReconError
from prizeflow_payouts.domain.reconciliation import Action
from prizeflow_payouts.entrypoints.http import READERS, _actor, _Body, summary
from prizeflow_runtime.auth import Principal, Role, require_roles
from prizeflow_runtime.csv_stream import ExportPeriod, Row, csv_stream
from prizeflow_runtime.errors import ErrorKind
from prizeflow_runtime.params import IdentifierPath, SerialPath

Recon = NamedDependency[Reconciliation]
ReconQueries = NamedDependency[SkipValidation[SqlReconQueries]]

DECIDERS = require_roles(Role.OPS, Role.APPROVER, Role.ADMIN)


class RunBody(_Body):
    provider: Identifier
    since: AwareDatetime
    until: AwareDatetime


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


async def _exception(queries: SqlReconQueries, exception_id: int) -> dict[str, Any]:
    row = _out(await queries.exception(exception_id), "exception", exception_id)
    row["history"] = [summary(h) for h in row["history"]]
    return row


class ReconciliationController(Controller):
    path = "/reconciliation"
    tags = ["reconciliation"]  # noqa: RUF012 - Litestar reads this class attribute as is

    @post("/runs", guards=[READERS], status_code=200)
    async def run(
        self, request: Request[Any, Any, Any], data: JSONBody[RunBody], recon: Recon, recon_queries: ReconQueries
    ) -> dict[str, Any]:
        """Reconcile one provider's window now (to completion); the same window again answers the same run."""
        principal = request.user
        assert isinstance(principal, Principal)
        run_id = await recon.run(data.provider, data.since, data.until, requested_by=principal.user_id)
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
        recon: Recon,
        recon_queries: ReconQueries,
    ) -> dict[str, Any]:
        await recon.take(exception_id, _actor(request), data.reason)
        return await _exception(recon_queries, exception_id)

    @post("/exceptions/{exception_id:str}/resolve", guards=[DECIDERS], status_code=200)
    async def resolve(
        self,
        request: Request[Any, Any, Any],
        exception_id: SerialPath,
        data: JSONBody[ResolveBody],
        recon: Recon,
        recon_queries: ReconQueries,
    ) -> Response[dict[str, Any]]:
        """200 with the resolved exception, or 202 while a money action waits for its second person."""
        params = {k: v for k, v in data.params.model_dump().items() if v is not None}
        outcome = await recon.resolve(exception_id, _actor(request), data.action, data.reason, params)
        body = await _exception(recon_queries, exception_id)
        return Response(body, status_code=202 if outcome == "proposed" else 200)


class ReconciliationExportController(Controller):
    """The reconciliation results for finance, beside the other exports (`/v1/admin/exports/*.csv`)."""

    path = "/v1/admin/exports"
    tags = ["reconciliation"]  # noqa: RUF012 - Litestar reads this class attribute as is

    @get("/reconciliation.csv", guards=[READERS], media_type="text/csv")
    async def export(
        self,
        recon_queries: ReconQueries,
        since: Annotated[str | None, QueryParameter(max_length=64)] = None,
        until: Annotated[str | None, QueryParameter(max_length=64)] = None,
        provider: Annotated[str | None, QueryParameter(max_length=64)] = None,
    ) -> Stream:
        """Every exception opened in [since, until) as CSV, streamed (read and written a chunk at a time)."""
        period = ExportPeriod.parse(since, until)
        return Stream(
            csv_stream(_EXPORT_COLUMNS, _export_chunks(recon_queries, period.since, period.until, provider)),
            media_type="text/csv",
            headers={"content-disposition": 'attachment; filename="reconciliation.csv"'},
        )


_EXPORT_COLUMNS = (
    "id",
    "opened_at",
    "provider",
    "kind",
    "severity",
    "state",
    "payout_id",
    "asset",
    "amount",
    "owner",
    "resolution",
    "resolved_by",
    "resolved_at",
    "adjustment_id",
    "run_id",
)


async def _export_chunks(
    queries: SqlReconQueries, since: datetime, until: datetime, provider: str | None
) -> AsyncIterator[list[Row]]:
    async for chunk in queries.exceptions_opened(since, until, provider):
        yield [_export_row(row) for row in chunk]


def _export_row(row: dict[str, Any]) -> Row:
    resolution = row["resolution"] or {}
    return [
        row["id"],
        row["opened_at"],
        row["provider"],
        row["kind"],
        row["severity"],
        row["state"],
        row["payout_id"],
        row["asset"],
        row["amount"],
        row["owner"],
        resolution.get("action"),
        " ".join(resolution.get("resolved_by", [])),
        resolution.get("resolved_at"),
        row["adjustment_id"],
        row["run_id"],
    ]


__all__ = ["ReconciliationController", "ReconciliationExportController"]
