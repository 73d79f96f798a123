"""The round aggregate and its transition table (docs/architecture.md §5).

OPEN → CLOSED → RESOLVED → SETTLED, and any non-final state → VOIDED. Every state change goes through
`Round._move`, which asks `TRANSITIONS` (the house's one `Transitions` type); nothing else decides what may follow
what. An event whose effect the round already shows (a replay) is a no-op; one that can never apply raises
`RoundRuleViolation` with a stable refusal code (`illegal_transition` for a move the table refuses), which the Kafka
entrypoint turns into a DLQ reason and the admin API into 409.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from prizeflow_contracts.envelope import EventPayload
from prizeflow_contracts.events.game import (
    EntryRecorded,
    PaidVia,
    Placement,
    PrizeSource,
    RoundOpened,
)
from prizeflow_contracts.events.settlement import (
    AllocationSource,
    EntryAccepted,
    FeeParty,
    Refund,
    ResultsSummary,
    RoundDisputed,
    RoundSettled,
    RoundState,
    RoundStateChanged,
    RoundVoided,
)
from prizeflow_contracts.money import Money
from prizeflow_contracts.transitions import IllegalTransition, Transitions
from prizeflow_settlement.domain.distribution import Split, distribute, fees_on, is_non_increasing
from prizeflow_settlement.domain.results import ResultSet

# Migration 0008's trigger `rounds_transition_allowed` holds the same pairs (tests/unit/test_transitions.py).
TRANSITIONS: Final = Transitions(
    "round",
    {
        RoundState.OPEN: frozenset({RoundState.CLOSED, RoundState.VOIDED}),
        RoundState.CLOSED: frozenset({RoundState.RESOLVED, RoundState.VOIDED}),
        RoundState.RESOLVED: frozenset({RoundState.SETTLED, RoundState.VOIDED}),
        RoundState.SETTLED: frozenset(),
        RoundState.VOIDED: frozenset(),
    },
    initial=frozenset({RoundState.OPEN}),
)
FINAL_STATES: Final = TRANSITIONS.finals

PLATFORM_ACCOUNT: Final = "platform"
HOLD_ENTRY_COUNT_MISMATCH: Final = "entry_count_mismatch"
HOLD_DISPUTED: Final = "disputed"


class RoundRuleViolation(Exception):  # noqa: N818  (a refusal, not a bug)
    """An event or command that can never apply to this round. `code` is a stable refusal reason."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Entry:
    entry_id: str
    player_id: str
    fee: Money
    paid_via: PaidVia
    recorded_at: datetime

    @classmethod
    def of(cls, e: EntryRecorded) -> Entry:
        return cls(e.entry_id, e.player_id, e.fee, e.paid_via, e.recorded_at)

    def same_as(self, other: Entry) -> bool:
        return (self.entry_id, self.player_id, self.fee, self.paid_via) == (
            other.entry_id,
            other.player_id,
            other.fee,
            other.paid_via,
        )


@dataclass(frozen=True, slots=True)
class Transition:
    from_state: RoundState | None
    to_state: RoundState
    reason: str | None
    at: datetime
    actor: str | None = None
    cause_id: str | None = None


@dataclass(frozen=True, slots=True)
class Dispute:
    existing: ResultsSummary
    conflicting: ResultsSummary
    placements: tuple[Placement, ...]
    at: datetime


def check_terms(spec: RoundOpened) -> None:
    """Settlement's own rule on top of the contract: custom shares must not pay a worse place more."""
    shares = spec.distribution.shares_bps()
    if not is_non_increasing(shares):
        raise RoundRuleViolation(
            "invalid_payload", f"round {spec.round_id}: custom_bps must be non-increasing by place, got {list(shares)}"
        )


