"""TopUpMoney: the one path that credits a top-up and applies its refunds and disputes, whoever reports them (the
webhook consumer or a verify call), under the top-up's row lock: whichever comes first credits, the other finds it
credited.

Money only ever moves on the provider's word: a top-up is credited once, from the provider's clearing account; a
refund or a dispute debits the wallet as far as the wallet can cover it and records the rest as the player's
receivable, never a negative balance; a dispute won gives back first what the player was made to owe, then the
wallet (`domain/topups.py`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any

from prizeflow_contracts.envelope import EventPayload, event_id_for, new_event
from prizeflow_contracts.errors import EventRefusal
from prizeflow_contracts.events.rewards import TopUpAdjusted, TopUpAdjustmentKind, TopUpCredited
from prizeflow_contracts.money import Money
from prizeflow_rewards.application.books import Books
from prizeflow_rewards.application.common import Clock, count_transfers, utcnow
from prizeflow_rewards.domain import accounts
from prizeflow_rewards.domain.contradictions import Contradiction
from prizeflow_rewards.domain.ledger import LedgerError
from prizeflow_rewards.domain.topups import (
    REVERSED_BY,
    REVERSES,
    TRANSITIONS,
    Adjustment,
    AdjustmentKind,
    AdjustmentStatus,
    TopUp,
    TopUpStatus,
    adjustment_transfers,
    credit_transfer,
    debit_split,
    outstanding,
    reinstate_split,
)
from prizeflow_rewards.metrics import RewardsMetrics

log = logging.getLogger(__name__)


@dataclass
class TopUpMoney:
    """Credit and adjustments of a top-up: the only code that moves a top-up's money. The caller holds the
    top-up's row lock and has declared `top_up_accounts` (rows before accounts, accounts in one ordered lock)."""

    source: str
    metrics: RewardsMetrics | None = None
    clock: Clock = utcnow

    async def credit(
        self, books: Books, top_up: TopUp, *, payment_ref: str | None, cause: str | None
    ) -> tuple[TopUp, str]:
        """Credit once; then the adjustments reported before the payment. Returns (top-up, outcome)."""
        if top_up.status is TopUpStatus.CREDITED:
            return top_up, "duplicate"
        if not TRANSITIONS.allows(top_up.status, TopUpStatus.CREDITED):
            # Expired or failed: never credited later. The payment is on record for a person (the player paid and
            # got nothing, or the provider reports a payment that never was); no money moves on it.
            source = cause or f"verify:{payment_ref or top_up.session_ref}"
            contradiction = Contradiction(
                subject="topup",
                aggregate_id=top_up.id,
                state=top_up.status.value,
                reported="paid",
                source_ref=source,
                detail=f"top-up {top_up.id} is {top_up.status.value}, but {top_up.provider} reports it paid "
                f"(payment {payment_ref or 'unnamed'}): refund the player at the provider or credit them by hand",
            )
            if await books.contradictions.record(contradiction) and self.metrics is not None:
                self.metrics.contradictions.labels("topup", top_up.status.value, "paid").inc()
            log.error(
                "a payment was reported for a top-up that is %s: recorded for a person",
                top_up.status.value,
                extra={"top_up_id": top_up.id},
            )
            return top_up, "contradiction"
        transfer = credit_transfer(top_up)
        result = await self._apply(books, [transfer])
        now = self.clock()
        await books.top_ups.mark_credited(top_up.id, payment_ref=payment_ref, transfer_id=transfer.id, at=now)
        top_up = replace(
            top_up,
            status=TopUpStatus.CREDITED,
            payment_ref=payment_ref or top_up.payment_ref,
            credit_transfer_id=transfer.id,
            credited_at=now,
        )
        if result.applied:
            event = TopUpCredited(
                top_up_id=top_up.id,
                player_id=top_up.player_id,
                amount=Money(asset=top_up.asset, amount=top_up.amount),
                provider=top_up.provider,
                session_ref=top_up.session_ref,
                transfer_id=str(transfer.id),
                credited_at=now,
            )
            await self._stage(books, top_up, event, event_id_for("TopUpCredited", top_up.id), cause)
        waiting = [a for a in await books.top_ups.adjustments(top_up.id) if a.status is AdjustmentStatus.PENDING]
        # Refunds and disputes in arrival order, then their reversals (each after the adjustment it reverses).
        for adj in sorted(waiting, key=lambda a: (a.kind in REVERSES, a.seq)):
            # Read again: applying a dispute or refund applies the reversal that waited for it.
            now_ = await books.top_ups.find_adjustment(top_up.provider, adj.kind.value, adj.adjustment_ref)
            if now_ is not None and now_.status is AdjustmentStatus.PENDING:
                await self._apply_adjustment(books, top_up, now_, cause)
        return top_up, "applied"

    async def settle_unpaid(self, books: Books, top_up: TopUp, status: TopUpStatus) -> str:
        """A failure or an expiry: ends a session still open; after anything else it changes nothing."""
        if not TRANSITIONS.allows(top_up.status, status):
            return "stale"
        await books.top_ups.set_status(top_up.id, status)
        if self.metrics is not None:
            self.metrics.top_ups.labels(status.value).inc()
        return "applied"

    async def adjust(
        self,
        books: Books,
        top_up: TopUp,
        *,
        kind: AdjustmentKind,
        adjustment_ref: str,
        amount: Money,
        provider_event_id: str,
        cause: str | None,
    ) -> str:
        """Record a refund/dispute/dispute won once per (provider, kind, ref); apply it now if it can be, else when
        what it waits for arrives. Returns applied | recorded | duplicate."""
        if amount.asset != top_up.asset:
            raise EventRefusal(
                "amount_mismatch", f"{kind.value} {adjustment_ref} in {amount.asset} for a top-up in {top_up.asset}"
            )
        repo = books.top_ups
        existing = await repo.find_adjustment(top_up.provider, kind.value, adjustment_ref)
        if existing is not None:
            if (existing.top_up_id, existing.amount) == (top_up.id, amount.amount):
                return "duplicate"
            raise EventRefusal(
                "conflicting_event",
                f"{kind.value} {adjustment_ref} was recorded for {existing.top_up_id} with {existing.amount}",
            )
        recorded = await repo.adjustments(top_up.id)
        by_ref = {(a.kind, a.adjustment_ref): a for a in recorded}
        if kind in REVERSES:
            reversed_ = by_ref.get((REVERSES[kind], adjustment_ref))
            if reversed_ is not None and amount.amount > reversed_.amount:
                raise EventRefusal(
                    "amount_mismatch",
                    f"{kind.value} {adjustment_ref} of {amount.amount} gives back more than its {reversed_.amount}",
                )
        else:
            if outstanding(recorded) + amount.amount > top_up.amount:
                raise EventRefusal(
                    "amount_mismatch",
                    f"{kind.value} {adjustment_ref} of {amount.amount} would take back more than top-up {top_up.id} "
                    f"paid ({top_up.amount}, {outstanding(recorded)} already taken back)",
                )
            reversal = by_ref.get((REVERSED_BY[kind], adjustment_ref)) if kind in REVERSED_BY else None
            if reversal is not None and reversal.amount > amount.amount:
                raise EventRefusal(
                    "amount_mismatch",
                    f"{kind.value} {adjustment_ref} of {amount.amount}: its {reversal.kind.value} gave back "
                    f"{reversal.amount}",
                )
        adj = Adjustment(top_up.id, kind, adjustment_ref, amount.amount)
        await repo.record_adjustment(top_up.provider, adj, provider_event_id=provider_event_id)
        if top_up.status is TopUpStatus.CREDITED and await self._apply_adjustment(books, top_up, adj, cause):
            return "applied"
        return "recorded"

    async def _apply_adjustment(self, books: Books, top_up: TopUp, adj: Adjustment, cause: str | None) -> bool:
        repo = books.top_ups
        now = self.clock()
        if adj.kind in REVERSES:
            reversed_ = await repo.find_adjustment(top_up.provider, REVERSES[adj.kind].value, adj.adjustment_ref)
            if reversed_ is None or reversed_.status is not AdjustmentStatus.APPLIED:
                return False  # waits for the dispute or refund it reverses
            credited, cleared = reinstate_split(adj.amount, reversed_)
            done = replace(adj, debited=0, receivable=cleared, credited=credited)
        else:
            wallet = accounts.wallet(top_up.player_id, top_up.asset)
            available = (await books.ledger.balances([wallet]))[wallet].available
            debited, owed = debit_split(adj.amount, available)
            done = replace(adj, debited=debited, receivable=owed, credited=0)
        done = replace(done, status=AdjustmentStatus.APPLIED, applied_at=now)
        await self._apply(books, adjustment_transfers(top_up, done))
        await repo.mark_applied(done)
        event = TopUpAdjusted(
            top_up_id=top_up.id,
            player_id=top_up.player_id,
            kind=TopUpAdjustmentKind(done.kind.value),
            adjustment_ref=done.adjustment_ref,
            amount=Money(asset=top_up.asset, amount=done.amount),
            debited=done.debited,
            receivable=done.receivable,
            credited=done.credited,
            adjusted_at=now,
        )
        key = event_id_for("TopUpAdjusted", top_up.id, done.kind.value, done.adjustment_ref)
        await self._stage(books, top_up, event, key, cause)
        if self.metrics is not None:
            self.metrics.top_ups.labels(f"adjusted_{done.kind.value}").inc()
        if adj.kind in REVERSED_BY:  # a dispute won or a refund failed reported before what it reverses
            later = await repo.find_adjustment(top_up.provider, REVERSED_BY[adj.kind].value, adj.adjustment_ref)
            if later is not None and later.status is AdjustmentStatus.PENDING:
                await self._apply_adjustment(books, top_up, later, cause)
        return True

    async def _apply(self, books: Books, transfers: list[Any]) -> Any:
        try:
            result = await books.ledger.apply(transfers)
        except LedgerError as err:
            # Refused by the ledger (the database's CHECKs): not retryable as it is; a person decides.
            raise EventRefusal("conflicting_event", f"the ledger refused a top-up transfer: {err.code}") from err
        count_transfers(self.metrics, result)
        return result

    async def _stage(self, books: Books, top_up: TopUp, event: EventPayload, event_id: Any, cause: str | None) -> None:
        envelope = new_event(
            event,
            source=self.source,
            correlation_id=top_up.correlation_id,
            causation_id=cause,
            subject=top_up.id,
            event_id=event_id,
        )
        await books.outbox.stage([envelope])


__all__ = ["TopUpMoney"]
