"""docs/runbooks/upgrade.md against deploy/k8s: every `kubectl apply -k`, `kubectl diff -k` and `kustomize build` it
gives is rendered with the pinned kustomize, and its label selector picks exactly the stage the step says (the
migrations Jobs; the services' Deployments and nothing of the platform); every object another command names (a
Deployment to wait for, a Job's log, a CloudNativePG cluster to back up, the Jobs and pods a selector lists)
exists in the overlay. A runbook step that would apply nothing, or the wrong stage, fails here.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from k8s_helpers import k8s_helpers
from runbook_docs import parse

from prizeflow_devstack.k8s_site import read_env

pytestmark = pytest.mark.k8s

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
RUNBOOK = ROOT / "docs" / "runbooks" / "upgrade.md"
WITH_MIGRATIONS = sorted(p.parent.name for p in ROOT.glob("services/*/alembic.ini"))
APPS = WITH_MIGRATIONS  # each service with migrations is one Deployment of the apps stage

Doc = dict[str, Any]


@dataclass(frozen=True)
class Command:
    line: str
    argv: tuple[str, ...]
    language: str


def _expand_loops(text: str) -> list[str]:
    """The block's commands, `for x in a b; do … done` unrolled (`$x` and `"$x"` substituted), continuations joined."""
    joined = re.sub(r"\\\n\s*", " ", text)
    lines = [line.strip() for line in joined.splitlines() if line.strip() and not line.strip().startswith("#")]
    out: list[str] = []
    i = 0
    while i < len(lines):
        loop = re.fullmatch(r"for (\w+) in ([^;]+); do", lines[i])
        if loop is None:
            out.append(lines[i])
            i += 1
            continue
        end = lines.index("done", i)
        for value in loop.group(2).split():
            out += [re.sub(rf"\$\{{?{loop.group(1)}\}}?", value, body) for body in lines[i + 1 : end]]
        i = end + 1
    return out


# `db="$(sed -n "s/^<service>=//p" overlays/prod/databases.env)"`: the cluster a service uses, read from the overlay.
_CLUSTER_OF = re.compile(r'(?P<var>\w+)="\$\(sed -n "s/\^(?P<key>[\w-]+)=//p" (?P<file>[\w/.-]+)\)"')


@cache
def commands(checkout: Path | None = None) -> tuple[Command, ...]:
    """The runbook's shell commands, loops unrolled and each `db=$(sed ... databases.env)` evaluated against the
    overlay of `checkout` (an operator's, by default) and substituted where `$db` is used."""
    root = checkout or k8s_helpers().checkout()
    found: list[Command] = []
    for block in parse(RUNBOOK).blocks:
        if block.language not in {"bash", "sh"}:
            continue
        variables: dict[str, str] = {}
        for line in _expand_loops(block.text):
            assignment = _CLUSTER_OF.fullmatch(line)
            if assignment:
                variables[assignment.group("var")] = read_env(root / assignment.group("file"))[assignment.group("key")]
                continue
            filled = line
            for name, value in variables.items():
                filled = re.sub(rf"\$\{{?{name}\}}?", value, filled)
            argv = tuple(shlex.split(filled.split(" # ")[0]))
            found.append(Command(filled, argv, block.language))
    return tuple(found)


@cache
def rendered(path: str) -> tuple[Doc, ...]:
    """`kustomize build deploy/k8s/<path>`, with the pinned kustomize, in an operator's checkout (site values set)."""
    return tuple(k8s_helpers().build(k8s_helpers().checkout() / path))


def _labels(doc: Doc) -> dict[str, str]:
    return dict(doc.get("metadata", {}).get("labels") or {})


def selected(docs: tuple[Doc, ...], selector: str | None, labels_of: Any = _labels) -> list[Doc]:
    """The objects a `-l` selector picks (equality terms, comma-separated: what `kubectl -l` accepts here)."""
    if selector is None:
        return list(docs)
    terms = []
    for term in selector.split(","):
        match = re.fullmatch(r"\s*([\w./-]+)\s*(==|=|!=)\s*([\w.-]*)\s*", term)
        assert match, f"selector {selector!r}: only key=value and key!=value terms are checked here"
        terms.append((match.group(1), match.group(2) != "!=", match.group(3)))
    return [d for d in docs if all((labels_of(d).get(k) == v) is equal for k, equal, v in terms)]


def _option(argv: tuple[str, ...], *names: str) -> str | None:
    for i, word in enumerate(argv):
        if word in names and i + 1 < len(argv):
            return argv[i + 1]
        for name in names:
            if name.startswith("--") and word.startswith(name + "="):
                return word.split("=", 1)[1]
    return None


def names(docs: list[Doc], kind: str) -> set[str]:
    return {d["metadata"]["name"] for d in docs if d["kind"] == kind}


def kustomize_commands() -> list[Command]:
    return [
        c
        for c in commands()
        if c.argv[:1] == ("kustomize",) or (c.argv[:1] == ("kubectl",) and ("-k" in c.argv or "--kustomize" in c.argv))
    ]


def test_the_runbook_gives_the_stages_commands() -> None:
    rendered_steps = [(c.argv[1], _option(c.argv, "-l", "--selector")) for c in kustomize_commands()]
    assert ("apply", "prizeflow.io/stage=migrate") in rendered_steps
    assert ("apply", "prizeflow.io/stage=apps") in rendered_steps


