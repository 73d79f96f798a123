"""The FX desk (currency conversion, ADR 0015): each FX account's position, what its transfers add up to, the
difference the daily reconciliation found, and what converted claims not yet paid will move; reconcile now.

Staff only (ops, admin), as the rewards service's guards say (`GET /admin/fx/positions`, `POST /admin/fx/reconcile`)."""

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
        return page(request, "fx.html", session=session, current_page=Page.FX, positions=positions, runs=runs,
                    problem=problem, days=RECONCILIATION_DAYS,
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


__all__ = ["FxController"]
