"""The exception queue people resolve (docs/adr/0011-reconciliation.md).

`acknowledge` is one person's, on record with a reason. A money action (write-off, fee, return, an unknown outcome
settled) is proposed by one person and executed when a second, different one holding the approver or admin role
confirms the same action; it then moves money only through the ledger's normal paths: a `ReconciliationAdjusted`
event rewards posts once, or the payout's own paid → returned transition (the lifecycle's, `PayoutReturns`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from prizeflow_contracts.envelope import Envelope, event_id_for, new_event
from prizeflow_contracts.events.audit import AdminActionRecorded
from prizeflow_contracts.events.payouts import AdjustmentKind, ReconciliationAdjusted
from prizeflow_contracts.money import ASSETS, Money
from prizeflow_reconciliation.application.books import ReconciliationStores, ReconciliationUnitOfWork
from prizeflow_reconciliation.application.ports import Actor, ReconException, ReconMetricsPort, Resolution
from prizeflow_reconciliation.domain import (
    ACTIONS,
    MONEY_ACTIONS,
    SEVERITY,
    Action,
    ExceptionKind,
    ExceptionState,
    Severity,
    may_move,
)
from prizeflow_reconciliation.statements import ReconError, ReturnOutcome, SettlesUnknownOutcome, Statements
from prizeflow_runtime.audit import admin_action
from prizeflow_runtime.errors import ErrorKind

SECOND_PERSON_ROLES = frozenset({"approver", "admin"})


def needs_two_people(kind: ExceptionKind, action: Action) -> bool:
    """A money action, or closing a difference where money left that Prizeflow did not send, takes two people."""
    return action in MONEY_ACTIONS or SEVERITY[kind] is Severity.CRITICAL


@dataclass
class ExceptionQueue:
    """The queue's decisions: `take` an exception, `resolve` it (alone, or as the first or second of two)."""

    uow: ReconciliationUnitOfWork
    statements: Statements
    service: str
    source: str
    metrics: ReconMetricsPort | None = None
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    async def _locked(self, books: ReconciliationStores, exception_id: int) -> ReconException:
        exc = await books.exceptions.exception(exception_id, for_update=True)
        if exc is None:
            raise ReconError(ErrorKind.NOT_FOUND, "exception_not_found", f"no exception {exception_id}")
        if exc.state is ExceptionState.RESOLVED:
            raise ReconError(ErrorKind.CONFLICT, "already_resolved", f"exception {exception_id} is resolved")
        return exc

    def _audit(
        self,
        actor: Actor,
        action: str,
        exc: ReconException,
        *,
        reason: str | None,
        after: dict[str, str],
        now: datetime,
    ) -> Envelope[AdminActionRecorded]:
        return admin_action(
            actor_user_id=actor.user_id,
            actor_roles=actor.roles,
            action=action,
            target_type="recon_exception",
            target_id=str(exc.id),
            reason=reason,
            before={"state": exc.state.value},
            after=after,
            service=self.service,
            source=self.source,
            correlation_id=exc.correlation_id,
            occurred_at=now,
        )

    async def take(self, exception_id: int, actor: Actor, reason: str | None) -> str:
        """The caller owns the exception and investigates it."""
        now = self.clock()
        async with self.uow() as books:
            exc = await self._locked(books, exception_id)
            if not may_move(exc.state, ExceptionState.INVESTIGATING):
                raise ReconError(ErrorKind.CONFLICT, "illegal_transition", f"exception {exc.id} is {exc.state.value}")
            await books.exceptions.take(exc.id, actor.user_id, now)
            await books.exceptions.add_history(exc.id, actor.user_id, "take", reason, now)
            await books.outbox.add_events(
                [self._audit(actor, "recon.take", exc, reason=reason, after={"state": "investigating"}, now=now)]
            )
        return ExceptionState.INVESTIGATING.value

    async def resolve(
        self, exception_id: int, actor: Actor, action: Action, reason: str, params: Mapping[str, str] | None = None
    ) -> str:
        """`resolved`, or `proposed` for a money action still waiting for its second person."""
        now = self.clock()
        given = dict(params or {})
        async with self.uow() as books:
            exc = await self._locked(books, exception_id)
            self._check(exc, actor, action, given)
            if not needs_two_people(exc.kind, action):
                await self._finish(books, exc, actor, Resolution(action, reason, (actor.user_id,)), now)
                return ExceptionState.RESOLVED.value
            if exc.proposal is None:
                await self._propose(books, exc, actor, action, reason, given, now)
                return "proposed"
            resolution, given = self._confirmed(exc, actor, action, reason, given)
            if action in (Action.WRITE_OFF, Action.BOOK_FEE):
                resolution = await self._adjust(books, exc, resolution, now)
            elif action is Action.MARK_RETURNED:
                await self._returned(books, exc, actor, now)
            if action not in (Action.SETTLE_FOUND, Action.SETTLE_NOT_MADE):
                await self._finish(books, exc, actor, resolution, now)
                return ExceptionState.RESOLVED.value
            settler = self._settler(exc)
        # The rail's own book is settled in its own transaction (compare-and-set from `submitting`, so a repeat
        # changes nothing), then the exception: should the second fail, confirming again finishes it.
        found = given.get("withdrawal_id") if action is Action.SETTLE_FOUND else None
        await settler.settle_unknown_outcome(exc.payout_id or "", found, actor.user_id)
        async with self.uow() as books:
            exc = await self._locked(books, exception_id)
            await self._finish(books, exc, actor, resolution, self.clock())
        return ExceptionState.RESOLVED.value

    @staticmethod
    def _check(exc: ReconException, actor: Actor, action: Action, params: Mapping[str, str]) -> None:
        if action not in ACTIONS[exc.kind]:
            raise ReconError(
                ErrorKind.CONFLICT,
                "action_not_allowed",
                f"{action.value} does not resolve {exc.kind.value}; allowed: "
                + ", ".join(a.value for a in ACTIONS[exc.kind]),
            )
        if exc.player_id is not None and actor.user_id == exc.player_id:
            raise ReconError(ErrorKind.FORBIDDEN, "self_review", "nobody resolves a difference about their own payout")
        if action is Action.SETTLE_FOUND and not params.get("withdrawal_id") and not exc.proposal:
            raise ReconError(ErrorKind.BAD_REQUEST, "withdrawal_id_required", "settle_found needs the provider's id")

    async def _propose(  # noqa: PLR0917 - the decision's whole context
        self,
        books: ReconciliationStores,
        exc: ReconException,
        actor: Actor,
        action: Action,
        reason: str,
        params: dict[str, str],
        now: datetime,
    ) -> None:
        proposal = {
            "action": action.value,
            "proposed_by": actor.user_id,
            "proposed_at": now.isoformat(),
            "reason": reason,
            "params": params,
            # What the second person confirms: the money at stake as the first saw it.
            "asset": exc.asset,
            "amount": exc.amount,
        }
        await books.exceptions.propose(exc.id, proposal, now)
        await books.exceptions.add_history(exc.id, actor.user_id, f"propose {action.value}", reason, now)
        await books.outbox.add_events(
            [self._audit(actor, "recon.propose", exc, reason=reason, after={"proposal": action.value}, now=now)]
        )

    @staticmethod
    def _confirmed(
        exc: ReconException, actor: Actor, action: Action, reason: str, params: dict[str, str]
    ) -> tuple[Resolution, dict[str, str]]:
        """The second person's confirmation of exactly the standing proposal (its action, its parameters, the money
        it was about), or its refusal."""
        proposal = exc.proposal
        assert proposal is not None
        proposed = dict(proposal.get("params") or {})
        if params and params != proposed:
            raise ReconError(
                ErrorKind.CONFLICT,
                "proposal_differs",
                "a second person confirms what was proposed, not other parameters; acknowledge it or propose anew",
            )
        if (proposal.get("asset"), proposal.get("amount")) != (exc.asset, exc.amount):
            raise ReconError(ErrorKind.CONFLICT, "exception_changed", "the money at stake changed since the proposal")
        if proposal["action"] != action.value:
            raise ReconError(
                ErrorKind.CONFLICT,
                "proposal_differs",
                f"{proposal['proposed_by']} proposed {proposal['action']}; confirm that, or acknowledge it",
            )
        if proposal["proposed_by"] == actor.user_id:
            raise ReconError(ErrorKind.FORBIDDEN, "self_approval", "a second person confirms a money action")
        if not SECOND_PERSON_ROLES & actor.roles:
            raise ReconError(
                ErrorKind.FORBIDDEN, "approver_role_required", "the second person holds the approver or admin role"
            )
        people = (str(proposal["proposed_by"]), actor.user_id)
        return Resolution(action, reason, people), proposed

    async def _finish(
        self, books: ReconciliationStores, exc: ReconException, actor: Actor, resolution: Resolution, now: datetime
    ) -> None:
        await books.exceptions.resolve(exc.id, resolution, now)
        await books.exceptions.add_history(exc.id, actor.user_id, resolution.action.value, resolution.reason, now)
        after = {"state": "resolved", "resolution": resolution.action.value}
        await books.outbox.add_events(
            [
                self._audit(
                    actor, f"recon.{resolution.action.value}", exc, reason=resolution.reason, after=after, now=now
                )
            ]
        )
        if self.metrics is not None:
            rows = await books.exceptions.open_summary()
            self.metrics.unresolved(rows, now)

    def _settler(self, exc: ReconException) -> SettlesUnknownOutcome:
        settler = self.statements.get(exc.provider).settler
        if settler is None or exc.payout_id is None:
            raise ReconError(ErrorKind.CONFLICT, "not_settleable", f"{exc.provider} has no unknown outcome to settle")
        return settler

    async def _adjust(
        self, books: ReconciliationStores, exc: ReconException, resolution: Resolution, now: datetime
    ) -> Resolution:
        if exc.asset is None or exc.asset not in ASSETS or not exc.amount or not ASSETS[exc.asset].redeemable:
            raise ReconError(
                ErrorKind.CONFLICT,
                "not_bookable",
                f"exception {exc.id} has no amount of a ledger asset to book ({exc.amount} {exc.asset})",
            )
        if exc.kind is ExceptionKind.AMOUNT_MISMATCH and exc.underpaid:
            raise ReconError(
                ErrorKind.CONFLICT,
                "not_a_loss",
                f"the provider paid less than payout {exc.payout_id}: nothing left the platform to write off; "
                "acknowledge it with what was done for the player",
            )
        adjustment_id = f"recon-{exc.id}"
        rail = self.statements.get(exc.provider)
        event = ReconciliationAdjusted(
            adjustment_id=adjustment_id,
            exception_id=exc.id,
            kind=AdjustmentKind.FEE if resolution.action is Action.BOOK_FEE else AdjustmentKind.WRITE_OFF,
            provider=rail.provider_type,
            provider_name=rail.provider,
            amount=Money(asset=exc.asset, amount=exc.amount),
            payout_id=exc.payout_id,
            approved_by=list(resolution.resolved_by),
            reason=resolution.reason,
            adjusted_at=now,
        )
        await books.outbox.add_events(
            [
                new_event(
                    event,
                    source=self.source,
                    correlation_id=exc.correlation_id,
                    event_id=event_id_for("recon-adjustment", adjustment_id),
                )
            ]
        )
        return Resolution(resolution.action, resolution.reason, resolution.resolved_by, adjustment_id)

    @staticmethod
    async def _returned(books: ReconciliationStores, exc: ReconException, actor: Actor, now: datetime) -> None:
        """The payout never reached the player (missing, reversed, paid elsewhere): paid → returned, the wallet
        credited back by rewards on `PayoutReturned`, as for a provider's own return."""
        held = await books.payouts.locked(exc.payout_id) if exc.payout_id else None
        if held is None:
            raise ReconError(ErrorKind.CONFLICT, "no_payout", f"exception {exc.id} names no payout")
        if held.state != "paid":
            raise ReconError(ErrorKind.CONFLICT, "not_paid", f"payout {held.payout_id} is {held.state}")
        if exc.kind is ExceptionKind.UNRECORDED_REVERSAL and (exc.amount or 0) < held.amount:
            raise ReconError(
                ErrorKind.CONFLICT,
                "partial_reversal",
                f"the provider gave back {exc.amount} of {held.amount}: returning the payout would credit the player "
                "more than came back; acknowledge it with what was done",
            )
        outcome = await books.payouts.mark_returned(held.payout_id, actor=actor.user_id, at=now)
        if outcome is ReturnOutcome.NOT_RETURNABLE:
            raise ReconError(ErrorKind.CONFLICT, "not_returnable", f"payout {held.payout_id} cannot be returned")
        if outcome is ReturnOutcome.CHANGED:
            raise ReconError(
                ErrorKind.CONFLICT, "concurrent_change", f"payout {held.payout_id} changed meanwhile; try again"
            )


__all__ = ["SECOND_PERSON_ROLES", "ExceptionQueue", "needs_two_people"]
