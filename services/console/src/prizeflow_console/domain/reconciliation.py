"""Reconciliation as a person reads it: what an exception's two sides say field by field, and what the console may
offer this person on it. The payouts service decides everything again (one person acknowledges; a money action is
proposed by one and executed only when a second, different person with approver/admin approves it)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from prizeflow_console.domain.money import format_minor, mask_destination
from prizeflow_console.domain.viewer import Action, Viewer
from prizeflow_contracts.reconciliation import (
    RECON_ACTIONS,
    RECON_KINDS,
    ExceptionKind,
    ExceptionState,
    ReconAction,
    Severity,
    recon_action,
)

# The payouts admin API's codes and their words come from the kinds' rows (`prizeflow_contracts.reconciliation`), in
# the order the queue's filters list them.
KINDS: Final = tuple(k.value for k in ExceptionKind)
SEVERITIES: Final = tuple(s.value for s in Severity)
STATES: Final = tuple(s.value for s in ExceptionState)
RUN_STATES: Final = ("running", "completed", "failed")
ACKNOWLEDGE: Final = ReconAction.ACKNOWLEDGE.value
KIND_WORDS: Final[Mapping[str, str]] = {k.code.value: k.label for k in RECON_KINDS.values()}
# The resolutions whose proposal carries the provider's withdrawal id.
NEEDS_WITHDRAWAL_ID: Final = frozenset(a.code.value for a in RECON_ACTIONS.values() if "withdrawal_id" in a.params)


def action_words(action: str) -> str:
    row = recon_action(action)
    return row.label if row is not None else action.replace("_", " ")


def is_money_action(action: str) -> bool:
    """Whether a second person executes it; an action this build does not know is taken to (payouts decides)."""
    row = recon_action(action)
    return row is None or row.moves_money


@dataclass(frozen=True, slots=True)
class Offer:
    """What to draw for this person on one exception. `approve` is the standing proposal's action when this person
    may confirm it; `notes` say why something is not offered (never a silent absence)."""

    take: bool
    acknowledge: str | None  # the resolution that moves no money, when this person may post it
    propose: tuple[str, ...]
    approve: str | None
    notes: tuple[str, ...]


def _nothing(note: str) -> Offer:
    return Offer(take=False, acknowledge=None, propose=(), approve=None, notes=(note,))


def offer(viewer: Viewer, exception: Mapping[str, Any]) -> Offer:
    if exception.get("state") == ExceptionState.RESOLVED:
        return _nothing("This exception is resolved: there is nothing left to do.")
    if not viewer.may(Action.WORK_EXCEPTION):
        return _nothing("Your roles let you read reconciliation, not act on it.")
    actions = [str(a) for a in exception.get("actions") or []]
    take = exception.get("owner") != viewer.user_id
    # Acknowledging (no money moves) is open to one person even while a money action is proposed: it is how a
    # proposal nobody should confirm is set aside (payouts: "confirm that, or acknowledge it").
    acknowledge = ACKNOWLEDGE if ACKNOWLEDGE in actions else None
    proposal = exception.get("proposal")
    if not isinstance(proposal, Mapping):
        money = tuple(a for a in actions if is_money_action(a))
        return Offer(take=take, acknowledge=acknowledge, propose=money, approve=None, notes=())
    action, proposer = str(proposal.get("action") or ""), str(proposal.get("proposed_by") or "")
    standing = f"{action_words(action)} proposed by {proposer}"
    if proposer == viewer.user_id:
        note = f"You proposed to {action_words(action)}: a second person, an approver or an admin, must approve it."
        return Offer(take=take, acknowledge=acknowledge, propose=(), approve=None, notes=(note,))
    if not viewer.may(Action.APPROVE_EXCEPTION):
        note = f"{standing.capitalize()} waits for an approver or an admin."
        return Offer(take=take, acknowledge=acknowledge, propose=(), approve=None, notes=(note,))
    return Offer(take=take, acknowledge=acknowledge, propose=(), approve=action, notes=())


@dataclass(frozen=True, slots=True)
class Row:
    """One field of the comparison: our value, each provider line's value, and whether they disagree."""

    label: str
    ours: str
    theirs: tuple[str, ...]
    differs: bool


