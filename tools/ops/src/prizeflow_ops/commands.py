"""One function per command: which admin endpoint(s) it calls and how people see the answer.

Nothing here knows a rule of the domain: the services decide (and audit) everything; a command maps its
arguments to one request (or one per service for the fan-outs `trace` and `dlq list`) and shows the answer, a
hold's code beside its kind's words (`prizeflow_contracts.holds`), never words typed here.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, TextIO

from prizeflow_contracts.holds import claim_hold_label, payout_hold_label
from prizeflow_ops.client import Answer, ExitCode, OpsClient, Problem, segment
from prizeflow_ops.config import DEAD_LETTER_SERVICES, PAYOUTS, REWARDS, SERVICES, SETTLEMENT
from prizeflow_ops.output import Output

DLQ_STATUSES: Final = ("open", "redriven", "discarded")
DLQ_PAGE_MAX: Final = 500  # the API's largest page


class UnusableArgumentError(Exception):
    """An argument that parses but cannot be used (an unreadable placements file): exit 2, nothing sent."""

    def __init__(self, option: str, detail: str) -> None:
        super().__init__(f"{option} {detail}")
        self.option = option
        self.detail = detail


@dataclass
class Context:
    client: OpsClient
    out: Output
    stdin: TextIO | None = None

    @property
    def json_mode(self) -> bool:
        return bool(self.out.json_mode)

    async def one(
        self,
        service: str,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int | None] | None = None,
        body: Any = None,
        show: Callable[[Any], None],
    ) -> ExitCode:
        """One request: its JSON document as is (`--json`) or `show`n for people; a problem on stderr."""
        answer = await self.client.call(service, method, path, params=params, body=body)
        if answer.problem is not None:
            self.out.problem(answer.problem, action=f"{method} {path}")
            return answer.exit_code
        if self.json_mode:
            self.out.document(answer.data)
        else:
            show(answer.data)
        return ExitCode.OK


Command = Callable[[Context, argparse.Namespace], Awaitable[int]]


def items_of(data: Any) -> list[Mapping[str, Any]]:
    """The rows of a list answer: a bare JSON array, or an object's `items`."""
    rows = data.get("items") if isinstance(data, Mapping) else data
    return [r for r in rows if isinstance(r, Mapping)] if isinstance(rows, list) else []


def pick(rows: Sequence[Mapping[str, Any]], preferred: Sequence[str]) -> list[str]:
    """The preferred columns present in the rows; every column when none is (an answer shaped otherwise)."""
    present = {k for row in rows for k in row}
    chosen = [c for c in preferred if c in present]
    if chosen:
        return chosen
    ordered: list[str] = []
    for row in rows:
        ordered.extend(k for k in row if k not in ordered)
    return ordered


def _table(
    ctx: Context,
    preferred: Sequence[str],
    title: str,
    *,
    row: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None,
) -> Callable[[Any], None]:
    """People's table of a list answer; `row` adds what people read beside the service's fields (words for codes)."""

    def show(data: Any) -> None:
        rows = [row(r) for r in items_of(data)] if row is not None else items_of(data)
        ctx.out.table(rows, pick(rows, preferred), title=title)

    return show


def _record(ctx: Context, title: str) -> Callable[[Any], None]:
    def show(data: Any) -> None:
        ctx.out.record(data, title=title)

    return show


def _fan_out_code(failures: Sequence[Problem], *, partial: bool, out: Output) -> ExitCode:
    """The exit code of a fan-out: that of the first service (in SERVICES order) that failed; an unavailable
    service is forgiven with `--partial` (its problem is still printed)."""
    blocking = [p for p in failures if not (partial and p.exit_code is ExitCode.UNAVAILABLE)]
    if blocking:
        return blocking[0].exit_code
    if failures:
        out.warning(f"--partial: shown without {', '.join(p.service for p in failures)}")
    return ExitCode.OK


def _report_failures(ctx: Context, answers: Sequence[Answer]) -> list[Problem]:
    failures = [a.problem for a in answers if a.problem is not None]
    for problem in failures:
        ctx.out.problem(problem, action="left out")
    return failures


# --- trace --------------------------------------------------------------------------------------------------
TRACE_COLUMNS: Final = ("at", "service", "kind", "type", "subject", "summary")


