"""Payouts settings: the runtime's shared ones plus the env vars below (documented in the service README)."""

from __future__ import annotations

import json
import os
import re
import string
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode

from prizeflow_compliance.domain.sanctions import SOURCES as SANCTIONS_SOURCES
from prizeflow_payouts.domain.deny import DenyList
from prizeflow_runtime.settings import Profile, ServiceSettings

# The KYC emulator's own credentials (tools/kyc-emulator): the dev profile's default, refused by any real vendor.
DEV_KYC_APP_TOKEN = "dev-kyc-app-token"  # noqa: S105 - the emulator's well-known dev value, dev profile only
DEV_KYC_SECRET = "dev-kyc-secret-key"  # noqa: S105 - the emulator's well-known dev value, dev profile only
DEFAULT_PROVIDERS_FILE = Path(__file__).resolve().parents[2] / "providers.yaml"


class PayoutsSettings(ServiceSettings):
    service_name: str = "payouts"
    consumer_batch_size: int = Field(
        default=1000, ge=1, description="Records a poll takes at most (dealt into `consumer_lanes` transactions)"
    )
    consumer_lanes: int = Field(
        default=2,
        ge=1,
        le=64,
        description="Concurrent transactions a poll of payout requests is split into, by partition (a request is "
        "keyed by its claim's correlation id; one player's requests in two lanes are ordered by the gate's "
        "per-player lock)",
    )
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
        default=5000,
        ge=1,
        description="Longest pause once a pass finds nothing: the worker sleeps until the next payout is due by "
        "the books, at most this long; a new request, an approval or a release in this process wakes it at once",
    )
    payouts_worker_concurrency: int = Field(default=64, ge=1, description="Provider calls in flight per worker")
    payouts_direct_sends: bool = Field(
        default=True,
        description="Where the worker runs in the process that consumes requests: an auto-approved payout whose "
        "allow already stands at send is stored claimed for that worker and handed to it on commit, instead of "
        "waiting for a pass to find, lock and claim it",
    )
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
    payouts_balances_interval_s: float = Field(
        default=60.0,
        gt=0,
        description="How often each rail's balance is read at its provider for the balance gauges (GET /providers "
        "reads it when asked)",
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

    payouts_kyc_provider: Literal["sumsub", "none"] = Field(
        default="none",
        description="Identity-verification vendor (docs/adr/0012): sumsub, or none (verification unavailable: "
        "starting one answers 503 and nobody is ever marked verified)",
    )
    payouts_kyc_base_url: str | None = Field(
        default=None, description="The vendor's API base (the emulator's in dev and tests; https:// elsewhere)"
    )
    payouts_kyc_app_token: SecretStr | None = Field(default=None, description="The vendor's app token")
    payouts_kyc_secret_key: SecretStr | None = Field(
        default=None, description="The vendor's secret key (signs each API request); no default outside dev"
    )
    payouts_kyc_level: str = Field(
        default="basic-kyc-level", min_length=1, max_length=128, description="The vendor's verification level"
    )
    payouts_kyc_timeout_s: float = Field(default=10.0, gt=0, le=60, description="Deadline of one vendor call")
    payouts_kyc_rescreen_batch: int = Field(
        default=100,
        gt=0,
        le=10_000,
        description="Verified players screened again per run once a sanctions list changed (one vendor identity "
        "fetch each; a run every PAYOUTS_COMPLIANCE_SWEEP_S and right after a list load; RescreenVerifiedPlayers)",
    )
    payouts_compliance_sweep_s: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="How often payouts held for verification are checked against the players' verification (a "
        "missed change never leaves one waiting for ever; ResumeVerifiedPayouts.run)",
    )
    payouts_sanctions_sources: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Sanctions lists screened against, comma-separated `<source>=<url>` with source one of "
        "ofac_sdn, ofac_consolidated, eu, un (`${VAR}` in a URL is read from the environment). A configured list "
        "that never loaded holds every payout the gate screens (fail closed); none configured: nothing to screen",
    )
    payouts_sanctions_redirect_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Hosts a sanctions list's URL may redirect to, comma-separated (a publisher serving its file "
        "from a storage host): a redirect to any other host is refused, naming it. Every host here and in "
        "PAYOUTS_SANCTIONS_SOURCES must be reachable (deploy/k8s: on the egress proxy's allow-list)",
    )
    payouts_sanctions_refresh_s: float = Field(
        default=3600.0, gt=0, le=86_400, description="How often the sanctions lists are fetched again"
    )
    payouts_sanctions_name_threshold: int = Field(
        default=920,
        ge=0,
        le=1000,
        description="Fuzzy name match score (0-1000) at which a player is a screening hit (docs/capacity.md, "
        "Sanctions screening: false positives and negatives per threshold)",
    )
    payouts_sanctions_max_bytes: int = Field(
        default=128 * 1024 * 1024, ge=1024, description="A sanctions list file larger than this is refused"
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

    @field_validator("payouts_sanctions_sources", "payouts_sanctions_redirect_hosts", mode="before")
    @classmethod
    def _split_sources(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("payouts_sanctions_sources")
    @classmethod
    def _check_sources(cls, value: list[str]) -> list[str]:
        sanctions_sources(value)  # a malformed entry stops start-up, named
        return value

    @field_validator("payouts_sanctions_redirect_hosts")
    @classmethod
    def _check_redirect_hosts(cls, value: list[str]) -> list[str]:
        """Host names, as a redirect's Location names them: no scheme, path or port."""
        for host in value:
            if not re.fullmatch(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+", host):
                raise ValueError(f"PAYOUTS_SANCTIONS_REDIRECT_HOSTS: {host!r} is not a lower-case host name")
        return value

    def sanctions_urls(self) -> dict[str, str]:
        """source → URL, `${VAR}`s filled from the environment."""
        return sanctions_sources(self.payouts_sanctions_sources)

    @field_validator("payouts_deny_destinations")
    @classmethod
    def _check_deny(cls, value: list[str]) -> list[str]:
        DenyList.parse(value)  # a malformed entry stops start-up, named
        return value

    @model_validator(mode="after")
    def _screening(self) -> PayoutsSettings:
        """Outside the dev profile a payout is never sent unscreened: no list configured stops start-up, named."""
        if not self.payouts_sanctions_sources and self.prizeflow_profile is not Profile.DEV:
            raise ValueError(
                "PAYOUTS_SANCTIONS_SOURCES is not set: outside PRIZEFLOW_PROFILE=dev every payout is screened "
                "against at least one sanctions list (<source>=<url>, sources ofac_sdn, ofac_consolidated, eu, un)"
            )
        return self

    @model_validator(mode="after")
    def _kyc(self) -> PayoutsSettings:
        """Refuse to start, naming the variables, rather than verify identities with a guessed configuration."""
        if self.payouts_kyc_provider == "none":
            return self
        dev = self.prizeflow_profile is Profile.DEV
        missing = [
            env
            for env, value in (
                ("PAYOUTS_KYC_BASE_URL", self.payouts_kyc_base_url),
                ("PAYOUTS_KYC_APP_TOKEN", self.payouts_kyc_app_token),
                ("PAYOUTS_KYC_SECRET_KEY", self.payouts_kyc_secret_key),
            )
            if value is None
        ]
        if missing and not dev:
            raise ValueError(f"{', '.join(missing)} not set (PAYOUTS_KYC_PROVIDER={self.payouts_kyc_provider})")
        if self.payouts_kyc_base_url is None:
            raise ValueError(f"PAYOUTS_KYC_BASE_URL is not set (PAYOUTS_KYC_PROVIDER={self.payouts_kyc_provider})")
        if not dev and not self.payouts_kyc_base_url.startswith("https://"):
            raise ValueError("PAYOUTS_KYC_BASE_URL must start with https:// outside PRIZEFLOW_PROFILE=dev")
        return self

    def kyc_credentials(self) -> tuple[str, str]:
        """(app token, secret key); the dev profile's defaults are the emulator's own, never a real vendor's."""
        if self.payouts_kyc_app_token is not None and self.payouts_kyc_secret_key is not None:
            return self.payouts_kyc_app_token.get_secret_value(), self.payouts_kyc_secret_key.get_secret_value()
        if self.prizeflow_profile is Profile.DEV:
            token = self.payouts_kyc_app_token.get_secret_value() if self.payouts_kyc_app_token else DEV_KYC_APP_TOKEN
            secret = self.payouts_kyc_secret_key.get_secret_value() if self.payouts_kyc_secret_key else DEV_KYC_SECRET
            return token, secret
        raise ValueError("PAYOUTS_KYC_APP_TOKEN and PAYOUTS_KYC_SECRET_KEY are not set")


def sanctions_sources(entries: list[str]) -> dict[str, str]:
    """`<source>=<url>` entries as a mapping; ValueError naming a malformed, unknown or repeated one."""
    out: dict[str, str] = {}
    for entry in entries:
        source, sep, url = entry.partition("=")
        source, url = source.strip(), string.Template(url.strip()).safe_substitute(os.environ)
        if not sep or source not in SANCTIONS_SOURCES:
            raise ValueError(f"sanctions source {entry!r} is not <source>=<url>, source one of {SANCTIONS_SOURCES}")
        if source in out:
            raise ValueError(f"sanctions source {source} is configured twice")
        if not url.startswith(("http://", "https://")) or "${" in url:
            raise ValueError(f"sanctions source {source}: {url!r} is not an http(s) URL")
        out[source] = url
    return out
