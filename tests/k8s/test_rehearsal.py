"""The rehearsal: the production bundle (deploy/k8s/overlays/prod) installed, upgraded and restored on a real one-node
Kubernetes built on this machine (prizeflow-cluster), every step run as its document's `k8s:<step>` block is written
(rehearsal.Operator: the lines of the block, placeholders filled, nothing else), and a round paid through the
egress proxy before and after each. docs/deploy.md "The rehearsal" says what it proves and what it cannot.

The steps run in order and share one cluster; a step whose predecessor failed fails naming it (conftest.py).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import shutil
import time
from functools import partial
from typing import Any

import internet
import pytest
import yaml
from rehearsal import (
    NAMESPACE,
    ROOT,
    Rehearsal,
    Site,
    StepFailed,
    ca_bundle,
    checkout,
    database_now,
    edit_kustomization,
    k8s_block,
    k8s_blocks,
    make_site,
    node_api_addresses,
    release_images,
    render,
    restore_change,
    secret_store,
    set_literals,
    store_values,
    the_next_release,
)
from round import a_funded_round, a_round_is_paid, a_round_is_settled, books, reach
from stellar_sdk import Keypair
from support import USDC, wait_for

# a step's own bound: each documented line's (rehearsal.line_bound); this one only stops what hangs outside them
pytestmark = [pytest.mark.cluster, pytest.mark.timeout(2400)]

# The documented k8s: blocks the rehearsal does not run, each with why (the last test holds every other one run).
NOT_REHEARSED = {
    ("docs/deploy.md", "backup"): "the same on-demand backup as upgrade.md's k8s:backup, which runs for every database",
    ("docs/runbooks/restore.md", "retry"): "needs a restore that fails: a target the archive cannot reach",
    ("docs/runbooks/upgrade.md", "rollback"): "the previous release's apps stage: not rehearsed yet",
    ("docs/runbooks/sanctions-list-stale.md", "apply"): "a new redirect host of a list: not rehearsed yet",
    ("docs/runbooks/sanctions-list-stale.md", "refresh"): "a list refreshed on demand: not rehearsed yet",
    ("docs/runbooks/fx-rates-outage.md", "fx-key"): "the rates provider's component is not enabled in the rehearsal",
    ("deploy/k8s/README.md", "install"): "the same lines as docs/deploy.md's k8s:install, which runs (held below)",
    ("docs/ops-cli.md", "reach"): "its port-forwards run in the background of a shell; round.reach() opens the same",
}

DEPLOY = "docs/deploy.md"
UPGRADE = "docs/runbooks/upgrade.md"
RESTORE = "docs/runbooks/restore.md"
OLD_UPGRADE = "tests/k8s/upgrade-before-89543cd4.md"


def _groups() -> str:
    """restore.md's `<groups>` as it defines it (fill() quotes it for the shell)."""
    found = re.search(r"`<groups>` is `([^`]+)`", (ROOT / RESTORE).read_text())
    assert found, "restore.md no longer says what <groups> is"
    return found.group(1)


def _timed(rehearsal: Rehearsal, name: str, started: float) -> None:
    rehearsal.timings[name] = time.monotonic() - started


def _site(rehearsal: Rehearsal, source_account: str) -> Site:
    names = {"console": "console.rehearsal.internal", "webhooks": "webhooks.rehearsal.internal"}
    values = {
        "object-store-host": internet.OBJECTS,
        "postgres-image": rehearsal.refs["postgresql"],
        # components/signer-hot-key takes the HSM's place; its values stay required of the overlay and unused.
        "hsm-client-image": rehearsal.refs["edge"],
        "hsm-address": "172.31.250.10/32",
        "hsm-port": "1792",
        "identity-issuer": f"https://{internet.IDENTITY}/",
        "identity-jwks-url": f"https://{internet.IDENTITY}/jwks.json",
        "identity-discovery-url": f"https://{internet.IDENTITY}/.well-known/openid-configuration",
        "console-host": names["console"],
        "webhooks-host": names["webhooks"],
        "topup-success-url": f"https://{names['console']}/top-ups/done?session={{CHECKOUT_SESSION_ID}}",
        "topup-cancel-url": f"https://{names['console']}/top-ups/cancelled",
        "soroban-rpc-url": f"https://{internet.SOROBAN}",
        "payout-source-account": source_account,
    }
    return Site(values, node_api_addresses(), source_account, rehearsal.source_seed)


