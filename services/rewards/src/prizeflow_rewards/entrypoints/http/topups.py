"""Player top-ups: a checkout session at the provider, the wallet credited only on the provider's word; in the dev
profile with the sandbox provider, the sandbox's checkout page."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import HeaderParameter, JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED
from pydantic import Field

from prizeflow_contracts.envelope import CORRELATION_ID_PATTERN
from prizeflow_contracts.money import SignedMinorUnits
from prizeflow_rewards.application.topups import (
    CompleteSandboxCheckout,
    CreateTopUpSession,
    VerifyTopUpSession,
    not_found,
)
from prizeflow_rewards.entrypoints.http.common import KEY_PATTERN, PLAYER, Body, Queries, own_or_staff, principal
from prizeflow_runtime.http import ProblemError
from prizeflow_runtime.params import IdentifierPath


class TopUpSessionIn(Body):
    asset: Annotated[str, Field(min_length=1, max_length=12, description="Asset code, e.g. USD")]
    amount: SignedMinorUnits
    provider: Annotated[str | None, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")] = None
    idempotency_key: Annotated[
        str | None, Field(pattern=KEY_PATTERN, description="The same key returns the same session (or the header)")
    ] = None


class SandboxOutcomeIn(Body):
    outcome: Literal["paid", "expired"]


def request_key(header: str | None, body: str | None) -> str | None:
    if header is not None and body is not None and header != body:
        raise ProblemError(400, "idempotency_key_conflict", "the Idempotency-Key header and body field differ")
    return header if header is not None else body


class TopUpSessionsController(Controller):
    """Player top-ups: a checkout session at the provider; the wallet is credited only on the provider's word."""

    path = "/wallets/{player_id:str}/top-up-sessions"
    tags = ["top-ups"]  # noqa: RUF012 - Litestar reads it as a class attribute

    @post("/", guards=PLAYER, status_code=HTTP_201_CREATED)
    async def create(  # noqa: PLR0917 - Litestar injects parameters by name
        self,
        request: Request[Any, Any, Any],
        player_id: IdentifierPath,
        data: JSONBody[TopUpSessionIn],
        create_top_up: NamedDependency[CreateTopUpSession],
        idempotency_key: Annotated[str | None, HeaderParameter(name="Idempotency-Key", pattern=KEY_PATTERN)] = None,
        correlation_id: Annotated[
            str | None, HeaderParameter(name="X-Correlation-Id", pattern=CORRELATION_ID_PATTERN)
        ] = None,
    ) -> dict[str, Any]:
        p = principal(request)
        if p.user_id != player_id:
            raise ProblemError(403, "forbidden", "a player may only top up their own wallet")
        top_up, created = await create_top_up(
            p,
            player_id=player_id,
            asset=data.asset,
            amount=data.amount,
            provider=data.provider,
            request_key=request_key(idempotency_key, data.idempotency_key),
            correlation_id=correlation_id,
        )
        return {**top_up.view(), "created": created}

    @get("/{top_up_id:str}")
    async def show(
        self, request: Request[Any, Any, Any], player_id: IdentifierPath, top_up_id: IdentifierPath, queries: Queries
    ) -> dict[str, Any]:
        own_or_staff(request, player_id)
        view = await queries.top_up(top_up_id)
        if view is None or view["player_id"] != player_id:
            raise not_found(top_up_id)
        return view

    @post("/{top_up_id:str}/verify", status_code=HTTP_200_OK)
    async def verify(
        self,
        request: Request[Any, Any, Any],
        player_id: IdentifierPath,
        top_up_id: IdentifierPath,
        verify_top_up: NamedDependency[VerifyTopUpSession],
        queries: Queries,
    ) -> dict[str, Any]:
        own_or_staff(request, player_id)
        top_up = await verify_top_up(principal(request), player_id=player_id, top_up_id=top_up_id)
        return await queries.top_up(top_up.id) or top_up.view()


class SandboxCheckoutController(Controller):
    """The sandbox provider's checkout page (dev profile only): the payer pays, or lets the session expire; the
    top-up is then verified, as a player coming back from a real checkout would."""

    path = "/sandbox/checkout"
    tags = ["top-ups"]  # noqa: RUF012 - Litestar reads it as a class attribute

    @post("/{session_ref:str}/complete", status_code=HTTP_200_OK)
    async def complete(
        self,
        request: Request[Any, Any, Any],
        session_ref: IdentifierPath,
        data: JSONBody[SandboxOutcomeIn],
        complete_sandbox: NamedDependency[CompleteSandboxCheckout],
    ) -> dict[str, Any]:
        return await complete_sandbox(principal(request), session_ref, data.outcome)


__all__ = ["SandboxCheckoutController", "TopUpSessionsController", "request_key"]
