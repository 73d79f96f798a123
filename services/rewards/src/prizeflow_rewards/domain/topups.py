"""Player top-ups through a checkout provider: the top-up's states, what may be topped up, and how its
payment, refunds and disputes move money (pure rules; `application/topups.py` applies them).

Money only ever moves on the provider's word (its webhook, or its session read back by a verify call): a top-up
is credited once, from the provider's clearing account; a refund or a dispute debits the wallet as far as the
wallet can cover it and records the rest as the player's receivable, never a negative balance; a dispute won
gives back first what the player was made to owe, then the wallet.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from prizeflow_contracts.money import Asset, AssetKind
from prizeflow_contracts.transitions import Transitions
from prizeflow_rewards.domain import accounts
from prizeflow_rewards.domain.ledger import AccountRef, Transfer, TransferKind


class TopUpStatus(StrEnum):
    CREATED = "created"  # a checkout session exists at the provider; nothing paid yet
    CREDITED = "credited"  # the provider said paid: the wallet was credited (refunds/disputes adjust it after)
    FAILED = "failed"  # the provider said the payment failed: nothing was, or will be, credited
    EXPIRED = "expired"  # the session expired unpaid


# created → credited | failed | expired. Failed and expired are final: a session the provider let expire or whose
# payment failed is never paid later (a `paid` report for one is refused for a person to look at, not absorbed).
TRANSITIONS: Final = Transitions(
    "top-up",
    {
        TopUpStatus.CREATED: frozenset({TopUpStatus.CREDITED, TopUpStatus.FAILED, TopUpStatus.EXPIRED}),
        TopUpStatus.CREDITED: frozenset(),
        TopUpStatus.FAILED: frozenset(),
        TopUpStatus.EXPIRED: frozenset(),
    },
    initial=frozenset({TopUpStatus.CREATED}),
)


class AdjustmentKind(StrEnum):
    """The contract's TopUpAdjustmentKind, as the ledger sees it."""

    REFUND = "refund"
    DISPUTE = "dispute"
    DISPUTE_WON = "dispute_won"
    REFUND_FAILED = "refund_failed"


# A reversal gives back what the adjustment of the same ref took: a dispute won its dispute, a failed refund its
# refund. It applies only after the adjustment it reverses (it waits for it), and never gives back more.
REVERSES: Final[Mapping[AdjustmentKind, AdjustmentKind]] = {
    AdjustmentKind.DISPUTE_WON: AdjustmentKind.DISPUTE,
    AdjustmentKind.REFUND_FAILED: AdjustmentKind.REFUND,
}
REVERSED_BY: Final[Mapping[AdjustmentKind, AdjustmentKind]] = {v: k for k, v in REVERSES.items()}


class AdjustmentStatus(StrEnum):
    # Recorded, waiting: for the top-up's credit (a refund reported before the payment), or for the dispute it
    # settles (a dispute won reported before the dispute). Applied, once, as soon as that arrives.
    PENDING = "pending"
    APPLIED = "applied"


class TopUpRefusalCode(StrEnum):
    """Why a top-up request is refused (problem details `code`); nothing is written, no session is created."""

    UNKNOWN_ASSET = "unknown_asset"
    ASSET_NOT_TOP_UPABLE = "asset_not_top_upable"  # points (Season Points are never bought), crypto
    PROVIDER_NOT_AVAILABLE = "provider_not_available"
    NO_PROVIDER_CURRENCY = "no_provider_currency"
    INVALID_AMOUNT = "invalid_amount"
    BELOW_MINIMUM = "below_minimum"
    ABOVE_MAXIMUM = "above_maximum"
    DAILY_LIMIT_EXCEEDED = "daily_limit_exceeded"


@dataclass(frozen=True, slots=True)
class TopUpLimits:
    """Per asset, minor units. An asset with no maximum or no daily cap configured is not offered."""

    minimum: Mapping[str, int]
    maximum: Mapping[str, int]
    daily: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class Refusal:
    code: TopUpRefusalCode
    detail: str


