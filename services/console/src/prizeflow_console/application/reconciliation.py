"""Reconciliation through the payouts admin API: runs per rail, a run on demand, the exception queue, one exception,
taking it and resolving it; and the finance exports (payouts and rewards), passed on as the services stream them.

Every call is made as the signed-in person; the services authorise and decide (ADR 0007)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from urllib.parse import quote

from prizeflow_console.application.ports import ApiProblem, Download, Downloads, PlatformApi, Query, Service

# payouts serves reconciliation at `/reconciliation/...` (its controller as landed, the ops CLI and the conformance
# tests; recon-api.md writes `/v1/admin/reconciliation`) and the finance exports at `/v1/admin/exports/...`.
RECON: Final = "/reconciliation"
EXPORTS: Final = "/v1/admin/exports"
MY_HISTORY: Final = "/v1/me/history.csv"
RUNS_LIMIT: Final = 50
PAGE_SIZE: Final = 100
# A run on demand is done while the person waits (payouts answers when it completed); longer than a page's call.
RUN_TIMEOUT_S: Final = 120.0


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def _bad_answer(what: str) -> ApiProblem:
    return ApiProblem(502, "bad_answer", "Unexpected answer", f"payouts answered without {what}", "payouts")


@dataclass(frozen=True, slots=True)
class Runs:
    runs: list[dict[str, Any]]
    problem: ApiProblem | None  # the list could not be read: said on the page, never an empty list


@dataclass(frozen=True)
class ListRuns:
    apis: PlatformApi

    async def __call__(self, *, token: str, provider: str | None = None) -> Runs:
        query = {"provider": provider, "limit": RUNS_LIMIT}
        try:
            answer = await self.apis.get("payouts", f"{RECON}/runs", token=token, query=query)
        except ApiProblem as problem:
            return Runs([], problem)
        runs = answer.get("runs") if isinstance(answer, dict) else None
        if not isinstance(runs, list):
            return Runs([], _bad_answer("a list of runs"))
        return Runs([r for r in runs if isinstance(r, dict)], None)


@dataclass(frozen=True)
class RunWindow:
    """Reconcile one provider over [since, until) now; the same window again is the same run (payouts)."""

    apis: PlatformApi

    async def __call__(self, provider: str, since: datetime, until: datetime, *, token: str) -> dict[str, Any]:
        body = {"provider": provider, "since": _iso(since), "until": _iso(until)}
        run = await self.apis.send("POST", "payouts", f"{RECON}/runs", token=token, body=body, timeout_s=RUN_TIMEOUT_S)
        if not isinstance(run, dict):
            raise _bad_answer("a run")
        return run


@dataclass(frozen=True, slots=True)
class ExceptionFilter:
    state: str | None = None
    kind: str | None = None
    provider: str | None = None
    severity: str | None = None
    owner: str | None = None
    offset: int = 0

    def query(self) -> Query:
        return {"state": self.state, "kind": self.kind, "provider": self.provider, "severity": self.severity,
                "owner": self.owner, "limit": PAGE_SIZE, "offset": self.offset}  # fmt: skip

    def shown(self) -> dict[str, str]:
        """The filters as the queue's links carry them (empty ones left out)."""
        values = {"state": self.state, "kind": self.kind, "provider": self.provider, "severity": self.severity,
                  "owner": self.owner}  # fmt: skip
        return {k: v for k, v in values.items() if v}


@dataclass(frozen=True, slots=True)
class Queue:
    exceptions: list[dict[str, Any]]
    problem: ApiProblem | None
    more: bool  # a full page: there may be a next one


@dataclass(frozen=True)
class ListExceptions:
    apis: PlatformApi

    async def __call__(self, filters: ExceptionFilter, *, token: str) -> Queue:
        try:
            answer = await self.apis.get("payouts", f"{RECON}/exceptions", token=token, query=filters.query())
        except ApiProblem as problem:
            return Queue([], problem, more=False)
        found = answer.get("exceptions") if isinstance(answer, dict) else None
        if not isinstance(found, list):
            return Queue([], _bad_answer("a list of exceptions"), more=False)
        items = [e for e in found if isinstance(e, dict)]
        return Queue(items, None, more=len(found) >= PAGE_SIZE)


def _exception_path(exception_id: int) -> str:
    return f"{RECON}/exceptions/{exception_id}"


