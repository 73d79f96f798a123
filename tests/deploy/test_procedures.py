"""Every Kubernetes procedure of the documentation, played over the rendered bundle (issue 57): the commands of its
`k8s:<step>` blocks, in order, each from the checkout it runs in, on a simulated namespace (tests/support/
k8s_procedures.py) that starts as the procedure finds it: empty (an install), or holding an installed release (an
upgrade, a rollback, a new sanctions redirect host, a restore, the end of its recovery windows).

- After every `kubectl apply`, each Deployment and Job it created or changed reads only what was applied at or before
  it: its ConfigMaps (hash-named: a changed one is a new object), with the keys it reads; its Secrets, written by an
  applied ExternalSecret with those keys, by the KafkaUser of this render's version (its ACLs), by the Kafka cluster
  (its CA) or by a CloudNativePG cluster (its owner); its ServiceAccounts and claims.
- No two runs of a Job overlap: a Job is applied only once the previous run's is deleted and its pods are gone.
- Every wait (`kubectl wait`, `rollout status`) waits for something the procedure applied or asked for: a Backup it
  took (never `--all`: an old failed Backup would hold it), an immediate one of a ScheduledBackup it applied.
- A procedure leaves the cluster at its render: every object of the stages it applies, as its checkout renders them
  (a platform-only apply would leave payouts running on its old ConfigMap).

The upgrade crosses a release that changes a ConfigMap (a line of payouts.env), an ACL (payouts' KafkaUser) and a
Secret (the UPI rail: new keys of payouts-secrets), as the rehearsal on a real cluster does. The checks can fail:
today's upgrade runbook (migrate, then apps) and the delete without waiting are played at the end and caught.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from k8s_helpers import deploy_module, k8s_helpers
from k8s_procedures import Cluster, Command, blocks, commands, play
from runbook_docs import ROOT

H = k8s_helpers()
RESTORE = deploy_module("test_restore_runbook")
Doc = dict[str, Any]

pytestmark = pytest.mark.k8s

DEPLOY_MD = ROOT / "docs" / "deploy.md"
README = ROOT / "deploy" / "k8s" / "README.md"
UPGRADE = ROOT / "docs" / "runbooks" / "upgrade.md"
SANCTIONS = ROOT / "docs" / "runbooks" / "sanctions-list-stale.md"
RESTORE_MD = ROOT / "docs" / "runbooks" / "restore.md"
FX_MD = ROOT / "docs" / "runbooks" / "fx-rates-outage.md"
RETRY_CLUSTER = "settlement-db-r2"
VALUES = {
    "release": "v1-5-0",
    "service": "settlement",
    "cluster": "settlement-db",
    "new_cluster": "settlement-db-r1",
    "retry_cluster": RETRY_CLUSTER,
    "rewind_to": "2026-11-25T13:53:41.000",
    "database": "prizeflow_settlement",
}
NEXT_ACL = {
    "resource": {"type": "group", "name": "payouts-next-release", "patternType": "literal"},
    "operations": ["Read"],
}


# -- the checkouts a procedure runs in ------------------------------------------------------------------------------


def _copy(source: Path, name: str) -> Path:
    """A copy of a checkout beside the operator's (in its scratch directory, removed at exit), made afresh."""
    copy: Path = H.checkout().parent / name
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(source, copy)
    return copy


def _kustomization(overlay: Path) -> dict[str, Any]:
    return dict(yaml.safe_load((overlay / "kustomization.yaml").read_text()))


