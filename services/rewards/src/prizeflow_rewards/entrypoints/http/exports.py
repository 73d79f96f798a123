"""Finance exports, streamed CSV (`application/exports.py`): the ledger's transfers of a period, and a player's
wallet movements with their running balance. The request is checked before the first byte."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.params import FromQuery
from litestar.response import Stream

from prizeflow_rewards.application.exports import ExportLedger
from prizeflow_rewards.entrypoints.http.common import LEDGER_READERS, PLAYER, principal
from prizeflow_runtime.params import IdentifierPath

Exports = NamedDependency[ExportLedger]


def csv_response(body: AsyncIterator[bytes], filename: str) -> Stream:
    return Stream(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"},
    )


class ExportsController(Controller):
    path = "/v1"
    tags = ["exports"]  # noqa: RUF012 - Litestar reads it as a class attribute

    @get("/admin/exports/ledger.csv", guards=LEDGER_READERS, media_type="text/csv")
    async def ledger_csv(
        self,
        exports: Exports,
        since: FromQuery[str | None] = None,
        until: FromQuery[str | None] = None,
        asset: FromQuery[str | None] = None,
    ) -> Stream:
        query = exports.ledger_query(since=since, until=until, asset=asset)
        return csv_response(exports.ledger_csv(query), "ledger.csv")

    @get("/admin/exports/players/{player_id:str}/history.csv", guards=LEDGER_READERS, media_type="text/csv")
    async def player_history_csv(
        self,
        player_id: IdentifierPath,
        exports: Exports,
        since: FromQuery[str | None] = None,
        until: FromQuery[str | None] = None,
    ) -> Stream:
        period = exports.history_period(since=since, until=until)
        return csv_response(exports.history_csv(player_id, period), "history.csv")

    @get("/me/history.csv", guards=PLAYER, media_type="text/csv")
    async def own_history_csv(
        self,
        request: Request[Any, Any, Any],
        exports: Exports,
        since: FromQuery[str | None] = None,
        until: FromQuery[str | None] = None,
    ) -> Stream:
        """The signed-in player's own movements: the player is the token's subject, never a parameter."""
        period = exports.history_period(since=since, until=until)
        return csv_response(exports.history_csv(principal(request).user_id, period), "history.csv")


__all__ = ["ExportsController"]
