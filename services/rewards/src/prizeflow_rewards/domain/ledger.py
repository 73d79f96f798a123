"""The ledger model, after TigerBeetle: accounts with posted/pending debits and credits, immutable transfers.

Pure rules only: account and transfer ids derived from business keys, the flags of each account kind, and
how a batch of transfers changes account balances. The PostgreSQL adapter applies what this computes and
the database re-checks the balance rule with a CHECK constraint.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntFlag, StrEnum
from functools import lru_cache
from typing import Final

_ACCOUNT_NS: Final = uuid.UUID("3b6f4f0e-5a53-4c1c-9a0b-1f5e2d7c8a01")
_TRANSFER_NS: Final = uuid.UUID("9c2d7e44-0f0b-4a8e-8b1e-6a3c5d2f7b02")


class AccountKind(StrEnum):
    PLAYER_WALLET = "player_wallet"
    CAMPAIGN_POOL = "campaign_pool"
    TREASURY = "treasury"
    PLATFORM_REVENUE = "platform_revenue"
    ORGANIZER_REVENUE = "organizer_revenue"
    PAYOUT_CLEARING = "payout_clearing"
    PROVIDER_EXTERNAL = "provider_external"
    # A round's entry fees between the entry and the round's outcome (fee split, pot prizes or refunds).
    ENTRY_ESCROW = "entry_escrow"
    # What a payment provider collected from players' checkouts for us (a debit balance: the provider owes it),
    # net of the refunds and disputes it paid back. Per provider and asset; distinct from `provider_external`.
    PROVIDER_CLEARING = "provider_clearing"
    # What a player owes the platform: a refund or dispute of a top-up their wallet could no longer cover.
    PLAYER_RECEIVABLE = "player_receivable"
    # The FX desk's position per asset (`domain/fx.py`): long what players sold it, short what it paid out. Either
    # sign: reconciled daily, never flagged.
    FX_POSITION = "fx_position"


class AccountFlags(IntFlag):
    NONE = 0
    # debits_posted + debits_pending <= credits_posted, enforced by a CHECK constraint on the row.
    DEBITS_MUST_NOT_EXCEED_CREDITS = 1


_DEBITS_MUST_NOT_EXCEED_CREDITS: Final = int(AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)

KIND_FLAGS: Final[Mapping[AccountKind, AccountFlags]] = {
    AccountKind.PLAYER_WALLET: AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS,
    AccountKind.CAMPAIGN_POOL: AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS,
    AccountKind.PAYOUT_CLEARING: AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS,
    AccountKind.TREASURY: AccountFlags.NONE,
    AccountKind.PLATFORM_REVENUE: AccountFlags.NONE,
    AccountKind.ORGANIZER_REVENUE: AccountFlags.NONE,
    AccountKind.PROVIDER_EXTERNAL: AccountFlags.NONE,
    # Per round: what a round's outcome pays from it can never exceed what its accepted entries paid in.
    AccountKind.ENTRY_ESCROW: AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS,
    AccountKind.PROVIDER_CLEARING: AccountFlags.NONE,
    AccountKind.PLAYER_RECEIVABLE: AccountFlags.NONE,
    AccountKind.FX_POSITION: AccountFlags.NONE,
}


class TransferKind(StrEnum):
    """The business flow a transfer belongs to (docs/architecture.md §4); also a metric label."""

    CAMPAIGN_FUNDING = "campaign_funding"
    REWARD = "reward"
    ENTRY_FEE = "entry_fee"
    FEE_REVENUE = "fee_revenue"
    REFUND = "refund"
    CLAIM_RESERVE = "claim_reserve"
    PAYOUT_POST = "payout_post"
    PAYOUT_VOID = "payout_void"
    PAYOUT_SETTLE = "payout_settle"
    PAYOUT_RETURN = "payout_return"
    TOP_UP = "top_up"
    # Player top-ups through a checkout provider (`application/topups.py`).
    TOP_UP_CREDIT = "top_up_credit"  # provider clearing -> wallet, once per top-up
    TOP_UP_DEBIT = "top_up_debit"  # wallet -> provider clearing: the part of a refund/dispute the wallet covers
    TOP_UP_RECEIVABLE = "top_up_receivable"  # receivable -> provider clearing: the part it could not cover
    TOP_UP_REINSTATE = "top_up_reinstate"  # provider clearing -> receivable, then wallet: a dispute won
    POOL_SWEEP = "pool_sweep"  # pool -> treasury: what a closed campaign's pool still held, once
    CORRECTION = "correction"  # a compensating transfer two people agreed on (`domain/corrections.py`)
    # Treasury -> provider external: a reconciliation exception two people resolved by moving money
    # (`application/reconciliation.py`), once per adjustment id whatever its kind.
    RECONCILIATION_FEE = "reconciliation_fee"  # a provider fee nobody booked: an expense
    RECONCILIATION_WRITE_OFF = "reconciliation_write_off"  # money gone at the provider no payout explains: a loss
    # A converted claim paid (`domain/fx.py`, ADR 0015): its source leg (clearing -> fx desk, net of the spread), the
    # spread (clearing -> revenue), its target leg (fx desk -> rail); a return back through the desk at the locked rate.
    FX_SOURCE = "fx_source"
    FX_SPREAD = "fx_spread"
    FX_TARGET = "fx_target"
    FX_RETURN = "fx_return"
    FX_SPREAD_RETURN = "fx_spread_return"


class TransferFlags(IntFlag):
    NONE = 0
    PENDING = 1
    POST_PENDING = 2
    VOID_PENDING = 4
    # Part of a batch that applies all-or-nothing (every `apply` call is one linked batch).
    LINKED = 8


_PENDING: Final = int(TransferFlags.PENDING)
_POST: Final = int(TransferFlags.POST_PENDING)
_VOID: Final = int(TransferFlags.VOID_PENDING)
_LINKED: Final = int(TransferFlags.LINKED)
RESOLVING_BITS: Final = _POST | _VOID


@dataclass(frozen=True, slots=True, order=True)
class AccountRef:
    """An account by its natural key; the id is derived from it, so no lookup is needed to address it."""

    kind: AccountKind
    owner: str
    asset: str
    id: uuid.UUID = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "id", account_id(self.kind, self.owner, self.asset))

    @property
    def flags(self) -> AccountFlags:
        return KIND_FLAGS[self.kind]


@lru_cache(maxsize=65_536)
def account_id(kind: AccountKind, owner: str, asset: str) -> uuid.UUID:
    """A pure function of the natural key, computed for every reference to an account: the hot ones (clearing,
    pools, busy wallets) are remembered (a SHA-1 each otherwise, several per claim)."""
    return uuid.uuid5(_ACCOUNT_NS, f"{kind.value}|{owner}|{asset}")


def transfer_id(*business_key: object) -> uuid.UUID:
    """A transfer id from its business key: a retry computes the same id, so it cannot move money twice."""
    return uuid.uuid5(_TRANSFER_NS, "|".join(str(p) for p in business_key))


@dataclass(frozen=True, slots=True)
class Transfer:
    """A transfer to apply. For post/void, `debit`/`credit`/`amount` must repeat the pending transfer's."""

    id: uuid.UUID
    debit: AccountRef
    credit: AccountRef
    amount: int
    kind: TransferKind
    business_key: str
    flags: TransferFlags = TransferFlags.NONE
    pending_id: uuid.UUID | None = None
    # The flow it belongs to (a round's, a claim's, a top-up's, an admin action's), kept with it so the ledger can
    # be read by flow. Not part of the body: a retry under another flow is still the same transfer.
    correlation_id: str | None = field(default=None, compare=False)
    # `flags` as a plain int: IntFlag arithmetic is slow on the hot path of large batches.
    bits: int = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "bits", int(self.flags))
        if self.amount <= 0:
            raise ValueError(f"transfer {self.business_key}: amount must be positive, got {self.amount}")
        if self.debit == self.credit:
            raise ValueError(f"transfer {self.business_key}: debit and credit accounts are the same")
        if self.debit.asset != self.credit.asset:
            raise ValueError(f"transfer {self.business_key}: accounts of different assets")
        bits = self.bits
        resolving = bits & RESOLVING_BITS
        if bool(resolving) != (self.pending_id is not None):
            raise ValueError(f"transfer {self.business_key}: pending_id is for (and required by) a post/void")
        if resolving == RESOLVING_BITS:
            raise ValueError(f"transfer {self.business_key}: cannot both post and void")
        if resolving and (bits & _PENDING):
            raise ValueError(f"transfer {self.business_key}: a post/void is not itself pending")

    @property
    def asset(self) -> str:
        return self.debit.asset

    def body(self) -> tuple[object, ...]:
        """What must be identical for a retry with the same id to be a no-op."""
        return (
            self.debit.id,
            self.credit.id,
            self.asset,
            self.amount,
            self.kind.value,
            self.bits & ~_LINKED,
            self.pending_id,
        )

    @classmethod
    def of(
        cls,
        debit: AccountRef,
        credit: AccountRef,
        amount: int,
        kind: TransferKind,
        *key: object,
        flags: TransferFlags = TransferFlags.NONE,
        pending_id: uuid.UUID | None = None,
        correlation_id: str | None = None,
    ) -> Transfer:
        business_key = "|".join(str(p) for p in (kind.value, *key))
        return cls(
            transfer_id(business_key), debit, credit, amount, kind, business_key, flags, pending_id, correlation_id
        )


