"""The crypto-exchange withdrawal rail (`type: crypto_exchange`), through ccxt: the exchange is configuration.

ccxt loads every exchange it knows (~4 s of CPU), which a payouts process without this rail should not pay at every
start: importing this package imports none of the rail's modules; each name below is loaded from its module when it
is first asked for, and the factory when a providers file names the rail."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Final

from prizeflow_contracts.providers import ProviderType

if TYPE_CHECKING:
    from prizeflow_payouts.adapters.exchange.classify import EXCHANGE_CODES, ExchangeErrors
    from prizeflow_payouts.adapters.exchange.factory import build_exchange
    from prizeflow_payouts.adapters.exchange.options import (
        EXCHANGE_DEFAULTS,
        AssetRoute,
        Credentials,
        ExchangeOptions,
        MemoRule,
        parse_options,
    )
    from prizeflow_payouts.adapters.exchange.provider import STATUSES, ExchangeWithdrawalProvider, client_id_for
    from prizeflow_payouts.adapters.exchange.store import (
        SqlWithdrawalBook,
        WithdrawalBook,
        WithdrawalBookError,
        WithdrawalRecord,
        WithdrawalState,
    )
    from prizeflow_payouts.application.rail import Rail
    from prizeflow_payouts.provider_spec import ProviderContext, ProviderSpec

_HOME: Final = {
    **dict.fromkeys(("EXCHANGE_CODES", "ExchangeErrors"), "classify"),
    "build_exchange": "factory",
    **dict.fromkeys(
        ("EXCHANGE_DEFAULTS", "AssetRoute", "Credentials", "ExchangeOptions", "MemoRule", "parse_options"), "options"
    ),
    **dict.fromkeys(("STATUSES", "ExchangeWithdrawalProvider", "client_id_for"), "provider"),
    **dict.fromkeys(
        ("SqlWithdrawalBook", "WithdrawalBook", "WithdrawalBookError", "WithdrawalRecord", "WithdrawalState"), "store"
    ),
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)


def build(spec: ProviderSpec, context: ProviderContext) -> Rail:
    """The rail, its modules (and ccxt) imported now."""
    from prizeflow_payouts.adapters.exchange.factory import build_exchange  # deliberately lazy

    return build_exchange(spec, context)


# The provider types this package implements (the bootstrap finds every adapter package's `RAILS`).
RAILS: Final = {ProviderType.CRYPTO_EXCHANGE: build}

__all__ = [
    "EXCHANGE_CODES",
    "EXCHANGE_DEFAULTS",
    "RAILS",
    "STATUSES",
    "AssetRoute",
    "Credentials",
    "ExchangeErrors",
    "ExchangeOptions",
    "ExchangeWithdrawalProvider",
    "MemoRule",
    "SqlWithdrawalBook",
    "WithdrawalBook",
    "WithdrawalBookError",
    "WithdrawalRecord",
    "WithdrawalState",
    "build",
    "build_exchange",
    "client_id_for",
    "parse_options",
]
