"""Claims: a player claims a redeemable balance to a payout destination; payouts settle the reservation.

A claim is checked under the wallet's row lock (concurrent claims on one wallet queue, none overdraws it),
taken together with the clearing account its reservation credits: one ordered lock, up front.
An approved or held claim reserves its amount with a pending transfer wallet → clearing; approval emits
PayoutRequested through the outbox. Payout outcomes post (paid) or void (failed for good, cancelled,
rejected) that reservation exactly once; a return credits the wallet back.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text

from prizeflow_contracts.envelope import Envelope, EventPayload, event_id_for, follow, new_event
from prizeflow_contracts.errors import EventRefusal
from prizeflow_contracts.events.payouts import (
    PayoutCancelled,
    PayoutCreated,
    PayoutFailed,
    PayoutPaid,
    PayoutRejected,
    PayoutRequested,
    PayoutRequestRefused,
    PayoutReturned,
    PayoutRoutesPublished,
)
from prizeflow_contracts.events.rewards import ClaimApproved, ClaimHeld, ClaimRejected, ClaimRejectionCode
from prizeflow_contracts.money import ASSETS, Money
from prizeflow_contracts.providers import PayoutDestination
from prizeflow_rewards.application.common import Clock, audit, count_transfers, utcnow
from prizeflow_rewards.application.ports import Conn, Ledger
from prizeflow_rewards.domain import accounts
from prizeflow_rewards.domain.claims import (
    Approve,
    ClaimFacts,
    ClaimLimits,
    ClaimStatus,
    Hold,
    RefusalCode,
    Refuse,
    assess,
    can_move,
)
from prizeflow_rewards.domain.ledger import (
    AccountRef,
    LedgerError,
    Transfer,
    TransferFlags,
    TransferKind,
    post_of,
    void_of,
)
from prizeflow_rewards.metrics import RewardsMetrics
from prizeflow_runtime.auth import Principal
from prizeflow_runtime.outbox import add_event


class ClaimError(Exception):
    """A claim request or review action that cannot proceed; `code` is stable (problem details)."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Claim:
    id: str
    player_id: str
    asset: str
    amount: int
    destination: dict[str, Any]
    status: ClaimStatus
    hold_code: str | None
    hold_detail: str | None
    rejection_code: str | None
    payout_request_id: str
    correlation_id: str
    created_at: datetime
    destination_key: str = ""
    payout_id: str | None = None

    def view(self) -> dict[str, Any]:
        return {
            "claim_id": self.id,
            "player_id": self.player_id,
            "asset": self.asset,
            "amount": self.amount,
            "destination": self.destination,
            "status": self.status.value,
            "hold_code": self.hold_code,
            "hold_detail": self.hold_detail,
            "rejection_code": self.rejection_code,
            "payout_request_id": self.payout_request_id,
            "payout_id": self.payout_id,
            "created_at": self.created_at.isoformat(),
        }

    @property
    def pending(self) -> Transfer:
        return reservation(self.id, self.player_id, self.asset, self.amount)


def reservation(claim_id: str, player_id: str, asset: str, amount: int) -> Transfer:
    return Transfer.of(
        accounts.wallet(player_id, asset),
        accounts.clearing(asset),
        amount,
        TransferKind.CLAIM_RESERVE,
        claim_id,
        flags=TransferFlags.PENDING,
    )


_SELECT_CLAIM = (
    "SELECT id, player_id, asset, amount, destination, status, hold_code, hold_detail, rejection_code, "
    "payout_request_id, correlation_id, created_at, destination_key, payout_id FROM claims "
)
_GET = text(_SELECT_CLAIM + "WHERE id = :id")
_GET_LOCKED = text(_SELECT_CLAIM + "WHERE id = :id FOR NO KEY UPDATE")
# A consumer poll's claims, in id order (before any account): claims are always locked before accounts.
_LOCK_MANY = text(
    "SELECT id, player_id, asset FROM claims WHERE id = ANY(CAST(:ids AS text[])) ORDER BY id FOR NO KEY UPDATE"
)
_HELD = text(_SELECT_CLAIM + "WHERE status = 'held' ORDER BY created_at LIMIT :n")


