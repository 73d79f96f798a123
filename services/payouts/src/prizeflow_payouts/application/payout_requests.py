"""A payout request as `CreatePayouts` reads it, and what becomes of it: the command (and its body's hash, which
answers a replay), a conflict, a refusal, the id a request's payout gets (one per idempotency key, whoever computes
it), and the payout and creation change a fresh request becomes. Pure: no I/O."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from prizeflow_contracts.envelope import event_id_for
from prizeflow_contracts.errors import PayoutError
from prizeflow_contracts.events.payouts import ApprovalPolicy, PayoutApproved, PayoutCreated
from prizeflow_contracts.money import Money
from prizeflow_contracts.providers import PayoutDestination, ProviderType
from prizeflow_payouts.application.events import payout_event
from prizeflow_payouts.domain.gate import GateDecision
from prizeflow_payouts.domain.payout import Change, HistoryEntry, Payout
from prizeflow_payouts.domain.state import PayoutState
from prizeflow_runtime.errors import ErrorKind, UseCaseError


@dataclass(frozen=True, slots=True)
class CreatePayoutCommand:
    payout_request_id: str
    claim_id: str
    player_id: str
    amount: Money
    destination: PayoutDestination
    idempotency_key: str
    requested_by: str
    provider: ProviderType | None
    correlation_id: str
    cause_event_id: str | None = None

    def body_hash(self) -> str:
        """What makes two requests "the same": every business field, not the envelope around them."""
        doc = {
            "payout_request_id": self.payout_request_id,
            "claim_id": self.claim_id,
            "player_id": self.player_id,
            "amount": self.amount.model_dump(mode="json"),
            "destination": self.destination.model_dump(mode="json"),
            "idempotency_key": self.idempotency_key,
            "requested_by": self.requested_by,
            "provider": self.provider.value if self.provider else None,
        }
        return hashlib.sha256(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


class PayoutConflictError(UseCaseError):
    """The idempotency key, request id or claim already names a payout (or refusal) with a different body."""

    def __init__(self, key: str, existing_id: str, detail: str) -> None:
        super().__init__(ErrorKind.CONFLICT, "conflicting_event", detail)
        self.key = key
        self.existing_id = existing_id


@dataclass(frozen=True, slots=True)
class Created:
    payout_id: str | None  # None: the request was refused (see `refused`)
    created: bool  # False: the request named an existing payout or refusal (same body), which is returned
    refused: PayoutError | None = None


@dataclass(frozen=True, slots=True)
class Refusal:
    """A request payouts will never pay, and why (stored; announced once as PayoutRequestRefused)."""

    command: CreatePayoutCommand
    error: PayoutError
    request_hash: str | None = None  # None: the command's body hash
    gate: GateDecision | None = None  # the compliance gate refused it (recorded with the refusal)

    @property
    def body_hash(self) -> str:
        return self.request_hash or self.command.body_hash()


def payout_id_for(idempotency_key: str) -> str:
    """Deterministic: racing creators of one key compute the same id, and the same id every retry."""
    return "po-" + event_id_for("payout-id", idempotency_key).hex


def refusal_event_id(claim_id: str) -> Any:
    """One refusal per claim, whoever stages it (a request, or a request that could not be read)."""
    return event_id_for("payout-request-refused", claim_id)


def new_correlation_id(prefix: str = "admin") -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def new_payout(
    cmd: CreatePayoutCommand,
    body_hash: str,
    *,
    provider_name: str,
    provider_type: ProviderType,
    policy: ApprovalPolicy,
    state: PayoutState,
    max_attempts: int,
    now: datetime,
) -> Payout:
    """The payout a fresh request becomes, not stored yet."""
    return Payout(
        id=payout_id_for(cmd.idempotency_key),
        payout_request_id=cmd.payout_request_id,
        idempotency_key=cmd.idempotency_key,
        request_hash=body_hash,
        claim_id=cmd.claim_id,
        player_id=cmd.player_id,
        requested_by=cmd.requested_by,
        asset=cmd.amount.asset,
        amount=cmd.amount.amount,
        destination_type=cmd.destination.type.value,
        destination_address=cmd.destination.address,
        destination_memo=cmd.destination.memo,
        provider_type=provider_type.value,
        provider_name=provider_name,
        state=state,
        approval_policy=policy,
        correlation_id=cmd.correlation_id,
        cause_event_id=cmd.cause_event_id,
        attempts=0,
        max_attempts=max_attempts,
        sync_first=False,
        sync_polls=0,
        provider_ref=None,
        tx_hash=None,
        last_error_code=None,
        created_at=now,
    )


def created_change(rec: Payout, *, source: str, now: datetime) -> Change:
    """A stored payout's creation: its history and its PayoutCreated (and PayoutApproved when auto-approved)."""
    sent = rec.state is PayoutState.SUBMITTING  # approved, and claimed for this process's worker at once
    history = [
        HistoryEntry(
            PayoutState.REQUESTED,
            PayoutState.APPROVED if sent else rec.state,
            "system",
            reason=f"policy {rec.approval_policy}" + (f"; compliance hold {rec.hold_code}" if rec.hold_code else ""),
        )
    ]
    if sent:
        assert rec.lease_owner is not None
        history.append(
            HistoryEntry(PayoutState.APPROVED, PayoutState.SUBMITTING, rec.lease_owner, attempt=rec.attempts)
        )
    change = Change(record=rec, expected=PayoutState.REQUESTED, to=rec.state, history=history)
    change.events.append(
        payout_event(
            rec,
            PayoutCreated,
            source=source,
            time=now,  # the creation's clock: one object for the batch's events (formatted once)
            destination=rec.destination,
            approval_policy=rec.approval_policy,
            created_at=now,
        )
    )
    if rec.state in (PayoutState.APPROVED, PayoutState.SUBMITTING):
        change.events.append(
            payout_event(
                rec,
                PayoutApproved,
                source=source,
                time=now,
                approval_policy=rec.approval_policy,
                approved_by=[],
                approved_at=now,
            )
        )
    return change


__all__ = [
    "CreatePayoutCommand",
    "Created",
    "PayoutConflictError",
    "Refusal",
    "created_change",
    "new_correlation_id",
    "new_payout",
    "payout_id_for",
    "refusal_event_id",
]
