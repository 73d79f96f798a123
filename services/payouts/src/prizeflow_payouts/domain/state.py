"""The payout state machine (docs/architecture.md §5): a StrEnum and one transition table, nothing scattered."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from prizeflow_contracts.providers import ProviderPayoutStatus
from prizeflow_contracts.transitions import Transitions


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
# Every legal move. A move not listed here is refused, whoever asks (worker, webhook, admin), and PostgreSQL refuses
# it too (trigger `payouts_transition_allowed`, migrations 0015 and 0021: the same pairs, frozen; a unit test holds
# them equal).
PAYOUT_MACHINE: Final = Transitions[PayoutState](
    "payout",
    {
        S.REQUESTED: frozenset({S.PENDING_APPROVAL, S.APPROVED, S.CANCELLED}),
        S.PENDING_APPROVAL: frozenset({S.APPROVED, S.REJECTED, S.CANCELLED}),
        # `paid` from approved: the provider answers an earlier attempt (sync first) or a create under the same
        # idempotency key with a payout it already holds. `pending_approval` from approved: the compliance gate, run
        # again just before a payout no provider has seen is first sent, holds it for a person (migration 0021).
        S.APPROVED: frozenset({S.SUBMITTING, S.CANCELLED, S.PAID, S.PENDING_APPROVAL}),
        # `paid`/`failed`/`cancelled` directly: a synchronous rail answers at once, nothing comes later.
        S.SUBMITTING: frozenset({S.SUBMITTED, S.PAID, S.FAILED, S.CANCELLED}),
        S.SUBMITTED: frozenset({S.PAID, S.FAILED, S.CANCELLED}),
        # `returned`: a paid payout came back, on a rail whose paid payouts can (capability `supports_returns`).
        S.PAID: frozenset({S.RETURNED}),
        # `approved`/`cancelled`: a retryable failure whose backoff has passed, or an admin retry or cancel; never a
        # final failure (`Payout.failed_for_good`: its reservation is void), which nothing moves any more. A failed
        # payout is never `paid` directly: a provider's later `paid` makes a retryable one due now, and its retry asks
        # the provider first (submitting → paid); for a final one it is a disagreement a person looks at.
        S.FAILED: frozenset({S.APPROVED, S.CANCELLED}),
        S.CANCELLED: frozenset(),
        S.REJECTED: frozenset(),
        S.RETURNED: frozenset(),
    },
)
TRANSITIONS: Final[Mapping[PayoutState, frozenset[PayoutState]]] = PAYOUT_MACHINE.table

# No provider has (or may have) the payout: it can be cancelled without asking one.
CANCELLABLE_LOCALLY: Final = frozenset({S.REQUESTED, S.PENDING_APPROVAL, S.APPROVED})
# Rows in these states still have work to do; the reconciler watches them.
NON_FINAL: Final = frozenset({S.REQUESTED, S.PENDING_APPROVAL, S.APPROVED, S.SUBMITTING, S.SUBMITTED})


def can_transition(src: PayoutState, dst: PayoutState) -> bool:
    return PAYOUT_MACHINE.allows(src, dst)


def check_transition(src: PayoutState, dst: PayoutState) -> None:
    """Raises `IllegalTransition("payout", src, dst)` unless the move is in the table."""
    PAYOUT_MACHINE.check(src, dst)


def steps_for_provider_status(  # noqa: PLR0911 - one return per provider status reads as the table it is
    current: PayoutState, status: ProviderPayoutStatus, *, returns: bool = False
) -> tuple[PayoutState, ...]:
    """The states a payout in `current` moves through when its provider reports `status`.

    Empty means nothing to do: a duplicate, a stale or out-of-order report never moves a payout backwards or
    twice (a `pending` after `paid`, a second `paid` ...). A `failed` after `paid` is a return (`returned`) on a
    rail whose paid payouts can come back (`returns`: capability `supports_returns`, e.g. a bank return of a
    Stripe payout); on any other rail it is out of order and changes nothing. A report about a payout in a final
    state never moves it (`judge_report` says what to do with one that disagrees).
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


class Reaction(StrEnum):
    """What a provider's unsolicited report (a webhook) does to a payout. The values are the outcomes counted and
    recorded per provider event."""

    MOVE = "applied"  # the steps of the verdict, now
    STALE = "stale"  # nothing: a duplicate, an earlier stage, or a word that agrees with where the payout is
    ASK = "sync_requested"  # the provider's current status decides, through the normal path (a sync, a retry)
    CHECK = "checking"  # contradicts where the payout is: recorded, the provider asked, a person if it stands


