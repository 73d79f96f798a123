"""In-memory top-ups and checkout provider, for the top-up use cases' unit tests; `FakeTopUps` keeps the database's
rules (`tests/integration/test_store_contracts.py` holds it to `SqlTopUpRepository`)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime

from fake_ledger import Shared

from prizeflow_rewards.application.ports import (
    CheckoutRefusedError,
    CheckoutRequest,
    CheckoutSession,
    CheckoutUnavailableError,
)
from prizeflow_rewards.domain.topups import Adjustment, AdjustmentStatus, TopUp, TopUpStatus


class FakeTopUps(Shared):
    """Top-ups and adjustments with the database's rules: one credit, one adjustment per (provider, kind, ref),
    final states final, an adjustment applied once and only to a credited top-up."""

    def __init__(self) -> None:
        self.rows: dict[str, TopUp] = {}
        self.adj: dict[tuple[str, str, str], tuple[str, Adjustment]] = {}  # (provider, kind, ref) → (provider, adj)
        self._seq = 0
        self.player_locks: list[str] = []

    async def get(self, top_up_id: str, *, lock: bool = False) -> TopUp | None:
        return self.rows.get(top_up_id)

    async def lock_player(self, player_id: str) -> None:
        self.player_locks.append(player_id)

    async def open_or_credited_since(self, player_id: str, asset: str, *, since: datetime) -> int:
        now = datetime.now(UTC)  # a session still payable is one not expired yet, as the database's now() says
        return sum(
            t.amount
            for t in self.rows.values()
            if t.player_id == player_id
            and t.asset == asset
            and t.created_at > since
            and (t.status is TopUpStatus.CREDITED or (t.status is TopUpStatus.CREATED and t.expires_at > now))
        )

    async def add(self, top_up: TopUp) -> bool:
        if top_up.id in self.rows:
            return False
        if any((t.provider, t.session_ref) == (top_up.provider, top_up.session_ref) for t in self.rows.values()):
            raise AssertionError("top_ups_one_session")
        self.rows[top_up.id] = top_up
        return True

    async def lock_matching(
        self, *, top_up_ids: Sequence[str], session_refs: Sequence[str], payment_refs: Sequence[str]
    ) -> list[TopUp]:
        return sorted(
            (
                t
                for t in self.rows.values()
                if t.id in top_up_ids or t.session_ref in session_refs or t.payment_ref in payment_refs
            ),
            key=lambda t: t.id,
        )

    async def find(self, *, top_up_id: str | None, session_ref: str | None, payment_ref: str | None) -> TopUp | None:
        rows = self.rows.values()
        by_id = [t for t in rows if t.id == top_up_id]
        by_session = [t for t in rows if session_ref is not None and t.session_ref == session_ref]
        by_payment = [t for t in rows if payment_ref is not None and t.payment_ref == payment_ref]
        found = by_id or by_session or by_payment
        return found[0] if found else None

    async def set_status(self, top_up_id: str, status: TopUpStatus) -> None:
        current = self.rows[top_up_id]
        assert current.status is TopUpStatus.CREATED or current.status is status, "top_ups_transition"
        self.rows[top_up_id] = replace(current, status=status)

    async def mark_credited(
        self, top_up_id: str, *, payment_ref: str | None, transfer_id: uuid.UUID, at: datetime
    ) -> None:
        current = self.rows[top_up_id]
        assert current.status is TopUpStatus.CREATED, "top_ups_transition"
        assert all(t.credit_transfer_id != transfer_id for t in self.rows.values()), "top_ups_one_credit"
        self.rows[top_up_id] = replace(
            current,
            status=TopUpStatus.CREDITED,
            payment_ref=payment_ref or current.payment_ref,
            credit_transfer_id=transfer_id,
            credited_at=at,
        )

    async def adjustments(self, top_up_id: str) -> list[Adjustment]:
        return sorted((a for _, a in self.adj.values() if a.top_up_id == top_up_id), key=lambda a: a.seq)

    async def record_adjustment(self, provider: str, adjustment: Adjustment, *, provider_event_id: str) -> None:
        key = (provider, adjustment.kind.value, adjustment.adjustment_ref)
        assert key not in self.adj, "top_up_adjustments_once"
        assert self.rows[adjustment.top_up_id].provider == provider, "top_up_adjustments_of_top_up"
        self._seq += 1
        self.adj[key] = (provider, replace(adjustment, status=AdjustmentStatus.PENDING, seq=self._seq))

    async def find_adjustment(self, provider: str, kind: str, adjustment_ref: str) -> Adjustment | None:
        found = self.adj.get((provider, kind, adjustment_ref))
        return found[1] if found else None

    async def mark_applied(self, adjustment: Adjustment) -> None:
        key = next(
            k
            for k, (_, a) in self.adj.items()
            if (a.top_up_id, a.kind, a.adjustment_ref)
            == (adjustment.top_up_id, adjustment.kind, adjustment.adjustment_ref)
        )
        provider, current = self.adj[key]
        assert current.status is AdjustmentStatus.PENDING, "top_up_adjustments_apply_once"
        assert self.rows[current.top_up_id].status is TopUpStatus.CREDITED, "top_up_adjustments_apply_once"
        assert adjustment.debited + adjustment.receivable + adjustment.credited == current.amount, "split"
        self.adj[key] = (provider, replace(adjustment, seq=current.seq, status=AdjustmentStatus.APPLIED))


class FakeCheckout:
    """A checkout provider in memory, Stripe-shaped: idempotent on the top-up id; `pay`/`expire` are the payer."""

    currency_scheme = "stripe"

    def __init__(self, name: str = "stripe") -> None:
        self.name = name
        self.sessions: dict[str, CheckoutSession] = {}
        self.by_top_up: dict[str, str] = {}
        self.requests: list[CheckoutRequest] = []
        self.down = False
        self.refuse: str | None = None

    async def create_session(self, request: CheckoutRequest) -> CheckoutSession:
        self.requests.append(request)
        if self.down:
            raise CheckoutUnavailableError(self.name, "APIConnectionError (http None)")
        if self.refuse:
            raise CheckoutRefusedError(self.name, self.refuse, "http 400")
        ref = self.by_top_up.get(request.top_up_id)
        if ref is None:
            ref = f"cs_test_{len(self.sessions) + 1}"
            self.by_top_up[request.top_up_id] = ref
            self.sessions[ref] = CheckoutSession(
                session_ref=ref,
                url=f"https://checkout.test/{ref}",
                status="open",
                payment_status="unpaid",
                amount_total=request.amount,
                currency=request.currency,
                payment_ref=None,
                expires_at=datetime(2030, 1, 1, tzinfo=UTC),
                top_up_id=request.top_up_id,
            )
        return self.sessions[ref]

    async def retrieve_session(self, session_ref: str) -> CheckoutSession:
        if self.down:
            raise CheckoutUnavailableError(self.name, "APIConnectionError (http None)")
        return self.sessions[session_ref]

    def pay(self, session_ref: str) -> str:
        payment = "pi_" + session_ref.removeprefix("cs_")
        self.sessions[session_ref] = replace(
            self.sessions[session_ref], status="complete", payment_status="paid", payment_ref=payment
        )
        return payment

    def expire(self, session_ref: str) -> None:
        self.sessions[session_ref] = replace(self.sessions[session_ref], status="expired")


__all__ = ["FakeCheckout", "FakeTopUps"]