@cache
def next_release() -> Path:
    """The operator's checkout of the next release: a line more in payouts.env (payouts-config's hash changes), an ACL
    more for payouts' KafkaUser, and the UPI rail enabled (new keys in payouts-secrets and webhooks-secrets, a new
    ConfigMap, a providers part)."""
    copy = _copy(H.checkout(), "next-release")
    config = copy / "base" / "platform" / "config" / "payouts.env"
    config.write_text(config.read_text() + "PAYOUTS_SANCTIONS_REFRESH_S=1800\n")
    users_file = copy / "base" / "platform" / "kafka-users.yaml"
    users = [d for d in yaml.safe_load_all(users_file.read_text()) if d]
    for user in users:
        if user["metadata"]["name"] == "payouts":
            user["spec"]["authorization"]["acls"].append(NEXT_ACL)
    users_file.write_text(yaml.safe_dump_all(users, sort_keys=False))
    overlay = copy / "overlays" / "prod"
    kustomization = _kustomization(overlay)
    kustomization["components"].append("../../components/rails/upi")
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump(kustomization, sort_keys=False))
    return copy


@cache
def redirect_added() -> Path:
    """The sanctions runbook's change: a host a list now redirects to, in payouts.env and the allow-list."""
    copy = _copy(H.checkout(), "redirect-added")
    config = copy / "base" / "platform" / "config" / "payouts.env"
    text = re.sub(
        r"^(PAYOUTS_SANCTIONS_REDIRECT_HOSTS=.*)$", r"\1,lists.publisher.test", config.read_text(), flags=re.M
    )
    config.write_text(text)
    allowlist = copy / "base" / "platform" / "egress-proxy" / "sanctions.conf"
    allowlist.write_text(allowlist.read_text() + "acl providers dstdomain -n lists.publisher.test\n")
    return copy


def restored() -> Path:
    return Path(RESTORE.restored_checkout())


@cache
def retried() -> Path:
    """restore.md's retry: the restore into another new cluster, from the same origin, to an earlier target."""
    return Path(RESTORE.retried_checkout())


@cache
def windows_closed() -> Path:
    """restore.md step 6: the recovery windows' literals removed from the overlay."""
    copy = _copy(restored(), "windows-closed")
    overlay = copy / "overlays" / "prod"
    kustomization = _kustomization(overlay)
    for generator in kustomization["configMapGenerator"]:
        literals = [x for x in generator.get("literals", []) if not x.startswith(RESTORE.WINDOWS)]
        if "literals" in generator:
            generator["literals"] = literals
    kustomization["configMapGenerator"] = [g for g in kustomization["configMapGenerator"] if g.get("literals") != []]
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump(kustomization, sort_keys=False))
    return copy


@cache
def live() -> Path:
    """docs/deploy.md's go-live change: PAYOUTS_LIVE_EXECUTION=true among payouts-config's literals of the overlay."""
    copy = _copy(H.checkout(), "live")
    overlay = copy / "overlays" / "prod"
    kustomization = _kustomization(overlay)
    [payouts] = [g for g in kustomization["configMapGenerator"] if g["name"] == "payouts-config"]
    payouts["literals"].append(GO_LIVE)
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump(kustomization, sort_keys=False))
    return copy


GO_LIVE = "PAYOUTS_LIVE_EXECUTION=true"


@cache
def with_conversion() -> Path:
    """The operator's checkout with currency conversion enabled (components/fx/openexchangerates)."""
    copy = _copy(H.checkout(), "with-conversion")
    overlay = copy / "overlays" / "prod"
    kustomization = _kustomization(overlay)
    kustomization["components"].append("../../components/fx/openexchangerates")
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump(kustomization, sort_keys=False))
    return copy


CHECKOUTS: dict[str, Callable[[], Path]] = {
    "operator": H.checkout,
    "next": next_release,
    "redirect": redirect_added,
    "restored": restored,
    "retried": retried,
    "closed": windows_closed,
    "live": live,
    "fx": with_conversion,
}


@cache
def render(checkout: str, path: str) -> tuple[Doc, ...]:
    docs: tuple[Doc, ...] = H.build(CHECKOUTS[checkout]() / path)
    return docs


# -- the procedures -------------------------------------------------------------------------------------------------

STAGES = ("platform", "migrate", "apps")


