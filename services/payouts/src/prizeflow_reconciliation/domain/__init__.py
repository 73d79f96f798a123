"""Reconciliation's rules: the kinds as rows (`kinds.py`), what is found as values (`findings.py`), the lines no payout
explains (`strays.py`) and one pure `reconcile` (`matching.py`)."""

from prizeflow_reconciliation.domain.kinds import (
    ACTIONS,
    MONEY_ACTIONS,
    SEVERITY,
    TRANSITIONS,
    UNMATCHED_DEBITS,
    Action,
    ExceptionKind,
    ExceptionState,
    Severity,
    may_move,
)
from prizeflow_reconciliation.domain.matching import (
    NEVER_PAID_STATES,
    PAID_STATES,
    Chain,
    Chains,
    Finding,
    LineKind,
    OurPayout,
    Outcome,
    Totals,
    reconcile,
    stray_subjects,
)

__all__ = [
    "ACTIONS",
    "MONEY_ACTIONS",
    "NEVER_PAID_STATES",
    "PAID_STATES",
    "SEVERITY",
    "TRANSITIONS",
    "UNMATCHED_DEBITS",
    "Action",
    "Chain",
    "Chains",
    "ExceptionKind",
    "ExceptionState",
    "Finding",
    "LineKind",
    "OurPayout",
    "Outcome",
    "Severity",
    "Totals",
    "may_move",
    "reconcile",
    "stray_subjects",
]
