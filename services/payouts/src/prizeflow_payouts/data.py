"""The tables the payout lifecycle owns (its rails' books among them), and the views it publishes to the
deployable's other contexts (migration 0032). No other context names these tables; what they read of a payout they
read from the views, and what they change goes through the lifecycle's ports
(`tests/architecture/test_context_data.py`)."""

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
        # the rails' books
        "exchange_withdrawals",
        "paypal_batches",
        "paypal_items",
        "stellar_engine_locks",
        "stellar_lanes",
        "stellar_payouts",
        "stellar_txs",
        "telegram_gift_sends",
        "telegram_star_scans",
        "ton_batch_items",
        "ton_batches",
        "ton_messages",
        "ton_payouts",
        "upi_fund_accounts",
    }
)
PUBLISHES: Final = frozenset({"payout_facts", "payout_gate_decisions"})

__all__ = ["OWNS", "PUBLISHES"]
