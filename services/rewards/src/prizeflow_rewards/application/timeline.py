"""Rewards' part of a flow's timeline: the money it moved (ledger transfers, allocations among them), the claims and
their holds, the rounds held for their pool, the top-ups. Summaries show kinds, states, codes and amounts; a
player's own accounts by their kind only, never a destination."""

from __future__ import annotations

from dataclasses import dataclass

from prizeflow_rewards.application.books import Books
from prizeflow_rewards.application.ports import ClaimTrail, TransferRecord
from prizeflow_rewards.domain.corrections import account_label
from prizeflow_rewards.domain.ledger import TransferFlags
from prizeflow_rewards.domain.topups import TopUp, TopUpStatus
from prizeflow_runtime.timeline import MAX_ENTRIES_PER_SOURCE, EntryKind, TimelineEntry
from prizeflow_runtime.uow import UnitOfWork

_EACH = MAX_ENTRIES_PER_SOURCE // 4


@dataclass
class RewardsTimeline:
    """A `TimelineSource`: what rewards recorded of one correlation id, read in one transaction."""

    uow: UnitOfWork[Books]

    async def entries(self, correlation_id: str) -> list[TimelineEntry]:
        async with self.uow() as books:
            transfers = await books.ledger_book.transfers(
                correlation_id=correlation_id, account=None, before_seq=None, limit=_EACH
            )
            claims = await books.flows.claims_of(correlation_id, limit=_EACH)
            held = await books.flows.held_rounds_of(correlation_id, limit=_EACH)
            top_ups = await books.flows.top_ups_of(correlation_id, limit=_EACH)
        out = [ledger_entry(t) for t in transfers]
        out += [e for c in claims for e in claim_entries(c)]
        for h in held:
            out.append(
                TimelineEntry(
                    h.held_at,
                    EntryKind.STATE,
                    "allocation.held",
                    h.round_id,
                    f"round {h.round_id}: {h.total} {h.asset} of allocations held ({h.reason}), "
                    f"campaign {h.campaign_id}",
                )
            )
            if h.released_at is not None:
                out.append(
                    TimelineEntry(
                        h.released_at,
                        EntryKind.STATE,
                        "allocation.released",
                        h.round_id,
                        f"round {h.round_id}: held allocations released from campaign {h.campaign_id}",
                    )
                )
        out += [e for t in top_ups for e in top_up_entries(t)]
        return out[:MAX_ENTRIES_PER_SOURCE]


def ledger_entry(t: TransferRecord) -> TimelineEntry:
    flags = TransferFlags(t.flags)
    how = (
        "reserved"
        if flags & TransferFlags.PENDING
        else "posted (reservation)"
        if flags & TransferFlags.POST_PENDING
        else "voided (reservation)"
        if flags & TransferFlags.VOID_PENDING
        else "moved"
    )
    return TimelineEntry(
        t.created_at,
        EntryKind.LEDGER,
        t.kind,
        str(t.id),
        f"{t.kind}: {t.amount} {t.asset} {how}, {account_label(t.debit)} → {account_label(t.credit)}",
    )


def claim_entries(c: ClaimTrail) -> list[TimelineEntry]:
    """Requested (held or approved), then a reviewer's decision of a held claim, then its payout's outcome."""
    first = "held" if c.hold_code else "approved"
    why = f" ({c.hold_code})" if c.hold_code else ""
    out = [
        TimelineEntry(
            c.created_at,
            EntryKind.STATE,
            f"claim.{first}",
            c.claim_id,
            f"claim {c.claim_id}: {c.amount} {c.asset} requested, {first}{why}",
        )
    ]
    if c.hold_code and c.decided_at is not None:
        decided = "rejected" if c.status == "rejected" else "approved"
        code = f" ({c.rejection_code})" if c.rejection_code else ""
        out.append(
            TimelineEntry(
                c.decided_at,
                EntryKind.STATE,
                f"claim.{decided}",
                c.claim_id,
                f"claim {c.claim_id}: hold reviewed, {decided}{code}",
            )
        )
    if c.settled_at is not None:
        payout = f" by payout {c.payout_id}" if c.payout_id else ""
        out.append(
            TimelineEntry(
                c.settled_at,
                EntryKind.STATE,
                f"claim.{c.status}",
                c.claim_id,
                f"claim {c.claim_id}: {c.status}{payout}",
            )
        )
    return out


def top_up_entries(t: TopUp) -> list[TimelineEntry]:
    out = [
        TimelineEntry(
            t.created_at,
            EntryKind.STATE,
            "top_up.created",
            t.id,
            f"top-up {t.id}: {t.amount} {t.asset} checkout opened at {t.provider}",
        )
    ]
    if t.status is TopUpStatus.CREDITED and t.credited_at is not None:
        out.append(
            TimelineEntry(
                t.credited_at, EntryKind.STATE, "top_up.credited", t.id, f"top-up {t.id}: credited to the wallet"
            )
        )
    return out


__all__ = ["RewardsTimeline", "claim_entries", "ledger_entry", "top_up_entries"]