async def get_claim(conn: Conn, claim_id: str, *, lock: bool = False) -> Claim | None:
    row = (await conn.execute(_GET_LOCKED if lock else _GET, {"id": claim_id})).first()
    return _claim(row) if row is not None else None


async def list_held(conn: Conn, *, limit: int = 100) -> list[Claim]:
    rows = await conn.execute(_HELD, {"n": limit})
    return [_claim(r) for r in rows]


def _claim(row: Any) -> Claim:
    return Claim(
        row.id,
        row.player_id,
        row.asset,
        row.amount,
        row.destination,
        ClaimStatus(row.status),
        row.hold_code,
        row.hold_detail,
        row.rejection_code,
        row.payout_request_id,
        row.correlation_id,
        row.created_at,
        row.destination_key,
        row.payout_id,
    )


def destination_key(destination: PayoutDestination) -> str:
    raw = f"{destination.type.value}|{destination.address}|{destination.memo or ''}"
    return hashlib.sha256(raw.encode()).hexdigest()


@dataclass
class ClaimPolicy:
    min_claim: dict[str, int]
    daily_limit: dict[str, int]
    review_threshold: dict[str, int]
    velocity_max_claims: int = 5
    velocity_window_s: int = 3600
    new_destination_cooldown_s: int = 86_400
    rejection_rate_bps: int = 5_000
    rejection_rate_min_claims: int = 4
    rejection_rate_window_s: int = 7 * 86_400

    def limits(self, asset: str) -> ClaimLimits:
        big = 2**63 - 1
        return ClaimLimits(
            min_claim=self.min_claim.get(asset, 1),
            daily_limit=self.daily_limit.get(asset, big),
            review_threshold=self.review_threshold.get(asset, big),
            velocity_max_claims=self.velocity_max_claims,
            new_destination_cooldown_s=self.new_destination_cooldown_s,
            rejection_rate_bps=self.rejection_rate_bps,
            rejection_rate_min_claims=self.rejection_rate_min_claims,
        )


_FACTS = text(
    """
    SELECT
      coalesce(sum(amount) FILTER (WHERE asset = :asset AND created_at > :day
                                   AND status IN ('held', 'approved', 'paid')), 0) AS claimed_today,
      count(*) FILTER (WHERE created_at > :velocity) AS recent,
      count(*) FILTER (WHERE created_at > :window AND status IN ('paid', 'rejected', 'voided', 'returned')) AS decided,
      count(*) FILTER (WHERE created_at > :window AND status IN ('rejected', 'voided', 'returned')) AS failed
    FROM claims WHERE player_id = :player AND created_at > least(:day, :velocity, :window)
    """
)


