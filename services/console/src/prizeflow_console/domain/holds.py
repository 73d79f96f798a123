"""Why a payout waits for the compliance gate, as the approvals pages draw it: its words, how loud its badge is and
whether people may approve it all come from the hold kind's row (`prizeflow_contracts.holds`), never from a code
typed here. A code this build does not know is still shown, named, and offered to approvers: payouts decides again.

Pure: no I/O. Staff read a hold's kind; a player only learns whether their own verification moves a claim on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from prizeflow_contracts.events.payouts import REQUIRED_APPROVERS
from prizeflow_contracts.holds import ReleasedBy, claim_hold, payout_hold, payout_hold_label

PENDING_APPROVAL: Final = "pending_approval"  # the payouts service's state of a payout waiting for approvers

# Why nobody may approve the payout yet, by what moves it on instead of people (payouts refuses the approval).
WAITS_FOR: Final[Mapping[ReleasedBy, str]] = {
    ReleasedBy.VERIFICATION: "This payout waits for the player's identity verification: it moves on by itself once "
    "they are verified, and nobody can approve it before. You may reject it.",
    ReleasedBy.RESCREEN: "This payout waits for the player's sanctions re-screening against the lists loaded since "
    "they were verified: it moves on by itself once they are screened again (or is held for two approvers on a "
    "hit), and nobody can approve it before. You may reject it.",
}
_HOW_MANY: Final = {1: "one", 2: "two", 3: "three"}


@dataclass(frozen=True, slots=True)
class GateHold:
    """A payout the gate holds, as a reviewer reads it. `badge` is the layout's classes: `hold-<code>` always, and
    `hold-alarm` (a sanctions match) or `hold-wait` for a kind this build knows."""

    code: str
    label: str
    badge: str
    approvable: bool  # people may approve it (else payouts refuses: it moves on by itself, or is rejected)
    waits: str | None  # why nobody may approve it yet (None when people may)
    check: str | None  # what each approver checks before approving (None: nothing beyond the payout)


def gate_hold(payout: Mapping[str, Any]) -> GateHold | None:
    """The hold of a payout waiting for the gate (None when it is not held by the gate)."""
    code = payout.get("hold_code")
    if not code or payout.get("state") != PENDING_APPROVAL:
        return None
    code = str(code)
    kind = payout_hold(code)
    if kind is None:
        return GateHold(code, payout_hold_label(code), f"badge hold-{code}", approvable=True, waits=None, check=None)
    approvable = kind.refused_with is None
    check = None
    if kind.records_clearances and kind.approval is not None:
        people = REQUIRED_APPROVERS[kind.approval]
        check = (
            f"A sanctions screening hit: {_HOW_MANY.get(people, str(people))} different approvers must approve it, "
            "each having checked the matched list entry against the player"
        )
    return GateHold(
        code,
        kind.label,
        f"badge hold-{code} {'hold-alarm' if kind.records_clearances else 'hold-wait'}",
        approvable=approvable,
        waits=None if approvable else WAITS_FOR.get(kind.released_by, kind.refusal_detail or kind.label),
        check=check,
    )


def verifies_identity(claim: Mapping[str, Any]) -> bool:
    """Whether the player's claim waits for their own identity verification (the wallet links to it)."""
    kind = claim_hold(claim.get("hold_code"))
    return kind is not None and kind.resumed_by_verification


__all__ = ["PENDING_APPROVAL", "WAITS_FOR", "GateHold", "gate_hold", "verifies_identity"]
