"""Claims (a player claims their balance; a claim is decided a batch at a time by `ClaimIntake`), what payouts last
said it can pay, and the holds ops decide."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import HeaderParameter, JSONBody, QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED
from pydantic import Field

from prizeflow_contracts.envelope import CORRELATION_ID_PATTERN
from prizeflow_contracts.ids import Identifier, Reason
from prizeflow_contracts.money import SignedMinorUnits
from prizeflow_contracts.providers import PayoutDestination
from prizeflow_rewards.application.claims import ClaimIntake, ReviewHold
from prizeflow_rewards.application.claims.submit import ClaimRequest
from prizeflow_rewards.application.fx import IssueQuote, QuoteMarket, requotes
from prizeflow_rewards.entrypoints.http.common import (
    KEY_PATTERN,
    PLAYER,
    STAFF,
    Body,
    Queries,
    claim_view,
    own_or_staff,
    principal,
)
from prizeflow_runtime.auth import Role
from prizeflow_runtime.errors import UseCaseError
from prizeflow_runtime.params import IdentifierPath
from prizeflow_runtime.principal import Principal


class ClaimIn(Body):
    asset: Annotated[str, Field(min_length=1, max_length=12, description="Asset code, e.g. USDC")]
    amount: SignedMinorUnits
    destination: PayoutDestination
    quote_id: Identifier | None = Field(
        default=None,
        description="A conversion quote (POST /fx/quotes) for this asset and amount: the payout pays its target",
    )


class ReviewIn(Body):
    reason: Reason | None = None


class RejectIn(Body):
    reason: Reason


class ClaimsController(Controller):
    path = "/claims"
    tags = ["claims"]  # noqa: RUF012 - Litestar reads it as a class attribute

    @post("/", guards=PLAYER, status_code=HTTP_201_CREATED)
    async def submit(  # noqa: PLR0917 - Litestar injects parameters by name
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[ClaimIn],
        claim_intake: NamedDependency[ClaimIntake],
        quote_market: NamedDependency[QuoteMarket],
        issue_quote: NamedDependency[IssueQuote],
        idempotency_key: Annotated[str | None, HeaderParameter(name="Idempotency-Key", pattern=KEY_PATTERN)] = None,
        correlation_id: Annotated[
            str | None, HeaderParameter(name="X-Correlation-Id", pattern=CORRELATION_ID_PATTERN)
        ] = None,
    ) -> dict[str, Any]:
        p = principal(request)
        market = await quote_market(data.quote_id) if data.quote_id is not None else None
        try:
            claim, created = await claim_intake.submit(
                ClaimRequest(
                    p,
                    p.user_id,
                    data.asset,
                    data.amount,
                    data.destination,
                    idempotency_key,
                    correlation_id,
                    quote_id=data.quote_id,
                    market=market,
                )
            )
        except UseCaseError as err:
            if not requotes(err) or data.quote_id is None:
                raise
            raise await _with_new_quote(err, issue_quote, p, data.quote_id, quote_market) from err
        return {**claim.player_view(), "created": created}

    @get("/{claim_id:str}")
    async def show(self, request: Request[Any, Any, Any], claim_id: IdentifierPath, queries: Queries) -> dict[str, Any]:
        claim = await queries.claim(claim_id)
        if not principal(request).has_any(Role.APPROVER):  # approvers read the claim behind a payout they decide
            own_or_staff(request, claim.player_id)
        return claim_view(request, claim)


async def _with_new_quote(
    err: UseCaseError, issue_quote: IssueQuote, p: Principal, quote_id: str, quote_market: QuoteMarket
) -> UseCaseError:
    """An expired or moved quote's refusal, carrying a new quote for the same conversion (`new_quote`); if none can
    be issued now (the rates provider down or stale), the refusal says why instead (`new_quote_error`)."""
    old = await quote_market.quote(quote_id)
    assert old is not None  # only a quote that exists expires or moves
    t = old.terms
    try:
        new = await issue_quote(p, p.user_id, source=t.pair.source, target=t.pair.target, amount=t.source_amount)
    except UseCaseError as failed:
        return UseCaseError(err.kind, err.code, err.detail, **err.extra, new_quote=None, new_quote_error=failed.code)
    return UseCaseError(err.kind, err.code, err.detail, **err.extra, new_quote=new.view())


class PayoutRoutesController(Controller):
    path = "/payout-routes"
    tags = ["claims"]  # noqa: RUF012 - Litestar reads it as a class attribute

    @get("/", guards=STAFF)
    async def routes(self, queries: Queries) -> dict[str, Any]:
        """What payouts last published it can pay: claims to anything else are refused (no_payout_route)."""
        return {"routes": await queries.routes()}


class HoldsController(Controller):
    path = "/holds"
    tags = ["holds"]  # noqa: RUF012 - Litestar reads it as a class attribute

    @get("/", guards=STAFF)
    async def list_holds(
        self, queries: Queries, limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100
    ) -> list[Any]:
        return [c.view() for c in await queries.held_claims(limit=limit)]

    @post("/{claim_id:str}/release", guards=STAFF, status_code=HTTP_200_OK)
    async def release(
        self,
        request: Request[Any, Any, Any],
        claim_id: IdentifierPath,
        review_hold: NamedDependency[ReviewHold],
        data: JSONBody[ReviewIn | None] = None,
    ) -> dict[str, Any]:
        claim = await review_hold.release(principal(request), claim_id, reason=data.reason if data else None)
        return claim.view()

    @post("/{claim_id:str}/reject", guards=STAFF, status_code=HTTP_200_OK)
    async def reject(
        self,
        request: Request[Any, Any, Any],
        claim_id: IdentifierPath,
        data: JSONBody[RejectIn],
        review_hold: NamedDependency[ReviewHold],
    ) -> dict[str, Any]:
        claim = await review_hold.reject(principal(request), claim_id, reason=data.reason)
        return claim.view()


__all__ = ["ClaimsController", "HoldsController", "PayoutRoutesController", "RejectIn"]
