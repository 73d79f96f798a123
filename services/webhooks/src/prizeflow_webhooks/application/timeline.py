"""Webhooks' part of a flow's timeline: each provider callback stored for it (once, however often delivered), what
it was published as, and its re-publications. Never its body: the kind, the outcome and the codes only."""

from __future__ import annotations

from dataclasses import dataclass

from prizeflow_runtime.timeline import MAX_ENTRIES_PER_SOURCE, EntryKind, TimelineEntry, short_event_type
from prizeflow_webhooks.application.ports import DeliveryTimelineQueries, DeliveryTrail


@dataclass
class WebhooksTimeline:
    """A `TimelineSource`: the deliveries of one correlation id."""

    queries: DeliveryTimelineQueries

    async def entries(self, correlation_id: str) -> list[TimelineEntry]:
        found = await self.queries.deliveries_of(correlation_id, limit=MAX_ENTRIES_PER_SOURCE // 2)
        return [e for d in found for e in delivery_entries(d)]


def delivery_entries(d: DeliveryTrail) -> list[TimelineEntry]:
    if d.outcome == "published":
        what = f"published as {short_event_type(d.event_type)}"
    else:
        what = f"ignored ({d.ignored_reason})"
    confirmed = ", confirmed with the provider" if d.confirmed else ""
    out = [
        TimelineEntry(
            d.received_at,
            EntryKind.DELIVERY,
            d.kind,
            d.subject,
            f"delivery {d.id}: {d.provider} {d.kind} (event {d.provider_event_id}) {what}{confirmed}",
        )
    ]
    if d.last_republished_at is not None:
        out.append(
            TimelineEntry(
                d.last_republished_at,
                EntryKind.DELIVERY,
                "delivery.republish",
                d.subject,
                f"delivery {d.id}: re-published ({d.republished} in all)",
            )
        )
    return out


__all__ = ["WebhooksTimeline", "delivery_entries"]
