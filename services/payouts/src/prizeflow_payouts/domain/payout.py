"""The payout entity, its history and attempt log, and one guarded change to it. No I/O: the repository
adapter maps rows to these and back."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

from prizeflow_contracts.envelope import OutgoingEvent
from prizeflow_contracts.events.payouts import ApprovalPolicy
from prizeflow_contracts.money import Money
from prizeflow_contracts.providers import (
    DestinationType,
    PayoutDestination,
    PayoutInstruction,
    PayoutLookup,
    ProviderType,
)
from prizeflow_payouts.domain.state import PayoutState


@dataclass(frozen=True, slots=True)
class Payout:
    """A payout as stored: what it pays, to whom, through which provider, and where it stands."""

    id: str
    payout_request_id: str
    idempotency_key: str
    request_hash: str
    claim_id: str
    player_id: str
    requested_by: str
    asset: str
    amount: int
    destination_type: str
    destination_address: str
    destination_memo: str | None
    provider_type: str
    provider_name: str
    state: PayoutState
    approval_policy: ApprovalPolicy
    correlation_id: str
    cause_event_id: str | None
    attempts: int
    max_attempts: int
    sync_first: bool
    sync_polls: int
    provider_ref: str | None
    tx_hash: str | None
    last_error_code: str | None
    created_at: datetime
    submitted_at: datetime | None = None
    finished_at: datetime | None = None  # set when it stopped for good (a final failure, cancelled, ...)
    lease_token: uuid.UUID | None = None
    previous_state: PayoutState | None = None  # set by claims: the state before this claim
    # The compliance gate's hold (migration 0021): kyc_required | screening_hit | policy, while pending_approval;
    # kept once released (what held it). `hold_detail` is staff-only; `held_at` starts the hold (approvals count
    # from then on). The policy version and findings it showed (migration 0024): what people who release it decide.
    hold_code: str | None = None
    hold_detail: str | None = None
    held_at: datetime | None = None
    hold_policy_version: int | None = None
    hold_findings: tuple[str, ...] | None = None
    # The gate's allow at request time, stamped with what it was made with (migration 0028): the send stage lets it
    # stand while the policy version, the lists' versions and the player's facts are the same (`PayoutGate.standing`).
    gate_stamp: str | None = None
    # Who holds its claim while `submitting`, and until when (set by a claim, or at creation when the request sends
    # it straight to its worker: `CreatePayouts` with direct sends).
    lease_owner: str | None = None
    lease_until: datetime | None = None

    @property
    def failed_for_good(self) -> bool:
        """A final failure: `PayoutFailed(final=True)` went out and rewards voided the claim's reservation (the
        money is back in the player's wallet), so no attempt may follow. A retryable failure waiting for its
        backoff has no `finished_at`."""
        return self.state is PayoutState.FAILED and self.finished_at is not None

    @property
    def money(self) -> Money:
        return Money(asset=self.asset, amount=self.amount)

    @property
    def provider(self) -> ProviderType:
        return ProviderType(self.provider_type)

    @property
    def destination(self) -> PayoutDestination:
        return PayoutDestination(
            type=DestinationType(self.destination_type), address=self.destination_address, memo=self.destination_memo
        )

    def instruction(self) -> PayoutInstruction:
        return PayoutInstruction(
            payout_id=self.id,
            idempotency_key=self.idempotency_key,
            amount=self.money,
            destination=self.destination,
            metadata={"claim_id": self.claim_id, "correlation_id": self.correlation_id},
        )

    def lookup(self) -> PayoutLookup:
        return PayoutLookup(
            payout_id=self.id,
            idempotency_key=self.idempotency_key,
            provider_ref=self.provider_ref,
            amount=self.money,
            destination=self.destination,
        )


@dataclass(frozen=True, slots=True)
class RequestRefusal:
    """A payout request refused for good (one per claim: a claim has a payout or a refusal, never both)."""

    claim_id: str
    payout_request_id: str
    idempotency_key: str
    request_hash: str
    code: str
    detail: str
    correlation_id: str
    refused_at: datetime


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    from_state: PayoutState | None
    to_state: PayoutState
    actor: str
    reason: str | None = None
    error_code: str | None = None
    attempt: int | None = None


@dataclass(frozen=True, slots=True)
class AttemptLog:
    attempt: int
    kind: str  # create | sync | cancel
    worker: str
    started_at: datetime
    finished_at: datetime
    outcome: str
    error_code: str | None = None
    detail: str | None = None


@dataclass
class Change:
    """Move one payout from `expected` to `to`, only if it is still there (and still ours, when `token` is set).

    Nullable columns: None keeps the stored value, except the `clear_*`-style explicit ones documented inline.
    """

    record: Payout
    expected: PayoutState
    to: PayoutState
    token: uuid.UUID | None = None
    provider_ref: str | None = None
    tx_hash: str | None = None
    fee: Money | None = None
    error_code: str | None = None
    error_detail: str | None = None
    next_attempt_at: datetime | None = None  # written as given (None clears)
    next_sync_at: datetime | None = None  # written as given (None clears)
    sync_polls: int = 0  # written as given
    sync_first: bool | None = None
    available_at: datetime | None = None
    submitted_at: datetime | None = None
    paid_at: datetime | None = None
    finished_at: datetime | None = None  # written as given
    max_attempts: int | None = None
    # True: the provider may hold it and could not say (its "unknown since" starts, or goes on); False: an answer or
    # a known error ended the doubt; None: as it was. A settled payout's doubt is cleared whatever this says.
    outcome_unknown: bool | None = None
    history: list[HistoryEntry] = field(default_factory=list)
    events: list[OutgoingEvent] = field(default_factory=list)
    attempt_log: AttemptLog | None = None


__all__ = ["AttemptLog", "Change", "HistoryEntry", "Payout", "RequestRefusal"]
