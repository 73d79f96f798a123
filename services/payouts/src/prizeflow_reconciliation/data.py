"""The tables reconciliation owns: its runs, their staged lines, the statement lines it remembers, its exceptions,
and the ledger's postings on the rails' accounts (written by the lifecycle's consumer through reconciliation's
`LedgerPostings` port). It reads payouts through `payout_facts` and changes them through `PayoutReturns`."""

from __future__ import annotations

from typing import Final

OWNS: Final = frozenset(
    {
        "ledger_postings",
        "recon_exceptions",
        "recon_exception_history",
        "recon_payout_lines",
        "recon_run_lines",
        "recon_runs",
    }
)
PUBLISHES: Final[frozenset[str]] = frozenset()

__all__ = ["OWNS", "PUBLISHES"]
