"""Player top-ups: a checkout session at the provider, the wallet credited only on the provider's word.

- `CreateTopUpSession`: checks what may be topped up (redeemable fiat only, the provider's currency, per-top-up
  min/max, the player's daily cap), asks the provider for a session, records it. The provider is called between
  two transactions, never inside one; the top-up row is written only with the provider's answer. Its id is
  derived from (player, request key) and is the provider's Idempotency-Key: a retry after any failure gets the
  same session back, so nothing is ever half-created and no reconciler is needed (a session whose answer was
  lost is never shown to anyone and expires at the provider).
- `TopUpMoney`: the one path that credits a top-up and applies its refunds and disputes, whoever reports them
  (the webhook consumer or a verify call), under the top-up's row lock: whichever comes first credits, the
  other finds it credited.
- `VerifyTopUpSession`: a player back from the checkout before the webhook: the session read back from the
  provider, and if paid, credited through `TopUpMoney`.
- `ApplyPaymentEvents`: `PaymentEventReceived` on `prizeflow.webhooks.provider-events.v1`, from the webhook
  ingress and verified by it, or refused before anything is recorded.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from prizeflow_contracts.envelope import Envelope, EventPayload, event_id_for, new_event
from prizeflow_contracts.errors import EventRefusal
from prizeflow_contracts.events.rewards import TopUpAdjusted, TopUpAdjustmentKind, TopUpCredited
from prizeflow_contracts.events.webhooks import (
    PaymentEventReceived,
    PaymentEventStatus,
    ProviderEventReceived,
    VerificationEventReceived,
)
from prizeflow_contracts.money import ASSETS, Money
from prizeflow_rewards.application.common import Clock, count_transfers, ledger_refusals, utcnow
from prizeflow_rewards.application.ports import (
    CheckoutProvider,
    CheckoutRefusedError,
    CheckoutRequest,
    CheckoutSession,
    CheckoutUnavailableError,
    Ledger,
    Stores,
    Transactions,
    Tx,
)
from prizeflow_rewards.domain import accounts
from prizeflow_rewards.domain.contradictions import Contradiction
from prizeflow_rewards.domain.ledger import AccountRef, LedgerError
from prizeflow_rewards.domain.topups import (
    REVERSED_BY,
    REVERSES,
    Adjustment,
    AdjustmentKind,
    AdjustmentStatus,
    Refusal,
    TopUp,
    TopUpLimits,
    TopUpRefusalCode,
    TopUpStatus,
    adjustment_transfers,
    can_move,
    check_amount,
    credit_transfer,
    debit_split,
    outstanding,
    reinstate_split,
    top_up_accounts,
    top_up_id_for,
    topupable,
)
from prizeflow_rewards.metrics import RewardsMetrics
from prizeflow_runtime.errors import ErrorKind, UseCaseError
from prizeflow_runtime.principal import Principal, Role

log = logging.getLogger(__name__)

TRUSTED_SOURCES = frozenset({"/prizeflow/webhooks"})

_ADJUSTING = {
    PaymentEventStatus.REFUNDED: AdjustmentKind.REFUND,
    PaymentEventStatus.DISPUTED: AdjustmentKind.DISPUTE,
    PaymentEventStatus.DISPUTE_WON: AdjustmentKind.DISPUTE_WON,
    PaymentEventStatus.REFUND_FAILED: AdjustmentKind.REFUND_FAILED,
}


class TopUpError(UseCaseError):
    """A top-up request refused: nothing written, no session created (or, for a verify, nothing moved)."""


@dataclass(frozen=True)
class CheckoutProviders:
    """The configured checkout providers by name; `default` serves a request that names none."""

    default: str
    providers: Mapping[str, CheckoutProvider]

    def get(self, name: str | None) -> CheckoutProvider | None:
        return self.providers.get(name or self.default)


def _refused(refusal: Refusal, metrics: RewardsMetrics | None) -> TopUpError:
    if metrics is not None:
        metrics.top_ups.labels(f"refused_{refusal.code.value}").inc()
    return TopUpError(ErrorKind.INVALID, refusal.code.value, refusal.detail)


def provider_failure(err: CheckoutUnavailableError | CheckoutRefusedError) -> TopUpError:
    """The provider's failure as the request's refusal: unreachable is a 503 (retry: the same request key gets the
    same session), a refusal a 422 with the provider's code."""
    if isinstance(err, CheckoutUnavailableError):
        return TopUpError(
            ErrorKind.UNAVAILABLE, "provider_unavailable", f"{err.provider} did not answer; nothing was recorded"
        )
    return TopUpError(ErrorKind.INVALID, "provider_refused", f"{err.provider} refused the session: {err.code}")


