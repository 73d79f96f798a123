"""The provider's books as types: the states of an envelope (`stellar_txs`) and of a payout it holds
(`stellar_payouts`), the one table of legal envelope transitions, and typed rows instead of mappings.

No I/O here: the engine asks `require_transition` before every compare-and-set, and the SQL guards in `store`
are checked against `TX_TRANSITIONS` by the unit tests, so the table is the one place the rules live.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

import prizeflow_stellar as ps
from prizeflow_contracts.transitions import IllegalTransition, Transitions


class TxState(StrEnum):
    """`stellar_txs.state` (the CHECK constraint of migration 0002 lists the same values)."""

    BUILT = "built"  # build-only mode: stored for operators, never signed nor submitted
    SIGNING = "signing"  # a SignatureRequested is out; waiting for the signer
    EXTERNAL = "external"  # the signer wants an operator's signature (POST /payouts/{id}/submit-signed)
    SIGNED = "signed"  # exactly the transaction built, validly signed: to submit
    SUBMITTED = "submitted"  # sent at least once (or maybe): polled, resubmitted unchanged until it ends
    SUCCESS = "success"  # landed; its payments moved
    FAILED = "failed"  # landed failed: its sequence number is consumed, nothing moved
    DEAD = "dead"  # provably never landed and never will (time bound passed, sequence consumed by another)
    REFUSED = "refused"  # the signer refused it: never signed


class PayoutState(StrEnum):
    """`stellar_payouts.state`."""

    QUEUED = "queued"
    IN_TX = "in_tx"
    PAID = "paid"
    FAILED = "failed"


class TxKind(StrEnum):
    PAYMENTS = "payments"
    CONTRACT = "contract"


T = TxState

# Every legal move of an envelope, and only those. A state listed in its own set may be re-marked in place
# (checked again later, polled, a signature asked again); a state with no entry is final.
TX_TRANSITIONS: Final[Mapping[TxState, frozenset[TxState]]] = {
    T.BUILT: frozenset(),
    T.SIGNING: frozenset({T.SIGNING, T.EXTERNAL, T.SIGNED, T.REFUSED, T.SUCCESS, T.FAILED, T.DEAD}),
    T.EXTERNAL: frozenset({T.EXTERNAL, T.SIGNED, T.REFUSED, T.SUCCESS, T.FAILED, T.DEAD}),
    T.SIGNED: frozenset({T.SIGNED, T.SUBMITTED, T.SUCCESS, T.FAILED, T.DEAD}),
    T.SUBMITTED: frozenset({T.SUBMITTED, T.SUCCESS, T.FAILED, T.DEAD}),
    T.SUCCESS: frozenset(),
    T.FAILED: frozenset(),
    T.DEAD: frozenset(),
    T.REFUSED: frozenset(),
}

TX_MACHINE: Final = Transitions[TxState]("stellar_txs", TX_TRANSITIONS)
FINAL_TX_STATES: Final = TX_MACHINE.finals
# Open: an envelope the engine still drives (its lane is held while it is open in live mode).
OPEN_TX_STATES: Final = (T.SIGNING, T.SIGNED, T.EXTERNAL, T.SUBMITTED)
AWAITING_SIGNATURE: Final = frozenset({T.SIGNING, T.EXTERNAL})

# What becomes of a payout (payout rows are moved by the envelope holding them).
PAYOUT_TRANSITIONS: Final[Mapping[PayoutState, frozenset[PayoutState]]] = {
    PayoutState.QUEUED: frozenset({PayoutState.IN_TX, PayoutState.FAILED}),
    PayoutState.IN_TX: frozenset({PayoutState.QUEUED, PayoutState.PAID, PayoutState.FAILED}),
    PayoutState.PAID: frozenset(),
    PayoutState.FAILED: frozenset(),
}
PAYOUT_MACHINE: Final = Transitions[PayoutState]("stellar_payouts", PAYOUT_TRANSITIONS)


def can_move(src: TxState, dst: TxState) -> bool:
    return TX_MACHINE.allows(src, dst)


def require_transition(src: TxState, dst: TxState) -> TxState:
    """`dst`, if an envelope in `src` may move there; raises `IllegalTransition` otherwise (a bug, never a network
    outcome)."""
    TX_MACHINE.check(src, dst)
    return dst


def require_payout_transition(src: PayoutState, dst: PayoutState) -> PayoutState:
    PAYOUT_MACHINE.check(src, dst)
    return dst


def sources_of(dst: TxState, *, moves_only: bool = False) -> tuple[TxState, ...]:
    """The states an envelope may reach `dst` from (`moves_only`: not `dst` itself), in declaration order."""
    return tuple(s for s in TxState if can_move(s, dst) and not (moves_only and s is dst))


def sql_states(states: Iterable[TxState]) -> str:
    """`('a', 'b')` for an SQL `IN` guard (constant enum values only, never input)."""
    return "(" + ", ".join(f"'{s.value}'" for s in states) + ")"


def live_until(max_time: int) -> int:
    """When a signed envelope's payouts may be rebuilt: once the signer would sign another transaction for them."""
    return int(max_time) + ps.TIME_BOUND_MARGIN_S + 1


