"""The payout state machine, transition by transition; what every provider report does in every state; and when
the provider's current status agrees with a payout's state."""

from __future__ import annotations

import importlib.util
import itertools
from pathlib import Path

import pytest

from prizeflow_contracts.providers import ProviderPayoutStatus as P
from prizeflow_contracts.transitions import IllegalTransition
from prizeflow_payouts.domain.state import (
    TRANSITIONS,
    PayoutState,
    Reaction,
    can_transition,
    check_transition,
    judge_report,
    provider_agrees,
    steps_for_provider_status,
)

S = PayoutState
LEGAL = {
    (S.REQUESTED, S.PENDING_APPROVAL),
    (S.REQUESTED, S.APPROVED),
    (S.REQUESTED, S.CANCELLED),
    (S.PENDING_APPROVAL, S.APPROVED),
    (S.PENDING_APPROVAL, S.REJECTED),
    (S.PENDING_APPROVAL, S.CANCELLED),
    (S.APPROVED, S.SUBMITTING),
    (S.APPROVED, S.CANCELLED),
    (S.APPROVED, S.PAID),
    (S.APPROVED, S.PENDING_APPROVAL),  # the compliance gate before a first send (migration 0021)
    (S.SUBMITTING, S.SUBMITTED),
    (S.SUBMITTING, S.PAID),
    (S.SUBMITTING, S.FAILED),
    (S.SUBMITTING, S.CANCELLED),
    (S.SUBMITTED, S.PAID),
    (S.SUBMITTED, S.FAILED),
    (S.SUBMITTED, S.CANCELLED),
    (S.PAID, S.RETURNED),
    (S.FAILED, S.APPROVED),
    (S.FAILED, S.CANCELLED),
}


def test_every_state_has_a_row() -> None:
    assert set(TRANSITIONS) == set(PayoutState)


@pytest.mark.parametrize(("src", "dst"), list(itertools.product(PayoutState, PayoutState)))
def test_transition(src: PayoutState, dst: PayoutState) -> None:
    assert can_transition(src, dst) is ((src, dst) in LEGAL)
    if (src, dst) in LEGAL:
        check_transition(src, dst)
    else:
        with pytest.raises(IllegalTransition):
            check_transition(src, dst)


@pytest.mark.parametrize("final", [S.CANCELLED, S.REJECTED, S.RETURNED])
def test_final_states_go_nowhere(final: PayoutState) -> None:
    assert TRANSITIONS[final] == frozenset()


def test_paid_never_moves_backwards() -> None:
    assert TRANSITIONS[S.PAID] == {S.RETURNED}


@pytest.mark.parametrize(
    ("current", "status", "steps"),
    [
        (S.SUBMITTING, P.PENDING, (S.SUBMITTED,)),
        (S.SUBMITTING, P.ACCEPTED, (S.SUBMITTED,)),
        (S.SUBMITTED, P.PENDING, ()),
        (S.PAID, P.PENDING, ()),  # stale
        (S.SUBMITTING, P.PAID, (S.PAID,)),
        (S.SUBMITTED, P.PAID, (S.PAID,)),
        (S.PAID, P.PAID, ()),  # duplicate
        (S.FAILED, P.PAID, ()),  # never revived: a retry asks the provider first (judge_report)
        (S.PAID, P.FAILED, ()),  # out of order
        (S.SUBMITTED, P.FAILED, (S.FAILED,)),
        (S.FAILED, P.FAILED, ()),
        (S.SUBMITTED, P.CANCELLED, (S.CANCELLED,)),
        (S.PAID, P.CANCELLED, ()),
        (S.PAID, P.RETURNED, (S.RETURNED,)),
        (S.SUBMITTED, P.RETURNED, (S.PAID, S.RETURNED)),
        (S.RETURNED, P.RETURNED, ()),
        (S.PENDING_APPROVAL, P.PAID, ()),  # never paid before it is approved
        (S.REJECTED, P.PAID, ()),
        (S.CANCELLED, P.PAID, ()),
    ],
)
def test_provider_status_steps(current: PayoutState, status: P, steps: tuple[PayoutState, ...]) -> None:
    assert steps_for_provider_status(current, status) == steps


@pytest.mark.parametrize(("current", "status"), list(itertools.product(PayoutState, P)))
def test_provider_steps_are_always_legal(current: PayoutState, status: P) -> None:
    src = current
    for step in steps_for_provider_status(current, status):
        check_transition(src, step)
        src = step


