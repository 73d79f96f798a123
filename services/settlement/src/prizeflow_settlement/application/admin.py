"""Admin use cases: ResolveRound and VoidRound. Each change and its AdminActionRecorded commit together."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prizeflow_contracts.envelope import Envelope, EventPayload, new_event
from prizeflow_contracts.events.game import Placement
from prizeflow_contracts.events.settlement import RoundState
from prizeflow_runtime.audit import admin_action
from prizeflow_runtime.errors import ErrorKind, UseCaseError
from prizeflow_runtime.uow import UnitOfWork
from prizeflow_settlement.application.apply_round_events import Observations, outcome_event_id
from prizeflow_settlement.application.books import Books
from prizeflow_settlement.domain.results import ResultSet
from prizeflow_settlement.domain.round import Round, RoundRuleViolation
from prizeflow_settlement.metrics import SettlementMetrics


class RoundNotFoundError(UseCaseError):
    def __init__(self, round_id: str) -> None:
        super().__init__(ErrorKind.NOT_FOUND, "round_not_found", f"round {round_id} not found")
        self.round_id = round_id


@dataclass(frozen=True, slots=True)
class Actor:
    user_id: str
    roles: tuple[str, ...]


def _refuse_own(r: Round, actor: Actor, placements: Sequence[Placement] = ()) -> None:
    """Self-dealing (docs/architecture.md §6): nobody voids or resolves a round they entered, nor places
    themselves in one, whatever roles they hold (resolving a lost round in their own favour, voiding it for the fee)."""
    if actor.user_id in r.players or any(p.player_id == actor.user_id for p in placements):
        raise UseCaseError(
            ErrorKind.FORBIDDEN, "self_review", f"nobody decides round {r.round_id}: {actor.user_id} plays in it"
        )


def _summary(r: Round) -> dict[str, str]:
    out = {"state": r.state.value, "disputed": str(r.disputed).lower()}
    if r.hold_reason:
        out["hold_reason"] = r.hold_reason
    if r.results is not None:
        out["results_digest"] = r.results.digest
    return out


@dataclass
class _AdminAction:
    uow: UnitOfWork[Books]
    source: str
    service: str
    metrics: SettlementMetrics | None = None
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    async def _run(
        self,
        round_id: str,
        *,
        action: str,
        actor: Actor,
        reason: str,
        change: Callable[[Round, datetime], None],
    ) -> Round:
        action_id = f"act-{uuid.uuid4().hex}"
        now = self.clock()
        async with self.uow() as books:
            rounds = await books.rounds.lock_rounds([round_id], full_entries_for=[round_id])
            r = rounds.get(round_id)
            if r is None:
                raise RoundNotFoundError(round_id)
            before = _summary(r)
            r.cause_id = action_id
            try:
                change(r, now)
            except RoundRuleViolation as err:  # the transaction rolls back: nothing changed
                raise UseCaseError(ErrorKind.CONFLICT, err.code, err.detail) from err
            seen = Observations()
            seen.take(r, now)
            events: list[Envelope[Any]] = [self._follow_action(r, p, action_id) for p in r.pending_events]
            r.pending_events.clear()
            events.append(
                admin_action(
                    actor_user_id=actor.user_id,
                    actor_roles=actor.roles,  # what the actor holds: none refuses the action
                    action=action,
                    target_type="round",
                    target_id=round_id,
                    reason=reason,
                    before=before,
                    after=_summary(r),
                    service=self.service,
                    source=self.source,
                    correlation_id=r.correlation_id,
                    occurred_at=now,
                    action_id=action_id,
                    causation_id=action_id,
                )
            )
            await books.rounds.save([r])
            await books.outbox.stage(events)
        seen.publish(self.metrics)
        if self.metrics is not None:
            self.metrics.admin_actions.labels(action).inc()
        return r

    def _follow_action(self, r: Round, payload: EventPayload, action_id: str) -> Envelope[Any]:
        return new_event(
            payload,
            source=self.source,
            correlation_id=r.correlation_id,
            causation_id=action_id,
            subject=r.round_id,
            event_id=outcome_event_id(payload),
        )


@dataclass
class ResolveRound(_AdminAction):
    """Settle a stuck (closed or held) or disputed round with results an admin vouches for."""

    async def __call__(self, round_id: str, *, placements: Sequence[Placement], reason: str, actor: Actor) -> Round:
        def change(r: Round, now: datetime) -> None:
            _refuse_own(r, actor, placements)
            results = ResultSet.of(placements, reported_at=now, event_id=None)
            r.admin_resolve(results, reason=reason, actor=actor.user_id, at=now)

        return await self._run(round_id, action="round.resolve", actor=actor, reason=reason, change=change)


@dataclass
class VoidRound(_AdminAction):
    """Void a round that is not final; every paid entry fee is owed back (RoundVoided carries the refunds)."""

    async def __call__(self, round_id: str, *, reason: str, actor: Actor) -> Round:
        def change(r: Round, now: datetime) -> None:
            _refuse_own(r, actor)
            if r.state is RoundState.VOIDED:
                raise RoundRuleViolation("illegal_transition", f"round {round_id} is already voided")
            r.void(f"admin: {reason}", at=now, actor=actor.user_id)

        return await self._run(round_id, action="round.void", actor=actor, reason=reason, change=change)


__all__ = ["Actor", "ResolveRound", "RoundNotFoundError", "VoidRound"]