def not_found(top_up_id: str) -> TopUpError:
    return TopUpError(ErrorKind.NOT_FOUND, "top_up_not_found", f"no top-up {top_up_id}")


def currency_of(top_up: TopUp, provider: CheckoutProvider) -> str | None:
    spec = ASSETS.get(top_up.asset)
    currency = topupable(spec, provider.name, provider.currency_scheme) if spec else None
    return currency if isinstance(currency, str) else None


@dataclass
class CreateTopUpSession:
    providers: CheckoutProviders
    limits: TopUpLimits
    metrics: RewardsMetrics | None = None
    clock: Clock = utcnow
    stores: Stores = field(kw_only=True)

    async def __call__(
        self,
        run: Transactions,
        actor: Principal,
        *,
        player_id: str,
        asset: str,
        amount: int,
        provider: str | None,
        request_key: str | None,
        correlation_id: str | None = None,
    ) -> tuple[TopUp, bool]:
        """Returns (top-up, created). The same request key returns the same top-up; a different request under it
        is `409 idempotency_key_reused`. The correlation id (its events', the provider's metadata, the webhook's)
        is the caller's `X-Correlation-Id` when given, so a top-up joins the flow it funds; else the top-up id.
        A retry under the same key with another correlation id is another request (the provider refuses it)."""
        checkout = self.providers.get(provider)
        if checkout is None:
            raise _refused(
                Refusal(TopUpRefusalCode.PROVIDER_NOT_AVAILABLE, f"provider {provider!r} does not take top-ups here"),
                self.metrics,
            )
        spec = ASSETS.get(asset)
        if spec is None:
            raise _refused(Refusal(TopUpRefusalCode.UNKNOWN_ASSET, f"unknown asset {asset!r}"), self.metrics)
        currency = topupable(spec, checkout.name, checkout.currency_scheme)
        if isinstance(currency, Refusal):
            raise _refused(currency, self.metrics)
        top_up_id = top_up_id_for(player_id, request_key)

        async def check(tx: Tx) -> TopUp | None:
            existing = await self._existing(tx, top_up_id, player_id, asset, amount, checkout.name)
            if existing is None:
                await self._check_limits(tx, player_id, asset, amount)
            return existing

        existing = await run(check)
        if existing is not None:
            return existing, False
        now = self.clock()
        correlation = correlation_id or top_up_id
        request = CheckoutRequest(
            top_up_id=top_up_id,
            player_id=player_id,
            correlation_id=correlation,
            asset=asset,
            currency=currency,
            amount=amount,
            description=f"Prizeflow wallet top-up ({spec.name})",
        )
        try:
            session = await checkout.create_session(request)
        except (CheckoutUnavailableError, CheckoutRefusedError) as err:
            log.warning("top-up %s: checkout session not created: %s", top_up_id, err)
            if self.metrics is not None:
                self.metrics.top_ups.labels("provider_failed").inc()
            raise provider_failure(err) from err
        if session.amount_total != amount or (session.currency or "").lower() != currency.lower() or not session.url:
            raise TopUpError(
                ErrorKind.UNAVAILABLE,
                "provider_mismatch",
                f"{checkout.name} answered session {session.session_ref} for another amount; nothing was recorded",
            )
        top_up = TopUp(
            id=top_up_id,
            player_id=player_id,
            asset=asset,
            amount=amount,
            provider=checkout.name,
            status=TopUpStatus.CREATED,
            session_ref=session.session_ref,
            url=session.url,
            expires_at=session.expires_at,
            correlation_id=correlation,
            created_at=now,
        )

        async def record(tx: Tx) -> tuple[TopUp, bool]:
            await self.stores.top_ups.lock_player(tx, player_id)
            existing = await self._existing(tx, top_up_id, player_id, asset, amount, checkout.name)
            if existing is not None:  # a concurrent request under the same key recorded the same session
                return existing, False
            await self._check_limits(tx, player_id, asset, amount)  # again, under the player's lock
            await self.stores.top_ups.add(tx, top_up)
            return top_up, True

        result = await run(record)
        if self.metrics is not None and result[1]:
            self.metrics.top_ups.labels("created").inc()
        return result

    async def _existing(  # noqa: PLR0917 - the request's fields, compared as one
        self, tx: Tx, top_up_id: str, player_id: str, asset: str, amount: int, provider: str
    ) -> TopUp | None:
        existing = await self.stores.top_ups.get(tx, top_up_id)
        if existing is not None and not existing.same_request(player_id, asset, amount, provider):
            raise TopUpError(
                ErrorKind.CONFLICT, "idempotency_key_reused", "this Idempotency-Key was used for another top-up"
            )
        return existing

    async def _check_limits(self, tx: Tx, player_id: str, asset: str, amount: int) -> None:
        since = self.clock() - timedelta(days=1)
        today = await self.stores.top_ups.open_or_credited_since(tx, player_id, asset, since=since)
        refusal = check_amount(asset, amount, today, self.limits)
        if refusal is not None:
            raise _refused(refusal, self.metrics)


