"""The crypto-exchange withdrawal rail (`type: crypto_exchange`), through ccxt: the exchange is configuration."""

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

__all__ = [
    "EXCHANGE_CODES",
    "EXCHANGE_DEFAULTS",
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
    "build_exchange",
    "client_id_for",
    "parse_options",
]