@dataclass
class SubmitClaim:
    ledger: Ledger
    policy: ClaimPolicy
    source: str
    metrics: RewardsMetrics | None = None
    clock: Clock = utcnow

    async def __call__(
        self,
        conn: Conn,
        actor: Principal,
        *,
        player_id: str,
        asset: str,
        amount: int,
        destination: PayoutDestination,
        idempotency_key: str | None = None,
        correlation_id: str | None = None,
    ) -> tuple[Claim, bool]:
        """Returns (claim, created). Raises `ClaimError` for a refusal: then nothing is written.

        `correlation_id` ties the claim to the flow that prompted it (e.g. the round just won, sent by the
        game client as `X-Correlation-Id`); without one the claim starts its own flow under its id.
        """
        spec = ASSETS.get(asset)
        if spec is None:
            raise self._refuse(
                RefusalCode.UNKNOWN_ASSET, f"unknown asset {asset!r}; known: {', '.join(sorted(ASSETS))}"
            )
        if amount <= 0:
            raise ClaimError(422, "invalid_amount", "amount must be a positive integer of minor units")
        claim_id = (
            "cl-" + str(uuid.uuid5(uuid.NAMESPACE_URL, f"prizeflow:claim:{player_id}:{idempotency_key}"))
            if idempotency_key
            else f"cl-{uuid.uuid4()}"
        )
        wallet = accounts.wallet(player_id, asset)
        # The wallet row lock serializes this player's claims in this asset: the facts below cannot go stale.
        # The clearing account the reservation credits is locked with it, in the one global order.
        balance = (await self.ledger.lock(conn, [wallet, accounts.clearing(asset)]))[wallet]
        dkey = destination_key(destination)
        existing = await get_claim(conn, claim_id)
        if existing is not None:
            # Any difference in the request under the same key is a different claim, never the first one back.
            if (existing.player_id, existing.asset, existing.amount, existing.destination_key) != (
                player_id,
                asset,
                amount,
                dkey,
            ):
                raise ClaimError(409, "idempotency_key_reused", "this Idempotency-Key was used for another claim")
            return existing, False
        now = self.clock()
        limits = self.policy.limits(asset)
        facts_row = (
            await conn.execute(
                _FACTS,
                {
                    "player": player_id,
                    "asset": asset,
                    "day": now - timedelta(days=1),
                    "velocity": now - timedelta(seconds=self.policy.velocity_window_s),
                    "window": now - timedelta(seconds=self.policy.rejection_rate_window_s),
                },
            )
        ).one()
        seen = (
            await conn.execute(
                text("SELECT first_seen_at FROM payout_destinations WHERE player_id = :p AND destination_key = :k"),
                {"p": player_id, "k": dkey},
            )
        ).scalar_one_or_none()
        risk = (
            await conn.execute(text("SELECT flagged FROM player_risk_flags WHERE player_id = :p"), {"p": player_id})
        ).scalar_one_or_none()
        routable = (
            await conn.execute(
                text("SELECT 1 FROM payout_routes WHERE asset = :a AND destination_type = :t LIMIT 1"),
                {"a": asset, "t": destination.type.value},
            )
        ).first() is not None
        facts = ClaimFacts(
            asset=asset,
            redeemable=spec.redeemable,
            amount=amount,
            available=balance.available,
            claimed_today=int(facts_row.claimed_today),
            claims_in_velocity_window=int(facts_row.recent),
            destination_age_s=(now - seen).total_seconds() if seen is not None else None,
            risk_flagged=bool(risk),
            recent_decided=int(facts_row.decided),
            recent_failed=int(facts_row.failed),
            routable=routable,
        )
        decision = assess(facts, limits)
        if isinstance(decision, Refuse):
            raise self._refuse(decision.code, decision.detail)
        pending = reservation(claim_id, player_id, asset, amount)
        try:
            result = await self.ledger.apply(conn, [pending])
        except LedgerError as err:  # the lock makes this unreachable; the CHECK constraint makes it safe
            raise self._refuse(RefusalCode.INSUFFICIENT_BALANCE, err.detail) from err
        count_transfers(self.metrics, result)
        await conn.execute(
            text(
                "INSERT INTO payout_destinations (player_id, destination_key, first_seen_at) VALUES (:p, :k, :t) "
                "ON CONFLICT DO NOTHING"
            ),
            {"p": player_id, "k": dkey, "t": now},
        )
        held = isinstance(decision, Hold)
        claim = Claim(
            id=claim_id,
            player_id=player_id,
            asset=asset,
            amount=amount,
            destination=destination.model_dump(mode="json"),
            status=ClaimStatus.HELD if held else ClaimStatus.APPROVED,
            hold_code=decision.code.value if isinstance(decision, Hold) else None,
            hold_detail=decision.detail if isinstance(decision, Hold) else None,
            rejection_code=None,
            payout_request_id=f"pr-{claim_id}",
            correlation_id=correlation_id or claim_id,
            created_at=now,
            destination_key=dkey,
        )
        await conn.execute(
            text(
                "INSERT INTO claims (id, player_id, asset, amount, destination, destination_key, status, hold_code, "
                "hold_detail, pending_transfer_id, payout_request_id, correlation_id, created_at, decided_at) "
                "VALUES (:id, :p, :a, :amt, CAST(:d AS jsonb), :k, :s, :hc, :hd, :t, :pr, :c, :now, :decided)"
            ),
            {
                "id": claim_id,
                "p": player_id,
                "a": asset,
                "amt": amount,
                "d": destination.model_dump_json(),
                "k": dkey,
                "s": claim.status.value,
                "hc": claim.hold_code,
                "hd": claim.hold_detail,
                "t": pending.id,
                "pr": claim.payout_request_id,
                "c": claim.correlation_id,
                "now": now,
                "decided": None if held else now,
            },
        )
        money = Money(asset=asset, amount=amount)
        if isinstance(decision, Hold):
            await add_event(
                conn,
                new_event(
                    ClaimHeld(
                        claim_id=claim_id,
                        player_id=player_id,
                        amount=money,
                        code=decision.code,
                        held_at=now,
                        detail=decision.detail,
                    ),
                    source=self.source,
                    correlation_id=claim.correlation_id,
                    subject=claim_id,
                    event_id=event_id_for("ClaimHeld", claim_id),
                ),
            )
            if self.metrics is not None:
                self.metrics.abuse_holds.labels(decision.code.value).inc()
                self.metrics.claims.labels("held").inc()
        else:
            assert isinstance(decision, Approve)
            await approve(conn, claim, approved_by=None, requested_by=actor.user_id, source=self.source, at=now)
            if self.metrics is not None:
                self.metrics.claims.labels("approved").inc()
        return claim, True

    def _refuse(self, code: RefusalCode, detail: str) -> ClaimError:
        if self.metrics is not None:
            self.metrics.claims.labels(f"refused_{code.value}").inc()
        return ClaimError(422, code.value, detail)


