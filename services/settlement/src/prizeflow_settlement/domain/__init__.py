"""Pure settlement rules: the round state machine and the prize distribution. No I/O."""

from prizeflow_settlement.domain.distribution import Award, Fees, Finisher, Split, distribute, fees_on
from prizeflow_settlement.domain.results import ResultSet, results_digest
from prizeflow_settlement.domain.round import (
    FINAL_STATES,
    HOLD_DISPUTED,
    HOLD_ENTRY_COUNT_MISMATCH,
    PLATFORM_ACCOUNT,
    TRANSITIONS,
    Dispute,
    Entry,
    Round,
    RoundRuleViolation,
    Transition,
    check_terms,
)

__all__ = [
    "FINAL_STATES",
    "HOLD_DISPUTED",
    "HOLD_ENTRY_COUNT_MISMATCH",
    "PLATFORM_ACCOUNT",
    "TRANSITIONS",
    "Award",
    "Dispute",
    "Entry",
    "Fees",
    "Finisher",
    "ResultSet",
    "Round",
    "RoundRuleViolation",
    "Split",
    "Transition",
    "check_terms",
    "distribute",
    "fees_on",
    "results_digest",
]