def _instant(value: Any) -> datetime:
    try:
        at = datetime.fromisoformat(str(value))
    except ValueError:
        return datetime.max.replace(tzinfo=UTC)  # unreadable times go last, still shown
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def merge_timelines(answers: Sequence[Answer]) -> list[dict[str, Any]]:
    """Every service's entries in one order: by time, then by service (SERVICES order), then as each sent them."""
    keyed: list[tuple[datetime, int, int, dict[str, Any]]] = []
    for answer in answers:
        if answer.problem is not None:
            continue
        rank = SERVICES.index(answer.service) if answer.service in SERVICES else len(SERVICES)
        entries = answer.data.get("entries") if isinstance(answer.data, Mapping) else None
        for position, entry in enumerate(entries if isinstance(entries, list) else []):
            if isinstance(entry, Mapping):
                row = {"service": answer.service, **entry}
                keyed.append((_instant(row.get("at")), rank, position, row))
    keyed.sort(key=lambda k: k[:3])
    return [k[3] for k in keyed]


async def trace(ctx: Context, args: argparse.Namespace) -> int:
    path = f"/admin/timeline/{segment(args.correlation_id)}"
    answers = await asyncio.gather(*(ctx.client.call(s, "GET", path) for s in SERVICES))
    failures = _report_failures(ctx, answers)
    entries = merge_timelines(answers)
    truncated = [a.service for a in answers if isinstance(a.data, Mapping) and a.data.get("truncated")]
    for service in truncated:
        ctx.out.warning(f"{service} cut its timeline short: the flow has more entries than it answers with")
    if ctx.json_mode:
        ctx.out.document(
            {
                "correlation_id": args.correlation_id,
                "entries": entries,
                "services": [a.service for a in answers if a.ok],
                "truncated": truncated,
                "failed": [p.document() for p in failures],
            }
        )
    else:
        ctx.out.table(entries, TRACE_COLUMNS, title=f"correlation id {args.correlation_id}")
    return _fan_out_code(failures, partial=args.partial, out=ctx.out)


# --- dead letters -------------------------------------------------------------------------------------------
DLQ_COLUMNS: Final = (
    "service", "id", "consumer", "topic", "event_type", "reason", "status", "attempts", "created_at", "correlation_id",
)  # fmt: skip


def _topic_matches(topic: Any, wanted: str | None) -> bool:
    """`--topic prizeflow.game.rounds.v1` matches that topic and its suffixed copies (`KAFKA_TOPIC_SUFFIX`)."""
    return wanted is None or (isinstance(topic, str) and (topic == wanted or topic.startswith(wanted + ".")))


async def _dead_letters(ctx: Context, service: str, status: str, args: argparse.Namespace) -> tuple[list[Any], Answer]:
    """One service's dead letters in one status, page after page until `--limit` rows matched or none is left."""
    rows: list[Any] = []
    after: int | None = None
    while True:
        params = {"status": status, "consumer": args.consumer, "after": after, "limit": DLQ_PAGE_MAX}
        answer = await ctx.client.call(service, "GET", "/admin/dead-letters/", params=params)
        if answer.problem is not None:
            return rows, answer
        page = items_of(answer.data)
        rows.extend({"service": service, **r} for r in page if _topic_matches(r.get("topic"), args.topic))
        after = answer.data.get("next_after") if isinstance(answer.data, Mapping) else None
        if len(rows) >= args.limit:
            if len(rows) > args.limit or after is not None:
                ctx.out.warning(f"{service}: more {status} dead letters than --limit {args.limit} shows")
            return rows[: args.limit], answer
        if after is None or not page:
            return rows, answer


async def dlq_list(ctx: Context, args: argparse.Namespace) -> int:
    services = (args.service,) if args.service else DEAD_LETTER_SERVICES
    statuses = DLQ_STATUSES if args.status == "all" else (args.status,)
    jobs = [(s, st) for s in services for st in statuses]
    results = await asyncio.gather(*(_dead_letters(ctx, s, st, args) for s, st in jobs))
    rows = [row for found, _ in results for row in found]
    rows.sort(key=lambda r: (str(r.get("created_at") or ""), SERVICES.index(r["service"]), r.get("id") or 0))
    seen: set[str] = set()
    failed_answers = []
    for _, answer in results:  # one problem per service, however many statuses failed with it
        if answer.problem is not None and answer.service not in seen:
            seen.add(answer.service)
            failed_answers.append(answer)
    failures = _report_failures(ctx, failed_answers)
    if ctx.json_mode:
        ctx.out.document({"items": rows, "failed": [p.document() for p in failures]})
    else:
        ctx.out.table(rows, DLQ_COLUMNS, title=f"dead letters ({args.status})")
    return _fan_out_code(failures, partial=args.partial, out=ctx.out)


