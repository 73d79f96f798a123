"""docs/runbooks/upgrade.md against deploy/k8s: every `kubectl apply -k` and `kubectl diff -k` it gives is rendered
with the pinned kustomize and its label selector picks one stage, exactly (the platform's ConfigMaps, users and
secrets; the migrations Jobs; the services' Deployments); the upgrade applies the three stages in order (whether
every workload finds what it reads: tests/deploy/test_procedures.py plays it across a release); every object another
command names (a Deployment to wait for, a Job's log, a CloudNativePG cluster to back up, the pods a selector lists)
exists in the overlay; the backups it takes are the clusters the services use, through the plugin, and it waits for
those and no other.
"""

from __future__ import annotations

import shlex
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from k8s_helpers import k8s_helpers
from k8s_procedures import Command, expand, option, pod_labels, selects, steps
from k8s_procedures import commands as step_commands
from runbook_docs import fill, parse

from prizeflow_devstack.k8s_site import read_env

pytestmark = pytest.mark.k8s

H = k8s_helpers()
ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
RUNBOOK = ROOT / "docs" / "runbooks" / "upgrade.md"
WITH_MIGRATIONS = sorted(p.parent.name for p in ROOT.glob("services/*/alembic.ini"))
APPS = WITH_MIGRATIONS  # each service with migrations is one Deployment of the apps stage
RELEASE = "v1-5-0"
STAGES = ("platform", "migrate", "apps")
PROD = "overlays/prod"

Doc = dict[str, Any]


@cache
def commands(checkout: Path | None = None) -> tuple[Command, ...]:
    """The runbook's commands: its k8s:<step> blocks (the upgrade itself, run from the new release's checkout) and
    its other shell blocks (diagnosis), each line as the shell runs it (a one-line loop unrolled, `db=$(sed ...)`
    read from the overlay of `checkout`, an operator's by default)."""
    root = checkout or H.checkout()
    found: list[Command] = []
    for step in steps(RUNBOOK):
        found += step_commands(RUNBOOK, step, root, {"release": RELEASE})
    for block in parse(RUNBOOK).blocks:
        if block.language in {"bash", "sh"} and "k8s:" not in block.info:
            for line in block.command_lines():
                for command in expand(line, root):
                    words = shlex.split(fill(command, {"current": "0001"}))
                    argv = tuple(words[: words.index("|")] if "|" in words else words)
                    found.append(Command("diagnosis", line, argv, ""))
    return tuple(found)


@cache
def rendered(path: str) -> tuple[Doc, ...]:
    """`kustomize build deploy/k8s/<path>`, with the pinned kustomize, in an operator's checkout (site values set)."""
    return tuple(H.build(H.checkout() / path))


def _labels(doc: Doc) -> dict[str, str]:
    return dict(doc.get("metadata", {}).get("labels") or {})


def names(docs: list[Doc] | tuple[Doc, ...], kind: str) -> set[str]:
    return {d["metadata"]["name"] for d in docs if d["kind"] == kind}


def kustomize_commands() -> list[Command]:
    return [c for c in commands() if c.argv[:1] == ("kubectl",) and ("-k" in c.argv or "--kustomize" in c.argv)]


def test_the_upgrade_applies_the_three_stages_in_order() -> None:
    """Platform (what the workloads read), then the migrations, then the apps: in the order of its steps."""
    applied = [
        str(option(c.argv, "-l")).removeprefix("prizeflow.io/stage=")
        for c in kustomize_commands()
        if c.argv[1] == "apply" and c.step != "rollback"
    ]
    assert applied == list(STAGES)
    rollback = [option(c.argv, "-l") for c in kustomize_commands() if c.step == "rollback"]
    assert rollback == ["prizeflow.io/stage=apps"], "a rollback rolls the apps only (the runbook says why)"


