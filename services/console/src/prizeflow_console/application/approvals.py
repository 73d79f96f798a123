"""The approvals queue and one payout under review: payouts waiting for approvers, each with its approvals so far
and its claim's risk signals, read from payouts and rewards concurrently. A lookup that fails is shown on its row;
it never hides the payout nor the rest of the queue."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar
from urllib.parse import quote

from prizeflow_console.application.ports import ApiProblem, PlatformApi
from prizeflow_console.domain.holds import PENDING_APPROVAL, GateHold, gate_hold
from prizeflow_console.domain.review import Signal, required_approvals, risk_signals

T = TypeVar("T")
QUEUE_LIMIT: Final = 100
# Lookups in flight at once for one page: enough to be quick, few enough not to flood the services.
CONCURRENT_LOOKUPS: Final = 8


@dataclass(frozen=True, slots=True)
class QueueFilter:
    provider: str | None = None
    asset: str | None = None
    player_id: str | None = None

    def query(self) -> dict[str, str | int | bool | None]:
        return {"state": PENDING_APPROVAL, "provider": self.provider, "asset": self.asset,
                "player_id": self.player_id, "limit": QUEUE_LIMIT}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Review:
    """A payout as a reviewer sees it: its facts, who approved it so far, its claim (when readable), its signals and
    the gate's hold."""

    payout: dict[str, Any]
    approved_by: list[str] | None  # None: the approvals could not be read
    required: int | None
    claim: dict[str, Any] | None
    signals: list[Signal]
    hold: GateHold | None  # why the compliance gate holds it (None: it does not)
    problems: list[ApiProblem] = field(default_factory=list)

    @property
    def payout_id(self) -> str:
        return str(self.payout.get("id", ""))

    @property
    def pending(self) -> bool:
        return self.payout.get("state") == PENDING_APPROVAL


@dataclass(frozen=True, slots=True)
class Queue:
    reviews: list[Review]
    problem: ApiProblem | None  # the list itself could not be read
    claims_shown: bool
    full: bool  # as many payouts as one page holds: there may be more


async def _attempt(work: Awaitable[T]) -> T | ApiProblem:
    try:
        return await work
    except ApiProblem as problem:
        return problem


def _review(
    payout: Mapping[str, Any], detail: dict[str, Any] | ApiProblem | None, claim: dict[str, Any] | ApiProblem | None
) -> Review:
    problems = [p for p in (detail, claim) if isinstance(p, ApiProblem)]
    facts = detail if isinstance(detail, dict) else dict(payout)
    approvals = facts.get("approvals")
    approved_by = [str(a.get("approver_id")) for a in approvals] if isinstance(approvals, list) else None
    readable_claim = claim if isinstance(claim, dict) else None
    return Review(
        payout=facts,
        approved_by=approved_by,
        required=required_approvals(facts.get("approval_policy")),
        claim=readable_claim,
        signals=risk_signals(facts, readable_claim),
        hold=gate_hold(facts),
        problems=problems,
    )


@dataclass(frozen=True)
class ApprovalQueue:
    """Payouts waiting for approval, newest first, each with its approvals (`GET /payouts/{id}`) and, for people
    who may read claims, its claim's hold (`GET /claims/{id}`)."""

    apis: PlatformApi

    async def __call__(self, filters: QueueFilter, *, token: str, with_claims: bool) -> Queue:
        try:
            listed = await self.apis.get("payouts", "/payouts", token=token, query=filters.query())
        except ApiProblem as problem:
            return Queue([], problem, with_claims, full=False)
        items = [i for i in (listed or {}).get("items") or [] if isinstance(i, dict)]
        gate = asyncio.Semaphore(CONCURRENT_LOOKUPS)

        async def bounded(call: Callable[[], Awaitable[Any]]) -> Any:
            async with gate:
                return await _attempt(call())

        async def one(item: dict[str, Any]) -> Review:
            payout_id, claim_id = str(item.get("id", "")), item.get("claim_id")
            lookups = [bounded(lambda: self.apis.get("payouts", f"/payouts/{quote(payout_id, safe='')}", token=token))]
            if with_claims and claim_id:
                path = f"/claims/{quote(str(claim_id), safe='')}"
                lookups.append(bounded(lambda: self.apis.get("rewards", path, token=token)))
            detail, *claim = await asyncio.gather(*lookups)
            return _review(item, detail, claim[0] if claim else None)

        reviews = await asyncio.gather(*(one(i) for i in items))
        return Queue(list(reviews), None, with_claims, full=len(items) >= QUEUE_LIMIT)


@dataclass(frozen=True)
class ReviewPayout:
    """One payout with its history, attempts and approvals, and its claim when the person may read claims. A
    missing payout is the service's problem (raised); a claim that cannot be read is shown beside it."""

    apis: PlatformApi

    async def __call__(self, payout_id: str, *, token: str, with_claims: bool) -> Review:
        detail = await self.apis.get("payouts", f"/payouts/{quote(payout_id, safe='')}", token=token)
        if not isinstance(detail, dict):
            raise ApiProblem(502, "bad_answer", "Unexpected answer", "payouts answered without a payout", "payouts")
        claim_id = detail.get("claim_id")
        claim: dict[str, Any] | ApiProblem | None = None
        if with_claims and claim_id:
            claim = await _attempt(self.apis.get("rewards", f"/claims/{quote(str(claim_id), safe='')}", token=token))
        return _review(detail, detail, claim)


__all__ = ["ApprovalQueue", "Queue", "QueueFilter", "Review", "ReviewPayout"]
