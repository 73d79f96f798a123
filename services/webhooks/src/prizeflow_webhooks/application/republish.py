"""`RepublishDelivery`: an operator sends a stored delivery's event out again (a consumer lost it, a topic was
restored), audited. The event gets a NEW envelope id; its payload is the same, so consumers, which dedup on
(provider, provider event id), cannot apply it twice."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prizeflow_contracts.envelope import decode, stage_event
from prizeflow_runtime.audit import admin_action
from prizeflow_runtime.errors import ErrorKind, UseCaseError
from prizeflow_runtime.uow import UnitOfWork
from prizeflow_webhooks.application.books import Books
from prizeflow_webhooks.application.metrics import WebhooksMetrics


@dataclass(frozen=True, slots=True)
class Actor:
    user_id: str
    roles: tuple[str, ...]


@dataclass
class RepublishDelivery:
    uow: UnitOfWork[Books]
    source: str
    service: str
    metrics: WebhooksMetrics | None = None
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    async def __call__(self, delivery_id: int, *, reason: str, actor: Actor) -> dict[str, Any]:
        action_id = f"act-{uuid.uuid4().hex}"
        now = self.clock()
        async with self.uow() as books:
            found = await books.deliveries.lock(delivery_id)
            if found is None:
                raise UseCaseError(ErrorKind.NOT_FOUND, "delivery_not_found", f"delivery {delivery_id} not found")
            if found.outcome != "published" or found.event_json is None:
                raise UseCaseError(
                    ErrorKind.CONFLICT,
                    "nothing_to_publish",
                    f"delivery {delivery_id} was {found.outcome}: it has no event to publish",
                )
            original = decode(found.event_json)
            staged = stage_event(
                original.data,
                source=self.source,
                correlation_id=original.correlationid,
                causation_id=action_id,
                subject=original.subject,
                time=now,
            )
            audit = admin_action(
                actor_user_id=actor.user_id,
                actor_roles=actor.roles,
                action="delivery.republish",
                target_type="webhook_delivery",
                target_id=str(delivery_id),
                reason=reason,
                before={"republished": found.republished},
                after={"republished": found.republished + 1, "event_id": staged.id},
                service=self.service,
                source=self.source,
                correlation_id=original.correlationid,
                occurred_at=now,
                action_id=action_id,
                causation_id=action_id,
            )
            await books.deliveries.mark_republished(delivery_id, at=now)
            await books.outbox.stage([staged, audit.staged()])
        if self.metrics is not None:
            self.metrics.republished.labels(found.provider).inc()
        return {
            "delivery_id": delivery_id,
            "provider": found.provider,
            "provider_event_id": found.provider_event_id,
            "event_id": str(staged.id),
            "original_event_id": str(original.id),
            "republished": found.republished + 1,
        }


__all__ = ["Actor", "RepublishDelivery"]