def _dlq_path(args: argparse.Namespace, action: str = "") -> str:
    return f"/admin/dead-letters/{args.id}" + (f"/{action}" if action else "")


async def dlq_show(ctx: Context, args: argparse.Namespace) -> int:
    return await ctx.one(
        args.service, "GET", _dlq_path(args), show=_record(ctx, f"{args.service} dead letter {args.id}")
    )


async def dlq_redrive(ctx: Context, args: argparse.Namespace) -> int:
    return await ctx.one(
        args.service,
        "POST",
        _dlq_path(args, "redrive"),
        body={"reason": args.reason},
        show=_record(ctx, f"{args.service} dead letter {args.id} redriven"),
    )


async def dlq_purge(ctx: Context, args: argparse.Namespace) -> int:
    return await ctx.one(
        args.service,
        "POST",
        _dlq_path(args, "discard"),
        body={"reason": args.reason},
        show=_record(ctx, f"{args.service} dead letter {args.id} purged"),
    )


# --- pools (rewards campaigns) ------------------------------------------------------------------------------
POOL_COLUMNS: Final = (
    "campaign_id", "name", "asset", "status", "funded", "reserved", "paid", "remaining", "held_rounds", "held_amount",
)  # fmt: skip


FX_COLUMNS: Final = ("asset", "ledger_position", "booked_position", "difference", "committed")


def _positions(ctx: Context, title: str) -> Callable[[Any], None]:
    """The FX accounts' positions (an object's `positions`), as a table."""

    def show(data: Any) -> None:
        rows = [r for r in data.get("positions", []) if isinstance(r, Mapping)] if isinstance(data, Mapping) else []
        ctx.out.table(rows, pick(rows, FX_COLUMNS), title=title)

    return show


async def fx_positions(ctx: Context, args: argparse.Namespace) -> int:
    """The FX desk's accounts (rewards, ADR 0015): ledger position, what its transfers add up to, the difference."""
    params = {"days": args.days}
    return await ctx.one(REWARDS, "GET", "/admin/fx/positions", params=params, show=_positions(ctx, "fx positions"))


async def fx_reconcile(ctx: Context, args: argparse.Namespace) -> int:
    return await ctx.one(REWARDS, "POST", "/admin/fx/reconcile", show=_positions(ctx, "fx accounts reconciled"))


def _campaign(args: argparse.Namespace, action: str = "") -> str:
    return f"/campaigns/{segment(args.campaign)}" + (f"/{action}" if action else "")


async def pool_list(ctx: Context, args: argparse.Namespace) -> int:
    return await ctx.one(REWARDS, "GET", "/campaigns/", show=_table(ctx, POOL_COLUMNS, "campaign pools"))


async def pool_show(ctx: Context, args: argparse.Namespace) -> int:
    return await ctx.one(REWARDS, "GET", _campaign(args), show=_record(ctx, f"campaign {args.campaign}"))


async def pool_fund(ctx: Context, args: argparse.Namespace) -> int:
    body = {"amount": args.amount, "reference": args.reference}
    return await ctx.one(
        REWARDS, "POST", _campaign(args, "fund"), body=body, show=_record(ctx, f"campaign {args.campaign} funded")
    )


async def pool_pause(ctx: Context, args: argparse.Namespace) -> int:
    return await ctx.one(
        REWARDS, "POST", _campaign(args, "pause"), show=_record(ctx, f"campaign {args.campaign} paused")
    )


async def pool_resume(ctx: Context, args: argparse.Namespace) -> int:
    return await ctx.one(
        REWARDS, "POST", _campaign(args, "resume"), show=_record(ctx, f"campaign {args.campaign} resumed")
    )


async def pool_release_held(ctx: Context, args: argparse.Namespace) -> int:
    """After a pool was exhausted and funded again: rewards pays its held rounds while the pool covers them."""
    return await ctx.one(
        REWARDS,
        "POST",
        _campaign(args, "held/release"),
        show=_record(ctx, f"campaign {args.campaign}: held rounds released"),
    )


async def pool_close(ctx: Context, args: argparse.Namespace) -> int:
    return await ctx.one(
        REWARDS,
        "POST",
        _campaign(args, "close"),
        body={"reason": args.reason},
        show=_record(ctx, f"campaign {args.campaign} closed"),
    )


