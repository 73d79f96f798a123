"""What a reviewer is told: what in a payout deserves a second look (why the gate holds it and why rewards held its
claim, in their kinds' words), how many approvals it still needs, how old it is, and why the person looking may not
decide it (pure: no I/O, no clock)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from prizeflow_console.domain.holds import PENDING_APPROVAL, gate_hold
from prizeflow_console.domain.viewer import Action, Viewer
from prizeflow_contracts.events.payouts import REQUIRED_APPROVERS, ApprovalPolicy
from prizeflow_contracts.holds import claim_hold_label


@dataclass(frozen=True, slots=True)
class Signal:
    """One thing about a payout worth a reviewer's attention; `code` is stable (tests, styling)."""

    code: str
    text: str


def risk_signals(payout: Mapping[str, Any], claim: Mapping[str, Any] | None) -> list[Signal]:
    """What the payout and its claim carry: the compliance gate's hold, the claim's hold and who released it,
    earlier failed attempts."""
    signals: list[Signal] = []
    if (hold := gate_hold(payout)) is not None:
        detail = payout.get("hold_detail")
        signals.append(Signal(f"gate_{hold.code}", hold.label + (f". Detail: {detail}." if detail else ".")))
    if claim and claim.get("hold_code"):
        detail = claim.get("hold_detail")
        text = claim_hold_label(str(claim["hold_code"])) + (f" Detail: {detail}." if detail else "")
        signals.append(Signal(str(claim["hold_code"]), text))
    requested_by, player = payout.get("requested_by"), payout.get("player_id")
    if requested_by and player and requested_by != player:
        signals.append(Signal("requested_by_other", f"Requested by {requested_by}, not by the player"))
    if payout.get("last_error_code"):
        signals.append(Signal("failed_before", f"An earlier attempt failed: {payout['last_error_code']}"))
    return signals


def required_approvals(policy: str | None) -> int | None:
    """Approvers the payout's policy needs (auto 0, single 1, dual 2); None for a policy this console does not know."""
    try:
        return REQUIRED_APPROVERS[ApprovalPolicy(policy or "")]
    except ValueError:
        return None


def why_not_decide(
    viewer: Viewer, *, player_id: str | None, requested_by: str | None, approved_by: Iterable[str]
) -> str | None:
    """None when `viewer.may_decide_payout` allows it, else the sentence saying why not (same rules, same order)."""
    if viewer.may_decide_payout(player_id=player_id, requested_by=requested_by, approved_by=approved_by):
        return None
    if not viewer.may(Action.DECIDE_PAYOUT):
        roles = ", ".join(sorted(viewer.roles)) or "no role"
        return f"Your roles ({roles}) cannot approve or reject payouts: only approvers decide. You see it read-only."
    if viewer.user_id == player_id:
        return "This payout pays you: another approver must decide on it."
    if viewer.user_id == requested_by:
        return "You asked for this payout (you released its claim or requested it): another approver must decide."
    return "You approved this payout already; it waits for a second approver."


def age(since: str | datetime | None, now: datetime) -> str:
    """How long ago, as people say it: `45 s`, `12 min`, `3 h`, `2 d` (empty when unknown)."""
    if since is None or since == "":
        return ""
    try:
        at = since if isinstance(since, datetime) else datetime.fromisoformat(str(since).replace("Z", "+00:00"))
        seconds = int((now - at).total_seconds())
    except (TypeError, ValueError):
        return ""
    seconds = max(seconds, 0)
    for unit, size in (("d", 86_400), ("h", 3_600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


__all__ = [
    "PENDING_APPROVAL",
    "Signal",
    "age",
    "required_approvals",
    "risk_signals",
    "why_not_decide",
]
