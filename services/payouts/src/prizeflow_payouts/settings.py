"""Payouts settings: the runtime's shared ones plus the env vars below (documented in the service README)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

from pydantic import AwareDatetime, Field, field_validator
from pydantic_settings import NoDecode

from prizeflow_payouts.domain.deny import DenyList
from prizeflow_runtime.settings import ServiceSettings

DEFAULT_PROVIDERS_FILE = Path(__file__).resolve().parents[2] / "providers.yaml"


class PayoutsSettings(ServiceSettings):
    service_name: str = "payouts"
    payouts_max_attempts: int = Field(default=5, ge=1, le=1000, description="Provider attempts before a final failure")
    payouts_live_execution: bool = Field(
        default=False,
        description="Rails that move real money submit only when true (build-only otherwise); "
        "manual and sandbox are not affected",
    )
    payouts_confirm_poll_ms: int = Field(default=2500, ge=10, description="Status sync interval for submitted payouts")
    payouts_confirm_max_polls: int = Field(
        default=20, ge=1, description="Polls at that interval before the reconciler's slower pace takes over"
    )
    payouts_providers_file: Path = Field(
        default=DEFAULT_PROVIDERS_FILE,
        description="Provider registry YAML: a file, or a directory of *.yaml parts merged",
    )
    payouts_worker_enabled: bool = Field(default=True, description="Run the worker inside the API process")
    payouts_worker_batch_size: int = Field(default=500, ge=1, le=5000)
    payouts_worker_interval_ms: int = Field(default=100, ge=1, description="Pause after a pass that found work")
    payouts_worker_idle_max_ms: int = Field(
        default=1000,
        ge=1,
        description="Longest pause once passes find nothing (doubling from the interval); a new request or an "
        "approval in this process wakes the worker at once",
    )
    payouts_worker_concurrency: int = Field(default=64, ge=1, description="Provider calls in flight per worker")
    payouts_recon_enabled: bool = Field(
        default=True, description="Run the scheduled reconciliation with the providers' statements in this process"
    )
    payouts_recon_window_s: int = Field(
        default=3600, ge=60, le=86_400, description="The window a scheduled reconciliation run covers"
    )
    payouts_recon_slack_s: int = Field(
        default=900,
        ge=0,
        le=86_400,
        description="How long after a window ends it is reconciled, and how far past its edges statement lines "
        "are read to match payouts near them",
    )
    payouts_recon_ledger: bool = Field(
        default=True,
        description="Compare each payout with what the ledger booked for it (LedgerPosted from rewards); off only "
        "where payouts runs without rewards",
    )
    payouts_recon_tick_s: float = Field(
        default=300.0, gt=0, description="How often the schedule looks for a due window (a completed one is skipped)"
    )
    payouts_lease_seconds: float = Field(default=60.0, gt=0, description="How long a claim holds a payout")
    payouts_provider_timeout_ms: int = Field(default=10_000, ge=1)
    payouts_retry_base_ms: int = Field(default=1000, ge=1, description="Backoff of the first retry")
    payouts_retry_max_ms: int = Field(default=300_000, ge=1, description="Backoff cap")
    payouts_reconcile_interval_ms: int = Field(
        default=60_000, ge=10, description="Sync pace for payouts past their polls or with an unknown outcome"
    )
    payouts_deny_destinations: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Destinations no rail may pay, comma-separated `<destination type>:<address>` "
        "(e.g. `crypto_address:0xab…,email:someone@example.com,ton_wallet:EQ…`): refused at request time and "
        "never sent if added later (`destination_blocked`)",
    )
    payouts_sync_first_until: AwareDatetime | None = Field(
        default=None,
        description="After a restore (docs/runbooks/restore.md): until this instant (ISO 8601 with its offset) every "
        "payout the worker picks up asks its provider first (`sync_status`, same idempotency key) and is sent only "
        "when the provider's own books have none; a rail answering from payouts' own (restored) tables sends nothing "
        "and the payout waits for a person. A provider's idempotency window (Stripe: 24 h) must not be what stands "
        "between a payout made after the restore's target and a second payment",
    )
    payouts_webhook_sources: list[str] = Field(
        default_factory=lambda: ["/prizeflow/webhooks"],
        min_length=1,
        description="CloudEvents sources trusted to publish provider events (the verifying webhook ingress)",
    )

    @field_validator("payouts_deny_destinations", mode="before")
    @classmethod
    def _split_deny(cls, value: Any) -> Any:
        """Comma-separated, or a JSON list."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("payouts_deny_destinations")
    @classmethod
    def _check_deny(cls, value: list[str]) -> list[str]:
        DenyList.parse(value)  # a malformed entry stops start-up, named
        return value
