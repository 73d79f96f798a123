"""The `ton_wallet` rail: TON and jettons from one wallet v4r2 (a message per payout) or a highload wallet v3
(batches), messages signed by the signer service."""

from typing import Final

from prizeflow_contracts.providers import ProviderType
from prizeflow_payouts.adapters.ton.factory import build_ton_wallet
from prizeflow_payouts.adapters.ton.provider import TonWalletProvider

# The provider types this package implements (the bootstrap finds every adapter package's `RAILS`).
RAILS: Final = {ProviderType.TON_WALLET: build_ton_wallet}

__all__ = ["RAILS", "TonWalletProvider", "build_ton_wallet"]