@dataclass(frozen=True)
class Procedure:
    before: tuple[str, ...]  # the releases installed, in order, before it starts
    steps: tuple[tuple[Path, str, str], ...]  # (document, k8s step, checkout it runs in)
    ends_at: tuple[str, ...] = STAGES  # the stages of its last checkout the cluster holds as rendered afterwards


PROCEDURES = {
    "install": Procedure((), ((DEPLOY_MD, "install", "operator"),)),
    "install, as the README gives it": Procedure((), ((README, "install", "operator"),)),
    "going live": Procedure(("operator",), ((DEPLOY_MD, "go-live", "live"),)),
    "the rates provider's key rotated": Procedure(("fx",), ((FX_MD, "fx-key", "fx"),)),
    # Another namespace's bundle (game-servers/): nothing of overlays/prod changes.
    "game servers let in": Procedure(("operator",), ((DEPLOY_MD, "game-servers", "operator"),), ends_at=()),
    "upgrade": Procedure(
        ("operator",), tuple((UPGRADE, s, "next") for s in ("backup", "platform", "migrate", "check", "apps"))
    ),
    "rollback": Procedure(("operator", "next"), ((UPGRADE, "rollback", "operator"),), ends_at=("apps",)),
    "a sanctions list's new redirect host": Procedure(
        ("operator",), ((SANCTIONS, "apply", "redirect"), (SANCTIONS, "refresh", "redirect"))
    ),
    "restore": Procedure(
        ("operator",),
        (
            (RESTORE_MD, "stop", "operator"),
            (RESTORE_MD, "backup", "operator"),
            (RESTORE_MD, "restore", "restored"),
            (RESTORE_MD, "rewind", "restored"),
            (RESTORE_MD, "start", "restored"),
        ),
    ),
    "restore tried again with an earlier target": Procedure(
        ("operator",),
        (
            (RESTORE_MD, "stop", "operator"),
            (RESTORE_MD, "restore", "restored"),
            (RESTORE_MD, "retry", "retried"),
            (RESTORE_MD, "rewind", "retried"),
            (RESTORE_MD, "start", "retried"),
        ),
    ),
    "recovery windows closed, old cluster retired": Procedure(
        ("operator", "restored"), ((RESTORE_MD, "close", "closed"), (RESTORE_MD, "retire", "closed"))
    ),
}


def _values() -> dict[str, str]:
    return VALUES | {"groups": RESTORE.groups_pattern()}


@cache
def played(name: str) -> Cluster:
    procedure = PROCEDURES[name]
    cluster = Cluster()
    for release in procedure.before:
        cluster.apply_all(render(release, "overlays/prod"))
    for document, step, checkout in procedure.steps:
        steps_ = commands(document, step, CHECKOUTS[checkout](), _values())
        play(cluster, steps_, lambda path, c=checkout: render(c, path), f"{name}: {document.name}")  # type: ignore[misc]
    return cluster


@pytest.mark.parametrize("name", PROCEDURES)
def test_each_procedure_applies_what_every_workload_reads_before_it(name: str) -> None:
    problems = [p for p in played(name).problems if " reads " in p]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", PROCEDURES)
def test_no_two_runs_of_a_job_overlap(name: str) -> None:
    problems = [p for p in played(name).problems if " reads " not in p]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", PROCEDURES)
def test_every_wait_waits_for_something_the_procedure_made(name: str) -> None:
    assert not played(name).waits, "\n".join(played(name).waits)


def _not_at_render(cluster: Cluster, docs: Sequence[Doc], stages: Sequence[str]) -> list[str]:
    return [
        f"{d['kind']}/{d['metadata']['name']}"
        for d in docs
        if (d["metadata"].get("labels") or {}).get("prizeflow.io/stage") in stages
        and cluster.objects.get((d["kind"], d["metadata"]["name"])) != d
    ]


