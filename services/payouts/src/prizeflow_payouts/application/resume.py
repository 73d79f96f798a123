"""`ResumeVerifiedPayouts`: payouts held for the player's verification (`kyc_required`) move on when it changes, and
payouts held for the player's re-screen (`screening_pending`) when it is done.

Verified: each is gated again (→ approved when allowed now, else held with what holds it now). Failed: each is
rejected (`PayoutRejected`: rewards voids the claim's reservation). Still pending (or retry): nothing. A
`screening_pending` hold is gated again whatever the status: released once the player's screening is current, held
for two approvers on a hit, left as it is while still stale.

Called in the transaction that records the verification change (`on_verification_changed(books, player_ids)`,
from the verification use case), and by the periodic `sweep` job (`tick`) so nothing waits forever if a call was
missed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from prizeflow_contracts.envelope import OutgoingEvent
from prizeflow_contracts.events.payouts import REQUIRED_APPROVERS, PayoutApproved, PayoutRejected
from prizeflow_contracts.holds import PAYOUT_HOLD_KINDS, ReleasedBy, payout_hold
from prizeflow_contracts.policy import PLAYER_MESSAGE, Action, Finding, VerificationStatus
from prizeflow_payouts.application.books import Books
from prizeflow_payouts.application.events import payout_event
from prizeflow_payouts.application.gate import Candidate, DecisionRecord, Hold, PayoutGate
from prizeflow_payouts.application.metrics import PayoutMetrics
from prizeflow_payouts.domain.gate import GateDecision, HoldCode, Stage, stricter
from prizeflow_payouts.domain.payout import Change, HistoryEntry, Payout
from prizeflow_payouts.domain.state import PayoutState
from prizeflow_runtime.uow import UnitOfWork

log = logging.getLogger(__name__)
# The holds the sweep looks at again on its own (a verification or re-screen hook missed): their kinds say so.
SWEPT = tuple(k.code for k in PAYOUT_HOLD_KINDS.values() if k.swept)
S = PayoutState
ACTOR = "compliance"


class ResumeVerifiedPayouts:
    def __init__(
        self,
        *,
        uow: UnitOfWork[Books],
        gate: PayoutGate,
        source: str,
        metrics: PayoutMetrics | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_due: Callable[[], None] | None = None,
        batch_size: int = 500,
    ) -> None:
        self.uow = uow
        self.gate = gate
        self.source = source
        self.metrics = metrics
        self.clock = clock
        self.on_due = on_due
        self.batch_size = batch_size

    async def on_verification_changed(self, books: Books, player_ids: Sequence[str]) -> int:
        """In the caller's transaction: the kyc_required holds of these players, decided again. Returns how many
        payouts moved (approved, rejected or held for something else)."""
        if not player_ids:
            return 0
        wanted = sorted(set(player_ids))
        waiting = {code: await books.holds.held_payouts(wanted, code, limit=self.batch_size) for code in SWEPT}
        # Released by the verification (verified: gated again; failed: rejected), or by the re-screen (gated again).
        held = [p for code, ps in waiting.items() if _released_by(code) is ReleasedBy.VERIFICATION for p in ps]
        pending = [p for code, ps in waiting.items() if _released_by(code) is ReleasedBy.RESCREEN for p in ps]
        if not held and not pending:
            return 0
        players = await books.compliance.facts.players(sorted({p.player_id for p in [*held, *pending]}))
        now = self.clock()
        failed = [p for p in held if _status(players, p.player_id) is VerificationStatus.FAILED]
        verified = [p for p in held if _status(players, p.player_id) is VerificationStatus.VERIFIED] + pending
        decisions = await self.gate.decide(books, [Candidate(p) for p in verified], Stage.VERIFICATION)
        changes: list[Change] = []
        holds: list[Hold] = []
        released: list[str] = []
        unchanged: set[str] = set()
        approvals = await books.holds.approvals_of(
            [p.id for p, d in zip(verified, decisions, strict=True) if d.action is Action.ALLOW]
        )
        for rec in failed:
            reason = PLAYER_MESSAGE[Finding.KYC_FAILED]
            changes.append(
                Change(
                    record=rec,
                    expected=S.PENDING_APPROVAL,
                    to=S.REJECTED,
                    finished_at=now,
                    history=[
                        HistoryEntry(S.PENDING_APPROVAL, S.REJECTED, ACTOR, reason="identity verification failed")
                    ],
                    events=[
                        payout_event(
                            rec, PayoutRejected, source=self.source, rejected_by=ACTOR, reason=reason, rejected_at=now
                        )
                    ],
                )
            )
        for rec, d in zip(verified, decisions, strict=True):
            needed = REQUIRED_APPROVERS[rec.approval_policy]
            by = approvals.get(rec.id, [])
            if d.action is Action.ALLOW and len(by) < needed:
                # Verified, and still the approval its amount needs (from before the hold, or now): a plain pending
                # payout for approvers, no longer a hold.
                released.append(rec.id)
            elif d.action is Action.ALLOW:
                events: list[OutgoingEvent] = [
                    payout_event(
                        rec,
                        PayoutApproved,
                        source=self.source,
                        approval_policy=rec.approval_policy,
                        approved_by=by[:needed],
                        approved_at=now,
                        key=("verified", rec.held_at.isoformat() if rec.held_at else ""),
                    )
                ]
                changes.append(
                    Change(
                        record=rec,
                        expected=S.PENDING_APPROVAL,
                        to=S.APPROVED,
                        available_at=now,
                        history=[HistoryEntry(S.PENDING_APPROVAL, S.APPROVED, ACTOR, reason=_released_why(rec))],
                        events=events,
                    )
                )
            elif d.hold is not None and d.hold.value == rec.hold_code:
                unchanged.add(rec.id)  # still waits for the same thing: no new hold, no new decision recorded
            else:
                code = d.hold or HoldCode.POLICY
                policy = stricter(rec.approval_policy, d.approval_policy or rec.approval_policy)
                holds.append(Hold.of(rec.id, code, d, policy.value))
        applied = await books.payouts.apply(changes, at=now)
        await books.holds.hold(holds, at=now)
        await books.holds.release_holds(released)
        # A rejection for a failed verification is a decision too (the verification decided, not a rule).
        refusals: list[tuple[Payout, GateDecision]] = []
        if failed:
            version = (await books.compliance.facts.active_policy()).version
            refusal = GateDecision(
                Action.REFUSE,
                detail="identity verification failed",
                reasons=({"finding": Finding.KYC_FAILED.value, "detail": "identity verification failed"},),
                refusal=Finding.KYC_FAILED,
                policy_version=version,
            )
            refusals = [(p, refusal) for p in failed]
        decided = [*((p, d) for p, d in zip(verified, decisions, strict=True) if p.id not in unchanged), *refusals]
        await books.holds.record_decisions(
            [DecisionRecord(p.id, p.claim_id, p.player_id, Stage.VERIFICATION, d, now) for p, d in decided]
        )
        self.gate.count(Stage.VERIFICATION, [d for _, d in decided])
        if self.metrics is not None:
            for ch in applied:
                self.metrics.transitions.labels(ch.to.value, ch.record.provider_name).inc()
        if any(ch.to is S.APPROVED for ch in applied) and self.on_due is not None:
            books.payouts.after_commit(self.on_due)  # the worker looks once they are there to see
        return len(applied) + len(holds) + len(released)

    async def tick(self) -> bool:
        """One pass of the sweep (a job on the runtime's scheduler, every PAYOUTS_COMPLIANCE_SWEEP_S)."""
        return await self.sweep() > 0

    async def sweep(self) -> int:
        """Every player with a kyc_required or screening_pending hold, whatever call was missed; returns how many
        payouts moved."""
        moved = 0
        async with self.uow() as books:
            players = [
                player for code in SWEPT for player in await books.holds.players_with_holds(code, limit=self.batch_size)
            ]
            moved = await self.on_verification_changed(books, players)
            await self.gate.refresh_held(books)
        if moved:
            log.info("compliance sweep: %d payouts held for verification moved on", moved)
        return moved


def _released_by(code: HoldCode) -> ReleasedBy:
    return PAYOUT_HOLD_KINDS[code].released_by


def _released_why(rec: Payout) -> str:
    kind = payout_hold(rec.hold_code)
    return "re-screened" if kind is not None and kind.released_by is ReleasedBy.RESCREEN else "identity verified"


def _status(players: Any, player_id: str) -> VerificationStatus:
    p = players.get(player_id)
    return p.verification if p is not None else VerificationStatus.NOT_STARTED


__all__ = ["ResumeVerifiedPayouts"]
