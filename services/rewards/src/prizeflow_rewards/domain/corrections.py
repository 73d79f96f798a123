"""Ledger corrections (pure): a compensating transfer one person proposes and another approves.

The ledger is append-only: a mistake is never edited away, it is compensated by a new transfer (kind
`correction`) between two existing accounts, in the ledger's normal rules (no wallet, pool or clearing below zero;
both accounts in the correction's asset). Two people: whoever approves is not whoever proposed (the database
refuses it too). A correction is applied at most once: its transfer id derives from the correction's id.

Accounts are named `<kind>:<owner>` in the correction's asset, as `domain/accounts.py` builds them:
`treasury:platform`, `campaign_pool:<campaign>`, `player_wallet:<player>`, `payout_clearing:platform`,
`provider_external:<provider>`, `entry_escrow:<round>`, `platform_revenue:<account>`, ...
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from prizeflow_contracts.transitions import Transitions
from prizeflow_rewards.domain.ledger import AccountKind, AccountRef, Transfer, TransferKind, transfer_id


class CorrectionStatus(StrEnum):
    PROPOSED = "proposed"
    APPLIED = "applied"
    REJECTED = "rejected"


# Applied and rejected are final: a correction that was wrong is compensated by another one.
TRANSITIONS: Final = Transitions(
    "ledger correction",
    {
        CorrectionStatus.PROPOSED: frozenset({CorrectionStatus.APPLIED, CorrectionStatus.REJECTED}),
        CorrectionStatus.APPLIED: frozenset(),
        CorrectionStatus.REJECTED: frozenset(),
    },
    initial=frozenset({CorrectionStatus.PROPOSED}),
)

# Whose balance is a person's: their owner stays out of what operators' views summarize.
PERSONAL_KINDS: Final = frozenset({AccountKind.PLAYER_WALLET, AccountKind.PLAYER_RECEIVABLE})


class AccountNameError(ValueError):
    """Not an account name (`<kind>:<owner>`)."""


def parse_account(name: str, asset: str) -> AccountRef:
    """`<kind>:<owner>` in `asset` (the owner may itself contain `:`)."""
    kind, sep, owner = name.partition(":")
    if not sep or not owner:
        raise AccountNameError(f"{name!r} is not an account name: <kind>:<owner>, e.g. treasury:platform")
    try:
        return AccountRef(AccountKind(kind), owner, asset)
    except ValueError as err:
        kinds = ", ".join(k.value for k in AccountKind)
        raise AccountNameError(f"{kind!r} is not an account kind ({kinds})") from err


def account_name(ref: AccountRef) -> str:
    return f"{ref.kind.value}:{ref.owner}"


def account_label(ref: AccountRef) -> str:
    """An account as a summary may show it: a player's own accounts by their kind only."""
    return ref.kind.value if ref.kind in PERSONAL_KINDS else account_name(ref)


def correction_transfer_id(correction_id: str) -> uuid.UUID:
    return transfer_id(TransferKind.CORRECTION.value, correction_id)


@dataclass(frozen=True, slots=True)
class Correction:
    id: str
    reference: str
    debit: AccountRef
    credit: AccountRef
    amount: int
    reason: str
    corrects_transfer_id: uuid.UUID | None
    correlation_id: str
    proposed_by: str
    proposed_at: datetime
    status: CorrectionStatus = CorrectionStatus.PROPOSED
    approved_by: str | None = None
    approved_at: datetime | None = None
    rejected_by: str | None = None
    rejected_at: datetime | None = None
    decision_reason: str | None = None
    transfer_id: uuid.UUID | None = None

    def __post_init__(self) -> None:
        if self.amount <= 0:
            raise ValueError(f"correction {self.id}: amount must be positive")
        if self.debit.asset != self.credit.asset:
            raise ValueError(f"correction {self.id}: accounts of different assets")

    @property
    def asset(self) -> str:
        return self.debit.asset

    def transfer(self) -> Transfer:
        """The one compensating transfer this correction posts (same id however often it is tried)."""
        return Transfer.of(
            self.debit,
            self.credit,
            self.amount,
            TransferKind.CORRECTION,
            self.id,
            correlation_id=self.correlation_id,
        )

    def same_proposal(self, other: Correction) -> bool:
        """What a second proposal with the same reference must repeat to be the same correction."""
        return (self.debit, self.credit, self.amount, self.reason, self.corrects_transfer_id) == (
            other.debit,
            other.credit,
            other.amount,
            other.reason,
            other.corrects_transfer_id,
        )

    def personal_owners(self) -> frozenset[str]:
        """Whose own accounts (a player's wallet or receivable) this correction moves money of."""
        return frozenset(r.owner for r in (self.debit, self.credit) if r.kind in PERSONAL_KINDS)

    def refusal_to_decide(self, person: str, target: CorrectionStatus) -> tuple[str, str] | None:
        """(code, detail) if `person` may not take this correction to `target`, else None. Approving takes a
        second person, who owns no player account of it (a player id and a staff subject are the same kind of
        subject: as for payouts, nobody decides on money that pays them); rejecting may be anyone's (the proposer
        withdrawing it too)."""
        if target is CorrectionStatus.APPLIED and person == self.proposed_by:
            return "same_person", f"correction {self.id} was proposed by {person}: another person approves it"
        if target is CorrectionStatus.APPLIED and person in self.personal_owners():
            return "own_account", f"correction {self.id} moves money of {person}'s own account: another approves it"
        if not TRANSITIONS.allows(self.status, target):
            return "not_proposed", f"correction {self.id} is {self.status.value}"
        return None

    def view(self) -> dict[str, Any]:
        return {
            "correction_id": self.id,
            "reference": self.reference,
            "status": self.status.value,
            "debit_account": account_name(self.debit),
            "credit_account": account_name(self.credit),
            "asset": self.asset,
            "amount": self.amount,
            "reason": self.reason,
            "corrects_transfer_id": str(self.corrects_transfer_id) if self.corrects_transfer_id else None,
            "correlation_id": self.correlation_id,
            "proposed_by": self.proposed_by,
            "proposed_at": self.proposed_at.isoformat(),
            "approved_by": self.approved_by,
            "approved_at": self.approved_at.isoformat() if self.approved_at else None,
            "rejected_by": self.rejected_by,
            "rejected_at": self.rejected_at.isoformat() if self.rejected_at else None,
            "decision_reason": self.decision_reason,
            "transfer_id": str(self.transfer_id) if self.transfer_id else None,
        }


__all__ = [
    "PERSONAL_KINDS",
    "TRANSITIONS",
    "AccountNameError",
    "Correction",
    "CorrectionStatus",
    "account_label",
    "account_name",
    "correction_transfer_id",
    "parse_account",
]
