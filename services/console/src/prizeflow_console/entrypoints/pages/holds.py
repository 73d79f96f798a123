"""Held claims: why rewards held each one, in its hold kind's words (`prizeflow_contracts.holds`); release it
(optional reason) or reject it (reason required).

Staff only (ops, admin), as the rewards service's guards say; rewards decides again whether the claim may move."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import quote

from litestar import Controller, Request, get, post
from litestar.response import Redirect, Template

from prizeflow_console.application.ports import ApiProblem
from prizeflow_console.domain.review import age
from prizeflow_console.domain.viewer import Action, Page
from prizeflow_console.entrypoints.pages.approvals import REASON_MAX, reason_of
from prizeflow_console.entrypoints.web import act, apis, back, flash, may, page, signed_in
from prizeflow_contracts.holds import claim_hold_label
from prizeflow_runtime.params import IdentifierPath

HOLDS_LIMIT: Final = 100


def _path(claim_id: str, action: str) -> str:
    return f"/holds/{quote(claim_id, safe='')}/{action}"


class HoldsController(Controller):
    path = "/holds"
    include_in_schema = False

    @get("/")
    async def holds(self, request: Request[Any, Any, Any]) -> Template:
        session = signed_in(request, Page.HOLDS)
        problem: ApiProblem | None = None
        claims: list[dict[str, Any]] = []
        try:
            answer = await apis(request).get("rewards", "/holds", token=session.token, query={"limit": HOLDS_LIMIT})
        except ApiProblem as err:
            problem = err
        else:
            claims = [c for c in answer or [] if isinstance(c, dict)]
        now = datetime.now(UTC)
        return page(request, "holds.html", session=session, current_page=Page.HOLDS, claims=claims, problem=problem,
                    full=len(claims) >= HOLDS_LIMIT, why=claim_hold_label, ago=lambda at: age(at, now), path=_path,
                    reason_max=REASON_MAX)  # fmt: skip

    @post("/{claim_id:str}/release")
    async def release(self, request: Request[Any, Any, Any], claim_id: IdentifierPath) -> Redirect:
        session = may(request, Page.HOLDS, Action.REVIEW_HOLD)
        reason = await reason_of(request)
        if len(reason) > REASON_MAX:
            flash(request, "error", f"A reason is at most {REASON_MAX} characters.")
            return back("/holds")
        body = {"reason": reason} if reason else {}
        return await act(
            request,
            lambda: apis(request).send("POST", "rewards", _path(claim_id, "release"), token=session.token, body=body),
            done=f"Released claim {claim_id}: it goes on to payout.",
            to="/holds",
        )

    @post("/{claim_id:str}/reject")
    async def reject(self, request: Request[Any, Any, Any], claim_id: IdentifierPath) -> Redirect:
        session = may(request, Page.HOLDS, Action.REVIEW_HOLD)
        reason = await reason_of(request)
        if not reason or len(reason) > REASON_MAX:
            flash(request, "error", f"Say why you reject claim {claim_id}: a reason of 1 to {REASON_MAX} characters.")
            return back("/holds")
        return await act(
            request,
            lambda: apis(request).send(
                "POST", "rewards", _path(claim_id, "reject"), token=session.token, body={"reason": reason}
            ),
            done=f"Rejected claim {claim_id}: its amount is back in the player's wallet.",
            to="/holds",
        )


__all__ = ["HoldsController"]
