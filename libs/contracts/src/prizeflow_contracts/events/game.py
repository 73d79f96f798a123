"""Events game servers publish on `prizeflow.game.rounds.v1` (docs/architecture.md §2, §5).

Game servers are outside the trust boundary: everything they send is validated here, and settlement
re-checks what depends on its own state (round known, transition legal).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, ClassVar, Final

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from prizeflow_contracts.envelope import EventPayload
from prizeflow_contracts.ids import Identifier, Reason
from prizeflow_contracts.money import BPS_WHOLE, INT64_MAX, INT64_MIN, AssetCode, BasisPoints, Money, PositiveMinorUnits
from prizeflow_contracts.topics import GAME_ROUNDS, Topic

MAX_PLACEMENTS: Final = 10_000


class DistributionTemplate(StrEnum):
    WINNER_TAKES_ALL = "winner_takes_all"
    TOP3 = "top3"
    TOP5 = "top5"
    TOP10 = "top10"
    CUSTOM = "custom"


# Shares of the distributable amount by place (1st, 2nd, ...), in basis points summing to 10000.
# Part of the contract: game servers and settlement must agree on what "top3" means.
TEMPLATE_BPS: Final[Mapping[DistributionTemplate, tuple[int, ...]]] = {
    DistributionTemplate.WINNER_TAKES_ALL: (10_000,),
    DistributionTemplate.TOP3: (5_000, 3_000, 2_000),
    DistributionTemplate.TOP5: (4_000, 2_500, 1_500, 1_200, 800),
    DistributionTemplate.TOP10: (2_500, 1_800, 1_300, 1_000, 800, 700, 600, 500, 450, 350),
}


class PrizeSource(StrEnum):
    """Where prize money comes from: a sponsored reward pool (default) or the pot of entry fees."""

    SPONSORED = "sponsored"
    ENTRY_POT = "entry_pot"


class PaidVia(StrEnum):
    """How an entry fee was paid, which decides how it is refunded."""

    WALLET = "wallet"
    EXTERNAL = "external"


class _Part(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class Distribution(_Part):
    """How the distributable amount is split by place."""

    template: DistributionTemplate
    custom_bps: Annotated[list[BasisPoints], Field(max_length=1000)] | None = Field(
        default=None, description="Only for template=custom: share per place in bps, summing to 10000"
    )

    @model_validator(mode="after")
    def _check(self) -> Distribution:
        if self.template is DistributionTemplate.CUSTOM:
            if not self.custom_bps:
                raise ValueError("template custom needs custom_bps, a non-empty list of basis points")
            if sum(self.custom_bps) != BPS_WHOLE:
                raise ValueError(f"custom_bps must sum to {BPS_WHOLE}, got {sum(self.custom_bps)}")
            if any(b == 0 for b in self.custom_bps):
                raise ValueError("custom_bps must not contain a zero share; shorten the list instead")
        elif self.custom_bps is not None:
            raise ValueError(f"custom_bps is only allowed with template custom, not {self.template.value}")
        return self

    def shares_bps(self) -> tuple[int, ...]:
        """The share of each place, 1st first."""
        if self.template is DistributionTemplate.CUSTOM:
            assert self.custom_bps is not None
            return tuple(self.custom_bps)
        return TEMPLATE_BPS[self.template]


class PrizeSpec(_Part):
    """The prize: from campaign `campaign_id`'s pool (sponsored) or from the entry pot."""

    asset: AssetCode
    amount: PositiveMinorUnits | None = Field(
        default=None, description="Sponsored prize in minor units; absent for entry_pot (the pot decides)"
    )
    campaign_id: Identifier | None = Field(default=None, description="Funding campaign; required when sponsored")


class Placement(_Part):
    """One player's result. Tied players share a rank (standard competition ranking: 1, 1, 3)."""

    player_id: Identifier
    rank: Annotated[int, Field(strict=True, ge=1, le=MAX_PLACEMENTS)]
    score: Annotated[
        int, Field(strict=True, ge=INT64_MIN, le=INT64_MAX, description="Game score in the game's own integer unit")
    ]


def check_placements(placements: list[Placement]) -> None:
    """Unique players and a standard competition ranking (1, 1, 3 — never 1, 1, 2)."""
    seen: set[str] = set()
    for p in placements:
        if p.player_id in seen:
            raise ValueError(f"player {p.player_id} appears more than once in the results")
        seen.add(p.player_id)
    ranks = sorted(p.rank for p in placements)
    expected = 1
    for position, rank in enumerate(ranks):
        if position and rank != ranks[position - 1]:
            expected = position + 1
        if rank != expected:
            raise ValueError(
                f"ranks must follow standard competition ranking (ties share a rank, the next rank skips): "
                f"rank {rank} at position {position + 1} should be {expected}"
            )