def test_the_database_allows_exactly_the_transitions_of_the_table() -> None:
    """Migration 0021's trigger function `payout_transition_allowed` (0015's pairs and `approved →
    pending_approval`) holds the same pairs, frozen (the integration tests run it on PostgreSQL)."""
    path = Path(__file__).parents[2] / "migrations" / "versions" / "0021_compliance_gate.py"
    spec = importlib.util.spec_from_file_location("migration_0021", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert set(module.ALLOWED) == {(a.value, b.value) for a, targets in TRANSITIONS.items() for b in targets}
    closure = module.reachable(tuple(module.ALLOWED))
    # Several steps in one statement, never out of a final state (paid only towards returned).
    assert {a for a, _ in closure} == {s.value for s, targets in TRANSITIONS.items() if targets}
    assert {b for a, b in closure if a == "paid"} == {"returned"}


# -- every provider report in every state (judge_report) ------------------------------------------------------
# One letter per status, in this order: M moves (the steps below), S stale (nothing), A asks the provider through
# the path that asks it anyway (a sync now, or the next attempt's sync first), C checks a contradiction (recorded,
# the provider's current status read, a person if it stands). `failed!` is a final failure, `failed` a retryable.
ORDER = (P.ACCEPTED, P.PENDING, P.SUBMITTED, P.PAID, P.FAILED, P.CANCELLED, P.RETURNED)
REPORTS = {
    "requested": "CCCCSSC",
    "pending_approval": "CCCCSSC",
    "approved": "AAAAAAA",
    "submitting": "MMMMMMM",
    "submitted": "SSSMMMM",
    "paid": "SSSSCCM",
    "failed": "AAAASSA",
    "failed!": "CCCCSSS",
    "cancelled": "CCCCSSS",
    "rejected": "CCCCSSC",
    "returned": "SSSCSSS",
}
LETTER = {"M": Reaction.MOVE, "S": Reaction.STALE, "A": Reaction.ASK, "C": Reaction.CHECK}
MOVES = {
    (S.SUBMITTING, P.ACCEPTED): (S.SUBMITTED,),
    (S.SUBMITTING, P.PENDING): (S.SUBMITTED,),
    (S.SUBMITTING, P.SUBMITTED): (S.SUBMITTED,),
    (S.SUBMITTING, P.PAID): (S.PAID,),
    (S.SUBMITTING, P.FAILED): (S.FAILED,),
    (S.SUBMITTING, P.CANCELLED): (S.CANCELLED,),
    (S.SUBMITTING, P.RETURNED): (S.PAID, S.RETURNED),
    (S.SUBMITTED, P.PAID): (S.PAID,),
    (S.SUBMITTED, P.FAILED): (S.FAILED,),
    (S.SUBMITTED, P.CANCELLED): (S.CANCELLED,),
    (S.SUBMITTED, P.RETURNED): (S.PAID, S.RETURNED),
    (S.PAID, P.RETURNED): (S.RETURNED,),
}
CASES = [
    (key, status, LETTER[row[n]], returns, confirm)
    for key, row in REPORTS.items()
    for n, status in enumerate(ORDER)
    for returns in (False, True)
    for confirm in (False, True)
]


def _expected(
    key: str, status: P, reaction: Reaction, *, returns: bool, confirm: bool
) -> tuple[Reaction, tuple[S, ...]]:
    state = S(key.rstrip("!"))
    if status is P.FAILED and returns and state is S.PAID:
        return Reaction.MOVE, (S.RETURNED,)  # a paid payout came back, on a rail whose payouts can
    if status is P.FAILED and confirm and state in (S.SUBMITTING, S.SUBMITTED):
        return Reaction.ASK, ()  # the rail pulls the money back before a failure is final: its sync decides
    return reaction, MOVES.get((state, status), ())


def test_every_state_and_status_is_in_the_table() -> None:
    assert {k.rstrip("!") for k in REPORTS} == {s.value for s in PayoutState}
    assert set(ORDER) == set(P)


@pytest.mark.parametrize(("key", "status", "reaction", "returns", "confirm"), CASES)
def test_what_a_provider_report_does(key: str, status: P, reaction: Reaction, returns: bool, confirm: bool) -> None:
    verdict = judge_report(
        S(key.rstrip("!")), status, failed_for_good=key.endswith("!"), returns=returns, confirm_failures=confirm
    )
    assert (verdict.reaction, verdict.steps) == _expected(key, status, reaction, returns=returns, confirm=confirm)
    src = S(key.rstrip("!"))
    for step in verdict.steps:
        check_transition(src, step)
        src = step


@pytest.mark.parametrize("final", ["paid", "failed!", "cancelled", "rejected", "returned"])
def test_no_report_ever_moves_a_final_state_but_a_return_of_a_paid_payout(final: str) -> None:
    for status, returns, confirm in itertools.product(P, (False, True), (False, True)):
        verdict = judge_report(
            S(final.rstrip("!")), status, failed_for_good=final.endswith("!"), returns=returns, confirm_failures=confirm
        )
        assert verdict.steps in ((), (S.RETURNED,))
        if verdict.steps:
            assert final == "paid"


# -- the provider's current status against the payout's state (provider_agrees) -------------------------------
# Per state, what the provider may say now for us to agree: `-` is "it has no such payout". `None`: in flight.
NOW = (None, P.ACCEPTED, P.PENDING, P.SUBMITTED, P.PAID, P.FAILED, P.CANCELLED, P.RETURNED)
AGREES: dict[str, str | None] = {
    "requested": "YNNNNYYY",
    "pending_approval": "YNNNNYYY",
    "rejected": "YNNNNYYY",
    "cancelled": "YNNNNYYY",
    "failed!": "YNNNNYYY",
    "paid": "NNNNYNNN",
    "returned": "NNNNNYYY",
    "approved": None,
    "submitting": None,
    "submitted": None,
    "failed": None,
}


@pytest.mark.parametrize(("key", "n"), list(itertools.product(AGREES, range(len(NOW)))))
def test_whether_the_provider_agrees_now(key: str, n: int) -> None:
    row = AGREES[key]
    expected = None if row is None else row[n] == "Y"
    assert provider_agrees(S(key.rstrip("!")), NOW[n], failed_for_good=key.endswith("!")) is expected
