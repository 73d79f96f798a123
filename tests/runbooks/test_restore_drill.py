"""The restore drill: docs/runbooks/restore.md, every command as written, on real PostgreSQL archiving to a real
S3-compatible server (moto's, on localhost) with barman-cloud, real Kafka, and the whole platform paying through
the Stripe emulator.

The platform runs on a PostgreSQL cluster of the drill's own that archives its log (runbook:archive). Players win
rounds and are paid; a base backup is taken (runbook:backup); more are paid; one claim waits for a person; one
payout is in flight at the provider (Stripe has made the bank payout, its answer is held back); then the target is
read from the database's clock. After the target more players are paid, a round is settled, and the in-flight
payout completes. The services stop, the cluster is restored to the target into a new one (runbook:restore), the
consumer groups are rewound (runbook:rewind), and the services start on the restored databases with the recovery
window open. Then:

- the restored ledger balances, holds every transfer committed before the target and none after;
- the payout in flight at the target is found at Stripe and paid, never sent again;
- nothing is paid twice at Stripe: every account received exactly one transfer and one bank payout, including
  the players paid after the target whose requests came back from Kafka;
- what happened after the target comes back from Kafka: the round settled after it credits its winner once;
- what the ledger lost (claims accepted after the target) is a dead letter for a person, never silently
  absorbed; while the review window is open every claim waits for a person, and once a player is flagged
  (runbook:reconcile) their claims wait for one after it too;
- the claim waiting for a person at the target still waits, and pays once when released.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from runbook_docs import fill, load
from runbook_shell import RunbookShell
from support import Api, GameServer, claim_status, groups_of, ledger_invariants, uid, wait_for

from prizeflow_contracts.events.game import DistributionTemplate
from prizeflow_devstack.archive import (
    Cluster,
    ObjectStore,
    barman_bin,
    db_user_argv,
    drill_env,
    drill_workdir,
)
from prizeflow_devstack.infra import Infra
from prizeflow_devstack.kafka import ensure_jars, java_bin
from prizeflow_devstack.paths import find_root
from prizeflow_devstack.platform import Platform
from prizeflow_devstack.ports import pick_free_port
from prizeflow_devstack.procs import tail
from prizeflow_testkit import fetch
from prizeflow_testkit.stripe import StripeAdmin

pytestmark = pytest.mark.e2e

USD = 100  # minor units in one dollar
SERVER = "prizeflow"  # the cluster's name in the archive
RESTORED_SERVER = "prizeflow-restored"
PRIZE = 30 * USD
CLAIM = 20 * USD  # below USD's auto-approval threshold (deploy/local/providers.yaml): no approver needed
# How long what the services do after a step may take to show: a bound, not a speed (CI runs this lane beside three
# others and the cluster's build on two cores, where the restarted services replay their topics slowly).
AFTER_S = 180.0
# The Kafka CLI the runbook names, from the devstack's own Kafka jars.
KAFKA_CLI = """#!/bin/sh
exec "{java}" -Dlog4j2.level=warn -cp "{libs}/*" org.apache.kafka.tools.consumer.group.ConsumerGroupCommand "$@"
"""


@dataclass
class Drill:
    workdir: Path
    store: ObjectStore
    env: dict[str, str]
    clusters: list[Cluster] = field(default_factory=list)

    def cluster(self, name: str) -> Cluster:
        cluster = Cluster(self.workdir / name, pick_free_port(), self.env)
        self.clusters.append(cluster)
        return cluster

    def values(self, cluster: Cluster, **more: str) -> dict[str, str]:
        return {
            "endpoint": self.store.endpoint,
            "bucket": self.store.bucket,
            "server": SERVER,
            "admin_url": cluster.admin_url,
            "host": "127.0.0.1",
            "port": str(cluster.port),
            "pgdata": str(cluster.data),
            **more,
        }

    async def run(
        self, runbook: str, procedure: str, values: Mapping[str, str], *, as_db_user: bool = True
    ) -> list[str]:
        """Each command line of the runbook's block, filled in, in bash: as the database's OS user on its host
        (the PostgreSQL and barman-cloud steps), or as the operator (Kafka's CLI)."""
        outputs: list[str] = []
        for line in load(runbook).procedure(procedure).command_lines():
            command = fill(line, values)
            argv = ["bash", "-c", f"set -euo pipefail\n{command}"]
            if as_db_user:
                argv, env = db_user_argv(argv, self.env), None
            else:
                env = {**os.environ, "PATH": f"{self.workdir / 'bin'}{os.pathsep}{os.environ['PATH']}"}
            done = await asyncio.to_thread(
                subprocess.run, argv, cwd=self.workdir, env=env, capture_output=True, text=True, timeout=600
            )
            assert done.returncode == 0, (
                f"{runbook}.md runbook:{procedure}: `{command}` exited {done.returncode}\n"
                f"--- stdout ---\n{done.stdout}\n--- stderr ---\n{done.stderr}"
                + "".join(f"\n--- {c.log} ---\n{tail(c.log, 30)}" for c in self.clusters)
            )
            outputs.append(done.stdout)
        return outputs


@pytest.fixture
def drill() -> Iterator[Drill]:
    workdir = drill_workdir()
    store = ObjectStore(workdir)
    drill = Drill(workdir, store, {})
    try:
        barman = barman_bin(find_root())
        store.start()
        drill.env.update(drill_env(barman, store))
        (workdir / "bin").mkdir()
        cli = workdir / "bin" / "kafka-consumer-groups.sh"
        cli.write_text(KAFKA_CLI.format(java=java_bin(), libs=ensure_jars()))
        cli.chmod(0o755)
        yield drill
    finally:
        for cluster in drill.clusters:
            cluster.stop()
        store.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
async def platform_on(drill: Drill, kafka_bootstrap: str, tmp_path: Path) -> AsyncIterator[tuple[Platform, Cluster]]:
    primary = drill.cluster("primary").initdb().start()
    await drill.run("restore", "archive", drill.values(primary))
    platform = Platform(
        Infra(primary.database_url("postgres"), kafka_bootstrap, managed=False),
        tmp_path / "platform",
        env={
            "CONSUMER_RETRY_MAX_ATTEMPTS": "3",
            "PAYOUTS_WORKER_INTERVAL_MS": "100",
            "PAYOUTS_LEASE_SECONDS": "5",  # a payout left `submitting` at the target is resumed soon after
        },
    )
    try:
        platform.start()
        yield platform, primary
    finally:
        platform.stop(drop_databases=False)  # the clusters go with the drill's directory


def documented_groups_pattern() -> str:
    """The `<groups>` regular expression restore.md gives for production."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "runbooks" / "restore.md").read_text(encoding="utf-8")
    found = re.search(r"`<groups>` is `([^`]+)`", text)
    assert found, "restore.md no longer says what <groups> is"
    return found.group(1)


def moved(url: str, port: int) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{parts.username}@{parts.hostname}:{port}"))


class Flows:
    def __init__(self, platform: Platform, api: Api, game: GameServer, stripe: StripeAdmin, campaign: str) -> None:
        self.platform, self.api, self.game, self.stripe, self.campaign = platform, api, game, stripe, campaign
        self.accounts: dict[str, str] = {}

    async def win(self, player: str) -> None:
        before = await self.api.available(player, "USD")
        await self.game.sponsored_round(
            uid("round"), [player, uid("rival")], campaign_id=self.campaign, prize=PRIZE,
            template=DistributionTemplate.WINNER_TAKES_ALL, asset="USD",
        )  # fmt: skip
        await wait_for(lambda: self.api.available(player, "USD"), lambda v: v == before + PRIZE)

    async def claim(self, player: str, *, release: bool = True) -> dict[str, Any]:
        if player not in self.accounts:
            self.accounts[player] = (await self.stripe.create_account())["id"]
        claim: dict[str, Any] = await self.api.ok(
            "POST", "rewards", "/claims/", user=player, roles=["player"],
            json={"asset": "USD", "amount": CLAIM,
                  "destination": {"type": "stripe_account", "address": self.accounts[player]}},
            headers={"Idempotency-Key": uid("k")},
        )  # fmt: skip
        if claim["status"] == "held" and release:  # a destination never used before waits for a person
            await self.release(claim["claim_id"])
        return claim

    async def release(self, claim_id: str) -> None:
        await self.api.ok("POST", "rewards", f"/holds/{claim_id}/release", user="ops-1", roles=["ops"], json={})

    async def paid(self, player: str, claim_id: str) -> None:
        await wait_for(lambda: claim_status(self.api, player, claim_id), lambda s: s == "paid", timeout=AFTER_S)

    async def stripe_books(self, player: str) -> tuple[int, int]:
        """What Stripe did for the player's account: transfers to it and bank payouts from it, each request
        Stripe processed and did not answer from its idempotency store."""
        account = self.accounts[player]
        transfers = [
            r for r in await self.stripe.requests(method="POST", path="/v1/transfers")
            if r["params"].get("destination") == account and r["status"] == 200 and not r["replayed"]
        ]  # fmt: skip
        payouts = [
            r for r in await self.stripe.requests(method="POST", path="/v1/payouts")
            if r["account"] == account and r["status"] == 200 and not r["replayed"]
        ]  # fmt: skip
        return len(transfers), len(payouts)

    async def stripe_calls(self, player: str) -> tuple[int, int]:
        """Every transfer and bank payout Prizeflow asked Stripe to make for the player, however Stripe answered
        (a repeat under the same idempotency key included: a payout sent blindly again counts here)."""
        account = self.accounts[player]
        transfers = [
            r for r in await self.stripe.requests(method="POST", path="/v1/transfers")
            if r["params"].get("destination") == account
        ]  # fmt: skip
        payouts = [r for r in await self.stripe.requests(method="POST", path="/v1/payouts") if r["account"] == account]
        return len(transfers), len(payouts)


async def test_a_point_in_time_restore_keeps_everything_before_the_target_and_pays_nothing_twice(
    drill: Drill, platform_on: tuple[Platform, Cluster], kafka_bootstrap: str, tmp_path: Path
) -> None:
    platform, primary = platform_on
    api, game = Api(platform), GameServer(kafka_bootstrap, platform.suffix)
    await game.start()
    stripe = StripeAdmin(platform.url("stripe-api"))
    try:
        campaign = uid("camp")
        await api.funded_campaign(campaign, 1_000 * USD, asset="USD")
        flows = Flows(platform, api, game, stripe, campaign)
        a1, a2, b1, held, inflight, c1, c2, d1 = (uid(n) for n in ("a1", "a2", "b1", "h", "f", "c1", "c2", "d1"))

        # -- before the base backup: two players paid -------------------------------------------------------
        for player in (a1, a2):
            await flows.win(player)
            await flows.paid(player, (await flows.claim(player))["claim_id"])
        await drill.run("restore", "backup", drill.values(primary))

        # -- after it, before the target: one paid, one waiting for a person, one in flight at Stripe ----------
        await flows.win(b1)
        await flows.paid(b1, (await flows.claim(b1))["claim_id"])
        await flows.win(held)
        held_claim = (await flows.claim(held, release=False))["claim_id"]
        assert await claim_status(api, held, held_claim) == "held"
        await flows.win(inflight)
        # Stripe makes the bank payout and holds its answer back 8 s: the payout is `submitting`, its outcome
        # unknown to Prizeflow, the money gone from the platform's balance.
        await stripe.fault("timeout_after_success", method="POST", path_prefix="/v1/payouts", delay_ms=8_000)
        inflight_claim = (await flows.claim(inflight))["claim_id"]
        payouts_db = platform.procs["payouts"].database_url
        rewards_db = platform.procs["rewards"].database_url
        assert payouts_db is not None
        assert rewards_db is not None

        async def at_stripe() -> list[dict[str, Any]]:
            return [
                r for r in await stripe.requests(method="POST", path="/v1/payouts")
                if r["account"] == flows.accounts[inflight] and r["fault"] == "timeout_after_success"
            ]  # fmt: skip

        await wait_for(at_stripe, lambda found: len(found) == 1)
        state = await fetch(payouts_db, "SELECT state FROM payouts WHERE claim_id = $1", inflight_claim)
        assert [r["state"] for r in state] == ["submitting"]

        # -- the target: the database's own clock, with the ledger as it stands --------------------------------
        (row,) = await fetch(
            rewards_db, "SELECT clock_timestamp() AS target, array_agg(id ORDER BY id) AS ids FROM ledger_transfers"
        )
        target: datetime = row["target"]
        before_target = set(row["ids"])

        # -- after the target: the in-flight payout completes, two more players are paid, a round is settled ---
        await flows.paid(inflight, inflight_claim)
        after_target: dict[str, str] = {}
        for player in (c1, c2):
            await flows.win(player)
            after_target[player] = (await flows.claim(player))["claim_id"]
            await flows.paid(player, after_target[player])
        await flows.win(d1)
        books = {p: await flows.stripe_books(p) for p in (a1, a2, b1, inflight, c1, c2)}
        assert set(books.values()) == {(1, 1)}, books

        # -- the disaster: the services stop; what the primary has not archived is pushed, and kept ------------
        with_db = [name for name, proc in platform.procs.items() if proc.database_url is not None]
        for name in with_db:
            platform.terminate(name)  # its consumers leave their groups: a group with members cannot be rewound
        await drill.run("restore", "backup", drill.values(primary))
        listed = "".join(await drill.run("restore", "inspect", drill.values(primary)))
        assert listed.count("\n") >= 3, listed  # a header and the two base backups
        primary.stop()

        # -- the restore, into a new cluster ------------------------------------------------------------------
        restored = drill.cluster("restored")
        target_text = target.isoformat(sep=" ")
        await drill.run(
            "restore",
            "restore",
            drill.values(
                primary,
                target_time=target_text,
                restore_pgdata=str(restored.data),
                restore_port=str(restored.port),
                restore_server=RESTORED_SERVER,
                restore_admin_url=restored.admin_url,
            ),
        )
        for name in with_db:
            proc = platform.procs[name]
            assert proc.database_url is not None
            proc.database_url = moved(proc.database_url, restored.port)
        rewards_db = platform.procs["rewards"].database_url
        payouts_db = platform.procs["payouts"].database_url
        assert rewards_db is not None
        assert payouts_db is not None

        # The restored ledger: every transfer before the target, none after, balancing per asset.
        restored_ids = {r["id"] for r in await fetch(rewards_db, "SELECT id FROM ledger_transfers")}
        assert restored_ids == before_target
        await ledger_invariants(platform)
        # The claims after the target are not in it; the held one waits; the in-flight payout is `submitting`.
        lost = await fetch(rewards_db, "SELECT id FROM claims WHERE id = ANY($1::text[])", list(after_target.values()))
        assert lost == []
        state = await fetch(payouts_db, "SELECT state FROM payouts WHERE claim_id = $1", inflight_claim)
        assert [r["state"] for r in state] == ["submitting"]

        # -- the consumers rewound to an hour before the target, the services started on the restored cluster --
        rewind_to = (target - timedelta(hours=1)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        # The runbook's pattern, as documented, must name every consumer group the platform has (here each carries
        # the platform's topic suffix, which the drill appends).
        groups = documented_groups_pattern()
        named = [g.removesuffix(platform.suffix) for g in await groups_of(platform)]
        assert named, "the platform has no consumer groups"
        assert [g for g in named if not re.match(groups, g)] == [], groups
        await drill.run(
            "restore",
            "rewind",
            {"kafka": kafka_bootstrap, "groups": groups.removesuffix("$") + re.escape(platform.suffix) + "$",
             "rewind_to": rewind_to},
            as_db_user=False,
        )  # fmt: skip
        window = (datetime.now(UTC) + timedelta(hours=6)).isoformat()
        platform.service_env.setdefault("payouts", {})["PAYOUTS_SYNC_FIRST_UNTIL"] = window
        platform.service_env.setdefault("rewards", {})["REWARDS_CLAIMS_REVIEW_UNTIL"] = window
        for name in with_db:
            platform.restart(name)

        # -- what happened after the target comes back, once ------------------------------------------------
        await flows.paid(inflight, inflight_claim)
        await wait_for(lambda: api.available(d1, "USD"), lambda v: v == PRIZE, timeout=AFTER_S)
        await wait_for(lambda: api.available(inflight, "USD"), lambda v: v == PRIZE - CLAIM, timeout=AFTER_S)

        async def lost_outcomes() -> set[str]:
            letters = await fetch(
                rewards_db, "SELECT detail FROM dead_letters WHERE status = 'open' AND reason = 'unknown_aggregate'"
            )
            return {c for c in after_target.values() for letter in letters if c in letter["detail"]}

        assert await wait_for(lost_outcomes, lambda found: found == set(after_target.values()), timeout=AFTER_S)
        # Their payouts came back from Kafka and were found at Stripe, not made again: one payout each, paid (the
        # Stripe calls below hold "found, not made"). Only the end state is asserted: until the worker's sync has
        # answered, a payout that came back is `pending` or `submitting`, for as long as a loaded machine makes it.
        await wait_for(
            lambda: fetch(payouts_db, "SELECT state FROM payouts WHERE claim_id = ANY($1::text[])",
                          list(after_target.values())),
            lambda rows: [r["state"] for r in rows] == ["paid", "paid"],
            timeout=AFTER_S,
        )  # fmt: skip

        # The claim waiting for a person at the target still waits; released, it is paid once.
        assert await claim_status(api, held, held_claim) == "held"
        await flows.release(held_claim)
        await flows.paid(held, held_claim)

        # The ledger lost c1's claim: flagged by the runbook, a new claim of theirs waits for a person.
        shell = RunbookShell(platform, tmp_path / "shell")
        await shell.procedure("restore", "reconcile", {"player": c1}, token=shell.token("ops-1", "ops"))
        again = await flows.claim(c1, release=False)
        assert (again["status"], again["hold_code"]) == ("held", "risk_score")
        # While the review window is open, every claim waits for a person, d1's too (credited after the restore).
        waits = await flows.claim(d1, release=False)
        assert (waits["status"], waits["hold_code"]) == ("held", "manual_review")

        # Stripe's books: one transfer and one bank payout per claim, whatever was replayed and resumed.
        books = {p: await flows.stripe_books(p) for p in (a1, a2, b1, inflight, c1, c2, held)}
        assert set(books.values()) == {(1, 1)}, books
        # And nothing was sent again, not even under its idempotency key: the payout in flight at the target and
        # those whose requests came back from Kafka were asked for (`sync_status`), never created a second time.
        calls = {p: await flows.stripe_calls(p) for p in (inflight, c1, c2)}
        assert set(calls.values()) == {(1, 1)}, calls
        await ledger_invariants(platform)
    finally:
        await stripe.aclose()
        await game.stop()
        await api.close()


def test_the_drill_names_every_procedure_of_the_restore_runbook() -> None:
    assert {b.procedure for b in load("restore").blocks if b.procedure} == {
        "inspect", "backup", "archive", "restore", "rewind", "reconcile",
    }  # fmt: skip
