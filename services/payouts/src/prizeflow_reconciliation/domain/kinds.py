"""Reconciliation kinds and resolutions, read from their one table (`prizeflow_contracts.reconciliation`).

A kind's severity and the resolutions that may close it are its row in `RECON_KINDS`, the money-moving resolutions
`RECON_ACTIONS`: the console and the ops CLI read the same rows, so a code is never typed twice. An exception's life
is the `TRANSITIONS` table; nothing else decides what may follow what. Pure, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from prizeflow_contracts.reconciliation import (
    RECON_ACTIONS,
    RECON_KINDS,
    ExceptionKind,
    ExceptionState,
    ReconAction,
    Severity,
)
from prizeflow_contracts.transitions import Transitions

# How a person resolves an exception (`ReconAction`, under the name the use cases and the admin API have used).
Action = ReconAction

SEVERITY: Final[Mapping[ExceptionKind, Severity]] = {code: row.severity for code, row in RECON_KINDS.items()}

# Money that left the platform at the provider without Prizeflow sending it: these page.
UNMATCHED_DEBITS: Final = frozenset(k for k, s in SEVERITY.items() if s is Severity.CRITICAL)

# Proposed by one person, executed when a second, different one confirms it.
MONEY_ACTIONS: Final = frozenset(code for code, row in RECON_ACTIONS.items() if row.moves_money)

ACTIONS: Final[Mapping[ExceptionKind, tuple[Action, ...]]] = {code: row.actions for code, row in RECON_KINDS.items()}

TRANSITIONS: Final = Transitions(
    "recon_exception",
    {
        ExceptionState.OPEN: frozenset({ExceptionState.INVESTIGATING, ExceptionState.RESOLVED}),
        ExceptionState.INVESTIGATING: frozenset({ExceptionState.INVESTIGATING, ExceptionState.RESOLVED}),
        ExceptionState.RESOLVED: frozenset(),
    },
)


def may_move(current: ExceptionState, to: ExceptionState) -> bool:
    return TRANSITIONS.allows(current, to)


__all__ = [
    "ACTIONS",
    "MONEY_ACTIONS",
    "SEVERITY",
    "TRANSITIONS",
    "UNMATCHED_DEBITS",
    "Action",
    "ExceptionKind",
    "ExceptionState",
    "Severity",
    "may_move",
]
