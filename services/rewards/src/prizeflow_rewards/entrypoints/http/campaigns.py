"""Campaigns and their pools (admin; staff read): create, list, fund, pause, resume, close, release held rounds."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED
from pydantic import Field

from prizeflow_contracts.ids import Identifier, Reason
from prizeflow_contracts.money import AssetCode, PositiveMinorUnits
from prizeflow_rewards.application.campaigns import ChangeCampaignStatus, CloseCampaign, CreateCampaign, FundCampaign
from prizeflow_rewards.application.held_rounds import ReleaseHeldRounds
from prizeflow_rewards.domain.campaigns import CampaignStatus
from prizeflow_rewards.entrypoints.http.common import ADMIN, STAFF, Body, Queries, principal
from prizeflow_runtime.admin_http import correlation_id_of
from prizeflow_runtime.params import IdentifierPath


class CampaignIn(Body):
    campaign_id: Identifier
    name: Annotated[str, Field(min_length=1, max_length=200)]
    asset: AssetCode
    low_threshold: PositiveMinorUnits | None = None


class FundIn(Body):
    amount: PositiveMinorUnits
    reference: Identifier = Field(description="Funding reference; the same reference funds once")


class CloseIn(Body):
    reason: Reason


class CampaignsController(Controller):
    path = "/campaigns"
    tags = ["campaigns"]  # noqa: RUF012 - Litestar reads it as a class attribute

    @post("/", guards=ADMIN, status_code=HTTP_201_CREATED)
    async def create(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[CampaignIn],
        create_campaign: NamedDependency[CreateCampaign],
    ) -> dict[str, Any]:
        created = await create_campaign(
            principal(request),
            campaign_id=data.campaign_id,
            name=data.name,
            asset=data.asset,
            low_threshold=data.low_threshold,
            correlation_id=correlation_id_of(request),
        )
        return created.figures

    @get("/", guards=STAFF)
    async def list_all(self, queries: Queries) -> list[dict[str, Any]]:
        return await queries.campaigns()

    @get("/{campaign_id:str}", guards=STAFF)
    async def show(self, campaign_id: IdentifierPath, queries: Queries) -> dict[str, Any]:
        return await queries.campaign(campaign_id)

    @post("/{campaign_id:str}/fund", guards=ADMIN, status_code=HTTP_200_OK)
    async def fund(
        self,
        request: Request[Any, Any, Any],
        campaign_id: IdentifierPath,
        data: JSONBody[FundIn],
        fund_campaign: NamedDependency[FundCampaign],
    ) -> dict[str, Any]:
        funded = await fund_campaign(
            principal(request),
            campaign_id=campaign_id,
            amount=data.amount,
            reference=data.reference,
            correlation_id=correlation_id_of(request),
        )
        return {**funded.figures, "applied": funded.applied}

    @post("/{campaign_id:str}/pause", guards=ADMIN, status_code=HTTP_200_OK)
    async def pause(
        self,
        request: Request[Any, Any, Any],
        campaign_id: IdentifierPath,
        change_status: NamedDependency[ChangeCampaignStatus],
    ) -> dict[str, Any]:
        return await _status(request, campaign_id, CampaignStatus.PAUSED, change_status)

    @post("/{campaign_id:str}/resume", guards=ADMIN, status_code=HTTP_200_OK)
    async def resume(
        self,
        request: Request[Any, Any, Any],
        campaign_id: IdentifierPath,
        change_status: NamedDependency[ChangeCampaignStatus],
    ) -> dict[str, Any]:
        return await _status(request, campaign_id, CampaignStatus.ACTIVE, change_status)

    @post("/{campaign_id:str}/close", guards=ADMIN, status_code=HTTP_200_OK)
    async def close(
        self,
        request: Request[Any, Any, Any],
        campaign_id: IdentifierPath,
        data: JSONBody[CloseIn],
        close_campaign: NamedDependency[CloseCampaign],
    ) -> dict[str, Any]:
        """Close for good: the pool's free remainder goes back to the treasury (one `pool_sweep` transfer)."""
        done = await close_campaign(
            principal(request), campaign_id=campaign_id, reason=data.reason, correlation_id=correlation_id_of(request)
        )
        transfer = str(done.transfer_id) if done.transfer_id else None
        return {**done.figures, "swept": done.swept, "transfer_id": transfer, "changed": done.changed}

    @post("/{campaign_id:str}/held/release", guards=ADMIN, status_code=HTTP_200_OK)
    async def release_held(
        self,
        request: Request[Any, Any, Any],
        campaign_id: IdentifierPath,
        release_held: NamedDependency[ReleaseHeldRounds],
    ) -> dict[str, Any]:
        return await release_held(
            principal(request), campaign_id=campaign_id, correlation_id=correlation_id_of(request)
        )


async def _status(
    request: Request[Any, Any, Any], campaign_id: str, target: CampaignStatus, change_status: ChangeCampaignStatus
) -> dict[str, Any]:
    changed = await change_status(
        principal(request), campaign_id=campaign_id, target=target, correlation_id=correlation_id_of(request)
    )
    return changed.figures


__all__ = ["CampaignsController"]
