"""The tables compliance owns: players' verification records, the risk policy's versions, the sanctions lists. It
reads the payout lifecycle's rows through the views the lifecycle publishes (`prizeflow_payouts.data.PUBLISHES`)."""

from __future__ import annotations

from typing import Final

OWNS: Final = frozenset(
    {
        "kyc_verifications",
        "kyc_verification_history",
        "risk_policies",
        "risk_policy_announcements",
        "sanctions_list_entries",
        "sanctions_list_versions",
    }
)
PUBLISHES: Final[frozenset[str]] = frozenset()

__all__ = ["OWNS", "PUBLISHES"]