def _known_secrets(rehearsal: Rehearsal) -> dict[tuple[str, str], str]:
    net = rehearsal.internet
    known = {("prizeflow/signer", "hot-key-seed"): rehearsal.source_seed}
    for key in ("prizeflow/payouts", "prizeflow/rewards", "prizeflow/webhooks"):
        known[(key, "STRIPE_API_KEY")] = internet.STRIPE_KEY
        known[(key, "UPI_KEY_ID")], known[(key, "UPI_KEY_SECRET")] = internet.UPI_KEY
    for service in ("settlement", "rewards", "payouts", "signer", "webhooks", "console"):
        known[(f"prizeflow/backups/{service}", "ACCESS_KEY_ID")] = net.s3_access_key
        known[(f"prizeflow/backups/{service}", "ACCESS_SECRET_KEY")] = net.s3_secret_key
    return known


def _fill_store(rehearsal: Rehearsal, release: str) -> None:
    """The site's secret store holds every entry the release's ExternalSecrets read (a value once given is kept)."""
    wanted = store_values(render(rehearsal.releases[release]), _known_secrets(rehearsal))
    for key, fields in wanted.items():
        for prop, value in fields.items():
            rehearsal.store.setdefault(key, {}).setdefault(prop, value)
    secret_store(rehearsal.kube, rehearsal.store)


def test_install_as_docs_deploy_md_says(rehearsal: Rehearsal) -> None:
    """A fresh cluster → docs/deploy.md's site check, install (platform, migrations and preflight, apps), game
    servers and go-live, each block as written."""
    started = time.monotonic()
    kube, op = rehearsal.kube, rehearsal.operator
    source = Keypair.random()
    rehearsal.source_seed = source.secret
    rehearsal.internet = internet.deploy(
        kube, rehearsal.refs, source_account=source.public_key, workdir=rehearsal.workdir
    )
    _timed(rehearsal, "the simulated internet", started)

    started = time.monotonic()
    release = checkout(rehearsal.workdir, "release-a")
    rehearsal.releases["a"] = release
    release_images(rehearsal.root, release, rehearsal.registry_port, "rehearsal-a")
    _timed(rehearsal, "release A's images built, pushed, pinned", started)
    make_site(release, _site(rehearsal, source.public_key))
    edit_kustomization(release, images={"docker.io/ubuntu/squid": rehearsal.refs["squid"]})

    kube.run("create", "namespace", NAMESPACE)
    bundle = rehearsal.workdir / "ca-bundle.crt"
    bundle.write_bytes(ca_bundle(rehearsal.internet.ca_pem))
    # components/private-ca's comment, as the site runs it
    kube.run("-n", NAMESPACE, "create", "secret", "generic", "site-ca-bundle", f"--from-file=ca-bundle.crt={bundle}")
    _fill_store(rehearsal, "a")

    started = time.monotonic()
    op.step(DEPLOY, "site", release)
    op.step(DEPLOY, "install", release)
    _timed(rehearsal, "docs/deploy.md k8s:install", started)
    preflight = kube.run("-n", NAMESPACE, "logs", "job/payouts-preflight")
    assert internet.OFAC_BUCKET in preflight, preflight  # the lists' redirect chain, followed through the proxy
    op.step(DEPLOY, "game-servers", release)
    # KEDA's scalers read each consumer group's lag with the keda-kafka user and the cluster CA: Ready when they can.
    kube.run("-n", NAMESPACE, "wait", "--for=condition=Ready", "scaledobject", "--all", "--timeout=300s", timeout=330)

    started = time.monotonic()
    set_literals(release, "payouts-config", {"PAYOUTS_LIVE_EXECUTION": "true"})
    op.step(DEPLOY, "go-live", release)
    _timed(rehearsal, "docs/deploy.md k8s:go-live", started)
    config = _payouts_config(rehearsal)
    assert config["PAYOUTS_LIVE_EXECUTION"] == "true", config


