"""Currency conversion (ADR 0015): a player asks for a quote; staff read the FX desk's positions and its daily
reconciliations, and run it now."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED
from pydantic import Field

from prizeflow_contracts.money import AssetCode, PositiveMinorUnits
from prizeflow_rewards.application.fx import IssueQuote, ReconcileFx
from prizeflow_rewards.application.ports import FxPosition
from prizeflow_rewards.entrypoints.http.common import PLAYER, STAFF, Body, Queries, own_or_staff, principal
from prizeflow_runtime.errors import ErrorKind, UseCaseError
from prizeflow_runtime.params import IdentifierPath


class QuoteIn(Body):
    source_asset: AssetCode = Field(description="What the wallet holds, e.g. USD")
    target_asset: AssetCode = Field(description="What the payout pays, e.g. INR")
    amount: PositiveMinorUnits = Field(description="Minor units of the source asset to claim")


def position_view(p: FxPosition) -> dict[str, Any]:
    return {
        "asset": p.asset,
        "ledger_position": p.ledger,
        "booked_position": p.booked,
        "difference": p.difference,
        "committed": p.committed,
    }


class FxController(Controller):
    path = "/"
    tags = ["fx"]  # noqa: RUF012 - Litestar reads it as a class attribute

    @post("/fx/quotes", guards=PLAYER, status_code=HTTP_201_CREATED)
    async def quote(
        self, request: Request[Any, Any, Any], data: JSONBody[QuoteIn], issue_quote: NamedDependency[IssueQuote]
    ) -> dict[str, Any]:
        """A quote for the signed-in player: rate, spread, what the payout pays and until when. A claim naming its
        `quote_id` before `expires_at` locks it."""
        p = principal(request)
        quote = await issue_quote(p, p.user_id, source=data.source_asset, target=data.target_asset, amount=data.amount)
        return quote.view()

    @get("/fx/quotes/{quote_id:str}")
    async def show(self, request: Request[Any, Any, Any], quote_id: IdentifierPath, queries: Queries) -> dict[str, Any]:
        quote = await queries.quote(quote_id)
        if quote is None:
            raise UseCaseError(ErrorKind.NOT_FOUND, "not_found", f"no quote {quote_id}")
        own_or_staff(request, quote.player_id)
        return quote.view()

    @get("/admin/fx/positions", guards=STAFF)
    async def positions(
        self, queries: Queries, days: Annotated[int, QueryParameter(ge=1, le=366)] = 30
    ) -> dict[str, Any]:
        """Each asset's FX account: its ledger position, what its transfers add up to, what converted claims not
        yet paid will move; and the daily reconciliations."""
        positions, runs = await queries.fx_positions(limit=days * 8)
        return {
            "positions": [position_view(p) for p in positions],
            "reconciliations": [
                {
                    "day": r.day.isoformat(),
                    "asset": r.asset,
                    "ledger_position": r.ledger,
                    "booked_position": r.booked,
                    "difference": r.difference,
                    "checked_at": r.checked_at.isoformat(),
                }
                for r in runs
            ],
        }

    @post("/admin/fx/reconcile", guards=STAFF, status_code=HTTP_200_OK)
    async def reconcile(self, reconcile_fx: NamedDependency[ReconcileFx]) -> dict[str, Any]:
        """Reconcile the FX accounts now (the daily job's pass): today's row per asset."""
        return {"positions": [position_view(p) for p in await reconcile_fx()]}


__all__ = ["FxController", "QuoteIn"]
