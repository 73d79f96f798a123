"""The Stellar/Soroban payout provider (issue 6): books in the payouts database, signing by the signer service."""

from typing import Final

from prizeflow_contracts.providers import ProviderType
from prizeflow_payouts.adapters.stellar.external import ExternalSubmission
from prizeflow_payouts.adapters.stellar.factory import build_stellar
from prizeflow_payouts.adapters.stellar.options import StellarOptions
from prizeflow_payouts.adapters.stellar.provider import StellarPayoutProvider

# The provider types this package implements (the bootstrap finds every adapter package's `RAILS`).
RAILS: Final = {ProviderType.STELLAR: build_stellar}

__all__ = ["RAILS", "ExternalSubmission", "StellarOptions", "StellarPayoutProvider", "build_stellar"]
