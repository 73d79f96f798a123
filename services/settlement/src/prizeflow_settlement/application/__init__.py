"""Use cases (one class per verb) and the ports they depend on."""

from prizeflow_settlement.application.admin import Actor, ResolveRound, RoundNotFoundError, VoidRound
from prizeflow_settlement.application.apply_round_events import GAME_EVENTS, ApplyRoundEvents, outcome_event_id
from prizeflow_settlement.application.books import Books
from prizeflow_settlement.application.gauges import RefreshRoundsGauge
from prizeflow_settlement.application.ports import EntryKey, Outbox, RoundPage, RoundQueries, RoundStore

__all__ = [
    "GAME_EVENTS",
    "Actor",
    "ApplyRoundEvents",
    "Books",
    "EntryKey",
    "Outbox",
    "RefreshRoundsGauge",
    "ResolveRound",
    "RoundNotFoundError",
    "RoundPage",
    "RoundQueries",
    "RoundStore",
    "VoidRound",
    "outcome_event_id",
]
