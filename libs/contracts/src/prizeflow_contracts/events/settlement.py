"""Events settlement publishes on `prizeflow.settlement.rounds.v1` (docs/architecture.md §5).

These are the authoritative outcome of a round: rewards moves money on `RoundSettled` and `RoundVoided`,
so their totals are checked here and cannot disagree with themselves.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, ClassVar, Final

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from prizeflow_contracts.envelope import EventPayload
from prizeflow_contracts.events.game import MAX_PLACEMENTS, PaidVia, Placement, PrizeSource
from prizeflow_contracts.ids import Identifier, Reason, Sha256Hex
from prizeflow_contracts.money import INT64_MAX, AssetCode, MinorUnits, PositiveMinorUnits, PositiveMoney
from prizeflow_contracts.topics import SETTLEMENT_ROUNDS, Topic

MAX_DISPUTE_SAMPLE: Final = 10


class RoundState(StrEnum):
    """OPEN → CLOSED → RESOLVED → SETTLED; any non-final state → VOIDED."""

    OPEN = "open"
    CLOSED = "closed"
    RESOLVED = "resolved"
    SETTLED = "settled"
    VOIDED = "voided"


class AllocationSource(StrEnum):
    POOL = "pool"
    POT = "pot"


class FeeParty(StrEnum):
    PLATFORM = "platform"
    ORGANIZER = "organizer"


class _Part(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class Allocation(_Part):
    """A prize for one player; players whose share rounds to zero are left out."""

    player_id: Identifier
    rank: Annotated[int, Field(strict=True, ge=1, le=MAX_PLACEMENTS)]
    amount: PositiveMinorUnits
    source: AllocationSource


class FeeLine(_Part):
    """A fee credited to a revenue account: taken from the pot (entry_pot) or from entry fees (sponsored)."""

    party: FeeParty
    account_id: Identifier
    amount: PositiveMoney


class Refund(_Part):
    """An entry fee owed back to a player because the round was voided."""

    player_id: Identifier
    entry_id: Identifier
    amount: PositiveMoney
    paid_via: PaidVia


class RoundStateChanged(EventPayload):
    """A round moved between states; `from_state` is absent when settlement first learns of the round."""

    EVENT_NAME: ClassVar[str] = "RoundStateChanged"
    TOPIC: ClassVar[Topic] = SETTLEMENT_ROUNDS

    round_id: Identifier
    from_state: RoundState | None
    to_state: RoundState
    reason: Reason | None = None
    changed_at: AwareDatetime

    @model_validator(mode="after")
    def _check(self) -> RoundStateChanged:
        if self.from_state == self.to_state:
            raise ValueError(f"a state change must change the state (both are {self.to_state.value})")
        if self.from_state in (RoundState.SETTLED, RoundState.VOIDED):
            raise ValueError(f"{self.from_state.value} is final: no transition leaves it")
        return self


class EntryAccepted(EventPayload):
    """Settlement took a paid entry into its round: the fee is owed, and rewards charges it (and only entries
    settlement accepted are ever charged). Free entries move no money and are not announced."""

    EVENT_NAME: ClassVar[str] = "EntryAccepted"
    TOPIC: ClassVar[Topic] = SETTLEMENT_ROUNDS

    round_id: Identifier
    entry_id: Identifier
    player_id: Identifier
    fee: PositiveMoney
    paid_via: PaidVia
    accepted_at: AwareDatetime


class RoundSettled(EventPayload):
    """The prize split of a resolved round: rewards credits each allocation once, in one linked batch.

    `distributable` is what the places share (the sponsored prize, or the pot after fees); what could not
    be allocated (fewer players than places, zero shares) is `remainder` and stays in its source.
    """

    EVENT_NAME: ClassVar[str] = "RoundSettled"
    TOPIC: ClassVar[Topic] = SETTLEMENT_ROUNDS

    round_id: Identifier
    competition_id: Identifier
    asset: AssetCode
    prize_source: PrizeSource
    campaign_id: Identifier | None = None
    distributable: MinorUnits
    allocations: Annotated[list[Allocation], Field(max_length=MAX_PLACEMENTS)]
    remainder: MinorUnits
    fees: Annotated[list[FeeLine], Field(max_length=10)] = Field(default_factory=list)
    settled_at: AwareDatetime

    @model_validator(mode="after")
    def _check(self) -> RoundSettled:
        players: set[str] = set()
        for a in self.allocations:
            if a.player_id in players:
                raise ValueError(f"player {a.player_id} has more than one allocation")
            players.add(a.player_id)
        allocated = sum(a.amount for a in self.allocations)
        if allocated + self.remainder != self.distributable:
            raise ValueError(
                f"allocations ({allocated}) + remainder ({self.remainder}) must equal "
                f"distributable ({self.distributable}) {self.asset}"
            )
        if self.prize_source is PrizeSource.SPONSORED:
            if self.campaign_id is None:
                raise ValueError("a sponsored round is settled from a campaign pool: campaign_id is required")
            if any(a.source is not AllocationSource.POOL for a in self.allocations):
                raise ValueError("allocations of a sponsored round must all come from the pool")
        else:
            if any(a.source is not AllocationSource.POT for a in self.allocations):
                raise ValueError("allocations of an entry_pot round must all come from the pot")
            if any(f.amount.asset != self.asset for f in self.fees):
                raise ValueError(f"fees taken from an entry pot must be in the pot's asset {self.asset}")
        parties = [(f.party, f.account_id, f.amount.asset) for f in self.fees]
        if len(set(parties)) != len(parties):
            raise ValueError("a fee line appears twice for the same party, account and asset")
        if sum(f.amount.amount for f in self.fees) > INT64_MAX:
            raise ValueError("fees exceed the int64 range")
        return self


class RoundVoided(EventPayload):
    """A round was voided; each refund is owed exactly once (keyed by entry_id)."""

    EVENT_NAME: ClassVar[str] = "RoundVoided"
    TOPIC: ClassVar[Topic] = SETTLEMENT_ROUNDS

    round_id: Identifier
    reason: Reason
    refunds: Annotated[list[Refund], Field(max_length=100_000)]
    voided_at: AwareDatetime

    @model_validator(mode="after")
    def _check(self) -> RoundVoided:
        entries = [r.entry_id for r in self.refunds]
        if len(set(entries)) != len(entries):
            raise ValueError("an entry is refunded more than once")
        return self


class ResultsSummary(_Part):
    """Enough of a result set to decide a dispute without the whole list: digest, size and the top places."""

    results_event_id: Identifier | None = None
    reported_at: AwareDatetime
    placement_count: Annotated[int, Field(strict=True, ge=1, le=INT64_MAX)]
    digest: Sha256Hex = Field(description="SHA-256 of the placements sorted by (rank, player_id), canonical JSON")
    top: Annotated[list[Placement], Field(min_length=1, max_length=MAX_DISPUTE_SAMPLE)]


class RoundDisputed(EventPayload):
    """Conflicting results arrived for a resolved round; nothing is paid until an admin resolves it."""

    EVENT_NAME: ClassVar[str] = "RoundDisputed"
    TOPIC: ClassVar[Topic] = SETTLEMENT_ROUNDS

    round_id: Identifier
    existing: ResultsSummary
    conflicting: ResultsSummary
    disputed_at: AwareDatetime

    @model_validator(mode="after")
    def _check(self) -> RoundDisputed:
        if self.existing.digest == self.conflicting.digest:
            raise ValueError("identical results are a replay, not a dispute")
        return self


__all__ = [
    "Allocation",
    "AllocationSource",
    "EntryAccepted",
    "FeeLine",
    "FeeParty",
    "Refund",
    "ResultsSummary",
    "RoundDisputed",
    "RoundSettled",
    "RoundState",
    "RoundStateChanged",
    "RoundVoided",
]