def expect_stage(selector: str | None, picked: list[Doc], line: str) -> None:
    """A stage selector picks objects of that stage only, and what the step needs of it."""
    stage = str(selector).removeprefix("prizeflow.io/stage=")
    assert stage in STAGES, f"{line}: applies by stage (-l prizeflow.io/stage=<stage>), not {selector!r}"
    assert picked, f"{line}: selects nothing"
    assert all(_labels(d).get("prizeflow.io/stage") == stage for d in picked), line
    kinds = {d["kind"] for d in picked}
    if stage == "platform":
        assert {"ConfigMap", "KafkaUser", "KafkaTopic", "ExternalSecret", "Cluster"} <= kinds, f"{line}: {kinds}"
        assert names(picked, "Deployment") == set(H.PLATFORM_DEPLOYMENTS), f"{line}: only the platform's Deployments"
    elif stage == "migrate":
        assert kinds == {"Job"}, f"{line}: selects {sorted(kinds)}"
        assert names(picked, "Job") >= {f"{s}-migrate" for s in WITH_MIGRATIONS}, f"{line}: {names(picked, 'Job')}"
    else:
        assert names(picked, "Deployment") >= set(APPS), f"{line}: Deployments {names(picked, 'Deployment')}"
        assert not kinds & {"Job", "Cluster", "ConfigMap", "KafkaUser", "ExternalSecret"}, f"{line}: {sorted(kinds)}"


@pytest.mark.parametrize("command", kustomize_commands(), ids=lambda c: c.line)
def test_every_kustomize_command_renders_and_selects_the_stage_it_says(command: Command) -> None:
    path = option(command.argv, "-k", "--kustomize")
    assert path is not None, command.line
    assert not Path(path).is_absolute(), f"{command.line}: paths are relative to deploy/k8s"
    selector = option(command.argv, "-l", "--selector")
    expect_stage(selector, [d for d in rendered(path) if selects(selector, _labels(d))], command.line)


# -- the other commands name objects that exist -----------------------------------------------------------------------


def _kubectl_targets() -> list[tuple[Command, str, str]]:
    """(command, kind, name) of every `kind/name` a kubectl command names, and every cnpg cluster."""
    out: list[tuple[Command, str, str]] = []
    kinds = {"deployment": "Deployment", "deploy": "Deployment", "job": "Job"}
    for c in commands():
        if c.argv[:1] != ("kubectl",):
            continue
        if c.argv[1:2] == ("cnpg",):
            out.append((c, "Cluster", c.argv[3]))
            continue
        for word in c.argv:
            kind, _, name = word.partition("/")
            if name and kind in kinds:
                out.append((c, kinds[kind], name))
    return out


@pytest.mark.parametrize(("command", "kind", "name"), _kubectl_targets(), ids=lambda v: getattr(v, "line", v))
def test_every_object_a_command_names_exists_in_the_overlay(command: Command, kind: str, name: str) -> None:
    assert name in names(rendered(PROD), kind), f"{command.line}: no {kind} {name} in {PROD}"


def _selector_commands() -> list[Command]:
    return [
        c
        for c in commands()
        if c.argv[:1] == ("kubectl",) and option(c.argv, "-l", "--selector") and c not in kustomize_commands()
    ]


@pytest.mark.parametrize("command", _selector_commands(), ids=lambda c: c.line)
def test_every_selector_a_command_uses_lists_what_the_step_means(command: Command) -> None:
    """Pods (a log, a wait for their deletion) are selected by the labels of the pods a template makes; the rest by
    the objects' own labels."""
    selector = option(command.argv, "-l", "--selector")
    docs = rendered(PROD)
    argv = command.argv
    if "logs" in argv or "pod" in argv or "pods" in argv:
        templates = [d for d in docs if d["kind"] in {"Deployment", "Job"}]
        picked = [d for d in templates if selects(selector, pod_labels(d))]
        if "logs" in argv:  # every replica of the one service the step reads
            assert {d["metadata"]["name"] for d in picked} == {"settlement"}, command.line
            assert "--prefix" in argv
            assert option(argv, "--tail") == "-1", "a selector's logs stop at 10 lines unless told"
        elif "delete" in str(option(argv, "--for")):
            assert names(picked, "Job") >= {f"{s}-migrate" for s in WITH_MIGRATIONS}, command.line
        else:
            assert names(picked, "Deployment") >= set(APPS), f"{command.line}: {names(picked, 'Deployment')}"
        return
    kind = next(k for w, k in (("job", "Job"), ("jobs", "Job"), ("deployments", "Deployment")) if w in argv)
    picked = [d for d in docs if d["kind"] == kind and selects(selector, _labels(d))]
    if kind == "Job":
        assert names(picked, "Job") >= {f"{s}-migrate" for s in WITH_MIGRATIONS}, f"{command.line}: {picked}"
        assert all(_labels(d).get("prizeflow.io/stage") == "migrate" for d in picked), command.line
    else:
        assert names(picked, "Deployment") == set(APPS), f"{command.line}: {names(picked, 'Deployment')}"


# -- the backups ------------------------------------------------------------------------------------------------------


