"""docs/runbooks/restore.md on Kubernetes, as far as a machine without a cluster can take it (issue 44): every command
of its `k8s:<step>` blocks is read, filled in for a restore of settlement's database, and checked against the
bundle the way an operator meets it: the overlay before the restore, and after the change in git the runbook gives.

- Stopping the world stops the services and nothing else (the egress proxy carries the WAL and the restore's reads).
- The backup before the restore goes through the plugin (a shell's barman-cloud has no credentials there).
- The restore is a change of one value: the new Cluster recovers from the old one's backups to the target, and the
  runtime Secret's host, the NetworkPolicies and the nightly backup follow it; the old cluster is no longer in the
  render (kept, untouched) and nothing the services use names it.
- The restored cluster is backed up from its first minute, and the step waits for that backup.
- The migrations Job logs in with the restored cluster's owner Secret.
- The consumer groups are rewound by a Kafka user of their own, applied only for that, with the commands the drill
  runs on real Kafka (tests/runbooks/test_restore_drill.py).
- Starting again brings every app back (KEDA's, the HPA's, the fixed one).
- Retiring the old cluster deletes nothing the services use.
"""

from __future__ import annotations

import re
import shlex
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from k8s_helpers import k8s_helpers
from runbook_docs import ROOT, fill, load, parse

from prizeflow_devstack import k8s
from prizeflow_devstack.k8s_site import check_databases, check_site, read_env

H = k8s_helpers()
Doc = dict[str, Any]

pytestmark = pytest.mark.k8s

SERVICE, CLUSTER, NEW_CLUSTER, RETRY_CLUSTER = "settlement", "settlement-db", "settlement-db-r1", "settlement-db-r2"
# The recovery windows restore.md opens in the overlay (step 1) and closes (step 6).
WINDOWS = ("PAYOUTS_SYNC_FIRST_UNTIL=", "REWARDS_CLAIMS_REVIEW_UNTIL=")
BARMAN = "barman-cloud.cloudnative-pg.io"
VALUES = {
    "service": SERVICE,
    "cluster": CLUSTER,
    "new_cluster": NEW_CLUSTER,
    "retry_cluster": RETRY_CLUSTER,
    "rewind_to": "2026-11-25T13:53:41.000",
    "database": "prizeflow_settlement",
}
# The documents whose Kubernetes commands must each say what checks them (a comment line above each command): every one
# with a k8s: block.
DOCS_WITH_COMMANDS = tuple(
    path
    for path in (*sorted((ROOT / "docs").rglob("*.md")), ROOT / "deploy" / "k8s" / "README.md")
    if re.search(r"^\s*```\w* k8s:", path.read_text(encoding="utf-8"), re.MULTILINE)
)
NEEDS_A_CLUSTER = "needs a real cluster"


@dataclass(frozen=True)
class Command:
    step: str
    line: str  # as written, placeholders filled
    argv: tuple[str, ...]
    checked_by: str  # the comment above it


def _commands(path: Path) -> Iterator[tuple[str, str, str]]:
    """(step, command line, the comment line above it) of every `k8s:<step>` block of a document."""
    for block in parse(path).blocks:
        step = re.search(r"\bk8s:(?P<name>[a-z-]+)", block.info)
        if step is None:
            continue
        comment = ""
        for raw in block.text.splitlines():
            line = raw.strip()
            if line.startswith("#"):
                comment = line.lstrip("# ").strip()
            elif line:
                yield step.group("name"), line, comment
                comment = ""


@cache
def runbook() -> tuple[Command, ...]:
    out = []
    for step, line, comment in _commands(ROOT / "docs" / "runbooks" / "restore.md"):
        filled = fill(line, VALUES | {"groups": groups_pattern()})
        words = shlex.split(filled)
        argv = tuple(words[: words.index("|")] if "|" in words else words)
        out.append(Command(step, filled, argv, comment))
    return tuple(out)


def step(name: str) -> list[Command]:
    found = [c for c in runbook() if c.step == name]
    assert found, f"restore.md has no k8s:{name} block"
    return found


def groups_pattern() -> str:
    found = re.search(r"`<groups>` is `([^`]+)`", load("restore").text)
    assert found, "restore.md no longer says what <groups> is"
    return found.group(1)


def option(argv: tuple[str, ...], *names: str) -> str | None:
    """`--name value` or `--name=value`."""
    for i, word in enumerate(argv):
        if word in names and i + 1 < len(argv):
            return argv[i + 1]
        for name in names:
            if name.startswith("--") and word.startswith(name + "="):
                return word.split("=", 1)[1]
    return None


