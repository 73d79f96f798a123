"""Admin API (Litestar): list, get, create, approve, reject, cancel, retry, mark manual payouts, quote.

Roles (prizeflow_runtime.auth): reading needs admin, approver or ops; approve/reject need `approver`
(admins configure, approvers decide: an admin who must approve also holds the approver role); cancel, retry
and create need `admin`; marking a manual payout paid/failed needs `ops` or `admin`; players have no access.
Refusals are `UseCaseError`s, rendered as problem details once by the runtime's app: no handler catches them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromQuery, JSONBody, QueryParameter, SkipValidation
from pydantic import BaseModel, ConfigDict

from prizeflow_contracts.errors import PayoutErrorCode
from prizeflow_contracts.ids import ProviderRef, Reason, XdrBase64, is_identifier
from prizeflow_contracts.money import Money, PayableMoney
from prizeflow_contracts.providers import PayoutDestination, PayoutInstruction, ProviderType
from prizeflow_payouts.application.admin import Actor, AdminError, PayoutAdmin
from prizeflow_payouts.application.balances import read_balances
from prizeflow_payouts.application.out_of_band import SettleOutOfBand
from prizeflow_payouts.application.payout_requests import new_correlation_id
from prizeflow_payouts.application.ports import ListFilter, PayoutQueries
from prizeflow_payouts.application.registry import ProviderRegistry
from prizeflow_payouts.domain.state import PayoutState
from prizeflow_runtime.auth import Principal, Role, require_roles
from prizeflow_runtime.errors import ErrorKind
from prizeflow_runtime.params import IdentifierPath, SerialPath

READERS = require_roles(Role.ADMIN, Role.APPROVER, Role.OPS)


Queries = NamedDependency[SkipValidation[PayoutQueries]]  # a Protocol: nothing to check at run time
Admin = NamedDependency[PayoutAdmin]
Outcomes = NamedDependency[SettleOutOfBand]
Registry = NamedDependency[ProviderRegistry]


class _Body(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DecisionBody(_Body):
    reason: Reason | None = None


class ReasonBody(_Body):
    reason: Reason


class MarkPaidBody(_Body):
    reference: ProviderRef
    reason: Reason | None = None


class MarkFailedBody(_Body):
    reason: Reason
    code: PayoutErrorCode = PayoutErrorCode.INVALID_REQUEST


class SignedXdrBody(_Body):
    signed_xdr: XdrBase64


class QuoteBody(_Body):
    amount: PayableMoney
    destination: PayoutDestination
    provider: ProviderType | None = None


class QuoteOut(_Body):
    provider: str
    amount: Money
    fee: Money
    receive_amount: Money
    quote_id: str | None
    expires_at: str | None


def _actor(request: Request[Any, Any, Any]) -> Actor:
    principal = request.user
    assert isinstance(principal, Principal)
    given = request.headers.get("x-correlation-id", "")
    cid = given if is_identifier(given) else new_correlation_id()
    return Actor(principal.user_id, frozenset(r.value for r in principal.roles), cid)


def summary(row: dict[str, Any]) -> dict[str, Any]:
    """A payout as the admin API shows it (no secrets live on the row; destinations are shown to operators)."""
    out = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}
    out.pop("lease_token", None)
    out.pop("request_hash", None)
    return out


class PayoutsController(Controller):
    path = "/payouts"
    tags = ["payouts"]  # noqa: RUF012 - Litestar reads this class attribute as is

    @get("/", guards=[READERS])
    async def list_payouts(  # noqa: PLR0917 - Litestar maps each query parameter to an argument
        self,
        queries: Queries,
        state_filter: Annotated[PayoutState | None, QueryParameter(name="state")] = None,
        provider: FromQuery[str | None] = None,
        asset: FromQuery[str | None] = None,
        player_id: FromQuery[str | None] = None,
        older_than_s: Annotated[int | None, QueryParameter(ge=0)] = None,
        newer_than_s: Annotated[int | None, QueryParameter(ge=0)] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
        offset: Annotated[int, QueryParameter(ge=0)] = 0,
    ) -> dict[str, Any]:
        f = ListFilter(
            state=state_filter.value if state_filter else None,
            provider=provider,
            asset=asset,
            player_id=player_id,
            older_than_s=older_than_s,
            newer_than_s=newer_than_s,
            limit=limit,
            offset=offset,
        )
        rows = await queries.list_payouts(f)
        return {"items": [summary(r) for r in rows], "limit": limit, "offset": offset}

    @get("/{payout_id:str}", guards=[READERS])
    async def get_payout(self, payout_id: IdentifierPath, queries: Queries) -> dict[str, Any]:
        row = await queries.get_payout(payout_id)
        if row is None:
            raise AdminError(ErrorKind.NOT_FOUND, "payout_not_found", f"no payout {payout_id}")
        return {
            **summary(row),
            **{key: [summary(r) for r in row[key]] for key in ("history", "attempts", "approvals")},
        }

    @post("/quote", guards=[require_roles(Role.ADMIN, Role.OPS)], status_code=200)
    async def quote(self, data: JSONBody[QuoteBody], admin: Admin) -> QuoteOut:
        instruction = PayoutInstruction(
            payout_id="quote", idempotency_key="quote", amount=data.amount, destination=data.destination
        )
        name, q = await admin.quote(instruction, data.provider)
        return QuoteOut(
            provider=name,
            amount=q.amount,
            fee=q.fee,
            receive_amount=q.receive_amount,
            quote_id=q.quote_id,
            expires_at=q.expires_at.isoformat() if q.expires_at else None,
        )

    @post("/{payout_id:str}/approve", guards=[require_roles(Role.APPROVER)], status_code=200)
    async def approve(
        self,
        request: Request[Any, Any, Any],
        payout_id: IdentifierPath,
        admin: Admin,
        data: JSONBody[DecisionBody | None] = None,
    ) -> dict[str, str]:
        state = await admin.approve(payout_id, _actor(request), data.reason if data else None)
        return {"payout_id": payout_id, "state": state}

    @post("/{payout_id:str}/reject", guards=[require_roles(Role.APPROVER)], status_code=200)
    async def reject(
        self, request: Request[Any, Any, Any], payout_id: IdentifierPath, data: JSONBody[ReasonBody], admin: Admin
    ) -> dict[str, str]:
        state = await admin.reject(payout_id, _actor(request), data.reason)
        return {"payout_id": payout_id, "state": state}

    @post("/{payout_id:str}/cancel", guards=[require_roles(Role.ADMIN)], status_code=200)
    async def cancel(
        self, request: Request[Any, Any, Any], payout_id: IdentifierPath, data: JSONBody[ReasonBody], admin: Admin
    ) -> dict[str, str]:
        state = await admin.cancel(payout_id, _actor(request), data.reason)
        return {"payout_id": payout_id, "state": state}

    @post("/{payout_id:str}/retry", guards=[require_roles(Role.ADMIN)], status_code=200)
    async def retry(
        self, request: Request[Any, Any, Any], payout_id: IdentifierPath, data: JSONBody[ReasonBody], admin: Admin
    ) -> dict[str, str]:
        state = await admin.retry(payout_id, _actor(request), data.reason)
        return {"payout_id": payout_id, "state": state}

    @post("/{payout_id:str}/mark-paid", guards=[require_roles(Role.OPS, Role.ADMIN)], status_code=200)
    async def mark_paid(
        self,
        request: Request[Any, Any, Any],
        payout_id: IdentifierPath,
        data: JSONBody[MarkPaidBody],
        outcomes: Outcomes,
    ) -> dict[str, str]:
        state = await outcomes.mark_paid(payout_id, _actor(request), data.reference, data.reason)
        return {"payout_id": payout_id, "state": state}

    @post("/{payout_id:str}/mark-failed", guards=[require_roles(Role.OPS, Role.ADMIN)], status_code=200)
    async def mark_failed(
        self,
        request: Request[Any, Any, Any],
        payout_id: IdentifierPath,
        data: JSONBody[MarkFailedBody],
        outcomes: Outcomes,
    ) -> dict[str, str]:
        state = await outcomes.mark_failed(payout_id, _actor(request), data.reason, data.code)
        return {"payout_id": payout_id, "state": state}

    @get("/{payout_id:str}/unsigned-xdr", guards=[READERS])
    async def unsigned_xdr(self, payout_id: IdentifierPath, outcomes: Outcomes) -> dict[str, Any]:
        """The envelope built for this payout (build-only and external signing): sign it out of band."""
        return await outcomes.unsigned_transaction(payout_id)

    @post("/{payout_id:str}/submit-signed", guards=[require_roles(Role.ADMIN)], status_code=202)
    async def submit_signed(
        self,
        request: Request[Any, Any, Any],
        payout_id: IdentifierPath,
        data: JSONBody[SignedXdrBody],
        outcomes: Outcomes,
    ) -> dict[str, Any]:
        """Verify an externally signed envelope (same transaction hash, valid signature) and queue its submission."""
        done = await outcomes.submit_signed(payout_id, data.signed_xdr, _actor(request))
        return {"payout_id": payout_id, "queued": True, "tx_hash": done.tx_hash, "payout_ids": list(done.payout_ids)}


class DisagreementsController(Controller):
    """Provider reports that contradicted a payout's state (domain/disagreement.py): checked against the provider's
    current status, `stale` when it agreed with us, `contradiction` when a person must decide."""

    path = "/disagreements"
    tags = ["payouts"]  # noqa: RUF012

    @get("/", guards=[READERS])
    async def list_disagreements(
        self,
        queries: Queries,
        status: Annotated[str | None, QueryParameter(pattern=r"^(checking|stale|contradiction|acknowledged)$")] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
    ) -> dict[str, Any]:
        rows = await queries.list_disagreements(status=status, limit=limit)
        return {"items": [summary(r) for r in rows]}

    @get("/{disagreement_id:str}", guards=[READERS])
    async def get_disagreement(self, disagreement_id: SerialPath, queries: Queries) -> dict[str, Any]:
        row = await queries.get_disagreement(disagreement_id)
        if row is None:
            raise AdminError(ErrorKind.NOT_FOUND, "disagreement_not_found", f"no disagreement {disagreement_id}")
        return summary(row)

    @post("/{disagreement_id:str}/acknowledge", guards=[require_roles(Role.ADMIN)], status_code=200)
    async def acknowledge(
        self,
        request: Request[Any, Any, Any],
        disagreement_id: SerialPath,
        data: JSONBody[ReasonBody],
        outcomes: Outcomes,
    ) -> dict[str, Any]:
        """A person's decision on a contradiction, on record (audited). It moves no money and no payout."""
        return await outcomes.acknowledge_contradiction(disagreement_id, _actor(request), data.reason)


class ProvidersController(Controller):
    path = "/providers"
    tags = ["payouts"]  # noqa: RUF012

    @get("/", guards=[require_roles(Role.ADMIN, Role.OPS)])
    async def list_providers(self, registry: Registry) -> dict[str, Any]:
        """Configured providers and capabilities; secrets (and the names of their env vars) never appear. A rail
        that pays from an account at its provider also shows that account's balance, read now (`balance`: its
        balances per currency with the operator's low threshold, or why it could not be read)."""
        balances = await read_balances(registry)
        return {
            "providers": [
                {**e.public, **({"balance": balances[e.name].public()} if e.name in balances else {})} for e in registry
            ]
        }


__all__ = ["DisagreementsController", "PayoutsController", "ProvidersController"]
