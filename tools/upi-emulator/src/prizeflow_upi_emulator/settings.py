"""Configuration from the environment. A missing or malformed setting stops start-up, naming it (the runner exits 2)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from prizeflow_emulator_kit.settings import SettingsError, env_int, env_list, env_port, env_template, env_url
from prizeflow_upi_emulator.rules import DEFAULT_RULES, Rule, parse_rules

MODES: Final = ("UPI", "IMPS", "NEFT", "RTGS")
# Per transaction, in paise (docs x/payouts "Payout Modes and TAT"): UPI up to ₹1,00,000 (the NPCI cap), IMPS up to
# ₹5,00,000, NEFT and RTGS without an upper limit; RTGS only from ₹2,00,000.
DEFAULT_LIMITS: Final = "UPI:10000000,IMPS:50000000,NEFT:,RTGS:"
RTGS_MINIMUM: Final = 20_000_000
DEFAULT_FEES: Final = "UPI:500,IMPS:500,NEFT:300,RTGS:2000"  # paise before tax (500 + 18% GST = the docs' 590/90)
DEFAULT_SETTLE_MS: Final = "UPI:1000,IMPS:1000,NEFT:30000,RTGS:30000"


@dataclass(frozen=True)
class EmulatorSettings:
    keys: Mapping[str, str]  # key id → key secret (HTTP Basic)
    host: str = "127.0.0.1"
    port: int = 12115
    account_number: str = "7878780080316316"  # the business account (RazorpayX Lite customer identifier)
    account_id: str = "acc_PrizeflowEmu01"  # `account_id` of every webhook event
    opening_balance: int = 10_000_000_00  # paise: ₹1,00,00,000
    webhook_url: str | None = None
    webhook_secret: str | None = field(default=None, repr=False)
    webhook_retry_base_ms: int = 1000
    webhook_max_attempts: int = 8
    webhook_timeout_ms: int = 10_000
    limits: Mapping[str, int | None] = field(default_factory=dict)  # mode → max paise per payout (None: no max)
    fees: Mapping[str, int] = field(default_factory=dict)  # mode → fee in paise before tax
    tax_bps: int = 1800  # GST on the fee
    settle_ms: Mapping[str, int] = field(default_factory=dict)  # mode → processing until the bank's answer
    validation_ms: int = 1000  # a validation is `created` this long before it completes
    decision_ms: int = 1000  # a payout a rule rejects waits `pending` this long
    low_balance: str = "fail"  # without queue_if_low_balance: `fail` (a failed payout) or `refuse` (a 400)
    rules: tuple[Rule, ...] = DEFAULT_RULES
    seed: int | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> EmulatorSettings:
        env = os.environ if env is None else env
        url = env_url(env, "UPI_EMULATOR_WEBHOOK_URL")
        secret = env_template(env, "UPI_EMULATOR_WEBHOOK_SECRET")
        if (url is None) != (secret is None):
            raise SettingsError("UPI_EMULATOR_WEBHOOK_URL and UPI_EMULATOR_WEBHOOK_SECRET go together")
        low_balance = env.get("UPI_EMULATOR_LOW_BALANCE") or "fail"
        if low_balance not in ("fail", "refuse"):
            raise SettingsError("UPI_EMULATOR_LOW_BALANCE is `fail` or `refuse`")
        account = env.get("UPI_EMULATOR_ACCOUNT_NUMBER") or "7878780080316316"
        if not re.fullmatch(r"[0-9A-Za-z]{5,35}", account):
            raise SettingsError("UPI_EMULATOR_ACCOUNT_NUMBER is 5-35 letters and digits")
        return cls(
            keys=_keys(env),
            host=env.get("UPI_EMULATOR_HOST", "127.0.0.1"),
            port=env_port(env, "UPI_EMULATOR_PORT", 12115),
            account_number=account,
            opening_balance=env_int(env, "UPI_EMULATOR_BALANCE", 10_000_000_00, 0, 10**15),
            webhook_url=url,
            webhook_secret=secret,
            webhook_retry_base_ms=env_int(env, "UPI_EMULATOR_WEBHOOK_RETRY_BASE_MS", 1000, 1, 3_600_000),
            webhook_max_attempts=env_int(env, "UPI_EMULATOR_WEBHOOK_MAX_ATTEMPTS", 8, 1, 100),
            webhook_timeout_ms=env_int(env, "UPI_EMULATOR_WEBHOOK_TIMEOUT_MS", 10_000, 1, 600_000),
            limits=_per_mode(env, "UPI_EMULATOR_MODE_LIMITS", DEFAULT_LIMITS, optional=True),
            fees={m: v or 0 for m, v in _per_mode(env, "UPI_EMULATOR_FEES", DEFAULT_FEES).items()},
            tax_bps=env_int(env, "UPI_EMULATOR_TAX_BPS", 1800, 0, 10_000),
            settle_ms={m: v or 0 for m, v in _per_mode(env, "UPI_EMULATOR_SETTLE_MS", DEFAULT_SETTLE_MS).items()},
            validation_ms=env_int(env, "UPI_EMULATOR_VALIDATION_MS", 1000, 0, 86_400_000),
            decision_ms=env_int(env, "UPI_EMULATOR_DECISION_MS", 1000, 0, 86_400_000),
            low_balance=low_balance,
            rules=_rules(env),
            seed=env_int(env, "UPI_EMULATOR_SEED", 0, 0, 2**63) if env.get("UPI_EMULATOR_SEED") else None,
        )


def _keys(env: Mapping[str, str]) -> dict[str, str]:
    items = env_list(env, "UPI_EMULATOR_KEYS")
    if not items:
        raise SettingsError("UPI_EMULATOR_KEYS is required: comma-separated `key_id:key_secret` pairs")
    out = {}
    for item in items:
        key_id, sep, secret = item.partition(":")
        if not sep or not key_id or not secret:
            raise SettingsError("UPI_EMULATOR_KEYS items are `key_id:key_secret`")
        out[key_id] = secret
    return out


def _per_mode(env: Mapping[str, str], name: str, default: str, *, optional: bool = False) -> dict[str, int | None]:
    """`MODE:paise` items over the defaults; an empty value (`NEFT:`) is no limit where `optional`."""
    out: dict[str, int | None] = {}
    for raw in (default, env.get(name) or ""):
        for item in (i.strip() for i in raw.split(",") if i.strip()):
            mode, sep, value = item.partition(":")
            if not sep or mode not in MODES or not (value.isdigit() or (optional and value == "")):
                empty = " (empty: none)" if optional else ""
                raise SettingsError(f"{name} items are `<{'|'.join(MODES)}>:<integer>`{empty}, got {item!r}")
            out[mode] = int(value) if value else None
    return out


def _rules(env: Mapping[str, str]) -> tuple[Rule, ...]:
    raw = env.get("UPI_EMULATOR_RULES")
    if not raw:
        return DEFAULT_RULES
    try:
        return tuple(parse_rules(json.loads(raw)))
    except ValueError as err:
        raise SettingsError(f"UPI_EMULATOR_RULES: {err}") from None


__all__ = ["DEFAULT_FEES", "DEFAULT_LIMITS", "MODES", "RTGS_MINIMUM", "EmulatorSettings", "SettingsError"]