def test_the_backup_resource_names_a_cluster_that_exists() -> None:
    blocks = [b for b in parse(RUNBOOK).blocks if b.language == "yaml"]
    backups = [d for b in blocks for d in yaml.safe_load_all(b.text) if d and d.get("kind") == "Backup"]
    assert backups, "the runbook gives a Backup resource"
    clusters = names(rendered(PROD), "Cluster")
    # deploy/k8s's own on-demand Backup (validated with the manifests): the same method, plugin and target.
    reference = yaml.safe_load((K8S / "backup" / "on-demand.yaml").read_text())
    for backup in backups:
        assert backup["apiVersion"] == reference["apiVersion"]
        assert backup["metadata"]["namespace"] == "prizeflow"
        assert backup["spec"]["cluster"]["name"] in clusters
        assert {k: v for k, v in backup["spec"].items() if k != "cluster"} == {
            k: v for k, v in reference["spec"].items() if k != "cluster"
        }


def test_the_backup_commands_use_the_plugin_the_clusters_back_up_with() -> None:
    """`kubectl cnpg backup` without `--method plugin` would use the in-tree object store no cluster configures."""
    backups = [c for c in commands() if c.argv[:3] == ("kubectl", "cnpg", "backup")]
    assert len(backups) == len(WITH_MIGRATIONS), [c.line for c in backups]
    for command in backups:
        assert option(command.argv, "--method") == "plugin", command.line
        assert option(command.argv, "--plugin-name") == "barman-cloud.cloudnative-pg.io", command.line


def test_the_backups_before_an_upgrade_follow_the_cluster_each_service_uses(tmp_path: Path) -> None:
    """After a restore a service's cluster has another name (its line in databases.env): the pre-upgrade backup
    backs up that cluster, not the `<service>-db` it was restored from."""
    overlay = tmp_path / "overlays" / "prod"
    overlay.mkdir(parents=True)
    values = read_env(H.checkout() / "overlays" / "prod" / "databases.env") | {"payouts": "payouts-db-r2"}
    (overlay / "databases.env").write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    backed_up = {c.argv[3] for c in commands(tmp_path) if c.argv[:3] == ("kubectl", "cnpg", "backup")}
    assert "payouts-db-r2" in backed_up
    assert "payouts-db" not in backed_up


def _backup_waits(found: tuple[Command, ...]) -> list[Command]:
    return [c for c in found if c.argv[3:4] == ("wait",) and any("backups.postgresql.cnpg.io" in w for w in c.argv)]


def test_the_upgrade_waits_for_its_own_backups_only() -> None:
    """`--all` (or a selector every old Backup matches) waits on an old failed Backup too: the upgrade would hang an
    hour on someone else's failure. It waits for the Backups its step took, by name, each once."""
    taken = {str(option(c.argv, "--backup-name")) for c in commands() if c.argv[:3] == ("kubectl", "cnpg", "backup")}
    waits = _backup_waits(commands())
    assert waits
    waited = set()
    for command in waits:
        assert "--all" not in command.argv, command.line
        assert option(command.argv, "-l", "--selector") is None, command.line
        [target] = [w for w in command.argv if w.startswith("backups.postgresql.cnpg.io/")]
        waited.add(target.partition("/")[2])
    assert waited == taken
    assert all(RELEASE in name for name in taken), "named after this release: a retry of another is another Backup"


def test_a_wrong_stage_a_missing_object_or_an_unscoped_wait_is_caught() -> None:
    """The checks above can fail: a selector that picks nothing, a stage selector that picks another stage's objects,
    a Deployment that does not exist, a wait on every Backup."""
    docs = rendered(PROD)
    with pytest.raises(AssertionError, match="selects nothing"):
        expect_stage("prizeflow.io/stage=apps", [], "kubectl apply -k overlays/prod -l prizeflow.io/stage=apps")
    with pytest.raises(AssertionError):
        expect_stage("prizeflow.io/stage=apps", list(docs), "kubectl apply -k overlays/prod")
    with pytest.raises(AssertionError, match="applies by stage"):
        expect_stage("app=x", list(docs), "kubectl apply -k overlays/prod -l app=x")
    assert "ledger" not in names(docs, "Deployment")
    line = "kubectl -n prizeflow wait --for=jsonpath='{.status.phase}'=completed backups.postgresql.cnpg.io --all"
    [old] = _backup_waits((Command("old", line, tuple(shlex.split(line)), ""),))
    assert "--all" in old.argv
