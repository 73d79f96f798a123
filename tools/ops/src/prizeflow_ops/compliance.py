"""`prizeflow-ops compliance ...`: the risk policy, a player's verification and the gate's decisions, and the
sanctions lists, through payouts' compliance admin API.

Payouts decides everything (docs/adr/0012): a policy version is proposed by one admin and takes effect when a
second, different admin approves it (`stale_policy` when another version became active in between); a screening
hit is cleared by two different approvers on the payout (`payout approve`). The CLI only checks what it can without
asking (the rules file is a JSON list of rules) and shows the answer.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final, TextIO

from prizeflow_ops.client import ExitCode, segment
from prizeflow_ops.commands import Context, UnusableArgumentError, pick
from prizeflow_ops.config import PAYOUTS

BASE: Final = "/v1/admin/compliance"
PROPOSAL_COLUMNS: Final = (
    "id", "version", "status", "proposed_by", "proposed_at", "reason", "decided_by", "decided_at",
)  # fmt: skip
LIST_COLUMNS: Final = ("source", "version", "published_at", "entries", "loaded_at", "sha256")
HISTORY_COLUMNS: Final = ("at", "status", "detail")
MATCH_COLUMNS: Final = ("source", "entry_uid", "entry_name", "kind", "score")
DECISION_COLUMNS: Final = ("at", "payout_id", "stage", "action", "reasons", "policy_version", "list_versions")
# What a refusal of approve/reject means for the person who got it.
DECIDE_HINTS: Final[Mapping[str, str]] = {
    "stale_policy": "another version became active after this proposal: propose again from the active policy",
    "self_approval": "you proposed it: a second admin approves or rejects it",
}

Leaf = Callable[..., argparse.ArgumentParser]


def _rows(data: Any, key: str | None = None) -> list[Mapping[str, Any]]:
    rows = data.get(key) if key is not None and isinstance(data, Mapping) else data
    return [r for r in rows if isinstance(r, Mapping)] if isinstance(rows, list) else []


def read_rules(source: str, stdin: TextIO | None) -> tuple[list[Any], str | None]:
    """The rules to propose: a JSON array of rules, or a policy document `{"rules": [...], "note": ...}` (as
    `compliance policy --json` prints the active one's `policy`); `-` reads stdin."""
    try:
        text = (
            (stdin.read() if stdin is not None else "") if source == "-" else Path(source).read_text(encoding="utf-8")
        )
    except OSError as err:
        raise UnusableArgumentError("--rules", f"{source}: {err.strerror or err}") from None
    try:
        document = json.loads(text)
    except ValueError as err:
        raise UnusableArgumentError("--rules", f"{source}: not JSON ({err})") from None
    note = None
    if isinstance(document, dict):
        note = document.get("note") if isinstance(document.get("note"), str) else None
        document = document.get("rules")
    if not isinstance(document, list):
        raise UnusableArgumentError("--rules", f"{source}: not a JSON array of rules (nor {{'rules': [...]}})")
    return document, note


def _show_policy(ctx: Context) -> Callable[[Any], None]:
    def show(data: Any) -> None:
        active = data.get("active") if isinstance(data, Mapping) else None
        if isinstance(active, Mapping):
            found = active.get("policy")
            policy: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
            facts = {k: v for k, v in active.items() if k != "policy"}
            ctx.out.record(
                {**facts, "note": policy.get("note", "")}, title=f"active risk policy v{active.get('version')}"
            )
            for i, rule in enumerate(_rows(policy, "rules")):
                ctx.out.record(rule, title=f"rule {i}")
        else:
            ctx.out.line("active risk policy: none (the empty policy, version 0, applies)", style="dim")
        proposals = _rows(data, "proposals")
        ctx.out.table(proposals, pick(proposals, PROPOSAL_COLUMNS), title="proposals")

    return show


def _show_record(ctx: Context, title: str) -> Callable[[Any], None]:
    def show(data: Any) -> None:
        ctx.out.record(data, title=title)

    return show


def _show_player(ctx: Context, player_id: str) -> Callable[[Any], None]:
    """The verification, then its history, the screening and its matches, then every gate decision."""

    def show(data: Any) -> None:
        if not isinstance(data, Mapping):
            ctx.out.record(data, title=f"player {player_id}")
            return
        parts = {"history", "screening", "decisions"}
        ctx.out.record({k: v for k, v in data.items() if k not in parts}, title=f"verification of {player_id}")
        history = _rows(data, "history")
        ctx.out.table(history, pick(history, HISTORY_COLUMNS), title="verification history")
        found = data.get("screening")
        screening: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
        ctx.out.record({k: v for k, v in screening.items() if k != "matches"}, title="screening")
        matches = _rows(screening, "matches")
        ctx.out.table(matches, pick(matches, MATCH_COLUMNS), title="list entries matched")
        decisions = _rows(data, "decisions")
        ctx.out.table(decisions, pick(decisions, DECISION_COLUMNS), title="gate decisions")

    return show


def _show_lists(ctx: Context, title: str) -> Callable[[Any], None]:
    def show(data: Any) -> None:
        rows = _rows(data)
        ctx.out.table(rows, pick(rows, LIST_COLUMNS), title=title)

    return show


async def compliance_policy(ctx: Context, args: argparse.Namespace) -> int:
    return await ctx.one(PAYOUTS, "GET", f"{BASE}/policy", show=_show_policy(ctx))


async def compliance_propose(ctx: Context, args: argparse.Namespace) -> int:
    rules, note = read_rules(args.rules, ctx.stdin)
    body = {"policy": {"rules": rules, "note": args.note if args.note is not None else (note or "")},
            "reason": args.reason}  # fmt: skip
    show = _show_record(ctx, "proposed: a second admin approves it (`compliance approve`)")
    return await ctx.one(PAYOUTS, "POST", f"{BASE}/policy/proposals", body=body, show=show)


async def _decide(ctx: Context, args: argparse.Namespace, decision: str) -> int:
    path = f"{BASE}/policy/proposals/{segment(args.id)}/{decision}"
    answer = await ctx.client.call(PAYOUTS, "POST", path, body={"reason": args.reason})
    if answer.problem is not None:
        ctx.out.problem(answer.problem, action=f"POST {path}")
        hint = DECIDE_HINTS.get(answer.problem.code or "")
        if hint:
            ctx.out.warning(hint)
        return answer.exit_code
    if ctx.json_mode:
        ctx.out.document(answer.data)
    else:
        done = "approved: it is the active risk policy" if decision == "approve" else "rejected"
        ctx.out.record(answer.data, title=f"proposal {args.id} {done}")
    return ExitCode.OK


async def compliance_approve(ctx: Context, args: argparse.Namespace) -> int:
    return await _decide(ctx, args, "approve")


async def compliance_reject(ctx: Context, args: argparse.Namespace) -> int:
    return await _decide(ctx, args, "reject")


async def compliance_player(ctx: Context, args: argparse.Namespace) -> int:
    path = f"{BASE}/players/{segment(args.player_id)}"
    return await ctx.one(PAYOUTS, "GET", path, show=_show_player(ctx, args.player_id))


async def compliance_lists(ctx: Context, args: argparse.Namespace) -> int:
    return await ctx.one(PAYOUTS, "GET", f"{BASE}/screening/lists", show=_show_lists(ctx, "sanctions lists loaded"))


async def compliance_refresh(ctx: Context, args: argparse.Namespace) -> int:
    """Fetches every list from its publisher while the command waits: a slow publisher may need a longer
    PRIZEFLOW_OPS_TIMEOUT_S."""
    show = _show_lists(ctx, "sanctions lists after the refresh")
    return await ctx.one(PAYOUTS, "POST", f"{BASE}/screening/refresh", body={}, show=show)


def register(group: Callable[[str, str], Any], leaf: Leaf) -> None:
    """The `compliance` commands, added to the CLI's command table (cli.build_parser)."""
    compliance = group("compliance", "risk policy, players' verification and screening, sanctions lists (payouts)")
    leaf(compliance, "policy", compliance_policy, (PAYOUTS,), "the active risk policy and the proposals")
    p = leaf(
        compliance,
        "propose",
        compliance_propose,
        (PAYOUTS,),
        "propose a new risk policy version (a second admin approves)",
    )
    p.add_argument(
        "--rules", required=True, metavar="FILE.json", help="a JSON array of rules, or {'rules': [...]} (- for stdin)"
    )
    p.add_argument("--note", help="the version's note (else the file's `note`)")
    p.add_argument("--reason", required=True)
    for name, handler, text in (
        ("approve", compliance_approve, "approve another admin's proposal: it becomes the active policy"),
        ("reject", compliance_reject, "reject a proposal"),
    ):
        p = leaf(compliance, name, handler, (PAYOUTS,), text)
        p.add_argument("id", metavar="PROPOSAL")
        p.add_argument("--reason", required=True)
    p = leaf(
        compliance, "player", compliance_player, (PAYOUTS,), "a player's verification, screening and gate decisions"
    )
    p.add_argument("player_id", metavar="PLAYER")
    leaf(compliance, "lists", compliance_lists, (PAYOUTS,), "the sanctions lists loaded (source, version, entries)")
    leaf(compliance, "refresh", compliance_refresh, (PAYOUTS,), "fetch every configured sanctions list now (admin)")


__all__ = ["DECIDE_HINTS", "read_rules", "register"]
