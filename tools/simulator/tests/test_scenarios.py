from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from prizeflow_contracts.envelope import decode
from prizeflow_contracts.events.game import (
    DistributionTemplate,
    EntryRecorded,
    GameRoundVoided,
    RoundClosed,
    RoundOpened,
    RoundResultsReported,
)
from prizeflow_simulator.chaos import ChaosConfig, apply_chaos
from prizeflow_simulator.scenarios import RoundKind, ScenarioConfig, plan_round


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**32), seq=st.integers(1, 10**6))
def test_every_planned_round_is_a_valid_lifecycle_of_one_flow(seed: int, seq: int) -> None:
    plan = plan_round(random.Random(seed), seq, ScenarioConfig(), run_id="t")
    decoded = [decode(e.encode()).data for e in plan.events]  # survives the wire and the contract checks
    assert {e.correlationid for e in plan.events} == {plan.round_id}
    assert isinstance(decoded[0], RoundOpened)
    entries = [d for d in decoded if isinstance(d, EntryRecorded)]
    assert [e.player_id for e in entries] == plan.players
    assert len(set(plan.players)) == len(plan.players)
    if plan.kind is RoundKind.VOIDED:
        assert isinstance(decoded[-1], GameRoundVoided)
        return
    closed = next(d for d in decoded if isinstance(d, RoundClosed))
    assert closed.entry_count == len(entries)
    results = [d for d in decoded if isinstance(d, RoundResultsReported)]
    assert len(results) == (2 if plan.kind is RoundKind.DISPUTED else 1)
    assert {p.player_id for p in results[0].placements} == set(plan.players)


def test_a_long_run_covers_every_template_kind_and_prize_source() -> None:
    rng = random.Random(7)
    plans = [plan_round(rng, i, ScenarioConfig(), run_id="cov") for i in range(600)]
    assert {p.template for p in plans} == set(DistributionTemplate)
    assert {p.kind for p in plans} == set(RoundKind)
    assert {p.prize_source.value for p in plans} == {"sponsored", "entry_pot"}


def test_chaos_injects_exactly_what_it_counts() -> None:
    rng = random.Random(3)
    counts: dict[str, int] = {}
    total_events = 0
    total_records = 0
    for i in range(300):
        plan = plan_round(rng, i, ScenarioConfig(), run_id="chaos")
        records = apply_chaos(rng, plan.events, ChaosConfig(0.1, 0.2, 0.1), counts)
        total_events += len(plan.events)
        total_records += len(records)
        malformed = [r for r in records if r.event_type == "malformed"]
        for r in malformed:
            assert r.key == plan.round_id.encode()
    assert min(counts["duplicate"], counts["out_of_order"], counts["malformed"]) > 0
    assert total_records == total_events + counts["duplicate"] + counts["malformed"]