def post_of(pending: Transfer, *key: object) -> Transfer:
    """Post `pending` (in its flow)."""
    return Transfer.of(
        pending.debit,
        pending.credit,
        pending.amount,
        TransferKind.PAYOUT_POST,
        pending.id,
        *key,
        flags=TransferFlags.POST_PENDING,
        pending_id=pending.id,
        correlation_id=pending.correlation_id,
    )


def void_of(pending: Transfer, *key: object) -> Transfer:
    """Void `pending` (in its flow)."""
    return Transfer.of(
        pending.debit,
        pending.credit,
        pending.amount,
        TransferKind.PAYOUT_VOID,
        pending.id,
        *key,
        flags=TransferFlags.VOID_PENDING,
        pending_id=pending.id,
        correlation_id=pending.correlation_id,
    )


@dataclass(slots=True)
class Delta:
    debits_posted: int = 0
    credits_posted: int = 0
    debits_pending: int = 0
    credits_pending: int = 0


@dataclass(slots=True)
class Balance:
    """An account's four counters, as stored."""

    debits_posted: int = 0
    credits_posted: int = 0
    debits_pending: int = 0
    credits_pending: int = 0
    flags: int = 0

    @property
    def posted(self) -> int:
        """Net posted credit balance (what a wallet owns)."""
        return self.credits_posted - self.debits_posted

    @property
    def available(self) -> int:
        """What may still be debited: posted balance less pending debits (reservations)."""
        return self.credits_posted - self.debits_posted - self.debits_pending

    def apply(self, d: Delta) -> Balance:
        return Balance(
            self.debits_posted + d.debits_posted,
            self.credits_posted + d.credits_posted,
            self.debits_pending + d.debits_pending,
            self.credits_pending + d.credits_pending,
            self.flags,
        )

    def violates_flags(self) -> bool:
        return bool(self.flags & _DEBITS_MUST_NOT_EXCEED_CREDITS) and (
            self.debits_posted + self.debits_pending > self.credits_posted
        )


