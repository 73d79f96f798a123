"""`prizeflow-ops`: audited operations through the services' admin APIs, with the ops token (docs/ops-cli.md).

Exit codes: 0 ok; 1 refused by a service; 2 usage or configuration; 3 not found; 4 conflict;
5 unauthorized or forbidden; 6 unavailable (5xx, connection refused, timeout).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

import httpx

from prizeflow_ops import apiprobe, compliance, exports, preflight, recon
from prizeflow_ops import commands as c
from prizeflow_ops.client import ExitCode, OpsClient
from prizeflow_ops.config import DEAD_LETTER_SERVICES, PAYOUTS, REWARDS, SERVICES, SETTLEMENT, ConfigError, load_config
from prizeflow_ops.output import Output

PROG = "prizeflow-ops"


def _positive(text: str) -> int:
    """Minor units and counts: a plain decimal integer above zero (no `1e3`, no `1_000`, no `+5`)."""
    if not text.isascii() or not text.isdigit() or int(text) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return int(text)


def _parser_class(stdout: TextIO, stderr: TextIO) -> type[argparse.ArgumentParser]:
    """argparse writing help to `stdout` and usage errors to `stderr` (those `run` was given); still exits 2."""

    class Parser(argparse.ArgumentParser):
        def _print_message(self, message: str, file: Any = None) -> None:
            if message:
                (stderr if file is sys.stderr else stdout).write(message)

    return Parser


def _common() -> argparse.ArgumentParser:
    """Options every command accepts, before or after its name (`SUPPRESS`: a subcommand does not reset them)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS,
        help="the API's JSON on stdout; problems as JSON on stderr",
    )
    common.add_argument(
        "--x-correlation-id",
        dest="header_correlation_id",
        metavar="CID",
        default=argparse.SUPPRESS,
        help="sent as X-Correlation-Id: the action joins that flow's audit trail (where the service honours it)",
    )
    common.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="requests and answers on stderr (no credentials)",
    )
    return common