def selected(docs: list[Doc], selector: str, labels_of: Any = None) -> list[Doc]:
    """What `-l key=value,...` picks (equality terms only: the runbook uses nothing else)."""
    terms = dict(term.split("=", 1) for term in selector.split(","))
    of = labels_of or (lambda d: d["metadata"].get("labels") or {})
    return [d for d in docs if all(of(d).get(k) == v for k, v in terms.items())]


def names(docs: list[Doc], kind: str) -> set[str]:
    return {d["metadata"]["name"] for d in docs if d["kind"] == kind}


# -- the bundle before and after the change in git the runbook gives ---------------------------------------------------


def _databases_change() -> dict[str, str]:
    """The lines restore.md tells the operator to put in databases.env (its example block)."""
    [block] = [b for b in load("restore").blocks if "-restore-from=" in b.text]
    return read_env_text(block.text)


def read_env_text(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))


@cache
def restored_checkout() -> Path:
    """H.checkout() with the restore of settlement as restore.md step 1 says: databases.env, the component, the
    recovery windows."""
    copy: Path = H.checkout().parent / "restored"
    if copy.exists():
        return copy
    shutil.copytree(H.checkout(), copy)
    overlay: Path = copy / "overlays" / "prod"
    databases = read_env(overlay / "databases.env") | _databases_change()
    (overlay / "databases.env").write_text("".join(f"{k}={v}\n" for k, v in databases.items()))
    kustomization = yaml.safe_load((overlay / "kustomization.yaml").read_text())
    components = re.search(r"`components: \[([^\]]+)\]`", load("restore").text)
    assert components, "restore.md no longer says which components to list"
    kustomization["components"] = [c.strip() for c in components.group(1).split(",")]
    for generator in kustomization["configMapGenerator"]:
        if generator["name"] == "payouts-config":
            generator["literals"].append("PAYOUTS_SYNC_FIRST_UNTIL=2026-11-26T04:00:00Z")
    kustomization["configMapGenerator"].append(
        {
            "name": "rewards-config",
            "behavior": "merge",
            "literals": ["REWARDS_CLAIMS_REVIEW_UNTIL=2026-11-26T04:00:00Z"],
        }
    )
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump(kustomization, sort_keys=False))
    return copy


def _retry_change() -> dict[str, str]:
    """The databases.env lines restore.md's "Try again with an earlier target" names, the earlier target an hour
    before the first one."""
    text = load("restore").text
    paragraph = text[text.index("**Try again with an earlier target.**") :].split("```", 1)[0]
    lines = dict(re.findall(r"`(settlement(?:-restore-from|-restore-target-time)?)=([^`]+)`", paragraph))
    first = _databases_change()[f"{SERVICE}-restore-target-time"]
    earlier = (datetime.fromisoformat(first.replace(" ", "T")) - timedelta(hours=1)).strftime("%Y-%m-%d %H:%M:%S.%f")
    assert lines.get(f"{SERVICE}-restore-target-time") == "<earlier target>", lines
    return lines | {f"{SERVICE}-restore-target-time": earlier + "+00"}


@cache
def retried_checkout() -> Path:
    """restored_checkout() after a failed recovery, tried again as restore.md says: another new cluster, the same
    origin, an earlier target."""
    copy: Path = H.checkout().parent / "retried"
    if copy.exists():
        return copy
    shutil.copytree(restored_checkout(), copy)
    overlay = copy / "overlays" / "prod"
    databases = read_env(overlay / "databases.env") | _retry_change()
    (overlay / "databases.env").write_text("".join(f"{k}={v}\n" for k, v in databases.items()))
    return copy


def before(path: str = "overlays/prod") -> list[Doc]:
    return list(H.build(H.checkout() / path))


@cache
def _after(path: str) -> tuple[Doc, ...]:
    return tuple(H.build(restored_checkout() / path))


def after(path: str = "overlays/prod") -> list[Doc]:
    return list(_after(path))


def _apply_k(command: Command) -> tuple[str, str | None]:
    return str(option(command.argv, "-k")), option(command.argv, "-l")


