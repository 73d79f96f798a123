"""People release a compliance hold (a hold is a payout state): the gate runs again with what they cleared."""

from __future__ import annotations

from datetime import datetime, timedelta

from prizeflow_contracts.holds import payout_hold
from prizeflow_contracts.policy import Action
from prizeflow_contracts.providers import destination_key
from prizeflow_payouts.application.actors import AdminError
from prizeflow_payouts.application.books import Books
from prizeflow_payouts.application.gate import Candidate, DecisionRecord, Hold, PayoutGate
from prizeflow_payouts.domain.gate import (
    Clearance,
    GateDecision,
    HoldCode,
    Stage,
    clearances_from_reasons,
    stricter,
)
from prizeflow_payouts.domain.payout import Payout
from prizeflow_runtime.errors import ErrorKind


async def release_hold(
    gate: PayoutGate | None, books: Books, rec: Payout, approved_by: list[str], now: datetime
) -> GateDecision | None:
    """People release a compliance hold: the matches two of them cleared are recorded (never asked again for
    this subject and entry) and the gate runs again, with what is true now; None: it allows the payout.
    Without a gate configured a hold cannot be released (fail closed)."""
    if gate is None:
        raise AdminError(ErrorKind.UNAVAILABLE, "compliance_unavailable", "the compliance gate is not configured here")
    cleared: list[Clearance] = []
    kind = payout_hold(rec.hold_code)
    if kind is not None and kind.records_clearances and len(set(approved_by[-2:])) == 2:
        latest = await books.holds.latest_decision(rec.id)
        if latest is not None:
            cleared = clearances_from_reasons(
                latest.decision.reasons, player_id=rec.player_id, destination=destination_key(rec.destination)
            )
            await books.holds.add_clearances(
                cleared, cleared_by=(approved_by[-2], approved_by[-1]), payout_id=rec.id, at=now
            )
    [decision] = await gate.decide(
        books,
        [Candidate.stored(rec)],
        Stage.APPROVAL,
        extra_cleared=cleared,
    )
    await books.holds.record_decisions(
        [DecisionRecord(rec.id, rec.claim_id, rec.player_id, Stage.APPROVAL, decision, now)]
    )
    gate.count(Stage.APPROVAL, [decision])
    if decision.action is Action.ALLOW:
        return None
    code = hold_code(decision)
    # A new hold: only approvals after it count for it (those made up to now released the one before).
    await books.holds.hold(
        [
            Hold.of(
                rec.id,
                code,
                decision,
                stricter(rec.approval_policy, decision.approval_policy or rec.approval_policy).value,
            )
        ],
        at=now + timedelta(microseconds=1),
    )
    return decision


def hold_code(decision: GateDecision) -> HoldCode:
    """The hold a decision that does not allow puts on a payout (a policy hold when it names none)."""
    return decision.hold or HoldCode.POLICY


__all__ = ["hold_code", "release_hold"]
