"""Rewards settings: the runtime's env vars plus the claim controls and pool alerting (README: Config)."""

from __future__ import annotations

from pydantic import Field

from prizeflow_runtime.settings import ServiceSettings


class RewardsSettings(ServiceSettings):
    service_name: str = "rewards"
    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/prizeflow_rewards"
    http_port: int = Field(default=8002, ge=0, le=65535)

    # Claims, per asset in minor units (JSON objects in the environment, e.g. REWARDS_MIN_CLAIM='{"USDC": 1}').
    rewards_min_claim: dict[str, int] = Field(
        default_factory=lambda: {"XLM": 10_000_000, "USDC": 10_000_000, "USD": 500, "INR": 10_000}
    )
    rewards_daily_claim_limit: dict[str, int] = Field(
        default_factory=lambda: {"XLM": 10_000_000_000, "USDC": 10_000_000_000, "USD": 100_000, "INR": 10_000_000}
    )
    rewards_review_threshold: dict[str, int] = Field(
        default_factory=lambda: {"XLM": 2_000_000_000, "USDC": 2_000_000_000, "USD": 20_000, "INR": 2_000_000},
        description="Claims above this amount are held for review",
    )
    rewards_velocity_max_claims: int = Field(default=5, ge=1, description="Claims per player per window")
    rewards_velocity_window_s: int = Field(default=3600, ge=1)
    rewards_new_destination_cooldown_s: int = Field(
        default=86_400, ge=0, description="A destination first used less than this ago is held for review"
    )
    rewards_rejection_rate_bps: int = Field(
        default=5_000, ge=0, le=10_000, description="Hold a player's claims when this share of them failed"
    )
    rewards_rejection_rate_min_claims: int = Field(default=4, ge=1)
    rewards_rejection_rate_window_s: int = Field(default=7 * 86_400, ge=1)
    rewards_pool_low_bps: int = Field(
        default=1_000, ge=1, le=10_000, description="PoolLow when remaining <= this share of funded (no own threshold)"
    )
    rewards_metrics_refresh_s: float = Field(default=15.0, gt=0)
    rewards_ledger_strict_locks: bool = Field(
        default=False,
        description="Refuse a ledger account a transaction did not lock up front (the tests prove every path does)",
    )