# Every counter of an account is a BIGINT: the database refuses a transfer that would take one past it.
COUNTER_MAX: Final = 2**63 - 1


def pending_room(debit: Balance, credit: Balance) -> int:
    """The most one more pending transfer debit → credit may move: it raises the debit's pending debits and the
    credit's pending credits, and neither may pass `COUNTER_MAX` (a clearing account every claim credits reaches
    it long before any one wallet could)."""
    return min(COUNTER_MAX - debit.debits_pending, COUNTER_MAX - credit.credits_pending)


def deltas(transfers: Iterable[Transfer]) -> dict[uuid.UUID, Delta]:
    """Per-account change of a batch: one row update per account, whatever the batch size."""
    out: dict[uuid.UUID, Delta] = defaultdict(Delta)
    for t in transfers:
        d, c, a, bits = out[t.debit.id], out[t.credit.id], t.amount, t.bits
        if bits & _PENDING:
            d.debits_pending += a
            c.credits_pending += a
        elif bits & _POST:
            d.debits_pending -= a
            d.debits_posted += a
            c.credits_pending -= a
            c.credits_posted += a
        elif bits & _VOID:
            d.debits_pending -= a
            c.credits_pending -= a
        else:
            d.debits_posted += a
            c.credits_posted += a
    return dict(out)


class LedgerError(Exception):
    """A batch that cannot apply; nothing of it was written. `code` is stable (problem details, DLQ)."""

    def __init__(self, code: str, detail: str, *, account: AccountRef | None = None) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail
        self.account = account


@dataclass(frozen=True, slots=True)
class BatchResult:
    """What an `apply` did: the transfers it wrote now; the others were already there (idempotent retry)."""

    applied: Sequence[Transfer] = ()
    duplicates: Sequence[Transfer] = ()
    balances: Mapping[uuid.UUID, Balance] = field(default_factory=dict)

    @property
    def applied_ids(self) -> set[uuid.UUID]:
        return {t.id for t in self.applied}


__all__ = [
    "COUNTER_MAX",
    "KIND_FLAGS",
    "RESOLVING_BITS",
    "AccountFlags",
    "AccountKind",
    "AccountRef",
    "Balance",
    "BatchResult",
    "Delta",
    "LedgerError",
    "Transfer",
    "TransferFlags",
    "TransferKind",
    "account_id",
    "deltas",
    "pending_room",
    "post_of",
    "transfer_id",
    "void_of",
]