@pytest.mark.parametrize("name", PROCEDURES)
def test_each_procedure_leaves_the_cluster_at_its_render(name: str) -> None:
    procedure = PROCEDURES[name]
    last = procedure.steps[-1][2]
    stale = _not_at_render(played(name), render(last, "overlays/prod"), procedure.ends_at)
    assert not stale, f"{name}: not as {last}'s render says after it: {stale}"


def test_every_document_with_kubernetes_steps_is_played() -> None:
    """A procedure written in a k8s: block that no entry above plays would be checked by nothing here."""
    played_steps = {(d, s) for p in PROCEDURES.values() for d, s, _ in p.steps}
    applying = {
        (path, step)
        for path in (DEPLOY_MD, README, *sorted((ROOT / "docs" / "runbooks").glob("*.md")))
        for step, line, _ in blocks(path)
        if re.search(r"kubectl (apply|delete) -k", line)
    }
    assert applying <= played_steps, f"applying steps no procedure plays: {sorted(applying - played_steps)}"


def test_the_readme_installs_as_docs_deploy_does() -> None:
    assert list(blocks(README)) == [b for b in blocks(DEPLOY_MD) if b[0] == "install"]


# -- the checks can fail -----------------------------------------------------------------------------------------------

# What docs/runbooks/upgrade.md gave before issue 57: the migrations, then the apps, the old Jobs deleted without
# waiting for their pods.
OLD_UPGRADE = (
    "kubectl -n prizeflow delete job -l prizeflow.io/stage=migrate --ignore-not-found",
    "kubectl apply -k overlays/prod -l prizeflow.io/stage=migrate",
    "kubectl apply -k overlays/prod -l prizeflow.io/stage=apps",
    "kubectl -n prizeflow wait --for=jsonpath='{.status.phase}'=completed backups.postgresql.cnpg.io --all",
)


def _old(lines: Sequence[str]) -> list[Command]:
    import shlex

    return [Command("old", line, tuple(shlex.split(line)), "") for line in lines]


def test_the_old_upgrade_is_caught_reading_what_it_never_applied() -> None:
    """Played over the same two releases, the migrate-then-apps upgrade leaves payouts reading a ConfigMap that does
    not exist, a KafkaUser of the old release and Secret keys nothing writes, its Jobs overlapping the previous run's,
    and waiting for every Backup ever taken."""
    cluster = Cluster()
    cluster.apply_all(render("operator", "overlays/prod"))
    play(cluster, _old(OLD_UPGRADE), lambda path: render("next", path), "old upgrade")
    text = "\n".join(cluster.problems)
    payouts_config = next(
        d["metadata"]["name"]
        for d in render("next", "overlays/prod")
        if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("payouts-config-")
    )
    assert f"Deployment payouts reads ConfigMap {payouts_config}, which is not applied yet" in text
    assert "Deployment payouts reads Secret payouts, its KafkaUser lacks ACLs this release needs" in text
    assert "Deployment payouts reads Secret payouts-secrets keys ['UPI_KEY_ID']" in text
    assert "Job payouts-migrate's previous run may still be running" in text
    assert cluster.waits
    assert "waits for Backups --all" in cluster.waits[0]


def test_a_platform_only_change_is_caught_leaving_the_pods_on_their_old_configuration() -> None:
    """The sanctions runbook's old mitigation (apply the platform stage): payouts keeps its old ConfigMap."""
    cluster = Cluster()
    cluster.apply_all(render("operator", "overlays/prod"))
    play(
        cluster,
        _old(["kubectl apply -k overlays/prod -l prizeflow.io/stage=platform"]),
        lambda p: render("redirect", p),
        "old",
    )
    assert "Deployment/payouts" in _not_at_render(cluster, render("redirect", "overlays/prod"), STAGES)


# -- logs ----------------------------------------------------------------------------------------------------------

_LOGS = re.compile(r"kubectl[^`\n|]*? logs [^`\n|]*")


