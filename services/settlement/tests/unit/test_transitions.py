"""The transition table, pair by pair, and the round aggregate's reaction to every game event in every state."""

from __future__ import annotations

import importlib.util
import itertools
from datetime import UTC, datetime
from pathlib import Path

import pytest

from prizeflow_contracts.events.game import EntryRecorded, Placement, RoundOpened
from prizeflow_contracts.events.settlement import (
    RoundDisputed,
    RoundSettled,
    RoundState,
    RoundStateChanged,
    RoundVoided,
)
from prizeflow_settlement.domain import TRANSITIONS, ResultSet, Round, RoundRuleViolation
from prizeflow_testkit.events import example_payload

AT = datetime(2025, 1, 1, 12, tzinfo=UTC)
ALLOWED = {
    (RoundState.OPEN, RoundState.CLOSED),
    (RoundState.OPEN, RoundState.VOIDED),
    (RoundState.CLOSED, RoundState.RESOLVED),
    (RoundState.CLOSED, RoundState.VOIDED),
    (RoundState.RESOLVED, RoundState.SETTLED),
    (RoundState.RESOLVED, RoundState.VOIDED),
}


@pytest.mark.parametrize(("source", "target"), list(itertools.product(RoundState, RoundState)))
def test_table_allows_exactly_the_documented_transitions(source: RoundState, target: RoundState) -> None:
    assert TRANSITIONS.allows(source, target) is ((source, target) in ALLOWED)


