"""Configuration from the environment. A missing or malformed required setting stops start-up, naming it."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from prizeflow_emulator_kit.settings import SettingsError, env_int, env_list, env_port, env_template, env_url
from prizeflow_kyc_emulator.signing import DIGEST_ALGS
from prizeflow_kyc_emulator.state import AutoReview


@dataclass(frozen=True)
class EmulatorSettings:
    app_token: str
    secret_key: str = field(repr=False)
    host: str = "127.0.0.1"
    port: int = 12114
    public_url: str | None = None  # where players' browsers reach the hosted flow (default http://host:port)
    levels: tuple[str, ...] = ("basic-kyc-level",)
    ts_tolerance_s: int = 600  # how far X-App-Access-Ts may be from now (the emulator's choice; see the README)
    webhook_url: str | None = None
    webhook_secret: str | None = field(default=None, repr=False)
    webhook_alg: str = "HMAC_SHA256_HEX"
    webhook_retry_base_ms: int = 1000
    webhook_max_attempts: int = 5
    webhook_timeout_ms: int = 5000
    auto_review: AutoReview = AutoReview.GREEN  # what a submitted applicant comes to, by itself
    review_delay_ms: int = 1000  # how long a submitted applicant stays pending before that review

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> EmulatorSettings:
        env = os.environ if env is None else env
        token = env.get("KYC_EMULATOR_APP_TOKEN", "").strip()
        secret = env.get("KYC_EMULATOR_SECRET_KEY", "").strip()
        if not token or not secret:
            raise SettingsError("KYC_EMULATOR_APP_TOKEN and KYC_EMULATOR_SECRET_KEY are required")
        url = env_url(env, "KYC_EMULATOR_WEBHOOK_URL")
        key = env_template(env, "KYC_EMULATOR_WEBHOOK_SECRET")
        if (url is None) != (key is None):
            raise SettingsError("KYC_EMULATOR_WEBHOOK_URL and KYC_EMULATOR_WEBHOOK_SECRET go together")
        alg = env.get("KYC_EMULATOR_WEBHOOK_ALG", "HMAC_SHA256_HEX")
        if alg not in DIGEST_ALGS:
            raise SettingsError(f"KYC_EMULATOR_WEBHOOK_ALG is one of {sorted(DIGEST_ALGS)}")
        try:
            auto = AutoReview(env.get("KYC_EMULATOR_AUTO_REVIEW", "green"))
        except ValueError:
            raise SettingsError(f"KYC_EMULATOR_AUTO_REVIEW is one of {[a.value for a in AutoReview]}") from None
        levels = env_list(env, "KYC_EMULATOR_LEVELS", "basic-kyc-level")
        if not levels:
            raise SettingsError("KYC_EMULATOR_LEVELS names at least one level")
        public = env_url(env, "KYC_EMULATOR_PUBLIC_URL")
        return cls(
            app_token=token,
            secret_key=secret,
            host=env.get("KYC_EMULATOR_HOST", "127.0.0.1"),
            port=env_port(env, "KYC_EMULATOR_PORT", 12114),
            public_url=public.rstrip("/") if public else None,
            levels=levels,
            ts_tolerance_s=env_int(env, "KYC_EMULATOR_TS_TOLERANCE_S", 600, 1, 86_400),
            webhook_url=url,
            webhook_secret=key,
            webhook_alg=alg,
            webhook_retry_base_ms=env_int(env, "KYC_EMULATOR_WEBHOOK_RETRY_BASE_MS", 1000, 1, 3_600_000),
            webhook_max_attempts=env_int(env, "KYC_EMULATOR_WEBHOOK_MAX_ATTEMPTS", 5, 1, 100),
            webhook_timeout_ms=env_int(env, "KYC_EMULATOR_WEBHOOK_TIMEOUT_MS", 5000, 1, 600_000),
            auto_review=auto,
            review_delay_ms=env_int(env, "KYC_EMULATOR_REVIEW_DELAY_MS", 1000, 0, 86_400_000),
        )


__all__ = ["EmulatorSettings", "SettingsError"]