async def approve(
    conn: Conn, claim: Claim, *, approved_by: str | None, requested_by: str, source: str, at: datetime
) -> None:
    """ClaimApproved + PayoutRequested, in the caller's transaction (the reservation already exists)."""
    money = Money(asset=claim.asset, amount=claim.amount)
    approved = new_event(
        ClaimApproved(
            claim_id=claim.id, player_id=claim.player_id, amount=money, approved_by=approved_by, approved_at=at
        ),
        source=source,
        correlation_id=claim.correlation_id,
        subject=claim.id,
        event_id=event_id_for("ClaimApproved", claim.id),
    )
    requested = follow(
        approved,
        PayoutRequested(
            payout_request_id=claim.payout_request_id,
            claim_id=claim.id,
            player_id=claim.player_id,
            amount=money,
            destination=PayoutDestination.model_validate(claim.destination),
            idempotency_key=f"{claim.id}:payout",
            requested_by=requested_by,
            requested_at=at,
        ),
        source=source,
        subject=claim.id,
        event_id=event_id_for("PayoutRequested", claim.id),
    )
    await add_event(conn, approved)
    await add_event(conn, requested)


@dataclass
class ReviewHold:
    """Ops decide a held claim: release (approve → PayoutRequested) or reject (void the reservation)."""

    ledger: Ledger
    source: str
    metrics: RewardsMetrics | None = None
    clock: Clock = utcnow

    async def release(self, conn: Conn, actor: Principal, claim_id: str, *, reason: str | None) -> Claim:
        claim = await self._held(conn, claim_id, ClaimStatus.APPROVED)
        now = self.clock()
        await self._set(conn, claim, ClaimStatus.APPROVED, actor, now)
        await approve(conn, claim, approved_by=actor.user_id, requested_by=actor.user_id, source=self.source, at=now)
        await self._audit(conn, actor, claim, "claim.release", ClaimStatus.APPROVED, reason=reason)
        return await self._reload(conn, claim_id)

    async def reject(self, conn: Conn, actor: Principal, claim_id: str, *, reason: str) -> Claim:
        claim = await self._held(conn, claim_id, ClaimStatus.REJECTED)
        now = self.clock()
        result = await self.ledger.apply(conn, [void_of(claim.pending)])
        count_transfers(self.metrics, result)
        await self._set(
            conn, claim, ClaimStatus.REJECTED, actor, now, rejection=ClaimRejectionCode.REJECTED_BY_REVIEWER
        )
        await add_event(
            conn,
            new_event(
                ClaimRejected(
                    claim_id=claim.id,
                    player_id=claim.player_id,
                    amount=Money(asset=claim.asset, amount=claim.amount),
                    code=ClaimRejectionCode.REJECTED_BY_REVIEWER,
                    detail=reason,
                    rejected_by=actor.user_id,
                    rejected_at=now,
                ),
                source=self.source,
                correlation_id=claim.correlation_id,
                subject=claim.id,
                event_id=event_id_for("ClaimRejected", claim.id),
            ),
        )
        await self._audit(conn, actor, claim, "claim.reject", ClaimStatus.REJECTED, reason=reason)
        return await self._reload(conn, claim_id)

    async def _held(self, conn: Conn, claim_id: str, target: ClaimStatus) -> Claim:
        claim = await get_claim(conn, claim_id, lock=True)
        if claim is None:
            raise ClaimError(404, "claim_not_found", f"no claim {claim_id}")
        if not can_move(claim.status, target):
            raise ClaimError(409, "illegal_transition", f"claim {claim_id} is {claim.status.value}, not held")
        return claim

    async def _set(
        self,
        conn: Conn,
        claim: Claim,
        status: ClaimStatus,
        actor: Principal,
        at: datetime,
        *,
        rejection: ClaimRejectionCode | None = None,
    ) -> None:
        await conn.execute(
            text(
                "UPDATE claims SET status = :s, decided_at = :t, decided_by = :by, rejection_code = :rc WHERE id = :id"
            ),
            {
                "s": status.value,
                "t": at,
                "by": actor.user_id,
                "rc": rejection.value if rejection else None,
                "id": claim.id,
            },
        )

    async def _audit(
        self, conn: Conn, actor: Principal, claim: Claim, action: str, status: ClaimStatus, *, reason: str | None
    ) -> None:
        await audit(
            conn,
            source=self.source,
            actor=actor,
            action=action,
            target_type="claim",
            target_id=claim.id,
            correlation_id=claim.correlation_id,
            reason=reason,
            before={"status": claim.status.value, "hold_code": claim.hold_code or ""},
            after={"status": status.value},
        )

    async def _reload(self, conn: Conn, claim_id: str) -> Claim:
        claim = await get_claim(conn, claim_id)
        assert claim is not None
        return claim


