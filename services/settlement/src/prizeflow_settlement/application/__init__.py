"""Use cases (one class per verb) and the ports they depend on."""

from prizeflow_settlement.application.admin import Actor, ResolveRound, RoundNotFoundError, VoidRound
from prizeflow_settlement.application.apply_round_events import GAME_EVENTS, ApplyRoundEvents, outcome_event_id
from prizeflow_settlement.application.ports import EntryKey, RoundPage, RoundQueries, RoundStore, RoundStoreFactory

__all__ = [
    "GAME_EVENTS",
    "Actor",
    "ApplyRoundEvents",
    "EntryKey",
    "ResolveRound",
    "RoundNotFoundError",
    "RoundPage",
    "RoundQueries",
    "RoundStore",
    "RoundStoreFactory",
    "VoidRound",
    "outcome_event_id",
]
