"""`prizeflow-ops export ...`: the finance exports (CSV) of a period, streamed from the services to a file or
stdout as they arrive (a year of a busy platform never sits in memory, here or in the service).

With `--output FILE` the export is written to `FILE.part` and renamed to FILE only once the service has sent all
of it: an export cut short (the service failed half-way, the connection dropped) leaves no FILE behind, exits 6,
and removes the partial one. Amounts are integers in minor units of each row's asset.
"""

from __future__ import annotations

import argparse
import codecs
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO, Final

from prizeflow_ops.client import ExitCode, segment
from prizeflow_ops.commands import Context, UnusableArgumentError
from prizeflow_ops.config import PAYOUTS, REWARDS

Leaf = Callable[..., argparse.ArgumentParser]
MAX_PERIOD: Final = timedelta(days=366)


def period_bound(text: str) -> datetime:
    """An ISO 8601 date or time (`2026-01-01`, `2026-01-01T06:00:00Z`); one without an offset is UTC."""
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 date or time (2026-01-01T00:00:00Z)") from None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Export:
    service: str
    path: str
    params: Mapping[str, str | None]
    filename: str


def _period(args: argparse.Namespace) -> dict[str, str | None]:
    """The checks the services make too, made before anything is sent."""
    since, until = args.since, args.until
    if until <= since:
        raise UnusableArgumentError("--until", f"must be after --since ({_iso(since)})")
    if until - since > MAX_PERIOD:
        raise UnusableArgumentError("--until", f"a period is at most {MAX_PERIOD.days} days: export it in parts")
    return {"since": _iso(since), "until": _iso(until)}


def ledger_export(args: argparse.Namespace) -> Export:
    params = {**_period(args), "asset": args.asset}
    return Export(REWARDS, "/v1/admin/exports/ledger.csv", params, "ledger.csv")


def payouts_export(args: argparse.Namespace) -> Export:
    params = {**_period(args), "provider": args.provider, "asset": args.asset}
    return Export(PAYOUTS, "/v1/admin/exports/payouts.csv", params, "payouts.csv")


def history_export(args: argparse.Namespace) -> Export:
    path = f"/v1/admin/exports/players/{segment(args.player_id)}/history.csv"
    return Export(REWARDS, path, _period(args), "history.csv")


def reconciliation_export(args: argparse.Namespace) -> Export:
    params = {**_period(args), "provider": args.provider}
    return Export(PAYOUTS, "/v1/admin/exports/reconciliation.csv", params, "reconciliation.csv")


class _TextSink:
    """Bytes to a text stream (stdout), decoded as they come: a character split between two pieces stays whole."""

    def __init__(self, write: Callable[[str], Any]) -> None:
        self._write = write
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.written = 0

    def __call__(self, piece: bytes) -> None:
        self._write(self._decoder.decode(piece))
        self.written += len(piece)

    def close(self) -> None:
        self._write(self._decoder.decode(b"", final=True))


async def _to_stdout(ctx: Context, export: Export) -> int:
    sink = _TextSink(ctx.out.stdout.write)
    answer = await ctx.client.download(export.service, export.path, params=export.params, sink=sink)
    sink.close()
    ctx.out.stdout.flush()
    if answer.problem is not None:
        ctx.out.problem(answer.problem, action=f"GET {export.path}")
        if sink.written:
            ctx.out.warning(f"the {sink.written} bytes written to stdout are an incomplete export: throw them away")
    return answer.exit_code


def _open_part(target: Path) -> tuple[Path, BinaryIO]:
    """`target.part`, open for writing (a local file: its writes are not worth a thread)."""
    if target.is_dir():
        raise UnusableArgumentError("--output", f"{target} is a directory")
    part = target.with_name(target.name + ".part")
    try:
        return part, part.open("wb")
    except OSError as err:
        raise UnusableArgumentError("--output", f"cannot be written: {err.strerror}") from err


def _finish(part: Path, handle: BinaryIO, target: Path, *, complete: bool) -> None:
    """Closed; renamed to `target` when complete (synced first), else removed."""
    with handle:
        if complete:
            handle.flush()
            os.fsync(handle.fileno())
    if complete:
        part.replace(target)
    else:
        part.unlink(missing_ok=True)


async def _to_file(ctx: Context, export: Export, target: Path) -> int:
    part, handle = _open_part(target)
    try:
        answer = await ctx.client.download(export.service, export.path, params=export.params, sink=handle.write)
    except BaseException:
        _finish(part, handle, target, complete=False)
        raise
    _finish(part, handle, target, complete=answer.problem is None)
    if answer.problem is not None:
        ctx.out.problem(answer.problem, action=f"GET {export.path}")
        return answer.exit_code
    summary = {"export": export.filename, "output": str(target), "bytes": answer.data, **export.params}
    if ctx.json_mode:
        ctx.out.document({k: v for k, v in summary.items() if v is not None})
    else:
        ctx.out.line(f"{export.filename}: {answer.data} bytes written to {target}")
    return ExitCode.OK


def _command(build: Callable[[argparse.Namespace], Export]) -> Callable[[Context, argparse.Namespace], Any]:
    async def run(ctx: Context, args: argparse.Namespace) -> int:
        export = build(args)
        if args.output is None or args.output == "-":
            return await _to_stdout(ctx, export)
        return await _to_file(ctx, export, Path(args.output))

    return run


export_ledger = _command(ledger_export)
export_payouts = _command(payouts_export)
export_player_history = _command(history_export)
export_reconciliation = _command(reconciliation_export)


def register(group: Callable[[str, str], Any], leaf: Leaf) -> None:
    """The `export` commands, added to the CLI's command table (cli.build_parser)."""
    exports = group("export", "finance exports of a period as CSV, streamed to a file or stdout")

    def period(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--since", required=True, type=period_bound, metavar="ISO", help="start, included (UTC)")
        p.add_argument("--until", required=True, type=period_bound, metavar="ISO", help="end, excluded (UTC)")
        p.add_argument("--output", metavar="FILE", help="write here (FILE.part until complete); default: stdout (or -)")
        return p

    p = period(leaf(exports, "ledger", export_ledger, (REWARDS,), "every ledger transfer of the period (rewards)"))
    p.add_argument("--asset", help="one asset only (e.g. USDC)")
    p = period(
        leaf(exports, "payouts", export_payouts, (PAYOUTS,), "every payout created in the period, no destinations")
    )
    p.add_argument("--provider", help="a provider name of providers.yaml")
    p.add_argument("--asset")
    p = leaf(
        exports,
        "player-history",
        export_player_history,
        (REWARDS,),
        "one player's wallet movements with their running balance (rewards)",
    )
    p.add_argument("player_id", metavar="PLAYER")
    period(p)
    p = period(
        leaf(
            exports,
            "reconciliation",
            export_reconciliation,
            (PAYOUTS,),
            "the reconciliation exceptions opened in the period (payouts)",
        )
    )
    p.add_argument("--provider")


__all__ = [
    "export_ledger",
    "export_payouts",
    "export_player_history",
    "export_reconciliation",
    "period_bound",
    "register",
]