@dataclass
class TopUpMoney:
    """Credit and adjustments of a top-up: the only code that moves a top-up's money. The caller holds the
    top-up's row lock and has declared `top_up_accounts` (rows before accounts, accounts in one ordered lock)."""

    ledger: Ledger
    source: str
    metrics: RewardsMetrics | None = None
    clock: Clock = utcnow
    stores: Stores = field(kw_only=True)

    async def credit(self, tx: Tx, top_up: TopUp, *, payment_ref: str | None, cause: str | None) -> tuple[TopUp, str]:
        """Credit once; then the adjustments reported before the payment. Returns (top-up, outcome)."""
        if top_up.status is TopUpStatus.CREDITED:
            return top_up, "duplicate"
        if not can_move(top_up.status, TopUpStatus.CREDITED):
            # Expired or failed: never credited later. The payment is on record for a person (the player paid and
            # got nothing, or the provider reports a payment that never was); no money moves on it.
            source = cause or f"verify:{payment_ref or top_up.session_ref}"
            contradiction = Contradiction(
                subject="topup",
                aggregate_id=top_up.id,
                state=top_up.status.value,
                reported="paid",
                source_ref=source,
                detail=f"top-up {top_up.id} is {top_up.status.value}, but {top_up.provider} reports it paid "
                f"(payment {payment_ref or 'unnamed'}): refund the player at the provider or credit them by hand",
            )
            if await self.stores.contradictions.record(tx, contradiction) and self.metrics is not None:
                self.metrics.contradictions.labels("topup", top_up.status.value, "paid").inc()
            log.error(
                "a payment was reported for a top-up that is %s: recorded for a person",
                top_up.status.value,
                extra={"top_up_id": top_up.id},
            )
            return top_up, "contradiction"
        transfer = credit_transfer(top_up)
        result = await self._apply(tx, [transfer])
        now = self.clock()
        await self.stores.top_ups.mark_credited(tx, top_up.id, payment_ref=payment_ref, transfer_id=transfer.id, at=now)
        top_up = replace(
            top_up,
            status=TopUpStatus.CREDITED,
            payment_ref=payment_ref or top_up.payment_ref,
            credit_transfer_id=transfer.id,
            credited_at=now,
        )
        if result.applied:
            event = TopUpCredited(
                top_up_id=top_up.id,
                player_id=top_up.player_id,
                amount=Money(asset=top_up.asset, amount=top_up.amount),
                provider=top_up.provider,
                session_ref=top_up.session_ref,
                transfer_id=str(transfer.id),
                credited_at=now,
            )
            await self._stage(tx, top_up, event, event_id_for("TopUpCredited", top_up.id), cause)
        waiting = [
            a for a in await self.stores.top_ups.adjustments(tx, top_up.id) if a.status is AdjustmentStatus.PENDING
        ]
        # Refunds and disputes in arrival order, then their reversals (each after the adjustment it reverses).
        for adj in sorted(waiting, key=lambda a: (a.kind in REVERSES, a.seq)):
            # Read again: applying a dispute or refund applies the reversal that waited for it.
            now_ = await self.stores.top_ups.find_adjustment(tx, top_up.provider, adj.kind.value, adj.adjustment_ref)
            if now_ is not None and now_.status is AdjustmentStatus.PENDING:
                await self._apply_adjustment(tx, top_up, now_, cause)
        return top_up, "applied"

    async def settle_unpaid(self, tx: Tx, top_up: TopUp, status: TopUpStatus) -> str:
        """A failure or an expiry: ends a session still open; after anything else it changes nothing."""
        if not can_move(top_up.status, status):
            return "stale"
        await self.stores.top_ups.set_status(tx, top_up.id, status)
        if self.metrics is not None:
            self.metrics.top_ups.labels(status.value).inc()
        return "applied"

    async def adjust(
        self,
        tx: Tx,
        top_up: TopUp,
        *,
        kind: AdjustmentKind,
        adjustment_ref: str,
        amount: Money,
        provider_event_id: str,
        cause: str | None,
    ) -> str:
        """Record a refund/dispute/dispute won once per (provider, kind, ref); apply it now if it can be, else when
        what it waits for arrives. Returns applied | recorded | duplicate."""
        if amount.asset != top_up.asset:
            raise EventRefusal(
                "amount_mismatch", f"{kind.value} {adjustment_ref} in {amount.asset} for a top-up in {top_up.asset}"
            )
        repo = self.stores.top_ups
        existing = await repo.find_adjustment(tx, top_up.provider, kind.value, adjustment_ref)
        if existing is not None:
            if (existing.top_up_id, existing.amount) == (top_up.id, amount.amount):
                return "duplicate"
            raise EventRefusal(
                "conflicting_event",
                f"{kind.value} {adjustment_ref} was recorded for {existing.top_up_id} with {existing.amount}",
            )
        recorded = await repo.adjustments(tx, top_up.id)
        by_ref = {(a.kind, a.adjustment_ref): a for a in recorded}
        if kind in REVERSES:
            reversed_ = by_ref.get((REVERSES[kind], adjustment_ref))
            if reversed_ is not None and amount.amount > reversed_.amount:
                raise EventRefusal(
                    "amount_mismatch",
                    f"{kind.value} {adjustment_ref} of {amount.amount} gives back more than its {reversed_.amount}",
                )
        else:
            if outstanding(recorded) + amount.amount > top_up.amount:
                raise EventRefusal(
                    "amount_mismatch",
                    f"{kind.value} {adjustment_ref} of {amount.amount} would take back more than top-up {top_up.id} "
                    f"paid ({top_up.amount}, {outstanding(recorded)} already taken back)",
                )
            reversal = by_ref.get((REVERSED_BY[kind], adjustment_ref)) if kind in REVERSED_BY else None
            if reversal is not None and reversal.amount > amount.amount:
                raise EventRefusal(
                    "amount_mismatch",
                    f"{kind.value} {adjustment_ref} of {amount.amount}: its {reversal.kind.value} gave back "
                    f"{reversal.amount}",
                )
        adj = Adjustment(top_up.id, kind, adjustment_ref, amount.amount)
        await repo.record_adjustment(tx, top_up.provider, adj, provider_event_id=provider_event_id)
        if top_up.status is TopUpStatus.CREDITED and await self._apply_adjustment(tx, top_up, adj, cause):
            return "applied"
        return "recorded"

    async def _apply_adjustment(self, tx: Tx, top_up: TopUp, adj: Adjustment, cause: str | None) -> bool:
        repo = self.stores.top_ups
        now = self.clock()
        if adj.kind in REVERSES:
            reversed_ = await repo.find_adjustment(tx, top_up.provider, REVERSES[adj.kind].value, adj.adjustment_ref)
            if reversed_ is None or reversed_.status is not AdjustmentStatus.APPLIED:
                return False  # waits for the dispute or refund it reverses
            credited, cleared = reinstate_split(adj.amount, reversed_)
            done = replace(adj, debited=0, receivable=cleared, credited=credited)
        else:
            wallet = accounts.wallet(top_up.player_id, top_up.asset)
            available = (await self.ledger.balances(tx, [wallet]))[wallet].available
            debited, owed = debit_split(adj.amount, available)
            done = replace(adj, debited=debited, receivable=owed, credited=0)
        done = replace(done, status=AdjustmentStatus.APPLIED, applied_at=now)
        await self._apply(tx, adjustment_transfers(top_up, done))
        await repo.mark_applied(tx, done)
        event = TopUpAdjusted(
            top_up_id=top_up.id,
            player_id=top_up.player_id,
            kind=TopUpAdjustmentKind(done.kind.value),
            adjustment_ref=done.adjustment_ref,
            amount=Money(asset=top_up.asset, amount=done.amount),
            debited=done.debited,
            receivable=done.receivable,
            credited=done.credited,
            adjusted_at=now,
        )
        key = event_id_for("TopUpAdjusted", top_up.id, done.kind.value, done.adjustment_ref)
        await self._stage(tx, top_up, event, key, cause)
        if self.metrics is not None:
            self.metrics.top_ups.labels(f"adjusted_{done.kind.value}").inc()
        if adj.kind in REVERSED_BY:  # a dispute won or a refund failed reported before what it reverses
            later = await repo.find_adjustment(tx, top_up.provider, REVERSED_BY[adj.kind].value, adj.adjustment_ref)
            if later is not None and later.status is AdjustmentStatus.PENDING:
                await self._apply_adjustment(tx, top_up, later, cause)
        return True

    async def _apply(self, tx: Tx, transfers: list[Any]) -> Any:
        try:
            result = await self.ledger.apply(tx, transfers)
        except LedgerError as err:
            # Refused by the ledger (the database's CHECKs): not retryable as it is; a person decides.
            raise EventRefusal("conflicting_event", f"the ledger refused a top-up transfer: {err.code}") from err
        count_transfers(self.metrics, result)
        return result

    async def _stage(self, tx: Tx, top_up: TopUp, event: EventPayload, event_id: Any, cause: str | None) -> None:
        envelope = new_event(
            event,
            source=self.source,
            correlation_id=top_up.correlation_id,
            causation_id=cause,
            subject=top_up.id,
            event_id=event_id,
        )
        await self.stores.outbox.stage(tx, [envelope])


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


