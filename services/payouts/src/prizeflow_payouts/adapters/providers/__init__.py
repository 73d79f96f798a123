"""Payout provider adapters; each implements `prizeflow_contracts.providers.RewardPayoutProvider`."""

from typing import Final

from prizeflow_contracts.providers import ProviderType
from prizeflow_payouts.adapters.providers.manual import build_manual
from prizeflow_payouts.adapters.providers.sandbox_factory import build_sandbox

# The provider types this package implements (the bootstrap finds every adapter package's `RAILS`).
RAILS: Final = {ProviderType.MANUAL: build_manual, ProviderType.SANDBOX: build_sandbox}

__all__ = ["RAILS"]