class RoundOpened(EventPayload):
    """A round is open for entries; fixes the prize, distribution and fee terms for its whole life."""

    EVENT_NAME: ClassVar[str] = "RoundOpened"
    TOPIC: ClassVar[Topic] = GAME_ROUNDS

    round_id: Identifier
    competition_id: Identifier
    game_id: Identifier
    organizer_id: Identifier | None = None
    opened_at: AwareDatetime
    entry_fee: Money | None = Field(default=None, description="Fee per entry; absent for free rounds")
    prize: PrizeSpec
    prize_source: PrizeSource = PrizeSource.SPONSORED
    distribution: Distribution
    platform_fee_bps: BasisPoints = 0
    organizer_fee_bps: BasisPoints = 0
    placements_require_entry: bool = Field(
        default=True,
        description="Results may only place players who entered the round (settlement refuses others); false "
        "for rounds whose game server reports no entries, e.g. free open tournaments",
    )

    @model_validator(mode="after")
    def _check(self) -> RoundOpened:
        if self.platform_fee_bps + self.organizer_fee_bps > BPS_WHOLE:
            raise ValueError(
                f"platform_fee_bps + organizer_fee_bps must not exceed {BPS_WHOLE}, "
                f"got {self.platform_fee_bps + self.organizer_fee_bps}"
            )
        if self.organizer_fee_bps and self.organizer_id is None:
            raise ValueError("organizer_fee_bps needs an organizer_id to pay")
        if self.prize_source is PrizeSource.SPONSORED:
            if self.prize.campaign_id is None or self.prize.amount is None:
                raise ValueError("a sponsored prize needs both prize.amount and prize.campaign_id")
        else:
            if self.prize.amount is not None or self.prize.campaign_id is not None:
                raise ValueError("an entry_pot prize is the pot itself: omit prize.amount and prize.campaign_id")
            if self.entry_fee is None or self.entry_fee.amount == 0:
                raise ValueError("an entry_pot prize needs a positive entry_fee")
            if self.entry_fee.asset != self.prize.asset:
                raise ValueError(
                    f"an entry_pot prize is paid in the entry fee's asset: "
                    f"prize.asset {self.prize.asset} != entry_fee.asset {self.entry_fee.asset}"
                )
        return self


class EntryRecorded(EventPayload):
    """A player entered a round (and paid its fee, if any)."""

    EVENT_NAME: ClassVar[str] = "EntryRecorded"
    TOPIC: ClassVar[Topic] = GAME_ROUNDS

    round_id: Identifier
    entry_id: Identifier
    player_id: Identifier
    fee: Money
    paid_via: PaidVia
    recorded_at: AwareDatetime


class RoundClosed(EventPayload):
    """No more entries. `entry_count` lets settlement check it has seen every entry before resolving."""

    EVENT_NAME: ClassVar[str] = "RoundClosed"
    TOPIC: ClassVar[Topic] = GAME_ROUNDS

    round_id: Identifier
    closed_at: AwareDatetime
    entry_count: Annotated[int, Field(strict=True, ge=0, le=INT64_MAX)]


class RoundResultsReported(EventPayload):
    """Final placements. Re-sending identical results is a no-op; different results raise a dispute."""

    EVENT_NAME: ClassVar[str] = "RoundResultsReported"
    TOPIC: ClassVar[Topic] = GAME_ROUNDS

    round_id: Identifier
    placements: Annotated[list[Placement], Field(min_length=1, max_length=MAX_PLACEMENTS)]
    reported_at: AwareDatetime

    @model_validator(mode="after")
    def _check(self) -> RoundResultsReported:
        check_placements(self.placements)
        return self


class GameRoundVoided(EventPayload):
    """The game server cancelled the round (crash, cheating detected...); settlement refunds entries."""

    EVENT_NAME: ClassVar[str] = "RoundVoided"
    TOPIC: ClassVar[Topic] = GAME_ROUNDS

    round_id: Identifier
    reason: Reason
    voided_at: AwareDatetime


__all__ = [
    "MAX_PLACEMENTS",
    "TEMPLATE_BPS",
    "Distribution",
    "DistributionTemplate",
    "EntryRecorded",
    "GameRoundVoided",
    "PaidVia",
    "Placement",
    "PrizeSource",
    "PrizeSpec",
    "RoundClosed",
    "RoundOpened",
    "RoundResultsReported",
    "check_placements",
]
