"""LedgerPosted: rewards tells payouts every transfer it wrote on a rail's external account (`provider_external`),
in the transaction of the transfer (outbox), so reconciliation can compare the ledger with the payouts and the
provider's books (docs/adr/0011-reconciliation.md).

One event per transfer, and only when the ledger wrote the transfer now: a replay the ledger finds already written
emits nothing. Everything in the event is a function of the transfer and the event that caused it (its id derived
from the transfer id, its time the outcome's own), so a poll run again after a rollback stages the same bytes and
payouts' inbox drops any copy by event id. The payouts consumer's poll is a hot path: the events are encoded
straight to outbox rows (`stage_event`, the same CloudEvent `new_event` makes, without building an `Envelope`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from prizeflow_contracts.envelope import Envelope, EventPayload, StagedEvent, event_id_for, stage_event
from prizeflow_contracts.events.payouts import LedgerPosted, LedgerPostingKind
from prizeflow_contracts.money import Money
from prizeflow_contracts.providers import ProviderType
from prizeflow_rewards.domain.ledger import AccountKind, BatchResult, Transfer

# What a service's settings name it (`/prizeflow/<service>`): the default of the use cases that emit these.
REWARDS_SOURCE: Final = "/prizeflow/rewards"
EVENT_KEY: Final = "ledger-posted"


@dataclass(frozen=True, slots=True)
class Posting:
    """A transfer a poll will apply on a rail's external account, and what its `LedgerPosted` says once the ledger
    wrote it: the outcome (`cause`) that moved the money, at the outcome's time."""

    transfer: Transfer
    kind: LedgerPostingKind
    provider: ProviderType
    cause: Envelope[EventPayload]
    posted_at: datetime
    claim_id: str | None = None
    payout_id: str | None = None
    adjustment_id: str | None = None

    def __post_init__(self) -> None:
        if AccountKind.PROVIDER_EXTERNAL not in (self.transfer.debit.kind, self.transfer.credit.kind):
            raise ValueError(f"transfer {self.transfer.business_key} moves no rail's external account")

    def staged(self, source: str) -> StagedEvent:
        """Its `LedgerPosted`, encoded as the outbox row it becomes."""
        transfer_id = str(self.transfer.id)
        return stage_event(
            LedgerPosted(
                transfer_id=transfer_id,
                kind=self.kind,
                provider=self.provider,
                amount=Money(asset=self.transfer.asset, amount=self.transfer.amount),
                claim_id=self.claim_id,
                payout_id=self.payout_id,
                adjustment_id=self.adjustment_id,
                posted_at=self.posted_at,
            ),
            source=source,
            correlation_id=self.cause.correlationid,
            causation_id=self.cause.id,
            subject=transfer_id,
            event_id=ledger_posted_id(self.transfer),
            time=self.posted_at,
        )


def ledger_posted_id(transfer: Transfer) -> uuid.UUID:
    """The event id of a transfer's `LedgerPosted`: `event_id_for("ledger-posted", <transfer id>)`."""
    return event_id_for(EVENT_KEY, transfer.id)


def posted(postings: Iterable[Posting], result: BatchResult, *, source: str) -> list[StagedEvent]:
    """The `LedgerPosted` of those postings whose transfer the ledger wrote now (`result.applied`), once per
    transfer (the first posting of a transfer named twice in a poll), in poll order, encoded for the outbox."""
    if not result.applied:
        return []
    applied = result.applied_ids
    events: list[StagedEvent] = []
    for posting in postings:
        if posting.transfer.id in applied:
            applied.discard(posting.transfer.id)
            events.append(posting.staged(source))
    return events


__all__ = ["EVENT_KEY", "REWARDS_SOURCE", "Posting", "ledger_posted_id", "posted"]