@dataclass(frozen=True)
class ShowException:
    apis: PlatformApi

    async def __call__(self, exception_id: int, *, token: str) -> dict[str, Any]:
        found = await self.apis.get("payouts", _exception_path(exception_id), token=token)
        if not isinstance(found, dict):
            raise _bad_answer("an exception")
        return found


@dataclass(frozen=True)
class TakeException:
    """The person becomes its owner; it is being investigated."""

    apis: PlatformApi

    async def __call__(self, exception_id: int, *, token: str, reason: str | None = None) -> dict[str, Any]:
        body = {"reason": reason} if reason else {}
        path = f"{_exception_path(exception_id)}/take"
        answer = await self.apis.send("POST", "payouts", path, token=token, body=body)
        return answer if isinstance(answer, dict) else {}


@dataclass(frozen=True)
class ResolveException:
    """Acknowledge it, propose a money action, or approve the standing proposal (payouts tells which happened:
    the answer is still unresolved with a proposal, or resolved)."""

    apis: PlatformApi

    async def __call__(
        self, exception_id: int, action: str, reason: str, *, token: str, withdrawal_id: str | None = None
    ) -> dict[str, Any]:
        params = {"withdrawal_id": withdrawal_id} if withdrawal_id else {}
        body = {"action": action, "reason": reason, "params": params}
        answer = await self.apis.send(
            "POST", "payouts", f"{_exception_path(exception_id)}/resolve", token=token, body=body
        )
        return answer if isinstance(answer, dict) else {}


@dataclass(frozen=True, slots=True)
class Export:
    """One CSV a person may download: which service serves it, where, and the filters it takes beside the period."""

    name: str
    service: Service
    path: str
    filters: tuple[str, ...]
    title: str


EXPORT_LIST: Final = (
    Export("ledger", "rewards", f"{EXPORTS}/ledger.csv", ("asset",), "Ledger: one row per ledger transfer"),
    Export("payouts", "payouts", f"{EXPORTS}/payouts.csv", ("provider", "asset"), "Payouts: one row per payout"),
    Export(
        "reconciliation",
        "payouts",
        f"{EXPORTS}/reconciliation.csv",
        ("provider",),
        "Reconciliation: one row per exception opened in the period",
    ),
)
EXPORTS_BY_NAME: Final = {e.name: e for e in EXPORT_LIST}


@dataclass(frozen=True, slots=True)
class Period:
    since: datetime
    until: datetime

    def query(self) -> dict[str, str]:
        return {"since": _iso(self.since), "until": _iso(self.until)}


@dataclass(frozen=True)
class OpenExport:
    """The service's CSV, opened: its status checked (a refusal raises its problem detail), its body not read."""

    downloads: Downloads

    async def __call__(
        self, export: Export, period: Period, *, token: str, filters: dict[str, str | None] | None = None
    ) -> Download:
        query: dict[str, str | int | bool | None] = {**period.query()}
        query.update({k: v for k, v in (filters or {}).items() if k in export.filters})
        return await self.downloads.download(export.service, export.path, token=token, query=query)


@dataclass(frozen=True)
class OpenPlayerHistory:
    """One player's wallet movements (finance, for a player who asks); the player id is a parameter here only
    because the person asking is staff: a player's own history is `OpenMyHistory`, its id the token's subject."""

    downloads: Downloads

    async def __call__(self, player_id: str, period: Period, *, token: str) -> Download:
        path = f"{EXPORTS}/players/{quote(player_id, safe='')}/history.csv"
        return await self.downloads.download("rewards", path, token=token, query=period.query())


@dataclass(frozen=True)
class OpenMyHistory:
    downloads: Downloads

    async def __call__(self, *, token: str, period: Period) -> Download:
        return await self.downloads.download("rewards", MY_HISTORY, token=token, query=period.query())


__all__ = [
    "EXPORTS",
    "EXPORTS_BY_NAME",
    "EXPORT_LIST",
    "MY_HISTORY",
    "PAGE_SIZE",
    "RECON",
    "RUNS_LIMIT",
    "RUN_TIMEOUT_S",
    "ExceptionFilter",
    "Export",
    "ListExceptions",
    "ListRuns",
    "OpenExport",
    "OpenMyHistory",
    "OpenPlayerHistory",
    "Period",
    "Queue",
    "ResolveException",
    "RunWindow",
    "Runs",
    "ShowException",
    "TakeException",
]
