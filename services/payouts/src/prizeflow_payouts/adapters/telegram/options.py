"""The options of a `telegram_if_supported` entry, validated; start-up is refused naming what is wrong.

- name: telegram
  type: telegram_if_supported
  assets: [XTR]
  destination_types: [telegram_user]
  secrets: {bot_token: TELEGRAM_BOT_TOKEN}
  options:
    api_base_env: TELEGRAM_API_URL        # or api_base: https://api.telegram.org (the default)
    gifts: {"5170145012310081615": 15}    # gift id -> its star price: the only amounts this rail pays
    text: "Your Prizeflow prize"          # shown with the gift (0-128 characters)
    timeout_s: 5                          # per Bot API call (below PAYOUTS_PROVIDER_TIMEOUT_MS)
    settle_after_s: 300                   # an unknown outcome not in the transactions by then: not sent
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from prizeflow_contracts.providers import DEFAULT_APIS, DestinationType, ProviderType
from prizeflow_payouts.provider_spec import ProviderConfigError, ProviderContext, ProviderSpec

TELEGRAM_API: Final = DEFAULT_APIS[ProviderType.TELEGRAM_IF_SUPPORTED]
ASSET: Final = "XTR"
TOKEN_RE: Final = re.compile(r"^[0-9]{1,20}:[A-Za-z0-9_-]{30,64}$")
GIFT_TEXT_MAX: Final = 128
_LOOPBACK: Final = frozenset({"127.0.0.1", "localhost", "::1"})


class _Options(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    api_base: str = TELEGRAM_API
    api_base_env: str | None = Field(default=None, pattern=r"^[A-Z_][A-Z0-9_]{0,63}$")
    gifts: dict[str, int] = Field(min_length=1)
    text: str | None = Field(default=None, max_length=GIFT_TEXT_MAX)
    timeout_s: float = Field(default=5.0, gt=0, le=60)
    # How long after a call of unknown outcome the bot's transactions are trusted to show the gift had it been
    # sent; only then is it taken as not sent (and may be sent again).
    settle_after_s: float = Field(default=300.0, gt=0, le=86_400)
    statement_page_size: int = Field(default=100, ge=1, le=100)  # getStarTransactions' limit (at most 100)


@dataclass(frozen=True)
class TelegramOptions:
    name: str
    api_base: str
    prices: dict[int, str]  # star price -> the one gift id sent for it
    text: str | None
    timeout_s: float
    settle_after_s: float
    statement_page_size: int = 100


def parse_options(spec: ProviderSpec, context: ProviderContext) -> tuple[TelegramOptions, str]:
    """The options and the bot token of an entry; raises `ProviderConfigError` naming what is wrong."""
    where = f"provider {spec.name!r}"
    try:
        opts = _Options.model_validate(dict(spec.options))
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'options'}: "
            + ("unknown option" if e["type"] == "extra_forbidden" else e["msg"])
            for e in err.errors()
        )
        raise ProviderConfigError(f"{where}: telegram options: {problems}") from None
    if spec.assets != (ASSET,):
        raise ProviderConfigError(f"{where}: telegram pays Telegram Stars only (assets: [{ASSET}]), not {spec.assets}")
    if spec.destination_types != (DestinationType.TELEGRAM_USER,):
        raise ProviderConfigError(f"{where}: telegram pays telegram_user destinations only")
    prices = _prices(opts, where)
    if opts.settle_after_s <= opts.timeout_s:
        raise ProviderConfigError(f"{where}: settle_after_s must be longer than timeout_s (a call still running)")
    if opts.timeout_s >= context.provider_timeout_s:
        raise ProviderConfigError(
            f"{where}: timeout_s ({opts.timeout_s}) must be below PAYOUTS_PROVIDER_TIMEOUT_MS "
            f"({context.provider_timeout_s}s): a call the worker gave up on would still be running"
        )
    api_base = _api_base(spec, opts, context, where)
    secret = spec.secrets.get("bot_token")
    if secret is None or set(spec.secrets) != {"bot_token"}:
        raise ProviderConfigError(f"{where}: telegram needs exactly `secrets: {{bot_token: <ENV VAR NAME>}}`")
    token = secret.reveal()
    if not TOKEN_RE.fullmatch(token):
        raise ProviderConfigError(f"{where}: the value of {secret.env} is not a Telegram bot token (<id>:<secret>)")
    if api_base.rstrip("/") == TELEGRAM_API and not context.live_execution:
        raise ProviderConfigError(
            f"{where}: the real Bot API moves real Stars but PAYOUTS_LIVE_EXECUTION is false (build-only deployment)"
        )
    return (
        TelegramOptions(
            spec.name,
            api_base.rstrip("/"),
            prices,
            opts.text,
            opts.timeout_s,
            opts.settle_after_s,
            opts.statement_page_size,
        ),
        token,
    )


def _prices(opts: _Options, where: str) -> dict[int, str]:
    prices: dict[int, str] = {}
    for gift_id, stars in opts.gifts.items():
        if not gift_id or stars <= 0:
            raise ProviderConfigError(f"{where}: gift {gift_id!r} needs a positive star price")
        if stars in prices:
            raise ProviderConfigError(f"{where}: gifts {prices[stars]!r} and {gift_id!r} both cost {stars} stars")
        prices[stars] = gift_id
    return prices


def _api_base(spec: ProviderSpec, opts: _Options, context: ProviderContext, where: str) -> str:
    api_base = opts.api_base
    if opts.api_base_env is not None:
        if "api_base" in spec.options:
            raise ProviderConfigError(f"{where}: give api_base or api_base_env, not both")
        api_base = context.env.get(opts.api_base_env, "")
        if not api_base:
            raise ProviderConfigError(f"{where}: api_base_env names {opts.api_base_env}, which is not set")
    parts = urlsplit(api_base)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path.strip("/") or parts.query:
        raise ProviderConfigError(f"{where}: the Bot API base must be a scheme and host (e.g. {TELEGRAM_API})")
    if parts.scheme == "http" and parts.hostname not in _LOOPBACK and "." in parts.hostname:
        raise ProviderConfigError(f"{where}: the Bot API base must use https outside loopback or a local service name")
    return api_base


__all__ = ["ASSET", "GIFT_TEXT_MAX", "TELEGRAM_API", "TOKEN_RE", "TelegramOptions", "parse_options"]
