"""The ccxt client an exchange rail talks through: its credentials, timeouts and proxy, never a log of its
requests (they carry the API key), and its URLs re-based on an emulator when `api_base` is set."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

from prizeflow_payouts.adapters.exchange.options import Credentials, ExchangeOptions
from prizeflow_payouts.provider_spec import ProviderConfigError


def ccxt_exchange(options: ExchangeOptions, credentials: Credentials) -> Any:
    """ccxt's client of the configured exchange, refused unless it can withdraw and list withdrawals. Imported
    here, not at module load: ccxt loads every exchange it knows (~4 s of CPU)."""
    import ccxt.async_support as ccxt_async  # type: ignore[import-untyped]  # ccxt ships no type information

    # ccxt logs requests (headers included: the API key) at DEBUG: never below INFO, whatever the root says.
    ccxt_logger = logging.getLogger("ccxt")
    ccxt_logger.setLevel(max(ccxt_logger.getEffectiveLevel(), logging.INFO))
    config: dict[str, Any] = {
        "apiKey": credentials.api_key,
        "secret": credentials.api_secret,
        "timeout": int(options.timeout_s * 1000),
        "enableRateLimit": True,
        "options": dict(options.ccxt_options),
        "aiohttp_trust_env": True,  # HTTPS_PROXY / NO_PROXY: deploy/k8s sends public egress through its proxy
    }
    if credentials.password:
        config["password"] = credentials.password
    exchange = getattr(ccxt_async, options.exchange)(config)
    for needed in ("withdraw", "fetchWithdrawals"):
        if not exchange.has.get(needed):
            raise ProviderConfigError(f"provider {options.name!r}: ccxt's {options.exchange} cannot {needed}")
    if options.api_base is not None:
        exchange.urls["api"] = _rebased(exchange.urls.get("api"), options.api_base)
    return exchange


def _rebased(urls: Any, base: str) -> Any:
    """Every API URL with its origin replaced by `base` (the path kept): an emulator answers them all."""
    if isinstance(urls, str):
        return base + urlsplit(urls).path
    if isinstance(urls, dict):
        return {k: _rebased(v, base) for k, v in urls.items()}
    return urls


__all__ = ["ccxt_exchange"]
