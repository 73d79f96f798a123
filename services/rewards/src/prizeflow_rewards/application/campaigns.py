"""Campaigns and their reward pools: create, fund (treasury → pool), pause, resume, close."""

from __future__ import annotations

from dataclasses import dataclass, field

from prizeflow_rewards.application.common import Clock, audit, count_transfers, ledger_refusal, utcnow
from prizeflow_rewards.application.ports import Ledger, Stores, Tx
from prizeflow_rewards.domain import accounts
from prizeflow_rewards.domain.campaigns import (
    STATUS_TRANSITIONS,
    Campaign,
    CampaignStatus,
    PoolFigures,
    low_threshold,
)
from prizeflow_rewards.domain.ledger import LedgerError, Transfer, TransferKind
from prizeflow_rewards.metrics import RewardsMetrics
from prizeflow_runtime.auth import Principal
from prizeflow_runtime.errors import ErrorKind, UseCaseError


class CampaignError(UseCaseError):
    """A campaign action that cannot proceed; `code` is stable (problem details)."""


def campaign_not_found(campaign_id: str) -> CampaignError:
    return CampaignError(ErrorKind.NOT_FOUND, "campaign_not_found", f"no campaign {campaign_id}")


@dataclass
class CreateCampaign:
    source: str
    clock: Clock = utcnow
    stores: Stores = field(kw_only=True)

    async def __call__(
        self,
        tx: Tx,
        actor: Principal,
        *,
        campaign_id: str,
        name: str,
        asset: str,
        low_threshold: int | None,
        correlation_id: str,
    ) -> Campaign:
        campaign = Campaign(campaign_id, name, asset, CampaignStatus.ACTIVE, low_threshold)
        if not await self.stores.campaigns.create(tx, campaign, created_by=actor.user_id):
            raise CampaignError(ErrorKind.CONFLICT, "campaign_exists", f"campaign {campaign_id} already exists")
        await audit(
            self.stores.outbox,
            tx,
            source=self.source,
            actor=actor,
            action="campaign.create",
            target_type="campaign",
            target_id=campaign_id,
            correlation_id=correlation_id,
            after={"name": name, "asset": asset, "status": "active", "low_threshold": low_threshold or ""},
        )
        return campaign


@dataclass
class FundCampaign:
    """treasury → pool. `reference` is the business key: funding twice with one reference moves money once."""

    ledger: Ledger
    source: str
    metrics: RewardsMetrics | None = None
    stores: Stores = field(kw_only=True)

    async def __call__(
        self, tx: Tx, actor: Principal, *, campaign_id: str, amount: int, reference: str, correlation_id: str
    ) -> bool:
        campaign = await self.stores.campaigns.get(tx, campaign_id, lock=True)
        if campaign is None:
            raise campaign_not_found(campaign_id)
        if campaign.status is CampaignStatus.CLOSED:
            raise CampaignError(ErrorKind.CONFLICT, "campaign_closed", f"campaign {campaign_id} is closed")
        t = Transfer.of(
            accounts.treasury(campaign.asset),
            accounts.pool(campaign.id, campaign.asset),
            amount,
            TransferKind.CAMPAIGN_FUNDING,
            campaign.id,
            reference,
        )
        try:
            result = await self.ledger.apply(tx, [t])
        except LedgerError as err:
            refusal = ledger_refusal(err)
            raise CampaignError(refusal.kind, refusal.code, refusal.detail) from err
        count_transfers(self.metrics, result)
        if result.applied:
            await audit(
                self.stores.outbox,
                tx,
                source=self.source,
                actor=actor,
                action="campaign.fund",
                target_type="campaign",
                target_id=campaign_id,
                correlation_id=correlation_id,
                after={"amount": amount, "asset": campaign.asset, "reference": reference, "transfer_id": t.id},
            )
        return bool(result.applied)


@dataclass
class ChangeCampaignStatus:
    source: str
    stores: Stores = field(kw_only=True)

    async def __call__(
        self, tx: Tx, actor: Principal, *, campaign_id: str, target: CampaignStatus, correlation_id: str
    ) -> Campaign:
        campaign = await self.stores.campaigns.get(tx, campaign_id, lock=True)
        if campaign is None:
            raise campaign_not_found(campaign_id)
        if campaign.status is target:
            return campaign
        if target not in STATUS_TRANSITIONS[campaign.status]:
            raise CampaignError(
                ErrorKind.CONFLICT,
                "illegal_transition",
                f"campaign {campaign_id} cannot go {campaign.status.value} → {target.value}",
            )
        await self.stores.campaigns.set_status(tx, campaign_id, target)
        verb = {CampaignStatus.ACTIVE: "resume", CampaignStatus.PAUSED: "pause", CampaignStatus.CLOSED: "close"}[target]
        await audit(
            self.stores.outbox,
            tx,
            source=self.source,
            actor=actor,
            action=f"campaign.{verb}",
            target_type="campaign",
            target_id=campaign_id,
            correlation_id=correlation_id,
            before={"status": campaign.status.value},
            after={"status": target.value},
        )
        return Campaign(campaign.id, campaign.name, campaign.asset, target, campaign.low_threshold)


__all__ = [
    "STATUS_TRANSITIONS",
    "Campaign",
    "CampaignError",
    "CampaignStatus",
    "ChangeCampaignStatus",
    "CreateCampaign",
    "FundCampaign",
    "PoolFigures",
    "campaign_not_found",
    "low_threshold",
]