# -- every command says what checks it -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", DOCS_WITH_COMMANDS, ids=lambda p: p.name)
def test_every_kubernetes_command_names_its_test_or_needs_a_real_cluster(path: Path) -> None:
    commands = list(_commands(path))
    assert commands, f"{path.name} has no k8s: block"
    wrong = []
    for step_, line, comment in commands:
        if comment == NEEDS_A_CLUSTER:
            continue
        node = re.fullmatch(r"(?P<file>tests/[\w/]+\.py)::(?P<test>test_\w+)", comment)
        source = ROOT / node.group("file") if node else None
        if source is None or not source.is_file() or f"def {node.group('test')}(" not in source.read_text():  # type: ignore[union-attr]
            wrong.append(f"k8s:{step_}: `{line}` is preceded by {comment!r}")
    assert not wrong, f"{path.name}: each command names an existing test or says {NEEDS_A_CLUSTER!r}: {wrong}"


def test_the_runbook_has_every_kubernetes_step() -> None:
    assert {c.step for c in runbook()} == {
        "inspect",
        "stop",
        "backup",
        "restore",
        "retry",
        "rewind",
        "start",
        "close",
        "retire",
    }


# -- stop --------------------------------------------------------------------------------------------------------------


def _pod_labels(doc: Doc) -> dict[str, str]:
    return dict(doc["spec"]["template"]["metadata"]["labels"])


def test_stopping_the_world_stops_the_apps_and_nothing_else() -> None:
    """`scale deploy --all` also stopped the egress proxy, which the databases archive WAL through and the recovery
    reads the base backup through: the selectors pick the apps stage's Deployments and ScaledObjects exactly, and the
    wait covers their pods and nothing of the platform's."""
    docs = before()
    apps = set(k8s.DEPLOYMENTS)
    [pause, scale, wait] = step("stop")
    assert pause.argv[:4] == ("kubectl", "-n", "prizeflow", "annotate")
    assert names(selected(docs, str(option(pause.argv, "-l"))), "ScaledObject") == names(docs, "ScaledObject")
    assert "autoscaling.keda.sh/paused-replicas=0" in pause.argv
    assert (scale.argv[3:5], option(scale.argv, "--replicas")) == (("scale", "deployment"), "0")
    stopped = names(selected(docs, str(option(scale.argv, "-l"))), "Deployment")
    assert stopped == apps
    assert "egress-proxy" in names(docs, "Deployment") - stopped
    deployments = [d for d in docs if d["kind"] == "Deployment"]
    waited = names(selected(deployments, str(option(wait.argv, "-l")), _pod_labels), "Deployment")
    assert (wait.argv[3], option(wait.argv, "--for")) == ("wait", "delete")
    assert waited == apps


def test_the_stop_selector_would_have_caught_scale_all() -> None:
    docs = before()
    assert "egress-proxy" in names([d for d in docs if d["kind"] == "Deployment"], "Deployment")
    assert names(selected(docs, "prizeflow.io/stage=platform"), "Deployment") == set(H.PLATFORM_DEPLOYMENTS)


# -- backup ------------------------------------------------------------------------------------------------------------


def test_the_backup_before_the_restore_goes_through_the_plugin() -> None:
    """CloudNativePG's own verbs against the cluster the service uses: a WAL switch, then an on-demand Backup through
    the barman-cloud plugin (without `--method plugin` it would use the in-tree store no cluster configures)."""
    clusters = names(before(), "Cluster")
    [switch, backup, _wait] = step("backup")
    assert switch.argv[:4] == ("kubectl", "cnpg", "psql", CLUSTER)
    assert "pg_switch_wal()" in switch.line
    assert backup.argv[:4] == ("kubectl", "cnpg", "backup", CLUSTER)
    assert {switch.argv[3], backup.argv[3]} <= clusters
    assert (option(backup.argv, "--method"), option(backup.argv, "--plugin-name")) == ("plugin", BARMAN)
    assert option(backup.argv, "--immediate-checkpoint") == "true"
    assert not [c for c in runbook() if "barman-cloud-backup" in c.line], "no barman-cloud from a shell on Kubernetes"


# -- restore -----------------------------------------------------------------------------------------------------------


def _references(docs: list[Doc], name: str) -> list[str]:
    """`kind/name` of every object whose text names the cluster `name` (as a whole name: not `name-r1`)."""
    pattern = re.compile(rf"(?<![\w-]){re.escape(name)}(-(app|rw|nightly))?(?![\w-])")
    return [f"{d['kind']}/{d['metadata']['name']}" for d in docs if pattern.search(yaml.safe_dump(d))]


