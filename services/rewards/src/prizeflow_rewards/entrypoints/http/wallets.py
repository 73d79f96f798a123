"""Wallets (a player reads their own; admin and ops all): balances, history, claims, an admin's audited credit; and
the game's (or ops') risk flag on a player."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, get, post, put
from litestar.di import NamedDependency
from litestar.params import FromQuery, JSONBody, QueryParameter
from litestar.status_codes import HTTP_200_OK
from pydantic import Field

from prizeflow_contracts.ids import Identifier, Reason
from prizeflow_contracts.money import AssetCode, PositiveMinorUnits
from prizeflow_rewards.application.wallets import SetRiskFlag, TopUp
from prizeflow_rewards.domain.ledger import TransferKind
from prizeflow_rewards.entrypoints.http.common import ADMIN, STAFF, Body, Queries, claim_view, own_or_staff, principal
from prizeflow_runtime.admin_http import correlation_id_of
from prizeflow_runtime.params import IdentifierPath


class TopUpIn(Body):
    asset: AssetCode
    amount: PositiveMinorUnits
    provider: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
    reference: Identifier


class RiskFlagIn(Body):
    flagged: Annotated[bool, Field(strict=True)]  # true or false, never "true" or 1
    reason: Reason | None = None


class WalletsController(Controller):
    path = "/wallets"
    tags = ["wallets"]  # noqa: RUF012 - Litestar reads it as a class attribute

    @get("/{player_id:str}")
    async def balances(
        self, request: Request[Any, Any, Any], player_id: IdentifierPath, queries: Queries
    ) -> dict[str, Any]:
        own_or_staff(request, player_id)
        return await queries.wallet(player_id)

    @get("/{player_id:str}/transactions")
    async def history(  # noqa: PLR0917 - Litestar injects query parameters by name
        self,
        request: Request[Any, Any, Any],
        player_id: IdentifierPath,
        queries: Queries,
        asset: FromQuery[str | None] = None,
        kind: FromQuery[TransferKind | None] = None,
        cursor: FromQuery[str | None] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
    ) -> dict[str, Any]:
        own_or_staff(request, player_id)
        return await queries.wallet_history(player_id, asset=asset, kind=kind, cursor=cursor, limit=limit)

    @get("/{player_id:str}/claims")
    async def claims(
        self,
        request: Request[Any, Any, Any],
        player_id: IdentifierPath,
        queries: Queries,
        limit: Annotated[int, QueryParameter(ge=1, le=100)] = 20,
    ) -> dict[str, Any]:
        """The player's claims (payout requests), newest first, each as `GET /claims/{claim_id}` shows it."""
        own_or_staff(request, player_id)
        found = await queries.player_claims(player_id, limit=limit)
        return {"items": [claim_view(request, c) for c in found]}

    @post("/{player_id:str}/top-ups", guards=ADMIN, status_code=HTTP_200_OK)
    async def top_up(
        self,
        request: Request[Any, Any, Any],
        player_id: IdentifierPath,
        data: JSONBody[TopUpIn],
        top_up: NamedDependency[TopUp],
    ) -> dict[str, Any]:
        credited = await top_up(
            principal(request),
            player_id=player_id,
            asset=data.asset,
            amount=data.amount,
            provider=data.provider,
            reference=data.reference,
            correlation_id=correlation_id_of(request),
        )
        return {"transfer_id": credited.transfer_id, "applied": credited.applied, "balances": credited.balances}


class PlayersController(Controller):
    path = "/players"
    tags = ["players"]  # noqa: RUF012 - Litestar reads it as a class attribute

    @put("/{player_id:str}/risk-flag", guards=STAFF)
    async def risk_flag(
        self,
        request: Request[Any, Any, Any],
        player_id: IdentifierPath,
        data: JSONBody[RiskFlagIn],
        set_risk_flag: NamedDependency[SetRiskFlag],
    ) -> dict[str, Any]:
        await set_risk_flag(
            principal(request),
            player_id=player_id,
            flagged=data.flagged,
            reason=data.reason,
            correlation_id=correlation_id_of(request),
        )
        return {"player_id": player_id, "flagged": data.flagged}


__all__ = ["PlayersController", "WalletsController"]