def test_the_database_allows_exactly_the_paths_of_the_table() -> None:
    """Migration 0008's trigger `rounds_transition_allowed` holds the same pairs (frozen), and their paths never
    leave a final state."""
    path = Path(__file__).parents[2] / "migrations" / "versions" / "0008_round_transitions.py"
    spec = importlib.util.spec_from_file_location("settlement_0008", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert set(module.ALLOWED) == {(a.value, b.value) for a, b in ALLOWED}
    assert not {a for a, _ in module.reachable(module.ALLOWED)} & {"settled", "voided"}


def test_final_states_have_no_exit() -> None:
    assert TRANSITIONS.finals == {RoundState.SETTLED, RoundState.VOIDED}


def results(*players: tuple[str, int]) -> ResultSet:
    return ResultSet.of(
        [Placement(player_id=p, rank=r, score=100 - r) for p, r in players], reported_at=AT, event_id=None
    )


def opened(**overrides: object) -> Round:
    return Round.open(example_payload(RoundOpened, **overrides), correlation_id="r-1", at=AT)


def entry(n: int, **overrides: object) -> EntryRecorded:
    return example_payload(EntryRecorded, entry_id=f"e-{n}", player_id=f"p-{n}", **overrides)


def in_state(state: RoundState) -> Round:
    """A round driven to `state` through the game's own events."""
    r = opened()
    r.record_entry(entry(1), at=AT)
    r.record_entry(entry(2), at=AT)
    if state is RoundState.VOIDED:
        r.void("crash", at=AT)
    if state in (RoundState.CLOSED, RoundState.RESOLVED, RoundState.SETTLED):
        r.close(entry_count=2 if state is not RoundState.RESOLVED else 3, closed_at=AT, at=AT)
    if state in (RoundState.RESOLVED, RoundState.SETTLED):
        r.report_results(results(("p-1", 1), ("p-2", 2)), at=AT)
    assert r.state is state
    r.pending_events.clear()
    return r


def states(r: Round) -> list[tuple[RoundState | None, RoundState]]:
    return [(e.from_state, e.to_state) for e in r.pending_events if isinstance(e, RoundStateChanged)]


def test_open_emits_the_first_state_change() -> None:
    r = opened()
    assert states(r) == [(None, RoundState.OPEN)]


def test_happy_path_settles_with_every_transition_emitted() -> None:
    r = in_state(RoundState.CLOSED)
    r.report_results(results(("p-1", 1), ("p-2", 2)), at=AT)
    assert states(r) == [(RoundState.CLOSED, RoundState.RESOLVED), (RoundState.RESOLVED, RoundState.SETTLED)]
    assert isinstance(r.pending_events[-1], RoundSettled)
    assert r.state is RoundState.SETTLED


@pytest.mark.parametrize("state", [RoundState.OPEN, RoundState.CLOSED, RoundState.RESOLVED])
def test_void_from_every_non_final_state(state: RoundState) -> None:
    r = in_state(state)
    r.void("cheating detected", at=AT)
    assert states(r) == [(state, RoundState.VOIDED)]
    voided = r.pending_events[-1]
    assert isinstance(voided, RoundVoided)
    assert sorted(x.entry_id for x in voided.refunds) == ["e-1", "e-2"]
    assert sum(x.amount.amount for x in voided.refunds) == 1000


def test_void_of_settled_round_is_refused() -> None:
    r = in_state(RoundState.SETTLED)
    with pytest.raises(RoundRuleViolation) as err:
        r.void("late", at=AT)
    assert err.value.code == "illegal_transition"
    assert r.state is RoundState.SETTLED


def test_void_replayed_is_a_noop() -> None:
    r = in_state(RoundState.VOIDED)
    r.void("crash", at=AT)
    assert r.pending_events == []


@pytest.mark.parametrize("state", [RoundState.VOIDED])
def test_close_refused_when_never_closed(state: RoundState) -> None:
    r = in_state(state)
    with pytest.raises(RoundRuleViolation) as err:
        r.close(entry_count=2, closed_at=AT, at=AT)
    assert err.value.code == "illegal_transition"


@pytest.mark.parametrize("state", [RoundState.CLOSED, RoundState.RESOLVED, RoundState.SETTLED])
def test_close_replayed_after_closing_is_a_noop(state: RoundState) -> None:
    r = in_state(state)
    r.close(entry_count=2, closed_at=AT, at=AT)
    assert r.pending_events == []
    assert r.state is state


@pytest.mark.parametrize("state", [RoundState.OPEN, RoundState.VOIDED])
def test_results_refused_unless_closed(state: RoundState) -> None:
    r = in_state(state)
    with pytest.raises(RoundRuleViolation) as err:
        r.report_results(results(("p-1", 1)), at=AT)
    assert err.value.code == "illegal_transition"
    assert r.state is state


@pytest.mark.parametrize("state", [RoundState.RESOLVED, RoundState.SETTLED])
def test_identical_results_replayed_are_a_noop(state: RoundState) -> None:
    r = in_state(state)
    r.report_results(results(("p-1", 1), ("p-2", 2)), at=AT)
    assert r.pending_events == []


@pytest.mark.parametrize("state", [RoundState.RESOLVED, RoundState.SETTLED])
def test_conflicting_results_open_a_dispute_without_changing_the_outcome(state: RoundState) -> None:
    r = in_state(state)
    digest = r.results.digest if r.results else None
    r.report_results(results(("p-2", 1), ("p-1", 2)), at=AT)
    assert r.state is state
    assert r.disputed
    assert r.results is not None
    assert r.results.digest == digest
    assert [type(e) for e in r.pending_events] == [RoundDisputed]


@pytest.mark.parametrize("state", [RoundState.CLOSED, RoundState.RESOLVED, RoundState.SETTLED, RoundState.VOIDED])
def test_new_entry_refused_unless_open(state: RoundState) -> None:
    r = in_state(state)
    with pytest.raises(RoundRuleViolation) as err:
        r.record_entry(entry(9), at=AT)
    assert err.value.code == "illegal_transition"


def test_entry_replayed_is_a_noop_and_a_changed_one_conflicts() -> None:
    r = in_state(RoundState.CLOSED)
    r.record_entry(entry(1), at=AT)
    assert r.entries_seen == 2
    with pytest.raises(RoundRuleViolation) as err:
        r.record_entry(entry(1, paid_via="external"), at=AT)
    assert err.value.code == "conflicting_event"


def test_same_player_twice_conflicts() -> None:
    r = opened()
    r.record_entry(entry(1), at=AT)
    with pytest.raises(RoundRuleViolation) as err:
        r.record_entry(example_payload(EntryRecorded, entry_id="e-9", player_id="p-1"), at=AT)
    assert err.value.code == "conflicting_event"


def test_reopen_identical_is_a_noop_and_different_terms_conflict() -> None:
    r = opened()
    r.reopen(example_payload(RoundOpened))
    with pytest.raises(RoundRuleViolation) as err:
        r.reopen(example_payload(RoundOpened, platform_fee_bps=0))
    assert err.value.code == "conflicting_event"


def test_missing_entries_hold_the_round_resolved_until_an_admin_settles_it() -> None:
    r = in_state(RoundState.RESOLVED)
    assert r.hold_reason == "entry_count_mismatch"
    r.admin_resolve(results(("p-1", 1), ("p-2", 2)), reason="checked with the game", actor="admin-1", at=AT)
    assert r.state is RoundState.SETTLED
    assert states(r) == [(RoundState.RESOLVED, RoundState.SETTLED)]


def test_admin_resolve_of_a_closed_round_settles_it() -> None:
    r = in_state(RoundState.CLOSED)
    r.admin_resolve(results(("p-2", 1), ("p-1", 2)), reason="game server lost the results", actor="a", at=AT)
    assert states(r) == [(RoundState.CLOSED, RoundState.RESOLVED), (RoundState.RESOLVED, RoundState.SETTLED)]


@pytest.mark.parametrize("state", [RoundState.OPEN, RoundState.VOIDED])
def test_admin_resolve_refused_for_open_and_voided(state: RoundState) -> None:
    r = in_state(state)
    with pytest.raises(RoundRuleViolation) as err:
        r.admin_resolve(results(("p-1", 1)), reason="x", actor="a", at=AT)
    assert err.value.code == "illegal_transition"


def test_admin_resolve_of_a_settled_disputed_round_only_upholds_the_paid_results() -> None:
    r = in_state(RoundState.SETTLED)
    r.report_results(results(("p-2", 1), ("p-1", 2)), at=AT)
    with pytest.raises(RoundRuleViolation) as err:
        r.admin_resolve(results(("p-2", 1), ("p-1", 2)), reason="x", actor="a", at=AT)
    assert err.value.code == "round_already_settled"
    r.admin_resolve(results(("p-1", 1), ("p-2", 2)), reason="original results stand", actor="a", at=AT)
    assert not r.disputed
    assert r.resolved_disputes
    r2 = in_state(RoundState.SETTLED)
    with pytest.raises(RoundRuleViolation):
        r2.admin_resolve(results(("p-1", 1), ("p-2", 2)), reason="x", actor="a", at=AT)


def test_non_increasing_custom_shares_are_refused() -> None:
    with pytest.raises(RoundRuleViolation) as err:
        opened(distribution={"template": "custom", "custom_bps": [1000, 9000]})
    assert err.value.code == "invalid_payload"


def test_entry_in_wrong_asset_conflicts() -> None:
    r = opened()
    with pytest.raises(RoundRuleViolation) as err:
        r.record_entry(entry(1, fee={"asset": "INR", "amount": 500}), at=AT)
    assert err.value.code == "conflicting_event"


# Every game word a final round can receive, as the game or a replay sends it: (name, apply).
LATE_WORDS = {
    "opened again, same terms": lambda r: r.reopen(example_payload(RoundOpened)),
    "entry replayed": lambda r: r.record_entry(entry(1), at=AT),
    "new entry": lambda r: r.record_entry(entry(9), at=AT),
    "closed again": lambda r: r.close(entry_count=2, closed_at=AT, at=AT),
    "same results": lambda r: r.report_results(results(("p-1", 1), ("p-2", 2)), at=AT),
    "other results": lambda r: r.report_results(results(("p-2", 1), ("p-1", 2)), at=AT),
    "voided": lambda r: r.void("late crash report", at=AT),
}


# What each late word comes to in each final state: a no-op (a replay), a refusal (a dead letter with its reason),
# or a dispute for a person (other results for a settled round). Never a move, never money.
LATE_OUTCOMES = {
    RoundState.SETTLED: ["no-op", "no-op", "illegal_transition", "no-op", "no-op", "dispute", "illegal_transition"],
    RoundState.VOIDED: ["no-op", "no-op", "illegal_transition", *["illegal_transition"] * 3, "no-op"],
}


@pytest.mark.parametrize(
    ("final", "word"), list(itertools.product([RoundState.SETTLED, RoundState.VOIDED], LATE_WORDS))
)
def test_no_late_word_moves_a_final_round_or_its_money(final: RoundState, word: str) -> None:
    """A settled or voided round never leaves its state: a replay is a no-op, a word that can never apply is refused
    (a dead letter with its reason), and other results for a settled round open a dispute for a person, never a
    second settlement."""
    r = in_state(final)
    before = (r.state, r.results.digest if r.results else None, r.pot, r.entries_seen)
    try:
        LATE_WORDS[word](r)
        outcome = "dispute" if r.pending_events else "no-op"
    except RoundRuleViolation as err:
        outcome = err.code
    assert outcome == LATE_OUTCOMES[final][list(LATE_WORDS).index(word)]
    assert (r.state, r.results.digest if r.results else None, r.pot, r.entries_seen) == before
    assert states(r) == []
    assert all(isinstance(e, RoundDisputed) for e in r.pending_events)
