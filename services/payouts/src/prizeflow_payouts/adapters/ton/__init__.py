"""The `ton_wallet` rail: TON and jettons from one wallet v4r2 (a message per payout) or a highload wallet v3
(batches), messages signed by the signer service."""

from prizeflow_payouts.adapters.ton.factory import build_ton_wallet
from prizeflow_payouts.adapters.ton.provider import TonWalletProvider

__all__ = ["TonWalletProvider", "build_ton_wallet"]
