"""What a worker's pass claims for sending (`claim_due`): the due payouts, locked and committed `submitting` under
the worker's lease in one transaction, through the compliance gate when there is one. A fresh approved payout that
fails the gate now goes back to `pending_approval` and is never claimed; a retried one is screened again and its
verdict travels with the batch (`Claimed`) to the worker, which asks its provider first."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from prizeflow_contracts.policy import Action
from prizeflow_payouts.application.books import Books
from prizeflow_payouts.application.gate import Candidate, DecisionRecord, Hold, PayoutGate
from prizeflow_payouts.domain.gate import GateDecision, HoldCode, Stage, stricter
from prizeflow_payouts.domain.payout import Change, HistoryEntry, Payout
from prizeflow_payouts.domain.state import PayoutState

log = logging.getLogger(__name__)
S = PayoutState

# A retried payout's decision with one of these holds and no match: its screening cannot answer yet (stale player,
# a list not loaded). It is not created until it can (the worker's `_deferred`).
SCREENING_HOLDS = frozenset({HoldCode.SCREENING_PENDING, HoldCode.SCREENING_HIT})


@dataclass(frozen=True, slots=True)
class Claimed:
    """A batch claimed for sending (committed `submitting` under this worker's lease), with what its claim's
    screening found for its retries: `screened_out`, a match blocks them (never sent); `awaiting_screening`, their
    screening cannot answer yet (not created now). `full`: as many were due as a batch takes (more may be)."""

    payouts: list[Payout] = field(default_factory=list)
    screened_out: dict[str, str] = field(default_factory=dict)
    awaiting_screening: set[str] = field(default_factory=set)
    full: bool = False


async def claim_due(
    books: Books, gate: PayoutGate | None, *, owner: str, batch_size: int, lease_s: float, now: datetime
) -> Claimed:
    """At most `batch_size` due payouts, claimed for `owner` in the caller's transaction, with their history."""
    if gate is None:
        claimed = await books.payouts.claim_for_submit(owner=owner, limit=batch_size, lease_s=lease_s)
        batch = Claimed(claimed, full=len(claimed) >= batch_size)
    else:
        batch = await _gated_claim(books, gate, owner=owner, batch_size=batch_size, lease_s=lease_s, now=now)
    await books.payouts.add_history([(rec.id, h) for rec in batch.payouts for h in claim_history(rec, owner)], at=now)
    return batch


async def _gated_claim(
    books: Books, gate: PayoutGate, *, owner: str, batch_size: int, lease_s: float, now: datetime
) -> Claimed:
    """Lock what is due, gate the approved payouts never attempted at a provider (one batch), hold those that
    fail it (approved → pending_approval), claim the rest: all in this transaction, under the rows' locks, so a
    held payout is never claimed by anyone."""
    if not gate.screen_ready:
        # Lists still loading in this process (it just started): nothing is sent unscreened, and nothing is
        # held for people only because of that; the next pass looks again.
        return Claimed()
    due = await books.holds.lock_due_for_submit(limit=batch_size)
    fresh = [p for p in due if p.state is S.APPROVED and p.attempts == 0]
    fresh_ids = {p.id for p in fresh}
    # A payout tried before (a retry, a lease run out) may be at its provider: it is never held (its earlier
    # attempt's answer must be asked first), but it is screened again. Once the provider says it holds nothing
    # (`_submit_calls`, step 2), a match found since ends it (never sent, never held), and a screening that
    # cannot answer yet (the player's is stale: `screening_pending`; a list not loaded) sends nothing: it waits
    # as a retryable failure, after the retries' backoff, for the re-screen (`_deferred`). Its backoff keeps it
    # from being due every pass, so waiting payouts never fill the batches of the others.
    retried = [p for p in due if not (p.state is S.APPROVED and p.attempts == 0)]
    # A fresh payout whose request-time allow still stands (nothing it was made with has changed) is not
    # decided again (`PayoutGate.standing`): its allow is recorded again at send. The rest are decided.
    stood = await gate.standing(books, fresh)
    judge = [p for p in fresh if p.id not in stood] + retried
    by_id = dict(
        zip(
            [p.id for p in judge],
            await gate.decide(books, [Candidate.stored(p) for p in judge], Stage.SEND),
            strict=True,
        )
    )
    by_id.update(stood)
    decisions = [by_id[p.id] for p in fresh]
    again = [(p, by_id[p.id]) for p in retried]
    screened_out = {p.id: d.detail for p, d in again if d.matches or d.player_hit}
    awaiting = {p.id for p, d in again if p.id not in screened_out and d.hold in SCREENING_HOLDS}
    held = [(p, d) for p, d in zip(fresh, decisions, strict=True) if d.action is not Action.ALLOW]
    applied = await books.payouts.apply(
        [
            Change(
                record=p,
                expected=S.APPROVED,
                to=S.PENDING_APPROVAL,
                history=[HistoryEntry(S.APPROVED, S.PENDING_APPROVAL, owner, reason=f"compliance hold: {_code(d)}")],
            )
            for p, d in held
        ],
        at=now,
    )
    moved = {ch.record.id for ch in applied}
    await books.holds.hold(
        [
            Hold.of(p.id, _code(d), d, stricter(p.approval_policy, d.approval_policy or p.approval_policy).value)
            for p, d in held
            if p.id in moved
        ],
        at=now,
    )
    await books.holds.record_decisions(
        [
            DecisionRecord(p.id, p.claim_id, p.player_id, Stage.SEND, by_id[p.id], now)
            for p in [*fresh, *retried]
            if p.id in fresh_ids or p.id in screened_out or p.id in awaiting
        ]
    )
    gate.count(Stage.SEND, decisions)
    if held:
        log.warning("%d payouts held by the compliance gate before sending", len(held))
    stopped = {p.id for p, _ in held}
    claimed = await books.holds.claim_locked([p for p in due if p.id not in stopped], owner=owner, lease_s=lease_s)
    return Claimed(claimed, screened_out, awaiting, full=len(due) >= batch_size)


def claim_history(rec: Payout, owner: str) -> list[HistoryEntry]:
    """What a claim records of a payout: a retry after its backoff, the move to `submitting`, or a lease resumed."""
    actor, attempt, prev = owner, rec.attempts, rec.previous_state
    entries: list[HistoryEntry] = []
    if prev is S.FAILED:
        entries.append(HistoryEntry(S.FAILED, S.APPROVED, actor, reason="retry after backoff", attempt=attempt))
    if prev in (S.FAILED, S.APPROVED):
        entries.append(HistoryEntry(S.APPROVED, S.SUBMITTING, actor, attempt=attempt))
    if prev is S.SUBMITTING:
        entries.append(
            HistoryEntry(
                S.SUBMITTING, S.SUBMITTING, actor, reason="lease expired: resumed, sync first", attempt=attempt
            )
        )
    return entries


def _code(d: GateDecision) -> HoldCode:
    return d.hold or HoldCode.POLICY


__all__ = ["SCREENING_HOLDS", "Claimed", "claim_due", "claim_history"]
