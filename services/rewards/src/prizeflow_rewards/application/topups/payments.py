"""ApplyPaymentEvents: `PaymentEventReceived` on `prizeflow.webhooks.provider-events.v1`, from the webhook ingress
and verified by it, or refused before anything is recorded; in the consumer poll's transaction (its `books`)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from prizeflow_contracts.envelope import Envelope, EventPayload
from prizeflow_contracts.errors import EventRefusal
from prizeflow_contracts.events.webhooks import (
    PaymentEventReceived,
    PaymentEventStatus,
    ProviderEventReceived,
    VerificationEventReceived,
)
from prizeflow_rewards.application.books import Books
from prizeflow_rewards.application.topups.money import TopUpMoney
from prizeflow_rewards.domain.ledger import AccountRef
from prizeflow_rewards.domain.topups import AdjustmentKind, TopUp, TopUpStatus, top_up_accounts
from prizeflow_rewards.metrics import RewardsMetrics

log = logging.getLogger(__name__)

TRUSTED_SOURCES = frozenset({"/prizeflow/webhooks"})

_ADJUSTING = {
    PaymentEventStatus.REFUNDED: AdjustmentKind.REFUND,
    PaymentEventStatus.DISPUTED: AdjustmentKind.DISPUTE,
    PaymentEventStatus.DISPUTE_WON: AdjustmentKind.DISPUTE_WON,
    PaymentEventStatus.REFUND_FAILED: AdjustmentKind.REFUND_FAILED,
}


def _names_another_payment(ev: PaymentEventReceived, top_up: TopUp) -> str | None:
    """What in the event names a payment other than the top-up's (None: nothing). The top-up id travels in
    provider metadata anyone can copy onto a payment of their own, so each identifier the event carries must be the
    top-up's: its id, its session, and its payment once known."""
    if ev.top_up_id is not None and ev.top_up_id != top_up.id:
        return f"top_up_id {ev.top_up_id}"
    if ev.session_ref is not None and ev.session_ref != top_up.session_ref:
        return f"session {ev.session_ref}"
    if ev.payment_ref is not None and top_up.payment_ref is not None and ev.payment_ref != top_up.payment_ref:
        return f"payment {ev.payment_ref}"
    return None


