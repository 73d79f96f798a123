"""The payout state machine, transition by transition."""

from __future__ import annotations

import itertools

import pytest

from prizeflow_contracts.providers import ProviderPayoutStatus as P
from prizeflow_payouts.domain.state import (
    TRANSITIONS,
    IllegalTransitionError,
    PayoutState,
    can_transition,
    check_transition,
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
    (S.FAILED, S.PAID),
}


def test_every_state_has_a_row() -> None:
    assert set(TRANSITIONS) == set(PayoutState)


@pytest.mark.parametrize(("src", "dst"), list(itertools.product(PayoutState, PayoutState)))
def test_transition(src: PayoutState, dst: PayoutState) -> None:
    assert can_transition(src, dst) is ((src, dst) in LEGAL)
    if (src, dst) in LEGAL:
        check_transition(src, dst)
    else:
        with pytest.raises(IllegalTransitionError):
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
        (S.FAILED, P.PAID, (S.PAID,)),  # an unknown outcome confirmed late
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