def test_the_restore_is_a_change_in_git_that_everything_follows() -> None:
    """The runbook's databases.env lines and component pass the overlay check; the platform stage then holds the new
    cluster, recovering from the old one's backups to the target, and everything that names the service's cluster
    names the new one: the runtime Secret's host (what an ExternalSecret refresh writes back), the NetworkPolicies,
    the nightly backup. The old cluster is gone from the render (kubectl apply deletes nothing: it keeps running,
    untouched) and only the recovery names it. No other service changes."""
    overlay = restored_checkout() / "overlays" / "prod"
    assert check_databases(overlay, k8s.DATABASES) == []
    assert check_site(overlay) == []
    [check, apply, *_] = step("restore")
    assert check.line == "uv run --frozen prizeflow-k8s --check-overlay overlays/prod"
    path, stage = _apply_k(apply)
    assert (path, stage) == ("overlays/prod", "prizeflow.io/stage=platform")
    old, new = before(), after()
    platform = selected(new, str(stage))
    [cluster] = [d for d in platform if d["kind"] == "Cluster" and d["metadata"]["name"] == NEW_CLUSTER]
    assert CLUSTER not in names(new, "Cluster")
    recovery = cluster["spec"]["bootstrap"]["recovery"]
    [origin] = [c for c in cluster["spec"]["externalClusters"] if c["name"] == recovery["source"]]
    assert origin["plugin"] == {
        "name": BARMAN,
        "parameters": {"barmanObjectName": f"{SERVICE}-backups", "serverName": CLUSTER},
    }
    assert recovery["recoveryTarget"]["targetTime"] == _databases_change()[f"{SERVICE}-restore-target-time"]
    original = next(d for d in old if d["kind"] == "Cluster" and d["metadata"]["name"] == CLUSTER)
    assert (recovery["database"], recovery["owner"]) == tuple(
        original["spec"]["bootstrap"]["initdb"][k] for k in ("database", "owner")
    )
    # As durable, archived and monitored as the original: the same spec but for how it starts.
    same = {k: v for k, v in cluster["spec"].items() if k not in {"bootstrap", "externalClusters"}}
    assert same == {k: v for k, v in original["spec"].items() if k != "bootstrap"}
    [archiver] = [p for p in cluster["spec"]["plugins"] if p.get("isWALArchiver")]
    assert "serverName" not in archiver["parameters"], "it archives into a folder of its own name, never the origin's"

    uri = next(
        d for d in platform if d["kind"] == "ExternalSecret" and d["metadata"]["name"] == f"{SERVICE}-db-runtime"
    )
    assert f"@{NEW_CLUSTER}-rw:5432/" in uri["spec"]["target"]["template"]["data"]["uri"]
    [get_uri] = [c for c in step("start") if "get externalsecret" in c.line]
    assert get_uri.argv[5] == uri["metadata"]["name"]
    policies = {d["metadata"]["name"]: d["spec"] for d in platform if d["kind"] == "NetworkPolicy"}
    to_db = policies[f"{SERVICE}-to-postgres"]["egress"]
    assert [p["podSelector"]["matchLabels"] for r in to_db for p in r["to"]] == [{"cnpg.io/cluster": NEW_CLUSTER}]
    instances = policies[NEW_CLUSTER]
    assert instances["podSelector"] == {"matchLabels": {"cnpg.io/cluster": NEW_CLUSTER}}
    assert {"podSelector": {"matchLabels": {"app.kubernetes.io/name": SERVICE}}} in instances["ingress"][0]["from"]
    assert _references(new, CLUSTER) == [f"Cluster/{NEW_CLUSTER}"], "only the recovery names the old cluster"
    assert f"{SERVICE}-db-runtime" in yaml.safe_dump(cluster), "the runtime role's password: the same Secret"
    # Every other service's database, backups, policies, secrets and Jobs: exactly what they were (the preflight
    # aside: it reads payouts' and rewards' configuration, which the recovery windows change).
    kinds = {"Cluster", "ScheduledBackup", "ObjectStore", "NetworkPolicy", "ExternalSecret", "Job"}
    others = [d for d in new if d["kind"] in kinds and SERVICE not in yaml.safe_dump(d) and not _preflight(d)]
    assert others
    assert [f"{d['kind']}/{d['metadata']['name']}" for d in others if d not in old] == []


def _preflight(doc: Doc) -> bool:
    return bool(doc["kind"] == "Job" and doc["metadata"]["labels"].get("app.kubernetes.io/component") == "preflight")