@dataclass
class Round:
    """One round. Mutators append to the `pending_*` lists that the repository and outbox persist."""

    round_id: str
    competition_id: str
    correlation_id: str
    state: RoundState
    spec: RoundOpened
    version: int = 0
    entries_seen: int = 0
    entries_expected: int | None = None
    pot: int = 0
    closed_at: datetime | None = None
    settled_at: datetime | None = None
    voided_at: datetime | None = None
    results: ResultsSummary | None = None
    disputed: bool = False
    hold_reason: str | None = None
    void_reason: str | None = None
    reached: set[RoundState] = field(default_factory=set)
    # Entries known to this aggregate instance: those loaded (possibly a subset) and those recorded now.
    entries: dict[str, Entry] = field(default_factory=dict)
    players: dict[str, str] = field(default_factory=dict)
    all_entries_loaded: bool = False
    is_new: bool = False
    pending_events: list[EventPayload] = field(default_factory=list)
    pending_transitions: list[Transition] = field(default_factory=list)
    pending_entries: list[Entry] = field(default_factory=list)
    pending_results: ResultSet | None = None
    pending_split: RoundSettled | None = None
    pending_disputes: list[Dispute] = field(default_factory=list)
    resolved_disputes: bool = False
    had_results: bool = False
    # Id of the event or admin action being applied; recorded on each history row it causes.
    cause_id: str | None = None
    last_actor: str | None = None
    dirty: bool = False

    # --- creation -------------------------------------------------------------------------------------
    @classmethod
    def open(cls, spec: RoundOpened, *, correlation_id: str, at: datetime, cause_id: str | None = None) -> Round:
        check_terms(spec)
        r = cls(
            round_id=spec.round_id,
            competition_id=spec.competition_id,
            correlation_id=correlation_id,
            state=RoundState.OPEN,
            spec=spec,
            is_new=True,
            all_entries_loaded=True,
            cause_id=cause_id,
        )
        r.reached.add(RoundState.OPEN)
        r._record(None, RoundState.OPEN, "round opened", at)
        return r

    def reopen(self, spec: RoundOpened) -> None:
        """RoundOpened for a known round: a replay if the terms are identical, else refused."""
        if spec != self.spec:
            raise RoundRuleViolation(
                "conflicting_event", f"round {self.round_id} was already opened with different terms"
            )

    # --- game events ----------------------------------------------------------------------------------
    def record_entry(self, e: EntryRecorded, *, at: datetime) -> None:
        """Take an entry while the round is open. A paid one is announced (EntryAccepted): the fee is charged
        on settlement's decision, never on the game feed's word alone."""
        entry = Entry.of(e)
        known = self.entries.get(entry.entry_id)
        if known is not None:
            if known.same_as(entry):
                return  # replay
            raise RoundRuleViolation("conflicting_event", f"entry {entry.entry_id} already recorded differently")
        if self.state is not RoundState.OPEN:
            raise RoundRuleViolation(
                "illegal_transition", f"round {self.round_id} is {self.state.value}: entries are only taken while open"
            )
        if (other := self.players.get(entry.player_id)) is not None:
            raise RoundRuleViolation(
                "conflicting_event", f"player {entry.player_id} already entered round {self.round_id} as {other}"
            )
        fee_terms = self.spec.entry_fee
        expected_asset = fee_terms.asset if fee_terms is not None else None
        if expected_asset is not None and entry.fee.asset != expected_asset:
            raise RoundRuleViolation(
                "conflicting_event",
                f"entry {entry.entry_id} paid in {entry.fee.asset}, round {self.round_id} charges {expected_asset}",
            )
        if expected_asset is None and entry.fee.amount:
            raise RoundRuleViolation(
                "conflicting_event", f"entry {entry.entry_id} paid a fee in round {self.round_id}, which is free"
            )
        self.entries[entry.entry_id] = entry
        self.players[entry.player_id] = entry.entry_id
        self.pending_entries.append(entry)
        self.entries_seen += 1
        self.pot += entry.fee.amount
        self.dirty = True
        if entry.fee.amount:
            self.pending_events.append(
                EntryAccepted(
                    round_id=self.round_id,
                    entry_id=entry.entry_id,
                    player_id=entry.player_id,
                    fee=entry.fee,
                    paid_via=entry.paid_via,
                    accepted_at=at,
                )
            )

    def close(self, *, entry_count: int, closed_at: datetime, at: datetime) -> None:
        if self._replay_of(RoundState.CLOSED):
            return
        self._move(RoundState.CLOSED, "round closed", at, what="closing")
        self.entries_expected = entry_count
        self.closed_at = closed_at

    def report_results(self, results: ResultSet, *, at: datetime) -> None:
        """Resolve and settle; identical results again are a replay, different ones open a dispute.

        The caller loads the entries of every placed player (`players`): results placing someone who never
        entered are refused, unless the round's terms say entry is not required."""
        if self.results is not None:
            if results.digest == self.results.digest:
                return  # replay
            if self.state in (RoundState.RESOLVED, RoundState.SETTLED):
                self.check_entrants(results)
                self._dispute(results, at)
                return
        self._check_move(RoundState.RESOLVED, what="resolving")
        self.check_entrants(results)
        self._move(RoundState.RESOLVED, "results reported", at, what="resolving")
        self._store_results(results)
        if self.entries_expected is not None and self.entries_expected != self.entries_seen:
            # Settling now could pay from an incomplete pot: hold for an admin (POST /rounds/{id}/resolve).
            self.hold_reason = HOLD_ENTRY_COUNT_MISMATCH
            return
        self._settle(results, at, reason="results reported")

    def void(self, reason: str, *, at: datetime, actor: str | None = None) -> None:
        if self.state is RoundState.VOIDED:
            return  # replay
        if not self.all_entries_loaded:
            raise RuntimeError(f"round {self.round_id}: load every entry before voiding (refunds)")
        self._move(RoundState.VOIDED, reason, at, what="voiding", actor=actor)
        self.void_reason = reason
        refunds = [
            Refund(player_id=e.player_id, entry_id=e.entry_id, amount=e.fee, paid_via=e.paid_via)
            for e in sorted(self.entries.values(), key=lambda e: e.entry_id)
            if e.fee.amount > 0
        ]
        self.pending_events.append(RoundVoided(round_id=self.round_id, reason=reason, refunds=refunds, voided_at=at))

    # --- admin ----------------------------------------------------------------------------------------
    def admin_resolve(self, results: ResultSet, *, reason: str, actor: str, at: datetime) -> None:
        """Settle a stuck or disputed round with the results an admin vouches for."""
        self.check_entrants(results)
        self.last_actor = actor
        if self.state is RoundState.CLOSED:
            self._move(RoundState.RESOLVED, f"admin: {reason}", at, what="resolving", actor=actor)
            self._store_results(results)
        elif self.state is RoundState.RESOLVED:
            if self.results is None or results.digest != self.results.digest:
                self._store_results(results)
        elif self.state is RoundState.SETTLED:
            if not self.disputed:
                raise RoundRuleViolation("illegal_transition", f"round {self.round_id} is already settled")
            if self.results is None or results.digest != self.results.digest:
                raise RoundRuleViolation(
                    "round_already_settled",
                    f"round {self.round_id} was settled before the dispute; its payout cannot be changed here",
                )
            self._close_disputes()  # the admin upheld the results that were paid
            return
        else:
            self._check_move(RoundState.RESOLVED, what="resolving")
        self._close_disputes()
        self.hold_reason = None
        self._settle(results, at, reason=f"admin: {reason}", actor=actor)

    def check_entrants(self, results: ResultSet) -> None:
        """Only players who entered may be placed (and so paid), unless the terms say entry is not required."""
        if not self.spec.placements_require_entry:
            return
        strangers = sorted(p.player_id for p in results.placements if p.player_id not in self.players)
        if strangers:
            shown = ", ".join(strangers[:5]) + (f" and {len(strangers) - 5} more" if len(strangers) > 5 else "")
            raise RoundRuleViolation(
                "placement_not_entered", f"round {self.round_id}: results place players who never entered: {shown}"
            )

    # --- internals ------------------------------------------------------------------------------------
    def _replay_of(self, target: RoundState) -> bool:
        """True when the round already passed through `target` on its normal path (the event is a replay)."""
        return target in self.reached

    def _check_move(self, target: RoundState, *, what: str) -> None:
        """The table's refusal, as the round's: a stable `illegal_transition` naming what was tried."""
        try:
            TRANSITIONS.check(self.state, target)
        except IllegalTransition as err:
            raise RoundRuleViolation(
                "illegal_transition",
                f"round {self.round_id}: {what} needs {self.state.value} → {target.value}, which is not allowed",
            ) from err

    def _move(self, target: RoundState, reason: str, at: datetime, *, what: str, actor: str | None = None) -> None:
        self._check_move(target, what=what)
        self._record(self.state, target, reason, at, actor=actor)

    def _record(
        self,
        source: RoundState | None,
        target: RoundState,
        reason: str | None,
        at: datetime,
        *,
        actor: str | None = None,
    ) -> None:
        self.state = target
        self.reached.add(target)
        if target is RoundState.SETTLED:
            self.settled_at = at
        elif target is RoundState.VOIDED:
            self.voided_at = at
        self.pending_transitions.append(Transition(source, target, reason, at, actor, self.cause_id))
        self.pending_events.append(
            RoundStateChanged(round_id=self.round_id, from_state=source, to_state=target, reason=reason, changed_at=at)
        )
        self.dirty = True

    def _store_results(self, results: ResultSet) -> None:
        self.results = results.summary()
        self.pending_results = results

    def _dispute(self, results: ResultSet, at: datetime) -> None:
        assert self.results is not None
        conflicting = results.summary()
        if any(d.conflicting.digest == conflicting.digest for d in self.pending_disputes):
            return
        self.disputed = True
        if self.state is RoundState.RESOLVED:
            self.hold_reason = HOLD_DISPUTED
        self.pending_disputes.append(Dispute(self.results, conflicting, results.placements, at))
        self.pending_events.append(
            RoundDisputed(round_id=self.round_id, existing=self.results, conflicting=conflicting, disputed_at=at)
        )
        self.dirty = True

    def _close_disputes(self) -> None:
        if self.disputed:
            self.disputed = False
            self.resolved_disputes = True
            self.dirty = True

    def _settle(self, results: ResultSet, at: datetime, *, reason: str, actor: str | None = None) -> None:
        settled = self.compute_settlement(results, at)
        self._move(RoundState.SETTLED, reason, at, what="settling", actor=actor)
        self.pending_split = settled
        self.pending_events.append(settled)

    def compute_settlement(self, results: ResultSet, at: datetime) -> RoundSettled:
        spec = self.spec
        entry_asset = spec.entry_fee.asset if spec.entry_fee is not None else None
        fees = fees_on(self.pot, spec.platform_fee_bps, spec.organizer_fee_bps)
        if spec.prize_source is PrizeSource.ENTRY_POT:
            distributable, source = self.pot - fees.total, AllocationSource.POT
        else:
            assert spec.prize.amount is not None
            distributable, source = spec.prize.amount, AllocationSource.POOL
        split: Split = distribute(distributable, spec.distribution.shares_bps(), results.placements)
        fee_lines: list[dict[str, Any]] = []
        if entry_asset is not None:
            if fees.platform:
                fee_lines.append(
                    {
                        "party": FeeParty.PLATFORM,
                        "account_id": PLATFORM_ACCOUNT,
                        "amount": {"asset": entry_asset, "amount": fees.platform},
                    }
                )
            if fees.organizer and spec.organizer_id is not None:
                fee_lines.append(
                    {
                        "party": FeeParty.ORGANIZER,
                        "account_id": spec.organizer_id,
                        "amount": {"asset": entry_asset, "amount": fees.organizer},
                    }
                )
        # One validation of the whole document: cheaper than a constructor call per allocation and fee line.
        return RoundSettled.model_validate(
            {
                "round_id": self.round_id,
                "competition_id": self.competition_id,
                "asset": spec.prize.asset,
                "prize_source": spec.prize_source,
                "campaign_id": spec.prize.campaign_id,
                "distributable": split.distributable,
                "allocations": [
                    {"player_id": a.player_id, "rank": a.rank, "amount": a.amount, "source": source}
                    for a in split.awards
                ],
                "remainder": split.remainder,
                "fees": fee_lines,
                "settled_at": at,
            }
        )

    def clear_pending(self) -> None:
        """After the repository persisted the pending changes."""
        self.pending_events.clear()
        self.pending_transitions.clear()
        self.pending_entries.clear()
        self.pending_disputes.clear()
        self.pending_results = None
        self.pending_split = None
        self.resolved_disputes = False
        self.had_results = self.results is not None
        self.is_new = False
        self.dirty = False

    def snapshot(self) -> dict[str, Any]:
        """The mutable columns of the round row."""
        return {
            "round_id": self.round_id,
            "state": self.state.value,
            "version": self.version,
            "entries_seen": self.entries_seen,
            "entries_expected": self.entries_expected,
            "pot": self.pot,
            "closed_at": self.closed_at,
            "settled_at": self.settled_at,
            "voided_at": self.voided_at,
            "disputed": self.disputed,
            "hold_reason": self.hold_reason,
            "void_reason": self.void_reason,
            "reached": sorted(s.value for s in self.reached),
            "results_digest": self.results.digest if self.results else None,
            "results_summary": self.results.model_dump(mode="json") if self.results else None,
        }


__all__ = [
    "FINAL_STATES",
    "HOLD_DISPUTED",
    "HOLD_ENTRY_COUNT_MISMATCH",
    "PLATFORM_ACCOUNT",
    "TRANSITIONS",
    "Dispute",
    "Entry",
    "Round",
    "RoundRuleViolation",
    "Transition",
    "check_terms",
]
