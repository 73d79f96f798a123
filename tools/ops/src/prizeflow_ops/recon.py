"""`prizeflow-ops recon ...`: reconciliation runs and the exception queue, through payouts' admin API.

Payouts decides everything (docs/runbooks/reconciliation-*.md say when to use which action): a money action
(`write_off`, `mark_returned`, `book_fee`, `settle_found`, `settle_not_made`) is proposed by one person (202)
and executed only when a second, different person resolves it with the same action (200); `acknowledge`
moves no money and is done by one. The CLI only checks what it can without asking (a window that is a
window, a withdrawal id where `settle_found` needs one) and says which of the two happened.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from prizeflow_contracts.reconciliation import (
    RECON_ACTIONS,
    ExceptionKind,
    ExceptionState,
    ReconAction,
    Severity,
)
from prizeflow_ops.client import ExitCode, segment
from prizeflow_ops.commands import Context, UnusableArgumentError, pick
from prizeflow_ops.config import PAYOUTS

BASE: Final = "/reconciliation"
STATES: Final = tuple(s.value for s in ExceptionState)
# The kinds, severities and resolutions payouts knows, from their rows (prizeflow_contracts.reconciliation).
KINDS: Final = tuple(k.value for k in ExceptionKind)
SEVERITIES: Final = tuple(s.value for s in Severity)
ACTIONS: Final = tuple(a.value for a in ReconAction)
# The actions that move money: a first call proposes, a second person's call executes.
MONEY_ACTIONS: Final = frozenset(a.code.value for a in RECON_ACTIONS.values() if a.moves_money)
# The actions whose proposal carries the exchange's withdrawal id (`--withdrawal-id`).
WITHDRAWAL_ACTIONS: Final = tuple(a.code.value for a in RECON_ACTIONS.values() if "withdrawal_id" in a.params)

RUN_COLUMNS: Final = (
    "run_id", "provider", "since", "until", "state", "lines", "matched", "exceptions", "started_at", "finished_at",
    "error",
)  # fmt: skip
EXCEPTION_COLUMNS: Final = (
    "id", "provider", "kind", "severity", "state", "owner", "payout_id", "asset", "amount", "opened_at", "proposal",
)  # fmt: skip
THEIR_COLUMNS: Final = (
    "line_id", "kind", "occurred_at", "asset", "amount", "reference", "provider_ref", "destination", "raw_type",
)  # fmt: skip
# What a refusal of the resolve endpoint means for the person who got it.
RESOLVE_HINTS: Final[Mapping[str, str]] = {
    "self_approval": "you proposed it: a second person (role approver or admin) resolves it with the same action",
    "proposal_differs": "another action is proposed (`recon show` gives it): only that same action executes it",
}

Leaf = Callable[..., argparse.ArgumentParser]


def instant(text: str) -> str:
    """An ISO 8601 time with its UTC offset (`2026-11-25T00:00:00Z`), sent as payouts reads it."""
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time (2026-11-25T00:00:00Z)") from None
    if at.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no UTC offset: add Z or +00:00 (a window is absolute)")
    return at.isoformat()


def _limit(text: str) -> int:
    if not text.isascii() or not text.isdigit() or int(text) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return int(text)


def _offset(text: str) -> int:
    if not text.isascii() or not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number")
    return int(text)


def _rows(data: Any, key: str) -> list[Mapping[str, Any]]:
    rows = data.get(key) if isinstance(data, Mapping) else None
    return [r for r in rows if isinstance(r, Mapping)] if isinstance(rows, list) else []


def _list(ctx: Context, key: str, preferred: Sequence[str], title: str) -> Callable[[Any], None]:
    def show(data: Any) -> None:
        rows = _rows(data, key)
        ctx.out.table(rows, pick(rows, preferred), title=title)

    return show


def _show_run(ctx: Context, title: str) -> Callable[[Any], None]:
    def show(data: Any) -> None:
        ctx.out.record(data, title=title)

    return show


def _show_exception(ctx: Context, title: str) -> Callable[[Any], None]:
    """The exception, then both sides one after the other (ours, theirs), then what happened to it."""

    def show(data: Any) -> None:
        if not isinstance(data, Mapping):
            ctx.out.record(data, title=title)
            return
        sides = {"ours", "theirs", "history"}
        ctx.out.record({k: v for k, v in data.items() if k not in sides}, title=title)
        ours = data.get("ours")
        if isinstance(ours, Mapping):
            ctx.out.record(ours, title="ours (Prizeflow's payout)")
        else:
            ctx.out.line("ours (Prizeflow's payout): none", style="dim")
        theirs = _rows(data, "theirs")
        ctx.out.table(theirs, pick(theirs, THEIR_COLUMNS), title="theirs (the provider's lines)")
        history = _rows(data, "history")
        ctx.out.table(history, pick(history, ("at", "actor", "what", "reason")), title="history")

    return show


def _exception(args: argparse.Namespace, action: str = "") -> str:
    return f"{BASE}/exceptions/{segment(args.id)}" + (f"/{action}" if action else "")


async def recon_run(ctx: Context, args: argparse.Namespace) -> int:
    if datetime.fromisoformat(args.until) <= datetime.fromisoformat(args.since):
        raise UnusableArgumentError("--until", f"must be after --since ({args.since})")
    body = {"provider": args.provider, "since": args.since, "until": args.until}
    return await ctx.one(
        PAYOUTS, "POST", f"{BASE}/runs", body=body, show=_show_run(ctx, f"reconciliation run of {args.provider}")
    )


async def recon_runs(ctx: Context, args: argparse.Namespace) -> int:
    params = {"provider": args.provider, "limit": args.limit}
    return await ctx.one(
        PAYOUTS, "GET", f"{BASE}/runs", params=params, show=_list(ctx, "runs", RUN_COLUMNS, "reconciliation runs")
    )


async def recon_run_show(ctx: Context, args: argparse.Namespace) -> int:
    path = f"{BASE}/runs/{segment(args.run_id)}"
    return await ctx.one(PAYOUTS, "GET", path, show=_show_run(ctx, f"reconciliation run {args.run_id}"))


async def recon_exceptions(ctx: Context, args: argparse.Namespace) -> int:
    params = {
        "state": args.state,
        "kind": args.kind,
        "provider": args.provider,
        "severity": args.severity,
        "owner": args.owner,
        "limit": args.limit,
        "offset": args.offset,
    }
    show = _list(ctx, "exceptions", EXCEPTION_COLUMNS, "reconciliation exceptions")
    return await ctx.one(PAYOUTS, "GET", f"{BASE}/exceptions", params=params, show=show)


async def recon_show(ctx: Context, args: argparse.Namespace) -> int:
    return await ctx.one(PAYOUTS, "GET", _exception(args), show=_show_exception(ctx, f"exception {args.id}"))


async def recon_take(ctx: Context, args: argparse.Namespace) -> int:
    body = {"reason": args.reason} if args.reason is not None else {}
    return await ctx.one(
        PAYOUTS, "POST", _exception(args, "take"), body=body, show=_show_exception(ctx, f"exception {args.id} taken")
    )


def outcome(status: int | None, data: Any, action: str) -> str:
    """What a successful resolve did: `proposed` (202, waiting for a second person), `executed` (resolved)."""
    state = data.get("state") if isinstance(data, Mapping) else None
    if status == 202:
        return "proposed"
    if state == ExceptionState.RESOLVED:
        return "executed"
    return f"answered {status} with state {state}" if action in MONEY_ACTIONS else f"state {state}"


async def recon_resolve(ctx: Context, args: argparse.Namespace) -> int:
    if args.action in WITHDRAWAL_ACTIONS and not args.withdrawal_id:
        raise UnusableArgumentError("--withdrawal-id", f"is required by {args.action}: the exchange's withdrawal id")
    if args.withdrawal_id and args.action not in WITHDRAWAL_ACTIONS:
        raise UnusableArgumentError("--withdrawal-id", f"is for {'/'.join(WITHDRAWAL_ACTIONS)} only, not {args.action}")
    params = {"withdrawal_id": args.withdrawal_id} if args.withdrawal_id else {}
    body = {"action": args.action, "reason": args.reason, "params": params}
    path = _exception(args, "resolve")
    answer = await ctx.client.call(PAYOUTS, "POST", path, body=body)
    if answer.problem is not None:
        ctx.out.problem(answer.problem, action=f"POST {path}")
        hint = RESOLVE_HINTS.get(answer.problem.code or "")
        if hint:
            ctx.out.warning(hint)
        return answer.exit_code
    if ctx.json_mode:
        ctx.out.document(answer.data)
        return ExitCode.OK
    done = outcome(answer.status, answer.data, args.action)
    if done == "proposed":
        ctx.out.line(
            f"proposed: {args.action} on exception {args.id} waits for a second person (role approver or admin) "
            f"to run the same resolve; nothing has moved yet",
            style="bold yellow",
        )
    elif done == "executed":
        ctx.out.line(f"executed: exception {args.id} resolved by {args.action}", style="bold green")
    else:
        ctx.out.line(f"{args.action} on exception {args.id}: {done}", style="bold")
    _show_exception(ctx, f"exception {args.id}")(answer.data)
    return ExitCode.OK


def register(group: Callable[[str, str], Any], leaf: Leaf) -> None:
    """The `recon` commands, added to the CLI's command table (cli.build_parser)."""
    recon = group("recon", "reconciliation with the providers' books: runs and the exception queue (payouts)")
    p = leaf(
        recon, "run", recon_run, (PAYOUTS,), "reconcile one provider over [since, until) now (same window: same run)"
    )
    p.add_argument("--provider", required=True, help="a provider name of providers.yaml (stripe, stellar, ...)")
    p.add_argument("--since", required=True, type=instant, metavar="ISO", help="start, included (with its offset)")
    p.add_argument("--until", required=True, type=instant, metavar="ISO", help="end, excluded (with its offset)")
    p = leaf(recon, "runs", recon_runs, (PAYOUTS,), "reconciliation runs, newest first")
    p.add_argument("--provider")
    p.add_argument("--limit", type=_limit, default=50)
    p = leaf(recon, "run-show", recon_run_show, (PAYOUTS,), "one run with its totals per asset")
    p.add_argument("run_id", metavar="RUN_ID")
    p = leaf(recon, "exceptions", recon_exceptions, (PAYOUTS,), "the exception queue, filtered")
    p.add_argument("--state", choices=STATES)
    p.add_argument("--kind", choices=KINDS)
    p.add_argument("--provider")
    p.add_argument("--severity", choices=SEVERITIES)
    p.add_argument("--owner", help="the subject of the person who took them")
    p.add_argument("--limit", type=_limit, default=100)
    p.add_argument("--offset", type=_offset, default=0)
    show = leaf(recon, "show", recon_show, (PAYOUTS,), "one exception: ours, theirs, actions, proposal, history")
    show.add_argument("id", metavar="ID")
    p = leaf(recon, "take", recon_take, (PAYOUTS,), "take an exception: you own it, it is being investigated")
    p.add_argument("id", metavar="ID")
    p.add_argument("--reason")
    p = leaf(
        recon,
        "resolve",
        recon_resolve,
        (PAYOUTS,),
        "resolve an exception; a money action is proposed by one person and executed by a second",
    )
    p.add_argument("id", metavar="ID")
    p.add_argument("--action", required=True, choices=ACTIONS)
    p.add_argument("--reason", required=True)
    p.add_argument(
        "--withdrawal-id", dest="withdrawal_id", metavar="X", help=f"{'/'.join(WITHDRAWAL_ACTIONS)}: the exchange's id"
    )


__all__ = ["ACTIONS", "KINDS", "MONEY_ACTIONS", "WITHDRAWAL_ACTIONS", "instant", "outcome", "register"]
