"""The payout state machine (docs/architecture.md §5): a StrEnum and one transition table, nothing scattered."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Final

from prizeflow_contracts.providers import ProviderPayoutStatus


class PayoutState(StrEnum):
    REQUESTED = "requested"
    PENDING_APPROVAL = "pending_approval"
    APPROVED = "approved"
    SUBMITTING = "submitting"
    SUBMITTED = "submitted"
    PAID = "paid"
    FAILED = "failed"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    RETURNED = "returned"


S = PayoutState
# Every legal move. A move not listed here is refused, whoever asks (worker, webhook, admin).
TRANSITIONS: Final[Mapping[PayoutState, frozenset[PayoutState]]] = {
    S.REQUESTED: frozenset({S.PENDING_APPROVAL, S.APPROVED, S.CANCELLED}),
    S.PENDING_APPROVAL: frozenset({S.APPROVED, S.REJECTED, S.CANCELLED}),
    # `paid` from approved/failed: a provider confirms (sync or webhook) an earlier attempt whose
    # outcome was unknown; the provider's truth wins over our bookkeeping.
    S.APPROVED: frozenset({S.SUBMITTING, S.CANCELLED, S.PAID}),
    # `paid`/`failed`/`cancelled` directly: a synchronous rail answers at once, nothing comes later.
    S.SUBMITTING: frozenset({S.SUBMITTED, S.PAID, S.FAILED, S.CANCELLED}),
    S.SUBMITTED: frozenset({S.PAID, S.FAILED, S.CANCELLED}),
    S.PAID: frozenset({S.RETURNED}),
    # `approved`/`cancelled`: a retryable failure whose backoff has passed, or an admin retry or cancel; never a
    # final failure (`Payout.failed_for_good`: its reservation is void), which only its provider may still move.
    S.FAILED: frozenset({S.APPROVED, S.CANCELLED, S.PAID}),
    S.CANCELLED: frozenset(),
    S.REJECTED: frozenset(),
    S.RETURNED: frozenset(),
}

# No provider has (or may have) the payout: it can be cancelled without asking one.
CANCELLABLE_LOCALLY: Final = frozenset({S.REQUESTED, S.PENDING_APPROVAL, S.APPROVED})
# Rows in these states still have work to do; the reconciler watches them.
NON_FINAL: Final = frozenset({S.REQUESTED, S.PENDING_APPROVAL, S.APPROVED, S.SUBMITTING, S.SUBMITTED})


class IllegalTransitionError(Exception):
    def __init__(self, src: PayoutState, dst: PayoutState) -> None:
        super().__init__(f"illegal payout transition {src.value} -> {dst.value}")
        self.src = src
        self.dst = dst


def can_transition(src: PayoutState, dst: PayoutState) -> bool:
    return dst in TRANSITIONS[src]


def check_transition(src: PayoutState, dst: PayoutState) -> None:
    if not can_transition(src, dst):
        raise IllegalTransitionError(src, dst)


def steps_for_provider_status(  # noqa: PLR0911 - one return per provider status reads as the table it is
    current: PayoutState, status: ProviderPayoutStatus, *, returns: bool = False
) -> tuple[PayoutState, ...]:
    """The states a payout in `current` moves through when its provider reports `status`.

    Empty means nothing to do: a duplicate, a stale or out-of-order report never moves a payout backwards or
    twice (a `pending` after `paid`, a second `paid` ...). A `failed` after `paid` is a return (`returned`) on a
    rail whose paid payouts can come back (`returns`: capability `supports_returns`, e.g. a bank return of a
    Stripe payout); on any other rail it is out of order and changes nothing.
    """
    P = ProviderPayoutStatus  # noqa: N806 - a local alias keeps the table readable
    if status in (P.ACCEPTED, P.PENDING, P.SUBMITTED):
        return (S.SUBMITTED,) if current is S.SUBMITTING else ()
    if status is P.PAID:
        return (S.PAID,) if can_transition(current, S.PAID) else ()
    if status is P.FAILED:
        if current is S.PAID and returns:
            return (S.RETURNED,)
        return (S.FAILED,) if current in (S.SUBMITTING, S.SUBMITTED) else ()
    if status is P.CANCELLED:
        return (S.CANCELLED,) if current in (S.SUBMITTING, S.SUBMITTED) else ()
    if status is P.RETURNED:
        if current is S.PAID:
            return (S.RETURNED,)
        if can_transition(current, S.PAID):
            return (S.PAID, S.RETURNED)
        return ()
    raise AssertionError(f"unhandled provider status {status}")  # pragma: no cover


__all__ = [
    "CANCELLABLE_LOCALLY",
    "NON_FINAL",
    "TRANSITIONS",
    "IllegalTransitionError",
    "PayoutState",
    "can_transition",
    "check_transition",
    "steps_for_provider_status",
]
