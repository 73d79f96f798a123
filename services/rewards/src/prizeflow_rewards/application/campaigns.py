"""Campaigns and their reward pools: create, fund (treasury → pool), pause, resume, close (pool → treasury).

Each runs in one transaction of its own (`uow.run`: again whole if it loses a deadlock) and answers with the
campaign's figures as that transaction leaves them, with its audit event staged in it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace

from prizeflow_rewards.application.books import Books
from prizeflow_rewards.application.common import Clock, audit, count_transfers, ledger_refusal, utcnow
from prizeflow_rewards.application.figures import Figures, campaign_figures
from prizeflow_rewards.domain import accounts
from prizeflow_rewards.domain.campaigns import (
    TRANSITIONS,
    Campaign,
    CampaignStatus,
    PoolFigures,
    low_threshold,
    sweep,
    sweep_transfer_id,
)
from prizeflow_rewards.domain.ledger import LedgerError, Transfer, TransferKind
from prizeflow_rewards.metrics import RewardsMetrics
from prizeflow_runtime.errors import ErrorKind, UseCaseError
from prizeflow_runtime.principal import Principal
from prizeflow_runtime.uow import UnitOfWork


class CampaignError(UseCaseError):
    """A campaign action that cannot proceed; `code` is stable (problem details)."""


def campaign_not_found(campaign_id: str) -> CampaignError:
    return CampaignError(ErrorKind.NOT_FOUND, "campaign_not_found", f"no campaign {campaign_id}")


@dataclass(frozen=True, slots=True)
class Changed:
    """A campaign as a change left it, and its figures in that transaction."""

    campaign: Campaign
    figures: Figures


@dataclass(frozen=True, slots=True)
class Funded:
    applied: bool  # False: this reference funded the pool before (nothing moved now)
    figures: Figures


@dataclass
class CreateCampaign:
    uow: UnitOfWork[Books]
    source: str
    clock: Clock = utcnow

    async def __call__(
        self,
        actor: Principal,
        *,
        campaign_id: str,
        name: str,
        asset: str,
        low_threshold: int | None,
        correlation_id: str,
    ) -> Changed:
        campaign = Campaign(campaign_id, name, asset, CampaignStatus.ACTIVE, low_threshold)

        async def create(books: Books) -> Changed:
            if not await books.campaigns.create(campaign, created_by=actor.user_id):
                raise CampaignError(ErrorKind.CONFLICT, "campaign_exists", f"campaign {campaign_id} already exists")
            await audit(
                books.outbox,
                source=self.source,
                actor=actor,
                action="campaign.create",
                target_type="campaign",
                target_id=campaign_id,
                correlation_id=correlation_id,
                after={"name": name, "asset": asset, "status": "active", "low_threshold": low_threshold or ""},
            )
            return Changed(campaign, await campaign_figures(books, campaign))

        return await self.uow.run(create)


@dataclass
class FundCampaign:
    """treasury → pool. `reference` is the business key: funding twice with one reference moves money once."""

    uow: UnitOfWork[Books]
    source: str
    metrics: RewardsMetrics | None = None

    async def __call__(
        self, actor: Principal, *, campaign_id: str, amount: int, reference: str, correlation_id: str
    ) -> Funded:
        async def fund(books: Books) -> Funded:
            campaign = await books.campaigns.get(campaign_id, lock=True)
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
                correlation_id=correlation_id,
            )
            try:
                result = await books.ledger.apply([t])
            except LedgerError as err:
                refusal = ledger_refusal(err)
                raise CampaignError(refusal.kind, refusal.code, refusal.detail) from err
            count_transfers(self.metrics, result)
            if result.applied:
                await audit(
                    books.outbox,
                    source=self.source,
                    actor=actor,
                    action="campaign.fund",
                    target_type="campaign",
                    target_id=campaign_id,
                    correlation_id=correlation_id,
                    after={"amount": amount, "asset": campaign.asset, "reference": reference, "transfer_id": t.id},
                )
            return Funded(bool(result.applied), await campaign_figures(books, campaign))

        return await self.uow.run(fund)


@dataclass
class ChangeCampaignStatus:
    """Pause or resume a campaign (closing is `CloseCampaign`: it moves money)."""

    uow: UnitOfWork[Books]
    source: str

    async def __call__(
        self, actor: Principal, *, campaign_id: str, target: CampaignStatus, correlation_id: str
    ) -> Changed:
        if target is CampaignStatus.CLOSED:
            raise ValueError("closing a campaign sweeps its pool: CloseCampaign")

        async def change(books: Books) -> Changed:
            campaign = await books.campaigns.get(campaign_id, lock=True)
            if campaign is None:
                raise campaign_not_found(campaign_id)
            if campaign.status is target:
                return Changed(campaign, await campaign_figures(books, campaign))
            if not TRANSITIONS.allows(campaign.status, target):
                raise CampaignError(
                    ErrorKind.CONFLICT,
                    "illegal_transition",
                    f"campaign {campaign_id} cannot go {campaign.status.value} → {target.value}",
                )
            await books.campaigns.set_status(campaign_id, target)
            verb = {CampaignStatus.ACTIVE: "resume", CampaignStatus.PAUSED: "pause"}[target]
            await audit(
                books.outbox,
                source=self.source,
                actor=actor,
                action=f"campaign.{verb}",
                target_type="campaign",
                target_id=campaign_id,
                correlation_id=correlation_id,
                before={"status": campaign.status.value},
                after={"status": target.value},
            )
            changed = Campaign(campaign.id, campaign.name, campaign.asset, target, campaign.low_threshold)
            return Changed(changed, await campaign_figures(books, changed))

        return await self.uow.run(change)


@dataclass(frozen=True, slots=True)
class Closed:
    campaign: Campaign
    swept: int  # minor units the pool gave back to the treasury
    transfer_id: uuid.UUID | None  # the sweep (None: the pool held nothing free)
    changed: bool  # False: it was closed already (this is what closing it did then)
    figures: Figures = field(default_factory=dict)


@dataclass
class CloseCampaign:
    """Close a campaign for good: its pool pays nothing more, and what it still holds goes back to the treasury
    through the ledger (one `pool_sweep` transfer), with the status change and its audit, in one transaction.
    Refused while the pool has reservations or held rounds (money promised from it): settle or release those
    first. Closing a closed campaign changes nothing and answers what its closing did."""

    uow: UnitOfWork[Books]
    source: str
    metrics: RewardsMetrics | None = None

    async def __call__(self, actor: Principal, *, campaign_id: str, reason: str, correlation_id: str) -> Closed:
        async def close(books: Books) -> Closed:
            done = await self._close(
                books, actor, campaign_id=campaign_id, reason=reason, correlation_id=correlation_id
            )
            return replace(done, figures=await campaign_figures(books, done.campaign))

        return await self.uow.run(close)

    async def _close(
        self, books: Books, actor: Principal, *, campaign_id: str, reason: str, correlation_id: str
    ) -> Closed:
        # The campaign row first (as funding and the held-round release take it), then the accounts, then its held
        # rounds: a round settling now holds the pool's account until it commits, so only once the pool is ours
        # are the rounds it held for the pool all visible (read before, one held meanwhile would be swept under).
        campaign = await books.campaigns.get(campaign_id, lock=True)
        if campaign is None:
            raise campaign_not_found(campaign_id)
        sweep_id = sweep_transfer_id(campaign.id)
        if campaign.status is CampaignStatus.CLOSED:
            swept = (await books.ledger.recorded([sweep_id])).get(sweep_id)
            return Closed(campaign, swept or 0, sweep_id if swept else None, changed=False)
        pool, treasury = accounts.pool(campaign.id, campaign.asset), accounts.treasury(campaign.asset)
        balance = (await books.ledger.lock([pool, treasury]))[pool]
        held = await books.allocations.lock_held(campaign.id)
        if balance.debits_pending or held:
            raise CampaignError(
                ErrorKind.CONFLICT,
                "reservations_pending",
                f"campaign {campaign_id}: its pool has {balance.debits_pending} reserved and {len(held)} held "
                "rounds waiting for it; settle or release them before closing it",
                reserved=balance.debits_pending,
                held_rounds=len(held),
            )
        t = sweep(campaign, balance, correlation_id=correlation_id)
        if t is not None:
            try:
                result = await books.ledger.apply([t])
            except LedgerError as err:
                refusal = ledger_refusal(err)
                raise CampaignError(refusal.kind, refusal.code, refusal.detail) from err
            count_transfers(self.metrics, result)
        await books.campaigns.set_status(campaign.id, CampaignStatus.CLOSED)
        swept = t.amount if t is not None else 0
        await audit(
            books.outbox,
            source=self.source,
            actor=actor,
            action="campaign.close",
            target_type="campaign",
            target_id=campaign.id,
            correlation_id=correlation_id,
            reason=reason,
            before={"status": campaign.status.value, "remaining": swept},
            after={"status": "closed", "swept": swept, "transfer_id": t.id if t is not None else ""},
        )
        closed = Campaign(campaign.id, campaign.name, campaign.asset, CampaignStatus.CLOSED, campaign.low_threshold)
        return Closed(closed, swept, t.id if t is not None else None, changed=True)


__all__ = [
    "TRANSITIONS",
    "Campaign",
    "CampaignError",
    "CampaignStatus",
    "ChangeCampaignStatus",
    "Changed",
    "CloseCampaign",
    "Closed",
    "CreateCampaign",
    "FundCampaign",
    "Funded",
    "PoolFigures",
    "campaign_not_found",
    "low_threshold",
]
