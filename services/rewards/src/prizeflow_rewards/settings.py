"""Rewards settings: the runtime's env vars plus the claim controls and pool alerting (README: Config)."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, Field, SecretStr, model_validator

from prizeflow_rewards.domain.fx import Pair
from prizeflow_runtime.settings import Profile, ServiceSettings

# Stripe secret (`sk_`) or restricted (`rk_`) keys only: a publishable key (`pk_`) cannot create sessions.
_STRIPE_KEY_PREFIXES = ("sk_live_", "sk_test_", "rk_live_", "rk_test_")
# The rates provider without RATES_API_URL: Open Exchange Rates (deploy/k8s/components/fx allow-lists its host).
RATES_DEFAULT_BASE_URL = "https://openexchangerates.org"


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
    rewards_claims_review_until: AwareDatetime | None = Field(
        default=None,
        description="After a restore (docs/runbooks/restore.md): until this instant (ISO 8601 with its offset) every "
        "claim the rules would approve waits for a person (`manual_review`). A restored ledger has forgotten the "
        "claims paid after its target: a player's wallet shows that money again until a person has booked it",
    )
    rewards_clearing_shards: int = Field(
        default=8,
        ge=1,
        le=8,
        description="How many of an asset's payout clearing accounts claims reserve on (ADR 0017): a claim batch "
        "takes the first one no other transaction holds. 1 while a release before rewards migration 0016 still runs "
        "beside this one (docs/runbooks/upgrade.md): it settles every claim on shard 0",
    )
    rewards_pool_low_bps: int = Field(
        default=1_000, ge=1, le=10_000, description="PoolLow when remaining <= this share of funded (no own threshold)"
    )
    rewards_metrics_refresh_s: float = Field(default=15.0, gt=0)
    rewards_ledger_strict_locks: bool = Field(
        default=False,
        description="Refuse a ledger account a transaction did not lock up front (the tests prove every path does)",
    )

    # Player top-ups (README: Top-ups). Per asset, minor units; an asset with no maximum is not offered.
    rewards_topup_provider: Literal["stripe", "sandbox"] | None = Field(
        default=None, description="Checkout provider of player top-ups (dev default: sandbox; required otherwise)"
    )
    rewards_topup_min: dict[str, int] = Field(default_factory=lambda: {"USD": 500, "INR": 10_000})
    rewards_topup_max: dict[str, int] = Field(default_factory=lambda: {"USD": 50_000, "INR": 5_000_000})
    rewards_topup_daily_limit: dict[str, int] = Field(
        default_factory=lambda: {"USD": 100_000, "INR": 10_000_000},
        description="Top-ups per player and asset in 24h (credited or still payable)",
    )
    rewards_topup_success_url: str | None = Field(default=None, description="Where the checkout sends a payer back")
    console_url: str | None = Field(
        default=None, description="The devstack's console (dev profile): a payer back from checkout lands on /wallet"
    )
    rewards_topup_cancel_url: str | None = Field(default=None, description="Where the checkout sends a quitter")
    rewards_sandbox_base_url: str | None = Field(
        default=None, description="Base of the sandbox checkout URLs (default: this service's own address)"
    )
    stripe_api_key: SecretStr | None = Field(
        default=None, description="Stripe secret key (REWARDS_TOPUP_PROVIDER=stripe)"
    )
    stripe_api_url: str | None = Field(default=None, description="Stripe API base (the emulator's, in dev and tests)")
    stripe_timeout_s: float = Field(default=10.0, gt=0, le=60)

    # Currency conversion at claim time (README: Conversion; docs/adr/0015-currency-conversion.md).
    rewards_fx_pairs: dict[str, int] = Field(
        default_factory=dict,
        description='The pairs a claim may convert, SOURCE/TARGET -> spread in basis points (e.g. {"USD/INR": 150})',
    )
    rewards_fx_quote_ttl_s: int = Field(default=60, ge=5, le=3600, description="How long a quote holds")
    rewards_fx_max_rate_age_s: int = Field(
        default=900, ge=10, le=86_400, description="A provider rate older than this is stale: no quote, no claim"
    )
    rewards_fx_max_move_bps: int = Field(
        default=50, ge=0, le=10_000, description="A quote whose rate the market left by more than this is moved"
    )
    rewards_fx_reconcile_interval_s: float = Field(
        default=86_400, gt=0, description="How often the FX accounts are reconciled (daily)"
    )
    rewards_fx_rate_watch_s: float = Field(
        default=300, ge=10, description="How often each enabled pair's rate is read for its staleness gauge"
    )
    rates_api_url: str | None = Field(
        default=None, description="The rates provider's base (Open Exchange Rates; the emulator's in dev and tests)"
    )
    rates_app_id: SecretStr | None = Field(default=None, description="The rates provider's App ID")
    rates_timeout_s: float = Field(default=5.0, gt=0, le=60)
    rates_cache_s: float = Field(
        default=30.0,
        ge=0,
        le=3600,
        description="How long a rate read is kept per pair (and shared by callers asking meanwhile); 0: every quote "
        "and converted claim reads the provider",
    )

    @model_validator(mode="after")
    def _conversion(self) -> RewardsSettings:
        """Pairs enabled need a rates provider: outside the dev profile the service refuses to start without its
        key (in dev, quotes answer 503 until it is set)."""
        for pair, bps in self.rewards_fx_pairs.items():
            Pair.parse(pair)
            if not 0 <= bps < 10_000:
                raise ValueError(f"REWARDS_FX_PAIRS: the spread of {pair} is 0..9999 basis points")
        if not self.rewards_fx_pairs or self.prizeflow_profile is Profile.DEV:
            return self
        if self.rates_app_id is None or not self.rates_app_id.get_secret_value():
            raise ValueError("RATES_APP_ID is not set (REWARDS_FX_PAIRS enables conversion)")
        if self.rates_api_url is not None and not self.rates_api_url.startswith("https://"):
            raise ValueError("RATES_API_URL must start with https:// outside PRIZEFLOW_PROFILE=dev")
        return self

    @property
    def rates_base_url(self) -> str:
        return self.rates_api_url or RATES_DEFAULT_BASE_URL

    @model_validator(mode="after")
    def _top_ups(self) -> RewardsSettings:
        """Refuse to start, naming the variable, rather than take players' money with a guessed configuration."""
        dev = self.prizeflow_profile is Profile.DEV
        provider = self.topup_provider
        if provider == "sandbox" and not dev:
            raise ValueError("REWARDS_TOPUP_PROVIDER=sandbox is for PRIZEFLOW_PROFILE=dev only (it takes no money)")
        if provider != "stripe":
            return self
        if self.stripe_api_key is None:
            raise ValueError("STRIPE_API_KEY is not set (REWARDS_TOPUP_PROVIDER=stripe)")
        if not self.stripe_api_key.get_secret_value().startswith(_STRIPE_KEY_PREFIXES):
            raise ValueError("STRIPE_API_KEY is not a Stripe secret or restricted key (sk_... or rk_...)")
        if not dev:
            missing = [
                env
                for env, value in (
                    ("REWARDS_TOPUP_SUCCESS_URL", self.rewards_topup_success_url),
                    ("REWARDS_TOPUP_CANCEL_URL", self.rewards_topup_cancel_url),
                )
                if value is None
            ]
            if missing:
                raise ValueError(f"{', '.join(missing)} not set (REWARDS_TOPUP_PROVIDER=stripe)")
            if self.stripe_api_url is not None and not self.stripe_api_url.startswith("https://"):
                raise ValueError("STRIPE_API_URL must start with https:// outside PRIZEFLOW_PROFILE=dev")
        return self

    @property
    def topup_provider(self) -> Literal["stripe", "sandbox"]:
        """REWARDS_TOPUP_PROVIDER; the dev profile defaults to the sandbox, any other requires it."""
        if self.rewards_topup_provider is not None:
            return self.rewards_topup_provider
        if self.prizeflow_profile is Profile.DEV:
            return "sandbox"
        raise ValueError("REWARDS_TOPUP_PROVIDER is not set (stripe; sandbox is for PRIZEFLOW_PROFILE=dev only)")

    @property
    def checkout_urls(self) -> tuple[str, str]:
        """(success, cancel) URLs; dev defaults: the devstack's console wallet, or nothing in particular."""
        if self.prizeflow_profile is Profile.DEV and self.console_url:
            wallet = self.console_url.rstrip("/") + "/wallet"
            return self.rewards_topup_success_url or wallet, self.rewards_topup_cancel_url or wallet
        return (
            self.rewards_topup_success_url or "http://127.0.0.1/top-up/success?session_id={CHECKOUT_SESSION_ID}",
            self.rewards_topup_cancel_url or "http://127.0.0.1/top-up/cancelled",
        )