def topupable(spec: Asset, provider: str, currency_scheme: str) -> Refusal | str:
    """The provider's currency code for `spec`, or why it cannot be topped up: only fiat money that can also be
    redeemed is ever bought (never Season Points nor any points asset), and only in a currency the provider names."""
    if spec.kind is not AssetKind.FIAT or not spec.redeemable:
        return Refusal(
            TopUpRefusalCode.ASSET_NOT_TOP_UPABLE,
            f"{spec.code} ({spec.kind.value}) cannot be topped up: only redeemable fiat money can be paid in",
        )
    currency = spec.provider_codes.get(currency_scheme)
    if currency is None:
        return Refusal(TopUpRefusalCode.NO_PROVIDER_CURRENCY, f"{provider} has no currency code for {spec.code}")
    return currency


def check_amount(asset: str, amount: int, created_today: int, limits: TopUpLimits) -> Refusal | None:
    """Per-top-up minimum/maximum and the player's daily cap (top-ups created in the last 24h that are still
    open or were credited, in this asset)."""
    if amount <= 0:
        return Refusal(TopUpRefusalCode.INVALID_AMOUNT, "amount must be a positive integer of minor units")
    maximum, daily = limits.maximum.get(asset), limits.daily.get(asset)
    if maximum is None or daily is None:
        return Refusal(TopUpRefusalCode.ASSET_NOT_TOP_UPABLE, f"top-ups in {asset} are not offered")
    minimum = limits.minimum.get(asset, 1)
    if amount < minimum:
        return Refusal(TopUpRefusalCode.BELOW_MINIMUM, f"the minimum top-up is {minimum} {asset} minor units")
    if amount > maximum:
        return Refusal(TopUpRefusalCode.ABOVE_MAXIMUM, f"the maximum top-up is {maximum} {asset} minor units")
    if created_today + amount > daily:
        return Refusal(
            TopUpRefusalCode.DAILY_LIMIT_EXCEEDED,
            f"top-ups of {created_today} + {amount} would exceed the daily limit of {daily} {asset} minor units",
        )
    return None


def top_up_id_for(player_id: str, request_key: str | None) -> str:
    """One top-up per (player, client request key): the same key names the same top-up, hence the same provider
    session (the provider's Idempotency-Key is the top-up id). No key: a new top-up. Both may hold `:`, so the
    player's are escaped (ids without one are unchanged): ("p", "x:k") and ("p:x", "k") are two top-ups."""
    if request_key:
        player = player_id.replace("%", "%25").replace(":", "%3A")
        return "tu-" + str(uuid.uuid5(uuid.NAMESPACE_URL, f"prizeflow:top-up:{player}:{request_key}"))
    return f"tu-{uuid.uuid4()}"


@dataclass(frozen=True, slots=True)
class TopUp:
    id: str
    player_id: str
    asset: str
    amount: int
    provider: str
    status: TopUpStatus
    session_ref: str
    url: str
    expires_at: datetime
    correlation_id: str
    created_at: datetime
    payment_ref: str | None = None
    credit_transfer_id: uuid.UUID | None = None
    credited_at: datetime | None = None

    def same_request(self, player_id: str, asset: str, amount: int, provider: str) -> bool:
        return (self.player_id, self.asset, self.amount, self.provider) == (player_id, asset, amount, provider)

    def view(self) -> dict[str, Any]:
        return {
            "top_up_id": self.id,
            "player_id": self.player_id,
            "asset": self.asset,
            "amount": self.amount,
            "provider": self.provider,
            "status": self.status.value,
            "session_ref": self.session_ref,
            "url": self.url,
            "expires_at": self.expires_at.isoformat(),
            "created_at": self.created_at.isoformat(),
            "credited_at": self.credited_at.isoformat() if self.credited_at else None,
            "credit_transfer_id": str(self.credit_transfer_id) if self.credit_transfer_id else None,
        }


@dataclass(frozen=True, slots=True)
class Adjustment:
    """A refund, dispute or dispute won of a top-up: recorded once per (provider, kind, adjustment_ref)."""

    top_up_id: str
    kind: AdjustmentKind
    adjustment_ref: str
    amount: int
    status: AdjustmentStatus = AdjustmentStatus.PENDING
    debited: int = 0  # left the wallet
    receivable: int = 0  # refund/dispute: what the player now owes; dispute won: what it cleared of that
    credited: int = 0  # dispute won: back into the wallet
    seq: int = 0  # arrival order
    applied_at: datetime | None = field(default=None, compare=False)

    def view(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "adjustment_ref": self.adjustment_ref,
            "amount": self.amount,
            "status": self.status.value,
            "debited": self.debited,
            "receivable": self.receivable,
            "credited": self.credited,
            "applied_at": self.applied_at.isoformat() if self.applied_at else None,
        }


