"""prizeflow-ops against the real services (every one its own process, real Kafka and PostgreSQL): what an operator
does in the runbooks — fund, pause and resume a pool, resolve a stuck round and void another, release a held
claim, fail/retry/cancel/mark-paid payouts, redrive and purge dead letters — done through the CLI only, checked
against what the services then show. Exit codes are those docs/ops-cli.md promises.

The CLI runs in-process (`prizeflow_ops.run`, in a thread: it runs its own event loop) with a token from the
platform's dev identity; one test runs both entry points as processes, the way a runbook does:
`export PRIZEFLOW_OPS_TOKEN=$(uv run prizeflow-dev token --role ops --user alice)`.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from support import USDC, Api, GameServer, caught_up, claim, top_up, uid, wait_for

from prizeflow_contracts.events.game import PaidVia
from prizeflow_contracts.topics import GAME_ROUNDS
from prizeflow_devstack.platform import Platform
from prizeflow_ops import ExitCode, run
from prizeflow_runtime.settings import audience_for

pytestmark = pytest.mark.e2e

SERVICES = ("settlement", "rewards", "payouts", "webhooks")
OPS = ("ops",)
ADMIN = ("ops", "admin")


@dataclass(frozen=True)
class Ran:
    code: int
    stdout: str
    stderr: str

    @property
    def doc(self) -> Any:
        return json.loads(self.stdout)


class Ops:
    """`prizeflow-ops` pointed at the platform, as `user` holding `roles`."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.env = {f"PRIZEFLOW_{s.upper()}_URL": platform.url(s) for s in SERVICES}

    def token(self, user: str, roles: Sequence[str]) -> str:
        return self.platform.identity.issue(user, roles, audience=[audience_for(s) for s in SERVICES])

    async def __call__(self, *argv: str, user: str = "ops-alice", roles: Sequence[str] = OPS) -> Ran:
        env = {**self.env, "PRIZEFLOW_OPS_TOKEN": self.token(user, roles)}
        out, err = io.StringIO(), io.StringIO()
        code = await asyncio.to_thread(run, list(argv), env=env, stdout=out, stderr=err)
        return Ran(code, out.getvalue(), err.getvalue())

    async def ok(self, *argv: str, user: str = "ops-alice", roles: Sequence[str] = OPS) -> Any:
        ran = await self(*argv, "--json", user=user, roles=roles)
        assert ran.code == ExitCode.OK, f"{argv}: exit {ran.code}\n{ran.stderr}"
        return ran.doc


@pytest.fixture
def ops(platform: Platform) -> Ops:
    return Ops(platform)


def problem(ran: Ran) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(ran.stderr.splitlines()[0])
    return doc


