"""Spending policy: per-transaction caps, rolling daily caps per asset, destination deny list."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from prizeflow_contracts.events.signer import SignatureRefusalCode
from prizeflow_stellar.checks import CheckedTransaction, IntentViolation


@dataclass(frozen=True, slots=True)
class SpendingPolicy:
    tx_caps: Mapping[str, int]
    daily_caps: Mapping[str, int]
    deny_destinations: frozenset[str]

    def check_transaction(self, checked: CheckedTransaction) -> None:
        """Deny list and per-transaction caps: what needs no history."""
        for destination in checked.destinations:
            if destination in self.deny_destinations:
                raise IntentViolation(SignatureRefusalCode.DESTINATION_DENIED, f"{destination} is on the deny list")
        for asset, amount in checked.amounts.items():
            cap = self.tx_caps.get(asset)
            if cap is None or amount > cap:
                raise IntentViolation(
                    SignatureRefusalCode.OVER_TX_CAP,
                    f"{amount} stroops of {asset} is over the per-transaction cap {cap}",
                )

    def check_daily(self, amounts: Mapping[str, int], used: Mapping[str, int]) -> None:
        """Rolling 24 h caps: what was signed in the window plus this transaction."""
        for asset, amount in amounts.items():
            cap = self.daily_caps.get(asset, 0)
            spent = used.get(asset, 0)
            if spent + amount > cap:
                raise IntentViolation(
                    SignatureRefusalCode.OVER_DAILY_CAP,
                    f"{asset}: {spent} signed in the last 24 h + {amount} is over the daily cap {cap}",
                )