def outstanding(adjustments: list[Adjustment]) -> int:
    """What refunds and disputes have taken back of a top-up, net of their reversals (disputes won, refunds failed;
    recorded ones, applied or not). A reversal offsets only the adjustment it reverses, once that is recorded: one
    waiting for an adjustment that has not come (or never will) has given nothing back, so it makes no room for
    more refunds."""
    taken = sum(a.amount for a in adjustments if a.kind not in REVERSES)
    reversible = {(a.kind, a.adjustment_ref): a.amount for a in adjustments if a.kind in REVERSED_BY}
    given_back = sum(
        min(a.amount, reversible[(REVERSES[a.kind], a.adjustment_ref)])
        for a in adjustments
        if a.kind in REVERSES and (REVERSES[a.kind], a.adjustment_ref) in reversible
    )
    return taken - given_back


def debit_split(amount: int, available: int) -> tuple[int, int]:
    """(debited from the wallet, recorded as receivable) for a refund or dispute of `amount` when the wallet
    has `available`: the wallet pays what it can, the player owes the rest; never a negative balance."""
    debited = max(0, min(amount, available))
    return debited, amount - debited


def reinstate_split(amount: int, reversed_: Adjustment) -> tuple[int, int]:
    """(credited back to the wallet, cleared from the receivable) for a reversal (dispute won, refund failed) of
    `amount`: first what the reversed dispute or refund made the player owe, then the wallet."""
    cleared = min(amount, reversed_.receivable)
    return amount - cleared, cleared


def credit_transfer(top_up: TopUp) -> Transfer:
    return Transfer.of(
        accounts.provider_clearing(top_up.provider, top_up.asset),
        accounts.wallet(top_up.player_id, top_up.asset),
        top_up.amount,
        TransferKind.TOP_UP_CREDIT,
        top_up.id,
        correlation_id=top_up.correlation_id,
    )


def adjustment_transfers(top_up: TopUp, adj: Adjustment) -> list[Transfer]:
    """The legs of an adjustment whose split (`debited`, `receivable`, `credited`) is decided; zero legs are left
    out. Ids derive from (top-up, kind, adjustment_ref): an adjustment moves money at most once."""
    clearing = accounts.provider_clearing(top_up.provider, top_up.asset)
    wallet = accounts.wallet(top_up.player_id, top_up.asset)
    owed = accounts.receivable(top_up.player_id, top_up.asset)
    key = (top_up.id, adj.kind.value, adj.adjustment_ref)
    flow = top_up.correlation_id
    legs: list[Transfer] = []
    if adj.kind in REVERSES:
        if adj.receivable:
            legs.append(
                Transfer.of(
                    clearing,
                    owed,
                    adj.receivable,
                    TransferKind.TOP_UP_REINSTATE,
                    *key,
                    "receivable",
                    correlation_id=flow,
                )
            )
        if adj.credited:
            legs.append(
                Transfer.of(
                    clearing, wallet, adj.credited, TransferKind.TOP_UP_REINSTATE, *key, "wallet", correlation_id=flow
                )
            )
        return legs
    if adj.debited:
        legs.append(Transfer.of(wallet, clearing, adj.debited, TransferKind.TOP_UP_DEBIT, *key, correlation_id=flow))
    if adj.receivable:
        legs.append(
            Transfer.of(owed, clearing, adj.receivable, TransferKind.TOP_UP_RECEIVABLE, *key, correlation_id=flow)
        )
    return legs


def top_up_accounts(top_up: TopUp) -> list[AccountRef]:
    """Every account a top-up's credit and adjustments may move (declared up front, in one ordered lock)."""
    return [
        accounts.provider_clearing(top_up.provider, top_up.asset),
        accounts.wallet(top_up.player_id, top_up.asset),
        accounts.receivable(top_up.player_id, top_up.asset),
    ]


__all__ = [
    "TRANSITIONS",
    "Adjustment",
    "AdjustmentKind",
    "AdjustmentStatus",
    "Refusal",
    "TopUp",
    "TopUpLimits",
    "TopUpRefusalCode",
    "TopUpStatus",
    "adjustment_transfers",
    "check_amount",
    "credit_transfer",
    "debit_split",
    "outstanding",
    "reinstate_split",
    "top_up_accounts",
    "top_up_id_for",
    "topupable",
]