def test_the_restored_cluster_is_backed_up_from_its_first_minute() -> None:
    """Its own ScheduledBackup, created with it (platform stage), takes a base backup at once; the step waits for the
    Backup that CloudNativePG creates for it, selected by the labels CloudNativePG 1.30 gives it
    (internal/controller/scheduledbackup_controller.go: cnpg.io/cluster, cnpg.io/immediateBackup,
    cnpg.io/scheduled-backup)."""
    new = after()
    [scheduled] = [d for d in new if d["kind"] == "ScheduledBackup" and d["spec"]["cluster"]["name"] == NEW_CLUSTER]
    assert scheduled["metadata"]["labels"]["prizeflow.io/stage"] == "platform"
    assert (scheduled["spec"]["immediate"], scheduled["spec"]["method"]) == (True, "plugin")
    assert scheduled["spec"]["pluginConfiguration"] == {"name": BARMAN}
    labels = {
        "cnpg.io/cluster": NEW_CLUSTER,
        "cnpg.io/immediateBackup": "true",
        "cnpg.io/scheduled-backup": scheduled["metadata"]["name"],
    }
    [wait] = [c for c in step("restore") if "backups.postgresql.cnpg.io" in c.line]
    terms = dict(t.split("=", 1) for t in str(option(wait.argv, "-l")).split(","))
    assert terms.items() <= labels.items()
    assert terms["cnpg.io/cluster"] == NEW_CLUSTER
    assert option(wait.argv, "--for") == "jsonpath={.status.phase}=completed"


# -- migrations --------------------------------------------------------------------------------------------------------


def test_the_migrations_run_on_the_restored_cluster() -> None:
    """The migrations Job logged in with the OLD cluster's owner Secret: "run the migrations first" migrated the
    damaged database. After the change its Job reads the new cluster's `<cluster>-app`; the others are unchanged."""
    [delete, pods_gone, apply, wait] = [c for c in step("start") if "migrate" in c.line]
    path, stage = _apply_k(apply)
    jobs = {d["metadata"]["name"]: d for d in selected(after(path), str(stage)) if d["kind"] == "Job"}
    assert {f"{s}-migrate" for s in k8s.DATABASES} <= set(jobs)
    secret = H._secret_refs(H._container(jobs[f"{SERVICE}-migrate"]))["DATABASE_URL"]
    assert secret == (f"{NEW_CLUSTER}-app", "uri")
    old_jobs = {d["metadata"]["name"]: d for d in before() if d["kind"] == "Job"}
    assert H._secret_refs(H._container(old_jobs[f"{SERVICE}-migrate"]))["DATABASE_URL"] == (f"{CLUSTER}-app", "uri")
    assert all(jobs[n] == old_jobs[n] for n in jobs if not n.startswith(SERVICE) and not _preflight(jobs[n]))
    for command in (delete, wait):
        assert names(selected(after(), str(option(command.argv, "-l"))), "Job") == set(jobs)
    assert (pods_gone.argv[3], option(pods_gone.argv, "--for"), pods_gone.argv[5]) == ("wait", "delete", "pod")
    jobs_pods = [d for d in after() if d["kind"] == "Job"]
    assert names(selected(jobs_pods, str(option(pods_gone.argv, "-l")), _pod_labels), "Job") == set(jobs)


# -- start -------------------------------------------------------------------------------------------------------------


def test_starting_again_brings_every_app_back() -> None:
    """Played out on the rendered apps: after the stop every app is at 0 and KEDA paused; the start applies the apps
    stage (a Deployment whose manifest has replicas gets them back), scales what an HPA would leave at 0, and lifts
    KEDA's pause. Every app then runs or is scaled up by an autoscaler that is not paused."""
    docs = after()
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    scaled = {d["spec"]["scaleTargetRef"]["name"]: d for d in docs if d["kind"] == "ScaledObject"}
    hpas = {d["spec"]["scaleTargetRef"]["name"] for d in docs if d["kind"] == "HorizontalPodAutoscaler"}
    replicas = dict.fromkeys(k8s.DEPLOYMENTS, 0)
    paused = {d["metadata"]["name"] for d in scaled.values()}
    for command in step("start"):
        argv = command.argv
        if "-k" in argv:
            path, stage = _apply_k(command)
            for doc in selected(after(path), str(stage)):
                if doc["kind"] == "Deployment" and "replicas" in doc["spec"]:
                    replicas[doc["metadata"]["name"]] = doc["spec"]["replicas"]
        elif argv[3:5] == ("scale", "deployment"):
            for name in argv[5:]:
                if not name.startswith("-"):
                    replicas[name] = int(str(option(argv, "--replicas")))
        elif argv[3:5] == ("annotate", "scaledobject") and "autoscaling.keda.sh/paused-replicas-" in argv:
            paused -= names(selected(docs, str(option(argv, "-l"))), "ScaledObject")
    for name in k8s.DEPLOYMENTS:
        autoscaler = scaled.get(name)
        keda = autoscaler is not None and autoscaler["metadata"]["name"] not in paused
        keda = keda and autoscaler["spec"]["minReplicaCount"] > 0  # type: ignore[index]
        assert replicas[name] > 0 or keda, f"{name} stays at 0 replicas"
        if name in hpas:
            assert replicas[name] > 0, f"{name}: an HPA never scales a Deployment up from 0"
    assert set(deployments) >= set(k8s.DEPLOYMENTS)


