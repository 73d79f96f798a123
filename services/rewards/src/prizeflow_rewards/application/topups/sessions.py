"""A player's top-up sessions at a checkout provider: the provider is called between two transactions, never
inside one.

- `CreateTopUpSession`: checks what may be topped up (redeemable fiat only, the provider's currency, per-top-up
  min/max, the player's daily cap), asks the provider for a session, records it. The top-up row is written only
  with the provider's answer. Its id is derived from (player, request key) and is the provider's Idempotency-Key:
  a retry after any failure gets the same session back, so nothing is ever half-created and no reconciler is
  needed (a session whose answer was lost is never shown to anyone and expires at the provider).
- `VerifyTopUpSession`: a player back from the checkout before the webhook: the session read back from the
  provider, and if paid, credited through `TopUpMoney`.
- `CompleteSandboxCheckout`: the sandbox provider's page (dev profile): the payer pays or lets the session expire,
  then the top-up is verified as a player coming back from a real checkout would have it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from prizeflow_contracts.money import ASSETS
from prizeflow_rewards.application.books import Books
from prizeflow_rewards.application.common import Clock, ledger_refusals, utcnow
from prizeflow_rewards.application.ports import (
    CheckoutProvider,
    CheckoutRefusedError,
    CheckoutRequest,
    CheckoutSession,
    CheckoutUnavailableError,
    SandboxPayer,
)
from prizeflow_rewards.application.queries import RewardsQueries
from prizeflow_rewards.application.topups.money import TopUpMoney
from prizeflow_rewards.application.topups.shared import (
    CheckoutProviders,
    TopUpError,
    currency_of,
    may_see,
    not_found,
    provider_failure,
    refused,
)
from prizeflow_rewards.domain.topups import (
    Refusal,
    TopUp,
    TopUpLimits,
    TopUpRefusalCode,
    TopUpStatus,
    check_amount,
    top_up_accounts,
    top_up_id_for,
    topupable,
)
from prizeflow_rewards.metrics import RewardsMetrics
from prizeflow_runtime.errors import ErrorKind
from prizeflow_runtime.principal import Principal
from prizeflow_runtime.uow import UnitOfWork

log = logging.getLogger(__name__)


@dataclass
class CreateTopUpSession:
    uow: UnitOfWork[Books]
    providers: CheckoutProviders
    limits: TopUpLimits
    metrics: RewardsMetrics | None = None
    clock: Clock = utcnow

    async def __call__(
        self,
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
            raise refused(
                Refusal(TopUpRefusalCode.PROVIDER_NOT_AVAILABLE, f"provider {provider!r} does not take top-ups here"),
                self.metrics,
            )
        spec = ASSETS.get(asset)
        if spec is None:
            raise refused(Refusal(TopUpRefusalCode.UNKNOWN_ASSET, f"unknown asset {asset!r}"), self.metrics)
        currency = topupable(spec, checkout.name, checkout.currency_scheme)
        if isinstance(currency, Refusal):
            raise refused(currency, self.metrics)
        top_up_id = top_up_id_for(player_id, request_key)

        async def check(books: Books) -> TopUp | None:
            existing = await self._existing(books, top_up_id, player_id, asset, amount, checkout.name)
            if existing is None:
                await self._check_limits(books, player_id, asset, amount)
            return existing

        existing = await self.uow.run(check)
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

        async def record(books: Books) -> tuple[TopUp, bool]:
            await books.top_ups.lock_player(player_id)
            existing = await self._existing(books, top_up_id, player_id, asset, amount, checkout.name)
            if existing is not None:  # a concurrent request under the same key recorded the same session
                return existing, False
            await self._check_limits(books, player_id, asset, amount)  # again, under the player's lock
            await books.top_ups.add(top_up)
            return top_up, True

        result = await self.uow.run(record)
        if self.metrics is not None and result[1]:
            self.metrics.top_ups.labels("created").inc()
        return result

    async def _existing(  # noqa: PLR0917 - the request's fields, compared as one
        self, books: Books, top_up_id: str, player_id: str, asset: str, amount: int, provider: str
    ) -> TopUp | None:
        existing = await books.top_ups.get(top_up_id)
        if existing is not None and not existing.same_request(player_id, asset, amount, provider):
            raise TopUpError(
                ErrorKind.CONFLICT, "idempotency_key_reused", "this Idempotency-Key was used for another top-up"
            )
        return existing

    async def _check_limits(self, books: Books, player_id: str, asset: str, amount: int) -> None:
        since = self.clock() - timedelta(days=1)
        today = await books.top_ups.open_or_credited_since(player_id, asset, since=since)
        refusal = check_amount(asset, amount, today, self.limits)
        if refusal is not None:
            raise refused(refusal, self.metrics)


@dataclass
class VerifyTopUpSession:
    """A player back from the checkout before the webhook: read the session back from the provider and, if it is
    paid, credit it through `TopUpMoney` (the webhook, whenever it comes, then finds it credited)."""

    uow: UnitOfWork[Books]
    money: TopUpMoney
    providers: CheckoutProviders

    async def __call__(self, actor: Principal, *, player_id: str, top_up_id: str) -> TopUp:
        async def read(books: Books) -> TopUp:
            top_up = await books.top_ups.get(top_up_id)
            if top_up is None or top_up.player_id != player_id or not may_see(actor, top_up):
                raise not_found(top_up_id)
            return top_up

        top_up = await self.uow.run(read)
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
        return await self.observe(top_up, provider, session)

    async def observe(self, top_up: TopUp, provider: CheckoutProvider, session: CheckoutSession) -> TopUp:
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

        async def apply(books: Books) -> TopUp:
            current = await books.top_ups.get(top_up.id, lock=True)
            assert current is not None
            await books.ledger.declare(top_up_accounts(current))
            if session.paid:
                credited, _ = await self.money.credit(books, current, payment_ref=session.payment_ref, cause=None)
                return credited
            await self.money.settle_unpaid(books, current, TopUpStatus.EXPIRED)
            return await books.top_ups.get(top_up.id) or current

        with ledger_refusals():
            return await self.uow.run(apply)


@dataclass
class CompleteSandboxCheckout:
    """The sandbox checkout's page: the payer (anyone who may see the top-up) pays or lets the session expire, and
    the top-up is verified at once. A session naming no top-up the payer may see is not found."""

    sandbox: SandboxPayer
    verify: VerifyTopUpSession
    queries: RewardsQueries

    async def __call__(self, actor: Principal, session_ref: str, outcome: Literal["paid", "expired"]) -> dict[str, Any]:
        try:
            session = await self.sandbox.retrieve_session(session_ref)
        except CheckoutRefusedError as err:
            raise not_found(session_ref) from err
        top_up = await self.queries.top_up_entity(session.top_up_id or "")
        if top_up is None or not may_see(actor, top_up):
            raise not_found(session_ref)
        await self.sandbox.complete(session_ref, outcome)
        done = await self.verify(actor, player_id=top_up.player_id, top_up_id=top_up.id)
        return await self.queries.top_up(done.id) or done.view()


__all__ = ["CompleteSandboxCheckout", "CreateTopUpSession", "VerifyTopUpSession"]
