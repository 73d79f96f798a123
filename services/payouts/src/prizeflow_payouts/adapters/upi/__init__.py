"""The UPI / IMPS / NEFT payout rail (`type: upi`, RazorpayX Payouts-shaped; tools/upi-emulator in tests)."""

from typing import Final

from prizeflow_contracts.providers import ProviderType
from prizeflow_payouts.adapters.upi.book import FundAccount, FundAccountBook, SqlFundAccountBook, Validation
from prizeflow_payouts.adapters.upi.classify import UpiErrors, UpiRefusalError
from prizeflow_payouts.adapters.upi.factory import build_upi
from prizeflow_payouts.adapters.upi.options import Mode, UpiKeys, UpiOptions, parse_options
from prizeflow_payouts.adapters.upi.provider import UpiPayoutProvider, payout_key, reference_of
from prizeflow_payouts.adapters.upi.routing import choose_mode

# The provider types this package implements (the bootstrap finds every adapter package's `RAILS`).
RAILS: Final = {ProviderType.UPI: build_upi}

__all__ = [
    "RAILS",
    "FundAccount",
    "FundAccountBook",
    "Mode",
    "SqlFundAccountBook",
    "UpiErrors",
    "UpiKeys",
    "UpiOptions",
    "UpiPayoutProvider",
    "UpiRefusalError",
    "Validation",
    "build_upi",
    "choose_mode",
    "parse_options",
    "payout_key",
    "reference_of",
]
