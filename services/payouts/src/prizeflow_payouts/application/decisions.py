"""What every operator's decision on a payout shares: the payout locked until its transaction ends, the audit record
(AdminActionRecorded: who, roles, why, correlation id, before/after), and the change committed with its events in
the same transaction (or refused whole: `concurrent_change`). `PayoutAdmin` (approve, reject, cancel, retry, quote)
and `SettleOutOfBand` (a manual payout's outcome, a contradiction acknowledged, an envelope signed outside) are
built on it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from prizeflow_contracts.envelope import Envelope, OutgoingEvent
from prizeflow_contracts.events.audit import AdminActionRecorded
from prizeflow_payouts.application.actors import Actor, AdminError
from prizeflow_payouts.application.books import Books
from prizeflow_payouts.application.gate import PayoutGate
from prizeflow_payouts.application.metrics import PayoutMetrics
from prizeflow_payouts.application.registry import ProviderRegistry
from prizeflow_payouts.application.transitions import ChangeBuilder
from prizeflow_payouts.domain.payout import Change, HistoryEntry, Payout
from prizeflow_payouts.domain.state import PayoutState
from prizeflow_runtime.audit import admin_action
from prizeflow_runtime.errors import ErrorKind
from prizeflow_runtime.uow import UnitOfWork

S = PayoutState


class OperatorDecisions:
    def __init__(
        self,
        *,
        uow: UnitOfWork[Books],
        registry: ProviderRegistry,
        builder: ChangeBuilder,
        service: str,
        metrics: PayoutMetrics | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_due: Callable[[], None] | None = None,
        gate: PayoutGate | None = None,
    ) -> None:
        self.uow = uow
        # The compliance gate: the approval that releases a hold runs it again (cleared matches excluded).
        self.gate = gate
        self.on_due = on_due  # tells this process's worker a payout became due (approved) without waiting its pause
        self.registry = registry
        self.builder = builder
        self.service = service
        self.metrics = metrics
        self.clock = clock

    @property
    def source(self) -> str:
        return self.builder.source

    # -- helpers ----------------------------------------------------------------------------------------------
    async def _locked(self, books: Books, payout_id: str, *, state: S | None = None) -> Payout:
        """The payout, locked until the transaction ends; in `state`, or refused `not_<state>`."""
        rec = await books.payouts.get(payout_id, for_update=True)
        if rec is None:
            raise AdminError(ErrorKind.NOT_FOUND, "payout_not_found", f"no payout {payout_id}")
        if state is not None and rec.state is not state:
            raise AdminError(ErrorKind.CONFLICT, f"not_{state.value}", f"payout {rec.id} is {rec.state.value}")
        return rec

    def _audit(
        self,
        actor: Actor,
        action: str,
        rec: Payout,
        *,
        reason: str | None,
        after: dict[str, str],
        now: datetime,
    ) -> Envelope[AdminActionRecorded]:
        return admin_action(
            actor_user_id=actor.user_id,
            actor_roles=actor.roles,  # what the actor holds: none is refused by the contract, never assumed
            action=action,
            target_type="payout",
            target_id=rec.id,
            reason=reason,
            before={"state": rec.state.value},
            after=after,
            service=self.service,
            source=self.source,
            # The payout's own flow, so its audit joins the round → claim → payout trail (`prizeflow-ops trace`);
            # the operator's request id stays in the access log.
            correlation_id=rec.correlation_id,
            occurred_at=now,
        )

    async def _commit(self, books: Books, change: Change, now: datetime) -> None:
        if change.to is change.expected:
            await books.payouts.stage([change], at=now)
            return
        applied = await books.payouts.apply([change], at=now)
        if not applied:
            raise AdminError(
                ErrorKind.CONFLICT, "concurrent_change", f"payout {change.record.id} changed meanwhile; try again"
            )
        if self.metrics is not None:
            self.metrics.transitions.labels(change.to.value, change.record.provider_name).inc()
        if change.to is S.APPROVED and self.on_due is not None:
            books.payouts.after_commit(self.on_due)  # the worker looks once the approval is there to see

    async def _decide(
        self,
        books: Books,
        rec: Payout,
        actor: Actor,
        action: str,
        *,
        to: S,
        reason: str | None,
        now: datetime,
        after: dict[str, str] | None = None,
        history_reason: str | None = None,
        follow: Callable[[Envelope[AdminActionRecorded]], list[OutgoingEvent]] | None = None,
        **fields: Any,
    ) -> None:
        """An operator's decision on a locked payout: its audit record, the events it causes (`follow`) and the
        move from its current state to `to`, committed together (or refused whole: `concurrent_change`)."""
        audit = self._audit(actor, action, rec, reason=reason, after=after or {"state": to.value}, now=now)
        change = Change(
            record=rec,
            expected=rec.state,
            to=to,
            history=[HistoryEntry(rec.state, to, actor.user_id, reason=history_reason or reason)],
            events=[audit, *(follow(audit) if follow else [])],
            **fields,
        )
        await self._commit(books, change, now)


__all__ = ["OperatorDecisions"]