async def test_a_token_from_prizeflow_dev_drives_prizeflow_ops_as_processes(platform: Platform, api: Api) -> None:
    bin_dir = Path(sys.executable).parent
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PRIZEFLOW_OPS")},
        "PRIZEFLOW_PROFILE": "dev",
        "JWT_JWKS_URL": platform.identity.jwks_url,  # the platform's identity, as `up` would give its services
    }
    minted = await asyncio.to_thread(
        subprocess.run,
        [str(bin_dir / "prizeflow-dev"), "token", "--role", "ops", "--user", "alice"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert minted.returncode == 0, minted.stderr
    token = minted.stdout.strip()
    campaign = uid("camp")
    await api.funded_campaign(campaign, 10 * USDC)
    ops_env = {
        **{k: v for k, v in os.environ.items() if k != "PRIZEFLOW_PROFILE"},
        "PRIZEFLOW_OPS_TOKEN": token,
        **{f"PRIZEFLOW_{s.upper()}_URL": platform.url(s) for s in SERVICES},
    }

    shown = await asyncio.to_thread(
        subprocess.run,
        [str(bin_dir / "prizeflow-ops"), "pool", "show", campaign, "--json"],
        env=ops_env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert (json.loads(shown.stdout)["campaign_id"], json.loads(shown.stdout)["funded"]) == (campaign, 10 * USDC)
    assert token not in shown.stdout + shown.stderr


async def test_pools_and_rounds_through_the_cli(
    platform: Platform, game: GameServer, api: Api, ops: Ops, tmp_path: Path
) -> None:
    campaign, stuck, open_round = uid("camp"), uid("round"), uid("round")
    a, b, c = uid("p"), uid("p"), uid("p")
    await api.ok(
        "POST", "rewards", "/campaigns/", user="sponsor", roles=["admin"],
        json={"campaign_id": campaign, "name": campaign, "asset": "USDC"},
    )  # fmt: skip

    funded = await ops.ok(
        "pool", "fund", campaign, "--amount", str(1_000 * USDC), "--reference", f"{campaign}-1", roles=ADMIN
    )
    assert (funded["applied"], funded["funded"]) == (True, 1_000 * USDC)
    again = await ops.ok(
        "pool", "fund", campaign, "--amount", str(1_000 * USDC), "--reference", f"{campaign}-1", roles=ADMIN
    )
    assert (again["applied"], again["funded"]) == (False, 1_000 * USDC)  # one reference funds once
    listed = await ops.ok("pool", "list")
    assert campaign in {p["campaign_id"] for p in listed}

    # A round closed without results is stuck: an admin resolves it with the results it vouches for.
    await game.sponsored_round(stuck, [a, b, c], campaign_id=campaign, prize=300 * USDC, results=False)
    await wait_for(lambda: ops("round", "show", stuck, "--json"), lambda r: r.code == 0 and r.doc["state"] == "closed")
    placements = tmp_path / "placements.json"
    placements.write_text(
        json.dumps([{"player_id": p, "rank": i + 1, "score": 100 - i} for i, p in enumerate((a, b, c))])
    )
    resolved = await ops.ok(
        "round", "resolve", stuck, "--placements", str(placements), "--reason", "video review", roles=ADMIN
    )
    assert resolved["round_id"] == stuck
    trace = await ops.ok("trace", stuck)
    assert ("settlement", "audit", "round.resolve") in {(e["service"], e["kind"], e["type"]) for e in trace["entries"]}
    assert await wait_for(lambda: api.available(a), lambda v: v == 150 * USDC) == 150 * USDC
    await wait_for(lambda: ops.ok("pool", "show", campaign), lambda p: p["remaining"] == 700 * USDC)

    paused = await ops.ok("pool", "pause", campaign, roles=ADMIN)
    assert paused["status"] == "paused"
    assert (await ops.ok("pool", "resume", campaign, roles=ADMIN))["status"] == "active"
    people = await ops("pool", "show", campaign)
    assert people.code == 0
    assert campaign in people.stdout

    # An open round is voided; voiding it again is a conflict.
    await game.sponsored_round(open_round, [a, b], campaign_id=campaign, prize=10 * USDC, close=False, results=False)
    await wait_for(lambda: ops("round", "show", open_round, "--json"), lambda r: r.code == 0)
    voided = await ops.ok("round", "void", open_round, "--reason", "server crashed", roles=ADMIN)
    assert voided["state"] == "voided"
    twice = await ops("round", "void", open_round, "--reason", "again", "--json", roles=ADMIN)
    assert twice.code == ExitCode.CONFLICT, twice.stderr
    assert problem(twice)["service"] == "settlement"

    assert (await ops("round", "show", uid("nope"))).code == ExitCode.NOT_FOUND
    player = await ops("pool", "pause", campaign, user=a, roles=["player"])
    assert player.code == ExitCode.DENIED


async def test_dead_letters_are_redriven_and_purged_through_the_cli(
    platform: Platform, game: GameServer, api: Api, ops: Ops
) -> None:
    campaign, round_id = uid("camp"), uid("round")
    payer, broke = uid("p"), uid("p")
    await api.funded_campaign(campaign, 100 * USDC)
    await top_up(api, payer, 10 * USDC)
    # `broke` cannot pay the entry fee from its wallet: rewards refuses that charge and keeps it as a dead letter.
    await game.sponsored_round(
        round_id, [payer, broke], campaign_id=campaign, prize=4 * USDC, entry_fee=1 * USDC, paid_via=PaidVia.WALLET
    )

    async def shortfall() -> list[dict[str, Any]]:
        doc = await ops.ok("dlq", "list", "--service", "rewards")
        return [d for d in doc["items"] if d["correlation_id"] == round_id and d["reason"] == "insufficient_funds"]

    (letter,) = await wait_for(shortfall, lambda found: len(found) == 1)
    assert letter["service"] == "rewards"
    shown = await ops.ok("dlq", "show", "rewards", str(letter["id"]))
    assert (shown["id"], shown["status"]) == (letter["id"], "open")

    # The round's prizes (one of them `broke`'s) are credited by their own events: wait until every consumer has
    # read everything, so that the balance below moves only by what the redrive does.
    await caught_up(platform)
    await top_up(api, broke, 5 * USDC)
    before = await api.available(broke)
    redriven = await ops.ok("dlq", "redrive", "rewards", str(letter["id"]), "--reason", "the player topped up")
    assert redriven["status"] == "redriven"
    once = await ops("dlq", "redrive", "rewards", str(letter["id"]), "--reason", "again", "--json")
    assert once.code == ExitCode.CONFLICT
    assert problem(once)["code"] == "not_open"
    assert await api.available(broke) == before - 1 * USDC  # the redrive charged the fee

    # A record no consumer can read: it can only be purged.
    topic = GAME_ROUNDS.name + platform.suffix
    sent = await game._producer.send_and_wait(topic, b'{"not": "an envelope"', key=round_id.encode())

    async def unreadable() -> list[dict[str, Any]]:
        doc = await ops.ok("dlq", "list", "--service", "settlement", "--topic", GAME_ROUNDS.name)
        return [d for d in doc["items"] if (d["partition"], d["offset"]) == (sent.partition, sent.offset)]

    (junk,) = await wait_for(unreadable, lambda found: len(found) == 1)
    refused = await ops("dlq", "redrive", "settlement", str(junk["id"]), "--reason", "try", "--json")
    assert refused.code == ExitCode.CONFLICT
    assert problem(refused)["code"] == "not_redrivable"
    purged = await ops.ok("dlq", "purge", "settlement", str(junk["id"]), "--reason", "a producer bug, fixed")
    assert purged["status"] == "discarded"

    everything = await ops.ok("dlq", "list", "--status", "all")  # every consuming service, every status
    decided = {(d["service"], d["id"]): d["status"] for d in everything["items"]}
    assert decided[("rewards", letter["id"])] == "redriven"
    assert decided[("settlement", junk["id"])] == "discarded"
    assert everything["failed"] == []
    people = await ops("dlq", "list", "--status", "discarded", "--service", "settlement")
    assert people.code == 0
    assert "discarded" in people.stdout

    # The round's flow, joined across the services: the refused charge and the operator's redrive are in it.
    trace = await ops.ok("trace", round_id)
    assert (sorted(trace["services"]), trace["failed"]) == (sorted(SERVICES), [])
    seen = {(e["service"], e["kind"], e["type"]) for e in trace["entries"]}
    assert ("rewards", "audit", "dead_letter.redrive") in seen
    assert ("rewards", "dead_letter") in {(service, kind) for service, kind, _ in seen}
    times = [datetime.fromisoformat(e["at"]) for e in trace["entries"]]
    assert times == sorted(times)
    assert (await ops("trace", round_id)).code == ExitCode.OK


async def test_held_claims_and_payouts_through_the_cli(platform: Platform, api: Api, ops: Ops) -> None:
    player = uid("p")
    await top_up(api, player, 100 * USDC)

    async def held(claim_id: str) -> None:
        doc = await ops.ok("claim", "held")
        assert claim_id in {c["claim_id"] for c in doc}
        released = await ops.ok("claim", "release", claim_id, "--reason", "known player")
        assert released["status"] != "held"

    async def payout_of(claim_id: str, state: str) -> dict[str, Any]:
        async def probe() -> list[dict[str, Any]]:
            doc = await ops.ok("payout", "list", "--provider", "manual", "--limit", "1000")
            return [p for p in doc["items"] if p["claim_id"] == claim_id]

        found = await wait_for(probe, lambda ps: len(ps) == 1 and ps[0]["state"] == state)
        return found[0]

    # A manual payout (paid by hand) fails for good: its reservation goes back to the wallet, so neither a retry nor
    # a cancel may touch it again (a paid retry would pay the player twice) — refused 409 `failure_final`.
    first = (await claim(api, player, 10 * USDC, {"type": "manual", "address": f"iban-{uid('a')}"})).json()
    assert first["status"] == "held", first  # a destination never used before waits for review
    await held(first["claim_id"])
    payout = await payout_of(first["claim_id"], "submitted")
    failed = await ops.ok("payout", "mark-failed", payout["id"], "--code", "account_closed", "--reason", "bank says so")
    assert failed["state"] == "failed"
    for verb in ("retry", "cancel"):
        refused = await ops("payout", verb, payout["id"], "--reason", "new details", "--json", roles=ADMIN)
        assert refused.code == ExitCode.CONFLICT, refused
        assert json.loads(refused.stderr)["code"] == "failure_final"
    shown = await ops("payout", "show", payout["id"])
    assert shown.code == 0
    assert "failed" in shown.stdout
    assert "history" in shown.stdout

    # Another is paid out of band and marked paid; the wallet is debited for good.
    second = (await claim(api, player, 20 * USDC, {"type": "manual", "address": f"iban-{uid('b')}"})).json()
    await held(second["claim_id"])
    other = await payout_of(second["claim_id"], "submitted")
    paid = await ops.ok("payout", "mark-paid", other["id"], "--reference", "bank-77", "--reason", "wired")
    assert paid["state"] == "paid"
    assert await wait_for(lambda: api.available(player), lambda v: v == 80 * USDC) == 80 * USDC

    rejected = (await claim(api, player, 5 * USDC, {"type": "manual", "address": f"iban-{uid('c')}"})).json()
    refused = await ops.ok("claim", "reject", rejected["claim_id"], "--reason", "looks like a mule account")
    assert refused["status"] == "rejected"
    assert (await ops("payout", "show", uid("nope"))).code == ExitCode.NOT_FOUND
    assert (await ops("claim", "release", uid("nope"))).code == ExitCode.NOT_FOUND


async def test_a_two_person_ledger_correction_and_a_pool_close_through_the_cli(api: Api, ops: Ops) -> None:
    """The over-allocation runbook: one operator proposes a compensating transfer, another approves it; then the
    pool is closed and its remainder swept to the treasury. All of it under the incident's correlation id."""
    campaign, incident = uid("camp"), uid("incident")
    await api.ok(
        "POST", "rewards", "/campaigns/", user="sponsor", roles=["admin"],
        json={"campaign_id": campaign, "name": campaign, "asset": "USDC"},
    )  # fmt: skip
    await ops.ok("pool", "fund", campaign, "--amount", str(100 * USDC), "--reference", f"{campaign}-1", roles=ADMIN)
    pool_account = f"campaign_pool:{campaign}"
    transfers = await ops.ok("ledger", "transfers", "--account", pool_account)
    (funding,) = [t for t in transfers["items"] if t["credit_account"] == pool_account]
    assert funding["amount"] == 100 * USDC

    propose = (
        "ledger", "propose", "--debit", pool_account, "--credit", funding["debit_account"], "--asset", "USDC",
        "--amount", str(10 * USDC), "--reason", "funded 10 USDC too much", "--reference", f"{incident}-fix",
        "--corrects", funding["transfer_id"], "--x-correlation-id", incident,
    )  # fmt: skip
    proposed = await ops.ok(*propose, user="ops-alice")
    assert (proposed["status"], proposed["proposed_by"]) == ("proposed", "ops-alice")
    again = await ops.ok(*propose, user="ops-alice")
    assert again["correction_id"] == proposed["correction_id"]  # one reference, one correction
    cid = proposed["correction_id"]

    same = await ops("ledger", "approve", cid, "--json", user="ops-alice", roles=["ops", "approver"])
    assert same.code == ExitCode.DENIED
    assert problem(same)["code"] == "same_person"
    applied = await ops.ok("ledger", "approve", cid, "--reason", "checked the books", user="bob", roles=["approver"])
    assert applied["status"] == "applied"
    assert applied["transfer_id"]
    assert (await ops.ok("pool", "show", campaign))["remaining"] == 90 * USDC
    listed = await ops.ok("ledger", "corrections", "--status", "applied")
    assert cid in {c["correction_id"] for c in listed["items"]}
    assert (await ops.ok("ledger", "show", cid))["approved_by"] == "bob"
    twice = await ops("ledger", "approve", cid, user="carol", roles=["approver"])
    assert twice.code == ExitCode.CONFLICT

    other = await ops.ok(*propose[:-4], "--reference", f"{incident}-wrong", "--x-correlation-id", incident)
    rejected = await ops.ok(
        "ledger", "reject", other["correction_id"], "--reason", "duplicate of the first", user="bob"
    )
    assert rejected["status"] == "rejected"

    closed = await ops.ok(
        "pool", "close", campaign, "--reason", "campaign over", "--x-correlation-id", incident, roles=ADMIN
    )
    assert (closed["status"], closed["swept"]) == ("closed", 90 * USDC)
    assert closed["transfer_id"]
    assert (await ops.ok("pool", "show", campaign))["remaining"] == 0

    trace = await ops.ok("trace", incident)
    rewards = {(e["kind"], e["type"]) for e in trace["entries"] if e["service"] == "rewards"}
    assert {kind for kind, _ in rewards} >= {"audit", "ledger"}, rewards
    people = await ops("trace", incident)
    assert people.code == ExitCode.OK
    assert campaign in people.stdout or cid in people.stdout
