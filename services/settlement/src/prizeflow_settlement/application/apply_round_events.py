"""ApplyRoundEvents: a poll of game events applied to the rounds they touch, in the poll's one transaction (the
consumer hands it the books bound to it, the inbox rows already claimed)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from prizeflow_contracts.envelope import Envelope, EventPayload, StagedEvent, event_id_for, stage_events
from prizeflow_contracts.errors import EventRefusal
from prizeflow_contracts.events.game import (
    EntryRecorded,
    GameRoundVoided,
    RoundClosed,
    RoundOpened,
    RoundResultsReported,
)
from prizeflow_contracts.events.settlement import (
    EntryAccepted,
    RoundDisputed,
    RoundSettled,
    RoundStateChanged,
    RoundVoided,
)
from prizeflow_settlement.application.books import Books
from prizeflow_settlement.application.ports import EntryKey
from prizeflow_settlement.domain.results import ResultSet
from prizeflow_settlement.domain.round import Round, RoundRuleViolation
from prizeflow_settlement.metrics import SettlementMetrics

GAME_EVENTS = (RoundOpened, EntryRecorded, RoundClosed, RoundResultsReported, GameRoundVoided)


def outcome_event_id(payload: EventPayload) -> Any:
    """The deterministic id of an outcome: each business fact has exactly one id, whoever emits it."""
    if isinstance(payload, RoundStateChanged):
        return event_id_for("settlement", payload.round_id, "state", payload.to_state.value)
    if isinstance(payload, RoundSettled):
        return event_id_for("settlement", payload.round_id, "settled")
    if isinstance(payload, RoundVoided):
        return event_id_for("settlement", payload.round_id, "voided")
    if isinstance(payload, RoundDisputed):
        return event_id_for("settlement", payload.round_id, "disputed", payload.conflicting.digest)
    if isinstance(payload, EntryAccepted):
        return event_id_for("settlement", payload.round_id, "entry", payload.entry_id)
    raise TypeError(f"no outcome id rule for {type(payload).__name__}")


@dataclass
class Observations:
    """Metric updates held back until the whole batch has been applied (a refused batch is re-run)."""

    transitions: list[tuple[str, str]] = field(default_factory=list)
    settle_latencies: list[float] = field(default_factory=list)
    disputes: int = 0

    def take(self, r: Round, at: datetime) -> None:
        for p in r.pending_events:
            if isinstance(p, RoundStateChanged):
                self.transitions.append((p.from_state.value if p.from_state else "none", p.to_state.value))
            elif isinstance(p, RoundSettled) and r.closed_at is not None:
                self.settle_latencies.append(max(0.0, (at - r.closed_at).total_seconds()))
            elif isinstance(p, RoundDisputed):
                self.disputes += 1

    def publish(self, metrics: SettlementMetrics | None) -> None:
        if metrics is None:
            return
        for from_state, to_state in self.transitions:
            metrics.transitions.labels(from_state, to_state).inc()
        for seconds in self.settle_latencies:
            metrics.settle_latency.observe(seconds)
        if self.disputes:
            metrics.disputes.inc(self.disputes)


@dataclass
class ApplyRoundEvents:
    source: str
    metrics: SettlementMetrics | None = None
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    async def __call__(self, books: Books, envelopes: Sequence[Envelope[EventPayload]]) -> None:
        for env in envelopes:
            if not isinstance(env.data, GAME_EVENTS):
                raise EventRefusal("unknown_event_type", f"settlement does not consume {env.type}")
        # Entries a poll needs to see: those it records (same id or same player), and every placed player's.
        entry_keys = [
            EntryKey(e.data.round_id, e.data.entry_id, e.data.player_id)
            for e in envelopes
            if isinstance(e.data, EntryRecorded)
        ]
        entry_keys += [
            EntryKey(e.data.round_id, None, p.player_id)
            for e in envelopes
            if isinstance(e.data, RoundResultsReported)
            for p in e.data.placements
        ]
        voiding = {e.data.round_id for e in envelopes if isinstance(e.data, GameRoundVoided)}
        round_ids = {e.data.round_id for e in envelopes}  # type: ignore[attr-defined]
        rounds = await books.rounds.lock_rounds(round_ids, entry_keys=entry_keys, full_entries_for=voiding)
        touched: dict[str, Round] = {}
        outgoing: list[StagedEvent] = []
        seen = Observations()
        now = self.clock()
        for env in envelopes:
            cause = str(env.id)
            try:
                r = self._apply(rounds, env, now, cause)
            except RoundRuleViolation as violation:
                raise EventRefusal(violation.code, violation.detail) from violation
            touched[r.round_id] = r
            seen.take(r, now)
            if r.pending_events:
                # The round's own flow id (from RoundOpened), whatever the game event carried: every outcome of
                # a round is keyed alike, so its EntryAccepted precede its RoundSettled on one partition.
                outgoing += stage_events(
                    [(p, outcome_event_id(p)) for p in r.pending_events],
                    source=self.source,
                    correlation_id=r.correlation_id,
                    causation_id=cause,
                    subject=r.round_id,
                    time=now,
                )
                r.pending_events.clear()
        await books.rounds.save(list(touched.values()))
        await books.outbox.stage(outgoing)
        seen.publish(self.metrics)

    def _apply(self, rounds: dict[str, Round], env: Envelope[EventPayload], now: datetime, cause: str) -> Round:
        data = env.data
        if isinstance(data, RoundOpened):
            known = rounds.get(data.round_id)
            if known is not None:
                known.reopen(data)
                return known
            r = Round.open(data, correlation_id=env.correlationid, at=now, cause_id=cause)
            rounds[r.round_id] = r
            return r
        round_id: str = data.round_id  # type: ignore[attr-defined]
        r_or_none = rounds.get(round_id)
        if r_or_none is None:
            raise RoundRuleViolation("unknown_aggregate", f"round {round_id} was never opened ({env.type})")
        r = r_or_none
        r.cause_id = cause
        if isinstance(data, EntryRecorded):
            r.record_entry(data, at=now)
        elif isinstance(data, RoundClosed):
            r.close(entry_count=data.entry_count, closed_at=data.closed_at, at=now)
        elif isinstance(data, RoundResultsReported):
            r.report_results(ResultSet.of(data.placements, reported_at=data.reported_at, event_id=cause), at=now)
        elif isinstance(data, GameRoundVoided):
            r.void(data.reason, at=now)
        return r


__all__ = ["GAME_EVENTS", "ApplyRoundEvents", "Observations", "outcome_event_id"]
