"""HTTP API, one controller module per resource: campaigns and pools (admin), wallets and the risk flag (a player
reads their own; admin/ops all), top-ups (player), claims, payout routes and holds (ops), the ledger's corrections
and transfers, exports; in the dev profile with the sandbox provider, the sandbox's checkout page.

Controllers decode, call one use case (injected by name, built in bootstrap) and encode. Every write runs in a
transaction of its use case's (`uow.run`): one that loses a deadlock or a serialization failure is run again,
whole; if it still loses, `TransactionContendedError` is a 503 problem with `Retry-After` here, never a 500. A use
case's refusal (`UseCaseError`) is problem details, rendered by the runtime's app. Claims are decided a batch at a
time (`ClaimIntake`).
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, Router

from prizeflow_rewards.application.claims import CommitOutcomeUnknownError
from prizeflow_rewards.entrypoints.http.campaigns import CampaignsController
from prizeflow_rewards.entrypoints.http.claims import ClaimsController, HoldsController, PayoutRoutesController
from prizeflow_rewards.entrypoints.http.exports import ExportsController
from prizeflow_rewards.entrypoints.http.fx import FxController
from prizeflow_rewards.entrypoints.http.ledger import LedgerController
from prizeflow_rewards.entrypoints.http.topups import SandboxCheckoutController, TopUpSessionsController
from prizeflow_rewards.entrypoints.http.wallets import PlayersController, WalletsController
from prizeflow_runtime.group_commit import SetAside
from prizeflow_runtime.http import ProblemError, problem_response
from prizeflow_runtime.uow import TransactionContendedError

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
    FxController,
]
# What the controllers are injected with, by name (bootstrap provides each; `complete_sandbox` with the sandbox).
DEPENDENCIES = (
    "queries",
    "create_campaign",
    "fund_campaign",
    "change_status",
    "close_campaign",
    "release_held",
    "top_up",
    "set_risk_flag",
    "create_top_up",
    "verify_top_up",
    "claim_intake",
    "review_hold",
    "propose_correction",
    "decide_correction",
    "ledger_reads",
    "exports",
    "issue_quote",
    "quote_market",
    "reconcile_fx",
)


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


__all__ = ["CONTROLLERS", "DEPENDENCIES", "router"]
