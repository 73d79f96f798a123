"""Campaigns and their reward pools: create, fund (treasury → pool), pause, resume, close; figures."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from sqlalchemy import text

from prizeflow_rewards.application.common import Clock, audit, count_transfers, utcnow
from prizeflow_rewards.application.ports import Conn, Ledger
from prizeflow_rewards.domain import accounts
from prizeflow_rewards.domain.ledger import Balance, LedgerError, Transfer, TransferKind
from prizeflow_rewards.metrics import RewardsMetrics
from prizeflow_runtime.auth import Principal


class CampaignStatus(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    CLOSED = "closed"


# Closed is final: its pool pays nothing more (its remaining balance stays visible for reconciliation).
STATUS_TRANSITIONS: Final[Mapping[CampaignStatus, frozenset[CampaignStatus]]] = {
    CampaignStatus.ACTIVE: frozenset({CampaignStatus.PAUSED, CampaignStatus.CLOSED}),
    CampaignStatus.PAUSED: frozenset({CampaignStatus.ACTIVE, CampaignStatus.CLOSED}),
    CampaignStatus.CLOSED: frozenset(),
}


class CampaignError(Exception):
    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Campaign:
    id: str
    name: str
    asset: str
    status: CampaignStatus
    low_threshold: int | None


@dataclass(frozen=True, slots=True)
class PoolFigures:
    """funded = paid + reserved + remaining, by construction of the pool account's counters."""

    funded: int
    paid: int
    reserved: int
    remaining: int

    @classmethod
    def of(cls, b: Balance) -> PoolFigures:
        return cls(funded=b.credits_posted, paid=b.debits_posted, reserved=b.debits_pending, remaining=b.available)


def low_threshold(campaign: Campaign, funded: int, default_bps: int) -> int:
    return campaign.low_threshold or max(1, funded * default_bps // 10_000)


_GET = text("SELECT id, name, asset, status, low_threshold FROM campaigns WHERE id = :id")
# NO KEY UPDATE: a held round's foreign key to its campaign (FOR KEY SHARE) never waits for this lock.
_GET_LOCKED = text("SELECT id, name, asset, status, low_threshold FROM campaigns WHERE id = :id FOR NO KEY UPDATE")


async def get_campaign(conn: Conn, campaign_id: str, *, lock: bool = False) -> Campaign | None:
    row = (await conn.execute(_GET_LOCKED if lock else _GET, {"id": campaign_id})).first()
    if row is None:
        return None
    return Campaign(row.id, row.name, row.asset, CampaignStatus(row.status), row.low_threshold)


async def list_campaigns(conn: Conn) -> list[Campaign]:
    rows = await conn.execute(text("SELECT id, name, asset, status, low_threshold FROM campaigns ORDER BY created_at"))
    return [Campaign(r.id, r.name, r.asset, CampaignStatus(r.status), r.low_threshold) for r in rows]


async def figures(conn: Conn, ledger: Ledger, campaigns: list[Campaign]) -> dict[str, dict[str, Any]]:
    refs = {c.id: accounts.pool(c.id, c.asset) for c in campaigns}
    balances = await ledger.balances(conn, refs.values())
    held = {
        r.campaign_id: (r.n, r.total)
        for r in await conn.execute(
            text(
                "SELECT campaign_id, count(*) AS n, sum(total) AS total FROM held_allocations "
                "WHERE status = 'held' GROUP BY campaign_id"
            )
        )
    }
    out = {}
    for c in campaigns:
        f = PoolFigures.of(balances[refs[c.id]])
        n, total = held.get(c.id, (0, 0))
        out[c.id] = {
            "campaign_id": c.id,
            "name": c.name,
            "asset": c.asset,
            "status": c.status.value,
            "budget": f.funded,
            "funded": f.funded,
            "paid": f.paid,
            "reserved": f.reserved,
            "remaining": f.remaining,
            "low_threshold": c.low_threshold,
            "held_rounds": int(n),
            "held_amount": int(total or 0),
        }
    return out


@dataclass
class CreateCampaign:
    source: str
    clock: Clock = utcnow

    async def __call__(
        self,
        conn: Conn,
        actor: Principal,
        *,
        campaign_id: str,
        name: str,
        asset: str,
        low_threshold: int | None,
        correlation_id: str,
    ) -> Campaign:
        inserted = (
            await conn.execute(
                text(
                    "INSERT INTO campaigns (id, name, asset, status, low_threshold, created_by) "
                    "VALUES (:id, :name, :asset, 'active', :low, :by) ON CONFLICT (id) DO NOTHING RETURNING id"
                ),
                {"id": campaign_id, "name": name, "asset": asset, "low": low_threshold, "by": actor.user_id},
            )
        ).first()
        if inserted is None:
            raise CampaignError(409, "campaign_exists", f"campaign {campaign_id} already exists")
        await audit(
            conn,
            source=self.source,
            actor=actor,
            action="campaign.create",
            target_type="campaign",
            target_id=campaign_id,
            correlation_id=correlation_id,
            after={"name": name, "asset": asset, "status": "active", "low_threshold": low_threshold or ""},
        )
        return Campaign(campaign_id, name, asset, CampaignStatus.ACTIVE, low_threshold)


@dataclass
class FundCampaign:
    """treasury → pool. `reference` is the business key: funding twice with one reference moves money once."""

    ledger: Ledger
    source: str
    metrics: RewardsMetrics | None = None

    async def __call__(
        self, conn: Conn, actor: Principal, *, campaign_id: str, amount: int, reference: str, correlation_id: str
    ) -> bool:
        campaign = await get_campaign(conn, campaign_id, lock=True)
        if campaign is None:
            raise CampaignError(404, "campaign_not_found", f"no campaign {campaign_id}")
        if campaign.status is CampaignStatus.CLOSED:
            raise CampaignError(409, "campaign_closed", f"campaign {campaign_id} is closed")
        t = Transfer.of(
            accounts.treasury(campaign.asset),
            accounts.pool(campaign.id, campaign.asset),
            amount,
            TransferKind.CAMPAIGN_FUNDING,
            campaign.id,
            reference,
        )
        try:
            result = await self.ledger.apply(conn, [t])
        except LedgerError as err:
            raise CampaignError(422 if err.code == "amount_out_of_range" else 409, err.code, err.detail) from err
        count_transfers(self.metrics, result)
        if result.applied:
            await audit(
                conn,
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

    async def __call__(
        self, conn: Conn, actor: Principal, *, campaign_id: str, target: CampaignStatus, correlation_id: str
    ) -> Campaign:
        campaign = await get_campaign(conn, campaign_id, lock=True)
        if campaign is None:
            raise CampaignError(404, "campaign_not_found", f"no campaign {campaign_id}")
        if campaign.status is target:
            return campaign
        if target not in STATUS_TRANSITIONS[campaign.status]:
            raise CampaignError(
                409, "illegal_transition", f"campaign {campaign_id} cannot go {campaign.status.value} → {target.value}"
            )
        await conn.execute(
            text("UPDATE campaigns SET status = :s, updated_at = now() WHERE id = :id"),
            {"s": target.value, "id": campaign_id},
        )
        verb = {CampaignStatus.ACTIVE: "resume", CampaignStatus.PAUSED: "pause", CampaignStatus.CLOSED: "close"}[target]
        await audit(
            conn,
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
