"""Distribution rules, example by example and as properties over prizes, templates, field sizes and ties."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from prizeflow_contracts.events.game import TEMPLATE_BPS, EntryRecorded, Placement, RoundOpened
from prizeflow_contracts.events.settlement import AllocationSource, FeeParty, RoundSettled
from prizeflow_contracts.money import INT64_MAX
from prizeflow_settlement.domain import Finisher, ResultSet, Round, distribute, fees_on
from prizeflow_testkit.events import example_payload

AT = datetime(2025, 1, 1, 12, tzinfo=UTC)
TOP3 = TEMPLATE_BPS[next(t for t in TEMPLATE_BPS if t.value == "top3")]


def amounts(split_awards: tuple[object, ...]) -> dict[str, int]:
    return {a.player_id: a.amount for a in split_awards}  # type: ignore[attr-defined]


def test_top3_exact() -> None:
    split = distribute(1000, TOP3, [Finisher("a", 1), Finisher("b", 2), Finisher("c", 3), Finisher("d", 4)])
    assert amounts(split.awards) == {"a": 500, "b": 300, "c": 200}
    assert split.remainder == 0


def test_tie_shares_the_tied_places_equally() -> None:
    split = distribute(1000, TOP3, [Finisher("a", 1), Finisher("b", 1), Finisher("c", 3)])
    assert amounts(split.awards) == {"a": 400, "b": 400, "c": 200}


def test_tie_across_the_last_paid_place() -> None:
    # places 2..4 tied: (3000 + 2000 + 0) / 3 each
    split = distribute(900, TOP3, [Finisher("a", 1), Finisher("b", 2), Finisher("c", 2), Finisher("d", 2)])
    assert amounts(split.awards) == {"a": 450, "b": 150, "c": 150, "d": 150}


def test_fewer_finishers_than_places_leaves_the_unpaid_share_in_the_pool() -> None:
    split = distribute(1000, TOP3, [Finisher("a", 1)])
    assert amounts(split.awards) == {"a": 500}
    assert split.remainder == 500


def test_leftover_units_go_to_the_better_rank_then_smaller_player_id() -> None:
    split = distribute(1, (10_000,), [Finisher("b", 1), Finisher("a", 1)])
    assert amounts(split.awards) == {"a": 1}
    split = distribute(10, TOP3, [Finisher("a", 1), Finisher("b", 1), Finisher("c", 1)])
    assert amounts(split.awards) == {"a": 4, "b": 3, "c": 3}


def test_fees_floor_each_share() -> None:
    fees = fees_on(999, 1000, 500)
    assert (fees.platform, fees.organizer) == (99, 49)


@st.composite
def fields(draw: st.DrawFn) -> tuple[int, tuple[int, ...], list[Finisher]]:
    prize = draw(st.integers(min_value=0, max_value=INT64_MAX))
    template = draw(st.sampled_from([*TEMPLATE_BPS.values(), "custom"]))
    if template == "custom":
        cuts = sorted(draw(st.lists(st.integers(1, 9_999), max_size=20, unique=True)))
        parts = [b - a for a, b in zip([0, *cuts], [*cuts, 10_000], strict=True)]
        shares = tuple(sorted(parts, reverse=True))
    else:
        shares = tuple(template)  # type: ignore[arg-type]
    # A tie pattern: sizes of consecutive tie groups; ranks follow standard competition ranking.
    sizes = draw(st.lists(st.integers(1, 6), min_size=0, max_size=25))
    finishers, rank, n = [], 1, 0
    for size in sizes:
        for _ in range(size):
            finishers.append(Finisher(f"p{n:03d}", rank))
            n += 1
        rank += size
    return prize, shares, draw(st.permutations(finishers))


@settings(max_examples=500, deadline=None)
@given(fields())
def test_allocations_are_exact_non_negative_and_respect_rank_order(
    case: tuple[int, tuple[int, ...], list[Finisher]],
) -> None:
    prize, shares, finishers = case
    split = distribute(prize, shares, finishers)
    assert all(a.amount > 0 for a in split.awards)
    assert split.remainder >= 0
    assert sum(a.amount for a in split.awards) + split.remainder == prize == split.distributable
    got = {f.player_id: 0 for f in finishers} | amounts(split.awards)
    by_rank = sorted(finishers, key=lambda f: f.rank)
    for better, worse in itertools.pairwise(by_rank):
        if better.rank < worse.rank:
            assert got[better.player_id] >= got[worse.player_id], (better, worse, got)
        else:  # tied: equal up to the one leftover unit
            assert abs(got[better.player_id] - got[worse.player_id]) <= 1
    if len(finishers) >= len(shares):
        # every paid place is occupied: nothing is left over except through ties beyond the paid places
        occupied = min(len(finishers), len(shares))
        assert occupied == len(shares)
        assert split.remainder == 0


@settings(max_examples=200, deadline=None)
@given(
    fee=st.integers(1, 10**9),
    players=st.integers(1, 30),
    platform=st.integers(0, 5_000),
    organizer=st.integers(0, 5_000),
)
def test_entry_pot_fees_come_off_first_and_everything_adds_up(
    fee: int, players: int, platform: int, organizer: int
) -> None:
    spec = example_payload(
        RoundOpened,
        prize_source="entry_pot",
        prize={"asset": "USD"},
        entry_fee={"asset": "USD", "amount": fee},
        platform_fee_bps=platform,
        organizer_fee_bps=organizer,
        distribution={"template": "top5"},
    )
    r = Round.open(spec, correlation_id="r-1", at=AT)
    for i in range(players):
        r.record_entry(
            example_payload(EntryRecorded, entry_id=f"e{i}", player_id=f"p{i}", fee={"asset": "USD", "amount": fee}),
            at=AT,
        )
    r.close(entry_count=players, closed_at=AT, at=AT)
    placements = [Placement(player_id=f"p{i}", rank=i + 1, score=0) for i in range(players)]
    r.report_results(ResultSet.of(placements, reported_at=AT, event_id=None), at=AT)
    settled = next(e for e in r.pending_events if isinstance(e, RoundSettled))
    pot = fee * players
    fees = {f.party: f.amount.amount for f in settled.fees}
    assert fees.get(FeeParty.PLATFORM, 0) == pot * platform // 10_000
    assert fees.get(FeeParty.ORGANIZER, 0) == pot * organizer // 10_000
    assert settled.distributable + sum(fees.values()) == pot
    assert sum(a.amount for a in settled.allocations) + settled.remainder == settled.distributable
    assert all(a.source is AllocationSource.POT for a in settled.allocations)


def test_sponsored_round_pays_the_pool_and_takes_fees_from_entry_fees() -> None:
    r = Round.open(example_payload(RoundOpened), correlation_id="r-1", at=AT)
    for i in (1, 2):
        r.record_entry(example_payload(EntryRecorded, entry_id=f"e-{i}", player_id=f"p-{i}"), at=AT)
    r.close(entry_count=2, closed_at=AT, at=AT)
    placements = [Placement(player_id="p-1", rank=1, score=9), Placement(player_id="p-2", rank=2, score=7)]
    r.report_results(ResultSet.of(placements, reported_at=AT, event_id=None), at=AT)
    settled = next(e for e in r.pending_events if isinstance(e, RoundSettled))
    assert settled.distributable == 100_000_000
    assert [(a.player_id, a.amount) for a in settled.allocations] == [("p-1", 50_000_000), ("p-2", 30_000_000)]
    assert settled.remainder == 20_000_000
    assert settled.campaign_id == "camp-1"
    assert [(f.party, f.account_id, f.amount.asset, f.amount.amount) for f in settled.fees] == [
        (FeeParty.PLATFORM, "platform", "USD", 100),
        (FeeParty.ORGANIZER, "org-1", "USD", 50),
    ]