def _log_commands() -> list[tuple[str, str]]:
    """(document, command) of every `kubectl ... logs ...` the documentation gives, in a block or inline."""
    found = []
    for path in (*sorted((ROOT / "docs").rglob("*.md")), README):
        for line in path.read_text(encoding="utf-8").splitlines():
            found += [(path.name, m.group(0).strip()) for m in _LOGS.finditer(line)]
    return found


def one_replica_of_many(command: str) -> str | None:
    """Why a log command would read one pod of several (or cut a selector's logs to 10 lines each), or None."""
    words = command.replace("\\", " ").split()
    namespace = words[words.index("-n") + 1] if "-n" in words else "prizeflow"
    selector = "-l" in words or any(w.startswith("--selector") for w in words)
    if selector:
        if not any(w.startswith("--tail") for w in words):
            return "a selector's logs stop at 10 lines a pod unless --tail says otherwise"
        if "--prefix" not in words and "instanceRole=primary" not in command:
            return "several pods' lines, unprefixed: say which pod each comes from (--prefix)"
        return None
    target = words[words.index("logs") + 1]
    if namespace != "prizeflow" or target.startswith("job/") or re.fullmatch(r"<\w+>", target):
        return None  # another namespace's operator; a Job's pod; the one pod a step named
    if target.startswith(("deploy/", "deployment/")):
        name = target.split("/", 1)[1]
        docs = H.rendered("prod")
        deployments = [
            d
            for d in docs
            if d["kind"] == "Deployment" and re.fullmatch(name.replace("<service>", ".+"), d["metadata"]["name"])
        ]
        scaled = {
            d["spec"]["scaleTargetRef"]["name"]
            for d in docs
            if d["kind"] in {"ScaledObject", "HorizontalPodAutoscaler"}
        }
        if any(d["spec"].get("replicas", 2) > 1 or d["metadata"]["name"] in scaled for d in deployments):
            return f"{target} is one pod of several replicas: select them all (-l ... --prefix --tail=-1)"
        return None
    return f"{target} is one pod of a set (an instance that may not be the primary, one broker of three)"


def test_no_log_command_reads_one_replica_of_many() -> None:
    wrong = [f"{doc}: `{command}`: {why}" for doc, command in _log_commands() if (why := one_replica_of_many(command))]
    assert not wrong, "\n".join(wrong)


def test_the_log_rule_catches_what_the_runbooks_read_before() -> None:
    for old in (
        "kubectl -n prizeflow logs deploy/egress-proxy --since=1h",
        "kubectl -n prizeflow logs <cluster>-1 -c plugin-barman-cloud --since=30m",
        "kubectl -n prizeflow logs deploy/settlement --since=15m",
        "kubectl -n prizeflow logs -l cnpg.io/cluster=<new_cluster>",
    ):
        assert one_replica_of_many(old), old
    assert one_replica_of_many("kubectl -n prizeflow logs job/payouts-preflight") is None


def test_going_live_turns_live_execution_on_after_the_preflight() -> None:
    """The bundle installs with live execution off; the go-live step waits for the preflight and reads its chains
    before it applies anything, and the change it names turns it on in payouts' environment (and nowhere else)."""
    assert f"`{GO_LIVE}`" in DEPLOY_MD.read_text()
    steps_ = commands(DEPLOY_MD, "go-live", live())
    first_apply = next(i for i, c in enumerate(steps_) if c.argv[1:2] == ("apply",))
    before = [c.argv for c in steps_[:first_apply]]
    assert before[0][:6] == ("kubectl", "-n", "prizeflow", "wait", "--for=condition=complete", "job/payouts-preflight")
    assert ("kubectl", "-n", "prizeflow", "logs", "job/payouts-preflight") in before

    def payouts_env(checkout: str) -> dict[str, str]:
        docs = render(checkout, "overlays/prod")
        return dict(H._config(docs, H._container(H.named(docs, "Deployment", "payouts"))))

    assert (payouts_env("operator")["PAYOUTS_LIVE_EXECUTION"], payouts_env("live")["PAYOUTS_LIVE_EXECUTION"]) == (
        "false",
        "true",
    )