# -- rewind ------------------------------------------------------------------------------------------------------------


def _ops_user() -> Doc:
    [apply, *_] = step("rewind")
    assert apply.argv[:3] == ("kubectl", "apply", "-k")
    [user] = [d for d in H.build(H.checkout() / apply.argv[3]) if d["kind"] == "KafkaUser"]
    return dict(user)


def test_only_the_ops_user_may_rewind_and_only_the_services_groups() -> None:
    """No service's user may alter another's groups, so the runbook's rewind needed a user nothing had: prizeflow-rewind
    (deploy/k8s/ops), applied for the rewind and deleted after, in no overlay. It may read and commit the offsets of
    exactly the groups `<groups>` selects, which are every group the services consume with (and the runbook lists
    them all), on the topics they read; it writes nothing."""
    user = _ops_user()
    assert user["metadata"]["name"] == k8s.OPS_USER
    assert user["metadata"]["namespace"] == "prizeflow"
    assert user["metadata"]["labels"]["strimzi.io/cluster"] == k8s.KAFKA_CLUSTER
    for overlay in H.OVERLAYS:
        assert k8s.OPS_USER not in names(list(H.rendered(overlay)), "KafkaUser"), overlay
    usages = {s: k8s.kafka_usage(s, ROOT) for s in k8s.SERVICES}
    groups = {g for u in usages.values() for g in u.consumes}
    topics = {t for u in usages.values() for ts in u.consumes.values() for t in ts}
    acls = {
        (a["resource"]["type"], a["resource"]["name"], tuple(a["operations"]))
        for a in user["spec"]["authorization"]["acls"]
    }
    assert acls == {("group", g, ("Read", "Describe")) for g in groups} | {
        ("topic", t, ("Read", "Describe")) for t in topics
    }
    assert all(a["resource"]["patternType"] == "literal" for a in user["spec"]["authorization"]["acls"])
    pattern = re.compile(groups_pattern())
    assert {g for g in groups if pattern.search(g)} == groups
    assert not [g for g in ("keda", "prizeflow-topics", "webhooks", "console", "game-servers") if pattern.search(g)]
    listed = set(re.findall(r"`([a-z-]+)`", load("restore").text.split("`<groups>` is", 1)[1].split(";", 1)[0]))
    assert listed - {groups_pattern()} == groups, "the runbook lists every group it rewinds"
    [delete] = [c for c in step("rewind") if c.argv[:2] == ("kubectl", "delete")]
    assert delete.argv[2:] == ("-k", "ops")
    [wait] = [c for c in step("rewind") if "wait" in c.argv]
    assert wait.argv[-2] == f"kafkauser/{k8s.OPS_USER}"