@dataclass(frozen=True, slots=True)
class Verdict:
    reaction: Reaction
    steps: tuple[PayoutState, ...] = ()


PENDING_STATUSES: Final = frozenset(
    {ProviderPayoutStatus.ACCEPTED, ProviderPayoutStatus.PENDING, ProviderPayoutStatus.SUBMITTED}
)
# Nothing of ours was ever at a provider: any payout it holds under our key is one we never sent.
NEVER_SENT: Final = frozenset({S.REQUESTED, S.PENDING_APPROVAL, S.REJECTED})
# The provider's statuses in which no money of ours is out (or it came back): what a payout that ended without
# paying may be at its provider. `None` is "the provider has no such payout".
NOTHING_OUT: Final = frozenset(
    {None, ProviderPayoutStatus.FAILED, ProviderPayoutStatus.CANCELLED, ProviderPayoutStatus.RETURNED}
)


def judge_report(  # noqa: PLR0911 - one return per row of the table in the README
    current: PayoutState,
    status: ProviderPayoutStatus,
    *,
    failed_for_good: bool,
    returns: bool,
    confirm_failures: bool = False,
) -> Verdict:
    """What a provider's report of `status` (a webhook: a frozen snapshot, perhaps old) does to a payout in `current`.

    Only a payout in flight moves on a report (submitting/submitted; paid to returned on a rail whose payouts come
    back, or on an explicit `returned`). A payout the worker will still send (approved, or a retryable failure) is
    sent only after asking the provider (sync first), so its current status decides. A payout in a final state
    never moves: a report that agrees with it, or is an earlier stage of it, is stale; one that contradicts it
    (paid after a final failure or a return, a reversal after paid, anything for a payout never sent) is checked
    against the provider's current status and, if it stands, raised for a person. `confirm_failures`: the rail
    must act before a failure is final (pull money back), so a `failed` for a payout in flight is asked, not taken.
    """
    P = ProviderPayoutStatus  # noqa: N806 - a local alias keeps the table readable
    if current in (S.SUBMITTING, S.SUBMITTED):
        if status is P.FAILED and confirm_failures:
            return Verdict(Reaction.ASK)
        steps = steps_for_provider_status(current, status, returns=returns)
        return Verdict(Reaction.MOVE, steps) if steps else Verdict(Reaction.STALE)
    if current is S.APPROVED or (current is S.FAILED and not failed_for_good):
        # Still to be sent: the worker asks the provider before anything else (the same idempotency key).
        if current is S.FAILED and status in (P.FAILED, P.CANCELLED):
            return Verdict(Reaction.STALE)
        return Verdict(Reaction.ASK)
    if current in NEVER_SENT:
        return Verdict(Reaction.STALE if status in (P.FAILED, P.CANCELLED) else Reaction.CHECK)
    if current is S.PAID:
        if status is P.RETURNED or (status is P.FAILED and returns):
            return Verdict(Reaction.MOVE, (S.RETURNED,))
        if status is P.PAID or status in PENDING_STATUSES:
            return Verdict(Reaction.STALE)
        return Verdict(Reaction.CHECK)  # a reversal after paid on a rail whose payouts do not come back
    if current is S.RETURNED:
        return Verdict(Reaction.CHECK if status is P.PAID else Reaction.STALE)
    # A final failure or a cancel: nothing was paid, and the reservation went back to the player's wallet.
    return Verdict(Reaction.STALE if status in NOTHING_OUT else Reaction.CHECK)


def provider_agrees(
    current: PayoutState, status_now: ProviderPayoutStatus | None, *, failed_for_good: bool
) -> bool | None:
    """Whether the provider's current status of a payout (`None`: it has none) agrees with where the payout is.

    None: the payout is still in flight (or will be sent again), so its own sync or retry settles it, not a check.
    """
    if current is S.PAID:
        return status_now is ProviderPayoutStatus.PAID
    if current is S.RETURNED:
        return status_now is not None and status_now in NOTHING_OUT  # it was paid, then came back
    if current in NEVER_SENT or current is S.CANCELLED or (current is S.FAILED and failed_for_good):
        return status_now in NOTHING_OUT
    return None


__all__ = [
    "CANCELLABLE_LOCALLY",
    "NEVER_SENT",
    "NON_FINAL",
    "NOTHING_OUT",
    "PAYOUT_MACHINE",
    "PENDING_STATUSES",
    "TRANSITIONS",
    "PayoutState",
    "Reaction",
    "Verdict",
    "can_transition",
    "check_transition",
    "judge_report",
    "provider_agrees",
    "steps_for_provider_status",
]
