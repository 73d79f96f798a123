"""What one Stellar provider entry resolves to (providers file + §8 environment), read once by `build_stellar`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import prizeflow_stellar as ps
from prizeflow_payouts.adapters.stellar.settings import StellarMode

STELLAR_SCALE: Final = 7


@dataclass(frozen=True)
class StellarOptions:
    name: str
    mode: StellarMode
    live_execution: bool
    network_passphrase: str
    rpc_url: str
    funding_account: str
    channel_accounts: tuple[str, ...]
    contract_id: str | None
    method_name: str
    contract_asset: str
    assets: tuple[str, ...]
    max_fee_stroops: int
    base_fee: int = ps.BASE_FEE_STROOPS
    max_ops_per_tx: int = 100
    validity_s: int = 60
    max_tx_attempts: int = 5
    poll_ms: int = 2500
    max_polls: int = 20
    reconcile_ms: int = 60_000
    resign_after_s: float = 5.0
    tick_s: float = 0.05  # the engine's pause after a tick with work
    idle_max_s: float = 5.0  # its longest pause while ticks find nothing (doubling from tick_s, never past due work)
    source: str = "/prizeflow/payouts"
    rpc_timeout_s: float = 10.0

    @property
    def lanes(self) -> tuple[str, ...]:
        return self.channel_accounts or (self.funding_account,)

    @property
    def lane_role(self) -> str:
        return "channel" if self.channel_accounts else "funding"

    @property
    def lane_names(self) -> dict[str, str]:
        """Each lane's account → the name metrics give it: its role and place in the configuration, never the key."""
        if not self.channel_accounts:
            return {self.funding_account: "funding"}
        return {account: f"channel-{i}" for i, account in enumerate(self.channel_accounts)}


__all__ = ["STELLAR_SCALE", "StellarOptions"]
