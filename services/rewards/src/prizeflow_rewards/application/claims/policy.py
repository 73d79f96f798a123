"""What the operators' settings say of claims: the limits the rules apply (a floor under the risk policy) and the
clearing shards a batch may credit (ADR 0017)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from prizeflow_rewards.domain import accounts
from prizeflow_rewards.domain.claims import ClaimLimits
from prizeflow_rewards.domain.ledger import AccountRef


@dataclass
class ClaimPolicy:
    min_claim: dict[str, int]
    daily_limit: dict[str, int]
    review_threshold: dict[str, int]
    velocity_max_claims: int = 5
    velocity_window_s: int = 3600
    new_destination_cooldown_s: int = 86_400
    rejection_rate_bps: int = 5_000
    rejection_rate_min_claims: int = 4
    rejection_rate_window_s: int = 7 * 86_400
    # A restore's review window: until then every claim the rules would approve waits for a person.
    review_all_until: datetime | None = None
    # A claim's quote whose rate the market left by more than this is moved (ADR 0015).
    fx_max_move_bps: int = 50
    # How many of an asset's clearing shards claims reserve on (ADR 0017; 1 during a rollout from before them).
    clearing_shards: int = accounts.CLEARING_SHARDS

    def shards(self, asset: str) -> list[AccountRef]:
        """The clearing accounts a batch may credit for the asset, in the order it tries them."""
        return accounts.clearing_shards(asset)[: max(1, self.clearing_shards)]

    def limits(self, asset: str) -> ClaimLimits:
        big = 2**63 - 1
        return ClaimLimits(
            min_claim=self.min_claim.get(asset, 1),
            daily_limit=self.daily_limit.get(asset, big),
            review_threshold=self.review_threshold.get(asset, big),
            velocity_max_claims=self.velocity_max_claims,
            new_destination_cooldown_s=self.new_destination_cooldown_s,
            rejection_rate_bps=self.rejection_rate_bps,
            rejection_rate_min_claims=self.rejection_rate_min_claims,
        )


__all__ = ["ClaimPolicy"]