@dataclass
class SettlePayout:
    """Payout outcomes → the claim's reservation: paid posts it, final failure/cancel/reject voids it, and so
    does a refused request (no payout exists, none ever will). One claim is settled by one payout: the first
    payout payouts created for it; an outcome of any other payout for the claim is refused, never absorbed."""

    ledger: Ledger
    metrics: RewardsMetrics | None = None

    async def prepare(self, conn: Conn, envs: Sequence[Envelope[EventPayload]]) -> None:
        """Take every lock a poll of these events needs, before any event is applied: the routes (if the poll
        announces some), then the claims in id order, then all their accounts in one ordered ledger lock. The
        events then run in poll order without waiting for anyone, so a poll cannot deadlock with another poll,
        a claim or a hold decision."""
        if any(isinstance(e.data, PayoutRoutesPublished) for e in envs):
            await conn.execute(text("SELECT sequence FROM payout_routes_version FOR UPDATE"))
        outcomes = [e.data for e in envs if isinstance(e.data, _CLAIM_EVENTS)]
        if not outcomes:
            return
        rows = await conn.execute(_LOCK_MANY, {"ids": sorted({d.claim_id for d in outcomes})})
        claims = {r.id: (r.player_id, r.asset) for r in rows}
        refs: set[AccountRef] = set()
        for d in outcomes:
            if d.claim_id in claims:
                refs.update(settlement_accounts(d, *claims[d.claim_id]))
        await self.ledger.declare(conn, refs)

    async def handle(self, conn: Conn, env: Envelope[EventPayload]) -> None:
        data = env.data
        if isinstance(data, PayoutRoutesPublished):
            await publish_routes(conn, data)
            return
        if isinstance(data, PayoutRequestRefused):
            await self._refused(conn, data)
            return
        if isinstance(data, PayoutFailed) and not data.final:
            return  # payouts retries with the same idempotency key; the reservation stays
        if not isinstance(
            data, PayoutCreated | PayoutPaid | PayoutFailed | PayoutCancelled | PayoutRejected | PayoutReturned
        ):
            return
        claim = await get_claim(conn, data.claim_id, lock=True)
        if claim is None:
            raise EventRefusal("unknown_aggregate", f"{type(data).__name__}: no claim {data.claim_id}")
        if (data.player_id, data.amount.asset, data.amount.amount) != (claim.player_id, claim.asset, claim.amount):
            raise EventRefusal("conflicting_event", f"{type(data).__name__} does not match claim {claim.id}")
        await self._bind(conn, claim, data.payout_id, type(data).__name__)
        if isinstance(data, PayoutCreated):
            return
        if isinstance(data, PayoutPaid):
            await self._paid(conn, claim, data.provider.value)
        elif isinstance(data, PayoutReturned):
            await self._returned(conn, claim, data)
        else:
            await self._void(conn, claim)

    async def _bind(self, conn: Conn, claim: Claim, payout_id: str, what: str) -> None:
        """The claim's payout is the first one payouts tells of; any other is a second payout for one claim."""
        if claim.payout_id == payout_id:
            return
        if claim.payout_id is not None:
            raise EventRefusal(
                "duplicate_payout",
                f"{what} of payout {payout_id}: claim {claim.id} is settled by payout {claim.payout_id}",
            )
        await conn.execute(text("UPDATE claims SET payout_id = :p WHERE id = :id"), {"p": payout_id, "id": claim.id})

    async def _refused(self, conn: Conn, data: PayoutRequestRefused) -> None:
        claim = await get_claim(conn, data.claim_id, lock=True)
        if claim is None:
            raise EventRefusal("unknown_aggregate", f"PayoutRequestRefused: no claim {data.claim_id}")
        if claim.payout_request_id != data.payout_request_id:
            raise EventRefusal("conflicting_event", f"PayoutRequestRefused does not match claim {claim.id}")
        if claim.payout_id is not None:
            raise EventRefusal(
                "conflicting_event", f"claim {claim.id} has payout {claim.payout_id}: its request was not refused"
            )
        # Held too: payouts refused a request naming this claim (it could only be forged or unreadable) and will
        # refuse the real one when the hold is released, so the reservation goes back now, not never.
        await self._void(conn, claim, allowed=(ClaimStatus.APPROVED, ClaimStatus.HELD))

    async def _paid(self, conn: Conn, claim: Claim, provider: str) -> None:
        if claim.status in (ClaimStatus.PAID, ClaimStatus.RETURNED):
            return
        if claim.status is not ClaimStatus.APPROVED:
            raise EventRefusal("illegal_transition", f"claim {claim.id} is {claim.status.value}: cannot be paid")
        settle = Transfer.of(
            accounts.clearing(claim.asset),
            accounts.external(provider, claim.asset),
            claim.amount,
            TransferKind.PAYOUT_SETTLE,
            claim.id,
        )
        await self._apply(conn, [post_of(claim.pending), settle], claim)
        await self._status(conn, claim, ClaimStatus.PAID)

    async def _void(
        self, conn: Conn, claim: Claim, *, allowed: tuple[ClaimStatus, ...] = (ClaimStatus.APPROVED,)
    ) -> None:
        if claim.status is ClaimStatus.VOIDED:
            return
        if claim.status not in allowed:
            raise EventRefusal("illegal_transition", f"claim {claim.id} is {claim.status.value}: cannot be voided")
        await self._apply(conn, [void_of(claim.pending)], claim)
        await self._status(conn, claim, ClaimStatus.VOIDED)

    async def _returned(self, conn: Conn, claim: Claim, data: PayoutReturned) -> None:
        if claim.status is ClaimStatus.RETURNED:
            return
        if claim.status is not ClaimStatus.PAID:
            raise EventRefusal("illegal_transition", f"claim {claim.id} is {claim.status.value}: nothing to return")
        back = Transfer.of(
            accounts.external(data.provider.value, claim.asset),
            accounts.wallet(claim.player_id, claim.asset),
            data.returned_amount.amount,
            TransferKind.PAYOUT_RETURN,
            claim.id,
        )
        await self._apply(conn, [back], claim)
        await self._status(conn, claim, ClaimStatus.RETURNED)

    async def _apply(self, conn: Conn, batch: list[Transfer], claim: Claim) -> None:
        try:
            result = await self.ledger.apply(conn, batch)
        except LedgerError as err:
            raise EventRefusal("conflicting_event", f"claim {claim.id}: {err.detail}") from err
        count_transfers(self.metrics, result)

    async def _status(self, conn: Conn, claim: Claim, status: ClaimStatus) -> None:
        await conn.execute(
            text("UPDATE claims SET status = :s, settled_at = now() WHERE id = :id"),
            {"s": status.value, "id": claim.id},
        )


