"""Campaigns and their reward pools (pure): the status machine, what a pool's counters mean, when it runs low."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from prizeflow_contracts.transitions import Transitions
from prizeflow_rewards.domain import accounts
from prizeflow_rewards.domain.ledger import Balance, Transfer, TransferKind, transfer_id


class CampaignStatus(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    CLOSED = "closed"


# Closed is final: its pool pays nothing more, and what it still held went back to the treasury (`sweep`).
TRANSITIONS: Final = Transitions(
    "campaign",
    {
        CampaignStatus.ACTIVE: frozenset({CampaignStatus.PAUSED, CampaignStatus.CLOSED}),
        CampaignStatus.PAUSED: frozenset({CampaignStatus.ACTIVE, CampaignStatus.CLOSED}),
        CampaignStatus.CLOSED: frozenset(),
    },
    initial=frozenset({CampaignStatus.ACTIVE}),
)


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


def sweep_transfer_id(campaign_id: str) -> uuid.UUID:
    """A campaign's pool is swept once: its sweep has one id."""
    return transfer_id(TransferKind.POOL_SWEEP.value, campaign_id)


def sweep(campaign: Campaign, pool: Balance, *, correlation_id: str) -> Transfer | None:
    """pool → treasury: what the pool of a closing campaign still holds free (nothing to move: None). A pool with
    reservations is not swept (the caller refuses to close it)."""
    if pool.debits_pending:
        raise ValueError(f"campaign {campaign.id}: a pool with reservations is not swept")
    if pool.available <= 0:
        return None
    return Transfer.of(
        accounts.pool(campaign.id, campaign.asset),
        accounts.treasury(campaign.asset),
        pool.available,
        TransferKind.POOL_SWEEP,
        campaign.id,
        correlation_id=correlation_id,
    )


__all__ = [
    "TRANSITIONS",
    "Campaign",
    "CampaignStatus",
    "PoolFigures",
    "low_threshold",
    "sweep",
    "sweep_transfer_id",
]