def may_see(actor: Principal, top_up: TopUp) -> bool:
    return actor.has_any(Role.ADMIN, Role.OPS) or (actor.has_any(Role.PLAYER) and actor.user_id == top_up.player_id)


@dataclass
class VerifyTopUpSession:
    """A player back from the checkout before the webhook: read the session back from the provider and, if it is
    paid, credit it through `TopUpMoney` (the webhook, whenever it comes, then finds it credited)."""

    money: TopUpMoney
    providers: CheckoutProviders
    stores: Stores = field(kw_only=True)

    async def __call__(self, run: Transactions, actor: Principal, *, player_id: str, top_up_id: str) -> TopUp:
        async def read(tx: Tx) -> TopUp:
            top_up = await self.stores.top_ups.get(tx, top_up_id)
            if top_up is None or top_up.player_id != player_id or not may_see(actor, top_up):
                raise not_found(top_up_id)
            return top_up

        top_up = await run(read)
        if top_up.status is not TopUpStatus.CREATED:
            return top_up
        provider = self.providers.providers.get(top_up.provider)
        if provider is None:
            raise TopUpError(
                ErrorKind.UNAVAILABLE, "provider_not_available", f"{top_up.provider} is not configured to verify"
            )
        try:
            session = await provider.retrieve_session(top_up.session_ref)
        except (CheckoutUnavailableError, CheckoutRefusedError) as err:
            raise provider_failure(err) from err
        return await self.observe(run, top_up, provider, session)

    async def observe(
        self, run: Transactions, top_up: TopUp, provider: CheckoutProvider, session: CheckoutSession
    ) -> TopUp:
        """Apply what the provider says of the session: paid credits (once), expired ends it, open changes nothing."""
        if not (session.paid or session.expired):
            return top_up
        if session.paid and (
            session.amount_total != top_up.amount
            or (session.currency or "").lower() != (currency_of(top_up, provider) or "").lower()
        ):
            raise TopUpError(
                ErrorKind.CONFLICT,
                "amount_mismatch",
                f"{provider.name} reports {session.amount_total} {session.currency} for top-up {top_up.id}",
            )

        async def apply(tx: Tx) -> TopUp:
            current = await self.stores.top_ups.get(tx, top_up.id, lock=True)
            assert current is not None
            await self.money.ledger.declare(tx, top_up_accounts(current))
            if session.paid:
                credited, _ = await self.money.credit(tx, current, payment_ref=session.payment_ref, cause=None)
                return credited
            await self.money.settle_unpaid(tx, current, TopUpStatus.EXPIRED)
            return await self.stores.top_ups.get(tx, top_up.id) or current

        with ledger_refusals():
            return await run(apply)


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
    stores: Stores = field(kw_only=True)

    def _is_trusted(self, env: Envelope[Any]) -> bool:
        return env.source in self.trusted_sources and isinstance(env.data, PaymentEventReceived) and env.data.verified

    async def prepare(self, tx: Tx, envs: Sequence[Envelope[EventPayload]]) -> None:
        """Every top-up the poll names (id order), then all their accounts in one ordered lock."""
        events = [e.data for e in envs if isinstance(e.data, PaymentEventReceived) and self._is_trusted(e)]
        if not events:
            return
        top_ups = await self.stores.top_ups.lock_matching(
            tx,
            top_up_ids=sorted({e.top_up_id for e in events if e.top_up_id}),
            session_refs=sorted({e.session_ref for e in events if e.session_ref}),
            payment_refs=sorted({e.payment_ref for e in events if e.payment_ref}),
        )
        refs: set[AccountRef] = set()
        for t in top_ups:
            refs.update(top_up_accounts(t))
        if refs:
            await self.money.ledger.declare(tx, refs)

    async def handle(self, tx: Tx, env: Envelope[EventPayload]) -> str:
        if isinstance(env.data, ProviderEventReceived | VerificationEventReceived):
            self._count(env.data.provider.value, "ignored")  # payouts' (the inbox row says it was seen)
            return "ignored"
        ev = self._trusted(env)
        top_up = await self.stores.top_ups.find(
            tx, top_up_id=ev.top_up_id, session_ref=ev.session_ref, payment_ref=ev.payment_ref
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
        outcome = await self._apply(tx, env, ev, top_up)
        self._count(ev.provider.value, outcome)
        log.info(
            "payment event %s (%s): %s", ev.provider_event_id, ev.status.value, outcome, extra={"top_up_id": top_up.id}
        )
        return outcome

    async def _apply(self, tx: Tx, env: Envelope[Any], ev: PaymentEventReceived, top_up: TopUp) -> str:
        cause = str(env.id)
        if ev.status is PaymentEventStatus.PAID:
            assert ev.amount is not None  # the contract requires it on paid
            if (ev.amount.asset, ev.amount.amount) != (top_up.asset, top_up.amount):
                raise EventRefusal(
                    "amount_mismatch",
                    f"{ev.provider_event_id} paid {ev.amount.amount} {ev.amount.asset} for top-up {top_up.id} of "
                    f"{top_up.amount} {top_up.asset}",
                )
            _, outcome = await self.money.credit(tx, top_up, payment_ref=ev.payment_ref, cause=cause)
            return outcome
        if ev.status is PaymentEventStatus.FAILED:
            return await self.money.settle_unpaid(tx, top_up, TopUpStatus.FAILED)
        if ev.status is PaymentEventStatus.EXPIRED:
            return await self.money.settle_unpaid(tx, top_up, TopUpStatus.EXPIRED)
        assert ev.adjustment_ref is not None  # the contract requires it on an adjustment
        assert ev.amount is not None
        return await self.money.adjust(
            tx,
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


__all__ = [
    "TRUSTED_SOURCES",
    "ApplyPaymentEvents",
    "CheckoutProviders",
    "CreateTopUpSession",
    "TopUpError",
    "TopUpMoney",
    "VerifyTopUpSession",
    "may_see",
    "not_found",
]
