"""Signing policy: per-transaction caps, rolling daily caps per asset, destination deny list, and one live
signed transaction per payout."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from prizeflow_contracts.events.signer import SignatureRefusalCode
from prizeflow_stellar.checks import IntentViolation


@dataclass(frozen=True, slots=True)
class LiveSignature:
    """The last transaction signed for a payout: it can land until `max_time` (unix seconds) has passed."""

    tx_hash: str
    max_time: int


class LiveSignatureExistsError(IntentViolation):
    """Another transaction signed for one of the payouts can still land; refused until `live_until`."""

    def __init__(self, detail: str, live_until: int) -> None:
        super().__init__(SignatureRefusalCode.LIVE_SIGNATURE_EXISTS, detail)
        self.live_until = live_until


@dataclass(frozen=True, slots=True)
class OneLiveSignature:
    """Never two transactions that can both land for one payout.

    A payout's last signed transaction counts as live until `margin_s` after its upper time bound (the
    network's ledger clock may lag the signer's). Signing the very same transaction again is allowed: it
    adds no second transaction, and its signature is the same (Ed25519 is deterministic).
    """

    margin_s: int

    def check(self, payout_ids: Sequence[str], tx_hash: str, live: Mapping[str, LiveSignature], now: int) -> bool:
        """Raise LiveSignatureExistsError if another live transaction covers a payout; True if this very
        transaction was already signed for every payout (a re-signing: nothing new may land)."""
        blocking = sorted(
            (p for p, sig in live.items() if sig.tx_hash != tx_hash and now <= sig.max_time + self.margin_s),
        )
        if blocking:
            until = max(live[p].max_time for p in blocking) + self.margin_s
            raise LiveSignatureExistsError(
                f"payout {blocking[0]} (and {len(blocking) - 1} more) has a signed transaction "
                f"{live[blocking[0]].tx_hash} that can land until {until}",
                live_until=until,
            )
        return all(p in live and live[p].tx_hash == tx_hash for p in payout_ids)


@dataclass(frozen=True, slots=True)
class SpendingPolicy:
    tx_caps: Mapping[str, int]
    daily_caps: Mapping[str, int]
    deny_destinations: frozenset[str]

    def check_transaction(self, destinations: Iterable[str], amounts: Mapping[str, int], *, unit: str = "") -> None:
        """Deny list (every destination) and per-transaction caps (the sums by asset): what needs no history.
        `unit` names the amounts in the refusal's detail ("stroops" for Stellar)."""
        for destination in destinations:
            if destination in self.deny_destinations:
                raise IntentViolation(SignatureRefusalCode.DESTINATION_DENIED, f"{destination} is on the deny list")
        for asset, amount in amounts.items():
            cap = self.tx_caps.get(asset)
            if cap is None or amount > cap:
                quantity = f"{amount} {unit}" if unit else str(amount)
                raise IntentViolation(
                    SignatureRefusalCode.OVER_TX_CAP, f"{quantity} of {asset} is over the per-transaction cap {cap}"
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
