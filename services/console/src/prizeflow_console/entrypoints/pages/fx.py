"""The FX desk (currency conversion, ADR 0015): each FX account's position, what its transfers add up to, the
difference the daily reconciliation found, and what converted claims not yet paid will move; reconcile now; and
the balance of each rail that pays from an account at its provider (the upi rail's at RazorpayX), read now.

Staff only (ops, admin), as the services' guards say (rewards' `GET /admin/fx/positions`, `POST
/admin/fx/reconcile`; payouts' `GET /providers`)."""

from __future__ import annotations

from typing import Any, Final

from litestar import Controller, Request, get, post
from litestar.response import Redirect, Template

from prizeflow_console.application.ports import ApiProblem
from prizeflow_console.domain.viewer import Action, Page
from prizeflow_console.entrypoints.web import act, apis, may, page, signed_in

RECONCILIATION_DAYS: Final = 14


class FxController(Controller):
    path = "/fx"
    include_in_schema = False

    @get("/")
    async def positions(self, request: Request[Any, Any, Any]) -> Template:
        session = signed_in(request, Page.FX)
        problem: ApiProblem | None = None
        answer: dict[str, Any] = {}
        try:
            got = await apis(request).get(
                "rewards", "/admin/fx/positions", token=session.token, query={"days": RECONCILIATION_DAYS}
            )
        except ApiProblem as err:
            problem = err
        else:
            answer = got if isinstance(got, dict) else {}
        positions = [p for p in answer.get("positions", []) if isinstance(p, dict)]
        runs = [r for r in answer.get("reconciliations", []) if isinstance(r, dict)]
        rails, rails_problem = await _rail_balances(request, session.token)
        return page(request, "fx.html", session=session, current_page=Page.FX, positions=positions, runs=runs,
                    problem=problem, days=RECONCILIATION_DAYS, rails=rails, rails_problem=rails_problem,
                    reconciles=session.viewer.may(Action.RECONCILE_FX))  # fmt: skip

    @post("/reconcile")
    async def reconcile(self, request: Request[Any, Any, Any]) -> Redirect:
        session = may(request, Page.FX, Action.RECONCILE_FX)
        return await act(
            request,
            lambda: apis(request).send("POST", "rewards", "/admin/fx/reconcile", token=session.token),
            done="Reconciled the FX accounts: today's row per asset is below.",
            to="/fx",
        )


async def _rail_balances(request: Request[Any, Any, Any], token: str) -> tuple[list[dict[str, Any]], ApiProblem | None]:
    """The rails that report a balance at their provider, as payouts read them now (`balance` of `GET /providers`)."""
    try:
        got = await apis(request).get("payouts", "/providers", token=token)
    except ApiProblem as err:
        return [], err
    listed = got.get("providers", []) if isinstance(got, dict) else []
    return [p for p in listed if isinstance(p, dict) and isinstance(p.get("balance"), dict)], None


__all__ = ["FxController"]