@dataclass(frozen=True, slots=True)
class SideBySide:
    ours_heading: str | None  # None: no payout of ours (the provider paid on its own)
    theirs_headings: tuple[str, ...]  # empty: the provider has no line
    rows: tuple[Row, ...]


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _instant(value: Any) -> datetime | None:
    try:
        at = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return at.astimezone(UTC) if at.tzinfo else at.replace(tzinfo=UTC)


def moment(value: Any) -> str:
    """An RFC 3339 instant as people read it (UTC, seconds); anything else as it is."""
    at = _instant(value) if value else None
    return at.strftime("%Y-%m-%d %H:%M:%S UTC") if at else _text(value)


def window_words(since: Any, until: Any) -> str:
    """`2026-11-25 16:00 → 17:00 UTC` (the end not included); both dates when they differ."""
    start, end = _instant(since), _instant(until)
    if start is None or end is None:
        return f"{_text(since)} → {_text(until)}"
    tail = end.strftime("%H:%M") if end.date() == start.date() else end.strftime("%Y-%m-%d %H:%M")
    return f"{start.strftime('%Y-%m-%d %H:%M')} → {tail} UTC"


def _money(side: Mapping[str, Any]) -> str:
    amount, asset = side.get("amount"), side.get("asset")
    if isinstance(amount, int) and not isinstance(amount, bool):
        return format_minor(amount, str(asset or ""))
    return ""


# label, our field, their field, how a value is shown, whether a difference matters to the match
_FIELDS: Final[tuple[tuple[str, str, str, Callable[[Mapping[str, Any], str], str], bool], ...]] = (
    ("Amount", "amount", "amount", lambda side, _: _money(side), True),
    ("Asset", "asset", "asset", lambda side, f: _text(side.get(f)), True),
    ("Destination", "destination", "destination", lambda side, f: mask_destination(_text(side.get(f)) or None), True),
    ("Our reference", "idempotency_key", "reference", lambda side, f: _text(side.get(f)), True),
    ("Provider reference", "provider_ref", "provider_ref", lambda side, f: _text(side.get(f)), False),
    ("When", "paid_at", "occurred_at", lambda side, f: moment(side.get(f)), False),
    ("What", "state", "kind", lambda side, f: _text(side.get(f)), False),
)


def side_by_side(ours: Mapping[str, Any] | None, theirs: Sequence[Mapping[str, Any]]) -> SideBySide:
    """Our payout beside the provider's line(s), one row per field. A row differs when both sides hold the field
    and any line's raw value is not ours (destinations are compared in full, then shown masked; amounts against
    payout lines only)."""
    lines = [t for t in theirs if isinstance(t, Mapping)]
    rows = []
    for label, our_field, their_field, show, compared in _FIELDS:
        mine = ours.get(our_field) if ours else None
        # A fee or a reversal is its own amount, not the payout's: only payout lines are held to ours there.
        held = [line for line in lines if their_field != "amount" or line.get("kind") in (None, "payout")]
        values = [line.get(their_field) for line in held]
        differs = compared and mine is not None and any(v is not None and v != mine for v in values)
        rows.append(
            Row(
                label=label,
                ours=show(ours, our_field) if ours else "",
                theirs=tuple(show(line, their_field) for line in lines),
                differs=differs,
            )
        )
    ours_heading = f"Our payout {ours.get('payout_id')}" if ours else None
    theirs_headings = tuple(
        f"Provider line {line.get('line_id')}" + (f" ({line.get('raw_type')})" if line.get("raw_type") else "")
        for line in lines
    )
    return SideBySide(ours_heading, theirs_headings, tuple(rows))


__all__ = [
    "ACKNOWLEDGE",
    "KINDS",
    "KIND_WORDS",
    "NEEDS_WITHDRAWAL_ID",
    "RUN_STATES",
    "SEVERITIES",
    "STATES",
    "Offer",
    "Row",
    "SideBySide",
    "action_words",
    "is_money_action",
    "moment",
    "offer",
    "side_by_side",
    "window_words",
]