@dataclass(frozen=True, slots=True)
class TxRow:
    """An open envelope as the engine reads it (`store.DUE_TXS`)."""

    id: str
    lane: str
    sequence: int
    kind: TxKind
    payout_ids: tuple[str, ...]
    state: TxState
    tx_hash: str
    signed_xdr: str | None
    max_time: int
    submits: int
    polls: int
    sign_requests: int
    sign_request: Any
    last_status: str | None
    error_code: str | None
    fee: int

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> TxRow:
        return cls(
            id=row["id"],
            lane=row["lane"],
            sequence=int(row["sequence"]),
            kind=TxKind(row["kind"]),
            payout_ids=tuple(row["payout_ids"]),
            state=TxState(row["state"]),
            tx_hash=row["tx_hash"],
            signed_xdr=row["signed_xdr"],
            max_time=int(row["max_time"]),
            submits=int(row["submits"]),
            polls=int(row["polls"]),
            sign_requests=int(row["sign_requests"]),
            sign_request=row["sign_request"],
            last_status=row["last_status"],
            error_code=row["error_code"],
            fee=int(row["fee"]),
        )

    @property
    def live_until(self) -> int:
        return live_until(self.max_time)


@dataclass(frozen=True, slots=True)
class StoredTx:
    """An envelope as signing reads it (`store.TX_BY_ID`, `store.TX_FOR_SIGNATURE`): what was built and stored."""

    id: str
    lane: str
    sequence: int
    state: TxState
    tx_hash: str
    unsigned_xdr: str
    fee: int
    max_time: int
    payout_ids: tuple[str, ...]

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> StoredTx:
        return cls(
            id=row["id"],
            lane=row["lane"],
            sequence=int(row["sequence"]),
            state=TxState(row["state"]),
            tx_hash=row["tx_hash"],
            unsigned_xdr=row["unsigned_xdr"],
            fee=int(row["fee"]),
            max_time=int(row["max_time"]),
            payout_ids=tuple(row["payout_ids"]),
        )

    @property
    def awaiting_signature(self) -> bool:
        return self.state in AWAITING_SIGNATURE


@dataclass(frozen=True, slots=True)
class PayoutRow:
    """A payout in the provider's books with its current envelope's hash (`store.PAYOUTS_BY_KEY`)."""

    idempotency_key: str
    payout_id: str
    asset: str
    amount: int
    destination: str
    state: PayoutState
    tx_id: str | None
    tx_hash: str | None
    error_code: str | None
    error_detail: str | None
    attempts: int
    current_hash: str | None
    tx_fee: int | None = None  # the fee of the payout's current envelope, and its payouts in place order
    tx_payout_ids: tuple[str, ...] = ()

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> PayoutRow:
        return cls(
            idempotency_key=row["idempotency_key"],
            payout_id=row["payout_id"],
            asset=row["asset"],
            amount=int(row["amount"]),
            destination=row["destination"],
            state=PayoutState(row["state"]),
            tx_id=row["tx_id"],
            tx_hash=row["tx_hash"],
            error_code=row["error_code"],
            error_detail=row["error_detail"],
            attempts=int(row["attempts"]),
            current_hash=row["current_hash"],
            tx_fee=None if row.get("tx_fee") is None else int(row["tx_fee"]),
            tx_payout_ids=tuple(row.get("tx_payout_ids") or ()),
        )


@dataclass(frozen=True, slots=True)
class QueuedPayout:
    """A payout waiting for an envelope (`store.QUEUED`)."""

    idempotency_key: str
    payout_id: str
    asset: str
    amount: int
    destination: str
    attempts: int
    isolate: bool

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> QueuedPayout:
        return cls(
            idempotency_key=row["idempotency_key"],
            payout_id=row["payout_id"],
            asset=row["asset"],
            amount=int(row["amount"]),
            destination=row["destination"],
            attempts=int(row["attempts"]),
            isolate=bool(row["isolate"]),
        )


@dataclass(frozen=True, slots=True)
class PayoutRef:
    """Whose a payout is, where it stands, and its current envelope (`store.PAYOUT_BY_ID`)."""

    payout_id: str
    provider: str
    state: PayoutState
    tx_id: str | None

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> PayoutRef:
        return cls(
            payout_id=row["payout_id"], provider=row["provider"], state=PayoutState(row["state"]), tx_id=row["tx_id"]
        )


@dataclass(frozen=True, slots=True)
class BookedPayout:
    """A payout as the statement links a line to it (`store.PAYOUTS_BY_ID`)."""

    payout_id: str
    destination: str
    asset: str
    amount: int


@dataclass(frozen=True, slots=True)
class NewEnvelope:
    """An envelope as a lane builds it (`store.INSERT_TX`), checked again `check_in_s` later."""

    id: str
    provider: str
    lane: str
    sequence: int
    kind: TxKind
    payout_ids: tuple[str, ...]
    state: TxState
    unsigned_xdr: str
    sign_request: str  # the SignatureRequested, as JSON
    tx_hash: str
    fee: int
    max_time: int
    sign_requests: int
    check_in_s: float


@dataclass(frozen=True, slots=True)
class Lane:
    """A source account and the last sequence number used or reserved on it (None: read it from the network)."""

    account: str
    sequence: int | None


__all__ = [
    "AWAITING_SIGNATURE",
    "FINAL_TX_STATES",
    "OPEN_TX_STATES",
    "PAYOUT_MACHINE",
    "PAYOUT_TRANSITIONS",
    "TX_MACHINE",
    "TX_TRANSITIONS",
    "BookedPayout",
    "IllegalTransition",
    "Lane",
    "NewEnvelope",
    "PayoutRef",
    "PayoutRow",
    "PayoutState",
    "QueuedPayout",
    "StoredTx",
    "TxKind",
    "TxRow",
    "TxState",
    "can_move",
    "live_until",
    "require_payout_transition",
    "require_transition",
    "sources_of",
    "sql_states",
]
