"""Round scenarios: pure functions from a seeded RNG to the events a game server would publish.

Every round is its own flow: its correlation id (and so its Kafka key) is the round id, so all of a
round's events land on one partition in order — unless the out-of-order chaos deliberately breaks that.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from prizeflow_contracts.envelope import Envelope, EventPayload, new_event
from prizeflow_contracts.events.game import (
    Distribution,
    DistributionTemplate,
    EntryRecorded,
    GameRoundVoided,
    PaidVia,
    Placement,
    PrizeSource,
    PrizeSpec,
    RoundClosed,
    RoundOpened,
    RoundResultsReported,
)
from prizeflow_contracts.money import Money, asset

SOURCE = "/prizeflow/simulator"


class RoundKind(StrEnum):
    SETTLED = "settled"
    VOIDED = "voided"
    DISPUTED = "disputed"  # a second, conflicting result report after the first


@dataclass(frozen=True)
class ScenarioConfig:
    asset: str = "USDC"
    campaign_id: str = "sim-campaign"
    players: int = 200  # the pool players are drawn from, so balances accumulate and players claim
    min_entries: int = 2
    max_entries: int = 12
    prize_units: tuple[int, int] = (5, 50)  # whole units of the asset, sponsored prizes
    entry_fee_units: tuple[int, int] = (0, 3)  # whole units; 0 = free round
    entry_pot_rate: float = 0.15
    void_rate: float = 0.05
    dispute_rate: float = 0.03
    tie_rate: float = 0.2
    wallet_fee_rate: float = 0.0  # share of entry fees paid from the Prizeflow wallet (needs balance)
    platform_fee_bps: int = 500
    organizer_fee_bps: int = 250
    game_id: str = "arena"
    templates: tuple[DistributionTemplate, ...] = tuple(DistributionTemplate)


@dataclass
class RoundPlan:
    round_id: str
    kind: RoundKind
    template: DistributionTemplate
    prize_source: PrizeSource
    events: list[Envelope[Any]] = field(default_factory=list)
    players: list[str] = field(default_factory=list)

    @property
    def correlation_id(self) -> str:
        return self.round_id


CUSTOM_SHAPES: tuple[tuple[int, ...], ...] = ((6_000, 4_000), (7_000, 2_000, 1_000), (3_400, 3_300, 3_300))


def _placements(rng: random.Random, players: list[str], tie_rate: float) -> list[Placement]:
    """Scores in descending order; ties share a rank (standard competition ranking)."""
    scores = sorted((rng.randint(0, 1000) for _ in players), reverse=True)
    if len(scores) > 1 and rng.random() < tie_rate:
        i = rng.randrange(len(scores) - 1)
        scores[i + 1] = scores[i]
    placements: list[Placement] = []
    for position, (player, score) in enumerate(zip(players, scores, strict=True)):
        rank = position + 1 if position == 0 or score != scores[position - 1] else placements[-1].rank
        placements.append(Placement(player_id=player, rank=rank, score=score))
    return placements


def plan_round(rng: random.Random, seq: int, config: ScenarioConfig, *, run_id: str) -> RoundPlan:
    """The events of one round, in publication order."""
    a = asset(config.asset)
    round_id = f"{run_id}-r{seq}"
    template = rng.choice(config.templates)
    distribution = Distribution(
        template=template,
        custom_bps=list(rng.choice(CUSTOM_SHAPES)) if template is DistributionTemplate.CUSTOM else None,
    )
    fee_units = rng.randint(*config.entry_fee_units)
    entry_pot = fee_units > 0 and rng.random() < config.entry_pot_rate
    fee = Money(asset=config.asset, amount=fee_units * a.unit)
    prize = (
        PrizeSpec(asset=config.asset)
        if entry_pot
        else PrizeSpec(
            asset=config.asset, amount=rng.randint(*config.prize_units) * a.unit, campaign_id=config.campaign_id
        )
    )
    roll = rng.random()
    kind = (
        RoundKind.VOIDED
        if roll < config.void_rate
        else RoundKind.DISPUTED
        if roll < config.void_rate + config.dispute_rate
        else RoundKind.SETTLED
    )
    plan = RoundPlan(round_id, kind, template, PrizeSource.ENTRY_POT if entry_pot else PrizeSource.SPONSORED)
    now = datetime.now(UTC)

    def emit(payload: EventPayload, offset_ms: int) -> None:
        plan.events.append(
            new_event(
                payload,
                source=SOURCE,
                correlation_id=round_id,
                subject=round_id,
                time=now + timedelta(milliseconds=offset_ms),
            )
        )

    emit(
        RoundOpened(
            round_id=round_id,
            competition_id=f"{config.game_id}-cup-{seq % 7}",
            game_id=config.game_id,
            organizer_id="organizer-1",
            opened_at=now,
            entry_fee=fee if fee_units else None,
            prize=prize,
            prize_source=plan.prize_source,
            distribution=distribution,
            platform_fee_bps=config.platform_fee_bps,
            organizer_fee_bps=config.organizer_fee_bps,
        ),
        0,
    )
    count = rng.randint(config.min_entries, config.max_entries)
    plan.players = rng.sample([f"player-{n}" for n in range(config.players)], count)
    for i, player in enumerate(plan.players):
        paid_via = PaidVia.WALLET if rng.random() < config.wallet_fee_rate else PaidVia.EXTERNAL
        emit(
            EntryRecorded(
                round_id=round_id,
                entry_id=f"{round_id}-e{i}",
                player_id=player,
                fee=fee,
                paid_via=paid_via,
                recorded_at=now,
            ),
            1 + i,
        )
    if kind is RoundKind.VOIDED:
        emit(GameRoundVoided(round_id=round_id, reason="server crashed mid-round", voided_at=now), count + 2)
        return plan
    emit(RoundClosed(round_id=round_id, closed_at=now, entry_count=count), count + 2)
    finishers = list(plan.players)
    rng.shuffle(finishers)
    emit(
        RoundResultsReported(
            round_id=round_id, placements=_placements(rng, finishers, config.tie_rate), reported_at=now
        ),
        count + 3,
    )
    if kind is RoundKind.DISPUTED:
        rng.shuffle(finishers)
        emit(
            RoundResultsReported(round_id=round_id, placements=_placements(rng, finishers, 0.0), reported_at=now),
            count + 4,
        )
    return plan