def test_the_rewind_runs_in_a_broker_with_the_ops_users_credentials() -> None:
    """The broker pod named exists (pool `broker`, node ids from 0); the client connects to the services' listener
    with its TLS and SCRAM settings, the cluster CA and the ops user's Strimzi Secret; and the two commands it runs
    are, word for word after the connection options, the ones the drill runs on real Kafka (runbook:rewind)."""
    docs = before()
    kafka = next(d for d in docs if d["kind"] == "Kafka")
    listener = next(item for item in kafka["spec"]["kafka"]["listeners"] if item["name"] == "tls")
    pool = next(d for d in docs if d["kind"] == "KafkaNodePool" and d["spec"]["roles"] == ["broker"])
    first = re.match(r"\[(\d+)", pool["metadata"]["annotations"]["strimzi.io/next-node-ids"]).group(1)  # type: ignore[union-attr]
    pod = f"{kafka['metadata']['name']}-{pool['metadata']['name']}-{first}"
    commands = [c for c in step("rewind") if "exec" in c.argv]
    assert commands
    assert {
        c.argv[c.argv.index("exec") + (2 if c.argv[c.argv.index("exec") + 1] == "-i" else 1)] for c in commands
    } == {pod}
    [ca, props] = [c for c in runbook() if c.step == "rewind" and "cat >" in c.line]
    assert f"secret {kafka['metadata']['name']}-cluster-ca-cert" in ca.line
    assert f"secret {k8s.OPS_USER} " in props.line
    assert listener["authentication"] == {"type": "scram-sha-512"}
    assert listener["tls"] is True
    for setting in ("security.protocol=SASL_SSL", "sasl.mechanism=SCRAM-SHA-512", "ssl.truststore.type=PEM"):
        assert setting in props.line
    tools = [c.line.split(" -- ", 1)[1] for c in commands if "kafka-consumer-groups.sh" in c.line]
    bootstrap = f"{kafka['metadata']['name']}-kafka-bootstrap:{listener['port']}"
    connection = f"--bootstrap-server {bootstrap} --command-config /tmp/ops.properties"
    drill = [
        fill(line, VALUES | {"groups": groups_pattern(), "kafka": "K"})
        for line in load("restore").procedure("rewind").command_lines()
    ]
    assert [t.replace("/opt/kafka/bin/", "").replace(connection, "--bootstrap-server K") for t in tools] == drill


# -- names that must exist ---------------------------------------------------------------------------------------------


def test_every_object_a_step_names_exists_where_the_step_runs() -> None:
    """Before the restore: the cluster whose backups are listed, its service's ObjectStore. After: the new cluster
    waited for."""
    old, new = before(), after()
    [_window, backups] = step("inspect")
    assert option(backups.argv, "-l") == f"cnpg.io/cluster={CLUSTER}"
    assert CLUSTER in names(old, "Cluster")
    [window] = [c for c in step("inspect") if "objectstore" in c.argv]
    assert window.argv[window.argv.index("objectstore") + 1] in names(old, "ObjectStore")
    [ready] = [c for c in step("restore") if "--for=condition=Ready" in c.argv]
    assert ready.argv[-2] == f"cluster/{NEW_CLUSTER}"
    assert NEW_CLUSTER in names(new, "Cluster")


# -- retire ------------------------------------------------------------------------------------------------------------


def test_retiring_the_old_cluster_touches_nothing_the_services_use() -> None:
    """What the last step deletes existed before the restore and is no longer in the render: no Secret, policy,
    Job or backup the services use after the restore names it."""
    old, new = before(), after()
    for command in step("retire"):
        assert command.argv[3] == "delete"
        kind = {"scheduledbackup": "ScheduledBackup", "networkpolicy": "NetworkPolicy", "cluster": "Cluster"}[
            command.argv[4]
        ]
        name = command.argv[5]
        assert name in names(old, kind), command.line
        assert name not in names(new, kind), command.line
    assert _references(new, CLUSTER) == [f"Cluster/{NEW_CLUSTER}"]


# -- a failed restore tried again -------------------------------------------------------------------------------------