def _expect_stage(selector: str | None, picked: list[Doc], line: str) -> None:
    if selector == "prizeflow.io/stage=migrate":
        assert {d["kind"] for d in picked} == {"Job"}, f"{line}: selects {sorted({d['kind'] for d in picked})}"
        assert names(picked, "Job") >= {f"{s}-migrate" for s in WITH_MIGRATIONS}, f"{line}: {names(picked, 'Job')}"
    elif selector == "prizeflow.io/stage=apps":
        kinds = {d["kind"] for d in picked}
        assert names(picked, "Deployment") >= set(APPS), f"{line}: Deployments {names(picked, 'Deployment')}"
        platform = kinds & {"Job", "Cluster", "Backup", "ScheduledBackup", "Namespace", "Kafka", "KafkaTopic"}
        assert not platform, f"{line}: the apps stage would also apply {sorted(platform)}"
    else:
        pytest.fail(f"{line}: an upgrade applies one stage at a time (-l prizeflow.io/stage=migrate or =apps)")


@pytest.mark.parametrize("command", kustomize_commands(), ids=lambda c: c.line)
def test_every_kustomize_command_renders_and_selects_the_stage_it_says(command: Command) -> None:
    argv = command.argv
    path = argv[2] if argv[:2] == ("kustomize", "build") else _option(argv, "-k", "--kustomize")
    assert path is not None, command.line
    assert not Path(path).is_absolute(), f"{command.line}: paths are relative to deploy/k8s"
    selector = _option(argv, "-l", "--selector")
    picked = selected(rendered(path), selector)
    assert picked, f"{command.line}: selects nothing in {path}"
    _expect_stage(selector, picked, command.line)


# -- the other commands name objects that exist -----------------------------------------------------------------------

PROD = "overlays/prod"


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
    assert name in names(list(rendered(PROD)), kind), f"{command.line}: no {kind} {name} in {PROD}"


def _selector_commands() -> list[Command]:
    return [
        c
        for c in commands()
        if c.argv[:1] == ("kubectl",) and _option(c.argv, "-l", "--selector") and c not in kustomize_commands()
    ]


def _pod_labels(doc: Doc) -> dict[str, str]:
    return dict(doc.get("spec", {}).get("template", {}).get("metadata", {}).get("labels") or {})


@pytest.mark.parametrize("command", _selector_commands(), ids=lambda c: c.line)
def test_every_selector_a_command_uses_lists_what_the_step_means(command: Command) -> None:
    selector = _option(command.argv, "-l", "--selector")
    docs = rendered(PROD)
    if "pods" in command.argv:  # pods: those of the Deployments whose template carries the labels
        picked = selected(tuple(d for d in docs if d["kind"] == "Deployment"), selector, _pod_labels)
        assert names(picked, "Deployment") >= set(APPS), f"{command.line}: {names(picked, 'Deployment')}"
        return
    kind = next((k for w, k in (("job", "Job"), ("jobs", "Job"), ("deployments", "Deployment")) if w in command.argv))
    picked = [d for d in selected(docs, selector) if d["kind"] == kind]
    if kind == "Job":
        assert names(picked, "Job") >= {f"{s}-migrate" for s in WITH_MIGRATIONS}, f"{command.line}: {picked}"
        assert all(_labels(d).get("prizeflow.io/stage") == "migrate" for d in picked), command.line
    else:
        assert names(picked, "Deployment") == set(APPS), f"{command.line}: {names(picked, 'Deployment')}"


def test_the_backup_resource_names_a_cluster_that_exists() -> None:
    blocks = [b for b in parse(RUNBOOK).blocks if b.language == "yaml"]
    backups = [d for b in blocks for d in yaml.safe_load_all(b.text) if d and d.get("kind") == "Backup"]
    assert backups, "the runbook gives a Backup resource"
    clusters = names(list(rendered(PROD)), "Cluster")
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
        assert _option(command.argv, "--method") == "plugin", command.line
        assert _option(command.argv, "--plugin-name") == "barman-cloud.cloudnative-pg.io", command.line


def test_the_backups_before_an_upgrade_follow_the_cluster_each_service_uses(tmp_path: Path) -> None:
    """After a restore a service's cluster has another name (its line in databases.env): the pre-upgrade backup
    backs up that cluster, not the `<service>-db` it was restored from."""
    overlay = tmp_path / "overlays" / "prod"
    overlay.mkdir(parents=True)
    values = read_env(k8s_helpers().checkout() / "overlays" / "prod" / "databases.env") | {"payouts": "payouts-db-r2"}
    (overlay / "databases.env").write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    backed_up = {c.argv[3] for c in commands(tmp_path) if c.argv[:3] == ("kubectl", "cnpg", "backup")}
    assert "payouts-db-r2" in backed_up
    assert "payouts-db" not in backed_up


def test_a_wrong_stage_or_a_missing_object_is_caught() -> None:
    """The checks above can fail: a selector that picks nothing, the platform stage in an upgrade step, a Deployment
    that does not exist."""
    docs = rendered(PROD)
    assert selected(docs, "prizeflow.io/stage=upgrade") == []
    with pytest.raises(AssertionError, match="would also apply"):
        _expect_stage("prizeflow.io/stage=apps", selected(docs, None), "kubectl apply -k overlays/prod")
    with pytest.raises(pytest.fail.Exception):
        _expect_stage("prizeflow.io/stage=platform", selected(docs, "prizeflow.io/stage=platform"), "platform")
    assert "ledger" not in names(list(docs), "Deployment")
    assert _expand_loops('for a in x y; do\n  echo "$a-db" ${a}\ndone\n') == ['echo "x-db" x', 'echo "y-db" y']