# --- ledger corrections (rewards) ---------------------------------------------------------------------------
TRANSFER_COLUMNS: Final = (
    "transfer_id", "seq", "kind", "state", "debit_account", "credit_account", "asset", "amount", "correlation_id",
)  # fmt: skip
CORRECTION_COLUMNS: Final = (
    "correction_id", "status", "debit_account", "credit_account", "asset", "amount", "reference", "proposed_by",
    "approved_by", "transfer_id",
)  # fmt: skip


def _correction(args: argparse.Namespace, action: str = "") -> str:
    return f"/ledger/corrections/{segment(args.id)}" + (f"/{action}" if action else "")


async def ledger_transfers(ctx: Context, args: argparse.Namespace) -> int:
    params = {
        "correlation_id": args.correlation_id,
        "account": args.account,
        "before": args.before,
        "limit": args.limit,
    }
    return await ctx.one(
        REWARDS, "GET", "/ledger/transfers", params=params, show=_table(ctx, TRANSFER_COLUMNS, "ledger transfers")
    )


async def ledger_propose(ctx: Context, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {
        "debit_account": args.debit,
        "credit_account": args.credit,
        "asset": args.asset,
        "amount": args.amount,
        "reason": args.reason,
        "reference": args.reference,
    }
    if args.corrects is not None:
        body["corrects_transfer_id"] = args.corrects
    return await ctx.one(
        REWARDS, "POST", "/ledger/corrections", body=body, show=_record(ctx, "ledger correction proposed")
    )


async def ledger_corrections(ctx: Context, args: argparse.Namespace) -> int:
    return await ctx.one(
        REWARDS,
        "GET",
        "/ledger/corrections",
        params={"status": args.status, "limit": args.limit},
        show=_table(ctx, CORRECTION_COLUMNS, "ledger corrections"),
    )


async def ledger_show(ctx: Context, args: argparse.Namespace) -> int:
    return await ctx.one(REWARDS, "GET", _correction(args), show=_record(ctx, f"ledger correction {args.id}"))


async def ledger_approve(ctx: Context, args: argparse.Namespace) -> int:
    body = {"reason": args.reason} if args.reason is not None else {}
    return await ctx.one(
        REWARDS,
        "POST",
        _correction(args, "approve"),
        body=body,
        show=_record(ctx, f"ledger correction {args.id} approved"),
    )


async def ledger_reject(ctx: Context, args: argparse.Namespace) -> int:
    return await ctx.one(
        REWARDS,
        "POST",
        _correction(args, "reject"),
        body={"reason": args.reason},
        show=_record(ctx, f"ledger correction {args.id} rejected"),
    )


# --- payouts ------------------------------------------------------------------------------------------------
PAYOUT_COLUMNS: Final = (
    "id", "state", "hold_code", "why_held", "provider_name", "asset", "amount", "attempts", "last_error_code",
    "correlation_id", "updated_at",
)  # fmt: skip
PENDING_APPROVAL: Final = "pending_approval"  # the payouts state of a payout waiting for approvers (or the gate)


def _payout_hold(row: Mapping[str, Any]) -> Mapping[str, Any]:
    """A listed payout with why the compliance gate holds it, in its hold kind's words (people only: `--json` is
    the service's document as it is)."""
    code = row.get("hold_code")
    if not code or row.get("state") != PENDING_APPROVAL:
        return row
    return {**row, "why_held": payout_hold_label(str(code))}


def _payout(args: argparse.Namespace, action: str = "") -> str:
    return f"/payouts/{segment(args.id)}" + (f"/{action}" if action else "")


async def payout_list(ctx: Context, args: argparse.Namespace) -> int:
    params = {"state": args.state, "provider": args.provider, "limit": args.limit}
    show = _table(ctx, PAYOUT_COLUMNS, "payouts", row=_payout_hold)
    return await ctx.one(PAYOUTS, "GET", "/payouts/", params=params, show=show)


async def payout_show(ctx: Context, args: argparse.Namespace) -> int:
    return await ctx.one(PAYOUTS, "GET", _payout(args), show=_record(ctx, f"payout {args.id}"))


def _payout_action(action: str, past: str, fields: Callable[[argparse.Namespace], dict[str, Any]]) -> Command:
    async def command(ctx: Context, args: argparse.Namespace) -> int:
        return await ctx.one(
            PAYOUTS, "POST", _payout(args, action), body=fields(args), show=_record(ctx, f"payout {args.id} {past}")
        )

    return command


payout_retry = _payout_action("retry", "retried", lambda a: {"reason": a.reason})
payout_cancel = _payout_action("cancel", "cancelled", lambda a: {"reason": a.reason})
payout_mark_paid = _payout_action("mark-paid", "marked paid", lambda a: {"reference": a.reference, "reason": a.reason})
payout_mark_failed = _payout_action("mark-failed", "marked failed", lambda a: {"code": a.code, "reason": a.reason})


DISAGREEMENT_COLUMNS = (
    "id", "payout_id", "provider", "payout_state", "reported", "status", "provider_status_now", "created_at",
)  # fmt: skip


async def payout_disagreements(ctx: Context, args: argparse.Namespace) -> int:
    return await ctx.one(
        PAYOUTS,
        "GET",
        "/disagreements/",
        params={"status": args.status, "limit": args.limit},
        show=_table(ctx, DISAGREEMENT_COLUMNS, "disagreements"),
    )


async def payout_acknowledge(ctx: Context, args: argparse.Namespace) -> int:
    return await ctx.one(
        PAYOUTS,
        "POST",
        f"/disagreements/{segment(args.id)}/acknowledge",
        body={"reason": args.reason},
        show=_record(ctx, f"disagreement {args.id} acknowledged"),
    )


# --- rounds (settlement) ------------------------------------------------------------------------------------
def _round(args: argparse.Namespace, action: str = "") -> str:
    return f"/rounds/{segment(args.id)}" + (f"/{action}" if action else "")


async def round_show(ctx: Context, args: argparse.Namespace) -> int:
    return await ctx.one(SETTLEMENT, "GET", _round(args), show=_record(ctx, f"round {args.id}"))


async def round_void(ctx: Context, args: argparse.Namespace) -> int:
    return await ctx.one(
        SETTLEMENT,
        "POST",
        _round(args, "void"),
        body={"reason": args.reason},
        show=_record(ctx, f"round {args.id} voided"),
    )


def read_placements(source: str, stdin: TextIO | None) -> list[Any]:
    """The placements to resolve a round with: a JSON array, or an object with `placements` (`-`: stdin)."""
    try:
        text = (
            (stdin.read() if stdin is not None else "") if source == "-" else Path(source).read_text(encoding="utf-8")
        )
    except OSError as err:
        raise UnusableArgumentError("--placements", f"{source}: {err.strerror or err}") from None
    try:
        document = json.loads(text)
    except ValueError as err:
        raise UnusableArgumentError("--placements", f"{source}: not JSON ({err})") from None
    placements = document.get("placements") if isinstance(document, dict) else document
    if not isinstance(placements, list) or not placements:
        raise UnusableArgumentError(
            "--placements", f"{source}: not a non-empty JSON array of placements (nor {{'placements': [...]}})"
        )
    return placements


async def round_resolve(ctx: Context, args: argparse.Namespace) -> int:
    body = {"placements": read_placements(args.placements, ctx.stdin), "reason": args.reason}
    return await ctx.one(
        SETTLEMENT, "POST", _round(args, "resolve"), body=body, show=_record(ctx, f"round {args.id} resolved")
    )


# --- held claims (rewards) ----------------------------------------------------------------------------------
HOLD_COLUMNS: Final = (
    "claim_id", "player_id", "asset", "amount", "status", "hold_code", "why_held", "hold_detail", "created_at",
)  # fmt: skip


def _claim_hold(row: Mapping[str, Any]) -> Mapping[str, Any]:
    """A held claim with why rewards held it, in its hold kind's words (an unknown code is still named)."""
    return {**row, "why_held": claim_hold_label(row.get("hold_code"))}


def _hold(args: argparse.Namespace, action: str) -> str:
    return f"/holds/{segment(args.id)}/{action}"


async def claim_held(ctx: Context, args: argparse.Namespace) -> int:
    show = _table(ctx, HOLD_COLUMNS, "held claims", row=_claim_hold)
    return await ctx.one(REWARDS, "GET", "/holds/", params={"limit": args.limit}, show=show)


async def claim_release(ctx: Context, args: argparse.Namespace) -> int:
    body = {"reason": args.reason} if args.reason is not None else {}
    return await ctx.one(
        REWARDS, "POST", _hold(args, "release"), body=body, show=_record(ctx, f"claim {args.id} released")
    )


async def claim_reject(ctx: Context, args: argparse.Namespace) -> int:
    return await ctx.one(
        REWARDS,
        "POST",
        _hold(args, "reject"),
        body={"reason": args.reason},
        show=_record(ctx, f"claim {args.id} rejected"),
    )


__all__ = ["Command", "Context", "UnusableArgumentError", "items_of", "merge_timelines", "pick", "read_placements"]
