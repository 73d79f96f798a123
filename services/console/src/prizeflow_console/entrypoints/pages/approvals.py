"""Approvals: payouts waiting for approvers, one payout's facts and history, approve or reject with a reason.

The console draws the decision forms only for a person `Viewer.may_decide_payout` allows; the payouts service
checks the same again (self-approval, a second approval by the same person) and its refusal is shown as it is."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Final
from urllib.parse import quote

from litestar import Controller, Request, get, post
from litestar.params import QueryParameter
from litestar.response import Redirect, Template

from prizeflow_console.application.approvals import ApprovalQueue, QueueFilter, ReviewPayout
from prizeflow_console.application.ports import ApiProblem
from prizeflow_console.domain.holds import PENDING_APPROVAL
from prizeflow_console.domain.money import format_minor, redeemable
from prizeflow_console.domain.review import age, why_not_decide
from prizeflow_console.domain.viewer import Action, Page
from prizeflow_console.entrypoints.web import (
    Session,
    apis,
    back,
    checked_id,
    flash,
    may,
    page,
    problem_text,
    signed_in,
)
from prizeflow_contracts.money import ASSETS
from prizeflow_runtime.params import IdentifierPath

REASON_MAX: Final = 1000  # the services' `Reason` (1-1000 characters)
_PLAYER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9:_.\-]{0,127}$")
_PROVIDER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,63}$")
PAYABLE_ASSETS: Final = tuple(sorted(code for code in ASSETS if redeemable(code)))


def _base(payout_id: str) -> str:
    return f"/approvals/{quote(payout_id, safe='')}"


def _filters(provider: str | None, asset: str | None, player_id: str | None) -> tuple[QueueFilter, dict[str, str]]:
    """The queue's filters as typed, and a message per field that is not one the payouts service could match."""
    provider, asset, player_id = ((v or "").strip() or None for v in (provider, asset, player_id))
    errors = {}
    if provider and not _PROVIDER.fullmatch(provider):
        errors["provider"] = "A provider name is letters, digits, _ and -"
    if asset and asset not in PAYABLE_ASSETS:
        errors["asset"] = f"Choose one of {', '.join(PAYABLE_ASSETS)}"
    if player_id and not _PLAYER.fullmatch(player_id):
        errors["player_id"] = "A player id is 1 to 128 letters, digits and : _ . -"
    return QueueFilter(provider=provider, asset=asset, player_id=player_id), errors


async def reason_of(request: Request[Any, Any, Any]) -> str:
    """The form's `reason`, trimmed (a reason of spaces is no reason)."""
    form = await request.form()
    value = form.get("reason")
    return value.strip() if isinstance(value, str) else ""


def _title(payout: dict[str, Any]) -> str:
    """`Payout of 1,000.0000000 USDC`: words a phone can wrap (the id is in the facts, where it may break)."""
    amount, asset = payout.get("amount"), payout.get("asset")
    return f"Payout of {format_minor(int(amount), str(asset))}" if isinstance(amount, int) and asset else "Payout"


def _decided(action: str, state: str | None) -> str:
    if action == "reject":
        return "Rejected: the payout will not be paid."
    if state == PENDING_APPROVAL:
        return "Approved: the payout waits for a second approver."
    return "Approved: the payout goes on to its provider."


class ApprovalsController(Controller):
    path = "/approvals"
    include_in_schema = False

    @get("/")
    async def queue(
        self,
        request: Request[Any, Any, Any],
        provider: Annotated[str | None, QueryParameter(max_length=128)] = None,
        asset: Annotated[str | None, QueryParameter(max_length=16)] = None,
        player_id: Annotated[str | None, QueryParameter(max_length=256)] = None,
    ) -> Template:
        session = signed_in(request, Page.APPROVALS)
        filters, errors = _filters(provider, asset, player_id)
        context: dict[str, Any] = {"filters": filters, "errors": errors, "assets": PAYABLE_ASSETS}
        if errors:
            return page(request, "approvals.html", session=session, current_page=Page.APPROVALS, queue=None,
                        status_code=400, **context)  # fmt: skip
        result = await ApprovalQueue(apis(request))(filters, token=session.token, with_claims=True)
        now = datetime.now(UTC)
        return page(request, "approvals.html", session=session, current_page=Page.APPROVALS, queue=result,
                    ago=lambda at: age(at, now), base=_base, **context)  # fmt: skip

    @get("/{payout_id:str}")
    async def detail(self, request: Request[Any, Any, Any], payout_id: IdentifierPath) -> Template:
        session = signed_in(request, Page.APPROVALS)
        viewer = session.viewer
        try:
            review = await ReviewPayout(apis(request))(payout_id, token=session.token, with_claims=True)
        except ApiProblem as problem:
            return page(request, "approvals_detail.html", session=session, current_page=Page.APPROVALS,
                        title="Payout", review=None, problem=problem,
                        status_code=problem.status if 400 <= problem.status < 500 else 502)  # fmt: skip
        payout = review.payout
        blocked = why_not_decide(
            viewer,
            player_id=payout.get("player_id"),
            requested_by=payout.get("requested_by"),
            approved_by=review.approved_by or [],
        )
        now = datetime.now(UTC)
        return page(request, "approvals_detail.html", session=session, current_page=Page.APPROVALS,
                    title=_title(payout), review=review, payout=payout, blocked=blocked,
                    base=_base(payout_id), ago=lambda at: age(at, now), reason_max=REASON_MAX)  # fmt: skip

    @post("/{payout_id:str}/approve")
    async def approve(self, request: Request[Any, Any, Any], payout_id: IdentifierPath) -> Redirect:
        session = may(request, Page.APPROVALS, Action.DECIDE_PAYOUT)
        return await self._decide(request, session, payout_id, "approve")

    @post("/{payout_id:str}/reject")
    async def reject(self, request: Request[Any, Any, Any], payout_id: IdentifierPath) -> Redirect:
        session = may(request, Page.APPROVALS, Action.DECIDE_PAYOUT)
        return await self._decide(request, session, payout_id, "reject")

    @staticmethod
    async def _decide(request: Request[Any, Any, Any], session: Session, payout_id: str, action: str) -> Redirect:
        """Post/Redirect/Get: a missing reason is refused here, everything else by the payouts service."""
        to = _base(checked_id(payout_id))
        reason = await reason_of(request)
        if not reason or len(reason) > REASON_MAX:
            flash(request, "error", f"Say why you {action} it: a reason of 1 to {REASON_MAX} characters is required.")
            return back(to)
        try:
            answer = await apis(request).send(
                "POST", "payouts", f"/payouts/{quote(payout_id, safe='')}/{action}",
                token=session.token, body={"reason": reason},
            )  # fmt: skip
        except ApiProblem as problem:
            flash(request, "error", problem_text(problem))
        else:
            state = answer.get("state") if isinstance(answer, dict) else None
            flash(request, "success", _decided(action, state))
        return back(to)


__all__ = ["ApprovalsController"]