@dataclass
class ApplyPaymentEvents:
    """`PaymentEventReceived` → credit / fail / expire / adjust a top-up, each at most once (the top-up's one
    credit, one adjustment per (provider, kind, adjustment_ref), both unique in the database). Trusted only from
    the webhook ingress and verified by it: anything else is refused before it is recorded, so it can neither
    move money nor take a key a genuine delivery needs. `ProviderEventReceived` and `VerificationEventReceived`
    (payouts') are ignored.

    Out of order: a refund or dispute reported before the payment is recorded and applied once the top-up is
    credited (a dispute won before its dispute, once the dispute is applied): the ingress delivers in any order,
    and an ordinary race needs no person. An event naming no known top-up at all (e.g. a refund that names only
    a payment the provider has not reported paid yet) is refused `unknown_aggregate`: a redrive applies it."""

    money: TopUpMoney
    metrics: RewardsMetrics | None = None
    trusted_sources: frozenset[str] = TRUSTED_SOURCES

    def _is_trusted(self, env: Envelope[Any]) -> bool:
        return env.source in self.trusted_sources and isinstance(env.data, PaymentEventReceived) and env.data.verified

    async def prepare(self, books: Books, envs: Sequence[Envelope[EventPayload]]) -> None:
        """Every top-up the poll names (id order), then all their accounts in one ordered lock."""
        events = [e.data for e in envs if isinstance(e.data, PaymentEventReceived) and self._is_trusted(e)]
        if not events:
            return
        top_ups = await books.top_ups.lock_matching(
            top_up_ids=sorted({e.top_up_id for e in events if e.top_up_id}),
            session_refs=sorted({e.session_ref for e in events if e.session_ref}),
            payment_refs=sorted({e.payment_ref for e in events if e.payment_ref}),
        )
        refs: set[AccountRef] = set()
        for t in top_ups:
            refs.update(top_up_accounts(t))
        if refs:
            await books.ledger.declare(refs)

    async def handle(self, books: Books, env: Envelope[EventPayload]) -> str:
        if isinstance(env.data, ProviderEventReceived | VerificationEventReceived):
            self._count(env.data.provider.value, "ignored")  # payouts' (the inbox row says it was seen)
            return "ignored"
        ev = self._trusted(env)
        top_up = await books.top_ups.find(
            top_up_id=ev.top_up_id, session_ref=ev.session_ref, payment_ref=ev.payment_ref
        )
        if top_up is None:
            raise EventRefusal(
                "unknown_aggregate",
                f"{ev.provider.value} {ev.kind} {ev.provider_event_id}: no top-up for id={ev.top_up_id!r} "
                f"session={ev.session_ref!r} payment={ev.payment_ref!r} (yet: redrive once the payment is known)",
            )
        if top_up.provider != ev.provider.value:
            raise EventRefusal(
                "conflicting_event", f"{ev.provider.value} event for top-up {top_up.id} taken by {top_up.provider}"
            )
        if (other := _names_another_payment(ev, top_up)) is not None:
            raise EventRefusal(
                "conflicting_event",
                f"{ev.provider.value} {ev.kind} {ev.provider_event_id}: {other} for top-up {top_up.id}",
            )
        outcome = await self._apply(books, env, ev, top_up)
        self._count(ev.provider.value, outcome)
        log.info(
            "payment event %s (%s): %s", ev.provider_event_id, ev.status.value, outcome, extra={"top_up_id": top_up.id}
        )
        return outcome

    async def _apply(self, books: Books, env: Envelope[Any], ev: PaymentEventReceived, top_up: TopUp) -> str:
        cause = str(env.id)
        if ev.status is PaymentEventStatus.PAID:
            assert ev.amount is not None  # the contract requires it on paid
            if (ev.amount.asset, ev.amount.amount) != (top_up.asset, top_up.amount):
                raise EventRefusal(
                    "amount_mismatch",
                    f"{ev.provider_event_id} paid {ev.amount.amount} {ev.amount.asset} for top-up {top_up.id} of "
                    f"{top_up.amount} {top_up.asset}",
                )
            _, outcome = await self.money.credit(books, top_up, payment_ref=ev.payment_ref, cause=cause)
            return outcome
        if ev.status is PaymentEventStatus.FAILED:
            return await self.money.settle_unpaid(books, top_up, TopUpStatus.FAILED)
        if ev.status is PaymentEventStatus.EXPIRED:
            return await self.money.settle_unpaid(books, top_up, TopUpStatus.EXPIRED)
        assert ev.adjustment_ref is not None  # the contract requires it on an adjustment
        assert ev.amount is not None
        return await self.money.adjust(
            books,
            top_up,
            kind=_ADJUSTING[ev.status],
            adjustment_ref=ev.adjustment_ref,
            amount=ev.amount,
            provider_event_id=ev.provider_event_id,
            cause=cause,
        )

    def _trusted(self, env: Envelope[Any]) -> PaymentEventReceived:
        ev = env.data
        if not isinstance(ev, PaymentEventReceived):
            raise EventRefusal("unknown_event_type", f"rewards does not handle {env.type} on the webhooks topic")
        if not self._is_trusted(env):
            self._count(ev.provider.value, "unverified")
            why = "not verified" if not ev.verified else f"published by {env.source!r}, not the webhook ingress"
            raise EventRefusal("unverified_provider_event", f"{ev.provider.value} event {ev.provider_event_id}: {why}")
        return ev

    def _count(self, provider: str, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.payment_events.labels(provider, outcome).inc()


__all__ = ["TRUSTED_SOURCES", "ApplyPaymentEvents"]
