"""Building the payout lifecycle events from a stored payout (deterministic ids: a re-emission dedups)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, TypeVar

from prizeflow_contracts.envelope import EventDraft, draft_event, event_id_for
from prizeflow_contracts.events.payouts import _PayoutEvent
from prizeflow_payouts.domain.payout import Payout

E = TypeVar("E", bound=_PayoutEvent)


def payout_event(
    record: Payout,
    cls: type[E],
    *,
    source: str,
    key: tuple[object, ...] = (),
    causation_id: str | uuid.UUID | None = None,
    time: datetime | None = None,
    **fields: Any,
) -> EventDraft[E]:
    """An event about `record` on the payout's own flow: its correlation id (so one partition keeps the order). A
    draft (`EventDraft`): checked and formatted when the outbox stages it, never validated as an `Envelope` first.

    `time`: when it happened (the step's own clock reading; one object for a batch's events, which the outbox then
    formats once); None: now."""
    payload = cls(
        payout_id=record.id,
        payout_request_id=record.payout_request_id,
        claim_id=record.claim_id,
        player_id=record.player_id,
        amount=record.money,
        provider=record.provider,
        idempotency_key=record.idempotency_key,
        **fields,
    )
    return draft_event(
        payload,
        source=source,
        correlation_id=record.correlation_id,
        causation_id=causation_id if causation_id is not None else record.cause_event_id,
        subject=record.id,
        event_id=event_id_for("payout", record.id, cls.EVENT_NAME, *key),
        time=time,
    )


__all__ = ["payout_event"]
