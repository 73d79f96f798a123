"""The tables the payout lifecycle owns, and the views it publishes to the deployable's other contexts (migration
0032). Its rails' books are its own too, named after their rail: every table `<rail>_...` of a rail's package
`adapters/<rail>/` (one that declares `RAILS`), so a new rail's tables need no entry here. No other context names
these tables; what they read of a payout they read from the views, and what they change goes through the lifecycle's
ports (`tests/architecture/test_context_data.py`)."""

from __future__ import annotations

from typing import Final

OWNS: Final = frozenset(
    {
        "payouts",
        "payout_approvals",
        "payout_attempts",
        "payout_disagreements",
        "payout_history",
        "payout_hold_kinds",
        "payout_request_refusals",
        "provider_events",
        "route_announcements",
        # the gate's rows (holds_pg): its decisions and the two-person clearances of a screening hit
        "compliance_decisions",
        "screening_clearances",
    }
)
PUBLISHES: Final = frozenset({"payout_facts", "payout_gate_decisions"})

__all__ = ["OWNS", "PUBLISHES"]
