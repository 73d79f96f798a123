"""The Stellar/Soroban payout provider (issue 6): books in the payouts database, signing by the signer service."""

from prizeflow_payouts.adapters.stellar.factory import build_stellar
from prizeflow_payouts.adapters.stellar.provider import (
    ExternalSubmission,
    StellarOptions,
    StellarPayoutProvider,
)

__all__ = ["ExternalSubmission", "StellarOptions", "StellarPayoutProvider", "build_stellar"]
