"""The Stellar/Soroban payout provider (issue 6): books in the payouts database, signing by the signer service."""

from prizeflow_payouts.adapters.stellar.external import ExternalSubmission
from prizeflow_payouts.adapters.stellar.factory import build_stellar
from prizeflow_payouts.adapters.stellar.options import StellarOptions
from prizeflow_payouts.adapters.stellar.provider import StellarPayoutProvider

__all__ = ["ExternalSubmission", "StellarOptions", "StellarPayoutProvider", "build_stellar"]