def _payouts_config(rehearsal: Rehearsal) -> dict[str, str]:
    """The ConfigMap payouts' running Deployment names (envFrom), as its pods read it."""
    kube = rehearsal.kube
    deployment = kube.get("-n", NAMESPACE, "deployment", "payouts")
    names = [
        e["configMapRef"]["name"]
        for e in deployment["spec"]["template"]["spec"]["containers"][0].get("envFrom", [])
        if "configMapRef" in e and e["configMapRef"]["name"].startswith("payouts-config")
    ]
    assert len(names) == 1, names
    data: dict[str, str] = kube.get("-n", NAMESPACE, "configmap", names[0])["data"]
    return data


def _pay_a_round(rehearsal: Rehearsal, release: str) -> None:
    """round.a_round_is_paid through the APIs as an operator reaches them, the game server on `release`'s image."""

    async def run() -> Any:
        async with reach(rehearsal.kube, rehearsal.internet.identity, rehearsal.internet.issuer) as reached:
            return await a_round_is_paid(reached, rehearsal.kube, rehearsal.ops_image(release))

    paid = asyncio.run(run())
    rehearsal.rounds.append(paid)
    rehearsal.timings[f"a round paid (release {release.upper()})"] = paid.seconds


def test_a_round_is_paid_through_the_egress_proxy(rehearsal: Rehearsal) -> None:
    """A game server in its namespace publishes a round; the winner claims to a Stellar account; ops release the
    hold, an approver approves; the signer signs with the hot key and payouts submits through the egress proxy to
    the simulated Soroban RPC: one payment, the wallet debited."""

    _pay_a_round(rehearsal, "a")


def test_an_upgrade_across_a_commit_that_changes_a_configmap_an_acl_and_a_secret(rehearsal: Rehearsal) -> None:
    """Release B (payouts.env gains a line: a new hash-named ConfigMap; the UPI rail: new Secret keys from the
    store; payouts' KafkaUser gains an ACL) applied by docs/runbooks/upgrade.md's blocks as written; every pod
    rolls onto what B renders, and a round is paid on it."""
    started = time.monotonic()
    kube, op = rehearsal.kube, rehearsal.operator
    release = rehearsal.workdir / "release-b"
    shutil.rmtree(release, ignore_errors=True)
    shutil.copytree(rehearsal.releases["a"], release)
    rehearsal.releases["b"] = release
    changed = the_next_release(release)
    assert changed
    _fill_store(rehearsal, "b")

    # The upgrade as upgrade.md gave it before 89543cd4 (migrate, then apps; never the platform stage) stalls on
    # release B: what the new pods read (B's hash-named payouts ConfigMap, the UPI keys of its Secret) was never
    # applied. The running release keeps serving, as that runbook's "stop here" says; the new one then brings it home.
    started = time.monotonic()
    with pytest.raises(StepFailed) as stalled:
        op.step(OLD_UPGRADE, "migrate", release)
    rehearsal.timings["the old upgrade runbook, until it stalled"] = time.monotonic() - started
    events = kube.get("-n", NAMESPACE, "events", "--field-selector", "involvedObject.kind=Pod")["items"]
    missing = sorted(
        {
            f"{e['involvedObject']['name']}: {e['message']}"
            for e in events
            if re.search(r'(configmap|secret) "[^"]+" not found', e.get("message", ""))
        }
    )
    assert missing, f"the old upgrade stalled, but on nothing missing:\n{stalled.value}"
    rehearsal.old_upgrade = "\n".join([str(stalled.value).splitlines()[0], *missing])
    values = {"release": "b"}
    for step in ("backup", "platform", "migrate", "check", "apps"):
        op.step(UPGRADE, step, release, values)
    _timed(rehearsal, "docs/runbooks/upgrade.md", started)

    assert _payouts_config(rehearsal)["PAYOUTS_MAX_ATTEMPTS"] == "6"
    secret = kube.get("-n", NAMESPACE, "secret", "payouts-secrets")
    assert {"UPI_KEY_ID", "UPI_KEY_SECRET"} <= set(secret["data"]), sorted(secret["data"])
    user = kube.get("-n", NAMESPACE, "kafkauser", "payouts")
    group_acls = [a for a in user["spec"]["authorization"]["acls"] if a["resource"]["type"] == "group"]
    assert group_acls
    assert all("Describe" in a["operations"] for a in group_acls), group_acls
    for app in ("settlement", "rewards", "payouts", "signer", "webhooks", "console"):
        status = kube.get("-n", NAMESPACE, "deployment", app)["status"]
        assert status.get("updatedReplicas") == status.get("replicas") == status.get("readyReplicas"), (app, status)

    _pay_a_round(rehearsal, "b")