_CLAIM_EVENTS = (
    PayoutCreated,
    PayoutPaid,
    PayoutFailed,
    PayoutCancelled,
    PayoutRejected,
    PayoutReturned,
    PayoutRequestRefused,
)


def settlement_accounts(data: EventPayload, player_id: str, asset: str) -> list[AccountRef]:
    """The accounts a payout outcome moves money between, for a claim of `player_id` in `asset` (what
    `SettlePayout.handle` would apply; nothing for events that move no money)."""
    wallet, clearing = accounts.wallet(player_id, asset), accounts.clearing(asset)
    if isinstance(data, PayoutPaid):
        return [wallet, clearing, accounts.external(data.provider.value, asset)]
    if isinstance(data, PayoutReturned):
        return [accounts.external(data.provider.value, asset), wallet]
    if isinstance(data, PayoutCancelled | PayoutRejected | PayoutRequestRefused) or (
        isinstance(data, PayoutFailed) and data.final
    ):
        return [wallet, clearing]
    return []


async def publish_routes(conn: Conn, data: PayoutRoutesPublished) -> None:
    """Replace what rewards knows of payouts' routes with a newer announcement (an older one changes nothing)."""
    current = (await conn.execute(text("SELECT sequence FROM payout_routes_version FOR UPDATE"))).scalar()
    if current is not None and current >= data.sequence:
        return
    await conn.execute(
        text(
            "INSERT INTO payout_routes_version (id, sequence, published_at) VALUES (true, :s, :t) "
            "ON CONFLICT (id) DO UPDATE SET sequence = :s, published_at = :t"
        ),
        {"s": data.sequence, "t": data.published_at},
    )
    await conn.execute(text("DELETE FROM payout_routes"))
    routes = sorted({(r.asset, r.destination_type.value, r.provider.value) for r in data.routes})
    if routes:
        assets, types, providers = (list(column) for column in zip(*routes, strict=True))
        await conn.execute(
            text(
                "INSERT INTO payout_routes (asset, destination_type, provider, published_at) "
                "SELECT a, d, p, :t FROM unnest(CAST(:a AS text[]), CAST(:d AS text[]), CAST(:p AS text[])) "
                "AS r(a, d, p)"
            ),
            {"a": assets, "d": types, "p": providers, "t": data.published_at},
        )


async def known_routes(conn: Conn) -> list[dict[str, Any]]:
    rows = await conn.execute(
        text("SELECT asset, destination_type, provider, published_at FROM payout_routes ORDER BY 1, 2, 3")
    )
    return [
        {
            "asset": r.asset,
            "destination_type": r.destination_type,
            "provider": r.provider,
            "published_at": r.published_at,
        }
        for r in rows
    ]