def test_a_failed_restore_is_tried_again_into_a_cluster_of_another_name() -> None:
    """CloudNativePG reads `bootstrap` once: a new target for the failed cluster does nothing. The retry names another
    new cluster (the checker passes it), recovering from the same origin's backups to the earlier target; it deletes
    what was made for the failed one and nothing else (each exists after the failed attempt and is gone from the
    render); afterwards nothing names the failed cluster, and the runtime Secret's host is the retry's."""
    failed, again = after(), list(H.build(retried_checkout() / "overlays" / "prod"))
    overlay = retried_checkout() / "overlays" / "prod"
    assert check_databases(overlay, k8s.DATABASES) == []
    [phase, check, *deletes, apply, ready, backed_up] = step("retry")
    assert phase.argv[3:6] == ("get", "cluster", NEW_CLUSTER)
    assert check.line == "uv run --frozen prizeflow-k8s --check-overlay overlays/prod"
    kinds = {"scheduledbackup": "ScheduledBackup", "networkpolicy": "NetworkPolicy", "cluster": "Cluster"}
    for command in deletes:
        assert command.argv[3] == "delete"
        if command.argv[4] == "backups.postgresql.cnpg.io":
            assert option(command.argv, "-l") == f"cnpg.io/cluster={NEW_CLUSTER}"
            continue
        kind, name = kinds[command.argv[4]], command.argv[5]
        assert name in names(failed, kind), command.line
        assert name not in names(again, kind), command.line
    assert {kinds.get(c.argv[4]) for c in deletes} >= {"ScheduledBackup", "NetworkPolicy", "Cluster"}
    assert _apply_k(apply) == ("overlays/prod", "prizeflow.io/stage=platform")
    [cluster] = [d for d in again if d["kind"] == "Cluster" and d["metadata"]["name"] == RETRY_CLUSTER]
    origin = cluster["spec"]["externalClusters"][0]["plugin"]["parameters"]["serverName"]
    assert origin == CLUSTER, "the origin's backups, never the failed attempt's"
    target = cluster["spec"]["bootstrap"]["recovery"]["recoveryTarget"]["targetTime"]
    assert target < _databases_change()[f"{SERVICE}-restore-target-time"]
    assert _references(again, NEW_CLUSTER) == []
    runtime = next(
        d for d in again if d["kind"] == "ExternalSecret" and d["metadata"]["name"] == f"{SERVICE}-db-runtime"
    )
    assert f"@{RETRY_CLUSTER}-rw:5432/" in runtime["spec"]["target"]["template"]["data"]["uri"]
    assert ready.argv[-2] == f"cluster/{RETRY_CLUSTER}"
    assert f"cnpg.io/cluster={RETRY_CLUSTER}" in str(option(backed_up.argv, "-l"))


# -- closing the recovery windows -------------------------------------------------------------------------------------


def test_closing_the_recovery_windows_reaches_the_running_pods() -> None:
    """The windows live in payouts' and rewards' hash-named ConfigMaps: removing them renders ConfigMaps of other
    names, which only the apps stage points the Deployments at (a `rollout restart` would keep the ones with the
    windows). The step's last command prints the names the Deployments read, to compare with the render."""
    opened = after()
    closing = [c for c in step("close") if "-k" in c.argv]
    assert [option(c.argv, "-l") for c in closing] == [
        f"prizeflow.io/stage={s}" for s in ("platform", "migrate", "apps")
    ]
    for service in ("payouts", "rewards"):
        [ref] = H._container(H.named(tuple(opened), "Deployment", service))["envFrom"][1:]
        data = H.named(tuple(opened), "ConfigMap", ref["configMapRef"]["name"])["data"]
        assert any(w.rstrip("=") in data for w in WINDOWS)
    [show] = [c for c in step("close") if "get" in c.argv]
    assert show.argv[3:7] == ("get", "deployment", "payouts", "rewards")
    assert "envFrom" in show.line


# -- GitOps pruning ----------------------------------------------------------------------------------------------------


NO_PRUNE = {"argocd.argoproj.io/sync-options": "Prune=false", "kustomize.toolkit.fluxcd.io/prune": "disabled"}


def test_what_a_restore_keeps_no_pruning_tool_deletes() -> None:
    """Everything the runbook keeps after git names another cluster (and retires later by hand: k8s:retire, k8s:retry)
    carries Argo CD's and Flux's no-prune annotations, in every overlay and on the restored cluster too."""
    old = before()
    kinds = {"scheduledbackup": "ScheduledBackup", "networkpolicy": "NetworkPolicy", "cluster": "Cluster"}
    kept = [
        (kinds[c.argv[4]], c.argv[5].replace(NEW_CLUSTER, CLUSTER))
        for c in [*step("retire"), *step("retry")]
        if c.argv[3] == "delete" and c.argv[4] in kinds
    ]
    assert {k for k, _ in kept} == {"ScheduledBackup", "NetworkPolicy", "Cluster"}
    for kind, name in kept:
        doc = next(d for d in old if (d["kind"], d["metadata"]["name"]) == (kind, name))
        assert NO_PRUNE.items() <= (doc["metadata"].get("annotations") or {}).items(), f"{kind}/{name}"
    for docs in (*(H.rendered(o) for o in H.OVERLAYS), tuple(after())):
        labelled = [d for d in docs if "prizeflow.io/database-of" in (d["metadata"].get("labels") or {})]
        assert labelled
        for doc in labelled:
            assert NO_PRUNE.items() <= (doc["metadata"].get("annotations") or {}).items(), doc["metadata"]["name"]
