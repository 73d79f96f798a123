"""The campaigns' stores: campaigns, and the rounds whose money settlement decided (the sponsored ones held back)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from prizeflow_contracts.envelope import Envelope
from prizeflow_rewards.domain.campaigns import Campaign, CampaignStatus


class CampaignRepository(Protocol):
    async def get(self, campaign_id: str, *, lock: bool = False) -> Campaign | None:
        """`lock`: for no key update (a held round's foreign key to its campaign never waits for it)."""
        ...

    async def all(self) -> list[Campaign]:
        """Oldest first."""
        ...

    async def create(self, campaign: Campaign, *, created_by: str) -> bool:
        """False: a campaign with this id exists (nothing written)."""
        ...

    async def set_status(self, campaign_id: str, status: CampaignStatus) -> None: ...


@dataclass(frozen=True, slots=True)
class HeldRound:
    """A sponsored round's allocations that wait for its pool (or its campaign) before they are paid."""

    round_id: str
    campaign_id: str
    asset: str
    total: int
    reason: str
    event: Envelope[Any]  # the RoundSettled, paid as it is when released


class RoundAllocations(Protocol):
    """Rounds whose money settlement decided (settled or voided), and the sponsored rounds held back."""

    async def record_outcomes(self, outcomes: Sequence[tuple[str, str]]) -> None:
        """(round id, "settled" | "voided") pairs, in one statement; a round keeps its first outcome."""
        ...

    async def voided(self, round_id: str) -> bool: ...

    async def voided_among(self, round_ids: Sequence[str]) -> set[str]:
        """Those of these rounds voided, in one read."""
        ...

    async def is_held(self, round_id: str) -> bool:
        """Whether the round was ever held (released or not)."""
        ...

    async def held_among(self, round_ids: Sequence[str]) -> set[str]:
        """Those of these rounds ever held, in one read."""
        ...

    async def hold(self, held: HeldRound) -> None:
        """Hold a round's allocations (a round already held stays as it is)."""
        ...

    async def lock_held(self, campaign_id: str) -> list[HeldRound]:
        """A campaign's rounds still held, oldest first, locked until the transaction ends."""
        ...

    async def mark_released(self, round_id: str, *, by: str) -> None: ...

    async def held_totals(self) -> dict[str, tuple[int, int]]:
        """Per campaign: (rounds held, their total)."""
        ...


__all__ = ["CampaignRepository", "HeldRound", "RoundAllocations"]