def build_parser(stdout: TextIO | None = None, stderr: TextIO | None = None) -> argparse.ArgumentParser:  # noqa: PLR0915 - one block per command
    common = _common()
    parser_class = _parser_class(stdout or sys.stdout, stderr or sys.stderr)
    parser = parser_class(
        prog=PROG, description=__doc__, parents=[common], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    groups = parser.add_subparsers(dest="group", required=True, metavar="COMMAND", parser_class=parser_class)

    def leaf(
        sub: Any,
        name: str,
        handler: c.Command,
        services: Sequence[str] | Callable[[argparse.Namespace], Sequence[str]],
        help_: str,
    ) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = sub.add_parser(name, parents=[common], help=help_, description=help_)
        p.set_defaults(handler=handler, services=services)
        return p

    def group(name: str, help_: str) -> Any:
        g = groups.add_parser(name, help=help_, description=help_)
        return g.add_subparsers(dest="command", required=True, metavar="ACTION", parser_class=parser_class)

    partial_help = "exit 0 when a service is unreachable (its problem is still printed)"

    p = leaf(groups, "trace", c.trace, SERVICES, "everything every service knows of one correlation id, in time order")
    p.add_argument("correlation_id", metavar="CORRELATION_ID")
    p.add_argument("--partial", action="store_true", help=partial_help)

    dlq = group("dlq", "dead letters: records a consumer refused")
    p = leaf(
        dlq,
        "list",
        c.dlq_list,
        lambda a: (a.service,) if a.service else DEAD_LETTER_SERVICES,
        "dead letters of one or every service",
    )
    p.add_argument("--service", choices=DEAD_LETTER_SERVICES)
    p.add_argument("--topic", help="source topic (its suffixed copies match too)")
    p.add_argument("--consumer", help="consumer (group) name")
    p.add_argument("--status", choices=(*c.DLQ_STATUSES, "all"), default="open")
    p.add_argument("--limit", type=_positive, default=100, help="at most this many per service and status (100)")
    p.add_argument("--partial", action="store_true", help=partial_help)
    for name, handler, help_ in (
        ("show", c.dlq_show, "one dead letter with its record"),
        ("redrive", c.dlq_redrive, "apply the record now with the consumer's own handler, once, audited"),
        ("purge", c.dlq_purge, "close the letter without applying it (discard), audited"),
    ):
        p = leaf(dlq, name, handler, lambda a: (a.service,), help_)
        p.add_argument("service", choices=DEAD_LETTER_SERVICES)
        p.add_argument("id", type=_positive)
        if name != "show":
            p.add_argument("--reason", required=True)

    fx = group("fx", "currency conversion's FX accounts (rewards, ADR 0015)")
    p = leaf(fx, "positions", c.fx_positions, (REWARDS,), "each FX account's position and its daily reconciliations")
    p.add_argument("--days", type=_positive, default=30, help="reconciliations of the last N days (30)")
    leaf(fx, "reconcile", c.fx_reconcile, (REWARDS,), "reconcile the FX accounts now (the daily job's pass)")

    pool = group("pool", "campaign reward pools (rewards)")
    leaf(pool, "list", c.pool_list, (REWARDS,), "every campaign with its pool's figures")
    for name, handler, help_ in (
        ("show", c.pool_show, "one campaign with its pool's figures"),
        ("pause", c.pool_pause, "stop allocating from the pool"),
        ("resume", c.pool_resume, "allocate from the pool again"),
        (
            "release-held",
            c.pool_release_held,
            "pay the rounds held for want of funds, oldest first, while it covers them",
        ),
    ):
        leaf(pool, name, handler, (REWARDS,), help_).add_argument("campaign", metavar="CAMPAIGN")
    p = leaf(pool, "fund", c.pool_fund, (REWARDS,), "move money from the treasury into the pool (once per reference)")
    p.add_argument("campaign", metavar="CAMPAIGN")
    p.add_argument("--amount", type=_positive, required=True, metavar="MINOR", help="minor units")
    p.add_argument("--reference", required=True, metavar="REF")
    p = leaf(pool, "close", c.pool_close, (REWARDS,), "close the campaign; its free remainder is swept to the treasury")
    p.add_argument("campaign", metavar="CAMPAIGN")
    p.add_argument("--reason", required=True)

    ledger = group("ledger", "ledger transfers and two-person compensating corrections (rewards)")
    p = leaf(ledger, "transfers", c.ledger_transfers, (REWARDS,), "transfers by correlation id or account")
    p.add_argument("--correlation-id", dest="correlation_id", metavar="CID")
    p.add_argument("--account", metavar="ACCOUNT", help="<kind>:<owner>, e.g. campaign_pool:spring-cup")
    p.add_argument("--limit", type=_positive, help="at most this many, newest first (the service's default: 100)")
    p.add_argument("--before", type=_positive, metavar="SEQ", help="older than this (a previous page's next_before)")
    p = leaf(
        ledger, "propose", c.ledger_propose, (REWARDS,), "propose a compensating transfer (another person approves)"
    )
    p.add_argument("--debit", required=True, metavar="ACCOUNT")
    p.add_argument("--credit", required=True, metavar="ACCOUNT")
    p.add_argument("--asset", required=True)
    p.add_argument("--amount", type=_positive, required=True, metavar="MINOR", help="minor units")
    p.add_argument("--reason", required=True)
    p.add_argument("--reference", required=True, metavar="REF", help="the same reference proposes once")
    p.add_argument("--corrects", metavar="TRANSFER_ID", help="the transfer this corrects")
    p = leaf(ledger, "corrections", c.ledger_corrections, (REWARDS,), "corrections, by status")
    p.add_argument("--status", choices=("proposed", "applied", "rejected"))
    p.add_argument("--limit", type=_positive)
    leaf(ledger, "show", c.ledger_show, (REWARDS,), "one correction").add_argument("id", metavar="ID")
    p = leaf(ledger, "approve", c.ledger_approve, (REWARDS,), "approve (not the proposer): posts the transfer")
    p.add_argument("id", metavar="ID")
    p.add_argument("--reason")
    p = leaf(ledger, "reject", c.ledger_reject, (REWARDS,), "reject a proposed correction")
    p.add_argument("id", metavar="ID")
    p.add_argument("--reason", required=True)

    payout = group("payout", "payouts")
    p = leaf(payout, "list", c.payout_list, (PAYOUTS,), "payouts, newest first")
    p.add_argument("--state")
    p.add_argument("--provider")
    p.add_argument("--limit", type=_positive, default=100)
    leaf(payout, "show", c.payout_show, (PAYOUTS,), "one payout with its history, attempts and approvals").add_argument(
        "id", metavar="ID"
    )
    decisions: tuple[tuple[str, c.Command, str], ...] = (
        ("retry", c.payout_retry, "send a failed payout again"),
        ("cancel", c.payout_cancel, "cancel a payout that has not been sent; its claim's money is released"),
    )
    for name, decide, help_ in decisions:
        p = leaf(payout, name, decide, (PAYOUTS,), help_)
        p.add_argument("id", metavar="ID")
        p.add_argument("--reason", required=True)
    p = leaf(payout, "mark-paid", c.payout_mark_paid, (PAYOUTS,), "a manual payout was paid out of band")
    p.add_argument("id", metavar="ID")
    p.add_argument("--reference", required=True, metavar="REF", help="the provider's reference")
    p.add_argument("--reason", required=True)
    p = leaf(payout, "mark-failed", c.payout_mark_failed, (PAYOUTS,), "a manual payout failed")
    p.add_argument("id", metavar="ID")
    p.add_argument("--code", required=True, help="a stable payout error code")
    p.add_argument("--reason", required=True)

    p = leaf(payout, "disagreements", c.payout_disagreements, (PAYOUTS,), "provider reports that contradicted a payout")
    p.add_argument("--status", choices=("checking", "stale", "contradiction", "acknowledged"))
    p.add_argument("--limit", type=_positive, default=100)
    p = leaf(
        payout,
        "acknowledge",
        c.payout_acknowledge,
        (PAYOUTS,),
        "record a person's decision on a contradiction (moves nothing)",
    )
    p.add_argument("id", metavar="DISAGREEMENT")
    p.add_argument("--reason", required=True)

    rounds = group("round", "game rounds (settlement)")
    leaf(rounds, "show", c.round_show, (SETTLEMENT,), "one round with its history").add_argument("id", metavar="ID")
    p = leaf(rounds, "void", c.round_void, (SETTLEMENT,), "void a round that is not final")
    p.add_argument("id", metavar="ID")
    p.add_argument("--reason", required=True)
    p = leaf(rounds, "resolve", c.round_resolve, (SETTLEMENT,), "settle a disputed or stuck round with these results")
    p.add_argument("id", metavar="ID")
    p.add_argument("--placements", required=True, metavar="FILE.json", help="a JSON array of placements (- for stdin)")
    p.add_argument("--reason", required=True)

    claims = group("claim", "claims held for review (rewards)")
    p = leaf(claims, "held", c.claim_held, (REWARDS,), "claims waiting for a review")
    p.add_argument("--limit", type=_positive, default=100)
    p = leaf(claims, "release", c.claim_release, (REWARDS,), "let a held claim go on to its payout")
    p.add_argument("id", metavar="ID")
    p.add_argument("--reason")
    p = leaf(claims, "reject", c.claim_reject, (REWARDS,), "refuse a held claim; its money returns to the wallet")
    p.add_argument("id", metavar="ID")
    p.add_argument("--reason", required=True)

    recon.register(group, leaf)
    exports.register(group, leaf)
    compliance.register(group, leaf)
    preflight.register(groups)
    apiprobe.register(groups)
    return parser


def run(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    stdout: TextIO,
    stderr: TextIO,
    stdin: TextIO | None = None,
    cwd: Path | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> int:
    """The command line, with everything it touches passed in: unit tests give a fake transport and buffers."""
    try:
        args = build_parser(stdout, stderr).parse_args(argv)
    except SystemExit as stop:  # --help (0) or a usage error (2): argparse has said what
        return ExitCode.USAGE if stop.code else ExitCode.OK
    if standalone := getattr(args, "standalone", None):  # a command that talks to no service (preflight)
        code: int = standalone(args, env, stdout, stderr)
        return code
    out = Output(stdout, stderr, json_mode=getattr(args, "json", False))
    services = args.services(args) if callable(args.services) else args.services
    try:
        config = load_config(env, services, cwd=cwd)
    except ConfigError as err:
        out.config_error(err.setting, err.detail)
        return ExitCode.USAGE

    def debug(line: str) -> None:
        stderr.write(f"{line}\n")

    client = OpsClient(
        config,
        transport=transport,
        correlation_id=getattr(args, "header_correlation_id", None),
        debug=debug if getattr(args, "debug", False) else None,
    )
    handler: c.Command = args.handler

    async def execute() -> int:
        async with client:
            return await handler(c.Context(client, out, stdin), args)

    try:
        return asyncio.run(execute())
    except c.UnusableArgumentError as err:
        out.config_error(err.option, err.detail)
        return ExitCode.USAGE


def main(argv: Sequence[str] | None = None) -> None:
    raise SystemExit(
        run(
            sys.argv[1:] if argv is None else argv,
            env=os.environ,
            stdout=sys.stdout,
            stderr=sys.stderr,
            stdin=sys.stdin,
        )
    )


__all__ = ["build_parser", "main", "run"]
