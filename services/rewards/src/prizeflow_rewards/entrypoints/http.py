"""HTTP API: campaigns/pools (admin), wallets (player: own only; admin/ops: all), top-ups (player), claims,
holds (ops); in the dev profile with the sandbox provider, the sandbox's checkout page.

Every route that writes runs its transaction through `RewardsApi.run`: a transaction that loses a deadlock or a
serialization failure is run again, whole (bounded, with jitter); if it still loses, the answer is a 503 problem
with `Retry-After`, never a 500. A use case's refusal (`UseCaseError`) rolls the transaction back and is turned
into problem details by the runtime's app, once for every route. Claims are decided a batch at a time
(`RewardsApi.claim_intake`, `adapters/claim_intake.py`).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, TypeVar

from litestar import Controller, Request, Response, Router, get, post, put
from litestar.di import NamedDependency
from litestar.params import FromQuery, HeaderParameter, JSONBody, QueryParameter
from litestar.response import Stream
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from prizeflow_contracts.envelope import CORRELATION_ID_PATTERN
from prizeflow_contracts.ids import IDENTIFIER_PATTERN, Identifier, Reason
from prizeflow_contracts.money import AssetCode, PositiveMinorUnits, SignedMinorUnits
from prizeflow_contracts.providers import PayoutDestination
from prizeflow_rewards.adapters.checkout_sandbox import SandboxCheckout
from prizeflow_rewards.adapters.claim_intake import PgClaimIntake
from prizeflow_rewards.adapters.transactions import (
    CommitOutcomeUnknownError,
    RetryPolicy,
    TransactionContendedError,
    retry_transaction,
)
from prizeflow_rewards.application.campaigns import ChangeCampaignStatus, CloseCampaign, CreateCampaign, FundCampaign
from prizeflow_rewards.application.claims import Claim, ReviewHold, SubmitClaim
from prizeflow_rewards.application.claims.submit import ClaimRequest
from prizeflow_rewards.application.corrections import (
    DecideCorrection,
    LedgerReads,
    Proposal,
    ProposeCorrection,
    transfer_view,
)
from prizeflow_rewards.application.exports import ExportLedger
from prizeflow_rewards.application.ports import CheckoutRefusedError, Ledger
from prizeflow_rewards.application.queries import RewardsQueries
from prizeflow_rewards.application.rounds import RoundMoney
from prizeflow_rewards.application.topups import CreateTopUpSession, VerifyTopUpSession, may_see, not_found
from prizeflow_rewards.application.wallets import SetRiskFlag, TopUp
from prizeflow_rewards.domain.campaigns import CampaignStatus
from prizeflow_rewards.domain.corrections import CorrectionStatus
from prizeflow_rewards.domain.ledger import TransferKind
from prizeflow_rewards.metrics import RewardsMetrics
from prizeflow_runtime.admin_http import correlation_id_of
from prizeflow_runtime.auth import Principal, Role, require_roles
from prizeflow_runtime.group_commit import SetAside
from prizeflow_runtime.http import ProblemError, problem_response
from prizeflow_runtime.params import IdentifierPath

T = TypeVar("T")


@dataclass
class RewardsApi:
    """What the controllers need, built once in bootstrap and injected as `api`."""

    sessions: async_sessionmaker[AsyncSession]
    ledger: Ledger
    source: str
    create_campaign: CreateCampaign
    fund_campaign: FundCampaign
    change_status: ChangeCampaignStatus
    rounds: RoundMoney
    submit_claim: SubmitClaim
    review: ReviewHold
    top_up: TopUp
    metrics: RewardsMetrics | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    queries: RewardsQueries | None = None
    set_risk_flag: SetRiskFlag | None = None
    create_top_up: CreateTopUpSession | None = None
    verify_top_up: VerifyTopUpSession | None = None
    # The sandbox checkout's page, served only in the dev profile with the sandbox provider.
    sandbox: SandboxCheckout | None = None
    close_campaign: CloseCampaign | None = None
    propose_correction: ProposeCorrection | None = None
    decide_correction: DecideCorrection | None = None
    ledger_reads: LedgerReads | None = None
    exports: ExportLedger | None = None
    intake_max_batch: int = 500

    def __post_init__(self) -> None:
        self.claim_intake = PgClaimIntake(
            self.sessions, self.submit_claim, retry=self.retry, metrics=self.metrics, max_batch=self.intake_max_batch
        )

    def _count_retry(self, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.transaction_retries.labels(outcome).inc()

    @property
    def read(self) -> RewardsQueries:
        assert self.queries is not None, "the composition root wires the queries"
        return self.queries

    async def run(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """`work` in one transaction (`tx`), run again whole if it loses a deadlock or a serialization failure;
        after `retry.attempts` it raises `TransactionContendedError` (a 503 with Retry-After)."""

        async def attempt() -> T:
            async with self.tx() as session:
                return await work(session)

        return await retry_transaction(attempt, policy=self.retry, on_retry=self._count_retry)

    @asynccontextmanager
    async def tx(self) -> AsyncIterator[AsyncSession]:
        """One transaction; any exception (a use case's refusal too) rolls everything back."""
        async with self.sessions() as session, session.begin():
            yield session


Api = NamedDependency[RewardsApi]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CampaignIn(_Body):
    campaign_id: Identifier
    name: Annotated[str, Field(min_length=1, max_length=200)]
    asset: AssetCode
    low_threshold: PositiveMinorUnits | None = None


class FundIn(_Body):
    amount: PositiveMinorUnits
    reference: Identifier = Field(description="Funding reference; the same reference funds once")


class CloseIn(_Body):
    reason: Reason


# `<kind>:<owner>`: the owner is an id by the contracts' rule (a player, a campaign, a round, `platform`...); which
# kinds there are is the use case's to say (it names them).
ACCOUNT_NAME_PATTERN = r"^[a-z][a-z_]{0,31}:" + IDENTIFIER_PATTERN.removeprefix("^")
AccountName = Annotated[
    str, Field(pattern=ACCOUNT_NAME_PATTERN, max_length=200, description="<kind>:<owner>, e.g. treasury:platform")
]


class CorrectionIn(_Body):
    debit_account: AccountName
    credit_account: AccountName
    asset: AssetCode
    amount: PositiveMinorUnits
    reason: Reason
    reference: Identifier = Field(description="The same reference proposes once")
    corrects_transfer_id: uuid.UUID | None = None


class ApproveIn(_Body):
    reason: Reason | None = None


class ClaimIn(_Body):
    asset: Annotated[str, Field(min_length=1, max_length=12, description="Asset code, e.g. USDC")]
    amount: SignedMinorUnits
    destination: PayoutDestination


class ReviewIn(_Body):
    reason: Reason | None = None


class RejectIn(_Body):
    reason: Reason


class TopUpIn(_Body):
    asset: AssetCode
    amount: PositiveMinorUnits
    provider: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
    reference: Identifier


_KEY_PATTERN = r"^[A-Za-z0-9:_\-]{1,128}$"


class TopUpSessionIn(_Body):
    asset: Annotated[str, Field(min_length=1, max_length=12, description="Asset code, e.g. USD")]
    amount: SignedMinorUnits
    provider: Annotated[str | None, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")] = None
    idempotency_key: Annotated[
        str | None, Field(pattern=_KEY_PATTERN, description="The same key returns the same session (or the header)")
    ] = None


class SandboxOutcomeIn(_Body):
    outcome: Literal["paid", "expired"]


class RiskFlagIn(_Body):
    flagged: bool
    reason: Reason | None = None


def principal(request: Request[Any, Any, Any]) -> Principal:
    user = request.user
    assert isinstance(user, Principal)
    return user


def own_or_staff(request: Request[Any, Any, Any], player_id: str) -> None:
    """BOLA guard: a player token reads only its own wallet and claims; admin and ops read all."""
    p = principal(request)
    if p.has_any(Role.ADMIN, Role.OPS):
        return
    if p.has_any(Role.PLAYER) and p.user_id == player_id:
        return
    raise ProblemError(403, "forbidden", "a player may only read their own wallet and claims")


ADMIN = [require_roles(Role.ADMIN)]
STAFF = [require_roles(Role.ADMIN, Role.OPS)]


def claim_view(request: Request[Any, Any, Any], claim: Claim) -> dict[str, Any]:
    """Staff (admin, ops, approver) see why a claim waits, with the rules' numbers; anyone else (the player it
    pays) sees the next step only: never a threshold, window, count or score."""
    if principal(request).has_any(Role.ADMIN, Role.OPS, Role.APPROVER):
        return claim.view()
    return claim.player_view()


class CampaignsController(Controller):
    path = "/campaigns"
    tags = ["campaigns"]  # noqa: RUF012 - Litestar reads it as a class attribute

    @post("/", guards=ADMIN, status_code=HTTP_201_CREATED)
    async def create(self, request: Request[Any, Any, Any], data: JSONBody[CampaignIn], api: Api) -> dict[str, Any]:
        async def work(s: AsyncSession) -> dict[str, Any]:
            c = await api.create_campaign(
                s,
                principal(request),
                campaign_id=data.campaign_id,
                name=data.name,
                asset=data.asset,
                low_threshold=data.low_threshold,
                correlation_id=correlation_id_of(request),
            )
            return (await api.read.figures(s, [c]))[c.id]

        return await api.run(work)

    @get("/", guards=STAFF)
    async def list_all(self, api: Api) -> list[dict[str, Any]]:
        async with api.tx() as s:
            return list((await api.read.figures(s, await api.read.campaigns(s))).values())

    @get("/{campaign_id:str}", guards=STAFF)
    async def show(self, campaign_id: IdentifierPath, api: Api) -> dict[str, Any]:
        async with api.tx() as s:
            c = await api.read.campaign(s, campaign_id)
            return (await api.read.figures(s, [c]))[c.id]

    @post("/{campaign_id:str}/fund", guards=ADMIN, status_code=HTTP_200_OK)
    async def fund(
        self, request: Request[Any, Any, Any], campaign_id: IdentifierPath, data: JSONBody[FundIn], api: Api
    ) -> dict[str, Any]:
        async def work(s: AsyncSession) -> dict[str, Any]:
            applied = await api.fund_campaign(
                s,
                principal(request),
                campaign_id=campaign_id,
                amount=data.amount,
                reference=data.reference,
                correlation_id=correlation_id_of(request),
            )
            c = await api.read.campaign(s, campaign_id)
            return {**(await api.read.figures(s, [c]))[c.id], "applied": applied}

        return await api.run(work)

    async def _status(
        self, request: Request[Any, Any, Any], campaign_id: str, target: CampaignStatus, api: RewardsApi
    ) -> dict[str, Any]:
        async def work(s: AsyncSession) -> dict[str, Any]:
            c = await api.change_status(
                s, principal(request), campaign_id=campaign_id, target=target, correlation_id=correlation_id_of(request)
            )
            return (await api.read.figures(s, [c]))[c.id]

        return await api.run(work)

    @post("/{campaign_id:str}/pause", guards=ADMIN, status_code=HTTP_200_OK)
    async def pause(self, request: Request[Any, Any, Any], campaign_id: IdentifierPath, api: Api) -> dict[str, Any]:
        return await self._status(request, campaign_id, CampaignStatus.PAUSED, api)

    @post("/{campaign_id:str}/resume", guards=ADMIN, status_code=HTTP_200_OK)
    async def resume(self, request: Request[Any, Any, Any], campaign_id: IdentifierPath, api: Api) -> dict[str, Any]:
        return await self._status(request, campaign_id, CampaignStatus.ACTIVE, api)

    @post("/{campaign_id:str}/close", guards=ADMIN, status_code=HTTP_200_OK)
    async def close(
        self, request: Request[Any, Any, Any], campaign_id: IdentifierPath, data: JSONBody[CloseIn], api: Api
    ) -> dict[str, Any]:
        """Close for good: the pool's free remainder goes back to the treasury (one `pool_sweep` transfer)."""
        close = api.close_campaign
        assert close is not None, "the composition root wires it"

        async def work(s: AsyncSession) -> dict[str, Any]:
            done = await close(
                s,
                principal(request),
                campaign_id=campaign_id,
                reason=data.reason,
                correlation_id=correlation_id_of(request),
            )
            figures = (await api.read.figures(s, [done.campaign]))[done.campaign.id]
            transfer = str(done.transfer_id) if done.transfer_id else None
            return {**figures, "swept": done.swept, "transfer_id": transfer, "changed": done.changed}

        return await api.run(work)

    @post("/{campaign_id:str}/held/release", guards=ADMIN, status_code=HTTP_200_OK)
    async def release_held(
        self, request: Request[Any, Any, Any], campaign_id: IdentifierPath, api: Api
    ) -> dict[str, Any]:
        async def work(s: AsyncSession) -> dict[str, Any]:
            return await api.rounds.release_held(
                s, principal(request), campaign_id=campaign_id, correlation_id=correlation_id_of(request)
            )

        return await api.run(work)


class WalletsController(Controller):
    path = "/wallets"
    tags = ["wallets"]  # noqa: RUF012 - Litestar reads it as a class attribute

    @get("/{player_id:str}")
    async def balances(self, request: Request[Any, Any, Any], player_id: IdentifierPath, api: Api) -> dict[str, Any]:
        own_or_staff(request, player_id)
        async with api.tx() as s:
            return {
                "player_id": player_id,
                "balances": await api.read.wallet_balances(s, player_id),
                "receivables": await api.read.receivables(s, player_id),
            }

    @get("/{player_id:str}/transactions")
    async def history(  # noqa: PLR0917 - Litestar injects query parameters by name
        self,
        request: Request[Any, Any, Any],
        player_id: IdentifierPath,
        api: Api,
        asset: FromQuery[str | None] = None,
        kind: FromQuery[TransferKind | None] = None,
        cursor: FromQuery[str | None] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
    ) -> dict[str, Any]:
        own_or_staff(request, player_id)
        async with api.tx() as s:
            return await api.read.wallet_history(s, player_id, asset=asset, kind=kind, cursor=cursor, limit=limit)

    @get("/{player_id:str}/claims")
    async def claims(
        self,
        request: Request[Any, Any, Any],
        player_id: IdentifierPath,
        api: Api,
        limit: Annotated[int, QueryParameter(ge=1, le=100)] = 20,
    ) -> dict[str, Any]:
        """The player's claims (payout requests), newest first, each as `GET /claims/{claim_id}` shows it."""
        own_or_staff(request, player_id)
        async with api.tx() as s:
            found = await api.read.player_claims(s, player_id, limit=limit)
        return {"items": [claim_view(request, c) for c in found]}

    @post("/{player_id:str}/top-ups", guards=ADMIN, status_code=HTTP_200_OK)
    async def top_up(
        self, request: Request[Any, Any, Any], player_id: IdentifierPath, data: JSONBody[TopUpIn], api: Api
    ) -> dict[str, Any]:
        async def work(s: AsyncSession) -> dict[str, Any]:
            transfer_id, applied = await api.top_up(
                s,
                principal(request),
                player_id=player_id,
                asset=data.asset,
                amount=data.amount,
                provider=data.provider,
                reference=data.reference,
                correlation_id=correlation_id_of(request),
            )
            return {
                "transfer_id": transfer_id,
                "applied": applied,
                "balances": await api.read.wallet_balances(s, player_id),
            }

        return await api.run(work)


def request_key(header: str | None, body: str | None) -> str | None:
    if header is not None and body is not None and header != body:
        raise ProblemError(400, "idempotency_key_conflict", "the Idempotency-Key header and body field differ")
    return header if header is not None else body


class TopUpSessionsController(Controller):
    """Player top-ups: a checkout session at the provider; the wallet is credited only on the provider's word."""

    path = "/wallets/{player_id:str}/top-up-sessions"
    tags = ["top-ups"]  # noqa: RUF012 - Litestar reads it as a class attribute

    @post("/", guards=[require_roles(Role.PLAYER)], status_code=HTTP_201_CREATED)
    async def create(  # noqa: PLR0917 - Litestar injects parameters by name
        self,
        request: Request[Any, Any, Any],
        player_id: IdentifierPath,
        data: JSONBody[TopUpSessionIn],
        api: Api,
        idempotency_key: Annotated[str | None, HeaderParameter(name="Idempotency-Key", pattern=_KEY_PATTERN)] = None,
        correlation_id: Annotated[
            str | None, HeaderParameter(name="X-Correlation-Id", pattern=CORRELATION_ID_PATTERN)
        ] = None,
    ) -> dict[str, Any]:
        p = principal(request)
        if p.user_id != player_id:
            raise ProblemError(403, "forbidden", "a player may only top up their own wallet")
        create = api.create_top_up
        assert create is not None, "the composition root wires it"
        top_up, created = await create(
            api.run,
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
        self, request: Request[Any, Any, Any], player_id: IdentifierPath, top_up_id: IdentifierPath, api: Api
    ) -> dict[str, Any]:
        own_or_staff(request, player_id)
        async with api.tx() as s:
            view = await api.read.top_up(s, top_up_id)
        if view is None or view["player_id"] != player_id:
            raise not_found(top_up_id)
        return view

    @post("/{top_up_id:str}/verify", status_code=HTTP_200_OK)
    async def verify(
        self, request: Request[Any, Any, Any], player_id: IdentifierPath, top_up_id: IdentifierPath, api: Api
    ) -> dict[str, Any]:
        own_or_staff(request, player_id)
        verify = api.verify_top_up
        assert verify is not None, "the composition root wires it"
        top_up = await verify(api.run, principal(request), player_id=player_id, top_up_id=top_up_id)
        async with api.tx() as s:
            return await api.read.top_up(s, top_up.id) or top_up.view()


class SandboxCheckoutController(Controller):
    """The sandbox provider's checkout page (dev profile only): the payer pays, or lets the session expire; the
    top-up is then verified, as a player coming back from a real checkout would."""

    path = "/sandbox/checkout"
    tags = ["top-ups"]  # noqa: RUF012 - Litestar reads it as a class attribute

    @post("/{session_ref:str}/complete", status_code=HTTP_200_OK)
    async def complete(
        self, request: Request[Any, Any, Any], session_ref: IdentifierPath, data: JSONBody[SandboxOutcomeIn], api: Api
    ) -> dict[str, Any]:
        sandbox, verify = api.sandbox, api.verify_top_up
        assert sandbox is not None, "the composition root wires it in the dev profile"
        assert verify is not None
        p = principal(request)
        try:
            session = await sandbox.retrieve_session(session_ref)
        except CheckoutRefusedError as err:
            raise not_found(session_ref) from err
        async with api.tx() as s:
            top_up = await api.read.top_up_entity(s, session.top_up_id or "")
        if top_up is None or not may_see(p, top_up):
            raise not_found(session_ref)
        await sandbox.complete(session_ref, data.outcome)
        done = await verify(api.run, p, player_id=top_up.player_id, top_up_id=top_up.id)
        async with api.tx() as s:
            return await api.read.top_up(s, done.id) or done.view()


class PlayersController(Controller):
    path = "/players"
    tags = ["players"]  # noqa: RUF012 - Litestar reads it as a class attribute

    @put("/{player_id:str}/risk-flag", guards=STAFF)
    async def risk_flag(
        self, request: Request[Any, Any, Any], player_id: IdentifierPath, data: JSONBody[RiskFlagIn], api: Api
    ) -> dict[str, Any]:
        set_risk_flag = api.set_risk_flag
        assert set_risk_flag is not None, "the composition root wires it"

        async def work(s: AsyncSession) -> None:
            await set_risk_flag(
                s,
                principal(request),
                player_id=player_id,
                flagged=data.flagged,
                reason=data.reason,
                correlation_id=correlation_id_of(request),
            )

        await api.run(work)
        return {"player_id": player_id, "flagged": data.flagged}


class ClaimsController(Controller):
    path = "/claims"
    tags = ["claims"]  # noqa: RUF012 - Litestar reads it as a class attribute

    @post("/", guards=[require_roles(Role.PLAYER)], status_code=HTTP_201_CREATED)
    async def submit(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[ClaimIn],
        api: Api,
        idempotency_key: Annotated[
            str | None, HeaderParameter(name="Idempotency-Key", pattern=r"^[A-Za-z0-9:_\-]{1,128}$")
        ] = None,
        correlation_id: Annotated[
            str | None, HeaderParameter(name="X-Correlation-Id", pattern=CORRELATION_ID_PATTERN)
        ] = None,
    ) -> dict[str, Any]:
        p = principal(request)
        claim, created = await api.claim_intake.submit(
            ClaimRequest(p, p.user_id, data.asset, data.amount, data.destination, idempotency_key, correlation_id)
        )
        return {**claim.player_view(), "created": created}

    @get("/{claim_id:str}")
    async def show(self, request: Request[Any, Any, Any], claim_id: IdentifierPath, api: Api) -> dict[str, Any]:
        async with api.tx() as s:
            claim = await api.read.claim(s, claim_id)
        if not principal(request).has_any(Role.APPROVER):  # approvers read the claim behind a payout they decide
            own_or_staff(request, claim.player_id)
        return claim_view(request, claim)


class PayoutRoutesController(Controller):
    path = "/payout-routes"
    tags = ["claims"]  # noqa: RUF012 - Litestar reads it as a class attribute

    @get("/", guards=STAFF)
    async def routes(self, api: Api) -> dict[str, Any]:
        """What payouts last published it can pay: claims to anything else are refused (no_payout_route)."""
        async with api.tx() as s:
            return {"routes": await api.read.routes(s)}


class HoldsController(Controller):
    path = "/holds"
    tags = ["holds"]  # noqa: RUF012 - Litestar reads it as a class attribute

    @get("/", guards=STAFF)
    async def list_holds(self, api: Api, limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100) -> list[Any]:
        async with api.tx() as s:
            return [c.view() for c in await api.read.held_claims(s, limit=limit)]

    @post("/{claim_id:str}/release", guards=STAFF, status_code=HTTP_200_OK)
    async def release(
        self,
        request: Request[Any, Any, Any],
        claim_id: IdentifierPath,
        api: Api,
        data: JSONBody[ReviewIn | None] = None,
    ) -> dict[str, Any]:
        async def work(s: AsyncSession) -> dict[str, Any]:
            claim = await api.review.release(s, principal(request), claim_id, reason=data.reason if data else None)
            return claim.view()

        return await api.run(work)

    @post("/{claim_id:str}/reject", guards=STAFF, status_code=HTTP_200_OK)
    async def reject(
        self, request: Request[Any, Any, Any], claim_id: IdentifierPath, data: JSONBody[RejectIn], api: Api
    ) -> dict[str, Any]:
        async def work(s: AsyncSession) -> dict[str, Any]:
            claim = await api.review.reject(s, principal(request), claim_id, reason=data.reason)
            return claim.view()

        return await api.run(work)


CORRECTORS = [require_roles(Role.ADMIN, Role.OPS)]
# The second person of a correction holds the approver role, as for payouts: an admin alone never moves money.
APPROVERS = [require_roles(Role.APPROVER)]
LEDGER_READERS = [require_roles(Role.ADMIN, Role.OPS, Role.APPROVER)]


class LedgerController(Controller):
    """Two-person corrections (one proposes, another approves: one compensating transfer) and the ledger's
    transfers by flow or account."""

    path = "/ledger"
    tags = ["ledger"]  # noqa: RUF012 - Litestar reads it as a class attribute

    @post("/corrections", guards=CORRECTORS, status_code=HTTP_201_CREATED)
    async def propose(self, request: Request[Any, Any, Any], data: JSONBody[CorrectionIn], api: Api) -> dict[str, Any]:
        propose = api.propose_correction
        assert propose is not None, "the composition root wires it"
        proposal = Proposal(
            debit_account=data.debit_account,
            credit_account=data.credit_account,
            asset=data.asset,
            amount=data.amount,
            reason=data.reason,
            reference=data.reference,
            corrects_transfer_id=data.corrects_transfer_id,
        )

        async def work(s: AsyncSession) -> dict[str, Any]:
            c, created = await propose(s, principal(request), proposal, correlation_id=correlation_id_of(request))
            return {**c.view(), "created": created}

        return await api.run(work)

    @get("/corrections", guards=LEDGER_READERS)
    async def list_corrections(
        self,
        api: Api,
        correction_status: Annotated[CorrectionStatus | None, QueryParameter(name="status")] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
    ) -> dict[str, Any]:
        async with api.tx() as s:
            found = await self._reads(api).list_corrections(s, status=correction_status, limit=limit)
        return {"items": [c.view() for c in found]}

    @get("/contradictions", guards=LEDGER_READERS)
    async def list_contradictions(
        self, api: Api, limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100
    ) -> dict[str, Any]:
        """Later words against a final state (a payment for an expired top-up, a payout paid for a voided claim...),
        newest first: kept for a person (docs/runbooks/final-state-contradicted.md); nothing moved on them."""
        async with api.tx() as s:
            rows = await api.read.contradictions(s, limit=limit)
        return {"items": [{k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in r.items()} for r in rows]}

    @get("/corrections/{correction_id:str}", guards=LEDGER_READERS)
    async def show_correction(self, correction_id: IdentifierPath, api: Api) -> dict[str, Any]:
        async with api.tx() as s:
            return (await self._reads(api).correction(s, correction_id)).view()

    @post("/corrections/{correction_id:str}/approve", guards=APPROVERS, status_code=HTTP_200_OK)
    async def approve(
        self,
        request: Request[Any, Any, Any],
        correction_id: IdentifierPath,
        api: Api,
        data: JSONBody[ApproveIn | None] = None,
    ) -> dict[str, Any]:
        decide = api.decide_correction
        assert decide is not None, "the composition root wires it"

        async def work(s: AsyncSession) -> dict[str, Any]:
            reason = data.reason if data else None
            return (await decide.approve(s, principal(request), correction_id, reason=reason)).view()

        return await api.run(work)

    @post("/corrections/{correction_id:str}/reject", guards=LEDGER_READERS, status_code=HTTP_200_OK)
    async def reject(
        self, request: Request[Any, Any, Any], correction_id: IdentifierPath, data: JSONBody[RejectIn], api: Api
    ) -> dict[str, Any]:
        decide = api.decide_correction
        assert decide is not None, "the composition root wires it"

        async def work(s: AsyncSession) -> dict[str, Any]:
            return (await decide.reject(s, principal(request), correction_id, reason=data.reason)).view()

        return await api.run(work)

    @get("/transfers", guards=STAFF)
    async def transfers(
        self,
        api: Api,
        correlation_id: Annotated[str | None, QueryParameter(pattern=CORRELATION_ID_PATTERN)] = None,
        account: Annotated[str | None, QueryParameter(min_length=3, max_length=200)] = None,
        before: Annotated[int | None, QueryParameter(ge=1)] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
    ) -> dict[str, Any]:
        """Newest first; `account` is `<kind>:<owner>` (every asset); `before`: a previous page's `next_before`."""
        async with api.tx() as s:
            found = await self._reads(api).transfers(
                s, correlation_id=correlation_id, account=account, before_seq=before, limit=limit
            )
        return {
            "items": [transfer_view(t) for t in found],
            "next_before": found[-1].seq if len(found) == limit else None,
        }

    @staticmethod
    def _reads(api: RewardsApi) -> LedgerReads:
        assert api.ledger_reads is not None, "the composition root wires it"
        return api.ledger_reads


def csv_response(body: AsyncIterator[bytes], filename: str) -> Stream:
    return Stream(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"},
    )


class ExportsController(Controller):
    """Finance exports, streamed CSV (`application/exports.py`): the ledger's transfers of a period, and a player's
    wallet movements with their running balance. The request is checked before the first byte."""

    path = "/v1"
    tags = ["exports"]  # noqa: RUF012 - Litestar reads it as a class attribute

    @get("/admin/exports/ledger.csv", guards=LEDGER_READERS, media_type="text/csv")
    async def ledger_csv(
        self,
        api: Api,
        since: FromQuery[str | None] = None,
        until: FromQuery[str | None] = None,
        asset: FromQuery[str | None] = None,
    ) -> Stream:
        exports = self._exports(api)
        query = exports.ledger_query(since=since, until=until, asset=asset)
        return csv_response(exports.ledger_csv(query), "ledger.csv")

    @get("/admin/exports/players/{player_id:str}/history.csv", guards=LEDGER_READERS, media_type="text/csv")
    async def player_history_csv(
        self,
        player_id: IdentifierPath,
        api: Api,
        since: FromQuery[str | None] = None,
        until: FromQuery[str | None] = None,
    ) -> Stream:
        exports = self._exports(api)
        period = exports.history_period(since=since, until=until)
        return csv_response(exports.history_csv(player_id, period), "history.csv")

    @get("/me/history.csv", guards=[require_roles(Role.PLAYER)], media_type="text/csv")
    async def own_history_csv(
        self,
        request: Request[Any, Any, Any],
        api: Api,
        since: FromQuery[str | None] = None,
        until: FromQuery[str | None] = None,
    ) -> Stream:
        """The signed-in player's own movements: the player is the token's subject, never a parameter."""
        exports = self._exports(api)
        period = exports.history_period(since=since, until=until)
        return csv_response(exports.history_csv(principal(request).user_id, period), "history.csv")

    @staticmethod
    def _exports(api: RewardsApi) -> ExportLedger:
        assert api.exports is not None, "the composition root wires it"
        return api.exports


def contended(request: Request[Any, Any, Any], exc: TransactionContendedError) -> Response[dict[str, Any]]:
    """A transaction that kept losing to concurrent ones: nothing was kept, so the client may simply retry."""
    response = problem_response(
        request,
        ProblemError(503, "transaction_contended", f"{exc}; nothing was changed, retry after {exc.retry_after_s}s"),
    )
    response.headers["Retry-After"] = str(exc.retry_after_s)
    return response


def still_busy(request: Request[Any, Any, Any], exc: SetAside) -> Response[dict[str, Any]]:
    """A claim whose player's wallet stayed held by other transactions through every wait: nothing was written."""
    response = problem_response(
        request,
        ProblemError(503, "transaction_contended", "the wallet stayed busy with other transactions; retry shortly"),
    )
    response.headers["Retry-After"] = "1"
    return response


def outcome_unknown(request: Request[Any, Any, Any], exc: CommitOutcomeUnknownError) -> Response[dict[str, Any]]:
    """The connection was lost while committing and the database could not be read back: the claim may or may not
    be written. The same request again with its Idempotency-Key is answered by what was."""
    response = problem_response(
        request,
        ProblemError(
            503,
            "commit_outcome_unknown",
            "the database connection was lost while committing; send the same request with the same Idempotency-Key "
            "to learn whether it was written",
        ),
    )
    response.headers["Retry-After"] = str(exc.retry_after_s)
    return response


def router(*, sandbox: bool = False) -> Router:
    """The controllers, with the handlers that turn a transaction still contended after its retries (or a claim
    whose wallet stayed busy) into a 503 problem with Retry-After, and a lost COMMIT that could not be read back
    into a 503 that says so (the app's catch-all would make them 500s). `sandbox`: the sandbox checkout page too
    (the dev profile's sandbox provider only)."""
    handlers = [*CONTROLLERS, SandboxCheckoutController] if sandbox else CONTROLLERS
    return Router(
        path="/",
        route_handlers=handlers,
        exception_handlers={
            TransactionContendedError: contended,
            SetAside: still_busy,
            CommitOutcomeUnknownError: outcome_unknown,
        },
    )


CONTROLLERS = [
    CampaignsController,
    WalletsController,
    TopUpSessionsController,
    PlayersController,
    ClaimsController,
    PayoutRoutesController,
    HoldsController,
    LedgerController,
    ExportsController,
]
