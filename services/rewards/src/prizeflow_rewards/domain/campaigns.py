"""Campaigns and their reward pools (pure): the status machine, what a pool's counters mean, when it runs low."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from prizeflow_rewards.domain.ledger import Balance


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


__all__ = ["STATUS_TRANSITIONS", "Campaign", "CampaignStatus", "PoolFigures", "low_threshold"]
