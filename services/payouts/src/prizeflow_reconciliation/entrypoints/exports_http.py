"""Finance exports (streamed CSV): every payout created in a period, and the reconciliation exceptions opened in one.
The request is checked before the first byte; a refusal is problem details, never a cut CSV."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import FromQuery, QueryParameter
from litestar.response import Stream

from prizeflow_reconciliation.application.exports import ExportPayouts
from prizeflow_reconciliation.application.ports import ReconQueries as ReconQueriesPort
from prizeflow_reconciliation.entrypoints.http import READERS, ReconQueries
from prizeflow_runtime.csv_stream import ExportPeriod, Row, csv_stream

PayoutExports = NamedDependency[ExportPayouts]


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
    queries: ReconQueriesPort, since: datetime, until: datetime, provider: str | None
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


class PayoutExportsController(Controller):
    """Finance exports (streamed CSV): the request is checked before the first byte; a refusal is a problem."""

    path = "/v1/admin/exports"
    tags = ["exports"]  # noqa: RUF012

    @get("/payouts.csv", guards=[READERS], media_type="text/csv")
    async def payouts_csv(
        self,
        payout_exports: PayoutExports,
        since: FromQuery[str | None] = None,
        until: FromQuery[str | None] = None,
        provider: FromQuery[str | None] = None,
        asset: FromQuery[str | None] = None,
    ) -> Stream:
        """Every payout created in [since, until): state, amounts in minor units, provider, fee; never a
        destination's address (its type only)."""
        query = payout_exports.query(since=since, until=until, provider=provider, asset=asset)
        return Stream(
            payout_exports.csv(query),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="payouts.csv"', "Cache-Control": "no-store"},
        )


__all__ = ["PayoutExportsController", "ReconciliationExportController"]