def test_the_rewards_database_restored_to_a_point_in_time_and_rewound(rehearsal: Rehearsal) -> None:
    """docs/runbooks/restore.md on rewards' database: a target between two rounds' settlements (the later one only
    in Kafka after it), the apps stopped, a backup, the change in git, the restore into rewards-db-r1, the consumer
    groups rewound with the ops KafkaUser, the apps started with the recovery windows open, then closed, the old
    cluster retired. The money invariants: every wallet, claim and payout as before the restore, nothing paid twice,
    and the round settled after the target back in its players' wallets by replay."""
    kube, op = rehearsal.kube, rehearsal.operator
    release = rehearsal.workdir / "release-c"
    shutil.rmtree(release, ignore_errors=True)
    shutil.copytree(rehearsal.releases["b"], release)
    rehearsal.releases["c"] = release
    paid = [r for r in rehearsal.rounds if hasattr(r, "destination")]
    assert len(paid) == 2, "the restore needs the two rounds paid before it"

    async def before_the_restore() -> tuple[str, Any, dict[str, Any]]:
        async with reach(kube, rehearsal.internet.identity, rehearsal.internet.issuer) as reached:
            later = await a_funded_round(reached)  # funded over HTTP before the target: the restore keeps it
            await asyncio.sleep(2)
            target = database_now(kube, "rewards-db", "prizeflow_rewards")
            await asyncio.sleep(2)
            await a_round_is_settled(reached, kube, rehearsal.ops_image("b"), later)  # after the target: Kafka only
            players = [p for r in paid for p in r.played.players] + list(later.players)
            return target, later, await books(reached, players, [r.destination for r in paid])

    target, later, before = asyncio.run(before_the_restore())
    rehearsal.rounds.append(later)
    winner_after_target = later.players[0]
    assert before[winner_after_target]["balances"], before[winner_after_target]

    started = time.monotonic()
    values = {
        "service": "rewards",
        "cluster": "rewards-db",
        "new_cluster": "rewards-db-r1",
        "groups": _groups(),
        "rewind_to": (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.000"),
    }
    op.step(RESTORE, "inspect", release, values)
    op.step(RESTORE, "stop", release, values)
    op.step(RESTORE, "backup", release, values)
    restore_change(release, "rewards", "rewards-db-r1", "rewards-db", target)
    until = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=12)).strftime("%Y-%m-%dT%H:%M:%SZ")
    set_literals(release, "payouts-config", {"PAYOUTS_SYNC_FIRST_UNTIL": until})
    set_literals(release, "rewards-config", {"REWARDS_CLAIMS_REVIEW_UNTIL": until})
    op.step(RESTORE, "restore", release, values)
    ledger = kube.run(
        "-n", NAMESPACE, "exec", "rewards-db-r1-1", "-c", "postgres", "--", "psql", "-d", "prizeflow_rewards", "-tAc",
        "SELECT coalesce(max(created_at) < timestamptz '" + target + "', true) FROM ledger_transfers",
    )  # fmt: skip
    assert ledger.strip() == "t", f"the restored ledger holds a transfer after the target {target}"
    op.step(RESTORE, "rewind", release, values)
    op.step(RESTORE, "start", release, values)

    # k8s:start waits for nothing (KEDA brings the Deployments back from zero after it): as an operator watches them.
    def serving(app: str) -> bool:
        return int(kube.get("-n", NAMESPACE, "deployment", app)["status"].get("readyReplicas", 0)) >= 1

    for app in ("settlement", "rewards", "payouts", "signer", "webhooks", "console"):
        kube.wait_for(f"deployment/{app} back after the restore", partial(serving, app), timeout_s=600, every_s=3)
    _timed(rehearsal, "docs/runbooks/restore.md (stop → start)", started)

    async def after_the_restore() -> Any:
        async with reach(kube, rehearsal.internet.identity, rehearsal.internet.issuer) as reached:
            # the round settled after the target comes back from Kafka
            await wait_for(lambda: reached.api.available(winner_after_target), lambda v: v == 200 * USDC, timeout=300)
            players = [p for r in paid for p in r.played.players] + list(later.players)
            destinations = [r.destination for r in paid]
            return await wait_for(lambda: books(reached, players, destinations), lambda b: b == before, timeout=120)

    after = asyncio.run(after_the_restore())
    assert after == before, json.dumps({"before": before, "after": after}, indent=1)

    started = time.monotonic()
    set_literals(release, "payouts-config", {"PAYOUTS_SYNC_FIRST_UNTIL": None})
    set_literals(release, "rewards-config", {"REWARDS_CLAIMS_REVIEW_UNTIL": None})
    op.step(RESTORE, "close", release, values)
    op.step(RESTORE, "retire", release, values)
    _timed(rehearsal, "docs/runbooks/restore.md (close, retire)", started)
    assert "PAYOUTS_SYNC_FIRST_UNTIL" not in _payouts_config(rehearsal)
    clusters = yaml.safe_load(kube.run("-n", NAMESPACE, "get", "cluster.postgresql.cnpg.io", "-o", "yaml"))
    assert "rewards-db" not in [c["metadata"]["name"] for c in clusters["items"]]

    async def paid_again() -> Any:
        async with reach(kube, rehearsal.internet.identity, rehearsal.internet.issuer) as reached:
            again = await a_round_is_paid(reached, kube, rehearsal.ops_image("b"))
            players = [p for r in paid for p in r.played.players] + list(later.players)
            return again, await books(reached, players, [r.destination for r in paid])

    again, final = asyncio.run(paid_again())
    rehearsal.rounds.append(again)
    assert final == before, "the books moved after the recovery windows closed"


def test_every_documented_k8s_block_ran_or_says_why_not(rehearsal: Rehearsal) -> None:
    """No k8s: block is left out silently: each ran above to its end, or NOT_REHEARSED names it and why."""
    assert k8s_block(ROOT / "deploy/k8s/README.md", "install") == k8s_block(ROOT / DEPLOY, "install")
    documented = set(k8s_blocks())
    ran = set(rehearsal.operator.steps)
    assert set(NOT_REHEARSED) <= documented, f"NOT_REHEARSED names blocks no doc has: {set(NOT_REHEARSED) - documented}"
    missing = documented - ran - set(NOT_REHEARSED)
    assert not missing, (
        f"documented k8s: blocks the rehearsal neither ran nor names as not rehearsed: {sorted(missing)}"
    )
    assert not ran & set(NOT_REHEARSED), f"ran, and still listed as not rehearsed: {sorted(ran & set(NOT_REHEARSED))}"
