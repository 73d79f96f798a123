"""`prizeflow-ops compliance ...` against the real payouts service (its own process, PostgreSQL behind it): the
risk policy's two-admin flow as the runbooks drive it (propose from a file, payouts' 422 naming the field, the
proposer refused, a second admin deciding), a player's record, and the exit codes docs/ops-cli.md promises.

The proposal made here is rejected, never approved: the session's active policy stays what the other tests set."""

from __future__ import annotations

import asyncio
import io
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from prizeflow_devstack.platform import Platform
from prizeflow_ops import ExitCode, run
from prizeflow_runtime.settings import audience_for

pytestmark = pytest.mark.e2e

# Never reached by any test's amounts.
HARMLESS = [{"scope": {"asset": "USDC"}, "player_limit": {"amount": 9_000_000_000_000_000_000, "window_s": 60}}]


@dataclass(frozen=True)
class Ran:
    code: int
    stdout: str
    stderr: str


async def cli(platform: Platform, *argv: str, user: str, roles: Sequence[str]) -> Ran:
    token = platform.identity.issue(user, roles, audience=[audience_for("payouts")])
    env = {"PRIZEFLOW_PAYOUTS_URL": platform.url("payouts"), "PRIZEFLOW_OPS_TOKEN": token}
    out, err = io.StringIO(), io.StringIO()
    code = await asyncio.to_thread(run, list(argv), env=env, stdout=out, stderr=err)
    return Ran(code, out.getvalue(), err.getvalue())


def problem(ran: Ran) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(ran.stderr.splitlines()[0])
    return doc


async def test_a_policy_version_through_the_cli_two_admins_and_a_player(platform: Platform, tmp_path: Path) -> None:
    proposer, second = f"admin-{uuid.uuid4().hex[:8]}", f"admin-{uuid.uuid4().hex[:8]}"
    admin = ("admin",)
    before = json.loads((await cli(platform, "compliance", "policy", "--json", user=proposer, roles=admin)).stdout)

    short = tmp_path / "short.json"
    short.write_text(json.dumps([{"scope": {"asset": "USDC"}, "velocity": {"count": 3, "window_s": 5}}]))
    refused = await cli(platform, "compliance", "propose", "--rules", str(short), "--reason", "too short", "--json",
                        user=proposer, roles=admin)  # fmt: skip
    assert refused.code == ExitCode.REFUSED, refused.stderr
    assert "velocity.window_s" in json.dumps(problem(refused).get("errors"))

    harmless = tmp_path / "harmless.json"
    harmless.write_text(json.dumps({"rules": HARMLESS, "note": "ops CLI end to end"}))
    made = await cli(platform, "compliance", "propose", "--rules", str(harmless), "--reason", "e2e", "--json",
                     user=proposer, roles=admin)  # fmt: skip
    assert made.code == ExitCode.OK, made.stderr
    proposal = json.loads(made.stdout)
    assert (proposal["status"], proposal["proposed_by"]) == ("proposed", proposer)
    assert proposal["policy"]["note"] == "ops CLI end to end"

    own = await cli(platform, "compliance", "approve", str(proposal["id"]), "--reason", "mine", user=proposer,
                    roles=admin)  # fmt: skip
    assert own.code == ExitCode.DENIED, own.stderr
    rejected = await cli(platform, "compliance", "reject", str(proposal["id"]), "--reason", "e2e: not applied",
                         "--json", user=second, roles=admin)  # fmt: skip
    assert rejected.code == ExitCode.OK, rejected.stderr
    assert json.loads(rejected.stdout)["status"] == "rejected"

    after = json.loads((await cli(platform, "compliance", "policy", "--json", user=second, roles=admin)).stdout)
    assert after["active"] == before["active"]
    assert proposal["id"] in {p["id"] for p in after["proposals"] if p["status"] == "rejected"}

    player = f"player-{uuid.uuid4().hex[:10]}"
    shown = await cli(platform, "compliance", "player", player, "--json", user="alice", roles=("approver",))
    assert shown.code == ExitCode.OK, shown.stderr
    assert json.loads(shown.stdout)["status"] == "not_started"
    forbidden = await cli(platform, "compliance", "propose", "--rules", str(harmless), "--reason", "r",
                          user="alice", roles=("approver",))  # fmt: skip
    assert forbidden.code == ExitCode.DENIED
