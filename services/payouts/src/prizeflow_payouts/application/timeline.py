"""Payouts' part of a flow's timeline: each payout's state history, provider attempts, approvals and the provider's
reports, and the requests refused before a payout existed. Summaries say states, stable codes, amounts, the
provider and the destination's type; never its address or memo, an admin's free text or a provider's own text."""

from __future__ import annotations

import re
from dataclasses import dataclass

from prizeflow_payouts.application.ports import PayoutTimelineQueries, PayoutTrail
from prizeflow_runtime.timeline import MAX_ENTRIES_PER_SOURCE, EntryKind, TimelineEntry

_CODE = re.compile(r"^[a-z][a-z0-9_.:]{0,63}$")
_PAYOUTS = 50


def _code(value: object) -> str | None:
    return value if isinstance(value, str) and _CODE.match(value) else None


@dataclass
class PayoutsTimeline:
    """A `TimelineSource`: what payouts recorded of one correlation id."""

    queries: PayoutTimelineQueries

    async def entries(self, correlation_id: str) -> list[TimelineEntry]:
        out = [e for p in await self.queries.payouts_of(correlation_id, limit=_PAYOUTS) for e in payout_entries(p)]
        out += [
            TimelineEntry(
                r.refused_at,
                EntryKind.EVENT,
                "PayoutRequestRefused",
                r.claim_id,
                f"payout request of claim {r.claim_id} refused ({r.code})",
            )
            for r in await self.queries.refusals_of(correlation_id, limit=_PAYOUTS)
        ]
        return out[:MAX_ENTRIES_PER_SOURCE]


def payout_entries(p: PayoutTrail) -> list[TimelineEntry]:
    pid = p.payout_id
    out = [
        TimelineEntry(
            p.created_at,
            EntryKind.STATE,
            "payout.requested",
            pid,
            f"payout {pid}: {p.amount} {p.asset} to a {p.destination_type} via {p.provider}, claim {p.claim_id}",
        )
    ]
    for h in p.history:
        parts = [f"payout {pid}: {h['from_state'] or 'new'} → {h['to_state']}"]
        if code := _code(h["error_code"]):
            parts.append(f"error {code}")
        if (why := _code(h["reason"])) is not None:
            parts.append(why)
        if h["attempt"] is not None:
            parts.append(f"attempt {h['attempt']}")
        out.append(TimelineEntry(h["at"], EntryKind.STATE, f"payout.{h['to_state']}", pid, ", ".join(parts)))
    for a in p.attempts:
        code = _code(a["error_code"])
        out.append(
            TimelineEntry(
                a["finished_at"],
                EntryKind.EVENT,
                f"attempt.{a['kind']}",
                pid,
                f"payout {pid}: {a['kind']} attempt {a['attempt']} at {p.provider}: {a['outcome']}"
                + (f" ({code})" if code else ""),
            )
        )
    out.extend(
        TimelineEntry(
            ap["decided_at"], EntryKind.EVENT, "payout.approval", pid, f"payout {pid}: approved by {ap['approver_id']}"
        )
        for ap in p.approvals
    )
    for ev in p.provider_events:
        status = _code(ev["status"]) or "unknown"
        out.append(
            TimelineEntry(
                ev["received_at"],
                EntryKind.EVENT,
                f"provider.{status}",
                pid,
                f"payout {pid}: {ev['provider']} reported {status} ({ev['outcome']})",
            )
        )
    return out


__all__ = ["PayoutsTimeline", "payout_entries"]
