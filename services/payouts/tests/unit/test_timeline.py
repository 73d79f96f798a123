"""Payouts' timeline entries: states, codes, attempts, approvals and provider reports; never a destination's
address, an operator's free text or a provider's own text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prizeflow_payouts.application.ports import PayoutTrail, RefusalTrail
from prizeflow_payouts.application.timeline import PayoutsTimeline
from prizeflow_runtime.timeline import EntryKind

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def at(s: int) -> datetime:
    return T0 + timedelta(seconds=s)


TRAIL = PayoutTrail(
    payout_id="po-1",
    claim_id="cl-1",
    asset="USDC",
    amount=1_500,
    provider="stellar",
    destination_type="stellar_account",
    created_at=at(0),
    history=[
        {
            "from_state": "requested",
            "to_state": "approved",
            "at": at(1),
            "actor": "auto",
            "reason": None,
            "error_code": None,
            "attempt": None,
        },
        {
            "from_state": "submitted",
            "to_state": "failed",
            "at": at(5),
            "actor": "w-1",
            "reason": "the customer John at GABC... asked",
            "error_code": "destination_unfunded",
            "attempt": 1,
        },
    ],
    attempts=[
        {"attempt": 1, "kind": "create", "finished_at": at(3), "outcome": "failed", "error_code": "op_no_destination"}
    ],
    approvals=[{"approver_id": "ap-1", "decided_at": at(1)}],
    provider_events=[{"provider": "stellar", "status": "failed", "outcome": "applied", "received_at": at(4)}],
)


class Payouts:
    async def payouts_of(self, correlation_id: str, *, limit: int) -> list[PayoutTrail]:
        return [TRAIL] if correlation_id == "flow-1" else []

    async def refusals_of(self, correlation_id: str, *, limit: int) -> list[RefusalTrail]:
        return [RefusalTrail("cl-2", "no_route", at(9))] if correlation_id == "flow-1" else []


async def test_a_payouts_milestones_without_its_destination_or_free_text() -> None:
    entries = await PayoutsTimeline(Payouts()).entries("flow-1")
    assert [(e.kind, e.type) for e in entries] == [
        (EntryKind.STATE, "payout.requested"),
        (EntryKind.STATE, "payout.approved"),
        (EntryKind.STATE, "payout.failed"),
        (EntryKind.EVENT, "attempt.create"),
        (EntryKind.EVENT, "payout.approval"),
        (EntryKind.EVENT, "provider.failed"),
        (EntryKind.EVENT, "PayoutRequestRefused"),
    ]
    assert entries[0].summary == "payout po-1: 1500 USDC to a stellar_account via stellar, claim cl-1"
    assert entries[2].summary == "payout po-1: submitted → failed, error destination_unfunded, attempt 1"
    assert entries[3].summary == "payout po-1: create attempt 1 at stellar: failed (op_no_destination)"
    assert all("John" not in e.summary and "GABC" not in e.summary for e in entries)
    assert await PayoutsTimeline(Payouts()).entries("other") == []
